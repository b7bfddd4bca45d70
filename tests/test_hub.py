"""The Hub step: the model card against its metrics, the staged folder, the
push against a local Hub (tests/hub_server.py) with each failure, and the
download path a user takes (pip install from the resolve URL into a fresh venv).

The wheel is a real one: a tiny transformer + spancat pipeline packaged by the
project's own packaging code, evaluated by the project's own scorer.
"""
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import spacy
from spacy.tokens import Span
from spacy.training import Example

from biomed_spancat.util import InputFileError
from biomed_spancat.publish.hub import (
    CARD_NAME,
    CHART_NAME,
    HubError,
    build_card,
    check_wheel_name,
    front_matter,
    load_metrics,
    normalize_metrics,
    parse_card,
    read_wheel,
    stage_hub,
)
from hub_server import FakeHub, HubUser, validate_card_data

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
BIOMEDBERT = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract-fulltext"
STAND_IN = "sentence-transformers/all-MiniLM-L6-v2"
VERSION = "0.0.1"
WHEEL_NAME = f"en_biomed_spancat-{VERSION}-py3-none-any.whl"
LABELS = ["PR", "UBERON", "MONDO", "NCBITaxon"]
TEXTS = [
    "BMP2 and BMP4 regulate limb patterning.",
    "Mutations in the Brca1 gene cause breast cancer in mice.",
]
SPANS = [
    [(0, 1, "PR"), (2, 3, "PR"), (4, 5, "UBERON")],
    [(3, 4, "PR"), (7, 9, "MONDO"), (8, 9, "UBERON"), (10, 11, "NCBITaxon")],
]
# Text that must never reach the card: stands for patient data in the corpus report.
CANARY = "Patient Jane Roe, 1961-04-02, MRN 0042"
# Tokens built at run time, never committed; each test that uses one checks it leaks nowhere.
TOKEN = "hf_" + secrets.token_hex(16)
TOKEN_ORG = "hf_" + secrets.token_hex(16)
TOKEN_READ = "hf_" + secrets.token_hex(16)


# --- fixtures: a real tiny wheel, its metrics, a staged folder -------------------------------------


def _gold_docs(nlp):
    docs = []
    for text, spans in zip(TEXTS, SPANS):
        doc = nlp.make_doc(text)
        doc.spans["sc"] = [Span(doc, s, e, label=lab) for s, e, lab in spans]
        docs.append(doc)
    return docs


def _corpus_report() -> Dict:
    """convert's report.json shape, reduced; the canary sits where text could leak."""
    per_label = {lab: {"spans": 10 + i, "overlapping": i} for i, lab in enumerate(LABELS)}
    return {
        "splits": {
            "train": {"documents": 2, "docs": 7, "tokens": 180, "spans": 46, "spans_overlapping": 6,
                      "per_label": per_label, "example_text": CANARY},
            "dev": {"documents": 1, "docs": 2, "tokens": 18, "spans": 7, "spans_overlapping": 2, "per_label": {}},
        },
        "rejected_examples": {"bad_span": [CANARY]},
    }


# Words planted in the training and dev text, and nowhere else: neither may reach the wheel, the
# staged folder or the card (spaCy puts every token it meets into the vocab's strings).
TRAIN_CANARY = "Zqvtrainwordx" + secrets.token_hex(4)
DEV_CANARY = "Zqvdevwordx" + secrets.token_hex(4)
TRAIN_TEXT = f"Expression of {TRAIN_CANARY} and BMP4 in the limb bud of mice."
DEV_TEXT = f"The {DEV_CANARY} gene is expressed in the mouse lens."


@pytest.fixture(scope="session")
def tiny_package(tiny_bert, tmp_path_factory):
    """(wheel, packaged model dir, training output dir): transformer (biomed.BiomedBERT.v1 over the
    tiny BERT) + spancat, trained a few steps on text with TRAIN_CANARY and scored on text with DEV_CANARY,
    as `spacy train` does."""
    from biomed_spancat.publish.packaging import build_meta, package_pipeline

    spacy.util.fix_random_seed(0)
    root = tmp_path_factory.mktemp("tiny_package")
    # A copy of the tiny BERT, deleted once the pipeline is saved: the wheel must not need it.
    bert = shutil.copytree(tiny_bert, root / "bert")
    nlp = spacy.blank("en")
    nlp.add_pipe("transformer", config={"model": {
        "@architectures": "biomed.BiomedBERT.v1", "name": str(bert), "window": 16, "stride": 12}})
    nlp.add_pipe("spancat", config={
        "spans_key": "sc",
        "suggester": {"@misc": "spacy.ngram_suggester.v1", "sizes": [1, 2]},
        "model": {"tok2vec": {"@architectures": "spacy-transformers.TransformerListener.v1",
                              "grad_factor": 1.0, "pooling": {"@layers": "reduce_mean.v1"}}},
    })
    train = _gold_docs(nlp)
    canary_doc = nlp.make_doc(TRAIN_TEXT)
    canary_doc.spans["sc"] = [Span(canary_doc, 2, 3, label="PR"), Span(canary_doc, 4, 5, label="PR")]
    train.append(canary_doc)
    examples = [Example(nlp.make_doc(d.text), d) for d in train]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(3):
        nlp.update(examples, sgd=optimizer)
    dev = nlp.make_doc(DEV_TEXT)
    dev.spans["sc"] = [Span(dev, 1, 2, label="PR")]
    nlp.evaluate([Example(nlp.make_doc(DEV_TEXT), dev)])
    nlp.to_disk(root / "model")
    shutil.rmtree(bert)
    source = {"requested": BIOMEDBERT, "used": STAND_IN, "stand_in": True, "origin": "stand-in",
              "license": "apache-2.0", "url": f"https://huggingface.co/{STAND_IN}", "note": "offline"}
    meta = build_meta("biomed_spancat", VERSION, source, _corpus_report(), license="cc-by-3.0")
    wheel = package_pipeline(root / "model", root / "packages", meta)
    model_dir = wheel.parent.parent / "en_biomed_spancat" / f"en_biomed_spancat-{VERSION}"
    return wheel, model_dir, root / "model"


@pytest.fixture(scope="session")
def tiny_wheel(tiny_package) -> Path:
    return tiny_package[0]


@pytest.fixture(scope="session")
def tiny_metrics(tiny_package, tmp_path_factory) -> Path:
    """The project's evaluation of the packaged pipeline, as evaluate-package writes it."""
    from biomed_spancat.evaluation.evaluate import evaluate_pipeline
    from biomed_spancat.util import write_json

    nlp = spacy.load(tiny_package[1])
    result, _ = evaluate_pipeline(nlp, _gold_docs(nlp), "sc", model="en_biomed_spancat",
                                  data="corpus/dev.spacy", progress=False)
    return write_json(result.metrics, tmp_path_factory.mktemp("metrics") / "package.json")


@pytest.fixture(scope="session")
def tiny_threshold(tiny_metrics, tmp_path_factory) -> Path:
    """tune-threshold's record for the tiny wheel: the threshold it uses, chosen on the data it was scored on."""
    metrics = json.loads(tiny_metrics.read_text())
    record = {"schema": "biomed.threshold.v1", "data": metrics["data"]["path"],
              "threshold": metrics["model"]["threshold"], "trials": []}
    path = tmp_path_factory.mktemp("threshold") / "threshold.json"
    path.write_text(json.dumps(record))
    return path


