"""Side-by-side benchmarks (issue 14, issue 23): conversion, inference,
training speed and memory of this project against its peers, on the same
machine in one run.

Inference peers, all on the same backbone folder and the same texts (peers.py):
the Hugging Face `token-classification` pipeline in float32 and in bfloat16,
the same model in ONNX Runtime (float32 and dynamic int8), GLiNER, and spaCy's
stock spacy-transformers spancat (`spacy init config -p spancat -G`), all
untrained heads: speed only. Training: our config against the stock one.

Every figure is the median of `repeats` runs after a warm-up; inference
systems are measured alternately (the order rotates each round) in one
process; training and conversion run in child processes so each has its own
peak RSS. The result is one JSON-able dict (`run_bench`, written to
bench.json) and a Markdown page (markdown.py) naming machine, versions,
command and every missed target.
"""

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from wasabi import msg

from .conversion import bench_conversion
from .inference import bench_backbone
from .training import bench_training
from .util import (
    NOT_MEASURED_GPU,
    TARGETS,
    BenchSettings,
    _describe_backbone,
    _read_docs,
    _take_words,
    build_random_bert,
    config_on_backbone,
    init_untrained,
    machine,
    read_spans_f,
    versions,
)

__all__ = ["run_bench", "check_targets", "check_inputs"]

def _suggester_coverage(config: Path, docs: Sequence[Any], spans_key: str) -> Dict[str, Any]:
    from ..training.suggester_coverage import coverage_report, load_suggester_from_config

    report = coverage_report(load_suggester_from_config(config), docs, spans_key=spans_key)
    report.pop("ngram_table", None)
    report.pop("per_label_recall", None)
    return report


def check_inputs(dev: Path, train: Path) -> None:
    """Stop before minutes of measuring when a DocBin holds no docs.

    dev (Path): Dev DocBin (the inference texts).
    train (Path): Train DocBin (the training docs).
    RAISES (ValueError): Naming the empty file.
    """
    for path, what in ((dev, "inference texts"), (train, "training docs")):
        if not _read_docs(path):
            raise ValueError(f"{path}: no docs (the {what} come from it); a dev file needs convert's --eval-split > 0")


