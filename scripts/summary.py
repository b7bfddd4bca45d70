"""The last step of `weasel run all`: what was made, how well it scores, how long each
step took, what needs action, and what to do next; also written as JSON."""
from pathlib import Path
from typing import Optional

import srsly
import typer
from wasabi import msg

from biomed_spancat.util import write_json
from biomed_spancat.steps import STEP_LOG
from biomed_spancat.summary import build_summary, format_summary


def main(
    wheel: Path = typer.Argument(..., help="The built wheel"),
    metrics: Path = typer.Option(Path("metrics/package.json"), "--metrics", help="Evaluation of the installed wheel"),
    report: Path = typer.Option(Path("metrics/report.html"), "--report", help="The HTML report"),
    card: Path = typer.Option(..., "--card", help="The staged model card (hub/.../README.md)"),
    corpus_report: Path = typer.Option(Path("corpus/report.json"), "--corpus-report", help="convert's report"),
    transformer_source: Path = typer.Option(..., "--transformer-source", help="fetch-transformer's source.json"),
    namespace: str = typer.Option(..., "--namespace", help="Hub user or organisation"),
    repo: str = typer.Option(..., "--repo", help="Hub repo name"),
    workflow: str = typer.Option("all", "--workflow", help="The workflow whose steps are timed"),
    output: Optional[Path] = typer.Option(Path("metrics/summary.json"), "--output", help="The summary as JSON"),
):
    from weasel.util import load_project_config

    try:
        steps = load_project_config(Path.cwd()).get("workflows", {}).get(workflow)
    except SystemExit:  # weasel prints why project.yml does not load
        steps = None
    if not steps:
        msg.fail(f"summary: no workflow '{workflow}' in project.yml (run it from the project folder)", exits=1)
    steps = [s for s in steps if s != "summary"]  # this very step: not finished, not timed
    lock_path = Path("project.lock")
    lock = srsly.read_yaml(lock_path) if lock_path.exists() else {}
    summary = build_summary(
        steps=steps,
        lock=lock or {},
        step_log=STEP_LOG,
        wheel=wheel,
        report=report,
        card=card,
        metrics=metrics,
        corpus_report=corpus_report,
        transformer_source=transformer_source,
        namespace=namespace,
        repo=repo,
    )
    if output is not None:
        write_json(summary, output)
    msg.divider(f"Summary of `weasel run {workflow}`")
    for line in format_summary(summary):
        print(line)
    if not summary["scores"] or not all(a["exists"] for a in summary["artifacts"]):
        msg.fail("Not everything was made: see above", exits=1)


if __name__ == "__main__":
    typer.run(main)
