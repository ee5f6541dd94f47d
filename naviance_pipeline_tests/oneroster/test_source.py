"""Opening a source: folders and ZIPs at fsspec URLs, archive safety, package and manifest rules."""

from __future__ import annotations

import uuid
import zipfile
from datetime import date

import fsspec
import pytest

from naviance_pipeline.oneroster.findings import ERROR, WARNING, Finding
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.source import (
    Source,
    SourceUnreadable,
    open_source,
    redact_url,
)
from naviance_pipeline.oneroster.spec import PACKAGE_ENTRIES

OPTIONS = Options(as_of=date(2026, 11, 30))


def found(source: Source, rule: str) -> list[Finding]:
    return [f for f in source.findings if f.rule == rule]


def one(source: Source, rule: str) -> Finding:
    matches = found(source, rule)
    assert len(matches) == 1, (rule, source.findings)
    return matches[0]


def write_folder(root, files: dict[str, bytes]):
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def with_manifest(files: dict[str, bytes], *rows: str) -> dict[str, bytes]:
    manifest = "\r\n".join(["propertyName,value", *rows, ""]).encode()
    return {**files, "manifest.csv": manifest}


def open_zip(tmp_path, data: bytes, options: Options = OPTIONS, name="roster.zip") -> Source:
    path = tmp_path / name
    path.write_bytes(data)
    return open_source(str(path), options)


# -- where the files come from ----------------------------------------------------------------


def test_folder_at_a_local_path(tmp_path, valid_package):
    source = open_source(str(write_folder(tmp_path, valid_package)), OPTIONS)
    assert source.files == valid_package
    assert sorted(source.entries) == sorted(PACKAGE_ENTRIES)
    assert source.findings == []


def test_zip_at_a_file_url(tmp_path, valid_package, make_zip):
    path = tmp_path / "roster.zip"
    path.write_bytes(make_zip(valid_package))
    source = open_source(path.as_uri(), OPTIONS)
    assert source.files == valid_package
    assert source.findings == []
    assert source.url == path.as_uri()


def test_zip_is_recognised_by_content_not_name(tmp_path, valid_package, make_zip):
    source = open_zip(tmp_path, make_zip(valid_package), name="export.dat")
    assert source.files == valid_package


def test_memory_folder_proves_any_fsspec_filesystem(valid_package):
    fs = fsspec.filesystem("memory")
    root = f"/district-{uuid.uuid4().hex}"
    try:
        for name, data in valid_package.items():
            fs.pipe(f"{root}/{name}", data)
        source = open_source(f"memory://{root}", OPTIONS)
        assert source.files == valid_package
        assert source.findings == []
    finally:
        fs.rm(root, recursive=True)


def test_zip_with_one_enclosing_folder_is_nested(tmp_path, valid_package, make_zip):
    entries = {f"Roster_2026/{name}": data for name, data in valid_package.items()}
    source = open_zip(tmp_path, make_zip({"Roster_2026/": b"", **entries}))
    f = one(source, "SRC-NESTED")
    assert (f.severity, f.line) == (WARNING, None)
    assert "Roster_2026" in f.message
    assert source.files == valid_package
    assert [f.rule for f in source.findings] == ["SRC-NESTED"]
    assert sorted(source.entries) == sorted(entries)


def test_folder_with_one_enclosing_folder_is_nested(tmp_path, valid_package):
    write_folder(tmp_path / "export", valid_package)
    source = open_source(str(tmp_path), OPTIONS)
    assert one(source, "SRC-NESTED").severity == WARNING
    assert source.files == valid_package


def test_files_in_two_folders_are_not_guessed(tmp_path, valid_package, make_zip):
    entries = {f"{day}/{n}": d for day in ("mon", "tue") for n, d in valid_package.items()}
    source = open_zip(tmp_path, make_zip(entries))
    assert source.files == {}
    assert {f.file for f in found(source, "SRC-MISSING-FILE")} == {"orgs.csv", "users.csv"}
    assert "mon/users.csv" in one_of(source, "SRC-MISSING-FILE", "users.csv").message


