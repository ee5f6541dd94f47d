"""Fixtures for delivery tests: the session-wide loopback OpenSSH server, a fresh remote folder
per test (tests sharing the server never see each other's files) and a concurrent reader."""

from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path

import pytest

from naviance_pipeline_tests.sshd_server import SSHDServer


@pytest.fixture
def remote_dir(sftp_server: SSHDServer, request: pytest.FixtureRequest) -> tuple[Path, str]:
    """(local path, remote path) of an empty folder inside the server's upload/ folder."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)[:80]
    return sftp_server.make_remote_dir(name)


class ConcurrentReader:
    """Reads ``path`` over and over in a thread while the block runs; ``hashes`` holds the
    sha256 of every read ("missing" when absent), so a test can prove a reader only ever saw
    a complete old or new file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.hashes: list[str] = []
        self._stop = threading.Event()
        self._first = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.hashes.append(self._read())
            self._first.set()

    def _read(self) -> str:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except FileNotFoundError:
            return "missing"

    def __enter__(self) -> ConcurrentReader:
        self._thread.start()
        assert self._first.wait(5), "the reader never read the file"
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.hashes.append(self._read())


@pytest.fixture
def concurrent_reader() -> type[ConcurrentReader]:
    return ConcurrentReader
