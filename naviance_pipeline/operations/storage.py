"""Where things live under the data root, and owner-only writes.

One root (any fsspec URL; default a local folder) holds, per district and date::

    <root>/districts/<district>/raw/<date>/...                   byte-for-byte source snapshot
    <root>/districts/<district>/frames/<asset>/<date>.parquet/    validated frames (frames.py)
    <root>/districts/<district>/findings/<date>/<stage>.json     findings of each stage
    <root>/districts/<district>/packages/<date>/NavianceOneRoster.zip   package, archived
    <root>/districts/<district>/packages/<date>/summary.json     counts the delivery guards compare
    <root>/districts/<district>/packages/<date>/students.arrow    who the identity guard compares
    <root>/districts/<district>/receipts/<target name>/<date>__<run>.json  one per delivery

The district is a path component from the start so a second partition dimension (date ×
district) needs no new layout (docs/architecture.md, Decisions). The data is student PII: local
files are created 0600 in 0700 folders.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import hashlib
import json
import os
import posixpath
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
from fsspec.implementations.local import LocalFileSystem
from upath import UPath

from naviance_pipeline.oneroster.source import (
    SourceUnreadable,
    folder_files,
    open_regular,
    redact_url,
)
from naviance_pipeline.oneroster.spec import ZIP_NAME
from naviance_pipeline.operations.crash import is_dead_leftover, temp_name

CHUNK = 4 * 1024 * 1024
SENDFILE_BLOCK = 1 << 30
# The stages that store findings, in pipeline order; the delivery guards store theirs as
# "guards" beside them.
FINDING_STAGES = ("sis_extract", "users", "orgs", "demographics")
GUARDS_STAGE = "guards"
SNAPSHOT_INDEX = "snapshot.json"  # a date's snapshot index, in its raw folder (io_manager.py)


def _libc_trim():
    """glibc's ``malloc_trim`` (None elsewhere): returns freed heap pages to the OS."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None


_MALLOC_TRIM = _libc_trim()
RELEASE_ABOVE_BYTES = 512 * 2**20


def _resident_bytes() -> int:
    """This process's resident memory (Linux; elsewhere 0, so nothing is released early)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def release_memory(above_bytes: int = RELEASE_ABOVE_BYTES) -> None:
    """Give memory the previous stage freed back to the OS, when the process holds more than
    ``above_bytes`` (not worth it for a small district).

    All stages of a run share one process. Arrow's allocator (mimalloc) and glibc keep freed
    pages for reuse, so without this a run's resident memory is the sum of its stages' peaks,
    not the largest: measured at 1 M users, 1.1 GB held after the users stage until released,
    0.2 GB after."""
    if _resident_bytes() < above_bytes:
        return
    # The young generations first: a full collection walks every object Dagster holds (about
    # 0.1 s), and most frames die by refcount.
    _collect_and_trim(1)
    if _resident_bytes() >= above_bytes:
        # Still held: columns caught in reference cycles that outlived the young generations
        # (pandas caches a Series' ``.str`` accessor and a frame's ``.pandera`` accessor on the
        # object, each pointing back at it). Measured at 1 M users: in about half the runs the
        # users stage's source columns stayed resident this way into the next stages (+350 MB,
        # a 1.15-1.19 GB run peak) until a full collection.
        _collect_and_trim(2)


def _collect_and_trim(generation: int) -> None:
    gc.collect(generation)
    pa.default_memory_pool().release_unused()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def is_local(path: UPath) -> bool:
    return path.protocol in ("", "file", "local")


def replace_folder(staging: UPath, dest: UPath) -> None:
    """Put the folder ``staging`` (written in full) at ``dest``, replacing what was there, a
    file or a folder. Local: a rename. Object stores have no folder rename: every file moves."""
    if dest.exists():
        dest.fs.rm(dest.path, recursive=dest.is_dir())
    if is_local(staging):
        os.replace(staging.path, dest.path)
    else:
        staging.fs.mv(staging.path, dest.path, recursive=True)


def ensure_private_dir(path: UPath) -> None:
    """Create a folder (and any missing parents) owner-only."""
    if is_local(path):
        os.makedirs(path.path, mode=0o700, exist_ok=True)
        os.chmod(path.path, 0o700)
    else:
        path.mkdir(parents=True, exist_ok=True)


def make_tree_private(folder: str | os.PathLike[str]) -> None:
    """Owner-only from ``folder`` down, on a local disk: folders 0700, files 0600 (an install
    made before this, or by a tool that ignores the umask)."""
    os.chmod(folder, 0o700)
    for parent, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(parent, name), 0o700, follow_symlinks=False)
        for name in files:
            path = os.path.join(parent, name)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode & 0o700 & ~0o111 | 0o600)


def make_private(path: UPath) -> None:
    if is_local(path):
        os.chmod(path.path, 0o600)


def write_private_bytes(path: UPath, data: bytes) -> None:
    """Write a file owner-only, through a temporary name so readers never see half a file."""
    ensure_private_dir(path.parent)
    tmp = path.with_name(temp_name(path.name))
    tmp.write_bytes(data)
    make_private(tmp)
    replace_file(tmp, path)


def replace_file(src: UPath, dest: UPath) -> None:
    """Move the file ``src`` over ``dest`` (atomic on a local disk)."""
    if is_local(dest):
        os.replace(src.path, dest.path)
    else:
        src.rename(dest)


def write_private_json(path: UPath, payload: Any) -> None:
    write_private_bytes(path, json.dumps(payload, indent=2, sort_keys=True).encode() + b"\n")


def read_json(path: UPath) -> Any:
    return json.loads(path.read_bytes())


def slug(text: str) -> str:
    """A file-name-safe, stable name for a target URL (no secrets are ever in it)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:60]
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return f"{readable}-{digest}"


