"""project.yml tracks the code and the CRAFT workflow is wired: weasel's lock
re-runs a step when the package code it runs changes (and only then), every
path is defined once, and `weasel run craft` runs end to end on a hand-made
corpus in CRAFT's layout (tests/data/knowtator) with a tiny BERT."""

import json
import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
import srsly
from weasel.cli.run import check_rerun, project_run
from weasel.util import load_project_config

ROOT = Path(__file__).resolve().parent.parent
KNOWTATOR = Path(__file__).parent / "data" / "knowtator"
IGNORE = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")


def copy_project(dest: Path) -> Path:
    """project.yml, configs, scripts and the package code (deps), plus the
    hand-made corpus where `weasel assets` would put CRAFT."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "project.yml", dest / "project.yml")
    for folder in ("configs", "scripts", "components"):
        shutil.copytree(ROOT / folder, dest / folder, ignore=IGNORE)
    shutil.copytree(KNOWTATOR, dest / "assets" / "craft")
    return dest


@contextmanager
def inside(path: Path):
    cwd = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(cwd)


def command(root: Path, name: str, overrides=None):
    config = load_project_config(root, overrides=overrides or {})
    return next(c for c in config["commands"] if c["name"] == name)


NO_MIRROR = {"vars.craft_mirror": "no_mirror_here"}


def test_every_command_runs_its_package_code_as_deps():
    config = load_project_config(ROOT)
    for cmd in config["commands"]:
        deps = cmd.get("deps", [])
        scripts = {part.split()[2] for part in cmd["script"] if part.startswith("python -m scripts.")}
        for module in scripts:
            assert f"scripts/{module.split('.', 1)[1]}.py" in deps, (cmd["name"], module)
        assert any(d.startswith("components/biomed_spancat/") for d in deps), cmd["name"]
        for dep in deps:
            if dep.startswith(("components/", "scripts/", "configs/")):
                assert (ROOT / dep).exists(), (cmd["name"], dep)
        # every command writes something it declares, except push (it uploads) and check (it reports)
        if cmd["name"] not in ("push", "check"):
            assert cmd.get("outputs") or cmd.get("outputs_no_cache"), cmd["name"]


def test_paths_and_keys_are_defined_once():
    config = load_project_config(ROOT, overrides={"vars.version": "9.9.9", "vars.spans_key": "gold"})
    wheel = "packages/en_biomed_spancat-9.9.9/dist/en_biomed_spancat-9.9.9-py3-none-any.whl"
    assert config["vars"]["wheel"] == wheel
    by_name = {c["name"]: c for c in config["commands"]}
    assert by_name["package"]["outputs_no_cache"] == [wheel]
    for name in ("evaluate-package", "stage-hub"):
        assert wheel in by_name[name]["deps"] and wheel in by_name[name]["script"][0]
    assert by_name["craft-package"]["outputs_no_cache"] == ["packages/craft/" + wheel[len("packages/"):]]
    # the spans key reaches every training command
    for name in ("train", "craft-train", "train-cnn", "craft-train-cnn", "train-cpu-gold", "train-cpu-uptrained", "train-cpu-distilled"):
        scripts = [s for s in by_name[name]["script"] if "scripts.train " in s]
        assert scripts and all("--spans-key gold" in s for s in scripts), name
    raw = (ROOT / "project.yml").read_text(encoding="utf8")
    assert raw.count("-py3-none-any.whl") == 1
    assert raw.count("../shared") == 1  # vars.craft_mirror, nowhere else


def test_every_dep_and_output_is_one_path_whatever_the_vars():
    # weasel joins two adjacent "${vars...}" list items into one "a, b" item: a dep
    # that names no file, so the step would never rerun when either changes
    config = load_project_config(ROOT)
    overrides = {f"vars.{name}": f"x/{name}" for name, value in config["vars"].items() if isinstance(value, str) and "${" not in value}
    config = load_project_config(ROOT, overrides=overrides)
    for cmd in config["commands"]:
        for path in cmd.get("deps", []) + cmd.get("outputs", []) + cmd.get("outputs_no_cache", []):
            assert ", " not in path, (cmd["name"], path)


def test_uptrain_reads_the_gold_and_dev_data_it_is_given():
    overrides = {"vars.uptrain_train": "corpus/craft/train.spacy", "vars.uptrain_dev": "corpus/craft/dev.spacy"}
    config = load_project_config(ROOT, overrides=overrides)
    steps = {c["name"]: c for c in config["commands"] if c["name"] in config["workflows"]["uptrain"]}
    for name, cmd in steps.items():
        text = " ".join(cmd["script"])
        assert "corpus/train.spacy" not in text and "corpus/dev.spacy" not in text, name
        for path in ("corpus/craft/train.spacy", "corpus/craft/dev.spacy"):
            assert (path in text) == (path in cmd.get("deps", [])), (name, path)
    trains = ("train-cpu-gold", "train-cpu-uptrained", "teacher-labels")
    assert all("corpus/craft/train.spacy" in steps[name]["deps"] for name in trains)
    devs = ("train-cpu-gold", "train-cpu-uptrained", "train-cpu-distilled", "compare-uptrain")
    assert all("corpus/craft/dev.spacy" in steps[name]["deps"] for name in devs)


def test_lock_reruns_a_step_when_its_code_changes(tmp_path):
    root = copy_project(tmp_path / "project")
    with inside(root):
        project_run(root, "craft-convert", overrides=NO_MIRROR, capture=True)
        cmd = command(root, "craft-convert", NO_MIRROR)
        lock = srsly.read_yaml(root / "project.lock")
        deps = {d["path"]: d["md5"] for d in lock["craft-convert"]["deps"]}
        assert deps["components/biomed_spancat/ingest"] is not None  # the folder is hashed whole
        assert check_rerun(root, cmd) is False  # nothing changed: skipped
        # code another step runs: still skipped
        (root / "components/biomed_spancat/publish/hub/card.py").open("a").write("\n# edited\n")
        assert check_rerun(root, cmd) is False
        # code this step runs: re-run
        reader = root / "components/biomed_spancat/ingest/knowtator.py"
        reader.open("a").write("\n# edited\n")
        assert check_rerun(root, cmd) is True
        before = (root / "corpus/craft/report.json").stat().st_mtime_ns
        project_run(root, "craft-convert", overrides=NO_MIRROR, capture=True)
        assert (root / "corpus/craft/report.json").stat().st_mtime_ns > before
        assert check_rerun(root, cmd) is False


def test_craft_convert_without_mirror_or_corpus_says_what_to_do(tmp_path):
    root = copy_project(tmp_path / "project")
    shutil.rmtree(root / "assets" / "craft")
    with inside(root), pytest.raises(subprocess.SubprocessError) as err:
        project_run(root, "craft-convert", overrides=NO_MIRROR, capture=True)
    text = " ".join(str(err.value).split())
    assert (
        "CRAFT not found: no mirror at no_mirror_here and no corpus at assets/craft (articles/txt/ and "
        "concept-annotation/); run `weasel assets` to fetch it from https://github.com/UCDenver-ccp/CRAFT (v5.0.2)"
    ) in text
    assert not (root / "corpus/craft/train.spacy").exists()


def test_craft_workflow_dry_run_writes_nothing(tmp_path):
    root = copy_project(tmp_path / "project")
    with inside(root):
        project_run(root, "craft", overrides=NO_MIRROR, dry=True)
    written = [p for d in ("corpus", "training", "metrics", "packages") for p in (root / d).rglob("*") if p.is_file()]
    assert written == [] and not (root / "project.lock").exists()


@pytest.mark.slow
def test_craft_workflow_runs_end_to_end_on_a_tiny_corpus(tmp_path, tiny_bert):
    root = copy_project(tmp_path / "project")
    overrides = {
        **NO_MIRROR,
        "vars.transformer": str(tiny_bert),
        "vars.craft_max_steps": 4,
        "vars.craft_eval_frequency": 2,
        "vars.craft_warmup_steps": 1,
        "vars.cnn_max_steps": 4,
        "vars.bio_max_steps": 2,
        "vars.gliner_max_steps": 2,
    }
    with inside(root):
        project_run(root, "craft", overrides=overrides, capture=False)
    config = load_project_config(root, overrides=overrides)
    commands = {c["name"]: c for c in config["commands"]}
    for name in config["workflows"]["craft"]:
        for out in commands[name].get("outputs", []) + commands[name].get("outputs_no_cache", []):
            assert (root / out).exists(), f"{name} did not write {out}"
    report = json.loads((root / "corpus/craft/report.json").read_text())
    assert {s: report["splits"][s]["documents"] for s in ("train", "dev", "test")} == {"train": 2, "dev": 1, "test": 1}
    assert report["spans_dropped"] == {"crosses_paragraph": 1, "discontinuous": 1}
    table = (root / "metrics/craft/results.md").read_text()
    lines = table.splitlines()
    assert lines[0] == "CRAFT test split; trained on CRAFT train, threshold tuned on CRAFT dev (`weasel run craft`)"
    assert [line.split(" | ")[0] for line in lines[4:8]] == [
        "| spancat over the transformer (this project)",
        "| spaCy CNN spancat",
        "| BIO token classification",
        "| GLiNER, its own training",
    ]
    assert lines[-1] == (
        "From `metrics/craft/test.json`, `metrics/craft/baseline-cnn-test.json`, "
        "`metrics/craft/baseline-bio-test.json`, `metrics/craft/baseline-gliner-test.json`."
    )
    # the package built from CRAFT was installed and evaluated on test
    assert json.loads((root / "metrics/craft/package-test.json").read_text())["spans"]["gold"] == 3


def test_results_table_file_names_its_sources(tmp_path):
    import typer
    from typer.testing import CliRunner

    import scripts.results_table as results_script

    metrics = {
        "spans": {"f": 0.8},
        "groups": {"overlapping": {"f": 0.7}, "isolated": {"f": 0.81}},
        "suggester": {"recall": 0.99},
        "training": {"training_seconds": 125},
        "speed": {"words_per_second": 1234.4, "device": "cpu"},
    }
    path = tmp_path / "test.json"
    path.write_text(json.dumps(metrics))
    app = typer.Typer()
    app.command()(results_script.main)
    out = tmp_path / "craft" / "results.md"
    result = CliRunner().invoke(app, [f"ours={path}", "--output", str(out), "--caption", "CRAFT test split"])
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines() == [
        "CRAFT test split",
        "",
        "| pipeline | F | F overlapping | F isolated | recall ceiling | training time | words/s |",
        "|---|---|---|---|---|---|---|",
        "| ours | 80.0 | 70.0 | 81.0 | 99.0 (suggester) | 2.1 min | 1,234 (cpu) |",
        "",
        f"From `{path}`.",
    ]
