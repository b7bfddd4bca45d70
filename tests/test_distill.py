"""Distillation: the teacher's soft labels (stored per doc, surviving a DocBin
round trip), the student's loss on hand-made examples with exact targets, the
student without a teacher group training exactly like spancat, the student
config taking the teacher's tokenizer and suggester, a short distilled run
through the scripts, and the messages for bad inputs."""
import importlib.util
import json
import random
from pathlib import Path
from typing import List, Tuple

import numpy
import pytest
import spacy
import typer
from numpy.testing import assert_allclose, assert_array_equal
from spacy.pipeline.spancat import SpanCategorizer
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example
from spacy.util import fix_random_seed, load_config, load_model_from_config
from spacy.vectors import Vectors
from typer.testing import CliRunner

from biomed_spancat.assist import AssistError
from assist_fixtures import CNN_CONFIG, ROOT, TINY_CNN
from biomed_spancat.util import DocBinError, PipelineError
from biomed_spancat.training.distill import attach_soft_labels, soft_label_corpus, write_student_config
from biomed_spancat.training.student import SpanCategorizerStudent, soft_target
from biomed_spancat.training.teacher_vectors import TokenVectorMeans

STUDENT_CONFIG = ROOT / "configs" / "distill_cnn.cfg"
# The teacher's own suggester and tokenizer, unlike configs/distill_cnn.cfg's, so the
# student config can be seen to take them over.
TEACHER_SUGGESTER = {"@misc": "spacy.ngram_suggester.v1", "sizes": [1, 2]}
TEACHER_TOKENIZER = {"@tokenizers": "biomed.Tokenizer.v1", "extra_infixes": None}

TEXTS: List[Tuple[str, List[Tuple[str, str]]]] = [
    ("BMP2 and BMP4 regulate limb patterning.", [("BMP2", "GENE"), ("BMP4", "GENE")]),
    ("Neural crest cells express BMP4 early.", [("crest cells", "CELL"), ("BMP4", "GENE")]),
    ("Mutations in Brca1 cause cancer in mice.", [("Brca1", "GENE")]),
    ("Retinal ganglion cells project axons.", [("ganglion cells", "CELL")]),
    ("Expression of Shh was detected early.", [("Shh", "GENE")]),
    ("Pax6 marks progenitor cells in the eye.", [("Pax6", "GENE"), ("progenitor cells", "CELL")]),
    ("Loss of Pax6 disrupts lens cells.", [("Pax6", "GENE"), ("lens cells", "CELL")]),
    ("Shh signalling patterns crest cells.", [("Shh", "GENE"), ("crest cells", "CELL")]),
]
UNLABELLED = ["BMP4 and Shh act in crest cells.", "Pax6 regulates ganglion cells.", "Nothing here at all."]


def gold_docs(vocab) -> List[Doc]:
    nlp = spacy.blank("en")
    docs = []
    for text, spans in TEXTS:
        doc = Doc(vocab, words=[t.text for t in nlp(text)], spaces=[bool(t.whitespace_) for t in nlp(text)])
        doc.spans["sc"] = [doc.char_span(text.index(s), text.index(s) + len(s), label=label) for s, label in spans]
        assert all(doc.spans["sc"])
        docs.append(doc)
    return docs


def cnn_nlp(config_path: Path, **extra):
    config = load_config(config_path, overrides={**TINY_CNN, **extra})
    return load_model_from_config(config, auto_fill=True, validate=True)


def with_vectors(nlp, width: int = 8):
    """`nlp` with random static vectors for the words of TEXTS (what the student's
    config reads from the teacher's vectors)."""
    keys = sorted({nlp.vocab.strings.add(t.text) for text, _ in TEXTS for t in spacy.blank("en")(text)})
    nlp.vocab.vectors = Vectors(data=numpy.random.RandomState(0).rand(len(keys), width).astype("f"), keys=keys)
    return nlp


