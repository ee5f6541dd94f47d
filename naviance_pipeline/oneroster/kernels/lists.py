"""Comma-separated cells ("a,b,c": orgSourcedIds, agentSourcedIds, grades) as Arrow tokens:
split once (per distinct cell where cells repeat), judged token by token, joined back."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from naviance_pipeline.oneroster.kernels.arrays import arrow, flags_of
from naviance_pipeline.oneroster.kernels.distinct import distinct


def split_list(values: pd.Series | pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Split comma-separated cells into trimmed tokens.

    Returns ``(tokens, rows)``: ``rows[i]`` is the position (0-based, not the line) of the cell
    token ``i`` came from. A blank cell yields no token; ``"a,"`` yields ``"a"`` and ``""``.
    """
    arr = arrow(values)
    lists = pc.split_pattern(arr, ",")
    # A blank cell is "no list", not a list holding one blank token.
    lists = pc.if_else(pc.equal(arr, ""), pa.scalar(None, lists.type), lists)
    tokens = pc.utf8_trim_whitespace(pc.list_flatten(lists))
    rows = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    return tokens, rows


def join_list(n: int, tokens: pa.Array, rows: np.ndarray) -> pa.Array:
    """Inverse of ``split_list``: join each cell's tokens with "," (cells without tokens → "")."""
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=offsets[1:])
    lists = pa.LargeListArray.from_arrays(pa.array(offsets), tokens)
    return pc.binary_join(lists, pa.scalar(",", tokens.type))


def any_per_row(n: int, rows: np.ndarray, token_mask: pa.Array) -> np.ndarray:
    """For each of ``n`` cells, whether any of its tokens has ``token_mask`` set."""
    out = np.zeros(n, dtype=bool)
    out[rows[flags_of(token_mask)]] = True
    return out


@dataclass(frozen=True)
class Cells:
    """A comma-separated column split once per distinct cell. ``tokens``/``cell_of`` are
    ``split_list`` of the distinct cells; ``at[r]`` is row ``r``'s distinct cell."""

    at: np.ndarray
    tokens: pa.Array
    cell_of: np.ndarray
    count: int  # distinct cells

    def any_token(self, token_mask: np.ndarray) -> np.ndarray:
        """Per row: whether any token of its cell has ``token_mask`` set."""
        per_cell = np.zeros(self.count, dtype=bool)
        per_cell[self.cell_of[token_mask]] = True
        return per_cell[self.at]


def split_distinct(values: pd.Series) -> Cells:
    """``split_list`` of each distinct cell of ``values``, and which cell each row holds."""
    cells, at = distinct(values)
    tokens, cell_of = split_list(cells)
    return Cells(at, tokens, cell_of, len(cells))
