"""Validation and alignment of single tasks (biomed_spancat.ingest.validate)."""

import pytest

from biomed_spancat.ingest.answers import answer_kind, classify_answer
from biomed_spancat.ingest.tasks import Ledger, Origin, Task, pseudonym
from biomed_spancat.ingest.validate import (
    Rejection,
    ValidateOptions,
    annotator_id,
    snap_span,
    validate_task,
)

TEXT = "Sox9 binds DNA."
TOKENS = [
    {"text": "Sox9", "start": 0, "end": 4, "id": 0, "ws": True},
    {"text": "binds", "start": 5, "end": 10, "id": 1, "ws": True},
    {"text": "DNA", "start": 11, "end": 14, "id": 2, "ws": False},
    {"text": ".", "start": 14, "end": 15, "id": 3, "ws": False},
]


def make(spans, tokens=TOKENS, text=TEXT, **extra):
    data = {"text": text, "spans": spans, "answer": "accept", "_view_id": "spans_manual", **extra}
    if tokens is not None:
        data["tokens"] = [dict(t) for t in tokens]
    return Task(data, Origin("t.jsonl", line=7, dataset="t"))


def check(task, **options):
    return validate_task(task, ValidateOptions(**options), Ledger())


def test_docs_use_the_tasks_own_tokens():
    # a tokenization spaCy would not produce ("Sox" + "9"): kept as annotated
    tokens = [
        {"text": "Sox", "start": 0, "end": 3, "ws": False},
        {"text": "9", "start": 3, "end": 4, "ws": True},
        {"text": "binds", "start": 5, "end": 10, "ws": True},
        {"text": "DNA.", "start": 11, "end": 15, "ws": False},
    ]
    ann = check(make([{"start": 3, "end": 4, "label": "X", "token_start": 1, "token_end": 1}], tokens=tokens))
    assert ann.words == ["Sox", "9", "binds", "DNA."]
    assert list(ann.spaces) == [0, 1, 1, 0]
    assert ann.spans == [(1, 2, "X")]
    assert ann.char_spans == [(3, 4, "X")]


def test_missing_ws_is_derived_from_offsets():
    tokens = [{k: v for k, v in t.items() if k != "ws"} for t in TOKENS]
    ann = check(make([], tokens=tokens))
    assert list(ann.spaces) == [1, 1, 0, 0]


def test_overlapping_spans_are_all_kept_and_sorted():
    spans = [
        {"start": 5, "end": 14, "label": "GO_MF", "token_start": 1, "token_end": 2},
        {"start": 0, "end": 4, "label": "PR", "token_start": 0, "token_end": 0},
        {"start": 11, "end": 14, "label": "CHEBI", "token_start": 2, "token_end": 2},
        {"start": 0, "end": 4, "label": "SO", "token_start": 0, "token_end": 0},
    ]
    ann = check(make(spans))
    assert ann.spans == [(0, 1, "PR"), (0, 1, "SO"), (1, 3, "GO_MF"), (2, 3, "CHEBI")]


def test_ner_manual_spans_without_token_offsets_are_placed():
    ann = check(make([{"start": 5, "end": 14, "label": "GO_MF"}], _view_id="ner_manual"))
    assert ann.spans == [(1, 3, "GO_MF")]


