"""Uptraining: a small, fast CPU model (spancat over a CNN tok2vec) trained on
gold data plus the silver data the transformer pipeline pre-annotated, and
the comparison that says whether it was worth it.

    held-out export -> split by document -> unlabelled.jsonl (text only) + test.spacy
    unlabelled.jsonl -> preannotate (transformer) -> silver.spacy
    train.spacy + silver.spacy -> gold_silver.spacy -> CPU model
    compare: transformer vs CPU (gold only) vs CPU (gold + silver) [vs CPU
             distilled from the teacher's soft labels, distill.py]: spans F
             on the same dev and test data, CPU words/sec, and the target
             (half the F gap closed at five times the transformer's speed)

The unlabelled text must be held out of everything the models are trained or
scored on: its silver labels come from the transformer, so text it was
trained on would hand back memorised gold labels, and text in dev or test
would leak into the evaluation. `split_heldout` therefore cuts a held-out
export by document into the unlabelled half (annotations and tokens
removed: CRAFT's tokens are split at annotation boundaries, so they would
leak the annotation) and the test half (kept, converted for scoring).

Project tooling: a packaged pipeline never imports this module.
"""
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin

from ..assist import AssistError, input_hash, iter_records
from ..util import PipelineError, find_spancat, load_pipeline, pct, read_docs, use_device, write_json

__all__ = [
    "UPTRAIN_SCHEMA",
    "GAP_TARGET",
    "SPEED_TARGET",
    "split_heldout",
    "merge_corpora",
    "measure_pipeline",
    "compare_uptrain",
    "format_markdown",
]

UPTRAIN_SCHEMA = "biomed.uptrain.v1"
# The target: the uptrained CPU model closes at least half of the F gap
# between the gold-only CPU model and the transformer, at >= 5x its CPU speed.
GAP_TARGET = 0.5
SPEED_TARGET = 5.0
# The students compared with the gold-only CPU model, in table order: hard silver
# spans (uptrain), the teacher's soft labels (distill.py; optional).
STUDENT_ROLES = ("cpu_uptrained", "cpu_distilled")
DOC_ID_KEYS = ("doc_id", "document_id", "doc_key", "doc")
# Rejected records of the more unlabelled text quoted in the report
MORE_TEXT_EXAMPLES = 5
PathLike = Union[str, Path]


def _doc_key(data: Dict[str, Any]) -> str:
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    for key in DOC_ID_KEYS:
        if meta.get(key) not in (None, ""):
            return f"doc:{meta[key]}"
    text = data.get("text")
    return f"input:{data.get('_input_hash', input_hash(text) if isinstance(text, str) else '')}"


def _read_tasks(source: str, fmt: Optional[str], datasets: Sequence[str] = ()) -> Any:
    from ..assist.records import _ingest

    ConvertOptions, IngestError, resolve_sources, iter_sources = _ingest()
    from ..ingest.readers import get_reader, redact_url

    try:
        reader = get_reader(source, fmt)
        if datasets and reader.list_datasets is None:
            # convert's own advice (eval data as a path) does not fit here: the source is the path
            raise AssistError(
                f"{redact_url(source)} is a single {reader.name} export, which holds no datasets, but datasets "
                f"{', '.join(repr(d) for d in datasets)} were asked of it: name none "
                '(--datasets "", in weasel --vars.uptrain_heldout_datasets "")'
            )
        plan, _ = resolve_sources([source], ConvertOptions(fmt=fmt, datasets=list(datasets)))
        yield from iter_sources(plan, ConvertOptions().read, fmt)
    except IngestError as err:
        raise AssistError(str(err)) from err


