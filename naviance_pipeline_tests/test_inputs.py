"""Stages take what they read as inputs through the IO managers: column subsets declared on the
input, the snapshot as sis_extract's output, the manifest asset's rows written into the package,
and a clear failure (asset and date) when an upstream partition was never stored."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from naviance_pipeline.definitions import build_definitions
from naviance_pipeline.defs.io_manager import (
    COLUMNS,
    ON_DEMAND,
    ParquetFrameIOManager,
    SnapshotIOManager,
    StoredSnapshot,
)
from naviance_pipeline.defs.partitions import DATE_DIM, DISTRICT_DIM, district_key
from naviance_pipeline.defs.resources import PipelineResource
from naviance_pipeline.oneroster import package
from naviance_pipeline.oneroster.spec import STRING
from naviance_pipeline.operations.frames import StoredFrame, write_frame
from naviance_pipeline.operations.storage import DataLayout
from naviance_pipeline_tests.conftest import make_settings
from naviance_pipeline_tests.pipeline_helpers import ALL_ASSETS, materialized, run_job

D1, D2 = "2026-11-23", "2026-11-24"

# The package of the tiny district for D2 as main (8b397e3, before the stages took inputs)
# built it: the CSV bytes of each entry (the same on every machine), and the ZIP's bytes as
# ISA-L deflates them (package.py: deflate output is the same for the same library).
MAIN_ENTRIES_SHA256 = {
    "manifest.csv": "91783cba9006a7cc70cd03d179967498758dfbe7713075cb3493774118aabc4d",
    "orgs.csv": "862b54c9dbdda7fe937edf31b6673f9e3741a150651b26c435b26dbbd05f004a",
    "users.csv": "4bb6b74b70d3f52195e536caa3894d6074f223c74388f81fb36d4e5477e8fecb",
    "demographics.csv": "3029e6d394f99f41bcfb8da234fe7940f9b9a9c8239a6281e587170036e94651",
}
MAIN_ZIP_SHA256 = "13750eeb436e1dc6f499f61dd0ee98e95f87cd38d66a155f03f49014e0bbe7e1"


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def _entries(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def _manifest_value(path: Path, prop: str) -> str:
    rows = _entries(path)["manifest.csv"].decode().splitlines()
    return next(r.split(",", 1)[1] for r in rows if r.startswith(prop + ","))


def _package(settings) -> Path:
    layout = DataLayout(settings.data_root, settings.district)
    return Path(str(layout.package_path(D2)))


def test_the_package_bytes_are_those_main_built(settings, instance):
    assert run_job(settings, D2, instance).success
    built = _package(settings)
    entries = {n: hashlib.sha256(b).hexdigest() for n, b in _entries(built).items()}
    assert entries == MAIN_ENTRIES_SHA256
    if package.DEFLATE_LEVEL == 2:  # ISA-L, as main built it (zlib gives other bytes)
        assert hashlib.sha256(built.read_bytes()).hexdigest() == MAIN_ZIP_SHA256


def test_the_package_writes_the_stored_manifest_rather_than_rebuilding_it(settings, instance):
    assert run_job(settings, D2, instance).success
    before = _package(settings).read_bytes()
    renamed = {"resources": {"pipeline": {"config": {"source_system_name": "Other SIS"}}}}
    # The package alone: its manifest is the manifest asset's stored output, not the config now.
    again = run_job(settings, D2, instance, selection=["naviance_package"], run_config=renamed)
    assert again.success
    assert materialized(again) == {"naviance_package"}
    assert _package(settings).read_bytes() == before
    # The manifest and the package together: the new name goes in through the manifest asset.
    both = run_job(
        settings, D2, instance, selection=["manifest", "naviance_package"], run_config=renamed
    )
    assert both.success
    assert materialized(both) == {"manifest", "naviance_package"}
    assert _manifest_value(_package(settings), "source.systemName") == "Other SIS"


def test_a_past_date_repackaged_alone_reads_that_dates_stored_outputs(settings, instance):
    assert run_job(settings, D1, instance).success
    layout = DataLayout(settings.data_root, settings.district)
    first = Path(str(layout.package_path(D1))).read_bytes()
    assert run_job(settings, D2, instance).success
    again = run_job(settings, D1, instance, selection=["naviance_package"])
    assert again.success
    assert Path(str(layout.package_path(D1))).read_bytes() == first


def test_each_stage_declares_what_it_reads_as_inputs(settings):
    defs = build_definitions(settings)

    def inputs(asset: str) -> dict[str, tuple[str, dict]]:
        node = defs.resolve_assets_def(asset)
        return {
            name: (key.to_user_string(), dict(node.node_def.input_def_named(name).metadata))
            for name, key in node.keys_by_input_name.items()
        }

    assert inputs("users") == {"snapshot": ("sis_extract", {})}
    assert inputs("orgs") == {
        "snapshot": ("sis_extract", {}),
        "users": ("users", {COLUMNS: ["orgSourcedIds"]}),
    }
    assert inputs("demographics") == {
        "snapshot": ("sis_extract", {}),
        "users": ("users", {COLUMNS: ["sourcedId", "role"]}),
    }
    assert inputs("naviance_package") == {
        "manifest_rows": ("manifest", {}),
        "stored_orgs": ("orgs", {ON_DEMAND: True}),
        "stored_users": ("users", {ON_DEMAND: True}),
        "stored_demographics": ("demographics", {ON_DEMAND: True}),
    }


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"sourcedId": ["00123", "00124"], "role": ["student", "teacher"], "email": ["a", "b"]},
        dtype=STRING,
    )


def _load(io_manager, asset: str, key: str, metadata: dict | None = None, partitions=None):
    with dg.build_input_context(
        asset_key=asset,
        partition_key=key,
        definition_metadata=metadata or {},
        asset_partitions_def=partitions or dg.StaticPartitionsDefinition([key]),
    ) as context:
        return io_manager.load_input(context)


def test_an_input_reads_only_the_columns_it_declares(tmp_path):
    layout = DataLayout(str(tmp_path), "d0")
    write_frame(_frame(), layout.frame_path("users", D2))
    frames = ParquetFrameIOManager(str(tmp_path), "d0")

    subset = _load(frames, "users", D2, {COLUMNS: ["sourcedId", "role"]})
    assert subset.columns.tolist() == ["sourcedId", "role"]
    assert subset["sourcedId"].tolist() == ["00123", "00124"]  # arrow strings: zeros kept
    assert _load(frames, "users", D2).columns.tolist() == ["sourcedId", "role", "email"]
    unread = _load(frames, "users", D2, {ON_DEMAND: True})
    assert isinstance(unread, StoredFrame)
    assert unread.load(["role"]).columns.tolist() == ["role"]


def test_a_date_by_district_input_reads_that_districts_frame(tmp_path):
    write_frame(_frame(), DataLayout(str(tmp_path), "d7").frame_path("users", D2))
    frames = ParquetFrameIOManager(str(tmp_path), "all-districts")
    partitions = dg.MultiPartitionsDefinition(
        {
            DATE_DIM: dg.StaticPartitionsDefinition([D1, D2]),
            DISTRICT_DIM: dg.StaticPartitionsDefinition(["d7"]),
        }
    )
    key = district_key(D2, "d7")
    loaded = _load(frames, "users", key, {COLUMNS: ["role"]}, partitions)
    assert loaded["role"].tolist() == ["student", "teacher"]
    with pytest.raises(dg.Failure) as missing:
        _load(frames, "users", district_key(D1, "d7"), {}, partitions)
    assert missing.value.description == (
        f"no stored users for {D1} (district d7): materialize users for {D1} first"
    )


def test_a_missing_upstream_partition_fails_naming_the_asset_and_date(tmp_path):
    frames = ParquetFrameIOManager(str(tmp_path), "d0")
    with pytest.raises(dg.Failure) as missing:
        _load(frames, "orgs", D1)
    message = missing.value.description
    assert message == f"no stored orgs for {D1}: materialize orgs for {D1} first"
    assert str(tmp_path) not in message  # no path, no traceback
    snapshots = SnapshotIOManager(pipeline=PipelineResource(data_root=str(tmp_path), district="d0"))
    with pytest.raises(dg.Failure) as no_snapshot:
        _load(snapshots, "sis_extract", D1)
    assert no_snapshot.value.description == (
        f"no stored sis_extract for {D1}: materialize sis_extract for {D1} first"
    )


def test_a_stage_run_alone_without_its_upstream_fails_clearly(tmp_path, tiny_district, instance):
    settings = make_settings(tmp_path, tiny_district)
    assert run_job(settings, D1, instance).success
    # Nothing was stored for D2: the package alone fails at its first input, saying which.
    result = run_job(settings, D2, instance, selection=["naviance_package"])
    assert not result.success
    [failure] = result.get_step_failure_events()
    assert failure.step_key == "naviance_package"
    message = failure.step_failure_data.user_failure_data.description
    assert message == f"no stored manifest for {D2}: materialize manifest for {D2} first"
    assert materialized(result) == set()
    # The snapshot is an input too: users alone for D2 names sis_extract.
    users = run_job(settings, D2, instance, selection=["users"])
    description = users.get_step_failure_events()[0].step_failure_data.user_failure_data
    assert description.description == (
        f"no stored sis_extract for {D2}: materialize sis_extract for {D2} first"
    )


def test_the_snapshot_is_sis_extracts_output_and_the_stages_input(settings, instance):
    result = run_job(settings, D2, instance, selection=["sis_extract"])
    assert result.success
    snapshots = SnapshotIOManager(
        pipeline=PipelineResource(data_root=settings.data_root, district=settings.district)
    )
    stored = _load(snapshots, "sis_extract", D2)
    assert isinstance(stored, StoredSnapshot)
    assert (stored.day, stored.kind) == (D2, "oneroster")
    assert stored.open_path.exists()
    again = run_job(settings, D2, instance, selection=list(ALL_ASSETS - {"sis_extract"}))
    assert again.success
