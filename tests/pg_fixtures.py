"""The throwaway PostgreSQL server the PostgreSQL tests share (a pytest plugin,
registered in conftest.py): a real server started as the `postgres` user,
holding Prodigy datasets written by the project's own writer; the tests skip,
with the reason, where no server binaries are installed."""
import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

import pytest

from biomed_spancat.ingest.prodigy_db import write_prodigy_postgres

DATA = Path(__file__).resolve().parent / "data" / "ingest"
PASSWORD = "s3cr&t:p@ss/word"


def lines(name):
    return [json.loads(x) for x in (DATA / name).read_text(encoding="utf8").splitlines()]


def _pg_bin():
    for bindir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True):
        if os.path.exists(f"{bindir}/initdb") and os.path.exists(f"{bindir}/pg_ctl"):
            return bindir
    found = shutil.which("pg_ctl")
    return os.path.dirname(found) if found and shutil.which("initdb") else None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pg_server():
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (apt-get install -y postgresql)")
    as_root = os.geteuid() == 0
    prefix = []
    workdir = Path(tempfile.mkdtemp(prefix="biomed-pg-"))
    if as_root:
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(workdir)
            pytest.skip("running as root but there is no 'postgres' OS user to run the server")
        os.chown(workdir, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"] if shutil.which("runuser") else None
        if prefix is None:
            shutil.rmtree(workdir)
            pytest.skip("running as root without runuser to start the server as 'postgres'")
    pwfile = workdir / "pw"
    pwfile.write_text(PASSWORD + "\n", encoding="utf8")
    if as_root:
        os.chown(pwfile, user.pw_uid, user.pw_gid)
    data, log, port = workdir / "data", workdir / "server.log", free_port()

    def run(*cmd):
        return subprocess.run(prefix + list(cmd), check=True, capture_output=True, text=True, cwd=workdir)

    try:
        run(
            f"{bindir}/initdb",
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "scram-sha-256",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--no-sync",
        )
        run(
            f"{bindir}/pg_ctl",
            "-D",
            str(data),
            "-l",
            str(log),
            "-w",
            "-t",
            "60",
            "-o",
            f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={workdir} -c fsync=off",
            "start",
        )
    except subprocess.CalledProcessError as err:
        detail = (err.stderr or "") + (log.read_text() if log.exists() else "")
        shutil.rmtree(workdir, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {detail}")
    base = f"postgresql://postgres:{quote(PASSWORD, safe='')}@127.0.0.1:{port}"
    try:
        import psycopg

        with psycopg.connect(f"{base}/postgres", autocommit=True) as con:
            con.execute("CREATE DATABASE prodigy")
            con.execute("CREATE DATABASE empty")
        write_prodigy_postgres(
            f"{base}/prodigy",
            {
                "limbs": lines("annotators.jsonl"),
                "limbs-alice": lines("annotators.jsonl")[:1],
                "answers": lines("answers.jsonl"),
                "broken": [b'{"text": "Sox9', "Caf\u00e9".encode("latin-1")],
            },
            sessions={"limbs-alice"},
        )
        yield {"url": f"{base}/prodigy", "base": base, "port": port}
    finally:
        subprocess.run(
            prefix + [f"{bindir}/pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True, cwd=workdir
        )
        shutil.rmtree(workdir, ignore_errors=True)
