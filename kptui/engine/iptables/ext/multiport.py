"""-m multiport (libxt_multiport 1.8.9 revision 1, xt_multiport.c): up to 15 ports or
port ranges (a range takes two of the 15), for the source, the destination or either.

libxt_multiport checks the rule's -p while it parses the option (it must come
first); kptui checks it once the rule is read, with the "needs" wording
(the C says "only works with ..." for an inverted -p or another protocol).
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext._idopts import SharedIds
from kptui.engine.iptables.values import BadValue, parse_port
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch

XT_MULTI_PORTS = 15
_ANY = ("source-ports", "destination-ports", "ports")
_SAVE = {0: "--sports", 1: "--dports", 2: "--ports"}


_PARSED: dict[str, tuple[tuple[int, int], ...]] = {}  # a restore repeats the same lists
_PARSED_MAX = 1024


def parse_ports(arg: str) -> list[tuple[int, int]]:
    """parse_multi_ports_v1: comma-separated ports, ``a:b`` ranges with a < b."""
    ports = _PARSED.get(arg)
    if ports is None:
        ports = tuple(_parse_ports(arg))
        if len(_PARSED) < _PARSED_MAX:
            _PARSED[arg] = ports
    return list(ports)


def _parse_ports(arg: str) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    slots = 0
    rest: str | None = arg
    while rest is not None and slots < XT_MULTI_PORTS:
        cp, comma, after = rest.partition(",")
        rest = after if comma else None
        lo_text, colon, hi_text = cp.partition(":")
        if colon and slots == XT_MULTI_PORTS - 1:
            raise BadValue("too many ports specified")
        lo = parse_port(lo_text)
        hi = lo
        slots += 1
        if colon:
            hi = parse_port(hi_text)
            slots += 1
            if lo >= hi:
                raise BadValue("invalid portrange specified")
        out.append((lo, hi))
    if rest is not None:
        raise BadValue("too many ports specified")
    return out


class MultiportMatch(SharedIds, XtMatch):
    name = "multiport"
    entries = (Entry("source-ports", XT.STRING, excl=_ANY, invert=True),
               Entry("sports", XT.STRING, excl=_ANY, invert=True),
               Entry("destination-ports", XT.STRING, excl=_ANY, invert=True),
               Entry("dports", XT.STRING, excl=_ANY, invert=True),
               Entry("ports", XT.STRING, excl=_ANY, invert=True))
    ids = {"source-ports": 0, "sports": 0, "destination-ports": 1, "dports": 1, "ports": 2}
    protos = (6, 17, 136, 132, 33)
    proto_error = ("multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or "
                   "`-p dccp'")

    def __init__(self) -> None:
        super().__init__()
        self.which = -1
        self.ports: list[tuple[int, int]] = []
        self.inv = False

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        # check_proto, at the option: the -p given before it (an inverted one never does)
        if self.proto_inv_now or (self.proto_now and self.proto_now not in self.protos):
            raise BadValue("multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP")
        if not self.proto_now:
            raise BadValue(self.proto_error)
        self.ports = parse_ports(value)
        self.which = self.ids[name]
        self.inv = self.inv or inv

    def check(self) -> None:
        if not self.seen:
            raise BadValue("multiport expection an option")

    def save(self) -> str:
        text = ",".join(str(lo) if lo == hi else f"{lo}:{hi}" for lo, hi in self.ports)
        return f"{'! ' if self.inv else ''}{_SAVE[self.which]} {text}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        if pkt.ip.frag_offset != 0:
            return "a non-first fragment has no ports"
        sp, dp = pkt.l4.sport, pkt.l4.dport
        check = ((sp,), (dp,), (sp, dp))[self.which]
        hit = any(lo <= p <= hi for p in check for lo, hi in self.ports)
        if hit == self.inv:
            return f"ports {sp}->{dp} {'match' if hit else 'do not match'} {self.save()}"
        return None


MATCHES = (MultiportMatch,)
