"""scripts.train: a long run cut short with Ctrl-C still leaves a training record."""
import json

from typer.testing import CliRunner

import scripts.train as train_script


def test_interrupted_run_writes_a_record_that_says_so(tmp_path, project_root, monkeypatch):
    def fake_train(nlp, output_dir, **kwargs):
        (output_dir / "model-best").mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(train_script, "init_nlp", lambda config, use_gpu: object())
    monkeypatch.setattr(train_script, "train_nlp", fake_train)
    out = tmp_path / "training"
    result = CliRunner().invoke(
        train_script.app, [str(project_root / "configs" / "baseline_cnn.cfg"), str(out), "--training.max_steps", "7"]
    )
    assert result.exit_code == 130
    out_text = " ".join(result.output.split())  # wasabi wraps long messages
    assert "Interrupted after" in out_text and "model-best is the last evaluated best" in out_text
    record = json.loads((out / "training.json").read_text(encoding="utf8"))
    assert record["interrupted"] is True
    assert record["max_steps"] == 7 and record["training_seconds"] >= 0


def test_finished_run_record_has_no_interrupted_flag(tmp_path, project_root, monkeypatch):
    monkeypatch.setattr(train_script, "init_nlp", lambda config, use_gpu: object())
    monkeypatch.setattr(train_script, "train_nlp", lambda nlp, output_dir, **kwargs: None)
    out = tmp_path / "training"
    result = CliRunner().invoke(train_script.app, [str(project_root / "configs" / "baseline_cnn.cfg"), str(out)])
    assert result.exit_code == 0, result.output
    assert "interrupted" not in json.loads((out / "training.json").read_text(encoding="utf8"))


# --- the spans key reaches training ------------------------------------------------------------

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import spacy  # noqa: E402

from biomed_spancat.training.gpu import GpuConfigError, load_training_config, set_spans_key  # noqa: E402
from biomed_spancat.ingest.convert import ConvertOptions, convert  # noqa: E402

KNOWTATOR = Path(__file__).parent / "data" / "knowtator"


def test_set_spans_key_moves_the_component_and_its_score_weights(project_root):
    config = load_training_config(project_root / "configs" / "spancat.cfg", spans_key="gold")
    assert config["components"]["spancat"]["spans_key"] == "gold"
    assert config["training"]["score_weights"] == {
        "spans_sc_f": None, "spans_gold_f": 1.0, "spans_sc_p": None, "spans_gold_p": 0.0,
        "spans_sc_r": None, "spans_gold_r": 0.0,
    }
    # the rest is untouched, interpolation included
    assert config["components"]["transformer"]["model"]["name"] == "${paths.transformer}"
    unchanged = load_training_config(project_root / "configs" / "spancat.cfg")
    assert unchanged["components"]["spancat"]["spans_key"] == "sc"
    with pytest.raises(GpuConfigError, match="the spans key is empty"):
        set_spans_key(unchanged, " ")
    with pytest.raises(GpuConfigError, match="the config has no spancat component"):
        set_spans_key(type(unchanged)({"components": {"ner": {"factory": "ner"}}}), "gold")


@pytest.mark.slow
def test_a_non_default_key_trains_and_predicts_under_that_key(tmp_path, tiny_bert, project_root):
    corpus = tmp_path / "corpus"
    convert([str(KNOWTATOR)], corpus, ConvertOptions(datasets=["craft_train"], eval=["craft_dev"], spans_key="gold"))
    out = tmp_path / "training"
    args = [
        str(project_root / "configs" / "spancat.cfg"), str(out), "--spans-key", "gold",
        "--paths.train", str(corpus / "train.spacy"), "--paths.dev", str(corpus / "dev.spacy"),
        "--paths.transformer", str(tiny_bert), "--training.max_steps", "4", "--training.eval_frequency", "2",
    ]
    result = CliRunner().invoke(train_script.app, args)
    assert result.exit_code == 0, result.output
    nlp = spacy.load(out / "model-best")
    assert nlp.get_pipe("spancat").key == "gold"
    weights = nlp.config["training"]["score_weights"]
    assert weights["spans_gold_f"] == 1.0 and weights["spans_sc_f"] is None
    assert "spans_gold_f" in nlp.meta["performance"]
    doc = nlp("Rats carry BMP4.")
    assert "gold" in doc.spans and "sc" not in doc.spans


def test_missing_training_data_is_named_before_any_work(tmp_path, project_root, monkeypatch):
    """A dev path that does not exist stops the run with its name, not a traceback
    from spaCy's corpus reader after the pipeline was built."""
    monkeypatch.setattr(train_script, "init_nlp", lambda config, use_gpu: pytest.fail("initialised before the check"))
    train = tmp_path / "train.spacy"
    train.write_bytes(b"")
    args = [str(project_root / "configs" / "baseline_cnn.cfg"), str(tmp_path / "out"), "--paths.train", str(train)]
    result = CliRunner().invoke(train_script.app, args + ["--paths.dev", "corpus/nowhere.spacy"])
    assert result.exit_code == 1
    out_text = " ".join(result.output.split())
    assert "No such training data: paths.dev = corpus/nowhere.spacy" in out_text
    assert "weasel run convert" in out_text and "Traceback" not in out_text
    assert not (tmp_path / "out").exists()
