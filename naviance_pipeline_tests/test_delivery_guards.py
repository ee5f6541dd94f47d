"""Guards block a harmful delivery and leave the last good file in place; overrides are
recorded. These run the real graph against both targets: the local outbox and a real OpenSSH
server on loopback (skipped where sshd cannot run)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from naviance_pipeline.defs.resources import OVERRIDE_TAG
from naviance_pipeline.delivery.guards import evaluate_guards, parse_overrides
from naviance_pipeline.delivery.receipts import list_receipts
from naviance_pipeline.oneroster.spec import ZIP_NAME
from naviance_pipeline.operations.storage import DataLayout
from naviance_pipeline_tests.conftest import TINY_STUDENTS, make_settings
from naviance_pipeline_tests.pipeline_helpers import (
    failed_checks,
    materialized,
    rewrite_zip,
    run_job,
    zip_entries,
)

FIRST, SECOND = "2026-11-23", "2026-11-24"


def _users_edit(edit):
    """Apply ``edit(header, row) -> row | None`` to every student row (None drops it)."""

    def apply(rows):
        header, out = rows[0], [rows[0]]
        for row in rows[1:]:
            if row[header.index("role")] == "student":
                row = edit(header, row)
            if row is not None:
                out.append(row)
        return out

    return apply


def _drop_every_third(header, row):
    return None if int(row[0].lstrip("0") or 0) % 3 == 0 else row


def _disable_all(header, row):
    row[header.index("enabledUser")] = "false"
    return row


@dataclass
class Target:
    overrides: dict  # settings overrides that point delivery at this target
    landed: Path  # where the delivered NavianceOneRoster.zip can be read back here


@pytest.fixture(params=["outbox", "sftp"])
def target(request, tmp_path, monkeypatch) -> Target:
    if request.param == "outbox":
        return Target({}, tmp_path / "outbox" / ZIP_NAME)
    server = request.getfixturevalue("sftp_server")
    local_dir, remote = server.make_remote_dir(f"guards-{tmp_path.name}")
    monkeypatch.setenv("NAVIANCE_SFTP_PASSWORD", server.password)
    monkeypatch.setenv("NAVIANCE_SFTP_KNOWN_HOSTS", server.known_hosts_text)
    url = f"sftp://{server.user}@{server.host}:{server.port}{remote}"
    return Target({"delivery_target": url}, local_dir / ZIP_NAME)


@pytest.fixture
def delivered_first(tmp_path, tiny_district, target):
    """The first night delivered: returns (instance, home, target)."""
    with dg.instance_for_test() as instance:
        settings = make_settings(tmp_path, tiny_district, **target.overrides)
        assert run_job(settings, FIRST, instance).success
        yield instance, tmp_path, target


def _second_night(tmp_path, tiny_district, instance, target, edit, tags=None):
    source = rewrite_zip(tiny_district, tmp_path / "second.zip", "users.csv", _users_edit(edit))
    settings = make_settings(tmp_path, source, **target.overrides)
    before = target.landed.read_bytes()
    result = run_job(settings, SECOND, instance, tags=tags)
    return settings, result, before, target.landed


@pytest.mark.parametrize(
    ("edit", "rule"),
    [(_drop_every_third, "GRD-STUDENT-DROP"), (_disable_all, "GRD-EMPTY")],
)
def test_guard_blocks_and_keeps_the_last_good_file(delivered_first, tiny_district, edit, rule):
    instance, home, target = delivered_first
    _, result, before, outbox = _second_night(home, tiny_district, instance, target, edit)
    assert not result.success
    failed = failed_checks(result)
    assert list(failed) == ["naviance_package:delivery_guards"]
    assert rule in failed["naviance_package:delivery_guards"]
    assert "naviance_delivery" not in materialized(result)
    assert outbox.read_bytes() == before


def _schools(zip_path: Path) -> list[str]:
    entries = zip_entries(zip_path)
    orgs = next(data for name, data in entries.items() if name.endswith("orgs.csv"))
    rows = list(csv.DictReader(io.StringIO(orgs.decode("utf-8-sig"))))
    return sorted(r["sourcedId"] for r in rows if r["type"] == "school")


def test_vanished_school_blocks(delivered_first, tiny_district):
    instance, home, target = delivered_first
    gone, kept = _schools(tiny_district)[:2]

    def move(header, row):
        # The students of one school move to another: no drop in students, one empty school.
        orgs = header.index("orgSourcedIds")
        if row[orgs] == gone:
            row[orgs] = kept
        return row

    _, result, before, outbox = _second_night(home, tiny_district, instance, target, move)
    failed = failed_checks(result)
    assert list(failed) == ["naviance_package:delivery_guards"]
    assert "GRD-SCHOOL-VANISHED" in failed["naviance_package:delivery_guards"]
    assert outbox.read_bytes() == before


def test_override_lets_a_blocked_delivery_through_and_is_recorded(delivered_first, tiny_district):
    instance, home, target = delivered_first
    settings, result, before, outbox = _second_night(
        home,
        tiny_district,
        instance,
        target,
        _drop_every_third,
        # A third of the students gone: fewer students, and a third absent by sourcedId.
        tags={OVERRIDE_TAG: "GRD-STUDENT-DROP,GRD-ID-CHURN"},
    )
    assert result.success
    assert outbox.read_bytes() != before
    layout = DataLayout(settings.data_root, settings.district)
    receipts = list_receipts(layout, "naviance")
    assert [r["partition"] for r in receipts] == [FIRST, SECOND]
    assert receipts[-1]["guard_overrides"] == ["GRD-ID-CHURN", "GRD-STUDENT-DROP"]
    assert receipts[0]["guard_overrides"] == []
    meta = result.asset_materializations_for_node("naviance_delivery")[0].metadata
    assert meta["guard_overrides"].value == ["GRD-ID-CHURN", "GRD-STUDENT-DROP"]


def test_older_partition_is_rebuilt_but_not_sent_unless_overridden(tmp_path, tiny_district, target):
    """A past date is a rebuild: the run succeeds, its package is built and checked, the newer
    file on the target is never replaced; the delivery step says why and how to send it; the
    override tag sends it, recorded in the receipt."""
    settings = make_settings(tmp_path, tiny_district, **target.overrides)
    outbox = target.landed
    layout = DataLayout(settings.data_root, settings.district)
    with dg.instance_for_test() as instance:
        assert run_job(settings, SECOND, instance).success
        newest = outbox.read_bytes()
        stale = run_job(settings, FIRST, instance)
        assert stale.success
        assert failed_checks(stale) == {}
        assert Path(str(layout.package_path(FIRST))).exists()
        assert outbox.read_bytes() == newest
        assert [r["partition"] for r in list_receipts(layout, "naviance")] == [SECOND]
        [meta] = [m.metadata for m in stale.asset_materializations_for_node("naviance_delivery")]
        assert meta["sent"].value is False
        because = meta["not_sent_because"].value
        assert "GRD-STALE-PARTITION" in because and f"older than {SECOND}" in because
        assert OVERRIDE_TAG in meta["to_send_anyway"].value
        assert f"redeliver --date {FIRST}" in meta["to_send_anyway"].value
        report = json.loads(Path(meta["report_json"].value).read_text())
        assert report["verdict"]["status"] == "not sent"
        forced = run_job(settings, FIRST, instance, tags={OVERRIDE_TAG: "GRD-STALE-PARTITION"})
        assert forced.success
        assert outbox.read_bytes() != newest
        receipts = list_receipts(layout, "naviance")
        assert [r["partition"] for r in receipts] == [SECOND, FIRST]
        assert receipts[-1]["guard_overrides"] == ["GRD-STALE-PARTITION"]


def test_receipt_has_what_an_auditor_needs(tmp_path, tiny_district):
    settings = make_settings(tmp_path, tiny_district)
    with dg.instance_for_test() as instance:
        result = run_job(settings, SECOND, instance)
    assert result.success
    receipt_path = (
        result.asset_materializations_for_node("naviance_delivery")[0].metadata["receipt"].value
    )
    receipt = json.loads(Path(receipt_path).read_text())
    for key in (
        "target", "remote_path", "bytes", "sha256", "partition", "run_id", "attempts",
        "started_at", "ended_at", "guard_overrides",
    ):  # fmt: skip
        assert key in receipt, key
    assert receipt["partition"] == SECOND
    assert receipt["run_id"] == result.run_id
    assert receipt["bytes"] == Path(settings.delivery_target, ZIP_NAME).stat().st_size
    # The report is readable in the UI: Markdown on the package (before delivery) and on the
    # delivery, whose verdict says it was delivered.
    package = result.asset_materializations_for_node("naviance_package")[0].metadata
    assert package["report_md"].value.startswith("**NOT DELIVERED YET**")
    assert "- Blocks: nothing" in package["report_md"].value
    assert "Changes:" in package["report_md"].value
    delivered = result.asset_materializations_for_node("naviance_delivery")[0].metadata
    assert delivered["verdict"].value == "delivered"
    assert delivered["report_md"].value.startswith("**DELIVERED** — delivered to ")
    assert "Changes:" in delivered["report_md"].value
    [observed] = [
        e.asset_observation_data.asset_observation
        for e in result.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    ]
    assert observed.asset_key == dg.AssetKey("naviance_package")
    assert observed.partition == SECOND
    assert observed.metadata["verdict"].value == "delivered"


def _summary(partition, active, disabled, schools):
    return {
        "partition": partition,
        "students": active + disabled,
        "active_students": active,
        "disabled_students": disabled,
        "schools": schools,
    }


def test_guard_rules_in_isolation():
    last = _summary(FIRST, 100, 0, {"s1": 60, "s2": 40})
    same = _summary(SECOND, 95, 0, {"s1": 55, "s2": 40})
    assert evaluate_guards(same, last, newest_delivered=FIRST) == []
    drop = evaluate_guards(
        _summary(SECOND, 89, 0, {"s1": 49, "s2": 40}), last, newest_delivered=FIRST
    )
    assert [(f.rule, f.severity) for f in drop] == [("GRD-STUDENT-DROP", "error")]
    jump = evaluate_guards(
        _summary(SECOND, 94, 6, {"s1": 54, "s2": 40}), last, newest_delivered=FIRST
    )
    assert [(f.rule, f.severity) for f in jump] == [("GRD-DISABLED-JUMP", "warning")]
    gone = evaluate_guards(
        _summary(SECOND, 100, 0, {"s1": 100, "s2": 0}), last, newest_delivered=FIRST
    )
    assert [(f.rule, f.sourcedId) for f in gone] == [("GRD-SCHOOL-VANISHED", "s2")]
    first_ever = evaluate_guards(_summary(SECOND, 0, 0, {}), None, newest_delivered=None)
    assert [f.rule for f in first_ever] == ["GRD-EMPTY"]
    overridden = evaluate_guards(
        _summary(SECOND, 0, 0, {}), None, newest_delivered=None, overrides=["GRD-EMPTY"]
    )
    assert [(f.rule, f.severity) for f in overridden] == [("GRD-EMPTY", "warning")]
    assert "overridden" in overridden[0].message


def test_unknown_override_is_refused():
    assert parse_overrides(" grd-empty , GRD-STUDENT-DROP") == ["GRD-EMPTY", "GRD-STUDENT-DROP"]
    with pytest.raises(ValueError, match="GRD-STUDENT-DORP"):
        parse_overrides("GRD-STUDENT-DORP")


def _rekey(header, row):
    row[header.index("sourcedId")] = f"rekeyed-{row[header.index('sourcedId')]}"
    return row


def test_every_student_under_a_new_sourced_id_is_blocked_then_overridable(
    delivered_first, tiny_district
):
    instance, home, target = delivered_first
    settings, result, before, landed = _second_night(home, tiny_district, instance, target, _rekey)
    failed = failed_checks(result)
    assert list(failed) == ["naviance_package:delivery_guards"]
    assert "GRD-ID-CHURN" in failed["naviance_package:delivery_guards"]
    layout = DataLayout(settings.data_root, settings.district)
    found = json.loads(Path(layout.findings_path(SECOND, "guards").path).read_text())
    assert [f["rule"] for f in found if f["severity"] == "error"] == ["GRD-ID-CHURN"]
    assert f"{TINY_STUDENTS} of them appear under new sourcedIds" in found[0]["message"]
    assert landed.read_bytes() == before

    _, forced, _, _ = _second_night(
        home, tiny_district, instance, target, _rekey, tags={OVERRIDE_TAG: "GRD-ID-CHURN"}
    )
    assert forced.success
    assert landed.read_bytes() != before
    assert list_receipts(layout, "naviance")[-1]["guard_overrides"] == ["GRD-ID-CHURN"]


@pytest.mark.sftp
def test_a_renamed_target_keeps_its_history(tmp_path, tiny_district, sftp_server, monkeypatch):
    monkeypatch.setenv("NAVIANCE_SFTP_PASSWORD", sftp_server.password)
    monkeypatch.setenv("NAVIANCE_SFTP_KNOWN_HOSTS", sftp_server.known_hosts_text)
    first_dir, first = sftp_server.make_remote_dir(f"renamed-{tmp_path.name}")
    moved_dir, moved = sftp_server.make_remote_dir(f"moved-{tmp_path.name}")
    user, port = sftp_server.user, sftp_server.port
    original = f"sftp://{user}@127.0.0.1:{port}{first}"
    with dg.instance_for_test() as instance:
        settings = make_settings(tmp_path, tiny_district, delivery_target=original)
        assert run_job(settings, FIRST, instance).success
        source = rewrite_zip(
            tiny_district, tmp_path / "smaller.zip", "users.csv", _users_edit(_drop_every_third)
        )
        # Another spelling of the same host, then another folder: the history goes on, so the
        # third of the students gone is still caught.
        for url in (
            f"sftp://{user}@localhost:{port}{first}",
            f"sftp://{user}@127.0.0.1:{port}{moved}",
        ):
            renamed = make_settings(tmp_path, source, delivery_target=url)
            result = run_job(renamed, SECOND, instance)
            assert "GRD-STUDENT-DROP" in failed_checks(result)["naviance_package:delivery_guards"]
        assert not (moved_dir / ZIP_NAME).exists()
        same = make_settings(
            tmp_path, tiny_district, delivery_target=f"sftp://{user}@127.0.0.1:{port}{moved}"
        )
        assert run_job(same, SECOND, instance).success
    layout = DataLayout(settings.data_root, settings.district)
    receipts = list_receipts(layout, "naviance")
    assert [r["partition"] for r in receipts] == [FIRST, SECOND]
    assert receipts[-1]["target_changed_from"] == original
    assert (moved_dir / ZIP_NAME).read_bytes() != (first_dir / ZIP_NAME).read_bytes()
