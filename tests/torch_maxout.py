"""Helpers for the tests of layers whose Maxouts predict through torch
(biomed.mean_max_reducer, biomed.Tok2Vec): spaCy's model and ours with the same
random weights, and a record of the torch multiplies they make.

    from torch_maxout import copy_random_weights, record_addmm
"""
from typing import List

import numpy
from thinc.api import Model

__all__ = ["copy_random_weights", "record_addmm"]


def copy_random_weights(stock: Model, ours: Model, rng: numpy.random.Generator) -> None:
    """Give every parameter of the initialised `stock` random values (LayerNorm's
    too) and load them into `ours`, which has the same layers and parameters."""
    for node in stock.walk():
        for name in node.param_names:
            if node.has_param(name):
                node.set_param(name, rng.normal(size=node.get_param(name).shape).astype("float32"))
    ours.from_bytes(stock.to_bytes())


def record_addmm(monkeypatch) -> List[List]:
    """Record the dtypes of the (bias, inputs, weights) of each torch.addmm the
    torch Maxout makes; the list fills as they run."""
    import torch

    from biomed_spancat.pipeline import span_reducer

    dtypes: List[List] = []
    addmm = torch.addmm
    monkeypatch.setattr(span_reducer.torch, "addmm", lambda *a: dtypes.append([t.dtype for t in a]) or addmm(*a))
    return dtypes
