"""The delivery targets: one module in this package per kind of target, each declaring
``TARGET``.

A declaration says which URL schemes select the target, how to build it from the URL (its
checks of the URL included), the secrets it reads (``DeliveryResource`` fields, districts-file
roles, and their variables in one-district mode) and which of them a district must name. The
target it builds says where it is: ``describe()`` for people, ``history_key`` (recorded in
every receipt, fixed spelling) and ``upload_host`` (uploads to one host are serialized: the
``naviance/sftp-host`` run tag). ``target_from_url``, the resources, the districts file and the
jobs read these; ``missing_parts`` says what a declaration lacks, and a test runs it on every
target. Adding a target is adding one module here (plus its implementation and test).

The modules are imported on first use, and import their implementation (asyncssh for SFTP)
only when a target is built.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import SplitResult, urlsplit


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
    found: dict[str, TargetKind] = {}
    for info in pkgutil.iter_modules(__path__):
        target = importlib.import_module(f"{__name__}.{info.name}").TARGET
        found[target.name] = target
    return found


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


def missing_parts(target: Any) -> list[str]:
    """What a declaration lacks to be used everywhere a target is named (empty: complete)."""
    if not isinstance(target, TargetKind):
        return [f"{target!r} is not a TargetKind"]
    problems = []
    if not target.schemes:
        problems.append("no URL scheme selects it")
    if not target.url_help.strip():
        problems.append("url_help is empty")
    for roles, _why in target.district_requires:
        problems += [
            f"district_requires names {role!r}, not one of its secrets"
            for role in roles
            if role not in target.secrets
        ]
    try:
        kind, parts = target_kind(target.example)
        if kind is not target:
            problems.append(f"its example {target.example!r} selects {kind.name!r}")
        built = target.build(parts, target.example, target.credentials({}), None)
    except (ValueError, TypeError) as exc:
        return [*problems, f"its example {target.example!r} cannot be built: {exc}"]
    for part in ("describe", "deliver"):
        if not callable(getattr(built, part, None)):
            problems.append(f"the target it builds has no {part}()")
    if not isinstance(getattr(built, "history_key", None), str) or not built.history_key:
        problems.append("the target it builds has no history_key")
    host = getattr(built, "upload_host", "missing")
    if host is not None and (not isinstance(host, str) or host == "missing"):
        problems.append("the target it builds has no upload_host (a host name, or None)")
    return problems
