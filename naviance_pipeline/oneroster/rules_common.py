"""Shared pieces of the row and cross-file rules: vectorised value predicates, list splitting,
finding builders, bulk semantics (status/dateLastModified) and the "left out → warning" rule.

Frames here are ``csvread.Table`` frames: index = source record number (``line``), every column
a pyarrow-backed string with blank = "". Predicates take a Series and return a boolean Series on
the same index, True where the value is *acceptable*, so Pandera can use them as checks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from naviance_pipeline.oneroster.findings import (
    Finding,
    as_warning,
    finding,
    shown_ids,
    shown_values,
)
from naviance_pipeline.oneroster.spec import DROPPED_STATUSES, MAX_VALUE_LENGTH, FileSpec

SOURCED_ID = "sourcedId"
# Below this many rows, work is not worth handing to threads (the hand-off costs more).
PARALLEL_ROWS = 100_000

# Spreadsheet scientific notation of a long number (1.23457E+11). The explicit "+" keeps
# legitimate alphanumeric ids such as "2E05" out.
SCIENTIFIC = r"-?[0-9](\.[0-9]+)?[Ee]\+[0-9]+"
ID_CHARSET = rf"[A-Za-z0-9._/@-]{{1,{MAX_VALUE_LENGTH}}}"


# ---- lists ("a,b,c" cells: orgSourcedIds, agentSourcedIds, grades) ------------------------------


def arrow(values: pd.Series | pd.Index | list[str] | pa.Array | pa.ChunkedArray) -> pa.Array:
    """The values as one contiguous pyarrow large_string array (zero-copy for a single-chunk
    pyarrow-backed Series; several chunks, as a threaded CSV read gives, are combined)."""
    data = values.array if isinstance(values, (pd.Series, pd.Index)) else values
    if isinstance(data, (pa.Array, pa.ChunkedArray)):
        arr = data.cast(pa.large_string())
    else:
        arr = pa.array(data, type=pa.large_string())
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def strings(arr: pa.Array, index: pd.Index) -> pd.Series:
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


def duplicated(values: pd.Series) -> np.ndarray:
    """True for every occurrence of a value that appears more than once.

    Each value's content is hashed to 64 bits (``content_hashes``) and only the values whose
    hash repeats are compared exactly, by sorting them: distinct hashes mean distinct values.
    A million distinct usernames: 0.11 s instead of 0.58 s for sorting them all, without the
    memory of a hash table of the strings (``pc.unique`` took the users stage's peak from
    about 900 MB to 1,030-1,080 MB)."""
    n = len(values)
    if n < 2:
        return np.zeros(n, dtype=bool)
    arr = arrow(values)
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
    out[rows] = _repeats_by_sorting(arr.take(pa.array(rows)))
    return out


def _repeats_by_sorting(arr: pa.Array) -> np.ndarray:
    """``duplicated`` of ``arr`` exactly, by sorting it."""
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


_HASH_SEED, _HASH_MUL = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xFF51AFD7ED558CCD)
_HASH_FINAL = np.uint64(0xC4CEB9FE1A85EC53)
_HASH_BLOCK = 1 << 16  # rows hashed at once: bounds the temporaries to about 0.5 MB each


def content_hashes(array: pa.Array) -> np.ndarray:
    """A 64-bit hash of each value's bytes (a null hashes as empty): equal values, equal
    hashes. Eight bytes of every value at a time, read in place from the Arrow buffer (no copy
    of the strings), a block of rows at a time (small temporaries)."""
    data, ends = value_bytes(array)
    # Every 8-byte window of the data as a little-endian uint64, without a copy.
    words = np.ndarray((max(len(data) - 7, 0),), dtype="<u8", buffer=data, strides=(1,))
    hashes = np.empty(len(ends), dtype=np.uint64)
    for first in range(0, len(ends), _HASH_BLOCK):
        block = slice(first, first + _HASH_BLOCK)
        start = ends[first - 1] if first else 0
        starts = np.concatenate(([start], ends[block][:-1]))
        hashes[block] = _hash_block(data, words, starts, ends[block] - starts)
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


def holds_any_char(values: pd.Series, chars: str) -> np.ndarray:
    """Whether each value holds any of the ASCII ``chars``: one byte scan of the whole column,
    hits mapped back to their rows (a regex character class costs ten times more). UTF-8
    never uses ASCII bytes inside a multi-byte character, so a byte hit is a character hit."""
    data, ends = value_bytes(arrow(values))
    wanted = np.zeros(256, dtype=bool)
    wanted[list(chars.encode("ascii"))] = True
    hits = np.flatnonzero(wanted[data])
    out = np.zeros(len(ends), dtype=bool)
    out[np.searchsorted(ends, hits, side="right")] = True
    return out


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


@dataclass(frozen=True)
class Cells:
    """A comma-separated column split once per distinct cell: a million students' grades or
    orgSourcedIds are a few hundred distinct cells. ``tokens``/``cell_of`` are ``split_list``
    of the distinct cells; ``at[r]`` is row ``r``'s distinct cell."""

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
    distinct, at = _distinct(values)
    tokens, cell_of = split_list(distinct)
    return Cells(at, tokens, cell_of, len(distinct))


