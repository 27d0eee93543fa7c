"""-j TTL (libipt_TTL 1.8.9, xt_HL.c ttl_tg): set, decrement or increment the IPv4 TTL.

Only in mangle. The three options exclude each other and themselves; --ttl-dec
and --ttl-inc take 1-255. libxtables pairs the exclusions in option-id order
(set 0, inc 1, dec 2, while the table lists dec before inc), hence SharedIds.
The kernel stops at 0 and 255 (no wrap-around).
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext._idopts import SharedIds
from kptui.engine.iptables.targets import TargetResult, _set
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtTarget

_ANY = ("ttl-set", "ttl-dec", "ttl-inc")


class TtlTarget(SharedIds, XtTarget):
    name = "TTL"
    entries = (Entry("ttl-set", XT.UINT8, excl=_ANY),
               Entry("ttl-dec", XT.UINT8, excl=_ANY, min=1),
               Entry("ttl-inc", XT.UINT8, excl=_ANY, min=1))
    ids = {"ttl-set": 0, "ttl-inc": 1, "ttl-dec": 2}
    tables = frozenset({"mangle"})

    def __init__(self) -> None:
        super().__init__()
        self.op, self.value = "", 0

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        self.op, self.value = f"--{name}", value

    def check_rule(self, proto: int, proto_inv: bool) -> None:
        """TTL_check."""
        if not self.op:
            raise BadValue("TTL: You must specify an action")

    def save(self) -> str:
        return f"{self.op} {self.value}"

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        t = pkt.ip.ttl
        new = {"--ttl-set": self.value, "--ttl-dec": max(0, t - self.value),
               "--ttl-inc": min(255, t + self.value)}[self.op]
        out = TargetResult("CONTINUE")
        _set(pkt, "ip.ttl", new, out)
        return out


TARGETS = (TtlTarget,)
