"""Builders for reporting tests: small output frames (every output column, PII included, as
the pipeline stores them) written where the IO manager writes them."""

from __future__ import annotations

import pandas as pd

from naviance_pipeline.oneroster.spec import ORGS, user_output_header
from naviance_pipeline.operations.frames import write_frame
from naviance_pipeline.operations.storage import DataLayout
from naviance_pipeline.reporting import frame_path

STRING = pd.StringDtype("pyarrow")

# Distinctive PII placed in every users frame: none of it may reach a report, diff or alert.
PII_MARKERS = ("Zebediah", "Quillfeather", "zq@example.org", "zquill", "2009-04-17")


def users_frame(*rows: dict) -> pd.DataFrame:
    """A users output frame; each row gives at least sourcedId and orgSourcedIds."""
    defaults = {
        "enabledUser": "true",
        "role": "student",
        "username": PII_MARKERS[3],
        "givenName": PII_MARKERS[0],
        "familyName": PII_MARKERS[1],
        "email": PII_MARKERS[2],
        "identifier": PII_MARKERS[4],
        "grades": "09",
        "metadata.classYear": "2030",
    }
    header = user_output_header(include_staff=False)
    records = [{c: {**defaults, **row}.get(c, "") for c in header} for row in rows]
    return pd.DataFrame(records, columns=header).astype(STRING)


def orgs_frame(*rows: tuple[str, str, str]) -> pd.DataFrame:
    """An orgs output frame from ``(sourcedId, name, type)`` rows."""
    records = [{"sourcedId": i, "name": n, "type": t} for i, n, t in rows]
    return pd.DataFrame(records, columns=ORGS.header).fillna("").astype(STRING)


def store_frames(layout: DataLayout, day: str, users: pd.DataFrame, orgs: pd.DataFrame) -> None:
    write_frame(users, frame_path(layout, "users", day))
    write_frame(orgs, frame_path(layout, "orgs", day))
