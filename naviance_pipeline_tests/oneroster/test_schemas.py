"""The Pandera models generated from the spec table, the mapping of failure cases to findings,
and the identifier rules (ID-*, XLS-SCIENTIFIC-ID, XLS-LEADING-ZERO) through the stages."""

from __future__ import annotations

import dataclasses
import re
from datetime import date

import pandas as pd
import pandera.pandas as pa
import pytest

from naviance_pipeline.cli import main
from naviance_pipeline.oneroster import schemas
from naviance_pipeline.oneroster.findings import ERROR, RULES, WARNING
from naviance_pipeline.oneroster.rules import column_rules, frame_rules
from naviance_pipeline.oneroster.schemas import model_for, validate
from naviance_pipeline.oneroster.spec import (
    DEMOGRAPHICS,
    FILES,
    ORGS,
    USERS,
    output_header,
)
from naviance_pipeline.oneroster.stages import build_users
from naviance_pipeline_tests.oneroster.factories import (
    OPTIONS,
    STAFF_OPTIONS,
    district_orgs,
    errors,
    file_bytes,
    line,
    of_rule,
    one,
    org,
    orgs_stage,
    person,
    source,
    student,
)

STRING = pd.StringDtype("pyarrow")


@pytest.mark.parametrize("options", [OPTIONS, STAFF_OPTIONS], ids=["students", "with-staff"])
@pytest.mark.parametrize("name", list(FILES))
def test_model_columns_are_the_output_header_strict_and_ordered(name, options):
    spec = FILES[name]
    schema = model_for(spec, options)
    assert isinstance(schema, pa.DataFrameSchema)
    assert list(schema.columns) == output_header(spec, options.include_staff)
    assert schema.strict is True and schema.ordered is True
    assert {str(c.dtype) for c in schema.columns.values()} == {"string[pyarrow]"}


@pytest.mark.parametrize("name", list(FILES))
def test_every_check_is_named_by_a_rule_code(name):
    spec = FILES[name]
    schema = model_for(spec, OPTIONS)
    names = [c.name for col in schema.columns.values() for c in col.checks]
    names += [c.name for c in schema.checks]
    assert names and set(names) <= set(RULES)
    declared = [r.code for c in spec.columns for r in column_rules(name, c)]
    declared += ["USR-CLASSYEAR-RANGE"] if spec is USERS else []  # on the extension column
    assert sorted(names) == sorted(declared + [r.code for r in frame_rules(name)])


def test_models_are_cached_per_file_and_options():
    assert model_for(USERS, OPTIONS) is model_for(USERS, OPTIONS)
    assert model_for(USERS, OPTIONS) is not model_for(USERS, STAFF_OPTIONS)


def output_like(spec, rows: list[dict], lines: list[int]) -> pd.DataFrame:
    header = output_header(spec)
    frame = pd.DataFrame([{c: r.get(c, "") for c in header} for r in rows], dtype=STRING)
    frame.index = pd.Index(lines, name="line")
    return frame


def test_failure_cases_become_findings_with_line_sourced_id_and_no_pii_value():
    rows = [
        {"sourcedId": "o1", "name": "One", "type": "school"},
        {"sourcedId": "o2", "name": "", "type": "School"},
    ]
    found = validate(output_like(ORGS, rows, [7, 12]), ORGS, OPTIONS)
    assert [(f.rule, f.line, f.sourcedId, f.column, f.value) for f in found] == [
        ("ORG-NAME", 12, "o2", "name", ""),
        ("ORG-TYPE", 12, "o2", "type", "School"),
    ]
    row = {**student("u1", username=""), "metadata.classYear": "2030"}
    found = validate(output_like(USERS, [row], [3]), USERS, OPTIONS)
    f = one(found, "USR-REQUIRED", line=3, sourced_id="u1", column="username")
    assert f.value is None


def test_skip_columns_drops_findings_on_absent_columns():
    frame = output_like(ORGS, [{"sourcedId": "o1", "type": "school"}], [2])
    assert (
        of_rule(validate(frame, ORGS, OPTIONS, skip_columns=frozenset({"name"})), "ORG-NAME") == []
    )


def test_a_frame_without_the_model_columns_is_a_programming_error():
    frame = output_like(ORGS, [{"sourcedId": "o1", "name": "Secret Name", "type": "school"}], [2])
    with pytest.raises(ValueError) as raised:
        validate(frame.drop(columns=["identifier"]), ORGS, OPTIONS)
    assert "Secret Name" not in str(raised.value)
    with pytest.raises(ValueError):
        validate(frame.astype(object), ORGS, OPTIONS)


