"""Train the pipeline like `spacy train`, with the GPU made explicit: preflight
first, configs/gpu.cfg merged in when --gpu-id >= 0, dotted overrides passed
through (`--training.max_steps 100`), the span group set by --spans-key. The registered code (biomed.*) comes
from the installed package's entry points, so no --code is needed."""
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from spacy.cli._util import parse_config_overrides, show_validation_error
from spacy.training.initialize import init_nlp
from spacy.training.loop import train as train_nlp
from wasabi import msg

from biomed_spancat.outputs import OutputsError, verify_input
from biomed_spancat.publish.packaging import training_record
from biomed_spancat.util import write_json
from biomed_spancat.training.gpu import (
    GpuConfigError,
    GpuUnavailable,
    check_config_for_device,
    load_training_config,
    preflight,
)

app = typer.Typer(add_completion=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def main(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Training config"),
    output_dir: Path = typer.Argument(..., help="Where model-best and model-last go"),
    gpu_id: int = typer.Option(-1, "--gpu-id", help="-1 for the CPU, else the CUDA device"),
    gpu_config: Path = typer.Option(
        Path("configs/gpu.cfg"), "--gpu-config", help="Merged over the config when --gpu-id >= 0"
    ),
    spans_key: Optional[str] = typer.Option(
        None, "--spans-key", help="doc.spans key to train on (the spancat component and its score weights)"
    ),
):
    """Train; extra `--section.key value` arguments override the config."""
    overrides = parse_config_overrides(ctx.args)
    try:
        with show_validation_error(config_path):
            config = load_training_config(config_path, gpu_id, gpu_config, overrides, spans_key)
        allocator = config.get("system", {}).get("gpu_allocator") or "pytorch"
        # Before any work: a GPU that cannot be used stops the run here.
        preflight(gpu_id, allocator)
        notes = check_config_for_device(config, gpu_id)
        missing = []
        for key in ("train", "dev"):
            value = config.get("paths", {}).get(key)
            if overrides.get(f"paths.{key}"):  # whole, as convert published them
                verify_input(Path(str(value)))
            if value and not Path(str(value)).exists():
                missing.append(f"paths.{key} = {value}")
    except (GpuUnavailable, GpuConfigError, OutputsError) as err:
        msg.fail(str(err), exits=1)
    if missing:
        msg.fail(
            f"No such training data: {'; '.join(missing)}",
            "Make it with `weasel run convert` (CRAFT: `weasel run craft-convert`), or give the paths with --paths.train / --paths.dev",
            exits=1,
        )
    for note in notes:
        msg.warn(note)
    if gpu_id >= 0:
        msg.info(f"Merged {gpu_config} over {config_path}")
    output_dir.mkdir(parents=True, exist_ok=True)
    msg.divider("Initializing pipeline")
    with show_validation_error(config_path, hint_fill=False):
        nlp = init_nlp(config, use_gpu=gpu_id)
    msg.good("Initialized pipeline")
    msg.divider("Training pipeline")
    start = time.perf_counter()
    interrupted = False
    try:
        train_nlp(nlp, output_dir, use_gpu=gpu_id, stdout=sys.stdout, stderr=sys.stderr)
    except KeyboardInterrupt:
        # Ctrl-C (SIGINT) on a long run: spaCy has saved model-best at the last
        # evaluation and model-last now; the record says the run was cut short.
        interrupted = True
    # What the model card reports under "how it was built"
    record = training_record(time.perf_counter() - start, config, gpu_id, sys.argv)
    if interrupted:
        record["interrupted"] = True
    write_json(record, output_dir / "training.json")
    if interrupted:
        msg.warn(f"Interrupted after {record['training_seconds']:.0f} s: {output_dir}/model-best is the last evaluated best")
        sys.exit(130)  # through sys.exit, so the step timer knows the step failed


if __name__ == "__main__":
    app()
