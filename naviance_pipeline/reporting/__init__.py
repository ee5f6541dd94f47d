"""Operator-facing reports built from what the pipeline stored under the data root.

``report`` (the validation report of a date, JSON), ``html`` (the same report as one page),
``diff`` (which students changed since the previous package). This module holds the readers of
the data root they share with ``retention``. Nothing here imports Dagster, and frames are read
column by column: a PII column is never even loaded, so it cannot leak into a report.
"""

from __future__ import annotations

import re
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
from upath import UPath

from naviance_pipeline.delivery.receipts import receipt_order
from naviance_pipeline.oneroster.kernels.arrays import arrow, blank, is_in, strings
from naviance_pipeline.oneroster.kernels.lists import split_distinct
from naviance_pipeline.oneroster.spec import CLASS_YEAR_COLUMN, PII_COLUMNS, STRING
from naviance_pipeline.operations.frames import StoredFrame
from naviance_pipeline.operations.storage import FINDING_STAGES, DataLayout, read_json

PIPELINE_STAGES = FINDING_STAGES

# The only frame columns reports read: none is PII (read_columns refuses those).
USER_COLUMNS = ("sourcedId", "enabledUser", "orgSourcedIds", "role", "grades", CLASS_YEAR_COLUMN)
ORG_COLUMNS = ("sourcedId", "name", "type")

SCHOOL = "school"
STUDENT = "student"
NO_SCHOOL = "(no school)"

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NUMBER = re.compile(r"-?[\d,]+(\.\d+)?")


def flags(mask: pd.Series) -> np.ndarray:
    """A comparison on arrow strings as plain bools: missing values (NA) count as False."""
    return mask.to_numpy(dtype=bool, na_value=False)


def reports_dir(layout: DataLayout, day: str) -> UPath:
    return layout.reports_dir(day)


def frame_path(layout: DataLayout, asset: str, day: str) -> UPath:
    return layout.frame_path(asset, day)


def partition_date(name: str) -> date | None:
    """The partition date a file or folder name stands for (``2026-11-30`` or
    ``2026-11-30.parquet``), or None when the name is not one."""
    stem = name.removesuffix(".parquet")
    if not _DATE.fullmatch(stem):
        return None
    try:
        return date.fromisoformat(stem)
    except ValueError:
        return None


def read_columns(stored: StoredFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Only ``columns`` of a stored frame, as arrow-backed strings; a column the file lacks
    comes back blank. Refuses PII columns so no report can ever hold one."""
    pii = sorted(set(columns) & PII_COLUMNS)
    if pii:
        raise ValueError(f"reports never read PII columns: {pii}")
    names = stored.columns
    frame = stored.load([c for c in columns if c in names])
    for column in columns:
        if column not in frame.columns:
            frame[column] = blank(frame.index)
    return frame[list(columns)].astype(STRING)


def report_columns(stored: StoredFrame, asset: str) -> pd.DataFrame:
    """The report columns of a stored users or orgs frame."""
    return read_columns(stored, USER_COLUMNS if asset == "users" else ORG_COLUMNS)


def load_frame(layout: DataLayout, asset: str, day: str) -> pd.DataFrame | None:
    """The report columns of a stored users or orgs frame, or None when it was never built."""
    path = frame_path(layout, asset, day)
    if not path.exists():
        return None
    return report_columns(StoredFrame(path), asset)


def school_names(orgs: pd.DataFrame | None) -> dict[str, str]:
    if orgs is None:
        return {}
    return dict(zip(orgs["sourcedId"].tolist(), orgs["name"].tolist(), strict=True))


def memberships(users: pd.DataFrame, orgs: pd.DataFrame | None) -> pd.DataFrame:
    """One ``(sourcedId, school, row)`` record per user and school org they belong to (``row``:
    the user's position in ``users``); a user in no school org gets one record with school
    ``NO_SCHOOL``. Records run in row order (a user's schools in the order listed), then the
    users in no school.

    The orgSourcedIds cells are split once per distinct cell (a few hundred for a million
    students) and each row takes its cell's schools."""
    cells = split_distinct(users["orgSourcedIds"])
    school_ids = [] if orgs is None else orgs.loc[flags(orgs["type"] == SCHOOL), "sourcedId"]
    picked = np.flatnonzero(is_in(cells.tokens, school_ids))  # grouped by cell, in list order
    per_cell = np.bincount(cells.cell_of[picked], minlength=cells.count)
    first = np.concatenate(([0], np.cumsum(per_cell)))  # each cell's first school in picked
    count = per_cell[cells.at]  # schools of each row
    member_rows = np.repeat(np.arange(len(users)), count)
    nth = np.arange(len(member_rows)) - np.repeat(np.cumsum(count) - count, count)
    school_tokens = picked[first[cells.at[member_rows]] + nth]
    no_school = np.flatnonzero(count == 0)
    user_rows = np.concatenate([member_rows, no_school])
    schools = pa.concat_arrays(
        [
            cells.tokens.take(pa.array(school_tokens, pa.int64())),
            pa.array([NO_SCHOOL] * len(no_school), pa.large_string()),
        ]
    )
    index = pd.RangeIndex(len(user_rows))
    return pd.DataFrame(
        {
            "sourcedId": strings(arrow(users["sourcedId"]).take(user_rows), index),
            "school": strings(schools, index),
            "row": user_rows,
        }
    )


def all_receipts(layout: DataLayout, folders: list[UPath] | None = None) -> list[dict]:
    """Every delivery receipt of every target (or of the given receipt folders), oldest first."""
    if folders is None:
        root = layout.base / "receipts"
        folders = [p for p in root.iterdir() if p.is_dir()] if root.exists() else []
    receipts = [
        read_json(p)
        for folder in folders
        if folder.exists()
        for p in folder.iterdir()
        if p.name.endswith(".json") and not p.name.startswith(".")
    ]
    return sorted(receipts, key=receipt_order)


def packaged_dates(layout: DataLayout) -> list[str]:
    """Dates that have a package summary, oldest first."""
    root = layout.base / "packages"
    if not root.exists():
        return []
    return sorted(
        p.name for p in root.iterdir() if partition_date(p.name) and (p / "summary.json").exists()
    )


def text_table(header: list[str], rows: list[list[str]], *, names: int = 1) -> list[str]:
    """Lines of an aligned terminal table. The first ``names`` columns are names, left-aligned
    even when an id is all digits; other columns of numbers only are right-aligned."""
    columns = range(len(header))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in columns]
    numeric = [
        i >= names and bool(rows) and all(_NUMBER.fullmatch(r[i]) for r in rows) for i in columns
    ]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if right else c.ljust(w)
            for c, w, right in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]
