"""What code written for NER pipelines and displaCy see: the spans kept, `doc.ents` from them, label colours.

spancat writes overlapping, scored spans to `doc.spans[key]`; `doc.ents`
cannot overlap, so code written for scispaCy or spaCy's NER models gets
nothing from it. The `biomed_spans_to_ents_v1` factory fills `doc.ents` from
the spans with a stated policy for overlaps. `label_colors` gives displaCy a
colour for each CRAFT label and a stable colour for any other label; the
package registers it under the `spacy_displacy_colors` entry point, which
displaCy reads, and the component adds the labels it meets. The
`biomed_span_filter_v1` factory decides which of spancat's spans are kept:
a threshold per label (tuned on dev by `tune-threshold`) and a policy for
spans of one label that overlap each other.

Shipped inside the packaged pipeline (`spacy package --code`), so this module
imports nothing from the project: only spaCy.
"""
import colorsys
import hashlib
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy
import srsly

from spacy.language import Language
from spacy.tokens import Doc, Span, SpanGroup
from spacy.util import registry

__all__ = [
    "CRAFT_COLORS", "POLICIES", "SAME_LABEL_POLICIES", "SpanFilter", "SpansToEnts", "filter_spans",
    "label_color", "label_colors", "make_span_filter", "make_spans_to_ents", "register_label_colors",
    "select_ents",
]

POLICIES = ("score", "longest", "first")
SAME_LABEL_POLICIES = ("keep", "best")

# CRAFT's concept types (displaCy upper-cases the keys when it looks them up)
CRAFT_COLORS: Dict[str, str] = {
    "PR": "#feca74",
    "GGP": "#fdd8a5",
    "GO_BP": "#aa9cfc",
    "GO_CC": "#c887fb",
    "GO_MF": "#ddd1ff",
    "UBERON": "#bfe1d9",
    "CL": "#bfeeb7",
    "CHEBI": "#7aecec",
    "SO": "#9cc9cc",
    "NCBITAXON": "#ffeb80",
    "MONDO": "#ff9561",
    "MOP": "#e4e7d2",
}
# The registry entry the component extends with the labels it meets
SEEN_COLORS_NAME = "biomed.seen_label_colors.v1"


def _factory(name: str, **meta):
    """`Language.factory(name, **meta)`, unless another copy of this module registered `name`.

    In the project's own environment the installed wheel's copy of this module
    (`en_biomed_spancat.X`) meets the project's (`biomed_spancat.pipeline.X`), both
    registered through entry points; spaCy refuses a second function under one
    factory name (E004), so the first copy imported serves both. (Each shipped
    module stands alone, so this helper is repeated in each that registers a factory.)
    """

    def register(func):
        if name in registry.factories:
            return func
        return Language.factory(name, **meta)(func)

    return register


def label_color(label: str) -> str:
    """The colour of one label: CRAFT's own, else one derived from the label's name.

    The derived colour is the same on every machine and in every run (a hash of
    the upper-cased label, not Python's salted `hash`), light enough for black text.

    label (str): The span label.
    RETURNS (str): A CSS colour "#rrggbb".
    """
    key = label.upper()
    if key in CRAFT_COLORS:
        return CRAFT_COLORS[key]
    digest = hashlib.md5(key.encode("utf8")).digest()
    hue = int.from_bytes(digest[:2], "big") / 65536
    lightness = 0.74 + digest[2] / 255 * 0.1
    r, g, b = colorsys.hls_to_rgb(hue, lightness, 0.7)
    return "#{:02x}{:02x}{:02x}".format(round(r * 255), round(g * 255), round(b * 255))


@registry.displacy_colors("biomed.label_colors.v1")
def label_colors(labels: Iterable[str] = ()) -> Dict[str, str]:
    """displaCy colours: every CRAFT label, plus `labels`.

    Called with no argument by displaCy (through the `spacy_displacy_colors`
    entry point); pass your labels for `options={"colors": label_colors(labels)}`.

    labels (Iterable[str]): Further labels to colour.
    RETURNS (Dict[str, str]): Label -> CSS colour.
    """
    colors = dict(CRAFT_COLORS)
    colors.update({label: label_color(label) for label in labels})
    return colors


def register_label_colors(labels: Iterable[str]) -> None:
    """Give displaCy a colour for each of `labels` in this process (the registry entry SEEN_COLORS_NAME)."""
    seen: Dict[str, str] = {}
    if SEEN_COLORS_NAME in registry.displacy_colors:
        seen = dict(registry.displacy_colors.get(SEEN_COLORS_NAME))
    new = {label: label_color(label) for label in labels if label not in seen}
    if new:
        seen.update(new)
        registry.displacy_colors.register(SEEN_COLORS_NAME, func=seen)


def _sort_key(policy: str, span: Span, score: float) -> Tuple:
    length = span.end - span.start
    if policy == "score":
        return (-score, -length, span.start, span.label_)
    if policy == "longest":
        return (-length, -score, span.start, span.label_)
    return (span.start, -length, -score, span.label_)


