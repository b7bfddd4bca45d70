"""Tune the span categorizer's decision threshold on dev data.

Like `spacy find-threshold`, it tries thresholds and keeps the one with the
best spans F. Unlike it, the transformer and the span scores run once: every
threshold only re-applies spancat's own `set_annotations` to the same scores,
so trying 19 thresholds costs one pass of the model. The chosen threshold is
written into a copy of the pipeline (its `config.cfg` and the component's
`cfg`), so the packaged pipeline uses it, and recorded as JSON.

Project library code: never imported by a packaged pipeline.
"""

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy
from spacy.language import Language
from spacy.tokens import Doc
from thinc.api import Config
from tqdm import tqdm

from .evaluate import make_pred_doc
from .scoring import score_docs
from ..util import find_spancat

__all__ = [
    "THRESHOLD_SCHEMA",
    "candidate_thresholds",
    "score_thresholds",
    "choose_threshold",
    "save_with_threshold",
    "tune_threshold",
]

THRESHOLD_SCHEMA = "biomed.threshold.v1"


def candidate_thresholds(beg: float = 0.05, end: float = 0.95, n_trials: int = 19) -> List[float]:
    """Evenly spaced thresholds from `beg` to `end`, both included.

    beg (float): The lowest threshold.
    end (float): The highest threshold.
    n_trials (int): How many thresholds (at least 1).
    RETURNS (List[float]): The thresholds, ascending, rounded to 6 places.
    """
    if not 0.0 <= beg <= end <= 1.0:
        raise ValueError(f"thresholds must satisfy 0 <= beg ({beg}) <= end ({end}) <= 1")
    if n_trials < 1:
        raise ValueError(f"n_trials ({n_trials}) must be at least 1")
    return [round(float(t), 6) for t in numpy.linspace(beg, end, n_trials)]


def _drop_features(doc: Doc) -> None:
    """Free the upstream features (transformer output, tensor) held by a doc
    once spancat has scored it, so tuning on a large dev set stays small."""
    if doc.has_extension("trf_data"):
        doc._.trf_data = None
    doc.tensor = numpy.zeros((0,), dtype="f")


def score_thresholds(
    nlp: Language,
    gold_docs: Sequence[Doc],
    thresholds: Sequence[Optional[float]],
    spans_key: str = "sc",
    *,
    batch_size: int = 32,
    progress: bool = True,
) -> List[Dict[str, Any]]:
    """Spans P/R/F on the gold docs for each threshold, with one model pass.

    nlp (Language): The pipeline; its span categorizer writes `spans_key`.
    gold_docs (Sequence[Doc]): The gold docs.
    thresholds (Sequence[Optional[float]]): The thresholds to try.
    spans_key (str): The span group.
    batch_size (int): Docs per batch.
    progress (bool): Show progress bars.
    RETURNS (List[Dict[str, Any]]): One dict per threshold, in order: threshold,
        p, r, f (None when undefined), tp, fp, fn.
    """
    name, spancat = find_spancat(nlp, spans_key)
    upstream = []
    for pipe_name, proc in nlp.pipeline:
        if pipe_name == name:
            break
        upstream.append(proc)
    batches: List[Tuple[List[Doc], Any]] = []
    bar = tqdm(total=len(gold_docs), desc="scoring spans", unit="doc", disable=not progress)
    for b in range(0, len(gold_docs), batch_size):
        docs = [make_pred_doc(nlp.vocab, g) for g in gold_docs[b : b + batch_size]]
        for proc in upstream:
            docs = list(proc.pipe(docs)) if hasattr(proc, "pipe") else [proc(d) for d in docs]
        batches.append((docs, spancat.predict(docs)))
        for doc in docs:
            _drop_features(doc)
        bar.update(len(docs))
    bar.close()
    pred_docs = [doc for docs, _ in batches for doc in docs]
    original = spancat.cfg.get("threshold")
    trials: List[Dict[str, Any]] = []
    try:
        for t in tqdm(thresholds, desc="thresholds", unit="threshold", disable=not progress):
            spancat.cfg["threshold"] = t
            for docs, scores in batches:
                spancat.set_annotations(docs, scores)
            s = score_docs(zip(gold_docs, pred_docs), spans_key).metrics["spans"]
            trials.append({"threshold": t, **{k: s[k] for k in ("p", "r", "f", "tp", "fp", "fn")}})
    finally:
        spancat.cfg["threshold"] = original
    return trials


