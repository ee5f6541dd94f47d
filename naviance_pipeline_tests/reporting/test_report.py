"""The validation report: counts by rule and school, first findings, repairs, class years,
package, deliveries, verdicts, and its HTML and text renderings — without a PII value."""

from __future__ import annotations

import json
import os
import re
import stat
from html.parser import HTMLParser

import pytest

from naviance_pipeline.delivery.receipts import record
from naviance_pipeline.delivery.target import DeliveryResult
from naviance_pipeline.operations.storage import DataLayout, write_private_bytes, write_private_json
from naviance_pipeline.reporting.html import render_html
from naviance_pipeline.reporting.report import (
    BLOCKED,
    DELIVERED,
    FILE_LEVEL,
    FIRST_FINDINGS,
    NOT_YET,
    UNKNOWN_SCHOOL,
    build_report,
    delivered_report,
    render_report_text,
    write_report,
)
from naviance_pipeline_tests.reporting import (
    PII_MARKERS,
    orgs_frame,
    store_frames,
    users_frame,
)

DAY = "2026-11-30"
SCRIPT = "<script>alert(1)</script>"

ORGS = orgs_frame(
    ("d1", "Unified District", "district"),
    ("s1", "North High", "school"),
    ("s2", "South & Middle", "school"),
)
USERS = users_frame(
    {"sourcedId": "u1", "orgSourcedIds": "d1,s1", "metadata.classYear": "2030"},
    {"sourcedId": "u2", "orgSourcedIds": "s2", "metadata.classYear": "2029"},
    {"sourcedId": "u3", "orgSourcedIds": "s1,s2", "metadata.classYear": "2030"},
    {"sourcedId": "u4", "orgSourcedIds": "s1", "metadata.classYear": "", "enabledUser": "false"},
    {"sourcedId": "t1", "orgSourcedIds": "s1", "role": "teacher", "metadata.classYear": ""},
)


def _f(rule, severity, file=None, line=None, column=None, sid=None, message="m", value=None):
    found = {
        "rule": rule,
        "severity": severity,
        "file": file,
        "line": line,
        "column": column,
        "sourcedId": sid,
        "message": message,
    }
    if value is not None:
        found["value"] = value
    return found


CLEAN = {
    "sis_extract": [_f("SRC-EXTRA-FILE", "warning", message="classes.csv is ignored")],
    "orgs": [],
    "users": [
        _f("CSV-WHITESPACE", "warning", "users.csv", 2, "givenName", "u1", "trimmed spaces"),
        _f("CSV-WHITESPACE", "warning", "users.csv", 4, "familyName", "u3", "trimmed spaces"),
        _f("XLS-GRADE-PADDING", "warning", "users.csv", 3, "grades", "u2", "9 → 09", "9"),
    ],
    "demographics": [_f("DEM-MISSING", "warning", "demographics.csv", None, None, "u2")],
}
WITH_ERRORS = {
    **CLEAN,
    "orgs": [_f("ORG-PARENT", "error", "orgs.csv", 3, "parentSourcedId", "s2", "no org x", "x")],
    "users": [
        *CLEAN["users"],
        _f("USR-GRADE", "error", "users.csv", 4, "grades", "u3", f"bad grade {SCRIPT}", "14"),
        _f("USR-ROLE", "warning", "users.csv", 9, "role", "gone", "left out", "aide"),
    ],
}


def _layout(tmp_path, findings: dict, *, frames: bool = True) -> DataLayout:
    layout = DataLayout(str(tmp_path), "d1")
    for stage, found in findings.items():
        write_private_json(layout.findings_path(DAY, stage), found)
    if frames:
        store_frames(layout, DAY, USERS, ORGS)
    return layout


def _package(layout: DataLayout) -> None:
    write_private_bytes(layout.package_path(DAY), b"PK fake zip")
    write_private_json(
        layout.summary_path(DAY),
        {
            "partition": DAY,
            "students": 4,
            "active_students": 3,
            "disabled_students": 1,
            "schools": {"s1": 2, "s2": 2},
        },
    )


def _deliver(layout: DataLayout, target: str, ended: str, partition: str = DAY) -> None:
    result = DeliveryResult(
        target=target,
        remote_path="/upload/NavianceOneRoster.zip",
        bytes=11,
        sha256="ab" * 32,
        attempts=1,
        started_at=ended,
        ended_at=ended,
        rename="os.replace",
    )
    record(layout, "naviance", result, partition=partition, run_id="run1")


