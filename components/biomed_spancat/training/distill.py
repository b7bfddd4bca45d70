"""Distillation: the teacher's soft labels and the student's config.

The uptraining route (uptrain.py) hands the CPU student the teacher's hard
spans above a threshold; a span the teacher scored 0.45 teaches "not a span"
as firmly as one it scored 0.01. Here the student learns the teacher's
probabilities instead:

    teacher over gold train docs + unlabelled text -> per doc, every
        (suggested candidate, label) the teacher scores >= floor, as the span
        group `<spans_key>_teacher` with attrs["scores"] (gold stays in `<spans_key>`)
    teacher's tokenizer + fitted suggester -> the student's training config
    student (`biomed_spancat_student_v1`, student.py) trains on the mix of gold
        and teacher targets (its `soft_weight`)

The teacher scores each doc on the doc's own tokens, so its candidates are
the student's candidates (same suggester, same tokens).

Project tooling: a packaged pipeline never imports this module.
"""
import os
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy
from confection import Config
from spacy.language import Language
from spacy.tokens import Doc, DocBin, Span
from tqdm import tqdm

from ..assist import AssistError, iter_records, make_doc, split_sentences
from ..util import PipelineError, find_spancat, load_pipeline, read_docs, use_device
from .student import teacher_key_for
from .teacher_vectors import TokenVectorMeans, teacher_token_vectors

__all__ = [
    "DISTILL_SCHEMA",
    "DEFAULT_FLOOR",
    "find_teacher_spancat",
    "score_candidates",
    "attach_soft_labels",
    "soft_label_corpus",
    "write_student_config",
]

DISTILL_SCHEMA = "biomed.teacher_labels.v1"
# Teacher probabilities below this are stored as absent, i.e. 0: on CRAFT most
# of the candidates score far below it, and storing them would only grow the file.
DEFAULT_FLOOR = 0.01
PathLike = Union[str, Path]


def find_teacher_spancat(nlp: Language, spans_key: str, source: str = "the teacher") -> Tuple[str, Any]:
    """The teacher's span categorizer writing `doc.spans[spans_key]`.

    nlp (Language): The teacher pipeline.
    spans_key (str): The span group.
    source (str): Where the teacher came from, for the message.
    RETURNS (Tuple[str, SpanCategorizer]): Its name and the component.
    RAISES (PipelineError): None or several (the message names the pipeline's components).
    """
    try:
        return find_spancat(nlp, spans_key)
    except ValueError as err:
        raise PipelineError(f"{source}: cannot be a teacher: {err}") from None


def score_candidates(
    nlp: Language,
    docs: Sequence[Doc],
    spancat_name: str,
    floor: float,
    token_vectors: Optional[TokenVectorMeans] = None,
) -> List[Tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray, numpy.ndarray]]:
    """Run the teacher up to its span categorizer and keep every (candidate,
    label) it scores at or above `floor`.

    nlp (Language): The teacher pipeline.
    docs (Sequence[Doc]): Unannotated docs in the teacher's vocab (one batch).
    spancat_name (str): The span categorizer's name in the pipeline.
    floor (float): The smallest probability kept.
    token_vectors (Optional[TokenVectorMeans]): Where to add the token vectors
        the span categorizer reads, per word (None: not kept).
    RETURNS (List[Tuple[ndarray, ndarray, ndarray, ndarray]]): Per doc: starts,
        ends, label indices and scores (float32) of the kept pairs, in
        candidate order then label order.
    """
    docs = list(docs)
    for name, proc in nlp.pipeline:
        if name == spancat_name:
            break
        if hasattr(proc, "pipe"):
            docs = list(proc.pipe(docs))
        else:
            docs = [proc(doc) for doc in docs]
    spancat = nlp.get_pipe(spancat_name)
    if token_vectors is not None:
        token_vectors.add(docs, teacher_token_vectors(spancat, docs))
    indices, scores = spancat.predict(docs)
    ops = spancat.model.ops
    lengths = ops.to_numpy(indices.lengths)
    data = ops.to_numpy(indices.data).reshape(-1, 2) if lengths.sum() else numpy.zeros((0, 2), dtype="i")
    scores = ops.to_numpy(scores)
    out = []
    offset = 0
    empty = numpy.zeros((0,), dtype="i")
    for n in lengths:
        n = int(n)
        if n == 0 or scores.size == 0:
            out.append((empty, empty, empty, numpy.zeros((0,), dtype="f")))
            continue
        block = scores[offset : offset + n]
        rows, labels = numpy.nonzero(block >= floor)
        cand = data[offset : offset + n]
        out.append((cand[rows, 0], cand[rows, 1], labels, block[rows, labels].astype("f")))
        offset += n
    return out


