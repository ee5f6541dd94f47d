"""Delivery locks: one delivery at a time per target, N uploads at a time per SFTP host, held
across processes (with PostgreSQL, across machines) and never wedged by the dead.

Two locks guard a delivery (service.py). The target's lock covers its whole critical section
(decide → upload → receipt). Inside it, the upload alone takes one of the
``NAVIANCE_UPLOADS_PER_HOST`` slots of the host it goes to: hundreds of districts sending to one
server wait for each other only while one of them uploads (docs/upload-slots.md).

A lock is a name with N places, its slots (a target's lock has one). ``NAVIANCE_LOCKS_URL``
chooses who holds them:

- blank: files and ``flock``, one file per slot. The kernel releases a ``flock`` the moment its
  holder dies, whatever killed it (``kill -9``, the out-of-memory killer). It holds across the
  processes of one machine and, on Linux, across machines sharing the data root over NFS (the
  kernel maps it to NFS byte-range locks). A data root on an object store (``s3://``,
  ``gs://``…) has no such lock: the files then live in this machine's temporary folder, so they
  order the deliveries of one machine only.
- ``postgresql://user@host:port/database``: PostgreSQL session advisory locks
  (``pg_try_advisory_lock(<32-bit hash of the name>, <slot>)``) on a connection held for the
  block. The server releases them when that connection ends: its process died, or its machine
  vanished (TCP keepalives notice within about a minute). They hold across machines, whatever
  the data root. The password is the secret ``NAVIANCE_LOCKS_PASSWORD`` (or libpq's
  ``PGPASSWORD`` / ``.pgpass``).

Each taken slot records who holds it (run, process, host, since when): in its file, or as a row
of the table ``naviance_lock_holders`` (created if missing), for the log line of whoever waits.
A record found on taking a slot is the mark of a holder that died inside it: logged as
reclaimed. A waiter tries every slot without blocking, once a second (no busy wait), and gives
up after ``timeout`` seconds with ``DeliveryLockTimeout`` (``UploadSlotTimeout`` for a host).
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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit

from upath import UPath

from naviance_pipeline.delivery.errors import DeliveryError
from naviance_pipeline.operations.storage import DataLayout, is_local

POLL_SECONDS = 1.0
LOCKS_URL_ENV = "NAVIANCE_LOCKS_URL"
LOCKS_PASSWORD_ENV = "NAVIANCE_LOCKS_PASSWORD"
UPLOADS_ENV = "NAVIANCE_UPLOADS_PER_HOST"
HOLDERS_TABLE = "naviance_lock_holders"
# A vanished machine's connection is dropped by the server after idle + interval * count s.
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
CONNECT_TIMEOUT = 30

Log = Callable[[str], None]


class DeliveryLockTimeout(DeliveryError):
    """Another delivery to the same target held the lock for longer than the wait allowed."""


class UploadSlotTimeout(DeliveryLockTimeout):
    """Other deliveries held every upload slot of the host for longer than the wait allowed."""


# --- what is locked, and how its waits are told ----------------------------------------------


@dataclass(frozen=True)
class _TargetWords:
    what: str

    def waiting(self, holders: str, left: float) -> str:
        return (
            f"waiting for the delivery lock of {self.what}, held by {holders} "
            f"(at most {left:.0f} s)"
        )

    def reclaimed(self, holder: str) -> str:
        return (
            f"reclaimed the delivery lock of {self.what} from {holder}, which ended without "
            "releasing it (killed during its delivery); its upload may or may not have landed "
            "and is treated as delivered"
        )

    def timed_out(self, holders: str, timeout: float) -> DeliveryLockTimeout:
        return DeliveryLockTimeout(
            f"another delivery to {self.what} ({holders}) held the delivery lock for longer "
            f"than the {timeout:g} s this delivery may wait; nothing was sent. Run it "
            "again once that delivery ends (the wait is lock_timeout_seconds of the "
            "delivery resource, NAVIANCE_DELIVERY_LOCK_TIMEOUT)"
        )


@dataclass(frozen=True)
class _HostWords:
    host: str
    slots: int

    def waiting(self, holders: str, left: float) -> str:
        return (
            f"waiting for an upload slot of host {self.host} ({self.slots} at a time, "
            f"{UPLOADS_ENV}), held by {holders} (at most {left:.0f} s)"
        )

    def reclaimed(self, holder: str) -> str:
        return (
            f"reclaimed an upload slot of host {self.host} from {holder}, which ended without "
            "releasing it (killed during its upload)"
        )

    def timed_out(self, holders: str, timeout: float) -> DeliveryLockTimeout:
        return UploadSlotTimeout(
            f"the upload slots of host {self.host} ({self.slots} at a time, {UPLOADS_ENV}) "
            f"stayed taken by {holders} for longer than the {timeout:g} s this delivery may "
            "wait; nothing was sent. Run it again later (the wait is "
            "NAVIANCE_DELIVERY_LOCK_TIMEOUT; raise the slots only with Naviance's agreement)"
        )


class _Words(Protocol):
    def waiting(self, holders: str, left: float) -> str: ...
    def reclaimed(self, holder: str) -> str: ...
    def timed_out(self, holders: str, timeout: float) -> DeliveryLockTimeout: ...


@dataclass(frozen=True)
class Lock:
    """One lock: its name (the same on every machine sharing it: PostgreSQL's key), its slots
    (how many may hold it at once), the file backend's file per slot, and its log lines."""

    name: str
    files: tuple[Path, ...]
    words: _Words

    @property
    def slots(self) -> int:
        return len(self.files)


def lock_path(layout: DataLayout, key: str) -> Path:
    """The lock file of a target's history: in its receipts folder on a local data root,
    in this machine's temporary folder otherwise."""
    folder = layout.receipts_dir(key)
    if is_local(folder):
        return Path(folder.path) / ".lock"
    digest = hashlib.sha256(f"{layout.root}\0{layout.district}\0{key}".encode()).hexdigest()
    return _machine_folder() / f"{digest[:24]}.lock"


def target_lock(layout: DataLayout, key: str, what: str) -> Lock:
    """The lock of the target whose history is ``key``: one delivery at a time."""
    name = json.dumps(["target", layout.root, layout.district, key])
    return Lock(name, (lock_path(layout, key),), _TargetWords(what))


def host_slots(layout: DataLayout, host: str, slots: int) -> Lock:
    """The ``slots`` upload slots of an SFTP host, shared by every district and target: files
    under ``<data root>/locks/hosts/`` on a local data root (outside any district), in this
    machine's temporary folder otherwise."""
    if slots < 1:  # the setting is checked at load; a Launchpad override is not
        raise DeliveryError(f"{UPLOADS_ENV} must be 1 or more, not {slots}; nothing was sent")
    host = host.lower()
    digest = hashlib.sha256(host.encode()).hexdigest()[:24]
    root = UPath(layout.root)
    folder = Path(root.path, "locks") if is_local(root) else _machine_folder()
    files = tuple(folder / "hosts" / f"{digest}.{i}.lock" for i in range(slots))
    return Lock(json.dumps(["host", host]), files, _HostWords(host, slots))


def _machine_folder() -> Path:
    return Path(tempfile.gettempdir(), f"naviance-locks-{os.getuid()}")


# --- holding a lock, whatever the backend ----------------------------------------------------


class _Session(Protocol):
    """One lock's hold on a backend: take or let go of a slot, read and write its record."""

    def take(self, slot: int) -> bool: ...
    def record(self, slot: int) -> dict | None: ...
    def write(self, slot: int, holder: dict) -> None: ...
    def let_go(self, slot: int) -> None: ...  # clears the record, then releases the slot
    def holders(self) -> list[dict]: ...
    def close(self) -> None: ...


class Backend(Protocol):
    def open(self, lock: Lock) -> _Session: ...


@contextlib.contextmanager
def hold(backend: Backend, lock: Lock, *, run_id: str, timeout: float, log: Log) -> Iterator[float]:
    """Hold one slot of ``lock`` for the block; yields the seconds waited for it. See the
    module docstring."""
    session = backend.open(lock)
    try:
        slot, waited = _acquire(session, lock, timeout=timeout, log=log)
        previous = session.record(slot)
        if previous:
            log(lock.words.reclaimed(_holder_text(previous)))
        session.write(slot, {
            "run_id": run_id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
        })  # fmt: skip
        try:
            yield waited
        finally:
            session.let_go(slot)
    finally:
        session.close()


def _acquire(session: _Session, lock: Lock, *, timeout: float, log: Log) -> tuple[int, float]:
    start = time.monotonic()
    deadline = start + max(0.0, timeout)
    announced = False
    while True:
        for slot in range(lock.slots):
            if session.take(slot):
                return slot, time.monotonic() - start
        holders = " and ".join(_holder_text(h) for h in session.holders()) or _holder_text(None)
        left = deadline - time.monotonic()
        if left <= 0:
            raise lock.words.timed_out(holders, timeout)
        if not announced:
            log(lock.words.waiting(holders, left))
            announced = True
        time.sleep(min(POLL_SECONDS, left))


def _holder_text(holder: dict | None) -> str:
    if not holder:
        return "another process"
    return (
        f"run {holder.get('run_id')} (pid {holder.get('pid')} on {holder.get('host')}, "
        f"since {holder.get('since')})"
    )


def locks_backend(url: str) -> Backend:
    """The backend ``NAVIANCE_LOCKS_URL`` names: files when blank, else PostgreSQL."""
    if not url.strip():
        return FILES
    try:
        return PostgresLocks(check_locks_url(url))
    except ValueError as exc:  # a Launchpad override: settings check the variable at load
        raise DeliveryError(f"{LOCKS_URL_ENV}: {exc}; nothing was sent") from None


def delivery_lock(
    path: Path, *, run_id: str, timeout: float, log: Log, what: str = "this target"
) -> contextlib.AbstractContextManager[float]:
    """Hold the file lock at ``path`` (one slot) for the block."""
    lock = Lock(str(path), (path,), _TargetWords(what))
    return hold(FILES, lock, run_id=run_id, timeout=timeout, log=log)


def upload_slot(
    backend: Backend,
    layout: DataLayout,
    host: str | None,
    slots: int,
    *,
    run_id: str,
    timeout: float,
    log: Log,
) -> contextlib.AbstractContextManager[float]:
    """Hold one of the ``slots`` upload slots of ``host`` for the block (nothing to hold for a
    target without a host: a folder); yields the seconds waited."""
    if host is None:
        return contextlib.nullcontext(0.0)
    lock = host_slots(layout, host, slots)
    return hold(backend, lock, run_id=run_id, timeout=timeout, log=log)


# --- files and flock -------------------------------------------------------------------------


class _Files:
    def open(self, lock: Lock) -> _FileSession:
        return _FileSession(lock.files)


FILES = _Files()


class _FileSession:
    def __init__(self, files: tuple[Path, ...]) -> None:
        self.fds: list[int] = []
        for path in files:
            _private_folder(path.parent)
            self.fds.append(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))

    def take(self, slot: int) -> bool:
        try:
            fcntl.flock(self.fds[slot], fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            return False

    def record(self, slot: int) -> dict | None:
        return _read(self.fds[slot])

    def write(self, slot: int, holder: dict) -> None:
        _write(self.fds[slot], holder)

    def let_go(self, slot: int) -> None:
        _write(self.fds[slot], None)
        fcntl.flock(self.fds[slot], fcntl.LOCK_UN)

    def holders(self) -> list[dict]:
        return [h for h in map(_read, self.fds) if h]

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)


