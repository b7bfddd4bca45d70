"""Convert CRAFT with its own article split into train/dev/test DocBins: from
the offline mirror (Prodigy exports) when present, else from the corpus that
`weasel assets` fetched (its Knowtator XML, read by the knowtator reader)."""

from pathlib import Path
from typing import Optional

import typer
from wasabi import msg

from biomed_spancat.ingest.startup import torch_hidden

with torch_hidden():  # converting never runs a model
    from biomed_spancat.ingest.convert import ConvertOptions, convert
    from biomed_spancat.ingest.craft import CRAFT_COMMIT, CRAFT_DATASETS, craft_source
    from biomed_spancat.ingest.report import print_summary
    from biomed_spancat.ingest.tasks import IngestError


def main(
    corpus: Path = typer.Argument(..., help="CRAFT's repository as `weasel assets` fetches it (assets/craft)"),
    output_dir: Path = typer.Argument(..., help="Where train.spacy, dev.spacy, test.spacy and report.json go"),
    mirror: Optional[Path] = typer.Option(
        None, "--mirror", help="Offline mirror (craft_{train,dev,test}.jsonl), used instead when present"
    ),
    commit: str = typer.Option(CRAFT_COMMIT, "--commit", help="The commit a git checkout of CRAFT must be at"),
    spans_key: str = typer.Option("sc", "--spans-key", help="Key in doc.spans"),
    seed: int = typer.Option(0, "--seed", help="Seed (the split is CRAFT's own; kept for the report)"),
):
    try:
        source, kind = craft_source(mirror, corpus, commit or None)
        msg.info(f"CRAFT from {source} ({'Prodigy mirror' if kind == 'mirror' else 'Knowtator XML'})")
        options = ConvertOptions(
            datasets=[CRAFT_DATASETS["train"]],
            eval=[CRAFT_DATASETS["dev"]],
            test=[CRAFT_DATASETS["test"]],
            spans_key=spans_key,
            seed=seed,
        )
        report = convert([source], output_dir, options)
    except IngestError as err:
        msg.fail("convert-craft failed", str(err), exits=1)
    print_summary(report)


if __name__ == "__main__":
    typer.run(main)
