"""The Hugging Face Hub step: a model card generated from the wheel and the
metrics, a staged folder, and the upload.

`stage_hub` writes exactly what `push_folder` uploads (README.md, the wheel
under its real name, the per-label F chart) without touching the network.
`push_folder` uploads it with huggingface_hub's API rather than
spacy-huggingface-hub 0.0.10, which renames the wheel to a file name current
pip refuses, reads only `ents_*` scores into the model-index and always
creates public repos.

Project library code: never imported by a loaded pipeline.
"""
import json
import math
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

import yaml

__all__ = [
    "CARD_NAME",
    "CHART_NAME",
    "HUB_URL",
    "HubError",
    "StagedFolder",
    "PushResult",
    "check_wheel_name",
    "read_wheel",
    "CardMetrics",
    "normalize_metrics",
    "load_metrics",
    "front_matter",
    "build_card",
    "parse_card",
    "plot_per_label_f",
    "stage_hub",
    "check_staged",
    "resolve_token",
    "push_folder",
]

Meta = Dict[str, Any]

CARD_NAME = "README.md"
CHART_NAME = "spans_f_per_label.png"
HUB_URL = "https://huggingface.co"
STAND_IN = "sentence-transformers/all-MiniLM-L6-v2"
# Names a staged folder may hold; anything else means it was not written by stage_hub.
_STAGED_NAMES = (CARD_NAME, CHART_NAME)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_PRF = ("p", "r", "f")
_PRF_NAMES = {"p": ("precision", "P"), "r": ("recall", "R"), "f": ("f1", "F")}

# License ids the Hub knows (https://huggingface.co/docs/hub/repositories-licenses);
# any other value is written as `license: other` with `license_name`.
HUB_LICENSES = {
    "apache-2.0", "mit", "openrail", "bigscience-openrail-m", "creativeml-openrail-m",
    "bigscience-bloom-rail-1.0", "bigcode-openrail-m", "afl-3.0", "artistic-2.0", "bsl-1.0",
    "bsd", "bsd-2-clause", "bsd-3-clause", "bsd-3-clause-clear", "c-uda", "cc", "cc0-1.0",
    "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0", "cc-by-sa-4.0",
    "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0",
    "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0",
    "cdla-sharing-1.0", "cdla-permissive-1.0", "cdla-permissive-2.0", "wtfpl", "ecl-2.0",
    "epl-1.0", "epl-2.0", "etalab-2.0", "eupl-1.1", "agpl-3.0", "gfdl", "gpl", "gpl-2.0",
    "gpl-3.0", "lgpl", "lgpl-2.1", "lgpl-3.0", "isc", "lppl-1.3c", "ms-pl", "mpl-2.0",
    "odc-by", "odbl", "openrail++", "osl-3.0", "postgresql", "ofl-1.1", "ncsa",
    "unlicense", "zlib", "pddl", "lgpl-lr", "deepfloyd-if-license", "llama2", "llama3",
    "gemma", "unknown", "other",
}

# What each CRAFT label annotates (the ontologies of CRAFT v5). meta.json's
# `label_descriptions` overrides or extends these for other data.
LABEL_DESCRIPTIONS = {
    "CHEBI": "chemicals (ChEBI)",
    "CL": "cell types (Cell Ontology)",
    "GO_BP": "biological processes (Gene Ontology)",
    "GO_CC": "cellular components (Gene Ontology)",
    "GO_MF": "molecular functions (Gene Ontology)",
    "MONDO": "diseases (MONDO)",
    "MOP": "molecular processes (MOP)",
    "NCBITaxon": "organisms and taxa (NCBI Taxonomy)",
    "PR": "proteins and genes (Protein Ontology)",
    "SO": "sequence features (Sequence Ontology)",
    "UBERON": "anatomy (UBERON)",
}


class HubError(Exception):
    """A problem with staging or pushing, worded for the person running the command."""


@dataclass
class StagedFolder:
    """What stage_hub wrote: the folder and the three files in it."""

    path: Path
    card: Path
    wheel: Path
    chart: Path

    @property
    def files(self) -> List[str]:
        return sorted(p.name for p in (self.card, self.wheel, self.chart))


@dataclass
class PushResult:
    """What push_folder did on the Hub."""

    repo_id: str
    repo_url: str
    commit_url: str
    private: bool
    created: bool
    files: List[str] = field(default_factory=list)
    install_url: str = ""


# ---------------------------------------------------------------------------
# Reading the wheel and the metrics


def check_wheel_name(wheel: Path) -> Tuple[str, str]:
    """Check that `wheel` has a file name current pip accepts, for a pure wheel.

    spacy-huggingface-hub renames wheels to `<name>-any-py3-none-any.whl`;
    pip 26 refuses that name ("Invalid wheel filename (invalid version)"),
    so the name is checked with the same parser pip uses.

    wheel (Path): The wheel file.
    RETURNS (Tuple[str, str]): The distribution name and version.
    """
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    try:
        name, version, _build, tags = parse_wheel_filename(wheel.name)
    except InvalidWheelFilename as err:
        raise HubError(
            f"{wheel}: not a wheel file name current pip installs ({err}); expected "
            "<name>-<version>-py3-none-any.whl as `spacy package` writes it"
        ) from None
    if not any(t.interpreter == "py3" and t.abi == "none" and t.platform == "any" for t in tags):
        raise HubError(f"{wheel}: expected a pure-Python py3-none-any wheel, got tags {sorted(map(str, tags))}")
    return str(name).replace("-", "_"), str(version)


def _package_name(meta: Meta) -> str:
    name = str(meta.get("name", ""))
    lang = str(meta.get("lang", ""))
    return name if name.startswith(f"{lang}_") else f"{lang}_{name}"