def test_clean_frames_validate_without_findings():
    rows = [{"sourcedId": "u1", "birthDate": "2010-01-31", "sex": "male", "white": "true"}]
    assert validate(output_like(DEMOGRAPHICS, rows, [2]), DEMOGRAPHICS, OPTIONS) == []


# ---- identifier rules through the stages -------------------------------------------------------


def users_result(users: list[dict], orgs: list[dict] | None = None):
    src = source(orgs or district_orgs(), users)
    return build_users(src, OPTIONS)


def test_id_required():
    result = users_result([student("u1"), student("")])
    one(result.findings, "ID-REQUIRED", line=line(1), sourced_id=None, severity=ERROR)
    assert result.frame["sourcedId"].tolist() == ["u1"]


def test_id_duplicate_every_occurrence():
    found = of_rule(
        users_result([student("u1"), student("u2"), student("u1")]).findings, "ID-DUPLICATE"
    )
    assert [(f.line, f.sourcedId, f.severity) for f in found] == [
        (line(0), "u1", ERROR),
        (line(2), "u1", ERROR),
    ]


@pytest.mark.parametrize("bad", ["u 1", "u#1", "ü1", "u" * 256])
def test_id_charset(bad):
    result = users_result([student("ok.id-1_/@x"), student(bad)])
    one(result.findings, "ID-CHARSET", line=line(1), severity=WARNING)
    assert errors(result.findings) == []


def test_id_case_collision_reports_both_ids():
    found = of_rule(
        users_result([student("ab1"), student("x"), student("AB1")]).findings, "ID-CASE-COLLISION"
    )
    assert [(f.line, f.sourcedId, f.severity) for f in found] == [
        (line(0), "ab1", WARNING),
        (line(2), "AB1", WARNING),
    ]


def test_scientific_id_in_sourced_id_and_in_id_lists():
    users = [student("1.23457E+11"), student("u2", orgs="s1,4.5E+10"), student("12E5")]
    found = of_rule(users_result(users).findings, "XLS-SCIENTIFIC-ID")
    assert [(f.line, f.column, f.severity) for f in found] == [
        (line(0), "sourcedId", ERROR),
        (line(1), "orgSourcedIds", ERROR),
    ]


def test_scientific_id_in_parent_sourced_id():
    orgs = [org("d1", "district"), org("s1", "school", "1.2E+5")]
    result = orgs_stage(source(orgs, [student("u1")]))
    one(
        result.findings,
        "XLS-SCIENTIFIC-ID",
        line=line(1),
        sourced_id="s1",
        column="parentSourcedId",
        severity=ERROR,
    )


def test_leading_zero_flags_all_digit_ids_shorter_than_the_padded_width():
    users = [
        student("000123"),
        student("004567"),
        student("89"),
        student("1234567"),
        student("abc"),
    ]
    found = of_rule(users_result(users).findings, "XLS-LEADING-ZERO")
    assert [(f.line, f.sourcedId, f.severity) for f in found] == [(line(2), "89", WARNING)]


def test_leading_zero_is_silent_without_zero_padded_ids():
    users = [student("123"), student("45"), student("6789")]
    assert of_rule(users_result(users).findings, "XLS-LEADING-ZERO") == []


def test_absent_required_column_is_one_header_finding_not_one_per_row():
    rows = [student("u1"), student("u2")]
    header = [c for c in USERS.header if c != "familyName"]
    data = file_bytes(
        USERS, [{k: v for k, v in r.items() if k != "familyName"} for r in rows], header
    )
    result = users_result(data)  # type: ignore[arg-type]
    one(result.findings, "CSV-HEADER-MISSING", line=1, column="familyName")
    assert of_rule(result.findings, "USR-REQUIRED") == []


def test_staff_rows_validate_with_the_staff_model():
    users = [student("u1"), person("t1", "teacher", **{"metadata.title": "Teacher"})]
    src = source(district_orgs(), users)
    result = build_users(src, STAFF_OPTIONS)
    assert result.findings == []


# ---- large frames: the validation beside the stage's other rules --------------------------------


