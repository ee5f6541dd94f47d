"""Dagster resources: what the pipeline reads, where it stores, where it delivers.

Both are ``ConfigurableResource``s, so an operator can override any field in the Launchpad for
one run. Defaults come from the environment when the definitions load (``settings.py``).
Secrets are never config values: they are ``dg.EnvVar`` references, resolved at launch.
"""

from __future__ import annotations

import os
from datetime import date
from typing import TypeVar

import dagster as dg

from naviance_pipeline.delivery.guards import GuardLimits, parse_overrides
from naviance_pipeline.delivery.receipts import DEFAULT_NAME, check_name
from naviance_pipeline.delivery.service import DeliveryPlan
from naviance_pipeline.delivery.target import RetryOptions, Target, target_from_url
from naviance_pipeline.delivery.targets import secret_env, target_kind
from naviance_pipeline.oneroster.options import DEFAULT_MAX_SOURCE_BYTES, Options
from naviance_pipeline.operations.districts import District, load_districts
from naviance_pipeline.operations.settings import Settings, parse_month_day
from naviance_pipeline.operations.storage import DataLayout
from naviance_pipeline.sources.freshness import Limits
from naviance_pipeline.sources.kinds import DEFAULT_KIND, SOURCE_SECRET_ENV, source_kind
from naviance_pipeline.sources.snapshot import SourceConfig, ensure_sample

R = TypeVar("R", bound=dg.ConfigurableResource)

# The targets' secrets (delivery/targets/: DeliveryResource fields) -> their variables in
# one-district mode; the sources' are SOURCE_SECRET_ENV (sources/kinds/: PipelineResource).
SECRET_ENV = secret_env()
SOURCE_SECRET = "source_password"  # the SQL or sftp:// source's password (PipelineResource)
SOURCE_KNOWN_HOSTS = "source_sftp_known_hosts"  # an sftp:// source's pinned key line(s)


def district_entry(districts_file: str, district_id: str) -> District:
    """The district's entry in the districts file, read (and validated) now."""
    if not districts_file:
        raise dg.Failure(
            f"the partition names district {district_id!r} but no districts file is configured "
            "(NAVIANCE_DISTRICTS_FILE)"
        )
    try:
        return load_districts(districts_file).get(district_id)
    except (KeyError, ValueError) as exc:
        raise dg.Failure(str(exc)) from exc


def with_deployment_defaults(cls: type[R], **values) -> type[R]:
    """A subclass of a resource whose field defaults are this deployment's values.

    In the Launchpad, Dagster replaces a resource's whole config and falls back to the class
    defaults for the fields left out; with the deployment's values as the defaults, an operator
    can override one field for one run and keep every other (secrets stay ``dg.EnvVar``s)."""
    namespace = {
        "__annotations__": {name: cls.model_fields[name].annotation for name in values},
        "__module__": cls.__module__,
        "__doc__": cls.__doc__,
        **values,
    }
    return type(cls.__name__, (cls,), namespace)


class PipelineResource(dg.ConfigurableResource):
    """The source, the data root and what the package holds."""

    source_url: str = ""  # blank: the bundled sample district (in the kind's shape)
    source_kind: str = DEFAULT_KIND  # a kind of sources/kinds/: oneroster | sis-csv | sql
    source_mapping: str = ""  # sis-csv/sql: a preset name or a mapping YAML path
    source_password: str | None = None  # sql, sftp://: a dg.EnvVar, never a plain value
    # sftp://: the pinned known_hosts text (a dg.EnvVar), or the path of a file holding it.
    source_sftp_known_hosts: str | None = None
    source_sftp_known_hosts_path: str = ""
    # An unreachable source (database down) is retried this many times, this far apart.
    source_retries: int = 2
    source_retry_seconds: float = 60.0
    # A SQL query that takes longer fails the step (0: no limit).
    source_query_timeout_seconds: float = 3600.0
    sample_path: str = ""
    data_root: str
    district: str
    source_system_name: str = "SIS"
    include_staff: bool = False
    rollover_day: str = "07-15"
    districts_file: str = ""  # many districts: the fields above come from here per district
    # SRC-TOO-LARGE: the most the source's needed entries may hold, expanded (all districts).
    max_source_bytes: int = DEFAULT_MAX_SOURCE_BYTES
    # SRC-STALE-EXPORT: when the export is stale, and whether that blocks (sources/freshness.py)
    export_unchanged_days: float = Settings.model_fields["export_unchanged_days"].default
    export_max_age_hours: float = Settings.model_fields["export_max_age_hours"].default
    export_stale_blocks: bool = False

    @property
    def layout(self) -> DataLayout:
        return DataLayout(self.data_root, self.district)

    def source_config(self) -> SourceConfig:
        return SourceConfig(
            kind=self.source_kind,
            url=self.source_url,
            mapping=self.source_mapping,
            password=self.source_password or None,
            query_timeout=self.source_query_timeout_seconds or None,
            known_hosts=self.source_sftp_known_hosts or None,
            known_hosts_path=self.source_sftp_known_hosts_path,
        )

    def freshness_limits(self) -> Limits:
        return Limits(
            self.export_unchanged_days, self.export_max_age_hours, self.export_stale_blocks
        )

    def watches_export(self) -> bool:
        """Whether the source is an export whose age is watched: files at a configured URL (not
        a database, not the bundled sample)."""
        return bool(self.source_url) and source_kind(self.source_kind).files

    def resolved_source(self) -> str:
        return self.source_url or ensure_sample(self.source_config(), self.sample_path)

    def options(self, partition_key: str) -> Options:
        return Options(
            as_of=date.fromisoformat(partition_key),
            include_staff=self.include_staff,
            rollover=parse_month_day(self.rollover_day),
            source_system_name=self.source_system_name,
            district_code=self.district,
            max_source_bytes=self.max_source_bytes,
        )

    def for_district(self, district_id: str) -> PipelineResource:
        """This resource for one district of the districts file: the district's own fields
        from the file, every other field (data root, retries, timeouts) as configured, so a
        Launchpad override of it still applies."""
        entry = district_entry(self.districts_file, district_id)
        return self.model_copy(
            update={
                "source_url": entry.source_url,
                "source_kind": entry.source_kind,
                "source_mapping": entry.source_mapping,
                "source_password": entry.secret(SOURCE_SECRET),
                "source_sftp_known_hosts": entry.secret(SOURCE_KNOWN_HOSTS),
                "district": entry.id,
                "source_system_name": entry.source_system_name,
                "include_staff": entry.include_staff,
                "rollover_day": entry.rollover_day,
                "export_unchanged_days": entry.export_unchanged_days,
                "export_max_age_hours": entry.export_max_age_hours,
                "export_stale_blocks": entry.export_stale_blocks,
            }
        )


