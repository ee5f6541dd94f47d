"""Sensors: alerts from Dagster (a failed run or guards that blocked delivery, a missed
delivery) and the SIS export watched (``watch_sis_export``: new versions, runs on arrival,
stale-export alerts).

Both sensors run in the daemon (``dagster dev`` starts one) and send through apprise to the
channels of ``NAVIANCE_ALERT_URLS`` (``alerts.py``); with none configured they do nothing.
``naviance-pipeline run`` has no daemon, so it calls ``failure_alert`` itself.
Alerts carry counts, rule codes and a link to the run — never PII.
"""

import json
import time
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import dagster as dg

from naviance_pipeline.defs.jobs import host_tags
from naviance_pipeline.defs.partitions import DISTRICT_DIM, district_key, split_key
from naviance_pipeline.defs.resources import PipelineResource
from naviance_pipeline.operations.alerts import (
    Alert,
    alert_from_findings,
    notifiers_from_env,
    send_all,
)
from naviance_pipeline.operations.districts import DistrictsConfig
from naviance_pipeline.operations.settings import Settings
from naviance_pipeline.operations.storage import FINDING_STAGES, GUARDS_STAGE, DataLayout, read_json
from naviance_pipeline.sources.freshness import (
    Freshness,
    age_text,
    claim_alert,
    observe,
    stale_finding,
    state_path,
)
from naviance_pipeline.sources.snapshot import (
    SourceConfigError,
    SourceUnavailable,
    sftp_errors,
    storage_options,
)

if TYPE_CHECKING:  # private Dagster types, for annotations only
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

# Dagster's tag for an observation's data version (dagster._core.definitions.data_version).
DATA_VERSION_TAG = "dagster/data_version"


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


# ---- the SIS export: an external source, watched ------------------------------------------------

EXPORT = dg.AssetKey("sis_export")
EXPORT_SENSOR = "watch_sis_export"
ARRIVAL_TRIGGERS = ("arrival", "both")


def export_spec(partitions_def: dg.MultiPartitionsDefinition | None) -> dg.AssetSpec:
    """The district's SIS export as Dagster sees it: an external asset upstream of
    ``sis_extract``, observed by ``watch_sis_export`` (never materialized by this code). With
    many districts, one partition per district (the ``district`` dimension of the runs)."""
    return dg.AssetSpec(
        EXPORT,
        group_name="extract",
        kinds={"csv", "zip"},
        partitions_def=(
            dg.StaticPartitionsDefinition(
                partitions_def.get_partitions_def_for_dimension(DISTRICT_DIM).get_partition_keys()
            )
            if partitions_def is not None
            else None
        ),
        description="The SIS export as the district's export job leaves it (a file or folder, "
        "local or at an fsspec URL such as sftp://). Observed by the sensor watch_sis_export: "
        "its data version is its content hash, hashed again only when a listing shows other "
        "sizes or modification times; its observations carry the export's age. sis_extract "
        "copies it for each date.",
    )


def export_dep(partitions_def: dg.MultiPartitionsDefinition | None) -> dg.AssetDep:
    """``sis_extract``'s dependency on the export: with many districts, a date × district
    partition reads the district's export."""
    if partitions_def is None:
        return dg.AssetDep(EXPORT)
    return dg.AssetDep(
        EXPORT,
        partition_mapping=dg.MultiToSingleDimensionPartitionMapping(
            partition_dimension_name=DISTRICT_DIM
        ),
    )


def stale_alert(district: str, day: str | None, seen: Freshness) -> Alert:
    """The stale-export alert: the district and the ages, nothing of the export itself."""
    return Alert(
        kind="export_stale",
        district=district,
        partition=day,
        summary=f"the SIS export of {district} looks stale: {age_text(seen)}",
        counts={
            "days_unchanged": int(seen.unchanged_days),
            **({"hours_since_modified": int(seen.age_hours)} if seen.age_hours is not None else {}),
        },
        run_url=None,
    )


def alert_if_stale(state_file, district: str, day: str, seen: Freshness, warn) -> bool:
    """Send the stale alert once per export version and date (``sis_extract`` and the sensor
    share the claim in the district's state file). True when sent now."""
    try:
        notifiers = notifiers_from_env()
    except ValueError as exc:
        warn(f"stale-export alert not sent: {exc}")
        return False
    if not notifiers or not claim_alert(state_file, seen, day):
        return False
    for error in send_all(stale_alert(district, day, seen), notifiers):
        warn(f"alert not sent: {error}")
    return True


