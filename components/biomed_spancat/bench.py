"""Side-by-side benchmarks (issue 14): conversion, inference, training speed
and memory of this project against its peers, on the same machine in one run.

Peers, all on the same backbone folder and the same texts:
- the Hugging Face `token-classification` pipeline (random head: speed only);
- spaCy's stock spacy-transformers spancat (`spacy init config -p spancat -G`,
  transformer name set to the backbone folder), initialised but untrained.

Every figure is the median of `repeats` runs after a warm-up; inference pairs
are measured alternately (the order rotates each round) in one process;
training and conversion run in child processes so each has its own peak RSS.
The result is one JSON-able dict (`run_bench`) and a Markdown page
(`write_markdown`) naming machine, versions, command and every missed target.
"""

import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

from wasabi import msg

from .ingest.prodigy_db import write_prodigy_sqlite

__all__ = [
    "BenchSettings",
    "QUICK",
    "FULL",
    "TARGETS",
    "run_bench",
    "write_markdown",
    "stock_spancat_config",
    "build_random_bert",
    "run_child",
    "read_spans_f",
    "check_targets",
    "render_markdown",
    "init_untrained",
    "config_on_backbone",
    "profile_top",
    "bench_conversion",
    "bench_inference",
    "bench_training",
    "training_worker",
    "NOT_MEASURED_GPU",
]

NOT_MEASURED_GPU = "not measured: no GPU available"

