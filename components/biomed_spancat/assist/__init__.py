"""Model-assisted annotation: pre-annotate new text with a trained pipeline,
keep what it is sure of as silver training data, and hand the rest to a human,
most uncertain first.

    sources -> TextRecord stream -> nlp.pipe in batches (one process, or Ray
    actors that each load the pipeline once) -> Prodigy task with scored spans
    -> route by thresholds -> silver DocBin | review queue (sorted) -> JSONL

Routing, with `low <= high`:

- a span scoring `>= high` is kept (confident), one scoring `< low` is
  dropped (the pipeline is run with its spancat threshold set to `low`, so it
  never emits those), one in the band `[low, high)` is uncertain;
- a task with no uncertain span goes to the silver corpus with its kept spans
  (a task with none at all is silver too: confidently nothing to mark);
- any other task goes to the review file with its kept and uncertain spans,
  each carrying its `score`, for correction in Prodigy (`spans.manual`).

Review order ("what to annotate next"): the margin of a task is the smallest
distance `|score - pivot|` over its uncertain spans, where `pivot` is the
pipeline's own (tuned) spancat threshold when it lies inside the band, else
the middle of the band. The review file is sorted by margin ascending (the
task holding the span closest to the decision is first), ties broken by more
uncertain spans first, then input order. With a budget N only the first N go
to the review file; the rest go, in the same order, to the `rest` file.

Memory stays flat in the number of texts: inputs are read lazily, batches are
annotated and routed as they come, and the review queue is sorted externally
(sorted runs spilled to temporary files, merged at the end). The one thing
that grows is the silver DocBin (token ids and spans, about 20 bytes per
token) until it is written.

A task is one input text (a paragraph), or with `segment="sentences"` one
sentence of it: one uncertain span sends a whole task to review, so shorter
tasks yield more silver data and shorter reviews.

On Ray (`ray_address`), each of `ray_workers` actors loads the pipeline once
(from a path every node can read, or an installed package such as
en_biomed_spancat); batches go round-robin and come back in submission
order, so the output files equal the single-process ones.

Plain text files (`.txt`): one paragraph per line; blank lines are skipped,
each line is stripped of surrounding whitespace, and its `meta` says the file
and the line. JSONL and anything else `convert` reads come through the
ingestion reader registry; a record's `text`, `meta` and `tokens` are used,
its spans, answer and hashes are not ("annotations removed").

Project tooling: a packaged pipeline never imports this module.

Modules, in the order data flows through them: `records` (reading, hashes),
`annotate` (the pipeline and scored tasks), `route` (thresholds, routing,
the silver DocBin and the sorted review file), `preannotate` (the step,
locally or on Ray). Everything a caller needs is importable from here.
"""
from .annotate import ModelInfo, annotate_records, doc_to_task, load_annotator, make_doc
from .preannotate import (
    PREANNOTATE_SCHEMA,
    AnnotatorActor,
    PreannotateOptions,
    iter_annotated_local,
    iter_annotated_ray,
    preannotate,
)
from .records import (
    SEGMENTS,
    AssistError,
    TextRecord,
    input_hash,
    iter_records,
    read_text_file,
    record_from_data,
    split_sentences,
    task_hash,
)
from .route import ORDERING, ROUTES, ReviewQueue, RoutedTask, SilverWriter, Thresholds, route_task, write_routes

__all__ = [
    "PREANNOTATE_SCHEMA",
    "ROUTES",
    "ORDERING",
    "AssistError",
    "Thresholds",
    "TextRecord",
    "RoutedTask",
    "ModelInfo",
    "PreannotateOptions",
    "SEGMENTS",
    "input_hash",
    "task_hash",
    "read_text_file",
    "record_from_data",
    "iter_records",
    "split_sentences",
    "load_annotator",
    "make_doc",
    "doc_to_task",
    "annotate_records",
    "route_task",
    "ReviewQueue",
    "SilverWriter",
    "write_routes",
    "iter_annotated_local",
    "AnnotatorActor",
    "iter_annotated_ray",
    "preannotate",
]
