"""Validated frames on disk: each a folder of Parquet parts, written two at a time.

``<date>.parquet/part-0.parquet``, ``part-1.parquet``, … hold the rows in order, one part per
``PART_ROWS`` rows (a small frame is one part). pyarrow encodes a Parquet file on one thread;
two parts written at once take a million-user frame from 0.45 to 0.25 s (BENCHMARKS.md,
round 6). Any Parquet reader takes the folder as one dataset (``pandas.read_parquet`` too).

A frame is written to a temporary folder beside its place and moved there once every part is
written, so a reader never sees half a frame or a part of an earlier one. A frame stored as
one file (before parts) is still read. Arrow-backed strings stay arrow strings (``00123``
stays ``00123``); parts are owner-only, as they hold student PII.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from naviance_pipeline.oneroster.spec import STRING
from naviance_pipeline.operations.crash import crashpoint, temp_name
from naviance_pipeline.operations.storage import ensure_private_dir, make_private, replace_folder

PART_ROWS = 500_000
_PART = re.compile(r"part-(\d+)\.parquet")
_ARROW_STRINGS = {pa.string(): STRING, pa.large_string(): STRING}


def write_frame(frame: pd.DataFrame, path: UPath, *, part_rows: int = PART_ROWS) -> None:
    """Store ``frame`` at ``path`` as a folder of Parquet parts of at most ``part_rows`` rows
    (balanced, at least one part), replacing what was there (a folder or a single file)."""
    ensure_private_dir(path.parent)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    count = max(1, -(-table.num_rows // part_rows))
    size = -(-table.num_rows // count)
    temp = path.with_name(temp_name(path.name))
    ensure_private_dir(temp)

    def write(i: int) -> None:
        part = temp / f"part-{i}.parquet"
        with part.open("wb") as f:
            # No min/max statistics: nothing filters these frames, and for a million strings
            # per column they are a quarter of the write time.
            pq.write_table(table.slice(i * size, size), f, write_statistics=False)
        make_private(part)

    try:
        if count == 1:
            write(0)
        else:
            with ThreadPoolExecutor(2) as pool:  # pyarrow's writer releases the GIL
                list(pool.map(write, range(count)))
        crashpoint("frame:written")
        replace_folder(temp, path)
    except BaseException:
        _remove(temp)
        raise


def read_frame(
    path: UPath, columns: list[str] | None = None, *, dictionary: Collection[str] = ()
) -> pd.DataFrame:
    """A stored frame (or only ``columns`` of it) with arrow-backed string columns.
    FileNotFoundError when nothing is stored at ``path``.

    ``dictionary``: columns of few distinct values (codes, flags) to read dictionary-encoded,
    as Parquet stores them (``pd.ArrowDtype`` of an Arrow dictionary of strings): no string
    per row is made, and a check can look at each distinct value once. At 1 M users the
    demographics frame reads in 0.17 s instead of 0.45 s (CPU); writing its CSV decodes them."""
    read_dictionary = list(dictionary) or None
    tables = []
    for part in frame_parts(path):
        with part.open("rb") as f:
            tables.append(pq.read_table(f, columns=columns, read_dictionary=read_dictionary))
    table = tables[0] if len(tables) == 1 else pa.concat_tables(tables)
    return table.to_pandas(types_mapper=_pandas_type)


@dataclass(frozen=True)
class StoredFrame:
    """A stored frame not read yet: ``load`` reads it (or only some columns) when called, so a
    stage that takes several frames can hold one of them in memory at a time."""

    path: UPath

    def load(
        self, columns: list[str] | None = None, *, dictionary: Collection[str] = ()
    ) -> pd.DataFrame:
        return read_frame(self.path, columns, dictionary=dictionary)

    @property
    def columns(self) -> list[str]:
        return frame_columns(self.path)


def _pandas_type(arrow_type: pa.DataType) -> pd.api.extensions.ExtensionDtype | None:
    if pa.types.is_dictionary(arrow_type):
        return pd.ArrowDtype(arrow_type)
    return _ARROW_STRINGS.get(arrow_type)


def frame_columns(path: UPath) -> list[str]:
    """The column names of a stored frame, from its first part's schema."""
    with frame_parts(path)[0].open("rb") as f:
        return pq.ParquetFile(f).schema_arrow.names


def frame_parts(path: UPath) -> list[UPath]:
    """The Parquet files of the frame at ``path``, in row order: its parts, or the frame itself
    when it was stored as one file. FileNotFoundError when there is none."""
    if path.is_file():
        return [path]
    numbered = {}
    for p in path.iterdir():  # FileNotFoundError when nothing is there
        match = _PART.fullmatch(p.name)
        if match:
            numbered[int(match.group(1))] = p
    if not numbered:
        raise FileNotFoundError(f"no Parquet parts in {path}")
    return [numbered[i] for i in sorted(numbered)]


def _remove(path: UPath) -> None:
    if path.exists():
        path.fs.rm(path.path, recursive=path.is_dir())
