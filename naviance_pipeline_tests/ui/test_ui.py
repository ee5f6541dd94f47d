"""The Dagster UI as a person uses it: ``dagster dev`` on loopback, a partitioned run of the
nightly job launched through the webserver's GraphQL API, then the lineage graph and the asset
checks read in headless Chromium (Debian's ``chromium``, driven by Playwright).

``NAVIANCE_UPDATE_SCREENSHOTS=1`` also writes the README's screenshots into
``docs/screenshots/`` (``lineage.png``, ``failed-check.png``, ``backfill-past-dates.png``,
``past-date-not-sent.png``, ``blocked-date.png``, ``report.png``).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from naviance_pipeline.defs.checks import ASSET_FAMILIES, CHECK_NAMES
from naviance_pipeline.defs.jobs import NIGHTLY_JOB, STAGES
from naviance_pipeline.defs.resources import OVERRIDE_TAG
from naviance_pipeline.delivery.receipts import list_receipts
from naviance_pipeline.oneroster.spec import ZIP_NAME
from naviance_pipeline.operations.storage import DataLayout
from naviance_pipeline_tests.pipeline_helpers import first_student_editor, rewrite_zip
from naviance_pipeline_tests.ui.dagster_dev import REPO, DagsterDev, dagster_dev
from naviance_pipeline_tests.ui.graphql import (
    check_results,
    launch_backfill,
    launch_partition_run,
    materialization_metadata,
    partition_status,
    step_failures,
    wait_for_backfill,
    wait_for_run,
)

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.ui,
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
    ),
]
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="needs the playwright Python package (pip install playwright)"
)

# Headless, offline, in a container: no sandbox (root), no GPU, and none of the background
# requests Chromium makes on its own.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
PARTITION = "2026-11-24"  # a past date: today's partition may not exist yet in New York
PAST_DATES = ["2026-11-21", "2026-11-22", "2026-11-23"]  # older than PARTITION
DISTRICT = "sample-district"  # the default district of a NAVIANCE_HOME
LINEAGE = STAGES  # every asset of the nightly job
GROUPS = ("extract", "oneroster", "delivery")
# Wide enough that the whole graph fits at a zoom where Dagster draws full asset nodes (status,
# checks, partitions) rather than bare names.
GRAPH_VIEWPORT = {"width": 2400, "height": 1100}
PAGE_VIEWPORT = {"width": 1400, "height": 1000}
BACKFILL_VIEWPORT = {"width": 1400, "height": 420}
SCALE = 1.5  # device pixels per CSS pixel: the graph's small print stays legible in the PNG
# Each Playwright wait gives up after this long: only a guard against a page that never shows
# what is waited for (the wait returns as soon as it does), generous for a loaded machine.
UI_TIMEOUT_MS = 120_000
SCREENSHOTS = REPO / "docs" / "screenshots"


def check_names(asset: str) -> list[str]:
    return [CHECK_NAMES[fam] for fam in ASSET_FAMILIES[asset]]


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser, tmp_path: Path):
    """Open pages of a given size in fresh browser contexts (no shared storage)."""
    contexts = []

    def open_page(viewport: dict) -> sync_api.Page:
        context = browser.new_context(viewport=viewport, device_scale_factor=SCALE)
        context.set_default_timeout(UI_TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@contextmanager
def screenshot_on_failure(page: sync_api.Page, path: Path) -> Iterator[None]:
    try:
        yield
    except Exception:
        page.screenshot(path=str(path))
        raise


def graph_area(page: sync_api.Page, margin: float = 64) -> dict:
    """The part of the page the asset graph covers: from the group titles and asset names to
    the partition links at the bottom right of each asset node, plus a margin."""
    names = [*LINEAGE, *GROUPS]
    parts = [page.get_by_text(name, exact=True) for name in names]
    parts += page.locator('a[href$="?view=partitions"]').all()
    boxes = [part.bounding_box() for part in parts]
    left = min(b["x"] for b in boxes) - margin
    top = min(b["y"] for b in boxes) - margin
    right = max(b["x"] + b["width"] for b in boxes) + margin
    bottom = max(b["y"] + b["height"] for b in boxes) + margin
    return {"x": max(left, 0), "y": max(top, 0), "width": right - left, "height": bottom - top}


def save_screenshot(
    page: sync_api.Page, path: Path, readme_name: str | None = None, clip: dict | None = None
) -> None:
    page.screenshot(path=str(path), clip=clip, animations="disabled")
    if readme_name and os.environ.get("NAVIANCE_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / readme_name)


def run_nightly_job(dev: DagsterDev) -> str:
    """Launch the nightly job for PARTITION as the Launchpad does; wait for its end status."""
    return wait_for_run(dev.url, launch_nightly_job(dev), timeout=600)  # a hang guard


def launch_nightly_job(dev: DagsterDev, partition: str = PARTITION, **kwargs) -> str:
    return launch_partition_run(dev.url, NIGHTLY_JOB, partition, **kwargs)


def open_lineage(page: sync_api.Page, url: str) -> None:
    """The global lineage with every group expanded, the asset tree and navigation hidden."""
    page.goto(f"{url}/asset-groups")
    page.get_by_role("button", name="settings", exact=True).click()  # the graph's settings
    page.get_by_role("menuitem", name="Expand all groups").click()
    page.keyboard.press("Escape")
    page.get_by_role("button", name="panel_show_right", exact=True).click()  # the asset tree
    page.get_by_role("button", name="Hide navigation").click()


def open_check(page: sync_api.Page, url: str, asset: str, check: str) -> None:
    page.goto(f"{url}/assets/{asset}?view=checks")
    page.get_by_text(check, exact=True).filter(visible=True).click()
    sync_api.expect(page).to_have_url(f"{url}/assets/{asset}?view=checks&checkDetail={check}")


def test_lineage_and_passed_checks_after_a_partitioned_run(tmp_path, tiny_district, new_page):
    with dagster_dev(tmp_path / "home", tiny_district) as dev:
        assert run_nightly_job(dev) == "SUCCESS", dev.log_tail()

        page = new_page(GRAPH_VIEWPORT)
        with screenshot_on_failure(page, tmp_path / "failure-lineage.png"):
            open_lineage(page, dev.url)
            for asset in (*GROUPS, *LINEAGE):
                sync_api.expect(page.get_by_text(asset, exact=True)).to_be_visible()
            for asset in ASSET_FAMILIES:
                n = len(check_names(asset))
                checks = page.locator(f'a[href="/assets/{asset}?view=checks"]')
                sync_api.expect(checks).to_have_text(f"{n} / {n} Passed")
            page.wait_for_load_state("networkidle")
            area = graph_area(page)
        save_screenshot(page, tmp_path / "lineage.png", "lineage.png", clip=area)

        page = new_page(PAGE_VIEWPORT)
        with screenshot_on_failure(page, tmp_path / "failure-checks.png"):
            open_check(page, dev.url, "users", CHECK_NAMES["USR"])
            for name in check_names("users"):
                listed = page.get_by_text(name, exact=True).filter(visible=True)
                sync_api.expect(listed.first).to_be_visible()
            sync_api.expect(page.get_by_text("Succeeded", exact=True)).to_have_count(
                len(check_names("users"))
            )
            sync_api.expect(page.get_by_text("Passed", exact=True)).to_be_visible()
        save_screenshot(page, tmp_path / "passed-checks.png")


def test_failed_user_rules_check_shows_the_rule_and_line(tmp_path, tiny_district, new_page):
    pupil = tmp_path / "pupil.zip"
    edit, lines = first_student_editor({"role": "pupil"})
    rewrite_zip(tiny_district, pupil, "users.csv", edit)

    with dagster_dev(tmp_path / "home", pupil) as dev:
        # The blocking check stops the run before the package: a failed run, nothing delivered.
        run_id = launch_nightly_job(dev)
        assert wait_for_run(dev.url, run_id) == "FAILURE", dev.log_tail()
        assert not (tmp_path / "home" / "outbox" / ZIP_NAME).exists()
        # Red means blocked, for this date: users (which found the error) and everything
        # downstream that did not happen show it failed; the snapshot was taken.
        statuses = {asset: partition_status(dev.url, asset, PARTITION) for asset in LINEAGE}
        assert statuses == {
            asset: "MATERIALIZED" if asset == "sis_extract" else "FAILED" for asset in LINEAGE
        }
        # The run page's failure starts with what blocked it.
        [(step, message)] = step_failures(dev.url, run_id).items()
        assert step == "users"
        assert message.startswith(f"USR-ROLE × 1 block the package for {PARTITION}"), message

        page = new_page(PAGE_VIEWPORT)
        with screenshot_on_failure(page, tmp_path / "failure-check.png"):
            open_check(page, dev.url, "users", CHECK_NAMES["USR"])
            others = len(check_names("users")) - 1
            sync_api.expect(page.get_by_text("Succeeded", exact=True)).to_have_count(others)
            # "Failed" twice: user_rules in the list of checks, and its evaluation result.
            sync_api.expect(page.get_by_text("Failed", exact=True)).to_have_count(2)
            sync_api.expect(
                page.get_by_text(f"{PARTITION}: Blocks the package: USR-ROLE × 1")
            ).to_be_visible()
            page.wait_for_load_state("networkidle")
            save_screenshot(page, tmp_path / "failed-check.png", "failed-check.png")

            page.get_by_text("[Show Markdown]").click()
            findings = page.get_by_role("dialog").get_by_role("row")
            row = findings.filter(has=page.get_by_role("cell", name="USR-ROLE", exact=True))
            # rule, severity, file, line, column, sourcedId, message: the row, never a name.
            sync_api.expect(row.get_by_role("cell")).to_have_text(
                ["USR-ROLE", "error", "users.csv", str(lines[0]), "role", re.compile(r"^\d+$"),
                 re.compile(r"^role: not a OneRoster v1\.1 role")]
            )  # fmt: skip
        save_screenshot(page, tmp_path / "failed-check-findings.png")


@pytest.fixture(params=["outbox", "sftp"])
def delivery_target(request, tmp_path) -> tuple[dict[str, str], Path]:
    """(environment of ``dagster dev`` that points delivery at the target, where the delivered
    file can be read back here): the local outbox, or a real OpenSSH server on loopback."""
    if request.param == "outbox":
        return {}, tmp_path / "home" / "outbox" / ZIP_NAME
    server = request.getfixturevalue("sftp_server")
    local_dir, remote = server.make_remote_dir(f"ui-{tmp_path.name}")
    env = {
        "NAVIANCE_DELIVERY_TARGET": f"sftp://{server.user}@{server.host}:{server.port}{remote}",
        "NAVIANCE_SFTP_PASSWORD": server.password,
        "NAVIANCE_SFTP_KNOWN_HOSTS": server.known_hosts_text,
    }
    return env, local_dir / ZIP_NAME


def test_backfill_of_past_dates_rebuilds_them_without_sending(
    tmp_path, tiny_district, delivery_target, new_page
):
    """A past date is a rebuild, through the webserver as a user works: the newest date
    delivered, then a backfill of three older dates from the job's Partitions tab. Every run
    succeeds, every date's package passes its checks, the target keeps the newest file byte for
    byte, and each date's delivery says it was not sent, why and how to send it anyway. The
    override tag then sends one date, recorded in its receipt."""
    env, landed = delivery_target
    home = tmp_path / "home"
    layout = DataLayout(str(home / "data"), DISTRICT)
    with dagster_dev(home, tiny_district, env=env) as dev:
        assert run_nightly_job(dev) == "SUCCESS", dev.log_tail()
        newest = landed.read_bytes()

        backfill = launch_backfill(dev.url, NIGHTLY_JOB, PAST_DATES)
        # A hang guard for three runs on a loaded machine; it returns as soon as they end.
        runs = wait_for_backfill(dev.url, backfill, runs=len(PAST_DATES), timeout=1800)
        assert {date: status for date, (_, status) in runs.items()} == dict.fromkeys(
            PAST_DATES, "SUCCESS"
        ), dev.log_tail()
        if not env:  # once (outbox): the backfill's page, as the README shows it
            page = new_page(BACKFILL_VIEWPORT)
            with screenshot_on_failure(page, tmp_path / "failure-backfill.png"):
                page.goto(f"{dev.url}/runs/b/{backfill}")
                sync_api.expect(page.get_by_text("100% completed")).to_be_visible()
                page.wait_for_load_state("networkidle")
            save_screenshot(page, tmp_path / "backfill.png", "backfill-past-dates.png")
            page = new_page(PAGE_VIEWPORT)
            with screenshot_on_failure(page, tmp_path / "failure-not-sent.png"):
                url = f"{dev.url}/assets/naviance_delivery?view=partitions&partition="
                page.goto(url + PAST_DATES[-1])
                sync_api.expect(page.get_by_text("not_sent_because", exact=True)).to_be_visible()
                page.wait_for_load_state("networkidle")
            save_screenshot(page, tmp_path / "not-sent.png", "past-date-not-sent.png")

        for date, (run_id, _) in runs.items():
            checks = check_results(dev.url, "naviance_package", run_id)
            assert checks and all(checks.values()), (date, checks)
            assert partition_status(dev.url, "naviance_delivery", date) == "MATERIALIZED"
            [meta] = materialization_metadata(dev.url, "naviance_delivery", date)
            assert meta["sent"] is False, meta
            assert "GRD-STALE-PARTITION" in meta["not_sent_because"], meta
            assert f"older than {PARTITION}" in meta["not_sent_because"], meta
            assert OVERRIDE_TAG in meta["to_send_anyway"], meta
            assert f"redeliver --date {date}" in meta["to_send_anyway"], meta
        assert landed.read_bytes() == newest
        assert [r["partition"] for r in list_receipts(layout, "naviance")] == [PARTITION]

        forced = PAST_DATES[-1]
        run_id = launch_nightly_job(dev, forced, tags={OVERRIDE_TAG: "GRD-STALE-PARTITION"})
        assert wait_for_run(dev.url, run_id) == "SUCCESS", dev.log_tail()  # a hang guard
        [*_, meta] = materialization_metadata(dev.url, "naviance_delivery", forced)
        assert meta["sent"] is True, meta
        assert landed.read_bytes() != newest
        receipts = list_receipts(layout, "naviance")
        assert [r["partition"] for r in receipts] == [PARTITION, forced]
        assert receipts[-1]["guard_overrides"] == ["GRD-STALE-PARTITION"]
        assert receipts[-1]["run_id"] == run_id


def test_blocked_date_is_red_in_partitions_and_the_report_is_in_the_ui(
    tmp_path, tiny_district, new_page
):
    """On one instance, a date that passed and a later one blocked by a student whose role is
    ``pupil`` (the source file is replaced between the nights, as a SIS export is): the
    ``users`` asset's Partitions view counts one failed date, and filtered to failed dates
    lists the blocked one and not the one that passed. The package's report (``report_md``)
    opens from its metadata and shows the delivered verdict."""
    passed, blocked = PARTITION, "2026-11-25"
    source = tmp_path / "source.zip"
    shutil.copyfile(tiny_district, source)
    with dagster_dev(tmp_path / "home", source) as dev:
        assert run_nightly_job(dev) == "SUCCESS", dev.log_tail()
        edit, _ = first_student_editor({"role": "pupil"})
        rewrite_zip(tiny_district, source, "users.csv", edit)
        assert wait_for_run(dev.url, launch_nightly_job(dev, blocked)) == "FAILURE"

        page = new_page(PAGE_VIEWPORT)
        with screenshot_on_failure(page, tmp_path / "failure-partitions.png"):
            page.goto(f"{dev.url}/assets/users?view=partitions&partition={blocked}")
            legend = {
                status: page.get_by_text(re.compile(rf"^{status} \(\d+\)$"))
                for status in ("Failed", "Materialized", "Missing")
            }
            sync_api.expect(legend["Failed"]).to_have_text("Failed (1)")
            sync_api.expect(legend["Materialized"]).to_have_text("Materialized (1)")
            page.wait_for_load_state("networkidle")
            save_screenshot(page, tmp_path / "blocked-date.png", "blocked-date.png")
            # Only the failed dates listed: the blocked date is there, the passing one is not.
            legend["Materialized"].click()
            legend["Missing"].click()
            dates = page.get_by_text(re.compile(r"^\d{4}-\d{2}-\d{2}$"))
            listed = dates.filter(has_text=blocked)
            sync_api.expect(listed.first).to_be_visible()
            sync_api.expect(dates.filter(has_text=passed)).to_have_count(0)

        page = new_page(PAGE_VIEWPORT)
        with screenshot_on_failure(page, tmp_path / "failure-report.png"):
            page.goto(f"{dev.url}/assets/naviance_package?view=partitions&partition={passed}")
            page.get_by_text("[Show Markdown]").first.click()
            dialog = page.get_by_role("dialog")
            sync_api.expect(dialog).to_contain_text(passed)
            sync_api.expect(dialog).to_contain_text("delivered")
            page.wait_for_load_state("networkidle")
        save_screenshot(page, tmp_path / "report.png", "report.png")
