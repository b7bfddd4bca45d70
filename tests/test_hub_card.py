"""The Hub step's model card against its metrics and the staged folder (card,
wheel, chart), on a real tiny wheel (tests/hub_fixtures.py)."""
import json
import re
import shutil
import socket
import subprocess
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import spacy

from biomed_spancat.util import InputFileError
from biomed_spancat.publish.hub import (
    CARD_NAME,
    CHART_NAME,
    HubError,
    build_card,
    check_wheel_name,
    front_matter,
    load_metrics,
    normalize_metrics,
    parse_card,
    read_wheel,
    stage_hub,
)
from hub_server import validate_card_data
from hub_fixtures import (
    ROOT,
    PY,
    BIOMEDBERT,
    STAND_IN,
    VERSION,
    WHEEL_NAME,
    LABELS,
    TEXTS,
    CANARY,
    TRAIN_CANARY,
    DEV_CANARY,
    read_card,
    table_row,
    wheel_meta,
    card_metrics,
    corpus_report,
)


def _pct(x: Optional[float]) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


# --- the card -----------------------------------------------------------------------------------------


def test_front_matter_is_what_the_hub_reads(staged):
    fm, _ = read_card(staged)
    assert fm["library_name"] == "spacy"
    assert fm["language"] == ["en"]
    assert fm["license"] == "cc-by-3.0"
    assert fm["pipeline_tag"] == "token-classification"
    assert fm["tags"][:3] == ["spacy", "span-categorization", "biomedical"]
    assert set(LABELS) <= set(fm["tags"])
    # the transformer actually trained, not the one requested
    assert fm["base_model"] == STAND_IN
    assert fm["model-index"][0]["name"] == "en_biomed_spancat"
    assert validate_card_data(fm) == []
    # huggingface_hub reads the model-index back into eval results
    from huggingface_hub import ModelCard

    card = ModelCard((staged / CARD_NAME).read_text(encoding="utf8"))
    assert card.data.model_name == "en_biomed_spancat"
    assert {r.metric_name for r in card.data.eval_results} >= {"Spans P", "Spans R", "Spans F"}


def test_every_front_matter_number_matches_the_metrics(staged, tiny_metrics):
    metrics = json.loads(tiny_metrics.read_text())
    fm, _ = read_card(staged)
    (result,) = fm["model-index"][0]["results"]
    assert result["task"]["type"] == "token-classification"
    got = {m["name"]: (m["type"], m["value"]) for m in result["metrics"]}
    expected = {}
    names = {"p": ("precision", "P"), "r": ("recall", "R"), "f": ("f1", "F")}
    for k, (mtype, short) in names.items():
        if metrics["spans"][k] is not None:
            expected[f"Spans {short}"] = (mtype, round(metrics["spans"][k], 4))
        for label in LABELS:
            value = metrics["per_label"].get(label, {}).get(k)
            if value is not None:
                expected[f"{label} {short}"] = (mtype, round(value, 4))
    assert got == expected
    assert len(expected) >= 3


def test_every_table_number_matches_the_metrics(staged, tiny_metrics):
    metrics = json.loads(tiny_metrics.read_text())
    _, body = read_card(staged)
    spans = metrics["spans"]
    assert table_row(body, "all spans") == [_pct(spans["p"]), _pct(spans["r"]), _pct(spans["f"]), str(spans["gold"])]
    for label in LABELS:
        s = metrics["per_label"].get(label)
        row = table_row(body, f"`{label}`", after="### Per label")
        if s is None:
            assert row[:3] == ["—", "—", "—"]
        else:
            assert row[:4] == [_pct(s["p"]), _pct(s["r"]), _pct(s["f"]), f"{s['gold']:,}"]
    for group, s in metrics["groups"].items():
        row = next(r for r in body.splitlines() if r.startswith(f"| {group}: "))
        cells = [c.strip() for c in row.strip().strip("|").split("|")][1:]
        assert cells == [_pct(s["p"]), _pct(s["r"]), _pct(s["f"]), f"{s['gold']:,}"]
    assert table_row(body, "suggester recall (ceiling on recall)") == [_pct(metrics["suggester"]["recall"])]


