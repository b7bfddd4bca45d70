"""Uptraining: cutting held-out text into unlabelled text and test data (every
record accounted for, each text once, no test text, never a CRAFT mirror in
place of the user's export), joining corpora, a short run of the workflow's
steps, and measuring a pipeline."""
import json
from pathlib import Path
from typing import List

import pytest
import spacy
from spacy.tokens import DocBin

from assist_fixtures import CNN_CONFIG, DOCS, NEW_TEXTS, TINY_CNN, gold_docs, make_task, write_jsonl
from biomed_spancat.assist import AssistError, PreannotateOptions, Thresholds, preannotate
from biomed_spancat.util import DocBinError


def _export(path: Path, docs=DOCS) -> Path:
    return write_jsonl(path, [make_task(text, spans, doc_id, i) for doc_id, paras in docs for i, (text, spans) in enumerate(paras)])


def test_split_heldout_by_document(tmp_path):
    from biomed_spancat.training.uptrain import split_heldout

    report = split_heldout(str(_export(tmp_path / "heldout.jsonl")), tmp_path / "out", share=0.5, seed=0)
    assert report["documents"] == {"unlabelled": 2, "test": 2}
    assert report["tasks"] == {"unlabelled": 4, "test": 4}
    unlabelled = [json.loads(line) for line in (tmp_path / "out" / "unlabelled.jsonl").read_text().splitlines()]
    assert all(set(r) == {"text", "meta"} for r in unlabelled)  # no spans, tokens or answer
    test_docs = list(DocBin().from_disk(tmp_path / "out" / "test.spacy").get_docs(spacy.blank("en").vocab))
    assert len(test_docs) == 4 and all(len(d.spans["sc"]) for d in test_docs)
    unl_docs = {r["meta"]["doc_id"] for r in unlabelled}
    texts = {d.text for d in test_docs}
    for doc_id, paras in DOCS:  # a document is wholly on one side
        assert (doc_id in unl_docs) != all(t in texts for t, _ in paras)


def test_split_heldout_writes_each_text_once_and_no_test_text(tmp_path):
    """A second annotator's version of a text, a task without text, a heading
    every document shares, more text repeating a held-out text: each distinct
    text is unlabelled text once, and a test text never (seed 0 puts d1 and d3
    in the unlabelled half)."""
    from biomed_spancat.training.uptrain import split_heldout

    tasks = [make_task(text, spans, doc_id, i) for doc_id, paras in DOCS for i, (text, spans) in enumerate(paras)]
    tasks.append(dict(tasks[0], _annotator_id="second"))  # d1's first paragraph again, another annotator
    tasks.append({"meta": {"doc_id": "d1"}, "spans": [], "answer": "accept"})
    tasks += [make_task("Results", [], doc_id, 9) for doc_id, _ in DOCS]
    more = write_jsonl(tmp_path / "more.jsonl", [{"text": t} for t in (DOCS[0][1][1][0], NEW_TEXTS[0], NEW_TEXTS[0])])
    report = split_heldout(str(write_jsonl(tmp_path / "heldout.jsonl", tasks)), tmp_path / "out", share=0.5, seed=0,
                           more_text=[str(more)])
    unlabelled = [json.loads(line) for line in (tmp_path / "out" / "unlabelled.jsonl").read_text().splitlines()]
    assert [(r["meta"].get("doc_id"), r["text"]) for r in unlabelled] == [
        ("d1", DOCS[0][1][0][0]), ("d1", DOCS[0][1][1][0]), ("d3", DOCS[2][1][0][0]), ("d3", DOCS[2][1][1][0]),
        (None, NEW_TEXTS[0]),
    ]
    assert report["tasks"] == {"unlabelled": 8, "test": 6}
    assert report["unlabelled_texts"] == {"written": 4, "duplicates": 1, "in_test": 2, "no_text": 1}
    assert {k: report["more_text"][k] for k in ("read", "kept", "in_test", "duplicates", "rejected")} == {
        "read": 3, "kept": 1, "in_test": 0, "duplicates": 2, "rejected": 0,
    }
    test_texts = [d.text for d in DocBin().from_disk(tmp_path / "out" / "test.spacy").get_docs(spacy.blank("en").vocab)]
    assert sorted(test_texts).count("Results") == 2 and len(test_texts) == 6


