"""Baseline 3, GLiNER: the conversion to GLiNER's records and back is exact
(overlaps kept, words one to one with tokens), and a tiny run trains, tunes its
threshold on dev, evaluates with the project's scorer and runs through its CLIs."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin, Span

from biomed_spancat.evaluation.gliner_baseline import docs_to_gliner, doc_words, entities_to_spans, windows
from conftest import TINY_TEXTS

ROOT = Path(__file__).resolve().parent.parent


def _doc(nlp, text, spans):
    doc = nlp(text)
    doc.spans["sc"] = [Span(doc, s, e, label) for s, e, label in spans]
    return doc


def test_windows_cover_every_word_once():
    assert windows(5, 2) == [(0, 2), (2, 4), (4, 5)]
    assert windows(4, 4) == [(0, 4)]
    assert windows(0, 3) == []
    with pytest.raises(ValueError, match="window must be >= 1"):
        windows(3, 0)


def test_words_stay_one_to_one_with_tokens():
    nlp = spacy.blank("en")
    doc = nlp.make_doc("a  b")  # spaCy keeps the extra space as a token
    assert [t.text for t in doc] == ["a", " ", "b"]
    assert doc_words(doc) == ["a", "_", "b"]
    assert " ".join(doc_words(doc)).split() == doc_words(doc)


def test_records_keep_overlaps_and_count_spans_cut_by_windows():
    nlp = spacy.blank("en")
    # BMP2 and BMP4 regulate limb patterning ...
    doc = _doc(nlp, TINY_TEXTS[0], [(0, 1, "GENE"), (0, 3, "GENE"), (4, 6, "PROC"), (4, 5, "ANAT"), (2, 5, "X")])
    records, lost = docs_to_gliner([doc], window=4)
    assert records[0] == {
        "tokenized_text": ["BMP2", "and", "BMP4", "regulate"],
        "ner": [[0, 0, "GENE"], [0, 2, "GENE"]],
    }
    assert records[1]["tokenized_text"] == ["limb", "patterning", "and", "skeletogenesis"]
    assert records[1]["ner"] == [[0, 0, "ANAT"], [0, 1, "PROC"]]
    assert lost == 1  # (2, 5, "X") crosses the edge at word 4
    whole, lost = docs_to_gliner([doc], window=256)
    assert lost == 0 and len(whole[0]["ner"]) == 5


def test_entities_map_back_to_token_offsets():
    words = ["BMP2", "and", "BMP4", "regulate"]
    text = " ".join(words)
    ents = [
        {"start": 0, "end": 4, "label": "GENE", "score": 0.9},
        {"start": 0, "end": 13, "label": "GENE", "score": 0.4},
        {"start": text.index("BMP4"), "end": text.index("BMP4") + 4, "label": "GENE", "score": 0.8},
        {"start": 1, "end": 4, "label": "GENE", "score": 0.7},  # inside a word: dropped
    ]
    assert entities_to_spans(words, ents, offset=10) == [
        ((10, 11, "GENE"), 0.9),
        ((10, 13, "GENE"), 0.4),
        ((12, 13, "GENE"), 0.8),
    ]


@pytest.mark.slow
def test_tiny_run_trains_tunes_and_evaluates_through_the_clis(tiny_bert, tmp_path):
    pytest.importorskip("gliner")
    nlp = spacy.blank("en")
    db = DocBin(store_user_data=True)
    for text in TINY_TEXTS:
        db.add(_doc(nlp, text, [(0, 1, "GENE"), (0, 2, "PAIR")]))
    db.to_disk(tmp_path / "train.spacy")
    out = tmp_path / "gliner"
    train = subprocess.run(
        [sys.executable, "-m", "scripts.train_gliner", str(tmp_path / "train.spacy"), str(tmp_path / "train.spacy"),
         str(tiny_bert), str(out), "--max-steps", "2", "--batch-size", "2",
         "--threshold-output", str(tmp_path / "threshold.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert train.returncode == 0, train.stdout[-2000:] + train.stderr[-3000:]
    record = json.loads((out / "gliner.json").read_text())
    assert record["labels"] == ["GENE", "PAIR"]
    assert record["training"]["steps"] == 2
    trials = json.loads((tmp_path / "threshold.json").read_text())
    assert record["threshold"] == trials["threshold"] == trials["best"]["threshold"]
    assert [t["threshold"] for t in trials["trials"]][:2] == [0.05, 0.1]
    evaluate = subprocess.run(
        [sys.executable, "-m", "scripts.evaluate_gliner", str(out), str(tmp_path / "train.spacy"),
         "--output", str(tmp_path / "m.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["schema"] == "biomed.metrics.v1"
    assert metrics["model"]["name"] == "gliner" and metrics["model"]["threshold"] == record["threshold"]
    assert metrics["spans"]["gold"] == 10
    assert metrics["suggester"]["recall"] == 1.0  # every gold span is within 12 words
    assert set(metrics["groups"]) >= {"overlapping", "isolated"}
    missing = subprocess.run(
        [sys.executable, "-m", "scripts.evaluate_gliner", str(tmp_path), str(tmp_path / "train.spacy"),
         "--output", str(tmp_path / "x.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert missing.returncode == 1
    said = " ".join((missing.stdout + missing.stderr).split())
    assert "gliner.json: not found;" in said and "is not the output of train-gliner" in said
