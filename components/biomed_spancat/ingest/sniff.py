"""What a file holds, told from its content: its layout (a JSON array, JSON
lines, one JSON object) and whose export its first record is, so that every
reader recognises its own format the same way, and a file that no reader
can read is refused with a message that names what it looks like.

A pretty-printed JSON array (Label Studio and Argilla write them) is a JSON
array whatever its name and however many lines it spans: it is never read
line by line as JSON lines.
"""

import json
import re
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Tuple

from ._bridge import SNIFF_BYTES, open_text

__all__ = ["Peek", "peek", "record_kind", "describe", "READABLE_HINT"]

# How far to read to decode the first record of an array or object (a task
# with a long text can be large); beyond this the layout alone decides.
MAX_FIRST_RECORD = 32 << 20
SAMPLE_LINES = 20

READABLE_HINT = (
    "export span annotations as Prodigy JSONL (`prodigy db-out`), a Label Studio JSON/JSON-MIN export, "
    "or Argilla records (1.x TokenClassification, 2.x `to_disk`/`to_json`/`to_datasets`); "
    "if the file is one of these, pass --format jsonl|labelstudio|argilla"
)

ARGILLA1_STATUSES = {"Default", "Validated", "Discarded", "Edited", "Completed"}


@dataclass(frozen=True)
class Peek:
    """The start of a file.

    layout (str): "array", "jsonl", "object", "empty", "text" (not JSON) or
        "binary" (not UTF-8 text).
    first (Any): The first record (array element, line or the object), or
        None when it could not be decoded from the start of the file.
    head (str): The first SNIFF_BYTES characters ("" for binary files).
    """

    layout: str
    first: Any
    head: str


def _decode_first(path: Path, head: str, start: int) -> Any:
    """Decode the JSON value at `start`, reading more of the file when the
    head cuts it off (up to MAX_FIRST_RECORD characters)."""
    decoder = json.JSONDecoder()
    text, size = head, SNIFF_BYTES
    while True:
        try:
            return decoder.raw_decode(text, start)[0]
        except json.JSONDecodeError:
            pass
        if len(text) < size or size >= MAX_FIRST_RECORD:  # the whole file was read, or enough
            return None
        size = min(size * 4, MAX_FIRST_RECORD)
        with open_text(path) as f:
            text = f.read(size)


@lru_cache(maxsize=64)
def _peek(path_str: str, _mtime: float, _size: int) -> Peek:
    path = Path(path_str)
    with path.open("rb") as probe:
        raw = probe.read(4)
    try:
        with open_text(path) as f:
            head = f.read(SNIFF_BYTES)
    except (UnicodeDecodeError, OSError, EOFError, zlib.error):
        return Peek("binary", None, "")
    if raw[:2] != b"\x1f\x8b" and "\x00" in head[:1024]:
        return Peek("binary", None, "")
    stripped = head.lstrip()
    if not stripped:
        return Peek("empty", None, head)
    offset = len(head) - len(stripped)
    if stripped[0] == "[":
        skip = offset + 1
        while skip < len(head) and head[skip] in " \t\r\n":
            skip += 1
        if skip < len(head) and head[skip] == "]":
            return Peek("array", None, head)
        return Peek("array", _decode_first(path, head, skip), head)
    if stripped[0] == "{":
        for line in _lines(head):
            try:
                return Peek("jsonl", json.loads(line), head)
            except json.JSONDecodeError:
                break
        first = _decode_first(path, head, offset)
        if first is not None:
            return Peek("object", first, head)
    # JSON lines whose first line is broken: the first line that parses
    for line in _lines(head):
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return Peek("jsonl", value, head)
    return Peek("text", None, head)


def _lines(head: str) -> Iterable[str]:
    lines = head.splitlines()
    if len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut off
    return [line.strip() for line in lines[:SAMPLE_LINES] if line.strip()]


def peek(source: str) -> Optional[Peek]:
    """The layout and first record of a file (None for a URL, a folder or a
    missing file). Cached by path, modification time and size.

    source (str): A path.
    RETURNS (Optional[Peek]): What the file starts with.
    """
    if "://" in source:
        return None
    path = Path(source)
    try:
        if not path.is_file():
            return None
        stat = path.stat()
        return _peek(str(path), stat.st_mtime, stat.st_size)
    except OSError:
        return None


def _is_span_list(value: Any, keys: Tuple[str, ...] = ("start", "end")) -> bool:
    return isinstance(value, list) and all(isinstance(v, dict) and all(k in v for k in keys) for v in value)


def _is_offset_triples(value: Any) -> bool:
    """Doccano's [start, end, label] lists."""
    return isinstance(value, list) and all(
        isinstance(v, (list, tuple)) and len(v) == 3 and isinstance(v[0], int) and isinstance(v[2], str)
        for v in value
    )


