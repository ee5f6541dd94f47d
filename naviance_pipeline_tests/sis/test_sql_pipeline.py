"""The nightly job on a real PostgreSQL SIS database: ``sis_extract`` reads the PowerSchool
tables with the preset's queries (password from the resource, never the URL), and the package
is built and delivered from the snapshot."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from naviance_pipeline.oneroster.spec import ZIP_NAME
from naviance_pipeline.operations.storage import DataLayout
from naviance_pipeline_tests.conftest import make_settings
from naviance_pipeline_tests.pipeline_helpers import failed_checks, run_job, zip_entries

DAY = "2026-11-24"
pytestmark = pytest.mark.postgres


def _password(value: str) -> dict:
    return {"resources": {"pipeline": {"config": {"source_password": value, "source_retries": 0}}}}


def test_the_nightly_job_reads_a_postgresql_sis(tmp_path, powerschool_postgres):
    db = powerschool_postgres
    settings = make_settings(tmp_path, db.url, source_kind="sql", source_mapping="powerschool")
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_job(settings, DAY, instance, run_config=_password(db.password))
    assert result.success, failed_checks(result)
    users = zip_entries(tmp_path / "outbox" / ZIP_NAME)["users.csv"].decode().splitlines()
    assert len(users) - 1 == db.students
    raw = Path(DataLayout(settings.data_root, settings.district).raw_dir(DAY).path)
    queries = json.loads((raw / "sql" / "queries.json").read_text())
    assert queries["students"]["rows"] == db.students
    assert "FROM students" in queries["students"]["query"]
    stored = "".join(p.read_text(errors="replace") for p in raw.rglob("*") if p.is_file())
    assert db.password not in stored  # the secret is never part of the snapshot


def test_a_wrong_password_fails_without_showing_it_and_stores_nothing(
    tmp_path, powerschool_postgres
):
    db = powerschool_postgres
    settings = make_settings(tmp_path, db.url, source_kind="sql", source_mapping="powerschool")
    wrong = "not-the-" + db.password
    with dg.DagsterInstance.ephemeral() as instance:
        result = run_job(
            settings, DAY, instance, selection=["sis_extract"], run_config=_password(wrong)
        )
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "unreachable" in message and wrong not in message and db.password not in message
    raw = Path(DataLayout(settings.data_root, settings.district).raw_dir(DAY).path)
    assert not (raw / "snapshot.json").exists()
