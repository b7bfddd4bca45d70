"""Regenerate the hand-made Prodigy exports in this folder.

    python tests/data/ingest/make_fixtures.py

Each task is written out by hand below (text, spans as substrings, answer,
annotator); this script only adds what Prodigy adds: tokens from spaCy's
English tokenizer, character and token offsets, hashes. Hashes are stable
32-bit CRCs (Prodigy's own are murmurhash; only equality matters here).
The broken lines are written as raw bytes on purpose.
"""

import gzip
import json
import zlib
from pathlib import Path

import spacy

HERE = Path(__file__).resolve().parent
NLP = spacy.blank("en")


def tokens(text):
    return [
        {"text": t.text, "start": t.idx, "end": t.idx + len(t.text), "id": t.i, "ws": bool(t.whitespace_)}
        for t in NLP(text)
    ]


def span(text, toks, substring, label, occurrence=0, with_tokens=True):
    start = -1
    for _ in range(occurrence + 1):
        start = text.index(substring, start + 1)
    end = start + len(substring)
    out = {"start": start, "end": end, "label": label}
    if with_tokens:
        out["token_start"] = next(t["id"] for t in toks if t["start"] == start)
        out["token_end"] = next(t["id"] for t in toks if t["end"] == end)
    return out


def task(
    text,
    spans=(),
    answer="accept",
    annotator="alice",
    ts=100,
    view="spans_manual",
    meta=None,
    with_tokens=True,
    span_tokens=True,
    **extra,
):
    toks = tokens(text)
    out = {"text": text, "meta": meta or {}, "_input_hash": zlib.crc32(text.encode("utf8"))}
    if with_tokens:
        out["tokens"] = toks
    out["spans"] = [span(text, toks, s[0], s[1], *s[2:], with_tokens=span_tokens) for s in spans]
    out["_task_hash"] = zlib.crc32(json.dumps([text, out["spans"]]).encode("utf8"))
    out["_view_id"] = view
    if answer is not None:
        out["answer"] = answer
    out["_timestamp"] = ts
    out["_annotator_id"] = f"ds-{annotator}"
    out["_session_id"] = f"ds-{annotator}"
    out.update(extra)
    return out


def write(name, tasks):
    with (HERE / name).open("w", encoding="utf8") as f:
        for t in tasks:
            f.write((t if isinstance(t, str) else json.dumps(t, ensure_ascii=False)) + "\n")


T1 = "BMP2 and BMP4 regulate limb patterning."
T3 = "Shh is expressed in the notochord."
D1 = {"doc_id": "d1", "paragraph": 0}


