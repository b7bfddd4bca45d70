"""export-hf: flattening policies, the loss report (numbers computed by hand),
the lossless per-label columns and span lists (round trips), wordpieces."""
import json
from pathlib import Path

import pytest
import spacy
from spacy.tokens import Doc, DocBin, Span
from spacy.util import registry

from biomed_spancat.evaluation.export_hf import (
    align_wordpieces,
    boundaries_inside_wordpieces,
    export_hf,
    label_column,
    record_to_spans,
)
from biomed_spancat.util import DocBinError
from biomed_spancat.evaluation.flatten import (
    ExportError,
    flatten_by_priority,
    flatten_first,
    flatten_longest,
    iob_to_spans,
    make_flattener,
    spans_to_iob,
)

NLP = spacy.blank("en")

# Doc A (train), tokens 0..9, spans in annotation order:
#   s1 (0,2,PR)  s2 (1,4,CHEBI)  s3 (3,4,PR)  s4 (6,7,GO)  s5 (6,7,PR)  s6 (8,9,CHEBI)  s7 = s1 again
# s1..s5 overlap something; s6 overlaps nothing; s7 is a repeat (counted once).
WORDS_A = ["BMP2", "and", "BMP4", "regulate", "limb", "patterning", "in", "the", "mouse", "embryo"]
SPANS_A = [(0, 2, "PR"), (1, 4, "CHEBI"), (3, 4, "PR"), (6, 7, "GO"), (6, 7, "PR"), (8, 9, "CHEBI"), (0, 2, "PR")]
# Doc B (dev), tokens 0..5: t1 (0,3,PR) t2 (1,2,PR) t3 (1,2,CHEBI): a same-label overlap (t1, t2).
WORDS_B = ["Mutations", "in", "Brca1", "cause", "breast", "cancer"]
SPANS_B = [(0, 3, "PR"), (1, 2, "PR"), (1, 2, "CHEBI")]
# Doc C (train): no spans at all.
WORDS_C = ["The", "protein", "binds", "DNA", "."]


def make_doc(words, spans, key="sc"):
    doc = Doc(NLP.vocab, words=words)
    doc.spans[key] = [Span(doc, s, e, label) for s, e, label in spans]
    return doc


@pytest.fixture
def corpus(tmp_path):
    train, dev = tmp_path / "train.spacy", tmp_path / "dev.spacy"
    DocBin(docs=[make_doc(WORDS_A, SPANS_A), make_doc(WORDS_C, [])]).to_disk(train)
    DocBin(docs=[make_doc(WORDS_B, SPANS_B)]).to_disk(dev)
    return {"train": train, "dev": dev}


# --- policies ------------------------------------------------------------------


@pytest.mark.parametrize(
    "policy,priority,kept,dropped",
    [
        # s2 (3 tokens) wins, then s4 before s5 (same offsets: first annotated)
        ("longest", (), [(1, 4, "CHEBI"), (6, 7, "GO"), (8, 9, "CHEBI")],
         [(0, 2, "PR"), (3, 4, "PR"), (6, 7, "PR")]),
        ("first", (), [(0, 2, "PR"), (3, 4, "PR"), (6, 7, "GO"), (8, 9, "CHEBI")],
         [(1, 4, "CHEBI"), (6, 7, "PR")]),
        ("priority", ("PR",), [(0, 2, "PR"), (3, 4, "PR"), (6, 7, "PR"), (8, 9, "CHEBI")],
         [(1, 4, "CHEBI"), (6, 7, "GO")]),
        # GO ranks above CHEBI; PR is unlisted, so it comes last
        ("priority", ("GO", "CHEBI"), [(1, 4, "CHEBI"), (6, 7, "GO"), (8, 9, "CHEBI")],
         [(0, 2, "PR"), (3, 4, "PR"), (6, 7, "PR")]),
    ],
)
def test_policies_keep_and_drop(policy, priority, kept, dropped):
    flattener = make_flattener(policy, priority)
    got_kept, got_dropped = flattener(SPANS_A)
    assert got_kept == kept
    assert got_dropped == dropped
    # nothing kept overlaps, and every unique span is either kept or dropped once
    assert len(got_kept) + len(got_dropped) == len(set(SPANS_A))
    for a, b in zip(got_kept, got_kept[1:]):
        assert a[1] <= b[0]


def test_policies_by_registry_name():
    assert registry.misc.get("biomed.flatten_longest.v1")() is flatten_longest
    assert registry.misc.get("biomed.flatten_first.v1")() is flatten_first
    by_priority = registry.misc.get("biomed.flatten_priority.v1")(["PR"])
    assert by_priority(SPANS_A) == flatten_by_priority(SPANS_A, ["PR"])


