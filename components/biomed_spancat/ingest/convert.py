"""The `convert` step: Prodigy sources in, DocBins and a report out.

    sources -> Task stream -> classify answer -> validate + align -> group
    (duplicates dropped) -> merge -> split by document -> DocBins (atomic)

Every task read ends up in exactly one bucket of the ledger (kept,
rejected by reason, merged, duplicate); the balance is checked before
anything is renamed into place.
"""

import json
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

from spacy.tokens import DocBin
from spacy.vocab import Vocab

from .answers import answer_kind, classify_answer
from .merge import MERGE_POLICIES, Grouper
from .readers import DatasetInfo, ReadOptions, get_reader, iter_sources, redact_url
from .split import split_documents
from .stats import SpanStats
from ..outputs import OutputsError, StepOutputs
from .tasks import IngestError, Ledger, Task, pseudonym
from .validate import ALIGN_POLICIES, Annotation, Rejection, ValidateOptions, answer_keys, validate_task
from .writer import BINARY_ATTRS, SpansDocBin, build_binary_doc, build_doc, fast_msgpack, write_files

__all__ = ["ConvertOptions", "convert", "resolve_sources", "route_sources", "check_labels", "BINARY_NOTE", "ROLE_PREFIXES"]

BINARY_NOTE = (
    "Binary answers (ner.teach, spans.teach and similar: model-proposed spans accepted or rejected one "
    "by one) say nothing about the rest of the text, so they are not training data for spancat, which "
    "treats every unmarked span as negative. Complete them with `spans.correct`/`ner.correct`, or keep "
    "them as partial evidence with --keep-binary: binary.spacy holds accepted spans under "
    "'<spans_key>_accepted' and as doc.ents with every other token missing (not 'outside'), rejected "
    "spans under '<spans_key>_rejected' (spaCy's ner `incorrect_spans_key`), and no '<spans_key>' group; "
    "a span answered reject is never a positive span."
)

# Every file convert may write: those a run does not write (test.spacy,
# binary.spacy) are removed when it publishes, so none is left from an older run.
OUTPUT_NAMES = ["train.spacy", "dev.spacy", "test.spacy", "binary.spacy", "report.json", "rejections.jsonl"]

Progress = Callable[[Iterator[Task]], Iterator[Task]]


@dataclass
class ConvertOptions:
    """Everything `convert` needs besides its sources and output folder.

    datasets (List[str]): Datasets to read from database/folder sources; an
        `eval:` prefix marks an eval dataset (as in Prodigy's train recipe).
        Empty reads every non-session dataset.
    eval (List[str]): Eval sources (paths/URLs) or dataset names; empty means split.
    eval_split (float): Share of training tasks split off as dev when `eval` is empty.
    test (List[str]): Test sources or dataset names.
    test_split (float): Share split off as test when `test` is empty.
    spans_key (str): The `doc.spans` key.
    merge (str): Merge policy (majority|latest|review).
    align (str): Alignment policy (strict|expand|contract).
    seed (int): Split seed.
    labels (Optional[Set[str]]): Label set; None accepts any.
    rename (Dict[str, str]): Label renames.
    unknown_labels (str): "reject" the task or "drop" the span.
    include_sessions (bool): Also read per-session datasets.
    keep_binary (bool): Write binary answers to binary.spacy.
    fmt (Optional[str]): Force a reader format.
    read (ReadOptions): Reader options (database timeout, batch size).
    """

    datasets: List[str] = field(default_factory=list)
    eval: List[str] = field(default_factory=list)
    eval_split: float = 0.2
    test: List[str] = field(default_factory=list)
    test_split: float = 0.0
    spans_key: str = "sc"
    merge: str = "majority"
    align: str = "strict"
    seed: int = 0
    labels: Optional[Set[str]] = None
    rename: Dict[str, str] = field(default_factory=dict)
    unknown_labels: str = "reject"
    include_sessions: bool = False
    keep_binary: bool = False
    fmt: Optional[str] = None
    read: ReadOptions = field(default_factory=ReadOptions)


# A source given as "eval:PATH" (or "dev:PATH", "test:PATH") is eval (test) data:
# one source string can then carry its own eval split, as the shipped sample does.
ROLE_PREFIXES = {"eval": "dev", "dev": "dev", "test": "test"}


