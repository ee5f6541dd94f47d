"""Start and stop ``dagster dev`` (webserver, daemon, code server) on a free loopback port.

The environment is what ``make dev`` gives a person, pointed at temporary folders:
``NAVIANCE_HOME``, the district's source, partitions from 2026-01-01, and a ``DAGSTER_HOME``
holding the project's own ``dagster.yaml`` (telemetry off, the run queue, run monitoring).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from naviance_pipeline_tests.ui.graphql import LOCATION, location_status, mark_nux_seen

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PARTITIONS_START = "2026-01-01"


@dataclass(frozen=True)
class DagsterDev:
    url: str
    home: Path
    log: Path
    process: subprocess.Popen

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the services' output, for an assertion message."""
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dev_environment(
    home: Path, source: str | Path, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The caller's environment without any NAVIANCE_/DAGSTER_ setting, plus ours (and
    ``extra``, e.g. an SFTP delivery target)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NAVIANCE_", "DAGSTER_"))}
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    env.update(
        NAVIANCE_HOME=str(home),
        NAVIANCE_SOURCE_URL=str(source),
        NAVIANCE_PARTITIONS_START=PARTITIONS_START,
        DAGSTER_HOME=str(dagster_home),
    )
    env.update(extra or {})
    return env


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def wait_until_ready(dev: DagsterDev, timeout: float) -> None:
    """Until the webserver answers and our code location has loaded without error. ``timeout``
    only guards against a server that never comes up; it returns as soon as it is ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dev.process.poll() is not None:
            code = dev.process.returncode
            raise RuntimeError(f"dagster dev exited with {code}:\n{dev.log_tail()}")
        if _answers(dev.url):
            status, error = location_status(dev.url)
            if error:
                raise RuntimeError(f"code location {LOCATION} failed to load:\n{error[:3000]}")
            if status == "LOADED":
                return
        time.sleep(0.25)
    raise TimeoutError(f"dagster dev not ready after {timeout:.0f} s:\n{dev.log_tail()}")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop(process: subprocess.Popen, grace: float = 20) -> None:
    """Ctrl-C the whole process group (the webserver, daemon and code servers are children of
    ``dagster dev``), as a terminal does; kill whatever of it is left after the grace period."""
    deadline = time.monotonic() + grace
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    while _group_alive(process.pid) and time.monotonic() < deadline:
        process.poll()  # reap the leader so a finished group reads as gone
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@contextmanager
def dagster_dev(
    home: Path, source: str | Path, *, timeout: float = 300, env: dict[str, str] | None = None
) -> Iterator[DagsterDev]:
    """``dagster dev -w workspace.yaml`` on loopback, ready for a browser; stopped on exit."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = home / "dagster-dev.log"
    command = [
        str(BIN / "dagster"), "dev", "-w", str(REPO / "workspace.yaml"),
        "-h", "127.0.0.1", "-p", str(port),
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=home,  # nothing the services write lands in the work tree
            env=dev_environment(home, source, env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() reaches every child
        )
    dev = DagsterDev(url=f"http://127.0.0.1:{port}", home=home, log=log, process=process)
    try:
        wait_until_ready(dev, timeout)
        mark_nux_seen(dev.url)
        yield dev
    finally:
        stop(process)
