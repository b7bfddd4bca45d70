"""Pre-annotate new text with a trained pipeline: confident tasks become the
silver corpus, uncertain ones a review file for Prodigy (most uncertain
first), and a report counts each route. Runs in this process, or on a Ray
cluster with --ray-address."""
from pathlib import Path
from typing import List, Optional

import typer
from wasabi import msg

from biomed_spancat.assist import AssistError, PreannotateOptions, Thresholds, preannotate
from biomed_spancat.training.gpu import GpuUnavailable
from biomed_spancat.util import PipelineError
from biomed_spancat.outputs import OutputsError


def main(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name (en_biomed_spancat)"),
    sources: List[str] = typer.Argument(..., help=".txt files/folders (one paragraph per line), JSONL with 'text', or any source convert reads"),
    review: Path = typer.Option(Path("corpus/review.jsonl"), "--review", help="Review tasks for Prodigy (db-in), most uncertain first"),
    silver: Path = typer.Option(Path("corpus/silver.spacy"), "--silver", help="Silver DocBin: tasks with no uncertain span"),
    report: Path = typer.Option(Path("metrics/preannotate.json"), "--report", help="Counts per route, rejections, settings"),
    rest: Optional[Path] = typer.Option(None, "--rest", help="Review tasks over the budget (same order); default: not written, only counted"),
    high: float = typer.Option(0.9, "--high", help="Spans scoring >= high are kept"),
    low: float = typer.Option(0.1, "--low", help="Spans scoring < low are dropped; [low, high) is uncertain"),
    budget: int = typer.Option(0, "--budget", help="At most this many tasks in the review file; 0 = no limit"),
    spans_key: str = typer.Option("sc", "--spans-key", help="Key in doc.spans"),
    batch_size: int = typer.Option(32, "--batch-size", help="Texts per nlp.pipe batch (and per Ray task)"),
    gpu_id: int = typer.Option(-1, "--gpu-id", help="-1 for the CPU, else the CUDA device"),
    ray_address: str = typer.Option("", "--ray-address", help="Ray cluster address (host:port or ray://...); '' runs in this process"),
    ray_workers: int = typer.Option(2, "--ray-workers", help="Ray actors, each loading the pipeline once"),
    ray_cpus: float = typer.Option(1.0, "--ray-cpus", help="CPUs each Ray actor reserves"),
    datasets: str = typer.Option("", "--datasets", help="Comma-separated datasets of a database/folder source; '' reads all"),
    format: Optional[str] = typer.Option(None, "--format", help="Force a reader format for non-.txt sources"),
    segment: str = typer.Option("none", "--segment", help="none: one task per text (paragraph) | sentences: one task per sentence"),
):
    try:
        options = PreannotateOptions(
            # weasel hands floats over as e.g. 0.6000000000000001
            thresholds=Thresholds(high=round(high, 6), low=round(low, 6)),
            budget=budget,
            spans_key=spans_key,
            batch_size=batch_size,
            gpu_id=gpu_id,
            fmt=format,
            datasets=[d.strip() for d in datasets.split(",") if d.strip()],
            ray_address=ray_address,
            ray_workers=ray_workers,
            ray_cpus=ray_cpus,
            segment=segment,
        )
        result = preannotate(sources, model, review, silver, options, rest_path=rest, report_path=report)
    except (AssistError, PipelineError, GpuUnavailable, OutputsError) as err:
        msg.fail("preannotate failed", str(err), exits=1)
    routes = result["routes"]
    tasks = f"{result['read']} texts, {result['tasks']} sentence tasks" if result["tasks"] != result["read"] else f"{result['read']} texts"
    (msg.good if result["balanced"] else msg.fail)(
        f"{tasks} = rejected {result['rejected']} + silver {routes['silver']} "
        f"+ review {routes['review']} + over budget {routes['over_budget']}"
    )
    for example in result["rejected_examples"][:5]:
        msg.warn(f"rejected {example}")
    spans = result["spans"]
    msg.info(
        f"spans: {spans['kept']} kept (>= {result['settings']['high']}), {spans['uncertain']} uncertain; "
        f"review order pivot {result['settings']['pivot']}; {result['speed']['words_per_second']} words/s "
        f"({result['settings']['runner']})"
    )
    msg.good(f"Wrote {review}, {silver} and {report}")


if __name__ == "__main__":
    typer.run(main)
