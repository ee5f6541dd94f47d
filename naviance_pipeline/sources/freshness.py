"""Is the district's export new, and is it fresh? (no Dagster here)

The export at ``source_url`` (a file or a folder, local or at any fsspec URL, ``sftp://``
included) has a **version**: its content hash (the file's sha256; for a folder, the sha256 of
its files' relative paths and sha256s). Hashing a 1 GB export on every sensor tick would be
wasteful, so a **cheap look** comes first: the listing's sizes and modification times (and
ETags where the store gives them). While the look is unchanged the last version stands; only a
changed look reads the content again.

``sis_extract`` and the ``watch_sis_export`` sensor share one small state file per district
(``<data root>/districts/<id>/export-state.json``): the version last seen, when it was first
seen (so "unchanged for N days" survives restarts and works with either one alone), and the
last stale alert sent (so the two never send the same alert twice in a day).

An export unchanged for ``unchanged_days`` or whose newest file is older than
``max_age_hours`` is stale: ``SRC-STALE-EXPORT``, a warning, or an error when ``blocks``.
Its message names ages and limits only, never a file's content.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from dataclasses import dataclass
from datetime import datetime

import fsspec
from fsspec.implementations.local import LocalFileSystem
from upath import UPath

from naviance_pipeline.oneroster.findings import ERROR, WARNING, Finding, finding
from naviance_pipeline.oneroster.source import folder_files
from naviance_pipeline.operations.storage import SnapshotFile, read_json, write_private_json

STATE_FILE = "export-state.json"
STALE_RULE = "SRC-STALE-EXPORT"
BLOCK = 1 << 20  # bytes read at a time while hashing
DAY = 86400.0


@dataclass(frozen=True)
class Look:
    """What a listing tells without reading content: ``fingerprint`` changes when any file's
    size, modification time or ETag does (or a file comes or goes)."""

    fingerprint: str
    size: int
    modified: float | None  # the newest file's modification time (epoch seconds), if known
    files: dict[str, str]  # relative path -> full path on the store ("" for a single file)
    is_dir: bool


@dataclass(frozen=True)
class Limits:
    unchanged_days: float = 7.0  # 0: not checked
    max_age_hours: float = 48.0  # 0: not checked
    blocks: bool = False


@dataclass
class Freshness:
    """The export as last seen: its version, when that version was first seen, its newest
    file's modification time, and the ages derived at ``now``."""

    version: str
    fingerprint: str
    first_seen: float
    modified: float | None
    size: int
    now: float

    @property
    def unchanged_days(self) -> float:
        return max(0.0, (self.now - self.first_seen) / DAY)

    @property
    def age_hours(self) -> float | None:
        return None if self.modified is None else max(0.0, (self.now - self.modified) / 3600)

    def summary(self) -> dict:
        """The ages for metadata and the report (no path, no content)."""
        return {
            "version": self.version,
            "modified": _iso(self.modified),
            "first_seen": _iso(self.first_seen),
            "age_hours": None if self.age_hours is None else round(self.age_hours, 1),
            "unchanged_days": round(self.unchanged_days, 2),
            "bytes": self.size,
        }


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch).astimezone().isoformat()


def modified_time(info: dict) -> float | None:
    """A listing entry's modification time in epoch seconds, whatever the store calls it."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "modified", "created"):
        value = info.get(key)
        if value:
            if hasattr(value, "timestamp"):
                return float(value.timestamp())
            try:
                return float(value)
            except (TypeError, ValueError):
                continue
    return None


def _tag(info: dict) -> str:
    return str(info.get("ETag") or info.get("etag") or info.get("md5Hash") or "")


def look(url: str, storage_options: dict | None = None) -> Look:
    """The cheap look at the export: listing only, nothing read. FileNotFoundError when it is
    not there. A local folder is listed as ``sis_extract`` lists it (a FIFO or a link leading
    out of it is left out: it is never opened here)."""
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    info = fs.info(path)
    if info.get("type") != "directory":
        if isinstance(fs, LocalFileSystem) and not stat.S_ISREG(os.stat(path).st_mode):
            # A FIFO would block the reader, a device never end: never opened here.
            raise OSError(f"{os.path.basename(path)} is not a regular file")
        entries = {"": (path, info)}
    else:
        root = path.rstrip("/")
        if isinstance(fs, LocalFileSystem):
            sizes, _refused = folder_files(fs, root, None)
            entries = {rel: (f"{root}/{rel}", _local_info(f"{root}/{rel}")) for rel in sizes}
        else:
            found = fs.find(root, withdirs=False, detail=True)
            entries = {
                p[len(root) + 1 :]: (p, i) for p, i in found.items() if p.startswith(root + "/")
            }
    lines, times, total = [], [], 0
    for rel in sorted(entries):
        _, entry = entries[rel]
        size, when = int(entry.get("size") or 0), modified_time(entry)
        total += size
        if when is not None:
            times.append(when)
        lines.append(f"{rel}\0{size}\0{when}\0{_tag(entry)}")
    return Look(
        fingerprint=hashlib.sha256("\n".join(lines).encode()).hexdigest(),
        size=total,
        modified=max(times) if times else None,
        files={rel: p for rel, (p, _) in entries.items()},
        is_dir=info.get("type") == "directory",
    )


def _local_info(path: str) -> dict:
    st = os.stat(path)
    return {"size": st.st_size, "mtime": st.st_mtime}


def content_version(url: str, seen: Look, storage_options: dict | None = None) -> str:
    """The export's content hash: reads every file of ``seen`` once, a block at a time."""
    fs, _ = fsspec.core.url_to_fs(url, **(storage_options or {}))
    digests = []
    for rel in sorted(seen.files):
        digest = hashlib.sha256()
        with fs.open(seen.files[rel], "rb") as f:
            while block := f.read(BLOCK):
                digest.update(block)
        digests.append((rel, digest.hexdigest()))
    return version_of(digests, seen.is_dir)


