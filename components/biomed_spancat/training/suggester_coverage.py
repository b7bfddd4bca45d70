"""The gold spans of a DocBin indexed for the suggester, and how much of them
a suggester covers: `coverage_report` measures a suggester on a DocBin next
to spaCy's n-gram range suggester (`scripts.suggester_coverage`,
`scripts.fit_suggester`, the bench).

Project tooling: the packaged pipeline never imports this module.
"""
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy
from spacy.attrs import LOWER, SHAPE
from spacy.tokens import Doc
from thinc.api import Config, NumpyOps, Ops

from ..pipeline.suggester import ROLES
from ..util import read_docs

__all__ = [
    "SUGGESTER_NAME",
    "ROLE_NAMES",
    "SpanCorpus",
    "index_corpus",
    "analyse_spans",
    "candidate_keys",
    "coverage_report",
    "ngram_coverage",
    "format_coverage",
    "load_suggester_from_config",
    "coverage_from_config",
]

SUGGESTER_NAME = "biomed.span_suggester.v1"
ROLE_NAMES = [name for name, _ in ROLES]
PathLike = Union[str, Path]


@dataclass
class SpanCorpus:
    """Tokens and gold spans of many docs, stacked into flat arrays.

    words (List[str]): Distinct lower-case forms; `word_ids` index into it.
    shapes (List[str]): Distinct shapes; `shape_ids` index into it.
    word_ids (numpy.ndarray): Per token, its lower-case form's index.
    shape_ids (numpy.ndarray): Per token, its shape's index.
    doc_starts (numpy.ndarray): Offset of each doc's first token (n_docs + 1 entries).
    gold_starts (numpy.ndarray): Global token offset of each gold span's first token.
    gold_ends (numpy.ndarray): Global exclusive end of each gold span.
    gold_docs (numpy.ndarray): Index of the doc of each gold span.
    gold_labels (List[str]): Label of each gold span.
    """

    words: List[str]
    shapes: List[str]
    word_ids: numpy.ndarray
    shape_ids: numpy.ndarray
    doc_starts: numpy.ndarray
    gold_starts: numpy.ndarray
    gold_ends: numpy.ndarray
    gold_docs: numpy.ndarray
    gold_labels: List[str]

    @property
    def n_tokens(self) -> int:
        return int(self.word_ids.shape[0])

    @property
    def n_docs(self) -> int:
        return int(self.doc_starts.shape[0] - 1)

    @property
    def gold_lengths(self) -> numpy.ndarray:
        return self.gold_ends - self.gold_starts


def index_corpus(docs: Sequence[Doc], spans_key: str) -> SpanCorpus:
    """Stack the tokens and gold spans of `docs` into a SpanCorpus.

    docs (Sequence[Doc]): Docs with gold spans in `doc.spans[spans_key]`.
    spans_key (str): The span group holding the gold spans.
    RETURNS (SpanCorpus): The flat arrays.
    """
    arrays = [doc.to_array([LOWER, SHAPE]).reshape((-1, 2)) for doc in docs]
    doc_sizes = numpy.array([len(doc) for doc in docs], dtype=numpy.int64)
    doc_starts = numpy.concatenate([[0], numpy.cumsum(doc_sizes)]).astype(numpy.int64)
    hashes = numpy.vstack(arrays).astype(numpy.uint64) if arrays else numpy.zeros((0, 2), numpy.uint64)
    g_start: List[int] = []
    g_end: List[int] = []
    g_doc: List[int] = []
    g_label: List[str] = []
    for i, doc in enumerate(docs):
        offset = int(doc_starts[i])
        for span in doc.spans.get(spans_key, []):
            if len(span) == 0:
                continue
            g_start.append(offset + span.start)
            g_end.append(offset + span.end)
            g_doc.append(i)
            g_label.append(span.label_)
    strings = docs[0].vocab.strings if len(docs) else None
    word_hashes, word_ids = numpy.unique(hashes[:, 0], return_inverse=True)
    shape_hashes, shape_ids = numpy.unique(hashes[:, 1], return_inverse=True)
    words = [strings[int(h)] for h in word_hashes] if strings is not None else []
    shape_list = [strings[int(h)] for h in shape_hashes] if strings is not None else []
    return SpanCorpus(
        words=words,
        shapes=shape_list,
        word_ids=numpy.asarray(word_ids, dtype=numpy.int64),
        shape_ids=numpy.asarray(shape_ids, dtype=numpy.int64),
        doc_starts=doc_starts,
        gold_starts=numpy.array(g_start, dtype=numpy.int64),
        gold_ends=numpy.array(g_end, dtype=numpy.int64),
        gold_docs=numpy.array(g_doc, dtype=numpy.int64),
        gold_labels=g_label,
    )


