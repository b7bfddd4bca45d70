"""What `weasel run all` made, in one screen: the last step of the workflow.

Read from the run's own files: where the wheel, the report and the model
card are; the headline scores of the installed wheel and on which data; the
speed figure and how it was measured; how long each step took (weasel's
project.lock matched with the step log, see `steps`); the warnings that need
action (the placeholder Hub namespace, the stand-in transformer, the
corpus report's warnings and rejections); and the next step.

Project library code: never imported by a packaged pipeline.
"""

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from .evaluation.scoring import headline
from .evaluation.speed import describe_speed
from .steps import command_times, read_step_log

__all__ = ["PLACEHOLDER_NAMESPACE", "build_summary", "format_summary", "format_seconds"]

PLACEHOLDER_NAMESPACE = "your-hf-username"
# At most this many of the corpus report's warnings are repeated; the rest are counted
MAX_CORPUS_WARNINGS = 5


def _read_json(path: Path) -> Optional[Dict[str, Any]]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _shown(path: str) -> str:
    """A path as the user knows it: relative to the project folder (the working
    directory) when it lies inside it (evaluate-package records absolute paths)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def format_seconds(seconds: Optional[float]) -> str:
    """A step's duration: "8.2 s", "4 min 05 s", "1 h 02 min"; "not timed" when unknown."""
    if seconds is None:
        return "not timed"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def build_summary(
    *,
    steps: Sequence[str],
    lock: Dict[str, Any],
    step_log: Path,
    wheel: Path,
    report: Path,
    card: Path,
    metrics: Path,
    corpus_report: Path,
    transformer_source: Path,
    namespace: str,
    repo: str,
) -> Dict[str, Any]:
    """Gather the summary of a workflow run from its files.

    steps (Sequence[str]): The workflow's commands, in order (without the
        summary itself, which cannot time itself).
    lock (Dict[str, Any]): weasel's project.lock, as read ({} when absent).
    step_log (Path): The step log (`steps.STEP_LOG`).
    wheel (Path): The built wheel.
    report (Path): The HTML evaluation report.
    card (Path): The staged model card.
    metrics (Path): The evaluation of the installed wheel (metrics/package.json).
    corpus_report (Path): convert's report (corpus/report.json).
    transformer_source (Path): fetch-transformer's source.json.
    namespace (str): The Hub namespace push will use.
    repo (str): The Hub repo name.
    RETURNS (Dict[str, Any]): artifacts, scores, steps, total_seconds, warnings, next.
    """
    artifacts = [
        {"what": "wheel", "path": str(wheel), "exists": Path(wheel).exists()},
        {"what": "report", "path": str(report), "exists": Path(report).exists()},
        {"what": "model card", "path": str(card), "exists": Path(card).exists()},
    ]
    warnings: List[str] = []
    for art in artifacts:
        if not art["exists"]:
            warnings.append(f"No {art['what']} at {art['path']}: the step that writes it did not run or failed.")
    m = _read_json(metrics)
    scores = None
    if m and "spans" in m and "groups" in m:
        data = m.get("data") or {}
        model = m.get("model") or {}
        scores = {
            "metrics": str(metrics),
            "pipeline": f"{model.get('name', '?')} {model.get('version', '')}".strip(),
            "headline": headline(m),
            "f": m["spans"].get("f"),
            "data": _shown(data["path"]) if data.get("path") else "?",
            "docs": data.get("docs"),
            "gold_spans": data.get("gold_spans"),
            "threshold": model.get("threshold"),
            "speed": describe_speed(m["speed"]) if m.get("speed") else None,
        }
    else:
        warnings.append(f"No scores: {metrics} is missing or not a metrics file (evaluate-package writes it).")
    src = _read_json(transformer_source)
    if src and src.get("stand_in"):
        warnings.append(
            f"The transformer is the offline stand-in {src.get('used')}, not {src.get('requested')}: the scores "
            "are the stand-in's. Where the Hub is reachable, `weasel run all` again fetches the real one "
            "(vars.strict_transformer true makes a failed fetch stop the run)."
        )
    corpus = _read_json(corpus_report)
    if corpus:
        notes = [str(w) for w in corpus.get("warnings") or []]
        for note in notes[:MAX_CORPUS_WARNINGS]:
            warnings.append(f"Corpus: {note}")
        if len(notes) > MAX_CORPUS_WARNINGS:
            warnings.append(f"Corpus: {len(notes) - MAX_CORPUS_WARNINGS} more warnings in {corpus_report}.")
        unknown = {k.split(":", 1)[1]: v for k, v in (corpus.get("spans_dropped") or {}).items()
                   if k.startswith("unknown_label:")}
        if unknown:
            warnings.append(
                f"Corpus: {sum(unknown.values())} spans dropped for labels outside the label set "
                f"({', '.join(f'{k} {v}' for k, v in sorted(unknown.items()))}): add the labels or fix the data."
            )
        if corpus.get("rejected"):
            warnings.append(
                f"Corpus: {corpus['rejected']} of {corpus.get('read', '?')} tasks rejected "
                f"({', '.join(f'{k} {v}' for k, v in (corpus.get('rejected_by_reason') or {}).items())}): "
                f"see {Path(corpus_report).parent / 'rejections.jsonl'}."
            )
    placeholder = namespace == PLACEHOLDER_NAMESPACE
    if placeholder:
        warnings.append(
            f"The Hub namespace is the placeholder '{namespace}': set vars.hub_namespace to your Hub user or "
            "organisation (project.yml, or --vars.hub_namespace NAME), then `weasel run stage-hub`."
        )
    times = command_times(lock, read_step_log(step_log))
    step_rows = [{"command": s, **times.get(s, {"seconds": None, "finished": None})} for s in steps]
    timed = [r["seconds"] for r in step_rows if r["seconds"] is not None]
    if Path(wheel).exists():
        nxt = f"pip install {wheel}  (then spacy.load(\"{Path(wheel).name.split('-')[0]}\"))"
        nxt += (
            "; to publish: set vars.hub_namespace, then `weasel run stage-hub` and `weasel run push`"
            if placeholder
            else f"; to publish: `weasel run push` (to {namespace}/{repo})"
        )
    else:
        nxt = "fix the step that failed (its message is above), then `weasel run all` again"
    return {
        "artifacts": artifacts,
        "scores": scores,
        "steps": step_rows,
        "total_seconds": sum(timed) if timed else None,
        "untimed": [r["command"] for r in step_rows if r["seconds"] is None],
        "warnings": warnings,
        "next": nxt,
    }