def test_large_frames_report_what_small_frames_report(monkeypatch):
    users = [
        {**student("u1", username="Ann", email="not-an-email"), "metadata.classYear": "2030"},
        {**student("u2", username="ann"), "metadata.classYear": "2030"},
        {**student("u2", givenName="A.", username="bo"), "metadata.classYear": "1900"},
    ]
    demographics = [{"sourcedId": "d1", "white": "true", "demographicRaceTwoOrMoreRaces": "true"}]
    frames = [
        (output_like(USERS, users, [2, 3, 4]), USERS),
        (output_like(DEMOGRAPHICS, demographics, [5]), DEMOGRAPHICS),
    ]
    alone = [validate(frame.copy(), spec, OPTIONS) for frame, spec in frames]
    monkeypatch.setattr(schemas, "PARALLEL_ROWS", 0)  # as if these frames were large
    ahead = [validate(frame.copy(), spec, OPTIONS) for frame, spec in frames]
    assert ahead == alone
    rules = {(f.rule, f.line) for f in ahead[0] + ahead[1]}
    assert {
        ("USR-EMAIL", 2),
        ("USR-USERNAME-DUPLICATE", 2),
        ("USR-USERNAME-DUPLICATE", 3),
        ("ID-DUPLICATE", 3),
        ("ID-DUPLICATE", 4),
        ("USR-NAME-CHARS", 4),
        ("USR-CLASSYEAR-RANGE", 4),
        ("DEM-RACE-CONSISTENCY", 5),
    } <= rules


@pytest.mark.parametrize("name", list(FILES))
def test_the_parts_a_large_frame_is_validated_by_hold_the_models_checks_once(name):
    model = model_for(FILES[name], OPTIONS)
    parts = schemas._parts(name, OPTIONS)

    def checks(schema):
        columns = [(n, c.name) for n, col in schema.columns.items() for c in col.checks]
        return columns + [("", c.name) for c in schema.checks]

    assert sorted(c for part in parts for c in checks(part)) == sorted(checks(model))
    structure = parts[0]
    assert structure.strict and structure.ordered and list(structure.columns) == list(model.columns)
    assert all(len(part.columns) == 1 for part in parts[1:])


def test_a_large_frame_without_the_model_columns_is_a_programming_error_too(monkeypatch):
    monkeypatch.setattr(schemas, "PARALLEL_ROWS", 0)
    frame = output_like(ORGS, [{"sourcedId": "o1", "name": "Secret Name", "type": "school"}], [2])
    with pytest.raises(ValueError) as raised:
        validate(frame.drop(columns=["identifier"]), ORGS, OPTIONS)
    assert "Secret Name" not in str(raised.value)
    with pytest.raises(ValueError):
        validate(frame.astype(object), ORGS, OPTIONS)


# ---- the models as a reader sees them ----------------------------------------------------------


@pytest.mark.parametrize("file", ["users", "orgs", "demographics"])
def test_schema_command_prints_columns_in_order_with_checks_rule_codes_and_severities(file, capsys):
    assert main(["schema", file, "--as-of", "2026-11-30", "--include-staff"]) == 0
    out = capsys.readouterr().out.splitlines()
    spec = FILES[f"{file}.csv"]
    model = model_for(spec, dataclasses.replace(STAFF_OPTIONS, as_of=date(2026, 11, 30)))
    header = output_header(spec, include_staff=True)
    columns = [line.split()[1].rstrip(":") for line in out if re.match(r" *[0-9]+ ", line)]
    assert columns == header == list(model.columns)
    for name, column in model.columns.items():
        row = next(line for line in out if re.match(rf" *[0-9]+ {re.escape(name)}:", line))
        required = spec.column(name).required if name in spec.header else False
        assert ("value required" if required else "may be blank") in row
        assert "string[pyarrow]" in row
        at = out.index(row) + 1
        assert out[at : at + len(column.checks)] == [
            f"      {c.name} ({RULES[c.name]}): {c.description}" for c in column.checks
        ]
    checks = [line.split()[0] for line in out if line.startswith("      ")]
    names = [c.name for col in model.columns.values() for c in col.checks]
    assert checks == names + [c.name for c in model.checks]
    assert not any("{" in line and "{Type:Id}" not in line for line in out)  # dates filled in


def test_schema_command_shows_the_model_validate_uses():
    model = model_for(USERS, OPTIONS)
    text = schemas.describe(model)
    assert text.splitlines()[1].startswith("  1 sourcedId: string[pyarrow], id, value required")
    assert "ID-DUPLICATE (E): the same sourcedId appears more than once" in text
    assert "USR-NAME-CHARS (W)" in text and "BULK-DATE (R)" in text


@pytest.mark.parametrize(
    "argv", [["schema", "user"], ["schema"], ["schema", "users", "--as-of", "30/11/2026"]]
)
def test_schema_command_refuses_a_bad_argument_in_one_line(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    out, err = capsys.readouterr()
    assert exited.value.code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "error" in err
