"""The three stages end to end from CSV bytes: output frames, counts, bulk semantics, severities
of rows left out, and that no PII value reaches a finding."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from naviance_pipeline.oneroster import stages
from naviance_pipeline.oneroster.findings import ERROR, WARNING
from naviance_pipeline.oneroster.kernels import columns
from naviance_pipeline.oneroster.spec import (
    DEMOGRAPHICS,
    ORGS,
    USERS,
    user_output_header,
)
from naviance_pipeline.oneroster.stages import (
    build_all,
    build_demographics,
    build_users,
)
from naviance_pipeline_tests.oneroster.factories import (
    OPTIONS,
    STAFF_OPTIONS,
    clean_district,
    demo,
    district_orgs,
    errors,
    line,
    of_rule,
    one,
    orgs_stage,
    person,
    source,
    student,
)

STRING = pd.StringDtype("pyarrow")


def assert_output_shape(frame: pd.DataFrame, header: list[str]) -> None:
    assert list(frame.columns) == header
    assert isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0
    assert all(dtype == STRING for dtype in frame.dtypes)
    assert not frame.isna().any().any()
    ids = frame["sourcedId"].tolist()
    assert ids == sorted(ids)


@pytest.mark.parametrize("options", [OPTIONS, STAFF_OPTIONS], ids=["students", "with-staff"])
def test_clean_district_gives_no_findings_and_exact_frames(options):
    orgs, users, demographics = clean_district()
    orgs_r, users_r, demo_r = build_all(source(orgs, users, demographics), options)

    assert orgs_r.findings == [] and users_r.findings == [] and demo_r.findings == []
    assert_output_shape(orgs_r.frame, ORGS.header)
    assert_output_shape(users_r.frame, user_output_header(options.include_staff))
    assert_output_shape(demo_r.frame, DEMOGRAPHICS.header)

    # The district is written either way: it is the schools' parent.
    assert orgs_r.frame["sourcedId"].tolist() == ["d1", "s1", "s2", "s3"]
    students = sorted(u["sourcedId"] for u in users if u["role"] == "student")
    staff = ["a1", "t1", "t2", "t3"] if options.include_staff else []
    assert users_r.frame["sourcedId"].tolist() == sorted(students + staff)
    assert demo_r.frame["sourcedId"].tolist() == students

    by_id = users_r.frame.set_index("sourcedId")
    assert by_id.at["st00", "grades"] == "KG" and by_id.at["st00", "metadata.classYear"] == "2039"
    assert by_id.at["st09", "grades"] == "09" and by_id.at["st09", "metadata.classYear"] == "2030"
    assert by_id.at["st07", "enabledUser"] == "false"
    if options.include_staff:
        assert by_id.at["t1", "metadata.title"] == "Teacher"
        assert by_id.at["t1", "metadata.classYear"] == ""
        assert by_id.at["st09", "metadata.title"] == ""

    assert users_r.counts["read"] == len(users)
    assert users_r.counts["written"] == len(users_r.frame)
    assert users_r.counts["students"] == 21
    assert users_r.counts["disabled"] == 1
    assert users_r.counts["staff"] == len(staff)
    assert users_r.counts["dropped_staff"] == (0 if options.include_staff else 4)
    assert orgs_r.counts == {"read": 4, "dropped_status": 0, "dropped_unneeded": 0, "written": 4}
    assert demo_r.counts["written"] == 21 and demo_r.counts["missing"] == 0


def test_status_date_password_and_agents_are_written_blank():
    users = [
        student(
            "u1",
            status="active",
            dateLastModified="2026-11-01",
            password="secret",
            agentSourcedIds="u2",
        ),
        student("u2"),
    ]
    result = build_users(source(district_orgs(), users), OPTIONS)
    row = result.frame.iloc[0]
    assert (row["status"], row["dateLastModified"], row["password"], row["agentSourcedIds"]) == (
        "",
        "",
        "",
        "",
    )
    # The spec says so, and the stages read it there: no list of blank columns elsewhere.
    blank = ("status", "dateLastModified", "agentSourcedIds", "password")
    assert USERS.written_blank == blank
    assert USERS.column("agentSourcedIds").kind == "ids"  # still checked as ids


def test_deleted_rows_are_left_out_counted_and_reported_per_row():
    users = [student("u1"), student("u2", status="tobedeleted"), student("u3", status="Inactive")]
    result = build_users(source(district_orgs(), users), OPTIONS)

    assert result.frame["sourcedId"].tolist() == ["u1"]
    assert result.counts["dropped_status"] == 2
    found = of_rule(result.findings, "BULK-STATUS")
    assert [(f.line, f.sourcedId, f.severity) for f in found] == [
        (line(1), "u2", WARNING),
        (line(2), "u3", WARNING),
    ]


def test_other_statuses_are_blanked_and_reported_once_with_the_first_line():
    users = [student("u1"), student("u2", status="active"), student("u3", status="active")]
    result = build_users(source(district_orgs(), users), OPTIONS)

    assert len(result.frame) == 3
    f = one(result.findings, "BULK-STATUS", line=line(1), sourced_id="u2", severity=WARNING)
    assert "2 rows" in f.message


def test_date_last_modified_is_blanked_and_reported_as_a_repair():
    orgs = [*district_orgs()]
    orgs[2] = {**orgs[2], "dateLastModified": "2026-11-01T00:00:00Z"}
    result = orgs_stage(source(orgs, [student("u1", orgs="s2")]))

    one(result.findings, "BULK-DATE", line=line(2), sourced_id="s2", severity=WARNING)
    assert set(result.frame["dateLastModified"]) == {""}


def test_deleted_demographics_row_counts_as_missing():
    users = [student("u1")]
    demographics = [demo("u1", status="tobedeleted")]
    result = build_demographics(source(None, users, demographics), _users_frame(users), OPTIONS)

    one(result.findings, "BULK-STATUS", line=line(0), sourced_id="u1", severity=WARNING)
    one(result.findings, "DEM-MISSING", line=None, sourced_id="u1")
    assert result.frame["sourcedId"].tolist() == ["u1"]
    assert result.frame.iloc[0]["birthDate"] == ""


def test_a_repeated_sourced_id_is_written_once_first_occurrence_kept():
    users = [student("u1", givenName="First"), student("u1", givenName="Second")]
    result = build_users(source(district_orgs(), users), OPTIONS)

    assert result.frame["sourcedId"].tolist() == ["u1"]
    assert result.frame.iloc[0]["givenName"] == "First"
    assert [f.line for f in of_rule(result.findings, "ID-DUPLICATE")] == [line(0), line(1)]


def test_missing_orgs_file_gives_one_file_level_org_reference_finding():
    users = [student("u1"), student("u2")]
    src = source(None, users, [demo("u1"), demo("u2")])
    orgs_r, users_r, _ = build_all(src, OPTIONS)

    assert of_rule(orgs_r.findings, "ORG-NO-SCHOOL") == []  # SRC-MISSING-FILE says it
    one(users_r.findings, "USR-ORG-REF", line=None, severity=ERROR)


def test_orgs_stage_does_not_report_users_findings():
    users = [student("u1", username=""), person("g1", "guardian")]
    result = orgs_stage(source(district_orgs(), users))
    assert {f.file for f in result.findings} <= {ORGS.name}


def test_table_findings_are_included_and_lowered_on_rows_left_out():
    users = [student("u1", givenName="x" * 300), person("g1", "guardian", familyName="y" * 300)]
    result = build_users(source(district_orgs(), users), OPTIONS)
    found = of_rule(result.findings, "CSV-TOO-LONG")
    assert [(f.line, f.severity) for f in found] == [(line(0), WARNING), (line(1), WARNING)]


def test_no_pii_value_reaches_any_finding():
    """Every PII column holds a distinctive string on rows that break many rules; none of
    those strings may appear in a message or value."""
    secrets = {
        "username": "Zqxuser7",
        "givenName": "Zqx(Given)",
        "familyName": "Zqx,Family",
        "middleName": "Zqx.Middle",
        "identifier": "ZqxIdent42",
        "email": "zqx-not-an-email",
        "sms": "Zqx-555-0100",
        "phone": "Zqx-555-0199",
        "userIds": "Zqx-bad-userids",
        "password": "Zqx-hunter2",
    }
    users = [
        student("u1", grades="ZZ", enabledUser="maybe", **secrets),
        student("u2", **{**secrets, "username": "ZQXUSER7"}),  # username duplicate, case ignored
        person("g1", "guardian", **secrets),
        student("u3", orgs="nowhere", **secrets),
    ]
    demographics = [
        demo("u1", birthDate="2030-01-01", cityOfBirth="Zqxville"),
        demo("u2", birthDate="2010-02-30", cityOfBirth="Zqxville"),
        demo("u3", birthDate="7/9/2009", cityOfBirth="Zqxville"),
        demo("u3", birthDate="2010-02-30", cityOfBirth="Zqxville"),
        demo("nobody", birthDate="Zqx-1999", cityOfBirth="Zqxville"),
    ]
    results = build_all(source(district_orgs(), users, demographics), STAFF_OPTIONS)
    findings = [f for r in results for f in r.findings]

    rules = {f.rule for f in findings}
    assert {
        "USR-EMAIL",
        "USR-USERIDS",
        "USR-NAME-CHARS",
        "USR-USERNAME-DUPLICATE",
        "USR-PASSWORD",
        "DEM-BIRTHDATE",
        "XLS-DATE-FORMAT",
        "DEM-DUPLICATE",
    } <= rules
    distinctive = [
        *secrets.values(),
        "ZQXUSER7",
        "Zqxville",
        "7/9/2009",
        "2010-02-30",
        "2030-01-01",
        "Zqx-1999",
    ]
    for f in findings:
        text = f"{f.message} {f.value or ''}"
        assert not [s for s in distinctive if s in text], f


def test_a_large_file_validated_beside_its_other_rules_gives_what_one_thread_gives(
    monkeypatch,
):
    # As if the files were large: the validation runs on its own thread beside the stage's
    # other rules (and its checks ahead on two more), with the same findings and frames.
    users = [
        student("u1", grades="ZZ", enabledUser="maybe", email="not-an-email"),
        student("u2", username="Ann", userIds="bad"),
        student("u3", username="ann", orgs="nowhere"),
        person("g1", "guardian"),
        person("t1", "teacher", password="secret"),
    ]
    demographics = [demo("u1", birthDate="2030-01-01"), demo("u2"), demo("u2"), demo("zz")]
    district = source(district_orgs(), users, demographics)
    alone = build_all(district, STAFF_OPTIONS)

    monkeypatch.setattr(stages, "PARALLEL_ROWS", 0)
    monkeypatch.setattr(stages.schemas, "PARALLEL_ROWS", 0)
    monkeypatch.setattr(columns, "PARALLEL_ROWS", 0)
    beside = build_all(district, STAFF_OPTIONS)

    assert {"USR-EMAIL", "USR-USERNAME-DUPLICATE", "USR-ORG-REF", "DEM-DUPLICATE"} <= {
        f.rule for r in beside for f in r.findings
    }
    for one_thread, threads in zip(alone, beside, strict=True):
        assert threads.findings == one_thread.findings
        assert threads.counts == one_thread.counts
        pd.testing.assert_frame_equal(threads.frame, one_thread.frame)


def test_errors_are_reported_but_do_not_raise_on_a_broken_source():
    broken = b'sourcedId,role\r\n"unterminated,student\r\n'
    results = build_all(source(b"\xff\xfe", broken, b""), OPTIONS)
    assert errors([f for r in results for f in r.findings])
    for r in results:
        assert r.counts["written"] == len(r.frame)


# ---- helpers -----------------------------------------------------------------------------------


def _users_frame(users: list[dict]) -> pd.DataFrame:
    return build_users(source(district_orgs(), users), OPTIONS).frame


def test_stage_result_is_a_dataclass_with_the_contract_fields():
    assert [f.name for f in dataclasses.fields(orgs_stage(source()))] == [
        "frame",
        "findings",
        "counts",
    ]
