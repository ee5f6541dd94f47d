"""Bad command-line arguments: exit 2 and one line on stderr saying what is wrong, before any
work (no snapshot, no Dagster run, nothing under the data root or the Dagster home)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from naviance_pipeline.cli import main

BIN = Path(sys.executable).parent


@pytest.fixture
def homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """NAVIANCE_HOME and DAGSTER_HOME pointing at folders that do not exist yet."""
    for name in list(os.environ):
        if name.startswith(("NAVIANCE_", "DAGSTER_")):
            monkeypatch.delenv(name)
    home, dagster_home = tmp_path / "home", tmp_path / "dagster_home"
    monkeypatch.setenv("NAVIANCE_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.setenv("NAVIANCE_PARTITIONS_START", "2026-01-01")
    return home, dagster_home


def _refused(
    argv: list[str], capsys: pytest.CaptureFixture, homes: tuple[Path, Path], expected: str
) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse exits; a command returns its code
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2, (argv, out, err)
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    assert expected in err, err
    assert not any(path.exists() for path in homes), "work was done before the refusal"


OUTSIDE = (
    (["run", "--date", "2026-02-30"], "argument --date: 2026-02-30 is not a date in the calendar"),
    (["run", "--date", "24/11/2026"], "argument --date: expected a date YYYY-MM-DD"),
    (["run", "--date", "20261124"], "argument --date: expected a date YYYY-MM-DD"),
    (["run", "--date", "2999-01-01"], "--date 2999-01-01 is in the future"),
    (["run", "--date", "2025-12-31"], "--date 2025-12-31 is before the first partition"),
    (["redeliver", "--date", "2999-01-01"], "--date 2999-01-01 is in the future"),
    (["backfill", "--from", "2025-12-31"], "--from 2025-12-31 is before the first partition"),
    (["backfill", "--from", "2026-11-24", "--to", "2026-11-01"], "--to 2026-11-01 is before"),
    (["backfill", "--from", "2026-11-24", "--district", "east"], "needs a districts file"),
    (["redeliver", "--date", "2026-13-01"], "argument --date: 2026-13-01 is not a date"),
    (["redeliver", "--date", "2026-11-24", "--override", "GRD-NOPE"], "unknown guard(s)"),
    (["report", "--date", "yesterday"], "argument --date: expected a date YYYY-MM-DD"),
    (["diff", "--date", "2026-11-24", "--against", "2026-02-29"], "argument --against"),
    (["purge", "--keep-days", "-1"], "argument --keep-days: must be 0 or more, got -1"),
    (["purge", "--keep-days", "ten"], "argument --keep-days: expected a whole number"),
    (["purge", "--today", "2026-04-31"], "argument --today: 2026-04-31 is not a date"),
    (["sftp-host-key", "host:99999"], "the port must be a number 1-65535, got '99999'"),
    (["sftp-host-key", "host:0"], "the port must be a number 1-65535, got '0'"),
    (["sftp-host-key", "host:ssh"], "the port must be a number 1-65535, got 'ssh'"),
    (["sftp-host-key", "[::1]:"], "the port must be a number 1-65535, got ''"),
    (["sftp-host-key", ":22"], "argument HOST[:PORT]: expected HOST[:PORT], got ':22'"),
    (["sample-district", "--out", "x.zip", "--students", "0"], "--students: must be 1 or more"),
    (["sample-district", "--out", "x.zip", "--schools", "-2"], "--schools: must be 1 or more"),
    (["sample-district", "--out", "x.zip", "--format", "csv"], "argument --format"),
    (["mapping", "check", "/no/such/mapping.yaml"], "/no/such/mapping.yaml does not exist"),
    (["mapping", "show", "infinite-campus"], "unknown preset 'infinite-campus'"),
    (["run", "--bogus"], "unrecognized arguments: --bogus"),
    (["redeliver"], "the following arguments are required: --date"),
)


@pytest.mark.parametrize(("argv", "expected"), OUTSIDE, ids=[" ".join(argv) for argv, _ in OUTSIDE])
def test_a_bad_argument_is_one_line_and_exit_2_before_any_work(argv, expected, capsys, homes):
    _refused(argv, capsys, homes, expected)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--as-of", "2026-02-30"], "argument --as-of: 2026-02-30 is not a date"),
        (["--rollover-day", "13-45"], "argument --rollover-day: expected a day of the year MM-DD"),
        (["--kind", "xml"], "argument --kind: invalid choice: 'xml'"),
        (["--format", "yaml"], "argument --format: invalid choice: 'yaml'"),
    ],
)
def test_validate_and_package_check_their_options(extra, expected, capsys, homes, tiny_district):
    for command in (["validate"], ["package", "--out", str(homes[0].parent / "out")]):
        _refused([*command, str(tiny_district), *extra], capsys, homes, expected)
    assert not (homes[0].parent / "out").exists()


def test_package_refuses_an_out_folder_that_is_a_file(tmp_path, capsys, homes, tiny_district):
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    for out in (taken, taken / "below"):
        argv = ["package", str(tiny_district), "--out", str(out), "--as-of", "2026-11-24"]
        _refused(argv, capsys, homes, "is not a folder")
    assert taken.read_text() == "not a folder"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "--date", "2026-02-30"], "2026-02-30 is not a date in the calendar"),
        (["run", "--date", "2999-01-01"], "--date 2999-01-01 is in the future"),
        (["sftp-host-key", "127.0.0.1:99999"], "the port must be a number 1-65535"),
    ],
)
def test_the_installed_command_refuses_in_one_line(argv, expected, homes):
    """Through the real entry point, as a person types it."""
    proc = subprocess.run(
        [str(BIN / "naviance-pipeline"), *argv], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not any(path.exists() for path in homes)


def test_a_date_outside_the_districts_partitions_is_refused_too(
    tmp_path, capsys, homes, monkeypatch
):
    districts = tmp_path / "districts.yaml"
    districts.write_text(
        f"data_root: {tmp_path / 'data'}\n"
        "partitions_start: 2026-01-01\n"
        "districts:\n"
        "  - id: east\n"
        f"    source_url: {tmp_path / 'export.zip'}\n"
        "    timezone: America/Chicago\n"
        '    schedule_time: "02:00"\n'
        f"    delivery_target: {tmp_path / 'outbox'}\n"
    )
    monkeypatch.setenv("NAVIANCE_DISTRICTS_FILE", str(districts))
    for day, where in (
        ("2025-12-31", "before the first partition"),
        ("2999-01-01", "in the future"),
    ):
        argv = ["run", "--district", "east", "--date", day]
        _refused(argv, capsys, homes, f"--date {day} is {where}")
    assert not (tmp_path / "data").exists()


def test_output_piped_into_a_reader_that_stops_early_ends_quietly():
    """``naviance-pipeline rules | head -1``: no traceback when the reader has closed the pipe
    (here it is closed before the command writes anything)."""
    read, write = os.pipe()
    os.close(read)
    done = subprocess.run(
        [str(BIN / "naviance-pipeline"), "rules"],
        stdout=write,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )
    os.close(write)
    assert done.returncode == 141
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
