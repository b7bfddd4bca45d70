"""Training benchmark: words/s and peak RSS of update steps, our config
against the stock spancat config, each run in its own child process."""

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List

from wasabi import msg

from .util import _child_or_fail, _median, _read_docs, config_on_backbone, init_untrained, stock_spancat_config

__all__ = ["training_worker", "bench_training"]

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
        "import sys; from biomed_spancat.bench.training import training_worker; training_worker(sys.argv[1])",
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


