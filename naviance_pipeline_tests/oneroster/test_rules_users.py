"""User rules through ``build_users`` from CSV bytes: each USR-* code with its severity, line
and sourcedId; role selection and the severities of rows left out."""

from __future__ import annotations

import pytest

from naviance_pipeline.oneroster.findings import ERROR, WARNING
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.stages import build_users
from naviance_pipeline_tests.oneroster.factories import (
    AS_OF,
    OPTIONS,
    STAFF_OPTIONS,
    district_orgs,
    errors,
    line,
    of_rule,
    one,
    org,
    orgs_stage,
    person,
    source,
    student,
)


def users_of(users: list[dict], options: Options = OPTIONS, orgs: list[dict] | None = None):
    src = source(district_orgs() if orgs is None else orgs, users)
    return build_users(src, options)


# ---- selection ---------------------------------------------------------------------------------


def test_guardian_row_with_errors_yields_only_warnings():
    guardian = person(
        "g1",
        "guardian",
        username="",
        enabledUser="maybe",
        orgSourcedIds="",
        userIds="junk",
        grades="ZZ",
    )
    result = users_of([student("u1"), guardian])

    assert errors(result.findings) == []
    one(result.findings, "USR-REQUIRED", line=line(1), sourced_id="g1", severity=WARNING)
    one(result.findings, "USR-ENABLED", line=line(1), severity=WARNING)
    one(result.findings, "USR-ROLE-NAVIANCE", line=line(1), sourced_id="g1", severity=WARNING)
    assert result.frame["sourcedId"].tolist() == ["u1"]
    assert result.counts["dropped_role"] == 1


def test_role_naviance_is_reported_once_per_role_with_count_and_first_line():
    users = [student("u1"), person("p1", "parent"), person("p2", "parent"), person("a", "aide")]
    result = users_of(users)
    found = of_rule(result.findings, "USR-ROLE-NAVIANCE")
    assert [(f.line, f.sourcedId, f.value, f.severity) for f in found] == [
        (line(1), "p1", "parent", WARNING),
        (line(3), "a", "aide", WARNING),
    ]
    assert "2 rows" in found[0].message


def test_role_pupil_is_an_error_and_not_written():
    result = users_of([student("u1"), person("u2", "pupil")])
    one(result.findings, "USR-ROLE", line=line(1), sourced_id="u2", severity=ERROR, value="pupil")
    assert result.frame["sourcedId"].tolist() == ["u1"]
    assert result.counts["invalid_role"] == 1


def test_blank_role_is_a_role_error():
    one(users_of([person("u1", "")]).findings, "USR-ROLE", line=line(0), severity=ERROR)


def test_staff_are_left_out_without_findings_unless_included():
    users = [student("u1"), person("t1", "teacher", username="")]
    result = users_of(users)
    assert result.frame["sourcedId"].tolist() == ["u1"]
    assert errors(result.findings) == []
    assert result.counts["dropped_staff"] == 1


# ---- value rules -------------------------------------------------------------------------------


def test_enabled_user_not_a_boolean():
    result = users_of([student("u1", enabledUser="yes")])
    one(result.findings, "USR-ENABLED", line=line(0), sourced_id="u1", severity=ERROR, value="yes")


@pytest.mark.parametrize("column", ["username", "givenName", "familyName"])
def test_required_name_blank(column):
    result = users_of([student("u1"), student("u2", **{column: ""})])
    f = one(result.findings, "USR-REQUIRED", line=line(1), sourced_id="u2", severity=ERROR)
    assert f.column == column and f.value is None


def test_userids_not_a_list_of_type_id_pairs():
    users = [student("u1", userIds="{LDAP:u1},{SIS:123}"), student("u2", userIds="LDAP=u2")]
    result = users_of(users)
    one(result.findings, "USR-USERIDS", line=line(1), sourced_id="u2", severity=ERROR, value=None)


def test_email_not_plausible_is_a_warning():
    users = [student("u1", email="ann@example.org"), student("u2", email="ann at example")]
    result = users_of(users)
    one(result.findings, "USR-EMAIL", line=line(1), sourced_id="u2", severity=WARNING, value=None)


