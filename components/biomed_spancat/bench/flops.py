"""How close our forward pass comes to the machine's limit: the transformer's
matmul FLOPs counted from its config and the windows it actually runs, the
bfloat16 peak the CPU's units allow (derived from its flags and clock), and
the practical peak (a big bfloat16 torch.matmul, timed).

FLOPs of one window of L wordpieces through a BERT encoder with `layers`
layers, hidden size h and intermediate size i (a multiply-add is 2 FLOPs;
embeddings, LayerNorm, softmax, biases and the heads are left out):

    layers * (L * (8 h^2 + 4 h i) + 4 L^2 h)

8 L h^2: the Q, K, V and output projections (4 matmuls of L x h by h x h);
4 L h i: the feed-forward up and down projections; 4 L^2 h: QK^T and the
attention-weighted sum of V (over all heads).
"""

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

__all__ = [
    "window_flops",
    "FLOPS_FORMULA",
    "encoder_shape",
    "window_lengths",
    "forward_flops",
    "cpu_bf16_peak",
    "parse_cpuinfo",
    "matmul_peak",
]

FLOPS_FORMULA = "layers x (L x (8 h^2 + 4 h i) + 4 L^2 h) per window of L wordpieces"

# FLOPs per cycle per core of one instruction stream, by the bfloat16 unit
AMX_BF16_FLOPS_PER_CYCLE = 1024  # TDPBF16PS: 16x32 by 32x16 bf16 tile (16,384 FLOPs) per 16 cycles
VDPBF16PS_FLOPS = 64  # one 512-bit VDPBF16PS: 16 fp32 lanes x 2 bf16 products x 2 (multiply + add)
ZEN5_FAMILY = 26  # AMD cpu family 1Ah: full-width 512-bit FP pipes, two VDPBF16PS per cycle


def window_flops(layers: int, hidden: int, intermediate: int, length: int) -> int:
    """Matmul FLOPs of one window through the encoder (see the module docstring).

    layers (int): Transformer layers.
    hidden (int): Hidden size h.
    intermediate (int): Feed-forward size i.
    length (int): Wordpieces L in the window, [CLS] and [SEP] included.
    RETURNS (int): FLOPs.
    """
    h, i, n = hidden, intermediate, length
    return layers * (n * (8 * h * h + 4 * h * i) + 4 * n * n * h)


def encoder_shape(backbone: Path) -> Dict[str, int]:
    """layers, hidden and intermediate sizes from the backbone's config.json."""
    cfg = json.loads((Path(backbone) / "config.json").read_text(encoding="utf8"))
    return {"layers": cfg["num_hidden_layers"], "hidden": cfg["hidden_size"], "intermediate": cfg["intermediate_size"]}


def window_lengths(docs: Sequence[Any], backbone: Path, window: int, stride: int, max_wordpieces: int = 512) -> List[int]:
    """Wordpieces of every window our transformer runs over `docs`: spaCy's
    strided spans (`spacy-transformers.strided_spans.v1`, the same window and
    stride), each tokenised by the backbone's tokenizer with [CLS]/[SEP],
    cut at `max_wordpieces`. Padding is not counted.

    docs (Sequence[Doc]): Docs from our pipeline's tokenizer.
    backbone (Path): The transformer folder (its tokenizer).
    window (int): Tokens per window.
    stride (int): Tokens between window starts.
    max_wordpieces (int): The longest window.
    RETURNS (List[int]): One length per window.
    """
    from spacy.util import registry
    from transformers import AutoTokenizer

    get_spans = registry.span_getters.get("spacy-transformers.strided_spans.v1")(window=window, stride=stride)
    tok = AutoTokenizer.from_pretrained(str(backbone))
    texts = [span.text for spans in get_spans(list(docs)) for span in spans]
    if not texts:
        return []
    enc = tok(texts, truncation=True, max_length=max_wordpieces)
    return [len(ids) for ids in enc["input_ids"]]


def forward_flops(lengths: Sequence[int], shape: Dict[str, int]) -> int:
    """Sum of window_flops over windows of the given lengths."""
    return sum(window_flops(shape["layers"], shape["hidden"], shape["intermediate"], n) for n in lengths)


def parse_cpuinfo(text: str) -> Dict[str, Any]:
    """flags, vendor, family (cpu family) and mhz from /proc/cpuinfo's text, each
    from the first line that gives it; a value that does not parse counts as absent
    (0), so an odd kernel or VM gives no peak rather than stopping the bench."""
    facts: Dict[str, Any] = {"flags": [], "vendor": "", "family": 0, "mhz": 0.0}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "flags" and not facts["flags"]:
            facts["flags"] = value.split()
        elif key == "vendor_id" and not facts["vendor"]:
            facts["vendor"] = value.strip()
        elif key == "cpu MHz" and not facts["mhz"]:
            facts["mhz"] = _number(value, float)
        elif key == "cpu family" and not facts["family"]:
            facts["family"] = _number(value, int)
    return facts


