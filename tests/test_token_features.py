"""biomed.TransformerWithFeatures.v1: spaCy's lexical features beside the (uncased) transformer."""
import numpy
import pytest
import spacy
from spacy.training import Example
from spacy.util import registry
from thinc.api import Adam

from conftest import transformer_nlp

ATTRS = ["NORM", "PREFIX", "SUFFIX", "SHAPE"]
ROWS = [500, 100, 250, 250]
LISTENER = {"@architectures": "spacy-transformers.TransformerListener.v1", "grad_factor": 1.0,
            "pooling": {"@layers": "reduce_mean.v1"}}


def _spancat(width):
    return {"model": {
        "@architectures": "spacy.SpanCategorizer.v1",
        "reducer": {"@layers": "biomed.mean_max_reducer.v1", "hidden_size": 16},
        "scorer": {"@layers": "biomed.LinearLogistic.v1"},
        "tok2vec": {"@architectures": "biomed.TransformerWithFeatures.v1", "width": width, "attrs": ATTRS,
                    "rows": ROWS, "tok2vec": LISTENER},
    }}


def _trained(tiny_bert, width, steps=3):
    nlp = transformer_nlp(tiny_bert, cpu_precision="float32")
    nlp.add_pipe("spancat", config=_spancat(width))
    ref = nlp.make_doc("Shh regulates limb patterning in the mouse embryo .")
    ref.spans["sc"] = [ref.char_span(0, 3, label="PR"), ref.char_span(14, 18, label="UBERON")]
    examples = [Example(nlp.make_doc(ref.text), ref)]
    nlp.initialize(lambda: examples)
    optimizer = Adam(1e-3)
    for _ in range(steps):
        nlp.update(examples, sgd=optimizer)
    return nlp


def _token_vectors(nlp, text):
    doc = nlp.make_doc(text)
    doc = nlp.get_pipe("transformer")(doc)
    return nlp.get_pipe("spancat").model.get_ref("tok2vec").predict([doc])[0]


def _tables(nlp):
    """The features' hash tables inside spancat's model."""
    return [n for n in nlp.get_pipe("spancat").model.walk() if n.name == "hashembed"]


def test_vectors_are_the_transformers_then_the_features(tiny_bert):
    nlp = _trained(tiny_bert, width=8)
    upper, lower = _token_vectors(nlp, "SHH is expressed ."), _token_vectors(nlp, "shh is expressed .")
    assert upper.shape == (4, 32 + 8)  # tiny BERT's 32 + the features' 8
    # the uncased transformer cannot tell the two spellings apart; the case-keeping features can
    numpy.testing.assert_allclose(upper[:, :32], lower[:, :32], rtol=1e-5, atol=1e-6)
    assert not numpy.allclose(upper[0, 32:], lower[0, 32:])
    numpy.testing.assert_allclose(upper[1:, 32:], lower[1:, 32:])


def test_width_zero_is_the_listener_alone(tiny_bert):
    nlp = _trained(tiny_bert, width=0)
    assert _token_vectors(nlp, "Shh is expressed .").shape == (4, 32)
    assert not _tables(nlp)


def test_training_updates_the_feature_tables(tiny_bert):
    nlp = _trained(tiny_bert, width=8, steps=0)
    tables = _tables(nlp)
    assert len(tables) == len(ATTRS)
    before = [t.get_param("E").copy() for t in tables]
    ref = nlp.make_doc("Shh regulates limb patterning .")
    ref.spans["sc"] = [ref.char_span(0, 3, label="PR")]
    nlp.update([Example(nlp.make_doc(ref.text), ref)], sgd=Adam(1e-2))
    assert any(not numpy.array_equal(b, t.get_param("E")) for b, t in zip(before, tables))


def test_saved_pipeline_predicts_the_same_after_loading(tiny_bert, tmp_path):
    nlp = _trained(tiny_bert, width=8)
    text = "Shh regulates limb patterning in the mouse embryo ."
    nlp.to_disk(tmp_path / "nlp")
    loaded = spacy.load(tmp_path / "nlp")
    numpy.testing.assert_allclose(_token_vectors(loaded, text), _token_vectors(nlp, text), rtol=1e-5, atol=1e-6)
    scores = [sorted((s.start, s.end, s.label_, round(float(x), 5)) for s, x in
                     zip(d.spans["sc"], d.spans["sc"].attrs["scores"])) for d in (nlp(text), loaded(text))]
    assert scores[0] == scores[1]


@pytest.mark.parametrize("width, attrs, rows, message", [
    (-1, ATTRS, ROWS, "width must be >= 0, not -1"),
    (8, ["NORM", "SHAPE"], [100], "2 attrs but 1 rows; give one hash-table size per attribute"),
])
def test_bad_settings_say_why(width, attrs, rows, message):
    listener = registry.resolve({"m": LISTENER})["m"]
    with pytest.raises(ValueError, match=message):
        registry.architectures.get("biomed.TransformerWithFeatures.v1")(tok2vec=listener, width=width, attrs=attrs,
                                                                        rows=rows)
