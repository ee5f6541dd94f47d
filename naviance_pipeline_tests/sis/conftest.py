"""SIS database fixtures: the same small SIS tables in a SQLite file and in a real PostgreSQL.

PostgreSQL is one server per test session (``integration/services.PostgresServer``: initdb and
start as the ``postgres`` user on loopback, scram-sha-256 for every TCP login). Its database
``sis`` is owned by the superuser; the pipeline connects as ``sis_reader``, a role with its own
password (so password authentication is really exercised), SELECT on the SIS tables, and
write grants on ``scratch`` and its sequence so a refused write proves the read-only
transaction rather than missing privileges.

The tables hold what a SIS really returns: INTEGER grades (0 and -1 for K and PK), DATE birth
dates, NUMERIC, BOOLEAN, TIMESTAMP, NULLs, accented names, a name with a comma and a double
quote, a value with a newline, and a binary photo.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from naviance_pipeline_tests.integration.services import (
    PostgresServer,
    postgres_unavailable_reason,
)

READER = "sis_reader"

SCHOOL_COLUMNS = ("school_number", "name", "nces_id")
SCHOOLS = [("100", "Lincoln High", "170993000123"), ("200", "Escuela Primaria Peña", None)]

STUDENT_COLUMNS = (
    "student_number", "first_name", "last_name", "grade_level", "dob", "gpa", "enrolled",
    "updated_at", "notes", "school_id", "photo",
)  # fmt: skip
STUDENTS = [
    ("1001", "José", "Muñoz", 9, date(2010, 5, 4), Decimal("3.50"), True,
     datetime(2026, 11, 30, 8, 15), None, "100", None),
    ("1002", "Zoë", 'O\'Brien, "Jr."', 12, date(2008, 1, 31), Decimal("0.0000001"), False,
     datetime(2026, 11, 29, 23, 59, 59, 123456), "", "100", None),
    ("1003", "Nguyễn", "Đặng", 0, None, None, None, None, "line one\nline two", "200", None),
    ("1004", "Åsa", "Øster", -1, date(2021, 9, 1), Decimal("12345678901234567890.125"), True,
     None, None, "200", b"\x89PNG\r\n"),
]  # fmt: skip

_DDL = """
CREATE TABLE schools (school_number TEXT PRIMARY KEY, name TEXT NOT NULL, nces_id TEXT);
CREATE TABLE students (
    student_number TEXT PRIMARY KEY, first_name TEXT, last_name TEXT, grade_level INTEGER,
    dob DATE, gpa NUMERIC, enrolled BOOLEAN, updated_at TIMESTAMP, notes TEXT,
    school_id TEXT REFERENCES schools, photo {binary});
