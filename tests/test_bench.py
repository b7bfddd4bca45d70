"""The benchmark harness (issues 14 and 23): `--quick` end to end on tiny data
and a tiny BERT, every peer included; the JSON schema, the Markdown tables, the
FLOP count and the peak, target checks and bad input.
No timed assertions: only that figures exist, are positive and are consistent."""
import copy
import json
import subprocess
import sys

import pytest
import spacy
from spacy.tokens import DocBin, Span

from biomed_spancat.util import InputFileError
from biomed_spancat.bench import (
    FLOPS_FORMULA,
    NOT_MEASURED_GPU,
    cpu_bf16_peak,
    parse_cpuinfo,
    forward_flops,
    window_flops,
    window_lengths,
    check_targets,
    init_untrained,
    read_spans_f,
    render_markdown,
    stock_spancat_config,
    config_on_backbone,
)
from conftest import CRAFT, TINY_TEXTS

# (token start, token end, label) per TINY_TEXTS entry, overlaps included
SPANS = [
    [(0, 1, "PR"), (2, 3, "PR"), (9, 11, "UBERON"), (9, 10, "NCBITaxon")],
    [(3, 4, "PR"), (3, 5, "SO"), (6, 8, "MONDO")],
    [(1, 2, "PR"), (3, 4, "CHEBI"), (7, 10, "CL")],
    [(2, 3, "PR"), (8, 11, "UBERON")],
    [(0, 3, "CL"), (6, 8, "UBERON")],
]


def _docs(nlp):
    docs = []
    for text, spans in zip(TINY_TEXTS * 3, SPANS * 3):
        doc = nlp(text)
        doc.spans["sc"] = [Span(doc, s, e, label=lab) for s, e, lab in spans]
        docs.append(doc)
    return docs


@pytest.fixture(scope="module")
def bench_inputs(tmp_path_factory, tiny_bert, project_root):
    """Tiny train/dev DocBins and an untrained pipeline of our config on the tiny BERT."""
    root = tmp_path_factory.mktemp("bench_inputs")
    nlp = spacy.blank("en")
    docs = _docs(nlp)
    DocBin(docs=docs).to_disk(root / "train.spacy")
    DocBin(docs=docs[:5]).to_disk(root / "dev.spacy")
    config = project_root / "configs" / "spancat.cfg"
    pipe = init_untrained(config_on_backbone(config, tiny_bert), docs)
    pipe.to_disk(root / "pipeline")
    metrics = root / "dev_metrics.json"
    metrics.write_text(json.dumps({"spans": {"p": 0.5, "r": 0.25, "f": 1 / 3}}), encoding="utf8")
    return {"root": root, "config": config, "pipeline": root / "pipeline", "metrics": metrics}


@pytest.fixture(scope="module")
def quick_run(bench_inputs, tiny_bert, project_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_out")
    craft = CRAFT if (CRAFT / "craft_train.jsonl").exists() else out / "no_craft"
    cmd = [
        sys.executable, "-m", "scripts.bench", str(out / "bench"), "--quick",
        "--pipeline", str(bench_inputs["pipeline"]),
        "--dev", str(bench_inputs["root"] / "dev.spacy"),
        "--train", str(bench_inputs["root"] / "train.spacy"),
        "--config", str(bench_inputs["config"]),
        "--backbone", str(tiny_bert),
        "--craft-dir", str(craft),
        "--metrics", f"ours-dev={bench_inputs['metrics']}",
        "--markdown", str(out / "BENCHMARKS.md"),
        "--train-steps", "2",
    ]
    proc = subprocess.run(cmd, cwd=project_root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "bench" / "bench.json").read_text(encoding="utf8"))
    return {"result": result, "markdown": (out / "BENCHMARKS.md").read_text(encoding="utf8"), "craft": craft}


def test_quick_json_schema(quick_run):
    r = quick_run["result"]
    for key in ("command", "mode", "settings", "machine", "versions", "backbones", "suggester",
                "inference", "training", "accuracy", "gpu", "missed_targets", "conversion", "targets"):
        assert key in r, key
    assert r["mode"] == "quick"
    assert "--quick" in r["command"]
    assert r["machine"]["cores"] >= 1 and "cores" in r["machine"]["hardware"]
    assert r["versions"]["spacy"] == spacy.__version__
    assert set(r["backbones"]) == {"standin", "base"}
    assert r["settings"]["repeats"] >= 3


