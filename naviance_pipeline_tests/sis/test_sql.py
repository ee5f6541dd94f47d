"""The SQL source: snapshots of query results, against a SQLite file and a real PostgreSQL.

Every behaviour that both databases share runs on both (``db`` is parametrized); what only
PostgreSQL has (typed values, READ ONLY transactions, server-side cursors, password logins,
the network) runs there alone.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import re
import socket
import stat
import threading
import uuid
from datetime import UTC, date, datetime
from datetime import time as clock_time
from decimal import Decimal
from pathlib import Path

import pytest

from naviance_pipeline.sources.sis import sql
from naviance_pipeline.sources.sis.sql import (
    QueryFailed,
    QuerySpec,
    SourceUnreachable,
    database_url,
    snapshot_queries,
    value_text,
)
from naviance_pipeline_tests.integration.services import free_port
from naviance_pipeline_tests.sis.conftest import SisDatabase

STUDENTS_QUERY = """SELECT student_number AS "Student_Number", first_name AS "First_Name",
       last_name AS "Last_Name", grade_level AS "Grade_Level", dob AS "DOB", gpa AS "GPA",
       enrolled AS "Enrolled", updated_at AS "Updated_At", notes AS "Notes",
       school_id AS "SchoolID"
  FROM students  -- every student, enrolled or not
 ORDER BY student_number;"""
# '%' and ':name' are SQL text, not driver placeholders.
SCHOOLS_QUERY = """SELECT school_number AS "School_Number", name AS "Name", nces_id AS "NCES_ID"
  FROM schools WHERE name NOT LIKE '%closed%' AND name <> ':x' ORDER BY school_number"""
STUDENTS = QuerySpec("students", STUDENTS_QUERY, ("Student_Number", "First_Name", "DOB"))
SCHOOLS = QuerySpec("schools", SCHOOLS_QUERY, ("School_Number", "Name"))

STUDENTS_HEADER = [
    "Student_Number", "First_Name", "Last_Name", "Grade_Level", "DOB", "GPA", "Enrolled",
    "Updated_At", "Notes", "SchoolID",
]  # fmt: skip
# What each database hands back for conftest.STUDENTS, as snapshot text.
EXPECTED_STUDENTS = {
    # Typed: DATE, NUMERIC (scale kept, never an exponent), BOOLEAN, TIMESTAMP.
    "postgresql": [
        ["1001", "José", "Muñoz", "9", "2010-05-04", "3.50", "true", "2026-11-30T08:15:00",
         "", "100"],
        ["1002", "Zoë", 'O\'Brien, "Jr."', "12", "2008-01-31", "0.0000001", "false",
         "2026-11-29T23:59:59.123456", "", "100"],
        ["1003", "Nguyễn", "Đặng", "0", "", "", "", "", "line one\nline two", "200"],
        ["1004", "Åsa", "Øster", "-1", "2021-09-01", "12345678901234567890.125", "true", "",
         "", "200"],
    ],
    # SQLite stores dates as the text written, booleans as 0/1, NUMERIC as REAL (17 digits).
    "sqlite": [
        ["1001", "José", "Muñoz", "9", "2010-05-04", "3.5", "1", "2026-11-30 08:15:00", "",
         "100"],
        ["1002", "Zoë", 'O\'Brien, "Jr."', "12", "2008-01-31", "0.0000001", "0",
         "2026-11-29 23:59:59.123456", "", "100"],
        ["1003", "Nguyễn", "Đặng", "0", "", "", "", "", "line one\nline two", "200"],
        ["1004", "Åsa", "Øster", "-1", "2021-09-01", "12345678901234567000", "1", "", "",
         "200"],
    ],
}  # fmt: skip
EXPECTED_SCHOOLS = [
    ["School_Number", "Name", "NCES_ID"],
    ["100", "Lincoln High", "170993000123"],
    ["200", "Escuela Primaria Peña", ""],
]


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest) -> SisDatabase:
    return request.getfixturevalue(
        {"sqlite": "sis_sqlite", "postgresql": "sis_postgres"}[request.param]
    )


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "raw" / "2026-11-30" / "sql"


def snapshot(db: SisDatabase, queries: list[QuerySpec], dest: Path, **kwargs):
    return snapshot_queries(db.url, queries, dest, password=db.password, **kwargs)


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def siblings(dest: Path) -> list[str]:
    """What the snapshot's parent holds: a failed run must leave no temporary folder."""
    return sorted(p.name for p in dest.parent.iterdir()) if dest.parent.exists() else []


