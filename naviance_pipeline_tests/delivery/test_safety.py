"""Delivery safety in isolation: the target lock between real processes (one of them killed),
the identity guard, the figures proven to belong to the package, and the sweep of what dead
runs leave behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest
from upath import UPath

from naviance_pipeline.delivery.facts import facts_from_package, package_facts
from naviance_pipeline.delivery.guards import GuardLimits, evaluate_guards
from naviance_pipeline.delivery.lock import DeliveryLockTimeout, delivery_lock
from naviance_pipeline.operations.crash import temp_name
from naviance_pipeline.operations.storage import (
    DataLayout,
    sha256_of,
    sweep_leftovers,
    write_private_json,
)
from naviance_pipeline_tests.conftest import make_settings
from naviance_pipeline_tests.pipeline_helpers import run_job

# A process that takes the lock, says so, then dies by SIGKILL or holds it until its stdin
# closes.
_HOLDER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from naviance_pipeline.delivery.lock import delivery_lock
    with delivery_lock(Path(sys.argv[1]), run_id=sys.argv[2], timeout=60, log=print):
        print("held", flush=True)
        if sys.argv[3] == "die":
            os.kill(os.getpid(), signal.SIGKILL)
        sys.stdin.read()
    """
)


def _holder(lock: Path, run_id: str, mode: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(lock), run_id, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_killed_holder_never_keeps_the_lock_and_is_named_as_reclaimed(tmp_path):
    lock = tmp_path / "receipts" / "naviance" / ".lock"
    dead = _holder(lock, "run-killed", "die")
    assert dead.wait(timeout=60) == -9
    said: list[str] = []
    with delivery_lock(lock, run_id="run-next", timeout=5, log=said.append):
        pass
    assert len(said) == 1
    assert said[0].startswith("reclaimed the delivery lock") and "run-killed" in said[0]
    # Released properly this time: the next holder reclaims nothing.
    said.clear()
    with delivery_lock(lock, run_id="run-after", timeout=5, log=said.append):
        pass
    assert said == []


def test_a_waiter_gives_up_after_its_timeout_naming_the_holder(tmp_path):
    lock = tmp_path / ".lock"
    live = _holder(lock, "run-uploading", "hold")
    said: list[str] = []
    try:
        with (
            pytest.raises(DeliveryLockTimeout, match="run-uploading") as failure,
            delivery_lock(lock, run_id="run-waiting", timeout=1.5, log=said.append),
        ):
            pytest.fail("the lock was taken while another process held it")
        assert "nothing was sent" in str(failure.value)
        assert len(said) == 1 and said[0].startswith("waiting for the delivery lock")
    finally:
        live.stdin.close()
        assert live.wait(timeout=60) == 0
    with delivery_lock(lock, run_id="run-waiting", timeout=5, log=said.append):
        pass  # free once the holder has let go


def _summary(partition: str, active: int, schools: dict | None = None) -> dict:
    return {
        "partition": partition,
        "students": active,
        "active_students": active,
        "disabled_students": 0,
        "schools": schools or {"s1": active},
    }


def _students(ids: list[str], usernames: list[str] | None = None) -> pa.Table:
    blank = [""] * len(ids)
    return pa.table(
        {
            "sourcedId": ids,
            "active": [True] * len(ids),
            "username": usernames or blank,
            "identifier": blank,
            "email": blank,
        }
    )


LAST = [f"s{i:03d}" for i in range(100)]
NAMES = [f"pupil.{i:03d}" for i in range(100)]


def _churn(current: pa.Table, last: pa.Table | None = None, **kwargs):
    last = _students(LAST, NAMES) if last is None else last
    return evaluate_guards(
        _summary("2026-11-24", current.num_rows),
        _summary("2026-11-23", last.num_rows),
        newest_delivered="2026-11-23",
        students=current,
        last_students=last,
        **kwargs,
    )


def test_every_student_rekeyed_blocks_with_the_count_unchanged_and_says_why():
    rekeyed = _students([f"new{i:03d}" for i in range(100)], NAMES)
    found = _churn(rekeyed)
    assert [(f.rule, f.severity) for f in found] == [("GRD-ID-CHURN", "error")]
    message = found[0].message
    assert "100 of the 100 active students delivered on 2026-11-23" in message
    assert "100 of them appear under new sourcedIds" in message
    assert "Naviance would deactivate them and create them again" in message
    assert "First absent sourcedIds: s000, s001, s002, s003, s004" in message
    assert not any(name in message for name in NAMES)  # usernames are never shown


def test_identity_churn_counts_at_the_limit_and_without_recognised_students():
    # 10 of 100 absent (exactly the 10 % limit) passes; 11 blocks. New students that share
    # no username with the absent ones are not said to be the same people.
    at_limit = _students(LAST[10:] + [f"new{i}" for i in range(10)])
    assert _churn(at_limit) == []
    over = _students(LAST[11:] + [f"new{i}" for i in range(11)])
    [found] = _churn(over)
    assert found.rule == "GRD-ID-CHURN" and "appear under new sourcedIds" not in found.message
    [lowered] = _churn(over, overrides=["GRD-ID-CHURN"])
    assert lowered.severity == "warning" and "overridden" in lowered.message
    assert _churn(over, limits=GuardLimits(id_churn=0.2)) == []


def test_students_inactive_last_time_do_not_count_as_churn():
    last = _students(LAST, NAMES).set_column(1, "active", pa.array([False] * 50 + [True] * 50))
    assert _churn(_students(LAST[50:] + [f"n{i}" for i in range(50)]), last) == []


def test_a_school_with_no_active_students_last_time_cannot_vanish():
    found = evaluate_guards(
        _summary("2026-11-24", 100, {"s1": 100}),
        _summary("2026-11-23", 100, {"s1": 100, "s2": 0}),
        newest_delivered="2026-11-23",
    )
    assert found == []


def test_the_student_drop_at_exactly_the_limit_passes():
    last = _summary("2026-11-23", 100)
    at_limit = evaluate_guards(_summary("2026-11-24", 90), last, newest_delivered="2026-11-23")
    assert at_limit == []
    over = evaluate_guards(_summary("2026-11-24", 89), last, newest_delivered="2026-11-23")
    assert [f.rule for f in over] == ["GRD-STUDENT-DROP"]


def test_stored_figures_match_the_package_and_a_stale_summary_is_not_believed(
    tmp_path, tiny_district
):
    settings = make_settings(tmp_path, tiny_district)
    with dg.instance_for_test() as instance:
        selection = ["sis_extract", "users", "orgs", "demographics", "manifest"]
        assert run_job(
            settings, "2026-11-24", instance, selection=[*selection, "naviance_package"]
        ).success
    layout = DataLayout(settings.data_root, settings.district)
    package = layout.package_path("2026-11-24")
    sha = sha256_of(package)
    said: list[str] = []
    *stored, stored_file = package_facts(layout, "2026-11-24", package.path, sha, said.append)
    read = facts_from_package(package.path, "2026-11-24", sha)
    assert said == []  # the stamps matched: nothing was re-read
    assert stored[0] == read[0]
    assert stored[1].equals(read[1])
    assert stored[0]["active_students"] > 0
    assert stored_file == layout.students_path("2026-11-24")

    # A run killed between archiving a package and writing its summary: the summary is an
    # older package's. It must not be believed.
    older = {**read[0], "active_students": 10**6, "package_sha256": "0" * 64}
    write_private_json(layout.summary_path("2026-11-24"), older)
    summary, students, file = package_facts(layout, "2026-11-24", package.path, sha, said.append)
    assert summary == read[0] and students.equals(read[1]) and file is None
    assert len(said) == 1 and "does not belong to its package" in said[0]


def _dead_temp_name() -> str:
    """A temporary name (of ``x``) written by a process that really ran and has ended."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from naviance_pipeline.operations.crash import temp_name as t; print(t('x'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_the_sweep_removes_what_dead_runs_left_and_nothing_else(tmp_path):
    base = tmp_path / "districts" / "d1"
    dated = base / "packages" / "2026-11-24"
    dated.mkdir(parents=True)
    # A temporary ZIP written by a process that is gone now (a real process, really ended).
    dead_name = _dead_temp_name()
    dead_zip = dated / dead_name.replace(".x.", ".NavianceOneRoster.zip.", 1)
    dead_zip.write_bytes(b"student data")
    dead_folder = base / "frames" / "users" / dead_name.replace(".x.", ".2026-11-24.parquet.", 1)
    dead_folder.mkdir(parents=True)
    (dead_folder / "part-0.parquet").write_bytes(b"student data")
    live = dated / temp_name("summary.json")  # this process's: still being written
    live.write_bytes(b"{}")
    old_foreign = dated / ".users.csv.otherhost~12~34.0123abcd.tmp"  # another machine's
    old_foreign.write_bytes(b"old")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(old_foreign, (two_days_ago, two_days_ago))
    new_foreign = dated / ".orgs.csv.otherhost~12~34.0123abcd.tmp"
    new_foreign.write_bytes(b"recent: its run may still go on")
    kept = [
        live,
        new_foreign,
        dated / "NavianceOneRoster.zip",
        dated / ".NavianceOneRoster.zip.bak",  # somebody else's file
        dated / "notes.tmp",
    ]
    for path in kept[2:]:
        path.write_bytes(b"keep")

    removed = sweep_leftovers(UPath(base))

    assert sorted(removed) == sorted(
        str(p.relative_to(base)) for p in (dead_zip, dead_folder, old_foreign)
    )
    assert not dead_zip.exists() and not dead_folder.exists() and not old_foreign.exists()
    assert all(p.exists() for p in kept)


def test_a_run_launched_by_dagster_sweeps_its_district_first(tmp_path, tiny_district):
    settings = make_settings(tmp_path, tiny_district)
    layout = DataLayout(settings.data_root, settings.district)
    dead = _dead_temp_name()
    leftover = Path(layout.package_dir("2026-11-20").path) / dead
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"a killed run's half package")
    with dg.instance_for_test() as instance:
        assert run_job(settings, "2026-11-24", instance, selection=["sis_extract"]).success
    assert not leftover.exists()


def test_receipts_kept_under_the_url_before_targets_had_names_are_taken_over(tmp_path):
    from naviance_pipeline.delivery.receipts import adopt_legacy_history, list_receipts
    from naviance_pipeline.operations.storage import slug

    layout = DataLayout(str(tmp_path), "d1")
    url = "sftp://naviance@sftp.example:22/upload"
    old = {"target": url, "partition": "2026-11-20", "run_id": "r1", "started_at": "x"}
    write_private_json(layout.base / "receipts" / slug(url) / "2026-11-20__r1.json", old)
    said: list[str] = []

    adopt_legacy_history(layout, "naviance", url, said.append)

    assert list_receipts(layout, "naviance") == [old]
    assert len(said) == 1 and "now lives under the target name 'naviance'" in said[0]
    adopt_legacy_history(layout, "naviance", url, said.append)  # once only
    assert len(said) == 1


def test_a_receipt_keeps_its_students_when_the_date_is_packaged_again(tmp_path):
    from naviance_pipeline.delivery import receipts
    from naviance_pipeline.delivery.facts import write_facts

    layout = DataLayout(str(tmp_path), "d1")
    Path(layout.package_dir("2026-11-24").path).mkdir(parents=True)
    delivered, rebuilt = _students(LAST[:3]), _students(["other"])
    write_facts(layout, "2026-11-24", _summary("2026-11-24", 3), delivered, "a" * 64)
    receipt = receipts.begin(
        layout,
        "naviance",
        url="file:///outbox",
        partition="2026-11-24",
        run_id="r1",
        overrides=[],
        summary=_summary("2026-11-24", 3),
        package_sha256="a" * 64,
        students=layout.students_path("2026-11-24"),  # kept as a hard link
        redelivery=False,
    )
    write_facts(layout, "2026-11-24", _summary("2026-11-24", 1), rebuilt, "b" * 64)

    kept = receipts.read_students(layout, "naviance", receipt).replace_schema_metadata(None)
    assert kept.equals(delivered)


def test_the_identity_verdict_is_reused_only_against_the_same_last_delivery(tmp_path):
    from naviance_pipeline.delivery import receipts
    from naviance_pipeline.delivery.service import IDENTITY_KEY, check_guards
    from naviance_pipeline.delivery.target import DeliveryResult

    layout = DataLayout(str(tmp_path), "d1")
    result = DeliveryResult("file:///o", "/o/x.zip", 1, "a" * 64, 1, "t0", "t1", "os.replace")
    last = receipts.record(
        layout,
        "naviance",
        result,
        partition="2026-11-23",
        run_id="r1",
        summary=_summary("2026-11-23", 100),
    )
    receipts._keep_students(
        _students(LAST, NAMES), receipts.students_path(layout, "naviance", last)
    )
    rekeyed = _students([f"new{i:03d}" for i in range(100)], NAMES)
    summary = _summary("2026-11-24", 100)
    taken = check_guards(
        layout, "naviance", summary, limits=GuardLimits(), overrides=[], students=rekeyed
    )
    assert [f.rule for f in taken.findings] == ["GRD-ID-CHURN"]
    assert taken.identity["against"] == "a" * 64

    # Reused as it was taken (no students needed) while the last delivery is the same one…
    kept = {**summary, IDENTITY_KEY: taken.identity}
    again = check_guards(layout, "naviance", kept, limits=GuardLimits(), overrides=[])
    assert again.findings == taken.findings
    # …but not against another last delivery, nor with another limit.
    other = DeliveryResult("file:///o", "/o/x.zip", 1, "b" * 64, 1, "t2", "t3", "os.replace")
    newer = receipts.record(
        layout,
        "naviance",
        other,
        partition="2026-11-23",
        run_id="r2",
        summary=_summary("2026-11-23", 100),
    )
    receipts._keep_students(rekeyed, receipts.students_path(layout, "naviance", newer))
    fresh = check_guards(
        layout, "naviance", kept, limits=GuardLimits(), overrides=[], students=rekeyed
    )
    assert fresh.findings == []
    looser = check_guards(
        layout, "naviance", kept, limits=GuardLimits(id_churn=1.0), overrides=[], students=rekeyed
    )
    assert looser.findings == []
