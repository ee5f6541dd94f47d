"""The sample district as SIS exports: the same people, the presets' shapes, and round trips
(export or demo database -> preset -> OneRoster -> validation) with no error findings."""

from __future__ import annotations

import csv
import io
import sqlite3
import zipfile
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.sample import write_sample_district
from naviance_pipeline.oneroster.source import open_source
from naviance_pipeline.oneroster.stages import build_all
from naviance_pipeline.sources.sis.convert import Conversion, convert
from naviance_pipeline.sources.sis.export import read_export
from naviance_pipeline.sources.sis.mapping import load_mapping
from naviance_pipeline.sources.sis.sample_export import (
    SHAPES,
    export_tables,
    write_demo_database,
    write_sample_export,
)
from naviance_pipeline.sources.sis.sql import RESULT_ENCODING, QuerySpec, snapshot_queries

STUDENTS, SCHOOLS, SEED = 300, 5, 7
SIZE = {"students": STUDENTS, "schools": SCHOOLS, "seed": SEED}
AS_OF = date(2026, 11, 30)
STAFF_FILE = {"powerschool": "teachers.csv", "generic": "staff.csv"}


def validate(conversion: Conversion, folder: Path, include_staff: bool) -> tuple[list, tuple]:
    """Write the converted files and run every stage: all findings, and the stage results."""
    folder.mkdir()
    for name, data in conversion.files.items():
        (folder / name).write_bytes(data)
    options = Options(as_of=AS_OF, include_staff=include_staff)
    stages = build_all(open_source(str(folder), options), options)
    return [*conversion.findings, *(f for stage in stages for f in stage.findings)], stages


def errors(findings: list) -> list:
    return [f for f in findings if f.severity == "error"]


@pytest.fixture(scope="module")
def classlink_users(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, str]]:
    out = tmp_path_factory.mktemp("classlink") / "classlink.zip"
    write_sample_district(str(out), **SIZE)
    with zipfile.ZipFile(out) as zf:
        return list(csv.DictReader(io.StringIO(zf.read("users.csv").decode(), newline="")))


# ---- shapes and people ----------------------------------------------------------------------


def test_the_powerschool_shape_has_powerschools_files_and_columns():
    frames = export_tables("powerschool", **SIZE)
    assert list(frames) == ["students.csv", "teachers.csv", "schools.csv"]
    columns = set(frames["students.csv"].columns)
    assert {"Student_Number", "First_Name", "Last_Name", "Grade_Level", "SchoolID",
            "Enroll_Status", "DOB", "Gender"} <= columns  # fmt: skip
    assert {"TeacherNumber", "Email_Addr", "SchoolID", "Title"} <= set(frames["teachers.csv"])
    assert {"School_Number", "Name"} <= set(frames["schools.csv"])
    students = frames["students.csv"]
    assert set(students["Grade_Level"]) <= {str(g) for g in range(-1, 13)}
    assert students["DOB"].str.fullmatch(r"\d\d/\d\d/\d{4}").all()
    assert set(students["Gender"]) == {"M", "F"}


def test_the_generic_shape_has_students_staff_and_schools():
    frames = export_tables("generic", **SIZE)
    assert list(frames) == ["students.csv", "staff.csv", "schools.csv"]
    assert "student_id" in frames["students.csv"] and "staff_id" in frames["staff.csv"]
    assert set(frames["schools.csv"]["school_type"]) == {"district", "school"}


def test_the_mess_the_presets_handle_is_there():
    students = export_tables("powerschool", **SIZE)["students.csv"]
    pk = students[students["Grade_Level"] == "-1"]
    assert len(pk) > 0
    assert (pk["Sched_YearOfGraduation"] == "2040").all()  # PK: the year is supplied
    assert (students.loc[students["Grade_Level"] != "-1", "Sched_YearOfGraduation"] == "").all()
    assert {"0", "2", "-1"} <= set(students["Enroll_Status"])  # active, left, pre-registered


@pytest.mark.parametrize("shape", SHAPES)
def test_the_same_seed_gives_the_same_people_as_the_classlink_sample(shape, classlink_users):
    frames = export_tables(shape, **SIZE)
    students = frames["students.csv"]
    classlink = [u for u in classlink_users if u["role"] == "student"]
    id_column, first = (
        ("Student_Number", "First_Name")
        if shape == "powerschool"
        else (
            "student_id",
            "first_name",
        )
    )
    assert list(students[id_column]) == [
        u["sourcedId"].lstrip("0") if shape == "powerschool" else u["sourcedId"] for u in classlink
    ]
    assert list(students[first]) == [u["givenName"] for u in classlink]
    staff = [u for u in classlink_users if u["role"] in ("teacher", "administrator")]
    assert len(frames[STAFF_FILE[shape]]) == len(staff)


