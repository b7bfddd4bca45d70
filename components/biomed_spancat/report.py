"""The evaluation report: one self-contained HTML page people can look at.

Tables of the metrics (from `evaluation`), charts as embedded PNGs (per-label
F, recall by span length, scores of true vs false positives), and the docs
with the most errors rendered with displaCy's span visualiser, gold and
predicted side by side, with every error marked in red (wrong predictions)
or orange (missed gold spans). Nothing is fetched from anywhere: the page
opens offline, from a file or an e-mail attachment.

Project library code: never imported by a packaged pipeline.
"""

import base64
import html
import io
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from spacy import displacy
from spacy.tokens import Doc, Span

from .evaluation import GROUPS, LENGTH_BUCKETS, DocResult, SpanEvaluation, SpanKey, pct

__all__ = [
    "FP_COLOR",
    "FN_COLOR",
    "chart_per_label_f",
    "chart_recall_by_length",
    "chart_score_distribution",
    "render_doc_pair",
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
RENDER_KEY = "report"

CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 1.5em; } h2 { margin-top: 1.2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f0f0f0; }
.note { color: #555; font-size: 0.9em; max-width: 60em; }
.row { display: flex; flex-wrap: wrap; gap: 8px 32px; align-items: flex-start; }
.box { max-width: 36em; } .box h2 { font-size: 1.15em; }
.charts img { max-width: 100%; border: 1px solid #eee; margin: 4px 0 12px; }
.pair { display: flex; gap: 16px; align-items: flex-start; }
.pair > div { flex: 1 1 50%; min-width: 0; border: 1px solid #ddd; padding: 8px; overflow-x: auto; }
.pair h4 { margin: 0 0 4px; }
/* displaCy's span labels are absolutely placed: keep each on one line */
.spans span { white-space: nowrap; }
.key span { display: inline-block; padding: 1px 6px; border-radius: 3px; margin-right: 8px; }
"""


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


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _box(title: str, body: str) -> str:
    return f'<section class="box"><h2>{html.escape(title)}</h2>{body}</section>'


def _prf_row(name: str, s: Dict[str, Any]) -> List[Any]:
    return [name, pct(s["p"]), pct(s["r"]), pct(s["f"]), s["tp"], s["fp"], s["fn"], s["gold"]]


PRF_HEADERS = ["", "P", "R", "F", "TP", "FP", "FN", "gold"]


def _render_doc(doc: Doc, spans: List[Span], colors: Dict[str, str]) -> str:
    doc.spans[RENDER_KEY] = spans
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # displaCy warns about docs with no spans
        return displacy.render(
            doc,
            style="span",
            options={"spans_key": RENDER_KEY, "colors": colors},
            page=False,
            jupyter=False,
        )


def _marked_spans(
    doc: Doc, correct: Any, wrong: Any, tag: Callable[[SpanKey], str], color: str, colors: Dict[str, str]
) -> List[Span]:
    """Spans for one side of a pair: the correct ones under their label, the wrong ones
    under "LABEL <tag>" in `color` (added to `colors` for displaCy)."""
    spans = []
    for key in sorted(set(correct) | set(wrong)):
        shown = key[2]
        if key in wrong:
            shown = f"{key[2]} {tag(key)}"
            colors[shown] = color
        spans.append(Span(doc, key[0], key[1], label=shown))
    return spans


def render_doc_pair(gold: Doc, pred: Doc, result: DocResult, colors: Dict[str, str]) -> str:
    """Gold and predicted spans of one doc side by side, errors marked.

    On the gold side, missed gold spans are labelled `LABEL ✗ missed`; on the
    predicted side, wrong predictions are labelled with their kind of error
    (`✗ label`, `✗ boundary`, `✗ bound+label`, `✗ spurious`).

    gold (Doc): The gold doc.
    pred (Doc): The predicted doc (same tokens).
    result (DocResult): The scorer's findings for this doc.
    colors (Dict[str, str]): Colour of each plain label; error labels are added.
    RETURNS (str): An HTML fragment.
    """
    colors = dict(colors)
    words = [t.text for t in gold]
    spaces = [bool(t.whitespace_) for t in gold]
    gold_doc = Doc(gold.vocab, words=words, spaces=spaces)
    pred_doc = Doc(gold.vocab, words=words, spaces=spaces)
    gold_spans = _marked_spans(gold_doc, result.tp, result.fn, lambda key: FN_TAG, FN_COLOR, colors)
    pred_spans = _marked_spans(pred_doc, result.tp, result.fp, lambda key: FP_TAG[result.fp[key]], FP_COLOR, colors)
    return (
        f'<div class="pair" data-doc="{result.index}">'
        f"<div><h4>gold</h4>{_render_doc(gold_doc, gold_spans, colors)}</div>"
        f"<div><h4>predicted</h4>{_render_doc(pred_doc, pred_spans, colors)}</div>"
        "</div>"
    )


def build_report(
    evaluation: SpanEvaluation,
    gold_docs: Sequence[Doc],
    pred_docs: Sequence[Doc],
    *,
    title: str = "Span evaluation",
    n_docs: int = 5,
) -> str:
    """The report page as one HTML string.

    evaluation (SpanEvaluation): The scorer's result (metrics in the
        `evaluation` schema and per-doc findings).
    gold_docs (Sequence[Doc]): The gold docs, in the evaluated order.
    pred_docs (Sequence[Doc]): The predicted docs, same order.
    title (str): The page title.
    n_docs (int): How many docs with the most errors to render.
    RETURNS (str): A complete, self-contained HTML document.
    """
    m = evaluation.metrics
    model = m.get("model") or {}
    data = m.get("data") or {}
    parts = [f"<h1>{html.escape(title)}</h1>"]
    parts.append(
        '<p class="note">'
        f"Model: <b>{html.escape(str(model.get('model', '')))}</b> "
        f"({html.escape(str(model.get('name', '')))} {html.escape(str(model.get('version', '')))}); "
        f"threshold {html.escape(str(model.get('threshold')))}. "
        f"Data: <b>{html.escape(str(data.get('path', '')))}</b>: {data.get('docs')} docs, "
        f"{data.get('tokens')} tokens, {data.get('gold_spans')} gold spans, "
        f"{data.get('pred_spans')} predicted spans. Scores are strict (same start, end and label), in %."
        "</p>"
    )
    top = [
        _box("Overall", _table(PRF_HEADERS, [_prf_row("spans", m["spans"])], "overall")),
        _box(
            "Overlapping vs isolated spans",
            _table(PRF_HEADERS, [_prf_row(g, m["groups"][g]) for g in GROUPS], "groups")
            + '<p class="note">A gold span is <i>overlapping</i> when it shares a token with another '
            "gold span (nested, crossing or same extent), else <i>isolated</i>; <i>same_label</i> / "
            "<i>cross_label</i>: it overlaps a span of its own / another label. A true positive counts "
            "in the groups of the gold span it matches; a false positive in those of the gold spans it "
            "touches (or, touching none, by its overlaps with other predictions).</p>",
        ),
        _box(
            "Errors",
            _table(["kind", "count"], [[k, v] for k, v in m["errors"].items()], "errors")
            + '<p class="note">Wrong predictions by kind: <i>label</i> (a gold span has the exact '
            "extent, another label), <i>boundary</i> (right label, overlapping, wrong extent), "
            "<i>boundary_and_label</i> (overlaps a gold span of another label), <i>spurious</i> "
            "(touches no gold span). <i>missed</i>: gold spans no prediction touches.</p>",
        ),
    ]
    ceiling_rows = []
    if m.get("suggester"):
        sg = m["suggester"]
        per_token = sg.get("candidates_per_token")
        ceiling_rows.append(
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
        ceiling_rows.append(
            [
                "flattening",
                pct(fl["recall"]),
                fl["covered"],
                fl["gold_spans"],
                f"{fl['dropped']} spans dropped",
            ]
        )
    if ceiling_rows:
        top.append(
            _box(
                "Recall ceiling",
                _table(["", "recall", "covered", "gold", ""], ceiling_rows, "ceiling")
                + '<p class="note">Gold spans the model can produce at all: proposed by the suggester '
                "(spancat) or kept by flattening to BIO tags (token classification).</p>",
            )
        )
    speed = m.get("speed") or {}
    if speed:
        wps = speed.get("words_per_second")
        top.append(
            _box(
                "Speed",
                _table(
                    ["device", "words", "seconds", "words/s"],
                    [
                        [
                            speed.get("device"),
                            speed.get("words"),
                            f"{speed.get('seconds') or 0:.2f}",
                            "—" if wps is None else f"{wps:.0f}",
                        ]
                    ],
                    "speed",
                ),
            )
        )
    parts.append('<div class="row">' + "".join(top) + "</div>")
    charts = [
        _img(chart_per_label_f(m), "Spans F per label"),
        _img(chart_recall_by_length(m), "Recall by span length"),
    ]
    score_png = chart_score_distribution(m)
    charts.append(
        _img(score_png, "Scores of true vs false positives")
        if score_png
        else '<p class="note">No span scores in the predictions: no score distribution.</p>'
    )
    parts.append(
        '<h2>Charts</h2><div class="row charts">' + "".join(f"<div>{c}</div>" for c in charts) + "</div>"
    )
    per_label = m["per_label"]
    labels = sorted(per_label, key=lambda lab: (-per_label[lab]["gold"], lab))
    parts.append(
        '<div class="row">'
        + _box(
            "Per label", _table(PRF_HEADERS, [_prf_row(lab, per_label[lab]) for lab in labels], "per-label")
        )
        + _box(
            "By span length",
            _table(
                ["tokens"] + PRF_HEADERS[1:],
                [_prf_row(b, m["by_length"][b]) for b in LENGTH_BUCKETS],
                "by-length",
            ),
        )
        + "</div>"
    )
    colors = {lab: PALETTE[i % len(PALETTE)] for i, lab in enumerate(sorted(per_label))}
    worst = sorted(evaluation.docs, key=lambda d: (-d.n_errors, d.index))[:n_docs]
    worst = [d for d in worst if d.n_errors]
    parts.append(
        f"<h2>Docs with the most errors ({len(worst)})</h2>"
        '<p class="key">'
        f'<span style="background:{FP_COLOR}">wrong prediction (✗ kind)</span>'
        f'<span style="background:{FN_COLOR}">missed gold span (✗ missed)</span>'
        "other colours: correct spans</p>"
    )
    for d in worst:
        parts.append(
            f"<h3>Doc {d.index}: {len(d.tp)} correct, {len(d.fp)} wrong, {len(d.fn)} missed</h3>"
            + render_doc_pair(gold_docs[d.index], pred_docs[d.index], d, colors)
        )
    if not worst:
        parts.append('<p class="note">No errors to show.</p>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>\n"
    )


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