def test_username_duplicate_ignores_case_and_reports_both():
    users = [student("u1", username="Ann"), student("u2"), student("u3", username="ann")]
    found = of_rule(users_of(users).findings, "USR-USERNAME-DUPLICATE")
    assert [(f.line, f.sourcedId, f.severity) for f in found] == [
        (line(0), "u1", WARNING),
        (line(2), "u3", WARNING),
    ]


def test_grade_outside_ceds():
    result = users_of([student("u1", grades="09,Grade10")])
    one(result.findings, "USR-GRADE", line=line(0), sourced_id="u1", severity=ERROR)


@pytest.mark.parametrize("column", ["givenName", "familyName", "middleName"])
def test_name_chars(column):
    result = users_of([student("u1"), student("u2", **{column: "O'Brien (Jr.)"})])
    f = one(result.findings, "USR-NAME-CHARS", line=line(1), sourced_id="u2", severity=WARNING)
    assert f.column == column and f.value is None


def test_password_reported_once_file_level():
    users = [student("u1"), student("u2", password="pw1"), student("u3", password="pw2")]
    result = users_of(users)
    f = one(result.findings, "USR-PASSWORD", line=None, sourced_id=None, severity=WARNING)
    assert "2 row(s)" in f.message and f"line {line(1)}" in f.message
    assert set(result.frame["password"]) == {""}


# ---- references --------------------------------------------------------------------------------


def test_org_ref_blank():
    result = users_of([student("u1"), student("u2", orgs="")])
    f = one(result.findings, "USR-ORG-REF", line=line(1), sourced_id="u2", severity=ERROR)
    assert f.column == "orgSourcedIds"


def test_org_ref_unknown_org_names_the_missing_ids():
    result = users_of([student("u1", orgs="s1,ghost,s2,phantom")])
    one(
        result.findings,
        "USR-ORG-REF",
        line=line(0),
        sourced_id="u1",
        severity=ERROR,
        value="ghost,phantom",
    )


def test_org_refs_are_checked_against_the_orgs_the_package_can_hold():
    """The users stage runs before the orgs stage: it checks references against the source's
    writable orgs, the same ones the package's orgs.csv will take a written user's orgs from."""
    orgs = [
        org("d1", "district"),
        org("s1", "School", "d1"),  # repaired to "school": a school
        org("s2", "school", "d1", status="tobedeleted"),  # left out: unknown to users
        org("s3", "district", "d1"),  # first occurrence counts: not a school
        org("s3", "school", "d1"),
        org("", "school", "d1"),  # no sourcedId: never written
    ]
    users = [student("u1", orgs="s1"), student("u2", orgs="s2"), student("u3", orgs="s3")]
    result = users_of(users, orgs=orgs)
    assert [(f.rule, f.sourcedId) for f in errors(result.findings)] == [
        ("USR-ORG-REF", "u2"),
        ("USR-STUDENT-SCHOOL", "u3"),
    ]
    one(result.findings, "USR-ORG-REF", line=line(1), sourced_id="u2", value="s2")
    package_orgs = orgs_stage(source(orgs, users)).frame
    assert package_orgs[["sourcedId", "type"]].values.tolist() == [
        ["d1", "district"],
        ["s1", "school"],
        ["s3", "district"],
    ]


def test_student_with_no_school():
    result = users_of([student("u1", orgs="s1"), student("u2", orgs="d1")])
    one(result.findings, "USR-STUDENT-SCHOOL", line=line(1), sourced_id="u2", severity=ERROR)


def test_teacher_at_district_only_is_fine():
    users = [student("u1"), person("a1", "administrator", "d1", **{"metadata.title": "Head"})]
    assert errors(users_of(users, STAFF_OPTIONS).findings) == []


def test_agent_ref_unknown_user_is_a_warning_and_blanked():
    users = [
        student("u1", agentSourcedIds="g1"),
        student("u2", agentSourcedIds="g1,nobody"),
        person("g1", "guardian"),
    ]
    result = users_of(users)
    one(
        result.findings,
        "USR-AGENT-REF",
        line=line(1),
        sourced_id="u2",
        severity=WARNING,
        value="nobody",
    )
    assert set(result.frame["agentSourcedIds"]) == {""}


# ---- staff -------------------------------------------------------------------------------------


