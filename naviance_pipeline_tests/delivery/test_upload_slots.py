"""Upload slots per SFTP host, and delivery locks held by files or by PostgreSQL.

Real parts: two ``naviance-pipeline redeliver`` processes of two districts delivering to two
folders of the one real loopback sshd; file locks under the data root, or a real PostgreSQL on
loopback (advisory locks, password login). The upload is made slow by the crash tests' seam
(``NAVIANCE_PAUSE_AT``: a sleep between the upload of the partial file and its rename), and
killed by it (``NAVIANCE_CRASH_AT``: SIGKILL there, holding the slot).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest

from naviance_pipeline.delivery.errors import DeliveryError
from naviance_pipeline.delivery.lock import (
    LOCKS_PASSWORD_ENV,
    DeliveryLockTimeout,
    PostgresLocks,
    UploadSlotTimeout,
    hold,
    target_lock,
    upload_slot,
)
from naviance_pipeline.delivery.receipts import list_receipts
from naviance_pipeline.operations.crash import CRASH_ENV, PAUSE_ENV
from naviance_pipeline.operations.settings import Settings, SettingsError
from naviance_pipeline.operations.storage import DataLayout
from naviance_pipeline_tests.conftest import make_settings
from naviance_pipeline_tests.integration.services import (
    PostgresServer,
    postgres_unavailable_reason,
)
from naviance_pipeline_tests.pipeline_helpers import run_job
from naviance_pipeline_tests.sshd_server import SSHDServer

DAY = "2026-11-24"
CLI = str(Path(sys.executable).parent / "naviance-pipeline")
HANG_GUARD = 300  # seconds: only a hang reaches it
SLOW_UPLOAD = 10  # seconds the first upload sleeps inside its slot, so the second meets it
_TO_PACKAGE = ["sis_extract", "users", "orgs", "demographics", "manifest", "naviance_package"]


# --- fixtures: a built package per district, a PostgreSQL for the locks ----------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_district) -> Path:
    """A data root holding the package of DAY for district d1, and the same for d2."""
    home = tmp_path_factory.mktemp("slots-home")
    settings = make_settings(home, tiny_district, district="d1")
    with dg.instance_for_test() as instance:
        assert run_job(settings, DAY, instance, selection=_TO_PACKAGE).success
    root = Path(settings.data_root)
    shutil.copytree(root / "districts" / "d1", root / "districts" / "d2")
    return root


@dataclass
class LocksDatabase:
    url: str  # without the password
    password: str = field(repr=False)


@pytest.fixture(scope="module")
def locks_db() -> Iterator[LocksDatabase]:
    """A real PostgreSQL; the pipeline logs in as ``locker`` (its own password), the owner of
    the database ``locks``, so it can create the holders' table."""
    reason = postgres_unavailable_reason()
    if reason:
        pytest.fail(reason)
    import psycopg

    server = PostgresServer(db_name="locks").start()
    try:
        password = secrets.token_urlsafe(16)
        with psycopg.connect(**server.connect_args(), autocommit=True) as owner:
            owner.execute(f"CREATE ROLE locker LOGIN PASSWORD '{password}'")
            owner.execute("ALTER DATABASE locks OWNER TO locker")
            owner.execute("ALTER SCHEMA public OWNER TO locker")
        yield LocksDatabase(f"postgresql://locker@127.0.0.1:{server.port}/locks", password)
    finally:
        server.stop()


