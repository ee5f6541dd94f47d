"""The strict CSV writer (spec section 3): the exact bytes of every file in the package.

UTF-8 without BOM, comma separator, CRLF after every record including the last, and RFC 4180
quotes only where a value holds a comma, a double quote or a leading/trailing space.
``pyarrow.csv.write_csv`` cannot do this: its ``quoting_style="needed"`` quotes every string
(``""`` for empty, ``"001"`` for plain values), so the records are assembled here with
``pyarrow.compute``, column by column, a chunk of rows at a time; no Python loop over rows. A
chunk in which no value needs quotes (most of them) is written by ``write_csv`` with quoting
off, which then gives exactly the same bytes, twice as fast.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from naviance_pipeline.oneroster.kernels.bytescan import holds_any_byte, value_bytes

DEFAULT_CHUNK_ROWS = 65_536  # bounds the temporary arrays: a few MB of users.csv per chunk

_TEXT = pa.large_string()
# binary_join_element_wise wants every argument of one type, literals included.
_EMPTY, _COMMA, _QUOTE, _CRLF = (pa.scalar(s, _TEXT) for s in ("", ",", '"', "\r\n"))
_NEEDS_QUOTES = r'[,"]|^ | $'
_NEEDS_QUOTES_OR_EMPTY = _NEEDS_QUOTES + "|^$"
_NEWLINE = r"[\r\n]"
_NEWLINE_BYTES = b"\r\n"
_QUOTE_BYTES = b',"'
_SPACE = ord(" ")
_COMMA_BYTE = max(b'\r\n ",')  # the highest of the bytes that need quoting or are refused
_UNQUOTED = pacsv.WriteOptions(
    include_header=False, quoting_style="none", eol="\r\n", batch_size=DEFAULT_CHUNK_ROWS
)


def write_csv(frame: pd.DataFrame, header: list[str]) -> bytes:
    """Strict CSV (spec section 3): UTF-8 without BOM, comma, RFC 4180 quoting ONLY where a
    value holds a comma, a double quote or leading/trailing space (quotes doubled), CRLF after
    every record including the last, header first exactly `header`. Raises ValueError (no PII
    in the message: name the column and row position) if a value holds CR/LF or a column is
    missing.

    Nulls are written blank. A file of one column writes a blank value as ``""``: a bare
    empty line would be skipped by readers and the record lost.
    """
    return b"".join(iter_csv(frame, header))


def iter_csv(
    frame: pd.DataFrame,
    header: list[str],
    *,
    with_header: bool = True,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> Iterator[bytes]:
    """The bytes of :func:`write_csv` in pieces: the header line (unless ``with_header`` is
    false, for appending to a file already started), then one piece per ``chunk_rows`` rows.

    Lets the package and the sample generator stream large files. A ValueError for a value
    holding CR/LF comes when its chunk is reached, so a consumer must discard what it wrote.
    """
    missing = [name for name in header if name not in frame.columns]
    if missing:
        raise ValueError(f"cannot write CSV: column(s) missing from the frame: {missing}")
    if with_header:
        yield csv_header(header)
    # Converted a chunk at a time: a whole-column copy would double the frame's memory.
    columns = [_as_arrow(frame[name]) for name in header]
    for start in range(0, len(frame), chunk_rows):
        pieces = [_as_text(c.slice(start, chunk_rows)) for c in columns]
        yield _encode_records(pieces, header, start)


def csv_header(header: list[str]) -> bytes:
    """The header line alone, quoted by the same rules as values."""
    return _encode_records([pa.array([name], _TEXT) for name in header], header, None)


def _as_arrow(column: pd.Series) -> pa.ChunkedArray:
    """One column as Arrow, without a copy when it is Arrow-backed already."""
    array = pa.array(column.array, from_pandas=True)
    return array if isinstance(array, pa.ChunkedArray) else pa.chunked_array([array])


def _as_text(piece: pa.ChunkedArray) -> pa.Array:
    """A slice of a column as one large_string Arrow array, nulls as empty (blank means
    empty)."""
    array = piece.chunk(0) if piece.num_chunks == 1 else piece.combine_chunks()
    return pc.fill_null(array.cast(_TEXT), "")


def _encode_records(columns: list[pa.Array], header: list[str], first_row: int | None) -> bytes:
    """CSV records for equal-length columns: fields quoted where needed, joined, CRLF-ended.
    ``first_row`` is the frame position of the first row (None for the header line)."""
    quote_empty = len(columns) == 1
    fields = [
        _encode_field(column, name, first_row, quote_empty)
        for column, name in zip(columns, header, strict=True)
    ]
    if first_row is not None and all(f is c for f, c in zip(fields, columns, strict=True)):
        # Nothing to quote (the usual chunk): Arrow's own writer is about twice as fast as the
        # joins below, and with quoting off its records are exactly these bytes.
        return _write_unquoted(columns)
    lines = pc.binary_join_element_wise(*fields, _COMMA)
    # Joining (line, "") on CRLF appends the record terminator in the same single pass.
    lines = pc.binary_join_element_wise(lines, _EMPTY, _CRLF)
    return value_bytes(lines)[0].tobytes()


def _write_unquoted(columns: list[pa.Array]) -> bytes:
    """Records of columns that hold no comma, quote, line break or edge space, by
    ``pyarrow.csv.write_csv`` with quoting off: values as they are, comma, CRLF."""
    table = pa.Table.from_arrays(columns, names=[f"f{i}" for i in range(len(columns))])
    out = pa.BufferOutputStream()
    pacsv.write_csv(table, out, _UNQUOTED)
    return out.getvalue().to_pybytes()


def _encode_field(
    column: pa.Array, name: str, first_row: int | None, quote_empty: bool
) -> pa.Array:
    """One column's fields: RFC 4180 quoted only where needed; ValueError on CR/LF.

    A byte scan of the whole column comes first: most columns hold no comma, quote, newline or
    edge space, and then the per-value regex (the slow part) is skipped."""
    data, _ = value_bytes(column)
    # CR, LF, space, double quote and comma are all bytes up to ",": most columns (ids, e-mail
    # addresses) hold none of those bytes at all, and one comparison tells.
    if not quote_empty and not (data <= _COMMA_BYTE).any():
        return column
    if holds_any_byte(data, _NEWLINE_BYTES):
        _raise_newline(column, name, first_row)
    if not (quote_empty or holds_any_byte(data, _QUOTE_BYTES) or _has_edge_space(column, data)):
        return column
    needs_quotes = pc.match_substring_regex(
        column, _NEEDS_QUOTES_OR_EMPTY if quote_empty else _NEEDS_QUOTES
    )
    quoted = pc.binary_join_element_wise(
        _QUOTE, pc.replace_substring(column, '"', '""'), _QUOTE, _EMPTY
    )
    return pc.if_else(needs_quotes, quoted, column)


def _raise_newline(column: pa.Array, name: str, first_row: int | None) -> None:
    """ValueError naming the column and row position, never the value (it may be PII)."""
    if first_row is None:
        raise ValueError("cannot write CSV: a header name holds a carriage return or line feed")
    mask = pc.match_substring_regex(column, _NEWLINE).to_numpy(zero_copy_only=False)
    row = first_row + int(np.flatnonzero(mask)[0])
    raise ValueError(
        f"cannot write CSV: column {name!r} of data row {row + 1} (CSV record {row + 2}) "
        "holds a carriage return or line feed"
    )


def _has_edge_space(column: pa.Array, data: np.ndarray) -> bool:
    if not (data == _SPACE).any():
        return False
    return bool(
        pc.any(pc.starts_with(column, " ")).as_py() or pc.any(pc.ends_with(column, " ")).as_py()
    )
