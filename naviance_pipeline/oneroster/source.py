"""Open a district's OneRoster v1.1 or v1.2 CSV source: a folder or a ZIP (any name) at any
fsspec URL. A 1.2 export (its manifest says so; with no manifest, it holds roles.csv) has
``version`` V12 and roles.csv among its files: ``v12.py`` reads it as 1.1.

Only the entries the package needs (manifest, orgs, users, demographics) are read, into memory;
nothing is ever extracted to disk. With ``lazy=True`` a file's bytes are read only when a stage
asks for it (each stage needs one file: the others need not be inflated or held).

Together the needed entries may hold at most ``Options.max_source_bytes`` expanded: above it,
SRC-TOO-LARGE and nothing is read or inflated (an archive is measured by its central
directory's sizes, and no entry is ever inflated past its stated size; a folder by its files'
sizes). An archive with an unsafe entry, or one that would expand too far, is not read at all;
nor is a folder holding anything but regular files (a link that leads out of it, a FIFO, a
device, a socket: SRC-UNSAFE-ENTRY). Their findings say why and the result holds no files.
Everything else about the source package (rules SRC-*) is a finding; only a source that cannot
be opened or listed at all raises ``SourceUnreadable``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import stat
import struct
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import fsspec
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from naviance_pipeline.oneroster.findings import Finding, finding
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.spec import ONEROSTER_V11_FILES, ORGS, PACKAGE_ENTRIES, USERS
from naviance_pipeline.oneroster.v12 import ONEROSTER_V12_FILES, ROLES_FILE, V11, V12

try:  # ISA-L inflates about twice as fast as zlib; same raw-deflate interface
    from isal import isal_zlib as _inflate
except ImportError:  # pragma: no cover - isal is a dependency; this keeps a bare install working
    _inflate = zlib
_INFLATE_ERRORS = (zlib.error, _inflate.error)

MANIFEST = "manifest.csv"
NEEDED = PACKAGE_ENTRIES  # the entries read: manifest, orgs, users, demographics
REQUIRED = (ORGS.name, USERS.name)  # absent demographics is the demographics stage's DEM-MISSING
RATIO_MIN_BYTES = 1_000_000  # smaller entries may compress very well without being a bomb

_DRIVE = re.compile(r"^[A-Za-z]:")
_FILE_PROPERTY = "file."
_FILE_STATES = ("bulk", "delta", "absent")
# By version: the files of a package (others are SRC-EXTRA-FILE), those read, those required.
_FILE_SETS = {V11: frozenset(ONEROSTER_V11_FILES), V12: frozenset(ONEROSTER_V12_FILES)}
_NEEDED = {V11: NEEDED, V12: (*NEEDED, ROLES_FILE)}
_REQUIRED = {V11: REQUIRED, V12: (*REQUIRED, ROLES_FILE)}


class SourceUnreadable(Exception):
    """The source cannot be opened or listed at all (missing path, permission, not a ZIP,
    corrupt ZIP), or, from :func:`open_entries` and :func:`folder_files`' callers, it is
    refused as unsafe, too large or ambiguous (``findings`` then holds the SRC-UNSAFE-ENTRY /
    SRC-TOO-LARGE / SRC-DUPLICATE-FILE findings)."""

    def __init__(self, message: str, findings: list[Finding] | None = None) -> None:
        super().__init__(message)
        self.findings: list[Finding] = findings or [finding("SRC-UNREADABLE", message)]
        self.finding: Finding = self.findings[0]


@dataclass
class Source:
    url: str
    files: Mapping[str, bytes]  # raw bytes of the needed entries present, by base name
    entries: list[str]  # every file name found in the source (relative paths), for reports
    findings: list[Finding]  # source-package findings (SRC-*)
    version: str = V11  # V12: a OneRoster 1.2 export, read as 1.1 by oneroster.v12


def open_source(
    url: str, options: Options, storage_options: dict | None = None, *, lazy: bool = False
) -> Source:
    """Open a OneRoster v1.1 CSV source: a folder or a ZIP file (any name) at any fsspec URL or
    local path. Raises SourceUnreadable only when it cannot be opened at all.

    ``lazy``: read orgs, users and demographics only when ``files`` is asked for one, and hold
    none of them (the manifest is still read at once: its findings are). A damaged entry then
    raises SourceUnreadable at that moment; open a snapshot lazily only once an eager open has
    vouched for it."""
    shown = redact_url(url)
    fs, path = _filesystem(url, storage_options, shown)
    with _unreadable_as(shown):
        if fs.isdir(path):
            return _open_folder(url, fs, path, options, lazy, shown)
        if not fs.exists(path):
            raise SourceUnreadable(f"{shown} does not exist")
        with _open_file(fs, path, shown) as fh:
            return _open_zip(url, fh, options, shown, (fs, path) if lazy else None)


def _filesystem(
    url: str, storage_options: dict | None, shown: str
) -> tuple[AbstractFileSystem, str]:
    try:
        return fsspec.core.url_to_fs(url, **(storage_options or {}))
    except (ValueError, ImportError) as e:  # unknown protocol, or its driver is not installed
        raise SourceUnreadable(f"{shown} cannot be opened: its URL scheme is not supported") from e


@contextlib.contextmanager
def _unreadable_as(shown: str) -> Iterator[None]:
    """Reading errors of the source as SourceUnreadable, with a message naming no data."""
    try:
        yield
    except FileNotFoundError as e:
        raise SourceUnreadable(f"{shown} does not exist") from e
    except PermissionError as e:
        raise SourceUnreadable(f"permission denied reading {shown}") from e
    except (zipfile.BadZipFile, *_INFLATE_ERRORS, EOFError) as e:
        raise SourceUnreadable(
            f"{shown} is a damaged ZIP archive (bad checksum or cut short)"
        ) from e
    except NotImplementedError as e:  # e.g. Deflate64 or bzip2 variants zipfile cannot read
        raise SourceUnreadable(
            f"{shown} uses a ZIP compression method that is not supported"
        ) from e
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise SourceUnreadable(f"{shown} cannot be read: {reason}") from e


def redact_url(url: str) -> str:
    """The URL without user, password or query, for messages (they may hold credentials)."""
    parts = urlsplit(url)
    if not parts.scheme:
        return url
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


# -- folders and archives ---------------------------------------------------------------------


SOURCE_DEPTH = 2  # the root and one enclosing folder are all a source may use


def _open_folder(
    url: str, fs: AbstractFileSystem, path: str, options: Options, lazy: bool, shown: str
) -> Source:
    root = path.rstrip("/")
    sizes, refused = folder_files(fs, root, SOURCE_DEPTH)
    names = sorted(sizes)
    if refused:
        return Source(url, {}, sorted([*names, *(f.file for f in refused)]), refused)

    def read(name: str) -> bytes:
        return _read_file(fs, f"{root}/{name}", name, options.max_source_bytes)

    lazy_read = _guarded(read, shown) if lazy else None
    return _assemble(url, names, read, options, sizes.__getitem__, lazy_read)


def folder_files(
    fs: AbstractFileSystem, root: str, maxdepth: int | None
) -> tuple[dict[str, int], list[Finding]]:
    """The regular files in ``root`` and its sub-folders (``maxdepth`` levels; None: all) by
    relative path, with their sizes, and SRC-UNSAFE-ENTRY for what must not be read there.

    On a local disk nothing is opened to find out (``lstat``): a link is followed only when it
    leads to a regular file inside ``root``; a link leading out of it (to ``/etc/passwd``,
    ``/dev/zero``), to a folder or to nothing, a FIFO (which would block), a device or a
    socket is refused. Object stores hold regular files only."""
    if not isinstance(fs, LocalFileSystem):
        found = fs.find(root, maxdepth=maxdepth, withdirs=False, detail=True)
        return {
            p[len(root) + 1 :]: int(info.get("size") or 0)
            for p, info in found.items()
            if p.startswith(root + "/")
        }, []
    real_root = os.path.realpath(root)
    sizes: dict[str, int] = {}
    refused: list[Finding] = []

    def walk(folder: str, prefix: str, depth: int) -> None:
        with os.scandir(folder) as it:
            for entry in sorted(it, key=lambda e: e.name):
                rel = prefix + entry.name
                mode = entry.stat(follow_symlinks=False).st_mode
                if stat.S_ISDIR(mode):
                    if maxdepth is None or depth < maxdepth:
                        walk(entry.path, rel + "/", depth + 1)
                    continue
                size, reason = _regular_size(entry.path, mode, real_root)
                if reason is None:
                    sizes[rel] = size
                else:
                    refused.append(_unsafe_file(rel, reason))

    walk(root, "", 1)
    return sizes, refused


def _regular_size(path: str, mode: int, real_root: str) -> tuple[int, str | None]:
    """(size, None) for a regular file or a link to one inside ``real_root``, else why not."""
    if stat.S_ISLNK(mode):
        target = os.path.realpath(path)
        if os.path.commonpath([real_root, target]) != real_root:
            return 0, "is a symbolic link that leads out of the source folder"
        try:
            mode = os.stat(path).st_mode
        except OSError:
            return 0, "is a symbolic link to nothing"
        if stat.S_ISDIR(mode):
            return 0, "is a symbolic link to a folder"
    if not stat.S_ISREG(mode):
        return 0, f"is {_special_kind(mode)}, not a regular file"
    return os.stat(path).st_size, None


def _special_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def _unsafe_file(name: str, reason: str) -> Finding:
    return finding(
        "SRC-UNSAFE-ENTRY", f"{name} {reason}; nothing was read from the source", file=name
    )


def open_regular(path: str, name: str) -> IO[bytes]:
    """A local file opened for reading only if it is a regular file: opened without blocking
    (a FIFO put there since it was listed would block an ordinary open) and checked on the
    open descriptor; SourceUnreadable (SRC-UNSAFE-ENTRY naming ``name``) otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            refused = _unsafe_file(name, f"is {_special_kind(mode)}, not a regular file")
            raise SourceUnreadable(refused.message, [refused])
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _open_file(fs: AbstractFileSystem, path: str, shown: str) -> IO[bytes]:
    """The source's ZIP file, opened only if it is a regular file (a FIFO would block)."""
    if isinstance(fs, LocalFileSystem):
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise SourceUnreadable(f"{shown} is {_special_kind(mode)}, not a folder or a file")
    return fs.open(path, "rb")


