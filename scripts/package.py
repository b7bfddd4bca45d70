"""Package the trained pipeline as a self-contained wheel (registered code bundled)."""
import json
from pathlib import Path
from typing import Optional

import typer
from wasabi import msg

from biomed_spancat.publish.packaging import PackagingError, build_meta, check_package_args, package_pipeline


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
    try:
        check_package_args(model_dir, output_dir, name, version)  # before anything is written
        source = _read_json(transformer_source)
        report = _read_json(corpus_report) if corpus_report is not None and corpus_report.exists() else None
        training = _read_json(training_info) if training_info is not None and training_info.exists() else None
        meta = build_meta(name, version, source, report, license=license, training=training)
        wheel = package_pipeline(model_dir, output_dir, meta)
    except PackagingError as err:
        msg.fail(f"package: {err}", exits=1)
    if source.get("stand_in"):
        msg.warn(f"Base model: {source['used']} (offline stand-in for {source['requested']})")
    msg.good(f"Built {wheel}")


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf8"))
    except (OSError, ValueError) as err:
        raise PackagingError(f"{path}: not readable JSON ({err})") from None


if __name__ == "__main__":
    typer.run(main)
