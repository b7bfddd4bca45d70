"""The HTML report: its content, its charts, and that it renders in a real
browser (Debian's chromium, headless), from hand-made gold/predicted docs."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.tokens import Doc, Span

from biomed_spancat.evaluation import assemble_metrics, score_docs
from biomed_spancat.report import (
    FN_COLOR,
    FP_COLOR,
    build_report,
    chart_per_label_f,
    chart_recall_by_length,
    chart_score_distribution,
    render_doc_pair,
    write_report,
)

NLP = spacy.blank("en")
WORDS = "BMP2 and BMP4 regulate limb patterning and skeletogenesis in the mouse embryo .".split()
PNG = b"\x89PNG\r\n\x1a\n"


def make_doc(spans, scores=None):
    doc = Doc(NLP.vocab, words=WORDS)
    doc.spans["sc"] = [Span(doc, s, e, label=lab) for s, e, lab in spans]
    if scores is not None:
        doc.spans["sc"].attrs["scores"] = numpy.asarray(scores, dtype="f")
    return doc


def make_case(with_scores=True):
    """Doc 0: one error; doc 1: many (boundary, spurious, missed)."""
    gold = [
        make_doc([(0, 1, "PR"), (2, 3, "PR")]),
        make_doc(
            [
                (0, 1, "PR"),
                (2, 3, "PR"),
                (4, 5, "UBERON"),
                (4, 6, "GO_BP"),
                (10, 11, "NCBITaxon"),
                (10, 12, "UBERON"),
            ]
        ),
    ]
    pred_spans = [
        [(0, 1, "PR")],
        [(0, 1, "PR"), (2, 4, "PR"), (4, 6, "GO_BP"), (7, 8, "CHEBI"), (10, 11, "NCBITaxon")],
    ]
    scores = [[0.9], [0.9, 0.6, 0.8, 0.55, 0.95]]
    pred = [make_doc(s, sc if with_scores else None) for s, sc in zip(pred_spans, scores)]
    result = score_docs(zip(gold, pred))
    result.metrics = assemble_metrics(
        result.metrics,
        model={
            "model": "training/model-tuned",
            "name": "en_biomed_spancat",
            "version": "0.1.0",
            "threshold": 0.5,
        },
        data="corpus/dev.spacy",
        suggester={
            "recall": 0.9,
            "covered": 9,
            "gold_spans": 10,
            "candidates": 30,
            "candidates_per_token": 2.5,
            "per_label": {},
        },
        flattening=None,
        seconds=0.5,
        device="cpu",
    )
    return result, gold, pred


def test_charts_are_pngs():
    result, _, _ = make_case()
    for chart in (chart_per_label_f, chart_recall_by_length, chart_score_distribution):
        assert chart(result.metrics).startswith(PNG)
    no_scores, _, _ = make_case(with_scores=False)
    assert chart_score_distribution(no_scores.metrics) is None


def test_report_holds_tables_charts_and_span_renderings():
    result, gold, pred = make_case()
    page = build_report(result, gold, pred, title="Dev <report>")
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>Dev &lt;report&gt;</title>" in page  # escaped
    for cls in ("overall", "groups", "errors", "ceiling", "speed", "per-label", "by-length"):
        assert f'<table class="{cls}">' in page
    # Numbers from the metrics, as percentages: overall P 4/6, R 4/8.
    assert "<td>spans</td><td>66.7</td><td>50.0</td><td>57.1</td>" in page
    assert "<td>suggester</td><td>90.0</td>" in page
    # Three charts, embedded.
    assert len(re.findall(r'src="data:image/png;base64,[A-Za-z0-9+/=]{100,}"', page)) == 3
    # displaCy span renderings, gold and predicted side by side.
    assert page.count('<div class="pair"') == 2
    assert page.count('<div class="spans"') == 4


def test_report_is_self_contained():
    result, gold, pred = make_case()
    page = build_report(result, gold, pred)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "<link" not in page and "<script" not in page and "@import" not in page


def test_worst_docs_first_and_errors_marked():
    result, gold, pred = make_case()
    page = build_report(result, gold, pred, n_docs=1)
    assert re.findall(r'data-doc="(\d+)"', page) == ["1"]  # the doc with most errors
    gold_half, pred_half = page.split("<h4>predicted</h4>")
    # Missed gold spans on the gold side, in orange; wrong predictions on the other, in red.
    assert "PR ✗ missed" in gold_half and "UBERON ✗ missed" in gold_half
    assert f"background: {FN_COLOR}" in gold_half
    assert "PR ✗ boundary" in pred_half and "CHEBI ✗ spurious" in pred_half
    assert f"background: {FP_COLOR}" in pred_half
    # Correct spans carry their plain label on both sides.
    assert re.search(r">\s*NCBITaxon\s*<", gold_half) and re.search(r">\s*NCBITaxon\s*<", pred_half)


def test_render_doc_pair_label_error():
    gold = make_doc([(2, 3, "PR")])
    pred = make_doc([(2, 3, "CHEBI")])
    result = score_docs([(gold, pred)])
    html = render_doc_pair(gold, pred, result.docs[0], {"PR": "#aaa", "CHEBI": "#bbb"})
    assert "CHEBI ✗ label" in html and "PR ✗ missed" in html


def test_report_without_scores_or_errors():
    result, gold, pred = make_case(with_scores=False)
    page = build_report(result, gold, pred)
    assert "No span scores in the predictions" in page
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 2
    perfect = score_docs([(gold[0], gold[0])])
    perfect.metrics = assemble_metrics(
        perfect.metrics, model={}, data="", suggester=None, flattening=None, seconds=0.0, device="cpu"
    )
    page = build_report(perfect, gold[:1], gold[:1])
    assert "No errors to show." in page and '<table class="ceiling">' not in page


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium not installed (Debian: apt-get install -y chromium); the browser test needs it",
)
def test_report_renders_in_headless_chromium(tmp_path):
    from PIL import Image

    result, gold, pred = make_case()
    page = write_report(tmp_path / "metrics" / "report.html", result, gold, pred)
    shot = tmp_path / "shot.png"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1280,2000",
        page.resolve().as_uri(),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and shot.exists(), r.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2000)
    colours = image.getcolors(maxcolors=1 << 24)
    assert len(colours) > 50  # text, tables, chart colours: not a blank page
    white = next((n for n, c in colours if c == (255, 255, 255)), 0)
    assert white < 0.97 * 1280 * 2000
    # The top of the page (title and first tables) is drawn, not empty.
    top = image.crop((0, 0, 1280, 300))
    assert len(top.getcolors(maxcolors=1 << 24)) > 10


def test_results_table_from_metrics():
    from biomed_spancat.report import results_table

    spancat, _, _ = make_case()
    spancat.metrics["training"] = {"training_seconds": 754.0}
    bio = json.loads(json.dumps(spancat.metrics))
    bio["suggester"], bio["training"] = None, None
    bio["flattening"] = {"recall": 0.94, "covered": 94, "gold_spans": 100, "dropped": 6}
    table = results_table([("this project", spancat.metrics), ("BIO", bio)]).splitlines()
    assert table[0].startswith("| pipeline | F | F overlapping | F isolated |")
    # overall F 57.1; overlapping: TP 2 FP 0 FN 2 -> 66.7; isolated: TP 2 FP 2 FN 2 -> 50.0
    assert table[2] == "| this project | 57.1 | 66.7 | 50.0 | 90.0 (suggester) | 12.6 min | 52 (cpu) |"
    assert table[3] == "| BIO | 57.1 | 66.7 | 50.0 | 94.0 (flattening) | — | 52 (cpu) |"  # 26 words in 0.5 s


def test_results_table_cli_names_bad_rows(tmp_path, monkeypatch):
    import importlib

    import typer
    from typer.testing import CliRunner

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent))
    app = typer.Typer(add_completion=False)
    app.command()(importlib.import_module("scripts.results_table").main)
    r = CliRunner().invoke(app, ["no-equals-sign"])
    assert r.exit_code == 1 and "'no-equals-sign' is not NAME=PATH" in r.output
    (tmp_path / "m.json").write_text('{"spans": {}}')
    r = CliRunner().invoke(app, [f"x={tmp_path / 'm.json'}"])
    assert r.exit_code == 1 and "not a metrics file written by evaluate" in r.output
