"""A target's delivery history: one JSON receipt per delivery, under the data root.

The history belongs to the target, not to the spelling of its URL: it lives in
``receipts/<name>/``, where ``name`` is the target's stable name (``naviance`` unless
configured), and each receipt records the target it was sent to as its ``history_key``
(``target.Target``: the secret-free URL in a fixed spelling, never ``describe()``, which is
for people). Writing ``localhost`` for
``127.0.0.1`` or moving the remote folder keeps the history (the change is logged and recorded
in the receipt as ``target_changed_from``).

A receipt is written twice. Before the upload, as ``status: delivering`` with the package's
summary and sha256 (and, beside it, ``<stem>.students.arrow``: the package's students, for the
identity guard); after it, as ``status: delivered`` with what the target reported. A receipt
still ``delivering`` when the next delivery takes the target's lock is the mark of a delivery
killed in flight: its file may or may not be on the server, so the guards treat it as
delivered (the safe side) and the report says "interrupted". Receipts are never purged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import asdict

import pyarrow as pa
from upath import UPath

from naviance_pipeline.delivery import facts
from naviance_pipeline.delivery.target import DeliveryResult, utc_now
from naviance_pipeline.operations.storage import (
    DataLayout,
    copy_file,
    ensure_private_dir,
    is_local,
    make_private,
    read_json,
    replace_file,
    slug,
    write_private_json,
)

DELIVERING, DELIVERED = "delivering", "delivered"
DEFAULT_NAME = "naviance"
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_STUDENTS = ".students.arrow"


def check_name(name: str) -> str:
    """A target name is a folder name: lower-case letters, digits, ``.``, ``_``, ``-``."""
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"a delivery target name must be 1-63 lower-case letters, digits, '.', '_' or '-' "
            f"starting with a letter or digit, not {name!r}"
        )
    return name


def receipt_order(receipt: dict) -> tuple[str, str]:
    """Oldest delivery first (an interrupted one by when it started)."""
    return (receipt.get("ended_at") or receipt["started_at"], receipt["partition"])


def is_delivered(receipt: dict) -> bool:
    """A completed delivery (receipts written before statuses existed are completed ones)."""
    return receipt.get("status", DELIVERED) == DELIVERED


def list_receipts(layout: DataLayout, name: str) -> list[dict]:
    """Every receipt of a target, interrupted ones included, oldest first."""
    folder = layout.receipts_dir(name)
    if not folder.exists():
        return []
    receipts = [
        read_json(p)
        for p in folder.iterdir()
        if p.name.endswith(".json") and not p.name.startswith(".")
    ]
    return sorted(receipts, key=receipt_order)


def last_receipt(layout: DataLayout, name: str) -> dict | None:
    """The most recent delivery to this target (what Naviance holds now, or may hold)."""
    receipts = list_receipts(layout, name)
    return receipts[-1] if receipts else None


def newest_delivered_partition(layout: DataLayout, name: str) -> str | None:
    return max((r["partition"] for r in list_receipts(layout, name)), default=None)


def adopt_legacy_history(
    layout: DataLayout, name: str, history_key: str, log: Callable[[str], None]
) -> None:
    """Receipts written before targets had names live in a folder named after the target's
    ``history_key`` (its URL): the first delivery under a name takes that folder over, so the
    history goes on."""
    url = history_key
    folder, legacy = layout.receipts_dir(name), layout.base / "receipts" / slug(url)
    if legacy.exists() and not list_receipts(layout, name):
        ensure_private_dir(folder)
        for path in legacy.iterdir():
            if path.name.endswith(".json"):
                replace_file(path, folder / path.name)
        log(f"the delivery history of {url} now lives under the target name {name!r}")


def students_path(layout: DataLayout, name: str, receipt: dict) -> UPath:
    return layout.receipts_dir(name) / f"{_stem(receipt)}{_STUDENTS}"


def read_students(layout: DataLayout, name: str, receipt: dict) -> pa.Table | None:
    """The students of a delivered package (None for receipts written before they were kept)."""
    path = students_path(layout, name, receipt)
    return facts.read_students(path) if path.exists() else None


def begin(
    layout: DataLayout,
    name: str,
    *,
    url: str,
    partition: str,
    run_id: str,
    overrides: list[str],
    summary: dict,
    package_sha256: str,
    students: pa.Table | UPath | None,
    redelivery: bool,
) -> dict:
    """The receipt of a delivery about to start (``status: delivering``), written before the
    first byte is sent; its students (a table, or the package's stored file) are kept first."""
    last = last_receipt(layout, name)
    receipt = {
        "status": DELIVERING,
        "target": url,
        "partition": partition,
        "run_id": run_id,
        "guard_overrides": sorted(overrides),
        "redelivery": redelivery,
        "summary": summary,
        "package_sha256": package_sha256,
        "started_at": utc_now(),
        "ended_at": None,
    }
    if last is not None and last["target"] != url:
        receipt["target_changed_from"] = last["target"]
    if students is not None:
        _keep_students(students, students_path(layout, name, receipt))
    _write(layout, name, receipt)
    return receipt


def _keep_students(students: pa.Table | UPath, path: UPath) -> None:
    ensure_private_dir(path.parent)
    if isinstance(students, pa.Table):
        facts.write_students(students, path)
        return
    if is_local(path) and is_local(students):
        path.unlink(missing_ok=True)
        os.link(students.path, path.path)  # the same bytes, never rewritten in place
    else:
        copy_file(students.fs, students.path, path)
    make_private(path)


def complete(layout: DataLayout, name: str, receipt: dict, result: DeliveryResult) -> dict:
    """The receipt of a finished delivery; the students of earlier receipts are dropped (only
    the last delivery's are compared)."""
    done = {**receipt, **asdict(result), "status": DELIVERED}
    path = _write(layout, name, done)
    keep = students_path(layout, name, done).name
    for other in layout.receipts_dir(name).iterdir():
        if other.name.endswith(_STUDENTS) and other.name != keep:
            other.unlink(missing_ok=True)
    return {**done, "receipt_path": str(path)}


def record(
    layout: DataLayout,
    name: str,
    result: DeliveryResult,
    *,
    partition: str,
    run_id: str,
    overrides: list[str] = (),
    summary: dict | None = None,
) -> dict:
    """A completed delivery's receipt in one step (for history made elsewhere, and tests)."""
    receipt = begin(
        layout,
        name,
        url=result.target,
        partition=partition,
        run_id=run_id,
        overrides=list(overrides),
        summary=summary or {},
        package_sha256=result.sha256,
        students=None,
        redelivery=False,
    )
    return complete(layout, name, receipt, result)


def abandon(layout: DataLayout, name: str, receipt: dict) -> None:
    """A delivery that failed before its file could land: no receipt."""
    students_path(layout, name, receipt).unlink(missing_ok=True)
    _path(layout, name, receipt).unlink(missing_ok=True)


def _stem(receipt: dict) -> str:
    return f"{receipt['partition']}__{receipt['run_id']}"


def _path(layout: DataLayout, name: str, receipt: dict) -> UPath:
    return layout.receipts_dir(name) / f"{_stem(receipt)}.json"


def _write(layout: DataLayout, name: str, receipt: dict) -> UPath:
    path = _path(layout, name, receipt)
    write_private_json(path, receipt)
    return path