def _pred_doc(nlp: Language, doc: Doc) -> Doc:
    return Doc(nlp.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc])


def attach_soft_labels(
    nlp: Language,
    docs: Iterable[Doc],
    spans_key: str = "sc",
    floor: float = DEFAULT_FLOOR,
    batch_size: int = 32,
    spancat_name: Optional[str] = None,
    token_vectors: Optional[TokenVectorMeans] = None,
) -> Iterator[Doc]:
    """Store the teacher's probabilities on each doc, as the span group
    `<spans_key>_teacher` with one score per span in `attrs["scores"]`.

    The teacher reads a copy of each doc's tokens, so the doc's own spans
    (gold under `spans_key`) are left as they are. A doc the teacher scores
    nothing on still gets the (empty) group: it tells the student "the
    teacher saw this doc and found nothing".

    nlp (Language): The teacher pipeline.
    docs (Iterable[Doc]): Docs (gold or unlabelled), in any vocab.
    spans_key (str): The gold span group; the teacher's group is `<spans_key>_teacher`.
    floor (float): The smallest probability stored (in (0, 1)).
    batch_size (int): Docs per teacher batch.
    spancat_name (Optional[str]): The teacher's span categorizer; None finds it.
    token_vectors (Optional[TokenVectorMeans]): Where to add the teacher's
        token vectors per word (None: not kept).
    YIELDS (Doc): The same docs, in order, with the teacher's group set.
    """
    if not 0.0 < floor < 1.0:
        raise AssistError(f"the floor must be in (0, 1), got {floor}")
    if spancat_name is None:
        spancat_name, _ = find_teacher_spancat(nlp, spans_key)
    labels = nlp.get_pipe(spancat_name).labels
    key = teacher_key_for(spans_key)
    batch: List[Doc] = []

    def flush(batch: List[Doc]) -> Iterator[Doc]:
        scored = score_candidates(nlp, [_pred_doc(nlp, d) for d in batch], spancat_name, floor, token_vectors)
        for doc, (starts, ends, label_ids, scores) in zip(batch, scored):
            doc.spans[key] = [
                Span(doc, int(s), int(e), label=labels[int(k)]) for s, e, k in zip(starts, ends, label_ids)
            ]
            doc.spans[key].attrs["scores"] = numpy.asarray(scores, dtype="f")
            yield doc

    for doc in docs:
        if len(doc) == 0:
            doc.spans[key] = []
            doc.spans[key].attrs["scores"] = numpy.zeros((0,), dtype="f")
            yield doc
            continue
        batch.append(doc)
        if len(batch) >= batch_size:
            yield from flush(batch)
            batch = []
    if batch:
        yield from flush(batch)


def _gold_docs(paths: Sequence[PathLike], vocab) -> Iterator[Tuple[str, Doc]]:
    for path in map(Path, paths):
        for doc in read_docs(path, vocab):
            yield str(path), doc


