"""Print the README's comparison table (Markdown) from metrics JSON files:
`python -m scripts.results_table "this project=metrics/package.json"
"spaCy CNN spancat=metrics/baseline-cnn.json" "BIO token classification=metrics/baseline-bio.json"`."""

import json
from typing import List

import typer
from wasabi import msg

from biomed_spancat.report import results_table


def main(rows: List[str] = typer.Argument(..., help="NAME=PATH of a metrics JSON, one per table row")):
    named = []
    for row in rows:
        name, sep, path = row.partition("=")
        if not sep or not name or not path:
            msg.fail(f"results-table: '{row}' is not NAME=PATH", exits=1)
        try:
            named.append((name, json.loads(open(path, encoding="utf8").read())))
        except (OSError, json.JSONDecodeError) as err:
            msg.fail(f"results-table: {path}: {err}", exits=1)
    try:
        print(results_table(named), end="")
    except (KeyError, TypeError) as err:
        msg.fail(f"results-table: not a metrics file written by evaluate ({err!r} missing)", exits=1)


if __name__ == "__main__":
    typer.run(main)
