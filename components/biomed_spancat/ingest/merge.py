"""Merging several annotators' versions of one input into one annotation.

Versions belong together when they share the role, `_input_hash` and `meta`
(so identical texts from different documents, which share Prodigy's input
hash, are never merged). Within a group:

1. exact duplicates (same text, tokens, spans, meta, annotator, answer)
   collapse to one and are counted as duplicates;
2. an annotator who answered the same input more than once is represented
   by their latest answer (`_timestamp`), the others are merged away;
3. the policy picks the result:

- `majority` (default): span-level majority; a span is kept when more than
  half of the annotators marked it (with two annotators: both).
- `latest`: the latest answer by `_timestamp` wins (ties: the one read last).
- `review`: the `review` recipe's answer wins (its final spans, not the
  versions it merged); groups without a review fall back to `majority`.

Disagreements (a span not marked by every annotator of a group) are counted
per label.
"""

from collections import Counter, OrderedDict
from typing import Dict, Iterable, Iterator, List, Tuple

from .tasks import Ledger
from .validate import Annotation, SpanTuple, snap_span

__all__ = ["MERGE_POLICIES", "Grouper", "merge_group"]

MERGE_POLICIES = ("majority", "latest", "review")


class Grouper:
    """Collects annotations by group key, dropping exact duplicates as they
    arrive (only a 16-byte digest is remembered per task)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.groups: "OrderedDict[Tuple, List[Annotation]]" = OrderedDict()
        self.seen: Dict[Tuple, set] = {}

    def add(self, annotation: Annotation) -> bool:
        """Add one annotation. RETURNS (bool): False when it was a duplicate."""
        key = annotation.group_key
        digests = self.seen.setdefault(key, set())
        if annotation.dedup_key in digests:
            self.ledger.duplicates += 1
            return False
        digests.add(annotation.dedup_key)
        self.groups.setdefault(key, []).append(annotation)
        return True

    def doc_sizes(self, role: str = "train") -> Counter:
        """RETURNS (Counter): Document key -> number of inputs (one kept doc
        each after merging) of the given role."""
        return Counter(versions[0].doc_key for versions in self.groups.values() if versions[0].role == role)

    def merged(self, policy: str) -> Iterator[Annotation]:
        """Yield one merged annotation per group, counting merges and
        disagreements in the ledger; groups are released as they are merged."""
        while self.groups:
            key, versions = self.groups.popitem(last=False)
            self.seen.pop(key, None)
            yield merge_group(versions, policy, self.ledger)


def _latest(versions: Iterable[Annotation]) -> Annotation:
    best = None
    for v in versions:  # ">=" so that on equal timestamps the one read last wins
        if best is None or v.timestamp >= best.timestamp:
            best = v
    assert best is not None
    return best


def merge_group(versions: List[Annotation], policy: str, ledger: Ledger) -> Annotation:
    """Merge the versions of one input into one annotation.

    versions (List[Annotation]): The (deduplicated) versions, in read order.
    policy (str): "majority", "latest" or "review".
    ledger (Ledger): Merges and disagreements are counted here.
    RETURNS (Annotation): The merged annotation.
    """
    if policy not in MERGE_POLICIES:
        raise ValueError(f"unknown merge policy '{policy}' (choose from {', '.join(MERGE_POLICIES)})")
    if len(versions) == 1:
        return versions[0]
    ledger.groups_merged += 1
    ledger.merged += len(versions) - 1
    # one vote per annotator: their latest answer
    by_annotator: "OrderedDict[str, List[Annotation]]" = OrderedDict()
    for v in versions:
        by_annotator.setdefault(v.annotator, []).append(v)
    voters = [_latest(vs) for vs in by_annotator.values()]
    if len(voters) > 1:
        sets = [set(v.char_spans) for v in voters]
        union = set().union(*sets)
        common = set.intersection(*sets)
        disputed = union - common
        if disputed:
            ledger.groups_with_disagreement += 1
            for _, _, label in disputed:
                ledger.disagreements[label] += 1
    if policy == "latest":
        return _latest(voters)
    if policy == "review":
        reviews = [v for v in versions if v.is_review]
        if reviews:
            return _latest(reviews)
    return _majority(voters, ledger)


def _majority(voters: List[Annotation], ledger: Ledger) -> Annotation:
    if len(voters) == 1:
        return voters[0]
    votes: Counter = Counter()
    for v in voters:
        votes.update(set(v.char_spans))
    keep = {span for span, n in votes.items() if 2 * n > len(voters)}
    base = _latest(voters)  # tokens of the latest version carry the result
    if keep == set(base.char_spans):
        return base
    starts, ends = list(base.starts), list(base.ends)
    token_spans: Dict[SpanTuple, SpanTuple] = {}
    for start, end, label in keep:
        placed = snap_span(start, end, starts, ends, "strict")
        if placed is None:  # annotators' tokens differed: cover every token touched
            ledger.spans_misaligned[label] += 1
            placed = snap_span(start, end, starts, ends, "expand")
        if placed is not None:
            token_spans[(placed[0], placed[1], label)] = (start, end, label)
    spans = sorted(token_spans)
    return Annotation(
        text=base.text,
        starts=base.starts,
        ends=base.ends,
        spaces=base.spaces,
        spans=spans,
        char_spans=[token_spans[s] for s in spans],
        group_key=base.group_key,
        doc_key=base.doc_key,
        dedup_key=base.dedup_key,
        annotator="+".join(v.annotator for v in voters),
        timestamp=base.timestamp,
        is_review=False,
        answer=base.answer,
        origin=base.origin,
        role=base.role,
        input_hash=base.input_hash,
    )
