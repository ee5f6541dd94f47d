"""Row selection and cross-file rules of users.csv: which users are written (role and status),
references to orgs and agents, passwords, staff titles and class years.

Single-file value rules (required names, enums, ids, grades, e-mail, …) are Pandera checks in
``schemas.py``; what needs the selection, the orgs frame or the whole file is here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from naviance_pipeline.oneroster import classyear
from naviance_pipeline.oneroster.classyear import ClassYears
from naviance_pipeline.oneroster.findings import Finding, finding
from naviance_pipeline.oneroster.kernels.arrays import arrow, is_in
from naviance_pipeline.oneroster.kernels.columns import column_at
from naviance_pipeline.oneroster.kernels.lists import Cells, split_distinct
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.rules import BY_CODE
from naviance_pipeline.oneroster.rules_common import (
    SOURCED_ID,
    many_findings,
    row_findings,
    summary_finding,
)
from naviance_pipeline.oneroster.spec import (
    CLASS_YEAR_COLUMN,
    ROLES_NOT_TAKEN,
    ROLES_STAFF,
    ROLES_V11,
    USERS,
)


@dataclass
class UserSelection:
    """Why each row of a users frame is or is not written (boolean arrays, frame order).

    The masks are exclusive in this order: a deleted row is only ``dropped_status``.
    """

    dropped_status: np.ndarray  # source status tobedeleted/inactive (BULK-STATUS)
    not_taken: np.ndarray  # aide, guardian, parent, proctor, relative (USR-ROLE-NAVIANCE)
    staff_excluded: np.ndarray  # teacher/administrator while staff are not included
    bad_role: np.ndarray  # not a v1.1 role (USR-ROLE): reported as an error, never written
    written: np.ndarray  # students, and staff when included
    students: np.ndarray  # role student, whatever the status
    staff: np.ndarray  # role teacher/administrator, whatever the status

    @property
    def left_out(self) -> np.ndarray:
        """Rows the package leaves out anyway: their findings are warnings at most."""
        return self.dropped_status | self.not_taken | self.staff_excluded


def select_users(
    frame: pd.DataFrame, dropped_status: np.ndarray, options: Options
) -> UserSelection:
    """Apply the role filter to a repaired users frame whose deleted rows are ``dropped_status``."""
    role = frame["role"]
    live = ~np.asarray(dropped_status, dtype=bool)
    students = (role == "student").to_numpy(bool)
    staff = role.isin(ROLES_STAFF).to_numpy(bool)
    return UserSelection(
        dropped_status=~live,
        not_taken=live & role.isin(ROLES_NOT_TAKEN).to_numpy(bool),
        staff_excluded=live & staff & (not options.include_staff),
        bad_role=outside_v11(frame, dropped_status),
        written=live & (students | (staff & options.include_staff)),
        students=students,
        staff=staff,
    )


def outside_v11(frame: pd.DataFrame, dropped_status: np.ndarray) -> np.ndarray:
    """Rows not deleted whose role is not a OneRoster v1.1 role (blank included): never written,
    USR-ROLE (an error) on each."""
    live = ~np.asarray(dropped_status, dtype=bool)
    return live & ~frame["role"].isin(ROLES_V11).to_numpy(bool)


def left_out_users(
    frame: pd.DataFrame, dropped_status: np.ndarray, bad_role: np.ndarray | None = None
) -> list[tuple[str, pd.Series]]:
    """``[(cause, sourcedIds)]``: the users never written for a reason a finding on their row
    gives: a role outside v1.1 (USR-ROLE, an error; ``bad_role`` when already known), deleted
    in the source (BULK-STATUS). A demographics row of theirs is then unmatched: a
    consequence of that finding."""
    ids = frame[SOURCED_ID]
    dropped = np.asarray(dropped_status, dtype=bool)
    role = outside_v11(frame, dropped) if bad_role is None else bad_role
    return [("USR-ROLE", ids[role]), ("BULK-STATUS", ids[dropped])]


def first_lines(ids: pd.Series, found: pd.Series) -> dict[int, int]:
    """``{line: n}``: how many of ``found`` (sourcedIds) each line of ``ids`` (sourcedIds on
    their lines) counts, each id on the first line that holds it (ids not there: not counted).
    By Arrow kernels: only the lines counted become Python values."""
    first = ~ids.duplicated().to_numpy(bool)
    at = pc.index_in(arrow(found), value_set=arrow(ids[first])).drop_null()
    counts = np.bincount(at.to_numpy(zero_copy_only=False), minlength=int(first.sum()))
    hit = np.flatnonzero(counts)
    return dict(zip(ids.index[first][hit].tolist(), counts[hit].tolist(), strict=True))


def role_findings(frame: pd.DataFrame, selection: UserSelection) -> list[Finding]:
    """USR-ROLE-NAVIANCE once per role left out, with the count and the first line: exports
    often hold several guardians per student, and one finding each would bury the report."""
    findings: list[Finding] = []
    for role in ROLES_NOT_TAKEN:
        rows = selection.not_taken & (frame["role"] == role).to_numpy(bool)
        findings += summary_finding(
            frame,
            rows,
            "USR-ROLE-NAVIANCE",
            USERS,
            "role",
            f"users with role {role} left out: Naviance does not take this role",
        )
    return findings


def org_reference_findings(
    frame: pd.DataFrame, written: np.ndarray, orgs: pd.DataFrame
) -> list[Finding]:
    """USR-ORG-REF (blank orgSourcedIds, or an id not in the orgs frame) and USR-STUDENT-SCHOOL
    (a student with at least one known org, none of them a school) for written users."""
    if len(orgs) == 0:
        if not written.any():
            return []
        return [
            finding(
                "USR-ORG-REF",
                "the package has no orgs, so no user's orgSourcedIds can be resolved",
                file=USERS.name,
                column="orgSourcedIds",
            )
        ]
    cells = split_distinct(frame["orgSourcedIds"])
    org_ids = arrow(orgs[SOURCED_ID])
    schools = arrow(orgs.loc[orgs["type"] == "school", SOURCED_ID])
    known = pc.is_in(cells.tokens, value_set=org_ids).to_numpy(zero_copy_only=False)
    school = pc.is_in(cells.tokens, value_set=schools).to_numpy(zero_copy_only=False)
    has_known = cells.any_token(known)
    has_school = cells.any_token(school)
    blank = (frame["orgSourcedIds"] == "").to_numpy(bool)

    findings = row_findings(
        frame,
        written & blank,
        "USR-ORG-REF",
        USERS,
        "orgSourcedIds",
        "orgSourcedIds is blank: every user must belong to an org in orgs.csv",
    )
    findings += _unknown_id_findings(
        frame,
        written,
        cells,
        known,
        "USR-ORG-REF",
        "orgSourcedIds",
        "orgSourcedIds names orgs that are not in orgs.csv (or are left out as deleted)",
    )
    students = written & (frame["role"] == "student").to_numpy(bool)
    findings += row_findings(
        frame,
        students & has_known & ~has_school,
        "USR-STUDENT-SCHOOL",
        USERS,
        "orgSourcedIds",
        BY_CODE["USR-STUDENT-SCHOOL"].message,
    )
    return findings


def _unknown_id_findings(
    frame: pd.DataFrame,
    rows_mask: np.ndarray,
    cells: Cells,
    known: np.ndarray,
    rule: str,
    column: str,
    message: str,
) -> list[Finding]:
    """One finding per ``rows_mask`` row whose id list holds tokens that are not ``known``
    (a mask of ``cells.tokens``); the value names those ids (ids are not PII)."""
    bad = ~known
    positions = np.flatnonzero(rows_mask & cells.any_token(bad))
    if not len(positions):
        return []
    names = pd.Series(cells.tokens.filter(pa.array(bad)).to_pylist())
    unknown = names.groupby(cells.cell_of[bad]).agg(",".join)  # per distinct cell
    return many_findings(
        rule,
        message,
        file=USERS.name,
        column=column,
        lines=frame.index[positions].tolist(),
        ids=column_at(frame, SOURCED_ID, positions),
        values=unknown.loc[cells.at[positions]].tolist(),
    )


def agent_findings(frame: pd.DataFrame, written: np.ndarray) -> list[Finding]:
    """USR-AGENT-REF: agentSourcedIds of a written user naming users not in the file."""
    cells = split_distinct(frame["agentSourcedIds"])
    known = is_in(cells.tokens, frame[SOURCED_ID])
    return _unknown_id_findings(
        frame,
        written,
        cells,
        known,
        "USR-AGENT-REF",
        "agentSourcedIds",
        BY_CODE["USR-AGENT-REF"].message,
    )


def password_findings(frame: pd.DataFrame) -> list[Finding]:
    """USR-PASSWORD once, file-level, when any row holds a password (never written)."""
    held = (frame["password"] != "").to_numpy(bool)
    if not held.any():
        return []
    first = int(frame.index[held][0])
    return [
        finding(
            "USR-PASSWORD",
            f"{int(held.sum())} row(s) hold a password (the first on line {first}); passwords "
            "are never written: leave the column blank",
            file=USERS.name,
            column="password",
        )
    ]


def title_findings(
    frame: pd.DataFrame, selection: UserSelection, options: Options
) -> list[Finding]:
    """USR-STAFF-TITLE for written staff: once file-level when the source has no title column
    (``options.title_column``), else per staff row with a blank title."""
    staff = selection.written & selection.staff
    if not options.include_staff or not staff.any():
        return []
    column = options.title_column
    if column not in frame.columns:
        return [
            finding(
                "USR-STAFF-TITLE",
                f"staff are included but the source has no column '{column}' for their title; "
                "Naviance needs a title to import staff",
                file=USERS.name,
                column=column,
            )
        ]
    return row_findings(
        frame,
        staff & (frame[column] == "").to_numpy(bool),
        "USR-STAFF-TITLE",
        USERS,
        column,
        "staff are included but this teacher/administrator has no title",
    )


def class_year_findings(frame: pd.DataFrame, years: ClassYears) -> list[Finding]:
    """USR-CLASSYEAR (active student, no class year) and USR-GRADE-MULTI. ``frame`` carries
    the computed ``metadata.classYear``; USR-CLASSYEAR-RANGE is a Pandera check."""
    missing = classyear.missing(frame)
    source = f" or {years.supplied_column}" if years.supplied_column else ""
    findings = row_findings(
        frame,
        missing,
        "USR-CLASSYEAR",
        USERS,
        CLASS_YEAR_COLUMN,
        f"this active student has no class year: give a numeric grade (KG, 01-12){source}",
        with_value=False,
    )
    multi = np.flatnonzero(years.multi_grade.to_numpy(bool))
    if not len(multi):
        return findings
    # One finding per student, its message naming the grade written (a handful of groups).
    written = np.array(arrow(years.grades).take(pa.array(multi)).to_pylist(), dtype=object)
    listed = np.array(column_at(frame, "grades", multi).to_pylist(), dtype=object)
    groups = {
        grade: (
            f"this student has more than one grade and Naviance takes one: only the highest, "
            f"{grade}, is written (and used for the class year unless one is supplied)"
        )
        for grade in sorted(set(written[written != listed]))
    }
    for grade, message in groups.items():
        rows = np.zeros(len(frame), dtype=bool)
        rows[multi[(written == grade) & (written != listed)]] = True
        findings += row_findings(frame, rows, "USR-GRADE-MULTI", USERS, "grades", message)
    kept = np.zeros(len(frame), dtype=bool)
    kept[multi[written == listed]] = True  # a code outside CEDS (USR-GRADE): left as it is
    findings += row_findings(
        frame,
        kept,
        "USR-GRADE-MULTI",
        USERS,
        "grades",
        "this student has more than one grade, not all of them CEDS codes; once they are, only "
        "the highest is written (Naviance takes one grade per student)",
    )
    return findings
