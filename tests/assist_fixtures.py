"""Hand-made annotated documents and a tiny trained teacher for the
model-assisted annotation and uptraining tests: `teacher` (a pytest plugin
registered in conftest.py) and the helpers that build exports and docs."""
import json
import random
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
import spacy
from spacy.tokens import Doc, Span
from spacy.training import Example

from biomed_spancat.assist import input_hash

ROOT = Path(__file__).resolve().parent.parent
CNN_CONFIG = ROOT / "configs" / "uptrain_cnn.cfg"
# A tiny CNN: the tests check behaviour, not accuracy.
TINY_CNN = {
    "components.tok2vec.model.encode.width": 16,
    "components.tok2vec.model.encode.depth": 1,
    "components.tok2vec.model.embed.rows": [500, 100, 100, 100],
    "components.spancat.model.reducer.hidden_size": 16,
}
# (text, [(substring, label), ...]) in documents of two paragraphs each
DOCS: List[Tuple[str, List[Tuple[str, List[Tuple[str, str]]]]]] = [
    ("d1", [
        ("BMP2 and BMP4 regulate limb patterning in the mouse embryo.", [("BMP2", "GENE"), ("BMP4", "GENE")]),
        ("Neural crest cells express BMP4 early.", [("Neural crest cells", "CELL"), ("BMP4", "GENE")]),
    ]),
    ("d2", [
        ("Mutations in the Brca1 gene cause breast cancer in mice.", [("Brca1", "GENE"), ("Brca1 gene", "GENE")]),
        ("Retinal ganglion cells project axons to the optic nerve.", [("Retinal ganglion cells", "CELL"), ("ganglion cells", "CELL")]),
    ]),
    ("d3", [
        ("Expression of Shh was detected in the apical ectodermal ridge.", [("Shh", "GENE")]),
        ("Shh signalling patterns neural crest cells.", [("Shh", "GENE"), ("neural crest cells", "CELL")]),
    ]),
    ("d4", [
        ("Pax6 marks retinal progenitor cells in the eye.", [("Pax6", "GENE"), ("retinal progenitor cells", "CELL")]),
        ("Loss of Pax6 disrupts lens cells.", [("Pax6", "GENE"), ("lens cells", "CELL")]),
    ]),
]
NEW_TEXTS = [
    "BMP4 and Shh are expressed in neural crest cells.",
    "Pax6 regulates retinal ganglion cells.",
    "The Brca1 protein binds DNA.",
    "Nothing here but plain words.",
    "Lens cells and BMP2 in the embryo.",
]


def make_task(text: str, spans: List[Tuple[str, str]], doc_id: str, paragraph: int) -> Dict[str, Any]:
    """A Prodigy spans.manual export task (answer accept) from substrings."""
    doc = spacy.blank("en").make_doc(text)
    out = []
    for sub, label in spans:
        start = text.index(sub)
        span = doc.char_span(start, start + len(sub))
        assert span is not None, sub
        out.append({"start": start, "end": start + len(sub), "token_start": span.start, "token_end": span.end - 1, "label": label})
    return {
        "text": text,
        "tokens": [{"text": t.text, "start": t.idx, "end": t.idx + len(t.text), "id": t.i, "ws": bool(t.whitespace_)} for t in doc],
        "spans": out,
        "answer": "accept",
        "meta": {"doc_id": doc_id, "paragraph": paragraph},
        "_input_hash": input_hash(text),
    }


def write_jsonl(path: Path, records: List[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf8")
    return path


def gold_docs(vocab) -> List[Doc]:
    docs = []
    for doc_id, paragraphs in DOCS:
        for i, (text, spans) in enumerate(paragraphs):
            task = make_task(text, spans, doc_id, i)
            doc = Doc(vocab, words=[t["text"] for t in task["tokens"]], spaces=[t["ws"] for t in task["tokens"]])
            doc.spans["sc"] = [Span(doc, s["token_start"], s["token_end"] + 1, s["label"]) for s in task["spans"]]
            docs.append(doc)
    return docs


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    """A tiny spancat-over-CNN pipeline trained for a few steps on the hand-made docs."""
    from spacy.util import fix_random_seed, load_config, load_model_from_config

    fix_random_seed(0)
    config = load_config(CNN_CONFIG, overrides=TINY_CNN)
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    examples = [Example(Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d]), d) for d in gold_docs(nlp.vocab)]
    optimizer = nlp.initialize(lambda: examples)
    rng = random.Random(0)
    for _ in range(15):
        rng.shuffle(examples)
        nlp.update(examples, sgd=optimizer)
    path = tmp_path_factory.mktemp("teacher") / "model"
    nlp.meta["name"] = "teacher"
    nlp.meta["version"] = "0.0.1"
    nlp.to_disk(path)
    return path
