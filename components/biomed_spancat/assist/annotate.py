"""The pipeline that pre-annotates: loaded with its span categorizer's
threshold lowered to the low threshold, and a scored Prodigy task per doc.
"""
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from spacy.language import Language
from spacy.tokens import Doc, SpanGroup

from ..util import find_spancat, load_pipeline, use_device
from .records import SCORE_DECIMALS, AssistError, PathLike, Task, TextRecord, input_hash

__all__ = ["ModelInfo", "load_annotator", "make_doc", "doc_to_task", "annotate_records"]


# --- the model ---------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    """What pre-annotated the text, for the tasks' `meta` and the report.

    name (str): The pipeline's package name ("en_biomed_spancat").
    version (str): Its version.
    source (str): The path or package name it was loaded from.
    threshold (Optional[float]): Its spancat threshold before pre-annotation lowered it.
    labels (Tuple[str, ...]): The span labels.
    """

    name: str
    version: str
    source: str
    threshold: Optional[float]
    labels: Tuple[str, ...]

    def to_dict(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "threshold": self.threshold,
            "labels": list(self.labels),
        }


def load_annotator(model: PathLike, spans_key: str, low: float, gpu_id: int = -1) -> Tuple[Language, ModelInfo]:
    """Load the pipeline for pre-annotation: its span categorizer's threshold
    is lowered to `low`, so that it emits every span the routing needs.

    model (PathLike): A pipeline directory or an installed package name (the packaged pipeline).
    spans_key (str): The key its span categorizer writes.
    low (float): The low threshold.
    gpu_id (int): -1 for the CPU, else the CUDA device.
    RETURNS (Tuple[Language, ModelInfo]): The pipeline and what it is.
    RAISES (PipelineError): No such pipeline, or no span categorizer for the key.
    RAISES (GpuUnavailable): A GPU was asked for and cannot be used.
    """
    use_device(gpu_id, echo=False)
    name = str(model)
    nlp = load_pipeline(name)
    _, spancat = find_spancat(nlp, spans_key)
    threshold = spancat.cfg.get("threshold")
    spancat.cfg["threshold"] = low
    info = ModelInfo(
        name=f"{nlp.meta.get('lang', nlp.lang)}_{nlp.meta.get('name', 'pipeline')}",
        version=str(nlp.meta.get("version", "0.0.0")),
        source=name,
        threshold=float(threshold) if threshold is not None else None,
        labels=tuple(spancat.labels),
    )
    return nlp, info


def make_doc(nlp: Language, record: TextRecord) -> Doc:
    """The doc to annotate: the record's own tokens when it has them (so
    spans line up with an existing annotation's tokens), else the pipeline's
    tokenizer.

    nlp (Language): The pipeline.
    record (TextRecord): A usable record.
    RETURNS (Doc): An unannotated doc whose text is the record's text.
    """
    if record.words is not None:
        return Doc(nlp.vocab, words=record.words, spaces=record.spaces)
    return nlp.make_doc(record.text)


def doc_to_task(doc: Doc, spans_key: str, meta: Dict[str, Any], model: ModelInfo) -> Task:
    """A `spans.manual`-style Prodigy task from an annotated doc.

    doc (Doc): A doc whose `doc.spans[spans_key]` has `attrs["scores"]`, one per span.
    spans_key (str): The span group.
    meta (Dict[str, Any]): The input record's meta.
    model (ModelInfo): Written into `meta` as `model` and `model_version`.
    RETURNS (Task): text, tokens (text/start/end/id/ws), spans (start/end,
        token_start/token_end inclusive, label, score; sorted by position and
        label), meta, `_input_hash`; `_task_hash` is set by `route_task`.
    RAISES (AssistError): The span group carries no scores.
    """
    group = doc.spans[spans_key] if spans_key in doc.spans else SpanGroup(doc, name=spans_key)
    scores = group.attrs.get("scores")
    if len(group) and (scores is None or len(scores) != len(group)):
        raise AssistError(
            f"doc.spans[{spans_key!r}] has {len(group)} spans but "
            f"{'no' if scores is None else len(scores)} scores in attrs['scores']: routing needs a score per span"
        )
    spans = []
    for i, span in enumerate(group):
        spans.append(
            {
                "start": span.start_char,
                "end": span.end_char,
                "token_start": span.start,
                "token_end": span.end - 1,
                "label": span.label_,
                "score": round(float(scores[i]), SCORE_DECIMALS),
            }
        )
    spans.sort(key=lambda s: (s["token_start"], s["token_end"], s["label"], -s["score"]))
    return {
        "text": doc.text,
        "tokens": [
            {"text": t.text, "start": t.idx, "end": t.idx + len(t.text), "id": t.i, "ws": bool(t.whitespace_)}
            for t in doc
        ],
        "spans": spans,
        "meta": {**meta, "model": model.name, "model_version": model.version},
        "_input_hash": input_hash(doc.text),
    }


def annotate_records(nlp: Language, records: Sequence[TextRecord], spans_key: str, model: ModelInfo) -> List[Task]:
    """Annotate one batch of usable records through `nlp.pipe`.

    The single-process and the Ray runner both call this on the same batches,
    so they compute the same thing.

    nlp (Language): The pipeline (threshold lowered by `load_annotator`).
    records (Sequence[TextRecord]): Usable records.
    spans_key (str): The span group.
    model (ModelInfo): What the pipeline is.
    RETURNS (List[Task]): One task per record, in order.
    """
    docs = [make_doc(nlp, r) for r in records]
    tasks = []
    for record, doc in zip(records, nlp.pipe(docs, batch_size=max(1, len(docs)))):
        tasks.append(doc_to_task(doc, spans_key, record.meta, model))
    return tasks

