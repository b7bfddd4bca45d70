"""The registered transformer architecture: BiomedBERT under spancat.

Shipped inside the packaged pipeline (`spacy package --code`), so this module
imports nothing from the project: only spaCy, thinc and spacy-transformers.
"""
import contextlib
import copy
import multiprocessing
import os
import signal
import sys
import threading
import warnings
from functools import partial
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import torch
from spacy.tokens import Doc, Span
from spacy.util import registry
from spacy_transformers.data_classes import FullTransformerBatch
from spacy_transformers.layers import TransformerModel
from spacy_transformers.layers.hf_shim import HFShim
from thinc.api import Model, xp2torch

__all__ = ["AveragingHFShim", "BIOMEDBERT", "CPU_PRECISIONS", "CPU_PRECISION_KEY", "WORKER_THREADS_ENV", "configure_worker_threads", "create_biomed_bert", "get_strided_windows", "resolve_cpu_precision", "worker_threads"]

SpanGetter = Callable[[Iterable[Doc]], List[List[Span]]]

BIOMEDBERT = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract-fulltext"

CPU_PRECISIONS = ("float32", "bfloat16", "auto")
# The setting's dotted config path in the project's pipelines, for load-time overrides
CPU_PRECISION_KEY = "components.transformer.model.cpu_precision"


def get_strided_windows(docs: Iterable[Doc], window: int, stride: int) -> List[List[Span]]:
    """Cut each doc into windows of `window` tokens starting every `stride` tokens.

    Unlike a plain truncation, nothing past the model's 512 wordpieces is lost:
    a long paragraph becomes several overlapping windows, and spacy-transformers
    averages the overlapping token vectors back together. A doc no longer than
    `window` is one window, so short paragraphs pay no overlap.

    docs (Iterable[Doc]): The docs to cut.
    window (int): Tokens per window.
    stride (int): Tokens between window starts; `stride < window` overlaps.
    RETURNS (List[List[Span]]): The windows of each doc, in order; [] for an empty doc.
    """
    out: List[List[Span]] = []
    for doc in docs:
        n = len(doc)
        if n <= window:
            out.append([doc[:]] if n else [])
            continue
        starts = list(range(0, n - window, stride)) + [n - window]
        # The last window is aligned to the doc end, so no tail is short of context.
        out.append([doc[s : s + window] for s in sorted(set(starts))])
    return out


