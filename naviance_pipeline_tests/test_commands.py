"""The commands people type: the Dagster CLI on the code location, and naviance-pipeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from naviance_pipeline.oneroster.spec import ZIP_NAME
from naviance_pipeline_tests.pipeline_helpers import first_student_editor, rewrite_zip

BIN = Path(sys.executable).parent


def _env(home: Path, source: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NAVIANCE_", "DAGSTER_"))}
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env.update(
        NAVIANCE_HOME=str(home),
        NAVIANCE_SOURCE_URL=str(source),
        NAVIANCE_PARTITIONS_START="2026-01-01",
        DAGSTER_HOME=str(dagster_home),
    )
    return env


def _cli(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "naviance-pipeline"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.slow
def test_dagster_asset_materialize_smoke(tmp_path, tiny_district):
    proc = subprocess.run(
        [
            str(BIN / "dagster"), "asset", "materialize", "-m", "naviance_pipeline.definitions",
            "--select", "*", "--partition", "2026-11-24",
        ],
        capture_output=True, text=True, env=_env(tmp_path, tiny_district), cwd=tmp_path,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "outbox" / ZIP_NAME).exists()


def test_run_command_prints_where_the_package_landed(tmp_path, tiny_district):
    proc = _cli("run", "--date", "2026-11-24", env=_env(tmp_path, tiny_district))
    assert proc.returncode == 0, proc.stderr[-3000:]
    landed = tmp_path / "outbox" / ZIP_NAME
    assert proc.stdout.strip().splitlines()[-1] == f"NavianceOneRoster.zip landed at {landed}"
    assert landed.exists()


def test_validate_clean_source_exits_0_with_json(tiny_district):
    proc = _cli("validate", str(tiny_district), "--as-of", "2026-11-24", "--format", "json")
    assert proc.returncode == 0, proc.stdout[-2000:]
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    assert report["summary"]["errors"] == 0
    assert set(report["counts"]) == {"orgs", "users", "demographics"}
    assert report["counts"]["users"] == report["counts"]["demographics"] > 0


def test_validate_bad_source_exits_1_and_names_rule_and_line(tmp_path, tiny_district):
    bad = tmp_path / "bad.zip"
    edit, line = first_student_editor({"enabledUser": "yes"})
    rewrite_zip(tiny_district, bad, "users.csv", edit)
    proc = _cli("validate", str(bad), "--as-of", "2026-11-24", "--format", "json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    hits = [f for f in report["findings"] if f["rule"] == "USR-ENABLED"]
    assert [(f["file"], f["line"], f["column"], f["value"]) for f in hits] == [
        ("users.csv", line[0], "enabledUser", "yes")
    ]
    text = _cli("validate", str(bad), "--as-of", "2026-11-24")
    assert text.returncode == 1
    assert "USR-ENABLED (error) × 1" in text.stdout


def test_validate_unreadable_source_exits_2(tmp_path):
    proc = _cli("validate", str(tmp_path / "missing.zip"), "--format", "json")
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["findings"][0]["rule"] == "SRC-UNREADABLE"


def test_bad_arguments_exit_2(tiny_district):
    assert _cli("validate", str(tiny_district), "--as-of", "30/11/2026").returncode == 2
    assert _cli("validate").returncode == 2


def test_package_writes_zip_only_when_clean(tmp_path, tiny_district):
    out = tmp_path / "out"
    proc = _cli("package", str(tiny_district), "--out", str(out), "--as-of", "2026-11-24")
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert (out / ZIP_NAME).exists()
    assert "sha256" in proc.stdout

    bad = tmp_path / "bad.zip"
    rewrite_zip(tiny_district, bad, "users.csv", first_student_editor({"role": "pupil"})[0])
    out2 = tmp_path / "out2"
    proc = _cli("package", str(bad), "--out", str(out2), "--as-of", "2026-11-24")
    assert proc.returncode == 1
    assert not (out2 / ZIP_NAME).exists()


def test_sample_district_command_is_deterministic(tmp_path):
    a, b = tmp_path / "a.zip", tmp_path / "b.zip"
    for path in (a, b):
        proc = _cli("sample-district", "--out", str(path), "--students", "40", "--seed", "3")
        assert proc.returncode == 0, proc.stderr
    assert a.read_bytes() == b.read_bytes()


def test_redeliver_refuses_an_older_date_unless_overridden(tmp_path, tiny_district):
    env = _env(tmp_path, tiny_district)
    for day in ("2026-11-23", "2026-11-24"):
        assert _cli("run", "--date", day, env=env).returncode == 0
    outbox = tmp_path / "outbox" / ZIP_NAME
    newest = outbox.read_bytes()
    archived = tmp_path / "data" / "districts" / "sample-district" / "packages"
    older = (archived / "2026-11-23" / ZIP_NAME).read_bytes()

    refused = _cli("redeliver", "--date", "2026-11-23", env=env)
    assert refused.returncode == 1
    assert "GRD-STALE-PARTITION" in refused.stderr
    assert "older than 2026-11-24" in refused.stderr
    assert outbox.read_bytes() == newest

    rebuilt = _cli("run", "--date", "2026-11-23", env=env)  # a past date is a rebuild
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "built and checked but not sent: GRD-STALE-PARTITION" in rebuilt.stdout
    assert "older than 2026-11-24" in rebuilt.stdout
    assert "redeliver --date 2026-11-23 --override GRD-STALE-PARTITION" in rebuilt.stdout
    assert outbox.read_bytes() == newest

    forced = _cli("redeliver", "--date", "2026-11-23", "--override", "GRD-STALE-PARTITION", env=env)
    assert forced.returncode == 0, forced.stderr
    assert outbox.read_bytes() == older
    receipt = json.loads(Path(forced.stdout.strip().splitlines()[-1].split(": ", 1)[1]).read_text())
    assert receipt["guard_overrides"] == ["GRD-STALE-PARTITION"]
    assert receipt["redelivery"] is True


@pytest.mark.sftp
def test_sftp_host_key_prints_the_pinnable_line_and_its_fingerprint(sftp_server):
    proc = _cli("sftp-host-key", f"{sftp_server.host}:{sftp_server.port}")
    assert proc.returncode == 0, proc.stderr
    fp, line = proc.stdout.strip().splitlines()[:2]
    assert line == sftp_server.known_hosts_text.strip()
    keygen = subprocess.run(
        ["ssh-keygen", "-lf", sftp_server.host_key_pub_path], capture_output=True, text=True
    )
    assert keygen.stdout.split()[1] == fp


def test_sftp_host_key_of_nothing_listening_fails_cleanly():
    proc = _cli("sftp-host-key", "127.0.0.1:1")
    assert proc.returncode == 1
    assert "could not fetch the host key" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_run_command_on_a_bad_source_fails_naming_the_check(tmp_path, tiny_district):
    bad = rewrite_zip(
        tiny_district, tmp_path / "bad.zip", "users.csv", first_student_editor({"role": "pupil"})[0]
    )
    env = _env(tmp_path, bad)
    proc = _cli("run", "--date", "2026-11-24", env=env)
    assert proc.returncode == 1
    assert "check users:user_rules failed" in proc.stdout
    assert "USR-ROLE" in proc.stdout
    assert "nothing was delivered" in proc.stderr
    # What blocked comes first in the step's failure, never a stack trace.
    assert "users: USR-ROLE × 1 block the package for 2026-11-24" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "outbox" / ZIP_NAME).exists()
    report = _cli("report", "--date", "2026-11-24", env=env)
    assert report.returncode == 0, report.stderr
    assert "Verdict: BLOCKED" in report.stdout and "USR-ROLE" in report.stdout


def test_report_diff_and_purge_read_what_the_runs_stored(tmp_path, tiny_district):
    env = _env(tmp_path, tiny_district)
    for day in ("2026-11-23", "2026-11-24"):
        assert _cli("run", "--date", day, env=env).returncode == 0

    report = _cli("report", "--date", "2026-11-24", env=env)
    assert report.returncode == 0, report.stderr
    assert "Verdict: DELIVERED" in report.stdout
    reports = tmp_path / "data" / "districts" / "sample-district" / "reports" / "2026-11-24"
    assert {p.name for p in reports.iterdir()} == {"report.json", "report.html"}

    diff = _cli("diff", "--date", "2026-11-24", "--against", "2026-11-23", env=env)
    assert diff.returncode == 0, diff.stderr
    assert "(against 2026-11-23): 0 added, 0 removed" in diff.stdout
    # By default the baseline is the guards': the last delivered package (2026-11-24), not the
    # previous packaged date (none before 2026-11-23).
    default = _cli("diff", "--date", "2026-11-23", env=env)
    assert default.returncode == 0, default.stderr
    assert "(against 2026-11-24): 0 added, 0 removed" in default.stdout

    raw = tmp_path / "data" / "districts" / "sample-district" / "raw"
    purge = _cli("purge", "--keep-days", "1", "--today", "2026-11-26", "--dry-run", env=env)
    assert purge.returncode == 0, purge.stderr
    assert purge.stdout.startswith("would remove ")
    assert "kept delivered packages ['2026-11-24']" in purge.stdout
    assert sorted(p.name for p in raw.iterdir()) == ["2026-11-23", "2026-11-24"]  # dry run


def test_run_and_redeliver_take_a_district_from_the_districts_file(tmp_path, tiny_district):
    import yaml

    def entry(name: str) -> dict:
        return {
            "id": name,
            "source_url": str(tiny_district),
            "timezone": "Pacific/Auckland",
            "schedule_time": "02:00",
            "delivery_target": str(tmp_path / "outbox" / name),
        }

    districts = tmp_path / "districts.yaml"
    data_root = tmp_path / "shared-data"
    districts.write_text(
        yaml.safe_dump({"data_root": str(data_root), "districts": [entry("east"), entry("west")]})
    )
    env = {**_env(tmp_path, tiny_district), "NAVIANCE_DISTRICTS_FILE": str(districts)}

    missing = _cli("run", "--date", "2026-11-24", env=env)
    assert missing.returncode == 2
    assert "--district is needed with a districts file: one of ['east', 'west']" in missing.stderr

    ran = _cli("run", "--date", "2026-11-24", "--district", "east", env=env)
    assert ran.returncode == 0, ran.stderr[-3000:]
    landed = tmp_path / "outbox" / "east" / ZIP_NAME
    assert ran.stdout.strip().splitlines()[-1] == f"NavianceOneRoster.zip landed at {landed}"
    assert not (tmp_path / "outbox" / "west").exists()  # only the district asked for
    east = data_root / "districts" / "east"
    assert (east / "packages" / "2026-11-24" / ZIP_NAME).read_bytes() == landed.read_bytes()

    again = _cli("redeliver", "--date", "2026-11-24", "--district", "east", env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("re-delivered 2026-11-24 (district east)")
    receipt = Path(again.stdout.strip().splitlines()[-1].split(": ", 1)[1])
    assert receipt.is_relative_to(east / "receipts")
    assert json.loads(receipt.read_text())["redelivery"] is True

    unknown = _cli("redeliver", "--date", "2026-11-24", "--district", "north", env=env)
    assert unknown.returncode == 2 and "unknown district 'north'" in unknown.stderr


def test_mapping_show_prints_a_preset_to_start_from_and_check_validates_an_edit(tmp_path):
    shown = _cli("mapping", "show", "powerschool")
    assert shown.returncode == 0, shown.stderr
    ours = tmp_path / "ours.yaml"
    ours.write_text(shown.stdout)
    checked = _cli("mapping", "check", str(ours))
    assert checked.returncode == 0, checked.stderr
    assert "OK" in checked.stdout and "students (file students.csv, query)" in checked.stdout

    ours.write_text(shown.stdout.replace("map: grade}", "map: grades}"))
    broken = _cli("mapping", "check", str(ours))
    assert broken.returncode == 1
    assert "users[0].columns.grades.map: no value map named 'grades'" in broken.stderr

    unknown = _cli("mapping", "show", "skyward")
    assert unknown.returncode == 2 and "one of generic, powerschool" in unknown.stderr


def test_validate_reads_a_mapped_sis_export_and_names_a_column_the_mapping_misses(tmp_path):
    export = tmp_path / "generic"
    wrote = _cli(
        "sample-district", "--out", str(export), "--shape", "generic", "--format", "folder",
        "--students", "40",
    )  # fmt: skip
    assert wrote.returncode == 0, wrote.stderr
    args = ["--kind", "sis-csv", "--mapping", "generic", "--as-of", "2026-11-24"]
    clean = _cli("validate", str(export), *args, "--format", "json")
    assert clean.returncode == 0, clean.stdout[-2000:]
    assert json.loads(clean.stdout)["counts"]["users"] == 40

    students = export / "students.csv"
    students.write_text(students.read_text().replace("grade", "grade_level", 1))
    broken = _cli("validate", str(export), *args)
    assert broken.returncode == 2
    assert "users[0].columns.grades.column: column 'grade' is not in students.csv" in broken.stdout


def test_sample_district_writes_sqlite_only_in_the_powerschool_shape(tmp_path):
    refused = _cli("sample-district", "--out", str(tmp_path / "x.db"), "--format", "sqlite")
    assert refused.returncode == 2
    assert "--format sqlite writes the powerschool shape" in refused.stderr
    assert not (tmp_path / "x.db").exists()


def test_run_refuses_a_district_without_a_districts_file(tmp_path, tiny_district):
    proc = _cli("run", "--district", "east", env=_env(tmp_path, tiny_district))
    assert proc.returncode == 2
    assert "--district 'east' needs a districts file (NAVIANCE_DISTRICTS_FILE)" in proc.stderr


def test_run_no_deliver_builds_checks_and_reports_but_sends_nothing(tmp_path, tiny_district):
    import dagster as dg

    env = _env(tmp_path, tiny_district)
    proc = _cli("run", "--date", "2026-11-24", "--no-deliver", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    base = tmp_path / "data" / "districts" / "sample-district"
    package = base / "packages" / "2026-11-24" / ZIP_NAME
    report = base / "reports" / "2026-11-24" / "report.html"
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("materializing every asset but the delivery (--no-deliver)")
    assert lines[-4].startswith("NOTHING WAS SENT (--no-deliver)")
    assert lines[-3:] == [
        f"package: {package}",
        f"report: {report}",
        "to send it: naviance-pipeline redeliver --date 2026-11-24",
    ]
    assert package.exists() and report.exists()  # built, verified, reported
    assert not (tmp_path / "outbox").exists()  # sent nowhere
    assert not (base / "receipts").exists()
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        (run,) = instance.get_runs()
        assert run.tags["naviance/no-deliver"] == "true"
        assert run.asset_selection and dg.AssetKey("naviance_delivery") not in run.asset_selection

    sent = _cli("redeliver", "--date", "2026-11-24", env=env)  # what it says to do
    assert sent.returncode == 0, sent.stderr
    assert (tmp_path / "outbox" / ZIP_NAME).read_bytes() == package.read_bytes()


def test_run_no_deliver_on_a_bad_source_fails_and_says_nothing_was_delivered(
    tmp_path, tiny_district
):
    bad = rewrite_zip(
        tiny_district, tmp_path / "bad.zip", "users.csv", first_student_editor({"role": "pupil"})[0]
    )
    proc = _cli("run", "--date", "2026-11-24", "--no-deliver", env=_env(tmp_path, bad))
    assert proc.returncode == 1
    assert "check users:user_rules failed" in proc.stdout
    assert "nothing was delivered" in proc.stderr and "Traceback" not in proc.stderr
