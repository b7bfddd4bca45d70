"""biomed.Tok2Vec.v1: spaCy's CNN tok2vec whose Maxouts predict through torch
(in bfloat16 when its cpu_precision says so), and the CPU students' configs that use it."""
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.ml.models.tok2vec import MaxoutWindowEncoder, MultiHashEmbed, build_Tok2Vec_model
from spacy.training import Example
from spacy.vectors import Vectors
from spacy.util import registry
from thinc.api import Adam

from biomed_spancat.pipeline.span_reducer import maxout_layers
from torch_maxout import copy_random_weights, record_addmm

ROOT = Path(__file__).resolve().parent.parent
WORDS = "Shh and Bmp4 regulate limb patterning in the mouse embryo .".split()


def _parts(width=16):
    embed = MultiHashEmbed(width=width, attrs=["NORM", "PREFIX", "SUFFIX", "SHAPE"], rows=[500, 100, 250, 250], include_static_vectors=False)
    return embed, MaxoutWindowEncoder(width=width, window_size=1, maxout_pieces=3, depth=2)


def _pair(seed=0, **settings):
    """spaCy's tok2vec and ours, initialised, ours holding spaCy's (random) weights."""
    nlp = spacy.blank("en")
    docs = [nlp(" ".join(WORDS)), nlp("Pax6 marks retinal progenitor cells .")]
    stock = build_Tok2Vec_model(*_parts())
    ours = registry.architectures.get("biomed.Tok2Vec.v1")(*_parts(), **settings)
    rng = numpy.random.default_rng(seed)
    stock.initialize(X=docs)
    ours.initialize(X=docs)
    copy_random_weights(stock, ours, rng)  # same layers and parameters: the weights load
    return stock, ours, docs


def test_every_maxout_predicts_through_torch_as_spacys(monkeypatch):
    import torch

    dtypes = record_addmm(monkeypatch)
    stock, ours, docs = _pair()
    assert len(maxout_layers(ours)) == 3  # the embedding's and two encoder layers'
    dtypes.clear()
    expected, got = stock.predict(docs), ours.predict(docs)
    assert dtypes == [[torch.float32] * 3] * 3  # one multiply per Maxout, in float32
    for e, g in zip(expected, got):
        assert g.shape == e.shape and g.dtype == numpy.float32
        numpy.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)


def test_bfloat16_multiplies_in_bfloat16_close_to_float32(monkeypatch):
    import torch

    dtypes = record_addmm(monkeypatch)
    stock, ours, docs = _pair(seed=1, cpu_precision="bfloat16")
    dtypes.clear()
    expected, got = stock.predict(docs), ours.predict(docs)
    assert dtypes == [[torch.bfloat16] * 3] * 3
    for e, g in zip(expected, got):
        assert g.dtype == numpy.float32 and not numpy.array_equal(g, e)
        # each Maxout is followed by LayerNorm (unit variance): bfloat16's rounding
        # stays within a few tenths after three of them and two residual sums
        assert numpy.abs(g - e).mean() < 0.1


def test_training_is_spacys_whatever_the_precision():
    stock, ours, docs = _pair(seed=2, cpu_precision="bfloat16")
    (y1, back1), (y2, back2) = stock.begin_update(docs), ours.begin_update(docs)
    for a, b in zip(y1, y2):
        numpy.testing.assert_array_equal(a, b)
    back1([numpy.ones_like(y) for y in y1]), back2([numpy.ones_like(y) for y in y2])
    grads = [[node.get_grad(n) for n in node.grad_names] for node in stock.walk()]
    ours_grads = [[node.get_grad(n) for n in node.grad_names] for node in ours.walk()]
    assert sum(len(g) for g in grads) > 0
    for a, b in zip(grads, ours_grads):
        for ga, gb in zip(a, b):
            numpy.testing.assert_array_equal(ga, gb)


@pytest.mark.parametrize("name", ["uptrain_cnn.cfg", "distill_cnn.cfg"])
def test_student_configs_use_it_and_a_spacy_tok2vec_pipeline_loads_into_it(name, tmp_path):
    """The CPU students' configs name biomed.Tok2Vec.v1; a pipeline trained with
    spaCy's Tok2Vec (same weights) loads into it with one override and predicts the same spans."""
    config = spacy.util.load_config(ROOT / "configs" / name)
    assert config["components"]["tok2vec"]["model"]["@architectures"] == "biomed.Tok2Vec.v1"
    config["components"]["tok2vec"]["model"]["@architectures"] = "spacy.Tok2Vec.v2"
    del config["components"]["tok2vec"]["model"]["cpu_precision"]
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=False)
    if config["components"]["tok2vec"]["model"]["embed"]["include_static_vectors"]:  # the student's teacher vectors
        keys = [nlp.vocab.strings.add(w) for w in WORDS]
        nlp.vocab.vectors = Vectors(data=numpy.random.RandomState(0).rand(len(keys), 8).astype("f"), keys=keys)
    text = " ".join(WORDS)
    examples = [Example.from_dict(nlp.make_doc(text), {"spans": {"sc": [(0, 3, "PR"), (45, 50, "NCBITaxon")]}})]
    nlp.initialize(lambda: examples, sgd=Adam(1e-3))
    for _ in range(5):
        nlp.update(examples, sgd=Adam(1e-3))
    nlp.get_pipe("spancat").cfg["threshold"] = 0.0  # keep every candidate: compare all scores
    nlp.to_disk(tmp_path / "pipeline")
    stock = spacy.load(tmp_path / "pipeline")
    ours = spacy.load(tmp_path / "pipeline", config={"components.tok2vec.model.@architectures": "biomed.Tok2Vec.v1"})
    torch_path = [[hasattr(m._func, "keywords") for m in maxout_layers(n.get_pipe("tok2vec").model)] for n in (stock, ours)]
    assert torch_path == [[False] * 5, [True] * 5]  # the embedding's Maxout and the encoder's four
    doc_a, doc_b = stock(text), ours(text)
    a, b = doc_a.spans["sc"], doc_b.spans["sc"]
    assert len(a) > 0 and [(s.start, s.end, s.label_) for s in a] == [(s.start, s.end, s.label_) for s in b]
    numpy.testing.assert_allclose(b.attrs["scores"], a.attrs["scores"], atol=1e-5)
