"""Build the wheel `en_biomed_spancat` with the registered code bundled.

The shipped modules are passed to `spacy package --code`, which copies them
into the package and imports them from its `__init__.py`: a loaded pipeline
never imports this project. meta.json records the base model really used
(BiomedBERT or the offline stand-in) and the training data, so the model card
built from it can tell the truth.
"""
import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..outputs import OutputsError, StepOutputs, tree_digest, verify_input
from .vocab_prune import counts_only, prune_strings

__all__ = [
    "PACKAGE_ENTRY_POINTS",
    "SHIPPED_MODULES",
    "PackagingError",
    "build_meta",
    "check_package_args",
    "check_wheel",
    "data_source",
    "declare_entry_points",
    "package_pipeline",
    "training_record",
    "wheel_contents",
    "wheel_path",
]

# The registered code a loaded pipeline needs (biomed_spancat.pipeline); each file stands alone.
PIPELINE_DIR = Path(__file__).resolve().parent.parent / "pipeline"
SHIPPED_MODULES = ["architecture.py", "span_reducer.py", "cnn_tok2vec.py", "span_scorer.py", "token_features.py", "suggester.py", "tokenizer.py", "sentences.py", "display.py"]
# Entry points the wheel declares beside spaCy's `spacy_models` (group -> name -> module:attr
# inside the package): displaCy reads label colours from `spacy_displacy_colors`.
PACKAGE_ENTRY_POINTS = {
    "spacy_displacy_colors": {"biomed.label_colors.v1": "display:label_colors"},
    "spacy_factories": {
        "biomed_sentencizer_v1": "sentences:make_biomed_sentencizer",
        "biomed_spans_to_ents_v1": "display:make_spans_to_ents",
        "biomed_span_filter_v1": "display:make_span_filter",
    },
}
SETUP_ENTRY_POINTS = "entry_points={'spacy_models': ['{m} = {m}'.format(m=model_name)]}"
OWN_DISTRIBUTION = "biomed-spancat-components"

# A package name becomes part of a Python package and of a folder name: no
# separators, no spaces, no dots (so no `../`).
NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
MODEL_HASH_KEY = "model_sha256"


class PackagingError(ValueError):
    """Bad package arguments, a failed build or a wheel that is not the model's;
    the message says which and what to do."""


CRAFT_SOURCE = {
    "name": "CRAFT v5 concept annotations (Colorado Richly Annotated Full-Text corpus)",
    "url": "https://github.com/UCDenver-ccp/CRAFT",
    "license": "CC BY 3.0",
    "author": "Bada M, et al. Concept annotation in the CRAFT corpus. BMC Bioinformatics 13:161 (2012)",
}


def describe_hardware(gpu_id: int = -1) -> str:
    """'CPU, 2 cores, 24 GiB' or the GPU's name: where a figure was measured."""
    import os

    if gpu_id >= 0:
        try:
            import torch

            return f"GPU {gpu_id}: {torch.cuda.get_device_name(gpu_id)}"
        except Exception:  # the preflight already vouched for the GPU
            return f"GPU {gpu_id}"
    mem = ""
    try:
        with open("/proc/meminfo", encoding="utf8") as f:
            kib = int(f.readline().split()[1])
        mem = f", {kib / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"CPU, {os.cpu_count()} cores{mem}"


def training_record(seconds: float, config: Dict[str, Any], gpu_id: int, argv: List[str]) -> Dict[str, Any]:
    """How the pipeline was trained, for meta.json and the model card (no data, no secrets)."""
    import platform
    from importlib.metadata import version

    versions = {}
    for dist in ("spacy", "spacy-transformers", "transformers", "torch", "thinc"):
        try:
            versions[dist] = version(dist)
        except Exception:
            pass
    return {
        "training_seconds": round(seconds, 1),
        "max_steps": config["training"].get("max_steps"),
        "hardware": describe_hardware(gpu_id),
        "python": platform.python_version(),
        "versions": versions,
        "commands": ["python -m scripts.train " + " ".join(argv[1:])],
    }


def shipped_code_paths() -> List[Path]:
    """The shipped module files."""
    return [PIPELINE_DIR / name for name in SHIPPED_MODULES]


