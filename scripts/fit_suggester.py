"""Learn the suggester's settings from the training spans and write them into
the training config (`weasel run fit-suggester`)."""
from pathlib import Path
from typing import Optional

import typer
from wasabi import msg

from biomed_spancat.outputs import OutputsError, verify_input
from biomed_spancat.training.suggester_fit import fit_suggester_config
from biomed_spancat.util import write_json


def main(
    train: Path = typer.Argument(..., exists=True, dir_okay=False, help="Training .spacy file"),
    base_config: Path = typer.Argument(..., exists=True, dir_okay=False, help="Config to start from"),
    output: Path = typer.Argument(..., dir_okay=False, help="Where to write the training config"),
    spans_key: str = typer.Option("sc", "--spans-key", help="Span group holding the gold spans"),
    target_recall: float = typer.Option(0.999, "--target-recall", help="Training recall the settings keep"),
    min_count: int = typer.Option(10, "--min-count", help="Occurrences a token needs before it may be blocked"),
    rule_risk: Optional[float] = typer.Option(
        None, "--rule-risk", help="Unseen spans each rule is expected to lose; default: calibrated on held-out docs"
    ),
    report: Optional[Path] = typer.Option(None, "--report", help="Also write the analysis and fit as JSON"),
    heldout_recall: float = typer.Option(
        0.99, "--heldout-recall", help="Recall of held-out documents' spans to keep (k-fold by document); 0: train only"
    ),
):
    """Fit biomed.span_suggester.v1 on TRAIN and write BASE_CONFIG with it to OUTPUT."""
    try:
        verify_input(train)  # whole, as convert published it
        record = fit_suggester_config(
            train, base_config, output, spans_key, target_recall,
            min_count=min_count, rule_risk=rule_risk, progress=msg.text,
            heldout_recall=heldout_recall or None,
        )
    except (ValueError, FileNotFoundError, OutputsError) as err:
        msg.fail(f"fit-suggester: {err}", exits=1)
    a = record["analysis"]
    msg.info(
        f"{a['spans']:,} gold spans in {a['docs']:,} docs ({a['tokens']:,} tokens): "
        f"length 99th percentile {a['length_p99']}, longest {a['length_max']}"
    )
    msg.table(
        [(label, v["spans"], v["length_p99"], v["length_max"]) for label, v in a["per_label"].items()],
        header=("label", "spans", "p99 length", "max length"),
        aligns=("l", "r", "r", "r"),
    )
    s = record["settings"]
    rules = sum(len(v) for k, v in s.items() if k != "max_length")
    msg.good(
        f"max_length {s['max_length']}, {rules} block rules (rule_risk {record['rule_risk']:g}): "
        f"train recall {record['train_recall']:.4%}, {record['train_per_token']:.3f} candidates/token "
        f"(ngram_range(1, {s['max_length']}): {record['ngram_per_token']:.3f})"
    )
    held = record.get("heldout")
    if held:
        tried = next((t for t in held["tried"] if t["strategy"] == held["chosen"]), None)
        line = f"settings '{held['chosen']}'"
        if tried and tried.get("recall") is not None:
            line += f": held-out recall {tried['recall']:.2%} ({held['folds']} folds of whole documents)"
        (msg.good if held.get("reached") else msg.warn)(line, held.get("note", ""))
    if report is not None:
        write_json(record, report)
        msg.good(f"Report -> {report}")
    msg.good(f"Training config -> {output}")


if __name__ == "__main__":
    typer.run(main)
