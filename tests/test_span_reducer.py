"""biomed.mean_max_reducer.v1: spaCy's mean_max_reducer, predicting through torch."""
import numpy
import pytest
from spacy.ml.models.spancat import build_mean_max_reducer
from spacy.util import registry
from thinc.api import Ragged

from biomed_spancat.pipeline.span_reducer import maxout_layers


def _pair(hidden=16, width=8, seed=0):
    """spaCy's reducer and ours, initialised, ours holding spaCy's weights."""
    rng = numpy.random.default_rng(seed)
    lengths = numpy.asarray([1, 3, 2, 5, 1, 4], dtype="i")
    X = Ragged(rng.normal(size=(int(lengths.sum()), width)).astype("float32"), lengths)
    stock = build_mean_max_reducer(hidden_size=hidden)
    ours = registry.layers.get("biomed.mean_max_reducer.v1")(hidden_size=hidden)
    stock.initialize(X=X)
    ours.initialize(X=X)
    for node in stock.walk():  # random weights everywhere, LayerNorm's too
        for name in node.param_names:
            if node.has_param(name):
                node.set_param(name, rng.normal(size=node.get_param(name).shape).astype("float32"))
    ours.from_bytes(stock.to_bytes())  # same layers and parameters: the weights load
    return stock, ours, X


def test_registered_with_one_maxout():
    reducer = registry.layers.get("biomed.mean_max_reducer.v1")(hidden_size=16)
    assert [n.name for n in maxout_layers(reducer)] == ["maxout"]


def test_prediction_equals_spacys(monkeypatch):
    import torch

    from biomed_spancat.pipeline import span_reducer

    calls = []
    addmm = torch.addmm
    monkeypatch.setattr(span_reducer.torch, "addmm", lambda *a: calls.append(1) or addmm(*a))
    stock, ours, X = _pair()
    calls.clear()
    expected, got = stock.predict(X), ours.predict(X)
    assert calls == [1]  # the torch path ran
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
    with pytest.raises(ValueError, match="predicted without gradients"):
        backprop(numpy.ones((6, 16), dtype="float32"))

