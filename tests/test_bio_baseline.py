"""Baseline 2, BIO token classification: flattening, BIO round trips, windows,
and a tiny BERT trained for a few steps, scored against the unflattened gold."""

import json
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.tokens import Doc, DocBin, Span

from biomed_spancat.evaluation.bio_baseline import evaluate_bio, flattening_recall, make_windows, predict_bio, train_bio
from biomed_spancat.evaluation.flatten import flatten_longest, iob_to_spans, spans_to_iob
from biomed_spancat.evaluation.scoring import METRICS_SCHEMA

ROOT = Path(__file__).resolve().parent.parent
NLP = spacy.blank("en")

TRAIN = [
    (
        "BMP2 and BMP4 regulate limb patterning and skeletogenesis in the mouse embryo .",
        [(0, 1, "PR"), (2, 3, "PR"), (4, 5, "UBERON"), (4, 6, "GO_BP"), (10, 11, "NCBITaxon")],
    ),
    (
        "Mutations in the Brca1 gene cause breast cancer in humans and mice .",
        [(3, 4, "PR"), (3, 5, "SO"), (6, 8, "MONDO"), (9, 10, "NCBITaxon"), (11, 12, "NCBITaxon")],
    ),
    ("Expression of Shh was detected in the apical ectodermal ridge .", [(2, 3, "PR"), (7, 10, "UBERON")]),
    (
        "Retinal ganglion cells project axons to the optic nerve .",
        [(0, 3, "CL"), (4, 5, "GO_CC"), (7, 9, "UBERON")],
    ),
]


def docs_of(items):
    out = []
    for text, spans in items:
        doc = Doc(NLP.vocab, words=text.split())
        doc.spans["sc"] = [Span(doc, s, e, label=lab) for s, e, lab in spans]
        out.append(doc)
    return out


# --- flattening and BIO ---


# The baseline flattens with the project's one codec (biomed_spancat.evaluation.flatten),
# the export's `longest` policy; these pin what the baseline relies on.


def test_flatten_longest_first():
    kept, dropped = flatten_longest([(1, 2, "B"), (0, 3, "A"), (2, 5, "C")])
    # (0, 3) and (2, 5) are both 3 long: the earlier start wins; (1, 2) nests in it.
    assert kept == [(0, 3, "A")]
    assert dropped == [(1, 2, "B"), (2, 5, "C")]  # in annotation order


def test_flatten_same_extent_keeps_first_annotated_and_adjacent_spans_survive():
    kept, dropped = flatten_longest([(0, 2, "PR"), (0, 2, "CHEBI"), (2, 3, "PR"), (2, 3, "PR")])
    assert kept == [(0, 2, "PR"), (2, 3, "PR")]
    assert dropped == [(0, 2, "CHEBI")]


def test_spans_to_iob_by_hand():
    kept, dropped = flatten_longest([(0, 2, "A"), (1, 2, "B"), (3, 4, "B"), (4, 6, "B")])
    assert spans_to_iob(7, kept) == ["B-A", "I-A", "O", "B-B", "B-B", "I-B", "O"]
    assert dropped == [(1, 2, "B")]
    with pytest.raises(ValueError, match=r"span \(5, 9, A\) is outside a doc of 7 tokens"):
        spans_to_iob(7, [(5, 9, "A")])


def test_iob_to_spans_lenient_like_conlleval():
    tags = ["B-A", "I-A", "O", "I-B", "I-B", "B-B", "I-A", "I-A"]
    assert iob_to_spans(tags) == [(0, 2, "A"), (3, 5, "B"), (5, 6, "B"), (6, 8, "A")]
    assert iob_to_spans([]) == []
    with pytest.raises(ValueError, match=r"token 1: 'X' is not an IOB tag"):
        iob_to_spans(["O", "X"])


@pytest.mark.parametrize(
    "spans",
    [[], [(0, 1, "A")], [(0, 1, "A"), (1, 2, "A")], [(0, 3, "A"), (3, 4, "B"), (5, 8, "C")], [(7, 8, "A")]],
)
def test_bio_round_trip_without_overlaps(spans):
    kept, dropped = flatten_longest(spans)
    assert dropped == [] and iob_to_spans(spans_to_iob(8, kept)) == sorted(spans)


@pytest.mark.parametrize(
    "n,window,stride,expected",
    [
        (10, 4, 3, [(0, 4), (3, 7), (6, 10)]),
        (10, 5, 5, [(0, 5), (5, 10)]),
        (3, 4, 4, [(0, 3)]),
        (0, 4, 2, []),
    ],
)
def test_make_windows(n, window, stride, expected):
    assert make_windows(n, window, stride) == expected
    covered = {i for s, e in expected for i in range(s, e)}
    assert covered == set(range(n))


def test_make_windows_bad_input():
    with pytest.raises(ValueError, match=r"1 <= stride <= window \(got window 4, stride 5\)"):
        make_windows(10, 4, 5)


def test_flattening_recall_by_hand():
    r = flattening_recall(docs_of(TRAIN))
    # Dropped: (4, 5) UBERON nested in (4, 6) GO_BP; (3, 4) PR nested in (3, 5) SO.
    assert (r["covered"], r["gold_spans"], r["dropped"]) == (13, 15, 2)
    assert r["recall"] == pytest.approx(13 / 15)
    assert r["per_label"]["PR"] == {"recall": 0.75, "covered": 3, "gold_spans": 4}
    assert r["per_label"]["UBERON"]["covered"] == 2


# --- training and evaluation on a tiny BERT ---


@pytest.fixture(scope="module")
def tiny_bio(tiny_bert, tmp_path_factory):
    out = tmp_path_factory.mktemp("bio") / "model"
    record = train_bio(
        docs_of(TRAIN),
        tiny_bert,
        out,
        "sc",
        max_steps=80,
        batch_size=4,
        learn_rate=3e-3,
        window=6,
        seed=0,
        progress=False,
    )
    return out, record


