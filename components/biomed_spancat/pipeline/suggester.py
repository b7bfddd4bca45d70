"""The learned span suggester: few candidates, nearly every gold span.

Spancat can only predict a span its suggester proposes, and its cost grows
with the number and length of the candidates. spaCy's `ngram_range_suggester`
proposes every span up to K tokens; this one proposes the same grid but drops
candidates whose boundaries the training data says never (or almost never)
hold a gold span: a unigram of "the", a two-token span starting at ",", a
long span running through "." and so on. The block lists are learned by
`biomed_spancat.training.suggester_fit` and written into the training config, so they
travel inside the packaged pipeline's config.cfg.

Shipped inside the packaged pipeline (`spacy package --code`), so this module
imports nothing from the project: only spaCy, thinc and numpy.
"""
from functools import partial
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy
from spacy.attrs import LOWER, SHAPE
from spacy.strings import get_string_id
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Ops, get_current_ops
from thinc.types import Ragged

__all__ = [
    "ROLES",
    "BiomedSuggester",
    "build_biomed_suggester",
    "make_block_table",
    "biomed_suggester",
]

Suggester = Callable[..., Ragged]

# Bit flags of what a token may not be, in a candidate span.
NO_SINGLE = 1  # a one-token candidate
NO_START = 2  # the first token of a longer candidate
NO_END = 4  # the last token of a longer candidate
NO_INSIDE = 8  # a token strictly inside a candidate (neither first nor last)
ROLES: Tuple[Tuple[str, int], ...] = (
    ("single", NO_SINGLE),
    ("start", NO_START),
    ("end", NO_END),
    ("inside", NO_INSIDE),
)


def make_block_table(blocked: Sequence[Sequence[str]]) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """Turn per-role block lists into one sorted lookup table.

    Tokens are matched by the hash of their lower-case form or of their shape
    (`Token.lower`, `Token.shape`), which `Doc.to_array` returns without a
    Python loop over tokens. Words and shapes get separate tables: the word
    "x" and the shape "x" (of "a") hash alike but must not block each other.

    blocked (Sequence[Sequence[str]]): The strings blocked in each role, in
        the order of ROLES (single, start, end, inside).
    RETURNS (Tuple[numpy.ndarray, numpy.ndarray]): Sorted uint64 hashes and
        their uint8 role flags (the OR of the roles they are blocked in).
    """
    flags: Dict[int, int] = {}
    for (_, bit), keys in zip(ROLES, blocked):
        for key in keys:
            if not isinstance(key, str):
                raise TypeError(f"block list entries must be strings, got {key!r}")
            if "$" in key:
                # confection doubles "$" on every config save and load, so such
                # an entry would silently change inside a packaged pipeline.
                raise ValueError(
                    f"block list entry {key!r} contains '$', which spaCy's config files do not round-trip"
                )
            h = get_string_id(key)
            flags[h] = flags.get(h, 0) | bit
    keys_array = numpy.array(sorted(flags), dtype=numpy.uint64)
    values = numpy.array([flags[int(k)] for k in keys_array], dtype=numpy.uint8)
    return keys_array, values


def _lookup(xp, table_keys, table_values, hashes):
    """Role flags of each hash (0 where the hash is not in the table)."""
    if table_keys.shape[0] == 0:
        return xp.zeros(hashes.shape, dtype=xp.uint8)
    idx = xp.searchsorted(table_keys, hashes)
    idx = xp.minimum(idx, table_keys.shape[0] - 1)
    return xp.where(table_keys[idx] == hashes, table_values[idx], 0).astype(xp.uint8)


