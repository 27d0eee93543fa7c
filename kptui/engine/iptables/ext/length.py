"""-m length (libxt_length 1.8.9, xt_length.c): the IPv4 total length in a range."""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext._idopts import Quick
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch


class LengthMatch(Quick, XtMatch):
    name = "length"
    entries = (Entry("length", XT.UINT16RC, mand=True, invert=True),)

    def __init__(self) -> None:
        super().__init__()
        self.lo, self.hi, self.inv = 0, 0, False

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        self.lo = self.hi = value[0]
        if len(value) >= 2:
            self.hi = value[1]
        self.inv = inv

    def save(self) -> str:
        text = str(self.lo) if self.lo == self.hi else f"{self.lo}:{self.hi}"
        return f"{'! ' if self.inv else ''}--length {text}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        n = pkt.length
        if (self.lo <= n <= self.hi) == self.inv:
            return f"length {n} {'in' if self.inv else 'not in'} {self.lo}:{self.hi}"
        return None


MATCHES = (LengthMatch,)
