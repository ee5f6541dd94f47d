"""Many districts: the districts file, date × district partitions, per-district schedules,
per-district resources and storage."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import yaml

from naviance_pipeline.definitions import build_definitions
from naviance_pipeline.defs.jobs import NIGHTLY_JOB, SFTP_HOST_TAG, schedule_name
from naviance_pipeline.defs.partitions import district_key
from naviance_pipeline.defs.resources import (
    SECRET_ENV,
    SOURCE_SECRET_ENV,
    DeliveryResource,
    PipelineResource,
)
from naviance_pipeline.oneroster.sample import write_sample_district
from naviance_pipeline.oneroster.spec import ZIP_NAME
from naviance_pipeline.operations.districts import (
    SECRET_ROLES,
    DistrictsFileError,
    load_districts,
    parse_districts,
)
from naviance_pipeline.operations.storage import DataLayout
from naviance_pipeline_tests.conftest import make_settings
from naviance_pipeline_tests.pipeline_helpers import failed_checks, materialized

DAY = "2026-11-24"
SFTP = "sftp://east@sftp.example.org:22/upload"


def district(district_id: str, **overrides) -> dict:
    entry = {
        "id": district_id,
        "source_url": f"/data/{district_id}.zip",
        "timezone": "America/New_York",
        "schedule_time": "02:00",
        "delivery_target": f"/outbox/{district_id}",
    }
    return {**entry, **overrides}


def document(*districts: dict, **top) -> dict:
    return {"data_root": "/data/root", "districts": list(districts), **top}


def problems(data) -> list[str]:
    with pytest.raises(DistrictsFileError) as caught:
        parse_districts(data, "districts.yaml")
    return caught.value.problems


# --- validation ------------------------------------------------------------------------------


def test_a_valid_file_loads_with_defaults(tmp_path):
    path = tmp_path / "districts.yaml"
    sftp = {"sftp_password": "EAST_PW", "sftp_known_hosts": "NAVIANCE_KNOWN_HOSTS"}
    data = document(district("east", delivery_target=SFTP, secrets=sftp), district("west"))
    path.write_text(yaml.safe_dump(data))
    config = load_districts(path)
    assert config.data_root == "/data/root"
    assert config.ids == ["east", "west"]
    west = config.get("west")
    assert (west.include_staff, west.rollover_day, west.source_system_name) == (
        False,
        "07-15",
        "ClassLink",
    )
    assert config.get("east").delivery_host == "sftp.example.org"
    assert west.delivery_host == "local"


def test_unknown_timezone_names_the_district_and_key():
    data = document(district("d1"), district("d2", timezone="America/Nowhere"))
    assert problems(data) == [
        'districts.yaml: district "d2": timezone "America/Nowhere" is not a known timezone'
    ]


def test_every_problem_is_reported_at_once():
    data = document(
        district("d1", schedule_time="25:00"),
        district("d2", rollover_day="13-01", include_staff="yes", colour="blue"),
        district("d3", delivery_target=""),
    )
    assert problems(data) == [
        'districts.yaml: district "d1": schedule_time "25:00" is not a time of day',
        "districts.yaml: district \"d2\": unknown key 'colour'",
        'districts.yaml: district "d2": include_staff must be true or false',
        "districts.yaml: district \"d2\": rollover_day '13-01' must be MM-DD",
        'districts.yaml: district "d3": delivery_target is required (a non-empty string)',
    ]


def test_duplicate_and_malformed_ids():
    data = document(district("d1"), district("d1"), district("Bad_Id"))
    assert problems(data) == [
        'districts.yaml: district "d1": id is used by another district',
        "districts.yaml: district #3: id 'Bad_Id' must be a slug (lowercase letters, digits "
        "and inner hyphens, at most 63 characters)",
    ]


def test_unquoted_schedule_time_is_explained():
    # YAML 1.1 reads 14:30 as the base-60 number 870.
    text = (
        "data_root: /r\ndistricts:\n- {id: d1, source_url: s, timezone: UTC, "
        "schedule_time: 14:30, delivery_target: /o}\n"
    )
    data = yaml.safe_load(text)
    assert problems(data) == [
        'districts.yaml: district "d1": schedule_time must be quoted, e.g. "14:30" (YAML reads '
        "an unquoted 14:30 as a number)"
    ]


def test_sftp_target_needs_secret_names_not_secrets():
    data = document(
        district("d1", delivery_target=SFTP, secrets={"sftp_password": "hunter2!"}),
        district("d2", delivery_target="sftp://u:pw@host/up"),
    )
    found = problems(data)
    assert found == [
        'districts.yaml: district "d1": secrets.sftp_password must be the NAME of an environment '
        "variable (letters, digits, underscores), not the secret itself",
        'districts.yaml: district "d1": secrets.sftp_known_hosts is required for an SFTP '
        "delivery_target (the pinned host key)",
        'districts.yaml: district "d2": delivery_target is invalid: the SFTP URL must not contain '
        "a password: give it in NAVIANCE_SFTP_PASSWORD",
        'districts.yaml: district "d2": secrets.sftp_known_hosts is required for an SFTP '
        "delivery_target (the pinned host key)",
        'districts.yaml: district "d2": secrets needs sftp_password or sftp_private_key for an '
        "SFTP delivery_target",
    ]
    # Neither secret is echoed.
    assert not [p for p in found if "hunter2" in p or ":pw@" in p]


def test_an_sftp_source_needs_the_name_of_its_pinned_key():
    data = document(
        district("d1", source_url="sftp://sis@files.example.org/exports/roster.zip"),
        district(
            "d2",
            source_url="sftp://sis@files.example.org/exports/roster.zip",
            secrets={"source_sftp_known_hosts": "D2_SIS_KNOWN_HOSTS", "source_password": "D2_PW"},
        ),
    )
    assert problems(data) == [
        'districts.yaml: district "d1": secrets.source_sftp_known_hosts is required for an '
        "sftp:// source_url (the pinned host key)"
    ]


def test_file_level_problems():
    assert problems({"districts": [], "extra": 1}) == [
        "districts.yaml: unknown key 'extra'",
        "districts.yaml: data_root is required (a folder or fsspec URL)",
        "districts.yaml: districts must be a non-empty list",
    ]
    assert problems(["not", "a", "mapping"]) == [
        "districts.yaml: must be a mapping with data_root and districts"
    ]


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(DistrictsFileError, match=r"^nope.yaml: cannot read the districts file"):
        load_districts(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("districts: [\n")
    with pytest.raises(DistrictsFileError, match=r"^broken.yaml: not a readable YAML file"):
        load_districts(broken)


def test_an_edited_file_is_read_again(tmp_path):
    path = tmp_path / "districts.yaml"
    path.write_text(yaml.safe_dump(document(district("d1"))))
    assert load_districts(path).ids == ["d1"]
    path.write_text(yaml.safe_dump(document(district("d1"), district("d2"))))
    assert load_districts(path).ids == ["d1", "d2"]


# --- definitions, schedules, resources --------------------------------------------------------


def write_districts(folder: Path, entries: list[dict]) -> Path:
    path = folder / "districts.yaml"
    path.write_text(yaml.safe_dump(document(*entries, data_root=str(folder / "data"))))
    return path


def multi_defs(tmp_path: Path, entries: list[dict]) -> dg.Definitions:
    path = write_districts(tmp_path, entries)
    return build_definitions(make_settings(tmp_path, "", districts_file=str(path)))


EAST = district(
    "east",
    timezone="America/New_York",
    schedule_time="02:00",
    delivery_target=SFTP,
    secrets={"sftp_password": "EAST_SFTP_PASSWORD", "sftp_known_hosts": "EAST_KNOWN_HOSTS"},
)
# East of UTC: its local date is ahead of the UTC date at 02:00.
KIWI = district("kiwi", timezone="Pacific/Auckland", schedule_time="02:30")


def test_multi_district_definitions(tmp_path):
    defs = multi_defs(tmp_path, [EAST, KIWI])
    dg.Definitions.validate_loadable(defs)
    partitions = defs.resolve_assets_def("users").partitions_def
    assert isinstance(partitions, dg.MultiPartitionsDefinition)
    assert partitions.get_partitions_def_for_dimension("district").get_partition_keys() == [
        "east",
        "kiwi",
    ]
    east = defs.resolve_schedule_def(schedule_name("east"))
    kiwi = defs.resolve_schedule_def(schedule_name("kiwi"))
    assert (east.cron_schedule, east.execution_timezone) == ("0 2 * * *", "America/New_York")
    assert (kiwi.cron_schedule, kiwi.execution_timezone) == ("30 2 * * *", "Pacific/Auckland")
    # Every run of a partition carries its district's SFTP host (none for a local folder).
    job = defs.resolve_job_def(NIGHTLY_JOB)
    assert job.get_tags_for_partition_key(district_key(DAY, "east"), None)[SFTP_HOST_TAG] == (
        "sftp.example.org"
    )
    assert SFTP_HOST_TAG not in job.get_tags_for_partition_key(district_key(DAY, "kiwi"), None)


NY = ZoneInfo("America/New_York")
AKL = ZoneInfo("Pacific/Auckland")


@pytest.mark.parametrize(
    ("name", "tick", "expected_date"),
    [
        # New York falls back on 2026-11-01 (02:00 EDT -> 01:00 EST).
        ("east", datetime(2026, 11, 1, 2, 0, tzinfo=NY), "2026-11-01"),
        ("east", datetime(2026, 11, 2, 2, 0, tzinfo=NY), "2026-11-02"),
        # Auckland springs forward on 2026-09-27 (02:00 NZST -> 03:00 NZDT): 02:30 does not
        # exist that night, the tick comes at 03:30 local, 2026-09-26 14:30 UTC.
        ("kiwi", datetime(2026, 9, 27, 3, 30, tzinfo=AKL), "2026-09-27"),
        # 02:30 NZDT is 13:30 UTC the day before: the local date is ahead of UTC.
        ("kiwi", datetime(2026, 11, 30, 2, 30, tzinfo=AKL), "2026-11-30"),
    ],
)
def test_district_schedule_requests_its_local_date(tmp_path, name, tick, expected_date):
    defs = multi_defs(tmp_path, [EAST, KIWI])
    schedule = defs.resolve_schedule_def(schedule_name(name))
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=tick,
            repository_def=defs.get_repository_def(),
        )
        requests = schedule.evaluate_tick(context).run_requests
    assert [(r.partition_key, r.run_key) for r in requests] == [
        (district_key(expected_date, name), f"{name}:{expected_date}")
    ]
    # The requested partition exists at tick time (end_offset covers districts east of UTC).
    partitions = defs.resolve_assets_def("users").partitions_def
    dates = partitions.get_partitions_def_for_dimension("date")
    assert expected_date in dates.get_partition_keys(current_time=tick)
    assert requests[0].tags.get(SFTP_HOST_TAG) == ("sftp.example.org" if name == "east" else None)


def test_secret_roles_are_the_resources_secret_fields():
    assert set(SECRET_ROLES) == {*SECRET_ENV, *SOURCE_SECRET_ENV}


def test_resources_for_a_district_read_secrets_at_run_time(tmp_path, monkeypatch):
    path = write_districts(tmp_path, [EAST, KIWI])
    pipeline = PipelineResource(data_root="/override", district="x", districts_file=str(path))
    delivery = DeliveryResource(target_url="", attempts=2, districts_file=str(path))
    monkeypatch.setenv("EAST_SFTP_PASSWORD", "s3cret")
    monkeypatch.setenv("EAST_KNOWN_HOSTS", "sftp.example.org ssh-ed25519 AAAA")
    east = delivery.for_district("east")
    assert (east.target_url, east.sftp_password, east.attempts) == (SFTP, "s3cret", 2)
    assert east.sftp_known_hosts.startswith("sftp.example.org")
    assert east.sftp_private_key is None
    kiwi = pipeline.for_district("kiwi")
    # The data root stays the resource's (a Launchpad override still applies).
    assert kiwi.layout == DataLayout("/override", "kiwi")
    assert kiwi.source_url == "/data/kiwi.zip"
    with pytest.raises(dg.Failure, match="district 'gone' is not in the districts file"):
        pipeline.for_district("gone")


# --- two districts materialized -------------------------------------------------------------


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sources")
    sources = {}
    for name, seed in (("north", 21), ("south", 22)):
        out = str(folder / f"{name}.zip")
        sources[name] = Path(write_sample_district(out, students=40, schools=2, seed=seed))
    return sources


def test_each_district_builds_and_delivers_its_own_package(tmp_path, two_sources):
    entries = [
        district(name, source_url=str(src), delivery_target=str(tmp_path / "outbox" / name))
        for name, src in two_sources.items()
    ]
    defs = multi_defs(tmp_path, entries)
    job = defs.resolve_job_def(NIGHTLY_JOB)
    root = str(tmp_path / "data")
    with dg.instance_for_test() as instance:
        for name in two_sources:
            result = job.execute_in_process(
                partition_key=district_key(DAY, name), instance=instance, raise_on_error=False
            )
            assert result.success, failed_checks(result)
            assert len(materialized(result)) == 7
    packages = {}
    for name in two_sources:
        layout = DataLayout(root, name)
        # Frames, findings, packages and receipts all under the district's own folder.
        for asset in ("orgs", "users", "demographics", "manifest"):
            assert Path(str(layout.frame_path(asset, DAY))).is_dir(), (name, asset)
        assert Path(str(layout.findings_path(DAY, "users"))).is_file()
        archived = Path(str(layout.package_path(DAY))).read_bytes()
        assert (tmp_path / "outbox" / name / ZIP_NAME).read_bytes() == archived
        assert len(list(Path(str(layout.base / "receipts")).rglob("*.json"))) == 1
        packages[name] = archived
    assert packages["north"] != packages["south"]
    # Nothing landed in a date/district folder or a folder of another name.
    assert sorted(p.name for p in Path(root, "districts").iterdir()) == ["north", "south"]


def test_command_line_tools_pick_the_district_from_the_file(tmp_path):
    """With a districts file, report/diff/purge need --district and read that district's own
    folder under the file's data root."""
    path = write_districts(tmp_path, [district("d1"), district("d2")])
    env = {k: v for k, v in os.environ.items() if not k.startswith("NAVIANCE_")}
    env["NAVIANCE_DISTRICTS_FILE"] = str(path)
    cli = str(Path(sys.executable).parent / "naviance-pipeline")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([cli, *args], capture_output=True, text=True, env=env, timeout=120)

    missing = run("report", "--date", DAY)
    assert missing.returncode == 2
    assert "--district is needed" in missing.stderr and "d1" in missing.stderr
    assert run("diff", "--date", DAY, "--district", "d9").returncode == 2
    chosen = run("report", "--date", DAY, "--district", "d2")
    assert chosen.returncode == 1  # nothing run yet for that district and date
    assert str(tmp_path / "data" / "districts" / "d2") in chosen.stderr


