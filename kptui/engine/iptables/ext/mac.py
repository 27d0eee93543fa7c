"""-m mac (libxt_mac 1.8.9, xt_mac.c): the Ethernet source address of a received frame.

A packet looped back through lo has no Ethernet header (ARPHRD_LOOPBACK): it never
matches, even with !. A kptui packet received on an interface carries no sender
MAC, so the walk stops there rather than guessing.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.errors import UnsupportedError
from kptui.engine.iptables.ext._idopts import Quick
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch


class MacMatch(Quick, XtMatch):
    name = "mac"
    entries = (Entry("mac-source", XT.ETHERMAC, mand=True, invert=True),)
    chains = frozenset({"PREROUTING", "INPUT", "FORWARD"})  # xt_mac's hooks

    def __init__(self) -> None:
        super().__init__()
        self.mac, self.inv = "", False

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        self.mac, self.inv = value, inv

    def save(self) -> str:
        return f"{'! ' if self.inv else ''}--mac-source {self.mac}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        src = ctx.src_mac
        if src is None:
            if ctx.iif in ("", "lo"):  # xt_mac: not an Ethernet device: no match, even with !
                return "the packet came in on lo, which has no Ethernet header"
            # the sender's MAC is not part of a kptui packet: no guess either way
            raise UnsupportedError(f"-m mac on a packet received on {ctx.iif} (kptui does "
                                   "not model the sender's MAC address)")
        if (src.lower() == self.mac) == self.inv:
            return f"source MAC {src} {'is' if self.inv else 'is not'} {self.mac}"
        return None


MATCHES = (MacMatch,)
