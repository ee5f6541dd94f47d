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
from naviance_pipeline.sources.sis.mapping import load_mapping
from naviance_pipeline_tests.conftest import make_settings
from naviance_pipeline_tests.pipeline_helpers import failed_checks, run_job, zip_entries
from naviance_pipeline_tests.sis.test_sql import TcpProxy

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
    assert "cannot be used as configured" in message
    assert 'password authentication failed for user "sis_reader"' in message
    assert wrong not in message and db.password not in message
    raw = Path(DataLayout(settings.data_root, settings.district).raw_dir(DAY).path)
    assert not (raw / "snapshot.json").exists()


def _through(proxy: TcpProxy, url: str) -> str:
    host, rest = url.rsplit("@", 1)
    return f"{host}@127.0.0.1:{proxy.port}/{rest.split('/', 1)[1]}"


def _retrying(password: str) -> dict:
    config = {"source_password": password, "source_retries": 2, "source_retry_seconds": 0.0}
    return {"resources": {"pipeline": {"config": config}}}


@pytest.mark.parametrize("failure", ["wrong password", "bad query"])
def test_a_refused_login_or_a_bad_query_is_not_retried(tmp_path, powerschool_postgres, failure):
    db = powerschool_postgres
    proxy = TcpProxy(int(db.url.rsplit(":", 1)[1].split("/")[0])).start()  # counts connections
    mapping = "powerschool"
    if failure == "bad query":
        mapping = str(tmp_path / "ours.yaml")
        text = load_mapping("powerschool").text.replace("FROM teachers", "FROM teacher_list")
        Path(mapping).write_text(text)
    password = "not-the-" + db.password if failure == "wrong password" else db.password
    settings = make_settings(
        tmp_path, _through(proxy, db.url), source_kind="sql", source_mapping=mapping
    )
    try:
        with dg.DagsterInstance.ephemeral() as instance:
            result = run_job(
                settings, DAY, instance, selection=["sis_extract"], run_config=_retrying(password)
            )
            logs = [e.user_message for e in instance.all_logs(result.run_id)]
    finally:
        proxy.stop()
    assert not result.success
    assert proxy.connections == 1  # source_retries=2 would have made 3
    assert not [m for m in logs if "retrying in" in m]
    kinds = [e.event_type_value for e in result.all_events if e.step_key == "sis_extract"]
    assert "STEP_UP_FOR_RETRY" not in kinds and kinds.count("STEP_START") == 1
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "cannot be used as configured" in message


def test_a_database_that_comes_back_is_read_on_a_later_attempt(tmp_path, powerschool_postgres):
    db = powerschool_postgres
    port = int(db.url.rsplit(":", 1)[1].split("/")[0])
    proxy = TcpProxy(port, drop_first=1).start()  # the first connection is dropped at once
    settings = make_settings(
        tmp_path, _through(proxy, db.url), source_kind="sql", source_mapping="powerschool"
    )
    try:
        with dg.DagsterInstance.ephemeral() as instance:
            result = run_job(
                settings,
                DAY,
                instance,
                selection=["sis_extract"],
                run_config=_retrying(db.password),
            )
            logs = [e.user_message for e in instance.all_logs(result.run_id)]
    finally:
        proxy.stop()
    assert result.success
    assert proxy.connections == 2
    (retry,) = [m for m in logs if "retrying in" in m]
    assert retry.startswith("the source is unreachable (attempt 1 of 3), retrying in 0 s: ")
    assert db.password not in retry
    (event,) = result.get_asset_materialization_events()
    assert event.materialization.metadata["source_attempts"].value == 2
    kinds = [e.event_type_value for e in result.all_events if e.step_key == "sis_extract"]
    assert "STEP_UP_FOR_RETRY" not in kinds and kinds.count("STEP_START") == 1
