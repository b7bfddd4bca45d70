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

import importlib
import importlib.util
import json
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

import numpy
import spacy
from spacy.language import Language
from spacy.pipeline import SpanCategorizer
from spacy.tokens import Doc, DocBin
from tqdm import tqdm

from .speed import measure_speed

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
    "overlap_groups",
    "score_docs",
    "suggester_recall",
    "find_spancat",
    "load_model",
    "score_raw_text",
    "read_docs",
    "make_pred_doc",
    "predict_docs",
    "evaluate_pipeline",
    "use_device",
    "write_json",
    "pct",
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


def find_spancat(nlp: Language, spans_key: str = "sc") -> Tuple[str, SpanCategorizer]:
    """The pipeline's span categorizer writing to `spans_key`.

    nlp (Language): The pipeline.
    spans_key (str): The span group the component must write.
    RETURNS (Tuple[str, SpanCategorizer]): The component's name and object.
    """
    found = [(name, pipe) for name, pipe in nlp.pipeline if isinstance(pipe, SpanCategorizer)]
    matching = [(name, pipe) for name, pipe in found if pipe.key == spans_key]
    if len(matching) == 1:
        return matching[0]
    have = ", ".join(f"{name} (key {pipe.key!r})" for name, pipe in found) or "none"
    if not matching:
        raise ValueError(
            f"the pipeline has no span categorizer writing doc.spans[{spans_key!r}]; "
            f"span categorizers: {have}; pipeline: {nlp.pipe_names}"
        )
    raise ValueError(f"several span categorizers write doc.spans[{spans_key!r}]: {have}")


def load_model(model: Union[str, Path], config: Optional[Dict[str, Any]] = None) -> Language:
    """Load a pipeline from a directory or an installed package name.

    model (Union[str, Path]): A pipeline directory, or a package such as
        `en_biomed_spancat` (the installed wheel: the artifact that ships).
    config (Optional[Dict[str, Any]]): Dotted config overrides, as spacy.load takes them
        (e.g. {"components.transformer.model.cpu_precision": "float32"}).
    RETURNS (Language): The loaded pipeline.
    """
    path = Path(model)
    if path.exists():
        return load_pipeline_dir(path, config)
    if spacy.util.is_package(str(model)):
        return spacy.load(str(model), config=config or {})
    raise ValueError(
        f"{model}: neither a pipeline directory nor an installed package "
        f"(install the wheel first, e.g. `weasel run package` then `pip install` it)"
    )


