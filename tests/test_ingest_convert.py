"""The convert step end to end (biomed_spancat.ingest.convert, scripts/convert.py)."""

import json
import os
from collections import Counter
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin

from biomed_spancat.ingest.convert import ConvertOptions, convert
from biomed_spancat.ingest.merge import Grouper
from biomed_spancat.ingest.tasks import BalanceError, IngestError, Ledger, Origin, Task
from biomed_spancat.ingest.validate import ValidateOptions, validate_task
from biomed_spancat.ingest.writer import SpansDocBin, build_doc, write_files
from biomed_spancat.outputs import StepOutputs

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "ingest"
ALL = [
    str(DATA / n)
    for n in ("annotators.jsonl", "answers.jsonl", "broken.jsonl", "no_tokens.jsonl", "overlaps.jsonl", "db_out")
]
NLP = spacy.blank("en")


def load(path, key="sc"):
    return list(DocBin().from_disk(path).get_docs(NLP.vocab))


def span_set(docs, key="sc"):
    return Counter((d.text, s.start_char, s.end_char, s.label_) for d in docs for s in d.spans.get(key, []))


from conftest import convert_cli as cli  # noqa: E402


def test_every_task_is_accounted_for(tmp_path):
    report = convert(ALL, tmp_path, ConvertOptions(eval_split=0.0))
    assert (report["read"], report["kept"], report["rejected"], report["merged"], report["duplicates"]) == (
        35,
        14,
        17,
        3,
        1,
    )
    assert report["read"] == report["kept"] + report["rejected"] + report["merged"] + report["duplicates"]
    assert report["balanced"] is True
    assert report["rejected_by_reason"] == {
        "answer_ignore": 1,
        "answer_reject": 1,
        "bad_encoding": 1,
        "bad_tokens": 1,
        "binary_answer": 2,
        "malformed_json": 1,
        "malformed_task": 1,
        "misaligned_span": 2,
        "missing_text": 1,
        "no_answer": 1,
        "span_missing_label": 1,
        "span_offsets_inconsistent": 1,
        "span_out_of_range": 1,
        "span_token_offsets": 1,
        "unsupported_view": 1,
    }
    assert report["read_by_source"][str(DATA / "broken.jsonl")] == 10
    assert len(load(tmp_path / "train.spacy")) == 14
    assert len(load(tmp_path / "dev.spacy")) == 0
    assert any("dev.spacy is empty" in w for w in report["warnings"])
    # one line per rejected task, naming the source, line and reason
    rejections = [json.loads(x) for x in (tmp_path / "rejections.jsonl").read_text(encoding="utf8").splitlines()]
    assert len(rejections) == 17
    by_line = {(Path(r["source"]).name, r.get("line")): r for r in rejections}
    assert by_line[("broken.jsonl", 5)]["reason"] == "bad_encoding"
    assert "byte 0xe9" in by_line[("broken.jsonl", 5)]["detail"]
    assert by_line[("broken.jsonl", 7)]["detail"] == "span 0 (PR) [0:99] is outside the text (length 15)"
    assert by_line[("answers.jsonl", 2)]["reason"] == "answer_reject"
    assert by_line[("no_tokens.jsonl", 1)]["reason"] == "misaligned_span"
    assert "'chondro'" in by_line[("no_tokens.jsonl", 1)]["detail"]


def test_docs_hold_the_annotators_spans_with_overlaps(tmp_path):
    convert([str(DATA / "overlaps.jsonl")], tmp_path, ConvertOptions(eval_split=0.0, spans_key="craft"))
    (doc,) = load(tmp_path / "train.spacy")
    assert [t.text for t in doc] == ["Retinal", "ganglion", "cells", "project", "axons", "."]
    assert [(s.text, s.label_) for s in doc.spans["craft"]] == [
        ("Retinal", "UBERON"),
        ("Retinal ganglion cells", "CL"),
        ("cells project", "GO_BP"),
        ("axons", "GO_CC"),
        ("axons", "UBERON"),
    ]
    assert doc.user_data["doc_key"] == "doc:o1"
    assert doc.user_data["origin"].endswith("overlaps.jsonl:1")