def one_of(source: Source, rule: str, file: str) -> Finding:
    return next(f for f in found(source, rule) if f.file == file)


# -- package rules ----------------------------------------------------------------------------


def test_other_oneroster_files_are_silent_and_others_are_extra(tmp_path, valid_package, make_zip):
    extras = {"classes.csv": b"sourcedId\r\n", "enrollments.csv": b"x\r\n", "notes.txt": b"hi"}
    source = open_zip(tmp_path, make_zip({**valid_package, **extras}))
    f = one(source, "SRC-EXTRA-FILE")
    assert (f.severity, f.file, f.line) == (WARNING, "notes.txt", None)
    assert source.files == valid_package
    assert "classes.csv" in source.entries


def test_missing_users_is_an_error_and_missing_demographics_is_not(tmp_path, valid_package):
    files = {k: v for k, v in valid_package.items() if k not in ("users.csv", "demographics.csv")}
    files = with_manifest(files, "oneroster.version,1.1")
    source = open_source(str(write_folder(tmp_path, files)), OPTIONS)
    f = one(source, "SRC-MISSING-FILE")
    assert (f.severity, f.file, f.line) == (ERROR, "users.csv", None)
    assert set(source.files) == {"manifest.csv", "orgs.csv"}


def test_wrong_case_file_name_is_missing_with_a_hint(tmp_path, valid_package):
    files = {("Users.csv" if k == "users.csv" else k): v for k, v in valid_package.items()}
    source = open_source(str(write_folder(tmp_path, files)), OPTIONS)
    assert "Users.csv" in one(source, "SRC-MISSING-FILE").message
    assert one(source, "SRC-EXTRA-FILE").file == "Users.csv"


def test_missing_manifest_is_an_error(tmp_path, valid_package):
    files = {k: v for k, v in valid_package.items() if k != "manifest.csv"}
    source = open_source(str(write_folder(tmp_path, files)), OPTIONS)
    f = one(source, "SRC-MANIFEST-MISSING")
    assert (f.severity, f.file, f.line) == (ERROR, "manifest.csv", None)


def test_missing_manifest_is_fine_for_a_raw_sis_export(tmp_path, valid_package):
    files = {k: v for k, v in valid_package.items() if k != "manifest.csv"}
    options = Options(as_of=OPTIONS.as_of, raw_sis_export=True)
    source = open_source(str(write_folder(tmp_path, files)), options)
    assert source.findings == []


# -- manifest ---------------------------------------------------------------------------------


def manifest_source(tmp_path, files, *rows: str) -> Source:
    return open_source(str(write_folder(tmp_path, with_manifest(files, *rows))), OPTIONS)


def test_delta_users_is_an_error_on_its_line(tmp_path, valid_package):
    source = manifest_source(
        tmp_path, valid_package, "manifest.version,1.0", "oneroster.version,1.1", "file.users,delta"
    )
    f = one(source, "SRC-DELTA")
    assert (f.severity, f.file, f.line, f.column, f.value) == (
        ERROR,
        "manifest.csv",
        4,
        "value",
        "delta",
    )


def test_delta_of_an_unused_file_is_ignored(tmp_path, valid_package):
    source = manifest_source(tmp_path, valid_package, "file.enrollments,delta")
    assert found(source, "SRC-DELTA") == []


def test_oneroster_version_other_than_1_1_is_an_error(tmp_path, valid_package):
    source = manifest_source(
        tmp_path, valid_package, "manifest.version,1.0", "oneroster.version,1.0"
    )
    f = one(source, "SRC-VERSION")
    assert (f.severity, f.line, f.column, f.value) == (ERROR, 3, "value", "1.0")


def test_manifest_with_bom_crlf_and_spaces_is_read(tmp_path, valid_package):
    manifest = b"\xef\xbb\xbfpropertyName,value\r\n oneroster.version , 1.1 \r\nfile.users,Bulk\r\n"
    files = {**valid_package, "manifest.csv": manifest}
    source = open_source(str(write_folder(tmp_path, files)), OPTIONS)
    assert source.findings == []


