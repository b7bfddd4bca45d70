"""The one flattening codec: overlapping spans to one tag per token and back.

A token classifier has one tag per token; spancat keeps overlapping spans.
Flattening keeps a set of spans no two of which share a token, by a policy
(`longest`, `priority`, `first`, registered as `biomed.flatten_*.v1`), and
returns what it dropped, so the loss can be counted; `spans_to_iob` and
`iob_to_spans` encode and decode the flat spans. Used by the Hugging Face
export (`export_hf`) and the BIO baseline (`bio_baseline`).

Project tooling, never imported by a loaded pipeline.
"""
from functools import partial
from typing import Any, Callable, Iterable, List, Sequence, Tuple

from spacy.tokens import Doc
from spacy.util import registry

__all__ = [
    "SpanTuple",
    "Flattener",
    "POLICIES",
    "ExportError",
    "make_flattener",
    "flatten_spans",
    "flatten_longest",
    "flatten_first",
    "flatten_by_priority",
    "spans_to_iob",
    "iob_to_spans",
    "doc_spans",
]

# (token start, token end exclusive, label): the unit every policy works on.
SpanTuple = Tuple[int, int, str]
# A flattener takes a doc's spans in annotation order and returns (kept, dropped).
Flattener = Callable[[Sequence[SpanTuple]], Tuple[List[SpanTuple], List[SpanTuple]]]

POLICIES = ("longest", "priority", "first")


class ExportError(ValueError):
    """Bad input to the export, with the file and the reason in the message."""


# ---------------------------------------------------------------------------
# Flattening policies
# ---------------------------------------------------------------------------


def _overlaps(a: SpanTuple, b: SpanTuple) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def flatten_spans(
    spans: Sequence[SpanTuple], key: Callable[[int, SpanTuple], Any]
) -> Tuple[List[SpanTuple], List[SpanTuple]]:
    """Keep spans greedily in `key` order, dropping any that overlaps a kept one.

    A span that overlaps nothing is always kept, so only overlapping spans can
    be lost. Spans repeated with the same offsets and label count once.

    spans (Sequence[SpanTuple]): A doc's spans in annotation order.
    key (Callable[[int, SpanTuple], Any]): Sort key from (annotation index, span).
    RETURNS (Tuple[List[SpanTuple], List[SpanTuple]]): Kept spans sorted by
        position, and dropped spans in annotation order.
    """
    unique = list(dict.fromkeys(spans))
    order = sorted(range(len(unique)), key=lambda i: key(i, unique[i]))
    kept: List[SpanTuple] = []
    dropped_idx = set()
    for i in order:
        span = unique[i]
        if any(_overlaps(span, k) for k in kept):
            dropped_idx.add(i)
        else:
            kept.append(span)
    kept.sort()
    return kept, [s for i, s in enumerate(unique) if i in dropped_idx]


def flatten_longest(spans: Sequence[SpanTuple]) -> Tuple[List[SpanTuple], List[SpanTuple]]:
    """Longest span first; ties go to the leftmost, then the first annotated."""
    return flatten_spans(spans, lambda i, s: (s[0] - s[1], s[0], i))


def flatten_first(spans: Sequence[SpanTuple]) -> Tuple[List[SpanTuple], List[SpanTuple]]:
    """The first annotated span wins: the order of the doc's SpanGroup. (A
    corpus written by `convert` stores its spans sorted by position, so there
    this is the leftmost span, then the shorter one.)"""
    return flatten_spans(spans, lambda i, s: i)


def flatten_by_priority(
    spans: Sequence[SpanTuple], priority: Sequence[str]
) -> Tuple[List[SpanTuple], List[SpanTuple]]:
    """Labels earlier in `priority` win; unlisted labels come after all listed
    ones; ties (same rank) go to the longest, then the leftmost span."""
    rank = {label: r for r, label in enumerate(priority)}
    return flatten_spans(
        spans, lambda i, s: (rank.get(s[2], len(rank)), s[0] - s[1], s[0], i)
    )


@registry.misc("biomed.flatten_longest.v1")
def make_flatten_longest() -> Flattener:
    """Registered policy: longest span first."""
    return flatten_longest


@registry.misc("biomed.flatten_first.v1")
def make_flatten_first() -> Flattener:
    """Registered policy: first annotated span first."""
    return flatten_first


@registry.misc("biomed.flatten_priority.v1")
def make_flatten_priority(priority: List[str]) -> Flattener:
    """Registered policy: a label priority order (earlier wins).

    priority (List[str]): Labels, highest priority first.
    RETURNS (Flattener): The flattening function.
    """
    if not priority:
        raise ExportError("the 'priority' policy needs a label order (--priority PR,CHEBI,...)")
    return partial(flatten_by_priority, priority=tuple(priority))


def make_flattener(policy: str, priority: Sequence[str] = ()) -> Flattener:
    """Fetch a flattening policy by its short name through the registry.

    policy (str): One of POLICIES.
    priority (Sequence[str]): Label order for the 'priority' policy.
    RETURNS (Flattener): The flattening function.
    """
    if policy not in POLICIES:
        raise ExportError(f"unknown flattening policy '{policy}' (choose from {', '.join(POLICIES)})")
    factory = registry.misc.get(f"biomed.flatten_{policy}.v1")
    return factory(list(priority)) if policy == "priority" else factory()


# ---------------------------------------------------------------------------
# IOB and span conversions
# ---------------------------------------------------------------------------


def spans_to_iob(n_tokens: int, spans: Iterable[SpanTuple]) -> List[str]:
    """Encode non-overlapping token spans as IOB tags ("O", "B-X", "I-X").

    n_tokens (int): Length of the doc.
    spans (Iterable[SpanTuple]): Non-overlapping spans.
    RETURNS (List[str]): One tag per token.
    """
    tags = ["O"] * n_tokens
    for start, end, label in spans:
        if not 0 <= start < end <= n_tokens:
            raise ValueError(f"span ({start}, {end}, {label}) is outside a doc of {n_tokens} tokens")
        if any(t != "O" for t in tags[start:end]):
            raise ValueError(f"span {(start, end, label)} overlaps another: flatten first")
        tags[start] = f"B-{label}"
        for i in range(start + 1, end):
            tags[i] = f"I-{label}"
    return tags


def iob_to_spans(tags: Sequence[str]) -> List[SpanTuple]:
    """Decode IOB tags back into token spans.

    An "I-X" after "O" or after another label starts a span, as seqeval and
    conlleval do, so tags written by hand decode without an error.

    tags (Sequence[str]): One tag per token.
    RETURNS (List[SpanTuple]): The spans, in order.
    """
    spans: List[SpanTuple] = []
    start, label = None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, _, name = tag.partition("-")
        if start is not None and (prefix != "I" or name != label):
            spans.append((start, i, label))
            start, label = None, None
        if prefix == "B" or (prefix == "I" and start is None):
            start, label = i, name
        elif prefix not in ("I", "O"):
            raise ValueError(f"token {i}: {tag!r} is not an IOB tag (O, B-LABEL, I-LABEL)")
    return spans


def doc_spans(doc: Doc, spans_key: str) -> List[SpanTuple]:
    """A doc's spans under `spans_key`, in annotation order ([] if the key is absent)."""
    if spans_key not in doc.spans:
        return []
    return [(s.start, s.end, s.label_) for s in doc.spans[spans_key]]


