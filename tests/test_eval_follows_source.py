"""Eval data follows the source, and train and eval must share labels
(biomed_spancat.ingest.convert.route_sources / check_labels, scripts/convert.py)."""

import json
from pathlib import Path

import pytest
import spacy
import srsly
from spacy.tokens import DocBin

from biomed_spancat.ingest.convert import ConvertOptions, convert, route_sources
from biomed_spancat.ingest.tasks import IngestError

ROOT = Path(__file__).resolve().parent.parent


def task(doc_id, text, spans):
    """A Prodigy spans.manual task; spans are (first word, last word + 1, label) over whitespace words."""
    words, tokens, pos = text.split(" "), [], 0
    for i, word in enumerate(words):
        tokens.append({"text": word, "start": pos, "end": pos + len(word), "id": i, "ws": i < len(words) - 1})
        pos += len(word) + 1
    return {
        "text": text,
        "meta": {"doc_id": doc_id},
        "tokens": tokens,
        "spans": [
            {"start": tokens[s]["start"], "end": tokens[e - 1]["end"], "token_start": s, "token_end": e - 1, "label": lab}
            for s, e, lab in spans
        ],
        "answer": "accept",
        "_view_id": "spans_manual",
    }


def write(path, tasks):
    path.write_text("".join(json.dumps(t) + "\n" for t in tasks), encoding="utf8")
    return str(path)


def drug_tasks(prefix, n, labels=("DRUG", "DOSE")):
    return [task(f"{prefix}{i}", f"Started metformin 500 mg in patient {i}", [(1, 2, labels[0]), (2, 4, labels[1])])
            for i in range(n)]


def test_eval_prefix_routes_a_source_to_dev():
    options = ConvertOptions(eval=["x.jsonl"])
    sources, routed = route_sources(["a.jsonl", "eval:b.jsonl", "test:c.jsonl", "dev:d.jsonl", "env:PG"], options)
    assert sources == ["a.jsonl", "env:PG"]
    assert routed.eval == ["x.jsonl", "b.jsonl", "d.jsonl"] and routed.test == ["c.jsonl"]
    assert options.eval == ["x.jsonl"]  # the caller's options are left alone
    # URLs and plain paths are never taken for a prefix
    assert route_sources(["postgresql://u@h/db"], ConvertOptions())[0] == ["postgresql://u@h/db"]


def test_eval_source_in_the_source_list_becomes_dev(tmp_path):
    train = write(tmp_path / "train.jsonl", drug_tasks("t", 4))
    dev = write(tmp_path / "dev.jsonl", drug_tasks("d", 2))
    report = convert([train, f"eval:{dev}"], tmp_path / "out", ConvertOptions())
    assert report["kept_by_split"] == {"train": 4, "dev": 2}
    assert report["settings"]["eval_split"] is None
    assert {(s["source"], s["role"]) for s in report["sources"]} == {(train, "train"), (dev, "dev")}


def test_own_source_alone_is_split_by_document(tmp_path):
    train = write(tmp_path / "mine.jsonl", drug_tasks("t", 10))
    report = convert([train], tmp_path / "out", ConvertOptions(eval_split=0.2))
    assert report["kept_by_split"] == {"train": 8, "dev": 2}
    assert report["settings"]["eval_split"] == 0.2
    assert report["label_check"]["labels"] == {"train": ["DOSE", "DRUG"], "dev": ["DOSE", "DRUG"]}
    assert report["label_check"]["warnings"] == []


def test_disjoint_labels_stop_the_conversion_and_name_both_sets(tmp_path):
    train = write(tmp_path / "train.jsonl", drug_tasks("t", 4))
    dev = write(tmp_path / "dev.jsonl", drug_tasks("d", 2, labels=("CHEBI", "PR")))
    with pytest.raises(IngestError) as err:
        convert([train, f"eval:{dev}"], tmp_path / "out", ConvertOptions())
    assert "train and dev share no span label: train has DOSE, DRUG; dev has CHEBI, PR" in str(err.value)
    assert not (tmp_path / "out" / "train.spacy").exists() and not (tmp_path / "out" / "report.json").exists()


def test_disjoint_labels_exit_non_zero_from_the_cli(tmp_path):
    from conftest import convert_cli as cli

    train = write(tmp_path / "train.jsonl", drug_tasks("t", 4))
    dev = write(tmp_path / "dev.jsonl", drug_tasks("d", 2, labels=("CHEBI", "PR")))
    result = cli(train, tmp_path / "out", "--eval", dev)
    assert result.exit_code == 1
    assert "train has DOSE, DRUG; dev has CHEBI, PR" in result.text


