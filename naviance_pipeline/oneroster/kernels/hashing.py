"""Which values repeat, without a hash table of the strings: a 64-bit hash of each value's
bytes read in place from the Arrow buffers, and an exact comparison only where hashes repeat.

A million distinct usernames: 0.11 s instead of 0.58 s for sorting them all, and without the
memory of ``pc.unique`` (which took the users stage's peak from about 900 MB to 1,030-1,080 MB).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from naviance_pipeline.oneroster.kernels.arrays import arrow
from naviance_pipeline.oneroster.kernels.bytescan import value_bytes

_HASH_SEED, _HASH_MUL = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xFF51AFD7ED558CCD)
_HASH_FINAL = np.uint64(0xC4CEB9FE1A85EC53)
HASH_BLOCK = 1 << 16  # rows hashed at once: bounds the temporaries to about 0.5 MB each


def duplicated(values: pd.Series | pa.Array) -> np.ndarray:
    """True for every occurrence of a value that appears more than once (pandas'
    ``duplicated(keep=False)``; a null counts as blank).

    Each value's content is hashed to 64 bits (``content_hashes``) and only the values whose
    hash repeats are compared exactly, by sorting them: distinct hashes mean distinct values."""
    n = len(values)
    if n < 2:
        return np.zeros(n, dtype=bool)
    arr = arrow(values)
    if arr.null_count:
        arr = pc.fill_null(arr, "")
    # Strictly increasing (ids of a sorted export): no value repeats, and no sort is needed.
    if pc.all(pc.greater(arr[1:], arr[:-1]), skip_nulls=False).as_py():
        return np.zeros(n, dtype=bool)
    hashes = content_hashes(arr)
    ordered = np.sort(hashes)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    if repeated.size == 0:
        return np.zeros(n, dtype=bool)
    rows = np.flatnonzero(np.isin(hashes, repeated))
    out = np.zeros(n, dtype=bool)
    out[rows] = repeats_by_sorting(arr.take(pa.array(rows)))
    return out


def repeats_by_sorting(arr: pa.Array) -> np.ndarray:
    """``duplicated`` of ``arr`` exactly, by sorting it (for the few values whose hashes
    repeat)."""
    n = len(arr)
    order = pc.sort_indices(arr).to_numpy()
    ordered = arr.take(pa.array(order))
    same = pc.equal(ordered[1:], ordered[:-1]).to_numpy(zero_copy_only=False)
    in_run = np.zeros(n, dtype=bool)
    in_run[1:] |= same
    in_run[:-1] |= same
    out = np.empty(n, dtype=bool)
    out[order] = in_run
    return out


def content_hashes(array: pa.Array, *, block: int = HASH_BLOCK) -> np.ndarray:
    """A 64-bit hash of each value's bytes (a null hashes as empty): equal values, equal
    hashes. Eight bytes of every value at a time, read in place from the Arrow buffer (no copy
    of the strings), ``block`` rows at a time (small temporaries)."""
    data, ends = value_bytes(array)
    # Every 8-byte window of the data as a little-endian uint64, without a copy.
    words = np.ndarray((max(len(data) - 7, 0),), dtype="<u8", buffer=data, strides=(1,))
    hashes = np.empty(len(ends), dtype=np.uint64)
    for first in range(0, len(ends), block):
        rows = slice(first, first + block)
        start = ends[first - 1] if first else 0
        starts = np.concatenate(([start], ends[rows][:-1]))
        hashes[rows] = _hash_block(data, words, starts, ends[rows] - starts)
    hashes ^= hashes >> np.uint64(33)
    hashes *= _HASH_FINAL
    hashes ^= hashes >> np.uint64(33)
    return hashes


def _hash_block(
    data: np.ndarray, words: np.ndarray, starts: np.ndarray, lengths: np.ndarray
) -> np.ndarray:
    hashes = lengths.astype(np.uint64) * _HASH_SEED
    rows = np.flatnonzero(lengths > 0)
    at = 0
    while rows.size:
        offsets = starts[rows] + at
        left = lengths[rows] - at
        word = np.zeros(rows.size, dtype=np.uint64)
        whole = offsets < len(words)
        word[whole] = words[offsets[whole]]
        for i in np.flatnonzero(~whole):  # the last few bytes of the buffer: at most 7 values
            tail = data[offsets[i] : offsets[i] + 8].tobytes().ljust(8, b"\0")
            word[i] = np.frombuffer(tail, dtype="<u8")[0]
        short = left < 8  # keep only the value's own bytes of its last word
        word[short] &= (np.uint64(1) << (left[short].astype(np.uint64) * np.uint64(8))) - 1
        mixed = (hashes[rows] ^ word) * _HASH_MUL
        hashes[rows] = mixed ^ (mixed >> np.uint64(29))
        rows = rows[left > 8]
        at += 8
    return hashes
