"""Convert SIS tables to a OneRoster v1.1 folder through a mapping (``sis/mapping.py``).

The tables are CSV bytes: the files of a SIS export, or the result sets of a SQL snapshot.
Each is read leniently as text (``oneroster/csvread.py``: every value a string, trimmed; its
encoding from the mapping), then every output column is computed for all rows at once with
pyarrow: columns, constants, templates, value maps, date formats, id prefixes and race codes.
The result is ``manifest.csv``, ``orgs.csv``, ``users.csv`` and ``demographics.csv`` in the
strict format of the package, which the validation stages then read like any OneRoster export.

Nothing is invented or dropped silently: a value its value map does not list, or a birth date
not in the mapping's format, is a finding with the rule code of the output column, located in
the source (file, record number, column, and the output sourcedId), and is written unchanged so
the stages reject it too. Findings never hold values of PII columns. Rows come out in mapping
order (the users entries in turn), each table in its source order.
"""

from __future__ import annotations

import codecs
import functools
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from naviance_pipeline.oneroster.csvread import read_table
from naviance_pipeline.oneroster.findings import Finding, finding, shown_id, sort_findings
from naviance_pipeline.oneroster.kernels.arrays import arrow
from naviance_pipeline.oneroster.kernels.lists import join_list
from naviance_pipeline.oneroster.manifest import manifest_frame
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.spec import (
    DEMOGRAPHICS,
    MANIFEST_HEADER,
    ORGS,
    RACE_FLAGS,
    TWO_OR_MORE,
    USERS,
    Column,
    FileSpec,
)
from naviance_pipeline.oneroster.writer import write_csv
from naviance_pipeline.sources.sis.export import HeaderUnreadable, read_header
from naviance_pipeline.sources.sis.mapping import (
    DATE_RULE,
    IMPOSSIBLE_DATE_RULE,
    METADATA,
    RACES,
    MappingError,
    SisMapping,
    ValueSource,
    coded,
    template_parts,
)

_TEXT = pa.large_string()
# What reading a source table may report. The rest of csvread's findings are about OneRoster
# files (unknown or missing spec columns, column order, versions, a BOM) or are checked again
# on the converted files (too long, empty).
_SOURCE_RULES = frozenset(
    {
        "CSV-ENCODING",
        "CSV-PARSE",
        "CSV-NEWLINE-IN-VALUE",
        "CSV-WHITESPACE",
        "CSV-CONTROL-CHARS",
        "CSV-HEADER-DUPLICATE",
    }
)
_BREAKS = r"\r\n|[\r\n]"
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
SOURCED_ID = "sourcedId"


@dataclass
class Conversion:
    """The converted OneRoster files, the findings of converting, and row counts."""

    files: dict[str, bytes]  # manifest.csv, orgs.csv, users.csv, demographics.csv
    findings: list[Finding]
    rows: dict[str, int]  # data rows written, by output file
    table_rows: dict[str, int] = field(default_factory=dict)  # data rows read, by table


def convert(
    mapping: SisMapping,
    tables: Mapping[str, bytes],
    options: Options,
    *,
    file_names: Mapping[str, str] | None = None,
    encoding: str | None = None,
) -> Conversion:
    """Convert ``tables`` (table name -> CSV bytes) to OneRoster v1.1 files.

    ``file_names``: the file findings name for a table (default: its export file, else
    ``<table>.csv``, the name of its result set in a SQL snapshot). ``encoding``: the one
    encoding of every table, for tables that are not the export files (a SQL snapshot's result
    sets are ``sql.RESULT_ENCODING``); None: each table's ``encoding`` in the mapping, which is
    its export file's. Raises MappingError when a table is not given or lacks a column the
    mapping reads; bad values are findings."""
    sources = _Sources(mapping, tables, file_names or {}, encoding)
    findings: list[Finding] = []
    files = {"manifest.csv": write_csv(manifest_frame(options), list(MANIFEST_HEADER))}
    rows: dict[str, int] = {}

    def write(name: str, blocks: list[Block], header: list[str]) -> None:
        frame = _frame(blocks, header)
        if sources.line_breaks:  # reported as CSV-NEWLINE-IN-VALUE; the writer refuses them
            frame = _without_breaks(frame)
        files[name], rows[name] = write_csv(frame, header), len(frame)

    # One file at a time, so that only one file's columns are held at once.
    write(ORGS.name, _orgs(mapping, sources, findings), ORGS.header)
    users = _users(mapping, sources, findings)
    write(USERS.name, users, _users_header(users))
    sourced_ids = [block[SOURCED_ID] for block in users]
    del users
    demographics = _demographics(mapping, sources, sourced_ids, findings)
    write(DEMOGRAPHICS.name, demographics, DEMOGRAPHICS.header)
    findings.extend(sources.findings())
    return Conversion(
        files,
        sort_findings(findings),
        rows,
        {name: table.rows for name, table in sources.read.items()},
    )