def format_summary(summary: Dict[str, Any]) -> List[str]:
    """The summary as lines of text for the console.

    summary (Dict[str, Any]): `build_summary`'s result.
    RETURNS (List[str]): The lines.
    """
    lines = ["Made:"]
    for art in summary["artifacts"]:
        lines.append(f"  {art['what']:<11} {art['path']}{'' if art['exists'] else '  (missing)'}")
    s = summary["scores"]
    if s:
        lines.append(
            f"Scores of the installed {s['pipeline']} on {s['data']} ({s['docs']} docs, {s['gold_spans']} gold "
            f"spans, threshold {s['threshold']}):"
        )
        lines.append(f"  {s['headline']}")
        if s["speed"]:
            lines.append(f"  speed {s['speed']}")
    lines.append("Steps:")
    width = max([len(r["command"]) for r in summary["steps"]] + [5])
    for row in summary["steps"]:
        lines.append(f"  {row['command']:<{width}}  {format_seconds(row['seconds']):>12}")
    if summary["total_seconds"] is not None:
        total = format_seconds(summary["total_seconds"])
        note = f" (not timed: {', '.join(summary['untimed'])})" if summary["untimed"] else ""
        lines.append(f"  {'total':<{width}}  {total:>12}{note}")
    if summary["warnings"]:
        lines.append("Needs action:")
        lines.extend(f"  ! {w}" for w in summary["warnings"])
    lines.append(f"Next: {summary['next']}")
    return lines

