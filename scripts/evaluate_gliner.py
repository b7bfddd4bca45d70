"""Evaluate baseline 3 (GLiNER) at its tuned threshold with the project's
scorer: the same metrics JSON as `evaluate` and, with --report, the HTML report."""

from pathlib import Path
from typing import Optional

import typer
from wasabi import msg

from biomed_spancat.evaluation.scoring import headline
from biomed_spancat.util import read_docs, use_device, write_json
from biomed_spancat.evaluation.gliner_baseline import evaluate_gliner
from biomed_spancat.evaluation.report import write_report


def main(
    model_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="Output of train_gliner"),
    data: Path = typer.Argument(..., exists=True, dir_okay=False, help="Gold .spacy file"),
    output: Path = typer.Option(..., "--output", help="Metrics JSON to write"),
    report: Optional[Path] = typer.Option(None, "--report", help="HTML report to write"),
    gpu_id: int = typer.Option(-1, "--gpu-id", help="-1 for the CPU, else the CUDA device"),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Override the tuned threshold"),
    batch_size: int = typer.Option(8, "--batch-size", help="Windows per forward pass"),
    n_docs: int = typer.Option(5, "--n-docs", help="Docs with most errors shown in the report"),
):
    try:
        use_device(gpu_id)
        gold = read_docs(data)
        result, preds = evaluate_gliner(
            model_dir, gold, data=str(data), threshold=threshold, batch_size=batch_size, gpu_id=gpu_id
        )
    except (ValueError, RuntimeError) as err:
        msg.fail(f"evaluate-gliner: {err}", exits=1)
    write_json(result.metrics, output)
    msg.good(f"GLiNER baseline on {data}: {headline(result.metrics)} -> {output}")
    if report is not None:
        write_report(report, result, gold, preds, title=f"GLiNER baseline: {model_dir} on {data}", n_docs=n_docs)
        msg.good(f"Report -> {report}")


if __name__ == "__main__":
    typer.run(main)
