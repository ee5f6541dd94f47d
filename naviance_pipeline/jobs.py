"""The nightly job over every asset, and its schedule at the district's local time."""

from __future__ import annotations

import dagster as dg

from naviance_pipeline.settings import Settings, parse_clock

NIGHTLY_JOB = "nightly_job"


def build_nightly_job() -> dg.UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        NIGHTLY_JOB,
        selection=dg.AssetSelection.all(),
        description="sis_extract → orgs → users → demographics → manifest → package → delivery",
    )


def build_nightly_schedule(
    job: dg.UnresolvedAssetJobDefinition, settings: Settings
) -> dg.UnresolvedPartitionedAssetScheduleDefinition:
    at = parse_clock(settings.schedule_time)
    return dg.build_schedule_from_partitioned_job(
        job,
        name="nightly_schedule",
        hour_of_day=at.hour,
        minute_of_hour=at.minute,
        description=f"Every night at {settings.schedule_time} {settings.timezone}: builds and "
        "delivers the package for that date.",
    )
