"""Run the pipeline from the command line on a persistent local Dagster instance.

``naviance-pipeline run`` materializes every asset for one date in-process, recording the run
in ``$DAGSTER_HOME`` (default ``.naviance/dagster_home``) so it shows in the UI afterwards.
``naviance-pipeline backfill`` stores one job backfill there for the daemon to run.
"""

from __future__ import annotations

import os
import sys
import uuid
import warnings
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg

from naviance_pipeline.defs.resources import DeliveryResource
from naviance_pipeline.delivery.guards import parse_overrides
from naviance_pipeline.delivery.service import (
    DeliveryBlocked,
    NotSent,
    deliver_partition,
    sweep_delivery_copies,
)
from naviance_pipeline.delivery.target import DeliveryError
from naviance_pipeline.operations.crash import owner, owner_alive
from naviance_pipeline.operations.districts import chosen_district
from naviance_pipeline.operations.settings import Settings
from naviance_pipeline.operations.storage import (
    DataLayout,
    is_local,
    make_tree_private,
    sweep_leftovers,
)

# The process that runs a run of ``naviance-pipeline run`` (crash.owner()): how a later run
# tells that it died.
RUNNER_TAG = "naviance/runner"
INSTANCE_YAML = """\
# Local Dagster instance for naviance-pipeline (SQLite storage under this folder).
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 1
"""


def local_instance(settings: Settings) -> dg.DagsterInstance:
    home = Path(os.environ.get("DAGSTER_HOME") or Path(settings.home, "dagster_home"))
    home.mkdir(parents=True, exist_ok=True)
    make_tree_private(home)  # event logs and compute logs name the district's files
    if Path(settings.home).is_dir():  # NAVIANCE_HOME: the data, outbox and sample below it
        os.chmod(settings.home, 0o700)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_YAML)
    return dg.DagsterInstance.from_config(str(home))


def reclaim_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Runs of ``naviance-pipeline run`` on this machine whose process is gone (killed, out
    of memory) but which the instance still shows as running: marked failed, and any pool
    slot they hold freed, so they neither wedge a later run nor look alive in the UI. No
    daemon is needed (the daemon's run monitoring does not watch runs it did not launch)."""
    messages = []
    records = instance.get_run_records(
        dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING])
    )
    for record in records:
        run = record.dagster_run
        if RUNNER_TAG not in run.tags:
            continue  # launched by the daemon or the webserver: theirs to watch
        host, pid, start = run.tags[RUNNER_TAG].split("~")
        if owner_alive(host, int(pid), int(start)):
            continue
        message = (
            f"run {run.run_id} ({run.tags.get('dagster/partition', '?')}) ended without "
            f"finishing: its process {pid} is gone (killed?); marked failed and its slots freed"
        )
        instance.report_run_failed(run, message)
        if instance.event_log_storage.supports_global_concurrency_limits:
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        messages.append(message)
    return messages


def sweep(layout: DataLayout) -> None:
    """Remove what dead runs left behind under the district's folder and in /tmp; on a
    local data root, make the district's folder owner-only (an older install's 0755)."""
    if is_local(layout.base) and layout.base.exists():
        make_tree_private(layout.base.path)
    for name in [*sweep_leftovers(layout.base), *sweep_delivery_copies()]:
        print(f"removed {name}, left by a run that was killed", file=sys.stderr)


def nightly_job() -> dg.JobDefinition:
    """The nightly job for the settings in the environment. Module-level so Dagster can
    reconstruct it: ``execute_job`` runs it as a deployed run does, storing each stage's frame
    and letting it go (``execute_in_process`` would keep every frame for the whole run)."""
    from naviance_pipeline.definitions import build_definitions
    from naviance_pipeline.defs.jobs import NIGHTLY_JOB

    return build_definitions(Settings.from_env()).resolve_job_def(NIGHTLY_JOB)


class NotAPartition(ValueError):
    """The date given is not one of the partitions (before the first, or in the future)."""


def check_partition_date(
    partitions: dg.TimeWindowPartitionsDefinition, day: str, option: str = "--date"
) -> None:
    """Refuse a date that is not a partition, before any work (no snapshot, no run)."""
    if partitions.has_partition_key(day):
        return
    first, last = partitions.get_first_partition_key(), partitions.get_last_partition_key()
    where = "before the first partition" if first and day < first else "in the future"
    raise NotAPartition(
        f"{option} {day} is {where}: the partitions run from {first} to {last} "
        f"({partitions.timezone}; NAVIANCE_PARTITIONS_START sets the first)"
    )