def main():
    # three annotators on one input, an exact duplicate, one annotator twice,
    # and the same heading in two documents (same _input_hash, different doc)
    alice_t1 = task(
        T1,
        [("BMP2", "PR"), ("BMP4", "PR"), ("limb", "UBERON"), ("limb patterning", "GO_BP")],
        annotator="alice",
        ts=100,
        meta=D1,
    )
    annotators = [
        alice_t1,
        task(T1, [("BMP2", "PR"), ("BMP4", "PR"), ("limb", "UBERON")], annotator="bob", ts=200, meta=D1),
        task(
            T1,
            [("BMP2", "PR"), ("BMP4", "PR"), ("limb patterning", "GO_BP"), ("regulate", "GO_BP")],
            annotator="carol",
            ts=300,
            meta=D1,
        ),
        alice_t1,  # exported twice: an exact duplicate
        task("Results", [], annotator="alice", ts=110, meta={"doc_id": "d1", "paragraph": 1}),
        task("Results", [], annotator="alice", ts=120, meta={"doc_id": "d2", "paragraph": 0}),
        task(
            T3,
            [("Shh", "PR"), ("notochord", "UBERON")],
            annotator="alice",
            ts=130,
            meta={"doc_id": "d2", "paragraph": 1},
        ),
        # alice answered the same input again later: her latest answer is her vote
        task(T3, [("Shh", "PR")], annotator="alice", ts=150, meta={"doc_id": "d2", "paragraph": 1}),
    ]
    write("annotators.jsonl", annotators)

    # the review recipe's output: final spans at the top, the versions it merged below
    review = task(
        T1, [("BMP2", "PR"), ("BMP4", "PR"), ("limb", "UBERON")], annotator="rev", ts=400, view="review", meta=D1
    )
    review["versions"] = [
        {"spans": annotators[0]["spans"], "sessions": ["ds-alice"], "default": False, "answer": "accept"},
        {"spans": annotators[1]["spans"], "sessions": ["ds-bob"], "default": True, "answer": "accept"},
        {"spans": annotators[2]["spans"], "sessions": ["ds-carol"], "default": False, "answer": "accept"},
    ]
    write("review.jsonl", [review])

    # every kind of answer and interface
    teach = task("Sox9 binds DNA.", [("Sox9", "PR")], view="ner", answer="accept", meta={"score": 0.8})
    teach_reject = task("Sox9 binds DNA.", [("DNA", "PR")], view="ner", answer="reject", meta={"score": 0.4})
    write(
        "answers.jsonl",
        [
            task("Sox9 binds DNA.", [("Sox9", "PR"), ("DNA", "CHEBI")], meta={"doc_id": "a1"}),
            task("Wnt signalling in the gut.", [("Wnt", "PR")], answer="reject", meta={"doc_id": "a2"}),
            task("Gata4 in the heart.", [("Gata4", "PR")], answer="ignore", meta={"doc_id": "a3"}),
            teach,
            teach_reject,
            task("Pax6 in the eye.", [("Pax6", "PR")], answer=None, meta={"doc_id": "a4"}),
            task("Is this about mice?", [], view="choice", meta={"doc_id": "a5"}, options=[{"id": "Y"}]),
            # ner.manual: spans without token_start/token_end
            task(
                "Fgf8 in the limb bud.",
                [("Fgf8", "PR"), ("limb bud", "UBERON")],
                view="ner_manual",
                span_tokens=False,
                meta={"doc_id": "a6"},
            ),
            # spans.correct / ner.correct outputs: model suggestions the annotator kept or fixed
            task(
                "Nkx2-5 marks the heart.",
                [("Nkx2-5", "PR"), ("heart", "UBERON")],
                view="spans_manual",
                meta={"doc_id": "a7"},
            ),
            task("Tbx5 in the forelimb.", [("Tbx5", "PR")], view="ner_manual", meta={"doc_id": "a8"}),
        ],
    )

    # spans that do not fall on spaCy's tokens (no tokens in the export)
    write(
        "no_tokens.jsonl",
        [
            task(
                "BMP2-mediated signalling in chondrocytes.",
                [("BMP2", "PR"), ("chondro", "CL")],
                view="ner_manual",
                with_tokens=False,
                span_tokens=False,
                meta={"doc_id": "n1"},
            ),
            task(
                "Sox9 binds DNA.",
                [("ox9 binds", "GO_MF")],
                view="ner_manual",
                with_tokens=False,
                span_tokens=False,
                meta={"doc_id": "n2"},
            ),
            task(
                "Sox9 binds DNA.",
                [("DNA", "CHEBI")],
                view="ner_manual",
                with_tokens=False,
                span_tokens=False,
                meta={"doc_id": "n3"},
            ),
        ],
    )

    # overlapping, nested, crossing and same-extent spans of one text
    write(
        "overlaps.jsonl",
        [
            task(
                "Retinal ganglion cells project axons.",
                [
                    ("Retinal", "UBERON"),
                    ("Retinal ganglion cells", "CL"),
                    ("cells project", "GO_BP"),
                    ("axons", "GO_CC"),
                    ("axons", "UBERON"),
                ],
                meta={"doc_id": "o1"},
            ),
        ],
    )

    # a folder as `prodigy db-out` writes it: one file per dataset, gzip too
    db_out = HERE / "db_out"
    db_out.mkdir(exist_ok=True)
    with (db_out / "limb_a.jsonl").open("w", encoding="utf8") as f:
        f.write(
            json.dumps(
                task("Hoxd13 patterns the digits.", [("Hoxd13", "PR"), ("digits", "UBERON")], meta={"doc_id": "l1"})
            )
            + "\n"
        )
    with gzip.open(db_out / "limb_b.jsonl.gz", "wt", encoding="utf8") as f:
        f.write(json.dumps(task("Shh in the limb bud.", [("Shh", "PR")], meta={"doc_id": "l2"})) + "\n")
        f.write(json.dumps(task("Gremlin1 in the limb.", [("Gremlin1", "PR")], meta={"doc_id": "l3"})) + "\n")

    good = task("Sox9 binds DNA.", [("Sox9", "PR")], meta={"doc_id": "b1"})
    out_of_range = task("Sox9 binds DNA.", [("Sox9", "PR")], meta={"doc_id": "b2"})
    out_of_range["spans"][0]["end"] = 99
    token_order = task("Sox9 binds DNA.", [("Sox9 binds", "GO_MF")], meta={"doc_id": "b3"})
    token_order["spans"][0].update(token_start=1, token_end=0)
    inconsistent = task("Sox9 binds DNA.", [("binds", "GO_MF")], meta={"doc_id": "b4"})
    inconsistent["spans"][0].update(token_start=2, token_end=2)
    no_label = task("Sox9 binds DNA.", [("DNA", "CHEBI")], meta={"doc_id": "b5"})
    no_label["spans"][0]["label"] = ""
    bad_tokens = task("Sox9 binds DNA.", [], meta={"doc_id": "b6"})
    bad_tokens["tokens"][1]["text"] = "bonds"
    no_text = task("Sox9 binds DNA.", [], meta={"doc_id": "b7"})
    del no_text["text"]
    lines = [
        json.dumps(good).encode("utf8"),  # 1
        b'{"text": "Sox9 binds',  # 2: truncated JSON
        b"",  # 3: blank, skipped
        b"[1, 2, 3]",  # 4: not an object
        '{"text": "Caf\u00e9 au lait", "spans": [], "answer": "accept"}'.encode("latin-1"),  # 5: not UTF-8
        json.dumps(no_text).encode("utf8"),  # 6
        json.dumps(out_of_range).encode("utf8"),  # 7
        json.dumps(token_order).encode("utf8"),  # 8
        json.dumps(inconsistent).encode("utf8"),  # 9
        json.dumps(no_label).encode("utf8"),  # 10
        json.dumps(bad_tokens).encode("utf8"),  # 11
    ]
    (HERE / "broken.jsonl").write_bytes(b"\n".join(lines) + b"\n")


if __name__ == "__main__":
    main()