def _open_entry(fs: AbstractFileSystem, path: str, name: str) -> IO[bytes]:
    """A folder's file as a stream; a local one only if it is a regular file."""
    if isinstance(fs, LocalFileSystem):
        return open_regular(path, name)
    return fs.open(path, "rb")


def _read_file(fs: AbstractFileSystem, path: str, name: str, limit: int) -> bytes:
    """A folder's file, never more than ``limit`` bytes of it (SRC-TOO-LARGE: it grew past the
    limit after it was listed)."""
    if isinstance(fs, LocalFileSystem):
        with open_regular(path, name) as f:
            data = f.read(limit + 1)
    else:
        data = fs.cat_file(path, start=0, end=limit + 1)
    if len(data) > limit:
        refused = finding(
            "SRC-TOO-LARGE",
            f"{name} holds more than the limit of {limit:,} bytes; nothing was read",
            file=name,
        )
        raise SourceUnreadable(refused.message, [refused])
    return data


def _guarded(read: Callable[[str], bytes], shown: str) -> Callable[[str], bytes]:
    """A lazy read, its errors translated as an eager open translates them."""

    def guarded(name: str) -> bytes:
        with _unreadable_as(shown):
            return read(name)

    return guarded


def _open_zip(
    url: str,
    fh: IO[bytes],
    options: Options,
    shown: str,
    reopen: tuple[AbstractFileSystem, str] | None,
) -> Source:
    _check_is_zip(fh, shown)
    with zipfile.ZipFile(fh) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos if not i.is_dir()]
        refused = archive_problems(infos, options)
        if refused:
            return Source(url, {}, names, refused)
        by_name: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            by_name.setdefault(info.filename, info)  # a repeated name: the first one counts

        lock = threading.Lock()  # the entries are inflated two at a time; the file is shared

        def read(name: str) -> bytes:
            return _read_entry(zf, fh, by_name[name], shown, lock)

        def read_later(name: str) -> bytes:
            fs, path = reopen
            with fs.open(path, "rb") as again, zipfile.ZipFile(again) as zf_again:
                return _read_entry(zf_again, again, by_name[name], shown)

        lazy = _guarded(read_later, shown) if reopen is not None else None
        size = lambda name: by_name[name].file_size  # noqa: E731 - as stated in the directory
        return _assemble(url, names, read, options, size, lazy, parallel=True)