# --- values and files ---------------------------------------------------------------------


def test_round_trip_of_every_value_type(db: SisDatabase, dest: Path):
    snapshot(db, [STUDENTS], dest)

    assert read_csv(dest / "students.csv") == [STUDENTS_HEADER, *EXPECTED_STUDENTS[db.name]]
    data = (dest / "students.csv").read_bytes()
    assert data.startswith(b"Student_Number,First_Name,")  # UTF-8 without a BOM
    assert data.count(b"\r\n") == 5  # CRLF after every record; the newline in a value is kept
    assert b'"line one\nline two"' in data
    assert b'O\'Brien, ""Jr."""' in data  # quotes only where a value needs them


def test_queries_json_holds_rows_sha256_columns_and_the_query_verbatim(db: SisDatabase, dest: Path):
    records = snapshot(db, [SCHOOLS, STUDENTS], dest)

    stored = json.loads((dest / "queries.json").read_text("utf-8"))
    assert list(stored) == ["schools", "students"]
    for record, spec, rows in ((records[0], SCHOOLS, 2), (records[1], STUDENTS, 4)):
        entry = stored[spec.table]
        assert entry["query"] == spec.query == record.query
        assert entry["rows"] == record.rows == rows
        digest = hashlib.sha256((dest / f"{spec.table}.csv").read_bytes()).hexdigest()
        assert entry["sha256"] == record.sha256 == digest
        assert entry["file"] == record.file == f"{spec.table}.csv"
        assert entry["columns"] == record.columns
    assert stored["students"]["columns"] == STUDENTS_HEADER
    assert read_csv(dest / "schools.csv") == EXPECTED_SCHOOLS
    assert sorted(p.name for p in dest.iterdir()) == [
        "queries.json",
        "schools.csv",
        "students.csv",
    ]


def test_snapshot_is_owner_only(db: SisDatabase, dest: Path):
    snapshot(db, [STUDENTS], dest)

    assert stat.S_IMODE(dest.stat().st_mode) == 0o700
    for path in dest.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_empty_result_is_a_header_only_file(db: SisDatabase, dest: Path):
    spec = QuerySpec(
        "schools", 'SELECT school_number AS "School_Number" FROM schools WHERE 1 = 0', ()
    )

    (record,) = snapshot(db, [spec], dest)

    assert (dest / "schools.csv").read_bytes() == b"School_Number\r\n"
    assert record.rows == 0


def test_progress_is_reported_per_batch_and_per_table(db, dest, monkeypatch):
    monkeypatch.setattr(sql, "FETCH_ROWS", 2)
    monkeypatch.setattr(sql, "PROGRESS_EVERY", 2)
    calls = []

    snapshot(db, [SCHOOLS, STUDENTS], dest, progress=lambda t, n: calls.append((t, n)))

    assert calls == [("schools", 2), ("students", 2), ("students", 4)]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (7, "7"),
        (True, "true"),
        (False, "false"),
        (Decimal("3.50"), "3.50"),
        (Decimal("1E+2"), "100"),
        (Decimal("1E-7"), "0.0000001"),
        (2.5, "2.5"),
        (1e-7, "0.0000001"),
        (1e22, "10000000000000000000000"),
        (date(2010, 5, 4), "2010-05-04"),
        (datetime(2026, 11, 30, 8, 15), "2026-11-30T08:15:00"),
        (datetime(2026, 11, 30, 8, 15, tzinfo=UTC), "2026-11-30T08:15:00+00:00"),
        (clock_time(8, 15), "08:15:00"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        ('a\nb, "c"', 'a\nb, "c"'),
    ],
)
def test_value_text(value, text):
    assert value_text(value) == text


