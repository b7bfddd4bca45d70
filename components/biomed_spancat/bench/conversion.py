"""Conversion benchmark: `python -m scripts.convert` on CRAFT train, from
JSONL and from a prodigy.db, each in its own child process."""

import json
import shutil
import sys
from pathlib import Path
from typing import Any, Dict

from wasabi import msg

from ..ingest.prodigy_db import write_prodigy_sqlite
from .util import BenchSettings, _child_or_fail, _median

__all__ = ["bench_conversion"]

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
    prodigy.db holding the same tasks (written by ingest.prodigy_db): tasks/s, tokens/s and peak RSS
    (child process, startup included: what a user waits for).

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