PEERS = {"stock_spancat", "hf_pipeline", "hf_pipeline_bfloat16", "onnx_float32", "onnx_int8", "gliner"}


def test_quick_inference_ratios(quick_run):
    missed = {(m["target"], m["where"]) for m in quick_run["result"]["missed_targets"]}
    for size, inf in quick_run["result"]["inference"].items():
        systems = inf["systems"]
        assert set(systems) == {"ours", "ours_float32"} | PEERS
        # the unoptimised variant of ours is the same pipeline with the float32 forward pass
        assert "cpu_precision float32" in systems["ours_float32"]["what"]
        assert "cpu_precision auto" in systems["ours"]["what"]
        assert "torch_dtype=torch.bfloat16" in systems["hf_pipeline_bfloat16"]["what"]
        assert "float32" in systems["hf_pipeline"]["what"] and "float32" in systems["onnx_float32"]["what"]
        assert "ONNX Runtime" in systems["onnx_int8"]["what"] and "dynamic int8" in systems["onnx_int8"]["what"]
        assert systems["gliner"]["what"].startswith("untrained GLiNER.from_config")
        assert inf["ratio_vs_float32"] == pytest.approx(systems["ours"]["words_per_s"] / systems["ours_float32"]["words_per_s"])
        for s in systems.values():
            assert len(s["runs_seconds"]) == 3
            assert s["words_per_s"] > 0 and s["docs_per_s"] > 0
            assert s["words_per_s"] == pytest.approx(inf["words"] / s["seconds"])
        ours = systems["ours"]["words_per_s"]
        # The ratio is against the fastest peer, whichever it is, and against each peer
        assert set(inf["ratios_vs_peers"]) == PEERS
        assert inf["best_peer"] == max(PEERS, key=lambda k: systems[k]["words_per_s"])
        assert inf["ratio_vs_best_peer"] == pytest.approx(ours / max(systems[k]["words_per_s"] for k in PEERS))
        assert inf["ratio_vs_best_peer"] == pytest.approx(min(inf["ratios_vs_peers"].values()))
        for k in PEERS:
            assert inf["ratios_vs_peers"][k] == pytest.approx(ours / systems[k]["words_per_s"])
        assert inf["ratio_vs_hf"] == pytest.approx(ours / systems["hf_pipeline"]["words_per_s"])
        assert inf["ratio_vs_stock"] == pytest.approx(ours / systems["stock_spancat"]["words_per_s"])
        where = f"{size} (best peer: {inf['best_peer']})"
        assert (("inference_vs_best_peer", where) in missed) == (inf["ratio_vs_best_peer"] < 2.0)
        # Where our time goes: always, per component, then by function
        comps = inf["profile_components"]
        assert [c["component"] for c in comps] == ["tokenizer", "transformer", "spancat", "sentencizer", "spans_to_ents"]
        assert sum(c["share"] for c in comps) == pytest.approx(1.0)
        assert all(p["own_s"] >= 0 and p["calls"] >= 1 for p in inf["profile_ours"])
        assert f"`{inf['profile_ours'][0]['function']}`" in quick_run["markdown"]