@pytest.mark.parametrize("value", [b"\x89PNG", bytearray(b"x"), memoryview(b"x"), [1], {"a": 1}])
def test_value_text_refuses_binary_and_structured_values(value):
    with pytest.raises(TypeError):
        value_text(value)


# --- wrong columns ------------------------------------------------------------------------


def test_missing_columns_are_named(db: SisDatabase, dest: Path):
    spec = QuerySpec(
        "students",
        'SELECT student_number AS "Student_Number" FROM students',
        ("Student_Number", "DOB", "Grade_Level"),
    )

    with pytest.raises(QueryFailed) as failed:
        snapshot(db, [spec], dest)

    message = str(failed.value)
    assert "SIS query 'students'" in message
    assert "column 'DOB' is missing" in message
    assert "column 'Grade_Level' is missing" in message
    assert "Student_Number' is missing" not in message
    assert failed.value.table == "students"
    assert len(failed.value.problems) == 2
    assert not dest.exists()


def test_case_only_mismatch_suggests_a_quoted_alias(db: SisDatabase, dest: Path):
    # PostgreSQL folds the unquoted alias to student_number; SQLite keeps the name as written.
    spec = QuerySpec("students", "SELECT student_number FROM students", ("Student_Number",))

    with pytest.raises(QueryFailed) as failed:
        snapshot(db, [spec], dest)

    message = str(failed.value)
    assert "column 'Student_Number' is missing; the query returns 'student_number'" in message
    assert 'AS "Student_Number"' in message


def test_unquoted_mixed_case_alias_on_postgresql_is_caught(sis_postgres, dest):
    spec = QuerySpec(
        "students", "SELECT student_number AS Student_Number FROM students", ("Student_Number",)
    )

    with pytest.raises(QueryFailed, match='AS "Student_Number"'):
        snapshot(sis_postgres, [spec], dest)


def test_duplicate_result_columns_are_refused(db: SisDatabase, dest: Path):
    spec = QuerySpec(
        "students",
        'SELECT student_number AS "Student_Number", first_name AS "Student_Number" FROM students',
        ("Student_Number",),
    )

    with pytest.raises(QueryFailed, match="result column 'Student_Number' is returned 2 times"):
        snapshot(db, [spec], dest)
    assert not dest.exists()


def test_binary_column_is_refused_by_name(db: SisDatabase, dest: Path):
    spec = QuerySpec(
        "students",
        'SELECT student_number AS "Student_Number", photo AS "Photo" FROM students',
        ("Student_Number",),
    )

    with pytest.raises(QueryFailed) as failed:
        snapshot(db, [spec], dest)

    assert "binary data in column 'Photo'" in str(failed.value)
    assert not dest.exists()
    assert siblings(dest) == []


@pytest.mark.parametrize("select", ["ARRAY[1, 2]", "'{\"a\": 1}'::json"])
def test_structured_postgresql_values_are_refused_by_name(sis_postgres, dest, select):
    spec = QuerySpec("students", f'SELECT {select} AS "Races"', ())

    with pytest.raises(QueryFailed, match=r"structured .* in column 'Races'"):
        snapshot(sis_postgres, [spec], dest)


# --- failing queries ----------------------------------------------------------------------

FAILING = {
    "syntax error": ("SELEC student_number FROM students", {"sqlite": "syntax error",
                                                            "postgresql": "syntax error"}),
    "missing table": ("SELECT * FROM pupils", {"sqlite": "no such table: pupils",
                                               "postgresql": 'relation "pupils" does not exist'}),
}  # fmt: skip


