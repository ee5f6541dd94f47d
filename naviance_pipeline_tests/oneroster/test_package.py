"""NavianceOneRoster.zip: deterministic bytes, layout, verification (PKG-VERIFY), size
(PKG-SIZE), and nothing half-written at the destination."""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from upath import UPath

from naviance_pipeline.oneroster import package
from naviance_pipeline.oneroster.contract import coded_columns
from naviance_pipeline.oneroster.findings import ERROR, WARNING
from naviance_pipeline.oneroster.manifest import manifest_frame
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.package import (
    EntryInfo,
    build_package,
    check_size,
    read_package_summary,
    verify_package,
    write_zip,
)
from naviance_pipeline.oneroster.spec import (
    DEMOGRAPHICS,
    ORGS,
    PACKAGE_ENTRIES,
    ZIP_NAME,
    user_output_header,
)
from naviance_pipeline.oneroster.writer import write_csv
from naviance_pipeline.operations.frames import read_frame, write_frame

TEXT = pd.StringDtype("pyarrow")
AS_OF = date(2026, 11, 30)


def rows(header: list[str], *records: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        [[r.get(c, "") for c in header] for r in records], columns=header, dtype=TEXT
    )


def orgs() -> pd.DataFrame:
    return rows(
        ORGS.header,
        {"sourcedId": "0001", "name": "Lakeview USD", "type": "district"},
        {"sourcedId": "0100", "name": "Lakeview High", "type": "school", "parentSourcedId": "0001"},
        {"sourcedId": "0101", "name": "Cedar Middle", "type": "school", "parentSourcedId": "0001"},
    )


def users(include_staff: bool = False) -> pd.DataFrame:
    student = {"enabledUser": "true", "role": "student", "grades": "09"}
    return rows(
        user_output_header(include_staff),
        {
            **student,
            "sourcedId": "00012345",
            "orgSourcedIds": "0100",
            "username": "ajose",
            "givenName": "José",
            "familyName": "Núñez",
            "metadata.classYear": "2030",
        },
        {
            **student,
            "sourcedId": "00012346",
            "orgSourcedIds": "0100,0101",
            "username": "bzoe",
            "givenName": "Zoë",
            "familyName": "Smith-Jones",
            "metadata.classYear": "2030",
        },
    )


def demographics() -> pd.DataFrame:
    return rows(
        DEMOGRAPHICS.header,
        {"sourcedId": "00012345", "birthDate": "2011-03-04", "sex": "male", "white": "true"},
        {"sourcedId": "00012346", "birthDate": "2011-05-06", "sex": "female"},
    )


def build(dest: Path, as_of: date = AS_OF, **kwargs):
    options = Options(as_of=as_of)
    return build_package(
        manifest_frame(options), orgs(), users(), demographics(), options, str(dest), **kwargs
    )


@pytest.fixture
def built(tmp_path: Path):
    return build(tmp_path / ZIP_NAME)


