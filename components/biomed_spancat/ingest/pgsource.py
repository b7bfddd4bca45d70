"""PostgreSQL sources without a password on the command line.

A PostgreSQL source is either a `postgresql://` URL or `env:NAME`, the name of
an environment variable holding the connection string (a URL or libpq's
`key=value` form). The password should come from where libpq looks for it:
`PGPASSWORD`, `~/.pgpass` (or `PGPASSFILE`), a service file
(`postgresql:///?service=NAME`, `PGSERVICEFILE`), or the variable named by
`env:`. Then nothing secret is on a command line (which other users can read
in /proc) or in what weasel prints; and any password that still reaches a
message is replaced by `***`.
"""

import os
from typing import List
from urllib.parse import unquote, urlsplit

from .tasks import IngestError

__all__ = ["ENV_PREFIX", "is_postgres_source", "resolve_dsn", "dsn_secrets", "has_password", "scrub_dsn"]

ENV_PREFIX = "env:"
URL_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_source(source: str) -> bool:
    """Whether a source string names a PostgreSQL database (a URL or `env:NAME`).

    source (str): A source as given on the command line.
    RETURNS (bool): True for postgresql:// or postgres:// URLs and `env:` sources.
    """
    return source.startswith(URL_SCHEMES) or source.startswith(ENV_PREFIX)


def resolve_dsn(source: str) -> str:
    """The connection string of a PostgreSQL source.

    source (str): A postgresql:// URL, or `env:NAME`.
    RETURNS (str): The URL, or the value of the environment variable NAME.
    RAISES (IngestError): NAME is empty or not set.
    """
    if not source.startswith(ENV_PREFIX):
        return source
    name = source[len(ENV_PREFIX):]
    if not name:
        raise IngestError(f"{source}: name the environment variable that holds the connection string (env:NAME)")
    value = os.environ.get(name, "").strip()
    if not value:
        raise IngestError(
            f"{source}: the environment variable {name} is not set; set it to a postgresql:// URL "
            "or a libpq connection string (e.g. export PRODIGY_DSN='postgresql://user@host:5432/prodigy', "
            "with the password in PGPASSWORD or ~/.pgpass)"
        )
    return value


def dsn_secrets(dsn: str) -> List[str]:
    """The password in a connection string, as written and percent-decoded.

    dsn (str): A URL or a `key=value` connection string.
    RETURNS (List[str]): The forms of the password to hide (empty when none).
    """
    found: List[str] = []
    if dsn.startswith(URL_SCHEMES):
        try:
            password = urlsplit(dsn).password
        except ValueError:
            password = None
        if password:
            found += [password, unquote(password)]
        query = urlsplit(dsn).query
        for part in query.split("&"):
            key, _, value = part.partition("=")
            if key == "password" and value:
                found += [value, unquote(value)]
    else:
        try:
            from psycopg.conninfo import conninfo_to_dict

            password = conninfo_to_dict(dsn).get("password")
        except Exception:  # not parseable: hide every value after password=
            password = dsn.split("password=", 1)[1].split()[0] if "password=" in dsn else None
        if password:
            found.append(str(password))
    return sorted({s for s in found if s}, key=len, reverse=True)


def has_password(source: str) -> bool:
    """Whether a source string itself (not the variable it names) holds a password.

    source (str): A source as given on the command line.
    RETURNS (bool): True for a URL with a password in it.
    """
    return source.startswith(URL_SCHEMES) and bool(dsn_secrets(source))


def scrub_dsn(message: str, source: str) -> str:
    """Replace every form of the source's password in a message with `***`.

    message (str): Text that may quote the connection string.
    source (str): The PostgreSQL source (a URL or `env:NAME`).
    RETURNS (str): The message without the password.
    """
    try:
        dsn = resolve_dsn(source)
    except IngestError:
        return message
    for secret in dsn_secrets(dsn):
        message = message.replace(secret, "***")
    return message
