"""Deliver an archived package: one critical section per target — decide, upload, receipt.

The Dagster delivery asset and ``naviance-pipeline redeliver`` both call ``deliver_partition``,
so a re-delivery from the UI or the command line follows exactly the same rules:

1. take the target's lock (lock.py: across processes, or machines with PostgreSQL locks; a
   dead holder never keeps it);
2. pin the package's bytes (a hard link, or a private copy off a remote data root) and hash
   them: what is judged is what is sent, even if the date is re-packaged meanwhile;
3. decide whether the date is sent at all: a date older than one already delivered to the
   target is not sent (``NotSent``, not an error: a past date re-runs as a rebuild) unless
   GRD-STALE-PARTITION is overridden; decided here, against the history read inside the lock;
4. judge the bytes (facts.py: the package's own figures, proven by its sha256) against the
   target's history: the guards;
5. write the receipt as ``delivering``, upload, rewrite it as ``delivered``. The upload alone
   takes one of the upload slots of the target's host (``NAVIANCE_UPLOADS_PER_HOST``, lock.py),
   so deliveries of many districts to one server wait for each other only while they upload;
   the receipt records that wait (``upload_wait_seconds``) and its ``started_at``/``ended_at``
   lie inside the slot.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pyarrow as pa
from upath import UPath

from naviance_pipeline.delivery import receipts
from naviance_pipeline.delivery.errors import DeliveryError
from naviance_pipeline.delivery.facts import package_facts
from naviance_pipeline.delivery.guards import GuardLimits, evaluate_guards, identity_findings
from naviance_pipeline.delivery.lock import hold, locks_backend, target_lock, upload_slot
from naviance_pipeline.delivery.target import OnAttempt, Target
from naviance_pipeline.oneroster.findings import ERROR, Finding, has_errors
from naviance_pipeline.oneroster.spec import ZIP_NAME
from naviance_pipeline.operations.crash import crashpoint, is_dead_leftover, temp_name
from naviance_pipeline.operations.storage import DataLayout, copy_file, is_local

DELIVERY_COPY = "naviance-delivery"
IDENTITY_KEY = "identity"  # the identity guard's verdict, kept in the package's summary


class DeliveryBlocked(Exception):
    """A guard blocked delivery; the target was not touched."""

    def __init__(self, findings: list[Finding]):
        self.findings = findings
        blocking = sorted({f.rule for f in findings if f.severity == ERROR})
        super().__init__(
            "delivery blocked by "
            + ", ".join(blocking)
            + ": "
            + "; ".join(f.message for f in findings if f.severity == ERROR)
        )


STALE = "GRD-STALE-PARTITION"


@dataclass(frozen=True)
class NotSent:
    """A date older than the newest one delivered to the target: not sent (nothing uploaded,
    no receipt written) and not an error. The newer file on the target stays."""

    partition: str
    newest: str
    name: str

    @property
    def reason(self) -> str:
        return (
            f"{STALE}: {self.partition} is older than {self.newest}, already delivered to "
            f"target {self.name!r}; sending it would replace newer data"
        )

    @property
    def how_to_send(self) -> str:
        return (
            f"to send {self.partition} anyway, re-run naviance_delivery for it with the run tag "
            f"naviance/override-guards={STALE}, or run: naviance-pipeline redeliver "
            f"--date {self.partition} --override {STALE}"
        )


@dataclass(frozen=True)
class GuardOutcome:
    findings: list[Finding]
    last_partition: str | None
    # The identity guard's verdict and what it was taken against, for the package's summary
    # (None when it was not evaluated): the delivery reuses it while the baseline is the same.
    identity: dict | None = None

    @property
    def blocked(self) -> bool:
        return has_errors(self.findings)


@dataclass(frozen=True)
class DeliveryPlan:
    """How one delivery goes: the target's stable name (its history), the guards' limits and
    overrides, how long to wait for another delivery to the same target (or for an upload slot
    of its host), how many uploads one host takes at a time, and where the locks live
    (lock.py: blank for files, else a ``postgresql://`` URL)."""

    name: str
    limits: GuardLimits
    overrides: list[str]
    lock_timeout: float
    uploads_per_host: int = 1
    locks_url: str = ""


def check_guards(
    layout: DataLayout,
    name: str,
    summary: dict,
    *,
    limits: GuardLimits,
    overrides: list[str],
    students: pa.Table | None = None,
    judge_date: bool = False,
) -> GuardOutcome:
    """Compare a package's figures with the history of the target named ``name``: its last
    delivery (counts, students); with ``judge_date`` (the delivery decision, inside the
    target's lock) also its newest delivered date. The package step's own check judges the
    package, not its date: a past date is a rebuild."""
    history = receipts.list_receipts(layout, name)
    last = history[-1] if history else None
    identity = None
    if last is not None:
        baseline = {"against": last.get("package_sha256"), "limit": limits.id_churn}
        cached = summary.get(IDENTITY_KEY) or {}
        if baseline["against"] and all(cached.get(k) == v for k, v in baseline.items()):
            identity = [Finding(**f) for f in cached["findings"]]
        elif students is not None:
            last_students = receipts.read_students(layout, name, last)
            if last_students is not None:
                identity = identity_findings(students, last_students, last["partition"], limits)
    newest = max((r["partition"] for r in history), default=None)
    findings = evaluate_guards(
        summary,
        last["summary"] if last else None,
        newest_delivered=newest if judge_date else None,
        limits=limits,
        overrides=overrides,
        identity=identity,
    )
    verdict = None
    if identity is not None:
        verdict = {**baseline, "findings": [f.to_dict() for f in identity]}
    return GuardOutcome(findings, last["partition"] if last else None, verdict)


def deliver_partition(
    layout: DataLayout,
    target: Target,
    partition: str,
    plan: DeliveryPlan,
    *,
    run_id: str,
    redelivery: bool = False,
    on_attempt: OnAttempt | None = None,
    log: Callable[[str], None] = lambda _message: None,
) -> tuple[dict, GuardOutcome] | NotSent:
    """Deliver the archived package of ``partition``: (receipt, guards) once sent; NotSent
    for a date older than one already delivered (GRD-STALE-PARTITION not overridden). Raises
    DeliveryBlocked, DeliveryError (DeliveryLockTimeout and UploadSlotTimeout among them) or
    FileNotFoundError, and then nothing was sent."""
    package = layout.package_path(partition)
    if not package.exists():
        raise FileNotFoundError(f"no package was built for {partition} (expected {package})")
    url, name = target.history_key, plan.name
    what = f"target {name!r} ({target.describe()})"
    locks = locks_backend(plan.locks_url)
    waits = {"run_id": run_id, "timeout": plan.lock_timeout, "log": log}
    with hold(locks, target_lock(layout, name, what), **waits):
        crashpoint("delivery:locked")
        receipts.adopt_legacy_history(layout, name, url, log)
        last = receipts.last_receipt(layout, name)
        if last is not None and not receipts.is_delivered(last):
            log(
                f"the delivery of {last['partition']} by run {last['run_id']} was interrupted "
                "in flight: it is treated as delivered (the server may hold it)"
            )
        if last is not None and last["target"] != url:
            log(
                f"the URL of {name!r} changed since the delivery of {last['partition']}: "
                f"{last['target']} → {url}; its history goes on (recorded in the receipt)"
            )
        newest = receipts.newest_delivered_partition(layout, name)
        if newest is not None and partition < newest and STALE not in plan.overrides:
            return NotSent(partition, newest, name)
        with pinned(package) as local:
            sha256 = _sha256(local)
            summary, students, stored = package_facts(layout, partition, local, sha256, log)
            outcome = check_guards(
                layout,
                name,
                summary,
                limits=plan.limits,
                overrides=plan.overrides,
                students=students,
                judge_date=True,
            )
            if outcome.blocked:
                raise DeliveryBlocked(outcome.findings)
            receipt = receipts.begin(
                layout,
                name,
                url=url,
                partition=partition,
                run_id=run_id,
                overrides=plan.overrides,
                summary=summary,
                package_sha256=sha256,
                students=students if stored is None else stored,
                redelivery=redelivery,
            )
            crashpoint("delivery:decided")
            host, slots = target.upload_host, plan.uploads_per_host
            try:
                with upload_slot(locks, layout, host, slots, **waits) as waited:
                    receipt["upload_wait_seconds"] = round(waited, 3)
                    result = target.deliver(
                        local, name=ZIP_NAME, token=run_id, on_attempt=on_attempt
                    )
            except DeliveryError:
                receipts.abandon(layout, name, receipt)  # it failed before the file landed
                raise
            crashpoint("delivery:uploaded")
            return receipts.complete(layout, name, receipt, result), outcome


@contextlib.contextmanager
def pinned(path: UPath) -> Iterator[str]:
    """A local path to the bytes of ``path`` as they are now, for the whole delivery: a hard
    link beside it on a local data root (a re-built package replaces the name, not these
    bytes), a private copy otherwise. Temporary names, so a killed run's are swept."""
    if is_local(path):
        link = os.path.join(os.path.dirname(path.path), temp_name(path.name))
        try:
            os.link(path.path, link)
        except OSError:  # a file system without hard links
            shutil.copyfile(path.path, link)
            os.chmod(link, 0o600)
        try:
            yield link
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(link)
        return
    folder = os.path.join(tempfile.gettempdir(), temp_name(DELIVERY_COPY))
    os.mkdir(folder, 0o700)
    try:
        local = UPath(folder) / path.name
        copy_file(path.fs, path.path, local)
        yield local.path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def sweep_delivery_copies() -> list[str]:
    """Private copies of packages (off a remote data root) left in the temporary folder by a
    killed delivery; only our own names are looked at."""
    folder, prefix, removed = tempfile.gettempdir(), f".{DELIVERY_COPY}.", []
    for entry in os.scandir(folder):
        if entry.name.startswith(prefix) and is_dead_leftover(
            entry.name, entry.stat(follow_symlinks=False).st_mtime
        ):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
    return removed
