"""The HTML report: its content, its charts, and that it renders in a real
browser (Debian's chromium, headless), from hand-made gold/predicted docs."""

import html as html_lib
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy
import pytest
from spacy.tokens import Doc, Span

from biomed_spancat.evaluation.scoring import assemble_metrics, score_docs
from biomed_spancat.evaluation.report import (
    FN_COLOR,
    FP_COLOR,
    build_report,
    chart_per_label_f,
    doc_view,
    chart_recall_by_length,
    chart_score_distribution,
    render_doc_pair,
    write_report,
)
from report_cases import NLP, WORDS, make_case, make_doc

PNG = b"\x89PNG\r\n\x1a\n"


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
    # Both docs with errors, one column per token: doc 1 whole (errors everywhere), doc 0
    # its one error (token 2) with 8 tokens of context: tokens 0-10, then a gap.
    assert page.count('<div class="doc"') == 2
    assert page.count('<span class="tok') == 13 + 11
    # The header names the pipeline and its version; the speed says how it was measured.
    assert '<b class="pipeline-name">en_biomed_spancat 0.1.0</b>' in page
    assert "52 words/s on cpu (one prediction pass, no warm-up)" in page


def test_report_is_self_contained():
    result, gold, pred = make_case()
    page = build_report(result, gold, pred)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "<link" not in page and "<script" not in page and "@import" not in page


def _chips(fragment, side):
    """The chip texts of one side ("gold" or "pred") of a rendered doc."""
    return re.findall(r'<span class="lane ' + side + r'[^"]*"><b class="chip[^"]*" style="background:([^"]+)">([^<]+)</b>', fragment)


def test_worst_docs_first_and_errors_marked():
    result, gold, pred = make_case()
    page = build_report(result, gold, pred, n_docs=1)
    assert re.findall(r'data-doc="(\d+)"', page) == ["1"]  # the doc with most errors
    # Missed gold spans on the gold side, in orange; wrong predictions on the other, in red,
    # every prediction with its score; correct spans under their plain label.
    assert sorted(_chips(page, "gold")) == sorted(
        [
            ("#c887fb", "PR"),
            (FN_COLOR, "PR ✗ missed"),
            (FN_COLOR, "UBERON ✗ missed"),
            ("#bfeeb7", "GO_BP"),
            (FN_COLOR, "UBERON ✗ missed"),
            ("#aa9cfc", "NCBITaxon"),
        ]
    )
    assert sorted(_chips(page, "pred")) == sorted(
        [
            ("#c887fb", "PR 0.90"),
            (FP_COLOR, "PR ✗ boundary 0.60"),
            ("#bfeeb7", "GO_BP 0.80"),
            (FP_COLOR, "CHEBI ✗ spurious 0.55"),
            ("#aa9cfc", "NCBITaxon 0.95"),
        ]
    )


def test_lanes_stack_overlapping_spans():
    """Nested gold spans (4-5 UBERON inside 4-6 GO_BP; 10-11 inside 10-12) take two lanes;
    every cell of a span is in one lane, its chip on its first token only."""
    result, gold, pred = make_case()
    view = doc_view(gold[1], pred[1], result.docs[1], {}, "sc")
    (passage,) = view["passages"]  # errors everywhere: the whole doc, one passage
    assert (passage["start"], passage["end"], passage["left_out"]) == (0, 13, 0)
    assert len(passage["gold"]) == 2 and len(passage["pred"]) == 1
    assert [t["text"] for t in passage["tokens"]] == WORDS
    outer, inner = passage["gold"]
    assert outer[4]["chip"] == "GO_BP" and outer[5]["chip"] == "" and outer[5]["end"]
    assert inner[4]["chip"] == "UBERON ✗ missed" and inner[4]["end"] and inner[5] is None
    assert outer[10]["chip"] == "UBERON ✗ missed" and inner[10]["chip"] == "NCBITaxon"
    assert [i for i, cell in enumerate(passage["pred"][0]) if cell] == [0, 2, 3, 4, 5, 7, 10]


