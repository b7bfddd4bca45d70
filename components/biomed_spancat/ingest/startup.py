"""Start-up cost of the `convert` CLI.

Importing spaCy imports thinc, which imports torch when it is installed;
in this environment that is more than half of `convert`'s start-up (about
1.5 s of CPU of a ~4 s conversion of CRAFT train). Converting annotations
never touches torch, so the CLI imports spaCy with torch hidden: thinc then
records `has_torch = False`, which only matters to code that runs models.
torch itself stays importable afterwards.

`import spacy` also imports `spacy.cli` (for `spacy.info`), which imports
weasel, httpx, requests and every CLI command: about half of what is left
of importing spaCy. The CLI defers it: during the import `spacy.cli` is a
stub, removed afterwards, so a later `import spacy.cli` loads the real one
and `spacy.info` loads it on first call.
"""

import importlib.abc
import importlib.util
import sys
from contextlib import contextmanager
from typing import Iterator

__all__ = ["torch_hidden", "spacy_cli_deferred"]


class _HideTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):  # noqa: D102
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"{name} is not loaded by the convert CLI")
        return None


@contextmanager
def _first_on_meta_path(finder: importlib.abc.MetaPathFinder) -> Iterator[None]:
    """Within the block, `finder` is asked first for every import."""
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


@contextmanager
def torch_hidden() -> Iterator[None]:
    """Within the block, `import torch` raises ImportError (a no-op when torch
    is already loaded, as under pytest). Use it around the first import of
    spaCy in a process that never runs a model."""
    if "torch" in sys.modules:
        yield
        return
    with _first_on_meta_path(_HideTorch()):
        yield


_CLI_STUBS = ("spacy.cli", "spacy.cli.info")


class _DeferSpacyCli(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):  # noqa: D102
        if name in _CLI_STUBS:
            return importlib.util.spec_from_loader(name, self, is_package=name == "spacy.cli")
        return None

    def create_module(self, spec):  # noqa: D102
        return None

    def exec_module(self, module):  # noqa: D102
        if module.__name__ == "spacy.cli.info":

            def info(*args, **kwargs):
                from spacy.cli.info import info as real  # the real module: the stub is gone by then

                return real(*args, **kwargs)

            module.info = info


@contextmanager
def spacy_cli_deferred() -> Iterator[None]:
    """Within the block, the first `import spacy` does not import `spacy.cli`
    (a no-op when spaCy is already loaded). Afterwards no trace of the stub
    is left in `sys.modules` or on the `spacy` module."""
    if "spacy" in sys.modules:
        yield
        return
    try:
        with _first_on_meta_path(_DeferSpacyCli()):
            yield
    finally:
        for name in _CLI_STUBS:
            module = sys.modules.get(name)
            if module is not None and isinstance(getattr(module, "__loader__", None), _DeferSpacyCli):
                del sys.modules[name]
        spacy = sys.modules.get("spacy")
        cli = getattr(spacy, "cli", None)
        if cli is not None and isinstance(getattr(cli, "__loader__", None), _DeferSpacyCli):
            delattr(spacy, "cli")