@pytest.mark.parametrize(
    ("row", "line_value"),
    [
        ("file.classes,bulk", "bulk"),  # says bulk, file missing
        ("file.demographics,absent", "absent"),  # says absent, file present
        ("file.users,maybe", "maybe"),  # not a state
    ],
)
def test_manifest_state_mismatch_is_a_warning(tmp_path, valid_package, row, line_value):
    source = manifest_source(tmp_path, valid_package, "oneroster.version,1.1", row)
    f = one(source, "SRC-MANIFEST-MISMATCH")
    assert (f.severity, f.line, f.column, f.value) == (WARNING, 3, "value", line_value)


def test_unknown_and_duplicate_manifest_properties_are_mismatches(tmp_path, valid_package):
    source = manifest_source(
        tmp_path,
        valid_package,
        "oneroster.version,1.1",
        "file.grades,bulk",
        "file.manifest,bulk",
        "source.systemName,PowerSchool",
        "oneroster.version,1.1",
    )
    mismatches = [(f.line, f.column, f.value) for f in found(source, "SRC-MANIFEST-MISMATCH")]
    assert mismatches == [
        (3, "propertyName", "file.grades"),
        (4, "propertyName", "file.manifest"),
        (6, "propertyName", "oneroster.version"),
    ]
    assert all(f.severity == WARNING for f in source.findings)


def test_manifest_that_stops_being_csv_fails_closed(tmp_path, valid_package):
    broken = b'propertyName,value\r\noneroster.version,1.1\r\nfile.users,"' + b"x" * 200_000
    source = open_source(
        str(write_folder(tmp_path, {**valid_package, "manifest.csv": broken})), OPTIONS
    )
    f = one(source, "SRC-MANIFEST-MISSING")
    assert (f.severity, f.line) == (ERROR, 3)


# -- archive safety ---------------------------------------------------------------------------