def on_distinct(values: pd.Series, predicate: Callable[[pd.Series], object]) -> pd.Series:
    """``predicate(values)`` worked out once per distinct value and spread back to the rows:
    for columns of few distinct values (a million birth dates are a few thousand), whose
    predicate costs more per value than hashing it."""
    distinct, at = _distinct(values)
    verdict = np.asarray(predicate(strings(distinct, pd.RangeIndex(len(distinct)))), dtype=bool)
    return pd.Series(verdict[at], index=values.index)


def _distinct(values: pd.Series) -> tuple[pa.Array, np.ndarray]:
    """The distinct values (null as blank) and each row's position among them."""
    encoded = pc.dictionary_encode(pc.fill_null(arrow(values), ""))
    return encoded.dictionary, encoded.indices.to_numpy(zero_copy_only=False)


def flags_of(mask: pa.Array) -> np.ndarray:
    """An Arrow boolean array as numpy, null as False."""
    return mask.fill_null(False).to_numpy(zero_copy_only=False)


def any_per_row(n: int, rows: np.ndarray, token_mask: pa.Array) -> np.ndarray:
    """For each of ``n`` cells, whether any of its tokens has ``token_mask`` set."""
    out = np.zeros(n, dtype=bool)
    out[rows[flags_of(token_mask)]] = True
    return out


def join_list(n: int, tokens: pa.Array, rows: np.ndarray) -> pa.Array:
    """Inverse of ``split_list``: join each cell's tokens with "," (cells without tokens → "")."""
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=offsets[1:])
    lists = pa.LargeListArray.from_arrays(pa.array(offsets), tokens)
    return pc.binary_join(lists, pa.scalar(",", tokens.type))


def list_all_in(values: pd.Series, allowed: Iterable[str]) -> pd.Series:
    """True where every token of the cell is one of ``allowed`` (blank cells pass)."""
    allowed = list(allowed)
    single = values.isin([*allowed, ""]).to_numpy(bool)
    if single.all():  # the common case: one valid token or blank per cell
        return pd.Series(True, index=values.index)
    cells = split_distinct(values)
    bad = pc.invert(pc.is_in(cells.tokens, value_set=pa.array(allowed, pa.large_string())))
    return pd.Series(~cells.any_token(flags_of(bad)), index=values.index)


def list_none_match(values: pd.Series, pattern: str) -> pd.Series:
    """True where no token of the cell fully matches the regular expression ``pattern``."""
    cells = split_distinct(values)
    hit = pc.match_substring_regex(cells.tokens, f"^(?:{pattern})$")
    return pd.Series(~cells.any_token(flags_of(hit)), index=values.index)


# ---- identifier predicates (True = acceptable) -------------------------------------------------


def not_blank(values: pd.Series) -> pd.Series:
    return values != ""


def unique_or_blank(values: pd.Series) -> pd.Series:
    """False for every occurrence of a non-blank value that appears more than once."""
    return pd.Series(~(duplicated(values) & (values != "").to_numpy(bool)), index=values.index)


