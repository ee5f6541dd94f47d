"""Local servers the alert tests talk to: aiosmtpd's SMTP server and a webhook receiver, both on
loopback, started and stopped by fixtures; ``received_alert`` reads an alert back from what the
webhook received (apprise's json:// payload)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from naviance_pipeline.operations.alerts import KINDS

# ---- aiosmtpd's SMTP server (AUTH allowed without TLS: loopback only) --------------------------


class SmtpTestServer:
    """Every mail received: ``{"from", "to", "auth": (user, password) or None, "data": bytes}``."""

    def __init__(self) -> None:
        self.mails: list[dict] = []
        with socket.socket() as s:  # aiosmtpd's Controller cannot bind port 0 itself
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.controller = Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            auth_require_tls=False,
            authenticator=self._authenticate,
        )

    @staticmethod
    def _authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
        return AuthResult(success=True, auth_data=auth_data)

    async def handle_DATA(self, server, session, envelope) -> str:
        auth = session.auth_data
        self.mails.append(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "auth": (auth.login.decode(), auth.password.decode()) if auth else None,
                "data": envelope.original_content,
            }
        )
        return "250 OK queued"


@pytest.fixture
def smtp_server() -> Iterator[SmtpTestServer]:
    server = SmtpTestServer()
    server.controller.start()
    try:
        yield server
    finally:
        server.controller.stop()


# ---- a local webhook receiver -----------------------------------------------------------------


class _HookHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.posts.append((self.path, self.headers["Content-Type"], body))
        status = 500 if self.path.endswith("/broken") else 200
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:  # keep test output quiet
        pass


@pytest.fixture
def webhook_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HookHandler)
    server.posts = []
    # A short poll interval: shutdown() waits up to one interval.
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def hook_payload(content_type: str, body: bytes) -> dict:
    """What apprise posted: json:// sends JSON, form:// a url-encoded form."""
    if content_type.startswith("application/json"):
        return json.loads(body)
    return {key: values[0] for key, values in parse_qs(body.decode()).items()}


def received_alert(body: bytes) -> dict:
    """The alert's fields read back from a json:// post: kind (from the title), district,
    partition, counts and run link (from the message's lines)."""
    payload = json.loads(body)
    (kind,) = [k for k, text in KINDS.items() if f"] {text}: " in payload["title"]]
    alert = {"kind": kind, "type": payload["type"], "partition": None, "counts": {}}
    for line in payload["message"].splitlines()[2:]:
        key, _, value = line.strip().partition(": ")
        if line.startswith("  "):
            alert["counts"][key] = int(value)
        elif key in ("District", "Partition", "Run"):
            alert[{"Run": "run_url"}.get(key, key.lower())] = value
    return alert