def configure_strided_windows(window: int, stride: int) -> SpanGetter:
    """Check the window settings and return the span getter that applies them."""
    if window < 1 or stride < 1:
        raise ValueError(f"window ({window}) and stride ({stride}) must be positive")
    if stride > window:
        raise ValueError(
            f"stride ({stride}) > window ({window}) would skip tokens between windows"
        )
    return partial(get_strided_windows, window=window, stride=stride)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 matmuls in hardware (AVX512-BF16 or AMX).

    Elsewhere torch emulates bfloat16, which is slower than float32.
    """
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def resolve_cpu_precision(cpu_precision: str) -> str:
    """Turn the `cpu_precision` setting into "float32" or "bfloat16" on this machine.

    cpu_precision (str): "float32", "bfloat16", or "auto" (bfloat16 where the CPU
        has native bfloat16, else float32).
    RETURNS (str): The precision the CPU forward pass will use here.
    """
    if cpu_precision not in CPU_PRECISIONS:
        raise ValueError(f"cpu_precision must be one of {', '.join(CPU_PRECISIONS)}, got {cpu_precision!r}")
    if cpu_precision == "auto":
        return "bfloat16" if cpu_has_native_bf16() else "float32"
    return cpu_precision


def _precision_forward(
    model: Model, docs: List[Doc], is_train: bool, *, inner: Callable, bfloat16: bool
) -> Tuple[FullTransformerBatch, Callable]:
    """The transformer's forward pass under the CPU precision (see `_with_precision`).

    A module-level function bound with `partial`, not a closure, so the model
    pickles: `nlp.pipe(..., n_process=N)` with the spawn start method sends the
    pipeline to its workers by pickling it.
    """
    configure_worker_threads()
    shim = model.layers[0].shims[0] if model.layers and model.layers[0].shims else None
    if bfloat16 and shim is not None and is_train:
        # the update that follows may change the weights in place: drop the copy
        shim.__dict__.pop(_BF16_COPY, None)
    if not is_train and shim is not None and _on_cpu(shim._model):
        with _SWAP_LOCK, torch.inference_mode():
            original = shim._model
            shim._model = LengthBuckets(_bfloat16_copy(shim) if bfloat16 else original)
            try:
                output, backprop = inner(model, docs, is_train)
            finally:
                shim._model = original
        return (_outputs_to_float32(output, is_train) if bfloat16 else output), backprop
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16), torch.inference_mode(not is_train):
        output, backprop = inner(model, docs, is_train)
    return (_outputs_to_float32(output, is_train) if bfloat16 else output), backprop


def length_groups(lengths: List[int], overhead: int, max_rows: int = 128) -> List[Tuple[int, int]]:
    """Cut rows sorted by length into groups that each pad only to their own longest.

    The cost of a group is its rows times its longest row (the wordpieces it computes)
    plus `overhead` for the call; the cut minimises the total (dynamic programming over
    the sorted lengths; a group has at most `max_rows` rows, which bounds the work).

    lengths (List[int]): Row lengths in ascending order.
    overhead (int): The cost of one more call, in wordpieces.
    max_rows (int): The most rows in one group.
    RETURNS (List[Tuple[int, int]]): (start, end) of each group, in order.
    """
    n = len(lengths)
    best = [0] + [0] * n  # best[j]: the least cost of rows [0, j)
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        best[j], cut[j] = min((best[i] + (j - i) * lengths[j - 1] + overhead, i) for i in range(max(0, j - max_rows), j))
    groups: List[Tuple[int, int]] = []
    j = n
    while j > 0:
        groups.append((cut[j], j))
        j = cut[j]
    return groups[::-1]


class LengthBuckets(torch.nn.Module):
    """Predict a padded batch in groups of rows of similar length.

    spacy-transformers pads every window of a batch to the longest: on CRAFT test in
    batches of 32 paragraphs, 47% of the wordpieces the transformer computed were
    padding. This wrapper sorts the rows by length, runs each group cut to its own
    longest row (`length_groups`), and puts the outputs back in the batch's order and
    shape, zero past each row's end (positions spacy-transformers' alignment never
    reads). Rows whose mask is not ones then zeros (left padding), and outputs other
    than per-row and per-position tensors, are predicted as one batch, as before.
    """

    overhead = 256  # wordpieces: about the time of one more forward call on the CPU

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None, **kwargs: Any) -> Any:
        if attention_mask is None or input_ids.shape[0] < 2:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        rows, width = input_ids.shape
        lengths = attention_mask.sum(dim=1)
        positions = torch.arange(width, device=lengths.device)
        if not torch.equal(attention_mask.bool(), positions[None, :] < lengths[:, None]):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        order = torch.argsort(lengths, stable=True)
        sorted_lengths = [max(int(n), 1) for n in lengths[order].tolist()]
        full: Dict[str, torch.Tensor] = {}
        first = None
        for start, end in length_groups(sorted_lengths, self.overhead):
            idx, cut = order[start:end], sorted_lengths[end - 1]
            extra = {k: v[idx, :cut] if _per_position(v, rows, width) else v for k, v in kwargs.items()}
            out = self.inner(input_ids=input_ids[idx, :cut], attention_mask=attention_mask[idx, :cut], **extra)
            if first is None:
                first = out
                if not all(isinstance(v, torch.Tensor) and v.dim() in (2, 3) for v in out.values()):
                    return self.inner(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
            for key, value in out.items():
                if key not in full:
                    shape = (rows, width, *value.shape[2:]) if value.dim() == 3 else (rows, *value.shape[1:])
                    full[key] = value.new_zeros(shape)
                if value.dim() == 3:
                    full[key][idx, :cut] = value
                else:
                    full[key][idx] = value
        return type(first)(**full)


def _per_position(value: Any, rows: int, width: int) -> bool:
    return isinstance(value, torch.Tensor) and value.dim() >= 2 and tuple(value.shape[:2]) == (rows, width)


# Prediction in bfloat16 runs a copy of the transformer with bfloat16 weights (as a
# model loaded with torch_dtype=torch.bfloat16): faster than autocast, which casts the
# float32 weights at every call and keeps LayerNorm, softmax and the residual adds in
# float32. Training keeps float32 weights under autocast. The copy is made at the first
# prediction after the weights change; the lock keeps threads that share a pipeline
# from seeing each other's swap of the shim's model (in float32 prediction too, which
# swaps in the LengthBuckets wrapper).
_BF16_COPY = "_biomed_bfloat16_copy"
_SWAP_LOCK = threading.RLock()


def _on_cpu(module: torch.nn.Module) -> bool:
    first = next(module.parameters(), None)
    return first is not None and first.device.type == "cpu"


def _weights_key(module: torch.nn.Module) -> Tuple[Tuple[int, int], ...]:
    """Changes when a parameter is replaced or written through torch (load_state_dict,
    use_params); in-place numpy updates are covered by the drop at each training step."""
    return tuple((p.data_ptr(), p._version) for p in module.parameters())


def _bfloat16_copy(shim: Any) -> torch.nn.Module:
    key = _weights_key(shim._model)
    cached = shim.__dict__.get(_BF16_COPY)
    if cached is None or cached[0] != key:
        clone = copy.deepcopy(shim._model).to(torch.bfloat16).eval()
        for p in clone.parameters():
            p.requires_grad_(False)
        cached = shim.__dict__[_BF16_COPY] = (key, clone)
    return cached[1]


def _outputs_to_float32(output: FullTransformerBatch, is_train: bool) -> FullTransformerBatch:
    model_output = output.model_output
    for key, value in list(model_output.items()):
        # The backward pass starts from last_hidden_state itself, so in training it
        # is left as it is (float32 for BERT-family models, which end in a LayerNorm).
        if key == "last_hidden_state" and is_train:
            continue
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != torch.float32:
            model_output[key] = value.float()
    return output


def _with_precision(model: Model, bfloat16: bool) -> Model:
    """Wrap the transformer's forward pass for bfloat16 on the CPU when `bfloat16`,
    in `torch.inference_mode` whenever it predicts, and in CPU prediction run the
    batch's windows in groups of similar length (`LengthBuckets`).

    In training, autocast runs the matmuls in bfloat16 while the weights, their
    gradients and the optimizer stay float32, and LayerNorm, so the last hidden
    state, stays float32. In prediction a bfloat16 copy of the weights runs (see
    `_bfloat16_copy`). Outputs are cast back to float32, since numpy (thinc's CPU
    ops) has no bfloat16. CUDA tensors are not affected: on a GPU,
    `mixed_precision` counts. inference_mode skips the autograd bookkeeping that
    no_grad still does.
    """
    model._func = partial(_precision_forward, inner=model._func, bfloat16=bfloat16)
    return model


# --------------------------------------------------------------------------- parameter averages
class AveragingHFShim(HFShim):
    """spacy-transformers' HFShim whose `use_params` also applies the averages that
    thinc's optimizer keeps for the transformer (`[training.optimizer] use_averages`).

    thinc's PyTorchShim hands each weight to the optimizer under the key
    (shim id, parameter name), but HFShim's `use_params` only looks for string keys
    "pytorch_{id}_{name}", so it never finds them: spaCy evaluated and saved the
    averaged spancat weights over the transformer's last, unaveraged ones. Here the
    optimizer's own keys are read; the model's weights are restored on leaving.
    """

    @contextlib.contextmanager
    def use_params(self, params: Dict[Any, Any]):
        state = {
            name: xp2torch(params[(self.id, name)], device=self.device)
            for name, _ in self._model.named_parameters()
            if (self.id, name) in params
        }
        if not state:
            with super().use_params(params):
                yield
            return
        backup = {key: value.clone() for key, value in self._model.state_dict().items()}
        self._model.load_state_dict(state, strict=False)
        try:
            yield
        finally:
            self._model.load_state_dict(backup)


# --------------------------------------------------------------------------- worker processes
# `nlp.pipe(texts, n_process=N)` runs the pipeline in N child processes. torch's CPU
# thread pool (GNU OpenMP in the Linux wheels) cannot run in a child forked after the
# parent used it: the child's first parallel op waits forever for threads that were
# not copied. And N children that each start one thread per core oversubscribe the
# CPU. So a worker sets its own torch threads before its first forward pass: 1 in a
# forked child (the only safe number there), WORKER_THREADS_ENV (default 1) in a
# spawned one; on Linux it also asks to be ended when its parent dies, since spaCy's
# workers otherwise wait on their queue forever after the parent is killed.
WORKER_THREADS_ENV = "BIOMED_SPANCAT_WORKER_THREADS"
_FORKED = False
_CONFIGURED_PID: Optional[int] = None


def _mark_forked() -> None:
    global _FORKED
    _FORKED = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_mark_forked)


def worker_threads(forked: bool, environ: Optional[Dict[str, str]] = None) -> int:
    """The torch threads a worker process uses.

    forked (bool): Whether the worker was forked from its parent.
    environ (Optional[Dict[str, str]]): The environment (os.environ by default).
    RETURNS (int): 1 in a forked worker; else the positive integer in
        BIOMED_SPANCAT_WORKER_THREADS, 1 when it is unset.
    """
    env = os.environ if environ is None else environ
    raw = env.get(WORKER_THREADS_ENV, "").strip()
    if not raw:
        return 1
    try:
        wanted = int(raw)
    except ValueError:
        raise ValueError(f"{WORKER_THREADS_ENV} must be a positive integer, got {raw!r}") from None
    if wanted < 1:
        raise ValueError(f"{WORKER_THREADS_ENV} must be a positive integer, got {raw!r}")
    if forked and wanted > 1:
        warnings.warn(
            f"{WORKER_THREADS_ENV}={wanted} ignored in a forked worker: torch's thread pool "
            "cannot run there, so it uses 1 thread; use the spawn start method for more"
        )
        return 1
    return wanted


def _die_with_parent() -> None:
    """On Linux, have the kernel end this process when its parent dies."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    parent = multiprocessing.parent_process()
    if parent is not None and not parent.is_alive():
        os._exit(1)  # the parent died before the request took effect


