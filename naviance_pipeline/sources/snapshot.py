"""The date's snapshot of a source, whatever its kind (``kinds/``: one module per kind, e.g.
``oneroster`` copied byte for byte; ``sis-csv`` and ``sql`` converted through a mapping by
``mapped_snapshot``).

A source of files at an ``sftp://`` URL is read only from a server whose host key is pinned
(``NAVIANCE_SOURCE_SFTP_KNOWN_HOSTS``, or the file ``..._PATH`` names), as delivery pins
Naviance's; its password is ``NAVIANCE_SOURCE_PASSWORD``. A wrong key or a refused login is a
configuration error, a refused or lost connection an unavailable source: one line each, never
a traceback.

Every later stage opens ``Snapshot.open_path`` exactly as it opens a ClassLink export, so the
rules, line numbers and reports after ``sis_extract`` do not depend on the kind. A snapshot is
staged in a sibling folder and replaces the date's old one only when complete: a failed extract
(an unreachable database, a bad mapping) leaves the last good snapshot of the date in place.
No Dagster here: the CLI validates a mapped source with the same code.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from upath import UPath

from naviance_pipeline.oneroster.findings import Finding
from naviance_pipeline.oneroster.options import Options
from naviance_pipeline.oneroster.source import redact_url
from naviance_pipeline.operations.crash import temp_name
from naviance_pipeline.operations.settings import SAMPLE_SCHOOLS, SAMPLE_SEED, SAMPLE_STUDENTS
from naviance_pipeline.operations.storage import (
    SnapshotFile,
    ensure_private_dir,
    replace_folder,
    write_private_bytes,
)
from naviance_pipeline.sources.kinds import DEFAULT_KIND, SOURCE_SECRET_ENV, source_kind

SAMPLE_SIZE = {"students": SAMPLE_STUDENTS, "schools": SAMPLE_SCHOOLS, "seed": SAMPLE_SEED}

PASSWORD_ENV = SOURCE_SECRET_ENV["source_password"]  # a SQL or sftp:// source's password
KNOWN_HOSTS_ENV = SOURCE_SECRET_ENV["source_sftp_known_hosts"]  # sftp://: pinned key line(s)
KNOWN_HOSTS_PATH_ENV = "NAVIANCE_SOURCE_SFTP_KNOWN_HOSTS_PATH"  # ... or the file holding them
SFTP_SCHEMES = ("sftp", "ssh")  # the schemes fsspec reads with sshfs
SFTP_CONNECT_TIMEOUT = 30.0  # seconds for TCP connect, handshake and login
DEFAULT_MAPPING = "powerschool"
MAPPING_FILE = "mapping.yaml"
CONVERTED = "oneroster"  # the converted OneRoster folder inside a mapped snapshot


class SourceConfigError(ValueError):
    """The source is configured wrongly (unknown kind, a mapping that does not fit the source,
    a password in the URL): fix the configuration; retrying will not help."""


class SourceUnavailable(Exception):
    """The source could not be reached now (database down, network): retrying may help."""


@dataclass(frozen=True)
class SourceConfig:
    kind: str = DEFAULT_KIND
    url: str = ""  # blank: the bundled sample of this kind
    mapping: str = ""  # preset name or YAML path; blank: DEFAULT_MAPPING (mapped kinds)
    password: str | None = field(default=None, repr=False)  # sql, sftp://; from PASSWORD_ENV
    query_timeout: float | None = None  # sql: seconds each query may take (None: no limit)
    known_hosts: str | None = field(default=None, repr=False)  # sftp://: pinned known_hosts text
    known_hosts_path: str = ""  # sftp://: or the file holding it

    def __post_init__(self) -> None:
        try:
            source_kind(self.kind)
        except ValueError as exc:
            raise SourceConfigError(str(exc)) from None

    @property
    def mapping_ref(self) -> str:
        return self.mapping or DEFAULT_MAPPING


@dataclass
class Snapshot:
    open_path: UPath  # what the stages open: the OneRoster ZIP/folder
    files: list[SnapshotFile]  # the source as captured (export bytes, or SQL result sets)
    findings: list[Finding] = field(default_factory=list)  # from the conversion
    queries: list[dict] = field(default_factory=list)  # sql: table, query, columns, rows
    mapping: str = ""  # the mapping reference used (mapped kinds)


def take_snapshot(
    config: SourceConfig,
    url: str,
    dest: UPath,
    options: Options,
    progress: Callable[[str], None] | None = None,
) -> Snapshot:
    """Capture ``url`` (the resolved source of ``config``) under ``dest`` and return what the
    stages open. Raises FileNotFoundError (no such source), SourceConfigError, SourceUnavailable,
    or oneroster.source.SourceUnreadable (an archive that cannot be read safely)."""
    say = progress or (lambda _message: None)
    remote = storage_options(config, url)  # an unpinned sftp:// source stops here
    # Built aside and moved into place whole; a killed run's staging folder is swept later.
    staging = dest.with_name(temp_name(dest.name))
    try:
        with sftp_errors(url):
            capture = source_kind(config.kind).capture
            snapshot = capture(config, url, staging, options, say, remote)
        relative = snapshot.open_path.path[len(staging.path) :].lstrip("/")
        replace_folder(staging, dest)
    except BaseException:
        if staging.exists():
            staging.fs.rm(staging.path, recursive=True)
        raise
    snapshot.open_path = dest / relative if relative else dest
    return snapshot


def mapped_snapshot(
    config: SourceConfig,
    staging: UPath,
    options: Options,
    say: Callable[[str], None],
    read: Callable[[object], tuple[dict[str, bytes], list[SnapshotFile], list[dict]]],
    *,
    file_names: Callable[[str], str] | None = None,
    encoding: str | None = None,
) -> Snapshot:
    """A mapped kind's snapshot: its mapping kept beside what ``read(mapping)`` captured
    (tables' bytes, files, queries) and the OneRoster folder converted from it. Findings name
    ``file_names(table)`` when given, read in ``encoding`` (else the mapping's)."""
    from naviance_pipeline.sources.sis.convert import convert
    from naviance_pipeline.sources.sis.mapping import MappingError, load_mapping

    try:
        mapping = load_mapping(config.mapping_ref)
    except MappingError as exc:
        raise SourceConfigError(f"the mapping {config.mapping_ref!r} is invalid:\n{exc}") from exc
    ensure_private_dir(staging)
    write_private_bytes(staging / MAPPING_FILE, mapping.text.encode())
    tables, files, queries = read(mapping)
    say("converting to OneRoster")
    names = {t: file_names(t) for t in tables} if file_names else None
    conversion = convert(mapping, tables, options, file_names=names, encoding=encoding)
    del tables
    folder = staging / CONVERTED
    for name, data in conversion.files.items():
        write_private_bytes(folder / name, data)
    return Snapshot(folder, files, conversion.findings, queries, config.mapping_ref)


def is_sftp(url: str) -> bool:
    return urlsplit(url).scheme.lower() in SFTP_SCHEMES


def storage_options(config: SourceConfig, url: str) -> dict:
    """What fsspec needs to read ``url``: for an sftp:// source, the pinned host keys (sshfs
    alone would accept any key) and the password. Raises SourceConfigError when no key is
    pinned: the source is not read at all then."""
    if not is_sftp(url):
        return {}
    import asyncssh

    from naviance_pipeline.delivery.hostkey import pinned_lines

    shown = redact_url(url)
    text = config.known_hosts or _read_known_hosts(config.known_hosts_path)
    if not pinned_lines(text):
        raise SourceConfigError(
            f"{shown}: no host key is pinned for this sftp:// source: set {KNOWN_HOSTS_ENV} (or "
            f"{KNOWN_HOSTS_PATH_ENV}) to the line(s) `naviance-pipeline sftp-host-key HOST:PORT` "
            "prints, verified out of band — an sftp:// source's host key is always checked"
        )
    try:
        known_hosts = asyncssh.import_known_hosts(text)
    except (ValueError, asyncssh.KeyImportError) as exc:
        raise SourceConfigError(f"{shown}: the pinned known_hosts cannot be read: {exc}") from None
    options = {
        "known_hosts": known_hosts,
        "connect_timeout": SFTP_CONNECT_TIMEOUT,
        "skip_instance_cache": True,  # fsspec would hand back a cached, maybe dead, connection
    }
    if config.password:
        options["password"] = config.password
    return options


def _read_known_hosts(path: str) -> str:
    if not path:
        return ""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise SourceConfigError(
            f"the pinned known_hosts file {path} ({KNOWN_HOSTS_PATH_ENV}) cannot be read: {reason}"
        ) from None


@contextlib.contextmanager
def sftp_errors(url: str) -> Iterator[None]:
    """Reading an sftp:// source: a wrong host key or a refused login as SourceConfigError
    (retrying will not help), a refused, lost or timed-out connection as SourceUnavailable; a
    missing path stays FileNotFoundError. Messages name the URL without user or password."""
    if not is_sftp(url):
        yield
        return
    import asyncssh

    shown = redact_url(url)
    try:
        yield
    except asyncssh.HostKeyNotVerifiable:
        raise SourceConfigError(
            f"{shown}: the server's host key is not the one pinned in {KNOWN_HOSTS_ENV}; nothing "
            "was read (if the key really changed, verify the new one out of band, then pin it)"
        ) from None
    except (asyncssh.PermissionDenied, PermissionError):
        raise SourceConfigError(
            f"{shown}: permission denied: check the user in the URL and {PASSWORD_ENV} "
            "(or the permissions of the path on the server)"
        ) from None
    except FileNotFoundError:
        raise
    except (OSError, EOFError, asyncssh.Error) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise SourceUnavailable(f"{shown} cannot be reached: {reason}") from None


def ensure_sample(config: SourceConfig, sample_zip: str) -> str:
    """The bundled synthetic district in the shape ``config`` reads (generated on first use
    with a fixed seed, beside the OneRoster sample ZIP): the URL to read it from."""
    return source_kind(config.kind).sample(config.mapping_ref, Path(sample_zip))


def no_sample(config_kind: str, mapping: str, bundled: str) -> SourceConfigError:
    return SourceConfigError(
        f"no source URL is set (NAVIANCE_SOURCE_URL) and there is no bundled {config_kind} "
        f"sample for the mapping {mapping!r}: the bundled samples are for {bundled}"
    )


def generated(path: Path, write: Callable[[str], object]) -> str:
    """``path``, written by ``write(temporary path)`` and moved into place if it is missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(temp_name(path.name))
        write(str(tmp))
        os.replace(tmp, path)
    return str(path)