def _number(text: str, kind: Callable[[str], Any]) -> Any:
    try:
        return max(kind(text.strip()), 0)
    except ValueError:
        return 0


def _cpu_facts() -> Dict[str, Any]:
    try:
        with open("/proc/cpuinfo", encoding="utf8") as f:
            facts = parse_cpuinfo(f.read())
    except OSError:
        facts = parse_cpuinfo("")
    facts["mhz_source"] = "current cpu MHz in /proc/cpuinfo"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            mhz = _number(line.split(":", 1)[1], float) if line.startswith("CPU max MHz:") else 0
            if mhz:
                facts["mhz"], facts["mhz_source"] = mhz, "lscpu CPU max MHz"
    except (OSError, subprocess.SubprocessError):
        pass
    return facts


def cpu_bf16_peak(threads: int, facts: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """The bfloat16 matmul peak the CPU's units allow for `threads` cores:
    cores x GHz x FLOPs/cycle. AMX-BF16 (flag amx_bf16): 1024 FLOPs/cycle/core;
    AVX512-BF16 (avx512_bf16): 64 FLOPs per VDPBF16PS x 512-bit issues per
    cycle (2 on Intel's two-FMA-port server cores and on AMD Zen 5, cpu family
    26 and later, whose FP pipes are 512 bits wide; 1 on Zen 4, family 25,
    which runs a 512-bit op over both its 256-bit pipes); without either, no
    bfloat16 unit: None.

    threads (int): Cores the bench runs on (torch's thread count).
    facts (Optional[Dict[str, Any]]): flags, vendor, family (cpu family; 0 if
        unknown), mhz, mhz_source (read from /proc/cpuinfo and lscpu when not given).
    RETURNS (Dict[str, Any]): unit, cores, ghz, flops_per_cycle, peak_flops (or None), derivation.
    """
    facts = facts or _cpu_facts()
    flags, ghz = set(facts["flags"]), facts["mhz"] / 1000
    if "amx_bf16" in flags:
        unit, per_cycle, why = "AMX-BF16", AMX_BF16_FLOPS_PER_CYCLE, "TDPBF16PS, 16,384 FLOPs per 16 cycles"
    elif "avx512_bf16" in flags:
        amd, family = facts["vendor"] == "AuthenticAMD", facts.get("family", 0)
        ports = 1 if amd and family < ZEN5_FAMILY else 2
        unit, per_cycle = "AVX512-BF16", VDPBF16PS_FLOPS * ports
        cpu = (facts["vendor"] or "unknown vendor") + (f", cpu family {family}" if amd else "")
        why = f"VDPBF16PS, {VDPBF16PS_FLOPS} FLOPs per 512-bit instruction x {ports} per cycle ({cpu})"
    else:
        return {"unit": None, "cores": threads, "ghz": ghz, "flops_per_cycle": None, "peak_flops": None,
                "derivation": "no bfloat16 unit in the CPU flags (neither amx_bf16 nor avx512_bf16): no bfloat16 peak"}
    if ghz <= 0:
        return {"unit": unit, "cores": threads, "ghz": None, "flops_per_cycle": per_cycle, "peak_flops": None,
                "derivation": f"{unit} ({why}), but no clock speed to multiply by (no cpu MHz in /proc/cpuinfo, "
                              "no CPU max MHz from lscpu): no bfloat16 peak"}
    peak = threads * ghz * 1e9 * per_cycle
    return {
        "unit": unit,
        "cores": threads,
        "ghz": ghz,
        "flops_per_cycle": per_cycle,
        "peak_flops": peak,
        "derivation": f"{threads} cores x {ghz:.2f} GHz ({facts['mhz_source']}) x {per_cycle} FLOPs/cycle ({unit}: {why})",
    }


def matmul_peak(n: int, repeats: int = 3) -> Dict[str, Any]:
    """Time an n x n x n matmul in bfloat16 and float32 with torch (one warm-up,
    best of `repeats`): the practical peak of this machine's matmul kernels.

    n (int): Matrix size.
    repeats (int): Timed runs.
    RETURNS (Dict[str, Any]): n, bfloat16_flops, float32_flops (FLOP/s).
    """
    import torch

    out: Dict[str, Any] = {"n": n, "threads": torch.get_num_threads()}
    for name, dtype in (("bfloat16", torch.bfloat16), ("float32", torch.float32)):
        a = torch.randn(n, n).to(dtype)
        b = torch.randn(n, n).to(dtype)
        torch.matmul(a, b)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            torch.matmul(a, b)
            best = min(best, time.perf_counter() - start)
        out[f"{name}_flops"] = 2 * n**3 / best
    return out


def threads() -> int:
    """Threads torch computes with (the cores the peak is counted for)."""
    try:
        import torch

        return torch.get_num_threads()
    except ImportError:  # pragma: no cover
        return os.cpu_count() or 1
