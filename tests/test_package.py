"""package, evaluate-package, stage-hub: a wheel from a clean folder, checked
against the model it claims to be, and bad input refused before anything is written."""
import json
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import spacy
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example
from thinc.api import Config, fix_random_seed

from biomed_spancat.outputs import KILL_ENV, tree_digest
from biomed_spancat.publish.packaging import MODEL_HASH_KEY, SHIPPED_MODULES, shipped_code_paths, wheel_contents

ROOT = Path(__file__).resolve().parent.parent
WHEEL = "en_biomed_spancat-0.1.0-py3-none-any.whl"
CONFIG = """
[nlp]
lang = "en"
pipeline = ["tok2vec", "spancat"]

[components]

[components.tok2vec]
factory = "tok2vec"

[components.tok2vec.model]
@architectures = "spacy.HashEmbedCNN.v2"
width = 16
depth = 1
embed_size = 100
window_size = 1
maxout_pieces = 2
subword_features = false
pretrained_vectors = null

[components.spancat]
factory = "spancat"
spans_key = "sc"
threshold = 0.5

[components.spancat.suggester]
@misc = "spacy.ngram_suggester.v1"
sizes = [1, 2]

[components.spancat.model]
@architectures = "spacy.SpanCategorizer.v1"

[components.spancat.model.reducer]
@layers = "spacy.mean_max_reducer.v1"
hidden_size = 16

[components.spancat.model.scorer]
@layers = "spacy.LinearLogistic.v1"

[components.spancat.model.tok2vec]
@architectures = "spacy.Tok2VecListener.v1"
width = 16
upstream = "*"
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A folder laid out as the project's: training/model-tuned, corpus/dev.spacy, source.json."""
    fix_random_seed(0)
    root = tmp_path_factory.mktemp("project")
    nlp = spacy.util.load_model_from_config(Config().from_str(CONFIG), auto_fill=True)
    docs = []
    for words, spans in [("Pax6 binds DNA".split(), [(0, 1, "GENE")]), ("the Sox9 gene".split(), [(1, 3, "GENE")])]:
        doc = Doc(nlp.vocab, words=words)
        doc.spans["sc"] = [Span(doc, s, e, label=lab) for s, e, lab in spans]
        docs.append(doc)
    nlp.initialize(lambda: [Example(Doc(nlp.vocab, words=[t.text for t in d]), d) for d in docs])
    (root / "training").mkdir()
    nlp.to_disk(root / "training" / "model-tuned")
    (root / "corpus").mkdir()
    DocBin(docs=docs).to_disk(root / "corpus" / "dev.spacy")
    source = {"requested": "x/BiomedBERT", "used": "x/stand-in", "stand_in": True, "license": "apache-2.0"}
    (root / "source.json").write_text(json.dumps(source))
    return root


def cli(root: Path, module: str, *args: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", f"scripts.{module}", *args], cwd=root, capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT), **env), timeout=600,
    )


def package(root: Path, *extra: str, **env) -> subprocess.CompletedProcess:
    return cli(root, "package", "training/model-tuned", "packages", "--transformer-source", "source.json", *extra, **env)


def said(result: subprocess.CompletedProcess) -> str:
    return " ".join((result.stdout + result.stderr).split())


def wheel_of(root: Path) -> Path:
    return root / "packages" / "en_biomed_spancat-0.1.0" / "dist" / WHEEL


def set_threshold(root: Path, value: float) -> None:
    cfg = root / "training" / "model-tuned" / "config.cfg"
    text = cfg.read_text()
    cfg.write_text("\n".join(f"threshold = {value}" if line.startswith("threshold = ") else line for line in text.splitlines()) + "\n")


@pytest.mark.parametrize("name", SHIPPED_MODULES)
def test_each_shipped_module_imports_on_its_own_as_spacy_package_does(name):
    """`spacy package --code` imports every code file alone, outside its package:
    a relative import at a module's top fails there (and only there)."""
    path = next(p for p in shipped_code_paths() if p.name == name)
    module = spacy.util.import_file(f"standalone_{path.stem}", path)
    assert module.__file__ == str(path)


