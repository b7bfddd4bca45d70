"""Model-assisted annotation: pre-annotate new text with a trained pipeline,
keep what it is sure of as silver training data, and hand the rest to a human,
most uncertain first.

    sources -> TextRecord stream -> nlp.pipe in batches (one process, or Ray
    actors that each load the pipeline once) -> Prodigy task with scored spans
    -> route by thresholds -> silver DocBin | review queue (sorted) -> JSONL

Routing, with `low <= high`:

- a span scoring `>= high` is kept (confident), one scoring `< low` is
  dropped (the pipeline is run with its spancat threshold set to `low`, so it
  never emits those), one in the band `[low, high)` is uncertain;
- a task with no uncertain span goes to the silver corpus with its kept spans
  (a task with none at all is silver too: confidently nothing to mark);
- any other task goes to the review file with its kept and uncertain spans,
  each carrying its `score`, for correction in Prodigy (`spans.manual`).

Review order ("what to annotate next"): the margin of a task is the smallest
distance `|score - pivot|` over its uncertain spans, where `pivot` is the
pipeline's own (tuned) spancat threshold when it lies inside the band, else
the middle of the band. The review file is sorted by margin ascending (the
task holding the span closest to the decision is first), ties broken by more
uncertain spans first, then input order. With a budget N only the first N go
to the review file; the rest go, in the same order, to the `rest` file.

Memory stays flat in the number of texts: inputs are read lazily, batches are
annotated and routed as they come, and the review queue is sorted externally
(sorted runs spilled to temporary files, merged at the end). The one thing
that grows is the silver DocBin (token ids and spans, about 20 bytes per
token) until it is written.

A task is one input text (a paragraph), or with `segment="sentences"` one
sentence of it: one uncertain span sends a whole task to review, so shorter
tasks yield more silver data and shorter reviews.

On Ray (`ray_address`), each of `ray_workers` actors loads the pipeline once
(from a path every node can read, or an installed package such as
en_biomed_spancat); batches go round-robin and come back in submission
order, so the output files equal the single-process ones.

Plain text files (`.txt`): one paragraph per line; blank lines are skipped,
each line is stripped of surrounding whitespace, and its `meta` says the file
and the line. JSONL and anything else `convert` reads come through the
ingestion reader registry; a record's `text`, `meta` and `tokens` are used,
its spans, answer and hashes are not ("annotations removed").

Project tooling: a packaged pipeline never imports this module.
"""
import heapq
import importlib
import importlib.util
import itertools
import json
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import murmurhash
import spacy
from spacy.language import Language
from spacy.pipeline import SpanCategorizer
from spacy.tokens import Doc, DocBin, Span, SpanGroup
from spacy.vocab import Vocab

from .outputs import StepOutputs

__all__ = [
    "PREANNOTATE_SCHEMA",
    "ROUTES",
    "ORDERING",
    "AssistError",
    "Thresholds",
    "TextRecord",
    "RoutedTask",
    "ModelInfo",
    "PreannotateOptions",
    "SEGMENTS",
    "input_hash",
    "task_hash",
    "read_text_file",
    "record_from_data",
    "iter_records",
    "split_sentences",
    "use_device",
    "load_pipeline",
    "load_annotator",
    "make_doc",
    "doc_to_task",
    "annotate_records",
    "route_task",
    "ReviewQueue",
    "SilverWriter",
    "write_routes",
    "iter_annotated_local",
    "AnnotatorActor",
    "iter_annotated_ray",
    "preannotate",
]

PREANNOTATE_SCHEMA = "biomed.preannotate.v1"
ROUTES = ("silver", "review", "over_budget")
ORDERING = (
    "margin ascending, where a task's margin is the smallest |score - pivot| over its uncertain "
    "spans (low <= score < high) and pivot is the pipeline's spancat threshold when it lies in "
    "[low, high), else (low + high) / 2; ties: more uncertain spans first, then input order"
)
TEXT_SUFFIXES = (".txt",)
# Span scores are written with this many decimals, and routed on the written
# value, so a reader of the JSONL can recompute every routing decision.
SCORE_DECIMALS = 4
PathLike = Union[str, Path]
Task = Dict[str, Any]


class AssistError(ValueError):
    """A pre-annotation input or setting that cannot be used; the message
    names the file (and line) or the setting, and the reason."""


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


