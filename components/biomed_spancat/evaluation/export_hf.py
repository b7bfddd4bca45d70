"""Export span corpora to Hugging Face token classification, knowingly.

spancat keeps overlapping spans; a token classifier (AutoTrain, a BiomedBERT
fine-tuned with `AutoModelForTokenClassification`) has one tag per token. This
module turns the corpus DocBins into a `datasets.DatasetDict` and says exactly
what that costs:

- `ner_tags`: one IOB tag per token, after flattening the overlaps with a
  policy (`longest`, `priority`, `first`); every span the policy drops is
  counted, per label, in the loss report.
- `iob_<LABEL>`: one IOB column per label (lossless across labels; only spans
  of ONE label that overlap each other still need flattening, and are counted).
- `spans`: the character offsets and labels of every span, the shape of an
  Argilla span question's response (lossless).
- with a tokenizer: `input_ids`, `attention_mask` and wordpiece `labels`
  (-100 where a piece is not trained on), plus a count of the spans whose
  boundaries fall inside a wordpiece of the raw text.

The flattening policies and the IOB codec live in `flatten`.

Project tooling, never imported by a loaded pipeline.
"""
import json
from bisect import bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from spacy.tokens import Doc

from ..util import read_docs, write_json
from .flatten import ExportError, Flattener, SpanTuple, doc_spans, iob_to_spans, make_flattener, spans_to_iob

__all__ = [
    "SUBWORD_MODES",
    "FORMATS",
    "TOKENS_COLUMN",
    "TAGS_COLUMN",
    "SPANS_COLUMN",
    "LossCounter",
    "label_column",
    "doc_to_record",
    "record_to_spans",
    "align_wordpieces",
    "boundaries_inside_wordpieces",
    "load_docs",
    "export_hf",
    "export_from_sources",
    "format_loss_table",
]

SUBWORD_MODES = ("first", "all")
FORMATS = ("jsonl", "parquet")
# Column names. AutoTrain's token classification reads `tokens_column` and
# `tags_column` (defaults "tokens" and "tags"); its Hub-dataset example maps
# tags_column to "ner_tags", the CoNLL-2003 name used here, and it reads the
# tag names from the ClassLabel feature of that column.
TOKENS_COLUMN = "tokens"
TAGS_COLUMN = "ner_tags"
SPANS_COLUMN = "spans"
LABEL_COLUMN_PREFIX = "iob_"
SPLIT_NAMES = {"train": "train", "dev": "validation"}



def label_column(label: str) -> str:
    """The name of the per-label IOB column of `label`."""
    return f"{LABEL_COLUMN_PREFIX}{label}"



# ---------------------------------------------------------------------------
# Loss accounting
# ---------------------------------------------------------------------------


def _overlapping(spans: Sequence[SpanTuple]) -> List[bool]:
    """For each span, whether it shares a token with another span."""
    flags = [False] * len(spans)
    order = sorted(range(len(spans)), key=lambda i: spans[i][:2])
    for a_pos, a in enumerate(order):
        for b in order[a_pos + 1 :]:
            if spans[b][0] >= spans[a][1]:
                break
            flags[a] = flags[b] = True
    return flags


