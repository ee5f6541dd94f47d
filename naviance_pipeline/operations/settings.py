"""Deployment settings: ``NAVIANCE_*`` environment variables and a ``.env`` file, declared once.

Every variable is one field of ``Settings`` below, with its default and what it means; the
README's Configuration table and the command line's ``--help`` are generated from them
(``python -m naviance_pipeline.operations.settings --markdown``). With nothing set, the
pipeline runs on the bundled synthetic district, stores under ``./.naviance/data`` and delivers
to ``./.naviance/outbox`` (docs/architecture.md, Decisions).

``Settings.from_env()`` first reads the ``.env`` file (``NAVIANCE_ENV_FILE``, else ``.env`` in
the working directory) into the environment without replacing what is already set, so the
environment wins and secrets, alert channels and settings all come from the same place, then
validates every field (pydantic-settings). A bad value is refused there with one line naming
the variable (``SettingsError``), never echoing the value of a secret. Secrets are not
settings: they are read from their own variables at run time (``secret_variables()``).
"""

from __future__ import annotations

import os
import re
import sys
import textwrap
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from dotenv import dotenv_values
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from naviance_pipeline.oneroster.options import DEFAULT_MAX_SOURCE_BYTES
from naviance_pipeline.sources import kinds

SAMPLE_SEED = 20261130
SAMPLE_STUDENTS = 1200
SAMPLE_SCHOOLS = 4
PREFIX = "NAVIANCE_"
ENV_FILE_VARIABLE = "NAVIANCE_ENV_FILE"
RETENTION_DAYS = 30
# Retired: steps always run in the run's own process (the Celery run launcher spreads runs).
RETIRED_EXECUTOR = "NAVIANCE_EXECUTOR"


class SettingsError(ValueError):
    """A setting has a value the pipeline cannot use: one line naming the variable(s)."""


def parse_byte_count(text: str) -> int:
    """``5000000000`` or ``5_000_000_000`` -> 5000000000: a positive whole number of bytes."""
    value = int(text.strip().replace("_", ""))
    if value <= 0:
        raise ValueError(f"not a positive number of bytes: {text!r}")
    return value


def parse_month_day(text: str) -> tuple[int, int]:
    """``07-15`` -> (7, 15); validated against a leap year so 02-29 is allowed."""
    month, day = (int(part) for part in text.strip().split("-"))
    date(2024, month, day)
    return month, day


def parse_clock(text: str) -> time:
    hour, minute = (int(part) for part in text.strip().split(":"))
    return time(hour, minute)


