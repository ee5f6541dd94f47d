"""NavianceOneRoster.zip (spec section 2): every frame held to the output contract as it is
loaded (PKG-CONTRACT, ``contract.py``), a deterministic build, a re-read that verifies it, and
the size limit (PKG-SIZE, PKG-VERIFY).

The ZIP is written by a small writer of its own rather than ``zipfile``, for two reasons: it
compresses with ISA-L's deflate (``isal``, several times faster than zlib at a slightly larger
size) and it pins every byte that varies between runs or machines: entry timestamps are the
as-of date at 00:00:00, the permissions are 0o644 on a Unix "made by" system, and there are no
extra fields, comments or data descriptors. Verification re-reads the file with independent
readers: zlib (not ISA-L) inflates each entry from its local header, for a local file while the
next entry is being built, and ``zipfile``'s reading of the central directory must agree.

Deflate output is byte-identical for the same library and CPU family; across machines whose
deflate differs, the entries' sha256 (of the CSV bytes, in :class:`EntryInfo`) stay identical,
and those are what "nothing changed since last night" should compare.
"""

from __future__ import annotations

import csv
import os
import posixpath
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from functools import partial
from hashlib import sha256
from typing import BinaryIO

import fsspec
import numpy as np
import pandas as pd
from fsspec.implementations.local import LocalFileSystem

from naviance_pipeline.oneroster.contract import check_frame
from naviance_pipeline.oneroster.findings import WARNING, Finding, finding, has_errors
from naviance_pipeline.oneroster.kernels.parallel import bounded_map
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.spec import (
    DEMOGRAPHICS,
    MANIFEST_HEADER,
    MAX_PACKAGE_BYTES,
    ORGS,
    PACKAGE_ENTRIES,
    WARN_PACKAGE_BYTES,
    ZIP_NAME,
    user_output_header,
)
from naviance_pipeline.oneroster.writer import csv_header, iter_csv
from naviance_pipeline.operations.crash import crashpoint, temp_name

try:  # ISA-L deflate; zlib has the same interface, only slower (and other bytes)
    from isal import isal_zlib as _deflate

    DEFLATE_LEVEL = 2  # ISA-L levels are 0-3
except ImportError:  # pragma: no cover - isal is a dependency; this keeps a bare install working
    import zlib as _deflate

    DEFLATE_LEVEL = 6

_READ_CHUNK = 1 << 20
_LF = ord("\n")
_MAX_ZIP32 = 0xFFFFFFFF  # no ZIP64: an entry or offset beyond this cannot be written
_LOCAL_SIGNATURE = 0x04034B50
_CENTRAL_SIGNATURE = 0x02014B50
_END_SIGNATURE = 0x06054B50
_VERSION_NEEDED = 20  # 2.0: deflate
_MADE_BY = (3 << 8) | _VERSION_NEEDED  # Unix, so external_attr carries the mode
_REGULAR_FILE_0644 = 0o100644 << 16
_UTF8_NAME_FLAG = 0x800


@dataclass
class EntryInfo:
    """One CSV in a ZIP: its name, data rows (records after the header), uncompressed size,
    sha256 of the uncompressed bytes and header columns."""

    name: str
    rows: int
    bytes: int
    sha256: str
    header: list[str]


# A frame, or a function that loads it when its entry is written (one frame resident at a time).
FrameSource = pd.DataFrame | Callable[[], pd.DataFrame]


@dataclass
class PackageResult:
    """What :func:`build_package` did. With error findings, nothing was written at ``path``."""

    path: str  # where the ZIP was written (str of a local path or fsspec URL)
    size: int
    sha256: str
    entries: list[EntryInfo]  # manifest, orgs, users, demographics in that order
    # PKG-CONTRACT (E), PKG-SIZE (W over 800 MB, E over 1,000,000,000 bytes), PKG-VERIFY (E)
    findings: list[Finding]


