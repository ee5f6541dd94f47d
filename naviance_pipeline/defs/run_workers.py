"""Whole runs on Celery workers: the run launcher of the distributed deployment, and its worker.

The nightly graph is a straight line of seven steps, so a district's run executes them in order
in one process (the in-process executor) and many runs go in parallel, one per worker process.
``CeleryRunLauncher`` (the instance's ``run_launcher``, deploy/dagster.yaml) sends each launched
run to a Celery queue as one task holding only its run id; a worker process that has already
imported the code location takes it and executes the run there, so a run costs its work plus
Dagster's bookkeeping, not a Python start-up and an import per run or a task per step.

    celery -A naviance_pipeline.defs.run_workers worker --queues naviance-runs --concurrency 2

Runs in flight are bounded by the run queue (``max_concurrent_runs``) and executed as fast as
the workers' processes allow (``--concurrency`` per machine, any number of machines). What waits
for an SFTP host is the upload alone (delivery/slots.py), not the run.

A worker process that dies (``kill -9``, the out-of-memory killer) leaves its task marked failed
by Celery, and a worker whose whole machine died leaves its process gone: run monitoring asks
``check_run_worker_health`` and marks such a run failed, so a dead run never stays "started".
The code location is imported once per worker process; when the districts file or the
``.env`` file changed since, a run is executed in a fresh ``dagster api execute_run`` process
instead, so a worker never runs a district with yesterday's definitions.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from functools import cache
from typing import Any

try:
    from celery import Celery
    from celery.signals import worker_process_init
except ModuleNotFoundError:  # a one-machine install has no Celery
    raise ImportError(
        "the Celery run launcher needs the deploy extra: pip install 'naviance_pipeline[deploy]' "
        "(uv sync --extra deploy)"
    ) from None
from dagster import Field, StringSource
from dagster._core.launcher.base import (
    CheckRunHealthResult,
    LaunchRunContext,
    RunLauncher,
    WorkerStatus,
)
from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus
from dagster._serdes import ConfigurableClass
from dagster._serdes.config_class import ConfigurableClassData

BROKER_ENV = "NAVIANCE_CELERY_BROKER_URL"
BACKEND_ENV = "NAVIANCE_CELERY_BACKEND_URL"
QUEUE = "naviance-runs"
TASK = "naviance.execute_run"
TASK_TAG = "naviance/run-task"  # the Celery task of a launched run
WORKER_TAG = "naviance/run-worker"  # host:pid of the process executing it
# A worker process is replaced once it has grown past this (KiB; Celery's unit), so a large
# district's memory is returned to the system after its run.
MAX_MEMORY_PER_CHILD_KIB = 2 * 1024 * 1024


def make_app(broker: str | None = None, backend: str | None = None) -> Celery:
    app = Celery(
        "naviance_runs",
        broker=broker or os.environ.get(BROKER_ENV),
        backend=backend or os.environ.get(BACKEND_ENV),
    )
    app.conf.update(
        task_default_queue=QUEUE,
        task_track_started=True,  # STARTED in the backend: run monitoring reads it
        task_acks_late=False,  # taken once: a lost worker is a failed run, never a second run
        worker_prefetch_multiplier=1,  # a worker process holds one run at a time
        worker_max_memory_per_child=MAX_MEMORY_PER_CHILD_KIB,
        broker_connection_retry_on_startup=True,
        worker_redirect_stdouts_level="INFO",  # a run's Dagster log lines are not warnings
        result_expires=7 * 24 * 3600,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
    )
    return app


class CeleryRunLauncher(RunLauncher, ConfigurableClass):
    """Launches each run as one Celery task executed whole by a worker process."""

    def __init__(
        self,
        broker: str,
        backend: str,
        queue: str = QUEUE,
        inst_data: ConfigurableClassData | None = None,
    ):
        self._inst_data = inst_data
        self.queue = queue
        self.app = make_app(broker, backend)
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict:
        return {
            "broker": Field(StringSource, description="Celery broker URL, e.g. redis://r:6379/0"),
            "backend": Field(StringSource, description="result backend, e.g. redis://r:6379/1"),
            "queue": Field(str, is_required=False, default_value=QUEUE),
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> CeleryRunLauncher:
        return cls(inst_data=inst_data, **config_value)

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        result = self.app.send_task(TASK, args=[run.run_id], queue=self.queue)
        self._instance.add_run_tags(run.run_id, {TASK_TAG: result.id})
        self._instance.report_engine_event(
            f"Run sent to the Celery queue {self.queue!r} (task {result.id}); a worker process "
            "executes its steps in order.",
            run,
            cls=self.__class__,
        )

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished or TASK_TAG not in run.tags:
            return False
        self._instance.report_run_canceling(run)
        # The worker process executing it is stopped; Celery starts a fresh one in its place.
        self.app.control.revoke(run.tags[TASK_TAG], terminate=True, signal="SIGTERM")
        self._instance.report_run_canceled(run, message="Run stopped on its Celery worker.")
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        task_id = run.tags.get(TASK_TAG)
        if not task_id:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "no Celery task recorded")
        state = self.app.AsyncResult(task_id).state
        if state in ("FAILURE", "REVOKED"):
            return CheckRunHealthResult(
                WorkerStatus.FAILED, f"the Celery task of the run ended in {state}"
            )
        if state == "SUCCESS":
            return CheckRunHealthResult(
                WorkerStatus.FAILED, "the worker process ended without finishing the run"
            )
        worker = run.tags.get(WORKER_TAG, "")
        host, _, pid = worker.rpartition(":")
        if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
            return CheckRunHealthResult(
                WorkerStatus.FAILED, f"the worker process {pid} on {host} is gone"
            )
        return CheckRunHealthResult(WorkerStatus.RUNNING if worker else WorkerStatus.UNKNOWN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- the worker side -----------------------------------------------------------------------

app = make_app()


def _code_fingerprint() -> str:
    """What the code location's definitions are built from besides the code: the districts
    file and the .env file (their bytes; the environment of a process does not change)."""
    digest = hashlib.sha256()
    for variable, default in (("NAVIANCE_DISTRICTS_FILE", ""), ("NAVIANCE_ENV_FILE", ".env")):
        path = os.environ.get(variable, default)
        try:
            with open(path, "rb") as f:
                digest.update(hashlib.file_digest(f, "sha256").digest())
        except OSError:
            digest.update(b"-")
    return digest.hexdigest()


@cache
def _instance():
    """This worker process's instance, created once (with deploy/dagster.yaml's storage, its
    database connection stays open between runs: defs/pg_storage.py)."""
    from dagster import DagsterInstance

    return DagsterInstance.get()


_loaded: dict[str, str] = {}


@worker_process_init.connect
def _import_code_location(**_kwargs) -> None:
    """Each worker process imports the code location once, when it starts (not the Celery
    parent: nothing is shared across the fork but the code)."""
    _loaded["fingerprint"] = _code_fingerprint()
    import naviance_pipeline.definitions  # noqa: F401

    logging.getLogger(__name__).info("run worker process %d ready: code imported", os.getpid())


@app.task(name=TASK)
def execute_run(run_id: str) -> int:
    """Execute a launched run whole in this worker process; its events go to the instance."""
    from dagster._cli.api import _execute_run_command_body

    instance = _instance()
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise LookupError(f"run {run_id} is not in this worker's Dagster instance (DAGSTER_HOME)")
    if run.status not in (DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING):
        # Taken twice (a broker redelivery): the first one owns it.
        instance.report_engine_event(
            f"A Celery worker was handed run {run_id} again while it is {run.status.value}; "
            "ignored.",
            run,
        )
        return 0
    instance.add_run_tags(run_id, {WORKER_TAG: f"{socket.gethostname()}:{os.getpid()}"})
    if _loaded.get("fingerprint") != _code_fingerprint():
        return _execute_in_fresh_process(instance, run)
    return _execute_run_command_body(run_id, instance, lambda _event: None, False)


def _execute_in_fresh_process(instance, run: DagsterRun) -> int:
    """The districts file or .env changed since this worker imported the code: the run gets
    a process of its own that imports it as it is now."""
    from dagster._grpc.types import ExecuteRunArgs
    from dagster._serdes import serialize_value

    instance.report_engine_event(
        "The districts file or .env changed since this worker started: the run is executed in "
        "a fresh process (restart the workers to make them current).",
        run,
    )
    args = ExecuteRunArgs(
        job_origin=run.job_code_origin,
        run_id=run.run_id,
        instance_ref=instance.get_ref(),
        set_exit_code_on_failure=False,
    )
    command = [sys.executable, "-m", "dagster", "api", "execute_run", serialize_value(args)]
    return subprocess.run(command, check=False).returncode
