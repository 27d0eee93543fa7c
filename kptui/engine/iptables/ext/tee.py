"""-j TEE (libxt_TEE 1.8.9 revision 1, xt_TEE.c): parsed, not simulated.

TEE sends a copy of the packet to --gateway (a cloned skb routed on its own,
nf_dup_ipv4); kptui models no second packet, so a walk reaching it stops, named.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtTarget

IFNAMSIZ = 16


class TeeTarget(XtTarget):
    name = "TEE"
    entries = (Entry("gateway", XT.HOST, mand=True), Entry("oif", XT.STRING))

    def __init__(self) -> None:
        super().__init__()
        self.gateway = 0
        self.oif = ""

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        if name == "gateway":
            self.gateway = value
        else:
            self.oif = value[:IFNAMSIZ - 1]  # XTOPT_PUT into oif[16]

    def finish(self, proto: int, proto_inv: bool) -> None:
        super().finish(proto, proto_inv)
        self.kernel_check(proto, proto_inv)  # at RULE_APPEND: after iptables' own checks

    def kernel_check(self, proto: int, proto_inv: bool) -> None:
        if self.gateway == 0:  # tee_tg_check: "0.0.0.0 and :: not allowed"
            raise BadValue("TEE: --gateway 0.0.0.0 (the kernel refuses it: Invalid argument)")

    def save(self) -> str:
        out = f"--gateway {IPv4Address(self.gateway)}"
        return f"{out} --oif {self.oif}" if self.oif else out


TARGETS = (TeeTarget,)