def train_in_process(nlp, docs, steps: int, seed: int = 0):
    fix_random_seed(seed)
    examples = [Example(Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d]), d) for d in docs]
    optimizer = nlp.initialize(lambda: examples)
    rng = random.Random(seed)
    for _ in range(steps):
        rng.shuffle(examples)
        nlp.update(examples, sgd=optimizer)
    return nlp


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    """A tiny spancat-over-CNN pipeline with its own suggester and tokenizer, trained a few steps."""
    fix_random_seed(0)
    config = load_config(CNN_CONFIG, overrides=TINY_CNN)
    config["components"]["spancat"]["suggester"] = dict(TEACHER_SUGGESTER)
    config["nlp"]["tokenizer"] = dict(TEACHER_TOKENIZER)
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    train_in_process(nlp, gold_docs(nlp.vocab), 15)
    path = tmp_path_factory.mktemp("teacher") / "model"
    nlp.meta["name"] = "teacher"
    nlp.to_disk(path)
    return path


def cli(script: str, *args):
    spec = importlib.util.spec_from_file_location(f"{script}_script", ROOT / "scripts" / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if hasattr(module, "app"):
        app = module.app
    else:
        app = typer.Typer()
        app.command()(module.main)
    result = CliRunner().invoke(app, [str(a) for a in args])
    result.text = " ".join(result.output.split())
    return result


# --- soft labels ----------------------------------------------------------------------


def test_soft_labels_survive_a_docbin_round_trip(tmp_path, teacher):
    nlp = spacy.load(teacher)
    vocab = spacy.blank("en").vocab
    docs = list(attach_soft_labels(nlp, gold_docs(vocab), "sc", floor=0.01, batch_size=3))
    DocBin(docs=docs).to_disk(tmp_path / "soft.spacy")
    back = list(DocBin().from_disk(tmp_path / "soft.spacy").get_docs(vocab))
    assert len(back) == len(docs) == len(TEXTS)
    for before, after in zip(docs, back):
        group = after.spans["sc_teacher"]
        assert [(s.start, s.end, s.label_) for s in group] == [(s.start, s.end, s.label_) for s in before.spans["sc_teacher"]]
        assert group.attrs["scores"].dtype == numpy.float32
        assert_array_equal(group.attrs["scores"], before.spans["sc_teacher"].attrs["scores"])
        assert len(group.attrs["scores"]) == len(group) > 0
        # gold stays where it was
        assert [(s.start, s.end, s.label_) for s in after.spans["sc"]] == [(s.start, s.end, s.label_) for s in before.spans["sc"]]


def test_soft_labels_are_every_candidate_and_label_above_the_floor(teacher):
    nlp = spacy.load(teacher)
    spancat = nlp.get_pipe("spancat")
    doc = gold_docs(spacy.blank("en").vocab)[0]
    # what the teacher scores on this doc's tokens, computed directly
    pred = nlp(Doc(nlp.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc]))
    indices, scores = spancat.predict([pred])
    expected = {
        (int(s), int(e), spancat.labels[k]): float(scores[i, k])
        for i, (s, e) in enumerate(indices.dataXd)
        for k in range(len(spancat.labels))
        if scores[i, k] >= 0.2
    }
    assert 0 < len(expected) < scores.size  # the floor keeps some pairs, not all
    (labelled,) = attach_soft_labels(nlp, [doc], "sc", floor=0.2)
    group = labelled.spans["sc_teacher"]
    got = {(s.start, s.end, s.label_): float(score) for s, score in zip(group, group.attrs["scores"])}
    assert got.keys() == expected.keys()
    assert_allclose([got[k] for k in expected], list(expected.values()), rtol=1e-6)
    # every candidate is one the teacher's suggester (1- and 2-grams) proposed
    assert {e - s for s, e, _ in got} <= {1, 2}


