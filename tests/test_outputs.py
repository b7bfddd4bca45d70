"""The outputs of a step are one unit: killed runs, concurrent runs, resumed runs."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from biomed_spancat.outputs import (
    HOLD_ENV,
    KILL_ENV,
    OUTPUTS_DIR,
    OutputsBusy,
    OutputsError,
    StepOutputs,
    verify_input,
)

# A step that writes two files and a folder, every byte naming its run.
WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from biomed_spancat.outputs import OutputsError, StepOutputs
    out, run = Path(sys.argv[1]), sys.argv[2]
    declared = [out / "train.spacy", out / "dev.spacy", out / "report.json", out / "model"]
    try:
        with StepOutputs("convert", declared) as unit:
            unit.path(out / "train.spacy").write_text(run * 1000)
            unit.path(out / "dev.spacy").write_text(run * 10)
            unit.path(out / "report.json").write_text(run)
            model = unit.path(out / "model")
            model.mkdir()
            (model / "weights").write_text(run)
    except OutputsError as err:
        print(err, file=sys.stderr)
        sys.exit(1)
    """
)
CHECKPOINTS = ["locked", "staged", "committed", "moved:dev.spacy", "moved:model",
               "moved:report.json", "moved:train.spacy", "published"]


def run_writer(out: Path, run: str, **env):
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(out), run],
        env=dict(os.environ, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def runs_in(out: Path):
    """Which run each output came from (None: missing)."""
    found = {}
    for name in ("train.spacy", "dev.spacy", "report.json"):
        path = out / name
        found[name] = set(path.read_text()) if path.exists() else None
    weights = out / "model" / "weights"
    found["model"] = set(weights.read_text()) if weights.exists() else None
    return found


def test_a_whole_run_publishes_every_output_and_a_manifest(tmp_path):
    proc = run_writer(tmp_path, "A")
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    assert runs_in(tmp_path) == {"train.spacy": {"A"}, "dev.spacy": {"A"}, "report.json": {"A"}, "model": {"A"}}
    assert verify_input(tmp_path / "train.spacy") == "convert"
    assert verify_input(tmp_path / "model" / "weights") == "convert"
    # nothing but the lock and the manifest is left in the hidden folder
    left = sorted(p.suffix for p in (tmp_path / OUTPUTS_DIR).iterdir())
    assert left == [".json", ".lock"]


@pytest.mark.parametrize("point", CHECKPOINTS)
def test_a_run_killed_anywhere_never_leaves_a_trusted_mix(tmp_path, point):
    assert run_writer(tmp_path, "A").wait(timeout=60) == 0
    proc = run_writer(tmp_path, "B", **{KILL_ENV: point})
    assert proc.wait(timeout=60) == -signal.SIGKILL
    # whoever reads next gets one whole run: the old one (killed before the
    # commit point) or the new one (the reader finishes the publication)
    verify_input(tmp_path / "dev.spacy")
    runs = runs_in(tmp_path)
    expected = "A" if point in ("locked", "staged") else "B"
    assert runs == {"train.spacy": {expected}, "dev.spacy": {expected}, "report.json": {expected}, "model": {expected}}
    for name in ("train.spacy", "report.json", "model"):
        verify_input(tmp_path / name)
    # and the next run of the step (resumed) publishes whole and cleans what the killed one left
    assert run_writer(tmp_path, "C").wait(timeout=60) == 0
    assert set().union(*runs_in(tmp_path).values()) == {"C"}
    assert sorted(p.suffix for p in (tmp_path / OUTPUTS_DIR).iterdir()) == [".json", ".lock"]


def test_a_killed_run_does_not_leave_the_lock_stuck(tmp_path):
    proc = run_writer(tmp_path, "A", **{KILL_ENV: "staged"})
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert run_writer(tmp_path, "B").wait(timeout=60) == 0
    assert set().union(*runs_in(tmp_path).values()) == {"B"}


def test_a_second_writer_is_refused_while_the_first_runs(tmp_path):
    flag = tmp_path / "go"
    out = tmp_path / "corpus"
    assert run_writer(out, "A").wait(timeout=60) == 0
    first = run_writer(out, "B", **{HOLD_ENV: f"staged:{flag}"})
    reached = Path(str(flag) + ".reached")
    for _ in range(1200):  # hang guard: the first run reaches its checkpoint
        if reached.exists() or first.poll() is not None:
            break
        time.sleep(0.1)
    assert reached.exists()
    second = run_writer(out, "C")
    assert second.wait(timeout=60) == 1
    err = second.stderr.read()
    assert "is being written by `convert` (pid " in err
    assert f"pid {first.pid}," in err
    assert "refusing a second writer" in err and "a killed run releases the lock by itself" in err
    # a reader is refused too while the first run holds the unit
    with pytest.raises(OutputsBusy, match="is being written by `convert`"):
        verify_input(out / "train.spacy")
    flag.touch()
    assert first.wait(timeout=60) == 0
    assert set().union(*runs_in(out).values()) == {"B"}


# A step that checks an input (as train does with its corpus) and holds it until told to go on.
READER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from unittest import mock
    from biomed_spancat import outputs
    path, flag = Path(sys.argv[1]), Path(sys.argv[2])
    check = outputs._check

    def held(*args):
        check(*args)
        Path(str(flag) + ".reached").touch()
        while not flag.exists():
            time.sleep(0.05)

    with mock.patch.object(outputs, "_check", held):
        print(outputs.verify_input(path))
    """
)


def test_steps_read_one_input_at_once_and_no_writer_replaces_it_meanwhile(tmp_path):
    # two trainings started together on one corpus: both check it, neither is refused
    out = tmp_path / "corpus"
    assert run_writer(out, "A").wait(timeout=60) == 0
    flag = tmp_path / "go"
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(out / "dev.spacy"), str(flag)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        reached = Path(str(flag) + ".reached")
        for _ in range(1200):  # hang guard: the reader is inside its check
            if reached.exists() or reader.poll() is not None:
                break
            time.sleep(0.1)
        assert reached.exists(), reader.stderr.read()
        assert verify_input(out / "train.spacy") == "convert"  # a second reader, meanwhile
        writer = run_writer(out, "B")
        assert writer.wait(timeout=60) == 1
        err = " ".join(writer.stderr.read().split())
        assert "is being read by another run (a step that uses it as input): refusing to replace it under that run" in err
    finally:  # the reader never outlives the test
        flag.touch()
        if reader.poll() is None:
            try:
                reader.wait(timeout=60)
            except subprocess.TimeoutExpired:
                reader.kill()
    assert reader.returncode == 0 and reader.stdout.read().strip() == "convert"
    assert set().union(*runs_in(out).values()) == {"A"}
    # once the readers are done, the writer goes ahead
    assert run_writer(out, "C").wait(timeout=60) == 0
    assert set().union(*runs_in(out).values()) == {"C"}


def test_a_changed_or_truncated_output_is_not_trusted(tmp_path):
    assert run_writer(tmp_path, "A").wait(timeout=60) == 0
    train = tmp_path / "train.spacy"
    train.write_text("A" * 999)
    with pytest.raises(OutputsError, match=r"train.spacy: not the file `convert` published .*run `convert` again"):
        verify_input(train)
    (tmp_path / "model" / "weights").write_text("B")
    with pytest.raises(OutputsError, match=r"weights differs"):
        verify_input(tmp_path / "model")
    (tmp_path / "dev.spacy").unlink()
    with pytest.raises(OutputsError, match=r"dev.spacy: missing, though `convert` published it"):
        verify_input(tmp_path / "dev.spacy")


def test_a_file_no_manifest_lists_is_not_checked(tmp_path):
    own = tmp_path / "mine.spacy"
    own.write_text("x")
    assert verify_input(own) is None


def test_declared_outputs_not_written_are_removed_and_errors_keep_the_old_ones(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    with StepOutputs("step", [a, b]) as unit:
        unit.path(a).write_text("1")
        unit.path(b).write_text("1")
    with pytest.raises(RuntimeError):
        with StepOutputs("step", [a, b]) as unit:
            unit.path(a).write_text("2")
            raise RuntimeError("boom")
    assert a.read_text() == "1" and b.read_text() == "1"
    with StepOutputs("step", [a, b]) as unit:
        unit.path(a).write_text("3")
    assert a.read_text() == "3" and not b.exists()  # b would be stale beside the new a
    assert verify_input(a) == "step"
    with pytest.raises(RuntimeError):
        with StepOutputs("step", [a, b], withdraw_on_error=True) as unit:
            raise RuntimeError("boom")
    assert not a.exists() and verify_input(a) is None


def test_stale_temporary_files_of_older_writers_are_cleaned(tmp_path):
    stale = tmp_path / ".train.spacy.abc123.tmp"
    stale.write_bytes(b"x" * 1000)
    (tmp_path / "metrics.json.tmp").write_text("{")
    with StepOutputs("convert", [tmp_path / "train.spacy", tmp_path / "metrics.json"]) as unit:
        unit.path(tmp_path / "train.spacy").write_text("new")
    assert not stale.exists() and not (tmp_path / "metrics.json.tmp").exists()


def test_an_output_folder_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "corpus").write_text("not a folder")
    with pytest.raises(OutputsError, match="corpus: is a file, not a folder to write into"):
        with StepOutputs("convert", [tmp_path / "corpus" / "train.spacy"]):
            pass


def test_nothing_written_is_an_error_not_an_empty_success(tmp_path):
    with pytest.raises(OutputsError, match="wrote none of its outputs"):
        with StepOutputs("evaluate", [tmp_path / "dev.json"]):
            pass


# --- convert: the real CLI, killed or doubled --------------------------------------------
ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "ingest"


def run_convert(source: str, out: Path, **env):
    return subprocess.Popen(
        [sys.executable, "-m", "scripts.convert", str(DATA / source), str(out), "--eval-split", "0.5"],
        cwd=ROOT, env=dict(os.environ, **env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def corpus_state(out: Path):
    """(source named in report.json, docs per split in the DocBins, docs per split in the report)."""
    from spacy.tokens import DocBin

    report = json.loads((out / "report.json").read_text())
    counted = {split: len(DocBin().from_disk(out / f"{split}.spacy")) for split in ("train", "dev")}
    reported = {split: report["splits"][split]["docs"] for split in ("train", "dev")}
    lines = (out / "rejections.jsonl").read_text().count("\n")
    return report["sources"], counted, reported, lines, report["rejected"]


@pytest.mark.parametrize("point", ["staged", "committed", "moved:train.spacy", "moved:report.json", "published"])
def test_convert_killed_at_any_stage_leaves_one_whole_run(tmp_path, point):
    out = tmp_path / "corpus"
    assert run_convert("overlaps.jsonl", out).wait(timeout=120) == 0
    old = corpus_state(out)
    proc = run_convert("annotators.jsonl", out, **{KILL_ENV: point})
    assert proc.wait(timeout=120) == -signal.SIGKILL
    assert verify_input(out / "dev.spacy") == "convert"  # the next step's check
    sources, counted, reported, lines, rejected = corpus_state(out)
    assert counted == reported and lines == rejected  # DocBins, report and rejections agree
    if point == "staged":
        assert (sources, counted) == old[:2]
    else:
        assert "annotators.jsonl" in json.dumps(sources)
    # the resumed run publishes whole and removes what the killed one left
    assert run_convert("annotators.jsonl", out).wait(timeout=120) == 0
    assert "annotators.jsonl" in json.dumps(corpus_state(out)[0])
    assert sorted(p.name for p in out.iterdir()) == [".outputs", "dev.spacy", "rejections.jsonl", "report.json", "train.spacy"]
    assert sorted(p.suffix for p in (out / OUTPUTS_DIR).iterdir()) == [".json", ".lock"]


def test_two_converts_into_one_folder_one_is_refused(tmp_path):
    out, flag = tmp_path / "corpus", tmp_path / "go"
    first = run_convert("overlaps.jsonl", out, **{HOLD_ENV: f"staged:{flag}"})
    reached = Path(str(flag) + ".reached")
    for _ in range(1200):  # hang guard
        if reached.exists() or first.poll() is not None:
            break
        time.sleep(0.1)
    assert reached.exists()
    second = run_convert("annotators.jsonl", out)
    assert second.wait(timeout=120) == 1
    text = second.stdout.read()
    assert "convert failed" in text and "Traceback" not in text
    assert f"is being written by `convert` (pid {first.pid}," in text
    flag.touch()
    assert first.wait(timeout=120) == 0
    sources, counted, reported, lines, rejected = corpus_state(out)
    assert "overlaps.jsonl" in json.dumps(sources) and counted == reported


def test_the_next_step_refuses_a_corpus_file_changed_after_convert(tmp_path):
    out = tmp_path / "corpus"
    assert run_convert("overlaps.jsonl", out).wait(timeout=120) == 0
    with (out / "train.spacy").open("ab") as f:
        f.write(b"\0")
    r = subprocess.run(
        [sys.executable, "-m", "scripts.fit_suggester", str(out / "train.spacy"), "configs/spancat.cfg",
         str(tmp_path / "config.cfg")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    text = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 1 and "Traceback" not in text
    assert "fit-suggester: " in text and "train.spacy: not the file `convert` published at" in text
    assert not (tmp_path / "config.cfg").exists()


def test_an_output_of_another_kind_is_replaced_whole(tmp_path):
    out = tmp_path / "model"
    out.write_text("a file where the folder goes")
    with StepOutputs("tune-threshold", [out]) as unit:
        unit.path(out).mkdir()
        (unit.path(out) / "config.cfg").write_text("x")
    assert (out / "config.cfg").read_text() == "x"
    with StepOutputs("tune-threshold", [out]) as unit:
        unit.path(out).write_text("a file again")
    assert out.read_text() == "a file again"


def test_convert_into_a_path_that_is_a_file_is_refused(tmp_path):
    out = tmp_path / "corpus"
    out.write_text("a file")
    proc = run_convert("overlaps.jsonl", out)
    assert proc.wait(timeout=120) == 1
    text = " ".join(proc.stdout.read().split())
    assert "convert failed" in text and "Traceback" not in text
    assert f"{out}: is a file, not a folder to write into" in text
    assert out.read_text() == "a file"
