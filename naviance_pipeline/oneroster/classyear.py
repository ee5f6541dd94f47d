"""Class year (spec section 8): the four-digit year of expected graduation Naviance needs.

Pure, vectorised functions on string Series (blank = ""). For each student:

1. A supplied graduation year is taken from the first column of ``options.class_year_sources``
   that is *present* in the source. A row whose value in that column is blank falls back to its
   grade (a present-but-sparse column does not hide the grade). The supplied value is passed on
   as written; whether it is four digits and in range is ``in_range`` (USR-CLASSYEAR-RANGE).
2. Otherwise it is derived from the grade: ``E + 12 − g`` with ``E`` the school year end
   (``Options.school_year_end``) and ``g`` the grade number (``KG`` = 0, ``01``…``12``). A
   multi-grade cell (``09,10``) uses its highest numeric grade (USR-GRADE-MULTI); the written
   ``grades`` keeps the source list unchanged.
3. No supplied year and no numeric grade gives a blank class year: USR-CLASSYEAR for an active
   student (``missing``); a disabled student may go without one.

Staff never get a class year.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.rules_common import arrow, choose, split_distinct, strings
from naviance_pipeline.oneroster.spec import CLASS_YEAR_COLUMN, NUMERIC_GRADES

NO_GRADE = -1


@dataclass
class ClassYears:
    """Class years of one users frame, on its index."""

    values: pd.Series  # four digits, a supplied value as written, or "" (staff, no grade)
    multi_grade: pd.Series  # bool: a student whose grades cell lists more than one grade
    supplied_column: str | None  # the source column supplied years were read from


def grade_levels(grades: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``(level, multi)`` per cell: the highest numeric grade (``NO_GRADE`` when the cell has
    none) and whether the cell lists more than one grade."""
    cells = split_distinct(grades)  # worked out once per distinct cell ("09", "10"…)
    tokens, cell_of = cells.tokens, cells.cell_of
    keys = pa.array(list(NUMERIC_GRADES), tokens.type)
    numbers = pc.take(
        pa.array(list(NUMERIC_GRADES.values()), pa.int64()), pc.index_in(tokens, keys)
    )
    level = np.full(cells.count, NO_GRADE, dtype=np.int64)
    np.maximum.at(level, cell_of, numbers.fill_null(NO_GRADE).to_numpy(zero_copy_only=False))
    named = pc.not_equal(tokens, "").to_numpy(zero_copy_only=False)
    multi = np.bincount(cell_of[named], minlength=cells.count) > 1
    return level[cells.at], multi[cells.at]


def years_from_grades(grades: pd.Series, school_year_end: int) -> pd.Series:
    """``E + 12 − g`` as four-digit text per cell; "" where the cell has no numeric grade."""
    level, _ = grade_levels(grades)
    return _years(level, school_year_end, grades.index)


def _years(level: np.ndarray, school_year_end: int, index: pd.Index) -> pd.Series:
    """The class year text of each level, written once per level (a handful) and taken for
    every row."""
    lowest = min(int(level.min(initial=NO_GRADE)), NO_GRADE)
    span = range(lowest, int(level.max(initial=NO_GRADE)) + 1)
    texts = ["" if g == NO_GRADE else str(school_year_end + 12 - g) for g in span]
    return strings(pa.array(texts, pa.large_string()).take(pa.array(level - lowest)), index)


def supplied_column(frame: pd.DataFrame, sources: tuple[str, ...]) -> str | None:
    """The first of ``sources`` that is a column of ``frame``."""
    return next((c for c in sources if c in frame.columns), None)


def class_years(
    frame: pd.DataFrame, students: np.ndarray | pd.Series, options: Options
) -> ClassYears:
    """Class year for every ``students`` row of a users frame; "" for the other rows."""
    column = supplied_column(frame, options.class_year_sources)
    level, multi = grade_levels(frame["grades"])
    years = _years(level, options.school_year_end(), frame.index)
    if column is not None:
        supplied = frame[column]
        years = choose(supplied != "", supplied, years)
    is_student = np.asarray(students, dtype=bool)
    return ClassYears(
        values=choose(is_student, years, ""),
        multi_grade=pd.Series(multi & is_student, index=frame.index),
        supplied_column=column,
    )


def in_range(years: pd.Series, school_year_end: int) -> pd.Series:
    """True where a class year is blank or four digits within ``E − 1`` … ``E + 13``."""
    text = arrow(years)
    four = pc.match_substring_regex(text, "^[0-9]{4}$")
    number = pc.cast(pc.if_else(four, text, "0"), pa.int64()).to_numpy()
    inside = (number >= school_year_end - 1) & (number <= school_year_end + 13)
    blank = pc.equal(text, "").to_numpy(zero_copy_only=False)
    return pd.Series(blank | inside, index=years.index)


def missing(frame: pd.DataFrame) -> pd.Series:
    """True where an active student (``enabledUser`` = ``true``) has a blank class year."""
    return (
        (frame["role"] == "student")
        & (frame["enabledUser"] == "true")
        & (frame[CLASS_YEAR_COLUMN] == "")
    ).astype(bool)
