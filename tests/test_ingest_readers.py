"""Readers registered by format (biomed_spancat.ingest.readers)."""

import gzip
import json
import sqlite3
from pathlib import Path

import pytest

from biomed_spancat.ingest.convert import ConvertOptions, resolve_sources
from biomed_spancat.ingest.prodigy_db import write_prodigy_sqlite
from biomed_spancat.ingest.readers import (
    READERS,
    ReadOptions,
    get_reader,
    iter_sources,
    redact_url,
    register_reader,
)
from biomed_spancat.ingest.tasks import IngestError, Origin, Task, pseudonym

DATA = Path(__file__).parent / "data" / "ingest"


def read(source, datasets=None, **options):
    reader = get_reader(str(source))
    return list(reader.read(str(source), datasets, ReadOptions(**options)))


def lines(name):
    return [json.loads(x) for x in (DATA / name).read_text(encoding="utf8").splitlines()]


def test_jsonl_yields_every_task_with_its_line():
    tasks = read(DATA / "annotators.jsonl")
    assert len(tasks) == 8
    assert [t.origin.line for t in tasks] == list(range(1, 9))
    assert tasks[0].origin.dataset == "annotators"
    assert str(tasks[2].origin).endswith("annotators.jsonl:3")
    assert tasks[0].data["text"] == "BMP2 and BMP4 regulate limb patterning."


def test_jsonl_broken_lines_become_error_records_with_line_numbers():
    tasks = read(DATA / "broken.jsonl")
    errors = {t.origin.line: (t.reason, t.error) for t in tasks if t.data is None}
    assert errors[2][0] == "malformed_json" and "column" in errors[2][1]
    assert errors[4] == ("malformed_task", "malformed task: a JSON list, not an object")
    assert errors[5][0] == "bad_encoding" and "not valid UTF-8 (byte 0xe9" in errors[5][1]
    assert 3 not in {t.origin.line for t in tasks}  # the blank line is not a task
    assert len(tasks) == 10


def test_gzip_is_read_transparently(tmp_path):
    gz = tmp_path / "export.jsonl.gz"
    with gzip.open(gz, "wb") as f:
        f.write((DATA / "annotators.jsonl").read_bytes())
    plain = read(DATA / "annotators.jsonl")
    zipped = read(gz)
    assert [t.data for t in zipped] == [t.data for t in plain]
    assert zipped[0].origin.dataset == "export"


def test_utf8_bom_is_accepted_and_utf16_is_refused(tmp_path):
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + (DATA / "overlaps.jsonl").read_bytes())
    assert read(bom)[0].data["text"].startswith("Retinal")
    utf16 = tmp_path / "utf16.jsonl"
    utf16.write_bytes((DATA / "overlaps.jsonl").read_text(encoding="utf8").encode("utf-16"))
    with pytest.raises(IngestError, match=r"utf16.jsonl: the file is UTF-16 encoded; re-export it as UTF-8"):
        read(utf16)


