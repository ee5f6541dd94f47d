"""``naviance-pipeline backfill``: one job backfill stored for the daemon (status REQUESTED, the
nightly job's partition set, the partition names), no run created by the command itself; a real
``dagster-daemon`` on a real SQLite instance (the repo's ``dagster.yaml``) then creates, queues
and runs every partition with the tags a ``dagster job backfill`` run gets. Bad arguments:
exit 2 and one line, nothing stored."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from naviance_pipeline.cli import main
from naviance_pipeline.defs.jobs import NIGHTLY_JOB, SFTP_HOST_TAG
from naviance_pipeline.defs.partitions import district_key
from naviance_pipeline.oneroster.sample import write_sample_district
from naviance_pipeline.oneroster.spec import ZIP_NAME
from naviance_pipeline.operations.storage import DataLayout
from naviance_pipeline_tests.integration.services import stop_process
from naviance_pipeline_tests.pipeline_helpers import write_districts_file

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DISTRICTS = ("alpha", "beta", "gamma")  # gamma delivers by SFTP: its runs carry the host tag
DAYS = ("2026-11-23", "2026-11-24")
# Only a hang guard (a daemon that never creates or dequeues the runs): nothing here asserts
# how fast the six runs are.
RUNS_TIMEOUT = 900.0


def _districts_file(tmp_path: Path, sftp_server=None) -> tuple[Path, dict[str, str], Path]:
    """Three generated districts (40 students each): alpha and beta deliver to local folders,
    gamma to the loopback SFTP server when there is one. (file, secrets' env, gamma's remote
    folder)."""
    entries, env, remote_dir = [], {}, None
    for seed, name in enumerate(DISTRICTS, start=41):
        source = write_sample_district(
            str(tmp_path / "sources" / f"{name}.zip"), students=40, schools=2, seed=seed
        )
        entry = {
            "id": name,
            "source_url": source,
            "timezone": "America/Chicago",
            "schedule_time": "02:00",
            "delivery_target": str(tmp_path / "outbox" / name),
        }
        if name == "gamma" and sftp_server is not None:
            remote_dir, remote = sftp_server.make_remote_dir(f"backfill-{tmp_path.name}")
            s = sftp_server
            entry["delivery_target"] = f"sftp://{s.user}@{s.host}:{s.port}{remote}"
            entry["secrets"] = {
                "sftp_private_key": "NAV_GAMMA_SFTP_KEY",
                "sftp_known_hosts": "NAV_SFTP_KNOWN_HOSTS",
            }
            env = {
                "NAV_GAMMA_SFTP_KEY": s.client_key_text,
                "NAV_SFTP_KNOWN_HOSTS": s.known_hosts_text,
            }
        entries.append(entry)
    path = write_districts_file(tmp_path, entries)
    return path, env, remote_dir


def _environment(tmp_path: Path, districts: Path, secrets: dict[str, str]) -> dict[str, str]:
    """The caller's environment without NAVIANCE_/DAGSTER_ settings, plus the districts file
    and a DAGSTER_HOME holding the repo's dagster.yaml (SQLite storage, the run queue)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NAVIANCE_", "DAGSTER_"))}
    return {
        **env,
        **secrets,
        "DAGSTER_HOME": str(home),
        "NAVIANCE_HOME": str(tmp_path / "home"),
        "NAVIANCE_DISTRICTS_FILE": str(districts),
        "NAVIANCE_UI_URL": "http://dagster.example:3000/",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def _backfill(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "naviance-pipeline"), "backfill", *args,
         "--workspace", str(REPO / "workspace.yaml")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def _wait_for_runs(instance, count: int, daemon: subprocess.Popen, log: Path):
    from dagster import DagsterRunStatus, RunsFilter

    done = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
    deadline = time.monotonic() + RUNS_TIMEOUT
    records = []
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            pytest.fail(f"the daemon exited early:\n{log.read_text()[-4000:]}")
        records = instance.get_run_records(RunsFilter(job_name=NIGHTLY_JOB))
        if len(records) == count and all(r.dagster_run.status in done for r in records):
            return records
        time.sleep(1)
    states = [(r.dagster_run.tags.get("dagster/partition"), r.dagster_run.status) for r in records]
    pytest.fail(f"runs not finished in {RUNS_TIMEOUT:.0f} s: {states}\n{log.read_text()[-4000:]}")


@pytest.mark.sftp
@pytest.mark.slow
def test_backfill_stores_one_backfill_that_the_daemon_runs(tmp_path, sftp_server, monkeypatch):
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
    from dagster._core.execution.backfill import BulkActionStatus

    districts, secrets, remote_dir = _districts_file(tmp_path, sftp_server)
    env = _environment(tmp_path, districts, secrets)
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
    partitions = [str(district_key(day, name)) for day in DAYS for name in DISTRICTS]

    submitted = _backfill(env, "--from", DAYS[0], "--to", DAYS[1])
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    match = re.search(r"^backfill ([a-z]+) submitted: 6 partition\(s\)", submitted.stdout, re.M)
    assert match, submitted.stdout
    backfill_id = match.group(1)
    assert f"http://dagster.example:3000/runs/b/{backfill_id}" in submitted.stdout
    assert "daemon" in submitted.stdout
    # Ids, counts and the link only: no path, no source, nothing of a district's data.
    assert str(tmp_path) not in submitted.stdout + submitted.stderr

    with DagsterInstance.get() as instance:
        # The command created no run: it stored one backfill for the daemon.
        assert instance.get_runs_count() == 0
        (backfill,) = instance.get_backfills()
        assert backfill.backfill_id == backfill_id
        assert backfill.status == BulkActionStatus.REQUESTED
        assert list(backfill.partition_names) == partitions
        assert backfill.tags == {} and not backfill.from_failure
        origin = backfill.partition_set_origin
        assert origin.partition_set_name == f"{NIGHTLY_JOB}_partition_set"
        assert origin.repository_origin.code_location_origin.location_name == "naviance_pipeline"

    log = tmp_path / "daemon.log"
    daemon = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")],
        cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopped with its children by id
    )  # fmt: skip
    try:
        with DagsterInstance.get() as instance:
            records = _wait_for_runs(instance, len(partitions), daemon, log)
            runs = {r.dagster_run.tags["dagster/partition"]: r.dagster_run for r in records}
            assert sorted(runs) == sorted(partitions)
            for key, run in runs.items():
                assert run.status == DagsterRunStatus.SUCCESS, (key, log.read_text()[-3000:])
                day, name = key.split("|")
                assert run.tags["dagster/backfill"] == backfill_id
                assert run.tags["dagster/partition/date"] == day
                assert run.tags["dagster/partition/district"] == name
                # The partitioned config's host tag, as on a `dagster job backfill` run.
                if name == "gamma":
                    assert run.tags[SFTP_HOST_TAG] == sftp_server.host
                else:
                    assert SFTP_HOST_TAG not in run.tags  # a local folder: no host
            deadline = time.monotonic() + RUNS_TIMEOUT  # the daemon marks it complete
            while instance.get_backfill(backfill_id).status == BulkActionStatus.REQUESTED:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(1)
            assert instance.get_backfill(backfill_id).status == BulkActionStatus.COMPLETED_SUCCESS
            assert len(instance.get_backfills()) == 1
    finally:
        stop_process(daemon)

    # What `dagster job backfill` stores and creates for one of the partitions (a queued run:
    # no daemon now): the same partition set origin, and its run the same tags.
    key = str(district_key(DAYS[-1], "gamma"))
    cli = subprocess.run(
        [str(BIN / "dagster"), "job", "backfill", "-w", str(REPO / "workspace.yaml"),
         "-j", NIGHTLY_JOB, "--partitions", key, "--noprompt"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stdout + cli.stderr
    with DagsterInstance.get() as instance:
        (theirs,) = [b for b in instance.get_backfills() if b.backfill_id != backfill_id]
        assert (
            theirs.partition_set_origin == instance.get_backfill(backfill_id).partition_set_origin
        )
        (their_run,) = instance.get_runs(RunsFilter(tags={"dagster/backfill": theirs.backfill_id}))
        # (Hidden .dagster/ tags are the launcher's bookkeeping, added when a run starts.)
        ours, their_tags = ({k: v for k, v in r.tags.items() if not k.startswith(".dagster/")}
                            for r in (runs[key], their_run))  # fmt: skip
        assert ours.pop("dagster/backfill") == backfill_id
        assert their_tags.pop("dagster/backfill") == theirs.backfill_id
        assert ours == their_tags

    for name in DISTRICTS:
        layout = DataLayout(str(tmp_path / "data"), name)
        for day in DAYS:
            assert Path(str(layout.package_path(day))).is_file(), (name, day)
    newest = Path(str(DataLayout(str(tmp_path / "data"), "gamma").package_path(DAYS[-1])))
    assert (remote_dir / ZIP_NAME).read_bytes() == newest.read_bytes()


# ---- bad arguments: exit 2, one line, nothing stored ----


@pytest.fixture
def many(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Many-district mode (no SFTP district); returns the DAGSTER_HOME, not yet created."""
    districts, _, _ = _districts_file(tmp_path)
    env = _environment(tmp_path, districts, {})
    for name in list(os.environ):
        if name.startswith(("NAVIANCE_", "DAGSTER_")):
            monkeypatch.delenv(name)
    for name in ("NAVIANCE_HOME", "NAVIANCE_DISTRICTS_FILE"):
        monkeypatch.setenv(name, env[name])
    home = tmp_path / "fresh_dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


WORKSPACE = ["--workspace", str(REPO / "workspace.yaml")]
REFUSED = (
    (["--from", "2026-11-19"], "--from 2026-11-19 is before the first partition"),
    (["--from", "2026-11-24", "--to", "2999-01-01"], "--to 2999-01-01 is in the future"),
    (["--from", "2026-11-24", "--to", "2026-11-23"], "--to 2026-11-23 is before --from"),
    (["--from", "2026-11-24", "--district", "omega"], "unknown district 'omega'"),
    (["--from", "2026-11-24", "--district", "alpha", "--district", "Alpha"], "'Alpha'"),
    (["--from", "2026-11-31"], "argument --from: 2026-11-31 is not a date in the calendar"),
    (["--to", "2026-11-24"], "the following arguments are required: --from"),
)


@pytest.mark.parametrize(("argv", "expected"), REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_a_bad_backfill_argument_is_one_line_and_exit_2(argv, expected, many, capsys):
    try:
        code = main(["backfill", *argv, *WORKSPACE])
    except SystemExit as exc:  # argparse exits; a command returns its code
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert out == "" and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert expected in err, err
    assert not many.exists(), "the Dagster home was touched before the refusal"


def test_a_workspace_that_does_not_exist_or_load_submits_nothing(tmp_path, many, capsys):
    assert main(["backfill", "--from", "2026-11-24", "--workspace", "nope.yaml"]) == 2
    assert "nope.yaml does not exist" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text("load_from: 3\n")
    assert main(["backfill", "--from", "2026-11-24", "--workspace", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "is not a usable workspace file" in err and len(err.splitlines()) == 1, err
    assert not many.exists()
    # A code location that does not load here: exit 1, one line, no backfill stored.
    missing = tmp_path / "missing.yaml"
    missing.write_text(
        yaml.safe_dump({"load_from": [{"python_module": {"module_name": "no_such_module_x"}}]})
    )
    assert main(["backfill", "--from", "2026-11-24", "--workspace", str(missing)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("no backfill submitted: the code location") and "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:
        assert instance.get_backfills() == []


def test_a_district_in_one_district_mode_is_refused(tmp_path, monkeypatch, capsys):
    for name in list(os.environ):
        if name.startswith(("NAVIANCE_", "DAGSTER_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NAVIANCE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    code = main(["backfill", "--from", "2026-11-24", "--district", "east", *WORKSPACE])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "--district 'east' needs a districts file (NAVIANCE_DISTRICTS_FILE)" in err
    assert not (tmp_path / "dagster_home").exists()
