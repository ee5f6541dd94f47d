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
        run_trigger: schedule                 # optional: schedule | arrival | both
        export_unchanged_days: 7              # optional: stale after N days unchanged (0: off)
        export_max_age_hours: 48              # optional: stale when the newest file is older
        export_stale_blocks: false            # optional: a stale export blocks delivery

The file holds no secret, only the names of the variables that do; they are read at run time
by the process that delivers. Loading validates everything and names the district and the key
of every problem (``districts.yaml: district "d2": timezone "America/Nowhere" is not a known
timezone``). No Dagster here: the CLI and the tests load it too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
)

from naviance_pipeline.delivery.target import target_from_url
from naviance_pipeline.delivery.targets import secret_env, target_kind
from naviance_pipeline.operations.settings import (
    Settings,
    clock_text,
    delivery_target_url,
    iso_date_text,
    known_timezone,
    month_day_text,
    source_kind_name,
)
from naviance_pipeline.sources import kinds
from naviance_pipeline.sources.snapshot import is_sftp

# Secret roles a district may name a variable for: the targets' (DeliveryResource fields,
# delivery/targets/) and the sources' (PipelineResource fields, sources/kinds/).
SECRET_ROLES = (*secret_env(), *kinds.SOURCE_SECRET_ENV)
DISTRICT_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
REQUIRED = "is required (a non-empty string)"


class DistrictsFileError(ValueError):
    """The districts file is missing, unreadable or invalid; one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def _checked(check=None, refused: str = REQUIRED, blank: bool = False):
    """A text field: a non-empty string (or blank when ``blank``; otherwise ValueError with
    ``refused``), then ``check``ed. Messages follow the key (``<key> <message>``)."""

    def validate(value: Any) -> str:
        if not isinstance(value, str) or not (value.strip() or blank):
            raise ValueError(refused.format(value=value))
        return check(value) if check else value.strip()

    return BeforeValidator(validate)


def _must(ok: Callable[[Any], object], message: str) -> BeforeValidator:
    """Refuse a value for which ``ok`` is false, saying ``<key> <message>``."""

    def check(value: Any) -> Any:
        if not ok(value):
            raise ValueError(message.format(value=value))
        return value

    return BeforeValidator(check)


def _invalid_target(value: str) -> str:
    try:
        return delivery_target_url(value)  # its messages never echo a password in the URL
    except ValueError as exc:
        raise ValueError(f"is invalid: {exc}") from None


def _partitions_start(value: Any) -> str | None:
    if isinstance(value, date):  # YAML reads an unquoted 2025-07-01 as a date
        return value.isoformat()
    return None if value is None else iso_date_text(str(value)) or None


_SLUG = (
    "{value!r} must be a slug (lowercase letters, digits and inner hyphens, at most 63 characters)"
)
# Not echoed: someone may have pasted the secret itself here.
_ENV_NAME = (
    "must be the NAME of an environment variable (letters, digits, underscores), not the "
    "secret itself"
)
_UNQUOTED = 'must be quoted, e.g. "14:30" (YAML reads an unquoted 14:30 as a number)'
Role = Annotated[
    str,
    _must(
        lambda v: v in SECRET_ROLES,
        f"has unknown role {{value!r}} (one of {', '.join(SECRET_ROLES)})",
    ),
]
EnvName = Annotated[str, _must(lambda v: isinstance(v, str) and ENV_NAME.match(v), _ENV_NAME)]


def _default(name: str) -> Any:
    """The default of the one-district setting of the same name (declared once there)."""
    return Settings.model_fields[name].default


class District(BaseModel):
    """One district of the file; each field's check says what is wrong with its value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Annotated[str, _must(lambda v: isinstance(v, str) and DISTRICT_ID.match(v), _SLUG)]
    source_url: Annotated[str, _checked()]
    timezone: Annotated[str, _checked(known_timezone)]
    # YAML 1.1 reads an unquoted 14:30 as the base-60 number 870
    schedule_time: Annotated[
        str, _checked(clock_text), _must(lambda v: not isinstance(v, int), _UNQUOTED)
    ]
    delivery_target: Annotated[str, _checked(_invalid_target)]
    secrets: dict[Role, EnvName] = {}  # role -> the NAME of the variable holding it
    include_staff: StrictBool = False
    rollover_day: Annotated[str, _checked(month_day_text, "{value!r} must be MM-DD")] = "07-15"
    source_system_name: Annotated[str, _checked(refused="must be a non-empty string")] = "ClassLink"
    source_kind: Annotated[str, BeforeValidator(source_kind_name)] = kinds.DEFAULT_KIND
    source_mapping: Annotated[
        str, _checked(refused="must be a preset name or a mapping file path", blank=True)
    ] = ""
    # What starts its runs, and when its export is stale (the NAVIANCE_* settings of the same
    # names in one-district mode).
    run_trigger: Literal["schedule", "arrival", "both"] = _default("run_trigger")
    export_unchanged_days: Annotated[float, Field(ge=0)] = _default("export_unchanged_days")
    export_max_age_hours: Annotated[float, Field(ge=0)] = _default("export_max_age_hours")
    export_stale_blocks: StrictBool = _default("export_stale_blocks")

    def secret(self, role: str, environ: Mapping[str, str] | None = None) -> str | None:
        """The secret's value from its variable, read now (None when unnamed, unset or empty)."""
        name = self.secrets.get(role)
        env = os.environ if environ is None else environ
        return (env.get(name) or None) if name else None

    @property
    def delivery_host(self) -> str:
        """The host uploads go to (``local`` for a folder): the upload-exclusion key."""
        return target_from_url(self.delivery_target).upload_host or "local"


class DistrictsConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    data_root: Annotated[str, _checked(refused="is required (a folder or fsspec URL)")] = Field(
        "", validate_default=True
    )
    partitions_start: Annotated[str | None, BeforeValidator(_partitions_start)] = None
    districts: Annotated[tuple[District, ...], _must(bool, "must be a non-empty list")] = Field(
        (), validate_default=True
    )

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


# What a problem says when pydantic's own message would not name the fix.
_MESSAGES = {
    "missing": REQUIRED,
    "bool_type": "must be true or false",
    "dict_type": f"must map a role ({', '.join(SECRET_ROLES)}) to a variable name",
    "model_type": "must be a mapping",
    "tuple_type": "must be a non-empty list",
}


def parse_districts(data: Any, name: str = "districts.yaml") -> DistrictsConfig:
    """Validate the parsed YAML of a districts file (``name`` prefixes every message): every
    problem of every district at once, each naming the district and the key."""
    if not isinstance(data, dict):
        raise DistrictsFileError([f"{name}: must be a mapping with data_root and districts"])
    entries = data.get("districts") if isinstance(data.get("districts"), list) else []
    # (district number, 0 = the file; rank: a duplicate id, an unknown key, a bad value; text)
    found: list[tuple[int, int, str]] = []
    try:
        config = DistrictsConfig.model_validate(data)
    except ValidationError as exc:
        found += [_problem(error) for error in exc.errors(include_url=False)]
    ids = [e.get("id") if isinstance(e, dict) else None for e in entries]
    for number, (entry, district_id) in enumerate(zip(entries, ids, strict=True), start=1):
        if isinstance(district_id, str) and district_id in ids[: number - 1]:
            found.append((number, 0, "id is used by another district"))
        found += [(number, 2, why) for why in _needs(entry)]
    if found:
        found.sort(key=lambda problem: problem[:2])
        raise DistrictsFileError([f"{_where(name, n, ids)}: {text}" for n, _, text in found])
    return config


def _problem(error: dict) -> tuple[int, int, str]:
    """(district number or 0, rank, ``<key> <what is wrong>``)."""
    loc = list(error["loc"])
    number = loc[1] + 1 if loc[:1] == ["districts"] and len(loc) > 1 else 0
    path = loc[2:] if number else loc
    key = str(path[0]) if path else ""
    if error["type"] == "extra_forbidden":
        return number, 1, f"unknown key {key!r}"
    message = _MESSAGES.get(error["type"]) or error["msg"].removeprefix("Value error, ")
    shown = key if "[key]" in path or len(path) < 2 else ".".join(map(str, path))
    return number, 2, f"{shown} {message}".strip()


def _where(name: str, number: int, ids: list) -> str:
    district_id = ids[number - 1] if number else None
    if isinstance(district_id, str) and DISTRICT_ID.match(district_id):
        return f'{name}: district "{district_id}"'
    return f"{name}: district #{number}" if number else name


def _needs(entry: Any) -> list[str]:
    """What one district's keys need from each other: the secrets its delivery target and an
    sftp:// source require, a mapping only for a mapped kind (checked even when a key is bad,
    so every problem shows at once)."""
    if not isinstance(entry, dict):
        return []
    secrets = entry.get("secrets") if isinstance(entry.get("secrets"), dict) else {}
    target, url = (entry.get(key) for key in ("delivery_target", "source_url"))
    try:
        requires = target_kind(target.strip())[0].district_requires
    except (ValueError, AttributeError):  # reported with the delivery_target
        requires = ()
    needs = [why for roles, why in requires if not set(roles) & set(secrets)]
    if isinstance(url, str) and is_sftp(url.strip()) and "source_sftp_known_hosts" not in secrets:
        needs.append(
            "secrets.source_sftp_known_hosts is required for an sftp:// source_url "
            "(the pinned host key)"
        )
    kind, mapping = entry.get("source_kind", kinds.DEFAULT_KIND), entry.get("source_mapping")
    if mapping and kind in kinds.names() and not kinds.source_kind(kind).mapped:
        needs.append(f"source_mapping is only for source_kind {' or '.join(kinds.mapped_names())}")
    return needs


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
