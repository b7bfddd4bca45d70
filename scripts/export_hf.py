"""Export the corpus DocBins (or any source convert reads) to a Hugging Face
token classification dataset, with a loss report saying what flattening the
overlapping spans costs."""
from pathlib import Path

import typer
from wasabi import msg

from biomed_spancat.evaluation.export_hf import (
    FORMATS,
    SUBWORD_MODES,
    TAGS_COLUMN,
    TOKENS_COLUMN,
    export_from_sources,
    export_hf,
    format_loss_table,
)
from biomed_spancat.evaluation.flatten import POLICIES, ExportError
from biomed_spancat.util import DocBinError


def _pct(share) -> str:
    return "n/a" if share is None else f"{100 * share:.1f}%"


def main(
    train: str = typer.Argument(..., help="Train DocBin (corpus/train.spacy), or a source convert reads"),
    dev: str = typer.Argument(..., help="Dev DocBin (the 'validation' split), or an eval source; '' splits"),
    output_dir: Path = typer.Argument(..., help="Folder to write (dataset/, jsonl|parquet/, label_map.json, loss_report.json)"),
    spans_key: str = typer.Option("sc", help="SpanGroup holding the gold spans"),
    policy: str = typer.Option("longest", help=f"How ner_tags flattens overlaps: {' | '.join(POLICIES)}"),
    priority: str = typer.Option("", help="Comma-separated labels, highest first (policy 'priority')"),
    tokenizer: str = typer.Option("", help="Local HF tokenizer folder: adds input_ids/labels columns ('' = none)"),
    subwords: str = typer.Option("first", help=f"Wordpieces labelled: {' | '.join(SUBWORD_MODES)}"),
    max_length: int = typer.Option(512, help="Wordpiece truncation length (0 = none)"),
    file_format: str = typer.Option("jsonl", "--format", help=f"Per-split files: {' | '.join(FORMATS)}"),
    merge: str = typer.Option("majority", help="Sources only: several annotators, majority | latest | review"),
    align: str = typer.Option("strict", help="Sources only: spans off token boundaries, strict | expand | contract"),
    eval_split: float = typer.Option(0.2, help="Sources only: share split off as validation when dev is ''"),
    seed: int = typer.Option(0, help="Sources only: seed of that split"),
):
    priority_labels = [p.strip() for p in priority.split(",") if p.strip()]
    kwargs = dict(
        spans_key=spans_key,
        policy=policy,
        priority=priority_labels,
        tokenizer_path=Path(tokenizer) if tokenizer else None,
        subwords=subwords,
        max_length=max_length or None,
        file_format=file_format,
    )
    try:
        if train.endswith(".spacy") and dev.endswith(".spacy"):
            report = export_hf({"train": Path(train), "dev": Path(dev)}, output_dir, **kwargs)
        else:
            report = export_from_sources(
                [train], [dev] if dev else [], output_dir,
                merge=merge, align=align, eval_split=eval_split, seed=seed, **kwargs,
            )
            conv = report["convert"]
            msg.info(
                f"convert: read {conv['read']} = kept {conv['kept']} + rejected {conv['rejected']} + merged "
                f"{conv['merged']} + duplicates {conv['duplicates']} (report: {conv['report']})"
            )
    except (ExportError, DocBinError) as err:
        msg.fail(f"export-hf: {err}", exits=1)
    total = report["total"]
    for split, part in report["splits"].items():
        msg.info(f"{split}: {part['docs']} docs, {part['spans']} spans ({part['source']})")
    rows, header = format_loss_table(report)
    msg.table(rows, header=header, divider=True, aligns=("l", "r", "r", "r", "r", "r"))
    lost = total["ner_tags"]
    line = (
        f"policy '{policy}': {TAGS_COLUMN} drops {lost['dropped']} of {total['overlapping_spans']} "
        f"overlapping spans ({_pct(lost['share_overlapping_lost'])}; {_pct(lost['share_spans_lost'])} of all spans)"
    )
    (msg.warn if lost["dropped"] else msg.good)(line)
    cols = total["label_columns"]
    (msg.warn if cols["dropped"] else msg.good)(
        f"iob_<LABEL> columns drop {cols['dropped']} spans (same-label overlaps only); "
        "'spans' keeps every span (character offsets)"
    )
    if total["duplicates_collapsed"]:
        msg.info(f"{total['duplicates_collapsed']} repeated spans (same offsets and label) counted once")
    if "wordpieces" in report:
        wp = report["wordpieces"]
        for split, part in wp["splits"].items():
            msg.info(
                f"{split}: {part['boundary_inside_wordpiece']} of {part['spans']} spans have a boundary inside "
                f"a wordpiece of the raw text ({_pct(part['share'])}); {part['truncated_docs']} docs truncated "
                f"at {wp['max_length']} wordpieces ({part['truncated_words']} words lost)"
            )
    msg.good(
        f"Wrote {output_dir} (AutoTrain: tokens_column={TOKENS_COLUMN}, tags_column={TAGS_COLUMN}; "
        f"loss report {output_dir / 'loss_report.json'})"
    )


if __name__ == "__main__":
    typer.run(main)
