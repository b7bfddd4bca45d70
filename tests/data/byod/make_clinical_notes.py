"""Write clinical_notes.jsonl: a small Prodigy spans.manual export of made-up
clinical notes with their own labels (DRUG, DOSE, DISEASE), not CRAFT's.

Fourteen notes of three paragraphs each (one task per paragraph, the note id
in meta.doc_id), tokens as Prodigy writes them, and overlapping spans where a
DISEASE names the drug that caused it ("cisplatin nephrotoxicity": DISEASE
over the whole, DRUG over "cisplatin"). The text is invented; no patient is
described. Re-run to regenerate (deterministic):

    python tests/data/byod/make_clinical_notes.py
"""
import json
import random
import re
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent

DRUGS = ["metformin", "lisinopril", "atorvastatin", "amoxicillin", "furosemide", "prednisone",
         "insulin glargine", "apixaban", "levothyroxine", "omeprazole"]
DOSES = ["500 mg", "10 mg", "40 mg", "20 units", "1 g", "2.5 mg", "25 mcg", "875 mg"]
DISEASES = ["type 2 diabetes", "hypertension", "atrial fibrillation", "community-acquired pneumonia",
            "chronic kidney disease", "heart failure", "hypothyroidism", "gastroesophageal reflux disease",
            "COPD", "urinary tract infection"]
# (drug, adverse event): the DISEASE span covers the drug mention
ADVERSE = [("cisplatin", "{d} nephrotoxicity"), ("warfarin", "{d}-associated bleeding"),
           ("statin", "{d}-induced myopathy"), ("vancomycin", "{d} ototoxicity"),
           ("amiodarone", "{d}-induced hypothyroidism")]
FREQ = ["daily", "twice daily", "at bedtime", "every 8 hours", "as needed"]

TEMPLATES = [
    "Patient is a {age}-year-old with {disease} and {disease2}.",
    "Started {drug} {dose} {freq} for {disease}.",
    "Continue {drug} {dose} {freq}; {disease} is stable.",
    "History of {adverse} after a course of {adrug}.",
    "{drug} was stopped on day {day} because of {adverse}.",
    "Follow-up in {day} weeks to review {disease} and renal function.",
    "Discharged on {drug} {dose} {freq} and {drug2} {dose2}.",
    "No evidence of {disease} on imaging today.",
]

TOKEN = re.compile(r"\d+(?:\.\d+)?|\w+|[^\w\s]")


def fill(template, rng):
    """The sentence and its spans as (start char, end char, label)."""
    adrug, adverse = rng.choice(ADVERSE)
    values = {
        "age": str(rng.randint(34, 88)), "day": str(rng.randint(2, 14)), "freq": rng.choice(FREQ),
        "drug": rng.choice(DRUGS), "drug2": rng.choice(DRUGS), "dose": rng.choice(DOSES), "dose2": rng.choice(DOSES),
        "disease": rng.choice(DISEASES), "disease2": rng.choice(DISEASES), "adrug": adrug,
        "adverse": adverse.format(d=adrug),
    }
    labels = {"drug": "DRUG", "drug2": "DRUG", "adrug": "DRUG", "dose": "DOSE", "dose2": "DOSE",
              "disease": "DISEASE", "disease2": "DISEASE", "adverse": "DISEASE"}
    text, spans, pos = "", [], 0
    for part in re.split(r"(\{\w+\})", template):
        if part.startswith("{"):
            key = part[1:-1]
            value = values[key]
            if key in labels:
                spans.append((len(text), len(text) + len(value), labels[key]))
                if key == "adverse":  # the drug inside the adverse event is a DRUG too
                    spans.append((len(text), len(text) + len(adrug), "DRUG"))
            text += value
        else:
            text += part
    return text, spans


def task(note_id, paragraph, sentences):
    text, spans = "", []
    for sentence, sentence_spans in sentences:
        offset = len(text) + (1 if text else 0)
        text = f"{text} {sentence}" if text else sentence
        spans += [(s + offset, e + offset, label) for s, e, label in sentence_spans]
    tokens = []
    for i, m in enumerate(TOKEN.finditer(text)):
        tokens.append({"text": m.group(), "start": m.start(), "end": m.end(), "id": i,
                       "ws": m.end() < len(text) and text[m.end()] == " "})
    starts = {t["start"]: t["id"] for t in tokens}
    ends = {t["end"]: t["id"] for t in tokens}
    return {
        "text": text,
        "meta": {"source": "invented clinical notes", "doc_id": note_id, "paragraph": paragraph},
        "_input_hash": zlib.crc32(text.encode("utf8")) - 2**31,
        "_task_hash": zlib.crc32(f"{text}|spans".encode("utf8")) - 2**31,
        "tokens": tokens,
        "_view_id": "spans_manual",
        "spans": [{"start": s, "end": e, "token_start": starts[s], "token_end": ends[e], "label": label}
                  for s, e, label in sorted(spans)],
        "answer": "accept",
        "_timestamp": 1700000000 + 60 * len(text),
    }


def main():
    rng = random.Random(19)
    tasks = []
    for n in range(1, 15):
        for paragraph in range(3):
            sentences = [fill(rng.choice(TEMPLATES), rng) for _ in range(2)]
            tasks.append(task(f"note-{n:02d}", paragraph, sentences))
    out = HERE / "clinical_notes.jsonl"
    out.write_text("".join(json.dumps(t, ensure_ascii=False) + "\n" for t in tasks), encoding="utf8")
    print(f"{len(tasks)} tasks -> {out}")


if __name__ == "__main__":
    main()
