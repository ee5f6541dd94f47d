"""A state's night: N generated districts × S students, on the distributed deployment and on an
in-process loop, same machine, same data, same run.

- **loop**: ``naviance-pipeline run --district ID --date D`` for each district, one after the
  other (each a fresh process on a local SQLite instance, as a cron loop would run them);
- **distributed W**: the documented deployment (deploy/dagster.yaml: PostgreSQL storage, the run
  queue of ``dagster-daemon``, the Celery run launcher) with one Celery run worker of W processes
  over Redis; the N partitions are submitted as one ``dagster job backfill``.

Every district delivers to its own target (a local folder by default; ``--target sftp`` sends
all of them to one loopback OpenSSH server, so the uploads wait for the one host's slot).
Printed per engine: total (from the first launch to the last run's end), runs per minute,
median run (its start to its end, as the UI shows it), median work (the sum of a run's step
durations), per-run fixed cost (median run minus median work; plus the median wait from
submission to start), peak resident memory per process, the time to submit the backfill, and
the extrapolation of the measured rate to 500 districts.

    python benchmarks/many_districts.py [--districts 40] [--students 2000] [--workers 1,2]
        [--target folder|sftp] [--json FILE]

Needs root, Debian's postgresql and redis-server (as ``.ci/run`` installs), and the deploy
extra. Results: BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from naviance_pipeline.defs.partitions import district_key  # noqa: E402
from naviance_pipeline.oneroster.sample import write_sample_district  # noqa: E402

DAY = "2026-11-24"
BIN = Path(sys.executable).parent
EXTRAPOLATE = 500


def write_districts(
    folder: Path, sources: Path, n: int, students: int, target: str, sftp=None
) -> Path:
    """The districts file of one engine's run: the shared generated sources, its own data
    root and targets."""
    entries, secrets = [], {}
    for i in range(n):
        name = f"d{i:03d}"
        source = sources / f"{name}-{students}.zip"
        if not source.exists():
            write_sample_district(str(source), students=students, schools=3, seed=1000 + i)
        entry = {
            "id": name,
            "source_url": str(source),
            "timezone": "America/Chicago",
            "schedule_time": "02:00",
        }
        if target == "sftp":
            _local, remote = sftp.make_remote_dir(f"{folder.name}-{name}")
            entry["delivery_target"] = f"sftp://{sftp.user}@{sftp.host}:{sftp.port}{remote}"
            entry["secrets"] = {"sftp_private_key": "BENCH_KEY", "sftp_known_hosts": "BENCH_KH"}
            secrets = {"BENCH_KEY": sftp.client_key_text, "BENCH_KH": sftp.known_hosts_text}
        else:
            out = folder / "out" / name
            out.mkdir(parents=True, exist_ok=True)
            entry["delivery_target"] = str(out)
        entries.append(entry)
    document = {"data_root": str(folder / "data"), "partitions_start": "2026-11-20"}
    path = folder / "districts.yaml"
    path.write_text(yaml.safe_dump({**document, "districts": entries}))
    (folder / "secrets.json").write_text(json.dumps(secrets))
    return path


def _peak_rss_of_group(pgid: int) -> dict[int, float]:
    """Peak resident memory (MB) of every live process of a process group (VmHWM)."""
    peaks = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getpgid(int(entry)) != pgid:
                continue
            for line in Path(f"/proc/{entry}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks[int(entry)] = int(line.split()[1]) / 1024
        except (OSError, ProcessLookupError):
            continue
    return peaks


def run_loop(folder: Path, districts: Path, n: int, env: dict) -> dict:
    env = {**env, "NAVIANCE_DISTRICTS_FILE": str(districts), "NAVIANCE_HOME": str(folder / "home")}
    durations, peaks = [], []
    started = time.monotonic()
    for i in range(n):
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [str(BIN / "naviance-pipeline"), "run", "--district", f"d{i:03d}", "--date", DAY],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _pid, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"naviance-pipeline run of d{i:03d} failed ({status})")
        durations.append(time.monotonic() - t0)
        peaks.append(usage.ru_maxrss / 1024)
    total = time.monotonic() - started
    return {
        "engine": "in-process loop",
        "total_s": round(total, 1),
        "runs_per_min": round(n / total * 60, 1),
        "median_run_s": round(statistics.median(durations), 2),
        "peak_rss_mb": {"run process": round(max(peaks))},
        "extrapolated_500_min": round(EXTRAPOLATE / (n / total) / 60, 1),
    }


def _run_figures(instance, records) -> tuple[list[float], list[float], list[float]]:
    """Per run: its duration, the sum of its steps' durations, and its wait before starting."""
    from dagster import DagsterEventType

    runs, work, waits = [], [], []
    for record in records:
        run_id = record.dagster_run.run_id
        starts, total = {}, 0.0
        for entry in instance.all_logs(run_id):
            event = entry.dagster_event
            if event is None:
                continue
            if event.event_type == DagsterEventType.STEP_START:
                starts[event.step_key] = entry.timestamp
            elif event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
                total += entry.timestamp - starts.pop(event.step_key, entry.timestamp)
        runs.append(record.end_time - record.start_time)
        work.append(total)
        waits.append(record.start_time - record.create_timestamp.timestamp())
    return runs, work, waits


