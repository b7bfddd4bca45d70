"""The printed summary of a conversion report, what each rejection reason
asks the user to do, and the check that a source gave something."""

from typing import Any, Dict, List

from wasabi import msg

__all__ = ["print_summary", "REASON_ADVICE", "nothing_kept"]

# Every rejection reason and what it asks the user to do (docs/ingestion.md shows the same table).
REASON_ADVICE: Dict[str, str] = {
    "malformed_json": "the line is not valid JSON: fix or remove it (a pretty-printed JSON array needs --format)",
    "malformed_task": "the record is not a JSON object: check that the file is a task export",
    "bad_encoding": "re-export the file as UTF-8",
    "missing_text": "the task has no 'text': check the export's format (--format)",
    "empty_text": "the task's text is empty: nothing to annotate, nothing to do",
    "bad_tokens": "the tokens do not rebuild the text: re-export, or remove 'tokens' to let spaCy tokenize",
    "bad_spans": "'spans' is not a list of objects: check the export's format",
    "span_missing_label": "give every span a label",
    "span_missing_offsets": "give every span integer 'start' and 'end' character offsets",
    "non_integer_offsets": "offsets must be JSON integers, not strings or floats: fix the script that wrote them",
    "empty_span": "a span of no characters: delete it in the annotation tool, or fix the offsets",
    "span_out_of_range": "the offsets do not fit the text: the text was changed after annotation",
    "span_token_offsets": "token_start/token_end do not fit the tokens: re-export",
    "span_offsets_inconsistent": "character and token offsets disagree: re-export, or drop token_start/token_end",
    "misaligned_span": "the span cuts a token: try --align expand or --align contract, or give the tokens",
    "unknown_label": "add the label to --labels, map it with --rename, or pass --unknown-labels drop",
    "answer_reject": "rejected by the annotator: nothing to do (it also withdraws their earlier accepts)",
    "answer_ignore": "skipped by the annotator: nothing to do",
    "no_answer": "not annotated yet (no 'answer'): annotate it, or export only answered tasks",
    "unknown_answer": "the answer is not accept/reject/ignore: check the export",
    "unsupported_view": "the interface holds no spans (choice, text...): export the span dataset instead",
    "binary_answer": "binary accept/reject answers are not complete annotations: correct them with "
    "spans.correct/ner.correct, or keep them apart with --keep-binary",
    "withdrawn_by_later_reject": "the same annotator rejected this input later: nothing to do",
    "withdrawn_by_review_reject": "the review rejected this input: nothing to do",
}


def print_summary(report: Dict[str, Any]) -> None:
    """Print the balance, rejections, splits and per-label span counts.

    report (Dict[str, Any]): The report `convert` returned.
    """
    balance = (
        f"read {report['read']} = kept {report['kept']} + rejected {report['rejected']} "
        f"+ merged {report['merged']} + duplicates {report['duplicates']}"
    )
    (msg.good if report["balanced"] else msg.fail)(balance)
    if report["rejected_by_reason"]:
        msg.table(report["rejected_by_reason"], header=("rejected: reason", "tasks"), divider=True)
    merge = report["merge"]
    if merge["groups_merged"]:
        msg.info(
            f"merge '{report['settings']['merge']}': {merge['groups_merged']} inputs had several versions, "
            f"{merge['groups_with_disagreement']} with disagreements"
        )
        if merge["disagreements_per_label"]:
            msg.table(merge["disagreements_per_label"], header=("disputed spans: label", "spans"), divider=True)
    if report["spans_misaligned"]:
        msg.info(f"misaligned spans (align={report['settings']['align']}): {report['spans_misaligned']}")
    if report["spans_dropped"]:
        msg.info(f"spans dropped: {report['spans_dropped']}")
    if merge.get("superseded") or merge.get("withdrawn"):
        msg.info(
            f"one annotator, several answers: {merge['superseded']} superseded by a later accept, "
            f"{merge['withdrawn']} withdrawn by a later reject"
        )
    if report.get("binary_note"):
        kinds = ", ".join(f"{kind} {n}" for kind, n in report["binary_answers"].items())
        msg.info(f"binary answers excluded: {kinds}", report["binary_note"])
    rows = []
    for split, s in report["splits"].items():
        rows.append(
            (split, s["documents"], s["docs"], s["spans"], s["spans_overlapping"], report["outputs"].get(split, ""))
        )
    msg.table(rows, header=("split", "documents", "tasks", "spans", "overlapping", "file"), divider=True)
    spans = report["spans"]
    label_rows = [
        (
            label,
            d["spans"],
            d["overlapping"],
            d["nested"],
            d["crossing"],
            d["same_extent"],
            d["length"]["median"],
            d["length"]["max"],
        )
        for label, d in spans["per_label"].items()
    ]
    if label_rows:
        msg.table(
            label_rows,
            header=("label", "spans", "overlapping", "nested", "crossing", "same extent", "median len", "max len"),
            divider=True,
        )
    length = spans["length"]
    msg.info(
        f"span length in tokens: median {length['median']}, p99 {length['p99']}, max {length['max']}; "
        f"{spans['share_overlapping']:.1%} of spans overlap another"
    )
    for warning in report["warnings"]:
        msg.warn(warning)
    msg.good(f"wrote {', '.join(report['outputs'].values())}")


def nothing_kept(report: Dict[str, Any]) -> List[str]:
    """Say, for a conversion that kept nothing, or for each source of which
    every task was rejected, what was read and why nothing was kept.

    report (Dict[str, Any]): The report `convert` returned.
    RETURNS (List[str]): One message per empty or fully rejected source (and
        one for the whole run when nothing at all was kept); empty when
        every source gave something.
    """
    messages: List[str] = []
    if report["read"] == 0:
        sources = ", ".join(s["source"] for s in report.get("sources", []) if "source" in s and "role" in s)
        return [f"nothing was read from {sources or 'the sources'}: they hold no tasks"]
    reasons = report["rejected_by_reason"]
    top = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    why = "; ".join(f"{reason} {count}: {REASON_ADVICE.get(reason, 'see rejections.jsonl')}" for reason, count in top)
    by_source = report.get("rejected_by_source", {})
    for source, n in report["read_by_source"].items():
        if n and by_source.get(source, 0) == n and n != report["read"]:
            messages.append(f"nothing was kept from {source}: all {n} tasks read from it were rejected")
    if report["kept"] == 0:
        messages.append(
            f"nothing was kept from {', '.join(report['read_by_source'])}: read {report['read']} tasks, rejected {report['rejected']}, merged "
            f"{report['merged']}, duplicates {report['duplicates']}. Most common reasons: {why}"
        )
    elif messages:
        messages.append(f"most common reasons: {why}")
    return messages
