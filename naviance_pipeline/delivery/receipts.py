"""Delivery receipts: one JSON record per delivery, per target, under the data root.

A receipt names the target without secrets, the remote path, bytes, sha256, partition, run id,
attempts, start and end times, the guard overrides used and the package summary the next
night's guards compare against. Receipts are never purged by retention.
"""

from __future__ import annotations

from dataclasses import asdict

from naviance_pipeline.delivery.target import DeliveryResult
from naviance_pipeline.storage import DataLayout, read_json, write_private_json


def write_receipt(
    layout: DataLayout,
    result: DeliveryResult,
    *,
    partition: str,
    run_id: str,
    overrides: list[str],
    summary: dict,
    redelivery: bool = False,
) -> dict:
    receipt = {
        **asdict(result),
        "partition": partition,
        "run_id": run_id,
        "guard_overrides": sorted(overrides),
        "redelivery": redelivery,
        "summary": summary,
    }
    path = layout.receipts_dir(result.target) / f"{partition}__{run_id}.json"
    write_private_json(path, receipt)
    receipt["receipt_path"] = str(path)
    return receipt


def list_receipts(layout: DataLayout, target: str) -> list[dict]:
    """All receipts for a target, oldest delivery first."""
    folder = layout.receipts_dir(target)
    if not folder.exists():
        return []
    receipts = [read_json(p) for p in folder.iterdir() if p.name.endswith(".json")]
    return sorted(receipts, key=lambda r: (r["ended_at"], r["partition"]))


def last_receipt(layout: DataLayout, target: str) -> dict | None:
    """The most recent delivery to this target (what Naviance holds now)."""
    receipts = list_receipts(layout, target)
    return receipts[-1] if receipts else None


def newest_delivered_partition(layout: DataLayout, target: str) -> str | None:
    receipts = list_receipts(layout, target)
    return max((r["partition"] for r in receipts), default=None)