def known_timezone(value: str) -> str:
    """``value`` when it names a timezone of the tz database; ValueError otherwise."""
    try:
        if not value.startswith(("/", ".")):
            ZoneInfo(value)
            return value
    except (ValueError, OSError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        pass
    raise ValueError(f'"{value}" is not a known timezone')


def clock_text(value: str) -> str:
    """``value`` when it is a 24-hour HH:MM time of day; ValueError otherwise."""
    if not re.fullmatch(r"\d{2}:\d{2}", value.strip()):
        raise ValueError(f'"{value}" must be HH:MM (24-hour)')
    try:
        parse_clock(value)
    except ValueError:
        raise ValueError(f'"{value}" is not a time of day') from None
    return value.strip()


def month_day_text(value: str) -> str:
    try:
        parse_month_day(value)
    except ValueError:
        raise ValueError(f"{value!r} must be MM-DD") from None
    return value.strip()


def source_kind_name(value: str) -> str:
    if value not in kinds.names():
        raise ValueError(f"{value!r} must be one of {', '.join(kinds.names())}")
    return value


def delivery_target_url(value: str) -> str:
    """A URL a delivery target reads (``delivery/targets/``; blank: the default outbox): its
    messages name the known schemes and never echo a password given in the URL."""
    from naviance_pipeline.delivery.target import target_from_url

    if value.strip():
        target_from_url(value.strip())
    return value.strip()


def locks_url_text(value: str) -> str:
    """Blank (file locks) or a ``postgresql://`` URL without a password (delivery/lock.py)."""
    from naviance_pipeline.delivery.lock import check_locks_url

    return check_locks_url(value)


def iso_date_text(value: str) -> str:
    """A YYYY-MM-DD date, or blank."""
    try:
        return date.fromisoformat(value.strip()).isoformat() if value.strip() else ""
    except ValueError:
        raise ValueError(f"{value!r} is not a YYYY-MM-DD date") from None


# Checks of the text settings, by field: each returns the value to keep or raises ValueError.
CHECKS = {
    "timezone": known_timezone,
    "schedule_time": clock_text,
    "rollover_day": month_day_text,
    "source_kind": source_kind_name,
    "delivery_target": delivery_target_url,
    "partitions_start": iso_date_text,
    "locks_url": locks_url_text,
}


def default_partitions_start(timezone: str, days: int, today: date | None = None) -> str:
    """The first partition when NAVIANCE_PARTITIONS_START is not set: the retention window
    before today, so the partition bar shows the dates that can still be rebuilt (older
    snapshots are purged), not hundreds of dates "missing" forever."""
    today = today or datetime.now(ZoneInfo(timezone)).date()
    return (today - timedelta(days=days)).isoformat()


def _setting(default, meaning: str, shown: str | None = None, **more):
    """A field: its default, its meaning, and how the default reads when it is derived."""
    return Field(default, description=meaning, json_schema_extra={"shown": shown}, **more)


class Settings(BaseModel):
    """One deployment's settings; each field is ``NAVIANCE_<FIELD>`` unless its alias says
    otherwise. ``from_env()`` reads them; ``in_folder()`` builds them for tests."""

    model_config = ConfigDict(frozen=True)

    home: str = _setting(".naviance", "folder for the embedded defaults below")
    source_kind: str = _setting(
        kinds.DEFAULT_KIND,
        "what the source is: `oneroster` (a OneRoster v1.1 CSV export), `sis-csv` (the SIS's "
        "own CSV exports + a mapping) or `sql` (a database + a mapping): see [Sources](#sources)",
    )
    source_url: str = _setting(
        "",
        "`oneroster`, `sis-csv`: a ZIP or folder, local path or fsspec URL; `sql`: a "
        "SQLAlchemy URL **without** its password",
        "*(blank)* → the bundled sample district in the kind's shape, generated on first use "
        "at `$NAVIANCE_HOME/sample/`",
    )
    source_mapping: str = _setting(
        "",
        "`sis-csv`, `sql`: a preset (`powerschool`, `generic`) or the path of a mapping YAML file",
        "`powerschool`",
    )
    data_root: str = _setting(
        "",
        "where snapshots, Parquet frames, findings, packages and receipts live: a folder or any "
        "fsspec URL (`s3://…` with `s3fs` installed); on a non-local root, delivery uploads a "
        "private temporary copy of the package. Owner-only permissions apply to local folders; "
        "on an object store they are the bucket's",
        "`$NAVIANCE_HOME/data`",
    )
    delivery_target: str = _setting(
        "",
        "a local folder, or `sftp://user@host:port/remote/dir`",
        "`$NAVIANCE_HOME/outbox`",
    )
    district: str = _setting(
        "sample-district",
        "district id: storage path component and `source.systemCode` in the manifest",
    )
    source_system_name: str = _setting(
        "",
        "`source.systemName` in the manifest",
        "`ClassLink` (kind `oneroster`), `PowerSchool` (the `powerschool` mapping), else `SIS`",
        validation_alias=AliasChoices("source_system_name", "NAVIANCE_SOURCE_SYSTEM"),
    )
    timezone: str = _setting(
        "America/New_York", "the district's timezone: partitions and the schedule"
    )
    schedule_time: str = _setting("02:00", "local time (HH:MM) of the nightly run")
    include_staff: bool = _setting(
        False, "also send teachers and administrators (needs `metadata.title` in the source)"
    )
    rollover_day: str = _setting(
        "07-15", "the day (MM-DD) the school year rolls over, for class years"
    )
    partitions_start: str = _setting(
        "",
        "first date partition (older dates' snapshots are purged by retention, so they could "
        "not be rebuilt); set a date to keep a fixed start",
        "*(blank)* → `NAVIANCE_RETENTION_DAYS` days before today, in the district's timezone",
    )
    retention_days: int = _setting(
        RETENTION_DAYS, "days of data the retention job keeps (receipts are kept)", gt=0
    )
    districts_file: str = _setting(
        "",
        "many districts from a YAML file (date × district partitions, a schedule per "
        "district): see [DEPLOYMENT.md](DEPLOYMENT.md)",
        "*(blank)* → one district, as above",
    )
    delivery_name: str = _setting(
        "naviance",
        "the delivery target's stable name: its history (receipts, guard baseline) is kept "
        "under it, whatever its URL",
        min_length=1,
    )
    delivery_lock_timeout: float = _setting(
        3600.0,
        "seconds a delivery waits for another delivery to the same target before it fails",
        ge=0,
    )
    uploads_per_host: int = _setting(
        1,
        "uploads at a time to one SFTP host, across every district and run: only the upload "
        "waits for the host, not the run. Naviance publishes no limit of concurrent sessions: "
        "raise it only with Naviance's agreement "
        "([docs/upload-slots.md](docs/upload-slots.md))",
        ge=1,
    )
    locks_url: str = _setting(
        "",
        "where the delivery locks (one delivery per target, the upload slots per host) are "
        "held: blank → files + `flock` under the data root (one machine, or machines sharing "
        "it over NFS); `postgresql://user@host:port/database` → PostgreSQL advisory locks, "
        "needed for several machines on an object-store data root or without a shared disk "
        "(password: the secret `NAVIANCE_LOCKS_PASSWORD`, or libpq's `PGPASSWORD`/`.pgpass`)",
    )
    max_source_bytes: int = _setting(
        DEFAULT_MAX_SOURCE_BYTES,
        "the most the needed entries of a source may hold **uncompressed**; above it the "
        "source is refused with `SRC-TOO-LARGE` before anything is read or inflated: see "
        "[Limits](#limits)",
        f"`{DEFAULT_MAX_SOURCE_BYTES}` (5 × Naviance's 1 GB package limit)",
    )
    source_sftp_known_hosts_path: str = _setting(
        "",
        "an `sftp://` source's pinned host key line(s) in a file (or the text itself in the "
        "secret `NAVIANCE_SOURCE_SFTP_KNOWN_HOSTS`)",
    )
    ui_url: str = _setting("http://127.0.0.1:3000", "base of the run links in alerts")
    delivery_max_age_hours: float = _setting(
        26.0, "hours without a delivery before `alert_on_missed_delivery` alerts", ge=0
    )
    run_trigger: Literal["schedule", "arrival", "both"] = _setting(
        "schedule",
        "what starts the nightly run: `schedule` (at `NAVIANCE_SCHEDULE_TIME`), `arrival` (when "
        "the sensor `watch_sis_export` sees a new export: that date's partition, once per date) "
        "or `both`: see [Sources](#sources)",
    )
    export_unchanged_days: float = _setting(
        7.0,
        "days an export may keep the same content before it is stale (`SRC-STALE-EXPORT` and an "
        "alert); 0: not checked",
        ge=0,
    )
    export_max_age_hours: float = _setting(
        48.0,
        "hours since the export's newest file was modified before it is stale; 0: not checked",
        ge=0,
    )
    export_stale_blocks: bool = _setting(
        False, "a stale export blocks delivery (`SRC-STALE-EXPORT` an error, not a warning)"
    )
    export_watch_seconds: int = _setting(
        300,
        "seconds between two looks of `watch_sis_export` at the export (a listing; the content "
        "is hashed only when sizes or times changed)",
        gt=0,
    )
    report_template: str = _setting(
        "",
        "a jinja2 template file that replaces the HTML report's page "
        "([docs/report-template.md](docs/report-template.md)); blank: the bundled page",
    )

    @field_validator(*CHECKS)
    @classmethod
    def _checked(cls, value: str, info) -> str:
        return CHECKS[info.field_name](value)

    @field_validator("max_source_bytes", mode="before")
    @classmethod
    def _bytes(cls, value):
        if isinstance(value, str):
            try:
                return parse_byte_count(value)
            except ValueError:
                raise ValueError("must be a positive number of bytes") from None
        return value

    @model_validator(mode="after")
    def _derived(self) -> Settings:
        """The defaults that follow from other settings (shown in ``shown``)."""
        home = str(Path(self.home).resolve())
        declared = kinds.registry()[self.source_kind]
        derived = {
            "home": home,
            "data_root": self.data_root or str(Path(home, "data")),
            "delivery_target": self.delivery_target or str(Path(home, "outbox")),
            "source_system_name": self.source_system_name.strip()
            or declared.system_name(self.source_mapping),
            "partitions_start": self.partitions_start
            or default_partitions_start(self.timezone, self.retention_days),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)
        return self

    @classmethod
    def from_env(cls) -> Settings:
        """The settings of this deployment: ``.env`` loaded (the environment wins), every
        variable validated; SettingsError names each bad one."""
        load_env_file()
        if os.environ.get(RETIRED_EXECUTOR, "in_process").strip() not in ("", "in_process"):
            raise SettingsError(
                f"{RETIRED_EXECUTOR}: no longer read; a run executes its steps in one process, "
                "and many runs go in parallel through the Celery run launcher of "
                "deploy/dagster.yaml (DEPLOYMENT.md)"
            )
        try:
            return cls.model_validate(_FromEnvironment().model_dump())
        except ValidationError as exc:
            raise SettingsError(_one_line(exc)) from None

    @classmethod
    def in_folder(cls, home: str | Path, source_url: str | Path, **overrides) -> Settings:
        """Everything under one folder (tests, benchmarks): data root ``home/data`` and a
        local outbox ``home/outbox``; other settings at their defaults unless overridden."""
        values = {
            "home": str(home),
            "source_url": str(source_url),
            "district": "test-district",
            "source_system_name": "ClassLink",
            "partitions_start": "2026-01-01",
        }
        changed = {k: str(v) if isinstance(v, Path) else v for k, v in overrides.items()}
        return cls.model_validate({**values, **changed})

    @property
    def sample_source(self) -> str:
        return str(Path(self.home, "sample", "sample-district.zip"))


class _FromEnvironment(Settings, BaseSettings):
    """The same fields, read from ``NAVIANCE_*`` variables (blank = unset)."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, env_ignore_empty=True, extra="ignore")


def variable(name: str) -> str:
    """The environment variable of a field."""
    alias = Settings.model_fields[name].validation_alias
    choices = alias.choices if isinstance(alias, AliasChoices) else ()
    return next((c for c in choices if str(c).startswith(PREFIX)), PREFIX + name.upper())


def _one_line(exc: ValidationError) -> str:
    """Every problem as ``VARIABLE: what is wrong`` (pydantic's messages, which do not echo
    the value, or ours, which quote only values that are not secrets)."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        name = variable(field) if field in Settings.model_fields else field or "settings"
        problems.append(f"{name}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)


def env_file() -> Path:
    """The ``.env`` file read: ``NAVIANCE_ENV_FILE`` or ``.env`` in the working directory."""
    return Path(os.environ.get(ENV_FILE_VARIABLE) or ".env")


def load_env_file() -> None:
    """Put the variables of the ``.env`` file into the environment, keeping every variable
    already set (the environment wins). A named file that does not exist is refused."""
    path = env_file()
    if not path.is_file():
        if os.environ.get(ENV_FILE_VARIABLE):
            raise SettingsError(f"{ENV_FILE_VARIABLE}: {str(path)!r} is not a file")
        return
    for name, value in dotenv_values(path).items():
        if value is not None and name not in os.environ:
            os.environ[name] = value


def retention_days() -> int:
    return Settings.from_env().retention_days


def max_source_bytes_from_env() -> int:
    """NAVIANCE_MAX_SOURCE_BYTES, else the default (oneroster/options.py says how it is
    derived); SettingsError (a ValueError) naming the variable when it is not usable."""
    return Settings.from_env().max_source_bytes


def secret_variables() -> dict[str, str]:
    """Every secret's variable -> its role: the delivery targets' and the source kinds'."""
    from naviance_pipeline.delivery.lock import LOCKS_PASSWORD_ENV
    from naviance_pipeline.delivery.targets import secret_env
    from naviance_pipeline.operations.alerts import URLS_ENV

    roles = {
        **secret_env(),
        **kinds.SOURCE_SECRET_ENV,
        "alert channels (apprise URLs)": URLS_ENV,
        "the delivery locks' PostgreSQL password": LOCKS_PASSWORD_ENV,
    }
    return {env: role for role, env in roles.items()}


def _default(name: str) -> str:
    field = Settings.model_fields[name]
    shown = (field.json_schema_extra or {}).get("shown")
    if shown:
        return shown
    value = field.default
    if value == "":
        return "*(blank)*"
    text = (
        str(value).lower()
        if isinstance(value, bool)
        else f"{value:g}"
        if isinstance(value, float)
        else value
    )
    return f"`{text}`"


def markdown() -> str:
    """The README's table of settings (between its ``generated: settings`` markers)."""
    rows = [
        f"| `{variable(name)}` | {_default(name)} | {field.description} |"
        for name, field in Settings.model_fields.items()
    ]
    return "\n".join(["| Variable | Default | Meaning |", "|---|---|---|", *rows]) + "\n"


def environment_help(width: int = 100) -> str:
    """Every variable, its default and meaning, for ``naviance-pipeline --help``."""

    def plain(text: str) -> str:  # Markdown to text: no emphasis, code marks or link targets
        return re.sub(r"\*\*?|`", "", re.sub(r"\[([^]]+)\]\([^)]+\)", r"\1", text))

    lines = [
        f"environment variables (also read from {ENV_FILE_VARIABLE} or ./.env; "
        "the environment wins):"
    ]
    for name, field in Settings.model_fields.items():
        text = plain(f"{field.description} (default: {_default(name)})")
        lines += [
            f"  {variable(name)}",
            *textwrap.wrap(text, width, initial_indent=" " * 6, subsequent_indent=" " * 6),
        ]
    lines.append("secrets (read only from the environment or .env at run time, never shown):")
    lines += textwrap.wrap(
        ", ".join(secret_variables()), width, initial_indent="  ", subsequent_indent="  "
    )
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] != ["--markdown"]:
        sys.exit("usage: python -m naviance_pipeline.operations.settings --markdown")
    print(markdown(), end="")
