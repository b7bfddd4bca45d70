"""The ops every numeric test runs on: NumpyOps always, CupyOps where a CUDA
GPU is usable. The CupyOps case is in every run and, without a GPU, shows as
skipped with the reason "no GPU".

    from ops_params import OPS_PARAMS, make_ops

    @pytest.mark.parametrize("ops_name", OPS_PARAMS)
    def test_something(ops_name):
        ops = make_ops(ops_name)
        ...
        assert_array_equal(ops.to_numpy(result), [...])
"""
import pytest
from thinc.api import Ops, get_ops
from thinc.compat import has_cupy_gpu

__all__ = ["HAS_GPU", "OPS_PARAMS", "make_ops"]

# thinc's own probe: cupy imports (with cuBLAS) and sees at least one device.
HAS_GPU: bool = bool(has_cupy_gpu)

OPS_PARAMS = [
    pytest.param("numpy", id="NumpyOps"),
    pytest.param(
        "cupy",
        id="CupyOps",
        marks=[pytest.mark.gpu, pytest.mark.skipif(not HAS_GPU, reason="no GPU")],
    ),
]


def make_ops(name: str) -> Ops:
    """The ops for one parameter of OPS_PARAMS ("numpy" or "cupy")."""
    return get_ops(name)