def _local_day(timezone: str) -> str:
    return datetime.now(ZoneInfo(timezone)).date().isoformat()


def build_export_sensor(
    job: "UnresolvedAssetJobDefinition",
    settings: Settings,
    districts: DistrictsConfig | None = None,
) -> dg.SensorDefinition:
    """``watch_sis_export``: every ``NAVIANCE_EXPORT_WATCH_SECONDS``, for each district whose
    source is an export, a cheap look (sizes, times) and the content hash when it changed. A
    new version is recorded as an observation of ``sis_export`` (data version = content hash),
    and, for a district whose ``run_trigger`` is ``arrival`` or ``both``, requests the run of
    its local date's partition once per date however often the export changes (the cursor
    keeps the date requested; the run key ``arrival:<district>:<date>`` makes the daemon refuse
    a second one too). A stale export gets its alert (once a day per version)."""
    if districts is None:
        scopes = [(settings.district, settings.timezone, settings.run_trigger, None)]
    else:
        scopes = [(d.id, d.timezone, d.run_trigger, d) for d in districts.districts]
    arrival = sorted(i for i, _, trigger, _ in scopes if trigger in ARRIVAL_TRIGGERS)

    @dg.sensor(
        name=EXPORT_SENSOR,
        job=job,
        minimum_interval_seconds=settings.export_watch_seconds,
        # It starts runs and sends alerts: switched on by an operator (README).
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Watches the SIS export: records each new version as an observation of "
        "sis_export (content hash, age) and alerts when it is stale; "
        + (
            f"starts the date's run when a new export lands for {', '.join(arrival)}."
            if arrival
            else "starts no run (NAVIANCE_RUN_TRIGGER is schedule)."
        ),
    )
    def watch_sis_export(context: dg.SensorEvaluationContext, pipeline: PipelineResource):
        cursor = json.loads(context.cursor) if context.cursor else {}
        requests, events, notes = [], [], []
        for district, timezone, trigger, entry in scopes:
            scoped = pipeline.for_district(district) if entry is not None else pipeline
            if not scoped.watches_export():
                notes.append(f"{district}: the source is not an export file")
                continue
            config = scoped.source_config()
            url = scoped.source_url
            state_file = state_path(scoped.layout.base)
            try:
                remote = storage_options(config, url)
                with sftp_errors(url):
                    seen = observe(url, state_file, remote)
            except FileNotFoundError:
                notes.append(f"{district}: no export at the source URL")
                continue
            except (SourceConfigError, SourceUnavailable, OSError) as exc:
                context.log.warning(f"{district}: the export cannot be looked at: {exc}")
                notes.append(f"{district}: the export cannot be looked at")
                continue
            day = _local_day(timezone)
            seen_before = cursor.get(district) or {}
            if seen_before.get("version") != seen.version:
                events.append(
                    dg.AssetObservation(
                        asset_key=EXPORT,
                        partition=district if entry is not None else None,
                        tags={DATA_VERSION_TAG: seen.version},
                        metadata=_export_metadata(seen),
                    )
                )
                notes.append(f"{district}: new export {seen.version[:12]}")
                ran = seen_before.get("requested")
                if trigger in ARRIVAL_TRIGGERS and ran != day:
                    ran = day
                    requests.append(
                        dg.RunRequest(
                            run_key=f"arrival:{district}:{day}",
                            partition_key=district_key(day, district) if entry else day,
                            tags=host_tags(entry) if entry is not None else {},
                        )
                    )
                elif trigger in ARRIVAL_TRIGGERS:
                    notes.append(f"{district}: the run of {day} was already requested")
                cursor[district] = {"version": seen.version, "requested": ran}
            if stale_finding(seen, scoped.freshness_limits()) is not None:
                if alert_if_stale(state_file, district, day, seen, context.log.warning):
                    notes.append(f"{district}: stale, alerted ({age_text(seen)})")
                else:
                    notes.append(f"{district}: stale ({age_text(seen)})")
        return dg.SensorResult(
            run_requests=requests,
            asset_events=events,
            cursor=json.dumps(cursor, sort_keys=True),
            skip_reason=None if requests else "; ".join(notes) or "nothing to watch",
        )

    return watch_sis_export


def _export_metadata(seen: Freshness) -> dict:
    summary = seen.summary()
    return {
        "version": summary["version"],
        "bytes": summary["bytes"],
        "unchanged_days": summary["unchanged_days"],
        **({"age_hours": summary["age_hours"]} if summary["age_hours"] is not None else {}),
        **({"modified": dg.MetadataValue.timestamp(seen.modified)} if seen.modified else {}),
    }
