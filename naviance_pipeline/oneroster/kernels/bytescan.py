"""Scans of the raw UTF-8 bytes of Arrow string arrays, read in place as numpy views (no copy
of the strings): one comparison over a whole column's bytes instead of a regex per value.

UTF-8 never uses an ASCII byte inside a multi-byte character, so an ASCII byte found in the
data is that character in some value.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa

from naviance_pipeline.oneroster.kernels.arrays import arrow

_LF, _CR = ord("\n"), ord("\r")
COUNT_SLICE = 1 << 23  # bytes counted at once by line_breaks: bounded temporaries


def value_bytes(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """``(data, ends)`` of a large_string array, without copying: the UTF-8 bytes of all its
    values back to back, and where each value ends in them (nulls count as empty)."""
    offsets_buffer, data_buffer = array.buffers()[1:3]
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[
        array.offset : array.offset + len(array) + 1
    ]
    ends = offsets[1:] - offsets[0]
    if data_buffer is None:  # every value empty: Arrow may allocate no data buffer
        return np.empty(0, dtype=np.uint8), ends
    return np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0] : offsets[-1]], ends


def chunk_bytes(values: pa.ChunkedArray) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per non-empty chunk of a large_string column: its offsets, its data buffer and the bytes
    its values span, as numpy views of the Arrow buffers (no copy)."""
    for chunk in values.chunks:
        _, offsets_buf, data_buf = chunk.buffers()
        if len(chunk) == 0 or data_buf is None or data_buf.size == 0:
            continue
        first = chunk.offset * 8  # large_string offsets are int64
        offsets = np.frombuffer(offsets_buf, np.int64, count=len(chunk) + 1, offset=first)
        data = np.frombuffer(data_buf, np.uint8)
        yield offsets, data, data[offsets[0] : offsets[-1]]


def holds_any_char(values: pd.Series | pa.Array, chars: str) -> np.ndarray:
    """Whether each value holds any of the ASCII ``chars``: one byte scan of the whole column,
    hits mapped back to their rows (a regex character class costs ten times more)."""
    data, ends = value_bytes(arrow(values))
    wanted = np.zeros(256, dtype=bool)
    wanted[list(chars.encode("ascii"))] = True
    hits = np.flatnonzero(wanted[data])
    out = np.zeros(len(ends), dtype=bool)
    out[np.searchsorted(ends, hits, side="right")] = True
    return out


def holds_any_byte(data: np.ndarray, chars: bytes) -> bool:
    """Whether the bytes ``data`` hold any of ``chars`` (a few bytes: one comparison each)."""
    return any((data == byte).any() for byte in chars)


def line_breaks(view: np.ndarray, *, slice_bytes: int = COUNT_SLICE) -> int:
    """Line breaks in ``view`` (LF, CR LF or a lone CR), counted ``slice_bytes`` at a time by
    numpy (bounded temporaries; ~4x faster than ``bytes.count`` for LF, CR and CR LF)."""
    total = 0
    for start in range(0, len(view), slice_bytes):
        part = view[start : start + slice_bytes]
        total += int(np.count_nonzero(part == _LF))
        returns = np.flatnonzero(part == _CR) + start
        after = returns + 1
        after = after[after < len(view)]  # a CR at the very end is a lone CR
        total += len(returns) - int(np.count_nonzero(view[after] == _LF))
    return total


_DAYS_IN_MONTH = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def real_dates(dates: pd.Series | pa.Array) -> np.ndarray:
    """For values all shaped ``YYYY-MM-DD`` (ASCII digits): whether each is a calendar date.

    Reads the digits straight from the Arrow buffer (every value is exactly 10 bytes), which
    is several times cheaper than a date parser on a million values.
    """
    arr = arrow(dates)
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=bool)
    data, _ = value_bytes(arr)
    digits = data.reshape(n, 10).astype(np.int32) - ord("0")
    year = digits[:, 0] * 1000 + digits[:, 1] * 100 + digits[:, 2] * 10 + digits[:, 3]
    month = digits[:, 5] * 10 + digits[:, 6]
    day = digits[:, 8] * 10 + digits[:, 9]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    valid_month = (month >= 1) & (month <= 12)
    last = _DAYS_IN_MONTH[np.clip(month - 1, 0, 11)] + (leap & (month == 2))
    return valid_month & (year >= 1) & (day >= 1) & (day <= last)
