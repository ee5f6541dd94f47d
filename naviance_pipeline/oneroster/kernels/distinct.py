"""Work done once per distinct value and spread back to the rows: a million students' birth
dates are a few thousand distinct values, their grades or orgSourcedIds a few hundred cells."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from naviance_pipeline.oneroster.kernels.arrays import arrow, strings


def distinct(values: pd.Series | pa.Array) -> tuple[pa.Array, np.ndarray]:
    """The distinct values (null as blank) and each row's position among them."""
    encoded = pc.dictionary_encode(pc.fill_null(arrow(values), ""))
    return encoded.dictionary, encoded.indices.to_numpy(zero_copy_only=False)


def on_distinct(values: pd.Series, predicate: Callable[[pd.Series], object]) -> pd.Series:
    """``predicate(values)`` worked out once per distinct value and spread back to the rows,
    for a predicate that costs more per value than hashing it. ``predicate`` must judge each
    value alone (it is given the distinct values on a RangeIndex)."""
    found, at = distinct(values)
    verdict = np.asarray(predicate(strings(found, pd.RangeIndex(len(found)))), dtype=bool)
    return pd.Series(verdict[at], index=values.index)