def test_a_transformer_teachers_soft_labels_are_its_pipeline_scores(tiny_bert):
    """The project's own config (transformer + listener) over the tiny BERT: the
    teacher run component by component scores what the whole pipeline scores."""
    fix_random_seed(0)
    config = load_config(ROOT / "configs" / "spancat.cfg", overrides={"paths.transformer": str(tiny_bert)}, interpolate=True)
    nlp = load_model_from_config(config, auto_fill=True)
    train_in_process(nlp, gold_docs(nlp.vocab), 2)
    docs = gold_docs(spacy.blank("en").vocab)[:3]
    means = TokenVectorMeans()
    soft = list(attach_soft_labels(nlp, docs, "sc", floor=0.3, batch_size=2, token_vectors=means))
    # the same pass kept the token vectors the spancat reads: the transformer's pooled
    # vectors joined to the lexical features, one mean per distinct word
    tok2vec = config["components"]["spancat"]["model"]["tok2vec"]
    bert_width = json.loads((Path(tiny_bert) / "config.json").read_text())["hidden_size"]
    assert means.width == bert_width + tok2vec["width"]
    assert means.tokens == sum(len(d) for d in docs) and len(means) == len({t.orth for d in docs for t in d})
    assert numpy.isfinite(means.to_vectors().data).all()
    nlp.get_pipe("spancat").cfg["threshold"] = 0.3  # the whole pipeline keeps what the floor keeps
    for doc in soft:
        pred = nlp(Doc(nlp.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc]))
        expected = {(s.start, s.end, s.label_): score for s, score in zip(pred.spans["sc"], pred.spans["sc"].attrs["scores"])}
        group = doc.spans["sc_teacher"]
        got = {(s.start, s.end, s.label_): score for s, score in zip(group, group.attrs["scores"])}
        assert got.keys() == expected.keys()
        assert_allclose([got[k] for k in expected], list(expected.values()), rtol=1e-5)
    assert sum(len(d.spans["sc_teacher"]) for d in soft) > 0


def test_soft_label_floor_must_be_a_probability(teacher):
    with pytest.raises(AssistError, match=r"the floor must be in \(0, 1\), got 0.0"):
        list(attach_soft_labels(spacy.load(teacher), [], "sc", floor=0.0))


# --- the student's loss ------------------------------------------------------------------


def student_and_example(soft_weight: float = 0.25, gold=None, teacher=None):
    """A student over 1-gram candidates with labels A, B and one three-token doc."""
    nlp = spacy.blank("en")
    student = nlp.add_pipe(
        "biomed_spancat_student_v1",
        name="spancat",
        config={"suggester": {"@misc": "spacy.ngram_suggester.v1", "sizes": [1]}, "soft_weight": soft_weight},
    )
    for label in ("A", "B"):
        student.add_label(label)
    words = ["BMP4", "in", "cells"]
    ref = Doc(nlp.vocab, words=words)
    if gold is not None:
        ref.spans["sc"] = [Span(ref, s, e, label) for s, e, label in gold]
    if teacher is not None:
        ref.spans["sc_teacher"] = [Span(ref, s, e, label) for s, e, label, _ in teacher]
        ref.spans["sc_teacher"].attrs["scores"] = numpy.array([p for *_, p in teacher], dtype="f")
    eg = Example(Doc(nlp.vocab, words=words), ref)
    spans = student.suggester([eg.predicted], ops=student.model.ops)
    return nlp, student, eg, spans


SCORES = numpy.array([[0.5, 0.5], [0.2, 0.1], [0.6, 0.4]], dtype="f")
TEACHER = [(0, 1, "A", 0.8), (2, 3, "B", 0.3)]


def test_student_follows_the_teacher_alone_where_there_is_no_gold():
    _, student, eg, spans = student_and_example(soft_weight=0.25, teacher=TEACHER)
    loss, d_scores = student.get_loss([eg], (spans, SCORES))
    # target = the teacher's probabilities on its rows, 0 elsewhere (soft_weight does not apply)
    assert_allclose(d_scores, SCORES - numpy.array([[0.8, 0.0], [0.0, 0.0], [0.0, 0.3]], dtype="f"), rtol=1e-6)
    assert_allclose(d_scores, [[-0.3, 0.5], [0.2, 0.1], [0.6, 0.1]], rtol=1e-5)
    assert loss == pytest.approx(0.76, rel=1e-5)


def test_student_mixes_gold_and_teacher_by_soft_weight():
    _, student, eg, spans = student_and_example(soft_weight=0.25, gold=[(0, 1, "A"), (1, 2, "B")], teacher=TEACHER)
    loss, d_scores = student.get_loss([eg], (spans, SCORES))
    # 0.75 * gold + 0.25 * teacher
    target = numpy.array([[0.95, 0.0], [0.0, 0.75], [0.0, 0.075]], dtype="f")
    assert_allclose(d_scores, SCORES - target, rtol=1e-6)
    assert loss == pytest.approx(float(((SCORES - target) ** 2).sum()), rel=1e-6)


