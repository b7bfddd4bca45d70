"""Write tasks into a database with Prodigy's tables (`dataset`, `example`,
`link`), SQLite or PostgreSQL. Used to build test fixtures and benchmarks;
the readers in `readers.py` never write."""

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Set, Union

__all__ = ["SQLITE_SCHEMA", "POSTGRES_SCHEMA", "write_prodigy_sqlite", "write_prodigy_postgres"]

SQLITE_SCHEMA = """
CREATE TABLE dataset (id INTEGER NOT NULL PRIMARY KEY, name VARCHAR(255) NOT NULL,
                      created INTEGER NOT NULL, meta BLOB NOT NULL, session INTEGER NOT NULL);
CREATE UNIQUE INDEX dataset_name ON dataset (name);
CREATE TABLE example (id INTEGER NOT NULL PRIMARY KEY, input_hash BIGINT NOT NULL,
                      task_hash BIGINT NOT NULL, content BLOB NOT NULL);
CREATE TABLE link (id INTEGER NOT NULL PRIMARY KEY,
                   example_id INTEGER NOT NULL REFERENCES example (id),
                   dataset_id INTEGER NOT NULL REFERENCES dataset (id));
CREATE INDEX link_example_id ON link (example_id);
CREATE INDEX link_dataset_id ON link (dataset_id);
"""

# Prodigy's PostgreSQL tables (peewee models Dataset, Example, Link)
POSTGRES_SCHEMA = """
CREATE TABLE dataset (id SERIAL PRIMARY KEY, name VARCHAR(255) NOT NULL UNIQUE,
                      created INTEGER NOT NULL, meta BYTEA NOT NULL, session BOOLEAN NOT NULL);
CREATE TABLE example (id SERIAL PRIMARY KEY, input_hash BIGINT NOT NULL,
                      task_hash BIGINT NOT NULL, content BYTEA NOT NULL);
CREATE TABLE link (id SERIAL PRIMARY KEY,
                   example_id INTEGER NOT NULL REFERENCES example (id),
                   dataset_id INTEGER NOT NULL REFERENCES dataset (id));
CREATE INDEX link_example_id ON link (example_id);
CREATE INDEX link_dataset_id ON link (dataset_id);
"""

Content = Union[Dict[str, Any], bytes, str]


def _content(task: Content) -> bytes:
    if isinstance(task, bytes):
        return task
    if isinstance(task, str):
        return task.encode("utf8")
    return json.dumps(task, ensure_ascii=False).encode("utf8")


def _hashes(task: Content) -> tuple:
    if isinstance(task, dict):
        return int(task.get("_input_hash", 0) or 0), int(task.get("_task_hash", 0) or 0)
    return 0, 0


def write_prodigy_sqlite(
    path: Path, datasets: Dict[str, Iterable[Content]], sessions: Optional[Set[str]] = None
) -> Path:
    """Create a Prodigy SQLite database holding the given datasets.

    path (Path): The database file (must not exist).
    datasets (Dict[str, Iterable[Content]]): Dataset name -> tasks (dicts, or
        raw bytes/str stored as they are, to test broken content).
    sessions (Optional[Set[str]]): Names of per-session datasets.
    RETURNS (Path): The path.
    """
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} exists")
    con = sqlite3.connect(path)
    con.executescript(SQLITE_SCHEMA)
    sessions = sessions or set()
    now = int(time.time())
    for name, tasks in datasets.items():
        meta = json.dumps({"description": None}).encode("utf8")
        ds = con.execute(
            "INSERT INTO dataset (name, created, meta, session) VALUES (?, ?, ?, ?)",
            (name, now, meta, int(name in sessions)),
        ).lastrowid
        for task in tasks:
            ih, th = _hashes(task)
            ex = con.execute(
                "INSERT INTO example (input_hash, task_hash, content) VALUES (?, ?, ?)", (ih, th, _content(task))
            ).lastrowid
            con.execute("INSERT INTO link (example_id, dataset_id) VALUES (?, ?)", (ex, ds))
    con.commit()
    con.close()
    return path


def write_prodigy_postgres(url: str, datasets: Dict[str, List[Content]], sessions: Optional[Set[str]] = None) -> None:
    """Create Prodigy's tables in an empty PostgreSQL database and load datasets.

    url (str): A postgresql:// URL.
    datasets (Dict[str, List[Content]]): Dataset name -> tasks.
    sessions (Optional[Set[str]]): Names of per-session datasets.
    """
    import psycopg

    sessions = sessions or set()
    now = int(time.time())
    with psycopg.connect(url) as con:
        with con.cursor() as cur:
            cur.execute(POSTGRES_SCHEMA)
            for name, tasks in datasets.items():
                cur.execute(
                    "INSERT INTO dataset (name, created, meta, session) VALUES (%s, %s, %s, %s) RETURNING id",
                    (name, now, json.dumps({"description": None}).encode("utf8"), name in sessions),
                )
                ds = cur.fetchone()[0]
                for task in tasks:
                    ih, th = _hashes(task)
                    cur.execute(
                        "INSERT INTO example (input_hash, task_hash, content) VALUES (%s, %s, %s) RETURNING id",
                        (ih, th, _content(task)),
                    )
                    ex = cur.fetchone()[0]
                    cur.execute("INSERT INTO link (example_id, dataset_id) VALUES (%s, %s)", (ex, ds))
