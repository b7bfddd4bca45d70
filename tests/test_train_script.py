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