@pytest.mark.parametrize("shape", SHAPES)
def test_the_same_arguments_give_the_same_bytes(shape, tmp_path: Path):
    a = write_sample_export(str(tmp_path / "a.zip"), shape, **SIZE)
    b = write_sample_export(str(tmp_path / "b.zip"), shape, **SIZE)
    c = write_sample_export(str(tmp_path / "c.zip"), shape, **{**SIZE, "seed": SEED + 1})
    assert Path(a).read_bytes() == Path(b).read_bytes() != Path(c).read_bytes()


def test_powerschool_files_carry_a_bom_and_crlf_generic_files_lf(tmp_path: Path):
    ps = Path(write_sample_export(str(tmp_path / "ps"), "powerschool", fmt="folder", **SIZE))
    generic = Path(write_sample_export(str(tmp_path / "g"), "generic", fmt="folder", **SIZE))
    data = (ps / "students.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbfStudent_Number,") and data.endswith(b"\r\n")
    data = (generic / "students.csv").read_bytes()
    assert data.startswith(b"student_id,") and b"\r" not in data and data.endswith(b"\n")


def test_bad_arguments_are_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="shape"):
        export_tables("skyward", **SIZE)
    with pytest.raises(ValueError, match="fmt"):
        write_sample_export(str(tmp_path / "x"), "generic", fmt="tar", **SIZE)


# ---- round trips: export -> preset -> OneRoster -> validation -----------------------------------


@pytest.mark.parametrize("include_staff", [False, True], ids=["students", "with-staff"])
@pytest.mark.parametrize("fmt", ["zip", "folder"])
@pytest.mark.parametrize("shape", SHAPES)
def test_each_preset_converts_its_sample_with_no_errors(shape, fmt, include_staff, tmp_path):
    out = tmp_path / ("export.zip" if fmt == "zip" else "export")
    url = write_sample_export(str(out), shape, fmt=fmt, **SIZE)
    mapping = load_mapping(shape)
    options = Options(as_of=AS_OF, include_staff=include_staff)
    conversion = convert(mapping, read_export(url, mapping, options), options)
    findings, (_, users, demographics) = validate(conversion, tmp_path / "or", include_staff)
    assert errors(findings) == []
    assert users.counts["students"] == STUDENTS
    assert demographics.counts["written"] == STUDENTS
    staff = len(export_tables(shape, **SIZE)[STAFF_FILE[shape]])
    assert users.counts["staff"] == (staff if include_staff else 0)
    by_class_year = Counter(users.frame["metadata.classYear"])
    assert by_class_year["2040"] > 0  # the PK students, from the supplied year


# ---- the demo database --------------------------------------------------------------------------


def test_the_demo_database_holds_the_powerschool_tables_with_integer_codes(tmp_path: Path):
    path = write_demo_database(str(tmp_path / "sis.sqlite"), **SIZE)
    with sqlite3.connect(path) as db:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master ORDER BY name")]
        types = {r[1]: r[2] for r in db.execute("PRAGMA table_info(students)")}
        count = db.execute("SELECT count(*) FROM students").fetchone()[0]
        grade = db.execute("SELECT typeof(Grade_Level) FROM students LIMIT 1").fetchone()[0]
    assert names == ["schools", "students", "teachers"]
    assert types["Grade_Level"] == types["SchoolID"] == types["Enroll_Status"] == "INTEGER"
    assert types["DOB"] == types["Student_Number"] == "TEXT"
    assert (count, grade) == (STUDENTS, "integer")


def _query_and_convert(url: str, shape: str, dest: Path, password: str | None = None):
    mapping = load_mapping(shape)
    specs = [
        QuerySpec(t.name, t.query or "", tuple(mapping.columns_read(t.name)))
        for t in mapping.tables.values()
    ]
    records = snapshot_queries(url, specs, dest, password=password)
    tables = {r.table: (dest / r.file).read_bytes() for r in records}
    options = Options(as_of=AS_OF, include_staff=True)
    return convert(mapping, tables, options, encoding=RESULT_ENCODING)


@pytest.mark.parametrize("shape", SHAPES)
def test_each_presets_queries_read_its_demo_database_with_no_errors(shape, tmp_path: Path):
    path = write_demo_database(str(tmp_path / "sis.sqlite"), shape=shape, **SIZE)
    conversion = _query_and_convert(f"sqlite:///{path}", shape, tmp_path / "sql")
    findings, (_, users, _) = validate(conversion, tmp_path / "or", include_staff=True)
    assert errors(findings) == []
    assert users.counts["students"] == STUDENTS


@pytest.mark.postgres
def test_the_powerschool_queries_run_on_postgresql(powerschool_postgres, tmp_path: Path):
    """PostgreSQL folds unquoted names to lower case: the preset's quoted aliases must still
    give the columns the mapping reads; its DATE birth dates come back ISO and are kept."""
    database = powerschool_postgres
    conversion = _query_and_convert(
        database.url, "powerschool", tmp_path / "sql", database.password
    )
    findings, (_, users, _) = validate(conversion, tmp_path / "or", include_staff=True)
    assert errors(findings) == []
    assert users.counts["students"] == database.students
