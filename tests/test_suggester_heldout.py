"""The suggester's settings hold on unseen documents (biomed_spancat.training.suggester_heldout)."""
import json
import random

import pytest
import spacy
from spacy.tokens import Doc, DocBin, Span

from biomed_spancat.pipeline.suggester import build_biomed_suggester
from biomed_spancat.training.suggester_coverage import coverage_report
from biomed_spancat.training.suggester_fit import fit_suggester_config, fit_suggester_settings
from biomed_spancat.training.suggester_heldout import LADDER, document_folds, fit_heldout_settings, plain_ngram_settings

NLP = spacy.blank("en")
ENT = ["insulin", "metformin", "asthma", "sepsis", "warfarin", "anemia"]
CTX = ["the", "patient", "was", "given", "for", "and", "noted", "in", "with", "on", "daily", "today"]


def note(key, long_len, seed):
    """A short clinical-style note: six short spans and one long one of `long_len` tokens."""
    rng = random.Random(seed)
    words, spans = [], []
    for _ in range(6):
        words += [rng.choice(CTX) for _ in range(rng.randint(1, 3))]
        start = len(words)
        words += [rng.choice(ENT) for _ in range(rng.choice([1, 1, 2]))]
        spans.append((start, len(words)))
    words += ["the", "patient", "has"]
    start = len(words)
    words += [ENT[i % len(ENT)] for i in range(long_len)]
    spans.append((start, len(words)))
    words.append(".")
    doc = Doc(NLP.vocab, words=words)
    doc.spans["sc"] = [Span(doc, s, e, "X") for s, e in spans]
    doc.user_data["doc_key"] = key
    return doc


# Each training note brings a longer span than the ones before: a train-only fit
# caps candidates at the longest it saw; held-out documents show the tail is open.
TRAIN = [note(f"t{i}", 3 + 2 * i, seed=i) for i in range(10)]
UNSEEN = [note(f"e{i}", 22 + i, seed=100 + i) for i in range(2)]


def recall(settings, docs):
    return coverage_report(build_biomed_suggester(**settings), docs, "sc")["recall"]


def test_folds_hold_out_whole_documents():
    docs = [note(f"d{i // 2}", 3, seed=i) for i in range(10)]  # five documents of two paragraphs
    folds = document_folds(docs, k=3)
    assert len(folds) == 3
    for fit, held in folds:
        assert {d.user_data["doc_key"] for d in fit}.isdisjoint(d.user_data["doc_key"] for d in held)
        assert len(fit) + len(held) == 10
    assert [sorted({d.user_data["doc_key"] for d in held}) for _, held in folds] == [
        ["d0", "d3"], ["d1", "d4"], ["d2"]
    ]
    with pytest.raises(ValueError, match="too few to hold any out"):
        document_folds(docs[:2])


def test_train_only_fit_misses_unseen_spans_the_heldout_fit_keeps():
    old = fit_suggester_settings(TRAIN, "sc", 0.995)
    assert old.settings["max_length"] == 21 and old.train_recall == 1.0
    assert recall(old.settings, UNSEEN) == pytest.approx(12 / 14)  # both long spans lost
    new, record = fit_heldout_settings(TRAIN, "sc", 0.995)
    assert [(t["strategy"], round(t["recall"], 4)) for t in record["tried"]] == [
        ("learned", round(69 / 70, 4)), ("learned, wider", 1.0)
    ]
    assert record["chosen"] == "learned, wider" and record["reached"] and record["folds"] == 5
    assert new.settings["max_length"] == 23
    assert recall(new.settings, UNSEEN) == 1.0


def test_learned_settings_are_kept_when_they_hold():
    docs = [note(f"t{i}", 4, seed=i) for i in range(8)]
    new, record = fit_heldout_settings(docs, "sc", 0.995)
    assert record["chosen"] == "learned" and [t["strategy"] for t in record["tried"]] == ["learned"]
    assert record["tried"][0]["recall"] >= 0.99
    assert new.settings == fit_suggester_settings(docs, "sc", 0.995).settings


def test_one_document_falls_back_to_plain_ngrams():
    new, record = fit_heldout_settings([TRAIN[3]], "sc", 0.995)
    assert record["chosen"] == "n-grams" and record["folds"] == 0 and record["reached"] is None
    assert "too few to hold any out" in record["note"]
    assert new.settings == plain_ngram_settings(9 + 2)


def test_an_unreachable_target_takes_the_widest_and_says_so():
    docs = [note(f"t{i}", n, seed=i) for i, n in enumerate((3, 3, 3, 40))]
    new, record = fit_heldout_settings(docs, "sc", 0.995, heldout_recall=1.0)
    assert [t["strategy"] for t in record["tried"]] == list(LADDER)
    assert record["chosen"] == "n-grams, widest" and record["reached"] is False
    assert "no setting kept 100.0% of held-out spans" in record["note"]
    assert new.settings["max_length"] == 2 * 40 + 2


def test_fit_config_reports_the_heldout_estimate(tmp_path, project_root):
    DocBin(docs=TRAIN, store_user_data=True).to_disk(tmp_path / "train.spacy")
    record = fit_suggester_config(
        tmp_path / "train.spacy", project_root / "configs" / "spancat.cfg", tmp_path / "config.cfg", "sc", 0.995
    )
    assert record["heldout"]["chosen"] == "learned, wider"
    assert record["settings"]["max_length"] == 23
    json.dumps(record)  # the report is written as JSON


def test_fit_cli_prints_the_chosen_settings_and_heldout_recall(tmp_path, project_root):
    import typer
    from typer.testing import CliRunner

    from scripts.fit_suggester import main

    DocBin(docs=TRAIN, store_user_data=True).to_disk(tmp_path / "train.spacy")
    app = typer.Typer()
    app.command()(main)
    args = [str(tmp_path / "train.spacy"), str(project_root / "configs" / "spancat.cfg"), str(tmp_path / "c.cfg"),
            "--target-recall", "0.995", "--report", str(tmp_path / "fit.json")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "settings 'learned, wider': held-out recall 100.00% (5 folds of whole documents)" in text
    assert json.loads((tmp_path / "fit.json").read_text())["heldout"]["chosen"] == "learned, wider"
    # --heldout-recall 0 is the train-only fit
    result = CliRunner().invoke(app, args + ["--heldout-recall", "0"])
    assert result.exit_code == 0 and "folds of whole documents" not in result.output
    assert json.loads((tmp_path / "fit.json").read_text())["settings"]["max_length"] == 21
