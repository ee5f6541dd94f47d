"""The districts file: many districts run by one deployment (``NAVIANCE_DISTRICTS_FILE``).

A YAML file with a shared ``data_root`` and one entry per district::

    data_root: /var/lib/naviance/data
    partitions_start: "2025-07-01"          # optional
    districts:
      - id: springfield                       # slug: partition key and storage folder
        source_url: s3://exports/springfield/oneroster.zip
        timezone: America/Chicago
        schedule_time: "02:00"                # local time of the nightly run
        delivery_target: sftp://springfield@sftp.naviance.com/upload
        secrets:                              # role -> NAME of the environment variable
          sftp_password: SPRINGFIELD_SFTP_PASSWORD
          sftp_known_hosts: NAVIANCE_SFTP_KNOWN_HOSTS
        include_staff: false                  # optional
        rollover_day: "07-15"                 # optional
        source_system_name: ClassLink         # optional
        source_kind: oneroster                # optional: oneroster | sis-csv | sql
        source_mapping: powerschool           # optional: preset name or mapping YAML path

The file holds no secret, only the names of the variables that do; they are read at run time
by the process that delivers. Loading validates everything and names the district and the key
of every problem (``districts.yaml: district "d2": timezone "America/Nowhere" is not a known
timezone``). No Dagster here: the CLI and the tests load it too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from naviance_pipeline.delivery.target import target_from_url
from naviance_pipeline.delivery.targets import secret_env, target_kind
from naviance_pipeline.operations.settings import parse_clock, parse_month_day
from naviance_pipeline.sources import kinds
from naviance_pipeline.sources.snapshot import is_sftp

# Secret roles a district may name a variable for: the targets' (DeliveryResource fields,
# delivery/targets/) and the sources' (PipelineResource fields, sources/kinds/).
SECRET_ROLES = (*secret_env(), *kinds.SOURCE_SECRET_ENV)
DISTRICT_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
REQUIRED_KEYS = ("id", "source_url", "timezone", "schedule_time", "delivery_target")
OPTIONAL_KEYS = (
    "secrets",
    "include_staff",
    "rollover_day",
    "source_system_name",
    "source_kind",
    "source_mapping",
)
TOP_KEYS = ("data_root", "partitions_start", "districts")


class DistrictsFileError(ValueError):
    """The districts file is missing, unreadable or invalid; one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class District:
    id: str
    source_url: str
    timezone: str
    schedule_time: str
    delivery_target: str
    secrets: Mapping[str, str] = field(default_factory=dict)  # role -> variable NAME
    include_staff: bool = False
    rollover_day: str = "07-15"
    source_system_name: str = "ClassLink"
    source_kind: str = kinds.DEFAULT_KIND
    source_mapping: str = ""

    def secret(self, role: str, environ: Mapping[str, str] | None = None) -> str | None:
        """The secret's value from its variable, read now (None when unnamed, unset or empty)."""
        name = self.secrets.get(role)
        env = os.environ if environ is None else environ
        return (env.get(name) or None) if name else None

    @property
    def delivery_host(self) -> str:
        """The host uploads go to (``local`` for a folder): the upload-exclusion key."""
        return target_from_url(self.delivery_target).upload_host or "local"


@dataclass(frozen=True)
class DistrictsConfig:
    data_root: str
    districts: tuple[District, ...]
    partitions_start: str | None = None

    @property
    def ids(self) -> list[str]:
        return [d.id for d in self.districts]

    def get(self, district_id: str) -> District:
        for district in self.districts:
            if district.id == district_id:
                return district
        raise KeyError(f"district {district_id!r} is not in the districts file")