def test_non_overlapping_spans_are_never_dropped():
    spans = [(0, 1, "A"), (1, 3, "B"), (5, 6, "A")]
    for policy, prio in (("longest", ()), ("first", ()), ("priority", ("B",))):
        kept, dropped = make_flattener(policy, prio)(spans)
        assert kept == spans and dropped == []
    assert flatten_longest([]) == ([], [])


def test_policy_errors():
    with pytest.raises(ExportError, match="unknown flattening policy 'shortest'"):
        make_flattener("shortest")
    with pytest.raises(ExportError, match="needs a label order"):
        make_flattener("priority", [])


# --- IOB -------------------------------------------------------------------------


def test_iob_encode_decode():
    spans = [(0, 2, "PR"), (3, 4, "CHEBI"), (4, 6, "CHEBI")]
    tags = spans_to_iob(7, spans)
    assert tags == ["B-PR", "I-PR", "O", "B-CHEBI", "B-CHEBI", "I-CHEBI", "O"]
    assert iob_to_spans(tags) == spans
    # hand-written tags: a stray I- starts a span, as seqeval reads it
    assert iob_to_spans(["O", "I-PR", "I-PR", "B-GO"]) == [(1, 3, "PR"), (3, 4, "GO")]
    assert iob_to_spans(["I-PR", "I-GO"]) == [(0, 1, "PR"), (1, 2, "GO")]
    with pytest.raises(ValueError, match="overlaps another"):
        spans_to_iob(5, [(0, 2, "PR"), (1, 3, "GO")])


# --- the loss report, computed by hand ----------------------------------------------


def test_loss_report_numbers_by_hand(corpus, tmp_path):
    report = export_hf(corpus, tmp_path / "out", policy="longest", progress=False)
    train, dev, total = report["splits"]["train"], report["splits"]["validation"], report["total"]
    # train: 6 unique spans (s7 repeats s1), 5 overlap something; longest drops s1, s3, s5 (all PR)
    assert train["docs"] == 2 and train["spans"] == 6 and train["duplicates_collapsed"] == 1
    assert train["overlapping_spans"] == 5
    assert train["ner_tags"] == {"kept": 3, "dropped": 3, "share_overlapping_lost": 0.6, "share_spans_lost": 0.5}
    assert train["per_label"]["PR"] == {
        "spans": 3, "overlapping": 3, "dropped": 3, "kept": 0, "share_lost": 1.0, "label_column_dropped": 0
    }
    assert train["per_label"]["CHEBI"]["spans"] == 2 and train["per_label"]["CHEBI"]["overlapping"] == 1
    assert train["per_label"]["CHEBI"]["dropped"] == 0 and train["per_label"]["GO"]["dropped"] == 0
    # train has no same-label overlap: the per-label columns lose nothing
    assert train["label_columns"] == {"same_label_overlapping": 0, "dropped": 0, "share_spans_lost": 0.0}
    # dev: t1 (3 tokens) beats t2 and t3; in the PR column t1 beats t2
    assert dev["spans"] == 3 and dev["overlapping_spans"] == 3
    assert dev["ner_tags"]["dropped"] == 2 and dev["ner_tags"]["share_overlapping_lost"] == round(2 / 3, 6)
    assert dev["label_columns"]["same_label_overlapping"] == 2 and dev["label_columns"]["dropped"] == 1
    assert dev["per_label"]["PR"]["label_column_dropped"] == 1
    # total: 9 spans, 8 overlapping, 5 dropped
    assert total["spans"] == 9 and total["overlapping_spans"] == 8
    assert total["ner_tags"]["dropped"] == 5 and total["ner_tags"]["share_overlapping_lost"] == 0.625
    assert total["per_label"]["PR"]["dropped"] == 4 and total["per_label"]["CHEBI"]["dropped"] == 1
    # the report is saved as JSON, identical to what was returned
    saved = json.loads((tmp_path / "out" / "loss_report.json").read_text())
    assert saved == json.loads(json.dumps(report))


def test_loss_report_depends_on_policy(corpus, tmp_path):
    first = export_hf(corpus, tmp_path / "first", policy="first", progress=False)["splits"]["train"]
    assert first["ner_tags"]["dropped"] == 2 and first["ner_tags"]["share_overlapping_lost"] == 0.4
    assert first["per_label"]["CHEBI"]["dropped"] == 1 and first["per_label"]["PR"]["dropped"] == 1
    prio = export_hf(corpus, tmp_path / "prio", policy="priority", priority=["PR"], progress=False)
    train = prio["splits"]["train"]
    assert train["per_label"]["PR"]["dropped"] == 0
    assert train["per_label"]["CHEBI"]["dropped"] == 1 and train["per_label"]["GO"]["dropped"] == 1
    assert prio["priority"] == ["PR"]


