"""The registered sentence splitter for biomedical text: the `biomed_sentencizer_v1` factory.

spaCy's rule-based `sentencizer` ends a sentence at every "." token, so it
cuts "Fig. 2", "et al. (2005)", "ca. 30 min" and "approx. 2 h" apart (the
English tokenizer splits "Fig." into "Fig" "." while it keeps "e.g." and
"E." whole). This component ends sentences at ".", "!", "?" and newlines,
except after abbreviations that never end a sentence, and after ambiguous ones
("et al.", "etc.", an initial such as the genus in "E. coli") only when the
next word starts with a capital letter. It needs no training and reads no
other component's output, so it changes no span prediction.

Shipped inside the packaged pipeline (`spacy package --code`), so this module
imports nothing from the project: only spaCy.
"""
from typing import Iterable, List, Optional, Sequence

import numpy
from spacy.language import Language
from spacy.tokens import Doc, Token
from spacy.util import registry

__all__ = ["AMBIGUOUS_ABBREVIATIONS", "BiomedSentencizer", "END_PUNCT", "NEVER_END_ABBREVIATIONS", "make_biomed_sentencizer"]

END_PUNCT = (".", "!", "?", "…", "。", "．", "！", "？")
# Lower-cased, without the final period: a sentence never ends right after these.
NEVER_END_ABBREVIATIONS = (
    "e.g", "i.e", "cf", "vs", "viz", "ca", "approx", "fig", "figs", "eq", "eqs", "ref", "refs",
    "tab", "no", "nos", "vol", "pp", "suppl", "dr", "prof", "mr", "mrs", "ms", "st", "mol", "wt",
    "conc", "incl", "ed", "eds", "chap", "sect", "approx", "resp", "cat", "var", "subsp", "ssp",
)
# These end a sentence only when the next word starts with a capital letter:
# "Smith et al. (2005) showed" goes on, "found by Smith et al. Then" ends.
AMBIGUOUS_ABBREVIATIONS = ("al", "etc", "sp", "spp", "jr", "sr", "inc", "ltd", "co")


def _factory(name: str, **meta):
    """`Language.factory(name, **meta)`, unless another copy of this module registered `name`.

    In the project's own environment the installed wheel's copy of this module
    (`en_biomed_spancat.X`) meets the project's (`biomed_spancat.pipeline.X`), both
    registered through entry points; spaCy refuses a second function under one
    factory name (E004), so the first copy imported serves both. (Each shipped
    module stands alone, so this helper is repeated in each that registers a factory.)
    """

    def register(func):
        if name in registry.factories:
            return func
        return Language.factory(name, **meta)(func)

    return register


@_factory(
    "biomed_sentencizer_v1",
    assigns=["token.is_sent_start", "doc.sents"],
    default_config={
        "punct_chars": None,
        "never_end": None,
        "ambiguous": None,
        "split_on_newlines": True,
        "overwrite": False,
    },
    default_score_weights={},
)
def make_biomed_sentencizer(
    nlp: Language,
    name: str,
    punct_chars: Optional[List[str]],
    never_end: Optional[List[str]],
    ambiguous: Optional[List[str]],
    split_on_newlines: bool,
    overwrite: bool,
) -> "BiomedSentencizer":
    """Rule-based sentence boundaries for biomedical text.

    punct_chars (Optional[List[str]]): Tokens that end a sentence; None uses END_PUNCT.
    never_end (Optional[List[str]]): Abbreviations (lower case, no final period)
        after which a sentence never ends; None uses NEVER_END_ABBREVIATIONS.
    ambiguous (Optional[List[str]]): Abbreviations that end a sentence only before
        a capitalised word; None uses AMBIGUOUS_ABBREVIATIONS. A single capital
        letter with a period ("E.") is always treated as ambiguous.
    split_on_newlines (bool): A line break (a whitespace token with a newline) ends a sentence.
    overwrite (bool): Replace boundaries already set (by a parser or senter).
    RETURNS (BiomedSentencizer): The component.
    """
    return BiomedSentencizer(
        name,
        punct_chars=END_PUNCT if punct_chars is None else punct_chars,
        never_end=NEVER_END_ABBREVIATIONS if never_end is None else never_end,
        ambiguous=AMBIGUOUS_ABBREVIATIONS if ambiguous is None else ambiguous,
        split_on_newlines=split_on_newlines,
        overwrite=overwrite,
    )


