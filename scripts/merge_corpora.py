"""Concatenate DocBins (gold, then silver) into one training corpus."""
from pathlib import Path
from typing import List

import typer
from wasabi import msg

from biomed_spancat.assist import AssistError
from biomed_spancat.training.uptrain import merge_corpora
from biomed_spancat.util import DocBinError


def main(
    inputs: List[Path] = typer.Argument(..., help=".spacy files, in order"),
    output: Path = typer.Option(..., "--output", help="The merged .spacy file"),
):
    try:
        counts = merge_corpora(inputs, output)
    except (AssistError, DocBinError) as err:
        msg.fail("merge-corpora failed", str(err), exits=1)
    parts = ", ".join(f"{Path(k).name} {v}" for k, v in counts.items() if k != "total")
    msg.good(f"{output}: {counts['total']} docs ({parts})")


if __name__ == "__main__":
    typer.run(main)
