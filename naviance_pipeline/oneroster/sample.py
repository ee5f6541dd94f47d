"""A synthetic ClassLink-style OneRoster v1.1 CSV export: the bundled demo district and the
scale test (a million students in seconds).

It looks like what ClassLink Roster Server hands a district: a bulk manifest, a district with
elementary, middle and high schools (NCES-looking identifiers), students KG–12 with two-digit
CEDS grades and zero-padded sourcedIds of one width, teachers and administrators with
``metadata.title``, two guardians (a role Naviance does not take, to show filtering), the class
files a real export carries (academicSessions, courses, classes, enrollments; the pipeline
ignores them) and one demographics row per student. It validates with no error findings.

Every random value is drawn up front from one seeded numpy generator, in a fixed order, and
turned into text with pyarrow.compute a chunk of students at a time; nothing loops over rows in
Python. The data describe school year 2026–27 (:data:`SCHOOL_YEAR_END`): birth dates fit the
grades of that year, and class years are left to the grades (``metadata.yearOfGraduation`` is
there, as ClassLink exports it, but blank). A supplied year would drift out of the allowed
window (spec section 8) as the sample ages; a grade-derived one never does.
"""

from __future__ import annotations

import math
import posixpath
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from naviance_pipeline.oneroster.kernels.arrays import arrow
from naviance_pipeline.oneroster.kernels.lists import split_list
from naviance_pipeline.oneroster.package import write_zip
from naviance_pipeline.oneroster.spec import (
    CEDS_GRADES,
    DEMOGRAPHICS,
    MANIFEST_HEADER,
    MANIFEST_ROWS,
    ORGS,
    RACE_FLAGS,
    TITLE_COLUMN,
    TWO_OR_MORE,
    USERS,
)
from naviance_pipeline.oneroster.v12 import ONEROSTER_V12_FILES, ROLES, USERS_V12, V11, V12
from naviance_pipeline.oneroster.writer import csv_header, iter_csv

SCHOOL_YEAR_END = 2027  # the sample describes school year 2026-27
EXPORT_DATE = date(2026, 9, 15)  # ZIP entry timestamps: fixed, so a seed gives identical bytes
CHUNK_STUDENTS = 100_000
FORMATS = ("zip", "folder")
VERSIONS = (V11, V12)

# ClassLink's extension columns on users.csv (the graduation-year name is ClassLink's).
YEAR_OF_GRADUATION = "metadata.yearOfGraduation"  # one of spec.CLASS_YEAR_SOURCES
USERS_HEADER = [*USERS.header, YEAR_OF_GRADUATION, TITLE_COLUMN]
USERS_V12_HEADER = [*USERS_V12.header, YEAR_OF_GRADUATION, TITLE_COLUMN]
# OneRoster 1.2 has no "administrator": a district's is districtAdministrator, a school's
# siteAdministrator (oneroster.v12 reads both as 1.1's administrator).
V12_ADMIN_ROLES = ("districtAdministrator", "siteAdministrator")

# OneRoster v1.1 headers of the files the pipeline ignores (spec.py holds the package's files).
ACADEMIC_SESSIONS_HEADER = [
    "sourcedId", "status", "dateLastModified", "title", "type", "startDate", "endDate",
    "parentSourcedId", "schoolYear",
]  # fmt: skip
COURSES_HEADER = [
    "sourcedId", "status", "dateLastModified", "schoolYearSourcedId", "title", "courseCode",
    "grades", "orgSourcedId", "subjects", "subjectCodes",
]  # fmt: skip
CLASSES_HEADER = [
    "sourcedId", "status", "dateLastModified", "title", "grades", "courseSourcedId", "classCode",
    "classType", "location", "schoolSourcedId", "termSourcedIds", "subjects", "subjectCodes",
    "periods",
]  # fmt: skip
ENROLLMENTS_HEADER = [
    "sourcedId", "status", "dateLastModified", "classSourcedId", "schoolSourcedId",
    "userSourcedId", "role", "primary", "beginDate", "endDate",
]  # fmt: skip
# Export order: manifest first, then by name. Every file here is "bulk" in the manifest.
EXPORT_FILES = (
    "manifest.csv", "academicSessions.csv", "classes.csv", "courses.csv", "demographics.csv",
    "enrollments.csv", "orgs.csv", "users.csv",
)  # fmt: skip

DISTRICT_NAME = "Lakeview Unified School District"
LEA_ID = "0621930"  # NCES district ids: 7 digits, state FIPS (06) first; a school's adds 5
STATE = "CA"
SOURCE = {"source.systemName": "ClassLink", "source.systemCode": "lakeviewusd"}
STAFF_DOMAIN = "lakeviewusd.example.org"
STUDENT_DOMAIN = "students.lakeviewusd.example.org"
GUARDIAN_DOMAIN = "example.com"
YEAR_ID = f"{SCHOOL_YEAR_END - 1}-{SCHOOL_YEAR_END}"
FIRST_DAY, LAST_DAY = f"{SCHOOL_YEAR_END - 1}-08-19", f"{SCHOOL_YEAR_END}-06-04"