@dataclass
class PreannotateOptions:
    """Everything `preannotate` needs besides its sources, model and outputs.

    thresholds (Thresholds): High and low thresholds.
    budget (int): At most this many tasks in the review file; 0 = no limit.
    spans_key (str): The `doc.spans` key the span categorizer writes.
    batch_size (int): Texts per `nlp.pipe` batch (and per Ray task).
    gpu_id (int): -1 for the CPU, else the CUDA device (preflight checked).
    fmt (Optional[str]): Force an ingestion reader format for non-.txt sources.
    datasets (Sequence[str]): Datasets to read from database/folder sources.
    ray_address (str): A Ray cluster address ("127.0.0.1:6379", "ray://..."); "" runs in this process.
    ray_workers (int): Ray actors, each loading the pipeline once.
    ray_cpus (float): CPUs each actor reserves.
    run_size (int): Review tasks sorted in memory before spilling a run to disk.
    progress (bool): Show a tqdm bar of texts read.
    segment (str): "none" (one task per input text: a paragraph) or
        "sentences" (one task per sentence, see `split_sentences`).
    """

    thresholds: Thresholds
    budget: int = 0
    spans_key: str = "sc"
    batch_size: int = 32
    gpu_id: int = -1
    fmt: Optional[str] = None
    datasets: Sequence[str] = ()
    ray_address: str = ""
    ray_workers: int = 2
    ray_cpus: float = 1.0
    run_size: int = 10000
    progress: bool = True
    segment: str = "none"


# --- hashes ------------------------------------------------------------------


def input_hash(text: str) -> int:
    """A stable 32-bit hash of a task's input, as Prodigy's `_input_hash` is:
    murmurhash of the canonical JSON of `{"text": text}` (not Python's
    per-process randomised `hash()`), so the same text gets the same hash in
    every run, process and machine.

    text (str): The task's text.
    RETURNS (int): A signed 32-bit integer.
    """
    return int(murmurhash.hash(json.dumps({"text": text}, sort_keys=True, ensure_ascii=False)))


def task_hash(input_hash_: int, spans: Sequence[Dict[str, Any]]) -> int:
    """A stable 32-bit hash of the input plus its spans (Prodigy's `_task_hash`):
    the same text with different spans is a different question to annotate.

    input_hash_ (int): The task's `_input_hash`.
    spans (Sequence[Dict[str, Any]]): The task's spans (start, end, label; scores ignored).
    RETURNS (int): A signed 32-bit integer.
    """
    keys = [[s["start"], s["end"], s["label"]] for s in spans]
    return int(murmurhash.hash(json.dumps({"input": input_hash_, "spans": keys}, sort_keys=True, ensure_ascii=False)))


# --- reading -----------------------------------------------------------------


@dataclass
class TextRecord:
    """One text to pre-annotate, or one input record that could not be used.

    text (str): The text.
    meta (Dict[str, Any]): Carried into the task's `meta` (doc id, paragraph, file, line).
    origin (str): Where it was read: "file:line", or "database dataset 'x' row n".
    words (Optional[List[str]]): The record's own tokens, when it had them.
    spaces (Optional[List[bool]]): Whether each of them is followed by a space.
    reason (Optional[str]): A rejection reason code; None for a usable record.
    detail (str): Why it was rejected.
    spans_ignored (int): Spans the input record carried (not used).
    """

    text: str
    meta: Dict[str, Any]
    origin: str
    words: Optional[List[str]] = None
    spaces: Optional[List[bool]] = None
    reason: Optional[str] = None
    detail: str = ""
    spans_ignored: int = 0

    @property
    def ok(self) -> bool:
        return self.reason is None


def _reject(origin: str, reason: str, detail: str) -> TextRecord:
    return TextRecord("", {}, origin, reason=reason, detail=detail)


def _is_text_file(path: Path) -> bool:
    return path.name.lower().endswith(TEXT_SUFFIXES)


