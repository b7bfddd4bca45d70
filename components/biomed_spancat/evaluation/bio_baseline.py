"""Baseline 2, the flattening route: BIO token classification over the same
transformer, as AutoTrain or Prodigy's Hugging Face plugin train it.

Overlapping spans cannot be BIO tags, so the gold spans are flattened first:
longest span first, then any span sharing a token with one already kept is
dropped (what those tools do; the project's one codec, `flatten.flatten_longest`). A
`AutoModelForTokenClassification` is fine-tuned on the tags of each word's
first wordpiece with a plain torch loop (AdamW, linear warm-up and decay, as
the Trainer defaults), predictions are decoded back into spans, and those are
scored against the **unflattened** gold spans with the project's scorer, so
what flattening loses shows up in the numbers.

Long paragraphs are cut into windows of words (like the spancat pipeline's
strided transformer windows); at prediction each word takes its tag from the
window where it sits most centrally.

Project library code: never imported by a packaged pipeline.
"""

import json
import math
import random
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy
from spacy.tokens import Doc, Span
from tqdm import tqdm

from ..util import write_json
from .evaluate import make_pred_doc
from .flatten import flatten_longest, iob_to_spans, spans_to_iob
from .scoring import assemble_metrics, doc_spans, score_docs

__all__ = [
    "BIO_SCHEMA",
    "make_windows",
    "flattening_recall",
    "train_bio",
    "predict_bio",
    "evaluate_bio",
]

BIO_SCHEMA = "biomed.bio_baseline.v1"
BIO_FILE = "bio.json"


def make_windows(n_words: int, window: int, stride: int) -> List[Tuple[int, int]]:
    """Word windows [start, end) covering `n_words`, starting every `stride`
    words, the last one aligned to the end (as the pipeline's transformer).

    n_words (int): Length of the doc.
    window (int): Words per window.
    stride (int): Words between window starts (<= window).
    RETURNS (List[Tuple[int, int]]): The windows; [] for an empty doc.
    """
    if window < 1 or not 1 <= stride <= window:
        raise ValueError(f"need window >= 1 and 1 <= stride <= window (got window {window}, stride {stride})")
    if n_words == 0:
        return []
    if n_words <= window:
        return [(0, n_words)]
    starts = sorted(set(list(range(0, n_words - window, stride)) + [n_words - window]))
    return [(s, s + window) for s in starts]


def flattening_recall(gold_docs: Sequence[Doc], spans_key: str = "sc") -> Dict[str, Any]:
    """The ceiling flattening puts on recall: gold spans that survive it.

    gold_docs (Sequence[Doc]): Docs with gold spans.
    spans_key (str): The span group.
    RETURNS (Dict[str, Any]): recall (None with no gold spans), covered,
        gold_spans, dropped, per_label (label -> {recall, covered, gold_spans}).
    """
    covered = total = 0
    per_label: Dict[str, List[int]] = {}
    for doc in gold_docs:
        spans = list(doc_spans(doc, spans_key, with_scores=False))
        kept, _ = flatten_longest(spans)
        kept_set = set(kept)
        for span in spans:
            c = per_label.setdefault(span[2], [0, 0])
            c[0] += span in kept_set
            c[1] += 1
        covered += len(kept)
        total += len(spans)
    return {
        "recall": covered / total if total else None,
        "covered": covered,
        "gold_spans": total,
        "dropped": total - covered,
        "per_label": {
            label: {"recall": c / n if n else None, "covered": c, "gold_spans": n}
            for label, (c, n) in sorted(per_label.items())
        },
    }


def _encode(tokenizer: Any, words: List[List[str]], max_length: int) -> Tuple[Any, List[List[Optional[int]]]]:
    enc = tokenizer(
        words,
        is_split_into_words=True,
        truncation=True,
        max_length=max_length,
        padding=True,
        return_tensors="pt",
    )
    return enc, [enc.word_ids(i) for i in range(len(words))]


def _first_piece_labels(word_ids: List[Optional[int]], word_labels: List[int]) -> List[int]:
    """Each word's label on its first wordpiece, -100 (ignored) elsewhere."""
    out, previous = [], None
    for wid in word_ids:
        out.append(word_labels[wid] if wid is not None and wid != previous else -100)
        previous = wid
    return out


