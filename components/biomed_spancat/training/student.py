"""The distilled student: the `biomed_spancat_student_v1` factory.

A span categorizer that learns from a teacher pipeline's probabilities, not
only from its hard spans. The teacher's score for every (suggested candidate,
label) above a floor is stored on the training doc as a span group
`<spans_key>_teacher` with `attrs["scores"]` (one score per span; written by
`biomed_spancat.distill`). Per candidate row, the training target is

    gold doc + teacher group:   (1 - soft_weight) * gold + soft_weight * teacher
    teacher group only:         teacher
    gold only (no group):       gold (plain spancat)

where gold is 1 for a gold (span, label) and 0 otherwise, and teacher is the
stored probability (0 below the floor, or for a candidate the teacher did not
score). A doc has gold when it has the `<spans_key>` group at all (an
unlabelled doc has none). The gradient is spancat's own, `scores - target`,
which for spancat's logistic output layer is the gradient of the binary
cross-entropy against the (soft) target: the student is pulled towards the
teacher's probabilities.

Prediction is plain spancat: a trained student loads and predicts wherever
this module is registered, and every project tool that finds a
`SpanCategorizer` (threshold tuning, evaluation, pre-annotation) finds it.

Can be shipped inside a packaged pipeline (`spacy package --code`), so this
module imports nothing from the project: only spaCy, thinc and numpy.
"""
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import numpy
from spacy.language import Language
from spacy.pipeline.spancat import DEFAULT_SPANCAT_MODEL, SpanCategorizer, Suggester
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import Model
from thinc.types import Floats2d, Ragged

# the guard against a second registration (the installed wheel beside the project), one home
from ..pipeline.sentences import _factory

__all__ = ["TEACHER_SUFFIX", "SpanCategorizerStudent", "make_spancat_student", "soft_target", "teacher_key_for"]

TEACHER_SUFFIX = "_teacher"


def teacher_key_for(spans_key: str) -> str:
    """The span group holding the teacher's scored candidates for `spans_key`.

    spans_key (str): The gold span group ("sc").
    RETURNS (str): "sc_teacher".
    """
    return f"{spans_key}{TEACHER_SUFFIX}"


@_factory(
    "biomed_spancat_student_v1",
    assigns=["doc.spans"],
    default_config={
        "threshold": 0.5,
        "spans_key": "sc",
        "max_positive": None,
        "model": DEFAULT_SPANCAT_MODEL,
        "suggester": {"@misc": "spacy.ngram_suggester.v1", "sizes": [1, 2, 3]},
        "scorer": {"@scorers": "spacy.spancat_scorer.v1"},
        "soft_weight": 0.5,
        "teacher_key": None,
    },
    default_score_weights={"spans_sc_f": 1.0, "spans_sc_p": 0.0, "spans_sc_r": 0.0},
)
def make_spancat_student(
    nlp: Language,
    name: str,
    suggester: Suggester,
    model: Model[Tuple[List[Doc], Ragged], Floats2d],
    spans_key: str,
    scorer: Optional[Callable],
    threshold: float,
    max_positive: Optional[int],
    soft_weight: float,
    teacher_key: Optional[str],
) -> "SpanCategorizerStudent":
    """A multi-label span categorizer trained on gold spans and a teacher's probabilities.

    suggester (Suggester): Proposes the candidates; use the teacher's, so that
        the teacher scored exactly the candidates the student sees.
    model (Model): The spancat model (e.g. over a CNN tok2vec).
    spans_key (str): The gold span group, and where predictions go.
    scorer (Optional[Callable]): The scoring method.
    threshold (float): Minimum probability of a predicted span.
    max_positive (Optional[int]): Most labels per span; None: no limit.
    soft_weight (float): On docs with gold spans, the teacher's share of the
        target (0: gold only, 1: teacher only). Docs without gold use the teacher only.
    teacher_key (Optional[str]): The span group of teacher scores; None: `<spans_key>_teacher`.
    RETURNS (SpanCategorizerStudent): The component.
    """
    return SpanCategorizerStudent(
        nlp.vocab,
        model=model,
        suggester=suggester,
        name=name,
        spans_key=spans_key,
        max_positive=max_positive,
        threshold=threshold,
        scorer=scorer,
        soft_weight=soft_weight,
        teacher_key=teacher_key,
    )


def soft_target(gold: numpy.ndarray, teacher: Optional[numpy.ndarray], has_gold: bool, soft_weight: float) -> numpy.ndarray:
    """The training target of one doc's candidate rows.

    gold (numpy.ndarray): (candidates, labels): 1.0 for a gold (span, label), else 0.
    teacher (Optional[numpy.ndarray]): The teacher's probabilities, same shape;
        None when the doc has no teacher group.
    has_gold (bool): Whether the doc carries gold spans at all.
    soft_weight (float): The teacher's share where the doc has gold.
    RETURNS (numpy.ndarray): The target, same shape.
    """
    if teacher is None:
        return gold
    if not has_gold:
        return teacher
    return (1.0 - soft_weight) * gold + soft_weight * teacher


