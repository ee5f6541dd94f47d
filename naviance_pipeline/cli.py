"""``naviance-pipeline``: check a district's SIS export, build NavianceOneRoster.zip, run the
nightly pipeline for a date and look at what it did, from the command line.

Exit codes: 0 success (warnings allowed), 1 error findings or a failed run, 2 bad arguments
or a source that cannot be opened at all (SRC-UNREADABLE). A bad argument is one line on stderr,
before any work: each argument's check is its argparse ``type=`` (dates, numbers, ports, guard
codes, paths), and a date outside the partitions is refused before a run is created. Each
command's ``--help`` lists its options (each with an example), examples and exit codes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import tempfile
import textwrap
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
from naviance_pipeline.operations.settings import (
    SettingsError,
    environment_help,
    load_env_file,
    max_source_bytes_from_env,
    parse_month_day,
)
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


def output_file(text: str) -> str:
    """A file to write: not a folder, in a folder that exists."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder, not a file")
    if not path.absolute().parent.is_dir():
        raise argparse.ArgumentTypeError(f"the folder of {text} does not exist")
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
    """Read and validate a source: (options, stage results, all findings), or None when the
    source cannot be opened (its SRC-UNREADABLE finding reported: exit code 2)."""
    from naviance_pipeline.oneroster.stages import build_all

    if args.limit is not None and args.format != "json":
        raise SystemExit(_usage_error("--limit goes with --format json (text shows 5 per rule)"))
    options = _options(args)
    step = _step_reporter()
    step("reading the source")
    try:
        with _opened(args, options, step) as (source, converted):
            step("validating orgs, users and demographics")
            stages = build_all(source, options)
    except SourceUnreadable as exc:
        _report_findings(args, [exc.finding], counts={}, ok=False)
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


def _report_findings(args: argparse.Namespace, findings: list[Finding], *, counts, ok) -> None:
    """Print the findings (text or JSON, ``--limit``) and write ``--findings-csv``."""
    findings = sort_findings(findings)
    _print_findings(findings, args.format, counts=counts, ok=ok, limit=args.limit)
    if args.findings_csv:
        try:
            write_findings_csv(args.findings_csv, findings)
        except OSError as exc:
            raise SystemExit(
                _usage_error(f"could not write {args.findings_csv}: {exc.strerror or exc}")
            ) from exc
        print(f"wrote {len(findings)} finding(s) to {args.findings_csv}", file=sys.stderr)


def _limited(findings: list[Finding], limit: int | None) -> list[Finding]:
    """At most ``limit`` findings, errors before warnings, each kept in report order."""
    if limit is None or len(findings) <= limit:
        return findings
    errors_first = sorted(range(len(findings)), key=lambda i: findings[i].severity != "error")
    return [findings[i] for i in sorted(errors_first[:limit])]  # a stable sort: report order


