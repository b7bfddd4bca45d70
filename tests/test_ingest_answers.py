"""How Prodigy answers are judged, merged and accounted for, on one fixture per
export shape (tests/data/ingest/prodigy/, written by make_fixtures.py, which
says where each shape comes from): exact ledgers, binary and partial answers,
several answers to one input, no annotator identity in any output, and a
non-zero exit when a source gives nothing."""

import json
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin

from biomed_spancat.ingest.convert import ConvertOptions, convert
from biomed_spancat.ingest.prodigy_db import write_prodigy_sqlite
from biomed_spancat.ingest.report import REASON_ADVICE, nothing_kept
from biomed_spancat.ingest.tasks import pseudonym

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "ingest"
PROD = DATA / "prodigy"
NLP = spacy.blank("en")
KEYS = ("read", "kept", "rejected", "merged", "duplicates")
NO_MERGE = {"groups_merged": 0, "groups_with_disagreement": 0, "superseded": 0, "withdrawn": 0}


def docs(path):
    return list(DocBin().from_disk(path).get_docs(NLP.vocab))


def spans_by_text(path, key="sc"):
    return {d.text: sorted((s.text, s.label_) for s in d.spans.get(key, [])) for d in docs(path)}


def lines(path):
    return [json.loads(x) for x in Path(path).read_text(encoding="utf8").splitlines()]


from conftest import convert_cli as cli  # noqa: E402


# name, options, (read, kept, rejected, merged, duplicates), rejected_by_reason, binary_answers, merge
LEDGERS = [
    ("spans_manual", {}, (5, 3, 2, 0, 0), {"answer_ignore": 1, "answer_reject": 1}, {}, {}),
    ("ner_manual", {}, (3, 2, 1, 0, 0), {"answer_ignore": 1}, {}, {}),
    (
        "ner_teach_old",
        {},
        (5, 0, 5, 0, 0),
        {"binary_answer": 5},
        {"ner.teach accept": 3, "ner.teach ignore": 1, "ner.teach reject": 1},
        {},
    ),
    ("ner_teach", {}, (3, 0, 3, 0, 0), {"binary_answer": 3}, {"ner.teach accept": 2, "ner.teach reject": 1}, {}),
    ("spans_teach", {}, (2, 0, 2, 0, 0), {"binary_answer": 2}, {"spans.teach accept": 1, "spans.teach reject": 1}, {}),
    # majority: the review is one more voter; its reject withdraws only the reviewer's own accepts (none)
    (
        "review",
        {},
        (7, 2, 2, 3, 0),
        {"answer_reject": 1, "binary_answer": 1},
        {"review of ner.teach accept": 1},
        {"groups_merged": 2, "groups_with_disagreement": 2},
    ),
    # review: the accepted review wins; the rejected review withdraws both annotators' accepts
    (
        "review",
        {"merge": "review"},
        (7, 1, 4, 2, 0),
        {"answer_reject": 1, "binary_answer": 1, "withdrawn_by_review_reject": 2},
        {"review of ner.teach accept": 1},
        {"groups_merged": 1, "groups_with_disagreement": 1, "withdrawn": 2},
    ),
    (
        "repeated",
        {},
        (18, 5, 9, 3, 1),
        {"answer_reject": 5, "withdrawn_by_later_reject": 4},
        {},
        {"groups_merged": 3, "groups_with_disagreement": 2, "superseded": 3, "withdrawn": 4},
    ),
    (
        "identities",
        {},
        (8, 1, 5, 2, 0),
        {
            "answer_ignore": 1,
            "answer_reject": 1,
            "binary_answer": 1,
            "empty_span": 1,
            "withdrawn_by_later_reject": 1,
        },
        {"ner.teach accept": 1},
        {"groups_merged": 1, "groups_with_disagreement": 1, "withdrawn": 1},
    ),
]


