"""`weasel run all` on a user's own export (not CRAFT, its own labels), setting
nothing but the source: eval data must come from that export, and the card
must report its labels and no CRAFT label.

Runs on a copy of the project WITHOUT the CRAFT sample, with the tiny local
BERT and a few training steps (as test_workflow.py does on the sample).
"""
import json
import os
import shutil
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin
from conftest import copy_project

ROOT = Path(__file__).resolve().parent.parent
EXPORT = ROOT / "tests" / "data" / "byod" / "clinical_notes.jsonl"
OWN_LABELS = {"DRUG", "DOSE", "DISEASE"}
CRAFT_LABELS = {"CHEBI", "CL", "GO_BP", "GO_CC", "GO_MF", "MONDO", "MOP", "NCBITaxon", "PR", "SO", "UBERON"}


@pytest.fixture(scope="module")
def own_run(tmp_path_factory, tiny_bert):
    from weasel.cli.run import project_run

    root = copy_project(tmp_path_factory.mktemp("byod"))
    export = root / "my_export.jsonl"
    shutil.copy(EXPORT, export)
    overrides = {
        "vars.prodigy_source": "my_export.jsonl",
        "vars.transformer": str(tiny_bert),
        "vars.max_steps": 6,
        "vars.eval_frequency": 3,
    }
    cwd = os.getcwd()
    try:
        os.chdir(root)
        project_run(root, "all", overrides=overrides, capture=False)
    finally:
        os.chdir(cwd)
    return root


@pytest.mark.slow
def test_eval_data_came_from_the_users_export(own_run):
    report = json.loads((own_run / "corpus/report.json").read_text(encoding="utf8"))
    assert [(s["source"], s["role"]) for s in report["sources"]] == [("my_export.jsonl", "train")]
    assert report["settings"]["eval_split"] == 0.2
    note_ids = {json.loads(line)["meta"]["doc_id"] for line in EXPORT.open(encoding="utf8")}
    dev = list(DocBin().from_disk(own_run / "corpus/dev.spacy").get_docs(spacy.blank("en").vocab))
    train = list(DocBin().from_disk(own_run / "corpus/train.spacy").get_docs(spacy.blank("en").vocab))
    dev_keys = {d.user_data["doc_key"] for d in dev}
    assert dev and dev_keys <= {f"doc:{i}" for i in note_ids}
    assert dev_keys.isdisjoint(d.user_data["doc_key"] for d in train)  # split by whole notes
    assert {s.label_ for d in dev for s in d.spans["sc"]} == OWN_LABELS
    assert report["label_check"]["labels"]["dev"] == sorted(OWN_LABELS)


@pytest.mark.slow
def test_model_was_evaluated_on_its_own_labels(own_run):
    metrics = json.loads((own_run / "metrics/package.json").read_text(encoding="utf8"))
    assert set(metrics["per_label"]) == OWN_LABELS
    assert metrics["spans"]["gold"] == sum(
        len(d.spans["sc"])
        for d in DocBin().from_disk(own_run / "corpus/dev.spacy").get_docs(spacy.blank("en").vocab)
    )
    assert 0.0 < metrics["suggester"]["recall"] <= 1.0
    fit = json.loads((own_run / "training/suggester_fit.json").read_text(encoding="utf8"))
    assert fit["heldout"]["chosen"] in ("learned", "learned, wider", "n-grams", "n-grams, widest")


@pytest.mark.slow
def test_card_reports_the_users_labels_and_no_craft_label(own_run):
    card = (own_run / "hub/en_biomed_spancat/README.md").read_text(encoding="utf8")
    for label in OWN_LABELS:
        assert f"`{label}`" in card
    for label in CRAFT_LABELS:
        assert f"`{label}`" not in card and f"- {label}\n" not in card
    assert "CRAFT" not in card
    assert "suggester recall (ceiling on recall)" in card
