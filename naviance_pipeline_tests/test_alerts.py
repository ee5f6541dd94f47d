"""Alerts reach a real local SMTP server and a local webhook; a dead channel is reported, not
raised, and the other still gets the alert; no PII reaches the wire."""

from __future__ import annotations

import json
import socket
from email import message_from_bytes
from email.policy import default as default_policy
from http.server import ThreadingHTTPServer

import pytest

from naviance_pipeline.oneroster.findings import finding
from naviance_pipeline.operations.alerts import (
    Alert,
    SmtpNotifier,
    WebhookNotifier,
    alert_from_findings,
    notifiers_from_env,
    send_all,
)
from naviance_pipeline_tests.local_servers import SmtpTestServer

RUN_URL = "http://dagster.local:3000/runs/4f1c2b"
PII = ("Zebediah", "Quillfeather", "zq@example.org")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _smtp(server: SmtpTestServer, **kwargs) -> SmtpNotifier:
    return SmtpNotifier(
        host="127.0.0.1",
        port=server.server_address[1],
        sender="pipeline@district.example",
        recipients=("ops@district.example", "data@district.example"),
        starttls=False,
        timeout=5,
        **kwargs,
    )


def _hook_url(server: ThreadingHTTPServer, path: str = "/services/T0/B0/secret-token") -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def _findings_with_pii() -> list:
    """Findings whose messages and values hold names (as a careless stage might write them)."""
    return [
        finding("GRD-STUDENT-DROP", "active students fell from 100 to 50"),
        finding(
            "USR-REQUIRED",
            f"blank familyName for {PII[0]}",  # a message that breaks the rule, on purpose
            file="users.csv",
            line=7,
            column="familyName",
            sourced_id="u7",
        ),
        {"rule": "USR-EMAIL", "severity": "error", "message": PII[2], "value": PII[1]},
        finding("USR-NAME-CHARS", f"{PII[1]} has a comma", value=PII[1]),  # a warning
    ]


def _alert() -> Alert:
    return alert_from_findings(
        "guard_blocked", "d1", "2026-11-30", _findings_with_pii(), run_url=RUN_URL
    )


# ---- tests -------------------------------------------------------------------------------------


def test_alert_from_findings_counts_errors_by_rule_only():
    alert = _alert()

    assert alert.counts == {"GRD-STUDENT-DROP": 1, "USR-EMAIL": 1, "USR-REQUIRED": 1}
    assert "3 error(s)" in alert.summary and "GRD-STUDENT-DROP ×1" in alert.summary
    assert "\n" not in alert.summary


def test_mail_reaches_the_smtp_server_with_rule_codes_and_run_link(smtp_server):
    errors = send_all(_alert(), [_smtp(smtp_server)])

    assert errors == []
    (mail,) = smtp_server.mails
    assert mail["to"] == ["<ops@district.example>", "<data@district.example>"]
    message = message_from_bytes(mail["data"], policy=default_policy)
    assert message["Subject"] == (
        "[Naviance OneRoster] delivery blocked by the guards: d1 2026-11-30"
    )
    body = message.get_content()
    for code in ("GRD-STUDENT-DROP", "USR-REQUIRED", "USR-EMAIL"):
        assert code in body
    assert RUN_URL in body


def test_smtp_login_reads_the_password_from_the_named_variable(smtp_server):
    notifier = _smtp(
        smtp_server,
        username="alerts",
        password_env="MY_SMTP_SECRET",
        environ={"MY_SMTP_SECRET": "s3cret-pw"},
    )

    assert send_all(_alert(), [notifier]) == []
    assert smtp_server.mails[0]["auth"] == ("alerts", "s3cret-pw")
    assert "s3cret-pw" not in repr(notifier)


def test_smtp_user_without_password_is_an_error_string(smtp_server):
    notifier = _smtp(smtp_server, username="alerts", password_env="UNSET_VAR", environ={})

    (error,) = send_all(_alert(), [notifier])

    assert "UNSET_VAR" in error and error.startswith("smtp 127.0.0.1:")
    assert smtp_server.mails == []


def test_smtp_never_sends_a_password_unencrypted_to_a_remote_host():
    notifier = SmtpNotifier(
        "mail.district.example",
        "a@b.example",
        ("c@d.example",),
        username="alerts",
        starttls=False,
        environ={"NAVIANCE_ALERT_SMTP_PASSWORD": "pw"},
    )

    (error,) = send_all(_alert(), [notifier])

    assert "unencrypted" in error and "pw" not in error


def test_webhook_receives_slack_compatible_json(webhook_server):
    errors = send_all(_alert(), [WebhookNotifier(_hook_url(webhook_server), timeout=5)])

    assert errors == []
    ((path, content_type, body),) = webhook_server.posts
    assert path == "/services/T0/B0/secret-token"
    assert content_type.startswith("application/json")
    payload = json.loads(body)
    assert "GRD-STUDENT-DROP" in payload["text"] and RUN_URL in payload["text"]
    assert payload["alert"]["kind"] == "guard_blocked"
    assert payload["alert"]["counts"]["USR-REQUIRED"] == 1
    assert payload["alert"]["run_url"] == RUN_URL


