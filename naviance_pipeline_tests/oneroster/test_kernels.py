"""The speed kernels (``oneroster.kernels``), each against a plain pandas/Python reference with
hypothesis: blanks and nulls, empty arrays, arrays sliced part-way into their Arrow buffers or
in several chunks, non-ASCII text, and sizes across the blocks a kernel works in."""

from __future__ import annotations

import datetime
import gc
import re
import weakref
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pandera.pandas as pda
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import naviance_pipeline
from naviance_pipeline.oneroster.kernels import columns, hashing
from naviance_pipeline.oneroster.kernels.arrays import arrow, choose, is_in, strings
from naviance_pipeline.oneroster.kernels.bytescan import (
    chunk_bytes,
    holds_any_byte,
    holds_any_char,
    line_breaks,
    real_dates,
    value_bytes,
)
from naviance_pipeline.oneroster.kernels.columns import column_at, detach_accessors, output_frame
from naviance_pipeline.oneroster.kernels.distinct import on_distinct
from naviance_pipeline.oneroster.kernels.hashing import content_hashes, duplicated
from naviance_pipeline.oneroster.kernels.lists import (
    any_per_row,
    join_list,
    split_distinct,
    split_list,
)
from naviance_pipeline.oneroster.kernels.parallel import bounded_map, side_by_side
from naviance_pipeline.oneroster.spec import STRING

# Short and long values, shared prefixes and suffixes, multi-byte characters, blanks, and the
# bytes the scans look for (commas, quotes, spaces, line breaks).
VALUE = st.one_of(
    st.sampled_from(["", "a", "ab", "jsmith", "jsmith1", "Jsmith", "josé", "x" * 8, "x" * 9]),
    st.text(alphabet="ab.@é中😀,' \"\r\n", max_size=20),
)
VALUES = st.lists(VALUE, max_size=40)
NULLABLE = st.lists(st.one_of(VALUE, st.none()), max_size=40)
LAYOUT = st.tuples(st.integers(0, 3), st.integers(0, 40))  # (values sliced off, chunk split)


def laid_out(values: list[str | None], layout: tuple[int, int]) -> pa.ChunkedArray:
    """``values`` as a large_string column sliced part-way into its buffers (its offsets do
    not start at 0); split in two chunks unless ``split`` is 0 (then one chunk, the slice)."""
    cut, split = layout
    array = pa.array(["pad"] * cut + values, pa.large_string())[cut:]
    if split == 0:
        return pa.chunked_array([array], pa.large_string())
    split = min(split, len(values))
    return pa.chunked_array([array[:split], array[split:]], pa.large_string())


def series(values: list[str | None], layout: tuple[int, int] = (0, 0)) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(laid_out(values, layout)))


def plain(values: list[str | None]) -> pd.Series:
    """The reference: the same values as a plain object Series."""
    return pd.Series(values, dtype=object)


# ---- arrays ------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(VALUES, LAYOUT)
def test_arrow_and_strings_give_back_the_values_in_order(values, layout):
    assert arrow(series(values, layout)).to_pylist() == values
    index = pd.RangeIndex(5, 5 + len(values))
    back = strings(laid_out(values, layout), index)
    assert back.dtype == STRING and back.index.equals(index) and back.tolist() == values


@settings(max_examples=150, deadline=None)
@given(VALUES, VALUES, LAYOUT)
def test_is_in_is_pandas_isin(values, pool, layout):
    expected = plain(values).isin(pool).to_numpy(bool)
    assert is_in(series(values, layout), series(pool)).tolist() == expected.tolist()
    # The two shortcuts: the same values in the same order, and few values in a large pool.
    assert is_in(series(values, layout), series(values)).all()
    large = pool * 9 + values[:1]
    assert is_in(series(values[:1]), series(large)).tolist() == [True] * len(values[:1])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(VALUE, VALUE, st.booleans()), max_size=40))