def test_split_heldout_of_a_label_studio_export_accounts_for_every_record(tmp_path):
    """Label Studio's export (tests/data/bridges): a text annotated twice, a
    cancelled annotation, a prediction, a task without annotation, an edited text."""
    from biomed_spancat.training.uptrain import split_heldout

    export = Path(__file__).parent / "data" / "bridges" / "labelstudio_export.json"
    report = split_heldout(str(export), tmp_path / "out", share=0.5, seed=0)
    assert report["unreadable"] == 4 and report["unreadable_by_reason"] == {
        "labelstudio_cancelled": 1, "labelstudio_prediction": 1, "labelstudio_no_annotation": 1, "bad_spans": 1,
    }
    assert report["unreadable_examples"][0].endswith("labelstudio_export.json:2: task 1 annotation 13 by labelstudio:6e0590950a: cancelled (skipped)")
    assert report["documents"] == {"unlabelled": 2, "test": 2}
    assert report["tasks"] == {"unlabelled": 3, "test": 3}
    assert report["unlabelled_texts"] == {"written": 2, "duplicates": 1, "in_test": 0, "no_text": 0}
    assert report["test_convert"] == {
        "read": 3, "kept": 2, "rejected": 0, "merged": 1, "duplicates": 0, "rejected_by_reason": {},
    }
    # every record the reader gave: what convert reads of the whole export
    assert report["tasks"]["unlabelled"] + report["tasks"]["test"] + report["unreadable"] == 10
    lines = (tmp_path / "out" / "unlabelled.jsonl").read_text().splitlines()
    assert len(lines) == 2 and len({json.loads(line)["text"] for line in lines}) == 2


def test_split_heldout_needs_two_documents(tmp_path):
    from biomed_spancat.training.uptrain import split_heldout

    one = _export(tmp_path / "one.jsonl", DOCS[:1])
    with pytest.raises(AssistError, match=r"one\.jsonl: 1 document\(s\); splitting .* needs at least 2"):
        split_heldout(str(one), tmp_path / "out")
    with pytest.raises(AssistError, match=r"share must be in \(0, 1\), got 1.0"):
        split_heldout(str(one), tmp_path / "out", share=1.0)


def _more_text(tmp_path: Path) -> List[str]:
    """More unlabelled text: a folder of two .txt files (each document's first
    paragraph among new text, a line that is not UTF-8) and a JSONL file (one
    record without text)."""
    more = tmp_path / "more"
    more.mkdir()
    lines = [NEW_TEXTS[0], ""] + [paras[0][0] for _, paras in DOCS]
    (more / "a.txt").write_text("\n".join(lines) + "\n", encoding="utf8")
    (more / "b.txt").write_bytes(b"\xff bad\n" + NEW_TEXTS[1].encode("utf8") + b"\n")
    jsonl = write_jsonl(tmp_path / "extra.jsonl", [{"text": NEW_TEXTS[2], "meta": {"pmid": "1"}}, {"meta": {"pmid": "2"}}])
    return [str(more), str(jsonl)]


