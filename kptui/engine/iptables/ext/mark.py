"""-m mark and -m connmark (libxt_mark / libxt_connmark 1.8.9 revision 1, xt_mark.c,
xt_connmark.c): the packet's or its connection's mark, under a mask."""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext._idopts import Quick
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch
from kptui.engine.numbers import scan_uint


def mark_mask_text(mark: int, mask: int) -> str:
    """xtables_print_mark_mask."""
    return f"0x{mark:x}" if mask == 0xFFFFFFFF else f"0x{mark:x}/0x{mask:x}"


def _quick_markmask(text: str) -> tuple[int, int] | None:
    """XTTYPE_MARKMASK32 for the common spellings (plain numbers), else None for the
    full parser (and its errors)."""
    value, slash, mask = text.partition("/")
    v = scan_uint(value, 0)
    m = scan_uint(mask, 0) if slash else 0xFFFFFFFF
    if v is None or m is None or v > 0xFFFFFFFF or m > 0xFFFFFFFF:
        return None
    return v, m


class MarkMatch(Quick, XtMatch):
    name = "mark"
    entries = (Entry("mark", XT.MARKMASK32, mand=True, invert=True),)
    field = "mark"

    def __init__(self) -> None:
        super().__init__()
        self.value, self.mask, self.inv = 0, 0xFFFFFFFF, False

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        quick = _quick_markmask(args[0]) if opt not in self.seen else None
        if quick is None:
            super().option(opt, args, inv)
        else:
            self.parsed("mark", quick, inv)

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        (self.value, self.mask), self.inv = value, inv

    def save(self) -> str:
        return f"{'! ' if self.inv else ''}--mark {mark_mask_text(self.value, self.mask)}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        mark = getattr(pkt.meta, self.field)
        if ((mark & self.mask) == self.value) == self.inv:
            return f"{self.field} {mark:#x} {'matches' if self.inv else 'does not match'} " \
                   f"{self.value:#x}/{self.mask:#x}"
        return None


class ConnmarkMatch(MarkMatch):
    name = "connmark"
    field = "ctmark"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        if pkt.meta.ct is None:  # connmark_mt: no conntrack entry, no match (even with !)
            return f"no conntrack entry ({pkt.meta.ctinfo or 'INVALID'})"
        return super().test(pkt, ctx)


MATCHES = (MarkMatch, ConnmarkMatch)
