"""A mapping's ``encoding`` is its export files': a SQL source's result sets are always UTF-8.

One mapping serves both a CSV export (``file:``, saved by a Windows program as cp1252) and the
database (``query:``); reading the database's snapshot as cp1252 would turn ``Zoë`` into
``ZoÃ«`` in the package, silently."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from naviance_pipeline.cli import main
from naviance_pipeline.oneroster.spec import ZIP_NAME
from naviance_pipeline.sources.snapshot import PASSWORD_ENV
from naviance_pipeline_tests.sis.conftest import SisDatabase

MAPPING = """\
mapping_version: 1
tables:
  schools:
    file: schools.csv
    encoding: cp1252
    query: SELECT school_number, name FROM schools
  students:
    file: students.csv
    encoding: cp1252
    query: >-
      SELECT student_number, first_name, last_name, grade_level, school_id FROM students
      WHERE student_number IN ({students})
orgs:
  table: schools
  columns:
    sourcedId: {column: school_number}
    name: {column: name}
    type: {constant: school}
users:
  - table: students
    columns:
      sourcedId: {column: student_number}
      enabledUser: {constant: "true"}
      orgSourcedIds: {column: school_id}
      role: {constant: student}
      username: {template: "s{student_number}"}
      givenName: {column: first_name}
      familyName: {column: last_name}
      grades: {column: grade_level, map: grade}
value_maps:
  grade: {"-1": KG, "0": KG, "9": "09", "12": "12"}  # PK as KG: a PK student has no class year
"""


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest) -> SisDatabase:
    return request.getfixturevalue(
        {"sqlite": "sis_sqlite", "postgresql": "sis_postgres"}[request.param]
    )


# Zoë and José only: their UTF-8 bytes are valid cp1252 too, so the old reading was silent
# (ZoÃ«, JosÃ©, no finding). All four: Nguyễn's bytes are not (a CSV-ENCODING error instead).
STUDENT_SETS = {
    "silent": ("1001", "1002"),
    "all": ("1001", "1002", "1003", "1004"),
}


@pytest.mark.parametrize("students", STUDENT_SETS)
def test_a_sql_source_is_read_as_utf8_whatever_the_export_files_encoding(
    db: SisDatabase, students: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    mapping = tmp_path / "mapping.yaml"
    numbers = ", ".join(f"'{n}'" for n in STUDENT_SETS[students])
    mapping.write_text(MAPPING.replace("{students}", numbers), encoding="utf-8")
    if db.password:
        monkeypatch.setenv(PASSWORD_ENV, db.password)
    out = tmp_path / "out"
    argv = ["package", db.url, "--kind", "sql", "--mapping", str(mapping), "--out", str(out)]
    code = main([*argv, "--as-of", "2026-11-30", "--format", "json"])
    assert code == 0, capsys.readouterr()
    with zipfile.ZipFile(out / ZIP_NAME) as package:
        users = package.read("users.csv").decode("utf-8")
        orgs = package.read("orgs.csv").decode("utf-8")
    names = ("José", "Muñoz", "Zoë") + ("Nguyễn", "Đặng", "Åsa", "Øster") * (students == "all")
    for name in names:
        assert name in users
    assert ("Escuela Primaria Peña" in orgs) == (students == "all")  # only schools with students
    assert "Ã" not in users + orgs  # no UTF-8 bytes read as cp1252
