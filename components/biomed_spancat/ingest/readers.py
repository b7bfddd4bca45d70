"""Readers registered by format: each turns one source into a stream of
`Task` records carrying their origin (file + line, or dataset + row).

Prodigy's own formats are registered here: `jsonl` (a `db-out` file, gzip
too), `jsonl_dir` (a folder of them, one file per dataset, as `db-out` writes
it), `sqlite` (`prodigy.db`) and `postgresql` (a `postgresql://` URL). Other
tools plug in the same way:

    @register_reader("label_studio", detect=lambda source: source.endswith(".json"), priority=5)
    def read_label_studio(source: str, datasets: Optional[Sequence[str]], options: ReadOptions) -> Iterator[Task]:
        ...  # yield Task(prodigy_shaped_dict, Origin(source, line=i))

A reader yields every record it reads, also the ones it cannot parse (as a
`Task` with `data=None` and `error` set), so that the ledger can count them.
Fatal problems (a missing or locked database, an unknown dataset) raise
`IngestError` with the source and the reason.
"""

import gzip
import importlib
import importlib.util
import json
import re
import sqlite3
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit, urlunsplit

from .pgsource import is_postgres_source, resolve_dsn, scrub_dsn
from .sniff import READABLE_HINT, describe, peek, record_kind
from .tasks import IngestError, Origin, Task

__all__ = [
    "ReadOptions",
    "DatasetInfo",
    "Reader",
    "READERS",
    "register_reader",
    "get_reader",
    "load_plugins",
    "redact_url",
    "parse_line",
]

ReadFn = Callable[[str, Optional[Sequence[str]], "ReadOptions"], Iterator[Task]]
ListFn = Callable[[str, "ReadOptions"], List["DatasetInfo"]]


@dataclass
class ReadOptions:
    """Options every reader receives.

    db_timeout (float): Seconds to wait for a locked SQLite database or a
        PostgreSQL connection before giving up with a message.
    batch_size (int): Rows fetched per round trip from a database (streams).
    """

    db_timeout: float = 5.0
    batch_size: int = 2000


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset a source holds. session (bool): a per-session dataset
    (Prodigy writes one per annotator session beside the main dataset)."""

    name: str
    session: bool = False


@dataclass
class Reader:
    """A registered reader.

    name (str): The format name (`--format`).
    read (ReadFn): `read(source, datasets, options)` yields Tasks; `datasets`
        is None to read everything the source holds.
    detect (Callable[[str], bool]): Whether a source string is in this format.
    list_datasets (Optional[ListFn]): The datasets a source holds, for formats
        that have datasets (databases, folders); None for a single file.
    priority (int): Detection order, highest first.
    """

    name: str
    read: ReadFn
    detect: Callable[[str], bool]
    list_datasets: Optional[ListFn] = None
    priority: int = 0


READERS: Dict[str, Reader] = {}


def register_reader(
    name: str,
    *,
    detect: Callable[[str], bool],
    list_datasets: Optional[ListFn] = None,
    priority: int = 0,
) -> Callable[[ReadFn], ReadFn]:
    """Register a reader function for a format.

    name (str): The format name.
    detect (Callable[[str], bool]): Recognises a source string of this format.
    list_datasets (Optional[ListFn]): Lists a source's datasets, if it has any.
    priority (int): Detection order, highest first.
    RETURNS (Callable): A decorator that registers and returns the function.
    """

    def decorator(func: ReadFn) -> ReadFn:
        READERS[name] = Reader(name, func, detect, list_datasets, priority)
        return func

    return decorator


# Readers of other tools shipped in this package (Argilla, Label Studio, Knowtator). They
# import this module to register themselves, so they are loaded on first use
# rather than at import time; a missing module is simply not offered.
PLUGIN_MODULES = ("argilla", "labelstudio", "knowtator")
_plugins_loaded = False


def load_plugins() -> None:
    """Import the reader modules in PLUGIN_MODULES once, so that they register."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for name in PLUGIN_MODULES:
        module = f"{__package__}.{name}"
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)


def get_reader(source: str, fmt: Optional[str] = None) -> Reader:
    """Find the reader for a source: the named format, or the first
    registered reader (by priority) that recognises it.

    source (str): A path or URL.
    fmt (Optional[str]): A format name to force.
    RETURNS (Reader): The reader.
    """
    load_plugins()
    if fmt:
        if fmt not in READERS:
            raise IngestError(f"unknown format '{fmt}' (known: {', '.join(sorted(READERS))})")
        return READERS[fmt]
    for reader in sorted(READERS.values(), key=lambda r: -r.priority):
        if reader.detect(source):
            return reader
    if not _is_url(source) and not Path(source).exists():
        raise IngestError(f"{source}: no such file, directory or database")
    if _is_url(source):
        raise IngestError(
            f"{redact_url(source)}: cannot tell its format (known: {', '.join(sorted(READERS))}); pass --format"
        )
    raise IngestError(f"{source}: cannot read this file: it {describe(source)}. To convert it, {READABLE_HINT}")


