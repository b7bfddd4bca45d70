"""The overlap-aware scorer, threshold tuning and the evaluate / tune-threshold
CLIs. Hand-made docs with known gold and predicted spans check every metric by
hand; a tiny CNN spancat (trained in seconds) checks the pipeline paths."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.tokens import Doc, Span
from spacy.training import Example
from spacy.util import registry
from thinc.api import Config

from biomed_spancat.evaluation.evaluate import evaluate_pipeline, make_pred_doc
from biomed_spancat.evaluation.scoring import (
    METRICS_SCHEMA,
    length_bucket,
    overlap_groups,
    prf,
    score_docs,
    suggester_recall,
)
from biomed_spancat.util import find_spancat, read_docs
from spancat_fixtures import TRAIN_TEXTS, tiny_docs
from biomed_spancat.evaluation.threshold import (
    candidate_thresholds,
    choose_threshold,
    save_with_threshold,
    score_thresholds,
    tune_threshold,
)

ROOT = Path(__file__).resolve().parent.parent
NLP = spacy.blank("en")
WORDS = [f"w{i}" for i in range(15)]


def make_doc(spans, words=WORDS, scores=None):
    """A doc over `words` with (start, end, label) spans in doc.spans["sc"]."""
    doc = Doc(NLP.vocab, words=list(words))
    doc.spans["sc"] = [Span(doc, s, e, label=lab) for s, e, lab in spans]
    if scores is not None:
        doc.spans["sc"].attrs["scores"] = numpy.asarray(scores, dtype="f")
    return doc


def counts(s):
    return (s["tp"], s["fp"], s["fn"])


# --- prf and helpers ---


def test_prf_by_hand():
    s = prf(2, 1, 1)
    assert (s["p"], s["r"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert s["f"] == pytest.approx(2 / 3)
    assert (s["gold"], s["pred"]) == (3, 3)


@pytest.mark.parametrize(
    "tp,fp,fn,expected",
    [
        (0, 0, 0, (None, None, None)),  # no gold, no prediction: undefined, not zero
        (0, 2, 0, (0.0, None, 0.0)),  # predictions of a label absent from gold
        (0, 0, 3, (None, 0.0, 0.0)),  # nothing predicted: F is 0, not undefined
        (0, 1, 1, (0.0, 0.0, 0.0)),
        (3, 0, 0, (1.0, 1.0, 1.0)),
    ],
)
def test_prf_undefined_is_none(tp, fp, fn, expected):
    s = prf(tp, fp, fn)
    assert (s["p"], s["r"], s["f"]) == expected


@pytest.mark.parametrize(
    "start,end,bucket", [(0, 1, "1"), (3, 5, "2"), (0, 4, "4"), (0, 5, "5+"), (0, 17, "5+")]
)
def test_length_bucket(start, end, bucket):
    assert length_bucket(start, end) == bucket


def test_overlap_groups_nested_crossing_same_extent_and_isolated():
    spans = [(0, 3, "A"), (1, 2, "B"), (4, 6, "A"), (5, 7, "A"), (8, 9, "B"), (10, 11, "A"), (10, 11, "C")]
    groups = overlap_groups(spans)
    assert groups[(0, 3, "A")] == {"overlapping", "cross_label"}  # nests another label
    assert groups[(1, 2, "B")] == {"overlapping", "cross_label"}  # nested in another label
    assert groups[(4, 6, "A")] == {"overlapping", "same_label"}  # crossing, same label
    assert groups[(5, 7, "A")] == {"overlapping", "same_label"}
    assert groups[(8, 9, "B")] == {"isolated"}
    assert groups[(10, 11, "A")] == {"overlapping", "cross_label"}  # same extent, other label
    # Adjacent is not overlapping: [4, 6) and [6, 7) share no token.
    assert overlap_groups([(4, 6, "A"), (6, 7, "A")]) == {
        (4, 6, "A"): {"isolated"},
        (6, 7, "A"): {"isolated"},
    }
    # One span can overlap both a same-label and a cross-label span.
    assert overlap_groups([(0, 4, "A"), (1, 2, "A"), (2, 3, "B")])[(0, 4, "A")] == {
        "overlapping",
        "same_label",
        "cross_label",
    }


# --- strict P/R/F, per label, error kinds ---


def test_strict_overall_per_label_and_error_kinds():
    gold = make_doc([(0, 1, "A"), (2, 4, "B"), (5, 6, "A"), (11, 12, "C")])
    pred = make_doc(
        [
            (0, 1, "A"),  # TP
            (2, 4, "A"),  # label error: gold (2, 4) is B
            (5, 7, "A"),  # boundary error: gold (5, 6) A, wrong extent
            (3, 5, "C"),  # boundary and label: touches gold (2, 4) B only
            (8, 9, "B"),  # spurious: touches no gold span
        ]
    )
    m = score_docs([(gold, pred)]).metrics
    assert counts(m["spans"]) == (1, 4, 3)
    assert m["spans"]["p"] == pytest.approx(1 / 5)
    assert m["spans"]["r"] == pytest.approx(1 / 4)
    assert m["spans"]["f"] == pytest.approx(2 * 0.2 * 0.25 / 0.45)
    assert {k: counts(v) for k, v in m["per_label"].items()} == {
        "A": (1, 2, 1),
        "B": (0, 1, 1),
        "C": (0, 1, 1),
    }
    # FPs partition into the four kinds; gold (11, 12) C is touched by nothing.
    assert m["errors"] == {"label": 1, "boundary": 1, "boundary_and_label": 1, "spurious": 1, "missed": 1}
    assert m["counts"] == {"docs": 1, "tokens": 15, "gold_spans": 4, "pred_spans": 5}


def test_label_error_outranks_boundary():
    # Same extent as gold B, and also touching gold A of its own label: a label error.
    gold = make_doc([(0, 2, "B"), (1, 3, "A")])
    pred = make_doc([(0, 2, "A")])
    m = score_docs([(gold, pred)]).metrics
    assert m["errors"]["label"] == 1 and m["errors"]["boundary"] == 0


def test_missed_vs_touched_false_negatives():
    gold = make_doc([(0, 2, "A"), (5, 6, "B")])
    pred = make_doc([(1, 3, "A")])
    result = score_docs([(gold, pred)])
    assert result.docs[0].fn == {(0, 2, "A"): "touched", (5, 6, "B"): "missed"}
    assert result.metrics["errors"]["missed"] == 1


def test_duplicate_spans_count_once():
    gold = make_doc([(0, 1, "A"), (0, 1, "A")])
    pred = make_doc([(0, 1, "A"), (0, 1, "A"), (2, 3, "A"), (2, 3, "A")])
    m = score_docs([(gold, pred)]).metrics
    assert counts(m["spans"]) == (1, 1, 0)


def test_overlapping_gold_spans_matched_independently():
    # Two gold spans with the same extent and different labels: one found, one not.
    gold = make_doc([(0, 2, "A"), (0, 2, "B")])
    pred = make_doc([(0, 2, "A")])
    m = score_docs([(gold, pred)]).metrics
    assert counts(m["spans"]) == (1, 0, 1)
    assert counts(m["groups"]["overlapping"]) == (1, 0, 1)


def test_empty_docs_and_missing_span_key():
    empty = Doc(NLP.vocab, words=[])
    m = score_docs([(empty, Doc(NLP.vocab, words=[]))]).metrics
    assert counts(m["spans"]) == (0, 0, 0)
    assert m["spans"]["f"] is None
    # A doc with no spans under the key counts as no spans, not an error.
    m = score_docs([(make_doc([(0, 1, "A")]), Doc(NLP.vocab, words=WORDS))]).metrics
    assert counts(m["spans"]) == (0, 0, 1)


def test_pred_with_other_tokens_is_refused():
    gold = make_doc([(0, 1, "A")])
    pred = Doc(NLP.vocab, words=WORDS[:-1])
    with pytest.raises(ValueError, match=r"doc 0: the predicted doc's tokens differ.*14 vs 15"):
        score_docs([(gold, pred)])


# --- overlap breakdown ---


GROUP_GOLD = [(0, 3, "A"), (1, 2, "B"), (4, 6, "A"), (5, 7, "A"), (8, 9, "B")]
GROUP_PRED = [
    (0, 3, "A"),  # TP, gold overlapping + cross_label
    (4, 6, "A"),  # TP, gold overlapping + same_label
    (5, 8, "A"),  # FP boundary, touches gold (5, 7) A: overlapping + same_label
    (8, 9, "B"),  # TP, isolated
    (10, 11, "A"),  # FP spurious, overlaps another prediction of label B: overlapping + cross_label
    (10, 12, "B"),  # FP spurious, ditto
    (13, 14, "A"),  # FP spurious, alone: isolated
]


def test_overlap_breakdown_by_hand():
    m = score_docs([(make_doc(GROUP_GOLD), make_doc(GROUP_PRED))]).metrics
    g = m["groups"]
    assert counts(g["overlapping"]) == (2, 3, 2)  # FN: (1, 2) B and (5, 7) A
    assert counts(g["isolated"]) == (1, 1, 0)
    assert counts(g["same_label"]) == (1, 1, 1)
    assert counts(g["cross_label"]) == (1, 2, 1)
    assert g["overlapping"]["r"] == pytest.approx(0.5)
    assert g["isolated"]["p"] == pytest.approx(0.5) and g["isolated"]["r"] == 1.0
    # overlapping + isolated partition the spans: the counts add up to the total.
    assert tuple(a + b for a, b in zip(counts(g["overlapping"]), counts(g["isolated"]))) == counts(m["spans"])
    assert m["errors"] == {"label": 0, "boundary": 1, "boundary_and_label": 0, "spurious": 3, "missed": 0}


def test_fp_touching_overlapping_and_isolated_gold_counts_as_overlapping():
    gold = make_doc([(0, 2, "A"), (1, 2, "B"), (2, 3, "C")])
    pred = make_doc([(1, 3, "C")])
    g = score_docs([(gold, pred)]).metrics["groups"]
    assert g["overlapping"]["fp"] == 1
    assert g["isolated"]["fp"] == 0
    assert g["isolated"]["fn"] == 1  # (2, 3) C itself is isolated and missed


def test_flattened_predictions_cannot_recover_overlaps():
    # What BIO flattening does: keep one of two nested spans. Recall on
    # overlapping gold spans drops, isolated ones are untouched.
    gold = make_doc([(0, 3, "A"), (1, 2, "B"), (5, 6, "C")])
    flat = make_doc([(0, 3, "A"), (5, 6, "C")])
    g = score_docs([(gold, flat)]).metrics["groups"]
    assert g["overlapping"]["r"] == pytest.approx(0.5)
    assert g["isolated"]["r"] == 1.0


# --- by length and scores ---


def test_by_length_by_hand():
    gold = make_doc(GROUP_GOLD + [(9, 14, "C")])
    m = score_docs([(gold, make_doc(GROUP_PRED))]).metrics
    b = m["by_length"]
    assert counts(b["1"]) == (1, 2, 1)
    assert counts(b["2"]) == (1, 1, 1)
    assert counts(b["3"]) == (1, 1, 0)
    assert counts(b["4"]) == (0, 0, 0) and b["4"]["r"] is None
    assert counts(b["5+"]) == (0, 0, 1)
    assert b["1"]["r"] == pytest.approx(0.5)


def test_score_distribution_by_hand():
    gold = make_doc([(0, 1, "A"), (2, 3, "A")])
    pred = make_doc([(0, 1, "A"), (2, 3, "A"), (5, 6, "A")], scores=[0.92, 0.82, 0.33])
    s = score_docs([(gold, pred)]).metrics["scores"]
    assert len(s["bins"]) == 21 and s["bins"][0] == 0.0 and s["bins"][-1] == 1.0
    assert (
        s["tp"]["count"] == 2
        and s["tp"]["mean"] == pytest.approx(0.87)
        and s["tp"]["median"] == pytest.approx(0.87)
    )
    assert [i for i, n in enumerate(s["tp"]["histogram"]) if n] == [16, 18]
    assert s["fp"]["count"] == 1 and [i for i, n in enumerate(s["fp"]["histogram"]) if n] == [6]


def test_no_scores_means_no_distribution():
    gold = make_doc([(0, 1, "A")])
    assert score_docs([(gold, make_doc([(0, 1, "A")]))]).metrics["scores"] is None
    # Scores of the wrong length are ignored, not misassigned.
    bad = make_doc([(0, 1, "A")], scores=[0.5, 0.6])
    assert score_docs([(gold, bad)]).metrics["scores"] is None


# --- suggester recall ---


def test_suggester_recall_by_hand():
    suggester = registry.misc.get("spacy.ngram_suggester.v1")(sizes=[1, 2])
    docs = [
        make_doc([(0, 1, "A"), (2, 4, "B"), (5, 8, "A")], words=WORDS[:10]),
        Doc(NLP.vocab, words=[]),  # an empty doc in the batch
    ]
    r = suggester_recall(suggester, docs, "sc")
    assert (r["covered"], r["gold_spans"]) == (2, 3)
    assert r["recall"] == pytest.approx(2 / 3)
    assert r["candidates"] == 10 + 9
    assert r["candidates_per_token"] == pytest.approx(1.9)
    assert r["per_label"] == {
        "A": {"recall": 0.5, "covered": 1, "gold_spans": 2},
        "B": {"recall": 1.0, "covered": 1, "gold_spans": 1},
    }


def test_suggester_recall_with_no_gold_spans():
    suggester = registry.misc.get("spacy.ngram_suggester.v1")(sizes=[1])
    r = suggester_recall(suggester, [Doc(NLP.vocab, words=["a", "b"])], "sc")
    assert r["recall"] is None and r["candidates"] == 2


# --- a tiny spancat pipeline ---

def test_evaluate_pipeline_schema_and_consistency(tiny_spancat):
    path, data = tiny_spancat
    nlp = spacy.load(path)
    gold = read_docs(data, nlp.vocab)
    result, preds = evaluate_pipeline(nlp, gold, "sc", model=str(path), data=str(data), progress=False)
    m = result.metrics
    assert m["schema"] == METRICS_SCHEMA
    assert set(m) == {
        "schema",
        "model",
        "data",
        "spans",
        "per_label",
        "groups",
        "errors",
        "by_length",
        "suggester",
        "flattening",
        "scores",
        "speed",
        "training",
    }
    assert m["model"]["threshold"] == 0.5 and m["model"]["component"] == "spancat"
    assert m["model"]["suggester"] == {"@misc": "spacy.ngram_suggester.v1", "sizes": [1, 2, 3]}
    assert m["data"]["docs"] == 4 and m["data"]["tokens"] == sum(len(d) for d in gold)
    assert m["data"]["gold_spans"] == sum(len(s) for _, s in TRAIN_TEXTS)
    # The pipeline's own suggester: n-grams 1-3 cover every gold span here.
    assert m["suggester"]["recall"] == 1.0
    n = [len(d) for d in gold]
    assert m["suggester"]["candidates"] == sum(k + (k - 1) + (k - 2) for k in n)
    assert m["speed"]["words"] == sum(n) and m["speed"]["words_per_second"] > 0
    # The speed figure is speed.measure_speed's: raw texts of the data, warm-up, median of 3
    assert m["speed"]["timed"]["data"] == str(data) and m["speed"]["timed"]["repeats"] == 3
    assert m["speed"]["docs"] == 4 and len(m["speed"]["runs"]) == 3
    # Before packaging, the name and version to be can be given
    named, _ = evaluate_pipeline(nlp, gold, "sc", progress=False, speed_repeats=0, name="en_x", version="1.2.3")
    assert (named.metrics["model"]["name"], named.metrics["model"]["version"]) == ("en_x", "1.2.3")
    assert named.metrics["speed"]["timed"] is None  # only the scored pass
    # Scored from the predicted docs the pipeline produced, with their scores.
    assert m["spans"]["pred"] == sum(len(p.spans["sc"]) for p in preds)
    assert m["scores"]["tp"]["count"] + m["scores"]["fp"]["count"] == m["spans"]["pred"]
    assert m["spans"]["f"] > 0.5  # overfit on its own training data
    json.dumps(m)  # JSON-ready as is


def test_score_thresholds_matches_the_real_pipeline(tiny_spancat):
    path, data = tiny_spancat
    nlp = spacy.load(path)
    gold = read_docs(data, nlp.vocab)
    trials = score_thresholds(nlp, gold, [0.0, 0.3, 0.7], "sc", progress=False)
    _, spancat = find_spancat(nlp)
    assert spancat.cfg["threshold"] == 0.5  # restored
    n_candidates = sum(k + (k - 1) + (k - 2) for k in (len(d) for d in gold))
    # Threshold 0 keeps every candidate with every label.
    assert trials[0]["tp"] + trials[0]["fp"] == n_candidates * len(spancat.labels)
    preds = [t["tp"] + t["fp"] for t in trials]
    assert preds == sorted(preds, reverse=True)
    for trial in trials[1:]:
        spancat.cfg["threshold"] = trial["threshold"]
        m, _ = evaluate_pipeline(nlp, gold, "sc", progress=False)
        assert (m.metrics["spans"]["tp"], m.metrics["spans"]["fp"]) == (trial["tp"], trial["fp"])


def test_long_work_shows_progress(tiny_spancat, tmp_path, capsys):
    path, data = tiny_spancat
    nlp = spacy.load(path)
    gold = read_docs(data, nlp.vocab)
    evaluate_pipeline(nlp, gold, "sc", progress=True)
    err = capsys.readouterr().err
    for bar in ("predicting", "scoring", "suggester recall"):
        assert re.search(bar + r": 100%.*4/4", err), bar
    tune_threshold(nlp, gold, None, "sc", thresholds=[0.4, 0.6], progress=True)
    err = capsys.readouterr().err
    assert re.search(r"scoring spans: 100%.*4/4", err) and re.search(r"thresholds: 100%.*3/3", err)


def test_choose_threshold_ties_and_undefined():
    trials = [{"threshold": 0.3, "f": 0.5}, {"threshold": 0.4, "f": 0.7}, {"threshold": 0.5, "f": 0.7}]
    assert choose_threshold(trials)["threshold"] == 0.4  # first best, as spacy find-threshold
    assert choose_threshold([{"threshold": 0.1, "f": None}, {"threshold": 0.2, "f": 0.0}])["threshold"] == 0.2
    with pytest.raises(ValueError, match="no threshold gives a defined F"):
        choose_threshold([{"threshold": 0.5, "f": None}])


@pytest.mark.parametrize(
    "args,message",
    [((0.5, 0.4, 3), r"beg \(0.5\) <= end \(0.4\)"), ((0.0, 1.2, 3), "<= 1"), ((0.1, 0.9, 0), "n_trials")],
)
def test_candidate_thresholds_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        candidate_thresholds(*args)


def test_candidate_thresholds_default():
    ts = candidate_thresholds()
    assert len(ts) == 19 and ts[0] == 0.05 and ts[-1] == 0.95 and ts[9] == 0.5


def test_tune_threshold_saves_a_pipeline_that_uses_it(tiny_spancat, tmp_path):
    path, data = tiny_spancat
    nlp = spacy.load(path)
    gold = read_docs(data, nlp.vocab)
    record = tune_threshold(nlp, gold, tmp_path / "tuned", "sc", thresholds=[0.2, 0.5, 0.8], progress=False)
    assert record["default_threshold"] == 0.5
    assert [t["threshold"] for t in record["trials"]] == [0.2, 0.5, 0.8]
    assert record["best"]["f"] == max(t["f"] for t in record["trials"])
    assert record["default"]["f"] == record["trials"][1]["f"]
    assert find_spancat(nlp)[1].cfg["threshold"] == 0.5  # the source pipeline is untouched
    tuned = spacy.load(tmp_path / "tuned")
    assert find_spancat(tuned)[1].cfg["threshold"] == pytest.approx(record["threshold"])
    assert tuned.config["components"]["spancat"]["threshold"] == record["threshold"]
    config = Config().from_disk(tmp_path / "tuned" / "config.cfg", interpolate=False)
    assert config["components"]["spancat"]["threshold"] == record["threshold"]
    m, _ = evaluate_pipeline(tuned, read_docs(data, tuned.vocab), "sc", progress=False)
    assert m.metrics["spans"]["f"] == pytest.approx(record["best"]["f"])
    assert m.metrics["model"]["threshold"] == record["threshold"]


def test_tune_threshold_refuses_data_without_gold_spans(tiny_spancat, tmp_path):
    path, _ = tiny_spancat
    nlp = spacy.load(path)
    docs = [Doc(nlp.vocab, words=["no", "spans", "here"])]
    with pytest.raises(
        ValueError, match=r"no gold spans under doc.spans\['sc'\] in dev.spacy: nothing to tune"
    ):
        tune_threshold(nlp, docs, tmp_path / "t", "sc", data="dev.spacy", progress=False)
    assert not (tmp_path / "t").exists()


def test_save_with_threshold_keeps_config_variables(tiny_spancat, tmp_path):
    path, _ = tiny_spancat
    nlp = spacy.load(path)
    save_with_threshold(nlp, 0.35, tmp_path / "t")
    text = (tmp_path / "t" / "config.cfg").read_text()
    assert "threshold = 0.35" in text
    assert "${" in text  # not interpolated: variables survive for `spacy package`


def test_transformer_pipeline_tune_and_evaluate(tiny_bert, tmp_path):
    # The project's own config (transformer + listener), over the tiny BERT:
    # scores computed once through the listener agree with the real pipeline.
    from thinc.api import fix_random_seed

    fix_random_seed(0)
    config = spacy.util.load_config(
        ROOT / "configs" / "spancat.cfg", overrides={"paths.transformer": str(tiny_bert)}, interpolate=True
    )
    nlp = spacy.util.load_model_from_config(config, auto_fill=True)
    gold = tiny_docs(nlp.vocab)
    examples = [Example(make_pred_doc(nlp.vocab, g), g) for g in gold]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(3):
        nlp.update(examples, sgd=optimizer)
    record = tune_threshold(nlp, gold, tmp_path / "tuned", "sc", thresholds=[0.3, 0.5], progress=False)
    m, preds = evaluate_pipeline(nlp, gold, "sc", progress=False)
    assert (m.metrics["spans"]["tp"], m.metrics["spans"]["fp"]) == (
        record["default"]["tp"],
        record["default"]["fp"],
    )
    assert m.metrics["suggester"]["recall"] == 1.0  # n-grams 1-4 cover every gold span here
    tuned = spacy.load(tmp_path / "tuned")
    assert find_spancat(tuned)[1].cfg["threshold"] == pytest.approx(record["threshold"])


# --- the CLIs, as project.yml runs them ---


def run_cli(module, *args):
    """Run a script's typer main in-process (fast) and return its exit code and output."""
    import importlib

    import typer
    from typer.testing import CliRunner

    app = typer.Typer(add_completion=False)
    app.command()(importlib.import_module(module).main)
    r = CliRunner().invoke(app, [str(a) for a in args])
    r.text = " ".join(r.output.split())  # wasabi wraps long lines
    return r


