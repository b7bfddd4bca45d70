"""Static word vectors from the teacher, for the distilled student.

The CPU student (a CNN over hash embeddings) knows a word only from the docs
it trained on; the teacher's transformer knows far more words, and its
fine-tuned token vectors say what the teacher makes of each. While
`teacher-labels` runs the teacher over the unlabelled text, this module keeps,
per word (ORTH), the mean of the token vectors the teacher's span categorizer
reads (its tok2vec's output) over every occurrence; the table is written as a
spaCy vectors pipeline the student loads as static vectors
(`include_static_vectors`, `[initialize] vectors`).

Only unlabelled text feeds the table, not the gold training docs: the teacher
was fine-tuned on those, and a table covering every training word but only
part of unseen text teaches the student to lean on vectors that new text
lacks (words outside the table get a zero vector).

The table is keyed by hash only: no word strings are written with it.

Project tooling: a packaged pipeline never imports this module.
"""
from pathlib import Path
from typing import Any, Dict, List, Sequence, Union

import numpy
import spacy
from spacy.attrs import ORTH
from spacy.tokens import Doc
from spacy.vectors import Vectors

from ..util import write_dir

__all__ = ["TokenVectorMeans", "teacher_token_vectors"]

PathLike = Union[str, Path]


def teacher_token_vectors(spancat: Any, docs: Sequence[Doc]) -> List[numpy.ndarray]:
    """The token vectors the span categorizer's model reads (its "tok2vec"
    reference), one float32 array (tokens x width) per doc, on the CPU.

    spancat (SpanCategorizer): The teacher's span categorizer; every component
        before it has already run on `docs`.
    docs (Sequence[Doc]): The docs.
    RETURNS (List[numpy.ndarray]): Per doc, its token vectors.
    """
    tok2vec = spancat.model.get_ref("tok2vec")
    ops = spancat.model.ops
    return [numpy.asarray(ops.to_numpy(array), dtype="float32") for array in tok2vec.predict(list(docs))]


class TokenVectorMeans:
    """The running mean of token vectors per word (ORTH hash)."""

    def __init__(self) -> None:
        self._rows: Dict[int, int] = {}
        self._sums = numpy.zeros((0, 0), dtype="float64")
        self._counts = numpy.zeros((0,), dtype="int64")
        self.tokens = 0

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def width(self) -> int:
        return int(self._sums.shape[1])

    def add(self, docs: Sequence[Doc], vectors: Sequence[numpy.ndarray]) -> None:
        """Add every token of `docs`, whose vectors are `vectors` (one array per doc)."""
        for doc, array in zip(docs, vectors):
            if len(doc) == 0:
                continue
            if array.shape[0] != len(doc):
                raise ValueError(f"{array.shape[0]} token vectors for a doc of {len(doc)} tokens")
            if not self._sums.size and not self._rows:
                self._sums = numpy.zeros((1024, array.shape[1]), dtype="float64")
                self._counts = numpy.zeros((1024,), dtype="int64")
            elif array.shape[1] != self.width:
                raise ValueError(f"token vectors of width {array.shape[1]} after width {self.width}")
            keys, inverse = numpy.unique(doc.to_array(ORTH).astype("uint64"), return_inverse=True)
            rows = numpy.asarray([self._row(int(key)) for key in keys], dtype="int64")[inverse.ravel()]
            numpy.add.at(self._sums, rows, array)
            numpy.add.at(self._counts, rows, 1)
            self.tokens += len(doc)

    def _row(self, key: int) -> int:
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = len(self._rows)
            if row >= self._sums.shape[0]:
                grow = self._sums.shape[0]
                self._sums = numpy.vstack([self._sums, numpy.zeros((grow, self.width), dtype="float64")])
                self._counts = numpy.concatenate([self._counts, numpy.zeros((grow,), dtype="int64")])
        return row

    def to_vectors(self, width: int = 0) -> Vectors:
        """The table as spaCy Vectors keyed by ORTH hash.

        width (int): 0 keeps the token vectors' width; a smaller width projects
            the (centred) means on their first principal components.
        RETURNS (Vectors): One row per word seen.
        RAISES (ValueError): Nothing added, or a width below 0.
        """
        if not self._rows:
            raise ValueError("no token was added: no vector to write")
        if width < 0:
            raise ValueError(f"the width must be 0 (keep) or positive, got {width}")
        n = len(self._rows)
        means = self._sums[:n] / self._counts[:n, None]
        if 0 < width < means.shape[1]:
            centred = means - means.mean(axis=0)
            _, _, components = numpy.linalg.svd(centred, full_matrices=False)
            means = centred @ components[:width].T
        keys = numpy.fromiter(self._rows.keys(), dtype="uint64", count=n)
        return Vectors(data=numpy.ascontiguousarray(means, dtype="float32"), keys=keys)

    def write(self, path: PathLike, width: int = 0, lang: str = "en") -> Dict[str, Any]:
        """Write the table as a blank pipeline with vectors (what `[initialize]
        vectors` loads), replacing `path`.

        path (PathLike): The output directory.
        width (int): As in `to_vectors`.
        lang (str): The blank pipeline's language.
        RETURNS (Dict[str, Any]): Where, how many words and tokens, the width.
        """
        vectors = self.to_vectors(width)
        nlp = spacy.blank(lang)
        nlp.vocab.vectors = vectors
        path = write_dir(path, nlp.to_disk)
        return {"path": str(path), "words": len(self), "tokens": self.tokens, "width": int(vectors.shape[1])}
