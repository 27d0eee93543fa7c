"""-j TPROXY (libxt_TPROXY 1.8.9 revision 1, xt_TPROXY.c tproxy_tg4): a local socket.

The packet keeps its addresses and gets a socket of the box (a scenario's
[[sockets]]; kptui.engine.sockets): first one already connected for its own
addresses and ports (for UDP: a connected socket not bound to 0.0.0.0), else a
listener at --on-ip (0: the first address of the receiving interface, or the
packet's destination if it has none) and --on-port (0: the destination port;
for UDP an unconnected socket). If that socket is transparent (IP_TRANSPARENT),
the mark becomes (mark & ~mask) ^ value, the socket is the packet's (-m socket
takes it) and the verdict is ACCEPT; otherwise DROP. A route for the mark must
then deliver it locally (`ip rule add fwmark ...` to a table with `local
0.0.0.0/0 dev lo`). Kernel-verified: tests/kernel/scenarios/ext-socket.toml.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

from kptui.engine.iptables.targets import TargetResult, _set
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

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        from kptui.engine.sockets import lookup

        ip, l4, meta, box = pkt.ip, pkt.l4, pkt.meta, ctx.box
        proto, saddr, daddr = ip.proto, int(ip.src), int(ip.dst)
        sk = lookup(box, proto, saddr, l4.sport, daddr, l4.dport, listener=False)
        if sk is not None and (not sk.connected or sk.wildcard):
            sk = None  # NF_TPROXY_LOOKUP_ESTABLISHED takes connected, bound sockets only
        laddr = self.addr or self._first_address(ctx) or daddr
        lport = self.port or l4.dport
        if sk is None:
            sk = lookup(box, proto, saddr, l4.sport, laddr, lport, established=False)
            if sk is not None and sk.connected:
                sk = None  # NF_TPROXY_LOOKUP_LISTENER: no connected UDP socket
        to = f"{IPv4Address(laddr)}:{lport}"
        if sk is None:
            return TargetResult("DROP", detail=f"no socket of the box at {to}")
        if not sk.transparent:
            return TargetResult("DROP", detail=f"{sk.text()} is not transparent")
        out = TargetResult("ACCEPT", detail=f"to {sk.text()}")
        _set(pkt, "meta.mark", (meta.mark & ~self.mask & 0xFFFFFFFF) ^ self.mark, out)
        meta.tproxy = sk
        return out

    @staticmethod
    def _first_address(ctx: Any) -> int:
        """nf_tproxy_laddr4: the receiving device's first (primary) address, or 0."""
        iface = ctx.box.interfaces.get(ctx.iif)
        addrs = getattr(iface, "addresses", None) or []
        return int(addrs[0].ip) if addrs else 0



TARGETS = (TproxyTarget,)
