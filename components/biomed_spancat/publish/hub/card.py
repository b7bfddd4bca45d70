"""The model card: metadata through huggingface_hub's ModelCardData and
EvalResult (so the model-index is valid by construction), the text from the
Jinja2 template templates/model_card.md.j2, with data passed in; and the
per-label F chart.

Project library code: never imported by a loaded pipeline.
"""
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

from ...util import pct
from .inputs import (
    CHART_NAME,
    DEFAULT_ENDPOINT,
    HUB_ID,
    PRF,
    PRF_NAMES,
    STAND_IN,
    CardMetrics,
    HubError,
    Meta,
    ThresholdRecord,
    as_dict,
    base_model,
    package_name,
    spancat_labels,
)

__all__ = [
    "TEMPLATE",
    "EXAMPLE_TEXT",
    "CardExample",
    "Provenance",
    "install_url",
    "provenance",
    "card_data",
    "front_matter",
    "build_card",
    "parse_card",
    "plot_per_label_f",
]

TEMPLATE = Path(__file__).parent / "templates" / "model_card.md.j2"
# The card's example call: a made-up sentence, never text of the corpus.
EXAMPLE_TEXT = "In zebrafish embryos, loss of Sox10 blocks melanocyte development in the neural crest."
# Rows of the example's output shown in the card; the rest are counted.
EXAMPLE_ROWS = 15

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


@dataclass
class CardExample:
    """What the packaged pipeline returns for the card's example sentence.

    text (str): The sentence.
    spans (List[Tuple[int, int, str, str, float]]): (start_char, end_char, label, text, score) per span.
    """

    text: str
    spans: List[Tuple[int, int, str, str, float]] = field(default_factory=list)


@dataclass
class Provenance:
    """Which data the scores are on, and whether that data also chose the threshold.

    split (str): "dev" or the held-out split's name ("test").
    heldout (Optional[bool]): True: not used to choose the threshold; False: it chose it; None: not recorded.
    data (str): The evaluated file.
    tuned_on (str): The file that chose the threshold ("" when not recorded).
    """

    split: str
    heldout: Optional[bool]
    data: str
    tuned_on: str = ""


def install_url(repo_id: str, wheel_name: str, endpoint: str = DEFAULT_ENDPOINT) -> str:
    """The URL pip installs the wheel from: `<endpoint>/<repo>/resolve/main/<wheel>`."""
    return f"{endpoint.rstrip('/')}/{repo_id}/resolve/main/{wheel_name}"


def _same_file(a: str, b: str) -> bool:
    if Path(a).exists() and Path(b).exists():
        return os.path.samefile(a, b)
    return os.path.normpath(os.path.abspath(a)) == os.path.normpath(os.path.abspath(b))


def provenance(cm: CardMetrics, record: Optional[ThresholdRecord]) -> Provenance:
    """Compare the evaluated data with the data that chose the threshold.

    cm (CardMetrics): The evaluation (its `data.path` names the evaluated file).
    record (Optional[ThresholdRecord]): tune-threshold's record, None when not given.
    RETURNS (Provenance): Where the scores come from.
    """
    data = str(cm.data.get("path") or "")
    if record is None:
        return Provenance("dev", None, data)
    if cm.threshold is not None and abs(cm.threshold - record.threshold) > 1e-6:
        raise HubError(
            f"{record.path}: records threshold {record.threshold:g}, but the evaluated wheel uses "
            f"{cm.threshold:g}: it is the record of another run; pass the record of the tune-threshold run "
            "that made this wheel"
        )
    if not data:
        return Provenance("dev", None, data, record.data)
    if _same_file(data, record.data):
        return Provenance("dev", False, data, record.data)
    stem = Path(data).stem.lower()
    return Provenance(stem if stem in ("test", "heldout", "held-out", "validation") else "test", True, data,
                      record.data)


def _round(x: float) -> float:
    return round(float(x), 4)


def _hub_model_id(value: Any) -> Optional[str]:
    """The value when it is a Hub model id (never a local path, which the Hub would reject)."""
    if not isinstance(value, str) or not HUB_ID.match(value) or Path(value).exists():
        return None
    return value


