"""The GPU path, tested on a machine without a GPU: each way a GPU can be
unusable is simulated (probes replaced) and its message checked; the GPU
config merges and reaches the torch shim; `--vars.gpu_id 0` picks it; and a
pipeline trained with the GPU settings loads and predicts on the CPU."""
import ctypes
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import spacy
from spacy.schemas import ConfigSchemaTraining
from spacy.tokens import DocBin, Span
from spacy.util import load_model_from_config, registry
from thinc.api import Config, get_current_ops, set_current_ops
from typer.testing import CliRunner

from biomed_spancat.training import gpu
from biomed_spancat.training.gpu import (
    GpuConfigError,
    GpuUnavailable,
    check_config_for_device,
    cupy_package_for,
    find_grad_scaling,
    find_mixed_precision,
    load_training_config,
    merge_gpu_config,
    preflight,
)
from conftest import TINY_TEXTS
from ops_params import HAS_GPU, OPS_PARAMS, make_ops

ROOT = Path(__file__).resolve().parent.parent
BASE_CFG = ROOT / "configs" / "spancat.cfg"
GPU_CFG = ROOT / "configs" / "gpu.cfg"
NO_DRIVER_HERE = gpu._cuda_driver_version() is None


# --- a simulated system: driver, cupy, torch, thinc, each replaceable ---


def make_cupy(built_for=12090, count=1, name=b"NVIDIA A10", memory=24 * 2**30, count_error=None):
    def get_count():
        if count_error is not None:
            raise count_error
        return count

    runtime = SimpleNamespace(
        runtimeGetVersion=lambda: built_for,
        getDeviceCount=get_count,
        getDeviceProperties=lambda i: {"name": name, "totalGlobalMem": memory},
    )
    return SimpleNamespace(__version__="14.2.0", cuda=SimpleNamespace(runtime=runtime))


def make_torch(cuda="12.8", available=True, count=1):
    return SimpleNamespace(
        __version__="2.13.0+cu128" if cuda else "2.13.0+cpu",
        version=SimpleNamespace(cuda=cuda),
        cuda=SimpleNamespace(is_available=lambda: available, device_count=lambda: count),
    )


@pytest.fixture
def system(monkeypatch):
    """A healthy CUDA 12.4 box with one A10; tests break one piece at a time."""
    state = {
        "driver": 12040,
        "modules": {"cupy": make_cupy(), "cupy.cublas": SimpleNamespace(), "torch": make_torch()},
        "dists": ["cupy-cuda12x==14.2.0"],
        "ops": "CupyOps",
    }

    def fake_import(name):
        module = state["modules"].get(name)
        if isinstance(module, BaseException):
            raise module
        if module is None:
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
        return module

    def fake_activate(gpu_id, allocator):
        if isinstance(state["ops"], BaseException):
            raise state["ops"]
        state["activated"] = (gpu_id, allocator)
        return state["ops"]

    monkeypatch.setattr(gpu, "_cuda_driver_version", lambda: state["driver"])
    monkeypatch.setattr(gpu, "_import", fake_import)
    monkeypatch.setattr(gpu, "_cupy_distributions", lambda: list(state["dists"]))
    monkeypatch.setattr(gpu, "_activate", fake_activate)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return state


def _no_driver(s):
    s["driver"] = None


def _no_cupy(s):
    s["modules"]["cupy"] = None
    s["dists"] = []


def _no_cupy_cuda13_driver(s):
    _no_cupy(s)
    s["driver"] = 13000


def _broken_cupy(s):
    s["modules"]["cupy"] = ImportError("libcudart.so.12: cannot open shared object file")


def _two_cupys(s):
    s["dists"] = ["cupy-cuda12x==14.2.0", "cupy-cuda13x==14.2.0"]


def _cupy_for_cuda13(s):
    s["modules"]["cupy"] = make_cupy(built_for=13000)
    s["dists"] = ["cupy-cuda13x==14.2.0"]


def _no_cuda_libs(s):
    # cupy 14's message spans lines; the preflight keeps it on one.
    s["modules"]["cupy.cublas"] = ImportError('Failure finding "libcublas.so.12":\nNo such file\n')