def route_sources(sources: Sequence[str], options: ConvertOptions) -> Tuple[List[str], ConvertOptions]:
    """Move sources prefixed `eval:`/`dev:`/`test:` into the options' eval/test lists.

    `weasel run all --vars.prodigy_source "train.jsonl eval:dev.jsonl"` names
    train and eval data in one variable, so a user who replaces it with their
    own export replaces the eval data too (and gets a split of their own data).

    sources (Sequence[str]): The main sources, some possibly prefixed.
    options (ConvertOptions): The options; not modified.
    RETURNS (Tuple[List[str], ConvertOptions]): The training sources and a copy
        of the options with the prefixed sources added to `eval` / `test`.
    """
    train: List[str] = []
    routed: Dict[str, List[str]] = {"dev": [], "test": []}
    for source in sources:
        prefix, sep, rest = source.partition(":")
        if sep and prefix in ROLE_PREFIXES and rest and not rest.startswith("//"):
            routed[ROLE_PREFIXES[prefix]].append(rest)
        else:
            train.append(source)
    if not routed["dev"] and not routed["test"]:
        return list(sources), options
    return train, replace(options, eval=list(options.eval) + routed["dev"], test=list(options.test) + routed["test"])


def check_labels(labels: Dict[str, Set[str]], ledger: Ledger) -> Dict[str, Any]:
    """Compare the span labels of train with those of dev and test.

    A model evaluated on labels it never saw scores zero, and a threshold tuned
    on them is meaningless, so disjoint label sets stop the conversion; labels
    found on one side only are a warning (in the report and on the card).

    labels (Dict[str, Set[str]]): Split name -> span labels kept in it.
    ledger (Ledger): Receives the warnings.
    RETURNS (Dict[str, Any]): Per split its labels, and per eval split the
        labels only in train and only in it, plus the warnings.
    RAISES (IngestError): Train and an eval split both have spans, with no label in common.
    """
    train = labels.get("train", set())
    out: Dict[str, Any] = {"labels": {split: sorted(found) for split, found in labels.items()}, "warnings": []}
    for split in sorted(set(labels) - {"train"}):
        other = labels[split]
        if not train or not other:
            continue
        if not train & other:
            raise IngestError(
                f"train and {split} share no span label: train has {', '.join(sorted(train))}; "
                f"{split} has {', '.join(sorted(other))}. The model would be tuned and evaluated on labels "
                f"it never learns: give eval data annotated with the same labels (or leave the eval data "
                f"empty to split it off the training source)"
            )
        only_train, only_other = sorted(train - other), sorted(other - train)
        out[f"only_in_train_not_{split}"] = only_train
        out[f"only_in_{split}"] = only_other
        if only_train:
            out["warnings"].append(
                f"labels in train but not in {split} (not evaluated): {', '.join(only_train)}"
            )
        if only_other:
            out["warnings"].append(
                f"labels in {split} but not in train (never predicted, recall 0): {', '.join(only_other)}"
            )
    for warning in out["warnings"]:
        ledger.warn(warning)
    return out


def _looks_like_source(item: str) -> bool:
    return (
        item.startswith("env:")
        or bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", item))
        or Path(item).exists()
        or "/" in item
        or (item.endswith((".jsonl", ".gz", ".db", ".sqlite", ".json", ".ndjson")))
    )


def _split_list(value: Sequence[str]) -> List[str]:
    out: List[str] = []
    for item in value:
        out.extend(x.strip() for x in item.split(",") if x.strip())
    return out


