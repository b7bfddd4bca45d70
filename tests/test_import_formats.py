"""Real export shapes of Label Studio (0.x and 1.x; JSON, JSON lines, one task
per file, JSON-MIN) and Argilla (1.x TokenClassification, 2.x), each with its
exact ledger and kept spans; no annotator identity in any output; files no
reader can read refused with a message naming what they look like.

Where the fixtures' shapes come from (tests/data/bridges/):

- labelstudio_0x.json: Label Studio 0.x's JSON export, a pretty-printed array
  of tasks with `completions` (`id`, `lead_time`, `created_at` in epoch
  seconds, `was_cancelled`, `completed_by` an int, `result` regions with
  `source`), as in label-studio-converter's test/fixtures/completions/348.json
  and label_studio/core/old_ls_migration.py (which reads `completions`,
  `lead_time`, `was_cancelled` and epoch `created_at`); task 4's `skipped`
  is the older 0.x flag that label-studio-converter filters with `was_cancelled`;
- labelstudio_0x_task5.json: one task per file, 0.x's `completions/<id>.json`;
- labelstudio_1x.json: Label Studio 1.x's JSON export, compact, with the
  annotation, review, draft and prediction fields of label-studio-converter's
  tests/data/test_export_csv/csv_test.json (`completed_by` and `reviews[].created_by`
  as user objects with e-mails, `created_username`, `updated_by`,
  `comment_authors`, task-level `drafts` and `predictions`);
- labelstudio_tasks.jsonl: the same tasks one per line;
- labelstudio_min.json: JSON-MIN as label-studio-converter's convert_to_json_min
  writes it (`annotator` is the user's e-mail or id, `annotation_id`, ...);
- argilla_v1.jsonl: Argilla 1.x `rg.load(...).to_pandas().to_json(orient="records",
  lines=True)`: `annotation` as [label, start, end], `prediction` as [label,
  start, end, score], `status`, `annotation_agent`, `event_timestamp` in epoch ms;
- argilla_v1_datasets.json: `to_datasets()` rows (entities as {label, start,
  end} dicts, metadata as a JSON string; argilla 1.x
  DatasetForTokenClassification._to_datasets_dict), one record annotated in
  two annotators' copies (same id);
- argilla_v2_people.json: Argilla 2.x `records.to_json`, with people in
  `responses[].user_id` and `metadata`;
- argilla_v1_feedback.jsonl: an Argilla 1.x FeedbackDataset with a span
  question (1.26+) as `format_as("datasets")` rows: `<question>: [{"user_id",
  "value", "status"}]`, `<question>-suggestion`, `<question>-suggestion-metadata`
  (the column names of argilla 1.x's Hub dataset card template), `external_id`,
  `metadata` as a JSON string.
"""
import json
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from spacy.tokens import DocBin
from spacy.vocab import Vocab

from biomed_spancat.ingest.convert import ConvertOptions, convert
from biomed_spancat.ingest.labelstudio import read_label_studio
from biomed_spancat.ingest.readers import ReadOptions, get_reader
from biomed_spancat.ingest.sniff import describe, peek, record_kind
from biomed_spancat.ingest.tasks import IngestError, pseudonym

DATA = Path(__file__).parent / "data" / "bridges"

# Every person planted in the fixtures (e-mails, names); none may reach an output.
PEOPLE = [
    "zorbina", "quillfeather", "revalda", "oxtongue", "noid", "pemberwick", "drafty", "mcdraftface",
    "marchbanks", "morwenna", "wexley", "tollemache", "another.annotator", "@example.org",
]


def run(source, out, **kw):
    kw.setdefault("eval_split", 0.0)
    return convert([str(source)], out, ConvertOptions(**kw))


def ledger(report):
    return {
        "read": report["read"],
        "kept": report["kept"],
        "rejected": report["rejected"],
        "merged": report["merged"],
        "duplicates": report["duplicates"],
        "rejected_by_reason": report["rejected_by_reason"],
        "merge": report["merge"],
    }


