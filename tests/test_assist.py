"""Model-assisted annotation: routing by thresholds, the review order and
budget, the Prodigy JSONL round trip through `convert`, reading inputs (and
saying what is wrong with them), the Ray runner against a local cluster, and
a short uptraining run."""
import json
import os
import random
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
from spacy.tokens import Doc, DocBin, Span, SpanGroup
from spacy.training import Example

from biomed_spancat.util import DocBinError, PipelineError
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

ROOT = Path(__file__).resolve().parent.parent
CNN_CONFIG = ROOT / "configs" / "uptrain_cnn.cfg"
# A tiny CNN: the tests check behaviour, not accuracy.
TINY_CNN = {
    "components.tok2vec.model.encode.width": 16,
    "components.tok2vec.model.encode.depth": 1,
    "components.tok2vec.model.embed.rows": [500, 100, 100, 100],
    "components.spancat.model.reducer.hidden_size": 16,
}
MODEL = ModelInfo("en_test", "1.2.3", "test", 0.5, ("GENE", "CELL"))

# (text, [(substring, label), ...]) in documents of two paragraphs each
DOCS: List[Tuple[str, List[Tuple[str, List[Tuple[str, str]]]]]] = [
    ("d1", [
        ("BMP2 and BMP4 regulate limb patterning in the mouse embryo.", [("BMP2", "GENE"), ("BMP4", "GENE")]),
        ("Neural crest cells express BMP4 early.", [("Neural crest cells", "CELL"), ("BMP4", "GENE")]),
    ]),
    ("d2", [
        ("Mutations in the Brca1 gene cause breast cancer in mice.", [("Brca1", "GENE"), ("Brca1 gene", "GENE")]),
        ("Retinal ganglion cells project axons to the optic nerve.", [("Retinal ganglion cells", "CELL"), ("ganglion cells", "CELL")]),
    ]),
    ("d3", [
        ("Expression of Shh was detected in the apical ectodermal ridge.", [("Shh", "GENE")]),
        ("Shh signalling patterns neural crest cells.", [("Shh", "GENE"), ("neural crest cells", "CELL")]),
    ]),
    ("d4", [
        ("Pax6 marks retinal progenitor cells in the eye.", [("Pax6", "GENE"), ("retinal progenitor cells", "CELL")]),
        ("Loss of Pax6 disrupts lens cells.", [("Pax6", "GENE"), ("lens cells", "CELL")]),
    ]),
]
NEW_TEXTS = [
    "BMP4 and Shh are expressed in neural crest cells.",
    "Pax6 regulates retinal ganglion cells.",
    "The Brca1 protein binds DNA.",
    "Nothing here but plain words.",
    "Lens cells and BMP2 in the embryo.",
]


def make_task(text: str, spans: List[Tuple[str, str]], doc_id: str, paragraph: int) -> Dict[str, Any]:
    """A Prodigy spans.manual export task (answer accept) from substrings."""
    doc = spacy.blank("en").make_doc(text)
    out = []
    for sub, label in spans:
        start = text.index(sub)
        span = doc.char_span(start, start + len(sub))
        assert span is not None, sub
        out.append({"start": start, "end": start + len(sub), "token_start": span.start, "token_end": span.end - 1, "label": label})
    return {
        "text": text,
        "tokens": [{"text": t.text, "start": t.idx, "end": t.idx + len(t.text), "id": t.i, "ws": bool(t.whitespace_)} for t in doc],
        "spans": out,
        "answer": "accept",
        "meta": {"doc_id": doc_id, "paragraph": paragraph},
        "_input_hash": input_hash(text),
    }


