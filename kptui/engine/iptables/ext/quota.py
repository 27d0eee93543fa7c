"""-m quota (libxt_quota 1.8.9, xt_quota.c): a byte budget that runs down per packet.

The template of an xtopt extension: ``entries`` mirror the C option table,
``parsed`` is x6_parse, ``save`` is the .save callback, ``test`` the kernel's
match function.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.xtopt import XT, Entry, XtMatch


class QuotaMatch(XtMatch):
    """xt_quota: while the budget covers the packet it matches and pays; once it does
    not, the budget is emptied and the packet does not match (with ``!``: the reverse)."""

    name = "quota"
    entries = (Entry("quota", XT.UINT64, mand=True, invert=True),)
    stateful = True
    state_attrs = ("left",)

    def __init__(self) -> None:
        super().__init__()
        self.quota = 0
        self.inv = False
        self.left: int | None = None  # the kernel's counter, from the rule's quota

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        self.quota, self.inv = value, inv

    def save(self) -> str:
        return f"{'! ' if self.inv else ''}--quota {self.quota}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        if self.left is None:
            self.left = self.quota
        covered = self.left >= pkt.length
        if covered:
            self.left -= pkt.length
        else:
            self.left = 0
        if covered != self.inv:
            return None
        return (f"quota: {self.left} bytes left, {pkt.length} needed" if not covered
                else f"quota: within budget ({self.left} bytes left), rule says !")


MATCHES = (QuotaMatch,)