# The issue's targets: (metric, comparison, threshold)
TARGETS = {
    "inference_vs_hf": 2.0,  # our words/s over the HF pipeline's, at least
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
    hf_batch_size (int): The HF pipeline's batch size.
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
    for name in ("spacy", "spacy-transformers", "transformers", "torch", "thinc", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:  # a missing peer is reported, not fatal
            out[name] = "not installed"
    return out


def machine() -> Dict[str, Any]:
    """Cores, memory, CPU model and GPU presence: where the figures were measured."""
    from .packaging import describe_hardware

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
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: metrics file not found")
    try:
        data = json.loads(path.read_text(encoding="utf8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not JSON ({err.msg} at line {err.lineno})") from None
    if isinstance(data, dict) and isinstance(data.get("spans"), dict) and "f" in data["spans"]:
        s = data["spans"]
        return {"p": s.get("p"), "r": s.get("r"), "f": s["f"], "path": str(path)}
    for d in (data, data.get("performance") if isinstance(data, dict) else None):
        if isinstance(d, dict):
            key = next((k for k in d if k.startswith("spans_") and k.endswith("_f")), None)
            if key:
                stem = key[:-2]
                return {"p": d.get(stem + "_p"), "r": d.get(stem + "_r"), "f": d[key], "path": str(path)}
    raise ValueError(f"{path}: no spans F found (expected 'spans.f', 'spans_<key>_f' or 'performance.spans_<key>_f')")


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
    from .architecture import resolve_cpu_precision

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


# --------------------------------------------------------------------------- conversion


def _cut_craft(craft_dir: Path, out_dir: Path, lines: int) -> Path:
    """Copy the CRAFT exports (first `lines` lines each) into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev", "test"):
        src = craft_dir / f"craft_{split}.jsonl"
        with open(src, encoding="utf8") as f, open(out_dir / src.name, "w", encoding="utf8") as g:
            for i, line in enumerate(f):
                if i >= lines:
                    break
                g.write(line)
    return out_dir


def bench_conversion(
    craft_dir: Path, work: Path, settings: BenchSettings, project_root: Path
) -> Dict[str, Any]:
    """Time `python -m scripts.convert` on CRAFT train, from JSONL and from a
    prodigy.db holding the same tasks (written by ingest.prodigy_db): tasks/s,
    tokens/s and peak RSS (child process, startup included: what a user waits for).

    RETURNS (Dict[str, Any]): One entry per source, with the command and runs.
    """
    src_dir = _cut_craft(craft_dir, work / "craft_cut", settings.conv_lines) if settings.conv_lines else craft_dir
    db = work / "prodigy.db"
    if db.exists():
        db.unlink()
    with open(src_dir / "craft_train.jsonl", encoding="utf8") as f:
        write_prodigy_sqlite(db, {"craft_train": (json.loads(line) for line in f if line.strip())})
    sources = {
        "jsonl": [str(src_dir / "craft_train.jsonl")],
        "prodigy.db": [str(db), "--datasets", "craft_train"],
    }
    results: Dict[str, Any] = {}
    for round_ in range(settings.repeats + 1):
        # Alternate the two sources; round 0 is the warm-up (page cache, .pyc)
        for name, args in sources.items():
            out = work / f"convert_{name}_{round_}"
            shutil.rmtree(out, ignore_errors=True)
            cmd = [sys.executable, "-m", "scripts.convert", *args[:1], str(out), *args[1:], "--eval-split", "0"]
            res = _child_or_fail(cmd, f"convert ({name})", cwd=project_root)
            report = json.loads((out / "report.json").read_text(encoding="utf8"))
            entry = results.setdefault(name, {"command": "python " + " ".join(cmd[1:]), "runs": []})
            tokens = sum(s.get("tokens", 0) for s in report.get("splits", {}).values())
            entry.update({"tasks": report["read"], "tokens": tokens})
            if round_ > 0:
                entry["runs"].append({"seconds": res["seconds"], "peak_rss_mb": res["peak_rss_mb"]})
            shutil.rmtree(out, ignore_errors=True)
            msg.text(f"conversion {name} round {round_}/{settings.repeats}: {res['seconds']:.2f} s")
    for entry in results.values():
        secs = _median([r["seconds"] for r in entry["runs"]])
        entry["seconds"] = secs
        entry["tasks_per_s"] = entry["tasks"] / secs
        entry["tokens_per_s"] = entry["tokens"] / secs
        entry["peak_rss_mb"] = max(r["peak_rss_mb"] for r in entry["runs"])
        entry["full_corpus"] = not settings.conv_lines
    if db.exists():
        db.unlink()
    return results


# --------------------------------------------------------------------------- inference


def _hf_pipeline(backbone: Path, n_labels: int, batch_size: int) -> Callable[[List[str]], Any]:
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    tok = AutoTokenizer.from_pretrained(str(backbone))
    # Long paragraphs: chunk at the model's length with an overlap, as spaCy's windows do
    tok.model_max_length = 512
    model = AutoModelForTokenClassification.from_pretrained(str(backbone), num_labels=n_labels)
    model.eval()
    pipe = pipeline(
        "token-classification",
        model=model,
        tokenizer=tok,
        aggregation_strategy="simple",
        batch_size=batch_size,
        stride=64,
        device=-1,
    )
    return lambda texts: pipe(texts)


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


# --------------------------------------------------------------------------- training


def training_worker(spec_json: str) -> None:
    """Child-process body: initialise a config on the training cut, run one
    warm-up update, then time `steps` updates; print one JSON line.

    spec_json (str): {"config": path, "backbone": path, "train": path, "steps": int,
        "batch_size": int, "stock_sizes": list or null}.
    """
    from spacy import util
    from spacy.training import Example

    spec = json.loads(spec_json)
    docs = _read_docs(Path(spec["train"]))
    if spec.get("stock_sizes"):
        config = stock_spancat_config(Path(spec["backbone"]), spec["stock_sizes"])
    else:
        config = config_on_backbone(Path(spec["config"]), Path(spec["backbone"]))
    util.fix_random_seed(0)
    nlp = init_untrained(config, docs)
    optimizer = nlp.create_optimizer()
    examples = [Example(nlp.make_doc(d.text), d) for d in docs]
    # The same batcher for both configs (batches by padded size, ~batch_size words), so
    # words/s compares the models, not the batch sizes
    batcher = util.registry.batchers.get("spacy.batch_by_padded.v1")(
        size=spec["batch_size"], buffer=256, discard_oversize=False, get_length=None
    )

    def batches() -> Iterable[List[Any]]:
        while True:
            yield from batcher(examples)

    stream = iter(batches())
    nlp.update(next(stream), drop=0.1, sgd=optimizer, losses={})  # warm-up
    words, start = 0, time.perf_counter()
    for _ in range(spec["steps"]):
        batch = next(stream)
        nlp.update(batch, drop=0.1, sgd=optimizer, losses={})
        words += sum(len(eg.reference) for eg in batch)
    seconds = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"words": words, "seconds": seconds, "steps": spec["steps"], "peak_rss_mb": rss_mb}))


def _training_child(spec: Dict[str, Any]) -> Dict[str, Any]:
    cmd = [
        sys.executable,
        "-c",
        "import sys; from biomed_spancat.bench import training_worker; training_worker(sys.argv[1])",
        json.dumps(spec),
    ]
    res = _child_or_fail(cmd, "training worker")
    line = [ln for ln in res["stdout"].splitlines() if ln.startswith("{")][-1]
    out = json.loads(line)
    out["peak_rss_mb"] = res["peak_rss_mb"]  # the whole child, from wait4
    out["words_per_s"] = out["words"] / out["seconds"]
    return out


def bench_training(
    config: Path, backbone: Path, train_cut: Path, stock_k: int, steps: int, repeats: int, batch_size: int = 1000
) -> Dict[str, Any]:
    """Words/s and peak RSS of `steps` updates: our config vs the stock spancat
    config with ngram sizes 1..stock_k, alternately, `repeats` child processes each.

    RETURNS (Dict[str, Any]): Per system: runs, median words/s, peak RSS.
    """
    specs = {
        "ours": {"config": str(config), "stock_sizes": None},
        "stock": {"config": None, "stock_sizes": list(range(1, stock_k + 1))},
    }
    runs: Dict[str, List[Dict[str, Any]]] = {n: [] for n in specs}
    for r in range(repeats):
        order = list(specs) if r % 2 == 0 else list(specs)[::-1]
        for name in order:
            spec = {**specs[name], "backbone": str(backbone), "train": str(train_cut), "steps": steps, "batch_size": batch_size}
            runs[name].append(_training_child(spec))
            msg.text(f"training {name} run {r + 1}/{repeats}: {runs[name][-1]['words_per_s']:.0f} words/s")
    out = {}
    for name in specs:
        out[name] = {
            "runs": runs[name],
            "words_per_s": _median([x["words_per_s"] for x in runs[name]]),
            "peak_rss_mb": _median([x["peak_rss_mb"] for x in runs[name]]),
            "steps": steps,
            "batch_words": batch_size,
        }
    out["stock"]["ngram_sizes"] = list(range(1, stock_k + 1))
    return out


# --------------------------------------------------------------------------- the run


def _suggester_coverage(config: Path, docs: Sequence[Any], spans_key: str) -> Dict[str, Any]:
    from .suggester_fit import coverage_report, load_suggester_from_config

    report = coverage_report(load_suggester_from_config(config), docs, spans_key=spans_key)
    report.pop("ngram_table", None)
    report.pop("per_label_recall", None)
    return report


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
    """
    import spacy

    from .architecture import CPU_PRECISION_KEY

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

    dev_docs = _read_docs(dev)
    train_docs = _read_docs(train, settings.train_docs)
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
                from .evaluation import load_model

                ours = load_model(pipeline)
                ours32 = load_model(pipeline, {CPU_PRECISION_KEY: "float32"})
                ours_name = str(pipeline)
            else:
                ours = init_untrained(config_on_backbone(config, bb), train_docs)
                ours32 = init_untrained(config_on_backbone(config, bb, {CPU_PRECISION_KEY: "float32"}), train_docs)
                ours_name = f"{config} (untrained, this backbone)"
            stock = init_untrained(stock_spancat_config(bb, (1, 2, 3)), train_docs)
            hf = _hf_pipeline(bb, max(len(labels), 1), settings.hf_batch_size)
            systems = {
                "ours": lambda t, nlp=ours: list(nlp.pipe(t)),
                "ours_float32": lambda t, nlp=ours32: list(nlp.pipe(t)),
                "stock_spancat": lambda t, nlp=stock: list(nlp.pipe(t)),
                "hf_pipeline": hf,
            }
            # No inference_mode/no_grad wrapper: each system runs as its user calls it
            timings = bench_inference(systems, texts, n_words, settings.repeats)
            o = timings["ours"]["words_per_s"]
            result["inference"][size] = {
                "docs": len(texts),
                "words": n_words,
                "systems": {
                    "ours": {"pipeline": f"{ours_name}, cpu_precision {_precision_of(ours)}", **timings["ours"]},
                    "ours_float32": {"pipeline": f"{ours_name}, cpu_precision float32 (unoptimised)", **timings["ours_float32"]},
                    "stock_spancat": {"config": "spacy init config -p spancat -G, ngram sizes [1,2,3]", **timings["stock_spancat"]},
                    "hf_pipeline": {
                        "pipeline": f"token-classification, aggregation simple, batch {settings.hf_batch_size}, stride 64, random head ({len(labels)} labels)",
                        **timings["hf_pipeline"],
                    },
                },
                "ratio_vs_hf": o / timings["hf_pipeline"]["words_per_s"],
                "ratio_vs_stock": o / timings["stock_spancat"]["words_per_s"],
                "ratio_vs_float32": o / timings["ours_float32"]["words_per_s"],
            }
            entry = result["inference"][size]
            if entry["ratio_vs_hf"] < TARGETS["inference_vs_hf"] or entry["ratio_vs_stock"] < TARGETS["inference_vs_stock"]:
                # A missed target says what dominates the time: a profile of one pass of ours
                entry["profile_ours"] = profile_top(systems["ours"], texts)
            del ours, ours32, stock, hf, systems

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


# --------------------------------------------------------------------------- Markdown


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines + [""]


def render_markdown(result: Dict[str, Any]) -> str:
    """BENCHMARKS.md from a run_bench result: header (machine, versions, command),
    one table per section, the accuracy beside them, and every missed target.

    result (Dict[str, Any]): A run_bench result.
    RETURNS (str): The Markdown text.
    """
    m, v = result["machine"], result["versions"]
    n = result["settings"]["repeats"]
    out = [
        "# Benchmarks",
        "",
        f"- Mode: **{result['mode']}**{' (tiny sizes: proves the harness, not the speed)' if result['mode'] == 'quick' else ''}",
        f"- Machine: {m['hardware']}; CPU {m['cpu']}; torch threads {m['torch_threads']}; "
        f"GPU: {m['gpu'] or 'none'}; load average at start {m.get('load_average_at_start')}",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"- Command: `{result['command']}`",
        f"- Started {result['started']}; took {result.get('seconds', 0):.0f} s. Every figure: median of {n} runs after a warm-up; "
        "inference systems alternate within each round.",
        "",
    ]
    for name, bb in result.get("backbones", {}).items():
        out.append(f"- Backbone `{name}`: {bb['layers']} layers, {bb['hidden']} wide, vocab {bb['vocab']} ({bb['path']})")
    out.append("")

    out += ["## Conversion", ""]
    conv = result.get("conversion", {})
    if "skipped" in conv:
        out += [f"Not measured: {conv['skipped']}.", ""]
    else:
        out += _table(
            ["source", "tasks", "tokens", "seconds", "tasks/s", "tokens/s", "peak RSS MB", "command"],
            [
                (k, f"{c['tasks']:,}", f"{c['tokens']:,}", f"{c['seconds']:.2f}", f"{c['tasks_per_s']:,.0f}",
                 f"{c['tokens_per_s']:,.0f}", f"{c['peak_rss_mb']:,.0f}", f"`{c['command']}`")
                for k, c in conv.items()
            ],
        )

    out += ["## Inference (CPU)", ""]
    for size, inf in (result.get("inference") or {}).items():
        out += [f"Backbone `{size}`: {inf['docs']} docs, {inf['words']:,} words.", ""]
        out += _table(
            ["system", "words/s", "docs/s", "median s", "what"],
            [
                (k, f"{s['words_per_s']:,.0f}", f"{s['docs_per_s']:,.1f}", f"{s['seconds']:.2f}",
                 s.get("pipeline") or s.get("config", ""))
                for k, s in inf["systems"].items()
            ],
        )
        ratios = f"Ratios: ours / HF pipeline **{inf['ratio_vs_hf']:.2f}x**; ours / stock spancat **{inf['ratio_vs_stock']:.2f}x**"
        if "ratio_vs_float32" in inf:
            ratios += f"; ours / ours in float32 **{inf['ratio_vs_float32']:.2f}x**"
        out += [ratios + ".", ""]
        if inf.get("profile_ours"):
            out += [f"Where our pass spends its time (cProfile, one pass, top {len(inf['profile_ours'])} by own time):", ""]
            out += _table(
                ["function", "own s", "cumulative s", "calls", "share"],
                [(f"`{p['function']}`", f"{p['own_s']:.3f}", f"{p['cumulative_s']:.3f}", p["calls"], f"{p['share']:.0%}")
                 for p in inf["profile_ours"]],
            )

    out += ["## Training speed (CPU)", ""]
    for size, tr in (result.get("training") or {}).items():
        out += [f"Backbone `{size}`: {tr['ours']['steps']} timed steps of ~{tr['ours']['batch_words']} words after one warm-up step.", ""]
        out += _table(
            ["system", "words/s", "peak RSS MB", "suggester recall"],
            [
                ("ours", f"{tr['ours']['words_per_s']:,.0f}", f"{tr['ours']['peak_rss_mb']:,.0f}", f"{tr['suggester_recall']['ours']:.2%}"),
                (f"stock, n-grams {tr['stock']['ngram_sizes']}", f"{tr['stock']['words_per_s']:,.0f}",
                 f"{tr['stock']['peak_rss_mb']:,.0f}", f"{tr['suggester_recall']['stock']:.2%}"),
            ],
        )
        out += [f"Ratios: words/s **{tr['ratio_words_per_s']:.2f}x**, peak RSS **{tr['ratio_peak_rss']:.2f}x**.", ""]

    sug = result.get("suggester")
    if sug:
        out += ["## Suggester (training cut)", ""]
        out += _table(
            ["suggester", "gold recall", "candidates", "per token"],
            [
                ("ours", f"{sug['recall']:.2%}", f"{sug['candidates']:,}", f"{sug['per_token']:.3f}"),
                (f"ngram_range(1, {sug['ngram_K']})", f"{sug['ngram_recall']:.2%}", f"{sug['ngram_candidates']:,}", f"{sug['ngram_per_token']:.3f}"),
            ],
        )

    out += ["## Accuracy", ""]
    acc = result.get("accuracy") or {}
    if acc:
        out += _table(
            ["configuration", "spans P", "spans R", "spans F", "from"],
            [
                (k, _pct(a.get("p")), _pct(a.get("r")), _pct(a.get("f")), f"`{a['path']}`")
                for k, a in acc.items()
            ],
        )
    else:
        out += ["Not given: pass `--metrics NAME=PATH` (metrics JSON of `evaluate`); no figure is made up.", ""]

    out += ["## GPU", "", result.get("gpu", NOT_MEASURED_GPU), ""]

    out += ["## Targets", ""]
    missed = result.get("missed_targets", [])
    if missed:
        out += _table(["target", "where", "wanted", "shortfall"], [(x["target"], x["where"], x["wanted"], x["shortfall"]) for x in missed])
        out += [
            "Inference misses come with a profile of our pass under its backbone above; training "
            "and conversion misses are not profiled by this harness (run them under py-spy or cProfile).",
            "",
        ]
    else:
        out += ["Every measured target met.", ""]
    return "\n".join(out)


def _pct(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}"


def write_markdown(result: Dict[str, Any], path: Path) -> Path:
    """Write render_markdown(result) to `path`.

    RETURNS (Path): path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown(result), encoding="utf8")
    return path
