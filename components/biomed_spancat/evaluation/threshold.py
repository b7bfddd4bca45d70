"""Tune the span categorizer's decision threshold on dev data.

Like `spacy find-threshold`, it tries thresholds and keeps the one with the
best spans F. Unlike it, the transformer and the span scores run once: every
threshold only re-applies spancat's own `set_annotations` to the same scores,
so trying 19 thresholds costs one pass of the model. The chosen threshold is
written into a copy of the pipeline (its `config.cfg` and the component's
`cfg`), so the packaged pipeline uses it, and recorded as JSON.

`tune_span_filter` goes further (on the same scores, from `predict_scores`): a threshold per label
(coordinate ascent on the overall micro F, labels with few dev spans keep the
global one) and the same-label overlap policy ("keep" or "best"), saved as a
`biomed_span_filter_v1` component after spancat.

Project library code: never imported by a packaged pipeline.
"""

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy
from spacy.language import Language
from spacy.tokens import Doc
from thinc.api import Config
from tqdm import tqdm

from ..pipeline.display import SAME_LABEL_POLICIES, filter_spans
from ..util import find_spancat
from .evaluate import make_pred_doc
from .scoring import score_docs

__all__ = [
    "THRESHOLD_SCHEMA",
    "candidate_thresholds",
    "predict_scores",
    "score_thresholds",
    "choose_threshold",
    "save_with_threshold",
    "tune_threshold",
    "label_counts",
    "choose_label_thresholds",
    "tune_span_filter",
    "save_with_filter",
    "FILTER_NAME",
]
FILTER_NAME = "span_filter"
FILTER_FACTORY = "biomed_span_filter_v1"

THRESHOLD_SCHEMA = "biomed.threshold.v1"
Predicted = Tuple[Any, List[Tuple[List[Doc], Any]]]  # spancat, (predicted docs, scores) per batch


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
    predicted: Optional[Predicted] = None,
) -> List[Dict[str, Any]]:
    """Spans P/R/F on the gold docs for each threshold, with one model pass.

    nlp (Language): The pipeline; its span categorizer writes `spans_key`.
    gold_docs (Sequence[Doc]): The gold docs.
    thresholds (Sequence[Optional[float]]): The thresholds to try.
    spans_key (str): The span group.
    batch_size (int): Docs per batch.
    progress (bool): Show progress bars.
    predicted (Optional[Predicted]): `predict_scores`' output for these docs (None: run the model).
    RETURNS (List[Dict[str, Any]]): One dict per threshold, in order: threshold,
        p, r, f (None when undefined), tp, fp, fn.
    """
    spancat, batches = predicted or predict_scores(nlp, gold_docs, spans_key, batch_size=batch_size,
                                                   progress=progress)
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


def predict_scores(
    nlp: Language, gold_docs: Sequence[Doc], spans_key: str = "sc", *, batch_size: int = 32, progress: bool = True
) -> Predicted:
    """spancat's scores for the gold docs' texts: one pass of the pipeline up to
    spancat, shared by every threshold trial (`score_thresholds`, `tune_threshold`,
    `tune_span_filter` take it as `predicted`).
    RETURNS (Predicted): the span categorizer and (predicted docs, scores) per batch."""
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
    return spancat, batches


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
    predicted: Optional[Predicted] = None,
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
    predicted (Optional[Predicted]): `predict_scores`' output for these docs (None: run the model).
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
    trials = score_thresholds(nlp, gold_docs, tried, spans_key, batch_size=batch_size, progress=progress,
                              predicted=predicted)
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


Counts = Dict[str, List[int]]  # label -> [tp, fp, fn]