def select_ents(
    spans: Sequence[Span],
    scores: Optional[Sequence[float]],
    policy: str = "score",
    labels: Optional[Iterable[str]] = None,
    min_score: float = 0.0,
    taken: Iterable[Span] = (),
) -> List[Span]:
    """Choose non-overlapping spans for `doc.ents`, greedily in the policy's order.

    spans (Sequence[Span]): The candidate spans (may overlap, nest or repeat with other labels).
    scores (Optional[Sequence[float]]): One score per span; None counts every span as 1.0.
    policy (str): The order in which spans claim their tokens: "score" (highest
        score, then longest, then leftmost), "longest" (longest, then highest score,
        then leftmost) or "first" (leftmost start, then longest, then highest score);
        the label's name breaks the last ties. A span that overlaps one already
        chosen is dropped.
    labels (Optional[Iterable[str]]): Keep only these labels; None keeps all.
    min_score (float): Drop spans scored below this.
    taken (Iterable[Span]): Spans whose tokens are already claimed (kept entities).
    RETURNS (List[Span]): The chosen spans, in document order.
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    if scores is None:
        scores = [1.0] * len(spans)
    if len(scores) != len(spans):
        raise ValueError(f"{len(spans)} spans but {len(scores)} scores: the scores must align with the spans")
    wanted = None if labels is None else set(labels)
    candidates = [
        (span, float(score))
        for span, score in zip(spans, scores)
        if (wanted is None or span.label_ in wanted) and float(score) >= min_score
    ]
    candidates.sort(key=lambda pair: _sort_key(policy, *pair))
    claimed = set()
    for span in taken:
        claimed.update(range(span.start, span.end))
    chosen = []
    for span, _ in candidates:
        tokens = range(span.start, span.end)
        if any(i in claimed for i in tokens):
            continue
        claimed.update(tokens)
        chosen.append(span)
    return sorted(chosen, key=lambda s: (s.start, s.end))


@_factory(
    "biomed_spans_to_ents_v1",
    assigns=["doc.ents"],
    default_config={"spans_key": "sc", "policy": "score", "labels": None, "min_score": 0.0, "overwrite": True},
    default_score_weights={},
)
def make_spans_to_ents(
    nlp: Language,
    name: str,
    spans_key: str,
    policy: str,
    labels: Optional[List[str]],
    min_score: float,
    overwrite: bool,
) -> "SpansToEnts":
    """Fill `doc.ents` from the spans in `doc.spans[spans_key]`, without overlaps.

    spans_key (str): The span group to read (spancat's `spans_key`).
    policy (str): "score", "longest" or "first": which of overlapping spans wins (see `select_ents`).
    labels (Optional[List[str]]): Only these labels become entities; None: all.
    min_score (float): Spans scored below this do not become entities (spancat
        already dropped those below its threshold).
    overwrite (bool): Replace `doc.ents`; False keeps entities already set
        (by an NER component) and adds spans only where they do not overlap them.
    RETURNS (SpansToEnts): The component.
    """
    return SpansToEnts(name, spans_key=spans_key, policy=policy, labels=labels, min_score=min_score, overwrite=overwrite)


class SpansToEnts:
    """Set `doc.ents` from a span group; spans stay untouched in `doc.spans`."""

    def __init__(
        self,
        name: str = "spans_to_ents",
        *,
        spans_key: str = "sc",
        policy: str = "score",
        labels: Optional[Iterable[str]] = None,
        min_score: float = 0.0,
        overwrite: bool = True,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"[{name}] policy must be one of {', '.join(POLICIES)}, got {policy!r}")
        self.name = name
        self.spans_key = spans_key
        self.policy = policy
        self.label_filter = None if labels is None else list(labels)
        self.min_score = float(min_score)
        self.overwrite = overwrite
        self._colored: set = set()
        self.known_labels: List[str] = []

    def __call__(self, doc: Doc) -> Doc:
        group = doc.spans.get(self.spans_key) if self.spans_key in doc.spans else None
        spans = list(group) if group is not None else []
        scores = group.attrs.get("scores") if group is not None else None
        kept = [] if self.overwrite else list(doc.ents)
        chosen = select_ents(spans, scores, self.policy, self.label_filter, self.min_score, taken=kept)
        new_labels = {span.label_ for span in chosen} - self._colored
        if new_labels:
            register_label_colors(new_labels)
            self._colored |= new_labels
        doc.set_ents(sorted(kept + chosen, key=lambda s: s.start), default="outside")
        return doc

    def pipe(self, stream: Iterable[Doc], batch_size: int = 128) -> Iterable[Doc]:
        for doc in stream:
            yield self(doc)

    # The labels of the span categorizer it reads travel with the pipeline, so that
    # loading it gives displaCy their colours before any doc is processed.
    def initialize(self, get_examples: Optional[Callable] = None, *, nlp: Optional[Language] = None) -> None:
        """Remember the labels of the component that writes `doc.spans[spans_key]`."""
        if nlp is None:
            return
        for _, pipe in nlp.pipeline:
            if getattr(pipe, "key", None) == self.spans_key and hasattr(pipe, "labels"):
                self._remember(pipe.labels)

    def _remember(self, labels: Iterable[str]) -> None:
        self.known_labels = sorted(set(self.known_labels) | set(labels))
        register_label_colors(self.known_labels)
        self._colored |= set(self.known_labels)

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        return srsly.json_dumps({"known_labels": self.known_labels}).encode("utf8")

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "SpansToEnts":
        self._remember(srsly.json_loads(bytes_data.decode("utf8")).get("known_labels", []))
        return self

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_json(path / "cfg", {"known_labels": self.known_labels})

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> "SpansToEnts":
        cfg = Path(path) / "cfg"
        if cfg.exists():
            self._remember(srsly.read_json(cfg).get("known_labels", []))
        return self


def filter_spans(
    spans: Sequence[Span],
    scores: Optional[Sequence[float]],
    thresholds: Optional[Dict[str, float]] = None,
    same_label: str = "keep",
) -> Tuple[List[Span], List[float]]:
    """The spans a per-label threshold and the same-label policy keep.

    spans (Sequence[Span]): spancat's spans (any order; may overlap).
    scores (Optional[Sequence[float]]): One score per span; None counts every span as 1.0.
    thresholds (Optional[Dict[str, float]]): Label -> the lowest score kept; a
        label not listed keeps every span (spancat's own threshold applied already).
    same_label (str): "keep" every span, or "best": of spans with one label that
        share a token, keep the highest scored (then the longest, then the leftmost).
    RETURNS (Tuple[List[Span], List[float]]): The kept spans and their scores, in the
        input's order.
    """
    if same_label not in SAME_LABEL_POLICIES:
        raise ValueError(f"same_label must be one of {', '.join(SAME_LABEL_POLICIES)}, got {same_label!r}")
    if scores is None:
        scores = [1.0] * len(spans)
    if len(scores) != len(spans):
        raise ValueError(f"{len(spans)} spans but {len(scores)} scores: the scores must align with the spans")
    thresholds = thresholds or {}
    keep = [i for i, span in enumerate(spans) if float(scores[i]) >= thresholds.get(span.label_, float("-inf"))]
    if same_label == "best":
        order = sorted(keep, key=lambda i: _sort_key("score", spans[i], float(scores[i])))
        claimed: Dict[str, set] = {}
        chosen = set()
        for i in order:
            tokens = set(range(spans[i].start, spans[i].end))
            taken = claimed.setdefault(spans[i].label_, set())
            if tokens & taken:
                continue
            taken |= tokens
            chosen.add(i)
        keep = [i for i in keep if i in chosen]
    return [spans[i] for i in keep], [float(scores[i]) for i in keep]


@_factory(
    "biomed_span_filter_v1",
    assigns=["doc.spans"],
    default_config={"spans_key": "sc", "thresholds": {}, "same_label": "keep"},
    default_score_weights={},
)
def make_span_filter(
    nlp: Language, name: str, spans_key: str, thresholds: Dict[str, float], same_label: str
) -> "SpanFilter":
    """Keep the spans in `doc.spans[spans_key]` that pass a threshold per label and
    the same-label policy; the scores in the group's `attrs["scores"]` follow them.

    spans_key (str): The span group spancat writes.
    thresholds (Dict[str, float]): Label -> the lowest score kept (labels not
        listed keep spancat's own threshold, which must be the lowest of them).
    same_label (str): "keep" or "best" (see `filter_spans`).
    RETURNS (SpanFilter): The component.
    """
    return SpanFilter(name, spans_key=spans_key, thresholds=thresholds, same_label=same_label)


class SpanFilter:
    """Filter a span group in place by per-label thresholds and a same-label overlap policy."""

    def __init__(
        self,
        name: str = "span_filter",
        *,
        spans_key: str = "sc",
        thresholds: Optional[Dict[str, float]] = None,
        same_label: str = "keep",
    ) -> None:
        if same_label not in SAME_LABEL_POLICIES:
            raise ValueError(f"[{name}] same_label must be one of {', '.join(SAME_LABEL_POLICIES)}, got {same_label!r}")
        for label, value in (thresholds or {}).items():
            if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"[{name}] the threshold of {label!r} must be a number from 0 to 1, got {value!r}")
        self.name = name
        self.spans_key = spans_key
        self.thresholds = {label: float(value) for label, value in (thresholds or {}).items()}
        self.same_label = same_label

    def __call__(self, doc: Doc) -> Doc:
        if self.spans_key not in doc.spans:
            return doc
        group = doc.spans[self.spans_key]
        scores = group.attrs.get("scores")
        spans, kept_scores = filter_spans(list(group), scores, self.thresholds, self.same_label)
        if len(spans) == len(group):
            return doc
        attrs = dict(group.attrs)
        if scores is not None:
            attrs["scores"] = numpy.asarray(kept_scores, dtype="float32")
        doc.spans[self.spans_key] = SpanGroup(doc, name=self.spans_key, attrs=attrs, spans=spans)
        return doc

    def pipe(self, stream: Iterable[Doc], batch_size: int = 128) -> Iterable[Doc]:
        for doc in stream:
            yield self(doc)
