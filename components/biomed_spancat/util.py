"""Helpers used across the project's library, one home each: choosing the
device, loading a pipeline and finding its span categorizer, reading a
DocBin, writing JSON or a whole folder, formatting a share.

Failures and their one exception type each:

- `PipelineError` (a ValueError): a pipeline that cannot be loaded or used
  (neither a directory nor an installed package, a damaged file, no span
  categorizer for the key);
- `DocBinError` (a ValueError): a .spacy file that is missing or does not parse;
- `InputFileError` (a ValueError): a JSON record another step wrote (metrics,
  threshold record) that is missing, not JSON or not an object;
- `gpu.GpuUnavailable` (a RuntimeError): a GPU was asked for and cannot be used.

Project tooling: a packaged pipeline never imports this module.
"""
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import spacy
from spacy.language import Language
from spacy.pipeline import SpanCategorizer
from spacy.tokens import Doc, DocBin

__all__ = [
    "PipelineError",
    "DocBinError",
    "InputFileError",
    "use_device",
    "load_pipeline",
    "load_pipeline_dir",
    "find_damaged_file",
    "find_spancat",
    "read_docs",
    "read_json_object",
    "write_json",
    "write_dir",
    "pct",
]

PathLike = Union[str, Path]


class PipelineError(ValueError):
    """A pipeline that cannot be loaded or used; the message names the
    directory, package or damaged file, and why."""


class DocBinError(ValueError):
    """A .spacy DocBin that is missing or does not parse; the message names the file."""


class InputFileError(ValueError):
    """A JSON record another step wrote that is missing or unreadable; the
    message names the file (and line) and the step that writes it."""


def use_device(gpu_id: int, echo: bool = True) -> str:
    """Set up the device for a command: the CPU for -1, else GPU `gpu_id`,
    through the project's GPU pre-flight check (`gpu.preflight`), which names
    whatever is missing (driver, cupy, torch's CUDA, ...), so every command
    reports GPU problems the same way.

    gpu_id (int): -1 for the CPU, or the GPU's index.
    echo (bool): Print the pre-flight report line.
    RETURNS (str): "cpu" or "gpu:<id>".
    RAISES (GpuUnavailable): A GPU was asked for and cannot be used.
    """
    from .training.gpu import preflight

    preflight(gpu_id, echo=echo)
    return "cpu" if gpu_id < 0 else f"gpu:{gpu_id}"


def load_pipeline(model: PathLike, config: Optional[Dict[str, Any]] = None) -> Language:
    """Load a pipeline from a directory or an installed package name.

    model (PathLike): A pipeline directory, or a package such as
        `en_biomed_spancat` (the installed wheel: the artifact that ships).
    config (Optional[Dict[str, Any]]): Dotted config overrides, as spacy.load takes them
        (e.g. {"components.transformer.model.cpu_precision": "float32"}).
    RETURNS (Language): The loaded pipeline.
    RAISES (PipelineError): Neither a pipeline directory nor an installed
        package, or a directory that does not load (the damaged file named).
    """
    path = Path(model)
    if path.exists():
        return load_pipeline_dir(path, config)
    if spacy.util.is_package(str(model)):
        return spacy.load(str(model), config=config or {})
    raise PipelineError(
        f"{model}: neither a pipeline directory nor an installed package "
        f"(install the wheel first, e.g. `weasel run package` then `pip install` it)"
    )


def load_pipeline_dir(path: Path, config: Optional[Dict[str, Any]] = None) -> Language:
    """Load a pipeline directory; when it does not load, say which file of
    which component is damaged instead of the deserializer's bare message.

    path (Path): The pipeline directory.
    config (Optional[Dict[str, Any]]): Dotted config overrides.
    RETURNS (Language): The loaded pipeline.
    RAISES (PipelineError): Not a pipeline directory, or a file that does not load (named).
    """
    path = Path(path)
    if not (path / "config.cfg").is_file():
        raise PipelineError(f"{path}: not a spaCy pipeline directory (no config.cfg)")
    try:
        return spacy.load(path, config=config or {})
    except Exception as err:  # any deserializer's error: find the file
        damaged = find_damaged_file(path)
        if damaged is None:
            raise PipelineError(f"{path}: the pipeline does not load ({type(err).__name__}: {err})") from None
        file, why = damaged
        part = file.relative_to(path).parts[0]
        where = f" (component '{part}')" if (path / part).is_dir() and part not in ("vocab", "tokenizer") else ""
        raise PipelineError(
            f"{file}{where}: damaged, the pipeline cannot be loaded ({why}); copy it again or re-run "
            f"the step that wrote {path}"
        ) from None