def _torch_device(gpu_id: int) -> str:
    return "cpu" if gpu_id < 0 else f"cuda:{gpu_id}"


def _forward_precision(cpu_precision: str, device: str) -> str:
    """The precision the forward pass runs at: "bfloat16" (CPU autocast) or "float32".
    A bad setting fails here; on a GPU it is always "float32" (no CPU autocast there)."""
    from ..pipeline.architecture import resolve_cpu_precision

    precision = resolve_cpu_precision(cpu_precision)
    return precision if device == "cpu" else "float32"


def train_bio(
    train_docs: Sequence[Doc],
    transformer: Path,
    output_dir: Path,
    spans_key: str = "sc",
    *,
    max_steps: int = 0,
    epochs: float = 3.0,
    batch_size: int = 8,
    learn_rate: float = 5e-5,
    warmup_ratio: float = 0.1,
    weight_decay: float = 0.0,
    window: int = 128,
    max_length: int = 512,
    seed: int = 0,
    gpu_id: int = -1,
    cpu_precision: str = "auto",
    progress: bool = True,
) -> Dict[str, Any]:
    """Fine-tune a token classifier on the flattened BIO tags and save it.

    train_docs (Sequence[Doc]): Training docs with gold spans.
    transformer (Path): The transformer folder (the same one spancat uses).
    output_dir (Path): Where the model, tokenizer and bio.json go.
    spans_key (str): The span group.
    max_steps (int): Optimizer steps (batches), cycling over shuffled
        windows; 0 derives them from `epochs`.
    epochs (float): Passes over the training windows when max_steps is 0
        (3, AutoTrain's default).
    batch_size (int): Windows per step.
    learn_rate (float): AdamW's peak learning rate.
    warmup_ratio (float): Share of steps with a linear warm-up.
    weight_decay (float): AdamW weight decay.
    window (int): Words per training window (non-overlapping).
    max_length (int): Wordpiece limit per window (longer windows are truncated).
    seed (int): Seed for torch and the shuffling.
    gpu_id (int): -1 for the CPU, else the CUDA device.
    cpu_precision (str): "float32", "bfloat16" or "auto", as the spancat
        pipeline's `biomed.BiomedBERT.v1`: bfloat16 autocast on CPUs that have it
        (what HF's Trainer does with `bf16=True`), so both routes get the same speed-up.
    progress (bool): Show a progress bar.
    RETURNS (Dict[str, Any]): The bio.json record: labels, tags, settings and
        a `training` section (training_seconds, steps, windows, device,
        flattening counts).
    """
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer, get_linear_schedule_with_warmup
    from transformers.utils import logging as hf_logging

    if max_steps < 0 or batch_size < 1 or (max_steps == 0 and epochs <= 0):
        raise ValueError(
            f"need batch_size >= 1 ({batch_size}) and max_steps > 0 ({max_steps}) or epochs > 0 ({epochs})"
        )
    precision = _forward_precision(cpu_precision, _torch_device(gpu_id))  # before loading: a bad setting fails fast
    start_time = time.perf_counter()
    labels = sorted({s[2] for d in train_docs for s in doc_spans(d, spans_key, with_scores=False)})
    if not labels:
        raise ValueError(f"no gold spans under doc.spans[{spans_key!r}] in the training docs")
    tags = ["O"] + [f"{p}-{lab}" for lab in labels for p in ("B", "I")]
    tag_ids = {t: i for i, t in enumerate(tags)}
    windows: List[Tuple[List[str], List[int]]] = []
    n_spans = n_dropped = 0
    for doc in train_docs:
        spans = list(doc_spans(doc, spans_key, with_scores=False))
        kept, dropped = flatten_longest(spans)
        doc_tags = spans_to_iob(len(doc), kept)
        n_spans += len(spans)
        n_dropped += len(dropped)
        words = [t.text for t in doc]
        for s, e in make_windows(len(doc), window, window):
            windows.append((words[s:e], [tag_ids[t] for t in doc_tags[s:e]]))
    if not windows:
        raise ValueError("the training docs have no tokens")
    if max_steps == 0:
        max_steps = max(1, math.ceil(epochs * len(windows) / batch_size))
    torch.manual_seed(seed)
    rng = random.Random(seed)
    device = _torch_device(gpu_id)
    tokenizer = AutoTokenizer.from_pretrained(str(transformer))
    hf_logging.set_verbosity_error()  # "classifier weights newly initialized" is expected here
    model = AutoModelForTokenClassification.from_pretrained(
        str(transformer),
        num_labels=len(tags),
        id2label=dict(enumerate(tags)),
        label2id=tag_ids,
    ).to(device)
    hf_logging.set_verbosity_warning()
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    params = [
        {
            "params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
            "weight_decay": weight_decay,
        },
        {
            "params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)],
            "weight_decay": 0.0,
        },
    ]
    optimizer = torch.optim.AdamW(params, lr=learn_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(warmup_ratio * max_steps), max_steps)
    model.train()
    order: List[int] = []
    losses: List[float] = []
    bar = tqdm(range(max_steps), desc="training BIO", unit="step", disable=not progress)
    for _ in bar:
        if len(order) < batch_size:
            fresh = list(range(len(windows)))
            rng.shuffle(fresh)
            order.extend(fresh)
        batch = [windows[i] for i in order[:batch_size]]
        del order[:batch_size]
        enc, word_ids = _encode(tokenizer, [w for w, _ in batch], max_length)
        labels_t = torch.tensor(
            [_first_piece_labels(ids, lab) for ids, (_, lab) in zip(word_ids, batch)], dtype=torch.long
        )
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            out = model(**{k: v.to(device) for k, v in enc.items()}, labels=labels_t.to(device))
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(float(out.loss.detach()))
        bar.set_postfix(loss=f"{numpy.mean(losses[-20:]):.3f}")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    record = {
        "schema": BIO_SCHEMA,
        "spans_key": spans_key,
        "labels": labels,
        "tags": tags,
        "window": window,
        "max_length": max_length,
        "transformer": str(transformer),
        "training": {
            "baseline": "bio-token-classification",
            "training_seconds": time.perf_counter() - start_time,
            "steps": max_steps,
            "epochs": max_steps * batch_size / len(windows),
            "batch_size": batch_size,
            "learn_rate": learn_rate,
            "windows": len(windows),
            "device": device,
            "cpu_precision": precision,
            "seed": seed,
            "final_loss": float(numpy.mean(losses[-20:])),
            "flattening": {"gold_spans": n_spans, "dropped": n_dropped},
        },
    }
    write_json(record, output_dir / BIO_FILE)
    return record