def analyse_spans(corpus: SpanCorpus, top: int = 15) -> Dict[str, Any]:
    """Describe the gold spans: what the suggester's rules are learned from.

    corpus (SpanCorpus): The indexed training docs.
    top (int): How many of the most frequent start/end tokens and shapes to list.
    RETURNS (Dict[str, Any]): Length distribution overall and per label
        (counts, 99th percentile, maximum), the most frequent lower-case forms
        and shapes that start and end multi-token spans, and the frequent
        tokens that no gold span ever contains (boundaries never crossed).
    """
    lengths = corpus.gold_lengths
    per_label: Dict[str, Counter] = defaultdict(Counter)
    for label, length in zip(corpus.gold_labels, lengths.tolist()):
        per_label[label][length] += 1
    multi = lengths >= 2
    starts = corpus.gold_starts[multi]
    ends = corpus.gold_ends[multi] - 1
    words = numpy.array(corpus.words, dtype=object)
    shapes = numpy.array(corpus.shapes, dtype=object)

    def most_common(ids: numpy.ndarray, names: numpy.ndarray) -> List[Tuple[str, int]]:
        return [(str(names[k]), int(c)) for k, c in Counter(ids.tolist()).most_common(top)]

    # A token is "never crossed" if no gold span of 2+ tokens contains it.
    covered = numpy.zeros(corpus.n_tokens + 1, dtype=numpy.int64)
    numpy.add.at(covered, corpus.gold_starts[multi], 1)
    numpy.add.at(covered, corpus.gold_ends[multi], -1)
    in_multi = numpy.cumsum(covered)[:-1] > 0
    word_counts = numpy.bincount(corpus.word_ids, minlength=len(corpus.words))
    word_in_multi = numpy.bincount(corpus.word_ids[in_multi], minlength=len(corpus.words))
    never = numpy.nonzero((word_in_multi == 0) & (word_counts > 0))[0]
    never = never[numpy.argsort(-word_counts[never], kind="stable")][:top]
    return {
        "docs": corpus.n_docs,
        "tokens": corpus.n_tokens,
        "spans": int(lengths.shape[0]),
        "length_counts": dict(sorted(Counter(lengths.tolist()).items())),
        "length_p99": _percentile_length(lengths, 0.99),
        "length_max": int(lengths.max()) if lengths.size else 0,
        "per_label": {
            label: {
                "spans": sum(c.values()),
                "length_counts": dict(sorted(c.items())),
                "length_p99": _percentile_length(numpy.repeat(list(c.keys()), list(c.values())), 0.99),
                "length_max": max(c),
            }
            for label, c in sorted(per_label.items())
        },
        "start_words": most_common(corpus.word_ids[starts], words),
        "start_shapes": most_common(corpus.shape_ids[starts], shapes),
        "end_words": most_common(corpus.word_ids[ends], words),
        "end_shapes": most_common(corpus.shape_ids[ends], shapes),
        "never_crossed_words": [(str(words[k]), int(word_counts[k])) for k in never],
    }