def test_staff_title_blank_per_row():
    users = [
        student("u1"),
        person("t1", "teacher", **{"metadata.title": "Teacher"}),
        person("t2", "teacher", **{"metadata.title": ""}),
    ]
    result = users_of(users, STAFF_OPTIONS)
    one(result.findings, "USR-STAFF-TITLE", line=line(2), sourced_id="t2", severity=ERROR)
    assert result.frame.set_index("sourcedId").at["t1", "metadata.title"] == "Teacher"


def test_staff_title_column_absent_is_reported_once_file_level():
    users = [student("u1"), person("t1", "teacher"), person("t2", "administrator", "d1")]
    result = users_of(users, STAFF_OPTIONS)
    f = one(result.findings, "USR-STAFF-TITLE", line=None, severity=ERROR)
    assert f.column == "metadata.title"


def test_staff_title_read_from_a_configured_column():
    options = Options(as_of=AS_OF, include_staff=True, title_column="metadata.positionTitle")
    users = [student("u1"), person("t1", "teacher", **{"metadata.positionTitle": "Counselor"})]
    result = users_of(users, options)
    assert errors(result.findings) == []
    assert result.frame.set_index("sourcedId").at["t1", "metadata.title"] == "Counselor"


# ---- class year --------------------------------------------------------------------------------


def test_class_year_missing_for_an_active_student():
    users = [student("u1", grades="PK"), student("u2", grades="", enabledUser="false")]
    result = users_of(users)
    one(result.findings, "USR-CLASSYEAR", line=line(0), sourced_id="u1", severity=ERROR)


def test_class_year_supplied_out_of_range():
    users = [
        student("u1", **{"metadata.classYear": "2045"}),
        student("u2", **{"metadata.classYear": "30"}),
    ]
    found = of_rule(users_of(users).findings, "USR-CLASSYEAR-RANGE")
    assert [(f.line, f.sourcedId, f.value, f.severity) for f in found] == [
        (line(0), "u1", "2045", ERROR),
        (line(1), "u2", "30", ERROR),
    ]
    assert "2026 to 2040" in found[0].message


def test_grade_multi_is_a_warning_and_writes_only_the_highest():
    result = users_of(
        [
            student("u1", grades="09,10"),
            student("u2", grades="UG,11"),  # the highest numeric grade, the class year's
            student("u3", grades="12,13"),
            student("u4", grades="10,11"),
            student("u5", grades="09,XX"),  # USR-GRADE: left as it is, never written anyway
        ]
    )
    found = of_rule(result.findings, "USR-GRADE-MULTI")
    assert [(f.sourcedId, f.value, f.severity) for f in found] == [
        ("u1", "09,10", WARNING),
        ("u2", "UG,11", WARNING),
        ("u3", "12,13", WARNING),
        ("u4", "10,11", WARNING),
        ("u5", "09,XX", WARNING),
    ]
    assert "only the highest, 10, is written" in found[0].message
    assert "only the highest, 11, is written" in found[1].message
    assert "not all of them CEDS codes" in found[4].message
    one(result.findings, "USR-GRADE", sourced_id="u5", value="09,XX")
    written = result.frame.set_index("sourcedId")
    assert written["grades"].to_dict() == {
        "u1": "10",
        "u2": "11",
        "u3": "12",
        "u4": "11",
        "u5": "09,XX",
    }
    assert written.loc["u1", "metadata.classYear"] == "2029"
    assert written.loc["u2", "metadata.classYear"] == "2028"


def test_staff_keep_their_grades_list():
    teacher = person("t1", "teacher", grades="09,10", **{"metadata.title": "Teacher"})
    result = users_of([student("u1"), teacher], options=STAFF_OPTIONS)
    assert not of_rule(result.findings, "USR-GRADE-MULTI")
    assert result.frame.set_index("sourcedId").loc["t1", "grades"] == "09,10"


def test_org_is_written_even_if_a_user_needs_only_a_department():
    orgs = [org("s1"), org("dep", "department", "s1")]
    result = users_of([student("u1", orgs="dep")], orgs=orgs)
    one(result.findings, "USR-STUDENT-SCHOOL", line=line(0), sourced_id="u1")
