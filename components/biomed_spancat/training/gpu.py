"""The GPU path: a preflight that says exactly why a GPU cannot be used, and
the training config with `configs/gpu.cfg` merged in.

`train`, `evaluate` and pre-annotation call `preflight(gpu_id)` before doing
any work. With `gpu_id >= 0` it either activates CupyOps on that device or
raises `GpuUnavailable` naming the one missing piece (driver, cupy, cupy's
CUDA, torch's CUDA, device index): spaCy's own `require_gpu` would say "CuPy is
not installed" for most of these, and `prefer_gpu` would silently stay on the
CPU. Project tooling, not shipped in the wheel: a loaded pipeline never
imports it.
"""
import copy
import ctypes
import importlib
import importlib.metadata
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

from spacy import util
from thinc.api import Config
from wasabi import msg

__all__ = [
    "CUDA_MAJORS",
    "DeviceReport",
    "GpuConfigError",
    "GpuFacts",
    "GpuUnavailable",
    "check_gpu",
    "check_config_for_device",
    "cupy_package_for",
    "find_grad_scaling",
    "find_mixed_precision",
    "load_training_config",
    "merge_gpu_config",
    "set_spans_key",
    "preflight",
]

# CUDA major -> the cupy wheel built for it (requirements-gpu.txt pins the 12 one).
CUDA_MAJORS: Dict[int, str] = {12: "cupy-cuda12x", 13: "cupy-cuda13x"}
# configs/gpu.cfg is sized for one 16-24 GB GPU; below this, say so.
MIN_MEMORY_GIB = 15.0
CPU_HINT = "or run on the CPU with --gpu-id -1 (weasel: --vars.gpu_id -1)"
PathLike = Union[str, Path]


class GpuUnavailable(RuntimeError):
    """A GPU was asked for (gpu_id >= 0) and cannot be used; the message names
    what is missing and how to fix it."""


class GpuConfigError(ValueError):
    """The GPU override file or the device settings of a config are wrong."""


@dataclass(frozen=True)
class DeviceReport:
    """What a run will compute on, as printed by `preflight`.

    gpu_id (int): -1 for the CPU, else the CUDA device index.
    ops (str): The thinc ops class in use: "NumpyOps", "CupyOps", ...
    device (str): "CPU" or the GPU's name.
    allocator (str): The GPU memory allocator ("pytorch"), or "none" on the CPU.
    driver_cuda (Optional[str]): Highest CUDA version the NVIDIA driver supports.
    cupy (Optional[str]): The cupy package, version and the CUDA it was built for.
    torch (Optional[str]): The torch version and the CUDA it was built for.
    memory_gib (Optional[float]): The GPU's total memory.
    """

    gpu_id: int
    ops: str
    device: str
    allocator: str
    driver_cuda: Optional[str] = None
    cupy: Optional[str] = None
    torch: Optional[str] = None
    memory_gib: Optional[float] = None

    def describe(self) -> str:
        """RETURNS (str): One line: ops, device, allocator (and versions on a GPU)."""
        if self.gpu_id < 0:
            return f"Device: {self.ops} on CPU (gpu_id {self.gpu_id}), allocator: {self.allocator}"
        memory = f", {self.memory_gib:.1f} GiB" if self.memory_gib is not None else ""
        return (
            f"Device: {self.ops} on GPU {self.gpu_id} ({self.device}{memory}), "
            f"allocator: {self.allocator}; driver CUDA {self.driver_cuda}, "
            f"{self.cupy}, {self.torch}"
        )


@dataclass(frozen=True)
class GpuFacts:
    """What `check_gpu` found: driver CUDA (e.g. 12040), cupy and torch with
    the CUDA they were built for, the device's name and memory."""

    driver_cuda: int
    cupy: str
    torch: str
    device: str
    memory_gib: Optional[float]


# --- probes: the only places that touch the system; tests replace them ---


def _cuda_driver_version() -> Optional[int]:
    """RETURNS (Optional[int]): The CUDA version the installed NVIDIA driver
    supports (e.g. 12040 for 12.4), or None when no driver library loads.

    Asked of libcuda directly, so it works before cupy or torch are imported
    and whichever of them is broken.
    """
    names = ["nvcuda.dll"] if sys.platform == "win32" else ["libcuda.so.1", "libcuda.so"]
    for name in names:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        version = ctypes.c_int(0)
        try:
            status = lib.cuDriverGetVersion(ctypes.byref(version))
        except AttributeError:
            continue
        if status == 0 and version.value > 0:
            return int(version.value)
    return None


