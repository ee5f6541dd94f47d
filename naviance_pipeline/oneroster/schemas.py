"""Pandera models of the three output files, built from ``spec.py`` and the rule registry.

``model_for(spec, options)`` is a ``pa.DataFrameSchema``: every output column (strict, in
order, pyarrow-backed string) with, as its checks, the single-file rules the registry
(``rules.py``) declares on that column, each a ``pa.Check`` whose *name is the rule code* and
whose predicate (``predicates.py``) Pandera calls itself. ``describe`` prints a model as a
reader wants it (``naviance-pipeline schema users``). ``validate`` runs a model lazily on a
frame indexed by source line and turns Pandera's failure cases into ``Finding``s (check name →
rule, index → line). Cross-file rules (references, cycles, one demographics row per student,
class year) are plain functions in the ``rules_*`` modules.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np
import pandas as pd
import pandera.backends.pandas.builtin_checks  # noqa: F401 (see below)
import pandera.pandas as pa
from pandera.engines import pandas_engine

from naviance_pipeline.oneroster import rules_common as rc
from naviance_pipeline.oneroster.findings import Finding
from naviance_pipeline.oneroster.kernels.columns import column_at, detach_accessors
from naviance_pipeline.oneroster.kernels.parallel import PARALLEL_ROWS, bounded_map
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.predicates import PREDICATES
from naviance_pipeline.oneroster.rules import BY_CODE, RULES, Rule, column_rules, frame_rules
from naviance_pipeline.oneroster.spec import FILES, Column, FileSpec, output_header

# Pandera imports its pandas check backends (and with them hypothesis: ~0.15 s) on the first
# validation; the import above does it when this module is imported, with every other library,
# instead of inside whichever stage validates first.

# Pandera's own schema-level checks: their failure case is a column name or a dtype.
SCHEMA_CHECKS = r"column_in_schema|column_in_dataframe|column_ordered|dtype\("


def says(rule: str, options: Options) -> str:
    """What a failed check of ``rule`` says, the class-year range and as-of date filled in.
    Never a value: it may be PII."""
    end = options.school_year_end()
    text = BY_CODE[rule].message
    for field, value in (("{low}", end - 1), ("{high}", end + 13), ("{as_of}", options.as_of)):
        text = text.replace(field, str(value))
    return text


def message(rule: str, column: str, options: Options) -> str:
    """The message of a failed check of ``rule`` on ``column``: "<column>: <what it says>"."""
    return f"{column}: {says(rule, options)}"


# ---- the models --------------------------------------------------------------------------------


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


TEXT = Text(storage="pyarrow")


def _check(rule: Rule, column: Column | None, options: Options) -> pa.Check:
    """The Pandera check of ``rule`` on ``column`` (None: whole rows), named by its code."""
    return pa.Check(
        PREDICATES[rule.check](column, options),
        name=rule.code,
        title=rule.severity,
        description=says(rule.code, options),
    )


@lru_cache(maxsize=32)
def _model(file: str, options: Options) -> pa.DataFrameSchema:
    spec = FILES[file]
    known = {c.name: c for c in spec.columns}
    columns = {}
    for name in output_header(spec, options.include_staff):
        col = known.get(name, Column(name))  # an extension column: optional text
        kind = f"{col.kind}{', PII' if col.pii else ''}" if name in known else "extension"
        columns[name] = pa.Column(
            TEXT,
            checks=[_check(rule, col, options) for rule in column_rules(file, col)],
            description=kind,
            metadata={"required": col.required},
        )
    return pa.DataFrameSchema(
        columns,
        checks=[_check(rule, None, options) for rule in frame_rules(file)],
        strict=True,
        ordered=True,
        name=file,
    )


def model_for(spec: FileSpec, options: Options) -> pa.DataFrameSchema:
    """The Pandera model of ``spec``'s output file (users: with ``metadata.title`` when staff
    are included; date rules use ``options.as_of``). Cached per (file, options)."""
    return _model(spec.name, options)


def describe(model: pa.DataFrameSchema) -> str:
    """A model as text: each column in order with its type, kind, whether it is required and
    its checks (rule code, severity, message); then the checks of whole rows."""
    out = [f"{model.name}: {len(model.columns)} columns, in this order and no other (strict)"]
    for i, (name, column) in enumerate(model.columns.items(), 1):
        required = "value required" if column.metadata["required"] else "may be blank"
        out.append(f"{i:>3} {name}: {column.dtype}, {column.description}, {required}")
        out += [f"      {c.name} ({c.title}): {c.description}" for c in column.checks]
    if model.checks:
        out.append("    each row:")
        out += [f"      {c.name} ({c.title}): {c.description}" for c in model.checks]
    return "\n".join(out)


@lru_cache(maxsize=32)
def _parts(file: str, options: Options) -> tuple[pa.DataFrameSchema, ...]:
    """``file``'s model in parts that hold its checks exactly once between them: its structure
    (strict, in order, each column's type) with the checks of whole rows, then one schema per
    column that has checks, holding them."""
    model = _model(file, options)
    structure = model.update_columns({name: {"checks": []} for name in model.columns})
    columns = [
        pa.DataFrameSchema({name: column}, name=f"{file} {name}")
        for name, column in model.columns.items()
        if column.checks
    ]
    return structure, *columns


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

    A large frame (``PARALLEL_ROWS``) is validated by the parts of its model (``_parts``:
    the structure, then each column's checks) on two threads, each part by Pandera, and their
    failure cases are put together in the model's order: the checks are mostly Arrow kernels,
    which release the GIL (users stage at 1 M users about 0.25 s faster than one part after
    another). This is the only place a model's checks run in parallel.
    """
    if len(frame) < PARALLEL_ROWS:
        parts: tuple[pa.DataFrameSchema, ...] = (model_for(spec, options),)
    else:
        parts = _parts(spec.name, options)
    try:
        failed = list(
            bounded_map(lambda part: _failure_cases(part, frame), parts, threaded=len(parts) > 1)
        )
    finally:
        detach_accessors(frame)
    failed = [cases for cases in failed if cases is not None]
    if not failed:
        return []
    cases = pd.concat(failed, ignore_index=True) if len(failed) > 1 else failed[0]
    return _to_findings(cases, frame, spec, options, skip_columns)


def _failure_cases(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> pd.DataFrame | None:
    """Pandera's failure cases of ``schema`` on ``frame`` (every check run: lazy), or None."""
    try:
        schema.validate(frame, lazy=True, inplace=True)
    except pa.errors.SchemaErrors as err:
        return err.failure_cases
    return None


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
    reports = {r.code: r.on.frame for r in frame_rules(spec.name)}
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
