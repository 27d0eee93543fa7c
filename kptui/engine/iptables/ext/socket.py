"""-m socket (libxt_socket 1.8.9 revision 3, xt_socket.c): a local socket for the packet.

socket_match: the socket -j TPROXY gave the packet, else the one the kernel's
lookup finds among the box's sockets (a scenario's [[sockets]]; see
kptui.engine.sockets). A socket bound to 0.0.0.0 does not count unless
--nowildcard (the flag's name says the opposite of what it does: it turns the
"ignore wildcard sockets" rule off); with --transparent only an IP_TRANSPARENT
socket counts; --restore-skmark copies a counted socket's SO_MARK to the packet's
mark. Kernel-verified: tests/kernel/scenarios/ext-socket.toml.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext._idopts import Quick
from kptui.engine.iptables.xtopt import Entry, XtMatch

_ORDER = ("transparent", "nowildcard", "restore-skmark")


class SocketMatch(Quick, XtMatch):
    name = "socket"
    entries = tuple(Entry(n) for n in _ORDER)
    chains = frozenset({"PREROUTING", "INPUT"})  # xt_socket's hooks

    def __init__(self) -> None:
        super().__init__()
        self.flags: set[str] = set()

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        self.flags.add(name)

    def save(self) -> str:
        return " ".join(f"--{n}" for n in _ORDER if n in self.flags)

    def test(self, pkt: Any, ctx: Any) -> str | None:
        sk = pkt.meta.tproxy  # skb->sk: what TPROXY assigned
        how = "the socket TPROXY gave it"
        if sk is None:
            sk, why = find_socket(pkt, ctx)
            if sk is None:
                return why
            how = sk.text()
        wildcard = "nowildcard" not in self.flags and sk.wildcard
        transparent = sk.transparent if "transparent" in self.flags else True
        if "restore-skmark" in self.flags and not wildcard and transparent:
            old = pkt.meta.mark
            if old != sk.mark:
                pkt.meta.mark = sk.mark
                ctx.match_changes.append(("meta.mark", old, sk.mark))
        if wildcard:
            return f"{how} is bound to 0.0.0.0 (without --nowildcard it does not count)"
        if not transparent:
            return f"{how} is not transparent"
        return None


def find_socket(pkt: Any, ctx: Any) -> tuple[Any, str]:
    """nf_sk_lookup_slow_v4 on the box's sockets: (socket, "") or (None, why not)."""
    from kptui.engine.sockets import lookup, packet_ends

    ends = packet_ends(pkt)
    if ends is None:
        return None, "the packet is neither TCP/UDP nor an ICMP error about such a packet"
    proto, saddr, sport, daddr, dport = ends
    sk = lookup(ctx.box, proto, saddr, sport, daddr, dport)
    if sk is None:
        return None, "no socket of the box takes it"
    return sk, ""


MATCHES = (SocketMatch,)
