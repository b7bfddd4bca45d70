"""Evaluating a spancat pipeline: predict on the gold tokens, score with the
overlap-aware scorer (`scoring`), and put the metrics together with what was
evaluated, the suggester's ceiling and the speed (`metrics/*.json`).

Project library code: never imported by a packaged pipeline.
"""
import time
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence, Tuple

from spacy.language import Language
from spacy.tokens import Doc
from tqdm import tqdm

from .scoring import SpanEvaluation, assemble_metrics, prf, score_docs, suggester_recall
from .speed import measure_speed
from ..util import find_spancat

__all__ = [
    "make_pred_doc",
    "predict_docs",
    "score_raw_text",
    "model_info",
    "evaluate_pipeline",
]


def make_pred_doc(vocab: Any, gold: Doc) -> Doc:
    """An unannotated doc with exactly the gold doc's tokens.

    Evaluating on the gold tokens means a span is wrong only because the model
    got it wrong, not because the tokenizer cut the text differently.

    vocab (Vocab): The pipeline's vocab.
    gold (Doc): The gold doc.
    RETURNS (Doc): The new doc.
    """
    return Doc(vocab, words=[t.text for t in gold], spaces=[bool(t.whitespace_) for t in gold])


def predict_docs(
    nlp: Language, gold_docs: Sequence[Doc], *, batch_size: int = 32, progress: bool = True
) -> Tuple[List[Doc], float]:
    """Run the pipeline over the gold docs' tokens.

    nlp (Language): The pipeline.
    gold_docs (Sequence[Doc]): The gold docs.
    batch_size (int): Docs per batch.
    progress (bool): Show a progress bar.
    RETURNS (Tuple[List[Doc], float]): The predicted docs and the seconds spent.
    """
    inputs = [make_pred_doc(nlp.vocab, g) for g in gold_docs]
    start = time.perf_counter()
    preds = list(
        tqdm(
            nlp.pipe(inputs, batch_size=batch_size),
            total=len(inputs),
            desc="predicting",
            unit="doc",
            disable=not progress,
        )
    )
    return preds, time.perf_counter() - start


def score_raw_text(
    nlp: Language, gold_docs: Sequence[Doc], spans_key: str = "sc", *, batch_size: int = 32, progress: bool = True
) -> Dict[str, Any]:
    """Score the pipeline as an application runs it: on the raw text, cut by its own tokenizer.

    The main scores use the gold tokens, so that a span is wrong only because the
    model got it wrong. Here a gold span whose boundaries fall inside one of the
    tokenizer's tokens cannot be predicted at all: `tokenizer_ceiling` is the share
    of gold spans whose start and end characters fall on token boundaries, and
    spans are matched by (start_char, end_char, label), strictly.

    nlp (Language): The pipeline.
    gold_docs (Sequence[Doc]): The gold docs (their text is what the pipeline reads).
    spans_key (str): The span group.
    batch_size (int): Docs per batch.
    progress (bool): Show a progress bar.
    RETURNS (Dict[str, Any]): p/r/f and counts, per_label, tokenizer_ceiling, words_per_second.
    """
    start = time.perf_counter()
    preds = tqdm(
        nlp.pipe((g.text for g in gold_docs), batch_size=batch_size),
        total=len(gold_docs),
        desc="predicting raw text",
        unit="doc",
        disable=not progress,
    )
    tp: Counter = Counter()
    fp: Counter = Counter()
    fn: Counter = Counter()
    aligned = n_gold = words = 0
    for gold, pred in zip(gold_docs, preds):
        words += len(pred)
        starts = {t.idx for t in pred}
        ends = {t.idx + len(t) for t in pred}
        want = {(sp.start_char, sp.end_char, sp.label_) for sp in gold.spans.get(spans_key, [])}
        got = {(sp.start_char, sp.end_char, sp.label_) for sp in pred.spans.get(spans_key, [])}
        n_gold += len(want)
        aligned += sum(1 for a, b, _ in want if a in starts and b in ends)
        for key in got & want:
            tp[key[2]] += 1
        for key in got - want:
            fp[key[2]] += 1
        for key in want - got:
            fn[key[2]] += 1
    seconds = time.perf_counter() - start
    labels = sorted(set(tp) | set(fp) | set(fn))
    return {
        **prf(sum(tp.values()), sum(fp.values()), sum(fn.values())),
        "per_label": {lab: prf(tp[lab], fp[lab], fn[lab]) for lab in labels},
        "tokenizer_ceiling": aligned / n_gold if n_gold else None,
        "words": words,
        "seconds": seconds,
        "words_per_second": words / seconds if seconds else None,
    }


