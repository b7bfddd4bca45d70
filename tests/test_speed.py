"""The one speed figure: what `measure_speed` times and records, and the sentence
that states it (the report, the metrics and the model card share both)."""

import pytest
import spacy

from biomed_spancat.evaluation.speed import SPEED_SCHEMA, config_precision, describe_speed, machine_info, measure_speed

TEXTS = ["BMP2 and BMP4 regulate limb patterning.", "In the mouse embryo, Shh is expressed.", "Fig. 2 shows it."]


def test_measure_speed_records_what_was_timed():
    nlp = spacy.blank("en")
    speed = measure_speed(nlp, TEXTS, data="corpus/dev.spacy", batch_size=2, repeats=3, warmup=2)
    assert speed["schema"] == SPEED_SCHEMA
    assert speed["words"] == sum(len(nlp(t)) for t in TEXTS) == 22
    assert speed["docs"] == 3 and len(speed["runs"]) == 3
    assert speed["seconds"] == sorted(speed["runs"])[1]  # the median pass
    assert speed["words_per_second"] == pytest.approx(22 / speed["seconds"], rel=0.01)
    assert speed["timed"] == {
        "what": "nlp.pipe over the raw texts (tokenizer included)",
        "data": "corpus/dev.spacy",
        "batch_size": 2,
        "n_process": 1,
        "precision": "float32",  # no transformer
        "warmup_docs": 2,
        "repeats": 3,
        "statistic": "median",
    }
    assert speed["machine"] == machine_info("cpu")
    assert speed["machine"]["cpu"] and speed["machine"]["threads"] >= 1 and speed["machine"]["gpu"] is None


def test_describe_speed_states_the_definition():
    speed = {
        "words_per_second": 4190.4,
        "words": 12345,
        "docs": 12,
        "device": "cpu",
        "timed": {"data": "corpus/dev.spacy", "batch_size": 32, "n_process": 1, "precision": "bfloat16",
                  "warmup_docs": 8, "repeats": 3},
        "machine": {"cpu": "Intel(R) Xeon(R) Platinum 8480+", "cpu_count": 2, "threads": 2, "gpu": None},
    }
    assert describe_speed(speed) == (
        "4,190 words/s: median of 3 passes of nlp.pipe over the 12 texts (12,345 words) of corpus/dev.spacy; "
        "batch size 32, 1 process, bfloat16, after a warm-up of 8 texts; "
        "Intel(R) Xeon(R) Platinum 8480+, 2 threads (2 logical CPUs)"
    )
    # A record made without the definition (e.g. the BIO baseline's single pass) says so.
    assert describe_speed({"words_per_second": 52.0, "device": "cpu", "timed": None}) == (
        "52 words/s on cpu (one prediction pass, no warm-up)"
    )


def test_precision_from_the_training_configs():
    from pathlib import Path

    from spacy.util import load_config

    from biomed_spancat.pipeline.architecture import resolve_cpu_precision

    root = Path(__file__).resolve().parent.parent
    cpu = load_config(root / "configs" / "spancat.cfg", interpolate=False)
    # cpu_precision = "auto": what this CPU resolves it to
    assert config_precision(cpu, "cpu") == resolve_cpu_precision("auto") in ("float32", "bfloat16")
    assert config_precision(cpu, "gpu") == "float32"  # mixed_precision = false
    gpu = load_config(root / "configs" / "gpu.cfg", interpolate=False)
    merged = {**cpu["components"]["transformer"]["model"], **gpu["components"]["transformer"]["model"]}
    # configs/gpu.cfg trains in float32 (the settings measured on a GPU); fp16 is an override
    assert config_precision({"components": {"transformer": {"model": merged}}}, "gpu") == "float32"
    assert config_precision({"components": {"transformer": {"model": {**merged, "mixed_precision": True}}}}, "gpu") == "mixed"
    assert config_precision(load_config(root / "configs" / "baseline_cnn.cfg", interpolate=False)) == "float32"


@pytest.mark.parametrize("bad", [{"repeats": 0}, {"batch_size": 0}, {"n_process": 0}])
def test_measure_speed_bad_settings(bad):
    with pytest.raises(ValueError, match=f"{next(iter(bad))} must be at least 1, got 0"):
        measure_speed(spacy.blank("en"), TEXTS, **bad)
    with pytest.raises(ValueError, match="no texts to time"):
        measure_speed(spacy.blank("en"), [])
