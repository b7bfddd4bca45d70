"""Benchmark the project against its peers in one run (`weasel run bench`):
conversion; inference against the Hugging Face token-classification pipeline
(float32 and bfloat16), the same model in ONNX Runtime (float32 and int8),
GLiNER and stock spacy-transformers spancat, with a profile of our pass and its
FLOP/s against the CPU's bfloat16 peak; training speed and memory; on the
stand-in and a BERT-base-shaped backbone. Writes OUT_DIR/bench.json and
BENCHMARKS.md (docs/benchmarks-peers.md says what each row is)."""
import shlex
import sys
from pathlib import Path
from typing import List, Optional

import typer
from wasabi import msg

from biomed_spancat.bench import FULL, QUICK, check_inputs, read_spans_f, run_bench, write_markdown

SECTIONS = ("conversion", "inference", "training", "base")


def main(
    out_dir: Path = typer.Argument(..., file_okay=False, help="Where bench.json and the work folder go"),
    quick: bool = typer.Option(False, "--quick", help="Tiny sizes (minutes): keeps the harness from rotting"),
    pipeline: str = typer.Option("en_biomed_spancat", help="Our pipeline: a directory or an installed package"),
    dev: Path = typer.Option(Path("corpus/dev.spacy"), exists=True, dir_okay=False, help="Dev DocBin (inference texts)"),
    train: Path = typer.Option(Path("corpus/train.spacy"), exists=True, dir_okay=False, help="Train DocBin (training speed)"),
    config: Path = typer.Option(Path("training/config.cfg"), exists=True, dir_okay=False, help="Our training config"),
    backbone: Path = typer.Option(Path("assets/transformer"), exists=True, file_okay=False, help="The stand-in backbone folder"),
    craft_dir: Optional[Path] = typer.Option(
        None, help="CRAFT in Prodigy's format (craft_train.jsonl: the mirror) for the conversion figures; skipped without"
    ),
    metrics: List[str] = typer.Option([], "--metrics", help="NAME=PATH of a metrics JSON with spans F (repeatable)"),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="Also write this Markdown file (BENCHMARKS.md)"),
    repeats: int = typer.Option(3, min=3, help="Timed runs per figure (median reported)"),
    infer_words: int = typer.Option(0, min=0, help="Words per inference pass on every backbone (0: the mode's default)"),
    train_steps: int = typer.Option(0, min=0, help="Timed training steps per run on every backbone (0: the mode's default)"),
    skip: List[str] = typer.Option([], "--skip", help=f"Leave a section out: {', '.join(SECTIONS)} (repeatable)"),
    spans_key: str = typer.Option("sc", "--spans-key", help="Span group"),
):
    """Measure conversion, inference and training side by side; write OUT_DIR/bench.json."""
    settings = QUICK if quick else FULL
    sizes = {"repeats": repeats}
    if infer_words:
        sizes["infer_words"] = {k: infer_words for k in settings.infer_words}
    if train_steps:
        sizes["train_steps"] = {k: train_steps for k in settings.train_steps}
    settings = type(settings)(**{**settings.__dict__, **sizes})
    bad = [s for s in skip if s not in SECTIONS]
    if bad:
        msg.fail(f"--skip: unknown section(s) {', '.join(bad)}; expected {', '.join(SECTIONS)}", exits=1)
    named = {}
    for item in metrics:
        if "=" not in item:
            msg.fail(f"--metrics expects NAME=PATH, got {item!r}", exits=1)
        name, path = item.split("=", 1)
        try:
            read_spans_f(Path(path))  # fail before an hour of measuring, not after
        except ValueError as err:
            msg.fail(f"--metrics {name}: {err}", exits=1)
        named[name] = Path(path)
    command = "python -m scripts.bench " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    try:
        check_inputs(dev, train)  # an empty DocBin stops now, not after minutes of measuring
    except ValueError as err:
        msg.fail(str(err), exits=1)
    result = run_bench(
        out_dir,
        pipeline=pipeline,
        dev=dev,
        train=train,
        config=config,
        backbone=backbone,
        craft_dir=craft_dir,
        settings=settings,
        metrics=named,
        command=command,
        project_root=Path.cwd(),
        spans_key=spans_key,
        skip=skip,
    )
    msg.good(f"Wrote {out_dir / 'bench.json'} ({result['seconds']:.0f} s)")
    if markdown is not None:
        msg.good(f"Wrote {write_markdown(result, markdown)}")
    for miss in result["missed_targets"]:
        msg.warn(f"Target missed: {miss['target']} ({miss['where']}): {miss['shortfall']}")


if __name__ == "__main__":
    typer.run(main)
