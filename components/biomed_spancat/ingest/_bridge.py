"""Helpers shared by the readers of other annotation tools (Argilla, Label
Studio): reading their JSON/JSONL/parquet exports with a position for every
record, Prodigy-style hashes, and the Prodigy-shaped task they all produce.

The readers translate each annotator's answer into one task in Prodigy's
shape, so that validation, alignment, merging and the ledger treat them
exactly like Prodigy tasks:

- all answers to one record share `_input_hash` (hash of the text) and `meta`
  (built from the record only), so `convert` groups them and merges them by
  the chosen policy (`majority`, `latest`, `review`);
- `_annotator_id` names the annotator (`argilla:<user>`, `labelstudio:<user>`);
- an answer that is not an annotation (a draft, a discarded or skipped
  answer, a record nobody answered) is yielded as a `Task` with `error` and
  a `reason`, so the ledger counts it as rejected and rejections.jsonl says why.
"""

import gzip
import hashlib
import json
import re
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Dict, Iterator, List, Optional, Tuple

from .tasks import IngestError

__all__ = [
    "SNIFF_BYTES",
    "stable_hash",
    "open_text",
    "sniff",
    "iter_json_array",
    "iter_jsonl",
    "iter_parquet",
    "iter_records",
    "scrub_meta",
    "prodigy_task",
]

SNIFF_BYTES = 1 << 16


def stable_hash(*parts: Any) -> int:
    """A stable signed 32-bit hash (Prodigy's hashes are 32-bit ints too).

    parts (Any): JSON-serializable values hashed together.
    RETURNS (int): The hash.
    """
    payload = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return int.from_bytes(hashlib.blake2b(payload.encode("utf8"), digest_size=4).digest(), "big", signed=True)


def open_text(path: Path) -> IO[str]:
    """Open a UTF-8 text file, gzip-compressed or not (BOM skipped)."""
    with path.open("rb") as probe:
        head = probe.read(2)
    if head == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8-sig")
    return path.open("r", encoding="utf-8-sig")


def sniff(source: str) -> Tuple[Optional[Path], str]:
    """The file a source names and the first SNIFF_BYTES characters of it
    ("" when the source is not a readable file)."""
    path = Path(source)
    if "://" in source or not path.is_file():
        return None, ""
    try:
        with open_text(path) as f:
            return path, f.read(SNIFF_BYTES)
    except (OSError, UnicodeDecodeError, EOFError):
        return path, ""


def _line_col(text: str, pos: int) -> Tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def iter_json_array(path: Path) -> Iterator[Tuple[int, int, Any]]:
    """Stream the elements of a JSON array file with their position.

    A JSON array cannot be resynchronised after a syntax error, so a
    malformed file is a fatal error naming the line and column.

    path (Path): The file (plain or gzip).
    YIELDS (Tuple[int, int, Any]): 1-based index, 1-based line where the
        element starts, and the element.
    """
    source = str(path)
    try:
        with open_text(path) as f:
            text = f.read()
    except UnicodeDecodeError as err:
        raise IngestError(f"{source}: not valid UTF-8 (byte offset {err.start}); re-export as UTF-8") from err
    except OSError as err:
        raise IngestError(f"{source}: unreadable: {err}") from err
    decoder = json.JSONDecoder()
    n = len(text)

    def skip(pos: int) -> int:
        while pos < n and text[pos] in " \t\r\n":
            pos += 1
        return pos

    def fail(pos: int, what: str) -> IngestError:
        line, col = _line_col(text, pos)
        return IngestError(f"{source}:{line}:{col}: malformed JSON export: {what}")

    pos = skip(0)
    if pos >= n or text[pos] != "[":
        raise fail(pos, "expected a JSON array of records ('[' ...)")
    pos = skip(pos + 1)
    index, line, last = 0, 1, 0
    if pos < n and text[pos] == "]":
        return
    while True:
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            raise fail(err.pos, f"{err.msg} (in record {index + 1} of the array)") from None
        index += 1
        line += text.count("\n", last, pos)
        last = pos
        yield index, line, value
        pos = skip(end)
        if pos < n and text[pos] == ",":
            pos = skip(pos + 1)
            continue
        if pos < n and text[pos] == "]":
            return
        raise fail(pos, f"expected ',' or ']' after record {index} of the array")