def id_charset_ok(values: pd.Series) -> pd.Series:
    # Plain letters-and-digits ids (most) need no regex; the rest are matched in full.
    ok = pd.Series(
        pc.ascii_is_alnum(arrow(values)).to_numpy(zero_copy_only=False), index=values.index
    )
    ok &= (values.str.len() <= MAX_VALUE_LENGTH).to_numpy(bool)
    rest = (~ok).to_numpy() & (values != "").to_numpy(bool)
    ok[values == ""] = True
    if rest.any():
        ok[rest] = values[rest].str.fullmatch(ID_CHARSET).astype(bool).to_numpy()
    return ok


def _plus(values: pd.Series) -> np.ndarray:
    """Values holding a "+": only those can be in scientific notation."""
    return pc.match_substring(arrow(values), "+").to_numpy(zero_copy_only=False)


def not_scientific(values: pd.Series) -> pd.Series:
    ok = pd.Series(True, index=values.index)
    plus = _plus(values)
    if plus.any():
        ok[plus] = ~values[plus].str.fullmatch(SCIENTIFIC).astype(bool).to_numpy()
    return ok


def no_scientific_in_list(values: pd.Series) -> pd.Series:
    ok = pd.Series(True, index=values.index)
    plus = _plus(values)
    if plus.any():
        ok[plus] = list_none_match(values[plus], SCIENTIFIC).to_numpy()
    return ok


def no_case_collision(values: pd.Series) -> pd.Series:
    """False for ids whose lower case equals that of a *different* id (``AB1`` vs ``ab1``).

    Exact duplicates alone are ID-DUPLICATE, not a collision.
    """
    folded = values.str.lower()
    ok = pd.Series(True, index=values.index)
    upper = (folded != values).to_numpy(bool)
    if not upper.any():  # no letter to fold: a collision would be an exact duplicate
        return ok
    suspects = duplicated(folded) & (values != "").to_numpy(bool)
    if suspects.any():
        sub = pd.DataFrame({"id": values[suspects], "folded": folded[suspects]})
        distinct = sub.groupby("folded")["id"].transform("nunique")
        ok[distinct.index[distinct.to_numpy() > 1]] = False
    return ok


def no_stripped_zeros(values: pd.Series) -> pd.Series:
    """XLS-LEADING-ZERO heuristic, over the all-digit ids of one file.

    If some all-digit ids start with ``0``, the district zero-pads its ids; the padded width is
    the shortest length among those zero-led ids. Every all-digit id shorter than that width
    then looks like a padded id whose zeros a spreadsheet stripped, and is flagged. Files with
    no zero-led id, or with only non-digit ids, are never flagged.
    """
    zero_led = pc.starts_with(arrow(values), "0").to_numpy(zero_copy_only=False)
    if not zero_led.any():
        return pd.Series(True, index=values.index)
    digits = pc.ascii_is_decimal(arrow(values)).to_numpy(zero_copy_only=False)
    lengths = values.str.len().to_numpy()
    zero_led &= digits
    if not zero_led.any():
        return pd.Series(True, index=values.index)
    width = lengths[zero_led].min()
    return pd.Series(~(digits & (lengths < width)), index=values.index)


_DAYS_IN_MONTH = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def real_dates(dates: pd.Series) -> np.ndarray:
    """For values all shaped ``YYYY-MM-DD`` (ASCII digits): whether each is a calendar date.

    Reads the digits straight from the Arrow buffer (every value is exactly 10 bytes), which
    is several times cheaper than a date parser on a million values.
    """
    arr = arrow(dates)
    n = len(arr)
    if n == 0:
        return np.zeros(0, dtype=bool)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    raw = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    digits = raw.reshape(n, 10).astype(np.int32) - ord("0")
    year = digits[:, 0] * 1000 + digits[:, 1] * 100 + digits[:, 2] * 10 + digits[:, 3]
    month = digits[:, 5] * 10 + digits[:, 6]
    day = digits[:, 8] * 10 + digits[:, 9]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    valid_month = (month >= 1) & (month <= 12)
    last = _DAYS_IN_MONTH[np.clip(month - 1, 0, 11)] + (leap & (month == 2))
    return valid_month & (year >= 1) & (day >= 1) & (day <= last)


# ---- findings ----------------------------------------------------------------------------------