def test_student_without_a_teacher_group_has_spancats_loss():
    gold = [(0, 1, "A"), (2, 3, "B")]
    _, student, eg, spans = student_and_example(soft_weight=0.9, gold=gold)
    loss, d_scores = student.get_loss([eg], (spans, SCORES))
    nlp = spacy.blank("en")
    plain = nlp.add_pipe("spancat", config={"suggester": {"@misc": "spacy.ngram_suggester.v1", "sizes": [1]}})
    for label in ("A", "B"):
        plain.add_label(label)
    plain_loss, plain_d = plain.get_loss([eg], (spans, SCORES))
    assert_array_equal(d_scores, plain_d)
    assert loss == plain_loss
    assert_allclose(d_scores, SCORES - numpy.array([[1, 0], [0, 0], [0, 1]], dtype="f"))


def test_soft_target_rules():
    gold = numpy.array([[1.0, 0.0]], dtype="f")
    teacher = numpy.array([[0.6, 0.2]], dtype="f")
    assert_allclose(soft_target(gold, None, True, 0.5), [[1.0, 0.0]])
    assert_allclose(soft_target(gold, teacher, False, 0.5), [[0.6, 0.2]])
    assert_allclose(soft_target(gold, teacher, True, 0.5), [[0.8, 0.1]])
    assert_allclose(soft_target(gold, teacher, True, 0.0), [[1.0, 0.0]])


def test_teacher_spans_are_aligned_to_the_students_tokens():
    nlp = spacy.blank("en")
    student = nlp.add_pipe("biomed_spancat_student_v1", name="spancat", config={"suggester": {"@misc": "spacy.ngram_suggester.v1", "sizes": [1, 2]}})
    for label in ("A", "B"):
        student.add_label(label)
    ref = Doc(nlp.vocab, words=["Pax6", "cells", "."], spaces=[True, False, False])
    # "cells" and "Pax6 cells" end inside the student's token "cells.": they cannot be aligned and are left out
    ref.spans["sc_teacher"] = [Span(ref, 0, 1, "A"), Span(ref, 1, 2, "B"), Span(ref, 0, 3, "B"), Span(ref, 0, 2, "A")]
    ref.spans["sc_teacher"].attrs["scores"] = numpy.array([0.9, 0.4, 0.7, 0.5], dtype="f")
    eg = Example(Doc(nlp.vocab, words=["Pax6", "cells."], spaces=[True, False]), ref)
    spans = student.suggester([eg.predicted], ops=student.model.ops)
    assert spans.dataXd.tolist() == [[0, 1], [1, 2], [0, 2]]
    scores = numpy.zeros((3, 2), dtype="f")
    _, d_scores = student.get_loss([eg], (spans, scores))
    assert_allclose(-d_scores, [[0.9, 0.0], [0.0, 0.0], [0.0, 0.7]], rtol=1e-6)


def test_student_refuses_a_teacher_group_without_scores_and_a_bad_weight():
    _, student, eg, spans = student_and_example(teacher=TEACHER)
    eg.reference.spans["sc_teacher"].attrs["scores"] = numpy.array([0.8], dtype="f")
    with pytest.raises(ValueError, match=r"doc.spans\['sc_teacher'\] of the doc starting 'BMP4 in cells' has 2 spans but 1 scores"):
        student.get_loss([eg], (spans, SCORES))
    with pytest.raises(ValueError, match=r"soft_weight must be a number in \[0, 1\], got 1.5"):
        student_and_example(soft_weight=1.5)


def test_student_without_teacher_trains_exactly_like_spancat():
    docs = gold_docs(spacy.blank("en").vocab)
    fix_random_seed(0)
    plain = train_in_process(cnn_nlp(CNN_CONFIG), gold_docs(spacy.blank("en").vocab), 5)
    fix_random_seed(0)
    # the student config's embedding reads the teacher's vectors; without them it is the plain CNN's
    no_vectors = {"components.tok2vec.model.embed.include_static_vectors": False}
    student = train_in_process(cnn_nlp(STUDENT_CONFIG, **no_vectors), gold_docs(spacy.blank("en").vocab), 5)
    assert isinstance(student.get_pipe("spancat"), SpanCategorizerStudent)
    assert isinstance(student.get_pipe("spancat"), SpanCategorizer)
    inputs = [Doc(plain.vocab, words=[t.text for t in d]) for d in docs]
    _, plain_scores = plain.get_pipe("spancat").predict(list(plain.get_pipe("tok2vec").pipe(inputs)))
    inputs = [Doc(student.vocab, words=[t.text for t in d]) for d in docs]
    _, student_scores = student.get_pipe("spancat").predict(list(student.get_pipe("tok2vec").pipe(inputs)))
    assert_array_equal(student_scores, plain_scores)