def _check_is_zip(fh: IO[bytes], shown: str) -> None:
    if not zipfile.is_zipfile(fh):
        raise SourceUnreadable(
            f"{shown} is neither a folder nor a ZIP archive (or it is cut short)"
        )
    fh.seek(0)


def archive_problems(infos: list[zipfile.ZipInfo], options: Options) -> list[Finding]:
    """Why an archive must not be read at all: unsafe entries (SRC-UNSAFE-ENTRY), else an
    expansion past the limits of ``options`` (SRC-TOO-LARGE); empty when it is safe."""
    return _unsafe_findings(infos) or _size_findings(infos, options)


def _unsafe_findings(infos: list[zipfile.ZipInfo]) -> list[Finding]:
    out = []
    for info in infos:
        reason = _unsafe_reason(info)
        if reason:
            out.append(
                finding(
                    "SRC-UNSAFE-ENTRY",
                    f"archive entry {reason}; nothing was extracted from the archive",
                    file=info.filename,
                )
            )
    return out


def _unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    parts = name.replace("\\", "/").split("/")
    if stat.S_ISLNK(info.external_attr >> 16):  # unix mode bits live in the high word
        return "is a symbolic link"
    if name.startswith(("/", "\\")):
        return "has an absolute path"
    if _DRIVE.match(name):
        return "has a drive-letter path"
    if ".." in parts:
        return "climbs out of its folder with '..'"
    return None