def _print_findings(
    findings: list[Finding], fmt: str, *, counts: dict, ok: bool, limit: int | None = None
) -> None:
    """The summary first (verdict, rows, findings per rule), then the findings: in JSON all of
    them or ``limit`` (saying how many were left out), in text up to 5 examples per rule."""
    findings = sort_findings(findings)
    summary = summarize(findings)
    verdict = (
        f"{'OK' if ok else 'NOT OK'}: {summary['errors']} error(s), "
        f"{summary['warnings']} warning(s)"
    )
    if fmt == "json":
        shown_findings = _limited(findings, limit)
        payload = {
            "summary": summary,
            "ok": ok,
            "counts": counts,
            "findings_total": len(findings),
            "findings_left_out": len(findings) - len(shown_findings),
            "findings": [f.to_dict() for f in shown_findings],
        }
        print(json.dumps(payload, indent=2))
        return
    by_rule: dict[str, list[Finding]] = defaultdict(list)
    for f in findings:
        by_rule[f.rule].append(f)
    order = sorted(by_rule, key=lambda r: (by_rule[r][0].severity != "error", r))
    if counts:
        print("rows: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print(verdict)  # the last line too (below a long list, again)
    if order:
        print("by rule: " + ", ".join(f"{rule} × {len(by_rule[rule])}" for rule in order))
        print()
    for rule in order:
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
    if order:
        print(verdict)


FINDINGS_CSV_COLUMNS = (
    "rule",
    "severity",
    "file",
    "line",
    "column",
    "sourcedId",
    "message",
    "consequences",  # findings this one caused, counted under it: "DEM-USER-REF: 1"
)
# A cell a spreadsheet would read as a formula starts with one of these: written with a ' first.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def write_findings_csv(path: str, findings: list[Finding]) -> None:
    """Every finding, one row each (``FINDINGS_CSV_COLUMNS``), for the SIS staff who fix the
    data: UTF-8 with a BOM (spreadsheets read it as UTF-8), owner-only (0600), replaced
    atomically. No value is written: a finding names the file, line and column instead, and its
    sourcedId only where ``shown_ids`` shows one (not an e-mail address, a name or a date typed
    into the sourcedId column), as in the text and JSON output."""
    import csv

    from naviance_pipeline.oneroster.findings import shown_ids

    ids = shown_ids([f.sourcedId for f in findings]) if findings else []
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.absolute().parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8-sig", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(FINDINGS_CSV_COLUMNS)
            for f, sourced_id in zip(findings, ids, strict=True):
                caused = "; ".join(f"{r}: {n}" for r, n in (f.consequences or {}).items())
                cells = (f.rule, f.severity, f.file, f.line, f.column, sourced_id, f.message)
                writer.writerow(_cell(c) for c in (*cells, caused))
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def cmd_validate(args: argparse.Namespace) -> int:
    built = _build(args)
    if built is None:
        return 2
    _, stages, findings = built
    ok = not has_errors(findings)
    _report_findings(args, findings, counts=_counts(stages), ok=ok)
    return 0 if ok else 1


def cmd_package(args: argparse.Namespace) -> int:
    from naviance_pipeline.oneroster.manifest import manifest_frame
    from naviance_pipeline.oneroster.package import build_package

    built = _build(args)
    if built is None:
        return 2
    options, (orgs, users, demographics), findings = built
    if has_errors(findings):
        _report_findings(args, findings, counts=_counts((orgs, users, demographics)), ok=False)
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
    _report_findings(args, findings, counts=_counts((orgs, users, demographics)), ok=ok)
    if ok:
        print(f"wrote {result.path} ({result.size} bytes, sha256 {result.sha256})")
    return 0 if ok else 1


def cmd_anonymise(args: argparse.Namespace) -> int:
    """``anonymise SOURCE --out DIR``: the keyed anonymised copy, then the proof that
    ``validate`` finds the same rule codes on the same files, lines and columns in both."""
    from naviance_pipeline.oneroster.anonymise import AnonymiseError, anonymise, load_key, prove

    try:
        key = load_key(args.key_file)
        options = Options(
            as_of=_as_of(args.as_of),
            include_staff=args.include_staff,
            raw_sis_export=args.raw_sis_export,
        )
        copy = anonymise(args.source, args.out, key, keep_sourced_ids=args.keep_sourcedids)
    except AnonymiseError as exc:
        return _usage_error(str(exc))
    print(f"wrote {copy.path} ({copy.files} file(s), {copy.replaced} cell(s) replaced)")
    proof = prove(args.source, str(copy.path), options)
    print("\n".join(proof.lines()))
    return 0 if proof.same else 1


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
    elif args.shape == "oneroster-1.2":
        big = args.students >= 50_000 and sys.stderr.isatty()
        progress = _progress_bar("rows") if big else None
        path = write_sample_district(
            args.out, fmt=args.format, progress=progress, version="1.2", **size
        )
        what = "a ClassLink-style OneRoster 1.2 export"
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
        return run_partition(args.date, args.district, deliver=not args.no_deliver)
    except (DistrictChoiceError, NotAPartition) as exc:
        return _usage_error(str(exc))


def cmd_redeliver(args: argparse.Namespace) -> int:
    from naviance_pipeline.operations.districts import DistrictChoiceError
    from naviance_pipeline.runner import NotAPartition, redeliver

    try:
        return redeliver(args.date, args.override, args.district)
    except (DistrictChoiceError, NotAPartition) as exc:
        return _usage_error(str(exc))


def cmd_backfill(args: argparse.Namespace) -> int:
    """``backfill --from DATE [--to DATE] [--district ID ...]``: one job backfill stored for
    the daemon, which creates and queues its runs; returns in seconds for any number of
    partitions (``dagster job backfill`` creates every run itself)."""
    from naviance_pipeline.operations.districts import DistrictChoiceError
    from naviance_pipeline.runner import (
        CodeLocationError,
        NotAPartition,
        WorkspaceError,
        submit_backfill,
    )

    last = args.to or args.start
    if last < args.start:
        return _usage_error(f"--to {last} is before --from {args.start}")
    try:
        submitted = submit_backfill(args.start, last, args.district or [], args.workspace)
    except (DistrictChoiceError, NotAPartition, WorkspaceError) as exc:
        return _usage_error(str(exc))
    except CodeLocationError as exc:
        print(f"no backfill submitted: {exc}", file=sys.stderr)
        return 1
    count = len(submitted.partitions)
    print(f"backfill {submitted.backfill_id} submitted: {count} partition(s) of nightly_job")
    print(f"  {submitted.url}")
    print(
        "the Dagster daemon creates and queues its runs (a dagster-daemon must be running on "
        "this instance); follow them at the link above"
    )
    return 0


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
    from naviance_pipeline.reporting.html import ReportTemplateError
    from naviance_pipeline.reporting.report import build_report, render_report_text, write_report

    layout = _layout(args.district)
    if not layout.raw_dir(args.date).exists():
        print(f"nothing was run for {args.date} under {layout.base}", file=sys.stderr)
        return 1
    report = build_report(layout, args.date)
    try:
        json_path, html_path = write_report(layout, args.date, report)
    except ReportTemplateError as exc:
        raise SystemExit(_usage_error(str(exc))) from None
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


# ---- the parser: every command with its purpose, every option with help and an example, and
# each command's examples and exit codes in its epilog (--help) ----

PROG = "naviance-pipeline"
# Metavars, joined: a quoted date pattern would read as a rule code to test_rule_registry.py.
DATE, MONTH_DAY = "-".join(("YYYY", "MM", "DD")), "-".join(("MM", "DD"))
DESCRIPTION = (
    "Check a district's SIS export, build NavianceOneRoster.zip, run the nightly pipeline for "
    "a date and look at what it did."
)
BAD_ARGUMENTS = "bad arguments: one line on stderr saying what is wrong, before any work"


def _epilog(examples: list[str], exit_codes: dict[int, str]) -> str:
    """A command's epilog: examples, then every exit code it returns (2 always: bad arguments).
    test_cli_help.py runs each command into each code listed here."""
    codes = {**exit_codes, 2: exit_codes.get(2, BAD_ARGUMENTS)}
    lines = ["examples:", *(f"  {PROG} {e}" for e in examples), "", "exit codes:"]
    lines += [f"  {code:<4} {meaning}" for code, meaning in sorted(codes.items())]
    return "\n".join(lines)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{PROG} {version('naviance_pipeline')}"
    except PackageNotFoundError:  # run from a source tree that was never installed
        return f"{PROG} (not installed: version unknown)"


def _source_args(p: argparse.ArgumentParser) -> None:
    # The kinds, their help and which take a mapping: sources/kinds/ (one module per kind).
    declared = kinds.registry()
    p.add_argument(
        "source",
        help="; ".join(
            k.source_help if name == kinds.DEFAULT_KIND else f"with --kind {name} {k.source_help}"
            for name, k in sorted(declared.items(), key=lambda i: i[0] != kinds.DEFAULT_KIND)
        )
        + " (e.g. district.zip, s3://bucket/oneroster/, "
        "postgresql+psycopg://reader@sis/sis)",
    )
    p.add_argument(
        "--kind",
        choices=tuple(declared),
        default=os.environ.get("NAVIANCE_SOURCE_KIND", kinds.DEFAULT_KIND),
        help=f"what the source is (default: {kinds.DEFAULT_KIND}, or NAVIANCE_SOURCE_KIND; "
        "e.g. --kind sis-csv)",
    )
    p.add_argument(
        "--mapping",
        metavar="PRESET|FILE",
        default=os.environ.get("NAVIANCE_SOURCE_MAPPING", ""),
        help=f"{'/'.join(kinds.mapped_names())}: a preset (powerschool, generic) or a mapping "
        "YAML file (default: powerschool, or NAVIANCE_SOURCE_MAPPING; "
        "e.g. --mapping ./our-sis.yaml)",
    )
    p.add_argument(
        "--as-of",
        type=iso_date,
        metavar=DATE,
        help="the date class years and date rules are computed for (default: today; "
        "e.g. --as-of 2026-11-24)",
    )
    p.add_argument(
        "--include-staff",
        action="store_true",
        help="also include teachers and administrators (default: students only)",
    )
    p.add_argument(
        "--rollover-day",
        type=month_day,
        metavar=MONTH_DAY,
        default="07-15",
        help="the day the school year rolls over, for class years (default: 07-15; "
        "e.g. --rollover-day 08-01)",
    )
    p.add_argument(
        "--district-code",
        metavar="CODE",
        default=os.environ.get("NAVIANCE_DISTRICT", "district"),
        help="the manifest's source.systemCode (default: NAVIANCE_DISTRICT, else 'district'; "
        "e.g. --district-code springfield)",
    )
    p.add_argument(
        "--source-system",
        metavar="NAME",
        default=os.environ.get("NAVIANCE_SOURCE_SYSTEM", "SIS"),
        help="the manifest's source.systemName (default: NAVIANCE_SOURCE_SYSTEM, else 'SIS'; "
        "e.g. --source-system PowerSchool)",
    )
    p.add_argument(
        "--raw-sis-export",
        action="store_true",
        help="the export has no manifest.csv (a SIS's own OneRoster CSVs): do not expect one",
    )
    p.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text: the summary, then up to 5 examples per rule; json: the summary, then the "
        "findings (default: text; e.g. --format json)",
    )
    p.add_argument(
        "--limit",
        type=at_least(0),
        metavar="N",
        help="with --format json: at most N findings, errors first (the JSON says how many "
        "were left out); default: all (e.g. --limit 100)",
    )
    p.add_argument(
        "--findings-csv",
        type=output_file,
        metavar="FILE",
        help="also write every finding to FILE (owner-only CSV: rule, severity, file, line, "
        "column, sourcedId, message; never a value) for the SIS team "
        "(e.g. --findings-csv findings.csv)",
    )


