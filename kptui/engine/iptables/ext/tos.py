"""-m tos and -m dscp (libxt_tos revision 1 and libxt_dscp 1.8.9, xt_dscp.c): the IPv4
TOS byte under a mask, and its DSCP (upper six bits)."""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext._idopts import Quick
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch

# dscp_helper.c ds_classes, in its order: a name matches when it starts with a class
# (strncasecmp over the class's length)
DS_CLASSES = (("CS0", 0x00), ("CS1", 0x08), ("CS2", 0x10), ("CS3", 0x18), ("CS4", 0x20),
              ("CS5", 0x28), ("CS6", 0x30), ("CS7", 0x38), ("BE", 0x00), ("AF11", 0x0a),
              ("AF12", 0x0c), ("AF13", 0x0e), ("AF21", 0x12), ("AF22", 0x14),
              ("AF23", 0x16), ("AF31", 0x1a), ("AF32", 0x1c), ("AF33", 0x1e),
              ("AF41", 0x22), ("AF42", 0x24), ("AF43", 0x26), ("EF", 0x2e))


def class_to_dscp(name: str) -> int:
    head = name.encode("utf-8", "surrogateescape").upper()
    for cls, dscp in DS_CLASSES:
        if head[:len(cls)] == cls.encode():
            return dscp
    raise BadValue(f"Invalid DSCP value `{name}'")


class TosMatch(Quick, XtMatch):
    name = "tos"
    entries = (Entry("tos", XT.TOSMASK, invert=True, mand=True, max=0x3F),)

    def __init__(self) -> None:
        super().__init__()
        self.value, self.mask, self.inv = 0, 0xFF, False

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        (self.value, self.mask), self.inv = value, inv

    def save(self) -> str:
        return f"{'! ' if self.inv else ''}--tos 0x{self.value:02x}/0x{self.mask:02x}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        tos = pkt.ip.tos
        if ((tos & self.mask) == self.value) == self.inv:
            return f"tos {tos:#04x} {'matches' if self.inv else 'does not match'} " \
                   f"{self.value:#04x}/{self.mask:#04x}"
        return None


class DscpMatch(Quick, XtMatch):
    name = "dscp"
    entries = (Entry("dscp", XT.UINT8, min=0, max=0x3F, invert=True, excl=("dscp-class",)),
               Entry("dscp-class", XT.STRING, invert=True, excl=("dscp",)))

    def __init__(self) -> None:
        super().__init__()
        self.dscp, self.inv = 0, False

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        self.dscp = value if name == "dscp" else class_to_dscp(value)
        self.inv = self.inv or inv

    def check(self) -> None:
        if not self.seen:
            raise BadValue("DSCP match: Parameter --dscp is required")

    def save(self) -> str:
        return f"{'! ' if self.inv else ''}--dscp 0x{self.dscp:02x}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        d = pkt.ip.tos >> 2
        if (d == self.dscp) == self.inv:
            return f"dscp {d:#04x} {'is' if self.inv else 'is not'} {self.dscp:#04x}"
        return None


MATCHES = (TosMatch, DscpMatch)
