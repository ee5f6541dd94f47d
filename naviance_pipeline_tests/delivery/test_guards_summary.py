"""summarize_package: the counts the delivery guards compare, from the output frames."""

from __future__ import annotations

import pandas as pd

from naviance_pipeline.delivery.guards import summarize_package
from naviance_pipeline.oneroster.spec import STRING


def test_counts_active_students_per_school_with_lists_and_spaces():
    orgs = pd.DataFrame(
        {"sourcedId": ["d", "s1", "s2", "s3"], "type": ["district", "school", "school", "school"]}
    ).astype(STRING)
    users = pd.DataFrame(
        {
            "role": ["student", "student", "student", "teacher", "student"],
            "enabledUser": ["true", "true", "false", "true", "true"],
            "orgSourcedIds": ["s1", "s1, s2", "s1", "s1", "d"],
        }
    ).astype(STRING)
    summary = summarize_package(orgs, users, "2026-11-24")
    assert summary == {
        "partition": "2026-11-24",
        "students": 4,
        "active_students": 3,
        "disabled_students": 1,
        "schools": {"s1": 2, "s2": 1, "s3": 0},
    }


def test_a_school_named_twice_in_a_cell_counts_the_student_twice_as_before():
    # Counted per distinct cell, then weighted: the same totals as one count per token.
    orgs = pd.DataFrame({"sourcedId": ["s1", "s2"], "type": ["school", "school"]}).astype(STRING)
    users = pd.DataFrame(
        {
            "role": ["student"] * 4,
            "enabledUser": ["true"] * 4,
            "orgSourcedIds": ["s1,s1", "s1", "s1", "s2,s9"],
        }
    ).astype(STRING)
    assert summarize_package(orgs, users, "2026-11-24")["schools"] == {"s1": 4, "s2": 1}
