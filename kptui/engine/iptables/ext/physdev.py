"""-m physdev (libxt_physdev 1.8.9, xt_physdev.c): the bridge ports of a bridged packet.

Parsed and printed, not simulated: kptui models no bridges (nor
br_netfilter), so the walk stops at the match rather than guessing.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext._idopts import Quick
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch

_ALL_HOOKS = frozenset({"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"})
_ORDER = ("physdev-is-in", "physdev-in", "physdev-is-out", "physdev-out",
          "physdev-is-bridged")  # physdev_save


class PhysdevMatch(Quick, XtMatch):
    name = "physdev"
    entries = (Entry("physdev-in", XT.STRING, invert=True),
               Entry("physdev-out", XT.STRING, invert=True),
               Entry("physdev-is-in", invert=True),
               Entry("physdev-is-out", invert=True),
               Entry("physdev-is-bridged", invert=True))

    def __init__(self) -> None:
        super().__init__()
        self.opts: dict[str, tuple[str | None, bool]] = {}

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        if value is not None and len(value.encode("utf-8", "surrogateescape")) > 15:
            raise BadValue(f"interface name `{value}' must be shorter than IFNAMSIZ (15)")
        self.opts[name] = (value, inv)

    def check(self) -> None:
        if not self.opts:
            raise BadValue("PHYSDEV: no physdev option specified")

    def allowed_chains(self) -> frozenset[str] | None:
        """physdev_mt_check: --physdev-out/--physdev-is-out not in OUTPUT unless the rule
        also says --physdev-is-bridged (not inverted)."""
        bridged = self.opts.get("physdev-is-bridged")
        if ("physdev-out" in self.opts or "physdev-is-out" in self.opts) and \
                (bridged is None or bridged[1]):
            return _ALL_HOOKS - {"OUTPUT"}
        return None

    def save(self) -> str:
        out = []
        for name in _ORDER:
            if name in self.opts:
                value, inv = self.opts[name]
                out.append(f"{'! ' if inv else ''}--{name}"
                           + (f" {value}" if value is not None else ""))
        return " ".join(out)


MATCHES = (PhysdevMatch,)
