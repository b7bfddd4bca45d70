"""biomed_sentencizer_v1: doc.sents on biomedical text, abbreviations kept inside sentences."""
import pytest
import spacy
from spacy.util import registry

import biomed_spancat.pipeline.sentences  # noqa: F401  (registers the factory, as the package does)


@pytest.fixture(scope="module")
def nlp():
    nlp = spacy.blank("en")
    nlp.tokenizer = registry.tokenizers.get("biomed.Tokenizer.v1")()(nlp)
    nlp.add_pipe("biomed_sentencizer_v1", name="sentencizer")
    return nlp


@pytest.mark.parametrize(
    "sentences",
    [
        # species names, e.g./i.e., Fig., ca., vs., approx., et al. before a lower-case word
        [
            "Growth of E. coli and S. cerevisiae was measured (Fig. 2A), e.g. at 37 °C, i.e. ca. 30 min "
            "vs. approx. 2 h, as Smith et al. showed.",
            "See Figs. 3 and 4.",
        ],
        # cf., Ref., et al. before a bracket; et al. then a capitalised word does end the sentence
        ["The cells (cf. Ref. 5) grew.", "Jones et al. (2005) disagree.", "It was found by Smith et al.", "Then it grew!"],
        # ? and ! end sentences; closing brackets stay with their sentence, an opening quote starts one
        ["Is it?", "(Yes.)", '"Really."', "No."],
        # a vitamin letter at the end of a sentence is not a genus: the capitalised word after it starts one
        ["Mice lacked vitamin C.", "The B. subtilis strain grew."],
        # a line break ends a title; etc. before a capital ends a sentence
        ["Results\n", "Bmp2, Bmp4 etc.", "These were expressed."],
        # sentences starting with a lower-case gene name are still split after a plain period
        ["Levels rose.", "p53 was stable."],
    ],
)
def test_sentence_boundaries(nlp, sentences):
    text = " ".join(sentences).replace("\n ", "\n")
    doc = nlp(text)
    assert [s.text.rstrip(" ") for s in doc.sents] == sentences


def test_single_sentence_and_empty_doc(nlp):
    assert [s.text for s in nlp("Fig. 1 shows E. coli").sents] == ["Fig. 1 shows E. coli"]
    doc = nlp("")
    assert len(doc) == 0 and list(doc.sents) == []


def test_existing_boundaries_are_kept_unless_overwrite():
    nlp = spacy.blank("en")
    doc = nlp("A b. C d.")
    doc[2].is_sent_start = False
    for token in doc[1:]:
        if token.is_sent_start is None:
            token.is_sent_start = False
    keep = nlp.add_pipe("biomed_sentencizer_v1", name="keep")
    assert [s.text for s in keep(doc).sents] == ["A b. C d."]
    over = nlp.add_pipe("biomed_sentencizer_v1", name="over", config={"overwrite": True})
    assert [s.text for s in over(doc).sents] == ["A b.", "C d."]


def test_custom_abbreviations_from_config():
    nlp = spacy.blank("en")
    nlp.add_pipe("biomed_sentencizer_v1", config={"never_end": ["approx", "Tbl"]})
    doc = nlp("See Tbl. 2 for the rest. Done.")
    assert [s.text for s in doc.sents] == ["See Tbl. 2 for the rest.", "Done."]


def test_a_second_pass_keeps_every_boundary_of_the_first():
    nlp = spacy.blank("en")
    nlp.add_pipe("biomed_sentencizer_v1")
    doc = nlp("A b. C d.")
    assert [t.is_sent_start for t in doc] == [True, False, True, False]
    doc[2].is_sent_start = False  # every token is set: a later pass changes nothing
    again = nlp.get_pipe("biomed_sentencizer_v1")(doc)
    assert [t.is_sent_start for t in again] == [True, False, False, False]
