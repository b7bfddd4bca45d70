"""`weasel run all` on a user's own export (not CRAFT, its own labels), setting
nothing but the source: eval data must come from that export, and the card
must report its labels and no CRAFT label.

Runs on a copy of the project WITHOUT the CRAFT sample, with the tiny local
BERT and a few training steps (as test_workflow.py does on the sample). Then
`weasel run uptrain` on notes held out of that export: the CPU models, the
teacher's labels and the student must all be the user's, never CRAFT's, even
with a CRAFT mirror where the project looks for one.
"""
import json
import os
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin
from conftest import copy_project

ROOT = Path(__file__).resolve().parent.parent
EXPORT = ROOT / "tests" / "data" / "byod" / "clinical_notes.jsonl"
OWN_LABELS = {"DRUG", "DOSE", "DISEASE"}
CRAFT_LABELS = {"CHEBI", "CL", "GO_BP", "GO_CC", "GO_MF", "MONDO", "MOP", "NCBITaxon", "PR", "SO", "UBERON"}


HELD_OUT_NOTES = {"note-11", "note-12", "note-13", "note-14"}


def _notes(held_out: bool):
    lines = EXPORT.read_text(encoding="utf8").splitlines(keepends=True)
    return [line for line in lines if (json.loads(line)["meta"]["doc_id"] in HELD_OUT_NOTES) == held_out]


def _run(root, workflow, overrides):
    from weasel.cli.run import project_run

    cwd = os.getcwd()
    try:
        os.chdir(root)
        project_run(root, workflow, overrides=overrides, capture=False)
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def own_run(tmp_path_factory, tiny_bert):
    root = copy_project(tmp_path_factory.mktemp("byod"))
    (root / "my_export.jsonl").write_text("".join(_notes(held_out=False)), encoding="utf8")
    overrides = {
        "vars.prodigy_source": "my_export.jsonl",
        "vars.transformer": str(tiny_bert),
        "vars.max_steps": 6,
        "vars.eval_frequency": 3,
    }
    _run(root, "all", overrides)
    return root


@pytest.fixture(scope="module")
def own_uptrain(own_run):
    """`weasel run uptrain` after `all`: held-out notes of the same export, a
    decoy CRAFT mirror (CRAFT's three files, CHEBI spans) at vars.craft_mirror."""
    root = own_run
    (root / "my_heldout.jsonl").write_text("".join(_notes(held_out=True)), encoding="utf8")
    decoy = root / "decoy_mirror"
    decoy.mkdir()
    task = {"text": "Aspirin is a drug.", "spans": [{"start": 0, "end": 7, "label": "CHEBI"}], "answer": "accept",
            "meta": {"doc_id": "craft-1"}}
    for name in ("craft_train", "craft_dev", "craft_test"):
        (decoy / f"{name}.jsonl").write_text(json.dumps(task) + "\n", encoding="utf8")
    overrides = {
        "vars.uptrain_heldout": "my_heldout.jsonl",
        "vars.uptrain_heldout_datasets": "",
        "vars.craft_mirror": "decoy_mirror",
        "vars.uptrain_max_steps": 6,
        "vars.distill_max_steps": 6,
        "vars.eval_frequency": 3,
    }
    _run(root, "uptrain", overrides)
    return root


@pytest.mark.slow
def test_eval_data_came_from_the_users_export(own_run):
    report = json.loads((own_run / "corpus/report.json").read_text(encoding="utf8"))
    assert [(s["source"], s["role"]) for s in report["sources"]] == [("my_export.jsonl", "train")]
    assert report["settings"]["eval_split"] == 0.2
    note_ids = {json.loads(line)["meta"]["doc_id"] for line in _notes(held_out=False)}
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


@pytest.mark.slow
def test_uptrain_reads_the_users_held_out_notes_not_a_craft_mirror(own_uptrain):
    heldout = json.loads((own_uptrain / "corpus/uptrain/heldout.json").read_text(encoding="utf8"))
    assert heldout["source"] == "my_heldout.jsonl"
    assert heldout["documents"]["unlabelled"] + heldout["documents"]["test"] == len(HELD_OUT_NOTES)
    vocab = spacy.blank("en").vocab
    test = list(DocBin().from_disk(own_uptrain / "corpus/uptrain/test.spacy").get_docs(vocab))
    assert test and {d.user_data["doc_key"] for d in test} <= {f"doc:{n}" for n in HELD_OUT_NOTES}
    assert {s.label_ for d in test for s in d.spans["sc"]} <= OWN_LABELS
    unlabelled = [json.loads(line) for line in (own_uptrain / "corpus/uptrain/unlabelled.jsonl").open(encoding="utf8")]
    assert unlabelled and {r["meta"]["doc_id"] for r in unlabelled} <= HELD_OUT_NOTES
    assert all("spans" not in r for r in unlabelled)


@pytest.mark.slow
def test_uptrain_models_and_comparison_are_the_users(own_uptrain):
    for model in ("cpu-gold", "cpu-uptrained", "cpu-distilled"):
        nlp = spacy.load(own_uptrain / "training" / model / "model-tuned")
        assert set(nlp.get_pipe("spancat").labels) == OWN_LABELS, model
    labels = json.loads((own_uptrain / "metrics/teacher-labels.json").read_text(encoding="utf8"))
    assert labels["vectors"]["words"] > 0
    result = json.loads((own_uptrain / "metrics/uptrain.json").read_text(encoding="utf8"))
    assert set(result["models"]) == {"transformer", "cpu_gold", "cpu_uptrained", "cpu_distilled"}
    for model in result["models"].values():
        assert set(model["scores"]) == {"dev", "test"}
    assert result["target"]["student"] == "cpu_distilled" and isinstance(result["target"]["met"], bool)
    table = (own_uptrain / "metrics/uptrain.md").read_text(encoding="utf8")
    assert "Target met: **" in table and "CRAFT" not in table