def resolve_sources(
    sources: Sequence[str], options: ConvertOptions
) -> Tuple[List[Tuple[str, Optional[List[str]], str]], Dict[str, Any]]:
    """Decide which source and which datasets feed train, dev and test.

    sources (Sequence[str]): The main sources (paths or URLs).
    options (ConvertOptions): Dataset, eval and test selection.
    RETURNS (Tuple[list, dict]): (source, datasets or None, role) triples and
        a description of what was selected (for the report; passwords redacted).
    RAISES (IngestError): Unknown dataset names, missing sources.
    """
    role_datasets: Dict[str, List[str]] = {"train": [], "dev": [], "test": []}
    for name in _split_list(options.datasets):
        prefix, _, rest = name.partition(":")
        if rest and prefix in ("eval", "dev"):
            role_datasets["dev"].append(rest)
        elif rest and prefix == "test":
            role_datasets["test"].append(rest)
        else:
            role_datasets["train"].append(name)
    role_sources: Dict[str, List[str]] = {"dev": [], "test": []}
    for role, items in (("dev", options.eval), ("test", options.test)):
        for item in _split_list(items):
            (role_sources[role] if _looks_like_source(item) else role_datasets[role]).append(item)

    plan: List[Tuple[str, Optional[List[str]], str]] = []
    described: List[Dict[str, Any]] = []
    found: Set[str] = set()
    available: Dict[str, List[str]] = {}
    held_out = set(role_datasets["dev"]) | set(role_datasets["test"])
    for source in sources:
        reader = get_reader(source, options.fmt)
        shown = redact_url(source)
        if reader.list_datasets is None:
            plan.append((source, None, "train"))
            described.append({"source": shown, "format": reader.name, "role": "train"})
            continue
        infos: List[DatasetInfo] = reader.list_datasets(source, options.read)
        names = [d.name for d in infos]
        sessions = [d.name for d in infos if d.session]
        # session datasets are named after the annotator's session: never shown as they are
        private = [pseudonym(n, "prodigy") if n in sessions else n for n in names]
        available[shown] = private
        public = dict(zip(names, private))
        for role in ("train", "dev", "test"):
            wanted = role_datasets[role]
            if wanted:
                chosen = [n for n in wanted if n in names]
            elif role == "train":
                chosen = [
                    d.name for d in infos if d.name not in held_out and (options.include_sessions or not d.session)
                ]
            else:
                chosen = []
            found.update(chosen)
            if chosen:
                plan.append((source, chosen, role))
                shown_names = [public[n] for n in chosen]
                described.append({"source": shown, "format": reader.name, "role": role, "datasets": shown_names})
        skipped = [n for n in sessions if not options.include_sessions and n not in found]
        if skipped:
            described.append({"source": shown, "skipped_session_datasets": [public[n] for n in skipped]})
    missing = [n for role in role_datasets.values() for n in role if n not in found]
    if missing:
        if available:
            where = "; ".join(f"{src}: {', '.join(names) or '(none)'}" for src, names in available.items())
            raise IngestError(f"unknown dataset {', '.join(repr(m) for m in missing)} (available in {where})")
        raise IngestError(
            f"dataset names {', '.join(repr(m) for m in missing)} given, but no source holds datasets "
            "(a database or a folder of db-out files); give eval data as a path instead"
        )
    for role in ("dev", "test"):
        for source in role_sources[role]:
            reader = get_reader(source, options.fmt)
            datasets = None
            if reader.list_datasets is not None and not options.include_sessions:
                datasets = [d.name for d in reader.list_datasets(source, options.read) if not d.session]
            plan.append((source, datasets, role))
            entry: Dict[str, Any] = {"source": redact_url(source), "format": reader.name, "role": role}
            if datasets is not None:
                entry["datasets"] = datasets
            described.append(entry)
    return plan, {"sources": described}


def _check_options(options: ConvertOptions) -> None:
    if options.merge not in MERGE_POLICIES:
        raise IngestError(f"unknown merge policy '{options.merge}' (choose from {', '.join(MERGE_POLICIES)})")
    if options.align not in ALIGN_POLICIES:
        raise IngestError(f"unknown alignment policy '{options.align}' (choose from {', '.join(ALIGN_POLICIES)})")
    if options.unknown_labels not in ("reject", "drop"):
        raise IngestError(f"--unknown-labels must be 'reject' or 'drop', not '{options.unknown_labels}'")
    for name, value in (("eval split", options.eval_split), ("test split", options.test_split)):
        if not 0.0 <= value < 1.0:
            raise IngestError(f"the {name} must be in [0, 1), got {value}")


def _read(
    plan: List[Tuple[str, Optional[List[str]], str]],
    options: ConvertOptions,
    ledger: Ledger,
    progress: Optional[Progress],
    sessions: Set[str],
) -> Tuple[Grouper, List[Annotation]]:
    """Read, classify and validate every task; group the complete ones.
    `sessions` receives the names of the session datasets read."""
    validate_options = ValidateOptions(
        align=options.align, labels=options.labels, rename=options.rename, unknown_labels=options.unknown_labels
    )
    grouper = Grouper(ledger)
    binary: List[Annotation] = []
    sessions.update(_session_datasets(plan, options))
    stream: Iterator[Task] = iter_sources(plan, options.read, options.fmt)
    if progress is not None:
        stream = progress(stream)
    for task in stream:
        _hide_session_dataset(task, sessions)
        ledger.count_read(task)
        try:
            if task.data is not None:
                kind = answer_kind(task.data)
                if kind is not None:
                    answer = task.data.get("answer")
                    if options.keep_binary:
                        binary.append(validate_task(task, validate_options, ledger, binary=True))
                    ledger.binary[f"{kind} {answer}"] += 1
                    ledger.reject(task, "binary_answer", classify_answer(task.data)[1])  # type: ignore[index]
                    continue
                excluded = classify_answer(task.data)
                if excluded is not None:
                    reason, detail = excluded
                    keys = answer_keys(task, validate_options) if reason == "answer_reject" else None
                    if keys is not None:  # it withdraws this annotator's earlier accepts
                        review = task.data.get("_view_id") == "review" or "versions" in task.data
                        grouper.withdraw(keys, task.origin, task.role, review)
                    ledger.reject(task, reason, detail)
                    continue
            grouper.add(validate_task(task, validate_options, ledger))
        except Rejection as rejection:
            ledger.reject(task, rejection.reason, rejection.detail)
    return grouper, binary


