"""Pick the spancat threshold that maximises spans F on dev (like `spacy
find-threshold`, but the model runs once), record it as JSON and save a copy
of the pipeline that uses it."""

from pathlib import Path

import typer
from wasabi import msg

from biomed_spancat.util import load_pipeline, pct, read_docs, use_device, write_json
from biomed_spancat.outputs import StepOutputs, verify_input
from biomed_spancat.evaluation.threshold import candidate_thresholds, save_with_threshold, tune_threshold


def main(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name"),
    data: Path = typer.Argument(..., exists=True, dir_okay=False, help="Dev .spacy file"),
    output_dir: Path = typer.Argument(..., help="Where to save the tuned pipeline"),
    spans_key: str = typer.Option("sc", "--spans-key", help="Span group to evaluate"),
    gpu_id: int = typer.Option(-1, "--gpu-id", help="-1 for the CPU, else the CUDA device"),
    output: Path = typer.Option(
        Path("metrics/threshold.json"), "--output", help="Record of the tuning (JSON)"
    ),
    beg: float = typer.Option(0.05, "--beg", help="Lowest threshold tried"),
    end: float = typer.Option(0.95, "--end", help="Highest threshold tried"),
    n_trials: int = typer.Option(19, "--n-trials", help="Number of thresholds tried"),
    batch_size: int = typer.Option(32, "--batch-size", help="Docs per batch"),
):
    try:
        use_device(gpu_id)
        thresholds = candidate_thresholds(beg, end, n_trials)
        for given in (Path(model), data):
            verify_input(given)
        # the tuned pipeline and its record are one unit: never one run's model beside another's record
        with StepOutputs("tune-threshold", [output_dir, output]) as unit:
            nlp = load_pipeline(model)
            gold = read_docs(data, nlp.vocab)
            if not gold:
                raise ValueError(f"{data}: holds no documents: nothing to tune the threshold on")
            record = tune_threshold(
                nlp,
                gold,
                None,
                spans_key,
                thresholds=thresholds,
                model=model,
                data=str(data),
                batch_size=batch_size,
            )
            save_with_threshold(nlp, record["threshold"], unit.path(output_dir), spans_key)
            record["output"] = str(output_dir)
            write_json(record, unit.path(output))
    except (ValueError, RuntimeError) as err:  # OutputsError included
        msg.fail(f"tune-threshold: {err}", exits=1)
    best, default = record["best"], record["default"]
    msg.good(
        f"Threshold {record['threshold']:g}: spans F {pct(best['f'])} "
        f"(P {pct(best['p'])} R {pct(best['r'])}); at the pipeline's {record['default_threshold']}: "
        f"F {pct(default['f'])}"
    )
    msg.good(f"Tuned pipeline -> {output_dir}; record -> {output}")


if __name__ == "__main__":
    typer.run(main)