def write_jsonl(path: Path, records: List[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf8")
    return path


def gold_docs(vocab) -> List[Doc]:
    docs = []
    for doc_id, paragraphs in DOCS:
        for i, (text, spans) in enumerate(paragraphs):
            task = make_task(text, spans, doc_id, i)
            doc = Doc(vocab, words=[t["text"] for t in task["tokens"]], spaces=[t["ws"] for t in task["tokens"]])
            doc.spans["sc"] = [Span(doc, s["token_start"], s["token_end"] + 1, s["label"]) for s in task["spans"]]
            docs.append(doc)
    return docs


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    """A tiny spancat-over-CNN pipeline trained for a few steps on the hand-made docs."""
    from spacy.util import fix_random_seed, load_config, load_model_from_config

    fix_random_seed(0)
    config = load_config(CNN_CONFIG, overrides=TINY_CNN)
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    examples = [Example(Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d]), d) for d in gold_docs(nlp.vocab)]
    optimizer = nlp.initialize(lambda: examples)
    rng = random.Random(0)
    for _ in range(15):
        rng.shuffle(examples)
        nlp.update(examples, sgd=optimizer)
    path = tmp_path_factory.mktemp("teacher") / "model"
    nlp.meta["name"] = "teacher"
    nlp.meta["version"] = "0.0.1"
    nlp.to_disk(path)
    return path


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


# --- uptraining ----------------------------------------------------------------------


def _export(path: Path, docs=DOCS) -> Path:
    return write_jsonl(path, [make_task(text, spans, doc_id, i) for doc_id, paras in docs for i, (text, spans) in enumerate(paras)])


def test_split_heldout_by_document(tmp_path):
    from biomed_spancat.training.uptrain import split_heldout

    report = split_heldout(str(_export(tmp_path / "heldout.jsonl")), tmp_path / "out", share=0.5, seed=0)
    assert report["documents"] == {"unlabelled": 2, "test": 2}
    assert report["tasks"] == {"unlabelled": 4, "test": 4}
    unlabelled = [json.loads(line) for line in (tmp_path / "out" / "unlabelled.jsonl").read_text().splitlines()]
    assert all(set(r) == {"text", "meta"} for r in unlabelled)  # no spans, tokens or answer
    test_docs = list(DocBin().from_disk(tmp_path / "out" / "test.spacy").get_docs(spacy.blank("en").vocab))
    assert len(test_docs) == 4 and all(len(d.spans["sc"]) for d in test_docs)
    unl_docs = {r["meta"]["doc_id"] for r in unlabelled}
    texts = {d.text for d in test_docs}
    for doc_id, paras in DOCS:  # a document is wholly on one side
        assert (doc_id in unl_docs) != all(t in texts for t, _ in paras)


def test_split_heldout_writes_each_text_once_and_no_test_text(tmp_path):
    """A second annotator's version of a text, a task without text, a heading
    every document shares, more text repeating a held-out text: each distinct
    text is unlabelled text once, and a test text never (seed 0 puts d1 and d3
    in the unlabelled half)."""
    from biomed_spancat.training.uptrain import split_heldout

    tasks = [make_task(text, spans, doc_id, i) for doc_id, paras in DOCS for i, (text, spans) in enumerate(paras)]
    tasks.append(dict(tasks[0], _annotator_id="second"))  # d1's first paragraph again, another annotator
    tasks.append({"meta": {"doc_id": "d1"}, "spans": [], "answer": "accept"})
    tasks += [make_task("Results", [], doc_id, 9) for doc_id, _ in DOCS]
    more = write_jsonl(tmp_path / "more.jsonl", [{"text": t} for t in (DOCS[0][1][1][0], NEW_TEXTS[0], NEW_TEXTS[0])])
    report = split_heldout(str(write_jsonl(tmp_path / "heldout.jsonl", tasks)), tmp_path / "out", share=0.5, seed=0,
                           more_text=[str(more)])
    unlabelled = [json.loads(line) for line in (tmp_path / "out" / "unlabelled.jsonl").read_text().splitlines()]
    assert [(r["meta"].get("doc_id"), r["text"]) for r in unlabelled] == [
        ("d1", DOCS[0][1][0][0]), ("d1", DOCS[0][1][1][0]), ("d3", DOCS[2][1][0][0]), ("d3", DOCS[2][1][1][0]),
        (None, NEW_TEXTS[0]),
    ]
    assert report["tasks"] == {"unlabelled": 8, "test": 6}
    assert report["unlabelled_texts"] == {"written": 4, "duplicates": 1, "in_test": 2, "no_text": 1}
    assert {k: report["more_text"][k] for k in ("read", "kept", "in_test", "duplicates", "rejected")} == {
        "read": 3, "kept": 1, "in_test": 0, "duplicates": 2, "rejected": 0,
    }
    test_texts = [d.text for d in DocBin().from_disk(tmp_path / "out" / "test.spacy").get_docs(spacy.blank("en").vocab)]
    assert sorted(test_texts).count("Results") == 2 and len(test_texts) == 6