def test_a_trained_student_saves_loads_and_predicts_like_spancat(tmp_path, teacher):
    vocab = spacy.blank("en").vocab
    docs = list(attach_soft_labels(spacy.load(teacher), gold_docs(vocab), "sc"))
    nlp = with_vectors(cnn_nlp(STUDENT_CONFIG, **{"components.spancat.soft_weight": 0.7}))
    nlp = train_in_process(nlp, docs, 5)
    nlp.to_disk(tmp_path / "student")
    loaded = spacy.load(tmp_path / "student")
    pipe = loaded.get_pipe("spancat")
    assert isinstance(pipe, SpanCategorizerStudent)
    # (srsly's JSON reader gives back 0.7000000000000001)
    assert pipe.cfg["soft_weight"] == pytest.approx(0.7) and pipe.teacher_key == "sc_teacher"
    assert set(pipe.labels) == {"GENE", "CELL"}
    assert loaded.vocab.vectors.shape == nlp.vocab.vectors.shape  # its static vectors are saved with it
    pipe.cfg["threshold"] = 0.0  # every candidate comes out, with its score
    doc = loaded("Pax6 marks lens cells.")
    assert len(doc.spans["sc"]) == len(doc.spans["sc"].attrs["scores"]) > 0
    # a fresh process finds the factory through the package's entry point (no project import)
    import subprocess
    import sys

    code = "import sys, spacy; print(type(spacy.load(sys.argv[1]).get_pipe('spancat')).__name__)"
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "student")], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "SpanCategorizerStudent"


# --- the student's config ------------------------------------------------------------------


def test_student_config_takes_the_teachers_tokenizer_and_suggester(tmp_path, teacher):
    written = write_student_config(teacher, STUDENT_CONFIG, tmp_path / "student.cfg")
    config = spacy.util.load_config(tmp_path / "student.cfg")
    assert dict(config["components"]["spancat"]["suggester"]) == TEACHER_SUGGESTER == written["suggester"]
    assert dict(config["nlp"]["tokenizer"]) == TEACHER_TOKENIZER
    assert config["components"]["spancat"]["factory"] == "biomed_spancat_student_v1"
    # the rest of the student's config is its own
    assert config["components"]["tok2vec"]["model"]["encode"]["width"] == 96


# --- bad inputs ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def not_a_teacher(tmp_path_factory) -> Path:
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    path = tmp_path_factory.mktemp("sentencizer") / "model"
    nlp.to_disk(path)
    return path


def test_a_teacher_without_spancat_is_named(tmp_path, not_a_teacher):
    DocBin(docs=gold_docs(spacy.blank("en").vocab)).to_disk(tmp_path / "train.spacy")
    result = cli("teacher_labels", not_a_teacher, tmp_path / "out.spacy", "--gold", tmp_path / "train.spacy")
    assert result.exit_code == 1
    assert (
        f"{not_a_teacher}: cannot be a teacher: the pipeline has no span categorizer writing doc.spans['sc']; "
        "span categorizers: none; pipeline: ['sentencizer']"
    ) in result.text
    assert not (tmp_path / "out.spacy").exists()
    result = cli("distill_config", not_a_teacher, STUDENT_CONFIG, tmp_path / "student.cfg")
    assert result.exit_code == 1 and "cannot be a teacher" in result.text
    assert not (tmp_path / "student.cfg").exists()


