"""One thin CLI per project.yml command, run as `python -m scripts.NAME`.

Each run appends its time to metrics/steps.jsonl when it exits, for the
summary at the end of `weasel run all` (see `biomed_spancat.steps`; set
BIOMED_STEP_LOG=0 to turn it off).
"""
from biomed_spancat.steps import install_step_timer

install_step_timer()
