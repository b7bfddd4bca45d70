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
    prodigy_shapes()


# --- Prodigy export shapes, one file per recipe (tests/test_ingest_answers.py) ------------------
# Where each shape comes from:
# - spans.manual / ner.manual: Prodigy's "Annotation task formats" docs and the shipped CRAFT
#   sample: `tokens` with `ws`, spans with `token_start`/`token_end`, `_view_id`, `_annotator_id`
#   and `_session_id` ("<dataset>-<session name>"), `_timestamp`.
# - ner.correct: the same with `source`/`input_hash` left on the spans the model pre-highlighted.
# - old ner.teach: a db-out record as shown on support.prodi.gy ("track of new entities added":
#   text, spans, answer; no tokens, no _view_id), with what the teach sorter adds (task `score`,
#   `priority`, `meta.score`; span `score`, `rank`, `source`, `input_hash`) and spans that carry
#   their own `answer` (as recommended on support.prodi.gy, "NER annotations format with positives
#   and negatives examples": top-level answer accept, an answer on each span).
# - new ner.teach / spans.teach: `_view_id` "ner" / "spans", tokens, token offsets.
# - review: `_view_id` "review", the reviewed interface in `view_id`, and `versions`, each with
#   its `sessions`, `answer` and `default`.
PROD = HERE / "prodigy"
SOX = "Sox9 binds DNA."


def model_span(text, substring, label, score, rank, answer=None):
    start = text.index(substring)
    out = {"text": substring, "start": start, "end": start + len(substring), "priority": score, "score": score}
    out.update(label=label, rank=rank, source="core_sci_sm", input_hash=zlib.crc32(text.encode("utf8")))
    if answer is not None:
        out["answer"] = answer
    return out


def old_teach(text, spans, answer, score, ts):
    out = {"text": text, "spans": spans, "meta": {"score": score}, "score": score, "priority": score}
    out.update(_input_hash=zlib.crc32(text.encode("utf8")), _task_hash=zlib.crc32(json.dumps(spans).encode()))
    out.update(answer=answer, _timestamp=ts)
    return out


def anonymous(t):
    """The same task with no annotator ids (older exports, db-in imports)."""
    return {k: v for k, v in t.items() if k not in ("_annotator_id", "_session_id")}


