"""The nightly job over every asset, and its schedule at the district's local time."""

import os
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import dagster as dg

from naviance_pipeline.resources import PipelineResource
from naviance_pipeline.retention import purge
from naviance_pipeline.settings import Settings, parse_clock

if TYPE_CHECKING:  # private Dagster types, for annotations only
    from dagster._core.definitions.partitions.partitioned_schedule import (
        UnresolvedPartitionedAssetScheduleDefinition,
    )
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )


NIGHTLY_JOB = "nightly_job"
RETENTION_JOB = "retention_job"


def build_nightly_job() -> "UnresolvedAssetJobDefinition":
    return dg.define_asset_job(
        NIGHTLY_JOB,
        selection=dg.AssetSelection.all(),
        description="sis_extract → orgs → users → demographics → manifest → package → delivery",
    )


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
        today = datetime.now(ZoneInfo(settings.timezone)).date()
        result = purge(
            pipeline.layout, keep_days=config.keep_days, today=today, dry_run=config.dry_run
        )
        context.log.info(
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

    keep = int(os.environ.get("NAVIANCE_RETENTION_DAYS") or 30)
    schedule = dg.ScheduleDefinition(
        name="retention_schedule",
        job=retention_job,
        cron_schedule="30 4 * * *",
        execution_timezone=settings.timezone,
        run_config=dg.RunConfig(ops={"purge_old_partitions": RetentionConfig(keep_days=keep)}),
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Every day at 04:30 {settings.timezone}: keep {keep} days of data.",
    )
    return retention_job, schedule
