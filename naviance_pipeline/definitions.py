"""The code location: every asset, check, job, schedule and resource, built from settings."""

from __future__ import annotations

import dagster as dg

from naviance_pipeline.assets.delivery import build_delivery_asset
from naviance_pipeline.assets.extract import build_extract_asset
from naviance_pipeline.assets.oneroster import build_oneroster_assets
from naviance_pipeline.io_manager import ParquetIOManager
from naviance_pipeline.jobs import build_nightly_job, build_nightly_schedule, build_retention
from naviance_pipeline.partitions import daily_partitions
from naviance_pipeline.resources import SECRET_ENV, DeliveryResource, PipelineResource, secret
from naviance_pipeline.sensors import build_sensors
from naviance_pipeline.settings import Settings
from naviance_pipeline.storage import DataLayout


def build_resources(settings: Settings) -> dict:
    pipeline = PipelineResource(
        source_url=settings.source_url,
        sample_path=settings.sample_source,
        data_root=settings.data_root,
        district=settings.district,
        source_system_name=settings.source_system_name,
        include_staff=settings.include_staff,
        rollover_day=settings.rollover_day,
    )
    return {
        "pipeline": pipeline,
        "delivery": DeliveryResource(
            target_url=settings.delivery_target,
            **{field: secret(field) for field in SECRET_ENV},
        ),
        "io_manager": ParquetIOManager(pipeline=pipeline),
    }


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    partitions = daily_partitions(settings)
    job = build_nightly_job()
    retention_job, retention_schedule = build_retention(settings)
    layout = DataLayout(settings.data_root, settings.district)
    return dg.Definitions(
        assets=[
            build_extract_asset(partitions),
            *build_oneroster_assets(partitions),
            build_delivery_asset(partitions),
        ],
        jobs=[job, retention_job],
        schedules=[build_nightly_schedule(job, settings), retention_schedule],
        sensors=build_sensors(job, lambda: layout),
        resources=build_resources(settings),
        executor=dg.in_process_executor,
    )


defs = build_definitions()
