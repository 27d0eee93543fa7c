"""-m pkttype (libxt_pkttype 1.8.9, xt_pkttype.c): the link-layer packet type (to us,
broadcast, multicast, to another host)."""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext._idopts import Quick
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch

# supported_types, matched with strcasecmp; the kernel's PACKET_* by kptui's name
PKT_TYPES = {b"unicast": "host", b"broadcast": "broadcast", b"multicast": "multicast",
             b"otherhost": "otherhost", b"bcast": "broadcast", b"mcast": "multicast",
             b"host": "host"}
_SAVE = {"host": "unicast", "broadcast": "broadcast", "multicast": "multicast",
         "otherhost": "otherhost"}


class PkttypeMatch(Quick, XtMatch):
    name = "pkttype"
    entries = (Entry("pkt-type", XT.STRING, mand=True, invert=True),)

    def __init__(self) -> None:
        super().__init__()
        self.kind, self.inv = "", False

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        kind = PKT_TYPES.get(value.encode("utf-8", "surrogateescape").lower())
        if kind is None:
            raise BadValue(f"Bad packet type '{value}'")
        self.kind, self.inv = kind, inv

    def save(self) -> str:
        return f"{'! ' if self.inv else ''}--pkt-type {_SAVE[self.kind]}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        if (ctx.pkttype == self.kind) == self.inv:
            return f"packet type {ctx.pkttype} {'is' if self.inv else 'is not'} {self.kind}"
        return None


MATCHES = (PkttypeMatch,)
