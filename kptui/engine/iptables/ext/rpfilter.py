"""-m rpfilter (libxt_rpfilter 1.8.9, ipt_rpfilter.c): the reverse-path test as a match.

The kernel looks the packet's source up as a destination, through the RPDB
(Box.rpfilter does it the way rpfilter_mt builds its flow), and passes the
packet when the route back is unicast (or local, with --accept-local) and one
of its paths leaves by the interface the packet came in on (any interface
with --loose). --validmark puts the packet's mark in the lookup; --invert
matches the packets that fail. Only in PREROUTING of the raw and mangle tables.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.errors import KptuiError
from kptui.engine.iptables.ext._idopts import Quick
from kptui.engine.iptables.xtopt import Entry, XtMatch

_ORDER = ("loose", "validmark", "accept-local", "invert")


class RpfilterMatch(Quick, XtMatch):
    name = "rpfilter"
    entries = tuple(Entry(n) for n in _ORDER)
    chains = frozenset({"PREROUTING"})  # the match's hooks
    tables = frozenset({"raw", "mangle"})  # rpfilter_check

    def __init__(self) -> None:
        super().__init__()
        self.flags: set[str] = set()

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        self.flags.add(name)

    def save(self) -> str:
        return " ".join(f"--{n}" for n in _ORDER if n in self.flags)

    def test(self, pkt: Any, ctx: Any) -> str | None:
        if ctx.table not in self.tables:
            raise KptuiError(f"-m rpfilter in the {ctx.table} table: the kernel refuses such "
                             "a rule (only valid in 'raw' or 'mangle' table: Invalid argument)")
        if ctx.box is None:
            raise KptuiError("-m rpfilter needs the box's routing (no box in this context)")
        ok, why = ctx.box.rpfilter(pkt, ctx.iif, loose="loose" in self.flags,
                                   validmark="validmark" in self.flags,
                                   accept_local="accept-local" in self.flags)
        if ok != ("invert" in self.flags):
            return None
        return f"{why}; --invert" if ok else why


MATCHES = (RpfilterMatch,)