@pytest.mark.parametrize("case", FAILING)
def test_failing_query_names_the_table_and_keeps_the_previous_snapshot(db, dest, case):
    query, expected = FAILING[case]
    snapshot(db, [SCHOOLS, STUDENTS], dest)
    before = folder_bytes(dest)

    with pytest.raises(QueryFailed) as failed:
        # schools succeeds and is written to the temporary folder before pupils fails
        snapshot(db, [SCHOOLS, QuerySpec("pupils", query, ())], dest)

    message = str(failed.value)
    assert message.startswith("SIS query 'pupils' was rejected by the database: ")
    assert expected[db.name] in message
    assert "nothing was stored" in message
    assert folder_bytes(dest) == before  # byte-identical
    assert siblings(dest) == ["sql"]  # no temporary folder left behind


def test_failing_query_without_a_previous_snapshot_stores_nothing(db, dest):
    with pytest.raises(QueryFailed):
        snapshot(db, [SCHOOLS, QuerySpec("pupils", "SELECT * FROM pupils", ())], dest)

    assert not dest.exists()
    assert siblings(dest) == []


def test_a_successful_run_replaces_the_previous_snapshot(db, dest):
    snapshot(db, [STUDENTS], dest)

    snapshot(db, [SCHOOLS], dest)

    assert sorted(p.name for p in dest.iterdir()) == ["queries.json", "schools.csv"]
    assert siblings(dest) == ["sql"]


WRITES = {
    "sqlite": "INSERT INTO scratch (id) VALUES (7) RETURNING id",
    "postgresql": "SELECT nextval('scratch_id_seq') AS id",
}
STILL_UNWRITTEN = {
    "sqlite": ("SELECT count(*) FROM scratch", [(0,)]),
    "postgresql": ("SELECT is_called FROM scratch_id_seq", [(False,)]),
}


def test_a_query_that_writes_is_refused_by_the_read_only_connection(db, dest):
    with pytest.raises(QueryFailed, match=r"read-?only"):
        snapshot(db, [QuerySpec("scratch", WRITES[db.name], ())], dest)

    check, unchanged = STILL_UNWRITTEN[db.name]
    assert db.execute(check) == unchanged


def test_postgresql_runs_a_read_only_repeatable_read_transaction(sis_postgres, dest):
    spec = QuerySpec(
        "tx",
        "SELECT current_setting('transaction_read_only') AS ro, "
        "current_setting('transaction_isolation') AS iso",
        (),
    )

    snapshot(sis_postgres, [spec], dest)

    assert read_csv(dest / "tx.csv") == [["ro", "iso"], ["on", "repeatable read"]]


def test_postgresql_data_error_does_not_quote_the_value(sis_postgres, dest):
    spec = QuerySpec("students", 'SELECT CAST(first_name AS INTEGER) AS "N" FROM students', ())

    with pytest.raises(QueryFailed) as failed:
        snapshot(sis_postgres, [spec], dest)

    message = str(failed.value)
    assert "invalid input syntax for type integer (the value is not shown)" in message
    assert "José" not in message and "Zo" not in message


def test_all_queries_see_one_snapshot(db: SisDatabase, dest: Path):
    if db.name == "sqlite":
        db.execute("PRAGMA journal_mode=WAL")  # a writer next to a reader, as in production

    def enrol_a_student_meanwhile(table: str, rows: int) -> None:
        if table == "schools":
            db.execute("INSERT INTO students (student_number, school_id) VALUES ('1005', '100')")

    try:
        snapshot(db, [SCHOOLS, STUDENTS], dest, progress=enrol_a_student_meanwhile)
        assert len(read_csv(dest / "students.csv")) == 1 + 4  # as of the first query
        (later,) = snapshot(db, [STUDENTS], dest)
        assert later.rows == 5  # the insert did commit: the first run did not see it
    finally:
        db.execute("DELETE FROM students WHERE student_number = '1005'")