def _percentile_length(lengths: numpy.ndarray, q: float) -> int:
    """The smallest length L such that a fraction q of spans are at most L tokens."""
    if len(lengths) == 0:
        return 0
    ordered = numpy.sort(numpy.asarray(lengths))
    return int(ordered[int(numpy.ceil(q * len(ordered))) - 1])


def candidate_keys(
    suggester: Callable[..., Any], docs: Sequence[Doc], batch_size: int = 256, ops: Optional[Ops] = None
) -> numpy.ndarray:
    """All candidates of `suggester` on `docs`, as sorted int64 codes (doc, start, end).

    docs (Sequence[Doc]): The docs.
    batch_size (int): Docs per suggester call.
    ops (Optional[Ops]): The ops to run the suggester on; NumpyOps by default.
    RETURNS (numpy.ndarray): One code per candidate: (doc * 2**20 + start) * 2**20 + end.
    """
    ops = ops or NumpyOps()
    out = []
    for b in range(0, len(docs), batch_size):
        ragged = suggester(docs[b : b + batch_size], ops=ops)
        data = ops.to_numpy(ragged.dataXd).astype(numpy.int64)
        lengths = ops.to_numpy(ragged.lengths)
        if data.size == 0:
            continue
        doc_idx = numpy.repeat(numpy.arange(b, b + len(lengths)), lengths)
        out.append(_encode(doc_idx, data[:, 0], data[:, 1]))
    return numpy.sort(numpy.concatenate(out)) if out else numpy.zeros(0, dtype=numpy.int64)


def _encode(doc_idx: numpy.ndarray, starts: numpy.ndarray, ends: numpy.ndarray) -> numpy.ndarray:
    return (doc_idx.astype(numpy.int64) << 40) | (starts.astype(numpy.int64) << 20) | ends.astype(numpy.int64)


def ngram_coverage(corpus: SpanCorpus, K: int) -> Tuple[float, int]:
    """Gold recall and candidate count of spaCy's ngram_range(1, K) suggester.

    corpus (SpanCorpus): The indexed docs.
    K (int): The longest n-gram.
    RETURNS (Tuple[float, int]): Recall of the gold spans, and the number of candidates.
    """
    sizes = numpy.diff(corpus.doc_starts)
    n_cand = int(sum(numpy.clip(sizes - k + 1, 0, None).sum() for k in range(1, K + 1)))
    n_gold = corpus.gold_lengths.shape[0]
    recall = float((corpus.gold_lengths <= K).sum() / n_gold) if n_gold else 1.0
    return recall, n_cand