def read_wheel(wheel: Path) -> Tuple[Meta, Dict[str, Any]]:
    """Read meta.json and the pipeline's spancat settings from inside the wheel,
    so the card describes the file that is uploaded, not a build folder beside it.

    wheel (Path): A wheel built by `spacy package`.
    RETURNS (Tuple[dict, dict]): meta.json, and {"component", "spans_key", "threshold", "suggester"}
        of the spancat component (empty when there is none).
    """
    # confection's Config is thinc's, without importing thinc (and torch) for a config read
    from confection import Config

    if not wheel.is_file():
        raise HubError(f"{wheel}: no such wheel (run the `package` command first)")
    dist_name, dist_version = check_wheel_name(wheel)
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = zf.namelist()
            metas = [n for n in names if n.count("/") == 1 and n.endswith("/meta.json")]
            if not metas:
                raise HubError(f"{wheel}: no <package>/meta.json inside; was it built by `spacy package`?")
            meta = json.loads(zf.read(metas[0]).decode("utf8"))
            configs = [n for n in names if n.count("/") == 2 and n.endswith("/config.cfg")]
            config_text = zf.read(configs[0]).decode("utf8") if configs else ""
    except zipfile.BadZipFile as err:
        raise HubError(f"{wheel}: not a readable wheel ({err})") from None
    package = _package_name(meta)
    if package != dist_name or str(meta.get("version")) != dist_version:
        raise HubError(
            f"{wheel}: the file name says {dist_name} {dist_version} but its meta.json says "
            f"{package} {meta.get('version')}"
        )
    spancat: Dict[str, Any] = {}
    if config_text:
        config = Config().from_str(config_text, interpolate=False)
        for comp_name, comp in config.get("components", {}).items():
            if comp.get("factory") in ("spancat", "spancat_singlelabel"):
                suggester = comp.get("suggester", {})
                spancat = {
                    "component": comp_name,
                    "spans_key": comp.get("spans_key", "sc"),
                    "threshold": comp.get("threshold"),
                    "suggester": {k: v for k, v in suggester.items()},
                }
                break
    return meta, spancat


@dataclass
class CardMetrics:
    """The evaluation, in the one shape the card reads (see load_metrics).

    Each PRF is {"p", "r", "f"} (fractions, or None where undefined) plus
    "gold" (gold spans) where the metrics record it.
    """

    overall: Dict[str, Any]
    per_label: Dict[str, Dict[str, Any]]
    groups: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    baselines: Dict[str, "CardMetrics"] = field(default_factory=dict)
    threshold: Optional[float] = None
    model: Dict[str, Any] = field(default_factory=dict)
    data: Dict[str, Any] = field(default_factory=dict)
    suggester: Dict[str, Any] = field(default_factory=dict)
    speed: Dict[str, Any] = field(default_factory=dict)
    training: Dict[str, Any] = field(default_factory=dict)


