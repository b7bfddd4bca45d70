"""The registered tokenizer: spaCy's English rules plus splits inside biomedical tokens."""
import spacy
from spacy.tokens import Doc
from spacy.util import registry

from biomed_spancat.pipeline.tokenizer import create_biomed_tokenizer

BIOMED = {"nlp": {"tokenizer": {"@tokenizers": "biomed.Tokenizer.v1"}}}


def words(nlp, text):
    return [t.text for t in nlp(text)]


def test_registered_by_name():
    assert registry.tokenizers.get("biomed.Tokenizer.v1") is create_biomed_tokenizer


def test_splits_genotypes_constructs_and_markers():
    nlp = spacy.blank("en", config=BIOMED)
    assert words(nlp, "Pygo1-/-/Pygo2+/- mice") == ["Pygo1", "-", "/", "-", "/", "Pygo2", "+", "/", "-", "mice"]
    assert words(nlp, "Prx1::cre and BrdU+ cells") == ["Prx1", ":", ":", "cre", "and", "BrdU", "+", "cells"]
    # what spaCy's own rules do is kept: decimals, sentence punctuation
    assert words(nlp, "at E12.5, the 3′ end.") == ["at", "E12.5", ",", "the", "3", "′", "end", "."]


def test_no_extra_infixes_is_spacys_own_tokenizer():
    text = "Pygo1-/-/Pygo2+/- mice with Prx1::cre (E12.5)."
    plain = spacy.blank("en")
    same = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "biomed.Tokenizer.v1", "extra_infixes": []}}})
    assert words(same, text) == words(plain, text)
    assert words(spacy.blank("en", config=BIOMED), text) != words(plain, text)


def test_gold_span_inside_a_spacy_token_becomes_reachable():
    text = "Pygo2-/- embryos"
    gold = Doc(spacy.blank("en").vocab, words=["Pygo2", "-/-", "embryos"], spaces=[False, True, False])
    span = gold[0:1]  # "Pygo2", a PR span in CRAFT
    for nlp, reachable in ((spacy.blank("en"), False), (spacy.blank("en", config=BIOMED), True)):
        doc = nlp(text)
        assert (doc.char_span(span.start_char, span.end_char) is not None) is reachable


def test_survives_saving_and_loading(tmp_path):
    nlp = spacy.blank("en", config=BIOMED)
    nlp.to_disk(tmp_path / "p")
    loaded = spacy.load(tmp_path / "p")
    assert loaded.config["nlp"]["tokenizer"]["@tokenizers"] == "biomed.Tokenizer.v1"
    assert words(loaded, "BrdU+ Pygo2-/-") == ["BrdU", "+", "Pygo2", "-", "/", "-"]


def test_training_config_uses_it(project_root):
    from thinc.api import Config

    config = Config().from_disk(project_root / "configs" / "spancat.cfg", interpolate=False)
    assert config["nlp"]["tokenizer"]["@tokenizers"] == "biomed.Tokenizer.v1"
