"""Model-assisted annotation: routing by thresholds, the review order and
budget, the Prodigy JSONL round trip through `convert`, reading inputs (and
saying what is wrong with them) and the Ray runner against a local cluster
(uptraining: test_uptrain.py)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
import spacy
from spacy.tokens import DocBin, Span, SpanGroup

from assist_fixtures import DOCS, NEW_TEXTS, make_task, write_jsonl
from biomed_spancat.util import PipelineError
from biomed_spancat.assist import (
    ORDERING,
    AssistError,
    ModelInfo,
    PreannotateOptions,
    ReviewQueue,
    Thresholds,
    TextRecord,
    doc_to_task,
    input_hash,
    iter_records,
    load_annotator,
    preannotate,
    route_task,
    task_hash,
    write_routes,
)

MODEL = ModelInfo("en_test", "1.2.3", "test", 0.5, ("GENE", "CELL"))


def scored_task(text: str, scores: List[Tuple[str, str, float]]) -> Dict[str, Any]:
    """A scored task made by hand: a Doc with spans and their scores, no model."""
    doc = spacy.blank("en").make_doc(text)
    spans = []
    for sub, label, _ in scores:
        start = text.index(sub)
        spans.append(doc.char_span(start, start + len(sub), label=label))
    group = SpanGroup(doc, name="sc", spans=spans)
    group.attrs["scores"] = [s for _, _, s in scores]
    doc.spans["sc"] = group
    return doc_to_task(doc, "sc", {"doc_id": "x"}, MODEL)


# --- thresholds and routing -------------------------------------------------------


@pytest.mark.parametrize(
    "high,low,message",
    [
        (0.5, 0.8, "0 < low (0.8) <= high (0.5) <= 1"),
        (0.9, 0.0, "low = 0 would keep every candidate span"),
        (1.5, 0.1, "<= high (1.5) <= 1"),
        ("0.9", 0.1, "the high threshold must be a number, got '0.9'"),
    ],
)
def test_thresholds_refuse_bad_values(high, low, message):
    with pytest.raises(AssistError) as err:
        Thresholds(high=high, low=low)
    assert message in str(err.value)


# (scores of the task's spans) -> (route, labels of the spans that go with it, margin)
ROUTING = [
    # all >= high: silver with every span
    ([("BMP2", "GENE", 0.95), ("BMP4", "GENE", 0.8)], "silver", ["BMP2", "BMP4"], None),
    # one >= high, one < low: silver with the confident one only
    ([("BMP2", "GENE", 0.95), ("BMP4", "GENE", 0.1)], "silver", ["BMP2"], None),
    # all < low: silver with no spans (confidently nothing to mark)
    ([("BMP2", "GENE", 0.19), ("BMP4", "GENE", 0.05)], "silver", [], None),
    # no spans at all: silver
    ([], "silver", [], None),
    # one in the band: review, with the kept and the uncertain span, not the dropped one
    ([("BMP2", "GENE", 0.95), ("BMP4", "GENE", 0.6), ("limb", "CELL", 0.1)], "review", ["BMP2", "BMP4"], 0.1),
    # low is inside the band, high is not
    ([("BMP2", "GENE", 0.2)], "review", ["BMP2"], 0.3),
    ([("BMP2", "GENE", 0.7999)], "review", ["BMP2"], 0.2999),
    # the margin is the smallest distance to the pivot over the uncertain spans
    ([("BMP2", "GENE", 0.3), ("BMP4", "GENE", 0.55)], "review", ["BMP2", "BMP4"], 0.05),
]


@pytest.mark.parametrize("scores,route,texts,margin", ROUTING)
def test_route_task_by_thresholds(scores, route, texts, margin):
    text = "BMP2 and BMP4 regulate limb patterning."
    routed = route_task(scored_task(text, scores), Thresholds(high=0.8, low=0.2))
    assert routed.route == route
    assert [text[s["start"] : s["end"]] for s in routed.task["spans"]] == texts
    assert routed.margin == (None if margin is None else pytest.approx(margin))
    assert routed.n_kept + routed.n_uncertain + routed.n_dropped == len(scores)
    if route == "review":
        assert routed.task["meta"]["margin"] == pytest.approx(margin)
    assert routed.task["_task_hash"] == task_hash(routed.task["_input_hash"], routed.task["spans"])


def test_route_task_needs_a_score():
    task = scored_task("BMP2 here.", [("BMP2", "GENE", 0.9)])
    del task["spans"][0]["score"]
    with pytest.raises(AssistError, match=r"span 0 \(GENE\) of task .* has no numeric 'score'"):
        route_task(task, Thresholds(0.8, 0.2))


def test_pivot_is_the_pipeline_threshold_inside_the_band():
    assert Thresholds(0.8, 0.2).center == 0.5
    assert Thresholds(0.8, 0.2).with_pipeline_threshold(0.35).center == 0.35
    # outside the band: the middle of the band
    assert Thresholds(0.8, 0.2).with_pipeline_threshold(0.9).center == 0.5


# --- the task format ----------------------------------------------------------------


def test_doc_to_task_is_a_spans_manual_task():
    task = scored_task("The Brca1 gene, Brca1.", [("Brca1 gene", "GENE", 0.91234), ("Brca1", "GENE", 0.5)])
    assert task["text"] == "The Brca1 gene, Brca1."
    assert task["tokens"][1] == {"text": "Brca1", "start": 4, "end": 9, "id": 1, "ws": True}
    assert task["tokens"][3] == {"text": ",", "start": 14, "end": 15, "id": 3, "ws": True}
    # sorted by position; token_end is inclusive, as in Prodigy; scores rounded to 4 places
    assert task["spans"] == [
        {"start": 4, "end": 9, "token_start": 1, "token_end": 1, "label": "GENE", "score": 0.5},
        {"start": 4, "end": 14, "token_start": 1, "token_end": 2, "label": "GENE", "score": 0.9123},
    ]
    assert task["meta"] == {"doc_id": "x", "model": "en_test", "model_version": "1.2.3"}
    assert task["_input_hash"] == input_hash("The Brca1 gene, Brca1.")


def test_doc_to_task_needs_scores():
    doc = spacy.blank("en").make_doc("BMP2 here.")
    doc.spans["sc"] = [Span(doc, 0, 1, "GENE")]
    with pytest.raises(AssistError, match=r"has 1 spans but no scores in attrs\['scores'\]"):
        doc_to_task(doc, "sc", {}, MODEL)


def test_input_hash_is_stable_across_processes():
    text = "BMP2 and BMP4 regulate limb patterning."
    here = input_hash(text)
    code = f"from biomed_spancat.assist import input_hash; print(input_hash({text!r}))"
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert int(out.stdout) == here
    # a fixed value: a change of the hash function would orphan imported tasks
    assert here == 1770396167
    assert -(2**31) <= here < 2**31
    assert input_hash(text + " ") != here


# --- the review order and the budget ------------------------------------------------


def _review_tasks() -> List[Dict[str, Any]]:
    text = "BMP2 and BMP4 regulate limb patterning."
    specs = [
        [("BMP2", "GENE", 0.3)],  # margin 0.2
        [("BMP2", "GENE", 0.95)],  # silver
        [("BMP2", "GENE", 0.52)],  # margin 0.02
        [("BMP2", "GENE", 0.45), ("BMP4", "GENE", 0.6)],  # margin 0.05
        [("BMP2", "GENE", 0.1)],  # silver, no spans
        [("BMP2", "GENE", 0.55), ("limb", "CELL", 0.45), ("BMP4", "GENE", 0.7)],  # margin 0.05, three uncertain: first
        [("BMP4", "GENE", 0.48)],  # margin 0.02, later in the input than task 2
    ]
    tasks = []
    for i, spec in enumerate(specs):
        task = scored_task(text, spec)
        task["meta"]["doc_id"] = f"t{i}"
        tasks.append(task)
    return tasks


@pytest.mark.parametrize("run_size", [1, 2, 1000])
def test_review_file_is_most_uncertain_first_with_a_budget(tmp_path, run_size):
    counts = write_routes(
        _review_tasks(),
        Thresholds(0.8, 0.2),
        tmp_path / "review.jsonl",
        tmp_path / "silver.spacy",
        budget=3,
        rest_path=tmp_path / "rest.jsonl",
        run_size=run_size,
    )
    review = [json.loads(line) for line in (tmp_path / "review.jsonl").read_text().splitlines()]
    rest = [json.loads(line) for line in (tmp_path / "rest.jsonl").read_text().splitlines()]
    # margins ascending; ties: more uncertain spans first, then input order
    assert [t["meta"]["doc_id"] for t in review] == ["t2", "t6", "t5"]
    assert [t["meta"]["doc_id"] for t in rest] == ["t3", "t0"]
    assert [t["meta"]["margin"] for t in review + rest] == [0.02, 0.02, 0.05, 0.05, 0.2]
    assert counts["routes"] == {"silver": 2, "review": 3, "over_budget": 2}
    assert counts["silver_without_spans"] == 1
    assert counts["spans"] == {"kept": 1, "uncertain": 8, "dropped": 1}


def test_review_without_budget_holds_every_uncertain_task(tmp_path):
    counts = write_routes(_review_tasks(), Thresholds(0.8, 0.2), tmp_path / "r.jsonl", tmp_path / "s.spacy")
    assert counts["routes"] == {"silver": 2, "review": 5, "over_budget": 0}
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 5


def test_review_budget_must_not_be_negative(tmp_path):
    with pytest.raises(AssistError, match="budget must be >= 0"):
        write_routes([], Thresholds(0.8, 0.2), tmp_path / "r.jsonl", tmp_path / "s.spacy", budget=-1)


def test_review_queue_spills_sorted_runs(tmp_path):
    queue = ReviewQueue(tmp_path, run_size=2)
    for seq, margin in enumerate([0.3, 0.1, 0.2, 0.1, 0.0]):
        queue.add(margin, 1, seq, f"line{seq}")
    assert len(queue.runs) == 2  # 4 lines spilled in 2 runs, 1 left in memory
    assert list(queue.sorted_lines()) == ["line4", "line1", "line3", "line2", "line0"]


def test_silver_corpus_holds_the_kept_spans_with_scores(tmp_path):
    write_routes(_review_tasks(), Thresholds(0.8, 0.2), tmp_path / "r.jsonl", tmp_path / "s.spacy")
    docs = list(DocBin().from_disk(tmp_path / "s.spacy").get_docs(spacy.blank("en").vocab))
    assert [d.text for d in docs] == ["BMP2 and BMP4 regulate limb patterning."] * 2
    assert [(s.text, s.label_) for s in docs[0].spans["sc"]] == [("BMP2", "GENE")]
    assert list(docs[0].spans["sc"].attrs["scores"]) == [0.95]
    assert len(docs[1].spans["sc"]) == 0


# --- reading inputs ------------------------------------------------------------------


def test_text_files_are_one_paragraph_per_line(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"First paragraph.\n\n  Second one.  \r\nbad \xff byte\n")
    records = list(iter_records([str(path)]))
    assert [(r.text, r.meta.get("line"), r.reason) for r in records] == [
        ("First paragraph.", 1, None),
        ("Second one.", 3, None),
        ("", None, "bad_encoding"),
    ]
    assert records[0].meta == {"doc_id": "notes", "file": str(path), "line": 1}
    assert records[2].origin == f"{path}:4"
    assert "not valid UTF-8 (byte 0xff at offset 4)" in records[2].detail


def test_a_folder_of_text_files_is_read_in_name_order(tmp_path):
    (tmp_path / "b.txt").write_text("Beta.\n", encoding="utf8")
    (tmp_path / "a.txt").write_text("Alpha.\nAlpha two.\n", encoding="utf8")
    assert [r.text for r in iter_records([str(tmp_path)])] == ["Alpha.", "Alpha two.", "Beta."]


def test_jsonl_records_keep_meta_and_tokens_and_drop_annotations(tmp_path):
    task = make_task(*DOCS[0][1][0], doc_id="d1", paragraph=0)
    path = write_jsonl(tmp_path / "in.jsonl", [task, {"text": "Plain text, no tokens."}])
    first, second = iter_records([str(path)])
    assert first.text == task["text"] and first.meta == {"doc_id": "d1", "paragraph": 0}
    assert first.words == [t["text"] for t in task["tokens"]]
    assert first.spans_ignored == 2 and first.origin == f"{path}:1"
    assert second.words is None and second.origin == f"{path}:2"


def test_sentence_segmentation_makes_one_task_per_sentence():
    from biomed_spancat.assist import split_sentences

    plain = TextRecord("BMP4 is expressed here. Shh is not.", {"doc_id": "p"}, "f:1", spans_ignored=3)
    task = make_task("Pax6 marks cells. Lens cells too.", [("Pax6", "GENE")], "q", 0)
    words = [t["text"] for t in task["tokens"]]
    tokened = TextRecord(task["text"], {"doc_id": "q"}, "f:2", words, [t["ws"] for t in task["tokens"]])
    bad = TextRecord("", {}, "f:3", reason="empty_text", detail="empty")
    out = list(split_sentences([plain, tokened, bad]))
    assert [(r.text, r.meta, r.words) for r in out[:2]] == [
        ("BMP4 is expressed here.", {"doc_id": "p", "sentence": 0}, None),
        ("Shh is not.", {"doc_id": "p", "sentence": 1}, None),
    ]
    assert [r.spans_ignored for r in out[:2]] == [3, 0]
    assert [(r.text, r.words, r.spaces[-1]) for r in out[2:4]] == [
        ("Pax6 marks cells.", ["Pax6", "marks", "cells", "."], False),
        ("Lens cells too.", ["Lens", "cells", "too", "."], False),
    ]
    assert out[4] is bad


def test_preannotate_by_sentence_counts_tasks_and_balances(tmp_path, teacher):
    path = write_jsonl(tmp_path / "in.jsonl", [{"text": " ".join(NEW_TEXTS[:3])}, {"text": NEW_TEXTS[3]}, {"nope": 1}])
    report = preannotate(
        [str(path)], str(teacher), tmp_path / "review.jsonl", tmp_path / "silver.spacy",
        PreannotateOptions(Thresholds(1.0, 0.05), segment="sentences", progress=False),
    )
    assert report["read"] == 3 and report["tasks"] == 5 and report["rejected"] == 1 and report["balanced"]
    tasks = [json.loads(line) for line in (tmp_path / "review.jsonl").read_text().splitlines()]
    assert sorted(t["text"] for t in tasks) == sorted(NEW_TEXTS[:4])
    with pytest.raises(AssistError, match="unknown segment 'words' \\(choose from none, sentences\\)"):
        preannotate([str(path)], str(teacher), tmp_path / "r.jsonl", tmp_path / "s.spacy",
                    PreannotateOptions(Thresholds(0.9, 0.1), segment="words", progress=False))


def test_bad_records_are_rejected_with_file_line_and_reason(tmp_path, teacher):
    path = tmp_path / "in.jsonl"
    lines = [
        json.dumps({"text": "BMP4 in neural crest cells."}),
        json.dumps({"meta": {"doc_id": "x"}}),
        "{not json",
        json.dumps({"text": "   "}),
        json.dumps({"text": "Two words", "tokens": [{"text": "Two", "start": 0, "end": 3, "ws": True}, {"text": "wordz", "start": 4, "end": 9}]}),
        json.dumps(["a", "list"]),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf8")
    report = preannotate(
        [str(path)], str(teacher), tmp_path / "review.jsonl", tmp_path / "silver.spacy",
        PreannotateOptions(Thresholds(0.9, 0.1), progress=False), report_path=tmp_path / "report.json",
    )
    assert report["read"] == 6 and report["rejected"] == 5 and report["balanced"]
    assert report["rejected_by_reason"] == {
        "bad_tokens": 1, "empty_text": 1, "malformed_json": 1, "malformed_task": 1, "missing_text": 1,
    }
    examples = report["rejected_examples"]
    assert f"{path}:2: missing_text: the record has no 'text'" in examples
    assert any(e.startswith(f"{path}:3: malformed_json: malformed JSON") for e in examples)
    assert f"{path}:4: empty_text: the record's text is empty" in examples
    assert any(e.startswith(f"{path}:5: bad_tokens: token 1 'wordz' does not match the text at character 4") for e in examples)
    assert json.loads((tmp_path / "report.json").read_text())["rejected"] == 5


def test_missing_source_and_model_are_named(tmp_path, teacher):
    options = PreannotateOptions(Thresholds(0.9, 0.1), progress=False)
    with pytest.raises(AssistError, match=r"nope\.jsonl: no such file"):
        preannotate([str(tmp_path / "nope.jsonl")], str(teacher), tmp_path / "r.jsonl", tmp_path / "s.spacy", options)
    with pytest.raises(PipelineError, match="en_no_such_model: neither a pipeline directory nor an installed package"):
        load_annotator("en_no_such_model", "sc", 0.1)
    with pytest.raises(PipelineError, match=r"no span categorizer writing doc.spans\['other'\]; span categorizers: spancat \(key 'sc'\)"):
        load_annotator(teacher, "other", 0.1)


def test_gpu_is_asked_through_the_preflight(monkeypatch, teacher):
    gpu = pytest.importorskip("biomed_spancat.training.gpu")
    asked = []

    def fake_preflight(gpu_id, allocator="pytorch", *, echo=True):
        asked.append(gpu_id)
        if gpu_id >= 0:
            raise gpu.GpuUnavailable(f"--gpu-id {gpu_id}: no NVIDIA driver was found")

    monkeypatch.setattr(gpu, "preflight", fake_preflight)
    with pytest.raises(gpu.GpuUnavailable, match="--gpu-id 0: no NVIDIA driver was found"):
        load_annotator(teacher, "sc", 0.1, gpu_id=0)
    load_annotator(teacher, "sc", 0.1, gpu_id=-1)
    assert asked == [0, -1]


# --- with the model: thresholds, meta and the round trip through convert ---------------


def test_preannotate_lowers_the_threshold_and_names_the_model(tmp_path, teacher):
    nlp, info = load_annotator(teacher, "sc", 0.05)
    assert info.name == "en_teacher" and info.version == "0.0.1" and info.threshold == 0.5
    assert nlp.get_pipe("spancat").cfg["threshold"] == 0.05
    path = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in NEW_TEXTS])
    report = preannotate(
        [str(path)], str(teacher), tmp_path / "review.jsonl", tmp_path / "silver.spacy",
        PreannotateOptions(Thresholds(1.0, 0.05), batch_size=2, progress=False),
    )
    tasks = [json.loads(line) for line in (tmp_path / "review.jsonl").read_text().splitlines()]
    assert report["routes"]["review"] == len(tasks) > 0
    assert report["settings"]["pivot"] == 0.5 and report["ordering"] == ORDERING
    assert all(s["score"] >= 0.05 for t in tasks for s in t["spans"])
    assert all(t["meta"]["model"] == "en_teacher" and t["meta"]["model_version"] == "0.0.1" for t in tasks)
    assert {t["_input_hash"] for t in tasks} <= {input_hash(t) for t in NEW_TEXTS}


def test_prodigy_jsonl_round_trip_through_convert(tmp_path, teacher):
    """What preannotate writes, convert reads back with the same spans (after
    Prodigy's `db-in`, which marks imported tasks as accepted)."""
    from biomed_spancat.ingest.convert import ConvertOptions, convert

    path = write_jsonl(tmp_path / "in.jsonl", [{"text": t, "meta": {"doc_id": f"n{i}"}} for i, t in enumerate(NEW_TEXTS)])
    preannotate(
        [str(path)], str(teacher), tmp_path / "review.jsonl", tmp_path / "silver.spacy",
        PreannotateOptions(Thresholds(1.0, 0.05), progress=False),
    )
    tasks = [json.loads(line) for line in (tmp_path / "review.jsonl").read_text().splitlines()]
    assert sum(len(t["spans"]) for t in tasks) > len(tasks)  # overlapping candidates included
    imported = write_jsonl(tmp_path / "db_out.jsonl", [{**t, "answer": "accept"} for t in tasks])
    report = convert([str(imported)], tmp_path / "corpus", ConvertOptions(eval_split=0.0))
    assert report["read"] == len(tasks) and report["kept"] == len(tasks) and report["rejected"] == 0
    docs = list(DocBin().from_disk(tmp_path / "corpus" / "train.spacy").get_docs(spacy.blank("en").vocab))
    by_text = {d.text: d for d in docs}
    assert set(by_text) == {t["text"] for t in tasks}
    for task in tasks:
        doc = by_text[task["text"]]
        assert [t.text for t in doc] == [t["text"] for t in task["tokens"]]
        got = sorted((s.start, s.end, s.label_) for s in doc.spans["sc"])
        want = sorted((s["token_start"], s["token_end"] + 1, s["label"]) for s in task["spans"])
        assert got == want


def test_cli_reports_bad_thresholds(tmp_path, teacher):
    from typer.testing import CliRunner
    import typer

    from scripts.preannotate import main

    app = typer.Typer()
    app.command()(main)
    path = write_jsonl(tmp_path / "in.jsonl", [{"text": "BMP4."}])
    result = CliRunner().invoke(app, [str(teacher), str(path), "--high", "0.2", "--low", "0.5", "--report", str(tmp_path / "r.json")])
    assert result.exit_code == 1
    assert "0 < low (0.5) <= high (0.2) <= 1" in result.output


# --- Ray ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head():
    """A one-CPU Ray head on 127.0.0.1 with a small object store, started with
    the `ray` CLI of this venv in its own process group and stopped by
    signalling that group only (never `ray stop`, which stops every Ray
    process of the user)."""
    pytest.importorskip("ray")
    ray_cli = Path(sys.executable).parent / "ray"
    port = _free_port()
    # short: Ray's unix socket paths live under it
    temp_dir = tempfile.mkdtemp(prefix="rayt", dir="/tmp")
    log = open(Path(temp_dir) / "head.log", "w")
    proc = subprocess.Popen(
        [
            str(ray_cli), "start", "--head", "--block",
            "--node-ip-address", "127.0.0.1", "--port", str(port),
            "--num-cpus", "1", "--num-gpus", "0",
            "--object-store-memory", "100000000",
            "--include-dashboard", "false", "--disable-usage-stats",
            "--temp-dir", temp_dir,
        ],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                log.flush()
                pytest.fail(f"ray start exited with {proc.returncode}: {(Path(temp_dir) / 'head.log').read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("the Ray head did not open its port within 120 s")
                time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)  # a head drains for up to 30 s; nothing is left to drain here
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of our group
        except ProcessLookupError:
            pass
        proc.wait()
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.mark.slow
def test_ray_output_equals_single_process_output(tmp_path, teacher, ray_head):
    texts = NEW_TEXTS * 3
    path = write_jsonl(tmp_path / "in.jsonl", [{"text": t, "meta": {"i": i}} for i, t in enumerate(texts)])
    outputs = {}
    for name, address in (("single", ""), ("ray", ray_head)):
        out = tmp_path / name
        options = PreannotateOptions(
            Thresholds(0.6, 0.1), budget=6, batch_size=2, ray_address=address, ray_workers=2, ray_cpus=0.5, progress=False
        )
        report = preannotate(
            [str(path)], str(teacher), out / "review.jsonl", out / "silver.spacy", options, rest_path=out / "rest.jsonl"
        )
        outputs[name] = (report, out)
    single, ray_ = outputs["single"], outputs["ray"]
    assert ray_[0]["settings"]["runner"] == "ray" and single[0]["settings"]["runner"] == "single_process"
    for key in ("read", "rejected", "routes", "spans", "silver_without_spans", "model"):
        assert ray_[0][key] == single[0][key], key
    assert sum(single[0]["routes"].values()) == len(texts)
    for name in ("review.jsonl", "rest.jsonl", "silver.spacy"):
        assert (ray_[1] / name).read_bytes() == (single[1] / name).read_bytes(), name


@pytest.mark.slow
def test_ray_workers_that_cannot_load_the_pipeline_say_so(tmp_path, ray_head):
    path = write_jsonl(tmp_path / "in.jsonl", [{"text": "BMP4."}])
    options = PreannotateOptions(Thresholds(0.9, 0.1), ray_address=ray_head, ray_workers=1, ray_cpus=0.5, progress=False)
    with pytest.raises(AssistError, match="the Ray workers could not load the pipeline 'en_no_such_model'.*neither a pipeline"):
        preannotate([str(path)], "en_no_such_model", tmp_path / "r.jsonl", tmp_path / "s.spacy", options)
