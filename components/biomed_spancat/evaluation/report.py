"""The evaluation report: one self-contained HTML page people can look at.

Tables of the metrics (from `evaluation`), charts as embedded PNGs (per-label
F, recall by span length, scores of true vs false positives), and the docs
with the most errors, token by token: gold spans in lanes above each word,
predicted spans (with their scores) below it, every error marked in red
(wrong predictions) or orange (missed gold spans). The page is rendered from
the Jinja2 templates in `templates/` (report.html, report_doc.html) with the
data passed in. Nothing is fetched from anywhere: the page opens offline,
from a file or an e-mail attachment.

Project library code: never imported by a packaged pipeline.
"""

import base64
import io
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from spacy.tokens import Doc

from .scoring import DocResult, GROUPS, LENGTH_BUCKETS, SpanEvaluation, doc_spans
from ..util import pct
from .speed import describe_speed

__all__ = [
    "FP_COLOR",
    "FN_COLOR",
    "chart_per_label_f",
    "chart_recall_by_length",
    "chart_score_distribution",
    "doc_view",
    "render_doc_pair",
    "report_context",
    "build_report",
    "write_report",
    "results_table",
]

FP_COLOR = "#ff4d4d"
FN_COLOR = "#ffa630"
PALETTE = [
    "#7aecec",
    "#bfeeb7",
    "#aa9cfc",
    "#c887fb",
    "#9cc9cc",
    "#ffeb80",
    "#e4e7d2",
    "#bfe1d9",
    "#e6b8ff",
    "#c7d6ff",
    "#d9fe74",
    "#b5d3f5",
]  # light, neither red nor orange, so the error marks stand out
FP_TAG = {
    "label": "✗ label",
    "boundary": "✗ boundary",
    "boundary_and_label": "✗ bound+label",
    "spurious": "✗ spurious",
}
FN_TAG = "✗ missed"

TEMPLATES = Path(__file__).parent / "templates"


def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def _figure(width: float, height: float) -> Any:
    # The object API, not pyplot: no global backend state, safe in any process.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def chart_per_label_f(metrics: Dict[str, Any]) -> bytes:
    """A bar chart of spans F per label (the chart the model card shows too).

    metrics (Dict[str, Any]): A metrics document (`evaluation` schema).
    RETURNS (bytes): PNG image.
    """
    per_label = metrics["per_label"]
    labels = sorted(per_label, key=lambda lab: -per_label[lab]["gold"])
    values = [100 * (per_label[lab]["f"] or 0.0) for lab in labels]
    fig = _figure(max(4.0, 0.6 * len(labels) + 1.5), 3.2)
    ax = fig.add_subplot(111)
    ax.bar(range(len(labels)), values, color="#4c72b0")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=45, ha="right")
    ax.set_ylim(0, 100)
    ax.set_ylabel("F (%)")
    overall = metrics["spans"]["f"]
    if overall is not None:
        ax.axhline(100 * overall, color="#c44e52", linestyle="--", label=f"overall {100 * overall:.1f}")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_title("Spans F per label (labels by gold count)")
    return _png(fig)


