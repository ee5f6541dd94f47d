"""Cross-file rules of demographics.csv: exactly one row per student of the users frame.

Rows for anyone who is not a student in the package are left out (DEM-USER-REF, counted
under USR-ROLE or BULK-STATUS for a user left out for its role or deleted); a student
without a row gets a sourcedId-only row (DEM-MISSING). DEM-DUPLICATE and the value rules are
Pandera checks in ``schemas.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from naviance_pipeline.oneroster.findings import Finding, finding
from naviance_pipeline.oneroster.kernels.arrays import is_in
from naviance_pipeline.oneroster.rules import BY_CODE
from naviance_pipeline.oneroster.rules_common import SOURCED_ID, row_findings
from naviance_pipeline.oneroster.spec import DEMOGRAPHICS


def package_students(users: pd.DataFrame) -> pd.Series:
    """The sourcedIds of the students in a users output frame (distinct: the users stage
    writes each sourcedId once)."""
    return users.loc[users["role"] == "student", SOURCED_ID].reset_index(drop=True)


def stray_rows(
    frame: pd.DataFrame, live: np.ndarray, students: pd.Series
) -> tuple[np.ndarray, np.ndarray]:
    """``(known, stray)``: rows of a student in the package; ``live`` rows with a sourcedId of
    anyone else (left out, DEM-USER-REF)."""
    ids = frame[SOURCED_ID]
    known = is_in(ids, students)
    return known, np.asarray(live, dtype=bool) & ~known & (ids != "").to_numpy(bool)


def caused_rows(frame: pd.DataFrame, stray: np.ndarray, left_out: pd.Series) -> np.ndarray:
    """The ``stray`` rows (``stray_rows``) of users the users stage left out with a finding on
    their row saying why (``left_out``: their sourcedIds, ``rules_users.left_out_users``):
    their DEM-USER-REF is a consequence of it (``rules.CAUSES``), counted under it by the users
    stage, not reported here."""
    caused = np.zeros(len(frame), dtype=bool)
    if stray.any() and len(left_out):
        caused[stray] = is_in(frame[SOURCED_ID][stray], left_out)
    return caused


def user_ref_findings(
    frame: pd.DataFrame,
    live: np.ndarray,
    students: pd.Series,
    users: pd.DataFrame,
    left_out: Callable[[], pd.Series],
) -> tuple[np.ndarray, list[Finding]]:
    """``(known, findings)``: ``known`` marks rows of a student in the package; every other
    ``live`` row with a sourcedId gets DEM-USER-REF (left out), but for a user the users stage
    left out with a finding saying why (``left_out()``, asked only when there are such rows:
    their findings are counted under that one by the users stage). Staff are named as such."""
    ids = frame[SOURCED_ID]
    known, stray = stray_rows(frame, live, students)
    if stray.any():
        stray &= ~caused_rows(frame, stray, left_out())
    staff = np.zeros(len(frame), dtype=bool)
    if stray.any():
        staff[stray] = is_in(ids[stray], users[SOURCED_ID])
    findings = row_findings(
        frame,
        stray & staff,
        "DEM-USER-REF",
        DEMOGRAPHICS,
        SOURCED_ID,
        "this user is staff, and staff get no demographics row; the row is left out",
    )
    findings += row_findings(
        frame,
        stray & ~staff,
        "DEM-USER-REF",
        DEMOGRAPHICS,
        SOURCED_ID,
        "no student with this sourcedId is in the package; the row is left out",
    )
    return known, findings


def missing_findings(
    students: pd.Series, written: pd.Series, file_has_rows: bool
) -> tuple[pd.Series, list[Finding]]:
    """``(missing, findings)``: students with no written demographics row.

    With no demographics at all (file absent, or no data rows) DEM-MISSING is reported once for
    the file, not once per student; otherwise once per student (line blank, its sourcedId).
    """
    if len(written) == len(students):  # written rows are distinct students: none is missing
        return students[:0], []
    missing = students[~is_in(students, written)]
    if len(missing) == 0:
        return missing, []
    if not file_has_rows:
        return missing, [
            finding(
                "DEM-MISSING",
                f"demographics.csv is absent or has no rows; {len(missing)} student(s) get a "
                "row holding only their sourcedId",
                file=DEMOGRAPHICS.name,
            )
        ]
    return missing, [
        finding(
            "DEM-MISSING",
            BY_CODE["DEM-MISSING"].message,
            file=DEMOGRAPHICS.name,
            column=SOURCED_ID,
            sourced_id=sid,
            value=sid,
        )
        for sid in missing
    ]
