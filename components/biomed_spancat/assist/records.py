"""Reading the texts to pre-annotate: plain text, or anything `convert`
reads (through the ingestion reader registry), as a stream of TextRecords
(rejections included, each saying where and why); Prodigy's stable hashes.
"""
import importlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import murmurhash
import spacy
from spacy.tokens import Doc

__all__ = [
    "AssistError",
    "SEGMENTS",
    "TextRecord",
    "input_hash",
    "task_hash",
    "read_text_file",
    "record_from_data",
    "iter_records",
    "split_sentences",
]

TEXT_SUFFIXES = (".txt",)
# Span scores are written with this many decimals, and routed on the written
# value, so a reader of the JSONL can recompute every routing decision.
SCORE_DECIMALS = 4
# The package above this one (biomed_spancat), for its optional modules
ROOT = __package__.rpartition(".")[0]
PathLike = Union[str, Path]
Task = Dict[str, Any]


class AssistError(ValueError):
    """A pre-annotation input or setting that cannot be used; the message
    names the file (and line) or the setting, and the reason."""



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
    from ..ingest.convert import ConvertOptions, resolve_sources
    from ..ingest.readers import iter_sources
    from ..ingest.tasks import IngestError

    for name in ("argilla", "labelstudio"):
        if importlib.util.find_spec(f"{ROOT}.ingest.{name}") is not None:
            importlib.import_module(f"{ROOT}.ingest.{name}")
    return ConvertOptions, IngestError, resolve_sources, iter_sources


def _has_jsonl(path: Path) -> bool:
    from ..ingest.readers import JSONL_SUFFIXES

    return any(p.name.endswith(JSONL_SUFFIXES) for p in path.rglob("*") if p.is_file())

