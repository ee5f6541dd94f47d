"""Many districts on a real distributed engine: PostgreSQL instance storage, the run queue and
run monitoring of a ``dagster-daemon``, the Celery run launcher of deploy/dagster.yaml and a
Celery run worker over Redis, delivery to the loopback OpenSSH server.

A job backfill of 3 districts × 2 dates is submitted with ``dagster job backfill``; the daemon
admits the runs, the launcher sends each as one Celery task, and a worker process that has the
code imported executes its seven steps in order. The runs of the one SFTP host overlap; only
their uploads wait for one another (NAVIANCE_UPLOADS_PER_HOST=1). A worker process killed in the
middle of a delivery leaves a run that run monitoring marks failed, and the next run of that
district delivers. Everything is started here on loopback and stopped by process id.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from naviance_pipeline.defs.jobs import SFTP_HOST_TAG, STAGES
from naviance_pipeline.defs.partitions import district_key
from naviance_pipeline.defs.run_workers import TASK_TAG, WORKER_TAG
from naviance_pipeline.oneroster.sample import write_sample_district
from naviance_pipeline.oneroster.spec import ZIP_NAME
from naviance_pipeline.operations.crash import CRASH_ENV, PAUSE_ENV
from naviance_pipeline.operations.storage import DataLayout
from naviance_pipeline_tests.integration.deployment import Deployment
from naviance_pipeline_tests.integration.services import (
    PostgresServer,
    RedisServer,
    stop_process,
    unavailable_reason,
)
from naviance_pipeline_tests.pipeline_helpers import write_districts_file

pytestmark = [pytest.mark.integration, pytest.mark.sftp]

DISTRICTS = ("alpha", "beta", "gamma")
TIMEZONES = ("America/New_York", "America/Chicago", "America/Los_Angeles")
DAYS = ("2026-11-23", "2026-11-24")
# Only a hang guard (a lost Celery task, a daemon that never dequeues): the 6 runs take well
# under a minute on an idle 2-core machine, and nothing here asserts how fast they are.
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


@pytest.fixture
def fresh_services(services):
    """The module's servers with an empty Dagster database and empty Redis databases."""
    import psycopg2

    postgres, redis = services
    conn = psycopg2.connect(**postgres.connect_args("postgres"))
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {postgres.db_name} WITH (FORCE)")
            cursor.execute(f"CREATE DATABASE {postgres.db_name}")
    finally:
        conn.close()
    import redis as redis_client

    for db in (0, 1):
        redis_client.Redis.from_url(f"{redis.url}/{db}").flushdb()
    return postgres, redis


def _write_districts(
    tmp_path: Path, sftp_server, names=DISTRICTS, prefix="celery"
) -> tuple[Path, dict[str, Path], dict]:
    remote_dirs, entries, secrets_env = {}, [], {"NAV_SFTP_KNOWN_HOSTS": ""}
    secrets_env["NAV_SFTP_KNOWN_HOSTS"] = sftp_server.known_hosts_text
    for seed, (name, zone) in enumerate(zip(names, TIMEZONES, strict=False), start=31):
        source = write_sample_district(
            str(tmp_path / "sources" / f"{name}.zip"), students=40, schools=2, seed=seed
        )
        local_dir, remote = sftp_server.make_remote_dir(f"{prefix}-{name}")
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
    path = write_districts_file(tmp_path, entries)
    return path, remote_dirs, secrets_env


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


def _deployment(tmp_path, services, sftp_server, names=DISTRICTS, prefix="celery", **extra):
    postgres, redis = services
    districts_file, remote_dirs, secrets_env = _write_districts(
        tmp_path, sftp_server, names, prefix
    )
    env = {
        **secrets_env,
        "NAVIANCE_HOME": str(tmp_path / "home"),
        "NAVIANCE_DISTRICTS_FILE": str(districts_file),
        "NAVIANCE_UPLOADS_PER_HOST": "1",
        **extra,
    }
    return Deployment(tmp_path, postgres, redis, env), remote_dirs


def _process_of_steps(instance, run_id: str) -> set[int]:
    """The process ids that executed the run's steps (every STEP_* event carries its pid)."""
    return {
        entry.dagster_event.pid
        for entry in instance.all_logs(run_id)
        if entry.dagster_event is not None
        and entry.dagster_event.event_type_value.startswith("STEP_")
    }


def _next_run_delivers(deployment, instance, old: str, partition: str, runs: int) -> None:
    """The worker ``old`` replaced by a fresh one, the district's next run succeeds."""
    from dagster import DagsterRunStatus

    stop_process(deployment.procs.pop(old))
    deployment.start_workers(1, name="fresh")
    deployment.wait_until_ready(1)
    deployment.backfill([partition])
    records = deployment.wait_for_runs(instance, runs, RUNS_TIMEOUT)
    latest = max(records, key=lambda r: r.create_timestamp)
    assert latest.dagster_run.status == DagsterRunStatus.SUCCESS, _step_failures(
        instance, latest.dagster_run.run_id
    )


