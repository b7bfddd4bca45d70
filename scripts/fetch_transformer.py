"""Resolve vars.transformer into a local folder (Hub, local dir, or the offline stand-in)."""
from pathlib import Path

import typer
from wasabi import msg

from biomed_spancat.fetch import StandInError, fetch_transformer


def main(
    transformer: str = typer.Argument(..., help="Hub id or local model directory"),
    dest: Path = typer.Argument(..., help="Folder to write (e.g. assets/transformer)"),
    strict: str = typer.Option("false", help="true: fail instead of using the stand-in"),
):
    if strict.lower() not in ("true", "false"):
        msg.fail(f"--strict takes true or false, not '{strict}'", exits=1)
    try:
        source = fetch_transformer(transformer, dest, strict=strict.lower() == "true")
    except StandInError as err:
        msg.fail(f"fetch-transformer: {err}", exits=1)
    if source.stand_in:
        msg.divider("USING THE OFFLINE STAND-IN, NOT THE REQUESTED MODEL")
        msg.warn(source.note)
        msg.warn(f"Recorded in {dest / 'source.json'}; meta.json and the model card will say so.")
        msg.divider()
    else:
        msg.good(f"{source.used} ({source.origin}) -> {dest}")


if __name__ == "__main__":
    typer.run(main)