class _TagBalance(HTMLParser):
    """Records every start tag and fails on an end tag that closes anything but the last
    open one (void elements never open)."""

    VOID = frozenset({"meta", "br", "hr", "img", "input", "link"})

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.seen: list[str] = []

    def handle_starttag(self, tag: str, attrs) -> None:
        self.seen.append(tag)
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open.pop() == tag, f"unbalanced </{tag}>"


def _school(report: dict, school: str) -> dict:
    return next(row for row in report["by_school"] if row["school"] == school)


# ---- counts -------------------------------------------------------------------------------------


def test_counts_by_rule_keep_the_rule_severity_and_the_reported_severity(tmp_path):
    report = build_report(_layout(tmp_path, WITH_ERRORS), DAY)

    by_rule = {r["rule"]: r for r in report["by_rule"]}
    assert by_rule["USR-GRADE"] == {
        "rule": "USR-GRADE",
        "rule_severity": "E",
        "family": "users",
        "errors": 1,
        "warnings": 0,
        "count": 1,
    }
    assert by_rule["CSV-WHITESPACE"]["warnings"] == 2
    # Lowered to a warning for a row the package leaves out: counted as it was reported.
    assert (by_rule["USR-ROLE"]["rule_severity"], by_rule["USR-ROLE"]["warnings"]) == ("E", 1)
    assert report["totals"] == {"findings": 8, "errors": 2, "warnings": 6, "repairs": 3}
    assert report["stages"] == [
        {"stage": "sis_extract", "errors": 0, "warnings": 1},
        {"stage": "users", "errors": 1, "warnings": 4},
        {"stage": "orgs", "errors": 1, "warnings": 0},
        {"stage": "demographics", "errors": 0, "warnings": 1},
    ]


def test_findings_are_counted_per_school_of_the_user_or_org(tmp_path):
    report = build_report(_layout(tmp_path, WITH_ERRORS), DAY)

    order = [row["school"] for row in report["by_school"]]
    assert order == ["s1", "s2", UNKNOWN_SCHOOL, FILE_LEVEL]
    # u1 (d1 is a district, not a school) and u3, who is in both schools.
    assert _school(report, "s1") == {
        "school": "s1",
        "name": "North High",
        "errors": 1,
        "warnings": 2,
        "by_rule": {"CSV-WHITESPACE": 2, "USR-GRADE": 1},
    }
    # The org finding on s2 itself, plus users u2 and u3.
    assert _school(report, "s2")["by_rule"] == {
        "CSV-WHITESPACE": 1,
        "DEM-MISSING": 1,
        "ORG-PARENT": 1,
        "USR-GRADE": 1,
        "XLS-GRADE-PADDING": 1,
    }
    assert _school(report, "s2")["name"] == "South & Middle"
    assert _school(report, UNKNOWN_SCHOOL)["by_rule"] == {"USR-ROLE": 1}  # row left out
    assert _school(report, FILE_LEVEL)["by_rule"] == {"SRC-EXTRA-FILE": 1}


def test_without_a_users_frame_user_findings_have_an_unknown_school(tmp_path):
    report = build_report(_layout(tmp_path, WITH_ERRORS, frames=False), DAY)

    assert _school(report, UNKNOWN_SCHOOL)["errors"] == 1  # USR-GRADE on u3
    assert _school(report, "s2")["by_rule"] == {"ORG-PARENT": 1}
    assert report["class_years"] == []


def test_first_findings_keep_line_and_value_and_are_capped_per_rule(tmp_path):
    many = [
        _f("CSV-WHITESPACE", "warning", "demographics.csv", line, "sex", f"u{line}", value="x")
        for line in range(2, 2 + FIRST_FINDINGS + 5)
    ]
    report = build_report(_layout(tmp_path, {**WITH_ERRORS, "demographics": many}), DAY)

    first = report["first_findings"]
    assert len(first["CSV-WHITESPACE"]) == FIRST_FINDINGS
    assert first["USR-GRADE"] == [
        {
            "rule": "USR-GRADE",
            "severity": "error",
            "file": "users.csv",
            "line": 4,
            "column": "grades",
            "sourcedId": "u3",
            "message": f"bad grade {SCRIPT}",
            "value": "14",
            "stage": "users",
        }
    ]
    assert first["ORG-PARENT"][0]["line"] == 3
    assert "value" not in first["CSV-WHITESPACE"][0]  # value only when present
    assert first["CSV-WHITESPACE"][0]["line"] == 2


