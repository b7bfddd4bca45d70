"""The pre-annotation step: read, annotate in batches (in this process or on
Ray actors that each load the pipeline once), route and write, with a report
that accounts for every input text.
"""
import itertools
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence

from spacy.language import Language

from ..outputs import StepOutputs
from .annotate import ModelInfo, annotate_records, load_annotator
from .records import SEGMENTS, AssistError, Task, TextRecord, iter_records, split_sentences
from .route import ORDERING, Thresholds, _atomic_write_bytes, write_routes

__all__ = ["PREANNOTATE_SCHEMA", "PreannotateOptions", "iter_annotated_local", "AnnotatorActor", "iter_annotated_ray", "preannotate"]

PREANNOTATE_SCHEMA = "biomed.preannotate.v1"



@dataclass
class PreannotateOptions:
    """Everything `preannotate` needs besides its sources, model and outputs.

    thresholds (Thresholds): High and low thresholds.
    budget (int): At most this many tasks in the review file; 0 = no limit.
    spans_key (str): The `doc.spans` key the span categorizer writes.
    batch_size (int): Texts per `nlp.pipe` batch (and per Ray task).
    gpu_id (int): -1 for the CPU, else the CUDA device (preflight checked).
    fmt (Optional[str]): Force an ingestion reader format for non-.txt sources.
    datasets (Sequence[str]): Datasets to read from database/folder sources.
    ray_address (str): A Ray cluster address ("127.0.0.1:6379", "ray://..."); "" runs in this process.
    ray_workers (int): Ray actors, each loading the pipeline once.
    ray_cpus (float): CPUs each actor reserves.
    run_size (int): Review tasks sorted in memory before spilling a run to disk.
    progress (bool): Show a tqdm bar of texts read.
    segment (str): "none" (one task per input text: a paragraph) or
        "sentences" (one task per sentence, see `split_sentences`).
    """

    thresholds: Thresholds
    budget: int = 0
    spans_key: str = "sc"
    batch_size: int = 32
    gpu_id: int = -1
    fmt: Optional[str] = None
    datasets: Sequence[str] = ()
    ray_address: str = ""
    ray_workers: int = 2
    ray_cpus: float = 1.0
    run_size: int = 10000
    progress: bool = True
    segment: str = "none"


# --- runners -----------------------------------------------------------------


def _batches(records: Iterable[TextRecord], size: int, rejected: Callable[[TextRecord], None]) -> Iterator[List[TextRecord]]:
    """Group the usable records into batches; rejections go to `rejected`."""
    batch: List[TextRecord] = []
    for record in records:
        if not record.ok:
            rejected(record)
            continue
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def iter_annotated_local(nlp: Language, batches: Iterable[List[TextRecord]], spans_key: str, model: ModelInfo) -> Iterator[Task]:
    """Annotate batches in this process.

    YIELDS (Task): Scored tasks in input order.
    """
    for batch in batches:
        yield from annotate_records(nlp, batch, spans_key, model)


class AnnotatorActor:
    """A Ray actor's state: the pipeline, loaded once per worker.

    model (str): A pipeline directory (visible on the worker) or an installed package name.
    spans_key (str): The span group.
    low (float): The low threshold (the pipeline's spancat threshold while pre-annotating).
    gpu_id (int): -1 for the CPU; >= 0 uses the GPU Ray assigned to this actor.
    """

    def __init__(self, model: str, spans_key: str, low: float, gpu_id: int) -> None:
        # Ray sets CUDA_VISIBLE_DEVICES to the actor's GPU, which is then device 0.
        self.nlp, self.model = load_annotator(model, spans_key, low, 0 if gpu_id >= 0 else -1)
        self.spans_key = spans_key

    def info(self) -> ModelInfo:
        return self.model

    def annotate(self, records: List[TextRecord]) -> List[Task]:
        return annotate_records(self.nlp, records, self.spans_key, self.model)


def _ray_model_ref(model: str) -> str:
    """An existing local path becomes absolute (workers do not share our cwd);
    anything else is passed on as a package name."""
    path = Path(model)
    return str(path.resolve()) if path.exists() else model