def soft_label_corpus(
    teacher: PathLike,
    output: PathLike,
    gold: Sequence[PathLike] = (),
    unlabelled: Sequence[str] = (),
    spans_key: str = "sc",
    floor: float = DEFAULT_FLOOR,
    batch_size: int = 32,
    gpu_id: int = -1,
    segment: str = "none",
    fmt: Optional[str] = None,
    datasets: Sequence[str] = (),
    progress: bool = False,
    vectors: Optional[PathLike] = None,
    vectors_width: int = 0,
) -> Dict[str, Any]:
    """Write the student's training corpus: gold docs and unlabelled text,
    each with the teacher's soft labels.

    Gold docs keep their spans under `spans_key` (the student mixes them with
    the teacher's); unlabelled docs get no `spans_key` group (the student
    follows the teacher alone on them). Unlabelled records that cannot be used
    (a tokens list that does not match the text, no text, bad encoding) are
    skipped and reported with their file and line.

    teacher (PathLike): The teacher pipeline (directory or installed package).
    output (PathLike): The .spacy file (written atomically).
    gold (Sequence[PathLike]): Gold .spacy files (the student's gold training data).
    unlabelled (Sequence[str]): Unlabelled text sources (anything `preannotate` reads).
    spans_key (str): The gold span group.
    floor (float): The smallest teacher probability stored.
    batch_size (int): Docs per teacher batch.
    gpu_id (int): -1 for the CPU, else the CUDA device for the teacher.
    segment (str): "none" (one doc per text) or "sentences".
    fmt (Optional[str]): Force a reader format for the unlabelled sources.
    datasets (Sequence[str]): Datasets of a database/folder unlabelled source.
    progress (bool): Show a tqdm bar of the docs the teacher labelled, per part.
    vectors (Optional[PathLike]): Also write static word vectors here: per word,
        the mean of the teacher's token vectors over the unlabelled text
        (teacher_vectors.py); None writes none.
    vectors_width (int): Their width: 0 keeps the teacher's, less projects
        them on their first principal components.
    RETURNS (Dict[str, Any]): The report: counts per part, rejected records,
        teacher spans stored, the vectors written, settings.
    RAISES (AssistError): No teacher span categorizer, unreadable inputs, nothing usable.
    """
    if not gold and not unlabelled:
        raise AssistError("no input: give gold .spacy files and/or unlabelled text")
    if segment not in ("none", "sentences"):
        raise AssistError(f"segment must be 'none' or 'sentences', got {segment!r}")
    if vectors is not None and not unlabelled:
        raise AssistError("the teacher's word vectors are made from unlabelled text: give --unlabelled too")
    if vectors_width < 0:
        raise AssistError(f"the vectors' width must be 0 (the teacher's) or positive, got {vectors_width}")
    use_device(gpu_id)
    nlp = load_pipeline(teacher)
    spancat_name, spancat = find_teacher_spancat(nlp, spans_key, str(teacher))
    teacher_labels = set(spancat.labels)
    key = teacher_key_for(spans_key)
    counts: Dict[str, Dict[str, int]] = {
        "gold": {"docs": 0, "words": 0, "teacher_spans": 0},
        "unlabelled": {"read": 0, "docs": 0, "words": 0, "teacher_spans": 0, "rejected": 0},
    }
    rejected: List[Dict[str, str]] = []
    gold_labels: set = set()
    docbin = DocBin(store_user_data=False)
    start = time.perf_counter()

    def gold_stream() -> Iterator[Doc]:
        for _path, doc in _gold_docs(gold, nlp.vocab):
            if spans_key not in doc.spans:
                raise AssistError(
                    f"{_path}: a doc has no doc.spans[{spans_key!r}] (starts {doc.text[:40]!r}); gold data "
                    "must carry its spans under the spans key (--spans-key)"
                )
            gold_labels.update(span.label_ for span in doc.spans[spans_key])
            yield doc

    gold_soft = attach_soft_labels(nlp, gold_stream(), spans_key, floor, batch_size, spancat_name)
    for doc in tqdm(gold_soft, desc="gold docs", unit=" docs", mininterval=1.0, disable=not progress):
        counts["gold"]["docs"] += 1
        counts["gold"]["words"] += len(doc)
        counts["gold"]["teacher_spans"] += len(doc.spans[key])
        docbin.add(doc)

    def unlabelled_stream() -> Iterator[Doc]:
        records = iter_records(list(unlabelled), fmt, datasets) if unlabelled else iter([])
        if segment == "sentences":
            records = split_sentences(records)
        for record in records:
            counts["unlabelled"]["read"] += 1
            if not record.ok:
                counts["unlabelled"]["rejected"] += 1
                rejected.append({"origin": record.origin, "reason": str(record.reason), "detail": record.detail})
                continue
            yield make_doc(nlp, record)

    means = TokenVectorMeans() if vectors is not None else None
    unlabelled_soft = attach_soft_labels(nlp, unlabelled_stream(), spans_key, floor, batch_size, spancat_name, means)
    for doc in tqdm(unlabelled_soft, desc="unlabelled docs", unit=" docs", mininterval=1.0, disable=not progress):
        counts["unlabelled"]["docs"] += 1
        counts["unlabelled"]["words"] += len(doc)
        counts["unlabelled"]["teacher_spans"] += len(doc.spans[key])
        docbin.add(doc)
    seconds = time.perf_counter() - start
    total = counts["gold"]["docs"] + counts["unlabelled"]["docs"]
    if total == 0:
        first = f" (first: {rejected[0]['origin']}: {rejected[0]['detail']})" if rejected else ""
        raise AssistError(f"no usable doc in the inputs: {counts['unlabelled']['rejected']} rejected{first}; nothing written")
    if means is not None and len(means) == 0:
        raise AssistError(f"no usable unlabelled doc for the teacher's word vectors ({counts['unlabelled']['rejected']} rejected); nothing written")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp{os.getpid()}")
    docbin.to_disk(tmp)
    os.replace(tmp, output)
    vectors_report = means.write(vectors, vectors_width, nlp.lang) if means is not None else None
    words = counts["gold"]["words"] + counts["unlabelled"]["words"]
    return {
        "schema": DISTILL_SCHEMA,
        "teacher": {
            "source": str(teacher),
            "name": f"{nlp.meta.get('lang', nlp.lang)}_{nlp.meta.get('name', 'pipeline')}",
            "version": str(nlp.meta.get("version", "")),
            "component": spancat_name,
            "labels": sorted(teacher_labels),
        },
        "inputs": {"gold": [str(p) for p in gold], "unlabelled": list(unlabelled)},
        "output": str(output),
        "teacher_key": key,
        "counts": counts,
        "docs": total,
        "rejected_examples": rejected[:20],
        "vectors": vectors_report,
        "gold_labels_unknown_to_teacher": sorted(gold_labels - teacher_labels),
        "settings": {
            "spans_key": spans_key,
            "floor": floor,
            "batch_size": batch_size,
            "gpu_id": gpu_id,
            "segment": segment,
            "vectors_width": vectors_width,
        },
        "speed": {"seconds": round(seconds, 3), "words_per_second": round(words / seconds, 1) if seconds > 0 else None},
    }


