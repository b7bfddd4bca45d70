"""Install the built wheel into a private folder and evaluate the installed package.

The artifact that ships is the wheel, not training/model-tuned: this installs
it with pip (no dependencies: they are the project's own) into
`packages/installed`, then runs `scripts.evaluate` on the package name with
that folder first on the path, from outside the project folder.
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

import typer
from wasabi import msg

ROOT = Path(__file__).resolve().parent.parent


def main(
    wheel: Path = typer.Argument(..., exists=True, dir_okay=False),
    data: Path = typer.Argument(..., exists=True, dir_okay=False),
    output: Path = typer.Option(..., help="Metrics JSON to write"),
    report: Optional[Path] = typer.Option(
        None, help="HTML report to write: the installed package's, so report, card and README share one speed figure"
    ),
    spans_key: str = typer.Option("sc"),
    gpu_id: int = typer.Option(-1),
    install_dir: Path = typer.Option(Path("packages/installed")),
):
    install_dir = install_dir.resolve()
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--upgrade",
         "--target", str(install_dir), str(wheel.resolve())],
        check=True,
    )
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
        subprocess.run(cmd, check=True, cwd=cwd, env=env)


if __name__ == "__main__":
    typer.run(main)
