"""Alerts to people: a run failed, the guards blocked a delivery, or a night passed without one.

An alert carries counts, rule codes, the district, the partition and a link to the run — never
a finding's message or value, so no PII can reach an inbox or a chat channel. Channels are an
SMTP server and an incoming webhook (Slack, or Teams through a Workflows webhook), configured by
environment variables; secrets (the SMTP password, the webhook URL, which holds a token) never
appear in a repr or an error string. ``send_all`` never raises: an alerting failure must not
hide the failure it reports.
"""

from __future__ import annotations

import ipaddress
import json
import os
import smtplib
import ssl
import urllib.request
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from naviance_pipeline.oneroster.findings import ERROR, Finding

KINDS = {
    "run_failed": "pipeline run failed",
    "guard_blocked": "delivery blocked by the guards",
    "delivery_missed": "no delivery",
}
ENV = "NAVIANCE_ALERT_"
PASSWORD_ENV = f"{ENV}SMTP_PASSWORD"
WEBHOOK_FORMATS = ("slack", "teams")


@dataclass(frozen=True)
class Alert:
    kind: str  # a key of KINDS
    district: str
    partition: str | None
    summary: str  # one line, counts and rule codes only — never PII
    counts: dict[str, int]  # e.g. errors by rule
    run_url: str | None  # link to the run in the Dagster UI

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown alert kind {self.kind!r}; known: {', '.join(KINDS)}")
        # One line whatever the caller passed: it also becomes part of a mail header.
        object.__setattr__(self, "summary", " ".join(self.summary.split()))


def alert_from_findings(
    kind: str,
    district: str,
    partition: str | None,
    findings: Iterable[Finding | Mapping],
    run_url: str | None = None,
) -> Alert:
    """An alert counting the error findings by rule. Only rule codes and counts are read from
    the findings: their messages and values never reach an alert."""
    rules = [f.rule if isinstance(f, Finding) else f["rule"] for f in findings if _is_error(f)]
    counts = dict(sorted(Counter(rules).items()))
    detail = ", ".join(f"{rule} ×{n}" for rule, n in counts.items()) or "no error findings"
    where = f"{district} {partition}" if partition else district
    summary = f"{KINDS[kind]} for {where}: {sum(counts.values())} error(s): {detail}"
    return Alert(kind, district, partition, summary, counts, run_url)


def _is_error(f: Finding | Mapping) -> bool:
    return (f.severity if isinstance(f, Finding) else f["severity"]) == ERROR


def subject(alert: Alert) -> str:
    where = f"{alert.district} {alert.partition}" if alert.partition else alert.district
    return " ".join(f"[Naviance OneRoster] {KINDS[alert.kind]}: {where}".split())


def alert_text(alert: Alert) -> str:
    """The alert as plain text (mail body, chat message)."""
    lines = [alert.summary, "", f"District: {alert.district}"]
    if alert.partition:
        lines.append(f"Partition: {alert.partition}")
    lines += [f"  {rule}: {n}" for rule, n in alert.counts.items()]
    lines.append(f"Run: {alert.run_url}" if alert.run_url else "Run: (no link)")
    return "\n".join(lines) + "\n"


@runtime_checkable
class Notifier(Protocol):
    def describe(self) -> str:
        """The channel, without secrets, for error strings."""
        ...

    def send(self, alert: Alert) -> None: ...


@dataclass(frozen=True)
class SmtpNotifier:
    """Mail through an SMTP server; the password is read from the environment variable named
    ``password_env`` when sending, so it is never held in configuration."""

    host: str
    sender: str
    recipients: tuple[str, ...]
    port: int = 587
    username: str | None = None
    password_env: str | None = PASSWORD_ENV
    starttls: bool = True
    timeout: float = 30.0
    environ: Mapping[str, str] | None = field(default=None, repr=False, compare=False)

    def describe(self) -> str:
        return f"smtp {self.host}:{self.port}"

    def _password(self) -> str:
        env = os.environ if self.environ is None else self.environ
        password = env.get(self.password_env or "")
        if not password:
            raise ValueError(
                f"SMTP user is set but {self.password_env or 'no password variable'} is not"
            )
        return password

    def send(self, alert: Alert) -> None:
        if self.username and not self.starttls and not _is_loopback(self.host):
            raise ValueError(
                f"refusing to send the SMTP password unencrypted to {self.host}: "
                f"set {ENV}SMTP_STARTTLS=true"
            )
        message = EmailMessage()
        message["Subject"] = subject(alert)
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message.set_content(alert_text(alert))
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self._password())
            smtp.send_message(message)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebhookError(Exception):
    """A webhook POST failed; the text never holds the URL (its path is a secret token)."""


