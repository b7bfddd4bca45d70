"""Routing scored tasks by the thresholds (silver, review, over budget) and
writing them: the silver DocBin and the review JSONL, sorted most uncertain
first in bounded memory (sorted runs spilled to disk, merged at the end).
"""
import heapq
import json
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Dict, Iterable, Iterator, List, Optional, Tuple

from spacy.tokens import Doc, DocBin, Span, SpanGroup
from spacy.vocab import Vocab

from .records import SCORE_DECIMALS, AssistError, Task, input_hash, task_hash

__all__ = ["ROUTES", "ORDERING", "Thresholds", "RoutedTask", "route_task", "ReviewQueue", "SilverWriter", "write_routes"]

ROUTES = ("silver", "review", "over_budget")
ORDERING = (
    "margin ascending, where a task's margin is the smallest |score - pivot| over its uncertain "
    "spans (low <= score < high) and pivot is the pipeline's spancat threshold when it lies in "
    "[low, high), else (low + high) / 2; ties: more uncertain spans first, then input order"
)


# --- settings ----------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    """Where a span score sends a span.

    high (float): Spans scoring at least this are kept (confident).
    low (float): Spans scoring below this are dropped; `[low, high)` is uncertain.
    pivot (Optional[float]): The score a span is least certain at, for the
        review order; None uses the middle of the band.
    """

    high: float
    low: float
    pivot: Optional[float] = None

    def __post_init__(self) -> None:
        for name in ("high", "low"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise AssistError(f"the {name} threshold must be a number, got {value!r}")
        if not 0.0 < self.low <= self.high <= 1.0:
            raise AssistError(
                f"thresholds must satisfy 0 < low ({self.low}) <= high ({self.high}) <= 1: spans at or "
                "above high are kept, below low dropped (low = 0 would keep every candidate span)"
            )

    @property
    def center(self) -> float:
        """RETURNS (float): The pivot of the review order."""
        return self.pivot if self.pivot is not None else (self.low + self.high) / 2

    def with_pipeline_threshold(self, threshold: Optional[float]) -> "Thresholds":
        """Use the pipeline's decision threshold as the pivot when it is in the band.

        threshold (Optional[float]): The spancat threshold the pipeline was tuned to.
        RETURNS (Thresholds): The same thresholds with the pivot set.
        """
        if self.pivot is None and threshold is not None and self.low <= threshold < self.high:
            return Thresholds(self.high, self.low, float(threshold))
        return self


# --- routing -----------------------------------------------------------------


@dataclass
class RoutedTask:
    """A task and where it goes.

    route (str): "silver" or "review".
    task (Task): The task with the spans that go with it and its `_task_hash`.
    margin (Optional[float]): The review order's key (None for silver).
    n_kept (int): Spans scoring >= high.
    n_uncertain (int): Spans in [low, high).
    n_dropped (int): Spans scoring < low (dropped).
    """

    route: str
    task: Task
    margin: Optional[float]
    n_kept: int
    n_uncertain: int
    n_dropped: int


def route_task(task: Task, thresholds: Thresholds) -> RoutedTask:
    """Route one scored task by the thresholds.

    task (Task): A task whose spans carry `score`.
    thresholds (Thresholds): High, low and the pivot of the review order.
    RETURNS (RoutedTask): "silver" (no uncertain span; the task keeps only
        its spans >= high) or "review" (kept and uncertain spans), with its margin.
    RAISES (AssistError): A span without a numeric score.
    """
    kept: List[Dict[str, Any]] = []
    uncertain: List[Dict[str, Any]] = []
    dropped = 0
    for k, span in enumerate(task.get("spans") or []):
        score = span.get("score")
        if isinstance(score, bool) or not isinstance(score, (int, float)):
            raise AssistError(f"span {k} ({span.get('label')}) of task {task.get('_input_hash')} has no numeric 'score'")
        if score >= thresholds.high:
            kept.append(span)
        elif score >= thresholds.low:
            uncertain.append(span)
        else:
            dropped += 1
    routed = dict(task)
    margin: Optional[float] = None
    if uncertain:
        route = "review"
        routed["spans"] = [s for s in task["spans"] if s["score"] >= thresholds.low]
        # Rounded, so that float noise (0.52 - 0.5 vs 0.5 - 0.48) does not break ties.
        margin = round(min(abs(s["score"] - thresholds.center) for s in uncertain), SCORE_DECIMALS + 2)
        routed["meta"] = {**task.get("meta", {}), "margin": margin}
    else:
        route = "silver"
        routed["spans"] = kept
    ih = routed.get("_input_hash")
    if ih is None:
        ih = routed["_input_hash"] = input_hash(routed["text"])
    routed["_task_hash"] = task_hash(ih, routed["spans"])
    return RoutedTask(route, routed, margin, len(kept), len(uncertain), dropped)


# --- writing -----------------------------------------------------------------


class ReviewQueue:
    """The review tasks, sorted by (margin, -uncertain spans, input order) in
    bounded memory: up to `run_size` lines are sorted in memory, then spilled
    as a sorted run to a temporary file; `sorted_lines` merges the runs.

    tmp_dir (Path): Where the runs go (removed by the caller).
    run_size (int): Tasks held in memory before a run is spilled.
    """

    def __init__(self, tmp_dir: Path, run_size: int = 10000) -> None:
        if run_size < 1:
            raise AssistError(f"run_size must be at least 1, got {run_size}")
        self.tmp_dir = Path(tmp_dir)
        self.run_size = run_size
        self.buffer: List[Tuple[Tuple[float, int, int], str]] = []
        self.runs: List[Path] = []
        self.count = 0

    def add(self, margin: float, n_uncertain: int, seq: int, line: str) -> None:
        """Queue one task's JSON line under its sort key."""
        self.buffer.append(((margin, -n_uncertain, seq), line))
        self.count += 1
        if len(self.buffer) >= self.run_size:
            self._spill()

    def _spill(self) -> None:
        self.buffer.sort(key=lambda item: item[0])
        path = self.tmp_dir / f"run-{len(self.runs):05d}.txt"
        with path.open("w", encoding="utf8") as f:
            for key, line in self.buffer:
                # JSON escapes tabs inside strings, so the first tab ends the key.
                f.write(json.dumps(list(key)) + "\t" + line + "\n")
        self.runs.append(path)
        self.buffer = []

    @staticmethod
    def _read_run(path: Path) -> Iterator[Tuple[Tuple[float, int, int], str]]:
        with path.open("r", encoding="utf8") as f:
            for raw in f:
                key, line = raw.rstrip("\n").split("\t", 1)
                margin, neg, seq = json.loads(key)
                yield (float(margin), int(neg), int(seq)), line

    def sorted_lines(self) -> Iterator[str]:
        """YIELDS (str): The queued lines, most uncertain first."""
        self.buffer.sort(key=lambda item: item[0])
        streams: List[Iterable[Tuple[Tuple[float, int, int], str]]] = [self._read_run(p) for p in self.runs]
        streams.append(self.buffer)
        for _, line in heapq.merge(*streams, key=lambda item: item[0]):
            yield line


