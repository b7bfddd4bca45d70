"""The summary at the end of `weasel run all`, from the files a run leaves (made here by hand)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from biomed_spancat.steps import record_step
from biomed_spancat.summary import build_summary, format_seconds, format_summary

from report_cases import make_case

ROOT = Path(__file__).resolve().parent.parent
STEPS = ["fetch-transformer", "convert", "train", "evaluate-package", "stage-hub"]
WHEEL = "packages/en_biomed_spancat-0.1.0/dist/en_biomed_spancat-0.1.0-py3-none-any.whl"
SPEED = {
    "words_per_second": 4190.4, "words": 12345, "docs": 12, "device": "cpu", "seconds": 2.946,
    "timed": {"data": "corpus/dev.spacy", "batch_size": 32, "n_process": 1, "precision": "bfloat16",
              "warmup_docs": 8, "repeats": 3},
    "machine": {"cpu": "Test CPU", "cpu_count": 2, "threads": 2, "gpu": None},
}


def write_run(root: Path, *, stand_in=True, warnings=("label 'X' has 1 span",), rejected=2, made=True):
    """The files of a finished run: wheel, report, card, metrics, corpus report, source.json,
    the step log and weasel's lock."""
    if made:
        for path in (WHEEL, "metrics/report.html", "hub/en_biomed_spancat/README.md"):
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text("x")
        result, _, _ = make_case()
        metrics = dict(result.metrics, speed=SPEED)
        metrics["model"] = dict(metrics["model"], model="en_biomed_spancat")
        # evaluate-package records the data's absolute path
        metrics["data"] = dict(metrics["data"], path=str((root / "corpus/dev.spacy").resolve()))
        (root / "metrics/package.json").write_text(json.dumps(metrics))
    (root / "corpus").mkdir(exist_ok=True)
    (root / "corpus/report.json").write_text(json.dumps({
        "read": 40, "kept": 38, "rejected": rejected, "rejected_by_reason": {"empty_text": rejected} if rejected else {},
        "warnings": list(warnings),
        "spans_dropped": {"duplicate_span": 3, "unknown_label:GENE": 2} if rejected else {},
    }))
    (root / "assets/transformer").mkdir(parents=True, exist_ok=True)
    (root / "assets/transformer/source.json").write_text(json.dumps({
        "requested": "microsoft/BiomedBERT", "used": "sentence-transformers/all-MiniLM-L6-v2",
        "stand_in": stand_in, "origin": "stand-in" if stand_in else "hub",
    }))
    lock = {}
    for i, (name, seconds) in enumerate(zip(STEPS, [3.2, 12.0, 754.4, 41.0])):
        line = f"python -m scripts.{name.replace('-', '_')} arg{i}"
        lock[name] = {"script": [line]}
        record_step(root / "metrics/steps.jsonl", f"scripts.{name.replace('-', '_')}", [f"arg{i}"], 1000.0, 1000.0 + seconds)
    lock["stage-hub"] = {"script": ["python -m scripts.stage_hub w"]}  # ran before the step log existed
    return lock


def summary_of(root, lock, namespace="your-hf-username"):
    return build_summary(
        steps=STEPS, lock=lock, step_log=root / "metrics/steps.jsonl", wheel=Path(WHEEL),
        report=Path("metrics/report.html"), card=Path("hub/en_biomed_spancat/README.md"),
        metrics=Path("metrics/package.json"), corpus_report=Path("corpus/report.json"),
        transformer_source=Path("assets/transformer/source.json"), namespace=namespace, repo="en_biomed_spancat",
    )