def test_a_stored_pii_value_is_dropped_even_if_a_stage_wrote_one(tmp_path):
    leaky = {
        "users": [
            _f("USR-NAME-CHARS", "warning", "users.csv", 5, "givenName", "u1", "m", "Zebediah")
        ]
    }

    report = build_report(_layout(tmp_path, leaky), DAY)

    assert "value" not in report["first_findings"]["USR-NAME-CHARS"][0]


def test_repairs_are_the_r_rules(tmp_path):
    report = build_report(_layout(tmp_path, WITH_ERRORS), DAY)

    assert report["repairs"] == [
        {"rule": "CSV-WHITESPACE", "count": 2},
        {"rule": "XLS-GRADE-PADDING", "count": 1},
    ]


def test_class_years_per_school_count_students_only(tmp_path):
    report = build_report(_layout(tmp_path, CLEAN), DAY)

    assert report["class_years"] == [
        {
            "school": "s1",
            "name": "North High",
            "students": 3,
            "class_years": {"(none)": 1, "2030": 2},
        },
        {
            "school": "s2",
            "name": "South & Middle",
            "students": 2,
            "class_years": {"2029": 1, "2030": 1},
        },
    ]


def test_package_size_hash_and_summary(tmp_path):
    layout = _layout(tmp_path, CLEAN)
    _package(layout)

    package = build_report(layout, DAY)["package"]

    assert package["bytes"] == len(b"PK fake zip")
    assert re.fullmatch(r"[0-9a-f]{64}", package["sha256"])
    assert package["summary"]["active_students"] == 3
    assert build_report(_layout(tmp_path / "none", CLEAN), DAY)["package"] is None


# ---- verdicts -----------------------------------------------------------------------------------


def test_verdict_delivered_when_a_receipt_exists_for_the_date(tmp_path):
    layout = _layout(tmp_path, CLEAN)
    _package(layout)
    _deliver(layout, "file:///outbox", "2026-11-30T07:00:00.000+00:00")
    _deliver(layout, "sftp://u@h:22/up", "2026-11-29T07:00:00.000+00:00", "2026-11-29")

    report = build_report(layout, DAY)

    assert report["verdict"]["status"] == DELIVERED
    assert "file:///outbox" in report["verdict"]["reason"]
    assert [d["target"] for d in report["deliveries"]] == ["file:///outbox"]
    assert report["deliveries"][0]["run_id"] == "run1"


def test_after_a_delivery_the_stored_report_gets_the_delivery_and_keeps_the_rest(tmp_path):
    layout = _layout(tmp_path, CLEAN)
    _package(layout)
    packaged = build_report(layout, DAY)
    write_report(layout, DAY, packaged)
    # Stored data changing after the package was built does not change what was delivered.
    store_frames(layout, DAY, users_frame({"sourcedId": "u9", "orgSourcedIds": "s1"}), ORGS)
    _deliver(layout, "file:///outbox", "2026-11-30T07:00:00.000+00:00")

    report = delivered_report(layout, DAY)

    assert report["verdict"]["status"] == DELIVERED
    assert "file:///outbox" in report["verdict"]["reason"]
    assert [d["target"] for d in report["deliveries"]] == ["file:///outbox"]
    kept = {k: v for k, v in report.items() if k not in ("verdict", "deliveries")}
    assert kept.keys() == packaged.keys() - {"verdict", "deliveries"}
    assert kept == json.loads(json.dumps({k: packaged[k] for k in kept}))
    rebuilt = build_report(layout, DAY)["class_years"]
    assert report["class_years"] == packaged["class_years"] != rebuilt


def test_after_a_delivery_with_no_stored_report_the_report_is_built_whole(tmp_path):
    layout = _layout(tmp_path, CLEAN)
    _package(layout)
    _deliver(layout, "file:///outbox", "2026-11-30T07:00:00.000+00:00")

    assert delivered_report(layout, DAY) == build_report(layout, DAY)


def test_verdict_blocked_by_error_findings_names_the_rules(tmp_path):
    verdict = build_report(_layout(tmp_path, WITH_ERRORS), DAY)["verdict"]

    assert verdict["status"] == BLOCKED
    assert verdict["blocking"] == {"ORG-PARENT": 1, "USR-GRADE": 1}
    assert "ORG-PARENT (1)" in verdict["reason"] and "USR-GRADE (1)" in verdict["reason"]