@dataclass
class LossCounter:
    """What flattening costs, per label; the loss report is read from it."""

    docs: int = 0
    duplicates: int = 0
    spans: Counter = field(default_factory=Counter)
    overlapping: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    same_label_overlapping: Counter = field(default_factory=Counter)
    column_dropped: Counter = field(default_factory=Counter)

    def add(
        self,
        spans: Sequence[SpanTuple],
        dropped: Sequence[SpanTuple],
        column_dropped: Sequence[SpanTuple],
    ) -> None:
        """Count one doc: its spans (annotation order), the spans flattening
        dropped from `ner_tags`, and those dropped from the per-label columns."""
        unique = list(dict.fromkeys(spans))
        self.docs += 1
        self.duplicates += len(spans) - len(unique)
        for span, flag in zip(unique, _overlapping(unique)):
            self.spans[span[2]] += 1
            self.overlapping[span[2]] += int(flag)
        by_label: Dict[str, List[SpanTuple]] = defaultdict(list)
        for span in unique:
            by_label[span[2]].append(span)
        for label, group in by_label.items():
            self.same_label_overlapping[label] += sum(_overlapping(group))
        for span in dropped:
            self.dropped[span[2]] += 1
        for span in column_dropped:
            self.column_dropped[span[2]] += 1

    def merge(self, other: "LossCounter") -> "LossCounter":
        """Return the sum of two counters (for the all-splits total)."""
        out = LossCounter(docs=self.docs + other.docs, duplicates=self.duplicates + other.duplicates)
        for name in ("spans", "overlapping", "dropped", "same_label_overlapping", "column_dropped"):
            setattr(out, name, getattr(self, name) + getattr(other, name))
        return out

    def to_dict(self) -> Dict[str, Any]:
        """The report: totals, shares (None when undefined) and per-label rows."""
        n_spans = sum(self.spans.values())
        n_overlap = sum(self.overlapping.values())
        n_dropped = sum(self.dropped.values())
        n_same = sum(self.same_label_overlapping.values())
        n_col = sum(self.column_dropped.values())
        labels = sorted(self.spans)
        return {
            "docs": self.docs,
            "spans": n_spans,
            "duplicates_collapsed": self.duplicates,
            "overlapping_spans": n_overlap,
            "ner_tags": {
                "kept": n_spans - n_dropped,
                "dropped": n_dropped,
                "share_overlapping_lost": _share(n_dropped, n_overlap),
                "share_spans_lost": _share(n_dropped, n_spans),
            },
            "label_columns": {
                "same_label_overlapping": n_same,
                "dropped": n_col,
                "share_spans_lost": _share(n_col, n_spans),
            },
            "per_label": {
                label: {
                    "spans": self.spans[label],
                    "overlapping": self.overlapping[label],
                    "dropped": self.dropped[label],
                    "kept": self.spans[label] - self.dropped[label],
                    "share_lost": _share(self.dropped[label], self.spans[label]),
                    "label_column_dropped": self.column_dropped[label],
                }
                for label in labels
            },
        }


def _share(part: int, whole: int) -> Optional[float]:
    return round(part / whole, 6) if whole else None


# ---------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------


def doc_to_record(
    doc: Doc,
    spans_key: str,
    labels: Sequence[str],
    flattener: Flattener,
    record_id: str,
) -> Tuple[Dict[str, Any], List[SpanTuple], List[SpanTuple]]:
    """Turn one doc into a dataset row (tags as strings).

    doc (Doc): The annotated doc.
    spans_key (str): The SpanGroup holding the gold spans.
    labels (Sequence[str]): Every label of the export (one IOB column each).
    flattener (Flattener): The policy for `ner_tags`.
    record_id (str): The row id.
    RETURNS (Tuple[Dict[str, Any], List[SpanTuple], List[SpanTuple]]): The row,
        the spans dropped from `ner_tags` and those dropped from the label columns.
    """
    spans = doc_spans(doc, spans_key)
    kept, dropped = flattener(spans)
    record: Dict[str, Any] = {
        "id": record_id,
        # convert stores the document id (meta doc_id, else the input hash)
        "doc_key": str(doc.user_data.get("doc_key", "")),
        "text": doc.text,
        TOKENS_COLUMN: [t.text for t in doc],
        TAGS_COLUMN: spans_to_iob(len(doc), kept),
    }
    column_dropped: List[SpanTuple] = []
    for label in labels:
        own = [s for s in spans if s[2] == label]
        # Across labels nothing is lost; within one label the same policy decides.
        own_kept, own_dropped = flattener(own)
        column_dropped.extend(own_dropped)
        record[label_column(label)] = spans_to_iob(len(doc), own_kept)
    record[SPANS_COLUMN] = [
        {"start": doc[s].idx, "end": doc[e - 1].idx + len(doc[e - 1]), "label": label}
        for s, e, label in dict.fromkeys(spans)
    ]
    return record, dropped, column_dropped