class SpanCategorizerStudent(SpanCategorizer):
    """spaCy's multi-label span categorizer whose loss also follows a teacher's probabilities."""

    def __init__(
        self,
        vocab,
        model: Model[Tuple[List[Doc], Ragged], Floats2d],
        suggester: Suggester,
        name: str = "spancat",
        *,
        spans_key: str = "sc",
        max_positive: Optional[int] = None,
        threshold: float = 0.5,
        scorer: Optional[Callable] = None,
        soft_weight: float = 0.5,
        teacher_key: Optional[str] = None,
    ) -> None:
        if not isinstance(soft_weight, (int, float)) or not 0.0 <= float(soft_weight) <= 1.0:
            raise ValueError(f"soft_weight must be a number in [0, 1], got {soft_weight!r}")
        kwargs: Dict[str, Any] = {} if scorer is None else {"scorer": scorer}
        super().__init__(
            vocab,
            model=model,
            suggester=suggester,
            name=name,
            spans_key=spans_key,
            negative_weight=None,
            allow_overlap=True,
            max_positive=max_positive,
            threshold=threshold,
            add_negative_label=False,
            **kwargs,
        )
        # rounded: config overrides can hand floats over as e.g. 0.7000000000000001
        self.cfg["soft_weight"] = round(float(soft_weight), 6)
        self.cfg["teacher_key"] = teacher_key or teacher_key_for(spans_key)

    @property
    def teacher_key(self) -> str:
        """RETURNS (str): The span group holding the teacher's scores."""
        return str(self.cfg.get("teacher_key") or teacher_key_for(self.key))

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[List[str]] = None,
    ) -> None:
        """Initialize like spancat; labels come from the gold spans and the
        teacher's (an unlabelled doc teaches labels too).

        get_examples (Callable[[], Iterable[Example]]): Training examples.
        nlp (Optional[Language]): The pipeline.
        labels (Optional[List[str]]): The labels; None: read them from the examples.
        """
        if labels is None:
            found: List[str] = []
            for eg in get_examples():
                for key in (self.key, self.teacher_key):
                    for span in eg.reference.spans.get(key, []):
                        if span.label_ not in found:
                            found.append(span.label_)
            labels = found or None
        super().initialize(get_examples, nlp=nlp, labels=labels)

    def _teacher_rows(self, eg: Example, index: Dict[Tuple[int, int], int], n_rows: int) -> Optional[numpy.ndarray]:
        """The teacher's probabilities on one doc's candidate rows; None without a teacher group."""
        group = eg.reference.spans.get(self.teacher_key)
        if group is None:
            return None
        scores = group.attrs.get("scores")
        if scores is None or len(scores) != len(group):
            raise ValueError(
                f"doc.spans[{self.teacher_key!r}] of the doc starting {eg.reference.text[:40].strip()!r} has "
                f"{len(group)} spans but {0 if scores is None else len(scores)} scores in attrs['scores']; "
                "write the teacher's soft labels again (biomed_spancat.distill)"
            )
        teacher = numpy.zeros((n_rows, self._n_labels), dtype="f")
        label_map = self._label_map
        y2x = eg.alignment.y2x
        same = len(eg.x) == len(eg.y) and all(a.text == b.text for a, b in zip(eg.x, eg.y))
        for span, score in zip(group, scores):
            k = label_map.get(span.label_)
            if k is None:
                continue  # a label the student was not given
            if same:
                key = (span.start, span.end)
            else:  # spaCy's own y2x span alignment, as for the gold spans
                indices = y2x[span.start : span.end]
                if len(indices) == 0:
                    continue
                start, end = int(indices[0]), int(indices[-1]) + 1
                if eg.x[start:end].text.lower().replace(" ", "") != span.text.lower().replace(" ", ""):
                    continue
                key = (start, end)
            row = index.get(key)
            if row is not None:
                teacher[row, k] = float(score)
        return teacher

    def get_loss(self, examples: Iterable[Example], spans_scores: Tuple[Ragged, Floats2d]) -> Tuple[float, Floats2d]:
        """The loss and its gradient: spancat's squared error against the
        mixed gold/teacher target of each candidate row.

        examples (Iterable[Example]): The batch.
        spans_scores (Tuple[Ragged, Floats2d]): The candidates and the model's scores.
        RETURNS (Tuple[float, Floats2d]): The loss and the gradient `scores - target`.
        """
        spans, scores = spans_scores
        spans = Ragged(self.model.ops.to_numpy(spans.data), self.model.ops.to_numpy(spans.lengths))
        target = numpy.zeros(scores.shape, dtype="f")
        label_map = self._label_map
        soft_weight = float(self.cfg.get("soft_weight", 0.5))
        offset = 0
        for i, eg in enumerate(examples):
            n = int(spans.lengths[i])
            spans_i = spans[i].dataXd
            index = {(int(spans_i[j, 0]), int(spans_i[j, 1])): j for j in range(n)}
            gold = numpy.zeros((n, self._n_labels), dtype="f")
            for span in self._get_aligned_spans(eg):
                row = index.get((span.start, span.end))
                if row is not None:
                    gold[row, label_map[span.label_]] = 1.0
            teacher = self._teacher_rows(eg, index, n)
            target[offset : offset + n] = soft_target(gold, teacher, self.key in eg.reference.spans, soft_weight)
            offset += n
        d_scores = scores - self.model.ops.asarray(target, dtype="f")
        loss = float((d_scores**2).sum())
        return loss, d_scores
