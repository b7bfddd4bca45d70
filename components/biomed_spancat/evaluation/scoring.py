"""Overlap-aware span evaluation: the numbers behind `metrics/*.json`.

spaCy's own scorer gives one strict P/R/F for a span key. That hides what
users chose spans for: gold spans that overlap or nest in one another. This
module scores predicted against gold span groups strictly (same start, end
and label) and breaks the result down by overlap, by label, by span length,
by kind of error, and against the ceiling the suggester puts on recall. It
works on plain (gold Doc, predicted Doc) pairs, so the BIO baseline, whose
predictions do not come from spancat, is scored by exactly the same code.

Project library code: never imported by a packaged pipeline.
"""
import statistics
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy
from spacy.tokens import Doc
from tqdm import tqdm

from ..util import pct

__all__ = [
    "METRICS_SCHEMA",
    "GROUPS",
    "ERROR_KINDS",
    "LENGTH_BUCKETS",
    "SpanKey",
    "DocResult",
    "SpanEvaluation",
    "doc_spans",
    "prf",
    "length_bucket",
    "overlap_groups",
    "score_docs",
    "suggester_recall",
    "assemble_metrics",
    "headline",
]

# (start token, end token, label) — the strict identity of a span.
SpanKey = Tuple[int, int, str]
PRF = Dict[str, Optional[float]]

METRICS_SCHEMA = "biomed.metrics.v1"
# Breakdown groups, defined on gold spans (see `overlap_groups`).
GROUPS = ("overlapping", "isolated", "same_label", "cross_label")
# What each false positive is (a partition of the FPs), plus missed gold spans.
ERROR_KINDS = ("label", "boundary", "boundary_and_label", "spurious", "missed")
# Span lengths in tokens; the last bucket holds everything longer.
LENGTH_BUCKETS = ("1", "2", "3", "4", "5+")
SCORE_BINS = 20


def prf(tp: int, fp: int, fn: int) -> PRF:
    """Precision, recall and F1 from counts, with undefined values as None.

    A ratio with a zero denominator is None rather than 0.0: a group with no
    gold spans has no recall, which is not the same as a recall of zero. F is
    2TP / (2TP + FP + FN), so it is 0.0 when the model predicts nothing for
    gold spans (or only wrong spans), and None only with neither gold nor
    predicted spans.

    tp (int): True positives.
    fp (int): False positives.
    fn (int): False negatives.
    RETURNS (Dict[str, Optional[float]]): Keys tp, fp, fn, gold (tp+fn),
        pred (tp+fp), p, r, f; p/r/f are fractions in [0, 1] or None.
    """
    p = tp / (tp + fp) if tp + fp else None
    r = tp / (tp + fn) if tp + fn else None
    # 2TP / (2TP + FP + FN): the harmonic mean of P and R where both exist, and
    # 0.0 (not undefined) for a label the model never predicts, or only invents.
    f = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return {"tp": tp, "fp": fp, "fn": fn, "gold": tp + fn, "pred": tp + fp, "p": p, "r": r, "f": f}


def length_bucket(start: int, end: int) -> str:
    """The LENGTH_BUCKETS name of a span of end - start tokens."""
    n = end - start
    return str(n) if n < len(LENGTH_BUCKETS) else LENGTH_BUCKETS[-1]


def overlap_groups(spans: Iterable[SpanKey]) -> Dict[SpanKey, Set[str]]:
    """Put each span of one set (gold, or predicted) into the breakdown groups.

    A span is `overlapping` when it shares a token with another span of the
    same set (nested, crossing, or the same extent with another label),
    otherwise `isolated`. An overlapping span is also `same_label` when one of
    the spans it overlaps has its label, and `cross_label` when one has
    another label; it can be both.

    spans (Iterable[SpanKey]): Distinct (start, end, label) triples of one doc.
    RETURNS (Dict[SpanKey, Set[str]]): The groups of each span.
    """
    # A sweep over spans sorted by start: each span meets only the spans that
    # start before it ends, so thousands of low-threshold predictions per doc
    # stay cheap (the pairwise loop was quadratic).
    ordered = sorted(set(spans))
    out: Dict[SpanKey, Set[str]] = {s: set() for s in ordered}
    for i, s in enumerate(ordered):
        for o in ordered[i + 1 :]:
            if o[0] >= s[1]:
                break
            kind = "same_label" if o[2] == s[2] else "cross_label"
            out[s].update(("overlapping", kind))
            out[o].update(("overlapping", kind))
    for s, groups in out.items():
        if not groups:
            groups.add("isolated")
    return out