# --- helpers -------------------------------------------------------------------


def _is_url(source: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", source))


def redact_url(source: str) -> str:
    """Replace the password in a URL with '***' so it is never printed or written.

    source (str): A path or URL.
    RETURNS (str): The same source with any password hidden.
    """
    if not _is_url(source):
        return source
    parts = urlsplit(source)
    if parts.password is None:
        return source
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def _scrub(message: str, source: str) -> str:
    """Remove a URL's password (raw or percent-decoded) from an error message."""
    if _is_url(source):
        message = message.replace(source, redact_url(source))
    if is_postgres_source(source):  # a URL's or an env:NAME variable's password, raw or percent-decoded
        message = scrub_dsn(message, source)
    elif _is_url(source):
        password = urlsplit(source).password
        if password:
            from urllib.parse import unquote

            for secret in {password, unquote(password)}:
                message = message.replace(secret, "***")
    return message


def parse_line(raw: bytes, origin: Origin) -> Task:
    """Decode and parse one JSON line; a record that fails becomes a Task
    with `error` set (so it is counted and reported, never dropped).

    raw (bytes): The line's bytes.
    origin (Origin): Where it was read.
    RETURNS (Task): The parsed task, or an error record.
    """
    try:
        text = raw.decode("utf8")
    except UnicodeDecodeError as err:
        return Task(
            None,
            origin,
            reason="bad_encoding",
            error=f"encoding: not valid UTF-8 (byte 0x{raw[err.start]:02x} at offset {err.start}); re-export as UTF-8",
        )
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        return Task(None, origin, reason="malformed_json", error=f"malformed JSON: {err.msg} (column {err.colno})")
    if not isinstance(data, dict):
        return Task(
            None, origin, reason="malformed_task", error=f"malformed task: a JSON {type(data).__name__}, not an object"
        )
    return Task(data, origin)


# --- JSONL files and folders ----------------------------------------------------

JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".json.gz", ".ndjson", ".jsonl.gzip")


