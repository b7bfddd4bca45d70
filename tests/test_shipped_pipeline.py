"""The shipped pipeline (configs/spancat.cfg) in a user's hands: nlp.pipe(texts, n_process=2)
with the fork and the spawn start method, sentences that leave the spans as they are, and
the wheel's entry points (components, displaCy colours).

Each multiprocess run is a subprocess with a timeout: a hang fails the test (and its
whole process group is killed) instead of hanging the suite.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import spacy
from spacy.training import Example

from biomed_spancat.pipeline.architecture import WORKER_THREADS_ENV, worker_threads

from conftest import ROOT, TINY_TEXTS

HANG_GUARD_S = 300

PIPE_SCRIPT = """
import json, multiprocessing, sys
if __name__ == "__main__":
    method, model, out = sys.argv[1:4]
    multiprocessing.set_start_method(method, force=True)
    import spacy
    nlp = spacy.load(model)
    texts = {texts!r} * 4

    def view(doc):
        group = doc.spans["sc"]
        return {{
            "spans": [[s.start, s.end, s.label_, round(float(x), 4)] for s, x in zip(group, group.attrs["scores"])],
            "ents": [[e.start, e.end, e.label_] for e in doc.ents],
            "sents": [[s.start, s.end] for s in doc.sents],
        }}

    one = [view(d) for d in nlp.pipe(texts, batch_size=4)]
    two = [view(d) for d in nlp.pipe(texts, batch_size=4, n_process=2)]
    with open(out, "w") as f:
        json.dump({{"one": one, "two": two}}, f)
"""

ORPHAN_SCRIPT = """
import multiprocessing, sys, time
if __name__ == "__main__":
    method, model = sys.argv[1:3]
    multiprocessing.set_start_method(method, force=True)
    import spacy
    nlp = spacy.load(model)

    def endless():
        while True:
            yield "BMP4 regulates limb patterning in mice."

    for doc in nlp.pipe(endless(), batch_size=2, n_process=2):
        print(" ".join(str(p.pid) for p in multiprocessing.active_children()), flush=True)
        time.sleep(600)
