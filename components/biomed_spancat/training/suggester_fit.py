"""Learn the suggester's settings from training spans.

`fit_suggester_settings` reads the gold spans of a training DocBin and picks,
for each role a token can play in a candidate (a one-token span, the first or
last token of a longer one, a token inside one), the lower-case forms and
shapes that gold spans (almost) never have in that role. Blocking them removes
candidates; the fit removes as many as it can while the training recall stays
at or above a target. `write_suggester_config` puts the settings into a
training config, so they travel inside the packaged pipeline. Coverage is
measured by `suggester_coverage`.

Project tooling: the packaged pipeline never imports this module.
"""
import heapq
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy
from spacy.tokens import Doc
from thinc.api import Config

from ..pipeline.suggester import build_biomed_suggester
from .suggester_coverage import (
    ROLE_NAMES,
    SUGGESTER_NAME,
    SpanCorpus,
    analyse_spans,
    coverage_report,
    index_corpus,
    ngram_coverage,
)
from ..util import read_docs

__all__ = [
    "FitResult",
    "fit_suggester_settings",
    "holdout_split",
    "calibrate_rule_risk",
    "write_suggester_config",
    "fit_suggester_config",
]

PathLike = Union[str, Path]


@dataclass
class FitResult:
    """Fitted settings and what they achieve on the training data.

    settings (Dict[str, Any]): Keyword arguments of `biomed.span_suggester.v1`.
    train_recall (float): Recall of the training gold spans.
    train_candidates (int): Candidates proposed on the training docs.
    ngram_candidates (int): Candidates of ngram_range(1, max_length) on the same docs.
    lost_by_length (int): Gold spans longer than max_length.
    lost_by_rules (int): Gold spans removed by the block lists.
    rule_risk (float): The expected loss per rule the fit charged.
    trials (List[Dict[str, Any]]): Per max_length tried: its recall and candidates.
    calibration (List[Dict[str, Any]]): Per rule_risk tried on held-out
        documents (when it was calibrated): held-out recall and candidates/token.
    """

    settings: Dict[str, Any]
    train_recall: float
    train_candidates: int
    ngram_candidates: int
    lost_by_length: int
    lost_by_rules: int
    rule_risk: float = 0.0
    trials: List[Dict[str, Any]] = field(default_factory=list)
    calibration: List[Dict[str, Any]] = field(default_factory=list)


class _Grid:
    """The (token, length) grid of candidate spans and which are still alive.

    Cell (i, l - 1) is the span of l tokens starting at global token i. The
    helpers give, for a set of token positions, the cells in which those
    tokens play a role, so gains can be counted and cells removed.
    """

    def __init__(self, corpus: SpanCorpus, max_length: int) -> None:
        self.L = max_length
        n = corpus.n_tokens
        doc_of = numpy.repeat(numpy.arange(corpus.n_docs), numpy.diff(corpus.doc_starts))
        doc_end = corpus.doc_starts[1:][doc_of]
        ends = numpy.arange(n)[:, None] + numpy.arange(1, max_length + 1)[None, :]
        self.alive = numpy.ascontiguousarray(ends <= doc_end[:, None])
        self.n_tokens = n
        self._offset_cache: Dict[str, numpy.ndarray] = {}

    def _offsets(self, role: str) -> numpy.ndarray:
        """Flat grid offsets, relative to token i at row i, of the cells where i plays `role`."""
        L = self.L
        if role == "single":
            pairs = [(0, 0)]
        elif role == "start":
            pairs = [(0, length - 1) for length in range(2, L + 1)]
        elif role == "end":
            pairs = [(-(length - 1), length - 1) for length in range(2, L + 1)]
        elif role == "inside":
            pairs = [(-o, length - 1) for length in range(3, L + 1) for o in range(1, length - 1)]
        else:
            raise ValueError(f"unknown role {role!r}; expected one of {ROLE_NAMES}")
        return numpy.array([row * L + col for row, col in pairs], dtype=numpy.int64)

    def cells(self, role: str, positions: numpy.ndarray) -> numpy.ndarray:
        """Flat indices into `alive` of the cells where `positions` play `role`."""
        if role not in self._offset_cache:
            self._offset_cache[role] = self._offsets(role)
        flat = (positions[:, None] * self.L + self._offset_cache[role][None, :]).ravel()
        # Cells before the first token belong to no span (later doc ends are already dead).
        return flat[flat >= 0]

    def token_gains(self, role: str) -> numpy.ndarray:
        """Per token, the live cells in which it plays `role` (all tokens at once)."""
        L, n, alive = self.L, self.n_tokens, self.alive
        out = numpy.zeros(n, dtype=numpy.int64)
        if role == "single":
            out += alive[:, 0]
        elif role == "start":
            out += alive[:, 1:].sum(axis=1)
        elif role == "end":
            for length in range(2, L + 1):
                out[length - 1 :] += alive[: n - length + 1, length - 1]
        elif role == "inside":
            for length in range(3, L + 1):
                for o in range(1, length - 1):
                    out[o:] += alive[: n - o, length - 1]
        else:
            raise ValueError(f"unknown role {role!r}; expected one of {ROLE_NAMES}")
        return out

    def gain(self, role: str, positions: numpy.ndarray) -> int:
        return int(numpy.count_nonzero(self.alive.ravel()[self.cells(role, positions)]))

    def remove(self, role: str, positions: numpy.ndarray) -> None:
        self.alive.ravel()[self.cells(role, positions)] = False


