"""The predicates of the single-file rules, by the name a rule's ``check`` gives (``rules.py``).

Each is made for one column and the run's options: ``PREDICATES[name](column, options)`` is a
function of the column's values (a Series; whole rows for a row check) returning True where a
value is acceptable. They are vectorised (kernels of ``rules_common`` and ``classyear``), never
element-wise: a file can have a million rows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from naviance_pipeline.oneroster import classyear
from naviance_pipeline.oneroster import rules_common as rc
from naviance_pipeline.oneroster.kernels.bytescan import holds_any_char, real_dates
from naviance_pipeline.oneroster.kernels.distinct import on_distinct
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.spec import (
    BOOLEANS,
    CEDS_GRADES,
    RACE_FLAGS,
    TWO_OR_MORE,
    Column,
)

Predicate = Callable[[pd.Series], pd.Series]
FramePredicate = Callable[[pd.DataFrame], pd.Series]

USERIDS = r"\{[^{}:,]+:[^{}]+\}(\s*,\s*\{[^{}:,]+:[^{}]+\})*"
EMAIL = r"[^@\s,;]+@[^@\s,;]+\.[^@\s,;.]+"
DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
NAME_PUNCTUATION = "\"'`,.()[]{}"  # any of these characters


def per_distinct(predicate: Predicate) -> Predicate:
    """``predicate`` worked out once per distinct value: for dates and class years, a few
    thousand distinct values in a million rows."""
    return lambda s: on_distinct(s, predicate)


def one_of(allowed: tuple[str, ...], blank_ok: bool) -> Predicate:
    tokens = [*allowed, ""] if blank_ok else list(allowed)
    return lambda s: s.isin(tokens)


def matches(pattern: str) -> Predicate:
    """Blank, or the whole value matches ``pattern``."""
    return lambda s: ((s == "") | s.str.fullmatch(pattern)).astype(bool)


def none_of(chars: str) -> Predicate:
    """The value holds none of ``chars``."""
    return lambda s: pd.Series(~holds_any_char(s, chars), index=s.index)


def real_date(as_of: str) -> Predicate:
    """A YYYY-MM-DD value must be a calendar date not after ``as_of``. Values of another shape
    are XLS-DATE-FORMAT's, not this predicate's."""

    def check(s: pd.Series) -> pd.Series:
        shaped = s.str.fullmatch(DATE).astype(bool).to_numpy()
        ok = np.ones(len(s), dtype=bool)
        if shaped.any():
            dates = s[shaped]
            ok[shaped] = real_dates(dates) & (dates <= as_of).to_numpy(bool)
        return pd.Series(ok, index=s.index)

    return check


def races_agree(frame: pd.DataFrame) -> pd.Series:
    """The two-or-more-races flag agrees with the number of race flags set to true."""
    races = sum((frame[c] == "true").astype(int) for c in RACE_FLAGS)
    two = frame[TWO_OR_MORE]
    return ~(((two == "true") & (races < 2)) | ((two == "false") & (races >= 2))).astype(bool)


def _scientific(col: Column, options: Options) -> Predicate:
    return rc.no_scientific_in_list if col.kind == "ids" else rc.not_scientific


PREDICATES: dict[str, Callable[[Column, Options], Predicate | FramePredicate]] = {
    "not_blank": lambda col, options: rc.not_blank,
    "blank": lambda col, options: lambda s: s == "",
    "unique": lambda col, options: rc.unique_or_blank,
    "unique_ignoring_case": lambda col, options: lambda s: rc.unique_or_blank(s.str.lower()),
    "id_charset": lambda col, options: rc.id_charset_ok,
    "no_case_collision": lambda col, options: rc.no_case_collision,
    "not_scientific": _scientific,
    "no_stripped_zeros": lambda col, options: rc.no_stripped_zeros,
    "allowed": lambda col, options: one_of(col.allowed, not col.required),
    "boolean": lambda col, options: one_of(BOOLEANS, not col.required),
    "grades": lambda col, options: lambda s: rc.list_all_in(s, CEDS_GRADES),
    "userids": lambda col, options: matches(USERIDS),
    "email": lambda col, options: matches(EMAIL),
    "no_name_punctuation": lambda col, options: none_of(NAME_PUNCTUATION),
    "date_shaped": lambda col, options: per_distinct(matches(DATE)),
    "real_date": lambda col, options: per_distinct(real_date(options.as_of.isoformat())),
    "class_year_in_range": lambda col, options: per_distinct(
        lambda s: classyear.in_range(s, options.school_year_end())
    ),
    "races_agree": lambda col, options: races_agree,
}
