"""SFTP delivery against a real OpenSSH sshd on loopback (marked ``sftp``), plus the URL and
configuration checks that need no server."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import asyncssh
import pytest

from naviance_pipeline.delivery import sftp as sftp_module
from naviance_pipeline.delivery.hostkey import fingerprint, known_hosts_line
from naviance_pipeline.delivery.sftp import SftpTarget
from naviance_pipeline.delivery.target import (
    AuthenticationFailed,
    DeliveryError,
    HostKeyMismatch,
    RemoteFolderMissing,
    RetryOptions,
    SftpCredentials,
    TransientDeliveryError,
    target_from_url,
)
from naviance_pipeline_tests.sshd_server import SSHDServer

NAME = "NavianceOneRoster.zip"
FAST = RetryOptions(attempts=3, backoff_base=0.05, backoff_cap=0.2, connect_timeout=5.0)
sftp = pytest.mark.sftp


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _payload(path: Path, size: int, seed: bytes) -> str:
    """A file of ``size`` bytes (a random MiB repeated, cheap to make); returns its sha256."""
    block = hashlib.sha256(seed).digest() + os.urandom(2**20 - 32)
    with path.open("wb") as handle:
        for offset in range(0, size, len(block)):
            handle.write(block[: size - offset])
    return _sha256(path)


def _target(
    server: SSHDServer, remote: str, retry: RetryOptions = FAST, **credentials: str
) -> SftpTarget:
    credentials.setdefault("known_hosts", server.known_hosts_text)
    url = f"sftp://{server.user}@{server.host}:{server.port}{remote}"
    target = target_from_url(url, SftpCredentials(**credentials), retry)
    assert isinstance(target, SftpTarget)
    return target


class _Attempts(list):
    def __call__(self, attempt: int, error: BaseException | None) -> None:
        self.append((attempt, error))


# --- logins and the delivered bytes ------------------------------------------------------------


@sftp
def test_password_login_delivers_exact_bytes(sftp_server, remote_dir, tmp_path):
    local_dir, remote = remote_dir
    sha = _payload(tmp_path / "pkg.zip", 3 * 2**20 + 17, b"password")
    attempts = _Attempts()

    result = _target(sftp_server, remote, password=sftp_server.password).deliver(
        str(tmp_path / "pkg.zip"), name=NAME, token="run-1", on_attempt=attempts
    )

    assert _sha256(local_dir / NAME) == sha == result.sha256
    assert result.bytes == 3 * 2**20 + 17
    assert result.remote_path == f"{remote}/{NAME}"
    assert result.target == f"sftp://{sftp_server.user}@127.0.0.1:{sftp_server.port}{remote}"
    assert (result.attempts, result.rename) == (1, "posix-rename")
    assert attempts == [(1, None)]
    assert os.listdir(local_dir) == [NAME]


@sftp
@pytest.mark.parametrize("how", ["key_text", "key_file"])
def test_key_login_delivers(sftp_server, remote_dir, tmp_path, how):
    local_dir, remote = remote_dir
    sha = _payload(tmp_path / "pkg.zip", 100_000, b"key")
    key = (
        {"private_key": sftp_server.client_key_text}
        if how == "key_text"
        else {"private_key_path": sftp_server.client_key_path}
    )

    result = _target(sftp_server, remote, **key).deliver(
        str(tmp_path / "pkg.zip"), name=NAME, token="run-1"
    )

    assert _sha256(local_dir / NAME) == sha == result.sha256


@sftp
def test_encrypted_key_with_passphrase_logs_in(sftp_server, remote_dir, tmp_path):
    local_dir, remote = remote_dir
    key = asyncssh.generate_private_key("ssh-ed25519")
    sftp_server.add_authorized_key(key.export_public_key().decode())
    encrypted = key.export_private_key(
        "openssh", passphrase="s3cret-phrase", rounds=1, ignore_few_rounds=True
    ).decode()
    sha = _payload(tmp_path / "pkg.zip", 50_000, b"encrypted")

    result = _target(
        sftp_server, remote, private_key=encrypted, passphrase="s3cret-phrase"
    ).deliver(str(tmp_path / "pkg.zip"), name=NAME, token="run-1")

    assert _sha256(local_dir / NAME) == sha == result.sha256


@sftp
def test_encrypted_key_with_wrong_passphrase_fails_before_connecting(sftp_server, tmp_path):
    key = asyncssh.generate_private_key("ssh-ed25519")
    encrypted = key.export_private_key(
        "openssh", passphrase="right", rounds=1, ignore_few_rounds=True
    ).decode()
    (tmp_path / "pkg.zip").write_bytes(b"x")

    with pytest.raises(DeliveryError, match="private key cannot be loaded") as caught:
        _target(sftp_server, "/upload", private_key=encrypted, passphrase="wrong").deliver(
            str(tmp_path / "pkg.zip"), name=NAME, token="run-1"
        )

    assert caught.value.attempts == 0
    assert "wrong" not in str(caught.value) and "right" not in str(caught.value)


# --- atomic replace and cleanup ----------------------------------------------------------------


@sftp
def test_existing_file_is_replaced_atomically_for_a_concurrent_reader(
    sftp_server, remote_dir, tmp_path, concurrent_reader
):
    local_dir, remote = remote_dir
    old_sha = _payload(local_dir / NAME, 4 * 2**20, b"old")
    new_sha = _payload(tmp_path / "pkg.zip", 48 * 2**20, b"new")

    with concurrent_reader(local_dir / NAME) as reader:
        result = _target(sftp_server, remote, password=sftp_server.password).deliver(
            str(tmp_path / "pkg.zip"), name=NAME, token="run-2"
        )

    assert set(reader.hashes) <= {old_sha, new_sha}  # never a partial or missing file
    assert reader.hashes[0] == old_sha and reader.hashes[-1] == new_sha
    assert len(reader.hashes) > 2  # it did read while the upload ran
    assert result.rename == "posix-rename"
    assert os.listdir(local_dir) == [NAME]


@sftp
def test_stale_partial_of_ours_removed_foreign_files_kept(sftp_server, remote_dir, tmp_path):
    local_dir, remote = remote_dir
    (local_dir / f".{NAME}.old.part").write_bytes(b"left by an earlier run")
    (local_dir / "other.part").write_bytes(b"someone else's")
    (local_dir / ".Other.zip.old.part").write_bytes(b"another package's")
    (local_dir / f".{NAME}.2026-11-20.bak").write_bytes(
        b"someone's backup: our name, not our suffix"
    )
    _payload(tmp_path / "pkg.zip", 10_000, b"stale")

    _target(sftp_server, remote, password=sftp_server.password).deliver(
        str(tmp_path / "pkg.zip"), name=NAME, token="run-3"
    )

    assert sorted(os.listdir(local_dir)) == sorted(
        [".Other.zip.old.part", f".{NAME}.2026-11-20.bak", NAME, "other.part"]
    )


@sftp
def test_session_killed_mid_upload_is_retried_on_a_fresh_connection(
    sftp_server, remote_dir, tmp_path
):
    local_dir, remote = remote_dir
    sha = _payload(tmp_path / "pkg.zip", 128 * 2**20, b"kill")
    partial = local_dir / f".{NAME}.run-kill.part"
    killed = threading.Event()

    def kill_when_partial_grows() -> None:
        # Only ends the watcher if the upload never starts (the assertions below then fail).
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed.is_set():
            try:
                if partial.stat().st_size > 16 * 2**20:
                    assert sftp_server.kill_sessions() > 0
                    killed.set()
            except FileNotFoundError:
                pass
            time.sleep(0.002)

    killer = threading.Thread(target=kill_when_partial_grows)
    killer.start()
    attempts = _Attempts()
    try:
        result = _target(sftp_server, remote, password=sftp_server.password).deliver(
            str(tmp_path / "pkg.zip"), name=NAME, token="run-kill", on_attempt=attempts
        )
    finally:
        killed.set()
        killer.join()

    assert result.attempts >= 2
    assert attempts[0][1] is not None and attempts[-1] == (result.attempts, None)
    assert _sha256(local_dir / NAME) == sha == result.sha256
    assert os.listdir(local_dir) == [NAME]


# --- failures that must not be retried ---------------------------------------------------------


@sftp
def test_wrong_host_key_fails_at_once_naming_both_fingerprints(sftp_server, remote_dir, tmp_path):
    local_dir, remote = remote_dir
    _payload(tmp_path / "pkg.zip", 10_000, b"mitm")
    pinned = sftp_server.other_known_hosts_text()
    attempts = _Attempts()

    with pytest.raises(HostKeyMismatch) as caught:
        _target(sftp_server, remote, password=sftp_server.password, known_hosts=pinned).deliver(
            str(tmp_path / "pkg.zip"), name=NAME, token="run-1", on_attempt=attempts
        )

    error = caught.value
    assert error.attempts == 1 and len(attempts) == 1
    assert error.expected == [fingerprint(pinned)]
    assert error.seen == sftp_server.host_key_fingerprint()
    assert fingerprint(pinned) in str(error) and sftp_server.host_key_fingerprint() in str(error)
    assert os.listdir(local_dir) == []


@sftp
def test_pinned_key_type_not_offered_is_a_host_key_mismatch_not_a_network_error(
    sftp_server, remote_dir, tmp_path
):
    _local_dir, remote = remote_dir
    _payload(tmp_path / "pkg.zip", 10_000, b"rotated")
    rsa = asyncssh.generate_private_key("ssh-rsa", key_size=2048).export_public_key().decode()
    pinned = known_hosts_line(sftp_server.host, sftp_server.port, rsa)  # server has ed25519 only

    with pytest.raises(HostKeyMismatch) as caught:
        _target(sftp_server, remote, password=sftp_server.password, known_hosts=pinned).deliver(
            str(tmp_path / "pkg.zip"), name=NAME, token="run-1"
        )

    assert caught.value.expected == [fingerprint(pinned)]
    assert caught.value.seen == sftp_server.host_key_fingerprint()
    assert caught.value.attempts == FAST.attempts  # looked like a dropped connection until then


@sftp
def test_wrong_password_fails_at_once_without_echoing_it(sftp_server, remote_dir, tmp_path):
    _local_dir, remote = remote_dir
    _payload(tmp_path / "pkg.zip", 10_000, b"password")
    attempts = _Attempts()

    with pytest.raises(AuthenticationFailed) as caught:
        _target(sftp_server, remote, password="Wrong-Pa55word!").deliver(
            str(tmp_path / "pkg.zip"), name=NAME, token="run-1", on_attempt=attempts
        )

    assert caught.value.attempts == 1 and len(attempts) == 1
    assert caught.value.user == sftp_server.user and sftp_server.user in str(caught.value)
    assert "Wrong-Pa55word!" not in str(caught.value)
    assert sftp_server.password not in str(caught.value)


@pytest.fixture
def full_remote_dir(remote_dir):
    """The remote folder on its own 64 KiB file system (a tmpfs), owned by the test user."""
    local_dir, remote = remote_dir
    owner = local_dir.stat()
    mount = ["mount", "-t", "tmpfs", "-o", f"size=64k,uid={owner.st_uid},gid={owner.st_gid}"]
    made = subprocess.run([*mount, "tmpfs", str(local_dir)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.strip()}")
    try:
        yield local_dir, remote
    finally:
        subprocess.run(["umount", str(local_dir)], check=True)


@sftp
def test_a_full_disk_on_the_server_fails_at_once(sftp_server, full_remote_dir, tmp_path):
    local_dir, remote = full_remote_dir
    _payload(tmp_path / "pkg.zip", 200_000, b"full")  # more than the folder's 64 KiB
    attempts = _Attempts()

    with pytest.raises(DeliveryError) as caught:
        _target(sftp_server, remote, password=sftp_server.password).deliver(
            str(tmp_path / "pkg.zip"), name=NAME, token="run-1", on_attempt=attempts
        )

    assert type(caught.value) is DeliveryError  # not TransientDeliveryError
    assert caught.value.attempts == 1 and [n for n, _ in attempts] == [1]  # FAST allows 3
    assert "the server refused an operation" in str(caught.value)
    assert os.listdir(local_dir) == []  # the partial upload was removed


@sftp
def test_missing_remote_folder_is_reported_not_created(sftp_server, tmp_path):
    _payload(tmp_path / "pkg.zip", 10_000, b"folder")

    with pytest.raises(RemoteFolderMissing) as caught:
        _target(sftp_server, "/upload/no-such-folder", password=sftp_server.password).deliver(
            str(tmp_path / "pkg.zip"), name=NAME, token="run-1"
        )

    assert caught.value.path == "/upload/no-such-folder" and caught.value.attempts == 1
    assert not (sftp_server.upload_dir / "no-such-folder").exists()


# --- a server without posix-rename (asyncssh's own server, notes B.3) ---------------------------


@pytest.fixture
def server_without_posix_rename(tmp_path, monkeypatch):
    """asyncssh's SFTP server, chrooted to tmp_path/root, not advertising posix-rename (as some
    vendor servers), on its own event loop thread; yields (root, port, known_hosts, key)."""
    monkeypatch.setattr(
        asyncssh.sftp.SFTPServerHandler,
        "_extensions",
        [e for e in asyncssh.sftp.SFTPServerHandler._extensions if b"posix-rename" not in e[0]],
    )
    root = tmp_path / "root"
    (root / "upload").mkdir(parents=True)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")

    class ChrootedSFTP(asyncssh.SFTPServer):
        def __init__(self, chan):
            super().__init__(chan, chroot=str(root).encode())

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def listen() -> asyncssh.SSHAcceptor:
        return await asyncssh.listen(
            "127.0.0.1",
            0,
            server_host_keys=[host_key],
            authorized_client_keys=asyncssh.import_authorized_keys(
                client_key.export_public_key().decode()
            ),
            sftp_factory=ChrootedSFTP,
            allow_scp=False,
        )

    server = asyncio.run_coroutine_threadsafe(listen(), loop).result(10)
    port = server.sockets[0].getsockname()[1]
    pinned = known_hosts_line("127.0.0.1", port, host_key.export_public_key().decode())
    try:
        yield root, port, pinned, client_key.export_private_key().decode()
    finally:
        server.close()
        asyncio.run_coroutine_threadsafe(server.wait_closed(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def test_server_without_posix_rename_gets_remove_then_rename(server_without_posix_rename, tmp_path):
    root, port, pinned, key = server_without_posix_rename
    (root / "upload" / NAME).write_bytes(b"yesterday's package")
    sha = _payload(tmp_path / "pkg.zip", 200_000, b"fallback")
    target = target_from_url(
        f"sftp://anyone@127.0.0.1:{port}/upload",
        SftpCredentials(private_key=key, known_hosts=pinned),
        FAST,
    )

    result = target.deliver(str(tmp_path / "pkg.zip"), name=NAME, token="run-1")

    assert result.rename == "remove+rename" and result.attempts == 1
    assert _sha256(root / "upload" / NAME) == sha == result.sha256
    assert os.listdir(root / "upload") == [NAME]


# --- no server needed ------------------------------------------------------------------------


def _listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    sock.setblocking(False)
    return sock


def test_no_known_hosts_fails_before_connecting(tmp_path):
    (tmp_path / "pkg.zip").write_bytes(b"x")
    attempts = _Attempts()
    with _listening_socket() as listener:
        port = listener.getsockname()[1]
        target = target_from_url(
            f"sftp://naviance@127.0.0.1:{port}/upload", SftpCredentials(password="pw"), FAST
        )
        with pytest.raises(DeliveryError, match="no host key is pinned") as caught:
            target.deliver(str(tmp_path / "pkg.zip"), name=NAME, token="run-1", on_attempt=attempts)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected

    assert type(caught.value) is DeliveryError and caught.value.attempts == 0 and attempts == []


def test_connection_refused_is_retried_then_reported_as_transient(tmp_path):
    (tmp_path / "pkg.zip").write_bytes(b"x")
    with _listening_socket() as probe:
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    known = f"[127.0.0.1]:{port} " + " ".join(key.split()[:2])
    attempts = _Attempts()

    with pytest.raises(TransientDeliveryError) as caught:
        target_from_url(
            f"sftp://naviance@127.0.0.1:{port}/upload",
            SftpCredentials(password="Pw-Secret-1", known_hosts=known),
            RetryOptions(attempts=3, backoff_base=0.01),
        ).deliver(str(tmp_path / "pkg.zip"), name=NAME, token="run-1", on_attempt=attempts)

    assert caught.value.attempts == 3
    assert [n for n, _ in attempts] == [1, 2, 3]
    assert all(isinstance(error, ConnectionRefusedError) for _, error in attempts)
    assert "Pw-Secret-1" not in str(caught.value)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_retries_wait_within_the_configured_backoff_and_log_each_retry(tmp_path, monkeypatch):
    caplog = _Records()
    monkeypatch.setattr(sftp_module.log, "handlers", [caplog])
    (tmp_path / "pkg.zip").write_bytes(b"x")
    with _listening_socket() as probe:
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    known = f"[127.0.0.1]:{port} " + " ".join(key.split()[:2])
    retry = RetryOptions(attempts=5, backoff_base=0.001, backoff_cap=0.004)

    with pytest.raises(TransientDeliveryError) as caught:
        target_from_url(
            f"sftp://naviance@127.0.0.1:{port}/upload",
            SftpCredentials(password="Pw-Secret-1", known_hosts=known),
            retry,
        ).deliver(str(tmp_path / "pkg.zip"), name=NAME, token="run-1")

    assert caught.value.attempts == 5
    retries = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert [r.args[:2] for r in retries] == [(1, 5), (2, 5), (3, 5), (4, 5)]  # none after the last
    for record in retries:  # exponential with full jitter, capped: uniform(0, ceiling)
        ceiling = min(retry.backoff_cap, retry.backoff_base * 2 ** (record.args[0] - 1))
        assert 0.0 <= record.args[4] <= ceiling
        assert "ConnectionRefusedError" in record.getMessage()
        assert "Pw-Secret-1" not in record.getMessage()


def test_url_with_password_is_refused_without_echoing_it():
    with pytest.raises(ValueError, match="must not contain a password") as caught:
        target_from_url("sftp://naviance:Hunter2Secret@sftp.example.org/upload")
    assert "Hunter2Secret" not in str(caught.value)


@pytest.mark.parametrize("url", ["ftp://u@host/x", "http://host/x", "s3://bucket/x"])
def test_unsupported_scheme_is_refused(url):
    with pytest.raises(ValueError, match="unsupported delivery target scheme"):
        target_from_url(url)


@pytest.mark.parametrize(
    "url", ["sftp://sftp-data.naviance.com/x", "sftp://u@host", "sftp://u@host:99999/x"]
)
def test_incomplete_sftp_url_is_refused(url):
    with pytest.raises(ValueError, match="SFTP URL"):
        target_from_url(url)


def test_sftp_url_defaults_to_port_22_and_describes_itself_without_secrets():
    target = target_from_url(
        "sftp://district%40x@sftp-data.naviance.com/in/box/",
        SftpCredentials(password="Hunter2Secret", known_hosts="ignored"),
    )

    assert isinstance(target, SftpTarget)
    assert (target.host, target.port, target.user) == ("sftp-data.naviance.com", 22, "district@x")
    assert target.remote_dir == "/in/box"
    assert target.describe() == "sftp://district%40x@sftp-data.naviance.com:22/in/box"
    assert "Hunter2Secret" not in repr(target.credentials)
    assert "ignored" not in repr(target.credentials)


def test_credentials_from_env_read_the_naviance_sftp_variables():
    env = {
        "NAVIANCE_SFTP_PASSWORD": "pw-value",
        "NAVIANCE_SFTP_KNOWN_HOSTS": "line",
        "NAVIANCE_SFTP_PRIVATE_KEY": "",
        "SFTP_PRIVATE_KEY_PATH": "/not/ours",
    }

    credentials = SftpCredentials.from_env(env)

    assert credentials.password == "pw-value" and credentials.known_hosts == "line"
    assert credentials.private_key is None and credentials.private_key_path is None
    assert "pw-value" not in repr(credentials)


# --- a dead link fails within a bounded time ---------------------------------------------------


@pytest.fixture
def abandoned_tasks_finalized():
    """Finalize, right after the test, the upload tasks asyncssh abandons when a link dies.

    Their exceptions are never retrieved, so asyncio logs each when the task is collected,
    formatting a traceback, which on Python 3.11 < 3.11.8 parses source with ``ast``. Left to
    a random later collection, that can run inside another ``ast`` parse (pytest rewriting
    the hypothesis plugin at the end of the session) and break it with "SystemError: AST
    constructor recursion depth mismatch" (CPython gh-106905): the file alone exited 1."""
    yield
    gc.collect()