def chart_recall_by_length(metrics: Dict[str, Any]) -> bytes:
    """A bar chart of recall by span length in tokens, with the gold counts.

    metrics (Dict[str, Any]): A metrics document.
    RETURNS (bytes): PNG image.
    """
    by_length = metrics["by_length"]
    buckets = list(LENGTH_BUCKETS)
    values = [100 * (by_length[b]["r"] or 0.0) for b in buckets]
    fig = _figure(5.0, 3.2)
    ax = fig.add_subplot(111)
    bars = ax.bar(buckets, values, color="#55a868")
    for bar, b in zip(bars, buckets):
        ax.annotate(
            f"n={by_length[b]['gold']}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_ylim(0, 105)
    ax.set_xlabel("span length (tokens)")
    ax.set_ylabel("recall (%)")
    ax.set_title("Recall by span length")
    return _png(fig)


def chart_score_distribution(metrics: Dict[str, Any]) -> Optional[bytes]:
    """Histograms of the scores of true and false positives.

    metrics (Dict[str, Any]): A metrics document.
    RETURNS (Optional[bytes]): PNG image, or None when predictions had no scores.
    """
    scores = metrics.get("scores")
    if not scores:
        return None
    bins = scores["bins"]
    centres = [(a + b) / 2 for a, b in zip(bins[:-1], bins[1:])]
    width = (bins[1] - bins[0]) * 0.45
    fig = _figure(5.5, 3.2)
    ax = fig.add_subplot(111)
    ax.bar(
        [c - width / 2 for c in centres],
        scores["tp"]["histogram"],
        width=width,
        color="#55a868",
        label=f"true positives ({scores['tp']['count']})",
    )
    ax.bar(
        [c + width / 2 for c in centres],
        scores["fp"]["histogram"],
        width=width,
        color=FP_COLOR,
        label=f"false positives ({scores['fp']['count']})",
    )
    threshold = (metrics.get("model") or {}).get("threshold")
    if isinstance(threshold, (int, float)):
        ax.axvline(threshold, color="#333", linestyle="--", label=f"threshold {threshold:g}")
    ax.set_xlim(0, 1)
    ax.set_xlabel("span score")
    ax.set_ylabel("spans")
    ax.legend(fontsize=8)
    ax.set_title("Scores of true vs false positives")
    return _png(fig)


_ENV: Optional[Any] = None


def _env() -> Any:
    """The Jinja2 environment over the package's templates (autoescaped HTML)."""
    global _ENV
    if _ENV is None:
        import jinja2

        _ENV = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATES)),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
    return _ENV


def _prf_row(name: str, s: Dict[str, Any]) -> List[Any]:
    return [name, pct(s["p"]), pct(s["r"]), pct(s["f"]), s["tp"], s["fp"], s["fn"], s["gold"]]


PRF_HEADERS = ["", "P", "R", "F", "TP", "FP", "FN", "gold"]


# Lanes drawn per side of a passage; further overlapping spans are counted, not drawn
MAX_LANES = 6
# Tokens of context shown around each error; at most MAX_TOKENS tokens of a doc are drawn
CONTEXT = 8
MAX_TOKENS = 800


def _lanes(
    spans: List[Dict[str, Any]], start: int, end: int, max_lanes: int = MAX_LANES
) -> Tuple[List[List[Optional[Dict[str, Any]]]], int]:
    """Stack the spans inside tokens [start, end) into lanes so that no two spans of a
    lane share a token; each lane has one cell per token: None, or the span's colour,
    its chip on its first token and `end` on its last.

    RETURNS (Tuple[List[List[Optional[Dict]]], int]): The lanes and the number of spans
        left out because `max_lanes` lanes were full.
    """
    lanes: List[List[Optional[Dict[str, Any]]]] = []
    ends: List[int] = []
    left_out = 0
    inside = [sp for sp in spans if start <= sp["start"] and sp["end"] <= end]
    for span in sorted(inside, key=lambda s: (s["start"], -(s["end"] - s["start"]), s["chip"])):
        lane = next((i for i, e in enumerate(ends) if e <= span["start"]), None)
        if lane is None:
            if len(lanes) >= max_lanes:
                left_out += 1
                continue
            lanes.append([None] * (end - start))
            ends.append(0)
            lane = len(lanes) - 1
        ends[lane] = span["end"]
        for t in range(span["start"], span["end"]):
            lanes[lane][t - start] = {
                "color": span["color"],
                "chip": span["chip"] if t == span["start"] else "",
                "error": span["error"],
                "end": t == span["end"] - 1,
            }
    return lanes, left_out