# --- the dataset ------------------------------------------------------------------


def test_dataset_columns_classlabels_and_splits(corpus, tmp_path):
    from datasets import ClassLabel, load_from_disk

    out = tmp_path / "out"
    export_hf(corpus, out, progress=False)
    ds = load_from_disk(str(out / "dataset"))
    assert sorted(ds) == ["train", "validation"]
    assert ds["train"].num_rows == 2 and ds["validation"].num_rows == 1
    tags = ds["train"].features["ner_tags"].feature
    assert isinstance(tags, ClassLabel)
    assert tags.names == ["O", "B-CHEBI", "I-CHEBI", "B-GO", "I-GO", "B-PR", "I-PR"]
    assert ds["train"].features[label_column("PR")].feature.names == ["O", "B-PR", "I-PR"]
    row = ds["train"][0]
    assert row["tokens"] == WORDS_A
    assert [tags.int2str(i) for i in row["ner_tags"]] == spans_to_iob(10, flatten_longest(SPANS_A)[0])
    label_map = json.loads((out / "label_map.json").read_text())
    assert label_map["tags"] == tags.names
    assert label_map["label2id"]["B-PR"] == 5 and label_map["id2label"]["5"] == "B-PR"
    assert label_map["autotrain"] == {"tokens_column": "tokens", "tags_column": "ner_tags"}
    # JSONL carries tag names (AutoTrain's local upload shape), one file per split
    lines = (out / "jsonl" / "validation.jsonl").read_text().splitlines()
    assert len(lines) == 1
    rec = json.loads(lines[0])
    assert rec["tokens"] == WORDS_B and rec["ner_tags"] == ["B-PR", "I-PR", "I-PR", "O", "O", "O"]


def test_parquet_keeps_classlabels(corpus, tmp_path):
    from datasets import load_dataset

    out = tmp_path / "out"
    export_hf(corpus, out, file_format="parquet", progress=False)
    files = {s: str(out / "parquet" / f"{s}.parquet") for s in ("train", "validation")}
    ds = load_dataset("parquet", data_files=files)
    assert ds["train"].features["ner_tags"].feature.names[:3] == ["O", "B-CHEBI", "I-CHEBI"]
    assert ds["validation"][0]["tokens"] == WORDS_B


def test_label_columns_round_trip(corpus, tmp_path):
    """Per-label columns back to spans give the original spans wherever no two
    spans of one label overlap; where they do, only that label differs."""
    out = tmp_path / "out"
    export_hf(corpus, out, progress=False)
    labels = json.loads((out / "label_map.json").read_text())["labels"]
    train = [json.loads(l) for l in (out / "jsonl" / "train.jsonl").read_text().splitlines()]
    dev = [json.loads(l) for l in (out / "jsonl" / "validation.jsonl").read_text().splitlines()]
    assert record_to_spans(train[0], labels) == sorted(set(SPANS_A))  # overlaps across labels survive
    assert record_to_spans(train[1], labels) == []
    # doc B: PR's t1 and t2 overlap; the PR column keeps t1 (longest), CHEBI is intact
    assert record_to_spans(dev[0], labels) == sorted([(0, 3, "PR"), (1, 2, "CHEBI")])
    assert iob_to_spans(dev[0][label_column("CHEBI")]) == [(1, 2, "CHEBI")]


def test_span_list_round_trip(corpus, tmp_path):
    """The `spans` column (character offsets, Argilla's shape) is lossless."""
    out = tmp_path / "out"
    export_hf(corpus, out, progress=False)
    for split, words, spans in (("train", WORDS_A, SPANS_A), ("validation", WORDS_B, SPANS_B)):
        rec = json.loads((out / "jsonl" / f"{split}.jsonl").read_text().splitlines()[0])
        assert set(rec["spans"][0]) == {"start", "end", "label"}
        doc = NLP.make_doc(rec["text"])
        assert [t.text for t in doc] == words
        back = [doc.char_span(s["start"], s["end"], s["label"]) for s in rec["spans"]]
        assert [(s.start, s.end, s.label_) for s in back] == list(dict.fromkeys(spans))


# --- wordpieces ------------------------------------------------------------------


