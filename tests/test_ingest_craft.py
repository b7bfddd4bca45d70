"""The CRAFT dev export from ../shared survives the trip exactly: every task,
every span, every overlap (skipped when ../shared is absent)."""

import json
from collections import Counter

import spacy
from spacy.tokens import DocBin

from biomed_spancat.ingest.convert import ConvertOptions, convert
from biomed_spancat.ingest.prodigy_db import write_prodigy_sqlite


def overlapping_per_label(spans):
    """Independent count: spans sharing a character with another span, per label."""
    out = Counter()
    for i, a in enumerate(spans):
        if any(j != i and a["start"] < b["end"] and b["start"] < a["end"] for j, b in enumerate(spans)):
            out[a["label"]] += 1
    return out


def test_craft_dev_survives_exactly(craft_dir, tmp_path):
    source = craft_dir / "craft_dev.jsonl"
    tasks = [json.loads(line) for line in source.read_text(encoding="utf8").splitlines()]
    report = convert([str(source)], tmp_path / "jsonl", ConvertOptions(eval_split=0.0))
    assert (report["read"], report["kept"], report["rejected"], report["merged"], report["duplicates"]) == (
        len(tasks),
        len(tasks),
        0,
        0,
        0,
    )
    docs = list(DocBin().from_disk(tmp_path / "jsonl" / "train.spacy").get_docs(spacy.blank("en").vocab))
    assert len(docs) == len(tasks)
    got = Counter((d.text, s.start_char, s.end_char, s.label_) for d in docs for s in d.spans["sc"])
    expected = Counter((t["text"], s["start"], s["end"], s["label"]) for t in tasks for s in t["spans"])
    assert got == expected
    assert sum(expected.values()) == report["spans"]["spans"]
    # tokens are the export's own
    assert sum(len(d) for d in docs) == sum(len(t["tokens"]) for t in tasks) == report["spans"]["tokens"]
    # overlaps survive, per label
    overlaps = Counter()
    for t in tasks:
        overlaps.update(overlapping_per_label(t["spans"]))
    assert {label: d["overlapping"] for label, d in report["spans"]["per_label"].items() if d["overlapping"]} == dict(
        overlaps
    )
    assert report["spans"]["spans_overlapping"] == sum(overlaps.values()) > 0

    # the same tasks from a Prodigy SQLite database give the same report
    db = write_prodigy_sqlite(tmp_path / "prodigy.db", {"craft_dev": tasks})
    from_db = convert([str(db)], tmp_path / "db", ConvertOptions(datasets=["craft_dev"], eval_split=0.0))
    assert from_db["spans"] == report["spans"]
    assert from_db["kept"] == report["kept"]


def test_craft_dev_split_keeps_articles_whole(craft_dir, tmp_path):
    convert([str(craft_dir / "craft_dev.jsonl")], tmp_path, ConvertOptions(eval_split=0.3, seed=0))
    vocab = spacy.blank("en").vocab
    keys = {
        split: {d.user_data["doc_key"] for d in DocBin().from_disk(tmp_path / f"{split}.spacy").get_docs(vocab)}
        for split in ("train", "dev")
    }
    assert keys["train"] and keys["dev"] and not keys["train"] & keys["dev"]
    assert len(keys["train"] | keys["dev"]) == 7  # the 7 dev articles
