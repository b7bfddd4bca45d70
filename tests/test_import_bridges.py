"""Argilla 2.x and Label Studio exports through the same `convert` path as
Prodigy: one report, one rejections file, read = kept + rejected + merged +
duplicates. The fixtures in tests/data/bridges/ are small hand-made exports
in each tool's real format:

- argilla_disk/: `rg.Dataset.to_disk` (records.json nested as
  `records.to_json` writes it, .argilla/settings.json, .argilla/dataset.json);
- argilla_flat.jsonl: `records.to_datasets().to_json()` (flattened, with
  `<question>.responses.status`);
- labelstudio_export.json: Label Studio's JSON export (annotations[].result[]).
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from spacy.tokens import DocBin
from spacy.vocab import Vocab

from biomed_spancat.ingest.argilla import normalize_record, read_argilla
from biomed_spancat.ingest.convert import ConvertOptions, convert
from biomed_spancat.ingest.labelstudio import read_label_studio, utf16_to_codepoints
from biomed_spancat.ingest.readers import ReadOptions, get_reader
from biomed_spancat.ingest.tasks import IngestError, pseudonym

DATA = Path(__file__).parent / "data" / "bridges"
ARGILLA_DISK = DATA / "argilla_disk"
ARGILLA_FLAT = DATA / "argilla_flat.jsonl"
LABEL_STUDIO = DATA / "labelstudio_export.json"
U1, U2 = "2f5b8d0e-6c1a-4c0e-9a51-3b0f6f1d7a01", "8c3e2a47-1d9b-4f6e-b2a8-5e7c9d0f1b02"


def run(sources, out, **kw):
    kw.setdefault("eval_split", 0.0)
    return convert([str(s) for s in sources], out, ConvertOptions(**kw))


def docs_by_text(path):
    docs = DocBin().from_disk(path).get_docs(Vocab())
    return {doc.text: doc for doc in docs}


def spans(doc, key="sc"):
    return sorted((s.text, s.label_) for s in doc.spans[key])


def rejections(out):
    return [json.loads(line) for line in (out / "rejections.jsonl").read_text().splitlines()]


def balance(report):
    return report["read"], report["kept"], report["rejected"], report["merged"], report["duplicates"]


# --- detection ---------------------------------------------------------------------


def test_formats_are_detected_from_content(tmp_path):
    assert get_reader(str(ARGILLA_DISK)).name == "argilla"
    assert get_reader(str(ARGILLA_DISK / "records.json")).name == "argilla"
    assert get_reader(str(ARGILLA_FLAT)).name == "argilla"
    assert get_reader(str(LABEL_STUDIO)).name == "labelstudio"
    prodigy = tmp_path / "prodigy.jsonl"
    prodigy.write_text(json.dumps({"text": "Pax6", "spans": [], "answer": "accept"}) + "\n")
    assert get_reader(str(prodigy)).name == "jsonl"  # Prodigy exports keep their reader
    renamed = tmp_path / "export.txt"  # the name does not matter, the content does
    renamed.write_text(LABEL_STUDIO.read_text(encoding="utf8"), encoding="utf8")
    assert get_reader(str(renamed)).name == "labelstudio"


def test_nested_and_flat_records_read_alike():
    nested = {"id": "r", "fields": {"text": "Pax6"}, "metadata": {"doc_id": "P1"}, "suggestions": {},
              "responses": {"spans": [{"value": [{"start": 0, "end": 4, "label": "PR"}], "user_id": U1}]},
              "vectors": {}, "status": "completed", "_server_id": "x"}
    flat = {"id": "r", "status": "completed", "_server_id": "x", "text": "Pax6", "doc_id": "P1",
            "spans.responses": [[{"start": 0, "end": 4, "label": "PR"}]], "spans.responses.users": [U1],
            "spans.responses.status": ["submitted"]}
    a, b = normalize_record(nested), normalize_record(flat)
    assert a.record_id == b.record_id == "r"
    assert [r[:3] for r in a.responses] == [r[:3] for r in b.responses]
    assert a.responses[0][3] is None and b.responses[0][3] == "submitted"
    assert a.values["text"] == b.values["text"] == "Pax6"


def test_utf16_offsets():
    assert utf16_to_codepoints("Pax6 binds DNA") is None
    mapping = utf16_to_codepoints("𝛽-catenin")  # 𝛽 is two UTF-16 code units
    assert mapping[0] == 0 and mapping[2] == 1 and mapping[10] == 9


# --- Argilla -----------------------------------------------------------------------


def test_argilla_to_disk_end_to_end(tmp_path):
    report = run([ARGILLA_DISK], tmp_path)
    # r1: 2 users (merged), r2: 1 (misaligned 'Brca' in 'Brca1'), r3: nobody, r4: 1 (no spans)
    assert balance(report) == (5, 2, 2, 1, 0) and report["balanced"]
    assert report["rejected_by_reason"] == {"argilla_no_response": 1, "misaligned_span": 1}
    assert report["merge"]["disagreements_per_label"] == {"UBERON": 1}
    docs = docs_by_text(tmp_path / "train.spacy")
    # the settings name the span question's field: 'abstract', not 'title'
    r1 = docs["BMP2 and BMP4 regulate limb patterning in the mouse embryo."]
    # majority of two annotators: the spans both marked (u1's 'limb' UBERON is out)
    assert spans(r1) == [("BMP2", "PR"), ("BMP4", "PR"), ("limb patterning", "GO_BP")]
    assert r1.user_data["doc_key"] == "doc:PMC101"  # metadata doc_id groups the split
    assert spans(docs["The samples were stored overnight."]) == []  # a submitted empty answer is data
    rows = rejections(tmp_path)
    assert [(r["reason"], r["row"]) for r in rows] == [("misaligned_span", 2), ("argilla_no_response", 3)]
    assert rows[0]["source"].endswith("argilla_disk/records.json") and rows[0]["dataset"] == "craft_spans"
    assert "'Brca' does not fall on token boundaries" in rows[0]["detail"]
    assert rows[1]["detail"] == "record r3: no response to the span question"


def test_argilla_align_policy_applies(tmp_path):
    report = run([ARGILLA_DISK], tmp_path, align="expand")
    assert balance(report) == (5, 3, 1, 1, 0)
    doc = docs_by_text(tmp_path / "train.spacy")["Mutations in Brca1 cause breast cancer."]
    assert spans(doc) == [("Brca1", "PR"), ("breast cancer", "MONDO")]


def test_argilla_flat_only_submitted_responses(tmp_path):
    report = run([ARGILLA_FLAT], tmp_path)
    # f1: submitted + discarded + draft; f2: two identical submitted; f3: one; f4: pending
    assert balance(report) == (7, 3, 3, 1, 0) and report["balanced"]
    assert report["rejected_by_reason"] == {"argilla_discarded": 1, "argilla_draft": 1, "argilla_no_response": 1}
    assert report["merge"]["groups_with_disagreement"] == 0
    docs = docs_by_text(tmp_path / "train.spacy")
    f1 = docs["Expression of Shh was detected in the apical ectodermal ridge."]
    assert spans(f1) == [("Shh", "PR"), ("apical ectodermal ridge", "UBERON")]  # the draft's 'ridge' is not in
    f3 = docs["Sonic hedgehog signaling patterns the vertebrate limb."]
    assert spans(f3) == [("Sonic hedgehog", "PR"), ("Sonic hedgehog signaling", "GO_BP"),
                         ("limb", "UBERON"), ("vertebrate", "NCBITaxon")]  # the overlap survives
    rows = rejections(tmp_path)
    assert [(r["line"], r["reason"]) for r in rows] == [
        (1, "argilla_discarded"), (1, "argilla_draft"), (4, "argilla_no_response")
    ]
    assert rows[0]["detail"] == f"record f1: user {pseudonym(U2, 'argilla')}'s response is discarded, not submitted"


def test_argilla_hub_parquet(tmp_path):
    """`to_hub` pushes `records.to_datasets()` as parquet: same records, same counts."""
    from datasets import Dataset

    rows = [json.loads(line) for line in ARGILLA_FLAT.read_text().splitlines()]
    parquet = tmp_path / "train-00000-of-00001.parquet"
    Dataset.from_list(rows).to_parquet(str(parquet))
    assert get_reader(str(parquet)).name == "argilla"
    report = run([parquet], tmp_path / "out")
    assert balance(report) == (7, 3, 3, 1, 0)
    assert [(r["row"], r["reason"]) for r in rejections(tmp_path / "out")] == [
        (1, "argilla_discarded"), (1, "argilla_draft"), (4, "argilla_no_response")
    ]


def test_argilla_bad_input_messages(tmp_path):
    broken = tmp_path / "records.json"
    broken.write_text('[{"id": "a", "fields": {"text": "x"}, "responses": {}},\n {"id": "b", "fields": }]')
    with pytest.raises(IngestError, match=r"records\.json:2:24: malformed JSON export: Expecting value"):
        list(read_argilla(str(broken), None, ReadOptions()))
    nospan = tmp_path / "nospan.json"
    nospan.write_text(json.dumps([{"id": "a", "fields": {"text": "x"}, "metadata": {}, "suggestions": {},
                                   "responses": {"label": [{"value": "yes", "user_id": U1}]}, "vectors": {}}]))
    with pytest.raises(IngestError, match=r"nospan\.json: no span question found"):
        list(read_argilla(str(nospan), None, ReadOptions()))
    lines = [
        {"id": "ok", "text": "Pax6", "spans.responses": [[{"start": 0, "end": 4, "label": "PR"}]],
         "spans.responses.users": [U1], "spans.responses.status": ["submitted"]},
        {"id": "two", "title": "A", "body": "B", "spans.responses": [[]], "spans.responses.users": [U1],
         "spans.responses.status": ["submitted"]},
        {"id": "bad", "text": "Pax6", "spans.responses": ["PR"], "spans.responses.users": [U1],
         "spans.responses.status": ["submitted"]},
        {"id": "len", "text": "Pax6", "spans.responses": [[]], "spans.responses.users": [],
         "spans.responses.status": ["submitted"]},
    ]
    flat = tmp_path / "flat.jsonl"
    flat.write_text("".join(json.dumps(l) + "\n" for l in lines) + "{not json\n")
    report = run([flat], tmp_path / "out")
    assert balance(report) == (5, 1, 4, 0, 0)
    rows = {r["line"]: r for r in rejections(tmp_path / "out")}
    assert rows[2]["reason"] == "missing_text" and "text fields: title, body" in rows[2]["detail"]
    assert rows[3]["reason"] == "bad_spans" and "is not a list of spans" in rows[3]["detail"]
    assert rows[4]["reason"] == "malformed" and "must be lists of the same length" in rows[4]["detail"]
    assert rows[5]["reason"] == "malformed" and rows[5]["detail"].startswith("malformed JSON")
    settings_dir = tmp_path / "disk"
    (settings_dir / ".argilla").mkdir(parents=True)
    (settings_dir / "records.json").write_text("[]")
    (settings_dir / ".argilla" / "settings.json").write_text(json.dumps(
        {"questions": [{"name": "label", "settings": {"type": "label_selection"}}], "fields": []}))
    with pytest.raises(IngestError, match=r"settings\.json: the dataset has no span question"):
        run([settings_dir], tmp_path / "out2")


# --- Label Studio ----------------------------------------------------------------------


def test_label_studio_end_to_end(tmp_path):
    report = run([LABEL_STUDIO], tmp_path)
    # task 1: 2 annotations + 1 cancelled; task 2: 2 (one ground truth); task 3: predictions only;
    # task 4: region text mismatch; task 5: one region with two labels; task 6: UTF-16 offsets
    assert balance(report) == (10, 4, 4, 2, 0) and report["balanced"]
    assert report["rejected_by_reason"] == {
        "bad_spans": 1, "labelstudio_cancelled": 1, "labelstudio_no_annotation": 1, "labelstudio_prediction": 1
    }
    docs = docs_by_text(tmp_path / "train.spacy")
    t1 = docs["Retinoic acid induces apoptosis in neural crest cells."]
    assert spans(t1) == [("Retinoic acid", "CHEBI")]  # majority of 2: what both marked
    t5 = docs["Glucose uptake by the Glut1 transporter."]
    assert spans(t5) == [("Glucose", "CHEBI"), ("Glut1", "CHEBI"), ("Glut1", "PR")]
    t6 = docs["𝛽-catenin binds Tcf4 in the nucleus."]
    assert spans(t6) == [("Tcf4", "PR"), ("nucleus", "GO_CC"), ("𝛽-catenin", "PR")]
    assert t1.user_data["doc_key"] == "doc:PMC301"
    rows = rejections(tmp_path)
    assert [(r["line"], r["reason"]) for r in rows] == [
        (2, "labelstudio_cancelled"), (311, "labelstudio_prediction"), (311, "labelstudio_no_annotation"),
        (368, "bad_spans"),
    ]
    assert rows[0]["detail"] == f"task 1 annotation 13 by {pseudonym(3, 'labelstudio')}: cancelled (skipped)"
    assert "is 'Wnt1' in the text but 'Wnt2' in the export" in rows[3]["detail"]


@pytest.mark.parametrize(
    "merge,task1,task2",
    [
        # latest: annotator 2 (11:00) beats annotator 1 (10:00); on task 2 annotator 1 is later
        ("latest", [("Retinoic acid", "CHEBI"), ("neural crest cells", "CL")], [("Pax6", "PR"), ("lens", "UBERON")]),
        # review: the ground-truth annotation wins, older or not
        ("review", [("Retinoic acid", "CHEBI")], [("Pax6", "PR"), ("lens", "UBERON"), ("retina", "UBERON")]),
        ("majority", [("Retinoic acid", "CHEBI")], [("Pax6", "PR"), ("lens", "UBERON")]),
    ],
)
def test_label_studio_merge_policies(tmp_path, merge, task1, task2):
    report = run([LABEL_STUDIO], tmp_path, merge=merge)
    assert balance(report) == (10, 4, 4, 2, 0)
    docs = docs_by_text(tmp_path / "train.spacy")
    assert spans(docs["Retinoic acid induces apoptosis in neural crest cells."]) == task1
    assert spans(docs["Pax6 is expressed in the developing lens and retina."]) == task2


def test_label_studio_bad_input_messages(tmp_path):
    tasks = [
        {"id": 1, "data": {"title": "T", "body": "Pax6 binds"}, "annotations": [
            {"id": 1, "completed_by": 1, "result": [], "was_cancelled": False}]},
        {"id": 2, "data": {"text": "Pax6 binds"}, "annotations": [
            {"id": 2, "completed_by": 1, "was_cancelled": False, "result": [
                {"id": "h", "type": "hypertextlabels", "value": {"startOffset": 0, "endOffset": 4,
                                                                 "hypertextlabels": ["PR"]}}]}]},
        {"id": 3, "data": {"text": "Pax6 binds"}, "annotations": [
            {"id": 3, "completed_by": 1, "was_cancelled": False, "result": [
                {"id": "n", "type": "labels", "value": {"start": 0, "end": 4, "text": "Pax6", "labels": []}}]}]},
        "not a task",
    ]
    export = tmp_path / "ls.json"
    export.write_text(json.dumps(tasks, indent=1))
    report = run([export], tmp_path / "out", fmt="labelstudio")
    assert balance(report) == (4, 0, 4, 0, 0)
    rows = rejections(tmp_path / "out")
    assert [r["reason"] for r in rows] == ["missing_text", "labelstudio_unsupported_region", "bad_spans", "malformed"]
    assert "string keys: title, body" in rows[0]["detail"]
    assert "hypertextlabels have no character offsets" in rows[1]["detail"]
    assert "region n [0:4] has no labels" in rows[2]["detail"]
    assert all(r["line"] > 1 for r in rows)
    broken = tmp_path / "broken.json"
    broken.write_text('[\n  {"id": 1, "data": {"text": "x"}, "annotations": [}\n]')
    with pytest.raises(IngestError, match=r"broken\.json:2:52: malformed JSON export"):
        list(read_label_studio(str(broken), None, ReadOptions()))


# --- one convert path for every tool ---------------------------------------------------------


def test_mixed_sources_one_report_one_rejections_file(tmp_path):
    prodigy = tmp_path / "prodigy.jsonl"
    prodigy.write_text(
        json.dumps({"text": "Pax6 binds DNA.", "spans": [{"start": 0, "end": 4, "label": "PR"}], "answer": "accept",
                    "_input_hash": 1, "_task_hash": 2}) + "\n"
        + json.dumps({"text": "Skip me.", "spans": [], "answer": "ignore", "_input_hash": 3, "_task_hash": 4}) + "\n"
    )
    report = run([prodigy, LABEL_STUDIO, ARGILLA_FLAT], tmp_path / "out", eval=[str(ARGILLA_DISK)])
    assert balance(report) == (2 + 10 + 7 + 5, 1 + 4 + 3 + 2, 1 + 4 + 3 + 2, 2 + 1 + 1, 0)
    assert report["balanced"]
    assert set(report["read_by_source"]) == {
        str(prodigy), str(LABEL_STUDIO), str(ARGILLA_FLAT), str(ARGILLA_DISK / "records.json")
    }
    assert report["kept_by_split"] == {"train": 8, "dev": 2}
    reasons = [r["reason"] for r in rejections(tmp_path / "out")]
    assert sorted(reasons) == sorted([
        "answer_ignore", "labelstudio_cancelled", "labelstudio_no_annotation", "labelstudio_prediction", "bad_spans",
        "argilla_discarded", "argilla_draft", "argilla_no_response", "misaligned_span", "argilla_no_response",
    ])
    assert len(DocBin().from_disk(tmp_path / "out" / "dev.spacy")) == 2


def test_convert_cli_finds_the_bridges(tmp_path, project_root):
    """`python -m scripts.convert` in a fresh process sees the Argilla and
    Label Studio readers (readers.PLUGIN_MODULES loads them on first use)."""
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "scripts.convert", str(LABEL_STUDIO), str(ARGILLA_FLAT), str(out), "--eval-split", "0"],
        cwd=project_root, capture_output=True, text=True,
    )
    assert result.returncode == 0, (
        "convert did not recognise the exports: readers.PLUGIN_MODULES must list 'argilla' and "
        f"'labelstudio'\n{result.stdout}\n{result.stderr}"
    )
    report = json.loads((out / "report.json").read_text())
    assert balance(report) == (17, 7, 7, 3, 0)
