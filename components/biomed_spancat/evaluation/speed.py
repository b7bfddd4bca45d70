"""The pipeline's speed figure: one definition for the report, the metrics and the card.

A words/s figure means nothing without what was timed. `measure_speed` times
`nlp.pipe` over raw texts (as an application runs the pipeline: its own
tokenizer included), after a warm-up, as the median of several passes, and
returns the figure together with everything that defines it: the texts, the
batch size, the number of processes, the transformer's precision and the
machine (CPU model and threads, or the GPU). `describe_speed` turns that
record into the one sentence the report, the model card and the docs print.

Project library code: never imported by a packaged pipeline.
"""

import os
import platform
import statistics
import time
from typing import Any, Dict, List, Optional, Sequence

from spacy.language import Language

__all__ = ["SPEED_SCHEMA", "measure_speed", "machine_info", "pipeline_precision", "config_precision", "describe_speed"]

SPEED_SCHEMA = "biomed.speed.v1"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_info(device: str = "cpu") -> Dict[str, Any]:
    """The machine a speed figure was measured on.

    device (str): "cpu", or "gpu" when the pipeline ran on CUDA.
    RETURNS (Dict[str, Any]): cpu (model name), cpu_count (logical CPUs the OS
        reports), threads (torch's intra-op threads, None without torch) and
        gpu (the CUDA device's name, None on the CPU).
    """
    threads: Optional[int] = None
    gpu: Optional[str] = None
    try:
        import torch

        threads = torch.get_num_threads()
        if device != "cpu" and torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(torch.cuda.current_device())
    except ImportError:  # pragma: no cover - torch comes with spacy-transformers
        pass
    return {"cpu": _cpu_model(), "cpu_count": os.cpu_count(), "threads": threads, "gpu": gpu}


def pipeline_precision(nlp: Language, device: str = "cpu") -> str:
    """The precision the pipeline's transformer computes in on this device.

    nlp (Language): The pipeline.
    device (str): "cpu" or "gpu".
    RETURNS (str): See `config_precision`.
    """
    return config_precision(nlp.config, device)


def config_precision(config: Dict[str, Any], device: str = "cpu") -> str:
    """The precision a pipeline config's transformer computes in on this device.

    config (Dict[str, Any]): A pipeline config (its `components` section is read).
    device (str): "cpu" or "gpu".
    RETURNS (str): "float32" or "bfloat16" on the CPU (the transformer's
        `cpu_precision`, "auto" resolved for this CPU), "mixed" or "float32"
        on a GPU (its `mixed_precision`); "float32" for a pipeline without a
        transformer.
    """
    for component in (config.get("components") or {}).values():
        model_cfg = component.get("model", {}) if isinstance(component, dict) else {}
        if not isinstance(model_cfg, dict) or not str(model_cfg.get("@architectures", "")).startswith(
            ("biomed.BiomedBERT", "spacy-transformers.TransformerModel")
        ):
            continue
        if device != "cpu":
            return "mixed" if model_cfg.get("mixed_precision") else "float32"
        setting = model_cfg.get("cpu_precision")
        if not setting:
            return "float32"
        from ..pipeline.architecture import resolve_cpu_precision

        return resolve_cpu_precision(str(setting))
    return "float32"


