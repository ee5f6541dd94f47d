"""Pandera models of the three output files, generated from ``spec.py``.

``model_for(spec, options)`` builds one ``DataFrameModel`` per output file from the spec's column
table: every output column (strict, in order, pyarrow-backed string) and, per column kind, the
single-file value rules as checks whose *names are rule codes*. ``validate`` runs a model lazily
on a frame indexed by source line and turns Pandera's failure cases into ``Finding``s (check
name → rule, index → line). Cross-file rules (references, cycles, one demographics row per
student, class year) are plain functions in the ``rules_*`` modules.

Every check is a vectorised predicate from ``rules_common``/``classyear`` that returns True for
acceptable values; no ``element_wise`` checks.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated

import numpy as np
import pandas as pd
import pandera.backends.pandas.builtin_checks  # noqa: F401 (see below)
import pandera.pandas as pa
from pandera.engines import pandas_engine
from pandera.typing import Series

from naviance_pipeline.oneroster import classyear
from naviance_pipeline.oneroster import rules_common as rc
from naviance_pipeline.oneroster.findings import RULES, Finding
from naviance_pipeline.oneroster.kernels.bytescan import holds_any_char, real_dates
from naviance_pipeline.oneroster.kernels.columns import column_at, detach_accessors
from naviance_pipeline.oneroster.kernels.distinct import on_distinct
from naviance_pipeline.oneroster.kernels.parallel import PARALLEL_ROWS
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.spec import (
    BOOLEANS,
    CEDS_GRADES,
    CLASS_YEAR_COLUMN,
    DEMOGRAPHICS,
    FILES,
    ORGS,
    RACE_FLAGS,
    TWO_OR_MORE,
    USERS,
    Column,
    FileSpec,
    output_header,
)

# Pandera imports its pandas check backends (and with them hypothesis: ~0.15 s) on the first
# validation; the import above does it when this module is imported, with every other library,
# instead of inside whichever stage validates first.

# Which rule a failing value reports, where the kind alone does not say (rules.md).
REQUIRED_TEXT_RULE = {ORGS.name: "ORG-NAME", USERS.name: "USR-REQUIRED"}
BOOL_RULE = {USERS.name: "USR-ENABLED", DEMOGRAPHICS.name: "DEM-FLAG"}
ENUM_RULE = {"type": "ORG-TYPE", "role": "USR-ROLE", "sex": "DEM-SEX"}
DUPLICATE_RULE = {DEMOGRAPHICS.name: "DEM-DUPLICATE"}  # a demographics sourcedId is a user's
BLANK_RULE = {"status": "BULK-STATUS", "dateLastModified": "BULK-DATE", "password": "USR-PASSWORD"}
NAME_COLUMNS = ("givenName", "familyName", "middleName")  # USR-NAME-CHARS
USERNAME = "username"  # USR-USERNAME-DUPLICATE

USERIDS = r"\{[^{}:,]+:[^{}]+\}(\s*,\s*\{[^{}:,]+:[^{}]+\})*"
EMAIL = r"[^@\s,;]+@[^@\s,;]+\.[^@\s,;.]+"
DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
NAME_PUNCTUATION = "\"'`,.()[]{}"  # any of these characters

# What each rule checked here tells the district to fix; the finding's message is
# "<column>: <this>". Never a value: it may be PII.
MESSAGES = {
    "ID-REQUIRED": "blank; every row needs a unique sourcedId",
    "ID-DUPLICATE": "the same sourcedId appears more than once in the file; each must be unique",
    "DEM-DUPLICATE": "more than one demographics row for this user; keep exactly one",
    "ID-CHARSET": "uses characters outside A-Z a-z 0-9 . - _ / @, or is 256+ characters long",
    "ID-CASE-COLLISION": "differs from another sourcedId only by letter case",
    "XLS-SCIENTIFIC-ID": (
        "identifier in spreadsheet scientific notation (like 1.23457E+11): its digits are lost; "
        "re-export without opening the file in a spreadsheet"
    ),
    "XLS-LEADING-ZERO": (
        "all-digit id shorter than this file's zero-padded ids: a spreadsheet may have stripped "
        "its leading zeros"
    ),
    "ORG-NAME": "blank; every org needs a name",
    "ORG-TYPE": "not a OneRoster v1.1 org type (school, district, department, local, state, "
    "national)",
    "USR-REQUIRED": "blank; username, givenName and familyName are required",
    "USR-ENABLED": "must be true or false",
    "USR-ROLE": "not a OneRoster v1.1 role, so the user cannot be written",
    "USR-USERIDS": "must be a comma-separated list of {Type:Id}",
    "USR-EMAIL": "does not look like an e-mail address",
    "USR-USERNAME-DUPLICATE": "shared with another user (letter case ignored)",
    "USR-GRADE": "holds a code outside the CEDS list (IT PR PK TK KG 01-12 13 PS UG Other)",
    "USR-NAME-CHARS": (
        "holds quotes, commas, periods, parentheses or brackets, which break National Student "
        "Clearinghouse transfers"
    ),
    "USR-CLASSYEAR-RANGE": "not a four-digit year from {low} to {high}",
    "DEM-BIRTHDATE": "not a real calendar date, or after the as-of date {as_of}",
    "XLS-DATE-FORMAT": (
        "not in YYYY-MM-DD form (like 3/4/2010 or 2010-03-04 00:00:00): export dates as text"
    ),
    "DEM-SEX": "must be male or female",
    "DEM-FLAG": "must be true, false or blank",
    "DEM-RACE-CONSISTENCY": "disagrees with the number of race flags set to true",
    "BULK-STATUS": "must be blank in a bulk file",
    "BULK-DATE": "must be blank in a bulk file",
    "USR-PASSWORD": "must be blank: passwords are never sent",
}
DATED = ("USR-CLASSYEAR-RANGE", "DEM-BIRTHDATE")  # messages that name the as-of dates
# Pandera's own schema-level checks: their failure case is a column name or a dtype.
SCHEMA_CHECKS = r"column_in_schema|column_in_dataframe|column_ordered|dtype\("


def message(rule: str, column: str, options: Options) -> str:
    """The message of a failed check of ``rule`` on ``column``."""
    text = MESSAGES[rule]
    if rule in DATED:
        end = options.school_year_end()
        text = text.format(low=end - 1, high=end + 13, as_of=options.as_of.isoformat())
    return f"{column}: {text}"


Predicate = Callable[[pd.Series], pd.Series]
FramePredicate = Callable[[pd.DataFrame], pd.Series]


@dataclass(frozen=True)
class RuleCheck:
    """One check of a model. ``column`` None means a dataframe check reporting ``reports``."""

    rule: str
    column: str | None
    fn: Predicate | FramePredicate
    reports: str


def rule_checks(spec: FileSpec, options: Options) -> list[RuleCheck]:
    """Every check of the model of ``spec``, in column order, then the dataframe checks."""
    checks = [
        RuleCheck(rule, col.name, fn, col.name)
        for col in spec.columns
        for rule, fn in _column_rules(spec, col, options)
    ]
    if spec is USERS:
        end = options.school_year_end()
        checks.append(
            RuleCheck(
                "USR-CLASSYEAR-RANGE",
                CLASS_YEAR_COLUMN,
                _per_distinct(lambda s: classyear.in_range(s, end)),
                CLASS_YEAR_COLUMN,
            )
        )
    if spec is DEMOGRAPHICS:
        checks.append(RuleCheck("DEM-RACE-CONSISTENCY", None, _races_agree, TWO_OR_MORE))
    return checks


def _column_rules(spec: FileSpec, col: Column, options: Options) -> list[tuple[str, Predicate]]:
    """(rule, predicate) pairs for one spec column, from its kind."""
    kind, blank_ok = col.kind, not col.required
    if kind == "id" and col.required:  # the row's own sourcedId
        return [
            ("ID-REQUIRED", rc.not_blank),
            (DUPLICATE_RULE.get(spec.name, "ID-DUPLICATE"), rc.unique_or_blank),
            ("ID-CHARSET", rc.id_charset_ok),
            ("ID-CASE-COLLISION", rc.no_case_collision),
            ("XLS-SCIENTIFIC-ID", rc.not_scientific),
            ("XLS-LEADING-ZERO", rc.no_stripped_zeros),
        ]
    if kind == "id":
        return [("XLS-SCIENTIFIC-ID", rc.not_scientific)]
    if kind == "ids":
        return [("XLS-SCIENTIFIC-ID", rc.no_scientific_in_list)]
    if kind == "enum":
        return [(ENUM_RULE[col.name], _one_of(col.allowed, blank_ok))]
    if kind == "bool":
        return [(BOOL_RULE[spec.name], _one_of(BOOLEANS, blank_ok))]
    if kind == "grade":
        return [("USR-GRADE", lambda s: rc.list_all_in(s, CEDS_GRADES))]
    if kind == "userids":
        return [("USR-USERIDS", _matches(USERIDS))]
    if kind == "email":
        return [("USR-EMAIL", _matches(EMAIL))]
    if kind == "date":
        as_of = options.as_of.isoformat()
        return [
            ("XLS-DATE-FORMAT", _per_distinct(_matches(DATE))),
            ("DEM-BIRTHDATE", _per_distinct(_real_date(as_of))),
        ]
    if kind == "blank":
        return [(BLANK_RULE[col.name], lambda s: s == "")]
    rules: list[tuple[str, Predicate]] = []
    if col.required:
        rules.append((REQUIRED_TEXT_RULE[spec.name], rc.not_blank))
    if col.name in NAME_COLUMNS:
        rules.append(("USR-NAME-CHARS", _none_of(NAME_PUNCTUATION)))
    if col.name == USERNAME:
        rules.append(("USR-USERNAME-DUPLICATE", lambda s: rc.unique_or_blank(s.str.lower())))
    return rules


def _per_distinct(predicate: Predicate) -> Predicate:
    """``predicate`` worked out once per distinct value: for dates and class years, a few
    thousand distinct values in a million rows."""
    return lambda s: on_distinct(s, predicate)


def _one_of(allowed: tuple[str, ...], blank_ok: bool) -> Predicate:
    tokens = [*allowed, ""] if blank_ok else list(allowed)
    return lambda s: s.isin(tokens)


def _none_of(chars: str) -> Predicate:
    """The value holds none of ``chars``."""
    return lambda s: pd.Series(~holds_any_char(s, chars), index=s.index)


def _matches(pattern: str) -> Predicate:
    """Blank, or the whole value matches ``pattern``."""
    return lambda s: ((s == "") | s.str.fullmatch(pattern)).astype(bool)


def _real_date(as_of: str) -> Predicate:
    """DEM-BIRTHDATE: a YYYY-MM-DD value must be a calendar date not after ``as_of``. Values of
    another shape are XLS-DATE-FORMAT's, not this rule's."""

    def check(s: pd.Series) -> pd.Series:
        shaped = s.str.fullmatch(DATE).astype(bool).to_numpy()
        ok = np.ones(len(s), dtype=bool)
        if shaped.any():
            dates = s[shaped]
            ok[shaped] = real_dates(dates) & (dates <= as_of).to_numpy(bool)
        return pd.Series(ok, index=s.index)

    return check


def _races_agree(frame: pd.DataFrame) -> pd.Series:
    races = sum((frame[c] == "true").astype(int) for c in RACE_FLAGS)
    two = frame[TWO_OR_MORE]
    return ~(((two == "true") & (races < 2)) | ((two == "false") & (races >= 2))).astype(bool)


# ---- the DataFrameModel classes ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Text(pandas_engine.STRING):
    """``pd.StringDtype("pyarrow")``, checked on the dtype alone.

    Pandera's own string dtype check answers per value and then formats an (empty) failure
    table for every column on every validation: ~1 ms per column, most of a small file's time.
    """

    def check(self, pandera_dtype: object, data_container: object = None) -> bool:
        return isinstance(pandera_dtype, pandas_engine.STRING) and (
            pandera_dtype.storage == self.storage
        )


TEXT = Annotated[Text, "pyarrow"]


@lru_cache(maxsize=32)
def _model(file: str, options: Options) -> type[pa.DataFrameModel]:
    spec = FILES[file]
    header = output_header(spec, options.include_staff)
    attr = {name: re.sub(r"\W", "_", name) for name in header}
    namespace: dict = {
        "__annotations__": {attr[n]: Series[TEXT] for n in header},
        **{attr[n]: pa.Field(alias=n) for n in header},
        "Config": type("Config", (), {"strict": True, "ordered": True, "name": spec.name}),
    }
    for i, check in enumerate(rule_checks(spec, options)):
        method = classmethod(lambda cls, obj, fn=check.fn, i=i: _checked(i, fn, obj))
        decorate = (
            pa.check(check.column, name=check.rule)
            if check.column is not None
            else pa.dataframe_check(name=check.rule)
        )
        namespace[f"check_{i}"] = decorate(method)
    class_name = spec.name.removesuffix(".csv").capitalize() + "Model"
    return type(class_name, (pa.DataFrameModel,), namespace)


# The check results ``validate`` is computing ahead for this thread's validation, by check.
_AHEAD = threading.local()


def _checked(i: int, fn: Callable, obj: object) -> object:
    """Check ``i``'s result: computed ahead by ``validate`` (handed over once, so that it is not
    held to the end of the validation), or computed now."""
    ahead = getattr(_AHEAD, "futures", None)
    return ahead.pop(i).result() if ahead and i in ahead else fn(obj)


def _ahead(
    pool: ThreadPoolExecutor, frame: pd.DataFrame, spec: FileSpec, options: Options
) -> dict[int, Future]:
    """Every check of ``spec``'s model on ``frame`` submitted to ``pool``, in model order (the
    same predicates on the same columns Pandera would pass them: its own dtype and column
    checks still run, and a check that raises raises where Pandera calls it)."""
    return {
        i: pool.submit(c.fn, frame if c.column is None else frame[c.column])
        for i, c in enumerate(rule_checks(spec, options))
        if c.column is None or c.column in frame.columns
    }


def model_for(spec: FileSpec, options: Options) -> type[pa.DataFrameModel]:
    """The Pandera model of ``spec``'s output file (users: with ``metadata.title`` when staff
    are included; date rules use ``options.as_of``). Cached per (file, options)."""
    return _model(spec.name, options)


def validate(
    frame: pd.DataFrame,
    spec: FileSpec,
    options: Options,
    *,
    skip_columns: frozenset[str] = frozenset(),
) -> list[Finding]:
    """Validate ``frame`` (output columns, index = source line) and return its findings.

    Findings on ``skip_columns`` are dropped (a column absent from the source is reported once
    as CSV-HEADER-MISSING, not on every row). A frame that does not have the model's columns
    is a programming error and raises ValueError (naming columns only, never values).
    """
    model = model_for(spec, options)
    # A large frame's checks run on two threads ahead of Pandera, which then collects their
    # results in order: most are Arrow kernels, which release the GIL.
    with ThreadPoolExecutor(2) as pool:  # threads start only if a check is submitted
        large = len(frame) >= PARALLEL_ROWS
        _AHEAD.futures = _ahead(pool, frame, spec, options) if large else {}
        try:
            model.validate(frame, lazy=True, inplace=True)
        except pa.errors.SchemaErrors as err:
            return _to_findings(err.failure_cases, frame, spec, options, skip_columns)
        finally:
            _AHEAD.futures = {}
            detach_accessors(frame)
    return []


def _describe(broken: pd.DataFrame) -> str:
    """Schema-level failures name columns and dtypes (never data); others only their check."""
    schema_level = broken["index"].isna() & broken["check"].astype(str).str.match(SCHEMA_CHECKS)
    what = {
        f"{check}: {case}" if named else f"{column}: {check}"
        for check, case, column, named in zip(
            broken["check"], broken["failure_case"], broken["column"], schema_level, strict=True
        )
    }
    return "; ".join(sorted(what))


def _to_findings(
    cases: pd.DataFrame,
    frame: pd.DataFrame,
    spec: FileSpec,
    options: Options,
    skip_columns: frozenset[str],
) -> list[Finding]:
    broken = cases[~cases["check"].isin(RULES) | cases["index"].isna()]
    if len(broken):
        raise ValueError(f"{spec.name} frame does not fit its model: {_describe(broken)}")
    reports = {c.rule: c.reports for c in rule_checks(spec, options) if c.column is None}
    frame_level = cases["schema_context"] == "DataFrameSchema"
    # A dataframe check reports a failing row once per column; keep one, on its own column.
    cases = cases[~frame_level | ~cases.duplicated(["check", "index"])]
    cases = cases.assign(
        column=np.where(frame_level[cases.index], cases["check"].map(reports), cases["column"]),
        position=frame.index.get_indexer(pd.Index(cases["index"].astype("int64"))),
    )
    cases = cases[~cases["column"].isin(skip_columns)]
    findings: list[Finding] = []
    for (rule, column), group in cases.groupby(["check", "column"], sort=False):
        positions = group["position"].to_numpy()
        findings += rc.many_findings(
            rule,
            message(rule, column, options),
            file=spec.name,
            column=column,
            lines=frame.index[positions].tolist(),
            ids=column_at(frame, rc.SOURCED_ID, positions),
            values=column_at(frame, column, positions),
        )
    return findings