def test_postgresql_streams_rows_from_a_server_side_cursor(sis_postgres, dest, monkeypatch):
    monkeypatch.setattr(sql, "FETCH_ROWS", 2)
    monkeypatch.setattr(sql, "PROGRESS_EVERY", 2)
    seen = []

    def reader_query(table: str, rows: int) -> None:
        seen.extend(
            sis_postgres.execute("SELECT query FROM pg_stat_activity WHERE usename = 'sis_reader'")
        )

    snapshot(sis_postgres, [STUDENTS], dest, progress=reader_query)

    assert seen and seen[0][0].startswith("FETCH FORWARD")  # batches, not the whole result


# --- unreachable databases, passwords, retries ----------------------------------------------


class TcpProxy:
    """A loopback forwarder to PostgreSQL: the database "comes up" when the proxy starts
    listening, and ``cut()`` drops every connection through it (a network failure).
    ``connections`` counts the connections made to it; the first ``drop_first`` are closed as
    soon as they are accepted (a server that went away)."""

    def __init__(self, target_port: int, port: int | None = None, drop_first: int = 0):
        self.target_port = target_port
        self.port = port or free_port()
        self.drop_first = drop_first
        self.connections = 0
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    def start(self) -> TcpProxy:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            if self.connections <= self.drop_first:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._sockets += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
        self.cut()


def pg_url(port: int) -> str:
    return f"postgresql://sis_reader@127.0.0.1:{port}/sis"


def test_closed_port_is_unreachable_without_the_password(dest):
    with pytest.raises(SourceUnreachable) as failed:
        snapshot_queries(pg_url(free_port()), [STUDENTS], dest, password="Pa55-w0rd-x")

    message = str(failed.value)
    assert "Connection refused" in message
    assert "sis_reader:***@127.0.0.1" in message
    assert "Pa55-w0rd-x" not in message
    assert "Nothing was stored; the run can be retried" in message
    assert not dest.exists() and siblings(dest) == []


def test_silent_server_is_unreachable_after_the_connect_timeout(dest):
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        # The connection really reached the server, and what ended the wait is libpq's
        # connect timeout (its own message), not a refusal: events, not the clock. Without
        # the timeout libpq would wait for ever, so the test would hang, not pass.
        with pytest.raises(SourceUnreachable, match="timeout expired"):
            snapshot_queries(
                pg_url(silent.getsockname()[1]), [STUDENTS], dest, password="x", connect_timeout=1
            )
        silent.settimeout(0)
        connection, _ = silent.accept()  # raises BlockingIOError had no client connected
        connection.close()
    assert not dest.exists()


def test_missing_sqlite_file_is_unreachable_and_not_created(tmp_path, dest):
    missing = tmp_path / "nowhere" / "sis.db"

    with pytest.raises(SourceUnreachable, match="there is no SQLite database file"):
        snapshot_queries(f"sqlite:///{missing}", [STUDENTS], dest)

    assert not missing.exists() and not missing.parent.exists()
    assert not dest.exists()


def test_file_that_is_not_a_database_is_unreachable(tmp_path, dest):
    not_a_db = tmp_path / "sis.db"
    not_a_db.write_bytes(b"Student_Number,First_Name\r\n" * 100)

    with pytest.raises(SourceUnreachable, match="not a database"):
        snapshot_queries(f"sqlite:///{not_a_db}", [STUDENTS], dest)


def test_wrong_postgresql_password_is_unreachable_without_either_password(sis_postgres, dest):
    with pytest.raises(SourceUnreachable) as failed:
        snapshot_queries(sis_postgres.url, [STUDENTS], dest, password="not-the-password")

    message = str(failed.value)
    assert 'password authentication failed for user "sis_reader"' in message
    assert "not-the-password" not in message and sis_postgres.password not in message
    assert not dest.exists()


