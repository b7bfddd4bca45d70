"""The registered tokenizer: spaCy's English rules, plus splits inside biomedical tokens.

Span annotations of biomedical text start and end inside what spaCy's English
tokenizer keeps as one token: genotypes (`Pygo2-/-`, `Bmp2C/+`), constructs
(`Prx1::cre`), markers (`BrdU+`). A gold span whose boundary falls inside a
token cannot be predicted from raw text at all. On CRAFT dev, 7.7% of gold
spans do; with the splits below, 4.2% (measured by `evaluate --raw-text`).
What is left are splits inside words (`Bmp2C`, `postnatal`), which no
punctuation rule finds.

Shipped inside the packaged pipeline (`spacy package --code`), so this module
imports nothing from the project: only spaCy.
"""
from typing import TYPE_CHECKING, Callable, List, Optional

from spacy.tokenizer import Tokenizer
from spacy.util import compile_infix_regex, registry

if TYPE_CHECKING:
    from spacy.language import Language

__all__ = ["BIOMED_INFIXES", "create_biomed_tokenizer"]

# Characters that biomedical notation glues to names: genotype signs, slashes,
# double colons, primes, brackets. Each one becomes a token of its own.
BIOMED_INFIXES = [r"[+\-/−–:_′'()\[\]]"]


@registry.tokenizers("biomed.Tokenizer.v1")
def create_biomed_tokenizer(extra_infixes: Optional[List[str]] = None) -> Callable[["Language"], Tokenizer]:
    """spaCy's tokenizer for the language, with extra infix patterns.

    extra_infixes (Optional[List[str]]): Regular expressions added to the
        language's infixes; None uses BIOMED_INFIXES, [] gives spaCy's own tokenizer.
    RETURNS (Callable[[Language], Tokenizer]): The tokenizer factory for [nlp.tokenizer].
    """
    patterns = list(BIOMED_INFIXES if extra_infixes is None else extra_infixes)
    make_default = registry.tokenizers.get("spacy.Tokenizer.v1")()

    def make_tokenizer(nlp: "Language") -> Tokenizer:
        tokenizer = make_default(nlp)
        if patterns:
            infixes = list(nlp.Defaults.infixes or []) + patterns
            tokenizer.infix_finditer = compile_infix_regex(infixes).finditer
        return tokenizer

    return make_tokenizer