def split_heldout(
    source: str,
    output_dir: PathLike,
    share: float = 0.5,
    seed: int = 0,
    spans_key: str = "sc",
    fmt: Optional[str] = None,
    datasets: Sequence[str] = (),
    more_text: Sequence[str] = (),
) -> Dict[str, Any]:
    """Cut a held-out annotated export by document into unlabelled text and test data.

    Documents (meta `doc_id`, else the single task) are assigned with the
    ingestion's seeded document split, so paragraphs of one article never
    straddle the halves. Reads the source twice and holds only the
    per-document task counts and one hash per text. The unlabelled text holds
    each distinct text once (an export repeats a text per annotator or answer)
    and no text of the test half (headings, boilerplate shared across
    documents); `unlabelled_texts` counts what was written, repeated, in the
    test half, or had no text. Records the reader cannot use are counted by
    reason (`unreadable_by_reason`, first few `unreadable_examples`), and the
    test half's conversion keeps convert's own account (`test_convert`).

    More unlabelled text (`more_text`, e.g. abstracts of the same field) is
    appended to unlabelled.jsonl after the held-out half: text and meta only,
    tokenized by each pipeline that reads it. A text equal to one of the test
    half's is left out and counted (`in_test`), as is one already written
    (`duplicates`) and records that cannot be used (`rejected_by_reason`, with
    the first few `examples`); `words` counts the kept texts' words split at
    whitespace (the teacher's reports count tokens).

    source (str): A held-out export (e.g. CRAFT's test split), any format `convert` reads.
    output_dir (PathLike): Gets unlabelled.jsonl (text + meta only), test.spacy
        (the other documents, converted like `convert` does) and heldout.json.
    share (float): Share of tasks (whole documents) that become unlabelled text.
    seed (int): Seed of the document split.
    spans_key (str): The span key of test.spacy.
    fmt (Optional[str]): Force a reader format.
    datasets (Sequence[str]): The datasets to read from a source that holds
        several (CRAFT: `craft_test`); empty reads them all.
    more_text (Sequence[str]): Sources of more unlabelled text: .txt files or
        folders of them (one paragraph per line), JSONL with "text", any source
        `convert` reads.
    RETURNS (Dict[str, Any]): The report (also written to heldout.json).
    RAISES (AssistError): Fewer than two documents, a share outside (0, 1), an
        unreadable source, more text of which nothing can be used.
    """
    from ..ingest.convert import ConvertOptions, convert
    from ..ingest.split import split_documents
    from ..ingest.tasks import IngestError

    if not 0.0 < share < 1.0:
        raise AssistError(f"the unlabelled share must be in (0, 1), got {share}")
    output_dir = Path(output_dir)
    sizes: Dict[str, int] = {}
    text_keys: List[Tuple[int, str]] = []  # (input hash, document) of every text, to know the test texts up front
    unreadable: Dict[str, Any] = {"count": 0, "by_reason": {}, "examples": []}
    for task in _read_tasks(source, fmt, datasets):
        if task.data is None:
            unreadable["count"] += 1
            unreadable["by_reason"][task.reason] = unreadable["by_reason"].get(task.reason, 0) + 1
            if len(unreadable["examples"]) < MORE_TEXT_EXAMPLES:
                unreadable["examples"].append(f"{task.origin}: {task.error}")
            continue
        key = _doc_key(task.data)
        sizes[key] = sizes.get(key, 0) + 1
        if isinstance(task.data.get("text"), str):
            text_keys.append((input_hash(task.data["text"]), key))
    if len(sizes) < 2:
        raise AssistError(
            f"{source}: {len(sizes)} document(s); splitting into unlabelled text and test data needs at least 2 "
            "(documents are told apart by meta.doc_id)"
        )
    assignment = split_documents(sizes, {"unlabelled": share}, seed)
    output_dir.mkdir(parents=True, exist_ok=True)
    counts = {"unlabelled": 0, "test": 0}
    docs = {"unlabelled": 0, "test": 0}
    for key in sizes:
        docs["unlabelled" if assignment.get(key) == "unlabelled" else "test"] += 1
    unlabelled_path = output_dir / "unlabelled.jsonl"
    # A text of a test document is never unlabelled text, even in another document
    # (headings, boilerplate); and each distinct text is written once (an export
    # holds a text once per annotator or answer)
    test_texts = {h for h, key in text_keys if assignment.get(key) != "unlabelled"}
    del text_keys
    written: set = set()
    texts = {"written": 0, "duplicates": 0, "in_test": 0, "no_text": 0}
    with tempfile.TemporaryDirectory(prefix=".heldout-", dir=output_dir) as tmp:
        test_jsonl = Path(tmp) / "test.jsonl"
        tmp_unlabelled = Path(tmp) / "unlabelled.jsonl"
        with tmp_unlabelled.open("w", encoding="utf8") as unl, test_jsonl.open("w", encoding="utf8") as tst:
            for task in _read_tasks(source, fmt, datasets):
                if task.data is None:
                    continue
                if assignment.get(_doc_key(task.data)) == "unlabelled":
                    counts["unlabelled"] += 1
                    text = task.data.get("text")
                    left_out = "no_text" if not isinstance(text, str) or not text.strip() else _left_out(text, test_texts, written)
                    if left_out:
                        texts[left_out] += 1
                    else:
                        # Only the text and where it came from: no spans, answer or tokens.
                        unl.write(json.dumps({"text": text, "meta": task.data.get("meta") or {}}, ensure_ascii=False) + "\n")
                        texts["written"] += 1
                else:
                    tst.write(json.dumps(task.data, ensure_ascii=False) + "\n")
                    counts["test"] += 1
            more = _append_more_text(more_text, unl, test_texts, written)
        try:
            converted = convert([str(test_jsonl)], Path(tmp) / "test", ConvertOptions(eval_split=0.0, spans_key=spans_key))
        except IngestError as err:
            raise AssistError(f"{source}: converting the test half failed: {err}") from err
        os.replace(Path(tmp) / "test" / "train.spacy", output_dir / "test.spacy")
        os.replace(tmp_unlabelled, unlabelled_path)
    report = {
        "source": source,
        "datasets": list(datasets),
        "share": share,
        "seed": seed,
        "documents": docs,
        "tasks": counts,
        "unlabelled_texts": texts,
        "unreadable": unreadable["count"],
        "unreadable_by_reason": unreadable["by_reason"],
        "unreadable_examples": unreadable["examples"],
        "more_text": more,
        # convert's own account: read = kept + rejected + merged (annotators' versions joined) + duplicates
        "test_convert": {
            key: converted.get(key) for key in ("read", "kept", "rejected", "merged", "duplicates", "rejected_by_reason")
        },
        "outputs": {
            "unlabelled": str(unlabelled_path),
            "test": str(output_dir / "test.spacy"),
            "report": str(output_dir / "heldout.json"),
        },
    }
    write_json(report, output_dir / "heldout.json")
    return report