def biomed_suggester(
    docs: Iterable[Doc],
    max_length: int,
    word_table: Tuple[numpy.ndarray, numpy.ndarray],
    shape_table: Tuple[numpy.ndarray, numpy.ndarray],
    *,
    ops: Optional[Ops] = None,
) -> Ragged:
    """Propose the spans of up to `max_length` tokens whose tokens break no block rule.

    The whole batch is handled at once: token hashes of all docs are stacked,
    and a (tokens x lengths) grid of candidates is masked with array
    operations on `ops.xp` (numpy or cupy), so there is no Python loop over
    tokens or lengths. Candidates come out per doc, ordered by start, then end.

    docs (Iterable[Doc]): The docs to suggest spans for.
    max_length (int): The longest candidate, in tokens.
    word_table (Tuple[numpy.ndarray, numpy.ndarray]): `make_block_table` of
        the blocked lower-case forms.
    shape_table (Tuple[numpy.ndarray, numpy.ndarray]): The same for shapes.
    ops (Optional[Ops]): The ops to compute with; the current ops by default.
    RETURNS (Ragged): (start, end) token offsets per doc, end exclusive, as a
        2-D int32 array with one length per doc (empty: shape (0, 0)).
    """
    if ops is None:
        ops = get_current_ops()
    xp = ops.xp
    docs = list(docs)
    doc_lengths = numpy.array([len(doc) for doc in docs], dtype=numpy.int64)
    n_tokens = int(doc_lengths.sum())
    if n_tokens == 0 or max_length < 1:
        lengths = ops.asarray1i(numpy.zeros(len(docs), dtype="i"))
        return Ragged(xp.zeros((0, 0), dtype="i"), lengths)
    vocab = docs[0].vocab
    if LOWER not in vocab.lex_attr_getters or SHAPE not in vocab.lex_attr_getters:
        raise ValueError(
            "biomed.span_suggester.v1 matches tokens by lower-case form and shape, but the docs' "
            "vocab does not compute them (no lex_attr_getters): read DocBins into a pipeline's "
            "vocab, e.g. spacy.blank('en').vocab, not a bare Vocab()"
        )
    # Hashes are collected on the host (Doc.to_array), then moved once to the device.
    attrs = numpy.vstack([doc.to_array([LOWER, SHAPE]) for doc in docs if len(doc)])
    hashes = xp.asarray(attrs.astype(numpy.uint64))
    flags = _lookup(xp, *map(xp.asarray, word_table), hashes[:, 0]) | _lookup(
        xp, *map(xp.asarray, shape_table), hashes[:, 1]
    )
    # int32 offsets: half the memory of the (tokens x lengths) grids below.
    doc_starts_host = numpy.concatenate([[0], numpy.cumsum(doc_lengths)[:-1]]).astype(numpy.int32)
    doc_of = xp.asarray(numpy.repeat(numpy.arange(len(docs), dtype=numpy.int32), doc_lengths))
    doc_start = xp.asarray(doc_starts_host)[doc_of]
    doc_end = doc_start + xp.asarray(doc_lengths.astype(numpy.int32))[doc_of]
    # inside_before[i]: tokens before i that may not be inside a candidate.
    inside = ((flags & NO_INSIDE) != 0).astype(xp.int32)
    inside_before = xp.concatenate([xp.zeros(1, dtype=xp.int32), xp.cumsum(inside, dtype=xp.int32)])

    starts = xp.arange(n_tokens, dtype=xp.int32)[:, None]
    span_lengths = xp.arange(1, max_length + 1, dtype=xp.int32)[None, :]
    ends = starts + span_lengths  # exclusive
    in_doc = ends <= doc_end[:, None]
    last = xp.minimum(ends - 1, n_tokens - 1)
    single_ok = ((flags & NO_SINGLE) == 0)[:, None]
    start_ok = ((flags & NO_START) == 0)[:, None]
    end_ok = ((flags & NO_END) == 0)[last]
    # Interior tokens are start+1 .. end-2; for two tokens the sum is empty.
    inner = xp.minimum(starts + 1, last)
    inside_ok = (inside_before[last] - inside_before[inner]) == 0
    long_ok = start_ok & end_ok & inside_ok
    mask = in_doc & xp.where(span_lengths == 1, single_ok, long_ok)
    rows, cols = xp.nonzero(mask)
    if rows.shape[0] == 0:
        lengths = ops.asarray1i(numpy.zeros(len(docs), dtype="i"))
        return Ragged(xp.zeros((0, 0), dtype="i"), lengths)
    local_starts = rows - doc_start[rows]
    spans = xp.stack([local_starts, local_starts + cols + 1], axis=1).astype("i")
    lengths = xp.bincount(doc_of[rows], minlength=len(docs)).astype("i")
    output = Ragged(spans, lengths)
    assert output.dataXd.ndim == 2
    return output


class BiomedSuggester:
    """The configured suggester: a callable with its settings kept readable.

    max_length (int): The longest candidate, in tokens.
    words (Tuple[List[str], ...]): Blocked lower-case forms per role.
    shapes (Tuple[List[str], ...]): Blocked shapes per role.
    """

    def __init__(self, max_length: int, words, shapes) -> None:
        self.max_length = max_length
        self.words = tuple(list(w) for w in words)
        self.shapes = tuple(list(s) for s in shapes)
        self._suggest = partial(
            biomed_suggester,
            max_length=max_length,
            word_table=make_block_table(self.words),
            shape_table=make_block_table(self.shapes),
        )

    def __call__(self, docs: Iterable[Doc], *, ops: Optional[Ops] = None) -> Ragged:
        return self._suggest(docs, ops=ops)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}={len(w)}+{len(s)}" for (name, _), w, s in zip(ROLES, self.words, self.shapes))
        return f"BiomedSuggester(max_length={self.max_length}, blocked words+shapes: {sizes})"


@registry.misc("biomed.span_suggester.v1")
def build_biomed_suggester(
    max_length: int = 4,
    no_single_words: List[str] = [],
    no_single_shapes: List[str] = [],
    no_start_words: List[str] = [],
    no_start_shapes: List[str] = [],
    no_end_words: List[str] = [],
    no_end_shapes: List[str] = [],
    no_inside_words: List[str] = [],
    no_inside_shapes: List[str] = [],
) -> Suggester:
    """Suggest every span of 1..max_length tokens except those a block rule forbids.

    With empty lists this is exactly `spacy.ngram_range_suggester.v1` with
    min_size 1. Each list names tokens, by lower-case form (`Token.lower_`) or
    by shape (`Token.shape_`), that gold spans in the training data (almost)
    never have in that role; `fit-suggester` learns them for a target recall.

    max_length (int): The longest candidate, in tokens.
    no_single_words (List[str]): Lower-case forms never proposed as one-token spans.
    no_single_shapes (List[str]): Shapes never proposed as one-token spans.
    no_start_words (List[str]): Lower-case forms that never start a longer span.
    no_start_shapes (List[str]): Shapes that never start a longer span.
    no_end_words (List[str]): Lower-case forms that never end a longer span.
    no_end_shapes (List[str]): Shapes that never end a longer span.
    no_inside_words (List[str]): Lower-case forms a span never runs through.
    no_inside_shapes (List[str]): Shapes a span never runs through.
    RETURNS (Suggester): The suggester: `__call__(docs, *, ops=None) -> Ragged`.
    """
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
        raise ValueError(f"max_length must be a positive integer, got {max_length!r}")
    words = (no_single_words, no_start_words, no_end_words, no_inside_words)
    shapes = (no_single_shapes, no_start_shapes, no_end_shapes, no_inside_shapes)
    return BiomedSuggester(max_length, words, shapes)
