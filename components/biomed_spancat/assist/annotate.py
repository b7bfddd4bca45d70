"""The pipeline that pre-annotates: loaded with its span categorizer's
threshold lowered to the low threshold, and a scored Prodigy task per doc.
"""
import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import spacy
from spacy.language import Language
from spacy.pipeline import SpanCategorizer
from spacy.tokens import Doc, SpanGroup

from .records import SCORE_DECIMALS, AssistError, PathLike, Task, TextRecord, input_hash

ROOT = __package__.rpartition(".")[0]

__all__ = ["ModelInfo", "use_device", "load_pipeline", "load_annotator", "make_doc", "doc_to_task", "annotate_records"]


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


def _find_spancat(nlp: Language, spans_key: str) -> SpanCategorizer:
    found = [pipe for _, pipe in nlp.pipeline if isinstance(pipe, SpanCategorizer)]
    matching = [pipe for pipe in found if pipe.key == spans_key]
    if len(matching) != 1:
        keys = ", ".join(repr(p.key) for p in found) or "none"
        raise AssistError(
            f"the pipeline needs exactly one span categorizer writing doc.spans[{spans_key!r}] "
            f"(found keys: {keys}; pipeline: {nlp.pipe_names})"
        )
    return matching[0]


def use_device(gpu_id: int) -> None:
    """Put thinc on the GPU `gpu_id` (or the CPU for -1) through the project's
    pre-flight check, which says exactly what is missing when a GPU cannot be
    used; spaCy's `require_gpu` where that module is absent.

    gpu_id (int): -1 for the CPU, else the CUDA device.
    RAISES (AssistError): A GPU was asked for and cannot be used.
    """
    if importlib.util.find_spec(f"{ROOT}.gpu") is not None:
        gpu = importlib.import_module(f"{ROOT}.gpu")
        try:
            gpu.preflight(gpu_id, echo=False)
        except gpu.GpuUnavailable as err:
            raise AssistError(str(err)) from err
    elif gpu_id >= 0:
        try:
            spacy.require_gpu(gpu_id)
        except Exception as err:
            raise AssistError(f"--gpu-id {gpu_id}: no usable GPU ({err}); use --gpu-id -1 for the CPU") from err


def load_pipeline(model: PathLike) -> Language:
    """Load a pipeline directory or an installed package name (the packaged pipeline).

    model (PathLike): The directory or package.
    RETURNS (Language): The pipeline.
    RAISES (AssistError): Neither a pipeline directory nor an installed package.
    """
    name = str(model)
    path = Path(name)
    if path.exists():
        from ..evaluation import load_pipeline_dir

        try:
            return load_pipeline_dir(path)
        except ValueError as err:  # not a pipeline, or a damaged file (named)
            raise AssistError(str(err)) from None
    if spacy.util.is_package(name):
        return spacy.load(name)
    raise AssistError(f"{name}: neither a pipeline directory nor an installed pipeline package")


def load_annotator(model: PathLike, spans_key: str, low: float, gpu_id: int = -1) -> Tuple[Language, ModelInfo]:
    """Load the pipeline for pre-annotation: its span categorizer's threshold
    is lowered to `low`, so that it emits every span the routing needs.

    model (PathLike): A pipeline directory or an installed package name (the packaged pipeline).
    spans_key (str): The key its span categorizer writes.
    low (float): The low threshold.
    gpu_id (int): -1 for the CPU, else the CUDA device.
    RETURNS (Tuple[Language, ModelInfo]): The pipeline and what it is.
    RAISES (AssistError): No such pipeline, or no span categorizer for the key.
    """
    use_device(gpu_id)
    name = str(model)
    nlp = load_pipeline(name)
    spancat = _find_spancat(nlp, spans_key)
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

