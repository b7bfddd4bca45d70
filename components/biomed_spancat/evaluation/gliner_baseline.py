"""Baseline 3, the GLiNER route: fine-tune GLiNER on the same spans, over the
same backbone, with its own training code, and score it with the project's
scorer.

GLiNER (span classification against label prompts) keeps overlaps: it is
trained on every gold span and predicts with `flat_ner=False` and
`multi_label=True`, so nested and crossing spans, and one extent with two
labels, can all come out. It reads words, not a spaCy tokenizer: each doc's
own tokens are its words (a token holding whitespace is written with `_`
instead, so words and tokens stay one to one), and long docs are cut into
windows of at most `window` words, as GLiNER truncates at `max_len`.

Training uses `GLiNER.train_model` (a transformers Trainer) with the settings
of GLiNER's own training config for a model built on a plain encoder: encoder
learning rate 1e-5, span/prompt layers 5e-5, linear decay with 10% warm-up,
batches of 8, spans up to 12 words. The threshold is tuned on dev like the
spancat pipelines' (`threshold.candidate_thresholds`, ties to the lowest).

Project library code: never imported by a packaged pipeline; needs
`pip install gliner accelerate`.
"""

import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from spacy.tokens import Doc, Span
from tqdm import tqdm

from ..util import write_json
from .evaluate import make_pred_doc
from .scoring import SpanKey, assemble_metrics, doc_spans, score_docs
from .threshold import candidate_thresholds, choose_threshold

__all__ = [
    "GLINER_SCHEMA",
    "doc_words",
    "windows",
    "docs_to_gliner",
    "entities_to_spans",
    "train_gliner",
    "predict_gliner",
    "tune_gliner_threshold",
    "evaluate_gliner",
]

GLINER_SCHEMA = "biomed.gliner.v1"
RECORD = "gliner.json"


def _require_gliner():
    try:
        import gliner  # noqa: F401
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "the GLiNER baseline needs the gliner package: pip install gliner==0.2.29 accelerate"
        ) from err
    return gliner


def doc_words(doc: Doc) -> List[str]:
    """The doc's tokens as GLiNER words, one to one: whitespace inside a token
    (or a whitespace-only token) becomes `_`, since GLiNER splits on whitespace.

    doc (Doc): The doc.
    RETURNS (List[str]): One word per token.
    """
    return ["_".join(t.text.split()) or "_" for t in doc]