def _device_name() -> str:
    from thinc.api import get_current_ops

    return "gpu" if type(get_current_ops()).__name__ == "CupyOps" else "cpu"


def model_info(nlp: Language, model: str, spans_key: str) -> Dict[str, Any]:
    """What was evaluated: the pipeline and its span categorizer's settings."""
    name, spancat = find_spancat(nlp, spans_key)
    pipe_cfg = nlp.config["components"][name]
    threshold = spancat.cfg.get("threshold")
    if isinstance(threshold, float):
        # srsly's JSON reader can return 0.3 as 0.30000000000000004
        threshold = round(threshold, 6)
    return {
        "model": str(model),
        "name": f"{nlp.meta.get('lang', nlp.lang)}_{nlp.meta.get('name', 'pipeline')}",
        "version": nlp.meta.get("version"),
        "pipeline": list(nlp.pipe_names),
        "spans_key": spans_key,
        "component": name,
        "labels": list(spancat.labels),
        "threshold": threshold,
        "max_positive": spancat.cfg.get("max_positive"),
        "suggester": dict(pipe_cfg.get("suggester", {})),
    }


def evaluate_pipeline(
    nlp: Language,
    gold_docs: Sequence[Doc],
    spans_key: str = "sc",
    *,
    model: str = "",
    data: str = "",
    batch_size: int = 32,
    progress: bool = True,
    speed_repeats: int = 3,
    name: Optional[str] = None,
    version: Optional[str] = None,
) -> Tuple[SpanEvaluation, List[Doc]]:
    """Predict with a spancat pipeline and score it: the full metrics.

    The speed figure (`metrics["speed"]`) is `speed.measure_speed` over the
    gold docs' texts, timed apart from the scored pass.

    nlp (Language): The pipeline (its span categorizer writes `spans_key`).
    gold_docs (Sequence[Doc]): The gold docs.
    spans_key (str): The span group.
    model (str): What the pipeline was loaded from, for the record.
    data (str): Where the gold docs came from, for the record.
    batch_size (int): Docs per batch.
    progress (bool): Show progress bars.
    speed_repeats (int): Timed passes of the speed figure; 0 keeps only the
        scored pass's time (no warm-up, gold tokens).
    name (Optional[str]): The package name to record (e.g. "en_biomed_spancat")
        when the pipeline's meta does not carry it yet (before packaging).
    version (Optional[str]): Likewise, the package version.
    RETURNS (Tuple[SpanEvaluation, List[Doc]]): The evaluation (metrics in
        the METRICS_SCHEMA layout) and the predicted docs.
    RAISES (ValueError): No documents to evaluate.
    """
    if not gold_docs:
        raise ValueError(f"{data or 'the data'}: holds no documents: nothing to evaluate")
    info = model_info(nlp, model, spans_key)
    if name:
        info["name"] = name
    if version:
        info["version"] = version
    _, spancat = find_spancat(nlp, spans_key)
    preds, seconds = predict_docs(nlp, gold_docs, batch_size=batch_size, progress=progress)
    result = score_docs(zip(gold_docs, preds), spans_key, progress=progress)
    # The suggester sees the pipeline's own docs (same tokens, its vocab), as
    # at inference; the gold spans are read from the gold docs.
    suggester = suggester_recall(
        spancat.suggester,
        gold_docs,
        spans_key,
        ops=spancat.model.ops,
        input_docs=preds,
        progress=progress,
    )
    result.metrics = assemble_metrics(
        result.metrics,
        model=info,
        data=data,
        suggester=suggester,
        flattening=None,
        seconds=seconds,
        device=_device_name(),
        speed=(
            measure_speed(
                nlp,
                [g.text for g in gold_docs],
                data=data,
                batch_size=batch_size,
                repeats=speed_repeats,
                device=_device_name(),
            )
            if speed_repeats > 0 and gold_docs
            else None
        ),
    )
    return result, preds
