"""Shared pieces of the benchmark harness: settings, targets, child processes,
machine and version records, backbones and pipeline configs."""

import json
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from ..util import InputFileError, read_json_object

__all__ = [
    "BenchSettings",
    "QUICK",
    "FULL",
    "TARGETS",
    "NOT_MEASURED_GPU",
    "run_child",
    "versions",
    "machine",
    "read_spans_f",
    "build_random_bert",
    "stock_spancat_config",
    "config_on_backbone",
    "init_untrained",
]

NOT_MEASURED_GPU = "not measured: no GPU available"

# The targets: (metric, comparison, threshold)
TARGETS = {
    "inference_vs_best_peer": 2.0,  # our words/s over the fastest peer's (any precision/runtime), at least
    "inference_vs_hf": 2.0,  # our words/s over the HF pipeline's (float32), at least
    "inference_vs_stock": 1.5,  # our words/s over stock spancat's, at least
    "training_speed_vs_stock": 1.3,  # our training words/s over stock's, at least
    "training_memory_vs_stock": 0.8,  # our peak RSS over stock's, at most
    "conversion_seconds": 10.0,  # CRAFT train, JSONL and prodigy.db, at most
}


@dataclass
class BenchSettings:
    """How big each measurement is (bounded so a full run fits an hour on 2 cores).

    repeats (int): Timed runs per figure (the median is reported); at least 3.
    infer_words (Dict[str, int]): Words of dev text per inference pass, per backbone size
        ("standin" and "base"); whole docs are taken until the budget is met.
    train_steps (Dict[str, int]): Timed update steps per training run, per backbone.
    train_docs (int): Training docs cut from --train (labels and batches come from them).
    conv_lines (int): Lines of each CRAFT file converted; 0 converts whole files.
    base_shape (Dict[str, int]): Layers/width/heads/intermediate of the BERT-base-shaped model.
    hf_batch_size (int): The HF pipeline's (and the ONNX peers') batch size.
    gliner_window (int): The most words per GLiNER window (its max_len is 384 wordpieces).
    matmul_size (int): n of the n x n x n bfloat16 matmul timed as the practical peak.
    quick (bool): Tiny sizes that only keep the harness from rotting.
    """

    repeats: int = 3
    infer_words: Dict[str, int] = field(default_factory=lambda: {"standin": 10000, "base": 3000})
    train_steps: Dict[str, int] = field(default_factory=lambda: {"standin": 10, "base": 3})
    train_docs: int = 400
    conv_lines: int = 0
    base_shape: Dict[str, int] = field(
        default_factory=lambda: {"layers": 12, "hidden": 768, "heads": 12, "intermediate": 3072}
    )
    hf_batch_size: int = 16
    gliner_window: int = 256
    matmul_size: int = 2048
    quick: bool = False


FULL = BenchSettings()
QUICK = BenchSettings(
    quick=True,
    repeats=3,
    infer_words={"standin": 300, "base": 300},
    train_steps={"standin": 2, "base": 2},
    train_docs=24,
    conv_lines=300,
    base_shape={"layers": 2, "hidden": 64, "heads": 2, "intermediate": 128},
    matmul_size=1024,
)


# --------------------------------------------------------------------------- helpers


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


# Started by run_child: runs the real command and reports the rusage of exactly that
# grandchild. A child forked straight from a big parent inherits the parent's RSS as
# its peak (Linux carries the pre-exec high-water mark into ru_maxrss), so a process
# that holds three models would inflate every figure; this small launcher does not.
_LAUNCHER = """
import json, os, subprocess, sys, time
cmd, report = json.loads(sys.argv[1]), sys.argv[2]
start = time.perf_counter()
proc = subprocess.Popen(cmd)
_, status, usage = os.wait4(proc.pid, 0)
seconds = time.perf_counter() - start
with open(report, "w") as f:
    json.dump({"seconds": seconds, "maxrss_kib": usage.ru_maxrss, "returncode": os.waitstatus_to_exitcode(status)}, f)
"""


