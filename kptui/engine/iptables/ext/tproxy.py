"""-j TPROXY (libxt_TPROXY 1.8.9 revision 1, xt_TPROXY.c): parsed, not simulated.

TPROXY hands the packet to a local socket found by a socket lookup (and marks
it); kptui models no sockets, so a walk reaching it stops, named.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtTarget


class TproxyTarget(XtTarget):
    """TPROXY revision 1: mangle PREROUTING, -p tcp or -p udp (tproxy_tg4_check)."""

    name = "TPROXY"
    tables = frozenset({"mangle"})
    chains = frozenset({"PREROUTING"})
    entries = (Entry("on-port", XT.PORT, mand=True), Entry("on-ip", XT.HOST),
               Entry("tproxy-mark", XT.MARKMASK32))

    def __init__(self) -> None:
        super().__init__()
        self.port = 0
        self.addr = 0
        self.mark, self.mask = 0, 0

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        if name == "on-port":
            self.port = value
        elif name == "on-ip":
            self.addr = value
        else:
            self.mark, self.mask = value

    def finish(self, proto: int, proto_inv: bool) -> None:
        super().finish(proto, proto_inv)
        self.kernel_check(proto, proto_inv)  # at RULE_APPEND: after iptables' own checks

    def kernel_check(self, proto: int, proto_inv: bool) -> None:
        if proto not in (6, 17) or proto_inv:
            raise BadValue("TPROXY needs -p tcp or -p udp (the kernel refuses it: Invalid "
                           "argument)")

    def save(self) -> str:
        """tproxy_tg_save4: every field, always."""
        return (f"--on-port {self.port} --on-ip {IPv4Address(self.addr)} "
                f"--tproxy-mark {self.mark:#x}/{self.mask:#x}")



TARGETS = (TproxyTarget,)
