"""Deliver to a folder on this machine (the default outbox), with the same atomic sequence as
SFTP: owner-only temp file in the folder, fsync, size check, ``os.replace`` onto the final name.

One attempt only: local file-system errors are not transient, so retrying would only delay the
failure.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from naviance_pipeline.delivery.errors import DeliveryError
from naviance_pipeline.delivery.target import (
    DeliveryResult,
    OnAttempt,
    check_name_and_token,
    is_own_temp,
    temp_name,
    utc_now,
)
from naviance_pipeline.operations.crash import crashpoint

_CHUNK = 4 * 2**20
_FILE_MODE = 0o600  # the package holds student PII
_FOLDER_MODE = 0o700


class LocalFolderTarget:
    """A local outbox folder, created owner-only when missing."""

    upload_host = None  # a folder here: its own lock is enough

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        # abspath, not resolve(): keep a configured symlinked outbox as configured
        self.folder = Path(os.path.abspath(folder))
        self.history_key = self.folder.as_uri()  # fixed spelling (target.Target)

    def describe(self) -> str:
        return self.folder.as_uri()

    def deliver(
        self,
        local_path: str,
        *,
        name: str,
        token: str,
        on_attempt: OnAttempt | None = None,
    ) -> DeliveryResult:
        check_name_and_token(name, token)
        started_at = utc_now()
        try:
            size, sha256 = self._deliver(Path(local_path), name, token)
        except OSError as exc:
            error = DeliveryError(f"delivery to {self.describe()} failed: {exc}", attempts=1)
            if on_attempt is not None:
                on_attempt(1, error)
            raise error from exc
        except DeliveryError as exc:
            exc.attempts = 1
            if on_attempt is not None:
                on_attempt(1, exc)
            raise
        if on_attempt is not None:
            on_attempt(1, None)
        return DeliveryResult(
            target=self.history_key,
            remote_path=str(self.folder / name),
            bytes=size,
            sha256=sha256,
            attempts=1,
            started_at=started_at,
            ended_at=utc_now(),
            rename="os.replace",
        )

    def _deliver(self, source: Path, name: str, token: str) -> tuple[int, str]:
        self.folder.mkdir(mode=_FOLDER_MODE, parents=True, exist_ok=True)
        self._remove_stale(name)
        partial, final = self.folder / temp_name(name, token), self.folder / name
        try:
            size, sha256 = _copy_owner_only(source, partial)
            crashpoint("delivery:uploading")
            os.replace(partial, final)
        except BaseException:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            raise
        _fsync_folder(self.folder)  # make the rename itself durable
        final_size = final.stat().st_size
        if final_size != size:
            raise DeliveryError(f"{final} has {final_size} bytes after the rename, not {size}")
        return size, sha256

    def _remove_stale(self, name: str) -> None:
        """Partial files of earlier runs of ours; other files are left alone."""
        for entry in os.scandir(self.folder):
            if is_own_temp(entry.name, name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)


def _copy_owner_only(source: Path, destination: Path) -> tuple[int, str]:
    """Copy with mode 0600, hashing on the way (one read of the source); returns size, sha256."""
    digest = hashlib.sha256()
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    written = 0
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
    with open(source, "rb") as src:
        fd = os.open(destination, flags, _FILE_MODE)
        with open(fd, "wb") as dst:
            os.fchmod(fd, _FILE_MODE)  # O_CREAT's mode is masked by umask and ignored if it exists
            while count := src.readinto(buffer):
                digest.update(view[:count])
                dst.write(view[:count])
                written += count
            dst.flush()
            os.fsync(fd)
            expected, landed = os.fstat(src.fileno()).st_size, os.fstat(fd).st_size
    if not written == expected == landed:
        raise DeliveryError(
            f"copy of {source} is incomplete: read {written} of {expected} bytes, wrote {landed}"
        )
    return written, digest.hexdigest()


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