class SilverWriter:
    """Collects silver tasks into a DocBin (tokens and kept spans, with their
    scores in the span group's attrs) and writes it atomically.

    path (Path): The .spacy file to write.
    spans_key (str): The span group.
    """

    def __init__(self, path: Path, spans_key: str) -> None:
        self.path = Path(path)
        self.spans_key = spans_key
        self.vocab = Vocab()
        self.docbin = DocBin(attrs=["ORTH", "SPACY"], store_user_data=False)
        self.count = 0

    def add(self, task: Task) -> None:
        """Add one silver task."""
        tokens = task["tokens"]
        doc = Doc(self.vocab, words=[t["text"] for t in tokens], spaces=[bool(t["ws"]) for t in tokens])
        group = SpanGroup(
            doc,
            name=self.spans_key,
            spans=[Span(doc, s["token_start"], s["token_end"] + 1, label=s["label"]) for s in task["spans"]],
        )
        group.attrs["scores"] = [float(s["score"]) for s in task["spans"]]
        doc.spans[self.spans_key] = group
        self.docbin.add(doc)
        self.count += 1

    def write(self) -> Path:
        """Write the DocBin (temp file + rename). RETURNS (Path): The path."""
        _atomic_write_bytes(self.path, self.docbin.to_bytes())
        return self.path


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class _AtomicText:
    """A text file written beside its destination and renamed into place on success."""

    def __init__(self, path: Optional[Path]) -> None:
        self.path = Path(path) if path else None
        self.tmp: Optional[Path] = None
        self.file: Optional[IO[str]] = None

    def __enter__(self) -> "_AtomicText":
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
            self.file = self.tmp.open("w", encoding="utf8")
        return self

    def write(self, line: str) -> None:
        if self.file is not None:
            self.file.write(line + "\n")

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.file is not None:
            self.file.close()
            if exc_type is None:
                os.replace(self.tmp, self.path)
            elif self.tmp.exists():
                self.tmp.unlink()