def _hub_datasets(meta: Meta) -> List[str]:
    """Hub dataset ids named in meta.json (`datasets`, or `sources` URLs on the Hub)."""
    found: List[str] = []
    for ds in meta.get("datasets") or []:
        if isinstance(ds, str) and HUB_ID.match(ds):
            found.append(ds)
    for src in meta.get("sources") or []:
        url = src.get("url", "") if isinstance(src, dict) else ""
        m = re.match(r"^https://huggingface\.co/datasets/([\w.-]+/[\w.-]+)/?$", str(url))
        if m:
            found.append(m.group(1))
    return list(dict.fromkeys(found))


def _data_sources(meta: Meta) -> List[Dict[str, Any]]:
    """meta.json's sources other than the base transformer."""
    base = str(base_model(meta).get("used", "\0"))
    return [s for s in meta.get("sources") or [] if isinstance(s, dict) and s.get("name")
            and not str(s["name"]).startswith(base)]


def _eval_name(meta: Meta, split: str) -> str:
    """"<split> split of <data source>" (the source's short name, before any parenthesis)."""
    data = [str(s["name"]).split(" (")[0] for s in _data_sources(meta)]
    return f"{split} split of {data[0]}" if data else f"{split} split"


def _eval_dataset(meta: Meta, split: str) -> Dict[str, str]:
    ids = _hub_datasets(meta)
    name = _eval_name(meta, split)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower().replace(f"{split} split of", "")).strip("-") or "custom"
    return {"type": ids[0] if ids else slug, "name": name, "split": split}


def _license_fields(license_id: str) -> Dict[str, str]:
    lic = license_id.strip().lower()
    if lic in HUB_LICENSES:
        return {"license": lic}
    return {"license": "other", "license_name": re.sub(r"[^a-z0-9.-]+", "-", lic).strip("-") or "unknown"}


def card_data(meta: Meta, cm: CardMetrics, license_id: str, labels: List[str], split: str = "dev"):
    """The card's metadata as huggingface_hub's ModelCardData, scores as EvalResults.

    meta (dict): The packaged pipeline's meta.json.
    cm (CardMetrics): The evaluation of the packaged pipeline.
    license_id (str): The licence var (a Hub licence id, else written as `other`).
    labels (List[str]): The spancat labels, in order.
    split (str): The evaluated split ("dev", or "test" for held-out data).
    RETURNS (ModelCardData): The metadata. Per-label scores that are undefined
        (a label absent from the evaluation data) are left out, since the Hub needs a number.
    """
    from huggingface_hub import EvalResult, ModelCardData

    dataset = _eval_dataset(meta, split)
    results = []

    def add(name: str, k: str, value: float) -> None:
        results.append(EvalResult(
            task_type="token-classification", task_name="Span categorization",
            dataset_type=dataset["type"], dataset_name=dataset["name"], dataset_split=dataset["split"],
            metric_type=PRF_NAMES[k][0], metric_value=_round(value), metric_name=name, verified=False,
        ))

    for k in PRF:
        if cm.overall.get(k) is not None:
            add(f"Spans {PRF_NAMES[k][1]}", k, cm.overall[k])
    for label in labels:
        scores = cm.per_label.get(label, {})
        for k in PRF:
            if scores.get(k) is not None:
                add(f"{label} {PRF_NAMES[k][1]}", k, scores[k])
    return ModelCardData(
        language=[str(meta.get("lang", "en"))],
        library_name="spacy",
        tags=list(dict.fromkeys(["spacy", "span-categorization", "biomedical", *labels])),
        pipeline_tag="token-classification",
        base_model=_hub_model_id(base_model(meta).get("used")),
        datasets=_hub_datasets(meta) or None,
        model_name=package_name(meta),
        eval_results=results or None,
        **_license_fields(license_id),
    )


def front_matter(meta: Meta, cm: CardMetrics, license_id: str, labels: List[str], split: str = "dev") -> Dict[str, Any]:
    """The card's YAML metadata as a dict, in the keys the Hub reads (see card_data)."""
    return card_data(meta, cm, license_id, labels, split).to_dict()