def test_quick_limit(quick_run, bench_inputs, tiny_bert):
    """The FLOPs of our pass are the formula over the windows our transformer
    runs on these texts, and the rates are those FLOPs over the measured time."""
    result = quick_run["result"]
    inf = result["inference"]["standin"]
    lim = inf["limit"]
    nlp = spacy.load(bench_inputs["pipeline"])
    docs = [nlp.make_doc(d.text) for d in DocBin().from_disk(bench_inputs["root"] / "dev.spacy").get_docs(nlp.vocab)]
    lengths = window_lengths(docs, tiny_bert, 128, 96)
    assert lim["shape"] == {"layers": 2, "hidden": 32, "intermediate": 64}
    assert (lim["window"], lim["stride"], lim["windows"]) == (128, 96, len(lengths)) and lim["windows"] == 5
    assert lim["wordpieces"] == sum(lengths)
    assert lim["flops"] == sum(window_flops(2, 32, 64, n) for n in lengths)
    assert lim["flops_per_s_pipeline"] == pytest.approx(lim["flops"] / inf["systems"]["ours"]["seconds"])
    assert lim["pipeline_seconds"] == inf["systems"]["ours"]["seconds"]
    assert lim["matmul"]["bfloat16_flops"] > 0 and lim["matmul"]["float32_flops"] > 0
    assert lim["share_of_matmul_pipeline"] == pytest.approx(lim["flops_per_s_pipeline"] / lim["matmul"]["bfloat16_flops"])
    peak = lim["peak"]
    if peak["peak_flops"]:
        assert peak["peak_flops"] == pytest.approx(peak["cores"] * peak["ghz"] * 1e9 * peak["flops_per_cycle"])
        assert lim["share_of_peak_pipeline"] == pytest.approx(lim["flops_per_s_pipeline"] / peak["peak_flops"])
    md = quick_run["markdown"]
    assert FLOPS_FORMULA in md and peak["derivation"] in md
    assert f"torch.matmul of {lim['matmul']['n']} x {lim['matmul']['n']} matrices" in md
    assert f"Best peer: **{inf['best_peer']}**; ours / best peer **{inf['ratio_vs_best_peer']:.2f}x**" in md
    # the sentence, once in each backbone's section where the measured matmul beat the derived peak
    beaten = [e["limit"] for e in result["inference"].values() if e.get("limit") and e["limit"]["peak"]["peak_flops"]
              and e["limit"]["matmul"]["bfloat16_flops"] > e["limit"]["peak"]["peak_flops"]]
    assert md.count("It beats the derived peak") == len(beaten)


def test_limit_says_when_the_measured_matmul_beats_the_derived_peak(quick_run):
    """A clock read below the one the cores run at makes the derived peak too low: the page says
    so, and only then."""
    result = copy.deepcopy(quick_run["result"])
    limits = [entry["limit"] for entry in result["inference"].values() if entry.get("limit")]
    assert limits
    for lim in limits:  # every backbone's section: each has its own sentence
        lim["peak"] = {**lim["peak"], "peak_flops": 1e11, "ghz": 2.6, "derivation": "a test peak"}
        lim["matmul"]["bfloat16_flops"] = 2e11
    said = "It beats the derived peak: the cores ran faster than the clock read (2.60 GHz)"
    assert render_markdown(result).count(said) == len(limits)
    for lim in limits:
        lim["matmul"]["bfloat16_flops"] = 5e10
    assert "It beats the derived peak" not in render_markdown(result)


@pytest.mark.parametrize(
    "shape,length,flops",
    [
        # BERT-base (BiomedBERT's shape) and MiniLM-L6 (the stand-in), one full window
        ((12, 768, 3072), 128, 22_347_251_712),
        ((6, 384, 1536), 128, 2_868_903_936),
        # 2 x (10 x (8 x 32^2 + 4 x 32 x 64) + 4 x 10^2 x 32)
        ((2, 32, 64), 10, 353_280),
        ((2, 32, 64), 0, 0),
    ],
)
def test_window_flops_known_configs(shape, length, flops):
    assert window_flops(*shape, length) == flops


def test_forward_flops_sums_windows():
    assert forward_flops([10, 10, 0], {"layers": 2, "hidden": 32, "intermediate": 64}) == 2 * 353_280


def test_window_lengths_strided(tiny_bert):
    nlp = spacy.blank("en")
    ten = nlp.make_doc("the mouse liver cells express the protein in the brain")
    assert len(ten) == 10
    # spacy-transformers' strided spans: [0:4], [3:7], [6:10]
    lengths = window_lengths([ten], tiny_bert, 4, 3)
    assert len(lengths) == 3 and all(n >= 4 + 2 for n in lengths)
    assert len(window_lengths([nlp.make_doc("mouse liver cells")], tiny_bert, 4, 3)) == 1
    assert window_lengths([nlp.make_doc("")], tiny_bert, 4, 3) == []


