"""The SIS export as an external source: ``watch_sis_export`` sees a new export land (a local
folder, a memory:// URL, the real sftp server), requests that date's run once however often it
ticks, hashes the content only when a listing changed; a stale export is SRC-STALE-EXPORT (a
warning, or blocking when configured) with one alert naming the district and the age, and the
export's age is in sis_extract's metadata and the report.

Every sensor evaluation is real: the definitions' sensor, evaluated on a temporary Dagster
instance with the definitions' resources; its observations are reported to that instance as
the daemon does."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import zipfile
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import fsspec
import pytest
import yaml
from upath import UPath

from naviance_pipeline.definitions import build_definitions
from naviance_pipeline.defs.sensors import EXPORT, EXPORT_SENSOR
from naviance_pipeline.oneroster.sample import write_sample_district
from naviance_pipeline.operations.settings import Settings
from naviance_pipeline.operations.storage import DataLayout, read_json
from naviance_pipeline.reporting.report import render_report_text
from naviance_pipeline.sources.freshness import Limits, look, observe, stale_finding
from naviance_pipeline_tests.conftest import make_settings
from naviance_pipeline_tests.local_servers import received_alert
from naviance_pipeline_tests.pipeline_helpers import run_job

DAY = "2026-11-24"
HOURS = 3600


def _today(timezone: str = "America/New_York") -> str:
    return datetime.now(ZoneInfo(timezone)).date().isoformat()


class Watch:
    """The definitions' ``watch_sis_export`` ticking on one temporary instance, its cursor kept
    between ticks as the daemon keeps it; each tick's observations reported to the instance."""

    def __init__(self, settings: Settings, instance: dg.DagsterInstance) -> None:
        self.defs = build_definitions(settings)
        self.sensor = self.defs.resolve_sensor_def(EXPORT_SENSOR)
        self.instance = instance
        self.cursor: str | None = None

    def tick(self) -> dg.SensorResult:
        with dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursor,
            resources=self.defs.resources,
            repository_def=self.defs.get_repository_def(),
        ) as context:
            result = self.sensor.evaluate_tick(context)
        self.cursor = result.cursor
        for event in result.asset_events:
            self.instance.report_runless_asset_event(event)
        return result

    def latest_version(self, partition: str | None = None) -> str | None:
        records = self.instance.fetch_observations(
            dg.AssetRecordsFilter(
                asset_key=EXPORT, asset_partitions=[partition] if partition else None
            ),
            limit=1,
        ).records
        return records[0].asset_observation.tags.get("dagster/data_version") if records else None


def _other_export(path: Path, seed: int) -> Path:
    """Another export of the same kind (other synthetic people): a new export landing."""
    write_sample_district(str(path), students=30, schools=2, seed=seed)
    return path


def _unzip(archive: Path, folder: Path) -> None:
    with zipfile.ZipFile(archive) as z:
        z.extractall(folder)


def _ticks_until_quiet(watch: Watch, n: int = 3) -> list[dg.RunRequest]:
    return [r for _ in range(n) for r in watch.tick().run_requests]


def test_an_export_landing_in_a_local_folder_requests_its_date_once(
    tmp_path, tiny_district, monkeypatch
):
    monkeypatch.delenv("NAVIANCE_ALERT_URLS", raising=False)
    folder = tmp_path / "exports" / "oneroster"
    settings = make_settings(tmp_path / "home", folder, run_trigger="arrival")
    with dg.instance_for_test() as instance:
        watch = Watch(settings, instance)
        nothing = watch.tick()
        assert nothing.run_requests == [] and "no export" in nothing.skip_message

        _unzip(tiny_district, folder)  # the export job writes its files
        before = _today()
        (request,) = watch.tick().run_requests
        assert request.partition_key in {before, _today()}
        assert request.run_key == f"arrival:test-district:{request.partition_key}"
        first = watch.latest_version()
        assert first and len(first) == 64

        assert _ticks_until_quiet(watch) == []  # the same export: no second run, no new version
        assert watch.latest_version() == first

        # A second export the same day: seen (a new version) but the date already ran.
        _unzip(_other_export(tmp_path / "second.zip", seed=5), folder)
        again = watch.tick()
        assert again.run_requests == []
        assert "already requested" in again.skip_message
        # The whole export's content hash: its files' paths and sha256s, not their times.
        digests = "".join(
            f"{p.relative_to(folder).as_posix()}\0{hashlib.sha256(p.read_bytes()).hexdigest()}\n"
            for p in sorted(folder.rglob("*"), key=lambda p: p.relative_to(folder).as_posix())
            if p.is_file()
        )
        assert watch.latest_version() == hashlib.sha256(digests.encode()).hexdigest() != first


