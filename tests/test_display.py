"""doc.ents from scored, overlapping spans (biomed_spans_to_ents_v1) and displaCy's label colours."""
import json
import re
import subprocess
import sys

import numpy
import pytest
import spacy
from spacy import displacy
from spacy.tokens import Doc, Span
from spacy.util import registry

from biomed_spancat.pipeline.display import CRAFT_COLORS, label_color, label_colors, select_ents

WORDS = ["Loss", "of", "Bmp4", "in", "limb", "bud", "mesenchyme", "cells", "of", "E.", "coli"]


def scored_doc(spans, key="sc"):
    """A doc with `spans` = [(start, end, label, score)] in doc.spans[key], scores in attrs like spancat's."""
    nlp = spacy.blank("en")
    doc = Doc(nlp.vocab, words=WORDS)
    doc.spans[key] = [Span(doc, s, e, label=label) for s, e, label, _ in spans]
    doc.spans[key].attrs["scores"] = numpy.asarray([score for *_, score in spans], dtype="f")
    return nlp, doc


# Overlapping, nested and same-extent spans: "limb bud mesenchyme cells" (CL) holds
# "limb bud" (UBERON) and "limb bud mesenchyme" (UBERON); "Bmp4" is PR and GGP.
SPANS = [
    (2, 3, "PR", 0.9),
    (2, 3, "GGP", 0.6),
    (4, 6, "UBERON", 0.95),
    (4, 7, "UBERON", 0.7),
    (4, 8, "CL", 0.8),
    (9, 11, "NCBITaxon", 0.55),
]


def ents_of(doc):
    return [(e.start, e.end, e.label_) for e in doc.ents]


@pytest.mark.parametrize(
    "config,expected",
    [
        ({"policy": "score"}, [(2, 3, "PR"), (4, 6, "UBERON"), (9, 11, "NCBITaxon")]),
        ({"policy": "longest"}, [(2, 3, "PR"), (4, 8, "CL"), (9, 11, "NCBITaxon")]),
        ({"policy": "first"}, [(2, 3, "PR"), (4, 8, "CL"), (9, 11, "NCBITaxon")]),
        ({"policy": "score", "min_score": 0.75}, [(2, 3, "PR"), (4, 6, "UBERON")]),
        ({"policy": "score", "labels": ["GGP", "CL"]}, [(2, 3, "GGP"), (4, 8, "CL")]),
        ({"policy": "longest", "labels": ["UBERON"]}, [(4, 7, "UBERON")]),
    ],
)
def test_policies_give_exact_ents(config, expected):
    nlp, doc = scored_doc(SPANS)
    pipe = nlp.add_pipe("biomed_spans_to_ents_v1", config=config)
    doc = pipe(doc)
    assert ents_of(doc) == expected
    # the spans themselves are untouched
    assert [(s.start, s.end, s.label_) for s in doc.spans["sc"]] == [(s, e, l) for s, e, l, _ in SPANS]


def test_equal_scores_fall_back_to_longest_then_leftmost():
    nlp, doc = scored_doc([(4, 6, "UBERON", 0.8), (5, 8, "CL", 0.8), (4, 8, "CL", 0.8), (9, 11, "X", 0.8)])
    doc = nlp.add_pipe("biomed_spans_to_ents_v1")(doc)
    assert ents_of(doc) == [(4, 8, "CL"), (9, 11, "X")]
    nlp, doc = scored_doc([(5, 7, "A", 0.8), (4, 6, "B", 0.8)])
    assert ents_of(nlp.add_pipe("biomed_spans_to_ents_v1")(doc)) == [(4, 6, "B")]


def test_spans_without_scores_count_as_one():
    nlp, doc = scored_doc([(4, 6, "UBERON", 0.1), (4, 8, "CL", 0.2)])
    del doc.spans["sc"].attrs["scores"]
    doc = nlp.add_pipe("biomed_spans_to_ents_v1", config={"min_score": 0.5})(doc)
    assert ents_of(doc) == [(4, 8, "CL")]


def test_missing_key_empties_ents_and_overwrite_false_keeps_ner_ents():
    nlp, doc = scored_doc(SPANS, key="other")
    doc.ents = [doc.char_span(0, 4, label="EVENT")]
    assert ents_of(nlp.add_pipe("biomed_spans_to_ents_v1", name="a", config={"overwrite": False})(doc)) == [(0, 1, "EVENT")]
    assert ents_of(nlp.add_pipe("biomed_spans_to_ents_v1", name="b")(doc)) == []
    nlp, doc = scored_doc([(0, 3, "PR", 0.9), (2, 3, "PR", 0.8), (4, 6, "UBERON", 0.7)])
    doc.ents = [doc.char_span(0, 4, label="EVENT")]
    doc = nlp.add_pipe("biomed_spans_to_ents_v1", config={"overwrite": False})(doc)
    assert ents_of(doc) == [(0, 1, "EVENT"), (2, 3, "PR"), (4, 6, "UBERON")]