def test_split_heldout_of_a_label_studio_export_accounts_for_every_record(tmp_path):
    """Label Studio's export (tests/data/bridges): a text annotated twice, a
    cancelled annotation, a prediction, a task without annotation, an edited text."""
    from biomed_spancat.training.uptrain import split_heldout

    export = Path(__file__).parent / "data" / "bridges" / "labelstudio_export.json"
    report = split_heldout(str(export), tmp_path / "out", share=0.5, seed=0)
    assert report["unreadable"] == 4 and report["unreadable_by_reason"] == {
        "labelstudio_cancelled": 1, "labelstudio_prediction": 1, "labelstudio_no_annotation": 1, "bad_spans": 1,
    }
    assert report["unreadable_examples"][0].endswith("labelstudio_export.json:2: task 1 annotation 13 by labelstudio:6e0590950a: cancelled (skipped)")
    assert report["documents"] == {"unlabelled": 2, "test": 2}
    assert report["tasks"] == {"unlabelled": 3, "test": 3}
    assert report["unlabelled_texts"] == {"written": 2, "duplicates": 1, "in_test": 0, "no_text": 0}
    assert report["test_convert"] == {
        "read": 3, "kept": 2, "rejected": 0, "merged": 1, "duplicates": 0, "rejected_by_reason": {},
    }
    # every record the reader gave: what convert reads of the whole export
    assert report["tasks"]["unlabelled"] + report["tasks"]["test"] + report["unreadable"] == 10
    lines = (tmp_path / "out" / "unlabelled.jsonl").read_text().splitlines()
    assert len(lines) == 2 and len({json.loads(line)["text"] for line in lines}) == 2


def test_split_heldout_needs_two_documents(tmp_path):
    from biomed_spancat.training.uptrain import split_heldout

    one = _export(tmp_path / "one.jsonl", DOCS[:1])
    with pytest.raises(AssistError, match=r"one\.jsonl: 1 document\(s\); splitting .* needs at least 2"):
        split_heldout(str(one), tmp_path / "out")
    with pytest.raises(AssistError, match=r"share must be in \(0, 1\), got 1.0"):
        split_heldout(str(one), tmp_path / "out", share=1.0)


def _more_text(tmp_path: Path) -> List[str]:
    """More unlabelled text: a folder of two .txt files (each document's first
    paragraph among new text, a line that is not UTF-8) and a JSONL file (one
    record without text)."""
    more = tmp_path / "more"
    more.mkdir()
    lines = [NEW_TEXTS[0], ""] + [paras[0][0] for _, paras in DOCS]
    (more / "a.txt").write_text("\n".join(lines) + "\n", encoding="utf8")
    (more / "b.txt").write_bytes(b"\xff bad\n" + NEW_TEXTS[1].encode("utf8") + b"\n")
    jsonl = write_jsonl(tmp_path / "extra.jsonl", [{"text": NEW_TEXTS[2], "meta": {"pmid": "1"}}, {"meta": {"pmid": "2"}}])
    return [str(more), str(jsonl)]