def test_backfill_of_three_districts_runs_in_parallel_with_one_upload_at_a_time(
    tmp_path, fresh_services, sftp_server
):
    postgres = fresh_services[0]
    deployment, remote_dirs = _deployment(
        tmp_path,
        fresh_services,
        sftp_server,
        # Every upload takes 2 s more (a slow server): without the host's upload slot the
        # runs' uploads would overlap.
        **{PAUSE_ENV: "delivery:uploading=2"},
        # The delivery locks and upload slots in PostgreSQL, as on several machines.
        NAVIANCE_LOCKS_URL=(
            f"postgresql://{postgres.user}@127.0.0.1:{postgres.port}/{postgres.db_name}"
        ),
        NAVIANCE_LOCKS_PASSWORD=postgres.password,
    )
    deployment.prepare()
    try:
        deployment.start_workers(2)
        deployment.start_daemon()
        deployment.wait_until_ready(2)
        partitions = [str(district_key(day, name)) for day in DAYS for name in DISTRICTS]
        sessions_before = fresh_services[0].sessions()
        deployment.backfill(partitions)

        from dagster import DagsterRunStatus

        with deployment.instance() as instance:
            records = deployment.wait_for_runs(instance, len(partitions), RUNS_TIMEOUT)
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            runs = {r.dagster_run.tags["dagster/partition"]: r for r in records}
            assert sorted(runs) == sorted(partitions)
            failed = {
                key: _step_failures(instance, r.dagster_run.run_id)
                for key, r in runs.items()
                if r.dagster_run.status != DagsterRunStatus.SUCCESS
            }
            assert not failed, f"failed runs {failed}; logs in {deployment.logs}"
            worker_pids = set()
            for record in records:
                run = record.dagster_run
                assert run.tags[SFTP_HOST_TAG] == sftp_server.host
                # Launched as one Celery task, executed whole by one worker process: every
                # step's events come from the process the worker recorded, none from the
                # daemon or a run process of its own.
                assert run.tags[TASK_TAG]
                pid = run.tags[WORKER_TAG].rpartition(":")[2]
                assert _process_of_steps(instance, run.run_id) == {int(pid)}
                steps = {
                    e.dagster_event.step_key
                    for e in instance.all_logs(run.run_id)
                    if e.dagster_event is not None
                    and e.dagster_event.event_type_value == "STEP_SUCCESS"
                }
                assert set(STAGES) <= steps
                worker_pids.add(pid)
            # Two worker processes took the six runs: each process served several runs.
            assert len(worker_pids) <= 2
            run_spans = [(r.start_time, r.end_time) for r in records]
    finally:
        deployment.stop()
    time.sleep(1.5)  # the ended backends' counts are published within a second
    # Dagster's storage keeps a connection per process (defs/pg_storage.py): creating and
    # executing a run opens a handful, where the stock storage opened one per query (~440).
    sessions_per_run = (fresh_services[0].sessions() - sessions_before) / len(partitions)
    assert sessions_per_run < 60, sessions_per_run

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
        receipt_files = Path(str(layout.base), "receipts").rglob("*.json")
        receipts = [json.loads(p.read_text()) for p in receipt_files]
        assert sorted(r["partition"] for r in receipts) == list(DAYS)
        assert {r["target"].rsplit("/", 1)[-1] for r in receipts} == {f"celery-{name}"}
        upload_spans += [(_iso(r["started_at"]), _iso(r["ended_at"])) for r in receipts]
    assert len(set(packages.values())) == len(DISTRICTS)
    assert len(upload_spans) == len(partitions)
    # The runs of the one host overlapped (no run-level limit), and their uploads did not:
    # each waited for the host's one upload slot.
    assert _overlaps(run_spans) != []
    assert _overlaps(upload_spans) == []
    assert all(e - s >= 2 for s, e in upload_spans)


