"""Thin CLIs, one per project.yml command (`python -m scripts.NAME`).

No bytecode is written while they run: project.yml hashes folders of
components/ as deps, and a `__pycache__` appearing there would make weasel
re-run steps whose code did not change."""
import sys

sys.dont_write_bytecode = True