def prodigy_shapes():
    PROD.mkdir(exist_ok=True)
    write(
        "prodigy/spans_manual.jsonl",
        [
            task(
                SOX, [("Sox9", "PR"), ("Sox9 binds DNA", "GO_MF"), ("DNA", "CHEBI")], annotator="sm", meta={"doc_id": "s1"}
            ),
            task("Shh is expressed in the notochord.", [("Shh", "PR"), ("notochord", "UBERON")], annotator="sm",
                 meta={"doc_id": "s2"}, ts=110),
            task(
                "Pax6 in the eye.", [("Pax6", "PR"), ("eye", "UBERON")], annotator="sm", meta={"doc_id": "s3"}, ts=120
            ),
            task("Wnt signalling in the gut.", [("Wnt", "PR")], answer="reject", annotator="sm", meta={"doc_id": "s4"}),
            task("Gata4 in the heart.", [], answer="ignore", annotator="sm", meta={"doc_id": "s5"}),
        ],
    )
    correct = task("Nkx2-5 marks the heart.", [("Nkx2-5", "PR"), ("heart", "UBERON")], view="ner_manual",
                   annotator="nm", meta={"doc_id": "n3"})
    for span in correct["spans"][:1]:
        span.update(source="en_core_sci_sm", input_hash=correct["_input_hash"])
    write(
        "prodigy/ner_manual.jsonl",
        [
            task("Fgf8 in the limb bud.", [("Fgf8", "PR"), ("limb bud", "UBERON")], view="ner_manual", annotator="nm",
                 meta={"doc_id": "n1"}),
            task("Tbx5 in the forelimb.", [("Tbx5", "PR")], view="ner_manual", annotator="nm", answer="ignore",
                 meta={"doc_id": "n2"}),
            correct,  # ner.correct: the model's span keeps its source, the annotator added "heart"
        ],
    )
    write(
        "prodigy/ner_teach_old.jsonl",
        [
            old_teach(SOX, [model_span(SOX, "Sox9", "PR", 0.81, 0)], "accept", 0.81, 100),
            old_teach(SOX, [model_span(SOX, "DNA", "PR", 0.42, 1)], "reject", 0.42, 101),
            # accepted task, one span accepted and one rejected: the rejected one is never positive
            old_teach(
                "Shh is expressed in the notochord.",
                [
                    model_span("Shh is expressed in the notochord.", "Shh", "PR", 0.9, 0, "accept"),
                    model_span("Shh is expressed in the notochord.", "notochord", "PR", 0.3, 1, "reject"),
                ],
                "accept",
                0.6,
                102,
            ),
            old_teach("Pax6 in the eye.", [model_span("Pax6 in the eye.", "eye", "PR", 0.5, 0)], "ignore", 0.5, 103),
            # only the task-level score and priority say a model proposed it
            old_teach("Wnt signalling in the gut.", [{"start": 0, "end": 3, "label": "PR"}], "accept", 0.7, 104),
        ],
    )
    teach = []
    for text, sub, answer, ts in ((SOX, "Sox9", "accept", 200), (SOX, "DNA", "reject", 201),
                                  ("Pax6 in the eye.", "Pax6", "accept", 202)):
        t = task(text, [(sub, "PR")], view="ner", answer=answer, annotator="teach", ts=ts, meta={"score": 0.5})
        t["spans"][0].update(score=0.5, input_hash=t["_input_hash"])
        teach.append(t)
    write("prodigy/ner_teach.jsonl", teach)
    write(
        "prodigy/spans_teach.jsonl",
        [
            task(SOX, [("Sox9 binds", "GO_MF")], view="spans", answer="accept", annotator="st", meta={"score": 0.6}),
            task(SOX, [("binds DNA", "GO_MF")], view="spans", answer="reject", annotator="st", meta={"score": 0.2}),
        ],
    )
    # two annotators on two inputs, a review of each (the second answered reject), a review of ner.teach
    r1 = [task(T3, [("Shh", "PR"), ("notochord", "UBERON")], annotator="ra", ts=100, meta={"doc_id": "r1"}),
          task(T3, [("Shh", "PR")], annotator="rb", ts=110, meta={"doc_id": "r1"})]
    r2 = [task("Pax6 in the eye.", [("Pax6", "PR")], annotator="ra", ts=120, meta={"doc_id": "r2"}),
          task("Pax6 in the eye.", [("Pax6", "PR"), ("eye", "UBERON")], annotator="rb", ts=130, meta={"doc_id": "r2"})]

    def review_of(versions, spans, answer, ts):
        out = task(versions[0]["text"], spans, view="review", annotator="rev", ts=ts, answer=answer,
                   meta=versions[0]["meta"])
        out["view_id"] = "spans_manual"
        out["versions"] = [
            {"text": v["text"], "spans": v["spans"], "answer": v["answer"], "sessions": [v["_session_id"]],
             "default": i == 0}
            for i, v in enumerate(versions)
        ]
        return out

    rteach = task(SOX, [("Sox9", "PR")], view="review", annotator="rev", ts=500, meta={"score": 0.8})
    rteach["view_id"] = "ner"
    write(
        "prodigy/review.jsonl",
        r1 + r2 + [review_of(r1, [("Shh", "PR"), ("notochord", "UBERON")], "accept", 400),
                   review_of(r2, [("Pax6", "PR")], "reject", 410), rteach],
    )
    # one input, several answers, no annotator ids (issue 19, case 5), then one named annotator
    a = lambda *args, **kw: anonymous(task(*args, **kw))  # noqa: E731
    write(
        "prodigy/repeated.jsonl",
        [
            a(SOX, [("Sox9", "PR")], ts=100, meta={"doc_id": "A"}),
            a(SOX, [("Sox9", "PR"), ("DNA", "CHEBI")], ts=200, meta={"doc_id": "A"}),
            a("Wnt signalling in the gut.", [("Wnt", "PR")], ts=100, meta={"doc_id": "B"}),
            a("Wnt signalling in the gut.", [("Wnt", "PR")], answer="reject", ts=300, meta={"doc_id": "B"}),
            a("Gata4 in the heart.", [], answer="reject", ts=300, meta={"doc_id": "C"}),  # read first, later in time
            a("Gata4 in the heart.", [("Gata4", "PR")], ts=100, meta={"doc_id": "C"}),
            a("Pax6 in the eye.", [], answer="reject", ts=100, meta={"doc_id": "D"}),
            a("Pax6 in the eye.", [("Pax6", "PR")], ts=200, meta={"doc_id": "D"}),  # accepted after a reject
            a("Fgf8 in the limb bud.", [("Fgf8", "PR")], ts=100, meta={"doc_id": "E"}),
            a("Fgf8 in the limb bud.", [("Fgf8", "PR"), ("limb bud", "UBERON")], ts=200, meta={"doc_id": "E"}),
            a("Fgf8 in the limb bud.", [("Fgf8", "PR")], ts=300, meta={"doc_id": "E"}),
            {k: v for k, v in a("Tbx5 in the forelimb.", [("Tbx5", "PR")], meta={"doc_id": "F"}).items()
             if k != "_timestamp"},
            {k: v for k, v in a("Tbx5 in the forelimb.", [], answer="reject", meta={"doc_id": "F"}).items()
             if k != "_timestamp"},  # no timestamps: the one read last is the latest
            task("Shh in the limb.", [("Shh", "PR")], annotator="alice", ts=100, meta={"doc_id": "G"}),
            task("Shh in the limb.", [("Shh", "PR"), ("limb", "UBERON")], annotator="alice", ts=200,
                 meta={"doc_id": "G"}),
            task("Hoxd13 patterns the digits.", [("Hoxd13", "PR")], annotator="alice", ts=100, meta={"doc_id": "H"}),
            task("Hoxd13 patterns the digits.", [("Hoxd13", "PR"), ("digits", "UBERON")], annotator="bob", ts=150,
                 meta={"doc_id": "H"}),
            task("Hoxd13 patterns the digits.", [], answer="reject", annotator="alice", ts=200, meta={"doc_id": "H"}),
        ],
    )

    # annotator e-mails in every place a Prodigy task puts them: ids, session ids (also the name of
    # the session dataset in a database), meta fields, a user object, the versions of a review
    def who(t, name, meta=True):
        t["_annotator_id"] = t["_session_id"] = f"ids-{name}@clinic.org"
        if not meta:  # versions of one input share their meta
            return t
        t["meta"].update(annotator=f"{name}@clinic.org", user={"email": f"{name}@clinic.org", "name": name.title()})
        t["meta"]["email"] = f"{name}@clinic.org"
        return t

    bad = who(task("Gata4 in the heart.", [("Gata4", "PR")], meta={"doc_id": "i4"}), "bob")
    bad["spans"][0]["end"] = bad["spans"][0]["start"]  # an empty span: rejected, its origin written
    agreed = [
        who(task(SOX, [("Sox9", "PR"), ("DNA", "CHEBI")], ts=100, meta={"doc_id": "i1"}), "alice", meta=False),
        who(task(SOX, [("Sox9", "PR")], ts=110, meta={"doc_id": "i1"}), "bob", meta=False),
    ]
    review = who(task(SOX, [("Sox9", "PR")], view="review", ts=300, meta={"doc_id": "i1"}), "carol", meta=False)
    review["versions"] = [
        {"spans": v["spans"], "answer": "accept", "sessions": [v["_session_id"]], "default": False} for v in agreed
    ]
    teach = who(task("Pax6 in the eye.", [("Pax6", "PR")], view="ner", meta={"doc_id": "i5"}), "alice")
    write(
        "prodigy/identities.jsonl",
        agreed
        + [
            review,
            who(task("Wnt signalling in the gut.", [("Wnt", "PR")], ts=100, meta={"doc_id": "i2"}), "alice"),
            who(task("Wnt signalling in the gut.", [], answer="reject", ts=200, meta={"doc_id": "i2"}), "alice"),
            who(task("Tbx5 in the forelimb.", [("Tbx5", "PR")], answer="ignore", meta={"doc_id": "i3"}), "bob"),
            bad,
            teach,
        ],
    )


if __name__ == "__main__":
    main()
