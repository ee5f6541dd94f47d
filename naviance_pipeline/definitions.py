"""The code location: every asset, check, job, schedule and resource, built from settings.

One district by default; with ``NAVIANCE_DISTRICTS_FILE`` set, many districts from that file
(date × district partitions, one schedule per district). Each run executes its seven steps in
order in one process; a deployment runs many in parallel on Celery run workers
(defs/run_workers.py, DEPLOYMENT.md).
"""

from __future__ import annotations

import os

import dagster as dg

from naviance_pipeline.defs.assets.delivery import build_delivery_asset
from naviance_pipeline.defs.assets.extract import build_extract_asset
from naviance_pipeline.defs.assets.oneroster import build_oneroster_assets
from naviance_pipeline.defs.io_manager import (
    SNAPSHOT_IO_MANAGER,
    ParquetIOManager,
    SnapshotIOManager,
)
from naviance_pipeline.defs.jobs import (
    build_district_schedule,
    build_nightly_job,
    build_nightly_schedule,
    build_retention,
)
from naviance_pipeline.defs.partitions import daily_partitions, district_partitions
from naviance_pipeline.defs.resources import (
    SECRET_ENV,
    SOURCE_KNOWN_HOSTS,
    SOURCE_SECRET,
    DeliveryResource,
    PipelineResource,
    secret,
    with_deployment_defaults,
)
from naviance_pipeline.defs.sensors import build_export_sensor, build_sensors, export_spec
from naviance_pipeline.operations.districts import DistrictsConfig, load_districts
from naviance_pipeline.operations.settings import Settings

# The pipeline resource's district outside any partition (alerts) in many-district mode.
ALL_DISTRICTS = "all-districts"


def build_resources(settings: Settings, districts: DistrictsConfig | None = None) -> dict:
    if districts is not None:
        # Per-district values come from the file at run time (PipelineResource.for_district).
        pipeline = with_deployment_defaults(
            PipelineResource,
            sample_path=settings.sample_source,
            data_root=districts.data_root,
            district=ALL_DISTRICTS,
            districts_file=settings.districts_file,
            max_source_bytes=settings.max_source_bytes,
        )()
        delivery = with_deployment_defaults(
            DeliveryResource,
            target_url="",
            districts_file=settings.districts_file,
            target_name=settings.delivery_name,
            lock_timeout_seconds=settings.delivery_lock_timeout,
            uploads_per_host=settings.uploads_per_host,
            locks_url=settings.locks_url,
        )()
    else:
        pipeline = with_deployment_defaults(
            PipelineResource,
            source_url=settings.source_url,
            source_kind=settings.source_kind,
            source_mapping=settings.source_mapping,
            source_password=secret(SOURCE_SECRET),
            source_sftp_known_hosts=secret(SOURCE_KNOWN_HOSTS),
            source_sftp_known_hosts_path=settings.source_sftp_known_hosts_path,
            sample_path=settings.sample_source,
            data_root=settings.data_root,
            district=settings.district,
            source_system_name=settings.source_system_name,
            include_staff=settings.include_staff,
            rollover_day=settings.rollover_day,
            max_source_bytes=settings.max_source_bytes,
            export_unchanged_days=settings.export_unchanged_days,
            export_max_age_hours=settings.export_max_age_hours,
            export_stale_blocks=settings.export_stale_blocks,
        )()
        delivery = with_deployment_defaults(
            DeliveryResource,
            target_url=settings.delivery_target,
            target_name=settings.delivery_name,
            lock_timeout_seconds=settings.delivery_lock_timeout,
            uploads_per_host=settings.uploads_per_host,
            locks_url=settings.locks_url,
            **{field: secret(field) for field in SECRET_ENV},
        )()
    return {
        "pipeline": pipeline,
        "delivery": delivery,
        "io_manager": ParquetIOManager(pipeline=pipeline),
        SNAPSHOT_IO_MANAGER: SnapshotIOManager(pipeline=pipeline),
    }


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    districts = load_districts(settings.districts_file) if settings.districts_file else None
    # A district whose run_trigger is "arrival" alone has no schedule (watch_sis_export).
    if districts is not None:
        partitions = district_partitions(settings, districts)
        job = build_nightly_job(partitions, districts)
        nightly = [
            build_district_schedule(job, d)
            for d in districts.districts
            if d.run_trigger != "arrival"
        ]
    else:
        partitions = daily_partitions(settings)
        job = build_nightly_job()
        nightly = (
            [build_nightly_schedule(job, settings)] if settings.run_trigger != "arrival" else []
        )
    retention_job, retention_schedule = build_retention(settings)
    resources = build_resources(settings, districts)
    layout = resources["pipeline"].layout
    return dg.Definitions(
        assets=[
            export_spec(partitions if districts is not None else None),
            build_extract_asset(partitions),
            *build_oneroster_assets(partitions),
            build_delivery_asset(partitions),
        ],
        jobs=[job, retention_job],
        schedules=[*nightly, retention_schedule],
        sensors=[
            *build_sensors(job, lambda: layout, partitions if districts is not None else None),
            build_export_sensor(job, settings, districts),
        ],
        resources=resources,
        # The graph is a straight line: a run executes its steps in order in its own process;
        # many runs go in parallel through the run launcher (DEPLOYMENT.md).
        executor=dg.in_process_executor,
    )


# Every process that loads this code location (the run workers of `dagster dev`, the daemon's,
# Celery's) writes student data and event logs that name it: owner-only, whatever its umask.
os.umask(0o077)
defs = build_definitions()
