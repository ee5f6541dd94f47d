"""The code location loads, with the expected assets, checks, job and schedule."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg

from naviance_pipeline.definitions import build_definitions
from naviance_pipeline.defs.partitions import daily_partitions
from naviance_pipeline.operations.settings import Settings

EXPECTED_ASSETS = [
    "demographics",
    "manifest",
    "naviance_delivery",
    "naviance_package",
    "orgs",
    "sis_export",  # external: the export as it lands, observed by watch_sis_export
    "sis_extract",
    "users",
]
EXPECTED_CHECKS = {
    "sis_extract": {"source_package"},
    "orgs": {"csv_syntax", "spreadsheet_damage", "bulk_semantics", "identifiers", "org_rules"},
    "users": {"csv_syntax", "spreadsheet_damage", "bulk_semantics", "identifiers", "user_rules"},
    "demographics": {
        "csv_syntax",
        "spreadsheet_damage",
        "bulk_semantics",
        "identifiers",
        "demographic_rules",
    },
    "naviance_package": {"package_integrity", "delivery_guards"},
}


def test_definitions_are_loadable(settings):
    dg.Definitions.validate_loadable(build_definitions(settings))


def test_module_level_defs_load_with_defaults():
    from naviance_pipeline.definitions import defs

    dg.Definitions.validate_loadable(defs)


def test_asset_keys_groups_and_checks(settings):
    graph = build_definitions(settings).resolve_asset_graph()
    keys = sorted(k.to_user_string() for k in graph.get_all_asset_keys())
    assert keys == EXPECTED_ASSETS
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups["sis_extract"] == "extract"
    assert groups["naviance_delivery"] == "delivery"
    assert {groups[k] for k in ("orgs", "users", "demographics", "manifest")} == {"oneroster"}
    checks: dict[str, set[str]] = {}
    for check_key in graph.asset_check_keys:
        checks.setdefault(check_key.asset_key.to_user_string(), set()).add(check_key.name)
    assert checks == EXPECTED_CHECKS


def test_the_export_is_an_external_asset_upstream_of_sis_extract_outside_the_job(settings):
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    export = graph.get(dg.AssetKey("sis_export"))
    assert not export.is_executable and export.group_name == "extract"
    assert graph.get(dg.AssetKey("sis_extract")).parent_keys == {dg.AssetKey("sis_export")}
    job = defs.resolve_job_def("nightly_job")
    assert len(job.nodes) == 7  # the seven assets run; the export is only observed


def test_every_asset_has_a_description_and_kinds(settings):
    graph = build_definitions(settings).resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, key
        assert any(t.startswith("dagster/kind/") for t in node.tags), key


def test_nothing_that_deletes_or_sends_starts_by_itself(settings):
    """Every schedule and sensor starts stopped, and the README's table says so for each."""
    defs = build_definitions(settings)
    states = {s.name: s.default_status.value for s in [*defs.schedules, *defs.sensors]}
    assert set(states) == {
        "nightly_schedule",
        "retention_schedule",
        "alert_on_failure",
        "alert_on_missed_delivery",
        "watch_sis_export",
    }
    assert set(states.values()) == {"STOPPED"}
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for name in states:
        assert re.search(rf"^\| `{name}`[^|]*\| stopped \| \S", readme, re.M), name


def test_first_partition_defaults_to_the_retention_window_before_today(monkeypatch):
    monkeypatch.delenv("NAVIANCE_PARTITIONS_START", raising=False)
    monkeypatch.setenv("NAVIANCE_TIMEZONE", "Pacific/Auckland")
    monkeypatch.setenv("NAVIANCE_RETENTION_DAYS", "10")
    today = datetime.now(ZoneInfo("Pacific/Auckland")).date()
    settings = Settings.from_env()
    assert settings.partitions_start == (today - timedelta(days=10)).isoformat()
    partitions = daily_partitions(settings)
    assert partitions.get_first_partition_key() == settings.partitions_start
    assert partitions.get_last_partition_key() == today.isoformat()
    monkeypatch.setenv("NAVIANCE_PARTITIONS_START", "2026-01-01")  # still configurable
    assert daily_partitions(Settings.from_env()).get_first_partition_key() == "2026-01-01"
