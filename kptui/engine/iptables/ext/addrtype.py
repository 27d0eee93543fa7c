"""-m addrtype (libxt_addrtype 1.8.9 revision 1, xt_addrtype.c): the route type of the
source or destination address (the box's addrtype lookup), optionally only on the
packet's own in or out device."""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext._idopts import Quick
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch

ADDR_TYPES = ("UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST", "BLACKHOLE",
              "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE")  # rtn_names


def _type(word: str) -> str | None:
    """parse_type: the first name ``word`` is a prefix of (strncasecmp over its length)."""
    head = word.encode("utf-8", "surrogateescape").upper()
    return next((t for t in ADDR_TYPES if t.encode()[:len(head)] == head), None) \
        if head else None


def parse_types(arg: str) -> frozenset[str]:
    """parse_types: comma-separated; the error quotes the text from the bad name on."""
    names = set()
    rest = arg
    while "," in rest:
        word, _, after = rest.partition(",")
        t = _type(word)
        if t is None:
            raise BadValue(f"addrtype: bad type `{rest}'")
        names.add(t)
        rest = after
    t = _type(rest)
    if t is None:
        raise BadValue(f'addrtype: bad type "{rest}"')
    names.add(t)
    return frozenset(names)


_IN = frozenset({"PREROUTING", "INPUT", "FORWARD"})  # addrtype_mt_checkentry_v1
_OUT = frozenset({"OUTPUT", "POSTROUTING", "FORWARD"})


class AddrtypeMatch(Quick, XtMatch):
    name = "addrtype"
    entries = (Entry("src-type", XT.STRING, invert=True),
               Entry("dst-type", XT.STRING, invert=True),
               Entry("limit-iface-in", excl=("limit-iface-out",)),
               Entry("limit-iface-out", excl=("limit-iface-in",)))

    def __init__(self) -> None:
        super().__init__()
        self.types: dict[str, tuple[frozenset[str], bool]] = {}
        self.limit = ""

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        if name.startswith("limit"):
            self.limit = f"--{name}"
        else:
            self.types[f"--{name}"] = (parse_types(value), inv)

    def check(self) -> None:
        if not self.types:
            raise BadValue("addrtype: you must specify --src-type or --dst-type")

    def allowed_chains(self) -> frozenset[str] | None:
        if "--limit-iface-in" in self.seen:
            return _IN
        if "--limit-iface-out" in self.seen:
            return _OUT
        return None

    def save(self) -> str:
        out = []
        for opt in ("--src-type", "--dst-type"):
            if opt in self.types:
                names, inv = self.types[opt]
                out.append(f"{'! ' if inv else ''}{opt} "
                           + ",".join(t for t in ADDR_TYPES if t in names))
        out += [f"--{n}" for n in ("limit-iface-in", "limit-iface-out") if f"--{n}" in self.seen]
        return " ".join(out)

    def test(self, pkt: Any, ctx: Any) -> str | None:
        dev = None
        if self.limit == "--limit-iface-in":
            dev = ctx.iif or None
        elif self.limit == "--limit-iface-out":
            dev = ctx.oif or None
        for opt, (names, inv) in self.types.items():
            addr = pkt.ip.src if opt == "--src-type" else pkt.ip.dst
            kind = ctx.addrtype(addr, dev)
            if (kind in names) == inv:
                return f"{addr} is {kind}, {'one of' if inv else 'not'} {','.join(sorted(names))}"
        return None


MATCHES = (AddrtypeMatch,)