# ---- source tables --------------------------------------------------------------------------


@dataclass
class _Table:
    """One source table read as text: every column the mapping reads, and record numbers."""

    name: str
    file: str
    columns: dict[str, pa.Array]
    lines: np.ndarray
    findings: list[Finding]
    sourced_ids: pa.Array | None = None  # the output sourcedIds of its rows, once known

    @property
    def rows(self) -> int:
        return len(self.lines)

    def column(self, name: str) -> pa.Array:
        return self.columns[name]


class _Sources:
    """Reads each source table once, when first needed."""

    def __init__(
        self,
        mapping: SisMapping,
        tables: Mapping[str, bytes],
        file_names: Mapping[str, str],
        encoding: str | None = None,
    ) -> None:
        self.mapping = mapping
        self.tables = tables
        self.file_names = file_names
        self.encoding = encoding
        self.read: dict[str, _Table] = {}

    def table(self, name: str) -> _Table:
        if name not in self.read:
            self.read[name] = self._read(name)
        return self.read[name]

    @property
    def line_breaks(self) -> bool:
        return any(f.rule == "CSV-NEWLINE-IN-VALUE" for t in self.read.values() for f in t.findings)

    def findings(self) -> list[Finding]:
        """The reading findings of every table, each given its row's output sourcedId."""
        return [f for t in self.read.values() for f in _with_sourced_ids(t)]

    def _read(self, name: str) -> _Table:
        mapping = self.mapping
        file = self.file_names.get(name) or mapping.file_label(name)
        if name not in self.tables:
            raise MappingError([f"{mapping.label}: tables.{name}: no data was given for it"])
        data = self.tables[name]
        encoding = self.encoding or mapping.tables[name].encoding
        try:
            header = read_header(io.BytesIO(data), encoding)
        except HeaderUnreadable as e:
            raise MappingError(
                [f"{mapping.label}: tables.{name}.{e.key}: the header row of {file} {e}"]
            ) from None
        problems = mapping.header_problems(name, header, file)
        if problems:
            raise MappingError(problems)
        columns = mapping.columns_read(name)
        # Undecodable in its encoding: no rows are read, the finding says where.
        data, findings = _as_utf8(data, encoding, file, name)
        spec = FileSpec(file, tuple(Column(c) for c in columns))
        read = read_table(data or _header_only(columns), spec)
        findings += [_source_finding(f, name) for f in read.findings]
        findings = [f for f in findings if f.rule in _SOURCE_RULES]
        frame = read.frame
        return _Table(
            name,
            file,
            {c: arrow(frame[c]) for c in columns},
            frame.index.to_numpy(np.int64),
            findings,
        )


def _as_utf8(data: bytes, encoding: str, file: str, table: str) -> tuple[bytes, list[Finding]]:
    """The bytes as UTF-8 (csvread reads UTF-8 and reports where it is not); a table in another
    encoding is transcoded, and bytes that are not text in it are CSV-ENCODING."""
    if _is_utf8(encoding):
        return data, []
    try:
        return data.decode(encoding).encode("utf-8"), []
    except UnicodeDecodeError as e:
        line = data[: e.start].decode(encoding).count("\n") + 1
        message = (
            f"the file is not valid {encoding} (first bad byte on line {line}): check "
            f"tables.{table}.encoding in the mapping, or the export"
        )
        return b"", [finding("CSV-ENCODING", message, file=file, line=line)]


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name == "utf-8"


def _header_only(columns: list[str]) -> bytes:
    quoted = ('"' + c.replace('"', '""') + '"' for c in columns)
    return (",".join(quoted) + "\r\n").encode()


def _source_finding(f: Finding, table: str) -> Finding:
    if f.rule == "CSV-ENCODING":
        hint = f"; if the export is in another encoding, set tables.{table}.encoding"
        return replace(f, message=f.message + hint)
    return f


