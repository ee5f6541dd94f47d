"""Time one stage function at a given size, in a fresh process, without Dagster.

    .venv/bin/python benchmarks/stage_harness.py users|orgs|demographics|package [--users N]
        [--profile out.html] [--repeat N]

The district is the benchmark's cached sample (``pipeline_bench.py`` makes it); the users and
demographics stages and the package read the frames an earlier stage run of this harness
stored under /tmp (run users, orgs, demographics, package in that order once). Prints wall and
CPU seconds (best of --repeat) and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from datetime import date
from pathlib import Path

from upath import UPath

from naviance_pipeline.oneroster.contract import coded_columns
from naviance_pipeline.oneroster.manifest import manifest_frame
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.package import build_package
from naviance_pipeline.oneroster.source import open_source
from naviance_pipeline.oneroster.stages import build_demographics, build_orgs, build_users
from naviance_pipeline.operations.frames import read_frame, write_frame

CACHE = Path.home() / ".cache" / "naviance_pipeline" / "bench"
OPTIONS = Options(as_of=date(2026, 11, 30))


def _run(stage: str, users: int, work: Path) -> None:
    source = open_source(str(CACHE / f"district-{users}.zip"), OPTIONS, lazy=True)
    frame = {n: UPath(work / f"{n}-{users}.parquet") for n in ("orgs", "users", "demographics")}
    if stage == "users":
        write_frame(build_users(source, OPTIONS).frame, frame["users"])
    elif stage == "orgs":
        users_frame = read_frame(frame["users"], ["orgSourcedIds"])
        write_frame(build_orgs(source, users_frame, OPTIONS).frame, frame["orgs"])
    elif stage == "demographics":
        users_frame = read_frame(frame["users"], ["sourcedId", "role"])
        write_frame(build_demographics(source, users_frame, OPTIONS).frame, frame["demographics"])
    else:
        # Read as the package step reads them: columns of codes dictionary-encoded.
        loaders = [
            lambda p=frame[n], n=n: read_frame(p, dictionary=coded_columns(f"{n}.csv"))
            for n in ("orgs", "users", "demographics")
        ]
        manifest = manifest_frame(OPTIONS)
        result = build_package(manifest, *loaders, OPTIONS, str(work / f"package-{users}.zip"))
        print({e.name: e.sha256[:12] for e in result.entries}, result.findings)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["users", "orgs", "demographics", "package"])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--profile", help="write a pyinstrument HTML profile here")
    parser.add_argument("--work", default="/tmp/naviance_stage_harness")
    args = parser.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    best = (float("inf"), float("inf"))
    for _ in range(args.repeat):
        profiler = None
        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.002)
            profiler.start()
        wall, cpu = time.perf_counter(), time.process_time()
        _run(args.stage, args.users, work)
        took = (time.perf_counter() - wall, time.process_time() - cpu)
        best = min(best, took)
        if profiler is not None:
            profiler.stop()
            Path(args.profile).write_text(profiler.output_html())
            print(profiler.output_text(unicode=False, color=False, show_all=False))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"{args.stage} {args.users}: wall {best[0]:.2f} s, CPU {best[1]:.2f} s, peak {peak} MB")


if __name__ == "__main__":
    sys.exit(main())