def record_to_spans(record: Dict[str, Any], labels: Sequence[str]) -> List[SpanTuple]:
    """Read the per-label IOB columns of a row back into token spans.

    record (Dict[str, Any]): A row with string tags.
    labels (Sequence[str]): The labels whose columns to read.
    RETURNS (List[SpanTuple]): The spans, sorted.
    """
    out: List[SpanTuple] = []
    for label in labels:
        out.extend(iob_to_spans(record[label_column(label)]))
    return sorted(out)


# ---------------------------------------------------------------------------
# Wordpieces
# ---------------------------------------------------------------------------


def align_wordpieces(
    tokenizer: Any,
    words: Sequence[str],
    tag_ids: Sequence[int],
    subwords: str,
    max_length: Optional[int],
    b_to_i: Optional[Dict[int, int]] = None,
) -> Tuple[Dict[str, List[int]], int]:
    """Tokenize pre-split words and give each wordpiece a label id.

    `first` labels the first piece of each word and gives -100 (ignored by the
    loss) to the others; `all` labels every piece, turning B-X into I-X on the
    pieces after the first, as transformers' run_ner.py does. Special tokens
    always get -100.

    tokenizer (Any): A fast Hugging Face tokenizer.
    words (Sequence[str]): The doc's tokens.
    tag_ids (Sequence[int]): One tag id per word.
    subwords (str): "first" or "all".
    max_length (Optional[int]): Truncate to this many pieces (None: no truncation).
    b_to_i (Optional[Dict[int, int]]): Map from each B- id to its I- id.
    RETURNS (Tuple[Dict[str, List[int]], int]): input_ids, attention_mask and
        labels; and how many words lost all their pieces to truncation.
    """
    if subwords not in SUBWORD_MODES:
        raise ExportError(f"unknown subword mode '{subwords}' (choose from {', '.join(SUBWORD_MODES)})")
    enc = tokenizer(
        list(words),
        is_split_into_words=True,
        truncation=max_length is not None,
        max_length=max_length,
    )
    word_ids = enc.word_ids()
    labels: List[int] = []
    previous = None
    for word in word_ids:
        if word is None:
            labels.append(-100)
        elif word != previous:
            labels.append(int(tag_ids[word]))
        elif subwords == "all":
            tag = int(tag_ids[word])
            labels.append((b_to_i or {}).get(tag, tag))
        else:
            labels.append(-100)
        previous = word
    seen = {w for w in word_ids if w is not None}
    # Words that produce no piece at all (whitespace tokens) are not "truncated".
    last = max(seen) if seen else -1
    truncated = 0
    if max_length is not None and len(enc["input_ids"]) >= max_length:
        truncated = sum(1 for w in range(last + 1, len(words)) if words[w].strip())
    row = {"input_ids": list(enc["input_ids"]), "attention_mask": list(enc["attention_mask"]), "labels": labels}
    return row, truncated


def boundaries_inside_wordpieces(
    tokenizer: Any, text: str, char_spans: Sequence[Tuple[int, int, str]]
) -> List[Tuple[int, int, str]]:
    """The spans whose start or end falls strictly inside a wordpiece of `text`.

    Trained on pre-split words every span boundary is a word boundary, but a
    model that reads raw text (a `pipeline("token-classification")`) sees the
    tokenizer's own pieces: such spans cannot be predicted exactly by it.

    tokenizer (Any): A fast Hugging Face tokenizer.
    text (str): The raw text.
    char_spans (Sequence[Tuple[int, int, str]]): (start char, end char, label).
    RETURNS (List[Tuple[int, int, str]]): The spans cut by a wordpiece.
    """
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    pieces = sorted((s, e) for s, e in offsets if e > s)
    starts = [s for s, _ in pieces]

    def inside(c: int) -> bool:
        i = bisect_right(starts, c) - 1
        # bisect_right: a piece starting exactly at c is a clean boundary.
        return i >= 0 and pieces[i][0] < c < pieces[i][1]

    return [span for span in char_spans if inside(span[0]) or inside(span[1])]


