"""Class year (spec section 8): the grade table, the rollover day, supplied years, ranges."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from naviance_pipeline.oneroster.classyear import (
    NO_GRADE,
    class_years,
    grade_levels,
    in_range,
    years_from_grades,
)
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.stages import build_users
from naviance_pipeline_tests.oneroster.factories import district_orgs, source, student

STRING = pd.StringDtype("pyarrow")


def texts(*values: str) -> pd.Series:
    return pd.Series(list(values), dtype=STRING)


@pytest.mark.parametrize(
    ("grade", "year"),
    [
        ("KG", "2039"), ("01", "2038"), ("05", "2034"), ("08", "2031"), ("09", "2030"),
        ("10", "2029"), ("11", "2028"), ("12", "2027"),
        ("IT", ""), ("PR", ""), ("PK", ""), ("TK", ""), ("13", ""), ("PS", ""), ("UG", ""),
        ("Other", ""), ("", ""),
    ],
)  # fmt: skip
def test_class_year_from_grade_with_school_year_ending_2027(grade, year):
    assert years_from_grades(texts(grade), 2027).tolist() == [year]


@pytest.mark.parametrize(
    ("as_of", "year"),
    [
        (date(2026, 11, 30), "2030"),  # the spec's example
        (date(2026, 7, 14), "2029"),  # the day before the rollover: still school year 2025-26
        (date(2026, 7, 15), "2030"),  # the rollover day starts 2026-27
        (date(2027, 1, 1), "2030"),
    ],
)
def test_grade_09_by_as_of_date_through_the_users_stage(as_of, year):
    options = Options(as_of=as_of)
    src = source(district_orgs(), [student("u1", grades="09")])
    frame = build_users(src, options).frame
    assert frame.at[0, "metadata.classYear"] == year


def test_configured_rollover_day():
    options = Options(as_of=date(2026, 6, 30), rollover=(6, 30))
    assert options.school_year_end() == 2027


def test_multi_grade_uses_the_highest_numeric_grade():
    level, multi = grade_levels(texts("09,10", "KG", "UG,11", "PK", "10, 09", ""))
    assert level.tolist() == [10, 0, 11, NO_GRADE, 10, NO_GRADE]
    assert multi.tolist() == [True, False, True, False, True, False]


def users_frame(**columns: list[str]) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    base = {"role": ["student"] * n, "enabledUser": ["true"] * n, "grades": [""] * n}
    frame = pd.DataFrame({**base, **columns}, dtype=STRING)
    frame.index = pd.RangeIndex(2, n + 2, name="line")
    return frame


def test_first_present_supplied_column_wins_and_blank_falls_back_to_grade():
    frame = users_frame(
        grades=["09", "09", "PK"],
        **{
            "metadata.yearOfGraduation": ["2031", "", ""],
            "metadata.graduationYear": ["1999", "1999", "1999"],  # present, but later in the list
        },
    )
    years = class_years(
        frame, pd.Series(True, index=frame.index), Options(as_of=date(2026, 11, 30))
    )
    assert years.supplied_column == "metadata.yearOfGraduation"
    assert years.values.tolist() == ["2031", "2030", ""]


def test_supplied_year_is_passed_on_as_written_for_the_range_check():
    frame = users_frame(grades=["09"], **{"metadata.classYear": ["30"]})
    years = class_years(
        frame, pd.Series(True, index=frame.index), Options(as_of=date(2026, 11, 30))
    )
    assert years.values.tolist() == ["30"]


def test_staff_get_no_class_year():
    frame = users_frame(grades=["09", "09"], role=["teacher", "student"])
    students = frame["role"] == "student"
    years = class_years(frame, students, Options(as_of=date(2026, 11, 30)))
    assert years.values.tolist() == ["", "2030"]


@pytest.mark.parametrize(
    ("year", "ok"),
    [("2026", True), ("2040", True), ("2025", False), ("2041", False), ("", True),
     ("30", False), ("2030.0", False), ("02030", False), ("year", False)],
)  # fmt: skip
def test_range_is_e_minus_1_to_e_plus_13(year, ok):
    assert in_range(texts(year), 2027).tolist() == [ok]
