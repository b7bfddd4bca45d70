"""Inference benchmark: ours (bfloat16 where the CPU has it, and
float32) against every peer (peers.py) and stock spacy-transformers spancat on
the same texts in one process, alternating within each round; the best peer
sets the ratio. Also where our time goes (per component, then cProfile) and
how close our forward pass is to the machine's bfloat16 peak (flops.py).
"""

import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence

from wasabi import msg

from . import flops as _flops
from . import peers as _peers
from .util import BenchSettings, _median, _precision_of, init_untrained, stock_spancat_config

__all__ = [
    "bench_inference",
    "profile_top",
    "profile_components",
    "bench_backbone",
    "OUR_SYSTEMS",
]

# Rows that are ours; every other row is a peer
OUR_SYSTEMS = ("ours", "ours_float32")


def bench_inference(
    systems: Dict[str, Callable[[List[str]], Any]], texts: List[str], n_words: int, repeats: int
) -> Dict[str, Any]:
    """Time each system over the same texts, alternately: one warm-up pass
    each, then `repeats` rounds, the order rotating every round.

    systems (Dict[str, Callable]): Name -> function running over a list of texts.
    texts (List[str]): The texts.
    n_words (int): spaCy tokens in the texts (the words of words/s).
    RETURNS (Dict[str, Any]): Per system: runs (seconds), median seconds, words/s, docs/s.
    """
    names = list(systems)
    for name in names:
        systems[name](texts[: max(2, len(texts) // 4)])
    runs: Dict[str, List[float]] = {n: [] for n in names}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            start = time.perf_counter()
            systems[name](texts)
            runs[name].append(time.perf_counter() - start)
        msg.text(f"inference round {r + 1}/{repeats}: " + ", ".join(f"{n} {runs[n][-1]:.2f} s" for n in order))
    out = {}
    for name in names:
        secs = _median(runs[name])
        out[name] = {
            "runs_seconds": runs[name],
            "seconds": secs,
            "words_per_s": n_words / secs,
            "docs_per_s": len(texts) / secs,
        }
    return out


def profile_top(fn: Callable[[List[str]], Any], texts: List[str], n: int = 10) -> List[Dict[str, Any]]:
    """cProfile one pass of `fn` over `texts`: the functions with the most own time.

    fn (Callable): The system to profile.
    texts (List[str]): Its input.
    n (int): How many functions to keep.
    RETURNS (List[Dict[str, Any]]): function, own seconds, cumulative seconds, calls, share of the pass.
    """
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    fn(texts)
    prof.disable()
    stats = pstats.Stats(prof)
    total = max(stats.total_tt, 1e-12)
    rows = []
    for (file, line, func), (_, ncalls, tottime, cumtime, _) in stats.stats.items():
        rows.append(
            {
                # Built-ins have no file ("~"): their name says enough
                "function": func if file == "~" else f"{Path(file).parent.name}/{Path(file).name}:{line}({func})",
                "own_s": tottime,
                "cumulative_s": cumtime,
                "calls": ncalls,
                "share": tottime / total,
            }
        )
    rows.sort(key=lambda r: -r["own_s"])
    return rows[:n]




def profile_components(nlp: Any, texts: List[str]) -> List[Dict[str, Any]]:
    """Seconds of each step of one pass of `nlp` over `texts`: the tokenizer,
    then each pipeline component over all docs (batch size as nlp.pipe uses).

    nlp (Language): The pipeline.
    texts (List[str]): Its input.
    RETURNS (List[Dict[str, Any]]): component, seconds, share of the pass.
    """
    rows = []
    start = time.perf_counter()
    docs = [nlp.make_doc(t) for t in texts]
    rows.append({"component": "tokenizer", "seconds": time.perf_counter() - start})
    for name, proc in nlp.pipeline:
        start = time.perf_counter()
        docs = list(proc.pipe(docs, batch_size=nlp.batch_size)) if hasattr(proc, "pipe") else [proc(d) for d in docs]
        rows.append({"component": name, "seconds": time.perf_counter() - start})
    total = max(sum(r["seconds"] for r in rows), 1e-12)
    for r in rows:
        r["share"] = r["seconds"] / total
    return rows


def _window_settings(nlp: Any) -> Dict[str, int]:
    model = nlp.config["components"]["transformer"]["model"]
    spans = model.get("get_spans") or {}
    return {
        "window": int(model.get("window") or spans.get("window") or 128),
        "stride": int(model.get("stride") or spans.get("stride") or 96),
        "max_wordpieces": int(model.get("max_wordpieces") or 512),
    }


def _limit(nlp: Any, backbone: Path, texts: List[str], seconds: float, transformer_seconds: float, settings: BenchSettings) -> Dict[str, Any]:
    """Our forward pass's FLOP/s against the derived and the measured bfloat16 peak."""
    shape = _flops.encoder_shape(backbone)
    win = _window_settings(nlp)
    lengths = _flops.window_lengths([nlp.make_doc(t) for t in texts], backbone, win["window"], win["stride"], win["max_wordpieces"])
    total = _flops.forward_flops(lengths, shape)
    peak = _flops.cpu_bf16_peak(_flops.threads())
    practical = _flops.matmul_peak(settings.matmul_size)
    out = {
        "formula": _flops.FLOPS_FORMULA,
        "shape": shape,
        **win,
        "windows": len(lengths),
        "wordpieces": sum(lengths),
        "flops": total,
        "pipeline_seconds": seconds,
        "transformer_seconds": transformer_seconds,
        "flops_per_s_pipeline": total / seconds,
        "flops_per_s_transformer": total / max(transformer_seconds, 1e-12),
        "peak": peak,
        "matmul": practical,
    }
    for key in ("pipeline", "transformer"):
        rate = out[f"flops_per_s_{key}"]
        out[f"share_of_peak_{key}"] = rate / peak["peak_flops"] if peak["peak_flops"] else None
        out[f"share_of_matmul_{key}"] = rate / practical["bfloat16_flops"]
    return out


def _onnx(backbone: Path, n_labels: int, work: Path, size: str) -> Dict[str, Path]:
    return _peers.export_onnx(backbone, n_labels, work / "onnx" / size)


def bench_backbone(
    size: str,
    backbone: Path,
    texts: List[str],
    n_words: int,
    ours: Any,
    ours32: Any,
    ours_name: str,
    train_docs: Sequence[Any],
    labels: Sequence[str],
    settings: BenchSettings,
    work: Path,
) -> Dict[str, Any]:
    """Time ours against every peer on one backbone and say where our time goes.

    size (str): The backbone's name in the result ("standin", "base").
    backbone (Path): The transformer folder.
    texts (List[str]): The texts every system runs over.
    n_words (int): spaCy tokens in the texts.
    ours (Language): Our pipeline at its CPU precision; ours32 the same in float32.
    ours_name (str): What ours is (a path, or an untrained config).
    train_docs (Sequence[Doc]): Docs that initialise stock spancat (labels only).
    labels (Sequence[str]): The labels (heads' sizes, GLiNER's prompts).
    settings (BenchSettings): Sizes.
    work (Path): Where the ONNX exports go.
    RETURNS (Dict[str, Any]): docs, words, systems (rows), ratios, best peer, profile, limit.
    """
    n_labels = max(len(labels), 1)
    threads = _flops.threads()
    stock = init_untrained(stock_spancat_config(backbone, (1, 2, 3)), train_docs)
    b = settings.hf_batch_size
    builders: Dict[str, Callable[[], Callable[[List[str]], Any]]] = {
        "hf_pipeline": lambda: _peers.hf_pipeline(backbone, n_labels, b),
        "hf_pipeline_bfloat16": lambda: _peers.hf_pipeline(backbone, n_labels, b, bfloat16=True),
        "onnx_float32": lambda: _peers.onnx_runner(_onnx(backbone, n_labels, work, size)["float32"], backbone, b, threads),
        "onnx_int8": lambda: _peers.onnx_runner(_onnx(backbone, n_labels, work, size)["int8"], backbone, b, threads),
        "gliner": lambda: _peers.gliner_runner(backbone, labels, settings.gliner_window),
    }
    systems: Dict[str, Callable[[List[str]], Any]] = {
        "ours": lambda t, nlp=ours: list(nlp.pipe(t)),
        "ours_float32": lambda t, nlp=ours32: list(nlp.pipe(t)),
        "stock_spancat": lambda t, nlp=stock: list(nlp.pipe(t)),
    }
    not_measured: Dict[str, str] = {}
    for name, build in builders.items():
        try:
            systems[name] = build()
        except ImportError as err:  # a peer's package is missing here: say so, measure the rest
            not_measured[name] = f"not measured: {err} (pip install -r requirements.txt)"
            msg.warn(f"{name}: {not_measured[name]}")
    hf = f"token-classification, aggregation simple, batch {b}, stride {_peers.HF_STRIDE}, random head ({n_labels} labels)"
    ort = f"same model exported to ONNX (torch.onnx.export), ONNX Runtime CPU, {threads} threads, batch {b}, stride {_peers.HF_STRIDE}, forward + argmax only"
    what = {
        "ours": f"{ours_name}, cpu_precision {_precision_of(ours)}",
        "ours_float32": f"{ours_name}, cpu_precision float32 (unoptimised)",
        "stock_spancat": "spacy init config -p spancat -G, ngram sizes [1,2,3], untrained",
        "hf_pipeline": f"{hf}, float32",
        "hf_pipeline_bfloat16": f"{hf}, model loaded with torch_dtype=torch.bfloat16",
        "onnx_float32": f"{ort}, float32",
        "onnx_int8": f"{ort}, dynamic int8 quantisation (quantize_dynamic, QInt8 weights)",
        "gliner": f"untrained GLiNER.from_config(GLiNERConfig(model_name=backbone)), flat_ner=False, multi_label, "
        f"{n_labels} label prompts, threshold {_peers.GLINER_THRESHOLD}, windows of {settings.gliner_window} words, batch 8 (speed only)",
    }
    # No inference_mode/no_grad wrapper: each system runs as its user calls it
    timings = bench_inference(systems, texts, n_words, settings.repeats)
    peers = {k: v for k, v in timings.items() if k not in OUR_SYSTEMS}
    best = max(peers, key=lambda k: peers[k]["words_per_s"])
    o = timings["ours"]["words_per_s"]
    entry: Dict[str, Any] = {
        "docs": len(texts),
        "words": n_words,
        "systems": {k: {"what": what[k], **timings[k]} for k in systems},
        "not_measured": not_measured,
        "best_peer": best,
        "ratio_vs_best_peer": o / peers[best]["words_per_s"],
        "ratios_vs_peers": {k: o / v["words_per_s"] for k, v in peers.items()},
        "ratio_vs_hf": o / timings["hf_pipeline"]["words_per_s"],
        "ratio_vs_stock": o / timings["stock_spancat"]["words_per_s"],
        "ratio_vs_float32": o / timings["ours_float32"]["words_per_s"],
    }
    msg.info(f"{size}: ours / best peer ({best}) {entry['ratio_vs_best_peer']:.2f}x")
    # Where our time goes, always: per component, then the functions with the most own time
    components = profile_components(ours, texts)
    entry["profile_components"] = components
    entry["profile_ours"] = profile_top(systems["ours"], texts)
    transformer_s = sum(c["seconds"] for c in components if c["component"] == "transformer")
    entry["limit"] = _limit(ours, backbone, texts, timings["ours"]["seconds"], transformer_s, settings)
    return entry
