"""Demographics rules through ``build_demographics`` from CSV bytes."""

from __future__ import annotations

import pytest

from naviance_pipeline.oneroster.findings import ERROR, WARNING
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.spec import DEMOGRAPHICS, RACE_FLAGS, TWO_OR_MORE
from naviance_pipeline.oneroster.stages import build_demographics, build_users
from naviance_pipeline_tests.oneroster.factories import (
    OPTIONS,
    STAFF_OPTIONS,
    demo,
    district_orgs,
    errors,
    line,
    of_rule,
    one,
    person,
    source,
    student,
)

STUDENTS = [student("u1"), student("u2"), student("u3")]


def demographics_of(rows: list[dict] | bytes | None, users=STUDENTS, options: Options = OPTIONS):
    src = source(district_orgs(), users, rows)
    users_frame = build_users(src, options).frame
    return build_demographics(src, users_frame, options)


def test_one_row_per_student_sorted_with_source_values():
    result = demographics_of([demo("u3", sex="male"), demo("u1"), demo("u2")])
    assert result.frame["sourcedId"].tolist() == ["u1", "u2", "u3"]
    assert result.frame.iloc[2]["sex"] == "male"
    assert result.findings == []


def test_missing_student_gets_a_sourced_id_only_row_and_a_warning():
    result = demographics_of([demo("u1"), demo("u3")])
    one(result.findings, "DEM-MISSING", line=None, sourced_id="u2", severity=WARNING)
    row = result.frame.set_index("sourcedId").loc["u2"]
    assert set(row) == {""}
    assert result.counts["missing"] == 1 and result.counts["written"] == 3


@pytest.mark.parametrize(
    "data", [None, b"", b"sourcedId,birthDate\r\n"], ids=["absent", "empty", "header-only"]
)
def test_no_demographics_at_all_is_reported_once_for_the_file(data):
    result = demographics_of(data)
    f = one(result.findings, "DEM-MISSING", line=None, sourced_id=None, severity=WARNING)
    assert "3 student(s)" in f.message
    assert result.frame["sourcedId"].tolist() == ["u1", "u2", "u3"]
    assert list(result.frame.columns) == DEMOGRAPHICS.header


def test_row_for_a_user_not_in_the_package_is_left_out():
    result = demographics_of([demo("u1"), demo("u2"), demo("u3"), demo("ghost", sex="??")])
    one(result.findings, "DEM-USER-REF", line=line(3), sourced_id="ghost", severity=WARNING)
    one(result.findings, "DEM-SEX", line=line(3), severity=WARNING)  # left out: warning at most
    assert "ghost" not in result.frame["sourcedId"].tolist()
    assert result.counts["dropped_user_ref"] == 1


def test_staff_get_no_demographics_row():
    users = [*STUDENTS, person("t1", "teacher", **{"metadata.title": "Teacher"})]
    rows = [demo("u1"), demo("u2"), demo("u3"), demo("t1")]
    result = demographics_of(rows, users, STAFF_OPTIONS)
    f = one(result.findings, "DEM-USER-REF", line=line(3), sourced_id="t1", severity=WARNING)
    assert "staff" in f.message
    assert result.frame["sourcedId"].tolist() == ["u1", "u2", "u3"]


def test_duplicate_rows_for_one_student_report_every_occurrence():
    result = demographics_of([demo("u1"), demo("u2", sex="male"), demo("u3"), demo("u2")])
    found = of_rule(result.findings, "DEM-DUPLICATE")
    assert [(f.line, f.sourcedId, f.severity) for f in found] == [
        (line(1), "u2", ERROR),
        (line(3), "u2", ERROR),
    ]
    assert of_rule(result.findings, "ID-DUPLICATE") == []
    assert result.frame.set_index("sourcedId").at["u2", "sex"] == "male"  # first occurrence


@pytest.mark.parametrize(
    "birth_date", ["2010-02-30", "2011-02-29", "2010-13-01", "2026-12-01"],
    ids=["feb-30", "not-leap", "month-13", "after-as-of"],
)  # fmt: skip
def test_birth_date_impossible_or_after_as_of(birth_date):
    result = demographics_of([demo("u1"), demo("u2", birthDate=birth_date), demo("u3")])
    f = one(result.findings, "DEM-BIRTHDATE", line=line(1), sourced_id="u2", severity=ERROR)
    assert f.value is None and birth_date not in f.message


def test_birth_date_on_a_leap_day_and_on_the_as_of_date_are_fine():
    rows = [demo("u1", birthDate="2012-02-29"), demo("u2", birthDate="2026-11-30"), demo("u3")]
    assert demographics_of(rows).findings == []


@pytest.mark.parametrize("birth_date", ["3/4/2010", "2010-03-04 00:00:00", "20100304", "2010-3-4"])
def test_birth_date_not_in_iso_form(birth_date):
    result = demographics_of([demo("u1"), demo("u2"), demo("u3", birthDate=birth_date)])
    f = one(result.findings, "XLS-DATE-FORMAT", line=line(2), sourced_id="u3", severity=ERROR)
    assert f.value is None
    assert of_rule(result.findings, "DEM-BIRTHDATE") == []


def test_sex_outside_v11():
    result = demographics_of([demo("u1", sex="X"), demo("u2", sex=""), demo("u3")])
    one(result.findings, "DEM-SEX", line=line(0), sourced_id="u1", severity=ERROR, value="X")


def test_flag_not_boolean():
    result = demographics_of([demo("u1"), demo("u2", asian="Y"), demo("u3", white="")])
    one(result.findings, "DEM-FLAG", line=line(1), sourced_id="u2", severity=ERROR, value="Y")


def test_race_consistency_both_ways():
    two_flags = {flag: "true" for flag in RACE_FLAGS[:2]}
    rows = [
        demo("u1", **{TWO_OR_MORE: "true", RACE_FLAGS[0]: "true"}),
        demo("u2", **two_flags, **{TWO_OR_MORE: "false"}),
        demo("u3", **two_flags, **{TWO_OR_MORE: "true"}),
    ]
    found = of_rule(demographics_of(rows).findings, "DEM-RACE-CONSISTENCY")
    assert [(f.line, f.sourcedId, f.severity, f.column) for f in found] == [
        (line(0), "u1", WARNING, TWO_OR_MORE),
        (line(1), "u2", WARNING, TWO_OR_MORE),
    ]


def test_id_rules_apply_to_demographics_rows_left_out_are_warnings():
    rows = [demo("u1"), demo("u2"), demo("u3"), demo("U1"), demo("u#4")]
    result = demographics_of(rows)
    found = of_rule(result.findings, "ID-CASE-COLLISION")
    assert [(f.line, f.sourcedId) for f in found] == [(line(0), "u1"), (line(3), "U1")]
    one(result.findings, "ID-CHARSET", line=line(4), sourced_id="u#4", severity=WARNING)
    assert errors(result.findings) == []