def entries_of(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def rezip(path: Path, entries: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)


def pkg_rules(findings) -> list[tuple[str, str, str | None, int | None]]:
    return [(f.rule, f.severity, f.file, f.line) for f in findings]


# ---- deterministic build --------------------------------------------------------------------


def test_same_frames_and_as_of_give_byte_identical_zips(tmp_path: Path):
    first = build(tmp_path / "a" / ZIP_NAME)
    second = build(tmp_path / "b" / ZIP_NAME)
    assert (tmp_path / "a" / ZIP_NAME).read_bytes() == (tmp_path / "b" / ZIP_NAME).read_bytes()
    assert first.sha256 == second.sha256 and first.size == second.size
    assert first.findings == second.findings == []


def test_another_as_of_changes_the_entry_timestamps_not_the_content(tmp_path: Path):
    build(tmp_path / "a" / ZIP_NAME, as_of=date(2026, 11, 30))
    build(tmp_path / "b" / ZIP_NAME, as_of=date(2027, 1, 2))
    a, b = (zipfile.ZipFile(tmp_path / d / ZIP_NAME) for d in "ab")
    assert {i.date_time for i in a.infolist()} == {(2026, 11, 30, 0, 0, 0)}
    assert {i.date_time for i in b.infolist()} == {(2027, 1, 2, 0, 0, 0)}
    assert [a.read(n) for n in a.namelist()] == [b.read(n) for n in b.namelist()]
    assert (tmp_path / "a" / ZIP_NAME).read_bytes() != (tmp_path / "b" / ZIP_NAME).read_bytes()


def test_entries_are_the_four_files_in_order_at_the_root_deflated_with_fixed_metadata(built):
    with zipfile.ZipFile(built.path) as zf:
        infos = zf.infolist()
        assert zf.comment == b""
    assert [i.filename for i in infos] == list(PACKAGE_ENTRIES)
    assert [i.filename for i in infos] == [
        "manifest.csv",
        "orgs.csv",
        "users.csv",
        "demographics.csv",
    ]
    for info in infos:
        assert "/" not in info.filename and not info.is_dir()
        assert info.compress_type == zipfile.ZIP_DEFLATED
        assert info.date_time == (2026, 11, 30, 0, 0, 0)
        assert info.external_attr >> 16 == 0o100644
        assert info.create_system == 3
        assert info.extra == b"" and info.comment == b""
        assert info.flag_bits & 0x08 == 0  # sizes in the local header, no data descriptor


def test_entries_hold_the_strict_csv_of_each_frame(built):
    entries = entries_of(Path(built.path))
    assert entries["orgs.csv"] == write_csv(orgs(), ORGS.header)
    assert entries["users.csv"] == write_csv(users(), user_output_header(False))
    assert entries["demographics.csv"] == write_csv(demographics(), DEMOGRAPHICS.header)
    assert entries["manifest.csv"].startswith(b"propertyName,value\r\nmanifest.version,1.0\r\n")
    assert b'"0100,0101"' in entries["users.csv"]


def test_result_describes_every_entry(built):
    assert [e.name for e in built.entries] == list(PACKAGE_ENTRIES)
    assert [e.rows for e in built.entries] == [17, 3, 2, 2]
    assert built.entries[2].header == user_output_header(False)
    entries = entries_of(Path(built.path))
    assert [e.bytes for e in built.entries] == [len(entries[n]) for n in PACKAGE_ENTRIES]
    assert built.size == os.path.getsize(built.path)


def test_read_package_summary_reads_back_what_was_built(built):
    assert read_package_summary(built.path) == built.entries


def test_local_zip_is_owner_only(built):
    assert os.stat(built.path).st_mode & 0o777 == 0o600


def test_builds_to_an_fsspec_url():
    dest = "memory://district-7/2026-11-30/NavianceOneRoster.zip"
    result = build_package(
        manifest_frame(Options(as_of=AS_OF)),
        orgs(),
        users(),
        demographics(),
        Options(as_of=AS_OF),
        dest,
    )
    assert result.findings == []
    assert result.path == dest
    assert read_package_summary(dest) == result.entries


def test_users_frame_must_have_the_configured_output_header(tmp_path: Path):
    with pytest.raises(ValueError, match=r"users\.csv"):
        build_package(
            manifest_frame(Options(as_of=AS_OF)),
            orgs(),
            users(include_staff=True),
            demographics(),
            Options(as_of=AS_OF),
            str(tmp_path / ZIP_NAME),
        )
    assert list(tmp_path.iterdir()) == []


def test_staff_header_is_accepted_when_staff_are_included(tmp_path: Path):
    result = build_package(
        manifest_frame(Options(as_of=AS_OF)),
        orgs(),
        users(include_staff=True),
        demographics(),
        Options(as_of=AS_OF, include_staff=True),
        str(tmp_path / ZIP_NAME),
    )
    assert result.findings == []
    assert result.entries[2].header == user_output_header(True)


def test_zip_timestamps_cannot_predate_1980():
    with pytest.raises(ValueError):
        write_zip(io.BytesIO(), [("a.csv", [b"a\r\n"])], date(1979, 12, 31))


# ---- PKG-VERIFY -----------------------------------------------------------------------------


def test_verify_package_passes_an_untouched_zip(built):
    assert verify_package(built.path, built.entries) == []


def test_verify_package_catches_users_csv_with_a_row_removed(built):
    path = Path(built.path)
    entries = entries_of(path)
    header, first, _second = entries["users.csv"].split(b"\r\n", 2)
    entries["users.csv"] = header + b"\r\n" + first + b"\r\n"
    rezip(path, entries)

    findings = verify_package(built.path, built.entries)
    assert findings, "a removed row must be caught"
    assert {(f.rule, f.severity, f.file, f.line) for f in findings} == {
        ("PKG-VERIFY", ERROR, "users.csv", None)
    }
    assert any("re-read rows 1, expected 2" in f.message for f in findings)


def test_verify_package_catches_a_changed_header(built):
    path = Path(built.path)
    entries = entries_of(path)
    entries["orgs.csv"] = entries["orgs.csv"].replace(b"parentSourcedId", b"parentSourceId", 1)
    rezip(path, entries)
    findings = verify_package(built.path, built.entries)
    assert {(f.rule, f.file) for f in findings} == {("PKG-VERIFY", "orgs.csv")}
    assert any(
        "header differs at column 7 (expected 'parentSourcedId')" in f.message for f in findings
    )


def test_verify_package_never_prints_a_data_row_read_as_header(built):
    path = Path(built.path)
    entries = entries_of(path)
    entries["users.csv"] = entries["users.csv"].split(b"\r\n", 1)[1]  # header line lost
    rezip(path, entries)
    findings = verify_package(built.path, built.entries)
    assert {(f.rule, f.file) for f in findings} == {("PKG-VERIFY", "users.csv")}
    messages = " ".join(f.message for f in findings)
    assert "column 1 (expected 'sourcedId')" in messages
    for pii in ("José", "Núñez", "ajose", "00012345"):
        assert pii not in messages


@pytest.mark.parametrize(
    "names",
    [
        ["manifest.csv", "users.csv", "orgs.csv", "demographics.csv"],  # order
        ["manifest.csv", "orgs.csv", "users.csv"],  # missing
        [*PACKAGE_ENTRIES, "extra.csv"],  # extra
        ["manifest.csv", "orgs.csv", "data/users.csv", "demographics.csv"],  # folder
    ],
)
def test_verify_package_catches_wrong_entry_names_or_order(built, names):
    path = Path(built.path)
    entries = entries_of(path)
    rezip(path, {n: entries.get(n.split("/")[-1], b"x\r\n") for n in names})
    assert pkg_rules(verify_package(built.path, built.entries)) == [
        ("PKG-VERIFY", ERROR, ZIP_NAME, None)
    ]


def test_verify_package_catches_an_entry_that_is_not_deflated(built):
    path = Path(built.path)
    entries = entries_of(path)
    with zipfile.ZipFile(path, "w") as zf:  # ZIP_STORED
        for name, data in entries.items():
            zf.writestr(name, data)
    findings = verify_package(built.path, built.entries)
    assert {(f.rule, f.file) for f in findings} == {("PKG-VERIFY", n) for n in PACKAGE_ENTRIES}


def test_verify_package_catches_corrupt_data(built):
    path = Path(built.path)
    data = bytearray(path.read_bytes())
    # Flip bits inside users.csv's compressed data: its CRC (or the deflate stream) breaks.
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("users.csv")
    start = info.header_offset + 30 + len(info.filename)
    data[start + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert pkg_rules(verify_package(built.path, built.entries)) == [
        ("PKG-VERIFY", ERROR, ZIP_NAME, None)
    ]


def _same_length_edit(data: bytes) -> bytes:
    """users.csv with one username changed, byte for byte in place: same length, same rows,
    same header; only the content (and so the sha256) differs."""
    assert data.count(b"ajose") == 1
    return data.replace(b"ajose", b"ajosf")


def test_verify_package_catches_same_length_content_with_a_valid_crc(built):
    path = Path(built.path)
    entries = entries_of(path)
    entries["users.csv"] = _same_length_edit(entries["users.csv"])
    # Rewritten by the package's own ZIP writer: local headers, CRCs, sizes and the central
    # directory all describe the changed bytes, so any ZIP reader takes it as sound.
    with path.open("wb") as out:
        write_zip(out, ((n, [d]) for n, d in entries.items()), AS_OF)
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
    summary = {e.name: e for e in read_package_summary(built.path)}
    want = {e.name: e for e in built.entries}
    assert (summary["users.csv"].rows, summary["users.csv"].bytes) == (
        want["users.csv"].rows,
        want["users.csv"].bytes,
    )
    assert summary["users.csv"].header == want["users.csv"].header

    findings = verify_package(built.path, built.entries)
    assert pkg_rules(findings) == [("PKG-VERIFY", ERROR, "users.csv", None)]
    assert "sha256" in findings[0].message


def test_build_catches_an_entry_written_with_other_bytes_of_the_same_length(
    monkeypatch, tmp_path: Path
):
    """The package step: the bytes stored for users.csv are not the ones its digest saw, yet
    its CRC and sizes are right (a writer fault no ZIP reader notices); the sha256 does."""
    real = package._write_entry

    def write_entry(out, entry, packed, *args):
        if entry == "users.csv":
            data = zlib.decompress(b"".join(packed.compressed), -15)
            changed = _same_length_edit(data)
            deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
            packed.compressed = [deflate.compress(changed) + deflate.flush()]
            packed.crc = zlib.crc32(changed)
        return real(out, entry, packed, *args)

    monkeypatch.setattr(package, "_write_entry", write_entry)
    result = build(tmp_path / ZIP_NAME)
    assert pkg_rules(result.findings) == [("PKG-VERIFY", ERROR, "users.csv", None)]
    assert "sha256" in result.findings[0].message
    assert list(tmp_path.iterdir()) == []  # nothing at dest, no temporary file


def test_verify_package_reports_a_file_that_is_not_a_zip(tmp_path: Path):
    path = tmp_path / ZIP_NAME
    path.write_bytes(b"sourcedId\r\n")
    expected = [EntryInfo(n, 0, 0, "", []) for n in PACKAGE_ENTRIES]
    findings = verify_package(str(path), expected)
    assert pkg_rules(findings) == [("PKG-VERIFY", ERROR, ZIP_NAME, None)]


# ---- PKG-SIZE and what is left at dest ------------------------------------------------------


def test_pkg_size_warning_keeps_the_zip(tmp_path: Path):
    result = build(tmp_path / ZIP_NAME, warn_bytes=100)
    assert pkg_rules(result.findings) == [("PKG-SIZE", WARNING, ZIP_NAME, None)]
    assert (tmp_path / ZIP_NAME).exists()


def test_pkg_size_error_removes_the_zip_and_leaves_nothing_behind(tmp_path: Path):
    result = build(tmp_path / ZIP_NAME, max_bytes=100, warn_bytes=50)
    assert pkg_rules(result.findings) == [("PKG-SIZE", ERROR, ZIP_NAME, None)]
    assert f"{result.size:,} bytes" in result.findings[0].message
    assert list(tmp_path.iterdir()) == []


def test_failed_build_leaves_an_earlier_file_at_dest_untouched(tmp_path: Path):
    dest = tmp_path / ZIP_NAME
    dest.write_bytes(b"earlier package")
    result = build(dest, max_bytes=100)
    assert result.findings[0].severity == ERROR
    assert dest.read_bytes() == b"earlier package"
    assert list(tmp_path.iterdir()) == [dest]


def test_a_line_break_in_a_value_is_pkg_contract_and_leaves_no_partial_file(tmp_path: Path):
    bad = users()
    bad.loc[1, "familyName"] = "Line\nBreak"
    result = build_package(
        manifest_frame(Options(as_of=AS_OF)),
        orgs(),
        bad,
        demographics(),
        Options(as_of=AS_OF),
        str(tmp_path / ZIP_NAME),
    )
    assert [(f.rule, f.file, f.column) for f in result.findings] == [
        ("PKG-CONTRACT", "users.csv", "familyName")
    ]
    assert list(tmp_path.iterdir()) == []


# ---- PKG-CONTRACT: what ships is exactly the contract ------------------------------------------

# (entry, column, row, value, what the message says): one value the package must never hold.
BREACHES = [
    ("users.csv", "givenName", 0, "Jo\x00sé", "control characters"),
    ("users.csv", "familyName", 1, "Smith\tJones", "control characters"),
    ("users.csv", "username", 1, "bzoe\x7f", "control characters"),
    ("orgs.csv", "name", 1, "Lakeview\u0085High", "control characters"),
    ("users.csv", "grades", 0, "09,10", "not exactly one CEDS grade"),
    ("users.csv", "grades", 1, "9", "not exactly one CEDS grade"),
    ("users.csv", "enabledUser", 0, "TRUE", "not one of true, false"),
    ("users.csv", "role", 1, "guardian", "not one of student"),
    ("users.csv", "status", 0, "active", "not blank"),
    ("users.csv", "agentSourcedIds", 0, "g1", "not blank"),
    ("users.csv", "password", 0, "secret", "not blank"),
    ("users.csv", "username", 0, "", "are blank"),
    ("users.csv", "orgSourcedIds", 1, "", "are blank"),
    ("users.csv", "sourcedId", 1, "00012345", "out of order or repeated"),
    ("users.csv", "sourcedId", 0, "00012347", "out of order or repeated"),
    ("users.csv", "metadata.classYear", 0, "30", "not four digits"),
    ("orgs.csv", "type", 2, "department", "not one of school, district"),
    ("orgs.csv", "name", 0, "", "are blank"),
    ("demographics.csv", "sex", 0, "M", "not one of male, female"),
    ("demographics.csv", "white", 1, "yes", "not one of true, false"),
    ("demographics.csv", "birthDate", 0, "2011-02-30", "calendar date"),
    ("demographics.csv", "birthDate", 0, "3/4/2011", "calendar date"),
    ("demographics.csv", "birthDate", 0, "2011-3-4", "calendar date"),
    ("demographics.csv", "birthDate", 0, "2026-12-01", "calendar date"),  # after the as-of
    ("demographics.csv", "dateLastModified", 1, "2026-11-01", "not blank"),
]


@pytest.mark.parametrize(("entry", "column", "row", "value", "what"), BREACHES)
def test_a_value_outside_the_contract_is_pkg_contract_and_nothing_is_written(
    tmp_path: Path, entry, column, row, value, what
):
    frames = {"orgs.csv": orgs(), "users.csv": users(), "demographics.csv": demographics()}
    frames[entry].loc[row, column] = value
    dest = tmp_path / ZIP_NAME
    dest.write_bytes(b"yesterday's package")
    result = build_package(
        manifest_frame(Options(as_of=AS_OF)),
        frames["orgs.csv"],
        frames["users.csv"],
        frames["demographics.csv"],
        Options(as_of=AS_OF),
        str(dest),
    )
    assert {(f.rule, f.severity, f.file, f.line) for f in result.findings} == {
        ("PKG-CONTRACT", ERROR, entry, None)
    }
    (f,) = [f for f in result.findings if f.column == column]
    assert f.value is None and f.sourcedId is None
    assert what in f.message and "1 row(s)" in f.message
    if value:
        assert value not in f.message
    assert dest.read_bytes() == b"yesterday's package"  # untouched, no temporary file left
    assert list(tmp_path.iterdir()) == [dest]


def test_pkg_contract_names_every_broken_column_of_every_entry(tmp_path: Path):
    bad_orgs, bad_users, bad_demographics = orgs(), users(), demographics()
    bad_orgs.loc[0, "type"] = "state"
    bad_users.loc[:, "grades"] = "10,11"
    bad_users.loc[0, "givenName"] = "Jo\x00se"
    bad_demographics.loc[:, "sex"] = "F"
    result = build_package(
        manifest_frame(Options(as_of=AS_OF)),
        bad_orgs,
        bad_users,
        bad_demographics,
        Options(as_of=AS_OF),
        str(tmp_path / ZIP_NAME),
    )
    assert [(f.file, f.column, f.message.split(": ")[1][:9]) for f in result.findings] == [
        ("orgs.csv", "type", "1 row(s) "),
        ("users.csv", "givenName", "1 row(s) "),
        ("users.csv", "grades", "2 row(s) "),
        ("demographics.csv", "sex", "2 row(s) "),
    ]
    assert list(tmp_path.iterdir()) == []


def test_the_contract_allows_what_the_profile_allows(tmp_path: Path):
    """Blank optional values, staff with grade lists and titles, a multi-line org list."""
    options = Options(as_of=AS_OF, include_staff=True)
    staff_users = users(include_staff=True)
    staff_users.loc[0, "grades"] = ""
    staff_users.loc[0, "metadata.classYear"] = ""
    teacher = {c: "" for c in staff_users.columns}
    teacher.update(
        sourcedId="T1", enabledUser="false", orgSourcedIds="0100,0101", role="teacher",
        username="t", givenName="T", familyName="Teach", grades="09,10,11",
        **{"metadata.title": "Counselor"},
    )  # fmt: skip
    staff_users = pd.concat([staff_users, pd.DataFrame([teacher], dtype=TEXT)], ignore_index=True)
    bare = demographics()
    bare.loc[1, ["birthDate", "sex"]] = ""
    result = build_package(
        manifest_frame(options), orgs(), staff_users, bare, options, str(tmp_path / ZIP_NAME)
    )
    assert result.findings == []


def _stored(tmp_path: Path, name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` stored and read back as the package step reads it: codes dictionary-encoded."""
    path = UPath(tmp_path / f"{name}.parquet")
    write_frame(frame, path)
    return read_frame(path, dictionary=coded_columns(f"{name}.csv"))


def test_frames_read_with_their_codes_dictionary_encoded_give_the_same_package(tmp_path: Path):
    stored = [
        _stored(tmp_path, name, make())
        for name, make in (("orgs", orgs), ("users", users), ("demographics", demographics))
    ]
    assert isinstance(stored[2]["sex"].dtype, pd.ArrowDtype)  # dictionary-encoded
    from_text = build(tmp_path / "text" / ZIP_NAME)
    from_stored = build_package(
        manifest_frame(Options(as_of=AS_OF)),
        *stored,
        Options(as_of=AS_OF),
        str(tmp_path / "d" / ZIP_NAME),
    )
    assert from_stored.findings == [] and from_stored.sha256 == from_text.sha256


def test_the_contract_checks_dictionary_encoded_codes_per_row(tmp_path: Path):
    bad_users, bad_demographics = users(), demographics()
    bad_users.loc[1, "grades"] = "09,10"
    bad_demographics.loc[:, "white"] = ["TRUE", "yes"]
    bad_demographics.loc[1, "birthDate"] = "2011-02-29"
    result = build_package(
        manifest_frame(Options(as_of=AS_OF)),
        _stored(tmp_path, "orgs", orgs()),
        _stored(tmp_path, "users", bad_users),
        _stored(tmp_path, "demographics", bad_demographics),
        Options(as_of=AS_OF),
        str(tmp_path / ZIP_NAME),
    )
    assert [(f.file, f.column, f.message.split(": ")[1][:9]) for f in result.findings] == [
        ("users.csv", "grades", "1 row(s) "),
        ("demographics.csv", "birthDate", "1 row(s) "),
        ("demographics.csv", "white", "2 row(s) "),
    ]
    assert not (tmp_path / ZIP_NAME).exists()


def test_a_control_character_in_the_configured_system_name_is_pkg_contract(tmp_path: Path):
    options = Options(as_of=AS_OF, source_system_name="Power\x00School")
    result = build_package(
        manifest_frame(options), orgs(), users(), demographics(), options, str(tmp_path / ZIP_NAME)
    )
    assert [(f.rule, f.file, f.column) for f in result.findings] == [
        ("PKG-CONTRACT", "manifest.csv", "value")
    ]


@pytest.mark.parametrize(
    ("size", "expected"),
    [(800, []), (801, [WARNING]), (1000, [WARNING]), (1001, [ERROR])],
)
def test_check_size_thresholds_are_exclusive(size, expected):
    findings = check_size(size, max_bytes=1000, warn_bytes=800)
    assert [f.severity for f in findings] == expected
    assert all(f.rule == "PKG-SIZE" for f in findings)


def test_check_size_defaults_are_naviance_limits():
    assert check_size(800_000_000) == []
    assert [f.severity for f in check_size(800_000_001)] == [WARNING]
    assert [f.severity for f in check_size(1_000_000_001)] == [ERROR]


def test_frames_given_as_loaders_are_loaded_in_entry_order_and_give_the_same_bytes(tmp_path):
    loaded: list[str] = []

    def loader(name, make):
        def load():
            loaded.append(name)
            return make()

        return load

    by_frames = build(tmp_path / "frames.zip")
    by_loaders = build_package(
        manifest_frame(Options(as_of=AS_OF)),
        loader("orgs", orgs),
        loader("users", users),
        loader("demographics", demographics),
        Options(as_of=AS_OF),
        str(tmp_path / "loaders.zip"),
    )
    assert loaded == ["orgs", "users", "demographics"]
    assert by_loaders.findings == [] and by_loaders.entries == by_frames.entries
    assert (tmp_path / "loaders.zip").read_bytes() == (tmp_path / "frames.zip").read_bytes()


def test_a_loaded_frame_with_the_wrong_header_raises_and_leaves_no_file(tmp_path: Path):
    with pytest.raises(ValueError, match=r"users\.csv"):
        build_package(
            manifest_frame(Options(as_of=AS_OF)),
            orgs,
            lambda: users(include_staff=True),
            demographics,
            Options(as_of=AS_OF),
            str(tmp_path / ZIP_NAME),
        )
    assert list(tmp_path.iterdir()) == []


# ---- entries re-read while the next one is built (local files) --------------------------------


def _corrupt_entry(monkeypatch, name: str) -> None:
    """The writer deflates ``name`` as usual, then one byte of its stored data is changed."""
    real = package._write_entry

    def write_entry(out, entry, packed, *args):
        if entry == name:
            data = bytearray(b"".join(packed.compressed))
            data[len(data) // 2] ^= 0xFF
            packed.compressed = [bytes(data)]
        return real(out, entry, packed, *args)

    monkeypatch.setattr(package, "_write_entry", write_entry)


@pytest.mark.parametrize("entry", ["orgs.csv", "demographics.csv"])
def test_build_reports_an_entry_whose_stored_data_is_damaged(monkeypatch, tmp_path: Path, entry):
    _corrupt_entry(monkeypatch, entry)
    result = build(tmp_path / ZIP_NAME)
    assert pkg_rules(result.findings) == [("PKG-VERIFY", ERROR, ZIP_NAME, None)]
    assert list(tmp_path.iterdir()) == []  # nothing left at dest, no temporary file


def test_build_reports_a_central_directory_that_misplaces_an_entry(monkeypatch, tmp_path: Path):
    real = package._write_entry

    def write_entry(out, entry, packed, dos_date, offset, central):
        end = real(out, entry, packed, dos_date, offset, central)
        if entry == "users.csv":  # the central record points one byte past the local header
            record = bytearray(central[-1])
            record[42:46] = (offset + 1).to_bytes(4, "little")
            central[-1] = bytes(record)
        return end

    monkeypatch.setattr(package, "_write_entry", write_entry)
    result = build(tmp_path / ZIP_NAME)
    assert pkg_rules(result.findings) == [("PKG-VERIFY", ERROR, ZIP_NAME, None)]
    assert list(tmp_path.iterdir()) == []


def test_meanwhile_runs_once_after_every_entry_is_loaded_and_before_the_package_is_placed(tmp_path):
    dest = tmp_path / ZIP_NAME
    events: list[str] = []

    def loader(name, make):
        return lambda: (events.append(name), make())[1]

    def meanwhile():
        events.append("meanwhile")
        assert not dest.exists()  # not yet verified and moved into place

    result = build_package(
        manifest_frame(Options(as_of=AS_OF)),
        loader("orgs", orgs),
        loader("users", users),
        loader("demographics", demographics),
        Options(as_of=AS_OF),
        str(dest),
        meanwhile=meanwhile,
    )
    assert events == ["orgs", "users", "demographics", "meanwhile"]
    assert result.findings == [] and dest.exists()


def test_a_failing_meanwhile_leaves_no_package(tmp_path: Path):
    def meanwhile():
        raise RuntimeError("the guards could not be read")

    with pytest.raises(RuntimeError, match="guards"):
        build_package(
            manifest_frame(Options(as_of=AS_OF)), orgs(), users(), demographics(),
            Options(as_of=AS_OF), str(tmp_path / ZIP_NAME), meanwhile=meanwhile,
        )  # fmt: skip
    assert list(tmp_path.iterdir()) == []
