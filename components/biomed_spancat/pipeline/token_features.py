"""The registered token features beside the transformer: `biomed.TransformerWithFeatures.v1`.

BiomedBERT (and its offline stand-in) is uncased: "Shh", "SHH" and "shh" reach
it as the same wordpieces, while CRAFT-style guidelines tell a protein ("Pax6")
from a gene or a plain word partly by its spelling. This layer concatenates, to
each token's transformer vector, a small embedding of spaCy's own lexical
attributes (by default NORM, PREFIX, SUFFIX and SHAPE, the features of spaCy's
CNN tok2vec; SHAPE and PREFIX keep the case), so the span reducer sees both.
The features are hashed per token (no vocabulary to ship) and trained with
spancat; the transformer listener and its gradients are unchanged.

Shipped inside the packaged pipeline (`spacy package --code`), so this module
imports nothing from the project: only spaCy and thinc.
"""
from typing import List, Union

from spacy.ml.models.tok2vec import MultiHashEmbed
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model, concatenate
from thinc.types import Floats2d

__all__ = ["build_transformer_with_features"]


@registry.architectures("biomed.TransformerWithFeatures.v1")
def build_transformer_with_features(
    tok2vec: Model[List[Doc], List[Floats2d]],
    width: int,
    attrs: List[Union[str, int]],
    rows: List[int],
) -> Model[List[Doc], List[Floats2d]]:
    """Each token's vector from `tok2vec` (a transformer listener), followed by
    a hashed embedding of its lexical attributes.

    tok2vec (Model[List[Doc], List[Floats2d]]): The token vectors to extend.
    width (int): Width of the features' embedding (0 turns them off: `tok2vec` alone).
    attrs (List[Union[str, int]]): Token attributes to embed, e.g. ["NORM", "SHAPE"].
    rows (List[int]): Hash-table rows per attribute, in the order of `attrs`.
    RETURNS (Model[List[Doc], List[Floats2d]]): Vectors `tok2vec`'s width + `width` wide.
    """
    if width < 0:
        raise ValueError(f"biomed.TransformerWithFeatures.v1: width must be >= 0, not {width}")
    if len(attrs) != len(rows):
        raise ValueError(
            f"biomed.TransformerWithFeatures.v1: {len(attrs)} attrs but {len(rows)} rows; "
            "give one hash-table size per attribute"
        )
    if width == 0:
        return tok2vec
    features = MultiHashEmbed(width=width, attrs=list(attrs), rows=list(rows), include_static_vectors=False)
    return concatenate(tok2vec, features)
