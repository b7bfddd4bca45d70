"""The registered span reducer: `biomed.mean_max_reducer.v1`.

spaCy's `spacy.mean_max_reducer.v1` (last | first | mean | max of each span's
token vectors, then a Maxout with LayerNorm): the same layers and parameters,
so weights load either way, and the same training. In prediction the Maxout's
matrix multiply, spans x (4 x width) by (4 x width) x (hidden x pieces), the
bulk of spancat's time, runs through torch (its BLAS, on every thread torch
uses) rather than thinc's single-threaded BLIS; the result is the same up to
float32 rounding (tests/test_span_reducer.py). On a GPU (cupy arrays) spaCy's
own path runs.

Shipped inside the packaged pipeline (`spacy package --code`), so this module
imports nothing from the project: only spaCy, thinc and torch.
"""
from functools import partial
from typing import Any, Callable, List, Tuple

import numpy
import torch
from spacy.ml.models.spancat import build_mean_max_reducer
from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d, Ragged

__all__ = ["build_biomed_mean_max_reducer", "maxout_layers"]


@registry.layers("biomed.mean_max_reducer.v1")
def build_biomed_mean_max_reducer(hidden_size: int) -> Model[Ragged, Floats2d]:
    """spaCy's mean_max_reducer (same argument, layers and weights), its Maxout
    predicting through torch's matrix multiply on the CPU.

    hidden_size (int): Width of the Maxout's output.
    RETURNS (Model[Ragged, Floats2d]): The reducer.
    """
    reducer = build_mean_max_reducer(hidden_size)
    for maxout in maxout_layers(reducer):
        maxout._func = partial(_maxout_forward, inner=maxout._func)
    return reducer


def maxout_layers(model: Model) -> List[Model]:
    """The Maxout layers in `model` (spaCy's mean_max_reducer has one)."""
    return [node for node in model.walk() if node.name == "maxout"]


def _maxout_forward(model: Model, X: Floats2d, is_train: bool, *, inner: Callable) -> Tuple[Floats2d, Callable]:
    if is_train or not isinstance(X, numpy.ndarray) or X.dtype != numpy.float32 or not len(X):
        return inner(model, X, is_train)
    nO, nP, nI = model.get_dim("nO"), model.get_dim("nP"), model.get_dim("nI")
    W = torch.from_numpy(numpy.ascontiguousarray(model.get_param("W").reshape(nO * nP, nI)))
    b = torch.from_numpy(numpy.ascontiguousarray(model.get_param("b").reshape(nO * nP)))
    with torch.inference_mode():
        Y = torch.addmm(b, torch.from_numpy(numpy.ascontiguousarray(X)), W.T)
        best = Y.reshape(-1, nO, nP).amax(dim=2)
    return best.numpy(), _no_backprop


def _no_backprop(dY: Any) -> Any:
    raise ValueError("biomed.mean_max_reducer.v1 predicted without gradients: call it with is_train=True to train")