def _private_folder(folder: Path) -> None:
    """``folder`` and its missing parents, each created owner-only."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)


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


# --- PostgreSQL advisory locks ---------------------------------------------------------------

_CREATE = f"""CREATE TABLE IF NOT EXISTS {HOLDERS_TABLE} (
    name text NOT NULL, slot integer NOT NULL, run_id text, pid integer, host text, since text,
    PRIMARY KEY (name, slot))"""


def check_locks_url(url: str) -> str:
    """``url`` when it is blank or ``postgresql://user@host[:port]/database`` without a
    password; ValueError otherwise (never echoing the URL, which may hold one)."""
    url = url.strip()
    if not url:
        return url
    parts = urlsplit(url)
    if parts.scheme != "postgresql":
        raise ValueError(
            f"must be blank (file locks) or postgresql://user@host:port/database, not a "
            f"{parts.scheme or 'plain path'!r} URL"
        )
    if parts.password is not None or any(
        "pass" in key.lower() for key, _ in parse_qsl(parts.query)
    ):
        raise ValueError(
            f"the URL must not contain a password: set the secret {LOCKS_PASSWORD_ENV} "
            "(or PGPASSWORD, or a .pgpass file)"
        )
    if not parts.hostname or not parts.path.strip("/"):
        raise ValueError("must name a host and a database: postgresql://user@host:port/database")
    return url


def _key(name: str) -> int:
    """A lock name as PostgreSQL's first advisory key: a signed 32-bit hash."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big", signed=True)


