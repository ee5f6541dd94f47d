"""Change summary: one student of each kind of change, counted in total and per school."""

from __future__ import annotations

import json

import pytest

from naviance_pipeline.operations.storage import DataLayout, write_private_json
from naviance_pipeline.reporting.diff import (
    change_summary,
    diff_markdown,
    diff_partitions,
    render_diff_text,
)
from naviance_pipeline_tests.reporting import (
    PII_MARKERS,
    orgs_frame,
    store_frames,
    users_frame,
)

ORGS = orgs_frame(
    ("d1", "Unified District", "district"),
    ("s1", "North High", "school"),
    ("s2", "South | Middle", "school"),
)

PREVIOUS = users_frame(
    {"sourcedId": "a-same", "orgSourcedIds": "d1,s1"},
    {"sourcedId": "b-removed", "orgSourcedIds": "s1"},
    {"sourcedId": "c-deactivated", "orgSourcedIds": "s1"},
    {"sourcedId": "d-reactivated", "orgSourcedIds": "s2", "enabledUser": "false"},
    {"sourcedId": "e-moved", "orgSourcedIds": "s1"},
    {"sourcedId": "f-grade", "orgSourcedIds": "s2", "grades": "09"},
    {"sourcedId": "t-teacher-gone", "orgSourcedIds": "s1", "role": "teacher"},
)
CURRENT = users_frame(
    {"sourcedId": "a-same", "orgSourcedIds": "d1,s1"},
    {"sourcedId": "c-deactivated", "orgSourcedIds": "s1", "enabledUser": "false"},
    {"sourcedId": "d-reactivated", "orgSourcedIds": "s2"},
    {"sourcedId": "e-moved", "orgSourcedIds": "s2"},
    {"sourcedId": "f-grade", "orgSourcedIds": "s2", "grades": "10"},
    {"sourcedId": "g-added", "orgSourcedIds": "s2"},
    {"sourcedId": "t-teacher-new", "orgSourcedIds": "s2", "role": "teacher"},
)


def _school(summary: dict, school: str) -> dict:
    return next(row for row in summary["by_school"] if row["school"] == school)


def test_each_kind_of_change_is_counted_once_and_staff_are_ignored():
    summary = change_summary(CURRENT, ORGS, PREVIOUS, ORGS)

    assert summary["totals"] == {
        "added": 1,
        "removed": 1,
        "deactivated": 1,
        "reactivated": 1,
        "moved": 1,
        "grade_changed": 1,
    }
    assert summary["first_ids"] == {
        "added": ["g-added"],
        "removed": ["b-removed"],
        "deactivated": ["c-deactivated"],
        "reactivated": ["d-reactivated"],
        "moved": ["e-moved"],
        "grade_changed": ["f-grade"],
    }
    assert summary["students"] == {"current": 6, "previous": 6}


def test_changes_are_attributed_to_schools_with_their_names():
    summary = change_summary(CURRENT, ORGS, PREVIOUS, ORGS)

    assert [row["school"] for row in summary["by_school"]] == ["s1", "s2"]  # district is no school
    assert _school(summary, "s1") == {
        "school": "s1",
        "name": "North High",
        "students": 2,
        "previous_students": 4,
        "added": 0,
        "removed": 1,
        "deactivated": 1,
        "reactivated": 0,
        "moved_in": 0,
        "moved_out": 1,
        "grade_changed": 0,
    }
    assert _school(summary, "s2") == {
        "school": "s2",
        "name": "South | Middle",
        "students": 4,
        "previous_students": 2,
        "added": 1,
        "removed": 0,
        "deactivated": 0,
        "reactivated": 1,
        "moved_in": 1,
        "moved_out": 0,
        "grade_changed": 1,
    }


def test_a_student_added_to_a_second_school_moved_and_counts_in_both():
    previous = users_frame({"sourcedId": "x", "orgSourcedIds": "s1"})
    current = users_frame({"sourcedId": "x", "orgSourcedIds": "s1, s2"})

    summary = change_summary(current, ORGS, previous, ORGS)

    assert summary["totals"]["moved"] == 1
    assert _school(summary, "s1")["students"] == 1
    assert _school(summary, "s2")["moved_in"] == 1
    assert _school(summary, "s1")["moved_out"] == 0


def test_reordered_org_list_is_not_a_move():
    previous = users_frame({"sourcedId": "x", "orgSourcedIds": "s1,s2"})
    current = users_frame({"sourcedId": "x", "orgSourcedIds": "s2,s1"})

    assert change_summary(current, ORGS, previous, ORGS)["totals"]["moved"] == 0


def test_without_a_previous_package_every_student_is_added():
    summary = change_summary(CURRENT, ORGS, None, None)

    assert summary["totals"]["added"] == 6
    assert summary["totals"]["removed"] == 0
    assert summary["compared"] is False
    assert "no earlier package" in render_diff_text(summary)