# Names: no commas, quotes, periods or brackets (USR-NAME-CHARS); accents and hyphens are fine.
GIVEN_NAMES = (
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Mateo", "Sofía", "Santiago", "Isabella", "José",
    "Zoë", "Chloé", "Aaliyah", "Jayden", "Mia", "Lucas", "Amelia", "Ethan", "Harper", "Elijah",
    "Camila", "Benjamin", "Valentina", "Diego", "Aisha", "Omar", "Priya", "Arjun", "Mei", "Minh",
    "Hana", "Kenji", "Renée", "François", "Björn", "Ana-Sofía", "Jean-Luc", "Maya", "Gabriel",
    "Nora", "Imani", "Ximena", "Declan", "Leilani", "Thiago", "Yusuf", "Ingrid", "Tomás",
)  # fmt: skip
FAMILY_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "García", "Miller", "Davis", "Rodríguez",
    "Martínez", "Hernández", "López", "González", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Pérez", "Thompson", "White", "Harris", "Sánchez",
    "Clark", "Ramírez", "Lewis", "Robinson", "Nguyễn", "Tran", "Kim", "Patel", "Singh", "Chen",
    "Wang", "Müller", "Núñez", "Peña", "Okafor", "Adeyemi", "Kowalski", "Smith-Jones",
    "García-López", "Yamamoto", "Haddad", "Begay",
)  # fmt: skip
PLACES = (
    "Lakeview", "Cedar Ridge", "Maple Grove", "Riverside", "Oak Hollow", "Sierra Vista",
    "Willow Creek", "Pine Valley", "Hillcrest", "Bayside", "Mission", "Sunnyslope", "Eastgate",
    "Westfield", "Northwood", "Southpoint", "Canyon", "Meadowbrook", "Harbor", "Golden Hills",
    "Del Mar", "Los Robles", "San Lucas", "Vista Verde",
)  # fmt: skip
BIRTH_CITIES = ("Sacramento", "Fresno", "Los Angeles", "San Diego", "Oakland", "San José")
BIRTH_STATES = (STATE, STATE, STATE, STATE, "TX", "NY", "AZ", "WA", "NV", "IL")
BIRTH_COUNTRIES = ("MX", "GT", "SV", "VN", "PH", "IN", "CN", "KR")
RACE_SHARES = (0.02, 0.12, 0.10, 0.01, 0.60)  # in RACE_FLAGS order, drawn independently
TEACHER_TITLES = (
    "Teacher", "Mathematics Teacher", "English Teacher", "Science Teacher",
    "Social Studies Teacher", "Music Teacher", "Special Education Teacher",
    "Physical Education Teacher",
)  # fmt: skip
SCHOOL_ADMIN_TITLES = ("Principal", "Assistant Principal", "School Counselor")
DISTRICT_ADMIN_TITLES = (
    "Superintendent", "Director of Technology", "Director of College and Career Readiness",
)  # fmt: skip
# Six periods a day; the subjects (name, code) depend on the grade band.
SUBJECTS = {
    "elementary": (
        ("Homeroom", "HR"), ("Reading", "READ"), ("Mathematics", "MATH"), ("Science", "SCI"),
        ("Art", "ART"), ("Physical Education", "PE"),
    ),
    "middle": (
        ("English Language Arts", "ELA"), ("Mathematics", "MATH"), ("Science", "SCI"),
        ("Social Studies", "SS"), ("Spanish", "SPAN"), ("Physical Education", "PE"),
    ),
    "high": (
        ("English", "ENG"), ("Mathematics", "MATH"), ("Science", "SCI"), ("History", "HIST"),
        ("World Language", "WL"), ("Physical Education", "PE"),
    ),
}  # fmt: skip
PERIODS = 6
CLASS_SIZE = 25
STUDENTS_PER_TEACHER = 18
GUARDIANS = 2
GRADES = CEDS_GRADES[4:17]  # KG, 01 ... 12: grade number g is GRADES[g]
N_GRADES = len(GRADES)

_TEXT = pa.large_string()