def _dataset_name(path: Path) -> str:
    name = path.name
    for suffix in sorted(JSONL_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _open_binary(path: Path):
    with path.open("rb") as probe:
        head = probe.read(2)
    if head == b"\x1f\x8b":
        return gzip.open(path, "rb")
    return path.open("rb")


def read_jsonl_file(path: Path, dataset: Optional[str] = None) -> Iterator[Task]:
    """Stream the tasks of one JSONL file (plain or gzip), one Task per
    non-blank line, with its 1-based line number.

    path (Path): The file.
    dataset (Optional[str]): The dataset name to record (default: file stem).
    YIELDS (Task): The tasks, including unparseable lines as error records.
    """
    source = str(path)
    dataset = dataset or _dataset_name(path)
    if not path.exists():
        raise IngestError(f"{source}: no such file")
    seen = peek(source)
    if seen is not None and seen.layout in ("array", "object"):
        if record_kind(seen.first) == "prodigy":  # Prodigy tasks saved as one JSON array (or one task)
            yield from _read_json_tasks(path, seen.layout, dataset)
            return
        raise IngestError(
            f"{source}: not JSON lines: it {describe(source)}. Leave out --format (the format is recognised "
            "from the content) or name the tool's format (--format labelstudio|argilla)"
        )
    lineno = 0
    try:
        with _open_binary(path) as f:
            for lineno, raw in enumerate(f, start=1):
                if lineno == 1:
                    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
                        raise IngestError(f"{source}: the file is UTF-16 encoded; re-export it as UTF-8")
                    if raw.startswith(b"\xef\xbb\xbf"):
                        raw = raw[3:]
                raw = raw.strip()
                if not raw:
                    continue
                yield parse_line(raw, Origin(source, line=lineno, dataset=dataset))
    except (OSError, EOFError, zlib.error) as err:
        raise IngestError(f"{source}: unreadable after line {lineno}: {err}") from err


def _read_json_tasks(path: Path, layout: str, dataset: str) -> Iterator[Task]:
    """Prodigy tasks in a JSON array (or a file holding one task): one Task
    per element, located by the line where it starts."""
    from ._bridge import iter_records

    source = str(path)
    for index, line, value, _ in iter_records(path, layout):
        origin = Origin(source, line=line, dataset=dataset)
        if not isinstance(value, dict):
            yield Task(
                None,
                origin,
                reason="malformed_task",
                error=f"record {index} of the array: malformed task: a JSON {type(value).__name__}, not an object",
            )
            continue
        yield Task(value, origin)


def _is_jsonl(source: str) -> bool:
    """Prodigy JSON lines, told from the content (a file that cannot be
    decoded as UTF-8 JSON falls back to its name, so the reader can say why)."""
    if _is_url(source):
        return False
    seen = peek(source)
    if seen is None or seen.layout in ("binary", "text"):
        return source.endswith(JSONL_SUFFIXES) and not _is_sqlite_file(source)
    # a JSON array or object, however many lines it spans, is never read line by line;
    # Prodigy tasks saved as a JSON array are read element by element
    return seen.layout in ("jsonl", "array", "object") and record_kind(seen.first) == "prodigy"


@register_reader("jsonl", detect=_is_jsonl, priority=-10)
def read_jsonl(source: str, datasets: Optional[Sequence[str]], options: ReadOptions) -> Iterator[Task]:
    """A `prodigy db-out` file (JSONL, gzip too). It holds one dataset, so
    `datasets` is ignored: a file named on the command line is always read."""
    yield from read_jsonl_file(Path(source))


def _dir_files(source: str) -> List[Path]:
    return sorted(p for p in Path(source).rglob("*") if p.is_file() and p.name.endswith(JSONL_SUFFIXES))


def _list_dir_datasets(source: str, options: ReadOptions) -> List[DatasetInfo]:
    files = _dir_files(source)
    if not files:
        raise IngestError(f"{source}: no .jsonl or .jsonl.gz files in this directory")
    return [DatasetInfo(_dataset_name(p)) for p in files]


@register_reader(
    "jsonl_dir",
    detect=lambda source: not _is_url(source) and Path(source).is_dir(),
    list_datasets=_list_dir_datasets,
)
def read_jsonl_dir(source: str, datasets: Optional[Sequence[str]], options: ReadOptions) -> Iterator[Task]:
    """A folder of `db-out` files (searched recursively); each file's name
    (without `.jsonl`/`.jsonl.gz`) is its dataset name."""
    files = _dir_files(source)
    if not files:
        raise IngestError(f"{source}: no .jsonl or .jsonl.gz files in this directory")
    wanted = None if datasets is None else set(datasets)
    for path in files:
        if wanted is None or _dataset_name(path) in wanted:
            yield from read_jsonl_file(path)


# --- Prodigy databases ----------------------------------------------------------

PRODIGY_TABLES = {"dataset", "example", "link"}


def _is_sqlite_file(source: str) -> bool:
    path = Path(source)
    if not path.is_file():
        return False
    with path.open("rb") as f:
        return f.read(16) == b"SQLite format 3\x00"


def _is_sqlite(source: str) -> bool:
    if _is_url(source):
        return source.startswith("sqlite://")
    return source.endswith((".db", ".sqlite", ".sqlite3")) or _is_sqlite_file(source)


def _sqlite_path(source: str) -> Path:
    return Path(source[len("sqlite:///") :] if source.startswith("sqlite:///") else source)


def _sqlite_connect(source: str, options: ReadOptions) -> sqlite3.Connection:
    path = _sqlite_path(source)
    if not path.exists():
        raise IngestError(f"{source}: database not found")
    try:
        # read-only: never create an empty database by mistake, never write
        con = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=options.db_timeout)
        tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error as err:
        raise IngestError(f"{source}: {_sqlite_reason(err)}") from err
    missing = PRODIGY_TABLES - tables
    if missing:
        con.close()
        raise IngestError(f"{source}: not a Prodigy database (missing tables: {', '.join(sorted(missing))})")
    return con


def _sqlite_reason(err: Exception) -> str:
    text = str(err)
    if "locked" in text or "busy" in text:
        return f"database is locked ({text}): another process (Prodigy?) is writing to it; retry when it is done"
    if "not a database" in text:
        return f"not an SQLite database ({text})"
    return f"cannot read the database ({text})"


def _list_sqlite_datasets(source: str, options: ReadOptions) -> List[DatasetInfo]:
    con = _sqlite_connect(source, options)
    try:
        rows = con.execute("SELECT name, session FROM dataset ORDER BY id").fetchall()
    except sqlite3.Error as err:
        raise IngestError(f"{source}: {_sqlite_reason(err)}") from err
    finally:
        con.close()
    return [DatasetInfo(name, bool(session)) for name, session in rows]


_EXAMPLES_SQL = (
    "SELECT example.id, example.content FROM example "
    "JOIN link ON link.example_id = example.id "
    "JOIN dataset ON dataset.id = link.dataset_id "
    "WHERE dataset.name = {ph} ORDER BY link.id"
)