def _passages(
    n_tokens: int, errors: List[Dict[str, Any]], spans: List[Dict[str, Any]], context: int, max_tokens: int
) -> Tuple[List[Tuple[int, int]], bool]:
    """The token ranges to draw: each error with `context` tokens either side, widened
    until no span crosses a range's edge, merged; at most `max_tokens` tokens in all.

    RETURNS (Tuple[List[Tuple[int, int]], bool]): (start, end) ranges in order, and
        whether ranges were dropped for `max_tokens`.
    """
    ranges: List[List[int]] = []
    for err in sorted(errors, key=lambda e: e["start"]):
        lo, hi = max(0, err["start"] - context), min(n_tokens, err["end"] + context)
        if ranges and lo <= ranges[-1][1]:
            ranges[-1][1] = max(ranges[-1][1], hi)
        else:
            ranges.append([lo, hi])
    changed = True
    while changed:  # widen to whole spans, merging ranges that come to touch
        changed = False
        for r in ranges:
            for sp in spans:
                if sp["start"] < r[1] and r[0] < sp["end"] and (sp["start"] < r[0] or sp["end"] > r[1]):
                    r[0], r[1] = min(r[0], sp["start"]), max(r[1], sp["end"])
                    changed = True
        merged: List[List[int]] = []
        for r in sorted(ranges):
            if merged and r[0] <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], r[1])
            else:
                merged.append(list(r))
        ranges = merged
    out, total, cut = [], 0, False
    for lo, hi in ranges:
        if total + (hi - lo) > max_tokens and out:
            cut = True
            break
        out.append((lo, hi))
        total += hi - lo
    return out, cut


def doc_view(
    gold: Doc,
    pred: Doc,
    result: DocResult,
    colors: Dict[str, str],
    spans_key: str = "sc",
    *,
    max_lanes: int = MAX_LANES,
    context: int = CONTEXT,
    max_tokens: int = MAX_TOKENS,
) -> Dict[str, Any]:
    """What the report draws for one doc: the passages around its errors, each with its
    tokens and the gold and predicted span lanes.

    Missed gold spans get the chip `LABEL ✗ missed`; wrong predictions their
    kind of error (`✗ label`, `✗ boundary`, `✗ bound+label`, `✗ spurious`);
    every predicted span its score when the predictions carry scores.

    gold (Doc): The gold doc.
    pred (Doc): The predicted doc (same tokens).
    result (DocResult): The scorer's findings for this doc.
    colors (Dict[str, str]): Colour of each label.
    spans_key (str): The predicted span group (for the scores).
    max_lanes (int): Lanes per side of a passage; spans beyond are counted in `left_out`.
    context (int): Tokens shown either side of each error (widened to whole spans).
    max_tokens (int): Tokens drawn at most per doc; later passages are dropped (`cut`).
    RETURNS (Dict[str, Any]): index, n_tokens, n_tp, n_fp, n_fn, shown_tokens, cut, max_lanes, and
        passages: start, end, tokens ({text, ws}), gold and pred (lanes of per-token
        cells), left_out.
    """
    scores = doc_spans(pred, spans_key, with_scores=True) if spans_key in pred.spans else {}
    gold_spans, pred_spans = [], []
    for key in sorted(set(result.tp) | set(result.fn)):
        missed = key in result.fn
        gold_spans.append(
            {
                "start": key[0],
                "end": key[1],
                "chip": f"{key[2]} {FN_TAG}" if missed else key[2],
                "color": FN_COLOR if missed else colors.get(key[2], PALETTE[0]),
                "error": missed,
            }
        )
    for key in sorted(set(result.tp) | set(result.fp)):
        wrong = key in result.fp
        chip = f"{key[2]} {FP_TAG[result.fp[key]]}" if wrong else key[2]
        score = scores.get(key)
        if score is not None:
            chip += f" {score:.2f}"
        pred_spans.append(
            {
                "start": key[0],
                "end": key[1],
                "chip": chip,
                "color": FP_COLOR if wrong else colors.get(key[2], PALETTE[0]),
                "error": wrong,
            }
        )
    errors = [sp for sp in gold_spans + pred_spans if sp["error"]]
    ranges, cut = _passages(len(gold), errors, gold_spans + pred_spans, context, max_tokens)
    passages = []
    for lo, hi in ranges:
        gold_lanes, gold_out = _lanes(gold_spans, lo, hi, max_lanes)
        pred_lanes, pred_out = _lanes(pred_spans, lo, hi, max_lanes)
        passages.append(
            {
                "start": lo,
                "end": hi,
                "tokens": [{"text": t.text, "ws": bool(t.whitespace_)} for t in gold[lo:hi]],
                "gold": gold_lanes,
                "pred": pred_lanes,
                "left_out": gold_out + pred_out,
            }
        )
    return {
        "index": result.index,
        "n_tokens": len(gold),
        "n_tp": len(result.tp),
        "n_fp": len(result.fp),
        "n_fn": len(result.fn),
        "passages": passages,
        "cut": cut,
        "max_lanes": max_lanes,
        "shown_tokens": sum(hi - lo for lo, hi in ranges),
    }