def read_text_file(path: Path) -> Iterator[TextRecord]:
    """Stream the paragraphs of a plain text file: one per non-blank line.

    path (Path): A UTF-8 text file.
    YIELDS (TextRecord): One record per non-blank line (meta: doc_id = the
        file's stem, file, line), or a rejection for a line that is not UTF-8.
    """
    if not path.is_file():
        raise AssistError(f"{path}: no such file")
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            origin = f"{path}:{lineno}"
            if lineno == 1:
                if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
                    raise AssistError(f"{path}: the file is UTF-16 encoded; save it as UTF-8")
                if raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
            try:
                line = raw.decode("utf8")
            except UnicodeDecodeError as err:
                yield _reject(
                    origin,
                    "bad_encoding",
                    f"not valid UTF-8 (byte 0x{raw[err.start]:02x} at offset {err.start})",
                )
                continue
            text = line.strip()
            if text:
                yield TextRecord(text, {"doc_id": path.stem, "file": str(path), "line": lineno}, origin)


def _tokens_of(text: str, tokens: Any) -> Tuple[Optional[List[str]], Optional[List[bool]], str]:
    """The words and spaces of a record's `tokens`, checked against its text;
    (None, None, why) when they cannot be used."""
    if not isinstance(tokens, list) or not tokens:
        return None, None, "'tokens' is not a non-empty list"
    words: List[str] = []
    spaces: List[bool] = []
    pos = 0
    for i, tok in enumerate(tokens):
        if not isinstance(tok, dict) or not isinstance(tok.get("text"), str):
            return None, None, f"token {i} has no 'text'"
        word = tok["text"]
        start = tok.get("start", pos)
        if start != pos or text[pos : pos + len(word)] != word:
            return None, None, f"token {i} {word!r} does not match the text at character {pos}"
        pos += len(word)
        ws = tok.get("ws")
        if ws is None:
            ws = text[pos : pos + 1] == " "
        if ws:
            if text[pos : pos + 1] != " ":
                return None, None, f"token {i} {word!r} has ws=true but no space follows it"
            pos += 1
        words.append(word)
        spaces.append(bool(ws))
    if pos != len(text):
        return None, None, f"the tokens cover {pos} of the text's {len(text)} characters"
    return words, spaces, ""


def record_from_data(data: Optional[Dict[str, Any]], origin: str, error: str = "", reason: str = "malformed") -> TextRecord:
    """Turn a parsed input record (Prodigy's shape) into a TextRecord.

    data (Optional[Dict[str, Any]]): The record; None when it did not parse.
    origin (str): Where it was read.
    error (str): Why it did not parse (when data is None).
    reason (str): The reader's reason code for a record that did not parse.
    RETURNS (TextRecord): The text to annotate, or a rejection saying why not.
    """
    if data is None:
        return _reject(origin, reason, error or "unreadable record")
    text = data.get("text")
    if text is None:
        return _reject(origin, "missing_text", "the record has no 'text'")
    if not isinstance(text, str):
        return _reject(origin, "missing_text", f"'text' is a {type(text).__name__}, not a string")
    if not text.strip():
        return _reject(origin, "empty_text", "the record's text is empty")
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    spans = data.get("spans")
    n_spans = len(spans) if isinstance(spans, list) else 0
    words = spaces = None
    if data.get("tokens") is not None:
        words, spaces, why = _tokens_of(text, data["tokens"])
        if words is None:
            return _reject(origin, "bad_tokens", f"{why}: fix or remove 'tokens' (the pipeline then tokenizes)")
    return TextRecord(text, dict(meta), origin, words, spaces, spans_ignored=n_spans)


def iter_records(sources: Sequence[str], fmt: Optional[str] = None, datasets: Sequence[str] = ()) -> Iterator[TextRecord]:
    """Stream the texts of every source, in order.

    `.txt` files (and folders of them) are read here, one paragraph per line;
    everything else goes through the ingestion reader registry, so any source
    `convert` reads works (JSONL and .jsonl.gz, folders of them, prodigy.db,
    postgresql:// URLs). Records that cannot be used come out as rejections.

    sources (Sequence[str]): Paths or URLs.
    fmt (Optional[str]): Force a reader format for the non-text sources.
    datasets (Sequence[str]): Datasets to read from database or folder sources.
    YIELDS (TextRecord): Records, rejections included.
    RAISES (AssistError): A missing or unreadable source.
    """
    ConvertOptions, IngestError, resolve_sources, iter_sources = _ingest()

    for source in sources:
        path = Path(source)
        text_files: List[Path] = []
        if path.is_file() and _is_text_file(path) and fmt is None:
            text_files = [path]
        elif path.is_dir() and fmt is None:
            text_files = sorted(p for p in path.rglob("*") if p.is_file() and _is_text_file(p))
        for text_file in text_files:
            yield from read_text_file(text_file)
        if text_files and (path.is_file() or not _has_jsonl(path)):
            continue
        try:
            plan, _ = resolve_sources([source], ConvertOptions(datasets=list(datasets), fmt=fmt))
            for task in iter_sources(plan, ConvertOptions().read, fmt):
                yield record_from_data(task.data, str(task.origin), task.error or "", task.reason)
        except IngestError as err:
            raise AssistError(str(err)) from err


