"""Findings caused by another finding on the same row (user) are reported once, under the cause,
with the count of consequences (``rules.CAUSES``, declared by ``consequence_of`` in the
registry), and block exactly as before: the same stages and Dagster checks fail, the same rows
are dropped and the package bytes are the same. "Before" is the same code with the registry's
consequence declarations taken out (nothing is then counted under a cause)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from naviance_pipeline import cli
from naviance_pipeline.defs.checks import check_results
from naviance_pipeline.oneroster import findings, rules
from naviance_pipeline.oneroster.findings import (
    ERROR,
    WARNING,
    Finding,
    has_errors,
    summarize,
)
from naviance_pipeline.oneroster.manifest import manifest_frame
from naviance_pipeline.oneroster.package import build_package
from naviance_pipeline.oneroster.sample import write_sample_district
from naviance_pipeline.oneroster.source import open_source
from naviance_pipeline.oneroster.stages import build_all
from naviance_pipeline.operations.storage import DataLayout, write_private_json
from naviance_pipeline.reporting.report import (
    build_report,
    render_report_markdown,
    render_report_text,
)
from naviance_pipeline_tests.oneroster.factories import (
    OPTIONS,
    demo,
    district_orgs,
    line,
    of_rule,
    one,
    person,
    source,
    student,
)

DEM_NOTE = " (and 1 consequence: DEM-USER-REF in demographics.csv)"
GRADE_NOTE = " (and 1 consequence: USR-CLASSYEAR in users.csv)"


def _without_consequences(monkeypatch) -> None:
    """The registry as it was before: no rule is a consequence of another."""
    for code in list(rules.CAUSES):
        monkeypatch.delitem(rules.CAUSES, code)


# ---- the two pairs ------------------------------------------------------------------------------


def test_a_user_left_out_for_its_role_counts_its_demographics_row_under_usr_role():
    users = [student("u1"), person("u2", "pupil"), person("u3", "")]
    rows = [demo("u1"), demo("u2"), demo("u3"), demo("ghost")]
    _, users_r, demo_r = build_all(source(district_orgs(), users, rows), OPTIONS)

    pupil, blank = of_rule(users_r.findings, "USR-ROLE")
    assert (pupil.line, pupil.sourcedId, pupil.severity) == (line(1), "u2", ERROR)
    assert pupil.consequences == {"DEM-USER-REF": 1}
    assert pupil.message.endswith(DEM_NOTE)
    assert pupil.to_dict()["consequences"] == {"DEM-USER-REF": 1}
    assert (blank.line, blank.sourcedId, blank.value) == (line(2), "u3", "")
    assert blank.consequences == {"DEM-USER-REF": 1}
    # Only the row of no user at all is still reported on its own.
    ghost = one(demo_r.findings, "DEM-USER-REF", line=line(3), severity=WARNING)
    assert ghost.sourcedId == "ghost" and ghost.consequences is None
    assert "consequences" not in ghost.to_dict()
    # The rows are left out as before.
    assert demo_r.frame["sourcedId"].tolist() == ["u1"]
    assert demo_r.counts["dropped_user_ref"] == 3


def test_an_invalid_grade_counts_the_missing_class_year_under_usr_grade():
    users = [student("u1", grades="14"), student("u2", grades="PK"), student("u3", grades="09")]
    _, users_r, _ = build_all(source(district_orgs(), users, [demo("u1")]), OPTIONS)

    grade = one(users_r.findings, "USR-GRADE", line=line(0), sourced_id="u1", severity=ERROR)
    assert grade.consequences == {"USR-CLASSYEAR": 1} and grade.message.endswith(GRADE_NOTE)
    # PK is a CEDS grade without a class year: that USR-CLASSYEAR has no cause to go under.
    assert [f.sourcedId for f in of_rule(users_r.findings, "USR-CLASSYEAR")] == ["u2"]


def test_a_consequence_more_severe_than_its_cause_is_still_reported():
    """A warning cannot carry an error, which would then no longer block. (The stages lower
    USR-GRADE and USR-CLASSYEAR on the same rows, so it does not arise there today.)"""
    cause = Finding("USR-GRADE", WARNING, "users.csv", 2, "grades", "u1", "grades: …", "14")
    effect = Finding("USR-CLASSYEAR", ERROR, "users.csv", 2, "metadata.classYear", "u1", "…")
    other = Finding("USR-CLASSYEAR", ERROR, "users.csv", 3, "metadata.classYear", "u2", "…")
    assert findings.fold_same_row([cause, effect, other], "USR-CLASSYEAR") == [cause, effect, other]
    lowered = Finding(**{**effect.__dict__, "severity": WARNING})
    folded = findings.fold_same_row([cause, lowered, other], "USR-CLASSYEAR")
    assert [f.rule for f in folded] == ["USR-GRADE", "USR-CLASSYEAR"]
    assert folded[0].consequences == {"USR-CLASSYEAR": 1} and folded[1] is other


def test_a_user_repeated_with_a_student_row_has_no_consequence():
    """u2 is a pupil on one row and a student on another (ID-DUPLICATE): the student is in the
    package, so its demographics row is matched and USR-ROLE counts nothing."""
    users = [student("u1"), person("u2", "pupil"), student("u2")]
    _, users_r, demo_r = build_all(
        source(district_orgs(), users, [demo("u1"), demo("u2")]), OPTIONS
    )
    assert one(users_r.findings, "USR-ROLE").consequences is None
    assert of_rule(demo_r.findings, "DEM-USER-REF") == []


def test_a_deleted_users_demographics_row_is_counted_under_bulk_status():
    """A pupil marked tobedeleted is left out for its status (USR-ROLE is then a warning): its
    demographics row is counted under the row's BULK-STATUS, once."""
    users = [student("u1"), person("u2", "pupil", status="tobedeleted")]
    _, users_r, demo_r = build_all(
        source(district_orgs(), users, [demo("u1"), demo("u2")]), OPTIONS
    )
    assert one(users_r.findings, "USR-ROLE", severity=WARNING).consequences is None
    deleted = one(users_r.findings, "BULK-STATUS", line=line(1), severity=WARNING)
    assert deleted.consequences == {"DEM-USER-REF": 1} and deleted.message.endswith(DEM_NOTE)
    assert of_rule(demo_r.findings, "DEM-USER-REF") == []


