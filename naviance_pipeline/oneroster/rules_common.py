"""Shared pieces of the row and cross-file rules: value predicates (what an acceptable id, list
or code looks like), finding builders, bulk semantics (status/dateLastModified) and the "left
out → warning" rule. The Arrow/numpy work they need is done by ``oneroster.kernels``.

Frames here are ``csvread.Table`` frames: index = source record number (``line``), every column
a pyarrow-backed string with blank = "". Predicates take a Series and return a boolean Series on
the same index, True where the value is *acceptable*, so Pandera can use them as checks.
"""

from __future__ import annotations

from collections.abc import Iterable

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
from naviance_pipeline.oneroster.kernels.arrays import arrow, flags_of
from naviance_pipeline.oneroster.kernels.columns import SOURCED_ID, column_at
from naviance_pipeline.oneroster.kernels.hashing import duplicated
from naviance_pipeline.oneroster.kernels.lists import split_distinct
from naviance_pipeline.oneroster.spec import DROPPED_STATUSES, MAX_VALUE_LENGTH, FileSpec

# Spreadsheet scientific notation of a long number (1.23457E+11). The explicit "+" keeps
# legitimate alphanumeric ids such as "2E05" out.
SCIENTIFIC = r"-?[0-9](\.[0-9]+)?[Ee]\+[0-9]+"
ID_CHARSET = rf"[A-Za-z0-9._/@-]{{1,{MAX_VALUE_LENGTH}}}"


# ---- list predicates ("a,b,c" cells: orgSourcedIds, agentSourcedIds, grades) ------------------


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


# ---- findings ----------------------------------------------------------------------------------


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
