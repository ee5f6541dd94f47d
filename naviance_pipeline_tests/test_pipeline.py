"""The whole graph materialized on a real temporary Dagster instance."""

from __future__ import annotations

import json
import stat
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.source import open_source
from naviance_pipeline.oneroster.spec import PACKAGE_ENTRIES, ZIP_NAME
from naviance_pipeline.oneroster.stages import build_all
from naviance_pipeline.operations.storage import DataLayout
from naviance_pipeline.reporting.report import report_paths
from naviance_pipeline_tests.conftest import make_settings
from naviance_pipeline_tests.pipeline_helpers import (
    ALL_ASSETS,
    failed_checks,
    first_student_editor,
    folder_state,
    materialized,
    rewrite_zip,
    run_job,
    zip_entries,
)

DAY = "2026-11-24"


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def test_full_run_builds_checks_and_delivers(settings, instance):
    result = run_job(settings, DAY, instance)
    assert result.success
    assert materialized(result) == ALL_ASSETS
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 18  # 1 + 5 + 5 + 5 + 2 checks
    assert failed_checks(result) == {}

    delivered = Path(settings.delivery_target, ZIP_NAME)
    archived = Path(str(DataLayout(settings.data_root, settings.district).package_path(DAY)))
    assert delivered.read_bytes() == archived.read_bytes()
    assert list(zip_entries(delivered)) == list(PACKAGE_ENTRIES)

    # The delivered ZIP is itself a valid OneRoster source with no error findings.
    options = Options(as_of=date(2026, 11, 24))
    source = open_source(str(delivered), options)
    stages = build_all(source, options)
    errors = [f for s in stages for f in [*source.findings, *s.findings] if f.severity == "error"]
    assert errors == []

    users_meta = result.asset_materializations_for_node("users")[0].metadata
    assert users_meta["dagster/row_count"].value == len(stages[1].frame)
    assert "dagster/column_schema" in users_meta
    package_meta = result.asset_materializations_for_node("naviance_package")[0].metadata
    assert package_meta["size"].value == delivered.stat().st_size
    assert len(package_meta["sha256"].value) == 64
    delivery_meta = result.asset_materializations_for_node("naviance_delivery")[0].metadata
    assert delivery_meta["remote_path"].value == str(delivered)
    assert delivery_meta["attempts"].value == 1
    # The validation report is linked from the delivery and says the date was delivered.
    report = json.loads(Path(delivery_meta["report_json"].value).read_text())
    assert report["verdict"]["status"] == "delivered"
    assert Path(delivery_meta["report"].value).read_text().lstrip().startswith("<!DOCTYPE html>")


def test_files_under_the_data_root_are_owner_only(settings, instance):
    assert run_job(settings, DAY, instance).success
    root = Path(settings.data_root)
    district = root / "districts" / settings.district
    # Nobody else can enter the district's folder, and every file in it is owner-only.
    assert stat.S_IMODE(district.stat().st_mode) == 0o700
    files = [p for p in district.rglob("*") if p.is_file()]
    assert len(files) > 10
    for path in files:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"


def test_bad_role_fails_users_check_and_delivers_nothing(tmp_path, tiny_district, instance):
    bad = tmp_path / "bad.zip"
    make_pupil, edited_line = first_student_editor({"role": "pupil"})
    rewrite_zip(tiny_district, bad, "users.csv", make_pupil)
    settings = make_settings(tmp_path, bad)
    outbox = Path(settings.delivery_target)
    outbox.mkdir(parents=True)
    (outbox / ZIP_NAME).write_bytes(b"yesterday's package")
    before = folder_state(outbox)

    result = run_job(settings, DAY, instance)

    assert not result.success
    failed = failed_checks(result)
    assert set(failed) == {"users:user_rules"}
    assert "USR-ROLE" in failed["users:user_rules"]
    # users found the error: its step fails for the date (no materialization), led by the
    # rule code, and nothing built from it runs.
    assert materialized(result) == {"sis_extract"}
    [failure] = result.get_step_failure_events()
    assert failure.step_key == "users"
    message = failure.step_failure_data.user_failure_data.description
    assert message.startswith(f"USR-ROLE × 1 block the package for {DAY}: users found 1 error")
    assert not materialized(result) & {
        "users",
        "orgs",
        "demographics",
        "naviance_package",
        "naviance_delivery",
    }
    assert folder_state(outbox) == before
    layout = DataLayout(settings.data_root, settings.district)
    assert not Path(str(layout.package_path(DAY))).exists()
    # The finding names the rule and the source line, never a PII value.
    findings = json.loads(Path(str(layout.findings_path(DAY, "users"))).read_text())
    role = [f for f in findings if f["rule"] == "USR-ROLE"]
    assert [(f["line"], f["value"]) for f in role] == [(edited_line[0], "pupil")]
    # Its demographics row, then unmatched, is counted under it (check, stored, report).
    assert role[0]["consequences"] == {"DEM-USER-REF": 1}
    assert "DEM-USER-REF × 1 under USR-ROLE" in failed["users:user_rules"]
    # The blocked date has a report that says why.
    report = json.loads(Path(str(report_paths(layout, DAY)[0])).read_text())
    assert report["verdict"]["status"] == "blocked"
    assert "USR-ROLE" in report["verdict"]["reason"]
    assert report["consequences"] == {"USR-ROLE": {"DEM-USER-REF": 1}}


