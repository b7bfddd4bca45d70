"""The registered span scorer: `biomed.LinearLogistic.v1`.

spaCy's `spacy.LinearLogistic.v1` (a Linear layer, then a sigmoid per label)
trains spancat on the squared error of the probabilities: spancat's loss hands
the scorer `scores - target`, and the sigmoid's backprop multiplies it by
`p (1 - p)`. A span the model is sure is not a label (p near 0) then gets
almost no gradient when it is one, so confidently missed spans are learnt
slowly, and recall suffers.

With `loss = "cross_entropy"` the sigmoid passes `scores - target` straight
through to the logits, which is the gradient of binary cross-entropy: a missed
span pushes back as hard as the miss is sure. `loss = "squared"` is spaCy's
behaviour. Prediction is the same either way, and so are the layers and
weights, so a pipeline trained with one loads with the other (or with
`spacy.LinearLogistic.v1`).

Shipped inside the packaged pipeline (`spacy package --code`), so this module
imports nothing from the project: only spaCy and thinc.
"""
from typing import Callable, Optional, Tuple

from spacy.util import registry
from thinc.api import Linear, Logistic, Model, chain
from thinc.types import Floats2d

__all__ = ["build_linear_logistic", "LOSSES"]

LOSSES = ("cross_entropy", "squared")


@registry.layers("biomed.LinearLogistic.v1")
def build_linear_logistic(
    nO: Optional[int] = None, nI: Optional[int] = None, loss: str = "cross_entropy"
) -> Model[Floats2d, Floats2d]:
    """A Linear layer and a sigmoid per label, trained by `loss`.

    nO (Optional[int]): Labels (set by spancat at initialization).
    nI (Optional[int]): Input width (inferred).
    loss (str): "cross_entropy" (binary cross-entropy) or "squared" (spaCy's).
    RETURNS (Model[Floats2d, Floats2d]): The scorer.
    """
    if loss not in LOSSES:
        raise ValueError(f"biomed.LinearLogistic.v1: loss must be one of {', '.join(LOSSES)}, not {loss!r}")
    sigmoid = Logistic() if loss == "squared" else Model("logistic_ce", _logistic_ce_forward)
    return chain(Linear(nO=nO, nI=nI), sigmoid)


def _logistic_ce_forward(model: Model, X: Floats2d, is_train: bool) -> Tuple[Floats2d, Callable]:
    Y = model.ops.sigmoid(X, inplace=False)

    def backprop(dY: Floats2d) -> Floats2d:
        # spancat's dY is `p - target`: the cross-entropy gradient of the logits
        return dY

    return Y, backprop