def _dumps(task: Task) -> str:
    return json.dumps(task, ensure_ascii=False)


def write_routes(
    tasks: Iterable[Task],
    thresholds: Thresholds,
    review_path: Path,
    silver_path: Path,
    *,
    spans_key: str = "sc",
    budget: int = 0,
    rest_path: Optional[Path] = None,
    run_size: int = 10000,
) -> Dict[str, Any]:
    """Route scored tasks and write the silver DocBin and the review JSONL.

    tasks (Iterable[Task]): Scored tasks (from `doc_to_task`, or made by hand), in input order.
    thresholds (Thresholds): High, low and the pivot.
    review_path (Path): The review JSONL, most uncertain first.
    silver_path (Path): The silver .spacy file.
    spans_key (str): The span group of the silver docs.
    budget (int): At most this many tasks in the review file; 0 = no limit.
    rest_path (Optional[Path]): Where tasks over the budget go (same order); None drops them (still counted).
    run_size (int): Review tasks sorted in memory per spilled run.
    RETURNS (Dict[str, Any]): Counts: routes, spans per kind, tokens, silver tasks without spans.
    """
    if budget < 0:
        raise AssistError(f"the review budget must be >= 0 (0 = no limit), got {budget}")
    routes: Counter = Counter({r: 0 for r in ROUTES})
    spans = Counter({"kept": 0, "uncertain": 0, "dropped": 0})
    silver_empty = 0
    tokens = 0
    silver = SilverWriter(silver_path, spans_key)
    review_path = Path(review_path)
    review_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".review-runs-", dir=review_path.parent) as tmp:
        queue = ReviewQueue(Path(tmp), run_size)
        for seq, task in enumerate(tasks):
            routed = route_task(task, thresholds)
            tokens += len(task.get("tokens") or [])
            spans["dropped"] += routed.n_dropped
            if routed.route == "silver":
                silver.add(routed.task)
                routes["silver"] += 1
                spans["kept"] += routed.n_kept
                silver_empty += not routed.n_kept
            else:
                queue.add(routed.margin, routed.n_uncertain, seq, _dumps(routed.task))
                spans["kept"] += routed.n_kept
                spans["uncertain"] += routed.n_uncertain
        with _AtomicText(review_path) as review, _AtomicText(rest_path) as rest:
            for i, line in enumerate(queue.sorted_lines()):
                if budget and i >= budget:
                    routes["over_budget"] += 1
                    rest.write(line)
                else:
                    routes["review"] += 1
                    review.write(line)
    silver.write()
    return {
        "routes": dict(routes),
        "silver_without_spans": silver_empty,
        "spans": dict(spans),
        "tokens": tokens,
    }