def test_the_wheel_is_built_from_a_clean_folder_and_records_its_model(project):
    leftover = project / "packages" / "en_biomed_spancat-0.1.0" / "build" / "lib" / "en_biomed_spancat" / "leftover.py"
    leftover.parent.mkdir(parents=True)
    leftover.write_text("SECRET = 'from an older build'\n")
    result = package(project)
    assert result.returncode == 0, said(result)
    wheel = wheel_of(project)
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    assert not any("leftover" in n for n in names)
    assert wheel_contents(wheel)[0][MODEL_HASH_KEY] == tree_digest(project / "training" / "model-tuned")
    assert not leftover.exists()  # the package folder is the new build, whole


def test_a_stale_wheel_is_refused_by_evaluate_package_and_stage_hub(project):
    assert package(project).returncode == 0
    set_threshold(project, 0.3)  # a new model-tuned...
    killed = package(project, **{KILL_ENV: "staged"})  # ...whose package run is killed
    assert killed.returncode == -signal.SIGKILL
    assert wheel_of(project).exists()  # the old build, whole, still published
    ev = cli(project, "evaluate_package", str(wheel_of(project).relative_to(project)), "corpus/dev.spacy",
             "--output", "metrics/package.json", "--model", "training/model-tuned")
    assert ev.returncode == 1
    assert "evaluate-package: " in said(ev) and "built from another model than training/model-tuned (stale" in said(ev)
    assert "Traceback" not in said(ev) and not (project / "metrics" / "package.json").exists()
    metrics = project / "m.json"
    metrics.write_text("{}")
    st = cli(project, "stage_hub", str(wheel_of(project).relative_to(project)), "hub/en_biomed_spancat",
             "--metrics", str(metrics), "--namespace", "alice", "--repo", "r", "--license", "mit",
             "--model", "training/model-tuned")
    assert st.returncode == 1 and "stage-hub: " in said(st) and "(stale" in said(st)
    assert not (project / "hub").exists()
    set_threshold(project, 0.5)


def test_a_package_run_killed_after_its_commit_point_is_finished_by_the_next_check(project):
    from biomed_spancat.publish.packaging import check_wheel

    assert package(project).returncode == 0
    set_threshold(project, 0.35)
    try:
        killed = package(project, **{KILL_ENV: "committed"})  # whole new build, not yet in place
        assert killed.returncode == -signal.SIGKILL
        assert list((project / "packages" / ".outputs").glob("*.commit"))
        # the next step's check moves the new build into place, then finds it is the model's
        meta = check_wheel(wheel_of(project), project / "training" / "model-tuned")
        assert meta[MODEL_HASH_KEY] == tree_digest(project / "training" / "model-tuned")
        assert not list((project / "packages" / ".outputs").glob("*.commit"))
    finally:
        set_threshold(project, 0.5)


def test_a_failed_build_leaves_no_wheel_at_the_published_path(project):
    assert package(project).returncode == 0 and wheel_of(project).exists()
    cfg = project / "training" / "model-tuned" / "config.cfg"
    good = cfg.read_text()
    cfg.write_text(good.replace("[components.spancat]", "[components.spancat", 1))
    try:
        failed = package(project)
    finally:
        cfg.write_text(good)
    assert failed.returncode == 1
    assert "package: `spacy package` failed (exit 1); its messages are above" in said(failed)
    assert not wheel_of(project).exists() and not wheel_of(project).parent.parent.exists()


def test_a_changed_wheel_is_refused(project):
    assert package(project).returncode == 0
    wheel = wheel_of(project)
    with wheel.open("ab") as f:
        f.write(b"\0")
    ev = cli(project, "evaluate_package", str(wheel.relative_to(project)), "corpus/dev.spacy",
             "--output", "metrics/package.json")
    assert ev.returncode == 1
    assert f"{WHEEL}: not the file `package` published" in said(ev) and "run `package` again" in said(ev)