def label_counts(
    gold_docs: Sequence[Doc], pred_docs: Sequence[Doc], spans_key: str = "sc", same_label: str = "keep"
) -> Counts:
    """True positives, false positives and false negatives per label (exact
    boundaries and label), after the same-label policy.

    gold_docs (Sequence[Doc]): The gold docs.
    pred_docs (Sequence[Doc]): The predicted docs, aligned with gold_docs.
    spans_key (str): The span group in both.
    same_label (str): "keep" or "best" (`display.filter_spans`).
    RETURNS (Counts): label -> [tp, fp, fn].
    """
    counts: Counts = {}
    for gold, pred in zip(gold_docs, pred_docs):
        want = {(s.start, s.end, s.label_) for s in gold.spans.get(spans_key, [])}
        group = pred.spans.get(spans_key) if spans_key in pred.spans else None
        spans, _ = filter_spans(list(group or []), group.attrs.get("scores") if group is not None else None,
                                None, same_label)
        got = {(s.start, s.end, s.label_) for s in spans}
        for _, _, label in want | got:
            counts.setdefault(label, [0, 0, 0])
        for key in got:
            counts[key[2]][0 if key in want else 1] += 1
        for key in want - got:
            counts[key[2]][2] += 1
    return counts


def _micro(table: Dict[float, Counts], choice: Dict[str, float], labels: Sequence[str]) -> Dict[str, Any]:
    tp = fp = fn = 0
    for label in labels:
        c = table[choice[label]].get(label, [0, 0, 0])
        tp, fp, fn = tp + c[0], fp + c[1], fn + c[2]
    p = tp / (tp + fp) if tp + fp else None
    r = tp / (tp + fn) if tp + fn else None
    f = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return {"p": p, "r": r, "f": f, "tp": tp, "fp": fp, "fn": fn}


def choose_label_thresholds(
    table: Dict[float, Counts], start: float, min_gold: int = 25, rounds: int = 3
) -> Tuple[Dict[str, float], Dict[str, Any]]:
    """A threshold per label that maximises the micro F over all labels.

    Each label's counts depend on its own threshold only (spancat scores labels
    independently), so coordinate ascent from the global threshold finds a
    per-label choice: each round, every label takes the threshold that gives the
    best overall F with the others fixed (on a tie, the one it has). Labels with
    fewer than `min_gold` gold spans keep `start`: too few to tune on.

    table (Dict[float, Counts]): threshold -> `label_counts` at that threshold.
    start (float): The global threshold (a key of table).
    min_gold (int): Gold spans a label needs to get its own threshold.
    rounds (int): Passes over the labels.
    RETURNS (Tuple[Dict[str, float], Dict[str, Any]]): label -> threshold, and the
        micro scores {p, r, f, tp, fp, fn} at that choice.
    """
    thresholds = sorted(table)
    labels = sorted({label for counts in table.values() for label in counts})
    choice = {label: start for label in labels}
    gold = {label: sum(table[start].get(label, [0, 0, 0])[i] for i in (0, 2)) for label in labels}
    tunable = [label for label in labels if gold[label] >= min_gold]
    for _ in range(rounds):
        changed = False
        for label in tunable:
            best_t, best_f = choice[label], _micro(table, choice, labels)["f"] or 0.0
            for t in thresholds:
                f = _micro(table, {**choice, label: t}, labels)["f"] or 0.0
                if f > best_f + 1e-12:
                    best_t, best_f = t, f
            if best_t != choice[label]:
                choice[label], changed = best_t, True
        if not changed:
            break
    return choice, _micro(table, choice, labels)


