"""Reader for Label Studio JSON exports of span (NER) annotations.

The export is a JSON array of tasks: `{"id", "data": {"text": ...},
"annotations": [{"id", "completed_by", "result": [{"type": "labels",
"value": {"start", "end", "text", "labels": [...]}}, ...], "was_cancelled",
"ground_truth", "created_at", "updated_at", ...}], "predictions": [...],
"meta": {...}}`. `completed_by` is a user id, or an object with one.

Each annotation is one task: its `labels` regions become spans (one per
label when a region has several), its annotator `labelstudio:<user id>`,
its `updated_at` the timestamp `--merge latest` uses, and a `ground_truth`
annotation counts as the reviewed answer that `--merge review` prefers.
Skipped (cancelled: `was_cancelled`) annotations and tasks without any
annotation are counted as rejected (`labelstudio_cancelled`,
`labelstudio_no_annotation`). Predictions and drafts are not annotations
and are not read. Label Studio measures offsets in UTF-16 code units (it
runs in a browser); where the text has characters outside the BMP they are
converted to Python's code points, checked against each region's `text`.
"""

from datetime import datetime
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ._bridge import iter_json_array, prodigy_task, sniff
from .readers import ReadOptions, register_reader
from .tasks import IngestError, Origin, Task

__all__ = ["read_label_studio", "is_label_studio", "utf16_to_codepoints"]

FORMAT = "labelstudio"
SPAN_TYPE = "labels"


def is_label_studio(source: str) -> bool:
    """Whether a source is a Label Studio JSON export (sniffed from its start)."""
    path, head = sniff(source)
    if path is None or not head:
        return False
    return head.lstrip().startswith("[") and '"annotations"' in head and '"data"' in head


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


def _annotator(completed_by: Any) -> str:
    if isinstance(completed_by, dict):
        completed_by = completed_by.get("id", completed_by.get("email"))
    return f"labelstudio:{completed_by}"


def _timestamp(annotation: Dict[str, Any]) -> Optional[float]:
    for key in ("updated_at", "created_at"):
        value = annotation.get(key)
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
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


def _pick_text(data: Dict[str, Any], annotations: List[Dict[str, Any]]) -> Tuple[Optional[str], str]:
    """The data key holding the annotated text: `text`, the only string, or
    the string every region's `value.text` matches. RETURNS (key or None, why)."""
    if isinstance(data.get("text"), str):
        return "text", ""
    candidates = [k for k, v in data.items() if isinstance(v, str)]
    if len(candidates) == 1:
        return candidates[0], ""
    regions = []
    for annotation in annotations:
        try:
            regions.extend(r.get("value") or {} for r in _regions(annotation))
        except ValueError:
            continue
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


def _meta(task: Dict[str, Any], text_key: Optional[str]) -> Dict[str, Any]:
    meta: Dict[str, Any] = {"source": "labelstudio", "task_id": task.get("id")}
    if task.get("project") is not None:
        meta["project"] = task.get("project")
    extra = task.get("meta")
    if isinstance(extra, dict):
        meta.update(extra)
    data = task.get("data") if isinstance(task.get("data"), dict) else {}
    for key, value in data.items():
        if key != text_key and (
            isinstance(value, (int, float, bool)) or (isinstance(value, str) and len(value) <= 200)
        ):
            meta.setdefault(key, value)
    return meta


def _task_tasks(origin: Origin, task: Dict[str, Any]) -> Iterator[Task]:
    where = f"task {task.get('id')}"
    data = task.get("data")
    annotations = task.get("annotations")
    if not isinstance(data, dict) or (annotations is not None and not isinstance(annotations, list)):
        yield Task(None, origin, error=f"{where}: not a Label Studio task ('data' object, 'annotations' list)")
        return
    annotations = [a for a in annotations or [] if isinstance(a, dict)]
    if not annotations:
        yield Task(None, origin, error=f"{where}: no annotation", reason="labelstudio_no_annotation")
        return
    text_key, why = _pick_text(data, annotations)
    meta = _meta(task, text_key)
    for annotation in annotations:
        who = _annotator(annotation.get("completed_by"))
        here = f"{where} annotation {annotation.get('id')} by {who}"
        if annotation.get("was_cancelled"):
            yield Task(None, origin, error=f"{here}: cancelled (skipped)", reason="labelstudio_cancelled")
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
                review=bool(annotation.get("ground_truth")),
            ),
            origin,
        )


@register_reader(FORMAT, detect=is_label_studio, priority=5)
def read_label_studio(source: str, datasets: Optional[Sequence[str]], options: ReadOptions) -> Iterator[Task]:
    """A Label Studio JSON export: one task per annotation (or per task
    without any), each located by the line where its task starts.

    source (str): The export file (a JSON array; gzip too).
    datasets (Optional[Sequence[str]]): Ignored (one export is one project).
    options (ReadOptions): Unused.
    YIELDS (Task): The tasks.
    """
    path = Path(source)
    if not path.is_file():
        raise IngestError(f"{source}: no such file")
    dataset = path.name.split(".")[0]
    for _index, line, task in iter_json_array(path):
        origin = Origin(source, line=line, dataset=dataset)
        if not isinstance(task, dict):
            yield Task(None, origin, error=f"malformed task: a JSON {type(task).__name__}, not an object")
            continue
        yield from _task_tasks(origin, task)
