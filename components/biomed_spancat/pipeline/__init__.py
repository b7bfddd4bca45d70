"""The registered code that ships inside the packaged pipeline (`package`
copies these files into the wheel, see `publish.packaging.SHIPPED_MODULES`):
`architecture` (biomed.BiomedBERT.v1), `span_reducer` (biomed.mean_max_reducer.v1, .v2),
`cnn_tok2vec` (biomed.Tok2Vec.v1, for CNN pipelines), `span_scorer` (biomed.LinearLogistic.v1),
`token_features` (biomed.TransformerWithFeatures.v1), `suggester` (biomed.span_suggester.v1),
`tokenizer` (biomed.Tokenizer.v1), `sentences` (doc.sents), `display`
(doc.ents from spans, displaCy colours). Each module stands alone: it imports
nothing from the project, only spaCy, thinc, spacy-transformers and torch (but
`span_reducer`, which asks its sibling `architecture`, shipped beside it, what
`cpu_precision = "auto"` means on this CPU, and `cnn_tok2vec`, which uses
`span_reducer`'s torch Maxout).
This file imports nothing, so that loading one module does not pull in the rest.
"""