def _with_sourced_ids(table: _Table) -> Iterable[Finding]:
    for f in table.findings:
        if f.sourcedId is None and f.line is not None and table.sourced_ids is not None:
            at = int(np.searchsorted(table.lines, f.line))
            if at < table.rows and table.lines[at] == f.line:
                yield replace(f, sourcedId=shown_id(table.sourced_ids[at].as_py()))
                continue
        yield f


# ---- output blocks: one table's rows, as output columns -----------------------------------------

Block = dict[str, pa.Array]  # output column -> one value per row of a source table


def _orgs(mapping: SisMapping, sources: _Sources, findings: list[Finding]) -> list[Block]:
    orgs = mapping.orgs
    blocks = []
    if orgs.table is not None:
        table = sources.table(orgs.table)
        blocks.append(_block(mapping, table, orgs.columns, ORGS, orgs.id_prefix, findings))
    if orgs.rows:
        named = [c for c in ORGS.header if any(c in row for row in orgs.rows)]
        rows = {c: pa.array([row.get(c, "") for row in orgs.rows], _TEXT) for c in named}
        rows[SOURCED_ID] = _prefixed(rows[SOURCED_ID], orgs.id_prefix)
        blocks.append(rows)
    for block in blocks:
        if "parentSourcedId" in block:
            block["parentSourcedId"] = _prefixed(block["parentSourcedId"], orgs.id_prefix)
    return blocks


def _users(mapping: SisMapping, sources: _Sources, findings: list[Finding]) -> list[Block]:
    """users.csv blocks, one per users entry."""
    blocks = []
    for entry in mapping.users:
        table = sources.table(entry.table)
        block = _block(mapping, table, entry.columns, USERS, entry.id_prefix, findings)
        block["orgSourcedIds"] = _prefixed_list(block["orgSourcedIds"], mapping.orgs.id_prefix)
        blocks.append(block)
    return blocks


def _demographics(
    mapping: SisMapping,
    sources: _Sources,
    sourced_ids: list[pa.Array],
    findings: list[Finding],
) -> list[Block]:
    """demographics.csv blocks, one per users entry that maps demographics, keyed by the
    entry's user sourcedIds (``sourced_ids``, by entry)."""
    blocks = []
    for entry, sids in zip(mapping.users, sourced_ids, strict=True):
        if not entry.demographics:
            continue
        table = sources.table(entry.table)
        block: Block = {SOURCED_ID: sids}
        for target, source in entry.demographics.items():
            if target == RACES:
                block.update(_races(source, table, sids, findings))
            else:
                block[target] = _value(mapping, source, table, DEMOGRAPHICS, sids, findings)
        blocks.append(block)
    return blocks


def _block(
    mapping: SisMapping,
    table: _Table,
    columns: Mapping[str, ValueSource],
    spec: FileSpec,
    id_prefix: str,
    findings: list[Finding],
) -> Block:
    sids = _prefixed(_raw(columns[SOURCED_ID], table), id_prefix)
    if table.sourced_ids is None:  # names the rows of the table's reading findings
        table.sourced_ids = sids
    block = {SOURCED_ID: sids}
    for target, source in columns.items():
        if target != SOURCED_ID:
            block[target] = _value(mapping, source, table, spec, sids, findings)
    return block


# ---- values ---------------------------------------------------------------------------------


def _value(
    mapping: SisMapping,
    source: ValueSource,
    table: _Table,
    spec: FileSpec,
    sids: pa.Array,
    findings: list[Finding],
) -> pa.Array:
    """One output column for every row of ``table``: source, value map, date format."""
    values = _raw(source, table)
    if source.map is not None:
        values = _mapped(mapping, source, values, table, spec, sids, findings)
    if source.date_format is not None:
        values = _dated(mapping, source, values, table, sids, findings)
    return values


def _raw(source: ValueSource, table: _Table) -> pa.Array:
    if source.column is not None:
        return table.column(source.column)
    if source.constant is not None:
        return pa.repeat(pa.scalar(source.constant, _TEXT), table.rows)
    pieces: list[pa.Array | pa.Scalar] = []
    fields: list[pa.Array] = []
    for literal, name in template_parts(source.template or ""):
        if literal:
            pieces.append(pa.scalar(literal, _TEXT))
        if name is not None:
            fields.append(table.column(name))
            pieces.append(fields[-1])
    joined = pc.binary_join_element_wise(*pieces, pa.scalar("", _TEXT))
    all_blank = functools.reduce(pc.and_, (pc.equal(f, "") for f in fields))
    return pc.if_else(all_blank, pa.scalar("", _TEXT), joined)


