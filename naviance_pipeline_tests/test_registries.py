"""Source kinds and delivery targets are registries (sources/kinds/, delivery/targets/): every
place that names a kind or a target reads its declaration. ``kind_gaps`` and ``target_gaps``
ask each of those places (the real CLI parser, the settings, the districts file, the
resources, the jobs' run tags) about one declaration and say where it is half registered; they
run on every declared kind and target, and on deliberately incomplete ones."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from upath import UPath

from naviance_pipeline.cli import parser
from naviance_pipeline.defs.jobs import SFTP_HOST_TAG, host_tags
from naviance_pipeline.defs.resources import (
    SECRET_ENV,
    SOURCE_SECRET_ENV,
    DeliveryResource,
    PipelineResource,
)
from naviance_pipeline.delivery import receipts
from naviance_pipeline.delivery.guards import GuardLimits
from naviance_pipeline.delivery.local import LocalFolderTarget
from naviance_pipeline.delivery.service import DeliveryPlan, deliver_partition
from naviance_pipeline.delivery.target import target_from_url
from naviance_pipeline.delivery.targets import TargetKind, target_kind
from naviance_pipeline.delivery.targets import registry as targets
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.source import open_source
from naviance_pipeline.operations.districts import (
    SECRET_ROLES,
    DistrictsFileError,
    parse_districts,
)
from naviance_pipeline.operations.settings import Settings, SettingsError
from naviance_pipeline.operations.storage import DataLayout, slug
from naviance_pipeline.sources.kinds import SourceKind
from naviance_pipeline.sources.kinds import registry as kinds
from naviance_pipeline.sources.snapshot import ensure_sample, take_snapshot
from naviance_pipeline_tests.conftest import make_settings
from naviance_pipeline_tests.pipeline_helpers import run_job

DAY = "2026-11-24"


def _district(**entry) -> dict:
    return {
        "data_root": "/data",
        "districts": [
            {
                "id": "d1",
                "source_url": "/exports/d1.zip",
                "timezone": "America/Chicago",
                "schedule_time": "02:00",
                "delivery_target": "/outbox/d1",
                **entry,
            }
        ],
    }


def _districts_file_problems(document: dict) -> list[str]:
    try:
        parse_districts(document)
    except DistrictsFileError as exc:
        return exc.problems
    return []


def _kind_declaration_gaps(kind: SourceKind) -> list[str]:
    """What a declaration lacks to be used everywhere a kind is named (empty: complete)."""
    problems = []
    if not kind.name or kind.name != kind.name.strip().lower() or " " in kind.name:
        problems.append(f"name {kind.name!r} is not a lower-case word")
    if not kind.source_help.strip():
        problems.append("source_help is empty (the CLI's --help)")
    unknown = sorted(set(kind.secrets) - set(SOURCE_SECRET_ENV))
    if unknown:
        problems.append(f"secrets {unknown} are not source secrets (sources/kinds/)")
    for part in ("system_name", "capture", "sample"):
        if not callable(getattr(kind, part, None)):
            problems.append(f"{part} is not a function")
    if callable(kind.system_name) and not kind.system_name(""):
        problems.append("system_name gives no source.systemName")
    return problems


def _target_declaration_gaps(target: TargetKind) -> list[str]:
    """What a declaration lacks to be used everywhere a target is named (empty: complete)."""
    problems = []
    if not target.schemes:
        problems.append("no URL scheme selects it")
    if not target.url_help.strip():
        problems.append("url_help is empty")
    for roles, _why in target.district_requires:
        problems += [
            f"district_requires names {role!r}, not one of its secrets"
            for role in roles
            if role not in target.secrets
        ]
    try:
        kind, parts = target_kind(target.example)
        if kind is not target:
            problems.append(f"its example {target.example!r} selects {kind.name!r}")
        built = target.build(parts, target.example, target.credentials({}), None)
    except (ValueError, TypeError) as exc:
        return [*problems, f"its example {target.example!r} cannot be built: {exc}"]
    for part in ("describe", "deliver"):
        if not callable(getattr(built, part, None)):
            problems.append(f"the target it builds has no {part}()")
    if not isinstance(getattr(built, "history_key", None), str) or not built.history_key:
        problems.append("the target it builds has no history_key")
    host = getattr(built, "upload_host", "missing")
    if host is not None and (not isinstance(host, str) or host == "missing"):
        problems.append("the target it builds has no upload_host (a host name, or None)")
    return problems


def kind_gaps(kind: SourceKind, home: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Where the kind is not (fully) known; empty when every consumer takes it."""
    gaps = _kind_declaration_gaps(kind)
    mapping = "powerschool" if kind.mapped else ""
    try:
        parser().parse_args(["validate", "source", "--kind", kind.name])
    except SystemExit:
        gaps.append("the CLI refuses --kind")
    monkeypatch.setenv("NAVIANCE_SOURCE_KIND", kind.name)
    monkeypatch.setenv("NAVIANCE_SOURCE_MAPPING", mapping)
    monkeypatch.delenv("NAVIANCE_SOURCE_SYSTEM", raising=False)
    try:
        if Settings.from_env().source_system_name != kind.system_name(mapping):
            gaps.append("the settings do not take its source.systemName")
    except SettingsError as exc:  # the kind is refused when the settings load
        gaps.append(f"the settings: {exc}")
    found = _districts_file_problems(_district(source_kind=kind.name, source_mapping=mapping))
    gaps += [f"the districts file: {problem}" for problem in found]
    for role in kind.secrets:
        if role not in PipelineResource.model_fields:
            gaps.append(f"PipelineResource has no field for its secret {role!r}")
        if role not in SOURCE_SECRET_ENV or role not in SECRET_ROLES:
            gaps.append(f"its secret {role!r} is not a resource secret or a districts-file role")
    sample = str(home / "sample" / "sample-district.zip")
    resource = PipelineResource(
        data_root=str(home / "data"),
        district="d1",
        source_kind=kind.name,
        source_mapping=mapping,
        sample_path=sample,
    )
    try:
        config = resource.source_config()
        url = ensure_sample(config, sample)
        options = Options(as_of=date.fromisoformat(DAY))
        snapshot = take_snapshot(config, url, UPath(home / "snapshot"), options)
        open_source(str(snapshot.open_path), options)
    except Exception as exc:  # any failure is the gap reported
        gaps.append(f"its bundled sample cannot be snapshotted: {type(exc).__name__}: {exc}")
    return gaps


