"""Lenient reading of one source CSV (orgs, users or demographics) into a text-only frame.

Every value is read as text, never through a type-guessing parser (``00123``, ``true``, ``NA``,
``1.23457E+11`` stay as written), trimmed, and every problem becomes a finding (rules CSV-*,
and SRC-VERSION for a OneRoster 1.0 users header, or a 1.2 one in a source read as 1.1).
Nothing here raises on bad input.

Line numbers are CSV *record* numbers: the header is record 1, the first data record 2, and a
record whose quoted value holds a line break counts once, numbered by the line it starts on.
Blank lines count as records, so the numbers are an editor's line numbers whenever no value holds
a line break; blank lines and rows whose every field is blank (spreadsheet leftovers) carry no
data and are dropped without a finding. Byte offsets are mapped to records assuming quotes pair
up as RFC 4180 says; files that end lines with a bare CR are read correctly but such an offset
(only used for CSV-ENCODING) is counted in LF lines.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Collection
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from naviance_pipeline.oneroster.findings import Finding, finding
from naviance_pipeline.oneroster.kernels.bytescan import chunk_bytes, line_breaks
from naviance_pipeline.oneroster.kernels.parallel import side_by_side
from naviance_pipeline.oneroster.spec import (
    DEMOGRAPHICS,
    MAX_VALUE_LENGTH,
    USERS,
    FileSpec,
)

LINE = "line"  # the name of the frame's index: source record numbers
METADATA_PREFIX = "metadata."

_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_BREAK = re.compile(rb"\r\n|\n|\r")
_ONLY_SPACE = re.compile(rb"\s*")  # fullmatch from an offset: no copy of a large input
_MAX_BLOCK = 2**31 - 1  # pyarrow's block_size is an int32
_BLANK_SLICE = 1 << 20  # its positions take 8 bytes a line break: at most 8 MB a slice
MAX_HEADER_BYTES = 1 << 20  # a header row longer than this is not a CSV header
_BAD_ROW_PREFIX = 1 << 16  # a bad row's sourcedId is looked for this far into it
_LF, _CR = ord("\n"), ord("\r")

# Columns only a OneRoster 1.2 users.csv has, and those of 1.0 (which also lacks enabledUser).
# orgs.csv and demographics.csv headers do not differ between versions in the columns we read.
_USERS_V12_ONLY = frozenset(
    {
        "userMasterIdentifier",
        "resourceSourcedIds",
        "preferredGivenName",
        "preferredMiddleName",
        "preferredFamilyName",
        "primaryOrgSourcedId",
        "pronouns",
    }
)
_USERS_V10_ONLY = frozenset({"agents", "userId"})


@dataclass
class Table:
    """One source CSV read leniently.

    ``frame``: index ``line`` (int64 record numbers), every spec column in spec order (absent
    ones blank), then the source's ``metadata.*`` columns in source order; every column
    ``pd.StringDtype("pyarrow")``, trimmed, blank is ``""`` never NA.
    """

    spec: FileSpec
    frame: pd.DataFrame
    findings: list[Finding]
    absent: frozenset[str]  # spec columns that were not in the source header (added blank)
    present: bool  # False when the file was absent (data is None)


def read_table(data: bytes | None, spec: FileSpec, *, only: Collection[str] | None = None) -> Table:
    """Read one source CSV leniently, every value as text.

    Cell-level rules report one finding per cell (CSV-NEWLINE-IN-VALUE, CSV-TOO-LONG, CSV-PARSE
    per record), except CSV-WHITESPACE: one finding per affected column, with the first line,
    that row's sourcedId and the count, because a badly exported file would otherwise give one
    finding per cell.

    ``only``: read just these spec columns (the others come back blank) and skip the cell
    checks, for a stage that needs another file's values but not its findings (that file's own
    stage reports them). Rows blank in every one of ``only`` are dropped as blank rows.
    """
    if data is None:
        return _unread(spec, [], present=False)
    report = _Reporter(spec)
    start = 0
    if data.startswith(_BOM):
        start = len(_BOM)
        report.add("CSV-BOM", "a UTF-8 byte-order mark was present and dropped", line=None)
    if _ONLY_SPACE.fullmatch(data, start):
        if spec.name != DEMOGRAPHICS.name:  # an empty demographics file is DEM-MISSING
            report.add("CSV-EMPTY", "the file is empty: it needs a header and data rows")
        return _unread(spec, report.findings)
    bad_at = _utf8_error_offset(data, start)
    if bad_at is not None:
        line = _record_at(data, start, bad_at)
        report.add("CSV-ENCODING", _encoding_message(data, start, line), line=line)
        return _unread(spec, report.findings)
    split = _split_header(data, start)
    if isinstance(split, str):
        report.add("CSV-PARSE", split, line=1)
        return _unread(spec, report.findings)
    names, body_start = split
    header = _map_header(names, spec, report)
    if only is not None:
        kept = {t: i for t, i in header.kept.items() if t in only}
        header = _Header(kept, [], frozenset(spec.header) - kept.keys())
    checks = only is None
    parsed = _parse_body(data, body_start, len(names), header, report, checks=checks)
    return _build_table(spec, header, parsed, report, checks=checks)


# -- reporting --------------------------------------------------------------------------------


class _Reporter:
    """Collects findings for one file; header findings may keep the source column name."""

    def __init__(self, spec: FileSpec) -> None:
        self.spec = spec
        self.findings: list[Finding] = []

    def add(
        self,
        rule: str,
        message: str,
        *,
        line: int | None = None,
        column: str | None = None,
        sourced_id: str | None = None,
    ) -> None:
        self.findings.append(
            finding(
                rule,
                message,
                file=self.spec.name,
                line=line,
                column=column,
                sourced_id=sourced_id,
            )
        )

    def has(self, rule: str) -> bool:
        return any(f.rule == rule for f in self.findings)

    def header(self, rule: str, message: str, column: str | None, source_name: str | None) -> None:
        f = finding(rule, message, file=self.spec.name, line=1, column=column)
        # A header name is not student data: keep it as the value even on a PII column.
        self.findings.append(replace(f, value=source_name) if source_name is not None else f)


def _unread(spec: FileSpec, findings: list[Finding], present: bool = True) -> Table:
    """A table with no rows: the file is absent, empty or could not be read."""
    header = _Header(kept={}, extensions=[], absent=frozenset(spec.header))
    frame = _frame(spec, header, {}, np.empty(0, dtype=np.int64))
    return Table(spec, frame, findings, absent=header.absent, present=present)


# -- encoding ---------------------------------------------------------------------------------


def _utf8_error_offset(data: bytes, start: int) -> int | None:
    """Byte offset of the first invalid UTF-8 byte, or None when the text is valid."""
    buf = pa.py_buffer(data)[start:]
    offsets = pa.array([0, buf.size], pa.int64()).buffers()[1]
    whole = pa.Array.from_buffers(pa.large_string(), 1, [None, offsets, buf])
    try:
        whole.validate(full=True)  # SIMD check, no copy; Python's decoder only to locate errors
        return None
    except pa.ArrowInvalid:
        pass
    try:
        codecs.utf_8_decode(memoryview(data)[start:], "strict", True)
    except UnicodeDecodeError as e:
        return start + e.start
    return None


def _encoding_message(data: bytes, start: int, line: int) -> str:
    where = f"the file is not valid UTF-8 (first bad byte on line {line})"
    if data.startswith(_UTF16_BOMS):
        return f"{where}; it looks like UTF-16: save it as UTF-8"
    try:
        data[start:].decode("cp1252")
    except UnicodeDecodeError:
        return f"{where}; save it as UTF-8"
    return (
        f"{where}; it looks like Windows-1252 (as Excel saves 'CSV' rather than 'CSV UTF-8'): "
        "save it as UTF-8"
    )


def _record_at(data: bytes, start: int, offset: int) -> int:
    """The record number holding byte ``offset``: 1 + the line feeds before it outside quotes."""
    chunk = np.frombuffer(data, dtype=np.uint8, count=offset - start, offset=start)
    quotes = np.flatnonzero(chunk == ord('"'))
    feeds = np.flatnonzero(chunk == ord("\n"))
    inside_quotes = np.searchsorted(quotes, feeds) % 2 == 1
    return 1 + int(np.count_nonzero(~inside_quotes))


# -- header -----------------------------------------------------------------------------------


def _split_header(data: bytes, start: int) -> tuple[list[str], int] | str:
    """The header's field names and the offset where the data records start, or why the
    header cannot be read (a quote that never closes; no end within ``MAX_HEADER_BYTES``, as
    in a file with no line break at all). The header is parsed with the csv module (it is one
    short record) so that pyarrow can be told every column's type up front.
    """
    limit = min(len(data), start + MAX_HEADER_BYTES)
    pos, quotes = start, 0
    while True:
        brk = _BREAK.search(data, pos, limit)
        end = brk.end() if brk else limit
        quotes += data.count(b'"', pos, end)
        if quotes % 2 == 0 and (brk is not None or end == len(data)):
            break
        if brk is None:
            if end < len(data):
                return (
                    f"the header row does not end within its first {MAX_HEADER_BYTES:,} bytes "
                    "(is the file CSV, with line breaks?): the file could not be read"
                )
            return "a quoted column name in the header is never closed"
        pos = end
    text = data[start:end].decode("utf-8")
    try:
        names = next(csv.reader(io.StringIO(text, newline="")), [])
    except csv.Error:  # a column name longer than the csv module's field limit
        return "the header row could not be parsed as CSV: the file could not be read"
    return names, end


@dataclass
class _Header:
    kept: dict[str, int]  # target column -> source field index (first occurrence), source order
    extensions: list[str]  # metadata.* targets, in source order
    absent: frozenset[str]


def _map_header(names: list[str], spec: FileSpec, report: _Reporter) -> _Header:
    """Map source column names to spec columns, reporting every CSV-HEADER-* rule at line 1."""
    spec_names = set(spec.header)
    folded = {a.lower(): t for a, t in spec.aliases.items()} | {n.lower(): n for n in spec.header}
    kept: dict[str, int] = {}
    for i, raw in enumerate(names):
        name = raw.strip()
        if name != raw:
            report.header(
                "CSV-WHITESPACE", f"spaces around column name '{name}' were trimmed", name, raw
            )
        alias = name in spec.aliases
        if name in spec_names or name.startswith(METADATA_PREFIX):
            target = name
        elif alias:
            target = spec.aliases[name]
        elif name.lower() in folded:
            target = folded[name.lower()]
            report.header(
                "CSV-HEADER-CASE",
                f"column '{name}' matches '{target}' only when letter case is ignored; "
                f"OneRoster names are case-sensitive, so it is not read: rename it '{target}'",
                target,
                name,
            )
            continue
        else:
            label = f"column '{name}'" if name else f"column {i + 1} has no name and"
            report.header(
                "CSV-HEADER-UNKNOWN",
                f"{label} is not a column of {spec.name} (extra columns must be named "
                f"'{METADATA_PREFIX}<name>'); it is ignored",
                name,
                name,
            )
            continue
        if target in kept:
            report.header(
                "CSV-HEADER-DUPLICATE",
                f"column '{name}' appears more than once (as '{target}'); "
                "only the first is read: remove the others",
                target,
                name,
            )
            continue
        if alias:
            report.header(
                "CSV-HEADER-ALIAS",
                f"column '{name}' was read as '{target}': rename it to the spec's spelling",
                target,
                name,
            )
        kept[target] = i
    _report_order(kept, spec, report)
    absent = [c for c in spec.columns if c.name not in kept]
    for c in absent:
        if c.required:
            report.header(
                "CSV-HEADER-MISSING", f"required column '{c.name}' is missing", c.name, None
            )
        else:
            report.header(
                "CSV-HEADER-INCOMPLETE",
                f"column '{c.name}' is missing; it is written blank",
                c.name,
                None,
            )
    _report_version(names, spec, report)
    extensions = [t for t in kept if t not in spec_names]
    return _Header(kept, extensions, frozenset(c.name for c in absent))


def _report_order(kept: dict[str, int], spec: FileSpec, report: _Reporter) -> None:
    found = [t for t in kept if t in spec.header]
    expected = sorted(found, key=spec.header.index)
    if found != expected:
        report.header(
            "CSV-HEADER-ORDER",
            f"columns are not in the spec's order; expected {','.join(expected)}",
            None,
            None,
        )


def _report_version(names: list[str], spec: FileSpec, report: _Reporter) -> None:
    if spec is not USERS:  # oneroster.v12 reads a 1.2 export's users.csv with its own spec
        return
    present = {n.strip() for n in names}
    if present & _USERS_V12_ONLY:
        version = "1.2"
    elif present & _USERS_V10_ONLY and "enabledUser" not in present:
        version = "1.0"
    else:
        return
    how = (
        "a 1.2 export is read as such when its manifest says oneroster.version 1.2"
        if version == "1.2"
        else "export OneRoster 1.1 or 1.2 CSV"
    )
    report.header(
        "SRC-VERSION",
        f"the header looks like OneRoster {version}, but the source is read as 1.1: {how}",
        None,
        None,
    )


# -- data records -----------------------------------------------------------------------------


@dataclass
class _BadRow:
    number: int | None  # pyarrow's 1-based record number in the body (None when threaded)
    fields: int
    unclosed_quote: bool
    sourced_id: str | None


@dataclass
class _Parsed:
    columns: dict[str, pa.ChunkedArray]  # target -> raw values, for kept columns
    lines: np.ndarray  # record numbers of the rows in ``columns``
    breaks_in_values: bool  # some value may hold a CR or LF


def _parse_body(
    data: bytes,
    body_start: int,
    n_fields: int,
    header: _Header,
    report: _Reporter,
    *,
    checks: bool,
) -> _Parsed:
    """Parse the data records with pyarrow, every kept column as text; report CSV-PARSE.

    Blank lines are skipped by the parser (one row each would cost a row of every column: 10 M
    blank lines took 4 GB) and only numbered: the line breaks are counted beside the parse, and
    only when there are more than the records need are the blank lines found
    (:func:`_blank_records`).

    How the body is read, the first that applies (each is an Arrow CSV parse; the choice is
    made here and only here):

    1. **Split at line breaks** (:func:`_read_split_at_line_breaks`, threaded,
       ``newlines_in_values=False``): tried when the body holds no quote, or when cells are
       checked and there are two fields or more; kept only when it is certainly exact (no
       value held a line break). About 40 % faster than 2, and the usual case.
    2. **Whole, threaded** (:func:`_read_whole`): quotes tracked, so a quoted value may hold a
       line break (then reported as CSV-NEWLINE-IN-VALUE).
    3. **Whole, one thread**: only when 2 found bad rows, since Arrow's threaded reads do not
       number them and CSV-PARSE must name the line.
    4. **Whole, one block**: only when a record is longer than Arrow's block, in practice a
       quote never closed (CSV-PARSE names where it opens).

    Blank lines are found by a byte scan (:func:`_blank_records`); only when the quotes do
    not pair up does 2 run again with ``blank_rows`` so that the parser numbers them. Reading
    always as 2 would cost the 40 % on every clean file; always as 3 or 4 several times that.
    """
    body = pa.py_buffer(data)[body_start:]
    if body.size == 0:
        return _no_rows(header)
    sid_index = header.kept.get("sourcedId")
    quoted = data.find(b'"', body_start) != -1  # only a quoted value can hold a line break
    split = None
    if not quoted or (checks and n_fields > 1):
        split = _read_split_at_line_breaks(data, body_start, n_fields, header, sid_index)
    if split is not None:
        table, blank = split
        bad: list[_BadRow] = []
        breaks = False  # a split read is kept only if no value holds a line break
    else:
        breaks_found, read = side_by_side(
            lambda: _body_line_breaks(data, body_start),
            lambda: _read_whole(body, n_fields, header, sid_index),
        )
        if read is None:
            report.add("CSV-PARSE", "the file could not be parsed as CSV", line=None)
            return _no_rows(header)
        table, bad = read
        blank = None
        if breaks_found > _terminated(data, table.num_rows + len(bad)):
            blank = _blank_records(data, body_start, quoted=True)
            if int(np.count_nonzero(~blank)) != table.num_rows + len(bad):
                # Quotes that do not pair up: let the parser number the blank lines itself.
                table, bad = _read_whole(body, n_fields, header, sid_index, blank_rows=True)
                blank = None
        records = table.num_rows + len(bad) if blank is None else len(blank)
        breaks = checks and breaks_found > _terminated(data, records)
    numbers = np.arange(2, table.num_rows + len(bad) + 2, dtype=np.int64)
    if blank is not None:
        numbers = np.flatnonzero(~blank) + 2  # a blank line is a record, numbered, not read
    keep = np.ones(len(numbers), dtype=bool)
    keep[[b.number - 1 for b in bad]] = False
    lines = numbers[keep]
    for b in bad:
        line = int(numbers[b.number - 1])
        report.add("CSV-PARSE", _bad_row_message(b, n_fields), line=line, sourced_id=b.sourced_id)
    columns = {t: table.column(_field(i)) for t, i in header.kept.items()}
    return _Parsed(columns, lines, breaks)


def _read_whole(
    body: pa.Buffer,
    n_fields: int,
    header: _Header,
    sid_index: int | None,
    *,
    blank_rows: bool = False,
) -> tuple[pa.Table, list[_BadRow]] | None:
    """The body parsed quote by quote (a quoted value may hold a line break), bad rows
    numbered; None when it cannot be parsed as CSV at all."""
    options = {"blank_rows": blank_rows}
    try:
        table, bad = _read_csv(body, n_fields, header, sid_index, threads=True, **options)
        if any(b.number is None for b in bad):  # threaded reads do not number bad rows
            table, bad = _read_csv(body, n_fields, header, sid_index, threads=False, **options)
        return table, bad
    except pa.ArrowInvalid:
        pass
    # A record longer than a block, in practice a quote never closed: one block.
    try:
        return _read_csv(
            body, n_fields, header, sid_index, threads=False, block=body.size + 1, **options
        )
    except (pa.ArrowInvalid, OverflowError):
        return None


def _read_split_at_line_breaks(
    data: bytes,
    body_start: int,
    n_fields: int,
    header: _Header,
    sid_index: int | None,
) -> tuple[pa.Table, np.ndarray | None] | None:
    """The records parsed by threads that split the body at any line break (pyarrow's
    ``newlines_in_values=False``: 40 % faster, since the split needs no tracking of quotes),
    with which records are blank lines (None: none is), or None when that is not certainly
    the exact reading, which then reads the file again.

    Exact when no value holds a line break: always so without a quote in the body; with one,
    when every line parsed as one record of the header's fields and the line breaks are exactly
    the record ends. (A split inside a quoted value would leave its record's two pieces with
    field counts that cannot both be the header's, as there are two fields or more.)"""
    body = pa.py_buffer(data)[body_start:]
    try:  # the line breaks are counted beside the parse (numpy releases the GIL)
        breaks_found, (table, bad) = side_by_side(
            lambda: _body_line_breaks(data, body_start),
            lambda: _read_csv(
                body, n_fields, header, sid_index, threads=True, line_breaks_end_records=True
            ),
        )
    except pa.ArrowInvalid:
        return None
    if bad:
        return None
    if breaks_found == _terminated(data, table.num_rows):
        return table, None
    # More line breaks than records: blank lines, which the parser skipped, or a value
    # holding a line break, which the parser read as one record (then the count differs).
    blank = _blank_records(data, body_start, quoted=False)
    if int(np.count_nonzero(~blank)) != table.num_rows:
        return None
    return table, blank


def _no_rows(header: _Header) -> _Parsed:
    return _Parsed({t: _blank_column(0) for t in header.kept}, np.empty(0, np.int64), False)


def _field(i: int) -> str:
    return f"f{i}"


def _read_csv(
    body: pa.Buffer,
    n_fields: int,
    header: _Header,
    sid_index: int | None,
    *,
    threads: bool,
    block: int | None = None,
    line_breaks_end_records: bool = False,
    blank_rows: bool = False,
) -> tuple[pa.Table, list[_BadRow]]:
    bad: list[_BadRow] = []

    def on_bad_row(row: pacsv.InvalidRow) -> str:
        # row.text may be the rest of the file (an unclosed quote): keep only what we report.
        unclosed = row.text.count('"') % 2 == 1
        sid = _first_line_field(row.text, sid_index)
        bad.append(_BadRow(row.number, row.actual_columns, unclosed, sid))
        return "skip"

    names = [_field(i) for i in range(n_fields)]
    # Field 0 always: an empty include list would mean "every column".
    include = sorted({0, *header.kept.values()})
    read = pacsv.ReadOptions(column_names=names, use_threads=threads)
    if block is not None:
        read.block_size = min(block, _MAX_BLOCK)
    parse = pacsv.ParseOptions(
        # A quoted CR/LF parses (CSV-NEWLINE-IN-VALUE reports it), unless the caller has
        # asked for blocks split at any line break (see _read_split_at_line_breaks).
        newlines_in_values=not line_breaks_end_records,
        # Blank lines are numbered by the caller; as rows (``blank_rows``) only when the
        # quotes do not pair up, where the caller cannot tell where the blank lines are.
        ignore_empty_lines=not blank_rows,
        invalid_row_handler=on_bad_row,
    )
    convert = pacsv.ConvertOptions(
        column_types={_field(i): pa.large_string() for i in include},
        include_columns=[_field(i) for i in include],
        null_values=[],
        strings_can_be_null=False,  # NA, null, N/A and blanks stay text
        quoted_strings_can_be_null=False,
        check_utf8=False,  # validated once for the whole file before parsing
    )
    table = pacsv.read_csv(body, read_options=read, parse_options=parse, convert_options=convert)
    return table, bad


def _first_line_field(text: str, index: int | None) -> str | None:
    """Field ``index`` of a bad row's first physical line (its sourcedId), if it has one."""
    if index is None:
        return None
    head = text[:_BAD_ROW_PREFIX]
    brk = re.search(r"[\r\n]", head)
    try:
        fields = next(csv.reader([head[: brk.start()] if brk else head]), [])
    except csv.Error:  # a field longer than the csv module's limit: no sourcedId to name
        return None
    if not brk and len(text) > len(head):
        fields = fields[:-1]  # the last field was cut short
    return (fields[index].strip() or None) if index < len(fields) else None


def _bad_row_message(b: _BadRow, expected: int) -> str:
    if b.unclosed_quote:
        return (
            "a quoted value that starts on this line is never closed, so the rest of the file "
            "could not be read: look for a stray double quote"
        )
    return (
        f"this record has {b.fields} fields but the header has {expected}; the row is left out "
        "(look for an unquoted comma or a missing field)"
    )


def _body_line_breaks(data: bytes, body_start: int) -> int:
    return line_breaks(np.frombuffer(data, dtype=np.uint8)[body_start:])


def _terminated(data: bytes, records: int) -> int:
    """How many of the body's ``records`` end with a line break (the last may end the file
    without one)."""
    return records if data[-1:] in (b"\n", b"\r") else records - 1


def _blank_records(data: bytes, body_start: int, *, quoted: bool) -> np.ndarray:
    """Which records of the body are blank lines (a line break where a record starts), one
    bool per record. ``quoted``: a line break inside a quoted value ends no record (quotes
    assumed to pair up, as RFC 4180 says); else every line break ends one.

    Found a slice at a time, so the temporaries stay small; the result is a byte per record."""
    view = np.frombuffer(data, dtype=np.uint8)
    parts: list[np.ndarray] = []
    start = body_start  # where the current record starts
    inside = 0  # quotes seen so far, mod 2
    for first in range(body_start, len(view), _BLANK_SLICE):
        part = view[first : first + _BLANK_SLICE]
        ends = np.flatnonzero(part == _LF) + first
        returns = np.flatnonzero(part == _CR) + first
        lone = returns[
            (returns + 1 >= len(view)) | (view[np.minimum(returns + 1, len(view) - 1)] != _LF)
        ]
        if len(lone):  # a lone CR ends a line too (LF and CR positions never coincide)
            ends = np.sort(np.concatenate((ends, lone)))
        if quoted:
            quotes = np.flatnonzero(part == ord('"'))
            outside = (np.searchsorted(quotes, ends - first) + inside) % 2 == 0
            inside = (inside + len(quotes)) % 2
            ends = ends[outside]
        if len(ends) == 0:
            continue
        starts = np.concatenate(([start], ends[:-1] + 1))
        crlf = (view[ends] == _LF) & (ends - 1 >= starts) & (view[ends - 1] == _CR)
        parts.append(ends - crlf == starts)
        start = int(ends[-1]) + 1
    if start < len(view):
        parts.append(np.zeros(1, dtype=bool))  # the last record, ended by the end of the file
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


# -- cleaning and the frame -------------------------------------------------------------------


def _blank_column(n: int) -> pa.ChunkedArray:
    return pa.chunked_array([pc.fill_null(pa.nulls(n, pa.large_string()), "")])


def _mask_rows(mask: pa.ChunkedArray) -> np.ndarray:
    return np.flatnonzero(mask.to_numpy(zero_copy_only=False))


def _build_table(
    spec: FileSpec, header: _Header, parsed: _Parsed, report: _Reporter, *, checks: bool
) -> Table:
    raw = dict(parsed.columns)
    trimmed = {t: _trim(v) for t, v in raw.items()}
    cleaned = {t: _strip_controls(v) for t, v in trimmed.items()}
    keep = _non_blank_rows(cleaned, len(parsed.lines))
    lines = parsed.lines
    if keep is not None:
        # A column left as it was stays one array, so it still skips its report.
        for t, v in cleaned.items():
            before, cleaned[t] = trimmed[t], v.filter(keep)
            trimmed[t] = cleaned[t] if before is v else before.filter(keep)
            raw[t] = trimmed[t] if raw[t] is before else raw[t].filter(keep)
        lines = lines[keep.to_numpy(zero_copy_only=False)]
    sids = cleaned.get("sourcedId")

    def cells(rule: str, column: str, mask: pa.ChunkedArray, message: str) -> None:
        rows = _mask_rows(mask)
        found = pc.take(sids, rows).to_pylist() if sids is not None else [None] * len(rows)
        for row, sid in zip(rows, found, strict=True):
            report.add(rule, message, line=int(lines[row]), column=column, sourced_id=sid)

    for t in cleaned if checks else ():
        if parsed.breaks_in_values:
            has_break = pc.or_(pc.match_substring(raw[t], "\n"), pc.match_substring(raw[t], "\r"))
            if pc.any(has_break).as_py():
                message = f"a value in '{t}' holds a line break: remove it"
                cells("CSV-NEWLINE-IN-VALUE", t, has_break, message)
        _report_changed("CSV-WHITESPACE", t, raw[t], trimmed[t], lines, sids, report)
        _report_changed("CSV-CONTROL-CHARS", t, trimmed[t], cleaned[t], lines, sids, report)
        # Bytes >= characters, so only values long in bytes need counting in characters.
        if pc.any(pc.greater(pc.binary_length(cleaned[t]), MAX_VALUE_LENGTH)).as_py():
            too_long = pc.greater(pc.utf8_length(cleaned[t]), MAX_VALUE_LENGTH)
            if pc.any(too_long).as_py():
                message = f"a value in '{t}' is longer than {MAX_VALUE_LENGTH} characters"
                cells("CSV-TOO-LONG", t, too_long, message)
    if len(lines) == 0 and not report.has("CSV-PARSE") and spec.name != DEMOGRAPHICS.name:
        report.add("CSV-EMPTY", "the file has a header but no data rows")
    frame = _frame(spec, header, cleaned, lines)
    return Table(spec, frame, report.findings, absent=header.absent, present=True)


def _trim(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Values with surrounding whitespace trimmed; the same array when none can have any."""
    return pc.utf8_trim_whitespace(values) if _may_have_outer_space(values) else values


# CSV-CONTROL-CHARS: C0 controls but CR and LF (a line break is CSV-NEWLINE-IN-VALUE, an
# error), DEL and the C1 controls. Invisible, and meaningless in a name, code or id. (A tab at
# either end of a value is whitespace, trimmed before: CSV-WHITESPACE.)
CONTROL_CHARS = r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f\x{80}-\x{9f}]"
_C1_LEAD = 0xC2  # the first UTF-8 byte of U+0080..U+00BF, the C1 controls among them


def _strip_controls(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Trimmed values with their control characters removed (and trimmed again: a removed
    control may have stood before a space); the same array when none holds any."""
    if not _has_controls(values):
        return values
    return pc.utf8_trim_whitespace(pc.replace_substring_regex(values, CONTROL_CHARS, ""))


def _has_controls(values: pa.ChunkedArray) -> bool:
    """Whether some value may hold a control character: a scan of the bytes, exact for the
    C0 controls and DEL, and true for any U+0080..U+00BF (C1 controls among them)."""
    for _offsets, _data, span in chunk_bytes(values):
        if span.size == 0:
            continue
        low, high = span.min(), span.max()
        if low < 0x20 and ((span < 0x20) & (span != _LF) & (span != _CR)).any():
            return True
        if high >= 0x7F and ((span == 0x7F) | (span == _C1_LEAD)).any():
            return True
    return False


def _may_have_outer_space(values: pa.ChunkedArray) -> bool:
    """Whether some value starts or ends with a space, control or non-ASCII byte.

    Looking at the first and last byte of every value straight from the Arrow buffers is about
    twice as fast as trimming, and a clean column then needs no trimmed copy at all. Non-ASCII
    ends (é, or Unicode spaces) only send the column to the exact trim.
    """
    for offsets, data, span in chunk_bytes(values):
        if span.size == 0 or (span.min() > ord(" ") and span.max() < 0x80):
            continue  # no such byte anywhere in the chunk (ids, e-mails: most columns)
        starts, ends = offsets[:-1], offsets[1:]
        filled = ends > starts
        ends_bytes = np.concatenate((data[starts[filled]], data[ends[filled] - 1]))
        if ((ends_bytes <= ord(" ")) | (ends_bytes >= 0x80)).any():
            return True
    return False


def _non_blank_rows(trimmed: dict[str, pa.ChunkedArray], n: int) -> pa.ChunkedArray | None:
    """Mask of rows with some non-blank field, or None when every row has one (the usual case).

    Starts with sourcedId, which is almost never blank, so a clean file costs one comparison.
    """
    order = sorted(trimmed, key=lambda t: t != "sourcedId")
    blank = None
    for t in order:
        empty = pc.equal(pc.binary_length(trimmed[t]), 0)
        blank = empty if blank is None else pc.and_(blank, empty)
        if not pc.any(blank).as_py():
            return None
    return None if blank is None or n == 0 else pc.invert(blank)


# What a changed value is reported as: (rule, what was wrong, what was done).
_CHANGES = {
    "CSV-WHITESPACE": ("had leading or trailing spaces", "trimmed"),
    "CSV-CONTROL-CHARS": ("held control characters (such as NUL or tab)", "removed"),
}


def _report_changed(
    rule: str,
    column: str,
    before: pa.ChunkedArray,
    after: pa.ChunkedArray,
    lines: np.ndarray,
    sids: pa.ChunkedArray | None,
    report: _Reporter,
) -> None:
    """One finding per column for the values a repair changed (``before`` → ``after``): how
    many, and the first line."""
    if after is before:
        return
    changed = pc.not_equal(pc.binary_length(before), pc.binary_length(after))
    count = pc.sum(changed).as_py() or 0
    if not count:
        return
    first = int(pc.index(changed, True).as_py())
    what, done = _CHANGES[rule]
    report.add(
        rule,
        f"{count} value(s) in '{column}' {what}, which were {done} "
        f"(the first on line {int(lines[first])})",
        line=int(lines[first]),
        column=column,
        sourced_id=sids[first].as_py() if sids is not None else None,
    )


def _frame(
    spec: FileSpec, header: _Header, trimmed: dict[str, pa.ChunkedArray], lines: np.ndarray
) -> pd.DataFrame:
    blank = _blank_column(len(lines)) if header.absent else None
    columns = {c: trimmed.get(c, blank) for c in spec.header}
    columns.update((t, trimmed[t]) for t in header.extensions)
    index = pd.Index(lines, dtype="int64", name=LINE)
    return pd.DataFrame(
        {name: pd.arrays.ArrowStringArray(values) for name, values in columns.items()},
        index=index,
    )