def test_long_docs_show_the_passages_around_errors():
    """60 tokens, one error at 30-31 and a correct span 36-40 reaching into its context:
    one passage, 22-40 (8 tokens of context, widened to the whole span), drawn with gaps."""
    words = [f"w{i}" for i in range(60)]
    gold = _doc(words, [(30, 31, "PR"), (36, 40, "GO_BP"), (2, 3, "PR")])
    pred = _doc(words, [(36, 40, "GO_BP"), (2, 3, "PR")], [0.9, 0.8])
    result = score_docs([(gold, pred)])
    view = doc_view(gold, pred, result.docs[0], {}, "sc")
    assert [(p["start"], p["end"]) for p in view["passages"]] == [(22, 40)]
    html = render_doc_pair(gold, pred, result.docs[0], {})
    assert html.count('class="gap"') == 2 and "w21<" not in html and ">w22<" in html and ">w39<" in html
    # Lanes are capped: 10 nested predictions on one token, 3 lanes drawn, 7 counted
    many = _doc(words, [(30, 30 + k, "PR") for k in range(1, 11)], [0.5] * 10)
    result = score_docs([(_doc(words, []), many)])
    view = doc_view(_doc(words, []), many, result.docs[0], {}, "sc", max_lanes=3, max_tokens=15)
    (passage,) = view["passages"]
    assert len(passage["pred"]) == 3 and passage["left_out"] == 7
    html = render_doc_pair(_doc(words, []), many, result.docs[0], {})
    assert "4 more overlapping spans in this passage are not drawn (6 lanes per side)" in html
    # At most max_tokens tokens: later passages are dropped, and the page says so
    spread = _doc(words, [(5, 6, "PR"), (50, 51, "PR")])
    result = score_docs([(spread, _doc(words, []))])
    view = doc_view(spread, _doc(words, []), result.docs[0], {}, "sc", max_tokens=20)
    assert [(p["start"], p["end"]) for p in view["passages"]] == [(0, 14)] and view["cut"]


def test_render_doc_pair_label_error():
    gold = make_doc([(2, 3, "PR")])
    pred = make_doc([(2, 3, "CHEBI")], scores=[0.7])
    result = score_docs([(gold, pred)])
    html = render_doc_pair(gold, pred, result.docs[0], {"PR": "#aaa", "CHEBI": "#bbb"})
    assert _chips(html, "pred") == [(FP_COLOR, "CHEBI ✗ label 0.70")]
    assert _chips(html, "gold") == [(FN_COLOR, "PR ✗ missed")]


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


# Layout facts, measured by the browser: injected into a copy of the page (the report
# itself has no script), written as JSON into <pre id="layout">, read back via --dump-dom.
LAYOUT_JS = """
<script>
(function () {
  const out = {pageOverflow: document.documentElement.scrollWidth - window.innerWidth,
               docs: [], header: document.querySelector('.pipeline-name').textContent};
  const r = (el) => el.getBoundingClientRect();
  for (const doc of document.querySelectorAll('.doc')) {
    const d = {index: doc.dataset.doc, docOverflow: doc.scrollWidth - doc.clientWidth,
               misaligned: 0, misordered: 0, clipped: [], outside: [], overlaps: 0, chips: []};
    const chips = [];
    for (const tok of doc.querySelectorAll('.tok')) {
      const t = r(tok), w = r(tok.querySelector('.w'));
      for (const cell of tok.children) {
        const c = r(cell);
        if (Math.abs(c.left - t.left) > 0.5) d.misaligned++;
        if (cell.classList.contains('gold') && c.bottom > w.top + 0.5) d.misordered++;
        if (cell.classList.contains('pred') && c.top < w.bottom - 0.5) d.misordered++;
      }
      for (const chip of tok.querySelectorAll('.chip')) {
        const c = r(chip);
        d.chips.push(chip.textContent);
        if (chip.scrollWidth > chip.clientWidth + 0.5) d.clipped.push(chip.textContent);
        if (c.right > t.right + 0.5 || c.left < t.left - 0.5 || c.right > r(doc).right) d.outside.push(chip.textContent);
        chips.push(c);
      }
    }
    for (let i = 0; i < chips.length; i++) for (let j = i + 1; j < chips.length; j++) {
      const a = chips[i], b = chips[j];
      if (a.left < b.right - 0.5 && b.left < a.right - 0.5 && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5) d.overlaps++;
    }
    out.docs.push(d);
  }
  const pre = document.createElement('pre'); pre.id = 'layout';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
})();
</script>
"""


