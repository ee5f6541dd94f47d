"""output_frame (each gathering path), duplicated, holds_any_char and is_in."""

from __future__ import annotations

import numpy as np
import pandas as pd

from naviance_pipeline.oneroster.rules_common import (
    duplicated,
    holds_any_char,
    is_in,
    output_frame,
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


def test_output_frame_consuming_the_frame_gives_the_same_rows_and_empties_it():
    source = frame(["c", "a", "b"])
    out = output_frame(source, np.array([True, True, False]), ["sourcedId", "name"], consume=True)
    assert out["sourcedId"].tolist() == ["a", "c"] and out["name"].tolist() == ["n-a", "n-c"]
    assert list(source.columns) == []  # every column was handed over (and can be freed)


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
