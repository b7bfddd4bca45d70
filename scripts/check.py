"""Which commands of project.yml can run now, and what to run first for the others:
every missing dependency with the command that makes it (or the variable that names
it). weasel itself can only say "Maybe you forgot to run the 'weasel assets' command"."""
import sys
from pathlib import Path
from typing import List

import typer
from wasabi import msg

from biomed_spancat.steps import check_commands


def main(
    commands: List[str] = typer.Argument(None, help="Commands to check (default: all of them)"),
    root: Path = typer.Option(Path("."), "--root", help="The project folder"),
):
    import srsly
    from weasel.util import load_project_config

    config = load_project_config(root)
    raw = srsly.read_yaml(root / "project.yml")
    try:
        result = check_commands(config, raw, root, commands or None)
    except ValueError as err:
        msg.fail(f"check: {err}", exits=1)
    blocked = [name for name, r in result.items() if r["missing"]]
    for name, r in result.items():
        if not r["missing"]:
            msg.good(f"{name}: ready")
            continue
        first = " && ".join(f"weasel run {c}" for c in r["run_first"])
        msg.warn(f"{name}: first {first}" if first else f"{name}: inputs missing")
        for path, remedy in r["missing"]:
            print(f"    missing {path}: {remedy}")
    if commands and blocked:
        sys.exit(1)  # through sys.exit, so the step timer knows the step failed


if __name__ == "__main__":
    typer.run(main)
