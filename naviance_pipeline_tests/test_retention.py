"""Retention: old partitions go, receipts and each target's last delivered package stay, and
nothing unrecognised is touched."""

from __future__ import annotations

from datetime import date

import pytest

from naviance_pipeline.delivery.receipts import record
from naviance_pipeline.delivery.target import DeliveryResult
from naviance_pipeline.operations.retention import purge
from naviance_pipeline.operations.storage import DataLayout, write_private_bytes

TODAY = date(2026, 11, 30)
KEEP_DAYS = 30  # cutoff 2026-10-31: that date stays, 2026-10-30 goes
OLD = ("2026-09-01", "2026-10-01", "2026-10-30")
RECENT = ("2026-10-31", "2026-11-29")
TARGET_A, TARGET_B = "outbox-a", "naviance"  # target names: one history each
URLS = {TARGET_A: "file:///outbox-a", TARGET_B: "sftp://naviance@sftp.example:22/upload"}


def _partition(layout: DataLayout, day: str) -> None:
    """Everything a run stores for a date, 10 bytes per file. The users frame is a folder of
    two parts (as frames are written now), orgs one file (as frames were written before)."""
    for path in (
        layout.raw_dir(day) / "source" / "users.csv",
        layout.frames_base / "users" / f"{day}.parquet" / "part-0.parquet",
        layout.frames_base / "users" / f"{day}.parquet" / "part-1.parquet",
        layout.frames_base / "orgs" / f"{day}.parquet",
        layout.findings_path(day, "users"),
        layout.base / "reports" / day / "report.html",
        layout.package_path(day),
        layout.summary_path(day),
    ):
        write_private_bytes(path, b"0123456789")


def _deliver(layout: DataLayout, target: str, day: str, ended: str) -> None:
    url = URLS[target]
    result = DeliveryResult(url, "/NavianceOneRoster.zip", 10, "0" * 64, 1, ended, ended, "x")
    record(layout, target, result, partition=day, run_id=f"run-{day}")


@pytest.fixture
def layout(tmp_path) -> DataLayout:
    layout = DataLayout(str(tmp_path), "d1")
    for day in (*OLD, *RECENT):
        _partition(layout, day)
    # Target A last received 2026-10-01 (old): its package must survive.
    _deliver(layout, TARGET_A, "2026-09-01", "2026-09-01T07:00:00+00:00")
    _deliver(layout, TARGET_A, "2026-10-01", "2026-10-01T07:00:00+00:00")
    # Target B's last delivery is recent; its old 2026-09-01 delivery protects nothing.
    _deliver(layout, TARGET_B, "2026-09-01", "2026-09-01T07:05:00+00:00")
    _deliver(layout, TARGET_B, "2026-11-29", "2026-11-29T07:00:00+00:00")
    return layout


def _unknown_files(layout: DataLayout) -> list:
    return [
        layout.base / "notes.txt",
        layout.base / "raw" / "README",
        layout.base / "raw" / "2026-02-30" / "x.csv",  # not a real date
        layout.base / "frames" / "users" / "latest.parquet",
        layout.base / "frames" / "users" / "2026-01-01.parquet.bak",
        layout.base / "packages" / "archive" / "NavianceOneRoster.zip",
        layout.base / "exports" / "2026-01-01" / "x.csv",  # a folder retention does not own
    ]


def test_old_partitions_are_removed_and_recent_ones_kept(layout):
    result = purge(layout, keep_days=KEEP_DAYS, today=TODAY)

    assert result["cutoff"] == "2026-10-31"
    for day in OLD:
        assert not layout.raw_dir(day).exists()
        assert not (layout.frames_base / "users" / f"{day}.parquet").exists()
        assert not layout.findings_path(day, "users").parent.exists()
        assert not (layout.base / "reports" / day).exists()
    for day in RECENT:
        assert layout.raw_dir(day).exists()
        assert (layout.frames_base / "orgs" / f"{day}.parquet").exists()
        assert layout.package_path(day).exists()
        assert (layout.base / "reports" / day / "report.html").exists()


def test_the_last_delivered_package_of_every_target_and_all_receipts_stay(layout):
    receipts = sorted(p for p in (layout.base / "receipts").rglob("*.json"))

    result = purge(layout, keep_days=KEEP_DAYS, today=TODAY)

    assert layout.package_path("2026-10-01").exists()  # what target A holds now
    assert layout.summary_path("2026-10-01").exists()
    assert not layout.package_path("2026-09-01").exists()
    assert not layout.package_path("2026-10-30").exists()
    assert result["kept_packages"] == ["2026-10-01"]
    assert sorted(p for p in (layout.base / "receipts").rglob("*.json")) == receipts
    assert len(receipts) == 4
    # Only the package is kept: the rest of that partition is still purged.
    assert not layout.raw_dir("2026-10-01").exists()


def test_the_result_counts_what_was_removed(layout):
    result = purge(layout, keep_days=KEEP_DAYS, today=TODAY)

    removed = result["removed"]
    assert removed["raw"] == {"partitions": list(OLD), "files": 3, "bytes": 30}
    assert removed["frames"] == {"partitions": list(OLD), "files": 9, "bytes": 90}
    assert removed["findings"]["files"] == 3
    assert removed["reports"]["files"] == 3
    assert removed["packages"] == {
        "partitions": ["2026-09-01", "2026-10-30"],
        "files": 4,
        "bytes": 40,
    }
    assert result["files"] == 3 + 9 + 3 + 3 + 4
    assert result["bytes"] == 10 * result["files"]


def test_unknown_files_are_left_alone(layout):
    unknown = _unknown_files(layout)
    for path in unknown:
        write_private_bytes(path, b"keep me")

    purge(layout, keep_days=0, today=TODAY)

    assert all(path.exists() for path in unknown)


def test_dry_run_removes_nothing_but_reports_the_same(layout):
    dry = purge(layout, keep_days=KEEP_DAYS, today=TODAY, dry_run=True)

    assert dry["dry_run"] is True
    assert all(layout.raw_dir(day).exists() for day in OLD)
    real = purge(layout, keep_days=KEEP_DAYS, today=TODAY)
    assert {k: v for k, v in dry.items() if k != "dry_run"} == {
        k: v for k, v in real.items() if k != "dry_run"
    }


def test_only_the_given_receipt_folders_protect_packages(layout):
    only_b = [layout.receipts_dir(TARGET_B)]

    purge(layout, keep_days=KEEP_DAYS, today=TODAY, target_receipts_dirs=only_b)

    assert not layout.package_path("2026-10-01").exists()


def test_a_stale_redelivery_keeps_the_newest_partition_too(tmp_path):
    layout = DataLayout(str(tmp_path), "d1")
    for day in ("2026-09-01", "2026-09-02"):
        _partition(layout, day)
    _deliver(layout, TARGET_A, "2026-09-02", "2026-09-02T07:00:00+00:00")
    _deliver(layout, TARGET_A, "2026-09-01", "2026-09-03T07:00:00+00:00")  # overridden re-run

    purge(layout, keep_days=KEEP_DAYS, today=TODAY)

    assert layout.package_path("2026-09-01").exists()  # what Naviance holds now
    assert layout.package_path("2026-09-02").exists()  # what the stale guard compares with


def test_an_empty_data_root_and_a_negative_keep_days(tmp_path):
    layout = DataLayout(str(tmp_path), "d1")

    assert purge(layout, keep_days=1, today=TODAY)["files"] == 0
    with pytest.raises(ValueError, match="keep_days"):
        purge(layout, keep_days=-1, today=TODAY)