@sftp
def test_frozen_server_fails_within_the_keepalive_bound_not_a_hang(
    sftp_server, remote_dir, tmp_path, abandoned_tasks_finalized
):
    """The server stops answering mid-upload (its session is SIGSTOPped, like a black-holed
    link). Keepalive turns that into a network failure within ~interval × count seconds."""
    local_dir, remote = remote_dir
    _payload(tmp_path / "pkg.zip", 128 * 2**20, b"freeze")
    partial = local_dir / f".{NAME}.run-freeze.part"
    frozen = threading.Event()

    def freeze_when_partial_grows() -> None:
        # Only ends the watcher if the upload never starts (the assertions below then fail).
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not stop.is_set():
            with contextlib.suppress(FileNotFoundError):
                if partial.stat().st_size > 8 * 2**20:
                    assert sftp_server.kill_sessions(signal.SIGSTOP) > 0
                    frozen.set()
                    return
            time.sleep(0.002)

    stop = threading.Event()
    freezer = threading.Thread(target=freeze_when_partial_grows)
    freezer.start()
    retry = RetryOptions(
        attempts=1, connect_timeout=5.0, keepalive_interval=1.0, keepalive_count_max=2
    )
    try:
        with pytest.raises(TransientDeliveryError) as failed:
            _target(sftp_server, remote, retry, password=sftp_server.password).deliver(
                str(tmp_path / "pkg.zip"), name=NAME, token="run-freeze"
            )
    finally:
        stop.set()
        freezer.join()
        sftp_server.kill_sessions(signal.SIGKILL)  # the stopped session: end it for good
    assert frozen.is_set()
    # What ended the upload is the keepalive, not the transfer timeout (60 s + 128 s here) nor
    # the server's death: the proof is the cause, not the clock.
    assert "not responding to keepalive" in str(failed.value)
    assert not (local_dir / NAME).exists()  # nothing half-delivered under the final name