def column_at(frame: pd.DataFrame, column: str | None, positions: np.ndarray) -> pa.Array:
    """The values of ``column`` at row ``positions`` (nulls when there is no such column),
    gathered by one Arrow ``take`` rather than a lookup per row."""
    if column not in frame.columns:
        return pa.nulls(len(positions), pa.large_string())
    return arrow(frame[column]).take(pa.array(positions, pa.int64()))


def sourced_ids(frame: pd.DataFrame, lines: Iterable[int]) -> list[str | None]:
    """The sourcedId of each line (all lines must be in the frame)."""
    positions = frame.index.get_indexer(pd.Index(list(lines)))
    return column_at(frame, SOURCED_ID, positions).to_pylist()


def many_findings(
    rule: str,
    message: str,
    *,
    file: str,
    column: str | None,
    lines: Iterable[int],
    ids: Iterable[str | None] | pa.Array,
    values: Iterable[str | None] | pa.Array,
) -> list[Finding]:
    """``finding(...)`` for many rows of one rule and column, checked once by ``finding`` (rule
    code) and then built directly: failing files can have millions of rows. Values and
    sourcedIds are screened as ``finding`` screens them (``shown_values``, ``shown_ids``), by
    Arrow kernels over all rows at once."""
    severity = finding(rule, message, file=file, column=column).severity
    return [
        Finding(rule, severity, file, int(line), column, sid, message, value)
        for line, sid, value in zip(
            lines, shown_ids(ids), shown_values(values, column), strict=True
        )
    ]


def row_findings(
    frame: pd.DataFrame,
    mask: pd.Series | np.ndarray,
    rule: str,
    spec: FileSpec,
    column: str | None,
    message: str,
    *,
    with_value: bool = True,
) -> list[Finding]:
    """One finding per row where ``mask`` is set (only those rows are visited).

    ``value`` is the row's value in ``column`` (never kept for PII columns).
    """
    positions = np.flatnonzero(np.asarray(mask, dtype=bool))
    if len(positions) == 0:
        return []
    return many_findings(
        rule,
        message,
        file=spec.name,
        column=column,
        lines=frame.index[positions].tolist(),
        ids=column_at(frame, SOURCED_ID, positions),
        values=column_at(frame, column if with_value else None, positions),
    )


def summary_finding(
    frame: pd.DataFrame,
    mask: pd.Series | np.ndarray,
    rule: str,
    spec: FileSpec,
    column: str | None,
    what: str,
) -> list[Finding]:
    """One finding for all rows where ``mask`` is set: count, first line, and the first row's
    sourcedId and value. Used for repairs, blanking and rows left out by role, which can touch
    every row of a big file. ``what`` says what happened, e.g. "values in role changed to …".
    """
    failing = frame.index[np.asarray(mask, dtype=bool)]
    if len(failing) == 0:
        return []
    first = failing[0]
    value = frame.at[first, column] if column in frame.columns else None
    rows = "1 row" if len(failing) == 1 else f"{len(failing)} rows"
    message = f"{what} ({rows}, the first on line {first})"
    (sid,) = sourced_ids(frame, [first])
    return [
        finding(
            rule, message, file=spec.name, line=first, column=column, sourced_id=sid, value=value
        )
    ]


def at_most_warnings(findings: Iterable[Finding], left_out_lines: Iterable[int]) -> list[Finding]:
    """Findings on rows the package leaves out anyway become warnings (spec section 10)."""
    left_out = set(int(x) for x in left_out_lines)
    return [as_warning(f) if f.line in left_out else f for f in findings]


# ---- bulk semantics ----------------------------------------------------------------------------


def bulk_status(frame: pd.DataFrame, spec: FileSpec) -> tuple[pd.Series, list[Finding]]:
    """BULK-STATUS and BULK-DATE for one source file.

    Returns ``(dropped, findings)``: ``dropped`` marks rows whose status is ``tobedeleted`` or
    the deprecated ``inactive`` (any case); each gets its own BULK-STATUS finding. Any other
    status and every dateLastModified are blanked on output; those are reported once per
    column with a count and the first line, because exports often fill them on every row.
    """
    status = frame["status"].str.lower()
    dropped = status.isin(DROPPED_STATUSES).astype(bool)
    findings = row_findings(
        frame,
        dropped,
        "BULK-STATUS",
        spec,
        "status",
        "row is marked for deletion in the source; it is left out of the package",
    )
    findings += summary_finding(
        frame,
        (status != "") & ~dropped,
        "BULK-STATUS",
        spec,
        "status",
        "status values blanked: bulk files carry no status",
    )
    findings += summary_finding(
        frame,
        frame["dateLastModified"] != "",
        "BULK-DATE",
        spec,
        "dateLastModified",
        "dateLastModified values blanked: bulk files carry no dateLastModified",
    )
    return dropped, findings


