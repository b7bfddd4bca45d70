"""Ingestion of span annotations (Prodigy exports and databases, and other
tools through registered readers) into spaCy DocBins, with every task
accounted for. Project tooling: never imported by a packaged pipeline.

Modules, in the order data flows through them: `tasks` (Task, Origin,
Ledger), `readers` (registry of formats), `validate` (checks and
alignment), `merge` (annotator policies), `split` (by document), `stats`,
`writer` (atomic DocBin writing), `convert` (the orchestration), `report`
(the printed summary). This file imports nothing, so that importing one
module does not pull in the rest.
"""
