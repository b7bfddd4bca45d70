"""Keep the training text out of the packaged pipeline.

spaCy adds every string it meets to the vocab's StringStore: each token of
the training and dev text (and its lower-case form, shape, prefix and
suffix) ends up in `vocab/strings.json` when the trained pipeline is saved.
Nothing at prediction time reads those entries: span labels are stored in
the spancat's own `cfg` and hashed again when spans are made, the learned
suggester matches tokens by hash (`get_string_id`), the transformer reads raw
text with its own wordpiece vocabulary, and new text adds its own strings as
it is tokenized. So the packaged vocab keeps only what loading the pipeline
puts there by itself (the tokenizer's special cases and the language's
defaults), the labels of every component, and the strings of any vector
keys; everything else is dropped.

`prune_strings` proves it on the folder it rewrites: it runs the pipeline
on probe text before and after, and refuses (restoring the original file)
unless the spans and scores are identical.

Project library code: used by `packaging` at build time, never by a loaded
pipeline.
"""
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

__all__ = ["PROBE_TEXTS", "counts_only", "needed_strings", "predictions", "prune_strings"]

# Text the pipeline is run on before and after pruning; made up, not from any corpus.
PROBE_TEXTS = [
    "In zebrafish embryos, knockdown of sox10 disrupted melanocyte development in the neural crest.",
    "Pygo2-/- mice lacked Wnt signalling in the lens (Fig. 2B), e.g. after 3.5 mg/kg BrdU+ labelling.",
]

Prediction = List[Tuple[str, int, int, str, Optional[float]]]


def counts_only(data: Any) -> Any:
    """Keep the numbers of a nested report and drop every string value.

    The corpus report copied into meta.json must hold counts only: a string
    value (an example, a file name, a reviewer's note) could carry corpus
    text into the wheel. Keys (labels, split names) are kept.

    data (Any): A JSON-like object (convert's report.json or a part of it).
    RETURNS (Any): The same shape with only numbers (and booleans) left;
        None for a value that holds none.
    """
    if isinstance(data, dict):
        kept = {str(k): counts_only(v) for k, v in data.items()}
        return {k: v for k, v in kept.items() if v is not None}
    if isinstance(data, (list, tuple)):
        kept = [counts_only(v) for v in data]
        return [v for v in kept if v is not None] or None
    if isinstance(data, (bool, int, float)):
        return data
    return None


def predictions(nlp: Any, texts: Iterable[str]) -> Prediction:
    """Every span group of every doc as (key, start, end, label, score), for comparison."""
    out: Prediction = []
    for doc in nlp.pipe(list(texts)):
        for key, group in sorted(doc.spans.items()):
            scores = group.attrs.get("scores")
            for i, span in enumerate(group):
                score = float(scores[i]) if scores is not None and i < len(scores) else None
                out.append((key, span.start_char, span.end_char, span.label_, score))
        for ent in doc.ents:
            out.append(("ents", ent.start_char, ent.end_char, ent.label_, None))
    return out


def needed_strings(model_dir: Path) -> Set[str]:
    """The strings a saved pipeline needs in its vocab: what loading it with an
    empty StringStore adds by itself, plus every component's labels and the
    strings of the vectors' keys (the full pipeline is loaded for those).

    model_dir (Path): A pipeline folder written by `nlp.to_disk`.
    RETURNS (Set[str]): The strings to keep.
    """
    import spacy

    model_dir = Path(model_dir)
    nlp = spacy.load(model_dir)
    keep: Set[str] = set()
    for _name, labels in nlp.pipe_labels.items():
        keep.update(str(label) for label in labels)
    for key in nlp.vocab.vectors.keys():
        if key in nlp.vocab.strings:
            keep.add(nlp.vocab.strings[key])
    del nlp
    with tempfile.TemporaryDirectory() as tmp:
        # Only the vocab is swapped: the copy links to the original files (no copy of the weights).
        copy = Path(tmp) / "model"
        shutil.copytree(model_dir, copy, copy_function=_link_or_copy)
        strings = copy / "vocab" / "strings.json"
        strings.unlink()
        strings.write_text("[]", encoding="utf8")
        bare = spacy.load(copy)
        keep.update(bare.vocab.strings)
        del bare
    return keep


def _link_or_copy(src: str, dst: str) -> None:
    try:
        Path(dst).symlink_to(Path(src).resolve())
    except OSError:
        shutil.copy2(src, dst)


def prune_strings(model_dir: Path, probe_texts: Iterable[str] = PROBE_TEXTS) -> Dict[str, int]:
    """Rewrite `model_dir/vocab/strings.json` with only the strings the pipeline needs.

    The pipeline is run on `probe_texts` before and after; unless every span,
    label and score is identical, the original file is put back and
    RuntimeError is raised.

    model_dir (Path): A pipeline folder (the copy inside a package, not the training output).
    probe_texts (Iterable[str]): Text to compare predictions on.
    RETURNS (Dict[str, int]): {"before": strings before, "after": strings kept}.
    """
    import spacy

    model_dir = Path(model_dir)
    path = model_dir / "vocab" / "strings.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no vocab strings (is {model_dir} a pipeline saved by spaCy?)")
    original = path.read_bytes()
    before = json.loads(original.decode("utf8"))
    texts = list(probe_texts)
    expected = predictions(spacy.load(model_dir), texts)
    keep = needed_strings(model_dir)
    kept = sorted(keep)
    path.write_text(json.dumps(kept, ensure_ascii=False), encoding="utf8")
    got = predictions(spacy.load(model_dir), texts)
    if got != expected:
        path.write_bytes(original)
        raise RuntimeError(
            f"{path}: the pipeline predicts differently with the pruned vocab, so it was left as it was "
            f"(before: {expected[:5]}..., after: {got[:5]}...)"
        )
    return {"before": len(before), "after": len(kept)}
