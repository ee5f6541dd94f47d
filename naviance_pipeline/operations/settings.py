"""Deployment settings read from the environment, with the embedded defaults.

With nothing set, the pipeline runs on the bundled synthetic district, stores under
``./.naviance/data`` and delivers to ``./.naviance/outbox`` (docs/architecture.md, Decisions).
The README's configuration table documents every variable here. Secrets are not settings: they
are read from their own environment variables at delivery time (see ``resources.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from naviance_pipeline.oneroster.options import DEFAULT_MAX_SOURCE_BYTES
from naviance_pipeline.sources.kinds import DEFAULT_KIND, registry

SAMPLE_SEED = 20261130
SAMPLE_STUDENTS = 1200
SAMPLE_SCHOOLS = 4


RETENTION_DAYS = 30  # NAVIANCE_RETENTION_DAYS: days of data the retention job keeps


def retention_days() -> int:
    return int(os.environ.get("NAVIANCE_RETENTION_DAYS") or RETENTION_DAYS)


def default_partitions_start(timezone: str, today: date | None = None) -> str:
    """The first partition when NAVIANCE_PARTITIONS_START is not set: the retention window
    before today, so the partition bar shows the dates that can still be rebuilt (older
    snapshots are purged), not hundreds of dates "missing" forever."""
    today = today or datetime.now(ZoneInfo(timezone)).date()
    return (today - timedelta(days=retention_days())).isoformat()


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a yes/no value: {text!r}")


def parse_byte_count(text: str) -> int:
    """``5000000000`` or ``5_000_000_000`` -> 5000000000: a positive whole number of bytes."""
    value = int(text.strip().replace("_", ""))
    if value <= 0:
        raise ValueError(f"not a positive number of bytes: {text!r}")
    return value


def max_source_bytes_from_env() -> int:
    """NAVIANCE_MAX_SOURCE_BYTES, else the default (oneroster/options.py says how it is
    derived); ValueError naming the variable when it is not a positive number of bytes."""
    text = _env("NAVIANCE_MAX_SOURCE_BYTES", str(DEFAULT_MAX_SOURCE_BYTES))
    try:
        return parse_byte_count(text)
    except ValueError as exc:
        raise ValueError(
            f"NAVIANCE_MAX_SOURCE_BYTES must be a positive number of bytes, not {text!r}"
        ) from exc


def parse_month_day(text: str) -> tuple[int, int]:
    """``07-15`` -> (7, 15); validated against a leap year so 02-29 is allowed."""
    month, day = (int(part) for part in text.strip().split("-"))
    date(2024, month, day)
    return month, day


def parse_clock(text: str) -> time:
    hour, minute = (int(part) for part in text.strip().split(":"))
    return time(hour, minute)


def _default_system(kind: str, mapping: str) -> str:
    """``source.systemName`` when none is set, as the kind declares it (``sources/kinds/``);
    an unknown kind is refused by the snapshot, naming the known ones."""
    declared = registry().get(kind)
    return declared.system_name(mapping) if declared else "SIS"


@dataclass(frozen=True)
class Settings:
    home: str
    source_url: str  # blank: the bundled sample district
    data_root: str
    delivery_target: str
    district: str
    source_system_name: str
    timezone: str
    schedule_time: str
    include_staff: bool
    rollover_day: str
    partitions_start: str
    # Many districts: a districts file (districts.py) replaces the one-district settings above
    # except home, and partitions become date × district. Blank: one district, as above.
    districts_file: str = ""
    # "in_process" (one machine) or "celery" (steps on Celery workers, DEPLOYMENT.md).
    executor: str = "in_process"
    # What the source is (a kind of sources/kinds/: oneroster, sis-csv, sql), and the mapping
    # of a mapped kind (a preset name or a YAML path; blank: the powerschool preset).
    source_kind: str = DEFAULT_KIND
    source_mapping: str = ""
    # The delivery target's stable name (its history), and how long a delivery waits for
    # another delivery to the same target.
    delivery_name: str = "naviance"
    delivery_lock_timeout: float = 3600.0
    # An sftp:// source's pinned known_hosts file (or the text in the secret
    # NAVIANCE_SOURCE_SFTP_KNOWN_HOSTS, resources.py).
    source_sftp_known_hosts_path: str = ""
    # SRC-TOO-LARGE: the most the source's needed entries may hold, expanded.
    max_source_bytes: int = DEFAULT_MAX_SOURCE_BYTES

    @classmethod
    def from_env(cls) -> Settings:
        home = str(Path(_env("NAVIANCE_HOME", ".naviance")).resolve())
        kind = _env("NAVIANCE_SOURCE_KIND", DEFAULT_KIND)
        mapping = _env("NAVIANCE_SOURCE_MAPPING", "")
        timezone = _env("NAVIANCE_TIMEZONE", "America/New_York")
        return cls(
            home=home,
            source_url=_env("NAVIANCE_SOURCE_URL", ""),
            data_root=_env("NAVIANCE_DATA_ROOT", str(Path(home, "data"))),
            delivery_target=_env("NAVIANCE_DELIVERY_TARGET", str(Path(home, "outbox"))),
            district=_env("NAVIANCE_DISTRICT", "sample-district"),
            source_system_name=_env("NAVIANCE_SOURCE_SYSTEM", _default_system(kind, mapping)),
            timezone=timezone,
            schedule_time=_env("NAVIANCE_SCHEDULE_TIME", "02:00"),
            include_staff=parse_bool(_env("NAVIANCE_INCLUDE_STAFF", "false")),
            rollover_day=_env("NAVIANCE_ROLLOVER_DAY", "07-15"),
            partitions_start=_env("NAVIANCE_PARTITIONS_START", "")
            or default_partitions_start(timezone),
            districts_file=_env("NAVIANCE_DISTRICTS_FILE", ""),
            executor=_env("NAVIANCE_EXECUTOR", "in_process"),
            source_kind=kind,
            source_mapping=mapping,
            delivery_name=_env("NAVIANCE_DELIVERY_NAME", "naviance"),
            delivery_lock_timeout=float(_env("NAVIANCE_DELIVERY_LOCK_TIMEOUT", "3600")),
            source_sftp_known_hosts_path=_env("NAVIANCE_SOURCE_SFTP_KNOWN_HOSTS_PATH", ""),
            max_source_bytes=max_source_bytes_from_env(),
        )

    @classmethod
    def in_folder(cls, home: str | Path, source_url: str | Path, **overrides) -> Settings:
        """Everything under one folder (tests, benchmarks): data root ``home/data`` and a
        local outbox ``home/outbox``; other settings at their defaults unless overridden."""
        home = Path(home)
        values = {
            "home": str(home),
            "source_url": str(source_url),
            "data_root": str(home / "data"),
            "delivery_target": str(home / "outbox"),
            "district": "test-district",
            "source_system_name": "ClassLink",
            "timezone": "America/New_York",
            "schedule_time": "02:00",
            "include_staff": False,
            "rollover_day": "07-15",
            "partitions_start": "2026-01-01",
        }
        return cls(
            **{**values, **{k: str(v) if isinstance(v, Path) else v for k, v in overrides.items()}}
        )

    @property
    def sample_source(self) -> str:
        return str(Path(self.home, "sample", "sample-district.zip"))