@pytest.mark.parametrize(
    "facts,threads,peak,unit",
    [
        ({"flags": ["avx512f", "avx512_bf16", "amx_bf16"], "vendor": "GenuineIntel", "mhz": 2000.0}, 4, 4 * 2.0e9 * 1024, "AMX-BF16"),
        ({"flags": ["avx512f", "avx512_bf16"], "vendor": "GenuineIntel", "mhz": 3000.0}, 1, 3.0e9 * 128, "AVX512-BF16"),
        ({"flags": ["avx512f", "avx512_bf16"], "vendor": "AuthenticAMD", "family": 25, "mhz": 2600.0}, 2, 2 * 2.6e9 * 64,
         "AVX512-BF16"),  # Zen 4: a 512-bit op takes both 256-bit pipes
        ({"flags": ["avx512f", "avx512_bf16"], "vendor": "AuthenticAMD", "family": 26, "mhz": 2600.0}, 2, 2 * 2.6e9 * 128,
         "AVX512-BF16"),  # Zen 5: two 512-bit pipes
    ],
)
def test_cpu_bf16_peak_derivation(facts, threads, peak, unit):
    out = cpu_bf16_peak(threads, {**facts, "mhz_source": "test"})
    assert out["unit"] == unit and out["peak_flops"] == pytest.approx(peak)
    assert out["derivation"].startswith(f"{threads} cores x {facts['mhz'] / 1000:.2f} GHz (test) x {out['flops_per_cycle']} FLOPs/cycle ({unit}")


def test_cpu_bf16_peak_without_bf16_unit():
    out = cpu_bf16_peak(2, {"flags": ["avx2", "fma"], "vendor": "GenuineIntel", "mhz": 3000.0, "mhz_source": "test"})
    assert out["peak_flops"] is None and out["unit"] is None
    assert "no bfloat16 unit" in out["derivation"]


CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 26
cpu MHz\t\t: 2600.000
flags\t\t: fpu avx512f avx512_bf16

