"""Choose suggester settings that hold on unseen text.

A suggester fitted to keep 99.5% of the training spans can keep much less of
unseen documents: a small corpus has few long spans (the length cap sits just
above them) and many words that were never inside a span there by chance
(the block rules learn them). So settings are judged by their recall on
held-out documents: the training documents are cut into k folds (whole
documents, never paragraphs of one article on both sides), the fit is
repeated on k - 1 folds and scored on the one left out. The first of a
ladder of ever safer settings whose held-out recall reaches the target
(99% of gold spans by default) is fitted on all the training documents:

    learned            block rules + the fitted length cap (the usual fit)
    learned, wider     block rules, length cap = longest training span + 2
    n-grams            no rules: spaCy's ngram_range(1, longest + 2)
    n-grams, widest    no rules: ngram_range(1, 2 x longest + 2)

Project tooling: the packaged pipeline never imports this module.
"""
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from spacy.tokens import Doc

from ..pipeline.suggester import build_biomed_suggester
from .suggester_coverage import ROLE_NAMES, coverage_report, index_corpus, ngram_coverage
from .suggester_fit import FitResult, fit_suggester_settings

__all__ = ["HELDOUT_RECALL", "LADDER", "document_folds", "plain_ngram_settings", "fit_heldout_settings"]

HELDOUT_RECALL = 0.99
WIDEN = 2
LADDER = ("learned", "learned, wider", "n-grams", "n-grams, widest")
Strategy = Callable[[Sequence[Doc]], Dict[str, Any]]


def document_folds(docs: Sequence[Doc], k: int = 5) -> List[Tuple[List[Doc], List[Doc]]]:
    """Cut docs into k folds of whole documents.

    Docs are grouped by `doc.user_data["doc_key"]` (set by the converter);
    documents are dealt to the folds in order of appearance, so the result is
    deterministic. Docs without a key count as documents of their own.

    docs (Sequence[Doc]): The training docs.
    k (int): The number of folds (fewer when there are fewer documents).
    RETURNS (List[Tuple[List[Doc], List[Doc]]]): Per fold, (fitting docs, held-out docs).
    RAISES (ValueError): Fewer than two documents.
    """
    keys = [doc.user_data.get("doc_key", f"#{i}") if doc.user_data else f"#{i}" for i, doc in enumerate(docs)]
    order = list(dict.fromkeys(keys))
    if len(order) < 2:
        raise ValueError(f"{len(docs)} docs in {len(order)} document(s): too few to hold any out")
    k = max(2, min(k, len(order)))
    fold_of = {key: i % k for i, key in enumerate(order)}
    return [
        ([d for d, key in zip(docs, keys) if fold_of[key] != f], [d for d, key in zip(docs, keys) if fold_of[key] == f])
        for f in range(k)
    ]


def plain_ngram_settings(max_length: int) -> Dict[str, Any]:
    """Settings of `biomed.span_suggester.v1` with no block rule: spaCy's ngram_range(1, max_length).

    max_length (int): The longest candidate, in tokens.
    RETURNS (Dict[str, Any]): The settings.
    """
    settings: Dict[str, Any] = {"max_length": max(1, int(max_length))}
    for role in ROLE_NAMES:
        settings[f"no_{role}_words"] = []
        settings[f"no_{role}_shapes"] = []
    return settings


def _longest(docs: Sequence[Doc], spans_key: str) -> int:
    return max((len(s) for d in docs for s in d.spans.get(spans_key, [])), default=1)


def _strategies(spans_key: str, target_recall: float, rule_risk: float, fit_kwargs: Dict[str, Any]) -> Dict[str, Strategy]:
    def learned(docs: Sequence[Doc]) -> Dict[str, Any]:
        return fit_suggester_settings(docs, spans_key, target_recall, rule_risk=rule_risk, **fit_kwargs).settings

    def wider(docs: Sequence[Doc]) -> Dict[str, Any]:
        length = _longest(docs, spans_key) + WIDEN
        return fit_suggester_settings(
            docs, spans_key, target_recall, rule_risk=rule_risk, max_lengths=[length], **fit_kwargs
        ).settings

    def ngrams(docs: Sequence[Doc]) -> Dict[str, Any]:
        return plain_ngram_settings(_longest(docs, spans_key) + WIDEN)

    def widest(docs: Sequence[Doc]) -> Dict[str, Any]:
        return plain_ngram_settings(2 * _longest(docs, spans_key) + WIDEN)

    return dict(zip(LADDER, (learned, wider, ngrams, widest)))


def _heldout(strategy: Strategy, folds: List[Tuple[List[Doc], List[Doc]]], spans_key: str) -> Dict[str, Any]:
    """Held-out recall of a strategy: fitted on each fold's rest, scored on the fold."""
    found = gold = candidates = tokens = 0
    per_fold = []
    for fit_docs, held_docs in folds:
        settings = strategy(fit_docs)
        report = coverage_report(build_biomed_suggester(**settings), held_docs, spans_key)
        found += report["found"]
        gold += report["gold_spans"]
        candidates += report["candidates"]
        tokens += report["tokens"]
        per_fold.append({"docs": len(held_docs), "gold_spans": report["gold_spans"], "recall": report["recall"],
                         "max_length": settings["max_length"]})
    return {
        "recall": found / gold if gold else 1.0,
        "found": found,
        "gold_spans": gold,
        "per_token": candidates / max(tokens, 1),
        "folds": per_fold,
    }


