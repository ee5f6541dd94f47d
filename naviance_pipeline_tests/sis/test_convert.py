"""Converting SIS tables to OneRoster through a mapping: values, prefixes, findings."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import pytest

from naviance_pipeline.oneroster.findings import Finding
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.source import open_source
from naviance_pipeline.oneroster.spec import DEMOGRAPHICS, MANIFEST_ROWS, ORGS, USERS
from naviance_pipeline.oneroster.stages import build_all
from naviance_pipeline.sources.sis.convert import Conversion, convert
from naviance_pipeline.sources.sis.mapping import MappingError
from naviance_pipeline_tests.sis.factories import (
    PII_VALUES,
    SCHOOLS,
    STUDENTS_HEADER,
    TEACHERS_HEADER,
    csv_bytes,
    export_files,
    load,
    mapping_doc,
    student,
    tables,
)

OPTIONS = Options(as_of=date(2026, 11, 30), source_system_name="PowerSchool", district_code="d1")


def run(students=None, teachers=None, doc=None, files=None, options=OPTIONS) -> Conversion:
    files = files or export_files(students, teachers)
    return convert(load(doc), tables(files), options)


def records(conversion: Conversion, name: str) -> list[dict[str, str]]:
    text = conversion.files[name].decode("utf-8")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def header(conversion: Conversion, name: str) -> list[str]:
    return conversion.files[name].split(b"\r\n", 1)[0].decode().split(",")


def only(findings: list[Finding], rule: str) -> Finding:
    found = [f for f in findings if f.rule == rule]
    assert len(found) == 1, findings
    return found[0]


def stages_findings(conversion: Conversion, tmp_path: Path, options=OPTIONS) -> list[Finding]:
    for name, data in conversion.files.items():
        (tmp_path / name).write_bytes(data)
    stages = build_all(open_source(str(tmp_path), options), options)
    return [f for stage in stages for f in stage.findings]


def assert_no_pii(findings: list[Finding]) -> None:
    for f in findings:
        for value in PII_VALUES:
            assert value not in f.message and f.value != value, f


# ---- the converted files --------------------------------------------------------------------


def test_the_four_files_come_out_in_the_strict_format():
    conversion = run()
    assert list(conversion.files) == ["manifest.csv", "orgs.csv", "users.csv", "demographics.csv"]
    for data in conversion.files.values():
        assert data.endswith(b"\r\n") and not data.startswith(b"\xef\xbb\xbf")
    assert header(conversion, "orgs.csv") == ORGS.header
    assert header(conversion, "users.csv") == [
        *USERS.header,
        "metadata.classYear",
        "metadata.title",
    ]
    assert header(conversion, "demographics.csv") == DEMOGRAPHICS.header
    assert conversion.rows == {"orgs.csv": 2, "users.csv": 3, "demographics.csv": 2}
    assert conversion.table_rows == {"schools": 2, "students": 2, "teachers": 1}
    assert conversion.findings == []


def test_the_manifest_is_bulk_with_the_configured_source():
    manifest = {r["propertyName"]: r["value"] for r in records(run(), "manifest.csv")}
    assert list(manifest) == [prop for prop, _ in MANIFEST_ROWS]
    assert manifest["source.systemName"] == "PowerSchool"
    assert manifest["source.systemCode"] == "d1"
    assert manifest["file.users"] == "bulk"


def test_columns_constants_templates_and_value_maps_fill_users():
    ann, bo, teacher = records(run(), "users.csv")
    assert ann["sourcedId"] == "100"
    assert ann["role"] == "student"  # constant
    assert ann["email"] == "ann100@students.example.org"  # template
    assert ann["grades"] == "09" and bo["grades"] == "KG"  # value map
    assert ann["enabledUser"] == "true"
    assert ann["status"] == "" and ann["password"] == ""
    assert teacher["metadata.title"] == "Math Teacher" and ann["metadata.title"] == ""


def test_a_template_is_blank_when_every_column_it_names_is_blank():
    users = records(run(students=[student(Login="")]), "users.csv")
    assert users[0]["email"] == ""


def test_users_come_in_mapping_order_then_source_order():
    rows = [student(ID="300"), student(ID="200")]
    users = records(run(students=rows), "users.csv")
    assert [u["sourcedId"] for u in users] == ["300", "200", "T-100"]


def test_birth_dates_are_reformatted_and_races_become_flags():
    ann, bo = records(run(), "demographics.csv")
    assert ann["sourcedId"] == "100" and ann["birthDate"] == "2011-03-04"
    assert ann["sex"] == "female"
    assert (ann["white"], ann["blackOrAfricanAmerican"], ann["asian"]) == ("true", "true", "false")
    assert ann["demographicRaceTwoOrMoreRaces"] == "true"
    assert (bo["asian"], bo["white"], bo["demographicRaceTwoOrMoreRaces"]) == (
        "true",
        "false",
        "false",
    )
    assert bo["americanIndianOrAlaskaNative"] == "false"


def test_a_blank_race_cell_leaves_every_race_flag_blank():
    (row,) = records(run(students=[student(Races="")]), "demographics.csv")
    assert {row[f] for f in ("white", "asian", "demographicRaceTwoOrMoreRaces")} == {""}


def test_values_are_trimmed_and_the_trim_is_reported():
    conversion = run(students=[student(Grade=" 9 ", First="Ann  ")])
    (ann,) = [u for u in records(conversion, "users.csv") if u["role"] == "student"]
    assert ann["grades"] == "09" and ann["givenName"] == "Ann"
    trims = [f for f in conversion.findings if f.rule == "CSV-WHITESPACE"]
    assert {(f.file, f.line, f.column, f.sourcedId) for f in trims} == {
        ("students.csv", 2, "Grade", "100"),
        ("students.csv", 2, "First", "100"),
    }


def test_staff_are_converted_even_when_staff_are_not_included():
    options = Options(as_of=OPTIONS.as_of, include_staff=False)
    users = records(run(options=options), "users.csv")
    assert [u["role"] for u in users] == ["student", "student", "teacher"]


# ---- id prefixes ----------------------------------------------------------------------------


def test_prefixes_keep_student_and_staff_ids_apart(tmp_path: Path):
    conversion = run()  # student 100 and teacher 100
    ids = [u["sourcedId"] for u in records(conversion, "users.csv")]
    assert ids == ["100", "101", "T-100"]
    options = Options(as_of=OPTIONS.as_of, include_staff=True)
    findings = stages_findings(convert(load(), tables(export_files()), options), tmp_path, options)
    assert not [f for f in findings if f.rule == "ID-DUPLICATE"]
    assert not [f for f in findings if f.severity == "error"], findings


def test_the_orgs_prefix_reaches_org_ids_parents_rows_and_org_lists():
    doc = mapping_doc()
    doc["orgs"]["id_prefix"] = "sch-"
    doc["orgs"]["columns"]["parentSourcedId"] = {"constant": "0"}
    doc["orgs"]["rows"] = [{"sourcedId": "0", "name": "District Office", "type": "district"}]
    teachers = [["100", "1, 2", "cruz", "Carla", "Cruz", "Math Teacher"]]
    conversion = run(doc=doc, teachers=teachers)
    orgs = records(conversion, "orgs.csv")
    assert [(o["sourcedId"], o["parentSourcedId"]) for o in orgs] == [
        ("sch-1", "sch-0"),
        ("sch-2", "sch-0"),
        ("sch-0", ""),
    ]
    assert orgs[2]["type"] == "district"
    users = records(conversion, "users.csv")
    assert [u["orgSourcedIds"] for u in users] == ["sch-1", "sch-2", "sch-1,sch-2"]


def test_a_blank_id_gets_no_prefix():
    users = records(run(teachers=[["", "1", "cruz", "Carla", "Cruz", "Teacher"]]), "users.csv")
    assert users[-1]["sourcedId"] == ""


# ---- values with no mapping are findings, written unchanged -----------------------------------


@pytest.mark.parametrize(
    "column, value, rule, target",
    [
        ("Grade", "14", "USR-GRADE", "grades"),
        ("Status", "X", "USR-ENABLED", "enabledUser"),
        ("Gender", "U", "DEM-SEX", "sex"),
    ],
)
def test_an_unmapped_code_is_a_finding_of_the_target_rule(column, value, rule, target, tmp_path):
    rows = [student(ID="100"), student(ID="101", **{column: value})]
    conversion = run(students=rows)
    found = only(conversion.findings, rule)
    assert (found.file, found.line, found.column, found.sourcedId) == (
        "students.csv",
        3,
        column,
        "101",
    )
    assert found.value == value and found.severity == "error"
    assert f"value_maps.{column.lower()}" in found.message  # says which map to extend
    name = "demographics.csv" if target == "sex" else "users.csv"
    assert records(conversion, name)[1][target] == value  # unchanged: the stages reject it too
    assert rule in {f.rule for f in stages_findings(conversion, tmp_path)}
    assert_no_pii(conversion.findings)


def test_an_unknown_role_code_is_usr_role():
    doc = mapping_doc()
    doc["users"][1]["columns"]["role"] = {"column": "Title", "map": "roles"}
    doc["value_maps"]["roles"] = {"Teacher": "teacher"}
    found = only(run(doc=doc).findings, "USR-ROLE")
    assert (found.file, found.line, found.column, found.sourcedId, found.value) == (
        "teachers.csv",
        2,
        "Title",
        "T-100",
        # Several words are not the shape of a code: described, never shown (could be a name).
        "[not shown: 12 characters, 2 words]",
    )


def test_an_unknown_org_type_code_is_org_type():
    doc = mapping_doc()
    doc["orgs"]["columns"]["type"] = {"column": "SchoolName", "map": "types"}
    doc["value_maps"]["types"] = {"Lincoln High": "school"}
    found = only(run(doc=doc).findings, "ORG-TYPE")
    assert (found.file, found.line, found.column, found.sourcedId) == (
        "schools.csv",
        3,
        "SchoolName",
        "2",
    )


def test_an_unknown_race_code_is_dem_flag_and_fails_closed(tmp_path: Path):
    conversion = run(students=[student(), student(ID="101", Races="W;Q;Z")])
    found = only(conversion.findings, "DEM-FLAG")
    assert (found.file, found.line, found.column, found.sourcedId, found.value) == (
        "students.csv",
        3,
        "Races",
        "101",
        "Q;Z",
    )
    row = records(conversion, "demographics.csv")[1]
    assert row["white"] == "true"
    assert row["demographicRaceTwoOrMoreRaces"] == "W;Q;Z"  # so the stage rejects the row
    assert "DEM-FLAG" in {f.rule for f in stages_findings(conversion, tmp_path)}


def test_a_birth_date_in_another_format_is_xls_date_format_without_its_value(tmp_path: Path):
    conversion = run(students=[student(), student(ID="101", DOB="2011/03/04")])
    found = only(conversion.findings, "XLS-DATE-FORMAT")
    assert (found.file, found.line, found.column, found.sourcedId) == (
        "students.csv",
        3,
        "DOB",
        "101",
    )
    assert found.value is None and "2011" not in found.message
    assert records(conversion, "demographics.csv")[1]["birthDate"] == "2011/03/04"


def test_a_birth_date_already_iso_is_kept_as_a_sql_date_column_gives_it():
    conversion = run(students=[student(), student(ID="101", DOB="2011-03-04")])
    assert conversion.findings == []
    assert records(conversion, "demographics.csv")[1]["birthDate"] == "2011-03-04"


def test_an_impossible_birth_date_is_dem_birthdate_written_unchanged():
    conversion = run(students=[student(DOB="02/30/2011")])
    found = only(conversion.findings, "DEM-BIRTHDATE")
    assert (found.line, found.column, found.sourcedId, found.value) == (2, "DOB", "100", None)
    assert records(conversion, "demographics.csv")[0]["birthDate"] == "02/30/2011"


def test_a_blank_code_stays_blank_without_a_finding():
    conversion = run(students=[student(Gender="", DOB="")])
    assert conversion.findings == []
    assert records(conversion, "demographics.csv")[0]["sex"] == ""


def test_no_finding_holds_a_pii_value():
    rows = [
        student(Grade="14", DOB="31/12/2011", Gender="?", Races="Q"),
        student(ID="101", First="Bo\nDiaz", Status="?"),
    ]
    conversion = run(students=rows)
    assert {f.rule for f in conversion.findings} >= {
        "USR-GRADE",
        "XLS-DATE-FORMAT",
        "DEM-SEX",
        "DEM-FLAG",
        "USR-ENABLED",
        "CSV-NEWLINE-IN-VALUE",
    }
    assert_no_pii(conversion.findings)
    for f in conversion.findings:
        for value in ("Bo\nDiaz", "31/12/2011"):
            assert value not in f.message and f.value != value, f


# ---- reading the source tables ----------------------------------------------------------------


def test_a_line_break_in_a_value_is_reported_and_the_files_are_still_written():
    conversion = run(students=[student(First="Ann\r\nMarie")])
    found = only(conversion.findings, "CSV-NEWLINE-IN-VALUE")
    assert (found.file, found.line, found.column, found.sourcedId) == (
        "students.csv",
        2,
        "First",
        "100",
    )
    assert records(conversion, "users.csv")[0]["givenName"] == "Ann Marie"


def test_a_record_with_too_many_fields_is_csv_parse_and_left_out():
    files = export_files()
    files["students.csv"] += b"102,A,1,cy102,Cy,Ng,9,,01/02/2011,M,W,5,extra\r\n"
    conversion = run(files=files)
    found = only(conversion.findings, "CSV-PARSE")
    assert (found.file, found.line) == ("students.csv", 4)
    assert conversion.table_rows["students"] == 2


def test_bom_crlf_and_lf_exports_convert_alike():
    plain = run()
    files = export_files()
    files["students.csv"] = b"\xef\xbb\xbf" + files["students.csv"]
    files["teachers.csv"] = files["teachers.csv"].replace(b"\r\n", b"\n")
    converted = run(files=files)
    assert converted.files == plain.files
    assert converted.findings == []


def test_a_cp1252_export_is_read_with_the_encoding_option():
    teachers = [["100", "1", "zoe", "Zoë", "Peña", "Teacher"]]
    files = export_files(teachers=teachers)
    files["teachers.csv"] = csv_bytes([TEACHERS_HEADER, *teachers], encoding="cp1252")
    doc = mapping_doc()
    doc["tables"]["teachers"]["encoding"] = "cp1252"
    conversion = run(doc=doc, files=files)
    assert conversion.findings == []
    teacher = records(conversion, "users.csv")[-1]
    assert (teacher["givenName"], teacher["familyName"]) == ("Zoë", "Peña")


def test_a_cp1252_export_read_as_utf8_is_csv_encoding_with_a_hint():
    teachers = [["100", "1", "zoe", "Zoë", "Peña", "Teacher"]]
    files = export_files(teachers=teachers)
    files["teachers.csv"] = csv_bytes([TEACHERS_HEADER, *teachers], encoding="cp1252")
    conversion = run(files=files)
    found = only(conversion.findings, "CSV-ENCODING")
    assert (found.file, found.line) == ("teachers.csv", 2)
    assert "Windows-1252" in found.message and "tables.teachers.encoding" in found.message
    assert [u["role"] for u in records(conversion, "users.csv")] == ["student", "student"]


def test_bytes_that_are_not_text_in_the_configured_encoding_are_csv_encoding():
    files = export_files()
    files["teachers.csv"] = csv_bytes([TEACHERS_HEADER]) + b"100,1,x,\x81,y,z\r\n"
    doc = mapping_doc()
    doc["tables"]["teachers"]["encoding"] = "cp1252"
    found = only(run(doc=doc, files=files).findings, "CSV-ENCODING")
    assert (found.file, found.line) == ("teachers.csv", 2)
    assert "not valid cp1252" in found.message


def test_findings_name_the_sql_snapshot_file_when_told():
    conversion = convert(
        load(),
        tables(export_files(students=[student(Grade="14")])),
        OPTIONS,
        file_names={"students": "sql/students.csv"},
    )
    assert only(conversion.findings, "USR-GRADE").file == "sql/students.csv"


def test_a_table_lacking_a_mapped_column_is_a_mapping_error():
    files = export_files()
    files["schools.csv"] = csv_bytes([["SchoolID"], *([row[0]] for row in SCHOOLS)])
    with pytest.raises(MappingError) as caught:
        run(files=files)
    assert caught.value.problems == [
        "test.yaml: orgs.columns.name.column: column 'SchoolName' is not in schools.csv"
    ]


def test_a_table_not_given_is_a_mapping_error():
    given = tables(export_files())
    del given["teachers"]
    with pytest.raises(MappingError, match=r"tables\.teachers: no data was given"):
        convert(load(), given, OPTIONS)


def test_extra_source_columns_are_ignored_without_findings():
    assert "Locker" in STUDENTS_HEADER and "Locker" not in load().columns_read("students")
    assert run().findings == []


def test_orgs_may_come_from_constant_rows_alone():
    doc = mapping_doc()
    del doc["tables"]["schools"]
    doc["orgs"] = {
        "rows": [
            {"sourcedId": "1", "name": "Lincoln High", "type": "school", "identifier": "17099"},
            {"sourcedId": "2", "name": "Lincoln Elementary", "type": "school"},
        ]
    }
    files = export_files()
    del files["schools.csv"]
    conversion = run(doc=doc, files=files)
    orgs = records(conversion, "orgs.csv")
    assert [(o["sourcedId"], o["name"], o["identifier"]) for o in orgs] == [
        ("1", "Lincoln High", "17099"),
        ("2", "Lincoln Elementary", ""),
    ]
    assert conversion.table_rows == {"students": 2, "teachers": 1}
