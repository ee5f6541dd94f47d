"""The lenient CSV reader: text-only frames, record numbering and every CSV-* rule it reports."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from naviance_pipeline.oneroster import csvread
from naviance_pipeline.oneroster.csvread import LINE, Table, read_table
from naviance_pipeline.oneroster.findings import ERROR, WARNING, Finding
from naviance_pipeline.oneroster.spec import DEMOGRAPHICS, FILES, ORGS, USERS, FileSpec

ORGS_HEADER = ",".join(ORGS.header).encode() + b"\r\n"


def org(sourced_id: str, name: str = "High", org_type: str = "school") -> bytes:
    return f"{sourced_id},,,{name},{org_type},,\r\n".encode()


def found(table: Table, rule: str) -> list[Finding]:
    return [f for f in table.findings if f.rule == rule]


def one(table: Table, rule: str) -> Finding:
    matches = found(table, rule)
    assert len(matches) == 1, (rule, table.findings)
    return matches[0]


def rules(table: Table) -> set[str]:
    return {f.rule for f in table.findings}


# -- the frame contract -----------------------------------------------------------------------


def test_frame_has_line_index_spec_columns_and_pyarrow_strings():
    table = read_table(ORGS_HEADER + org("o1") + org("o2"), ORGS)
    frame = table.frame
    assert table.present and table.findings == [] and table.absent == frozenset()
    assert frame.index.name == LINE and frame.index.dtype == "int64"
    assert list(frame.index) == [2, 3]
    assert list(frame.columns) == ORGS.header
    assert all(dtype == pd.StringDtype("pyarrow") for dtype in frame.dtypes)
    assert not frame.isna().any().any()
    assert frame.loc[2, "status"] == ""


def test_absent_file_gives_empty_frame_and_no_findings():
    table = read_table(None, USERS)
    assert table.present is False
    assert table.findings == []
    assert list(table.frame.columns) == USERS.header
    assert len(table.frame) == 0 and table.frame.index.name == LINE
    assert all(dtype == pd.StringDtype("pyarrow") for dtype in table.frame.dtypes)


@pytest.mark.parametrize(
    "value", ["00123", "true", "TRUE", "NA", "null", "N/A", "NULL", "1.23457E+11", "3/4/2010"]
)
def test_values_are_never_type_converted(value):
    table = read_table(ORGS_HEADER + org(value, name=value, org_type=value), ORGS)
    assert table.frame.loc[2, ["sourcedId", "name", "type"]].tolist() == [value] * 3


def test_quoted_empty_value_is_blank_not_na():
    table = read_table(ORGS_HEADER + b'"o1","","","High","school","",""\r\n', ORGS)
    assert table.frame.loc[2].tolist() == ["o1", "", "", "High", "school", "", ""]


def test_unicode_name_with_comma_and_doubled_quote_round_trips(make_csv, make_rows):
    name = 'Zoë "Zo" Ångström, Jr. 李'
    data = make_csv(make_rows(ORGS, {"sourcedId": "o1", "name": name, "type": "school"}))
    assert b'""Zo""' in data
    assert read_table(data, ORGS).frame.loc[2, "name"] == name


def test_crlf_and_lf_give_identical_frames(make_csv, make_rows):
    rows = make_rows(
        ORGS, {"sourcedId": "o1", "name": "A, B", "type": "school"}, {"sourcedId": "o2"}
    )
    crlf = read_table(make_csv(rows, newline="\r\n"), ORGS)
    lf = read_table(make_csv(rows, newline="\n"), ORGS)
    pd.testing.assert_frame_equal(crlf.frame, lf.frame)
    assert crlf.findings == lf.findings == []


def test_missing_final_newline_is_fine():
    table = read_table(ORGS_HEADER + org("o1") + b"o2,,,High,school,,", ORGS)
    assert table.frame["sourcedId"].tolist() == ["o1", "o2"]
    assert table.findings == []


def test_blank_lines_and_blank_rows_are_dropped_but_keep_their_numbers():
    data = ORGS_HEADER + org("o1") + b"\r\n" + b",,,,,,\r\n" + org("o4") + b"\r\n\r\n"
    table = read_table(data, ORGS)
    assert list(table.frame.index) == [2, 5]
    assert table.findings == []


# -- CSV-BOM, CSV-ENCODING, CSV-EMPTY ---------------------------------------------------------


def test_bom_is_dropped_and_reported():
    plain = read_table(ORGS_HEADER + org("o1"), ORGS)
    table = read_table(b"\xef\xbb\xbf" + ORGS_HEADER + org("o1"), ORGS)
    f = one(table, "CSV-BOM")
    assert (f.severity, f.line, f.file) == (WARNING, None, "orgs.csv")
    pd.testing.assert_frame_equal(table.frame, plain.frame)
    assert "CSV-HEADER-MISSING" not in rules(table)


def test_cp1252_bytes_on_line_3_are_an_encoding_error():
    data = ORGS_HEADER + org("o1") + "o2,,,Caf\u00e9,school,,\r\n".encode("cp1252") + org("o3")
    table = read_table(data, ORGS)
    f = one(table, "CSV-ENCODING")
    assert (f.severity, f.line) == (ERROR, 3)
    assert "Windows-1252" in f.message
    assert len(table.frame) == 0 and list(table.frame.columns) == ORGS.header


def test_encoding_line_counts_records_not_physical_lines():
    data = (
        ORGS_HEADER + b'o1,,,"two\nlines",school,,\r\n' + "o2,,,\xe9,school,,\r\n".encode("cp1252")
    )
    assert one(read_table(data, ORGS), "CSV-ENCODING").line == 3


@pytest.mark.parametrize("spec", [ORGS, USERS])
@pytest.mark.parametrize("data", [b"", b"\r\n", b"\xef\xbb\xbf"], ids=["0-bytes", "newline", "bom"])
def test_empty_file_is_csv_empty(spec, data):
    f = one(read_table(data, spec), "CSV-EMPTY")
    assert (f.severity, f.line, f.file) == (ERROR, None, spec.name)


def test_header_without_rows_is_csv_empty():
    table = read_table(ORGS_HEADER, ORGS)
    f = one(table, "CSV-EMPTY")
    assert (f.severity, f.line) == (ERROR, None)
    assert list(table.frame.columns) == ORGS.header and len(table.frame) == 0


@pytest.mark.parametrize("data", [b"", ",".join(DEMOGRAPHICS.header).encode() + b"\r\n"])
def test_empty_demographics_is_not_csv_empty(data):
    table = read_table(data, DEMOGRAPHICS)
    assert table.findings == []
    assert len(table.frame) == 0 and list(table.frame.columns) == DEMOGRAPHICS.header


# -- CSV-PARSE and record numbering -----------------------------------------------------------


def test_wrong_field_count_on_line_4_after_a_quoted_newline():
    data = (
        ORGS_HEADER
        + org("o1")
        + b'o2,,,"Two\r\nLines",school,,\r\n'
        + b"o3,,,Short,school\r\n"
        + org("o4")
    )
    table = read_table(data, ORGS)
    f = one(table, "CSV-PARSE")
    assert (f.severity, f.line, f.sourcedId) == (ERROR, 4, "o3")
    assert list(table.frame.index) == [2, 3, 5]
    assert table.frame["sourcedId"].tolist() == ["o1", "o2", "o4"]


def test_unclosed_quote_in_the_header_is_a_parse_error_on_line_1():
    table = read_table(b'sourcedId,"name,type\r\no1,A,school\r\n', ORGS)
    f = one(table, "CSV-PARSE")
    assert (f.severity, f.line) == (ERROR, 1)
    assert len(table.frame) == 0 and list(table.frame.columns) == ORGS.header


def test_too_many_fields_is_a_parse_error_per_record():
    data = ORGS_HEADER + org("o1") + b"o2,,,A,school,,,extra\r\n" + b"o3,,,B,school,,,x,y\r\n"
    table = read_table(data, ORGS)
    assert [(f.line, f.sourcedId) for f in found(table, "CSV-PARSE")] == [(3, "o2"), (4, "o3")]
    assert list(table.frame.index) == [2]


def test_unterminated_quote_is_reported_where_it_starts():
    data = ORGS_HEADER + org("o1") + b'o2,,,"Never closed,school,,\r\n' + org("o4") + org("o5")
    table = read_table(data, ORGS)
    f = one(table, "CSV-PARSE")
    assert (f.severity, f.line, f.sourcedId) == (ERROR, 3, "o2")
    assert "never closed" in f.message
    assert table.frame["sourcedId"].tolist() == ["o1"]


def test_unterminated_quote_deep_in_a_big_file():
    # Past pyarrow's first 1 MB block the open quote makes a record straddle blocks.
    rows = b"".join(org(f"o{i}") for i in range(2, 60_002))
    data = ORGS_HEADER + rows + b'x,,,"open,school,,\r\n' + rows
    table = read_table(data, ORGS)
    f = one(table, "CSV-PARSE")
    assert f.line == 60_002
    assert len(table.frame) == 60_000 and table.frame.index[-1] == 60_001


def test_parse_errors_are_numbered_in_a_multi_block_file():
    rows = [org(f"o{i}") for i in range(2, 80_002)]
    rows[50_000] = b"short,row\r\n"  # record 50_002
    table = read_table(ORGS_HEADER + b"".join(rows), ORGS)
    assert one(table, "CSV-PARSE").line == 50_002
    assert table.frame.loc[50_003, "sourcedId"] == "o50003"


def test_a_quoted_line_break_where_a_split_read_would_cut_is_read_exactly():
    # pyarrow's threaded reader splits its first 1 MB block at the block's last line break when
    # told that values hold none: put that line break inside a quoted name. The split read
    # must be refused, and the file read as before: one record, at its line.
    rows, size, line = [], 0, 2
    while size < (1 << 20) - 100:
        rows.append(org(f"o{line}"))
        size += len(rows[-1])
        line += 1
    record = f'o{line},,,"Two'.encode()
    pad = (1 << 20) - size - len(record) - 1  # the quoted \n is the block's last byte
    data = ORGS_HEADER + b"".join(rows) + record + b"x" * pad + b'\nLines",school,,\r\n'
    data += org(f"o{line + 1}")

    table = read_table(data, ORGS)

    f = one(table, "CSV-NEWLINE-IN-VALUE")
    assert (f.line, f.column, f.sourcedId) == (line, "name", f"o{line}")
    assert not found(table, "CSV-PARSE")
    assert list(table.frame.index[-2:]) == [line, line + 1]
    assert table.frame.loc[line + 1, "sourcedId"] == f"o{line + 1}"


def test_a_big_file_with_quotes_but_no_line_break_in_a_value_is_read_split(monkeypatch):
    rows = [org(f"o{i}", name=f'"Name, {i}"') for i in range(2, 80_002)]
    calls = []
    real = csvread._read_csv

    def spy(*args, **kwargs):
        calls.append(kwargs.get("line_breaks_end_records", False))
        return real(*args, **kwargs)

    monkeypatch.setattr(csvread, "_read_csv", spy)
    table = read_table(ORGS_HEADER + b"".join(rows), ORGS)

    assert calls == [True]  # one read, split at line breaks, and kept
    assert table.findings == []
    assert table.frame.loc[50_003, "name"] == "Name, 50003"
    assert list(table.frame.index[[0, -1]]) == [2, 80_001]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["ok", "multiline", "blank", "short", "long"]),
            st.text(alphabet="ab ,\"'", max_size=4),
        ),
        min_size=1,
        max_size=25,
    )
)
def test_line_numbers_match_csv_record_numbers(records):
    """Whatever mix of quoted newlines, blank lines and bad records, index = record number."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["sourcedId", "name", "type"])
    expected_rows, expected_bad = [], []
    for number, (kind, text) in enumerate(records, start=2):
        sid = f"id{number}"
        if kind == "blank":
            out.write("\r\n")
            continue
        fields = {
            "ok": [sid, text, "school"],
            "multiline": [sid, f"x\n{text}", "school"],
            "short": [sid, text],
            "long": [sid, text, "school", "extra"],
        }[kind]
        writer.writerow(fields)
        (expected_bad if kind in ("short", "long") else expected_rows).append(number)
    table = read_table(out.getvalue().encode(), ORGS)
    assert list(table.frame.index) == expected_rows
    assert [f.line for f in found(table, "CSV-PARSE")] == expected_bad
    assert table.frame["sourcedId"].tolist() == [f"id{n}" for n in expected_rows]