def test_corrupt_gzip_names_the_file(tmp_path):
    gz = tmp_path / "cut.jsonl.gz"
    data = gzip.compress((DATA / "annotators.jsonl").read_bytes())
    gz.write_bytes(data[: len(data) // 2])
    with pytest.raises(IngestError, match=r"cut.jsonl.gz: unreadable after line"):
        read(gz)


def test_missing_source_names_it():
    with pytest.raises(IngestError, match=r"nowhere.jsonl: no such file"):
        read("nowhere.jsonl")
    with pytest.raises(IngestError, match=r"nowhere: no such file, directory or database"):
        get_reader("nowhere")


def test_directory_reads_every_export_with_file_stems_as_datasets():
    reader = get_reader(str(DATA / "db_out"))
    assert reader.name == "jsonl_dir"
    names = [d.name for d in reader.list_datasets(str(DATA / "db_out"), ReadOptions())]
    assert names == ["limb_a", "limb_b"]
    tasks = read(DATA / "db_out")
    assert [(t.origin.dataset, t.origin.line) for t in tasks] == [("limb_a", 1), ("limb_b", 1), ("limb_b", 2)]
    only_b = read(DATA / "db_out", datasets=["limb_b"])
    assert [t.data["text"] for t in only_b] == ["Shh in the limb bud.", "Gremlin1 in the limb."]


def test_empty_directory_is_an_error(tmp_path):
    with pytest.raises(IngestError, match="no .jsonl or .jsonl.gz files"):
        resolve_sources([str(tmp_path)], ConvertOptions())


@pytest.fixture
def prodigy_db(tmp_path):
    return write_prodigy_sqlite(
        tmp_path / "prodigy.db",
        {
            "limbs": lines("annotators.jsonl"),
            "limbs-alice": lines("annotators.jsonl")[:1],
            "answers": lines("answers.jsonl"),
            "broken": [b'{"text": "Sox9', "Caf\u00e9".encode("latin-1")],
        },
        sessions={"limbs-alice"},
    )


def test_sqlite_reads_datasets_with_rows(prodigy_db):
    reader = get_reader(str(prodigy_db))
    assert reader.name == "sqlite"
    infos = reader.list_datasets(str(prodigy_db), ReadOptions())
    assert [(d.name, d.session) for d in infos] == [
        ("limbs", False),
        ("limbs-alice", True),
        ("answers", False),
        ("broken", False),
    ]
    tasks = read(prodigy_db, datasets=["limbs"])
    assert [t.data for t in tasks] == lines("annotators.jsonl")
    assert tasks[0].origin.dataset == "limbs" and tasks[0].origin.row == 1
    assert str(tasks[0].origin) == f"{prodigy_db} dataset 'limbs' row 1"


def test_sqlite_broken_content_becomes_error_records_with_rows(prodigy_db):
    tasks = read(prodigy_db, datasets=["broken"])
    assert [(t.origin.dataset, t.reason) for t in tasks] == [("broken", "malformed_json"), ("broken", "bad_encoding")]
    assert all(t.origin.row is not None for t in tasks)


def test_session_datasets_are_skipped_unless_asked(prodigy_db):
    plan, described = resolve_sources([str(prodigy_db)], ConvertOptions())
    assert plan == [(str(prodigy_db), ["limbs", "answers", "broken"], "train")]
    skipped = [pseudonym("limbs-alice", "prodigy")]  # named after a user: never shown as it is
    assert {"source": str(prodigy_db), "skipped_session_datasets": skipped} in described["sources"]
    plan, _ = resolve_sources([str(prodigy_db)], ConvertOptions(include_sessions=True))
    assert plan == [(str(prodigy_db), ["limbs", "limbs-alice", "answers", "broken"], "train")]
    # naming a session dataset reads it
    plan, _ = resolve_sources([str(prodigy_db)], ConvertOptions(datasets=["limbs-alice"]))
    assert plan == [(str(prodigy_db), ["limbs-alice"], "train")]


def test_eval_datasets_by_name_and_prefix(prodigy_db):
    plan, _ = resolve_sources([str(prodigy_db)], ConvertOptions(datasets=["limbs"], eval=["answers"]))
    assert plan == [(str(prodigy_db), ["limbs"], "train"), (str(prodigy_db), ["answers"], "dev")]
    plan, _ = resolve_sources([str(prodigy_db)], ConvertOptions(datasets=["limbs,eval:answers"]))
    assert plan == [(str(prodigy_db), ["limbs"], "train"), (str(prodigy_db), ["answers"], "dev")]
    # with no --datasets, the eval datasets are held out of train
    plan, _ = resolve_sources([str(prodigy_db)], ConvertOptions(eval=["answers"]))
    assert plan == [(str(prodigy_db), ["limbs", "broken"], "train"), (str(prodigy_db), ["answers"], "dev")]


def test_unknown_dataset_lists_the_available_ones(prodigy_db):
    with pytest.raises(IngestError) as err:
        resolve_sources([str(prodigy_db)], ConvertOptions(datasets=["limb"]))
    assert "unknown dataset 'limb'" in str(err.value)
    assert f"limbs, {pseudonym('limbs-alice', 'prodigy')}, answers, broken" in str(err.value)


def test_dataset_names_without_a_database_source_are_explained():
    with pytest.raises(IngestError, match="no source holds datasets"):
        resolve_sources([str(DATA / "annotators.jsonl")], ConvertOptions(eval=["craft_dev"]))


def test_missing_database_is_not_created(tmp_path):
    path = tmp_path / "missing.db"
    with pytest.raises(IngestError, match=r"missing.db: database not found"):
        read(path)
    assert not path.exists()


def test_not_a_prodigy_database(tmp_path):
    path = tmp_path / "other.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE notes (id INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(
        IngestError, match=r"other.db: not a Prodigy database \(missing tables: dataset, example, link\)"
    ):
        read(path)


def test_garbage_database_file(tmp_path):
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(IngestError, match=r"garbage.db: not an SQLite database"):
        read(path)


def test_locked_database_says_so(prodigy_db):
    holder = sqlite3.connect(prodigy_db)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(IngestError, match=r"prodigy.db: database is locked .*another process"):
            read(prodigy_db, datasets=["limbs"], db_timeout=0.1)
    finally:
        holder.rollback()
        holder.close()


def test_redact_url_hides_only_the_password():
    assert (
        redact_url("postgresql://ann:s3cr%40t@db.example:5432/prodigy")
        == "postgresql://ann:***@db.example:5432/prodigy"
    )
    assert redact_url("postgresql://ann@db/prodigy") == "postgresql://ann@db/prodigy"
    assert redact_url("assets/x.jsonl") == "assets/x.jsonl"


def test_a_new_format_plugs_into_the_registry(tmp_path):
    """What the Argilla / Label Studio readers do: register by format, yield
    Prodigy-shaped tasks with their origin."""
    source = tmp_path / "records.tsv"
    source.write_text("Sox9\tPR\nDNA\tCHEBI\n", encoding="utf8")

    @register_reader("tsv_test", detect=lambda s: s.endswith(".tsv"), priority=5)
    def read_tsv(src, datasets, options):
        for i, row in enumerate(Path(src).read_text(encoding="utf8").splitlines(), start=1):
            text, label = row.split("\t")
            yield Task(
                {"text": text, "spans": [{"start": 0, "end": len(text), "label": label}], "answer": "accept"},
                Origin(src, line=i),
            )

    try:
        assert get_reader(str(source)).name == "tsv_test"
        tasks = list(iter_sources([(str(source), None, "dev")], ReadOptions()))
        assert [(t.data["text"], t.origin.line, t.role) for t in tasks] == [("Sox9", 1, "dev"), ("DNA", 2, "dev")]
        assert get_reader(str(DATA / "annotators.jsonl"), fmt="tsv_test").name == "tsv_test"
    finally:
        del READERS["tsv_test"]
    with pytest.raises(IngestError, match="unknown format 'tsv_test'"):
        get_reader(str(source), fmt="tsv_test")