@pytest.mark.parametrize("name,options,counts,reasons,binary,merge", LEDGERS)
def test_exact_ledger_of_each_prodigy_shape(tmp_path, name, options, counts, reasons, binary, merge):
    report = convert([str(PROD / f"{name}.jsonl")], tmp_path, ConvertOptions(eval_split=0.0, **options))
    assert tuple(report[k] for k in KEYS) == counts
    assert report["balanced"] is True
    assert report["rejected_by_reason"] == reasons
    assert report["binary_answers"] == binary
    assert {k: v for k, v in report["merge"].items() if k != "disagreements_per_label"} == {**NO_MERGE, **merge}
    assert len(lines(tmp_path / "rejections.jsonl")) == counts[2]
    assert len(docs(tmp_path / "train.spacy")) == counts[1]


def test_manual_and_correct_shapes_are_kept_as_annotated(tmp_path):
    convert([str(PROD / "spans_manual.jsonl"), str(PROD / "ner_manual.jsonl")], tmp_path, ConvertOptions(eval_split=0))
    assert spans_by_text(tmp_path / "train.spacy") == {
        "Sox9 binds DNA.": [("DNA", "CHEBI"), ("Sox9", "PR"), ("Sox9 binds DNA", "GO_MF")],
        "Shh is expressed in the notochord.": [("Shh", "PR"), ("notochord", "UBERON")],
        "Pax6 in the eye.": [("Pax6", "PR"), ("eye", "UBERON")],
        "Fgf8 in the limb bud.": [("Fgf8", "PR"), ("limb bud", "UBERON")],
        # ner.correct: the model's span (with source/input_hash) and the annotator's own
        "Nkx2-5 marks the heart.": [("Nkx2-5", "PR"), ("heart", "UBERON")],
    }


def test_old_ner_teach_is_never_training_data_and_a_rejected_span_is_never_positive(tmp_path):
    report = convert([str(PROD / "ner_teach_old.jsonl")], tmp_path, ConvertOptions(eval_split=0.0, keep_binary=True))
    assert docs(tmp_path / "train.spacy") == []
    assert len(docs(tmp_path / "binary.spacy")) == 5
    binary = {d.text: d for d in docs(tmp_path / "binary.spacy")}
    shh = binary["Shh is expressed in the notochord."]
    # the task was accepted; its "notochord" span was answered reject: never accepted, never an entity
    assert [(s.text, s.label_) for s in shh.spans["sc_accepted"]] == [("Shh", "PR")]
    assert [(s.text, s.label_) for s in shh.spans["sc_rejected"]] == [("notochord", "PR")]
    assert [e.text for e in shh.ents] == ["Shh"] and "sc" not in shh.spans
    # the ignored answer gives neither
    pax = binary["Pax6 in the eye."]
    assert (list(pax.spans["sc_accepted"]), list(pax.spans["sc_rejected"])) == ([], [])
    assert report["spans_dropped"] == {"span_answer_ignore": 1}
    every_positive = {(d.text, s.text) for d in docs(tmp_path / "binary.spacy") for s in d.spans["sc_accepted"]}
    assert every_positive == {
        ("Sox9 binds DNA.", "Sox9"),
        ("Shh is expressed in the notochord.", "Shh"),
        ("Wnt signalling in the gut.", "Wnt"),
    }


def test_rejected_span_inside_an_accepted_complete_task_is_dropped(tmp_path):
    task = json.loads((PROD / "spans_manual.jsonl").read_text(encoding="utf8").splitlines()[0])
    task["spans"][2]["answer"] = "reject"  # DNA (CHEBI)
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(task) + "\n", encoding="utf8")
    for keep_binary in (False, True):
        out = tmp_path / f"out{keep_binary}"
        report = convert([str(src)], out, ConvertOptions(eval_split=0.0, keep_binary=keep_binary))
        assert report["kept"] == 1 and report["spans_dropped"] == {"span_answer_reject": 1}
        assert spans_by_text(out / "train.spacy") == {"Sox9 binds DNA.": [("Sox9", "PR"), ("Sox9 binds DNA", "GO_MF")]}


