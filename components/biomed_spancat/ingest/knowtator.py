"""Reader for Knowtator XML concept annotations laid out as the CRAFT corpus.

A corpus folder (CRAFT's repository, or one laid out like it) holds:

    articles/txt/<ID>.txt                          the article texts
    articles/ids/<NAME>-ids-<SPLIT>.txt            optional: article ids per split
    concept-annotation/<LABEL>/<LABEL>/knowtator/<ID>.txt.knowtator.xml    (Knowtator 1)
    concept-annotation/<LABEL>/<LABEL>_without_genotype_annotations/knowtator-2/<ID>.xml
                                                   (Knowtator 2: CRAFT's MONDO)

Each ontology folder is one label (CRAFT: CHEBI, CL, GO_BP, GO_CC, GO_MF,
MONDO, MOP, NCBITaxon, PR, SO, UBERON). Only the core annotation sets are
read (the ontology's own classes); CRAFT's `+extensions` and MONDO's
"with genotype" sets are left aside. Every id list is a dataset
(`craft-ids-train.txt` -> `craft_train`), so `--datasets craft_train
--eval craft_dev --test craft_test` keeps CRAFT's own split; without id
lists every article is one dataset named after the folder.

One task per paragraph (a non-empty line of the article text): its spans
are the annotations inside it, its tokens spaCy's English tokenizer's, split
where an annotation boundary falls inside a token, so that every span is
token-aligned exactly as annotated. Annotations that are not one piece of one
paragraph cannot be a span and are counted in the report's `spans_dropped`:
`discontinuous` (several pieces, e.g. "white ... fat"; CRAFT has 2,015),
`crosses_paragraph` (CRAFT: 1) and `empty` (no character). Annotator names in the files are never read: CRAFT
publishes one consolidated annotation, recorded as `knowtator:consolidated`.
An article whose text or annotation file is missing or malformed is one
rejected record naming the file, and none of its paragraphs are kept.
"""

import re
import xml.etree.ElementTree as ET
from bisect import bisect_left
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from ._bridge import prodigy_task
from .readers import DatasetInfo, ReadOptions, register_reader
from .tasks import IngestError, Origin, Task

__all__ = [
    "FORMAT",
    "ANNOTATOR",
    "is_knowtator_corpus",
    "annotation_sets",
    "list_knowtator_datasets",
    "read_knowtator",
    "read_annotations",
    "split_tokens",
]

FORMAT = "knowtator"
ANNOTATOR = "knowtator:consolidated"
TEXT_DIR = Path("articles") / "txt"
IDS_DIR = Path("articles") / "ids"
ANNOTATION_DIR = Path("concept-annotation")
IDS_PATTERN = re.compile(r"^(?P<name>.+)-ids-(?P<split>[A-Za-z0-9_]+)\.txt$")

CharSpan = Tuple[int, int]


def is_knowtator_corpus(source: str) -> bool:
    """Whether a source is a folder laid out like CRAFT (article texts + concept annotations)."""
    if "://" in source:
        return False
    root = Path(source)
    return (root / TEXT_DIR).is_dir() and (root / ANNOTATION_DIR).is_dir()


def _set_dir(label_dir: Path) -> Optional[Tuple[Path, str]]:
    """The core annotation set of one ontology folder and its file suffix."""
    label = label_dir.name
    for sub, suffix in (
        (Path(label) / "knowtator", ".txt.knowtator.xml"),
        (Path(f"{label}_without_genotype_annotations") / "knowtator-2", ".xml"),
        (Path(label) / "knowtator-2", ".xml"),
    ):
        if (label_dir / sub).is_dir():
            return label_dir / sub, suffix
    return None


def annotation_sets(root: Path) -> Dict[str, Tuple[Path, str]]:
    """The core annotation set of every ontology folder, by label.

    root (Path): The corpus folder.
    RETURNS (Dict[str, Tuple[Path, str]]): label -> (folder of XML files,
        file-name suffix after the article id).
    RAISES (IngestError): No ontology folder holds a Knowtator set.
    """
    sets: Dict[str, Tuple[Path, str]] = {}
    base = root / ANNOTATION_DIR
    for label_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        found = _set_dir(label_dir)
        if found is not None:
            sets[label_dir.name] = found
    if not sets:
        raise IngestError(
            f"{base}: no Knowtator annotation set (expected <LABEL>/<LABEL>/knowtator/*.knowtator.xml)"
        )
    return sets


def _id_lists(root: Path) -> Dict[str, List[str]]:
    lists: Dict[str, List[str]] = {}
    ids_dir = root / IDS_DIR
    if not ids_dir.is_dir():
        return lists
    for path in sorted(ids_dir.iterdir()):
        match = IDS_PATTERN.match(path.name)
        if match and path.is_file():
            ids = [line.strip() for line in path.read_text(encoding="utf8").splitlines() if line.strip()]
            lists[f"{match['name']}_{match['split']}"] = ids
    return lists