def kept_spans(out):
    docs = DocBin().from_disk(out / "train.spacy").get_docs(Vocab())
    return {doc.text: sorted((s.text, s.label_) for s in doc.spans["sc"]) for doc in docs}


def rejections(out):
    return [json.loads(line) for line in (out / "rejections.jsonl").read_text().splitlines()]


def merge_stats(groups=0, disagreeing=0, per_label=None, superseded=0, withdrawn=0):
    return {"groups_merged": groups, "groups_with_disagreement": disagreeing,
            "superseded": superseded, "withdrawn": withdrawn,
            "disagreements_per_label": per_label or {}}


# --- Label Studio --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [None, "labelstudio"])
def test_label_studio_0x_pretty_printed_completions(tmp_path, fmt):
    assert get_reader(str(DATA / "labelstudio_0x.json")).name == "labelstudio"
    report = run(DATA / "labelstudio_0x.json", tmp_path, fmt=fmt)
    # 4 tasks on 290 lines: task 1 = prediction + kept + cancelled; task 2 = two agreeing completions;
    # task 3 = prediction, no completion; task 4 = one `skipped` completion
    assert ledger(report) == {
        "read": 8, "kept": 2, "rejected": 5, "merged": 1, "duplicates": 0,
        "rejected_by_reason": {"labelstudio_cancelled": 2, "labelstudio_no_annotation": 1,
                               "labelstudio_prediction": 2},
        "merge": merge_stats(groups=1),
    }
    assert kept_spans(tmp_path) == {
        "Sonic hedgehog is expressed in the notochord.": [("Sonic hedgehog", "PR"), ("notochord", "UBERON")],
        "Fgf8 and Fgf10 act in limb bud outgrowth.": [
            ("Fgf10", "PR"), ("Fgf8", "PR"), ("limb bud", "UBERON"), ("limb bud outgrowth", "GO_BP")],
    }
    assert [(r["line"], r["reason"], r["detail"]) for r in rejections(tmp_path)] == [
        (2, "labelstudio_prediction", "task 1 prediction (model ner-0.1): not an annotation"),
        (2, "labelstudio_cancelled", f"task 1 annotation 1002 by {pseudonym(2, 'labelstudio')}: cancelled (skipped)"),
        (229, "labelstudio_prediction", "task 3 prediction (model ner-0.1): not an annotation"),
        (229, "labelstudio_no_annotation", "task 3: no annotation"),
        (261, "labelstudio_cancelled", f"task 4 annotation 4001 by {pseudonym(1, 'labelstudio')}: cancelled (skipped)"),
    ]


def test_label_studio_0x_epoch_created_at_orders_latest(tmp_path):
    """0.x writes `created_at` as epoch seconds: `--merge latest` takes the later completion."""
    tasks = json.loads((DATA / "labelstudio_0x.json").read_text())
    second = tasks[1]["completions"][1]
    second["result"] = second["result"][:2]  # the later completion (created_at 1600000300) keeps only Fgf8/Fgf10
    export = tmp_path / "ls.json"
    export.write_text(json.dumps(tasks, indent=4))
    run(export, tmp_path / "out", merge="latest")
    fgf = kept_spans(tmp_path / "out")["Fgf8 and Fgf10 act in limb bud outgrowth."]
    assert fgf == [("Fgf10", "PR"), ("Fgf8", "PR")]


def test_label_studio_0x_one_task_per_file(tmp_path):
    assert peek(str(DATA / "labelstudio_0x_task5.json")).layout == "object"
    report = run(DATA / "labelstudio_0x_task5.json", tmp_path)
    assert ledger(report) == {"read": 1, "kept": 1, "rejected": 0, "merged": 0, "duplicates": 0,
                              "rejected_by_reason": {}, "merge": merge_stats()}
    assert kept_spans(tmp_path) == {"Wnt3a signalling patterns the somites.": [("Wnt3a", "PR"), ("somites", "UBERON")]}