def test_choose_is_numpy_where(rows):
    values = [v for v, _, _ in rows]
    other = [o for _, o, _ in rows]
    mask = np.array([m for _, _, m in rows], dtype=bool)
    index = pd.Index(range(3, 3 + len(rows)))
    chosen = choose(
        mask,
        pd.Series(values, index=index, dtype=STRING),
        pd.Series(other, index=index, dtype=STRING),
    )
    assert chosen.index.equals(index)
    assert chosen.tolist() == np.where(mask, plain(values), plain(other)).tolist()
    fixed = choose(mask, pd.Series(values, index=index, dtype=STRING), "z")
    assert fixed.tolist() == np.where(mask, plain(values), "z").tolist()


# ---- hashing -----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(NULLABLE, LAYOUT)
def test_duplicated_is_pandas_duplicated_keep_false(values, layout):
    expected = plain(values).fillna("").duplicated(keep=False)
    assert duplicated(series(values, layout)).tolist() == expected.tolist()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "ab", "josé", ""]), min_size=2, max_size=40))
def test_duplicated_of_sorted_values_is_pandas_duplicated(values):
    # Sorted input takes the shortcut for strictly increasing values; repeats must not.
    ordered = sorted(values)
    expected = plain(ordered).duplicated(keep=False)
    assert duplicated(series(ordered)).tolist() == expected.tolist()


@settings(max_examples=200, deadline=None)
@given(NULLABLE, LAYOUT, st.sampled_from([1, 2, 3, 7, 1 << 16]))
def test_content_hashes_are_equal_exactly_for_equal_values_in_any_block(values, layout, block):
    array = laid_out(values, layout).combine_chunks()
    hashes = content_hashes(array, block=block).tolist()
    assert hashes == content_hashes(array).tolist()  # the block size does not matter
    reference = [v or "" for v in values]  # a null hashes as blank
    by_value: dict[str, int] = {}
    for value, h in zip(reference, hashes, strict=True):
        assert by_value.setdefault(value, h) == h  # equal values, equal hashes
    assert len(set(by_value.values())) == len(by_value)  # distinct here: no collision expected


def test_a_million_distinct_values_take_no_exact_comparison(monkeypatch):
    values = pd.Series([f"user{i:07d}" for i in range(1_000_000)][::-1], dtype=STRING)
    values.iloc[123_456] = values.iloc[654_321]
    compared = []
    real = hashing.repeats_by_sorting

    def spy(array):
        compared.append(len(array))
        return real(array)

    monkeypatch.setattr(hashing, "repeats_by_sorting", spy)
    out = duplicated(values)

    assert np.flatnonzero(out).tolist() == [123_456, 654_321]
    assert compared == [2]  # only the two rows whose hashes repeat were sorted


# ---- bytescan ----------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(NULLABLE, LAYOUT)
def test_value_bytes_are_the_utf8_bytes_back_to_back(values, layout):
    chunked = laid_out(values, layout)
    for chunk in chunked.chunks:  # each a slice of one array: offsets part-way into buffers
        data, ends = value_bytes(chunk)
        encoded = [(v or "").encode() for v in chunk.to_pylist()]
        assert data.tobytes() == b"".join(encoded)
        assert ends.tolist() == np.cumsum([len(e) for e in encoded], dtype=np.int64).tolist()
    # Per chunk, without combining: the spans are the chunks' bytes.
    spans = b"".join(span.tobytes() for _, _, span in chunk_bytes(chunked))
    assert spans == b"".join((v or "").encode() for v in values)


