"""Settings: every NAVIANCE_* variable declared once (settings.py), read from the environment
and a .env file (the environment wins), validated when read with one line naming the variable,
documented in the README and in ``naviance-pipeline --help`` from the same declaration."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from naviance_pipeline.definitions import build_definitions
from naviance_pipeline.delivery.targets import registry as targets
from naviance_pipeline.operations import settings as settings_module
from naviance_pipeline.operations.settings import Settings, SettingsError, environment_help
from naviance_pipeline.sources.kinds import names as kind_names

ROOT = Path(__file__).resolve().parents[1]
KNOWN_TARGETS = "; ".join(t.url_help for t in targets().values())


@pytest.fixture
def env(tmp_path, monkeypatch) -> dict[str, str]:
    """No NAVIANCE_* variable set, the working directory an empty folder; whatever a test (or
    a .env file it loads) puts in the environment is undone afterwards."""
    saved = dict(os.environ)
    for name in [n for n in os.environ if n.startswith("NAVIANCE_")]:
        del os.environ[name]
    monkeypatch.chdir(tmp_path)
    yield os.environ
    os.environ.clear()
    os.environ.update(saved)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "NAVIANCE_SOURCE_KIND",
            "oracle",
            f"NAVIANCE_SOURCE_KIND: 'oracle' must be one of {', '.join(kind_names())}",
        ),
        (
            "NAVIANCE_DELIVERY_TARGET",
            "ftp://files.example.org/in",
            "NAVIANCE_DELIVERY_TARGET: unsupported delivery target scheme 'ftp': use "
            + KNOWN_TARGETS,
        ),
        (
            "NAVIANCE_TIMEZONE",
            "America/Nowhere",
            'NAVIANCE_TIMEZONE: "America/Nowhere" is not a known timezone',
        ),
        ("NAVIANCE_SCHEDULE_TIME", "2am", 'NAVIANCE_SCHEDULE_TIME: "2am" must be HH:MM (24-hour)'),
        ("NAVIANCE_ROLLOVER_DAY", "15-07", "NAVIANCE_ROLLOVER_DAY: '15-07' must be MM-DD"),
        (
            "NAVIANCE_PARTITIONS_START",
            "2026-02-30",
            "NAVIANCE_PARTITIONS_START: '2026-02-30' is not a YYYY-MM-DD date",
        ),
        (
            "NAVIANCE_INCLUDE_STAFF",
            "sometimes",
            "NAVIANCE_INCLUDE_STAFF: Input should be a valid boolean, unable to interpret input",
        ),
        (
            "NAVIANCE_EXECUTOR",
            "celery",
            "NAVIANCE_EXECUTOR: no longer read; a run executes its steps in one process, and many "
            "runs go in parallel through the Celery run launcher of deploy/dagster.yaml "
            "(DEPLOYMENT.md)",
        ),
        ("NAVIANCE_RETENTION_DAYS", "0", "NAVIANCE_RETENTION_DAYS: Input should be greater than 0"),
        (
            "NAVIANCE_DELIVERY_LOCK_TIMEOUT",
            "an hour",
            "NAVIANCE_DELIVERY_LOCK_TIMEOUT: Input should be a valid number, unable to parse "
            "string as a number",
        ),
        (
            "NAVIANCE_MAX_SOURCE_BYTES",
            "-5",
            "NAVIANCE_MAX_SOURCE_BYTES: must be a positive number of bytes",
        ),
    ],
)
def test_a_bad_value_is_refused_at_load_naming_the_variable(env, variable, value, expected):
    env[variable] = value
    with pytest.raises(SettingsError) as caught:
        Settings.from_env()
    assert str(caught.value) == expected


def test_every_bad_value_is_named_at_once_and_no_secret_is_echoed(env):
    env["NAVIANCE_DELIVERY_TARGET"] = "sftp://naviance:hunter2@sftp.example.org/upload"
    env["NAVIANCE_SOURCE_KIND"] = "sis_csv"
    with pytest.raises(SettingsError) as caught:
        Settings.from_env()
    message = str(caught.value)
    assert "\n" not in message and "hunter2" not in message
    assert message.startswith("NAVIANCE_SOURCE_KIND: 'sis_csv' must be one of")
    assert "; NAVIANCE_DELIVERY_TARGET: the SFTP URL must not contain a password" in message


def test_the_definitions_refuse_to_load_with_a_bad_setting(env):
    """What the UI shows as the code location's load error: the one line."""
    env["NAVIANCE_SOURCE_KIND"] = "csv"
    with pytest.raises(SettingsError, match=r"^NAVIANCE_SOURCE_KIND: 'csv' must be one of"):
        build_definitions()


