"""PII typed into the wrong column is never printed (issue 15).

A value of a non-PII column is shown in a finding only when it has the shape of that column's
codes; an e-mail address, a full name or a birth date typed into ``role``, ``grades``, ``sex``,
``sourcedId``… is described by its shape instead. Every non-PII column of the three files is
tried with each of the three, through ``validate`` (text and JSON), and once through the Dagster
job: its event log, stored findings and the report.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from naviance_pipeline import cli
from naviance_pipeline.oneroster.spec import (
    CLASS_YEAR_COLUMN,
    DEMOGRAPHICS,
    MANIFEST_ROWS,
    ORGS,
    USERS,
)
from naviance_pipeline.operations.storage import DataLayout
from naviance_pipeline_tests.conftest import make_settings
from naviance_pipeline_tests.oneroster.factories import clean_district, csv_bytes, file_bytes
from naviance_pipeline_tests.pipeline_helpers import (
    failed_checks,
    first_student_editor,
    rewrite_zip,
    run_job,
)

EMAIL, FULL_NAME, BIRTH_DATE = "maria.gomez@example.org", "Maria Luisa Gomez", "2009-04-17"
PII = (EMAIL, FULL_NAME, BIRTH_DATE)
AS_OF = "2026-11-30"

# Every non-PII column of the three files (and the class year extension of users.csv), and the
# row of the small district it is typed into: a school, a student, that student's demographics.
CASES = [
    (spec, column, row)
    for spec, row in ((ORGS, 1), (USERS, 0), (DEMOGRAPHICS, 0))
    for column in [
        *(c.name for c in spec.columns if not c.pii),
        *([CLASS_YEAR_COLUMN] if spec is USERS else []),
    ]
]


def write_district(folder: Path, spec_name: str, column: str, row: int, value: str) -> Path:
    orgs, users, demographics = clean_district(staff=False)
    rows = {ORGS.name: orgs, USERS.name: users, DEMOGRAPHICS.name: demographics}
    rows[spec_name][row] = {**rows[spec_name][row], column: value}
    folder.mkdir(parents=True)
    manifest = [{"propertyName": p, "value": v or "x"} for p, v in MANIFEST_ROWS]
    (folder / "manifest.csv").write_bytes(csv_bytes(["propertyName", "value"], manifest))
    for spec in (ORGS, USERS, DEMOGRAPHICS):
        (folder / spec.name).write_bytes(file_bytes(spec, rows[spec.name]))
    return folder


def test_every_non_pii_column_is_tried():
    tried = {(spec.name, column) for spec, column, _ in CASES}
    assert ("users.csv", "role") in tried and ("users.csv", "grades") in tried
    assert ("demographics.csv", "sex") in tried and ("orgs.csv", "type") in tried
    assert not {c for _, c in tried} & {"givenName", "email", "birthDate", "username"}
    assert len(tried) == 7 + 8 + 1 + 14  # orgs, users and its class year, demographics


@pytest.mark.parametrize(("spec", "column", "row"), CASES, ids=lambda x: getattr(x, "name", x))
def test_pii_typed_into_a_non_pii_column_is_never_printed(tmp_path, capsys, spec, column, row):
    for k, value in enumerate(PII):
        folder = write_district(tmp_path / str(k), spec.name, column, row, value)
        assert value.encode() in (folder / spec.name).read_bytes()
        printed = []
        for fmt in ("json", "text"):
            code = cli.main(["validate", str(folder), "--as-of", AS_OF, "--format", fmt])
            out, err = capsys.readouterr()
            assert code in (0, 1), err
            printed.append(out + err)
        for text in printed:
            for pii in PII:
                assert pii not in text, f"{pii!r} typed into {spec.name} {column} was printed"


def test_codes_are_still_shown_and_other_values_described_by_shape():
    from naviance_pipeline.oneroster.findings import shown, shown_values

    assert shown("pupil", "role") == "pupil"
    assert shown("14", "grades") == "14"
    assert shown("2030", CLASS_YEAR_COLUMN) == "2030"
    assert shown("1.23457E+11", "sourcedId") == "1.23457E+11"  # XLS-SCIENTIFIC-ID shows it
    assert shown("00012345", "sourcedId") == "00012345"  # ids are numbers
    assert shown(EMAIL, "role") == "[not shown: an e-mail address]"
    assert shown(BIRTH_DATE, "sex") == "[not shown: a date]"
    assert shown("4/17/2009", "sex") == "[not shown: a date]"
    assert shown(FULL_NAME, "grades") == "[not shown: 17 characters, 3 words]"
    assert shown("555-123-4567", "grades") == "[not shown: a number of 10 digits]"
    assert shown("Mariaaaaaaaaaaaaaaaaa", "sex") == "[not shown: 21 characters, 1 word]"
    assert shown("Gomez", "givenName") is None  # a PII column shows nothing
    values = ["pupil", EMAIL, FULL_NAME, BIRTH_DATE, "555-123-4567", "", None, "09,10"]
    for column in ("role", "sourcedId", "orgSourcedIds", "familyName"):
        assert shown_values(values, column) == [shown(v, column) for v in values]


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def test_the_dagster_run_its_event_log_findings_and_report_hold_no_misplaced_pii(
    tmp_path, tiny_district, instance
):
    bad = tmp_path / "bad.zip"
    edit, _ = first_student_editor({"role": EMAIL, "grades": FULL_NAME, "enabledUser": BIRTH_DATE})
    rewrite_zip(tiny_district, bad, "users.csv", edit)
    settings = make_settings(tmp_path / "home", bad)

    result = run_job(settings, "2026-11-24", instance)

    assert not result.success
    assert "USR-ROLE" in failed_checks(result)["users:user_rules"]
    logged = [str(entry) for entry in instance.all_logs(result.run_id)]
    assert any("USR-ROLE" in text for text in logged)  # the findings did reach the log
    layout = DataLayout(settings.data_root, settings.district)
    findings = Path(str(layout.findings_path("2026-11-24", "users")))
    stored = json.loads(findings.read_text())
    assert {"USR-ROLE", "USR-GRADE", "USR-ENABLED"} <= {f["rule"] for f in stored}
    reports = [p for p in Path(settings.data_root).rglob("report*") if p.is_file()]
    assert reports  # report.json and report.html
    texts = [*logged, findings.read_text(), *(p.read_text() for p in reports)]
    for text in texts:
        for pii in PII:
            assert pii not in text