@pytest.fixture
def scripts_path(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))


def test_cli_tune_then_evaluate_with_report(tiny_spancat, tmp_path, scripts_path):
    path, data = tiny_spancat
    tuned, record = tmp_path / "model-tuned", tmp_path / "metrics" / "threshold.json"
    r = run_cli(
        "scripts.tune_threshold",
        path,
        data,
        tuned,
        "--spans-key",
        "sc",
        "--gpu-id",
        -1,
        "--output",
        record,
        "--n-trials",
        5,
    )
    assert r.exit_code == 0, r.text
    threshold = json.loads(record.read_text())["threshold"]
    assert f"Threshold {threshold:g}" in r.text
    out, report = tmp_path / "metrics" / "dev.json", tmp_path / "metrics" / "report.html"
    info = tmp_path / "training.json"
    info.write_text(json.dumps({"training_seconds": 1.5}))
    r = run_cli(
        "scripts.evaluate",
        tuned,
        data,
        "--output",
        out,
        "--report",
        report,
        "--spans-key",
        "sc",
        "--gpu-id",
        -1,
        "--training-info",
        info,
    )
    assert r.exit_code == 0, r.text
    m = json.loads(out.read_text())
    assert m["model"]["threshold"] == threshold
    assert m["training"] == {"training_seconds": 1.5}
    assert "spans P" in r.text and "suggester recall 100.0" in r.text
    assert "<table" in report.read_text()