def test_verdict_blocked_by_guards(tmp_path):
    guards = [_f("GRD-STUDENT-DROP", "error", message="active students fell from 10 to 5")]
    layout = _layout(tmp_path, {**CLEAN, "guards": guards})
    _package(layout)

    report = build_report(layout, DAY)

    assert report["verdict"]["status"] == BLOCKED
    assert report["verdict"]["blocking"] == {"GRD-STUDENT-DROP": 1}
    assert "guards" in report["verdict"]["reason"]
    assert report["stages"][-1] == {"stage": "guards", "errors": 1, "warnings": 0}


def test_verdict_not_delivered_yet_says_what_is_missing(tmp_path):
    layout = _layout(tmp_path, CLEAN)
    assert build_report(layout, DAY)["verdict"] == {
        "status": NOT_YET,
        "reason": "no delivery of this date yet; no package built",
        "blocking": {},
    }
    partial = _layout(tmp_path / "partial", {"sis_extract": []})
    assert (
        "stages not run: users, orgs, demographics"
        in (build_report(partial, DAY)["verdict"]["reason"])
    )


def test_a_given_verdict_overrides_the_computed_one(tmp_path):
    verdict = build_report(_layout(tmp_path, CLEAN), DAY, verdict="run failed")["verdict"]

    assert verdict["status"] == "run failed"
    assert "no delivery of this date yet" in verdict["reason"]


def test_a_date_never_run_gives_an_empty_report(tmp_path):
    report = build_report(DataLayout(str(tmp_path), "d1"), DAY)

    assert report["totals"] == {"findings": 0, "errors": 0, "warnings": 0, "repairs": 0}
    assert report["verdict"]["status"] == NOT_YET
    assert "no findings" in render_html(report).lower()


# ---- renderings and files -----------------------------------------------------------------------


def test_report_html_and_text_hold_no_pii_from_the_frames(tmp_path):
    layout = _layout(tmp_path, WITH_ERRORS)
    _package(layout)
    report = build_report(layout, DAY)

    for wire in (json.dumps(report), render_html(report), render_report_text(report)):
        for marker in PII_MARKERS:
            assert marker not in wire


def test_html_has_every_section_and_keeps_markup_in_messages_escaped(tmp_path):
    layout = _layout(tmp_path, WITH_ERRORS)
    _package(layout)
    page = render_html(build_report(layout, DAY))

    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    parser = _TagBalance()
    parser.feed(page)
    parser.close()
    assert parser.open == []
    assert "script" not in parser.seen and "link" not in parser.seen  # no code, no assets
    for anchor in (
        "totals",
        "by-rule",
        "by-school",
        "first-findings",
        "repairs",
        "class-years",
        "package",
        "deliveries",
    ):
        assert f'<section id="{anchor}">' in page
    assert 'class="verdict blocked"' in page
    assert "<script" not in page
    assert "bad grade &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "South &amp; Middle" in page
    assert "src=" not in page


def test_text_report_shows_verdict_rules_and_first_findings(tmp_path):
    text = render_report_text(build_report(_layout(tmp_path, WITH_ERRORS), DAY))

    assert "Verdict: BLOCKED" in text
    assert "USR-GRADE" in text
    assert "users.csv, line 4, column grades, sourcedId u3" in text
    assert "Repairs made: CSV-WHITESPACE (2), XLS-GRADE-PADDING (1)" in text


def test_write_report_writes_owner_only_json_and_html(tmp_path):
    layout = _layout(tmp_path, WITH_ERRORS)
    report = build_report(layout, DAY)

    json_path, html_path = write_report(layout, DAY, report)

    assert json_path == layout.base / "reports" / DAY / "report.json"
    assert json.loads(json_path.read_text()) == report
    assert html_path.read_text().startswith("<!DOCTYPE html>")
    for path in (json_path, html_path):
        assert stat.S_IMODE(os.stat(path.path).st_mode) == 0o600


@pytest.mark.parametrize("stage", ["users", "demographics"])
def test_a_finding_on_a_user_missing_from_the_frame_is_not_lost(tmp_path, stage):
    found = {stage: [_f("ID-DUPLICATE", "error", f"{stage}.csv", 7, "sourcedId", "zz")]}

    report = build_report(_layout(tmp_path, found), DAY)

    assert _school(report, UNKNOWN_SCHOOL)["by_rule"] == {"ID-DUPLICATE": 1}
    assert report["first_findings"]["ID-DUPLICATE"][0]["line"] == 7
