"""Synthetic SIS exports of the sample district, in the shapes the bundled presets read.

The people are those of ``oneroster/sample.py`` (the same draws: the same seed gives the same
students, staff and schools), written as a SIS exports them instead of as OneRoster:

- ``powerschool``: ``students.csv`` (Student_Number, State_StudentNumber, Student_Web_ID,
  First_Name, Middle_Name, Last_Name, Grade_Level as integers with -1 = PK and 0 = K,
  SchoolID, Enroll_Status with 0 = active, DOB as MM/DD/YYYY, Gender M/F, FedEthnicity 1/0,
  Race_Codes such as ``B,W``, Sched_YearOfGraduation, Home_Room), ``teachers.csv``
  (TeacherNumber, First_Name, Last_Name, Email_Addr, TeacherLoginID, SchoolID with 0 = district
  office, Staff_Type 1 teacher / 2 staff, Status 1 = active, Title) and ``schools.csv``
  (School_Number, Name, Abbreviation, Low_Grade, High_Grade, Alternate_School_Number = NCES
  id); UTF-8 with a byte-order mark and CRLF, as exported on Windows.
- ``generic``: ``students.csv``, ``staff.csv`` and ``schools.csv`` with snake_case columns,
  grades K/1-12/PK, dates YYYY-MM-DD, races as names separated by ``;``; LF line ends.

A little of the mess real exports have, which the presets handle: every eighth kindergartener
is in PK with a supplied graduation year (PK has no grade number to derive one from),
students who left are inactive with different status codes, and the files carry columns the
mapping does not read. Every export converts with its preset and validates with no errors.

``write_demo_database`` puts a shape's tables in a SQLite database (integers where the SIS
stores integers), which the preset's queries read: the embedded SQL source.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from naviance_pipeline.oneroster.sample import (
    DISTRICT_NAME,
    FORMATS,
    GIVEN_NAMES,
    LEA_ID,
    SCHOOL_YEAR_END,
    STAFF_DOMAIN,
    STUDENT_DOMAIN,
    District,
    People,
    draw_district,
    join,
    number_text,
    optional,
    person_columns,
    pick,
    repeat,
    text_frame,
    write_export,
)
from naviance_pipeline.oneroster.writer import csv_header, iter_csv

SHAPES: tuple[str, ...] = ("powerschool", "generic")
PK_EVERY = 8  # every eighth kindergartener is in pre-kindergarten in the SIS shapes
PK_LEVEL = -1  # PowerSchool's Grade_Level for PK
DISTRICT_OFFICE = "0"  # PowerSchool's SchoolID of the district office
BOM = b"\xef\xbb\xbf"

# Race codes in spec.RACE_FLAGS order.
POWERSCHOOL_RACES = ("I", "A", "B", "P", "W")
GENERIC_RACES = (
    "American Indian or Alaska Native",
    "Asian",
    "Black or African American",
    "Native Hawaiian or Other Pacific Islander",
    "White",
)
GENERIC_GRADES = ("K", *(str(g) for g in range(1, 13)))
# Columns a SIS database stores as integers (the demo database does too).
INTEGER_COLUMNS = frozenset(
    {
        "Grade_Level", "SchoolID", "Enroll_Status", "Sched_YearOfGraduation", "School_Number",
        "Low_Grade", "High_Grade", "Staff_Type", "Status",
    }
)  # fmt: skip

_TEXT = pa.large_string()


def export_tables(shape: str, *, students: int, schools: int, seed: int) -> dict[str, pd.DataFrame]:
    """The export's files as all-text frames, by file name (same seed, same people as
    ``oneroster.sample.write_sample_district``)."""
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {SHAPES}, not {shape!r}")
    district = draw_district(students, schools, seed)
    return _powerschool(district) if shape == "powerschool" else _generic(district)


def write_sample_export(
    out: str,
    shape: str,
    *,
    students: int = 500,
    schools: int = 4,
    seed: int = 7,
    fmt: str = "zip",
) -> str:
    """Write the export to ``out`` (a ZIP file when fmt="zip", a folder when fmt="folder"; a
    local path or fsspec URL) and return ``out``. Same arguments, same bytes."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, not {fmt!r}")
    frames = export_tables(shape, students=students, schools=schools, seed=seed)
    write_export(out, [(name, _csv(frame, shape)) for name, frame in frames.items()], fmt)
    return out


