"""Read a SIS CSV export (a folder or a ZIP at any fsspec URL) for a mapping.

Every file the mapping names is found and its header row checked for every column the mapping
reads BEFORE any data row is read: a mapping that does not fit the export fails at once with a
``MappingError`` naming the mapping key, the file and the column. Only the first record of each
file is read for that (from a ZIP, only as much of the entry as holds it is inflated). Archives
get the OneRoster source's safety checks: an unsafe or oversized ZIP is refused before anything
is inflated (``SourceUnreadable``).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from typing import IO

from naviance_pipeline.oneroster.csvread import MAX_HEADER_BYTES
from naviance_pipeline.oneroster.findings import finding
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.source import (
    Entries,
    SourceUnreadable,
    open_entries,
    redact_url,
)
from naviance_pipeline.sources.sis.mapping import MappingError, SisMapping, TableSource

_CHUNK = 8 * 1024  # a header row is short: read little past it
_BREAK = re.compile(r"[\r\n]")
_ESCAPED = re.compile("[\udc80-\udcff]")  # bytes the decoder could not read (surrogateescape)


class HeaderUnreadable(ValueError):
    """The first record of a file cannot be read as a CSV header; the message says why and
    ``key`` which table key to fix (``encoding``, or ``file`` for a file that is no CSV)."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


def read_export(
    url: str, mapping: SisMapping, options: Options, storage_options: dict | None = None
) -> dict[str, bytes]:
    """The bytes of every table's file of the export at ``url`` (a folder, or a ZIP file), by
    table name. Raises MappingError, before reading any data row, when a file is missing or
    lacks a column the mapping reads; SourceUnreadable when the export cannot be opened, is
    an unsafe or oversized archive, holds files that are not regular files, or when the files
    the mapping reads hold more than ``options.max_source_bytes`` (SRC-TOO-LARGE)."""
    shown = redact_url(url)
    with open_entries(url, options, storage_options) as entries:
        problems: list[str] = []
        located: dict[str, str] = {}
        for name, table in mapping.tables.items():
            entry = _locate(mapping, table, entries.names, shown, problems)
            if entry is not None:
                located[name] = entry
        for name, entry in located.items():
            encoding = mapping.tables[name].encoding
            try:
                with entries.open(entry) as stream:
                    header = read_header(stream, encoding)
            except HeaderUnreadable as e:
                problems.append(_header_problem(mapping, name, entry, encoding, e))
                continue
            problems.extend(mapping.header_problems(name, header, entry))
        if problems:
            raise MappingError(problems)
        _check_size(entries, sorted(set(located.values())), options, shown)
        data: dict[str, bytes] = {}  # by entry: a file two tables share is read once
        for entry in located.values():
            if entry not in data:
                data[entry] = entries.read(entry)
        return {name: data[entry] for name, entry in located.items()}


def _check_size(entries: Entries, read: list[str], options: Options, shown: str) -> None:
    """SRC-TOO-LARGE, before any is read, when the files to read hold more than the limit."""
    expanded = sum(entries.size(name) for name in read)
    if expanded > options.max_source_bytes:
        refused = finding(
            "SRC-TOO-LARGE",
            f"the export's files the mapping reads ({', '.join(read)}) hold {expanded:,} bytes "
            f"uncompressed, more than the limit of {options.max_source_bytes:,} "
            "(NAVIANCE_MAX_SOURCE_BYTES); nothing was read",
        )
        raise SourceUnreadable(f"{shown} was not read: {refused.message}", [refused])


def read_header(stream: IO[bytes], encoding: str = "utf-8") -> list[str]:
    """The column names (trimmed) of the first record of a CSV stream, reading no further than
    that record (8 KiB at a time). A UTF-8 byte-order mark is dropped. HeaderUnreadable when
    the record is not text in ``encoding``, or does not end within ``MAX_HEADER_BYTES``."""
    codec = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding
    # Bytes after the header may be undecodable (they are the data's problem, reported when
    # the data is read): escape them, and refuse only escapes inside the header.
    decoder = codecs.getincrementaldecoder(codec)("surrogateescape")
    text, consumed = "", 0
    while True:
        chunk = stream.read(_CHUNK)
        consumed += len(chunk)
        text += decoder.decode(chunk, final=not chunk)
        end = _record_end(text)
        if end is not None or not chunk:
            break
        if consumed >= MAX_HEADER_BYTES:
            raise HeaderUnreadable(
                f"has no line break in its first {MAX_HEADER_BYTES:,} bytes (is it a CSV file?)",
                "file",
            )
    record = text if end is None else text[:end]
    if _ESCAPED.search(record):
        raise HeaderUnreadable(f"is not {encoding} text", "encoding")
    names = next(csv.reader(io.StringIO(record, newline="")), [])
    return [name.strip() for name in names]


def _record_end(text: str) -> int | None:
    """Where the first CSV record of ``text`` ends: its first line break outside quotes."""
    for brk in _BREAK.finditer(text):
        if text.count('"', 0, brk.start()) % 2 == 0:
            return brk.start()
    return None


def _locate(
    mapping: SisMapping, table: TableSource, names: list[str], shown: str, problems: list[str]
) -> str | None:
    """The entry holding ``table``'s file: at the export's root, or in one enclosing folder."""
    key = f"{mapping.label}: tables.{table.name}"
    if table.file is None:
        problems.append(
            f"{key}: has no file (only a query), but a CSV export is read: add "
            f"tables.{table.name}.file"
        )
        return None
    if table.file in names:
        return table.file
    depth = table.file.count("/") + 1
    nested = [n for n in names if n.endswith("/" + table.file) and n.count("/") == depth]
    if len(nested) == 1:
        return nested[0]
    where = f"{table.file} is not in the export {shown}"
    if nested:
        where = f"{table.file} is in more than one folder of the export {shown}: {nested}"
    else:
        other = [n for n in names if n.rsplit("/", 1)[-1].lower() == table.file.lower()]
        if other:
            where += f" (it has {', '.join(other)}: file names must match exactly)"
    problems.append(f"{key}.file: {where}")
    return None


def _header_problem(
    mapping: SisMapping, name: str, entry: str, encoding: str, error: HeaderUnreadable
) -> str:
    key = f"{mapping.label}: tables.{name}"
    if error.key == "file":
        return f"{key}.file: {entry} {error}"
    return (
        f"{key}.encoding: the header row of {entry} {error}: set tables.{name}.encoding to the "
        "export's encoding (programs on Windows often write cp1252)"
    )
