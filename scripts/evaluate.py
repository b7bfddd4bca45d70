"""Evaluate a spancat pipeline (a directory or an installed package such as
en_biomed_spancat) on a .spacy file: strict spans P/R/F overall and per label,
overlap breakdown, error kinds, suggester recall, recall by length, score
distributions; metrics as JSON and, with --report, the HTML report."""

import json
from pathlib import Path
from typing import Optional

import typer
from wasabi import msg

from biomed_spancat.pipeline.architecture import CPU_PRECISION_KEY
from biomed_spancat.evaluation.evaluate import evaluate_pipeline, score_raw_text
from biomed_spancat.evaluation.scoring import headline
from biomed_spancat.util import load_pipeline, pct, read_docs, use_device, write_json
from biomed_spancat.outputs import StepOutputs, verify_input
from biomed_spancat.evaluation.report import write_report
from biomed_spancat.evaluation.speed import describe_speed


def main(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name (en_biomed_spancat)"),
    data: Path = typer.Argument(..., exists=True, dir_okay=False, help="Gold .spacy file"),
    output: Path = typer.Option(..., "--output", help="Metrics JSON to write"),
    report: Optional[Path] = typer.Option(None, "--report", help="HTML report to write"),
    spans_key: str = typer.Option("sc", "--spans-key", help="Span group to evaluate"),
    gpu_id: int = typer.Option(-1, "--gpu-id", help="-1 for the CPU, else the CUDA device"),
    batch_size: int = typer.Option(32, "--batch-size", help="Docs per batch"),
    n_docs: int = typer.Option(5, "--n-docs", help="Docs with most errors shown in the report"),
    raw_text: bool = typer.Option(
        False, "--raw-text", help="Also score on the raw text cut by the pipeline's own tokenizer (as applications run it)"
    ),
    cpu_precision: str = typer.Option(
        "", "--cpu-precision", help="Override the transformer's cpu_precision (float32 | bfloat16 | auto); '' keeps the pipeline's"
    ),
    name: str = typer.Option(
        "", "--name", help="Package name the report and metrics name (as `package --name`: biomed_spancat -> en_biomed_spancat); '' keeps the pipeline's meta"
    ),
    version: str = typer.Option("", "--version", help="Package version to record; '' keeps the pipeline's meta"),
    data_label: str = typer.Option(
        "", "--data-label", help="How the metrics and the report name the data (default: DATA as given)"
    ),
    speed_repeats: int = typer.Option(
        3, "--speed-repeats", min=0, help="Timed passes of nlp.pipe for the speed figure (median); 0 skips it"
    ),
    training_info: Optional[Path] = typer.Option(
        None,
        "--training-info",
        exists=True,
        dir_okay=False,
        help="JSON with training facts (e.g. training_seconds) copied into the metrics",
    ),
):
    try:
        device = use_device(gpu_id)
        for given in (Path(model), data):
            verify_input(given)
        overrides = {CPU_PRECISION_KEY: cpu_precision} if cpu_precision else None
        # the metrics and the report are one unit: never one run's numbers beside another's report
        with StepOutputs("evaluate", [output] + ([report] if report is not None else [])) as unit:
            nlp = load_pipeline(model, overrides)
            gold = read_docs(data, nlp.vocab)
            if name and not name.startswith(f"{nlp.lang}_"):
                name = f"{nlp.lang}_{name}"
            result, preds = evaluate_pipeline(
                nlp,
                gold,
                spans_key,
                model=model,
                data=data_label or str(data),
                batch_size=batch_size,
                speed_repeats=speed_repeats,
                name=name or None,
                version=version or None,
            )
            if not result.metrics["spans"].get("tp", 0) + result.metrics["spans"].get("fn", 0):
                raise ValueError(
                    f"{data}: no gold spans under doc.spans[{spans_key!r}] in {len(gold)} documents: nothing to score"
                )
            if raw_text:
                result.metrics["raw_text"] = score_raw_text(nlp, gold, spans_key, batch_size=batch_size)
            if cpu_precision:
                result.metrics["cpu_precision_override"] = cpu_precision
            if training_info is not None:
                result.metrics["training"] = json.loads(training_info.read_text(encoding="utf8"))
            write_json(result.metrics, unit.path(output))
            if report is not None:
                m = result.metrics
                title = f"Span evaluation: {m['model']['name']} {m['model']['version']} on {data_label or data}"
                write_report(unit.path(report), result, gold, preds, title=title, n_docs=n_docs)
    except (ValueError, RuntimeError) as err:  # OutputsError included
        msg.fail(f"evaluate: {err}", exits=1)
    m = result.metrics
    msg.good(
        f"{model} on {data} ({device}): {headline(m)}; suggester recall "
        f"{pct((m['suggester'] or {}).get('recall'))} -> {output}"
    )
    msg.info(f"Speed: {describe_speed(m['speed'])}")
    if raw_text:
        raw = m["raw_text"]
        msg.info(
            f"On the raw text, cut by the pipeline's own tokenizer: spans P {pct(raw['p'])} R {pct(raw['r'])} "
            f"F {pct(raw['f'])}; {pct(raw['tokenizer_ceiling'])}% of gold spans fall on its token boundaries"
        )
    if report is not None:
        msg.good(f"Report -> {report}")


if __name__ == "__main__":
    typer.run(main)
