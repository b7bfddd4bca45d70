"""The whole route through weasel on CPU with a tiny BERT, then the wheel in a fresh venv.

`weasel run all` runs on a copy of the project with small overrides (a tiny
local BERT as the transformer, a few training steps, a cut of the sample);
the wheel it builds is then installed into a brand-new venv holding only the
wheel and what it declares, and loaded by name with HF_HUB_OFFLINE=1 from a
folder that is not the project.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import srsly
from spacy.tokens import DocBin
from thinc.api import Config
from conftest import copy_project

ROOT = Path(__file__).resolve().parent.parent
WHEEL = "packages/en_biomed_spancat-0.1.0/dist/en_biomed_spancat-0.1.0-py3-none-any.whl"


def cut_jsonl(src: Path, dest: Path, per_doc: int) -> None:
    """The first `per_doc` paragraphs of every article (the suggester's fit holds documents out)."""
    seen, kept = {}, []
    for line in src.read_text(encoding="utf8").splitlines():
        doc_id = json.loads(line)["meta"]["doc_id"]
        seen[doc_id] = seen.get(doc_id, 0) + 1
        if seen[doc_id] <= per_doc:
            kept.append(line)
    dest.write_text("\n".join(kept) + "\n", encoding="utf8")


# Words planted in one training and one dev paragraph: they must reach no file that ships.
TRAIN_CANARY = "Zqvworkflowtraincanary"
DEV_CANARY = "Zqvworkflowdevcanary"


def plant_canary(path: Path, word: str) -> None:
    """Append `word` as a last token to the first paragraph of a Prodigy spans export."""
    lines = path.read_text(encoding="utf8").splitlines()
    task = json.loads(lines[0])
    start = len(task["text"]) + 1
    task["text"] += " " + word
    task["tokens"][-1]["ws"] = True
    task["tokens"].append({"text": word, "start": start, "end": start + len(word), "id": len(task["tokens"]),
                           "ws": False})
    lines[0] = json.dumps(task)
    path.write_text("\n".join(lines) + "\n", encoding="utf8")


@pytest.fixture(scope="module")
def project_run(tmp_path_factory, tiny_bert):
    """Run `weasel run all` once on a copy of the project; return its folder."""
    from weasel.cli.run import project_run

    root = copy_project(tmp_path_factory.mktemp("project"))
    sample = root / "assets" / "craft_sample"
    sample.mkdir(parents=True)
    cut_jsonl(ROOT / "assets/craft_sample/train.jsonl", sample / "train.jsonl", 10)
    cut_jsonl(ROOT / "assets/craft_sample/dev.jsonl", sample / "dev.jsonl", 15)
    plant_canary(sample / "train.jsonl", TRAIN_CANARY)
    plant_canary(sample / "dev.jsonl", DEV_CANARY)
    overrides = {
        "vars.transformer": str(tiny_bert),
        "vars.max_steps": 6,
        "vars.eval_frequency": 3,
    }
    cwd = os.getcwd()
    try:
        os.chdir(root)
        project_run(root, "all", overrides=overrides, capture=False)
    finally:
        os.chdir(cwd)
    return root


@pytest.mark.slow
def test_all_writes_every_declared_output(project_run):
    from weasel.util import load_project_config

    root = project_run
    project = load_project_config(root)  # variables interpolated (vars may use vars)
    workflow = project["workflows"]["all"]
    commands = {c["name"]: c for c in project["commands"]}
    for name in workflow:
        for out in commands[name].get("outputs", []) + commands[name].get("outputs_no_cache", []):
            assert (root / out).exists(), f"{name} did not write {out}"


@pytest.mark.slow
def test_run_ends_on_a_summary_of_what_it_made(project_run):
    summary = json.loads((project_run / "metrics/summary.json").read_text())
    assert all(a["exists"] for a in summary["artifacts"]) and summary["scores"]["pipeline"] == "en_biomed_spancat 0.1.0"
    assert summary["scores"]["data"] == "corpus/dev.spacy"
    assert " of corpus/dev.spacy; batch size 32, 1 process" in summary["scores"]["speed"]
    # every step before the summary was timed by the step log and matched through project.lock
    steps = {r["command"]: r["seconds"] for r in summary["steps"]}
    assert all(steps[c] is not None and steps[c] > 0 for c in steps if c != "summary"), steps
    assert any(w.startswith("The Hub namespace is the placeholder") for w in summary["warnings"])
    assert summary["next"].startswith("pip install packages/en_biomed_spancat-0.1.0/dist/")
    # the report names the package to be, not the training output's en_pipeline 0.0.0
    assert '<b class="pipeline-name">en_biomed_spancat 0.1.0</b>' in (project_run / "metrics/report.html").read_text()


@pytest.mark.slow
def test_convert_kept_the_overlaps(project_run):
    docs = list(DocBin().from_disk(project_run / "corpus/train.spacy").get_docs(__import__("spacy").blank("en").vocab))
    assert len(docs) > 0
    spans = [s for d in docs for s in d.spans["sc"]]
    overlapping = [
        (a, b) for d in docs for i, a in enumerate(d.spans["sc"]) for b in list(d.spans["sc"])[i + 1 :]
        if a.start < b.end and b.start < a.end
    ]
    assert spans and overlapping, "the sample's overlapping spans did not survive convert"


@pytest.mark.slow
def test_training_config_carries_the_fitted_suggester(project_run):
    config = Config().from_disk(project_run / "training/config.cfg")
    assert config["components"]["spancat"]["suggester"]["@misc"] == "biomed.span_suggester.v1"
    assert config["components"]["transformer"]["model"]["@architectures"] == "biomed.BiomedBERT.v1"
    # ... and it travels inside the packaged pipeline
    packaged = Config().from_disk(
        project_run / "packages/en_biomed_spancat-0.1.0/en_biomed_spancat/en_biomed_spancat-0.1.0/config.cfg"
    )
    assert packaged["components"]["spancat"]["suggester"] == config["components"]["spancat"]["suggester"]


@pytest.mark.slow
def test_metrics_and_meta_tell_the_truth(project_run):
    metrics = json.loads((project_run / "metrics/package.json").read_text())
    spans = metrics["spans"]
    assert spans["gold"] > 0
    assert spans["tp"] + spans["fn"] == spans["gold"]
    # the installed package really uses the threshold tuned on dev
    tuned = json.loads((project_run / "metrics/threshold.json").read_text())
    assert metrics["model"]["threshold"] == pytest.approx(tuned["threshold"])
    assert metrics["model"]["name"] == "en_biomed_spancat"
    meta = json.loads(
        (project_run / "packages/en_biomed_spancat-0.1.0/en_biomed_spancat/meta.json").read_text()
    )
    # a local tiny BERT was requested: meta records it, and no stand-in was used
    assert meta["base_model"]["stand_in"] is False
    assert not any(r.startswith("biomed-spancat-components") for r in meta["requirements"])
    assert (project_run / "hub/en_biomed_spancat/README.md").exists()


@pytest.mark.slow
def test_wheel_installs_and_loads_in_a_fresh_venv(project_run, tmp_path):
    """The shipped artifact alone: a new venv with torch, then the wheel and what it declares."""
    wheel = project_run / WHEEL
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    pip = [py, "-m", "pip", "install", "--quiet"]
    subprocess.run(pip + ["--upgrade", "pip"], check=True)
    subprocess.run(pip + ["torch==2.13.0"], check=True)
    subprocess.run(pip + [str(wheel)], check=True)
    script = (
        "import spacy, json\n"
        "nlp = spacy.load('en_biomed_spancat')\n"
        "text = 'Mutations in the Brca1 gene cause breast cancer in mouse embryos.'\n"
        "doc = nlp(text)\n"
        "spans = doc.spans['sc']\n"
        # threshold 0: every candidate is kept, so overlapping spans must come back unflattened
        "nlp.get_pipe('spancat').cfg['threshold'] = 0.0\n"
        "doc0 = nlp(text)\n"
        "s0 = doc0.spans['sc']\n"
        "over = sum(1 for a in s0 for b in s0 if a is not b and a.start < b.end and b.start < a.end and (a.start, a.end) != (b.start, b.end))\n"
        # sentences, entities and displaCy colours come from the wheel's own code and entry points
        "from spacy import displacy\n"
        "doc1 = nlp('Growth of E. coli (Fig. 2) was slowed by Brca1. Mice died.')\n"
        "sents = [s.text for s in doc1.sents]\n"
        "ents = len(doc0.ents)\n"
        "labels = {e.label_ for e in doc0.ents}\n"
        "from en_biomed_spancat.display import label_color\n"
        "html = displacy.render(doc0, style='ent')\n"
        "colored = all('background: ' + label_color(l) in html for l in labels)\n"
        "import biomed_spancat\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["HF_HUB_OFFLINE"] = "1"
    # the project's own package must not be importable: the wheel carries its code
    result = subprocess.run(
        [py, "-c", script.replace("import biomed_spancat\n", "") + "print(json.dumps({'n': len(spans), 'over': over, 'scores': len(s0.attrs.get('scores', [])), "
         "'tok': [t.text for t in nlp.make_doc('Pygo2-/- mice')], 'pipes': nlp.pipe_names, 'sents': sents, "
         "'ents': ents, 'colored': colored}))"],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["over"] > 0 and out["scores"] > 0
    # the shipped tokenizer (biomed.Tokenizer.v1, code carried by the wheel) splits genotypes
    assert out["tok"] == ["Pygo2", "-", "/", "-", "mice"]
    # doc.sents and doc.ents on by default, displaCy colours from the wheel's entry point (docs/pipeline.md)
    # span_filter when tune-threshold found per-label thresholds / the same-label policy better on dev
    record = json.loads((project_run / "metrics" / "threshold.json").read_text())
    filtered = bool(record.get("span_filter")) and record["span_filter"].get("used", True)
    assert out["pipes"] == ["transformer", "spancat"] + (["span_filter"] if filtered else []) + [
        "sentencizer", "spans_to_ents"]
    assert out["sents"] == ["Growth of E. coli (Fig. 2) was slowed by Brca1.", "Mice died."]
    assert out["ents"] > 0 and out["colored"]
    probe = subprocess.run([py, "-c", "import biomed_spancat"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert probe.returncode != 0, "the fresh venv must not have the project's package"


@pytest.mark.slow
def test_no_word_of_the_corpus_ships(project_run):
    """The canaries reached the trained pipeline's vocab, and no byte of the wheel, the staged Hub folder
    or the card."""
    import zipfile

    words = [TRAIN_CANARY, DEV_CANARY]
    canaries = [c.encode() for w in words for c in (w, w.lower())]
    trained = set(srsly.read_json(project_run / "training/model-best/vocab/strings.json"))
    assert set(words) <= trained
    with zipfile.ZipFile(project_run / WHEEL) as zf:
        for name in zf.namelist():
            data = zf.read(name)
            assert not any(c in data for c in canaries), name
    for p in (project_run / "hub").rglob("*"):
        if p.is_file():
            assert not any(c in p.read_bytes() for c in canaries), p
