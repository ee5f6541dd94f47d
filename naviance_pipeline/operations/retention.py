"""Retention: purge old partitions of student data under the data root — the district's
data-retention control.

Raw snapshots, frames, findings, reports and packages of partitions older than ``keep_days``
days are removed. Kept whatever their age: every delivery receipt (the audit trail, and what
the guards compare against), and the package of the partition each target last received (what
Naviance holds now; ``redeliver`` needs it). Only names this module recognises as partition
dates in the known places are touched; anything else under the data root is left alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from upath import UPath

from naviance_pipeline.operations.storage import DataLayout
from naviance_pipeline.reporting import all_receipts, partition_date

# Folders under the district base holding one sub-folder per partition date.
DATED_FOLDERS = ("raw", "findings", "reports", "packages")
# ... and the one holding <asset>/<date>.parquet frames (folders of parts; a file before).
FRAMES = "frames"


@dataclass(frozen=True)
class _Entry:
    kind: str  # a DATED_FOLDERS name or FRAMES
    day: date
    path: UPath


def _dated_entries(layout: DataLayout) -> list[_Entry]:
    """Every partition folder or frame file this module recognises, with its date."""
    entries = []
    for kind in DATED_FOLDERS:
        root = layout.base / kind
        if root.is_dir():
            entries += [
                _Entry(kind, day, p)
                for p in root.iterdir()
                if p.is_dir() and (day := partition_date(p.name))
            ]
    frames = layout.base / FRAMES
    if frames.is_dir():
        entries += [
            _Entry(FRAMES, day, p)
            for asset in frames.iterdir()
            if asset.is_dir()
            for p in asset.iterdir()
            if p.name.endswith(".parquet") and (day := partition_date(p.name))
        ]
    return entries


def delivered_packages(layout: DataLayout, receipt_dirs: Iterable[UPath] | None = None) -> set[str]:
    """Partitions whose package must stay: per target, the last one delivered (what Naviance
    holds now) and the newest partition delivered (what the stale-partition guard compares)."""
    if receipt_dirs is None:
        root = layout.base / "receipts"
        receipt_dirs = [p for p in root.iterdir() if p.is_dir()] if root.exists() else []
    keep = set()
    for folder in receipt_dirs:  # one target's history each
        receipts = all_receipts(layout, [folder])
        if receipts:
            keep.add(receipts[-1]["partition"])  # all_receipts: oldest delivery first
            keep.add(max(r["partition"] for r in receipts))
    return keep


def _size(path: UPath) -> tuple[int, int]:
    """Files and bytes under ``path`` (a file or a folder)."""
    if path.is_file():
        return 1, path.fs.size(path.path)
    found = path.fs.find(path.path, detail=True)
    files = [info for info in found.values() if info.get("type") == "file"]
    return len(files), sum(int(info.get("size") or 0) for info in files)


def purge(
    layout: DataLayout,
    *,
    keep_days: int,
    today: date,
    target_receipts_dirs: Iterable[UPath] | None = None,
    dry_run: bool = False,
) -> dict:
    """Remove the raw snapshots, frames, findings, reports and packages of partitions dated
    before ``today - keep_days``, except the packages ``delivered_packages`` names (receipts
    are never touched). ``target_receipts_dirs`` limits which receipt folders count (default:
    every target's under the district). ``dry_run`` only reports what would go.

    Returns ``{"cutoff", "dry_run", "kept_packages", "removed": {kind: {"partitions", "files",
    "bytes"}}, "files", "bytes"}``: ``partitions`` are the dates removed per kind;
    ``kept_packages`` the dates older than the cutoff whose package was kept for a target."""
    if keep_days < 0:
        raise ValueError(f"keep_days must be 0 or more, got {keep_days}")
    cutoff = today - timedelta(days=keep_days)
    kept = delivered_packages(layout, target_receipts_dirs)
    removed = {
        kind: {"partitions": [], "files": 0, "bytes": 0} for kind in (*DATED_FOLDERS, FRAMES)
    }
    for entry in sorted(_dated_entries(layout), key=lambda e: (e.kind, e.day, str(e.path))):
        if entry.day >= cutoff or (entry.kind == "packages" and entry.day.isoformat() in kept):
            continue
        files, size = _size(entry.path)
        if not dry_run:
            entry.path.fs.rm(entry.path.path, recursive=entry.path.is_dir())
        tally = removed[entry.kind]
        if entry.day.isoformat() not in tally["partitions"]:
            tally["partitions"].append(entry.day.isoformat())
        tally["files"] += files
        tally["bytes"] += size
    return {
        "cutoff": cutoff.isoformat(),
        "dry_run": dry_run,
        "kept_packages": sorted(d for d in kept if d < cutoff.isoformat()),
        "removed": removed,
        "files": sum(t["files"] for t in removed.values()),
        "bytes": sum(t["bytes"] for t in removed.values()),
    }