def _size_findings(infos: list[zipfile.ZipInfo], options: Options) -> list[Finding]:
    out = []
    total = sum(i.file_size for i in infos)
    if total > options.max_expanded_bytes:
        out.append(
            finding(
                "SRC-TOO-LARGE",
                f"the archive expands to {total:,} bytes, more than the limit of "
                f"{options.max_expanded_bytes:,}; nothing was read",
            )
        )
    for i in infos:
        ratio = i.file_size / max(i.compress_size, 1)
        if i.file_size > RATIO_MIN_BYTES and ratio > options.max_compression_ratio:
            out.append(
                finding(
                    "SRC-TOO-LARGE",
                    f"archive entry is compressed {ratio:,.0f} times, more than the limit of "
                    f"{options.max_compression_ratio:,.0f} (a zip bomb?); nothing was read",
                    file=i.filename,
                )
            )
    return out


def _read_entry(
    zf: zipfile.ZipFile,
    fh: IO[bytes],
    info: zipfile.ZipInfo,
    shown: str,
    lock: threading.Lock | None = None,
) -> bytes:
    """An entry's bytes, never more than its declared size; the CRC is checked. With ``lock``,
    only the reading of ``fh`` holds it: the inflate and the CRC run outside it."""
    if info.flag_bits & 0x1:
        raise SourceUnreadable(f"{shown}: entry {info.filename} is password-protected")
    deflated = info.compress_type == zipfile.ZIP_DEFLATED
    with lock or contextlib.nullcontext():
        if deflated:
            data = _packed_entry(fh, info)
        else:  # stored, or a method zipfile knows (or refuses with NotImplementedError)
            with zf.open(info) as entry:
                data = entry.read(info.file_size + 1)
    if deflated:
        data = _inflate.decompressobj(-15).decompress(data, info.file_size + 1)
    if len(data) != info.file_size:
        raise SourceUnreadable(f"{shown}: entry {info.filename} does not have its declared size")
    if deflated and _inflate.crc32(data) != info.CRC:
        raise zipfile.BadZipFile(f"bad CRC-32 for entry {info.filename}")
    return data