def test_teams_format_adds_an_adaptive_card(webhook_server):
    notifier = WebhookNotifier(_hook_url(webhook_server), timeout=5, format="teams")

    assert send_all(_alert(), [notifier]) == []
    payload = json.loads(webhook_server.posts[0][2])
    (attachment,) = payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert RUN_URL in attachment["content"]["body"][0]["text"]


def test_a_dead_channel_is_an_error_string_and_the_other_channel_still_gets_it(
    webhook_server,
):
    dead = SmtpNotifier(
        "127.0.0.1", "a@b.example", ("c@d.example",), port=_closed_port(), starttls=False
    )
    hook = WebhookNotifier(_hook_url(webhook_server), timeout=5)

    errors = send_all(_alert(), [dead, hook])

    assert len(errors) == 1
    assert errors[0].startswith(f"smtp 127.0.0.1:{dead.port}: ")
    assert "ConnectionRefusedError" in errors[0]
    assert len(webhook_server.posts) == 1


def test_a_failing_webhook_error_never_shows_its_secret_url(webhook_server):
    url = _hook_url(webhook_server, "/services/T0/B0/broken")
    hook = WebhookNotifier(url, timeout=5)

    (error,) = send_all(_alert(), [hook])

    assert "HTTP Error 500" in error
    assert "/services/" not in error and "/services/" not in repr(hook)
    assert error.startswith("webhook http://127.0.0.1: ")


def test_send_all_never_raises_even_for_an_odd_notifier():
    class Broken:
        def describe(self) -> str:
            raise RuntimeError("no label")

        def send(self, alert: Alert) -> None:
            raise KeyError("boom")

    assert send_all(_alert(), [Broken()]) == ["Broken: KeyError: 'boom'"]


def test_no_pii_reaches_the_wire(smtp_server, webhook_server):
    alert = _alert()
    assert send_all(alert, [_smtp(smtp_server), WebhookNotifier(_hook_url(webhook_server))]) == []

    wire = smtp_server.mails[0]["data"] + webhook_server.posts[0][2]
    for name in PII:
        assert name.encode() not in wire
    assert not any(name in repr(alert) for name in PII)


def test_notifiers_from_env_none_configured():
    assert notifiers_from_env({}) == []


def test_notifiers_from_env_builds_both_channels():
    env = {
        "NAVIANCE_ALERT_SMTP_HOST": "mail.district.example",
        "NAVIANCE_ALERT_SMTP_PORT": "2525",
        "NAVIANCE_ALERT_SMTP_FROM": "pipeline@district.example",
        "NAVIANCE_ALERT_SMTP_TO": "ops@district.example, data@district.example",
        "NAVIANCE_ALERT_SMTP_USER": "alerts",
        "NAVIANCE_ALERT_SMTP_PASSWORD": "pw",
        "NAVIANCE_ALERT_SMTP_STARTTLS": "false",
        "NAVIANCE_ALERT_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x",
    }

    smtp, hook = notifiers_from_env(env)

    assert isinstance(smtp, SmtpNotifier) and isinstance(hook, WebhookNotifier)
    assert (smtp.host, smtp.port, smtp.username, smtp.starttls) == (
        "mail.district.example",
        2525,
        "alerts",
        False,
    )
    assert smtp.recipients == ("ops@district.example", "data@district.example")
    assert smtp.password_env == "NAVIANCE_ALERT_SMTP_PASSWORD"
    assert smtp._password() == "pw"
    assert hook.describe() == "webhook https://hooks.slack.com"
    assert "pw" not in repr(smtp) and "services" not in repr(hook)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NAVIANCE_ALERT_SMTP_HOST": "h", "NAVIANCE_ALERT_SMTP_TO": "a@b"}, "SMTP_FROM"),
        ({"NAVIANCE_ALERT_SMTP_HOST": "h", "NAVIANCE_ALERT_SMTP_FROM": "a@b"}, "SMTP_TO"),
        (
            {
                "NAVIANCE_ALERT_SMTP_HOST": "h",
                "NAVIANCE_ALERT_SMTP_FROM": "a@b",
                "NAVIANCE_ALERT_SMTP_TO": "c@d",
                "NAVIANCE_ALERT_SMTP_STARTTLS": "maybe",
            },
            "STARTTLS",
        ),
        ({"NAVIANCE_ALERT_WEBHOOK_URL": "file:///etc/passwd"}, "http"),
        (
            {"NAVIANCE_ALERT_WEBHOOK_URL": "https://x", "NAVIANCE_ALERT_WEBHOOK_FORMAT": "irc"},
            "format",
        ),
    ],
)
def test_notifiers_from_env_names_a_bad_setting(env, message):
    with pytest.raises(ValueError, match=message):
        notifiers_from_env(env)


def test_an_unknown_alert_kind_is_refused():
    with pytest.raises(ValueError, match="kind"):
        Alert("exploded", "d1", None, "x", {}, None)
