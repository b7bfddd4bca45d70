"""A tiny CNN spancat overfit on four sentences and saved to disk, with its gold
docs (`tiny_spancat`, a pytest plugin registered in conftest.py), for the
evaluation, threshold and span-filter tests."""
import pytest
import spacy
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example
from thinc.api import Config

from biomed_spancat.evaluation.evaluate import make_pred_doc

TRAIN_TEXTS = [
    (
        "BMP2 and BMP4 regulate limb patterning in the mouse embryo .",
        [(0, 1, "PR"), (2, 3, "PR"), (4, 5, "UBERON"), (4, 6, "GO_BP"), (9, 10, "NCBITaxon")],
    ),
    (
        "Mutations in the Brca1 gene cause breast cancer in mice .",
        [(3, 4, "PR"), (3, 5, "SO"), (6, 8, "MONDO"), (9, 10, "NCBITaxon")],
    ),
    (
        "Expression of Shh was detected in the limb bud of mouse embryos .",
        [(2, 3, "PR"), (7, 9, "UBERON"), (7, 8, "UBERON"), (10, 11, "NCBITaxon")],
    ),
    (
        "Retinal ganglion cells project axons to the optic nerve .",
        [(0, 3, "CL"), (4, 5, "GO_CC"), (7, 9, "UBERON")],
    ),
]


def tiny_docs(vocab):
    docs = []
    for text, spans in TRAIN_TEXTS:
        doc = Doc(vocab, words=text.split())
        doc.spans["sc"] = [Span(doc, s, e, label=lab) for s, e, lab in spans]
        docs.append(doc)
    return docs


TINY_CONFIG = """
[nlp]
lang = "en"
pipeline = ["tok2vec", "spancat"]

[components]

[components.tok2vec]
factory = "tok2vec"

[components.tok2vec.model]
@architectures = "spacy.HashEmbedCNN.v2"
width = 32
depth = 1
embed_size = 500
window_size = 1
maxout_pieces = 2
subword_features = true
pretrained_vectors = null

[components.spancat]
factory = "spancat"
spans_key = "sc"
threshold = 0.5
max_positive = null

[components.spancat.suggester]
@misc = "spacy.ngram_suggester.v1"
sizes = [1, 2, 3]

[components.spancat.model]
@architectures = "spacy.SpanCategorizer.v1"

[components.spancat.model.reducer]
@layers = "spacy.mean_max_reducer.v1"
hidden_size = 32

[components.spancat.model.scorer]
@layers = "spacy.LinearLogistic.v1"

[components.spancat.model.tok2vec]
@architectures = "spacy.Tok2VecListener.v1"
width = 32
upstream = "*"
"""


@pytest.fixture(scope="module")
def tiny_spancat(tmp_path_factory):
    """A CNN spancat overfit on four sentences, saved to disk; with its gold docs."""
    from thinc.api import fix_random_seed

    fix_random_seed(0)
    nlp = spacy.util.load_model_from_config(Config().from_str(TINY_CONFIG), auto_fill=True)
    gold = tiny_docs(nlp.vocab)
    examples = [Example(make_pred_doc(nlp.vocab, g), g) for g in gold]
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(40):
        nlp.update(examples, sgd=optimizer, drop=0.0)
    path = tmp_path_factory.mktemp("tiny_spancat") / "model"
    nlp.to_disk(path)
    data = path.parent / "dev.spacy"
    DocBin(docs=gold, store_user_data=True).to_disk(data)
    return path, data
