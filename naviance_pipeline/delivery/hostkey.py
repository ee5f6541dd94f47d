"""Host-key pinning: read a server's host keys so an operator can verify and pin them, compute
fingerprints the way ``ssh-keygen -lf`` prints them, and read the pinned known_hosts text.

The SFTP target always checks the server against the pinned keys; there is no switch to turn
that off (sshfs would otherwise accept any key: docs/architecture.md, Delivery by SFTP).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import itertools

import asyncssh
from fsspec.asyn import get_loop, sync

from naviance_pipeline.delivery.errors import DeliveryError

# One handshake per key family, like ssh-keyscan: a handshake shows one key only.
_KEY_FAMILIES = (
    ("ssh-ed25519",),
    ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"),
    ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"),
)


def fingerprint(public_key_line: str) -> str:
    """'SHA256:...' of a public key line (``type base64 [comment]``) or a known_hosts line."""
    fields = _key_fields(public_key_line)
    if fields is None:
        raise ValueError("not an SSH public key line (expected 'keytype base64')")
    digest = hashlib.sha256(fields[1]).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def known_hosts_line(host: str, port: int, public_key_line: str) -> str:
    """``host keytype base64`` (port 22) or ``[host]:port keytype base64``, as ssh writes them."""
    fields = _key_fields(public_key_line)
    if fields is None:
        raise ValueError("not an SSH public key line (expected 'keytype base64')")
    pattern = host if port == 22 else f"[{host}]:{port}"
    return f"{pattern} {fields[0]} {base64.b64encode(fields[1]).decode('ascii')}"


def fetch_host_key(host: str, port: int = 22, timeout: float = 10.0) -> list[tuple[str, str]]:
    """Connect (no auth), return [(known_hosts_line, 'SHA256:...fingerprint')] for the server's
    host key(s), so an operator can verify and pin it."""
    try:
        keys = sync(get_loop(), _fetch_keys, host, port, timeout)
    except (OSError, asyncssh.Error) as exc:
        raise DeliveryError(f"could not read the host key of {host}:{port}: {exc}") from exc
    if not keys:
        raise DeliveryError(f"{host}:{port} offered no host key of a supported type")
    lines = [
        known_hosts_line(host, port, key.export_public_key("openssh").decode("ascii"))
        for key in keys
    ]
    return [(line, fingerprint(line)) for line in lines]


async def _fetch_keys(host: str, port: int, timeout: float) -> list[asyncssh.SSHKey]:
    async def one(algs: list[str] | tuple[()]) -> asyncssh.SSHKey | None:
        return await asyncio.wait_for(
            asyncssh.get_server_host_key(host, port, server_host_key_algs=algs, config=None),
            timeout,
        )

    # The first handshake (default algorithms) must work; errors there are the caller's.
    first = await one(())
    keys = [first] if first is not None else []
    for family in _KEY_FAMILIES:
        # A server without a key of this family just hangs up (OpenSSH: "no matching host
        # key type"), which looks like any network error, so failures here are skipped.
        try:
            key = await one(list(family))
        except (OSError, asyncssh.Error):
            continue
        if key is not None and all(key != known for known in keys):
            keys.append(key)
    return keys


def pinned_lines(known_hosts: str) -> list[str]:
    """The pinned key lines of a known_hosts text (no comments, no @revoked/@cert-authority)."""
    return [
        line.strip()
        for line in known_hosts.splitlines()
        if line.strip()
        and not line.lstrip().startswith(("#", "@"))
        and _key_fields(line) is not None
    ]


def load_known_hosts(known_hosts: str) -> asyncssh.SSHKnownHosts:
    """The pinned keys as asyncssh wants them; DeliveryError if none is usable."""
    if not pinned_lines(known_hosts):
        raise DeliveryError(
            "no host key is pinned: set NAVIANCE_SFTP_KNOWN_HOSTS to the server's known_hosts "
            "line(s) ('[host]:port keytype base64'; see fetch_host_key) — host keys are always "
            "checked"
        )
    try:
        return asyncssh.import_known_hosts(known_hosts)
    except (ValueError, asyncssh.KeyImportError) as exc:
        raise DeliveryError(f"the pinned known_hosts text cannot be read: {exc}") from exc


def pinned_fingerprints(known_hosts: str, host: str, port: int) -> list[str]:
    """Fingerprints pinned for host:port; all pinned ones if no line names it."""
    matched = load_known_hosts(known_hosts).match(host, "", port)[0]
    if matched:
        return [key.get_fingerprint("sha256") for key in matched]
    return [fingerprint(line) for line in pinned_lines(known_hosts)]


def pinned_key_types(known_hosts: str) -> set[str]:
    return {fields[0] for line in pinned_lines(known_hosts) if (fields := _key_fields(line))}


def _key_fields(line: str) -> tuple[str, bytes] | None:
    """(keytype, key blob) found in a line: the base64 field whose blob names the field
    before it, which skips host patterns, markers and comments."""
    tokens = line.split()
    for keytype, encoded in itertools.pairwise(tokens):
        try:
            blob = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if len(blob) > 4:
            length = int.from_bytes(blob[:4], "big")
            if blob[4 : 4 + length] == keytype.encode("ascii", "replace"):
                return keytype, blob
    return None
