"""Argilla 1.x (and Rubrix) TokenClassification records, read by the
`argilla` reader beside the 2.x records.

A 1.x record, as `rg.load(...)` returns it and as its exports write it
(`to_pandas().to_json(orient="records", lines=True)`, `to_datasets()` saved
with `to_json` or pushed to the Hub as parquet):

    {"text", "tokens": [...], "annotation": [[label, start, end], ...] or
     [{"label", "start", "end"}, ...], "annotation_agent", "prediction":
     [[label, start, end, score], ...] or [{"label", "start", "end",
     "score"}, ...], "prediction_agent", "status": "Default" | "Validated" |
     "Discarded" | "Edited", "id", "metadata", "event_timestamp", "metrics",
     "search_keywords", "vectors"}

Offsets are characters into `text` (field names from argilla 1.x's
`TokenClassificationRecord` and `DatasetForTokenClassification._to_datasets_dict`).

Each record is one annotation when its status is `Validated` (or
`Completed`) and it has an `annotation` (an empty list is an annotation with
no spans); otherwise it is counted as rejected by its status
(`argilla_default`, `argilla_discarded`, `argilla_edited`,
`argilla_not_validated`, or `argilla_no_annotation` for a validated record
without one). A `prediction` is never an annotation: each record that has
one adds one rejected record `argilla_prediction`. The annotator
(`annotation_agent` or `annotated_by`) becomes a pseudonym; metadata keys
that name people are not copied.
"""

import json
from typing import Any, Dict, Iterator, List, Optional

from ._bridge import parse_time, prodigy_task, scrub_meta
from .tasks import Origin, Task, pseudonym

__all__ = ["v1_tasks", "tokens_for"]

KEPT_STATUSES = {"Validated", "Completed"}
STATUS_REASONS = {"Default": "argilla_default", "Discarded": "argilla_discarded", "Edited": "argilla_edited"}


def tokens_for(text: str, tokens: Any) -> Optional[List[Dict[str, Any]]]:
    """Prodigy tokens for Argilla's token strings, when they rebuild the text
    exactly (one space or nothing between tokens); else None (the text is
    tokenized later, and spans are aligned by `--align`)."""
    if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) and t for t in tokens):
        return None
    out: List[Dict[str, Any]] = []
    pos = 0
    for i, token in enumerate(tokens):
        if text.startswith(token, pos):
            start = pos
        elif text.startswith(" " + token, pos) and pos > 0:
            start = pos + 1
            out[-1]["ws"] = True
        else:
            return None
        out.append({"text": token, "start": start, "end": start + len(token), "id": i, "ws": False})
        pos = start + len(token)
    return out if pos == len(text) else None


def _spans(entities: Any, where: str) -> List[Dict[str, Any]]:
    """[label, start, end(, score)] lists or {"label", "start", "end"} dicts
    to spans; RAISES (ValueError) naming the first bad entity."""
    if not isinstance(entities, list):
        raise ValueError(f"{where}: 'annotation' is not a list of [label, start, end]")
    spans = []
    for k, ent in enumerate(entities):
        if isinstance(ent, dict) and {"label", "start", "end"} <= set(ent):
            label, start, end = ent["label"], ent["start"], ent["end"]
        elif isinstance(ent, (list, tuple)) and len(ent) in (3, 4):
            label, start, end = ent[0], ent[1], ent[2]
        else:
            raise ValueError(f"{where}: annotation entity {k} is {ent!r}, not [label, start, end]")
        spans.append({"start": start, "end": end, "label": label})
    return spans


def _metadata(value: Any) -> Dict[str, Any]:
    if isinstance(value, str):  # some exports serialise metadata as a JSON string
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return {}
    if not isinstance(value, dict):
        return {}
    return scrub_meta({k: v for k, v in value.items() if isinstance(v, (str, int, float, bool))})


def v1_tasks(origin: Origin, data: Dict[str, Any], dataset: str) -> Iterator[Task]:
    """The tasks of one Argilla 1.x TokenClassification record.

    origin (Origin): Where the record was read.
    data (Dict[str, Any]): The record.
    dataset (str): The dataset (file) name, for the meta.
    YIELDS (Task): The annotation (or its rejection), then one rejected
        record for its prediction, if it has one.
    """
    record_id = data.get("id")
    where = f"record {record_id}"
    if data.get("prediction") is not None:
        # `prediction_agent` is free text (a model, or a person): not repeated in messages
        yield Task(None, origin, error=f"{where}: a prediction is not an annotation", reason="argilla_prediction")
    status = data.get("status")
    agent = data.get("annotated_by", data.get("annotation_agent"))
    who = pseudonym(agent, "argilla") if agent not in (None, "") else None
    if status not in KEPT_STATUSES:
        reason = STATUS_REASONS.get(str(status), "argilla_not_validated")
        yield Task(None, origin, error=f"{where}: status {status}, not validated", reason=reason)
        return
    annotation = data.get("annotation")
    if annotation is None:
        yield Task(None, origin, error=f"{where}: status {status} but no annotation", reason="argilla_no_annotation")
        return
    text = data.get("text")
    if not isinstance(text, str):
        yield Task(None, origin, error=f"{where}: 'text' is missing or not a string", reason="missing_text")
        return
    try:
        spans = _spans(annotation, where)
    except ValueError as err:
        yield Task(None, origin, error=str(err), reason="bad_spans")
        return
    meta: Dict[str, Any] = {"source": "argilla", "dataset": dataset, "record_id": str(record_id)}
    for key, value in _metadata(data.get("metadata")).items():
        meta.setdefault(key, value)
    task = prodigy_task(text, spans, who, meta, timestamp=parse_time(data.get("event_timestamp")))
    tokens = tokens_for(text, data.get("tokens"))
    if tokens is not None:
        task["tokens"] = tokens
    yield Task(task, origin)
