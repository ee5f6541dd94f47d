"""Alerts go through apprise to a real local SMTP server (aiosmtpd, mailto://) and a real local
webhook (json:// and form://); a dead channel is reported, not raised, and the others still get
the alert; no PII reaches the wire; no URL (they hold passwords and tokens) reaches an error
string or any log record; the retired SMTP/webhook variables are refused by name."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from email import message_from_bytes
from email.policy import default as default_policy
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from naviance_pipeline.oneroster.findings import finding
from naviance_pipeline.operations.alerts import (
    Alert,
    Channel,
    alert_from_findings,
    notifiers_from_env,
    send_all,
)
from naviance_pipeline_tests.local_servers import hook_payload, received_alert
from naviance_pipeline_tests.pipeline_helpers import first_student_editor, rewrite_zip

RUN_URL = "http://dagster.local:3000/runs/4f1c2b"
PII = ("Zebediah", "Quillfeather", "zq@example.org")
SECRET = "s3cret-Tok3n"  # in a webhook's path and a mail password, as real URLs hold them


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mail_url(port: int, credentials: str = "") -> str:
    return (
        f"mailto://{credentials}127.0.0.1:{port}"
        "?from=pipeline@district.example&to=ops@district.example,data@district.example"
    )


def _hook_url(server: ThreadingHTTPServer, path: str = f"/services/T0/B0/{SECRET}") -> str:
    return f"json://127.0.0.1:{server.server_address[1]}{path}"


def _channels(*urls: str) -> list[Channel]:
    return notifiers_from_env({"NAVIANCE_ALERT_URLS": " ".join(urls)})


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
    errors = send_all(_alert(), _channels(_mail_url(smtp_server.port)))

    assert errors == []
    # apprise sends one mail per recipient
    assert [mail["to"] for mail in smtp_server.mails] == [
        ["ops@district.example"],
        ["data@district.example"],
    ]
    message = message_from_bytes(smtp_server.mails[0]["data"], policy=default_policy)
    assert message["From"] == "pipeline@district.example"
    assert message["Subject"] == (
        "[Naviance OneRoster] delivery blocked by the guards: d1 2026-11-30"
    )
    text = message.get_body(("plain",)).get_content()
    assert text.splitlines()[2:] == [
        "District: d1",
        "Partition: 2026-11-30",
        " GRD-STUDENT-DROP: 1",  # apprise's text part keeps one of the two leading spaces
        " USR-EMAIL: 1",
        " USR-REQUIRED: 1",
        f"Run: {RUN_URL}",
    ]


def test_smtp_login_takes_the_password_from_the_url_and_never_shows_it(smtp_server):
    (channel,) = _channels(_mail_url(smtp_server.port, f"alerts:{SECRET}@"))

    assert send_all(_alert(), [channel]) == []
    assert smtp_server.mails[0]["auth"] == ("alerts", SECRET)
    assert SECRET not in repr(channel) and SECRET not in channel.describe()


def test_a_password_is_never_sent_unencrypted_to_a_remote_host():
    for url in (
        f"mailto://alerts:{SECRET}@mail.district.example?to=a@b.example",
        f"json://u:{SECRET}@hooks.example/x",
    ):
        with pytest.raises(ValueError, match="unencrypted") as caught:
            _channels(url)
        assert SECRET not in str(caught.value) and "district.example" not in str(caught.value)
    # the secure forms are accepted
    assert len(_channels(f"mailtos://alerts:{SECRET}@mail.district.example?to=a@b.example")) == 1


def test_webhook_receives_the_alert_as_json(webhook_server):
    errors = send_all(_alert(), _channels(_hook_url(webhook_server)))

    assert errors == []
    ((path, content_type, body),) = webhook_server.posts
    assert path == f"/services/T0/B0/{SECRET}"
    assert content_type.startswith("application/json")
    assert received_alert(body) == {
        "kind": "guard_blocked",
        "type": "failure",
        "district": "d1",
        "partition": "2026-11-30",
        "counts": {"GRD-STUDENT-DROP": 1, "USR-EMAIL": 1, "USR-REQUIRED": 1},
        "run_url": RUN_URL,
    }


def test_form_webhook_receives_the_same_text(webhook_server):
    port = webhook_server.server_address[1]

    assert send_all(_alert(), _channels(f"form://127.0.0.1:{port}/hook")) == []
    ((_, content_type, body),) = webhook_server.posts
    payload = hook_payload(content_type, body)
    assert payload["title"] == "[Naviance OneRoster] delivery blocked by the guards: d1 2026-11-30"
    assert "GRD-STUDENT-DROP: 1" in payload["message"] and RUN_URL in payload["message"]


def test_a_dead_channel_is_an_error_string_and_the_others_still_get_it(smtp_server, webhook_server):
    channels = _channels(
        _mail_url(_closed_port(), f"alerts:{SECRET}@"),
        _hook_url(webhook_server, f"/services/T0/B0/{SECRET}/broken"),  # answers 500
        _hook_url(webhook_server),
        _mail_url(smtp_server.port),
    )

    errors = send_all(_alert(), channels)

    assert len(errors) == 2
    assert errors[0].startswith("alert channel 1 (E-Mail): Connection error")
    assert errors[1].startswith("alert channel 2 (JSON): Failed to send JSON POST")
    assert "error=500" in errors[1]
    assert all(SECRET not in error and "/services/" not in error for error in errors)
    assert len(webhook_server.posts) == 2  # the broken one and the good one
    assert len(smtp_server.mails) == 2  # one per recipient


def test_no_url_reaches_any_log_record_even_at_debug(webhook_server):
    """apprise logs the full POST URL at DEBUG and urllib3 the path; a deployment that logs at
    DEBUG (or hands apprise's logger to Dagster) must still never see a token."""
    seen: list[str] = []

    class Everything(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(f"{record.name}: {record.getMessage()}")

    root, handler = logging.getLogger(), Everything(logging.NOTSET)
    level = root.level
    root.addHandler(handler)
    logging.getLogger("apprise").addHandler(handler)  # as Dagster's managed loggers would
    root.setLevel(logging.DEBUG)
    try:
        channels = _channels(
            _hook_url(webhook_server),
            _hook_url(webhook_server, f"/services/T0/B0/{SECRET}/broken"),
            f"json://127.0.0.1:{_closed_port()}/services/T0/B0/{SECRET}",
            f"mailto://alerts:{SECRET}@127.0.0.1:{_closed_port()}?from=a@b.example",
        )
        errors = send_all(_alert(), channels)
    finally:
        root.removeHandler(handler)
        logging.getLogger("apprise").removeHandler(handler)
        root.setLevel(level)

    assert len(errors) == 3 and len(webhook_server.posts) == 2
    for text in seen + errors:
        assert SECRET not in text and "/services/" not in text


def test_send_all_never_raises_even_for_a_url_apprise_cannot_use():
    channel = Channel(1, "nothing", f"nosuchscheme://{SECRET}")  # bypassing the check at load

    (error,) = send_all(_alert(), [channel])

    assert error.startswith("alert channel 1 (nothing): ") and SECRET not in error


def test_no_pii_reaches_the_wire(smtp_server, webhook_server):
    alert = _alert()
    port = webhook_server.server_address[1]
    channels = _channels(
        _mail_url(smtp_server.port), _hook_url(webhook_server), f"form://127.0.0.1:{port}/f"
    )

    assert send_all(alert, channels) == []

    wire = b"".join(m["data"] for m in smtp_server.mails)
    wire += b"".join(body for _, _, body in webhook_server.posts)
    assert len(smtp_server.mails) == 2 and len(webhook_server.posts) == 2
    for name in PII:
        assert name.encode() not in wire
    assert not any(name in repr(alert) for name in PII)


def test_notifiers_from_env_none_configured():
    assert notifiers_from_env({}) == []
    assert notifiers_from_env({"NAVIANCE_ALERT_URLS": " \n "}) == []


def test_notifiers_from_env_reads_every_channel_apprise_speaks():
    env = {
        "NAVIANCE_ALERT_URLS": (
            "mailtos://alerts:pw@smtp.district.example:587"
            "?from=pipeline@district.example&to=ops@district.example,data@district.example,\n"
            "https://hooks.slack.com/services/T000/B000/XXXXXXXX "
            "https://chat.googleapis.com/v1/spaces/AAAA/messages?key=KEY&token=TOK, "
            "https://prod-01.westus.logic.azure.com:443/workflows/abc/triggers/manual/paths/"
            "invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=SIG"
        )
    }

    channels = notifiers_from_env(env)

    assert [c.describe() for c in channels] == [
        "alert channel 1 (E-Mail)",
        "alert channel 2 (Slack)",
        "alert channel 3 (Google Chat)",
        "alert channel 4 (Power Automate / Workflows (for MSTeams))",
    ]
    assert "pw" not in repr(channels) and "XXXX" not in repr(channels)


@pytest.mark.parametrize(
    "urls",
    [f"json://127.0.0.1/x nosuchscheme://{SECRET}", f"json://127.0.0.1/x hooks.slack.com/{SECRET}"],
)
def test_a_url_apprise_cannot_use_is_named_by_its_place_not_its_text(urls):
    with pytest.raises(ValueError, match="NAVIANCE_ALERT_URLS entry 2") as caught:
        notifiers_from_env({"NAVIANCE_ALERT_URLS": urls})
    assert SECRET not in str(caught.value)


OLD_VARIABLES = [
    *("SMTP_HOST", "SMTP_PORT", "SMTP_FROM", "SMTP_TO", "SMTP_USER", "SMTP_PASSWORD"),
    *("SMTP_STARTTLS", "WEBHOOK_URL", "WEBHOOK_FORMAT"),
]


@pytest.mark.parametrize("name", [f"NAVIANCE_ALERT_{name}" for name in OLD_VARIABLES])
def test_the_old_smtp_and_webhook_variables_are_refused_naming_the_replacement(name):
    env = {name: "https://hooks.slack.com/services/T/B/x", "NAVIANCE_ALERT_URLS": "json://h/x"}

    with pytest.raises(ValueError, match="NAVIANCE_ALERT_URLS") as caught:
        notifiers_from_env(env)
    assert str(caught.value).startswith(f"{name}: no longer read")
    assert "services" not in str(caught.value)


def test_an_unknown_alert_kind_is_refused():
    with pytest.raises(ValueError, match="kind"):
        Alert("exploded", "d1", None, "x", {}, None)


# ---- naviance-pipeline run alerts by itself (no daemon) ----------------------------------------


def _failed_run(tmp_path: Path, source: Path, **alert_env: str) -> subprocess.CompletedProcess:
    """``naviance-pipeline run`` on an export whose first student has role ``pupil``."""
    bad = rewrite_zip(
        source, tmp_path / "bad.zip", "users.csv", first_student_editor({"role": "pupil"})[0]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NAVIANCE_", "DAGSTER_"))}
    (tmp_path / "dagster_home").mkdir()
    (tmp_path / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env.update(
        NAVIANCE_HOME=str(tmp_path),
        NAVIANCE_SOURCE_URL=str(bad),
        NAVIANCE_PARTITIONS_START="2026-01-01",
        DAGSTER_HOME=str(tmp_path / "dagster_home"),
        NAVIANCE_UI_URL="http://dagster.example:3000",
        **alert_env,
    )
    cli = Path(sys.executable).parent / "naviance-pipeline"
    proc = subprocess.run(
        [str(cli), "run", "--date", "2026-11-24"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 1 and "nothing was delivered" in proc.stderr, proc.stderr[-3000:]
    return proc


def test_run_alerts_every_channel_and_names_a_failed_one_without_its_url(
    tmp_path, tiny_district, webhook_server
):
    proc = _failed_run(
        tmp_path,
        tiny_district,
        NAVIANCE_ALERT_URLS=" ".join(
            [
                _hook_url(webhook_server, f"/services/T0/B0/{SECRET}/broken"),
                _hook_url(webhook_server),
            ]
        ),
    )

    assert "alert not sent: alert channel 1 (JSON): Failed to send JSON POST" in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
    broken, good = webhook_server.posts
    alert = received_alert(good[2])
    assert (alert["kind"], alert["counts"], alert["partition"]) == (
        "run_failed",
        {"USR-ROLE": 1},
        "2026-11-24",
    )
    assert alert["run_url"].startswith("http://dagster.example:3000/runs/")
    assert broken[2] == good[2]


def test_run_with_the_old_variables_says_what_replaces_them_and_does_not_trace_back(
    tmp_path, tiny_district
):
    closed = str(_closed_port())
    proc = _failed_run(
        tmp_path,
        tiny_district,
        NAVIANCE_ALERT_SMTP_HOST="127.0.0.1",
        NAVIANCE_ALERT_SMTP_PORT=closed,
        NAVIANCE_ALERT_SMTP_FROM="pipeline@district.example",
        NAVIANCE_ALERT_SMTP_TO="ops@district.example",
        NAVIANCE_ALERT_SMTP_STARTTLS="false",
        NAVIANCE_ALERT_WEBHOOK_URL=f"http://127.0.0.1:{closed}/services/T0/B0/{SECRET}",
    )

    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("alert not sent")]
    assert line.startswith("alert not sent: NAVIANCE_ALERT_SMTP_FROM, NAVIANCE_ALERT_SMTP_HOST,")
    assert "no longer read" in line and "NAVIANCE_ALERT_URLS" in line and "mailtos://" in line
    assert SECRET not in proc.stderr and "Traceback" not in proc.stderr
