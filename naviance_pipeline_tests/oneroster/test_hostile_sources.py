"""Hostile and odd sources (issue 15): a size limit on what is read, counted expanded; folders
read through regular files only; a needed file found twice; blank lines, over-long lines and
files with no line break at all. Real files, FIFOs and symbolic links throughout."""

from __future__ import annotations

import os
import random
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from naviance_pipeline.oneroster.csvread import MAX_HEADER_BYTES, read_table
from naviance_pipeline.oneroster.findings import ERROR
from naviance_pipeline.oneroster.options import DEFAULT_MAX_SOURCE_BYTES, Options
from naviance_pipeline.oneroster.source import SourceUnreadable, open_source
from naviance_pipeline.oneroster.spec import MAX_PACKAGE_BYTES, USERS
from naviance_pipeline_tests.oneroster.test_source import OPTIONS, found, one, write_folder

ROOT = Path(__file__).resolve().parents[2]


def user_rows(n: int, seed: int = 7) -> bytes:
    """``n`` users.csv records that deflate about as well as a real export (not a bomb)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        name = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(8))
        rows.append(f"u{i},,,true,s1,student,{name},,{name.title()},Lee,,,{name}@x.org,,,,09,")
    return ("\r\n".join(rows) + "\r\n").encode()


def users_csv(n: int) -> bytes:
    return ",".join(USERS.header).encode() + b"\r\n" + user_rows(n)


def limited(max_source_bytes: int) -> Options:
    return Options(as_of=OPTIONS.as_of, max_source_bytes=max_source_bytes)


def peak_rss_mb(code: str) -> float:
    """Run ``code`` in a fresh interpreter on this worktree; its peak resident memory in MB."""
    script = (
        textwrap.dedent(code)
        + "\nimport resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return int(out.stdout.split()[-1]) / 1024


# -- the limit on what is read, expanded --------------------------------------------------------


def test_the_default_limit_is_derived_from_the_package_limit():
    assert DEFAULT_MAX_SOURCE_BYTES == 5 * MAX_PACKAGE_BYTES
    assert Options(as_of=OPTIONS.as_of).max_source_bytes == DEFAULT_MAX_SOURCE_BYTES


def test_a_zip_is_refused_by_the_expanded_size_of_its_needed_entries(
    tmp_path, valid_package, make_zip
):
    data = make_zip({**valid_package, "users.csv": users_csv(5000)})
    expanded = sum(len(v) for k, v in valid_package.items() if k != "users.csv")
    expanded += len(users_csv(5000))
    limit = 200_000
    # Counting compressed bytes would let this archive through: only the expanded size is over.
    assert len(data) < limit < expanded
    path = tmp_path / "roster.zip"
    path.write_bytes(data)
    source = open_source(str(path), limited(limit))
    f = one(source, "SRC-TOO-LARGE")
    assert (f.severity, f.file) == (ERROR, None)
    assert f"{expanded:,}" in f.message and f"{limit:,}" in f.message
    assert source.files == {}
    # Within the limit the same archive is read.
    assert found(open_source(str(path), limited(expanded)), "SRC-TOO-LARGE") == []


def test_a_zip_entry_is_never_inflated_past_its_stated_size(tmp_path, valid_package, make_zip):
    """A central directory that understates an entry's size: inflating stops right past it."""
    data = bytearray(make_zip({**valid_package, "users.csv": users_csv(5000)}))
    at = data.find(b"PK\x01\x02")
    while at != -1:
        name_length = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46 : at + 46 + name_length] == b"users.csv":
            struct.pack_into("<I", data, at + 24, 1000)  # uncompressed size
        at = data.find(b"PK\x01\x02", at + 4)
    path = tmp_path / "roster.zip"
    path.write_bytes(bytes(data))
    with pytest.raises(SourceUnreadable) as caught:
        open_source(str(path), limited(100_000))
    assert "does not have its declared size" in caught.value.finding.message


def test_a_folder_is_refused_by_its_files_sizes_before_reading(tmp_path, valid_package):
    root = write_folder(tmp_path, {**valid_package, "users.csv": users_csv(2000)})
    (root / "enrollments.csv").write_bytes(bytes(500_000))  # not needed: not counted
    source = open_source(str(root), limited(100_000))
    f = one(source, "SRC-TOO-LARGE")
    assert "users.csv" in f.message
    assert source.files == {}
    assert found(open_source(str(root), limited(1_000_000)), "SRC-TOO-LARGE") == []