def test_partly_disjoint_labels_are_warned_in_report_and_output(tmp_path):
    from conftest import convert_cli as cli

    train = write(tmp_path / "train.jsonl", drug_tasks("t", 4) + [task("t9", "Known asthma", [(1, 2, "DISEASE")])])
    dev = write(tmp_path / "dev.jsonl", drug_tasks("d", 2, labels=("DRUG", "ROUTE")))
    result = cli(train, f"eval:{dev}", tmp_path / "out")
    assert result.exit_code == 0, result.text
    report = srsly.read_json(tmp_path / "out" / "report.json")
    check = report["label_check"]
    assert check["only_in_train_not_dev"] == ["DISEASE", "DOSE"] and check["only_in_dev"] == ["ROUTE"]
    assert check["warnings"] == [
        "labels in train but not in dev (not evaluated): DISEASE, DOSE",
        "labels in dev but not in train (never predicted, recall 0): ROUTE",
    ]
    assert set(check["warnings"]) <= set(report["warnings"])
    assert "labels in dev but not in train (never predicted, recall 0): ROUTE" in result.text


def test_the_sample_default_carries_its_own_dev_article():
    project = srsly.read_yaml(ROOT / "project.yml")
    variables = project["vars"]
    assert variables["prodigy_eval"] == ""
    sources = variables["prodigy_source"].split()
    assert sources == ["assets/craft_sample/train.jsonl", "eval:assets/craft_sample/dev.jsonl"]
    convert_cmd = next(c for c in project["commands"] if c["name"] == "convert")
    # a database, URL or env:NAME is no file: weasel would stop on a missing dependency
    assert not any("prodigy_source" in dep for dep in convert_cmd["deps"])


def test_the_sample_converts_with_its_dev_article(tmp_path):
    sample = ROOT / "assets" / "craft_sample"
    report = convert([str(sample / "train.jsonl"), f"eval:{sample / 'dev.jsonl'}"], tmp_path, ConvertOptions())
    dev_ids = {json.loads(line)["meta"]["doc_id"] for line in (sample / "dev.jsonl").open(encoding="utf8")}
    docs = list(DocBin().from_disk(tmp_path / "dev.spacy").get_docs(spacy.blank("en").vocab))
    assert {d.user_data["doc_key"] for d in docs} == {f"doc:{i}" for i in dev_ids}
    assert report["label_check"]["only_in_train_not_dev"] == ["MOP"]


def test_label_warnings_and_own_source_reach_meta_and_card(tmp_path):
    from biomed_spancat.publish.hub import build_card, normalize_metrics
    from biomed_spancat.publish.packaging import CRAFT_SOURCE, build_meta

    train = write(tmp_path / "train.jsonl", drug_tasks("t", 4) + [task("t9", "Known asthma", [(1, 2, "DISEASE")])])
    dev = write(tmp_path / "dev.jsonl", drug_tasks("d", 2))
    report = convert([train, f"eval:{dev}"], tmp_path / "out", ConvertOptions())
    source = {"requested": "x/y", "used": "x/y", "stand_in": False}
    meta = build_meta("biomed_spancat", "1.0.0", source, report)
    assert meta["training_data"]["label_check"]["warnings"] == [
        "labels in train but not in dev (not evaluated): DISEASE"
    ]
    assert meta["sources"][0] == {"name": "Own annotations (jsonl; counts under Training data)"}
    meta["labels"] = {"spancat": ["DISEASE", "DOSE", "DRUG"]}
    cm = normalize_metrics({"spans": {"p": 0.5, "r": 0.5, "f": 0.5},
                            "per_label": {"DRUG": {"p": 0.5, "r": 0.5, "f": 0.5}}}, "sc", "m.json")
    card = build_card(meta, cm, spancat={"spans_key": "sc", "component": "spancat"}, repo_id="a/b",
                      wheel_name="en_biomed_spancat-1.0.0-py3-none-any.whl", license_id="cc-by-4.0")
    assert "- Train and eval data differ: labels in train but not in dev (not evaluated): DISEASE." in card
    assert "CRAFT" not in card and "dev split of Own annotations" in card
    # the shipped sample still credits CRAFT
    sample = ROOT / "assets" / "craft_sample"
    craft = convert([str(sample / "train.jsonl"), f"eval:{sample / 'dev.jsonl'}"], tmp_path / "s", ConvertOptions())
    assert build_meta("biomed_spancat", "1.0.0", source, craft)["sources"][0] == CRAFT_SOURCE
