"""Surviving a killed run: temporary names that say who wrote them, and the sweep of a dead
run's leftovers.

A run can die anywhere (``kill -9``, the out-of-memory killer, a machine that loses power).
Every temporary file or folder the pipeline writes is named
``.<final name>.<host>~<pid>~<start>.<random>.tmp``: the host, process id and process start
time of its writer. :func:`is_dead_leftover` tells a leftover of a dead process (remove it)
from the work of a live one (leave it); a temporary name of another machine, or one without an
owner (written before this naming), counts as dead once it is older than
``FOREIGN_TEMP_AGE_SECONDS``, longer than any run lasts.

``crashpoint(name)`` is the test seam of the crash tests: with ``NAVIANCE_CRASH_AT=<name>`` in
the environment the process kills itself with SIGKILL there, exactly as the out-of-memory
killer would; with ``NAVIANCE_PAUSE_AT=<name>=<seconds>`` it sleeps there (a slow step, for the
tests of what runs at the same time). Unset (always, outside the tests), it costs two
dictionary lookups.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time
import uuid

CRASH_ENV = "NAVIANCE_CRASH_AT"
PAUSE_ENV = "NAVIANCE_PAUSE_AT"
FOREIGN_TEMP_AGE_SECONDS = 24 * 3600
_TEMP = re.compile(
    r"^\.(?P<name>.+?)\.(?:(?P<host>[A-Za-z0-9-]+)~(?P<pid>\d+)~(?P<start>\d+)\.)?"
    r"(?P<random>[0-9a-f]{8,32}\.)?tmp$"
)


def crashpoint(name: str) -> None:
    """Die here, by SIGKILL, when ``NAVIANCE_CRASH_AT`` names this point; sleep here when
    ``NAVIANCE_PAUSE_AT`` is ``<this point>=<seconds>`` (tests only)."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    point, _, seconds = os.environ.get(PAUSE_ENV, "").rpartition("=")
    if point == name:
        time.sleep(float(seconds))


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]+", "-", socket.gethostname()).strip("-")[:40] or "host"


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), None when it is gone (or
    on a system without /proc, where no leftover of this host is ever taken for dead)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # The command name (field 2) may hold spaces and parentheses: split after it.
            return int(stat.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def owner() -> str:
    """This process as a temporary name's owner: ``<host>~<pid>~<start>``."""
    pid = os.getpid()
    return f"{_host()}~{pid}~{_start_ticks(pid) or 0}"


def temp_name(name: str) -> str:
    """A hidden temporary name for writing ``name`` whole, owned by this process."""
    return f".{name}.{owner()}.{uuid.uuid4().hex[:12]}.tmp"


def is_temp_name(name: str) -> bool:
    return _TEMP.match(name) is not None


def owner_alive(host: str, pid: int, start: int) -> bool:
    """Whether the process that wrote a temporary name on this host still runs (the same
    process: a reused pid has another start time)."""
    if host != _host():
        return True  # unknown: another machine's leftovers are judged by age
    ticks = _start_ticks(pid)
    if ticks is None:
        return not os.path.isdir("/proc")  # no /proc: never take a local owner for dead
    return ticks == start or start == 0


def is_dead_leftover(name: str, mtime: float, *, now: float | None = None) -> bool:
    """``name`` is one of our temporary names whose writer is gone."""
    match = _TEMP.match(name)
    if match is None:
        return False
    old = (now if now is not None else time.time()) - mtime > FOREIGN_TEMP_AGE_SECONDS
    if match["host"] is None or match["host"] != _host():
        return old
    return not owner_alive(match["host"], int(match["pid"]), int(match["start"]))