_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, then the name and extra field lengths


def _packed_entry(fh: IO[bytes], info: zipfile.ZipInfo) -> bytes:
    """A Deflate entry's compressed bytes, found through its local header. They are inflated
    in one call (ISA-L when installed, which releases the GIL): zipfile's reader inflates with
    zlib in small pieces, at less than half the speed. At most ``file_size + 1`` bytes come
    out, so an entry that lies about its size cannot expand without bound."""
    fh.seek(info.header_offset)
    header = fh.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size:
        raise EOFError(f"entry {info.filename} is cut short")
    signature, name_length, extra_length = _LOCAL_HEADER.unpack(header)
    if signature != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header for entry {info.filename}")
    fh.seek(info.header_offset + _LOCAL_HEADER.size + name_length + extra_length)
    packed = fh.read(info.compress_size)
    if len(packed) != info.compress_size:
        raise EOFError(f"entry {info.filename} is cut short")
    return packed


# -- named entries of any folder or archive --------------------------------------------------


class Entries:
    """The files of a folder or of a safe ZIP archive by relative path (``names``), each read
    only when asked for. Made by :func:`open_entries`."""

    def __init__(
        self,
        names: list[str],
        stream: Callable[[str], IO[bytes]],
        read: Callable[[str], bytes],
        size: Callable[[str], int],
    ) -> None:
        self.names = names
        self._stream = stream
        self._read = read
        self.size = size  # an entry's size, expanded (as listed: nothing is read)

    def open(self, name: str) -> IO[bytes]:
        """A binary stream of one entry, read (and inflated) only as far as it is read."""
        return self._stream(name)

    def read(self, name: str) -> bytes:
        """One entry's bytes; from a ZIP never more than its declared size, CRC checked."""
        return self._read(name)


@contextlib.contextmanager
def open_entries(
    url: str, options: Options, storage_options: dict | None = None
) -> Iterator[Entries]:
    """Open a folder (its files, two levels deep) or a ZIP file at any fsspec URL for reading
    named entries, for sources that are not a OneRoster package (a SIS export).

    Raises SourceUnreadable when the source cannot be opened, for an archive that
    :func:`archive_problems` refuses or that holds a name twice, and for a folder holding a
    file :func:`folder_files` refuses (the findings in ``findings``; nothing is read).
    Reading errors while the context is open are SourceUnreadable too."""
    shown = redact_url(url)
    fs, path = _filesystem(url, storage_options, shown)
    with _unreadable_as(shown):
        if fs.isdir(path):
            root = path.rstrip("/")
            sizes, refused = folder_files(fs, root, SOURCE_DEPTH)
            if refused:
                raise SourceUnreadable(_refusal(shown, refused), refused)
            yield Entries(
                sorted(sizes),
                lambda name: _open_entry(fs, f"{root}/{name}", name),
                lambda name: _read_file(fs, f"{root}/{name}", name, options.max_source_bytes),
                sizes.__getitem__,
            )
            return
        if not fs.exists(path):
            raise SourceUnreadable(f"{shown} does not exist")
        with _open_file(fs, path, shown) as fh:
            _check_is_zip(fh, shown)
            with zipfile.ZipFile(fh) as zf:
                infos = zf.infolist()
                files = [i for i in infos if not i.is_dir()]
                refused = archive_problems(infos, options) or _repeated_names(files)
                if refused:
                    raise SourceUnreadable(_refusal(shown, refused), refused)
                by_name = {info.filename: info for info in files}
                yield Entries(
                    sorted(by_name),
                    lambda name: _stream_entry(zf, by_name[name], shown),
                    lambda name: _read_entry(zf, fh, by_name[name], shown),
                    lambda name: by_name[name].file_size,
                )