def test_a_dotenv_file_is_read_and_the_environment_wins(env, tmp_path):
    (tmp_path / ".env").write_text(
        "# the nightly run\nNAVIANCE_SCHEDULE_TIME=04:30\nNAVIANCE_DISTRICT=from-the-file\n"
        "NAVIANCE_SFTP_PASSWORD='s3cret from the file'\n"
    )
    env["NAVIANCE_DISTRICT"] = "from-the-environment"
    settings = Settings.from_env()
    assert (settings.schedule_time, settings.district) == ("04:30", "from-the-environment")
    # Secrets are read from the environment at run time: the file's are there too.
    assert env["NAVIANCE_SFTP_PASSWORD"] == "s3cret from the file"
    schedule = build_definitions(settings).resolve_schedule_def("nightly_schedule")
    assert schedule.cron_schedule == "30 4 * * *"


def test_the_env_file_can_be_named_and_a_missing_one_is_refused(env, tmp_path):
    named = tmp_path / "etc" / "naviance.env"
    named.parent.mkdir()
    named.write_text("NAVIANCE_TIMEZONE=Pacific/Auckland\n")
    (tmp_path / ".env").write_text("NAVIANCE_TIMEZONE=America/Chicago\n")
    env["NAVIANCE_ENV_FILE"] = str(named)
    assert Settings.from_env().timezone == "Pacific/Auckland"
    env["NAVIANCE_ENV_FILE"] = str(tmp_path / "gone.env")
    with pytest.raises(SettingsError, match=r"^NAVIANCE_ENV_FILE: '.*gone.env' is not a file$"):
        Settings.from_env()


def test_dotenv_is_ignored_by_git():
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".env"], cwd=ROOT, capture_output=True, check=False
    )
    assert ignored.returncode == 0


def test_help_lists_every_variable_with_its_default(env):
    text = environment_help()
    for name in Settings.model_fields:
        variable = settings_module.variable(name)
        assert len(re.findall(rf"^  {variable}$", text, re.M)) == 1, variable
    assert "NAVIANCE_SOURCE_SYSTEM\n" in text  # the one variable not named after its field
    flat = " ".join(text.split())
    assert "(default: America/New_York)" in flat and "(default: 3600)" in flat
    for secret in settings_module.secret_variables():
        assert secret in text.split("secrets")[-1]
    cli = str(Path(sys.executable).parent / "naviance-pipeline")
    shown = subprocess.run([cli, "--help"], capture_output=True, text=True, check=True, env=env)
    assert text in shown.stdout


def test_the_command_line_refuses_a_bad_setting_in_one_line(env, tmp_path):
    env["NAVIANCE_SOURCE_KIND"] = "oracle"
    cli = str(Path(sys.executable).parent / "naviance-pipeline")
    done = subprocess.run(
        [cli, "report", "--date", "2026-11-24"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 2
    assert done.stderr == (
        "naviance-pipeline: error: NAVIANCE_SOURCE_KIND: 'oracle' must be one of "
        f"{', '.join(kind_names())}\n"
    )


# --- the README's table is generated ---------------------------------------------------------

REGENERATE = "python -m naviance_pipeline.operations.settings --markdown"


def _readme_table() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- generated: settings [^>]*-->\n(.*?)<!-- end generated -->", text, re.S)
    assert block, "README.md has no generated settings table"
    return block[1]


def test_the_readme_table_is_generated_from_the_settings():
    assert _readme_table() == settings_module.markdown(), (
        f"README.md's Configuration table is stale; replace it with the output of {REGENERATE}"
    )


def test_a_changed_setting_makes_the_readme_stale(monkeypatch):
    """The check above can fail: a changed default shows."""
    field = Settings.model_fields["schedule_time"]
    monkeypatch.setattr(field, "default", "03:00")
    assert "| `NAVIANCE_SCHEDULE_TIME` | `03:00` |" in settings_module.markdown()
    assert _readme_table() != settings_module.markdown()


def test_the_command_line_reads_the_dotenv_before_its_options(env, tmp_path):
    """`validate`'s --kind defaults to NAVIANCE_SOURCE_KIND: from the .env file too."""
    (tmp_path / ".env").write_text("NAVIANCE_SOURCE_KIND=sql\n")
    cli = str(Path(sys.executable).parent / "naviance-pipeline")
    done = subprocess.run([cli, "validate", "missing.zip"], capture_output=True, text=True, env=env)
    assert "the SIS database URL cannot be parsed" in done.stdout + done.stderr
