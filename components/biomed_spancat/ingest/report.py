"""The printed summary of a conversion report."""

from typing import Any, Dict

from wasabi import msg

__all__ = ["print_summary"]


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
    if report.get("binary_note"):
        msg.info(f"binary answers excluded: {report['binary_answers']}", report["binary_note"])
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
