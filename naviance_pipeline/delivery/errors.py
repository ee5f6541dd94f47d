"""Delivery failures, one class per thing an operator must do differently.

Messages name hosts, users, folders and fingerprints; never a password, key or passphrase.
``attempts`` says how many connection attempts were made before giving up.
"""

from __future__ import annotations


class DeliveryError(Exception):
    """A delivery did not happen; the message says why and what to fix."""

    def __init__(self, message: str, *, attempts: int = 0) -> None:
        super().__init__(message)
        self.attempts = attempts


class HostKeyMismatch(DeliveryError):
    """The server's host key is not a pinned one: a possible man-in-the-middle or a key
    rotation. Never retried."""

    def __init__(self, host: str, port: int, expected: list[str], seen: str) -> None:
        pinned = ", ".join(expected) if expected else "none"
        super().__init__(
            f"host key of {host}:{port} is not trusted: the server presented {seen}, "
            f"the pinned key(s) are {pinned}. Verify the new fingerprint with the vendor "
            "out of band before updating NAVIANCE_SFTP_KNOWN_HOSTS."
        )
        self.host = host
        self.port = port
        self.expected = expected
        self.seen = seen


class AuthenticationFailed(DeliveryError):
    """The server refused the login (wrong password or key). Never retried."""

    def __init__(self, user: str, host: str, port: int) -> None:
        super().__init__(
            f"the SFTP server {host}:{port} refused the login of user {user!r}: check the "
            "password or private key given in the environment"
        )
        self.user = user


class RemoteFolderMissing(DeliveryError):
    """The configured remote folder does not exist (a configuration error; never created)."""

    def __init__(self, path: str, detail: str = "does not exist") -> None:
        super().__init__(
            f"remote folder {path!r} {detail} on the SFTP server: fix the folder in the "
            "target URL (it is not created automatically)"
        )
        self.path = path


class TransientDeliveryError(DeliveryError):
    """Network failures on every attempt; worth trying again later."""
