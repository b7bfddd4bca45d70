"""Side-by-side benchmarks of this project against its peers (`python -m
scripts.bench`): run.py drives conversion.py, inference.py (peers.py,
flops.py) and training.py; markdown.py renders BENCHMARKS.md from
benchmarks.md.j2. Everything a caller needs is importable from here."""

from .conversion import bench_conversion
from .flops import FLOPS_FORMULA, cpu_bf16_peak, forward_flops, matmul_peak, parse_cpuinfo, window_flops, window_lengths
from .inference import OUR_SYSTEMS, bench_backbone, bench_inference, profile_components, profile_top
from .markdown import render_markdown, write_markdown
from .run import check_inputs, check_targets, run_bench
from .training import bench_training, training_worker
from .util import (
    FULL,
    NOT_MEASURED_GPU,
    QUICK,
    TARGETS,
    BenchSettings,
    build_random_bert,
    config_on_backbone,
    init_untrained,
    machine,
    read_spans_f,
    run_child,
    stock_spancat_config,
    versions,
)

__all__ = [
    "BenchSettings",
    "QUICK",
    "FULL",
    "TARGETS",
    "NOT_MEASURED_GPU",
    "OUR_SYSTEMS",
    "FLOPS_FORMULA",
    "run_bench",
    "write_markdown",
    "render_markdown",
    "check_targets",
    "check_inputs",
    "stock_spancat_config",
    "build_random_bert",
    "run_child",
    "read_spans_f",
    "init_untrained",
    "config_on_backbone",
    "machine",
    "versions",
    "profile_top",
    "profile_components",
    "bench_conversion",
    "bench_inference",
    "bench_backbone",
    "bench_training",
    "training_worker",
    "window_flops",
    "window_lengths",
    "forward_flops",
    "cpu_bf16_peak",
    "parse_cpuinfo",
    "matmul_peak",
]