def run_bench(
    out_dir: Path,
    pipeline: str,
    dev: Path,
    train: Path,
    config: Path,
    backbone: Path,
    craft_dir: Optional[Path],
    settings: BenchSettings,
    metrics: Dict[str, Path],
    command: str,
    project_root: Path,
    spans_key: str = "sc",
    skip: Sequence[str] = (),
) -> Dict[str, Any]:
    """Run every benchmark and return the result (also written to out_dir/bench.json).

    out_dir (Path): Where bench.json and the work folder go.
    pipeline (str): Our pipeline: a directory or an installed package name.
    dev (Path): Dev DocBin (inference texts; gold spans give the label count).
    train (Path): Train DocBin (training speed; suggester coverage).
    config (Path): Our training config (training speed, untrained base-size pipeline).
    backbone (Path): The stand-in backbone folder the pipeline was trained on.
    craft_dir (Optional[Path]): CRAFT exports (craft_train.jsonl, as the mirror has them); None skips conversion.
    settings (BenchSettings): Sizes.
    metrics (Dict[str, Path]): Name -> metrics JSON with spans F.
    command (str): The command line, recorded.
    project_root (Path): Where `python -m scripts.convert` runs.
    skip (Sequence[str]): Sections to leave out: conversion, inference, training, base.
    RETURNS (Dict[str, Any]): The result.
    RAISES (ValueError): dev or train holds no docs.
    """
    import spacy

    from ..pipeline.architecture import CPU_PRECISION_KEY

    check_inputs(dev, train)
    dev_docs = _read_docs(dev)
    train_docs = _read_docs(train, settings.train_docs)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / "work"
    work.mkdir(exist_ok=True)
    started = time.time()
    result: Dict[str, Any] = {
        "command": command,
        "mode": "quick" if settings.quick else "full",
        "settings": asdict(settings),
        "machine": machine(),
        "versions": versions(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
        "targets": dict(TARGETS),
    }
    # Conversion
    if "conversion" in skip:
        result["conversion"] = {"skipped": "left out with --skip"}
    elif craft_dir is None or not (Path(craft_dir) / "craft_train.jsonl").exists():
        result["conversion"] = {"skipped": f"CRAFT exports not found at {craft_dir}"}
    else:
        msg.info("Conversion")
        result["conversion"] = bench_conversion(Path(craft_dir), work, settings, project_root)

    # Backbones
    base_dir = work / ("bert-base-random" if settings.base_shape["layers"] >= 12 else "bert-small-random")
    backbones = {"standin": Path(backbone)}
    if "base" not in skip:
        msg.info(f"Building the BERT-base-shaped random backbone in {base_dir}")
        sh = settings.base_shape
        backbones["base"] = build_random_bert(
            base_dir, Path(backbone) / "vocab.txt", sh["layers"], sh["hidden"], sh["heads"], sh["intermediate"]
        )
    result["backbones"] = {k: _describe_backbone(v) for k, v in backbones.items()}

    labels = sorted({s.label_ for d in list(dev_docs) + list(train_docs) for s in d.spans.get(spans_key, [])})

    # Suggester coverage on the training cut: the K the stock config gets for training
    coverage = _suggester_coverage(config, train_docs, spans_key)
    result["suggester"] = coverage
    stock_k = int(coverage["ngram_K"])

    # Inference
    if "inference" not in skip:
        result["inference"] = {}
        for size, bb in backbones.items():
            msg.info(f"Inference, backbone {size}: {bb}")
            docs = _take_words(dev_docs, settings.infer_words[size])
            texts = [d.text for d in docs]
            n_words = sum(len(spacy.blank("en").make_doc(t)) for t in texts)
            if size == "standin":
                from ..util import load_pipeline

                ours = load_pipeline(pipeline)
                ours32 = load_pipeline(pipeline, {CPU_PRECISION_KEY: "float32"})
                ours_name = str(pipeline)
            else:
                ours = init_untrained(config_on_backbone(config, bb), train_docs)
                ours32 = init_untrained(config_on_backbone(config, bb, {CPU_PRECISION_KEY: "float32"}), train_docs)
                ours_name = f"{config} (untrained, this backbone)"
            result["inference"][size] = bench_backbone(
                size, bb, texts, n_words, ours, ours32, ours_name, train_docs, labels, settings, work
            )
            del ours, ours32

    # Training
    if "training" not in skip:
        import spacy.tokens

        train_cut = work / "train_cut.spacy"
        spacy.tokens.DocBin(docs=train_docs, store_user_data=False).to_disk(train_cut)
        result["training"] = {}
        for size, bb in backbones.items():
            msg.info(f"Training speed, backbone {size} (stock n-grams 1..{stock_k})")
            t = bench_training(config, bb, train_cut, stock_k, settings.train_steps[size], settings.repeats)
            t["ratio_words_per_s"] = t["ours"]["words_per_s"] / t["stock"]["words_per_s"]
            t["ratio_peak_rss"] = t["ours"]["peak_rss_mb"] / t["stock"]["peak_rss_mb"]
            t["suggester_recall"] = {"ours": coverage["recall"], "stock": coverage["ngram_recall"]}
            result["training"][size] = t

    # Accuracy: only what the given metrics files say
    result["accuracy"] = {name: read_spans_f(path) for name, path in metrics.items()}
    result["gpu"] = (
        NOT_MEASURED_GPU
        if not result["machine"]["gpu"]
        else f"not measured: GPU {result['machine']['gpu']} present, but this harness measures CPU rows only"
    )
    result["missed_targets"] = check_targets(result)
    result["seconds"] = time.time() - started
    (out_dir / "bench.json").write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf8")
    return result


def check_targets(result: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Every missed target with its measured value and shortfall.

    result (Dict[str, Any]): A run_bench result.
    RETURNS (List[Dict[str, Any]]): target, where, measured, wanted, shortfall (text).
    """
    missed = []

    def at_least(target: str, where: str, measured: float, wanted: float, unit: str = "x") -> None:
        if measured < wanted:
            missed.append(
                {
                    "target": target,
                    "where": where,
                    "measured": measured,
                    "wanted": f">= {wanted}{unit}",
                    "shortfall": f"{measured:.2f}{unit} vs >= {wanted}{unit}: {(1 - measured / wanted):.0%} short "
                    f"(needs {wanted / measured:.2f}x faster)",
                }
            )

    for size, inf in (result.get("inference") or {}).items():
        if "ratio_vs_best_peer" in inf:
            at_least("inference_vs_best_peer", f"{size} (best peer: {inf['best_peer']})", inf["ratio_vs_best_peer"], TARGETS["inference_vs_best_peer"])
        at_least("inference_vs_hf", size, inf["ratio_vs_hf"], TARGETS["inference_vs_hf"])
        at_least("inference_vs_stock", size, inf["ratio_vs_stock"], TARGETS["inference_vs_stock"])
    for size, tr in (result.get("training") or {}).items():
        at_least("training_speed_vs_stock", size, tr["ratio_words_per_s"], TARGETS["training_speed_vs_stock"])
        wanted = TARGETS["training_memory_vs_stock"]
        if tr["ratio_peak_rss"] > wanted:
            missed.append(
                {
                    "target": "training_memory_vs_stock",
                    "where": size,
                    "measured": tr["ratio_peak_rss"],
                    "wanted": f"<= {wanted}x",
                    "shortfall": f"{tr['ratio_peak_rss']:.2f}x vs <= {wanted}x of stock peak RSS: "
                    f"{(tr['ratio_peak_rss'] - wanted) * tr['stock']['peak_rss_mb']:.0f} MB too much",
                }
            )
    for name, conv in (result.get("conversion") or {}).items():
        if isinstance(conv, dict) and "seconds" in conv:
            limit = TARGETS["conversion_seconds"]
            if conv["seconds"] > limit:
                missed.append(
                    {
                        "target": "conversion_seconds",
                        "where": name + ("" if conv.get("full_corpus") else " (cut)"),
                        "measured": conv["seconds"],
                        "wanted": f"<= {limit} s",
                        "shortfall": f"{conv['seconds']:.1f} s vs <= {limit} s: {conv['seconds'] - limit:.1f} s over",
                    }
                )
    return missed