def windows(n_words: int, window: int) -> List[Tuple[int, int]]:
    """Consecutive, non-overlapping windows of at most `window` words.

    n_words (int): Words in the doc.
    window (int): The most words in one window (>= 1).
    RETURNS (List[Tuple[int, int]]): (start, end) word offsets; [] for no words.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    return [(s, min(s + window, n_words)) for s in range(0, n_words, window)]


def docs_to_gliner(
    docs: Sequence[Doc], spans_key: str = "sc", window: int = 256
) -> Tuple[List[Dict[str, Any]], int]:
    """GLiNER training records from docs: `tokenized_text` and `ner` as
    [start, end (inclusive), label] word offsets, every gold span kept
    (overlaps included), one record per window.

    docs (Sequence[Doc]): Gold docs.
    spans_key (str): The span group.
    window (int): The most words in one record.
    RETURNS (Tuple[List[Dict[str, Any]], int]): The records, and the number of
        gold spans lost because they cross a window boundary.
    """
    records: List[Dict[str, Any]] = []
    lost = 0
    for doc in docs:
        words = doc_words(doc)
        spans = sorted(doc_spans(doc, spans_key))
        placed = set()
        for start, end in windows(len(words), window):
            ner = []
            for s, e, label in spans:
                if s >= start and e <= end:
                    ner.append([s - start, e - start - 1, label])
                    placed.add((s, e, label))
            records.append({"tokenized_text": words[start:end], "ner": ner})
        lost += len(spans) - len(placed)
    return records, lost


def entities_to_spans(words: Sequence[str], entities: Sequence[Dict[str, Any]], offset: int = 0) -> List[Tuple[SpanKey, float]]:
    """Map GLiNER's character-offset entities on `" ".join(words)` back to word
    (= token) offsets.

    words (Sequence[str]): The words the text was joined from.
    entities (Sequence[Dict[str, Any]]): GLiNER's output for that text
        (`start`, `end` character offsets, `label`, `score`).
    offset (int): Added to each word offset (the window's start in the doc).
    RETURNS (List[Tuple[SpanKey, float]]): ((start, end, label), score) per
        entity whose offsets fall on word boundaries (others are dropped).
    """
    starts: Dict[int, int] = {}
    ends: Dict[int, int] = {}
    pos = 0
    for i, word in enumerate(words):
        starts[pos] = i
        pos += len(word)
        ends[pos] = i + 1
        pos += 1
    out = []
    for ent in entities:
        s, e = starts.get(int(ent["start"])), ends.get(int(ent["end"]))
        if s is None or e is None or e <= s:
            continue
        out.append(((s + offset, e + offset, str(ent["label"])), float(ent["score"])))
    return out


def _torch_device(gpu_id: int) -> str:
    return f"cuda:{gpu_id}" if gpu_id >= 0 else "cpu"


def train_gliner(
    train_docs: Sequence[Doc],
    dev_docs: Sequence[Doc],
    backbone: Path,
    output_dir: Path,
    *,
    spans_key: str = "sc",
    max_steps: int = 0,
    epochs: float = 1.0,
    batch_size: int = 8,
    learn_rate: float = 1e-5,
    others_learn_rate: float = 5e-5,
    max_width: int = 12,
    window: int = 256,
    seed: int = 0,
    gpu_id: int = -1,
) -> Dict[str, Any]:
    """Fine-tune GLiNER over `backbone` on the gold spans; save it with a record.

    train_docs (Sequence[Doc]): Training docs (overlaps kept).
    dev_docs (Sequence[Doc]): Dev docs: the Trainer's eval set, and where the
        threshold is tuned afterwards (`tune_gliner_threshold`).
    backbone (Path): A local transformer folder (config, weights, tokenizer).
    output_dir (Path): Gets `model/` (GLiNER's save_pretrained) and gliner.json.
    spans_key (str): The span group.
    max_steps (int): Optimizer steps; 0 = `epochs` passes over the records.
    epochs (float): Passes when max_steps is 0.
    batch_size (int): Records per step.
    learn_rate (float): The encoder's learning rate.
    others_learn_rate (float): The span and prompt layers' learning rate.
    max_width (int): The longest span GLiNER scores, in words.
    window (int): The most words per record.
    seed (int): Random seed.
    gpu_id (int): -1 for the CPU, else the CUDA device.
    RETURNS (Dict[str, Any]): The record written to gliner.json.
    """
    _require_gliner()
    import torch
    from gliner import GLiNER, GLiNERConfig
    from transformers import set_seed

    set_seed(seed)
    train, lost = docs_to_gliner(train_docs, spans_key, window)
    dev, _ = docs_to_gliner(dev_docs, spans_key, window)
    labels = sorted({label for r in train for *_, label in r["ner"]})
    if not labels:
        raise ValueError(f"no gold spans under '{spans_key}' in the training docs: nothing to train on")
    n_train = len(train)
    steps = max_steps or max(1, int(round(epochs * n_train / batch_size)))
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    config = GLiNERConfig(model_name=str(backbone), max_width=max_width, max_len=window + 32)
    model = GLiNER.from_config(config, map_location=_torch_device(gpu_id))
    start = time.perf_counter()
    model.train_model(
        train_dataset=train,
        eval_dataset=dev,
        output_dir=str(output_dir / "checkpoints"),
        learning_rate=learn_rate,
        others_lr=others_learn_rate,
        others_weight_decay=0.01,
        weight_decay=0.01,
        lr_scheduler_type="linear",
        warmup_ratio=0.1,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        max_steps=steps,
        save_strategy="no",
        eval_strategy="no",
        logging_steps=max(1, steps // 20),
        use_cpu=gpu_id < 0,
        dataloader_num_workers=0,
        seed=seed,
        report_to="none",
    )
    seconds = time.perf_counter() - start
    model.save_pretrained(str(output_dir / "model"))
    words = sum(len(r["tokenized_text"]) for r in train)
    record = {
        "schema": GLINER_SCHEMA,
        "spans_key": spans_key,
        "labels": labels,
        "backbone": str(backbone),
        "window": window,
        "max_width": max_width,
        "threshold": None,
        "training": {
            "training_seconds": seconds,
            "steps": steps,
            "batch_size": batch_size,
            "records": n_train,
            "words_per_epoch": words,
            "learn_rate": learn_rate,
            "others_learn_rate": others_learn_rate,
            "gold_spans_lost_at_window_edges": lost,
            "hardware": torch.cuda.get_device_name(gpu_id) if gpu_id >= 0 else "CPU",
            "torch_threads": torch.get_num_threads(),
        },
    }
    write_json(record, output_dir / RECORD)
    return record


def load_record(model_dir: Path) -> Dict[str, Any]:
    """The gliner.json written by `train_gliner` (ValueError naming the file when absent)."""
    path = Path(model_dir) / RECORD
    if not path.exists():
        raise ValueError(f"{path}: not found; {model_dir} is not the output of train-gliner")
    return json.loads(path.read_text(encoding="utf8"))


def predict_gliner(
    model_dir: Path,
    gold_docs: Sequence[Doc],
    *,
    threshold: float,
    batch_size: int = 8,
    gpu_id: int = -1,
    progress: bool = True,
) -> Tuple[List[Doc], float]:
    """Predict spans with scores on the gold docs' tokens.

    model_dir (Path): Output of `train_gliner`.
    gold_docs (Sequence[Doc]): The docs to predict (their tokens are used).
    threshold (float): GLiNER's score threshold.
    batch_size (int): Windows per forward pass.
    gpu_id (int): -1 for the CPU, else the CUDA device.
    progress (bool): Show a progress bar.
    RETURNS (Tuple[List[Doc], float]): Docs with `doc.spans[key]` (scores in
        `attrs["scores"]`), and the seconds the predictions took.
    """
    _require_gliner()
    import torch
    from gliner import GLiNER

    record = load_record(model_dir)
    key, window, labels = record["spans_key"], record["window"], record["labels"]
    model = GLiNER.from_pretrained(str(Path(model_dir) / "model"), local_files_only=True, map_location=_torch_device(gpu_id))
    model.eval()
    jobs: List[Tuple[int, int, List[str]]] = []
    for i, doc in enumerate(gold_docs):
        words = doc_words(doc)
        jobs.extend((i, s, words[s:e]) for s, e in windows(len(words), window))
    found: List[List[Tuple[SpanKey, float]]] = [[] for _ in gold_docs]
    start = time.perf_counter()
    bar = tqdm(total=len(jobs), desc="predicting (GLiNER)", unit="window", disable=not progress)
    with torch.inference_mode():
        for b in range(0, len(jobs), batch_size):
            batch = jobs[b : b + batch_size]
            texts = [" ".join(words) for _, _, words in batch]
            results = model.inference(
                texts, labels, flat_ner=False, multi_label=True, threshold=threshold, batch_size=batch_size
            )
            for (i, offset, words), entities in zip(batch, results):
                found[i].extend(entities_to_spans(words, entities, offset))
            bar.update(len(batch))
    bar.close()
    seconds = time.perf_counter() - start
    preds = []
    for gold, spans in zip(gold_docs, found):
        doc = make_pred_doc(gold.vocab, gold)
        best: Dict[SpanKey, float] = {}
        for span, score in spans:
            best[span] = max(score, best.get(span, 0.0))
        ordered = sorted(best)
        doc.spans[key] = [Span(doc, s, e, label=label) for s, e, label in ordered]
        doc.spans[key].attrs["scores"] = [best[s] for s in ordered]
        preds.append(doc)
    return preds, seconds


def _above(preds: Sequence[Doc], key: str, threshold: float) -> List[Doc]:
    out = []
    for pred in preds:
        doc = make_pred_doc(pred.vocab, pred)
        group = pred.spans[key]
        scores = group.attrs.get("scores", [])
        kept = [(span, s) for span, s in zip(group, scores) if s >= threshold]
        doc.spans[key] = [Span(doc, span.start, span.end, label=span.label_) for span, _ in kept]
        doc.spans[key].attrs["scores"] = [s for _, s in kept]
        out.append(doc)
    return out


def tune_gliner_threshold(
    model_dir: Path, dev_docs: Sequence[Doc], *, batch_size: int = 8, gpu_id: int = -1, progress: bool = True
) -> Dict[str, Any]:
    """Choose GLiNER's threshold on dev: one prediction pass at the lowest
    candidate, then each candidate re-applied to its scores; the best spans F
    wins (ties to the lowest threshold). Written into gliner.json.

    RETURNS (Dict[str, Any]): {"threshold", "best", "trials"}.
    """
    record = load_record(model_dir)
    key = record["spans_key"]
    thresholds = candidate_thresholds()
    preds, _ = predict_gliner(
        model_dir, dev_docs, threshold=min(thresholds), batch_size=batch_size, gpu_id=gpu_id, progress=progress
    )
    trials = []
    for t in thresholds:
        s = score_docs(zip(dev_docs, _above(preds, key, t)), key).metrics["spans"]
        trials.append({"threshold": t, **{k: s[k] for k in ("p", "r", "f", "tp", "fp", "fn")}})
    best = choose_threshold(trials)
    record["threshold"] = best["threshold"]
    write_json(record, Path(model_dir) / RECORD)
    return {"threshold": best["threshold"], "best": best, "trials": trials}


def evaluate_gliner(
    model_dir: Path,
    gold_docs: Sequence[Doc],
    *,
    data: str = "",
    threshold: Optional[float] = None,
    batch_size: int = 8,
    gpu_id: int = -1,
    progress: bool = True,
) -> Tuple[Any, List[Doc]]:
    """Predict with the GLiNER baseline at its tuned threshold and score it:
    the same metrics document as the spancat pipelines (no suggester; GLiNER
    scores every span up to `max_width` words, and `suggester` records the
    share of gold spans within that width).

    RETURNS (Tuple[SpanEvaluation, List[Doc]]): The evaluation and the predicted docs.
    """
    record = load_record(model_dir)
    key = record["spans_key"]
    t = threshold if threshold is not None else record.get("threshold")
    if t is None:
        raise ValueError(f"{Path(model_dir) / RECORD}: no tuned threshold; run the tuning step or pass --threshold")
    preds, seconds = predict_gliner(model_dir, gold_docs, threshold=t, batch_size=batch_size, gpu_id=gpu_id, progress=progress)
    result = score_docs(zip(gold_docs, preds), key, progress=progress)
    gold = [span for doc in gold_docs for span in doc_spans(doc, key)]
    within = sum(1 for s, e, _ in gold if e - s <= record["max_width"])
    model = {
        "model": str(model_dir),
        "name": "gliner",
        "version": None,
        "pipeline": ["gliner"],
        "spans_key": key,
        "component": None,
        "labels": record["labels"],
        "threshold": t,
        "max_positive": None,
        "suggester": {"max_width": record["max_width"]},
        "transformer": record["backbone"],
    }
    result.metrics = assemble_metrics(
        result.metrics,
        model=model,
        data=data,
        suggester={"recall": within / len(gold) if gold else None, "covered": within, "gold_spans": len(gold)},
        flattening=None,
        seconds=seconds,
        device="gpu" if gpu_id >= 0 else "cpu",
        training=record.get("training"),
    )
    return result, preds
