"""Run the teacher pipeline over the student's training text (gold train docs
and unlabelled text) and store its probabilities for every suggested
(candidate, label) above a floor as soft labels (doc.spans["<key>_teacher"]
with attrs["scores"]): the distilled student's training corpus."""
from pathlib import Path
from typing import List, Optional

import typer
from wasabi import msg

from biomed_spancat.assist import AssistError
from biomed_spancat.training.gpu import GpuUnavailable
from biomed_spancat.util import DocBinError, PipelineError, write_json
from biomed_spancat.training.distill import DEFAULT_FLOOR, soft_label_corpus


def main(
    teacher: str = typer.Argument(..., help="The teacher pipeline (directory or installed package)"),
    output: Path = typer.Argument(..., dir_okay=False, help="The soft-labelled .spacy corpus"),
    gold: List[Path] = typer.Option([], "--gold", help="Gold .spacy file(s): gold spans stay, the teacher's are added"),
    unlabelled: List[str] = typer.Option([], "--unlabelled", help="Unlabelled text (JSONL with 'text', .txt, any source convert reads)"),
    floor: float = typer.Option(DEFAULT_FLOOR, "--floor", help="Teacher probabilities below this are not stored (count as 0)"),
    report: Optional[Path] = typer.Option(None, "--report", help="Counts, rejected records and settings as JSON"),
    spans_key: str = typer.Option("sc", "--spans-key", help="Key in doc.spans of the gold spans"),
    batch_size: int = typer.Option(32, "--batch-size", help="Docs per teacher batch"),
    gpu_id: int = typer.Option(-1, "--gpu-id", help="-1 for the CPU, else the CUDA device"),
    segment: str = typer.Option("none", "--segment", help="Unlabelled text as one doc per text (none) or per sentence (sentences)"),
    format: Optional[str] = typer.Option(None, "--format", help="Force a reader format for the unlabelled sources"),
    vectors: Optional[Path] = typer.Option(None, "--vectors", file_okay=False, help="Also write the student's static word vectors here: per word, the mean of the teacher's token vectors over the unlabelled text"),
    vectors_width: int = typer.Option(0, "--vectors-width", help="Their width: 0 keeps the teacher's, less projects them on their first principal components"),
):
    try:
        result = soft_label_corpus(
            teacher, output, gold=gold, unlabelled=unlabelled, spans_key=spans_key, floor=round(floor, 6),
            batch_size=batch_size, gpu_id=gpu_id, segment=segment, fmt=format, progress=True,
            vectors=vectors, vectors_width=vectors_width,
        )
    except (AssistError, PipelineError, DocBinError, GpuUnavailable) as err:
        msg.fail("teacher-labels failed", str(err), exits=1)
    for example in result["rejected_examples"][:5]:
        msg.warn(f"rejected {example['origin']}: {example['detail']}")
    if result["gold_labels_unknown_to_teacher"]:
        msg.warn(f"gold labels the teacher does not predict: {', '.join(result['gold_labels_unknown_to_teacher'])}")
    if report is not None:
        write_json(result, report)
    g, u = result["counts"]["gold"], result["counts"]["unlabelled"]
    msg.good(
        f"{output}: {g['docs']} gold docs ({g['teacher_spans']} teacher spans) + {u['docs']} unlabelled docs "
        f"({u['teacher_spans']} teacher spans, {u['rejected']} records rejected), floor {result['settings']['floor']}"
    )
    if result["vectors"]:
        v = result["vectors"]
        msg.good(f"{v['path']}: the teacher's vectors of {v['words']} words (width {v['width']}) from {v['tokens']} unlabelled tokens")


if __name__ == "__main__":
    typer.run(main)