def _csr(keys: numpy.ndarray, values: numpy.ndarray, n_keys: int) -> List[numpy.ndarray]:
    """Group `values` by `keys` into one array per key."""
    order = numpy.argsort(keys, kind="stable")
    bounds = numpy.searchsorted(keys[order], numpy.arange(n_keys + 1))
    sorted_values = values[order]
    return [sorted_values[bounds[k] : bounds[k + 1]] for k in range(n_keys)]


def _role_gold(corpus: SpanCorpus, token_keys: numpy.ndarray, n_keys: int) -> Dict[str, List[numpy.ndarray]]:
    """Per role and key, the indices of the gold spans having that key in that role."""
    lengths = corpus.gold_lengths
    idx = numpy.arange(lengths.shape[0])
    single = lengths == 1
    multi = lengths >= 2
    out = {
        "single": _csr(token_keys[corpus.gold_starts[single]], idx[single], n_keys),
        "start": _csr(token_keys[corpus.gold_starts[multi]], idx[multi], n_keys),
        "end": _csr(token_keys[corpus.gold_ends[multi] - 1], idx[multi], n_keys),
    }
    long_idx = idx[lengths >= 3]
    inner_len = lengths[long_idx] - 2
    gold_of = numpy.repeat(long_idx, inner_len)
    # Positions start+1 .. end-2 of each long span, without a Python loop.
    first = numpy.repeat(corpus.gold_starts[long_idx] + 1, inner_len)
    step = numpy.arange(gold_of.shape[0]) - numpy.repeat(numpy.cumsum(inner_len) - inner_len, inner_len)
    if gold_of.size:
        pairs = numpy.unique(numpy.stack([token_keys[first + step], gold_of], axis=1), axis=0)
    else:
        pairs = numpy.zeros((0, 2), dtype=numpy.int64)
    out["inside"] = _csr(pairs[:, 0], pairs[:, 1], n_keys)
    return out


