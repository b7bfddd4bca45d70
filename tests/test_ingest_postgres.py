"""Reading Prodigy's PostgreSQL database from a real, throwaway server.

The fixture (`pg_server`, tests/pg_fixtures.py) starts its own PostgreSQL
(Debian's `postgresql` package: initdb/pg_ctl from /usr/lib/postgresql/*/bin)
on 127.0.0.1 and a free port, in a temporary folder, with password
authentication; loads Prodigy's tables; and stops it at teardown. As root, the
server runs as the `postgres` OS user (initdb refuses root). Skipped, with the
reason, when the binaries are absent.
"""

import json
from urllib.parse import quote

import pytest

from biomed_spancat.ingest.convert import ConvertOptions, convert
from biomed_spancat.ingest.readers import ReadOptions, get_reader
from biomed_spancat.ingest.tasks import IngestError, pseudonym
from pg_fixtures import DATA, PASSWORD, free_port, lines


def test_reads_datasets_like_the_export(pg_server):
    url = pg_server["url"]
    reader = get_reader(url)
    assert reader.name == "postgresql"
    infos = reader.list_datasets(url, ReadOptions())
    assert [(d.name, d.session) for d in infos] == [
        ("limbs", False),
        ("limbs-alice", True),
        ("answers", False),
        ("broken", False),
    ]
    tasks = list(reader.read(url, ["limbs"], ReadOptions(batch_size=3)))  # several round trips
    assert [t.data for t in tasks] == lines("annotators.jsonl")
    assert all(t.origin.dataset == "limbs" and t.origin.row for t in tasks)
    assert PASSWORD not in str(tasks[0].origin) and "***" in str(tasks[0].origin)


def test_convert_from_postgres_matches_the_export(pg_server, tmp_path):
    from_db = convert([pg_server["url"]], tmp_path / "db", ConvertOptions(datasets=["limbs", "answers"], eval_split=0))
    from_files = convert(
        [str(DATA / "annotators.jsonl"), str(DATA / "answers.jsonl")], tmp_path / "files", ConvertOptions(eval_split=0)
    )
    for key in ("read", "kept", "rejected", "merged", "duplicates", "rejected_by_reason", "spans"):
        assert from_db[key] == from_files[key], key
    assert (tmp_path / "db" / "train.spacy").read_bytes() != b""


def test_broken_rows_are_rejected_with_dataset_and_row(pg_server, tmp_path):
    report = convert([pg_server["url"]], tmp_path, ConvertOptions(datasets=["broken"], eval_split=0))
    assert report["rejected_by_reason"] == {"bad_encoding": 1, "malformed_json": 1}
    rows = [json.loads(x) for x in (tmp_path / "rejections.jsonl").read_text(encoding="utf8").splitlines()]
    assert [(r["dataset"], type(r["row"])) for r in rows] == [("broken", int), ("broken", int)]


def test_sessions_skipped_and_eval_datasets(pg_server, tmp_path):
    report = convert([pg_server["url"]], tmp_path, ConvertOptions(eval=["answers"]))
    roles = {(s.get("role"), tuple(s.get("datasets", ()))) for s in report["sources"] if "role" in s}
    assert roles == {("train", ("limbs", "broken")), ("dev", ("answers",))}
    assert {
        "source": pg_server["url"].replace(quote(PASSWORD, safe=""), "***"),
        "skipped_session_datasets": [pseudonym("limbs-alice", "prodigy")],
    } in report["sources"]


def test_password_is_never_printed_or_written(pg_server, tmp_path):
    from conftest import convert_cli as cli

    secrets = (PASSWORD, quote(PASSWORD, safe=""))
    result = cli(pg_server["url"], tmp_path, "--datasets", "limbs,broken", "--eval-split", "0")
    assert result.exit_code == 0, result.output
    written = result.output + "".join(p.read_text(encoding="utf8") for p in tmp_path.glob("*.json*"))
    assert "***" in written
    for secret in secrets:
        assert secret not in written
    # errors too: unknown dataset, wrong password, a database without Prodigy's tables
    failures = [
        cli(pg_server["url"], tmp_path / "x", "--datasets", "nope"),
        cli(pg_server["url"].replace(quote(PASSWORD, safe=""), "wrong%21pw"), tmp_path / "x"),
        cli(pg_server["base"] + "/empty", tmp_path / "x"),
    ]
    assert [f.exit_code for f in failures] == [1, 1, 1]
    listed = f"limbs, {pseudonym('limbs-alice', 'prodigy')}, answers, broken"
    assert "unknown dataset 'nope'" in failures[0].text and listed in failures[0].text
    assert "cannot connect" in failures[1].text and "password authentication failed" in failures[1].text
    assert "not a Prodigy database" in failures[2].text
    for failure in failures:
        for secret in secrets + ("wrong%21pw", "wrong!pw"):
            assert secret not in failure.output


def test_unreachable_server_is_a_clear_error(pg_server):
    closed = free_port()
    with pytest.raises(IngestError) as err:
        get_reader("postgresql://").list_datasets(
            f"postgresql://postgres:{quote(PASSWORD, safe='')}@127.0.0.1:{closed}/prodigy", ReadOptions(db_timeout=2)
        )
    assert "cannot connect" in str(err.value)
    assert f"postgres:***@127.0.0.1:{closed}" in str(err.value)
    assert PASSWORD not in str(err.value) and quote(PASSWORD, safe="") not in str(err.value)
