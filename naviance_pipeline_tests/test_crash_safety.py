"""A hostile night, for real: ``naviance-pipeline run`` killed by SIGKILL at the start, middle
and end of every step (between archiving the package and its summary, inside the upload…),
re-deliveries racing each other, a package archived without its summary. After each, the next
run finishes, the target holds a complete file the guards passed, and no temporary file of
ours is left.

The kill is real: ``NAVIANCE_CRASH_AT=<point>`` makes the process send itself SIGKILL at that
point (crash.py), as the out-of-memory killer would. Subprocess timeouts below only bound a
hang (the code before this test hung forever after a kill during delivery); they assert no
speed.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from naviance_pipeline.delivery.receipts import list_receipts
from naviance_pipeline.oneroster.spec import ZIP_NAME
from naviance_pipeline.operations.crash import CRASH_ENV, is_temp_name
from naviance_pipeline.operations.storage import DataLayout
from naviance_pipeline_tests.conftest import make_settings
from naviance_pipeline_tests.pipeline_helpers import rewrite_zip, run_job

BIN = Path(sys.executable).parent
D1, D2, D3 = "2026-11-23", "2026-11-24", "2026-11-25"
DISTRICT = "test-district"  # as make_settings, so in-process runs and the CLI share a layout
HANG_GUARD = 600  # seconds: only a hang reaches it

# Where a run can be killed: the start of every step, the middle (a frame or package written
# under its temporary name, a snapshot taken, the package archived but not its summary, the
# target locked, the delivery decided, the file uploaded but not renamed), and the end.
POINTS = [
    "sis_extract:start",
    "sis_extract:snapshot",
    "sis_extract:end",
    "users:start",
    "frame:written",
    "users:stored",
    "orgs:start",
    "orgs:stored",
    "demographics:start",
    "demographics:stored",
    "manifest:start",
    "manifest:stored",
    "naviance_package:start",
    "package:written",
    "package:archived",
    "naviance_package:end",
    "naviance_delivery:start",
    "delivery:locked",
    "delivery:decided",
    "delivery:uploading",
    "delivery:uploaded",
    "naviance_delivery:end",
]
LANDED_BEFORE_THE_KILL = {"delivery:uploaded", "naviance_delivery:end"}


def _env(home: Path, source: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NAVIANCE_", "DAGSTER_"))}
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    config = dagster_home / "dagster.yaml"
    if not config.exists():  # the project's instance, as `make run` installs it
        shutil.copyfile(Path(__file__).parents[1] / "dagster.yaml", config)
    env.update(
        NAVIANCE_HOME=str(home),
        NAVIANCE_SOURCE_URL=str(source),
        NAVIANCE_PARTITIONS_START="2026-01-01",
        NAVIANCE_DISTRICT=DISTRICT,
        DAGSTER_HOME=str(dagster_home),
        **extra,
    )
    return env


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "naviance-pipeline"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=HANG_GUARD,
    )


def _layout(home: Path) -> DataLayout:
    return DataLayout(str(home / "data"), DISTRICT)


def _leftovers(*folders: Path) -> list[str]:
    """Our temporary names (crash.py) and partial uploads under the folders."""
    return [
        str(path)
        for folder in folders
        for path in folder.rglob("*")
        if is_temp_name(path.name) or path.name.endswith(".part")
    ]


def _run_statuses(home: Path) -> list[str]:
    with dg.DagsterInstance.from_config(str(home / "dagster_home")) as instance:
        return sorted(r.status.value for r in instance.get_runs())


@pytest.fixture(scope="module")
def night_one(tmp_path_factory, tiny_district) -> Path:
    """A home where D1 was run and delivered to the local outbox by the CLI."""
    home = tmp_path_factory.mktemp("night-one")
    env = _env(home, tiny_district)
    # As `make` leaves them under a 022 umask: the run must make them owner-only.
    os.chmod(home, 0o755)
    os.chmod(home / "dagster_home", 0o755)
    os.chmod(home / "dagster_home" / "dagster.yaml", 0o644)
    proc = _cli("run", "--date", D1, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return home


def _copy(template: Path, dest: Path) -> Path:
    shutil.copytree(template, dest, symlinks=True)
    return dest


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_a_run_killed_anywhere_leaves_a_good_file_and_the_next_run_finishes(
    point, night_one, tmp_path, tiny_district
):
    home = _copy(night_one, tmp_path / "home")
    env = _env(home, tiny_district)
    outbox = home / "outbox" / ZIP_NAME
    first = outbox.read_bytes()

    crashed = _cli("run", "--date", D2, env={**env, CRASH_ENV: point})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
    package = _layout(home).package_path(D2)
    landed = outbox.read_bytes()
    if point in LANDED_BEFORE_THE_KILL:
        assert landed == Path(package.path).read_bytes()  # complete, and guarded
    else:
        assert landed == first  # the last good file, untouched

    recovered = _cli("run", "--date", D2, env=env)

    assert recovered.returncode == 0, recovered.stderr[-3000:]
    assert outbox.read_bytes() == Path(package.path).read_bytes()
    assert _leftovers(home / "data", home / "outbox") == []
    assert "marked failed" in recovered.stderr  # the killed run does not look alive
    assert _run_statuses(home) == ["FAILURE", "SUCCESS", "SUCCESS"]
    receipts = list_receipts(_layout(home), "naviance")
    assert receipts[-1]["partition"] == D2 and receipts[-1]["status"] == "delivered"


@pytest.mark.slow
@pytest.mark.sftp
@pytest.mark.parametrize("point", ["delivery:decided", "delivery:uploading", "delivery:uploaded"])
def test_a_run_killed_inside_an_sftp_delivery_leaves_a_good_file(
    point, sftp_server, tmp_path, tiny_district
):
    remote_local, remote = sftp_server.make_remote_dir(f"crash-{point.replace(':', '-')}")
    home = tmp_path / "home"
    env = _env(
        home,
        tiny_district,
        NAVIANCE_DELIVERY_TARGET=(
            f"sftp://{sftp_server.user}@{sftp_server.host}:{sftp_server.port}{remote}"
        ),
        NAVIANCE_SFTP_PASSWORD=sftp_server.password,
        NAVIANCE_SFTP_KNOWN_HOSTS=sftp_server.known_hosts_text,
    )
    assert _cli("run", "--date", D1, env=env).returncode == 0
    on_server = remote_local / ZIP_NAME
    first = on_server.read_bytes()

    crashed = _cli("run", "--date", D2, env={**env, CRASH_ENV: point})

    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
    package = Path(_layout(home).package_path(D2).path)
    expected = package.read_bytes() if point == "delivery:uploaded" else first
    assert on_server.read_bytes() == expected
    recovered = _cli("run", "--date", D2, env=env)
    assert recovered.returncode == 0, recovered.stderr[-3000:]
    assert on_server.read_bytes() == package.read_bytes()
    assert _leftovers(home / "data", remote_local) == []


def _halve(rows: list[list[str]]) -> list[list[str]]:
    header = rows[0]
    role = header.index("role")
    students = [r for r in rows[1:] if r[role] == "student"]
    others = [r for r in rows[1:] if r[role] != "student"]
    return [header, *others, *students[::2]]


@pytest.mark.slow
def test_a_package_archived_without_its_summary_is_judged_by_its_own_bytes(
    night_one, tmp_path, tiny_district
):
    home = _copy(night_one, tmp_path / "home")
    assert _cli("run", "--date", D2, env=_env(home, tiny_district)).returncode == 0
    outbox = home / "outbox" / ZIP_NAME
    delivered = outbox.read_bytes()
    # The export loses half its students; the run is killed once the new package is archived,
    # before its summary is written: the summary on disk is the full package's.
    halved = rewrite_zip(tiny_district, tmp_path / "halved.zip", "users.csv", _halve)
    env = _env(home, halved)
    crashed = _cli("run", "--date", D2, env={**env, CRASH_ENV: "package:archived"})
    assert crashed.returncode == -signal.SIGKILL

    proc = _cli("redeliver", "--date", D2, env=env)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "does not belong to its package" in proc.stderr
    assert "not delivered: delivery blocked by" in proc.stderr
    assert "GRD-STUDENT-DROP" in proc.stderr
    assert outbox.read_bytes() == delivered


@pytest.mark.slow
def test_racing_redeliveries_always_end_with_the_newest_date_on_the_target(tmp_path, tiny_district):
    home = tmp_path / "home"
    settings = make_settings(home, tiny_district, district=DISTRICT)
    build = ["sis_extract", "users", "orgs", "demographics", "manifest", "naviance_package"]
    with dg.instance_for_test() as instance:
        assert run_job(settings, D1, instance).success
        for day in (D2, D3):
            assert run_job(settings, day, instance, selection=build).success
    layout = _layout(home)
    outbox = home / "outbox" / ZIP_NAME
    d1_file = outbox.read_bytes()
    d3_file = Path(layout.package_path(D3).path).read_bytes()
    receipts = Path(layout.receipts_dir("naviance").path)
    night_one = {p.name: p.read_bytes() for p in receipts.iterdir()}
    env = _env(home, tiny_district)
    outcomes = set()
    for _round in range(20):
        for path in receipts.iterdir():  # back to: only D1 delivered
            path.unlink()
        for name, data in night_one.items():
            (receipts / name).write_bytes(data)
        outbox.write_bytes(d1_file)
        racers = {
            day: subprocess.Popen(
                [str(BIN / "naviance-pipeline"), "redeliver", "--date", day],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for day in (D3, D2)
        }
        said = {day: p.communicate(timeout=HANG_GUARD) for day, p in racers.items()}
        codes = {day: p.returncode for day, p in racers.items()}

        assert outbox.read_bytes() == d3_file
        assert codes[D3] == 0 and f"re-delivered {D3}" in said[D3][0]
        if codes[D2] == 0:  # D2 went first, then D3 replaced it
            assert f"re-delivered {D2}" in said[D2][0]
            order = [r["partition"] for r in list_receipts(layout, "naviance")]
            assert order[-2:] == [D2, D3]
            outcomes.add("older first")
        else:
            assert "GRD-STALE-PARTITION" in said[D2][1] and f"older than {D3}" in said[D2][1]
            outcomes.add("older refused")
        assert _leftovers(home / "data", home / "outbox") == []
    assert outcomes  # each round ended in one of the two safe ways


def test_everything_under_the_dagster_home_and_the_data_root_is_owner_only(night_one):
    loose = [
        f"{path} {stat.filemode(path.lstat().st_mode)}"
        for path in [night_one, *night_one.rglob("*")]
        if not path.is_symlink() and path.lstat().st_mode & 0o077
    ]
    assert loose == []