def test_label_studio_1x_drafts_predictions_reviews(tmp_path):
    report = run(DATA / "labelstudio_1x.json", tmp_path)
    # task 11: draft + prediction + accepted-by-review annotation + cancelled one (user object without id);
    # task 12: annotation whose latest review rejected it + one by user 4
    assert ledger(report) == {
        "read": 6, "kept": 2, "rejected": 4, "merged": 0, "duplicates": 0,
        "rejected_by_reason": {"labelstudio_cancelled": 1, "labelstudio_draft": 1, "labelstudio_prediction": 1,
                               "labelstudio_review_rejected": 1},
        "merge": merge_stats(),
    }
    assert kept_spans(tmp_path) == {
        "Retinoic acid signalling patterns the hindbrain.": [("Retinoic acid", "CHEBI"), ("hindbrain", "UBERON")],
        "Bmp4 induces apoptosis in the interdigital mesenchyme.": [
            ("Bmp4", "PR"), ("apoptosis", "GO_BP"), ("interdigital mesenchyme", "UBERON")],
    }
    rows = rejections(tmp_path)
    assert [r["reason"] for r in rows] == [
        "labelstudio_draft", "labelstudio_prediction", "labelstudio_cancelled", "labelstudio_review_rejected"]
    assert rows[0]["detail"] == f"task 11 draft 5 by {pseudonym(3, 'labelstudio')}: not an annotation"
    assert rows[3]["detail"] == (
        f"task 12 annotation 121 by {pseudonym(2, 'labelstudio')}: rejected by its latest review")
    # the user object with an id and the bare id are one annotator
    assert pseudonym(2, "labelstudio") in rows[3]["detail"]


def test_label_studio_review_accepted_is_the_reviewed_answer(tmp_path):
    """`--merge review` prefers an annotation whose latest review accepted it."""
    tasks = json.loads((DATA / "labelstudio_1x.json").read_text())
    other = json.loads(json.dumps(tasks[1]["annotations"][1]))
    other["id"], other["completed_by"] = 113, 4
    other["result"] = [r for r in tasks[0]["annotations"][0]["result"] if r["value"]["text"] == "hindbrain"]
    tasks[0]["annotations"].append(other)
    export = tmp_path / "ls.json"
    export.write_text(json.dumps(tasks))
    run(export, tmp_path / "out", merge="review")
    assert kept_spans(tmp_path / "out")["Retinoic acid signalling patterns the hindbrain."] == [
        ("Retinoic acid", "CHEBI"), ("hindbrain", "UBERON")]


def test_label_studio_json_lines(tmp_path):
    assert get_reader(str(DATA / "labelstudio_tasks.jsonl")).name == "labelstudio"
    report = run(DATA / "labelstudio_tasks.jsonl", tmp_path)
    assert ledger(report) == {"read": 3, "kept": 1, "rejected": 2, "merged": 0, "duplicates": 0,
                              "rejected_by_reason": {"bad_spans": 1, "malformed": 1}, "merge": merge_stats()}
    assert kept_spans(tmp_path) == {"Hoxa13 is expressed in the autopod.": [("Hoxa13", "PR"), ("autopod", "UBERON")]}
    rows = rejections(tmp_path)
    assert [(r["line"], r["reason"]) for r in rows] == [(2, "malformed"), (3, "bad_spans")]
    assert rows[0]["detail"] == "malformed JSON: Expecting value at column 56"
    assert rows[1]["detail"] == (
        f"task 33 annotation 331 by {pseudonym(1, 'labelstudio')}: region k1 [0:4] is 'Tbx5' in the text "
        "but 'Tbx4' in the export (edited text?)"
    )


