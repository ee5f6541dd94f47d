"""Builders of small sources for the stage and rule tests: rows as dicts, CSV bytes, ``Source``
objects, a clean small district, and helpers to pick findings.

Line numbers follow the reader: the header is line 1, ``rows[i]`` is line ``i + 2``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from datetime import date

from naviance_pipeline.oneroster.findings import ERROR, Finding
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.source import Source
from naviance_pipeline.oneroster.spec import DEMOGRAPHICS, ORGS, USERS, FileSpec
from naviance_pipeline.oneroster.stages import StageResult, build_orgs, build_users

AS_OF = date(2026, 11, 30)  # school year end E = 2027
OPTIONS = Options(as_of=AS_OF)
STAFF_OPTIONS = Options(as_of=AS_OF, include_staff=True)

Row = Mapping[str, str]


def line(index: int) -> int:
    """The source line of data row ``index`` (0-based)."""
    return index + 2


def csv_bytes(header: list[str], rows: Iterable[Row]) -> bytes:
    """RFC 4180 CSV with CRLF; a row's missing columns are blank."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([row.get(c, "") for c in header] for row in rows)
    return out.getvalue().encode("utf-8")


def file_bytes(spec: FileSpec, rows: Iterable[Row], header: list[str] | None = None) -> bytes:
    """The spec header (or ``header``) plus any extra column the rows use, then the rows."""
    rows = list(rows)
    header = list(header or spec.header)
    for row in rows:
        header += [c for c in row if c not in header]
    return csv_bytes(header, rows)


def org(sid: str, type: str = "school", parent: str = "", **extra: str) -> dict[str, str]:
    return {
        "sourcedId": sid,
        "name": f"Org {sid}",
        "type": type,
        "parentSourcedId": parent,
        **extra,
    }


def student(sid: str, orgs: str = "s1", grades: str = "09", **extra: str) -> dict[str, str]:
    return person(sid, "student", orgs, grades=grades, **extra)


def person(sid: str, role: str, orgs: str = "s1", **extra: str) -> dict[str, str]:
    row = {
        "sourcedId": sid,
        "enabledUser": "true",
        "orgSourcedIds": orgs,
        "role": role,
        "username": f"user-{sid}",
        "givenName": "Given",
        "familyName": "Family",
    }
    return {**row, **extra}


def demo(sid: str, **extra: str) -> dict[str, str]:
    return {"sourcedId": sid, "birthDate": "2011-05-04", "sex": "female", **extra}


def source(
    orgs: list[Row] | bytes | None = None,
    users: list[Row] | bytes | None = None,
    demographics: list[Row] | bytes | None = None,
) -> Source:
    """A source holding the given files (a list of rows, raw bytes, or None for absent)."""
    files = {}
    for spec, rows in ((ORGS, orgs), (USERS, users), (DEMOGRAPHICS, demographics)):
        if rows is not None:
            files[spec.name] = rows if isinstance(rows, bytes) else file_bytes(spec, rows)
    return Source(url="mem", files=files, entries=sorted(files), findings=[])


def district_orgs() -> list[dict[str, str]]:
    """A district and three schools."""
    return [org("d1", "district"), *(org(f"s{k}", "school", "d1") for k in (1, 2, 3))]


def clean_district(*, staff: bool = True) -> tuple[list[dict], list[dict], list[dict]]:
    """(orgs, users, demographics) of a clean small district: 3 schools, 21 students over
    grades KG..12 (one disabled), a teacher per school and a district administrator (with
    ``metadata.title``), one demographics row per student."""
    grades = ["KG", *(f"{g:02d}" for g in range(1, 13))]
    students = [
        student(
            f"st{i:02d}",
            orgs=f"s{i % 3 + 1}",
            grades=grades[i % 13],
            enabledUser="false" if i == 7 else "true",
            email=f"st{i:02d}@school.example.org",
        )
        for i in range(21)
    ]
    people = [
        person(f"t{k}", "teacher", f"s{k}", **{"metadata.title": "Teacher"}) for k in (1, 2, 3)
    ]
    people.append(person("a1", "administrator", "d1", **{"metadata.title": "Superintendent"}))
    users = [*students, *people] if staff else students
    demographics = [demo(s["sourcedId"], white="true") for s in students]
    return district_orgs(), users, demographics


# ---- picking findings -------------------------------------------------------------------------


def of_rule(findings: Iterable[Finding], rule: str) -> list[Finding]:
    return [f for f in findings if f.rule == rule]


def one(findings: Iterable[Finding], rule: str, **expected: object) -> Finding:
    """The single finding of ``rule``, asserting the ``expected`` fields (``sourced_id`` for
    ``sourcedId``)."""
    found = of_rule(findings, rule)
    assert len(found) == 1, f"expected one {rule}, got {found}"
    f = found[0]
    for key, value in expected.items():
        attr = "sourcedId" if key == "sourced_id" else key
        assert getattr(f, attr) == value, f"{rule}.{attr} = {getattr(f, attr)!r}, not {value!r}"
    return f


def errors(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == ERROR]


def orgs_stage(src: Source, options: Options = OPTIONS) -> StageResult:
    """The orgs stage as the pipeline runs it: after the users stage, on the users it wrote."""
    return build_orgs(src, build_users(src, options).frame, options)
