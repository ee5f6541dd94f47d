"""``naviance_delivery``: the package, guarded, uploaded atomically, with a receipt."""

import dagster as dg

from naviance_pipeline.defs.assets.common import partition_of, refresh_report
from naviance_pipeline.defs.resources import DeliveryResource, PipelineResource
from naviance_pipeline.delivery.service import DeliveryBlocked, NotSent, deliver_partition
from naviance_pipeline.delivery.target import DeliveryError
from naviance_pipeline.operations.crash import crashpoint


def build_delivery_asset(partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(
        name="naviance_delivery",
        group_name="delivery",
        kinds={"sftp"},
        deps=["naviance_package"],
        partitions_def=partitions_def,
    )
    def naviance_delivery(
        context: dg.AssetExecutionContext,
        pipeline: PipelineResource,
        delivery: DeliveryResource,
    ) -> dg.MaterializeResult:
        """Copies this date's NavianceOneRoster.zip to the configured target (a local folder or
        an SFTP server), one delivery per target at a time (a lock no dead run can keep), the
        upload itself in one of the upload slots of its host (NAVIANCE_UPLOADS_PER_HOST;
        the wait shows as upload_wait_seconds):
        guards first (GRD-*, on the package's own figures, against the target's history),
        then upload to a temporary name, size check and atomic rename, so Naviance only ever
        sees a complete file. Writes a receipt under the data root. A date older than one
        already delivered is a rebuild: it is not sent and the step succeeds, its metadata
        saying why and how to send it anyway (the run tag
        naviance/override-guards=GRD-STALE-PARTITION, or naviance-pipeline redeliver)."""
        day, pipeline, delivery = partition_of(context, pipeline, delivery)
        target = delivery.target()

        def on_attempt(attempt: int, error: BaseException | None) -> None:
            if error is None:
                context.log.info(f"delivery attempt {attempt} to {target.describe()}")
            else:
                context.log.warning(f"delivery attempt {attempt} failed: {error}")

        try:
            outcome = deliver_partition(
                pipeline.layout,
                target,
                day,
                delivery.plan(context.run.tags),
                run_id=context.run.run_id,
                on_attempt=on_attempt,
                log=context.log.warning,
            )
        except DeliveryBlocked as exc:
            raise dg.Failure(str(exc), allow_retries=False) from exc
        except (DeliveryError, FileNotFoundError) as exc:
            raise dg.Failure(f"delivery failed: {exc}", allow_retries=False) from exc
        if isinstance(outcome, NotSent):
            return _not_sent(context, pipeline, day, outcome, delivery.target_name)
        receipt, _guards = outcome
        context.log.info(f"delivered {receipt['bytes']} bytes to {receipt['remote_path']}")
        report = refresh_report(pipeline, day, delivered=True)
        _update_package_verdict(context, report)
        crashpoint("naviance_delivery:end")
        return dg.MaterializeResult(
            metadata={
                "target": receipt["target"],
                "remote_path": receipt["remote_path"],
                "bytes": receipt["bytes"],
                "sha256": receipt["sha256"],
                "sent": True,
                "attempts": receipt["attempts"],
                "started_at": receipt["started_at"],
                "ended_at": receipt["ended_at"],
                # seconds waited for an upload slot of the host (NAVIANCE_UPLOADS_PER_HOST)
                "upload_wait_seconds": receipt["upload_wait_seconds"],
                "guard_overrides": dg.MetadataValue.json(receipt["guard_overrides"]),
                "target_name": delivery.target_name,
                "receipt": dg.MetadataValue.path(receipt["receipt_path"]),
                **report,
            }
        )

    return naviance_delivery


def _not_sent(
    context: dg.AssetExecutionContext,
    pipeline: PipelineResource,
    day: str,
    outcome: NotSent,
    target_name: str,
) -> dg.MaterializeResult:
    """A past date rebuilt: its package was built and checked, but a newer date is already on
    the target, so nothing was sent. Succeeds, saying so plainly."""
    context.log.info(f"{day} not sent: {outcome.reason}; {outcome.how_to_send}")
    report = refresh_report(pipeline, day, not_sent=outcome.reason)
    _update_package_verdict(context, report)
    return dg.MaterializeResult(
        metadata={
            "sent": False,
            "not_sent_because": outcome.reason,
            "to_send_anyway": outcome.how_to_send,
            "newest_delivered": outcome.newest,
            "target_name": target_name,
            **report,
        }
    )


def _update_package_verdict(context: dg.AssetExecutionContext, report: dict) -> None:
    """The package's verdict after the delivery decision, on the package's own event list
    (an observation of the date): its materialization was recorded before delivery."""
    context.log_event(
        dg.AssetObservation(
            asset_key="naviance_package",
            partition=context.partition_key,
            metadata={k: report[k] for k in ("verdict", "report_md")},
        )
    )
