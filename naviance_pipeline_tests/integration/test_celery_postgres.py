"""Many districts on a real distributed engine: PostgreSQL instance storage, the run queue of a
``dagster-daemon``, steps on a Celery worker over Redis, delivery to the loopback OpenSSH server.

A job backfill of 3 districts × 2 dates is submitted with ``dagster job backfill`` (the CLI
creates one queued run per partition, tagged by the job's partitioned config with the
district's SFTP host); the daemon dequeues them under ``deploy/dagster.yaml``'s run-queue limit
(one run per host), the code server launches each run, and the run's celery executor sends
every step to the worker. Everything is started here on loopback and stopped by process id.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from naviance_pipeline.defs.jobs import NIGHTLY_JOB, SFTP_HOST_TAG
from naviance_pipeline.defs.partitions import district_key
from naviance_pipeline.oneroster.sample import write_sample_district
from naviance_pipeline.oneroster.spec import ZIP_NAME
from naviance_pipeline.operations.storage import DataLayout
from naviance_pipeline_tests.integration.services import (
    PostgresServer,
    RedisServer,
    stop_process,
    unavailable_reason,
)

pytestmark = [pytest.mark.integration, pytest.mark.sftp]

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DISTRICTS = ("alpha", "beta", "gamma")
TIMEZONES = ("America/New_York", "America/Chicago", "America/Los_Angeles")
DAYS = ("2026-11-23", "2026-11-24")
# Only a hang guard (a lost Celery task, a daemon that never dequeues): the 6 runs take about a
# minute on an idle 2-core machine, and nothing here asserts how fast they are.
RUNS_TIMEOUT = 900.0


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("redis")
    postgres = PostgresServer().start()
    try:
        redis = RedisServer().start(folder)
    except BaseException:
        postgres.stop()
        raise
    yield postgres, redis
    redis.stop()
    postgres.stop()


def _spawn(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        args,
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopped with its children by id
    )


def _write_districts(tmp_path: Path, sftp_server) -> tuple[Path, dict[str, Path], dict]:
    remote_dirs, entries, secrets_env = {}, [], {"NAV_SFTP_KNOWN_HOSTS": ""}
    secrets_env["NAV_SFTP_KNOWN_HOSTS"] = sftp_server.known_hosts_text
    for seed, (name, zone) in enumerate(zip(DISTRICTS, TIMEZONES, strict=True), start=31):
        source = write_sample_district(
            str(tmp_path / "sources" / f"{name}.zip"), students=40, schools=2, seed=seed
        )
        local_dir, remote = sftp_server.make_remote_dir(f"celery-{name}")
        remote_dirs[name] = local_dir
        # The client key, not the password: every loopback sshd (other test sessions on this
        # machine too) resets the one test user's password, but the key is this server's.
        key_var = f"NAV_{name.upper()}_SFTP_KEY"
        secrets_env[key_var] = sftp_server.client_key_text
        entries.append(
            {
                "id": name,
                "source_url": source,
                "timezone": zone,
                "schedule_time": "02:00",
                "delivery_target": (
                    f"sftp://{sftp_server.user}@{sftp_server.host}:{sftp_server.port}{remote}"
                ),
                "secrets": {
                    "sftp_private_key": key_var,
                    "sftp_known_hosts": "NAV_SFTP_KNOWN_HOSTS",
                },
            }
        )
    path = tmp_path / "districts.yaml"
    document = {
        "data_root": str(tmp_path / "data"),
        "partitions_start": "2026-11-20",
        "districts": entries,
    }
    path.write_text(yaml.safe_dump(document))
    return path, remote_dirs, secrets_env


def _wait_for_runs(instance, count: int, procs: dict[str, subprocess.Popen], logs: Path):
    from dagster import DagsterRunStatus, RunsFilter

    done = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
    deadline = time.monotonic() + RUNS_TIMEOUT
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited early:\n{(logs / f'{name}.log').read_text()[-4000:]}")
        records = instance.get_run_records(RunsFilter(job_name=NIGHTLY_JOB))
        if len(records) == count and all(r.dagster_run.status in done for r in records):
            return records
        time.sleep(1)
    states = [(r.dagster_run.tags.get("dagster/partition"), r.dagster_run.status) for r in records]
    tails = {n: (logs / f"{n}.log").read_text()[-3000:] for n in procs}
    pytest.fail(f"runs not finished in {RUNS_TIMEOUT:.0f} s: {states}\n{tails}")


def _step_failures(instance, run_id: str) -> list[str]:
    """Why a run failed: its step failures' messages and errors (no PII reaches them)."""
    failures = []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is not None and event.event_type_value == "STEP_FAILURE":
            error = event.step_failure_data.error
            failures.append(f"{event.step_key}: {error.message if error else entry.message}")
    return failures


def _overlaps(intervals: list[tuple[float, float]]) -> list[tuple]:
    ordered = sorted(intervals)
    return [(a, b) for a, b in itertools.pairwise(ordered) if b[0] < a[1]]


