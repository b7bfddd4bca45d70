"""biomed.LinearLogistic.v1: spaCy's LinearLogistic trained by cross-entropy or squared error."""
import numpy
import pytest
import spacy
from spacy.ml.models.spancat import build_linear_logistic
from spacy.tokens import Span
from spacy.training import Example
from spacy.util import registry
from thinc.api import Adam

X = numpy.asarray([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]], dtype="float32")


def _scorers(seed=0):
    """spaCy's scorer and ours (both losses), all holding the same weights."""
    rng = numpy.random.default_rng(seed)
    stock = build_linear_logistic(nO=2, nI=3)  # spacy.LinearLogistic.v1
    stock.initialize(X=X)
    for node in stock.walk():
        if node.has_param("W"):
            node.set_param("W", rng.normal(size=(2, 3)).astype("float32") * 4)
            node.set_param("b", rng.normal(size=(2,)).astype("float32"))
    ours = {}
    for loss in ("cross_entropy", "squared"):
        layer = registry.layers.get("biomed.LinearLogistic.v1")(nO=2, nI=3, loss=loss)
        layer.initialize(X=X)
        layer.from_bytes(stock.to_bytes())  # same layers and parameters: the weights load
        ours[loss] = layer
    return stock, ours


def _logit_gradient(layer, target):
    """The gradient reaching the Linear layer's output (the logits) for spancat's `scores - target`."""
    linear = layer.layers[0]
    logits = linear.predict(X)
    Y, backprop = layer.layers[1].begin_update(logits)
    return Y, backprop(Y - target)


def test_prediction_equals_spacys():
    stock, ours = _scorers()
    for layer in ours.values():
        numpy.testing.assert_array_equal(layer.predict(X), stock.predict(X))


def test_cross_entropy_passes_the_error_to_the_logits():
    _, ours = _scorers()
    target = numpy.asarray([[1.0, 0.0], [0.0, 1.0]], dtype="float32")
    Y, d_logits = _logit_gradient(ours["cross_entropy"], target)
    numpy.testing.assert_allclose(d_logits, Y - target, rtol=1e-6)


def test_squared_is_spacys_training():
    stock, ours = _scorers(seed=1)
    target = numpy.asarray([[1.0, 0.0], [0.0, 1.0]], dtype="float32")
    (y1, back1), (y2, back2) = stock.begin_update(X), ours["squared"].begin_update(X)
    numpy.testing.assert_array_equal(back1(y1 - target), back2(y2 - target))


def test_a_confident_miss_keeps_its_gradient():
    """A gold span scored near 0: squared error's gradient vanishes, cross-entropy's does not."""
    _, ours = _scorers()
    for layer in ours.values():
        linear = layer.layers[0]
        linear.set_param("W", numpy.zeros((2, 3), dtype="float32"))
        linear.set_param("b", numpy.asarray([-12.0, -12.0], dtype="float32"))
    target = numpy.ones((2, 2), dtype="float32")
    _, d_ce = _logit_gradient(ours["cross_entropy"], target)
    _, d_sq = _logit_gradient(ours["squared"], target)
    assert numpy.all(d_ce < -0.99)
    assert numpy.all(numpy.abs(d_sq) < 1e-4)


def test_unknown_loss_is_named():
    with pytest.raises(ValueError, match=r"loss must be one of cross_entropy, squared, not 'hinge'"):
        registry.layers.get("biomed.LinearLogistic.v1")(loss="hinge")


def _spancat_pipeline(loss):
    nlp = spacy.blank("en")
    config = {
        "spans_key": "sc",
        "model": {
            "@architectures": "spacy.SpanCategorizer.v1",
            "reducer": {"@layers": "spacy.mean_max_reducer.v1", "hidden_size": 16},
            "scorer": {"@layers": "biomed.LinearLogistic.v1", "loss": loss},
            "tok2vec": {
                "@architectures": "spacy.Tok2Vec.v2",
                "embed": {
                    "@architectures": "spacy.MultiHashEmbed.v2",
                    "width": 16,
                    "attrs": ["NORM"],
                    "rows": [500],
                    "include_static_vectors": False,
                },
                "encode": {"@architectures": "spacy.MaxoutWindowEncoder.v2", "width": 16, "depth": 1, "window_size": 1, "maxout_pieces": 2},
            },
        },
    }
    nlp.add_pipe("spancat", config=config)
    return nlp


@pytest.mark.parametrize("loss", ["cross_entropy", "squared"])
def test_spancat_trains_and_round_trips(loss, tmp_path):
    nlp = _spancat_pipeline(loss)
    doc = nlp.make_doc("the p53 protein binds mdm2 in the nucleus")
    doc.spans["sc"] = [Span(doc, 1, 2, "PR"), Span(doc, 4, 5, "PR"), Span(doc, 7, 8, "GO_CC")]
    examples = [Example(nlp.make_doc(doc.text), doc)]
    nlp.initialize(lambda: examples, sgd=Adam(0.01))
    optimizer = nlp.create_optimizer()
    losses = [nlp.update(examples, sgd=optimizer, losses={})["spancat"] for _ in range(60)]
    assert losses[-1] < losses[0] / 4
    out = nlp(doc.text)
    predicted = {(s.text, s.label_) for s in out.spans["sc"]}
    assert predicted == {("p53", "PR"), ("mdm2", "PR"), ("nucleus", "GO_CC")}
    nlp.to_disk(tmp_path / "model")
    again = spacy.load(tmp_path / "model")
    out = again(doc.text)
    assert {(s.text, s.label_) for s in out.spans["sc"]} == predicted