def test_card_body_sections(staged):
    _, body = read_card(staged)
    url = f"https://huggingface.co/alice/en_biomed_spancat/resolve/main/{WHEEL_NAME}"
    assert f"pip install {url}\n" in body
    assert "-any-py3-none-any.whl" not in body  # never the renamed wheel of spacy-huggingface-hub
    assert 'spacy.load("en_biomed_spancat")' in body
    assert 'doc.spans["sc"]' in body and 'spans.attrs["scores"]' in body
    assert f"![Spans F per label]({CHART_NAME})" in body
    for heading in ("## What it predicts", "## Install", "## Usage", "## Evaluation", "### Per label",
                    "### Overlapping vs isolated spans", "## Training data", "## How it was built",
                    "## Limitations"):
        assert heading in body
    # what each label means and how many training spans it has (from meta.json)
    assert table_row(body, "`PR`") and "proteins and genes" in body
    report = corpus_report()["splits"]["train"]["per_label"]
    for label in LABELS:
        row = table_row(body, f"`{label}`", after="## What it predicts")
        assert row[1] == str(report[label]["spans"])
    assert table_row(body, "train")[:5] == ["2", "7", "180", "46", "6"]
    # the stand-in is announced before anything else, and in the limitations
    notice = body.index("**Notice: trained on an offline stand-in, not BiomedBERT.**")
    assert notice < body.index("## What it predicts")
    assert f"`{BIOMEDBERT}`" in body and f"`{STAND_IN}`" in body
    assert "stand-in" in body[body.index("## Limitations"):]


def test_card_shows_counts_never_training_text(staged, tiny_wheel):
    text = (staged / CARD_NAME).read_text(encoding="utf8")
    assert CANARY not in text
    for doc_text in TEXTS:
        assert doc_text not in text


def _wheel_files(wheel: Path) -> Dict[str, bytes]:
    with zipfile.ZipFile(wheel) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def test_no_word_of_the_training_or_dev_text_ships(tiny_package, staged):
    wheel, model_dir, trained = tiny_package
    canaries = [c.encode() for word in (TRAIN_CANARY, DEV_CANARY) for c in (word, word.lower())]
    # spaCy did put both words (and their lower-case forms) into the trained pipeline's vocab ...
    trained_strings = set(json.loads((trained / "vocab" / "strings.json").read_text(encoding="utf8")))
    assert {TRAIN_CANARY, DEV_CANARY, TRAIN_CANARY.lower(), DEV_CANARY.lower()} <= trained_strings
    # ... and no byte of any file in the wheel (msgpack binaries included) holds them
    files = _wheel_files(wheel)
    assert any(name.endswith("vocab/strings.json") for name in files)
    for name, data in files.items():
        for canary in canaries:
            assert canary not in data, f"{canary!r} shipped in {name}"
    for p in staged.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            assert not any(c in data for c in canaries), p
    # what the packaged vocab keeps: the labels and the blank English vocab's own strings, no more
    packaged = set(json.loads((model_dir / "vocab" / "strings.json").read_text(encoding="utf8")))
    assert set(LABELS) <= packaged
    assert packaged <= set(spacy.blank("en").vocab.strings) | set(LABELS)
    assert len(packaged) < len(trained_strings)


def test_pruned_vocab_predicts_exactly_as_the_trained_pipeline(tiny_package):
    from biomed_spancat.publish.vocab_prune import predictions

    _, model_dir, trained = tiny_package
    texts = ["Loss of Pax6 in the embryonic mouse eye causes aniridia.",
             f"BMP4 and {TRAIN_CANARY} were absent; {DEV_CANARY} was not.", ""]
    got = []
    for path in (trained, model_dir):
        nlp = spacy.load(path)
        nlp.get_pipe("spancat").cfg["threshold"] = 0.0  # every candidate comes back, with its score
        got.append(predictions(nlp, texts))
    assert len(got[0]) > 20
    assert got[0] == got[1]


