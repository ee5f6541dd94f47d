"""End-to-end benchmark: the whole pipeline for one partition against the standard tools' floor.

For each size (users) it generates — once, cached outside the repo — a ClassLink-style sample
district, then in a fresh process runs every asset from ``sis_extract`` to ``naviance_delivery``
(to a loopback OpenSSH server) on a temporary Dagster instance, and reports wall time per stage
and peak resident memory. In the same run, on the same data, it measures the floor: ``unzip -p``
of the needed entries, ``zip -6`` of the four produced CSVs and OpenSSH ``sftp put`` of the
produced ZIP to the same server. It prints pipeline / floor per size and the per-row cost ratio
between consecutive sizes.

    python benchmarks/pipeline_bench.py [--sizes 10000,100000,1000000] [--cache DIR]

Needs root, openssh-server, zip and unzip (as ``.ci/run`` installs). Results: BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

DAY = "2026-11-24"
STAGES = (
    "sis_extract",
    "orgs",
    "users",
    "demographics",
    "manifest",
    "naviance_package",
    "naviance_delivery",
)
NEEDED = ("manifest.csv", "orgs.csv", "users.csv", "demographics.csv")


def cached_district(cache: Path, users: int) -> Path:
    """A sample district of about ``users`` users (students are ~95% of users)."""
    from naviance_pipeline.oneroster.sample import write_sample_district

    path = cache / f"district-{users}.zip"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        tmp = path.with_suffix(".tmp")
        write_sample_district(str(tmp), students=users, schools=max(4, users // 2000), seed=1)
        os.replace(tmp, path)
        print(f"  generated {path.name} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return path


def run_pipeline(source: Path, work: Path, target: str) -> dict:
    """Child process: materialize every asset for DAY; per-stage seconds from the event log."""
    import dagster as dg

    from naviance_pipeline.definitions import build_definitions
    from naviance_pipeline.jobs import NIGHTLY_JOB
    from naviance_pipeline.settings import Settings

    settings = Settings(
        home=str(work),
        source_url=str(source),
        data_root=str(work / "data"),
        delivery_target=target,
        district="bench",
        source_system_name="ClassLink",
        timezone="America/New_York",
        schedule_time="02:00",
        include_staff=False,
        rollover_day="07-15",
        partitions_start="2026-01-01",
    )
    job = build_definitions(settings).resolve_job_def(NIGHTLY_JOB)
    with dg.instance_for_test() as instance:
        t0 = time.perf_counter()
        result = job.execute_in_process(partition_key=DAY, instance=instance, raise_on_error=False)
        total = time.perf_counter() - t0
        starts, ends = {}, {}
        for record in instance.all_logs(result.run_id):
            event = record.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type_value == "STEP_START":
                starts[event.step_key] = record.timestamp
            elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
                ends[event.step_key] = record.timestamp
    package = work / "data" / "districts" / "bench" / "packages" / DAY / "NavianceOneRoster.zip"
    return {
        "success": result.success,
        "total": total,
        "stages": {s: ends.get(s, 0) - starts.get(s, 0) for s in STAGES},
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "package": str(package),
        "package_bytes": package.stat().st_size if package.exists() else 0,
    }


def _timed(cmd: list[str], **kwargs) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, **kwargs)
    return time.perf_counter() - t0


def floor(source: Path, package: Path, work: Path, server) -> dict:
    """The standard tools doing the unavoidable work on the same data."""
    with zipfile.ZipFile(source) as z:
        entries = [n for n in z.namelist() if n.rsplit("/", 1)[-1] in NEEDED]
    with open(os.devnull, "wb") as null:
        unzip = _timed(["unzip", "-p", str(source), *entries], stdout=null)
    csvs = work / "csvs"
    csvs.mkdir()
    subprocess.run(["unzip", "-q", str(package), "-d", str(csvs)], check=True)
    out = work / "floor.zip"
    zip6 = _timed(["zip", "-q", "-6", "-j", str(out), *(str(csvs / n) for n in NEEDED)])
    known = work / "known_hosts"
    known.write_text(server.known_hosts_text + "\n")
    batch = f"put {package} {server.remote_upload}/floor.zip\n"
    sftp = _timed(
        [
            "sftp", "-q", "-b", "-", "-i", server.client_key_path, "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={known}",
            "-o", "StrictHostKeyChecking=yes", "-P", str(server.port),
            f"{server.user}@{server.host}",
        ],
        input=batch.encode(),
    )  # fmt: skip
    return {"unzip_p": unzip, "zip_6": zip6, "sftp_put": sftp, "total": unzip + zip6 + sftp}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument(
        "--cache", default=str(Path.home() / ".cache" / "naviance_pipeline" / "bench")
    )
    parser.add_argument("--child", nargs=3, metavar=("SOURCE", "WORK", "TARGET"))
    args = parser.parse_args()
    if args.child:
        source, work, target = args.child
        print(json.dumps(run_pipeline(Path(source), Path(work), target)))
        return 0

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from naviance_pipeline_tests.sshd_server import SSHDServer, unavailable_reason

    reason = unavailable_reason()
    if reason:
        print(f"cannot run the benchmark: {reason}", file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with SSHDServer() as server:
        for users in sizes:
            source = cached_district(Path(args.cache), users)
            work = Path(tempfile.mkdtemp(prefix=f"naviance-bench-{users}-"))
            env = {
                **os.environ,
                "NAVIANCE_SFTP_PASSWORD": server.password,
                "NAVIANCE_SFTP_KNOWN_HOSTS": server.known_hosts_text,
            }
            remote_local, remote = server.make_remote_dir(f"bench-{users}")
            target = f"sftp://{server.user}@{server.host}:{server.port}{remote}"
            child = subprocess.run(
                [sys.executable, __file__, "--child", str(source), str(work), target],
                capture_output=True, text=True, env=env, check=False,
            )  # fmt: skip
            if child.returncode != 0:
                print(child.stderr[-4000:], file=sys.stderr)
                return 1
            measured = json.loads(child.stdout.strip().splitlines()[-1])
            if not measured["success"]:
                print(f"pipeline failed at {users} users", file=sys.stderr)
                return 1
            measured["floor"] = floor(source, Path(measured["package"]), work, server)
            measured["users"] = users
            rows.append(measured)
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(remote_local, ignore_errors=True)
            report(rows)
    return 0


def report(rows: list[dict]) -> None:
    print()
    for row in rows:
        fl = row["floor"]
        print(f"## {row['users']:,} users  (package {row['package_bytes'] / 1e6:.1f} MB)")
        print("| stage | seconds |\n|---|---|")
        for stage, seconds in row["stages"].items():
            print(f"| {stage} | {seconds:.2f} |")
        stage_sum = sum(row["stages"].values())
        print(f"| **pipeline (stages)** | **{stage_sum:.2f}** |")
        print(f"| pipeline (run, incl. Dagster overhead) | {row['total']:.2f} |")
        print(
            f"| floor: unzip -p {fl['unzip_p']:.2f} + zip -6 {fl['zip_6']:.2f} "
            f"+ sftp put {fl['sftp_put']:.2f} | {fl['total']:.2f} |"
        )
        print(f"| **ratio pipeline / floor** | **{stage_sum / fl['total']:.2f}** |")
        print(f"| peak RSS | {row['peak_rss_mb']:.0f} MB |")
        print()
    for small, big in itertools.pairwise(rows):
        per_small = sum(small["stages"].values()) / small["users"]
        per_big = sum(big["stages"].values()) / big["users"]
        print(f"per-row cost {big['users']:,} vs {small['users']:,}: {per_big / per_small:.2f}×")


if __name__ == "__main__":
    sys.exit(main())
