"""The pipeline on the other source kinds: a mapped SIS CSV export and a SQL database
(SQLite here; PostgreSQL in ``sis/test_sql_pipeline.py``), materialized on real temporary
Dagster instances. Everything after ``sis_extract`` is the same code as for a OneRoster export.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.source import open_source
from naviance_pipeline.oneroster.spec import ZIP_NAME
from naviance_pipeline.oneroster.stages import build_all
from naviance_pipeline.operations.storage import DataLayout
from naviance_pipeline.sources.sis.mapping import load_mapping
from naviance_pipeline.sources.sis.sample_export import write_demo_database, write_sample_export
from naviance_pipeline_tests.conftest import make_settings
from naviance_pipeline_tests.pipeline_helpers import (
    ALL_ASSETS,
    failed_checks,
    folder_state,
    materialized,
    run_job,
    zip_entries,
)

DAY = "2026-11-24"
STUDENTS = 80


@pytest.fixture(scope="module")
def powerschool_export(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ps") / "export"
    write_sample_export(
        str(folder), "powerschool", students=STUDENTS, schools=3, seed=5, fmt="folder"
    )
    return folder


def _copy_folder(src: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    for p in src.iterdir():
        (dest / p.name).write_bytes(p.read_bytes())
    return dest


def _edit_first_row(path: Path, changes: dict[str, str]) -> tuple[int, dict[str, str]]:
    """Change the first data row of an export CSV; (its record line, the row before)."""
    text = path.read_bytes().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    before = dict(zip(rows[0], rows[1], strict=True))
    for column, value in changes.items():
        rows[1][rows[0].index(column)] = value
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    path.write_bytes(out.getvalue().encode())
    return 2, before


def _validated(zip_path: Path) -> tuple[dict[str, bytes], list]:
    entries = zip_entries(zip_path)
    options = Options(as_of=date.fromisoformat(DAY))
    source = open_source(str(zip_path), options)
    stages = build_all(source, options)
    return entries, [f for s in stages for f in s.findings if f.severity == "error"]


def test_a_powerschool_export_runs_end_to_end(tmp_path, powerschool_export):
    settings = make_settings(
        tmp_path, powerschool_export, source_kind="sis-csv", source_mapping="powerschool"
    )
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_job(settings, DAY, instance)
    assert result.success, failed_checks(result)
    assert materialized(result) == ALL_ASSETS
    delivered = tmp_path / "outbox" / ZIP_NAME
    entries, errors = _validated(delivered)
    assert errors == []
    users = entries["users.csv"].decode().splitlines()
    assert len(users) - 1 == STUDENTS  # every student of the export, staff left out (default)
    raw = DataLayout(settings.data_root, settings.district).raw_dir(DAY)
    index = json.loads((raw / "snapshot.json").read_text())
    assert index["kind"] == "sis-csv" and index["open"] == "oneroster"
    # The export is kept as exported, byte for byte, beside the mapping that read it.
    for f in powerschool_export.iterdir():
        assert (Path(raw.path) / "export" / "source" / f.name).read_bytes() == f.read_bytes()
    assert (Path(raw.path) / "mapping.yaml").read_text().strip()
    extract = result.asset_materializations_for_node("sis_extract")[0].metadata
    assert extract["source_kind"].value == "sis-csv"
    assert extract["mapping"].value == "powerschool"


def test_a_mapping_naming_a_missing_column_fails_before_reading_and_keeps_the_snapshot(
    tmp_path, powerschool_export
):
    good = make_settings(tmp_path, powerschool_export, source_kind="sis-csv")
    raw = Path(DataLayout(good.data_root, good.district).raw_dir(DAY).path)
    with dg.DagsterInstance.ephemeral() as instance:
        assert run_job(good, DAY, instance, selection=["sis_extract"]).success
        kept = folder_state(raw)
        broken = _copy_folder(powerschool_export, tmp_path / "broken")
        text = (broken / "students.csv").read_text(encoding="utf-8")
        (broken / "students.csv").write_text(
            text.replace("Grade_Level", "GradeLevel", 1), encoding="utf-8"
        )
        bad = make_settings(tmp_path, broken, source_kind="sis-csv")
        result = run_job(bad, DAY, instance, selection=["sis_extract"])
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "Grade_Level" in failure and "grades" in failure and "students.csv" in failure
    assert ".tmp" not in failure  # it names the source as configured, not the staging copy
    assert folder_state(raw) == kept  # the date's last good snapshot is untouched


def test_an_unknown_grade_code_is_a_finding_with_its_rule_code_and_blocks_the_package(
    tmp_path, powerschool_export
):
    export = _copy_folder(powerschool_export, tmp_path / "export")
    line, before = _edit_first_row(export / "students.csv", {"Grade_Level": "Z9"})
    settings = make_settings(tmp_path, export, source_kind="sis-csv")
    outbox = tmp_path / "outbox"
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_job(settings, DAY, instance)
    assert not result.success
    failed = failed_checks(result)
    assert "USR-GRADE" in failed["sis_extract:source_package"]
    # The blocking check stops the run at the snapshot: no later stage, no package.
    assert materialized(result).isdisjoint({"users", "naviance_package", "naviance_delivery"})
    layout = DataLayout(settings.data_root, settings.district)
    stored = json.loads(layout.findings_path(DAY, "sis_extract").read_text())
    grade = [f for f in stored if f["rule"] == "USR-GRADE"]
    assert [(f["file"], f["line"], f["column"], f["value"]) for f in grade] == [
        ("students.csv", line, "Grade_Level", "Z9")
    ]
    assert grade[0]["sourcedId"] == before["Student_Number"]
    assert folder_state(outbox) == {}  # nothing half-delivered


def test_the_embedded_sql_default_runs_and_later_stages_rerun_without_the_database(tmp_path):
    settings = make_settings(tmp_path, "", source_kind="sql")
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_job(settings, DAY, instance)
        assert result.success, failed_checks(result)
        meta = result.asset_materializations_for_node("sis_extract")[0].metadata
        assert meta["source_kind"].value == "sql"
        assert meta["source_rows"].value > 0
        raw = Path(DataLayout(settings.data_root, settings.district).raw_dir(DAY).path)
        queries = json.loads((raw / "sql" / "queries.json").read_text())
        assert set(queries) == {"students", "teachers", "schools"}
        assert queries["students"]["rows"] == 1200  # the embedded sample's students
        assert meta["source_rows"].value == sum(q["rows"] for q in queries.values())
        # The demo database goes away: users and the package re-run from the snapshot alone.
        database = Path(settings.sample_source).parent / "sample-district.sqlite"
        database.unlink()
        again = run_job(settings, DAY, instance, selection=["users", "naviance_package"])
    assert again.success, failed_checks(again)
    entries, errors = _validated(tmp_path / "outbox" / ZIP_NAME)
    assert errors == []
    assert (
        zip_entries(
            Path(settings.data_root) / "districts" / settings.district / "packages" / DAY / ZIP_NAME
        )
        == entries
    )


def test_an_unreachable_database_fails_clearly_keeps_nothing_and_can_be_retried(tmp_path):
    database = tmp_path / "sis.sqlite"
    write_demo_database(str(database), students=STUDENTS, schools=3, seed=5)
    missing = tmp_path / "moved" / "sis.sqlite"
    settings = make_settings(
        tmp_path, f"sqlite:///{missing}", source_kind="sql", source_mapping="powerschool"
    )
    retry = {"resources": {"pipeline": {"config": {"source_retries": 0}}}}
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_job(settings, DAY, instance, selection=["sis_extract"], run_config=retry)
        assert not result.success
        message = result.get_step_failure_events()[0].step_failure_data.error.message
        assert "unreachable" in message and "Re-run sis_extract" in message
        raw = Path(DataLayout(settings.data_root, settings.district).raw_dir(DAY).path)
        assert not (raw / "snapshot.json").exists()
        missing.parent.mkdir()
        database.rename(missing)  # the database is back
        again = run_job(settings, DAY, instance, selection=["sis_extract"], run_config=retry)
    assert again.success
    assert (raw / "snapshot.json").exists()


def test_an_unreachable_database_is_retried_as_configured(tmp_path):
    settings = make_settings(
        tmp_path, f"sqlite:///{tmp_path / 'nowhere.sqlite'}", source_kind="sql"
    )
    retry = {
        "resources": {"pipeline": {"config": {"source_retries": 1, "source_retry_seconds": 0.0}}}
    }
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_job(settings, DAY, instance, selection=["sis_extract"], run_config=retry)
        logs = [e.user_message for e in instance.all_logs(result.run_id)]
    assert not result.success
    # Retried inside the step (tenacity), not by restarting it: one step, two attempts.
    kinds = [e.event_type_value for e in result.all_events if e.step_key == "sis_extract"]
    assert "STEP_UP_FOR_RETRY" not in kinds and kinds.count("STEP_START") == 1
    assert [m for m in logs if "retrying in" in m] == [
        "the source is unreachable (attempt 1 of 2), retrying in 0 s: cannot read the SIS "
        f"database sqlite:///{tmp_path / 'nowhere.sqlite'}: there is no SQLite database file "
        f"at {tmp_path / 'nowhere.sqlite'}. Nothing was stored; the run can be retried."
    ]
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "the source is unreachable after 2 attempt(s): " in message


@pytest.mark.parametrize(
    ("kind", "mapping", "system"),
    [
        ("oneroster", "", "ClassLink"),
        ("sql", "", "PowerSchool"),
        ("sis-csv", "powerschool", "PowerSchool"),
        ("sis-csv", "generic", "SIS"),
    ],
)
def test_the_manifest_names_the_kind_of_system_when_none_is_configured(
    monkeypatch, kind, mapping, system
):
    from naviance_pipeline.operations.settings import Settings

    monkeypatch.delenv("NAVIANCE_SOURCE_SYSTEM", raising=False)
    monkeypatch.setenv("NAVIANCE_SOURCE_KIND", kind)
    monkeypatch.setenv("NAVIANCE_SOURCE_MAPPING", mapping)
    assert Settings.from_env().source_system_name == system
    monkeypatch.setenv("NAVIANCE_SOURCE_SYSTEM", "Skyward")
    assert Settings.from_env().source_system_name == "Skyward"


def test_a_failing_query_names_its_table_and_is_not_retried(tmp_path):
    database = tmp_path / "sis.sqlite"
    write_demo_database(str(database), students=STUDENTS, schools=3, seed=5)
    mapping = tmp_path / "ours.yaml"
    text = load_mapping("powerschool").text
    mapping.write_text(text.replace("FROM teachers", "FROM teacher_list"))
    settings = make_settings(
        tmp_path, f"sqlite:///{database}", source_kind="sql", source_mapping=str(mapping)
    )
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_job(settings, DAY, instance, selection=["sis_extract"])
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "'teachers'" in message and "teacher_list" in message
    kinds = [e.event_type_value for e in result.all_events if e.step_key == "sis_extract"]
    assert "STEP_UP_FOR_RETRY" not in kinds  # a query error is not the network's fault


def test_an_unmapped_code_from_a_query_points_at_the_stored_result_set(tmp_path):
    import sqlite3

    database = tmp_path / "sis.sqlite"
    write_demo_database(str(database), students=STUDENTS, schools=3, seed=5)
    with sqlite3.connect(database) as db:
        (number,) = db.execute("SELECT Student_Number FROM students LIMIT 1 OFFSET 4").fetchone()
        db.execute("UPDATE students SET Grade_Level = 42 WHERE Student_Number = ?", (number,))
    db.close()
    settings = make_settings(tmp_path, f"sqlite:///{database}", source_kind="sql")
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_job(settings, DAY, instance, selection=["sis_extract"])
    assert "USR-GRADE" in failed_checks(result)["sis_extract:source_package"]
    layout = DataLayout(settings.data_root, settings.district)
    (grade,) = [
        f
        for f in json.loads(layout.findings_path(DAY, "sis_extract").read_text())
        if f["rule"] == "USR-GRADE"
    ]
    assert (grade["file"], grade["column"], grade["value"]) == (
        "sql/students.csv",
        "Grade_Level",
        "42",
    )
    # The line is true in the stored result set: that record is the student's.
    stored = (Path(layout.raw_dir(DAY).path) / grade["file"]).read_text().splitlines()
    record = next(csv.DictReader([stored[0], stored[grade["line"] - 1]]))
    assert record["Student_Number"] == str(number) == grade["sourcedId"]


def test_a_query_past_the_timeout_fails_the_step_naming_the_limit(tmp_path):
    database = tmp_path / "sis.sqlite"
    write_demo_database(str(database), students=STUDENTS, schools=3, seed=5)
    endless = (
        "FROM students, (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
        "WHERE i < 1000000000) SELECT max(i) AS m FROM n)"
    )
    mapping = tmp_path / "slow.yaml"
    mapping.write_text(load_mapping("powerschool").text.replace("FROM students", endless))
    settings = make_settings(
        tmp_path, f"sqlite:///{database}", source_kind="sql", source_mapping=str(mapping)
    )
    limit = {"resources": {"pipeline": {"config": {"source_query_timeout_seconds": 0.5}}}}
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_job(settings, DAY, instance, selection=["sis_extract"], run_config=limit)
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "SIS query 'students' took longer than the query timeout of 0.5 s" in message


@pytest.mark.parametrize("kind", ["oneroster", "sis-csv"])
def test_a_data_root_on_an_object_store_runs_end_to_end(
    tmp_path, tiny_district, powerschool_export, kind
):
    """The data root at a non-local fsspec URL (memory:// stands in for s3:// or gcs://):
    snapshots, frames, findings, the package and receipts live there, and delivery uploads a
    private temporary copy of the package that it removes afterwards."""
    import tempfile

    from upath import UPath

    source = tiny_district if kind == "oneroster" else powerschool_export
    root = f"memory://naviance-tests/{tmp_path.name}-{kind}/data"
    settings = make_settings(tmp_path, source, source_kind=kind, data_root=root)
    before = set(Path(tempfile.gettempdir()).glob("naviance-delivery-*"))
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_job(settings, DAY, instance)
    assert result.success, failed_checks(result)
    archived = DataLayout(root, settings.district).package_path(DAY)
    assert isinstance(archived, UPath) and archived.protocol == "memory"
    assert (tmp_path / "outbox" / ZIP_NAME).read_bytes() == archived.read_bytes()
    assert set(Path(tempfile.gettempdir()).glob("naviance-delivery-*")) == before
    receipts = DataLayout(root, settings.district).base / "receipts"
    assert len([p for p in receipts.rglob("*.json")]) == 1


def test_the_generic_preset_has_a_bundled_sample_and_a_custom_mapping_needs_a_url(tmp_path):
    generic = make_settings(tmp_path / "g", "", source_kind="sis-csv", source_mapping="generic")
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_job(generic, DAY, instance, selection=["sis_extract"])
        assert result.success, failed_checks(result)
        assert (Path(generic.sample_source).parent / "sample-generic-export.zip").is_file()

        ours = tmp_path / "ours.yaml"
        ours.write_text(load_mapping("generic").text)
        custom = make_settings(tmp_path / "c", "", source_kind="sis-csv", source_mapping=str(ours))
        refused = run_job(custom, DAY, instance, selection=["sis_extract"])
    assert not refused.success
    message = refused.get_step_failure_events()[0].step_failure_data.error.message
    assert "no source URL is set (NAVIANCE_SOURCE_URL)" in message
    assert "the bundled samples are for powerschool, generic" in message
    assert "Failure: the sis-csv source cannot be used as configured" in message