def test_a_lazy_open_is_refused_too(tmp_path, valid_package):
    root = write_folder(tmp_path, {**valid_package, "users.csv": users_csv(2000)})
    source = open_source(str(root), limited(100_000), lazy=True)
    assert one(source, "SRC-TOO-LARGE") and source.files == {}


# -- folders: regular files only --------------------------------------------------------------


def without_users(root: Path, valid_package) -> Path:
    return write_folder(root, {k: v for k, v in valid_package.items() if k != "users.csv"})


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("/dev/zero", "leads out of the source folder"),
        ("/etc/passwd", "leads out of the source folder"),
        ("../outside.csv", "leads out of the source folder"),
        ("missing.csv", "a symbolic link to nothing"),
        (".", "a symbolic link to a folder"),
    ],
    ids=["dev-zero", "etc-passwd", "sibling", "dangling", "folder"],
)
def test_a_link_that_leaves_the_folder_is_refused_unread(tmp_path, valid_package, target, reason):
    (tmp_path / "outside.csv").write_bytes(b"secret,data\r\nsecret,data\r\n")
    root = without_users(tmp_path / "src", valid_package)
    os.symlink(target, root / "users.csv")
    source = open_source(str(root), OPTIONS)
    f = one(source, "SRC-UNSAFE-ENTRY")
    assert (f.severity, f.file, f.value) == (ERROR, "users.csv", None)
    assert reason in f.message
    assert source.files == {}
    assert "root" not in str(source.findings) and "secret" not in str(source.findings)


def test_a_link_to_a_regular_file_inside_the_folder_is_followed(tmp_path, valid_package):
    root = without_users(tmp_path, valid_package)
    (root / "exports").mkdir()
    (root / "exports" / "users-2026.csv").write_bytes(valid_package["users.csv"])
    os.symlink("exports/users-2026.csv", root / "users.csv")
    source = open_source(str(root), OPTIONS)
    assert source.files["users.csv"] == valid_package["users.csv"]
    assert found(source, "SRC-UNSAFE-ENTRY") == []


def test_a_fifo_is_refused_without_blocking(tmp_path, valid_package):
    root = without_users(tmp_path, valid_package)
    os.mkfifo(root / "users.csv")
    # In a child process: the old code blocks for ever opening the FIFO.
    out = subprocess.run(
        [sys.executable, "-m", "naviance_pipeline.cli", "validate", str(root)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1, out.stderr
    assert "SRC-UNSAFE-ENTRY" in out.stdout and "FIFO" in out.stdout
    assert "Traceback" not in out.stderr


def test_a_socket_is_refused(tmp_path, valid_package):
    import socket

    root = without_users(tmp_path, valid_package)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(root / "users.csv"))
        f = one(open_source(str(root), OPTIONS), "SRC-UNSAFE-ENTRY")
    assert "a socket" in f.message


def test_a_source_path_that_is_a_fifo_is_unreadable_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "roster.zip")
    with pytest.raises(SourceUnreadable) as caught:
        open_source(str(tmp_path / "roster.zip"), OPTIONS)
    assert "FIFO" in caught.value.finding.message


# -- a needed file twice -----------------------------------------------------------------------


def test_the_same_name_twice_in_a_zip_is_an_error(tmp_path, valid_package, make_zip):
    pairs = [*valid_package.items(), ("users.csv", valid_package["users.csv"])]
    path = tmp_path / "roster.zip"
    with pytest.warns(UserWarning):  # zipfile warns when it writes a name twice
        path.write_bytes(make_zip(pairs))
    f = one(open_source(str(path), OPTIONS), "SRC-DUPLICATE-FILE")
    assert (f.severity, f.file) == (ERROR, "users.csv")
    assert "2 times" in f.message


@pytest.mark.parametrize("kind", ["zip", "folder"])
def test_users_csv_at_the_root_and_in_a_folder_is_an_error(tmp_path, valid_package, make_zip, kind):
    files = {**valid_package, "export/users.csv": valid_package["users.csv"]}
    if kind == "zip":
        path = tmp_path / "roster.zip"
        path.write_bytes(make_zip(files))
    else:
        path = write_folder(tmp_path / "src", files)
    source = open_source(str(path), OPTIONS)
    f = one(source, "SRC-DUPLICATE-FILE")
    assert "(export/users.csv, users.csv)" in f.message
    assert found(source, "SRC-EXTRA-FILE") == []  # the copy is named once, as a duplicate


