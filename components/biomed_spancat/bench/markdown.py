"""BENCHMARKS.md from a run_bench result, through the Jinja2 template
`benchmarks.md.j2` beside this module: the template holds the page's layout,
this module only formats the cells."""

from pathlib import Path
from typing import Any, Dict, List, Optional

from ..util import pct
from .util import NOT_MEASURED_GPU

__all__ = ["render_markdown", "write_markdown", "TEMPLATE"]

TEMPLATE = Path(__file__).parent / "benchmarks.md.j2"


def _share(x: Optional[float]) -> str:
    return "n/a (no bfloat16 unit)" if x is None else f"{x:.1%}"


def _gflop(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{x / 1e9:,.2f}"


def _cell(x: Any) -> str:
    # A pipe inside a cell would split it
    return str(x).replace("|", "\\|")


def _rows(result: Dict[str, Any]) -> Dict[str, Any]:
    conv = result.get("conversion") or {}
    view: Dict[str, Any] = {
        "conversion_rows": [
            (k, f"{c['tasks']:,}", f"{c['tokens']:,}", f"{c['seconds']:.2f}", f"{c['tasks_per_s']:,.0f}",
             f"{c['tokens_per_s']:,.0f}", f"{c['peak_rss_mb']:,.0f}", f"`{c['command']}`")
            for k, c in conv.items() if isinstance(c, dict)
        ],
        "inference_rows": {}, "component_rows": {}, "profile_rows": {}, "limit_rows": {}, "training_rows": {},
    }
    for size, inf in (result.get("inference") or {}).items():
        ratios = inf.get("ratios_vs_peers", {})
        view["inference_rows"][size] = [
            (k, f"{s['words_per_s']:,.0f}", f"{s['docs_per_s']:,.1f}", f"{s['seconds']:.2f}",
             f"{ratios[k]:.2f}x" if k in ratios else "", _cell(s.get("what") or s.get("pipeline") or s.get("config", "")))
            for k, s in inf["systems"].items()
        ]
        view["component_rows"][size] = [
            (c["component"], f"{c['seconds']:.3f}", f"{c['share']:.0%}") for c in inf.get("profile_components", [])
        ]
        view["profile_rows"][size] = [
            (f"`{_cell(p['function'])}`", f"{p['own_s']:.3f}", f"{p['cumulative_s']:.3f}", p["calls"], f"{p['share']:.0%}")
            for p in inf.get("profile_ours") or []
        ]
        lim = inf.get("limit")
        if lim:
            view["limit_rows"][size] = [
                (f"ours, whole pipeline ({lim['pipeline_seconds']:.3f} s)", _gflop(lim["flops_per_s_pipeline"]),
                 _share(lim["share_of_peak_pipeline"]), _share(lim["share_of_matmul_pipeline"])),
                (f"ours, transformer component only ({lim['transformer_seconds']:.3f} s)", _gflop(lim["flops_per_s_transformer"]),
                 _share(lim["share_of_peak_transformer"]), _share(lim["share_of_matmul_transformer"])),
            ]
    for size, tr in (result.get("training") or {}).items():
        view["training_rows"][size] = [
            ("ours", f"{tr['ours']['words_per_s']:,.0f}", f"{tr['ours']['peak_rss_mb']:,.0f}", f"{tr['suggester_recall']['ours']:.2%}"),
            (f"stock, n-grams {tr['stock']['ngram_sizes']}", f"{tr['stock']['words_per_s']:,.0f}",
             f"{tr['stock']['peak_rss_mb']:,.0f}", f"{tr['suggester_recall']['stock']:.2%}"),
        ]
    sug = result.get("suggester")
    view["suggester_rows"] = [
        ("ours", f"{sug['recall']:.2%}", f"{sug['candidates']:,}", f"{sug['per_token']:.3f}"),
        (f"ngram_range(1, {sug['ngram_K']})", f"{sug['ngram_recall']:.2%}", f"{sug['ngram_candidates']:,}", f"{sug['ngram_per_token']:.3f}"),
    ] if sug else []
    view["accuracy_rows"] = [
        (k, pct(a.get("p"), 2), pct(a.get("r"), 2), pct(a.get("f"), 2), f"`{a['path']}`") for k, a in (result.get("accuracy") or {}).items()
    ]
    view["missed_rows"] = [(x["target"], x["where"], x["wanted"], x["shortfall"]) for x in result.get("missed_targets", [])]
    return view


def render_markdown(result: Dict[str, Any]) -> str:
    """BENCHMARKS.md from a run_bench result: header (machine, versions, command),
    one table per section, the profile and the FLOP/s against the peak, the
    accuracy beside them, and every missed target.

    result (Dict[str, Any]): A run_bench result.
    RETURNS (str): The Markdown text.
    """
    from jinja2 import Environment, FileSystemLoader

    env = Environment(loader=FileSystemLoader(str(TEMPLATE.parent)), trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["gflop"] = _gflop
    result = {"targets": {}, "backbones": {}, "seconds": 0, **result}
    text = env.get_template(TEMPLATE.name).render(
        r=result, m=result["machine"], not_measured_gpu=NOT_MEASURED_GPU, **_rows(result)
    )
    # At most one blank line in a row
    lines: List[str] = []
    for line in text.splitlines():
        if line.strip() or (lines and lines[-1].strip()):
            lines.append(line.rstrip())
    return "\n".join(lines).strip() + "\n"


def write_markdown(result: Dict[str, Any], path: Path) -> Path:
    """Write render_markdown(result) to `path`.

    RETURNS (Path): path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown(result), encoding="utf8")
    return path