def fit_heldout_settings(
    docs: Sequence[Doc],
    spans_key: str = "sc",
    target_recall: float = 0.995,
    heldout_recall: float = HELDOUT_RECALL,
    folds: int = 5,
    min_count: int = 10,
    rule_risk: Optional[float] = None,
    progress: Optional[Callable[[str], None]] = None,
    **fit_kwargs: Any,
) -> Tuple[FitResult, Dict[str, Any]]:
    """Fit the suggester on `docs` with the first settings of the ladder that
    keep `heldout_recall` of the gold spans of held-out documents.

    docs (Sequence[Doc]): Training docs with gold spans.
    spans_key (str): The span group holding the gold spans.
    target_recall (float): The training recall the learned fit keeps.
    heldout_recall (float): The held-out recall the chosen settings must reach.
    folds (int): Folds of whole documents for the held-out estimate.
    min_count (int): Occurrences a key needs before it may be blocked.
    rule_risk (Optional[float]): Expected unseen loss per rule; None calibrates it.
    progress (Optional[Callable[[str], None]]): Called with progress lines.
    **fit_kwargs: Passed on to `fit_suggester_settings`.
    RETURNS (Tuple[FitResult, Dict[str, Any]]): The fit on all docs, and the
        held-out record: target, folds, each strategy tried with its held-out
        recall, the one chosen, and whether it reached the target.
    """
    if not 0.0 < heldout_recall <= 1.0:
        raise ValueError(f"heldout_recall must be in (0, 1], got {heldout_recall}")
    learned = fit_suggester_settings(
        docs, spans_key, target_recall, min_count=min_count, rule_risk=rule_risk, progress=progress, **fit_kwargs
    )
    record: Dict[str, Any] = {"target": heldout_recall, "tried": []}
    strategies = _strategies(spans_key, target_recall, learned.rule_risk, dict(fit_kwargs, min_count=min_count))
    try:
        cut = document_folds(docs, folds)
    except ValueError as err:
        # Nothing to hold out: no estimate, so no learned rule is trusted.
        record.update(folds=0, chosen="n-grams", reached=None, note=f"not estimated: {err}")
        if progress is not None:
            progress(f"held-out recall not estimated ({err}): plain n-grams")
        return _apply("n-grams", strategies, docs, spans_key, learned), record
    record["folds"] = len(cut)
    chosen = None
    for name in LADDER:
        try:
            result = _heldout(strategies[name], cut, spans_key)
        except ValueError as err:  # a fold without gold spans to fit on
            result = {"recall": None, "note": str(err)}
        record["tried"].append({"strategy": name, **result})
        if progress is not None and result["recall"] is not None:
            progress(
                f"held-out ({len(cut)} folds of whole documents) {name}: recall {result['recall']:.4f} "
                f"of {result['gold_spans']:,} spans, {result['per_token']:.3f} candidates/token"
            )
        if result["recall"] is not None and result["recall"] >= heldout_recall:
            chosen = name
            break
    record["reached"] = chosen is not None
    record["chosen"] = chosen or LADDER[-1]
    if chosen is None:
        record["note"] = (
            f"no setting kept {heldout_recall:.1%} of held-out spans: the widest n-gram range is used; "
            "annotate more documents or check the longest spans"
        )
    return _apply(record["chosen"], strategies, docs, spans_key, learned), record


def _apply(name: str, strategies: Dict[str, Strategy], docs: Sequence[Doc], spans_key: str, learned: FitResult) -> FitResult:
    """The chosen strategy fitted on all the docs, with its training figures."""
    if name == "learned":
        return learned
    settings = strategies[name](docs)
    corpus = index_corpus(docs, spans_key)
    length = settings["max_length"]
    ngram_recall, ngram_candidates = ngram_coverage(corpus, length)
    if name.startswith("n-grams"):
        train_recall, train_candidates = ngram_recall, ngram_candidates
    else:
        report = coverage_report(build_biomed_suggester(**settings), docs, spans_key)
        train_recall, train_candidates = report["recall"], report["candidates"]
    n_gold = int(corpus.gold_lengths.shape[0])
    lost_by_length = int((corpus.gold_lengths > length).sum())
    return FitResult(
        settings=settings,
        train_recall=train_recall,
        train_candidates=train_candidates,
        ngram_candidates=ngram_candidates,
        lost_by_length=lost_by_length,
        lost_by_rules=max(0, n_gold - lost_by_length - int(round(train_recall * n_gold))),
        rule_risk=learned.rule_risk,
        trials=learned.trials,
        calibration=learned.calibration,
    )
