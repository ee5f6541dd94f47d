"""The nightly schedule requests the right partition at the district's local time."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from naviance_pipeline.definitions import build_definitions
from naviance_pipeline_tests.conftest import make_settings

NY = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("local_tick", "expected"),
    [
        (datetime(2026, 11, 30, 2, 0, tzinfo=NY), "2026-11-30"),
        # The night the clocks go back (2026-11-01, 02:00 EDT -> 01:00 EST).
        (datetime(2026, 11, 1, 2, 0, tzinfo=NY), "2026-11-01"),
        # The night the clocks go forward (2026-03-08, 02:00 does not exist in New York).
        (datetime(2026, 3, 8, 3, 0, tzinfo=NY), "2026-03-08"),
        (datetime(2026, 3, 9, 2, 0, tzinfo=NY), "2026-03-09"),
    ],
)
def test_tick_requests_the_local_date(tmp_path, local_tick, expected):
    with dg.instance_for_test() as instance:
        defs = build_definitions(make_settings(tmp_path, tmp_path / "unused.zip"))
        schedule = defs.resolve_schedule_def("nightly_schedule")
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=local_tick)
        requests = schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in requests] == [expected]


def test_schedule_runs_at_the_configured_local_time(tmp_path):
    settings = make_settings(
        tmp_path, tmp_path / "unused.zip", schedule_time="03:30", timezone="America/Chicago"
    )
    schedule = build_definitions(settings).resolve_schedule_def("nightly_schedule")
    assert schedule.cron_schedule == "30 3 * * *"
    assert schedule.execution_timezone == "America/Chicago"