def test_unlabelled_records_whose_tokens_do_not_match_their_text_are_named(tmp_path, teacher):
    path = tmp_path / "unlabelled.jsonl"
    good = {"text": "Pax6 marks lens cells."}
    bad = {"text": "Pax6 marks lens cells.", "tokens": [{"text": "Pax7", "start": 0, "end": 4, "id": 0, "ws": True}]}
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n", encoding="utf8")
    report = soft_label_corpus(teacher, tmp_path / "out.spacy", unlabelled=[str(path)])
    assert report["counts"]["unlabelled"] == {**report["counts"]["unlabelled"], "read": 2, "docs": 1, "rejected": 1}
    (example,) = report["rejected_examples"]
    assert example["origin"] == f"{path}:2"
    assert "token 0 'Pax7' does not match the text at character 0" in example["detail"]
    # only unusable records: nothing is written and the message says why
    path.write_text(json.dumps(bad) + "\n", encoding="utf8")
    result = cli("teacher_labels", teacher, tmp_path / "none.spacy", "--unlabelled", path)
    assert result.exit_code == 1
    assert f"no usable doc in the inputs: 1 rejected (first: {path}:1: token 0 'Pax7' does not match the text" in result.text
    assert not (tmp_path / "none.spacy").exists()


def test_teacher_labels_show_progress_per_part(tmp_path, teacher, capsys):
    DocBin(docs=gold_docs(spacy.blank("en").vocab)).to_disk(tmp_path / "train.spacy")
    path = tmp_path / "unlabelled.jsonl"
    path.write_text(json.dumps({"text": "Pax6 marks lens cells."}) + "\n", encoding="utf8")
    soft_label_corpus(teacher, tmp_path / "out.spacy", gold=[tmp_path / "train.spacy"], unlabelled=[str(path)], progress=True)
    err = capsys.readouterr().err
    assert f"gold docs: {len(TEXTS)} docs" in err
    assert "unlabelled docs: 1 docs" in err
    soft_label_corpus(teacher, tmp_path / "quiet.spacy", gold=[tmp_path / "train.spacy"])
    assert "docs" not in capsys.readouterr().err


def test_gold_without_the_spans_key_and_missing_files_are_named(tmp_path, teacher):
    docs = gold_docs(spacy.blank("en").vocab)
    del docs[2].spans["sc"]
    DocBin(docs=docs).to_disk(tmp_path / "train.spacy")
    with pytest.raises(AssistError, match=r"train\.spacy: a doc has no doc\.spans\['sc'\] \(starts 'Mutations in Brca1"):
        soft_label_corpus(teacher, tmp_path / "out.spacy", gold=[tmp_path / "train.spacy"])
    # a key the teacher does not write
    with pytest.raises(PipelineError, match=r"cannot be a teacher: .* no span categorizer writing doc\.spans\['gold'\]; span categorizers: spancat \(key 'sc'\)"):
        soft_label_corpus(teacher, tmp_path / "out.spacy", gold=[tmp_path / "train.spacy"], spans_key="gold")
    with pytest.raises(DocBinError, match=r"missing\.spacy: no such file"):
        soft_label_corpus(teacher, tmp_path / "out.spacy", gold=[tmp_path / "missing.spacy"])
    with pytest.raises(AssistError, match="no input: give gold .spacy files and/or unlabelled text"):
        soft_label_corpus(teacher, tmp_path / "out.spacy")


# --- the teacher's word vectors ---------------------------------------------------------


def test_teacher_vectors_are_each_words_mean_over_the_unlabelled_text(tmp_path, teacher):
    """Every word of the unlabelled text, and only those (not the gold docs' words), gets
    the mean of the token vectors the teacher's spancat read at each occurrence: for this
    CNN teacher its tok2vec's doc.tensor, computed here by running the whole pipeline."""
    DocBin(docs=gold_docs(spacy.blank("en").vocab)).to_disk(tmp_path / "train.spacy")
    path = tmp_path / "unlabelled.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in UNLABELLED), encoding="utf8")
    report = soft_label_corpus(
        teacher, tmp_path / "out.spacy", gold=[tmp_path / "train.spacy"], unlabelled=[str(path)], vectors=tmp_path / "vectors"
    )
    nlp = spacy.load(teacher)
    occurrences = {}
    for doc in nlp.pipe(UNLABELLED):
        for token in doc:
            occurrences.setdefault(token.orth, []).append(doc.tensor[token.i])
    # "cells" twice; "BMP2" is in the gold docs only
    assert len(occurrences[nlp.vocab.strings["cells"]]) == 2 and nlp.vocab.strings["BMP2"] not in occurrences
    expected = {key: numpy.mean(rows, axis=0) for key, rows in occurrences.items()}
    tokens = sum(len(rows) for rows in occurrences.values())
    assert report["vectors"] == {"path": str(tmp_path / "vectors"), "words": len(expected), "tokens": tokens, "width": 16}
    table = spacy.load(tmp_path / "vectors").vocab
    assert set(int(k) for k in table.vectors.keys()) == set(expected)
    for key, mean in expected.items():
        assert_allclose(table.vectors[key], mean, rtol=1e-5, atol=1e-6)
    # keyed by hash: the words themselves are not written with the table
    assert "ganglion" not in table.strings and "Pax6" not in table.strings

    # a smaller width: the means on their first principal components (uncorrelated, largest variance first)
    report = soft_label_corpus(teacher, tmp_path / "out4.spacy", unlabelled=[str(path)], vectors=tmp_path / "v4", vectors_width=4)
    assert report["vectors"]["width"] == 4 and report["settings"]["vectors_width"] == 4
    data = numpy.asarray(spacy.load(tmp_path / "v4").vocab.vectors.data)
    means = numpy.stack(list(expected.values()))
    eigen = numpy.sort(numpy.linalg.eigvalsh(numpy.cov(means, rowvar=False)))[::-1][:4]
    assert_allclose(numpy.cov(data, rowvar=False), numpy.diag(eigen), atol=1e-4 * eigen[0])


