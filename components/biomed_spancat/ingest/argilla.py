"""Reader for Argilla exports: 2.x datasets with a span question, and 1.x
TokenClassification records (read by `argilla_v1`, see there).

Accepted sources (the format is recognised from the content):

- a folder written by `rg.Dataset.to_disk(path)`: `records.json` plus
  `.argilla/settings.json`, which names the span question and its field;
- `records.json`-style files from `dataset.records.to_json(path)` (nested:
  `{"id", "fields", "metadata", "responses": {question: [{"value",
  "user_id"}]}, "status", ...}`), or `to_list()` saved as JSON;
- flattened records: `records.to_list(flatten=True)` saved as JSON, or
  `records.to_datasets()` saved with `.to_json()` (JSON lines) or pushed by
  `to_hub` (parquet): `{"<question>.responses": [values],
  "<question>.responses.users": [user ids], "<question>.responses.status":
  ["submitted" | "draft" | "discarded"], <fields>, <metadata>, ...}`.

A span response's value is a list of `{"label", "start", "end"}` (character
offsets into the question's field). Without settings, the span question is
the one whose responses hold such lists, and the field is `text` (or the
record's only text field).

Each user's response is one task: submitted responses are annotations (one
`_annotator_id` per user, merged by `convert`'s policy); draft and discarded
responses, and records without any response, are counted as rejected
(`argilla_draft`, `argilla_discarded`, `argilla_no_response`). The nested
`records.to_json()` export of Argilla 2.x does not carry a response's status:
its responses are taken as submitted (export flattened records to keep
drafts out). Argilla exports carry no response timestamps, so `--merge
latest` falls back to the order responses were read.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ._bridge import iter_parquet, iter_records, prodigy_task, scrub_meta
from .argilla_v1 import v1_tasks
from .readers import ReadOptions, register_reader
from .sniff import describe, peek, record_kind
from .tasks import IngestError, Origin, Task, pseudonym

__all__ = ["read_argilla", "is_argilla", "normalize_record", "ArgillaRecord"]

FORMAT = "argilla"
SETTINGS_PATH = Path(".argilla") / "settings.json"
DATASET_PATH = Path(".argilla") / "dataset.json"
RECORDS_FILE = "records.json"
# Keys of a flattened record that are neither fields nor metadata.
RESERVED = {"id", "status", "_server_id", "score", "inserted_at", "updated_at"}
# (question, value, user id, status or None)
Response = Tuple[str, Any, str, Optional[str]]


@dataclass
class ArgillaRecord:
    """One exported record, nested or flattened, in one shape.

    record_id (str): The record's id.
    values (Dict[str, Any]): Fields and metadata by name.
    metadata (Dict[str, Any]): Metadata (nested exports keep it apart; in
        flattened ones it is mixed with the fields and stays in `values`).
    responses (List[Response]): Every response to every question.
    """

    record_id: str
    values: Dict[str, Any]
    metadata: Dict[str, Any]
    responses: List[Response]


def _feedback_responses(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(isinstance(r, dict) and "user_id" in r and "value" in r for r in value)
    )


def is_feedback_hf(data: Dict[str, Any]) -> bool:
    """An Argilla 1.x FeedbackDataset record as `format_as("datasets")` /
    `push_to_huggingface` writes it: `<question>: [{"user_id", "value", "status"}]`."""
    return any(k.endswith("-suggestion-metadata") for k in data) or any(
        _feedback_responses(v) for k, v in data.items() if "-suggestion" not in k
    )


def _json_object(value: Any) -> Dict[str, Any]:
    if isinstance(value, str):  # the datasets export stores metadata as a JSON string
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return {}
    return value if isinstance(value, dict) else {}


def _feedback_record(data: Dict[str, Any]) -> ArgillaRecord:
    """An Argilla 1.x FeedbackDataset record (span questions exist since 1.26):
    `FeedbackRecord` as a dict (`{"fields", "responses": [{"user_id", "values":
    {question: {"value"}}, "status"}], "suggestions": [...], "metadata",
    "external_id"}`) or its datasets row (`{<fields>, <question>: [{"user_id",
    "value", "status"}], "<question>-suggestion", "<question>-suggestion-metadata",
    "external_id", "metadata"}`)."""
    record_id = str(data.get("external_id") if data.get("external_id") is not None else data.get("id"))
    metadata = _json_object(data.get("metadata"))
    responses: List[Response] = []
    if isinstance(data.get("responses"), list):
        fields = data.get("fields") if isinstance(data.get("fields"), dict) else {}
        for item in data["responses"]:
            if not isinstance(item, dict) or not isinstance(item.get("values"), dict):
                raise ValueError("a response has no 'values' object")
            for question, answer in item["values"].items():
                value = answer.get("value") if isinstance(answer, dict) else answer
                responses.append((question, value, str(item.get("user_id")), item.get("status")))
        return ArgillaRecord(record_id, {**fields, **metadata}, metadata, responses)
    fields = {}
    for key, value in data.items():
        if _feedback_responses(value) and "-suggestion" not in key:
            for item in value:
                responses.append((key, item["value"], str(item.get("user_id")), item.get("status")))
        elif key not in ("external_id", "metadata", "vectors", "id") and "-suggestion" not in key:
            fields[key] = value
    return ArgillaRecord(record_id, {**fields, **metadata}, metadata, responses)


def normalize_record(data: Dict[str, Any]) -> ArgillaRecord:
    """Read a nested or a flattened Argilla record.

    data (Dict[str, Any]): The record as exported.
    RETURNS (ArgillaRecord): The record.
    RAISES (ValueError): When the responses are not shaped as exported.
    """
    record_id = str(data.get("id") if data.get("id") is not None else data.get("_server_id"))
    responses: List[Response] = []
    if isinstance(data.get("responses"), list) or is_feedback_hf(data):
        return _feedback_record(data)
    if isinstance(data.get("fields"), dict) or isinstance(data.get("responses"), dict):
        fields = data.get("fields") or {}
        metadata = data.get("metadata") or {}
        if not isinstance(fields, dict) or not isinstance(metadata, dict):
            raise ValueError("'fields' and 'metadata' must be objects")
        raw = data.get("responses") or {}
        if not isinstance(raw, dict):
            raise ValueError("'responses' must be an object of question -> list of responses")
        for question, items in raw.items():
            if not isinstance(items, list):
                raise ValueError(f"responses to '{question}' are not a list")
            for item in items:
                if not isinstance(item, dict) or "value" not in item:
                    raise ValueError(f"a response to '{question}' has no 'value'")
                responses.append((question, item["value"], str(item.get("user_id")), item.get("status")))
        return ArgillaRecord(record_id, {**fields, **metadata}, metadata, responses)
    values: Dict[str, Any] = {}
    for key, value in data.items():
        if key in RESERVED or ".responses" in key or ".suggestion" in key:
            continue
        values[key] = value
    for key in data:
        if not key.endswith(".responses"):
            continue
        question = key[: -len(".responses")]
        vals = data.get(key) or []
        users = data.get(f"{key}.users") or []
        status = data.get(f"{key}.status")
        if not isinstance(vals, list) or not isinstance(users, list) or len(users) != len(vals):
            raise ValueError(f"'{key}' and '{key}.users' must be lists of the same length")
        if status is not None and (not isinstance(status, list) or len(status) != len(vals)):
            raise ValueError(f"'{key}.status' must be a list as long as '{key}'")
        for i, value in enumerate(vals):
            responses.append((question, value, str(users[i]), status[i] if status is not None else None))
    return ArgillaRecord(record_id, values, {}, responses)


def _is_span_value(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(isinstance(s, dict) and {"start", "end", "label"} <= set(s) for s in value)
    )


# --- detection --------------------------------------------------------------------


V1_COLUMNS = {"text", "tokens", "annotation", "status"}


def is_argilla(source: str) -> bool:
    """Whether a source is an Argilla export (a `to_disk` folder, or JSON,
    JSON lines or parquet records of Argilla 2.x or 1.x TokenClassification)."""
    path = Path(source)
    if "://" in source:
        return False
    if path.is_dir():
        return (path / RECORDS_FILE).is_file() and (path / SETTINGS_PATH).is_file()
    if source.endswith(".parquet"):
        if not path.is_file():
            return False
        import pyarrow.parquet as pq

        try:
            names = pq.ParquetFile(str(path)).schema_arrow.names
        except Exception:
            return False
        return any(n.endswith(".responses") for n in names) or V1_COLUMNS <= set(names)
    seen = peek(source)
    return (
        seen is not None
        and seen.layout in ("array", "jsonl")
        and record_kind(seen.first) in ("argilla1", "argilla2")
    )


# --- settings -----------------------------------------------------------------------


def _load_settings(path: Path) -> Tuple[List[Tuple[str, str]], Optional[str]]:
    """The span questions (name, field) of a settings.json, and the dataset name."""
    settings_path = path / SETTINGS_PATH
    try:
        settings = json.loads(settings_path.read_text(encoding="utf8"))
    except (OSError, json.JSONDecodeError) as err:
        raise IngestError(f"{settings_path}: unreadable Argilla settings ({err})") from err
    spans: List[Tuple[str, str]] = []
    for question in settings.get("questions") or []:
        conf = question.get("settings") or {}
        kind = conf.get("type") or question.get("type")
        if kind == "span":
            spans.append((question.get("name"), conf.get("field") or question.get("field") or "text"))
    name = None
    dataset_path = path / DATASET_PATH
    if dataset_path.is_file():
        try:
            name = json.loads(dataset_path.read_text(encoding="utf8")).get("name")
        except (OSError, json.JSONDecodeError):
            name = None
    if not spans:
        raise IngestError(f"{settings_path}: the dataset has no span question (settings.type 'span')")
    return spans, name


# --- reading ------------------------------------------------------------------------

Row = Tuple[Origin, Optional[Dict[str, Any]], Optional[str]]


def _rows(path: Path, dataset: str) -> Iterator[Row]:
    source = str(path)
    if source.endswith(".parquet"):
        for row, record in iter_parquet(path):
            yield Origin(source, dataset=dataset, row=row), record, None
        return
    seen = peek(source)
    layout = seen.layout if seen is not None and seen.layout in ("array", "jsonl", "object") else "jsonl"
    for index, line, record, error in iter_records(path, layout):
        if layout == "jsonl":
            yield Origin(source, line=line, dataset=dataset), record, error
        else:
            # Argilla writes the array on one line: the record's index locates it.
            yield Origin(source, dataset=dataset, row=index), record, error


def _span_questions(rows: Sequence[Row]) -> List[str]:
    found: List[str] = []
    for _, data, _ in rows:
        if not isinstance(data, dict):
            continue
        try:
            record = normalize_record(data)
        except ValueError:
            continue
        for question, value, _, _ in record.responses:
            if question not in found and _is_span_value(value):
                found.append(question)
        if isinstance(data.get("suggestions"), dict):
            for question, sugg in data["suggestions"].items():
                if question not in found and isinstance(sugg, dict) and _is_span_value(sugg.get("value")):
                    found.append(question)
        for key, value in data.items():
            if key.endswith(".suggestion") and _is_span_value(value):
                question = key[: -len(".suggestion")]
                if question not in found:
                    found.append(question)
    return found


def _text_field(record: ArgillaRecord, wanted: Optional[str]) -> Tuple[Optional[str], str]:
    """The name and text of the field the spans point into, or (None, why)."""
    if wanted is not None:
        value = record.values.get(wanted)
        if isinstance(value, str):
            return wanted, value
        return None, f"the span question's field '{wanted}' is missing or not text"
    if isinstance(record.values.get("text"), str):
        return "text", record.values["text"]
    texts = [k for k, v in record.values.items() if isinstance(v, str) and k not in record.metadata]
    if len(texts) == 1:
        return texts[0], record.values[texts[0]]
    return None, (
        f"cannot tell which field the spans point into (text fields: {', '.join(texts) or 'none'}); "
        "name it 'text' or export with rg.Dataset.to_disk so settings.json says"
    )


def _meta(record: ArgillaRecord, field_name: str, dataset: str) -> Dict[str, Any]:
    meta: Dict[str, Any] = {"source": "argilla", "dataset": dataset, "record_id": record.record_id}
    extra = record.metadata or {k: v for k, v in record.values.items() if k != field_name}
    scalars = {k: v for k, v in extra.items() if isinstance(v, (str, int, float, bool)) or v is None}
    for key, value in scrub_meta(scalars).items():
        meta.setdefault(key, value)
    return meta


def _record_tasks(
    origin: Origin, record: ArgillaRecord, questions: Sequence[str], fields: Dict[str, Optional[str]], dataset: str
) -> Iterator[Task]:
    where = f"record {record.record_id}"
    by_user: Dict[str, List[Tuple[str, Any, Optional[str]]]] = {}
    for question, value, user, status in record.responses:
        if question in questions:
            by_user.setdefault(user, []).append((question, value, status))
    if not by_user:
        yield Task(None, origin, error=f"{where}: no response to the span question", reason="argilla_no_response")
        return
    for user_id, answers in by_user.items():
        user = pseudonym(user_id, FORMAT)
        statuses = {status for _, _, status in answers}
        used = [(q, v) for q, v, status in answers if status in (None, "submitted")]
        if not used:
            status = (
                "discarded"
                if "discarded" in statuses
                else "draft"
                if "draft" in statuses
                else "/".join(sorted(str(s) for s in statuses))
            )
            reason = f"argilla_{status}" if status in ("discarded", "draft") else "argilla_not_submitted"
            yield Task(None, origin, error=f"{where}: user {user}'s response is {status}, not submitted", reason=reason)
            continue
        field_name, text = _text_field(record, fields.get(used[0][0]))
        if field_name is None:
            yield Task(None, origin, error=f"{where}: {text}", reason="missing_text")
            continue
        spans: List[Dict[str, Any]] = []
        bad = None
        for question, value in used:
            if value is None:
                value = []
            if not isinstance(value, list) or not all(isinstance(s, dict) for s in value):
                bad = f"{where}: user {user}'s response to '{question}' is not a list of spans"
                break
            for span in value:
                spans.append({"start": span.get("start"), "end": span.get("end"), "label": span.get("label")})
        if bad:
            yield Task(None, origin, error=bad, reason="bad_spans")
            continue
        data = prodigy_task(text, spans, user, _meta(record, field_name, dataset))
        yield Task(data, origin)


def _source_files(source: str) -> Tuple[Path, Optional[List[Tuple[str, str]]], str]:
    path = Path(source)
    if path.is_dir():
        questions, name = _load_settings(path)
        return path / RECORDS_FILE, questions, name or path.name
    if path.name == RECORDS_FILE and (path.parent / SETTINGS_PATH).is_file():
        questions, name = _load_settings(path.parent)
        return path, questions, name or path.parent.name
    name = path.name
    for suffix in (".gz", ".json", ".jsonl", ".ndjson", ".parquet"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return path, None, name


@register_reader(FORMAT, detect=is_argilla, priority=5)
def read_argilla(source: str, datasets: Optional[Sequence[str]], options: ReadOptions) -> Iterator[Task]:
    """Argilla records: 2.x records with a span question (one task per user
    response) and 1.x TokenClassification records (one per record, see
    `argilla_v1`).

    source (str): A `to_disk` folder, a JSON/JSONL records file or a parquet file.
    datasets (Optional[Sequence[str]]): Ignored (one source is one dataset).
    options (ReadOptions): Unused.
    YIELDS (Task): One task per user and record (or per record nobody answered).
    """
    path, configured, dataset = _source_files(source)
    if not path.is_file():
        raise IngestError(f"{path}: no such file")
    rows = list(_rows(path, dataset))
    kinds = [record_kind(data) if isinstance(data, dict) else None for _, data, _ in rows]
    if "argilla1_textcat" in kinds and "argilla1" not in kinds:
        raise IngestError(
            f"{source}: Argilla 1.x TextClassification/Text2Text records hold no spans; "
            "export a TokenClassification dataset"
        )
    v2_rows = [row for row, kind in zip(rows, kinds) if kind != "argilla1"]
    if configured is not None:
        questions = [q for q, _ in configured]
        fields: Dict[str, Optional[str]] = {q: f for q, f in configured}
    else:
        questions = _span_questions(v2_rows)
        fields = {q: None for q in questions}
        if not questions and any(isinstance(data, dict) for _, data, _ in v2_rows):
            raise IngestError(
                f"{source}: no span question found (no response or suggestion holds a list of "
                "{label, start, end}); export the dataset with rg.Dataset.to_disk so settings.json names it. "
                f"The file {describe(source)}"
            )
    for (origin, data, error), kind in zip(rows, kinds):
        if error is not None:
            yield Task(None, origin, error=error)
            continue
        if kind == "argilla1":
            yield from v1_tasks(origin, data, dataset)
            continue
        if not isinstance(data, dict):
            yield Task(None, origin, error=f"malformed record: a JSON {type(data).__name__}, not an object")
            continue
        try:
            record = normalize_record(data)
        except ValueError as err:
            yield Task(None, origin, error=f"malformed Argilla record: {err}")
            continue
        yield from _record_tasks(origin, record, questions, fields, dataset)
