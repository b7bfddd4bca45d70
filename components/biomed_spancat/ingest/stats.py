"""Span statistics for the report: spans per label, overlaps and nesting per
label, span lengths."""

from collections import Counter, defaultdict
from typing import Any, Dict, Sequence, Tuple

__all__ = ["SpanStats"]


def _percentile(counts: Counter, q: float) -> int:
    total = sum(counts.values())
    if not total:
        return 0
    rank = q * (total - 1)
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen > rank:
            return value
    return max(counts)


class SpanStats:
    """Accumulates span statistics over docs, one `add` per doc.

    Per label: `spans`; `overlapping` (shares a token with another span of
    any label); `nested` (inside a longer span or holding a shorter one);
    `crossing` (partial overlap, neither inside the other); `same_extent`
    (same tokens as a span of another label); `same_label_overlaps` (overlaps
    a span of its own label). Lengths are in tokens.
    """

    def __init__(self) -> None:
        self.docs = 0
        self.tokens = 0
        self.spans: Counter = Counter()
        self.overlapping: Counter = Counter()
        self.nested: Counter = Counter()
        self.crossing: Counter = Counter()
        self.same_extent: Counter = Counter()
        self.same_label: Counter = Counter()
        self.lengths: Counter = Counter()
        self.lengths_by_label: Dict[str, Counter] = defaultdict(Counter)

    def add(self, n_tokens: int, spans: Sequence[Tuple[int, int, str]]) -> None:
        """Add one doc's spans: (token start, exclusive end, label), sorted."""
        self.docs += 1
        self.tokens += n_tokens
        n = len(spans)
        flags = [[False] * 5 for _ in range(n)]  # overlapping, nested, crossing, same extent, same label
        for i, (s, e, label) in enumerate(spans):
            self.spans[label] += 1
            self.lengths[e - s] += 1
            self.lengths_by_label[label][e - s] += 1
            # spans are sorted by start, so only later spans starting before e can overlap
            for j in range(i + 1, n):
                s2, e2, label2 = spans[j]
                if s2 >= e:
                    break
                for k in (i, j):
                    flags[k][0] = True
                if (s, e) == (s2, e2):
                    flags[i][3] = flags[j][3] = True
                elif s2 >= s and e2 <= e or s >= s2 and e <= e2:
                    flags[i][1] = flags[j][1] = True
                else:
                    flags[i][2] = flags[j][2] = True
                if label == label2:
                    flags[i][4] = flags[j][4] = True
        for (_, _, label), f in zip(spans, flags):
            for counter, flag in zip(
                (self.overlapping, self.nested, self.crossing, self.same_extent, self.same_label), f
            ):
                if flag:
                    counter[label] += 1

    def to_dict(self) -> Dict[str, Any]:
        labels = sorted(self.spans)
        total = sum(self.spans.values())
        overlapping = sum(self.overlapping.values())
        return {
            "docs": self.docs,
            "tokens": self.tokens,
            "spans": total,
            "spans_overlapping": overlapping,
            "share_overlapping": round(overlapping / total, 4) if total else 0.0,
            "per_label": {
                label: {
                    "spans": self.spans[label],
                    "overlapping": self.overlapping[label],
                    "nested": self.nested[label],
                    "crossing": self.crossing[label],
                    "same_extent": self.same_extent[label],
                    "same_label_overlaps": self.same_label[label],
                    "length": self._length_summary(self.lengths_by_label[label]),
                }
                for label in labels
            },
            "length": self._length_summary(self.lengths),
            "length_histogram": {str(k): v for k, v in sorted(self.lengths.items())},
        }

    @staticmethod
    def _length_summary(counts: Counter) -> Dict[str, Any]:
        if not counts:
            return {"min": 0, "median": 0, "p99": 0, "max": 0}
        return {
            "min": min(counts),
            "median": _percentile(counts, 0.5),
            "p99": _percentile(counts, 0.99),
            "max": max(counts),
        }