def _no_torch(s):
    s["modules"]["torch"] = None


def _cpu_torch(s):
    s["modules"]["torch"] = make_torch(cuda=None, available=False, count=0)


def _torch_for_cuda13(s):
    s["modules"]["torch"] = make_torch(cuda="13.0", available=False, count=0)


def _torch_blind(s):
    s["modules"]["torch"] = make_torch(available=False, count=0)


def _no_devices(s):
    error = RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
    s["modules"]["cupy"] = make_cupy(count_error=error)


def _gpu_index_too_high(s):
    """Nothing broken: the test asks for GPU 1 of 1."""


def _zero_devices(s):
    s["modules"]["cupy"] = make_cupy(count=0)


def _thinc_stays_on_cpu(s):
    s["ops"] = "NumpyOps"


def _thinc_refuses(s):
    s["ops"] = ValueError("No GPU devices detected")


FAILURES = [
    # (break the system, gpu_id, fragments the message must hold)
    (_no_driver, 0, ["--gpu-id 0", "no NVIDIA driver", "nvidia-smi", "--gpu-id -1"]),
    (_no_cupy, 0, [
        "cupy is not installed", "CUDA 12.4", "install cupy-cuda12x", "requirements-gpu.txt",
    ]),
    (_no_cupy_cuda13_driver, 0, ["cupy is not installed", "CUDA 13.0", "install cupy-cuda13x"]),
    (_broken_cupy, 0, ["cupy-cuda12x==14.2.0 is installed but fails to import", "libcudart.so.12"]),
    (_two_cupys, 0, [
        "several cupy packages", "cupy-cuda12x==14.2.0, cupy-cuda13x==14.2.0", "only cupy-cuda12x",
    ]),
    (_cupy_for_cuda13, 0, [
        "cupy-cuda13x==14.2.0 is built for CUDA 13.0", "supports CUDA 12.4",
        "install cupy-cuda12x", "pip uninstall cupy-cuda13x",
    ]),
    (_no_cuda_libs, 0, [
        "cannot load its CUDA 12 libraries", "libcublas.so.12", 'pip install "cupy-cuda12x[ctk]>=14"',
    ]),
    (_no_torch, 0, ["torch is not installed"]),
    (_cpu_torch, 0, [
        "torch 2.13.0+cpu is a CPU-only build", "torch.version.cuda is None",
        "CUDA 12 build of torch==2.13.0",
    ]),
    (_torch_for_cuda13, 0, ["torch 2.13.0+cu128 (CUDA 13.0) is built for a newer", "(12.4)"]),
    (_torch_blind, 0, ["torch.cuda.is_available() is False", "CUDA_VISIBLE_DEVICES"]),
    (_gpu_index_too_high, 1, ["--gpu-id 1", "device index out of range", "1 GPU(s) visible (ids 0-0)"]),
    (_zero_devices, 0, ["device index out of range", "0 GPU(s) visible (none)"]),
    (_no_devices, 0, ["cannot list the GPUs", "cudaErrorNoDevice"]),
    (_thinc_stays_on_cpu, 0, ["thinc is on NumpyOps", "refusing to fall back to the CPU"]),
    (_thinc_refuses, 0, ["thinc could not switch to the GPU", "No GPU devices detected"]),
]


@pytest.mark.parametrize(
    "breakage,gpu_id,fragments", FAILURES, ids=[f[0].__name__.strip("_") for f in FAILURES]
)
def test_preflight_names_what_is_missing(system, breakage, gpu_id, fragments, capsys):
    breakage(system)
    with pytest.raises(GpuUnavailable) as err:
        preflight(gpu_id)
    for fragment in fragments:
        assert fragment in str(err.value)
    assert "\n" not in str(err.value)
    # Stopped before anything: nothing printed as if the run were going ahead.
    assert "Device:" not in capsys.readouterr().out


def test_preflight_checks_the_driver_before_anything_else(system):
    """With no driver, cupy and torch are never imported (they may hang or crash)."""
    _no_driver(system)
    imported = []
    system_import = gpu._import
    gpu._import = lambda name: imported.append(name) or system_import(name)
    try:
        with pytest.raises(GpuUnavailable):
            preflight(0)
    finally:
        gpu._import = system_import
    assert imported == []


