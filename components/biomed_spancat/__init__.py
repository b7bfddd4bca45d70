"""en_biomed_spancat: registered spaCy code and the project's library, laid
out by the route the data takes.

- `pipeline/`: the registered code shipped inside the packaged pipeline
  (copied by `spacy package --code`, so each module stands alone).
- `ingest/` -> `training/` -> `evaluation/` -> `publish/`: project tooling
  that a loaded pipeline never imports; `assist/` (pre-annotation) and
  `bench/` beside them; `util` (helpers shared by all), `outputs`, `steps`,
  `summary`, `fetch` at the top.

Keep this file free of imports so that loading one module does not pull in the rest.
"""
__version__ = "0.1.0"