def test_report_counts_overlaps_nesting_and_lengths_per_label(tmp_path):
    report = convert([str(DATA / "overlaps.jsonl")], tmp_path, ConvertOptions(eval_split=0.0))
    spans = report["spans"]
    # UBERON "Retinal" nests in CL "Retinal ganglion cells", which crosses GO_BP "cells project";
    # GO_CC "axons" and UBERON "axons" have the same extent
    assert spans["per_label"]["UBERON"] | {"length": None} == {
        "spans": 2,
        "overlapping": 2,
        "nested": 1,
        "crossing": 0,
        "same_extent": 1,
        "same_label_overlaps": 0,
        "length": None,
    }
    assert spans["per_label"]["CL"]["nested"] == 1 and spans["per_label"]["CL"]["crossing"] == 1
    assert spans["per_label"]["GO_BP"]["crossing"] == 1 and spans["per_label"]["GO_BP"]["nested"] == 0
    assert spans["per_label"]["GO_CC"]["same_extent"] == 1
    assert spans["per_label"]["CL"]["length"] == {"min": 3, "median": 3, "p99": 3, "max": 3}
    assert spans["length_histogram"] == {"1": 3, "2": 1, "3": 1}
    assert (spans["spans"], spans["spans_overlapping"], spans["share_overlapping"]) == (5, 5, 1.0)
    saved = json.loads((tmp_path / "report.json").read_text(encoding="utf8"))
    assert saved["spans"] == spans


def test_merge_policy_and_disagreements_reach_the_report(tmp_path):
    sources = [str(DATA / "annotators.jsonl"), str(DATA / "review.jsonl")]
    report = convert(sources, tmp_path / "m", ConvertOptions(eval_split=0.0, merge="review"))
    assert report["merge"]["disagreements_per_label"] == {"GO_BP": 2, "UBERON": 1}
    assert report["settings"]["merge"] == "review"
    texts = {d.text: [(s.text, s.label_) for s in d.spans["sc"]] for d in load(tmp_path / "m" / "train.spacy")}
    assert texts["BMP2 and BMP4 regulate limb patterning."] == [("BMP2", "PR"), ("BMP4", "PR"), ("limb", "UBERON")]
    # read 9 = kept 4 + merged 4 (alice, bob, carol under the review; alice's older answer) + 1 duplicate
    assert (report["read"], report["kept"], report["merged"], report["duplicates"]) == (9, 4, 4, 1)


def test_identical_texts_of_different_documents_are_both_kept(tmp_path):
    convert([str(DATA / "annotators.jsonl")], tmp_path, ConvertOptions(eval_split=0.0))
    docs = load(tmp_path / "train.spacy")
    assert sorted(d.user_data["doc_key"] for d in docs if d.text == "Results") == ["doc:d1", "doc:d2"]


def test_split_is_grouped_by_document_and_seeded(tmp_path):
    sources = [str(DATA / "annotators.jsonl"), str(DATA / "db_out"), str(DATA / "answers.jsonl")]

    def run(out, seed):
        convert(sources, tmp_path / out, ConvertOptions(eval_split=0.3, seed=seed))
        return {
            split: sorted((d.user_data["doc_key"], d.text) for d in load(tmp_path / out / f"{split}.spacy"))
            for split in ("train", "dev")
        }

    first, again = run("a", 0), run("b", 0)
    assert first == again
    train_docs = {k for k, _ in first["train"]}
    dev_docs = {k for k, _ in first["dev"]}
    assert dev_docs and train_docs and not train_docs & dev_docs
    # both paragraphs of document d2 ("Results" and the Shh sentence) sit on the same side
    d2 = [split for split, docs in first.items() for k, _ in docs if k == "doc:d2"]
    assert len(d2) == 2 and len(set(d2)) == 1
    assert any(run(f"s{seed}", seed) != first for seed in range(1, 6))


def test_eval_and_test_sources_go_where_they_are_asked(tmp_path):
    report = convert(
        [str(DATA / "annotators.jsonl")],
        tmp_path,
        ConvertOptions(eval=[str(DATA / "overlaps.jsonl")], test=[str(DATA / "db_out")]),
    )
    assert report["kept_by_split"] == {"train": 4, "dev": 1, "test": 3}
    assert [d.text for d in load(tmp_path / "dev.spacy")] == ["Retinal ganglion cells project axons."]
    assert len(load(tmp_path / "test.spacy")) == 3
    assert report["settings"]["eval_split"] is None