def test_split_heldout_appends_more_text_and_accounts_for_every_record(tmp_path):
    from biomed_spancat.training.uptrain import split_heldout

    sources = _more_text(tmp_path)
    report = split_heldout(str(_export(tmp_path / "heldout.jsonl")), tmp_path / "out", share=0.5, seed=0, more_text=sources)
    assert report["tasks"] == {"unlabelled": 4, "test": 4}  # the held-out split is unchanged
    test_texts = {d.text for d in DocBin().from_disk(tmp_path / "out" / "test.spacy").get_docs(spacy.blank("en").vocab)}
    more = report["more_text"]
    # 5 + 2 + 2 records read: each document's first paragraph is already there when
    # it is unlabelled text, left out when it is a test text (2 documents each way)
    assert {k: more[k] for k in ("read", "kept", "in_test", "duplicates", "rejected", "rejected_by_reason")} == {
        "read": 9, "kept": 3, "in_test": 2, "duplicates": 2, "rejected": 2,
        "rejected_by_reason": {"bad_encoding": 1, "missing_text": 1},
    }
    assert more["sources"] == sources
    assert more["words"] == sum(len(t.split()) for t in NEW_TEXTS[:3])
    assert more["examples"][0] == f"{sources[0]}/b.txt:1: not valid UTF-8 (byte 0xff at offset 0)"
    assert "extra.jsonl" in more["examples"][1] and "no 'text'" in more["examples"][1]
    records = [json.loads(line) for line in (tmp_path / "out" / "unlabelled.jsonl").read_text().splitlines()]
    added = records[4:]
    assert [r["text"] for r in added] == NEW_TEXTS[:3]
    assert not test_texts & {r["text"] for r in records}
    assert added[0]["meta"] == {"doc_id": "a", "file": f"{sources[0]}/a.txt", "line": 1}
    assert added[-1]["meta"] == {"pmid": "1"} and all(set(r) == {"text", "meta"} for r in added)
    assert json.loads((tmp_path / "out" / "heldout.json").read_text())["more_text"] == more


def test_split_heldout_refuses_more_text_with_nothing_usable(tmp_path):
    from biomed_spancat.training.uptrain import split_heldout

    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\n")
    with pytest.raises(AssistError, match=r"bad\.txt: no usable text \(1 record\(s\) read\): .*bad\.txt:1: not valid UTF-8"):
        split_heldout(str(_export(tmp_path / "heldout.jsonl")), tmp_path / "out", more_text=[str(bad)])
    with pytest.raises(AssistError, match=r"no such file"):
        split_heldout(str(_export(tmp_path / "heldout.jsonl")), tmp_path / "out", more_text=[str(tmp_path / "absent.txt")])


def test_split_heldout_script_says_what_the_more_text_gave(tmp_path):
    from typer.testing import CliRunner
    import typer

    from scripts.split_heldout import main

    app = typer.Typer()
    app.command()(main)
    sources = _more_text(tmp_path)
    args = [str(_export(tmp_path / "heldout.jsonl")), str(tmp_path / "out"), "--more-text", ",".join(sources)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())  # wasabi wraps long lines
    assert "more text: 3 of 9 texts" in out
    assert "more text: 2 text(s) equal to test texts left out" in out
    assert "more text: 2 text(s) already among the unlabelled texts left out" in out
    assert "more text: 2 record(s) rejected {'bad_encoding': 1, 'missing_text': 1}" in out
    assert "b.txt:1: not valid UTF-8" in out
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\n")
    result = CliRunner().invoke(app, args[:2] + ["--more-text", str(bad)])
    out = " ".join(result.output.split())
    assert result.exit_code == 1 and "split-heldout failed" in out and "no usable text" in out


def test_split_heldout_script_reads_the_users_export_beside_a_craft_mirror(tmp_path):
    """A CRAFT mirror where the project looks for one must not replace the
    user's held-out export; CRAFT's dataset names asked of it are refused."""
    from typer.testing import CliRunner
    import typer

    from scripts.split_heldout import main

    app = typer.Typer()
    app.command()(main)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    craft_task = make_task("Aspirin is a drug.", [("Aspirin", "CHEBI")], "craft-1", 0)
    for split in ("train", "dev", "test"):
        write_jsonl(mirror / f"craft_{split}.jsonl", [craft_task])
    export = str(_export(tmp_path / "heldout.jsonl"))
    result = CliRunner().invoke(app, [export, str(tmp_path / "out"), "--datasets", "", "--mirror", str(mirror)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "heldout.json").read_text())
    assert report["source"] == export and report["tasks"] == {"unlabelled": 4, "test": 4}
    result = CliRunner().invoke(app, [export, str(tmp_path / "out2"), "--datasets", "craft_test", "--mirror", str(mirror)])
    out = " ".join(result.output.split())
    assert result.exit_code == 1 and not (tmp_path / "out2" / "heldout.json").exists()
    assert (
        f"{export} is a single jsonl export, which holds no datasets, but datasets 'craft_test' were asked of it: "
        'name none (--datasets "", in weasel --vars.uptrain_heldout_datasets "")'
    ) in out