def write_demo_database(
    path: str, *, students: int = 500, schools: int = 4, seed: int = 7, shape: str = "powerschool"
) -> str:
    """Write the export's tables (``students``, ``teachers``/``staff``, ``schools``) to a new
    SQLite database at ``path`` (replacing it) and return ``path``. The columns are named as
    in the export; those in INTEGER_COLUMNS are INTEGER, the others TEXT."""
    frames = export_tables(shape, students=students, schools=schools, seed=seed)
    if os.path.exists(path):
        os.remove(path)
    db = sqlite3.connect(path)
    try:
        with db:  # one transaction: commits at the end
            db.execute("PRAGMA synchronous = OFF")  # a new demo file: nothing to recover
            for name, frame in frames.items():
                table = name.removesuffix(".csv")
                columns = ", ".join(f'"{c}" {_sql_type(c)}' for c in frame.columns)
                db.execute(f'CREATE TABLE "{table}" ({columns})')
                marks = ", ".join("?" * len(frame.columns))
                values = [_sql_values(frame[c]) for c in frame.columns]
                db.executemany(f'INSERT INTO "{table}" VALUES ({marks})', zip(*values, strict=True))
    finally:
        db.close()
    return path


# ---- shapes -------------------------------------------------------------------------------------


def _powerschool(d: District) -> dict[str, pd.DataFrame]:
    s, schools = d.students, d.schools
    numbers = _numbers(schools.ids)
    pk = _pk(s.grade)
    people = person_columns(s.ids, s.given, s.family, STUDENT_DOMAIN)
    status = np.where(s.enabled, "0", np.where(np.arange(len(s.ids)) % 2 == 0, "2", "-1"))
    students = text_frame(
        {
            "Student_Number": _numbers(s.ids),
            "State_StudentNumber": s.state_ids,
            "Student_Web_ID": people["username"],
            "First_Name": people["givenName"],
            "Middle_Name": optional(GIVEN_NAMES, s.middle),
            "Last_Name": people["familyName"],
            "Grade_Level": number_text(np.where(pk, PK_LEVEL, s.grade)),
            "SchoolID": numbers.take(pa.array(s.school)),
            "Enroll_Status": pa.array(status, _TEXT),
            "DOB": pc.strftime(pa.array(s.born), format="%m/%d/%Y").cast(_TEXT),
            "Gender": pick(("M", "F"), s.sex),
            "FedEthnicity": pick(("0", "1"), s.hispanic),
            "Race_Codes": _race_codes(s.races, POWERSCHOOL_RACES, ","),
            "Sched_YearOfGraduation": _pk_class_years(pk),
            "Home_Room": join("Room ", number_text(100 + s.school * 10 + s.grade)),
        }
    )
    teachers, admins, _guardians = d.staff  # Naviance takes no guardians: the SIS shapes omit them
    staff = pd.concat(
        [_powerschool_staff(d, p, type_code) for p, type_code in ((teachers, "1"), (admins, "2"))],
        ignore_index=True,
    )
    school_rows = text_frame(
        {
            "School_Number": numbers,
            "Name": schools.names,
            "Abbreviation": [_abbreviation(name) for name in schools.names],
            "Low_Grade": number_text(schools.low),
            "High_Grade": number_text(schools.high),
            "Alternate_School_Number": schools.nces,
        }
    )
    return {"students.csv": students, "teachers.csv": staff, "schools.csv": school_rows}


def _powerschool_staff(d: District, people: People, staff_type: str) -> pd.DataFrame:
    count = len(people.ids)
    columns = person_columns(people.ids, people.given, people.family, STAFF_DOMAIN)
    # PowerSchool keeps one home school per teacher; the district office is SchoolID 0.
    home = pc.list_element(pc.split_pattern(people.orgs, ","), 0)
    school = pc.if_else(pc.equal(home, d.district_id), DISTRICT_OFFICE, _numbers(home))
    return text_frame(
        {
            "TeacherNumber": _numbers(people.ids),
            "First_Name": columns["givenName"],
            "Last_Name": columns["familyName"],
            "Email_Addr": columns["email"],
            "TeacherLoginID": columns["username"],
            "SchoolID": school,
            "Staff_Type": repeat(staff_type, count),
            "Status": repeat("1", count),
            "Title": people.title if people.title is not None else repeat("", count),
        }
    )


