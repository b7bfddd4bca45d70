"""What the Hub step reads: the wheel (its meta.json and spancat settings),
the evaluation of the installed wheel, and the threshold record that says
which data chose the threshold. Everything is checked and every problem is a
HubError that names the file.

Project library code: never imported by a loaded pipeline.
"""
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

from ...util import read_json_object

__all__ = [
    "CARD_NAME",
    "CHART_NAME",
    "DEFAULT_ENDPOINT",
    "PLACEHOLDER_NAMESPACE",
    "HubError",
    "StagedFolder",
    "CardMetrics",
    "ThresholdRecord",
    "check_wheel_name",
    "read_wheel",
    "normalize_metrics",
    "load_metrics",
    "load_threshold_record",
]

Meta = Dict[str, Any]

CARD_NAME = "README.md"
CHART_NAME = "spans_f_per_label.png"
DEFAULT_ENDPOINT = "https://huggingface.co"
# project.yml's vars.hub_namespace until the user sets it: never a real push target.
PLACEHOLDER_NAMESPACE = "your-hf-username"
STAND_IN = "sentence-transformers/all-MiniLM-L6-v2"
# Names a staged folder may hold; anything else means it was not written by stage_hub.
STAGED_NAMES = (CARD_NAME, CHART_NAME)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
PRF = ("p", "r", "f")
PRF_NAMES = {"p": ("precision", "P"), "r": ("recall", "R"), "f": ("f1", "F")}


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


def package_name(meta: Meta) -> str:
    name = str(meta.get("name", ""))
    lang = str(meta.get("lang", ""))
    return name if name.startswith(f"{lang}_") else f"{lang}_{name}"


def read_wheel(wheel: Path) -> Tuple[Meta, Dict[str, Any]]:
    """Read meta.json and the pipeline's spancat settings from inside the wheel,
    so the card describes the file that is uploaded, not a build folder beside it.

    wheel (Path): A wheel built by `spacy package`.
    RETURNS (Tuple[dict, dict]): meta.json, and {"component", "spans_key", "threshold", "suggester"}
        of the spancat component (empty when there is none).
    RAISES (PackagingError): No such wheel, or not one `spacy package` built.
    RAISES (HubError): A file name pip would not install, or one that is not its meta's.
    """
    # confection's Config is thinc's, without importing thinc (and torch) for a config read
    from confection import Config

    from ..packaging import PackagingError, wheel_contents

    if not wheel.is_file():
        raise PackagingError(f"{wheel}: no such wheel (run the `package` command first)")
    dist_name, dist_version = check_wheel_name(wheel)
    meta, config_text = wheel_contents(wheel)
    package = package_name(meta)
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
        # the span filter tune-threshold may add: a threshold per label, a same-label policy
        for comp in config.get("components", {}).values():
            if spancat and comp.get("factory") == "biomed_span_filter_v1" and comp.get("spans_key", "sc") == spancat["spans_key"]:
                spancat["label_thresholds"] = dict(comp.get("thresholds") or {})
                spancat["same_label"] = comp.get("same_label", "keep")
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
    for k in PRF:
        if k not in scores:
            raise HubError(f"{where}: no '{k}'")
        out[k] = _fraction(scores[k], f"{where}.{k}", optional)
    gold = scores.get("gold")
    if isinstance(gold, int) and not isinstance(gold, bool):
        out["gold"] = gold
    return out


def as_dict(value: Any) -> Dict[str, Any]:
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
    RAISES (InputFileError): No such file, or not a JSON object.
    RAISES (HubError): Not the scores of this wheel, or not scores at all.
    """
    prefix = f"spans_{spans_key}"
    if "spans" in raw and "per_label" in raw:
        model = as_dict(raw.get("model"))
        if model.get("spans_key") not in (None, spans_key):
            raise HubError(
                f"{where}: the metrics are for spans key '{model['spans_key']}', the packaged spancat writes "
                f"'{spans_key}'"
            )
        cm = CardMetrics(
            overall=_prf(raw["spans"], f"{where}: 'spans'"),
            per_label={str(lab): _prf(v, f"{where}: 'per_label.{lab}'") for lab, v in as_dict(raw["per_label"]).items()},
            groups={str(g): _prf(v, f"{where}: 'groups.{g}'") for g, v in as_dict(raw.get("groups")).items()},
            threshold=model.get("threshold"),
            model=model,
            data=as_dict(raw.get("data")),
            suggester=as_dict(raw.get("suggester")),
            speed=as_dict(raw.get("speed")),
            training=as_dict(raw.get("training")),
        )
    elif f"{prefix}_f" in raw:
        cm = CardMetrics(
            overall=_prf({k: raw.get(f"{prefix}_{k}") for k in PRF}, f"{where}: '{prefix}_*'"),
            per_label={
                str(lab): _prf(v, f"{where}: '{prefix}_per_type.{lab}'")
                for lab, v in as_dict(raw.get(f"{prefix}_per_type")).items()
            },
            groups={str(g): _prf(v, f"{where}: 'overlap.{g}'") for g, v in as_dict(raw.get("overlap")).items()
                    if isinstance(v, dict)},
            threshold=raw.get("threshold"),
        )
    else:
        raise HubError(
            f"{where}: neither the project's metrics (keys 'spans' and 'per_label', written by the evaluate "
            f"command) nor spaCy scorer keys ('{prefix}_p', '{prefix}_r', '{prefix}_f')"
        )
    for name, value in as_dict(raw.get("baselines")).items():
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
    raw = read_json_object(path, "metrics file", "evaluate-package")
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



@dataclass
class ThresholdRecord:
    """Which data chose the spancat threshold (tune-threshold's metrics/threshold.json)."""

    path: Path
    data: str
    threshold: float


def load_threshold_record(path: Path) -> ThresholdRecord:
    """Read tune-threshold's record: the data the threshold was chosen on, and the threshold.

    path (Path): metrics/threshold.json.
    RETURNS (ThresholdRecord): The record.
    """
    path = Path(path)
    raw = read_json_object(path, "threshold record", "tune-threshold")
    if not isinstance(raw.get("data"), str) or not raw["data"]:
        raise HubError(f"{path}: expected tune-threshold's record with 'data' (the file the threshold was chosen on)")
    threshold = _fraction(raw.get("threshold"), f"{path}: threshold", optional=False)
    return ThresholdRecord(path, raw["data"], threshold)


def base_model(meta: Meta) -> Dict[str, Any]:
    """{"requested", "used", "stand_in", "note"} from meta.json's `base_model` block."""
    info = meta.get("base_model")
    return dict(info) if isinstance(info, dict) else {}


def spancat_labels(meta: Meta, component: Optional[str] = None) -> List[str]:
    """The spancat component's labels from meta.json (every component's when it cannot be told)."""
    labels = meta.get("labels") or {}
    if component and component in labels:
        return list(dict.fromkeys(labels[component]))
    out = [lab for comp, labs in labels.items() if "spancat" in comp for lab in labs]
    if not out:
        out = [lab for labs in labels.values() for lab in labs]
    return list(dict.fromkeys(out))