def _content_bytes(content) -> bytes:
    if isinstance(content, str):
        return content.encode("utf8")
    return bytes(content)


@register_reader("sqlite", detect=_is_sqlite, list_datasets=_list_sqlite_datasets, priority=10)
def read_sqlite(source: str, datasets: Optional[Sequence[str]], options: ReadOptions) -> Iterator[Task]:
    """Prodigy's SQLite database (`prodigy.db`), read-only: the examples
    linked to each dataset in link order; origin = dataset + `example.id`."""
    names = datasets if datasets is not None else [d.name for d in _list_sqlite_datasets(source, options)]
    con = _sqlite_connect(source, options)
    try:
        for name in names:
            cursor = con.execute(_EXAMPLES_SQL.format(ph="?"), (name,))
            while True:
                rows = cursor.fetchmany(options.batch_size)
                if not rows:
                    break
                for row_id, content in rows:
                    yield parse_line(_content_bytes(content), Origin(source, dataset=name, row=row_id))
    except sqlite3.Error as err:
        raise IngestError(f"{source}: {_sqlite_reason(err)}") from err
    finally:
        con.close()


def _pg_connect(source: str, options: ReadOptions):
    try:
        import psycopg
    except ImportError as err:  # pragma: no cover - psycopg is in requirements.txt
        raise IngestError("reading PostgreSQL needs psycopg: pip install 'psycopg[binary]>=3.1'") from err
    try:
        con = psycopg.connect(resolve_dsn(source), connect_timeout=max(1, int(options.db_timeout)))
    except IngestError:
        raise
    except Exception as err:  # psycopg.Error, or a malformed URL (ProgrammingError)
        raise IngestError(f"{redact_url(source)}: cannot connect: {_scrub(str(err).strip(), source)}") from None
    try:
        with con.cursor() as cur:
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
            tables = {row[0] for row in cur.fetchall()}
    except Exception as err:
        con.close()
        raise IngestError(f"{redact_url(source)}: {_scrub(str(err).strip(), source)}") from None
    missing = PRODIGY_TABLES - tables
    if missing:
        con.close()
        raise IngestError(
            f"{redact_url(source)}: not a Prodigy database (missing tables: {', '.join(sorted(missing))})"
        )
    return con


def _list_pg_datasets(source: str, options: ReadOptions) -> List[DatasetInfo]:
    con = _pg_connect(source, options)
    try:
        with con.cursor() as cur:
            cur.execute("SELECT name, session FROM dataset ORDER BY id")
            return [DatasetInfo(name, bool(session)) for name, session in cur.fetchall()]
    except Exception as err:
        raise IngestError(f"{redact_url(source)}: {_scrub(str(err).strip(), source)}") from None
    finally:
        con.close()


@register_reader(
    "postgresql",
    detect=is_postgres_source,  # a URL, or env:NAME (see pgsource.py)
    list_datasets=_list_pg_datasets,
    priority=10,
)
def read_postgresql(source: str, datasets: Optional[Sequence[str]], options: ReadOptions) -> Iterator[Task]:
    """Prodigy's PostgreSQL database by URL (or `env:NAME`, a variable holding
    it), streamed through a server-side cursor; origin = dataset +
    `example.id`, with the password redacted."""
    shown = redact_url(source)
    names = datasets if datasets is not None else [d.name for d in _list_pg_datasets(source, options)]
    con = _pg_connect(source, options)
    try:
        for name in names:
            # a named (server-side) cursor streams rows instead of loading them all
            with con.cursor(name="biomed_ingest") as cur:
                cur.itersize = options.batch_size
                cur.execute(_EXAMPLES_SQL.format(ph="%s"), (name,))
                for row_id, content in cur:
                    yield parse_line(_content_bytes(content), Origin(shown, dataset=name, row=row_id))
    except IngestError:
        raise
    except Exception as err:
        raise IngestError(f"{shown}: {_scrub(str(err).strip(), source)}") from None
    finally:
        con.close()


def iter_sources(
    sources: Iterable[Tuple[str, Optional[Sequence[str]], str]],
    options: ReadOptions,
    fmt: Optional[str] = None,
) -> Iterator[Task]:
    """Chain several sources into one stream, each task tagged with its role.

    sources (Iterable[Tuple[str, Optional[Sequence[str]], str]]): (source,
        datasets or None, role) triples.
    options (ReadOptions): Reader options.
    fmt (Optional[str]): A format to force for every source.
    YIELDS (Task): The tasks, role set.
    """
    for source, datasets, role in sources:
        reader = get_reader(source, fmt)
        for task in reader.read(source, datasets, options):
            task.role = role
            yield task
