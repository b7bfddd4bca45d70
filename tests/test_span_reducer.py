"""biomed.mean_max_reducer.v1/v2: spaCy's mean_max_reducer, predicting through torch
(v2 in bfloat16 when its cpu_precision says so)."""
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.ml.models.spancat import build_mean_max_reducer
from spacy.training import Example
from spacy.util import registry
from thinc.api import Adam, Ragged

from biomed_spancat.pipeline.span_reducer import maxout_layers
from torch_maxout import copy_random_weights, record_addmm

ROOT = Path(__file__).resolve().parent.parent


def _reducer(version="v1", **settings):
    return registry.layers.get(f"biomed.mean_max_reducer.{version}")(**settings)


def _bfloat16(reducer):
    """Whether the reducer's Maxout predicts in bfloat16."""
    return [maxout._func.keywords["bfloat16"] for maxout in maxout_layers(reducer)]


def _pair(hidden=16, width=8, seed=0, version="v1", **settings):
    """spaCy's reducer and ours, initialised, ours holding spaCy's weights."""
    rng = numpy.random.default_rng(seed)
    lengths = numpy.asarray([1, 3, 2, 5, 1, 4], dtype="i")
    X = Ragged(rng.normal(size=(int(lengths.sum()), width)).astype("float32"), lengths)
    stock = build_mean_max_reducer(hidden_size=hidden)
    ours = _reducer(version, hidden_size=hidden, **settings)
    stock.initialize(X=X)
    ours.initialize(X=X)
    copy_random_weights(stock, ours, rng)  # same layers and parameters: the weights load
    return stock, ours, X


def test_registered_with_one_maxout():
    assert [n.name for n in maxout_layers(_reducer(hidden_size=16))] == ["maxout"]
    assert _bfloat16(_reducer(hidden_size=16)) == [False]  # v1 predicts in float32
    assert _bfloat16(_reducer("v2", hidden_size=16)) == [False]  # v2's default
    assert _bfloat16(_reducer("v2", hidden_size=16, cpu_precision="bfloat16")) == [True]


def test_prediction_equals_spacys(monkeypatch):
    import torch

    calls = record_addmm(monkeypatch)
    stock, ours, X = _pair()
    calls.clear()
    expected, got = stock.predict(X), ours.predict(X)
    assert calls == [[torch.float32] * 3]  # the torch path ran, in float32
    assert got.shape == expected.shape == (6, 16) and got.dtype == numpy.float32
    numpy.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_training_is_spacys():
    stock, ours, X = _pair(seed=1)
    (y1, back1), (y2, back2) = stock.begin_update(X), ours.begin_update(X)
    numpy.testing.assert_array_equal(y1, y2)
    dY = numpy.ones_like(y1)
    numpy.testing.assert_array_equal(back1(dY).dataXd, back2(dY).dataXd)


def test_prediction_has_no_backprop():
    _, ours, X = _pair()
    maxout = maxout_layers(ours)[0]
    pooled = ours.layers[0].predict(X)
    _, backprop = maxout._func(maxout, pooled, is_train=False)
    with pytest.raises(ValueError, match="predicts through torch has no gradients"):
        backprop(numpy.ones((6, 16), dtype="float32"))


def test_v2_in_float32_predicts_as_v1():
    _, v1, X = _pair(seed=2)
    _, v2, _ = _pair(seed=2, version="v2", cpu_precision="float32")
    numpy.testing.assert_array_equal(v2.predict(X), v1.predict(X))


def test_v2_in_bfloat16_multiplies_in_bfloat16(monkeypatch):
    import torch

    dtypes = record_addmm(monkeypatch)
    stock, ours, X = _pair(hidden=32, width=16, version="v2", cpu_precision="bfloat16")
    dtypes.clear()
    expected, got = stock.predict(X), ours.predict(X)
    assert dtypes == [[torch.bfloat16] * 3]  # bias, inputs and weights
    assert got.shape == expected.shape == (6, 32) and got.dtype == numpy.float32
    assert not numpy.array_equal(got, expected)  # rounded to bfloat16's 8 bits on the way
    # LayerNorm after the Maxout scales each row to unit variance: bfloat16's relative
    # error (2 ** -8 per operand) stays a few hundredths there
    numpy.testing.assert_allclose(got, expected, atol=0.1)
    assert numpy.abs(got - expected).mean() < 0.02


def test_v2_trains_as_spacys_in_float32_whatever_its_precision():
    stock, ours, X = _pair(seed=3, version="v2", cpu_precision="bfloat16")
    (y1, back1), (y2, back2) = stock.begin_update(X), ours.begin_update(X)
    assert y2.dtype == numpy.float32
    numpy.testing.assert_array_equal(y1, y2)
    dY = numpy.ones_like(y1)
    numpy.testing.assert_array_equal(back1(dY).dataXd, back2(dY).dataXd)


@pytest.mark.parametrize("native,expected", [(True, [True]), (False, [False])])
def test_v2_auto_follows_the_transformers_rule(monkeypatch, native, expected):
    from biomed_spancat.pipeline import architecture

    monkeypatch.setattr(architecture, "cpu_has_native_bf16", lambda: native)
    assert _bfloat16(_reducer("v2", hidden_size=8, cpu_precision="auto")) == expected


def test_v2_rejects_an_unknown_precision():
    with pytest.raises(ValueError, match="cpu_precision must be one of float32, bfloat16, auto, got 'fp16'"):
        _reducer("v2", hidden_size=8, cpu_precision="fp16")


def test_shipped_config_reducer_follows_the_transformers_precision(tiny_bert, tmp_path):
    """configs/spancat.cfg ties the reducer's precision to the transformer's, so the
    one load-time override the docs give (float32 for exact results) moves both."""
    config = spacy.util.load_config(ROOT / "configs" / "spancat.cfg", overrides={"paths.transformer": str(tiny_bert)})
    assert config["components"]["spancat"]["model"]["reducer"]["cpu_precision"] == "${components.transformer.model.cpu_precision}"
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=False)
    text = "Shh regulates limb patterning in the mouse embryo ."
    examples = [Example.from_dict(nlp.make_doc(text), {"spans": {"sc": [(0, 3, "PR"), (14, 18, "UBERON")]}})]
    nlp.initialize(lambda: examples, sgd=Adam(1e-3))  # spaCy's train passes its optimizer the same way
    nlp.to_disk(tmp_path / "pipeline")
    for precision, expected in [("float32", [False]), ("bfloat16", [True])]:
        loaded = spacy.load(tmp_path / "pipeline", config={"components.transformer.model.cpu_precision": precision})
        assert _bfloat16(loaded.get_pipe("spancat").model.get_ref("reducer")) == expected