def _left_out(text: str, test_texts: set, written: set) -> Optional[str]:
    """Why a text is not written as unlabelled text: "in_test" (equal to a test
    text) or "duplicates" (written already); None when it is to be written,
    and then it counts as written (its input hash joins `written`)."""
    key = input_hash(text)
    if key in test_texts:
        return "in_test"
    if key in written:
        return "duplicates"
    written.add(key)
    return None


def _append_more_text(sources: Sequence[str], out: Any, test_texts: set, written: set) -> Dict[str, Any]:
    """Write the usable records of `sources` to the open unlabelled JSONL `out`,
    leaving out texts equal to a test text (input hashes in `test_texts`) and
    texts already written (input hashes in `written`, which grows).
    RETURNS the account: read = kept + in_test + duplicates + rejected."""
    account: Dict[str, Any] = {
        "sources": list(sources), "read": 0, "kept": 0, "words": 0, "in_test": 0, "duplicates": 0,
        "rejected": 0, "rejected_by_reason": {}, "examples": [],
    }
    for record in iter_records(sources) if sources else ():
        account["read"] += 1
        if not record.ok:
            account["rejected"] += 1
            reasons = account["rejected_by_reason"]
            reasons[record.reason] = reasons.get(record.reason, 0) + 1
            if len(account["examples"]) < MORE_TEXT_EXAMPLES:
                account["examples"].append(f"{record.origin}: {record.detail}")
        elif left_out := _left_out(record.text, test_texts, written):
            account[left_out] += 1
        else:
            out.write(json.dumps({"text": record.text, "meta": record.meta}, ensure_ascii=False) + "\n")
            account["kept"] += 1
            account["words"] += len(record.text.split())
    if sources and not account["kept"]:
        why = "; ".join(account["examples"]) or (
            f"{account['in_test']} equal to test texts, {account['duplicates']} already among the unlabelled texts"
        )
        raise AssistError(f"{', '.join(sources)}: no usable text ({account['read']} record(s) read): {why}")
    return account


