"""-m iprange (libxt_iprange 1.8.9 revision 1, xt_iprange.c): the source or destination
address in an inclusive range (a reversed range never matches)."""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext._idopts import Quick
from kptui.engine.iptables.values import BadValue, _dotted, ip_text
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch


def parse_range(opt: str, arg: str) -> tuple[int, int]:
    """iprange_parse_range: ``a[-b]``, each xtables_numeric_to_ipaddr."""
    lo_text, dash, hi_text = arg.partition("-")
    ends = []
    for spec in (lo_text, hi_text if dash else lo_text):
        addr = _dotted(spec)
        if addr is None:
            raise BadValue(f'iprange: Bad value for "{opt}" option: "{spec}"')
        ends.append(addr)
    return ends[0], ends[1]


class IprangeMatch(Quick, XtMatch):
    name = "iprange"
    entries = (Entry("src-range", XT.STRING, invert=True),
               Entry("dst-range", XT.STRING, invert=True))

    def __init__(self) -> None:
        super().__init__()
        self.ranges: dict[str, tuple[int, int, bool]] = {}

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        lo, hi = parse_range(f"--{name}", value)
        self.ranges[f"--{name}"] = (lo, hi, inv)

    def check(self) -> None:
        if not self.ranges:
            raise BadValue("iprange match: You must specify `--src-range' or `--dst-range'")

    def save(self) -> str:
        return " ".join(f"{'! ' if inv else ''}{opt} {ip_text(lo)}-{ip_text(hi)}"
                        for opt in ("--src-range", "--dst-range") if opt in self.ranges
                        for lo, hi, inv in [self.ranges[opt]])

    def test(self, pkt: Any, ctx: Any) -> str | None:
        for opt, (lo, hi, inv) in self.ranges.items():
            addr = pkt.ip.src if opt == "--src-range" else pkt.ip.dst
            if (lo <= int(addr) <= hi) == inv:
                return f"{addr} {'in' if inv else 'not in'} {ip_text(lo)}-{ip_text(hi)}"
        return None


MATCHES = (IprangeMatch,)
