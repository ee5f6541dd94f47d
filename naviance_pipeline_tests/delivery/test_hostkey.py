"""Host-key helpers: fingerprints like ssh-keygen, known_hosts lines, a live server's key."""

from __future__ import annotations

import socket

import asyncssh
import pytest

from naviance_pipeline.delivery.errors import DeliveryError
from naviance_pipeline.delivery.hostkey import (
    fetch_host_key,
    fingerprint,
    known_hosts_line,
    load_known_hosts,
    pinned_fingerprints,
)


@pytest.fixture(scope="module")
def public_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519", comment="ops@example").convert_to_public()


def test_fingerprint_matches_asyncssh_for_key_and_known_hosts_lines(public_key):
    line = public_key.export_public_key().decode()
    expected = public_key.get_fingerprint("sha256")

    assert fingerprint(line) == expected  # "ssh-ed25519 AAAA... ops@example"
    assert fingerprint(f"[sftp.example.org]:2222 {line}") == expected
    assert fingerprint(f"@cert-authority *.example.org {line}") == expected
    assert expected.startswith("SHA256:") and not expected.endswith("=")


@pytest.mark.parametrize(
    "line", ["", "ssh-ed25519", "ssh-ed25519 not-base64!", "host ssh-rsa AAAA"]
)
def test_fingerprint_of_a_non_key_line_is_a_value_error(line):
    with pytest.raises(ValueError, match="not an SSH public key line"):
        fingerprint(line)


def test_known_hosts_line_brackets_non_default_ports(public_key):
    line = public_key.export_public_key().decode()
    keytype, blob = line.split()[:2]

    assert known_hosts_line("sftp.example.org", 22, line) == f"sftp.example.org {keytype} {blob}"
    assert known_hosts_line("10.0.0.5", 2222, line) == f"[10.0.0.5]:2222 {keytype} {blob}"


def test_pinned_fingerprints_prefer_the_lines_naming_the_host(public_key):
    other = asyncssh.generate_private_key("ssh-ed25519").convert_to_public()
    text = (
        "# pinned for delivery\n"
        + known_hosts_line("a.example.org", 22, public_key.export_public_key().decode())
        + "\n"
        + known_hosts_line("b.example.org", 2222, other.export_public_key().decode())
        + "\n"
    )

    assert pinned_fingerprints(text, "b.example.org", 2222) == [other.get_fingerprint("sha256")]
    # no line names c: every pinned key is listed, so the operator sees what is pinned
    assert len(pinned_fingerprints(text, "c.example.org", 22)) == 2


@pytest.mark.parametrize("text", ["", "   \n# only a comment\n", "garbage line\n"])
def test_known_hosts_without_a_key_is_refused(text):
    with pytest.raises(DeliveryError, match="no host key is pinned"):
        load_known_hosts(text)


def test_fetch_host_key_of_a_closed_port_is_a_delivery_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DeliveryError, match=f"could not read the host key of 127.0.0.1:{port}"):
        fetch_host_key("127.0.0.1", port, timeout=2.0)


@pytest.mark.sftp
def test_fetch_host_key_returns_the_servers_key_and_ssh_keygen_fingerprint(sftp_server):
    keys = fetch_host_key(sftp_server.host, sftp_server.port, timeout=5.0)

    assert keys == [(sftp_server.known_hosts_text.strip(), sftp_server.host_key_fingerprint())]