def test_cli_bad_key_fails_clearly(tiny_spancat, tmp_path, scripts_path):
    path, data = tiny_spancat
    r = run_cli(
        "scripts.tune_threshold",
        path,
        data,
        tmp_path / "t",
        "--spans-key",
        "xx",
        "--output",
        tmp_path / "t.json",
    )
    assert r.exit_code == 1
    assert "tune-threshold: the pipeline has no span categorizer writing doc.spans['xx']" in r.text
    assert not (tmp_path / "t.json").exists() and not (tmp_path / "t").exists()


def test_cli_module_runs_and_names_a_missing_package(tiny_spancat, tmp_path):
    # As project.yml runs it: `python -m scripts.evaluate <package name> ...`.
    _, data = tiny_spancat
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.evaluate",
            "en_no_such_pkg",
            str(data),
            "--output",
            str(tmp_path / "m.json"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    text = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 1
    assert "evaluate: en_no_such_pkg: neither a pipeline directory nor an installed package" in text
    assert not (tmp_path / "m.json").exists()


# --------------------------------------------------------------------------- raw text


@spacy.Language.component("test_mark_brca1")
def _mark_brca1(doc):
    """Marks every token that is exactly 'Brca1' as PR, and 'mice' as NCBITaxon."""
    labels = {"Brca1": "PR", "mice": "NCBITaxon"}
    doc.spans["sc"] = [Span(doc, i, i + 1, labels[t.text]) for i, t in enumerate(doc) if t.text in labels]
    return doc


def test_raw_text_scores_what_the_tokenizer_lets_through():
    from biomed_spancat.evaluation.evaluate import score_raw_text

    nlp = spacy.blank("en")
    nlp.add_pipe("test_mark_brca1")
    # The annotator's tokens split "Brca1-/-"; spaCy's tokenizer keeps it whole.
    words = ["Brca1", "-/-", "mice", "lack", "Brca1", "."]
    spaces = [False, True, True, True, False, False]
    gold = Doc(nlp.vocab, words=words, spaces=spaces)
    gold.spans["sc"] = [
        Span(gold, 0, 1, "PR"),  # inside the token "Brca1-/-": out of the raw-text pipeline's reach
        Span(gold, 2, 3, "NCBITaxon"),
        Span(gold, 4, 5, "PR"),
        Span(gold, 2, 5, "GO_BP"),  # a made-up long span that nothing predicts
    ]
    raw = score_raw_text(nlp, [gold], "sc", progress=False)
    assert raw["tokenizer_ceiling"] == pytest.approx(3 / 4)
    assert (raw["tp"], raw["fp"], raw["fn"]) == (2, 0, 2)
    assert raw["f"] == pytest.approx(2 * 2 / (2 * 2 + 0 + 2))
    assert raw["per_label"]["PR"]["tp"] == 1 and raw["per_label"]["PR"]["fn"] == 1
    assert raw["per_label"]["GO_BP"]["fn"] == 1
    assert raw["words"] == 5  # the pipeline's own tokens: "Brca1-/-" is one