def load_districts(path: str | os.PathLike) -> DistrictsConfig:
    """Read and validate a districts file; raises DistrictsFileError naming every problem.

    Cached per file version (path, mtime, size): each asset of a run asks for its district,
    and an edited file (a district added or retired) is read again."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise DistrictsFileError([f"{path.name}: cannot read the districts file: {exc}"]) from exc
    return _load_cached(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _load_cached(path: str, _mtime_ns: int, _size: int) -> DistrictsConfig:
    name = Path(path).name
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DistrictsFileError([f"{name}: not a readable YAML file: {exc}"]) from exc
    return parse_districts(data, name)


def parse_districts(data: Any, name: str = "districts.yaml") -> DistrictsConfig:
    """Validate the parsed YAML of a districts file (``name`` prefixes every message)."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise DistrictsFileError([f"{name}: must be a mapping with data_root and districts"])
    problems += [f"{name}: unknown key {k!r}" for k in data if k not in TOP_KEYS]
    data_root = data.get("data_root")
    if not isinstance(data_root, str) or not data_root.strip():
        problems.append(f"{name}: data_root is required (a folder or fsspec URL)")
    start = data.get("partitions_start")
    if start is not None and not _is_iso_date(start):
        problems.append(f"{name}: partitions_start {start!r} is not a YYYY-MM-DD date")
    entries = data.get("districts")
    if not isinstance(entries, list) or not entries:
        problems.append(f"{name}: districts must be a non-empty list")
        entries = []
    districts: list[District] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        where = f"{name}: district #{number}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a mapping")
            continue
        district_id = entry.get("id")
        if isinstance(district_id, str) and DISTRICT_ID.match(district_id):
            where = f'{name}: district "{district_id}"'
            if district_id in seen:
                problems.append(f"{where}: id is used by another district")
            seen.add(district_id)
        else:
            problems.append(
                f"{where}: id {district_id!r} must be a slug (lowercase letters, digits and "
                "inner hyphens, at most 63 characters)"
            )
        found = _check_district(entry, where)
        problems += found
        if not found:
            districts.append(_district(entry))
    if problems:
        raise DistrictsFileError(problems)
    return DistrictsConfig(
        data_root=data_root.strip(),
        districts=tuple(districts),
        partitions_start=str(start) if start is not None else None,
    )


def _is_iso_date(value: Any) -> bool:
    from datetime import date

    if isinstance(value, date):  # YAML reads an unquoted 2025-07-01 as a date
        return True
    try:
        date.fromisoformat(str(value))
    except ValueError:
        return False
    return True


def _valid(check: Callable[[str], object], value: str) -> bool:
    try:
        check(value)
    except (ValueError, TypeError, OSError, ZoneInfoNotFoundError):
        return False
    return True


def _known_timezone(value: str) -> None:
    if not value or value.startswith(("/", ".")):
        raise ValueError(value)
    ZoneInfo(value)


def _check_district(entry: dict, where: str) -> list[str]:
    """Every problem of one district entry (the id is checked by the caller)."""
    problems = [
        f"{where}: unknown key {k!r}" for k in entry if k not in (*REQUIRED_KEYS, *OPTIONAL_KEYS)
    ]
    for key in REQUIRED_KEYS[1:]:
        value = entry.get(key)
        if key == "schedule_time" and isinstance(value, int):
            problems.append(
                f'{where}: schedule_time must be quoted, e.g. "14:30" (YAML reads an unquoted '
                "14:30 as a number)"
            )
        elif not isinstance(value, str) or not value.strip():
            problems.append(f"{where}: {key} is required (a non-empty string)")
    timezone = entry.get("timezone")
    if isinstance(timezone, str) and timezone and not _valid(_known_timezone, timezone):
        problems.append(f'{where}: timezone "{timezone}" is not a known timezone')
    clock = entry.get("schedule_time")
    if isinstance(clock, str) and clock and not re.fullmatch(r"\d{2}:\d{2}", clock.strip()):
        problems.append(f'{where}: schedule_time "{clock}" must be HH:MM (24-hour)')
    elif isinstance(clock, str) and clock and not _valid(parse_clock, clock):
        problems.append(f'{where}: schedule_time "{clock}" is not a time of day')
    target = entry.get("delivery_target")
    if isinstance(target, str) and target.strip():
        try:
            # Messages of target_from_url never echo a password given in the URL.
            target_from_url(target.strip())
        except ValueError as exc:
            problems.append(f"{where}: delivery_target is invalid: {exc}")
    problems += _check_secrets(entry.get("secrets", {}), where, target)
    problems += _check_source_secrets(entry, where)
    if "include_staff" in entry and not isinstance(entry["include_staff"], bool):
        problems.append(f"{where}: include_staff must be true or false")
    rollover = entry.get("rollover_day", "07-15")
    if not isinstance(rollover, str) or not _valid(parse_month_day, rollover):
        problems.append(f"{where}: rollover_day {rollover!r} must be MM-DD")
    problems += _check_source(entry, where)
    system = entry.get("source_system_name", "ClassLink")
    if not isinstance(system, str) or not system.strip():
        problems.append(f"{where}: source_system_name must be a non-empty string")
    return problems