def test_device_index_names_cuda_visible_devices(system, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    with pytest.raises(GpuUnavailable, match=r"CUDA_VISIBLE_DEVICES='3'"):
        preflight(2)


def test_older_cupy_major_than_driver_is_fine(system):
    """Drivers run programs built for older CUDA majors: not an error."""
    system["driver"] = 13000
    report = preflight(0, echo=False)
    assert report.ops == "CupyOps"
    assert report.driver_cuda == "13.0"


def test_preflight_reports_ops_device_and_allocator(system, capsys):
    report = preflight(0, "pytorch")
    assert system["activated"] == (0, "pytorch")
    assert (report.ops, report.device, report.allocator) == ("CupyOps", "NVIDIA A10", "pytorch")
    assert report.cupy == "cupy-cuda12x==14.2.0 (CUDA 12.9)"
    assert report.torch == "torch 2.13.0+cu128 (CUDA 12.8)"
    out = capsys.readouterr().out
    assert "CupyOps on GPU 0 (NVIDIA A10, 24.0 GiB), allocator: pytorch" in out
    assert "driver CUDA 12.4" in out
    assert "sized for 16-24 GB" not in out


def test_preflight_warns_on_a_small_gpu(system, capsys):
    system["modules"]["cupy"] = make_cupy(name=b"Tesla T4 8GB", memory=8 * 2**30)
    assert preflight(0).memory_gib == 8.0
    assert "configs/gpu.cfg is sized for 16-24 GB" in capsys.readouterr().out


def test_preflight_on_the_cpu_reports_numpy_ops(capsys):
    report = preflight(-1)
    assert report.ops == type(get_current_ops()).__name__ == "NumpyOps"
    assert (report.device, report.allocator) == ("CPU", "none")
    assert "Device: NumpyOps on CPU (gpu_id -1), allocator: none" in capsys.readouterr().out


@pytest.mark.skipif(not NO_DRIVER_HERE, reason="an NVIDIA driver is installed here")
def test_preflight_unpatched_on_this_machine_names_the_driver():
    """No probe replaced: this machine has no NVIDIA driver, and preflight says so."""
    with pytest.raises(GpuUnavailable, match="no NVIDIA driver"):
        preflight(0)


def test_driver_probe_reads_libcuda(monkeypatch):
    class FakeLib:
        def cuDriverGetVersion(self, ref):
            ref._obj.value = 12040
            return 0

    def missing(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", missing)
    assert gpu._cuda_driver_version() is None
    monkeypatch.setattr(ctypes, "CDLL", lambda name: FakeLib())
    assert gpu._cuda_driver_version() == 12040


def test_cupy_distributions_lists_every_cupy_wheel(monkeypatch):
    dists = [
        SimpleNamespace(metadata={"Name": n}, version=v)
        for n, v in [
            ("cupy-cuda12x", "14.2.0"),
            ("cupy_cuda13x", "14.2.0"),
            ("numpy", "2.4.6"),
            ("cupyx-extra", "1"),
        ]
    ]
    monkeypatch.setattr(gpu.importlib.metadata, "distributions", lambda: dists)
    assert gpu._cupy_distributions() == ["cupy-cuda12x==14.2.0", "cupy-cuda13x==14.2.0"]


@pytest.mark.parametrize(
    "major,package",
    [(12, "cupy-cuda12x"), (13, "cupy-cuda13x"), (14, "cupy-cuda13x"), (11, "cupy-cuda11x")],
)
def test_cupy_package_for_cuda_major(major, package):
    assert cupy_package_for(major) == package


# --- the ops every numeric test runs on ---


@pytest.fixture
def restore_ops():
    ops = get_current_ops()
    yield
    set_current_ops(ops)


@pytest.mark.parametrize("ops_name", OPS_PARAMS)
def test_preflight_puts_numeric_code_on_the_ops_it_reports(ops_name, restore_ops):
    """Unpatched: CPU -> NumpyOps; on a GPU box, GPU 0 -> CupyOps, and the
    ops numeric code gets (`get_current_ops`) is the one reported."""
    expected = type(make_ops(ops_name)).__name__
    report = preflight(-1 if ops_name == "numpy" else 0, echo=False)
    assert report.ops == expected == type(get_current_ops()).__name__
    xp = get_current_ops().xp
    assert int(xp.arange(4).sum()) == 6


def test_the_cupy_case_is_in_the_suite_and_skips_without_a_gpu():
    cupy = [p for p in OPS_PARAMS if p.values == ("cupy",)]
    assert len(cupy) == 1
    skips = [m for m in cupy[0].marks if m.name == "skipif"]
    assert skips and skips[0].kwargs["reason"] == "no GPU"
    assert skips[0].args == (not HAS_GPU,)


# --- configs ---


def test_merged_config_has_the_gpu_settings():
    config = load_training_config(BASE_CFG, 0, GPU_CFG)
    assert config["system"]["gpu_allocator"] == "pytorch"
    model = config["components"]["transformer"]["model"]
    assert model["@architectures"] == "biomed.BiomedBERT.v1"
    # float32 with no loss scaling: the settings measured on an H100 (docs/gpu.md)
    assert model["mixed_precision"] is False
    assert model["grad_scaler_config"]["enabled"] is False
    assert isinstance(model["grad_scaler_config"]["init_scale"], float)
    assert config["training"]["accumulate_gradient"] == 1
    batcher = config["training"]["batcher"]["@batchers"]
    assert batcher in ("spacy.batch_by_padded.v1", "spacy.batch_by_words.v1")
    # Untouched settings survive the merge.
    assert model["window"] == 128 and config["components"]["spancat"]["spans_key"] == "sc"
    assert find_mixed_precision(config) == find_grad_scaling(config) == []


FP16 = {
    "components.transformer.model.mixed_precision": True,
    "components.transformer.model.grad_scaler_config.enabled": True,
}


def test_fp16_with_an_integer_init_scale_is_refused_on_the_gpu():
    """thinc makes the scale with torch.full((1,), init_scale): an int gives an
    int64 tensor and torch's scale update fails at the first step (seen on an
    H100: "current_scale must be a float tensor")."""
    torch = pytest.importorskip("torch")
    assert torch.full((1,), 32768).dtype == torch.int64
    config = load_training_config(BASE_CFG, 0, GPU_CFG, FP16)
    assert find_grad_scaling(config) == ["components.transformer.model"]
    assert check_config_for_device(config, 0) == []
    bad = load_training_config(
        BASE_CFG, 0, GPU_CFG, {**FP16, "components.transformer.model.grad_scaler_config.init_scale": 32768}
    )
    with pytest.raises(GpuConfigError) as err:
        check_config_for_device(bad, 0)
    assert "init_scale = 32768 is an integer" in str(err.value)
    assert "init_scale = 32768.0" in str(err.value)


def test_cpu_run_does_not_merge_the_gpu_config():
    config = load_training_config(BASE_CFG, -1, GPU_CFG)
    assert config["system"]["gpu_allocator"] is None
    assert config["components"]["transformer"]["model"]["mixed_precision"] is False
    assert find_mixed_precision(config) == find_grad_scaling(config) == []


def test_command_line_overrides_beat_the_gpu_config():
    config = load_training_config(
        BASE_CFG, 0, GPU_CFG, {"training.accumulate_gradient": 1, "training.batcher.size": 500}
    )
    assert config["training"]["accumulate_gradient"] == 1
    assert config["training"]["batcher"]["size"] == 500
    assert config["system"]["gpu_allocator"] == "pytorch"


def test_merged_config_builds_and_reaches_the_torch_shim(tiny_bert):
    """Every key of gpu.cfg is accepted by the functions it configures, and
    mixed precision and the grad scaler arrive in thinc's PyTorch shim."""
    config = load_training_config(BASE_CFG, 0, GPU_CFG, {"paths.transformer": str(tiny_bert)})
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    training = registry.resolve(nlp.config.interpolate()["training"], schema=ConfigSchemaTraining)
    assert training["accumulate_gradient"] == 1
    assert training["gpu_allocator"] == "pytorch"
    shim = nlp.get_pipe("transformer").model.layers[0].shims[0]
    assert shim._mixed_precision is False
    assert shim._grad_scaler._enabled is False
    # fp16 turned on from the command line arrives in the shim too
    fp16 = load_training_config(BASE_CFG, 0, GPU_CFG, {**FP16, "paths.transformer": str(tiny_bert)})
    shim = load_model_from_config(fp16, auto_fill=True).get_pipe("transformer").model.layers[0].shims[0]
    assert shim._mixed_precision is True and shim._grad_scaler._enabled is True


def test_gpu_config_errors_name_the_file(tmp_path):
    base = Config().from_disk(BASE_CFG, interpolate=False)
    with pytest.raises(GpuConfigError, match=r"missing\.cfg: GPU config not found"):
        merge_gpu_config(base, tmp_path / "missing.cfg")
    empty = tmp_path / "empty.cfg"
    empty.write_text("# nothing\n", encoding="utf8")
    with pytest.raises(GpuConfigError, match=r"empty\.cfg: GPU config has no sections"):
        merge_gpu_config(base, empty)
    typo = tmp_path / "typo.cfg"
    typo.write_text("[trainig]\naccumulate_gradient = 3\n", encoding="utf8")
    unknown = r"typo\.cfg: section\(s\) \[trainig\] are not in the training config"
    with pytest.raises(GpuConfigError, match=unknown):
        merge_gpu_config(base, typo)
    with pytest.raises(GpuConfigError, match="--gpu-id 0 needs --gpu-config"):
        load_training_config(BASE_CFG, 0, None)


def test_gradient_scaling_on_the_cpu_is_refused_up_front():
    config = load_training_config(BASE_CFG, 0, GPU_CFG, FP16)
    with pytest.raises(GpuConfigError) as err:
        check_config_for_device(config, -1)
    assert "gradient scaling is on in [components.transformer.model]" in str(err.value)
    assert "--components.transformer.model.grad_scaler_config.enabled false" in str(err.value)
    assert check_config_for_device(config, 0) == []
    # Implied by mixed_precision alone, as spacy-transformers does.
    implied = load_training_config(
        BASE_CFG, -1, overrides={"components.transformer.model.mixed_precision": True}
    )
    assert find_grad_scaling(implied) == ["components.transformer.model"]
    # Scaler off: mixed precision alone trains on the CPU; a note, not an error.
    off = load_training_config(BASE_CFG, 0, GPU_CFG, {"components.transformer.model.mixed_precision": True})
    notes = check_config_for_device(off, -1)
    assert len(notes) == 1 and "does nothing on the CPU" in notes[0]


def test_thinc_grad_scaler_really_needs_cuda():
    """Why the CPU refusal exists: the scaler raises on CPU tensors."""
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    from thinc.api import PyTorchGradScaler

    with pytest.raises(ValueError, match="Gradient scaling is not supported"):
        PyTorchGradScaler(enabled=True).scale(torch.ones(2))


# --- the train CLI ---


@pytest.fixture
def train_script(monkeypatch):
    """scripts/train.py as a module (the project root need not be on sys.path)."""
    import importlib

    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module("scripts.train")


def test_train_cli_stops_before_any_work(system, tmp_path, train_script):
    _no_driver(system)
    out = tmp_path / "training"
    result = CliRunner().invoke(
        train_script.app, [str(BASE_CFG), str(out), "--gpu-id", "0", "--gpu-config", str(GPU_CFG)]
    )
    assert result.exit_code == 1
    assert "no NVIDIA driver" in result.output
    assert not out.exists()


def test_train_cli_refuses_gradient_scaling_on_the_cpu(tmp_path, train_script):
    merged = tmp_path / "merged.cfg"
    load_training_config(BASE_CFG, 0, GPU_CFG, FP16).to_disk(merged)
    result = CliRunner().invoke(train_script.app, [str(merged), str(tmp_path / "out"), "--gpu-id", "-1"])
    assert result.exit_code == 1
    assert "gradient scaling is on" in result.output
    assert not (tmp_path / "out").exists()


def test_weasel_gpu_id_0_trains_with_the_gpu_config(system, monkeypatch, tmp_path, train_script):
    """`weasel run train --vars.gpu_id 0`: the project's own command line, as
    weasel resolves it, reaches spaCy's init with gpu.cfg merged (spaCy's init
    and loop are stubbed: there is no GPU to train on)."""
    from weasel.util import load_project_config

    project = load_project_config(ROOT, overrides={"vars.gpu_id": 0})
    [script] = [c["script"] for c in project["commands"] if c["name"] == "train"]
    args = shlex.split(script[0])
    assert args[:3] == ["python", "-m", "scripts.train"]
    args = args[3:]
    assert args[args.index("--gpu-id") + 1] == "0"
    # training/config.cfg is written by fit-suggester; the base config stands in for it.
    args[0], args[1] = str(BASE_CFG), str(tmp_path / "training")
    for key in ("--paths.train", "--paths.dev"):  # convert's outputs, which this test does not make
        data = tmp_path / f"{key.rsplit('.', 1)[1]}.spacy"
        data.write_bytes(b"")
        args[args.index(key) + 1] = str(data)
    seen = {}
    def fake_init(config, use_gpu):
        seen.update(config=config, gpu=use_gpu)

    monkeypatch.setattr(train_script, "init_nlp", fake_init)
    monkeypatch.setattr(train_script, "train_nlp", lambda *a, **k: seen.update(trained=True))
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(train_script.app, args)
    assert result.exit_code == 0, result.output
    assert "CupyOps on GPU 0" in result.output
    assert seen["gpu"] == 0 and seen["trained"]
    config = seen["config"]
    assert config["system"]["gpu_allocator"] == "pytorch"
    assert config["components"]["transformer"]["model"]["mixed_precision"] is False
    assert config["training"]["batcher"]["size"] == 2000
    # the project's vars still win over gpu.cfg
    assert config["training"]["max_steps"] == project["vars"]["max_steps"]
    assert system["activated"] == (0, "pytorch")


# --- portability: GPU settings, trained on the CPU, packaged, loaded on the CPU ---

LABELED = [
    # (text index, [(start, end, label)]): overlapping spans included
    (0, [(0, 1, "GENE"), (2, 3, "GENE"), (4, 5, "ANAT"), (10, 12, "ANAT"), (10, 11, "TAXON")]),
    (1, [(3, 4, "GENE"), (6, 8, "DISEASE"), (9, 10, "TAXON"), (11, 12, "TAXON")]),
    (2, [(1, 2, "GENE"), (3, 4, "CHEM"), (7, 11, "ANAT"), (9, 11, "ANAT")]),
    (3, [(2, 3, "GENE"), (7, 11, "ANAT")]),
    (4, [(0, 3, "ANAT"), (5, 6, "ANAT"), (7, 10, "ANAT"), (8, 10, "ANAT")]),
]


def _write_docbins(out_dir: Path):
    nlp = spacy.blank("en")
    db = DocBin(store_user_data=True)
    for i, spans in LABELED:
        doc = nlp(TINY_TEXTS[i])
        doc.spans["sc"] = [Span(doc, s, e, label) for s, e, label in spans]
        db.add(doc)
    db.to_disk(out_dir / "train.spacy")
    db.to_disk(out_dir / "dev.spacy")


PREDICT = r"""
import json, sys, warnings
warnings.simplefilter("always")
import spacy
from thinc.api import get_current_ops
text = "BMP2 and BMP4 regulate limb patterning in the mouse embryo."
with warnings.catch_warnings(record=True) as caught:
    nlp = spacy.load(sys.argv[1])
    doc = nlp(text)
fp32 = {"components": {"transformer": {"model": {"mixed_precision": False}}}}
plain = spacy.load(sys.argv[1], config=fp32)
doc2 = plain(text)
model = nlp.config["components"]["transformer"]["model"]
shim = nlp.get_pipe("transformer").model.layers[0].shims[0]
print(json.dumps({
    "ops": type(get_current_ops()).__name__,
    "torch_device": str(next(shim._model.parameters()).device),
    "mixed_precision": model["mixed_precision"],
    "grad_scaler": model["grad_scaler_config"],
    "spans": [(s.start, s.end, s.label_) for s in doc.spans["sc"]],
    "scores": [float(x) for x in doc.spans["sc"].attrs["scores"]],
    "spans_fp32": [(s.start, s.end, s.label_) for s in doc2.spans["sc"]],
    "scores_fp32": [float(x) for x in doc2.spans["sc"].attrs["scores"]],
    "warnings": sorted({str(w.message) for w in caught}),
}))
"""


@pytest.mark.slow
def test_gpu_settings_pipeline_packages_and_predicts_on_cpu(tiny_bert, tmp_path):
    """Train with configs/gpu.cfg merged (fp16 turned on) but --gpu-id -1, package the result
    as a wheel with the architecture bundled, install it into a folder of its
    own and load it in a fresh CPU-only process.

    One setting is overridden for training: the gradient scaler (thinc's
    scaler refuses CPU tensors, see test_thinc_grad_scaler_really_needs_cuda);
    it is written back into the saved config before packaging, so the package
    carries exactly the GPU settings. mixed_precision = true stays on
    throughout: on the CPU torch turns autocast off with a warning.
    Not exercised here (no GPU): weights saved from CUDA tensors; they load
    on the CPU because spacy-transformers reads its torch state with
    map_location = the current torch device, and thinc saves its own
    parameters as numpy arrays.
    """
    _write_docbins(tmp_path)
    merged = tmp_path / "gpu_merged.cfg"
    load_training_config(BASE_CFG, 0, GPU_CFG, FP16).to_disk(merged)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TOKENIZERS_PARALLELISM": "false"}
    train = subprocess.run(
        [sys.executable, "-m", "scripts.train", str(merged), str(tmp_path / "training"),
         "--gpu-id", "-1",
         "--paths.train", str(tmp_path / "train.spacy"), "--paths.dev", str(tmp_path / "dev.spacy"),
         "--paths.transformer", str(tiny_bert),
         "--training.max_steps", "6", "--training.eval_frequency", "3",
         "--components.transformer.model.grad_scaler_config.enabled", "false"],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    assert "Device: NumpyOps on CPU" in train.stdout
    model_dir = tmp_path / "training" / "model-last"
    saved = Config().from_disk(model_dir / "config.cfg", interpolate=False)
    assert saved["training"]["accumulate_gradient"] == 1
    assert saved["system"]["gpu_allocator"] == "pytorch"
    saved["components"]["transformer"]["model"]["grad_scaler_config"]["enabled"] = True
    saved.to_disk(model_dir / "config.cfg")

    packages = tmp_path / "packages"
    packages.mkdir()
    package = subprocess.run(
        [sys.executable, "-m", "spacy", "package", str(model_dir), str(packages),
         "--code", str(ROOT / "components" / "biomed_spancat" / "pipeline" / "architecture.py"),
         "--name", "gpu_portability", "--version", "0.0.1", "--build", "wheel", "--force"],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )
    assert package.returncode == 0, package.stdout[-3000:] + package.stderr[-3000:]
    [wheel] = list(packages.glob("*/dist/*.whl"))
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--target", str(site), str(wheel)],
        env=env, capture_output=True, text=True,
    )
    assert install.returncode == 0, install.stderr[-3000:]

    env_load = {**env, "PYTHONPATH": str(site)}
    predict = subprocess.run(
        [sys.executable, "-c", PREDICT, "en_gpu_portability"],
        cwd=tmp_path, env=env_load, capture_output=True, text=True,
    )
    assert predict.returncode == 0, predict.stderr[-3000:]
    result = json.loads(predict.stdout.strip().splitlines()[-1])
    assert result["ops"] == "NumpyOps"
    assert result["torch_device"] == "cpu"
    assert result["mixed_precision"] is True
    assert result["grad_scaler"]["enabled"] is True
    assert len(result["scores"]) == len(result["spans"])
    assert all(0.0 <= s <= 1.0 for s in result["scores"])
    # On the CPU the flag changes nothing: same spans, same scores.
    assert result["spans"] == result["spans_fp32"]
    assert result["scores"] == pytest.approx(result["scores_fp32"], abs=1e-6)
    # The only warning is torch turning autocast off.
    assert all("Disabling autocast" in w for w in result["warnings"]), result["warnings"]
