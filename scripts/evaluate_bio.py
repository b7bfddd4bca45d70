"""Evaluate baseline 2 (BIO token classification) against the UNFLATTENED
gold spans with the project's scorer: the same metrics JSON as `evaluate`
(with `flattening` as the recall ceiling) and, with --report, the HTML report."""

from pathlib import Path
from typing import Optional

import typer
from wasabi import msg

from biomed_spancat.evaluation.bio_baseline import evaluate_bio
from biomed_spancat.evaluation.scoring import headline
from biomed_spancat.util import pct, read_docs, use_device, write_json
from biomed_spancat.evaluation.report import write_report


def main(
    model_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="Output of train_bio"),
    data: Path = typer.Argument(..., exists=True, dir_okay=False, help="Gold .spacy file"),
    output: Path = typer.Option(..., "--output", help="Metrics JSON to write"),
    report: Optional[Path] = typer.Option(None, "--report", help="HTML report to write"),
    gpu_id: int = typer.Option(-1, "--gpu-id", help="-1 for the CPU, else the CUDA device"),
    cpu_precision: str = typer.Option(
        "auto", "--cpu-precision", help="float32, bfloat16 or auto (bfloat16 where the CPU has it), as the pipeline"
    ),
    batch_size: int = typer.Option(16, "--batch-size", help="Windows per forward pass"),
    n_docs: int = typer.Option(5, "--n-docs", help="Docs with most errors shown in the report"),
):
    try:
        use_device(gpu_id)
        gold = read_docs(data)
        result, preds = evaluate_bio(
            model_dir, gold, data=str(data), batch_size=batch_size, gpu_id=gpu_id, cpu_precision=cpu_precision
        )
    except (ValueError, RuntimeError) as err:
        msg.fail(f"evaluate-bio: {err}", exits=1)
    write_json(result.metrics, output)
    m = result.metrics
    msg.good(
        f"BIO baseline on {data}: {headline(m)}; flattening keeps "
        f"{pct(m['flattening']['recall'])} of gold spans -> {output}"
    )
    if report is not None:
        write_report(report, result, gold, preds, title=f"BIO baseline: {model_dir} on {data}", n_docs=n_docs)
        msg.good(f"Report -> {report}")


if __name__ == "__main__":
    typer.run(main)
