"""Run the pipeline from the command line on a persistent local Dagster instance.

``naviance-pipeline run`` materializes every asset for one date in-process, recording the run
in ``$DAGSTER_HOME`` (default ``.naviance/dagster_home``) so it shows in the UI afterwards.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import dagster as dg

from naviance_pipeline.delivery.guards import parse_overrides
from naviance_pipeline.delivery.service import DeliveryBlocked, deliver_partition
from naviance_pipeline.delivery.target import DeliveryError
from naviance_pipeline.settings import Settings

INSTANCE_YAML = """\
# Local Dagster instance for naviance-pipeline (SQLite storage under this folder).
telemetry:
  enabled: false
concurrency:
  runs:
    max_concurrent_runs: 1
  pools:
    default_limit: 1
"""


def local_instance(settings: Settings) -> dg.DagsterInstance:
    home = Path(os.environ.get("DAGSTER_HOME") or Path(settings.home, "dagster_home"))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_YAML)
    return dg.DagsterInstance.from_config(str(home))


def nightly_job() -> dg.JobDefinition:
    """The nightly job for the settings in the environment. Module-level so Dagster can
    reconstruct it: ``execute_job`` runs it as a deployed run does, storing each stage's frame
    and letting it go (``execute_in_process`` would keep every frame for the whole run)."""
    from naviance_pipeline.definitions import build_definitions
    from naviance_pipeline.jobs import NIGHTLY_JOB

    return build_definitions(Settings.from_env()).resolve_job_def(NIGHTLY_JOB)


def run_partition(day: str | None) -> int:
    from naviance_pipeline.partitions import daily_partitions

    settings = Settings.from_env()
    partition = day or daily_partitions(settings).get_last_partition_key()
    print(f"materializing every asset for {partition} (district {settings.district})")
    with local_instance(settings) as instance:
        result = dg.execute_job(
            dg.reconstructable(nightly_job),
            instance,
            tags={"dagster/partition": partition},
            # Progress at INFO: one line per stage, not Dagster's every debug event.
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
        )
        for evaluation in result.get_asset_check_evaluations():
            if not evaluation.passed:
                print(
                    f"check {evaluation.asset_key.to_user_string()}:{evaluation.check_name} "
                    f"failed ({evaluation.severity.value}): {evaluation.description}"
                )
        if not result.success:
            print(
                f"run {result.run_id} FAILED: nothing was delivered for {partition}",
                file=sys.stderr,
            )
            _alert(settings, partition, result.run_id)
            return 1
        delivered = result.asset_materializations_for_node("naviance_delivery")
        where = delivered[-1].metadata["remote_path"].value if delivered else "?"
        print(f"run {result.run_id} succeeded")
        print(f"NavianceOneRoster.zip landed at {where}")
        return 0


def redeliver(day: str, override: str) -> int:
    from naviance_pipeline.definitions import build_resources

    settings = Settings.from_env()
    resources = build_resources(settings)
    pipeline, delivery = resources["pipeline"], resources["delivery"]
    delivery = delivery.model_copy(update=_secrets_from_env())
    try:
        receipt, _ = deliver_partition(
            pipeline.layout,
            delivery.target(),
            day,
            run_id=f"redeliver-{uuid.uuid4().hex[:12]}",
            limits=delivery.limits,
            overrides=parse_overrides(override),
            redelivery=True,
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
    print(f"re-delivered {day}: {receipt['bytes']} bytes to {receipt['remote_path']}")
    print(f"receipt: {receipt['receipt_path']}")
    return 0


def _secrets_from_env() -> dict:
    from naviance_pipeline.resources import SECRET_ENV

    return {field: os.environ.get(name) or None for field, name in SECRET_ENV.items()}


def _alert(settings: Settings, partition: str, run_id: str) -> None:
    """No daemon runs the failure sensor here, so send its alert directly."""
    from naviance_pipeline.alerts import notifiers_from_env, send_all
    from naviance_pipeline.sensors import failure_alert
    from naviance_pipeline.storage import DataLayout

    notifiers = notifiers_from_env()
    if notifiers:
        alert = failure_alert(DataLayout(settings.data_root, settings.district), partition, run_id)
        for error in send_all(alert, notifiers):
            print(f"alert not sent: {error}", file=sys.stderr)
