"""Small generated fixtures for the SIS mapping tests: a minimal mapping and its export.

``mapping_doc()`` is a valid mapping as a dict (tests change one key and dump it with
``mapping_text``); ``export_files()`` is a tiny export it fits: two schools, two students and a
teacher whose id is the same number as a student's.
"""

from __future__ import annotations

import copy
import csv
import io
from collections.abc import Iterable
from typing import Any

import yaml

from naviance_pipeline.sources.sis.mapping import SisMapping, parse_mapping

BASE: dict[str, Any] = {
    "mapping_version": "1",
    "tables": {
        "students": {"file": "students.csv"},
        "teachers": {"file": "teachers.csv"},
        "schools": {"file": "schools.csv"},
    },
    "orgs": {
        "table": "schools",
        "id_prefix": "",
        "columns": {
            "sourcedId": {"column": "SchoolID"},
            "name": {"column": "SchoolName"},
            "type": {"constant": "school"},
        },
    },
    "users": [
        {
            "table": "students",
            "columns": {
                "sourcedId": {"column": "ID"},
                "enabledUser": {"column": "Status", "map": "status"},
                "orgSourcedIds": {"column": "SchoolID"},
                "role": {"constant": "student"},
                "username": {"column": "Login"},
                "givenName": {"column": "First"},
                "familyName": {"column": "Last"},
                "email": {"template": "{Login}@students.example.org"},
                "grades": {"column": "Grade", "map": "grade"},
                "metadata.classYear": {"column": "GradYear"},
            },
            "demographics": {
                "birthDate": {"column": "DOB", "date_format": "%m/%d/%Y"},
                "sex": {"column": "Gender", "map": "gender"},
                "races": {
                    "column": "Races",
                    "separator": ";",
                    "codes": {"W": "white", "B": "blackOrAfricanAmerican", "A": "asian"},
                },
            },
        },
        {
            "table": "teachers",
            "id_prefix": "T-",
            "columns": {
                "sourcedId": {"column": "ID"},
                "enabledUser": {"constant": "true"},
                "orgSourcedIds": {"column": "SchoolID"},
                "role": {"constant": "teacher"},
                "username": {"column": "Login"},
                "givenName": {"column": "First"},
                "familyName": {"column": "Last"},
                "metadata.title": {"column": "Title"},
            },
        },
    ],
    "value_maps": {
        "grade": {"K": "KG", "9": "09", "10": "10"},
        "status": {"A": "true", "I": "false"},
        "gender": {"M": "male", "F": "female"},
    },
}

STUDENTS_HEADER = ["ID", "Status", "SchoolID", "Login", "First", "Last", "Grade", "GradYear",
                   "DOB", "Gender", "Races", "Locker"]  # fmt: skip
STUDENTS = [
    ["100", "A", "1", "ann100", "Ann", "Lee", "9", "", "03/04/2011", "F", "W;B", "12"],
    ["101", "A", "2", "bo101", "Bo", "Diaz", "K", "", "12/31/2020", "M", "A", "7"],
]
TEACHERS_HEADER = ["ID", "SchoolID", "Login", "First", "Last", "Title"]
TEACHERS = [["100", "1", "cruz", "Carla", "Cruz", "Math Teacher"]]
SCHOOLS_HEADER = ["SchoolID", "SchoolName"]
SCHOOLS = [["1", "Lincoln High"], ["2", "Lincoln Elementary"]]
# Values of PII columns in the export: no finding may print one.
PII_VALUES = ("ann100", "Ann", "Lee", "bo101", "Bo", "Diaz", "03/04/2011", "12/31/2020",
              "cruz", "Carla", "Cruz")  # fmt: skip


def mapping_doc() -> dict[str, Any]:
    """A fresh copy of the valid base mapping, to change one key of."""
    return copy.deepcopy(BASE)


def mapping_text(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def load(doc: dict[str, Any] | None = None) -> SisMapping:
    return parse_mapping(mapping_text(doc or mapping_doc()), ref="test", label="test.yaml")


def csv_bytes(
    rows: Iterable[Iterable[str]], newline: str = "\r\n", encoding: str = "utf-8"
) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator=newline).writerows(rows)
    return out.getvalue().encode(encoding)


def export_files(
    students: list[list[str]] | None = None, teachers: list[list[str]] | None = None
) -> dict[str, bytes]:
    """The export's files by file name (CRLF, UTF-8)."""
    return {
        "students.csv": csv_bytes([STUDENTS_HEADER, *(STUDENTS if students is None else students)]),
        "teachers.csv": csv_bytes([TEACHERS_HEADER, *(TEACHERS if teachers is None else teachers)]),
        "schools.csv": csv_bytes([SCHOOLS_HEADER, *SCHOOLS]),
    }


def tables(files: dict[str, bytes]) -> dict[str, bytes]:
    """The export's files by table name (as read_export returns them)."""
    return {name.removesuffix(".csv"): data for name, data in files.items()}


def student(**values: str) -> list[str]:
    """A student record: the first student with some columns replaced."""
    row = dict(zip(STUDENTS_HEADER, STUDENTS[0], strict=True))
    row.update(values)
    return [row[c] for c in STUDENTS_HEADER]