# -- blank lines, long lines, no line break ------------------------------------------------------


def test_blank_lines_keep_their_numbers(make_csv):
    header = ",".join(USERS.header)
    row = "u{},,,true,s1,student,n{},,A,B,,,,,,,09,"
    for newline in ("\n", "\r\n", "\r"):
        lines = [header, row.format(1, 1), "", "", row.format(2, 2), "bad,row", "", ""]
        data = newline.join(lines).encode()
        table = read_table(data, USERS)
        assert list(table.frame.index) == [2, 5], newline
        assert [(f.rule, f.line) for f in table.findings] == [("CSV-PARSE", 6)], newline


def test_blank_lines_inside_and_outside_quoted_values(make_csv):
    header = ",".join(USERS.header)
    row = 'u{},,,true,s1,student,n{},,"A{}",B,,,,,,,09,'
    data = "\r\n".join(
        [header, row.format(1, 1, ""), "", row.format(2, 2, "\r\n\r\nx"), "", "", "x,y", "", ""]
    )
    table = read_table(data.encode(), USERS)
    assert list(table.frame.index) == [2, 4]
    assert table.frame["givenName"].tolist() == ["A", "A\r\n\r\nx"]
    rules = [(f.rule, f.line) for f in table.findings]
    assert ("CSV-NEWLINE-IN-VALUE", 4) in rules and ("CSV-PARSE", 7) in rules


def test_ten_million_blank_lines_cost_almost_nothing():
    """10 M blank lines took 2 GB and more: each was a row of every column until dropped."""
    peak = peak_rss_mb(
        """
        from naviance_pipeline.oneroster.csvread import read_table
        from naviance_pipeline.oneroster.spec import USERS
        row = b"u1,,,true,s1,student,n1,,A,B,,,,,,,09,"
        data = b",".join(h.encode() for h in USERS.header) + b"\\n" + b"\\n" * 10_000_000 + row
        table = read_table(data, USERS)
        assert list(table.frame.index) == [10_000_002], table.frame.index
        """
    )
    assert peak < 700, f"{peak:.0f} MB"  # imports ~200 MB; 10 MB of input; old code 2+ GB


def test_a_file_with_no_line_break_is_a_finding():
    data = b"sourcedId" + b"x" * (MAX_HEADER_BYTES + 10)
    table = read_table(data, USERS)
    f = one_rule(table.findings, "CSV-PARSE")
    assert (f.line, f.file) == (1, "users.csv")
    assert len(table.frame) == 0


def test_a_header_column_name_past_the_csv_field_limit_is_a_finding():
    data = b'sourcedId,"' + b"x" * 200_000 + b'"\r\nu1,y\r\n'
    f = one_rule(read_table(data, USERS).findings, "CSV-PARSE")
    assert f.line == 1


def test_a_very_long_bad_row_is_a_finding_and_the_rest_is_read():
    """A bad row's text used to go to the csv module whole, past its field limit: the
    invalid-row handler raised and the whole file was lost."""
    header = ",".join(USERS.header).encode()
    row = b"u{},,,true,s1,student,n,,A,B,,,,,,,09,"
    data = b"\r\n".join(
        [header, row.replace(b"{}", b"1"), b"x" * 300_000, row.replace(b"{}", b"2")]
    )
    table = read_table(data, USERS)
    assert list(table.frame.index) == [2, 4]
    f = one_rule(table.findings, "CSV-PARSE")
    assert f.line == 3 and f.sourcedId is None


def test_a_long_line_through_validate_is_exit_1_without_a_traceback(tmp_path, valid_package):
    users = valid_package["users.csv"] + b"y" * 3_000_000 + b"\r\n"
    nobreak = b"z" * 3_000_000
    for name, data in (("long", users), ("nobreak", nobreak)):
        root = write_folder(tmp_path / name, {**valid_package, "users.csv": data})
        out = subprocess.run(
            [sys.executable, "-m", "naviance_pipeline.cli", "validate", str(root)],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 1, (name, out.stderr[-2000:])
        assert "CSV-PARSE" in out.stdout
        assert "Traceback" not in out.stderr and "Exception ignored" not in out.stderr


def one_rule(findings, rule):
    matches = [f for f in findings if f.rule == rule]
    assert len(matches) == 1, findings
    return matches[0]