def _mapped(
    mapping: SisMapping,
    source: ValueSource,
    values: pa.Array,
    table: _Table,
    spec: FileSpec,
    sids: pa.Array,
    findings: list[Finding],
) -> pa.Array:
    """Values through their value map; a non-blank value the map lacks is kept and reported
    with the output column's rule code."""
    codes = mapping.value_maps[source.map or ""]
    keys = pa.array(list(codes), _TEXT)
    position = pc.index_in(values, value_set=keys)
    unmapped = pc.and_(pc.is_null(position), pc.not_equal(values, ""))
    rule = coded(spec, source.target)[0]  # a map is only allowed on coded columns
    message = (
        f"{source.column} holds a code that value map '{source.map}' does not list, so "
        f"{source.target} cannot be set (the code is written unchanged): add it to "
        f"value_maps.{source.map} in {mapping.label}, or correct the source"
    )
    for row in _rows(unmapped):
        findings.append(_at(rule, message, table, source, row, sids, value=values[row].as_py()))
    return pc.coalesce(pc.take(pa.array(list(codes.values()), _TEXT), position), values)


def _dated(
    mapping: SisMapping,
    source: ValueSource,
    values: pa.Array,
    table: _Table,
    sids: pa.Array,
    findings: list[Finding],
) -> pa.Array:
    """Dates in ``source.date_format`` as YYYY-MM-DD; dates already in that form kept; others
    kept and reported.

    Parsed once per distinct value (a district has a few thousand birth dates), with Python's
    strict strptime: Arrow's accepts 02/30 as 2 March."""
    fmt = source.date_format or ""
    known, wrong_form, impossible = [], [], []
    for text in pc.unique(values).to_pylist():
        if not text:
            continue
        if _ISO_DATE.fullmatch(text):
            # Already YYYY-MM-DD (what a SQL DATE column gives): no format can misread it;
            # the demographics stage checks it is a real date.
            continue
        try:
            known.append((text, datetime.strptime(text, fmt).date().isoformat()))
        except ValueError as e:
            # strptime says "does not match format" or "unconverted data remains" when the
            # text is not in the format; anything else is a real-looking impossible date.
            mismatch = str(e).startswith(("time data", "unconverted data"))
            (wrong_form if mismatch else impossible).append(text)
    for rule, bad, why in (
        (DATE_RULE, wrong_form, f"is not a date in the mapping's format {fmt}"),
        (IMPOSSIBLE_DATE_RULE, impossible, "is not a real calendar date"),
    ):
        if not bad:
            continue
        hit = pc.is_in(values, value_set=pa.array(bad, _TEXT))
        message = (
            f"{source.column} {why} (see {source.key}.date_format in {mapping.label}); "
            f"it is written unchanged"
        )
        findings.extend(_at(rule, message, table, source, row, sids) for row in _rows(hit))
    if not known:
        return values
    texts, iso = zip(*known, strict=True)
    position = pc.index_in(values, value_set=pa.array(texts, _TEXT))
    return pc.coalesce(pc.take(pa.array(iso, _TEXT), position), values)


