"""Reader for Label Studio exports of span (NER) annotations.

Accepted shapes (recognised from the content, not the file name):

- the JSON export of Label Studio 1.x: a JSON array of tasks `{"id", "data":
  {"text": ...}, "annotations": [{"id", "completed_by", "result": [{"type":
  "labels", "value": {"start", "end", "text", "labels": [...]}}, ...],
  "was_cancelled", "ground_truth", "reviews", "created_at", "updated_at",
  ...}], "drafts": [...], "predictions": [...], "meta": {...}}`, compact or
  pretty-printed; `completed_by` is a user id or a user object;
- the JSON export of Label Studio 0.x: the same with `completions` instead of
  `annotations` (`{"id", "lead_time", "created_at": <epoch seconds>,
  "was_cancelled" or "skipped", "completed_by": <id>, "result"}`), also one
  task per file (`completions/<task id>.json`, one JSON object), read one
  file or the whole folder;
- tasks one per line (JSON lines, as the SDK or a cloud storage target dumps them);
- JSON-MIN: one row per annotation, `{<data keys>, "id", <from_name>:
  [{"start", "end", "text", "labels"}], "annotator", "annotation_id",
  "created_at", "updated_at", "lead_time"}`.

Each annotation is one task: its `labels` regions become spans (one per
label when a region has several), its annotator a pseudonym of the user
(`tasks.pseudonym`: no e-mail, name or user object leaves the reader), its
`updated_at` (else `created_at`) the timestamp `--merge latest` uses, and a
`ground_truth` annotation or one whose latest review accepted it is the
reviewed answer `--merge review` prefers. What is not an annotation is
counted as rejected, one record each, by kind: a cancelled (skipped)
annotation `labelstudio_cancelled`, one whose latest review rejected it
`labelstudio_review_rejected`, each draft `labelstudio_draft`, each
prediction `labelstudio_prediction`, and a task nobody annotated
`labelstudio_no_annotation`. Label Studio measures offsets in UTF-16 code
units (it runs in a browser); where the text has characters outside the BMP
they are converted to Python's code points, checked against each region's
`text`.
"""

from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ._bridge import iter_records, parse_time, prodigy_task, scrub_meta
from .readers import ReadOptions, register_reader
from .sniff import describe, peek, record_kind
from .tasks import IngestError, Origin, Task, pseudonym

__all__ = ["read_label_studio", "is_label_studio", "utf16_to_codepoints"]

FORMAT = "labelstudio"
SPAN_TYPE = "labels"
KINDS = ("labelstudio", "labelstudio_min")
# JSON-MIN row keys that are not data
MIN_RESERVED = {"id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time", "agreement"}


def _folder_files(source: str) -> List[Path]:
    """The `<task id>.json` files of a folder of one-task files (Label Studio
    0.x's `completions/`, a cloud storage target), in task id order."""
    files = [p for p in Path(source).iterdir() if p.is_file() and p.suffix == ".json"]
    return sorted(files, key=lambda p: (not p.stem.isdigit(), int(p.stem) if p.stem.isdigit() else 0, p.name))


def is_label_studio(source: str) -> bool:
    """Whether a source is a Label Studio export (told from its first
    record), or a folder of one-task files whose first file is a task."""
    path = Path(source)
    if "://" not in source and path.is_dir():
        files = _folder_files(source)
        return bool(files) and is_label_studio(str(files[0]))
    seen = peek(source)
    return seen is not None and seen.layout in ("array", "jsonl", "object") and record_kind(seen.first) in KINDS


def utf16_to_codepoints(text: str) -> Optional[Dict[int, int]]:
    """Map UTF-16 offsets to Python string offsets; None when they are equal
    (no character of `text` lies outside the Basic Multilingual Plane)."""
    if all(ord(c) <= 0xFFFF for c in text):
        return None
    mapping, u16 = {}, 0
    for i, char in enumerate(text):
        mapping[u16] = i
        u16 += 2 if ord(char) > 0xFFFF else 1
    mapping[u16] = len(text)
    return mapping


def _annotator(completed_by: Any) -> Optional[str]:
    """A stable pseudonym: the user's id when the export gives one (as an int
    or inside a user object), else whatever identifies them (e-mail, object);
    None when the export does not say (early 0.x completions)."""
    if isinstance(completed_by, dict) and completed_by.get("id") is not None:
        completed_by = completed_by["id"]
    if completed_by is None or completed_by == "" or completed_by == {}:
        return None
    return pseudonym(completed_by, FORMAT)


def _timestamp(annotation: Dict[str, Any]) -> Optional[float]:
    for key in ("updated_at", "created_at"):
        value = parse_time(annotation.get(key))
        if value is not None:
            return value
    return None


def _regions(annotation: Dict[str, Any]) -> List[Dict[str, Any]]:
    result = annotation.get("result") or []
    if not isinstance(result, list):
        raise ValueError("'result' is not a list")
    return [r for r in result if isinstance(r, dict) and r.get("type") == SPAN_TYPE]


