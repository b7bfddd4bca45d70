"""Shipping the pipeline: `packaging` (the wheel's meta, build and checks),
`vocab_prune`, and `hub` (the model card, the staged folder, the upload).
Project tooling: never imported by a packaged pipeline. This file imports nothing.
"""