def test_no_password_given_for_a_password_login_is_unreachable(sis_postgres, dest):
    with pytest.raises(SourceUnreachable, match="password"):
        snapshot_queries(sis_postgres.url, [STUDENTS], dest, password=None)


@pytest.mark.parametrize(
    ("login", "words"),
    [
        ({"password": "not-the-password"}, "password authentication failed"),
        ({"password": None}, "no password supplied"),
        ({"user": "nobody"}, 'password authentication failed for user "nobody"'),
        ({"database": "nowhere"}, 'database "nowhere" does not exist'),
    ],
    ids=["wrong password", "no password", "unknown user", "unknown database"],
)
def test_a_refused_login_is_not_transient_a_lost_server_is(sis_postgres, dest, login, words):
    password = login.get("password", sis_postgres.password)
    user, database = login.get("user", "sis_reader"), login.get("database", "sis")
    url = f"postgresql+psycopg2://{user}@127.0.0.1:{sis_postgres.server.port}/{database}"
    with pytest.raises(SourceUnreachable) as refused:
        snapshot_queries(url, [STUDENTS], dest, password=password)
    assert words in refused.value.reason and refused.value.transient is False
    assert "check the user and database in the URL and NAVIANCE_SOURCE_PASSWORD" in str(
        refused.value
    )

    proxy = TcpProxy(sis_postgres.server.port, drop_first=1).start()  # the server went away
    try:
        with pytest.raises(SourceUnreachable) as lost:
            snapshot_queries(pg_url(proxy.port), [STUDENTS], dest, password=sis_postgres.password)
    finally:
        proxy.stop()
    assert lost.value.transient is True and "the run can be retried" in str(lost.value)
    assert not dest.exists()


@pytest.mark.parametrize("how", ["network drop", "backend terminated"])
def test_connection_lost_mid_query_is_unreachable(sis_postgres, dest, monkeypatch, how):
    monkeypatch.setattr(sql, "FETCH_ROWS", 1)
    monkeypatch.setattr(sql, "PROGRESS_EVERY", 1)
    proxy = TcpProxy(sis_postgres.server.port).start()

    def lose_the_connection(table: str, rows: int) -> None:
        if how == "network drop":
            proxy.cut()
        else:
            sis_postgres.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE usename = 'sis_reader'"
            )

    try:
        with pytest.raises(SourceUnreachable) as failed:
            snapshot_queries(
                pg_url(proxy.port),
                [STUDENTS],
                dest,
                password=sis_postgres.password,
                progress=lose_the_connection,
            )
    finally:
        proxy.stop()

    assert "the run can be retried" in str(failed.value)
    assert not dest.exists() and siblings(dest) == []


def test_retry_after_unreachable_succeeds(sis_postgres, dest):
    port = free_port()
    call = {
        "url": pg_url(port),
        "queries": [SCHOOLS, STUDENTS],
        "dest": dest,
        "password": sis_postgres.password,
    }
    with pytest.raises(SourceUnreachable):
        snapshot_queries(**call)  # the database is down

    proxy = TcpProxy(sis_postgres.server.port, port).start()  # ...and comes back
    try:
        records = snapshot_queries(**call)
    finally:
        proxy.stop()

    assert [r.rows for r in records] == [2, 4]
    assert read_csv(dest / "students.csv")[1:] == EXPECTED_STUDENTS["postgresql"]


def test_retry_after_missing_sqlite_file_succeeds(tmp_path, dest, sis_sqlite):
    later = tmp_path / "later.db"
    with pytest.raises(SourceUnreachable):
        snapshot_queries(f"sqlite:///{later}", [STUDENTS], dest)

    Path(sis_sqlite.url.removeprefix("sqlite:///")).rename(later)
    (record,) = snapshot_queries(f"sqlite:///{later}", [STUDENTS], dest)

    assert record.rows == 4