def load_pipeline_dir(path: Path, config: Optional[Dict[str, Any]] = None) -> Language:
    """Load a pipeline directory; when it does not load, say which file of
    which component is damaged instead of the deserializer's bare message.

    path (Path): The pipeline directory.
    config (Optional[Dict[str, Any]]): Dotted config overrides.
    RETURNS (Language): The loaded pipeline.
    RAISES (ValueError): Not a pipeline directory, or a file that does not load (named).
    """
    path = Path(path)
    if not (path / "config.cfg").is_file():
        raise ValueError(f"{path}: not a spaCy pipeline directory (no config.cfg)")
    try:
        return spacy.load(path, config=config or {})
    except Exception as err:  # any deserializer's error: find the file
        damaged = find_damaged_file(path)
        if damaged is None:
            raise ValueError(f"{path}: the pipeline does not load ({type(err).__name__}: {err})") from None
        file, why = damaged
        part = file.relative_to(path).parts[0]
        where = f" (component '{part}')" if (path / part).is_dir() and part not in ("vocab", "tokenizer") else ""
        raise ValueError(
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


def read_docs(path: Path, vocab: Any = None) -> List[Doc]:
    """Read the docs of a .spacy DocBin.

    path (Path): The DocBin file.
    vocab (Optional[Vocab]): The vocab to read into (a blank English one if None).
    RETURNS (List[Doc]): The docs, in file order.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    if vocab is None:
        vocab = spacy.blank("en").vocab
    try:
        return list(DocBin().from_disk(path).get_docs(vocab))
    except Exception as err:  # a DocBin that does not parse: say which file
        raise ValueError(f"{path}: not a readable .spacy DocBin ({err})") from err


def make_pred_doc(vocab: Any, gold: Doc) -> Doc:
    """An unannotated doc with exactly the gold doc's tokens.

    Evaluating on the gold tokens means a span is wrong only because the model
    got it wrong, not because the tokenizer cut the text differently.

    vocab (Vocab): The pipeline's vocab.
    gold (Doc): The gold doc.
    RETURNS (Doc): The new doc.
    """
    return Doc(vocab, words=[t.text for t in gold], spaces=[bool(t.whitespace_) for t in gold])


def predict_docs(
    nlp: Language, gold_docs: Sequence[Doc], *, batch_size: int = 32, progress: bool = True
) -> Tuple[List[Doc], float]:
    """Run the pipeline over the gold docs' tokens.

    nlp (Language): The pipeline.
    gold_docs (Sequence[Doc]): The gold docs.
    batch_size (int): Docs per batch.
    progress (bool): Show a progress bar.
    RETURNS (Tuple[List[Doc], float]): The predicted docs and the seconds spent.
    """
    inputs = [make_pred_doc(nlp.vocab, g) for g in gold_docs]
    start = time.perf_counter()
    preds = list(
        tqdm(
            nlp.pipe(inputs, batch_size=batch_size),
            total=len(inputs),
            desc="predicting",
            unit="doc",
            disable=not progress,
        )
    )
    return preds, time.perf_counter() - start


def score_raw_text(
    nlp: Language, gold_docs: Sequence[Doc], spans_key: str = "sc", *, batch_size: int = 32, progress: bool = True
) -> Dict[str, Any]:
    """Score the pipeline as an application runs it: on the raw text, cut by its own tokenizer.

    The main scores use the gold tokens, so that a span is wrong only because the
    model got it wrong. Here a gold span whose boundaries fall inside one of the
    tokenizer's tokens cannot be predicted at all: `tokenizer_ceiling` is the share
    of gold spans whose start and end characters fall on token boundaries, and
    spans are matched by (start_char, end_char, label), strictly.

    nlp (Language): The pipeline.
    gold_docs (Sequence[Doc]): The gold docs (their text is what the pipeline reads).
    spans_key (str): The span group.
    batch_size (int): Docs per batch.
    progress (bool): Show a progress bar.
    RETURNS (Dict[str, Any]): p/r/f and counts, per_label, tokenizer_ceiling, words_per_second.
    """
    start = time.perf_counter()
    preds = tqdm(
        nlp.pipe((g.text for g in gold_docs), batch_size=batch_size),
        total=len(gold_docs),
        desc="predicting raw text",
        unit="doc",
        disable=not progress,
    )
    tp: Counter = Counter()
    fp: Counter = Counter()
    fn: Counter = Counter()
    aligned = n_gold = words = 0
    for gold, pred in zip(gold_docs, preds):
        words += len(pred)
        starts = {t.idx for t in pred}
        ends = {t.idx + len(t) for t in pred}
        want = {(sp.start_char, sp.end_char, sp.label_) for sp in gold.spans.get(spans_key, [])}
        got = {(sp.start_char, sp.end_char, sp.label_) for sp in pred.spans.get(spans_key, [])}
        n_gold += len(want)
        aligned += sum(1 for a, b, _ in want if a in starts and b in ends)
        for key in got & want:
            tp[key[2]] += 1
        for key in got - want:
            fp[key[2]] += 1
        for key in want - got:
            fn[key[2]] += 1
    seconds = time.perf_counter() - start
    labels = sorted(set(tp) | set(fp) | set(fn))
    return {
        **prf(sum(tp.values()), sum(fp.values()), sum(fn.values())),
        "per_label": {lab: prf(tp[lab], fp[lab], fn[lab]) for lab in labels},
        "tokenizer_ceiling": aligned / n_gold if n_gold else None,
        "words": words,
        "seconds": seconds,
        "words_per_second": words / seconds if seconds else None,
    }


def _device_name() -> str:
    from thinc.api import get_current_ops

    return "gpu" if type(get_current_ops()).__name__ == "CupyOps" else "cpu"


def model_info(nlp: Language, model: str, spans_key: str) -> Dict[str, Any]:
    """What was evaluated: the pipeline and its span categorizer's settings."""
    name, spancat = find_spancat(nlp, spans_key)
    pipe_cfg = nlp.config["components"][name]
    threshold = spancat.cfg.get("threshold")
    if isinstance(threshold, float):
        # srsly's JSON reader can return 0.3 as 0.30000000000000004
        threshold = round(threshold, 6)
    return {
        "model": str(model),
        "name": f"{nlp.meta.get('lang', nlp.lang)}_{nlp.meta.get('name', 'pipeline')}",
        "version": nlp.meta.get("version"),
        "pipeline": list(nlp.pipe_names),
        "spans_key": spans_key,
        "component": name,
        "labels": list(spancat.labels),
        "threshold": threshold,
        "max_positive": spancat.cfg.get("max_positive"),
        "suggester": dict(pipe_cfg.get("suggester", {})),
    }


def evaluate_pipeline(
    nlp: Language,
    gold_docs: Sequence[Doc],
    spans_key: str = "sc",
    *,
    model: str = "",
    data: str = "",
    batch_size: int = 32,
    progress: bool = True,
    speed_repeats: int = 3,
    name: Optional[str] = None,
    version: Optional[str] = None,
) -> Tuple[SpanEvaluation, List[Doc]]:
    """Predict with a spancat pipeline and score it: the full metrics.

    The speed figure (`metrics["speed"]`) is `speed.measure_speed` over the
    gold docs' texts, timed apart from the scored pass.

    nlp (Language): The pipeline (its span categorizer writes `spans_key`).
    gold_docs (Sequence[Doc]): The gold docs.
    spans_key (str): The span group.
    model (str): What the pipeline was loaded from, for the record.
    data (str): Where the gold docs came from, for the record.
    batch_size (int): Docs per batch.
    progress (bool): Show progress bars.
    speed_repeats (int): Timed passes of the speed figure; 0 keeps only the
        scored pass's time (no warm-up, gold tokens).
    name (Optional[str]): The package name to record (e.g. "en_biomed_spancat")
        when the pipeline's meta does not carry it yet (before packaging).
    version (Optional[str]): Likewise, the package version.
    RETURNS (Tuple[SpanEvaluation, List[Doc]]): The evaluation (metrics in
        the METRICS_SCHEMA layout) and the predicted docs.
    RAISES (ValueError): No documents to evaluate.
    """
    if not gold_docs:
        raise ValueError(f"{data or 'the data'}: holds no documents: nothing to evaluate")
    info = model_info(nlp, model, spans_key)
    if name:
        info["name"] = name
    if version:
        info["version"] = version
    _, spancat = find_spancat(nlp, spans_key)
    preds, seconds = predict_docs(nlp, gold_docs, batch_size=batch_size, progress=progress)
    result = score_docs(zip(gold_docs, preds), spans_key, progress=progress)
    # The suggester sees the pipeline's own docs (same tokens, its vocab), as
    # at inference; the gold spans are read from the gold docs.
    suggester = suggester_recall(
        spancat.suggester,
        gold_docs,
        spans_key,
        ops=spancat.model.ops,
        input_docs=preds,
        progress=progress,
    )
    result.metrics = assemble_metrics(
        result.metrics,
        model=info,
        data=data,
        suggester=suggester,
        flattening=None,
        seconds=seconds,
        device=_device_name(),
        speed=(
            measure_speed(
                nlp,
                [g.text for g in gold_docs],
                data=data,
                batch_size=batch_size,
                repeats=speed_repeats,
                device=_device_name(),
            )
            if speed_repeats > 0 and gold_docs
            else None
        ),
    )
    return result, preds


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


def use_device(gpu_id: int) -> str:
    """Set up the device for a command: the CPU for -1, else GPU `gpu_id`.

    Uses the project's GPU pre-flight check (`biomed_spancat.gpu.preflight`,
    which names whatever is missing: driver, cupy, torch's CUDA, ...) when
    that module exists, so every command reports GPU problems the same way;
    falls back to spaCy's `require_gpu` otherwise.

    gpu_id (int): -1 for the CPU, or the GPU's index.
    RETURNS (str): "cpu" or "gpu:<id>".
    RAISES (RuntimeError): When a GPU was asked for and cannot be used.
    """
    # The gpu module is another concern's; where it does not exist, fall back.
    if importlib.util.find_spec(f"{__package__}.gpu") is not None:
        importlib.import_module(f"{__package__}.gpu").preflight(gpu_id)
    elif gpu_id >= 0:
        try:
            spacy.require_gpu(gpu_id)
        except Exception as err:
            raise RuntimeError(
                f"--gpu-id {gpu_id}: no usable GPU ({err}); use --gpu-id -1 for the CPU"
            ) from err
    return "cpu" if gpu_id < 0 else f"gpu:{gpu_id}"


def write_json(data: Any, path: Path) -> Path:
    """Write JSON (UTF-8, indented) atomically: to a temp file, then renamed.

    data (Any): JSON-serialisable data.
    path (Path): The output file; parent folders are created.
    RETURNS (Path): The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf8")
    tmp.replace(path)
    return path


def pct(x: Optional[float], digits: int = 1) -> str:
    """A share as a percentage for tables and messages: "—" where there was nothing to score."""
    return "—" if x is None else f"{100 * float(x):.{digits}f}"


def headline(metrics: Dict[str, Any]) -> str:
    """One line of a metrics document: spans P/R/F, then F on overlapping and isolated spans."""
    spans, groups = metrics["spans"], metrics["groups"]
    return (
        f"spans P {pct(spans['p'])} R {pct(spans['r'])} F {pct(spans['f'])}; "
        f"overlapping F {pct(groups['overlapping']['f'])}, isolated F {pct(groups['isolated']['f'])}"
    )
