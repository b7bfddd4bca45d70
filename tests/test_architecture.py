"""The registered BiomedBERT architecture: lookup, windows, a real forward pass."""
import pytest
import spacy
from spacy.tokens import Doc
from spacy.util import registry

from biomed_spancat.architecture import BIOMEDBERT, configure_strided_windows, get_strided_windows


def make_doc(n):
    nlp = spacy.blank("en")
    return Doc(nlp.vocab, words=[f"w{i}" for i in range(n)])


def test_registered_by_name():
    func = registry.architectures.get("biomed.BiomedBERT.v1")
    assert func.__name__ == "create_biomed_bert"
    # The default is the real BiomedBERT, uncased
    assert func.__defaults__[0] == BIOMEDBERT


@pytest.mark.parametrize(
    "n,window,stride,expected",
    [
        (0, 4, 3, []),
        (3, 4, 3, [(0, 3)]),
        (4, 4, 3, [(0, 4)]),
        (5, 4, 3, [(0, 4), (1, 5)]),
        (10, 4, 3, [(0, 4), (3, 7), (6, 10)]),
        (11, 4, 4, [(0, 4), (4, 8), (7, 11)]),
    ],
)
def test_strided_windows_cover_every_token(n, window, stride, expected):
    (spans,) = get_strided_windows([make_doc(n)], window, stride)
    assert [(s.start, s.end) for s in spans] == expected
    covered = {i for s in spans for i in range(s.start, s.end)}
    assert covered == set(range(n))


@pytest.mark.parametrize("window,stride,message", [(4, 5, "would skip tokens"), (0, 1, "must be positive")])
def test_bad_window_settings_say_why(window, stride, message):
    with pytest.raises(ValueError, match=message):
        configure_strided_windows(window, stride)


def test_long_doc_gets_vectors_for_every_token(tiny_bert):
    """A paragraph longer than the window (and than 512 wordpieces) is not cut."""
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "transformer",
        config={"model": {"@architectures": "biomed.BiomedBERT.v1", "name": str(tiny_bert), "window": 32, "stride": 24}},
    )
    nlp.initialize()
    text = " ".join(["BMP2 regulates limb patterning in the mouse embryo ."] * 80)  # 720 tokens
    doc = nlp(text)
    assert len(doc) == 720
    trf = doc._.trf_data
    # several windows, more wordpieces in all than one 512 window holds
    assert trf.wordpieces.input_ids.shape[0] > 1
    assert trf.wordpieces.input_ids.size > 512
    # every token aligned to at least one wordpiece, across all windows
    assert len(trf.align) == len(doc)
    assert all(trf.align[i].lengths.sum() >= 1 for i in range(len(doc)))
    assert trf.model_output.last_hidden_state.shape[-1] == 32


def test_uncased_tokenizer(tiny_bert):
    model = registry.architectures.get("biomed.BiomedBERT.v1")(name=str(tiny_bert))
    nlp = spacy.blank("en")
    model.initialize([nlp("x")])
    tokenizer = model.tokenizer
    assert tokenizer.tokenize("BMP2") == tokenizer.tokenize("bmp2")