def test_label_studio_json_min(tmp_path):
    report = run(DATA / "labelstudio_min.json", tmp_path)
    # task 21 annotated twice (an e-mail, then user 7): majority keeps what both marked
    assert ledger(report) == {"read": 3, "kept": 2, "rejected": 0, "merged": 1, "duplicates": 0,
                              "rejected_by_reason": {}, "merge": merge_stats(1, 1, {"UBERON": 1})}
    assert kept_spans(tmp_path) == {
        "Gdf5 marks the joint interzone.": [("Gdf5", "PR")],
        "Ihh regulates chondrocyte proliferation.": [("Ihh", "PR"), ("chondrocyte proliferation", "GO_BP")],
    }


def test_label_studio_broken_array_names_line_and_record(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('[\n  {"id": 1, "data": {"text": "x"}, "completions": []},\n  {"id": 2, "data": }\n]')
    with pytest.raises(IngestError, match=r"broken\.json:3:21: malformed JSON export: Expecting value "
                                          r"\(in record 2 of the array\)"):
        list(read_label_studio(str(broken), None, ReadOptions()))
    not_tasks = tmp_path / "ls.json"
    not_tasks.write_text(json.dumps([{"id": 1, "data": {"text": "Pax6"}, "annotations": []}, 7], indent=2))
    run(not_tasks, tmp_path / "out")
    rows = rejections(tmp_path / "out")
    assert [(r["line"], r["reason"], r["detail"]) for r in rows] == [
        (2, "labelstudio_no_annotation", "task 1: no annotation"),
        (9, "malformed", "record 2 of the array: malformed task: a JSON int, not an object"),
    ]


# --- Argilla ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [None, "argilla"])
def test_argilla_1x_pandas_json_lines(tmp_path, fmt):
    assert get_reader(str(DATA / "argilla_v1.jsonl")).name == "argilla"
    report = run(DATA / "argilla_v1.jsonl", tmp_path, fmt=fmt)
    # v1 Validated + prediction; v2 Default + prediction; v3 Discarded; v4 Validated, no entities;
    # v5 Validated with a broken entity
    assert ledger(report) == {
        "read": 7, "kept": 2, "rejected": 5, "merged": 0, "duplicates": 0,
        "rejected_by_reason": {"argilla_default": 1, "argilla_discarded": 1, "argilla_prediction": 2, "bad_spans": 1},
        "merge": merge_stats(),
    }
    assert kept_spans(tmp_path) == {
        "Pax6 binds DNA in the lens placode.": [("DNA", "CHEBI"), ("Pax6", "PR"), ("lens placode", "UBERON")],
        "The samples were stored overnight.": [],  # validated with no entities: data, not nothing
    }
    assert [(r["line"], r["reason"], r["detail"]) for r in rejections(tmp_path)] == [
        (1, "argilla_prediction", "record v1: a prediction is not an annotation"),
        (2, "argilla_prediction", "record v2: a prediction is not an annotation"),
        (2, "argilla_default", "record v2: status Default, not validated"),
        (3, "argilla_discarded", "record v3: status Discarded, not validated"),
        (5, "bad_spans", "record v5: annotation entity 0 is ['PR', 0], not [label, start, end]"),
    ]


def test_argilla_1x_datasets_rows(tmp_path):
    report = run(DATA / "argilla_v1_datasets.json", tmp_path)
    # one record in two annotators' copies: merged by majority (the UBERON spans differ)
    assert ledger(report) == {"read": 3, "kept": 1, "rejected": 1, "merged": 1, "duplicates": 0,
                              "rejected_by_reason": {"argilla_prediction": 1},
                              "merge": merge_stats(1, 1, {"UBERON": 2})}
    assert kept_spans(tmp_path) == {
        "Fgf4 and Fgf8 signal from the apical ectodermal ridge.": [("Fgf4", "PR"), ("Fgf8", "PR")]}
    assert [(r["row"], r["reason"]) for r in rejections(tmp_path)] == [(1, "argilla_prediction")]


def test_argilla_1x_hub_parquet(tmp_path):
    """`to_datasets().push_to_hub` stores the rows as parquet: same counts."""
    from datasets import Dataset

    rows = json.loads((DATA / "argilla_v1_datasets.json").read_text())
    parquet = tmp_path / "train-00000-of-00001.parquet"
    Dataset.from_list(rows).to_parquet(str(parquet))
    assert get_reader(str(parquet)).name == "argilla"
    report = run(parquet, tmp_path / "out")
    assert (report["read"], report["kept"], report["merged"], report["rejected_by_reason"]) == (
        3, 1, 1, {"argilla_prediction": 1})


def test_argilla_2x_keeps_working_with_people_pseudonymised(tmp_path):
    report = run(DATA / "argilla_v2_people.json", tmp_path)
    assert ledger(report) == {"read": 1, "kept": 1, "rejected": 0, "merged": 0, "duplicates": 0,
                              "rejected_by_reason": {}, "merge": merge_stats()}
    assert kept_spans(tmp_path) == {"Tbx5 and Tbx4 specify limb identity.": [("Tbx4", "PR"), ("Tbx5", "PR")]}


def test_argilla_1x_text_classification_is_refused(tmp_path):
    textcat = tmp_path / "textcat.json"
    textcat.write_text(json.dumps([{"text": "good", "inputs": {"text": "good"}, "prediction": [["POS", 0.9]],
                                    "annotation": "POS", "status": "Validated", "id": 1}], indent=2))
    with pytest.raises(IngestError, match="looks like Argilla 1.x TextClassification/Text2Text records"):
        get_reader(str(textcat))
    with pytest.raises(IngestError, match="Argilla 1.x TextClassification/Text2Text records hold no spans"):
        run(textcat, tmp_path / "out", fmt="argilla")


def test_argilla_1x_broken_line_names_it(tmp_path):
    lines = (DATA / "argilla_v1.jsonl").read_text().splitlines()
    broken = tmp_path / "v1.jsonl"
    broken.write_text("\n".join(lines[:1] + ['{"text": "cut", "tokens": ['] + lines[1:2]) + "\n")
    report = run(broken, tmp_path / "out")
    assert (report["read"], report["kept"], report["rejected_by_reason"]) == (
        5, 1, {"argilla_default": 1, "argilla_prediction": 2, "malformed": 1})
    bad = [r for r in rejections(tmp_path / "out") if r["reason"] == "malformed"]
    assert [(r["line"], r["detail"]) for r in bad] == [(2, "malformed JSON: Expecting value at column 28")]


# --- no personal data in any output ------------------------------------------------------


@pytest.mark.parametrize("name", [
    "labelstudio_1x.json", "labelstudio_min.json", "argilla_v1.jsonl", "argilla_v1_datasets.json",
    "argilla_v2_people.json", "argilla_v1_feedback.jsonl", "labelstudio_export.json",
])
def test_no_annotator_identity_in_any_output(tmp_path, project_root, name):
    source = DATA / name
    assert any(p in source.read_text().lower() for p in PEOPLE)  # the fixture does hold people
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "scripts.convert", str(source), str(out), "--eval-split", "0.5"],
        cwd=project_root, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    texts = {"stdout": result.stdout, "stderr": result.stderr}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):  # the outputs' manifests too
        data = path.read_bytes()
        if path.suffix == ".spacy":
            data = zlib.decompress(data)  # DocBin: zlib-compressed msgpack, user_data inside
        texts[path.name] = data.decode("utf8", errors="replace")
    assert {"report.json", "rejections.jsonl", "train.spacy", "dev.spacy"} <= set(texts)
    leaks = {(where, p) for where, text in texts.items() for p in PEOPLE if p in text.lower()}
    assert leaks == set()


