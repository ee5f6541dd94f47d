"""The delivery targets: one module in this package per kind of target, each declaring
``TARGET``.

A declaration says which URL schemes select the target, how to build it from the URL (its
checks of the URL included), the secrets it reads (``DeliveryResource`` fields, districts-file
roles, and their variables in one-district mode) and which of them a district must name. The
target it builds says where it is: ``describe()`` for people, ``history_key`` (recorded in
every receipt, fixed spelling) and ``upload_host`` (uploads to one host take its upload slots:
delivery/lock.py). ``target_from_url``, the resources, the districts file and the
jobs read these. Adding a target is adding one module here (plus its implementation and
test); ``naviance_pipeline_tests/test_registries.py`` asks every consumer about every target.

The modules are imported on first use, and import their implementation (asyncssh for SFTP)
only when a target is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import SplitResult, urlsplit

from naviance_pipeline.operations.declared import declared


@dataclass(frozen=True)
class TargetKind:
    name: str
    schemes: tuple[str, ...]  # URL schemes that select it ("": a plain path)
    url_help: str  # how its URL is written, for messages
    # (url parts, url, credentials or None, RetryOptions or None) -> Target; ValueError for a
    # URL it cannot use (never echoing a password in it)
    build: Callable[..., Any]
    example: str  # a URL of this target (the registry's test builds it)
    # role -> variable: the secrets it reads (DeliveryResource fields, districts-file roles)
    secrets: Mapping[str, str] = field(default_factory=dict)
    # the target's credentials object from the secrets' values (role -> value or None)
    credentials: Callable[[Mapping[str, str | None]], Any] = lambda _secrets: None
    # districts file: (roles of which one must be named, why) for a district using it
    district_requires: tuple[tuple[tuple[str, ...], str], ...] = ()


@cache
def registry() -> dict[str, TargetKind]:
    """Every target, by name, in the order of their modules."""
    return declared(__name__, __path__, "TARGET")


def secret_env() -> dict[str, str]:
    """Every target's secret role -> the variable it is read from (one-district mode)."""
    return {role: env for t in registry().values() for role, env in t.secrets.items()}


def target_kind(url: str) -> tuple[TargetKind, SplitResult]:
    """The target a URL selects, and the URL's parts; ValueError for an unknown scheme."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    for target in registry().values():
        if scheme in target.schemes:
            return target, parts
    known = "; ".join(t.url_help for t in registry().values())
    raise ValueError(f"unsupported delivery target scheme {scheme!r}: use {known}")