@dataclass(frozen=True)
class DataLayout:
    root: str
    district: str

    @property
    def base(self) -> UPath:
        return UPath(self.root) / "districts" / self.district

    def raw_dir(self, day: str) -> UPath:
        return self.base / "raw" / day

    @property
    def frames_base(self) -> UPath:
        return self.base / "frames"

    def frame_path(self, asset: str, day: str) -> UPath:
        """Where the Parquet IO manager stores an asset's frame for a date."""
        return self.frames_base / asset / f"{day}.parquet"

    def reports_dir(self, day: str) -> UPath:
        return self.base / "reports" / day

    def findings_path(self, day: str, stage: str) -> UPath:
        return self.base / "findings" / day / f"{stage}.json"

    def package_dir(self, day: str) -> UPath:
        return self.base / "packages" / day

    def package_path(self, day: str) -> UPath:
        return self.package_dir(day) / ZIP_NAME

    def summary_path(self, day: str) -> UPath:
        return self.package_dir(day) / "summary.json"

    def receipts_dir(self, name: str) -> UPath:
        """The delivery history of the target named ``name`` (delivery/receipts.py)."""
        return self.base / "receipts" / name

    def students_path(self, day: str) -> UPath:
        """The package's students (sourcedId, active, usernames…) for the identity guard."""
        return self.package_dir(day) / "students.arrow"


@dataclass(frozen=True)
class SnapshotFile:
    path: str  # relative to the snapshot folder
    size: int
    sha256: str


