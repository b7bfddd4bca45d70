"""Hand-made gold and predicted docs for the report and summary tests: one
doc with one error, one with many (boundary, spurious, missed), scored."""

import numpy
import spacy
from spacy.tokens import Doc, Span

from biomed_spancat.evaluation.scoring import assemble_metrics, score_docs

NLP = spacy.blank("en")
WORDS = "BMP2 and BMP4 regulate limb patterning and skeletogenesis in the mouse embryo .".split()


def make_doc(spans, scores=None):
    doc = Doc(NLP.vocab, words=WORDS)
    doc.spans["sc"] = [Span(doc, s, e, label=lab) for s, e, lab in spans]
    if scores is not None:
        doc.spans["sc"].attrs["scores"] = numpy.asarray(scores, dtype="f")
    return doc


def make_case(with_scores=True):
    """Doc 0: one error; doc 1: many (boundary, spurious, missed)."""
    gold = [
        make_doc([(0, 1, "PR"), (2, 3, "PR")]),
        make_doc(
            [
                (0, 1, "PR"),
                (2, 3, "PR"),
                (4, 5, "UBERON"),
                (4, 6, "GO_BP"),
                (10, 11, "NCBITaxon"),
                (10, 12, "UBERON"),
            ]
        ),
    ]
    pred_spans = [
        [(0, 1, "PR")],
        [(0, 1, "PR"), (2, 4, "PR"), (4, 6, "GO_BP"), (7, 8, "CHEBI"), (10, 11, "NCBITaxon")],
    ]
    scores = [[0.9], [0.9, 0.6, 0.8, 0.55, 0.95]]
    pred = [make_doc(s, sc if with_scores else None) for s, sc in zip(pred_spans, scores)]
    result = score_docs(zip(gold, pred))
    result.metrics = assemble_metrics(
        result.metrics,
        model={
            "model": "training/model-tuned",
            "name": "en_biomed_spancat",
            "version": "0.1.0",
            "threshold": 0.5,
        },
        data="corpus/dev.spacy",
        suggester={
            "recall": 0.9,
            "covered": 9,
            "gold_spans": 10,
            "candidates": 30,
            "candidates_per_token": 2.5,
            "per_label": {},
        },
        flattening=None,
        seconds=0.5,
        device="cpu",
    )
    return result, gold, pred