def _count(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _fmt_count(value: Any) -> str:
    n = _count(value)
    return "" if n is None else f"{n:,}"


def _prf_cells(scores: Dict[str, Any]) -> List[str]:
    return [pct(scores.get(k), 2) for k in PRF] + [_fmt_count(scores.get("gold"))]


def _splits(meta: Meta) -> Dict[str, Dict[str, Any]]:
    data = as_dict(meta.get("training_data"))
    return {k: v for k, v in as_dict(data.get("splits")).items() if isinstance(v, dict)}


def _train_counts(meta: Meta) -> Dict[str, int]:
    """Training spans per label: convert's report (splits.train.per_label.<label>.spans) in meta.json."""
    train = _splits(meta).get("train", {})
    out = {str(lab): v.get("spans") for lab, v in as_dict(train.get("per_label")).items() if isinstance(v, dict)}
    if not out:
        out = dict(as_dict(as_dict(meta.get("training_data")).get("spans_per_label")))
    return {k: v for k, v in out.items() if _count(v) is not None}


def _split_rows(meta: Meta) -> List[List[str]]:
    order = ("train", "dev", "test")
    rows = []
    for split, part in sorted(_splits(meta).items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 9):
        cells = [part.get(k) for k in ("documents", "docs", "tokens", "spans", "spans_overlapping")]
        rows.append([split] + [_fmt_count(c) for c in cells])
    return rows


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


def _learned_lists(suggester: Dict[str, Any]) -> str:
    """"the suggester's block lists (N lower-case words and M word shapes ...)", or "" when it has none."""
    words = sum(len(v) for k, v in suggester.items() if k.endswith("_words") and isinstance(v, list))
    shapes = sum(len(v) for k, v in suggester.items() if k.endswith("_shapes") and isinstance(v, list))
    if not words and not shapes:
        return ""
    def n(count: int, what: str) -> str:
        return f"{count:,} {what}" + ("" if count == 1 else "s")

    return (f"the suggester's block lists ({n(words, 'lower-case word')} and {n(shapes, 'word shape')} that gold "
            "spans in the training data never, or almost never, start, end, run through or make up on their "
            "own; frequent function words and punctuation by construction)")


def _training_seconds(meta: Meta, cm: CardMetrics) -> Optional[float]:
    for info in (as_dict(meta.get("training")), cm.training):
        for key in ("seconds", "training_seconds"):
            v = info.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return float(v)
    return None


_TRAINING_SHOWN = ("seconds", "training_seconds", "hardware", "device", "commands", "versions", "schema")


def _build(meta: Meta, cm: CardMetrics, spancat: Dict[str, Any]) -> Tuple[List[str], List[List[str]]]:
    """Commands, and rows of versions, hardware and training time: from meta.json's `training`
    block ({"commands", "versions", "hardware", "seconds", ...}) and the metrics'
    `training` section ({"training_seconds", "device", ...}); "not recorded" where neither says."""
    training = {**cm.training, **as_dict(meta.get("training"))}
    commands = training.get("commands")
    if isinstance(commands, list) and commands:
        commands = [str(c) for c in commands]
    else:
        commands = ["weasel run all   # fetch-transformer, convert, fit-suggester, train, tune-threshold,",
                    "                 # evaluate, package, evaluate-package, stage-hub"]
    base = base_model(meta)
    rows = []
    if base:
        rows.append(["base transformer", str(base.get("used")) + (" (offline stand-in)" if base.get("stand_in") else "")])
    rows.append(["spaCy", str(meta.get("spacy_version", "not recorded"))])
    rows += [["requires", str(r)] for r in meta.get("requirements") or []]
    rows += [[str(k), str(v)] for k, v in as_dict(training.get("versions")).items()]
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
    return commands, rows


GROUP_DESCRIPTIONS = {
    "overlapping": "overlap or nest in another gold span",
    "isolated": "share no token with another gold span",
    "same_label": "overlap a gold span of the same label",
    "cross_label": "overlap a gold span of another label",
}


def _shown_path(path: str) -> str:
    """A data path as the card shows it: relative to the project (the working folder), else its last two
    parts; never a user's absolute path."""
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    try:
        return p.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return Path(*p.parts[-2:]).as_posix()


def _evaluation_text(what: str, eval_name: str, prov: Provenance, threshold: Optional[float]) -> Dict[str, str]:
    """The sentence introducing the scores, and the warning when they are optimistic."""
    strict = "in percent; a prediction counts only with the exact start, end and label of a gold span."
    t = f"{threshold:g}" if threshold is not None else "saved"
    on = f" (`{_shown_path(prov.data)}`)" if prov.data else ""
    if prov.heldout:
        return {
            "intro": f"Scores of the {what} on the {eval_name}{on}, held-out data used neither to train the "
                     f"pipeline nor to choose its threshold (chosen on `{_shown_path(prov.tuned_on)}`), {strict}",
            "optimistic": "",
            "limitation": "",
        }
    if prov.heldout is False:
        warning = (f"**These scores are optimistic.** The same dev data chose the threshold ({t}, the best F "
                   "among the thresholds tried) and the training checkpoint kept, and no held-out test set was "
                   "scored: expect lower scores on new text of the same kind.")
        return {"intro": f"Scores of the {what} on the {eval_name}{on}, {strict}", "optimistic": warning,
                "limitation": "The scores above are on the dev data that chose the threshold and the checkpoint, "
                              "so they are optimistic."}
    warning = (f"How the threshold ({t}) was chosen is not recorded with these scores. If it was tuned on this "
               "same data, as `weasel run all` does on dev, the scores are optimistic.")
    return {"intro": f"Scores of the {what} on the {eval_name}{on}, {strict}", "optimistic": warning,
            "limitation": "The scores above may be optimistic: nothing records that the threshold was chosen on "
                          "other data than they were measured on."}


def _example_context(example: Optional[CardExample]) -> Dict[str, Any]:
    if example is None:
        example = CardExample(EXAMPLE_TEXT)
    rows = [[str(s), str(e), lab, text, f"{score:.3f}"] for s, e, lab, text, score in example.spans]
    return {"text": example.text, "rows": rows[:EXAMPLE_ROWS], "more": max(0, len(rows) - EXAMPLE_ROWS)}


def build_card(
    meta: Meta,
    cm: CardMetrics,
    *,
    spancat: Dict[str, Any],
    repo_id: str,
    wheel_name: str,
    license_id: str,
    chart_name: str = CHART_NAME,
    endpoint: str = DEFAULT_ENDPOINT,
    threshold_record: Optional[ThresholdRecord] = None,
    example: Optional[CardExample] = None,
) -> str:
    """Write the model card (README.md) from meta.json and the metrics, through
    huggingface_hub's ModelCard and the template TEMPLATE.

    meta (dict): The packaged pipeline's meta.json.
    cm (CardMetrics): The evaluation of the packaged pipeline (load_metrics).
    spancat (dict): The spancat settings read from the packaged config (read_wheel).
    repo_id (str): "<namespace>/<repo>" the card will live in (for the install lines).
    wheel_name (str): The wheel's real file name.
    license_id (str): The licence var.
    chart_name (str): The per-label F chart uploaded beside the card.
    endpoint (str): The Hub the wheel will be served from (HF_ENDPOINT; huggingface.co by default).
    threshold_record (Optional[ThresholdRecord]): Which data chose the threshold.
    example (Optional[CardExample]): What the wheel returns for the example sentence.
    RETURNS (str): The card, front matter first.
    """
    from huggingface_hub import ModelCard

    spans_key = spancat.get("spans_key", "sc")
    package = package_name(meta)
    labels = spancat_labels(meta, spancat.get("component"))
    prov = provenance(cm, threshold_record)
    data = card_data(meta, cm, license_id, labels, prov.split)
    base = base_model(meta)
    descriptions = dict(LABEL_DESCRIPTIONS)
    descriptions.update({str(k): str(v) for k, v in as_dict(meta.get("label_descriptions")).items()})
    train_counts = _train_counts(meta)
    # evaluate-package scores the installed package, by name; anything else is a folder.
    what = "installed wheel" if cm.model.get("model") == package else "packaged pipeline"
    evaluation = _evaluation_text(what, _eval_name(meta, prov.split), prov, cm.threshold)

    def baseline_row(name: str, m: CardMetrics) -> List[str]:
        return [name] + _prf_cells(m.overall)[:3] + [pct(m.groups.get("overlapping", {}).get("f"), 2)]

    others = []
    if cm.suggester.get("recall") is not None:
        others.append(["suggester recall (ceiling on recall)", pct(cm.suggester["recall"], 2)])
    if isinstance(cm.suggester.get("candidates_per_token"), (int, float)):
        others.append(["candidate spans per token", f"{cm.suggester['candidates_per_token']:.2f}"])
    for key, label in (("docs", "evaluated texts"), ("tokens", "evaluated tokens")):
        if _count(cm.data.get(key)) is not None:
            others.append([label, _fmt_count(cm.data[key])])
    commands, build_rows = _build(meta, cm, spancat)
    limitations = [
        "Trained on the annotated data summarised above; text from other domains, document types or "
        "annotation guidelines will score lower than the evaluation shows.",
        "Scores are strict: a span with a boundary one token off counts as an error.",
        "The suggester proposes only the candidate spans its learned settings allow (see above); "
        "a gold span it never proposes cannot be predicted.",
        "Research use only: not a medical device; do not base clinical decisions on its output without review.",
    ]
    label_check = meta.get("training_data", {}).get("label_check") if isinstance(meta.get("training_data"), dict) else None
    limitations += [f"Train and eval data differ: {w}." for w in (label_check or {}).get("warnings") or []]
    if evaluation["limitation"]:
        limitations.insert(0, evaluation["limitation"])
    if base.get("stand_in"):
        limitations.insert(0, f"The base model is the general-domain stand-in `{base.get('used', STAND_IN)}`, "
                              "not BiomedBERT (see the notice at the top).")
    sources = []
    for s in _data_sources(meta):
        extra = "; ".join(str(s[k]) for k in ("license", "url", "author") if s.get(k))
        sources.append(f"{s['name']}" + (f" ({extra})" if extra else ""))
    card = ModelCard.from_template(
        data,
        template_path=str(TEMPLATE),
        package=package,
        version=meta.get("version"),
        spans_key=spans_key,
        stand_in=bool(base.get("stand_in")),
        requested=base.get("requested"),
        used=base.get("used", STAND_IN),
        label_rows=[[f"`{lab}`", descriptions.get(lab, "(no description recorded)"),
                     f"{train_counts[lab]:,}" if lab in train_counts else "not recorded"] for lab in labels],
        threshold=f"{cm.threshold:g}" if cm.threshold is not None else None,
        label_thresholds=[(lab, f"{t:g}") for lab, t in sorted((spancat.get("label_thresholds") or {}).items())],
        same_label=spancat.get("same_label", "keep"),
        install_url=install_url(repo_id, wheel_name, endpoint),
        repo_id=repo_id,
        wheel_name=wheel_name,
        example=_example_context(example),
        evaluation=evaluation,
        overall_row=["all spans"] + _prf_cells(cm.overall),
        per_label_rows=[[f"`{lab}`"] + (_prf_cells(cm.per_label[lab]) if lab in cm.per_label else ["—", "—", "—", "0"])
                        for lab in labels],
        chart_name=chart_name,
        missing_labels=[lab for lab in labels if lab not in cm.per_label],
        group_rows=[[f"{g}: {GROUP_DESCRIPTIONS.get(g, '')}".rstrip(": ")] + _prf_cells(s) for g, s in cm.groups.items()],
        baseline_rows=([baseline_row(f"{package} (this model)", cm)]
                       + [baseline_row(name, b) for name, b in cm.baselines.items()]) if cm.baselines else [],
        other_rows=others,
        split_rows=_split_rows(meta),
        sources=sources,
        learned_lists=_learned_lists(spancat.get("suggester") or {}),
        commands=commands,
        build_rows=build_rows,
        limitations=limitations,
    )
    # The template's blocks leave runs of blank lines; Markdown needs one.
    return re.sub(r"\n{3,}", "\n\n", str(card.content)).rstrip("\n") + "\n"


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
