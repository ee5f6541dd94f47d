"""Registries by folder: a package whose modules each declare one thing (a source kind, a
delivery target) under the same name. Adding a module is registering it; nothing else lists
them."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from typing import Any


def declared(package: str, path: Iterable[str], attribute: str) -> dict[str, Any]:
    """``module.<attribute>`` of every module of ``package`` (``__path__`` = ``path``), by its
    ``.name``, in the modules' order."""
    found: dict[str, Any] = {}
    for info in pkgutil.iter_modules(path):
        item = getattr(importlib.import_module(f"{package}.{info.name}"), attribute)
        found[item.name] = item
    return found
