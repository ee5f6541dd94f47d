"""Certain repairs of spreadsheet damage (spec section 10), vectorised and always reported.

Only repairs whose result is beyond doubt are made:

- XLS-BOOLEAN-CASE: ``TRUE``/``True``/``FALSE``/``False`` → ``true``/``false`` in ``bool``
  columns;
- XLS-ENUM-CASE: an enumerated value in the wrong case → the spec's token (``Student`` →
  ``student``, ``School`` → ``school``, ``Male`` → ``male``; in grade lists ``kg`` → ``KG``,
  ``other`` → ``Other``);
- XLS-GRADE-PADDING: grade ``1``…``9`` → ``01``…``09`` and ``K`` → ``KG``, also inside
  multi-grade lists (a repaired list is re-joined with "," and its tokens trimmed).

Anything else (scientific-notation ids, reformatted dates) cannot be undone and is left to the
rules. Repairs are reported once per (column, kind) with the count and the first line, so a file
where a spreadsheet touched every row still gives a readable report.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from naviance_pipeline.oneroster.findings import Finding
from naviance_pipeline.oneroster.kernels.arrays import choose, is_in
from naviance_pipeline.oneroster.kernels.lists import any_per_row, join_list, split_list
from naviance_pipeline.oneroster.kernels.parallel import PARALLEL_ROWS
from naviance_pipeline.oneroster.rules_common import summary_finding
from naviance_pipeline.oneroster.spec import BOOLEANS, CEDS_GRADES, STRING, FileSpec

# XLS-GRADE-PADDING: what a spreadsheet makes of the CEDS codes it takes for numbers / initials.
GRADE_PADDING = {**{str(g): f"{g:02d}" for g in range(1, 10)}, "K": "KG", "k": "KG"}


def repair(frame: pd.DataFrame, spec: FileSpec) -> tuple[pd.DataFrame, list[Finding]]:
    """Repair the columns of ``frame`` whose spec kind allows it; the input is not modified."""
    out = frame.copy(deep=False)
    findings: list[Finding] = []
    columns = [c for c in spec.columns if c.name in out.columns and c.kind in _VALID]
    for column, clean in zip(columns, _clean(out, columns), strict=True):
        if clean:  # the common case: nothing to repair
            continue
        if column.kind == "bool":
            findings += _repair_case(out, spec, column.name, BOOLEANS, "XLS-BOOLEAN-CASE")
        elif column.kind == "enum":
            findings += _repair_case(out, spec, column.name, column.allowed, "XLS-ENUM-CASE")
        else:
            findings += _repair_grades(out, spec, column.name)
    return out, findings


# What a column of each repairable kind holds when it needs no repair.
_VALID = {
    "bool": lambda column: [*BOOLEANS, ""],
    "enum": lambda column: [*column.allowed, ""],
    "grade": lambda column: [*CEDS_GRADES, ""],
}


def _clean(frame: pd.DataFrame, columns: list) -> list[bool]:
    """Whether each column holds only valid values, so needs no repair (a large frame's
    columns two at a time: Arrow's is_in releases the GIL)."""

    def clean(column) -> bool:
        return bool(is_in(frame[column.name], _VALID[column.kind](column)).all())

    if len(frame) < PARALLEL_ROWS:
        return [clean(c) for c in columns]
    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(clean, columns))


def _repair_case(
    frame: pd.DataFrame, spec: FileSpec, name: str, allowed: tuple[str, ...], rule: str
) -> list[Finding]:
    values = frame[name]
    token_of = {a.lower(): a for a in allowed}
    folded = values.str.lower()
    fix = (folded.isin(list(token_of)) & ~values.isin(list(allowed))).to_numpy(bool)
    if not fix.any():
        return []
    found = summary_finding(
        frame, fix, rule, spec, name, f"values in {name} changed to the spec's exact case"
    )
    frame[name] = choose(fix, folded.map(token_of).astype(STRING), values)
    return found


def _repair_grades(frame: pd.DataFrame, spec: FileSpec, name: str) -> list[Finding]:
    values = frame[name]
    tokens, rows = split_list(values)
    padded = _lookup(tokens, GRADE_PADDING)
    case_of = {g.lower(): g for g in CEDS_GRADES}
    recased = pc.if_else(
        pc.is_in(tokens, value_set=pa.array(CEDS_GRADES, tokens.type)),
        pa.scalar(None, tokens.type),
        _lookup(pc.utf8_lower(tokens), case_of),
    )
    n = len(values)
    pad_rows = any_per_row(n, rows, pc.is_valid(padded))
    case_rows = any_per_row(n, rows, pc.is_valid(recased))
    if not (pad_rows.any() or case_rows.any()):
        return []
    findings = summary_finding(
        frame,
        pad_rows,
        "XLS-GRADE-PADDING",
        spec,
        name,
        f"values in {name} zero-padded as CEDS grades (1 → 01, K → KG)",
    )
    findings += summary_finding(
        frame,
        case_rows,
        "XLS-ENUM-CASE",
        spec,
        name,
        f"values in {name} changed to the CEDS code's exact case",
    )
    fixed_tokens = pc.coalesce(padded, recased, tokens)
    joined = pd.Series(join_list(n, fixed_tokens, rows), index=values.index, dtype=STRING)
    frame[name] = choose(pad_rows | case_rows, joined, values)
    return findings


def _lookup(tokens: pa.Array, mapping: dict[str, str]) -> pa.Array:
    """``mapping[token]`` per token, null where the token is not a key."""
    keys = pa.array(list(mapping), tokens.type)
    positions = pc.index_in(tokens, value_set=keys)
    return pc.take(pa.array(list(mapping.values()), tokens.type), positions)
