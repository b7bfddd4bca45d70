"""The helpers every step shares (biomed_spancat.util): one loader, one
device switch, one DocBin reader, one JSON writer, one folder writer, one percentage format,
each with one exception type for its failure."""
import importlib.util
import json

import pytest
import spacy

from biomed_spancat.training.gpu import GpuUnavailable
from biomed_spancat.util import (
    DocBinError,
    PipelineError,
    find_spancat,
    load_pipeline,
    pct,
    read_docs,
    use_device,
    write_dir,
    write_json,
)


def test_find_spancat_errors_name_what_is_there():
    nlp = spacy.blank("en")
    with pytest.raises(
        PipelineError, match=r"no span categorizer writing doc.spans\['sc'\]; span categorizers: none"
    ):
        find_spancat(nlp, "sc")
    nlp.add_pipe("spancat", config={"spans_key": "other"})
    with pytest.raises(PipelineError, match=r"span categorizers: spancat \(key 'other'\)"):
        find_spancat(nlp, "sc")
    assert find_spancat(nlp, "other")[0] == "spancat"
    nlp.add_pipe("spancat", name="spancat2", config={"spans_key": "other"})
    with pytest.raises(PipelineError, match="several span categorizers"):
        find_spancat(nlp, "other")


def test_load_pipeline_errors(tmp_path):
    with pytest.raises(
        PipelineError, match="no_such_pipeline_xyz: neither a pipeline directory nor an installed package"
    ):
        load_pipeline("no_such_pipeline_xyz")
    with pytest.raises(PipelineError, match="not a spaCy pipeline directory"):
        load_pipeline(tmp_path)


def test_load_pipeline_accepts_an_installed_package_name(monkeypatch):
    # The wheel is evaluated by name (evaluate-package): the name goes to spacy.load.
    loaded = []
    monkeypatch.setattr(spacy.util, "is_package", lambda name: name == "en_biomed_spancat")
    monkeypatch.setattr(spacy, "load", lambda name, config: loaded.append((name, config)) or "NLP")
    assert load_pipeline("en_biomed_spancat") == "NLP"
    # config overrides go through to spacy.load (evaluate --cpu-precision)
    assert load_pipeline("en_biomed_spancat", {"components.transformer.model.cpu_precision": "float32"}) == "NLP"
    assert loaded == [
        ("en_biomed_spancat", {}),
        ("en_biomed_spancat", {"components.transformer.model.cpu_precision": "float32"}),
    ]


def test_read_docs_names_a_bad_file(tmp_path):
    bad = tmp_path / "dev.spacy"
    bad.write_bytes(b"not a docbin")
    with pytest.raises(DocBinError, match=r"dev\.spacy: not a readable \.spacy DocBin"):
        read_docs(bad)
    with pytest.raises(DocBinError, match=r"missing\.spacy: no such file"):
        read_docs(tmp_path / "missing.spacy")


def test_use_device_cpu_and_gpu_without_gpu():
    assert use_device(-1) == "cpu"
    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("a GPU stack is installed; the no-GPU message cannot be checked")
    with pytest.raises(GpuUnavailable, match="--gpu-id 0"):
        use_device(0)


def test_write_json_is_atomic_and_creates_folders(tmp_path):
    path = write_json({"a": "é", "b": [1, 2]}, tmp_path / "deep" / "x.json")
    assert path == tmp_path / "deep" / "x.json"
    assert path.read_text(encoding="utf8") == '{\n  "a": "é",\n  "b": [\n    1,\n    2\n  ]\n}\n'
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]  # no temp file left behind
    assert json.loads(path.read_text(encoding="utf8")) == {"a": "é", "b": [1, 2]}


def test_write_dir_swaps_in_a_whole_folder_or_leaves_the_old_one(tmp_path):
    out = tmp_path / "deep" / "out"

    def files(names):
        return lambda folder: [(folder / n).write_text(n) for n in names]

    assert write_dir(out, files(["a", "b"])) == out
    assert sorted(p.name for p in out.iterdir()) == ["a", "b"]
    assert out.stat().st_mode & 0o777 == 0o755
    write_dir(out, files(["c"]))
    assert [p.name for p in out.iterdir()] == ["c"]  # nothing stale survives

    def fails(folder):
        (folder / "half").write_text("x")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_dir(out, fails)
    assert [p.name for p in out.iterdir()] == ["c"] and (out / "c").read_text() == "c"
    assert [p.name for p in out.parent.iterdir()] == ["out"]  # no temporary folder left


@pytest.mark.parametrize("share,digits,expected", [(0.7142, 1, "71.4"), (1.0, 1, "100.0"), (0.5, 0, "50"), (None, 1, "—")])
def test_pct(share, digits, expected):
    assert pct(share, digits) == expected


def test_a_damaged_pipeline_is_a_pipeline_error(tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("spancat").add_label("GENE")
    nlp.initialize()
    nlp.to_disk(tmp_path / "p")
    (tmp_path / "p" / "spancat" / "model").write_bytes(b"\x00garbage")
    with pytest.raises(PipelineError, match=r"spancat/model \(component 'spancat'\): damaged, the pipeline cannot be loaded"):
        load_pipeline(tmp_path / "p")