def test_test_split_writes_test_spacy(tmp_path):
    sources = [str(DATA / "annotators.jsonl"), str(DATA / "db_out"), str(DATA / "answers.jsonl")]
    report = convert(sources, tmp_path, ConvertOptions(eval_split=0.2, test_split=0.2))
    assert set(report["kept_by_split"]) == {"train", "dev", "test"}
    assert sum(report["kept_by_split"].values()) == report["kept"]
    assert (tmp_path / "test.spacy").exists()


def test_leakage_between_train_and_dev_is_warned(tmp_path):
    report = convert([str(DATA / "overlaps.jsonl")], tmp_path, ConvertOptions(eval=[str(DATA / "overlaps.jsonl")]))
    assert any("appear in both train and dev" in w for w in report["warnings"])


def test_keep_binary_writes_them_apart(tmp_path):
    report = convert([str(DATA / "answers.jsonl")], tmp_path, ConvertOptions(eval_split=0.0, keep_binary=True))
    assert report["rejected_by_reason"]["binary_answer"] == 2
    assert report["binary_answers"] == {"ner.teach accept": 1, "ner.teach reject": 1}
    assert "incorrect_spans_key" in report["binary_note"]
    docs = load(tmp_path / "binary.spacy")
    # no 'sc' group: nothing in binary.spacy reads as a complete annotation
    assert all("sc" not in d.spans and d.user_data["annotation"] == "binary" for d in docs)
    assert [[(s.text, s.label_) for s in d.spans["sc_accepted"]] for d in docs] == [[("Sox9", "PR")], []]
    assert [[(s.text, s.label_) for s in d.spans["sc_rejected"]] for d in docs] == [[], [("DNA", "PR")]]
    # accepted spans are entities; every other token is missing, not "outside"
    assert [(t.text, t.ent_iob_, t.ent_type_) for t in docs[0]] == [
        ("Sox9", "B", "PR"),
        ("binds", "", ""),
        ("DNA", "", ""),
        (".", "", ""),
    ]
    assert all(t.ent_iob_ == "" for t in docs[1])
    assert all(d.text != "Sox9 binds DNA." or len(d.spans["sc"]) == 2 for d in load(tmp_path / "train.spacy"))


def test_binary_answers_are_excluded_and_explained_by_default(tmp_path):
    report = convert([str(DATA / "answers.jsonl")], tmp_path, ConvertOptions(eval_split=0.0))
    assert report["binary_answers"] == {"ner.teach accept": 1, "ner.teach reject": 1}
    assert not (tmp_path / "binary.spacy").exists()
    assert report["binary_note"].startswith("Binary answers")


def test_align_policy_applies_to_tasks_without_tokens(tmp_path):
    report = convert([str(DATA / "no_tokens.jsonl")], tmp_path, ConvertOptions(eval_split=0.0, align="expand"))
    assert report["kept"] == 3 and report["rejected"] == 0
    assert report["spans_misaligned"] == {"CL": 1, "GO_MF": 1}
    spans = sorted(s.text for d in load(tmp_path / "train.spacy") for s in d.spans["sc"])
    assert spans == ["BMP2", "DNA", "Sox9 binds", "chondrocytes"]
    report = convert([str(DATA / "no_tokens.jsonl")], tmp_path, ConvertOptions(eval_split=0.0, align="contract"))
    assert report["rejected_by_reason"] == {"misaligned_span": 1}  # "chondro" holds no whole token
    assert sorted(s.text for d in load(tmp_path / "train.spacy") for s in d.spans["sc"]) == ["DNA", "binds"]


def test_labels_and_renames(tmp_path):
    options = ConvertOptions(eval_split=0.0, labels={"GENE", "UBERON"}, rename={"PR": "GENE"})
    report = convert([str(DATA / "db_out")], tmp_path, options)
    assert report["kept"] == 3
    assert report["spans_renamed"] == {"PR->GENE": 3}
    assert Counter(s.label_ for d in load(tmp_path / "train.spacy") for s in d.spans["sc"]) == {"GENE": 3, "UBERON": 1}
    report = convert([str(DATA / "db_out")], tmp_path, ConvertOptions(eval_split=0.0, labels={"PR"}))
    assert report["rejected_by_reason"] == {"unknown_label": 1}
    rejection = json.loads((tmp_path / "rejections.jsonl").read_text(encoding="utf8"))
    assert rejection["line"] == 1 and "'UBERON'" in rejection["detail"]