SEGMENTS = ("none", "sentences")


def split_sentences(records: Iterable[TextRecord]) -> Iterator[TextRecord]:
    """One task per sentence instead of per paragraph.

    Routing is per task: one uncertain span sends the whole task to review,
    so long paragraphs rarely come out all-confident. Sentence tasks give more
    silver data and shorter review tasks. Sentences are cut by spaCy's
    rule-based sentencizer on its English tokens (or on the record's own
    tokens); each keeps its paragraph's meta plus `sentence` (0-based).

    records (Iterable[TextRecord]): Paragraph records (rejections pass through).
    YIELDS (TextRecord): Sentence records.
    """
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    for record in records:
        if not record.ok:
            yield record
            continue
        if record.words is not None:
            doc = nlp(Doc(nlp.vocab, words=record.words, spaces=record.spaces))
        else:
            doc = nlp(record.text)
        for i, sent in enumerate(doc.sents):
            text = sent.text
            if not text.strip():
                continue
            words = spaces = None
            if record.words is not None:
                words = [t.text for t in sent]
                spaces = [bool(t.whitespace_) for t in sent]
                spaces[-1] = False
            meta = {**record.meta, "sentence": i}
            yield TextRecord(text, meta, f"{record.origin} sentence {i}", words, spaces, spans_ignored=record.spans_ignored if i == 0 else 0)


def _ingest() -> Tuple[Any, Any, Any, Any]:
    """The ingestion package's reader registry (another concern's), imported
    lazily, with the readers that register themselves on import."""
    from .ingest.convert import ConvertOptions, resolve_sources
    from .ingest.readers import iter_sources
    from .ingest.tasks import IngestError

    for name in ("argilla", "labelstudio"):
        if importlib.util.find_spec(f"{__package__}.ingest.{name}") is not None:
            importlib.import_module(f"{__package__}.ingest.{name}")
    return ConvertOptions, IngestError, resolve_sources, iter_sources


def _has_jsonl(path: Path) -> bool:
    from .ingest.readers import JSONL_SUFFIXES

    return any(p.name.endswith(JSONL_SUFFIXES) for p in path.rglob("*") if p.is_file())