def test_split_heldout_appends_more_text_and_accounts_for_every_record(tmp_path):
    from biomed_spancat.training.uptrain import split_heldout

    sources = _more_text(tmp_path)
    report = split_heldout(str(_export(tmp_path / "heldout.jsonl")), tmp_path / "out", share=0.5, seed=0, more_text=sources)
    assert report["tasks"] == {"unlabelled": 4, "test": 4}  # the held-out split is unchanged
    test_texts = {d.text for d in DocBin().from_disk(tmp_path / "out" / "test.spacy").get_docs(spacy.blank("en").vocab)}
    more = report["more_text"]
    # 5 + 2 + 2 records read: each document's first paragraph is already there when
    # it is unlabelled text, left out when it is a test text (2 documents each way)
    assert {k: more[k] for k in ("read", "kept", "in_test", "duplicates", "rejected", "rejected_by_reason")} == {
        "read": 9, "kept": 3, "in_test": 2, "duplicates": 2, "rejected": 2,
        "rejected_by_reason": {"bad_encoding": 1, "missing_text": 1},
    }
    assert more["sources"] == sources
    assert more["words"] == sum(len(t.split()) for t in NEW_TEXTS[:3])
    assert more["examples"][0] == f"{sources[0]}/b.txt:1: not valid UTF-8 (byte 0xff at offset 0)"
    assert "extra.jsonl" in more["examples"][1] and "no 'text'" in more["examples"][1]
    records = [json.loads(line) for line in (tmp_path / "out" / "unlabelled.jsonl").read_text().splitlines()]
    added = records[4:]
    assert [r["text"] for r in added] == NEW_TEXTS[:3]
    assert not test_texts & {r["text"] for r in records}
    assert added[0]["meta"] == {"doc_id": "a", "file": f"{sources[0]}/a.txt", "line": 1}
    assert added[-1]["meta"] == {"pmid": "1"} and all(set(r) == {"text", "meta"} for r in added)
    assert json.loads((tmp_path / "out" / "heldout.json").read_text())["more_text"] == more


def test_split_heldout_refuses_more_text_with_nothing_usable(tmp_path):
    from biomed_spancat.training.uptrain import split_heldout

    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\n")
    with pytest.raises(AssistError, match=r"bad\.txt: no usable text \(1 record\(s\) read\): .*bad\.txt:1: not valid UTF-8"):
        split_heldout(str(_export(tmp_path / "heldout.jsonl")), tmp_path / "out", more_text=[str(bad)])
    with pytest.raises(AssistError, match=r"no such file"):
        split_heldout(str(_export(tmp_path / "heldout.jsonl")), tmp_path / "out", more_text=[str(tmp_path / "absent.txt")])


def test_split_heldout_script_says_what_the_more_text_gave(tmp_path):
    from typer.testing import CliRunner
    import typer

    from scripts.split_heldout import main

    app = typer.Typer()
    app.command()(main)
    sources = _more_text(tmp_path)
    args = [str(_export(tmp_path / "heldout.jsonl")), str(tmp_path / "out"), "--more-text", ",".join(sources)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())  # wasabi wraps long lines
    assert "more text: 3 of 9 texts" in out
    assert "more text: 2 text(s) equal to test texts left out" in out
    assert "more text: 2 text(s) already among the unlabelled texts left out" in out
    assert "more text: 2 record(s) rejected {'bad_encoding': 1, 'missing_text': 1}" in out
    assert "b.txt:1: not valid UTF-8" in out
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\n")
    result = CliRunner().invoke(app, args[:2] + ["--more-text", str(bad)])
    out = " ".join(result.output.split())
    assert result.exit_code == 1 and "split-heldout failed" in out and "no usable text" in out


