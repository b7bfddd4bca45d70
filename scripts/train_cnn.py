"""Train baseline 1, spaCy's stock CNN spancat (configs/baseline_cnn.cfg), as
`spacy train` does, and record the wall-clock training time in
OUTPUT_DIR/training.json for the baselines table. Extra `--section.key value`
arguments override the config (`--paths.train corpus/train.spacy`)."""

import sys
import time
from pathlib import Path

import typer
from spacy import util
from spacy.cli._util import parse_config_overrides, show_validation_error
from spacy.training.initialize import init_nlp
from spacy.training.loop import train as train_nlp
from wasabi import msg

from biomed_spancat.evaluation import use_device, write_json

app = typer.Typer(add_completion=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def main(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Training config"),
    output_dir: Path = typer.Argument(..., help="Where model-best, model-last and training.json go"),
    gpu_id: int = typer.Option(-1, "--gpu-id", help="-1 for the CPU, else the CUDA device"),
):
    """Train; extra `--section.key value` arguments override the config."""
    overrides = parse_config_overrides(ctx.args)
    try:
        device = use_device(gpu_id)
    except RuntimeError as err:
        msg.fail(str(err), exits=1)
    with show_validation_error(config_path):
        config = util.load_config(config_path, overrides=overrides, interpolate=False)
    output_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with show_validation_error(config_path, hint_fill=False):
        nlp = init_nlp(config, use_gpu=gpu_id)
    train_nlp(nlp, output_dir, use_gpu=gpu_id, stdout=sys.stdout, stderr=sys.stderr)
    seconds = time.perf_counter() - start
    record = {
        "schema": "biomed.training.v1",
        "baseline": "cnn-spancat",
        "config": str(config_path),
        "overrides": {k: v for k, v in overrides.items()},
        "device": device,
        "training_seconds": seconds,
    }
    write_json(record, output_dir / "training.json")
    msg.good(f"Trained in {seconds:.0f}s -> {output_dir}")


if __name__ == "__main__":
    app()
