"""The registered span reducers: `biomed.mean_max_reducer.v1` and `.v2`.

spaCy's `spacy.mean_max_reducer.v1` (last | first | mean | max of each span's
token vectors, then a Maxout with LayerNorm): the same layers and parameters,
so weights load either way, and the same training. In prediction the Maxout's
matrix multiply, spans x (4 x width) by (4 x width) x (hidden x pieces), the
bulk of spancat's time, runs through torch (its BLAS, on every thread torch
uses) rather than thinc's single-threaded BLIS; the result is the same up to
float32 rounding (tests/test_span_reducer.py). v2 can run that multiply in
bfloat16, following the transformer's `cpu_precision`. On a GPU (cupy arrays)
spaCy's own path runs.

Shipped inside the packaged pipeline (`spacy package --code`), so this module
imports nothing from the project: only spaCy, thinc and torch; "auto" is
resolved by its sibling `architecture` (shipped beside it), imported when asked.
"""
from functools import partial
from typing import Any, Callable, List, Tuple

import numpy
import torch
from spacy.ml.models.spancat import build_mean_max_reducer
from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d, Ragged

__all__ = ["build_biomed_mean_max_reducer", "build_biomed_mean_max_reducer_v2", "maxout_layers", "predict_maxouts_in_torch"]


@registry.layers("biomed.mean_max_reducer.v1")
def build_biomed_mean_max_reducer(hidden_size: int) -> Model[Ragged, Floats2d]:
    """spaCy's mean_max_reducer (same argument, layers and weights), its Maxout
    predicting through torch's matrix multiply on the CPU, in float32.

    hidden_size (int): Width of the Maxout's output.
    RETURNS (Model[Ragged, Floats2d]): The reducer.
    """
    return build_biomed_mean_max_reducer_v2(hidden_size, cpu_precision="float32")


@registry.layers("biomed.mean_max_reducer.v2")
def build_biomed_mean_max_reducer_v2(hidden_size: int, cpu_precision: str = "float32") -> Model[Ragged, Floats2d]:
    """v1 whose CPU prediction can multiply in bfloat16: the Maxout's weights and
    inputs are cast to bfloat16 for the one matrix multiply, its output back to
    float32 (LayerNorm and everything after stay float32). Training is spaCy's,
    in float32, either way; the weights are v1's.

    hidden_size (int): Width of the Maxout's output.
    cpu_precision (str): "float32", "bfloat16", or "auto" (bfloat16 where the CPU
        has it in hardware). Configs set it to the transformer's,
        `${components.transformer.model.cpu_precision}`, so one override at load
        time moves both.
    RETURNS (Model[Ragged, Floats2d]): The reducer.
    """
    return predict_maxouts_in_torch(build_mean_max_reducer(hidden_size), cpu_precision)


def maxout_layers(model: Model) -> List[Model]:
    """The Maxout layers in `model` (spaCy's mean_max_reducer has one)."""
    return [node for node in model.walk() if node.name == "maxout"]


def predict_maxouts_in_torch(model: Model, cpu_precision: str = "float32") -> Model:
    """Make every Maxout layer in `model` predict through torch's matrix multiply
    on the CPU (in bfloat16 where `cpu_precision` resolves to it); training,
    and prediction on a GPU, stay thinc's. Changes `model` in place.

    model (Model): Any thinc model.
    cpu_precision (str): "float32", "bfloat16" or "auto".
    RETURNS (Model): `model`.
    """
    bfloat16 = _resolve(cpu_precision) == "bfloat16"
    for maxout in maxout_layers(model):
        maxout._func = partial(_maxout_forward, inner=maxout._func, bfloat16=bfloat16)
    return model


def _resolve(cpu_precision: str) -> str:
    """The precision `cpu_precision` means on this machine (architecture's rule)."""
    if cpu_precision in ("float32", "bfloat16"):
        return cpu_precision
    from .architecture import resolve_cpu_precision  # "auto", or a bad value to reject

    return resolve_cpu_precision(cpu_precision)


def _maxout_forward(
    model: Model, X: Floats2d, is_train: bool, *, inner: Callable, bfloat16: bool = False
) -> Tuple[Floats2d, Callable]:
    if is_train or not isinstance(X, numpy.ndarray) or X.dtype != numpy.float32 or not len(X):
        return inner(model, X, is_train)
    nO, nP, nI = model.get_dim("nO"), model.get_dim("nP"), model.get_dim("nI")
    W = torch.from_numpy(numpy.ascontiguousarray(model.get_param("W").reshape(nO * nP, nI)))
    b = torch.from_numpy(numpy.ascontiguousarray(model.get_param("b").reshape(nO * nP)))
    X = torch.from_numpy(numpy.ascontiguousarray(X))
    with torch.inference_mode():
        if bfloat16:
            W, b, X = W.to(torch.bfloat16), b.to(torch.bfloat16), X.to(torch.bfloat16)
        best = torch.addmm(b, X, W.T).reshape(-1, nO, nP).amax(dim=2)
        return best.float().numpy(), _no_backprop


def _no_backprop(dY: Any) -> Any:
    raise ValueError("a Maxout that predicts through torch has no gradients: call it with is_train=True to train")