def configure_worker_threads() -> None:
    """Set torch's threads once per process when this is a multiprocessing child.

    Runs at the start of every forward pass and costs one comparison after the
    first. A process that is not a multiprocessing child keeps its threads; a
    child (spaCy's `nlp.pipe` workers, or a Pool worker of yours that runs the
    pipeline) gets `worker_threads()`.
    """
    global _CONFIGURED_PID
    pid = os.getpid()
    if _CONFIGURED_PID == pid:
        return
    if multiprocessing.parent_process() is not None:
        torch.set_num_threads(worker_threads(_FORKED))  # a bad setting raises on every batch
        _die_with_parent()
    _CONFIGURED_PID = pid


@registry.architectures("biomed.BiomedBERT.v1")
def create_biomed_bert(
    name: str = BIOMEDBERT,
    window: int = 128,
    stride: int = 96,
    do_lower_case: bool = True,
    max_wordpieces: int = 512,
    mixed_precision: bool = False,
    grad_scaler_config: Optional[Dict[str, Any]] = None,
    cpu_precision: str = "float32",
    attention_dropout: Optional[float] = None,
) -> Model[List[Doc], FullTransformerBatch]:
    """A BiomedBERT encoder for spancat: spacy-transformers' TransformerModel.v3
    with the settings BiomedBERT needs filled in.

    BiomedBERT's vocabulary is uncased PubMed wordpieces, so the tokenizer must
    lower-case; paragraphs of full-text articles often exceed 512 wordpieces, so
    docs are cut into overlapping token windows rather than truncated.

    name (str): Hub id or local directory of a BERT-family model (BiomedBERT by
        default; the project's `fetch-transformer` step resolves it to a local copy).
    window (int): spaCy tokens per transformer window.
    stride (int): Tokens between window starts (window - stride tokens overlap).
    do_lower_case (bool): Lower-case before wordpiece tokenization (uncased models).
    max_wordpieces (int): The model's position limit, given to the tokenizer; keep
        `window` well under it (128 tokens of PubMed text are ~200 wordpieces). A
        rare window past it (long sequences, formulas) is cut by spacy-transformers'
        `truncate_oversize_splits`, which drops wordpieces, not tokens.
    mixed_precision (bool): Half-precision ops where safe (GPU training).
    grad_scaler_config (dict): Gradient scaling under mixed precision.
    cpu_precision (str): Precision of the forward pass on the CPU: "float32";
        "bfloat16" (training under autocast: matmuls in bfloat16, weights and gradients
        float32; prediction through a bfloat16 copy of the weights, made at the first
        prediction after they change); or "auto", bfloat16 where the CPU has it in hardware
        (AVX512-BF16, AMX), else float32. Override at load time with
        `spacy.load(name, config={"components.transformer.model.cpu_precision": "float32"})`.
    attention_dropout (Optional[float]): Dropout on the attention probabilities in
        training; None keeps the model's own (`attention_probs_dropout_prob`, 0.1 for
        BERT). At 0.0, torch's scaled-dot-product attention takes its fused (flash)
        CPU kernel, which has no dropout and keeps no attention matrices for the
        backward pass: lower training peak memory at the same speed (BENCHMARKS.md).
        Dropout on the hidden states is kept. Prediction is the same either way.
    RETURNS (Model[List[Doc], FullTransformerBatch]): The transformer model.
    """
    tokenizer_config = {
        "use_fast": True,
        "do_lower_case": do_lower_case,
        "model_max_length": max_wordpieces,
    }
    precision = resolve_cpu_precision(cpu_precision)
    transformer_config: Dict[str, Any] = {"output_attentions": False, "output_hidden_states": False}
    if attention_dropout is not None:
        if not 0.0 <= attention_dropout < 1.0:
            raise ValueError(f"attention_dropout must be in [0, 1), got {attention_dropout}")
        transformer_config["attention_probs_dropout_prob"] = float(attention_dropout)
    model = TransformerModel(
        name,
        configure_strided_windows(window, stride),
        tokenizer_config,
        transformer_config,
        mixed_precision=mixed_precision,
        # a fresh dict: spacy-transformers writes into it, and a shared default would leak
        grad_scaler_config=dict(grad_scaler_config or {}),
    )
    # same shim and state, with a use_params that finds the optimizer's averages
    model.layers[0].shims[0].__class__ = AveragingHFShim
    return _with_precision(model, bfloat16=precision == "bfloat16")
