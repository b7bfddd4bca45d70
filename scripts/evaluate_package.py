"""Install the built wheel into a private folder and evaluate the installed package.

The artifact that ships is the wheel, not training/model-tuned: this checks
that the wheel is the one `package` published for `--model` (not a stale one),
installs it with pip (no dependencies: they are the project's own) into
`packages/installed`, then runs `scripts.evaluate` on the package name with
that folder first on the path, from outside the project folder. The metrics
record the wheel's digest and the model's, which stage-hub checks.
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

import typer
from wasabi import msg

from biomed_spancat.outputs import OutputsError, StepOutputs, file_digest, verify_input
from biomed_spancat.publish.packaging import MODEL_HASH_KEY, PackagingError, check_wheel
from biomed_spancat.util import write_json

ROOT = Path(__file__).resolve().parent.parent


def main(
    wheel: Path = typer.Argument(..., exists=True, dir_okay=False),
    data: Path = typer.Argument(..., exists=True, dir_okay=False),
    output: Path = typer.Option(..., help="Metrics JSON to write"),
    report: Optional[Path] = typer.Option(
        None, help="HTML report to write: the installed package's, so report, card and README share one speed figure"
    ),
    model: Optional[Path] = typer.Option(
        None, "--model", help="The pipeline the wheel must have been built from (refused otherwise)"
    ),
    spans_key: str = typer.Option("sc"),
    gpu_id: int = typer.Option(-1),
    install_dir: Path = typer.Option(Path("packages/installed")),
):
    try:
        meta = check_wheel(wheel, model)
        verify_input(data)
        with StepOutputs("evaluate-package", [output] + ([report] if report is not None else [])) as unit:
            staged_report = unit.path(report) if report is not None else None
            _install_and_evaluate(wheel, data, unit.path(output), staged_report, spans_key, gpu_id, install_dir)
            metrics = json.loads(unit.path(output).read_text(encoding="utf8"))
            metrics["wheel"] = {"file": wheel.name, "sha256": file_digest(wheel), MODEL_HASH_KEY: meta.get(MODEL_HASH_KEY)}
            write_json(metrics, unit.path(output))
    except (PackagingError, OutputsError) as err:
        msg.fail(f"evaluate-package: {err}", exits=1)
    msg.good(f"Metrics of the installed {wheel.name} -> {output}")


def _install_and_evaluate(
    wheel: Path, data: Path, output: Path, report: Optional[Path], spans_key: str, gpu_id: int, install_dir: Path
) -> None:
    install_dir = install_dir.resolve()
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--upgrade",
           "--target", str(install_dir), str(wheel.resolve())]
    if subprocess.run(pip).returncode != 0:
        raise PackagingError(f"installing {wheel} into {install_dir} failed (pip's message is above)")
    package = wheel.name.split("-")[0]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(install_dir), str(ROOT)]))
    cmd = [sys.executable, "-m", "scripts.evaluate", package, str(data.resolve()),
           "--output", str(output.resolve()), "--spans-key", spans_key, "--gpu-id", str(gpu_id),
           "--data-label", str(data)]  # the path as the project names it, not the absolute one
    if report is not None:
        cmd += ["--report", str(report.resolve())]
    msg.info(f"Evaluating the installed package {package} from {install_dir}")
    # Run from an empty folder: no project folder (training/, a package-named
    # directory) can stand in for the installed package.
    with tempfile.TemporaryDirectory() as cwd:
        code = subprocess.run(cmd, cwd=cwd, env=env).returncode
    if code != 0:
        raise PackagingError(f"evaluating the installed {package} failed (exit {code}; its message is above)")


if __name__ == "__main__":
    typer.run(main)