def detach_accessors(frame: pd.DataFrame) -> None:
    """Break the reference cycles that checks leave on ``frame``: pandas caches an accessor on
    the object it was asked of (``frame.pandera`` after validation, ``.str`` on a column),
    pointing back at it, and caches the columns of ``frame[c]`` on the frame. Such a cycle
    outlives refcounting, so a dropped column stays resident until a full garbage collection:
    measured at 1 M users, the users stage's peak fell from 866 to 811 MB without them."""
    frame.__dict__.pop("pandera", None)
    cached = getattr(frame, "_item_cache", {})  # pandas < 3 keeps the Series of frame[c]
    for column in cached.values():
        column.__dict__.pop("str", None)
    cached.clear()


def output_frame(
    frame: pd.DataFrame,
    keep: pd.Series | np.ndarray,
    header: list[str],
    *,
    consume: bool = False,
) -> pd.DataFrame:
    """The rows to write: ``keep`` rows with a sourcedId, the first occurrence (in source order)
    of each sourcedId, exactly ``header`` columns (blank where ``frame`` lacks one), sorted by
    sourcedId (plain code-point order), RangeIndex. One Arrow ``take`` per column.

    ``consume``: remove each column from ``frame`` as it is gathered, so that (if nothing else
    holds it) it is freed before the next one is copied: the peak is one column, not a frame.
    """
    ids = frame[SOURCED_ID]
    rows = np.flatnonzero(np.asarray(keep, dtype=bool) & (ids != "").to_numpy(bool))
    kept_ids = arrow(ids).take(pa.array(rows))
    order = pc.sort_indices(kept_ids).to_numpy()  # a stable sort: repeats stay in source order
    ordered = kept_ids.take(pa.array(order))
    repeat = np.zeros(len(order), dtype=bool)
    if len(order) > 1:
        repeat[1:] = pc.equal(ordered[1:], ordered[:-1]).to_numpy(zero_copy_only=False)
    positions = rows[order[~repeat]]
    index = pd.RangeIndex(len(positions))
    pick = _picker(positions, len(frame))

    def gathered(values: pd.Series) -> pd.Series:
        # Pick from the (possibly chunked) column as it is: combining chunks first would copy it.
        return strings(pick(pa.array(values.array)), index)

    columns: dict[str, pd.Series | Future] = {}
    ahead = len(positions) >= PARALLEL_ROWS
    # A large frame's columns are gathered two at a time (Arrow's take releases the GIL). The
    # columns are taken from ``frame`` here, in order, and at most two copies are under way.
    with ThreadPoolExecutor(2) as pool:  # its threads start only if a column is submitted
        pending: list[Future] = []
        for c in header:
            if c not in frame.columns:
                columns[c] = blank(index)
            elif not ahead:
                columns[c] = gathered(frame.pop(c) if consume else frame[c])
            else:
                if len(pending) == 2:
                    pending.pop(0).result()
                columns[c] = pool.submit(gathered, frame.pop(c) if consume else frame[c])
                pending.append(columns[c])
    return pd.DataFrame(
        {c: v.result() if isinstance(v, Future) else v for c, v in columns.items()}, index=index
    )


def _picker(positions: np.ndarray, n: int):
    """The cheapest way to gather ``positions`` of an ``n``-row column.

    A source already in sourcedId order (most SIS exports are) needs no random access: every
    row kept is the column itself, no copy; some rows left out is a sequential filter, about
    twice as fast as a ``take``. Any other order is one ``take``."""
    if len(positions) > 1 and not (positions[1:] > positions[:-1]).all():
        indices = pa.array(positions)
        return lambda column: column.take(indices)
    if len(positions) == n:
        return lambda column: column
    mask = np.zeros(n, dtype=bool)
    mask[positions] = True
    keep = pa.array(mask)
    return lambda column: column.filter(keep)