def iter_annotated_ray(
    batches: Iterable[List[TextRecord]],
    model: str,
    options: PreannotateOptions,
    on_info: Callable[[ModelInfo], None],
) -> Iterator[Task]:
    """Annotate batches on a Ray cluster: `ray_workers` actors each load the
    pipeline once; batches go round-robin with at most two in flight per
    actor (memory stays bounded) and come back in submission order, so the
    output equals the single-process output.

    batches (Iterable[List[TextRecord]]): Usable records, batched.
    model (str): A pipeline directory present on every node, or an installed package name.
    options (PreannotateOptions): ray_address, ray_workers, ray_cpus, gpu_id, spans_key, thresholds.
    on_info (Callable[[ModelInfo], None]): Receives what the workers loaded.
    YIELDS (Task): Scored tasks in input order.
    RAISES (AssistError): No cluster at the address, or the workers cannot load the pipeline.
    """
    try:
        import ray
    except ImportError as err:  # pragma: no cover - ray is in requirements.txt
        raise AssistError("running on Ray needs the ray package: pip install ray==2.60.0") from err
    if options.ray_workers < 1:
        raise AssistError(f"ray_workers must be at least 1, got {options.ray_workers}")
    connected_here = not ray.is_initialized()
    if connected_here:
        try:
            ray.init(address=options.ray_address, logging_level="WARNING", log_to_driver=False)
        except Exception as err:  # ConnectionError, ValueError for a malformed address
            raise AssistError(f"cannot connect to the Ray cluster at {options.ray_address!r}: {err}") from err
    actors: List[Any] = []
    try:
        remote_cls = ray.remote(
            num_cpus=options.ray_cpus, num_gpus=1 if options.gpu_id >= 0 else 0
        )(AnnotatorActor)
        ref = _ray_model_ref(model)
        actors = [
            remote_cls.remote(ref, options.spans_key, options.thresholds.low, options.gpu_id)
            for _ in range(options.ray_workers)
        ]
        try:
            infos = ray.get([a.info.remote() for a in actors])
        except Exception as err:  # RayActorError wraps the worker's exception
            raise AssistError(f"the Ray workers could not load the pipeline {model!r}: {_ray_cause(err)}") from err
        if len(set(infos)) != 1:
            raise AssistError(f"the Ray workers loaded different pipelines: {sorted({str(i) for i in infos})}")
        on_info(infos[0])
        pending: List[Any] = []
        max_in_flight = 2 * len(actors)
        for i, batch in enumerate(batches):
            pending.append(actors[i % len(actors)].annotate.remote(batch))
            if len(pending) >= max_in_flight:
                yield from ray.get(pending.pop(0))
        while pending:
            yield from ray.get(pending.pop(0))
    finally:
        for actor in actors:
            ray.kill(actor)
        if connected_here:
            ray.shutdown()


def _ray_cause(err: Exception) -> str:
    text = str(err).strip().splitlines()
    # The actor's own exception is the last line of Ray's traceback text.
    return text[-1] if text else type(err).__name__


# --- the whole step ----------------------------------------------------------


def _redact(address: str) -> str:
    from ..ingest.readers import redact_url

    return redact_url(address)