def _races(source: ValueSource, table: _Table, sids: pa.Array, findings: list[Finding]) -> Block:
    """The five race flags and two-or-more from a column of race codes.

    A cell with codes sets every flag true or false; a blank cell leaves them blank. A cell
    with a code the mapping does not know is DEM-FLAG, and the cell is written into the
    two-or-more flag so that the demographics stage rejects the row as well."""
    values = table.column(source.column or "")
    n = len(values)
    lists = pc.split_pattern(values, source.separator)
    tokens = pc.utf8_trim_whitespace(pc.list_flatten(lists))
    rows = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    named = pc.not_equal(tokens, "").to_numpy(zero_copy_only=False)
    codes = list(source.codes)
    flag_of_code = np.array([RACE_FLAGS.index(source.codes[c]) for c in codes], np.int64)
    position = pc.index_in(tokens, value_set=pa.array(codes, _TEXT))
    position = position.fill_null(-1).to_numpy(zero_copy_only=False)
    known = position >= 0
    has = np.zeros((len(RACE_FLAGS), n), dtype=bool)
    has[flag_of_code[position[known]], rows[known]] = True
    coded_cell = np.zeros(n, dtype=bool)
    coded_cell[rows[named]] = True
    unknown = np.zeros(n, dtype=bool)
    unknown[rows[named & ~known]] = True

    def flags(mask: np.ndarray) -> pa.Array:
        text = pc.if_else(pa.array(mask), pa.scalar("true", _TEXT), pa.scalar("false", _TEXT))
        return pc.if_else(pa.array(coded_cell), text, pa.scalar("", _TEXT))

    block = {flag: flags(has[i]) for i, flag in enumerate(RACE_FLAGS)}
    block[TWO_OR_MORE] = pc.if_else(pa.array(unknown), values, flags(has.sum(axis=0) >= 2))
    if unknown.any():
        message = (
            f"{source.column} holds a race code that {source.key}.codes does not list: add "
            "it to the mapping, or correct the source"
        )
        bad_tokens = tokens.filter(pa.array(named & ~known))
        bad_rows = rows[named & ~known]
        for row in np.flatnonzero(unknown):
            value = source.separator.join(bad_tokens.filter(pa.array(bad_rows == row)).to_pylist())
            findings.append(_at("DEM-FLAG", message, table, source, row, sids, value=value))
    return block


def _prefixed(values: pa.Array, prefix: str) -> pa.Array:
    """``prefix`` before every non-blank value (a blank id stays blank: ID-REQUIRED)."""
    if not prefix:
        return values
    with_prefix = pc.binary_join_element_wise(
        pa.scalar(prefix, _TEXT), values, pa.scalar("", _TEXT)
    )
    return pc.if_else(pc.equal(values, ""), values, with_prefix)


def _prefixed_list(values: pa.Array, prefix: str) -> pa.Array:
    """``prefix`` before every id of comma-separated id lists (orgSourcedIds)."""
    if not prefix:
        return values
    lists = pc.split_pattern(values, ",")
    lists = pc.if_else(pc.equal(values, ""), pa.scalar(None, lists.type), lists)
    tokens = pc.utf8_trim_whitespace(pc.list_flatten(lists))
    rows = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    return join_list(len(values), _prefixed(tokens, prefix), rows)


def _rows(mask: pa.Array) -> np.ndarray:
    return np.flatnonzero(mask.to_numpy(zero_copy_only=False))


def _at(
    rule: str,
    message: str,
    table: _Table,
    source: ValueSource,
    row: int,
    sids: pa.Array,
    value: str | None = None,
) -> Finding:
    """A finding about one source cell, naming its file, record and column and the row's
    output sourcedId. ``value`` only for non-PII output columns (callers pass none else)."""
    return finding(
        rule,
        message,
        file=table.file,
        line=int(table.lines[row]),
        column=source.column,
        sourced_id=sids[row].as_py(),
        value=value,
    )


# ---- output files -------------------------------------------------------------------------------


def _users_header(blocks: list[Block]) -> list[str]:
    """The spec header, then every metadata.* column mapped, in order of first mapping."""
    extra = dict.fromkeys(c for block in blocks for c in block if c.startswith(METADATA))
    return [*USERS.header, *extra]


def _frame(blocks: list[Block], header: list[str]) -> pd.DataFrame:
    """The blocks one after the other as a text frame of ``header`` (unmapped columns blank).

    Each column chains the blocks' arrays without copying them; the blank parts of one
    length are one shared array."""
    sizes = [len(block[SOURCED_ID]) for block in blocks]
    blanks = {size: pa.repeat(pa.scalar("", _TEXT), size) for size in set(sizes)}
    columns = {}
    for name in header:
        pieces = [
            block[name].cast(_TEXT) if name in block else blanks[size]
            for block, size in zip(blocks, sizes, strict=True)
        ]
        columns[name] = pd.arrays.ArrowStringArray(pa.chunked_array(pieces, _TEXT))
    return pd.DataFrame(columns, index=pd.RangeIndex(sum(sizes)))


def _without_breaks(frame: pd.DataFrame) -> pd.DataFrame:
    """Line breaks inside values (already reported) replaced by spaces, so the file can be
    written at all."""
    out = {}
    for name in frame.columns:
        values = arrow(frame[name])
        out[name] = pd.arrays.ArrowStringArray(
            pa.chunked_array([pc.replace_substring_regex(values, _BREAKS, " ")])
        )
    return pd.DataFrame(out)