def tune_span_filter(
    nlp: Language,
    gold_docs: Sequence[Doc],
    spans_key: str = "sc",
    *,
    thresholds: Optional[Sequence[float]] = None,
    same_label: str = "auto",
    per_label: bool = True,
    min_gold: int = 25,
    batch_size: int = 32,
    progress: bool = True,
    predicted: Optional[Predicted] = None,
) -> Dict[str, Any]:
    """Tune the global threshold, a threshold per label and the same-label policy
    on dev with one model pass.

    nlp (Language): The pipeline.
    gold_docs (Sequence[Doc]): Dev docs with gold spans.
    spans_key (str): The span group.
    thresholds (Optional[Sequence[float]]): Thresholds to try (default `candidate_thresholds()`).
    same_label (str): "keep", "best", or "auto" (whichever gives the higher dev F; "keep" on a tie).
    per_label (bool): Tune a threshold per label; False keeps the global one for all.
    min_gold (int): Dev gold spans a label needs to get its own threshold.
    batch_size (int): Docs per batch.
    progress (bool): Show progress bars.
    predicted (Optional[Predicted]): `predict_scores`' output for these docs (None: run the model).
    RETURNS (Dict[str, Any]): global ({threshold, p, r, f, tp, fp, fn}: one
        threshold, every span kept), same_label (the policy chosen), thresholds
        (label -> threshold), dev (micro scores with them), policies (policy ->
        dev F at its best), min_gold.
    """
    if same_label not in SAME_LABEL_POLICIES + ("auto",):
        raise ValueError(f"same_label must be keep, best or auto, got {same_label!r}")
    thresholds = list(thresholds if thresholds is not None else candidate_thresholds())
    if not thresholds:
        raise ValueError("no thresholds to try")
    spancat, batches = predicted or predict_scores(nlp, gold_docs, spans_key, batch_size=batch_size,
                                                   progress=progress)
    pred_docs = [doc for docs, _ in batches for doc in docs]
    policies = SAME_LABEL_POLICIES if same_label == "auto" else (same_label,)
    tables: Dict[str, Dict[float, Counts]] = {p: {} for p in policies}
    original = spancat.cfg.get("threshold")
    try:
        for t in tqdm(thresholds, desc="thresholds", unit="threshold", disable=not progress):
            spancat.cfg["threshold"] = t
            for docs, scores in batches:
                spancat.set_annotations(docs, scores)
            for policy in policies:
                tables[policy][t] = label_counts(gold_docs, pred_docs, spans_key, policy)
    finally:
        spancat.cfg["threshold"] = original
    results: Dict[str, Tuple[Dict[str, float], Dict[str, Any]]] = {}
    global_best: Optional[Dict[str, Any]] = None
    for policy, table in tables.items():
        labels = sorted({label for counts in table.values() for label in counts})
        if not labels or not any(sum(table[thresholds[0]].get(l, [0, 0, 0])[i] for i in (0, 2)) for l in labels):
            raise ValueError(f"no gold spans under doc.spans[{spans_key!r}]: nothing to tune on")
        best = choose_threshold([{"threshold": t, **_micro(table, {label: t for label in labels}, labels)}
                                 for t in thresholds])
        start, start_scores = best["threshold"], {k: v for k, v in best.items() if k != "threshold"}
        if policy == "keep" or global_best is None:
            global_best = best
        if per_label:
            results[policy] = choose_label_thresholds(table, start, min_gold)
        else:
            results[policy] = ({label: start for label in labels}, start_scores)
    chosen = max(policies, key=lambda p: ((results[p][1]["f"] or 0.0), p == "keep"))
    label_thresholds, dev = results[chosen]
    return {
        "global": global_best,
        "same_label": chosen,
        "thresholds": label_thresholds,
        "dev": dev,
        "policies": {p: results[p][1]["f"] for p in policies},
        "per_label": per_label,
        "min_gold": min_gold,
    }


def save_with_filter(
    nlp: Language, span_filter: Dict[str, Any], output_dir: Path, spans_key: str = "sc"
) -> Path:
    """Save a copy of the pipeline with spancat's threshold at the lowest of the
    per-label ones and a `biomed_span_filter_v1` component right after spancat
    that applies the rest (a filter already in the pipeline is replaced).

    nlp (Language): The pipeline; it keeps the filter (spancat's threshold is left as it was).
    span_filter (Dict[str, Any]): `tune_span_filter`'s record (thresholds, same_label).
    output_dir (Path): Where to write the pipeline.
    spans_key (str): The span group.
    RETURNS (Path): output_dir.
    """
    name, _ = find_spancat(nlp, spans_key)
    label_thresholds = span_filter["thresholds"]
    lowest = min(label_thresholds.values())
    config = {"spans_key": spans_key, "thresholds": dict(sorted(label_thresholds.items())),
              "same_label": span_filter["same_label"]}
    existing = [n for n in nlp.pipe_names if nlp.get_pipe_meta(n).factory == FILTER_FACTORY]
    if existing:
        nlp.replace_pipe(existing[0], FILTER_FACTORY, config=config)
    else:
        nlp.add_pipe(FILTER_FACTORY, name=FILTER_NAME, after=name, config=config)
    return save_with_threshold(nlp, lowest, output_dir, spans_key)