def _datasets(source: str) -> Dict[str, List[str]]:
    root = Path(source)
    if not is_knowtator_corpus(source):
        raise IngestError(f"{source}: not a Knowtator corpus folder (needs {TEXT_DIR}/ and {ANNOTATION_DIR}/)")
    lists = _id_lists(root)
    if lists:
        return lists
    ids = sorted(p.name[: -len(".txt")] for p in (root / TEXT_DIR).glob("*.txt"))
    if not ids:
        raise IngestError(f"{root / TEXT_DIR}: no .txt article texts")
    return {root.resolve().name: ids}


def list_knowtator_datasets(source: str, options: ReadOptions) -> List[DatasetInfo]:
    """The datasets of a Knowtator corpus: one per article id list (CRAFT's
    split), or the whole folder when there is none."""
    return [DatasetInfo(name) for name in _datasets(source)]


def read_annotations(path: Path) -> List[Tuple[List[CharSpan], Optional[str], str]]:
    """The character pieces of every annotation in one Knowtator XML file
    (Knowtator 1 `<annotations>` or Knowtator 2 `<knowtator-project>`).

    path (Path): The XML file.
    RETURNS (List[Tuple[List[CharSpan], Optional[str], str]]): Per annotation,
        in file order: its (start, end) pieces in file order, the text the file says they
        cover (pieces joined by " ... "; None if it says nothing) and its id.
    RAISES (ValueError): Malformed XML or a span without integer offsets,
        with the line where it is.
    """
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        line, column = err.position
        raise ValueError(f"{path}:{line}:{column}: malformed XML ({err.msg if hasattr(err, 'msg') else err})")
    annotations: List[Tuple[List[CharSpan], Optional[str], str]] = []
    for k, annotation in enumerate(root.iter("annotation")):
        mention = annotation.find("mention")
        name = annotation.get("id") or (mention.get("id") if mention is not None else None) or f"#{k + 1}"
        pieces: List[Tuple[int, int, Optional[str]]] = []
        for span in annotation.findall("span"):
            start, end = span.get("start"), span.get("end")
            if start is None or end is None or not start.strip().isdigit() or not end.strip().isdigit():
                raise ValueError(f"{path}: annotation {name} has a span without integer start/end ({start!r}, {end!r})")
            pieces.append((int(start), int(end), span.text))
        shown = annotation.findtext("spannedText")  # Knowtator 1; Knowtator 2 puts the text in each span
        if shown is None and pieces and all(p[2] is not None for p in pieces):
            shown = " ... ".join(p[2] or "" for p in pieces)
        annotations.append(([(a, b) for a, b, _ in pieces], shown, name))
    return annotations


def split_tokens(
    words: Sequence[Tuple[int, int, bool]], text: str, boundaries: Sequence[int]
) -> List[Dict[str, Any]]:
    """Split tokens where a boundary falls inside one, as Prodigy tokens.

    words (Sequence[Tuple[int, int, bool]]): (start, end, trailing space) of
        each token, in order.
    text (str): The text the offsets point into.
    boundaries (Sequence[int]): Character offsets that must be token boundaries.
    RETURNS (List[Dict[str, Any]]): `{"text", "start", "end", "id", "ws"}` tokens.
    """
    cuts = sorted(set(boundaries))
    tokens: List[Dict[str, Any]] = []
    for start, end, ws in words:
        inner = cuts[bisect_left(cuts, start + 1) : bisect_left(cuts, end)]
        edges = [start, *inner, end]
        for i in range(len(edges) - 1):
            a, b = edges[i], edges[i + 1]
            last = i == len(edges) - 2
            tokens.append({"text": text[a:b], "start": a, "end": b, "id": len(tokens), "ws": ws and last})
    return tokens


_TOKENIZER = None


def _words(text: str) -> List[Tuple[int, int, bool]]:
    global _TOKENIZER
    if _TOKENIZER is None:
        import spacy

        _TOKENIZER = spacy.blank("en").tokenizer
    return [(t.idx, t.idx + len(t.text), bool(t.whitespace_)) for t in _TOKENIZER(text)]


def _paragraphs(text: str) -> List[Tuple[int, int, int]]:
    """(1-based line, start, end) of every non-empty line."""
    out, pos = [], 0
    for lineno, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            out.append((lineno, pos, pos + len(line)))
        pos += len(line) + 1
    return out