def test_train_bio_record(tiny_bio):
    out, record = tiny_bio
    assert json.loads((out / "bio.json").read_text()) == record
    assert record["labels"] == ["CL", "GO_BP", "GO_CC", "MONDO", "NCBITaxon", "PR", "SO", "UBERON"]
    assert record["tags"][0] == "O" and len(record["tags"]) == 17
    t = record["training"]
    assert t["steps"] == 80 and t["training_seconds"] > 0
    assert t["epochs"] == pytest.approx(32.0)  # 80 steps x 4 windows / 10 windows
    assert t["flattening"] == {"gold_spans": 15, "dropped": 2}
    # window 6: 13 + 13 + 11 + 10 words -> 3 + 3 + 2 + 2 windows.
    assert t["windows"] == 10


def test_evaluate_bio_against_unflattened_gold(tiny_bio):
    out, _ = tiny_bio
    gold = docs_of(TRAIN)
    result, preds = evaluate_bio(out, gold, data="train", progress=False)
    m = result.metrics
    assert m["schema"] == METRICS_SCHEMA
    assert m["suggester"] is None and m["flattening"]["recall"] == pytest.approx(13 / 15)
    assert m["training"]["steps"] == 80
    assert m["data"]["gold_spans"] == 15  # scored against every gold span, overlaps included
    for doc in preds:
        spans = [(s.start, s.end) for s in doc.spans["sc"]]
        # BIO cannot overlap: no two predicted spans share a token.
        assert not any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1 :])
        assert len(doc.spans["sc"].attrs["scores"]) == len(spans)
    # Overfit on its own training data, through windows of 6 words, it finds most spans...
    assert m["spans"]["f"] > 0.6
    # ...but never more than flattening leaves: recall is capped by the ceiling.
    assert m["spans"]["r"] <= m["flattening"]["recall"] + 1e-9
    assert m["groups"]["overlapping"]["r"] <= 0.5
    assert m["speed"]["words"] == sum(len(d) for d in gold)


def test_bio_cpu_precision_is_recorded_and_bfloat16_predicts_like_float32(tiny_bio, tmp_path, tiny_bert):
    """The baseline gets the pipeline's CPU precision (bfloat16 autocast where the CPU
    has it), records it, and its bfloat16 predictions match float32's."""
    from biomed_spancat.pipeline.architecture import resolve_cpu_precision

    out, record = tiny_bio
    assert record["training"]["cpu_precision"] == resolve_cpu_precision("auto")
    gold = docs_of(TRAIN)
    fp32, _ = predict_bio(out, gold, cpu_precision="float32", progress=False)
    bf16, _ = predict_bio(out, gold, cpu_precision="bfloat16", progress=False)
    for a, b in zip(fp32, bf16):
        assert [(s.start, s.end, s.label_) for s in a.spans["sc"]] == [(s.start, s.end, s.label_) for s in b.spans["sc"]]
        assert numpy.allclose(a.spans["sc"].attrs["scores"], b.spans["sc"].attrs["scores"], atol=0.05)
    result, _ = evaluate_bio(out, gold, cpu_precision="float32", progress=False)
    assert result.metrics["model"]["cpu_precision"] == "float32"
    with pytest.raises(ValueError, match="cpu_precision must be one of float32, bfloat16, auto, got 'fp16'"):
        train_bio(docs_of(TRAIN), tiny_bert, tmp_path / "m", max_steps=1, cpu_precision="fp16", progress=False)


def test_train_bio_steps_from_epochs(tmp_path, tiny_bert):
    # AutoTrain counts epochs: 0.5 epoch of 10 windows in batches of 4 is 2 steps.
    record = train_bio(
        docs_of(TRAIN),
        tiny_bert,
        tmp_path / "m",
        max_steps=0,
        epochs=0.5,
        batch_size=4,
        window=6,
        progress=False,
    )
    assert record["training"]["steps"] == 2
    assert record["training"]["epochs"] == pytest.approx(0.8)
    with pytest.raises(ValueError, match=r"max_steps > 0 \(0\) or epochs > 0 \(0"):
        train_bio(docs_of(TRAIN), tiny_bert, tmp_path / "n", max_steps=0, epochs=0, progress=False)


def test_bio_errors_name_the_problem(tmp_path, tiny_bert):
    with pytest.raises(ValueError, match="not a BIO baseline model \\(no bio.json"):
        evaluate_bio(tmp_path, docs_of(TRAIN), progress=False)
    with pytest.raises(ValueError, match=r"no gold spans under doc.spans\['sc'\]"):
        train_bio([Doc(NLP.vocab, words=["a"])], tiny_bert, tmp_path / "m", max_steps=1, progress=False)


def test_bio_clis(tiny_bio, tmp_path, monkeypatch):
    import importlib

    import typer
    from typer.testing import CliRunner

    monkeypatch.syspath_prepend(str(ROOT))
    out, _ = tiny_bio
    data = tmp_path / "dev.spacy"
    DocBin(docs=docs_of(TRAIN)).to_disk(data)
    app = typer.Typer(add_completion=False)
    app.command()(importlib.import_module("scripts.evaluate_bio").main)
    metrics, report = tmp_path / "bio.json", tmp_path / "bio.html"
    r = CliRunner().invoke(app, [str(out), str(data), "--output", str(metrics), "--report", str(report)])
    assert r.exit_code == 0, r.output
    assert json.loads(metrics.read_text())["flattening"]["dropped"] == 2
    assert "flattening keeps 86.7" in " ".join(r.output.split())
    assert '<table class="ceiling">' in report.read_text()
