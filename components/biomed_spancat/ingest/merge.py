"""Merging several answers to one input into one annotation.

Answers belong together when they share the role, `_input_hash` and `meta`
(so identical texts from different documents, which share Prodigy's input
hash, are never merged). Within a group:

1. exact duplicates (same text, tokens, spans, meta, annotator, answer)
   collapse to one and are counted as duplicates;
2. one annotator, several answers: their latest answer (`_timestamp`, then
   the order read) is theirs. A later `reject` withdraws their earlier
   accepts (rejected as `withdrawn_by_later_reject`; under the `review`
   policy, a review answered reject withdraws every accept of the input,
   `withdrawn_by_review_reject`); an earlier accept
   replaced by a later accept is merged away and counted as `superseded`.
   A task that names no annotator (`_annotator_id`, `_session_id`) is taken
   as the same unknown annotator as every other such task of its source;
3. the policy picks the result from each annotator's latest accept:

- `majority` (default): span-level majority; a span is kept when more than
  half of the annotators marked it (with two annotators: both).
- `latest`: the latest answer by `_timestamp` wins (ties: the one read last).
- `review`: the `review` recipe's answer wins (its final spans, not the
  versions it merged); groups without a review fall back to `majority`.

Disagreements (a span not marked by every annotator of a group; for an
unknown annotator, a span not in all of their versions, since nothing says
they are one person) are counted per label.
"""

from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Optional, Tuple, Union

from .tasks import Ledger, Origin
from .validate import Annotation, AnswerKeys, SpanTuple, snap_span

__all__ = ["MERGE_POLICIES", "Grouper", "Withdrawal", "merge_group"]

MERGE_POLICIES = ("majority", "latest", "review")


@dataclass(frozen=True)
class Withdrawal:
    """A `reject` answer to an input: it withdraws the same annotator's
    earlier accepts of that input.

    annotator (str): Opaque annotator id.
    timestamp (float): `_timestamp` (0 when absent).
    origin (Origin): Where the reject was read.
    doc_key (str): The document of the input.
    role (str): train, dev or test.
    is_review (bool): A reject from the `review` recipe: under the `review`
        policy, when it is the latest review of the input, it withdraws every
        accept of the input.
    """

    annotator: str
    timestamp: float
    origin: Origin
    doc_key: str
    role: str
    is_review: bool = False

    @classmethod
    def from_keys(cls, keys: AnswerKeys, origin: Origin, role: str, is_review: bool = False) -> "Withdrawal":
        return cls(keys.annotator, keys.timestamp, origin, keys.doc_key, role, is_review)


Answer = Union[Annotation, Withdrawal]


