"""Daily partitions in the district's timezone: the partition date is the as-of date.

``end_offset=1`` makes today's date a partition, so the nightly run at 02:00 builds the package
as of the day it is sent (on 2026-11-30 a grade 09 student has class year 2030, spec section 8).
"""

from __future__ import annotations

import dagster as dg

from naviance_pipeline.settings import Settings


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(
        start_date=settings.partitions_start, timezone=settings.timezone, end_offset=1
    )
