"""The documented distributed deployment, started on loopback: PostgreSQL instance storage,
``dagster-daemon`` (run queue, run monitoring), the Celery run launcher of deploy/dagster.yaml
and Celery run workers over Redis. The integration test and benchmarks/many_districts.py both
use it; every process is stopped by its process group id.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from naviance_pipeline.defs.jobs import NIGHTLY_JOB
from naviance_pipeline_tests.integration.services import PostgresServer, RedisServer, stop_process

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")


def spawn(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        args,
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopped with its children by id
    )


def instance_config(**runs) -> dict:
    """deploy/dagster.yaml as shipped, with the run queue checked every second (its default
    is 5 s) and the run-queue settings given here."""
    config = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    config["run_coordinator"] = {
        "module": "dagster._core.run_coordinator",
        "class": "QueuedRunCoordinator",
        "config": {"dequeue_interval_seconds": 1},
    }
    config["concurrency"]["runs"].update(runs)
    return config


@dataclass
class Deployment:
    folder: Path
    postgres: PostgresServer
    redis: RedisServer
    env_extra: dict[str, str]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.folder / "dagster_home"

    @property
    def logs(self) -> Path:
        return self.folder / "logs"

    @property
    def workspace(self) -> Path:
        return self.folder / "workspace.yaml"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            **self.postgres.env,
            **self.env_extra,
            "DAGSTER_HOME": str(self.home),
            "NAVIANCE_CELERY_BROKER_URL": f"{self.redis.url}/0",
            "NAVIANCE_CELERY_BACKEND_URL": f"{self.redis.url}/1",
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def prepare(self, **runs) -> Deployment:
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text(yaml.safe_dump(instance_config(**runs)))
        location = {
            "module_name": "naviance_pipeline.definitions",
            "location_name": "naviance_pipeline",
            "working_directory": str(REPO),
        }
        self.workspace.write_text(yaml.safe_dump({"load_from": [{"python_module": location}]}))
        # The instance's tables are created once, before the workers and the daemon start:
        # started together on an empty database they race to create them.
        with self.instance() as instance:
            instance.get_run_records(limit=1)
        return self

    @contextlib.contextmanager
    def instance(self):
        """The deployment's instance, with the variables deploy/dagster.yaml reads set while
        it is open (its run launcher is built when first used)."""
        from dagster import DagsterInstance
        from dagster._core.instance.ref import InstanceRef

        needed = {
            k: v for k, v in self.env.items() if k.startswith(("DAGSTER_PG_", "NAVIANCE_CELERY"))
        }
        saved = {k: os.environ.get(k) for k in needed}
        os.environ.update(needed)
        try:
            with DagsterInstance.from_ref(InstanceRef.from_dir(str(self.home))) as instance:
                yield instance
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def start_workers(self, processes: int, name: str = "worker") -> None:
        """One Celery run worker with ``processes`` worker processes (runs at a time)."""
        self.procs[name] = spawn(
            [str(BIN / "celery"), "-A", "naviance_pipeline.defs.run_workers", "worker",
             "--queues", "naviance-runs", "--concurrency", str(processes),
             "--hostname", f"{name}@%h", "--loglevel", "INFO"],
            self.env, self.logs / f"{name}.log",
        )  # fmt: skip

    def start_daemon(self) -> None:
        self.procs["daemon"] = spawn(
            [str(BIN / "dagster-daemon"), "run", "-w", str(self.workspace)],
            self.env,
            self.logs / "daemon.log",
        )

    def wait_until_ready(self, processes: int, timeout: float = 180.0) -> None:
        """Until the run workers' processes have imported the code and the daemon is up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            workers = sum(
                (self.logs / f"{name}.log")
                .read_text(errors="replace")
                .count("ready: code imported")
                for name in self.procs
                if name != "daemon"
            )
            daemon = (self.logs / "daemon.log").read_text(errors="replace")
            if workers >= processes and "QueuedRunCoordinatorDaemon" in daemon:
                return
            time.sleep(0.5)
        raise TimeoutError("the run workers or the daemon did not start:\n" + self.tail("daemon"))

    def backfill(self, partitions: Iterable[str]) -> float:
        """``dagster job backfill`` of the nightly job; the seconds it took to submit."""
        started = time.monotonic()
        done = subprocess.run(
            [str(BIN / "dagster"), "job", "backfill", "-w", str(self.workspace), "-j", NIGHTLY_JOB,
             "--partitions", ",".join(partitions), "--noprompt"],
            cwd=REPO, env=self.env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"dagster job backfill failed:\n{done.stdout}\n{done.stderr}")
        return time.monotonic() - started

    def submit_backfill(self, first: str, last: str | None = None) -> float:
        """``naviance-pipeline backfill``: one backfill stored for the daemon, which creates the
        runs; the seconds the command took."""
        started = time.monotonic()
        done = subprocess.run(
            [str(BIN / "naviance-pipeline"), "backfill", "--from", first, "--to", last or first,
             "--workspace", str(self.workspace)],
            cwd=REPO, env=self.env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"naviance-pipeline backfill failed:\n{done.stdout}\n{done.stderr}")
        return time.monotonic() - started

    def wait_for_runs(self, instance, count: int, timeout: float) -> list:
        """The run records once ``count`` runs of the nightly job have finished; a hang guard
        only (nothing asserts how fast)."""
        from dagster import RunsFilter

        deadline = time.monotonic() + timeout
        records = []
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited early:\n{self.tail(name)}")
            records = instance.get_run_records(RunsFilter(job_name=NIGHTLY_JOB))
            finished = [r for r in records if r.dagster_run.status.value in FINISHED]
            if len(records) >= count and len(finished) == len(records):
                return records
            time.sleep(0.5)
        states = [(r.dagster_run.tags.get("dagster/partition"), r.dagster_run.status.value)
                  for r in records]  # fmt: skip
        tails = "\n".join(self.tail(n) for n in self.procs)
        raise TimeoutError(f"runs not finished in {timeout:.0f} s: {states}\n{tails}")

    def tail(self, name: str, chars: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        return f"--- {name}\n" + (
            path.read_text(errors="replace")[-chars:] if path.exists() else ""
        )

    def stop(self) -> None:
        for proc in self.procs.values():
            stop_process(proc)
        self.procs.clear()
