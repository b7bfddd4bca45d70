"""Print the README's comparison table (Markdown) from metrics JSON files:
`python -m scripts.results_table "this project=metrics/package.json"
"spaCy CNN spancat=metrics/baseline-cnn.json" "BIO token classification=metrics/baseline-bio.json"`;
with --output, also write it (under --caption, and the files it was made from) to a file."""

import json
from pathlib import Path
from typing import List, Optional

import typer
from wasabi import msg

from biomed_spancat.evaluation.report import results_table


def main(
    rows: List[str] = typer.Argument(..., help="NAME=PATH of a metrics JSON, one per table row"),
    output: Optional[Path] = typer.Option(None, "--output", help="Also write the table to this Markdown file"),
    caption: str = typer.Option("", "--caption", help="A line above the table in --output (what, and the command)"),
):
    named, paths = [], []
    for row in rows:
        name, sep, path = row.partition("=")
        if not sep or not name or not path:
            msg.fail(f"results-table: '{row}' is not NAME=PATH", exits=1)
        try:
            named.append((name, json.loads(open(path, encoding="utf8").read())))
        except (OSError, json.JSONDecodeError) as err:
            msg.fail(f"results-table: {path}: {err}", exits=1)
        paths.append(path)
    try:
        table = results_table(named)
    except (KeyError, TypeError) as err:
        msg.fail(f"results-table: not a metrics file written by evaluate ({err!r} missing)", exits=1)
    print(table, end="")
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        head = f"{caption}\n\n" if caption else ""
        sources = ", ".join(f"`{p}`" for p in paths)
        output.write_text(f"{head}{table}\nFrom {sources}.\n", encoding="utf8")
        msg.good(f"Wrote {output}")


if __name__ == "__main__":
    typer.run(main)