def write_sample_district(
    out: str,
    *,
    students: int = 500,
    schools: int = 4,
    seed: int = 7,
    fmt: str = "zip",
    progress: Callable[[int, int], None] | None = None,
    version: str = V11,
) -> str:
    """Write a realistic synthetic ClassLink-style OneRoster v1.1 CSV export to `out` (a ZIP
    file path when fmt="zip", a folder when fmt="folder"; local paths or fsspec URLs); return
    the path. Deterministic for a seed: the same arguments give identical bytes.

    ``version`` "1.2": the same people as a OneRoster 1.2 export (roles.csv holds each user's
    role and orgs, the first org primary; users.csv has 1.2's header; the 1.2 manifest), whose
    package is byte for byte the 1.1 export's.

    ``progress(done, total)`` is called after every chunk written, counting data rows of all
    files; the last call is ``(total, total)``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, not {fmt!r}")
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}, not {version!r}")
    district = draw_district(students, schools, seed)
    files = district.files() if version == V11 else district.files_v12()
    counter = _Progress(sum(rows for _, _, _, rows in files), progress)
    entries = [(name, counter.track(frames, header)) for name, frames, header, _ in files]
    write_export(out, entries, fmt)
    return out


def write_export(out: str, entries: Iterable[tuple[str, Iterable[bytes]]], fmt: str) -> None:
    """Write ``(file name, byte pieces)`` entries as a ZIP (fixed timestamps: same bytes for
    the same entries) or as files of a folder, at a local path or fsspec URL."""
    fs, path = fsspec.core.url_to_fs(out)
    if fmt == "zip":
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
        with fs.open(path, "wb") as f:
            write_zip(f, entries, EXPORT_DATE)
        return
    fs.makedirs(path, exist_ok=True)
    for name, pieces in entries:
        with fs.open(f"{path}/{name}", "wb") as f:
            for piece in pieces:
                f.write(piece)


def draw_district(students: int, schools: int, seed: int) -> District:
    """Every draw of the sample district for these arguments: the same people whatever shape
    they are written in (this module's ClassLink export, ``sis/sample_export.py``'s SIS
    exports)."""
    if students < 1 or schools < 1:
        raise ValueError("a sample district needs at least one student and one school")
    return District.generate(students, schools, np.random.default_rng(seed))


# ---- the draws ---------------------------------------------------------------------------------


@dataclass
class Schools:
    ids: pa.Array
    names: list[str]
    nces: list[str]
    low: np.ndarray  # lowest grade number served
    high: np.ndarray  # highest grade number served


@dataclass
class People:
    """Staff or guardians: ids, name indices, orgSourcedIds text and titles."""

    role: str
    ids: pa.Array
    given: np.ndarray  # indices into GIVEN_NAMES
    family: np.ndarray  # indices into FAMILY_NAMES
    orgs: pa.Array
    title: pa.Array | None = None


@dataclass
class Students:
    """One value per student in every array."""

    ids: pa.Array
    state_ids: pa.Array
    grade: np.ndarray  # grade number, KG = 0
    school: np.ndarray  # index into the schools
    given: np.ndarray
    middle: np.ndarray  # index into GIVEN_NAMES, -1 for none
    family: np.ndarray
    enabled: np.ndarray
    born: np.ndarray  # datetime64[D]
    sex: np.ndarray
    races: np.ndarray  # (len(RACE_FLAGS), students)
    hispanic: np.ndarray
    us_born: np.ndarray
    birth_state: np.ndarray
    birth_country: np.ndarray
    birth_city: np.ndarray
    resident: np.ndarray


def _draw_students(ids: pa.Array, schools: Schools, rng: np.random.Generator) -> Students:
    n = len(ids)
    grade = rng.integers(0, N_GRADES, n)
    # Age 5 on 1 September 2026 in KG, a year older per grade; 2% were held back a year.
    earliest = np.array(
        [f"{SCHOOL_YEAR_END - 7 - g}-09-02" for g in range(N_GRADES)], dtype="datetime64[D]"
    )
    days = rng.integers(0, 365, n) - 365 * (rng.random(n) < 0.02)
    return Students(
        ids=ids,
        state_ids=number_text(6_000_000_000 + np.cumsum(rng.integers(1, 40, n))),
        grade=grade,
        school=_assign_schools(grade, schools, rng),
        given=rng.integers(0, len(GIVEN_NAMES), n),
        middle=np.where(rng.random(n) < 0.6, rng.integers(0, len(GIVEN_NAMES), n), -1),
        family=rng.integers(0, len(FAMILY_NAMES), n),
        enabled=rng.random(n) >= 0.015,
        born=earliest[grade] + days.astype("timedelta64[D]"),
        sex=rng.integers(0, 2, n),
        races=rng.random((len(RACE_FLAGS), n)) < np.array(RACE_SHARES)[:, None],
        hispanic=rng.random(n) < 0.35,
        us_born=rng.random(n) < 0.9,
        birth_state=rng.integers(0, len(BIRTH_STATES), n),
        birth_country=rng.integers(0, len(BIRTH_COUNTRIES), n),
        birth_city=rng.integers(0, len(BIRTH_CITIES), n),
        resident=rng.random(n) < 0.95,
    )


def _plan_schools(count: int) -> tuple[Schools, str]:
    """Grade bands: one K-12 school; a K-8 and a high school; or about 3:1:1 elementary,
    middle and high. Org sourcedIds share one width."""
    if count == 1:
        bands = [(0, 12, "Academy")]
    elif count == 2:
        bands = [(0, 8, "K-8 School"), (9, 12, "High School")]
    else:
        high = middle = max(1, round(count / 5))
        bands = (
            [(0, 5, "Elementary School")] * (count - high - middle)
            + [(6, 8, "Middle School")] * middle
            + [(9, 12, "High School")] * high
        )
    names = [
        f"{PLACES[i % len(PLACES)]} {label}"
        + (f" {i // len(PLACES) + 1}" if i >= len(PLACES) else "")
        for i, (_, _, label) in enumerate(bands)
    ]
    width = max(4, len(str(100 + count)))
    schools = Schools(
        ids=pad(np.arange(count) + 100, width),
        names=names,
        nces=[f"{LEA_ID}{i + 1:05d}" for i in range(count)],
        low=np.array([low for low, _, _ in bands]),
        high=np.array([high for _, high, _ in bands]),
    )
    return schools, f"{1:0{width}d}"


def _assign_schools(grade: np.ndarray, schools: Schools, rng: np.random.Generator) -> np.ndarray:
    """For each student, a school drawn uniformly among those serving the student's grade."""
    school = np.zeros(len(grade), dtype=np.int64)
    draw = rng.random(len(grade))
    for g in range(N_GRADES):  # over grades, not rows
        serving = np.flatnonzero((schools.low <= g) & (g <= schools.high))
        rows = grade == g
        school[rows] = serving[(draw[rows] * len(serving)).astype(np.int64)]
    return school