def merge_corpora(inputs: Sequence[PathLike], output: PathLike) -> Dict[str, int]:
    """Concatenate DocBins (gold, then silver) into one training file.

    inputs (Sequence[PathLike]): .spacy files, in order.
    output (PathLike): The merged .spacy file (written atomically).
    RETURNS (Dict[str, int]): Docs per input file, and the total.
    RAISES (DocBinError): A missing or unreadable input.
    """
    merged = DocBin(attrs=["ORTH", "SPACY"], store_user_data=True)
    counts: Dict[str, int] = {}
    vocab = spacy.blank("en").vocab
    for path in map(Path, inputs):
        docs = read_docs(path, vocab)
        for doc in docs:
            merged.add(doc)
        counts[str(path)] = len(docs)
    counts["total"] = sum(counts.values())
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp{os.getpid()}")
    tmp.write_bytes(merged.to_bytes())
    os.replace(tmp, output)
    return counts


def measure_pipeline(
    nlp: Language,
    data: Dict[str, List[Doc]],
    spans_key: str = "sc",
    batch_size: int = 64,
    repeats: int = 3,
    log: Optional[Callable[[str], None]] = None,
) -> Dict[str, Any]:
    """Spans P/R/F on each evaluation set and the CPU words/sec over all of them.

    The pipeline predicts on the gold docs' own tokens (so a span is wrong
    only because the model got it wrong). The scored pass also warms the
    pipeline up (first-call set-up costs are not the model's speed); then
    `repeats` timed passes over all sets give the median words/sec.

    nlp (Language): The pipeline, on the CPU.
    data (Dict[str, List[Doc]]): Evaluation set name ("dev", "test") -> gold docs.
    spans_key (str): The span group.
    batch_size (int): Docs per `nlp.pipe` batch (the same for every model).
    repeats (int): Timed passes (at least 1); the median is reported.
    log (Optional[Callable[[str], None]]): Called with one line after each set
        is scored and each timed pass (progress); None: silent.
    RETURNS (Dict[str, Any]): {"scores": {set: {p, r, f, gold_spans, pred_spans,
        labels_unknown}}, "speed": {words, seconds (median), runs (every pass's
        seconds), words_per_second}}; `labels_unknown` are the set's gold labels
        the pipeline's span categorizer was not trained on (it can never find
        them), empty without one.
    """
    from ..evaluation.evaluate import make_pred_doc
    from ..evaluation.scoring import score_docs

    if repeats < 1:
        raise AssistError(f"repeats must be at least 1, got {repeats}")
    try:
        known: Optional[set] = set(find_spancat(nlp, spans_key)[1].labels)
    except PipelineError:
        known = None
    scores: Dict[str, Any] = {}
    for name, gold in data.items():
        preds = list(nlp.pipe((make_pred_doc(nlp.vocab, d) for d in gold), batch_size=batch_size))
        metrics = score_docs(zip(gold, preds), spans_key).metrics
        scores[name] = {**metrics["spans"], **{k: metrics["counts"][k] for k in ("gold_spans", "pred_spans")}}
        gold_labels = {span.label_ for d in gold for span in d.spans.get(spans_key, [])}
        scores[name]["labels_unknown"] = [] if known is None else sorted(gold_labels - known)
        if log is not None:
            log(f"{name}: {len(gold)} docs scored, spans F {pct(scores[name]['f'])}")
    words = sum(len(d) for gold in data.values() for d in gold)
    runs = []
    for i in range(repeats):
        inputs = [make_pred_doc(nlp.vocab, d) for gold in data.values() for d in gold]
        start = time.perf_counter()
        for _doc in nlp.pipe(inputs, batch_size=batch_size):
            pass
        runs.append(round(time.perf_counter() - start, 4))
        if log is not None:
            log(f"timed pass {i + 1}/{repeats}: {words} words in {runs[-1]:.1f} s")
    seconds = statistics.median(runs)
    return {
        "scores": scores,
        "speed": {
            "words": words,
            "seconds": seconds,
            "runs": runs,
            "words_per_second": round(words / seconds, 1) if seconds > 0 else None,
        },
    }


def _threads() -> Dict[str, Any]:
    info: Dict[str, Any] = {"cpu_count": os.cpu_count()}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover - torch comes with spacy-transformers
        pass
    return info


