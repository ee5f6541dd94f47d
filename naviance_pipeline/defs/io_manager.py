"""What the stages hand each other, stored under the data root and loaded as their inputs.

Frames (users, orgs, demographics, manifest) are Parquet — never pickle: arrow-backed strings
survive the round trip unchanged (``00123`` stays ``00123``) and files are written owner-only,
since they hold student PII. Every frame lands at ``DataLayout(root, district).frame_path(asset,
date)``, for a plain date (the configured district) and for a date × district key alike.

A stage reads what it needs through its inputs, never by path. An input may declare
(``frame_in``) the only columns it reads, or ask for the stored frame unread (``frame_on_demand``:
a :class:`StoredFrame` the stage loads when it needs it, one frame resident at a time).

The source snapshot (``sis_extract``) is its folder under the date's raw directory, written by
the extract itself; its output is the snapshot's index, which ``SnapshotIOManager`` stores
beside it and hands the stages as a :class:`StoredSnapshot` naming what to open.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
import pandas as pd
from upath import UPath

from naviance_pipeline.defs.partitions import split_key
from naviance_pipeline.defs.resources import PipelineResource
from naviance_pipeline.operations.crash import crashpoint
from naviance_pipeline.operations.frames import StoredFrame, read_frame, write_frame
from naviance_pipeline.operations.storage import (
    SNAPSHOT_INDEX,
    DataLayout,
    read_json,
    release_memory,
    write_private_json,
)

COLUMNS = "columns"  # input metadata: read only these columns of the stored frame
ON_DEMAND = "on_demand"  # input metadata: hand over a StoredFrame, loaded by the stage
SNAPSHOT_IO_MANAGER = "snapshot_io_manager"


def frame_in(asset: str, *columns: str) -> dg.AssetIn:
    """An input of ``asset``'s frame of the same partition: only ``columns`` when given."""
    return dg.AssetIn(asset, metadata={COLUMNS: list(columns)} if columns else None)


def frame_on_demand(asset: str) -> dg.AssetIn:
    """An input of ``asset``'s frame of the same partition as a :class:`StoredFrame`."""
    return dg.AssetIn(asset, metadata={ON_DEMAND: True})


def missing_input(asset: str, partition: str) -> dg.Failure:
    day, district = split_key(partition)
    of = f"{day} (district {district})" if district else day
    return dg.Failure(f"no stored {asset} for {of}: materialize {asset} for {day} first")


def _partitions(context: dg.InputContext, load) -> object:
    """``load(partition key)`` of each upstream partition the input maps to: the value for one
    (the stages' case: the same date, or date × district), a dict by key for several."""
    keys = context.asset_partition_keys
    loaded = {key: load(key) for key in keys}
    return loaded[keys[0]] if len(keys) == 1 else loaded


class ParquetFrameIOManager(dg.UPathIOManager):
    extension = ".parquet"

    def __init__(self, root: str, district: str) -> None:
        super().__init__(base_path=DataLayout(root, district).frames_base)
        self._root = root
        self._district = district

    def _frame_path(self, asset: str, partition: str) -> UPath:
        day, district = split_key(partition)
        return DataLayout(self._root, district or self._district).frame_path(asset, day)

    def get_path_for_partition(
        self, context: dg.InputContext | dg.OutputContext, path: UPath, partition: str
    ) -> UPath:
        # UPathIOManager formats a multi key as "<date>/<district>" (dimensions in name
        # order); put it in that district's folder instead of a date/district sub-folder.
        # The extension is added back by UPathIOManager.
        key = partition.replace("/", "|")
        return self._frame_path(context.asset_key.path[-1], key).with_suffix("")

    def dump_to_path(self, context: dg.OutputContext, obj: pd.DataFrame, path: UPath) -> None:
        write_frame(obj, path)
        crashpoint(f"{context.asset_key.to_user_string()}:stored")

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pd.DataFrame:
        return read_frame(path)  # load_input reads the stages' inputs

    def load_input(self, context: dg.InputContext) -> object:
        """The upstream partition's stored frame: only the columns the input declares, or
        unread (a StoredFrame) when it asks for that. A frame never stored fails the step
        naming the asset and the date."""
        asset = context.asset_key.path[-1]
        wanted = context.definition_metadata or {}

        def load(partition: str) -> pd.DataFrame | StoredFrame:
            path = self._frame_path(asset, partition)
            if not path.exists():
                raise missing_input(asset, partition)
            if wanted.get(ON_DEMAND):
                return StoredFrame(path)
            return read_frame(path, wanted.get(COLUMNS))

        return _partitions(context, load)


class ParquetIOManager(dg.ConfigurableIOManagerFactory):
    """Parquet frames at ``<data root>/districts/<district>/frames/<asset>/<date>.parquet``.

    The root comes from the pipeline resource, so a Launchpad override of the data root moves
    the frames with everything else.
    """

    pipeline: PipelineResource

    def create_io_manager(self, context: dg.InitResourceContext) -> ParquetFrameIOManager:
        return ParquetFrameIOManager(self.pipeline.data_root, self.pipeline.district)


@dataclass(frozen=True)
class StoredSnapshot:
    """A date's source snapshot as ``sis_extract`` stored it: ``open_path`` is what the stages
    open (the OneRoster ZIP or folder of the snapshot)."""

    day: str
    open_path: UPath
    kind: str


class SnapshotIOManager(dg.ConfigurableIOManager):
    """The snapshot's index (``snapshot.json``: what to open, the source kind, mapping, queries
    and files) beside the snapshot in ``<data root>/districts/<district>/raw/<date>/``; loaded
    as a :class:`StoredSnapshot`. The index is written last, once the snapshot is complete."""

    pipeline: PipelineResource

    def _raw_dir(self, partition: str) -> tuple[str, UPath]:
        day, district = split_key(partition)
        layout = DataLayout(self.pipeline.data_root, district or self.pipeline.district)
        return day, layout.raw_dir(day)

    def handle_output(self, context: dg.OutputContext, obj: dict) -> None:
        _, raw = self._raw_dir(context.asset_partition_key)
        write_private_json(raw / SNAPSHOT_INDEX, obj)

    def load_input(self, context: dg.InputContext) -> object:
        """The first input a stage loads: what the stage before freed goes back to the OS
        before the stage reads anything (once per stage: it costs a garbage collection)."""
        release_memory()
        asset = context.asset_key.path[-1]

        def load(partition: str) -> StoredSnapshot:
            day, raw = self._raw_dir(partition)
            index = raw / SNAPSHOT_INDEX
            if not index.exists():
                raise missing_input(asset, partition)
            stored = read_json(index)
            return StoredSnapshot(day, raw / stored["open"], stored["kind"])

        return _partitions(context, load)