def test_a_worker_process_killed_in_a_delivery_fails_its_run_and_the_next_run_delivers(
    tmp_path, fresh_services, sftp_server
):
    """Dead-run recovery on the distributed path: the worker process executing a run dies by
    SIGKILL holding the district's delivery lock (as the out-of-memory killer would); run
    monitoring marks the run failed instead of leaving it started, and the district's next run
    takes the lock and delivers."""
    deployment, remote_dirs = _deployment(
        tmp_path, fresh_services, sftp_server, names=DISTRICTS[:1], prefix="killed"
    )
    deployment.prepare()
    home_config = deployment.home / "dagster.yaml"
    instance_config = yaml.safe_load(home_config.read_text())
    instance_config["run_monitoring"]["poll_interval_seconds"] = 1
    home_config.write_text(yaml.safe_dump(instance_config))
    partition = str(district_key(DAYS[-1], DISTRICTS[0]))
    from dagster import DagsterRunStatus

    try:
        deployment.env_extra[CRASH_ENV] = "delivery:decided"
        deployment.start_workers(1, name="doomed")
        deployment.env_extra.pop(CRASH_ENV)
        deployment.start_daemon()
        deployment.wait_until_ready(1)
        deployment.backfill([partition])
        with deployment.instance() as instance:
            (record,) = deployment.wait_for_runs(instance, 1, RUNS_TIMEOUT)
            run = record.dagster_run
            assert run.status == DagsterRunStatus.FAILURE
            messages = [e.message or "" for e in instance.all_logs(run.run_id)]
            # Marked by run monitoring from the launcher's health check of the run worker:
            # Celery's record of the task (FAILURE, once the worker has seen its process die)
            # or, if monitoring looks first, the recorded worker process being gone.
            dead = r"Celery task of the run ended in FAILURE|worker process \d+ on .+ is gone"
            assert any(
                re.match(rf"Detected run worker status FAILED: 'the ({dead})'", m) for m in messages
            ), messages
            # The process died inside the delivery: the upload never started.
            assert not any((remote_dirs[DISTRICTS[0]]).iterdir())

            _next_run_delivers(deployment, instance, "doomed", partition, runs=2)
    finally:
        deployment.stop()
    landed = remote_dirs[DISTRICTS[0]]
    assert sorted(p.name for p in landed.iterdir()) == [ZIP_NAME]


def test_terminate_stops_the_run_on_its_worker_and_the_worker_goes_on(
    tmp_path, fresh_services, sftp_server
):
    """Terminate (the UI's button) while a run uploads: the worker process executing it is
    stopped, the run is canceled, nothing half-sent stays on the server, and the worker takes
    the district's next run."""
    deployment, remote_dirs = _deployment(
        tmp_path,
        fresh_services,
        sftp_server,
        names=DISTRICTS[:1],
        prefix="terminated",
        **{PAUSE_ENV: "delivery:uploading=600"},
    )
    deployment.prepare()
    partition = str(district_key(DAYS[-1], DISTRICTS[0]))
    from dagster import DagsterRunStatus, RunsFilter

    try:
        deployment.start_workers(1, name="slow")
        deployment.start_daemon()
        deployment.wait_until_ready(1)
        deployment.backfill([partition])
        with deployment.instance() as instance:
            deadline = time.monotonic() + RUNS_TIMEOUT
            while time.monotonic() < deadline:  # until the upload's partial file is there
                if any(p.name.endswith(".part") for p in remote_dirs[DISTRICTS[0]].iterdir()):
                    break
                time.sleep(0.5)
            (run,) = instance.get_runs(RunsFilter(job_name="nightly_job"))
            assert instance.run_launcher.terminate(run.run_id)
            assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.CANCELED

            deployment.env_extra.pop(PAUSE_ENV)
            _next_run_delivers(deployment, instance, "slow", partition, runs=2)
    finally:
        deployment.stop()
    # The stopped upload's partial file was swept by the next delivery; the package landed.
    assert sorted(p.name for p in remote_dirs[DISTRICTS[0]].iterdir()) == [ZIP_NAME]


def test_a_worker_started_before_the_districts_file_changed_runs_in_a_fresh_process(
    tmp_path, fresh_services, sftp_server
):
    """A worker imported the code (and the districts file) when it started; after the file
    changed, it does not run a district with yesterday's definitions: the run gets a process
    of its own that reads the file as it is now."""
    deployment, remote_dirs = _deployment(
        tmp_path, fresh_services, sftp_server, names=DISTRICTS[:1], prefix="changed"
    )
    deployment.prepare()
    partition = str(district_key(DAYS[-1], DISTRICTS[0]))
    from dagster import DagsterRunStatus

    try:
        deployment.start_workers(1)
        deployment.start_daemon()
        deployment.wait_until_ready(1)
        districts_file = Path(deployment.env_extra["NAVIANCE_DISTRICTS_FILE"])
        districts_file.write_text(districts_file.read_text() + "# edited after the start\n")
        deployment.backfill([partition])
        with deployment.instance() as instance:
            (record,) = deployment.wait_for_runs(instance, 1, RUNS_TIMEOUT)
            run = record.dagster_run
            assert run.status == DagsterRunStatus.SUCCESS, _step_failures(instance, run.run_id)
            messages = [e.message or "" for e in instance.all_logs(run.run_id)]
            assert any("executed in a fresh process" in m for m in messages), messages
            worker_pid = int(run.tags[WORKER_TAG].rpartition(":")[2])
            steps = _process_of_steps(instance, run.run_id)
            assert len(steps) == 1 and worker_pid not in steps
    finally:
        deployment.stop()
    assert sorted(p.name for p in remote_dirs[DISTRICTS[0]].iterdir()) == [ZIP_NAME]
