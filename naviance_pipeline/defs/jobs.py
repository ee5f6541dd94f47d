"""The nightly job over every asset, and its schedule at the district's local time.

Many districts (a districts file): one schedule per district at its own local time, each
requesting the (local date, district) partition, and every run of a district tagged with the
SFTP host it uploads to (``naviance/sftp-host``: a label to filter runs by in the UI; what waits
for a host is the upload alone, delivery/slots.py).
"""

from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import dagster as dg

from naviance_pipeline.defs.partitions import district_key, split_key
from naviance_pipeline.defs.resources import PipelineResource
from naviance_pipeline.delivery.target import target_from_url
from naviance_pipeline.operations.districts import District, DistrictsConfig, load_districts
from naviance_pipeline.operations.retention import purge
from naviance_pipeline.operations.settings import Settings, parse_clock, retention_days

if TYPE_CHECKING:  # private Dagster types, for annotations only
    from dagster._core.definitions.partitions.partitioned_schedule import (
        UnresolvedPartitionedAssetScheduleDefinition,
    )
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


NIGHTLY_JOB = "nightly_job"
# The nightly job's assets in the order they run (the tests and the benchmark read it).
STAGES = (
    "sis_extract",
    "users",
    "orgs",
    "demographics",
    "manifest",
    "naviance_package",
    "naviance_delivery",
)
RETENTION_JOB = "retention_job"
SFTP_HOST_TAG = "naviance/sftp-host"


def host_tags(district: District) -> dict[str, str]:
    """The label of a district's runs: the host its target uploads to (``upload_host``,
    delivery/targets/; none for a local folder)."""
    host = target_from_url(district.delivery_target).upload_host
    return {SFTP_HOST_TAG: host} if host else {}


def build_nightly_job(
    partitions: dg.MultiPartitionsDefinition | None = None,
    districts: DistrictsConfig | None = None,
) -> "UnresolvedAssetJobDefinition":
    """The job over every asset; with districts, every run launched for a partition (the
    schedules, a job backfill, the Launchpad) carries its district's SFTP host tag."""
    config = None
    if districts is not None and partitions is not None:
        config = dg.PartitionedConfig(
            partitions_def=partitions,
            run_config_for_partition_key_fn=lambda _key: {},
            tags_for_partition_key_fn=lambda key: host_tags(districts.get(split_key(key)[1])),
        )
    return dg.define_asset_job(
        NIGHTLY_JOB,
        selection=dg.AssetSelection.all(),
        config=config,
        description=" → ".join(STAGES),
    )


def schedule_name(district_id: str) -> str:
    # Schedule names allow only [A-Za-z0-9_]; ids are slugs without underscores, so unique.
    return f"nightly_{district_id.replace('-', '_')}"


def build_district_schedule(
    job: "UnresolvedAssetJobDefinition", district: District
) -> dg.ScheduleDefinition:
    """Every night at the district's local time, the partition (its local date, its id)."""
    at = parse_clock(district.schedule_time)
    zone = ZoneInfo(district.timezone)

    @dg.schedule(
        name=schedule_name(district.id),
        job=job,
        cron_schedule=f"{at.minute} {at.hour} * * *",
        execution_timezone=district.timezone,
        description=f"Every night at {district.schedule_time} {district.timezone}: builds and "
        f"delivers the package of district {district.id} for its local date.",
    )
    def _nightly(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        day = context.scheduled_execution_time.astimezone(zone).date().isoformat()
        return dg.RunRequest(
            run_key=f"{district.id}:{day}",
            partition_key=district_key(day, district.id),
            tags=host_tags(district),
        )

    return _nightly


def build_nightly_schedule(
    job: "UnresolvedAssetJobDefinition", settings: Settings
) -> "UnresolvedPartitionedAssetScheduleDefinition":
    at = parse_clock(settings.schedule_time)
    return dg.build_schedule_from_partitioned_job(
        job,
        name="nightly_schedule",
        hour_of_day=at.hour,
        minute_of_hour=at.minute,
        description=f"Every night at {settings.schedule_time} {settings.timezone}: builds and "
        "delivers the package for that date.",
    )


class RetentionConfig(dg.Config):
    keep_days: int = 30
    dry_run: bool = False


def build_retention(settings: Settings) -> tuple[dg.JobDefinition, dg.ScheduleDefinition]:
    """The district's data-retention control: a daily job that purges old partitions."""

    @dg.op(
        description="Deletes raw snapshots, frames, findings, reports and packages of dates "
        "older than keep_days; keeps every receipt and the last delivered package of each "
        "target."
    )
    def purge_old_partitions(
        context: dg.OpExecutionContext, config: RetentionConfig, pipeline: PipelineResource
    ) -> None:
        # One district, or each district of the districts file on its own local date.
        if pipeline.districts_file:
            zones = {d.id: d.timezone for d in load_districts(pipeline.districts_file).districts}
            targets = [(pipeline.for_district(i), zone) for i, zone in zones.items()]
        else:
            targets = [(pipeline, settings.timezone)]
        for district_pipeline, zone in targets:
            today = datetime.now(ZoneInfo(zone)).date()
            result = purge(
                district_pipeline.layout,
                keep_days=config.keep_days,
                today=today,
                dry_run=config.dry_run,
            )
            context.log.info(
                f"{district_pipeline.district}: "
                f"{'would remove' if config.dry_run else 'removed'} {result['files']} file(s), "
                f"{result['bytes']} bytes older than {result['cutoff']}"
            )

    @dg.job(
        name=RETENTION_JOB,
        description="Data retention: purge partitions older than "
        "keep_days (default from NAVIANCE_RETENTION_DAYS, 30).",
    )
    def retention_job():
        purge_old_partitions()

    keep = retention_days()
    schedule = dg.ScheduleDefinition(
        name="retention_schedule",
        job=retention_job,
        cron_schedule="30 4 * * *",
        execution_timezone=settings.timezone,
        run_config=dg.RunConfig(ops={"purge_old_partitions": RetentionConfig(keep_days=keep)}),
        # It deletes data: stopped until an operator switches it on (README, Schedules).
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description=f"Every day at 04:30 {settings.timezone}: keep {keep} days of data "
        "(deletes older snapshots, frames, findings, reports and packages). Stopped until "
        "switched on.",
    )
    return retention_job, schedule