class BiomedSentencizer:
    """Set `token.is_sent_start` on every token, so `doc.sents` works."""

    def __init__(
        self,
        name: str = "sentencizer",
        *,
        punct_chars: Sequence[str] = END_PUNCT,
        never_end: Iterable[str] = NEVER_END_ABBREVIATIONS,
        ambiguous: Iterable[str] = AMBIGUOUS_ABBREVIATIONS,
        split_on_newlines: bool = True,
        overwrite: bool = False,
    ) -> None:
        self.name = name
        self.punct_chars = set(punct_chars)
        self.never_end = {a.lower().rstrip(".") for a in never_end}
        self.ambiguous = {a.lower().rstrip(".") for a in ambiguous}
        self.split_on_newlines = split_on_newlines
        self.overwrite = overwrite

    def __call__(self, doc: Doc) -> Doc:
        starts = self.predict(doc)
        if not starts:
            return doc
        # Written as one array: each `token.is_sent_start = ...` makes spaCy scan the whole
        # doc for a parse (Doc.has_annotation), quadratic in the doc's length.
        flags = numpy.asarray([1 if start else -1 for start in starts], dtype="int64")
        if not self.overwrite:
            old = doc.to_array(["SENT_START"]).astype("int64").ravel()
            if old[1:].all():  # every boundary is set already (a parsed doc, or a second pass)
                return doc
            flags = numpy.where(old != 0, old, flags)
        doc.from_array(["SENT_START"], flags.astype("uint64").reshape(-1, 1))
        return doc

    def pipe(self, stream: Iterable[Doc], batch_size: int = 128) -> Iterable[Doc]:
        for doc in stream:
            yield self(doc)

    def predict(self, doc: Doc) -> List[bool]:
        """Whether each token starts a sentence (the first token always does).

        doc (Doc): The doc to split.
        RETURNS (List[bool]): One flag per token.
        """
        starts = [False] * len(doc)
        if not starts:
            return starts
        starts[0] = True
        pending = False  # a sentence ended; the next real word starts the next one
        for i, token in enumerate(doc):
            if pending and not _trails_sentence(token):
                starts[i] = True
                pending = False
            if self._ends_sentence(doc, i):
                pending = True
        return starts

    def _ends_sentence(self, doc: Doc, i: int) -> bool:
        token = doc[i]
        if self.split_on_newlines and token.is_space and "\n" in token.text:
            return True
        text = token.text
        if text in self.punct_chars:
            if text != "." or i == 0 or doc[i - 1].whitespace_:
                return True
            # "Fig" "." as the tokenizer splits it: the abbreviation is the word before
            abbrev = doc[i - 1].text
            whole = False
        elif len(text) > 1 and text.endswith(".") and not text.endswith(".."):
            # a token the tokenizer kept whole with its period: "e.g.", "vs.", "E.", "Jan."
            abbrev = text[:-1]
            whole = True
        else:
            return False
        key = abbrev.lower()
        if key in self.never_end:
            return False
        # Other whole tokens with a period are tokenizer exceptions, abbreviations as well:
        # like the ambiguous ones, they end a sentence only before a capitalised word.
        if whole or key in self.ambiguous or (len(abbrev) == 1 and abbrev.isupper()):
            following = _next_word(doc, i)
            return following is None or following.text[:1].isupper()
        return True


def _trails_sentence(token: Token) -> bool:
    """Closing brackets, quotes, further end marks and spaces stay with the sentence they end."""
    if token.is_space:
        return True
    if token.is_left_punct and token.i > 0 and token.doc[token.i - 1].whitespace_:
        return False  # a quote after a space opens the next sentence
    return token.is_punct and not token.is_left_punct and not token.is_bracket or token.is_right_punct


def _next_word(doc: Doc, i: int) -> Optional[Token]:
    for token in doc[i + 1 :]:
        if not token.is_space:
            return token
    return None