def _repeated_names(files: list[zipfile.ZipInfo]) -> list[Finding]:
    """SRC-DUPLICATE-FILE for each name an archive holds more than once."""
    counts: dict[str, int] = {}
    for info in files:
        counts[info.filename] = counts.get(info.filename, 0) + 1
    return [
        finding(
            "SRC-DUPLICATE-FILE",
            f"the archive holds {name} {count} times: remove all but one; nothing was read",
            file=name,
        )
        for name, count in counts.items()
        if count > 1
    ]


def _stream_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, shown: str) -> IO[bytes]:
    """An entry as a stream: zipfile inflates as it is read and stops at the declared size."""
    if info.flag_bits & 0x1:
        raise SourceUnreadable(f"{shown}: entry {info.filename} is password-protected")
    return zf.open(info)


def _refusal(shown: str, refused: list[Finding]) -> str:
    reasons = [f"{f.file}: {f.message}" if f.file else f.message for f in refused[:3]]
    more = f" (and {len(refused) - 3} more)" if len(refused) > 3 else ""
    return f"{shown} was not read: " + "; ".join(reasons) + more


# -- the package inside the source ------------------------------------------------------------


class _LazyFiles(Mapping[str, bytes]):
    """The needed files by name, each read when asked for and never held."""

    def __init__(self, names: list[str], read: Callable[[str], bytes]) -> None:
        self._names = names
        self._read = read

    def __getitem__(self, name: str) -> bytes:
        if name not in self._names:
            raise KeyError(name)
        return self._read(name)

    def __contains__(self, name: object) -> bool:
        return name in self._names  # Mapping's default would read the file to find out

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _assemble(
    url: str,
    names: list[str],
    read: Callable[[str], bytes],
    options: Options,
    size: Callable[[str], int],
    read_later: Callable[[str], bytes] | None = None,
    *,
    parallel: bool = False,
) -> Source:
    """Find the package folder, read the needed files (or, given ``read_later``, only the
    manifest: the others when asked for) and report the package-level rules. ``size``: an
    entry's expanded size, checked against the limit before anything is read. ``parallel``:
    ``read`` is thread-safe, so an eager open reads two files at a time (users.csv beside the
    others: an archive's inflate releases the GIL)."""
    prefix, findings = _package_folder(names)
    here = {n[len(prefix) :] for n in names if _in_folder(n, prefix)}
    # roles.csv is measured (and, eagerly, read) whenever present: only the manifest, read
    # with the others, tells whether the export is 1.2 and needs it.
    present = [name for name in _NEEDED[V12] if name in here]
    expanded = sum(size(prefix + name) for name in present)
    if expanded > options.max_source_bytes:
        return Source(url, {}, names, [*findings, _too_large(present, expanded, options)])
    files: Mapping[str, bytes]
    manifest: bytes | None = None
    if read_later is not None:
        if MANIFEST in here:
            manifest = read(prefix + MANIFEST)
    else:
        read_now = _read_all(read, [prefix + n for n in present], parallel)
        files = dict(zip(present, read_now, strict=True))
        manifest = files.get(MANIFEST)
    version = _version(manifest, here)
    present = [name for name in present if name in _NEEDED[version]]
    if read_later is not None:
        files = _LazyFiles(present, lambda name: read_later(prefix + name))
    else:
        files = {name: files[name] for name in present}
    duplicates = _duplicate_findings(names, _NEEDED[version])
    findings.extend(duplicates)
    doubled = {n for f in duplicates for n in _places(f.file, names)}
    for n in names:
        if n not in doubled and not (
            _in_folder(n, prefix) and n[len(prefix) :] in _FILE_SETS[version]
        ):
            findings.append(
                finding(
                    "SRC-EXTRA-FILE",
                    f"this file is not part of a OneRoster v{version} package; it is ignored",
                    file=n,
                )
            )
    for name in _REQUIRED[version]:
        if name not in files:
            findings.append(finding("SRC-MISSING-FILE", _missing_message(name, names), file=name))
    if manifest is not None:
        findings.extend(_manifest_findings(manifest, here, version))
    elif not options.raw_sis_export:
        findings.append(
            finding(
                "SRC-MANIFEST-MISSING",
                "manifest.csv is missing: export the full OneRoster package, or configure the "
                "source as a raw SIS export",
                file=MANIFEST,
            )
        )
    return Source(url, files, names, findings, version)