def test_merge_corpora_concatenates_and_names_missing_files(tmp_path):
    from biomed_spancat.training.uptrain import merge_corpora

    vocab = spacy.blank("en").vocab
    for name, docs in (("a.spacy", gold_docs(vocab)[:3]), ("b.spacy", gold_docs(vocab)[3:5])):
        DocBin(docs=docs).to_disk(tmp_path / name)
    counts = merge_corpora([tmp_path / "a.spacy", tmp_path / "b.spacy"], tmp_path / "ab.spacy")
    assert counts["total"] == 5
    merged = list(DocBin().from_disk(tmp_path / "ab.spacy").get_docs(vocab))
    assert [d.text for d in merged] == [d.text for d in gold_docs(vocab)[:5]]
    assert [len(d.spans["sc"]) for d in merged] == [len(d.spans["sc"]) for d in gold_docs(vocab)[:5]]
    with pytest.raises(DocBinError, match=r"missing\.spacy: no such file"):
        merge_corpora([tmp_path / "missing.spacy"], tmp_path / "x.spacy")


def _train_cnn(train: Path, dev: Path, out: Path, config: Path = CNN_CONFIG) -> Path:
    from spacy.cli.train import train as spacy_train

    overrides = {
        **TINY_CNN,
        "paths.train": str(train),
        "paths.dev": str(dev),
        "training.max_steps": 4,
        "training.eval_frequency": 2,
        "training.logger.progress_bar": False,
    }
    spacy_train(config, out, overrides=overrides, use_gpu=-1)
    return out / "model-best"


@pytest.mark.slow
def test_short_uptraining_run(tmp_path, teacher):
    """The workflow's steps on tiny data: split held-out text, CPU model on gold,
    pre-annotate into silver, CPU model on gold + silver, compare."""
    from biomed_spancat.training.suggester_fit import fit_suggester_config
    from biomed_spancat.training.uptrain import compare_uptrain, format_markdown, merge_corpora, split_heldout

    vocab = spacy.blank("en").vocab
    docs = gold_docs(vocab)
    DocBin(docs=docs[:6]).to_disk(tmp_path / "train.spacy")
    DocBin(docs=docs[6:]).to_disk(tmp_path / "dev.spacy")
    # e2 is the test half (seed 0); its PROTEIN span has a label no model was trained on
    extra = [("e1", [(t, []) for t in NEW_TEXTS[:3]]), ("e2", [(NEW_TEXTS[3], []), (NEW_TEXTS[4], [("BMP2", "PROTEIN")])])]
    split_heldout(str(_export(tmp_path / "heldout.jsonl", extra)), tmp_path / "heldout", share=0.5)
    # As the workflow does: the CPU model's suggester is learned from the gold spans, once, for both runs
    fit_suggester_config(tmp_path / "train.spacy", CNN_CONFIG, tmp_path / "cpu_config.cfg", "sc", 0.999)
    cpu_config = tmp_path / "cpu_config.cfg"
    cpu_gold = _train_cnn(tmp_path / "train.spacy", tmp_path / "dev.spacy", tmp_path / "cpu_gold", cpu_config)
    assert spacy.load(cpu_gold).config["components"]["spancat"]["suggester"]["@misc"] == "biomed.span_suggester.v1"
    report = preannotate(
        [str(tmp_path / "heldout" / "unlabelled.jsonl")], str(teacher), tmp_path / "review.jsonl", tmp_path / "silver.spacy",
        PreannotateOptions(Thresholds(0.5, 0.4), progress=False), report_path=tmp_path / "preannotate.json",
    )
    assert report["balanced"] and sum(report["routes"].values()) == report["read"] > 0
    counts = merge_corpora([tmp_path / "train.spacy", tmp_path / "silver.spacy"], tmp_path / "gold_silver.spacy")
    assert counts["total"] == 6 + report["routes"]["silver"]
    cpu_up = _train_cnn(tmp_path / "gold_silver.spacy", tmp_path / "dev.spacy", tmp_path / "cpu_up", cpu_config)
    result = compare_uptrain(
        [("transformer", "teacher", str(teacher)), ("cpu_gold", "gold", str(cpu_gold)), ("cpu_uptrained", "up", str(cpu_up))],
        {"dev": tmp_path / "dev.spacy", "test": tmp_path / "heldout" / "test.spacy"},
        preannotate_report=tmp_path / "preannotate.json",
    )
    test_docs = list(DocBin().from_disk(tmp_path / "heldout" / "test.spacy").get_docs(vocab))
    n_words = sum(len(d) for d in docs[6:]) + sum(len(d) for d in test_docs)
    for role in ("transformer", "cpu_gold", "cpu_uptrained"):
        model = result["models"][role]
        assert set(model["scores"]) == {"dev", "test"}
        assert all(s["f"] is None or 0.0 <= s["f"] <= 1.0 for s in model["scores"].values())
        assert model["speed"]["words"] == n_words
        runs = model["speed"]["runs"]
        assert len(runs) == 3 and model["speed"]["seconds"] == sorted(runs)[1]
        assert model["speed"]["words_per_second"] == round(n_words / sorted(runs)[1], 1)
    assert result["silver"]["routes"] == report["routes"]
    assert isinstance(result["target"]["met"], bool)
    table = format_markdown(result)
    assert table.splitlines()[0] == "| model | dev spans F | test spans F | CPU words/sec |"
    assert len([l for l in table.splitlines() if l.startswith("| ")]) == 4
    assert "Target met: **" in table
    for role in ("transformer", "cpu_gold", "cpu_uptrained"):
        assert result["models"][role]["scores"]["test"]["labels_unknown"] == ["PROTEIN"]
        assert result["models"][role]["scores"]["dev"]["labels_unknown"] == []
    label = result["models"]["cpu_gold"]["label"]
    assert f"test data: PROTEIN unknown to {label} (not trained on, never found)." in table.splitlines()


