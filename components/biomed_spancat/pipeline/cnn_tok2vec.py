"""The registered CNN tok2vec: `biomed.Tok2Vec.v1`.

spaCy's `spacy.Tok2Vec.v2` (embed >> encode, e.g. MultiHashEmbed >>
MaxoutWindowEncoder: the CPU students' tok2vec), the same layers, weights and
training, whose Maxout layers predict through torch's matrix multiply on the
CPU (every thread torch uses; bfloat16 where `cpu_precision` resolves to it)
instead of thinc's single-threaded BLIS, the bulk of a CNN pipeline's time.
On a GPU (cupy arrays) spaCy's own path runs.

Shipped inside the packaged pipeline (`spacy package --code`), so this module
imports nothing from the project: only spaCy, thinc and, when a model is built,
its sibling `span_reducer` (shipped beside it; `spacy package` imports each code
file on its own, where a relative import at the top would fail).
"""
from typing import List

from spacy.ml.models.tok2vec import build_Tok2Vec_model
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d

__all__ = ["build_biomed_tok2vec"]


@registry.architectures("biomed.Tok2Vec.v1")
def build_biomed_tok2vec(
    embed: Model[List[Doc], List[Floats2d]],
    encode: Model[List[Floats2d], List[Floats2d]],
    cpu_precision: str = "float32",
) -> Model[List[Doc], List[Floats2d]]:
    """spaCy's Tok2Vec (same arguments, layers and weights), its Maxout layers
    (the embedding's and the encoder's) predicting through torch on the CPU.

    embed (Model[List[Doc], List[Floats2d]]): The embedding, e.g. spacy.MultiHashEmbed.v2.
    encode (Model[List[Floats2d], List[Floats2d]]): The encoder, e.g. spacy.MaxoutWindowEncoder.v2.
    cpu_precision (str): "float32", "bfloat16", or "auto" (bfloat16 where the CPU
        has it in hardware): the precision of the Maxouts' multiplies in CPU prediction.
    RETURNS (Model[List[Doc], List[Floats2d]]): The tok2vec.
    """
    from .span_reducer import predict_maxouts_in_torch

    return predict_maxouts_in_torch(build_Tok2Vec_model(embed, encode), cpu_precision)