def compare_uptrain(
    models: Sequence[Tuple[str, str, str]],
    eval_sets: Dict[str, PathLike],
    spans_key: str = "sc",
    batch_size: int = 64,
    preannotate_report: Optional[PathLike] = None,
    repeats: int = 3,
    log: Optional[Callable[[str], None]] = None,
) -> Dict[str, Any]:
    """Compare the transformer pipeline, the CPU model on gold only and the
    uptrained CPU model: spans F on the same data, CPU words/sec, and the target.

    models (Sequence[Tuple[str, str, str]]): (role, label, model) with roles
        "transformer", "cpu_gold", "cpu_uptrained" and optionally "cpu_distilled"
        (the student trained on the teacher's soft labels); model is a directory or package.
    eval_sets (Dict[str, PathLike]): Set name -> gold .spacy file (e.g. dev, test).
    spans_key (str): The span group.
    batch_size (int): Docs per batch, for every model.
    preannotate_report (Optional[PathLike]): The preannotate report, to record
        how much silver data the uptrained model saw.
    repeats (int): Timed passes per model; words/sec is their median.
    log (Optional[Callable[[str], None]]): Progress lines, each prefixed with the model's label; None: silent.
    RETURNS (Dict[str, Any]): Per-model scores and speed, the gap closed per
        set, the speed ratio and whether the target is met.
    """
    roles = [role for role, _, _ in models]
    for needed in ("transformer", "cpu_gold", "cpu_uptrained"):
        if needed not in roles:
            raise AssistError(f"compare needs a '{needed}' model (got {roles})")
    if not eval_sets:
        raise AssistError("compare needs at least one evaluation set (dev)")
    use_device(-1, echo=False)
    results: Dict[str, Any] = {}
    for role, label, model in models:
        nlp = load_pipeline(model)
        data = {}
        for name, path in eval_sets.items():
            data[name] = read_docs(Path(path), nlp.vocab)
        shown = None if log is None else (lambda line, label=label: log(f"{label}: {line}"))
        measured = measure_pipeline(nlp, data, spans_key, batch_size, repeats, shown)
        results[role] = {"label": label, "model": str(model), "pipeline": list(nlp.pipe_names), **measured}
        del nlp
    students = {role: _student_result(results, role, list(eval_sets)) for role in STUDENT_ROLES if role in results}
    gap = students["cpu_uptrained"]["gap"]
    speed_ratio = students["cpu_uptrained"]["speed_ratio"]
    # The target is judged on the route the project offers as its best: the distilled student when there is one
    judged = "cpu_distilled" if "cpu_distilled" in students else "cpu_uptrained"
    gap_met = students[judged]["gap_met"]
    speed_met = students[judged]["speed_met"]
    silver = None
    if preannotate_report is not None and Path(preannotate_report).is_file():
        pre = json.loads(Path(preannotate_report).read_text(encoding="utf8"))
        silver = {"routes": pre.get("routes"), "settings": pre.get("settings"), "spans": pre.get("spans")}
    return {
        "schema": UPTRAIN_SCHEMA,
        "models": results,
        "eval_sets": {name: str(path) for name, path in eval_sets.items()},
        "gap": gap,
        "speed_ratio": speed_ratio,
        "students": students,
        "target": {
            "student": judged,
            "gap_closed_at_least": GAP_TARGET,
            "speed_ratio_at_least": SPEED_TARGET,
            "gap_met": gap_met,
            "speed_met": speed_met,
            "met": gap_met and speed_met,
            "note": None
            if all(g["closed"] is not None for g in students[judged]["gap"].values())
            else "the transformer is not better than the gold-only CPU model on some set: no gap to close",
        },
        "silver": silver,
        "settings": {"spans_key": spans_key, "batch_size": batch_size, "repeats": repeats, "device": "cpu", **_threads()},
    }