def _load(model_dir: Path) -> Dict[str, Any]:
    path = Path(model_dir) / BIO_FILE
    if not path.exists():
        raise ValueError(
            f"{model_dir}: not a BIO baseline model (no {BIO_FILE}; train it with scripts.train_bio)"
        )
    return json.loads(path.read_text(encoding="utf8"))


def predict_bio(
    model_dir: Path,
    gold_docs: Sequence[Doc],
    *,
    batch_size: int = 16,
    stride: Optional[int] = None,
    gpu_id: int = -1,
    cpu_precision: str = "auto",
    progress: bool = True,
) -> Tuple[List[Doc], float]:
    """Tag the gold docs' tokens and decode the tags into spans.

    Each predicted span gets a score, the mean probability of its words' tags,
    in `doc.spans[key].attrs["scores"]`, as spancat does.

    model_dir (Path): Output of `train_bio`.
    gold_docs (Sequence[Doc]): The docs to tag (their tokens are used).
    batch_size (int): Windows per forward pass.
    stride (Optional[int]): Words between windows (default: 3/4 of the window).
    gpu_id (int): -1 for the CPU, else the CUDA device.
    cpu_precision (str): "float32", "bfloat16" or "auto" (see `train_bio`).
    progress (bool): Show a progress bar.
    RETURNS (Tuple[List[Doc], float]): Predicted docs (gold tokens, predicted
        spans) and the seconds spent predicting.
    """
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    record = _load(model_dir)
    key, tags, window = record["spans_key"], record["tags"], record["window"]
    stride = stride or max(1, window * 3 // 4)
    device = _torch_device(gpu_id)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForTokenClassification.from_pretrained(str(model_dir)).to(device)
    model.eval()
    start_time = time.perf_counter()
    # Every window of every doc, with the doc it belongs to.
    jobs = [(d, s, e) for d, doc in enumerate(gold_docs) for s, e in make_windows(len(doc), window, stride)]
    best: List[List[Tuple[int, int, float]]] = [[(-1, 0, 0.0)] * len(doc) for doc in gold_docs]
    bar = tqdm(total=len(jobs), desc="tagging BIO", unit="window", disable=not progress)
    bfloat16 = _forward_precision(cpu_precision, device) == "bfloat16"
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
        for b in range(0, len(jobs), batch_size):
            batch = jobs[b : b + batch_size]
            words = [[t.text for t in gold_docs[d][s:e]] for d, s, e in batch]
            enc, word_ids = _encode(tokenizer, words, record["max_length"])
            probs = (
                torch.softmax(model(**{k: v.to(device) for k, v in enc.items()}).logits.float(), dim=-1).cpu().numpy()
            )
            for row, ((d, s, e), ids) in enumerate(zip(batch, word_ids)):
                seen = set()
                for piece, wid in enumerate(ids):
                    if wid is None or wid in seen:
                        continue
                    seen.add(wid)
                    i = s + wid
                    centrality = min(i - s, e - 1 - i)
                    if centrality > best[d][i][0]:
                        tag = int(probs[row, piece].argmax())
                        best[d][i] = (centrality, tag, float(probs[row, piece, tag]))
            bar.update(len(batch))
    bar.close()
    preds: List[Doc] = []
    for gold, words in zip(gold_docs, best):
        doc = make_pred_doc(gold.vocab, gold)
        doc_tags = [tags[t] for _, t, _ in words]  # unseen words (no wordpiece) stay "O"
        spans = iob_to_spans(doc_tags)
        doc.spans[key] = [Span(doc, s, e, label=lab) for s, e, lab in spans]
        doc.spans[key].attrs["scores"] = numpy.asarray(
            [float(numpy.mean([words[i][2] for i in range(s, e)])) for s, e, _ in spans], dtype="f"
        )
        preds.append(doc)
    return preds, time.perf_counter() - start_time


def evaluate_bio(
    model_dir: Path,
    gold_docs: Sequence[Doc],
    *,
    data: str = "",
    batch_size: int = 16,
    gpu_id: int = -1,
    cpu_precision: str = "auto",
    progress: bool = True,
) -> Tuple[Any, List[Doc]]:
    """Predict with the BIO baseline and score it against the unflattened gold
    spans: the same metrics document as the spancat pipelines, with
    `flattening` (the recall ceiling) instead of `suggester`.

    model_dir (Path): Output of `train_bio`.
    gold_docs (Sequence[Doc]): Gold docs (overlapping spans kept).
    data (str): Where the docs came from, for the record.
    batch_size (int): Windows per forward pass.
    gpu_id (int): -1 for the CPU, else the CUDA device.
    cpu_precision (str): "float32", "bfloat16" or "auto" (see `train_bio`).
    progress (bool): Show progress bars.
    RETURNS (Tuple[SpanEvaluation, List[Doc]]): The evaluation and the predicted docs.
    """
    record = _load(model_dir)
    key = record["spans_key"]
    precision = _forward_precision(cpu_precision, _torch_device(gpu_id))
    preds, seconds = predict_bio(
        model_dir, gold_docs, batch_size=batch_size, gpu_id=gpu_id, cpu_precision=precision, progress=progress
    )
    result = score_docs(zip(gold_docs, preds), key, progress=progress)
    model = {
        "model": str(model_dir),
        "name": "bio-token-classification",
        "version": None,
        "pipeline": ["transformer", "token-classification"],
        "spans_key": key,
        "component": None,
        "labels": record["labels"],
        "threshold": None,
        "max_positive": None,
        "suggester": None,
        "transformer": record["transformer"],
        "cpu_precision": precision,
    }
    result.metrics = assemble_metrics(
        result.metrics,
        model=model,
        data=data,
        suggester=None,
        flattening=flattening_recall(gold_docs, key),
        seconds=seconds,
        device=_torch_device(gpu_id).split(":")[0].replace("cuda", "gpu"),
        training=record.get("training"),
    )
    return result, preds