CREATE TABLE scratch (id {serial});
"""


@dataclass
class SisDatabase:
    """A loaded SIS database: the URL the pipeline uses (never with the password), the
    reader's password, and ``execute`` to run SQL as the owner and commit (set-up and the
    concurrent writes of the consistency tests)."""

    name: str  # "sqlite" | "postgresql"
    url: str
    password: str | None = field(repr=False)
    execute: Callable[[str], list[tuple]]
    server: PostgresServer | None = None


def _sqlite_value(value: Any) -> Any:
    """How a SQLite SIS stores these values: ISO text dates, 0/1 booleans, numeric text."""
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal):
        return str(value)
    return value


def _insert(table: str, columns: tuple[str, ...], placeholder: str) -> str:
    marks = ", ".join([placeholder] * len(columns))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"


def make_sqlite_sis(path: Path) -> SisDatabase:
    with sqlite3.connect(path) as conn:
        conn.executescript(_DDL.format(binary="BLOB", serial="INTEGER PRIMARY KEY"))
        for table, columns, rows in (
            ("schools", SCHOOL_COLUMNS, SCHOOLS),
            ("students", STUDENT_COLUMNS, STUDENTS),
        ):
            conn.executemany(
                _insert(table, columns, "?"), [tuple(map(_sqlite_value, r)) for r in rows]
            )
    conn.close()

    def execute(sql: str) -> list[tuple]:
        with sqlite3.connect(path) as owner:
            rows = owner.execute(sql).fetchall()
        owner.close()
        return rows

    return SisDatabase("sqlite", f"sqlite:///{path}", None, execute)


@pytest.fixture
def sis_sqlite(tmp_path: Path) -> SisDatabase:
    return make_sqlite_sis(tmp_path / "sis.db")


@pytest.fixture(scope="session")
def sis_postgres() -> Iterator[SisDatabase]:
    """One real PostgreSQL per session, loaded with the SIS tables, reader ``sis_reader``."""
    reason = postgres_unavailable_reason()
    if reason:
        pytest.skip(reason)
    import psycopg2

    server = PostgresServer(db_name="sis").start()
    try:
        reader_password = secrets.token_urlsafe(16)
        owner = psycopg2.connect(**server.connect_args())
        owner.autocommit = True

        def execute(sql: str) -> list[tuple]:
            with owner.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchall() if cursor.description else []

        with owner.cursor() as cursor:
            cursor.execute(_DDL.format(binary="BYTEA", serial="SERIAL"))
            for table, columns, rows in (
                ("schools", SCHOOL_COLUMNS, SCHOOLS),
                ("students", STUDENT_COLUMNS, STUDENTS),
            ):
                cursor.executemany(_insert(table, columns, "%s"), rows)
            cursor.execute(f"CREATE ROLE {READER} LOGIN PASSWORD %s", (reader_password,))
            cursor.execute(f"GRANT SELECT ON schools, students TO {READER}")
            cursor.execute(f"GRANT SELECT, INSERT ON scratch TO {READER}")
            cursor.execute(f"GRANT USAGE, SELECT, UPDATE ON scratch_id_seq TO {READER}")
        url = f"postgresql://{READER}@127.0.0.1:{server.port}/sis"
        yield SisDatabase("postgresql", url, reader_password, execute, server)
        owner.close()
    finally:
        server.stop()


@dataclass
class PowerSchoolDatabase:
    url: str  # without the password
    password: str = field(repr=False)
    students: int


POWERSCHOOL_SIZE = {"students": 300, "schools": 5, "seed": 7}


@pytest.fixture(scope="session")
def powerschool_postgres(
    sis_postgres: SisDatabase, tmp_path_factory: pytest.TempPathFactory
) -> PowerSchoolDatabase:
    """The PowerSchool-style demo tables in their own PostgreSQL database, typed as a SIS
    database types them (unquoted names, folded to lower case; birth dates as DATE), readable
    by ``sis_reader``."""
    import psycopg2

    from naviance_pipeline.sources.sis.sample_export import write_demo_database

    sis_postgres.execute("DROP DATABASE IF EXISTS powerschool_demo")
    sis_postgres.execute("CREATE DATABASE powerschool_demo")
    demo = write_demo_database(
        str(tmp_path_factory.mktemp("powerschool") / "sis.sqlite"), **POWERSCHOOL_SIZE
    )
    owner = psycopg2.connect(**sis_postgres.server.connect_args("powerschool_demo"))
    try:
        with owner, owner.cursor() as cursor, closing(sqlite3.connect(demo)) as source:
            for (table,) in source.execute("SELECT name FROM sqlite_master"):
                info = list(source.execute(f'PRAGMA table_info("{table}")'))
                columns = ", ".join(f"{c[1]} {c[2]}" for c in info)  # unquoted: folded
                cursor.execute(f"CREATE TABLE {table} ({columns})")
                rows = source.execute(f'SELECT * FROM "{table}"').fetchall()
                marks = ", ".join(["%s"] * len(info))
                cursor.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
                cursor.execute(f"GRANT SELECT ON {table} TO {READER}")
            cursor.execute(
                "ALTER TABLE students ALTER COLUMN dob TYPE date USING to_date(dob, 'MM/DD/YYYY')"
            )
    finally:
        owner.close()
    url = sis_postgres.url.rsplit("/", 1)[0] + "/powerschool_demo"
    return PowerSchoolDatabase(url, sis_postgres.password, POWERSCHOOL_SIZE["students"])