def _article_tasks(
    root: Path, article: str, sets: Dict[str, Tuple[Path, str]], dataset: str
) -> Iterator[Task]:
    text_path = root / TEXT_DIR / f"{article}.txt"
    if not text_path.is_file():
        yield Task(
            None, Origin(str(text_path), dataset=dataset), error=f"article {article}: no text file", reason="missing_text"
        )
        return
    try:
        text = text_path.read_text(encoding="utf8")
    except UnicodeDecodeError as err:
        yield Task(
            None, Origin(str(text_path), dataset=dataset), reason="bad_encoding",
            error=f"article {article}: not valid UTF-8 (byte offset {err.start})",
        )
        return
    by_label: List[Tuple[str, List[List[CharSpan]]]] = []
    n = len(text)
    for label, (folder, suffix) in sets.items():
        path = folder / f"{article}{suffix}"
        if not path.is_file():
            yield Task(
                None, Origin(str(path), dataset=dataset), reason="knowtator_missing_file",
                error=f"article {article}: no {label} annotation file ({path.name}); article left out",
            )
            return
        try:
            annotations = read_annotations(path)
        except (ValueError, OSError) as err:
            yield Task(None, Origin(str(path), dataset=dataset), reason="knowtator_malformed", error=str(err))
            return
        for pieces, shown, name in annotations:
            covered = " ... ".join(text[a:b] for a, b in pieces)
            bad = next(((a, b) for a, b in pieces if not 0 <= a <= b <= n), None)
            if bad is not None or (shown is not None and covered != shown):
                why = (
                    f"span [{bad[0]}:{bad[1]}] is outside the text (length {n})"
                    if bad is not None
                    else f"covers {covered!r} in {text_path.name} but the file says {shown!r}"
                )
                yield Task(
                    None, Origin(str(path), dataset=dataset), reason="knowtator_text_mismatch",
                    error=f"article {article}: {label} annotation {name} {why} (a different version of the text?)",
                )
                return
        by_label.append((label, [sorted(pieces) for pieces, _, _ in annotations]))
    paragraphs = _paragraphs(text)
    line_starts = [start for _, start, _ in paragraphs]
    spans: Dict[int, List[Tuple[int, int, str]]] = {i: [] for i in range(len(paragraphs))}
    dropped: Dict[int, Dict[str, int]] = {}
    for label, annotations in by_label:
        for pieces in annotations:
            if not pieces:
                continue
            first = max(0, bisect_left(line_starts, pieces[0][0] + 1) - 1)
            if len(pieces) > 1:
                reason = "discontinuous"
            elif pieces[0][0] == pieces[0][1]:
                reason = "empty"
            else:
                (start, end), (_, p_start, p_end) = pieces[0], paragraphs[first]
                if p_start <= start and end <= p_end:
                    spans[first].append((start, end, label))
                    continue
                reason = "crosses_paragraph"
            counts = dropped.setdefault(first, {})
            counts[reason] = counts.get(reason, 0) + 1
    for i, (lineno, p_start, p_end) in enumerate(paragraphs):
        line = text[p_start:p_end]
        local = sorted((s - p_start, e - p_start, label) for s, e, label in spans[i])
        tokens = split_tokens(_words(line), line, [b for s, e, _ in local for b in (s, e)])
        starts = {t["start"]: t["id"] for t in tokens}
        ends = {t["end"]: t["id"] for t in tokens}
        task_spans = []
        for s, e, label in local:
            span: Dict[str, Any] = {"start": s, "end": e, "label": label}
            if s in starts and e in ends:
                span["token_start"], span["token_end"] = starts[s], ends[e]
            task_spans.append(span)
        meta = {"source": FORMAT, "doc_id": article, "paragraph": i}
        data = prodigy_task(line, task_spans, ANNOTATOR, meta)
        data["tokens"] = tokens
        if i in dropped:
            data["_spans_dropped"] = dropped[i]
        yield Task(data, Origin(str(text_path), line=lineno, dataset=dataset))


@register_reader(FORMAT, detect=is_knowtator_corpus, list_datasets=list_knowtator_datasets, priority=5)
def read_knowtator(source: str, datasets: Optional[Sequence[str]], options: ReadOptions) -> Iterator[Task]:
    """A Knowtator corpus folder (CRAFT's layout): one task per paragraph.

    source (str): The corpus folder.
    datasets (Optional[Sequence[str]]): Article id lists to read (None: all).
    options (ReadOptions): Unused.
    YIELDS (Task): The tasks; origin = the article's text file and line.
    """
    lists = _datasets(source)
    root = Path(source)
    sets = annotation_sets(root)
    names = list(lists) if datasets is None else list(datasets)
    unknown = [n for n in names if n not in lists]
    if unknown:
        raise IngestError(f"{source}: unknown dataset {', '.join(map(repr, unknown))} (available: {', '.join(lists)})")
    for name in names:
        for article in lists[name]:
            yield from _article_tasks(root, article, sets, name)