@pytest.mark.parametrize(
    "span,reason,message",
    [
        ({"start": 0, "end": 99, "label": "PR"}, "span_out_of_range", "[0:99] is outside the text (length 15)"),
        ({"start": -1, "end": 4, "label": "PR"}, "span_out_of_range", "outside the text"),
        ({"start": 4, "end": 4, "label": "PR"}, "empty_span", "span 0 (PR) is an empty span (start == end == 4)"),
        ({"start": 0, "end": 0, "label": "PR"}, "empty_span", "empty span (start == end == 0)"),
        ({"start": 15, "end": 15, "label": "PR"}, "empty_span", "empty span (start == end == 15)"),
        ({"start": 16, "end": 16, "label": "PR"}, "span_out_of_range", "[16:16] is outside the text (length 15)"),
        ({"start": 10, "end": 5, "label": "PR"}, "span_out_of_range", "[10:5] ends before it starts"),
        (
            {"start": "0", "end": 4, "label": "PR"},
            "non_integer_offsets",
            "span 0 (PR) has non-integer offsets (start '0', end 4): character offsets must be JSON integers",
        ),
        ({"start": 0, "end": "12", "label": "PR"}, "non_integer_offsets", "(start 0, end '12')"),
        ({"start": 0.0, "end": 4, "label": "PR"}, "non_integer_offsets", "(start 0.0, end 4)"),
        ({"start": True, "end": 4, "label": "PR"}, "non_integer_offsets", "(start True, end 4)"),
        ({"end": 4, "label": "PR"}, "span_missing_offsets", "span 0 (PR) has no 'start'"),
        ({"label": "PR"}, "span_missing_offsets", "span 0 (PR) has no 'start' and 'end'"),
        (
            {"start": 0, "end": 10, "label": "GO", "token_start": 1, "token_end": 0},
            "span_token_offsets",
            "token_start 1 > token_end 0",
        ),
        (
            {"start": 0, "end": 4, "label": "PR", "token_start": 0, "token_end": 9},
            "span_token_offsets",
            "outside the 4 tokens",
        ),
        (
            {"start": 5, "end": 10, "label": "GO", "token_start": 2, "token_end": 2},
            "span_offsets_inconsistent",
            "[5:10] 'binds' does not match its tokens 2..2 [11:14] 'DNA'",
        ),
        ({"start": 0, "end": 4, "label": ""}, "span_missing_label", "has no label"),
        ({"start": 0, "end": 4}, "span_missing_label", "has no label"),
        ({"start": 0, "end": 4, "label": "   "}, "span_missing_label", "has no label"),
    ],
)
def test_bad_spans_reject_the_task_with_a_reason(span, reason, message):
    with pytest.raises(Rejection) as err:
        check(make([span]))
    assert err.value.reason == reason
    assert message in err.value.detail


@pytest.mark.parametrize(
    "data,reason,message",
    [
        ({"spans": [], "answer": "accept"}, "missing_text", "no 'text'"),
        ({"text": 5, "answer": "accept"}, "missing_text", "not a string"),
        ({"text": "", "answer": "accept"}, "empty_text", "empty"),
        ({"text": "ab", "tokens": "ab", "answer": "accept"}, "bad_tokens", "not a list"),
        ({"text": "ab", "spans": {"a": 1}, "answer": "accept"}, "bad_spans", "not a list"),
        (
            {"text": "ab", "tokens": [{"text": "ab", "start": 0, "end": 2, "ws": True}]},
            "bad_tokens",
            "do not rebuild the text",
        ),
        ({"text": "ab", "tokens": [{"text": "ab", "start": 0}]}, "bad_tokens", "token 0"),
        (
            {"text": "ab cd", "tokens": [{"text": "cd", "start": 3, "end": 5}, {"text": "ab", "start": 0, "end": 2}]},
            "bad_tokens",
            "does not match",
        ),
    ],
)
def test_bad_tasks_are_rejected_with_a_reason(data, reason, message):
    with pytest.raises(Rejection) as err:
        check(Task(data, Origin("t.jsonl", line=1)))
    assert err.value.reason == reason
    assert message in err.value.detail


def test_unparsed_records_keep_their_reader_reason():
    task = Task(None, Origin("t.jsonl", line=3), error="malformed JSON: Expecting value", reason="malformed_json")
    with pytest.raises(Rejection) as err:
        check(task)
    assert (err.value.reason, err.value.detail) == ("malformed_json", "malformed JSON: Expecting value")


# Alignment without tokens: "BMP2-mediated signalling in chondrocytes." is tokenized by spaCy as
# BMP2 | - | mediated | signalling | in | chondrocytes | .
ALIGN_TEXT = "BMP2-mediated signalling in chondrocytes."