@dataclass(frozen=True)
class Target:
    """What one command-line run works on: a partition key, its date, the district's data
    layout and delivery resource (one district, or one of the districts file's)."""

    key: str
    day: str
    layout: DataLayout
    label: str
    tags: dict[str, str]
    delivery: DeliveryResource


def resolve(settings: Settings, day: str | None, district: str | None) -> Target:
    """The partition a command works on. With a districts file, ``district`` is required and
    the default date is today in that district's timezone (what its schedule would run).
    Raises DistrictChoiceError for a ``--district`` that does not fit, NotAPartition for a
    date that is not a partition."""
    from naviance_pipeline.definitions import build_resources
    from naviance_pipeline.defs.partitions import daily_partitions

    entry = chosen_district(settings.districts_file, settings.district, district)
    if entry is None:
        partitions = daily_partitions(settings)
        if day:
            check_partition_date(partitions, day)
        resources = build_resources(settings)
        partition = day or partitions.get_last_partition_key()
        return Target(
            partition,
            partition,
            resources["pipeline"].layout,
            f"district {settings.district}",
            {},
            resources["delivery"].model_copy(update=_secrets_from_env()),
        )
    from naviance_pipeline.defs.jobs import host_tags
    from naviance_pipeline.defs.partitions import (
        DATE_DIM,
        DISTRICT_DIM,
        district_key,
        district_partitions,
    )
    from naviance_pipeline.operations.districts import load_districts

    districts = load_districts(settings.districts_file)
    day = day or datetime.now(ZoneInfo(entry.timezone)).date().isoformat()
    dates = district_partitions(settings, districts).get_partitions_def_for_dimension(DATE_DIM)
    check_partition_date(dates, day)
    resources = build_resources(settings, districts)
    key = str(district_key(day, entry.id))
    tags = {
        "dagster/partition": key,
        f"dagster/partition/{DATE_DIM}": day,
        f"dagster/partition/{DISTRICT_DIM}": entry.id,
        **host_tags(entry),
    }
    return Target(
        key,
        day,
        resources["pipeline"].for_district(entry.id).layout,
        f"district {entry.id}",
        tags,
        resources["delivery"].for_district(entry.id),
    )


# A run of ``naviance-pipeline run --no-deliver`` carries this tag (the UI shows it).
NO_DELIVER_TAG = "naviance/no-deliver"


def run_partition(day: str | None, district: str | None = None, *, deliver: bool = True) -> int:
    """Materialize every asset for one date: 0 when the run succeeded (delivered, or built and
    checked but not sent), 1 when it failed (nothing delivered). ``deliver=False`` leaves out
    the delivery asset: the package is built, validated, verified and reported, nothing is sent
    and no alert goes out."""
    settings = Settings.from_env()
    target = resolve(settings, day, district)
    what = "every asset" if deliver else "every asset but the delivery (--no-deliver)"
    print(f"materializing {what} for {target.day} ({target.label})")
    from naviance_pipeline.defs.jobs import STAGES

    selection = None if deliver else [dg.AssetKey(s) for s in STAGES if s != DELIVERY_ASSET]
    tags = {"dagster/partition": target.key, **target.tags, RUNNER_TAG: owner()}
    if not deliver:
        tags[NO_DELIVER_TAG] = "true"
    with local_instance(settings) as instance:
        for message in reclaim_dead_runs(instance):
            print(message, file=sys.stderr)
        sweep(target.layout)
        result = dg.execute_job(
            dg.reconstructable(nightly_job),
            instance,
            tags=tags,
            # Progress at INFO: one line per stage, not Dagster's every debug event.
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
            asset_selection=selection,
        )
        for evaluation in result.get_asset_check_evaluations():
            if not evaluation.passed:
                print(
                    f"check {evaluation.asset_key.to_user_string()}:{evaluation.check_name} "
                    f"failed ({evaluation.severity.value}): {evaluation.description}"
                )
        if not result.success:
            print(
                f"run {result.run_id} FAILED: nothing was delivered for {target.day} "
                f"({target.label})",
                file=sys.stderr,
            )
            for event in result.get_step_failure_events():
                data = event.step_failure_data
                why = data.user_failure_data.description if data.user_failure_data else None
                print(f"{event.step_key}: {why or data.error.message.strip()}", file=sys.stderr)
            if deliver:
                _alert(target, result.run_id)
            return 1
        print(f"run {result.run_id} succeeded")
        if not deliver:
            _not_delivered(target, district)
            return 0
        delivered = result.asset_materializations_for_node(DELIVERY_ASSET)
        metadata = delivered[-1].metadata if delivered else {}
        if "not_sent_because" in metadata:
            print(
                f"the package of {target.day} was built and checked but not sent: "
                f"{metadata['not_sent_because'].value}"
            )
            print(metadata["to_send_anyway"].value)
            return 0
        where = metadata["remote_path"].value if "remote_path" in metadata else "?"
        print(f"NavianceOneRoster.zip landed at {where}")
        return 0


