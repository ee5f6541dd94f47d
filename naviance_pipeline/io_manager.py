"""Validated frames move between assets as Parquet under the data root — never pickle.

Arrow-backed strings survive the round trip unchanged (``00123`` stays ``00123``) and files
are written owner-only, since they hold student PII.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from naviance_pipeline.resources import PipelineResource
from naviance_pipeline.storage import ensure_private_dir, make_private

_ARROW_STRINGS = {
    pa.string(): pd.StringDtype("pyarrow"),
    pa.large_string(): pd.StringDtype("pyarrow"),
}


def write_frame(frame: pd.DataFrame, path: UPath) -> None:
    ensure_private_dir(path.parent)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    with path.open("wb") as f:
        pq.write_table(table, f)
    make_private(path)


def read_frame(path: UPath) -> pd.DataFrame:
    with path.open("rb") as f:
        return pq.read_table(f).to_pandas(types_mapper=_ARROW_STRINGS.get)


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
