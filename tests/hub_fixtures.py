"""Shared by the Hub tests (test_hub_card.py, test_hub_push.py; loaded by
conftest.py as a pytest plugin): a real tiny wheel (a transformer + spancat
pipeline packaged by the project's own packaging code, evaluated by its own
scorer), its metrics and threshold record, the staged folder, the local Hub
(tests/hub_server.py) and the helpers both files read cards with."""
import json
import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import spacy
from spacy.tokens import Span
from spacy.training import Example

from biomed_spancat.publish.hub import (
    CARD_NAME,
    normalize_metrics,
    parse_card,
    stage_hub,
)
from hub_server import FakeHub, HubUser

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


def corpus_report() -> Dict:
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
    meta = build_meta("biomed_spancat", VERSION, source, corpus_report(), license="cc-by-3.0")
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


def read_card(folder: Path):
    return parse_card((folder / CARD_NAME).read_text(encoding="utf8"))


def table_row(body: str, first_cell: str, after: str = "") -> List[str]:
    """The cells after the first, of the first table row starting with `first_cell` after `after`."""
    for line in body[body.index(after):].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_cell:
            return cells[1:]
    raise AssertionError(f"no table row starting with {first_cell!r}")


def wheel_meta(**base_model) -> Dict:
    return {
        "lang": "en", "name": "biomed_spancat", "version": "1.0.0", "labels": {"spancat": ["PR"]},
        "base_model": base_model, "sources": [{"name": "CRAFT (x)", "url": "https://github.com/x"}],
    }


def card_metrics(p=0.5, r=0.25, f=1 / 3):
    return normalize_metrics({"spans": {"p": p, "r": r, "f": f},
                              "per_label": {"PR": {"p": p, "r": r, "f": f}}}, "sc", "m.json")


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
