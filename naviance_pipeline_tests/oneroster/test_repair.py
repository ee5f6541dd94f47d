"""Certain repairs of spreadsheet damage: what is changed, what is not, and how it is reported
(once per column and kind, with the count and the first line)."""

from __future__ import annotations

import pandas as pd
import pytest

from naviance_pipeline.oneroster import repair as repair_module
from naviance_pipeline.oneroster.findings import WARNING
from naviance_pipeline.oneroster.repair import repair
from naviance_pipeline.oneroster.spec import USERS
from naviance_pipeline.oneroster.stages import build_demographics, build_orgs, build_users
from naviance_pipeline_tests.oneroster.factories import (
    OPTIONS,
    demo,
    district_orgs,
    errors,
    line,
    of_rule,
    one,
    org,
    person,
    source,
    student,
)

STRING = pd.StringDtype("pyarrow")


def users_frame(**columns: list[str]) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    frame = pd.DataFrame({c: [""] * n for c in USERS.header}, dtype=STRING)
    for name, values in columns.items():
        frame[name] = pd.Series(values, dtype=STRING)
    frame["sourcedId"] = pd.Series([f"u{i}" for i in range(n)], dtype=STRING)
    frame.index = pd.RangeIndex(2, n + 2, name="line")
    return frame


def test_repair_does_not_modify_its_input():
    frame = users_frame(enabledUser=["TRUE"])
    repaired, _ = repair(frame, USERS)
    assert frame.at[2, "enabledUser"] == "TRUE" and repaired.at[2, "enabledUser"] == "true"
    assert all(dtype == STRING for dtype in repaired.dtypes)


@pytest.mark.parametrize(
    ("value", "repaired"),
    [
        ("TRUE", "true"),
        ("True", "true"),
        ("FALSE", "false"),
        ("False", "false"),
        ("true", "true"),
        ("yes", "yes"),
        ("1", "1"),
        ("", ""),
    ],
)
def test_boolean_case(value, repaired):
    out, _ = repair(users_frame(enabledUser=[value]), USERS)
    assert out.at[2, "enabledUser"] == repaired


@pytest.mark.parametrize(
    ("value", "repaired"),
    [
        ("9", "09"),
        ("1", "01"),
        ("K", "KG"),
        ("k", "KG"),
        ("09", "09"),
        ("10", "10"),
        ("9,10", "09,10"),
        ("K, 1", "KG,01"),
        ("kg", "KG"),
        ("pk", "PK"),
        ("other", "Other"),
        ("13", "13"),
        ("0", "0"),
        ("Grade 9", "Grade 9"),
        ("", ""),
    ],
)
def test_grade_padding_and_case(value, repaired):
    out, _ = repair(users_frame(grades=[value]), USERS)
    assert out.at[2, "grades"] == repaired


@pytest.mark.parametrize(
    ("value", "repaired"),
    [
        ("Student", "student"),
        ("TEACHER", "teacher"),
        ("student", "student"),
        ("pupil", "pupil"),
        ("Pupil", "Pupil"),
    ],
)
def test_enum_case(value, repaired):
    out, _ = repair(users_frame(role=[value]), USERS)
    assert out.at[2, "role"] == repaired


def test_each_repair_is_reported_once_per_column_with_count_and_first_line():
    _, found = repair(users_frame(enabledUser=["true", "TRUE", "False", "FALSE"]), USERS)
    f = one(found, "XLS-BOOLEAN-CASE", line=3, sourced_id="u1", severity=WARNING, value="TRUE")
    assert "3 rows" in f.message and f.column == "enabledUser"


# ---- through the stages ------------------------------------------------------------------------


def test_boolean_case_through_users_stage():
    users = [student("u1"), student("u2", enabledUser="FALSE")]
    src = source(district_orgs(), users)
    result = build_users(src, OPTIONS)
    one(result.findings, "XLS-BOOLEAN-CASE", line=line(1), sourced_id="u2", severity=WARNING)
    assert result.frame["enabledUser"].tolist() == ["true", "false"]
    assert errors(result.findings) == []


def test_grade_padding_through_users_stage():
    users = [student("u1"), student("u2", grades="9"), student("u3", grades="K")]
    src = source(district_orgs(), users)
    result = build_users(src, OPTIONS)
    one(
        result.findings,
        "XLS-GRADE-PADDING",
        line=line(1),
        sourced_id="u2",
        severity=WARNING,
        value="9",
    )
    assert result.frame["grades"].tolist() == ["09", "09", "KG"]
    assert result.frame["metadata.classYear"].tolist() == ["2030", "2030", "2039"]
    assert errors(result.findings) == []


def test_enum_case_through_each_stage():
    orgs = [org("d1", "District"), org("s1", "School", "d1")]
    users = [person("u1", "Student", grades="09")]
    src = source(orgs, users, [demo("u1", sex="Male")])
    users_r = build_users(src, OPTIONS)
    orgs_r = build_orgs(src, users_r.frame, OPTIONS)
    demo_r = build_demographics(src, users_r.frame, OPTIONS)

    one(orgs_r.findings, "XLS-ENUM-CASE", line=line(0), sourced_id="d1", severity=WARNING)
    assert "2 rows" in of_rule(orgs_r.findings, "XLS-ENUM-CASE")[0].message
    one(users_r.findings, "XLS-ENUM-CASE", line=line(0), sourced_id="u1", value="Student")
    one(demo_r.findings, "XLS-ENUM-CASE", line=line(0), sourced_id="u1", value="Male")
    assert orgs_r.frame["type"].tolist() == ["district", "school"]
    assert demo_r.frame.at[0, "sex"] == "male"
    assert errors([*orgs_r.findings, *users_r.findings, *demo_r.findings]) == []


def test_demographic_flags_are_repaired():
    users = [student("u1")]
    src = source(district_orgs(), users, [demo("u1", asian="TRUE", white="False")])
    users_frame_ = build_users(src, OPTIONS).frame
    result = build_demographics(src, users_frame_, OPTIONS)
    f = of_rule(result.findings, "XLS-BOOLEAN-CASE")
    assert [(x.column, x.line) for x in f] == [("asian", line(0)), ("white", line(0))]
    assert (result.frame.at[0, "asian"], result.frame.at[0, "white"]) == ("true", "false")


def test_a_large_frame_checked_two_columns_at_a_time_is_repaired_the_same(monkeypatch):
    # As if the frame were large: which columns need repair is found on two threads.
    frame = users_frame(
        enabledUser=["TRUE", "false", "", "true"],
        role=["student", "Student", "teacher", ""],
        grades=["9", "10", "K,01", "12"],
    )
    alone, alone_findings = repair(frame, USERS)
    monkeypatch.setattr(repair_module, "PARALLEL_ROWS", 0)

    threads, threads_findings = repair(frame, USERS)

    pd.testing.assert_frame_equal(threads, alone)
    assert threads_findings == alone_findings
    assert {f.rule for f in threads_findings} == {
        "XLS-BOOLEAN-CASE",
        "XLS-ENUM-CASE",
        "XLS-GRADE-PADDING",
    }
    assert threads["grades"].tolist() == ["09", "10", "KG,01", "12"]