@dataclass(frozen=True)
class PostgresLocks:
    url: str

    def open(self, lock: Lock) -> _PgSession:
        try:
            import psycopg
        except ModuleNotFoundError:
            raise DeliveryError(
                f"{LOCKS_URL_ENV} names PostgreSQL, whose driver (psycopg) is not installed: "
                "pip install 'naviance_pipeline[postgres]'; nothing was sent"
            ) from None
        password = os.environ.get(LOCKS_PASSWORD_ENV)
        try:
            conn = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT,
                application_name="naviance-pipeline locks",
                **KEEPALIVES,
                **({"password": password} if password else {}),
            )
        except psycopg.Error as exc:
            raise self.failed(exc) from None
        session = _PgSession(self, conn, lock.name)
        try:
            session.setup()
        except BaseException:
            conn.close()
            raise
        return session

    def failed(self, exc: Exception) -> DeliveryError:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return DeliveryError(
            f"the locks database {self.url} ({LOCKS_URL_ENV}) failed: {first}; nothing was sent"
        )


class _PgSession:
    def __init__(self, backend: PostgresLocks, conn, name: str) -> None:
        self.backend, self.conn, self.name, self.key = backend, conn, name, _key(name)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        import psycopg

        try:
            yield
        except psycopg.Error as exc:
            raise self.backend.failed(exc) from None

    def _one(self, sql: str, args: tuple) -> tuple | None:
        with self._errors():
            return self.conn.execute(sql, args).fetchone()

    def setup(self) -> None:
        """The holders' table, created once (creators serialized: CREATE TABLE IF NOT EXISTS
        is not safe against a concurrent one)."""
        if self._one("SELECT to_regclass(%s::text)", (HOLDERS_TABLE,))[0] is None:
            with self._errors(), self.conn.transaction():
                self.conn.execute(
                    "SELECT pg_advisory_xact_lock(%s::int4, -1)", (_key(HOLDERS_TABLE),)
                )
                self.conn.execute(_CREATE)

    def take(self, slot: int) -> bool:
        sql = "SELECT pg_try_advisory_lock(%s::int4, %s::int4)"
        return bool(self._one(sql, (self.key, slot))[0])

    def record(self, slot: int) -> dict | None:
        row = self._one(
            f"SELECT run_id, pid, host, since FROM {HOLDERS_TABLE} WHERE name = %s AND slot = %s",
            (self.name, slot),
        )
        return dict(zip(("run_id", "pid", "host", "since"), row, strict=True)) if row else None

    def write(self, slot: int, holder: dict) -> None:
        self._one(
            f"INSERT INTO {HOLDERS_TABLE} (name, slot, run_id, pid, host, since) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (name, slot) DO UPDATE SET "
            "run_id = excluded.run_id, pid = excluded.pid, host = excluded.host, "
            "since = excluded.since RETURNING slot",
            (self.name, slot, holder["run_id"], holder["pid"], holder["host"], holder["since"]),
        )

    def let_go(self, slot: int) -> None:
        # A lost connection has already released the lock (its record stays: reclaimed later).
        with contextlib.suppress(DeliveryError):
            sql = f"DELETE FROM {HOLDERS_TABLE} WHERE name = %s AND slot = %s RETURNING slot"
            self._one(sql, (self.name, slot))
            self._one("SELECT pg_advisory_unlock(%s::int4, %s::int4)", (self.key, slot))

    def holders(self) -> list[dict]:
        with self._errors():
            rows = self.conn.execute(
                f"SELECT run_id, pid, host, since FROM {HOLDERS_TABLE} WHERE name = %s "
                "ORDER BY slot",
                (self.name,),
            ).fetchall()
        return [dict(zip(("run_id", "pid", "host", "since"), r, strict=True)) for r in rows]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