def test_an_interrupted_write_leaves_no_half_written_output(tmp_path, monkeypatch):
    convert([str(DATA / "overlaps.jsonl")], tmp_path, ConvertOptions(eval_split=0.0))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(SpansDocBin, "to_bytes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        convert([str(DATA / "annotators.jsonl")], tmp_path, ConvertOptions(eval_split=0.0))
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before  # the old outputs are intact and no temporary file is left
    assert sorted(p.suffix for p in (tmp_path / ".outputs").iterdir()) == [".json", ".lock"]


def test_write_files_publishes_only_when_all_are_written(tmp_path, monkeypatch):
    with StepOutputs("convert", [tmp_path / "train.spacy", tmp_path / "dev.spacy"]) as unit:
        write_files({tmp_path / "train.spacy": b"old", tmp_path / "dev.spacy": b"old"}, unit)
    calls = []

    def failing_fsync(fd):
        calls.append(fd)
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        with StepOutputs("convert", [tmp_path / "train.spacy", tmp_path / "dev.spacy"]) as unit:
            write_files({tmp_path / "train.spacy": b"new", tmp_path / "dev.spacy": b"new"}, unit)
    assert calls
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["dev.spacy", "train.spacy"]
    assert (tmp_path / "train.spacy").read_bytes() == b"old" == (tmp_path / "dev.spacy").read_bytes()
    assert not list((tmp_path / ".outputs").glob("*.tmp-*"))


def test_a_fatal_error_writes_nothing(tmp_path):
    with pytest.raises(IngestError, match="no such file"):
        convert([str(DATA / "annotators.jsonl"), str(DATA / "missing.jsonl")], tmp_path, ConvertOptions())
    assert [p.name for p in tmp_path.iterdir()] == [".outputs"]  # the unit's lock, no output
    assert [p.suffix for p in (tmp_path / ".outputs").iterdir()] == [".lock"]


def test_unbalanced_ledger_is_an_error():
    ledger = Ledger()
    ledger.count_read(Task({}, Origin("x", line=1)))
    with pytest.raises(BalanceError, match="read 1 != kept 0"):
        ledger.check_balance()
    ledger.kept = 1
    ledger.check_balance()


def test_groups_are_released_while_merging():
    ledger = Ledger()
    grouper = Grouper(ledger)
    for i in range(5):
        task = Task({"text": f"text {i}", "answer": "accept", "spans": []}, Origin("x", line=i))
        grouper.add(validate_task(task, ValidateOptions(), ledger))
    remaining = [len(grouper.groups) for _ in grouper.merged("majority")]
    assert remaining == [4, 3, 2, 1, 0]


def test_spans_docbin_loads_back_like_docbin():
    ledger = Ledger()
    line = (DATA / "overlaps.jsonl").read_text(encoding="utf8").splitlines()[0]
    ann = validate_task(Task(json.loads(line), Origin("o", line=1)), ValidateOptions(), ledger)
    doc = build_doc(NLP.vocab, ann, "sc")
    fast, plain = SpansDocBin(), DocBin(store_user_data=True)
    fast.add_words(doc, ann.words)
    plain.add(doc)
    (a,) = DocBin().from_bytes(fast.to_bytes()).get_docs(spacy.blank("en").vocab)
    (b,) = DocBin().from_bytes(plain.to_bytes()).get_docs(spacy.blank("en").vocab)
    assert a.to_json() == b.to_json()
    assert [(s.start, s.end, s.label_) for s in a.spans["sc"]] == [(s.start, s.end, s.label_) for s in b.spans["sc"]]
    assert a.user_data == b.user_data


# --- the CLI -----------------------------------------------------------------------------------


def test_cli_converts_the_shipped_sample_exactly(tmp_path, project_root):
    sample = project_root / "assets" / "craft_sample"
    result = cli(
        sample / "train.jsonl",
        tmp_path,
        "--eval",
        sample / "dev.jsonl",
        "--spans-key",
        "sc",
        "--merge",
        "majority",
        "--align",
        "strict",
        "--seed",
        "0",
        "--datasets",
        "",
    )
    assert result.exit_code == 0, result.output
    assert "read 365 = kept 365 + rejected 0 + merged 0 + duplicates 0" in result.text
    for split in ("train", "dev"):
        tasks = [json.loads(x) for x in (sample / f"{split}.jsonl").read_text(encoding="utf8").splitlines()]
        docs = load(tmp_path / f"{split}.spacy")
        assert len(docs) == len(tasks)
        expected = Counter((t["text"], s["start"], s["end"], s["label"]) for t in tasks for s in t["spans"])
        assert span_set(docs) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == [".outputs", "dev.spacy", "rejections.jsonl", "report.json", "train.spacy"]


def test_cli_fatal_errors_exit_non_zero_with_the_source(tmp_path):
    result = cli(DATA / "annotators.jsonl", tmp_path, "--eval", "craft_dev")
    assert result.exit_code == 1
    assert "no source holds datasets" in result.text
    result = cli(tmp_path / "nope.db", tmp_path / "out")
    assert result.exit_code == 1
    assert "nope.db: database not found" in result.text
    result = cli(DATA / "annotators.jsonl", tmp_path / "out", "--merge", "vote")
    assert result.exit_code == 1 and "unknown merge policy 'vote'" in result.text
    result = cli(DATA / "annotators.jsonl", tmp_path / "out", "--rename", "PR")
    assert result.exit_code == 1 and "OLD=NEW" in result.text


def test_cli_prints_the_summary(tmp_path):
    result = cli(
        *ALL,
        tmp_path,
        "--eval-split",
        "0",
        "--labels",
        "PR,UBERON,GO_BP,CL,CHEBI,GO_CC,GO_MF",
        "--unknown-labels",
        "drop",
    )
    assert result.exit_code == 0, result.output
    assert "read 35 = kept 14 + rejected 17 + merged 3 + duplicates 1" in result.text
    assert "binary_answer" in result.text and "disputed spans" in result.text
    assert "span length in tokens" in result.text


def test_a_fatal_error_mid_stream_leaves_no_temporary_file(tmp_path):
    import gzip

    cut = tmp_path / "src" / "cut.jsonl.gz"
    cut.parent.mkdir()
    data = gzip.compress((DATA / "annotators.jsonl").read_bytes())
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    with pytest.raises(IngestError, match=r"cut.jsonl.gz: unreadable after line"):
        convert([str(DATA / "overlaps.jsonl"), str(cut)], out, ConvertOptions())
    assert [p.name for p in out.iterdir()] == [".outputs"]  # the unit's lock, no output
    assert [p.suffix for p in (out / ".outputs").iterdir()] == [".lock"]


def test_msgpack_lookup_is_restored_after_convert(tmp_path):
    import srsly.msgpack

    convert([str(DATA / "overlaps.jsonl")], tmp_path, ConvertOptions(eval_split=0.0))
    for registry in (srsly.msgpack.msgpack_encoders, srsly.msgpack.msgpack_decoders):
        assert "get_all" not in vars(registry)


def test_the_cli_loads_spacy_without_torch_and_torch_still_imports():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from biomed_spancat.ingest.startup import torch_hidden\n"
        "with torch_hidden():\n"
        "    import spacy, thinc.compat\n"
        "assert 'torch' not in sys.modules and not thinc.compat.has_torch\n"
        "import torch\n"
        "print('ok', torch.__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok torch"


def test_manual_and_correct_recipe_outputs_are_kept_as_annotated(tmp_path):
    convert([str(DATA / "answers.jsonl")], tmp_path, ConvertOptions(eval_split=0.0))
    docs = {d.text: [(s.text, s.label_) for s in d.spans["sc"]] for d in load(tmp_path / "train.spacy")}
    assert docs == {
        "Sox9 binds DNA.": [("Sox9", "PR"), ("DNA", "CHEBI")],  # spans.manual
        "Fgf8 in the limb bud.": [("Fgf8", "PR"), ("limb bud", "UBERON")],  # ner.manual, no token offsets
        "Nkx2-5 marks the heart.": [("Nkx2-5", "PR"), ("heart", "UBERON")],  # spans.correct
        "Tbx5 in the forelimb.": [("Tbx5", "PR")],  # ner.correct
    }