@dataclass
class DocResult:
    """What the scorer found in one document (used by the report).

    index (int): Position of the doc in the evaluated data.
    tp (List[SpanKey]): Predicted spans that match a gold span exactly.
    fp (Dict[SpanKey, str]): Wrong predictions and their ERROR_KINDS kind.
    fn (Dict[SpanKey, str]): Missed gold spans: "missed" (no prediction
        touches it) or "touched" (a wrong prediction shares a token with it).
    """

    index: int
    tp: List[SpanKey] = field(default_factory=list)
    fp: Dict[SpanKey, str] = field(default_factory=dict)
    fn: Dict[SpanKey, str] = field(default_factory=dict)

    @property
    def n_errors(self) -> int:
        return len(self.fp) + len(self.fn)


@dataclass
class SpanEvaluation:
    """The result of scoring: JSON-ready metrics plus per-doc details.

    metrics (Dict[str, Any]): The metrics (schema in `score_docs`).
    docs (List[DocResult]): One entry per evaluated doc, in order.
    """

    metrics: Dict[str, Any]
    docs: List[DocResult]


def doc_spans(doc: Doc, spans_key: str, with_scores: bool = False) -> Dict[SpanKey, Optional[float]]:
    """The distinct spans of a doc's span group, with their scores.

    doc (Doc): The doc.
    spans_key (str): The span group; a missing group means no spans.
    with_scores (bool): Read the group's `attrs["scores"]` (ignored when
        their number differs from the number of spans).
    RETURNS (Dict[SpanKey, Optional[float]]): (start, end, label) -> score
        (None without scores); a duplicate span keeps its best score.
    """
    if spans_key not in doc.spans:
        return {}
    group = doc.spans[spans_key]
    scores = group.attrs.get("scores") if with_scores else None
    if scores is not None and len(scores) != len(group):
        scores = None
    out: Dict[SpanKey, Optional[float]] = {}
    for i, span in enumerate(group):
        key = (span.start, span.end, span.label_)
        score = float(scores[i]) if scores is not None else None
        # A duplicate span counts once; keep its best score.
        if key not in out or (score is not None and (out[key] is None or score > out[key])):
            out[key] = score
    return out


def _classify_fp(span: SpanKey, gold: Iterable[SpanKey]) -> str:
    """The kind of a false positive, checked in this order: `label` (a gold
    span has its exact extent), `boundary` (a gold span of its label shares a
    token), `boundary_and_label` (a gold span of another label shares a token),
    `spurious` (no gold span shares a token)."""
    touching = [g for g in gold if g[0] < span[1] and span[0] < g[1]]
    if any(g[:2] == span[:2] for g in touching):
        return "label"
    if any(g[2] == span[2] for g in touching):
        return "boundary"
    if touching:
        return "boundary_and_label"
    return "spurious"


def _score_summary(scores: List[float]) -> Dict[str, Any]:
    """Count, mean, median and a histogram over [0, 1] of some span scores."""
    hist, _ = numpy.histogram(numpy.clip(scores, 0.0, 1.0), bins=SCORE_BINS, range=(0.0, 1.0))
    return {
        "count": len(scores),
        "mean": float(numpy.mean(scores)) if scores else None,
        "median": float(statistics.median(scores)) if scores else None,
        "histogram": [int(x) for x in hist],
    }


