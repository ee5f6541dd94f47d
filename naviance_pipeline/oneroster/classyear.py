"""Class year (spec section 8): the four-digit year of expected graduation Naviance needs.

Pure, vectorised functions on string Series (blank = ""). For each student:

1. A supplied graduation year is taken from the first column of ``options.class_year_sources``
   that is *present* in the source. A row whose value in that column is blank falls back to its
   grade (a present-but-sparse column does not hide the grade). The supplied value is passed on
   as written; whether it is four digits and in range is ``in_range`` (USR-CLASSYEAR-RANGE).
2. Otherwise it is derived from the grade: ``E + 12 − g`` with ``E`` the school year end
   (``Options.school_year_end``) and ``g`` the grade number (``KG`` = 0, ``01``…``12``). A
   multi-grade cell (``09,10``) uses its highest numeric grade (USR-GRADE-MULTI), and that one
   grade is what the package writes for the student: Naviance's profile takes one grade code
   (a cell without a numeric grade writes its last code in CEDS order; a cell holding a code
   outside the CEDS list is left as it is, for USR-GRADE to reject).
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

from naviance_pipeline.oneroster.kernels.arrays import arrow, choose, strings
from naviance_pipeline.oneroster.kernels.lists import split_distinct
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.spec import CEDS_GRADES, CLASS_YEAR_COLUMN, NUMERIC_GRADES

NO_GRADE = -1


@dataclass
class ClassYears:
    """Class years of one users frame, on its index."""

    values: pd.Series  # four digits, a supplied value as written, or "" (staff, no grade)
    multi_grade: pd.Series  # bool: a student whose grades cell lists more than one grade
    supplied_column: str | None  # the source column supplied years were read from
    grades: pd.Series  # the grades to write: one grade for a multi-grade student (if CEDS)


# Which grade of a multi-grade cell is written: the numeric grades (KG, 01-12) rank above the
# others, by level, so the grade written is the one the class year uses; the others rank in
# CEDS order.
_RANKED = sorted(CEDS_GRADES, key=lambda g: (g in NUMERIC_GRADES, NUMERIC_GRADES.get(g, 0)))
_NO_RANK = -1


@dataclass
class _Grades:
    """A grades column split once per distinct cell: per cell its highest numeric grade, its
    number of grades and the one grade to write for it (None where a code is not CEDS), and
    each row's cell."""

    level: np.ndarray
    count: np.ndarray
    single: pa.Array
    at: np.ndarray


def _grade_cells(grades: pd.Series) -> _Grades:
    cells = split_distinct(grades)  # worked out once per distinct cell ("09", "10"…)
    tokens, cell_of = cells.tokens, cells.cell_of
    keys = pa.array(list(NUMERIC_GRADES), tokens.type)
    numbers = pc.take(
        pa.array(list(NUMERIC_GRADES.values()), pa.int64()), pc.index_in(tokens, keys)
    )
    level = np.full(cells.count, NO_GRADE, dtype=np.int64)
    np.maximum.at(level, cell_of, numbers.fill_null(NO_GRADE).to_numpy(zero_copy_only=False))
    named = pc.not_equal(tokens, "").to_numpy(zero_copy_only=False)
    count = np.bincount(cell_of[named], minlength=cells.count)
    rank = pc.index_in(tokens, pa.array(_RANKED, tokens.type))
    ranks = rank.fill_null(_NO_RANK).to_numpy(zero_copy_only=False)
    best = np.full(cells.count, _NO_RANK, dtype=np.int64)
    np.maximum.at(best, cell_of, ranks)
    not_ceds = np.zeros(cells.count, dtype=bool)
    not_ceds[cell_of[named & (ranks == _NO_RANK)]] = True
    chosen = pa.array(_RANKED, pa.large_string()).take(pa.array(np.maximum(best, 0)))
    none = pa.array(not_ceds | (best == _NO_RANK))
    single = pc.if_else(none, pa.scalar(None, chosen.type), chosen)
    return _Grades(level, count, single, cells.at)


def grade_levels(grades: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``(level, multi)`` per cell: the highest numeric grade (``NO_GRADE`` when the cell has
    none) and whether the cell lists more than one grade."""
    cells = _grade_cells(grades)
    return cells.level[cells.at], (cells.count > 1)[cells.at]


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
    cells = _grade_cells(frame["grades"])
    years = _years(cells.level[cells.at], options.school_year_end(), frame.index)
    if column is not None:
        supplied = frame[column]
        years = choose(supplied != "", supplied, years)
    is_student = np.asarray(students, dtype=bool)
    multi = (cells.count > 1)[cells.at] & is_student
    grades = frame["grades"]
    if multi.any():  # one grade per student: the highest, where every code is a CEDS one
        single = cells.single.take(pa.array(cells.at))
        one = multi & single.is_valid().to_numpy(zero_copy_only=False)
        grades = choose(one, strings(single.fill_null(""), frame.index), grades)
    return ClassYears(
        values=choose(is_student, years, ""),
        multi_grade=pd.Series(multi, index=frame.index),
        supplied_column=column,
        grades=grades,
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