def _generic(d: District) -> dict[str, pd.DataFrame]:
    s, schools = d.students, d.schools
    pk = _pk(s.grade)
    people = person_columns(s.ids, s.given, s.family, STUDENT_DOMAIN)
    students = text_frame(
        {
            "student_id": s.ids,
            "state_id": s.state_ids,
            "first_name": people["givenName"],
            "middle_name": optional(GIVEN_NAMES, s.middle),
            "last_name": people["familyName"],
            "grade": pc.if_else(pa.array(pk), "PK", pick(GENERIC_GRADES, s.grade)),
            "school_id": schools.ids.take(pa.array(s.school)),
            "status": pick(("inactive", "active"), s.enabled),
            "birth_date": pa.array(s.born).cast(pa.string()).cast(_TEXT),
            "gender": pick(("M", "F"), s.sex),
            "hispanic": pick(("N", "Y"), s.hispanic),
            "races": _race_codes(s.races, GENERIC_RACES, ";"),
            "email": people["email"],
            "username": people["username"],
            "graduation_year": _pk_class_years(pk),
        }
    )
    teachers, admins, _guardians = d.staff
    staff = pd.concat([_generic_staff(p) for p in (teachers, admins)], ignore_index=True)
    count = len(schools.names)
    school_rows = text_frame(
        {
            "school_id": [d.district_id, *schools.ids.to_pylist()],
            "school_name": [DISTRICT_NAME, *schools.names],
            "school_type": ["district", *["school"] * count],
            "nces_id": [LEA_ID, *schools.nces],
            "parent_id": ["", *[d.district_id] * count],
        }
    )
    return {"students.csv": students, "staff.csv": staff, "schools.csv": school_rows}


def _generic_staff(people: People) -> pd.DataFrame:
    count = len(people.ids)
    columns = person_columns(people.ids, people.given, people.family, STAFF_DOMAIN)
    return text_frame(
        {
            "staff_id": people.ids,
            "first_name": columns["givenName"],
            "last_name": columns["familyName"],
            "email": columns["email"],
            "username": columns["username"],
            "school_ids": people.orgs,
            "role": repeat(people.role, count),
            "title": people.title if people.title is not None else repeat("", count),
            "active": repeat("Y", count),
        }
    )


# ---- values -------------------------------------------------------------------------------------


def _pk(grade: np.ndarray) -> np.ndarray:
    """Every PK_EVERY-th kindergartener, counted in student order."""
    kindergarten = grade == 0
    rank = np.cumsum(kindergarten) - 1
    return kindergarten & (rank % PK_EVERY == PK_EVERY - 1)


def _pk_class_years(pk: np.ndarray) -> pa.Array:
    """The supplied graduation year of PK students (a year after kindergarten's), else blank.

    Only PK students have one: a year supplied for every student would leave the allowed window
    (spec section 8) as the sample ages, while this one stays inside it for years."""
    return pc.if_else(pa.array(pk), str(SCHOOL_YEAR_END + 13), "").cast(_TEXT)


def _race_codes(races: np.ndarray, codes: tuple[str, ...], separator: str) -> pa.Array:
    """Each student's race codes joined by ``separator`` (blank for none), in RACE_FLAGS order.

    Each code is written with a separator after it and the last one trimmed: pyarrow's join
    with ``null_handling="skip"`` returns too few rows (pyarrow 26)."""
    present = [
        pc.if_else(pa.array(races[i]), pa.scalar(code + separator, _TEXT), pa.scalar("", _TEXT))
        for i, code in enumerate(codes)
    ]
    joined = pc.binary_join_element_wise(*present, pa.scalar("", _TEXT))
    return pc.utf8_rtrim(joined, characters=separator)


def _numbers(ids: pa.Array) -> pa.Array:
    """Zero-padded ids as the SIS's integers (PowerSchool numbers have no leading zeros)."""
    return pc.utf8_ltrim(ids, "0")


def _abbreviation(name: str) -> str:
    return "".join(word[0] for word in name.split() if word[0].isalnum()).upper()


def _csv(frame: pd.DataFrame, shape: str) -> Iterator[bytes]:
    """The file's bytes in pieces: CRLF and a BOM for PowerSchool (a Windows export), LF for
    the generic shape. Values never hold a line break, so replacing CRLF is safe."""
    header = list(frame.columns)
    if shape == "powerschool":
        yield BOM + csv_header(header)
        yield from iter_csv(frame, header, with_header=False)
        return
    yield csv_header(header).replace(b"\r\n", b"\n")
    for piece in iter_csv(frame, header, with_header=False):
        yield piece.replace(b"\r\n", b"\n")


def _sql_type(column: str) -> str:
    return "INTEGER" if column in INTEGER_COLUMNS else "TEXT"


def _sql_values(values: pd.Series) -> list:
    """A column as Python values: ints (None for blank) for integer columns, else text."""
    array = pa.array(values.array, type=_TEXT)
    if values.name in INTEGER_COLUMNS:
        blank = pc.equal(array, "")
        array = pc.if_else(blank, pa.scalar(None, _TEXT), array).cast(pa.int64())
    return array.to_pylist()