def version_of(digests: list[tuple[str, str]], is_dir: bool) -> str:
    """A file's version is its sha256; a folder's, the sha256 of its (relative path, sha256)
    lines in path order."""
    if not is_dir:
        return digests[0][1] if digests else ""
    lines = "".join(f"{rel}\0{sha}\n" for rel, sha in sorted(digests))
    return hashlib.sha256(lines.encode()).hexdigest()


def snapshot_version(files: list[SnapshotFile], seen: Look) -> str:
    """The version of the export ``sis_extract`` just copied, from the sha256s it computed while
    copying (no second read). A folder's files sit under one prefix in the snapshot
    (``source/``, ``export/source/``): each listed file is matched by prefix + its relative
    path. Empty when the copy does not match the listing (the export changed in between)."""
    if not seen.is_dir:
        return files[0].sha256 if len(files) == 1 else ""
    by_path = {f.path: f.sha256 for f in files}
    prefixes = {
        f.path[: len(f.path) - len(rel)]
        for f in files
        for rel in seen.files
        if f.path.endswith("/" + rel)
    }
    for prefix in sorted(prefixes):
        if len(files) == len(seen.files) and all(prefix + rel in by_path for rel in seen.files):
            return version_of([(rel, by_path[prefix + rel]) for rel in seen.files], True)
    return ""


def state_path(base: UPath) -> UPath:
    return base / STATE_FILE


def load_state(path: UPath) -> dict:
    try:
        state = read_json(path) if path.exists() else {}
    except (OSError, ValueError):
        state = {}  # a damaged state file only resets "first seen"
    return state if isinstance(state, dict) else {}


def observe(
    url: str,
    state_file: UPath,
    storage_options: dict | None = None,
    *,
    now: float | None = None,
    version: str | None = None,
    seen: Look | None = None,
) -> Freshness:
    """Look at the export, hash it only when the look changed (or take ``version``, already
    known from a copy), and record it in the state file: a new version is first seen ``now``."""
    now = time.time() if now is None else now
    seen = seen or look(url, storage_options)
    state = load_state(state_file)
    if not version:
        same_look = state.get("fingerprint") == seen.fingerprint and state.get("version")
        version = state["version"] if same_look else content_version(url, seen, storage_options)
    first_seen = state.get("first_seen") if state.get("version") == version else None
    result = Freshness(
        version=version,
        fingerprint=seen.fingerprint,
        first_seen=float(first_seen) if first_seen is not None else now,
        modified=seen.modified,
        size=seen.size,
        now=now,
    )
    if (state.get("version"), state.get("fingerprint")) != (version, seen.fingerprint):
        write_private_json(
            state_file,
            {**state, "version": version, "fingerprint": seen.fingerprint,
             "first_seen": result.first_seen},
        )  # fmt: skip
    return result


def stale_finding(seen: Freshness, limits: Limits) -> Finding | None:
    """SRC-STALE-EXPORT when the export is past a limit (ages and limits only)."""
    reasons = []
    if limits.unchanged_days and seen.unchanged_days >= limits.unchanged_days:
        reasons.append(
            f"its content has not changed for {seen.unchanged_days:.1f} days "
            f"(limit {limits.unchanged_days:g})"
        )
    age = seen.age_hours
    if limits.max_age_hours and age is not None and age >= limits.max_age_hours:
        reasons.append(
            f"its newest file was modified {age:.0f} hours ago (limit {limits.max_age_hours:g})"
        )
    if not reasons:
        return None
    return finding(
        STALE_RULE,
        "the SIS export looks stale: " + " and ".join(reasons) + "; check the export job",
        severity=ERROR if limits.blocks else WARNING,
    )


def claim_alert(state_file: UPath, seen: Freshness, day: str) -> bool:
    """True once per version and date: the caller sends the stale alert (the sensor and
    ``sis_extract`` both ask; only the first gets True)."""
    state = load_state(state_file)
    key = f"{seen.version}|{day}"
    if state.get("alerted") == key:
        return False
    write_private_json(state_file, {**state, "alerted": key})
    return True


def age_text(seen: Freshness) -> str:
    """The ages for an alert's summary: numbers only."""
    parts = [f"unchanged for {seen.unchanged_days:.1f} days"]
    if seen.age_hours is not None:
        parts.append(f"newest file modified {seen.age_hours:.0f} hours ago")
    return ", ".join(parts)