def _unsupported(annotation: Dict[str, Any]) -> List[str]:
    """Region types that carry labels but no character offsets we can read."""
    types = {
        r.get("type")
        for r in annotation.get("result") or []
        if isinstance(r, dict) and str(r.get("type", "")).endswith("labels") and r.get("type") != SPAN_TYPE
    }
    return sorted(str(t) for t in types)


def _pick_text(data: Dict[str, Any], regions: List[Dict[str, Any]]) -> Tuple[Optional[str], str]:
    """The data key holding the annotated text: `text`, the only string, or
    the string every region's `value.text` matches. RETURNS (key or None, why)."""
    if isinstance(data.get("text"), str):
        return "text", ""
    candidates = [k for k, v in data.items() if isinstance(v, str)]
    if len(candidates) == 1:
        return candidates[0], ""
    matching = [
        k
        for k in candidates
        if regions
        and all(
            isinstance(v.get("start"), int)
            and isinstance(v.get("end"), int)
            and data[k][v["start"] : v["end"]] == v.get("text")
            for v in regions
        )
    ]
    if len(matching) == 1:
        return matching[0], ""
    return None, f"cannot tell which data key holds the text (string keys: {', '.join(candidates) or 'none'})"


def _all_region_values(annotations: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    values = []
    for annotation in annotations:
        try:
            values.extend(r.get("value") or {} for r in _regions(annotation))
        except ValueError:
            continue
    return values


def _spans(text: str, regions: List[Dict[str, Any]], where: str) -> List[Dict[str, Any]]:
    """Regions to character spans; RAISES (ValueError) with the reason."""
    mapping = utf16_to_codepoints(text)
    spans: List[Dict[str, Any]] = []
    for region in regions:
        value = region.get("value")
        if not isinstance(value, dict):
            raise ValueError(f"{where}: region {region.get('id')} has no 'value'")
        start, end, labels = value.get("start"), value.get("end"), value.get("labels")
        if not isinstance(labels, list) or not labels:
            raise ValueError(f"{where}: region {region.get('id')} [{start}:{end}] has no labels")
        if mapping is not None and isinstance(start, int) and isinstance(end, int):
            if start in mapping and end in mapping and text[mapping[start] : mapping[end]] == value.get("text"):
                start, end = mapping[start], mapping[end]
        shown = value.get("text")
        if isinstance(shown, str) and isinstance(start, int) and isinstance(end, int) and text[start:end] != shown:
            raise ValueError(
                f"{where}: region {region.get('id')} [{start}:{end}] is {text[start:end]!r} in the text "
                f"but {shown!r} in the export (edited text?)"
            )
        for label in labels:
            spans.append({"start": start, "end": end, "label": label})
    return spans


def _meta(task: Dict[str, Any], data: Dict[str, Any], text_key: Optional[str]) -> Dict[str, Any]:
    """The task's meta: source, task id, project, the export's `meta` and the
    short scalar data values; nothing that names a person (scrub_meta)."""
    meta: Dict[str, Any] = {"source": "labelstudio", "task_id": task.get("id")}
    if task.get("project") is not None:
        meta["project"] = task.get("project")
    extra: Dict[str, Any] = {}
    if isinstance(task.get("meta"), dict):
        extra.update({k: v for k, v in task["meta"].items() if isinstance(v, (str, int, float, bool))})
    for key, value in data.items():
        if key != text_key and (
            isinstance(value, (int, float, bool)) or (isinstance(value, str) and len(value) <= 200)
        ):
            extra.setdefault(key, value)
    for key, value in scrub_meta(extra).items():
        meta.setdefault(key, value)
    return meta


def _review(annotation: Dict[str, Any]) -> Optional[bool]:
    """The latest review's verdict (True accepted, False rejected), if any."""
    reviews = [r for r in annotation.get("reviews") or [] if isinstance(r, dict) and "accepted" in r]
    if not reviews:
        return None
    latest = max(enumerate(reviews), key=lambda ir: (parse_time(ir[1].get("created_at")) or 0.0, ir[0]))[1]
    return bool(latest.get("accepted"))


def _not_annotations(origin: Origin, task: Dict[str, Any], where: str) -> Iterator[Task]:
    """One rejected record per draft and per prediction of a task."""
    kinds = (("drafts", "labelstudio_draft", "draft"), ("predictions", "labelstudio_prediction", "prediction"))
    for key, reason, what in kinds:
        items = task.get(key)
        if not isinstance(items, list):
            continue
        for item in items:
            if isinstance(item, dict):
                by = f" by {_annotator(item['user'])}" if item.get("user") is not None else ""
                label = f"{what} {item.get('id')}{by}" if item.get("id") is not None else f"{what}{by}"
                if what == "prediction" and item.get("model_version"):
                    label += f" (model {item['model_version']})"
            else:
                label = f"{what} {item}"
            yield Task(None, origin, error=f"{where} {label}: not an annotation", reason=reason)


def _task_tasks(origin: Origin, task: Dict[str, Any]) -> Iterator[Task]:
    where = f"task {task.get('id')}"
    data = task.get("data")
    key = "annotations" if "annotations" in task else "completions"
    annotations = task.get(key)
    if not isinstance(data, dict) or (annotations is not None and not isinstance(annotations, list)):
        yield Task(None, origin, error=f"{where}: not a Label Studio task ('data' object, '{key}' list)")
        return
    yield from _not_annotations(origin, task, where)
    annotations = [a for a in annotations or [] if isinstance(a, dict)]
    if not annotations:
        yield Task(None, origin, error=f"{where}: no annotation", reason="labelstudio_no_annotation")
        return
    text_key, why = _pick_text(data, _all_region_values(annotations))
    meta = _meta(task, data, text_key)
    for annotation in annotations:
        who = _annotator(annotation.get("completed_by"))
        here = f"{where} annotation {annotation.get('id')} by {who or 'an unnamed annotator'}"
        if annotation.get("was_cancelled") or annotation.get("skipped"):
            yield Task(None, origin, error=f"{here}: cancelled (skipped)", reason="labelstudio_cancelled")
            continue
        verdict = _review(annotation)
        if verdict is False:
            why = f"{here}: rejected by its latest review"
            yield Task(None, origin, error=why, reason="labelstudio_review_rejected")
            continue
        if text_key is None:
            yield Task(None, origin, error=f"{here}: {why}", reason="missing_text")
            continue
        unsupported = _unsupported(annotation)
        if unsupported:
            yield Task(
                None,
                origin,
                error=f"{here}: regions of type {', '.join(unsupported)} have no character offsets",
                reason="labelstudio_unsupported_region",
            )
            continue
        try:
            spans = _spans(data[text_key], _regions(annotation), here)
        except ValueError as err:
            yield Task(None, origin, error=str(err), reason="bad_spans")
            continue
        yield Task(
            prodigy_task(
                data[text_key],
                spans,
                who,
                meta,
                timestamp=_timestamp(annotation),
                review=bool(annotation.get("ground_truth")) or verdict is True,
            ),
            origin,
        )


def _min_task(origin: Origin, row: Dict[str, Any]) -> Iterator[Task]:
    """A JSON-MIN row: one annotation, its regions under the control's name."""
    who = _annotator(row.get("annotator"))
    here = f"task {row.get('id')} annotation {row.get('annotation_id')} by {who or 'an unnamed annotator'}"
    region_keys = [
        k for k, v in row.items()
        if k not in MIN_RESERVED and isinstance(v, list) and all(isinstance(r, dict) and "labels" in r for r in v)
    ]
    data = {k: v for k, v in row.items() if k not in MIN_RESERVED and k not in region_keys}
    regions = [{"type": SPAN_TYPE, "value": v, "id": i} for k in region_keys for i, v in enumerate(row[k])]
    text_key, why = _pick_text(data, [r["value"] for r in regions])
    if text_key is None:
        yield Task(None, origin, error=f"{here}: {why}", reason="missing_text")
        return
    try:
        spans = _spans(data[text_key], regions, here)
    except ValueError as err:
        yield Task(None, origin, error=str(err), reason="bad_spans")
        return
    meta = _meta({"id": row.get("id")}, data, text_key)
    yield Task(prodigy_task(data[text_key], spans, who, meta, timestamp=_timestamp(row)), origin)


@register_reader(FORMAT, detect=is_label_studio, priority=5)
def read_label_studio(source: str, datasets: Optional[Sequence[str]], options: ReadOptions) -> Iterator[Task]:
    """A Label Studio export (JSON, JSON-MIN, 0.x or 1.x, a JSON array, JSON
    lines or one task per file): one task per annotation, draft, prediction
    (or task without any), each located by the line where its task starts.

    source (str): The export file (gzip too), or a folder of one-task files.
    datasets (Optional[Sequence[str]]): Ignored (one export is one project).
    options (ReadOptions): Unused.
    YIELDS (Task): The tasks.
    """
    path = Path(source)
    if path.is_dir():
        files = _folder_files(source)
        if not files:
            raise IngestError(f"{source}: no Label Studio task files (<task id>.json) in this folder")
        for file in files:
            yield from read_label_studio(str(file), datasets, options)
        return
    if not path.is_file():
        raise IngestError(f"{source}: no such file")
    seen = peek(source)
    if seen is None or seen.layout not in ("array", "jsonl", "object"):
        raise IngestError(f"{source}: not a Label Studio export: it {describe(source)}")
    if seen.first is not None and record_kind(seen.first) not in KINDS:
        raise IngestError(
            f"{source}: not a Label Studio export (tasks with 'data' and 'annotations' or 'completions', "
            f"or JSON-MIN rows): it {describe(source)}"
        )
    dataset = path.name.split(".")[0]
    for index, line, task, error in iter_records(path, seen.layout):
        origin = Origin(source, line=line, dataset=dataset)
        at = f"record {index} of the array: " if index is not None and seen.layout == "array" else ""
        if error is not None:
            yield Task(None, origin, error=error)
            continue
        if not isinstance(task, dict):
            yield Task(None, origin, error=f"{at}malformed task: a JSON {type(task).__name__}, not an object")
            continue
        if record_kind(task) == "labelstudio_min":
            yield from _min_task(origin, task)
        else:
            yield from _task_tasks(origin, task)
