"""Deliver to an SFTP server (fsspec's sshfs over asyncssh), atomically and verified.

One attempt, always on a fresh connection whose host key must match a pinned key:
check that the remote folder exists (never created: a wrong folder is a configuration error)
→ remove our stale ``.{name}.*.part`` files → upload to ``.{name}.{token}.part`` in the same
folder → remote size == local size → rename over ``name`` with ``posix-rename@openssh.com``
(atomic replace), or, on servers without it, remove + rename → final size check. On failure
the partial file is removed when the connection still allows it; otherwise the next run's
stale-file sweep does it. docs/architecture.md (Delivery by SFTP) says why each step is there.

sshfs provides the connection, its channel pool and the fsspec event loop; the file operations
go straight to asyncssh's ``SFTPClient`` on a pooled channel, because sshfs's ``mv`` falls back
to a shell ``cp`` that deletes the upload on SFTP-only servers, and its ``put_file`` runs
``makedirs`` on the folder (which drop boxes may refuse, and which would silently create a
mistyped folder).

Retries live here (tenacity, ``_retrying``), not in a Dagster ``RetryPolicy``: the CLI's
redeliver gets the same behaviour, each retry costs one reconnect instead of a whole step
(re-reading the package, re-running the guards), and only network failures are retried — a
host-key or login failure, a full disk or a refused operation fails at once (a RetryPolicy
retries every exception unless the step raises RetryRequested selectively). The Dagster asset
should therefore not add its own retry policy on top, or the attempts multiply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import posixpath
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import asyncssh
import tenacity
from fsspec.asyn import sync
from sshfs import SSHFileSystem
from sshfs.utils import WRITE_BLOCK_SIZE

from naviance_pipeline.delivery.errors import (
    AuthenticationFailed,
    DeliveryError,
    HostKeyMismatch,
    RemoteFolderMissing,
    TransientDeliveryError,
)
from naviance_pipeline.delivery.hostkey import (
    fetch_host_key,
    load_known_hosts,
    pinned_fingerprints,
    pinned_key_types,
)
from naviance_pipeline.delivery.target import (
    DeliveryResult,
    OnAttempt,
    RetryOptions,
    SftpCredentials,
    check_name_and_token,
    is_own_temp,
    local_file_facts,
    temp_name,
    utc_now,
)
from naviance_pipeline.operations.crash import crashpoint

log = logging.getLogger(__name__)

# AES-GCM first: about twice chacha20's throughput with AES-NI (measured on loopback); the rest
# are fallbacks for older vendor servers.
CIPHERS = [
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
]
_CLEANUP_TIMEOUT = 5.0

# Failures of the network or the server process, worth a fresh connection.
_NETWORK_ERRORS = (
    ConnectionError,  # refused, reset, broken pipe, aborted
    TimeoutError,  # connect_timeout, transfer timeout (asyncio and fsspec timeouts included)
    asyncssh.ConnectionLost,  # includes "Server not responding to keepalive"
    asyncssh.SFTPConnectionLost,
    asyncssh.SFTPNoConnection,
)


class _Retryable(Exception):
    """An attempt failed for a reason a fresh connection may not have."""

    def __init__(self, cause: BaseException, *, while_connecting: bool) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause
        self.while_connecting = while_connecting


class _SizeMismatch(Exception):
    pass


@dataclass(frozen=True)
class _Upload:
    local_path: str
    size: int
    partial: str
    final: str
    name: str


class SftpTarget:
    """An SFTP folder; the host key is always checked against the pinned known_hosts."""

    def __init__(
        self,
        host: str,
        *,
        user: str,
        remote_dir: str,
        port: int = 22,
        credentials: SftpCredentials | None = None,
        retry: RetryOptions | None = None,
    ) -> None:
        if not remote_dir.startswith("/"):
            raise ValueError("the remote folder must be an absolute path, e.g. /upload")
        self.host = host
        self.port = port
        self.user = user
        # "/" + lstrip: normpath keeps a leading "//", which some servers read differently
        self.remote_dir = posixpath.normpath("/" + remote_dir.lstrip("/"))
        self.credentials = credentials or SftpCredentials()
        self.retry = retry or RetryOptions()
        self.upload_host = host  # uploads to one server are serialized (target.Target)
        bracketed = f"[{host}]" if ":" in host else host
        # Fixed spelling (target.Target): receipts record it, old receipts are found by it.
        self.history_key = (
            f"sftp://{quote(user, safe='')}@{bracketed}:{port}{quote(self.remote_dir)}"
        )

    def describe(self) -> str:
        return self.history_key

    def deliver(
        self,
        local_path: str,
        *,
        name: str,
        token: str,
        on_attempt: OnAttempt | None = None,
    ) -> DeliveryResult:
        """Upload ``local_path`` as ``name``; see the module docstring for the sequence.
        ``on_attempt(n, error)`` is called after each attempt (error None on success)."""
        check_name_and_token(name, token)
        options = self._connect_options()  # configuration errors surface before connecting
        size, sha256 = local_file_facts(local_path)
        upload = _Upload(
            local_path=local_path,
            size=size,
            partial=posixpath.join(self.remote_dir, temp_name(name, token)),
            final=posixpath.join(self.remote_dir, name),
            name=name,
        )
        started_at = utc_now()
        attempts = max(1, self.retry.attempts)
        try:
            for attempt in self._retrying(attempts):
                with attempt:
                    number = attempt.retry_state.attempt_number
                    rename = self._reported_attempt(options, upload, number, on_attempt)
        except _Retryable as failure:
            raise self._gave_up(failure, attempts) from failure.cause
        return DeliveryResult(
            target=self.history_key,
            remote_path=upload.final,
            bytes=size,
            sha256=sha256,
            attempts=number,
            started_at=started_at,
            ended_at=utc_now(),
            rename=rename,
        )

    def _retrying(self, attempts: int) -> tenacity.Retrying:
        """Only ``_Retryable`` (network) failures are retried, ``attempts`` in all, after a
        wait that grows exponentially with full jitter: uniform(0, min(cap, base * 2^(n-1)))."""

        def log_retry(state: tenacity.RetryCallState) -> None:
            log.warning(
                "SFTP delivery attempt %d/%d to %s failed (%s); retrying in %.1f s",
                state.attempt_number, attempts, self.describe(), state.outcome.exception(),
                state.upcoming_sleep,
            )  # fmt: skip

        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts),
            wait=tenacity.wait_random_exponential(
                multiplier=self.retry.backoff_base, max=self.retry.backoff_cap
            ),
            retry=tenacity.retry_if_exception_type(_Retryable),
            before_sleep=log_retry,
            reraise=True,
        )

    def _reported_attempt(
        self, options: dict[str, Any], upload: _Upload, number: int, on_attempt: OnAttempt | None
    ) -> str:
        """One attempt; ``on_attempt(number, error or None)`` once it has ended."""
        report = on_attempt if on_attempt is not None else (lambda _n, _error: None)
        try:
            rename = self._attempt(options, upload)
        except DeliveryError as error:  # not retried
            error.attempts = number
            report(number, error)
            raise
        except _Retryable as failure:
            report(number, failure.cause)
            raise
        report(number, None)
        return rename

    # --- configuration ---------------------------------------------------------------------
    def _known_hosts_text(self) -> str:
        creds = self.credentials
        if creds.known_hosts:
            return creds.known_hosts
        if creds.known_hosts_path:
            try:
                with open(creds.known_hosts_path, encoding="utf-8") as handle:
                    return handle.read()
            except OSError as exc:
                raise DeliveryError(f"cannot read the pinned known_hosts file: {exc}") from exc
        return ""  # load_known_hosts explains what to set

    def _client_keys(self) -> list[asyncssh.SSHKey] | None:
        creds = self.credentials
        try:
            if creds.private_key:
                return [asyncssh.import_private_key(creds.private_key, creds.passphrase)]
            if creds.private_key_path:
                return [asyncssh.read_private_key(creds.private_key_path, creds.passphrase)]
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError, OSError) as exc:
            # asyncssh's messages name the problem ("Incorrect passphrase"), never key material
            raise DeliveryError(f"the SFTP private key cannot be loaded: {exc}") from None
        return None

    def _connect_options(self) -> dict[str, Any]:
        known_hosts = load_known_hosts(self._known_hosts_text())
        client_keys = self._client_keys()
        password = self.credentials.password
        if client_keys is None and password is None:
            raise DeliveryError(
                "no SFTP password or private key is configured "
                "(NAVIANCE_SFTP_PASSWORD, NAVIANCE_SFTP_PRIVATE_KEY or _PRIVATE_KEY_PATH)"
            )
        options: dict[str, Any] = {
            "port": self.port,
            "username": self.user,
            "known_hosts": known_hosts,  # sshfs would default to None = no check at all
            "client_keys": client_keys,  # None: no ~/.ssh keys, only what is configured
            "agent_path": None,
            "config": None,  # no ~/.ssh/config
            "x509_trusted_certs": None,
            "keepalive_interval": self.retry.keepalive_interval,
            "keepalive_count_max": self.retry.keepalive_count_max,
            "connect_timeout": self.retry.connect_timeout,
            "encryption_algs": CIPHERS,
            "skip_instance_cache": True,  # fsspec would hand back a cached dead connection
        }
        if password is not None:
            options["password"] = password
        return options

    # --- one attempt -----------------------------------------------------------------------
    def _attempt(self, options: dict[str, Any], upload: _Upload) -> str:
        fs = self._connect(options)
        try:
            return sync(fs.loop, self._upload, fs, upload)
        except DeliveryError:
            raise
        except Exception as exc:
            raise self._classify(exc) from exc
        finally:
            _close(fs)

    def _connect(self, options: dict[str, Any]) -> SSHFileSystem:
        try:
            return SSHFileSystem(self.host, **options)
        except asyncssh.HostKeyNotVerifiable:
            raise self._refused_host_key() from None
        except (PermissionError, asyncssh.PermissionDenied):  # sshfs maps the latter
            raise AuthenticationFailed(self.user, self.host, self.port) from None
        except (OSError, asyncssh.ConnectionLost) as exc:  # includes timeouts and DNS errors
            raise _Retryable(exc, while_connecting=True) from exc
        except asyncssh.Error as exc:
            raise DeliveryError(
                f"SSH connection to {self.host}:{self.port} failed: {type(exc).__name__}: {exc}"
            ) from exc

    def _classify(self, exc: Exception) -> Exception:
        if isinstance(exc, (*_NETWORK_ERRORS, _SizeMismatch)):
            return _Retryable(exc, while_connecting=False)
        if isinstance(exc, asyncssh.SFTPPermissionDenied):
            detail = f"permission denied in {self.remote_dir!r}: {exc.reason}"
        elif isinstance(exc, asyncssh.SFTPError):
            detail = f"the server refused an operation in {self.remote_dir!r}: {exc.reason}"
        else:
            detail = f"{type(exc).__name__}: {exc}"
        return DeliveryError(f"delivery to {self.describe()} failed: {detail}")

    async def _upload(self, fs: SSHFileSystem, upload: _Upload) -> str:
        op_timeout = self.retry.connect_timeout
        async with fs._pool.get() as sftp:  # sshfs keeps its channel pool private
            await asyncio.wait_for(self._check_folder(sftp), op_timeout)
            await asyncio.wait_for(self._remove_stale(sftp, upload.name), op_timeout)
            try:
                await asyncio.wait_for(
                    sftp.put(upload.local_path, upload.partial, block_size=WRITE_BLOCK_SIZE),
                    self.retry.transfer_timeout_for(upload.size),
                )
                await asyncio.wait_for(_expect_size(sftp, upload.partial, upload.size), op_timeout)
                crashpoint("delivery:uploading")
                rename = await asyncio.wait_for(
                    _replace(sftp, upload.partial, upload.final), op_timeout
                )
            except Exception:
                with contextlib.suppress(Exception):  # best effort: the link may be gone
                    await asyncio.wait_for(sftp.remove(upload.partial), _CLEANUP_TIMEOUT)
                raise
            await asyncio.wait_for(_expect_size(sftp, upload.final, upload.size), op_timeout)
            return rename

    async def _check_folder(self, sftp: asyncssh.SFTPClient) -> None:
        try:
            attrs = await sftp.stat(self.remote_dir)
        except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath):
            raise RemoteFolderMissing(self.remote_dir) from None
        if attrs.type != asyncssh.FILEXFER_TYPE_DIRECTORY:
            raise RemoteFolderMissing(self.remote_dir, "is not a folder")

    async def _remove_stale(self, sftp: asyncssh.SFTPClient, name: str) -> None:
        """Partial files of earlier runs of ours (``.{name}.*.part``); nothing else."""
        try:
            entries = await sftp.listdir(self.remote_dir)
        except asyncssh.SFTPPermissionDenied:
            log.info("cannot list %s to remove stale partial files", self.remote_dir)
            return
        for entry in entries:
            if is_own_temp(entry, name):
                try:
                    await sftp.remove(posixpath.join(self.remote_dir, entry))
                except asyncssh.SFTPError as exc:  # e.g. removed meanwhile; not worth failing
                    log.info("could not remove stale %s: %s", entry, exc.reason)

    # --- failures ----------------------------------------------------------------------------
    def _host_keys(self) -> tuple[list[str], list[tuple[str, str]] | str]:
        """(fingerprints pinned for this host, the server's keys or why they were not read)."""
        expected = pinned_fingerprints(self._known_hosts_text(), self.host, self.port)
        try:
            return expected, fetch_host_key(self.host, self.port, self.retry.connect_timeout)
        except DeliveryError as exc:
            return expected, str(exc)

    def _refused_host_key(self) -> HostKeyMismatch:
        """asyncssh rejected the key: name the pinned and the presented fingerprints, so the
        operator can check with the vendor."""
        expected, offered = self._host_keys()
        if isinstance(offered, str):
            return HostKeyMismatch(self.host, self.port, expected, f"a key not read ({offered})")
        # The rejected handshake used a pinned key type when the server had one.
        types = pinned_key_types(self._known_hosts_text())
        offered.sort(key=lambda entry: entry[0].split()[1] not in types)
        return HostKeyMismatch(self.host, self.port, expected, offered[0][1])

    def _unpinned_server(self) -> HostKeyMismatch | None:
        """A mismatch if the server answers but offers none of the pinned keys."""
        expected, offered = self._host_keys()
        if isinstance(offered, str) or any(fp in expected for _, fp in offered):
            return None
        return HostKeyMismatch(self.host, self.port, expected, ", ".join(fp for _, fp in offered))

    def _gave_up(self, failure: _Retryable, attempts: int) -> DeliveryError:
        # A server that does not offer the pinned key type hangs up during the handshake,
        # which looks like a network error: tell that apart before blaming the network.
        mismatch = self._unpinned_server() if failure.while_connecting else None
        if mismatch is not None:
            mismatch.attempts = attempts
            return mismatch
        return TransientDeliveryError(
            f"delivery to {self.describe()} failed after {attempts} attempt(s): {failure}",
            attempts=attempts,
        )


async def _expect_size(sftp: asyncssh.SFTPClient, path: str, size: int) -> None:
    """Catches truncation (asyncssh 2.12 once lost segments silently)."""
    remote = (await sftp.stat(path)).size
    if remote != size:
        raise _SizeMismatch(f"{path} has {remote} bytes on the server, expected {size}")


async def _replace(sftp: asyncssh.SFTPClient, partial: str, final: str) -> str:
    """Rename over the final name; plain SFTP rename refuses to overwrite, hence posix-rename."""
    try:
        await sftp.posix_rename(partial, final)
        return "posix-rename"
    except asyncssh.SFTPOpUnsupported:
        pass
    # Not atomic: a reader may briefly find no file, but never a partial one (rclone does this).
    with contextlib.suppress(asyncssh.SFTPNoSuchFile):
        await sftp.remove(final)
    await sftp.rename(partial, final)
    return "remove+rename"


def _close(fs: SSHFileSystem) -> None:
    """Close the channels and the connection now, not at garbage collection."""

    async def close() -> None:
        await fs._pool.close()
        fs.client.close()
        await fs.client.wait_closed()

    with contextlib.suppress(Exception):
        sync(fs.loop, close, timeout=_CLEANUP_TIMEOUT)
