"""Step times (every `python -m scripts.X` appends to metrics/steps.jsonl, matched to
weasel's project.lock) and `weasel run check`: each missing file with the command
that makes it, in a fresh clone."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import srsly

from biomed_spancat.steps import (
    command_times,
    missing_deps,
    read_step_log,
    record_step,
    run_first,
    script_keys,
    step_key,
)
from conftest import copy_project

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fresh_clone(tmp_path):
    """What a fresh clone has: project.yml, configs, scripts, the package code and the shipped
    sample; nothing made."""
    return copy_project(tmp_path, extra=("assets/craft_sample",))


def _config(root, overrides=None):
    from weasel.util import load_project_config

    return load_project_config(root, overrides=overrides or {}), srsly.read_yaml(root / "project.yml")


def test_export_hf_in_a_fresh_clone_names_the_commands_to_run_first(fresh_clone):
    config, raw = _config(fresh_clone)
    assert run_first(config, "export-hf", fresh_clone) == ["convert", "fetch-transformer"]
    assert missing_deps(config, raw, "export-hf", fresh_clone) == [
        ("corpus/train.spacy", "weasel run convert"),
        ("corpus/dev.spacy", "weasel run convert"),
        ("assets/transformer/config.json", "weasel run fetch-transformer"),
    ]
    # Through weasel, as a user runs it
    r = subprocess.run(
        [sys.executable, "-m", "weasel", "run", "check"],
        cwd=fresh_clone, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(fresh_clone)},
    )
    out = " ".join(r.stdout.split())
    assert r.returncode == 0, r.stderr[-2000:]
    assert "export-hf: first weasel run convert && weasel run fetch-transformer" in out
    assert "missing assets/transformer/config.json: weasel run fetch-transformer" in out
    assert "convert: ready" in out and "fetch-transformer: ready" in out


def test_every_missing_dependency_names_what_makes_it(fresh_clone):
    """No dep of any command is left without a remedy: a command that makes it, or the
    variable that names an input."""
    config, raw = _config(fresh_clone)
    for cmd in config["commands"]:
        for path, remedy in missing_deps(config, raw, cmd["name"], fresh_clone):
            assert remedy.startswith(("weasel run ", "set vars.")), (cmd["name"], path, remedy)
    # An input outside the project is named by its variable (the text to pre-annotate;
    # convert's source is no dep: it may be a database, a URL or env:NAME)
    config, raw = _config(fresh_clone, {"vars.preannotate_input": "absent/new.txt"})
    assert ("absent/new.txt", "set vars.preannotate_input (in project.yml or --vars.preannotate_input PATH)") in (
        missing_deps(config, raw, "preannotate", fresh_clone)
    )
    with pytest.raises(ValueError, match="no command 'nope' in project.yml"):
        missing_deps(config, raw, "nope", fresh_clone)


def test_a_script_run_is_timed_and_matched_to_its_command(fresh_clone):
    env = {**os.environ, "PYTHONPATH": str(fresh_clone)}
    env.pop("BIOMED_STEP_LOG", None)
    r = subprocess.run([sys.executable, "-m", "scripts.check", "export-hf"], cwd=fresh_clone, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1  # export-hf cannot run yet: a failed step is not timed, nothing is written
    assert not (fresh_clone / "metrics" / "steps.jsonl").exists()
    r = subprocess.run([sys.executable, "-m", "scripts.check", "fetch-transformer"], cwd=fresh_clone, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    (rec,) = read_step_log(fresh_clone / "metrics" / "steps.jsonl")
    assert rec["module"] == "scripts.check" and rec["key"] == step_key("scripts.check", ["fetch-transformer"])
    assert rec["seconds"] == pytest.approx(rec["end"] - rec["start"], abs=0.01) and rec["seconds"] > 0
    # weasel's lock holds the lines as run; a line with other arguments is another call
    lock = {"check": {"script": ["python -m scripts.check fetch-transformer"]},
            "other": {"script": ["python -m scripts.check train"]}}
    times = command_times(lock, read_step_log(fresh_clone / "metrics" / "steps.jsonl"))
    assert times == {"check": {"seconds": rec["seconds"], "finished": rec["end"]},
                     "other": {"seconds": None, "finished": None}}
    # Not for pytest or other programs, and off with BIOMED_STEP_LOG=0
    env["BIOMED_STEP_LOG"] = "0"
    subprocess.run([sys.executable, "-m", "scripts.check", "convert"], cwd=fresh_clone, env=env,
                   capture_output=True, timeout=300)
    assert len(read_step_log(fresh_clone / "metrics" / "steps.jsonl")) == 1


def test_command_times_sum_lines_and_take_the_latest_run(tmp_path):
    log = tmp_path / "steps.jsonl"
    record_step(log, "scripts.a", ["x"], 100.0, 110.0)
    record_step(log, "scripts.b", ["--y", "1"], 110.0, 115.5)
    record_step(log, "scripts.a", ["x"], 200.0, 203.0)  # re-run: the latest counts
    with log.open("a") as f:
        f.write("not json\n")
    lock = {"two": {"script": ["python -m scripts.a x", "python -m scripts.b --y 1"]},
            "shell": {"script": ["echo hi"]}}
    assert script_keys(["echo hi", "python -m scripts.a x"]) == [None, step_key("scripts.a", ["x"])]
    assert command_times(lock, read_step_log(log)) == {
        "two": {"seconds": 8.5, "finished": 203.0},
        "shell": {"seconds": None, "finished": None},
    }
    # Only a hash of the arguments is kept: a database URL's password never reaches the log
    record_step(log, "scripts.convert", ["postgresql://u:s3cret@db/x"], 0.0, 1.0)
    assert "s3cret" not in log.read_text()