def _check_source(entry: dict, where: str) -> list[str]:
    kind = entry.get("source_kind", kinds.DEFAULT_KIND)
    if kind not in kinds.names():
        return [f"{where}: source_kind {kind!r} must be one of {', '.join(kinds.names())}"]
    mapping = entry.get("source_mapping", "")
    if not isinstance(mapping, str):
        return [f"{where}: source_mapping must be a preset name or a mapping file path"]
    if mapping and not kinds.source_kind(kind).mapped:
        mapped = " or ".join(kinds.mapped_names())
        return [f"{where}: source_mapping is only for source_kind {mapped}"]
    return []


def _check_secrets(secrets: Any, where: str, target: Any) -> list[str]:
    if not isinstance(secrets, dict):
        return [f"{where}: secrets must map a role ({', '.join(SECRET_ROLES)}) to a variable name"]
    problems = []
    for role, env_name in secrets.items():
        if role not in SECRET_ROLES:
            problems.append(
                f"{where}: secrets has unknown role {role!r} (one of {', '.join(SECRET_ROLES)})"
            )
        elif not isinstance(env_name, str) or not ENV_NAME.match(env_name):
            # Not echoed: someone may have pasted the secret itself here.
            problems.append(
                f"{where}: secrets.{role} must be the NAME of an environment variable "
                "(letters, digits, underscores), not the secret itself"
            )
    if isinstance(target, str) and target.strip():
        try:
            requires = target_kind(target.strip())[0].district_requires
        except ValueError:  # reported with the delivery_target
            requires = ()
        problems += [f"{where}: {why}" for roles, why in requires if not set(roles) & set(secrets)]
    return problems


def _check_source_secrets(entry: dict, where: str) -> list[str]:
    """An sftp:// source is read only from a pinned server: its key is named up front."""
    url, secrets = entry.get("source_url"), entry.get("secrets") or {}
    if not (isinstance(url, str) and is_sftp(url.strip()) and isinstance(secrets, dict)):
        return []
    if "source_sftp_known_hosts" in secrets:
        return []
    return [
        f"{where}: secrets.source_sftp_known_hosts is required for an sftp:// source_url "
        "(the pinned host key)"
    ]


def _district(entry: dict) -> District:
    return District(
        id=entry["id"],
        source_url=entry["source_url"].strip(),
        timezone=entry["timezone"],
        schedule_time=entry["schedule_time"].strip(),
        delivery_target=entry["delivery_target"].strip(),
        secrets=dict(entry.get("secrets", {})),
        include_staff=entry.get("include_staff", False),
        rollover_day=entry.get("rollover_day", "07-15"),
        source_system_name=entry.get("source_system_name", "ClassLink").strip(),
        source_kind=entry.get("source_kind", kinds.DEFAULT_KIND),
        source_mapping=entry.get("source_mapping", "").strip(),
    )


class DistrictChoiceError(ValueError):
    """A ``--district`` that does not fit this deployment (named by the command line)."""


def chosen_district(districts_file: str, single: str, district: str | None) -> District | None:
    """The district a command names: None in one-district mode (where ``district`` may only be
    blank or that district, ``single``); with a districts file, its entry, which must be
    named."""
    if not districts_file:
        if district and district != single:
            raise DistrictChoiceError(
                f"--district {district!r} needs a districts file (NAVIANCE_DISTRICTS_FILE); "
                f"this deployment runs one district, {single!r}"
            )
        return None
    districts = load_districts(districts_file)
    if district not in districts.ids:
        which = f"unknown district {district!r}" if district else "--district is needed"
        raise DistrictChoiceError(f"{which} with a districts file: one of {districts.ids}")
    return districts.get(district)
