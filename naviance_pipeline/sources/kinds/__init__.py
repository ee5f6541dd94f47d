"""The source kinds: one module in this package per kind, each declaring ``KIND``.

A kind is what ``NAVIANCE_SOURCE_KIND``, the districts file's ``source_kind`` and the CLI's
``--kind`` name. Everything that depends on the kind reads its declaration here: the CLI's
choices and help, the settings' default ``source.systemName``, the districts file's checks,
the secrets the pipeline resource reads, the snapshot ``sis_extract`` takes and the bundled
sample used when no source URL is set. Adding a kind is adding one module here (and its
test); ``naviance_pipeline_tests/test_registries.py`` asks every consumer about every kind.

The modules are imported on first use, not with this package: they import the snapshot code,
which imports this package.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from naviance_pipeline.operations.declared import declared

if TYPE_CHECKING:
    from naviance_pipeline.sources.snapshot import Snapshot

DEFAULT_KIND = "oneroster"
# The secrets a source may need (PipelineResource fields, districts-file roles) and the
# variables they are read from in one-district mode.
SOURCE_SECRET_ENV = {
    "source_password": "NAVIANCE_SOURCE_PASSWORD",  # a SQL or sftp:// source's password
    "source_sftp_known_hosts": "NAVIANCE_SOURCE_SFTP_KNOWN_HOSTS",  # sftp://: pinned key line(s)
}


@dataclass(frozen=True)
class SourceKind:
    name: str  # as configured: NAVIANCE_SOURCE_KIND, source_kind, --kind
    source_help: str  # what the source (URL or path) of this kind is, for --help
    # converted to OneRoster through a mapping (source_mapping, --mapping); False: a OneRoster
    # export, which the CLI opens as it is (unless at an sftp:// URL)
    mapped: bool
    secrets: tuple[str, ...]  # the SOURCE_SECRET_ENV roles it may read
    # source.systemName when none is configured, given the mapping reference ("" if none)
    system_name: Callable[[str], str]
    # Capture the source into a staging folder: (config, url, staging, options, say, remote
    # storage options) -> Snapshot; raises SourceConfigError, SourceUnavailable, ...
    capture: Callable[..., Snapshot]
    # The bundled synthetic district in this kind's shape: (mapping reference, the OneRoster
    # sample ZIP's path; others are generated beside it) -> the URL to read it from.
    sample: Callable[[str, Path], str]
    # Its source is files at a URL (a folder or a ZIP): their age and content hash tell when a
    # new export lands and when it is stale (sources/freshness.py). False: a database.
    files: bool = True


@cache
def registry() -> dict[str, SourceKind]:
    """Every kind, by name, in the order of their modules."""
    return declared(__name__, __path__, "KIND")


def names() -> tuple[str, ...]:
    return tuple(registry())


def source_kind(name: str) -> SourceKind:
    """The kind named ``name``; ValueError naming the known kinds otherwise."""
    try:
        return registry()[name]
    except KeyError:
        raise ValueError(
            f"the source kind must be one of {', '.join(names())}, not {name!r}"
        ) from None


def mapped_names() -> tuple[str, ...]:
    return tuple(name for name, kind in registry().items() if kind.mapped)
