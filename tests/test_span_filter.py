"""The span filter: a threshold per label and a policy for same-label overlaps,
tuned on dev with the global threshold (`tune-threshold`) and saved as a
`biomed_span_filter_v1` component after spancat."""

import json
import subprocess
import sys

import numpy
import pytest
import spacy
from spacy.tokens import Doc, Span

from biomed_spancat.evaluation.evaluate import evaluate_pipeline
from biomed_spancat.evaluation.threshold import (
    choose_label_thresholds,
    label_counts,
    predict_scores,
    save_with_filter,
    tune_span_filter,
    tune_threshold,
)
from biomed_spancat.pipeline.display import SpanFilter, filter_spans
from biomed_spancat.util import read_docs

from conftest import ROOT


def _doc(nlp, spans, scores=None):
    doc = Doc(nlp.vocab, words="a b c d e f".split())
    doc.spans["sc"] = [Span(doc, s, e, label=lab) for s, e, lab in spans]
    if scores is not None:
        doc.spans["sc"].attrs["scores"] = numpy.asarray(scores, dtype="float32")
    return doc


def test_filter_spans_by_label_threshold_and_same_label_policy():
    nlp = spacy.blank("en")
    doc = _doc(nlp, [(0, 2, "X"), (1, 3, "X"), (0, 2, "Y"), (3, 5, "X"), (4, 6, "Y")])
    spans, scores = list(doc.spans["sc"]), [0.5, 0.9, 0.3, 0.6, 0.35]
    kept, kept_scores = filter_spans(spans, scores, {"Y": 0.34}, "keep")
    assert [(s.start, s.end, s.label_) for s in kept] == [(0, 2, "X"), (1, 3, "X"), (3, 5, "X"), (4, 6, "Y")]
    assert kept_scores == pytest.approx([0.5, 0.9, 0.6, 0.35])
    # "best": (0, 2, X) shares token 1 with the higher scored (1, 3, X); different labels never compete
    kept, _ = filter_spans(spans, scores, None, "best")
    assert [(s.start, s.end, s.label_) for s in kept] == [(1, 3, "X"), (0, 2, "Y"), (3, 5, "X"), (4, 6, "Y")]
    with pytest.raises(ValueError, match="same_label must be one of keep, best, got 'all'"):
        filter_spans(spans, scores, None, "all")
    with pytest.raises(ValueError, match="5 spans but 2 scores"):
        filter_spans(spans, [0.1, 0.2], None, "keep")


