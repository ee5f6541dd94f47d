"""output_frame (each gathering path), duplicated, holds_any_char, is_in, and the per-distinct
helpers (split_distinct, on_distinct) against their row-by-row definitions."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pandas as pd
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from naviance_pipeline.oneroster import rules_common
from naviance_pipeline.oneroster.rules_common import (
    content_hashes,
    duplicated,
    holds_any_char,
    is_in,
    on_distinct,
    output_frame,
    split_distinct,
    split_list,
)
from naviance_pipeline.oneroster.spec import STRING


def frame(ids: list[str]) -> pd.DataFrame:
    names = [f"n-{i}" for i in ids]
    return pd.DataFrame(
        {"sourcedId": ids, "name": names}, index=pd.Index(range(2, len(ids) + 2), name="line")
    ).astype(STRING)


def written(ids: list[str], keep: list[bool]) -> list[tuple[str, str]]:
    out = output_frame(frame(ids), np.array(keep), ["sourcedId", "name", "absent"])
    assert list(out.columns) == ["sourcedId", "name", "absent"]
    assert isinstance(out.index, pd.RangeIndex)
    assert (out.dtypes == STRING).all() and (out["absent"] == "").all()
    return list(zip(out["sourcedId"], out["name"], strict=True))


def test_sorted_source_with_every_row_kept_is_written_as_is():
    assert written(["a", "b", "c"], [True] * 3) == [("a", "n-a"), ("b", "n-b"), ("c", "n-c")]


def test_sorted_source_with_rows_left_out_keeps_the_others_in_order():
    assert written(["a", "b", "c", "d"], [True, False, True, True]) == [
        ("a", "n-a"),
        ("c", "n-c"),
        ("d", "n-d"),
    ]


def test_unsorted_source_is_sorted_and_a_repeat_keeps_its_first_row():
    ids = ["c", "a", "", "b", "a"]
    assert written(ids, [True] * 5) == [("a", "n-a"), ("b", "n-b"), ("c", "n-c")]


def _dups(values: list[str]) -> list[bool]:
    return duplicated(pd.Series(values, dtype=STRING)).tolist()


def test_duplicated_marks_every_occurrence_in_any_order():
    assert _dups(["a", "b", "c"]) == [False, False, False]  # strictly increasing: no sort
    assert _dups(["a", "b", "b", "c"]) == [False, True, True, False]  # sorted with a repeat
    assert _dups(["c", "a", "c", "b", "a"]) == [True, True, True, False, True]
    assert _dups(["x"]) == [False]


# Short and long values, shared prefixes and suffixes, multi-byte characters, blanks.
VALUES = st.lists(
    st.one_of(
        st.sampled_from(["", "a", "ab", "jsmith", "jsmith1", "Jsmith", "josé", "x" * 8, "x" * 9]),
        st.text(alphabet="ab.@é", max_size=20),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(VALUES, st.integers(0, 3), st.sampled_from([1, 3, 1 << 16]))
def test_duplicated_marks_exactly_the_values_that_repeat(values, cut, block):
    # Also on a slice of a larger array (its values start part-way into Arrow's buffers), and
    # hashed a few rows at a time (repeats across blocks).
    array = pa.array(["pad"] * cut + values, pa.large_string())[cut:]
    counts = {v: values.count(v) for v in values}

    with mock.patch.object(rules_common, "_HASH_BLOCK", block):
        found = duplicated(pd.Series(pd.arrays.ArrowStringArray(array)))

    assert found.tolist() == [counts[v] > 1 for v in values]


@settings(max_examples=200, deadline=None)
@given(VALUES)
def test_equal_values_get_equal_content_hashes_wherever_they_sit(values):
    forward = content_hashes(pa.array(values, pa.large_string()))
    backward = content_hashes(pa.array(values[::-1], pa.large_string()))[::-1]
    assert forward.tolist() == backward.tolist()
    by_value = dict(zip(values, forward.tolist(), strict=True))
    assert len(set(by_value.values())) == len(by_value)  # distinct here: no collision expected


def test_a_million_distinct_values_take_no_exact_comparison(monkeypatch):
    values = pd.Series([f"user{i:07d}" for i in range(1_000_000)][::-1], dtype=STRING)
    values.iloc[123_456] = values.iloc[654_321]
    compared = []
    real = rules_common._repeats_by_sorting

    def spy(array):
        compared.append(len(array))
        return real(array)

    monkeypatch.setattr(rules_common, "_repeats_by_sorting", spy)
    out = duplicated(values)

    assert np.flatnonzero(out).tolist() == [123_456, 654_321]
    assert compared == [2]  # only the two rows whose hashes repeat were sorted


def test_output_frame_consuming_the_frame_gives_the_same_rows_and_empties_it():
    source = frame(["c", "a", "b"])
    out = output_frame(source, np.array([True, True, False]), ["sourcedId", "name"], consume=True)
    assert out["sourcedId"].tolist() == ["a", "c"] and out["name"].tolist() == ["n-a", "n-c"]
    assert list(source.columns) == []  # every column was handed over (and can be freed)


def test_a_large_frame_gathered_two_columns_at_a_time_matches_a_row_by_row_reading():
    # Past the size where columns are gathered on two threads: unsorted ids, repeats, blanks,
    # rows left out, and more columns than are ever under way at once.
    rng = np.random.default_rng(7)
    n = 200_000
    ids = [f"s{v:07d}" if v % 97 else "" for v in rng.integers(0, 2_000_000, n)]
    keep = rng.random(n) < 0.9
    columns = {"sourcedId": ids, **{f"c{k}": [f"{k}-{i}" for i in range(n)] for k in range(5)}}
    source = pd.DataFrame(columns, index=pd.Index(range(2, n + 2), name="line")).astype(STRING)
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


def _series(values: list[str]) -> pd.Series:
    return pd.Series(values, dtype=STRING)


def test_holds_any_char_finds_the_rows_with_a_listed_ascii_character():
    values = _series(["O'Brien", "José", "", "Smith", "Jr.", "Núñez,", "x"])
    assert holds_any_char(values, "',.").tolist() == [True, False, False, False, True, True, False]
    assert holds_any_char(_series([]), ",").tolist() == []
    assert holds_any_char(_series(["", ""]), ",").tolist() == [False, False]


def test_is_in_with_identical_sides_a_small_side_and_an_empty_side():
    ids = _series(["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"])
    assert is_in(ids, ids).all()  # the same ids in the same order: no hashing
    few = _series(["c", "zz"])
    assert is_in(few, ids).tolist() == [True, False]  # the few hashed, not the pool
    assert is_in(ids, few).tolist() == [False, False, True] + [False] * 7
    assert is_in(_series([]), ids).tolist() == []
    assert not is_in(ids, _series([])).any()
    reordered = _series(["b", "a", "c", "d", "e", "f", "g", "h", "i", "j"])
    assert is_in(reordered, ids).all()


# Cells as exports write them: repeated, blank, one id or several, stray spaces and commas.
CELLS = st.lists(
    st.sampled_from(["", "s1", "s2", "s1,s2", " s2 ,s1", "s1,", "d1,s1,s1", "x,y,z"]),
    max_size=40,
)


@settings(max_examples=80, deadline=None)
@given(CELLS)
def test_split_distinct_gives_each_row_the_tokens_split_list_gives_it(cells):
    values = pd.Series(cells, dtype=STRING)
    tokens, rows = split_list(values)
    split = split_distinct(values)
    for row in range(len(cells)):
        expected = tokens.filter(pa.array(rows == row)).to_pylist()
        mine = split.tokens.filter(pa.array(split.cell_of == split.at[row])).to_pylist()
        assert mine == expected
    hit = np.array([t == "s1" for t in split.tokens.to_pylist()], dtype=bool)
    assert split.any_token(hit).tolist() == ["s1" in c.replace(" ", "").split(",") for c in cells]


def test_on_distinct_spreads_the_verdict_of_each_distinct_value_to_its_rows():
    values = pd.Series(
        ["2010-01-01", "bad", "2010-01-01", "", "bad"], dtype=STRING, index=[5, 6, 7, 8, 9]
    )
    calls = []

    def predicate(distinct: pd.Series) -> pd.Series:
        calls.append(len(distinct))
        return distinct.str.len() == 10

    verdict = on_distinct(values, predicate)
    assert calls == [3]  # each distinct value once
    assert verdict.index.tolist() == [5, 6, 7, 8, 9]
    assert verdict.tolist() == [True, False, True, False, False]