def test_evaluate_package_checks_installs_and_records_the_wheel(project, tmp_path):
    assert package(project).returncode == 0
    wheel = str(wheel_of(project).relative_to(project))
    install = str(tmp_path / "installed")
    ev = cli(project, "evaluate_package", wheel, "corpus/dev.spacy", "--output", "metrics/package.json",
             "--model", "training/model-tuned", "--install-dir", install)
    assert ev.returncode == 0, said(ev)
    metrics = json.loads((project / "metrics" / "package.json").read_text())
    assert metrics["wheel"][MODEL_HASH_KEY] == tree_digest(project / "training" / "model-tuned")
    # a failure of the evaluation child: its message, then one line of ours, no traceback of ours
    (project / "corpus" / "bad.spacy").write_text("not a docbin")
    bad = cli(project, "evaluate_package", wheel, "corpus/bad.spacy", "--output", "metrics/bad.json",
              "--install-dir", install)
    assert bad.returncode == 1
    text = said(bad)
    assert "bad.spacy: not a readable .spacy DocBin" in text
    assert "evaluate-package: evaluating the installed en_biomed_spancat failed (exit 1; its message is above)" in text
    assert "Traceback" not in text and "CalledProcessError" not in text
    # stage-hub takes only metrics of this very wheel
    other = project / "metrics" / "other.json"
    other.write_text(json.dumps(dict(metrics, wheel=dict(metrics["wheel"], sha256="0" * 64))))
    st = cli(project, "stage_hub", wheel, "hub/en_biomed_spancat", "--metrics", str(other), "--namespace", "alice",
             "--repo", "r", "--license", "mit", "--model", "training/model-tuned")
    assert st.returncode == 1 and "other.json: scores another build of" in said(st)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--name", "bad name/../x"], "package: --name 'bad name/../x': a package name is letters, digits and underscores"),
        (["--name", "../x"], "package: --name '../x': a package name is letters"),
        (["--version", "not-a-version"], "package: --version 'not-a-version': not a version (PEP 440, e.g. 0.1.0)"),
        (["--version", "01.0"], "package: --version '01.0': write it as '1.0'"),
    ],
)
def test_bad_names_and_versions_are_refused_before_anything_is_written(tmp_path, project, args, message):
    root = tmp_path / "p"
    (root / "training").mkdir(parents=True)
    os.symlink(project / "training" / "model-tuned", root / "training" / "model-tuned")
    (root / "source.json").write_text((project / "source.json").read_text())
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    result = package(root, *args)
    assert result.returncode == 1
    assert message in said(result) and "Traceback" not in said(result)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_an_output_path_that_is_a_file_is_refused(project, tmp_path):
    out = tmp_path / "packages"
    out.write_text("a file")
    result = cli(project, "package", "training/model-tuned", str(out), "--transformer-source", "source.json")
    assert result.returncode == 1
    assert f"package: {out}: is a file; the output must be a folder" in said(result)
    assert "Traceback" not in said(result)


# --- evaluate, tune-threshold, preannotate: whole outputs, nothing reported on nothing -------------


def test_tune_threshold_publishes_model_and_record_as_one_unit(project):
    args = ["training/model-tuned", "corpus/dev.spacy", "training/model-t2", "--output", "metrics/t2.json",
            "--n-trials", "3"]
    assert cli(project, "tune_threshold", *args).returncode == 0
    killed = cli(project, "tune_threshold", *args[:-2], "--n-trials", "5", **{KILL_ENV: "moved:training/model-t2"})
    assert killed.returncode == -signal.SIGKILL
    # the tuned model is new, its record not yet: the next step finishes the publication first
    ev = cli(project, "evaluate", "training/model-t2", "corpus/dev.spacy", "--output", "metrics/e.json")
    assert ev.returncode == 0, said(ev)
    record = json.loads((project / "metrics" / "t2.json").read_text())
    assert len(record["trials"]) == 5 and record["output"] == "training/model-t2"
    cfg = Config().from_disk(project / "training" / "model-t2" / "config.cfg")
    assert cfg["components"]["spancat"]["threshold"] == record["threshold"]
    assert not list(project.glob(".outputs/*.commit")) and not list(project.glob(".outputs/*.tmp-*"))