def test_first_ids_are_the_smallest_and_capped():
    previous = users_frame({"sourcedId": "keep", "orgSourcedIds": "s1"})
    current = users_frame(
        *({"sourcedId": f"n{i:02d}", "orgSourcedIds": "s1"} for i in reversed(range(30)))
    )

    summary = change_summary(current, ORGS, previous, ORGS, first_ids=5)

    assert summary["totals"]["added"] == 30
    assert summary["first_ids"]["added"] == ["n00", "n01", "n02", "n03", "n04"]
    assert summary["first_ids"]["removed"] == ["keep"]


def test_summary_and_renderings_hold_no_pii():
    summary = change_summary(CURRENT, ORGS, PREVIOUS, ORGS)
    wire = json.dumps(summary) + render_diff_text(summary) + diff_markdown(summary)

    for marker in PII_MARKERS:
        assert marker not in wire


def test_text_and_markdown_tables_show_every_school_and_the_totals():
    summary = change_summary(CURRENT, ORGS, PREVIOUS, ORGS)

    text = render_diff_text(summary)
    assert "North High" in text and "(total)" in text and "moved school" in text
    assert "deactivated: c-deactivated" in text

    markdown = diff_markdown(summary)
    rows = [line for line in markdown.splitlines() if line.startswith("| s2 ")]
    assert rows == ["| s2 | South \\| Middle | 4 | 2 | 1 | 0 | 0 | 1 | 1 | 0 | 1 |"]
    assert "| (total) |  | 6 | 6 | 1 | 1 | 1 | 1 | 1 | 1 | 1 |" in markdown


def _packaged(layout: DataLayout, day: str) -> None:
    write_private_json(layout.summary_path(day), {"partition": day})


def test_diff_partitions_defaults_to_the_newest_earlier_packaged_date(tmp_path):
    layout = DataLayout(str(tmp_path), "d1")
    store_frames(layout, "2026-11-27", PREVIOUS, ORGS)
    _packaged(layout, "2026-11-27")
    # Frames but no package: a run that stopped before packaging is not a baseline.
    store_frames(layout, "2026-11-28", CURRENT, ORGS)
    store_frames(layout, "2026-11-30", CURRENT, ORGS)
    _packaged(layout, "2026-12-01")  # later than the date: never a baseline

    summary = diff_partitions(layout, "2026-11-30")

    assert summary["against"] == "2026-11-27"
    assert summary["partition"] == "2026-11-30"
    assert summary["totals"]["removed"] == 1
    assert "against 2026-11-27" in render_diff_text(summary)


def test_diff_partitions_with_an_explicit_date_and_without_any_baseline(tmp_path):
    layout = DataLayout(str(tmp_path), "d1")
    store_frames(layout, "2026-11-28", CURRENT, ORGS)
    store_frames(layout, "2026-11-30", CURRENT, ORGS)

    assert diff_partitions(layout, "2026-11-30", against="2026-11-28")["totals"]["added"] == 0
    first = diff_partitions(layout, "2026-11-30")
    assert first["against"] is None
    assert first["totals"]["added"] == 6


def test_diff_partitions_names_the_date_without_frames(tmp_path):
    layout = DataLayout(str(tmp_path), "d1")
    store_frames(layout, "2026-11-30", CURRENT, ORGS)

    with pytest.raises(FileNotFoundError, match="2026-11-01"):
        diff_partitions(layout, "2026-11-30", against="2026-11-01")


def test_the_same_students_in_the_same_order_change_only_where_their_values_do():
    # Identical ids on both sides take the no-hash path; values still decide the changes.
    before = users_frame(
        {"sourcedId": "a", "orgSourcedIds": "s1"},
        {"sourcedId": "b", "orgSourcedIds": "s1,s2"},
        {"sourcedId": "c", "orgSourcedIds": "s2", "grades": "09"},
    )
    now = users_frame(
        {"sourcedId": "a", "orgSourcedIds": "s1"},
        {"sourcedId": "b", "orgSourcedIds": "s2"},
        {"sourcedId": "c", "orgSourcedIds": "s2", "grades": "10"},
    )
    summary = change_summary(now, ORGS, before, ORGS)
    assert summary["totals"] == {
        "added": 0,
        "removed": 0,
        "deactivated": 0,
        "reactivated": 0,
        "moved": 1,
        "grade_changed": 1,
    }
    assert summary["first_ids"]["moved"] == ["b"]
    s1, s2 = _school(summary, "s1"), _school(summary, "s2")
    assert (s1["students"], s1["previous_students"], s1["moved_out"]) == (1, 2, 1)
    assert (s2["students"], s2["previous_students"], s2["moved_in"]) == (2, 2, 0)


def test_diff_partitions_uses_the_current_frames_it_is_given(tmp_path):
    layout = DataLayout(str(tmp_path), "d")
    summary = diff_partitions(layout, "2026-11-30", current=(CURRENT, ORGS))
    assert summary["against"] is None
    assert summary["totals"]["added"] == summary["students"]["current"] == 6
