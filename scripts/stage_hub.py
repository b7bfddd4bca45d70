"""Write exactly the folder `push` uploads: model card, wheel, chart (no network).

The wheel is checked first: whole (as `package` published it), built from
`--model` when given, and the very wheel `--metrics` evaluated. The folder is
published as one unit; a second stage-hub into it is refused while one runs.
"""
import json
from pathlib import Path
from typing import List, Optional

import typer
from wasabi import msg

from biomed_spancat.publish.hub import PLACEHOLDER_NAMESPACE, HubError, stage_hub
from biomed_spancat.outputs import OutputsError, StepOutputs, file_digest, verify_input
from biomed_spancat.publish.packaging import PackagingError, check_wheel
from biomed_spancat.util import InputFileError


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
    model: Optional[Path] = typer.Option(
        None, "--model", help="The pipeline the wheel must have been built from (refused otherwise)"
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
        check_wheel(wheel, model)
        _check_metrics_are_of(metrics, wheel)
        with StepOutputs("stage-hub", [out_dir]) as unit:
            staged = stage_hub(wheel, unit.path(out_dir), metrics, namespace, repo, license, baselines=baselines,
                               threshold_record=threshold_record)
    except (HubError, PackagingError, InputFileError, OutputsError) as err:
        msg.fail(f"stage-hub: {err}", exits=1)
    msg.good(f"Staged {len(staged.files)} files in {out_dir}: {', '.join(staged.files)}")
    if namespace == PLACEHOLDER_NAMESPACE:
        msg.warn(
            f"The card's install line names the placeholder namespace '{namespace}': set vars.hub_namespace "
            "to your Hub user or organisation and re-run stage-hub before push."
        )


def _check_metrics_are_of(metrics: Path, wheel: Path) -> None:
    """The card's scores must be those of this wheel: evaluate-package records its digest."""
    if not metrics.is_file():
        return  # stage_hub says so
    verify_input(metrics)
    try:
        recorded = (json.loads(metrics.read_text(encoding="utf8")).get("wheel") or {}).get("sha256")
    except (ValueError, AttributeError):
        return  # stage_hub says what is wrong with it
    if recorded is not None and recorded != file_digest(wheel):
        raise PackagingError(
            f"{metrics}: scores another build of {wheel.name} (its wheel digest differs); "
            f"run `evaluate-package` on this wheel first"
        )


if __name__ == "__main__":
    typer.run(main)
