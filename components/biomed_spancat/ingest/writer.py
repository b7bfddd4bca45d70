"""Building Docs from annotations and writing outputs atomically.

A single file is written to a temporary file beside its destination and
renamed into place (`os.replace` is atomic on one filesystem); convert's
several outputs go through one `StepOutputs` unit, published together, so an
interrupted run never leaves a half-written DocBin or a mix of two runs that
the next step would take as done.
"""

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, Optional, Sequence

import numpy
import srsly
from spacy.attrs import SPACY
from spacy.tokens import Doc, DocBin, Span
from spacy.vocab import Vocab

from ..outputs import StepOutputs
from .validate import Annotation

# mkstemp creates files readable by the owner only; outputs get the usual mode
_UMASK = os.umask(0)
os.umask(_UMASK)
_MODE = 0o666 & ~_UMASK

__all__ = [
    "build_doc",
    "build_binary_doc",
    "BINARY_ATTRS",
    "atomic_path",
    "write_docbin",
    "write_text",
    "write_files",
    "fast_msgpack",
    "SpansDocBin",
]

DOCBIN_ATTRS = ["ORTH", "SPACY"]
# binary.spacy also stores entities, whose unannotated tokens stay missing
BINARY_ATTRS = ["ORTH", "SPACY", "ENT_IOB", "ENT_TYPE"]


class SpansDocBin(DocBin):
    """A DocBin for the docs `convert` builds, which carry only words,
    spaces, span groups and user data.

    `DocBin.add` reads nine string attributes of every token (tag, lemma,
    dep, ...) to collect the strings to store; for docs without those
    annotations that loop is most of the writing time. `add_words` stores
    the same arrays and the strings that matter (the words, span labels) and
    gives docs that load back identical (tested against `DocBin.add`).
    """

    def __init__(self) -> None:
        super().__init__(attrs=DOCBIN_ATTRS, store_user_data=True)

    def add_words(self, doc: Doc, words: Sequence[str]) -> None:
        """Add a doc whose token texts are `words`.

        doc (Doc): A doc with no annotation but spaces, spans and user data.
        words (Sequence[str]): Its token texts.
        """
        array = doc.to_array(self.attrs)
        self.tokens.append(array.reshape((array.shape[0], -1)))
        spaces = doc.to_array(SPACY)
        self.spaces.append(numpy.asarray(spaces.reshape((spaces.shape[0], 1)), dtype=bool))
        self.flags.append({"has_unknown_spaces": doc.has_unknown_spaces})
        self.strings.update(words)
        self.strings.add("")
        self.cats.append(doc.cats)
        self.user_data.append(srsly.msgpack_dumps(doc.user_data))
        self.span_groups.append(doc.spans.to_bytes())
        for group in doc.spans.values():
            self.strings.update(span.label_ for span in group)


@contextmanager
def fast_msgpack() -> Iterator[None]:
    """Look srsly's msgpack encoders up once instead of on every call.

    `DocBin.add` serializes each doc's span groups and user data with
    `srsly.msgpack_dumps`, and every call asks catalogue for the registered
    encoders, which rescans all installed entry points: with a large
    environment that is most of the conversion time. The encoders cannot
    change while the docs are added, so the lookup is cached for the block
    and restored afterwards.
    """
    import srsly.msgpack as srsly_msgpack

    registries = [srsly_msgpack.msgpack_encoders, srsly_msgpack.msgpack_decoders]
    patched = []
    try:
        for registry in registries:
            found = registry.get_all()
            registry.get_all = lambda found=found: dict(found)  # type: ignore[method-assign]
            patched.append(registry)
        yield
    finally:
        for registry in patched:
            del registry.get_all  # the instance attribute shadowed the method


def build_doc(
    vocab: Vocab,
    annotation: Annotation,
    spans_key: str,
    extra_key: Optional[str] = None,
    words: Optional[Sequence[str]] = None,
) -> Doc:
    """Build a Doc from an annotation's own tokens, spans under `spans_key`
    (overlaps kept: a SpanGroup holds any spans).

    vocab (Vocab): The shared vocab.
    annotation (Annotation): The merged annotation.
    spans_key (str): The key in `doc.spans`.
    extra_key (Optional[str]): When set, also the key where the spans go
        instead (used for rejected binary answers).
    words (Optional[Sequence[str]]): The annotation's words, when already at hand.
    RETURNS (Doc): The doc; `user_data` holds the doc id, input hash and origin.
    """
    doc = Doc(vocab, words=words or annotation.words, spaces=[bool(s) for s in annotation.spaces])
    key = extra_key or spans_key
    doc.spans[key] = [Span(doc, start, end, label=label) for start, end, label in annotation.spans]
    doc.user_data["doc_key"] = annotation.doc_key
    doc.user_data["input_hash"] = annotation.input_hash
    doc.user_data["origin"] = str(annotation.origin)
    return doc


def build_binary_doc(vocab: Vocab, annotation: Annotation, spans_key: str) -> Doc:
    """Build a Doc from a binary answer (ner.teach and similar), so that
    nothing in it reads as a complete annotation: there is no `spans_key`
    group (spancat would take every unmarked span as a negative). Instead:

    - `doc.spans[spans_key + "_accepted"]`: the spans answered accept;
    - `doc.spans[spans_key + "_rejected"]`: the spans answered reject (for
      spaCy's `ner` with `incorrect_spans_key`);
    - `doc.ents`: the accepted spans (the longest where they overlap), every
      other token's entity annotation *missing*, not "outside": spaCy's `ner`
      then learns nothing about the tokens nobody judged;
    - `user_data["annotation"] = "binary"`.

    vocab (Vocab): The shared vocab.
    annotation (Annotation): The validated binary answer (`spans` accepted,
        `rejected` rejected).
    spans_key (str): The project's spans key.
    RETURNS (Doc): The doc.
    """
    from spacy.util import filter_spans

    doc = Doc(vocab, words=annotation.words, spaces=[bool(s) for s in annotation.spaces])
    accepted = [Span(doc, start, end, label=label) for start, end, label in annotation.spans]
    doc.spans[f"{spans_key}_accepted"] = accepted
    doc.spans[f"{spans_key}_rejected"] = [Span(doc, s, e, label=label) for s, e, label in annotation.rejected]
    doc.set_ents(filter_spans(accepted), default="missing")
    doc.user_data["doc_key"] = annotation.doc_key
    doc.user_data["input_hash"] = annotation.input_hash
    doc.user_data["origin"] = str(annotation.origin)
    doc.user_data["annotation"] = "binary"
    return doc


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it to `path`,
    on any error (KeyboardInterrupt included) remove it and leave `path` as it was.

    path (Path): The final destination.
    YIELDS (Path): The temporary path to write to.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, _MODE)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_docbin(docbin: DocBin, path: Path) -> int:
    """Write a DocBin atomically. RETURNS (int): The number of bytes written."""
    data = docbin.to_bytes()
    with atomic_path(path) as tmp:
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return len(data)


def write_text(text: str, path: Path) -> None:
    """Write a text file atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf8")


def write_files(files: Dict[Path, bytes], unit: StepOutputs) -> None:
    """Write several outputs into an open output unit, which publishes them
    together (see `biomed_spancat.outputs`): none is ever half-written, and
    none is seen beside the outputs of another run.

    files (Dict[Path, bytes]): Destination -> content.
    unit (StepOutputs): The step's open output unit.
    """
    for path, data in files.items():
        with open(unit.path(path), "wb") as f:
            f.write(data)