DELIVERY_ASSET = "naviance_delivery"


def _not_delivered(target: Target, district: str | None) -> None:
    """What ``run --no-deliver`` says at the end: nothing was sent, where to look, how to send."""
    from naviance_pipeline.reporting.report import report_paths

    layout = target.layout
    again = f" --district {district}" if district else ""
    print(
        f"NOTHING WAS SENT (--no-deliver): the package of {target.day} was built, validated, "
        "verified and reported; no delivery was attempted and no alert was sent"
    )
    print(f"package: {layout.package_path(target.day)}")
    print(f"report: {report_paths(layout, target.day)[1]}")
    print(f"to send it: naviance-pipeline redeliver --date {target.day}{again}")


def redeliver(day: str, override: str, district: str | None = None) -> int:
    target = resolve(Settings.from_env(), day, district)
    sweep(target.layout)
    try:
        outcome = deliver_partition(
            target.layout,
            target.delivery.target(),
            target.day,
            target.delivery.plan({}, extra_overrides=parse_overrides(override)),
            run_id=f"redeliver-{uuid.uuid4().hex[:12]}",
            redelivery=True,
            log=lambda message: print(message, file=sys.stderr),
        )
    except DeliveryBlocked as exc:
        print(f"not delivered: {exc}", file=sys.stderr)
        print(
            "override a guard for this date with --override CODE if this is intended",
            file=sys.stderr,
        )
        return 1
    except (DeliveryError, FileNotFoundError, ValueError) as exc:
        print(f"not delivered: {exc}", file=sys.stderr)
        return 1
    if isinstance(outcome, NotSent):
        print(f"not delivered: {outcome.reason}", file=sys.stderr)
        print(
            f"override it for this date with --override {outcome.reason.split(':')[0]} "
            "if this is intended",
            file=sys.stderr,
        )
        return 1
    receipt, _ = outcome
    print(
        f"re-delivered {target.day} ({target.label}): {receipt['bytes']} bytes to "
        f"{receipt['remote_path']}"
    )
    print(f"receipt: {receipt['receipt_path']}")
    return 0


def _secrets_from_env() -> dict:
    from naviance_pipeline.defs.resources import SECRET_ENV

    return {field: os.environ.get(name) or None for field, name in SECRET_ENV.items()}


def _alert(target: Target, run_id: str) -> None:
    """No daemon runs the failure sensor here, so send its alert directly."""
    from naviance_pipeline.defs.sensors import failure_alert
    from naviance_pipeline.operations.alerts import notifiers_from_env, send_all

    try:
        notifiers = notifiers_from_env()
    except ValueError as exc:  # a misconfigured channel: said in one line, no traceback
        print(f"alert not sent: {exc}", file=sys.stderr)
        return
    if notifiers:
        alert = failure_alert(target.layout, target.day, run_id)
        for error in send_all(alert, notifiers):
            print(f"alert not sent: {error}", file=sys.stderr)


# ---- backfill: one job backfill for the daemon to create its runs ----


class WorkspaceError(ValueError):
    """The workspace file is missing, unreadable or names no usable code location (exit 2)."""


class CodeLocationError(RuntimeError):
    """The workspace's code location does not load here, or has no partitioned nightly job."""


@dataclass(frozen=True)
class Submitted:
    backfill_id: str
    partitions: list[str]
    url: str


