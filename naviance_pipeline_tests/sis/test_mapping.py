"""Loading and validating mappings: presets, the YAML rules, and problems naming their keys."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from naviance_pipeline.oneroster.spec import USERS
from naviance_pipeline.sources.sis.mapping import (
    PRESETS,
    MappingError,
    coded,
    load_mapping,
    parse_mapping,
    template_fields,
)
from naviance_pipeline_tests.sis.factories import load, mapping_doc, mapping_text

Edit = Callable[[dict[str, Any]], None]


def problems_of(edit: Edit) -> list[str]:
    doc = mapping_doc()
    edit(doc)
    with pytest.raises(MappingError) as caught:
        load(doc)
    return caught.value.problems


def students(doc: dict) -> dict:
    return doc["users"][0]


# ---- presets and loading ------------------------------------------------------------------------


def test_both_presets_ship_and_load():
    assert {"powerschool", "generic"} <= set(PRESETS)
    for name in PRESETS:
        mapping = load_mapping(name)
        assert mapping.ref == name
        assert mapping.label == f"{name}.yaml"
        assert mapping.text.startswith("#")  # the file as written, comments included
        assert mapping.columns_read("students")


def test_powerschool_preset_reads_powerschools_column_names():
    mapping = load_mapping("powerschool")
    read = mapping.columns_read("students")
    for column in ("Student_Number", "First_Name", "Last_Name", "Grade_Level", "SchoolID",
                   "Enroll_Status", "DOB", "Gender"):  # fmt: skip
        assert column in read
    students_entry, teachers_entry = mapping.users
    assert students_entry.id_prefix == ""
    assert teachers_entry.id_prefix == "T-"
    assert all(t.file and t.query for t in mapping.tables.values())


def test_a_mapping_file_is_loaded_by_path_and_named_by_its_file_name(tmp_path: Path):
    path = tmp_path / "district.yaml"
    path.write_text(mapping_text(mapping_doc()), encoding="utf-8")
    mapping = load_mapping(str(path))
    assert mapping.label == "district.yaml"
    assert mapping.text == path.read_text(encoding="utf-8")


def test_a_missing_mapping_file_says_it_is_neither_file_nor_preset(tmp_path: Path):
    with pytest.raises(MappingError) as caught:
        load_mapping(str(tmp_path / "nope.yaml"))
    assert "no such mapping file, and not a preset" in str(caught.value)
    assert "powerschool" in str(caught.value)


def test_scalars_stay_text_exactly_as_written():
    text = mapping_text(mapping_doc()).replace(
        "grade:\n", "grade:\n    01: '01'\n    -1: PK\n    0: KG\n", 1
    )
    mapping = parse_mapping(text)
    assert mapping.value_maps["grade"]["01"] == "01"
    assert mapping.value_maps["grade"]["-1"] == "PK"
    assert mapping.value_maps["grade"]["0"] == "KG"
    assert mapping.tables["students"].encoding == "utf-8"


def test_columns_read_lists_columns_and_template_fields_in_order():
    mapping = load()
    assert mapping.columns_read("students") == [
        "ID", "Status", "SchoolID", "Login", "First", "Last", "Grade", "GradYear", "DOB",
        "Gender", "Races",
    ]  # fmt: skip
    assert mapping.columns_read("schools") == ["SchoolID", "SchoolName"]


def test_header_problems_name_every_key_reading_the_column_and_the_file():
    mapping = load()
    header = ["ID", "Status", "SchoolID", "First", "Last", "Grade", "GradYear", "dob", "Gender",
              "Races"]  # fmt: skip
    problems = mapping.header_problems("students", header, "students.csv")
    assert problems[0] == (
        "test.yaml: users[0].columns.username.column, users[0].columns.email.template: "
        "column 'Login' is not in students.csv"
    )
    assert problems[1].startswith(
        "test.yaml: users[0].demographics.birthDate.column: column 'DOB' is not in students.csv"
    )
    assert "it has 'dob'" in problems[1]  # the case differs
    assert len(problems) == 2


def test_an_empty_header_is_one_problem():
    problems = load().header_problems("schools", [], "schools.csv")
    assert problems == ["test.yaml: tables.schools: schools.csv has no header row (it is empty)"]


def test_coded_columns_carry_their_rule_code():
    assert coded(USERS, "grades")[0] == "USR-GRADE"
    assert coded(USERS, "enabledUser")[0] == "USR-ENABLED"
    assert coded(USERS, "role")[0] == "USR-ROLE"
    assert coded(USERS, "givenName") is None


def test_template_fields_read_escaped_braces_as_text():
    assert template_fields("{{StateID:{State_ID}}}") == ["State_ID"]
    with pytest.raises(ValueError):
        template_fields("{First!r}")


# ---- every problem class names its key ---------------------------------------------------------


def _set(path: list, value: Any) -> Edit:
    def edit(doc: dict) -> None:
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


def _drop(path: list) -> Edit:
    def edit(doc: dict) -> None:
        node = doc
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return edit


STUDENT_COLUMNS = ["users", 0, "columns"]
DEMOGRAPHICS = ["users", 0, "demographics"]

CASES: dict[str, tuple[Edit, str]] = {
    "unknown top-level key": (
        _set(["colums"], {}),
        "test.yaml: colums: unknown key (expected one of: mapping_version",
    ),
    "unknown key in a value": (
        _set([*STUDENT_COLUMNS, "givenName"], {"colum": "First"}),
        "test.yaml: users[0].columns.givenName.colum: unknown key",
    ),
    "unknown output column": (
        _set([*STUDENT_COLUMNS, "nickname"], {"column": "Nick"}),
        "test.yaml: users[0].columns.nickname: 'nickname' is not a column of users.csv",
    ),
    "metadata column outside users": (
        _set(["orgs", "columns", "metadata.region"], {"column": "Region"}),
        "test.yaml: orgs.columns.metadata.region: 'metadata.region' is not a column of orgs.csv",
    ),
    "required column not mapped": (
        _drop([*STUDENT_COLUMNS, "username"]),
        "test.yaml: users[0].columns: required column(s) not mapped: username",
    ),
    "required org column not mapped": (
        _drop(["orgs", "columns", "name"]),
        "test.yaml: orgs.columns: required column(s) not mapped: name",
    ),
    "value with no source": (
        _set([*STUDENT_COLUMNS, "givenName"], {"map": "status"}),
        "test.yaml: users[0].columns.givenName: needs exactly one of column, constant or template",
    ),
    "value with two sources": (
        _set([*STUDENT_COLUMNS, "givenName"], {"column": "First", "constant": "Ann"}),
        "test.yaml: users[0].columns.givenName: needs exactly one of column, constant or "
        "template (it has column and constant)",
    ),
    "map naming no value map": (
        _set([*STUDENT_COLUMNS, "grades", "map"], "grade_codes"),
        "test.yaml: users[0].columns.grades.map: no value map named 'grade_codes'",
    ),
    "map on a free-text column": (
        _set([*STUDENT_COLUMNS, "givenName"], {"column": "First", "map": "status"}),
        "test.yaml: users[0].columns.givenName.map: only coded columns take a value map",
    ),
    "map on a constant": (
        _set([*STUDENT_COLUMNS, "grades"], {"constant": "09", "map": "grade"}),
        "test.yaml: users[0].columns.grades.map: a value map translates a column",
    ),
    "value map giving an invalid grade": (
        _set(["value_maps", "grade", "14"], "Fourteen"),
        "test.yaml: value_maps.grade.14: 'Fourteen' is not a valid grades",
    ),
    "constant that is not a role": (
        _set([*STUDENT_COLUMNS, "role"], {"constant": "techer"}),
        "test.yaml: users[0].columns.role.constant: 'techer' is not a valid role",
    ),
    "users table not under tables": (
        _set(["users", 0, "table"], "pupils"),
        "test.yaml: users[0].table: no table named 'pupils' under tables",
    ),
    "orgs table not under tables": (
        _set(["orgs", "table"], "buildings"),
        "test.yaml: orgs.table: no table named 'buildings' under tables",
    ),
    "table with neither file nor query": (
        _set(["tables", "students"], {"encoding": "utf-8"}),
        "test.yaml: tables.students: has neither file nor query",
    ),
    "table not read by anything": (
        _set(["tables", "guardians"], {"file": "guardians.csv"}),
        "test.yaml: tables.guardians: is not read by orgs or users",
    ),
    "table names differing only by case": (
        _set(["tables", "Students"], {"file": "other.csv"}),
        "test.yaml: tables.Students: differs from tables.students only by letter case",
    ),
    "unknown encoding": (
        _set(["tables", "students", "encoding"], "latin-99"),
        "test.yaml: tables.students.encoding: 'latin-99' is not a known text encoding",
    ),
    "file climbing out of the export": (
        _set(["tables", "students", "file"], "../students.csv"),
        "test.yaml: tables.students.file: must be a relative file name inside the export",
    ),
    "bad table name": (
        _set(["tables", "my students"], {"file": "x.csv"}),
        "test.yaml: tables.my students: a table name holds only letters, digits and '_'",
    ),
    "bad date format": (
        _set([*DEMOGRAPHICS, "birthDate", "date_format"], "%m/%Q/%Y"),
        "test.yaml: users[0].demographics.birthDate.date_format: '%m/%Q/%Y' is not a strptime",
    ),
    "date format without a day": (
        _set([*DEMOGRAPHICS, "birthDate", "date_format"], "%m/%Y"),
        "test.yaml: users[0].demographics.birthDate.date_format: '%m/%Y' must hold a day",
    ),
    "date format on another column": (
        _set([*DEMOGRAPHICS, "sex"], {"column": "Gender", "date_format": "%Y-%m-%d"}),
        "test.yaml: users[0].demographics.sex.date_format: only birthDate takes a date format",
    ),
    "race code naming no race flag": (
        _set([*DEMOGRAPHICS, "races", "codes", "X"], "purple"),
        "test.yaml: users[0].demographics.races.codes.X: 'purple' is not a race flag",
    ),
    "races and a race flag both mapped": (
        _set([*DEMOGRAPHICS, "white"], {"column": "White"}),
        "test.yaml: users[0].demographics.white: races sets the race flags already",
    ),
    "demographics sourcedId mapped": (
        _set([*DEMOGRAPHICS, "sourcedId"], {"column": "ID"}),
        "test.yaml: users[0].demographics.sourcedId: a demographics row takes its user's",
    ),
    "always-blank column mapped": (
        _set([*STUDENT_COLUMNS, "password"], {"column": "Pin"}),
        "test.yaml: users[0].columns.password: password is always written blank",
    ),
    "template without a column": (
        _set([*STUDENT_COLUMNS, "email"], {"template": "nobody@example.org"}),
        "test.yaml: users[0].columns.email.template: names no column in braces",
    ),
    "template with an unclosed brace": (
        _set([*STUDENT_COLUMNS, "email"], {"template": "{Login@example.org"}),
        "test.yaml: users[0].columns.email.template: not a valid template",
    ),
    "id prefix outside the id charset": (
        _set(["users", 1, "id_prefix"], "T #"),
        "test.yaml: users[1].id_prefix: may only hold the sourcedId characters",
    ),
    "students and staff sharing an id prefix": (
        _set(["users", 1, "id_prefix"], ""),
        "test.yaml: users[1].id_prefix: is the same as users[0].id_prefix ('')",
    ),
    "orgs with neither table nor rows": (
        lambda doc: doc.__setitem__("orgs", {"id_prefix": ""}),
        "test.yaml: orgs: needs a table, constant rows, or both",
    ),
    "wrong mapping version": (
        _set(["mapping_version"], "2"),
        "test.yaml: mapping_version: must be 1",
    ),
    "users not a list": (
        _set(["users"], {"table": "students"}),
        "test.yaml: users: must be a list with one entry per table of people",
    ),
}


@pytest.mark.parametrize("edit, expected", CASES.values(), ids=CASES.keys())
def test_each_problem_names_its_key(edit: Edit, expected: str):
    problems = problems_of(edit)
    assert any(p.startswith(expected) for p in problems), problems


def test_constant_org_rows_report_the_row_and_column():
    problems = problems_of(
        _set(["orgs", "rows"], [{"sourcedId": "0", "name": "Office", "type": "office"}])
    )
    assert problems == [
        "test.yaml: orgs.rows[0].type: 'office' is not a valid type (one of: school "
        "district department local state national)"
    ]


def test_every_problem_is_reported_at_once():
    def edit(doc: dict) -> None:
        _set([*STUDENT_COLUMNS, "grades", "map"], "grade_codes")(doc)
        _set(["tables", "schools"], {"encoding": "utf-8"})(doc)
        _set([*DEMOGRAPHICS, "races", "codes", "X"], "purple")(doc)

    problems = problems_of(edit)
    assert len(problems) == 3
    assert str(MappingError(problems)).splitlines() == problems


def test_a_key_given_twice_is_an_error_with_its_line():
    text = "mapping_version: 1\nmapping_version: 1\n"
    with pytest.raises(MappingError) as caught:
        parse_mapping(text, label="twice.yaml")
    assert str(caught.value) == (
        "twice.yaml: line 2, column 1: not valid YAML: key 'mapping_version' appears twice in "
        "one mapping"
    )


def test_invalid_yaml_says_where():
    with pytest.raises(MappingError) as caught:
        parse_mapping("tables: {students: [\n", label="broken.yaml")
    assert str(caught.value).startswith("broken.yaml: line ")
    assert "not valid YAML" in str(caught.value)


def test_a_document_that_is_not_a_mapping_is_one_problem():
    with pytest.raises(MappingError) as caught:
        parse_mapping("- a\n- b\n", label="list.yaml")
    assert caught.value.problems == ["list.yaml: top level: must be a mapping (key: value lines)"]