def coverage_report(
    suggester: Callable[..., Any], docs: Sequence[Doc], spans_key: str = "sc", ops: Optional[Ops] = None
) -> Dict[str, Any]:
    """Measure a suggester on gold spans, next to spaCy's n-gram range suggester.

    docs (Sequence[Doc]): Docs with gold spans.
    spans_key (str): The span group holding the gold spans.
    ops (Optional[Ops]): The ops to run the suggester on; NumpyOps by default.
    RETURNS (Dict[str, Any]): Gold-span recall, candidates and candidates per
        token of the suggester; the K of the smallest ngram_range(1, K) that
        reaches the same recall, with its recall and candidates; the ratio of
        the two candidate counts; the 99th-percentile and longest gold span;
        per-label recall; and the n-gram table for K = 1 .. longest span.
    """
    corpus = index_corpus(docs, spans_key)
    cands = candidate_keys(suggester, docs, ops=ops)
    doc_offsets = corpus.doc_starts[corpus.gold_docs]
    gold = _encode(corpus.gold_docs, corpus.gold_starts - doc_offsets, corpus.gold_ends - doc_offsets)
    found = numpy.isin(gold, cands)
    n_gold = int(gold.shape[0])
    n_tok = max(corpus.n_tokens, 1)
    recall = float(found.sum() / n_gold) if n_gold else 1.0
    longest = int(corpus.gold_lengths.max()) if n_gold else 1
    table = []
    for K in range(1, max(longest, 1) + 1):
        r, c = ngram_coverage(corpus, K)
        table.append({"K": K, "recall": r, "candidates": c, "per_token": c / n_tok})
    matching = next((row for row in table if row["recall"] >= recall - 1e-12), table[-1])
    labels: Dict[str, List[int]] = defaultdict(lambda: [0, 0])
    for label, ok in zip(corpus.gold_labels, found.tolist()):
        labels[label][0] += int(ok)
        labels[label][1] += 1
    return {
        "docs": corpus.n_docs,
        "tokens": corpus.n_tokens,
        "gold_spans": n_gold,
        "recall": recall,
        "found": int(found.sum()),
        "candidates": int(cands.shape[0]),
        "per_token": cands.shape[0] / n_tok,
        "ngram_K": matching["K"],
        "ngram_recall": matching["recall"],
        "ngram_candidates": matching["candidates"],
        "ngram_per_token": matching["per_token"],
        "candidate_ratio": cands.shape[0] / max(matching["candidates"], 1),
        "length_p99": _percentile_length(corpus.gold_lengths, 0.99),
        "length_max": longest if n_gold else 0,
        "per_label_recall": {k: v[0] / v[1] for k, v in sorted(labels.items())},
        "ngram_table": table,
    }


def format_coverage(report: Dict[str, Any]) -> List[Tuple[str, str, str, str]]:
    """Rows (suggester, recall, candidates, candidates/token) for printing as a table.

    report (Dict[str, Any]): A `coverage_report`, optionally with the suggester's name.
    RETURNS (List[Tuple[str, str, str, str]]): The suggester's row, then the n-gram range's.
    """
    name = report.get("suggester", SUGGESTER_NAME)
    return [
        (name, f"{report['recall']:.2%}", f"{report['candidates']:,}", f"{report['per_token']:.3f}"),
        (
            f"ngram_range(1, {report['ngram_K']})",
            f"{report['ngram_recall']:.2%}",
            f"{report['ngram_candidates']:,}",
            f"{report['ngram_per_token']:.3f}",
        ),
    ]


def load_suggester_from_config(config_path: PathLike, component: str = "spancat") -> Callable[..., Any]:
    """Build the suggester a training config describes, without building the pipeline.

    config_path (PathLike): A training config (or a packaged pipeline's config.cfg).
    component (str): The spancat component.
    RETURNS (Callable[..., Any]): The suggester.
    """
    from spacy.util import registry

    config_path = Path(config_path)
    if not config_path.exists():
        raise FileNotFoundError(f"{config_path}: config not found")
    config = Config().from_disk(config_path)
    try:
        section = config["components"][component]["suggester"]
    except KeyError:
        raise ValueError(f"{config_path}: no [components.{component}.suggester] section") from None
    return registry.resolve({"suggester": section})["suggester"]


def coverage_from_config(
    config_path: PathLike, data_path: PathLike, spans_key: str = "sc", component: str = "spancat"
) -> Dict[str, Any]:
    """Coverage of the suggester a config describes, on a DocBin.

    config_path (PathLike): A training config or a pipeline's config.cfg.
    data_path (PathLike): The .spacy file with gold spans.
    spans_key (str): The span group holding the gold spans.
    component (str): The spancat component.
    RETURNS (Dict[str, Any]): See `coverage_report`, plus the config and data paths.
    """
    suggester = load_suggester_from_config(config_path, component)
    raw = Config().from_disk(config_path, interpolate=False)
    lang = raw.get("nlp", {}).get("lang", "en")
    docs = read_docs(data_path, lang=lang)
    report = coverage_report(suggester, docs, spans_key)
    report["suggester"] = raw["components"][component]["suggester"].get("@misc", "suggester")
    report["config"] = str(config_path)
    report["data"] = str(data_path)
    return report