def test_the_component_filters_in_place_and_round_trips_through_its_config(tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("biomed_span_filter_v1", config={"thresholds": {"X": 0.55}, "same_label": "best"})
    doc = _doc(nlp, [(0, 2, "X"), (1, 3, "X"), (0, 2, "Y"), (3, 5, "X")], [0.5, 0.9, 0.3, 0.6])
    doc = nlp.get_pipe("biomed_span_filter_v1")(doc)
    assert [(s.start, s.end, s.label_) for s in doc.spans["sc"]] == [(1, 3, "X"), (0, 2, "Y"), (3, 5, "X")]
    assert doc.spans["sc"].attrs["scores"].tolist() == pytest.approx([0.9, 0.3, 0.6])
    nlp.to_disk(tmp_path / "p")
    loaded = spacy.load(tmp_path / "p")
    comp = loaded.get_pipe("biomed_span_filter_v1")
    assert (comp.thresholds, comp.same_label) == ({"X": 0.55}, "best")
    with pytest.raises(ValueError, match=r"\[f\] the threshold of 'X' must be a number from 0 to 1, got 2"):
        SpanFilter("f", thresholds={"X": 2})
    with pytest.raises(ValueError, match=r"\[f\] same_label must be one of keep, best, got 'x'"):
        SpanFilter("f", same_label="x")


def test_label_counts_by_hand():
    nlp = spacy.blank("en")
    gold = _doc(nlp, [(0, 2, "X"), (3, 5, "Y")])
    pred = _doc(nlp, [(0, 2, "X"), (1, 3, "X"), (3, 4, "Y")], [0.9, 0.8, 0.7])
    assert label_counts([gold], [pred], "sc", "keep") == {"X": [1, 1, 0], "Y": [0, 1, 1]}
    assert label_counts([gold], [pred], "sc", "best") == {"X": [1, 0, 0], "Y": [0, 1, 1]}


def test_per_label_thresholds_raise_micro_f_and_leave_rare_labels_alone():
    # label -> [tp, fp, fn] at each threshold; A is best low, B is best high, R is rare
    table = {
        0.3: {"A": [90, 10, 10], "B": [60, 60, 40], "R": [1, 5, 2]},
        0.5: {"A": [80, 5, 20], "B": [55, 20, 45], "R": [1, 1, 2]},
        0.7: {"A": [60, 2, 40], "B": [50, 5, 50], "R": [0, 0, 3]},
    }
    choice, micro = choose_label_thresholds(table, 0.5, min_gold=10)
    assert choice == {"A": 0.3, "B": 0.7, "R": 0.5}
    assert (micro["tp"], micro["fp"], micro["fn"]) == (141, 16, 62)
    assert micro["f"] == pytest.approx(2 * 141 / (2 * 141 + 16 + 62))
    # every label too rare: all keep the global threshold
    choice, _ = choose_label_thresholds(table, 0.5, min_gold=1000)
    assert choice == {"A": 0.5, "B": 0.5, "R": 0.5}


def test_tuned_filter_is_saved_and_the_saved_pipeline_scores_what_tuning_said(tiny_spancat, tmp_path):
    path, data = tiny_spancat
    nlp = spacy.load(path)
    gold = read_docs(data, nlp.vocab)
    thresholds = [0.2, 0.4, 0.6, 0.8]
    record = tune_span_filter(nlp, gold, "sc", thresholds=thresholds, min_gold=1, progress=False)
    assert record["same_label"] in ("keep", "best") and set(record["policies"]) == {"keep", "best"}
    assert record["dev"]["f"] >= record["global"]["f"]
    assert set(record["thresholds"].values()) <= set(thresholds)
    save_with_filter(nlp, record, tmp_path / "tuned", "sc")
    tuned = spacy.load(tmp_path / "tuned")
    assert tuned.pipe_names == ["tok2vec", "spancat", "span_filter"]
    assert tuned.get_pipe("spancat").cfg["threshold"] == min(record["thresholds"].values())
    metrics, _ = evaluate_pipeline(tuned, gold, "sc", progress=False)
    spans = metrics.metrics["spans"]
    assert (spans["tp"], spans["fp"], spans["fn"]) == (record["dev"]["tp"], record["dev"]["fp"], record["dev"]["fn"])
    # tuning again replaces the filter rather than adding a second one
    save_with_filter(tuned, {**record, "same_label": "best"}, tmp_path / "again", "sc")
    assert spacy.load(tmp_path / "again").pipe_names == ["tok2vec", "spancat", "span_filter"]


def test_one_model_pass_serves_the_global_and_the_filter_tuning(tiny_spancat):
    path, data = tiny_spancat
    nlp = spacy.load(path)
    gold = read_docs(data, nlp.vocab)
    thresholds = [0.2, 0.4, 0.6, 0.8]
    apart = (tune_threshold(nlp, gold, None, "sc", thresholds=thresholds, progress=False),
             tune_span_filter(nlp, gold, "sc", thresholds=thresholds, min_gold=1, progress=False))
    spancat = nlp.get_pipe("spancat")
    calls = []
    predict = spancat.predict
    spancat.predict = lambda docs: calls.append(len(docs)) or predict(docs)
    predicted = predict_scores(nlp, gold, "sc", batch_size=2, progress=False)
    assert sum(calls) == len(gold)
    shared = (tune_threshold(nlp, gold, None, "sc", thresholds=thresholds, progress=False, predicted=predicted),
              tune_span_filter(nlp, gold, "sc", thresholds=thresholds, min_gold=1, progress=False,
                               predicted=predicted))
    assert sum(calls) == len(gold)  # no second pass
    assert shared == apart


def _tune(tmp_path, path, data, *extra):
    out = tmp_path / "tuned"
    record = tmp_path / "threshold.json"
    r = subprocess.run(
        [sys.executable, "-m", "scripts.tune_threshold", str(path), str(data), str(out), "--output", str(record),
         "--n-trials", "4", "--beg", "0.2", "--end", "0.8", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    return r, out, record


def test_the_script_records_the_filter_and_refuses_a_bad_policy(tiny_spancat, tmp_path):
    path, data = tiny_spancat
    r, out, record = _tune(tmp_path, path, data, "--thresholds", "per-label", "--min-gold", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    rec = json.loads(record.read_text())
    used = rec["span_filter"] is not None and rec["span_filter"].get("used", True)
    names = spacy.load(out).pipe_names
    assert ("span_filter" in names) == used
    if used:
        assert rec["threshold"] == min(rec["span_filter"]["thresholds"].values())
        values = rec["span_filter"]["thresholds"].values()
        assert f"Per-label thresholds ({len(values)} labels, {min(values):g} to {max(values):g})" in r.stdout
    r, out, _ = _tune(tmp_path / "bad", path, data, "--same-label", "all")
    said = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 1 and "tune-threshold: same_label must be keep, best or auto, got 'all'" in said
    assert not out.exists()
    r, out, _ = _tune(tmp_path / "bad2", path, data, "--thresholds", "each")
    said = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 1 and "tune-threshold: --thresholds must be global or per-label, got 'each'" in said
    assert not out.exists()


def test_the_default_keeps_one_threshold_for_every_label(tiny_spancat, tmp_path):
    path, data = tiny_spancat
    r, out, record = _tune(tmp_path, path, data, "--min-gold", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    rec = json.loads(record.read_text())
    assert rec["span_filter"]["per_label"] is False
    assert len(set(rec["span_filter"]["thresholds"].values())) == 1
    if rec["span_filter"].get("used", True):
        said = " ".join(r.stdout.split())
        assert f"Threshold {rec['threshold']:g}, same-label overlaps '{rec['span_filter']['same_label']}'" in said