def test_split_heldout_script_reads_the_users_export_beside_a_craft_mirror(tmp_path):
    """A CRAFT mirror where the project looks for one must not replace the
    user's held-out export; CRAFT's dataset names asked of it are refused."""
    from typer.testing import CliRunner
    import typer

    from scripts.split_heldout import main

    app = typer.Typer()
    app.command()(main)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    craft_task = make_task("Aspirin is a drug.", [("Aspirin", "CHEBI")], "craft-1", 0)
    for split in ("train", "dev", "test"):
        write_jsonl(mirror / f"craft_{split}.jsonl", [craft_task])
    export = str(_export(tmp_path / "heldout.jsonl"))
    result = CliRunner().invoke(app, [export, str(tmp_path / "out"), "--datasets", "", "--mirror", str(mirror)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "out" / "heldout.json").read_text())
    assert report["source"] == export and report["tasks"] == {"unlabelled": 4, "test": 4}
    result = CliRunner().invoke(app, [export, str(tmp_path / "out2"), "--datasets", "craft_test", "--mirror", str(mirror)])
    out = " ".join(result.output.split())
    assert result.exit_code == 1 and not (tmp_path / "out2" / "heldout.json").exists()
    assert (
        f"{export} is a single jsonl export, which holds no datasets, but datasets 'craft_test' were asked of it: "
        'name none (--datasets "", in weasel --vars.uptrain_heldout_datasets "")'
    ) in out


def test_merge_corpora_concatenates_and_names_missing_files(tmp_path):
    from biomed_spancat.training.uptrain import merge_corpora

    vocab = spacy.blank("en").vocab
    for name, docs in (("a.spacy", gold_docs(vocab)[:3]), ("b.spacy", gold_docs(vocab)[3:5])):
        DocBin(docs=docs).to_disk(tmp_path / name)
    counts = merge_corpora([tmp_path / "a.spacy", tmp_path / "b.spacy"], tmp_path / "ab.spacy")
    assert counts["total"] == 5
    merged = list(DocBin().from_disk(tmp_path / "ab.spacy").get_docs(vocab))
    assert [d.text for d in merged] == [d.text for d in gold_docs(vocab)[:5]]
    assert [len(d.spans["sc"]) for d in merged] == [len(d.spans["sc"]) for d in gold_docs(vocab)[:5]]
    with pytest.raises(DocBinError, match=r"missing\.spacy: no such file"):
        merge_corpora([tmp_path / "missing.spacy"], tmp_path / "x.spacy")


def _train_cnn(train: Path, dev: Path, out: Path, config: Path = CNN_CONFIG) -> Path:
    from spacy.cli.train import train as spacy_train

    overrides = {
        **TINY_CNN,
        "paths.train": str(train),
        "paths.dev": str(dev),
        "training.max_steps": 4,
        "training.eval_frequency": 2,
        "training.logger.progress_bar": False,
    }
    spacy_train(config, out, overrides=overrides, use_gpu=-1)
    return out / "model-best"