def symlink(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = 0o120777 << 16  # S_IFLNK | rwxrwxrwx
    return info


@pytest.mark.parametrize(
    "entry",
    [
        "../evil.csv",
        "data/../../evil.csv",
        "/abs.csv",
        "\\abs.csv",
        "C:/evil.csv",
        "..\\evil.csv",
        symlink("users.csv"),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "backslash", "drive", "backslash-dotdot", "link"],
)
def test_unsafe_entry_refuses_the_whole_archive(tmp_path, valid_package, make_zip, entry):
    others = {k: v for k, v in valid_package.items() if k != "users.csv"}
    pairs = [*others.items(), (entry, b"/etc/passwd")]
    source = open_zip(tmp_path, make_zip(pairs))
    f = one(source, "SRC-UNSAFE-ENTRY")
    name = entry.filename if isinstance(entry, zipfile.ZipInfo) else entry
    assert (f.severity, f.file, f.line) == (ERROR, name, None)
    assert source.files == {}
    assert [x.rule for x in source.findings] == ["SRC-UNSAFE-ENTRY"]
    assert name in source.entries


def test_high_compression_ratio_is_a_zip_bomb(tmp_path, valid_package, make_zip):
    source = open_zip(tmp_path, make_zip({**valid_package, "users.csv": bytes(3_000_000)}))
    f = one(source, "SRC-TOO-LARGE")
    assert (f.severity, f.file) == (ERROR, "users.csv")
    assert source.files == {}


def test_small_entries_may_compress_well(tmp_path, valid_package, make_zip):
    source = open_zip(tmp_path, make_zip({**valid_package, "classes.csv": bytes(900_000)}))
    assert found(source, "SRC-TOO-LARGE") == []


def test_expansion_over_the_limit_is_too_large(tmp_path, valid_package, make_zip):
    options = Options(as_of=OPTIONS.as_of, max_expanded_bytes=100)
    source = open_zip(tmp_path, make_zip(valid_package), options)
    f = one(source, "SRC-TOO-LARGE")
    assert (f.severity, f.file, f.line) == (ERROR, None, None)
    assert source.files == {}


# -- unreadable sources -----------------------------------------------------------------------


def unreadable(url: str, **kwargs) -> Finding:
    with pytest.raises(SourceUnreadable) as caught:
        open_source(url, OPTIONS, **kwargs)
    f = caught.value.finding
    assert (f.rule, f.severity, f.line) == ("SRC-UNREADABLE", ERROR, None)
    assert str(caught.value) == f.message
    return f


def test_missing_path_is_unreadable(tmp_path):
    assert "does not exist" in unreadable(str(tmp_path / "nowhere.zip")).message


def test_file_that_is_not_a_zip_is_unreadable(tmp_path, valid_package):
    path = tmp_path / "users.csv"
    path.write_bytes(valid_package["users.csv"])
    assert "not" in unreadable(str(path)).message and "ZIP" in unreadable(str(path)).message


def test_zip_with_a_bad_crc_is_unreadable(tmp_path, valid_package):
    path = tmp_path / "roster.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in valid_package.items():
            zf.writestr(name, data)
    raw = bytearray(path.read_bytes())
    at = raw.index(b"u1,,,true")  # inside users.csv's stored data
    raw[at] = ord("X")
    path.write_bytes(bytes(raw))
    assert "damaged" in unreadable(str(path)).message


def test_truncated_zip_is_unreadable(tmp_path, valid_package, make_zip):
    path = tmp_path / "roster.zip"
    path.write_bytes(make_zip(valid_package)[:-40])
    unreadable(str(path))


def test_permission_denied_is_unreadable(tmp_path, valid_package, make_zip, monkeypatch):
    path = tmp_path / "roster.zip"
    path.write_bytes(make_zip(valid_package))

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(fsspec.implementations.local.LocalFileSystem, "_open", refuse)
    assert "permission denied" in unreadable(str(path)).message


def test_unsupported_url_scheme_is_unreadable():
    unreadable("nosuchscheme://bucket/roster.zip")


def test_messages_never_show_url_credentials(tmp_path):
    f = unreadable("memory://user:s3cret@host/nowhere.zip?token=abc")
    assert "s3cret" not in f.message and "abc" not in f.message


def test_redact_url_leaves_local_paths_alone():
    assert redact_url("/data/roster.zip") == "/data/roster.zip"
    assert redact_url("sftp://u:p@sis.example.org/x.zip") == "sftp://sis.example.org/x.zip"


# -- lazy opening (each stage reads only its file) ---------------------------------------------


def test_lazy_zip_reads_the_same_files_on_demand(tmp_path, valid_package, make_zip):
    path = tmp_path / "roster.zip"
    path.write_bytes(make_zip(valid_package))
    source = open_source(str(path), OPTIONS, lazy=True)
    assert sorted(source.files) == sorted(valid_package)
    assert dict(source.files) == valid_package
    assert source.files.get("users.csv") == valid_package["users.csv"]
    assert source.findings == []


def test_lazy_folder_reads_the_same_files_on_demand(tmp_path, valid_package):
    source = open_source(str(write_folder(tmp_path, valid_package)), OPTIONS, lazy=True)
    assert dict(source.files) == valid_package


def test_lazy_open_still_reports_the_manifest(tmp_path, valid_package, make_zip):
    files = with_manifest(valid_package, "oneroster.version,1.0")
    path = tmp_path / "roster.zip"
    path.write_bytes(make_zip(files))
    source = open_source(str(path), OPTIONS, lazy=True)
    assert one(source, "SRC-VERSION").line == 2


def test_lazy_read_of_a_damaged_deflate_entry_is_unreadable(tmp_path, valid_package):
    path = tmp_path / "roster.zip"
    big = {**valid_package, "users.csv": valid_package["users.csv"] * 50}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in big.items():
            zf.writestr(name, data)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("users.csv")
    raw = bytearray(path.read_bytes())
    raw[info.header_offset + 30 + len("users.csv") + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    source = open_source(str(path), OPTIONS, lazy=True)  # the manifest is fine
    with pytest.raises(SourceUnreadable) as caught:
        source.files["users.csv"]
    assert caught.value.finding.rule == "SRC-UNREADABLE"
    assert "damaged" in caught.value.finding.message
    assert "damaged" in unreadable(str(path)).message  # eager: at once