# --- what no reader reads -------------------------------------------------------------------


def _docbin(path):
    import spacy

    DocBin(docs=[spacy.blank("en")("Pax6 binds DNA.")]).to_disk(path)


@pytest.mark.parametrize("name,content,expected", [
    ("doccano.jsonl", '{"id": 1, "text": "EU rejects it.", "label": [[0, 2, "ORG"]]}\n',
     "looks like a Doccano export (text + [start, end, label] lists), as JSON lines"),
    ("table.csv", 'text,label\n"Pax6 binds",PR\n', "looks like a CSV table (header: text,label)"),
    ("conll.txt", "EU B-ORG\nrejects O\nGerman B-MISC\n", "looks like CoNLL/IOB (one token and tag per line)"),
    ("other.json", '{\n  "foo": {"bar": 1},\n  "baz": [1]\n}\n',
     "is a JSON object with keys foo, baz: not a known annotation export"),
    ("rows.json", '[{"sentence": "x", "tags": []}]', "is a JSON array whose first record has keys sentence, tags"),
    ("empty.json", "[]\n", "is an empty JSON array"),
    ("train.spacy", None, "looks like a spaCy DocBin (.spacy)"),
])
def test_unreadable_formats_are_refused_by_name(tmp_path, name, content, expected):
    path = tmp_path / name
    if content is None:
        _docbin(path)
    else:
        path.write_text(content)
    assert expected in describe(str(path))
    with pytest.raises(IngestError) as err:
        get_reader(str(path))
    assert str(err.value).startswith(f"{path}: cannot read this file: it {expected}")
    assert "pass --format jsonl|labelstudio|argilla" in str(err.value)


