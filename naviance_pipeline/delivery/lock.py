"""One delivery at a time per target: a lock held across processes, never wedged by the dead.

Delivery is one critical section per target: decide (guards, stale date) → upload → receipt.
The lock is ``flock`` on a file: the kernel releases it the moment its holder dies, whatever
killed it (``kill -9``, the out-of-memory killer), so a dead run can never hold it. The file
also records who holds it (run, process, host, since when) for the log lines of whoever waits,
and a record found on taking the lock is the mark of a holder that died inside its critical
section: it is logged as reclaimed.

A waiter polls once a second (no busy wait) and gives up after ``timeout`` seconds with
``DeliveryLockTimeout``. ``flock`` holds across the processes of one machine and, on Linux,
across machines sharing the data root over NFS (the kernel maps it to NFS byte-range locks).
A data root on an object store (``s3://``, ``gs://``…) has no such lock: the lock file then
lives in this machine's temporary folder, so it orders the deliveries of one machine only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from naviance_pipeline.delivery.errors import DeliveryError
from naviance_pipeline.operations.storage import DataLayout, is_local

POLL_SECONDS = 1.0


class DeliveryLockTimeout(DeliveryError):
    """Another delivery to the same target held the lock for longer than the wait allowed."""


def lock_path(layout: DataLayout, key: str) -> Path:
    """The lock file of a target's history: in its receipts folder on a local data root,
    in this machine's temporary folder otherwise."""
    folder = layout.receipts_dir(key)
    if is_local(folder):
        return Path(folder.path) / ".lock"
    digest = hashlib.sha256(f"{layout.root}\0{layout.district}\0{key}".encode()).hexdigest()
    return Path(tempfile.gettempdir(), f"naviance-locks-{os.getuid()}", f"{digest[:24]}.lock")


@contextlib.contextmanager
def delivery_lock(
    path: Path,
    *,
    run_id: str,
    timeout: float,
    log: Callable[[str], None],
    what: str = "this target",
) -> Iterator[None]:
    """Hold the delivery lock at ``path`` for the block; see the module docstring."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        _acquire(fd, timeout=timeout, log=log, what=what)
        previous = _read(fd)
        if previous:
            log(
                f"reclaimed the delivery lock of {what} from {_holder_text(previous)}, "
                "which ended without releasing it (killed during its delivery); its upload "
                "may or may not have landed and is treated as delivered"
            )
        _write(fd, {
            "run_id": run_id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        })  # fmt: skip
        try:
            yield
        finally:
            _write(fd, None)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, *, timeout: float, log: Callable[[str], None], what: str) -> None:
    deadline = time.monotonic() + max(0.0, timeout)
    announced = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
        holder = _holder_text(_read(fd))
        left = deadline - time.monotonic()
        if left <= 0:
            raise DeliveryLockTimeout(
                f"another delivery to {what} ({holder}) held the delivery lock for longer "
                f"than the {timeout:g} s this delivery may wait; nothing was sent. Run it "
                "again once that delivery ends (the wait is lock_timeout_seconds of the "
                "delivery resource, NAVIANCE_DELIVERY_LOCK_TIMEOUT)"
            )
        if not announced:
            log(f"waiting for the delivery lock of {what}, held by {holder} (at most {left:.0f} s)")
            announced = True
        time.sleep(min(POLL_SECONDS, left))


def _read(fd: int) -> dict | None:
    os.lseek(fd, 0, os.SEEK_SET)
    data = os.read(fd, 4096)
    try:
        return json.loads(data) if data.strip() else None
    except ValueError:
        return None


def _write(fd: int, holder: dict | None) -> None:
    os.ftruncate(fd, 0)
    if holder is not None:
        os.pwrite(fd, json.dumps(holder).encode(), 0)
    os.fsync(fd)


def _holder_text(holder: dict | None) -> str:
    if not holder:
        return "another process"
    return (
        f"run {holder.get('run_id')} (pid {holder.get('pid')} on {holder.get('host')}, "
        f"since {holder.get('since')})"
    )