def _version(manifest: bytes | None, here: set[str]) -> str:
    """V12 when the manifest says ``oneroster.version`` 1.2, or, with no manifest, when the
    files are a 1.2 export's (a roles.csv beside users.csv); else V11 (another version in the
    manifest is SRC-VERSION, and a 1.2 users header read as 1.1 is, by csvread)."""
    if manifest is None:
        return V12 if ROLES_FILE in here else V11
    records, _ = _manifest_records(manifest)
    stated = [value for _, prop, value in records if prop == "oneroster.version"]
    return V12 if stated[:1] == [V12] else V11


def _too_large(present: list[str], expanded: int, options: Options) -> Finding:
    return finding(
        "SRC-TOO-LARGE",
        f"the files the package is made from ({', '.join(present)}) hold {expanded:,} bytes "
        f"uncompressed, more than the limit of {options.max_source_bytes:,} "
        "(NAVIANCE_MAX_SOURCE_BYTES); nothing was read",
    )


def _duplicate_findings(names: list[str], needed: tuple[str, ...] = NEEDED) -> list[Finding]:
    """SRC-DUPLICATE-FILE for each needed file found more than once where a source may hold
    it (at the root or in one enclosing folder, or the same name twice in an archive): which
    one is the district's export cannot be told, so none is chosen silently."""
    out = []
    for name in needed:
        found = _places(name, names)
        if len(found) > 1:
            shown = ", ".join(sorted(found))
            out.append(
                finding(
                    "SRC-DUPLICATE-FILE",
                    f"{name} is in the source {len(found)} times ({shown}): remove all but "
                    "one: which one is the export cannot be told",
                    file=name,
                )
            )
    return out


def _places(name: str, names: list[str]) -> list[str]:
    """The entries that could be ``name``: at the root, or in one enclosing folder."""
    return [n for n in names if n == name or (n.count("/") == 1 and n.endswith("/" + name))]


def _read_all(read: Callable[[str], bytes], names: list[str], parallel: bool) -> list[bytes]:
    if not parallel or len(names) < 2:
        return [read(n) for n in names]
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(read, names))  # a failed read raises here, as it would in order


def _in_folder(name: str, prefix: str) -> bool:
    return name.startswith(prefix) and "/" not in name[len(prefix) :]


def _package_folder(names: list[str]) -> tuple[str, list[Finding]]:
    """``""`` when the needed files are at the root, else ``"folder/"`` when exactly one
    enclosing folder holds them (SRC-NESTED)."""
    if any(n in NEEDED for n in names):
        return "", []
    folders = {n.split("/")[0] for n in names if n.count("/") == 1 and n.split("/")[1] in NEEDED}
    if len(folders) != 1:
        return "", []
    folder = folders.pop()
    nested = finding(
        "SRC-NESTED",
        f"the CSV files are inside the folder '{folder}', not at the root of the source; "
        "they were read from there",
    )
    return folder + "/", [nested]


