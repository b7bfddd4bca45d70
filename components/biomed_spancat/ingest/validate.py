"""Validation and alignment: one raw `Task` in, one `Annotation` (or a
counted rejection) out.

Docs are built from the task's own `tokens` (text + `ws`), so spans are
exactly the annotator's. Where a task has no tokens (some `ner_manual`
exports, other tools), the text is tokenized with spaCy's tokenizer and each
span is snapped by the alignment policy:

- `strict`: a span whose boundaries fall inside a token rejects the task;
- `expand`: the span grows to every token it touches;
- `contract`: the span shrinks to the tokens it covers entirely.

Every span is checked: integer character offsets (`"12"` is refused as
non-integer), a non-empty span inside the text, `token_start <= token_end`,
token offsets consistent with character offsets, a non-empty label; with a
label set, unknown labels reject the task (or, asked, only the span is
dropped and counted). A span whose own `answer` is `reject` (or `ignore`) is
never a positive span. Annotator ids become opaque pseudonyms here, before
anything could write them.
"""

import hashlib
import json
import re
from array import array
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from .answers import BINARY_VIEWS, classify_answer, span_answer
from .tasks import Ledger, Origin, Task, pseudonym

__all__ = [
    "ALIGN_POLICIES",
    "BINARY_VIEWS",
    "Annotation",
    "AnswerKeys",
    "ValidateOptions",
    "Rejection",
    "answer_keys",
    "classify_answer",
    "validate_task",
    "snap_span",
    "annotator_id",
]

ALIGN_POLICIES = ("strict", "expand", "contract")
DOC_ID_KEYS = ("doc_id", "document_id", "doc_key", "doc")

SpanTuple = Tuple[int, int, str]  # token start, token end (exclusive), label