def test_several_answers_to_one_input(tmp_path):
    report = convert([str(PROD / "repeated.jsonl")], tmp_path, ConvertOptions(eval_split=0.0))
    # A: latest of two accepts; B: accept withdrawn by a later reject; C: the reject is later in time
    # though read first; D: accepted after a reject; E: the latest of three; F: no timestamps, the
    # reject read last wins; G: a named annotator's later accept; H: alice withdrew, bob's stands
    assert spans_by_text(tmp_path / "train.spacy") == {
        "Sox9 binds DNA.": [("DNA", "CHEBI"), ("Sox9", "PR")],
        "Pax6 in the eye.": [("Pax6", "PR")],
        "Fgf8 in the limb bud.": [("Fgf8", "PR")],
        "Shh in the limb.": [("Shh", "PR"), ("limb", "UBERON")],
        "Hoxd13 patterns the digits.": [("Hoxd13", "PR"), ("digits", "UBERON")],
    }
    withdrawn = [r for r in lines(tmp_path / "rejections.jsonl") if r["reason"] == "withdrawn_by_later_reject"]
    assert [r["line"] for r in withdrawn] == [3, 6, 12, 16]
    assert withdrawn[0]["detail"] == (
        f"accepted, then rejected later by the same annotator ({PROD / 'repeated.jsonl'}:4)"
    )
    # without annotator ids, versions that differ are disagreements (A: DNA; E: limb bud);
    # one named annotator revising their answer is not (G)
    assert report["merge"]["disagreements_per_label"] == {"CHEBI": 1, "UBERON": 1}
    printed = cli(PROD / "repeated.jsonl", tmp_path / "cli", "--eval-split", "0")
    assert printed.exit_code == 0, printed.output
    assert "merge 'majority': 3 inputs had several versions, 2 with disagreements" in printed.text
    assert "one annotator, several answers: 3 superseded by a later accept, 4 withdrawn by a later reject" in (
        printed.text
    )


def test_latest_policy_on_repeated_answers(tmp_path):
    report = convert([str(PROD / "repeated.jsonl")], tmp_path, ConvertOptions(eval_split=0.0, merge="latest"))
    assert tuple(report[k] for k in KEYS) == (18, 5, 9, 3, 1)
    assert spans_by_text(tmp_path / "train.spacy")["Fgf8 in the limb bud."] == [("Fgf8", "PR")]


def test_review_policy_with_versions(tmp_path):
    convert([str(PROD / "review.jsonl")], tmp_path, ConvertOptions(eval_split=0.0, merge="review"))
    assert spans_by_text(tmp_path / "train.spacy") == {
        "Shh is expressed in the notochord.": [("Shh", "PR"), ("notochord", "UBERON")]
    }
    rejected = {r["reason"]: r for r in lines(tmp_path / "rejections.jsonl")}
    assert rejected["withdrawn_by_review_reject"]["detail"] == (
        f"the review of this input answered 'reject' ({PROD / 'review.jsonl'}:6)"
    )


# --- a Prodigy database ------------------------------------------------------------------------

SESSION = "ids-alice@clinic.org"


def _db(tmp_path):
    def tasks(name):
        return lines(PROD / f"{name}.jsonl")

    alice = [t for t in tasks("identities") if t.get("_session_id") == SESSION]
    alice.append(b'{"text": "cut short')  # unparseable: its origin still names the session dataset
    return write_prodigy_sqlite(
        tmp_path / "prodigy.db",
        {"bio": tasks("spans_manual") + tasks("identities"), "bio_teach": tasks("ner_teach"), SESSION: alice},
        sessions={SESSION},
    )