def _district_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--district",
        metavar="ID",
        help="with a districts file (NAVIANCE_DISTRICTS_FILE): which district "
        "(e.g. --district east)",
    )


def _date_arg(p: argparse.ArgumentParser, what: str, required: bool = True) -> None:
    p.add_argument(
        "--date",
        type=iso_date,
        metavar=DATE,
        required=required,
        help=f"{what} (e.g. --date 2026-11-24)",
    )


def _format_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text for a person, json for a program (default: text; e.g. --format json)",
    )


def parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    p = _Parser(
        prog=PROG,
        description=textwrap.fill(DESCRIPTION, 88),
        formatter_class=raw,
        epilog=_epilog(
            [
                "validate district.zip --as-of 2026-11-24",
                "run --no-deliver",
                "COMMAND --help   (each command's options, examples and exit codes)",
            ],
            {
                0: "success (warnings allowed)",
                1: "error findings, a failed run or a refused delivery",
                2: "bad arguments, or a source that cannot be opened at all (SRC-UNREADABLE)",
                141: "the reader of the output went away (e.g. piped into head)",
            },
        )
        + "\n\n"
        + environment_help(),
    )
    p.add_argument(
        "--version", action="version", version=_version(), help="print the version and exit"
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")

    def command(name: str, purpose: str, examples: list[str], exit_codes: dict[int, str]):
        return sub.add_parser(
            name,
            help=purpose,
            description=textwrap.fill(purpose[0].upper() + purpose[1:] + ".", 88),
            epilog=_epilog(examples, exit_codes),
            formatter_class=raw,
        )

    unreadable = "bad arguments, or a source that cannot be opened at all (SRC-UNREADABLE)"
    v = command(
        "validate",
        "check a source against the Naviance profile; write nothing but the findings",
        [
            "validate district.zip --as-of 2026-11-24",
            "validate district.zip --format json --limit 100",
            "validate district.zip --findings-csv findings.csv   (for the SIS team)",
            "validate ./ps-export --kind sis-csv --mapping powerschool",
        ],
        {0: "no error findings (warnings allowed)", 1: "error findings", 2: unreadable},
    )
    _source_args(v)
    v.set_defaults(func=cmd_validate)

    k = command(
        "package",
        f"validate a source, then write DIR/{ZIP_NAME} (only when there is no error)",
        ["package district.zip --out ./out --as-of 2026-11-24"],
        {0: f"{ZIP_NAME} written", 1: "error findings: no package written", 2: unreadable},
    )
    _source_args(k)
    k.add_argument(
        "--out",
        type=output_folder,
        metavar="DIR",
        required=True,
        help="the folder to write the package into, created if missing (e.g. --out ./out)",
    )
    k.set_defaults(func=cmd_package)

    a = command(
        "anonymise",
        "write a copy of an export with every PII value replaced by a keyed fake, for support",
        [
            "anonymise district.zip --out ./for-support --as-of 2026-11-24",
            "anonymise ./export --out ./for-support --key-file ~/.naviance-anonymise.key",
            "anonymise district.zip --out ./for-support --keep-sourcedids",
        ],
        {
            0: "the copy was written and gives the same findings (the proof is printed)",
            1: "the copy was written but its findings differ (the differences are printed)",
            2: "bad arguments, no key, or a source that is not a readable local ZIP or folder",
        },
    )
    a.add_argument(
        "source",
        help="a local OneRoster v1.1 export: a ZIP file or a folder (e.g. district.zip)",
    )
    a.add_argument(
        "--out",
        type=output_folder,
        metavar="DIR",
        required=True,
        help="the folder to write the copy into (as DIR/<the source's name>, owner-only), "
        "created if missing (e.g. --out ./for-support)",
    )
    a.add_argument(
        "--key-file",
        metavar="FILE",
        help="a file holding the secret key (16 bytes or more; default: NAVIANCE_ANONYMISE_KEY;"
        " the same key gives the same copy; e.g. --key-file ~/.naviance-anonymise.key)",
    )
    a.add_argument(
        "--keep-sourcedids",
        action="store_true",
        help="keep sourcedIds as they are (default: replaced, the same fake in every file)",
    )
    a.add_argument(
        "--as-of",
        type=iso_date,
        metavar=DATE,
        help="the date the proof validates for (default: today; e.g. --as-of 2026-11-24)",
    )
    a.add_argument(
        "--include-staff",
        action="store_true",
        help="validate with teachers and administrators, as validate --include-staff",
    )
    a.add_argument(
        "--raw-sis-export",
        action="store_true",
        help="the export has no manifest.csv, as validate --raw-sis-export",
    )
    a.set_defaults(func=cmd_anonymise)

    s = command(
        "sample-district",
        "write a synthetic district export to try the pipeline on (no real student)",
        [
            "sample-district --out sample.zip --students 2000",
            "sample-district --out ./ps --shape powerschool --format folder",
            "sample-district --out demo.db --shape powerschool --format sqlite",
        ],
        {0: "the sample was written"},
    )
    s.add_argument(
        "--out",
        metavar="PATH",
        required=True,
        help="the ZIP, folder or SQLite file to write (e.g. --out sample.zip)",
    )
    s.add_argument(
        "--students",
        type=at_least(1),
        metavar="N",
        default=500,
        help="how many students (default: 500; e.g. --students 100000)",
    )
    s.add_argument(
        "--schools",
        type=at_least(1),
        metavar="N",
        default=4,
        help="how many schools (default: 4; e.g. --schools 12)",
    )
    s.add_argument(
        "--seed",
        type=at_least(0),
        metavar="N",
        default=7,
        help="the random seed: the same seed writes the same bytes (default: 7; e.g. --seed 3)",
    )
    s.add_argument(
        "--shape",
        choices=("classlink", "oneroster-1.2", "powerschool", "generic"),
        default="classlink",
        help="classlink: a OneRoster 1.1 export; oneroster-1.2: the same people as a OneRoster "
        "1.2 export (the same package); powerschool, generic: SIS CSV exports that the "
        "presets of the same name read (default: classlink; e.g. --shape powerschool)",
    )
    s.add_argument(
        "--format",
        choices=("zip", "folder", "sqlite"),
        default="zip",
        help="a ZIP, a folder of CSV files, or (with --shape powerschool) the "
        "PowerSchool-style demo SQLite database (default: zip; e.g. --format folder)",
    )
    s.set_defaults(func=cmd_sample_district)

    m = command(
        "mapping",
        "print a preset SIS mapping to start from, or check a mapping file",
        ["mapping show powerschool > our-sis.yaml", "mapping check our-sis.yaml"],
        {
            0: "the preset was printed, or the file is a valid mapping",
            1: "the mapping file has problems (each one named by its key path)",
            2: "bad arguments (an unknown preset, a file that does not exist)",
        },
    )
    m.add_argument(
        "action",
        choices=("show", "check"),
        help="show: print a preset; check: validate a mapping file (e.g. check)",
    )
    m.add_argument(
        "mapping",
        metavar="PRESET|FILE",
        help="show: a preset (powerschool, generic); check: a YAML file "
        "(e.g. powerschool, our-sis.yaml)",
    )
    m.set_defaults(func=cmd_mapping)

    r = command(
        "run",
        "run the whole pipeline for one date on the local Dagster instance (shown in the UI)",
        [
            "run",
            "run --date 2026-11-24",
            "run --no-deliver   (build, validate, verify and report; send nothing)",
            "run --district east --date 2026-11-24",
        ],
        {
            0: "the run succeeded: delivered, or built and checked but not sent (an older "
            "date, or --no-deliver)",
            1: "the run failed (error findings, a failed check or delivery): nothing delivered",
            2: "bad arguments (a date outside the partitions, a --district that does not fit)",
        },
    )
    _date_arg(r, "the partition date to run, default: the latest", required=False)
    _district_arg(r)
    r.add_argument(
        "--no-deliver",
        action="store_true",
        help="build, validate, verify and report the package but send nothing (no upload, "
        "no alert); send it later with redeliver",
    )
    r.set_defaults(func=cmd_run)

    d = command(
        "redeliver",
        "re-send the archived package of a date (guards apply unless overridden)",
        [
            "redeliver --date 2026-11-24",
            "redeliver --date 2026-11-23 --override GRD-STALE-PARTITION",
        ],
        {
            0: "re-delivered (the receipt's path is printed)",
            1: "not delivered: a guard refused it, no package is archived, or the upload failed",
        },
    )
    _date_arg(d, "the date whose archived package to send")
    d.add_argument(
        "--override",
        type=guard_codes,
        metavar="CODES",
        default="",
        help="guards to override for this delivery, comma-separated "
        "(e.g. --override GRD-STALE-PARTITION)",
    )
    _district_arg(d)
    d.set_defaults(func=cmd_redeliver)

    b = command(
        "backfill",
        "submit one backfill of dates (× districts) for the daemon to run; returns in seconds",
        [
            "backfill --from 2026-11-01 --to 2026-11-24",
            "backfill --from 2026-11-24 --district east --district west",
            "backfill --from 2026-11-24 --workspace /etc/naviance/workspace.yaml",
        ],
        {
            0: "the backfill was submitted (its id and link are printed); the daemon creates "
            "and queues its runs",
            1: "the workspace's code location does not load here: nothing submitted",
            2: "bad arguments (a date outside the partitions, --to before --from, a "
            "--district that does not fit, no workspace file)",
        },
    )
    b.add_argument(
        "--from",
        dest="start",
        type=iso_date,
        metavar=DATE,
        required=True,
        help="the first date to run (e.g. --from 2026-11-01)",
    )
    b.add_argument(
        "--to",
        type=iso_date,
        metavar=DATE,
        help="the last date to run (default: --from; e.g. --to 2026-11-24)",
    )
    b.add_argument(
        "--district",
        metavar="ID",
        action="append",
        help="with a districts file: a district to run, repeatable (default: every district "
        "of the file; e.g. --district east)",
    )
    b.add_argument(
        "--workspace",
        metavar="FILE",
        default="workspace.yaml",
        help="the workspace file the daemon runs with (default: workspace.yaml; "
        "e.g. --workspace /etc/naviance/workspace.yaml)",
    )
    b.set_defaults(func=cmd_backfill)

    rp = command(
        "report",
        "print a date's validation report (and rewrite its HTML and JSON files)",
        ["report --date 2026-11-24", "report --date 2026-11-24 --format json"],
        {0: "the report was printed", 1: "nothing was run for that date"},
    )
    _date_arg(rp, "the date of the report")
    _format_arg(rp)
    _district_arg(rp)
    rp.set_defaults(func=cmd_report)

    df = command(
        "diff",
        "list students added, removed or moved since another date",
        ["diff --date 2026-11-24", "diff --date 2026-11-24 --against 2026-11-01"],
        {0: "the differences were printed", 1: "a date has no stored package to compare"},
    )
    _date_arg(df, "the date to compare")
    df.add_argument(
        "--against",
        type=iso_date,
        metavar=DATE,
        help="baseline date (default: the last delivered package, as the guards; with no "
        "delivery yet, the previous packaged date; e.g. --against 2026-11-01)",
    )
    _format_arg(df)
    _district_arg(df)
    df.set_defaults(func=cmd_diff)

    pg = command(
        "purge",
        "retention: delete data of dates older than N days (as the daily retention job)",
        ["purge --dry-run", "purge --keep-days 60"],
        {0: "purged (or, with --dry-run, what would be removed was printed)"},
    )
    pg.add_argument(
        "--keep-days",
        type=at_least(0),
        metavar="N",
        default=30,
        help="keep this many days of data (default: 30; e.g. --keep-days 60)",
    )
    pg.add_argument(
        "--today",
        type=iso_date,
        metavar=DATE,
        help="the reference date (default: today; e.g. --today 2026-11-24)",
    )
    pg.add_argument(
        "--dry-run", action="store_true", help="print what would be removed, remove nothing"
    )
    _district_arg(pg)
    pg.set_defaults(func=cmd_purge)

    sc = command(
        "schema",
        "print the Pandera model of an output file: columns, types, checks and rule codes",
        ["schema users", "schema users --include-staff --as-of 2026-11-24"],
        {0: "the model was printed"},
    )
    sc.add_argument(
        "file",
        choices=("users", "orgs", "demographics"),
        help="the output file (e.g. users)",
    )
    sc.add_argument(
        "--as-of",
        type=iso_date,
        metavar=DATE,
        help="as-of date of the date rules (default: today; e.g. --as-of 2026-11-24)",
    )
    sc.add_argument("--include-staff", action="store_true", help="the model with staff titles")
    sc.set_defaults(func=cmd_schema)

    ru = command(
        "rules",
        "list every rule code with its severity and check",
        ["rules", "rules --markdown > docs/rules.md"],
        {0: "the rules were printed"},
    )
    ru.add_argument(
        "--markdown", action="store_true", help="print the rule catalogue (docs/rules.md)"
    )
    ru.set_defaults(func=cmd_rules)

    h = command(
        "sftp-host-key",
        "print an SFTP server's host key and fingerprint, to verify and pin",
        ["sftp-host-key sftp.naviance.com", "sftp-host-key [::1]:2222"],
        {0: "the key was printed", 1: "the key could not be fetched (nothing listening, …)"},
    )
    h.add_argument(
        "host",
        type=host_port,
        metavar="HOST[:PORT]",
        help="the server; port 22 by default (e.g. sftp.example.org:2222)",
    )
    h.set_defaults(func=cmd_sftp_host_key)
    return p


def main(argv: list[str] | None = None) -> int:
    os.umask(0o077)  # everything this process writes holds or names student data: owner-only
    try:
        load_env_file()  # first: the options' defaults below read the environment
        args = parser().parse_args(argv)
        return args.func(args)
    except SettingsError as exc:  # a NAVIANCE_* variable the pipeline cannot use
        return _usage_error(str(exc))
    except BrokenPipeError:  # `naviance-pipeline rules | head`: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a process ended by SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