def backfill_partitions(
    settings: Settings, first: str, last: str, districts: list[str]
) -> list[str]:
    """The partition keys of dates ``first``..``last`` (× ``districts``, default every district
    of the districts file), in the partitions' order: dates, then the file's districts.
    Raises NotAPartition for a date outside the partitions, DistrictChoiceError for a
    ``--district`` that does not fit."""
    from naviance_pipeline.defs.partitions import (
        DATE_DIM,
        daily_partitions,
        district_key,
        district_partitions,
    )
    from naviance_pipeline.operations.districts import load_districts

    for district in districts:
        chosen_district(settings.districts_file, settings.district, district)
    if settings.districts_file:
        config = load_districts(settings.districts_file)
        dates = district_partitions(settings, config).get_partitions_def_for_dimension(DATE_DIM)
    else:
        config, dates = None, daily_partitions(settings)
    check_partition_date(dates, first, "--from")
    check_partition_date(dates, last, "--to")
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    days = [(start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]
    if config is None:
        return days
    ids = [i for i in config.ids if not districts or i in districts]
    return [str(district_key(day, i)) for day in days for i in ids]


def _code_location_origin(workspace: str):
    """The code location of the workspace file, as ``dagster-daemon -w`` reads it."""
    from dagster._core.workspace.load import location_origins_from_yaml_paths

    if not Path(workspace).is_file():
        raise WorkspaceError(
            f"{workspace} does not exist: give the workspace file the daemon runs with "
            "(--workspace FILE)"
        )
    try:
        origins = location_origins_from_yaml_paths([workspace])
    except Exception as exc:  # a YAML or schema error, in Dagster's words
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WorkspaceError(f"{workspace} is not a usable workspace file: {first}") from None
    if len(origins) == 1:
        return origins[0]
    names = [o.location_name for o in origins]
    if "naviance_pipeline" in names:
        return origins[names.index("naviance_pipeline")]
    raise WorkspaceError(f"{workspace} has no code location naviance_pipeline: {names}")


def _nightly_partition_set_origin(instance: dg.DagsterInstance, workspace: str, origin):
    """The nightly job's partition set origin, as ``dagster job backfill`` stores it (the
    workspace's code location origin, the repository and the partition set named by the
    code). The code location is loaded in this process (``dagster job backfill`` spawns a
    code server for it): it checks that the code loads here before anything is stored."""
    from dagster._core.remote_origin import (
        InProcessCodeLocationOrigin,
        RemotePartitionSetOrigin,
        RemoteRepositoryOrigin,
    )

    from naviance_pipeline.defs.jobs import NIGHTLY_JOB

    in_process = InProcessCodeLocationOrigin(
        origin.loadable_target_origin, location_name=origin.location_name
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.BetaWarning)  # the code's: its server shows them
            with in_process.create_location(instance) as location:
                repos = list(location.get_repositories().values())
    except Exception as exc:  # the code's own error: one line, as the UI shows it
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        raise CodeLocationError(
            f"the code location {origin.location_name} of {workspace} does not load: {lines[0]}"
        ) from None
    for repo in repos:
        for partition_set in repo.get_partition_sets():
            if partition_set.job_name == NIGHTLY_JOB:
                return RemotePartitionSetOrigin(
                    repository_origin=RemoteRepositoryOrigin(
                        code_location_origin=origin, repository_name=repo.name
                    ),
                    partition_set_name=partition_set.name,
                )
    raise CodeLocationError(
        f"the code location {origin.location_name} of {workspace} has no partitioned {NIGHTLY_JOB}"
    )


def submit_backfill(first: str, last: str, districts: list[str], workspace: str) -> Submitted:
    """Store one job backfill of the nightly job (REQUESTED) for the daemon's backfill daemon
    to create and queue its runs, as the UI's Backfill does: the submission takes the same
    seconds for 2 or 2,000 partitions (``dagster job backfill`` creates every run itself,
    about a second each). The runs get the partitioned config's tags (the SFTP host) and
    ``dagster/backfill`` when the daemon creates them."""
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
    from dagster._core.utils import make_new_backfill_id
    from dagster._time import get_current_timestamp

    settings = Settings.from_env()
    partitions = backfill_partitions(settings, first, last, districts)
    location = _code_location_origin(workspace)
    with local_instance(settings) as instance:
        origin = _nightly_partition_set_origin(instance, workspace, location)
        backfill_id = make_new_backfill_id()
        instance.add_backfill(
            PartitionBackfill(
                backfill_id=backfill_id,
                partition_set_origin=origin,
                status=BulkActionStatus.REQUESTED,
                partition_names=partitions,
                from_failure=False,
                reexecution_steps=None,
                tags={},
                backfill_timestamp=get_current_timestamp(),
            )
        )
    url = f"{settings.ui_url.rstrip('/')}/runs/b/{backfill_id}"
    return Submitted(backfill_id, partitions, url)
