"""-m osf (libxt_osf 1.8.9, xt_osf.c): passive OS fingerprinting of TCP SYNs.

Parsed and printed, not simulated: the match compares a SYN's options with
the fingerprints loaded into the kernel (nfnl_osf), which kptui does not
model, so the walk stops at it rather than guessing.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext._idopts import Quick
from kptui.engine.iptables.ext._kernel import truncate
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch

MAXGENRELEN = 32


class OsfMatch(Quick, XtMatch):
    name = "osf"
    entries = (Entry("genre", XT.STRING, mand=True, invert=True),
               Entry("ttl", XT.UINT32, min=0, max=2),
               Entry("log", XT.UINT32, min=0, max=2))
    protos = (6,)  # xt_osf's .proto
    proto_error = "-m osf needs -p tcp (the kernel refuses it: Invalid argument)"
    chains = frozenset({"INPUT", "PREROUTING", "FORWARD"})  # xt_osf's hooks

    def __init__(self) -> None:
        super().__init__()
        self.genre, self.inv = "", False
        self.ttl: int | None = None
        self.log: int | None = None

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        if name == "genre":
            self.genre, self.inv = truncate(value, MAXGENRELEN), inv
        elif name == "ttl":
            self.ttl = value
        else:
            self.log = value

    def save(self) -> str:
        out = f"{'! ' if self.inv else ''}--genre {self.genre}"
        if self.ttl is not None:
            out += f" --ttl {self.ttl}"
        if self.log is not None:
            out += f" --log {self.log}"
        return out


MATCHES = (OsfMatch,)