def test_summary_of_a_finished_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lock = write_run(tmp_path)
    lines = format_summary(summary_of(tmp_path, lock))
    assert lines[:4] == [
        "Made:",
        f"  wheel       {WHEEL}",
        "  report      metrics/report.html",
        "  model card  hub/en_biomed_spancat/README.md",
    ]
    assert lines[4] == (
        "Scores of the installed en_biomed_spancat 0.1.0 on corpus/dev.spacy (2 docs, 8 gold spans, threshold 0.5):"
    )
    assert lines[5] == "  spans P 66.7 R 50.0 F 57.1; overlapping F 66.7, isolated F 50.0"
    assert lines[6].startswith("  speed 4,190 words/s: median of 3 passes of nlp.pipe over the 12 texts")
    assert lines[7:14] == [
        "Steps:",
        "  fetch-transformer         3.2 s",
        "  convert                  12.0 s",
        "  train               12 min 34 s",
        "  evaluate-package         41.0 s",
        "  stage-hub             not timed",
        "  total               13 min 31 s (not timed: stage-hub)",
    ]
    assert lines[14] == "Needs action:"
    warnings = lines[15:-1]
    assert warnings[0].startswith("  ! The transformer is the offline stand-in sentence-transformers/all-MiniLM-L6-v2, "
                                  "not microsoft/BiomedBERT")
    assert warnings[1] == "  ! Corpus: label 'X' has 1 span"
    assert warnings[2] == (
        "  ! Corpus: 2 spans dropped for labels outside the label set (GENE 2): add the labels or fix the data."
    )
    assert warnings[3] == "  ! Corpus: 2 of 40 tasks rejected (empty_text 2): see corpus/rejections.jsonl."
    assert warnings[4].startswith("  ! The Hub namespace is the placeholder 'your-hf-username': set vars.hub_namespace")
    assert len(warnings) == 5
    assert lines[-1] == (
        f"Next: pip install {WHEEL}  (then spacy.load(\"en_biomed_spancat\")); to publish: set "
        "vars.hub_namespace, then `weasel run stage-hub` and `weasel run push`"
    )


def test_summary_without_warnings_says_push(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lock = write_run(tmp_path, stand_in=False, warnings=(), rejected=0)
    summary = summary_of(tmp_path, lock, namespace="alice")
    assert summary["warnings"] == []
    assert summary["next"].endswith("to publish: `weasel run push` (to alice/en_biomed_spancat)")
    assert "Needs action:" not in format_summary(summary)


def test_summary_of_a_run_that_made_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lock = write_run(tmp_path, made=False, stand_in=False, warnings=[f"w{i}" for i in range(7)], rejected=0)
    summary = summary_of(tmp_path, lock, namespace="alice")
    assert summary["scores"] is None and [a["exists"] for a in summary["artifacts"]] == [False] * 3
    assert summary["warnings"][:4] == [
        f"No wheel at {WHEEL}: the step that writes it did not run or failed.",
        "No report at metrics/report.html: the step that writes it did not run or failed.",
        "No model card at hub/en_biomed_spancat/README.md: the step that writes it did not run or failed.",
        "No scores: metrics/package.json is missing or not a metrics file (evaluate-package writes it).",
    ]
    assert summary["warnings"][4:] == [f"Corpus: w{i}" for i in range(5)] + [
        "Corpus: 2 more warnings in corpus/report.json."
    ]
    assert summary["next"].startswith("fix the step that failed")


@pytest.mark.parametrize("seconds,expected", [(None, "not timed"), (8.24, "8.2 s"), (245, "4 min 05 s"),
                                              (3725, "1 h 02 min")])
def test_format_seconds(seconds, expected):
    assert format_seconds(seconds) == expected


def test_summary_script_prints_and_fails_when_nothing_was_made(tmp_path):
    (tmp_path / "project.yml").write_text((ROOT / "project.yml").read_text())
    lock = write_run(tmp_path)
    import srsly

    srsly.write_yaml(tmp_path / "project.lock", lock)
    args = [sys.executable, "-m", "scripts.summary", WHEEL, "--card", "hub/en_biomed_spancat/README.md",
            "--transformer-source", "assets/transformer/source.json", "--namespace", "your-hf-username",
            "--repo", "en_biomed_spancat", "--workflow", "all"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BIOMED_STEP_LOG": "0"}
    r = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Summary of `weasel run all`" in r.stdout and f"Next: pip install {WHEEL}" in r.stdout
    written = json.loads((tmp_path / "metrics/summary.json").read_text())
    assert written["steps"][0] == {"command": "fetch-transformer", "seconds": 3.2, "finished": 1003.2}
    assert "summary" not in [r["command"] for r in written["steps"]]  # it cannot time itself
    (tmp_path / WHEEL).unlink()
    r = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "(missing)" in r.stdout and "Not everything was made" in r.stdout
