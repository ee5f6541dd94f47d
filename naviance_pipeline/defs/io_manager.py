"""Validated frames move between assets as Parquet under the data root — never pickle.

Arrow-backed strings survive the round trip unchanged (``00123`` stays ``00123``) and files
are written owner-only, since they hold student PII. Every frame lands at
``DataLayout(root, district).frame_path(asset, date)``, for a plain date (the configured
district) and for a date × district key alike.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
from upath import UPath

from naviance_pipeline.defs.partitions import split_key
from naviance_pipeline.defs.resources import PipelineResource
from naviance_pipeline.operations.crash import crashpoint
from naviance_pipeline.operations.frames import read_frame, write_frame
from naviance_pipeline.operations.storage import DataLayout, release_memory


class ParquetFrameIOManager(dg.UPathIOManager):
    extension = ".parquet"

    def __init__(self, root: str, district: str) -> None:
        super().__init__(base_path=DataLayout(root, district).frames_base)
        self._root = root
        self._district = district

    def get_path_for_partition(
        self, context: dg.InputContext | dg.OutputContext, path: UPath, partition: str
    ) -> UPath:
        # UPathIOManager formats a multi key as "<date>/<district>" (dimensions in name
        # order); put it in that district's folder instead of a date/district sub-folder.
        day, district = split_key(partition.replace("/", "|"))
        layout = DataLayout(self._root, district or self._district)
        # The extension is added back by UPathIOManager.
        return layout.frame_path(context.asset_key.path[-1], day).with_suffix("")

    def dump_to_path(self, context: dg.OutputContext, obj: pd.DataFrame, path: UPath) -> None:
        write_frame(obj, path)
        crashpoint(f"{context.asset_key.to_user_string()}:stored")

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pd.DataFrame:
        release_memory()  # a stage begins: what the one before freed goes back to the OS
        return read_frame(path)


class ParquetIOManager(dg.ConfigurableIOManagerFactory):
    """Parquet frames at ``<data root>/districts/<district>/frames/<asset>/<date>.parquet``.

    The root comes from the pipeline resource, so a Launchpad override of the data root moves
    the frames with everything else.
    """

    pipeline: PipelineResource

    def create_io_manager(self, context: dg.InitResourceContext) -> ParquetFrameIOManager:
        return ParquetFrameIOManager(self.pipeline.data_root, self.pipeline.district)
