"""iptables extensions beyond the core set, one module per extension (or family).

Each module here names what it adds in two tuples, ``MATCHES`` and ``TARGETS``
(classes built on ``matches.Match`` and ``targets.Target``); ``registry`` finds
them all, so adding an extension is adding a module. A module that parses and
prints an extension without simulating it leaves ``test``/``apply`` to the base
classes, which stop the walk with "unsupported yet: -m NAME (parsed, not
simulated)": never a silent match or no-match.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any


def extension_classes() -> tuple[list[Any], list[Any]]:
    """Every match and target class of the modules in this package, in name order."""
    matches: list[Any] = []
    targets: list[Any] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        mod = importlib.import_module(f"{__name__}.{info.name}")
        matches.extend(getattr(mod, "MATCHES", ()))
        targets.extend(getattr(mod, "TARGETS", ()))
    return matches, targets