"""


@pytest.fixture(scope="module")
def shipped_pipeline(tiny_bert, tmp_path_factory) -> Path:
    """configs/spancat.cfg over the tiny BERT, initialised (threshold 0, so every doc gets spans), on disk."""
    config = spacy.util.load_config(
        ROOT / "configs" / "spancat.cfg",
        overrides={"paths.transformer": str(tiny_bert), "components.spancat.threshold": 0.0,
                   "components.transformer.model.window": 8, "components.transformer.model.stride": 6},
        interpolate=True,
    )
    nlp = spacy.util.load_model_from_config(config, auto_fill=True)
    examples = []
    for text in TINY_TEXTS:
        doc = nlp.make_doc(text)
        examples.append(Example.from_dict(doc, {"spans": {"sc": [(0, len(text.split()[0]), "GGP")]}}))
    nlp.initialize(lambda: examples)
    path = tmp_path_factory.mktemp("mp") / "pipeline"
    nlp.to_disk(path)
    return path


def _run_guarded(cmd, timeout, **kwargs):
    """Run `cmd` in its own process group; on timeout kill the group (workers too) and fail."""
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{' '.join(map(str, cmd))} hung: no result after {timeout} s")
    return proc.returncode, out, err


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_two_processes_give_the_single_process_results(shipped_pipeline, tmp_path, method):
    script = tmp_path / "pipe_mp.py"
    script.write_text(PIPE_SCRIPT.format(texts=TINY_TEXTS), encoding="utf8")
    out = tmp_path / "out.json"
    rc, stdout, stderr = _run_guarded([sys.executable, str(script), method, str(shipped_pipeline), str(out)], HANG_GUARD_S)
    assert rc == 0, stderr[-3000:]
    result = json.loads(out.read_text())
    assert len(result["two"]) == len(TINY_TEXTS) * 4
    assert result["two"] == result["one"]
    # every doc has spans, entities from them, and sentences
    assert all(doc["spans"] and doc["ents"] and doc["sents"] for doc in result["one"])


@pytest.mark.slow
def test_bad_worker_threads_setting_reaches_the_caller(shipped_pipeline, tmp_path):
    script = tmp_path / "pipe_mp.py"
    script.write_text(PIPE_SCRIPT.format(texts=TINY_TEXTS), encoding="utf8")
    env = {**os.environ, WORKER_THREADS_ENV: "two"}
    rc, _, stderr = _run_guarded([sys.executable, str(script), "spawn", str(shipped_pipeline), str(tmp_path / "o.json")],
                                 HANG_GUARD_S, env=env)
    assert rc != 0
    assert f"{WORKER_THREADS_ENV} must be a positive integer, got 'two'" in stderr


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie is dead
    except FileNotFoundError:
        return True


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux only")
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_workers_end_when_the_parent_is_killed(shipped_pipeline, tmp_path, method):
    script = tmp_path / "orphans.py"
    script.write_text(ORPHAN_SCRIPT, encoding="utf8")
    proc = subprocess.Popen([sys.executable, str(script), method, str(shipped_pipeline)], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = ""
        deadline = time.monotonic() + HANG_GUARD_S
        while not line and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline().strip()
        workers = [int(p) for p in line.split()]
        assert workers, "the pipeline gave no document (hung or failed)"
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(_gone(p) for p in workers):
            time.sleep(0.5)
        assert [p for p in workers if not _gone(p)] == []
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize(
    "forked,env,expected",
    [(True, {}, 1), (False, {}, 1), (False, {WORKER_THREADS_ENV: "4"}, 4), (False, {WORKER_THREADS_ENV: " 2 "}, 2)],
)
def test_worker_threads(forked, env, expected):
    assert worker_threads(forked, env) == expected


def test_forked_worker_keeps_one_thread_and_says_why():
    with pytest.warns(UserWarning, match=f"{WORKER_THREADS_ENV}=4 ignored in a forked worker"):
        assert worker_threads(True, {WORKER_THREADS_ENV: "4"}) == 1


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_bad_worker_threads_value_says_what_is_wrong(value):
    with pytest.raises(ValueError, match=f"{WORKER_THREADS_ENV} must be a positive integer, got '{value}'"):
        worker_threads(False, {WORKER_THREADS_ENV: value})


def test_the_transformer_pickles(shipped_pipeline):
    """spawn sends the pipeline to its workers by pickling: no closures in the model."""
    import pickle

    nlp = spacy.load(shipped_pipeline)
    model = nlp.get_pipe("transformer").model
    clone = pickle.loads(pickle.dumps(model))
    assert clone._func.func.__name__ == "_precision_forward"


# --------------------------------------------------------------------------- sentences and spans


def _spans(doc):
    group = doc.spans["sc"]
    return [(s.start, s.end, s.label_, round(float(x), 5)) for s, x in zip(group, group.attrs["scores"])]


def test_sentences_change_no_span_prediction(shipped_pipeline):
    """The transformer's windows come from biomed.BiomedBERT.v1's strided token windows, never
    from doc.sents: sentence boundaries set before the transformer change no span or score."""
    text = " ".join(TINY_TEXTS) + " Growth of E. coli (Fig. 2) was ca. 30 min, as Smith et al. showed."
    nlp = spacy.load(shipped_pipeline)
    assert nlp.pipe_names == ["transformer", "spancat", "sentencizer", "spans_to_ents"]
    shipped = nlp(text)
    assert len(list(shipped.sents)) == 6
    before = spacy.load(shipped_pipeline, exclude=["sentencizer"])
    before.add_pipe("biomed_sentencizer_v1", name="sentencizer", first=True)
    early = before(text)
    assert len(list(early.sents)) == 6
    without = spacy.load(shipped_pipeline, exclude=["sentencizer", "spans_to_ents"])(text)
    assert _spans(shipped) == _spans(early) == _spans(without)
    assert _spans(shipped)
    model = nlp.get_pipe("transformer").model
    assert [(w.start, w.end) for w in model.attrs["get_spans"]([shipped])[0]][:2] == [(0, 8), (6, 14)]


# --------------------------------------------------------------------------- the wheel


@pytest.mark.slow
def test_wheel_declares_components_and_displacy_colours(shipped_pipeline, tmp_path):
    from biomed_spancat.publish.packaging import build_meta, package_pipeline

    source = {"requested": "tiny", "used": "tiny-bert", "stand_in": True, "note": "test"}
    meta = build_meta("biomed_spancat", "0.0.1", source)
    wheel = package_pipeline(shipped_pipeline, tmp_path / "packages", meta)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True)
    check = (
        "import importlib.metadata as md, spacy\n"
        "from spacy import displacy\n"
        "dist = md.distribution('en_biomed_spancat')\n"
        "eps = {(e.group, e.name): e.value for e in dist.entry_points}\n"
        "print(sorted(eps.items()))\n"
        "colors = md.EntryPoint(name='c', group='g', value=eps[('spacy_displacy_colors', 'biomed.label_colors.v1')]).load()\n"
        "print(colors.__module__, colors()['UBERON'])\n"
        "nlp = spacy.load('en_biomed_spancat')\n"
        "doc = nlp('Growth of E. coli (Fig. 2) was fast. BMP4 regulates limb patterning in mice.')\n"
        "print(nlp.pipe_names, len(list(doc.sents)), len(doc.ents) > 0)\n"
        "print('GGP' in [e.label_ for e in doc.ents], '#fdd8a5' in displacy.render(doc, style='ent'))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert "('spacy_displacy_colors', 'biomed.label_colors.v1'), 'en_biomed_spancat.display:label_colors')" in lines[0]
    assert "('spacy_factories', 'biomed_sentencizer_v1'), 'en_biomed_spancat.sentences:make_biomed_sentencizer')" in lines[0]
    assert "('spacy_factories', 'biomed_spans_to_ents_v1'), 'en_biomed_spancat.display:make_spans_to_ents')" in lines[0]
    assert "('spacy_factories', 'biomed_span_filter_v1'), 'en_biomed_spancat.display:make_span_filter')" in lines[0]
    assert lines[1] == "en_biomed_spancat.display #bfe1d9"
    assert lines[2] == "['transformer', 'spancat', 'sentencizer', 'spans_to_ents'] 2 True"
    assert lines[3] == "True True"