@dataclass
class Setup:
    """Two districts (two data roots with PostgreSQL locks), each its own folder on the one
    SFTP host, and the environment of their redeliveries."""

    roots: dict[str, Path]
    remotes: dict[str, Path]
    env: dict[str, str]

    def redeliver(self, district: str, **extra: str) -> subprocess.Popen:
        env = {
            **self.env,
            "NAVIANCE_DATA_ROOT": str(self.roots[district]),
            "NAVIANCE_DISTRICT": district,
            "NAVIANCE_DELIVERY_TARGET": self.env[f"TARGET_{district}"],
            **extra,
        }
        return subprocess.Popen(
            [CLI, "redeliver", "--date", DAY],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    def receipt(self, district: str) -> dict:
        (receipt,) = list_receipts(DataLayout(str(self.roots[district]), district), "naviance")
        return receipt


def _setup(
    tmp_path: Path,
    built: Path,
    sftp_server: SSHDServer,
    locks: LocksDatabase | None,
    slots: int,
) -> Setup:
    roots = {}
    for district in ("d1", "d2"):
        # File locks: one data root (its locks/ folder is shared). PostgreSQL: a root each.
        root = tmp_path / ("data" if locks is None else f"data-{district}")
        if not root.exists():
            shutil.copytree(built, root)
        roots[district] = root
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NAVIANCE_", "DAGSTER_"))}
    env.update(
        NAVIANCE_HOME=str(tmp_path / "home"),
        NAVIANCE_PARTITIONS_START="2026-01-01",
        NAVIANCE_SFTP_PASSWORD=sftp_server.password,
        NAVIANCE_SFTP_KNOWN_HOSTS=sftp_server.known_hosts_text,
        NAVIANCE_UPLOADS_PER_HOST=str(slots),
    )
    if locks is not None:
        env.update(NAVIANCE_LOCKS_URL=locks.url, **{LOCKS_PASSWORD_ENV: locks.password})
    remotes = {}
    for district in ("d1", "d2"):
        local, remote = sftp_server.make_remote_dir(f"{tmp_path.name}-{district}")
        remotes[district] = local
        env[f"TARGET_{district}"] = (
            f"sftp://{sftp_server.user}@{sftp_server.host}:{sftp_server.port}{remote}"
        )
    return Setup(roots, remotes, env)


@pytest.fixture(params=["files", "postgresql"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def locks(backend, request) -> LocksDatabase | None:
    return request.getfixturevalue("locks_db") if backend == "postgresql" else None


def _wait_for_upload(folder: Path, proc: subprocess.Popen) -> None:
    """Until the first delivery's partial file is on the server: it holds its slot."""
    deadline = time.monotonic() + HANG_GUARD
    while not any(p.name.endswith(".part") for p in folder.iterdir()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the first upload never started"
        time.sleep(0.05)


def _interval(receipt: dict) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(receipt["started_at"]), datetime.fromisoformat(
        receipt["ended_at"]
    )


def _overlap(a: dict, b: dict) -> bool:
    (a0, a1), (b0, b1) = _interval(a), _interval(b)
    return a0 < b1 and b0 < a1


def _race(setup: Setup) -> dict[str, tuple[int, str, str]]:
    """d1 uploads slowly; d2 starts once d1 is uploading. Each one's (code, stdout, stderr)."""
    first = setup.redeliver("d1", **{PAUSE_ENV: f"delivery:uploading={SLOW_UPLOAD}"})
    _wait_for_upload(setup.remotes["d1"], first)
    second = setup.redeliver("d2")
    done = {}
    for district, proc in (("d2", second), ("d1", first)):
        out, err = proc.communicate(timeout=HANG_GUARD)
        done[district] = (proc.returncode, out, err)
    return done


# --- one upload at a time per host; more when allowed ----------------------------------------


@pytest.mark.sftp
@pytest.mark.slow
def test_two_districts_on_one_host_upload_one_at_a_time(
    tmp_path, built, sftp_server, backend, locks
):
    setup = _setup(tmp_path, built, sftp_server, locks, slots=1)

    done = _race(setup)

    assert [code for code, _, _ in done.values()] == [0, 0], done
    first, second = setup.receipt("d1"), setup.receipt("d2")
    assert not _overlap(first, second), (first, second)
    assert _interval(first)[1] <= _interval(second)[0]  # d2 uploaded after d1 let go
    assert second["upload_wait_seconds"] > 0
    waited = [line for line in done["d2"][2].splitlines() if "upload slot" in line]
    assert len(waited) == 1, done["d2"][2]
    assert waited[0].startswith(
        f"waiting for an upload slot of host {sftp_server.host} (1 at a time, "
        "NAVIANCE_UPLOADS_PER_HOST), held by run redeliver-"
    )
    if locks is not None:
        assert locks.password not in done["d1"][2] + done["d2"][2]


@pytest.mark.sftp
@pytest.mark.slow
def test_two_slots_let_two_districts_upload_at_once(tmp_path, built, sftp_server, backend, locks):
    setup = _setup(tmp_path, built, sftp_server, locks, slots=2)

    done = _race(setup)

    assert [code for code, _, _ in done.values()] == [0, 0], done
    first, second = setup.receipt("d1"), setup.receipt("d2")
    assert _overlap(first, second), (first, second)
    assert "upload slot" not in done["d2"][2]
    assert second["upload_wait_seconds"] < SLOW_UPLOAD


@pytest.mark.sftp
@pytest.mark.slow
def test_a_holder_killed_inside_its_slot_does_not_keep_it(
    tmp_path, built, sftp_server, backend, locks
):
    setup = _setup(tmp_path, built, sftp_server, locks, slots=1)
    killed = setup.redeliver("d1", **{CRASH_ENV: "delivery:uploading"})
    assert killed.wait(timeout=HANG_GUARD) == -signal.SIGKILL, killed.communicate()

    after = setup.redeliver("d2")
    out, err = after.communicate(timeout=HANG_GUARD)

    assert after.returncode == 0, err
    assert f"re-delivered {DAY}" in out
    reclaimed = [line for line in err.splitlines() if line.startswith("reclaimed an upload slot")]
    assert len(reclaimed) == 1, err
    assert f"of host {sftp_server.host} from run redeliver-" in reclaimed[0]
    assert "waiting" not in err  # the dead holder's slot was free at once


@pytest.mark.sftp
def test_a_slot_wait_that_times_out_sends_nothing_and_keeps_no_receipt(
    tmp_path, built, sftp_server, file_holder
):
    setup = _setup(tmp_path, built, sftp_server, None, slots=1)
    file_holder("host", sftp_server.host)  # another delivery is uploading to the host

    late = setup.redeliver("d1", NAVIANCE_DELIVERY_LOCK_TIMEOUT="1.5")
    out, err = late.communicate(timeout=HANG_GUARD)

    assert late.returncode == 1, out + err
    assert f"not delivered: the upload slots of host {sftp_server.host} (1 at a time, " in err
    assert "NAVIANCE_UPLOADS_PER_HOST) stayed taken by run run-holding" in err
    assert "nothing was sent" in err and "Traceback" not in err
    assert list(setup.remotes["d1"].iterdir()) == []
    assert list_receipts(DataLayout(str(setup.roots["d1"]), "d1"), "naviance") == []


# --- PostgreSQL: both locks between processes of any data root -------------------------------

_HOLDER = textwrap.dedent(
    """
    import sys
    from naviance_pipeline.delivery.lock import hold, host_slots, locks_backend, target_lock
    from naviance_pipeline.operations.storage import DataLayout
    url, root, kind, name = sys.argv[1:5]
    layout = DataLayout(root, "d1")
    lock = target_lock(layout, name, "t") if kind == "target" else host_slots(layout, name, 1)
    with hold(locks_backend(url), lock, run_id="run-holding", timeout=60, log=print):
        print("held", flush=True)
        sys.stdin.read()
    """
)


def _holders(url: str, root: Path) -> Iterator:
    """start(kind, name): a process holding a lock (``target`` or ``host``) until the test
    ends."""
    started: list[subprocess.Popen] = []

    def start(kind: str, name: str) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, url, str(root), kind, name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        assert proc.stdout.readline().strip() == "held"

    yield start
    for proc in started:
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0


@pytest.fixture
def pg_holder(locks_db, monkeypatch, tmp_path):
    monkeypatch.setenv(LOCKS_PASSWORD_ENV, locks_db.password)
    yield from _holders(locks_db.url, tmp_path / "a")


@pytest.fixture
def file_holder(tmp_path):
    yield from _holders("", tmp_path / "data")


@pytest.mark.postgres
def test_postgresql_target_lock_excludes_a_second_process(locks_db, pg_holder, tmp_path):
    pg_holder("target", "naviance")
    locks, said = PostgresLocks(locks_db.url), []
    # The same data root and target name: the same lock, from another process.
    layout = DataLayout(str(tmp_path / "a"), "d1")
    with (
        pytest.raises(DeliveryLockTimeout, match="run-holding") as failure,
        hold(
            locks, target_lock(layout, "naviance", "t"), run_id="r2", timeout=1.5, log=said.append
        ),
    ):
        pytest.fail("took a target lock another process holds")
    assert "nothing was sent" in str(failure.value)
    assert len(said) == 1 and said[0].startswith("waiting for the delivery lock of t, held by")
    # Another target is not held up.
    with hold(locks, target_lock(layout, "other", "t"), run_id="r3", timeout=0, log=said.append):
        pass


@pytest.mark.postgres
def test_postgresql_host_slot_excludes_another_target_on_the_host(locks_db, pg_holder, tmp_path):
    pg_holder("host", "sftp.example.org")
    locks, said = PostgresLocks(locks_db.url), []
    other_root = DataLayout(str(tmp_path / "b"), "d2")  # whatever the data root
    with (
        pytest.raises(UploadSlotTimeout) as failure,
        upload_slot(
            locks, other_root, "SFTP.example.org", 1, run_id="r2", timeout=1.5, log=said.append
        ),
    ):
        pytest.fail("took the only upload slot of a host another process holds")
    message = str(failure.value)
    assert "upload slots of host sftp.example.org" in message
    assert "NAVIANCE_UPLOADS_PER_HOST" in message and "run-holding" in message
    assert "nothing was sent" in message
    assert locks_db.password not in message + "".join(said)
    # Two slots: the second is free.
    with upload_slot(
        locks, other_root, "sftp.example.org", 2, run_id="r3", timeout=0, log=said.append
    ) as waited:
        assert waited < 1


@pytest.mark.postgres
def test_a_wrong_locks_password_fails_in_one_line_without_it(locks_db, monkeypatch, tmp_path):
    monkeypatch.setenv(LOCKS_PASSWORD_ENV, "not-the-password")
    layout, locks = DataLayout(str(tmp_path), "d1"), PostgresLocks(locks_db.url)
    with (
        pytest.raises(DeliveryError, match="password authentication failed") as failure,
        hold(locks, target_lock(layout, "n", "t"), run_id="r", timeout=1, log=print),
    ):
        pass
    message = str(failure.value)
    assert "\n" not in message and "not-the-password" not in message
    assert "NAVIANCE_LOCKS_URL" in message and "nothing was sent" in message


# --- settings ---------------------------------------------------------------------------------


@pytest.fixture
def env(tmp_path, monkeypatch):
    for name in [n for n in os.environ if n.startswith("NAVIANCE_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "NAVIANCE_UPLOADS_PER_HOST",
            "0",
            "NAVIANCE_UPLOADS_PER_HOST: Input should be greater than or equal to 1",
        ),
        (
            "NAVIANCE_UPLOADS_PER_HOST",
            "x",
            "NAVIANCE_UPLOADS_PER_HOST: Input should be a valid integer, unable to parse string "
            "as an integer",
        ),
        (
            "NAVIANCE_LOCKS_URL",
            "redis://127.0.0.1:6379/0",
            "NAVIANCE_LOCKS_URL: must be blank (file locks) or "
            "postgresql://user@host:port/database, not a 'redis' URL",
        ),
        (
            "NAVIANCE_LOCKS_URL",
            "postgresql://locker:hunter2@db.example.org/locks",
            "NAVIANCE_LOCKS_URL: the URL must not contain a password: set the secret "
            "NAVIANCE_LOCKS_PASSWORD (or PGPASSWORD, or a .pgpass file)",
        ),
        (
            "NAVIANCE_LOCKS_URL",
            "postgresql://locker@db.example.org/locks?password=hunter2",
            "NAVIANCE_LOCKS_URL: the URL must not contain a password: set the secret "
            "NAVIANCE_LOCKS_PASSWORD (or PGPASSWORD, or a .pgpass file)",
        ),
    ],
)
def test_a_bad_slots_or_locks_setting_is_refused_in_one_line(env, variable, value, expected):
    env.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        Settings.from_env()
    assert str(caught.value) == expected


def test_the_slots_and_locks_settings_reach_the_delivery_plan(env):
    from naviance_pipeline.definitions import build_resources

    env.setenv("NAVIANCE_UPLOADS_PER_HOST", "3")
    env.setenv("NAVIANCE_LOCKS_URL", "postgresql://locker@db.example.org:5433/locks")
    plan = build_resources(Settings.from_env())["delivery"].plan({})
    assert (plan.uploads_per_host, plan.locks_url) == (
        3,
        "postgresql://locker@db.example.org:5433/locks",
    )
