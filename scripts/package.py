"""Package the trained pipeline as a self-contained wheel (registered code bundled)."""
import json
from pathlib import Path
from typing import Optional

import typer
from wasabi import msg

from biomed_spancat.packaging import build_meta, package_pipeline


def main(
    model_dir: Path = typer.Argument(..., exists=True, file_okay=False),
    output_dir: Path = typer.Argument(...),
    name: str = typer.Option("biomed_spancat"),
    version: str = typer.Option("0.1.0"),
    transformer_source: Path = typer.Option(..., exists=True, help="fetch-transformer's source.json"),
    corpus_report: Optional[Path] = typer.Option(None, help="convert's report.json"),
    license: str = typer.Option("cc-by-3.0"),
    training_info: Optional[Path] = typer.Option(None, help="scripts.train's training.json"),
):
    source = json.loads(transformer_source.read_text(encoding="utf8"))
    report = None
    if corpus_report is not None and corpus_report.exists():
        report = json.loads(corpus_report.read_text(encoding="utf8"))
    training = None
    if training_info is not None and training_info.exists():
        training = json.loads(training_info.read_text(encoding="utf8"))
    meta = build_meta(name, version, source, report, license=license, training=training)
    wheel = package_pipeline(model_dir, output_dir, meta)
    if source.get("stand_in"):
        msg.warn(f"Base model: {source['used']} (offline stand-in for {source['requested']})")
    msg.good(f"Built {wheel}")


if __name__ == "__main__":
    typer.run(main)
