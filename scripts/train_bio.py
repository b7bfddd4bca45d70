"""Train baseline 2, the flattening route: BIO token classification over the
same transformer (as AutoTrain / Prodigy's HF plugin do), on the flattened
gold spans of a .spacy file."""

from pathlib import Path

import typer
from wasabi import msg

from biomed_spancat.evaluation.bio_baseline import train_bio
from biomed_spancat.util import read_docs, use_device


def main(
    train_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Training .spacy file"),
    transformer: Path = typer.Argument(
        ..., exists=True, file_okay=False, help="Transformer folder (assets/transformer)"
    ),
    output_dir: Path = typer.Argument(..., help="Where the model and bio.json go"),
    spans_key: str = typer.Option("sc", "--spans-key", help="Span group to train on"),
    gpu_id: int = typer.Option(-1, "--gpu-id", help="-1 for the CPU, else the CUDA device"),
    cpu_precision: str = typer.Option(
        "auto", "--cpu-precision", help="float32, bfloat16 or auto (bfloat16 where the CPU has it), as the pipeline"
    ),
    max_steps: int = typer.Option(0, "--max-steps", help="Optimizer steps; 0: from --epochs"),
    epochs: float = typer.Option(3.0, "--epochs", help="Passes over the data when --max-steps is 0"),
    batch_size: int = typer.Option(8, "--batch-size", help="Windows per step"),
    learn_rate: float = typer.Option(5e-5, "--learn-rate", help="Peak learning rate (AdamW)"),
    window: int = typer.Option(128, "--window", help="Words per window"),
    seed: int = typer.Option(0, "--seed", help="Random seed"),
):
    try:
        use_device(gpu_id)
        docs = read_docs(train_path)
        record = train_bio(
            docs,
            transformer,
            output_dir,
            spans_key,
            max_steps=max_steps,
            epochs=epochs,
            batch_size=batch_size,
            learn_rate=learn_rate,
            window=window,
            seed=seed,
            gpu_id=gpu_id,
            cpu_precision=cpu_precision,
        )
    except (ValueError, RuntimeError) as err:
        msg.fail(f"train-bio: {err}", exits=1)
    t = record["training"]
    flat = t["flattening"]
    msg.good(
        f"Trained {t['steps']} steps ({t['epochs']:.1f} epochs) in {t['training_seconds']:.0f}s "
        f"on {t['windows']} windows ({len(record['labels'])} labels) -> {output_dir}"
    )
    msg.info(f"Flattening dropped {flat['dropped']} of {flat['gold_spans']} training spans")


if __name__ == "__main__":
    typer.run(main)