def run_distributed(
    folder: Path, districts: Path, n: int, workers: int, env: dict, submit: str
) -> dict:
    from naviance_pipeline_tests.integration.deployment import Deployment
    from naviance_pipeline_tests.integration.services import PostgresServer, RedisServer

    postgres = PostgresServer().start()
    (folder / "redis").mkdir(parents=True, exist_ok=True)
    redis = RedisServer().start(folder / "redis")
    extra = {
        **{k: v for k, v in env.items() if k.startswith(("BENCH_", "NAVIANCE_"))},
        "NAVIANCE_DISTRICTS_FILE": str(districts),
        "NAVIANCE_HOME": str(folder / "home"),
    }
    deployment = Deployment(folder, postgres, redis, extra).prepare(max_concurrent_runs=workers + 2)
    try:
        deployment.start_workers(workers)
        deployment.start_daemon()
        deployment.wait_until_ready(workers)
        partitions = [str(district_key(DAY, f"d{i:03d}")) for i in range(n)]
        sessions_before = postgres.sessions()
        started = time.time()
        if submit == "dagster":  # the CLI creates every run itself
            submit_s = deployment.backfill(partitions)
        else:  # one backfill stored; the daemon creates the runs
            submit_s = deployment.submit_backfill(DAY)
        with deployment.instance() as instance:
            records = deployment.wait_for_runs(instance, n, timeout=3600)
            failed = [r for r in records if r.dagster_run.status.value != "SUCCESS"]
            if failed:
                raise RuntimeError(f"{len(failed)} runs failed; logs in {deployment.logs}")
            runs, work, waits = _run_figures(instance, records)
            total = max(r.end_time for r in records) - started
        sessions = postgres.sessions() - sessions_before
        peaks = {
            name: round(max(_peak_rss_of_group(proc.pid).values(), default=0))
            for name, proc in deployment.procs.items()
        }
    finally:
        deployment.stop()
        redis.stop()
        postgres.stop()
    median_run, median_work = statistics.median(runs), statistics.median(work)
    uploads = _uploads(folder / "data")
    return {
        "engine": f"distributed, {workers} worker process{'es' if workers > 1 else ''}",
        "total_s": round(total, 1),
        "runs_per_min": round(n / total * 60, 1),
        "median_run_s": round(median_run, 2),
        "median_work_s": round(median_work, 2),
        "fixed_cost_s": round(statistics.median(r - w for r, w in zip(runs, work, strict=True)), 2),
        "median_wait_s": round(statistics.median(waits), 1),
        "submit_s": round(submit_s, 1),
        "db_sessions_per_run": round(sessions / n),
        "peak_rss_mb": peaks,
        "extrapolated_500_min": round(EXTRAPOLATE / (n / total) / 60, 1),
        **uploads,
    }


def _uploads(data_root: Path) -> dict:
    """From the receipts: the median upload, the median wait for the host's upload slot, and
    how many pairs of uploads overlapped in time (0 with one slot per host)."""
    from datetime import datetime

    spans, waits = [], []
    for path in data_root.glob("districts/*/receipts/**/*.json"):
        receipt = json.loads(path.read_text())
        if receipt.get("ended_at"):
            start = datetime.fromisoformat(receipt["started_at"]).timestamp()
            spans.append((start, datetime.fromisoformat(receipt["ended_at"]).timestamp()))
            waits.append(receipt.get("upload_wait_seconds") or 0.0)
    spans.sort()
    overlapping = sum(b[0] < a[1] for a, b in itertools.pairwise(spans))
    return {
        "median_upload_s": round(statistics.median(e - s for s, e in spans), 2) if spans else None,
        "median_slot_wait_s": round(statistics.median(waits), 2) if waits else None,
        "overlapping_uploads": overlapping,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--districts", type=int, default=40)
    parser.add_argument("--students", type=int, default=2000)
    parser.add_argument("--workers", default="1,2", help="worker processes to measure, e.g. 1,2")
    parser.add_argument("--target", choices=("folder", "sftp"), default="folder")
    parser.add_argument("--skip-loop", action="store_true")
    parser.add_argument(
        "--submit",
        choices=("naviance", "dagster"),
        default="naviance",
        help="naviance-pipeline backfill (the daemon creates the runs) or dagster job backfill",
    )
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="naviance-many-"))
    sources = base / "sources"
    results, sftp = [], None
    env = dict(os.environ)
    try:
        if args.target == "sftp":
            from naviance_pipeline_tests.sshd_server import SSHDServer

            sftp = SSHDServer().start()
        engines = [] if args.skip_loop else [("loop", 0)]
        engines += [("distributed", int(w)) for w in args.workers.split(",")]
        for kind, workers in engines:
            folder = base / f"{kind}-{workers}"
            folder.mkdir()
            districts = write_districts(
                folder, sources, args.districts, args.students, args.target, sftp
            )
            run_env = {**env, **json.loads((folder / "secrets.json").read_text())}
            if kind == "loop":
                result = run_loop(folder, districts, args.districts, run_env)
            else:
                result = run_distributed(
                    folder, districts, args.districts, workers, run_env, args.submit
                )
                result["submit"] = args.submit
            result.update(districts=args.districts, students=args.students, target=args.target)
            results.append(result)
            print(json.dumps(result), flush=True)
    finally:
        if sftp is not None:
            sftp.stop()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"\n{args.districts} districts × {args.students} students, targets: {args.target}")
    print(f"{'engine':<36}{'total s':>9}{'runs/min':>10}{'median run':>12}{'fixed':>7}"
          f"{'500 districts':>15}")  # fmt: skip
    for r in results:
        print(f"{r['engine']:<36}{r['total_s']:>9}{r['runs_per_min']:>10}{r['median_run_s']:>12}"
              f"{r.get('fixed_cost_s', ''):>7}{r['extrapolated_500_min']:>11} min")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