def write_student_config(
    teacher: PathLike, base_config: PathLike, output: PathLike, component: str = "spancat"
) -> Dict[str, Any]:
    """Write the student's training config: `base_config` with the teacher's
    tokenizer and the teacher's (fitted) suggester, so the student sees the
    tokens and candidates the teacher scored.

    teacher (PathLike): The teacher pipeline (directory or installed package).
    base_config (PathLike): The student's config (configs/distill_cnn.cfg).
    output (PathLike): Where to write it.
    component (str): The student's span categorizer in `base_config`.
    RETURNS (Dict[str, Any]): The teacher's suggester and tokenizer blocks, as written.
    RAISES (AssistError): No such config or component, or a teacher without a span categorizer.
    """
    base_config = Path(base_config)
    if not base_config.is_file():
        raise AssistError(f"{base_config}: config not found")
    config = Config().from_disk(base_config, interpolate=False)
    if component not in config.get("components", {}):
        raise AssistError(f"{base_config}: no [components.{component}] section for the student")
    nlp = load_pipeline(teacher)
    spans_key = str(config["components"][component].get("spans_key", "sc"))
    name, _ = find_teacher_spancat(nlp, spans_key, str(teacher))
    teacher_config = nlp.config.interpolate()
    suggester = dict(teacher_config["components"][name]["suggester"])
    tokenizer = dict(teacher_config["nlp"]["tokenizer"])
    config["components"][component]["suggester"] = suggester
    config["nlp"]["tokenizer"] = tokenizer
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    config.to_disk(output)
    return {"suggester": suggester, "tokenizer": tokenizer, "teacher": str(teacher), "config": str(output)}
