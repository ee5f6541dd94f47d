"""Reading a SIS export for a mapping: files and headers checked before any data is read."""

from __future__ import annotations

import io
import os
import zipfile
from datetime import date
from pathlib import Path

import pytest

from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.source import SourceUnreadable
from naviance_pipeline.sources.sis.export import MAX_HEADER_BYTES, read_export, read_header
from naviance_pipeline.sources.sis.mapping import MappingError
from naviance_pipeline_tests.sis.factories import (
    STUDENTS_HEADER,
    csv_bytes,
    export_files,
    load,
    mapping_doc,
    student,
)

OPTIONS = Options(as_of=date(2026, 11, 30))


def write_folder(folder: Path, files: dict[str, bytes]) -> str:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return str(folder)


def write_zip(path: Path, files: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return str(path)


def mapping_error(url: str, mapping=None) -> MappingError:
    with pytest.raises(MappingError) as caught:
        read_export(url, mapping or load(), OPTIONS)
    return caught.value


# ---- reading --------------------------------------------------------------------------------


def test_a_folder_export_is_returned_by_table(tmp_path: Path):
    files = export_files()
    tables = read_export(write_folder(tmp_path, files), load(), OPTIONS)
    assert tables == {
        "students": files["students.csv"],
        "teachers": files["teachers.csv"],
        "schools": files["schools.csv"],
    }


def test_a_zip_export_is_returned_by_table(tmp_path: Path):
    files = export_files()
    tables = read_export(write_zip(tmp_path / "export.zip", files), load(), OPTIONS)
    assert tables["students"] == files["students.csv"]
    assert set(tables) == {"students", "teachers", "schools"}


def test_files_in_one_enclosing_folder_are_found(tmp_path: Path):
    files = {f"export/{name}": data for name, data in export_files().items()}
    tables = read_export(write_zip(tmp_path / "export.zip", files), load(), OPTIONS)
    assert tables["schools"] == files["export/schools.csv"]


def test_a_bom_and_crlf_header_is_read():
    data = b"\xef\xbb\xbf" + csv_bytes([["ID", " First ", "Last"], ["1", "Ann", "Lee"]])
    assert read_header(io.BytesIO(data)) == ["ID", "First", "Last"]


def test_a_quoted_header_with_a_comma_and_a_line_break_is_one_record():
    data = b'ID,"Name, first","Two\nlines"\n1,Ann,x\n'
    assert read_header(io.BytesIO(data)) == ["ID", "Name, first", "Two\nlines"]


def test_a_header_in_another_encoding_is_decoded():
    data = "ID,Prénom\r\n1,Zoë\r\n".encode("cp1252")
    assert read_header(io.BytesIO(data), "cp1252") == ["ID", "Prénom"]


class CountingStream(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.consumed = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.consumed += len(chunk)
        return chunk


def test_reading_a_header_reads_little_more_than_the_header():
    data = csv_bytes([STUDENTS_HEADER, *[student() for _ in range(20_000)]])
    stream = CountingStream(data)
    assert read_header(stream) == STUDENTS_HEADER
    assert stream.consumed <= 8 * 1024 < len(data)


# ---- a mapping that does not fit fails before any data is read ---------------------------------


def test_a_missing_file_names_the_table_file_key(tmp_path: Path):
    files = export_files()
    del files["teachers.csv"]
    error = mapping_error(write_folder(tmp_path, files))
    assert error.problems == [
        f"test.yaml: tables.teachers.file: teachers.csv is not in the export {tmp_path}"
    ]


def test_a_file_named_in_another_case_is_pointed_out(tmp_path: Path):
    files = export_files()
    files["Teachers.csv"] = files.pop("teachers.csv")
    error = mapping_error(write_zip(tmp_path / "export.zip", files))
    assert "tables.teachers.file: teachers.csv is not in the export" in str(error)
    assert "(it has Teachers.csv: file names must match exactly)" in str(error)


def test_a_missing_column_names_the_mapping_key_the_column_and_the_file(tmp_path: Path):
    files = export_files()
    header = [c if c != "Grade" else "GradeLevel" for c in STUDENTS_HEADER]
    files["students.csv"] = csv_bytes([header, student()])
    error = mapping_error(write_folder(tmp_path, files))
    assert error.problems == [
        "test.yaml: users[0].columns.grades.column: column 'Grade' is not in students.csv"
    ]


def test_every_missing_file_and_column_is_reported_at_once(tmp_path: Path):
    files = export_files()
    del files["schools.csv"]
    files["teachers.csv"] = csv_bytes([["ID", "SchoolID", "First", "Last"]])
    error = mapping_error(write_folder(tmp_path, files))
    assert [p.split(": ")[1] for p in error.problems] == [
        "tables.schools.file",
        "users[1].columns.username.column",
        "users[1].columns.metadata.title.column",
    ]


def _zip_with_corrupt_data(path: Path, header: list[str]) -> str:
    """students.csv whose data (far past the header) is damaged inside the Deflate stream."""
    body = csv_bytes(
        [header, *[student(ID=str(i), Locker=os.urandom(8).hex()) for i in range(8000)]]
    )
    files = export_files()
    files["students.csv"] = body
    raw = io.BytesIO()
    with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    data = bytearray(raw.getvalue())
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("students.csv")
    # Past the local header and well past the first few KiB of the entry's compressed data.
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for at in range(start + info.compress_size - 2000, start + info.compress_size - 100):
        data[at] ^= 0x5A
    path.write_bytes(bytes(data))
    return str(path)


def test_a_missing_column_fails_before_the_damaged_data_is_read(tmp_path: Path):
    header = [c if c != "Grade" else "GradeLevel" for c in STUDENTS_HEADER]
    url = _zip_with_corrupt_data(tmp_path / "export.zip", header)
    error = mapping_error(url)
    assert "users[0].columns.grades.column: column 'Grade' is not in students.csv" in str(error)


def test_the_damaged_data_is_really_damaged(tmp_path: Path):
    url = _zip_with_corrupt_data(tmp_path / "export.zip", STUDENTS_HEADER)
    with pytest.raises(SourceUnreadable):
        read_export(url, load(), OPTIONS)  # the mapping fits: the data is read, and fails


def test_undecodable_data_rows_do_not_stop_the_header_check(tmp_path: Path):
    files = export_files()
    files["students.csv"] += b"\x81\xff\xfe broken,row\r\n"
    tables = read_export(write_folder(tmp_path, files), load(), OPTIONS)
    assert tables["students"] == files["students.csv"]  # the data's problem is convert's


def test_an_undecodable_header_names_the_encoding_key(tmp_path: Path):
    files = export_files()
    files["schools.csv"] = b"SchoolID,School\xff\r\n1,x\r\n"
    error = mapping_error(write_folder(tmp_path, files))
    assert error.problems[0].startswith(
        "test.yaml: tables.schools.encoding: the header row of schools.csv is not utf-8 text"
    )


def test_a_file_with_no_line_break_is_not_a_csv(tmp_path: Path):
    files = export_files()
    files["schools.csv"] = b"x" * (MAX_HEADER_BYTES + 10)
    error = mapping_error(write_folder(tmp_path, files))
    assert error.problems[0].startswith("test.yaml: tables.schools.file: schools.csv has no line")


def test_an_empty_file_has_no_header(tmp_path: Path):
    files = export_files()
    files["schools.csv"] = b""
    error = mapping_error(write_folder(tmp_path, files))
    assert error.problems == [
        "test.yaml: tables.schools: schools.csv has no header row (it is empty)"
    ]


def test_a_query_only_table_cannot_be_read_from_an_export(tmp_path: Path):
    doc = mapping_doc()
    doc["tables"]["schools"] = {"query": "SELECT 1"}
    error = mapping_error(write_folder(tmp_path, export_files()), load(doc))
    assert error.problems[0].startswith("test.yaml: tables.schools: has no file (only a query)")


# ---- archives -------------------------------------------------------------------------------


def test_an_unsafe_archive_is_refused_with_its_finding(tmp_path: Path):
    files = export_files()
    files["../escape.csv"] = b"x\r\n"
    with pytest.raises(SourceUnreadable) as caught:
        read_export(write_zip(tmp_path / "export.zip", files), load(), OPTIONS)
    assert caught.value.finding.rule == "SRC-UNSAFE-ENTRY"
    assert caught.value.finding.file == "../escape.csv"


def test_a_zip_bomb_is_refused_before_inflating(tmp_path: Path):
    files = export_files()
    files["padding.csv"] = b"\0" * 5_000_000
    options = Options(as_of=OPTIONS.as_of, max_compression_ratio=50)
    with pytest.raises(SourceUnreadable) as caught:
        read_export(write_zip(tmp_path / "export.zip", files), load(), options)
    assert caught.value.finding.rule == "SRC-TOO-LARGE"


def test_a_missing_export_is_unreadable(tmp_path: Path):
    with pytest.raises(SourceUnreadable) as caught:
        read_export(str(tmp_path / "nothing.zip"), load(), OPTIONS)
    assert caught.value.finding.rule == "SRC-UNREADABLE"
