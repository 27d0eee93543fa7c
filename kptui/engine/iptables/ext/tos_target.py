"""-j TOS and -j DSCP (libxt_TOS 1.8.9 revision 1, libxt_DSCP; xt_DSCP.c): the IPv4
TOS byte, under a mask, or its DSCP (upper six bits). Both only in mangle.

TOS: ``--set-tos value[/mask]`` or a TOS name (which sets the low six bits: mask
0x3f), ``--and-tos``, ``--or-tos``, ``--xor-tos``; all saved as
``--set-tos value/mask``. The four exclude each other and themselves.
DSCP: ``--set-dscp`` (0-63) or ``--set-dscp-class`` (dscp_helper.c names), never
both; saved as ``--set-dscp 0x..``.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext.tos import class_to_dscp
from kptui.engine.iptables.targets import TargetResult, _set
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtTarget

_ANY = ("set-tos", "and-tos", "or-tos", "xor-tos")


class TosTarget(XtTarget):
    name = "TOS"
    # the table's order is the ids' order (O_SET_TOS 0 .. O_XOR_TOS 3)
    entries = (Entry("set-tos", XT.TOSMASK, excl=_ANY, max=0x3F),
               Entry("and-tos", XT.UINT8, excl=_ANY),
               Entry("or-tos", XT.UINT8, excl=_ANY),
               Entry("xor-tos", XT.UINT8, excl=_ANY))
    tables = frozenset({"mangle"})

    def __init__(self) -> None:
        super().__init__()
        self.value, self.mask = 0, 0

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        """tos_tg_parse."""
        if name == "set-tos":
            self.value, self.mask = value
        elif name == "and-tos":
            self.value, self.mask = 0, ~value & 0xFF
        elif name == "or-tos":
            self.value, self.mask = value, value
        else:  # xor-tos
            self.value, self.mask = value, 0

    def check_rule(self, proto: int, proto_inv: bool) -> None:
        """tos_tg_check."""
        if not self.seen:
            raise BadValue("TOS: An action is required")

    def save(self) -> str:
        return f"--set-tos {self.value:#04x}/{self.mask:#04x}"

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        out = TargetResult("CONTINUE")
        _set(pkt, "ip.tos", (pkt.ip.tos & ~self.mask & 0xFF) ^ self.value, out)
        return out


class DscpTarget(XtTarget):
    name = "DSCP"
    entries = (Entry("set-dscp", XT.UINT8, max=0x3F, excl=("set-dscp-class",)),
               Entry("set-dscp-class", XT.STRING, excl=("set-dscp",)))
    tables = frozenset({"mangle"})

    def __init__(self) -> None:
        super().__init__()
        self.dscp = 0

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        """DSCP_parse."""
        self.dscp = value if name == "set-dscp" else class_to_dscp(value)

    def check_rule(self, proto: int, proto_inv: bool) -> None:
        """DSCP_check."""
        if not self.seen:
            raise BadValue("DSCP target: Parameter --set-dscp is required")

    def save(self) -> str:
        return f"--set-dscp {self.dscp:#04x}"

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        out = TargetResult("CONTINUE")
        _set(pkt, "ip.tos", (pkt.ip.tos & 0x03) | (self.dscp << 2), out)
        return out


TARGETS = (TosTarget, DscpTarget)