@settings(max_examples=300, deadline=None)
@given(NULLABLE, LAYOUT, st.text(alphabet=",'\" .@\r\n", min_size=1, max_size=3))
def test_holds_any_char_is_str_contains_of_a_character_class(values, layout, chars):
    pattern = "[" + re.escape(chars) + "]"
    expected = plain(values).str.contains(pattern, regex=True).eq(True)
    assert holds_any_char(series(values, layout), chars).tolist() == expected.tolist()


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=60), st.binary(min_size=1, max_size=3))
def test_holds_any_byte_is_any_byte_in(data, chars):
    expected = any(byte in data for byte in chars)
    assert holds_any_byte(np.frombuffer(data, np.uint8), chars) is expected or (
        holds_any_byte(np.frombuffer(data, np.uint8), chars) == expected
    )


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab\r\né", max_size=60), st.integers(1, 8))
def test_line_breaks_counts_lf_crlf_and_lone_cr_across_slices(text, slice_bytes):
    data = text.encode()
    expected = len(re.findall(rb"\r\n|\r|\n", data))
    view = np.frombuffer(data, np.uint8)
    assert line_breaks(view, slice_bytes=slice_bytes) == expected
    assert line_breaks(view) == expected


def test_line_breaks_of_lf_crlf_and_a_lone_cr():
    data = np.frombuffer(b"a\r\nb\nc\rd\r\n\r\re\r", dtype=np.uint8)
    for slice_bytes in (1, 2, 3, 1 << 23):
        assert line_breaks(data, slice_bytes=slice_bytes) == 7  # CRLF LF CR CRLF CR CR, CR


DATE = st.one_of(
    st.tuples(st.integers(0, 9999), st.integers(0, 19), st.integers(0, 39)),
    # The edges: month ends, and 29 February in leap, century and 400-year years.
    st.tuples(
        st.sampled_from([1900, 2000, 2023, 2024, 2100, 2400]),
        st.sampled_from([2, 4, 12]),
        st.integers(28, 31),
    ),
).map(lambda t: f"{t[0]:04d}-{t[1]:02d}-{t[2]:02d}")


def _is_date(text: str) -> bool:
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True


@settings(max_examples=200, deadline=None)
@given(st.lists(DATE, max_size=40), LAYOUT)
def test_real_dates_is_a_calendar_check(dates, layout):
    assert real_dates(series(dates, layout)).tolist() == [_is_date(d) for d in dates]


# ---- distinct and lists ------------------------------------------------------------------------


PREDICATES = {
    "short": lambda s: s.str.len() < 3,
    "has a": lambda s: s.str.contains("a", regex=False),
    "ascii": lambda s: s.map(str.isascii).astype(bool),
}


@settings(max_examples=200, deadline=None)
@given(VALUES, LAYOUT, st.sampled_from(sorted(PREDICATES)))
def test_on_distinct_is_the_predicate_on_every_row(values, layout, name):
    predicate = PREDICATES[name]
    index = pd.Index(range(7, 7 + len(values)))
    column = pd.Series(series(values, layout).array, index=index)
    verdict = on_distinct(column, predicate)
    assert verdict.index.equals(index)
    assert verdict.tolist() == predicate(pd.Series(values, dtype=STRING)).astype(bool).tolist()


def test_on_distinct_works_out_each_distinct_value_once():
    values = pd.Series(["2010-01-01", "bad", "2010-01-01", "", "bad"], dtype=STRING)
    calls = []

    def predicate(distinct: pd.Series) -> pd.Series:
        calls.append(len(distinct))
        return distinct.str.len() == 10

    assert on_distinct(values, predicate).tolist() == [True, False, True, False, False]
    assert calls == [3]


# Cells as exports write them: repeated, blank, one id or several, stray spaces and commas.
CELL = st.one_of(
    st.sampled_from(["", "s1", "s2", "s1,s2", " s2 ,s1", "s1,", "d1,s1,s1", "x,y,z"]),
    st.text(alphabet="s1é ,", max_size=10),
)
CELLS = st.lists(CELL, max_size=40)


def _tokens(cell: str) -> list[str]:
    return [] if cell == "" else [t.strip() for t in cell.split(",")]