def data_source(corpus_report: Optional[Dict[str, Any]]) -> Dict[str, str]:
    """The training data's entry in meta.json `sources`: CRAFT when every
    source convert read is the CRAFT sample or a CRAFT export (or no report
    was given), else the user's own annotations, named by their formats only
    (paths and database URLs are not for a public card).

    corpus_report (Optional[dict]): convert's report.json.
    RETURNS (Dict[str, str]): The source entry.
    """
    sources = [s for s in (corpus_report or {}).get("sources", []) if isinstance(s, dict) and s.get("role")]
    if not sources or all("craft" in str(s.get("source", "")).lower() for s in sources):
        return CRAFT_SOURCE
    formats = sorted({str(s.get("format", "export")) for s in sources})
    return {"name": f"Own annotations ({', '.join(formats)}; counts under Training data)"}


def build_meta(
    name: str,
    version: str,
    transformer_source: Dict[str, Any],
    corpus_report: Optional[Dict[str, Any]] = None,
    license: str = "cc-by-3.0",
    training: Optional[Dict[str, Any]] = None,
    dataset: Optional[Dict[str, str]] = None,
) -> Dict[str, Any]:
    """The meta.json overrides for the package.

    name (str): Package name without the language prefix (biomed_spancat).
    version (str): Package version.
    transformer_source (dict): fetch-transformer's source.json.
    corpus_report (dict): convert's report.json (counts only, never text).
    license (str): The pipeline's licence identifier.
    training (dict): scripts.train's training.json (time, hardware, versions).
    dataset (Optional[dict]): The training data source, for attribution; by
        default `data_source(corpus_report)`.
    RETURNS (dict): Keys spaCy knows plus `base_model` and `training_data`.
    """
    dataset = dataset if dataset is not None else data_source(corpus_report)
    used = transformer_source["used"]
    stand_in = bool(transformer_source.get("stand_in"))
    description = (
        "Span categorizer (spancat) for biomedical text with overlapping spans, "
        f"over the transformer {used}."
    )
    if stand_in:
        description += (
            f" NOTE: trained on the offline stand-in {used}, not the requested "
            f"{transformer_source['requested']}."
        )
    transformer_entry = {
        "name": used + (" (offline stand-in)" if stand_in else ""),
        "url": transformer_source.get("url") or "",
        "license": transformer_source.get("license") or "",
    }
    meta: Dict[str, Any] = {
        "name": name,
        "version": version,
        "description": description,
        "license": license,
        "author": "en_biomed_spancat project",
        "url": "https://huggingface.co/" + used if not Path(used).exists() else "",
        "sources": [dataset, {k: v for k, v in transformer_entry.items() if v}],
        "base_model": {
            "requested": transformer_source["requested"],
            "used": used,
            "stand_in": stand_in,
            "note": transformer_source.get("note", ""),
        },
    }
    if training is not None:
        meta["training"] = training
    if corpus_report is not None:
        meta["training_data"] = {
            k: counts_only(corpus_report[k]) for k in ("counts", "spans_per_label", "splits") if k in corpus_report
        }
        if "label_check" in corpus_report:  # label names and the warning: no corpus text
            meta["training_data"]["label_check"] = corpus_report["label_check"]
    return meta


def wheel_path(output_dir: Path, lang: str, name: str, version: str) -> Path:
    """Where `spacy package --build wheel` puts the wheel, with its real name."""
    full = f"{lang}_{name}"
    return Path(output_dir) / f"{full}-{version}" / "dist" / f"{full}-{version}-py3-none-any.whl"


def _drop_requirement(package_dir: Path, dist_name: str) -> None:
    """Remove `dist_name` from every meta.json's requirements in the package.

    spaCy adds the distribution that registered a function to the wheel's
    requirements; our registered code is bundled by --code instead, and the
    project's own package is not on PyPI, so a user could not install it.
    """
    for meta_file in package_dir.rglob("meta.json"):
        meta = json.loads(meta_file.read_text(encoding="utf8"))
        reqs = meta.get("requirements", [])
        meta["requirements"] = [r for r in reqs if not r.startswith(dist_name)]
        meta_file.write_text(json.dumps(meta, indent=2), encoding="utf8")


