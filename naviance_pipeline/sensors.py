"""Alerts from Dagster: a failed run (or guards that blocked delivery) and a missed delivery.

Both sensors run in the daemon (``dagster dev`` starts one) and send through the channels
configured by ``NAVIANCE_ALERT_*`` variables (``alerts.py``); with none configured they do
nothing. ``naviance-pipeline run`` has no daemon, so it calls ``failure_alert`` itself.
Alerts carry counts, rule codes and a link to the run — never PII.
"""

import os
import time
from typing import TYPE_CHECKING

import dagster as dg

from naviance_pipeline.alerts import Alert, alert_from_findings, notifiers_from_env, send_all
from naviance_pipeline.partitions import split_key
from naviance_pipeline.storage import FINDING_STAGES, GUARDS_STAGE, DataLayout, read_json

if TYPE_CHECKING:  # private Dagster types, for annotations only
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


DEFAULT_UI_URL = "http://127.0.0.1:3000"
MAX_DELIVERY_AGE_HOURS = 26.0


def ui_url() -> str:
    return (os.environ.get("NAVIANCE_UI_URL") or DEFAULT_UI_URL).rstrip("/")


def _stored_findings(layout: DataLayout, day: str, stage: str) -> list[dict]:
    path = layout.findings_path(day, stage)
    return read_json(path) if path.exists() else []


def failure_alert(layout: DataLayout, partition: str | None, run_id: str) -> Alert:
    """The alert for a failed run: ``guard_blocked`` when the delivery guards stopped it,
    else ``run_failed`` with the error findings of the date counted by rule."""
    run_url = f"{ui_url()}/runs/{run_id}"
    if partition:
        guards = [
            f for f in _stored_findings(layout, partition, GUARDS_STAGE) if f["severity"] == "error"
        ]
        if guards:
            return alert_from_findings("guard_blocked", layout.district, partition, guards, run_url)
        findings = [
            f for stage in FINDING_STAGES for f in _stored_findings(layout, partition, stage)
        ]
    else:
        findings = []
    return alert_from_findings("run_failed", layout.district, partition, findings, run_url)


def _partition_layout(layout: DataLayout, partition: str | None) -> tuple[DataLayout, str | None]:
    """The layout and date of a run's partition: with many districts (``date|district``), the
    layout of that district under the same data root, so its alert names it and counts its
    findings."""
    if not partition:
        return layout, None
    day, district = split_key(partition)
    return (DataLayout(layout.root, district) if district else layout), day


def build_sensors(job: "UnresolvedAssetJobDefinition", layout_of) -> list:
    """``layout_of()`` gives the data layout (from the pipeline resource's settings)."""

    @dg.run_failure_sensor(
        name="alert_on_failure",
        monitored_jobs=[job],
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Sends an alert (mail/webhook) when a nightly run fails or the delivery "
        "guards block a package. Configure channels with NAVIANCE_ALERT_* variables.",
    )
    def alert_on_failure(context: dg.RunFailureSensorContext):
        notifiers = notifiers_from_env()
        if not notifiers:
            return dg.SkipReason("no alert channel configured (NAVIANCE_ALERT_*)")
        run = context.dagster_run
        layout, day = _partition_layout(layout_of(), run.tags.get("dagster/partition"))
        alert = failure_alert(layout, day, run.run_id)
        for error in send_all(alert, notifiers):
            context.log.warning(f"alert not sent: {error}")
        return None

    @dg.sensor(
        name="alert_on_missed_delivery",
        minimum_interval_seconds=900,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Alerts once when no delivery succeeded for more than "
        f"{MAX_DELIVERY_AGE_HOURS:g} hours (NAVIANCE_DELIVERY_MAX_AGE_HOURS).",
    )
    def alert_on_missed_delivery(context: dg.SensorEvaluationContext):
        event = context.instance.get_latest_materialization_event(dg.AssetKey("naviance_delivery"))
        if event is None:
            return dg.SkipReason("nothing delivered yet")
        max_age = float(os.environ.get("NAVIANCE_DELIVERY_MAX_AGE_HOURS") or MAX_DELIVERY_AGE_HOURS)
        age_hours = (time.time() - event.timestamp) / 3600
        last = str(event.timestamp)
        if age_hours <= max_age or context.cursor == last:
            return dg.SkipReason(f"last delivery {age_hours:.1f} h ago")
        context.update_cursor(last)  # one alert per missed stretch, not one per tick
        notifiers = notifiers_from_env()
        layout = layout_of()
        partition = event.asset_materialization.partition if event.asset_materialization else None
        alert = Alert(
            kind="delivery_missed",
            district=layout.district,
            partition=partition,
            summary=f"no delivery for {layout.district} in {age_hours:.0f} hours "
            f"(last: {partition})",
            counts={"hours_since_last_delivery": int(age_hours)},
            run_url=f"{ui_url()}/runs/{event.run_id}",
        )
        for error in send_all(alert, notifiers):
            context.log.warning(f"alert not sent: {error}")
        return dg.SkipReason(f"alerted: last delivery {age_hours:.1f} h ago")

    return [alert_on_failure, alert_on_missed_delivery]