def test_evaluate_refuses_an_empty_docbin_and_data_without_gold_spans(project):
    DocBin().to_disk(project / "corpus" / "empty.spacy")
    r = cli(project, "evaluate", "training/model-tuned", "corpus/empty.spacy", "--output", "metrics/empty.json")
    assert r.returncode == 1
    assert "evaluate: corpus/empty.spacy: holds no documents: nothing to evaluate" in said(r)
    nlp = spacy.blank("en")
    DocBin(docs=[nlp("no spans here")]).to_disk(project / "corpus" / "nospans.spacy")
    r = cli(project, "evaluate", "training/model-tuned", "corpus/nospans.spacy", "--output", "metrics/none.json",
            "--report", "metrics/none.html")
    assert r.returncode == 1
    assert "evaluate: corpus/nospans.spacy: no gold spans under doc.spans['sc'] in 1 documents: nothing to score" in said(r)
    assert "Traceback" not in said(r)
    assert not (project / "metrics" / "empty.json").exists() and not (project / "metrics" / "none.html").exists()
    r = cli(project, "tune_threshold", "training/model-tuned", "corpus/empty.spacy", "training/x",
            "--output", "metrics/x.json")
    assert r.returncode == 1 and "tune-threshold: corpus/empty.spacy: holds no documents" in said(r)
    assert not (project / "training" / "x").exists()


@pytest.mark.parametrize("content,message", [
    (b"", "nothing to pre-annotate in {src}: they hold no text"),
    (b"\x89PNG\xff\x00\n\x97\xff\x00\x98\n", "nothing to pre-annotate in {src}: 2 texts read, all rejected (e.g. {src}:1: bad_encoding"),
])
def test_preannotate_refuses_input_with_nothing_usable(project, tmp_path, content, message):
    src = tmp_path / "input.txt"
    src.write_bytes(content)
    out = tmp_path / "out"
    r = cli(project, "preannotate", "training/model-tuned", str(src), "--review", str(out / "review.jsonl"),
            "--silver", str(out / "silver.spacy"), "--report", str(out / "report.json"))
    assert r.returncode == 1
    assert "preannotate failed" in said(r) and message.format(src=src) in said(r)
    assert "✔" not in said(r) and "Traceback" not in said(r)
    assert not (out / "review.jsonl").exists() and not (out / "silver.spacy").exists()


def test_a_damaged_model_file_is_named_with_its_component(project, tmp_path):
    import shutil

    bad = tmp_path / "model"
    shutil.copytree(project / "training" / "model-tuned", bad)
    with (bad / "spancat" / "model").open("ab") as f:
        f.write(b"junk")
    r = cli(project, "evaluate", str(bad), "corpus/dev.spacy", "--output", str(tmp_path / "m.json"))
    assert r.returncode == 1
    assert (f"evaluate: {bad}/spancat/model (component 'spancat'): damaged, the pipeline cannot be loaded "
            "(ExtraData: unpack(b) received extra data.)") in said(r)
    src = tmp_path / "t.txt"
    src.write_text("Pax6 binds DNA.\n")
    r = cli(project, "preannotate", str(bad), str(src), "--review", str(tmp_path / "r.jsonl"),
            "--silver", str(tmp_path / "s.spacy"), "--report", str(tmp_path / "rep.json"))
    assert r.returncode == 1 and f"{bad}/spancat/model (component 'spancat'): damaged" in said(r)
    assert "Traceback" not in said(r)
