"""Cut whole CRAFT articles out of the shared Prodigy exports into assets/.

The shipped sample is what `weasel run all` trains on offline; it is cut by
article (never by paragraph) so that train and dev share no document.
"""
import json
from pathlib import Path
from typing import List

import typer
from wasabi import msg


def cut(source: Path, out: Path, doc_ids: List[str]) -> int:
    """Copy the tasks of the given articles, in file order; return how many."""
    wanted, n = set(doc_ids), 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with source.open(encoding="utf8") as src, out.open("w", encoding="utf8") as dst:
        for line in src:
            if json.loads(line)["meta"]["doc_id"] in wanted:
                dst.write(line)
                n += 1
    return n


def main(
    craft_dir: Path = typer.Argument(..., exists=True, file_okay=False),
    out_dir: Path = typer.Argument(...),
    train_ids: str = typer.Option(..., help="Comma-separated PubMed ids from craft_train"),
    dev_ids: str = typer.Option(..., help="Comma-separated PubMed ids from craft_dev"),
):
    for split, ids in (("train", train_ids), ("dev", dev_ids)):
        n = cut(craft_dir / f"craft_{split}.jsonl", out_dir / f"{split}.jsonl", ids.split(","))
        msg.good(f"{split}: {n} tasks from {len(ids.split(','))} articles -> {out_dir / f'{split}.jsonl'}")


if __name__ == "__main__":
    typer.run(main)