def _session_datasets(plan: List[Tuple[str, Optional[List[str]], str]], options: ConvertOptions) -> Set[str]:
    """The names of the per-session datasets that the plan reads (only
    `--include-sessions` or naming one reads them)."""
    names: Set[str] = set()
    for source, datasets, _ in plan:
        reader = get_reader(source, options.fmt)
        if datasets and reader.list_datasets is not None:
            infos = reader.list_datasets(source, options.read)
            names.update(d.name for d in infos if d.session and d.name in datasets)
    return names


def _hide_session_dataset(task: Task, sessions: Set[str]) -> None:
    """A Prodigy session dataset is named after the session (`_session_id`,
    e.g. "dataset-alice@clinic.org"): name it by its pseudonym wherever the
    task's origin is written (rejections, report, DocBins). A dataset is a
    session's when the database says so, or when a task names it as its
    `_session_id`/`_annotator_id` (a db-out file of a session dataset: from
    that row on, `sessions` holds its name)."""
    data, origin = task.data, task.origin
    if origin.dataset is None:
        return
    if origin.dataset in sessions or (
        data is not None and origin.dataset in (data.get("_session_id"), data.get("_annotator_id"))
    ):
        sessions.add(origin.dataset)  # its later rows too, also those that cannot be parsed
        hidden = pseudonym(origin.dataset, "prodigy")
        # a db-out file is named after its dataset: hide the name in its path too
        source = origin.source.replace(origin.dataset, hidden) if origin.line is not None else origin.source
        task.origin = replace(origin, source=source, dataset=hidden)


def _sum_stats(parts: Iterable[SpanStats]) -> SpanStats:
    total = SpanStats()
    for part in parts:
        for attr in ("spans", "overlapping", "nested", "crossing", "same_extent", "same_label", "lengths"):
            getattr(total, attr).update(getattr(part, attr))
        for label, counts in part.lengths_by_label.items():
            total.lengths_by_label[label].update(counts)
        total.docs += part.docs
        total.tokens += part.tokens
    return total


def convert(
    sources: Sequence[str],
    output_dir: Path,
    options: ConvertOptions,
    progress: Optional[Progress] = None,
) -> Dict[str, Any]:
    """Convert Prodigy sources into train/dev(/test) DocBins, a report and a
    rejections file in `output_dir`.

    sources (Sequence[str]): JSONL files (gzip too), folders, a SQLite path or
        a postgresql:// URL (or any registered format).
    output_dir (Path): Where train.spacy, dev.spacy (test.spacy), report.json
        and rejections.jsonl are written, published together as one unit
        (`biomed_spancat.outputs`): a second convert into the same folder is
        refused while this one runs.
    options (ConvertOptions): Selection, policies and output settings.
    progress (Optional[Progress]): Wraps the task stream (e.g. tqdm) to show counts.
    RETURNS (Dict[str, Any]): The report (also written to report.json).
    RAISES (IngestError): A fatal problem, with the source and the reason;
        nothing is renamed into place then.
    """
    sources, options = route_sources(sources, options)
    _check_options(options)
    t0 = time.perf_counter()
    output_dir = Path(output_dir)
    plan, selection = resolve_sources(sources, options)
    try:
        with StepOutputs("convert", [output_dir / name for name in OUTPUT_NAMES]) as unit:
            return _convert(plan, selection, output_dir, options, progress, unit, t0)
    except OutputsError as err:
        raise IngestError(str(err)) from None


