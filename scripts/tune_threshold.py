"""Pick the spancat threshold that maximises spans F on dev (like `spacy
find-threshold`, but the model runs once), then a threshold per label and the
same-label overlap policy (on the same scores); record them as JSON and save a
copy of the pipeline that uses them (a `span_filter` component after spancat)."""

from pathlib import Path

import typer
from wasabi import msg

from biomed_spancat.evaluation.threshold import (
    candidate_thresholds,
    predict_scores,
    save_with_filter,
    save_with_threshold,
    tune_span_filter,
    tune_threshold,
)
from biomed_spancat.outputs import StepOutputs, verify_input
from biomed_spancat.util import load_pipeline, pct, read_docs, use_device, write_json


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
    thresholds_scope: str = typer.Option(
        "global", "--thresholds",
        help="global (one threshold for every label) or per-label (labels with few dev spans keep the global one; "
             "needs a dev set large enough not to overfit)",
    ),
    same_label: str = typer.Option(
        "auto", "--same-label",
        help="Spans of one label that overlap: keep, best (keep the highest scored) or auto (the better on dev)",
    ),
    min_gold: int = typer.Option(25, "--min-gold", help="Dev gold spans a label needs for its own threshold"),
):
    try:
        if thresholds_scope not in ("global", "per-label"):
            raise ValueError(f"--thresholds must be global or per-label, got {thresholds_scope!r}")
        per_label = thresholds_scope == "per-label"
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
            # one pass of the model over dev serves every trial below
            predicted = predict_scores(nlp, gold, spans_key, batch_size=batch_size)
            record = tune_threshold(
                nlp,
                gold,
                None,
                spans_key,
                thresholds=thresholds,
                model=model,
                data=str(data),
                batch_size=batch_size,
                predicted=predicted,
            )
            filtered = None
            if per_label or same_label != "keep":
                filtered = tune_span_filter(
                    nlp, gold, spans_key, thresholds=thresholds, same_label=same_label,
                    per_label=per_label, min_gold=min_gold, batch_size=batch_size, predicted=predicted,
                )
            if filtered is not None and (filtered["dev"]["f"] or 0.0) > (record["best"]["f"] or 0.0):
                save_with_filter(nlp, filtered, unit.path(output_dir), spans_key)
                # what spancat itself keeps: the lowest per-label threshold (the card reads it)
                record["threshold"] = min(filtered["thresholds"].values())
                record["span_filter"] = filtered
            else:
                save_with_threshold(nlp, record["threshold"], unit.path(output_dir), spans_key)
                record["span_filter"] = filtered and {**filtered, "used": False}
            record["output"] = str(output_dir)
            write_json(record, unit.path(output))
    except (ValueError, RuntimeError) as err:  # OutputsError included
        msg.fail(f"tune-threshold: {err}", exits=1)
    best, default = record["best"], record["default"]
    msg.good(
        f"Threshold {best['threshold']:g}: spans F {pct(best['f'])} "
        f"(P {pct(best['p'])} R {pct(best['r'])}); at the pipeline's {record['default_threshold']}: "
        f"F {pct(default['f'])}"
    )
    filtered = record.get("span_filter")
    if filtered and filtered.get("used", True):
        dev = filtered["dev"]
        values = filtered["thresholds"].values()
        if filtered["per_label"]:
            kept = f"Per-label thresholds ({len(values)} labels, {min(values):g} to {max(values):g})"
        else:
            kept = f"Threshold {min(values):g}"
        msg.good(
            f"{kept}, same-label overlaps '{filtered['same_label']}': spans F {pct(dev['f'])} "
            f"(P {pct(dev['p'])} R {pct(dev['r'])})"
        )
    elif filtered:
        msg.info(f"Per-label thresholds and the same-label policy did not beat the global threshold on {data}: not used")
    msg.good(f"Tuned pipeline -> {output_dir}; record -> {output}")


if __name__ == "__main__":
    typer.run(main)