def _load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    if not Path(path).is_dir():
        raise ExportError(f"{path}: tokenizer must be a local directory (a saved Hugging Face tokenizer)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as err:
        raise ExportError(f"{path}: cannot load a tokenizer from it ({err})") from err
    if not getattr(tokenizer, "is_fast", False):
        raise ExportError(f"{path}: a fast tokenizer is needed (word ids and offsets); this one is slow")
    return tokenizer


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------


def load_docs(path: Path, spans_key: str, lang: str = "en") -> List[Doc]:
    """Read a DocBin, checking that it holds spans under `spans_key`.

    path (Path): A .spacy file.
    spans_key (str): The SpanGroup key.
    lang (str): Language of the blank vocab to read into.
    RETURNS (List[Doc]): The docs.
    RAISES (DocBinError): No such file, or not a DocBin.
    RAISES (ExportError): No doc has spans under the key.
    """
    docs = read_docs(path, lang=lang)
    keys = {k for doc in docs for k in doc.spans}
    if docs and keys and spans_key not in keys:
        raise ExportError(
            f"{path}: no doc has spans under key '{spans_key}' (keys found: {', '.join(sorted(keys))})"
        )
    return docs


def _features(tags: Sequence[str], labels: Sequence[str], with_wordpieces: bool) -> Any:
    from datasets import ClassLabel, Features, List as DList, Value

    feats: Dict[str, Any] = {
        "id": Value("string"),
        "doc_key": Value("string"),
        "text": Value("string"),
        TOKENS_COLUMN: DList(Value("string")),
        TAGS_COLUMN: DList(ClassLabel(names=list(tags))),
    }
    for label in labels:
        feats[label_column(label)] = DList(ClassLabel(names=["O", f"B-{label}", f"I-{label}"]))
    feats[SPANS_COLUMN] = DList({"start": Value("int32"), "end": Value("int32"), "label": Value("string")})
    if with_wordpieces:
        feats["input_ids"] = DList(Value("int32"))
        feats["attention_mask"] = DList(Value("int8"))
        feats["labels"] = DList(Value("int32"))
    return Features(feats)


def export_hf(
    splits: Dict[str, Path],
    output_dir: Path,
    *,
    spans_key: str = "sc",
    policy: str = "longest",
    priority: Sequence[str] = (),
    tokenizer_path: Optional[Path] = None,
    subwords: str = "first",
    max_length: Optional[int] = 512,
    file_format: str = "jsonl",
    lang: str = "en",
    progress: bool = True,
    max_examples: int = 20,
) -> Dict[str, Any]:
    """Write the corpus as a Hugging Face token classification dataset.

    Writes into `output_dir`: `dataset/` (`DatasetDict.save_to_disk`),
    `{jsonl,parquet}/{split}.{ext}` (JSONL carries tag names, parquet the
    ClassLabel ids with their feature metadata), `label_map.json` and
    `loss_report.json`. Split names "train" and "dev" become "train" and
    "validation"; any other name is kept.

    splits (Dict[str, Path]): Split name to DocBin path, e.g. {"train": ..., "dev": ...}.
    output_dir (Path): Where to write.
    spans_key (str): The SpanGroup holding the gold spans.
    policy (str): How `ner_tags` flattens overlaps: longest, priority or first.
    priority (Sequence[str]): Label order for the 'priority' policy.
    tokenizer_path (Optional[Path]): A local HF tokenizer; adds wordpiece columns.
    subwords (str): Label the "first" wordpiece of a word only, or "all".
    max_length (Optional[int]): Wordpiece truncation length (None: none).
    file_format (str): "jsonl" or "parquet" for the per-split files.
    lang (str): Language of the vocab the DocBins are read with.
    progress (bool): Show a progress bar per split.
    max_examples (int): How many cut-by-a-wordpiece spans the report lists.
    RETURNS (Dict[str, Any]): The loss report (also saved as loss_report.json).
    """
    from datasets import Dataset, DatasetDict
    from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from tqdm import tqdm

    if file_format not in FORMATS:
        raise ExportError(f"unknown format '{file_format}' (choose from {', '.join(FORMATS)})")
    if subwords not in SUBWORD_MODES:
        raise ExportError(f"unknown subword mode '{subwords}' (choose from {', '.join(SUBWORD_MODES)})")
    if policy == "priority" and not priority:
        raise ExportError("the 'priority' policy needs a label order (--priority PR,CHEBI,...)")
    flattener = make_flattener(policy, priority)
    loaded = {SPLIT_NAMES.get(name, name): (Path(path), load_docs(path, spans_key, lang)) for name, path in splits.items()}
    labels = sorted({s[2] for _, docs in loaded.values() for doc in docs for s in doc_spans(doc, spans_key)})
    unknown = [label for label in priority if label not in labels]
    if policy == "priority" and unknown:
        raise ExportError(f"--priority names labels not in the corpus: {', '.join(unknown)} (labels: {', '.join(labels)})")
    tags = ["O"] + [f"{p}-{label}" for label in labels for p in ("B", "I")]
    tag2id = {tag: i for i, tag in enumerate(tags)}
    b_to_i = {tag2id[f"B-{label}"]: tag2id[f"I-{label}"] for label in labels}
    tokenizer = _load_tokenizer(tokenizer_path) if tokenizer_path is not None else None

    report: Dict[str, Any] = {
        "policy": policy,
        "priority": list(priority),
        "spans_key": spans_key,
        "labels": labels,
        "splits": {},
    }
    counters: Dict[str, LossCounter] = {}
    pieces: Dict[str, Any] = {}
    rows_by_split: Dict[str, List[Dict[str, Any]]] = {}
    for split, (path, docs) in loaded.items():
        counter = LossCounter()
        cut = Counter()
        spans_seen = 0
        examples: List[Dict[str, Any]] = []
        truncated_docs = truncated_words = 0
        rows = []
        for i, doc in enumerate(tqdm(docs, desc=f"export {split}", unit="doc", disable=not progress)):
            record, dropped, column_dropped = doc_to_record(doc, spans_key, labels, flattener, f"{split}-{i}")
            counter.add(doc_spans(doc, spans_key), dropped, column_dropped)
            if tokenizer is not None:
                row, lost = align_wordpieces(
                    tokenizer, record[TOKENS_COLUMN], [tag2id[t] for t in record[TAGS_COLUMN]],
                    subwords, max_length, b_to_i,
                )
                record.update(row)
                truncated_docs += int(lost > 0)
                truncated_words += lost
                char_spans = [(s["start"], s["end"], s["label"]) for s in record[SPANS_COLUMN]]
                spans_seen += len(char_spans)
                for start, end, label in boundaries_inside_wordpieces(tokenizer, doc.text, char_spans):
                    cut[label] += 1
                    if len(examples) < max_examples:
                        examples.append({"id": record["id"], "start": start, "end": end,
                                         "label": label, "text": doc.text[start:end]})
            rows.append(record)
        rows_by_split[split] = rows
        counters[split] = counter
        report["splits"][split] = {"source": str(path), **counter.to_dict()}
        if tokenizer is not None:
            pieces[split] = {
                "spans": spans_seen,
                "boundary_inside_wordpiece": sum(cut.values()),
                "share": _share(sum(cut.values()), spans_seen),
                "per_label": dict(sorted(cut.items())),
                "truncated_docs": truncated_docs,
                "truncated_words": truncated_words,
                "examples": examples,
            }
    total = LossCounter()
    for counter in counters.values():
        total = total.merge(counter)
    report["total"] = total.to_dict()
    if tokenizer is not None:
        report["wordpieces"] = {
            "tokenizer": str(tokenizer_path),
            "subwords": subwords,
            "max_length": max_length,
            "splits": pieces,
            "boundary_inside_wordpiece": sum(p["boundary_inside_wordpiece"] for p in pieces.values()),
        }

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    features = _features(tags, labels, tokenizer is not None)
    dataset = DatasetDict(
        {split: Dataset.from_list(rows, features=features) for split, rows in rows_by_split.items()}
    )
    quiet = not progress and not are_progress_bars_disabled()
    if quiet:
        disable_progress_bars()
    try:
        dataset.save_to_disk(str(output_dir / "dataset"))
    finally:
        if quiet:
            enable_progress_bars()
    files_dir = output_dir / file_format
    files_dir.mkdir(exist_ok=True)
    for split, rows in rows_by_split.items():
        if file_format == "jsonl":
            # Tag names, not ids: the shape AutoTrain's local JSONL upload reads.
            with (files_dir / f"{split}.jsonl").open("w", encoding="utf8") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            dataset[split].to_parquet(str(files_dir / f"{split}.parquet"))
    label_map = {
        "tags": tags,
        "id2label": {str(i): t for i, t in enumerate(tags)},
        "label2id": tag2id,
        "labels": labels,
        "label_columns": {label: label_column(label) for label in labels},
        "columns": {"tokens": TOKENS_COLUMN, "tags": TAGS_COLUMN, "spans": SPANS_COLUMN},
        "autotrain": {"tokens_column": TOKENS_COLUMN, "tags_column": TAGS_COLUMN},
        "splits": list(rows_by_split),
    }
    write_json(label_map, output_dir / "label_map.json")
    write_json(report, output_dir / "loss_report.json")
    return report


def export_from_sources(
    train_sources: Sequence[str],
    dev_sources: Sequence[str],
    output_dir: Path,
    *,
    spans_key: str = "sc",
    merge: str = "majority",
    align: str = "strict",
    eval_split: float = 0.2,
    seed: int = 0,
    **export_kwargs: Any,
) -> Dict[str, Any]:
    """Convert any source `convert` reads (Prodigy files or databases, Argilla
    and Label Studio exports) and export the result, in one call.

    The converted corpus, its report and its rejections file are kept in
    `output_dir/corpus/`, so the export is accounted for like any conversion.

    train_sources (Sequence[str]): Sources for training (paths or URLs).
    dev_sources (Sequence[str]): Eval sources; empty splits `eval_split` off.
    output_dir (Path): Where to write (the export, and corpus/).
    spans_key (str): The SpanGroup key.
    merge (str): Merge policy for several annotators.
    align (str): Alignment policy for spans off token boundaries.
    eval_split (float): Share split off as validation when dev_sources is empty.
    seed (int): Seed of that split.
    export_kwargs (Any): Passed on to `export_hf`.
    RETURNS (Dict[str, Any]): The loss report, with the conversion's balance.
    """
    from ..ingest.convert import ConvertOptions, convert
    from ..ingest.tasks import IngestError

    corpus = Path(output_dir) / "corpus"
    options = ConvertOptions(
        eval=list(dev_sources), eval_split=eval_split, spans_key=spans_key, merge=merge, align=align, seed=seed
    )
    try:
        converted = convert(list(train_sources), corpus, options)
    except IngestError as err:
        raise ExportError(f"convert: {err}") from err
    report = export_hf(
        {"train": corpus / "train.spacy", "dev": corpus / "dev.spacy"}, output_dir, spans_key=spans_key, **export_kwargs
    )
    report["convert"] = {
        key: converted[key] for key in ("read", "kept", "rejected", "merged", "duplicates", "balanced", "rejected_by_reason")
    }
    report["convert"]["report"] = str(corpus / "report.json")
    write_json(report, Path(output_dir) / "loss_report.json")
    return report


def format_loss_table(report: Dict[str, Any]) -> Tuple[List[Tuple[Any, ...]], Tuple[str, ...]]:
    """Rows and header of the per-label loss table of the all-splits total."""
    header = ("label", "spans", "overlapping", "dropped (ner_tags)", "% lost", "dropped (iob_ cols)")
    rows = []
    for label, row in report["total"]["per_label"].items():
        share = row["share_lost"]
        rows.append((label, row["spans"], row["overlapping"], row["dropped"],
                     f"{100 * share:.1f}" if share is not None else "-", row["label_column_dropped"]))
    return rows, header