@settings(max_examples=200, deadline=None)
@given(CELLS, LAYOUT)
def test_split_list_and_join_list_are_python_split_and_join(cells, layout):
    tokens, rows = split_list(series(cells, layout))
    expected = [(row, t) for row, cell in enumerate(cells) for t in _tokens(cell)]
    assert list(zip(rows.tolist(), tokens.to_pylist(), strict=True)) == expected
    joined = join_list(len(cells), tokens, rows).to_pylist()
    assert joined == [",".join(_tokens(c)) for c in cells]
    hit = pa.array([t == "s1" for t in tokens.to_pylist()], pa.bool_())
    assert any_per_row(len(cells), rows, hit).tolist() == ["s1" in _tokens(c) for c in cells]


@settings(max_examples=150, deadline=None)
@given(CELLS, LAYOUT)
def test_split_distinct_gives_each_row_its_cells_tokens(cells, layout):
    split = split_distinct(series(cells, layout))
    for row, cell in enumerate(cells):
        mine = split.tokens.filter(pa.array(split.cell_of == split.at[row])).to_pylist()
        assert mine == _tokens(cell)
    hit = np.array([t == "s1" for t in split.tokens.to_pylist()], dtype=bool)
    assert split.any_token(hit).tolist() == ["s1" in _tokens(c) for c in cells]


# ---- columns -----------------------------------------------------------------------------------


def frame_of(ids: list[str], layout: tuple[int, int] = (0, 0)) -> pd.DataFrame:
    names = [f"row {row}" for row in range(len(ids))]  # tells repeats of an id apart
    return pd.DataFrame(
        {"sourcedId": series(ids, layout).array, "name": pd.array(names, dtype=STRING)},
        index=pd.Index(range(2, len(ids) + 2), name="line"),
    )


@settings(max_examples=150, deadline=None)
@given(VALUES, LAYOUT, st.data())
def test_column_at_is_iloc(ids, layout, data):
    frame = frame_of(ids, layout)
    positions = np.array(
        data.draw(
            st.lists(st.integers(0, max(len(ids) - 1, 0)), max_size=10) if ids else st.just([])
        ),
        dtype=np.int64,
    )
    assert column_at(frame, "name", positions).to_pylist() == frame["name"].iloc[positions].tolist()
    assert column_at(frame, "sourcedId", positions).to_pylist() == [ids[p] for p in positions]
    assert column_at(frame, "absent", positions).to_pylist() == [None] * len(positions)


def reference_output(frame: pd.DataFrame, keep: np.ndarray, header: list[str]) -> pd.DataFrame:
    """``output_frame`` by pandas: kept rows with a sourcedId, its first row, by code point."""
    rows = frame[keep & (frame["sourcedId"] != "").to_numpy(bool)].astype(object)
    rows = rows.drop_duplicates("sourcedId", keep="first")
    order = sorted(range(len(rows)), key=lambda i: rows["sourcedId"].iloc[i])
    rows = rows.iloc[order].reset_index(drop=True)
    return pd.DataFrame({c: rows[c] if c in rows else [""] * len(rows) for c in header})


IDS = st.lists(st.sampled_from(["", "a", "b", "B", "é", "ab", "a b", "c", "10", "9"]), max_size=40)


@settings(max_examples=200, deadline=None)
@given(IDS, LAYOUT, st.data(), st.booleans(), st.booleans(), st.booleans())
def test_output_frame_is_pandas_drop_duplicates_and_sort(
    ids, layout, data, consume, threaded, order
):
    # Sorted sources take the no-copy and filter paths, others a take; small and "large" frames.
    ids = sorted(ids) if order else ids
    keep = np.array(data.draw(st.lists(st.booleans(), min_size=len(ids), max_size=len(ids))), bool)
    frame = frame_of(ids, layout)
    header = ["sourcedId", "absent", "name"]
    expected = reference_output(frame, keep, header)
    with mock.patch.object(columns, "PARALLEL_ROWS", 0 if threaded else columns.PARALLEL_ROWS):
        out = output_frame(frame, keep, header, consume=consume)
    assert list(out.columns) == header and isinstance(out.index, pd.RangeIndex)
    assert (out.dtypes == STRING).all()
    assert out.astype(object).to_dict("list") == expected.to_dict("list")
    assert list(frame.columns) == ([] if consume else ["sourcedId", "name"])


