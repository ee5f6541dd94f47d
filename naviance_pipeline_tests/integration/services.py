"""Throw-away PostgreSQL and Redis servers on loopback, for the distributed-engine test.

Both come from Debian packages (``postgresql``, ``redis-server``; ``.ci/run`` installs them).
PostgreSQL refuses to run as root, so its cluster is created and started as the ``postgres``
system user in a private folder under /tmp (root's pytest folders are closed to other users).
Every process started here is stopped by its own process group id.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT = 120.0  # a hang guard for a server that never starts; the wait ends when it does


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin(tool: str) -> str | None:
    """A PostgreSQL server tool: on PATH, else the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which(tool)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"),
        key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0,
    )
    return candidates[-1] if candidates else None


def postgres_unavailable_reason() -> str | None:
    """Why a PostgreSQL server cannot be started here (None when it can)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "starting PostgreSQL as the postgres user needs root"
    for tool in ("initdb", "pg_ctl"):
        if postgres_bin(tool) is None:
            return f"PostgreSQL's {tool} is missing: apt-get install postgresql"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "there is no postgres system user: apt-get install postgresql"
    if shutil.which("runuser") is None:
        return "runuser is missing (util-linux)"
    try:
        import psycopg2  # noqa: F401 - the fixtures connect with it
    except ImportError:
        return "the Python package psycopg2 is missing"
    return None


def unavailable_reason() -> str | None:
    """Why PostgreSQL and Redis cannot be started here (None when they can)."""
    reason = postgres_unavailable_reason()
    if reason:
        return reason
    if shutil.which("redis-server") is None:
        return "redis-server is missing: apt-get install redis-server"
    for module in ("dagster_postgres", "celery", "psycopg2", "redis"):
        try:
            __import__(module)
        except ImportError:
            return f"the Python package {module} is missing (the deploy extra)"
    return None


def stop_process(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """Stop a process started with start_new_session=True, and its children, by group id."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


@dataclass
class PostgresServer:
    port: int = field(default_factory=free_port)
    user: str = "postgres"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16), repr=False)
    db_name: str = "dagster"
    folder: Path = field(init=False)

    def _as_postgres(self, *args: str) -> None:
        done = subprocess.run(
            ["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed: {done.stderr.strip()[-2000:]}")

    def start(self) -> PostgresServer:
        account = pwd.getpwnam("postgres")
        self.folder = Path(tempfile.mkdtemp(prefix="naviance-pg-"))
        os.chown(self.folder, account.pw_uid, account.pw_gid)
        pwfile = self.folder / "pw"
        pwfile.write_text(self.password + "\n")
        os.chown(pwfile, account.pw_uid, account.pw_gid)
        data = self.folder / "data"
        self._as_postgres(
            postgres_bin("initdb"), "-D", str(data), "-U", self.user, f"--pwfile={pwfile}",
            "-A", "scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        pwfile.unlink()
        # Durability is not the point of a test cluster: skip the fsyncs.
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._as_postgres(
            postgres_bin("pg_ctl"), "-D", str(data), "-l", str(self.folder / "log"),
            "-o", options, "-w", "-t", str(int(START_TIMEOUT)), "start",
        )  # fmt: skip
        try:
            self._create_database()
        except BaseException:
            self.stop()
            raise
        return self

    def _create_database(self) -> None:
        import psycopg2

        conn = psycopg2.connect(**self.connect_args("postgres"))
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
            with conn.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {self.db_name}")
        finally:
            conn.close()

    def connect_args(self, db_name: str | None = None) -> dict:
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": db_name or self.db_name,
        }

    def sessions(self) -> int:
        """Connections opened to the Dagster database so far (PostgreSQL 14+; a backend's
        count is published when it ends or within a second)."""
        import psycopg2

        conn = psycopg2.connect(**self.connect_args("postgres"))
        try:
            with conn.cursor() as cursor:
                cursor.execute(
                    "SELECT sessions FROM pg_stat_database WHERE datname = %s", (self.db_name,)
                )
                return int(cursor.fetchone()[0])
        finally:
            conn.close()

    @property
    def env(self) -> dict[str, str]:
        """The variables deploy/dagster.yaml reads."""
        return {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USERNAME": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.db_name,
        }

    def stop(self) -> None:
        try:
            self._as_postgres(
                postgres_bin("pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "stop"
            )
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class RedisServer:
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, folder: Path) -> RedisServer:
        command = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(folder),
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            command,
            stdout=(folder / "redis.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(folder / 'redis.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("redis-server did not answer PING")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