def score_docs(
    pairs: Iterable[Tuple[Doc, Doc]],
    spans_key: str = "sc",
    *,
    progress: bool = False,
) -> SpanEvaluation:
    """Score predicted against gold spans, strictly, with the overlap breakdowns.

    Spans are compared as (start, end, label) on the tokens of each pair, so
    the predicted doc must have the gold doc's tokens (`make_pred_doc`).
    Duplicate spans count once.

    Groups: each gold span gets its groups from `overlap_groups` over the gold
    spans. Each predicted span is put into groups so that precision and recall
    of a group count the same true positives: a true positive takes the groups
    of the gold span it matches; a false positive takes the union of the
    groups of the gold spans it shares a token with, and when it touches no
    gold span, its groups among the predicted spans (so spurious overlapping
    predictions cost precision on `overlapping`).

    pairs (Iterable[Tuple[Doc, Doc]]): (gold, predicted) docs.
    spans_key (str): The span group to compare.
    progress (bool): Show a progress bar.
    RETURNS (SpanEvaluation): metrics with keys `spans` (overall PRF),
        `per_label` (label -> PRF), `groups` (GROUPS name -> PRF), `errors`
        (ERROR_KINDS -> count), `by_length` (LENGTH_BUCKETS -> PRF), `scores`
        ({"bins", "tp", "fp"} score summaries, None when the predictions
        carry no scores), `counts` (docs, tokens, gold_spans, pred_spans);
        and the per-doc results.
    """
    counts = {"tp": 0, "fp": 0, "fn": 0}
    per_label: Dict[str, Dict[str, int]] = {}
    groups = {g: {"tp": 0, "fp": 0, "fn": 0} for g in GROUPS}
    by_length = {b: {"tp": 0, "fp": 0, "fn": 0} for b in LENGTH_BUCKETS}
    errors = {k: 0 for k in ERROR_KINDS}
    tp_scores: List[float] = []
    fp_scores: List[float] = []
    has_scores = False
    n_docs = n_tokens = 0
    docs: List[DocResult] = []
    pairs = list(pairs)
    for i, (gold_doc, pred_doc) in enumerate(tqdm(pairs, desc="scoring", unit="doc", disable=not progress)):
        if len(gold_doc) != len(pred_doc) or any(g.text != p.text for g, p in zip(gold_doc, pred_doc)):
            raise ValueError(
                f"doc {i}: the predicted doc's tokens differ from the gold doc's "
                f"({len(pred_doc)} vs {len(gold_doc)} tokens): build it with make_pred_doc"
            )
        n_docs += 1
        n_tokens += len(gold_doc)
        gold = set(doc_spans(gold_doc, spans_key, with_scores=False))
        pred_scores = doc_spans(pred_doc, spans_key, with_scores=True)
        pred = set(pred_scores)
        gold_groups = overlap_groups(gold)
        pred_groups = overlap_groups(pred)
        # Per-token indexes, so "which gold spans does this prediction touch"
        # and "does any prediction touch this gold span" cost the span's length.
        gold_at: List[List[SpanKey]] = [[] for _ in range(len(gold_doc))]
        for g in gold:
            for t in range(g[0], g[1]):
                gold_at[t].append(g)
        pred_covers = [False] * len(gold_doc)
        for p_span in pred:
            for t in range(p_span[0], p_span[1]):
                pred_covers[t] = True
        result = DocResult(index=i)
        for label in {s[2] for s in gold | pred}:
            per_label.setdefault(label, {"tp": 0, "fp": 0, "fn": 0})
        for span in sorted(pred):
            score = pred_scores[span]
            has_scores = has_scores or score is not None
            bucket = length_bucket(span[0], span[1])
            if span in gold:
                kind = "tp"
                result.tp.append(span)
                span_groups = gold_groups[span]
                if score is not None:
                    tp_scores.append(score)
            else:
                kind = "fp"
                touched = list({g for t in range(span[0], span[1]) for g in gold_at[t]})
                result.fp[span] = _classify_fp(span, touched)
                errors[result.fp[span]] += 1
                span_groups = (
                    set().union(*(gold_groups[g] for g in touched)) if touched else pred_groups[span]
                )
                # Touching an overlapping gold span outranks touching an isolated one.
                if "overlapping" in span_groups:
                    span_groups = span_groups - {"isolated"}
                if score is not None:
                    fp_scores.append(score)
            counts[kind] += 1
            per_label[span[2]][kind] += 1
            by_length[bucket][kind] += 1
            for g in span_groups:
                groups[g][kind] += 1
        for span in sorted(gold - pred):
            touched_by_pred = any(pred_covers[span[0] : span[1]])
            result.fn[span] = "touched" if touched_by_pred else "missed"
            if not touched_by_pred:
                errors["missed"] += 1
            counts["fn"] += 1
            per_label[span[2]]["fn"] += 1
            by_length[length_bucket(span[0], span[1])]["fn"] += 1
            for g in gold_groups[span]:
                groups[g]["fn"] += 1
        docs.append(result)
    metrics: Dict[str, Any] = {
        "spans": prf(**counts),
        "per_label": {label: prf(**c) for label, c in sorted(per_label.items())},
        "groups": {g: prf(**c) for g, c in groups.items()},
        "errors": errors,
        "by_length": {b: prf(**c) for b, c in by_length.items()},
        "scores": (
            {
                "bins": [round(x, 6) for x in numpy.linspace(0.0, 1.0, SCORE_BINS + 1).tolist()],
                "tp": _score_summary(tp_scores),
                "fp": _score_summary(fp_scores),
            }
            if has_scores
            else None
        ),
        "counts": {
            "docs": n_docs,
            "tokens": n_tokens,
            "gold_spans": counts["tp"] + counts["fn"],
            "pred_spans": counts["tp"] + counts["fp"],
        },
    }
    return SpanEvaluation(metrics=metrics, docs=docs)


