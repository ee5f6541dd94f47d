"""``naviance-pipeline``: validate, package, generate a sample district, run the pipeline,
re-deliver a package, fetch an SFTP host key, and show the rules and the Pandera model of an
output file from the command line.

Exit codes: 0 success (warnings allowed), 1 error findings or a failed run, 2 bad arguments
or a source that cannot be opened at all (SRC-UNREADABLE). A bad argument is one line on stderr,
before any work: each argument's check is its argparse ``type=`` (dates, numbers, ports, guard
codes, paths), and a date outside the partitions is refused before a run is created.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
from collections import defaultdict
from datetime import date
from pathlib import Path

from naviance_pipeline.oneroster.findings import (
    Finding,
    consequences_note,
    has_errors,
    sort_findings,
    summarize,
)
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.source import SourceUnreadable, open_source, redact_url
from naviance_pipeline.oneroster.spec import ZIP_NAME
from naviance_pipeline.operations.settings import max_source_bytes_from_env, parse_month_day
from naviance_pipeline.sources import kinds

EXAMPLES_PER_RULE = 5


def _as_of(text: str | None) -> date:
    # A person at a terminal means "today" when they give no date; the core never guesses.
    return date.fromisoformat(text) if text else date.today()


def _usage_error(message: str) -> int:
    print(f"naviance-pipeline: error: {message}", file=sys.stderr)
    return 2


# ---- argument types: each raises ArgumentTypeError with what is wrong (argparse: exit 2) ----

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def iso_date(text: str) -> str:
    """A calendar date written YYYY-MM-DD (kept as text: partition keys are text)."""
    if not _ISO_DATE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}")
    try:
        date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text} is not a date in the calendar") from None
    return text


def month_day(text: str) -> str:
    try:
        parse_month_day(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a day of the year MM-DD, got {text!r}"
        ) from None
    return text


def at_least(minimum: int):
    def whole_number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {value}")
        return value

    whole_number.__name__ = f"at_least_{minimum}"
    return whole_number


def host_port(text: str) -> tuple[str, int]:
    """HOST[:PORT] (an IPv6 address in brackets: [::1]:2222); port 22 when none is given."""
    bracketed = re.fullmatch(r"\[([^\]]+)\](?::(.*))?", text)
    if bracketed:
        host, port = bracketed.group(1), bracketed.group(2)
    elif text.count(":") > 1:  # a bare IPv6 address
        host, port = text, None
    else:
        host, _, port = text.partition(":")
        port = port if ":" in text else None
    if not host.strip() or any(c.isspace() for c in host):
        raise argparse.ArgumentTypeError(f"expected HOST[:PORT], got {text!r}")
    if port is None:
        return host, 22
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"the port must be a number 1-65535, got {port!r}")
    return host, int(port)


def guard_codes(text: str) -> str:
    from naviance_pipeline.delivery.guards import parse_overrides

    try:
        parse_overrides(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def output_folder(text: str) -> str:
    """A folder to write into: created when missing, but not a path that is something else."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a folder")
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(f"{parent} is not a folder")
            break
    return text


def existing_file(text: str) -> str:
    """A local file that must exist (a URL with a scheme is checked when it is read)."""
    if "://" not in text and not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"{text} does not exist or is not a file")
    return text


