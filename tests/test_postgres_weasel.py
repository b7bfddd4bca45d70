"""PostgreSQL through `weasel run convert`, the password never on a command
line or in any output: it comes from a variable named by `env:NAME`,
PGPASSWORD or a password file (libpq's ~/.pgpass). Uses the real, throwaway
server of tests/pg_fixtures.py (skipped, with the reason, without it)."""

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
import spacy
from spacy.tokens import DocBin

from biomed_spancat.ingest.pgsource import dsn_secrets, has_password, resolve_dsn, scrub_dsn
from biomed_spancat.ingest.tasks import IngestError
from pg_fixtures import PASSWORD
from conftest import copy_project

ROOT = Path(__file__).resolve().parent.parent
WEASEL = str(Path(sys.executable).parent / "weasel")
SECRETS = (PASSWORD, quote(PASSWORD, safe=""))
DATASETS = "limbs,eval:answers"


@pytest.fixture()
def project(tmp_path):
    return copy_project(tmp_path / "project")


def weasel_convert(root, source, env_extra, *extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "PRODIGY_DSN"}
    env.update(env_extra)
    cmd = [WEASEL, "run", "convert", str(root), "--vars.prodigy_source", source,
           "--vars.prodigy_datasets", DATASETS, *extra]
    result = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    result.text = result.stdout + result.stderr
    return result


def everything_written(root):
    return "".join(p.read_text(encoding="utf8", errors="replace") for p in root.rglob("*")
                   if p.is_file() and p.suffix in (".json", ".jsonl", ".lock", ".yml", ".log", ""))


def assert_no_secret(*texts):
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def assert_converted(root, result):
    assert result.returncode == 0, result.text[-3000:]
    docs = list(DocBin().from_disk(root / "corpus" / "train.spacy").get_docs(spacy.blank("en").vocab))
    dev = list(DocBin().from_disk(root / "corpus" / "dev.spacy").get_docs(spacy.blank("en").vocab))
    assert len(docs) == 4 and len(dev) == 4
    assert "labels in train but not in dev (not evaluated): GO_BP" in result.text


def test_dsn_from_a_variable_named_by_env(pg_server, project):
    result = weasel_convert(project, "env:PRODIGY_DSN", {"PRODIGY_DSN": pg_server["url"]})
    assert_converted(project, result)
    assert "scripts.convert env:PRODIGY_DSN corpus" in result.text  # the command line weasel ran
    assert_no_secret(result.text, everything_written(project))
    assert "env:PRODIGY_DSN" in (project / "corpus" / "report.json").read_text(encoding="utf8")


def test_dry_run_prints_no_password(pg_server, project):
    result = weasel_convert(project, "env:PRODIGY_DSN", {"PRODIGY_DSN": pg_server["url"]}, "--dry")
    assert result.returncode == 0, result.text
    assert "Running command" in result.text
    assert_no_secret(result.text)


def test_password_from_pgpassword(pg_server, project):
    url = f"postgresql://postgres@127.0.0.1:{pg_server['port']}/prodigy"
    result = weasel_convert(project, url, {"PGPASSWORD": PASSWORD})
    assert_converted(project, result)
    assert_no_secret(result.text, everything_written(project))


def test_password_from_a_pgpass_file(pg_server, project, tmp_path):
    pgpass = tmp_path / "pgpass"
    escaped = PASSWORD.replace("\\", "\\\\").replace(":", "\\:")
    pgpass.write_text(f"127.0.0.1:{pg_server['port']}:prodigy:postgres:{escaped}\n", encoding="utf8")
    pgpass.chmod(0o600)
    url = f"postgresql://postgres@127.0.0.1:{pg_server['port']}/prodigy"
    result = weasel_convert(project, url, {"PGPASSFILE": str(pgpass)})
    assert_converted(project, result)
    assert_no_secret(result.text, everything_written(project))


def test_unset_variable_and_wrong_password_fail_clearly(pg_server, project):
    unset = weasel_convert(project, "env:PRODIGY_DSN", {})
    assert unset.returncode != 0
    assert "env:PRODIGY_DSN: the environment variable PRODIGY_DSN is not set" in " ".join(unset.text.split())
    wrong = pg_server["url"].replace(quote(PASSWORD, safe=""), "wr0ng%3Asecret")
    failed = weasel_convert(project, "env:PRODIGY_DSN", {"PRODIGY_DSN": wrong})
    assert failed.returncode != 0
    assert "cannot connect" in failed.text and "password authentication failed" in failed.text
    for secret in ("wr0ng%3Asecret", "wr0ng:secret"):
        assert secret not in failed.text


def test_a_password_on_the_command_line_is_warned_about(pg_server, tmp_path):
    from conftest import convert_cli as cli

    result = cli(pg_server["url"], tmp_path, "--datasets", DATASETS)
    assert result.exit_code == 0, result.output
    assert "a password is on the command line" in result.text


@pytest.mark.parametrize("dsn,secrets", [
    ("postgresql://u:p%40ss@h/db", ["p%40ss", "p@ss"]),
    ("postgresql://u@h/db?password=q%26r", ["q%26r", "q&r"]),
    ("host=h dbname=db user=u password='a b'", ["a b"]),
    ("postgresql://u@h/db", []),
])
def test_dsn_secrets_are_found_in_every_form(dsn, secrets, monkeypatch):
    assert sorted(dsn_secrets(dsn)) == sorted(secrets)
    monkeypatch.setenv("MY_DSN", dsn)
    assert resolve_dsn("env:MY_DSN") == dsn
    assert has_password(dsn) == (bool(secrets) and dsn.startswith("postgresql://"))
    assert not has_password("env:MY_DSN")
    for secret in secrets:
        assert secret not in scrub_dsn(f"failed for {dsn}", "env:MY_DSN")


def test_env_source_without_a_name_is_refused():
    with pytest.raises(IngestError, match="name the environment variable"):
        resolve_dsn("env:")