def test_an_export_landing_at_a_memory_url_requests_its_date_once(tmp_path, tiny_district):
    url = f"memory://exports/{tmp_path.name}/district.zip"
    settings = make_settings(tmp_path / "home", url, run_trigger="both")
    memory = fsspec.filesystem("memory")
    with dg.instance_for_test() as instance:
        watch = Watch(settings, instance)
        assert watch.tick().run_requests == []
        memory.pipe(url, tiny_district.read_bytes())
        before = _today()
        (request,) = watch.tick().run_requests
        assert request.partition_key in {before, _today()}
        assert _ticks_until_quiet(watch) == []
        assert watch.latest_version() == hashlib.sha256(tiny_district.read_bytes()).hexdigest()
    memory.rm(url)


@pytest.mark.sftp
def test_an_export_landing_on_the_sftp_server_requests_its_date_once(
    sftp_server, tiny_district, tmp_path, monkeypatch, request
):
    local, remote = sftp_server.make_remote_dir(request.node.name[:60])
    url = f"sftp://{sftp_server.user}@{sftp_server.host}:{sftp_server.port}{remote}/district.zip"
    monkeypatch.setenv("NAVIANCE_SOURCE_PASSWORD", sftp_server.password)
    monkeypatch.setenv("NAVIANCE_SOURCE_SFTP_KNOWN_HOSTS", sftp_server.known_hosts_text)
    settings = make_settings(tmp_path / "home", url, run_trigger="arrival")
    with dg.instance_for_test() as instance:
        watch = Watch(settings, instance)
        assert watch.tick().run_requests == []
        shutil.copyfile(tiny_district, local / "district.zip")
        os.chmod(local / "district.zip", 0o644)  # readable by the server's user
        assert len(watch.tick().run_requests) == 1
        assert _ticks_until_quiet(watch, 2) == []
        assert watch.latest_version() == hashlib.sha256(tiny_district.read_bytes()).hexdigest()
        (record,) = instance.fetch_observations(EXPORT, limit=5).records
        assert record.asset_observation.metadata["age_hours"].value < 1  # sftp's mtime is read


def test_an_export_path_that_is_a_fifo_is_never_opened(tmp_path, monkeypatch):
    monkeypatch.delenv("NAVIANCE_ALERT_URLS", raising=False)
    fifo = tmp_path / "district.zip"
    os.mkfifo(fifo)  # opened, it would block the sensor forever
    settings = make_settings(tmp_path / "home", fifo, run_trigger="arrival")
    with dg.instance_for_test() as instance:
        result = Watch(settings, instance).tick()
    assert result.run_requests == []
    assert "cannot be looked at" in result.skip_message


def test_a_schedule_only_district_is_observed_but_starts_no_run(tmp_path, tiny_district):
    export = tmp_path / "district.zip"
    shutil.copyfile(tiny_district, export)
    settings = make_settings(tmp_path / "home", export)  # run_trigger: schedule (default)
    with dg.instance_for_test() as instance:
        watch = Watch(settings, instance)
        assert watch.tick().run_requests == []
        assert watch.latest_version() == hashlib.sha256(export.read_bytes()).hexdigest()
    defs = build_definitions(settings)
    assert {s.name for s in defs.schedules} >= {"nightly_schedule"}
    arrival_only = build_definitions(make_settings(tmp_path / "h2", export, run_trigger="arrival"))
    assert "nightly_schedule" not in {s.name for s in arrival_only.schedules}