@pytest.mark.parametrize(
    "start,end,policy,expected",
    [
        (0, 4, "strict", "BMP2"),  # on token boundaries: the same under every policy
        (0, 4, "expand", "BMP2"),
        (0, 4, "contract", "BMP2"),
        (28, 35, "strict", None),  # "chondro" inside "chondrocytes"
        (28, 35, "expand", "chondrocytes"),
        (28, 35, "contract", None),  # no whole token inside: cannot contract
        (1, 13, "strict", None),  # "MP2-mediated"
        (1, 13, "expand", "BMP2-mediated"),
        (1, 13, "contract", "-mediated"),
        (13, 25, "expand", "signalling"),  # " signalling ": edges on whitespace
        (13, 25, "contract", "signalling"),
        (13, 26, "expand", "signalling in"),  # " signalling i"
        (13, 26, "contract", "signalling"),
    ],
)
def test_alignment_policies(start, end, policy, expected):
    task = make([{"start": start, "end": end, "label": "X"}], tokens=None, text=ALIGN_TEXT, _view_id="ner_manual")
    ledger = Ledger()
    if expected is None:
        with pytest.raises(Rejection) as err:
            validate_task(task, ValidateOptions(align=policy), ledger)
        assert err.value.reason == "misaligned_span"
        assert f"align={policy}" in err.value.detail
    else:
        ann = validate_task(task, ValidateOptions(align=policy), ledger)
        ((s, e, _),) = ann.spans
        cs, ce, _ = ann.char_spans[0]
        assert ALIGN_TEXT[cs:ce] == expected
        assert "".join(w + " " * sp for w, sp in zip(ann.words[s:e], ann.spaces[s:e])).strip() == expected
    misaligned = ALIGN_TEXT[start:end] not in ("BMP2",)
    assert ledger.spans_misaligned["X"] == (1 if misaligned else 0)


def test_snap_span_on_exact_arrays():
    starts, ends = [0, 5, 11, 14], [4, 10, 14, 15]
    assert snap_span(0, 4, starts, ends, "strict") == (0, 1)
    assert snap_span(1, 12, starts, ends, "expand") == (0, 3)
    assert snap_span(1, 12, starts, ends, "contract") == (1, 2)
    assert snap_span(1, 3, starts, ends, "contract") is None
    with pytest.raises(ValueError, match="unknown alignment policy"):
        snap_span(0, 4, starts, ends, "nearest")


def test_rename_then_label_set():
    spans = [
        {"start": 0, "end": 4, "label": "GGP", "token_start": 0, "token_end": 0},
        {"start": 11, "end": 14, "label": "CHEBI", "token_start": 2, "token_end": 2},
    ]
    ledger = Ledger()
    ann = validate_task(make(spans), ValidateOptions(rename={"GGP": "PR"}, labels={"PR", "CHEBI"}), ledger)
    assert [label for _, _, label in ann.spans] == ["PR", "CHEBI"]
    assert ledger.spans_renamed == {"GGP->PR": 1}


def test_unknown_label_rejects_the_task_by_default():
    spans = [{"start": 0, "end": 4, "label": "PRR", "token_start": 0, "token_end": 0}]
    with pytest.raises(Rejection) as err:
        check(make(spans), labels={"PR"})
    assert err.value.reason == "unknown_label"
    assert "'PRR'" in err.value.detail


def test_unknown_label_can_drop_only_the_span():
    spans = [
        {"start": 0, "end": 4, "label": "PRR", "token_start": 0, "token_end": 0},
        {"start": 11, "end": 14, "label": "CHEBI", "token_start": 2, "token_end": 2},
    ]
    ledger = Ledger()
    ann = validate_task(make(spans), ValidateOptions(labels={"CHEBI"}, unknown_labels="drop"), ledger)
    assert ann.spans == [(2, 3, "CHEBI")]
    assert ledger.spans_dropped == {"unknown_label:PRR": 1}


def test_a_span_given_twice_is_kept_once_and_counted():
    span = {"start": 0, "end": 4, "label": "PR", "token_start": 0, "token_end": 0}
    ledger = Ledger()
    ann = validate_task(make([span, dict(span)]), ValidateOptions(), ledger)
    assert ann.spans == [(0, 1, "PR")]
    assert ledger.spans_dropped == {"duplicate_span": 1}