class Rejection(Exception):
    """A per-task problem: the task is counted as rejected with `reason`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class ValidateOptions:
    """How tasks are checked and aligned.

    align (str): Alignment policy for tasks without tokens (strict|expand|contract).
    labels (Optional[Set[str]]): The label set; None accepts any label.
    rename (Dict[str, str]): Old label -> new label, applied before the label check.
    unknown_labels (str): "reject" the task, or "drop" the span (counted).
    doc_id_keys (Sequence[str]): `meta` keys holding the document id.
    lang (str): Language of the tokenizer used when a task has no tokens.
    """

    align: str = "strict"
    labels: Optional[Set[str]] = None
    rename: Dict[str, str] = field(default_factory=dict)
    unknown_labels: str = "reject"
    doc_id_keys: Sequence[str] = DOC_ID_KEYS
    lang: str = "en"


@dataclass
class Annotation:
    """A validated, token-aligned annotation: the compact record kept until
    the docs are written: the text, token offsets and span tuples, not the
    raw JSON and not one string object per token.

    text (str): The task's text.
    starts (array): Token character starts.
    ends (array): Token character ends.
    spaces (bytes): 1 where a token is followed by a space, else 0.
    spans (List[SpanTuple]): (token start, token end exclusive, label), sorted.
    char_spans (List[SpanTuple]): The same spans as character offsets.
    group_key (Tuple): Tasks with this key are versions of one input by
        several annotators (role, input hash, meta).
    doc_key (str): The document the task belongs to (meta doc id, else input hash).
    dedup_key (bytes): Digest of everything that makes a task what it is;
        equal digests are exact duplicates.
    annotator (str): `_annotator_id`, else `_session_id`, else the dataset.
    timestamp (float): `_timestamp` (0 when absent).
    is_review (bool): Output of the `review` recipe.
    answer (str): The answer ("accept", or "reject" for binary answers).
    origin (Origin): Where the task was read.
    role (str): train, dev or test.
    input_hash (Any): `_input_hash`.
    annotator_known (bool): The task named its annotator (`_annotator_id` or
        `_session_id`); an unknown annotator is one per source.
    rejected (List[SpanTuple]): Spans answered `reject` (binary answers
        only: they are never positive spans).
    """

    text: str
    starts: array
    ends: array
    spaces: bytes
    spans: List[SpanTuple]
    char_spans: List[SpanTuple]
    group_key: Tuple
    doc_key: str
    dedup_key: bytes
    annotator: str
    timestamp: float
    is_review: bool
    answer: str
    origin: Origin
    role: str
    input_hash: Any
    annotator_known: bool = True
    rejected: List[SpanTuple] = field(default_factory=list)

    @property
    def words(self) -> List[str]:
        text = self.text
        return [text[s:e] for s, e in zip(self.starts, self.ends)]

    @property
    def n_tokens(self) -> int:
        return len(self.starts)


_TOKENIZERS: Dict[str, Any] = {}


def _make_tokenizer(lang: str) -> Any:
    """spaCy's tokenizer for a language, built the way `spacy.blank` builds
    it but without a `Language`: making one resolves the registries, whose
    entry points import spacy-transformers and so torch (seconds and hundreds
    of MB for a conversion that never runs a model)."""
    from spacy.tokenizer import Tokenizer
    from spacy.util import compile_infix_regex, compile_prefix_regex, compile_suffix_regex, get_lang_class
    from spacy.vocab import Vocab

    cls = get_lang_class(lang)
    defaults = cls.Defaults
    custom = defaults.config.get("nlp", {}).get("tokenizer", {}).get("@tokenizers", "spacy.Tokenizer.v1")
    if custom != "spacy.Tokenizer.v1":
        import spacy  # a language with its own tokenizer (zh, ja, ko...): let spaCy build it

        return spacy.blank(lang).tokenizer
    # a bare vocab: lexical attributes (like_num, norms...) play no part in tokenizing, and
    # computing them for every new word is a third of the time
    return Tokenizer(
        Vocab(),
        rules=defaults.tokenizer_exceptions,
        prefix_search=compile_prefix_regex(defaults.prefixes).search if defaults.prefixes else None,
        suffix_search=compile_suffix_regex(defaults.suffixes).search if defaults.suffixes else None,
        infix_finditer=compile_infix_regex(defaults.infixes).finditer if defaults.infixes else None,
        token_match=defaults.token_match,
        url_match=defaults.url_match,
    )


def _tokenize(text: str, lang: str) -> Tuple[List[str], List[bool], List[int], List[int]]:
    if lang not in _TOKENIZERS:
        _TOKENIZERS[lang] = _make_tokenizer(lang)
    from spacy.attrs import IDX, LENGTH, SPACY

    # one array read instead of a Token object per token and attribute
    rows = _TOKENIZERS[lang](text).to_array([IDX, LENGTH, SPACY]).tolist()
    starts = [r[0] for r in rows]
    ends = [r[0] + r[1] for r in rows]
    return [text[s:e] for s, e in zip(starts, ends)], [bool(r[2]) for r in rows], starts, ends


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _tokens_from_task(text: str, tokens: List[Any]) -> Tuple[List[str], List[bool], List[int], List[int]]:
    words: List[str] = []
    spaces: List[bool] = []
    starts: List[int] = []
    ends: List[int] = []
    prev_end = 0
    n = len(tokens)
    for i, tok in enumerate(tokens):
        try:
            t_text, start, end = tok["text"], tok["start"], tok["end"]
        except (TypeError, KeyError):
            raise Rejection("bad_tokens", f"token {i} is not an object with text/start/end") from None
        # `type(...) is int` keeps this loop fast and refuses bools
        if type(start) is not int or type(end) is not int or type(t_text) is not str:
            raise Rejection("bad_tokens", f"token {i} has a non-integer start/end or a non-string text")
        if start < prev_end or text[start:end] != t_text:
            raise Rejection(
                "bad_tokens",
                f"token {i} {t_text!r} [{start}:{end}] does not match the text ({text[start:end]!r})",
            )
        ws = tok.get("ws")
        if ws is None:  # old exports: whitespace follows when the next token starts later
            nxt = tokens[i + 1] if i + 1 < n else None
            next_start = nxt.get("start") if isinstance(nxt, dict) else len(text)
            ws = _is_int(next_start) and next_start > end
        words.append(t_text)
        spaces.append(bool(ws))
        starts.append(start)
        ends.append(end)
        prev_end = end + 1 if ws else end
    rebuilt = "".join(w + (" " if s else "") for w, s in zip(words, spaces))
    if rebuilt != text:
        # locate the first difference for the message
        pos = next((i for i, (a, b) in enumerate(zip(rebuilt, text)) if a != b), min(len(rebuilt), len(text)))
        raise Rejection(
            "bad_tokens",
            f"tokens and ws do not rebuild the text (first difference at character {pos}: "
            f"{text[pos : pos + 10]!r} vs {rebuilt[pos : pos + 10]!r})",
        )
    return words, spaces, starts, ends


def snap_span(start: int, end: int, starts: List[int], ends: List[int], policy: str) -> Optional[Tuple[int, int]]:
    """Snap a character span onto tokens.

    start (int): Character start.
    end (int): Character end (exclusive).
    starts (List[int]): Token character starts, ascending.
    ends (List[int]): Token character ends, ascending.
    policy (str): "strict" (exact boundaries only), "expand" (every token the
        span touches) or "contract" (only tokens entirely inside it).
    RETURNS (Optional[Tuple[int, int]]): Token start and exclusive end, or
        None when the policy cannot place the span.
    """
    if policy == "strict":
        i = bisect_left(starts, start)
        j = bisect_left(ends, end)
        if i < len(starts) and starts[i] == start and j < len(ends) and ends[j] == end and i <= j:
            return i, j + 1
        return None
    if policy == "expand":
        i = bisect_right(ends, start)  # first token ending after start
        j = bisect_left(starts, end)  # tokens starting before end
    elif policy == "contract":
        i = bisect_left(starts, start)  # first token starting at or after start
        j = bisect_right(ends, end)  # tokens ending at or before end
    else:
        raise ValueError(f"unknown alignment policy '{policy}' (choose from {', '.join(ALIGN_POLICIES)})")
    return (i, j) if i < j else None


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


# An id that is already opaque (written by pseudonym(), e.g. by another tool's reader)
_PSEUDONYM = re.compile(r"^(prodigy|labelstudio|argilla|annotator):[0-9a-f]{10}$")


def annotator_id(data: Dict[str, Any], origin: Origin) -> Tuple[str, bool]:
    """Who answered a task, as an opaque id: `_annotator_id`, else
    `_session_id` (Prodigy's hold user names and e-mails, e.g.
    "dataset-alice@clinic.org"), through `pseudonym(who, "prodigy")`.

    data (Dict[str, Any]): The task.
    origin (Origin): Where it was read; a task that names no annotator is
        taken as one unknown annotator per source and dataset.
    RETURNS (Tuple[str, bool]): The id and whether the task named its annotator.
    """
    who = data.get("_annotator_id") or data.get("_session_id")
    if who is None or who == "":
        where = pseudonym([origin.source, origin.dataset], "unknown")
        return where, False
    if isinstance(who, str) and _PSEUDONYM.match(who):
        return who, True
    if isinstance(who, str):
        tool, sep, rest = who.partition(":")
        if sep and tool in ("labelstudio", "argilla"):  # another tool's reader named it
            return pseudonym(rest, tool), True
    return pseudonym(who, "prodigy"), True


@dataclass(frozen=True)
class AnswerKeys:
    """What places an answer among the other answers to the same input.

    group_key (Tuple): Versions of one input share it (role, input hash, meta).
    doc_key (str): The document (meta doc id, else input hash).
    input_hash (Any): `_input_hash` (else a hash of the text).
    annotator (str): Opaque annotator id (see `annotator_id`).
    annotator_known (bool): The task named its annotator.
    timestamp (float): `_timestamp` (0 when absent).
    meta (Dict[str, Any]): The task's meta.
    """

    group_key: Tuple
    doc_key: str
    input_hash: Any
    annotator: str
    annotator_known: bool
    timestamp: float
    meta: Dict[str, Any]


def answer_keys(task: Task, options: ValidateOptions) -> Optional[AnswerKeys]:
    """The keys of a task's answer, computed without checking its spans (used
    for rejects, which withdraw the same annotator's earlier accepts).

    task (Task): A parsed task.
    options (ValidateOptions): The doc id keys.
    RETURNS (Optional[AnswerKeys]): None when the task has no usable text.
    """
    data = task.data
    if data is None or not isinstance(data.get("text"), str) or not data["text"]:
        return None
    text = data["text"]
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    input_hash = data.get("_input_hash")
    if input_hash is None:
        input_hash = "text:" + hashlib.sha1(text.encode("utf8")).hexdigest()[:16]
    doc_id = next((meta[key] for key in options.doc_id_keys if meta.get(key) not in (None, "")), None)
    annotator, known = annotator_id(data, task.origin)
    timestamp = data.get("_timestamp")
    timestamp = float(timestamp) if isinstance(timestamp, (int, float)) and not isinstance(timestamp, bool) else 0.0
    return AnswerKeys(
        group_key=(task.role, input_hash, _canonical(meta)),
        doc_key=f"doc:{doc_id}" if doc_id is not None else f"input:{input_hash}",
        input_hash=input_hash,
        annotator=annotator,
        annotator_known=known,
        timestamp=timestamp,
        meta=meta,
    )


def _offsets(k: int, span: Dict[str, Any], label: str, length: int) -> Tuple[int, int]:
    start, end = span.get("start"), span.get("end")
    if start is None or end is None:
        missing = " and ".join(key for key, v in (("'start'", start), ("'end'", end)) if v is None)
        raise Rejection("span_missing_offsets", f"span {k} ({label}) has no {missing}")
    if not _is_int(start) or not _is_int(end):
        raise Rejection(
            "non_integer_offsets",
            f"span {k} ({label}) has non-integer offsets (start {start!r}, end {end!r}): "
            "character offsets must be JSON integers",
        )
    if start == end and 0 <= start <= length:
        raise Rejection("empty_span", f"span {k} ({label}) is an empty span (start == end == {start})")
    if start > end:
        raise Rejection("span_out_of_range", f"span {k} ({label}) [{start}:{end}] ends before it starts")
    if not (0 <= start < end <= length):
        raise Rejection(
            "span_out_of_range", f"span {k} ({label}) [{start}:{end}] is outside the text (length {length})"
        )
    return start, end


def validate_task(task: Task, options: ValidateOptions, ledger: Ledger, binary: bool = False) -> Annotation:
    """Check and align one task.

    task (Task): A raw task from a reader.
    options (ValidateOptions): Alignment policy, label set, renames.
    ledger (Ledger): Span-level counts (misaligned, dropped, renamed) go here.
    binary (bool): The task is a binary answer (kept with --keep-binary):
        spans answered `reject` (their own answer, else the task's) go to
        `Annotation.rejected`, the accepted ones to `spans`. For a complete
        annotation, a span answered `reject` or `ignore` is dropped (counted):
        a rejected span never becomes a positive span.
    RETURNS (Annotation): The aligned annotation.
    RAISES (Rejection): With a reason code and a detail, for a per-task problem.
    """
    if task.data is None:
        raise Rejection(task.reason, task.error or "unreadable record")
    data = task.data
    text = data.get("text")
    if not isinstance(text, str):
        raise Rejection("missing_text", "the task has no 'text'" if text is None else "'text' is not a string")
    if not text:
        raise Rejection("empty_text", "the task's text is empty")

    raw_tokens = data.get("tokens")
    from_task = isinstance(raw_tokens, list) and len(raw_tokens) > 0
    if raw_tokens is not None and not isinstance(raw_tokens, list):
        raise Rejection("bad_tokens", "'tokens' is not a list")
    if from_task:
        words, spaces, starts, ends = _tokens_from_task(text, raw_tokens)
    else:
        words, spaces, starts, ends = _tokenize(text, options.lang)
    n_tokens = len(words)

    # spans a reader could not represent (e.g. discontinuous Knowtator annotations), counted in the report
    for reason, count in (data.get("_spans_dropped") or {}).items():
        ledger.spans_dropped[str(reason)] += int(count)
    raw_spans = data.get("spans") or []
    if not isinstance(raw_spans, list):
        raise Rejection("bad_spans", "'spans' is not a list")
    task_answer = data.get("answer")
    spans: Dict[SpanTuple, SpanTuple] = {}  # token span -> char span, deduplicated
    rejected: Dict[SpanTuple, SpanTuple] = {}
    for k, span in enumerate(raw_spans):
        if not isinstance(span, dict):
            raise Rejection("bad_spans", f"span {k} is not an object")
        label = span.get("label")
        if not isinstance(label, str) or not label.strip():
            raise Rejection("span_missing_label", f"span {k} [{span.get('start')}:{span.get('end')}] has no label")
        start, end = _offsets(k, span, label, len(text))
        ts, te = span.get("token_start"), span.get("token_end")
        if from_task and (ts is not None or te is not None):
            if not _is_int(ts) or not _is_int(te):
                raise Rejection("span_token_offsets", f"span {k} ({label}) has a non-integer token_start/token_end")
            if ts > te:
                raise Rejection("span_token_offsets", f"span {k} ({label}) has token_start {ts} > token_end {te}")
            if not (0 <= ts and te < n_tokens):
                raise Rejection(
                    "span_token_offsets", f"span {k} ({label}) tokens {ts}..{te} outside the {n_tokens} tokens"
                )
            if starts[ts] != start or ends[te] != end:
                raise Rejection(
                    "span_offsets_inconsistent",
                    f"span {k} ({label}) [{start}:{end}] {text[start:end]!r} does not match its tokens "
                    f"{ts}..{te} [{starts[ts]}:{ends[te]}] {text[starts[ts] : ends[te]]!r}",
                )
            placed: Optional[Tuple[int, int]] = (ts, te + 1)
        else:
            placed = snap_span(start, end, starts, ends, "strict")
            if placed is None:
                ledger.spans_misaligned[label] += 1
                where = f"span {k} ({label}) [{start}:{end}] {text[start:end]!r}"
                if options.align == "strict":
                    raise Rejection("misaligned_span", f"{where} does not fall on token boundaries (align=strict)")
                placed = snap_span(start, end, starts, ends, options.align)
                if placed is None:
                    raise Rejection("misaligned_span", f"{where} covers no whole token (align={options.align})")
        if label in options.rename:
            ledger.spans_renamed[f"{label}->{options.rename[label]}"] += 1
            label = options.rename[label]
        if options.labels is not None and label not in options.labels:
            if options.unknown_labels == "drop":
                ledger.spans_dropped[f"unknown_label:{label}"] += 1
                continue
            raise Rejection("unknown_label", f"span {k} has label {label!r}, not in the label set")
        tok = (placed[0], placed[1], label)
        own = span.get("answer")
        said = span_answer(span, task_answer)
        if binary and said == "reject":
            rejected[tok] = (starts[placed[0]], ends[placed[1] - 1], label)
            continue
        if binary and (said != "accept" or task_answer != "accept"):
            # ignored, or accepted inside a rejected task: known neither way
            ledger.spans_dropped["span_answer_ignore" if said == "ignore" else "span_answer_conflict"] += 1
            continue
        if not binary and own is not None and own != "accept":
            # a span answered reject (or ignore) inside a complete annotation is never positive
            ledger.spans_dropped[f"span_answer_{own}"] += 1
            continue
        if tok in spans:
            ledger.spans_dropped["duplicate_span"] += 1
            continue
        spans[tok] = (starts[placed[0]], ends[placed[1] - 1], label)

    keys = answer_keys(task, options)
    assert keys is not None  # the text was checked above
    is_review = data.get("_view_id") == "review" or "versions" in data
    answer = str(task_answer)
    token_spans = sorted(spans)
    char_spans = [spans[s] for s in token_spans]
    starts_arr, ends_arr, spaces_bytes = array("i", starts), array("i", ends), bytes(spaces)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(_canonical([text, char_spans, keys.meta, keys.annotator, answer, is_review]).encode("utf8"))
    for part in (starts_arr.tobytes(), ends_arr.tobytes(), spaces_bytes):
        digest.update(part)
    return Annotation(
        text=text,
        starts=starts_arr,
        ends=ends_arr,
        spaces=spaces_bytes,
        spans=token_spans,
        char_spans=char_spans,
        group_key=keys.group_key,
        doc_key=keys.doc_key,
        dedup_key=digest.digest(),
        annotator=keys.annotator,
        timestamp=keys.timestamp,
        is_review=is_review,
        answer=answer,
        origin=task.origin,
        role=task.role,
        input_hash=keys.input_hash,
        annotator_known=keys.annotator_known,
        rejected=sorted(rejected),
    )
