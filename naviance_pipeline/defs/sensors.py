"""Alerts from Dagster: a failed run (or guards that blocked delivery) and a missed delivery.

Both sensors run in the daemon (``dagster dev`` starts one) and send through apprise to the
channels of ``NAVIANCE_ALERT_URLS`` (``alerts.py``); with none configured they do nothing.
``naviance-pipeline run`` has no daemon, so it calls ``failure_alert`` itself.
Alerts carry counts, rule codes and a link to the run — never PII.
"""

import json
import time
from typing import TYPE_CHECKING

import dagster as dg

from naviance_pipeline.defs.partitions import split_key
from naviance_pipeline.operations.alerts import (
    Alert,
    alert_from_findings,
    notifiers_from_env,
    send_all,
)
from naviance_pipeline.operations.settings import Settings
from naviance_pipeline.operations.storage import FINDING_STAGES, GUARDS_STAGE, DataLayout, read_json

if TYPE_CHECKING:  # private Dagster types, for annotations only
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


MAX_DELIVERY_AGE_HOURS = Settings.model_fields["delivery_max_age_hours"].default
DELIVERY = dg.AssetKey("naviance_delivery")
DELIVERY_LOOKBACK = 100  # materializations looked at for the last one that sent a file


def ui_url() -> str:
    return Settings.from_env().ui_url.rstrip("/")


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


def _delivery_scopes(
    layout: DataLayout, partitions_def: dg.MultiPartitionsDefinition | None
) -> list[tuple[str, list[str] | None]]:
    """(district, its partition keys) to watch: the one district (every partition), or each
    district of the date × district partitions."""
    if partitions_def is None:
        return [(layout.district, None)]
    by_district: dict[str, list[str]] = {}
    for key in partitions_def.get_partition_keys():
        district = split_key(key)[1]
        by_district.setdefault(district, []).append(key)
    return sorted(by_district.items())


def _alerted(cursor: str | None, district: str) -> dict[str, str]:
    """The sensor's cursor: the last delivery alerted about, by district. Before many districts
    it was that one timestamp, of the one district."""
    if not cursor:
        return {}
    value = json.loads(cursor)
    return value if isinstance(value, dict) else {district: cursor}


def _latest_delivery(instance: dg.DagsterInstance, keys: list[str] | None):
    """The newest naviance_delivery materialization (of these partitions) that sent a file,
    or None: a past date rebuilt (``sent: False``) delivered nothing."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=DELIVERY, asset_partitions=keys), limit=DELIVERY_LOOKBACK
    ).records
    for record in records:
        sent = record.asset_materialization.metadata.get("sent")
        if sent is None or sent.value is not False:
            return record.event_log_entry
    return None


def build_sensors(
    job: "UnresolvedAssetJobDefinition",
    layout_of,
    partitions_def: dg.MultiPartitionsDefinition | None = None,
) -> list:
    """``layout_of()`` gives the data layout (from the pipeline resource's settings);
    ``partitions_def``, with many districts, the date × district partitions to watch."""

    @dg.run_failure_sensor(
        name="alert_on_failure",
        monitored_jobs=[job],
        # It sends alerts: stopped until an operator switches it on (README).
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Sends an alert (mail, chat, webhook) when a nightly run fails or the "
        "delivery guards block a package. Channels: apprise URLs in NAVIANCE_ALERT_URLS.",
    )
    def alert_on_failure(context: dg.RunFailureSensorContext):
        notifiers = notifiers_from_env()
        if not notifiers:
            return dg.SkipReason("no alert channel configured (NAVIANCE_ALERT_URLS)")
        run = context.dagster_run
        layout, day = _partition_layout(layout_of(), run.tags.get("dagster/partition"))
        alert = failure_alert(layout, day, run.run_id)
        for error in send_all(alert, notifiers):
            context.log.warning(f"alert not sent: {error}")
        return None

    @dg.sensor(
        name="alert_on_missed_delivery",
        minimum_interval_seconds=900,
        default_status=dg.DefaultSensorStatus.STOPPED,  # sends: switched on by an operator
        description=f"Alerts once when no delivery succeeded for more than "
        f"{MAX_DELIVERY_AGE_HOURS:g} hours (NAVIANCE_DELIVERY_MAX_AGE_HOURS); with many "
        "districts, for each district.",
    )
    def alert_on_missed_delivery(context: dg.SensorEvaluationContext):
        max_age = Settings.from_env().delivery_max_age_hours
        layout = layout_of()
        seen = _alerted(context.cursor, layout.district)
        notes = []
        for district, keys in _delivery_scopes(layout, partitions_def):
            event = _latest_delivery(context.instance, keys)
            if event is None:
                notes.append(f"{district}: nothing delivered yet")
                continue
            age_hours = (time.time() - event.timestamp) / 3600
            last = str(event.timestamp)
            if age_hours <= max_age or seen.get(district) == last:
                notes.append(f"{district}: last delivery {age_hours:.1f} h ago")
                continue
            seen[district] = last  # one alert per missed stretch, not one per tick
            partition = (
                event.asset_materialization.partition if event.asset_materialization else None
            )
            day = split_key(partition)[0] if partition else None
            alert = Alert(
                kind="delivery_missed",
                district=district,
                partition=day,
                summary=f"no delivery for {district} in {age_hours:.0f} hours (last: {day})",
                counts={"hours_since_last_delivery": int(age_hours)},
                run_url=f"{ui_url()}/runs/{event.run_id}",
            )
            for error in send_all(alert, notifiers_from_env()):
                context.log.warning(f"alert not sent: {error}")
            notes.append(f"{district}: alerted, last delivery {age_hours:.1f} h ago")
        context.update_cursor(json.dumps(seen, sort_keys=True))
        return dg.SkipReason("; ".join(notes))

    return [alert_on_failure, alert_on_missed_delivery]