def suggester_recall(
    suggester: Any,
    gold_docs: Sequence[Doc],
    spans_key: str = "sc",
    *,
    ops: Any = None,
    input_docs: Optional[Sequence[Doc]] = None,
    batch_size: int = 64,
    progress: bool = False,
) -> Dict[str, Any]:
    """How many gold spans the suggester proposes: the ceiling on spancat recall.

    A gold span is covered when its (start, end) is among the candidates;
    labels play no part, since spancat labels every candidate.

    suggester (Callable): A spaCy suggester, `suggester(docs, ops=ops) -> Ragged`.
    gold_docs (Sequence[Doc]): The docs with gold spans (only tokens are read).
    spans_key (str): The gold span group.
    ops (Optional[Ops]): The ops to run the suggester with.
    input_docs (Optional[Sequence[Doc]]): Docs with the same tokens to run the
        suggester on instead of the gold docs (e.g. in the pipeline's vocab).
    batch_size (int): Docs per suggester call.
    progress (bool): Show a progress bar.
    RETURNS (Dict[str, Any]): recall (None with no gold spans), covered,
        gold_spans, candidates, candidates_per_token, per_label
        (label -> {recall, covered, gold_spans}).
    """
    covered = total = candidates = tokens = 0
    per_label: Dict[str, List[int]] = {}
    bar = tqdm(total=len(gold_docs), desc="suggester recall", unit="doc", disable=not progress)
    for b in range(0, len(gold_docs), batch_size):
        batch = list(gold_docs[b : b + batch_size])
        seen = list(input_docs[b : b + batch_size]) if input_docs is not None else batch
        ragged = suggester(seen, ops=ops)
        data = ragged.dataXd
        data = data.get() if hasattr(data, "get") else numpy.asarray(data)  # cupy -> numpy
        lengths = numpy.asarray(ragged.lengths.get() if hasattr(ragged.lengths, "get") else ragged.lengths)
        offset = 0
        for doc, n in zip(batch, lengths.tolist()):
            rows = data[offset : offset + n] if n else numpy.zeros((0, 2), dtype="i")
            offset += n
            suggested = {(int(s), int(e)) for s, e in rows}
            candidates += len(suggested)
            tokens += len(doc)
            for span in doc_spans(doc, spans_key, with_scores=False):
                hit = span[:2] in suggested
                total += 1
                covered += hit
                c = per_label.setdefault(span[2], [0, 0])
                c[0] += hit
                c[1] += 1
        bar.update(len(batch))
    bar.close()
    return {
        "recall": covered / total if total else None,
        "covered": covered,
        "gold_spans": total,
        "candidates": candidates,
        "candidates_per_token": candidates / tokens if tokens else None,
        "per_label": {
            label: {"recall": c / n if n else None, "covered": c, "gold_spans": n}
            for label, (c, n) in sorted(per_label.items())
        },
    }


def assemble_metrics(
    scored: Dict[str, Any],
    *,
    model: Dict[str, Any],
    data: str,
    suggester: Optional[Dict[str, Any]],
    flattening: Optional[Dict[str, Any]],
    seconds: float,
    device: str,
    training: Optional[Dict[str, Any]] = None,
    speed: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Put the scorer's output and its context into the METRICS_SCHEMA layout.

    speed (Optional[Dict[str, Any]]): A `speed.measure_speed` record; without
        one, the speed is the scored pass's (`seconds` over its words), marked
        so in `speed.timed`.

    RETURNS (Dict[str, Any]): The metrics document written to metrics/*.json.
    """
    words = scored["counts"]["tokens"]
    return {
        "schema": METRICS_SCHEMA,
        "model": model,
        "data": {"path": data, **scored["counts"]},
        "spans": scored["spans"],
        "per_label": scored["per_label"],
        "groups": scored["groups"],
        "errors": scored["errors"],
        "by_length": scored["by_length"],
        "suggester": suggester,
        "flattening": flattening,
        "scores": scored["scores"],
        "speed": speed
        or {
            "device": device,
            "seconds": seconds,
            "words": words,
            "words_per_second": words / seconds if seconds > 0 else None,
            "timed": None,
        },
        "training": training,
    }


def headline(metrics: Dict[str, Any]) -> str:
    """One line of a metrics document: spans P/R/F, then F on overlapping and isolated spans."""
    spans, groups = metrics["spans"], metrics["groups"]
    return (
        f"spans P {pct(spans['p'])} R {pct(spans['r'])} F {pct(spans['f'])}; "
        f"overlapping F {pct(groups['overlapping']['f'])}, isolated F {pct(groups['isolated']['f'])}"
    )