def test_teacher_vectors_need_unlabelled_text_and_a_width(tmp_path, teacher):
    DocBin(docs=gold_docs(spacy.blank("en").vocab)).to_disk(tmp_path / "train.spacy")
    with pytest.raises(AssistError, match="the teacher's word vectors are made from unlabelled text: give --unlabelled too"):
        soft_label_corpus(teacher, tmp_path / "out.spacy", gold=[tmp_path / "train.spacy"], vectors=tmp_path / "v")
    path = tmp_path / "unlabelled.jsonl"
    path.write_text(json.dumps({"text": "Pax6 marks lens cells."}) + "\n", encoding="utf8")
    with pytest.raises(AssistError, match="the vectors' width must be 0 \\(the teacher's\\) or positive, got -2"):
        soft_label_corpus(teacher, tmp_path / "out.spacy", unlabelled=[str(path)], vectors=tmp_path / "v", vectors_width=-2)
    # gold docs but no usable unlabelled record: no vectors to write, and no corpus written either
    bad = {"text": "Pax6 marks lens cells.", "tokens": [{"text": "Pax7", "start": 0, "end": 4, "id": 0, "ws": True}]}
    path.write_text(json.dumps(bad) + "\n", encoding="utf8")
    with pytest.raises(AssistError, match=r"no usable unlabelled doc for the teacher's word vectors \(1 rejected\); nothing written"):
        soft_label_corpus(teacher, tmp_path / "out.spacy", gold=[tmp_path / "train.spacy"], unlabelled=[str(path)], vectors=tmp_path / "v")
    assert not (tmp_path / "out.spacy").exists() and not (tmp_path / "v").exists()


# --- a short distilled run through the scripts ----------------------------------------------


