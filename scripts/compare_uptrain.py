"""Compare the transformer pipeline, the CPU model trained on gold only,
the CPU model trained on gold + silver and (with --distilled) the CPU model
trained on the teacher's soft labels: spans F on the same dev (and test)
data and CPU words/sec, against the uptraining target; JSON + a markdown table."""
from pathlib import Path
from typing import Optional

import typer
from wasabi import msg

from biomed_spancat.assist import AssistError
from biomed_spancat.training.uptrain import compare_uptrain, format_markdown
from biomed_spancat.util import DocBinError, PipelineError, write_json


def main(
    transformer: str = typer.Argument(..., help="The transformer pipeline (directory or package)"),
    cpu_gold: str = typer.Argument(..., help="The CPU model trained on gold only"),
    cpu_uptrained: str = typer.Argument(..., help="The CPU model trained on gold + silver"),
    dev: Path = typer.Option(..., "--dev", exists=True, dir_okay=False, help="Gold dev .spacy"),
    test: str = typer.Option("", "--test", help="Gold test .spacy; '' scores dev only"),
    output: Path = typer.Option(Path("metrics/uptrain.json"), "--output", help="The comparison as JSON"),
    markdown: Path = typer.Option(Path("metrics/uptrain.md"), "--markdown", help="The table for the README"),
    preannotate_report: Optional[Path] = typer.Option(None, "--preannotate-report", help="preannotate's report (silver counts)"),
    spans_key: str = typer.Option("sc", "--spans-key", help="Key in doc.spans"),
    batch_size: int = typer.Option(64, "--batch-size", help="Docs per batch, the same for every model"),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Timed passes per model (median words/sec)"),
    distilled: str = typer.Option("", "--distilled", help="The CPU model trained on the teacher's soft labels (an extra row); '' leaves it out"),
):
    eval_sets = {"dev": dev}
    if test:
        if not Path(test).is_file():
            msg.fail(f"--test {test}: no such file", exits=1)
        eval_sets["test"] = Path(test)
    models = [
        ("transformer", "transformer pipeline", transformer),
        ("cpu_gold", "CPU CNN, gold only", cpu_gold),
        ("cpu_uptrained", "CPU CNN, gold + silver", cpu_uptrained),
    ]
    if distilled:
        models.append(("cpu_distilled", "CPU CNN, distilled (teacher's soft labels)", distilled))
    try:
        result = compare_uptrain(models, eval_sets, spans_key, batch_size, preannotate_report, repeats, log=msg.text)
    except (AssistError, PipelineError, DocBinError) as err:
        msg.fail("compare-uptrain failed", str(err), exits=1)
    write_json(result, output)
    text = format_markdown(result)
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text(text, encoding="utf8")
    print(text)
    (msg.good if result["target"]["met"] else msg.warn)(
        f"target {'met' if result['target']['met'] else 'not met'}; wrote {output} and {markdown}"
    )


if __name__ == "__main__":
    typer.run(main)