# --- the model ---------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    """What pre-annotated the text, for the tasks' `meta` and the report.

    name (str): The pipeline's package name ("en_biomed_spancat").
    version (str): Its version.
    source (str): The path or package name it was loaded from.
    threshold (Optional[float]): Its spancat threshold before pre-annotation lowered it.
    labels (Tuple[str, ...]): The span labels.
    """

    name: str
    version: str
    source: str
    threshold: Optional[float]
    labels: Tuple[str, ...]

    def to_dict(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "threshold": self.threshold,
            "labels": list(self.labels),
        }


def _find_spancat(nlp: Language, spans_key: str) -> SpanCategorizer:
    found = [pipe for _, pipe in nlp.pipeline if isinstance(pipe, SpanCategorizer)]
    matching = [pipe for pipe in found if pipe.key == spans_key]
    if len(matching) != 1:
        keys = ", ".join(repr(p.key) for p in found) or "none"
        raise AssistError(
            f"the pipeline needs exactly one span categorizer writing doc.spans[{spans_key!r}] "
            f"(found keys: {keys}; pipeline: {nlp.pipe_names})"
        )
    return matching[0]


def use_device(gpu_id: int) -> None:
    """Put thinc on the GPU `gpu_id` (or the CPU for -1) through the project's
    pre-flight check, which says exactly what is missing when a GPU cannot be
    used; spaCy's `require_gpu` where that module is absent.

    gpu_id (int): -1 for the CPU, else the CUDA device.
    RAISES (AssistError): A GPU was asked for and cannot be used.
    """
    if importlib.util.find_spec(f"{__package__}.gpu") is not None:
        gpu = importlib.import_module(f"{__package__}.gpu")
        try:
            gpu.preflight(gpu_id, echo=False)
        except gpu.GpuUnavailable as err:
            raise AssistError(str(err)) from err
    elif gpu_id >= 0:
        try:
            spacy.require_gpu(gpu_id)
        except Exception as err:
            raise AssistError(f"--gpu-id {gpu_id}: no usable GPU ({err}); use --gpu-id -1 for the CPU") from err


def load_pipeline(model: PathLike) -> Language:
    """Load a pipeline directory or an installed package name (the packaged pipeline).

    model (PathLike): The directory or package.
    RETURNS (Language): The pipeline.
    RAISES (AssistError): Neither a pipeline directory nor an installed package.
    """
    name = str(model)
    path = Path(name)
    if path.exists():
        from .evaluation import load_pipeline_dir

        try:
            return load_pipeline_dir(path)
        except ValueError as err:  # not a pipeline, or a damaged file (named)
            raise AssistError(str(err)) from None
    if spacy.util.is_package(name):
        return spacy.load(name)
    raise AssistError(f"{name}: neither a pipeline directory nor an installed pipeline package")


def load_annotator(model: PathLike, spans_key: str, low: float, gpu_id: int = -1) -> Tuple[Language, ModelInfo]:
    """Load the pipeline for pre-annotation: its span categorizer's threshold
    is lowered to `low`, so that it emits every span the routing needs.

    model (PathLike): A pipeline directory or an installed package name (the packaged pipeline).
    spans_key (str): The key its span categorizer writes.
    low (float): The low threshold.
    gpu_id (int): -1 for the CPU, else the CUDA device.
    RETURNS (Tuple[Language, ModelInfo]): The pipeline and what it is.
    RAISES (AssistError): No such pipeline, or no span categorizer for the key.
    """
    use_device(gpu_id)
    name = str(model)
    nlp = load_pipeline(name)
    spancat = _find_spancat(nlp, spans_key)
    threshold = spancat.cfg.get("threshold")
    spancat.cfg["threshold"] = low
    info = ModelInfo(
        name=f"{nlp.meta.get('lang', nlp.lang)}_{nlp.meta.get('name', 'pipeline')}",
        version=str(nlp.meta.get("version", "0.0.0")),
        source=name,
        threshold=float(threshold) if threshold is not None else None,
        labels=tuple(spancat.labels),
    )
    return nlp, info


def make_doc(nlp: Language, record: TextRecord) -> Doc:
    """The doc to annotate: the record's own tokens when it has them (so
    spans line up with an existing annotation's tokens), else the pipeline's
    tokenizer.

    nlp (Language): The pipeline.
    record (TextRecord): A usable record.
    RETURNS (Doc): An unannotated doc whose text is the record's text.
    """
    if record.words is not None:
        return Doc(nlp.vocab, words=record.words, spaces=record.spaces)
    return nlp.make_doc(record.text)


def doc_to_task(doc: Doc, spans_key: str, meta: Dict[str, Any], model: ModelInfo) -> Task:
    """A `spans.manual`-style Prodigy task from an annotated doc.

    doc (Doc): A doc whose `doc.spans[spans_key]` has `attrs["scores"]`, one per span.
    spans_key (str): The span group.
    meta (Dict[str, Any]): The input record's meta.
    model (ModelInfo): Written into `meta` as `model` and `model_version`.
    RETURNS (Task): text, tokens (text/start/end/id/ws), spans (start/end,
        token_start/token_end inclusive, label, score; sorted by position and
        label), meta, `_input_hash`; `_task_hash` is set by `route_task`.
    RAISES (AssistError): The span group carries no scores.
    """
    group = doc.spans[spans_key] if spans_key in doc.spans else SpanGroup(doc, name=spans_key)
    scores = group.attrs.get("scores")
    if len(group) and (scores is None or len(scores) != len(group)):
        raise AssistError(
            f"doc.spans[{spans_key!r}] has {len(group)} spans but "
            f"{'no' if scores is None else len(scores)} scores in attrs['scores']: routing needs a score per span"
        )
    spans = []
    for i, span in enumerate(group):
        spans.append(
            {
                "start": span.start_char,
                "end": span.end_char,
                "token_start": span.start,
                "token_end": span.end - 1,
                "label": span.label_,
                "score": round(float(scores[i]), SCORE_DECIMALS),
            }
        )
    spans.sort(key=lambda s: (s["token_start"], s["token_end"], s["label"], -s["score"]))
    return {
        "text": doc.text,
        "tokens": [
            {"text": t.text, "start": t.idx, "end": t.idx + len(t.text), "id": t.i, "ws": bool(t.whitespace_)}
            for t in doc
        ],
        "spans": spans,
        "meta": {**meta, "model": model.name, "model_version": model.version},
        "_input_hash": input_hash(doc.text),
    }


def annotate_records(nlp: Language, records: Sequence[TextRecord], spans_key: str, model: ModelInfo) -> List[Task]:
    """Annotate one batch of usable records through `nlp.pipe`.

    The single-process and the Ray runner both call this on the same batches,
    so they compute the same thing.

    nlp (Language): The pipeline (threshold lowered by `load_annotator`).
    records (Sequence[TextRecord]): Usable records.
    spans_key (str): The span group.
    model (ModelInfo): What the pipeline is.
    RETURNS (List[Task]): One task per record, in order.
    """
    docs = [make_doc(nlp, r) for r in records]
    tasks = []
    for record, doc in zip(records, nlp.pipe(docs, batch_size=max(1, len(docs)))):
        tasks.append(doc_to_task(doc, spans_key, record.meta, model))
    return tasks


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


# --- runners -----------------------------------------------------------------


def _batches(records: Iterable[TextRecord], size: int, rejected: Callable[[TextRecord], None]) -> Iterator[List[TextRecord]]:
    """Group the usable records into batches; rejections go to `rejected`."""
    batch: List[TextRecord] = []
    for record in records:
        if not record.ok:
            rejected(record)
            continue
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def iter_annotated_local(nlp: Language, batches: Iterable[List[TextRecord]], spans_key: str, model: ModelInfo) -> Iterator[Task]:
    """Annotate batches in this process.

    YIELDS (Task): Scored tasks in input order.
    """
    for batch in batches:
        yield from annotate_records(nlp, batch, spans_key, model)


class AnnotatorActor:
    """A Ray actor's state: the pipeline, loaded once per worker.

    model (str): A pipeline directory (visible on the worker) or an installed package name.
    spans_key (str): The span group.
    low (float): The low threshold (the pipeline's spancat threshold while pre-annotating).
    gpu_id (int): -1 for the CPU; >= 0 uses the GPU Ray assigned to this actor.
    """

    def __init__(self, model: str, spans_key: str, low: float, gpu_id: int) -> None:
        # Ray sets CUDA_VISIBLE_DEVICES to the actor's GPU, which is then device 0.
        self.nlp, self.model = load_annotator(model, spans_key, low, 0 if gpu_id >= 0 else -1)
        self.spans_key = spans_key

    def info(self) -> ModelInfo:
        return self.model

    def annotate(self, records: List[TextRecord]) -> List[Task]:
        return annotate_records(self.nlp, records, self.spans_key, self.model)


def _ray_model_ref(model: str) -> str:
    """An existing local path becomes absolute (workers do not share our cwd);
    anything else is passed on as a package name."""
    path = Path(model)
    return str(path.resolve()) if path.exists() else model


def iter_annotated_ray(
    batches: Iterable[List[TextRecord]],
    model: str,
    options: PreannotateOptions,
    on_info: Callable[[ModelInfo], None],
) -> Iterator[Task]:
    """Annotate batches on a Ray cluster: `ray_workers` actors each load the
    pipeline once; batches go round-robin with at most two in flight per
    actor (memory stays bounded) and come back in submission order, so the
    output equals the single-process output.

    batches (Iterable[List[TextRecord]]): Usable records, batched.
    model (str): A pipeline directory present on every node, or an installed package name.
    options (PreannotateOptions): ray_address, ray_workers, ray_cpus, gpu_id, spans_key, thresholds.
    on_info (Callable[[ModelInfo], None]): Receives what the workers loaded.
    YIELDS (Task): Scored tasks in input order.
    RAISES (AssistError): No cluster at the address, or the workers cannot load the pipeline.
    """
    try:
        import ray
    except ImportError as err:  # pragma: no cover - ray is in requirements.txt
        raise AssistError("running on Ray needs the ray package: pip install ray==2.60.0") from err
    if options.ray_workers < 1:
        raise AssistError(f"ray_workers must be at least 1, got {options.ray_workers}")
    connected_here = not ray.is_initialized()
    if connected_here:
        try:
            ray.init(address=options.ray_address, logging_level="WARNING", log_to_driver=False)
        except Exception as err:  # ConnectionError, ValueError for a malformed address
            raise AssistError(f"cannot connect to the Ray cluster at {options.ray_address!r}: {err}") from err
    actors: List[Any] = []
    try:
        remote_cls = ray.remote(
            num_cpus=options.ray_cpus, num_gpus=1 if options.gpu_id >= 0 else 0
        )(AnnotatorActor)
        ref = _ray_model_ref(model)
        actors = [
            remote_cls.remote(ref, options.spans_key, options.thresholds.low, options.gpu_id)
            for _ in range(options.ray_workers)
        ]
        try:
            infos = ray.get([a.info.remote() for a in actors])
        except Exception as err:  # RayActorError wraps the worker's exception
            raise AssistError(f"the Ray workers could not load the pipeline {model!r}: {_ray_cause(err)}") from err
        if len(set(infos)) != 1:
            raise AssistError(f"the Ray workers loaded different pipelines: {sorted({str(i) for i in infos})}")
        on_info(infos[0])
        pending: List[Any] = []
        max_in_flight = 2 * len(actors)
        for i, batch in enumerate(batches):
            pending.append(actors[i % len(actors)].annotate.remote(batch))
            if len(pending) >= max_in_flight:
                yield from ray.get(pending.pop(0))
        while pending:
            yield from ray.get(pending.pop(0))
    finally:
        for actor in actors:
            ray.kill(actor)
        if connected_here:
            ray.shutdown()


def _ray_cause(err: Exception) -> str:
    text = str(err).strip().splitlines()
    # The actor's own exception is the last line of Ray's traceback text.
    return text[-1] if text else type(err).__name__


# --- the whole step ----------------------------------------------------------


def _redact(address: str) -> str:
    from .ingest.readers import redact_url

    return redact_url(address)


def preannotate(
    sources: Sequence[str],
    model: str,
    review_path: Path,
    silver_path: Path,
    options: PreannotateOptions,
    *,
    rest_path: Optional[Path] = None,
    report_path: Optional[Path] = None,
) -> Dict[str, Any]:
    """Pre-annotate texts and route them to the silver corpus or the review file.

    sources (Sequence[str]): .txt files or folders, JSONL, or any source `convert` reads.
    model (str): A pipeline directory or an installed package (en_biomed_spancat).
    review_path (Path): The review JSONL (Prodigy `db-in` / `spans.manual` input).
    silver_path (Path): The silver DocBin (corpus/silver.spacy).
    options (PreannotateOptions): Thresholds, budget, batching, device, Ray.
    rest_path (Optional[Path]): Where review tasks over the budget go.
    report_path (Optional[Path]): Where the report JSON goes.
    RETURNS (Dict[str, Any]): The report: counts per route, rejections, spans, settings, speed.
    RAISES (AssistError): A missing source, a pipeline that cannot be used, no Ray cluster,
        nothing usable in the sources.
    RAISES (OutputsError): Another run is writing the same outputs.
    """
    if options.batch_size < 1:
        raise AssistError(f"batch_size must be at least 1, got {options.batch_size}")
    if options.budget < 0:
        raise AssistError(f"the review budget must be >= 0 (0 = no limit), got {options.budget}")
    t0 = time.perf_counter()
    read = Counter()
    rejected: Counter = Counter()
    examples: List[str] = []
    state: Dict[str, Any] = {}

    def count(stream: Iterable[TextRecord], what: str) -> Iterator[TextRecord]:
        for record in stream:
            read[what] += 1
            if what == "records":
                read["spans_ignored"] += record.spans_ignored
            yield record

    def reject(record: TextRecord) -> None:
        rejected[record.reason] += 1
        if len(examples) < 20:
            examples.append(f"{record.origin}: {record.reason}: {record.detail}")

    if options.segment not in SEGMENTS:
        raise AssistError(f"unknown segment '{options.segment}' (choose from {', '.join(SEGMENTS)})")
    records: Iterable[TextRecord] = count(iter_records(sources, options.fmt, options.datasets), "records")
    if options.segment == "sentences":
        records = split_sentences(records)
    # A task is an input record, or one of its sentences; rejected records count as one task each.
    records = count(records, "tasks")
    if options.progress:
        from tqdm import tqdm

        records = tqdm(records, desc="tasks", unit=" tasks", mininterval=1.0)
    batches = _batches(records, options.batch_size, reject)

    def set_info(info: ModelInfo) -> None:
        # Speed is measured from here: loading the pipeline is not annotating.
        state["model"] = info
        state["t_ready"] = time.perf_counter()

    # review, silver, rest and report are one unit, published together; one run at a time
    declared = [Path(p) for p in (review_path, silver_path, rest_path, report_path) if p is not None]
    with StepOutputs("preannotate", declared) as unit:
        if options.ray_address:
            annotated = iter_annotated_ray(batches, model, options, set_info)
            runner = {"runner": "ray", "ray_address": _redact(options.ray_address), "ray_workers": options.ray_workers}
        else:
            nlp, info = load_annotator(model, options.spans_key, options.thresholds.low, options.gpu_id)
            set_info(info)
            annotated = iter_annotated_local(nlp, batches, options.spans_key, info)
            runner = {"runner": "single_process"}
        # The review order's pivot is the pipeline's own threshold, which a Ray run
        # learns only once its workers are up: take the first task before routing.
        stream = iter(annotated)
        first = list(itertools.islice(stream, 1))
        loaded: Optional[ModelInfo] = state.get("model")
        thresholds = options.thresholds.with_pipeline_threshold(loaded.threshold if loaded else None)
        counts = write_routes(
            itertools.chain(first, stream),
            thresholds,
            unit.path(review_path),
            unit.path(silver_path),
            spans_key=options.spans_key,
            budget=options.budget,
            rest_path=unit.path(rest_path) if rest_path else None,
            run_size=options.run_size,
        )
        seconds = time.perf_counter() - state.get("t_ready", t0)
        n_rejected = sum(rejected.values())
        n_routed = sum(counts["routes"].values())
        if n_routed == 0:  # nothing usable: an error, and the previous outputs stay as they were
            why = f"{read['records']} texts read, all rejected (e.g. {examples[0]})" if examples else "they hold no text"
            raise AssistError(f"nothing to pre-annotate in {', '.join(map(str, sources))}: {why}")
        report: Dict[str, Any] = {
            "schema": PREANNOTATE_SCHEMA,
            "model": state["model"].to_dict() if state.get("model") else {"source": model},
            "settings": {
                "high": thresholds.high,
                "low": thresholds.low,
                "pivot": thresholds.center,
                "budget": options.budget or None,
                "spans_key": options.spans_key,
                "batch_size": options.batch_size,
                "segment": options.segment,
                "gpu_id": options.gpu_id,
                **runner,
            },
            "ordering": ORDERING,
            "read": read["records"],
            "tasks": read["tasks"],
            "rejected": n_rejected,
            "routes": counts["routes"],
            "balanced": read["tasks"] == n_rejected + n_routed,
            "silver_without_spans": counts["silver_without_spans"],
            "spans": counts["spans"],
            "input_spans_ignored": read["spans_ignored"],
            "rejected_by_reason": dict(sorted(rejected.items())),
            "rejected_examples": examples,
            "outputs": {
                "review": str(review_path),
                "silver": str(silver_path),
                "rest": str(rest_path) if rest_path else None,
            },
            "speed": {
                "seconds": round(seconds, 3),
                "words": counts["tokens"],
                "words_per_second": round(counts["tokens"] / seconds, 1) if seconds > 0 else None,
            },
        }
        if report_path is not None:
            report["outputs"]["report"] = str(report_path)
            _atomic_write_bytes(
                unit.path(report_path), (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode("utf8")
            )
        return report

