"""Scoring and everything measured against the gold spans: `scoring` (the
overlap-aware scorer and the metrics layout), `evaluate` (predict and score a
pipeline), `threshold`, `speed`, `report` (the HTML report, from templates/),
the baselines (`bio_baseline`, `gliner_baseline`), `flatten` (the one
flattening and IOB codec) and `export_hf` (the Hugging Face dataset export).
Project tooling: never imported by a packaged pipeline. This file imports nothing.
"""
