"""Train baseline 3, the GLiNER route: GLiNER fine-tuned on the same gold
spans (overlaps kept) over the same transformer, with GLiNER's own training
code; then its threshold is tuned on dev."""

from pathlib import Path

import typer
from wasabi import msg

from biomed_spancat.util import pct, read_docs, use_device, write_json
from biomed_spancat.evaluation.gliner_baseline import train_gliner, tune_gliner_threshold


def main(
    train_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Training .spacy file"),
    dev_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Dev .spacy file (threshold)"),
    transformer: Path = typer.Argument(..., exists=True, file_okay=False, help="Transformer folder (assets/transformer)"),
    output_dir: Path = typer.Argument(..., help="Where model/ and gliner.json go"),
    spans_key: str = typer.Option("sc", "--spans-key", help="Span group to train on"),
    gpu_id: int = typer.Option(-1, "--gpu-id", help="-1 for the CPU, else the CUDA device"),
    max_steps: int = typer.Option(0, "--max-steps", help="Optimizer steps; 0: from --epochs"),
    epochs: float = typer.Option(1.0, "--epochs", help="Passes over the data when --max-steps is 0"),
    batch_size: int = typer.Option(8, "--batch-size", help="Records (windows) per step"),
    learn_rate: float = typer.Option(1e-5, "--learn-rate", help="The encoder's learning rate"),
    others_learn_rate: float = typer.Option(5e-5, "--others-learn-rate", help="Span and prompt layers' learning rate"),
    max_width: int = typer.Option(12, "--max-width", help="Longest span scored, in words"),
    seed: int = typer.Option(0, "--seed", help="Random seed"),
    threshold_output: Path = typer.Option(None, "--threshold-output", help="JSON with every threshold trial"),
):
    try:
        use_device(gpu_id)
        record = train_gliner(
            read_docs(train_path),
            read_docs(dev_path),
            transformer,
            output_dir,
            spans_key=spans_key,
            max_steps=max_steps,
            epochs=epochs,
            batch_size=batch_size,
            learn_rate=learn_rate,
            others_learn_rate=others_learn_rate,
            max_width=max_width,
            seed=seed,
            gpu_id=gpu_id,
        )
        t = record["training"]
        msg.good(
            f"Trained GLiNER {t['steps']} steps in {t['training_seconds']:.0f}s on {t['records']} "
            f"records ({len(record['labels'])} labels) -> {output_dir}"
        )
        tuned = tune_gliner_threshold(output_dir, read_docs(dev_path), gpu_id=gpu_id)
    except (ValueError, RuntimeError) as err:
        msg.fail(f"train-gliner: {err}", exits=1)
    if threshold_output is not None:
        write_json(tuned, threshold_output)
    best = tuned["best"]
    msg.good(f"Threshold {best['threshold']} on {dev_path}: spans F {pct(best['f'])}")


if __name__ == "__main__":
    typer.run(main)