def preannotate(
    sources: Sequence[str],
    model: str,
    review_path: Path,
    silver_path: Path,
    options: PreannotateOptions,
    *,
    rest_path: Optional[Path] = None,
    report_path: Optional[Path] = None,
) -> Dict[str, Any]:
    """Pre-annotate texts and route them to the silver corpus or the review file.

    sources (Sequence[str]): .txt files or folders, JSONL, or any source `convert` reads.
    model (str): A pipeline directory or an installed package (en_biomed_spancat).
    review_path (Path): The review JSONL (Prodigy `db-in` / `spans.manual` input).
    silver_path (Path): The silver DocBin (corpus/silver.spacy).
    options (PreannotateOptions): Thresholds, budget, batching, device, Ray.
    rest_path (Optional[Path]): Where review tasks over the budget go.
    report_path (Optional[Path]): Where the report JSON goes.
    RETURNS (Dict[str, Any]): The report: counts per route, rejections, spans, settings, speed.
    RAISES (AssistError): A missing source, a pipeline that cannot be used, no Ray cluster,
        nothing usable in the sources.
    RAISES (OutputsError): Another run is writing the same outputs.
    """
    if options.batch_size < 1:
        raise AssistError(f"batch_size must be at least 1, got {options.batch_size}")
    if options.budget < 0:
        raise AssistError(f"the review budget must be >= 0 (0 = no limit), got {options.budget}")
    t0 = time.perf_counter()
    read = Counter()
    rejected: Counter = Counter()
    examples: List[str] = []
    state: Dict[str, Any] = {}

    def count(stream: Iterable[TextRecord], what: str) -> Iterator[TextRecord]:
        for record in stream:
            read[what] += 1
            if what == "records":
                read["spans_ignored"] += record.spans_ignored
            yield record

    def reject(record: TextRecord) -> None:
        rejected[record.reason] += 1
        if len(examples) < 20:
            examples.append(f"{record.origin}: {record.reason}: {record.detail}")

    if options.segment not in SEGMENTS:
        raise AssistError(f"unknown segment '{options.segment}' (choose from {', '.join(SEGMENTS)})")
    records: Iterable[TextRecord] = count(iter_records(sources, options.fmt, options.datasets), "records")
    if options.segment == "sentences":
        records = split_sentences(records)
    # A task is an input record, or one of its sentences; rejected records count as one task each.
    records = count(records, "tasks")
    if options.progress:
        from tqdm import tqdm

        records = tqdm(records, desc="tasks", unit=" tasks", mininterval=1.0)
    batches = _batches(records, options.batch_size, reject)

    def set_info(info: ModelInfo) -> None:
        # Speed is measured from here: loading the pipeline is not annotating.
        state["model"] = info
        state["t_ready"] = time.perf_counter()

    # review, silver, rest and report are one unit, published together; one run at a time
    declared = [Path(p) for p in (review_path, silver_path, rest_path, report_path) if p is not None]
    with StepOutputs("preannotate", declared) as unit:
        if options.ray_address:
            annotated = iter_annotated_ray(batches, model, options, set_info)
            runner = {"runner": "ray", "ray_address": _redact(options.ray_address), "ray_workers": options.ray_workers}
        else:
            nlp, info = load_annotator(model, options.spans_key, options.thresholds.low, options.gpu_id)
            set_info(info)
            annotated = iter_annotated_local(nlp, batches, options.spans_key, info)
            runner = {"runner": "single_process"}
        # The review order's pivot is the pipeline's own threshold, which a Ray run
        # learns only once its workers are up: take the first task before routing.
        stream = iter(annotated)
        first = list(itertools.islice(stream, 1))
        loaded: Optional[ModelInfo] = state.get("model")
        thresholds = options.thresholds.with_pipeline_threshold(loaded.threshold if loaded else None)
        counts = write_routes(
            itertools.chain(first, stream),
            thresholds,
            unit.path(review_path),
            unit.path(silver_path),
            spans_key=options.spans_key,
            budget=options.budget,
            rest_path=unit.path(rest_path) if rest_path else None,
            run_size=options.run_size,
        )
        seconds = time.perf_counter() - state.get("t_ready", t0)
        n_rejected = sum(rejected.values())
        n_routed = sum(counts["routes"].values())
        if n_routed == 0:  # nothing usable: an error, and the previous outputs stay as they were
            why = f"{read['records']} texts read, all rejected (e.g. {examples[0]})" if examples else "they hold no text"
            raise AssistError(f"nothing to pre-annotate in {', '.join(map(str, sources))}: {why}")
        report: Dict[str, Any] = {
            "schema": PREANNOTATE_SCHEMA,
            "model": state["model"].to_dict() if state.get("model") else {"source": model},
            "settings": {
                "high": thresholds.high,
                "low": thresholds.low,
                "pivot": thresholds.center,
                "budget": options.budget or None,
                "spans_key": options.spans_key,
                "batch_size": options.batch_size,
                "segment": options.segment,
                "gpu_id": options.gpu_id,
                **runner,
            },
            "ordering": ORDERING,
            "read": read["records"],
            "tasks": read["tasks"],
            "rejected": n_rejected,
            "routes": counts["routes"],
            "balanced": read["tasks"] == n_rejected + n_routed,
            "silver_without_spans": counts["silver_without_spans"],
            "spans": counts["spans"],
            "input_spans_ignored": read["spans_ignored"],
            "rejected_by_reason": dict(sorted(rejected.items())),
            "rejected_examples": examples,
            "outputs": {
                "review": str(review_path),
                "silver": str(silver_path),
                "rest": str(rest_path) if rest_path else None,
            },
            "speed": {
                "seconds": round(seconds, 3),
                "words": counts["tokens"],
                "words_per_second": round(counts["tokens"] / seconds, 1) if seconds > 0 else None,
            },
        }
        if report_path is not None:
            report["outputs"]["report"] = str(report_path)
            _atomic_write_bytes(
                unit.path(report_path), (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode("utf8")
            )
        return report