def _iso(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_backfill_of_three_districts_through_celery_and_postgres(
    tmp_path, services, sftp_server, monkeypatch
):
    postgres, redis = services
    started = time.monotonic()
    districts_file, remote_dirs, secrets_env = _write_districts(tmp_path, sftp_server)
    home = tmp_path / "dagster_home"
    home.mkdir()
    # deploy/dagster.yaml as shipped, with the queue checked every second instead of every
    # 5 s: the 6 runs share one SFTP host, so they run one after the other.
    instance_config = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    instance_config["run_coordinator"] = {
        "module": "dagster._core.run_coordinator",
        "class": "QueuedRunCoordinator",
        "config": {"dequeue_interval_seconds": 1},
    }
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance_config))
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {
                        "python_module": {
                            "module_name": "naviance_pipeline.definitions",
                            "location_name": "naviance_pipeline",
                            "working_directory": str(REPO),
                        }
                    }
                ]
            }
        )
    )
    env = {
        **os.environ,
        **postgres.env,
        **secrets_env,
        "DAGSTER_HOME": str(home),
        "NAVIANCE_HOME": str(tmp_path / "home"),
        "NAVIANCE_DISTRICTS_FILE": str(districts_file),
        "NAVIANCE_EXECUTOR": "celery",
        "NAVIANCE_CELERY_BROKER_URL": f"{redis.url}/0",
        "NAVIANCE_CELERY_BACKEND_URL": f"{redis.url}/1",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    for name in ("DAGSTER_HOME", *postgres.env):
        monkeypatch.setenv(name, env[name])
    from dagster import DagsterInstance

    # The instance's tables are created here, once, before the worker and the daemon start:
    # started together on an empty database they race to create them (seen in CI: the worker
    # died with 'type "secondary_indexes" already exists').
    with DagsterInstance.get() as instance:
        instance.get_run_records(limit=1)
    logs = tmp_path / "logs"
    logs.mkdir()
    procs: dict[str, subprocess.Popen] = {}
    try:
        procs["celery"] = _spawn(
            [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
             "-y", str(REPO / "deploy" / "celery.yaml"), "-q", "dagster", "--", "-c", "3"],
            env, logs / "celery.log",
        )  # fmt: skip
        procs["daemon"] = _spawn(
            [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], env, logs / "daemon.log"
        )
        partitions = [str(district_key(day, name)) for day in DAYS for name in DISTRICTS]
        backfill = subprocess.run(
            [str(BIN / "dagster"), "job", "backfill", "-w", str(workspace), "-j", NIGHTLY_JOB,
             "--partitions", ",".join(partitions), "--noprompt"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert backfill.returncode == 0, backfill.stdout + backfill.stderr

        from dagster import DagsterRunStatus

        with DagsterInstance.get() as instance:
            records = _wait_for_runs(instance, len(partitions), procs, logs)
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            runs = {r.dagster_run.tags["dagster/partition"]: r for r in records}
            assert sorted(runs) == sorted(partitions)
            failed = {
                key: _step_failures(instance, r.dagster_run.run_id)
                for key, r in runs.items()
                if r.dagster_run.status != DagsterRunStatus.SUCCESS
            }
            assert not failed, f"failed runs {failed}; logs in {logs}"
            # Every step ran on the Celery worker, not in the run process.
            for record in records:
                messages = [e.message for e in instance.all_logs(record.dagster_run.run_id)]
                assert sum("in celery worker" in (m or "") for m in messages) == 7
                assert record.dagster_run.tags[SFTP_HOST_TAG] == sftp_server.host
            # The run queue let one run per SFTP host in at a time.
            run_spans = [(r.start_time, r.end_time) for r in records]
            assert _overlaps(run_spans) == []
    finally:
        for proc in procs.values():
            stop_process(proc)

    data_root = str(tmp_path / "data")
    upload_spans = []
    packages = {}
    for name in DISTRICTS:
        layout = DataLayout(data_root, name)
        newest = Path(str(layout.package_path(DAYS[-1]))).read_bytes()
        packages[name] = newest
        # The district's remote folder holds exactly its own newest package, nothing else.
        landed = remote_dirs[name]
        assert sorted(p.name for p in landed.iterdir()) == [ZIP_NAME]
        assert hashlib.sha256((landed / ZIP_NAME).read_bytes()).hexdigest() == (
            hashlib.sha256(newest).hexdigest()
        )
        for day in DAYS:
            assert Path(str(layout.package_path(day))).is_file()
        receipt_files = Path(str(layout.base), "receipts").rglob("*.json")
        receipts = [json.loads(p.read_text()) for p in receipt_files]
        assert sorted(r["partition"] for r in receipts) == list(DAYS)
        assert {r["target"].rsplit("/", 1)[-1] for r in receipts} == {f"celery-{name}"}
        upload_spans += [(_iso(r["started_at"]), _iso(r["ended_at"])) for r in receipts]
    # Per-district data differs, and no two uploads to the one host overlapped in time.
    assert len(set(packages.values())) == len(DISTRICTS)
    assert len(upload_spans) == len(partitions)
    assert _overlaps(upload_spans) == []
    print(f"backfill of {len(partitions)} runs took {time.monotonic() - started:.1f} s")