def test_refusal_exits_non_zero_with_the_message(tmp_path, project_root):
    doccano = tmp_path / "admin.jsonl"  # the name says JSONL; the content says Doccano
    doccano.write_text('{"id": 1, "text": "EU rejects it.", "label": [[0, 2, "ORG"]]}\n')
    result = subprocess.run([sys.executable, "-m", "scripts.convert", str(doccano), str(tmp_path / "out")],
                            cwd=project_root, capture_output=True, text=True)
    assert result.returncode == 1
    assert "looks like a Doccano export" in " ".join(result.stdout.split())
    assert not (tmp_path / "out" / "report.json").exists()


def test_a_json_array_is_never_read_as_json_lines(tmp_path, project_root):
    """The shape of issue 19: a pretty-printed 0.x export was read line by line,
    every line rejected as malformed JSON, exit 0. Forced to JSON lines, it is refused."""
    assert peek(str(DATA / "labelstudio_0x.json")).layout == "array"
    assert record_kind(peek(str(DATA / "labelstudio_0x.json")).first) == "labelstudio"
    with pytest.raises(IngestError, match=r"labelstudio_0x\.json: not JSON lines: it looks like a Label Studio "
                                          r"export, as a JSON array\. Leave out --format"):
        run(DATA / "labelstudio_0x.json", tmp_path / "out", fmt="jsonl")
    result = subprocess.run(
        [sys.executable, "-m", "scripts.convert", str(DATA / "labelstudio_0x.json"), str(tmp_path / "cli"),
         "--eval-split", "0"], cwd=project_root, capture_output=True, text=True)
    assert result.returncode == 0
    assert json.loads((tmp_path / "cli" / "report.json").read_text())["read"] == 8


def test_meta_keeps_no_personal_keys_or_emails():
    from biomed_spancat.ingest._bridge import scrub_meta

    meta = {"doc_id": "PMC1", "batch": 7, "annotator_email": "a@b.org", "curator": "Morwenna Marchbanks",
            "uploaded_by": "x", "contact": "Dr Q <q@example.org>", "reviewer": "R", "first_name": "Z",
            "gene_name": "Pax6", "paragraph": 0}
    assert scrub_meta(meta) == {"doc_id": "PMC1", "batch": 7, "gene_name": "Pax6", "paragraph": 0}


def test_label_studio_meta_has_no_people():
    tasks = list(read_label_studio(str(DATA / "labelstudio_1x.json"), None, ReadOptions()))
    kept = [t.data for t in tasks if t.data is not None]
    assert [t["meta"] for t in kept] == [
        {"source": "labelstudio", "task_id": 11, "project": 3, "batch": "b7", "doc_id": "PMC501"},
        {"source": "labelstudio", "task_id": 12, "project": 3, "doc_id": "PMC502"},
    ]
    assert [t["_annotator_id"] for t in kept] == [pseudonym(2, "labelstudio"), pseudonym(4, "labelstudio")]