def _import(name: str) -> Any:
    return importlib.import_module(name)


def _cupy_distributions() -> List[str]:
    """RETURNS (List[str]): Installed cupy wheels as "name==version" (several
    at once overwrite each other's files)."""
    found = set()
    for dist in importlib.metadata.distributions():
        name = (dist.metadata.get("Name") or "").lower().replace("_", "-")
        if name == "cupy" or name.startswith("cupy-"):
            found.add(f"{name}=={dist.version}")
    return sorted(found)


def _activate(gpu_id: int, allocator: Optional[str]) -> str:
    """Switch thinc to the GPU and route cupy's memory through the allocator.

    RETURNS (str): The name of the ops class now current.
    """
    from thinc.api import get_current_ops, require_gpu, set_gpu_allocator

    require_gpu(gpu_id)
    if allocator:
        set_gpu_allocator(allocator)
    return type(get_current_ops()).__name__


def _activate_cpu() -> str:
    from thinc.api import get_current_ops, require_cpu

    require_cpu()
    return type(get_current_ops()).__name__


# --- the checks ---


def _cuda_str(version: int) -> str:
    """12040 -> "12.4" (CUDA's encoding: 1000 * major + 10 * minor)."""
    return f"{version // 1000}.{(version % 1000) // 10}"


def cupy_package_for(cuda_major: int) -> str:
    """The cupy wheel to install for a driver that supports CUDA `cuda_major`.

    cuda_major (int): The major CUDA version `nvidia-smi` shows.
    RETURNS (str): e.g. "cupy-cuda12x".
    """
    if cuda_major in CUDA_MAJORS:
        return CUDA_MAJORS[cuda_major]
    if cuda_major > max(CUDA_MAJORS):
        # Newer drivers run programs built for older CUDA majors.
        return CUDA_MAJORS[max(CUDA_MAJORS)]
    return f"cupy-cuda{cuda_major}x"


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def _fail(gpu_id: int, text: str) -> GpuUnavailable:
    return GpuUnavailable(f"--gpu-id {gpu_id}: {text}")


