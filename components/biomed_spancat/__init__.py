"""en_biomed_spancat: registered spaCy code and the project's library.

Modules shipped inside the packaged pipeline (imported by `spacy package
--code`, so each stands alone): `architecture`, `suggester`, `tokenizer`,
`sentences` (doc.sents), `display` (doc.ents from spans, displaCy colours).
Everything else (ingestion, evaluation, hub, ...) is project tooling that a
loaded pipeline never imports. Keep this file free of imports so that loading
one module does not pull in the rest.
"""
__version__ = "0.1.0"