@pytest.fixture(scope="session")
def staged(tiny_wheel, tiny_metrics, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hub") / "en_biomed_spancat"
    stage_hub(tiny_wheel, out, tiny_metrics, "alice", "en_biomed_spancat", "cc-by-3.0")
    return out


def _card(folder: Path):
    return parse_card((folder / CARD_NAME).read_text(encoding="utf8"))


def _tree_hash(folder: Path) -> Dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _table_row(body: str, first_cell: str, after: str = "") -> List[str]:
    """The cells after the first, of the first table row starting with `first_cell` after `after`."""
    for line in body[body.index(after):].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells[1:]
    raise AssertionError(f"no table row starting with {first_cell!r}")


def _pct(x: Optional[float]) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


# --- the card -----------------------------------------------------------------------------------------


def test_front_matter_is_what_the_hub_reads(staged):
    fm, _ = _card(staged)
    assert fm["library_name"] == "spacy"
    assert fm["language"] == ["en"]
    assert fm["license"] == "cc-by-3.0"
    assert fm["pipeline_tag"] == "token-classification"
    assert fm["tags"][:3] == ["spacy", "span-categorization", "biomedical"]
    assert set(LABELS) <= set(fm["tags"])
    # the transformer actually trained, not the one requested
    assert fm["base_model"] == STAND_IN
    assert fm["model-index"][0]["name"] == "en_biomed_spancat"
    assert validate_card_data(fm) == []
    # huggingface_hub reads the model-index back into eval results
    from huggingface_hub import ModelCard

    card = ModelCard((staged / CARD_NAME).read_text(encoding="utf8"))
    assert card.data.model_name == "en_biomed_spancat"
    assert {r.metric_name for r in card.data.eval_results} >= {"Spans P", "Spans R", "Spans F"}


def test_every_front_matter_number_matches_the_metrics(staged, tiny_metrics):
    metrics = json.loads(tiny_metrics.read_text())
    fm, _ = _card(staged)
    (result,) = fm["model-index"][0]["results"]
    assert result["task"]["type"] == "token-classification"
    got = {m["name"]: (m["type"], m["value"]) for m in result["metrics"]}
    expected = {}
    names = {"p": ("precision", "P"), "r": ("recall", "R"), "f": ("f1", "F")}
    for k, (mtype, short) in names.items():
        if metrics["spans"][k] is not None:
            expected[f"Spans {short}"] = (mtype, round(metrics["spans"][k], 4))
        for label in LABELS:
            value = metrics["per_label"].get(label, {}).get(k)
            if value is not None:
                expected[f"{label} {short}"] = (mtype, round(value, 4))
    assert got == expected
    assert len(expected) >= 3


def test_every_table_number_matches_the_metrics(staged, tiny_metrics):
    metrics = json.loads(tiny_metrics.read_text())
    _, body = _card(staged)
    spans = metrics["spans"]
    assert _table_row(body, "all spans") == [_pct(spans["p"]), _pct(spans["r"]), _pct(spans["f"]), str(spans["gold"])]
    for label in LABELS:
        s = metrics["per_label"].get(label)
        row = _table_row(body, f"`{label}`", after="### Per label")
        if s is None:
            assert row[:3] == ["—", "—", "—"]
        else:
            assert row[:4] == [_pct(s["p"]), _pct(s["r"]), _pct(s["f"]), f"{s['gold']:,}"]
    for group, s in metrics["groups"].items():
        row = next(r for r in body.splitlines() if r.startswith(f"| {group}: "))
        cells = [c.strip() for c in row.strip().strip("|").split("|")][1:]
        assert cells == [_pct(s["p"]), _pct(s["r"]), _pct(s["f"]), f"{s['gold']:,}"]
    assert _table_row(body, "suggester recall (ceiling on recall)") == [_pct(metrics["suggester"]["recall"])]


def test_card_body_sections(staged):
    _, body = _card(staged)
    url = f"https://huggingface.co/alice/en_biomed_spancat/resolve/main/{WHEEL_NAME}"
    assert f"pip install {url}\n" in body
    assert "-any-py3-none-any.whl" not in body  # never the renamed wheel of spacy-huggingface-hub
    assert 'spacy.load("en_biomed_spancat")' in body
    assert 'doc.spans["sc"]' in body and 'spans.attrs["scores"]' in body
    assert f"![Spans F per label]({CHART_NAME})" in body
    for heading in ("## What it predicts", "## Install", "## Usage", "## Evaluation", "### Per label",
                    "### Overlapping vs isolated spans", "## Training data", "## How it was built",
                    "## Limitations"):
        assert heading in body
    # what each label means and how many training spans it has (from meta.json)
    assert _table_row(body, "`PR`") and "proteins and genes" in body
    report = _corpus_report()["splits"]["train"]["per_label"]
    for label in LABELS:
        row = _table_row(body, f"`{label}`", after="## What it predicts")
        assert row[1] == str(report[label]["spans"])
    assert _table_row(body, "train")[:5] == ["2", "7", "180", "46", "6"]
    # the stand-in is announced before anything else, and in the limitations
    notice = body.index("**Notice: trained on an offline stand-in, not BiomedBERT.**")
    assert notice < body.index("## What it predicts")
    assert f"`{BIOMEDBERT}`" in body and f"`{STAND_IN}`" in body
    assert "stand-in" in body[body.index("## Limitations"):]


def test_card_shows_counts_never_training_text(staged, tiny_wheel):
    text = (staged / CARD_NAME).read_text(encoding="utf8")
    assert CANARY not in text
    for doc_text in TEXTS:
        assert doc_text not in text


def _wheel_files(wheel: Path) -> Dict[str, bytes]:
    with zipfile.ZipFile(wheel) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def test_no_word_of_the_training_or_dev_text_ships(tiny_package, staged):
    wheel, model_dir, trained = tiny_package
    canaries = [c.encode() for word in (TRAIN_CANARY, DEV_CANARY) for c in (word, word.lower())]
    # spaCy did put both words (and their lower-case forms) into the trained pipeline's vocab ...
    trained_strings = set(json.loads((trained / "vocab" / "strings.json").read_text(encoding="utf8")))
    assert {TRAIN_CANARY, DEV_CANARY, TRAIN_CANARY.lower(), DEV_CANARY.lower()} <= trained_strings
    # ... and no byte of any file in the wheel (msgpack binaries included) holds them
    files = _wheel_files(wheel)
    assert any(name.endswith("vocab/strings.json") for name in files)
    for name, data in files.items():
        for canary in canaries:
            assert canary not in data, f"{canary!r} shipped in {name}"
    for p in staged.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            assert not any(c in data for c in canaries), p
    # what the packaged vocab keeps: the labels and the blank English vocab's own strings, no more
    packaged = set(json.loads((model_dir / "vocab" / "strings.json").read_text(encoding="utf8")))
    assert set(LABELS) <= packaged
    assert packaged <= set(spacy.blank("en").vocab.strings) | set(LABELS)
    assert len(packaged) < len(trained_strings)


def test_pruned_vocab_predicts_exactly_as_the_trained_pipeline(tiny_package):
    from biomed_spancat.publish.vocab_prune import predictions

    _, model_dir, trained = tiny_package
    texts = ["Loss of Pax6 in the embryonic mouse eye causes aniridia.",
             f"BMP4 and {TRAIN_CANARY} were absent; {DEV_CANARY} was not.", ""]
    got = []
    for path in (trained, model_dir):
        nlp = spacy.load(path)
        nlp.get_pipe("spancat").cfg["threshold"] = 0.0  # every candidate comes back, with its score
        got.append(predictions(nlp, texts))
    assert len(got[0]) > 20
    assert got[0] == got[1]


def test_meta_keeps_counts_never_strings_of_the_corpus_report(tiny_wheel):
    meta, _ = read_wheel(tiny_wheel)
    assert CANARY not in json.dumps(meta)
    train = meta["training_data"]["splits"]["train"]
    assert train["spans"] == 46 and train["per_label"]["PR"] == {"spans": 10, "overlapping": 0}
    assert "example_text" not in train


def test_card_metadata_is_a_valid_model_card(staged, fake_hub, hub_env):
    """Parsed back by huggingface_hub, and accepted by the Hub's metadata check (the local Hub's validate-yaml)."""
    from huggingface_hub import ModelCard

    text = (staged / CARD_NAME).read_text(encoding="utf8")
    card = ModelCard(text)
    fm, _ = parse_card(text)
    assert card.data.to_dict() == fm
    results = card.data.eval_results
    assert {(r.task_type, r.dataset_split, r.verified) for r in results} == {("token-classification", "dev", False)}
    assert [r.metric_type for r in results[:3]] == ["precision", "recall", "f1"]
    # what ModelCard.validate() posts (it always posts to huggingface.co), posted to the local Hub
    import urllib.request

    body = json.dumps({"repoType": "model", "content": str(card)}).encode()
    req = urllib.request.Request(f"{fake_hub.url}/api/validate-yaml", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as answer:
        assert answer.status == 200 and json.loads(answer.read()) == {"warnings": []}


def test_card_template_is_package_data():
    from biomed_spancat.publish.hub import TEMPLATE

    assert TEMPLATE.is_file() and TEMPLATE.suffix == ".j2"
    pyproject = (ROOT / "components" / "pyproject.toml").read_text()
    assert '"biomed_spancat.publish.hub" = ["templates/*.j2"]' in pyproject


def test_card_example_is_what_the_wheel_returns(staged, tiny_package):
    from biomed_spancat.publish.hub.card import EXAMPLE_ROWS, EXAMPLE_TEXT

    _, body = _card(staged)
    assert f'doc = nlp("{EXAMPLE_TEXT}")' in body
    nlp = spacy.load(tiny_package[1])
    doc = nlp(EXAMPLE_TEXT)
    group = doc.spans["sc"]
    expected = [(f"{s.start_char} {s.end_char} {s.label_} {s.text}", float(score))
                for s, score in zip(group, group.attrs["scores"])]
    assert len(expected) > 0
    block = body[body.index("What this wheel prints for that sentence"):]
    assert block.startswith(f"What this wheel prints for that sentence ({len(expected)} spans):")
    lines = block.split("```text\n", 1)[1].split("\n```", 1)[0].splitlines()
    # the tiny model's count varies with the CPU's numerics: past EXAMPLE_ROWS the rest are counted
    more = len(expected) - EXAMPLE_ROWS
    if more > 0:
        assert lines[-1] == f"... and {more} more"
        lines = lines[:-1]
    shown = [line.rsplit(" ", 1) for line in lines]
    assert [span for span, _ in shown] == [span for span, _ in expected[:EXAMPLE_ROWS]]
    # the card was made in another process (the unpacked wheel); scores are printed to 3 decimals
    for (_, printed), (_, score) in zip(shown, expected):
        assert abs(float(printed) - score) <= 0.0011


def test_card_example_sentence_is_not_from_the_corpus(craft_sample_texts):
    from biomed_spancat.publish.hub import EXAMPLE_TEXT

    assert craft_sample_texts  # the sample was read
    assert not any(EXAMPLE_TEXT in text for text in craft_sample_texts)
    assert not any(text and text in EXAMPLE_TEXT for text in craft_sample_texts)


@pytest.fixture(scope="session")
def craft_sample_texts() -> List[str]:
    """The texts of the shipped CRAFT sample, and of the shared CRAFT exports when present."""
    files = sorted((ROOT / "assets" / "craft_sample").glob("*.jsonl"))
    shared = ROOT.parent / "shared" / "data" / "craft"
    files += sorted(shared.glob("*.jsonl")) if shared.is_dir() else []
    return [json.loads(line).get("text", "") for f in files for line in f.open(encoding="utf8") if line.strip()]


def _prov_card(metrics_path: str, record: Optional[Dict]) -> str:
    from biomed_spancat.publish.hub import ThresholdRecord

    cm = _cm()
    cm.data = {"path": metrics_path, "docs": 3}
    cm.threshold = 0.35
    rec = ThresholdRecord(Path("metrics/threshold.json"), **record) if record else None
    return build_card(_meta(requested=BIOMEDBERT, used=BIOMEDBERT, stand_in=False), cm,
                      spancat={"spans_key": "sc", "component": "spancat"}, repo_id="a/b",
                      wheel_name="en_biomed_spancat-1.0.0-py3-none-any.whl", license_id="mit",
                      threshold_record=rec)


def test_card_says_dev_scores_are_optimistic_when_dev_chose_the_threshold():
    fm, body = parse_card(_prov_card("corpus/dev.spacy", {"data": "corpus/dev.spacy", "threshold": 0.35}))
    evaluation = body[body.index("## Evaluation"):body.index("### Per label")]
    assert ("Scores of the packaged pipeline on the dev split of CRAFT (`corpus/dev.spacy`), in percent"
            in evaluation)
    assert ("**These scores are optimistic.** The same dev data chose the threshold (0.35, the best F among the "
            "thresholds tried) and the training checkpoint kept, and no held-out test set was scored: expect "
            "lower scores on new text of the same kind.") in evaluation
    assert ("- The scores above are on the dev data that chose the threshold and the checkpoint, so they are "
            "optimistic.") in body
    assert fm["model-index"][0]["results"][0]["dataset"]["split"] == "dev"


def test_card_never_shows_an_absolute_data_path(tmp_path):
    _, body = parse_card(_prov_card(str(tmp_path / "corpus" / "dev.spacy"),
                                    {"data": str(tmp_path / "corpus" / "dev.spacy"), "threshold": 0.35}))
    assert str(tmp_path) not in body
    assert "(`corpus/dev.spacy`)" in body and "**These scores are optimistic.**" in body


def test_card_reports_held_out_scores_plainly():
    fm, body = parse_card(_prov_card("corpus/test.spacy", {"data": "corpus/dev.spacy", "threshold": 0.35}))
    assert ("Scores of the packaged pipeline on the test split of CRAFT (`corpus/test.spacy`), held-out data "
            "used neither to train the pipeline nor to choose its threshold (chosen on `corpus/dev.spacy`), in "
            "percent") in body
    assert "optimistic" not in body
    dataset = fm["model-index"][0]["results"][0]["dataset"]
    assert dataset == {"name": "test split of CRAFT", "type": "craft", "split": "test"}


def test_card_says_when_the_threshold_origin_is_not_recorded():
    _, body = parse_card(_prov_card("corpus/dev.spacy", None))
    assert ("How the threshold (0.35) was chosen is not recorded with these scores. If it was tuned on this same "
            "data, as `weasel run all` does on dev, the scores are optimistic.") in body


def test_threshold_record_of_another_run_is_refused(tiny_wheel, tiny_metrics, tmp_path):
    record = tmp_path / "threshold.json"
    record.write_text(json.dumps({"data": "corpus/dev.spacy", "threshold": 0.05}))
    with pytest.raises(HubError, match=re.escape(f"{record}: records threshold 0.05, but the evaluated wheel "
                                                 "uses 0.5: it is the record of another run")):
        stage_hub(tiny_wheel, tmp_path / "hub", tiny_metrics, "alice", "en_biomed_spancat", "cc-by-3.0",
                  threshold_record=record)
    record.write_text(json.dumps({"threshold": 0.5}))
    with pytest.raises(HubError, match="expected tune-threshold's record with 'data'"):
        stage_hub(tiny_wheel, tmp_path / "hub", tiny_metrics, "alice", "en_biomed_spancat", "cc-by-3.0",
                  threshold_record=record)
    assert not (tmp_path / "hub").exists()


def test_stage_hub_names_the_endpoint_in_the_install_line(tiny_wheel, tiny_metrics, tmp_path):
    out = stage_hub(tiny_wheel, tmp_path / "hub", tiny_metrics, "alice", "en_biomed_spancat", "cc-by-3.0",
                    endpoint="https://hub.example.org/")
    _, body = parse_card(out.card.read_text(encoding="utf8"))
    assert f"pip install https://hub.example.org/alice/en_biomed_spancat/resolve/main/{WHEEL_NAME}\n" in body


def _meta(**base_model) -> Dict:
    return {
        "lang": "en", "name": "biomed_spancat", "version": "1.0.0", "labels": {"spancat": ["PR"]},
        "base_model": base_model, "sources": [{"name": "CRAFT (x)", "url": "https://github.com/x"}],
    }


def _cm(p=0.5, r=0.25, f=1 / 3):
    return normalize_metrics({"spans": {"p": p, "r": r, "f": f},
                              "per_label": {"PR": {"p": p, "r": r, "f": f}}}, "sc", "m.json")


def test_card_without_stand_in_names_biomedbert_and_no_notice():
    meta = _meta(requested=BIOMEDBERT, used=BIOMEDBERT, stand_in=False)
    card = build_card(meta, _cm(), spancat={"spans_key": "sc", "component": "spancat"}, repo_id="a/b",
                      wheel_name="en_biomed_spancat-1.0.0-py3-none-any.whl", license_id="cc-by-3.0")
    fm, body = parse_card(card)
    assert fm["base_model"] == BIOMEDBERT
    assert "Notice" not in body and "stand-in" not in body


def test_local_transformer_path_is_not_given_as_base_model(tmp_path):
    meta = _meta(requested=str(tmp_path), used=str(tmp_path), stand_in=False)
    fm = front_matter(meta, _cm(), "cc-by-3.0", ["PR"])
    assert "base_model" not in fm


@pytest.mark.parametrize("license_id,expected", [
    ("cc-by-3.0", {"license": "cc-by-3.0"}),
    ("Apache-2.0", {"license": "apache-2.0"}),
    ("CRAFT research licence", {"license": "other", "license_name": "craft-research-licence"}),
])
def test_license_var_becomes_a_hub_license(license_id, expected):
    fm = front_matter(_meta(), _cm(), license_id, ["PR"])
    assert {k: fm[k] for k in expected} == expected
    assert validate_card_data(fm) == []


def test_spacy_scorer_layout_is_read_too():
    raw = {"spans_sc_p": 0.8, "spans_sc_r": 0.6, "spans_sc_f": 0.6857,
           "spans_sc_per_type": {"PR": {"p": 0.8, "r": 0.6, "f": 0.6857}},
           "overlap": {"overlapping": {"p": 0.5, "r": 0.4, "f": 0.444}}, "threshold": 0.4, "extra": [1]}
    cm = normalize_metrics(raw, "sc", "m.json")
    assert cm.overall == {"p": 0.8, "r": 0.6, "f": 0.6857}
    assert cm.groups["overlapping"]["f"] == 0.444 and cm.threshold == 0.4


def test_baselines_are_tabled_against_the_model(tiny_wheel, tiny_metrics, tmp_path):
    metrics = json.loads(tiny_metrics.read_text())
    baseline = tmp_path / "bio.json"
    bio = {"spans": {"p": 0.1, "r": 0.2, "f": 0.1333}, "per_label": {}, "data": dict(metrics["data"]),
           "groups": {"overlapping": {"p": 0.0, "r": 0.0, "f": 0.0}}}
    baseline.write_text(json.dumps(bio))
    out = stage_hub(tiny_wheel, tmp_path / "hub", tiny_metrics, "alice", "en_biomed_spancat", "cc-by-3.0",
                    baselines={"BIO tagger": baseline})
    _, body = parse_card(out.card.read_text(encoding="utf8"))
    assert "### Baselines" in body
    assert _table_row(body, "BIO tagger") == ["10.00", "20.00", "13.33", "0.00"]
    spans, overlapping = metrics["spans"], metrics["groups"]["overlapping"]
    assert _table_row(body, "en_biomed_spancat (this model)") == [
        _pct(spans["p"]), _pct(spans["r"]), _pct(spans["f"]), _pct(overlapping["f"])]
    # a baseline scored on other data is refused
    bio["data"]["gold_spans"] += 1
    baseline.write_text(json.dumps(bio))
    with pytest.raises(HubError, match="baseline 'BIO tagger' was scored on other data than the wheel"):
        stage_hub(tiny_wheel, tmp_path / "hub2", tiny_metrics, "alice", "en_biomed_spancat", "cc-by-3.0",
                  baselines={"BIO tagger": baseline})


@pytest.mark.parametrize("content,message", [
    ("{not json", "line 1: not valid JSON (Expecting property name"),
    ('{"spans": {"p": 81.2, "r": 0.5, "f": 0.6}, "per_label": {}}', "'spans'.p: 81.2 is not a fraction"),
    ('{"spans": {"p": 0.8, "r": 0.5, "f": 0.6}, "per_label": {"PR": {"p": 0.1, "r": 0.1}}}', "'per_label.PR': no 'f'"),
    ('{"accuracy": 0.9}', "neither the project's metrics"),
    ('{"spans": {"p": 0.8, "r": 0.5, "f": 0.6}, "per_label": {}, "model": {"spans_key": "ents"}}',
     "for spans key 'ents'"),
    ('[1, 2]', "expected a JSON object (metrics file), got list"),
])
def test_bad_metrics_name_the_file_and_the_key(tmp_path, content, message):
    path = tmp_path / "package.json"
    path.write_text(content)
    # an unreadable file is an InputFileError (one type for every step's JSON inputs), bad scores a HubError
    error = InputFileError if content.startswith(("{not", "[")) else HubError
    with pytest.raises(error) as err:
        load_metrics(path, "sc")
    assert str(path) in str(err.value) and message in str(err.value)


def test_metrics_of_another_build_are_refused(tiny_wheel, tiny_metrics, tmp_path):
    for key, value, message in (("version", "0.0.9", "en_biomed_spancat 0.0.9, not of the wheel"),
                                ("name", "en_pipeline", "en_pipeline 0.0.1, not of the wheel"),
                                ("labels", ["PR"], "labels ['PR']")):
        raw = json.loads(tiny_metrics.read_text())
        raw["model"][key] = value
        path = tmp_path / f"{key}.json"
        path.write_text(json.dumps(raw))
        with pytest.raises(HubError, match=re.escape(message)):
            stage_hub(tiny_wheel, tmp_path / "hub", path, "alice", "en_biomed_spancat", "cc-by-3.0")
        assert not (tmp_path / "hub").exists()


# --- staging ------------------------------------------------------------------------------------------


def test_stage_writes_exactly_card_wheel_chart_without_network(tiny_wheel, tiny_metrics, tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("stage-hub tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    out = tmp_path / "hub" / "en_biomed_spancat"
    out.mkdir(parents=True)
    (out / "stale-0.0.0-py3-none-any.whl").write_bytes(b"old")
    staged = stage_hub(tiny_wheel, out, tiny_metrics, "alice", "en_biomed_spancat", "cc-by-3.0")
    assert sorted(p.name for p in out.iterdir()) == sorted([CARD_NAME, CHART_NAME, WHEEL_NAME])
    assert staged.files == sorted([CARD_NAME, CHART_NAME, WHEEL_NAME])
    assert (out / WHEEL_NAME).read_bytes() == tiny_wheel.read_bytes()
    assert (out / CHART_NAME).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["en_biomed_spancat"]  # no temp folders left
    first = (out / CARD_NAME).read_text()
    stage_hub(tiny_wheel, out, tiny_metrics, "alice", "en_biomed_spancat", "cc-by-3.0")
    assert (out / CARD_NAME).read_text() == first  # generated, deterministic


def test_renamed_wheel_is_refused(tiny_wheel, tiny_metrics, tmp_path):
    renamed = tmp_path / "en_biomed_spancat-any-py3-none-any.whl"
    shutil.copy(tiny_wheel, renamed)
    with pytest.raises(HubError, match=r"not a wheel file name current pip installs.*[Ii]nvalid version"):
        stage_hub(renamed, tmp_path / "hub", tiny_metrics, "alice", "en_biomed_spancat", "cc-by-3.0")
    assert check_wheel_name(tiny_wheel) == ("en_biomed_spancat", VERSION)


def test_wheel_name_must_match_its_meta(tiny_wheel, tmp_path):
    other = tmp_path / "en_biomed_spancat-9.9.9-py3-none-any.whl"
    shutil.copy(tiny_wheel, other)
    with pytest.raises(HubError, match="file name says en_biomed_spancat 9.9.9 but its meta.json says"):
        read_wheel(other)


def test_stage_hub_cli(tiny_wheel, tiny_metrics, tmp_path):
    out = tmp_path / "hub" / "en_biomed_spancat"
    cmd = [PY, "-m", "scripts.stage_hub", str(tiny_wheel), str(out), "--metrics", str(tiny_metrics),
           "--namespace", "your-hf-username", "--repo", "en_biomed_spancat", "--license", "cc-by-3.0"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())
    assert "Staged 3 files" in out and "placeholder namespace" in out
    r = subprocess.run(cmd[:6] + [str(tmp_path / "missing.json")] + cmd[7:], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 1
    assert "missing.json: no such metrics file (run the `evaluate-package` command first)" in " ".join(r.stdout.split())


# --- push against the local Hub -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_hub():
    users = {TOKEN: HubUser("alice", ["biomed-lab"]), TOKEN_ORG: HubUser("bob", []),
             TOKEN_READ: HubUser("alice", [], role="read")}
    with FakeHub(users) as server:
        yield server


@pytest.fixture
def hub_env(fake_hub, tmp_path):
    """Environment of a push subprocess: the local Hub, an empty HF_HOME, no token, online."""
    fake_hub.reset()
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN",
                        "HF_TOKEN_PATH", "HF_ENDPOINT")}
    home = tmp_path / "hf_home"
    home.mkdir()
    # HF_ENDPOINT is read when huggingface_hub is imported: it must be in the subprocess's environment.
    env.update(HF_ENDPOINT=fake_hub.url, HF_HOME=str(home), NO_PROXY="127.0.0.1,localhost",
               no_proxy="127.0.0.1,localhost", HF_HUB_DISABLE_TELEMETRY="1")
    return env


def push(folder: Path, env: Dict[str, str], namespace="alice", repo="en_biomed_spancat", *extra: str):
    cmd = [PY, "-m", "scripts.push", str(folder), "--namespace", namespace, "--repo", repo,
           "--message", "Upload en_biomed_spancat", *extra]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)


def _assert_no_token_anywhere(result, fake_hub, *dirs: Path, tokens=(TOKEN, TOKEN_ORG, TOKEN_READ), skip=()):
    out = result.stdout + result.stderr
    for token in tokens:
        assert token not in out
        for repo in fake_hub.repos.values():
            for name, data in repo.files.items():
                assert token.encode() not in data, f"token in uploaded {name}"
        for blob in fake_hub.blobs.values():
            assert token.encode() not in blob
        for d in dirs:
            for p in d.rglob("*"):
                if p.is_file() and p not in skip:
                    assert token.encode() not in p.read_bytes(), f"token written to {p}"


def test_push_uploads_the_staged_folder(staged, fake_hub, hub_env, tmp_path):
    before = _tree_hash(staged)
    hub_env.update(HF_TOKEN=TOKEN, HF_HUB_VERBOSITY="debug")  # even debug logs must not show the token
    r = push(staged, hub_env)
    assert r.returncode == 0, r.stdout + r.stderr
    repo = fake_hub.repos["alice/en_biomed_spancat"]
    assert repo.private is True  # private unless asked otherwise
    assert repo.commits[-1] == {"message": "Upload en_biomed_spancat", "author": "alice",
                                "files": sorted([CARD_NAME, CHART_NAME, WHEEL_NAME])}
    for name in (CARD_NAME, CHART_NAME, WHEEL_NAME):
        assert repo.files[name] == (staged / name).read_bytes()
    fm, body = parse_card(repo.files[CARD_NAME].decode())
    assert fm["model-index"][0]["name"] == "en_biomed_spancat"
    assert f"/alice/en_biomed_spancat/resolve/main/{WHEEL_NAME}" in body
    calls = [p for _, p in fake_hub.paths()]
    assert calls[:2] == ["/api/whoami-v2", "/api/repos/create"]
    assert "/alice/en_biomed_spancat.git/info/lfs/objects/batch" in calls
    # uploads over the LFS API (whose requests carry the timeout), never the Xet transfer (hf_xet is installed)
    assert fake_hub.lfs_transfers and not any("xet" in t for t in fake_hub.lfs_transfers)
    assert calls[-1] == "/api/models/alice/en_biomed_spancat/commit/main"
    out = " ".join(r.stdout.split())
    # every URL printed is on the endpoint used (HF_ENDPOINT), never huggingface.co
    assert f"Created private repo alice/en_biomed_spancat: {fake_hub.url}/alice/en_biomed_spancat" in out
    assert f"Committed {CARD_NAME}, {WHEEL_NAME}, {CHART_NAME}: {fake_hub.url}/alice/en_biomed_spancat/commit/" in out
    # private: how an account with access installs, the token never on the command line
    assert f'wheel="$(hf download alice/en_biomed_spancat {WHEEL_NAME})" && pip install "$wheel"' in out
    assert "token read from HF_TOKEN or `hf auth login` (never on the command line)" in out
    # the card was staged for huggingface.co: push says so
    assert ("the card's install line names huggingface.co, but this push went to "
            f"{fake_hub.url.split('//')[1]}: re-run stage-hub with the same HF_ENDPOINT") in out
    _assert_no_token_anywhere(r, fake_hub, staged, tmp_path)
    assert _tree_hash(staged) == before
    # a second push updates our own repo
    r = push(staged, hub_env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Updated private repo" in " ".join(r.stdout.split()) and len(repo.commits) == 2


def test_push_public_when_asked(staged, fake_hub, hub_env):
    hub_env["HF_TOKEN"] = TOKEN
    r = push(staged, hub_env, "alice", "en_biomed_spancat", "--private", "false")
    assert r.returncode == 0, r.stdout + r.stderr
    assert fake_hub.repos["alice/en_biomed_spancat"].private is False
    out = " ".join(r.stdout.split())
    assert "Created public repo alice/en_biomed_spancat" in out
    assert f"Install with: pip install {fake_hub.url}/alice/en_biomed_spancat/resolve/main/{WHEEL_NAME}" in out


def test_push_takes_the_token_from_the_login_cache(staged, fake_hub, hub_env, tmp_path):
    token_file = Path(hub_env["HF_HOME"]) / "token"
    token_file.write_text(TOKEN)  # what `hf auth login` writes
    r = push(staged, hub_env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "alice/en_biomed_spancat" in fake_hub.repos
    _assert_no_token_anywhere(r, fake_hub, staged, tmp_path, skip=(token_file,))


def _out(r) -> str:
    return " ".join((r.stdout + r.stderr).split())


def _own_repo(fake_hub, tiny_wheel, private: bool):
    """alice/en_biomed_spancat as an earlier push of this project left it (our card and wheel)."""
    files = {CARD_NAME: b"---\nmodel-index:\n- name: en_biomed_spancat\n  results: []\n---\n# old\n",
             WHEEL_NAME: tiny_wheel.read_bytes()}
    return fake_hub.seed_repo("alice/en_biomed_spancat", files, private=private)


def _uploads(fake_hub) -> List[str]:
    return [p for m, p in fake_hub.paths() if "/preupload/" in p or "/lfs/" in p or "/commit/" in p
            or p.startswith("/__lfs")]


def test_private_push_into_a_public_repo_is_refused_before_any_upload(staged, tiny_wheel, fake_hub, hub_env):
    repo = _own_repo(fake_hub, tiny_wheel, private=False)
    hub_env["HF_TOKEN"] = TOKEN
    r = push(staged, hub_env)  # --private true is the default
    out = _out(r)
    assert r.returncode == 1
    assert ("alice/en_biomed_spancat already exists and is PUBLIC, but this push asks for a private repo "
            "(--private true): uploading would publish the model") in out
    assert f"make alice/en_biomed_spancat private on the Hub ({fake_hub.url}/alice/en_biomed_spancat/settings)" in out
    assert "or with --make-private" in out and "Nothing was uploaded" in out
    assert "Traceback" not in out and "✔" not in out
    assert _uploads(fake_hub) == []
    assert repo.private is False and len(repo.commits) == 1


def test_make_private_changes_a_public_repo_before_uploading(staged, tiny_wheel, fake_hub, hub_env):
    repo = _own_repo(fake_hub, tiny_wheel, private=False)
    hub_env["HF_TOKEN"] = TOKEN
    r = push(staged, hub_env, "alice", "en_biomed_spancat", "--make-private")
    out = _out(r)
    assert r.returncode == 0, out
    assert "Made alice/en_biomed_spancat private before uploading (--make-private)" in out
    assert "Updated private repo alice/en_biomed_spancat" in out
    assert repo.private is True and len(repo.commits) == 2
    calls = [p for _, p in fake_hub.paths()]
    settings = calls.index("/api/models/alice/en_biomed_spancat/settings")
    assert all(settings < calls.index(p) for p in _uploads(fake_hub))


def test_public_push_into_a_private_repo_leaves_it_private(staged, tiny_wheel, fake_hub, hub_env):
    repo = _own_repo(fake_hub, tiny_wheel, private=True)
    hub_env["HF_TOKEN"] = TOKEN
    r = push(staged, hub_env, "alice", "en_biomed_spancat", "--private", "false")
    out = _out(r)
    assert r.returncode == 0, out
    assert "Updated private repo alice/en_biomed_spancat" in out
    assert ("alice/en_biomed_spancat is private and stays private: --private false only sets the visibility "
            "of a new repo") in out
    assert repo.private is True


def test_push_refuses_the_placeholder_namespace(staged, tiny_wheel, tiny_metrics, fake_hub, hub_env, tmp_path):
    folder = stage_hub(tiny_wheel, tmp_path / "hub" / "x", tiny_metrics, "your-hf-username", "en_biomed_spancat",
                       "cc-by-3.0").path
    hub_env["HF_TOKEN"] = TOKEN
    r = push(folder, hub_env, "your-hf-username")
    out = _out(r)
    assert r.returncode == 1
    assert ("--namespace 'your-hf-username' is the placeholder of project.yml, not a Hub account: set "
            "vars.hub_namespace to your Hub user or organisation") in out
    assert fake_hub.log == []  # refused before any request


def test_a_hub_that_accepts_the_commit_and_never_answers(staged, fake_hub, hub_env):
    """The repo this push created is deleted: nothing is left, and the message says so."""
    fake_hub.hang = {"commit"}
    hub_env["HF_TOKEN"] = TOKEN
    r = subprocess.run([PY, "-m", "scripts.push", str(staged), "--namespace", "alice", "--repo",
                        "en_biomed_spancat", "--timeout", "2"], cwd=ROOT, env=hub_env, capture_output=True,
                       text=True, timeout=120)  # a hang guard: push must end by itself
    out = _out(r)
    assert r.returncode == 1
    assert (f"the Hub at {fake_hub.url} did not answer within 2 s while uploading to alice/en_biomed_spancat "
            "(ReadTimeout)") in out
    assert ("Cleaned up: the repo alice/en_biomed_spancat that this push created was deleted; nothing of it is "
            "left on the Hub") in out
    assert "Traceback" not in out
    assert "alice/en_biomed_spancat" not in fake_hub.repos
    assert ("DELETE", "/api/repos/delete") in fake_hub.paths()


def test_a_hang_that_also_blocks_the_clean_up_says_what_is_left(staged, fake_hub, hub_env):
    fake_hub.hang = {"commit", "delete_repo"}
    hub_env["HF_TOKEN"] = TOKEN
    r = subprocess.run([PY, "-m", "scripts.push", str(staged), "--namespace", "alice", "--repo",
                        "en_biomed_spancat", "--timeout", "2"], cwd=ROOT, env=hub_env, capture_output=True,
                       text=True, timeout=120)
    out = _out(r)
    assert r.returncode == 1
    assert ("Left behind: the repo alice/en_biomed_spancat, created by this push (with the visibility asked "
            "for), which may hold part or all of the upload; deleting it failed (ReadTimeout: ") in out
    assert (f"Delete it at {fake_hub.url}/alice/en_biomed_spancat/settings, or run push again to complete it"
            in out)
    assert [m for m, p in fake_hub.paths() if p == "/api/repos/delete"] == ["DELETE"]


def test_a_hang_on_an_existing_repo_says_to_check_its_commits(staged, tiny_wheel, fake_hub, hub_env):
    repo = _own_repo(fake_hub, tiny_wheel, private=True)
    fake_hub.hang = {"commit"}
    hub_env["HF_TOKEN"] = TOKEN
    r = subprocess.run([PY, "-m", "scripts.push", str(staged), "--namespace", "alice", "--repo",
                        "en_biomed_spancat", "--timeout", "2"], cwd=ROOT, env=hub_env, capture_output=True,
                       text=True, timeout=120)
    out = _out(r)
    assert r.returncode == 1
    assert ("Left behind: alice/en_biomed_spancat existed before this push; the commit may or may not have been "
            f"applied: check {fake_hub.url}/alice/en_biomed_spancat/commits/main") in out
    assert "alice/en_biomed_spancat" in fake_hub.repos and repo.private is True


def test_private_repo_is_not_served_anonymously(staged, fake_hub, hub_env):
    import urllib.error
    import urllib.request

    hub_env["HF_TOKEN"] = TOKEN
    assert push(staged, hub_env).returncode == 0
    url = f"{fake_hub.url}/alice/en_biomed_spancat/resolve/main/{WHEEL_NAME}"
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(url)
    assert err.value.code == 401


def test_the_cards_private_install_command_works_with_the_token_in_the_environment(staged, fake_hub, hub_env,
                                                                                 tmp_path):
    """The card's command for a private repo, run as written (pip with --no-deps into a folder): `hf download`
    reads HF_TOKEN from the environment, so the token is on no command line; without a token it fails."""
    hub_env["HF_TOKEN"] = TOKEN
    assert push(staged, hub_env).returncode == 0
    assert fake_hub.repos["alice/en_biomed_spancat"].private is True
    _, body = _card(staged)
    (command,) = [line for line in body.splitlines() if line.startswith('wheel="$(hf download')]
    assert command == f'wheel="$(hf download alice/en_biomed_spancat {WHEEL_NAME})" && pip install "$wheel"'
    target = tmp_path / "site"
    run = command.replace("pip install", f"{PY} -m pip install --no-deps --no-index --target {target}", 1)
    env = dict(hub_env, PATH=f"{Path(PY).parent}:{os.environ['PATH']}", HF_HUB_DISABLE_PROGRESS_BARS="1")
    r = subprocess.run(["bash", "-c", run], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert (target / "en_biomed_spancat" / "__init__.py").is_file()
    _assert_no_token_anywhere(r, fake_hub, staged, tmp_path, skip=tuple(Path(hub_env["HF_HOME"]).rglob("*")))
    # without a token (and with an empty cache), the private repo gives nothing
    del env["HF_TOKEN"]
    env["HF_HOME"] = str(tmp_path / "empty_hf_home")
    r = subprocess.run(["bash", "-c", run.replace(str(target), str(tmp_path / "site2"))], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and not (tmp_path / "site2" / "en_biomed_spancat").exists()


FOREIGN_CARD = b"---\nlicense: mit\nmodel-index:\n- name: someone_elses_model\n  results: []\n---\n# other\n"


@pytest.mark.parametrize("case,namespace,message", [
    ("no token", "alice", "no Hugging Face token: set HF_TOKEN to a token with write access, or log in once"),
    ("bad token", "alice", "rejected the token from the HF_TOKEN environment variable (401 Unauthorized)"),
    ("read-only token", "alice", "is read-only; pushing needs a write token"),
    ("namespace", "biomed-lab", "refused to create biomed-lab/en_biomed_spancat (403 Forbidden): user bob "
                                "cannot write to namespace 'biomed-lab' (namespaces this token can use: bob)"),
    ("unreachable", "alice", "cannot reach the Hub at http://127.0.0.1:"),
    ("foreign files", "alice", "alice/en_biomed_spancat already exists and holds files this project did not "
                               "stage: README.md (a card for someone_elses_model), pytorch_model.bin"),
    ("offline", "alice", "HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set"),
])
def test_push_failures_are_clear_and_leave_the_folder_intact(
    case, namespace, message, staged, tiny_wheel, tiny_metrics, fake_hub, hub_env, tmp_path
):
    folder = staged
    if namespace != "alice":  # a card staged for the namespace it is pushed to
        folder = stage_hub(tiny_wheel, tmp_path / "hub" / "x", tiny_metrics, namespace, "en_biomed_spancat",
                           "cc-by-3.0").path
    token = {"no token": None, "bad token": "hf_" + secrets.token_hex(16), "read-only token": TOKEN_READ,
             "namespace": TOKEN_ORG}.get(case, TOKEN)
    if token:
        hub_env["HF_TOKEN"] = token
    if case == "unreachable":
        with socket.socket() as s:  # a port nothing listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        hub_env["HF_ENDPOINT"] = f"http://127.0.0.1:{port}"
    if case == "foreign files":
        fake_hub.seed_repo("alice/en_biomed_spancat", {"README.md": FOREIGN_CARD, "pytorch_model.bin": b"\0" * 8})
    if case == "offline":
        hub_env["HF_HUB_OFFLINE"] = "1"
    before = _tree_hash(folder)
    r = push(folder, hub_env, namespace)
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 1
    assert message in out, out
    assert "Nothing in" in out and "was changed" in out
    assert "Traceback" not in out
    assert _tree_hash(folder) == before
    for repo in fake_hub.repos.values():  # nothing was committed anywhere
        assert all(c["author"] == "someone-else" for c in repo.commits)
    _assert_no_token_anywhere(r, fake_hub, folder, tmp_path, tokens=[t for t in (token, TOKEN) if t])


def test_push_refuses_a_card_staged_for_another_repo(staged, fake_hub, hub_env):
    hub_env["HF_TOKEN"] = TOKEN
    r = push(staged, hub_env, "biomed-lab")
    out = " ".join(r.stdout.split())
    assert r.returncode == 1
    assert "the card was staged for another repo" in out
    assert "re-run stage-hub with --namespace biomed-lab --repo en_biomed_spancat" in out
    assert fake_hub.log == []  # refused before any request


def test_push_refuses_a_folder_stage_hub_did_not_write(staged, fake_hub, hub_env, tmp_path):
    folder = tmp_path / "staged"
    shutil.copytree(staged, folder)
    (folder / "notes.txt").write_text("x")
    hub_env["HF_TOKEN"] = TOKEN
    r = push(folder, hub_env)
    assert r.returncode == 1
    assert "found README.md, en_biomed_spancat-0.0.1-py3-none-any.whl, notes.txt" in " ".join(r.stdout.split())
    r = push(folder, hub_env, "alice", "en_biomed_spancat", "--private", "maybe")
    assert r.returncode == 1 and "--private takes true or false, not 'maybe'" in " ".join(r.stdout.split())


def test_weasel_stage_hub_then_push(tiny_wheel, tiny_metrics, tiny_threshold, fake_hub, hub_env, tmp_path):
    """`weasel run stage-hub` and `weasel run push` as project.yml declares them, in a copy of the
    project holding the tiny wheel and its metrics where the earlier commands would have put them."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "project.yml", project / "project.yml")
    (project / "scripts").symlink_to(ROOT / "scripts", target_is_directory=True)
    (project / "components").symlink_to(ROOT / "components", target_is_directory=True)  # deps name the code
    dist = project / "packages" / f"en_biomed_spancat-{VERSION}" / "dist"
    dist.mkdir(parents=True)
    shutil.copy(tiny_wheel, dist / WHEEL_NAME)
    (project / "metrics").mkdir()
    shutil.copy(tiny_metrics, project / "metrics" / "package.json")
    shutil.copy(tiny_threshold, project / "metrics" / "threshold.json")
    # the model the wheel was built from: stage-hub checks the wheel is its
    shutil.copytree(tiny_wheel.parents[3] / "model", project / "training" / "model-tuned")
    weasel = str(Path(PY).parent / "weasel")
    overrides = ["--vars.version", VERSION, "--vars.hub_namespace", "alice"]
    hub_env["HF_TOKEN"] = TOKEN
    r = subprocess.run([weasel, "run", "stage-hub", str(project), *overrides], cwd=project, env=hub_env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    staged_dir = project / "hub" / "en_biomed_spancat"
    assert sorted(p.name for p in staged_dir.iterdir()) == sorted([CARD_NAME, CHART_NAME, WHEEL_NAME])
    assert fake_hub.log == []  # staging made no request
    # project.yml hands the threshold record to stage-hub: the card says the dev scores are optimistic
    assert "**These scores are optimistic.**" in (staged_dir / CARD_NAME).read_text(encoding="utf8")
    r = subprocess.run([weasel, "run", "push", str(project), *overrides], cwd=project, env=hub_env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    repo = fake_hub.repos["alice/en_biomed_spancat"]
    assert repo.private is True  # vars.hub_private
    assert repo.commits[-1]["message"] == "Upload en_biomed_spancat"  # vars.hub_commit_message
    assert repo.commits[-1]["files"] == sorted([CARD_NAME, CHART_NAME, WHEEL_NAME])
    _assert_no_token_anywhere(r, fake_hub, project / "hub", tmp_path)


# --- the download path, as a user takes it --------------------------------------------------------------


@pytest.fixture(scope="session")
def fresh_venv(tmp_path_factory) -> Path:
    """One venv for the session: current pip, then torch==2.13.0 (the CPU build this machine has)."""
    venv = tmp_path_factory.mktemp("user") / "venv"
    subprocess.run([PY, "-m", "venv", str(venv)], check=True)
    vpy = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    for args in (["install", "--upgrade", "pip"], ["install", "torch==2.13.0"]):
        r = subprocess.run([str(vpy), "-m", "pip", *args], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return vpy


@pytest.mark.slow
def test_wheel_installs_from_its_hub_url_with_current_pip(staged, fake_hub, hub_env, fresh_venv, tmp_path):
    hub_env["HF_TOKEN"] = TOKEN
    r = push(staged, hub_env, "alice", "en_biomed_spancat", "--private", "false")
    assert r.returncode == 0, r.stdout + r.stderr
    _, body = parse_card((staged / CARD_NAME).read_text())
    card_url = re.search(r"pip install (\S+)", body).group(1)
    # the card's URL, served by the local Hub instead of huggingface.co
    url = card_url.replace("https://huggingface.co", fake_hub.url)
    user_dir = tmp_path / "elsewhere"  # no project folder on the path
    user_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "HF_TOKEN")}
    env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    pip = subprocess.run([str(fresh_venv), "-m", "pip", "--version"], capture_output=True, text=True)
    major = int(re.match(r"pip (\d+)", pip.stdout).group(1))
    assert major >= 26, pip.stdout
    # the renamed wheel spacy-huggingface-hub 0.0.10 uploads is refused by this pip, before any download
    bad = url.replace(WHEEL_NAME, "en_biomed_spancat-any-py3-none-any.whl")
    r = subprocess.run([str(fresh_venv), "-m", "pip", "install", bad], cwd=user_dir, env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0 and "Invalid wheel filename" in r.stdout + r.stderr
    r = subprocess.run([str(fresh_venv), "-m", "pip", "install", url], cwd=user_dir, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    check = (
        "import sys, spacy\n"
        f"assert not any(p.startswith({str(ROOT)!r}) for p in sys.path if p), sys.path\n"
        "nlp = spacy.load('en_biomed_spancat')\n"
        "doc = nlp('BMP4 regulates limb patterning in mice.')\n"
        "group = doc.spans['sc']\n"
        "assert len(group.attrs['scores']) == len(group)\n"
        "print('loaded', nlp.meta['name'], nlp.meta['version'], nlp.pipe_names, len(group))\n"
    )
    env["HF_HUB_OFFLINE"] = "1"
    r = subprocess.run([str(fresh_venv), "-c", check], cwd=user_dir, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert "loaded biomed_spancat 0.0.1 ['transformer', 'spancat']" in r.stdout
    # the project's package is not what made it load
    r = subprocess.run([str(fresh_venv), "-c", "import biomed_spancat"], cwd=user_dir, env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0


# --- the tools the developers' guide relies on ------------------------------------------------------------


@pytest.mark.parametrize("cmd", [
    [PY, "-m", "spacy", "info"],
    [str(Path(PY).parent / "weasel"), "--help"],
    [PY, "-m", "spacy", "huggingface-hub", "push", "--help"],
])
def test_cli_tools_work_in_this_environment(cmd):
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_how_it_was_built_reads_the_training_record():
    meta = _meta(requested=BIOMEDBERT, used=BIOMEDBERT, stand_in=False)
    meta["training"] = {"commands": ["weasel run all --vars.gpu_id 0"], "versions": {"torch": "2.13.0"},
                        "hardware": "1x NVIDIA H100", "seconds": 600.0, "steps": 1200}
    cm = _cm()
    cm.speed = {"words_per_second": 1234.5, "device": "gpu"}
    card = build_card(meta, cm, spancat={"spans_key": "sc", "component": "spancat",
                                         "suggester": {"@misc": "biomed.span_suggester.v1", "max_length": 4,
                                                       "no_single_words": ["the", "of", "patient-x"]}},
                      repo_id="a/b", wheel_name="en_biomed_spancat-1.0.0-py3-none-any.whl", license_id="mit")
    _, body = parse_card(card)
    built = body[body.index("## How it was built"):body.index("## Limitations")]
    assert "weasel run all --vars.gpu_id 0" in built
    assert _table_row(built, "torch") == ["2.13.0"]
    assert _table_row(built, "training time") == ["10.0 min"]
    assert _table_row(built, "training hardware") == ["1x NVIDIA H100"]
    assert _table_row(built, "training: steps") == ["1200"]
    assert _table_row(built, "speed (evaluation)") == ["1,234 words/s on gpu"]
    # learned word lists come from the training text: only their size is shown
    assert _table_row(built, "suggester") == ["@misc=biomed.span_suggester.v1, max_length=4, no_single_words: 3 entries"]
    assert "patient-x" not in card
    # ... and the card says that such lists ship, and what they are
    assert ("Learned from the training text and shipped in the pipeline's `config.cfg`, because the suggester "
            "needs them to run: the suggester's block lists (3 lower-case words and 0 word shapes") in body
    assert "Anyone who can download the wheel can read them." in body


def test_how_it_was_built_says_what_was_not_recorded(staged):
    _, body = _card(staged)
    assert ("No text: the packaged vocabulary keeps only the labels and the tokenizer's own rules, and meta.json "
            "keeps counts. Nothing learned as text from the training data ships: the suggester has no word lists."
            in " ".join(body.split()))
    assert _table_row(body, "training time", after="## How it was built") == ["not recorded"]
    assert _table_row(body, "base transformer", after="## How it was built") == [f"{STAND_IN} (offline stand-in)"]


def test_card_states_per_label_thresholds_and_the_same_label_policy():
    cm = _cm()
    cm.threshold = 0.3
    spancat = {"spans_key": "sc", "component": "spancat",
               "label_thresholds": {"PR": 0.5, "CHEBI": 0.3}, "same_label": "best"}
    card = build_card(_meta(requested=BIOMEDBERT, used=BIOMEDBERT, stand_in=False), cm, spancat=spancat,
                      repo_id="a/b", wheel_name="en_biomed_spancat-1.0.0-py3-none-any.whl", license_id="mit")
    text = " ".join(card.split())
    assert ("A span is kept when its label's score reaches that label's threshold (chosen on the dev data, saved "
            "in the packaged pipeline's `span_filter`): `CHEBI` 0.3, `PR` 0.5. Of spans with one label that share "
            "a token, only the highest scored is kept.") in text
    assert "is at least 0.3" not in text
    # without a filter: the one threshold
    card = build_card(_meta(requested=BIOMEDBERT, used=BIOMEDBERT, stand_in=False), cm,
                      spancat={"spans_key": "sc", "component": "spancat"}, repo_id="a/b",
                      wheel_name="en_biomed_spancat-1.0.0-py3-none-any.whl", license_id="mit")
    assert "A span is kept when its label's score is at least 0.3" in " ".join(card.split())


def test_read_wheel_finds_the_span_filter(tiny_wheel, tmp_path):
    """The thresholds the card states come from the packaged config's span_filter component."""
    out = tmp_path / tiny_wheel.name
    with zipfile.ZipFile(tiny_wheel) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("/config.cfg") and b"[components.spancat]" in data:
                data += (b'\n[components.span_filter]\nfactory = "biomed_span_filter_v1"\nspans_key = "sc"\n'
                         b'same_label = "best"\n\n[components.span_filter.thresholds]\nPR = 0.5\n')
            dst.writestr(item, data)
    _, spancat = read_wheel(out)
    assert (spancat["label_thresholds"], spancat["same_label"]) == ({"PR": 0.5}, "best")
    _, plain = read_wheel(tiny_wheel)
    assert "label_thresholds" not in plain


def test_card_example_counts_the_rows_past_the_limit():
    from biomed_spancat.publish.hub.card import EXAMPLE_ROWS, CardExample

    spans = [(i, i + 1, "PR", "x", 0.5 + i / 100) for i in range(EXAMPLE_ROWS + 2)]
    card = build_card(_meta(requested=BIOMEDBERT, used=BIOMEDBERT, stand_in=False), _cm(),
                      spancat={"spans_key": "sc", "component": "spancat"}, repo_id="a/b",
                      wheel_name="en_biomed_spancat-1.0.0-py3-none-any.whl", license_id="mit",
                      example=CardExample("x" * 20, spans))
    _, body = parse_card(card)
    block = body[body.index("What this wheel prints for that sentence"):]
    assert block.startswith(f"What this wheel prints for that sentence ({EXAMPLE_ROWS + 2} spans):")
    lines = block.split("```text\n", 1)[1].split("\n```", 1)[0].splitlines()
    assert lines[:2] == ["0 1 PR x 0.500", "1 2 PR x 0.510"]
    assert len(lines) == EXAMPLE_ROWS + 1 and lines[-1] == "... and 2 more"