def snapshot_source(
    source_url: str, dest: UPath, storage_options: dict | None = None
) -> tuple[UPath, list[SnapshotFile]]:
    """Copy a source (a file or a folder at any fsspec URL) byte for byte under ``dest``.

    Returns the path to open the snapshot with (the copied file, or the copied folder) and the
    size and sha256 of every file copied. An existing snapshot for the date is replaced whole.
    ``storage_options``: for the source's filesystem (an sftp:// source's pinned host keys).
    A folder holding anything but regular files (a link leading out of it, a FIFO, a device:
    ``folder_files``) raises SourceUnreadable with its SRC-UNSAFE-ENTRY findings before
    anything is copied: such a file could be copied forever (``/dev/zero``) or block (a FIFO).
    """
    fs, src = fsspec.core.url_to_fs(source_url, **(storage_options or {}))
    if not fs.exists(src):
        raise FileNotFoundError(f"source not found: {source_url}")
    if fs.isdir(src):
        src = src.rstrip("/")
        sizes, refused = folder_files(fs, src, None)
        if refused:
            raise SourceUnreadable(_refused_message(redact_url(source_url), refused), refused)
    if dest.exists():
        dest.fs.rm(dest.path, recursive=True)
    ensure_private_dir(dest)
    if fs.isdir(src):
        target = dest / "source"
        rels = sorted(sizes)
        files = [f"{src}/{rel}" for rel in rels]
    else:
        target = dest
        files = [src]
        rels = [Path(src).name]
    copied = [copy_file(fs, path, target / rel) for path, rel in zip(files, rels, strict=True)]
    return (target if fs.isdir(src) else target / rels[0]), [
        SnapshotFile(f"{target.name}/{rel}" if fs.isdir(src) else rel, size, digest)
        for rel, (size, digest) in zip(rels, copied, strict=True)
    ]


def _refused_message(shown: str, refused: list) -> str:
    reasons = "; ".join(f.message for f in refused[:3])
    more = f" (and {len(refused) - 3} more)" if len(refused) > 3 else ""
    return f"{shown} was not copied: {reasons}{more}"


def copy_file(fs: fsspec.AbstractFileSystem, src: str, dest: UPath) -> tuple[int, str]:
    """Copy ``src`` of ``fs`` to ``dest`` owner-only, in chunks; (size, sha256). A local
    ``src`` is copied only if it is a regular file (SourceUnreadable otherwise, never a hang)."""
    ensure_private_dir(dest.parent)
    local = isinstance(fs, LocalFileSystem)
    if local and is_local(dest):
        # The kernel copies (sendfile), then the copy is hashed: half the time of reading,
        # hashing and writing each chunk here (109 MB: 0.2 s → 0.1 s).
        with open_regular(src, Path(src).name) as fin, open(dest.path, "wb") as fout:
            _sendfile(fin.fileno(), fout.fileno())
        make_private(dest)
        return dest.fs.size(dest.path), sha256_of(dest)
    digest = hashlib.sha256()
    size = 0
    opened = open_regular(src, Path(src).name) if local else fs.open(src, "rb")
    with opened as fin, dest.open("wb") as fout:
        while chunk := fin.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            fout.write(chunk)
    make_private(dest)
    return size, digest.hexdigest()


def _sendfile(fin: int, fout: int) -> None:
    """Copy an open regular file to the end by the kernel (as ``shutil.copyfile`` does)."""
    offset = 0
    while sent := os.sendfile(fout, fin, offset, SENDFILE_BLOCK):
        offset += sent


def sha256_of(path: UPath) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sweep_leftovers(base: UPath) -> list[str]:
    """Remove the temporary files and folders of dead runs under ``base`` (crash.py says
    which are dead); returns their paths relative to ``base``. A run killed while writing a
    package, a frame, a snapshot or a JSON record leaves one of these, often full of student
    data; every run sweeps its district's folder when it starts."""
    if not base.exists():
        return []
    fs, root = base.fs, base.path
    now = time.time()
    removed = []
    for path, info in sorted(fs.find(root, withdirs=True, detail=True).items()):
        name = posixpath.basename(path)
        if not name.startswith(".") or any(path.startswith(r + "/") for r in removed):
            continue
        if is_dead_leftover(name, _mtime(info), now=now) and fs.exists(path):
            fs.rm(path, recursive=info.get("type") == "directory")
            removed.append(path)
    return [posixpath.relpath(p, root) for p in removed]


def _mtime(info: dict) -> float:
    value = info.get("mtime") or info.get("LastModified") or info.get("updated") or 0
    return value.timestamp() if hasattr(value, "timestamp") else float(value)