def run_child(cmd: List[str], cwd: Optional[Path] = None, env: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Run a command and return its wall time, its own peak RSS and its output.

    cmd (List[str]): The command.
    cwd (Optional[Path]): Working directory.
    env (Optional[Dict[str, str]]): Environment; the current one by default.
    RETURNS (Dict[str, Any]): seconds, peak_rss_mb, returncode, stdout, stderr (tail).
    """
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "rusage.json"
        proc = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, json.dumps(cmd), str(report)],
            cwd=cwd,
            env=env,
            capture_output=True,
        )
        if not report.exists():
            raise RuntimeError(f"could not run {cmd[0]}: {proc.stderr.decode('utf8', 'replace')[-2000:]}")
        usage = json.loads(report.read_text(encoding="utf8"))
    return {
        "seconds": usage["seconds"],
        # ru_maxrss is in KiB on Linux
        "peak_rss_mb": usage["maxrss_kib"] / 1024,
        "returncode": usage["returncode"],
        "stdout": proc.stdout.decode("utf8", "replace"),
        "stderr": proc.stderr.decode("utf8", "replace")[-3000:],
    }


def _child_or_fail(cmd: List[str], what: str, cwd: Optional[Path] = None) -> Dict[str, Any]:
    res = run_child(cmd, cwd=cwd)
    if res["returncode"] != 0:
        raise RuntimeError(f"{what} failed (exit {res['returncode']}): {' '.join(cmd)}\n{res['stderr']}")
    return res


def versions() -> Dict[str, str]:
    """Versions of Python and the libraries every figure depends on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("spacy", "spacy-transformers", "transformers", "torch", "thinc", "numpy", "onnxruntime", "gliner"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:  # a missing peer is reported, not fatal
            out[name] = "not installed"
    return out


def machine() -> Dict[str, Any]:
    """Cores, memory, CPU model and GPU presence: where the figures were measured."""
    from ..publish.packaging import describe_hardware

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf8") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    gpu = None
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except Exception:
        gpu = None
    return {
        "hardware": describe_hardware(-1),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "gpu": gpu,
        "torch_threads": _torch_threads(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _torch_threads() -> Optional[int]:
    try:
        import torch

        return torch.get_num_threads()
    except Exception:
        return None


def read_spans_f(path: Path) -> Dict[str, Any]:
    """Read spans P/R/F from a metrics JSON file written by this project
    (`{"spans": {"f": ...}}`), by `spacy evaluate` (`spans_sc_f`) or a
    pipeline's meta.json (`performance.spans_sc_f`). Never guesses.

    path (Path): The metrics file.
    RETURNS (Dict[str, Any]): p, r, f (0-1) and the source path.
    RAISES (InputFileError): No such file, not JSON, or no spans F in it.
    """
    path = Path(path)
    data = read_json_object(path, "metrics file")
    if isinstance(data.get("spans"), dict) and "f" in data["spans"]:
        s = data["spans"]
        return {"p": s.get("p"), "r": s.get("r"), "f": s["f"], "path": str(path)}
    for d in (data, data.get("performance")):
        if isinstance(d, dict):
            key = next((k for k in d if k.startswith("spans_") and k.endswith("_f")), None)
            if key:
                stem = key[:-2]
                return {"p": d.get(stem + "_p"), "r": d.get(stem + "_r"), "f": d[key], "path": str(path)}
    raise InputFileError(f"{path}: no spans F found (expected 'spans.f', 'spans_<key>_f' or 'performance.spans_<key>_f')")


# --------------------------------------------------------------------------- backbones


def build_random_bert(
    out_dir: Path, vocab_file: Path, layers: int, hidden: int, heads: int, intermediate: int, vocab_size: int = 30522
) -> Path:
    """Write a randomly initialised uncased BertModel and its tokenizer to `out_dir`:
    BiomedBERT's shape at random weights, for speed and memory only.

    vocab_file (Path): A WordPiece vocab; padded with `[unusedN]` entries to `vocab_size`.
    RETURNS (Path): out_dir.
    """
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    out_dir = Path(out_dir)
    if (out_dir / "config.json").exists() and (out_dir / "vocab.txt").exists():
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    words = Path(vocab_file).read_text(encoding="utf8").splitlines()[:vocab_size]
    seen = set(words)
    i = 0
    while len(words) < vocab_size:
        w = f"[unused{i}]"
        i += 1
        if w not in seen:
            words.append(w)
    (out_dir / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf8")
    tok = BertTokenizerFast(vocab_file=str(out_dir / "vocab.txt"), do_lower_case=True, model_max_length=512)
    tok.save_pretrained(out_dir)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(out_dir)
    return out_dir


def _describe_backbone(path: Path) -> Dict[str, Any]:
    cfg = json.loads((Path(path) / "config.json").read_text(encoding="utf8"))
    return {
        "path": str(path),
        "layers": cfg.get("num_hidden_layers"),
        "hidden": cfg.get("hidden_size"),
        "vocab": cfg.get("vocab_size"),
        "name_or_path": cfg.get("_name_or_path"),
    }


# --------------------------------------------------------------------------- configs and pipelines


def stock_spancat_config(backbone: Path, sizes: Sequence[int] = (1, 2, 3)) -> Any:
    """spaCy's stock transformer spancat config, as `spacy init config -p spancat -G`
    writes it, with the transformer name set to a local backbone folder.

    backbone (Path): The transformer folder.
    sizes (Sequence[int]): The ngram_suggester's sizes.
    RETURNS (Config): The filled config.
    """
    from spacy.cli.init_config import init_config

    config = init_config(lang="en", pipeline=["spancat"], optimize="efficiency", gpu=True)
    config["components"]["transformer"]["model"]["name"] = str(backbone)
    config["components"]["spancat"]["suggester"] = {"@misc": "spacy.ngram_suggester.v1", "sizes": list(sizes)}
    return config


def config_on_backbone(config_path: Path, backbone: Path, overrides: Optional[Dict[str, Any]] = None) -> Any:
    """Load a pipeline config with its transformer pointed at `backbone`.

    config_path (Path): Our training config (or any transformer pipeline config).
    backbone (Path): The transformer folder.
    overrides (Optional[Dict[str, Any]]): Dotted config overrides applied on loading.
    RETURNS (Config): The interpolated config.
    """
    from spacy import util

    config = util.load_config(config_path, overrides=overrides or {}, interpolate=False)
    # Both spellings: ours reads ${paths.transformer}, a stock one names it directly
    if "transformer" in config.get("paths", {}):
        config["paths"]["transformer"] = str(backbone)
    config["components"]["transformer"]["model"]["name"] = str(backbone)
    return config.interpolate()


def _precision_of(nlp: Any) -> str:
    """The CPU precision our transformer resolves to here, from the pipeline's config."""
    from ..pipeline.architecture import resolve_cpu_precision

    setting = nlp.config["components"]["transformer"]["model"].get("cpu_precision", "float32")
    return f"{setting} -> {resolve_cpu_precision(setting)}" if setting == "auto" else setting


def init_untrained(config: Any, docs: Sequence[Any]) -> Any:
    """Build and initialise a pipeline from a config on gold docs (labels only):
    untrained weights, the right shapes, for speed measurements.

    config (Config): The pipeline config.
    docs (Sequence[Doc]): Gold docs with spans (their labels go into spancat).
    RETURNS (Language): The initialised pipeline.
    """
    from spacy import util
    from spacy.training import Example

    nlp = util.load_model_from_config(config, auto_fill=True, validate=True)
    examples = [Example(nlp.make_doc(d.text), d) for d in docs]
    nlp.initialize(lambda: examples)
    return nlp


def _read_docs(path: Path, limit: int = 0) -> List[Any]:
    import spacy
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    docs = list(DocBin().from_disk(path).get_docs(nlp.vocab))
    return docs[:limit] if limit else docs


def _take_words(docs: Sequence[Any], words: int) -> List[Any]:
    out, n = [], 0
    for d in docs:
        if n >= words:
            break
        out.append(d)
        n += len(d)
    return out