def test_doc_key_from_meta_else_input_hash():
    assert check(make([], meta={"doc_id": "PMC1"}, _input_hash=5)).doc_key == "doc:PMC1"
    assert check(make([], meta={"source": "x"}, _input_hash=5)).doc_key == "input:5"


@pytest.mark.parametrize(
    "data,expected",
    [
        ({"answer": "accept", "_view_id": "spans_manual"}, None),
        ({"answer": "accept", "_view_id": "ner_manual"}, None),
        ({"answer": "accept", "_view_id": "review", "versions": []}, None),
        ({"answer": "accept"}, None),
        ({"answer": "reject", "_view_id": "spans_manual"}, "answer_reject"),
        ({"answer": "ignore", "_view_id": "ner_manual"}, "answer_ignore"),
        ({"answer": "accept", "_view_id": "ner"}, "binary_answer"),
        ({"answer": "reject", "_view_id": "ner"}, "binary_answer"),
        ({"answer": "accept", "_view_id": "spans"}, "binary_answer"),
        ({"answer": "accept", "_view_id": "classification"}, "binary_answer"),
        ({"answer": "accept", "_view_id": "choice"}, "unsupported_view"),
        ({"_view_id": "spans_manual"}, "no_answer"),
        ({"answer": "maybe"}, "unknown_answer"),
    ],
)
def test_classify_answer(data, expected):
    result = classify_answer(data)
    assert (result[0] if result else None) == expected


SPAN = {"start": 0, "end": 4, "label": "PR"}


@pytest.mark.parametrize(
    "data,kind",
    [
        # by interface
        ({"_view_id": "ner", "spans": [SPAN]}, "ner.teach"),
        ({"_view_id": "spans", "spans": [SPAN]}, "spans.teach"),
        ({"_view_id": "classification", "spans": [SPAN]}, "classification"),
        ({"_view_id": "review", "view_id": "ner", "spans": [SPAN]}, "review of ner.teach"),
        ({"_view_id": "review", "view_id": "ner_manual", "spans": [SPAN]}, None),
        # a manual interface stays complete even with a model's marks (ner.correct keeps source/input_hash)
        ({"_view_id": "ner_manual", "spans": [{**SPAN, "source": "en_core_web_sm", "input_hash": 1}]}, None),
        ({"_view_id": "spans_manual", "spans": [{**SPAN, "score": 0.9}]}, None),
        # no _view_id (older exports): judged from the content
        ({"spans": [{**SPAN, "answer": "reject"}]}, "span answers"),
        ({"spans": [{**SPAN, "answer": "accept"}], "tokens": [{"text": "Sox9"}]}, "span answers"),
        ({"spans": [{**SPAN, "score": 0.51}]}, "ner.teach"),
        ({"spans": [{**SPAN, "rank": 0}]}, "ner.teach"),
        ({"spans": [{**SPAN, "priority": 0.5}]}, "ner.teach"),
        ({"spans": [{**SPAN, "source": "core_sci_sm"}]}, "ner.teach"),
        ({"spans": [{**SPAN, "input_hash": 12}]}, "ner.teach"),
        ({"spans": [SPAN], "score": 0.5}, "ner.teach"),
        ({"spans": [SPAN], "priority": 0.5}, "ner.teach"),
        # with tokens, a span's source alone is a manual correction (old ner.make-gold)
        ({"spans": [{**SPAN, "source": "core_sci_sm"}], "tokens": [{"text": "Sox9"}]}, None),
        ({"spans": [SPAN]}, None),
        ({"spans": [], "score": 0.5}, None),
    ],
)
def test_binary_and_partial_answers_are_recognised_from_content(data, kind):
    assert answer_kind({"text": TEXT, "answer": "accept", **data}) == kind
    assert (classify_answer({"text": TEXT, "answer": "accept", **data}) or ("",))[0] == (
        "binary_answer" if kind else ""
    )