def _user_ids(count: int, rng: np.random.Generator) -> pa.Array:
    """Increasing numeric ids with gaps, zero-padded to one width (at least 8)."""
    numbers = 100_000 + np.cumsum(rng.integers(1, 4, count))
    return pad(numbers, max(8, len(str(int(numbers[-1])))))


def _teachers(
    ids: pa.Array, school: np.ndarray, schools: Schools, rng: np.random.Generator
) -> People:
    count = len(ids)
    orgs = schools.ids.take(school)
    if len(schools.names) > 1:  # every 25th teaches at two schools: "a,b", which gets quoted
        second = schools.ids.take((school + 1) % len(schools.names))
        orgs = pc.if_else(pa.array(np.arange(count) % 25 == 1), join(orgs, ",", second), orgs)
    return People(
        role="teacher",
        ids=ids,
        given=rng.integers(0, len(GIVEN_NAMES), count),
        family=rng.integers(0, len(FAMILY_NAMES), count),
        orgs=orgs,
        title=pick(TEACHER_TITLES, rng.integers(0, len(TEACHER_TITLES), count)),
    )


def _admins(ids: pa.Array, schools: Schools, district_id: str, rng: np.random.Generator) -> People:
    """Each school's principal, assistant principal and counselor, then district staff."""
    school_count, count = len(schools.names), len(ids)
    orgs = np.repeat(np.arange(school_count), len(SCHOOL_ADMIN_TITLES))
    return People(
        role="administrator",
        ids=ids,
        given=rng.integers(0, len(GIVEN_NAMES), count),
        family=rng.integers(0, len(FAMILY_NAMES), count),
        orgs=pa.concat_arrays(
            [schools.ids.take(orgs), repeat(district_id, len(DISTRICT_ADMIN_TITLES))]
        ),
        title=pa.array([*SCHOOL_ADMIN_TITLES * school_count, *DISTRICT_ADMIN_TITLES], _TEXT),
    )


