"""Partitions: dates in the district's timezone, or date × district for many districts.

One district: daily partitions in its timezone; ``end_offset=1`` makes today's date a
partition, so the nightly run at 02:00 builds the package as of the day it is sent (on
2026-11-30 a grade 09 student has class year 2030, spec section 8).

Many districts (a districts file): ``MultiPartitionsDefinition`` of a UTC ``date`` dimension
and a static ``district`` dimension whose keys are the file's ids, so adding or retiring a
district is an edit of the file (the code location reloads). Each district's schedule picks
the date in its own timezone; ``end_offset=2`` keeps tomorrow-in-UTC a partition for districts
east of UTC, whose local date is ahead.
"""

from __future__ import annotations

import dagster as dg

from naviance_pipeline.operations.districts import DistrictsConfig
from naviance_pipeline.operations.settings import Settings

DATE_DIM = "date"
DISTRICT_DIM = "district"


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(
        start_date=settings.partitions_start, timezone=settings.timezone, end_offset=1
    )


def district_partitions(
    settings: Settings, districts: DistrictsConfig
) -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition(
        {
            DATE_DIM: dg.DailyPartitionsDefinition(
                start_date=districts.partitions_start or settings.partitions_start,
                timezone="UTC",
                end_offset=2,
            ),
            DISTRICT_DIM: dg.StaticPartitionsDefinition(districts.ids),
        }
    )


def district_key(day: str, district: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({DATE_DIM: day, DISTRICT_DIM: district})


def split_key(key: str) -> tuple[str, str | None]:
    """(date, district) of a partition key: a plain date has no district (one-district mode).

    Works on the key's string form (``2026-11-24|d1``, dimensions in name order) so run tags
    and IO-manager paths can be read without the partitions definition."""
    if isinstance(key, dg.MultiPartitionKey):
        dims = key.keys_by_dimension
        return dims[DATE_DIM], dims[DISTRICT_DIM]
    if "|" in key:
        parts = dict(zip(sorted((DATE_DIM, DISTRICT_DIM)), key.split("|"), strict=True))
        return parts[DATE_DIM], parts[DISTRICT_DIM]
    return key, None
