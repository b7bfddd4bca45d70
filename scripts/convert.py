"""Convert Prodigy annotations (export files, folders, prodigy.db or a
PostgreSQL URL) into train/dev DocBins, keeping overlaps and accounting for
every task: report.json, rejections.jsonl and a printed summary."""

from pathlib import Path
from typing import List, Optional

import typer
from wasabi import msg

from biomed_spancat.ingest.startup import spacy_cli_deferred, torch_hidden

# converting never runs a model nor spaCy's CLI: skip loading torch and spacy.cli (most of the start-up)
with torch_hidden(), spacy_cli_deferred():
    from biomed_spancat.ingest.convert import ROLE_PREFIXES, ConvertOptions, convert
    from biomed_spancat.ingest.pgsource import has_password
    from biomed_spancat.ingest.readers import ReadOptions
    from biomed_spancat.ingest.report import nothing_kept, print_summary
    from biomed_spancat.ingest.tasks import IngestError


def _progress(stream):
    from tqdm import tqdm

    return tqdm(stream, desc="tasks read", unit=" tasks", mininterval=1.0, leave=False)


def main(
    sources: List[str] = typer.Argument(
        ...,
        help="JSONL/.jsonl.gz files, folders, a .db path, a postgresql:// URL or env:NAME (a variable holding one); "
        "'eval:SOURCE' marks eval data, 'test:SOURCE' test data",
    ),
    output_dir: Path = typer.Argument(..., help="Where train.spacy, dev.spacy, report.json, rejections.jsonl go"),
    datasets: str = typer.Option(
        "", help="Comma-separated datasets to read from databases/folders ('eval:NAME' marks eval); '' reads all"
    ),
    eval: str = typer.Option(
        "", "--eval", help="Eval export path(s) or dataset names; '' splits --eval-split off the source"
    ),
    eval_split: float = typer.Option(0.2, help="Share of tasks (whole documents) split off as dev when --eval is ''"),
    test: str = typer.Option("", help="Test export path(s) or dataset names; writes test.spacy"),
    test_split: float = typer.Option(0.0, help="Share of tasks (whole documents) split off as test when --test is ''"),
    spans_key: str = typer.Option("sc", help="Key in doc.spans"),
    merge: str = typer.Option("majority", help="Several annotators: majority | latest | review"),
    align: str = typer.Option(
        "strict", help="Spans off token boundaries (tasks without tokens): strict | expand | contract"
    ),
    seed: int = typer.Option(0, help="Seed of the document split"),
    labels: str = typer.Option("", help="Comma-separated label set; spans with other labels are rejected"),
    rename: str = typer.Option("", help="Label renames, 'OLD=NEW,OLD2=NEW2' (applied before --labels)"),
    unknown_labels: str = typer.Option(
        "reject", help="A span with a label outside --labels: reject the task | drop the span"
    ),
    include_sessions: bool = typer.Option(False, help="Also read Prodigy's per-session datasets"),
    keep_binary: bool = typer.Option(
        False,
        help="Write binary answers (ner.teach, spans.teach) to binary.spacy: accepted spans under "
        "<key>_accepted and as entities (other tokens missing), rejected under <key>_rejected; never trained on",
    ),
    format: Optional[str] = typer.Option(
        None, "--format", help="Force a reader format (jsonl, jsonl_dir, sqlite, postgresql, ...)"
    ),
    db_timeout: float = typer.Option(5.0, help="Seconds to wait for a locked database or a connection"),
):
    for source in [*sources, *eval.split(","), *test.split(",")]:
        prefix, sep, rest = source.partition(":")
        if has_password(rest if sep and prefix in ROLE_PREFIXES else source):
            msg.warn(
                "a password is on the command line, where other users of this machine can read it: "
                "put it in PGPASSWORD or ~/.pgpass, or the whole URL in a variable and pass env:NAME"
            )
            break
    rename_map = {}
    for pair in filter(None, (p.strip() for p in rename.split(","))):
        if "=" not in pair:
            msg.fail(f"--rename expects OLD=NEW pairs, got {pair!r}", exits=1)
        old, new = (x.strip() for x in pair.split("=", 1))
        rename_map[old] = new
    options = ConvertOptions(
        datasets=[datasets] if datasets else [],
        eval=[eval] if eval else [],
        eval_split=eval_split,
        test=[test] if test else [],
        test_split=test_split,
        spans_key=spans_key,
        merge=merge,
        align=align,
        seed=seed,
        labels={x.strip() for x in labels.split(",") if x.strip()} or None,
        rename=rename_map,
        unknown_labels=unknown_labels,
        include_sessions=include_sessions,
        keep_binary=keep_binary,
        fmt=format,
        read=ReadOptions(db_timeout=db_timeout),
    )
    try:
        report = convert(sources, output_dir, options, progress=_progress)
    except IngestError as err:
        msg.fail("convert failed", str(err), exits=1)
    print_summary(report)
    empty = nothing_kept(report)
    if empty:  # never end with exit 0 when a source gave nothing
        msg.fail(
            "a source gave no training data",
            "\n".join(empty) + f"\nEvery rejected task is listed in {report['outputs']['rejections']}.",
            exits=1,
        )


if __name__ == "__main__":
    typer.run(main)
