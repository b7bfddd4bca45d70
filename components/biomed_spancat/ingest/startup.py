"""Start-up cost of the `convert` CLI.

Importing spaCy imports thinc, which imports torch when it is installed;
in this environment that is more than half of `convert`'s start-up (about
1.5 s of CPU of a ~4 s conversion of CRAFT train). Converting annotations
never touches torch, so the CLI imports spaCy with torch hidden: thinc then
records `has_torch = False`, which only matters to code that runs models.
torch itself stays importable afterwards.
"""

import importlib.abc
import sys
from contextlib import contextmanager
from typing import Iterator

__all__ = ["torch_hidden"]


class _HideTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):  # noqa: D102
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"{name} is not loaded by the convert CLI")
        return None


@contextmanager
def torch_hidden() -> Iterator[None]:
    """Within the block, `import torch` raises ImportError (a no-op when torch
    is already loaded, as under pytest). Use it around the first import of
    spaCy in a process that never runs a model."""
    if "torch" in sys.modules:
        yield
        return
    finder = _HideTorch()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
