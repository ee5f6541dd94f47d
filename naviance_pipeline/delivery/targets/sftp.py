"""An SFTP server (``sftp://user@host[:port]/folder``), its host key pinned: the password or
private key and the pinned known_hosts come from secrets, never from the URL. Uploads to one
host take its upload slots (``NAVIANCE_UPLOADS_PER_HOST``, delivery/lock.py)."""

from __future__ import annotations

from urllib.parse import unquote

from naviance_pipeline.delivery.target import CREDENTIAL_ENV, SftpCredentials
from naviance_pipeline.delivery.targets import TargetKind

# Its secrets (DeliveryResource fields, districts-file roles) -> SftpCredentials fields.
ROLES = {
    "sftp_password": "password",
    "sftp_private_key": "private_key",
    "sftp_private_key_passphrase": "passphrase",
    "sftp_known_hosts": "known_hosts",
}


def build(parts, _url: str, credentials=None, retry=None):
    # Checked before anything else so that no later message can echo the password.
    if parts.password is not None:
        raise ValueError(
            "the SFTP URL must not contain a password: give it in NAVIANCE_SFTP_PASSWORD"
        )
    if parts.query or parts.fragment:
        raise ValueError("the SFTP URL must not have a query or fragment")
    if not parts.username or not parts.hostname:
        raise ValueError("the SFTP URL needs a user and a host: sftp://user@host/folder")
    try:
        port = 22 if parts.port is None else parts.port
    except ValueError as exc:
        raise ValueError(f"the SFTP URL has an invalid port: {exc}") from None
    if not parts.path:
        raise ValueError(
            "the SFTP URL needs the remote folder as an absolute path, "
            "e.g. sftp://user@host/upload (or sftp://user@host/ for the server's root)"
        )
    from naviance_pipeline.delivery.sftp import SftpTarget  # asyncssh: only when used

    return SftpTarget(
        parts.hostname,
        port=port,
        user=unquote(parts.username),
        remote_dir=unquote(parts.path),
        credentials=credentials,
        retry=retry,
    )


def credentials(secrets) -> SftpCredentials:
    return SftpCredentials(**{field: secrets.get(role) or None for role, field in ROLES.items()})


TARGET = TargetKind(
    name="sftp",
    schemes=("sftp",),
    url_help="sftp://user@host[:port]/folder",
    build=build,
    example="sftp://naviance@sftp.example.org:22/upload",
    secrets={role: CREDENTIAL_ENV[field] for role, field in ROLES.items()},
    credentials=credentials,
    district_requires=(
        (
            ("sftp_known_hosts",),
            "secrets.sftp_known_hosts is required for an SFTP delivery_target "
            "(the pinned host key)",
        ),
        (
            ("sftp_password", "sftp_private_key"),
            "secrets needs sftp_password or sftp_private_key for an SFTP delivery_target",
        ),
    ),
)
