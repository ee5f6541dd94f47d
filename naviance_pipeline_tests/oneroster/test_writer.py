"""The strict CSV writer: the exact bytes of spec section 3."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest

from naviance_pipeline.oneroster.writer import csv_header, iter_csv, write_csv

TEXT = pd.StringDtype("pyarrow")


def frame(**columns: list) -> pd.DataFrame:
    return pd.DataFrame(columns, dtype=TEXT)


def test_header_first_exactly_then_crlf_after_every_record_including_the_last():
    data = write_csv(frame(a=["1", "2"], b=["x", "y"]), ["a", "b"])
    assert data == b"a,b\r\n1,x\r\n2,y\r\n"


def test_utf8_without_byte_order_mark_and_unicode_kept():
    data = write_csv(
        frame(givenName=["José", "Zoë"], familyName=["Nguyễn", "Müller"]),
        ["givenName", "familyName"],
    )
    assert not data.startswith(b"\xef\xbb\xbf")
    assert data == "givenName,familyName\r\nJosé,Nguyễn\r\nZoë,Müller\r\n".encode()


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("a,b", '"a,b"'),  # comma
        ('say "hi"', '"say ""hi"""'),  # quote, doubled
        ('"', '""""'),
        (" lead", '" lead"'),  # leading space
        ("trail ", '"trail "'),  # trailing space
        ("in side", "in side"),  # inner space: no quotes
        ("O'Brien", "O'Brien"),  # apostrophe: no quotes
        ("00123", "00123"),  # leading zeros unchanged
        ("true", "true"),  # booleans stay lowercase text
        ("1.23457E+11", "1.23457E+11"),
        ("2010-03-04", "2010-03-04"),
        ("{SIS:12}", "{SIS:12}"),
    ],
)
def test_quotes_only_where_a_value_holds_comma_quote_or_edge_space(value, field):
    data = write_csv(frame(id=["u1"], v=[value]), ["id", "v"])
    assert data == f"id,v\r\nu1,{field}\r\n".encode()


def test_empty_values_are_unquoted_and_nulls_are_blank():
    f = pd.DataFrame({"a": ["x", None], "b": ["", ""], "c": [pd.NA, "z"]}, dtype=TEXT)
    assert write_csv(f, ["a", "b", "c"]) == b"a,b,c\r\nx,,\r\n,,z\r\n"


def test_object_and_non_string_columns_are_written_as_text():
    f = pd.DataFrame({"a": ["x", None], "n": [1, 2]})
    assert write_csv(f, ["a", "n"]) == b"a,n\r\nx,1\r\n,2\r\n"


def test_a_lone_blank_field_is_quoted_so_the_record_is_not_an_empty_line():
    assert write_csv(frame(a=["x", ""]), ["a"]) == b'a\r\nx\r\n""\r\n'


def test_header_decides_the_columns_and_their_order():
    f = frame(b=["2"], a=["1"], extra=["dropped"])
    assert write_csv(f, ["a", "b"]) == b"a,b\r\n1,2\r\n"


def test_header_names_are_quoted_by_the_same_rules():
    assert csv_header(["a,b", "c"]) == b'"a,b",c\r\n'


def test_empty_frame_gives_the_header_only():
    assert write_csv(frame(a=[], b=[]), ["a", "b"]) == b"a,b\r\n"


def test_row_position_ignores_the_frame_index():
    f = frame(a=["x", "y"]).set_axis([10, 3])
    assert write_csv(f, ["a"]) == b"a\r\nx\r\ny\r\n"


@pytest.mark.parametrize("newline", ["\n", "\r", "\r\n"])
def test_line_break_in_a_value_raises_naming_column_and_row_not_the_value(newline):
    f = frame(sourcedId=["u1", "u2", "u3"], givenName=["Ann", "Ann", f"Xyzzy{newline}Plugh"])
    with pytest.raises(ValueError) as raised:
        write_csv(f, ["sourcedId", "givenName"])
    message = str(raised.value)
    assert "'givenName'" in message
    assert "data row 3 (CSV record 4)" in message
    assert "Xyzzy" not in message and "Plugh" not in message


def test_line_break_row_is_counted_across_chunks():
    f = frame(a=["x"] * 5 + ["bad\nvalue"])
    with pytest.raises(ValueError, match=r"data row 6 \(CSV record 7\)"):
        b"".join(iter_csv(f, ["a"], chunk_rows=4))


def test_missing_column_raises_naming_it():
    with pytest.raises(ValueError, match=r"metadata\.classYear"):
        write_csv(frame(a=["1"]), ["a", "metadata.classYear"])


def test_chunks_join_to_the_same_bytes_and_can_leave_out_the_header():
    f = frame(a=[str(i) for i in range(7)], b=["x", "y,z", "", ' q"', "w", "v ", "u"])
    whole = write_csv(f, ["a", "b"])
    assert b"".join(iter_csv(f, ["a", "b"], chunk_rows=3)) == whole
    assert b"".join(iter_csv(f, ["a", "b"], with_header=False, chunk_rows=2)) == whole[5:]


def test_output_reads_back_with_the_csv_module():
    values = ["a,b", 'q"q', " x ", "", "José", "00123"]
    data = write_csv(frame(id=[str(i) for i in range(len(values))], v=values), ["id", "v"])
    rows = list(csv.reader(io.StringIO(data.decode(), newline="")))
    assert rows == [["id", "v"], *([str(i), v] for i, v in enumerate(values))]


def test_chunks_with_and_without_quoting_give_the_same_bytes_as_one_chunk():
    # Chunk 1 needs no quotes (Arrow's writer), chunk 2 does (the joins), chunk 3 none again.
    data = frame(a=["1", "2", "x,y", "4", "5"], b=["p", "q", "r", "s", ""])
    chunks = list(iter_csv(data, ["a", "b"], chunk_rows=2))
    assert b"".join(chunks) == b'a,b\r\n1,p\r\n2,q\r\n"x,y",r\r\n4,s\r\n5,\r\n'
    assert b"".join(chunks) == b"".join(iter_csv(data, ["a", "b"], chunk_rows=100))