def iter_jsonl(path: Path) -> Iterator[Tuple[int, Optional[Any], Optional[str]]]:
    """Stream a JSON-lines file: (line number, value or None, error or None)."""
    with open_text(path) as f:
        for lineno, raw in enumerate(f, start=1):
            raw = raw.strip()
            if not raw:
                continue
            try:
                yield lineno, json.loads(raw), None
            except json.JSONDecodeError as err:
                yield lineno, None, f"malformed JSON: {err.msg} at column {err.colno}"


def iter_records(path: Path, layout: str) -> Iterator[Tuple[Optional[int], int, Any, Optional[str]]]:
    """Stream the records of a JSON array, a JSON-lines file or a file that
    holds one JSON object (one task per file, as Label Studio 0.x's
    `completions/<id>.json` and its cloud storage targets write them).

    path (Path): The file (plain or gzip).
    layout (str): "array", "jsonl" or "object" (see `sniff.peek`).
    YIELDS (Tuple[Optional[int], int, Any, Optional[str]]): 1-based index in
        the array (None for JSON lines), 1-based line, the record (None when
        the line is not JSON) and the error for such a line.
    """
    if layout == "array":
        for index, line, value in iter_json_array(path):
            yield index, line, value, None
    elif layout == "jsonl":
        for line, value, error in iter_jsonl(path):
            yield None, line, value, error
    else:
        with open_text(path) as f:
            text = f.read()
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise IngestError(f"{path}:{err.lineno}:{err.colno}: malformed JSON export: {err.msg}") from None
        yield 1, 1, value, None


# Keys whose values name or identify a person (annotators, reviewers, owners):
# never copied into a task's meta, which travels to the DocBins and reports.
PERSONAL_KEY = re.compile(
    r"e-?mail|user|annotator|labell?er|curator|assignee|worker|person|author|review|complet|_by$"
    r"|owner|first_name|last_name|full_name|agent|phone",
    re.IGNORECASE,
)
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def scrub_meta(meta: Dict[str, Any]) -> Dict[str, Any]:
    """A record's meta without personal data: keys that name people
    (PERSONAL_KEY) and string values holding an e-mail address are dropped.

    meta (Dict[str, Any]): Scalar meta values.
    RETURNS (Dict[str, Any]): The meta to keep.
    """
    return {
        key: value
        for key, value in meta.items()
        if not PERSONAL_KEY.search(str(key)) and not (isinstance(value, str) and EMAIL.search(value))
    }


def iter_parquet(path: Path) -> Iterator[Tuple[int, Dict[str, Any]]]:
    """Stream the rows of a parquet file (a Hub export): (1-based row, row)."""
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(str(path))
    except Exception as err:  # pyarrow raises ArrowInvalid and OSError subclasses
        raise IngestError(f"{path}: not a readable parquet file ({err})") from err
    row = 0
    for batch in table.iter_batches(batch_size=1024):
        for record in batch.to_pylist():
            row += 1
            yield row, record


def prodigy_task(
    text: str,
    spans: List[Dict[str, Any]],
    annotator: Optional[str],
    meta: Dict[str, Any],
    timestamp: Optional[float] = None,
    review: bool = False,
) -> Dict[str, Any]:
    """One annotator's complete span annotation, in Prodigy's task shape.

    text (str): The annotated text (tokenized later by `convert`).
    spans (List[Dict[str, Any]]): {"start", "end", "label"} character spans.
    annotator (Optional[str]): `_annotator_id` (a pseudonym); None when the
        export does not say who answered.
    meta (Dict[str, Any]): The record's meta (identical for all its annotators).
    timestamp (Optional[float]): Seconds since the epoch, for `--merge latest`.
    review (bool): A reviewed answer (`--merge review` prefers it).
    RETURNS (Dict[str, Any]): The task.
    """
    task: Dict[str, Any] = {
        "text": text,
        "spans": spans,
        "answer": "accept",
        "meta": meta,
        "_input_hash": stable_hash(text),
        "_task_hash": stable_hash(text, spans),
        "_view_id": "review" if review else "spans_manual",
    }
    if annotator is not None:
        task["_annotator_id"] = annotator
    if timestamp is not None:
        task["_timestamp"] = timestamp
    return task


def parse_time(value: Any) -> Optional[float]:
    """A tool's timestamp as seconds since the epoch: ISO 8601 (Label Studio 1.x,
    Argilla), epoch seconds (Label Studio 0.x) or epoch milliseconds (pandas).

    value (Any): The timestamp as exported.
    RETURNS (Optional[float]): Seconds, or None when it is not a timestamp.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value / 1000.0 if value > 1e11 else float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None