@pytest.mark.slow
def test_short_uptraining_run(tmp_path, teacher):
    """The workflow's steps on tiny data: split held-out text, CPU model on gold,
    pre-annotate into silver, CPU model on gold + silver, compare."""
    from biomed_spancat.training.suggester_fit import fit_suggester_config
    from biomed_spancat.training.uptrain import compare_uptrain, format_markdown, merge_corpora, split_heldout

    vocab = spacy.blank("en").vocab
    docs = gold_docs(vocab)
    DocBin(docs=docs[:6]).to_disk(tmp_path / "train.spacy")
    DocBin(docs=docs[6:]).to_disk(tmp_path / "dev.spacy")
    extra = [("e1", [(t, []) for t in NEW_TEXTS[:3]]), ("e2", [(t, []) for t in NEW_TEXTS[3:]])]
    split_heldout(str(_export(tmp_path / "heldout.jsonl", extra)), tmp_path / "heldout", share=0.5)
    # As the workflow does: the CPU model's suggester is learned from the gold spans, once, for both runs
    fit_suggester_config(tmp_path / "train.spacy", CNN_CONFIG, tmp_path / "cpu_config.cfg", "sc", 0.999)
    cpu_config = tmp_path / "cpu_config.cfg"
    cpu_gold = _train_cnn(tmp_path / "train.spacy", tmp_path / "dev.spacy", tmp_path / "cpu_gold", cpu_config)
    assert spacy.load(cpu_gold).config["components"]["spancat"]["suggester"]["@misc"] == "biomed.span_suggester.v1"
    report = preannotate(
        [str(tmp_path / "heldout" / "unlabelled.jsonl")], str(teacher), tmp_path / "review.jsonl", tmp_path / "silver.spacy",
        PreannotateOptions(Thresholds(0.5, 0.4), progress=False), report_path=tmp_path / "preannotate.json",
    )
    assert report["balanced"] and sum(report["routes"].values()) == report["read"] > 0
    counts = merge_corpora([tmp_path / "train.spacy", tmp_path / "silver.spacy"], tmp_path / "gold_silver.spacy")
    assert counts["total"] == 6 + report["routes"]["silver"]
    cpu_up = _train_cnn(tmp_path / "gold_silver.spacy", tmp_path / "dev.spacy", tmp_path / "cpu_up", cpu_config)
    result = compare_uptrain(
        [("transformer", "teacher", str(teacher)), ("cpu_gold", "gold", str(cpu_gold)), ("cpu_uptrained", "up", str(cpu_up))],
        {"dev": tmp_path / "dev.spacy", "test": tmp_path / "heldout" / "test.spacy"},
        preannotate_report=tmp_path / "preannotate.json",
    )
    test_docs = list(DocBin().from_disk(tmp_path / "heldout" / "test.spacy").get_docs(vocab))
    n_words = sum(len(d) for d in docs[6:]) + sum(len(d) for d in test_docs)
    for role in ("transformer", "cpu_gold", "cpu_uptrained"):
        model = result["models"][role]
        assert set(model["scores"]) == {"dev", "test"}
        assert all(s["f"] is None or 0.0 <= s["f"] <= 1.0 for s in model["scores"].values())
        assert model["speed"]["words"] == n_words
        runs = model["speed"]["runs"]
        assert len(runs) == 3 and model["speed"]["seconds"] == sorted(runs)[1]
        assert model["speed"]["words_per_second"] == round(n_words / sorted(runs)[1], 1)
    assert result["silver"]["routes"] == report["routes"]
    assert isinstance(result["target"]["met"], bool)
    table = format_markdown(result)
    assert table.splitlines()[0] == "| model | dev spans F | test spans F | CPU words/sec |"
    assert len([l for l in table.splitlines() if l.startswith("| ")]) == 4
    assert "Target met: **" in table


def test_measure_pipeline_needs_a_timed_pass():
    from biomed_spancat.training.uptrain import measure_pipeline

    with pytest.raises(AssistError, match="repeats must be at least 1, got 0"):
        measure_pipeline(spacy.blank("en"), {}, repeats=0)


def test_measure_pipeline_reports_each_set_and_pass():
    from biomed_spancat.training.uptrain import measure_pipeline
    from biomed_spancat.util import pct

    nlp = spacy.blank("en")
    docs = gold_docs(nlp.vocab)[:2]
    lines = []
    result = measure_pipeline(nlp, {"dev": docs}, repeats=2, log=lines.append)
    words = sum(len(d) for d in docs)
    assert lines[0] == f"dev: 2 docs scored, spans F {pct(result['scores']['dev']['f'])}"
    assert [line.split(" in ")[0] for line in lines[1:]] == [f"timed pass {i}/2: {words} words" for i in (1, 2)]
    # without a log it stays silent and measures the same way
    assert len(measure_pipeline(nlp, {"dev": docs}, repeats=2)["speed"]["runs"]) == 2

