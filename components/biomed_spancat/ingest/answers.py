"""What a Prodigy answer means: a complete span annotation, a binary
(accept/reject) judgement of model-proposed spans, or no annotation at all.

A binary answer says something about the spans it shows and nothing about
the rest of the text, so it must never be trained on as if it were complete
(spancat takes every unmarked span as a negative). It is recognised from the
interface (`_view_id`) and, since older exports have no `_view_id`, from the
content:

- spans that carry their own `answer` (accept/reject per span, as Prodigy's
  support forum recommends for merged binary data: "keep the top-level answer
  as accept, but add an additional answer to each span");
- model-proposed spans: `rank` or `priority` on a span; a `score` on the
  only span of a task (teach recipes show one suggestion at a time) or on
  the spans of a task without `tokens`; a task without `tokens` whose spans
  name their `source`/`input_hash`; a task-level `score`/`priority` (what
  `ner.teach`'s sorter adds). Several scored spans on a task's own tokens
  are a pre-annotation (`preannotate`'s review tasks imported with
  `db-in`), a complete annotation;
- a `review` of a binary dataset (`view_id` names the binary interface).

A manual interface (`spans_manual`, `ner_manual`, ...) stays complete even
when its spans came from a model (`ner.correct`/`spans.correct` keep
`source`/`input_hash` on the spans they pre-highlighted).
"""

from typing import Any, Dict, Optional, Tuple

__all__ = ["BINARY_VIEWS", "SPAN_VIEWS", "MODEL_SPAN_KEYS", "answer_kind", "classify_answer", "span_answer"]

# Interfaces that show suggestions to accept or reject, and the recipe family
# that uses each (the kind counted in the report's `binary_answers`).
BINARY_VIEWS = {"ner": "ner.teach", "spans": "spans.teach", "classification": "classification", "binary": "binary"}
# Interfaces whose answers are complete span annotations.
SPAN_VIEWS = {"spans_manual", "ner_manual", "review", "blocks", "relations"}
# Keys that only a model's proposal puts on a span.
MODEL_SPAN_KEYS = ("score", "rank", "priority")
ANSWERS = ("accept", "reject", "ignore")


def span_answer(span: Dict[str, Any], task_answer: Any) -> Any:
    """The answer that applies to one span: its own `answer` when it has one,
    else the task's."""
    own = span.get("answer")
    return own if own is not None else task_answer


def answer_kind(data: Dict[str, Any]) -> Optional[str]:
    """Decide, from the interface and the content, whether a task is a binary
    or partial answer rather than a complete annotation.

    data (Dict[str, Any]): The task.
    RETURNS (Optional[str]): The kind ("ner.teach", "spans.teach",
        "span answers", "review of ner.teach", ...), or None for a complete
        annotation (or a task that is not an answer at all).
    """
    view = data.get("_view_id")
    if view in BINARY_VIEWS:
        return BINARY_VIEWS[view]
    if view == "review" and data.get("view_id") in BINARY_VIEWS:
        return f"review of {BINARY_VIEWS[data['view_id']]}"
    if view is not None and view in SPAN_VIEWS:
        return None
    if view is not None:  # an interface that holds no spans: classify_answer says so
        return None
    spans = data.get("spans")
    spans = [s for s in spans if isinstance(s, dict)] if isinstance(spans, list) else []
    # A teach recipe shows one suggested span per task (with its score, often a rank); a
    # pre-annotated task (our preannotate, spans.correct without its view id) carries several
    # scored spans on its tokens and stays complete.
    if any("rank" in s or "priority" in s for s in spans):
        return "ner.teach"
    if any("score" in s for s in spans) and (len(spans) == 1 or not data.get("tokens")):
        return "ner.teach"
    if not data.get("tokens") and any("source" in s or "input_hash" in s for s in spans):
        return "ner.teach"
    if spans and ("score" in data or "priority" in data):
        return "ner.teach"
    if any(s.get("answer") is not None for s in spans):
        return "span answers"
    return None


def classify_answer(data: Dict[str, Any]) -> Optional[Tuple[str, str]]:
    """Decide whether a parsed task is a complete, accepted annotation.

    data (Dict[str, Any]): The task.
    RETURNS (Optional[Tuple[str, str]]): None for a complete (accepted) span
        annotation; else (reason, detail): binary answers, rejects, ignores,
        missing answers, interfaces that hold no spans.
    """
    answer = data.get("answer")
    kind = answer_kind(data)
    if kind is not None:
        return (
            "binary_answer",
            f"{kind} answer ({answer}): model-proposed spans judged one by one, not a complete annotation",
        )
    view = data.get("_view_id")
    if view is not None and view not in SPAN_VIEWS:
        return "unsupported_view", f"interface '{view}' holds no span annotation"
    if answer == "accept":
        return None
    if answer in ("reject", "ignore"):
        return f"answer_{answer}", f"answer is '{answer}'"
    if answer is None:
        return "no_answer", "the task has no 'answer' (not annotated?)"
    return "unknown_answer", f"unknown answer {answer!r}"