def render_doc_pair(
    gold: Doc, pred: Doc, result: DocResult, colors: Dict[str, str], spans_key: str = "sc"
) -> str:
    """Gold and predicted spans of one doc, aligned token for token, errors marked.

    Gold spans are drawn in lanes above each word, predicted spans in lanes
    below it (see `doc_view` for the chips).

    gold (Doc): The gold doc.
    pred (Doc): The predicted doc (same tokens).
    result (DocResult): The scorer's findings for this doc.
    colors (Dict[str, str]): Colour of each label.
    spans_key (str): The predicted span group (for the scores).
    RETURNS (str): An HTML fragment.
    """
    macro = _env().get_template("report_doc.html").module.doc_pair
    return str(macro(doc_view(gold, pred, result, colors, spans_key)))


def _b64(png: Optional[bytes]) -> Optional[str]:
    return None if png is None else base64.b64encode(png).decode("ascii")


def report_context(
    evaluation: SpanEvaluation,
    gold_docs: Sequence[Doc],
    pred_docs: Sequence[Doc],
    *,
    title: str = "Span evaluation",
    n_docs: int = 5,
) -> Dict[str, Any]:
    """The data the report template renders (templates/report.html).

    RETURNS (Dict[str, Any]): Rows of each table, charts (base64 PNGs), the
        speed sentence, and the docs with the most errors (`doc_view`).
    """
    m = evaluation.metrics
    model = {"model": "", "name": "", "version": "", "threshold": None, **(m.get("model") or {})}
    data = {"path": "", "docs": 0, "tokens": 0, "gold_spans": 0, "pred_spans": 0, **(m.get("data") or {})}
    spans_key = model.get("spans_key") or "sc"
    ceiling = []
    if m.get("suggester"):
        sg = m["suggester"]
        per_token = sg.get("candidates_per_token")
        ceiling.append(
            [
                "suggester",
                pct(sg["recall"]),
                sg["covered"],
                sg["gold_spans"],
                "" if per_token is None else f"{per_token:.2f} candidates/token",
            ]
        )
    if m.get("flattening"):
        fl = m["flattening"]
        ceiling.append(
            ["flattening", pct(fl["recall"]), fl["covered"], fl["gold_spans"], f"{fl['dropped']} spans dropped"]
        )
    speed = None
    if m.get("speed"):
        sp = m["speed"]
        wps = sp.get("words_per_second")
        speed = {
            "row": [
                sp.get("device"),
                sp.get("words"),
                f"{sp.get('seconds') or 0:.2f}",
                "—" if wps is None else f"{wps:,.0f}",
            ],
            "sentence": describe_speed(sp),
        }
    score_png = chart_score_distribution(m)
    charts = [
        {"png": _b64(chart_per_label_f(m)), "alt": "Spans F per label"},
        {"png": _b64(chart_recall_by_length(m)), "alt": "Recall by span length"},
        {
            "png": _b64(score_png),
            "alt": "Scores of true vs false positives",
            "note": "No span scores in the predictions: no score distribution.",
        },
    ]
    per_label = m["per_label"]
    labels = sorted(per_label, key=lambda lab: (-per_label[lab]["gold"], lab))
    colors = {lab: PALETTE[i % len(PALETTE)] for i, lab in enumerate(sorted(per_label))}
    worst = sorted(evaluation.docs, key=lambda d: (-d.n_errors, d.index))[:n_docs]
    return {
        "title": title,
        "model": model,
        "data": data,
        "prf_headers": PRF_HEADERS,
        "overall": [_prf_row("spans", m["spans"])],
        "groups": [_prf_row(g, m["groups"][g]) for g in GROUPS],
        "errors": [[k, v] for k, v in m["errors"].items()],
        "ceiling": ceiling,
        "speed": speed,
        "charts": charts,
        "per_label": [_prf_row(lab, per_label[lab]) for lab in labels],
        "by_length": [_prf_row(b, m["by_length"][b]) for b in LENGTH_BUCKETS],
        "worst": [
            doc_view(gold_docs[d.index], pred_docs[d.index], d, colors, spans_key) for d in worst if d.n_errors
        ],
        "fp_color": FP_COLOR,
        "fn_color": FN_COLOR,
    }