def fit_suggester_settings(
    docs: Sequence[Doc],
    spans_key: str = "sc",
    target_recall: float = 0.999,
    min_count: int = 10,
    rule_risk: Optional[float] = None,
    min_gain_per_loss: float = 100.0,
    max_lengths: Optional[Iterable[int]] = None,
    use_shapes: bool = True,
    progress: Optional[Callable[[str], None]] = None,
) -> FitResult:
    """Learn block lists that remove the most candidates at a training recall target.

    For each max_length tried, every (role, key) pair is scored by how many
    candidates blocking it removes per gold span it loses, and pairs are taken
    greedily (lazily re-scored, since removals overlap) while the training
    recall stays at or above `target_recall`. Pairs that lose no gold span
    come first. A rule that loses no training span may still lose spans in
    unseen text (a word annotated in one article and not in the others), so
    each rule is charged `rule_risk` spans on top of its training losses:
    the budget then buys few rules, each removing many candidates, which is
    what generalises. With `rule_risk=None` it is calibrated on held-out
    documents of the training set (`calibrate_rule_risk`). Only keys seen at
    least `min_count` times are blocked. The shortest max_length within 1% of
    the fewest training candidates wins.

    docs (Sequence[Doc]): Training docs with gold spans.
    spans_key (str): The span group holding the gold spans.
    target_recall (float): The training recall to keep, in (0, 1].
    min_count (int): Occurrences a key needs before it may be blocked.
    rule_risk (Optional[float]): Gold spans each rule is expected to lose on
        unseen text; None calibrates it on held-out training documents.
    min_gain_per_loss (float): Candidates a rule must remove per gold span it loses.
    max_lengths (Optional[Iterable[int]]): The max_length values to try; by
        default from the shortest that reaches the target up to the longest gold span (capped at 16).
    use_shapes (bool): Also block by token shape, not only by lower-case form.
    progress (Optional[Callable[[str], None]]): Called with a line per max_length tried.
    RETURNS (FitResult): The settings and their training figures.
    """
    if not 0.0 < target_recall <= 1.0:
        raise ValueError(f"target_recall must be in (0, 1], got {target_recall}")
    if min_count < 1:
        raise ValueError(f"min_count must be at least 1, got {min_count}")
    corpus = index_corpus(docs, spans_key)
    n_gold = int(corpus.gold_lengths.shape[0])
    if n_gold == 0:
        raise ValueError(f"no gold spans under doc.spans[{spans_key!r}] in {len(docs)} docs: nothing to fit")
    calibration: List[Dict[str, Any]] = []
    if rule_risk is None:
        try:
            rule_risk, calibration = calibrate_rule_risk(
                docs, spans_key, target_recall, min_count=min_count, min_gain_per_loss=min_gain_per_loss,
                max_lengths=max_lengths, use_shapes=use_shapes, progress=progress,
            )
        except ValueError as err:
            # Too few documents to hold any out: take the most cautious risk.
            rule_risk = max(RULE_RISKS)
            calibration = [{"rule_risk": rule_risk, "note": f"not calibrated: {err}"}]
            if progress is not None:
                progress(f"rule_risk {rule_risk} (not calibrated: {err})")
    if rule_risk < 0:
        raise ValueError(f"rule_risk must be >= 0, got {rule_risk}")
    budget = int(numpy.floor((1.0 - target_recall) * n_gold + 1e-9))
    lengths = corpus.gold_lengths
    longest = int(lengths.max())
    if max_lengths is None:
        shortest = next(L for L in range(1, longest + 1) if int((lengths > L).sum()) <= budget)
        max_lengths = range(shortest, max(shortest, min(longest, 16)) + 1)
    trials = []
    results: List[FitResult] = []
    fewest, last_gain = float("inf"), 0
    for L in max_lengths:
        result = _fit_for_length(corpus, L, budget, min_count, rule_risk, min_gain_per_loss, use_shapes)
        trials.append(
            {"max_length": L, "train_recall": result.train_recall, "candidates": result.train_candidates}
        )
        if progress is not None:
            progress(
                f"max_length {L}: train recall {result.train_recall:.5f}, "
                f"{result.train_candidates / max(corpus.n_tokens, 1):.3f} candidates/token"
            )
        results.append(result)
        if result.train_candidates < 0.99 * fewest:
            fewest, last_gain = result.train_candidates, len(results) - 1
        elif len(results) - 1 - last_gain >= 2:
            break  # two longer lengths in a row saved under 1%: the curve is flat
    if not results:
        raise ValueError("no max_length to try")
    # Longer spans cost little once blocked, so several lengths come close:
    # keep the shortest within 1% of the fewest candidates (a smaller grid).
    fewest = min(r.train_candidates for r in results)
    best = next(r for r in results if r.train_candidates <= 1.01 * fewest)
    best.trials = trials
    best.rule_risk = rule_risk
    best.calibration = calibration
    return best


