"""-m ttl (libipt_ttl 1.8.9, ipt_ttl.c): the IPv4 TTL against a value.

--ttl-eq (also spelled --ttl) can be inverted and becomes "not equal"; the
three comparisons exclude each other.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext._idopts import SharedIds
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch

_ANY = ("ttl-lt", "ttl-gt", "ttl-eq")


class TtlMatch(SharedIds, XtMatch):
    name = "ttl"
    entries = (Entry("ttl-lt", XT.UINT8, excl=_ANY), Entry("ttl-gt", XT.UINT8, excl=_ANY),
               Entry("ttl-eq", XT.UINT8, excl=_ANY, invert=True),
               Entry("ttl", XT.UINT8, excl=_ANY))
    ids = {"ttl-eq": 0, "ttl": 0, "ttl-lt": 1, "ttl-gt": 2}

    def __init__(self) -> None:
        super().__init__()
        self.op, self.value, self.inv = "", 0, False

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        self.op = name[4:]  # "ttl" arrives as "ttl-eq" (SharedIds)
        self.value, self.inv = value, inv

    def check(self) -> None:
        if not self.op:
            raise BadValue("TTL match: You must specify one of `--ttl-eq', `--ttl-lt', "
                           "`--ttl-gt")

    def save(self) -> str:
        return f"{'! ' if self.inv else ''}--ttl-{self.op} {self.value}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        t = pkt.ip.ttl
        ok = {"eq": t == self.value, "lt": t < self.value, "gt": t > self.value}[self.op]
        if ok != self.inv:
            return None
        return f"ttl {t} fails {self.save()}"


MATCHES = (TtlMatch,)
