"""-m connbytes (libxt_connbytes 1.8.9, xt_connbytes.c): the connection's counters.

conntrack counts every packet its trackers accept, per direction, at the
conntrack hook (kptui.engine.conntrack, Conn.acct), so a rule sees the packet
itself counted. The match reads packets, bytes or bytes per packet (integer
division; 0 before any packet) of the ORIGINAL or REPLY direction or both, and
matches when the value is in ``from:to``. ``!`` swaps the two ends, which the
kernel reads as "below from or above to"; a packet without a conntrack entry
never matches (not even with ``!``).
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch

U64 = 0xFFFFFFFFFFFFFFFF
_DIRS = ("original", "reply", "both")
_MODES = ("packets", "bytes", "avgpkt")


class ConnbytesMatch(XtMatch):
    name = "connbytes"
    entries = (
        Entry("connbytes", XT.UINT64RC, mand=True, invert=True),
        Entry("connbytes-dir", XT.STRING, mand=True),
        Entry("connbytes-mode", XT.STRING, mand=True),
    )

    def __init__(self) -> None:
        super().__init__()
        self.lo, self.hi = 0, U64  # count.from, count.to (swapped by !)
        self.dir = ""
        self.mode = ""

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        if name == "connbytes":
            lo = value[0]
            hi = value[1] if len(value) == 2 else U64
            if hi < lo:
                raise BadValue(f"{lo} should be less than {hi}")
            self.lo, self.hi = (hi, lo) if inv else (lo, hi)
        elif name == "connbytes-dir":
            if value not in _DIRS:
                raise BadValue(f"Unknown --connbytes-dir `{value}'")
            self.dir = value
        else:
            if value not in _MODES:
                raise BadValue(f"Unknown --connbytes-mode `{value}'")
            self.mode = value

    def save(self) -> str:
        lo, hi = self.lo, self.hi
        neg = ""
        if lo > hi:
            neg, lo, hi = "! ", hi, lo
        text = f"{neg}--connbytes {lo}"
        if hi and hi < U64:
            text += f":{hi}"
        return f"{text} --connbytes-mode {self.mode} --connbytes-dir {self.dir}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        conn = pkt.meta.ct
        if conn is None:
            return "no conntrack entry: connbytes never matches"
        op, ob, rp, rb = conn.acct
        pkts = {"original": op, "reply": rp, "both": op + rp}[self.dir]
        nbytes = {"original": ob, "reply": rb, "both": ob + rb}[self.dir]
        if self.mode == "packets":
            what = pkts
        elif self.mode == "bytes":
            what = nbytes
        else:
            what = nbytes // pkts if pkts else 0
        if self.hi >= self.lo:
            hit = self.lo <= what <= self.hi
            rng = f"{self.lo}:{self.hi}"
        else:
            hit = what < self.hi or what > self.lo
            rng = f"outside {self.hi}:{self.lo}"
        if hit:
            return None
        return f"{self.mode} ({self.dir}) = {what}, not {rng}"


MATCHES = (ConnbytesMatch,)