class _Parser(argparse.ArgumentParser):
    """Bad arguments are one line on stderr (what is wrong, and where help is), exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _options(args: argparse.Namespace) -> Options:
    try:
        max_source_bytes = max_source_bytes_from_env()
    except ValueError as exc:
        raise SystemExit(_usage_error(str(exc))) from exc
    return Options(
        as_of=_as_of(args.as_of),
        include_staff=args.include_staff,
        rollover=parse_month_day(args.rollover_day),
        source_system_name=args.source_system,
        district_code=args.district_code,
        raw_sis_export=getattr(args, "raw_sis_export", False),
        max_source_bytes=max_source_bytes,
    )


def _build(args: argparse.Namespace):
    """Read and validate a source: (options, stage results, all findings) or exit code 2."""
    from naviance_pipeline.oneroster.stages import build_all

    options = _options(args)
    step = _step_reporter()
    step("reading the source")
    try:
        with _opened(args, options, step) as (source, converted):
            step("validating orgs, users and demographics")
            stages = build_all(source, options)
    except SourceUnreadable as exc:
        _print_findings([exc.finding], args.format, counts={}, ok=False)
        return None
    step("done")
    findings = [*converted, *source.findings, *(f for stage in stages for f in stage.findings)]
    return options, stages, findings


@contextlib.contextmanager
def _opened(args: argparse.Namespace, options: Options, step):
    """The source as the stages read it, and the findings of converting it: a OneRoster
    export is opened as it is; a mapped SIS export or SQL source is converted first, and an
    sftp:// source copied first (its host key checked), in a private temporary folder removed
    afterwards (it holds student data)."""
    from naviance_pipeline.sources.snapshot import (
        KNOWN_HOSTS_ENV,
        KNOWN_HOSTS_PATH_ENV,
        PASSWORD_ENV,
        SourceConfig,
        SourceConfigError,
        SourceUnavailable,
        is_sftp,
        take_snapshot,
    )

    # An unknown kind (from NAVIANCE_SOURCE_KIND) is refused by SourceConfig below, in one line.
    kind = kinds.registry().get(args.kind)
    if kind is not None and not kind.mapped and not is_sftp(args.source):
        yield open_source(args.source, options), []
        return
    from upath import UPath

    try:
        config = SourceConfig(
            args.kind,
            args.source,
            args.mapping,
            os.environ.get(PASSWORD_ENV) or None,
            known_hosts=os.environ.get(KNOWN_HOSTS_ENV) or None,
            known_hosts_path=os.environ.get(KNOWN_HOSTS_PATH_ENV, ""),
        )
        with tempfile.TemporaryDirectory(prefix="naviance-validate-") as tmp:
            snapshot = take_snapshot(config, args.source, UPath(tmp) / "snapshot", options, step)
            yield open_source(str(snapshot.open_path), options), snapshot.findings
    except FileNotFoundError as exc:
        raise SourceUnreadable(f"{redact_url(args.source)} does not exist") from exc
    except (SourceConfigError, SourceUnavailable) as exc:
        raise SourceUnreadable(str(exc)) from exc


def _step_reporter():
    """Progress lines on stderr for a person at a terminal (a big source takes seconds)."""
    import time

    start = time.perf_counter()

    def step(what: str) -> None:
        if sys.stderr.isatty():
            print(f"[{time.perf_counter() - start:5.1f}s] {what}", file=sys.stderr, flush=True)

    return step


def _counts(stages) -> dict[str, int]:
    names = ("orgs", "users", "demographics")
    return {name: len(s.frame) for name, s in zip(names, stages, strict=True)}


def _print_findings(findings: list[Finding], fmt: str, *, counts: dict, ok: bool) -> None:
    findings = sort_findings(findings)
    summary = summarize(findings)
    if fmt == "json":
        payload = {
            "ok": ok,
            "counts": counts,
            "summary": summary,
            "findings": [f.to_dict() for f in findings],
        }
        print(json.dumps(payload, indent=2))
        return
    by_rule: dict[str, list[Finding]] = defaultdict(list)
    for f in findings:
        by_rule[f.rule].append(f)
    for rule in sorted(by_rule, key=lambda r: (by_rule[r][0].severity != "error", r)):
        items = by_rule[rule]
        print(f"{rule} ({items[0].severity}) × {len(items)}{consequences_note(items)}")
        for f in items[:EXAMPLES_PER_RULE]:
            where = ":".join(str(x) for x in (f.file, f.line) if x)
            extra = ", ".join(
                x
                for x in (
                    f"column {f.column}" if f.column else "",
                    f"sourcedId {f.sourcedId}" if f.sourcedId else "",
                    f"value {f.value!r}" if f.value is not None else "",
                )
                if x
            )
            print(f"  {where or '(source)'}: {f.message}" + (f" [{extra}]" if extra else ""))
        if len(items) > EXAMPLES_PER_RULE:
            print(f"  … and {len(items) - EXAMPLES_PER_RULE} more")
    if counts:
        print("rows: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    verdict = "OK" if ok else "NOT OK"
    print(f"{verdict}: {summary['errors']} error(s), {summary['warnings']} warning(s)")


def cmd_validate(args: argparse.Namespace) -> int:
    built = _build(args)
    if built is None:
        return 2
    _, stages, findings = built
    ok = not has_errors(findings)
    _print_findings(findings, args.format, counts=_counts(stages), ok=ok)
    return 0 if ok else 1


def cmd_package(args: argparse.Namespace) -> int:
    from naviance_pipeline.oneroster.manifest import manifest_frame
    from naviance_pipeline.oneroster.package import build_package

    built = _build(args)
    if built is None:
        return 2
    options, (orgs, users, demographics), findings = built
    if has_errors(findings):
        _print_findings(
            findings, args.format, counts=_counts((orgs, users, demographics)), ok=False
        )
        print(f"no package written: fix the errors above ({ZIP_NAME} not created)", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = build_package(
        manifest_frame(options),
        orgs.frame,
        users.frame,
        demographics.frame,
        options,
        str(out / ZIP_NAME),
    )
    findings += result.findings
    ok = not has_errors(findings)
    _print_findings(findings, args.format, counts=_counts((orgs, users, demographics)), ok=ok)
    if ok:
        print(f"wrote {result.path} ({result.size} bytes, sha256 {result.sha256})")
    return 0 if ok else 1


def _progress_bar(label: str):
    def report(done: int, total: int) -> None:
        width = 30
        filled = int(width * done / total) if total else width
        print(
            f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}",
            end="" if done < total else "\n",
            file=sys.stderr,
            flush=True,
        )

    return report


def cmd_sample_district(args: argparse.Namespace) -> int:
    from naviance_pipeline.oneroster.sample import write_sample_district
    from naviance_pipeline.sources.sis.sample_export import write_demo_database, write_sample_export

    size = {"students": args.students, "schools": args.schools, "seed": args.seed}
    if args.format == "sqlite":
        if args.shape != "powerschool":
            return _usage_error(
                "--format sqlite writes the powerschool shape: add --shape powerschool"
            )
        path = write_demo_database(args.out, **size)
        what = "a PowerSchool-style SQLite database"
    elif args.shape != "classlink":
        path = write_sample_export(args.out, args.shape, fmt=args.format, **size)
        what = f"a {args.shape} SIS export"
    else:
        big = args.students >= 50_000 and sys.stderr.isatty()
        progress = _progress_bar("rows") if big else None
        path = write_sample_district(args.out, fmt=args.format, progress=progress, **size)
        what = "a ClassLink-style OneRoster export"
    print(f"wrote {what} of {args.students} students to {path}")
    return 0


def cmd_mapping(args: argparse.Namespace) -> int:
    """``mapping show PRESET``: print a preset to start a district's own mapping from;
    ``mapping check FILE``: validate a mapping file alone (every problem, by key path)."""
    from naviance_pipeline.sources.sis.mapping import PRESETS, MappingError, load_mapping

    if args.action == "show" and args.mapping not in PRESETS:
        return _usage_error(f"unknown preset {args.mapping!r}: one of {', '.join(PRESETS)}")
    if args.action == "check":
        try:
            existing_file(args.mapping)
        except argparse.ArgumentTypeError as exc:
            return _usage_error(f"mapping check: {exc}")
    try:
        mapping = load_mapping(args.mapping)
    except MappingError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    if args.action == "show":
        print(mapping.text, end="" if mapping.text.endswith("\n") else "\n")
        return 0
    tables = ", ".join(
        f"{t.name} ({'file ' + t.file if t.file else ''}"
        f"{', ' if t.file and t.query else ''}{'query' if t.query else ''})"
        for t in mapping.tables.values()
    )
    print(f"{args.mapping}: OK — tables {tables}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """``schema users|orgs|demographics``: the Pandera model of an output file: columns in
    order, type, whether a value is required, and each check with its rule code and severity."""
    from naviance_pipeline.oneroster.schemas import describe, model_for
    from naviance_pipeline.oneroster.spec import FILES

    options = Options(as_of=_as_of(args.as_of), include_staff=args.include_staff)
    print(describe(model_for(FILES[f"{args.file}.csv"], options)))
    return 0


def cmd_rules(args: argparse.Namespace) -> int:
    """``rules``: every rule code with its severity and check; ``--markdown``: the catalogue
    (docs/rules.md)."""
    from naviance_pipeline.oneroster import rules

    return rules.main(["--markdown"] if args.markdown else [])


def cmd_run(args: argparse.Namespace) -> int:
    from naviance_pipeline.operations.districts import DistrictChoiceError
    from naviance_pipeline.runner import NotAPartition, run_partition

    try:
        return run_partition(args.date, args.district)
    except (DistrictChoiceError, NotAPartition) as exc:
        return _usage_error(str(exc))


def cmd_redeliver(args: argparse.Namespace) -> int:
    from naviance_pipeline.operations.districts import DistrictChoiceError
    from naviance_pipeline.runner import NotAPartition, redeliver

    try:
        return redeliver(args.date, args.override, args.district)
    except (DistrictChoiceError, NotAPartition) as exc:
        return _usage_error(str(exc))


def cmd_sftp_host_key(args: argparse.Namespace) -> int:
    from naviance_pipeline.delivery.errors import DeliveryError
    from naviance_pipeline.delivery.hostkey import fetch_host_key

    host, port = args.host
    try:
        keys = fetch_host_key(host, port)
    except (DeliveryError, OSError, ValueError) as exc:
        print(f"could not fetch the host key of {host}:{port}: {exc}", file=sys.stderr)
        return 1
    for line, fp in keys:
        print(f"{fp}\n{line}")
    print(
        "Verify the fingerprint with Naviance out of band, then pin the line above in "
        "NAVIANCE_SFTP_KNOWN_HOSTS.",
        file=sys.stderr,
    )
    return 0


def _layout(district: str | None = None):
    """The data layout of one district: the configured one, or with a districts file
    (``NAVIANCE_DISTRICTS_FILE``) the one named by ``--district``."""
    from naviance_pipeline.operations.districts import (
        DistrictChoiceError,
        chosen_district,
        load_districts,
    )
    from naviance_pipeline.operations.settings import Settings
    from naviance_pipeline.operations.storage import DataLayout

    settings = Settings.from_env()
    try:
        entry = chosen_district(settings.districts_file, settings.district, district)
    except DistrictChoiceError as exc:
        raise SystemExit(_usage_error(str(exc))) from exc
    if entry is None:
        return DataLayout(settings.data_root, settings.district)
    return DataLayout(load_districts(settings.districts_file).data_root, entry.id)


def cmd_report(args: argparse.Namespace) -> int:
    from naviance_pipeline.reporting.report import build_report, render_report_text, write_report

    layout = _layout(args.district)
    if not layout.raw_dir(args.date).exists():
        print(f"nothing was run for {args.date} under {layout.base}", file=sys.stderr)
        return 1
    report = build_report(layout, args.date)
    json_path, html_path = write_report(layout, args.date, report)
    if args.format == "json":
        print(json.dumps(report, indent=2, default=str))
    else:
        print(render_report_text(report))
        print(f"\nHTML report: {html_path}\nJSON report: {json_path}")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from naviance_pipeline.operations.settings import Settings
    from naviance_pipeline.reporting.diff import diff_partitions, render_diff_text

    name = Settings.from_env().delivery_name  # the guards' baseline: its last delivery
    try:
        summary = diff_partitions(_layout(args.district), args.date, args.against, target_name=name)
    except FileNotFoundError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2) if args.format == "json" else render_diff_text(summary))
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from naviance_pipeline.operations.retention import purge

    result = purge(
        _layout(args.district),
        keep_days=args.keep_days,
        today=_as_of(args.today),
        dry_run=args.dry_run,
    )
    verb = "would remove" if args.dry_run else "removed"
    print(
        f"{verb} {result['files']} file(s), {result['bytes']} bytes older than "
        f"{result['cutoff']}; kept delivered packages {sorted(result['kept_packages'])}"
    )
    return 0


def _source_args(p: argparse.ArgumentParser) -> None:
    # The kinds, their help and which take a mapping: sources/kinds/ (one module per kind).
    declared = kinds.registry()
    p.add_argument(
        "source",
        help="; ".join(
            k.source_help if name == kinds.DEFAULT_KIND else f"with --kind {name} {k.source_help}"
            for name, k in sorted(declared.items(), key=lambda i: i[0] != kinds.DEFAULT_KIND)
        ),
    )
    p.add_argument(
        "--kind",
        choices=tuple(declared),
        default=os.environ.get("NAVIANCE_SOURCE_KIND", kinds.DEFAULT_KIND),
        help=f"what the source is (default: {kinds.DEFAULT_KIND}, or NAVIANCE_SOURCE_KIND)",
    )
    p.add_argument(
        "--mapping",
        default=os.environ.get("NAVIANCE_SOURCE_MAPPING", ""),
        help=f"{'/'.join(kinds.mapped_names())}: a preset (powerschool, generic) or a mapping "
        "YAML file (default: powerschool)",
    )
    p.add_argument(
        "--as-of", type=iso_date, help="as-of date YYYY-MM-DD for class years (default: today)"
    )
    p.add_argument("--include-staff", action="store_true", help="also teachers/administrators")
    p.add_argument(
        "--rollover-day", type=month_day, default="07-15", help="school-year rollover MM-DD"
    )
    p.add_argument("--district-code", default=os.environ.get("NAVIANCE_DISTRICT", "district"))
    p.add_argument("--source-system", default=os.environ.get("NAVIANCE_SOURCE_SYSTEM", "SIS"))
    p.add_argument("--raw-sis-export", action="store_true", help="no manifest.csv expected")
    p.add_argument("--format", choices=("text", "json"), default="text")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="naviance-pipeline", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    v = sub.add_parser("validate", help="check a source against the Naviance profile")
    _source_args(v)
    v.set_defaults(func=cmd_validate)

    k = sub.add_parser("package", help=f"validate, then write DIR/{ZIP_NAME}")
    _source_args(k)
    k.add_argument("--out", type=output_folder, required=True, help="output folder")
    k.set_defaults(func=cmd_package)

    s = sub.add_parser("sample-district", help="write a synthetic district export")
    s.add_argument("--out", required=True)
    s.add_argument("--students", type=at_least(1), default=500)
    s.add_argument("--schools", type=at_least(1), default=4)
    s.add_argument("--seed", type=at_least(0), default=7)
    s.add_argument(
        "--shape",
        choices=("classlink", "powerschool", "generic"),
        default="classlink",
        help="classlink: a OneRoster export; powerschool, generic: SIS CSV exports that the "
        "presets of the same name read",
    )
    s.add_argument(
        "--format",
        choices=("zip", "folder", "sqlite"),
        default="zip",
        help="sqlite: the PowerSchool-style demo database (with --shape powerschool)",
    )
    s.set_defaults(func=cmd_sample_district)

    m = sub.add_parser("mapping", help="print a preset mapping, or check a mapping file")
    m.add_argument("action", choices=("show", "check"))
    m.add_argument("mapping", help="show: a preset (powerschool, generic); check: a YAML file")
    m.set_defaults(func=cmd_mapping)

    r = sub.add_parser("run", help="materialize every asset for one date (default: latest)")
    r.add_argument("--date", type=iso_date, help="partition date YYYY-MM-DD")
    r.add_argument("--district", help="with a districts file: which district")
    r.set_defaults(func=cmd_run)

    d = sub.add_parser("redeliver", help="re-send the archived package of a date")
    d.add_argument("--date", type=iso_date, required=True)
    d.add_argument(
        "--override",
        type=guard_codes,
        default="",
        help="guards to override, e.g. GRD-STALE-PARTITION",
    )
    d.add_argument("--district", help="with a districts file: which district")
    d.set_defaults(func=cmd_redeliver)

    rp = sub.add_parser("report", help="the validation report of a date (also HTML/JSON)")
    rp.add_argument("--date", type=iso_date, required=True)
    rp.add_argument("--format", choices=("text", "json"), default="text")
    rp.add_argument("--district", help="with a districts file: which district")
    rp.set_defaults(func=cmd_report)

    df = sub.add_parser("diff", help="students added/removed/moved since another date")
    df.add_argument("--date", type=iso_date, required=True)
    df.add_argument(
        "--against",
        type=iso_date,
        help="baseline date (default: the last delivered package, as the guards; with no "
        "delivery yet, the previous packaged date)",
    )
    df.add_argument("--format", choices=("text", "json"), default="text")
    df.add_argument("--district", help="with a districts file: which district")
    df.set_defaults(func=cmd_diff)

    pg = sub.add_parser("purge", help="retention: delete partitions older than N days")
    pg.add_argument("--keep-days", type=at_least(0), default=30)
    pg.add_argument("--today", type=iso_date, help="reference date (default: today)")
    pg.add_argument("--dry-run", action="store_true")
    pg.add_argument("--district", help="with a districts file: which district")
    pg.set_defaults(func=cmd_purge)

    sc = sub.add_parser("schema", help="print the Pandera model of an output file")
    sc.add_argument("file", choices=("users", "orgs", "demographics"))
    sc.add_argument(
        "--as-of", type=iso_date, help="as-of date YYYY-MM-DD of the date rules (default: today)"
    )
    sc.add_argument("--include-staff", action="store_true", help="the model with staff titles")
    sc.set_defaults(func=cmd_schema)

    ru = sub.add_parser("rules", help="list every rule code (--markdown: the rule catalogue)")
    ru.add_argument("--markdown", action="store_true", help="print docs/rules.md")
    ru.set_defaults(func=cmd_rules)

    h = sub.add_parser("sftp-host-key", help="print an SFTP server's host key to pin")
    h.add_argument("host", type=host_port, help="HOST[:PORT] (port 22 by default)")
    h.set_defaults(func=cmd_sftp_host_key)
    return p


def main(argv: list[str] | None = None) -> int:
    os.umask(0o077)  # everything this process writes holds or names student data: owner-only
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `naviance-pipeline rules | head`: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a process ended by SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