@pytest.mark.slow
def test_short_distilled_run_through_the_scripts(tmp_path, teacher):
    vocab = spacy.blank("en").vocab
    docs = gold_docs(vocab)
    DocBin(docs=docs[:6]).to_disk(tmp_path / "train.spacy")
    DocBin(docs=docs[6:]).to_disk(tmp_path / "dev.spacy")
    (tmp_path / "unlabelled.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in UNLABELLED), encoding="utf8")
    result = cli(
        "teacher_labels", teacher, tmp_path / "distill.spacy",
        "--gold", tmp_path / "train.spacy", "--unlabelled", tmp_path / "unlabelled.jsonl",
        "--floor", "0.05", "--report", tmp_path / "teacher.json", "--vectors", tmp_path / "vectors",
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "teacher.json").read_text())
    assert report["counts"]["gold"]["docs"] == 6 and report["counts"]["unlabelled"]["docs"] == 3
    make_doc = spacy.load(teacher).make_doc  # the teacher's tokens
    words = len({t.text for text in UNLABELLED for t in make_doc(text)})
    assert report["vectors"]["words"] == words and report["vectors"]["width"] == 16
    assert f"{tmp_path / 'vectors'}: the teacher's vectors of {words} words (width 16) from" in result.text
    corpus = list(DocBin().from_disk(tmp_path / "distill.spacy").get_docs(vocab))
    assert [("sc" in d.spans, "sc_teacher" in d.spans) for d in corpus] == [(True, True)] * 6 + [(False, True)] * 3
    assert all(min(d.spans["sc_teacher"].attrs["scores"], default=1.0) >= 0.05 for d in corpus)
    assert sum(len(d.spans["sc_teacher"]) for d in corpus) == report["counts"]["gold"]["teacher_spans"] + report["counts"]["unlabelled"]["teacher_spans"]

    result = cli("distill_config", teacher, STUDENT_CONFIG, tmp_path / "student.cfg")
    assert result.exit_code == 0, result.output
    overrides = [x for key, value in TINY_CNN.items() for x in (f"--{key}", json.dumps(value) if isinstance(value, list) else value)]
    result = cli(
        "train", tmp_path / "student.cfg", tmp_path / "student", "--gpu-id", "-1", "--spans-key", "sc",
        "--paths.train", tmp_path / "distill.spacy", "--paths.dev", tmp_path / "dev.spacy", "--paths.vectors", tmp_path / "vectors",
        "--training.max_steps", "4", "--training.eval_frequency", "2", "--components.spancat.soft_weight", "0.5",
        "--training.logger.progress_bar", "false", *overrides,
    )
    assert result.exit_code == 0, result.output
    result = cli(
        "tune_threshold", tmp_path / "student" / "model-best", tmp_path / "dev.spacy", tmp_path / "student" / "model-tuned",
        "--output", tmp_path / "threshold.json",
    )
    assert result.exit_code == 0, result.output
    student = spacy.load(tmp_path / "student" / "model-tuned")
    pipe = student.get_pipe("spancat")
    assert isinstance(pipe, SpanCategorizerStudent) and set(pipe.labels) == {"GENE", "CELL"}
    assert dict(student.config["components"]["spancat"]["suggester"]) == TEACHER_SUGGESTER
    # the teacher's word vectors travel inside the student, which reads them
    assert student.vocab.vectors.shape == (words, 16)
    assert student.config["components"]["tok2vec"]["model"]["embed"]["include_static_vectors"] is True
    assert pipe.cfg["threshold"] == pytest.approx(json.loads((tmp_path / "threshold.json").read_text())["threshold"])

    # the comparison: the distilled student as an extra row (stand-ins for the other CPU models)
    result = cli(
        "compare_uptrain", teacher, tmp_path / "student" / "model-best", tmp_path / "student" / "model-best",
        "--distilled", tmp_path / "student" / "model-tuned", "--dev", tmp_path / "dev.spacy",
        "--output", tmp_path / "uptrain.json", "--markdown", tmp_path / "uptrain.md", "--repeats", "1",
    )
    assert result.exit_code == 0, result.output
    compared = json.loads((tmp_path / "uptrain.json").read_text())
    assert list(compared["models"]) == ["transformer", "cpu_gold", "cpu_uptrained", "cpu_distilled"]
    assert set(compared["students"]) == {"cpu_uptrained", "cpu_distilled"}
    assert compared["target"]["student"] == "cpu_distilled"
    assert compared["target"]["speed_ratio_at_least"] == 5.0
    table = (tmp_path / "uptrain.md").read_text().splitlines()
    assert [line.split(" (`")[0] for line in table if line.startswith("| ") and "`" in line] == [
        "| transformer pipeline", "| CPU CNN, gold only", "| CPU CNN, gold + silver", "| CPU CNN, distilled (teacher's soft labels)",
    ]
    assert any(line.startswith("F gap closed by the distilled CPU model (soft labels): dev") for line in table)
    assert any(line.startswith("Target met: **") and "judged on the distilled CPU model" in line for line in table)


def test_the_spans_key_reaches_the_student():
    from biomed_spancat.training.gpu import set_spans_key

    config = set_spans_key(spacy.util.load_config(STUDENT_CONFIG, interpolate=False), "gold")
    assert config["components"]["spancat"]["spans_key"] == "gold"
    assert config["training"]["score_weights"]["spans_gold_f"] == 1.0
    assert config["training"]["score_weights"]["spans_sc_f"] is None
    # and the teacher's group follows the key
    nlp = load_model_from_config(config, auto_fill=True)
    assert nlp.get_pipe("spancat").teacher_key == "gold_teacher"