processor\t: 1
vendor_id\t: GenuineIntel
cpu family\t: 6
cpu MHz\t\t: 1200.000
flags\t\t: fpu
"""


def test_parse_cpuinfo_takes_the_first_value_of_each():
    assert parse_cpuinfo(CPUINFO) == {"flags": ["fpu", "avx512f", "avx512_bf16"], "vendor": "AuthenticAMD", "family": 26,
                                      "mhz": 2600.0}


def test_parse_cpuinfo_skips_values_that_do_not_parse():
    odd = CPUINFO.replace("2600.000", "unknown").replace("cpu family\t: 26", "cpu family\t: n/a")
    # the next processor's values serve instead; none at all reads as 0
    assert parse_cpuinfo(odd)["mhz"] == 1200.0 and parse_cpuinfo(odd)["family"] == 6
    assert parse_cpuinfo("cpu MHz : ?\ncpu family : -\n") == {"flags": [], "vendor": "", "family": 0, "mhz": 0}


def test_cpu_bf16_peak_without_a_clock_gives_no_peak():
    out = cpu_bf16_peak(2, {"flags": ["avx512_bf16"], "vendor": "GenuineIntel", "mhz": 0, "mhz_source": "test"})
    assert out["unit"] == "AVX512-BF16" and out["peak_flops"] is None and out["ghz"] is None
    assert out["derivation"].endswith("no clock speed to multiply by (no cpu MHz in /proc/cpuinfo, no CPU max MHz from lscpu): no bfloat16 peak")


def test_quick_training(quick_run):
    r = quick_run["result"]
    k = r["suggester"]["ngram_K"]
    assert r["suggester"]["ngram_recall"] >= r["suggester"]["recall"] - 1e-9
    for size, tr in r["training"].items():
        assert tr["stock"]["ngram_sizes"] == list(range(1, k + 1))
        for name in ("ours", "stock"):
            assert len(tr[name]["runs"]) == 3
            assert tr[name]["words_per_s"] > 0
            assert tr[name]["peak_rss_mb"] > 10
            assert all(run["steps"] == 2 and run["words"] > 0 for run in tr[name]["runs"])
        assert tr["ratio_peak_rss"] == pytest.approx(tr["ours"]["peak_rss_mb"] / tr["stock"]["peak_rss_mb"])


def test_quick_conversion(quick_run):
    conv = quick_run["result"]["conversion"]
    if not (quick_run["craft"] / "craft_train.jsonl").exists():
        assert "not found" in conv["skipped"]
        return
    assert set(conv) == {"jsonl", "prodigy.db"}
    # The same 300 cut tasks, read from a file and from the database
    assert conv["jsonl"]["tasks"] == conv["prodigy.db"]["tasks"] == 300
    assert conv["jsonl"]["tokens"] == conv["prodigy.db"]["tokens"] > 0
    for c in conv.values():
        assert len(c["runs"]) == 3 and c["tasks_per_s"] > 0 and c["peak_rss_mb"] > 10
        assert c["full_corpus"] is False
        assert "scripts.convert" in c["command"]


def test_quick_accuracy_and_gpu(quick_run):
    r = quick_run["result"]
    assert r["accuracy"]["ours-dev"]["f"] == pytest.approx(1 / 3)
    assert r["gpu"] == NOT_MEASURED_GPU


def test_quick_markdown_tables(quick_run):
    md = quick_run["markdown"]
    r = quick_run["result"]
    assert md.startswith("# Benchmarks")
    for heading in ("## Conversion", "## Inference (CPU)", "## Training speed (CPU)", "## Suggester", "## Accuracy", "## GPU", "## Targets"):
        assert heading in md
    assert r["versions"]["spacy-transformers"] != "not installed"
    assert r["machine"]["hardware"] in md and r["versions"]["torch"] in md and "python -m scripts.bench" in md
    assert NOT_MEASURED_GPU in md
    # Every table row has as many cells as its header
    lines = md.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|---") or line.startswith("|--"):
            width = lines[i - 1].count("|")
            j = i + 1
            assert j < len(lines) and lines[j].startswith("|")
            while j < len(lines) and lines[j].startswith("|"):
                assert lines[j].count("|") == width, lines[j]
                j += 1
    assert md.count("| ours |") >= 2  # inference, for each backbone
    assert "33.33" in md  # the given F, as given
    for miss in r["missed_targets"]:
        assert miss["shortfall"] in md


def test_check_targets_shortfall():
    result = {
        "inference": {"standin": {"ratio_vs_hf": 1.0, "ratio_vs_stock": 2.0, "ratio_vs_best_peer": 1.5, "best_peer": "onnx_int8"}},
        "training": {"standin": {"ratio_words_per_s": 1.5, "ratio_peak_rss": 1.0, "stock": {"peak_rss_mb": 1000.0}}},
        "conversion": {"jsonl": {"seconds": 12.5, "full_corpus": True}, "prodigy.db": {"seconds": 3.0, "full_corpus": True}},
    }
    missed = {(m["target"], m["where"]): m for m in check_targets(result)}
    assert set(missed) == {
        ("inference_vs_best_peer", "standin (best peer: onnx_int8)"),
        ("inference_vs_hf", "standin"),
        ("training_memory_vs_stock", "standin"),
        ("conversion_seconds", "jsonl"),
    }
    assert "50% short" in missed[("inference_vs_hf", "standin")]["shortfall"]
    assert "1.50x vs >= 2.0x: 25% short" in missed[("inference_vs_best_peer", "standin (best peer: onnx_int8)")]["shortfall"]
    assert "200 MB too much" in missed[("training_memory_vs_stock", "standin")]["shortfall"]
    assert "2.5 s over" in missed[("conversion_seconds", "jsonl")]["shortfall"]


def test_render_markdown_without_sections():
    result = {
        "mode": "full", "settings": {"repeats": 3}, "command": "python -m scripts.bench out",
        "machine": {"hardware": "CPU, 2 cores", "cpu": "x", "torch_threads": 2, "gpu": None},
        "versions": {"spacy": "3"}, "started": "now", "conversion": {"skipped": "CRAFT exports not found at x"},
        "accuracy": {}, "gpu": NOT_MEASURED_GPU, "missed_targets": [],
    }
    md = render_markdown(result)
    assert "Not measured: CRAFT exports not found" in md
    assert "no figure is made up" in md
    assert "Every measured target met." in md


def test_missing_peer_package_is_reported_not_fatal(bench_inputs, tiny_bert, project_root, tmp_path):
    """Without onnxruntime and gliner the other rows are still measured and the
    missing ones say why, in the result and in the Markdown."""
    probe = (
        "import json, sys\n"
        "sys.modules['onnxruntime'] = None\n"
        "sys.modules['gliner'] = None\n"
        "from dataclasses import replace\n"
        "from pathlib import Path\n"
        "import spacy\n"
        "from spacy.tokens import DocBin\n"
        "from biomed_spancat.bench import QUICK, bench_backbone\n"
        "root, bb, work = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])\n"
        "ours = spacy.load(root / 'pipeline')\n"
        "ours32 = spacy.load(root / 'pipeline', config={'components.transformer.model.cpu_precision': 'float32'})\n"
        "docs = list(DocBin().from_disk(root / 'train.spacy').get_docs(ours.vocab))\n"
        "texts = [d.text for d in docs[:2]]\n"
        "entry = bench_backbone('standin', bb, texts, 10, ours, ours32, 'ours', docs, ['PR', 'CL'], replace(QUICK, repeats=1), work)\n"
        "print(json.dumps({'systems': sorted(entry['systems']), 'not_measured': entry['not_measured'], 'best': entry['best_peer']}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(bench_inputs["root"]), str(tiny_bert), str(tmp_path)],
        cwd=project_root, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["systems"] == ["hf_pipeline", "hf_pipeline_bfloat16", "ours", "ours_float32", "stock_spancat"]
    assert set(out["not_measured"]) == {"onnx_float32", "onnx_int8", "gliner"}
    assert "onnxruntime" in out["not_measured"]["onnx_int8"] and "gliner" in out["not_measured"]["gliner"]
    assert all(why.startswith("not measured: ") for why in out["not_measured"].values())
    assert out["best"] in {"hf_pipeline", "hf_pipeline_bfloat16", "stock_spancat"}


def test_render_markdown_lists_unmeasured_peers():
    row = {"words_per_s": 100.0, "docs_per_s": 1.0, "seconds": 1.0, "what": "x"}
    result = {
        "mode": "full", "settings": {"repeats": 3}, "command": "python -m scripts.bench out",
        "machine": {"hardware": "CPU, 2 cores", "cpu": "x", "torch_threads": 2, "gpu": None},
        "versions": {"spacy": "3"}, "started": "now", "conversion": {"skipped": "left out with --skip"},
        "inference": {"standin": {
            "docs": 1, "words": 100, "systems": {"ours": row, "hf_pipeline": {**row, "words_per_s": 50.0}},
            "best_peer": "hf_pipeline", "ratio_vs_best_peer": 2.0, "ratios_vs_peers": {"hf_pipeline": 2.0},
            "ratio_vs_float32": 1.0, "not_measured": {"gliner": "not measured: No module named 'gliner' (pip install -r requirements.txt)"},
        }},
        "accuracy": {}, "gpu": NOT_MEASURED_GPU, "missed_targets": [], "targets": {"inference_vs_best_peer": 2.0},
    }
    md = render_markdown(result)
    assert "| hf_pipeline | 50 | 1.0 | 1.00 | 2.00x | x |" in md
    assert "- `gliner`: not measured: No module named 'gliner' (pip install -r requirements.txt)" in md
    assert "Best peer: **hf_pipeline**; ours / best peer **2.00x** (target >= 2.0x)" in md


def test_read_spans_f_formats(tmp_path):
    a = tmp_path / "a.json"
    a.write_text(json.dumps({"spans_sc_p": 0.1, "spans_sc_r": 0.2, "spans_sc_f": 0.3}), encoding="utf8")
    assert read_spans_f(a)["f"] == 0.3
    b = tmp_path / "meta.json"
    b.write_text(json.dumps({"performance": {"spans_sc_f": 0.4}}), encoding="utf8")
    assert read_spans_f(b)["f"] == 0.4


@pytest.mark.parametrize(
    "content,reason",
    [(None, "no such metrics file"), ("{not json", "line 1: not valid JSON"), ("[1]", "expected a JSON object (metrics file), got list"),
     ('{"ents_f": 0.5}', "no spans F found")],
)
def test_read_spans_f_bad_input(tmp_path, content, reason):
    path = tmp_path / "m.json"
    if content is not None:
        path.write_text(content, encoding="utf8")
    with pytest.raises(InputFileError) as err:
        read_spans_f(path)
    assert str(path) in str(err.value) and reason in str(err.value)


def test_cli_rejects_bad_metrics_and_skip(tmp_path, project_root, bench_inputs, tiny_bert):
    # Every path option is given: on a fresh clone the defaults (assets/transformer,
    # corpus/) do not exist, and typer would stop with a usage error (exit 2) first.
    base = [sys.executable, "-m", "scripts.bench", str(tmp_path / "o"), "--quick",
            "--dev", str(bench_inputs["root"] / "dev.spacy"), "--train", str(bench_inputs["root"] / "train.spacy"),
            "--config", str(bench_inputs["config"]), "--backbone", str(tiny_bert)]

    def run(*extra):
        proc = subprocess.run(base + list(extra), cwd=project_root, capture_output=True, text=True)
        return proc.returncode, " ".join(proc.stdout.split())  # wasabi wraps long messages

    code, out = run("--metrics", "x=" + str(tmp_path / "missing.json"))
    assert code == 1 and "--metrics x:" in out and "missing.json: no such metrics file" in out
    code, out = run("--metrics", "nopath")
    assert code == 1 and "NAME=PATH, got 'nopath'" in out
    code, out = run("--skip", "everything")
    assert code == 1 and "unknown section(s) everything" in out
    empty = tmp_path / "empty.spacy"
    DocBin().to_disk(empty)
    base[base.index("--dev") + 1] = str(empty)
    code, out = run()
    assert code == 1 and f"{empty}: no docs (the inference texts come from it)" in out
    assert not (tmp_path / "o" / "bench.json").exists()


def test_run_child_peak_rss_is_per_child():
    # A parent holding hundreds of MB (torch, models): a child it starts must not report
    # the parent's memory as its own peak. The parent is a fresh interpreter, so the
    # figures do not depend on what earlier tests left in this pytest process.
    probe = (
        "import json, sys\n"
        "from biomed_spancat.bench import run_child\n"
        "ballast = bytearray(400 * 2**20)\n"
        "ballast[::4096] = b'1' * len(ballast[::4096])\n"
        "small = run_child([sys.executable, '-c', 'pass'])\n"
        "big = run_child([sys.executable, '-c', \"x = bytearray(300 * 2**20); x[::4096] = b'1' * len(x[::4096])\"])\n"
        "failed = run_child([sys.executable, '-c', 'raise SystemExit(3)'])\n"
        "print(json.dumps([small, big, failed]))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    small, big, failed = json.loads(out.stdout.strip().splitlines()[-1])
    assert small["returncode"] == big["returncode"] == 0
    # wait4 reports each child's own peak, not the largest child so far
    assert big["peak_rss_mb"] > 300 > small["peak_rss_mb"]
    assert failed["returncode"] == 3


def test_stock_config_is_init_config_spancat(tiny_bert):
    config = stock_spancat_config(tiny_bert, (1, 2))
    model = config["components"]["transformer"]["model"]
    assert model["@architectures"].startswith("spacy-transformers.TransformerModel")
    assert model["name"] == str(tiny_bert)
    assert model["get_spans"]["window"] == 128 and model["get_spans"]["stride"] == 96
    assert config["components"]["spancat"]["suggester"] == {"@misc": "spacy.ngram_suggester.v1", "sizes": [1, 2]}
    assert config["components"]["spancat"]["model"]["reducer"]["@layers"] == "spacy.mean_max_reducer.v1"