def build_report(
    evaluation: SpanEvaluation,
    gold_docs: Sequence[Doc],
    pred_docs: Sequence[Doc],
    *,
    title: str = "Span evaluation",
    n_docs: int = 5,
) -> str:
    """The report page as one HTML string, from templates/report.html.

    evaluation (SpanEvaluation): The scorer's result (metrics in the
        `evaluation` schema and per-doc findings).
    gold_docs (Sequence[Doc]): The gold docs, in the evaluated order.
    pred_docs (Sequence[Doc]): The predicted docs, same order.
    title (str): The page title.
    n_docs (int): How many docs with the most errors to render.
    RETURNS (str): A complete, self-contained HTML document.
    """
    context = report_context(evaluation, gold_docs, pred_docs, title=title, n_docs=n_docs)
    return _env().get_template("report.html").render(**context) + "\n"


def write_report(
    path: Path, evaluation: SpanEvaluation, gold_docs: Sequence[Doc], pred_docs: Sequence[Doc], **kwargs: Any
) -> Path:
    """Build the report and write it to `path` (parent folders created).

    RETURNS (Path): The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(build_report(evaluation, gold_docs, pred_docs, **kwargs), encoding="utf8")
    tmp.replace(path)
    return path


def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def results_table(named: Sequence[Any]) -> str:
    """The README's comparison table, in Markdown, from metrics documents.

    Every number comes from the files: F overall, on overlapping and on
    isolated gold spans (%), the recall ceiling (suggester or flattening),
    training time (`training.training_seconds`, when recorded) and inference
    speed (`speed.words_per_second` on `speed.device`).

    named (Sequence[Tuple[str, Dict[str, Any]]]): (row name, metrics) pairs.
    RETURNS (str): A Markdown table.
    """
    lines = [
        "| pipeline | F | F overlapping | F isolated | recall ceiling | training time | words/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in named:
        groups = m["groups"]
        ceiling = m.get("suggester") or m.get("flattening") or {}
        kind = "suggester" if m.get("suggester") else "flattening" if m.get("flattening") else ""
        speed = m.get("speed") or {}
        wps = speed.get("words_per_second")
        lines.append(
            f"| {name} | {pct(m['spans']['f'])} | {pct(groups['overlapping']['f'])} | "
            f"{pct(groups['isolated']['f'])} | "
            f"{pct(ceiling.get('recall')) + (f' ({kind})' if kind else '')} | "
            f"{_duration((m.get('training') or {}).get('training_seconds'))} | "
            f"{'—' if wps is None else f'{wps:,.0f}'} ({speed.get('device', '?')}) |"
        )
    return "\n".join(lines) + "\n"
