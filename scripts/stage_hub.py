"""Write exactly the folder `push` uploads: model card, wheel, chart (no network)."""
from pathlib import Path
from typing import List, Optional

import typer
from wasabi import msg

from biomed_spancat.hub import PLACEHOLDER_NAMESPACE, HubError, stage_hub


def main(
    wheel: Path = typer.Argument(..., help="The wheel built by `spacy package`"),
    out_dir: Path = typer.Argument(..., help="Folder to write (rebuilt from scratch), e.g. hub/en_biomed_spancat"),
    metrics: Path = typer.Option(..., "--metrics", help="Evaluation of the installed wheel (metrics/package.json)"),
    namespace: str = typer.Option(..., "--namespace", help="Hub user or organisation"),
    repo: str = typer.Option(..., "--repo", help="Hub repo name"),
    license: str = typer.Option(..., "--license", help="Licence id for the card (a Hub licence id)"),
    threshold_record: Optional[Path] = typer.Option(
        None, "--threshold-record", help="tune-threshold's record (metrics/threshold.json): which data chose the threshold"
    ),
    baseline: List[str] = typer.Option(
        [], "--baseline", help="NAME=PATH: metrics of a baseline on the same data (repeatable)"
    ),
):
    baselines = {}
    for item in baseline:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            msg.fail(f"--baseline takes NAME=PATH, not '{item}'", exits=1)
        baselines[name] = Path(path)
    try:
        staged = stage_hub(wheel, out_dir, metrics, namespace, repo, license, baselines=baselines,
                           threshold_record=threshold_record)
    except HubError as err:
        msg.fail(f"stage-hub: {err}", exits=1)
    msg.good(f"Staged {len(staged.files)} files in {staged.path}: {', '.join(staged.files)}")
    if namespace == PLACEHOLDER_NAMESPACE:
        msg.warn(
            f"The card's install line names the placeholder namespace '{namespace}': set vars.hub_namespace "
            "to your Hub user or organisation and re-run stage-hub before push."
        )


if __name__ == "__main__":
    typer.run(main)
