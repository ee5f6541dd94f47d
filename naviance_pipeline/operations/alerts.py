"""Alerts to people: a run failed, the guards blocked a delivery, or a night passed without one.

An alert carries counts, rule codes, the district, the partition and a link to the run — never
a finding's message or value, so no PII can reach an inbox or a chat channel. It is sent by
apprise to every channel of ``NAVIANCE_ALERT_URLS``: one apprise URL per channel (e-mail,
Slack, Teams, Google Chat, ...; https://github.com/caronc/apprise/wiki). The URLs hold
passwords and tokens: they never appear in a repr, an error string or a log line (apprise's
and urllib3's loggers are held at WARNING and captured while sending, their messages redacted).
``send_all`` never raises: an alerting failure must not hide the failure it reports.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import unquote

from naviance_pipeline.oneroster.findings import ERROR, Finding

KINDS = {
    "run_failed": "pipeline run failed",
    "guard_blocked": "delivery blocked by the guards",
    "delivery_missed": "no delivery",
    "export_stale": "SIS export is stale",
}
WARNING_KINDS = ("delivery_missed", "export_stale")  # sent as warnings, not failures
URLS_ENV = "NAVIANCE_ALERT_URLS"
# The channels of versions before apprise; refused by name rather than silently ignored.
RETIRED_PREFIXES = ("NAVIANCE_ALERT_SMTP_", "NAVIANCE_ALERT_WEBHOOK_")
_LOGGERS = ("apprise", "urllib3")  # both log URLs (paths hold webhook tokens) below WARNING
_LOG_LOCK = threading.Lock()


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


class AlertNotSent(Exception):
    """A channel failed; the text never holds its URL or any piece of it."""


@dataclass(frozen=True)
class Channel:
    """One apprise URL of ``NAVIANCE_ALERT_URLS``, named by its place and service only."""

    number: int  # 1-based place in NAVIANCE_ALERT_URLS
    service: str  # apprise's name for it: "E-Mail", "Slack", "JSON", ...
    url: str = field(repr=False)

    def describe(self) -> str:
        return f"alert channel {self.number} ({self.service})"

    def send(self, alert: Alert) -> None:
        import apprise  # here, not at module level: 0.4 s more for every process that starts

        warning = alert.kind in WARNING_KINDS
        kind = apprise.NotifyType.WARNING if warning else apprise.NotifyType.FAILURE
        with _apprise_logs() as records:
            try:
                sender = apprise.Apprise(asset=_asset())  # converts the text for each service
                sent = sender.add(self.url) and sender.notify(
                    body=alert_text(alert),
                    title=subject(alert),
                    notify_type=kind,
                    body_format=apprise.NotifyFormat.TEXT,
                )
            except Exception as exc:  # a plugin's own bug; its text may hold the URL
                records.append(f"{type(exc).__name__}: {exc}")
                sent = False
        if not sent:
            raise AlertNotSent(_redact("; ".join(records) or "not delivered", self.url))


def _redact(text: str, url: str) -> str:
    """``text`` without the URL or any piece of it (host, user, password, path, query value):
    the host of a Slack or Google Chat URL is a token too."""
    rest = url.split("://", 1)[-1]
    pieces = {url, rest, *re.split(r"[/:@?&=#,;\s]+", rest)}
    for piece in sorted(pieces | {unquote(p) for p in pieces}, key=len, reverse=True):
        if len(piece) >= 3:
            text = text.replace(piece, "…")
    # Any URL left, and apprise's own masking ("p...w": a secret's first and last character).
    return re.sub(r"\S*(://|\.\.\.)\S*", "…", text)


class _Capture(logging.Handler):
    def __init__(self, records: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record.getMessage())


@contextmanager
def _apprise_logs() -> Iterator[list[str]]:
    """While apprise works: its loggers (and urllib3's) create no record below WARNING — the
    ones that print URLs, payloads and recipients — and hand the rest to the caller, not to
    any handler of the process, so the caller can redact them."""
    records: list[str] = []
    with _LOG_LOCK:
        saved = []
        for name in _LOGGERS:
            logger = logging.getLogger(name)
            saved.append((logger, logger.level, logger.propagate, logger.handlers))
            logger.setLevel(logging.WARNING)
            logger.propagate = False
            logger.handlers = [_Capture(records)]
        try:
            yield records
        finally:
            for logger, level, propagate, handlers in saved:
                logger.setLevel(level)
                logger.propagate = propagate
                logger.handlers = handlers


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def _asset():
    import apprise

    return apprise.AppriseAsset(app_id="Naviance OneRoster", app_desc="naviance_pipeline alerts")


def _channel(number: int, url: str) -> Channel:
    import apprise

    where = f"{URLS_ENV} entry {number}"
    with _apprise_logs() as records:
        plugin = apprise.Apprise.instantiate(url, asset=_asset())
    if plugin is None:
        scheme = url.split("://", 1)[0] if "://" in url else ""
        named = f" ({scheme}://…)" if re.fullmatch(r"[a-z][a-z0-9+.-]{0,15}", scheme) else ""
        why = _redact("; ".join(records), url)
        raise ValueError(f"{where}{named} is not a URL apprise can send to: {why or '?'}")
    if plugin.protocol and not plugin.secure and plugin.password and not _is_loopback(plugin.host):
        raise ValueError(
            f"{where} would send its password unencrypted to a remote host: use the secure "
            "form of its scheme (mailtos://, jsons://, ...)"
        )
    return Channel(number, plugin.service_name, url)


def notifiers_from_env(environ: Mapping[str, str] | None = None) -> list[Channel]:
    """The channels of ``NAVIANCE_ALERT_URLS``: apprise URLs separated by commas, spaces or
    newlines (none configured: ``[]``). Raises ValueError — naming the variable and the
    entry's number, never the URL — for a URL apprise cannot use, one that would send a
    password unencrypted to a remote host, or a variable of the old SMTP/webhook channels."""
    env = os.environ if environ is None else environ
    retired = sorted(n for n, v in env.items() if n.startswith(RETIRED_PREFIXES) and v.strip())
    if retired:
        raise ValueError(
            f"{', '.join(retired)}: no longer read; alerts now go to the apprise URLs in "
            f"{URLS_ENV}, e.g. mailtos://USER:PASSWORD@HOST:587?from=FROM&to=TO1,TO2 for "
            "mail, or the Slack/Teams webhook URL itself (README, Alerts); unset these"
        )
    # A comma separates URLs only before the next scheme: mailto's "to=a@b,c@d" keeps its own.
    parts = re.split(r"\s+|,(?=\s*[a-z][a-z0-9+.-]*://)", env.get(URLS_ENV) or "")
    urls = [url for part in parts if (url := part.strip(" ,"))]
    return [_channel(number, url) for number, url in enumerate(urls, 1)]


def send_all(alert: Alert, notifiers: list[Channel]) -> list[str]:
    """Send ``alert`` on every channel; never raises. Returns one error string per channel that
    failed (empty: all delivered), so the caller can log them next to the original failure."""
    errors = []
    for channel in notifiers:
        try:
            channel.send(alert)
        except Exception as exc:  # one failed channel must not stop the others
            errors.append(f"{channel.describe()}: {_redact(str(exc), channel.url)}")
    return errors