def _convert(
    plan: Any,
    selection: Dict[str, Any],
    output_dir: Path,
    options: ConvertOptions,
    progress: Optional[Progress],
    unit: StepOutputs,
    t0: float,
) -> Dict[str, Any]:
    """The conversion proper, writing into the open output unit (published by the caller)."""
    rejections_path = output_dir / "rejections.jsonl"
    rejections = open(unit.path(rejections_path), "w", encoding="utf8")
    ledger = Ledger(rejections_file=rejections)
    try:
        with fast_msgpack():
            sessions: Set[str] = set()
            grouper, binary = _read(plan, options, ledger, progress, sessions)
            for entry in selection["sources"]:  # session datasets found while reading (db-out folders)
                if "datasets" in entry:
                    entry["datasets"] = [pseudonym(n, "prodigy") if n in sessions else n for n in entry["datasets"]]
            t_read = time.perf_counter()
            # split the training documents; dev/test sources go where they were asked
            has_dev, has_test = bool(grouper.doc_sizes("dev")), bool(grouper.doc_sizes("test"))
            asked_dev = bool(options.eval) or any(
                d.startswith(("eval:", "dev:")) for d in _split_list(options.datasets)
            )
            asked_test = bool(options.test) or any(d.startswith("test:") for d in _split_list(options.datasets))
            fractions: Dict[str, float] = {}
            if not asked_test and not has_test and options.test_split > 0:
                fractions["test"] = options.test_split
            if not asked_dev and not has_dev and options.eval_split > 0:
                fractions["dev"] = options.eval_split
            doc_sizes = grouper.doc_sizes("train")
            assignment = split_documents(dict(doc_sizes), fractions, options.seed) if fractions else {}
            vocab = Vocab()
            bins: Dict[str, SpansDocBin] = {}
            stats: Dict[str, SpanStats] = {}
            documents: Dict[str, Set[str]] = {}
            wanted = ["train", "dev"] + (["test"] if asked_test or has_test or "test" in fractions else [])
            for split in wanted:
                bins[split] = SpansDocBin()
                stats[split] = SpanStats()
                documents[split] = set()
            # groups are merged and released one at a time: only the docs being written stay
            for annotation in grouper.merged(options.merge):
                ledger.kept += 1
                split = assignment.get(annotation.doc_key, "train") if annotation.role == "train" else annotation.role
                words = annotation.words
                bins[split].add_words(build_doc(vocab, annotation, options.spans_key, words=words), words)
                stats[split].add(annotation.n_tokens, annotation.spans)
                documents[split].add(annotation.doc_key)
                ledger.kept_by_split[split] += 1
            ledger.check_balance()
            for split in wanted:
                if not stats[split].docs:
                    ledger.warn(f"{split}.spacy is empty: no tasks were kept for {split}")
            for other in wanted[1:]:
                shared = documents["train"] & documents[other]
                if shared:
                    ledger.warn(
                        f"{len(shared)} document(s) appear in both train and {other} "
                        f"(e.g. {sorted(shared)[0]}): check the eval source for leakage"
                    )
            label_check = check_labels({split: set(stats[split].spans) for split in wanted}, ledger)
            if binary:
                binary_bin = DocBin(attrs=BINARY_ATTRS, store_user_data=True)
                for annotation in binary:
                    binary_bin.add(build_binary_doc(vocab, annotation, options.spans_key))
                bins["binary"] = binary_bin  # type: ignore[assignment]

            report: Dict[str, Any] = {
                "settings": {
                    "spans_key": options.spans_key,
                    "merge": options.merge,
                    "align": options.align,
                    "seed": options.seed,
                    "eval_split": options.eval_split if "dev" in fractions else None,
                    "test_split": options.test_split if "test" in fractions else None,
                    "labels": sorted(options.labels) if options.labels is not None else None,
                    "rename": options.rename,
                    "unknown_labels": options.unknown_labels,
                    "include_sessions": options.include_sessions,
                    "keep_binary": options.keep_binary,
                },
                **selection,
                **ledger.to_dict(),
                "binary_note": BINARY_NOTE if ledger.binary else None,
                "label_check": label_check,
                "splits": {split: {"documents": len(documents[split]), **stats[split].to_dict()} for split in wanted},
                "spans": _sum_stats(stats.values()).to_dict(),
                "outputs": {},
                "seconds": {"read": round(t_read - t0, 2)},
            }
            # serialize everything first, then rename it all into place
            files: Dict[Path, bytes] = {}
            for split, docbin in bins.items():
                files[output_dir / f"{split}.spacy"] = docbin.to_bytes()
                report["outputs"][split] = str(output_dir / f"{split}.spacy")
            bins.clear()
        rejections.close()
        report["outputs"]["rejections"] = str(rejections_path)
        report["outputs"]["report"] = str(output_dir / "report.json")
        report["seconds"]["total"] = round(time.perf_counter() - t0, 2)
        files[output_dir / "report.json"] = (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode("utf8")
        write_files(files, unit)
        return report
    finally:
        if not rejections.closed:
            rejections.close()