def target_gaps(target: TargetKind) -> list[str]:
    """Where the target is not (fully) known; empty when every consumer takes it."""
    gaps = _target_declaration_gaps(target)
    if gaps:
        return gaps
    for role in target.secrets:
        if role not in DeliveryResource.model_fields:
            gaps.append(f"DeliveryResource has no field for its secret {role!r}")
        if role not in SECRET_ENV or role not in SECRET_ROLES:
            gaps.append(f"its secret {role!r} is not a resource secret or a districts-file role")
    named = {role: f"D1_{role.upper()}" for role in target.secrets}
    document = _district(delivery_target=target.example, secrets=named)
    gaps += [f"the districts file: {p}" for p in _districts_file_problems(document)]
    if gaps:
        return gaps
    district = parse_districts(document).get("d1")
    built = DeliveryResource(target_url=target.example).target()
    host = built.upload_host
    if district.delivery_host != (host or "local"):
        gaps.append(f"the district's delivery host is {district.delivery_host!r}, not {host!r}")
    if host_tags(district) != ({SFTP_HOST_TAG: host} if host else {}):
        gaps.append(f"its runs are tagged {host_tags(district)}, not by its host {host!r}")
    if built.history_key != target_from_url(target.example).history_key:
        gaps.append("its history_key depends on how it is built")
    return gaps


@pytest.mark.parametrize("name", list(kinds()))
def test_every_source_kind_is_known_everywhere(name, tmp_path, monkeypatch):
    assert kind_gaps(kinds()[name], tmp_path, monkeypatch) == []


@pytest.mark.parametrize("name", list(targets()))
def test_every_delivery_target_is_known_everywhere(name):
    assert target_gaps(targets()[name]) == []


def test_the_registries_hold_what_the_product_had():
    assert list(kinds()) == ["oneroster", "sis-csv", "sql"]
    assert sorted(targets()) == ["folder", "sftp"]
    assert set(SECRET_ROLES) == {*SECRET_ENV, *SOURCE_SECRET_ENV}


def test_a_new_kind_in_the_registry_is_taken_by_every_consumer(tmp_path, monkeypatch):
    """No consumer keeps its own list: a kind declared once is accepted by the CLI, the
    settings, the districts file and the resources (the CLI's hard-coded choices refused it
    before)."""
    new = dataclasses.replace(kinds()["oneroster"], name="oneroster-v12")
    monkeypatch.setitem(kinds(), new.name, new)
    assert kind_gaps(new, tmp_path, monkeypatch) == []


def test_a_half_declared_kind_is_reported(tmp_path, monkeypatch):
    half = dataclasses.replace(
        kinds()["oneroster"],
        name="skyward",
        source_help=" ",
        secrets=("source_api_token",),
        capture=None,
    )
    monkeypatch.setitem(kinds(), half.name, half)
    gaps = kind_gaps(half, tmp_path, monkeypatch)
    assert "source_help is empty (the CLI's --help)" in gaps
    assert "capture is not a function" in gaps
    assert "PipelineResource has no field for its secret 'source_api_token'" in gaps
    assert any(g.startswith("its bundled sample cannot be snapshotted") for g in gaps)