def choose_threshold(trials: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """The trial with the highest F; on a tie the first (lowest threshold when
    the trials are ascending), as `spacy find-threshold` picks.

    trials (Sequence[Dict[str, Any]]): Output of `score_thresholds`.
    RETURNS (Dict[str, Any]): The chosen trial.
    """
    scored = [t for t in trials if t["f"] is not None]
    if not scored:
        raise ValueError(
            "no threshold gives a defined F (no gold spans, and no predictions "
            "at any threshold): nothing to tune on"
        )
    best = scored[0]
    for t in scored[1:]:
        if t["f"] > best["f"]:
            best = t
    return best


def save_with_threshold(nlp: Language, threshold: float, output_dir: Path, spans_key: str = "sc") -> Path:
    """Save a copy of the pipeline whose span categorizer uses `threshold`.

    Both places a loaded pipeline reads it from are set: the component's
    `cfg` (restored by `from_disk`) and `config.cfg` (what `spacy package`
    and a reader of the config see).

    nlp (Language): The pipeline.
    threshold (float): The threshold to save.
    output_dir (Path): Where to write the pipeline.
    spans_key (str): Identifies the span categorizer.
    RETURNS (Path): output_dir.
    """
    name, spancat = find_spancat(nlp, spans_key)
    original = spancat.cfg.get("threshold")
    spancat.cfg["threshold"] = threshold
    output_dir = Path(output_dir)
    try:
        nlp.to_disk(output_dir)
    finally:
        spancat.cfg["threshold"] = original
    config_path = output_dir / "config.cfg"
    config = Config().from_disk(config_path, interpolate=False)
    config["components"][name]["threshold"] = threshold
    config.to_disk(config_path, interpolate=False)
    return output_dir


def tune_threshold(
    nlp: Language,
    gold_docs: Sequence[Doc],
    output_dir: Optional[Path] = None,
    spans_key: str = "sc",
    *,
    thresholds: Optional[Sequence[float]] = None,
    model: str = "",
    data: str = "",
    batch_size: int = 32,
    progress: bool = True,
) -> Dict[str, Any]:
    """Pick the threshold with the best spans F on the gold docs and save a
    copy of the pipeline that uses it.

    nlp (Language): The pipeline.
    gold_docs (Sequence[Doc]): Dev docs with gold spans.
    output_dir (Optional[Path]): Where to save the tuned pipeline (None: don't).
    spans_key (str): The span group.
    thresholds (Optional[Sequence[float]]): Thresholds to try
        (default `candidate_thresholds()`: 0.05 to 0.95 by 0.05).
    model (str): Where the pipeline came from, for the record.
    data (str): Where the docs came from, for the record.
    batch_size (int): Docs per batch.
    progress (bool): Show progress bars.
    RETURNS (Dict[str, Any]): The record written to metrics/threshold.json:
        schema, model, data, spans_key, component, default_threshold,
        default ({threshold, p, r, f, tp, fp, fn} at the pipeline's own
        threshold), threshold (the chosen one), best (its trial), trials, output.
    """
    name, spancat = find_spancat(nlp, spans_key)
    if thresholds is None:
        thresholds = candidate_thresholds()
    if not thresholds:
        raise ValueError("no thresholds to try")
    default = spancat.cfg.get("threshold")
    tried = list(thresholds) + [default]
    trials = score_thresholds(nlp, gold_docs, tried, spans_key, batch_size=batch_size, progress=progress)
    default_trial, trials = trials[-1], trials[:-1]
    if default_trial["tp"] + default_trial["fn"] == 0:
        raise ValueError(
            f"no gold spans under doc.spans[{spans_key!r}] in {data or 'the data'}: "
            "nothing to tune the threshold on"
        )
    best = choose_threshold(trials)
    if output_dir is not None:
        save_with_threshold(nlp, best["threshold"], output_dir, spans_key)
    return {
        "schema": THRESHOLD_SCHEMA,
        "model": model,
        "data": data,
        "spans_key": spans_key,
        "component": name,
        "default_threshold": default,
        "default": default_trial,
        "threshold": best["threshold"],
        "best": best,
        "trials": trials,
        "output": str(output_dir) if output_dir is not None else None,
    }