def record_kind(record: Any) -> Optional[str]:
    """Whose export one record is.

    record (Any): A decoded record.
    RETURNS (Optional[str]): "labelstudio" (a task), "labelstudio_min" (a
        JSON-MIN row), "argilla1" (a 1.x TokenClassification record),
        "argilla1_textcat" (1.x text classification or text2text),
        "argilla2" (nested or flattened 2.x record), "doccano", "prodigy",
        or None.
    """
    if not isinstance(record, dict):
        return None
    keys = set(record)
    if isinstance(record.get("data"), dict) and keys & {"annotations", "completions", "predictions", "drafts"}:
        return "labelstudio"
    if "annotation_id" in keys and ("annotator" in keys or "lead_time" in keys):
        return "labelstudio_min"
    if isinstance(record.get("text"), (str, dict)) and ({"annotation", "prediction"} & keys) and (
        record.get("status") in ARGILLA1_STATUSES or {"annotation_agent", "prediction_agent", "event_timestamp"} & keys
    ):
        # TokenClassification records carry their tokens; text classification and text2text do not
        return "argilla1" if isinstance(record.get("tokens"), list) else "argilla1_textcat"
    if (isinstance(record.get("fields"), dict) and "responses" in keys) or any(
        k.endswith(".responses") for k in keys
    ):
        return "argilla2"
    if any(k.endswith("-suggestion-metadata") for k in keys) or any(
        isinstance(v, list) and v and all(isinstance(r, dict) and {"user_id", "value", "status"} <= set(r) for r in v)
        for v in record.values()
    ):
        return "argilla2"  # 1.x FeedbackDataset rows (format_as("datasets")) read the same way
    if isinstance(record.get("text"), str) and "spans" not in keys and "answer" not in keys:
        for key in ("label", "labels", "entities"):
            value = record.get(key)
            if isinstance(value, list) and value and (
                _is_offset_triples(value) or _is_span_list(value, ("start_offset", "end_offset"))
            ):
                return "doccano"
    if keys & {"text", "spans", "tokens", "answer", "_input_hash", "_task_hash", "image", "html"}:
        return "prodigy"
    return None


def _keys(record: Dict[str, Any], n: int = 8) -> str:
    keys = list(record)
    shown = ", ".join(keys[:n])
    return shown + (f", ... ({len(keys)} keys)" if len(keys) > n else "")


_NAMES = {
    "labelstudio": "a Label Studio export",
    "labelstudio_min": "a Label Studio JSON-MIN export",
    "argilla1": "Argilla 1.x TokenClassification records",
    "argilla1_textcat": "Argilla 1.x TextClassification/Text2Text records (no spans)",
    "argilla2": "Argilla 2.x (or 1.x FeedbackDataset) records",
    "doccano": "a Doccano export (text + [start, end, label] lists)",
    "prodigy": "Prodigy tasks",
}


def _docbin(path: Path) -> bool:
    if path.suffix == ".spacy":
        return True
    try:
        with path.open("rb") as f:
            start = f.read(4096)
        data = zlib.decompressobj().decompress(start, 2048)
    except (OSError, zlib.error):
        return False
    return data[:1] in (b"\x80", b"\x81", b"\x82", b"\x83", b"\x84", b"\x85", b"\x86", b"\x87", b"\xde") and (
        b"attrs" in data or b"tokens" in data
    )


_IOB = re.compile(r"^\S+(\s+\S+)*\s+[BIESLU]-\S+$|^\S+(\s+\S+)*\s+O$")


def describe(source: str) -> str:
    """What a file looks like, for a message refusing it: the tool whose
    export it resembles, or its layout and first keys.

    source (str): A path.
    RETURNS (str): e.g. "looks like a Doccano export (...)" or "is a JSON
        array of objects with keys id, text, label".
    """
    path = Path(source)
    if path.is_dir():
        return "is a folder without Prodigy .jsonl files, Label Studio or Argilla exports"
    if not path.is_file():
        return "does not exist"
    with path.open("rb") as f:
        magic = f.read(16)
    if magic.startswith(b"SQLite format 3"):
        return "is an SQLite database"
    if magic.startswith(b"PAR1"):
        return "is a parquet file"
    if magic.startswith(b"PK\x03\x04"):
        return "is a zip archive (unpack it first)"
    if _docbin(path):
        return "looks like a spaCy DocBin (.spacy): it is already converted, pass it to training directly"
    seen = peek(source)
    if seen is None or seen.layout == "binary":
        return "is a binary file, not UTF-8 JSON/JSONL"
    if seen.layout == "empty":
        return "is empty"
    if seen.layout == "text":
        lines = [line for line in seen.head.splitlines()[:SAMPLE_LINES] if line.strip()]
        first = lines[0] if lines else ""
        for sep, name in (("\t", "a TSV table"), (",", "a CSV table")):
            if lines and all(sep in line for line in lines[:5]):
                return f"looks like {name} (header: {first[:120]})"
        if lines and sum(bool(_IOB.match(line.strip())) for line in lines) >= max(1, len(lines) // 2):
            return "looks like CoNLL/IOB (one token and tag per line)"
        return f"is plain text, not JSON (starts with {first[:60]!r})"
    kind = record_kind(seen.first)
    layout = {"array": "a JSON array", "jsonl": "JSON lines", "object": "a JSON object"}[seen.layout]
    if kind is not None:
        return f"looks like {_NAMES[kind]}, as {layout}"
    if isinstance(seen.first, dict):
        what = "whose first record has" if seen.layout != "object" else "with"
        return f"is {layout} {what} keys {_keys(seen.first)}: not a known annotation export"
    if seen.first is None and seen.layout == "array":
        if re.match(r"^\s*\[\s*\]\s*$", seen.head):
            return "is an empty JSON array"
        return "is a JSON array whose first record could not be decoded"
    return f"is {layout} of {type(seen.first).__name__} values, not of task objects"