def build_package(
    manifest: FrameSource,
    orgs: FrameSource,
    users: FrameSource,
    demographics: FrameSource,
    options: Options,
    dest: str,
    *,
    max_bytes: int = MAX_PACKAGE_BYTES,
    warn_bytes: int = WARN_PACKAGE_BYTES,
    meanwhile: Callable[[], None] | None = None,
) -> PackageResult:
    """Write NavianceOneRoster.zip to `dest` (a path or fsspec URL of the FILE to create).

    ``manifest``: the rows of manifest.csv as the manifest stage made them (``manifest.py``),
    written as given: the package never builds a manifest of its own.

    Deterministic: entries manifest.csv, orgs.csv, users.csv, demographics.csv in that order at
    the root, Deflate, every entry timestamp = options.as_of at 00:00:00, fixed permissions
    (0o644 regular file, Unix "made by"), no extra fields/comments: same frames + same as_of ->
    byte-identical ZIP. The users header is the frame's columns, which must equal
    spec.user_output_header(options.include_staff); orgs and demographics frames must have
    exactly the spec headers, and the manifest propertyName, value (ValueError otherwise: a
    programming error, not bad input).

    A frame may be given as a function that loads it (``FrameSource``): it is called when its
    entry is written and dropped when the entry is done, so a large district holds one frame
    at a time rather than three. Its header is checked then (same ValueError, no file left).

    Each frame is held to the output contract before its entry is written (PKG-CONTRACT: no
    control character or line break, exact codes, one grade per student, …; its data is then
    not written). The ZIP is written to a temporary name beside `dest` (owner-only when local),
    re-read and verified there (PKG-VERIFY: entries, headers, row counts and the sha256 of
    each entry's bytes) and its size checked (PKG-SIZE, thresholds injectable). Only a ZIP
    without error findings is renamed to `dest`, so `dest` never holds a partial, unverified or
    out-of-contract ZIP. With error findings the new ZIP is deleted and `dest` is left as it
    was (absent, or an earlier run's file: check ``findings`` before using ``path``). An
    exception while writing also leaves no temporary file behind.

    ``max_bytes``/``warn_bytes`` exist so tests can reach PKG-SIZE with a small ZIP.

    ``meanwhile``: work of the caller's to run once every entry is written, while the last
    entries are still being re-read on another thread (called once, unless writing failed).
    """
    entries = _package_entries(manifest, orgs, users, demographics, options)
    rows: list[int] = []  # data rows of each entry, counted as it is written
    broken: list[Finding] = []  # PKG-CONTRACT: values the package must never hold
    fs, path = fsspec.core.url_to_fs(dest)
    parent, name = posixpath.split(path)  # fsspec paths are posix-style, local ones too
    temp = f"{parent}/{temp_name(name)}"  # a killed run's leftover is swept (crash.py)
    fs.makedirs(parent, exist_ok=True)
    local = isinstance(fs, LocalFileSystem)
    try:
        with fs.open(temp, "wb") as out, ThreadPoolExecutor(1) as verifier:
            if local:
                os.chmod(temp, 0o600)  # student PII: owner-only
            sink = _HashingSink(out)
            reread: list[Future] = []

            def reread_entry(offset: int) -> None:
                # A local file can be re-read while the next entry is built (only then).
                out.flush()
                reread.append(verifier.submit(_reread_entry, fs, temp, offset))

            written = write_zip(
                sink,
                (
                    (name, _entry_csv(name, frame, header, rows, options, broken))
                    for name, frame, header in entries
                ),
                options.as_of,
                on_entry=reread_entry if local else None,
            )
            if meanwhile is not None:
                meanwhile()  # the re-reads go on beside it
        expected = [
            EntryInfo(name, n, w.bytes, w.sha256, list(header))
            for (name, _, header), n, w in zip(entries, rows, written, strict=True)
        ]
        findings = [*broken, *check_size(sink.size, max_bytes=max_bytes, warn_bytes=warn_bytes)]
        findings += _verify(fs, temp, expected, reread if local else None)
        crashpoint("package:written")
        if has_errors(findings):
            fs.rm(temp)
        else:
            fs.mv(temp, path)
    except BaseException:
        if fs.exists(temp):
            fs.rm(temp)
        raise
    return PackageResult(dest, sink.size, sink.sha256.hexdigest(), expected, findings)


def verify_package(path: str, expected: list[EntryInfo]) -> list[Finding]:
    """Re-read a built ZIP: exactly the four entries in order at the root, each entry's header,
    row count (records after the header) and sha256 as expected, CRC ok, Deflate. Any
    difference -> PKG-VERIFY (E) naming the entry; an unreadable ZIP -> one PKG-VERIFY."""
    fs, fs_path = fsspec.core.url_to_fs(path)
    return _verify(fs, fs_path, expected)


def read_package_summary(path: str) -> list[EntryInfo]:
    """Every entry of a ZIP (e.g. an earlier NavianceOneRoster.zip) in stored order, read in
    streaming chunks. Raises ``zipfile.BadZipFile`` (also on a CRC mismatch) or ``OSError``."""
    fs, fs_path = fsspec.core.url_to_fs(path)
    return _summary(fs, fs_path)


