"""Validation and alignment of single tasks (biomed_spancat.ingest.validate)."""

import pytest

from biomed_spancat.ingest.tasks import Ledger, Origin, Task
from biomed_spancat.ingest.validate import (
    Rejection,
    ValidateOptions,
    classify_answer,
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
        ({"start": 4, "end": 4, "label": "PR"}, "span_out_of_range", "outside the text"),
        ({"start": "0", "end": 4, "label": "PR"}, "span_out_of_range", "no integer start/end"),
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
        ({"answer": "accept", "_view_id": "classification"}, "binary_answer"),
        ({"answer": "accept", "_view_id": "choice"}, "unsupported_view"),
        ({"_view_id": "spans_manual"}, "no_answer"),
        ({"answer": "maybe"}, "unknown_answer"),
    ],
)
def test_classify_answer(data, expected):
    result = classify_answer(data)
    assert (result[0] if result else None) == expected