class DeliveryResource(dg.ConfigurableResource):
    """Where the package goes, how hard to try, and the guards' limits."""

    target_url: str
    # The targets' secrets (delivery/targets/ declares which target reads which): dg.EnvVars.
    sftp_password: str | None = None
    sftp_private_key: str | None = None
    sftp_private_key_passphrase: str | None = None
    sftp_known_hosts: str | None = None
    attempts: int = 4
    backoff_seconds: float = 30.0
    student_drop_threshold: float = 0.10
    disabled_jump_points: float = 5.0
    id_churn_threshold: float = 0.10
    guard_overrides: list[str] = []  # noqa: RUF012 - pydantic copies field defaults
    # The target's stable name: its delivery history (receipts, guards) is kept under it, so
    # a changed URL (host spelling, port, folder) keeps the history.
    target_name: str = DEFAULT_NAME
    # How long a delivery waits for another delivery to the same target to end (and for an
    # upload slot of its host).
    lock_timeout_seconds: float = 3600.0
    # Uploads at a time to one SFTP host, and where the locks are held (delivery/lock.py:
    # blank for files, else postgresql://user@host:port/database): deployment-wide.
    uploads_per_host: int = 1
    locks_url: str = ""
    districts_file: str = ""  # many districts: target and secret names per district

    def for_district(self, district_id: str) -> DeliveryResource:
        """This resource for one district: its target, and its secrets read now from the
        variables the districts file names (never stored in config or shown in the UI); the
        tunables (attempts, backoff, guard limits and overrides) as configured."""
        entry = district_entry(self.districts_file, district_id)
        return self.model_copy(
            update={
                "target_url": entry.delivery_target,
                **{role: entry.secret(role) for role in SECRET_ENV},
            }
        )

    def target(self) -> Target:
        kind, _ = target_kind(self.target_url)
        credentials = kind.credentials({role: getattr(self, role) for role in kind.secrets})
        retry = RetryOptions(attempts=self.attempts, backoff_base=self.backoff_seconds)
        return target_from_url(self.target_url, credentials, retry)

    @property
    def limits(self) -> GuardLimits:
        return GuardLimits(
            self.student_drop_threshold, self.disabled_jump_points, self.id_churn_threshold
        )

    def plan(self, run_tags: dict[str, str], *, extra_overrides: list[str] = ()) -> DeliveryPlan:
        """How this run delivers: the target's name, limits, overrides, lock wait, upload slots
        per host and the locks' backend."""
        return DeliveryPlan(
            name=check_name(self.target_name),
            limits=self.limits,
            overrides=sorted({*self.overrides(run_tags), *extra_overrides}),
            lock_timeout=self.lock_timeout_seconds,
            uploads_per_host=self.uploads_per_host,
            locks_url=self.locks_url,
        )

    def overrides(self, run_tags: dict[str, str]) -> list[str]:
        """Guard overrides for this run: resource config plus the run tag."""
        return sorted(
            {
                *parse_overrides(self.guard_overrides),
                *parse_overrides(run_tags.get(OVERRIDE_TAG)),
            }
        )


OVERRIDE_TAG = "naviance/override-guards"


def secret(field: str) -> dg.EnvVar | None:
    """A secret is referenced by its variable only when the variable is set, so the embedded
    default (a local outbox) needs none of them."""
    name = SOURCE_SECRET_ENV.get(field) or SECRET_ENV[field]
    return dg.EnvVar(name) if os.environ.get(name) else None
