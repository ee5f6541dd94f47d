"""Hostile folder sources beyond the OneRoster reader (issue 15): the date's snapshot copy
(``sis_extract`` copies the source first) and the SIS CSV export refuse what is not a regular
file inside the folder, never blocking on a FIFO or copying ``/dev/zero`` for ever; the SIS
export is refused over the size limit and with a name twice in its archive."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
import zipfile
from datetime import date
from pathlib import Path

import pytest
from upath import UPath

from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.source import SourceUnreadable
from naviance_pipeline.operations.settings import Settings, max_source_bytes_from_env
from naviance_pipeline.operations.storage import snapshot_source
from naviance_pipeline.sources.sis.export import read_export
from naviance_pipeline_tests.sis.factories import export_files, load
from naviance_pipeline_tests.sis.test_export import write_folder, write_zip

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = Options(as_of=date(2026, 11, 30))


def _snapshot_in_a_child(source: Path, dest: Path) -> subprocess.CompletedProcess:
    """snapshot_source in a child process: the old code blocks on a FIFO and copies
    ``/dev/zero`` until the disk is full, so the test must be able to give up on it."""
    code = (
        "import sys; from upath import UPath; from naviance_pipeline.operations.storage import "
        "snapshot_source; from naviance_pipeline.oneroster.source import SourceUnreadable\n"
        "try:\n    snapshot_source(sys.argv[1], UPath(sys.argv[2]))\n"
        "except SourceUnreadable as e:\n"
        "    print(e.finding.rule, e.finding.file, '|', e); sys.exit(3)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(source), str(dest)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("special", ["fifo", "dev-zero", "etc-passwd"])
def test_the_snapshot_copy_refuses_special_files_before_copying(tmp_path, special):
    source = tmp_path / "export"
    source.mkdir()
    (source / "orgs.csv").write_bytes(b"sourcedId\r\ns1\r\n")
    users = source / "users.csv"
    if special == "fifo":
        os.mkfifo(users)
    else:
        os.symlink("/dev/zero" if special == "dev-zero" else "/etc/passwd", users)
    out = _snapshot_in_a_child(source, tmp_path / "raw")
    assert out.returncode == 3, out.stderr[-2000:]
    assert out.stdout.startswith("SRC-UNSAFE-ENTRY users.csv |")
    assert "root:" not in out.stdout
    assert not (tmp_path / "raw").exists()  # nothing copied


def test_the_snapshot_copy_follows_a_link_inside_the_folder(tmp_path):
    source = tmp_path / "export"
    (source / "2026").mkdir(parents=True)
    (source / "2026" / "users.csv").write_bytes(b"sourcedId\r\nu1\r\n")
    os.symlink("2026/users.csv", source / "users.csv")
    opened, files = snapshot_source(str(source), UPath(tmp_path / "raw"))
    assert {f.path for f in files} == {"source/users.csv", "source/2026/users.csv"}
    assert (opened / "users.csv").read_bytes() == b"sourcedId\r\nu1\r\n"


def test_a_sis_export_folder_with_a_link_out_is_refused(tmp_path):
    folder = Path(write_folder(tmp_path / "export", export_files()))
    (folder / "students.csv").unlink()
    os.symlink("/etc/passwd", folder / "students.csv")
    with pytest.raises(SourceUnreadable) as caught:
        read_export(str(folder), load(), OPTIONS)
    f = caught.value.finding
    assert (f.rule, f.file) == ("SRC-UNSAFE-ENTRY", "students.csv")
    assert "root:" not in str(caught.value)


def test_a_sis_export_folder_with_a_fifo_is_refused(tmp_path):
    folder = Path(write_folder(tmp_path / "export", export_files()))
    (folder / "students.csv").unlink()
    os.mkfifo(folder / "students.csv")
    with pytest.raises(SourceUnreadable) as caught:
        read_export(str(folder), load(), OPTIONS)
    assert caught.value.finding.rule == "SRC-UNSAFE-ENTRY"


@pytest.mark.parametrize("kind", ["folder", "zip"])
def test_a_sis_export_over_the_limit_is_refused_before_reading(tmp_path, kind):
    files = export_files()
    needed = sum(len(data) for data in files.values())
    url = (
        write_folder(tmp_path / "export", files)
        if kind == "folder"
        else write_zip(tmp_path / "export.zip", files)
    )
    options = Options(as_of=OPTIONS.as_of, max_source_bytes=needed - 1)
    with pytest.raises(SourceUnreadable) as caught:
        read_export(url, load(), options)
    assert caught.value.finding.rule == "SRC-TOO-LARGE"
    options = Options(as_of=OPTIONS.as_of, max_source_bytes=needed)
    assert set(read_export(url, load(), options)) == {"students", "teachers", "schools"}


def test_a_sis_export_zip_holding_a_name_twice_is_refused(tmp_path):
    files = export_files()
    path = tmp_path / "export.zip"
    write_zip(path, files)
    with warnings.catch_warnings(), zipfile.ZipFile(path, "a") as zf:
        warnings.simplefilter("ignore")  # zipfile warns when it writes a name twice
        zf.writestr("students.csv", files["students.csv"])
    with pytest.raises(SourceUnreadable) as caught:
        read_export(str(path), load(), OPTIONS)
    f = caught.value.finding
    assert (f.rule, f.file) == ("SRC-DUPLICATE-FILE", "students.csv")


def test_the_limit_is_set_by_the_environment(monkeypatch):
    monkeypatch.setenv("NAVIANCE_MAX_SOURCE_BYTES", "2_000_000_000")
    assert Settings.from_env().max_source_bytes == 2_000_000_000
    monkeypatch.setenv("NAVIANCE_MAX_SOURCE_BYTES", "lots")
    with pytest.raises(ValueError, match="NAVIANCE_MAX_SOURCE_BYTES"):
        max_source_bytes_from_env()


def test_validate_reads_the_limit_from_the_environment(tmp_path):
    from naviance_pipeline.oneroster.sample import write_sample_district

    write_sample_district(str(tmp_path / "district.zip"), students=20, schools=2, seed=1)
    for limit, code, shown in (("1000", 1, "SRC-TOO-LARGE"), ("x", 2, "NAVIANCE_MAX_SOURCE")):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "naviance_pipeline.cli",
                "validate",
                str(tmp_path / "district.zip"),
            ],
            env={**os.environ, "PYTHONPATH": str(ROOT), "NAVIANCE_MAX_SOURCE_BYTES": limit},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == code, out.stderr[-2000:]
        assert shown in out.stdout + out.stderr
        assert "Traceback" not in out.stderr