def test_label_studio_0x_completions_folder(tmp_path):
    """0.x keeps one `<task id>.json` per task in `completions/`; the folder reads like the array."""
    folder = tmp_path / "completions"
    folder.mkdir()
    for task in json.loads((DATA / "labelstudio_0x.json").read_text()):
        (folder / f"{task['id']}.json").write_text(json.dumps(task, indent=2))
    (folder / "5.json").write_text((DATA / "labelstudio_0x_task5.json").read_text())
    assert get_reader(str(folder)).name == "labelstudio"
    report = run(folder, tmp_path / "out")
    assert (report["read"], report["kept"], report["merged"], report["rejected_by_reason"]) == (
        9, 3, 1, {"labelstudio_cancelled": 2, "labelstudio_no_annotation": 1, "labelstudio_prediction": 2})
    assert set(report["read_by_source"]) == {str(folder / f"{i}.json") for i in range(1, 6)}


def test_label_studio_0x_completion_without_annotator(tmp_path):
    """Early 0.x completions carry no `completed_by` (label-studio-converter's 348.json): no
    annotator id is made up for them, and messages say so."""
    task = json.loads((DATA / "labelstudio_0x_task5.json").read_text())
    del task["completions"][0]["completed_by"]
    task["completions"].append({"id": 5002, "lead_time": 1.0, "created_at": 1600000600, "was_cancelled": True,
                                "result": []})
    path = tmp_path / "5.json"
    path.write_text(json.dumps(task, indent=2))
    tasks = list(read_label_studio(str(path), None, ReadOptions()))
    assert "_annotator_id" not in tasks[0].data
    assert tasks[1].error == "task 5 annotation 5002 by an unnamed annotator: cancelled (skipped)"


def test_label_studio_0x_at_scale_counts_tasks_not_lines(tmp_path):
    """261 pretty-printed tasks span 8,000 lines: 261 annotations are read, all kept."""
    text = "Sonic hedgehog is expressed in the notochord number {}."
    tasks = [{"completions": [{"created_at": 1600000000 + i, "id": i * 1000 + 1, "lead_time": 2.0,
                               "completed_by": 1, "was_cancelled": False,
                               "result": [{"from_name": "ner", "id": f"r{i}", "source": "$text", "to_name": "text",
                                           "type": "labels", "value": {"start": 0, "end": 14, "labels": ["PR"],
                                                                       "text": "Sonic hedgehog"}}]}],
              "data": {"text": text.format(i)}, "id": i} for i in range(1, 262)]
    export = tmp_path / "project-1.json"
    export.write_text(json.dumps(tasks, indent=2))
    assert export.read_text().count("\n") > 8000
    report = run(export, tmp_path / "out")
    assert (report["read"], report["kept"], report["rejected"]) == (261, 261, 0)


def test_argilla_1x_feedback_dataset_rows(tmp_path):
    assert get_reader(str(DATA / "argilla_v1_feedback.jsonl")).name == "argilla"
    report = run(DATA / "argilla_v1_feedback.jsonl", tmp_path)
    # fb1: submitted + draft + discarded (the suggestion is not read); fb2: nobody answered
    assert ledger(report) == {
        "read": 4, "kept": 1, "rejected": 3, "merged": 0, "duplicates": 0,
        "rejected_by_reason": {"argilla_discarded": 1, "argilla_draft": 1, "argilla_no_response": 1},
        "merge": merge_stats(),
    }
    assert kept_spans(tmp_path) == {
        "Gli3 represses Shh in the anterior limb bud.": [
            ("Gli3", "PR"), ("Shh", "PR"), ("anterior limb bud", "UBERON")]}
    assert [(r["line"], r["detail"]) for r in rejections(tmp_path)] == [
        (1, f"record fb1: user {pseudonym('6a1e0c2d-2222-4a1b-9c3d-0a1b2c3d4e02', 'argilla')}'s response is draft, "
            "not submitted"),
        (1, f"record fb1: user {pseudonym('6a1e0c2d-3333-4a1b-9c3d-0a1b2c3d4e03', 'argilla')}'s response is "
            "discarded, not submitted"),
        (2, "record fb2: no response to the span question"),
    ]


