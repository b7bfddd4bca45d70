"""biomed.ConsoleLogger.v1: spaCy's training table with per-step losses, a legend that
explains the transformer's loss, and progress between evaluations."""

import io
import re

import pytest
import spacy
from spacy.tokens import DocBin
from thinc.api import Config

from biomed_spancat.training.training_log import console_logger, format_duration, progress_line

from spancat_fixtures import TINY_CONFIG, tiny_docs


def _nlp(transformer: bool):
    """A real pipeline whose trainable components the logger reads; the first one is
    named "transformer" when asked (a tok2vec stands in: only the name matters here)."""
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec", name="transformer" if transformer else "tok2vec")
    nlp.add_pipe("spancat")
    return nlp


def _info(step, losses, words, seconds, score=0.25):
    return {"epoch": 0, "step": step, "losses": losses, "words": words, "seconds": seconds,
            "score": score, "other_scores": {"spans_sc_f": score, "spans_sc_p": 0.5, "spans_sc_r": 0.1}}


def _setup(nlp, **kwargs):
    nlp.config["training"]["max_steps"] = 300
    nlp.config["training"]["eval_frequency"] = 100
    nlp.config["training"]["score_weights"] = {"spans_sc_f": 1.0, "spans_sc_p": 0.0, "spans_sc_r": 0.0}
    out, err = io.StringIO(), io.StringIO()
    log_step, finalize = spacy.registry.loggers.get("biomed.ConsoleLogger.v1")(**kwargs)(nlp, out, err)
    return log_step, finalize, out, err


def test_losses_per_step_with_legend_and_progress_lines():
    log_step, finalize, out, err = _setup(_nlp(transformer=True))
    log_step(_info(0, {"transformer": 5.0, "spancat": 2.0}, words=100, seconds=0))
    for _ in range(99):
        log_step(None)
    # spaCy hands over losses summed over steps 1-100: 100 steps
    log_step(_info(100, {"transformer": 282824.0, "spancat": 300.0}, words=10100, seconds=10))
    finalize()
    lines = out.getvalue().splitlines()
    text = " ".join(out.getvalue().split())
    assert "Losses are per step; scores in % on the dev data, every 100 steps, up to step 300" in text
    assert "LOSS TRANSFORMER: the squared size of the gradients the listening components send back" in text
    header = next(ln for ln in lines if ln.lstrip().startswith("E "))
    assert header.split() == ["E", "#", "LOSS", "TRANSFORMER", "LOSS", "SPANCAT", "SPANS_SC_F",
                              "SPANS_SC_P", "SPANS_SC_R", "SCORE"]
    rows = [ln.split() for ln in lines if re.match(r"\s+0\s+\d+\s", ln)]
    assert rows == [
        ["0", "0", "5.00", "2.00", "25.00", "50.00", "10.00", "0.25"],
        ["0", "100", "2,828.24", "3.00", "25.00", "50.00", "10.00", "0.25"],
    ]
    # Not a terminal: one progress line after each row instead of a bar
    assert "step 0/300 (0%), ? words/s, about ? left" in text
    assert "step 100/300 (33%), 1,010 words/s, about 20 s left" in text
    assert err.getvalue() == ""


def test_sums_when_asked_and_no_legend_without_a_transformer():
    log_step, finalize, out, _ = _setup(_nlp(transformer=False), per_step=False, progress_bar=False)
    log_step(_info(0, {"tok2vec": 5.0, "spancat": 2.0}, words=100, seconds=0))
    log_step(_info(100, {"tok2vec": 800.0, "spancat": 300.0}, words=10100, seconds=10))
    finalize()
    text = out.getvalue()
    assert "Losses are sums" in text and "gradients" not in text and "words/s" not in text
    assert re.search(r"\b100\s+800\.00\s+300\.00\s", text)


