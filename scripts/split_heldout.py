"""Cut a held-out annotated export (e.g. CRAFT's test split) by document into
unlabelled text for pre-annotation (text and meta only: spans, answers and
tokens removed) and test data (converted to test.spacy) for the uptraining
comparison; more unlabelled text of the field (`--more-text`) joins the
unlabelled half."""
from pathlib import Path
from typing import Optional

import typer
from wasabi import msg

from biomed_spancat.assist import AssistError
from biomed_spancat.ingest.craft import mirror_stands_in
from biomed_spancat.training.uptrain import split_heldout


def main(
    source: str = typer.Argument(..., help="Held-out export (JSONL, .jsonl.gz, prodigy.db, ...), never used in training"),
    output_dir: Path = typer.Argument(..., help="Gets unlabelled.jsonl, test.spacy and heldout.json"),
    share: float = typer.Option(0.5, "--share", help="Share of tasks (whole documents) that become unlabelled text"),
    seed: int = typer.Option(0, "--seed", help="Seed of the document split"),
    spans_key: str = typer.Option("sc", "--spans-key", help="Key in doc.spans of test.spacy"),
    format: Optional[str] = typer.Option(None, "--format", help="Force a reader format"),
    datasets: str = typer.Option("", "--datasets", help="Comma-separated datasets of a source holding several (craft_test)"),
    mirror: Optional[Path] = typer.Option(None, "--mirror", help="CRAFT's offline mirror, read in place of SOURCE when SOURCE is CRAFT (its corpus, or not fetched) and the datasets are CRAFT's"),
    more_text: str = typer.Option(
        "", "--more-text", help="Comma-separated sources of more unlabelled text (.txt files or folders, JSONL, any source convert reads)"
    ),
):
    names = [d.strip() for d in datasets.split(",") if d.strip()]
    if mirror_stands_in(mirror, source, names):
        msg.info(f"CRAFT from the offline mirror {mirror} in place of {source} (datasets {', '.join(names)})")
        source = str(mirror)
    more = [m.strip() for m in more_text.split(",") if m.strip()]
    try:
        report = split_heldout(
            source, output_dir, share=share, seed=seed, spans_key=spans_key, fmt=format, datasets=names, more_text=more
        )
    except AssistError as err:
        msg.fail("split-heldout failed", str(err), exits=1)
    docs, tasks, texts, test = report["documents"], report["tasks"], report["unlabelled_texts"], report["test_convert"]
    msg.good(
        f"{source}: {docs['unlabelled']} documents ({tasks['unlabelled']} tasks, {texts['written']} distinct texts) -> "
        f"{report['outputs']['unlabelled']}; {docs['test']} documents ({tasks['test']} tasks, {test['kept']} kept) -> "
        f"{report['outputs']['test']}"
    )
    if report["unreadable"]:
        msg.warn(
            f"{report['unreadable']} record(s) not read {report['unreadable_by_reason']}",
            "\n".join(report["unreadable_examples"]),
        )
    if texts["duplicates"] or texts["in_test"] or texts["no_text"]:
        msg.info(
            f"unlabelled half: {texts['duplicates']} repeated text(s) written once, {texts['in_test']} equal to "
            f"test texts left out, {texts['no_text']} without text"
        )
    if test["rejected"] or test["merged"] or test["duplicates"]:
        msg.info(
            f"test half: {test['read']} tasks = {test['kept']} kept + {test['rejected']} rejected "
            f"{test['rejected_by_reason']} + {test['merged']} merged + {test['duplicates']} duplicates"
        )
    extra = report["more_text"]
    if more:
        msg.good(
            f"more text: {extra['kept']} of {extra['read']} texts ({extra['words']} words) -> {report['outputs']['unlabelled']}"
        )
    if extra["in_test"]:
        msg.warn(f"more text: {extra['in_test']} text(s) equal to test texts left out")
    if extra["duplicates"]:
        msg.info(f"more text: {extra['duplicates']} text(s) already among the unlabelled texts left out")
    if extra["rejected"]:
        msg.warn(f"more text: {extra['rejected']} record(s) rejected {extra['rejected_by_reason']}", "\n".join(extra["examples"]))


if __name__ == "__main__":
    typer.run(main)