def test_argilla_1x_feedback_records_as_dicts(tmp_path):
    """`FeedbackRecord.dict()` saved as JSON: responses are a list with `values` per question."""
    row = json.loads((DATA / "argilla_v1_feedback.jsonl").read_text().splitlines()[0])
    record = {
        "fields": {"text": row["text"]}, "metadata": {"doc_id": "PMC901"}, "external_id": "fb1",
        "responses": [{"user_id": r["user_id"], "values": {"entities": {"value": r["value"]}}, "status": r["status"]}
                      for r in row["entities"]],
        "suggestions": [{"question_name": "entities", "value": row["entities-suggestion"], "agent": "model"}],
    }
    path = tmp_path / "records.json"
    path.write_text(json.dumps([record], indent=2))
    report = run(path, tmp_path / "out")
    assert (report["read"], report["kept"], report["rejected_by_reason"]) == (
        3, 1, {"argilla_discarded": 1, "argilla_draft": 1})
    assert kept_spans(tmp_path / "out") == {
        row["text"]: [("Gli3", "PR"), ("Shh", "PR"), ("anterior limb bud", "UBERON")]}


def test_prodigy_tasks_saved_as_a_json_array(tmp_path):
    """Prodigy tasks written as one pretty-printed JSON array (srsly.write_json) are read
    element by element, each located by the line where it starts."""
    tasks = [{"text": "Pax6 binds DNA.", "spans": [{"start": 0, "end": 4, "label": "PR"}], "answer": "accept"},
             {"text": "Skip me.", "spans": [], "answer": "ignore"}, 7]
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps(tasks, indent=2))
    assert get_reader(str(path)).name == "jsonl"
    report = run(path, tmp_path / "out")
    assert (report["read"], report["kept"], report["rejected_by_reason"]) == (
        3, 1, {"answer_ignore": 1, "malformed_task": 1})
    assert [(r["line"], r["reason"]) for r in rejections(tmp_path / "out")] == [
        (13, "answer_ignore"), (18, "malformed_task")]


def test_argilla_meta_has_no_people():
    from biomed_spancat.ingest.argilla import read_argilla

    metas = {}
    names = ("argilla_v1.jsonl", "argilla_v1_datasets.json", "argilla_v2_people.json", "argilla_v1_feedback.jsonl")
    for name in names:
        for task in read_argilla(str(DATA / name), None, ReadOptions()):
            if task.data is not None:
                metas.setdefault(name, []).append(task.data["meta"])
    assert metas == {
        "argilla_v1.jsonl": [
            {"source": "argilla", "dataset": "argilla_v1", "record_id": "v1", "doc_id": "PMC601"},
            {"source": "argilla", "dataset": "argilla_v1", "record_id": "v4", "doc_id": "PMC604"},
        ],
        "argilla_v1_datasets.json": [
            {"source": "argilla", "dataset": "argilla_v1_datasets", "record_id": "d1", "doc_id": "PMC701"},
            {"source": "argilla", "dataset": "argilla_v1_datasets", "record_id": "d1", "doc_id": "PMC701"},
        ],
        "argilla_v2_people.json": [
            {"source": "argilla", "dataset": "argilla_v2_people", "record_id": "n1", "doc_id": "PMC801"}],
        "argilla_v1_feedback.jsonl": [
            {"source": "argilla", "dataset": "argilla_v1_feedback", "record_id": "fb1", "doc_id": "PMC901"}],
    }