def test_a_district_reads_its_own_kind_of_source(tmp_path, monkeypatch):
    sis = district(
        "sis",
        source_url="postgresql://reader@db.example.org/sis",
        source_kind="sql",
        source_mapping="powerschool",
        secrets={"source_password": "SIS_DB_PASSWORD"},
    )
    path = tmp_path / "districts.yaml"
    path.write_text(yaml.safe_dump(document(sis)))
    pipeline = PipelineResource(
        data_root="/d", district="x", districts_file=str(path), source_retries=5
    )
    monkeypatch.setenv("SIS_DB_PASSWORD", "db-s3cret")
    resource = pipeline.for_district("sis")
    # The district's fields come from the file; the others stay as configured (Launchpad).
    assert (resource.district, resource.source_retries, resource.data_root) == ("sis", 5, "/d")
    config = resource.source_config()
    assert (config.kind, config.mapping, config.password) == ("sql", "powerschool", "db-s3cret")
    assert "db-s3cret" not in repr(config)


def test_source_kind_and_mapping_are_validated_by_district():
    found = problems(
        document(
            district("a", source_kind="oracle"),
            district("b", source_mapping="powerschool"),
        )
    )
    assert found == [
        "districts.yaml: district \"a\": source_kind 'oracle' must be one of oneroster, "
        "sis-csv, sql",
        'districts.yaml: district "b": source_mapping is only for source_kind sis-csv or sql',
    ]
