"""Print gold-span recall and candidates per token of a config's suggester on
a DocBin, next to spaCy's ngram_range(1, K) at the K that reaches the same
recall (`weasel run suggester-coverage`)."""
from pathlib import Path
from typing import Optional

import typer
from wasabi import msg

from biomed_spancat.training.suggester_coverage import coverage_from_config, format_coverage
from biomed_spancat.util import write_json


def main(
    config: Path = typer.Argument(..., exists=True, dir_okay=False, help="Training config or pipeline config.cfg"),
    data: Path = typer.Argument(..., exists=True, dir_okay=False, help=".spacy file with gold spans"),
    spans_key: str = typer.Option("sc", "--spans-key", help="Span group holding the gold spans"),
    output: Optional[Path] = typer.Option(None, "--output", help="Also write the figures as JSON"),
):
    """Measure the suggester of CONFIG on DATA."""
    try:
        report = coverage_from_config(config, data, spans_key)
    except (ValueError, FileNotFoundError) as err:
        msg.fail(f"suggester-coverage: {err}", exits=1)
    msg.info(f"{data}: {report['gold_spans']:,} gold spans, {report['tokens']:,} tokens, {report['docs']:,} docs")
    msg.table(
        format_coverage(report),
        header=("suggester", "gold recall", "candidates", "per token"),
        aligns=("l", "r", "r", "r"),
    )
    msg.text(
        f"Candidates: {report['candidate_ratio']:.1%} of ngram_range(1, {report['ngram_K']}), "
        f"the smallest n-gram range with at least the same recall."
    )
    msg.text(f"Gold span length: 99th percentile {report['length_p99']}, longest {report['length_max']}.")
    missed = {k: v for k, v in report["per_label_recall"].items() if v < 1.0}
    if missed:
        msg.text("Per-label recall below 100%: " + ", ".join(f"{k} {v:.2%}" for k, v in missed.items()))
    if output is not None:
        write_json(report, output)
        msg.good(f"Report -> {output}")


if __name__ == "__main__":
    typer.run(main)
