"""-j SYNPROXY (libxt_SYNPROXY 1.8.9, ipt_SYNPROXY.c): parsed, not simulated.

It answers SYNs itself with cookies and opens the real connection later, which
needs packets kptui does not make. As iptables does, --wscale and --mss are
read as 32-bit numbers and stored in their 8- and 16-bit fields (``--mss 70000``
is 4464). The kernel allows it in INPUT and FORWARD, for -p tcp only.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtTarget


class SynproxyTarget(XtTarget):
    name = "SYNPROXY"
    chains = frozenset({"INPUT", "FORWARD"})
    entries = (Entry("sack-perm"), Entry("timestamp"), Entry("wscale", XT.UINT32),
               Entry("mss", XT.UINT32), Entry("ecn"))

    def __init__(self) -> None:
        super().__init__()
        self.given: set[str] = set()
        self.wscale = 0
        self.mss = 0

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        self.given.add(name)
        if name == "wscale":
            self.wscale = value & 0xFF  # xt_synproxy_info.wscale is a __u8
        elif name == "mss":
            self.mss = value & 0xFFFF  # .mss is a __u16

    def finish(self, proto: int, proto_inv: bool) -> None:
        super().finish(proto, proto_inv)
        self.kernel_check(proto, proto_inv)  # at RULE_APPEND: after iptables' own checks

    def kernel_check(self, proto: int, proto_inv: bool) -> None:
        if proto != 6 or proto_inv:  # synproxy_tg4_check
            raise BadValue("SYNPROXY needs -p tcp (the kernel refuses it: Invalid argument)")

    def save(self) -> str:
        out = [f"--{n}" for n in ("sack-perm", "timestamp") if n in self.given]
        if "wscale" in self.given:
            out.append(f"--wscale {self.wscale}")
        if "mss" in self.given:
            out.append(f"--mss {self.mss}")
        if "ecn" in self.given:
            out.append("--ecn")
        return " ".join(out)


TARGETS = (SynproxyTarget,)