def check_gpu(gpu_id: int) -> GpuFacts:
    """Check, in order, everything a CUDA run needs; raise on the first gap.

    The order is the order of dependence: the driver, cupy, the CUDA cupy was
    built for, cupy's CUDA libraries, torch's CUDA, then the device index.

    gpu_id (int): The CUDA device index asked for (>= 0).
    RETURNS (GpuFacts): Versions, device name and memory, for the report.
    RAISES (GpuUnavailable): Naming the missing piece and how to fix it.
    """
    driver = _cuda_driver_version()
    if driver is None:
        raise _fail(
            gpu_id,
            "no NVIDIA driver was found (libcuda could not be loaded), so there is "
            "no CUDA GPU to use. Install the NVIDIA driver and check it with "
            f"`nvidia-smi`, {CPU_HINT}.",
        )
    driver_major = driver // 1000
    wanted = cupy_package_for(driver_major)
    dists = _cupy_distributions()
    try:
        cupy = _import("cupy")
    except ImportError as err:
        if isinstance(err, ModuleNotFoundError) and err.name == "cupy":
            raise _fail(
                gpu_id,
                f"cupy is not installed. The NVIDIA driver supports CUDA "
                f"{_cuda_str(driver)}, so install {wanted}: `pip install -r "
                f"requirements-gpu.txt` installs {CUDA_MAJORS[12]} (for CUDA 13 "
                f"install {CUDA_MAJORS[13]} instead), {CPU_HINT}.",
            ) from None
        raise _fail(
            gpu_id,
            f"{', '.join(dists) or 'cupy'} is installed but fails to import ({_one_line(err)}): "
            f"reinstall {wanted} for the driver's CUDA {_cuda_str(driver)}.",
        ) from None
    if len(dists) > 1:
        raise _fail(
            gpu_id,
            f"several cupy packages are installed ({', '.join(dists)}) and overwrite "
            f"each other's files: uninstall them all and install only {wanted}.",
        )
    cupy_name = dists[0] if dists else "cupy"
    try:
        built_for = int(cupy.cuda.runtime.runtimeGetVersion())
    except Exception as err:  # cupy raises its own CUDARuntimeError
        raise _fail(
            gpu_id, f"{cupy_name} cannot report its CUDA version ({_one_line(err)})."
        ) from None
    cupy_desc = f"{cupy_name} (CUDA {_cuda_str(built_for)})"
    if built_for // 1000 > driver_major:
        raise _fail(
            gpu_id,
            f"{cupy_name} is built for CUDA {_cuda_str(built_for)}, but the NVIDIA "
            f"driver supports CUDA {_cuda_str(driver)} at most: install {wanted} "
            f"instead (`pip uninstall {cupy_name.split('==')[0]}` first) or update "
            "the driver.",
        )
    try:
        # thinc needs cuBLAS; when it cannot load, thinc reports "CuPy is not installed".
        _import("cupy.cublas")
    except ImportError as err:
        raise _fail(
            gpu_id,
            f"{cupy_name} is installed but cannot load its CUDA {built_for // 1000} "
            f"libraries ({_one_line(err)}): install the CUDA {built_for // 1000} toolkit, "
            f"or the libraries from PyPI with `pip install \"{cupy_name.split('==')[0]}[ctk]>=14\"` "
            "(cupy 14 wheels find them there).",
        ) from None
    try:
        torch = _import("torch")
    except ImportError as err:
        raise _fail(
            gpu_id, f"torch is not installed ({_one_line(err)}); install a CUDA build of torch==2.13.0."
        ) from None
    torch_cuda = getattr(torch.version, "cuda", None)
    if not torch_cuda:
        raise _fail(
            gpu_id,
            f"torch {torch.__version__} is a CPU-only build (torch.version.cuda is None), "
            "and spacy-transformers runs BiomedBERT in torch: install a CUDA "
            f"{driver_major} build of torch==2.13.0 (https://pytorch.org/get-started/locally/), "
            f"{CPU_HINT}.",
        )
    torch_desc = f"torch {torch.__version__} (CUDA {torch_cuda})"
    if int(str(torch_cuda).split(".")[0]) > driver_major:
        raise _fail(
            gpu_id,
            f"{torch_desc} is built for a newer CUDA than the NVIDIA driver supports "
            f"({_cuda_str(driver)}): install a CUDA {driver_major} build of torch==2.13.0 "
            "or update the driver.",
        )
    if not torch.cuda.is_available():
        raise _fail(
            gpu_id,
            f"{torch_desc} cannot use the GPU (torch.cuda.is_available() is False); "
            "check `nvidia-smi` and CUDA_VISIBLE_DEVICES.",
        )
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as err:
        raise _fail(gpu_id, f"{cupy_name} cannot list the GPUs ({_one_line(err)}).") from None
    count = min(count, int(torch.cuda.device_count()))
    if gpu_id >= count:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        shown = f"; CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else ""
        ids = f"ids 0-{count - 1}" if count else "none"
        raise _fail(
            gpu_id,
            f"device index out of range: {count} GPU(s) visible ({ids}{shown}).",
        )
    props = cupy.cuda.runtime.getDeviceProperties(gpu_id)
    name = props.get("name", b"unknown GPU")
    name = name.decode("utf8", "replace") if isinstance(name, bytes) else str(name)
    memory = props.get("totalGlobalMem")
    memory_gib = float(memory) / 2**30 if memory else None
    return GpuFacts(driver, cupy_desc, torch_desc, name, memory_gib)


def preflight(gpu_id: int, allocator: Optional[str] = "pytorch", *, echo: bool = True) -> DeviceReport:
    """Make the device `gpu_id` current, or stop before any work saying why not.

    Never falls back to the CPU when a GPU was asked for: if thinc does not end
    up on CupyOps, that is an error too.

    gpu_id (int): -1 for the CPU, else the CUDA device index.
    allocator (Optional[str]): GPU memory allocator ("pytorch" shares torch's
        pool with cupy, so neither runs out while the other holds free memory).
    echo (bool): Print the report line.
    RETURNS (DeviceReport): What the run computes on.
    RAISES (GpuUnavailable): When gpu_id >= 0 and the GPU cannot be used.
    """
    if gpu_id < 0:
        report = DeviceReport(gpu_id, _activate_cpu(), "CPU", "none")
        if echo:
            msg.info(report.describe())
        return report
    facts = check_gpu(gpu_id)
    try:
        ops = _activate(gpu_id, allocator)
    except ValueError as err:  # thinc's require_gpu / set_gpu_allocator
        raise _fail(gpu_id, f"thinc could not switch to the GPU: {_one_line(err)}") from None
    if ops != "CupyOps":
        raise _fail(
            gpu_id,
            f"thinc is on {ops} after require_gpu, not CupyOps; refusing to fall "
            f"back to the CPU silently, {CPU_HINT}.",
        )
    report = DeviceReport(
        gpu_id,
        ops,
        facts.device,
        allocator or "cupy (default)",
        _cuda_str(facts.driver_cuda),
        facts.cupy,
        facts.torch,
        facts.memory_gib,
    )
    if echo:
        msg.good(report.describe())
        if report.memory_gib is not None and report.memory_gib < MIN_MEMORY_GIB:
            msg.warn(
                f"GPU {gpu_id} has {report.memory_gib:.1f} GiB; configs/gpu.cfg is sized "
                "for 16-24 GB: lower --training.batcher.size if training runs out of memory"
            )
    return report


