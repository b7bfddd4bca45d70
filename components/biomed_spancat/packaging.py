"""Build the wheel `en_biomed_spancat` with the registered code bundled.

The shipped modules are passed to `spacy package --code`, which copies them
into the package and imports them from its `__init__.py`: a loaded pipeline
never imports this project. meta.json records the base model really used
(BiomedBERT or the offline stand-in) and the training data, so the model card
built from it can tell the truth.
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional

from .vocab_prune import counts_only, prune_strings

__all__ = [
    "PACKAGE_ENTRY_POINTS",
    "SHIPPED_MODULES",
    "build_meta",
    "data_source",
    "declare_entry_points",
    "package_pipeline",
    "training_record",
    "wheel_path",
]

HERE = Path(__file__).resolve().parent
# Registered code a loaded pipeline needs; each file stands alone.
SHIPPED_MODULES = ["architecture.py", "suggester.py", "tokenizer.py", "sentences.py", "display.py"]
# Entry points the wheel declares beside spaCy's `spacy_models` (group -> name -> module:attr
# inside the package): displaCy reads label colours from `spacy_displacy_colors`.
PACKAGE_ENTRY_POINTS = {
    "spacy_displacy_colors": {"biomed.label_colors.v1": "display:label_colors"},
    "spacy_factories": {
        "biomed_sentencizer_v1": "sentences:make_biomed_sentencizer",
        "biomed_spans_to_ents_v1": "display:make_spans_to_ents",
    },
}
SETUP_ENTRY_POINTS = "entry_points={'spacy_models': ['{m} = {m}'.format(m=model_name)]}"
OWN_DISTRIBUTION = "biomed-spancat-components"

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
    return [HERE / name for name in SHIPPED_MODULES]


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


def package_pipeline(model_dir: Path, output_dir: Path, meta: Dict[str, Any]) -> Path:
    """Package `model_dir` with the shipped modules bundled; return the wheel path.

    Runs `spacy package --code ... --build none`, strips the project's own
    distribution from the requirements, then builds the wheel without build
    isolation (no download of build tools, so it works offline).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    lang = json.loads((Path(model_dir) / "meta.json").read_text(encoding="utf8")).get("lang", "en")
    with tempfile.TemporaryDirectory() as tmp:
        meta_path = Path(tmp) / "meta.json"
        meta_path.write_text(json.dumps(meta, indent=2), encoding="utf8")
        cmd = [
            sys.executable, "-m", "spacy", "package", str(model_dir), str(output_dir),
            "--meta-path", str(meta_path),
            "--code", ",".join(str(p) for p in shipped_code_paths()),
            "--build", "none", "--force",
        ]
        subprocess.run(cmd, check=True)
    wheel = wheel_path(output_dir, lang, meta["name"], meta["version"])
    package_dir = wheel.parent.parent
    _drop_requirement(package_dir, OWN_DISTRIBUTION)
    declare_entry_points(package_dir)
    # The packaged copy of the model keeps only the strings the pipeline needs (no corpus words).
    for config in (package_dir / f"{lang}_{meta['name']}").glob("*/config.cfg"):
        prune_strings(config.parent)
    subprocess.run(
        [sys.executable, "-m", "build", ".", "--wheel", "--no-isolation"], cwd=package_dir, check=True
    )
    if not wheel.exists():
        raise FileNotFoundError(f"the wheel build finished but {wheel} is missing")
    return wheel