def test_a_user_left_out_twice_is_counted_once_under_the_first_cause():
    """u2 deleted on one row, a pupil on another: its demographics row goes under USR-ROLE."""
    users = [student("u1"), student("u2", status="tobedeleted"), person("u2", "pupil")]
    _, users_r, demo_r = build_all(
        source(district_orgs(), users, [demo("u1"), demo("u2")]), OPTIONS
    )
    assert one(users_r.findings, "USR-ROLE").consequences == {"DEM-USER-REF": 1}
    assert one(users_r.findings, "BULK-STATUS").consequences is None
    assert of_rule(demo_r.findings, "DEM-USER-REF") == []


# ---- blocking exactly as before, on damaged sample districts ---------------------------------


def _damaged(tmp_path: Path, errors: bool) -> str:
    """A generated district (60 students) damaged with pandas. ``errors``: pupils, a blank
    role, grade 14 on active students, a pupil repeating a student's sourcedId and a stray
    demographics row; always: grade 14 on students marked tobedeleted (whose demographics
    rows stay), which the package leaves out anyway: without ``errors`` it is delivered."""
    folder = write_sample_district(str(tmp_path / "district"), students=60, fmt="folder")
    read = {"dtype": str, "keep_default_na": False}
    users = pd.read_csv(f"{folder}/users.csv", **read)
    demographics = pd.read_csv(f"{folder}/demographics.csv", **read)
    students = users.index[users["role"] == "student"]
    if errors:
        users.loc[students[:5], "role"] = "pupil"
        users.loc[students[5], "role"] = ""
        users.loc[students[6:9], "grades"] = "14"
        repeated = users.loc[[students[10]]].assign(role="pupil")
        users = pd.concat([users, repeated], ignore_index=True)
        stray = demographics.iloc[[0]].assign(sourcedId="not-a-user")
        demographics = pd.concat([demographics, stray], ignore_index=True)
    users.loc[students[20:23], ["grades", "status"]] = ["14", "tobedeleted"]
    users.to_csv(f"{folder}/users.csv", index=False)
    demographics.to_csv(f"{folder}/demographics.csv", index=False)
    return folder


def _run(folder: str, out: Path):
    """The stages' results and the package: its findings and bytes (None when its contract
    refused the frames). Built whatever the stages found, to compare it; whether it would be
    delivered is decided by the findings, compared apart."""
    stages = build_all(open_source(folder, OPTIONS), OPTIONS)
    frames = [s.frame for s in stages]
    result = build_package(manifest_frame(OPTIONS), *frames, OPTIONS, str(out))
    return stages, (result.findings, out.read_bytes() if out.exists() else None)


def _checks(stages) -> dict:
    """Which Dagster checks pass, per asset: what blocks the date."""
    assets = ("orgs", "users", "demographics")
    return {
        (asset, r.check_name): r.passed
        for asset, stage in zip(assets, stages, strict=True)
        for r in check_results(asset, stage.findings, "2026-11-30")
    }


