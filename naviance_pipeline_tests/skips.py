"""``NAVIANCE_FAIL_ON_SKIP=1``: a skipped test fails the session (``.ci/run`` sets it).

About fifty tests skip, with a reason, where root, sshd, PostgreSQL, Redis or Chromium is
missing: right on a laptop, but on CI a skip is a test that quietly did not run. With the
variable set, any skip (or expected failure) of a test or of a whole module turns a passing
session into exit status 1, and the terminal summary lists what was skipped and why.

The root conftest registers this plugin; ``pytest -p naviance_pipeline_tests.skips`` loads it
alone (its own tests run it that way on a throw-away test file).
"""

from __future__ import annotations

import os

import pytest

FAIL_ON_SKIP_ENV = "NAVIANCE_FAIL_ON_SKIP"
PLUGIN_NAME = "naviance-fail-on-skip"


class FailOnSkip:
    def __init__(self) -> None:
        self.skipped: list[tuple[str, str]] = []  # (test or module, reason)

    def _record(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        if report.skipped:
            reason = getattr(report, "wasxfail", None)
            if reason is None and isinstance(report.longrepr, tuple):
                reason = report.longrepr[2]
            self.skipped.append((report.nodeid, str(reason or "skipped")))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._record(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        self._record(report)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        passing = (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
        if self.skipped and session.exitstatus in passing:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.skipped:
            return
        terminalreporter.section(
            f"{len(self.skipped)} skipped: fails the run ({FAIL_ON_SKIP_ENV}=1)", sep="=", red=True
        )
        for nodeid, reason in self.skipped:
            terminalreporter.line(f"SKIPPED {nodeid}: {reason}")


def register(config: pytest.Config) -> None:
    """Fail on skips when the variable asks for it and the plugin is not registered yet."""
    wanted = os.environ.get(FAIL_ON_SKIP_ENV, "").strip() == "1"
    if wanted and not config.pluginmanager.has_plugin(PLUGIN_NAME):
        config.pluginmanager.register(FailOnSkip(), PLUGIN_NAME)


def pytest_configure(config: pytest.Config) -> None:
    register(config)
