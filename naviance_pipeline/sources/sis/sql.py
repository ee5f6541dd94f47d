"""SQL source: run one query per SIS table and store the result sets as a snapshot folder.

``snapshot_queries`` connects with SQLAlchemy Core (SQLite is the embedded default; PostgreSQL
through psycopg 3, the ``postgres`` extra, is tested; any synchronous SQLAlchemy dialect with its
driver installed works),
runs every query inside ONE read-only transaction (REPEATABLE READ on PostgreSQL, a single
read transaction on SQLite) so the tables are a consistent snapshot of the same moment, and
writes ``<table>.csv`` per query plus ``queries.json`` (per table: query text, result columns,
row count, sha256 of the CSV bytes, file name). Everything after this reads the CSV files,
so a date can be re-run without the SIS.

Safety and failure rules:

* Secrets: the password never sits in the URL (``database_url`` refuses it), it comes from an
  environment variable; messages show the URL with the password hidden and scrub the
  password from driver messages.
* Read-only intent: SQLite is opened with ``mode=ro`` (a missing file is an error, not a new
  empty database); PostgreSQL runs a READ ONLY transaction; nothing is ever committed. Other
  dialects rely on the account's grants.
* Result columns are checked against what the mapping reads before any row is written, and
  missing / case-only mismatches / duplicates are reported by name.
* Memory: rows are fetched ``FETCH_ROWS`` at a time from a server-side cursor
  (``stream_results``) and written straight to disk.
* All-or-nothing: the files are written into a temporary sibling folder (0700, files 0600:
  student PII) that replaces ``dest`` only once every query succeeded.
* Errors: cannot connect / authenticate / connection lost -> :class:`SourceUnreachable`
  (``transient``: retryable, unless the login was refused); the database rejects a query, or
  its columns or values do not fit -> :class:`QueryFailed`. Neither message holds a row value
  or the password.

Values are written as text: NULL -> blank, date -> ``YYYY-MM-DD``, datetime/time -> ISO 8601,
Decimal and float -> plain digits (no exponent), bool -> ``true``/``false``, str unchanged
(newlines kept: later stages report them); binary and structured (array/JSON) values are
refused, they are not roster data.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import math
import os
import re
import secrets
import shutil
import sqlite3
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from datetime import time as clock_time
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)

PASSWORD_ENV = "NAVIANCE_SOURCE_PASSWORD"
QUERIES_FILE = "queries.json"
# The result sets are always written in this encoding, whatever the mapping says of the export
# files (``tables.<name>.encoding`` is the export file's): convert() reads them with it.
RESULT_ENCODING = "utf-8"
FETCH_ROWS = 10_000  # rows per fetchmany: a few MB of Python objects at most
PROGRESS_EVERY = 100_000
_FILE_MODE = 0o600  # student PII: owner-only
_TABLE_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")  # becomes a file name
# The connect-timeout keyword of each DBAPI driver (seconds); drivers not listed get none.
_TIMEOUT_ARGS = {
    "psycopg2": "connect_timeout",
    "psycopg": "connect_timeout",
    "pymysql": "connect_timeout",
    "mysqldb": "connect_timeout",
    "pyodbc": "timeout",
}
# TCP keepalives make a dropped network fail the run within about a minute instead of hanging.
_LIBPQ_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10}
# PostgreSQL SQLSTATEs (class or full code) that mean "the server, not the query": retryable.
_PG_RETRYABLE = ("08", "53", "57P01", "57P02", "57P03", "40001")
# libpq's and the server's words for a refused login (28P01, 28000, 3D000, 42501 on connect).
_PG_LOGIN_REFUSED = (
    "authentication failed",  # password, scram, md5, ident, peer
    "no password supplied",
    "no pg_hba.conf entry",
    "does not exist",  # role or database
    "permission denied for database",
)
# SQLite primary result codes that mean the file cannot be read: busy, locked, I/O error,
# corrupt, cannot open, not a database.
_SQLITE_UNREADABLE = {5, 6, 10, 11, 14, 26}
# URL parameter names that carry secrets.
_SECRET_WORDS = ("pass", "pwd", "secret", "token")
# PostgreSQL classes whose messages may quote a row value (data exception, integrity).
_PG_VALUE_CLASSES = ("22", "23")
_SQLITE_STEPS = 10_000  # SQLite virtual-machine steps between two looks at the deadline


@dataclass(frozen=True)
class QuerySpec:
    """One SIS table to snapshot: its key (file ``<table>.csv``), the SQL text, and the
    result columns the mapping reads from it."""

    table: str
    query: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class QueryRecord:
    """What was stored for one query (also written to ``queries.json``)."""

    table: str
    query: str
    columns: list[str]
    rows: int
    sha256: str
    file: str


class SourceUnreachable(Exception):
    """The database cannot be reached, authenticated to or read, or the connection dropped.
    ``transient``: worth retrying (False when the server or libpq refused the login: a wrong
    password, user or database name). Names the URL with the password hidden; never the
    password."""

    def __init__(self, url: str, reason: str, *, transient: bool = True):
        self.url = url
        self.reason = reason
        self.transient = transient
        then = (
            "the run can be retried"
            if transient
            else f"check the user and database in the URL and {PASSWORD_ENV}"
        )
        super().__init__(
            f"cannot read the SIS database {url}: {reason}. Nothing was stored; {then}."
        )


class QueryFailed(Exception):
    """A query was rejected by the database, or returned columns or values the snapshot
    cannot take. Names the table key and the columns; never a row value."""

    def __init__(self, table: str, message: str, problems: Sequence[str] = ()):
        self.table = table
        self.problems = list(problems)
        lines = [f"SIS query '{table}' {message}; nothing was stored"]
        lines += [f"  - {problem}" for problem in self.problems]
        super().__init__("\n".join(lines))


class _Unwritable(TypeError):
    """A value of a type the snapshot refuses (raised per value, located per column later)."""


def database_url(url: str, password: str | None, *, password_env: str = PASSWORD_ENV) -> URL:
    """Parse and check a SQLAlchemy URL; set `password` (from the environment) when given.

    Raises ValueError, never quoting the password: the URL carries a password inline
    (secrets come only from `password_env`), cannot be parsed, names an unknown or asyncio
    dialect, its driver is not installed, or a SQLite URL names no database file.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # The text may hold a password in a place the parser did not recognise: not echoed.
        raise ValueError(
            "the SIS database URL cannot be parsed: write it as "
            "dialect+driver://user@host:port/database (no password in it)"
        ) from None
    # The query string is left out of the message: a password there would show in clear.
    shown = parsed.set(query={}).render_as_string(hide_password=True)
    if parsed.password is not None or _secret_in_query(parsed):
        raise ValueError(
            f"the SIS database URL {shown} carries a password: remove it from the URL and set "
            f"the environment variable {password_env} instead"
        )
    shown = parsed.render_as_string(hide_password=True)
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        raise ValueError(
            f"the SIS database URL {shown} names an unknown dialect '{parsed.drivername}' "
            "(for example sqlite:///path/sis.db or postgresql://user@host/db)"
        ) from None
    if getattr(dialect, "is_async", False):
        raise ValueError(
            f"the SIS database URL {shown} names the asyncio driver '{parsed.drivername}': "
            "use a synchronous one such as postgresql (psycopg)"
        )
    try:
        dialect.import_dbapi()
    except ImportError as err:
        raise ValueError(
            f"the SIS database dialect '{parsed.get_backend_name()}' needs the Python driver "
            f"'{dialect.driver}', which is not installed here ({err})"
        ) from None
    if parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ValueError(
            f"the SIS database URL {shown} names no database file: "
            "write sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    return parsed.set(password=password) if password else parsed


def _secret_in_query(url: URL) -> bool:
    """A password passed as a URL parameter (``?password=``, an ODBC ``PWD=`` string...)."""
    for key, values in url.query.items():
        texts = [values] if isinstance(values, str) else list(values)
        if any(word in key.lower() for word in _SECRET_WORDS) or any(
            re.search(r"(?i)\b(pwd|password)\s*=", text) for text in texts
        ):
            return True
    return False


def snapshot_queries(
    url: str,
    queries: Sequence[QuerySpec],
    dest: str | Path,
    *,
    password: str | None = None,
    connect_timeout: float = 10,
    query_timeout: float | None = None,
    progress: Callable[[str, int], None] | None = None,
    password_env: str = PASSWORD_ENV,
) -> list[QueryRecord]:
    """Run `queries` in one read-only transaction and store the snapshot folder `dest`
    (``<table>.csv`` each, ``queries.json``), replacing a previous `dest` only on success.

    `progress(table, rows_so_far)` is called every ``PROGRESS_EVERY`` rows and when a table
    is done. `query_timeout` (seconds, None: no limit) bounds each query, rows read included:
    PostgreSQL's statement_timeout, or SQLite's progress handler; a query past it is
    QueryFailed. Raises SourceUnreachable (retryable), QueryFailed, or ValueError (bad URL or
    queries); after any failure `dest` is as it was.
    """
    _check_queries(queries)
    target = database_url(url, password, password_env=password_env)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # mkdtemp makes it 0700; a sibling of dest so the final rename stays on one file system.
    folder = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        records = _run(target, password, queries, folder, connect_timeout, query_timeout, progress)
        _write_owner_only(
            folder / QUERIES_FILE,
            (json.dumps(_queries_json(records), indent=2, ensure_ascii=False) + "\n").encode(),
        )
        _swap_in(folder, dest)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return records


def _check_queries(queries: Sequence[QuerySpec]) -> None:
    if not queries:
        raise ValueError("no SIS queries to run")
    seen: set[str] = set()
    for spec in queries:
        if not _TABLE_KEY.match(spec.table) or spec.table.casefold() in seen:
            raise ValueError(
                f"SIS query table key '{spec.table}' must be unique (ignoring case) and use "
                "only letters, digits, '_', '.' and '-': it names the snapshot file"
            )
        if not spec.query.strip():
            raise ValueError(f"SIS query '{spec.table}' is empty")
        seen.add(spec.table.casefold())


def _run(
    target: URL,
    password: str | None,
    queries: Sequence[QuerySpec],
    folder: Path,
    connect_timeout: float,
    query_timeout: float | None,
    progress: Callable[[str, int], None] | None,
) -> list[QueryRecord]:
    shown = target.render_as_string(hide_password=True)
    engine = _engine(target, shown, connect_timeout)
    try:
        with _database_errors(shown, password, None):
            conn = engine.connect()
        try:
            with _database_errors(shown, password, None):
                _begin_snapshot(conn, query_timeout)
            return [
                _snapshot_one(conn, spec, folder, progress, shown, password, query_timeout)
                for spec in queries
            ]
        finally:
            # Read-only: nothing to commit. A dropped connection may refuse even this.
            with contextlib.suppress(SQLAlchemyError):
                conn.rollback()
            with contextlib.suppress(SQLAlchemyError):
                conn.close()
    finally:
        engine.dispose()


def _engine(target: URL, shown: str, connect_timeout: float) -> Engine:
    # NullPool: one connection for one snapshot, closed at the end, nothing left lingering.
    if target.get_backend_name() == "sqlite":
        return _sqlite_engine(target, shown, connect_timeout)
    connect_args: dict[str, Any] = {}
    driver = target.get_driver_name()
    if driver in _TIMEOUT_ARGS:
        connect_args[_TIMEOUT_ARGS[driver]] = max(1, math.ceil(connect_timeout))
    if driver in ("psycopg2", "psycopg"):
        connect_args.update(_LIBPQ_KEEPALIVES)
    try:
        return sa.create_engine(target, poolclass=NullPool, connect_args=connect_args)
    except ModuleNotFoundError as exc:
        # The driver is an extra (pyproject.toml): name it, not a traceback.
        raise ValueError(
            f"{shown}: its database driver ({exc.name}) is not installed; for PostgreSQL install "
            "the postgres extra: pip install 'naviance_pipeline[postgres]' "
            "(uv sync --extra postgres)"
        ) from None


def _sqlite_engine(target: URL, shown: str, connect_timeout: float) -> Engine:
    path = Path(str(target.database)).expanduser()
    if not path.is_file():
        raise SourceUnreachable(shown, f"there is no SQLite database file at {path}")
    # mode=ro: never create, never write. isolation_level=None leaves transactions to the
    # explicit BEGIN of _begin_snapshot (sqlite3's implicit ones start only before writes).
    uri = path.resolve().as_uri() + "?mode=ro"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(
            uri, uri=True, timeout=connect_timeout, isolation_level=None, check_same_thread=False
        )

    return sa.create_engine("sqlite://", creator=connect, poolclass=NullPool)


def _begin_snapshot(conn: Connection, query_timeout: float | None) -> None:
    """Start the one transaction every query runs in, so the tables agree with each other."""
    if conn.dialect.name == "postgresql":
        conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        conn.begin()
        if query_timeout is not None:
            # SET LOCAL: for this transaction only; milliseconds, at least 1.
            conn.exec_driver_sql(
                f"SET LOCAL statement_timeout = {max(1, round(query_timeout * 1000))}"
            )
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN")  # held until the rollback: one read snapshot
    else:
        conn.begin()


@contextlib.contextmanager
def _database_errors(shown: str, password: str | None, table: str | None) -> Iterator[None]:
    """Translate driver errors; `table` None = connecting (every failure is unreachable)."""
    try:
        yield
    except DBAPIError as err:
        reason = _scrub(_first_line(err.orig), password)
        if table is None and _login_refused(reason):
            raise SourceUnreachable(shown, reason, transient=False) from None
        if table is None or err.connection_invalidated or _retryable(err.orig):
            raise SourceUnreachable(shown, reason) from None
        # `from None`: the driver's full text may quote a row value (DETAIL lines).
        raise QueryFailed(table, f"was rejected by the database: {reason}") from None


def _sqlstate(orig: BaseException) -> str:
    """PostgreSQL's SQLSTATE: ``sqlstate`` on psycopg 3, ``pgcode`` on psycopg2."""
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or ""


def _retryable(orig: BaseException) -> bool:
    code = _sqlstate(orig)
    if code:
        return code.startswith(_PG_RETRYABLE)
    sqlite_code = getattr(orig, "sqlite_errorcode", None)
    return sqlite_code is not None and sqlite_code & 0xFF in _SQLITE_UNREADABLE


def _login_refused(reason: str) -> bool:
    """A login refused by the server or libpq, which no retry will change. psycopg2 and
    psycopg give a failed connect no SQLSTATE, so libpq's (English) words are all there is; a
    refusal in other words (a server with other lc_messages) is retried like any failed connect."""
    return any(words in reason for words in _PG_LOGIN_REFUSED)


def _first_line(orig: BaseException) -> str:
    """The database's first message line, cut before anything that may quote a row value."""
    diag = getattr(orig, "diag", None)
    text = (getattr(diag, "message_primary", None) or str(orig)).strip()
    line = text.splitlines()[0].strip() if text else type(orig).__name__
    code = _sqlstate(orig)
    if code.startswith(_PG_VALUE_CLASSES):
        line = line.split(": ", 1)[0] + " (the value is not shown)"
    if line.startswith("Could not decode to UTF-8 column"):  # sqlite3 appends the raw text
        line = line.split(" with text ", 1)[0]
    return f"{line} (SQLSTATE {code})" if code else line


def _scrub(text: str, password: str | None) -> str:
    """Drivers do not echo passwords; this is a second guard. A password too short to be a
    secret worth the name is left alone rather than blanking letters out of every word."""
    return text.replace(password, "***") if password and len(password) >= 4 else text


def _snapshot_one(
    conn: Connection,
    spec: QuerySpec,
    folder: Path,
    progress: Callable[[str, int], None] | None,
    shown: str,
    password: str | None,
    query_timeout: float | None = None,
) -> QueryRecord:
    started = time.monotonic()
    file = f"{spec.table}.csv"
    with _timed(conn, spec.table, query_timeout), _database_errors(shown, password, spec.table):
        result = conn.exec_driver_sql(
            spec.query,
            # no_parameters: a literal '%' or ':x' in the SQL is not a placeholder.
            execution_options={"stream_results": True, "no_parameters": True},
        )
        columns = list(result.keys()) if result.returns_rows else []
        if not columns:
            raise QueryFailed(spec.table, "returns no result columns (it must be a SELECT)")
        problems = column_problems(spec.columns, columns)
        if problems:
            result.close()
            raise QueryFailed(
                spec.table,
                "does not return the columns the mapping reads "
                f"(it returns: {', '.join(columns) or 'nothing'})",
                problems,
            )
        rows, digest = _write_csv(result, spec.table, columns, folder / file, progress)
    log.info("SIS query %s: %d rows in %.1f s", spec.table, rows, time.monotonic() - started)
    return QueryRecord(spec.table, spec.query, columns, rows, digest, file)


@contextlib.contextmanager
def _timed(conn: Connection, table: str, query_timeout: float | None) -> Iterator[None]:
    """Bound one query (rows read included) by `query_timeout`: PostgreSQL's statement_timeout
    is set for the transaction; SQLite has none, so its progress handler interrupts the query
    once the deadline passes. Either way the query is QueryFailed naming the limit."""
    sqlite = conn.dialect.name == "sqlite" and query_timeout is not None
    if sqlite:
        deadline = time.monotonic() + query_timeout
        raw = conn.connection.driver_connection
        raw.set_progress_handler(lambda: int(time.monotonic() > deadline), _SQLITE_STEPS)
    try:
        yield
    except QueryFailed as failed:
        if query_timeout is not None and _timed_out(failed):
            raise QueryFailed(
                table, f"took longer than the query timeout of {query_timeout:g} s"
            ) from None
        raise
    finally:
        if sqlite:
            raw.set_progress_handler(None, _SQLITE_STEPS)


def _timed_out(failed: QueryFailed) -> bool:
    return any(mark in str(failed) for mark in ("SQLSTATE 57014", "interrupted"))


def column_problems(wanted: Sequence[str], returned: Sequence[str]) -> list[str]:
    """Each wanted column the result lacks (with a quoted-alias hint when only the case
    differs) and each result column name returned more than once."""
    problems = [
        f"result column '{name}' is returned {count} times: give each column its own alias"
        for name, count in Counter(returned).items()
        if count > 1
    ]
    present = set(returned)
    by_fold: dict[str, list[str]] = {}
    for name in returned:
        by_fold.setdefault(name.casefold(), []).append(name)
    for column in dict.fromkeys(wanted):
        if column in present:
            continue
        near = dict.fromkeys(by_fold.get(column.casefold(), ()))
        if near:
            problems.append(
                f"column '{column}' is missing; the query returns "
                f"{' and '.join(repr(n) for n in near)} (the same name in another case: "
                "PostgreSQL folds unquoted names to lower case): quote the alias, "
                f'AS "{column}"'
            )
        else:
            problems.append(f"column '{column}' is missing")
    return problems


def _write_csv(
    result: sa.CursorResult,
    table: str,
    columns: list[str],
    path: Path,
    progress: Callable[[str, int], None] | None,
) -> tuple[int, str]:
    """Stream `result` to `path` as CSV (UTF-8, CRLF, minimal quoting); rows and sha256."""
    digest = hashlib.sha256()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")  # QUOTE_MINIMAL
    writer.writerow(columns)
    rows = 0
    reported = -1  # an empty table is reported too
    next_report = PROGRESS_EVERY
    with _open_owner_only(path) as out:
        while True:
            batch = result.fetchmany(FETCH_ROWS)
            if not batch:
                break
            writer.writerows(_text_rows(table, columns, batch))
            rows += len(batch)
            _flush(buffer, out, digest, table)
            if progress and rows >= next_report:
                progress(table, rows)
                reported, next_report = rows, rows + PROGRESS_EVERY
        _flush(buffer, out, digest, table)
        out.flush()
        os.fsync(out.fileno())
    if progress and rows != reported:
        progress(table, rows)
    return rows, digest.hexdigest()


def _flush(buffer: io.StringIO, out: io.BufferedWriter, digest: Any, table: str) -> None:
    try:
        data = buffer.getvalue().encode(RESULT_ENCODING)
    except UnicodeEncodeError:
        raise QueryFailed(table, "returned text that is not valid Unicode") from None
    buffer.seek(0)
    buffer.truncate()
    digest.update(data)
    out.write(data)


def _text_rows(table: str, names: list[str], batch: Sequence[Sequence[Any]]) -> Iterable[tuple]:
    """`batch` with every value as snapshot text, converted a column at a time: a column of
    str, int and NULL only (most of a roster) passes untouched, as the csv writer already
    writes those as wanted (None blank), so the common case costs no Python call per value."""
    columns: list[Sequence[Any]] = list(zip(*batch, strict=True))
    for index, column in enumerate(columns):
        kinds = set(map(type, column))
        if kinds <= _AS_IS:
            continue
        nulls = _NULL in kinds
        kinds.discard(_NULL)
        # One type (the usual case for a typed database): its converter, no dispatch per value.
        convert = _CONVERTERS.get(kinds.pop()) if len(kinds) == 1 else None
        try:
            if convert is None:
                columns[index] = list(map(value_text, column))
            elif nulls:  # None stays None: the csv writer writes it blank
                columns[index] = [None if v is None else convert(v) for v in column]
            else:
                columns[index] = list(map(convert, column))
        except _Unwritable as err:
            raise QueryFailed(
                table,
                f"returns {err} in column '{names[index]}', which is not roster data: leave "
                "the column out of the query or CAST it to text",
            ) from None
    return zip(*columns, strict=True)


def _plain_decimal(value: Decimal) -> str:
    return format(value, "f")  # '1E-7' -> '0.0000001'


def _plain_float(value: float) -> str:
    text = repr(value)
    return _plain_decimal(Decimal(text)) if "e" in text else text


def _refuse(kind: str) -> Callable[[Any], str]:
    def refuse(value: Any) -> str:
        raise _Unwritable(kind)

    return refuse


_NULL = type(None)
_AS_IS = frozenset({str, int, _NULL})
_BINARY = _refuse("binary data")
_STRUCTURED = _refuse("a structured (array or JSON) value")
# Exact types first (the common path); datetime before date: it is a subclass.
_CONVERTERS: dict[type, Callable[[Any], str]] = {
    _NULL: lambda value: "",
    int: str,
    bool: lambda value: "true" if value else "false",
    Decimal: _plain_decimal,
    float: _plain_float,
    datetime: datetime.isoformat,
    date: date.isoformat,
    clock_time: clock_time.isoformat,
    bytes: _BINARY,
    bytearray: _BINARY,
    memoryview: _BINARY,
    list: _STRUCTURED,
    tuple: _STRUCTURED,
    dict: _STRUCTURED,
}


def value_text(value: Any) -> str:
    """One database value as snapshot text (see the module docstring); raises TypeError
    for binary and structured values."""
    convert = _CONVERTERS.get(type(value))
    if convert is None:  # a subclass (an IntEnum...), else anything else (UUID...) as str()
        kind = next((t for t in _CONVERTERS if isinstance(value, t)), None)
        convert = _CONVERTERS[kind] if kind is not None else str
    return convert(value)


def _queries_json(records: Sequence[QueryRecord]) -> dict[str, dict[str, Any]]:
    return {
        record.table: {k: v for k, v in asdict(record).items() if k != "table"}
        for record in records
    }


@contextlib.contextmanager
def _open_owner_only(path: Path) -> Iterator[io.BufferedWriter]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, _FILE_MODE)
    os.fchmod(fd, _FILE_MODE)  # O_CREAT's mode is masked by the umask
    with open(fd, "wb") as out:
        yield out


def _write_owner_only(path: Path, data: bytes) -> None:
    with _open_owner_only(path) as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _swap_in(folder: Path, dest: Path) -> None:
    """Rename the finished `folder` to `dest`; a previous `dest` is removed only afterwards
    (and put back if the rename fails)."""
    if not (dest.exists() or dest.is_symlink()):
        os.rename(folder, dest)
        return
    old = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.old")
    os.rename(dest, old)
    try:
        os.rename(folder, dest)
    except BaseException:
        os.rename(old, dest)
        raise
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink()