# -- CSV-NEWLINE-IN-VALUE, CSV-WHITESPACE, CSV-TOO-LONG ---------------------------------------


@pytest.mark.parametrize("brk", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_newline_in_value_is_reported_at_its_record(brk):
    data = ORGS_HEADER + org("o1") + b'o2,,,"Two' + brk + b'Lines",school,,\r\n' + org("o3")
    table = read_table(data, ORGS)
    f = one(table, "CSV-NEWLINE-IN-VALUE")
    assert (f.severity, f.line, f.column, f.sourcedId) == (ERROR, 3, "name", "o2")
    assert list(table.frame.index) == [2, 3, 4]


def test_newline_in_a_pii_value_names_row_and_column_only(make_csv, make_rows):
    row = {"sourcedId": "u1", "givenName": "Secret\nName", "familyName": "Lee"}
    f = one(read_table(make_csv(make_rows(USERS, row)), USERS), "CSV-NEWLINE-IN-VALUE")
    assert (f.line, f.column, f.value) == (2, "givenName", None)
    assert "Secret" not in f.message


def test_whitespace_is_trimmed_and_reported_once_per_column():
    data = (
        ORGS_HEADER
        + org("o1")
        + b" o2 ,,,  High  ,school\t,,\r\n"
        + b"o3,,,\xc2\xa0Low,school,,\r\n"  # a no-break space from a spreadsheet
    )
    table = read_table(data, ORGS)
    assert table.frame.loc[3].tolist() == ["o2", "", "", "High", "school", "", ""]
    assert table.frame.loc[4, "name"] == "Low"
    by_column = {f.column: f for f in found(table, "CSV-WHITESPACE")}
    assert set(by_column) == {"sourcedId", "name", "type"}
    name = by_column["name"]
    assert (name.severity, name.line, name.sourcedId, name.value) == (WARNING, 3, "o2", None)
    assert "2 value(s)" in name.message


def test_whitespace_finding_on_pii_column_has_no_value(make_csv, make_rows):
    row = {"sourcedId": "u1", "givenName": " Ann", "familyName": "Lee"}
    table = read_table(make_csv(make_rows(USERS, row)), USERS)
    f = one(table, "CSV-WHITESPACE")
    assert (f.column, f.line, f.value) == ("givenName", 2, None)
    assert "Ann" not in f.message
    assert table.frame.loc[2, "givenName"] == "Ann"


def test_control_characters_are_removed_and_reported_once_per_column(make_csv, make_rows):
    rows = [
        {"sourcedId": "u1", "givenName": "Jo\x00se", "familyName": "Lee", "role": "student"},
        {
            "sourcedId": "u2",
            "givenName": "\x00 Ann",
            "familyName": "Le\x1be",
            "role": "stu\x7fdent",
        },
        {"sourcedId": "u\x00003", "givenName": "Mary\tAnn", "familyName": "Ng\u0085u"},
        {"sourcedId": "u4", "givenName": "Zoë", "familyName": "Ng", "grades": "09\t"},
    ]
    table = read_table(make_csv(make_rows(USERS, *rows)), USERS)
    frame = table.frame
    assert frame["givenName"].tolist() == ["Jose", "Ann", "MaryAnn", "Zoë"]
    assert frame["familyName"].tolist() == ["Lee", "Lee", "Ngu", "Ng"]
    assert frame["role"].tolist() == ["student", "student", "", ""]
    assert frame["sourcedId"].tolist() == ["u1", "u2", "u003", "u4"]
    by_column = {f.column: f for f in found(table, "CSV-CONTROL-CHARS")}
    assert set(by_column) == {"givenName", "familyName", "role", "sourcedId"}
    given = by_column["givenName"]
    assert (given.severity, given.line, given.sourcedId, given.value) == (WARNING, 2, "u1", None)
    assert "3 value(s)" in given.message and "Jo" not in given.message
    assert by_column["sourcedId"].line == 4
    # A tab at an end is whitespace, trimmed as before.
    assert one(table, "CSV-WHITESPACE").column == "grades"
    assert frame["grades"].tolist()[-1] == "09"


def test_value_over_255_characters_is_too_long_per_cell():
    data = (
        ORGS_HEADER
        + org("o1", name="n" * 255)
        + org("o2", name="n" * 256)
        + org("o3", name="\u00e9" * 255)  # 510 bytes but 255 characters
    )
    table = read_table(data, ORGS)
    f = one(table, "CSV-TOO-LONG")
    assert (f.severity, f.line, f.column, f.sourcedId) == (WARNING, 3, "name", "o2")
    assert table.frame.loc[3, "name"] == "n" * 256


# -- header rules -----------------------------------------------------------------------------


def header_table(spec: FileSpec, names: list[str]) -> Table:
    row = ",".join(f"v{i}" for i in range(len(names)))
    return read_table((",".join(names) + "\r\n" + row + "\r\n").encode(), spec)


def test_reordered_columns_are_read_by_name_and_reported_once():
    names = list(reversed(ORGS.header))
    table = header_table(ORGS, names)
    f = one(table, "CSV-HEADER-ORDER")
    assert (f.severity, f.line) == (WARNING, 1)
    assert list(table.frame.columns) == ORGS.header
    assert table.frame.loc[2, "sourcedId"] == f"v{names.index('sourcedId')}"


def test_metadata_columns_are_kept_after_spec_columns_in_source_order():
    names = ["metadata.zeta", *ORGS.header, "metadata.alpha"]
    table = header_table(ORGS, names)
    assert list(table.frame.columns) == [*ORGS.header, "metadata.zeta", "metadata.alpha"]
    assert table.frame.loc[2, "metadata.zeta"] == "v0"
    assert table.findings == []


def test_unknown_column_is_dropped_with_a_warning():
    table = header_table(ORGS, [*ORGS.header, "principal"])
    f = one(table, "CSV-HEADER-UNKNOWN")
    assert (f.severity, f.line, f.column, f.value) == (WARNING, 1, "principal", "principal")
    assert "principal" not in table.frame.columns


ALIASES = [
    (spec, alias, target) for spec in FILES.values() for alias, target in spec.aliases.items()
]


@pytest.mark.parametrize(
    ("spec", "alias", "target"), ALIASES, ids=[f"{s.name}:{a}" for s, a, _ in ALIASES]
)
def test_alias_is_read_as_the_spec_name(spec, alias, target):
    names = [alias if n == target else n for n in spec.header]
    table = header_table(spec, names)
    f = one(table, "CSV-HEADER-ALIAS")
    assert (f.severity, f.line, f.column, f.value) == (WARNING, 1, target, alias)
    assert table.frame.loc[2, target] == f"v{names.index(alias)}"
    assert target not in table.absent


@pytest.mark.parametrize("variant", ["SourcedId", "sourcedid", "SOURCEID"])
def test_case_variant_is_an_error_and_not_used(variant):
    table = header_table(ORGS, [variant if n == "sourcedId" else n for n in ORGS.header])
    f = one(table, "CSV-HEADER-CASE")
    assert (f.severity, f.line, f.column, f.value) == (ERROR, 1, "sourcedId", variant)
    assert one(table, "CSV-HEADER-MISSING").column == "sourcedId"
    assert table.frame.loc[2, "sourcedId"] == ""
    assert "sourcedId" in table.absent


def test_case_variant_of_a_pii_column_keeps_the_header_name_as_value():
    names = ["GivenName" if n == "givenName" else n for n in USERS.header]
    f = one(header_table(USERS, names), "CSV-HEADER-CASE")
    assert (f.column, f.value) == ("givenName", "GivenName")


def test_duplicate_column_keeps_the_first():
    table = header_table(ORGS, [*ORGS.header, "name"])
    f = one(table, "CSV-HEADER-DUPLICATE")
    assert (f.severity, f.line, f.column) == (ERROR, 1, "name")
    assert table.frame.loc[2, "name"] == f"v{ORGS.header.index('name')}"


def test_alias_of_a_present_column_is_a_duplicate():
    table = header_table(ORGS, [*ORGS.header, "sourceID"])
    assert one(table, "CSV-HEADER-DUPLICATE").value == "sourceID"
    assert "CSV-HEADER-ALIAS" not in rules(table)


@pytest.mark.parametrize("spec", FILES.values(), ids=lambda s: s.name)
def test_each_missing_required_column_is_an_error(spec):
    for column in spec.required:
        table = header_table(spec, [n for n in spec.header if n != column])
        f = one(table, "CSV-HEADER-MISSING")
        assert (f.severity, f.line, f.column) == (ERROR, 1, column)
        assert column in table.absent and table.frame.loc[2, column] == ""


def test_missing_optional_column_is_a_warning_and_blank():
    table = header_table(ORGS, [n for n in ORGS.header if n != "identifier"])
    f = one(table, "CSV-HEADER-INCOMPLETE")
    assert (f.severity, f.line, f.column) == (WARNING, 1, "identifier")
    assert table.absent == frozenset({"identifier"})
    assert list(table.frame.columns) == ORGS.header
    assert table.frame.loc[2, "identifier"] == ""


def test_spaces_around_a_header_name_are_trimmed():
    table = header_table(ORGS, [" sourcedId ", *ORGS.header[1:]])
    assert "CSV-HEADER-MISSING" not in rules(table)
    assert one(table, "CSV-WHITESPACE").line == 1


@pytest.mark.parametrize(
    ("extra", "version"),
    [
        (["userMasterIdentifier", "preferredGivenName", "primaryOrgSourcedId"], "1.2"),
        (["agents", "userId"], "1.0"),
    ],
)
def test_users_header_of_another_oneroster_version(extra, version):
    names = [n for n in USERS.header if version != "1.0" or n != "enabledUser"] + extra
    f = one(header_table(USERS, names), "SRC-VERSION")
    assert (f.severity, f.line, f.file) == (ERROR, 1, "users.csv")
    assert version in f.message


def test_v11_users_with_a_user_id_metadata_column_is_not_another_version():
    table = header_table(USERS, [*USERS.header, "metadata.userId"])
    assert "SRC-VERSION" not in rules(table)


def test_reading_only_some_columns_skips_cell_checks_and_blanks_the_rest():
    """The orgs stage reads just role/status/orgSourcedIds of users.csv: the other columns come
    back blank, no cell finding is made (the users stage reports those), line numbers hold."""
    data = (
        b"sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,"
        b"givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,"
        b"password\r\n"
        b"1,,,true, s1 ,student,u1,,A,B,,,,,,,09,\r\n"
        b",,,,,,,,,,,,,,,,,\r\n"
        b"2,,,true,s2,guardian,u2,,C," + b"x" * 300 + b",,,,,,,,\r\n"
    )
    full = read_table(data, USERS)
    assert {f.rule for f in full.findings} >= {"CSV-WHITESPACE", "CSV-TOO-LONG"}
    part = read_table(data, USERS, only=("role", "status", "orgSourcedIds"))
    assert part.findings == []
    assert list(part.frame.index) == [2, 4]
    assert list(part.frame["role"]) == ["student", "guardian"]
    assert list(part.frame["orgSourcedIds"]) == ["s1", "s2"]
    assert set(part.frame["familyName"]) == {""}
    assert list(part.frame.columns) == list(full.frame.columns)