def _student_result(results: Dict[str, Any], role: str, sets: Sequence[str]) -> Dict[str, Any]:
    """One student's share of the F gap closed per set and its speed against the transformer's."""
    gap: Dict[str, Any] = {}
    for name in sets:
        f_trf = results["transformer"]["scores"][name]["f"] or 0.0
        f_gold = results["cpu_gold"]["scores"][name]["f"] or 0.0
        f_student = results[role]["scores"][name]["f"] or 0.0
        span = f_trf - f_gold
        closed = round((f_student - f_gold) / span, 6) if span > 0 else None
        gap[name] = {
            "transformer_minus_gold": round(span, 6),
            "uptrained_minus_gold": round(f_student - f_gold, 6),
            "closed": closed,
            "short_by": None if closed is None else round(max(0.0, GAP_TARGET - closed), 6),
        }
    wps_trf = results["transformer"]["speed"]["words_per_second"]
    wps = results[role]["speed"]["words_per_second"]
    ratio = round(wps / wps_trf, 2) if wps_trf and wps else None
    return {
        "gap": gap,
        "speed_ratio": ratio,
        "speed_short_by": None if ratio is None else round(max(0.0, SPEED_TARGET - ratio), 2),
        "gap_met": all(g["closed"] is not None and g["closed"] >= GAP_TARGET for g in gap.values()),
        "speed_met": ratio is not None and ratio >= SPEED_TARGET,
    }


def format_markdown(result: Dict[str, Any]) -> str:
    """The comparison as a markdown table plus the target line (for the README).

    result (Dict[str, Any]): What `compare_uptrain` returned.
    RETURNS (str): Markdown.
    """
    sets = list(result["eval_sets"])
    header = ["model"] + [f"{name} spans F" for name in sets] + ["CPU words/sec"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for role in ("transformer", "cpu_gold") + STUDENT_ROLES:
        if role not in result["models"]:
            continue
        m = result["models"][role]
        wps = m["speed"]["words_per_second"]
        cells = [f"{m['label']} (`{m['model']}`)"] + [pct(m["scores"][s]["f"]) for s in sets]
        cells.append("—" if wps is None else f"{wps:,.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    target = result["target"]
    lines.append("")
    names = {"cpu_uptrained": "the uptrained CPU model (hard silver spans)", "cpu_distilled": "the distilled CPU model (soft labels)"}
    students = result.get("students") or {"cpu_uptrained": {"gap": result["gap"], "speed_ratio": result["speed_ratio"]}}
    for role, student in students.items():
        gap = ", ".join(
            f"{name} {pct(g['closed'])}%" if g["closed"] is not None else f"{name} — (no gap)"
            for name, g in student["gap"].items()
        )
        ratio = student["speed_ratio"]
        lines.append(
            f"F gap closed by {names.get(role, role)}: {gap} (target ≥ {100 * target['gap_closed_at_least']:.0f}%); "
            f"its CPU speed is {'—' if ratio is None else f'{ratio:.1f}'}× the transformer pipeline's "
            f"(target ≥ {target['speed_ratio_at_least']:.0f}×)."
        )
    unknown = {
        (m["label"], name): score.get("labels_unknown")
        for m in result["models"].values()
        for name, score in m["scores"].items()
        if score.get("labels_unknown")
    }
    for (label, name), labels in unknown.items():
        lines.append(f"{name} data: {', '.join(labels)} unknown to {label} (not trained on, never found).")
    judged = students.get(target.get("student", "cpu_uptrained"), {})
    missed = []
    for name, g in judged.get("gap", {}).items():
        if g.get("short_by"):
            missed.append(f"{name}: {100 * g['short_by']:.1f} points of the gap short")
    if judged.get("speed_short_by"):
        missed.append(f"speed short by {judged['speed_short_by']:.1f}×")
    verdict = f"Target met: **{'yes' if target['met'] else 'no'}** (judged on {names.get(target.get('student', 'cpu_uptrained'), 'the student')})"
    lines.append(verdict + (f" ({'; '.join(missed)})." if missed and not target["met"] else "."))
    silver = result.get("silver")
    if silver and silver.get("routes"):
        routes = silver["routes"]
        lines.append(
            f"Silver data: {routes.get('silver', 0)} tasks pre-annotated with no uncertain span "
            f"(high {silver['settings'].get('high')}, low {silver['settings'].get('low')}); "
            f"{routes.get('review', 0) + routes.get('over_budget', 0)} went to review instead."
        )
    s = result["settings"]
    lines.append(
        f"Measured on the CPU ({s.get('cpu_count')} cores, torch threads {s.get('torch_threads', '—')}), "
        f"batch size {s['batch_size']}, on the gold tokens of each set; words/sec is the median of "
        f"{s.get('repeats', 1)} timed passes over all sets after the scored pass."
    )
    return "\n".join(lines) + "\n"