@dataclass
class _Classes:
    """Courses (school × grade × period) and their sections (classes), one entry per class."""

    ids: pa.Array  # class sourcedIds
    school: np.ndarray
    grade: np.ndarray
    period: np.ndarray
    section: np.ndarray  # 1-based within its course
    teacher: np.ndarray  # index into the teachers
    first_class: np.ndarray  # [school * N_GRADES + grade, period] -> the course's first class
    sections: np.ndarray  # [school * N_GRADES + grade] -> sections per course
    schools: Schools

    @classmethod
    def plan(
        cls,
        students: Students,
        schools: Schools,
        teacher_school: np.ndarray,
        rng: np.random.Generator,
    ) -> _Classes:
        combos = len(schools.names) * N_GRADES
        counts = np.bincount(students.school * N_GRADES + students.grade, minlength=combos)
        served = np.flatnonzero(counts)  # a course per period for every grade a school has
        sections = np.zeros(combos, dtype=np.int64)
        sections[served] = -(-counts[served] // CLASS_SIZE)
        course_combo = np.repeat(served, PERIODS)
        course_period = np.tile(np.arange(PERIODS), len(served))
        course_sections = sections[course_combo]
        starts = np.cumsum(course_sections) - course_sections
        first_class = np.zeros((combos, PERIODS), dtype=np.int64)
        first_class[course_combo, course_period] = starts
        course = np.repeat(np.arange(len(course_combo)), course_sections)
        section = np.arange(len(course)) - starts[course] + 1
        school, grade = np.divmod(course_combo[course], N_GRADES)
        period = course_period[course]
        ids = join(_course_ids(schools, school, grade, period), "-", pad(section, 2))
        teacher = _pick_teachers(school, teacher_school, rng)
        return cls(
            ids, school, grade, period, section, teacher, first_class, sections, schools
        )  # fmt: skip

    def seat(self, students: Students, rng: np.random.Generator) -> np.ndarray:
        """Each student's class for each period: a random section of their course."""
        combo = students.school * N_GRADES + students.grade
        offset = rng.random((len(combo), PERIODS)) * self.sections[combo][:, None]
        return self.first_class[combo] + offset.astype(np.int64)

    def classes_frame(self) -> pd.DataFrame:
        subject = self.grade * PERIODS + self.period
        course_code = join(pick(SUBJECT_CODES, subject), pick(GRADES, self.grade))
        return text_frame(
            {
                "sourcedId": self.ids,
                "title": join(
                    _course_titles(self.grade, self.period),
                    " - Section ",
                    number_text(self.section),
                ),
                "grades": pick(GRADES, self.grade),
                "courseSourcedId": _course_ids(self.schools, self.school, self.grade, self.period),
                "classCode": join(course_code, "-", pad(self.section, 2)),
                "classType": pc.if_else(
                    pc.equal(pick(SUBJECT_CODES, subject), "HR"), "homeroom", "scheduled"
                ),
                "location": join("Room ", number_text(100 + 10 * self.period + self.section)),
                "schoolSourcedId": self.schools.ids.take(self.school),
                "termSourcedIds": repeat(YEAR_ID, len(self.school)),
                "subjects": pick(SUBJECT_NAMES, subject),
                "periods": number_text(self.period + 1),
            },
            CLASSES_HEADER,
        )

    def courses_frame(self) -> pd.DataFrame:
        first = self.section == 1  # one class per course
        school, grade, period = self.school[first], self.grade[first], self.period[first]
        subject = grade * PERIODS + period
        return text_frame(
            {
                "sourcedId": _course_ids(self.schools, school, grade, period),
                "schoolYearSourcedId": repeat(YEAR_ID, len(school)),
                "title": _course_titles(grade, period),
                "courseCode": join(pick(SUBJECT_CODES, subject), pick(GRADES, grade)),
                "grades": pick(GRADES, grade),
                "orgSourcedId": self.schools.ids.take(school),
                "subjects": pick(SUBJECT_NAMES, subject),
            },
            COURSES_HEADER,
        )


def _band(grade: int) -> str:
    return "elementary" if grade <= 5 else "middle" if grade <= 8 else "high"


# Subject of grade g, period p at index g * PERIODS + p.
SUBJECT_NAMES = tuple(name for g in range(N_GRADES) for name, _ in SUBJECTS[_band(g)])
SUBJECT_CODES = tuple(code for g in range(N_GRADES) for _, code in SUBJECTS[_band(g)])


def _course_ids(
    schools: Schools, school: np.ndarray, grade: np.ndarray, period: np.ndarray
) -> pa.Array:
    subject = pick(SUBJECT_CODES, grade * PERIODS + period)
    return join(schools.ids.take(school), "-", pick(GRADES, grade), "-", subject)


def _course_titles(grade: np.ndarray, period: np.ndarray) -> pa.Array:
    return join(pick(SUBJECT_NAMES, grade * PERIODS + period), " ", pick(GRADES, grade))


def _pick_teachers(
    class_school: np.ndarray, teacher_school: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """For each class, a random teacher of its school (every school has one)."""
    order = np.argsort(teacher_school, kind="stable")
    count = np.bincount(teacher_school)
    first = np.cumsum(count) - count
    pick = (rng.random(len(class_school)) * count[class_school]).astype(np.int64)
    return order[first[class_school] + pick]


@dataclass
class District:
    """All draws of a sample district; the frame methods only turn arrays into text."""

    district_id: str
    schools: Schools
    students: Students
    staff: tuple[People, People, People]  # teachers, administrators, guardians
    guardian_of: np.ndarray  # for each guardian, the student position of their child
    classes: _Classes
    seats: np.ndarray  # [student, period] -> class

    @classmethod
    def generate(cls, n: int, school_count: int, rng: np.random.Generator) -> District:
        schools, district_id = _plan_schools(school_count)
        teacher_count = max(school_count, math.ceil(n / STUDENTS_PER_TEACHER))
        admin_count = school_count * len(SCHOOL_ADMIN_TITLES) + len(DISTRICT_ADMIN_TITLES)
        guardian_count = min(GUARDIANS, n)
        ids = _user_ids(n + teacher_count + admin_count + guardian_count, rng)
        students = _draw_students(ids.slice(0, n), schools, rng)
        # Every school has a teacher; the others are spread like the students.
        spread = students.school[rng.integers(0, n, teacher_count - school_count)]
        teacher_school = np.concatenate([np.arange(school_count), spread])
        teachers = _teachers(ids.slice(n, teacher_count), teacher_school, schools, rng)
        admins = _admins(ids.slice(n + teacher_count, admin_count), schools, district_id, rng)
        guardian_of = np.sort(rng.choice(n, guardian_count, replace=False))
        guardians = People(
            role="guardian",
            ids=ids.slice(n + teacher_count + admin_count, guardian_count),
            given=rng.integers(0, len(GIVEN_NAMES), guardian_count),
            family=students.family[guardian_of],
            orgs=schools.ids.take(students.school[guardian_of]),
        )
        classes = _Classes.plan(students, schools, teacher_school, rng)
        seats = classes.seat(students, rng)
        staff = (teachers, admins, guardians)
        return cls(district_id, schools, students, staff, guardian_of, classes, seats)

    def files(self) -> list[tuple[str, Iterable[pd.DataFrame], list[str], int]]:
        """(name, frames, header, data rows) of every file, in EXPORT_FILES order."""
        n, classes = len(self.students.ids), len(self.classes.ids)
        people = sum(len(p.ids) for p in self.staff)
        courses = int(np.count_nonzero(self.classes.section == 1))
        files = {
            "manifest.csv": ([self._manifest()], list(MANIFEST_HEADER), len(MANIFEST_ROWS)),
            "academicSessions.csv": ([_sessions()], ACADEMIC_SESSIONS_HEADER, 3),
            "classes.csv": ([self.classes.classes_frame()], CLASSES_HEADER, classes),
            "courses.csv": ([self.classes.courses_frame()], COURSES_HEADER, courses),
            "demographics.csv": (self._demographics(), DEMOGRAPHICS.header, n),
            "enrollments.csv": (self._enrollments(), ENROLLMENTS_HEADER, n * PERIODS + classes),
            "orgs.csv": ([self._orgs()], ORGS.header, len(self.schools.names) + 1),
            "users.csv": (self._users(), USERS_HEADER, n + people),
        }
        return [(name, *files[name]) for name in EXPORT_FILES]

    def files_v12(self) -> list[tuple[str, Iterable[pd.DataFrame], list[str], int]]:
        """``files`` as a OneRoster 1.2 export: users.csv split into 1.2's users.csv and
        roles.csv (one row per org a user has, the first primary), the 1.2 manifest."""
        files = {name: (frames, header, rows) for name, frames, header, rows in self.files()}
        users = files["users.csv"][2]
        staff_orgs = sum(len(split_list(p.orgs)[0]) for p in self.staff)
        roles = len(self.students.ids) + staff_orgs
        props = [f"file.{name.removesuffix('.csv')}" for name in ONEROSTER_V12_FILES[1:]]
        names = {*files, "roles.csv"}
        manifest = text_frame(
            {
                "propertyName": ["manifest.version", "oneroster.version", *props, *SOURCE],
                "value": [
                    "1.0",
                    V12,
                    *("bulk" if f"{p[5:]}.csv" in names else "absent" for p in props),
                    *SOURCE.values(),
                ],
            }
        )
        files.update(
            {
                "manifest.csv": ([manifest], list(MANIFEST_HEADER), len(manifest)),
                "roles.csv": ((self._roles(f) for f in self._users()), ROLES.header, roles),
                "users.csv": ((_users_v12(f) for f in self._users()), USERS_V12_HEADER, users),
            }
        )
        return [(name, *files[name]) for name in sorted(names, key=_export_order)]

    def _roles(self, users: pd.DataFrame) -> pd.DataFrame:
        """roles.csv rows of a users.csv (1.1) frame: one per org, the first primary."""
        orgs, rows = split_list(users["orgSourcedIds"])
        user = arrow(users["sourcedId"]).take(pa.array(rows))
        role = arrow(users["role"]).take(pa.array(rows))
        first = np.concatenate(([True], rows[1:] != rows[:-1])) if len(rows) else rows
        admin = pc.if_else(pc.equal(orgs, self.district_id), *V12_ADMIN_ROLES)
        return text_frame(
            {
                "sourcedId": join("R", user, "-", orgs),
                "userSourcedId": user,
                "roleType": pc.if_else(pa.array(first, pa.bool_()), "primary", "secondary"),
                "role": pc.if_else(pc.equal(role, "administrator"), admin, role),
                "orgSourcedId": orgs,
            },
            ROLES.header,
        )

    def _manifest(self) -> pd.DataFrame:
        """The package manifest's properties, with this export's files and source."""

        def value(prop: str, default: str | None) -> str:
            if prop.startswith("file."):
                return "bulk" if f"{prop.removeprefix('file.')}.csv" in EXPORT_FILES else "absent"
            return SOURCE[prop] if default is None else default

        return text_frame(
            {
                "propertyName": [prop for prop, _ in MANIFEST_ROWS],
                "value": [value(prop, default) for prop, default in MANIFEST_ROWS],
            }
        )

    def _orgs(self) -> pd.DataFrame:
        s, count = self.schools, len(self.schools.names)
        return text_frame(
            {
                "sourcedId": [self.district_id, *s.ids.to_pylist()],
                "name": [DISTRICT_NAME, *s.names],
                "type": ["district", *["school"] * count],
                "identifier": [LEA_ID, *s.nces],
                "parentSourcedId": ["", *[self.district_id] * count],
            },
            ORGS.header,
        )

    def _users(self) -> Iterator[pd.DataFrame]:
        s = self.students
        guardians = self.staff[2]
        for lo, hi in chunks(len(s.ids)):
            part = slice(lo, hi)
            state_ids = s.state_ids.slice(lo, hi - lo)
            # The guardians' children name their guardian, as ClassLink exports agents.
            agent_of = np.full(hi - lo, -1)
            inside = (self.guardian_of >= lo) & (self.guardian_of < hi)
            agent_of[self.guardian_of[inside] - lo] = np.flatnonzero(inside)
            yield text_frame(
                {
                    **person_columns(
                        s.ids.slice(lo, hi - lo), s.given[part], s.family[part], STUDENT_DOMAIN
                    ),
                    "enabledUser": _flags(s.enabled[part]),
                    "orgSourcedIds": self.schools.ids.take(s.school[part]),
                    "role": repeat("student", hi - lo),
                    "userIds": join("{StateID:", state_ids, "}"),
                    "middleName": optional(GIVEN_NAMES, s.middle[part]),
                    "identifier": state_ids,
                    "agentSourcedIds": optional(guardians.ids.to_pylist(), agent_of),
                    "grades": pick(GRADES, s.grade[part]),
                },
                USERS_HEADER,
            )
        yield pd.concat([self._people_frame(p) for p in self.staff], ignore_index=True)

    def _people_frame(self, people: People) -> pd.DataFrame:
        count = len(people.ids)
        guardian = people.role == "guardian"
        domain = GUARDIAN_DOMAIN if guardian else STAFF_DOMAIN
        columns = person_columns(people.ids, people.given, people.family, domain)
        if guardian:
            extra = {
                "agentSourcedIds": self.students.ids.take(self.guardian_of),
                "phone": join("555-01", pad(np.arange(count) + 10, 2)),
            }
        else:
            extra = {"identifier": join("E", people.ids)}  # employee number
        return text_frame(
            {
                **columns,
                **extra,
                "enabledUser": repeat("true", count),
                "orgSourcedIds": people.orgs,
                "role": repeat(people.role, count),
                TITLE_COLUMN: people.title if people.title is not None else repeat("", count),
            },
            USERS_HEADER,
        )

    def _demographics(self) -> Iterator[pd.DataFrame]:
        s = self.students
        for lo, hi in chunks(len(s.ids)):
            part = slice(lo, hi)
            races = s.races[:, part]
            us_born = pa.array(s.us_born[part])
            birth_state = np.array(BIRTH_STATES)[s.birth_state[part]]
            yield text_frame(
                {
                    "sourcedId": s.ids.slice(lo, hi - lo),
                    "birthDate": pa.array(s.born[part]).cast(pa.string()).cast(_TEXT),
                    "sex": pick(("male", "female"), s.sex[part]),
                    **{name: _flags(races[i]) for i, name in enumerate(RACE_FLAGS)},
                    TWO_OR_MORE: _flags(races.sum(axis=0) >= 2),
                    "hispanicOrLatinoEthnicity": _flags(s.hispanic[part]),
                    "countryOfBirthCode": pc.if_else(
                        us_born, "US", pick(BIRTH_COUNTRIES, s.birth_country[part])
                    ),
                    "stateOfBirthAbbreviation": pc.if_else(
                        us_born, pa.array(birth_state, _TEXT), ""
                    ),
                    "cityOfBirth": pc.if_else(
                        pa.array(s.us_born[part] & (birth_state == STATE)),
                        pick(BIRTH_CITIES, s.birth_city[part]),
                        "",
                    ),
                    # CEDS residence status: 01652 resident, 01653 other attendance area.
                    "publicSchoolResidenceStatus": pick(("01653", "01652"), s.resident[part]),
                },
                DEMOGRAPHICS.header,
            )

    def _enrollments(self) -> Iterator[pd.DataFrame]:
        n, classes = len(self.students.ids), len(self.classes.ids)
        width = max(8, len(str(n * PERIODS + classes)))
        for lo, hi in chunks(n):
            yield self._enrollment_frame(
                np.arange(lo * PERIODS, hi * PERIODS), width, self.seats[lo:hi].ravel(),
                self.students.ids.take(np.repeat(np.arange(lo, hi), PERIODS)), "student",
            )  # fmt: skip
        yield self._enrollment_frame(
            np.arange(n * PERIODS, n * PERIODS + classes), width, np.arange(classes),
            self.staff[0].ids.take(self.classes.teacher), "teacher",
        )  # fmt: skip

    def _enrollment_frame(
        self, number: np.ndarray, width: int, cls: np.ndarray, users: pa.Array, role: str
    ) -> pd.DataFrame:
        count = len(number)
        return text_frame(
            {
                "sourcedId": pad(number + 1, width),
                "classSourcedId": self.classes.ids.take(cls),
                "schoolSourcedId": self.schools.ids.take(self.classes.school[cls]),
                "userSourcedId": users,
                "role": repeat(role, count),
                "primary": repeat("true" if role == "teacher" else "false", count),
                "beginDate": repeat(FIRST_DAY, count),
                "endDate": repeat(LAST_DAY, count),
            },
            ENROLLMENTS_HEADER,
        )


def _export_order(name: str) -> tuple[int, str]:
    return (name != "manifest.csv", name)


def _users_v12(users: pd.DataFrame) -> pd.DataFrame:
    """A users.csv (1.1) frame as 1.2's: no role or orgSourcedIds, the first org as
    primaryOrgSourcedId, the state id as userMasterIdentifier (neither is sent)."""
    columns = {c: arrow(users[c]) for c in users.columns if c in USERS_V12_HEADER}
    first = pc.list_element(pc.split_pattern(arrow(users["orgSourcedIds"]), ",", max_splits=1), 0)
    columns.update(primaryOrgSourcedId=first, userMasterIdentifier=arrow(users["identifier"]))
    return text_frame(columns, USERS_V12_HEADER)


def _sessions() -> pd.DataFrame:
    return text_frame(
        {
            "sourcedId": [YEAR_ID, f"{YEAR_ID}-S1", f"{YEAR_ID}-S2"],
            "title": [YEAR_ID, "Fall Semester", "Spring Semester"],
            "type": ["schoolYear", "semester", "semester"],
            "startDate": [FIRST_DAY, FIRST_DAY, f"{SCHOOL_YEAR_END}-01-15"],
            "endDate": [LAST_DAY, f"{SCHOOL_YEAR_END}-01-14", LAST_DAY],
            "parentSourcedId": ["", YEAR_ID, YEAR_ID],
            "schoolYear": [str(SCHOOL_YEAR_END)] * 3,
        },
        ACADEMIC_SESSIONS_HEADER,
    )


# ---- text (shared with the SIS export shapes of sis/sample_export.py) ---------------------------

# Login names: lower-case ASCII letters of the name (José -> jose, García-López -> garcialopez).
_LOGIN_INITIALS = tuple(
    "".join(c for c in unicodedata.normalize("NFKD", g).lower() if "a" <= c <= "z")[:1]
    for g in GIVEN_NAMES
)
_LOGIN_FAMILIES = tuple(
    "".join(c for c in unicodedata.normalize("NFKD", f).lower() if "a" <= c <= "z")
    for f in FAMILY_NAMES
)


def person_columns(
    ids: pa.Array, given: np.ndarray, family: np.ndarray, domain: str
) -> dict[str, pa.Array]:
    """sourcedId, names, username (first initial, family name and the numeric id: unique
    because the id is, e.g. jgarcia100123) and email."""
    username = join(
        pick(_LOGIN_INITIALS, given), pick(_LOGIN_FAMILIES, family), pc.utf8_ltrim(ids, "0")
    )
    return {
        "sourcedId": ids,
        "username": username,
        "givenName": pick(GIVEN_NAMES, given),
        "familyName": pick(FAMILY_NAMES, family),
        "email": join(username, "@", domain),
    }


def pick(values: Sequence[str], index: np.ndarray) -> pa.Array:
    """values[index] as text."""
    return pa.array(values, _TEXT).take(pa.array(np.asarray(index, dtype=np.int64)))


def optional(values: Sequence[str], index: np.ndarray) -> pa.Array:
    """values[index] as text, blank where index is -1."""
    return pc.if_else(pa.array(index >= 0), pick(values, np.maximum(index, 0)), "")


def _flags(mask: np.ndarray) -> pa.Array:
    return pick(("false", "true"), mask)


def repeat(value: str, count: int) -> pa.Array:
    """One value ``count`` times, built from its buffers (``pa.repeat`` is ten times slower)."""
    data = value.encode()
    offsets = np.arange(count + 1, dtype=np.int64) * len(data)
    return pa.LargeStringArray.from_buffers(
        count, pa.py_buffer(offsets), pa.py_buffer(data * count)
    )


def number_text(numbers: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(numbers, dtype=np.int64)).cast(_TEXT)


def pad(numbers: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(number_text(numbers), width=width, padding="0")


def join(*parts: pa.Array | str) -> pa.Array:
    """Element-wise concatenation of arrays and literal strings."""
    args = [pa.scalar(p, _TEXT) if isinstance(p, str) else p for p in parts]
    return pc.binary_join_element_wise(*args, pa.scalar("", _TEXT))


def text_frame(
    columns: dict[str, pa.Array | list[str]], header: Sequence[str] = ()
) -> pd.DataFrame:
    """A pyarrow-backed string frame in ``header`` order (default: as given); header columns
    not given are blank."""
    arrays = {k: pa.array(v, _TEXT) if isinstance(v, list) else v for k, v in columns.items()}
    count = len(next(iter(arrays.values())))
    return pd.DataFrame(
        {
            name: pd.arrays.ArrowStringArray(arrays.get(name, repeat("", count)).cast(_TEXT))
            for name in (header or arrays)
        }
    )


def chunks(n: int) -> Iterator[tuple[int, int]]:
    for lo in range(0, n, CHUNK_STUDENTS):
        yield lo, min(lo + CHUNK_STUDENTS, n)


class _Progress:
    """Turns a file's frames into CSV bytes and reports rows done after each frame."""

    def __init__(self, total: int, callback: Callable[[int, int], None] | None) -> None:
        self.total, self.done, self._callback = total, 0, callback

    def track(self, frames: Iterable[pd.DataFrame], header: list[str]) -> Iterator[bytes]:
        yield csv_header(header)
        for frame in frames:
            yield from iter_csv(frame, header, with_header=False)
            self.done += len(frame)
            if self._callback is not None:
                self._callback(self.done, self.total)