def test_an_unregistered_kind_is_refused_by_each_consumer(tmp_path, monkeypatch):
    unregistered = dataclasses.replace(kinds()["oneroster"], name="skyward")
    gaps = kind_gaps(unregistered, tmp_path, monkeypatch)
    assert "the CLI refuses --kind" in gaps
    assert any("source_kind 'skyward' must be one of oneroster, sis-csv, sql" in g for g in gaps)
    assert (
        "the settings: NAVIANCE_SOURCE_KIND: 'skyward' must be one of oneroster, sis-csv, sql"
        in gaps
    )
    assert any("the source kind must be one of" in g for g in gaps)  # the resource's config


def _outbox_kind(**changes) -> TargetKind:
    def build(parts, _url, _credentials=None, _retry=None):
        return LocalFolderTarget(parts.path)

    declared = TargetKind(
        name="outbox",
        schemes=("outbox",),
        url_help="outbox:///folder",
        build=build,
        example="outbox:///srv/outbox",
    )
    return dataclasses.replace(declared, **changes)


def test_a_new_target_in_the_registry_is_taken_by_every_consumer(monkeypatch):
    new = _outbox_kind()
    monkeypatch.setitem(targets(), new.name, new)
    assert target_gaps(new) == []
    assert isinstance(target_from_url("outbox:///srv/outbox"), LocalFolderTarget)


def test_a_half_declared_target_is_reported(monkeypatch):
    class NoKey:
        upload_host = None

        def describe(self) -> str:
            return "a target without a history key"

        def deliver(self, *args, **kwargs):
            raise NotImplementedError

    unselected = _outbox_kind(example="file:///srv/outbox", url_help="")
    monkeypatch.setitem(targets(), unselected.name, unselected)
    assert target_gaps(unselected) == [
        "url_help is empty",
        "its example 'file:///srv/outbox' selects 'folder'",
    ]
    keyless = _outbox_kind(build=lambda *_args: NoKey())
    monkeypatch.setitem(targets(), keyless.name, keyless)
    assert target_gaps(keyless) == ["the target it builds has no history_key"]
    secret = _outbox_kind(
        secrets={"outbox_token": "NAVIANCE_OUTBOX_TOKEN"},
        district_requires=((("outbox_token", "outbox_key"), "an outbox needs a token"),),
    )
    monkeypatch.setitem(targets(), secret.name, secret)
    assert target_gaps(secret) == [
        "district_requires names 'outbox_key', not one of its secrets",
    ]
    secret = dataclasses.replace(secret, district_requires=())
    monkeypatch.setitem(targets(), secret.name, secret)
    gaps = target_gaps(secret)
    assert gaps[:2] == [
        "DeliveryResource has no field for its secret 'outbox_token'",
        "its secret 'outbox_token' is not a resource secret or a districts-file role",
    ]
    assert "secrets has unknown role 'outbox_token'" in gaps[2] and len(gaps) == 3


def test_a_target_requires_the_secrets_it_declares_in_the_districts_file():
    found = _districts_file_problems(_district(delivery_target=targets()["sftp"].example))
    assert found == [
        f'districts.yaml: district "d1": {why}'
        for _roles, why in targets()["sftp"].district_requires
    ]


class _Outbox(LocalFolderTarget):
    """A folder target that describes itself in words: describe() is for people only."""

    def describe(self) -> str:
        return f"the outbox {self.folder.name!r} on this machine"


def test_the_history_key_not_describe_finds_and_records_the_history(tmp_path, tiny_district):
    settings = make_settings(tmp_path, tiny_district)
    with dg.instance_for_test() as instance:
        assert run_job(settings, DAY, instance, selection=_TO_PACKAGE).success
    layout = DataLayout(settings.data_root, settings.district)
    target, key = _Outbox(tmp_path / "outbox"), (tmp_path / "outbox").as_uri()
    plan = DeliveryPlan("first", GuardLimits(), [], lock_timeout=10.0)
    first, _ = deliver_partition(layout, target, DAY, plan, run_id="r1")
    # Receipts written before targets had names: a folder named after the target's URL.
    legacy = layout.base / "receipts" / slug(key)
    Path(layout.receipts_dir("first").path).rename(legacy.path)
    said: list[str] = []

    plan = DeliveryPlan("naviance", GuardLimits(), [], lock_timeout=10.0)
    second, _ = deliver_partition(layout, target, DAY, plan, run_id="r2", log=said.append)

    history = receipts.list_receipts(layout, "naviance")
    assert [r["run_id"] for r in history] == ["r1", "r2"]
    assert first["target"] == second["target"] == key
    assert "target_changed_from" not in second
    assert any("now lives under the target name 'naviance'" in line for line in said)
    assert target.history_key == key != target.describe()


_TO_PACKAGE = ["sis_extract", "users", "orgs", "demographics", "manifest", "naviance_package"]