def test_the_content_is_hashed_only_when_the_listing_changed(tmp_path, tiny_district):
    export = tmp_path / "district.zip"
    shutil.copyfile(tiny_district, export)
    state = UPath(tmp_path / "state.json")
    first = observe(str(export), state)
    assert first.version == hashlib.sha256(export.read_bytes()).hexdigest()
    # Other bytes of the same size with the same modification time: the listing is unchanged,
    # so the content is not read again and the version stands (no 1 GB hash per tick).
    stat = export.stat()
    data = bytearray(export.read_bytes())
    data[-1] ^= 0xFF
    export.write_bytes(bytes(data))
    os.utime(export, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert look(str(export)).fingerprint == first.fingerprint
    assert observe(str(export), state).version == first.version
    # Touched (the export job rewrote it): hashed again, the new content is the new version.
    os.utime(export, (stat.st_atime + 60, stat.st_mtime + 60))
    assert observe(str(export), state).version == hashlib.sha256(bytes(data)).hexdigest()


def test_an_export_unchanged_for_n_days_is_stale(tmp_path, tiny_district):
    export = tmp_path / "district.zip"
    shutil.copyfile(tiny_district, export)
    state = UPath(tmp_path / "state.json")
    now = time.time()
    limits = Limits(unchanged_days=3, max_age_hours=0)
    assert stale_finding(observe(str(export), state, now=now), limits) is None
    # Rewritten every night with the same content: fresh files, the same version.
    os.utime(export, (now + 4 * 86400, now + 4 * 86400))
    later = observe(str(export), state, now=now + 4 * 86400 + 60)
    assert later.age_hours < 1 and later.unchanged_days > 4
    stale = stale_finding(later, limits)
    assert stale.rule == "SRC-STALE-EXPORT" and stale.severity == "warning"
    assert "has not changed for 4.0 days (limit 3)" in stale.message
    blocking = stale_finding(later, Limits(unchanged_days=3, max_age_hours=0, blocks=True))
    assert blocking.severity == "error"


def _old_export(tmp_path: Path, tiny_district: Path, hours: float) -> Path:
    export = tmp_path / "exports" / "district.zip"
    export.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tiny_district, export)
    then = time.time() - hours * HOURS
    os.utime(export, (then, then))
    return export


def _hook(monkeypatch, webhook_server) -> None:
    host, port = webhook_server.server_address[:2]
    monkeypatch.setenv("NAVIANCE_ALERT_URLS", f"json://{host}:{port}/hook")


def test_a_stale_export_is_a_warning_with_one_alert_and_its_age_in_the_report(
    tmp_path, tiny_district, monkeypatch, webhook_server
):
    _hook(monkeypatch, webhook_server)
    export = _old_export(tmp_path, tiny_district, hours=72)
    settings = make_settings(tmp_path / "home", export)
    layout = DataLayout(settings.data_root, settings.district)
    with dg.instance_for_test() as instance:
        result = run_job(settings, DAY, instance)
        assert result.success  # a warning: delivered all the same
        assert run_job(settings, DAY, instance, selection=["sis_extract"]).success
        (materialization,) = [
            e.materialization
            for e in result.get_asset_materialization_events()
            if e.asset_key == dg.AssetKey("sis_extract")
        ]
    metadata = materialization.metadata
    assert 71.9 <= metadata["export_age_hours"].value <= 73
    assert metadata["export_unchanged_days"].value < 0.1
    assert metadata["export_version"].value == hashlib.sha256(export.read_bytes()).hexdigest()

    (stale,) = [f for f in read_json(layout.findings_path(DAY, "sis_extract"))]
    assert (stale["rule"], stale["severity"]) == ("SRC-STALE-EXPORT", "warning")
    assert "newest file was modified 72 hours ago (limit 48)" in stale["message"]

    # One alert for two runs of the day: the district and the age, nothing of the export.
    [(_, _, body)] = webhook_server.posts
    alert = received_alert(body)
    assert alert["kind"] == "export_stale"
    assert alert["district"] == "test-district" and alert["partition"] == DAY
    assert alert["counts"]["hours_since_modified"] == 72
    assert str(export) not in body.decode() and "district.zip" not in body.decode()

    report = read_json(layout.reports_dir(DAY) / "report.json")
    assert 71.9 <= report["export"]["age_hours"] <= 73
    assert "Export: newest file modified 72" in render_report_text(report)
    html = (layout.reports_dir(DAY) / "report.html").read_text()
    assert 'id="export"' in html


def test_a_stale_export_blocks_when_configured(tmp_path, tiny_district, monkeypatch):
    monkeypatch.delenv("NAVIANCE_ALERT_URLS", raising=False)
    export = _old_export(tmp_path, tiny_district, hours=100)
    settings = make_settings(tmp_path / "home", export, export_stale_blocks=True)
    layout = DataLayout(settings.data_root, settings.district)
    with dg.instance_for_test() as instance:
        result = run_job(settings, DAY, instance, selection=["sis_extract"])
    assert not result.success
    (stale,) = read_json(layout.findings_path(DAY, "sis_extract"))
    assert (stale["rule"], stale["severity"]) == ("SRC-STALE-EXPORT", "error")


