"""Local servers the alert tests talk to: a tiny SMTP server and a webhook receiver, both on
loopback, started and stopped by fixtures."""

from __future__ import annotations

import base64
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

# ---- a tiny SMTP server (EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT) -----------------------------


class _SmtpHandler(socketserver.StreamRequestHandler):
    def reply(self, line: str) -> None:
        self.wfile.write(f"{line}\r\n".encode())

    def handle(self) -> None:
        mail = {"from": None, "to": [], "auth": None, "data": b""}
        self.reply("220 test ESMTP")
        while raw := self.rfile.readline():
            command = raw.decode().rstrip("\r\n")
            verb = command.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.reply("250-test")
                self.reply("250 AUTH PLAIN")
            elif verb == "AUTH":
                _, user, password = base64.b64decode(command.split()[2]).split(b"\0")
                mail["auth"] = (user.decode(), password.decode())
                self.reply("235 2.7.0 Authentication successful")
            elif verb == "MAIL":
                mail["from"] = command.split(":", 1)[1].strip()
                self.reply("250 OK")
            elif verb == "RCPT":
                mail["to"].append(command.split(":", 1)[1].strip())
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                lines = []
                while (line := self.rfile.readline()) not in (b".\r\n", b""):
                    lines.append(line[1:] if line.startswith(b"..") else line)
                mail["data"] = b"".join(lines)
                self.server.mails.append(dict(mail))
                self.reply("250 OK queued")
            elif verb == "QUIT":
                self.reply("221 Bye")
                return
            else:
                self.reply("250 OK")


class SmtpTestServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SmtpHandler)
        self.mails: list[dict] = []


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


def _serve(server) -> Iterator:
    # A short poll interval: shutdown() waits up to one interval.
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def smtp_server() -> Iterator[SmtpTestServer]:
    yield from _serve(SmtpTestServer())


@pytest.fixture
def webhook_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HookHandler)
    server.posts = []
    yield from _serve(server)