# --- URLs and secrets -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg2://sis_reader:hunter2-secret@db.example.org/sis",
        "postgresql+psycopg2://sis_reader@db.example.org/sis?password=hunter2-secret",
        "mssql+pyodbc://sis@db.example.org/sis?odbc_connect=DRIVER%3Dx%3BPWD%3Dhunter2-secret",
    ],
)
def test_inline_password_is_refused(url, dest):
    with pytest.raises(ValueError) as refused:
        database_url(url, None, password_env="DISTRICT_42_SIS_PASSWORD")
    assert "DISTRICT_42_SIS_PASSWORD" in str(refused.value)
    assert "hunter2" not in str(refused.value)

    with pytest.raises(ValueError, match="NAVIANCE_SOURCE_PASSWORD"):
        snapshot_queries(url, [STUDENTS], dest, password="other")
    assert not dest.exists() and siblings(dest) == []


def test_database_url_sets_the_password_from_the_environment_value():
    url = database_url("postgresql+psycopg2://sis_reader@db.example.org:5433/sis", "s3cret!@/")

    assert url.password == "s3cret!@/"
    assert url.port == 5433
    assert "s3cret" not in url.render_as_string(hide_password=True)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("oracle+nosuchdriver://u@h/db", "unknown dialect 'oracle+nosuchdriver'"),
        ("nosuchdb://u@h/db", "unknown dialect 'nosuchdb'"),
        ("mysql://u@h/db", "dialect 'mysql' needs the Python driver 'mysqldb'"),
        ("postgresql+asyncpg://u@h/db", "asyncio driver"),
        ("not a url at all", "cannot be parsed"),
        ("sqlite://", "names no database file"),
        ("sqlite:///:memory:", "names no database file"),
    ],
)
def test_bad_database_urls_are_refused_clearly(url, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        database_url(url, "pw-value")


@pytest.mark.parametrize(
    "queries",
    [
        [],
        [QuerySpec("../students", "SELECT 1", ())],
        [QuerySpec("students", "SELECT 1", ()), QuerySpec("Students", "SELECT 2", ())],
        [QuerySpec("students", "  ", ())],
    ],
)
def test_bad_query_lists_are_refused_before_connecting(queries, dest):
    with pytest.raises(ValueError):
        snapshot_queries("sqlite:////nonexistent/sis.db", queries, dest)
    assert not dest.exists()


def test_messages_and_files_never_hold_the_password(sis_postgres, dest):
    """The password is in memory only: not in queries.json, not in a record."""
    records = snapshot(sis_postgres, [SCHOOLS], dest)

    assert sis_postgres.password not in (dest / "queries.json").read_text("utf-8")
    assert sis_postgres.password not in repr(records)


# A query that runs for ever on either database (a recursive count of a billion rows, or
# PostgreSQL's pg_sleep), returning one column.
ENDLESS = {
    "sqlite": (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) "
        'SELECT max(i) AS "X" FROM n'
    ),
    "postgresql": 'SELECT pg_sleep(30)::text AS "X"',
}


def test_a_query_past_the_timeout_fails_naming_the_limit_and_stores_nothing(db, dest):
    spec = QuerySpec("students", ENDLESS[db.name], ("X",))
    # The query would run for ever (SQLite) or 30 s and succeed (PostgreSQL): the failure and
    # its message are the proof that the timeout interrupted it.
    with pytest.raises(QueryFailed) as failed:
        snapshot(db, [spec], dest, query_timeout=0.5)
    assert "SIS query 'students'" in str(failed.value)
    assert "took longer than the query timeout of 0.5 s" in str(failed.value)
    assert not dest.exists()


def test_a_query_within_the_timeout_is_not_disturbed(db, dest):
    (record,) = snapshot(db, [STUDENTS], dest, query_timeout=30)
    assert record.rows == len(read_csv(dest / record.file)) - 1 > 0