def find_damaged_file(path: Path) -> Optional[Tuple[Path, str]]:
    """The first file of a pipeline directory that does not parse as what spaCy writes there.

    path (Path): The pipeline directory.
    RETURNS (Optional[Tuple[Path, str]]): The file and why, or None when every file parses.
    """
    import srsly
    from confection import Config

    json_names = {"meta.json", "cfg", "strings.json", "vectors.cfg", "config.json", "tokenizer_config.json"}
    msgpack_names = {"model", "tokenizer", "lookups.bin", "key2row"}
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        try:
            if file == path / "config.cfg":
                Config().from_disk(file, interpolate=False)
            elif file.name in json_names:
                srsly.read_json(file)
            elif file.name in msgpack_names and file.parent != path:
                srsly.msgpack_loads(file.read_bytes())
        except Exception as err:
            return file, f"{type(err).__name__}: {err}"
    return None


def find_spancat(nlp: Language, spans_key: str = "sc") -> Tuple[str, SpanCategorizer]:
    """The pipeline's span categorizer writing to `spans_key`.

    nlp (Language): The pipeline.
    spans_key (str): The span group the component must write.
    RETURNS (Tuple[str, SpanCategorizer]): The component's name and object.
    RAISES (PipelineError): None or several write that key (the ones there are named).
    """
    found = [(name, pipe) for name, pipe in nlp.pipeline if isinstance(pipe, SpanCategorizer)]
    matching = [(name, pipe) for name, pipe in found if pipe.key == spans_key]
    if len(matching) == 1:
        return matching[0]
    have = ", ".join(f"{name} (key {pipe.key!r})" for name, pipe in found) or "none"
    if not matching:
        raise PipelineError(
            f"the pipeline has no span categorizer writing doc.spans[{spans_key!r}]; "
            f"span categorizers: {have}; pipeline: {nlp.pipe_names}"
        )
    raise PipelineError(f"several span categorizers write doc.spans[{spans_key!r}]: {have}")


def read_docs(path: PathLike, vocab: Any = None, lang: str = "en") -> List[Doc]:
    """Read the docs of a .spacy DocBin, in file order.

    path (PathLike): The DocBin file.
    vocab (Optional[Vocab]): The vocab to read into; by default a blank `lang`
        pipeline's, which computes lower-case forms and shapes (a bare
        `Vocab()` leaves them empty).
    lang (str): The language of that blank pipeline.
    RETURNS (List[Doc]): The docs.
    RAISES (DocBinError): No such file, or one that is not a DocBin (named).
    """
    path = Path(path)
    if not path.is_file():
        raise DocBinError(f"{path}: no such file")
    if vocab is None:
        vocab = spacy.blank(lang).vocab
    try:
        return list(DocBin().from_disk(path).get_docs(vocab))
    except Exception as err:  # msgpack / zlib errors have no common base: say which file
        raise DocBinError(f"{path}: not a readable .spacy DocBin ({type(err).__name__}: {err})") from err


def read_json_object(path: PathLike, what: str, step: str = "") -> Dict[str, Any]:
    """Read a JSON object another step wrote (metrics, a threshold record).

    path (PathLike): The file.
    what (str): What it is, for the messages ("metrics file").
    step (str): The command that writes it, named when the file is missing.
    RETURNS (Dict[str, Any]): The object.
    RAISES (InputFileError): No such file, not valid JSON (the line named), or not an object.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such {what}" + (f" (run the `{step}` command first)" if step else ""))
    try:
        data = json.loads(path.read_text(encoding="utf8"))
    except json.JSONDecodeError as err:
        raise InputFileError(f"{path}: line {err.lineno}: not valid JSON ({err.msg})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputFileError(f"{path}: not readable as UTF-8 text ({err})") from None
    if not isinstance(data, dict):
        raise InputFileError(f"{path}: expected a JSON object ({what}), got {type(data).__name__}")
    return data


def write_json(data: Any, path: PathLike) -> Path:
    """Write JSON (UTF-8, indented) atomically: to a temp file, then renamed.

    data (Any): JSON-serialisable data.
    path (PathLike): The output file; parent folders are created.
    RETURNS (Path): The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf8")
    os.replace(tmp, path)
    return path


def write_dir(path: PathLike, write: Callable[[Path], None]) -> Path:
    """Build a folder from scratch in a temporary sibling and swap it in for
    `path`: nothing stale survives, and a failure (of `write` or the swap)
    leaves the previous folder as it was and no temporary folder behind.

    path (PathLike): The folder to write; its parent is created.
    write (Callable[[Path], None]): Fills the (empty, existing) folder it is given.
    RETURNS (Path): `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        write(tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; the written folder is an ordinary one
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return path


def pct(x: Optional[float], digits: int = 1) -> str:
    """A share as a percentage for tables and messages: "—" where there was nothing to score.

    x (Optional[float]): A share in [0, 1], or None.
    digits (int): Decimals.
    RETURNS (str): e.g. "71.4".
    """
    return "—" if x is None else f"{100 * float(x):.{digits}f}"