def test_a_large_frame_gathered_two_columns_at_a_time_matches_a_row_by_row_reading():
    # Past the size where columns are gathered on two threads: unsorted ids, repeats, blanks,
    # rows left out, and more columns than are ever under way at once.
    rng = np.random.default_rng(7)
    n = 200_000
    ids = [f"s{v:07d}" if v % 97 else "" for v in rng.integers(0, 2_000_000, n)]
    keep = rng.random(n) < 0.9
    data = {"sourcedId": ids, **{f"c{k}": [f"{k}-{i}" for i in range(n)] for k in range(5)}}
    source = pd.DataFrame(data, index=pd.Index(range(2, n + 2), name="line")).astype(STRING)
    header = ["sourcedId", "c0", "absent", "c1", "c2", "c3", "c4"]

    out = output_frame(source, keep, header, consume=True)

    first: dict[str, int] = {}
    for row, (sid, kept) in enumerate(zip(ids, keep, strict=True)):
        if kept and sid and sid not in first:
            first[sid] = row
    rows = [first[sid] for sid in sorted(first)]
    assert out["sourcedId"].tolist() == sorted(first)
    for k in range(5):
        assert out[f"c{k}"].tolist() == [f"{k}-{i}" for i in rows]
    assert list(out.columns) == header and (out["absent"] == "").all()
    assert list(source.columns) == []


def test_a_validated_frame_is_freed_by_refcounting_once_its_accessors_are_detached():
    # Pandera caches ``frame.pandera`` and a check's ``.str`` on a column, each pointing back
    # at its object: without detaching them, the frame (every column) waits for the cyclic GC.
    frame = pd.DataFrame({"a": ["x", "y"], "b": ["1", "2"]}, dtype=STRING)
    check = pda.Check(lambda s: s.str.len() > 0)
    pda.DataFrameSchema({c: pda.Column(checks=check) for c in "ab"}).validate(frame, inplace=True)
    detach_accessors(frame)
    gone = weakref.ref(frame)
    gc.disable()
    try:
        del frame
        assert gone() is None
    finally:
        gc.enable()


def test_no_module_reaches_into_private_pandas_attributes():
    # The item cache, block manager, cacher and Arrow/numpy backing of pandas objects are
    # pandas' own; a change of pandas version would silently change what touching them does.
    private = re.compile(r"[.'\"](_item_cache|_mgr|_cacher|_is_copy|_pa_array|_ndarray)\b")
    root = Path(naviance_pipeline.__file__).parent
    found = [
        f"{path.relative_to(root)}:{number}"
        for path in sorted(root.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if private.search(line)
    ]
    assert found == []


# ---- parallel ----------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(), max_size=30), st.integers(1, 3), st.booleans())
def test_bounded_map_is_map_with_at_most_width_calls_under_way(items, width, threaded):
    received = []
    ahead = []  # when item k is taken: how many items are taken but not yet handed back

    def produce():
        for k, item in enumerate(items):
            ahead.append(k - len(received))
            yield item

    for result in bounded_map(lambda item: item * 2, produce(), width=width, threaded=threaded):
        received.append(result)
    assert received == [i * 2 for i in items]
    assert max(ahead, default=0) <= (width if threaded else 0)


def test_bounded_map_raises_a_failure_where_its_result_is_taken():
    def fail():
        raise ValueError("no")

    assert side_by_side(lambda: 1, lambda: 2) == [1, 2]
    with pytest.raises(ValueError, match="no"):
        side_by_side(lambda: 1, fail, lambda: 3)
