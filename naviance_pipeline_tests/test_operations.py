"""Operations on a real instance: alerts on a failed run or a missed delivery, retention."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from naviance_pipeline.definitions import build_definitions
from naviance_pipeline.operations.storage import DataLayout
from naviance_pipeline_tests.conftest import make_settings
from naviance_pipeline_tests.local_servers import received_alert
from naviance_pipeline_tests.pipeline_helpers import first_student_editor, rewrite_zip, run_job


def _hook_env(monkeypatch, webhook_server) -> None:
    host, port = webhook_server.server_address[:2]
    monkeypatch.setenv("NAVIANCE_ALERT_URLS", f"json://{host}:{port}/hook")
    monkeypatch.setenv("NAVIANCE_UI_URL", "http://dagster.example:3000")


def _alert_on_failure(
    defs: dg.Definitions, instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult
) -> None:
    """Evaluate the run-failure sensor on a failed run, as the daemon would."""
    failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    defs.resolve_sensor_def("alert_on_failure")(
        dg.build_run_status_sensor_context(
            sensor_name="alert_on_failure",
            dagster_instance=instance,
            dagster_run=result.dagster_run,
            dagster_event=failure,
        ).for_run_failure()
    )


def test_failed_run_sends_one_alert_with_rule_codes_and_run_link(
    tmp_path, tiny_district, monkeypatch, webhook_server
):
    _hook_env(monkeypatch, webhook_server)
    bad = rewrite_zip(
        tiny_district, tmp_path / "bad.zip", "users.csv", first_student_editor({"role": "pupil"})[0]
    )
    settings = make_settings(tmp_path, bad)
    with dg.instance_for_test() as instance:
        result = run_job(settings, "2026-11-24", instance)
        assert not result.success
        _alert_on_failure(build_definitions(settings), instance, result)
        # A variable of the channels before apprise fails the tick, naming the replacement.
        monkeypatch.setenv("NAVIANCE_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/services/T/B/x")
        with pytest.raises(ValueError, match=r"WEBHOOK_URL: no longer read.*NAVIANCE_ALERT_URLS"):
            _alert_on_failure(build_definitions(settings), instance, result)
    [(_, _, body)] = webhook_server.posts
    alert = received_alert(body)
    assert alert["kind"] == "run_failed"
    assert alert["counts"] == {"USR-ROLE": 1}
    assert alert["run_url"] == f"http://dagster.example:3000/runs/{result.run_id}"
    assert alert["partition"] == "2026-11-24"


def test_guard_block_is_alerted_as_such(tmp_path, tiny_district, monkeypatch, webhook_server):
    _hook_env(monkeypatch, webhook_server)

    def disable_students(rows):
        header = rows[0]
        for row in rows[1:]:
            if row[header.index("role")] == "student":
                row[header.index("enabledUser")] = "false"
        return rows

    empty = rewrite_zip(tiny_district, tmp_path / "empty.zip", "users.csv", disable_students)
    settings = make_settings(tmp_path, empty)
    with dg.instance_for_test() as instance:
        blocked = run_job(settings, "2026-11-24", instance)  # no active student: GRD-EMPTY
        assert not blocked.success
        _alert_on_failure(build_definitions(settings), instance, blocked)
    [(_, _, body)] = webhook_server.posts
    alert = received_alert(body)
    assert alert["kind"] == "guard_blocked"
    assert alert["counts"] == {"GRD-EMPTY": 1}


def test_missed_delivery_alerts_once(tmp_path, tiny_district, monkeypatch, webhook_server):
    _hook_env(monkeypatch, webhook_server)
    monkeypatch.setenv("NAVIANCE_DELIVERY_MAX_AGE_HOURS", "0")  # any delivery is "too old"
    settings = make_settings(tmp_path, tiny_district)
    with dg.instance_for_test() as instance:
        sensor = build_definitions(settings).resolve_sensor_def("alert_on_missed_delivery")
        first = sensor(dg.build_sensor_context(instance=instance))
        assert "nothing delivered yet" in first.skip_message
        assert run_job(settings, "2026-11-24", instance).success
        context = dg.build_sensor_context(instance=instance)
        sensor(context)
        again = sensor(dg.build_sensor_context(instance=instance, cursor=context.cursor))
        assert "last delivery" in again.skip_message
    [(_, _, body)] = webhook_server.posts  # one alert for one missed stretch
    alert = received_alert(body)
    assert alert["kind"] == "delivery_missed"
    assert alert["partition"] == "2026-11-24"


def test_retention_job_purges_old_dates_and_keeps_the_delivered_package(tmp_path, tiny_district):
    settings = make_settings(tmp_path, tiny_district)
    layout = DataLayout(settings.data_root, settings.district)
    with dg.instance_for_test() as instance:
        for day in ("2026-11-01", "2026-11-24"):
            assert run_job(settings, day, instance).success
        today = datetime.now(ZoneInfo(settings.timezone)).date()
        keep_days = (today - date(2026, 11, 10)).days  # cutoff between the two dates
        job = build_definitions(settings).resolve_job_def("retention_job")
        result = job.execute_in_process(
            instance=instance,
            run_config={"ops": {"purge_old_partitions": {"config": {"keep_days": keep_days}}}},
        )
    assert result.success
    assert not Path(str(layout.raw_dir("2026-11-01"))).exists()
    assert not Path(str(layout.package_path("2026-11-01"))).exists()
    assert Path(str(layout.raw_dir("2026-11-24"))).exists()
    assert Path(str(layout.package_path("2026-11-24"))).exists()
    receipts = list(Path(str(layout.base / "receipts")).rglob("*.json"))
    assert sorted(json.loads(p.read_text())["partition"] for p in receipts) == [
        "2026-11-01",
        "2026-11-24",
    ]


def test_a_failed_district_run_is_alerted_in_that_districts_name(
    tmp_path, tiny_district, monkeypatch, webhook_server
):

    from naviance_pipeline.defs.jobs import NIGHTLY_JOB
    from naviance_pipeline.defs.partitions import district_key

    _hook_env(monkeypatch, webhook_server)
    bad = rewrite_zip(
        tiny_district, tmp_path / "bad.zip", "users.csv", first_student_editor({"role": "pupil"})[0]
    )
    settings = _two_districts(tmp_path, {"east": tiny_district, "west": bad})
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(NIGHTLY_JOB).execute_in_process(
            partition_key=district_key("2026-11-24", "west"),
            instance=instance,
            raise_on_error=False,
        )
        assert not result.success
        _alert_on_failure(defs, instance, result)
    [(_, _, body)] = webhook_server.posts
    alert = received_alert(body)
    assert (alert["district"], alert["partition"]) == ("west", "2026-11-24")
    assert alert["counts"] == {"USR-ROLE": 1}  # the district's own stored findings


def _two_districts(tmp_path: Path, sources: dict[str, Path]):
    import yaml

    entries = [
        {
            "id": name,
            "source_url": str(source),
            "timezone": "America/New_York",
            "schedule_time": "02:00",
            "delivery_target": str(tmp_path / "outbox" / name),
        }
        for name, source in sources.items()
    ]
    districts = tmp_path / "districts.yaml"
    districts.write_text(
        yaml.safe_dump({"data_root": str(tmp_path / "data"), "districts": entries})
    )
    return make_settings(tmp_path, "", districts_file=str(districts))


def test_a_missed_delivery_is_alerted_per_district(
    tmp_path, tiny_district, monkeypatch, webhook_server
):
    from naviance_pipeline.defs.jobs import NIGHTLY_JOB
    from naviance_pipeline.defs.partitions import district_key

    _hook_env(monkeypatch, webhook_server)
    monkeypatch.setenv("NAVIANCE_DELIVERY_MAX_AGE_HOURS", "0")  # any delivery is "too old"
    defs = build_definitions(
        _two_districts(tmp_path, {"east": tiny_district, "west": tiny_district})
    )
    sensor = defs.resolve_sensor_def("alert_on_missed_delivery")
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(NIGHTLY_JOB).execute_in_process(
            partition_key=district_key("2026-11-24", "east"), instance=instance
        )
        assert result.success
        context = dg.build_sensor_context(instance=instance)
        first = sensor(context)
        again = sensor(dg.build_sensor_context(instance=instance, cursor=context.cursor))
    assert "west: nothing delivered yet" in first.skip_message
    assert "east: alerted" in first.skip_message
    assert "east: last delivery" in again.skip_message  # one alert per missed stretch
    [(_, _, body)] = webhook_server.posts
    alert = received_alert(body)
    assert (alert["kind"], alert["district"], alert["partition"]) == (
        "delivery_missed",
        "east",
        "2026-11-24",
    )


def test_the_missed_delivery_cursor_of_one_district_carries_over():
    from naviance_pipeline.defs.sensors import _alerted

    assert _alerted("1732860000.5", "sample-district") == {"sample-district": "1732860000.5"}
    assert _alerted('{"east": "1.0"}', "all-districts") == {"east": "1.0"}
    assert _alerted(None, "x") == {}