def declare_entry_points(package_dir: Path, entry_points: Dict[str, Dict[str, str]] = PACKAGE_ENTRY_POINTS) -> None:
    """Add `entry_points` to the setup.py that `spacy package` wrote.

    spaCy's setup.py template declares only `spacy_models`; registered label
    colours must be declared by the installed distribution for displaCy to find them.

    package_dir (Path): The folder holding setup.py.
    entry_points (Dict[str, Dict[str, str]]): Group -> name -> "module:attr" inside the package.
    """
    setup_py = Path(package_dir) / "setup.py"
    text = setup_py.read_text(encoding="utf8")
    if SETUP_ENTRY_POINTS not in text:
        raise ValueError(f"{setup_py}: spaCy's entry_points line was not found, so the package's entry points cannot be added")
    groups = ["'spacy_models': ['{m} = {m}'.format(m=model_name)]"]
    for group, names in entry_points.items():
        items = ", ".join(f"'{name} = ' + model_name + '.{target}'" for name, target in names.items())
        groups.append(f"'{group}': [{items}]")
    setup_py.write_text(text.replace(SETUP_ENTRY_POINTS, "entry_points={" + ", ".join(groups) + "}"), encoding="utf8")


def check_package_args(model_dir: Path, output_dir: Path, name: str, version: str) -> str:
    """Validate what `package` is given before anything is written.

    model_dir (Path): The pipeline directory.
    output_dir (Path): Where the package folder goes.
    name (str): Package name without the language prefix.
    version (str): Package version (PEP 440, in its canonical form).
    RETURNS (str): The pipeline's language.
    RAISES (PackagingError): What is wrong, naming the argument.
    """
    from packaging.version import InvalidVersion, Version

    if not NAME_PATTERN.match(name):
        raise PackagingError(
            f"--name {name!r}: a package name is letters, digits and underscores, starting with a "
            f"letter (e.g. biomed_spancat)"
        )
    try:
        canonical = str(Version(version))
    except InvalidVersion:
        raise PackagingError(f"--version {version!r}: not a version (PEP 440, e.g. 0.1.0)") from None
    if canonical != version:
        raise PackagingError(f"--version {version!r}: write it as {canonical!r} (the wheel's file name uses that form)")
    for part in [output_dir, *output_dir.parents]:
        if part.exists() and not part.is_dir():
            raise PackagingError(f"{part}: is a file; the output must be a folder")
    model_dir = Path(model_dir)
    for needed in ("config.cfg", "meta.json"):
        if not (model_dir / needed).is_file():
            raise PackagingError(f"{model_dir}: not a spaCy pipeline directory (no {needed})")
    try:
        return json.loads((model_dir / "meta.json").read_text(encoding="utf8")).get("lang", "en")
    except ValueError as err:
        raise PackagingError(f"{model_dir / 'meta.json'}: not valid JSON ({err})") from None


def _run(cmd: List[str], what: str, **kwargs: Any) -> None:
    """Run a build command; its own output shows why it failed, this says what failed."""
    try:
        subprocess.run(cmd, check=True, **kwargs)
    except subprocess.CalledProcessError as err:
        raise PackagingError(f"{what} failed (exit {err.returncode}); its messages are above") from None