def check_size(
    size: int, *, max_bytes: int = MAX_PACKAGE_BYTES, warn_bytes: int = WARN_PACKAGE_BYTES
) -> list[Finding]:
    """PKG-SIZE: an error over ``max_bytes`` (Naviance's 1 GB), a warning over ``warn_bytes``."""
    if size > max_bytes:
        return [_size_finding(size, f"over the limit of {max_bytes:,} bytes", None)]
    if size > warn_bytes:
        return [_size_finding(size, f"close to the limit (warning above {warn_bytes:,})", WARNING)]
    return []


def write_zip(
    out: BinaryIO,
    entries: Iterable[tuple[str, Iterable[bytes]]],
    day: date,
    *,
    on_entry: Callable[[int], None] | None = None,
) -> list[EntryInfo]:
    """Write a deterministic ZIP of ``(name, chunks)`` entries to ``out``, in order; return each
    entry's summary (from the bytes written; ``rows`` counts records after the first line).
    ``on_entry`` is called with an entry's local header offset once the entry is written.

    Streams: only one entry's compressed bytes are held (the sizes go in the local header, not
    in a data descriptor, for the widest reader support). ValueError past the ZIP32 limits.

    A chunk is hashed and deflated in a second thread while the next one is produced (hashlib
    and ISA-L release the GIL, and so does Arrow, which makes the CSV chunks)."""
    if day.year < 1980:
        raise ValueError("ZIP timestamps start in 1980")
    dos_date = ((day.year - 1980) << 9) | (day.month << 5) | day.day
    offset = 0
    central: list[bytes] = []
    summaries: list[EntryInfo] = []
    for name, chunks in entries:
        packer = _EntryPacker()
        _overlapped(chunks, packer.add)
        start = offset
        offset = _write_entry(out, name, packer.finish(), dos_date, offset, central)
        if on_entry is not None:
            on_entry(start)
        summaries.append(packer.digest.summary(name))
    directory = b"".join(central)
    out.write(directory)
    out.write(
        struct.pack(
            "<IHHHHIIH", _END_SIGNATURE, 0, 0, len(central), len(central), len(directory),
            offset, 0,
        )
    )  # fmt: skip
    return summaries


def _overlapped(chunks: Iterable[bytes], consume: Callable[[bytes], None]) -> None:
    """``consume`` every chunk in order on a second thread while the next chunk is produced
    here (at most one chunk waiting)."""
    for _ in bounded_map(consume, chunks, width=1):
        pass