def test_wordpiece_labels_first_and_all(tiny_bert):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_bert))
    words = ["BMP2", "regulates", "patterned", "in", "the", "embryos"]
    tags = ["B-PR", "O", "B-GO", "O", "O", "B-UBERON"]
    names = ["O", "B-GO", "I-GO", "B-UBERON", "I-UBERON", "B-PR", "I-PR"]
    ids = [names.index(t) for t in tags]
    b_to_i = {1: 2, 3: 4, 5: 6}
    word_ids = tok(words, is_split_into_words=True).word_ids()
    multi = {w for w in set(word_ids) if w is not None and word_ids.count(w) > 1}
    assert multi, "the test needs a word split into several wordpieces"
    first, lost = align_wordpieces(tok, words, ids, "first", None, b_to_i)
    every, _ = align_wordpieces(tok, words, ids, "all", None, b_to_i)
    assert lost == 0 and first["input_ids"] == every["input_ids"]
    assert len(first["labels"]) == len(first["input_ids"]) == len(first["attention_mask"])
    seen = set()
    for pos, w in enumerate(word_ids):
        if w is None:  # [CLS], [SEP]
            assert first["labels"][pos] == every["labels"][pos] == -100
        elif w not in seen:
            assert first["labels"][pos] == every["labels"][pos] == ids[w]
            seen.add(w)
        else:  # a continuation piece: ignored, or B- turned into I-
            assert first["labels"][pos] == -100
            assert every["labels"][pos] == b_to_i.get(ids[w], ids[w])
    # first: exactly one label per word
    assert sum(l != -100 for l in first["labels"]) == len(words)
    with pytest.raises(ExportError, match="unknown subword mode 'last'"):
        align_wordpieces(tok, words, ids, "last", None)


def test_wordpiece_truncation_is_counted(tiny_bert):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_bert))
    words = ["the", "mouse"] * 10
    row, lost = align_wordpieces(tok, words, [0] * 20, "first", 8)
    assert len(row["input_ids"]) == 8
    assert lost == 20 - 6  # 8 pieces = [CLS] + 6 one-piece words + [SEP]


class StubTokenizer:
    """Splits on spaces, then into pieces of at most 4 characters."""

    def __call__(self, text, add_special_tokens=False, return_offsets_mapping=False):
        offsets, start = [], 0
        for word in text.split(" "):
            for i in range(0, len(word), 4):
                offsets.append((start + i, start + min(i + 4, len(word))))
            start += len(word) + 1
        return {"offset_mapping": offsets}


def test_boundaries_inside_wordpieces_exact():
    text = "abcdefgh ij"  # pieces: abcd efgh ij
    spans = [(0, 4, "A"), (0, 2, "B"), (5, 8, "C"), (4, 8, "D"), (9, 11, "E"), (0, 11, "F")]
    assert boundaries_inside_wordpieces(StubTokenizer(), text, spans) == [(0, 2, "B"), (5, 8, "C")]


def test_export_with_tokenizer_reports_cut_spans(tiny_bert, tmp_path):
    # "ΩΩΩΩ" is out of the tiny vocab: one [UNK] piece over both spaCy tokens
    doc = Doc(NLP.vocab, words=["BMP2", "binds", "ΩΩ", "ΩΩ", "."], spaces=[True, True, False, False, False])
    doc.spans["sc"] = [Span(doc, 0, 1, "PR"), Span(doc, 2, 3, "CHEBI"), Span(doc, 2, 4, "PR")]
    train = tmp_path / "train.spacy"
    DocBin(docs=[doc]).to_disk(train)
    report = export_hf({"train": train, "dev": train}, tmp_path / "out", tokenizer_path=tiny_bert,
                       subwords="first", progress=False)
    wp = report["wordpieces"]["splits"]["train"]
    assert wp["spans"] == 3 and wp["boundary_inside_wordpiece"] == 1
    assert wp["per_label"] == {"CHEBI": 1}
    assert wp["examples"][0]["text"] == "ΩΩ"
    assert wp["truncated_docs"] == 0
    from datasets import load_from_disk

    row = load_from_disk(str(tmp_path / "out" / "dataset"))["train"][0]
    assert row["labels"][0] == -100 and len(row["labels"]) == len(row["input_ids"])