@pytest.mark.parametrize("errors", [True, False], ids=["blocked", "delivered"])
def test_blocking_rows_and_package_bytes_are_as_before(tmp_path, monkeypatch, errors):
    folder = _damaged(tmp_path, errors)
    after, after_zip = _run(folder, tmp_path / "after.zip")
    with monkeypatch.context() as m:
        _without_consequences(m)
        before, before_zip = _run(folder, tmp_path / "before.zip")

    assert after_zip == before_zip
    assert after_zip[1] is not None or errors  # the delivered case has a package to compare
    assert _checks(after) == _checks(before)
    for a, b in zip(after, before, strict=True):
        assert has_errors(a.findings) == has_errors(b.findings)
        pd.testing.assert_frame_equal(a.frame, b.frame)
        assert a.counts == b.counts
    found_after = [f for s in after for f in s.findings]
    found_before = [f for s in before for f in s.findings]
    assert all(f.consequences is None for f in found_before)
    # Every finding of before is reported, or counted under its cause: nothing else changed.
    counted = Counter(summarize(found_after)["by_rule"])
    for under in summarize(found_after).get("consequences", {}).values():
        counted.update(under)
    assert counted == Counter(summarize(found_before)["by_rule"])
    gone = Counter((f.rule, f.severity) for f in found_before) - Counter(
        (f.rule, f.severity) for f in found_after
    )
    consequences = summarize(found_after)["consequences"]
    if errors:
        assert consequences == {
            "BULK-STATUS": {"DEM-USER-REF": 3},
            "USR-GRADE": {"USR-CLASSYEAR": 6},
            "USR-ROLE": {"DEM-USER-REF": 6},
        }
        assert gone == {
            ("DEM-USER-REF", WARNING): 9,
            ("USR-CLASSYEAR", ERROR): 3,
            ("USR-CLASSYEAR", WARNING): 3,
        }
        assert has_errors(found_after)
    else:
        assert consequences == {
            "BULK-STATUS": {"DEM-USER-REF": 3},
            "USR-GRADE": {"USR-CLASSYEAR": 3},
        }
        assert gone == {("DEM-USER-REF", WARNING): 3, ("USR-CLASSYEAR", WARNING): 3}
        assert not has_errors(found_after)
    # The row of no user at all: no cause, reported as before.
    stray = [f.sourcedId for f in of_rule(found_after, "DEM-USER-REF")]
    assert stray == (["not-a-user"] if errors else [])


# ---- where the count shows ----------------------------------------------------------------------


def test_validate_json_and_text_show_the_count(tmp_path, capsys):
    folder = _damaged(tmp_path, errors=True)
    assert cli.main(["validate", folder, "--format", "json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["summary"]["consequences"] == {
        "BULK-STATUS": {"DEM-USER-REF": 3},
        "USR-GRADE": {"USR-CLASSYEAR": 6},
        "USR-ROLE": {"DEM-USER-REF": 6},
    }
    roles = [f for f in payload["findings"] if f["rule"] == "USR-ROLE"]
    # Six pupils (one with no role), and the pupil repeating a student's id: nothing to count.
    assert sorted(json.dumps(f.get("consequences")) for f in roles) == [
        "null",
        *[json.dumps({"DEM-USER-REF": 1})] * 6,
    ]
    assert payload["summary"]["by_rule"]["DEM-USER-REF"] == 1  # the stray row
    assert cli.main(["validate", folder]) == 1
    text = capsys.readouterr().out
    assert "USR-ROLE (error) × 7 (and 6 consequences counted under them: DEM-USER-REF × 6)" in text
    assert DEM_NOTE in text


def test_check_metadata_shows_the_count():
    cause = Finding(
        "USR-ROLE", ERROR, "users.csv", 3, "role", "u2", "role: …" + DEM_NOTE, "pupil",
        {"DEM-USER-REF": 1},
    )  # fmt: skip
    (result,) = [r for r in check_results("users", [cause], "2026-11-30") if not r.passed]
    assert result.metadata["consequences_by_rule"].data == {"USR-ROLE": {"DEM-USER-REF": 1}}
    assert "DEM-USER-REF × 1 under USR-ROLE" in result.description
    assert DEM_NOTE in result.metadata["first_findings"].md_str


def test_the_report_shows_the_count(tmp_path):
    layout = DataLayout(str(tmp_path), "d1")
    day = "2026-11-30"
    _, users_r, demo_r = build_all(
        source(district_orgs(), [student("u1", grades="14"), person("u2", "pupil")], [demo("u2")]),
        OPTIONS,
    )
    for stage, result in (("users", users_r), ("demographics", demo_r)):
        write_private_json(layout.findings_path(day, stage), [f.to_dict() for f in result.findings])
    report = build_report(layout, day)

    assert report["consequences"] == {
        "USR-GRADE": {"USR-CLASSYEAR": 1},
        "USR-ROLE": {"DEM-USER-REF": 1},
    }
    by_rule = {r["rule"]: r for r in report["by_rule"]}
    assert by_rule["USR-ROLE"]["consequences"] == 1 and by_rule["USR-ROLE"]["errors"] == 1
    assert set(by_rule) == {"USR-GRADE", "USR-ROLE", "DEM-MISSING"}
    (first,) = report["first_findings"]["USR-ROLE"]
    assert first["consequences"] == {"DEM-USER-REF": 1} and first["message"].endswith(DEM_NOTE)
    line = "USR-GRADE: USR-CLASSYEAR (1); USR-ROLE: DEM-USER-REF (1)"
    assert f"Counted under their cause (same user), not listed: {line}" in render_report_text(
        report
    )
    assert f"- Counted under their cause: {line}" in render_report_markdown(report)