def test_rerunning_users_alone_reads_the_stored_orgs(settings, instance):
    assert run_job(settings, DAY, instance).success
    layout = DataLayout(settings.data_root, settings.district)
    frames = Path(str(layout.frames_base))
    orgs_file = frames / "orgs" / f"{DAY}.parquet" / "part-0.parquet"
    orgs_before = orgs_file.stat().st_mtime_ns
    raw_before = folder_state(Path(str(layout.raw_dir(DAY))))

    again = run_job(settings, DAY, instance, selection=["users"])

    assert again.success
    assert materialized(again) == {"users"}
    assert orgs_file.stat().st_mtime_ns == orgs_before
    assert folder_state(Path(str(layout.raw_dir(DAY)))) == raw_before


def test_two_partitions_stay_independent(settings, instance):
    assert run_job(settings, "2026-11-23", instance).success
    layout = DataLayout(settings.data_root, settings.district)
    first = Path(str(layout.package_path("2026-11-23"))).read_bytes()
    second_run = run_job(settings, DAY, instance)
    assert second_run.success
    assert Path(str(layout.package_path("2026-11-23"))).read_bytes() == first
    changes = second_run.asset_materializations_for_node("naviance_package")[0].metadata
    assert changes["changes_against"].value == "2026-11-23"
    # Same source, next day: nobody added, removed or moved.
    assert ": 0 added, 0 removed, 0 deactivated" in changes["changes"].value
    second = Path(str(layout.package_path(DAY))).read_bytes()
    # Same data, different as-of date: entry timestamps differ, so the bytes do too.
    assert second != first
    assert (
        zip_entries(Path(str(layout.package_path(DAY))))["users.csv"]
        == zip_entries(Path(str(layout.package_path("2026-11-23"))))["users.csv"]
    )


def test_same_partition_twice_gives_identical_package(settings, instance):
    layout = DataLayout(settings.data_root, settings.district)
    assert run_job(settings, DAY, instance).success
    first = Path(str(layout.package_path(DAY))).read_bytes()
    assert run_job(settings, DAY, instance).success
    assert Path(str(layout.package_path(DAY))).read_bytes() == first


def test_launchpad_override_of_one_field_keeps_the_others(tmp_path, tiny_district, instance):
    """An operator overrides only the source for one run (as in the Launchpad): data root,
    district and target stay the deployment's."""
    settings = make_settings(tmp_path, tmp_path / "not-there.zip")
    result = run_job(
        settings,
        DAY,
        instance,
        run_config={"resources": {"pipeline": {"config": {"source_url": str(tiny_district)}}}},
    )
    assert result.success
    assert Path(settings.delivery_target, ZIP_NAME).exists()
    layout = DataLayout(settings.data_root, settings.district)
    assert Path(str(layout.package_path(DAY))).exists()


def test_missing_source_fails_the_extract_and_nothing_else_runs(tmp_path, instance):
    settings = make_settings(tmp_path, "file://user:hunter2@localhost" + str(tmp_path / "gone.zip"))
    result = run_job(settings, DAY, instance)
    assert not result.success
    assert materialized(result) == set()
    [failure] = result.get_step_failure_events()
    message = failure.step_failure_data.user_failure_data.description
    assert message.startswith("SRC-UNREADABLE: the source")
    assert "hunter2" not in message