def test_export_from_sources_goes_through_convert(tmp_path):
    """Any source convert reads exports in one call; the conversion's report
    and rejections are kept beside the export."""
    from biomed_spancat.evaluation.export_hf import export_from_sources

    data = Path(__file__).parent / "data" / "bridges"
    out = tmp_path / "out"
    report = export_from_sources(
        [str(data / "labelstudio_export.json")], [str(data / "argilla_flat.jsonl")], out,
        policy="first", progress=False,
    )
    conv = report["convert"]
    # the Label Studio export's one prediction is read and counted (never an annotation)
    assert (conv["read"], conv["kept"], conv["rejected"], conv["merged"], conv["duplicates"]) == (17, 7, 7, 3, 0)
    assert (out / "corpus" / "rejections.jsonl").exists() and (out / "corpus" / "report.json").exists()
    total = report["total"]
    # the overlaps: Glut1 (PR and CHEBI, same extent) and Sonic hedgehog (PR) inside a GO_BP span
    assert total["spans"] == 19 and total["overlapping_spans"] == 4
    assert total["ner_tags"]["dropped"] == 2 and total["ner_tags"]["share_overlapping_lost"] == 0.5
    assert json.loads((out / "loss_report.json").read_text())["convert"]["read"] == 17
    with pytest.raises(ExportError, match="convert: .*nope.jsonl: no such file"):
        export_from_sources([str(tmp_path / "nope.jsonl")], [], tmp_path / "o2", progress=False)


def test_exported_columns_train_a_token_classifier(corpus, tiny_bert, tmp_path):
    """The wordpiece columns feed transformers' token classification as they are."""
    import torch
    from datasets import load_from_disk
    from transformers import AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification

    out = tmp_path / "out"
    export_hf(corpus, out, tokenizer_path=tiny_bert, progress=False)
    ds = load_from_disk(str(out / "dataset"))["train"]
    names = ds.features["ner_tags"].feature.names
    model = AutoModelForTokenClassification.from_pretrained(
        str(tiny_bert), num_labels=len(names), id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)}
    )
    collate = DataCollatorForTokenClassification(AutoTokenizer.from_pretrained(str(tiny_bert)))
    batch = collate([{k: row[k] for k in ("input_ids", "attention_mask", "labels")} for row in ds])
    torch.manual_seed(0)
    loss = model(**batch).loss
    loss.backward()
    assert torch.isfinite(loss) and batch["labels"].shape == batch["input_ids"].shape


# --- bad input -------------------------------------------------------------------


def test_bad_input_messages(corpus, tmp_path, tiny_bert):
    missing = tmp_path / "nope.spacy"
    with pytest.raises(DocBinError, match=r"nope\.spacy: no such file"):
        export_hf({"train": missing}, tmp_path / "o", progress=False)
    garbage = tmp_path / "garbage.spacy"
    garbage.write_bytes(b"not a docbin")
    with pytest.raises(DocBinError, match=r"garbage\.spacy: not a readable \.spacy DocBin"):
        export_hf({"train": garbage}, tmp_path / "o", progress=False)
    with pytest.raises(ExportError, match=r"train\.spacy: no doc has spans under key 'ents' \(keys found: sc\)"):
        export_hf(corpus, tmp_path / "o", spans_key="ents", progress=False)
    with pytest.raises(ExportError, match="--priority names labels not in the corpus: FOO"):
        export_hf(corpus, tmp_path / "o", policy="priority", priority=["PR", "FOO"], progress=False)
    with pytest.raises(ExportError, match="needs a label order"):
        export_hf(corpus, tmp_path / "o", policy="priority", progress=False)
    with pytest.raises(ExportError, match="unknown format 'csv'"):
        export_hf(corpus, tmp_path / "o", file_format="csv", progress=False)
    with pytest.raises(ExportError, match="tokenizer must be a local directory"):
        export_hf(corpus, tmp_path / "o", tokenizer_path=tmp_path / "no_tok", progress=False)
    empty_dir = tmp_path / "empty_tok"
    empty_dir.mkdir()
    with pytest.raises(ExportError, match="empty_tok: cannot load a tokenizer"):
        export_hf(corpus, tmp_path / "o", tokenizer_path=empty_dir, progress=False)


def test_cli(corpus, tmp_path, project_root, monkeypatch):
    import typer
    from typer.testing import CliRunner

    monkeypatch.syspath_prepend(str(project_root))
    from scripts.export_hf import main

    app = typer.Typer()
    app.command()(main)
    out = tmp_path / "cli"
    result = CliRunner().invoke(app, [str(corpus["train"]), str(corpus["dev"]), str(out), "--policy", "first"])
    assert result.exit_code == 0, result.output
    assert "drops 4 of 8 overlapping spans (50.0%" in result.output
    assert (out / "loss_report.json").exists() and (out / "dataset" / "dataset_dict.json").exists()
    bad = CliRunner().invoke(app, [str(corpus["train"]), str(corpus["dev"]), str(out), "--policy", "widest"])
    assert bad.exit_code == 1
    assert "unknown flattening policy 'widest'" in bad.output