# --- configs ---


def merge_gpu_config(config: Config, gpu_config_path: PathLike) -> Config:
    """Merge the GPU override file over a training config.

    Every top-level section of the override must exist in the config, so a
    typo (`[trainig]`) fails here instead of being silently ignored. A block
    naming another registered function (`@batchers`) replaces the whole block.

    config (Config): The training config, not interpolated.
    gpu_config_path (PathLike): The override file (configs/gpu.cfg).
    RETURNS (Config): A new config with the overrides applied.
    RAISES (GpuConfigError): When the file is missing, empty or names unknown sections.
    """
    path = Path(gpu_config_path)
    if not path.is_file():
        raise GpuConfigError(f"{path}: GPU config not found (it is merged in when gpu_id >= 0)")
    gpu = Config().from_disk(path, interpolate=False)
    if not gpu:
        raise GpuConfigError(f"{path}: GPU config has no sections")
    unknown = [section for section in gpu if section not in config]
    if unknown:
        raise GpuConfigError(
            f"{path}: section(s) {', '.join(f'[{s}]' for s in unknown)} are not in the "
            f"training config (which has {', '.join(f'[{s}]' for s in config)})"
        )
    merged = config.merge(gpu)
    # Keep the training config's key order, so `@architectures` still heads its
    # block in the config.cfg saved with the pipeline.
    return Config(_ordered_like(merged, config), section_order=list(config.keys()))


def _ordered_like(node: Dict[str, Any], reference: Any) -> Dict[str, Any]:
    if not isinstance(reference, dict):
        return node
    keys = [k for k in reference if k in node] + [k for k in node if k not in reference]
    return {
        k: _ordered_like(node[k], reference.get(k)) if isinstance(node[k], dict) else node[k]
        for k in keys
    }


def load_training_config(
    config_path: PathLike,
    gpu_id: int = -1,
    gpu_config_path: Optional[PathLike] = None,
    overrides: Optional[Dict[str, Any]] = None,
    spans_key: Optional[str] = None,
) -> Config:
    """Load the training config, merge the GPU file when `gpu_id >= 0`, then
    apply the command-line overrides (so `--training.max_steps` beats both)
    and the spans key.

    config_path (PathLike): The training config.
    gpu_id (int): -1 for the CPU (no merge), else a CUDA device index.
    gpu_config_path (Optional[PathLike]): The GPU override file; required when gpu_id >= 0.
    overrides (Optional[Dict[str, Any]]): Dotted overrides, as `spacy train` takes them.
    spans_key (Optional[str]): The `doc.spans` key to train on (see `set_spans_key`);
        None keeps the config's.
    RETURNS (Config): The config, not interpolated (spaCy's init does that).
    """
    config = util.load_config(config_path, interpolate=False)
    if gpu_id >= 0:
        if gpu_config_path is None:
            raise GpuConfigError(f"--gpu-id {gpu_id} needs --gpu-config (configs/gpu.cfg)")
        config = merge_gpu_config(config, gpu_config_path)
    if overrides:
        config = util.load_config_from_str(config.to_str(), overrides=dict(overrides), interpolate=False)
    if spans_key is not None:
        config = set_spans_key(config, spans_key)
    return config