def test_a_span_answered_reject_is_never_positive_in_a_complete_annotation():
    spans = [
        {"start": 0, "end": 4, "label": "PR", "token_start": 0, "token_end": 0, "answer": "reject"},
        {"start": 11, "end": 14, "label": "CHEBI", "token_start": 2, "token_end": 2, "answer": "accept"},
        {"start": 5, "end": 10, "label": "GO", "token_start": 1, "token_end": 1, "answer": "ignore"},
        {"start": 5, "end": 14, "label": "GO", "token_start": 1, "token_end": 2},
    ]
    ledger = Ledger()
    ann = validate_task(make(spans), ValidateOptions(), ledger)
    assert ann.spans == [(1, 3, "GO"), (2, 3, "CHEBI")]
    assert ann.rejected == []
    assert ledger.spans_dropped == {"span_answer_reject": 1, "span_answer_ignore": 1}


@pytest.mark.parametrize(
    "task_answer,span_answers,accepted,rejected,dropped",
    [
        # ner.teach: the task's answer is the span's
        ("accept", [None], [(0, 1, "PR")], [], {}),
        ("reject", [None], [], [(0, 1, "PR")], {}),
        ("ignore", [None], [], [], {"span_answer_ignore": 1}),
        # spans with their own answer: it wins, and a reject never becomes positive
        ("accept", ["accept", "reject"], [(0, 1, "PR")], [(2, 3, "CHEBI")], {}),
        ("accept", ["reject", "ignore"], [], [(0, 1, "PR")], {"span_answer_ignore": 1}),
        ("reject", ["accept", "reject"], [], [(2, 3, "CHEBI")], {"span_answer_conflict": 1}),
    ],
)
def test_binary_answers_split_accepted_and_rejected_spans(task_answer, span_answers, accepted, rejected, dropped):
    spans = [
        {"start": 0, "end": 4, "label": "PR", "score": 0.6},
        {"start": 11, "end": 14, "label": "CHEBI", "score": 0.4},
    ][: len(span_answers)]
    for span, said in zip(spans, span_answers):
        if said is not None:
            span["answer"] = said
    task = make(spans, tokens=None, _view_id=None)
    task.data["answer"] = task_answer
    ledger = Ledger()
    ann = validate_task(task, ValidateOptions(), ledger, binary=True)
    assert (ann.spans, ann.rejected, dict(ledger.spans_dropped)) == (accepted, rejected, dropped)


def test_annotator_ids_are_pseudonyms():
    origin = Origin("t.jsonl", line=1, dataset="t")
    who, known = annotator_id({"_annotator_id": "ds-alice@clinic.org", "_session_id": "x"}, origin)
    assert (who, known) == (pseudonym("ds-alice@clinic.org", "prodigy"), True)
    assert "alice" not in who and who.startswith("prodigy:")
    bob = pseudonym("ds-bob@clinic.org", "prodigy")
    assert annotator_id({"_session_id": "ds-bob@clinic.org"}, origin) == (bob, True)
    # already opaque ids from another tool's reader stay as they are
    assert annotator_id({"_annotator_id": "labelstudio:0123456789"}, origin) == ("labelstudio:0123456789", True)
    assert annotator_id({"_annotator_id": "labelstudio:17"}, origin) == (pseudonym("17", "labelstudio"), True)
    # no id: one unknown annotator per source and dataset
    unknown, known = annotator_id({}, origin)
    assert not known and unknown == annotator_id({"_annotator_id": ""}, origin)[0]
    assert unknown != annotator_id({}, Origin("u.jsonl", line=1, dataset="u"))[0]
    ann = check(make([], _annotator_id="ds-alice@clinic.org"))
    assert ann.annotator == pseudonym("ds-alice@clinic.org", "prodigy") and ann.annotator_known


def test_the_tokenizer_matches_spacy_blank():
    import spacy

    from biomed_spancat.ingest.validate import _make_tokenizer

    text = "BMP2-mediated signalling (Fig. 1a) in U.S. mice, e.g. 3.5mg/kg: don't http://x.org/a."
    ours = _make_tokenizer("en")(text)
    theirs = spacy.blank("en")(text)
    assert [t.text for t in ours] == [t.text for t in theirs]
    assert [t.whitespace_ for t in ours] == [t.whitespace_ for t in theirs]