def package_pipeline(model_dir: Path, output_dir: Path, meta: Dict[str, Any]) -> Path:
    """Package `model_dir` with the shipped modules bundled; return the wheel path.

    The package folder is built from nothing in a fresh staging folder (no
    leftover of an earlier build can enter the wheel) and published as one
    unit (`biomed_spancat.outputs`): the wheel and the package folder always
    come from the same run. A failed build also removes the previously
    published folder, so no wheel of another model stays at the path the next
    steps read. meta.json records the model's digest (`model_sha256`), which
    `check_wheel` compares with the model a step is given.

    Runs `spacy package --code ... --build none`, strips the project's own
    distribution from the requirements, then builds the wheel without build
    isolation (no download of build tools, so it works offline).

    model_dir (Path): The pipeline directory (e.g. training/model-tuned).
    output_dir (Path): The packages folder.
    meta (Dict[str, Any]): build_meta's overrides.
    RETURNS (Path): The published wheel.
    RAISES (PackagingError): Bad arguments (nothing written) or a failed build.
    """
    model_dir, output_dir = Path(model_dir), Path(output_dir)
    lang = check_package_args(model_dir, output_dir, meta["name"], str(meta["version"]))
    meta = dict(meta, **{MODEL_HASH_KEY: tree_digest(model_dir)})
    wheel = wheel_path(output_dir, lang, meta["name"], meta["version"])
    package_dir = wheel.parent.parent
    try:
        with StepOutputs("package", [package_dir], withdraw_on_error=True) as unit:
            staged = unit.path(package_dir)
            with tempfile.TemporaryDirectory() as tmp:
                meta_path = Path(tmp) / "meta.json"
                meta_path.write_text(json.dumps(meta, indent=2), encoding="utf8")
                cmd = [
                    sys.executable, "-m", "spacy", "package", str(model_dir), str(staged.parent),
                    "--meta-path", str(meta_path),
                    "--code", ",".join(str(p) for p in shipped_code_paths()),
                    "--build", "none",
                ]
                _run(cmd, "`spacy package`")
            _drop_requirement(staged, OWN_DISTRIBUTION)
            declare_entry_points(staged)
            # The packaged copy of the model keeps only the strings the pipeline needs (no corpus words).
            for config in (staged / f"{lang}_{meta['name']}").glob("*/config.cfg"):
                prune_strings(config.parent)
            _run([sys.executable, "-m", "build", ".", "--wheel", "--no-isolation"], "the wheel build", cwd=staged)
            built = staged / "dist" / wheel.name
            if not built.exists():
                raise PackagingError(f"the wheel build finished but {wheel.name} is missing")
            shutil.rmtree(staged / "build", ignore_errors=True)
            if tree_digest(model_dir) != meta[MODEL_HASH_KEY]:
                raise PackagingError(f"{model_dir}: changed while it was being packaged; run `package` again")
    except OutputsError as err:
        raise PackagingError(str(err)) from None
    return wheel


def wheel_contents(wheel: Path) -> Tuple[Dict[str, Any], str]:
    """The package's meta.json and its pipeline's config.cfg, read from inside
    the wheel (what ships, not a build folder beside it).

    wheel (Path): A wheel built by `package`.
    RETURNS (Tuple[Dict[str, Any], str]): meta.json, and the config's text ("" when there is none).
    RAISES (PackagingError): No such file, or not a wheel built by `spacy package`.
    """
    wheel = Path(wheel)
    if not wheel.is_file():
        raise PackagingError(f"{wheel}: no such wheel (run `package` first)")
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = zf.namelist()
            metas = [n for n in names if n.count("/") == 1 and n.endswith("/meta.json")]
            if not metas:
                raise PackagingError(f"{wheel}: no <package>/meta.json inside; was it built by `spacy package`?")
            meta = json.loads(zf.read(metas[0]).decode("utf8"))
            configs = [n for n in names if n.count("/") == 2 and n.endswith("/config.cfg")]
            return meta, zf.read(configs[0]).decode("utf8") if configs else ""
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise PackagingError(f"{wheel}: not a readable wheel ({err})") from None


def check_wheel(wheel: Path, model_dir: Optional[Path] = None) -> Dict[str, Any]:
    """Check that `wheel` is whole and is the wheel of `model_dir`, before a
    step evaluates or ships it.

    wheel (Path): The wheel at the published path.
    model_dir (Optional[Path]): The pipeline it must have been built from.
    RETURNS (Dict[str, Any]): The wheel's meta.json.
    RAISES (PackagingError): Missing, changed since `package` published it, or
        built from another model (stale), with what to do.
    """
    wheel = Path(wheel)
    if not wheel.is_file():
        raise PackagingError(f"{wheel}: no such wheel (run `package` first)")
    try:
        verify_input(wheel)
    except OutputsError as err:
        raise PackagingError(str(err)) from None
    meta, _ = wheel_contents(wheel)
    if model_dir is not None:
        recorded = meta.get(MODEL_HASH_KEY)
        if recorded is None:
            raise PackagingError(
                f"{wheel}: records no model digest ({MODEL_HASH_KEY} in meta.json), so it cannot be "
                f"matched with {model_dir}; run `package` again"
            )
        if not Path(model_dir).is_dir():
            raise PackagingError(f"{model_dir}: no such pipeline directory")
        if tree_digest(model_dir) != recorded:
            raise PackagingError(
                f"{wheel}: built from another model than {model_dir} (stale: the model changed since, "
                f"or the last `package` failed); run `package` again"
            )
    return meta
