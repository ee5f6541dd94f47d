"""pyarrow string arrays and pandas Series: the conversions, choices and membership tests the
domain uses on whole columns, by Arrow (pandas' own ``where``/``isin`` on string arrays visit
every value in Python).

Frames in the core hold ``pd.StringDtype("pyarrow")`` columns; these functions read their Arrow
arrays in place and wrap results without copying them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def arrow(values: pd.Series | pd.Index | list[str] | pa.Array | pa.ChunkedArray) -> pa.Array:
    """The values as one contiguous pyarrow large_string array (zero-copy for a single-chunk
    pyarrow-backed Series; several chunks, as a threaded CSV read gives, are combined)."""
    data = values.array if isinstance(values, (pd.Series, pd.Index)) else values
    if isinstance(data, (pa.Array, pa.ChunkedArray)):
        arr = data.cast(pa.large_string())
    else:
        arr = pa.array(data, type=pa.large_string())
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def strings(arr: pa.Array | pa.ChunkedArray, index: pd.Index) -> pd.Series:
    """A pyarrow string array as a ``pd.StringDtype("pyarrow")`` Series on ``index``."""
    return pd.Series(pd.arrays.ArrowStringArray(arr.cast(pa.large_string())), index=index)


def blank(index: pd.Index) -> pd.Series:
    """An all-blank text column on ``index``: one buffer of offsets, no per-value work."""
    return strings(pa.nulls(len(index), pa.large_string()).fill_null(""), index)


def choose(mask: np.ndarray | pd.Series, values: pd.Series, other: pd.Series | str) -> pd.Series:
    """``values`` where ``mask`` is set, else ``other``, by Arrow (pandas' ``where`` on string
    arrays converts every value in Python)."""
    alt = pa.scalar(other, pa.large_string()) if isinstance(other, str) else arrow(other)
    chosen = pc.if_else(pa.array(np.asarray(mask, dtype=bool)), arrow(values), alt)
    return strings(chosen, values.index)


def is_in(
    values: pd.Series | pa.Array, pool: pd.Series | pd.Index | list[str] | pa.Array
) -> np.ndarray:
    """``values.isin(pool)`` as a bool array, hashed by pyarrow (pandas' isin converts every
    element of a large pool in Python)."""
    arr, among = arrow(values), arrow(pool)
    if len(arr) == 0:
        return np.zeros(0, dtype=bool)
    if len(arr) == len(among) and pc.all(pc.equal(arr, among), skip_nulls=False).as_py():
        return np.ones(len(arr), dtype=bool)  # the same values in the same order (same ids)
    if len(arr) * 8 < len(among):
        # Few values against a large pool: hash the few, keep only the pool values among them.
        among = among.filter(pc.is_in(among, value_set=arr))
    return pc.is_in(arr, value_set=among).to_numpy(zero_copy_only=False)


def flags_of(mask: pa.Array) -> np.ndarray:
    """An Arrow boolean array as numpy, null as False."""
    return mask.fill_null(False).to_numpy(zero_copy_only=False)