def test_the_sensor_alerts_a_stale_export_once_a_day(
    tmp_path, tiny_district, monkeypatch, webhook_server
):
    _hook(monkeypatch, webhook_server)
    export = _old_export(tmp_path, tiny_district, hours=50)
    settings = make_settings(tmp_path / "home", export)
    with dg.instance_for_test() as instance:
        watch = Watch(settings, instance)
        assert "stale, alerted (unchanged for 0.0 days" in watch.tick().skip_message
        assert "stale (unchanged" in watch.tick().skip_message  # once a day, not every tick
    [(_, _, body)] = webhook_server.posts
    alert = received_alert(body)
    assert alert["kind"] == "export_stale" and alert["district"] == "test-district"
    assert alert["counts"]["hours_since_modified"] == 50


def test_districts_choose_their_trigger_and_the_sensor_requests_their_partition(
    tmp_path, tiny_district
):
    exports = tmp_path / "exports"
    exports.mkdir()
    entries = []
    for district, trigger in (("east", "arrival"), ("west", "schedule")):
        shutil.copyfile(tiny_district, exports / f"{district}.zip")
        entries.append(
            {
                "id": district,
                "source_url": str(exports / f"{district}.zip"),
                "timezone": "America/Chicago",
                "schedule_time": "02:00",
                "delivery_target": str(tmp_path / "outbox" / district),
                "run_trigger": trigger,
                "export_max_age_hours": 12,
            }
        )
    path = tmp_path / "districts.yaml"
    path.write_text(yaml.safe_dump({"data_root": str(tmp_path / "data"), "districts": entries}))
    settings = make_settings(tmp_path / "home", "", districts_file=str(path))
    defs = build_definitions(settings)
    assert {s.name for s in defs.schedules} == {"nightly_west", "retention_schedule"}
    with dg.instance_for_test() as instance:
        watch = Watch(settings, instance)
        (request,) = watch.tick().run_requests
        assert request.partition_key.keys_by_dimension["district"] == "east"
        assert request.run_key.startswith("arrival:east:")
        assert _ticks_until_quiet(watch, 2) == []
        digest = hashlib.sha256(tiny_district.read_bytes()).hexdigest()
        assert watch.latest_version("east") == watch.latest_version("west") == digest
    state = json.loads((tmp_path / "data" / "districts" / "east" / "export-state.json").read_text())
    assert state["version"] == digest


@pytest.mark.parametrize(
    ("kind", "fmt"), [("oneroster", "folder"), ("sis-csv", "folder"), ("sis-csv", "zip")]
)
def test_sis_extract_and_the_sensor_agree_on_the_version(tmp_path, tiny_district, kind, fmt):
    """sis_extract takes the version from the sha256s of its copy (no second read); it must be
    the sensor's, or each would reset the other's "unchanged since"."""
    from naviance_pipeline.sources.sis.sample_export import write_sample_export

    export = tmp_path / ("export" if fmt == "folder" else "export.zip")
    if kind == "oneroster":
        _unzip(tiny_district, export)
    else:
        write_sample_export(str(export), "powerschool", students=30, schools=2, fmt=fmt)
    settings = make_settings(tmp_path / "home", export, source_kind=kind)
    state = UPath(DataLayout(settings.data_root, settings.district).base) / "export-state.json"
    with dg.instance_for_test() as instance:
        assert run_job(settings, DAY, instance, selection=["sis_extract"]).success
        by_extract = read_json(state)
        watch = Watch(settings, instance)
        watch.tick()
        assert watch.latest_version() == by_extract["version"]
    assert read_json(state)["first_seen"] == by_extract["first_seen"]


def test_the_districts_file_checks_the_new_keys_naming_district_and_key():
    from naviance_pipeline.operations.districts import DistrictsFileError, parse_districts

    entry = {
        "id": "d1",
        "source_url": "/exports/d1.zip",
        "timezone": "UTC",
        "schedule_time": "02:00",
        "delivery_target": "/outbox/d1",
        "run_trigger": "hourly",
        "export_max_age_hours": -1,
        "export_stale_blocks": "yes",
    }
    with pytest.raises(DistrictsFileError) as caught:
        parse_districts({"data_root": "/data", "districts": [entry]}, "districts.yaml")
    assert caught.value.problems == [
        "districts.yaml: district \"d1\": run_trigger Input should be 'schedule', 'arrival' or "
        "'both'",
        'districts.yaml: district "d1": export_max_age_hours Input should be greater than or '
        "equal to 0",
        'districts.yaml: district "d1": export_stale_blocks must be true or false',
    ]
