"""memberships: one record per (user, school org) in row order, then the users in no school,
checked against a row-by-row reading of the same cells."""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from naviance_pipeline.reporting import NO_SCHOOL, memberships
from naviance_pipeline_tests.reporting import orgs_frame

ORGS = orgs_frame(
    ("d1", "District", "district"),
    ("s1", "North", "school"),
    ("s2", "South", "school"),
)
CELLS = st.lists(
    st.sampled_from(["", "s1", "s2", "d1", "s1,s2", " s2 ,d1", "d1,s1,s1", "gone", "s9,s1"]),
    max_size=30,
)


def by_hand(cells: list[str]) -> list[tuple[str, str, int]]:
    records, lonely = [], []
    for row, cell in enumerate(cells):
        tokens = [t.strip() for t in cell.split(",")] if cell else []
        schools = [t for t in tokens if t in ("s1", "s2")]
        records += [(f"u{row}", school, row) for school in schools]
        if not schools:
            lonely.append((f"u{row}", NO_SCHOOL, row))
    return records + lonely


@settings(max_examples=80, deadline=None)
@given(CELLS)
def test_memberships_match_a_row_by_row_reading(cells):
    users = pd.DataFrame(
        {"sourcedId": [f"u{i}" for i in range(len(cells))], "orgSourcedIds": cells}
    ).astype("string[pyarrow]")
    members = memberships(users, ORGS)
    found = list(zip(members["sourcedId"], members["school"], members["row"], strict=True))
    assert found == by_hand(cells)


def test_without_orgs_every_user_is_in_no_school():
    users = pd.DataFrame({"sourcedId": ["u0", "u1"], "orgSourcedIds": ["s1", ""]}).astype(
        "string[pyarrow]"
    )
    assert memberships(users, None)["school"].tolist() == [NO_SCHOOL, NO_SCHOOL]