def _fraction(value: Any, where: str, optional: bool = True) -> Optional[float]:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise HubError(f"{where}: expected a number between 0 and 1, got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise HubError(f"{where}: {value!r} is not a fraction between 0 and 1 (scores are fractions, not percent)")
    return float(value)


def _prf(scores: Any, where: str, optional: bool = True) -> Dict[str, Any]:
    if not isinstance(scores, dict):
        raise HubError(f"{where}: expected an object with p, r and f, got {type(scores).__name__}")
    out: Dict[str, Any] = {}
    for k in _PRF:
        if k not in scores:
            raise HubError(f"{where}: no '{k}'")
        out[k] = _fraction(scores[k], f"{where}.{k}", optional)
    gold = scores.get("gold")
    if isinstance(gold, int) and not isinstance(gold, bool):
        out["gold"] = gold
    return out


def _dict(value: Any) -> Dict[str, Any]:
    return value if isinstance(value, dict) else {}


def normalize_metrics(raw: Dict[str, Any], spans_key: str, where: str) -> CardMetrics:
    """Read either metrics layout into CardMetrics, checking every score.

    Two layouts are read: the project's evaluation (`schema: biomed.metrics.v1`:
    `spans`, `per_label`, `groups`, `model`, `data`, `suggester`, `speed`,
    `training`) and spaCy's scorer keys (`spans_<key>_p/r/f`,
    `spans_<key>_per_type`, optional `overlap` groups and `threshold`). Either
    may carry `baselines`: name -> P/R/F, or a whole metrics object.

    raw (dict): The metrics as read from JSON.
    spans_key (str): The spans key of the packaged spancat.
    where (str): The file, for messages.
    RETURNS (CardMetrics): The checked metrics.
    """
    prefix = f"spans_{spans_key}"
    if "spans" in raw and "per_label" in raw:
        model = _dict(raw.get("model"))
        if model.get("spans_key") not in (None, spans_key):
            raise HubError(
                f"{where}: the metrics are for spans key '{model['spans_key']}', the packaged spancat writes "
                f"'{spans_key}'"
            )
        cm = CardMetrics(
            overall=_prf(raw["spans"], f"{where}: 'spans'"),
            per_label={str(lab): _prf(v, f"{where}: 'per_label.{lab}'") for lab, v in _dict(raw["per_label"]).items()},
            groups={str(g): _prf(v, f"{where}: 'groups.{g}'") for g, v in _dict(raw.get("groups")).items()},
            threshold=model.get("threshold"),
            model=model,
            data=_dict(raw.get("data")),
            suggester=_dict(raw.get("suggester")),
            speed=_dict(raw.get("speed")),
            training=_dict(raw.get("training")),
        )
    elif f"{prefix}_f" in raw:
        cm = CardMetrics(
            overall=_prf({k: raw.get(f"{prefix}_{k}") for k in _PRF}, f"{where}: '{prefix}_*'"),
            per_label={
                str(lab): _prf(v, f"{where}: '{prefix}_per_type.{lab}'")
                for lab, v in _dict(raw.get(f"{prefix}_per_type")).items()
            },
            groups={str(g): _prf(v, f"{where}: 'overlap.{g}'") for g, v in _dict(raw.get("overlap")).items()
                    if isinstance(v, dict)},
            threshold=raw.get("threshold"),
        )
    else:
        raise HubError(
            f"{where}: neither the project's metrics (keys 'spans' and 'per_label', written by the evaluate "
            f"command) nor spaCy scorer keys ('{prefix}_p', '{prefix}_r', '{prefix}_f')"
        )
    for name, value in _dict(raw.get("baselines")).items():
        if isinstance(value, dict) and ("spans" in value or f"{prefix}_f" in value):
            cm.baselines[str(name)] = normalize_metrics(value, spans_key, f"{where}: 'baselines.{name}'")
        else:
            cm.baselines[str(name)] = CardMetrics(_prf(value, f"{where}: 'baselines.{name}'"), {})
    if cm.threshold is not None:
        cm.threshold = _fraction(cm.threshold, f"{where}: threshold")
    return cm


def load_metrics(
    path: Path,
    spans_key: str,
    *,
    package: Optional[str] = None,
    version: Optional[str] = None,
    labels: Optional[Iterable[str]] = None,
) -> CardMetrics:
    """Read and check the evaluation of the packaged pipeline.

    Where the metrics name the pipeline they scored (the project's layout
    does), it must be this wheel's package, version and labels: a card must
    not carry the scores of the training folder or of an older build.

    path (Path): The metrics JSON (metrics/package.json).
    spans_key (str): The spancat spans key, read from the packaged config.
    package (Optional[str]): The wheel's package name (en_biomed_spancat).
    version (Optional[str]): The wheel's version.
    labels (Optional[Iterable[str]]): The wheel's spancat labels.
    RETURNS (CardMetrics): The checked metrics.
    """
    if not path.is_file():
        raise HubError(f"{path}: no such metrics file (run the `evaluate-package` command first)")
    try:
        raw = json.loads(path.read_text(encoding="utf8"))
    except json.JSONDecodeError as err:
        raise HubError(f"{path}: line {err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(raw, dict):
        raise HubError(f"{path}: expected a JSON object of scores, got {type(raw).__name__}")
    cm = normalize_metrics(raw, spans_key, str(path))
    scored = (cm.model.get("name"), cm.model.get("version"))
    if package and scored[0] is not None and (scored[0] != package or str(scored[1]) != str(version)):
        raise HubError(
            f"{path}: these are the scores of {scored[0]} {scored[1]}, not of the wheel {package} {version}; "
            "run `evaluate-package` on the wheel being staged"
        )
    if labels is not None and isinstance(cm.model.get("labels"), list):
        if sorted(map(str, cm.model["labels"])) != sorted(labels):
            raise HubError(
                f"{path}: the evaluated pipeline has labels {sorted(cm.model['labels'])}, the wheel "
                f"{sorted(labels)}; run `evaluate-package` on the wheel being staged"
            )
    return cm


# ---------------------------------------------------------------------------
# The card


def _round(x: float) -> float:
    return round(float(x), 4)


def _pct(x: Optional[float]) -> str:
    return "—" if x is None else f"{100 * float(x):.2f}"


def _base_model(meta: Meta) -> Dict[str, Any]:
    """{"requested", "used", "stand_in", "note"} from meta.json's `base_model` block."""
    info = meta.get("base_model")
    return dict(info) if isinstance(info, dict) else {}


def _hub_model_id(value: Any) -> Optional[str]:
    """The value when it is a Hub model id (never a local path, which the Hub would reject)."""
    if not isinstance(value, str) or not _HUB_ID.match(value) or Path(value).exists():
        return None
    return value


def _hub_datasets(meta: Meta) -> List[str]:
    """Hub dataset ids named in meta.json (`datasets`, or `sources` URLs on the Hub)."""
    found: List[str] = []
    for ds in meta.get("datasets") or []:
        if isinstance(ds, str) and _HUB_ID.match(ds):
            found.append(ds)
    for src in meta.get("sources") or []:
        url = src.get("url", "") if isinstance(src, dict) else ""
        m = re.match(r"^https://huggingface\.co/datasets/([\w.-]+/[\w.-]+)/?$", str(url))
        if m:
            found.append(m.group(1))
    return list(dict.fromkeys(found))


def _labels(meta: Meta, component: Optional[str] = None) -> List[str]:
    """The spancat component's labels from meta.json (every component's when it cannot be told)."""
    labels = meta.get("labels") or {}
    if component and component in labels:
        return list(dict.fromkeys(labels[component]))
    out = [lab for comp, labs in labels.items() if "spancat" in comp for lab in labs]
    if not out:
        out = [lab for labs in labels.values() for lab in labs]
    return list(dict.fromkeys(out))


def _install_url(repo_id: str, wheel_name: str) -> str:
    return f"{HUB_URL}/{repo_id}/resolve/main/{wheel_name}"


def _eval_name(meta: Meta, cm: CardMetrics) -> str:
    """"dev split of <data source>" (the source's short name, before any parenthesis)."""
    base = str(_base_model(meta).get("used", "\0"))
    data = [str(s["name"]).split(" (")[0] for s in meta.get("sources") or []
            if isinstance(s, dict) and s.get("name") and not str(s["name"]).startswith(base)]
    return f"dev split of {data[0]}" if data else "dev split"


def _eval_dataset(meta: Meta, cm: CardMetrics) -> Dict[str, str]:
    ids = _hub_datasets(meta)
    name = _eval_name(meta, cm)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower().replace("dev split of", "")).strip("-") or "custom"
    return {"type": ids[0] if ids else slug, "name": name, "split": "dev"}


def _license_fields(license_id: str) -> Dict[str, str]:
    lic = license_id.strip().lower()
    if lic in HUB_LICENSES:
        return {"license": lic}
    return {"license": "other", "license_name": re.sub(r"[^a-z0-9.-]+", "-", lic).strip("-") or "unknown"}


def front_matter(meta: Meta, cm: CardMetrics, license_id: str, labels: List[str]) -> Dict[str, Any]:
    """The card's YAML metadata, in the keys the Hub reads.

    meta (dict): The packaged pipeline's meta.json.
    cm (CardMetrics): The evaluation of the packaged pipeline.
    license_id (str): The licence var (a Hub licence id, else written as `other`).
    labels (List[str]): The spancat labels, in order.
    RETURNS (dict): The front matter, ready for yaml.safe_dump. Per-label
        scores that are undefined (a label absent from the evaluation data)
        are left out, since the Hub needs a number.
    """
    results = []
    for k in _PRF:
        mtype, short = _PRF_NAMES[k]
        if cm.overall.get(k) is not None:
            results.append({"name": f"Spans {short}", "type": mtype, "value": _round(cm.overall[k]),
                            "verified": False})
    for label in labels:
        scores = cm.per_label.get(label, {})
        for k in _PRF:
            if scores.get(k) is not None:
                mtype, short = _PRF_NAMES[k]
                results.append({"name": f"{label} {short}", "type": mtype, "value": _round(scores[k]),
                                "verified": False})
    fm: Dict[str, Any] = {"library_name": "spacy", "language": [str(meta.get("lang", "en"))]}
    fm.update(_license_fields(license_id))
    fm["tags"] = list(dict.fromkeys(["spacy", "span-categorization", "biomedical", *labels]))
    fm["pipeline_tag"] = "token-classification"
    base = _hub_model_id(_base_model(meta).get("used"))
    if base:
        fm["base_model"] = base
    datasets = _hub_datasets(meta)
    if datasets:
        fm["datasets"] = datasets
    fm["model-index"] = [{
        "name": _package_name(meta),
        "results": [{
            "task": {"type": "token-classification", "name": "Span categorization"},
            "dataset": _eval_dataset(meta, cm),
            "metrics": results,
        }],
    }]
    return fm


def _table(header: List[str], rows: List[List[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _count(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _fmt_count(value: Any) -> str:
    n = _count(value)
    return "" if n is None else f"{n:,}"


def _prf_cells(scores: Dict[str, Any]) -> List[str]:
    return [_pct(scores.get(k)) for k in _PRF] + [_fmt_count(scores.get("gold"))]


def _splits(meta: Meta) -> Dict[str, Dict[str, Any]]:
    data = _dict(meta.get("training_data"))
    return {k: v for k, v in _dict(data.get("splits")).items() if isinstance(v, dict)}


def _train_counts(meta: Meta) -> Dict[str, int]:
    """Training spans per label: convert's report (splits.train.per_label.<label>.spans) in meta.json."""
    train = _splits(meta).get("train", {})
    out = {str(lab): v.get("spans") for lab, v in _dict(train.get("per_label")).items() if isinstance(v, dict)}
    if not out:
        out = dict(_dict(_dict(meta.get("training_data")).get("spans_per_label")))
    return {k: v for k, v in out.items() if _count(v) is not None}


def _data_section(meta: Meta) -> str:
    """Counts only, never text: the annotated data may be patient records."""
    lines = ["## Training data", ""]
    rows = []
    for split, part in sorted(_splits(meta).items(), key=lambda kv: ("train", "dev", "test").index(kv[0])
                              if kv[0] in ("train", "dev", "test") else 9):
        cells = [part.get(k) for k in ("documents", "docs", "tokens", "spans", "spans_overlapping")]
        rows.append([split] + [_fmt_count(c) for c in cells])
    if rows:
        lines += [
            "Counts only: the card never shows annotated text, which may be confidential.",
            "",
            _table(["split", "documents", "texts", "tokens", "spans", "overlapping spans"], rows),
        ]
    else:
        lines.append("The packaged meta.json records no training-data counts.")
    base = str(_base_model(meta).get("used", "\0"))
    sources = [s for s in meta.get("sources") or [] if isinstance(s, dict) and s.get("name")
               and not str(s["name"]).startswith(base)]
    if sources:
        lines += ["", "Sources:", ""]
        for s in sources:
            extra = "; ".join(str(s[k]) for k in ("license", "url", "author") if s.get(k))
            lines.append(f"- {s['name']}" + (f" ({extra})" if extra else ""))
    return "\n".join(lines)


def _scalar_rows(info: Dict[str, Any]) -> List[List[str]]:
    rows = []
    for k, v in info.items():
        if isinstance(v, bool) or v is None or isinstance(v, (dict, list)):
            continue
        if isinstance(v, float):
            v = f"{v:g}"
        if len(str(v)) <= 120:
            rows.append([str(k), str(v)])
    return rows


def _suggester_summary(suggester: Dict[str, Any]) -> str:
    """Scalar settings, short lists of numbers, and only the size of learned word
    lists (never the words themselves: they come from the training text)."""
    parts = []
    for k, v in suggester.items():
        if isinstance(v, list) and len(v) <= 10 and all(isinstance(x, (int, float)) for x in v):
            parts.append(f"{k}={v}")
        elif isinstance(v, list):
            parts.append(f"{k}: {len(v)} entries")
        elif not isinstance(v, dict):
            parts.append(f"{k}={v}")
    return ", ".join(parts)


def _training_seconds(meta: Meta, cm: CardMetrics) -> Optional[float]:
    for info in (_dict(meta.get("training")), cm.training):
        for key in ("seconds", "training_seconds"):
            v = info.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return float(v)
    return None


_TRAINING_SHOWN = ("seconds", "training_seconds", "hardware", "device", "commands", "versions", "schema")


def _build_section(meta: Meta, cm: CardMetrics, spancat: Dict[str, Any]) -> str:
    """Commands, versions, hardware and training time: from meta.json's `training`
    block ({"commands", "versions", "hardware", "seconds", ...}) and the metrics'
    `training` section ({"training_seconds", "device", ...}); "not recorded" where neither says."""
    training = {**cm.training, **_dict(meta.get("training"))}
    lines = ["## How it was built", "", "```bash"]
    commands = training.get("commands")
    if isinstance(commands, list) and commands:
        lines += [str(c) for c in commands]
    else:
        lines += ["weasel run all   # fetch-transformer, convert, fit-suggester, train, tune-threshold,",
                  "                 # evaluate, package, evaluate-package, stage-hub"]
    lines += ["```", ""]
    base = _base_model(meta)
    rows = []
    if base:
        rows.append(["base transformer", str(base.get("used")) + (" (offline stand-in)" if base.get("stand_in") else "")])
    rows.append(["spaCy", str(meta.get("spacy_version", "not recorded"))])
    rows += [["requires", str(r)] for r in meta.get("requirements") or []]
    rows += [[str(k), str(v)] for k, v in _dict(training.get("versions")).items()]
    seconds = _training_seconds(meta, cm)
    rows.append(["training time", f"{seconds / 60:.1f} min" if seconds is not None else "not recorded"])
    hardware = training.get("hardware") or training.get("device")
    rows.append(["training hardware", str(hardware) if hardware else "not recorded"])
    rows += [[f"training: {k}", v] for k, v in _scalar_rows(training) if k not in _TRAINING_SHOWN]
    if spancat.get("suggester"):
        rows.append(["suggester", _suggester_summary(spancat["suggester"])])
    if cm.speed.get("words_per_second"):
        rows.append(["speed (evaluation)",
                     f"{cm.speed['words_per_second']:,.0f} words/s on {cm.speed.get('device', '?')}"])
    lines.append(_table(["", "value"], rows))
    return "\n".join(lines)


GROUP_DESCRIPTIONS = {
    "overlapping": "overlap or nest in another gold span",
    "isolated": "share no token with another gold span",
    "same_label": "overlap a gold span of the same label",
    "cross_label": "overlap a gold span of another label",
}


def build_card(
    meta: Meta,
    cm: CardMetrics,
    *,
    spancat: Dict[str, Any],
    repo_id: str,
    wheel_name: str,
    license_id: str,
    chart_name: str = CHART_NAME,
) -> str:
    """Write the model card (README.md) from meta.json and the metrics.

    meta (dict): The packaged pipeline's meta.json.
    cm (CardMetrics): The evaluation of the packaged pipeline (load_metrics).
    spancat (dict): The spancat settings read from the packaged config (read_wheel).
    repo_id (str): "<namespace>/<repo>" the card will live in (for the install line).
    wheel_name (str): The wheel's real file name.
    license_id (str): The licence var.
    chart_name (str): The per-label F chart uploaded beside the card.
    RETURNS (str): The card, front matter first.
    """
    spans_key = spancat.get("spans_key", "sc")
    package = _package_name(meta)
    labels = _labels(meta, spancat.get("component"))
    fm = front_matter(meta, cm, license_id, labels)
    base = _base_model(meta)
    descriptions = dict(LABEL_DESCRIPTIONS)
    descriptions.update({str(k): str(v) for k, v in _dict(meta.get("label_descriptions")).items()})
    train_counts = _train_counts(meta)
    # evaluate-package scores the installed package, by name; anything else is a folder.
    what = "installed wheel" if cm.model.get("model") == package else "packaged pipeline"

    out: List[str] = ["---", yaml.safe_dump(fm, sort_keys=False, allow_unicode=True).rstrip(), "---", ""]
    out += [f"# {package}", ""]
    if base.get("stand_in"):
        out += [
            "> **Notice: trained on an offline stand-in, not BiomedBERT.** The base transformer requested was "
            f"`{base.get('requested')}`, but it could not be fetched where this pipeline was built, so the "
            f"general-domain `{base.get('used', STAND_IN)}` was trained instead. Expect lower accuracy than the "
            "same pipeline over BiomedBERT; rebuild with network access (and `strict_transformer: true`) for the "
            "intended model.",
            "",
        ]
    out += [
        f"A spaCy pipeline (`transformer` + `spancat`), version {meta.get('version')}, that finds spans of "
        f"biomedical concepts in English text and stores them in `doc.spans[\"{spans_key}\"]`. Spans may "
        "overlap or nest, and each carries a score.",
        "",
        "## What it predicts",
        "",
        _table(["label", "what it marks", "training spans"], [
            [f"`{lab}`", descriptions.get(lab, "(no description recorded)"),
             f"{train_counts[lab]:,}" if lab in train_counts else "not recorded"]
            for lab in labels
        ]),
        "",
    ]
    if cm.threshold is not None:
        out += [f"A span is kept when its label's score is at least {cm.threshold:g} (the threshold saved in "
                "the packaged pipeline).", ""]
    out += [
        "## Install",
        "",
        "```bash",
        f"pip install {_install_url(repo_id, wheel_name)}",
        "```",
        "",
        "The wheel keeps its real file name, so current pip installs it. It pulls `spacy` and "
        "`spacy-transformers`; install the `torch` build for your hardware first.",
        "",
        "## Usage",
        "",
        "```python",
        "import spacy",
        "",
        f'nlp = spacy.load("{package}")',
        'doc = nlp("Mutations in BRCA1 raise the risk of breast cancer in women.")',
        f'spans = doc.spans["{spans_key}"]',
        'for span, score in zip(spans, spans.attrs["scores"]):',
        "    print(span.start_char, span.end_char, span.label_, span.text, round(float(score), 3))",
        "```",
        "",
        "## Evaluation",
        "",
        f"Scores of the {what} on the {_eval_name(meta, cm)}, in percent; a prediction counts only "
        "with the exact start, end and label of a gold span.",
        "",
        _table(["", "P", "R", "F", "gold spans"], [["all spans"] + _prf_cells(cm.overall)]),
        "",
        "### Per label",
        "",
        _table(["label", "P", "R", "F", "gold spans"], [
            [f"`{lab}`"] + (_prf_cells(cm.per_label[lab]) if lab in cm.per_label else ["—", "—", "—", "0"])
            for lab in labels
        ]),
        "",
        f"![Spans F per label]({chart_name})",
        "",
    ]
    missing = [lab for lab in labels if lab not in cm.per_label]
    if missing:
        out += [f"Not in the evaluation data, so not scored: {', '.join(missing)}.", ""]
    groups = [g for g in cm.groups]
    if groups:
        out += [
            "### Overlapping vs isolated spans",
            "",
            _table(["gold spans that", "P", "R", "F", "gold spans"],
                   [[f"{g}: {GROUP_DESCRIPTIONS.get(g, '')}".rstrip(": ")] + _prf_cells(cm.groups[g]) for g in groups]),
            "",
        ]
    if cm.baselines:
        def row(name: str, m: CardMetrics) -> List[str]:
            return [name] + _prf_cells(m.overall)[:3] + [_pct(m.groups.get("overlapping", {}).get("f"))]

        rows = [row(f"{package} (this model)", cm)] + [row(name, b) for name, b in cm.baselines.items()]
        out += ["### Baselines", "", "On the same data, with the same scorer.", "",
                _table(["pipeline", "P", "R", "F", "overlapping F"], rows), ""]
    others = []
    if cm.suggester.get("recall") is not None:
        others.append(["suggester recall (ceiling on recall)", _pct(cm.suggester["recall"])])
    if isinstance(cm.suggester.get("candidates_per_token"), (int, float)):
        others.append(["candidate spans per token", f"{cm.suggester['candidates_per_token']:.2f}"])
    for key, label in (("docs", "evaluated texts"), ("tokens", "evaluated tokens")):
        if _count(cm.data.get(key)) is not None:
            others.append([label, _fmt_count(cm.data[key])])
    if others:
        out += ["### Other measures", "", _table(["measure", "value"], others), ""]
    out += [_data_section(meta), "", _build_section(meta, cm, spancat), ""]
    lims = [
        "Trained on the annotated data summarised above; text from other domains, document types or "
        "annotation guidelines will score lower than the evaluation shows.",
        "Scores are strict: a span with a boundary one token off counts as an error.",
        "The suggester proposes only the candidate spans its learned settings allow (see above); "
        "a gold span it never proposes cannot be predicted.",
        "Research use only: not a medical device; do not base clinical decisions on its output without review.",
    ]
    lims += [f"Train and eval data differ: {w}." for w in _dict(_dict(meta.get("training_data")).get("label_check")).get("warnings") or []]
    if base.get("stand_in"):
        lims.insert(0, f"The base model is the general-domain stand-in `{base.get('used', STAND_IN)}`, "
                       "not BiomedBERT (see the notice at the top).")
    out += ["## Limitations", ""] + [f"- {line}" for line in lims]
    out += ["", "_Generated by the `stage-hub` command from the wheel's meta.json and the evaluation of the "
                "installed wheel; change those, not this file._", ""]
    return "\n".join(out)


def parse_card(text: str) -> Tuple[Dict[str, Any], str]:
    """Split a card into its YAML front matter and body.

    text (str): The card.
    RETURNS (Tuple[dict, str]): The front matter and the body.
    """
    m = re.match(r"^---\n(.*?)\n---\n(.*)$", text, flags=re.S)
    if not m:
        raise HubError("the card has no YAML front matter between '---' lines")
    try:
        fm = yaml.safe_load(m.group(1))
    except yaml.YAMLError as err:
        raise HubError(f"the card's front matter is not valid YAML: {err}") from None
    if not isinstance(fm, dict):
        raise HubError("the card's front matter is not a mapping")
    return fm, m.group(2)


def plot_per_label_f(cm: CardMetrics, labels: List[str], out: Path) -> Path:
    """Draw spans F per label (with the overall F as a line) to a PNG.

    cm (CardMetrics): The evaluation.
    labels (List[str]): Labels to draw, in order; unscored labels are drawn empty.
    out (Path): The PNG to write.
    RETURNS (Path): out.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = [100 * (cm.per_label.get(lab, {}).get("f") or 0.0) for lab in labels]
    fig, ax = plt.subplots(figsize=(6, 0.4 * max(len(labels), 3) + 1.2))
    ax.barh(labels[::-1], scores[::-1], color="#4c72b0")
    if cm.overall.get("f") is not None:
        overall = 100 * float(cm.overall["f"])
        ax.axvline(overall, color="#c44e52", linestyle="--", label=f"all spans {overall:.1f}")
        ax.legend(loc="lower right", fontsize=8)
    for y, (lab, s) in enumerate(zip(labels[::-1], scores[::-1])):
        scored = cm.per_label.get(lab, {}).get("f") is not None
        ax.text(min(s + 1, 92), y, f"{s:.1f}" if scored else "not scored", va="center", fontsize=8)
    ax.set_xlim(0, 100)
    ax.set_xlabel("F (%)")
    ax.set_title("Spans F per label")
    fig.tight_layout()
    fig.savefig(out, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return out


# ---------------------------------------------------------------------------
# Staging


def _check_repo_part(value: str, what: str) -> str:
    if not re.match(r"^[A-Za-z0-9][\w.-]{0,95}$", value or "") or ".." in value or value.endswith((".git", "-", ".")):
        raise HubError(f"--{what} '{value}' is not a valid Hub {what} name (letters, digits, '-', '_', '.')")
    return value


def stage_hub(
    wheel: Path,
    out_dir: Path,
    metrics_path: Path,
    namespace: str,
    repo: str,
    license_id: str,
    baselines: Optional[Dict[str, Path]] = None,
) -> StagedFolder:
    """Write exactly the folder push uploads: README.md (the card), the wheel under
    its real name, and the per-label F chart. No network. The folder is rebuilt
    from scratch in a temporary sibling and swapped in, so nothing stale survives
    and a failure leaves the previous folder as it was.

    wheel (Path): The wheel built by `spacy package`.
    out_dir (Path): The folder to write (e.g. hub/en_biomed_spancat).
    metrics_path (Path): The evaluation of the installed wheel.
    namespace (str): Hub user or organisation (for the install line).
    repo (str): Hub repo name.
    license_id (str): The licence var.
    baselines (Optional[Dict[str, Path]]): name -> metrics JSON of a baseline on the same data.
    RETURNS (StagedFolder): What was written.
    """
    repo_id = f"{_check_repo_part(namespace, 'namespace')}/{_check_repo_part(repo, 'repo')}"
    meta, spancat = read_wheel(wheel)
    if not spancat:
        raise HubError(f"{wheel}: the packaged pipeline has no spancat component")
    labels = _labels(meta, spancat["component"])
    cm = load_metrics(metrics_path, spancat["spans_key"], package=_package_name(meta),
                      version=str(meta.get("version")), labels=labels)
    for name, path in (baselines or {}).items():
        base = load_metrics(Path(path), spancat["spans_key"])
        for key in ("docs", "tokens", "gold_spans"):
            if key in base.data and key in cm.data and base.data[key] != cm.data[key]:
                raise HubError(
                    f"{path}: baseline '{name}' was scored on other data than the wheel ({key}: "
                    f"{base.data[key]} vs {cm.data[key]}); evaluate both on the same dev set"
                )
        cm.baselines[name] = base
    card = build_card(meta, cm, spancat=spancat, repo_id=repo_id, wheel_name=wheel.name,
                      license_id=license_id)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        (tmp / CARD_NAME).write_text(card, encoding="utf8")
        shutil.copy2(wheel, tmp / wheel.name)
        plot_per_label_f(cm, labels, tmp / CHART_NAME)
        tmp.chmod(0o755)  # mkdtemp makes it private; the staged folder is an ordinary one
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
            os.replace(out_dir, old / out_dir.name)
            os.replace(tmp, out_dir)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return StagedFolder(out_dir, out_dir / CARD_NAME, out_dir / wheel.name, out_dir / CHART_NAME)


def check_staged(folder: Path, repo_id: Optional[str] = None) -> StagedFolder:
    """Check that `folder` is what stage_hub writes, and that its card was staged
    for `repo_id` (its install line names the repo the wheel will be served from).

    folder (Path): The staged folder.
    repo_id (Optional[str]): "<namespace>/<repo>" about to be pushed to.
    RETURNS (StagedFolder): The staged files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise HubError(f"{folder}: no staged folder (run the `stage-hub` command first)")
    names = sorted(p.name for p in folder.iterdir())
    wheels = [n for n in names if n.endswith(".whl")]
    extra = [n for n in names if n not in _STAGED_NAMES and n not in wheels]
    if extra or len(wheels) != 1 or CARD_NAME not in names or CHART_NAME not in names:
        raise HubError(
            f"{folder}: expected exactly {CARD_NAME}, {CHART_NAME} and one wheel (what stage-hub writes), "
            f"found {', '.join(names) or 'nothing'}; re-run stage-hub"
        )
    wheel = folder / wheels[0]
    check_wheel_name(wheel)
    fm, body = parse_card((folder / CARD_NAME).read_text(encoding="utf8"))
    if repo_id is not None:
        expected = _install_url(repo_id, wheel.name)
        if f"pip install {expected}" not in body:
            found = re.search(r"pip install (\S+)", body)
            raise HubError(
                f"{folder / CARD_NAME}: the card was staged for another repo "
                f"(install line: {found.group(1) if found else 'none'}); re-run stage-hub with "
                f"--namespace {repo_id.split('/')[0]} --repo {repo_id.split('/')[1]} before pushing to {repo_id}"
            )
    return StagedFolder(folder, folder / CARD_NAME, wheel, folder / CHART_NAME)


# ---------------------------------------------------------------------------
# Pushing


def resolve_token() -> Tuple[Optional[str], str]:
    """The Hub token and where it came from ("HF_TOKEN", or the login cache path).

    RETURNS (Tuple[Optional[str], str]): The token (None when there is none) and its source.
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import get_token

    token = get_token()
    if token is None:
        return None, ""
    if os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN"):
        return token, "the HF_TOKEN environment variable"
    return token, f"the login cache ({constants.HF_TOKEN_PATH})"


def _scrub(text: str, token: Optional[str]) -> str:
    return text.replace(token, "***") if token else text


def _redact_endpoint(endpoint: str) -> str:
    return re.sub(r"//[^/@]*@", "//***@", endpoint)


def _server_message(err: Exception) -> str:
    msg = getattr(err, "server_message", None) or ""
    if not msg:
        response = getattr(err, "response", None)
        try:
            msg = str(response.json().get("error", "")) if response is not None else ""
        except Exception:
            msg = ""
    return msg.strip()


def _status(err: Exception) -> Optional[int]:
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def _own_files(names: Iterable[str], package: str) -> List[str]:
    """The files of `names` that are not this project's (card, chart, its wheels, .gitattributes)."""
    wheel = re.compile(rf"^{re.escape(package)}-[^/]+\.whl$")
    return [n for n in names if n not in (CARD_NAME, CHART_NAME, ".gitattributes") and not wheel.match(n)]


def push_folder(
    folder: Path,
    repo_id: str,
    *,
    private: bool = True,
    message: str = "Upload en_biomed_spancat",
    endpoint: Optional[str] = None,
) -> PushResult:
    """Upload a staged folder to the Hub with huggingface_hub's API.

    The token comes from HF_TOKEN or the login cache and is never printed,
    logged or written; every failure raises HubError with the reason and what to
    do, and leaves `folder` untouched (nothing here writes to it).

    folder (Path): The folder stage_hub wrote.
    repo_id (str): "<namespace>/<repo>".
    private (bool): Create the repo private; an existing repo keeps its visibility
        (PushResult.private reports the one it has).
    message (str): The commit message.
    endpoint (Optional[str]): The Hub URL; None reads HF_ENDPOINT (huggingface.co by default).
    RETURNS (PushResult): The repo, commit and uploaded files.
    """
    import requests
    from huggingface_hub import CommitOperationAdd, HfApi, constants
    from huggingface_hub.errors import OfflineModeIsEnabled

    namespace, _, name = repo_id.partition("/")
    _check_repo_part(namespace, "namespace")
    _check_repo_part(name, "repo")
    staged = check_staged(folder, repo_id)
    meta = read_wheel(staged.wheel)[0]
    package = _package_name(meta)
    endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
    where = _redact_endpoint(endpoint)
    if constants.HF_HUB_OFFLINE:
        raise HubError("HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set: pushing needs the Hub; unset it for this command")
    token, source = resolve_token()
    if token is None:
        raise HubError(
            "no Hugging Face token: set HF_TOKEN to a token with write access, or log in once with "
            "`hf auth login` (the token is read from there; it is never printed or written by this project)"
        )
    api = HfApi(endpoint=endpoint, token=token)
    step = "checking the token"
    try:
        try:
            who = api.whoami()
        except requests.HTTPError as err:
            if _status(err) == 401:
                raise HubError(
                    f"the Hub at {where} rejected the token from {source} (401 Unauthorized): it is invalid, "
                    "expired or revoked; create a new one with write access and set HF_TOKEN or run `hf auth login`"
                ) from None
            raise
        user = str(who.get("name", "?"))
        orgs = [str(o.get("name")) for o in who.get("orgs") or [] if isinstance(o, dict)]
        role = ((who.get("auth") or {}).get("accessToken") or {}).get("role")
        if role == "read":
            raise HubError(f"the token from {source} (user {user}) is read-only; pushing needs a write token")

        step = f"creating {repo_id}"
        created = True
        try:
            repo_url = str(api.create_repo(repo_id, private=private, repo_type="model", exist_ok=False))
        except requests.HTTPError as err:
            status = _status(err)
            if status == 403:
                can = ", ".join([user] + orgs)
                raise HubError(
                    f"the Hub refused to create {repo_id} (403 Forbidden): user {user} cannot write to namespace "
                    f"'{namespace}' (namespaces this token can use: {can}). Set --namespace to one of them, or give "
                    f"the token write access to '{namespace}'. Server said: {_server_message(err) or 'forbidden'}"
                ) from None
            if status != 409:
                raise
            created = False
            repo_url = f"{HUB_URL}/{repo_id}"
            step = f"reading the existing {repo_id}"
            info = api.model_info(repo_id)
            private = bool(info.private)
            files = [s.rfilename for s in info.siblings or []]
            foreign = _own_files(files, package)
            card_name = getattr(info.card_data, "model_name", None) if info.card_data is not None else None
            if CARD_NAME in files and card_name != package:
                foreign.insert(0, f"{CARD_NAME} (a card for {card_name or 'another model'})")
            if foreign:
                raise HubError(
                    f"{repo_id} already exists and holds files this project did not stage: "
                    f"{', '.join(foreign)}. Pushing would mix our card and wheel with another owner's files; "
                    "choose another --repo, or remove those files on the Hub first"
                )

        step = f"uploading to {repo_id}"
        ops = [CommitOperationAdd(path_in_repo=p.name, path_or_fileobj=str(p))
               for p in (staged.card, staged.wheel, staged.chart)]
        commit = api.create_commit(repo_id, operations=ops, commit_message=message, repo_type="model")
    except HubError as err:
        raise HubError(_scrub(str(err), token)) from None
    except OfflineModeIsEnabled:
        raise HubError("HF_HUB_OFFLINE is set: pushing needs the Hub; unset it for this command") from None
    except (requests.ConnectionError, requests.Timeout) as err:
        raise HubError(
            f"cannot reach the Hub at {where} while {step} ({type(err).__name__}); check the network, a proxy "
            "or HF_ENDPOINT, then run push again"
        ) from None
    except requests.HTTPError as err:
        status = _status(err)
        hint = {
            401: "the token was rejected; set a valid write token",
            403: f"the token cannot write to {repo_id}; give it write access",
        }.get(status or 0, "see the server's message")
        raise HubError(_scrub(
            f"the Hub at {where} answered HTTP {status} while {step}: "
            f"{_server_message(err) or type(err).__name__}; {hint}", token)) from None
    except Exception as err:  # e.g. an upload that fails mid-way (RuntimeError from the LFS step)
        cause = err.__cause__ or err.__context__
        detail = f"{type(err).__name__}: {err}" + (f" ({type(cause).__name__}: {cause})" if cause else "")
        if isinstance(cause, (requests.ConnectionError, requests.Timeout)):
            detail = f"cannot reach the Hub at {where} ({type(cause).__name__})"
        raise HubError(_scrub(f"push failed while {step}: {detail}", token)) from None
    return PushResult(
        repo_id=repo_id,
        repo_url=repo_url,
        commit_url=str(commit.commit_url),
        private=private,
        created=created,
        files=staged.files,
        install_url=_install_url(repo_id, staged.wheel.name),
    )