def test_bad_policy_and_misaligned_scores_say_why():
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match=r"\[ents\] policy must be one of score, longest, first, got 'best'"):
        nlp.add_pipe("biomed_spans_to_ents_v1", name="ents", config={"policy": "best"})
    _, doc = scored_doc(SPANS)
    with pytest.raises(ValueError, match="6 spans but 2 scores"):
        select_ents(list(doc.spans["sc"]), [0.1, 0.2])


# --------------------------------------------------------------------------- colours


def test_label_colors_are_craft_then_stable_hashes():
    assert label_color("UBERON") == CRAFT_COLORS["UBERON"]
    assert label_color("NCBITaxon") == CRAFT_COLORS["NCBITAXON"]
    # a user's label: derived from its name only, so the same in every process and run
    assert label_color("MY_LABEL") == label_color("my_label")
    assert re.fullmatch(r"#[0-9a-f]{6}", label_color("MY_LABEL"))
    assert label_color("MY_LABEL") != label_color("OTHER_LABEL")
    code = "from biomed_spancat.pipeline.display import label_color; print(label_color('MY_LABEL'))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin"})
    assert other.stdout.strip() == label_color("MY_LABEL")
    assert label_colors(["MY_LABEL"]) == {**CRAFT_COLORS, "MY_LABEL": label_color("MY_LABEL")}


def test_displacy_reads_the_colours_from_the_entry_point():
    """displaCy's own lookup (registry.displacy_colors, entry point spacy_displacy_colors)."""
    colors = registry.displacy_colors.get_all()
    assert "biomed.label_colors.v1" in colors
    assert colors["biomed.label_colors.v1"]()["UBERON"] == CRAFT_COLORS["UBERON"]


def test_rendered_spans_and_ents_carry_the_label_colours():
    spans = [(2, 3, "PR", 0.9), (4, 6, "UBERON", 0.95), (4, 8, "CL", 0.8), (9, 11, "Strain_X", 0.6)]
    nlp, doc = scored_doc(spans)
    doc = nlp.add_pipe("biomed_spans_to_ents_v1")(doc)
    html = displacy.render(doc, style="ent", page=False)
    for label in ("PR", "UBERON", "STRAIN_X"):
        assert f"background: {label_color(label)}" in html, label
    html = displacy.render(doc, style="span", page=False, options={"spans_key": "sc"})
    for label in ("PR", "UBERON", "CL", "STRAIN_X"):
        assert f"background: {label_color(label)}" in html, label


def test_a_label_never_seen_by_the_component_renders_grey_until_given():
    nlp = spacy.blank("en")
    doc = nlp("Unseen label here")
    doc.spans["sc"] = [doc.char_span(0, 6, label="NEVER_SEEN_LABEL")]
    html = displacy.render(doc, style="span", page=False)
    assert label_color("NEVER_SEEN_LABEL") not in html
    html = displacy.render(doc, style="span", page=False, options={"colors": label_colors(["NEVER_SEEN_LABEL"])})
    assert f"background: {label_color('NEVER_SEEN_LABEL')}" in html


def test_trained_component_keeps_the_spancat_labels_for_colours(tmp_path):
    """Labels read from spancat at initialize travel with the pipeline (colours before any doc)."""
    nlp = spacy.blank("en")
    spancat = nlp.add_pipe("spancat", config={"spans_key": "sc"})
    spancat.add_label("LOADED_ONLY_LABEL")
    nlp.add_pipe("biomed_spans_to_ents_v1")
    nlp.initialize()
    nlp.to_disk(tmp_path / "p")
    assert json.loads((tmp_path / "p" / "biomed_spans_to_ents_v1" / "cfg").read_text()) == {"known_labels": ["LOADED_ONLY_LABEL"]}
    code = (
        "import spacy, biomed_spancat.pipeline.display\n"
        "from spacy.util import registry\n"
        f"spacy.load({str(tmp_path / 'p')!r})\n"
        "colors = {}\n"
        "for c in registry.displacy_colors.get_all().values():\n"
        "    colors.update(c() if callable(c) else c)\n"
        "print(colors.get('LOADED_ONLY_LABEL'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == label_color("LOADED_ONLY_LABEL")