def _chromium(tmp_path, url, width, *extra):
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
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--window-size={width},2000",
        *extra,
        url,
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium not installed (Debian: apt-get install -y chromium); the browser test needs it",
)


def long_case():
    """One long doc with nested spans, long error tags and scores on every prediction:
    enough text to wrap at any width."""
    words = (WORDS[:-1] * 6) + ["."]
    doc = lambda spans, scores=None: _doc(words, spans, scores)  # noqa: E731
    gold_spans, pred_spans, scores = [], [], []
    for k in range(6):
        o = 12 * k
        gold_spans += [(o, o + 1, "PR"), (o + 2, o + 3, "PR"), (o + 4, o + 6, "GO_BP"), (o + 4, o + 5, "UBERON")]
        gold_spans += [(o + 10, o + 12, "UBERON"), (o + 10, o + 11, "NCBITaxon")]
        pred_spans += [(o, o + 1, "PR"), (o + 2, o + 4, "PR"), (o + 3, o + 5, "CHEBI"), (o + 7, o + 8, "CHEBI")]
        pred_spans += [(o + 10, o + 11, "NCBITaxon"), (o + 10, o + 12, "GO_BP")]
        scores += [0.91, 0.62, 0.55, 0.51, 0.97, 0.58]
    gold, pred = [doc(gold_spans)], [doc(pred_spans, scores)]
    result = score_docs(zip(gold, pred))
    result.metrics = assemble_metrics(
        result.metrics,
        model={"model": "training/model-tuned", "name": "en_biomed_spancat", "version": "0.1.0", "threshold": 0.5},
        data="corpus/dev.spacy", suggester=None, flattening=None, seconds=0.5, device="cpu",
    )
    return result, gold, pred


def _doc(words, spans, scores=None):
    doc = Doc(NLP.vocab, words=words)
    doc.spans["sc"] = [Span(doc, s, e, label=lab) for s, e, lab in spans]
    if scores is not None:
        doc.spans["sc"].attrs["scores"] = numpy.asarray(scores, dtype="f")
    return doc


@needs_chromium
@pytest.mark.parametrize("width", [1280, 480])
def test_report_layout_in_headless_chromium(tmp_path, width):
    """At a desktop and a phone width: every token's gold lanes, word and predicted lanes
    share one column (gold above the word, predicted below); no chip is clipped, leaves
    its column or covers another; nothing widens the page. A screenshot is kept."""
    from PIL import Image

    result, gold, pred = long_case()
    page = write_report(tmp_path / "report.html", result, gold, pred, title="Span evaluation")
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text(encoding="utf8").replace("</body>", LAYOUT_JS + "</body>"), encoding="utf8")
    dom = _chromium(tmp_path, probe.resolve().as_uri(), width, "--dump-dom", "--virtual-time-budget=5000")
    match = re.search(r'<pre id="layout">(.*?)</pre>', dom, re.S)
    assert match, dom[-2000:]
    layout = json.loads(html_lib.unescape(match.group(1)))
    assert layout["header"] == "en_biomed_spancat 0.1.0"
    assert layout["pageOverflow"] <= 0
    (d,) = layout["docs"]
    assert d["docOverflow"] <= 0 and d["misaligned"] == 0 and d["misordered"] == 0
    assert d["clipped"] == [] and d["outside"] == [] and d["overlaps"] == 0
    assert d["chips"].count("CHEBI ✗ bound+label 0.55") == 6  # whole, with its score
    assert d["chips"].count("GO_BP ✗ label 0.58") == 6 and d["chips"].count("CHEBI ✗ spurious 0.51") == 6
    shot = tmp_path / f"report-{width}.png"
    _chromium(tmp_path, page.resolve().as_uri(), width, f"--screenshot={shot}")
    image = Image.open(shot).convert("RGB")
    assert image.size == (width, 2000)
    colours = image.getcolors(maxcolors=1 << 24)
    assert len(colours) > 50  # text, tables, chart colours: not a blank page
    white = next((n for n, c in colours if c == (255, 255, 255)), 0)
    assert white < 0.97 * width * 2000


def test_results_table_from_metrics():
    from biomed_spancat.evaluation.report import results_table

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