def _missing_message(name: str, names: list[str]) -> str:
    message = f"{name} is missing from the source"
    elsewhere = [n for n in names if n.rsplit("/", 1)[-1].lower() == name.lower()]
    if elsewhere:
        message += (
            f" (found {', '.join(elsewhere)}: OneRoster file names are case-sensitive and the "
            "files must sit at the root or in one enclosing folder)"
        )
    return message


# -- manifest ---------------------------------------------------------------------------------


def _manifest_findings(data: bytes, present: set[str], version: str = V11) -> list[Finding]:
    """Check the source manifest (``propertyName,value``; BOM and CRLF tolerated) of a source
    of ``version``."""
    stated_files = _FILE_SETS[version] - {MANIFEST}  # those a file.<name> row describes
    out: list[Finding] = []

    def report(rule: str, message: str, line: int, column: str, value: str) -> None:
        out.append(finding(rule, message, file=MANIFEST, line=line, column=column, value=value))

    records, stopped_at = _manifest_records(data)
    seen: set[str] = set()
    for line, prop, value in records:
        if prop in seen:
            message = f"property '{prop}' appears more than once"
            report("SRC-MANIFEST-MISMATCH", message, line, "propertyName", prop)
            continue
        seen.add(prop)
        file_name = f"{prop.removeprefix(_FILE_PROPERTY)}.csv"
        if prop == "oneroster.version":
            if value not in (V11, V12):
                message = (
                    f"the source is OneRoster '{value}', not 1.1 or 1.2: export OneRoster 1.1 "
                    "or 1.2 CSV"
                )
                report("SRC-VERSION", message, line, "value", value)
        elif prop.startswith(_FILE_PROPERTY) and file_name in stated_files:
            problem = _file_state_problem(file_name, value.lower(), present, _NEEDED[version])
            if problem:
                report(*problem, line, "value", value)
        elif prop != "manifest.version" and not prop.startswith("source."):
            message = f"'{prop}' is not a OneRoster v{version} manifest property"
            report("SRC-MANIFEST-MISMATCH", message, line, "propertyName", prop)
    if stopped_at is not None:
        # Unread properties could hide a delta file or another version: fail closed.
        out.append(
            finding(
                "SRC-MANIFEST-MISSING",
                f"manifest.csv cannot be read as CSV from line {stopped_at} on: re-export it",
                file=MANIFEST,
                line=stopped_at,
            )
        )
    return out


def _manifest_records(data: bytes) -> tuple[list[tuple[int, str, str]], int | None]:
    """(record number, property, value) for every non-blank record after the header, and the
    record number where reading stopped when the rest is not CSV (else None)."""
    text = data.decode("utf-8-sig", errors="replace")
    records = []
    reader = csv.reader(io.StringIO(text, newline=""))
    line = 0
    try:
        for line, record in enumerate(reader, start=1):
            cells = [c.strip() for c in record]
            if not any(cells) or (line == 1 and cells[0] == "propertyName"):
                continue
            records.append((line, cells[0], cells[1] if len(cells) > 1 else ""))
    except csv.Error:
        return records, line + 1
    return records, None


def _file_state_problem(
    name: str, state: str, present: set[str], needed: tuple[str, ...] = NEEDED
) -> tuple[str, str] | None:
    if state == "delta":
        if name in needed:
            return (
                "SRC-DELTA",
                f"the manifest marks {name} as delta: Naviance takes bulk files only",
            )
        return None
    if state not in _FILE_STATES:
        return "SRC-MANIFEST-MISMATCH", f"the state of {name} must be bulk, delta or absent"
    if state == "bulk" and name not in present:
        return "SRC-MANIFEST-MISMATCH", f"the manifest says {name} is bulk but it is missing"
    if state == "absent" and name in present:
        return "SRC-MANIFEST-MISMATCH", f"the manifest says {name} is absent but it is present"
    return None