class Grouper:
    """Collects annotations by group key, dropping exact duplicates as they
    arrive (only a 16-byte digest is remembered per task), and the rejects
    that may withdraw them."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.groups: "OrderedDict[Tuple, List[Answer]]" = OrderedDict()
        self.seen: Dict[Tuple, Dict[bytes, Annotation]] = {}

    def add(self, annotation: Annotation) -> bool:
        """Add one annotation; of two exact duplicates the one answered (or
        read) last stays, so that it keeps its place among that annotator's
        answers. RETURNS (bool): False when it was a duplicate."""
        key = annotation.group_key
        digests = self.seen.setdefault(key, {})
        versions = self.groups.setdefault(key, [])
        old = digests.get(annotation.dedup_key)
        if old is not None:
            self.ledger.duplicates += 1
            if annotation.timestamp < old.timestamp:
                return False
            versions[:] = [v for v in versions if v is not old]
        digests[annotation.dedup_key] = annotation
        versions.append(annotation)
        return old is None

    def withdraw(self, keys: AnswerKeys, origin: Origin, role: str, is_review: bool = False) -> None:
        """Record a reject (already counted as rejected) so that it withdraws
        the same annotator's earlier accepts of the same input (and, from the
        `review` recipe under the `review` policy, every accept of it)."""
        self.groups.setdefault(keys.group_key, []).append(Withdrawal.from_keys(keys, origin, role, is_review))

    def doc_sizes(self, role: str = "train") -> Counter:
        """RETURNS (Counter): Document key -> number of inputs (one kept doc
        each after merging) of the given role."""
        sizes: Counter = Counter()
        for versions in self.groups.values():
            first = next((v for v in versions if isinstance(v, Annotation)), None)
            if first is not None and first.role == role:
                sizes[first.doc_key] += 1
        return sizes

    def merged(self, policy: str) -> Iterator[Annotation]:
        """Yield one merged annotation per group that still has an accepted
        answer, counting merges, withdrawals and disagreements in the ledger;
        groups are released as they are merged."""
        while self.groups:
            key, versions = self.groups.popitem(last=False)
            self.seen.pop(key, None)
            result = merge_group(versions, policy, self.ledger)
            if result is not None:
                yield result


def _latest(versions: Iterable[Annotation]) -> Annotation:
    best = None
    for v in versions:  # ">=" so that on equal timestamps the one read last wins
        if best is None or v.timestamp >= best.timestamp:
            best = v
    assert best is not None
    return best


def _withdraw(versions: List[Answer], policy: str, ledger: Ledger) -> List[Annotation]:
    """Drop every accept that a later reject withdrew (counted as rejected):
    its annotator's own, or under the `review` policy a review's that is the
    latest review of the input. RETURNS the accepts that stand, in read order."""
    last_reject: Dict[str, Tuple[float, int, Withdrawal]] = {}
    last_review: Optional[Tuple[float, int, Answer]] = None
    for i, v in enumerate(versions):
        if isinstance(v, Withdrawal):
            if v.annotator not in last_reject or (v.timestamp, i) >= last_reject[v.annotator][:2]:
                last_reject[v.annotator] = (v.timestamp, i, v)
        if v.is_review and (last_review is None or (v.timestamp, i) >= last_review[:2]):
            last_review = (v.timestamp, i, v)
    review_reject = last_review[2] if policy == "review" and last_review is not None else None
    if not isinstance(review_reject, Withdrawal):
        review_reject = None
    standing: List[Annotation] = []
    for i, v in enumerate(versions):
        if not isinstance(v, Annotation):
            continue
        later = last_reject.get(v.annotator)
        if review_reject is not None:
            ledger.withdrawn += 1
            ledger.reject_origin(
                v.origin,
                "withdrawn_by_review_reject",
                f"the review of this input answered 'reject' ({review_reject.origin})",
                v.input_hash,
                v.text,
            )
        elif later is not None and (v.timestamp, i) < later[:2]:
            ledger.withdrawn += 1
            ledger.reject_origin(
                v.origin,
                "withdrawn_by_later_reject",
                f"accepted, then rejected later by the same annotator ({later[2].origin})",
                v.input_hash,
                v.text,
            )
        else:
            standing.append(v)
    return standing


def _count_disagreements(voters: List[Annotation], unknown: List[List[Annotation]], ledger: Ledger) -> None:
    """Count the spans not marked in every opinion: each known annotator's
    latest answer, and every version of an unknown annotator."""
    opinions = [set(v.char_spans) for v in voters]
    for versions in unknown:
        opinions.extend(set(v.char_spans) for v in versions[:-1])  # the latest is among the voters
    if len(opinions) < 2:
        return
    disputed = set().union(*opinions) - set.intersection(*opinions)
    if disputed:
        ledger.groups_with_disagreement += 1
        for _, _, label in disputed:
            ledger.disagreements[label] += 1


def merge_group(versions: List[Answer], policy: str, ledger: Ledger) -> Optional[Annotation]:
    """Merge the answers to one input into one annotation.

    versions (List[Answer]): The (deduplicated) accepted annotations and the
        rejects (`Withdrawal`) of the input, in read order.
    policy (str): "majority", "latest" or "review".
    ledger (Ledger): Merges, withdrawals and disagreements are counted here.
    RETURNS (Optional[Annotation]): The merged annotation, or None when no
        accepted answer stands.
    """
    if policy not in MERGE_POLICIES:
        raise ValueError(f"unknown merge policy '{policy}' (choose from {', '.join(MERGE_POLICIES)})")
    standing = _withdraw(versions, policy, ledger)
    if not standing:
        return None
    if len(standing) == 1:
        return standing[0]
    ledger.groups_merged += 1
    ledger.merged += len(standing) - 1
    # one vote per annotator: their latest answer
    by_annotator: "OrderedDict[str, List[Annotation]]" = OrderedDict()
    for v in standing:
        by_annotator.setdefault(v.annotator, []).append(v)
    voters = []
    unknown = []
    for vs in by_annotator.values():
        latest = _latest(vs)
        voters.append(latest)
        ledger.superseded += len(vs) - 1
        if not latest.annotator_known and len(vs) > 1:
            unknown.append(sorted(vs, key=lambda v: v is latest))  # the latest last
    _count_disagreements(voters, unknown, ledger)
    if policy == "latest":
        return _latest(voters)
    if policy == "review":
        reviews = [v for v in standing if v.is_review]
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
        annotator_known=all(v.annotator_known for v in voters),
    )
