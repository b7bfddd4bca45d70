"""One thin CLI per project.yml command, run as `python -m scripts.NAME`.

No bytecode is written while they run: project.yml hashes folders of
components/ as deps, and a `__pycache__` appearing there would make weasel
re-run steps whose code did not change.

Each run appends its time to metrics/steps.jsonl when it exits, for the
summary at the end of `weasel run all` (see `biomed_spancat.steps`; set
BIOMED_STEP_LOG=0 to turn it off).
"""
import sys

sys.dont_write_bytecode = True

from biomed_spancat.steps import install_step_timer  # noqa: E402

install_step_timer()