@pytest.mark.parametrize(
    "seconds,expected", [(None, "?"), (-1, "?"), (45, "45 s"), (720, "12 min"), (5400, "1.5 h")]
)
def test_format_duration(seconds, expected):
    assert format_duration(seconds) == expected


def test_progress_line_without_max_steps():
    assert progress_line(9, 0, 2000, 4.0) == "step 9, 500 words/s"


def test_a_real_training_run_logs_through_it(tmp_path, capsys):
    """spaCy's own training loop with the logger from the config: rows at steps 0, 3, 6."""
    from spacy.training.initialize import init_nlp
    from spacy.training.loop import train

    nlp = spacy.blank("en")
    data = tmp_path / "train.spacy"
    DocBin(docs=tiny_docs(nlp.vocab)).to_disk(data)
    config = Config().from_str(TINY_CONFIG)
    config = spacy.util.load_model_from_config(config, auto_fill=True).config
    config["paths"]["train"] = config["paths"]["dev"] = str(data)
    config["training"]["max_steps"] = 6
    config["training"]["eval_frequency"] = 3
    config["training"]["logger"] = {"@loggers": "biomed.ConsoleLogger.v1", "progress_bar": True}
    out = io.StringIO()
    (tmp_path / "out").mkdir()
    train(init_nlp(config), tmp_path / "out", stdout=out, stderr=io.StringIO())
    rows = [ln.split() for ln in out.getvalue().splitlines() if re.match(r"\s+\d+\s+\d+\s+[\d,.]+\s", ln)]
    assert [r[1] for r in rows] == ["0", "3", "6"]
    assert "step 6/6 (100%)" in out.getvalue()


class Terminal(io.StringIO):
    """A stream that reports itself as a terminal, as tqdm asks."""

    def isatty(self):
        return True


def test_on_a_terminal_a_bar_with_words_per_second_and_eta():
    nlp = _nlp(transformer=True)
    nlp.config["training"]["max_steps"] = 300
    nlp.config["training"]["eval_frequency"] = 100
    nlp.config["training"]["score_weights"] = {"spans_sc_f": 1.0}
    out, err = io.StringIO(), Terminal()
    log_step, finalize = console_logger(refresh=0)(nlp, out, err)
    log_step(_info(0, {"transformer": 5.0, "spancat": 2.0}, words=100, seconds=0))
    for _ in range(150):
        log_step(None)
    bar = err.getvalue()
    finalize()
    # tqdm's bar: steps of the whole run, the time left, and words/s from the words per step
    assert re.search(r"training:\s+50%\|.*\| 151/300 \[", bar)
    assert re.search(r"<\d\d:\d\d, [\d.]+ ?[k]?step/s, [\d,]+ words/s\]", bar)
    assert "step 0/300" not in out.getvalue()  # no progress lines beside a bar


def test_progress_lines_between_rows_in_a_log():
    """Not a terminal: besides the line after each row, one every `log_every` seconds (0 here:
    after every step), with the step spaCy is at, so a log of a long run shows it moving."""
    log_step, finalize, out, _ = _setup(_nlp(transformer=False), log_every=0)
    log_step(_info(0, {"tok2vec": 5.0, "spancat": 2.0}, words=100, seconds=0))
    for _ in range(99):
        log_step(None)
    log_step(_info(100, {"tok2vec": 800.0, "spancat": 300.0}, words=10100, seconds=10))
    finalize()
    steps = [int(m) for m in re.findall(r"step (\d+)/300 \(\d+%\), [\d,?]+ words/s", out.getvalue())]
    assert steps == [0] + list(range(1, 100)) + [100]


def test_no_lines_between_rows_when_log_every_is_negative():
    log_step, finalize, out, _ = _setup(_nlp(transformer=False), log_every=-1)
    log_step(_info(0, {"tok2vec": 5.0, "spancat": 2.0}, words=100, seconds=0))
    for _ in range(99):
        log_step(None)
    finalize()
    assert re.findall(r"step (\d+)/300", out.getvalue()) == ["0"]