def measure_speed(
    nlp: Language,
    texts: Sequence[str],
    *,
    data: str = "",
    batch_size: int = 32,
    n_process: int = 1,
    repeats: int = 3,
    warmup: int = 8,
    device: str = "cpu",
) -> Dict[str, Any]:
    """Words per second of `nlp.pipe` over raw texts: the project's one speed figure.

    One warm-up pass over the first `warmup` texts (first-call set-up, such as
    allocating buffers, is not the model's speed), then `repeats` timed passes
    of `nlp.pipe(texts, batch_size=batch_size, n_process=n_process)` over all
    texts; the figure is the words (the pipeline's own tokens) over the median
    pass's seconds.

    nlp (Language): The pipeline, already on its device.
    texts (Sequence[str]): The texts (the evaluation data's).
    data (str): Where the texts came from, for the record.
    batch_size (int): Texts per batch.
    n_process (int): Processes `nlp.pipe` uses.
    repeats (int): Timed passes (at least 1); the median counts.
    warmup (int): Texts in the warm-up pass (0: none).
    device (str): "cpu" or "gpu", for the record and the precision.
    RETURNS (Dict[str, Any]): words_per_second, words, docs, seconds (median),
        runs (every pass's seconds), device, and `timed` (what was timed),
        `machine` (`machine_info`) and `schema`.
    RAISES (ValueError): For no texts, or repeats, batch_size or n_process below 1.
    """
    texts = list(texts)
    if not texts:
        raise ValueError("measure_speed: no texts to time")
    for name, value in (("repeats", repeats), ("batch_size", batch_size), ("n_process", n_process)):
        if value < 1:
            raise ValueError(f"measure_speed: {name} must be at least 1, got {value}")
    if warmup > 0:
        for _ in nlp.pipe(texts[:warmup], batch_size=batch_size):
            pass
    runs: List[float] = []
    words = 0
    for _ in range(repeats):
        start = time.perf_counter()
        n = 0
        for doc in nlp.pipe(texts, batch_size=batch_size, n_process=n_process):
            n += len(doc)
        runs.append(time.perf_counter() - start)
        words = n
    # Rounded once, and the rate computed from the value stored, so the record agrees with
    # itself even for passes of a few microseconds
    runs = [round(r, 9) for r in runs]
    seconds = statistics.median(runs)
    return {
        "schema": SPEED_SCHEMA,
        "words_per_second": round(words / seconds, 1) if seconds > 0 else None,
        "words": words,
        "docs": len(texts),
        "seconds": seconds,
        "runs": runs,
        "device": device,
        "timed": {
            "what": "nlp.pipe over the raw texts (tokenizer included)",
            "data": data,
            "batch_size": batch_size,
            "n_process": n_process,
            "precision": pipeline_precision(nlp, device),
            "warmup_docs": min(warmup, len(texts)) if warmup > 0 else 0,
            "repeats": repeats,
            "statistic": "median",
        },
        "machine": machine_info(device),
    }


def describe_speed(speed: Dict[str, Any]) -> str:
    """One sentence that states a speed record and how it was measured.

    speed (Dict[str, Any]): A `measure_speed` record (older records, without
        `timed`, get what they have: words/s and the device).
    RETURNS (str): E.g. "4,190 words/s: median of 3 passes of nlp.pipe over
        the 12 texts (8,000 words) of corpus/dev.spacy; batch size 32, 1
        process, bfloat16, after a warm-up of 8 texts; Intel Xeon, 2 threads
        (2 logical CPUs)".
    """
    wps = speed.get("words_per_second")
    figure = "—" if wps is None else f"{wps:,.0f} words/s"
    timed = speed.get("timed")
    if not timed:
        return f"{figure} on {speed.get('device', '?')} (one prediction pass, no warm-up)"
    machine = speed.get("machine") or {}
    data = f" of {timed['data']}" if timed.get("data") else ""
    procs = timed.get("n_process", 1)
    warm = f", after a warm-up of {timed['warmup_docs']} texts" if timed.get("warmup_docs") else ", no warm-up"
    if machine.get("gpu"):
        where = f"GPU {machine['gpu']}"
    else:
        threads = machine.get("threads")
        where = f"{machine.get('cpu', 'unknown CPU')}, {threads if threads is not None else '?'} threads"
        where += f" ({machine.get('cpu_count', '?')} logical CPUs)"
    return (
        f"{figure}: median of {timed.get('repeats', '?')} passes of nlp.pipe over the "
        f"{speed.get('docs', '?')} texts ({speed.get('words', 0):,} words){data}; batch size "
        f"{timed.get('batch_size', '?')}, {procs} process{'es' if procs != 1 else ''}, "
        f"{timed.get('precision', '?')}{warm}; {where}"
    )
