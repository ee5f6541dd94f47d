"""The delivery interface: where a finished package goes and what a delivery reports.

A ``Target`` puts one local file under a final name in a folder, atomically: it writes
``.{name}.{token}.part`` in the same folder, checks its size, then renames it over the final
name, so readers (the vendor's importer) only ever see the old complete file or the new one.
``target_from_url`` builds a target from a secret-free URL through the registry of targets
(``targets/``: one module per target); passwords and keys come only from its credentials
(``SftpCredentials``, filled from the environment).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from naviance_pipeline.delivery.errors import (
    AuthenticationFailed,
    DeliveryError,
    HostKeyMismatch,
    RemoteFolderMissing,
    TransientDeliveryError,
)

__all__ = [
    "AuthenticationFailed",
    "DeliveryError",
    "DeliveryResult",
    "HostKeyMismatch",
    "OnAttempt",
    "RemoteFolderMissing",
    "RetryOptions",
    "SftpCredentials",
    "Target",
    "TransientDeliveryError",
    "target_from_url",
]

# Environment variables read by SftpCredentials.from_env (targets/sftp.py: its secrets').
CREDENTIAL_ENV = {
    "password": "NAVIANCE_SFTP_PASSWORD",
    "private_key": "NAVIANCE_SFTP_PRIVATE_KEY",
    "private_key_path": "NAVIANCE_SFTP_PRIVATE_KEY_PATH",
    "passphrase": "NAVIANCE_SFTP_PRIVATE_KEY_PASSPHRASE",
    "known_hosts": "NAVIANCE_SFTP_KNOWN_HOSTS",
    "known_hosts_path": "NAVIANCE_SFTP_KNOWN_HOSTS_PATH",
}


@dataclass(frozen=True)
class SftpCredentials:
    """Secrets for an SFTP login, filled from environment variables only; none is in repr."""

    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)  # key TEXT, parsed in memory
    private_key_path: str | None = None
    passphrase: str | None = field(default=None, repr=False)
    known_hosts: str | None = field(default=None, repr=False)  # pinned known_hosts TEXT
    known_hosts_path: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SftpCredentials:
        """Read the variables of ``CREDENTIAL_ENV``; empty values count as unset."""
        env = os.environ if environ is None else environ
        return cls(**{attr: env.get(var) or None for attr, var in CREDENTIAL_ENV.items()})


@dataclass(frozen=True)
class RetryOptions:
    """How hard an SFTP delivery tries; only network failures are retried."""

    attempts: int = 4  # total attempts, each on a fresh connection
    backoff_base: float = 5.0  # seconds; exponential with full jitter, capped
    backoff_cap: float = 300.0
    connect_timeout: float = 30.0  # TCP connect + handshake + login
    keepalive_interval: float = 15.0  # a silent server is dropped after interval * count_max
    keepalive_count_max: int = 4
    transfer_timeout: float | None = None  # None: 60 s + size at 1 MB/s

    def transfer_timeout_for(self, size: int) -> float:
        if self.transfer_timeout is not None:
            return self.transfer_timeout
        return 60.0 + size / 1_000_000


@dataclass(frozen=True)
class DeliveryResult:
    """The receipt of one delivery."""

    target: str  # the target's history_key, e.g. sftp://user@host:22/remote/dir, file:///outbox
    remote_path: str  # final path of the delivered file on the target
    bytes: int
    sha256: str  # of the local file delivered
    attempts: int
    started_at: str  # ISO 8601 UTC
    ended_at: str
    rename: str  # "posix-rename" | "remove+rename" | "os.replace"


# on_attempt(n, error): called once after each attempt ends; error is None when it succeeded.
OnAttempt = Callable[[int, BaseException | None], None]


@runtime_checkable
class Target(Protocol):
    # The target's stable key: its secret-free URL in a fixed spelling, recorded in each
    # receipt (a change is logged) and the folder name of receipts written before targets had
    # names (receipts.adopt_legacy_history). The history itself is kept under the delivery's
    # name (NAVIANCE_DELIVERY_NAME). Never respell it: old receipts are found by it.
    history_key: str
    # The host uploads go to: they take its upload slots (delivery/lock.py,
    # NAVIANCE_UPLOADS_PER_HOST); None for a local folder.
    upload_host: str | None

    def describe(self) -> str:
        """The target for people (logs, messages), without any secret; not a key."""
        ...

    def deliver(
        self,
        local_path: str,
        *,
        name: str,
        token: str,
        on_attempt: OnAttempt | None = None,
    ) -> DeliveryResult:
        """Put ``local_path`` in the target folder as ``name``, atomically.

        ``token`` is unique per run (the run id): the temporary file is ``.{name}.{token}.part``
        so retries of one run overwrite their own partial file.
        """
        ...


def target_from_url(
    url: str, credentials: object = None, retry: RetryOptions | None = None
) -> Target:
    """The target the URL's scheme selects (``targets/``: `sftp://user@host[:port]/remote/dir`
    → SftpTarget with ``credentials`` (SftpCredentials); a plain path or `file://` URL →
    LocalFolderTarget). Raises ValueError for other schemes or a URL the target cannot use,
    a password inside it among them (secrets only from the environment)."""
    from naviance_pipeline.delivery.targets import target_kind

    kind, parts = target_kind(url)
    return kind.build(parts, url, credentials, retry)


# --- helpers shared by the targets -----------------------------------------------------------


def check_name_and_token(name: str, token: str) -> None:
    """Both become one file name in the target folder: no separators, no empty parts."""
    for label, value in (("name", name), ("token", token)):
        if not value or value in (".", "..") or any(c in value for c in "/\\\0"):
            raise ValueError(f"delivery {label} must be a plain file-name part, got {value!r}")


def temp_name(name: str, token: str) -> str:
    """Hidden and not ending in the final suffix, so a pickup pattern like *.zip skips it."""
    return f".{name}.{token}.part"


def is_own_temp(file_name: str, name: str) -> bool:
    """A partial upload of ours for ``name`` (any run), i.e. ``.{name}.*.part``."""
    prefix = f".{name}."
    return (
        file_name.startswith(prefix)
        and file_name.endswith(".part")
        and len(file_name) > len(prefix) + len(".part")
    )


def local_file_facts(local_path: str) -> tuple[int, str]:
    """Size and SHA-256 of the file to deliver; DeliveryError if it cannot be read."""
    try:
        with open(local_path, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
            return os.fstat(handle.fileno()).st_size, digest
    except OSError as exc:
        raise DeliveryError(f"cannot read the file to deliver {local_path!r}: {exc}") from exc


def utc_now() -> str:
    """Receipt timestamps are real time by nature (unlike the package's as-of date)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")