@dataclass(frozen=True)
class WebhookNotifier:
    """POSTs JSON to an incoming webhook: ``{"text": ..., "alert": {...}}``, which Slack (and
    the retired Teams connectors) show as a message. ``format="teams"`` adds the Adaptive Card
    attachment that a Teams Workflows webhook needs."""

    url: str = field(repr=False)
    timeout: float = 10.0
    format: str = "slack"

    def __post_init__(self) -> None:
        # urllib would also open file:// and ftp:// URLs.
        if urlsplit(self.url).scheme not in ("http", "https"):
            raise ValueError("the alert webhook URL must be http:// or https://")
        if self.format not in WEBHOOK_FORMATS:
            raise ValueError(f"webhook format must be one of {', '.join(WEBHOOK_FORMATS)}")

    def describe(self) -> str:
        parts = urlsplit(self.url)
        return f"webhook {parts.scheme}://{parts.hostname}"

    def payload(self, alert: Alert) -> dict:
        text = alert_text(alert)
        body: dict = {"text": text, "alert": asdict(alert)}
        if self.format == "teams":
            card = {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": [{"type": "TextBlock", "text": text, "wrap": True}],
            }
            body["type"] = "message"
            body["attachments"] = [
                {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
            ]
        return body

    def send(self, alert: Alert) -> None:
        request = urllib.request.Request(
            self.url,
            data=json.dumps(self.payload(alert)).encode(),
            headers={"Content-Type": "application/json; charset=utf-8"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except Exception as exc:  # re-raised without the URL
            raise WebhookError(f"{type(exc).__name__}: {exc}".replace(self.url, "<url>")) from None


def _flag(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {value!r}")


def notifiers_from_env(environ: Mapping[str, str] | None = None) -> list[Notifier]:
    """The channels configured by ``NAVIANCE_ALERT_*`` variables (none configured: ``[]``).

    SMTP: ``_SMTP_HOST`` (switches it on), ``_SMTP_FROM``, ``_SMTP_TO`` (comma list) required;
    ``_SMTP_PORT`` (587), ``_SMTP_USER``, ``_SMTP_PASSWORD`` (read at send time),
    ``_SMTP_STARTTLS`` (true). Webhook: ``_WEBHOOK_URL``, ``_WEBHOOK_FORMAT`` (slack|teams).
    Raises ValueError naming the variable when one is missing or malformed."""
    env = os.environ if environ is None else environ

    def get(name: str) -> str:
        return (env.get(f"{ENV}{name}") or "").strip()

    notifiers: list[Notifier] = []
    if get("SMTP_HOST"):
        recipients = tuple(a.strip() for a in get("SMTP_TO").split(",") if a.strip())
        missing = [
            f"{ENV}{n}"
            for n, v in (("SMTP_FROM", get("SMTP_FROM")), ("SMTP_TO", recipients))
            if not v
        ]
        if missing:
            raise ValueError(f"alert mail needs {' and '.join(missing)}")
        port = get("SMTP_PORT") or "587"
        if not port.isdigit():
            raise ValueError(f"{ENV}SMTP_PORT must be a number, got {port!r}")
        starttls = get("SMTP_STARTTLS")
        notifiers.append(
            SmtpNotifier(
                host=get("SMTP_HOST"),
                sender=get("SMTP_FROM"),
                recipients=recipients,
                port=int(port),
                username=get("SMTP_USER") or None,
                starttls=_flag(f"{ENV}SMTP_STARTTLS", starttls) if starttls else True,
                environ=environ,
            )
        )
    if get("WEBHOOK_URL"):
        notifiers.append(
            WebhookNotifier(get("WEBHOOK_URL"), format=get("WEBHOOK_FORMAT").lower() or "slack")
        )
    return notifiers


def _channel(notifier: Notifier) -> str:
    try:
        return notifier.describe()
    except Exception:  # a label must never raise
        return type(notifier).__name__


def send_all(alert: Alert, notifiers: list[Notifier]) -> list[str]:
    """Send ``alert`` on every channel; never raises. Returns one error string per channel that
    failed (empty: all delivered), so the caller can log them next to the original failure."""
    errors = []
    for notifier in notifiers:
        try:
            notifier.send(alert)
        except Exception as exc:  # one failed channel must not stop the others
            errors.append(f"{_channel(notifier)}: {type(exc).__name__}: {exc}")
    return errors
