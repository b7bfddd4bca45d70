"""The registered transformer architecture: BiomedBERT under spancat.

Shipped inside the packaged pipeline (`spacy package --code`), so this module
imports nothing from the project: only spaCy, thinc and spacy-transformers.
"""
from functools import partial
from typing import Any, Callable, Dict, Iterable, List, Optional

from spacy.tokens import Doc, Span
from spacy.util import registry
from spacy_transformers.data_classes import FullTransformerBatch
from spacy_transformers.layers import TransformerModel
from thinc.api import Model

__all__ = ["BIOMEDBERT", "create_biomed_bert", "get_strided_windows"]

SpanGetter = Callable[[Iterable[Doc]], List[List[Span]]]

BIOMEDBERT = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract-fulltext"


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


@registry.architectures("biomed.BiomedBERT.v1")
def create_biomed_bert(
    name: str = BIOMEDBERT,
    window: int = 128,
    stride: int = 96,
    do_lower_case: bool = True,
    max_wordpieces: int = 512,
    mixed_precision: bool = False,
    grad_scaler_config: Optional[Dict[str, Any]] = None,
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
    RETURNS (Model[List[Doc], FullTransformerBatch]): The transformer model.
    """
    tokenizer_config = {
        "use_fast": True,
        "do_lower_case": do_lower_case,
        "model_max_length": max_wordpieces,
    }
    return TransformerModel(
        name,
        configure_strided_windows(window, stride),
        tokenizer_config,
        {"output_attentions": False, "output_hidden_states": False},
        mixed_precision=mixed_precision,
        # a fresh dict: spacy-transformers writes into it, and a shared default would leak
        grad_scaler_config=dict(grad_scaler_config or {}),
    )