class _EntryPacker:
    """One entry's digest, CRC and deflated bytes, fed chunk by chunk."""

    def __init__(self) -> None:
        self.digest = _EntryDigest()
        self.crc = 0
        self.compressed: list[bytes] = []
        self._compressor = _deflate.compressobj(DEFLATE_LEVEL, _deflate.DEFLATED, -15)

    def add(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.crc = _deflate.crc32(chunk, self.crc)
        self.compressed.append(self._compressor.compress(chunk))

    def finish(self) -> _EntryPacker:
        self.compressed.append(self._compressor.flush())
        return self


def _write_entry(
    out: BinaryIO, name: str, packed: _EntryPacker, dos_date: int, offset: int, central: list
) -> int:
    """Write one entry's local header and data; add its central record; the next offset."""
    digest, crc, compressed = packed.digest, packed.crc, packed.compressed
    packed_size = sum(map(len, compressed))
    if max(digest.size, packed_size, offset) > _MAX_ZIP32:
        raise ValueError(f"{name}: too large for a ZIP without ZIP64 extensions")
    encoded = name.encode()
    flags = 0 if encoded.isascii() else _UTF8_NAME_FLAG
    # version needed, flags, method, time 00:00:00, date, crc, sizes: local and central.
    common = struct.pack(
        "<HHHHHIII", _VERSION_NEEDED, flags, zipfile.ZIP_DEFLATED, 0, dos_date, crc,
        packed_size, digest.size,
    )  # fmt: skip
    out.write(struct.pack("<I", _LOCAL_SIGNATURE) + common)
    out.write(struct.pack("<HH", len(encoded), 0) + encoded)
    for part in compressed:
        out.write(part)
    central.append(
        struct.pack("<IH", _CENTRAL_SIGNATURE, _MADE_BY) + common
        + struct.pack("<HHHHHII", len(encoded), 0, 0, 0, 0, _REGULAR_FILE_0644, offset)
        + encoded
    )  # fmt: skip
    return offset + 30 + len(encoded) + packed_size


def _package_entries(
    manifest: FrameSource,
    orgs: FrameSource,
    users: FrameSource,
    demographics: FrameSource,
    options: Options,
) -> list[tuple[str, FrameSource, list[str]]]:
    """(entry name, frame, header) in package order; ValueError if a frame's columns are off
    (a frame still to be loaded is checked when it is)."""
    frames = (manifest, orgs, users, demographics)
    headers = (
        list(MANIFEST_HEADER),
        ORGS.header,
        user_output_header(options.include_staff),
        DEMOGRAPHICS.header,
    )
    for name, frame, header in zip(PACKAGE_ENTRIES, frames, headers, strict=True):
        if isinstance(frame, pd.DataFrame):
            _check_columns(name, frame, header)
    return list(zip(PACKAGE_ENTRIES, frames, headers, strict=True))


def _check_columns(name: str, frame: pd.DataFrame, header: list[str]) -> None:
    if list(frame.columns) != header:
        raise ValueError(f"{name}: frame columns {list(frame.columns)} are not {header}")


def _entry_csv(
    name: str,
    source: FrameSource,
    header: list[str],
    rows: list[int],
    options: Options,
    broken: list[Finding],
) -> Iterator[bytes]:
    """One entry's CSV chunks, loading its frame first if need be; appends its row count.
    A loaded frame is referenced only here, so it is freed once the entry is written.

    The frame is held to the output contract first (``contract.check_frame``): a frame that
    breaks it adds PKG-CONTRACT findings to ``broken`` and is not written (the entry holds its
    header only, and the package is discarded for the error); the next entries are still
    checked, so that one run names every broken column."""
    frame = source if isinstance(source, pd.DataFrame) else source()
    _check_columns(name, frame, header)
    found = check_frame(name, frame, options)
    if found:
        broken.extend(found)
        rows.append(0)
        yield csv_header(header)
        return
    rows.append(len(frame))
    yield from iter_csv(frame, header)


def _verify(
    fs: fsspec.AbstractFileSystem,
    path: str,
    expected: list[EntryInfo],
    reread: list[Future] | None = None,
) -> list[Finding]:
    """PKG-VERIFY of the ZIP at ``path``. ``reread``: the entries already re-read from the file
    (``_reread_entry``), which ``zipfile``'s central directory must then describe."""
    try:
        with fs.open(path, "rb") as f, zipfile.ZipFile(f) as zf:
            infos = zf.infolist()
            methods = {i.filename: i.compress_type for i in infos}
            if reread is None:
                actual = _summaries(zf)
            else:
                actual = _directory_agrees(infos, [r.result() for r in reread])
    except (
        zipfile.BadZipFile,
        zlib.error,
        OSError,
        EOFError,
        ValueError,
        NotImplementedError,
    ) as exc:
        # The exception text names ZIP structures or paths only; the CSV data is not in it.
        return [_verify_finding(None, f"the built ZIP cannot be re-read ({exc})")]
    names = [e.name for e in actual]
    if names != [e.name for e in expected]:
        return [_verify_finding(None, f"entries are {names}, not {[e.name for e in expected]}")]
    findings = []
    for want, got in zip(expected, actual, strict=True):
        if methods[got.name] != zipfile.ZIP_DEFLATED:
            findings.append(_verify_finding(got.name, "the entry is not Deflate-compressed"))
        if got.header != want.header:
            findings.append(_verify_finding(got.name, _header_difference(got.header, want.header)))
        for field in ("rows", "bytes", "sha256"):
            if getattr(got, field) != getattr(want, field):
                problem = f"re-read {field} {getattr(got, field)}, expected {getattr(want, field)}"
                findings.append(_verify_finding(got.name, problem))
    return findings


@dataclass(frozen=True)
class _Reread:
    """One entry re-read from its local header on: what the central directory must repeat."""

    offset: int
    method: int
    crc: int
    packed: int
    summary: EntryInfo


def _reread_entry(fs: fsspec.AbstractFileSystem, path: str, offset: int) -> _Reread:
    """Re-read the entry whose local header is at ``offset`` of the file at ``path``: inflate
    it with zlib (not the writer's ISA-L: an independent inflater), check its CRC and sizes,
    and summarize what it holds. Raises what ``_verify`` turns into a PKG-VERIFY finding."""
    with fs.open(path, "rb") as f:
        f.seek(offset)
        head = f.read(30)
        if len(head) < 30 or struct.unpack_from("<I", head)[0] != _LOCAL_SIGNATURE:
            raise zipfile.BadZipFile(f"no local header at offset {offset}")
        _, _, _, method, _, _, crc, packed, size, name_len, extra_len = struct.unpack(
            "<IHHHHHIIIHH", head
        )
        name = f.read(name_len).decode("utf-8", "replace")
        f.seek(extra_len, os.SEEK_CUR)
        if method != zipfile.ZIP_DEFLATED:
            raise NotImplementedError(f"{name}: compression method {method}")
        inflater = zlib.decompressobj(-15)
        digest = _EntryDigest()
        seen, left = 0, packed
        while left:
            chunk = f.read(min(_READ_CHUNK, left))
            if not chunk:
                raise EOFError(f"{name}: the entry's data ends early")
            left -= len(chunk)
            data = inflater.decompress(chunk)
            seen = zlib.crc32(data, seen)
            digest.update(data)
        data = inflater.flush()
        seen = zlib.crc32(data, seen)
        digest.update(data)
    if not inflater.eof or seen != crc or digest.size != size:
        raise zipfile.BadZipFile(f"{name}: the entry's data does not match its CRC or size")
    return _Reread(offset, method, crc, packed, digest.summary(name))


def _directory_agrees(infos: list[zipfile.ZipInfo], reread: list[_Reread]) -> list[EntryInfo]:
    """The re-read entries' summaries, once ``zipfile``'s reading of the central directory
    places and describes every one of them as its local header did."""
    placed = [(i.filename, i.header_offset, i.compress_type, i.CRC, i.compress_size) for i in infos]
    if placed != [(r.summary.name, r.offset, r.method, r.crc, r.packed) for r in reread]:
        raise zipfile.BadZipFile("the central directory does not describe the entries written")
    return [r.summary for r in reread]


def _header_difference(got: list[str], want: list[str]) -> str:
    """Where a re-read header departs from the expected one, naming only expected columns: a
    damaged entry's first line may be a data record, whose values must not be printed."""
    pairs = enumerate(zip(got, want, strict=False))  # lengths may differ
    at = next((i for i, (g, w) in pairs if g != w), min(len(got), len(want)))
    expected = repr(want[at]) if at < len(want) else "no further column"
    return f"the re-read header differs at column {at + 1} (expected {expected})"


def _summary(fs: fsspec.AbstractFileSystem, path: str) -> list[EntryInfo]:
    with fs.open(path, "rb") as f, zipfile.ZipFile(f) as zf:
        return _summaries(zf)


def _summaries(zf: zipfile.ZipFile) -> list[EntryInfo]:
    summaries = []
    # Each chunk is digested in a second thread while zlib inflates the next (both free the GIL).
    for info in zf.infolist():
        digest = _EntryDigest()
        with zf.open(info) as entry:  # reading to the end checks the CRC
            _overlapped(iter(partial(entry.read, _READ_CHUNK), b""), digest.update)
        summaries.append(digest.summary(info.filename))
    return summaries


class _EntryDigest:
    """Size, sha256, line count and first line of a CSV fed in chunks: the same measure for
    what is written and what is re-read. Values hold no newline (spec section 3), so records
    are lines."""

    _HEADER_LIMIT = 1 << 16

    def __init__(self) -> None:
        self.size = 0
        self._sha256 = sha256()
        self._newlines = 0
        self._first = b""
        self._last = b""

    def update(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.size += len(chunk)
        self._sha256.update(chunk)
        # numpy counts a byte four times faster than bytes.count (and releases the GIL).
        self._newlines += int(np.count_nonzero(np.frombuffer(chunk, np.uint8) == _LF))
        if b"\n" not in self._first and len(self._first) < self._HEADER_LIMIT:
            self._first += chunk[: self._HEADER_LIMIT]
        self._last = chunk[-1:]

    def summary(self, name: str) -> EntryInfo:
        lines = self._newlines + (1 if self._last not in (b"", b"\n") else 0)
        first = self._first.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace")
        header = next(csv.reader([first]), []) if first else []
        return EntryInfo(name, max(lines - 1, 0), self.size, self._sha256.hexdigest(), header)


class _HashingSink:
    """A write-only file wrapper that counts and hashes what passes through: the ZIP's size
    and sha256 without reading it back."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.size = 0
        self.sha256 = sha256()

    def write(self, data: bytes) -> int:
        self._out.write(data)
        self.size += len(data)
        self.sha256.update(data)
        return len(data)


def _verify_finding(entry: str | None, problem: str) -> Finding:
    where = entry or ZIP_NAME
    return finding("PKG-VERIFY", f"{where}: {problem}", file=where)


def _size_finding(size: int, problem: str, severity: str | None) -> Finding:
    return finding(
        "PKG-SIZE", f"{ZIP_NAME} is {size:,} bytes, {problem}", file=ZIP_NAME, severity=severity
    )
