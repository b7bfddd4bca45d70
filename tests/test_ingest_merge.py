"""Merging annotators, duplicates and the document split
(biomed_spancat.ingest.merge, biomed_spancat.ingest.split)."""

import json
from pathlib import Path

import pytest

from biomed_spancat.ingest.merge import Grouper, merge_group
from biomed_spancat.ingest.split import split_documents
from biomed_spancat.ingest.tasks import Ledger, Origin, Task
from biomed_spancat.ingest.validate import ValidateOptions, validate_task

DATA = Path(__file__).parent / "data" / "ingest"
T1 = "BMP2 and BMP4 regulate limb patterning."


def annotations(name, ledger):
    out = []
    for i, line in enumerate((DATA / name).read_text(encoding="utf8").splitlines(), start=1):
        task = Task(json.loads(line), Origin(name, line=i, dataset=name))
        out.append(validate_task(task, ValidateOptions(), ledger))
    return out


def spans_text(ann):
    return sorted((ann.text[s:e], label) for s, e, label in ann.char_spans)


def group_of(anns, text):
    return [a for a in anns if a.text == text]


def merged_t1(policy, files=("annotators.jsonl",)):
    ledger = Ledger()
    anns = [a for f in files for a in annotations(f, ledger)]
    grouper = Grouper(ledger)
    for a in anns:
        grouper.add(a)
    out = {a.text + "|" + a.doc_key: a for a in grouper.merged(policy)}
    return out[T1 + "|doc:d1"], ledger


def test_majority_keeps_spans_most_annotators_marked():
    # alice: BMP2 BMP4 limb limb-patterning; bob: BMP2 BMP4 limb; carol: BMP2 BMP4 limb-patterning regulate
    ann, ledger = merged_t1("majority")
    assert spans_text(ann) == [
        ("BMP2", "PR"),
        ("BMP4", "PR"),
        ("limb", "UBERON"),
        ("limb patterning", "GO_BP"),
    ]
    # the token spans agree with the character spans
    assert [(ann.words[s], ann.words[e - 1]) for s, e, _ in ann.spans] == [
        ("BMP2", "BMP2"),
        ("BMP4", "BMP4"),
        ("limb", "limb"),
        ("limb", "patterning"),
    ]


def test_latest_takes_the_last_answer_by_timestamp():
    ann, _ = merged_t1("latest")
    assert spans_text(ann) == [("BMP2", "PR"), ("BMP4", "PR"), ("limb patterning", "GO_BP"), ("regulate", "GO_BP")]


def test_review_wins_with_its_final_spans():
    ann, ledger = merged_t1("review", files=("annotators.jsonl", "review.jsonl"))
    assert ann.is_review
    assert spans_text(ann) == [("BMP2", "PR"), ("BMP4", "PR"), ("limb", "UBERON")]


def test_review_policy_falls_back_to_majority_without_a_review():
    assert spans_text(merged_t1("review")[0]) == spans_text(merged_t1("majority")[0])


def test_disagreements_are_counted_per_label():
    _, ledger = merged_t1("majority")
    # UBERON "limb" (alice, bob), GO_BP "limb patterning" (alice, carol) and "regulate" (carol)
    assert dict(ledger.disagreements) == {"UBERON": 1, "GO_BP": 2}
    assert ledger.groups_with_disagreement == 1
    # T1: 3 versions -> 1; T3: alice twice -> her latest
    assert ledger.groups_merged == 2
    assert ledger.merged == 3


def test_an_annotator_votes_once_with_the_latest_answer():
    ledger = Ledger()
    anns = group_of(annotations("annotators.jsonl", ledger), "Shh is expressed in the notochord.")
    assert len(anns) == 2
    merged = merge_group(anns, "majority", ledger)
    assert spans_text(merged) == [("Shh", "PR")]
    assert ledger.disagreements == {}  # one annotator cannot disagree with themself


def test_exact_duplicates_collapse_but_identical_texts_of_other_documents_do_not():
    ledger = Ledger()
    grouper = Grouper(ledger)
    kept = [grouper.add(a) for a in annotations("annotators.jsonl", ledger)]
    assert kept.count(False) == 1 and ledger.duplicates == 1
    results = [a for a in grouper.merged("majority") if a.text == "Results"]
    # "Results" in d1 and in d2 share Prodigy's input hash but are two docs
    assert sorted(a.doc_key for a in results) == ["doc:d1", "doc:d2"]
    assert len({a.input_hash for a in results}) == 1


def test_same_text_same_annotator_other_paragraph_is_not_a_duplicate():
    ledger = Ledger()
    base = {"text": "Methods", "answer": "accept", "spans": [], "_input_hash": 1, "_annotator_id": "a"}
    one = Task({**base, "meta": {"doc_id": "d", "paragraph": 1}}, Origin("x", line=1))
    two = Task({**base, "meta": {"doc_id": "d", "paragraph": 7}}, Origin("x", line=2))
    grouper = Grouper(ledger)
    for task in (one, two, one):
        grouper.add(validate_task(task, ValidateOptions(), ledger))
    assert ledger.duplicates == 1
    assert len(list(grouper.merged("majority"))) == 2


def test_two_annotators_agreeing_are_merged_not_duplicates():
    ledger = Ledger()
    base = {"text": "Sox9", "answer": "accept", "spans": [{"start": 0, "end": 4, "label": "PR"}], "_input_hash": 1}
    grouper = Grouper(ledger)
    for i, who in enumerate(("a", "b")):
        grouper.add(validate_task(Task({**base, "_annotator_id": who}, Origin("x", line=i)), ValidateOptions(), ledger))
    (merged,) = list(grouper.merged("majority"))
    assert (ledger.duplicates, ledger.merged) == (0, 1)
    assert merged.spans == [(0, 1, "PR")]


def test_unknown_policy_is_refused():
    ledger = Ledger()
    anns = annotations("annotators.jsonl", ledger)[:2]
    with pytest.raises(ValueError, match="unknown merge policy 'vote'"):
        merge_group(anns, "vote", ledger)


# --- split ---------------------------------------------------------------------------------

SIZES = {f"doc:{i}": n for i, n in enumerate([5, 1, 3, 8, 2, 2, 4, 6, 1, 9])}


def test_split_is_deterministic_and_keeps_documents_whole():
    a = split_documents(SIZES, {"dev": 0.2}, seed=0)
    b = split_documents(dict(reversed(list(SIZES.items()))), {"dev": 0.2}, seed=0)
    assert a == b  # independent of the order documents were read in
    assert set(a) == set(SIZES)  # every document goes to exactly one split
    dev = sum(SIZES[k] for k, v in a.items() if v == "dev")
    assert 0 < dev < sum(SIZES.values()) / 2


def test_split_seed_changes_the_assignment():
    assignments = {tuple(sorted(split_documents(SIZES, {"dev": 0.3}, seed=s).items())) for s in range(5)}
    assert len(assignments) > 1


def test_split_with_test_and_dev():
    a = split_documents(SIZES, {"test": 0.2, "dev": 0.2}, seed=1)
    assert set(a.values()) == {"train", "dev", "test"}


def test_split_leaves_train_a_document():
    assert "train" in split_documents({"doc:a": 10, "doc:b": 1}, {"dev": 0.9}, seed=0).values()
    assert split_documents({"doc:a": 10}, {"dev": 0.5}, seed=0) == {"doc:a": "train"}


def test_split_refuses_a_bad_share():
    with pytest.raises(ValueError, match="dev share"):
        split_documents(SIZES, {"dev": 1.0})