def test_meta_keeps_counts_never_strings_of_the_corpus_report(tiny_wheel):
    meta, _ = read_wheel(tiny_wheel)
    assert CANARY not in json.dumps(meta)
    train = meta["training_data"]["splits"]["train"]
    assert train["spans"] == 46 and train["per_label"]["PR"] == {"spans": 10, "overlapping": 0}
    assert "example_text" not in train


def test_card_metadata_is_a_valid_model_card(staged, fake_hub, hub_env):
    """Parsed back by huggingface_hub, and accepted by the Hub's metadata check (the local Hub's validate-yaml)."""
    from huggingface_hub import ModelCard

    text = (staged / CARD_NAME).read_text(encoding="utf8")
    card = ModelCard(text)
    fm, _ = parse_card(text)
    assert card.data.to_dict() == fm
    results = card.data.eval_results
    assert {(r.task_type, r.dataset_split, r.verified) for r in results} == {("token-classification", "dev", False)}
    assert [r.metric_type for r in results[:3]] == ["precision", "recall", "f1"]
    # what ModelCard.validate() posts (it always posts to huggingface.co), posted to the local Hub
    import urllib.request

    body = json.dumps({"repoType": "model", "content": str(card)}).encode()
    req = urllib.request.Request(f"{fake_hub.url}/api/validate-yaml", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as answer:
        assert answer.status == 200 and json.loads(answer.read()) == {"warnings": []}


def test_card_template_is_package_data():
    from biomed_spancat.publish.hub import TEMPLATE

    assert TEMPLATE.is_file() and TEMPLATE.suffix == ".j2"
    pyproject = (ROOT / "components" / "pyproject.toml").read_text()
    assert '"biomed_spancat.publish.hub" = ["templates/*.j2"]' in pyproject


def test_card_example_is_what_the_wheel_returns(staged, tiny_package):
    from biomed_spancat.publish.hub.card import EXAMPLE_ROWS, EXAMPLE_TEXT

    _, body = read_card(staged)
    assert f'doc = nlp("{EXAMPLE_TEXT}")' in body
    nlp = spacy.load(tiny_package[1])
    doc = nlp(EXAMPLE_TEXT)
    group = doc.spans["sc"]
    expected = [(f"{s.start_char} {s.end_char} {s.label_} {s.text}", float(score))
                for s, score in zip(group, group.attrs["scores"])]
    assert len(expected) > 0
    block = body[body.index("What this wheel prints for that sentence"):]
    assert block.startswith(f"What this wheel prints for that sentence ({len(expected)} spans):")
    lines = block.split("```text\n", 1)[1].split("\n```", 1)[0].splitlines()
    # the tiny model's count varies with the CPU's numerics: past EXAMPLE_ROWS the rest are counted
    more = len(expected) - EXAMPLE_ROWS
    if more > 0:
        assert lines[-1] == f"... and {more} more"
        lines = lines[:-1]
    shown = [line.rsplit(" ", 1) for line in lines]
    assert [span for span, _ in shown] == [span for span, _ in expected[:EXAMPLE_ROWS]]
    # the card was made in another process (the unpacked wheel); scores are printed to 3 decimals
    for (_, printed), (_, score) in zip(shown, expected):
        assert abs(float(printed) - score) <= 0.0011


def test_card_example_sentence_is_not_from_the_corpus(craft_sample_texts):
    from biomed_spancat.publish.hub import EXAMPLE_TEXT

    assert craft_sample_texts  # the sample was read
    assert not any(EXAMPLE_TEXT in text for text in craft_sample_texts)
    assert not any(text and text in EXAMPLE_TEXT for text in craft_sample_texts)


@pytest.fixture(scope="session")
def craft_sample_texts() -> List[str]:
    """The texts of the shipped CRAFT sample, and of the shared CRAFT exports when present."""
    files = sorted((ROOT / "assets" / "craft_sample").glob("*.jsonl"))
    shared = ROOT.parent / "shared" / "data" / "craft"
    files += sorted(shared.glob("*.jsonl")) if shared.is_dir() else []
    return [json.loads(line).get("text", "") for f in files for line in f.open(encoding="utf8") if line.strip()]


def _prov_card(metrics_path: str, record: Optional[Dict]) -> str:
    from biomed_spancat.publish.hub import ThresholdRecord

    cm = card_metrics()
    cm.data = {"path": metrics_path, "docs": 3}
    cm.threshold = 0.35
    rec = ThresholdRecord(Path("metrics/threshold.json"), **record) if record else None
    return build_card(wheel_meta(requested=BIOMEDBERT, used=BIOMEDBERT, stand_in=False), cm,
                      spancat={"spans_key": "sc", "component": "spancat"}, repo_id="a/b",
                      wheel_name="en_biomed_spancat-1.0.0-py3-none-any.whl", license_id="mit",
                      threshold_record=rec)


def test_card_says_dev_scores_are_optimistic_when_dev_chose_the_threshold():
    fm, body = parse_card(_prov_card("corpus/dev.spacy", {"data": "corpus/dev.spacy", "threshold": 0.35}))
    evaluation = body[body.index("## Evaluation"):body.index("### Per label")]
    assert ("Scores of the packaged pipeline on the dev split of CRAFT (`corpus/dev.spacy`), in percent"
            in evaluation)
    assert ("**These scores are optimistic.** The same dev data chose the threshold (0.35, the best F among the "
            "thresholds tried) and the training checkpoint kept, and no held-out test set was scored: expect "
            "lower scores on new text of the same kind.") in evaluation
    assert ("- The scores above are on the dev data that chose the threshold and the checkpoint, so they are "
            "optimistic.") in body
    assert fm["model-index"][0]["results"][0]["dataset"]["split"] == "dev"


def test_card_never_shows_an_absolute_data_path(tmp_path):
    _, body = parse_card(_prov_card(str(tmp_path / "corpus" / "dev.spacy"),
                                    {"data": str(tmp_path / "corpus" / "dev.spacy"), "threshold": 0.35}))
    assert str(tmp_path) not in body
    assert "(`corpus/dev.spacy`)" in body and "**These scores are optimistic.**" in body


def test_card_reports_held_out_scores_plainly():
    fm, body = parse_card(_prov_card("corpus/test.spacy", {"data": "corpus/dev.spacy", "threshold": 0.35}))
    assert ("Scores of the packaged pipeline on the test split of CRAFT (`corpus/test.spacy`), held-out data "
            "used neither to train the pipeline nor to choose its threshold (chosen on `corpus/dev.spacy`), in "
            "percent") in body
    assert "optimistic" not in body
    dataset = fm["model-index"][0]["results"][0]["dataset"]
    assert dataset == {"name": "test split of CRAFT", "type": "craft", "split": "test"}


def test_card_says_when_the_threshold_origin_is_not_recorded():
    _, body = parse_card(_prov_card("corpus/dev.spacy", None))
    assert ("How the threshold (0.35) was chosen is not recorded with these scores. If it was tuned on this same "
            "data, as `weasel run all` does on dev, the scores are optimistic.") in body


def test_threshold_record_of_another_run_is_refused(tiny_wheel, tiny_metrics, tmp_path):
    record = tmp_path / "threshold.json"
    record.write_text(json.dumps({"data": "corpus/dev.spacy", "threshold": 0.05}))
    with pytest.raises(HubError, match=re.escape(f"{record}: records threshold 0.05, but the evaluated wheel "
                                                 "uses 0.5: it is the record of another run")):
        stage_hub(tiny_wheel, tmp_path / "hub", tiny_metrics, "alice", "en_biomed_spancat", "cc-by-3.0",
                  threshold_record=record)
    record.write_text(json.dumps({"threshold": 0.5}))
    with pytest.raises(HubError, match="expected tune-threshold's record with 'data'"):
        stage_hub(tiny_wheel, tmp_path / "hub", tiny_metrics, "alice", "en_biomed_spancat", "cc-by-3.0",
                  threshold_record=record)
    assert not (tmp_path / "hub").exists()


def test_stage_hub_names_the_endpoint_in_the_install_line(tiny_wheel, tiny_metrics, tmp_path):
    out = stage_hub(tiny_wheel, tmp_path / "hub", tiny_metrics, "alice", "en_biomed_spancat", "cc-by-3.0",
                    endpoint="https://hub.example.org/")
    _, body = parse_card(out.card.read_text(encoding="utf8"))
    assert f"pip install https://hub.example.org/alice/en_biomed_spancat/resolve/main/{WHEEL_NAME}\n" in body


def test_card_without_stand_in_names_biomedbert_and_no_notice():
    meta = wheel_meta(requested=BIOMEDBERT, used=BIOMEDBERT, stand_in=False)
    card = build_card(meta, card_metrics(), spancat={"spans_key": "sc", "component": "spancat"}, repo_id="a/b",
                      wheel_name="en_biomed_spancat-1.0.0-py3-none-any.whl", license_id="cc-by-3.0")
    fm, body = parse_card(card)
    assert fm["base_model"] == BIOMEDBERT
    assert "Notice" not in body and "stand-in" not in body


def test_local_transformer_path_is_not_given_as_base_model(tmp_path):
    meta = wheel_meta(requested=str(tmp_path), used=str(tmp_path), stand_in=False)
    fm = front_matter(meta, card_metrics(), "cc-by-3.0", ["PR"])
    assert "base_model" not in fm


@pytest.mark.parametrize("license_id,expected", [
    ("cc-by-3.0", {"license": "cc-by-3.0"}),
    ("Apache-2.0", {"license": "apache-2.0"}),
    ("CRAFT research licence", {"license": "other", "license_name": "craft-research-licence"}),
])
def test_license_var_becomes_a_hub_license(license_id, expected):
    fm = front_matter(wheel_meta(), card_metrics(), license_id, ["PR"])
    assert {k: fm[k] for k in expected} == expected
    assert validate_card_data(fm) == []


def test_spacy_scorer_layout_is_read_too():
    raw = {"spans_sc_p": 0.8, "spans_sc_r": 0.6, "spans_sc_f": 0.6857,
           "spans_sc_per_type": {"PR": {"p": 0.8, "r": 0.6, "f": 0.6857}},
           "overlap": {"overlapping": {"p": 0.5, "r": 0.4, "f": 0.444}}, "threshold": 0.4, "extra": [1]}
    cm = normalize_metrics(raw, "sc", "m.json")
    assert cm.overall == {"p": 0.8, "r": 0.6, "f": 0.6857}
    assert cm.groups["overlapping"]["f"] == 0.444 and cm.threshold == 0.4


def test_baselines_are_tabled_against_the_model(tiny_wheel, tiny_metrics, tmp_path):
    metrics = json.loads(tiny_metrics.read_text())
    baseline = tmp_path / "bio.json"
    bio = {"spans": {"p": 0.1, "r": 0.2, "f": 0.1333}, "per_label": {}, "data": dict(metrics["data"]),
           "groups": {"overlapping": {"p": 0.0, "r": 0.0, "f": 0.0}}}
    baseline.write_text(json.dumps(bio))
    out = stage_hub(tiny_wheel, tmp_path / "hub", tiny_metrics, "alice", "en_biomed_spancat", "cc-by-3.0",
                    baselines={"BIO tagger": baseline})
    _, body = parse_card(out.card.read_text(encoding="utf8"))
    assert "### Baselines" in body
    assert table_row(body, "BIO tagger") == ["10.00", "20.00", "13.33", "0.00"]
    spans, overlapping = metrics["spans"], metrics["groups"]["overlapping"]
    assert table_row(body, "en_biomed_spancat (this model)") == [
        _pct(spans["p"]), _pct(spans["r"]), _pct(spans["f"]), _pct(overlapping["f"])]
    # a baseline scored on other data is refused
    bio["data"]["gold_spans"] += 1
    baseline.write_text(json.dumps(bio))
    with pytest.raises(HubError, match="baseline 'BIO tagger' was scored on other data than the wheel"):
        stage_hub(tiny_wheel, tmp_path / "hub2", tiny_metrics, "alice", "en_biomed_spancat", "cc-by-3.0",
                  baselines={"BIO tagger": baseline})


@pytest.mark.parametrize("content,message", [
    ("{not json", "line 1: not valid JSON (Expecting property name"),
    ('{"spans": {"p": 81.2, "r": 0.5, "f": 0.6}, "per_label": {}}', "'spans'.p: 81.2 is not a fraction"),
    ('{"spans": {"p": 0.8, "r": 0.5, "f": 0.6}, "per_label": {"PR": {"p": 0.1, "r": 0.1}}}', "'per_label.PR': no 'f'"),
    ('{"accuracy": 0.9}', "neither the project's metrics"),
    ('{"spans": {"p": 0.8, "r": 0.5, "f": 0.6}, "per_label": {}, "model": {"spans_key": "ents"}}',
     "for spans key 'ents'"),
    ('[1, 2]', "expected a JSON object (metrics file), got list"),
])
def test_bad_metrics_name_the_file_and_the_key(tmp_path, content, message):
    path = tmp_path / "package.json"
    path.write_text(content)
    # an unreadable file is an InputFileError (one type for every step's JSON inputs), bad scores a HubError
    error = InputFileError if content.startswith(("{not", "[")) else HubError
    with pytest.raises(error) as err:
        load_metrics(path, "sc")
    assert str(path) in str(err.value) and message in str(err.value)


def test_metrics_of_another_build_are_refused(tiny_wheel, tiny_metrics, tmp_path):
    for key, value, message in (("version", "0.0.9", "en_biomed_spancat 0.0.9, not of the wheel"),
                                ("name", "en_pipeline", "en_pipeline 0.0.1, not of the wheel"),
                                ("labels", ["PR"], "labels ['PR']")):
        raw = json.loads(tiny_metrics.read_text())
        raw["model"][key] = value
        path = tmp_path / f"{key}.json"
        path.write_text(json.dumps(raw))
        with pytest.raises(HubError, match=re.escape(message)):
            stage_hub(tiny_wheel, tmp_path / "hub", path, "alice", "en_biomed_spancat", "cc-by-3.0")
        assert not (tmp_path / "hub").exists()


# --- staging ------------------------------------------------------------------------------------------


def test_stage_writes_exactly_card_wheel_chart_without_network(tiny_wheel, tiny_metrics, tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("stage-hub tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    out = tmp_path / "hub" / "en_biomed_spancat"
    out.mkdir(parents=True)
    (out / "stale-0.0.0-py3-none-any.whl").write_bytes(b"old")
    staged = stage_hub(tiny_wheel, out, tiny_metrics, "alice", "en_biomed_spancat", "cc-by-3.0")
    assert sorted(p.name for p in out.iterdir()) == sorted([CARD_NAME, CHART_NAME, WHEEL_NAME])
    assert staged.files == sorted([CARD_NAME, CHART_NAME, WHEEL_NAME])
    assert (out / WHEEL_NAME).read_bytes() == tiny_wheel.read_bytes()
    assert (out / CHART_NAME).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["en_biomed_spancat"]  # no temp folders left
    first = (out / CARD_NAME).read_text()
    stage_hub(tiny_wheel, out, tiny_metrics, "alice", "en_biomed_spancat", "cc-by-3.0")
    assert (out / CARD_NAME).read_text() == first  # generated, deterministic


def test_renamed_wheel_is_refused(tiny_wheel, tiny_metrics, tmp_path):
    renamed = tmp_path / "en_biomed_spancat-any-py3-none-any.whl"
    shutil.copy(tiny_wheel, renamed)
    with pytest.raises(HubError, match=r"not a wheel file name current pip installs.*[Ii]nvalid version"):
        stage_hub(renamed, tmp_path / "hub", tiny_metrics, "alice", "en_biomed_spancat", "cc-by-3.0")
    assert check_wheel_name(tiny_wheel) == ("en_biomed_spancat", VERSION)


def test_wheel_name_must_match_its_meta(tiny_wheel, tmp_path):
    other = tmp_path / "en_biomed_spancat-9.9.9-py3-none-any.whl"
    shutil.copy(tiny_wheel, other)
    with pytest.raises(HubError, match="file name says en_biomed_spancat 9.9.9 but its meta.json says"):
        read_wheel(other)


def test_stage_hub_cli(tiny_wheel, tiny_metrics, tmp_path):
    out = tmp_path / "hub" / "en_biomed_spancat"
    cmd = [PY, "-m", "scripts.stage_hub", str(tiny_wheel), str(out), "--metrics", str(tiny_metrics),
           "--namespace", "your-hf-username", "--repo", "en_biomed_spancat", "--license", "cc-by-3.0"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())
    assert "Staged 3 files" in out and "placeholder namespace" in out
    r = subprocess.run(cmd[:6] + [str(tmp_path / "missing.json")] + cmd[7:], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 1
    assert "missing.json: no such metrics file (run the `evaluate-package` command first)" in " ".join(r.stdout.split())


# --- the tools the developers' guide relies on ------------------------------------------------------------


@pytest.mark.parametrize("cmd", [
    [PY, "-m", "spacy", "info"],
    [str(Path(PY).parent / "weasel"), "--help"],
    [PY, "-m", "spacy", "huggingface-hub", "push", "--help"],
])
def test_cli_tools_work_in_this_environment(cmd):
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_how_it_was_built_reads_the_training_record():
    meta = wheel_meta(requested=BIOMEDBERT, used=BIOMEDBERT, stand_in=False)
    meta["training"] = {"commands": ["weasel run all --vars.gpu_id 0"], "versions": {"torch": "2.13.0"},
                        "hardware": "1x NVIDIA H100", "seconds": 600.0, "steps": 1200}
    cm = card_metrics()
    cm.speed = {"words_per_second": 1234.5, "device": "gpu"}
    card = build_card(meta, cm, spancat={"spans_key": "sc", "component": "spancat",
                                         "suggester": {"@misc": "biomed.span_suggester.v1", "max_length": 4,
                                                       "no_single_words": ["the", "of", "patient-x"]}},
                      repo_id="a/b", wheel_name="en_biomed_spancat-1.0.0-py3-none-any.whl", license_id="mit")
    _, body = parse_card(card)
    built = body[body.index("## How it was built"):body.index("## Limitations")]
    assert "weasel run all --vars.gpu_id 0" in built
    assert table_row(built, "torch") == ["2.13.0"]
    assert table_row(built, "training time") == ["10.0 min"]
    assert table_row(built, "training hardware") == ["1x NVIDIA H100"]
    assert table_row(built, "training: steps") == ["1200"]
    assert table_row(built, "speed (evaluation)") == ["1,234 words/s on gpu"]
    # learned word lists come from the training text: only their size is shown
    assert table_row(built, "suggester") == ["@misc=biomed.span_suggester.v1, max_length=4, no_single_words: 3 entries"]
    assert "patient-x" not in card
    # ... and the card says that such lists ship, and what they are
    assert ("Learned from the training text and shipped in the pipeline's `config.cfg`, because the suggester "
            "needs them to run: the suggester's block lists (3 lower-case words and 0 word shapes") in body
    assert "Anyone who can download the wheel can read them." in body


def test_how_it_was_built_says_what_was_not_recorded(staged):
    _, body = read_card(staged)
    assert ("No text: the packaged vocabulary keeps only the labels and the tokenizer's own rules, and meta.json "
            "keeps counts. Nothing learned as text from the training data ships: the suggester has no word lists."
            in " ".join(body.split()))
    assert table_row(body, "training time", after="## How it was built") == ["not recorded"]
    assert table_row(body, "base transformer", after="## How it was built") == [f"{STAND_IN} (offline stand-in)"]


def test_card_states_per_label_thresholds_and_the_same_label_policy():
    cm = card_metrics()
    cm.threshold = 0.3
    spancat = {"spans_key": "sc", "component": "spancat",
               "label_thresholds": {"PR": 0.5, "CHEBI": 0.3}, "same_label": "best"}
    card = build_card(wheel_meta(requested=BIOMEDBERT, used=BIOMEDBERT, stand_in=False), cm, spancat=spancat,
                      repo_id="a/b", wheel_name="en_biomed_spancat-1.0.0-py3-none-any.whl", license_id="mit")
    text = " ".join(card.split())
    assert ("A span is kept when its label's score reaches that label's threshold (chosen on the dev data, saved "
            "in the packaged pipeline's `span_filter`): `CHEBI` 0.3, `PR` 0.5. Of spans with one label that share "
            "a token, only the highest scored is kept.") in text
    assert "is at least 0.3" not in text
    # without a filter: the one threshold
    card = build_card(wheel_meta(requested=BIOMEDBERT, used=BIOMEDBERT, stand_in=False), cm,
                      spancat={"spans_key": "sc", "component": "spancat"}, repo_id="a/b",
                      wheel_name="en_biomed_spancat-1.0.0-py3-none-any.whl", license_id="mit")
    assert "A span is kept when its label's score is at least 0.3" in " ".join(card.split())


def test_read_wheel_finds_the_span_filter(tiny_wheel, tmp_path):
    """The thresholds the card states come from the packaged config's span_filter component."""
    out = tmp_path / tiny_wheel.name
    with zipfile.ZipFile(tiny_wheel) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("/config.cfg") and b"[components.spancat]" in data:
                data += (b'\n[components.span_filter]\nfactory = "biomed_span_filter_v1"\nspans_key = "sc"\n'
                         b'same_label = "best"\n\n[components.span_filter.thresholds]\nPR = 0.5\n')
            dst.writestr(item, data)
    _, spancat = read_wheel(out)
    assert (spancat["label_thresholds"], spancat["same_label"]) == ({"PR": 0.5}, "best")
    _, plain = read_wheel(tiny_wheel)
    assert "label_thresholds" not in plain


def test_card_example_counts_the_rows_past_the_limit():
    from biomed_spancat.publish.hub.card import EXAMPLE_ROWS, CardExample

    spans = [(i, i + 1, "PR", "x", 0.5 + i / 100) for i in range(EXAMPLE_ROWS + 2)]
    card = build_card(wheel_meta(requested=BIOMEDBERT, used=BIOMEDBERT, stand_in=False), card_metrics(),
                      spancat={"spans_key": "sc", "component": "spancat"}, repo_id="a/b",
                      wheel_name="en_biomed_spancat-1.0.0-py3-none-any.whl", license_id="mit",
                      example=CardExample("x" * 20, spans))
    _, body = parse_card(card)
    block = body[body.index("What this wheel prints for that sentence"):]
    assert block.startswith(f"What this wheel prints for that sentence ({EXAMPLE_ROWS + 2} spans):")
    lines = block.split("```text\n", 1)[1].split("\n```", 1)[0].splitlines()
    assert lines[:2] == ["0 1 PR x 0.500", "1 2 PR x 0.510"]
    assert len(lines) == EXAMPLE_ROWS + 1 and lines[-1] == "... and 2 more"