def test_exact_ledger_of_a_prodigy_sqlite_database(tmp_path):
    db = _db(tmp_path)
    report = convert([str(db)], tmp_path / "out", ConvertOptions(eval_split=0.0))
    # spans_manual (5: 3 kept) + identities (8: 1 kept, 2 merged) + ner_teach (3 binary); the session skipped
    assert tuple(report[k] for k in KEYS) == (16, 4, 10, 2, 0)
    assert report["binary_answers"] == {"ner.teach accept": 3, "ner.teach reject": 1}
    assert report["sources"] == [
        {"source": str(db), "format": "sqlite", "role": "train", "datasets": ["bio", "bio_teach"]},
        {"source": str(db), "skipped_session_datasets": [pseudonym(SESSION, "prodigy")]},
    ]
    # with the session dataset: its 4 answers are read again (the two accepts are exact duplicates)
    # and its broken row
    report = convert([str(db)], tmp_path / "s", ConvertOptions(eval_split=0.0, include_sessions=True))
    assert tuple(report[k] for k in KEYS) == (21, 4, 13, 2, 2)
    assert report["rejected_by_reason"]["answer_reject"] == 3 and report["rejected_by_reason"]["malformed_json"] == 1
    (broken,) = [r for r in lines(tmp_path / "s" / "rejections.jsonl") if r["reason"] == "malformed_json"]
    assert broken["dataset"] == pseudonym(SESSION, "prodigy")
    assert report["binary_answers"] == {"ner.teach accept": 4, "ner.teach reject": 1}
    assert report["sources"][0]["datasets"] == ["bio", "bio_teach", pseudonym(SESSION, "prodigy")]


# --- no annotator identity anywhere ------------------------------------------------------------

IDENTITIES = ("clinic.org", "alice", "Alice", "bob", "Bob", "carol", "Carol")


def _all_output_text(folder):
    out = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):  # the outputs' manifests too
        data = path.read_bytes()
        if path.suffix == ".spacy":
            data = zlib.decompress(data)  # DocBin bytes are zlib-compressed msgpack
            for doc in docs(path):
                out.append(json.dumps(doc.user_data, default=str))
        out.append(data.decode("utf8", errors="replace"))
    return "\n".join(out)


def test_no_annotator_identity_reaches_any_output(tmp_path):
    raw = (PROD / "identities.jsonl").read_text(encoding="utf8")
    for where in ('"_annotator_id": "ids-alice@', '"_session_id": "ids-bob@', '"annotator": "bob@', '"email": "bob@'):
        assert where in raw  # the fixture has them
    assert '"sessions": ["ids-alice@clinic.org"]' in raw and '"user": {"email": "alice@' in raw
    db = _db(tmp_path)
    # a folder as `prodigy db-out` writes it, with a session dataset's file named after the session
    folder = tmp_path / "db_out"
    folder.mkdir()
    (folder / "bio.jsonl").write_text(raw, encoding="utf8")
    session = [json.dumps(t) for t in lines(PROD / "identities.jsonl") if t["_session_id"] == SESSION]
    (folder / f"{SESSION}.jsonl").write_text("\n".join(session + ['{"cut short']) + "\n", encoding="utf8")
    runs = [
        ([PROD / "identities.jsonl"], ["--keep-binary"]),
        ([folder], ["--keep-binary"]),
        ([db], ["--keep-binary", "--include-sessions"]),
        ([db], []),
        ([db], ["--datasets", "nope"]),  # an error that lists the datasets
    ]
    for i, (sources, flags) in enumerate(runs):
        out = tmp_path / f"out{i}"
        result = cli(*sources, out, "--eval-split", "0", *flags)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        text = result.output + (_all_output_text(out) if out.exists() else "")
        if i == 4:
            assert result.exit_code == 1 and pseudonym(SESSION, "prodigy") in result.text
        else:
            assert result.exit_code == 0, result.output
            assert "withdrawn_by_later_reject" in text and "empty_span" in text  # the rejections are there
        for name in IDENTITIES:
            assert name not in text, (i, name)


# --- a source that gives nothing ---------------------------------------------------------------


