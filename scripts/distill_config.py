"""Write the distilled student's training config: the student config with the
teacher's tokenizer and fitted suggester, so the student sees the tokens and
candidates the teacher scored."""
from pathlib import Path

import typer
from wasabi import msg

from biomed_spancat.assist import AssistError
from biomed_spancat.training.gpu import GpuUnavailable
from biomed_spancat.util import DocBinError, PipelineError
from biomed_spancat.training.distill import write_student_config


def main(
    teacher: str = typer.Argument(..., help="The teacher pipeline (directory or installed package)"),
    base_config: Path = typer.Argument(..., exists=True, dir_okay=False, help="The student's config (configs/distill_cnn.cfg)"),
    output: Path = typer.Argument(..., dir_okay=False, help="Where to write the student's training config"),
    component: str = typer.Option("spancat", "--component", help="The student's span categorizer in the config"),
):
    try:
        written = write_student_config(teacher, base_config, output, component)
    except (AssistError, PipelineError, DocBinError, GpuUnavailable) as err:
        msg.fail("distill-config failed", str(err), exits=1)
    msg.good(
        f"{output}: the teacher's suggester ({written['suggester'].get('@misc')}) and tokenizer "
        f"({written['tokenizer'].get('@tokenizers')}) from {teacher}"
    )


if __name__ == "__main__":
    typer.run(main)
