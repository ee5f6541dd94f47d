"""output_frame: the rows written, whatever order the source is in (each gathering path)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from naviance_pipeline.oneroster.rules_common import STRING, duplicated, output_frame


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