def test_a_source_of_binary_answers_only_exits_non_zero_and_says_why(tmp_path):
    result = cli(PROD / "ner_teach_old.jsonl", tmp_path / "out", "--eval-split", "0")
    assert result.exit_code == 1
    assert (
        f"nothing was kept from {PROD / 'ner_teach_old.jsonl'}: read 5 tasks, rejected 5, merged 0, "
        "duplicates 0. Most common reasons: binary_answer 5: binary accept/reject answers are not complete "
        "annotations: correct them with spans.correct/ner.correct, or keep them apart with --keep-binary"
    ) in result.text
    assert "rejections.jsonl" in result.text
    assert "binary answers excluded: ner.teach accept 3, ner.teach ignore 1, ner.teach reject 1" in result.text


def test_one_fully_rejected_source_among_good_ones_exits_non_zero(tmp_path):
    result = cli(PROD / "spans_manual.jsonl", PROD / "spans_teach.jsonl", tmp_path / "out", "--eval-split", "0")
    assert result.exit_code == 1
    assert f"nothing was kept from {PROD / 'spans_teach.jsonl'}: all 2 tasks read from it were rejected" in result.text
    assert "most common reasons: binary_answer 2" in result.text


def test_an_empty_source_exits_non_zero(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf8")
    result = cli(empty, tmp_path / "out")
    assert result.exit_code == 1
    # an empty file is refused by the format sniffer before any task is read
    said = " ".join(result.text.split())
    assert f"{empty}: cannot read this file: it is empty" in said


def test_a_good_source_exits_zero_and_nothing_kept_is_empty(tmp_path):
    result = cli(PROD / "spans_manual.jsonl", tmp_path / "out", "--eval-split", "0")
    assert result.exit_code == 0, result.output
    assert nothing_kept(json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf8"))) == []


def test_every_rejection_reason_has_advice_and_a_line_in_the_docs():
    doc = (ROOT / "docs" / "ingestion.md").read_text(encoding="utf8")
    for reason in REASON_ADVICE:
        assert f"`{reason}`" in doc, reason


# --- no torch on the token-less path -----------------------------------------------------------

CONVERT_WITHOUT_TORCH = """
import runpy, sys
sys.argv = ["convert", *sys.argv[1:]]
try:
    runpy.run_module("scripts.convert", run_name="__main__")
except SystemExit as exit:
    code = exit.code
print("spacy.cli loaded:", "spacy.cli" in sys.modules, "torch loaded:", "torch" in sys.modules, "exit:", code)
"""


def test_a_token_less_export_converts_without_importing_torch(tmp_path):
    sample = [json.loads(x) for x in (ROOT / "assets" / "craft_sample" / "train.jsonl").read_text().splitlines()]
    stripped = tmp_path / "craft_no_tokens.jsonl"
    with stripped.open("w", encoding="utf8") as f:
        for task in sample:
            task.pop("tokens", None)
            for span in task["spans"]:
                span.pop("token_start", None), span.pop("token_end", None)
            f.write(json.dumps(task) + "\n")
    for source, align in ((DATA / "no_tokens.jsonl", "expand"), (stripped, "expand")):
        out = tmp_path / source.stem
        result = subprocess.run(
            [sys.executable, "-c", CONVERT_WITHOUT_TORCH, str(source), str(out), "--align", align, "--eval-split", "0"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
        )
        assert result.stdout.strip().endswith("spacy.cli loaded: False torch loaded: False exit: 0"), result.stdout + result.stderr
        report = json.loads((out / "report.json").read_text(encoding="utf8"))
        assert report["kept"] > 0


def test_spacy_cli_is_deferred_without_a_trace():
    code = (
        "import sys\n"
        "from biomed_spancat.ingest.startup import spacy_cli_deferred, torch_hidden\n"
        "with torch_hidden(), spacy_cli_deferred():\n"
        "    import spacy\n"
        "assert 'spacy.cli' not in sys.modules and 'spacy.cli.info' not in sys.modules and 'weasel' not in sys.modules\n"
        "assert not hasattr(spacy, 'cli')\n"
        "import spacy.cli\n"
        "from spacy.cli.info import info\n"
        "assert spacy.cli.__file__.endswith('__init__.py') and 'weasel' in sys.modules\n"
        "assert spacy.info(markdown=True, silent=True) == info(markdown=True, silent=True)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