def set_spans_key(config: Config, spans_key: str) -> Config:
    """Point every spancat component at `doc.spans[spans_key]` and rename the
    score weights to match. The weights are keyed by the span group
    (`spans_sc_f`); left as they are, a run on another key scores 0 at every
    evaluation and model-best is simply the first checkpoint, silently. The
    old names stay with a null weight, so spancat's defaults do not count them.

    config (Config): A training config (not interpolated).
    spans_key (str): The span group holding the gold spans.
    RETURNS (Config): A new config.
    RAISES (GpuConfigError): An empty key, or a config without a spancat component.
    """
    if not spans_key or not spans_key.strip():
        raise GpuConfigError("the spans key is empty")
    data = copy.deepcopy(dict(config))
    components = data.get("components", {})
    old_keys = set()
    for name, block in components.items():
        # the distilled student (student.py) is a spancat too
        if isinstance(block, dict) and block.get("factory") in ("spancat", "biomed_spancat_student_v1"):
            old_keys.add(block.get("spans_key", "sc"))
            block["spans_key"] = spans_key
    if not old_keys:
        raise GpuConfigError("--spans-key: the config has no spancat component")
    weights = data.get("training", {}).get("score_weights")
    if isinstance(weights, dict):
        renamed: Dict[str, Any] = {}
        for key, value in weights.items():
            for old in old_keys - {spans_key}:
                prefix = f"spans_{old}_"
                if key.startswith(prefix):
                    # null, not dropped: spancat's own defaults (spans_sc_*) would count again
                    renamed[key] = None
                    key = f"spans_{spans_key}_{key[len(prefix):]}"
                    break
            renamed[key] = value
        data["training"]["score_weights"] = renamed
    return Config(data)


def _walk(node: Any, path: Tuple[str, ...] = ()) -> Iterator[Tuple[Tuple[str, ...], Dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, path + (key,))


def _precision_blocks(config: Config) -> Iterator[Tuple[str, bool, bool]]:
    for path, node in _walk(dict(config)):
        if "mixed_precision" not in node:
            continue
        mixed = node.get("mixed_precision") is True
        scaler = node.get("grad_scaler_config") or {}
        # spacy-transformers enables the grad scaler with mixed precision unless told otherwise.
        scaling = isinstance(scaler, dict) and scaler.get("enabled", mixed) is True
        yield ".".join(path), mixed, scaling


def find_mixed_precision(config: Config) -> List[str]:
    """Config blocks that turn on mixed precision (fp16 autocast).

    config (Config): A training config.
    RETURNS (List[str]): Dotted paths of the blocks (e.g. "components.transformer.model").
    """
    return [path for path, mixed, _ in _precision_blocks(config) if mixed]


def find_grad_scaling(config: Config) -> List[str]:
    """Config blocks whose gradient scaler is on (explicitly, or implied by
    mixed_precision = true).

    config (Config): A training config.
    RETURNS (List[str]): Dotted paths of the blocks.
    """
    return [path for path, _, scaling in _precision_blocks(config) if scaling]


def _check_init_scale(config: Config, scaling: List[str]) -> None:
    """thinc's scaler makes its scale with `torch.full((1,), init_scale)`: an
    integer there gives an int64 tensor, and torch's scale update then fails at
    the first optimizer step ("current_scale must be a float tensor"), after
    the whole initialisation. Seen on an H100 with torch 2.11."""
    nodes = dict(_walk(dict(config)))
    for block in scaling:
        scaler = nodes.get(tuple(block.split(".")), {}).get("grad_scaler_config") or {}
        value = scaler.get("init_scale")
        if isinstance(value, int) and not isinstance(value, bool):
            raise GpuConfigError(
                f"[{block}.grad_scaler_config] init_scale = {value} is an integer: thinc "
                "then keeps the loss scale as an integer tensor and torch's scale update "
                f"fails at the first step. Write it as a float: init_scale = {float(value)}"
            )


def check_config_for_device(config: Config, gpu_id: int) -> List[str]:
    """Refuse, before training starts, a config that cannot train on the device.

    On the CPU, thinc's gradient scaler raises "Gradient scaling is not
    supported" at the first update, deep in a traceback: say it up front.
    Mixed precision alone is harmless there (torch turns autocast off with a
    warning), so it is a note, not an error; loading and predicting with the
    GPU settings on the CPU works too.

    config (Config): The merged training config.
    gpu_id (int): The device the run uses.
    RETURNS (List[str]): Notes worth printing (mixed precision that does nothing).
    RAISES (GpuConfigError): Gradient scaling on the CPU, or an integer
        init_scale for the scaler on the GPU.
    """
    scaling = find_grad_scaling(config)
    if gpu_id >= 0:
        _check_init_scale(config, scaling)
        return []
    if scaling:
        fixes = " ".join(f"--{b}.grad_scaler_config.enabled false" for b in scaling)
        raise GpuConfigError(
            f"gradient scaling is on in [{'], ['.join(scaling)}] (set, or implied by "
            "mixed_precision = true), and thinc's gradient scaler only works on CUDA "
            f"tensors: train with --gpu-id 0, or turn it off on the CPU with {fixes}"
        )
    return [
        f"mixed_precision = true in [{block}] does nothing on the CPU (torch turns "
        "fp16 autocast off with a warning)"
        for block in find_mixed_precision(config)
    ]