def test_measure_pipeline_needs_a_timed_pass():
    from biomed_spancat.training.uptrain import measure_pipeline

    with pytest.raises(AssistError, match="repeats must be at least 1, got 0"):
        measure_pipeline(spacy.blank("en"), {}, repeats=0)


def test_measure_pipeline_reports_each_set_and_pass():
    from biomed_spancat.training.uptrain import measure_pipeline
    from biomed_spancat.util import pct

    nlp = spacy.blank("en")
    docs = gold_docs(nlp.vocab)[:2]
    lines = []
    result = measure_pipeline(nlp, {"dev": docs}, repeats=2, log=lines.append)
    words = sum(len(d) for d in docs)
    assert lines[0] == f"dev: 2 docs scored, spans F {pct(result['scores']['dev']['f'])}"
    assert [line.split(" in ")[0] for line in lines[1:]] == [f"timed pass {i}/2: {words} words" for i in (1, 2)]
    # without a log it stays silent and measures the same way
    assert len(measure_pipeline(nlp, {"dev": docs}, repeats=2)["speed"]["runs"]) == 2



def test_measure_pipeline_names_the_gold_labels_a_model_never_learned(teacher):
    from biomed_spancat.training.uptrain import measure_pipeline
    from spacy.tokens import Span

    nlp = spacy.load(teacher)  # trained on GENE and CELL
    docs = gold_docs(nlp.vocab)[:2]
    docs[1].spans["sc"] = list(docs[1].spans["sc"]) + [Span(docs[1], 0, 1, "DRUG")]
    result = measure_pipeline(nlp, {"dev": docs[:1], "test": docs}, repeats=1)
    assert result["scores"]["dev"]["labels_unknown"] == []
    assert result["scores"]["test"]["labels_unknown"] == ["DRUG"]
    assert measure_pipeline(spacy.blank("en"), {"test": docs}, repeats=1)["scores"]["test"]["labels_unknown"] == []
