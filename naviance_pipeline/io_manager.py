"""Validated frames move between assets as Parquet under the data root — never pickle.

Arrow-backed strings survive the round trip unchanged (``00123`` stays ``00123``) and files
are written owner-only, since they hold student PII.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
from upath import UPath

from naviance_pipeline.resources import PipelineResource
from naviance_pipeline.storage import read_frame, write_frame


class ParquetFrameIOManager(dg.UPathIOManager):
    extension = ".parquet"

    def dump_to_path(self, context: dg.OutputContext, obj: pd.DataFrame, path: UPath) -> None:
        write_frame(obj, path)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pd.DataFrame:
        return read_frame(path)


class ParquetIOManager(dg.ConfigurableIOManagerFactory):
    """Parquet frames at ``<data root>/districts/<district>/frames/<asset>/<date>.parquet``.

    The root comes from the pipeline resource, so a Launchpad override of the data root moves
    the frames with everything else.
    """

    pipeline: PipelineResource

    def create_io_manager(self, context: dg.InitResourceContext) -> ParquetFrameIOManager:
        return ParquetFrameIOManager(base_path=self.pipeline.layout.frames_base)
