"""Deliver an archived package: guards first, then the atomic upload, then the receipt.

The Dagster delivery asset and ``naviance-pipeline redeliver`` both call ``deliver_partition``
so a re-delivery from the UI or the command line follows exactly the same rules.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from upath import UPath

from naviance_pipeline.delivery.guards import GuardLimits, evaluate_guards
from naviance_pipeline.delivery.receipts import (
    last_receipt,
    newest_delivered_partition,
    write_receipt,
)
from naviance_pipeline.delivery.target import Target
from naviance_pipeline.oneroster.findings import Finding, has_errors
from naviance_pipeline.oneroster.spec import ZIP_NAME
from naviance_pipeline.storage import DataLayout, copy_file, read_json


class DeliveryBlocked(Exception):
    """A guard blocked delivery; the target was not touched."""

    def __init__(self, findings: list[Finding]):
        self.findings = findings
        blocking = sorted({f.rule for f in findings if f.severity == "error"})
        super().__init__(
            "delivery blocked by "
            + ", ".join(blocking)
            + ": "
            + "; ".join(f.message for f in findings if f.severity == "error")
        )


@dataclass(frozen=True)
class GuardOutcome:
    findings: list[Finding]
    last_partition: str | None

    @property
    def blocked(self) -> bool:
        return has_errors(self.findings)


def check_guards(
    layout: DataLayout,
    target: Target,
    summary: dict,
    *,
    limits: GuardLimits,
    overrides: list[str],
) -> GuardOutcome:
    """Compare a package summary with the last delivery to the same target."""
    last = last_receipt(layout, target.describe())
    findings = evaluate_guards(
        summary,
        last["summary"] if last else None,
        newest_delivered=newest_delivered_partition(layout, target.describe()),
        limits=limits,
        overrides=overrides,
    )
    return GuardOutcome(findings, last["partition"] if last else None)


def deliver_partition(
    layout: DataLayout,
    target: Target,
    partition: str,
    *,
    run_id: str,
    limits: GuardLimits,
    overrides: list[str],
    redelivery: bool = False,
    on_attempt: Callable[[int, BaseException | None], None] | None = None,
) -> tuple[dict, GuardOutcome]:
    """Deliver the archived package of ``partition``; raises DeliveryBlocked or DeliveryError."""
    package = layout.package_path(partition)
    if not package.exists():
        raise FileNotFoundError(f"no package was built for {partition} (expected {package})")
    summary = read_json(layout.summary_path(partition))
    outcome = check_guards(layout, target, summary, limits=limits, overrides=overrides)
    if outcome.blocked:
        raise DeliveryBlocked(outcome.findings)
    with local_file(package) as local:
        result = target.deliver(local, name=ZIP_NAME, token=run_id, on_attempt=on_attempt)
    receipt = write_receipt(
        layout,
        result,
        partition=partition,
        run_id=run_id,
        overrides=overrides,
        summary=summary,
        redelivery=redelivery,
    )
    return receipt, outcome


@contextlib.contextmanager
def local_file(path: UPath) -> Iterator[str]:
    """A local path to ``path``'s bytes for the upload: the file itself on a local data root;
    on any other (s3://, gcs://, …) a private temporary copy, removed afterwards (it is
    student data)."""
    if path.protocol in ("", "file", "local"):
        yield path.path
        return
    with tempfile.TemporaryDirectory(prefix="naviance-delivery-") as folder:  # 0700
        local = UPath(folder) / path.name
        copy_file(path.fs, path.path, local)
        yield local.path