RULE_RISKS = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0)


def holdout_split(docs: Sequence[Doc], fraction: float = 0.2) -> Tuple[List[Doc], List[Doc]]:
    """Split docs into fitting and held-out parts, keeping each document whole.

    Paragraphs of one article share words and annotation habits, so a random
    paragraph split would flatter the held-out recall. Docs are grouped by
    `doc.user_data["doc_key"]` (set by the project's converter) and the last
    `fraction` of the groups, in order of appearance, is held out; without
    doc keys, the last `fraction` of the docs in file order.

    docs (Sequence[Doc]): The training docs.
    fraction (float): The share of groups (or docs) to hold out.
    RETURNS (Tuple[List[Doc], List[Doc]]): The fitting docs and the held-out docs.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"holdout fraction must be in (0, 1), got {fraction}")
    keys = [doc.user_data.get("doc_key", i) if doc.user_data else i for i, doc in enumerate(docs)]
    order = list(dict.fromkeys(keys))
    n_held = max(1, int(round(fraction * len(order))))
    if len(order) < 2:
        raise ValueError(f"{len(docs)} docs in {len(order)} document(s): too few to hold any out")
    held = set(order[-n_held:])
    fit = [doc for doc, key in zip(docs, keys) if key not in held]
    out = [doc for doc, key in zip(docs, keys) if key in held]
    return fit, out


def calibrate_rule_risk(
    docs: Sequence[Doc],
    spans_key: str = "sc",
    target_recall: float = 0.999,
    risks: Sequence[float] = RULE_RISKS,
    holdout: float = 0.2,
    progress: Optional[Callable[[str], None]] = None,
    **fit_kwargs: Any,
) -> Tuple[float, List[Dict[str, Any]]]:
    """Pick the smallest rule_risk whose rules keep `target_recall` on held-out documents.

    The recall judged is that of the held-out spans no longer than the fitted
    max_length: what the block rules lose, apart from the length cap.

    docs (Sequence[Doc]): The training docs.
    spans_key (str): The span group holding the gold spans.
    target_recall (float): The recall the held-out documents must keep.
    risks (Sequence[float]): The rule_risk values to try, smallest first.
    holdout (float): The share of documents held out (see `holdout_split`).
    progress (Optional[Callable[[str], None]]): Called with a line per value tried.
    **fit_kwargs: Passed on to `fit_suggester_settings`.
    RETURNS (Tuple[float, List[Dict[str, Any]]]): The chosen rule_risk (the
        largest tried if none reaches the target) and the per-value results.
    """
    fit_docs, held_docs = holdout_split(docs, holdout)
    held = index_corpus(held_docs, spans_key)
    rows: List[Dict[str, Any]] = []
    for risk in sorted(risks):
        result = fit_suggester_settings(fit_docs, spans_key, target_recall, rule_risk=risk, **fit_kwargs)
        report = coverage_report(build_biomed_suggester(**result.settings), held_docs, spans_key)
        # Judge the rules alone: spans longer than max_length are lost to the
        # length cap whatever the rules, and on a small set can exceed the budget.
        reachable = ngram_coverage(held, result.settings["max_length"])[0]
        rule_recall = report["recall"] / reachable if reachable > 0 else 1.0
        rows.append(
            {
                "rule_risk": risk,
                "heldout_recall": report["recall"],
                "heldout_rule_recall": rule_recall,
                "per_token": report["per_token"],
            }
        )
        if progress is not None:
            progress(
                f"rule_risk {risk}: held-out recall {report['recall']:.5f} "
                f"({rule_recall:.5f} of the spans within max_length {result.settings['max_length']}), "
                f"{report['per_token']:.3f} candidates/token ({len(held_docs)} held-out docs)"
            )
        if rule_recall >= target_recall:
            return risk, rows
    return max(risks), rows


def _fit_for_length(
    corpus: SpanCorpus,
    L: int,
    budget: int,
    min_count: int,
    rule_risk: float,
    min_gain_per_loss: float,
    use_shapes: bool,
) -> FitResult:
    """The greedy fit of the block lists for one max_length."""
    n_words = len(corpus.words)
    grid = _Grid(corpus, L)
    ngram_candidates = int(grid.alive.sum())
    gold_alive = corpus.gold_lengths <= L
    lost_by_length = int((~gold_alive).sum())
    # Expected losses: gold spans lost on train, plus rule_risk per rule for
    # the spans it would lose on unseen text although it lost none here.
    remaining = float(budget - lost_by_length)
    # Every token has two keys: its word (0..W-1) and its shape (W..).
    positions = numpy.arange(corpus.n_tokens)
    key_positions = _csr(corpus.word_ids, positions, n_words)
    role_gold = _role_gold(corpus, corpus.word_ids, n_words)
    key_names: List[Tuple[str, str]] = [("words", w) for w in corpus.words]
    if use_shapes:
        key_positions += _csr(corpus.shape_ids, positions, len(corpus.shapes))
        shape_gold = _role_gold(corpus, corpus.shape_ids, len(corpus.shapes))
        for role in ROLE_NAMES:
            role_gold[role] = role_gold[role] + shape_gold[role]
        key_names += [("shapes", s) for s in corpus.shapes]
    counts = numpy.array([len(p) for p in key_positions])

    def score(role: str, key: int) -> Tuple[float, int, float]:
        gain = grid.gain(role, key_positions[key])
        loss = int(gold_alive[role_gold[role][key]].sum()) + rule_risk
        return (gain / loss if loss > 0 else float(gain) * 1e9), gain, loss

    heap: List[Tuple[float, int, str, int]] = []
    # "$" does not survive config.cfg (see make_block_table): never block it.
    eligible = [k for k in numpy.nonzero(counts >= min_count)[0].tolist() if "$" not in key_names[k][1]]
    for role in ROLE_NAMES:
        per_token = grid.token_gains(role)
        gains = numpy.bincount(corpus.word_ids, weights=per_token, minlength=n_words)
        if use_shapes:
            shape_gains = numpy.bincount(corpus.shape_ids, weights=per_token, minlength=len(corpus.shapes))
            gains = numpy.concatenate([gains, shape_gains])
        for key in eligible:
            gain = int(gains[key])
            if gain > 0:
                loss = int(gold_alive[role_gold[role][key]].sum()) + rule_risk
                ratio = gain / loss if loss > 0 else float(gain) * 1e9
                heap.append((-ratio, -gain, role, key))
    heapq.heapify(heap)
    blocked: Dict[str, Dict[str, List[str]]] = {r: {"words": [], "shapes": []} for r in ROLE_NAMES}
    while heap:
        if rule_risk > 0 and remaining < rule_risk:
            break  # no rule fits in what is left of the budget
        neg_ratio, neg_gain, role, key = heapq.heappop(heap)
        # Cheap checks first: the loss needs no grid, and gains only shrink.
        loss = int(gold_alive[role_gold[role][key]].sum()) + rule_risk
        if loss > remaining or (loss > 0 and -neg_gain / loss < min_gain_per_loss):
            continue
        ratio, gain, loss = score(role, key)
        if gain == 0 or ratio < min_gain_per_loss:
            continue
        if heap and (-ratio, -gain) > heap[0][:2]:
            heapq.heappush(heap, (-ratio, -gain, role, key))  # stale score: re-queue
            continue
        grid.remove(role, key_positions[key])
        gold_alive[role_gold[role][key]] = False
        remaining -= loss
        kind, name = key_names[key]
        blocked[role][kind].append(name)
    settings: Dict[str, Any] = {"max_length": L}
    for role in ROLE_NAMES:
        settings[f"no_{role}_words"] = sorted(blocked[role]["words"])
        settings[f"no_{role}_shapes"] = sorted(blocked[role]["shapes"])
    n_alive = int(gold_alive.sum())
    return FitResult(
        settings=settings,
        train_recall=n_alive / max(len(gold_alive), 1),
        train_candidates=int(grid.alive.sum()),
        ngram_candidates=ngram_candidates,
        lost_by_length=lost_by_length,
        lost_by_rules=len(gold_alive) - n_alive - lost_by_length,
    )


def write_suggester_config(
    base_config: PathLike, output: PathLike, settings: Dict[str, Any], component: str = "spancat"
) -> Config:
    """Write `base_config` with the component's suggester set to the fitted settings.

    The base config is read without interpolation, so its ${variables} are
    written back as they were.

    base_config (PathLike): The training config to start from.
    output (PathLike): Where to write the new config.
    settings (Dict[str, Any]): Keyword arguments of `biomed.span_suggester.v1`.
    component (str): The spancat component whose suggester is set.
    RETURNS (Config): The written config.
    """
    base_config = Path(base_config)
    if not base_config.exists():
        raise FileNotFoundError(f"{base_config}: config not found")
    config = Config().from_disk(base_config, interpolate=False)
    if component not in config.get("components", {}):
        raise ValueError(f"{base_config}: no [components.{component}] section to set the suggester of")
    build_biomed_suggester(**settings)  # fail here, not at training time, on bad settings
    config["components"][component]["suggester"] = {"@misc": SUGGESTER_NAME, **settings}
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    config.to_disk(output)
    return config


def fit_suggester_config(
    train_path: PathLike,
    base_config: PathLike,
    output: PathLike,
    spans_key: str = "sc",
    target_recall: float = 0.999,
    min_count: int = 10,
    rule_risk: Optional[float] = None,
    component: str = "spancat",
    progress: Optional[Callable[[str], None]] = None,
    heldout_recall: Optional[float] = 0.99,
) -> Dict[str, Any]:
    """Analyse a training DocBin, fit the suggester and write the training config.

    train_path (PathLike): The training .spacy file.
    base_config (PathLike): The config to start from (configs/spancat.cfg).
    output (PathLike): Where to write the config with the fitted suggester.
    spans_key (str): The span group holding the gold spans.
    target_recall (float): The training recall to keep.
    min_count (int): Occurrences a token needs before it may be blocked.
    rule_risk (Optional[float]): Expected unseen loss per rule; None calibrates it.
    component (str): The spancat component whose suggester is set.
    progress (Optional[Callable[[str], None]]): Called with progress lines.
    heldout_recall (Optional[float]): The recall of held-out documents' spans
        the settings must keep (see suggester_heldout.py); None fits for the
        training recall alone.
    RETURNS (Dict[str, Any]): The analysis, the settings, the training figures
        and the held-out estimate.
    """
    if not Path(base_config).exists():
        raise FileNotFoundError(f"{base_config}: config not found")
    lang = Config().from_disk(base_config, interpolate=False).get("nlp", {}).get("lang", "en")
    docs = read_docs(train_path, lang=lang)
    if progress is not None:
        progress(f"Read {len(docs):,} docs from {train_path}")
    analysis = analyse_spans(index_corpus(docs, spans_key))
    if analysis["spans"] == 0:
        raise ValueError(f"{train_path}: no gold spans under doc.spans[{spans_key!r}]; nothing to fit")
    heldout: Optional[Dict[str, Any]] = None
    if heldout_recall is None:
        result = fit_suggester_settings(
            docs, spans_key, target_recall, min_count=min_count, rule_risk=rule_risk, progress=progress
        )
    else:
        from .suggester_heldout import fit_heldout_settings  # it imports this module

        result, heldout = fit_heldout_settings(
            docs, spans_key, target_recall, heldout_recall, min_count=min_count, rule_risk=rule_risk,
            progress=progress,
        )
    write_suggester_config(base_config, output, result.settings, component=component)
    n_tok = max(analysis["tokens"], 1)
    return {
        "train": str(train_path),
        "config": str(output),
        "analysis": analysis,
        "settings": result.settings,
        "rule_risk": result.rule_risk,
        "calibration": result.calibration,
        "trials": result.trials,
        "train_recall": result.train_recall,
        "train_per_token": result.train_candidates / n_tok,
        "ngram_per_token": result.ngram_candidates / n_tok,
        "lost_by_length": result.lost_by_length,
        "lost_by_rules": result.lost_by_rules,
        "heldout": heldout,
    }
