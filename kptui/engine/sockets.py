"""The box's own sockets, as a scenario's [[sockets]] declares them: what -m socket and
-j TPROXY look packets up in (net/ipv4/inet_hashtables.c, net/ipv4/udp.c).

A socket is a TCP listener or a UDP socket, bound to an address (0.0.0.0: any)
and port, a UDP one perhaps connected to a remote address and port, with
IP_TRANSPARENT and SO_MARK as given. Lookups are the kernel's:

- UDP (__udp4_lib_lookup): first the sockets bound to the packet's destination
  address, then the wildcard ones; among them a connected socket must have the
  packet's source as its peer, and it wins over an unconnected one (score).
- TCP (__inet_lookup): established connections, then listeners bound to the
  destination address, then wildcard listeners. The box's TCP connections are
  not modelled (the request and child sockets a listener makes of a delivered
  SYN, the box's own connects): a TCP packet of a connection the box had a
  packet of delivered stops the walk, named, rather than guess; any other
  finds no established socket, as on a box that holds none.

Two sockets on one protocol and port conflict unless their addresses differ
and neither is the wildcard (bind(2) without SO_REUSEADDR: "Address already in
use"); a socket bound to an address the box does not have needs `transparent`
(IP_TRANSPARENT; else "Cannot assign requested address").
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

from kptui.engine.errors import UnsupportedError

TCP, UDP = 6, 17
SRC_NAT_DONE = 1 << 7  # enum ip_conntrack_status


@dataclass(frozen=True, slots=True)
class Socket:
    proto: int  # 6 tcp (listening) or 17 udp
    laddr: int  # 0: INADDR_ANY
    lport: int
    raddr: int = 0  # udp: connected to raddr:rport
    rport: int = 0
    transparent: bool = False
    mark: int = 0  # SO_MARK
    line: int = 0  # where the scenario declares it

    @property
    def wildcard(self) -> bool:
        return self.laddr == 0

    @property
    def connected(self) -> bool:
        return self.raddr != 0

    def text(self) -> str:
        ip = IPv4Address
        kind = "tcp listener" if self.proto == TCP else "udp socket"
        out = f"{kind} {ip(self.laddr)}:{self.lport}"
        if self.connected:
            out += f" connected to {ip(self.raddr)}:{self.rport}"
        return out + (" (transparent)" if self.transparent else "")


def conflict(a: Socket, b: Socket) -> bool:
    """bind(2) refuses b next to a (no SO_REUSEADDR): same protocol and port, and the
    same address or either the wildcard."""
    return a.proto == b.proto and a.lport == b.lport and \
        (a.laddr == b.laddr or a.wildcard or b.wildcard)


def lookup(box: Any, proto: int, saddr: int, sport: int, daddr: int, dport: int, *,
           established: bool = True, listener: bool = True) -> Socket | None:
    """The socket the kernel finds for a packet (saddr:sport -> daddr:dport)."""
    sockets: list[Socket] = box.sockets
    if proto == UDP:
        return _udp(sockets, saddr, sport, daddr, dport)  # one lookup; TPROXY sorts them
    if proto != TCP:
        return None
    if established and (saddr, sport, daddr, dport) in box.tcp_delivered:
        raise UnsupportedError("a socket lookup for a TCP connection the box has had a "
                               "packet of (its TCP connections are not modelled)")
    if not listener:
        return None
    for want in (daddr, 0):  # inet_lhash2_lookup at daddr, then at INADDR_ANY
        for s in sockets:
            if s.proto == TCP and s.lport == dport and s.laddr == want:
                return s
    return None


def _udp(sockets: list[Socket], saddr: int, sport: int, daddr: int,
         dport: int) -> Socket | None:
    """__udp4_lib_lookup: bound to daddr first, then to INADDR_ANY; best score wins."""
    for want in (daddr, 0):
        best, best_score = None, -1
        for s in sockets:
            if s.proto != UDP or s.lport != dport or s.laddr != want:
                continue
            score = 2
            if s.raddr:
                if s.raddr != saddr:
                    continue
                score += 4
            if s.rport:
                if s.rport != sport:
                    continue
                score += 4
            if score > best_score:
                best, best_score = s, score
        if best is not None:
            return best
    return None


ICMP_ERRORS = (3, 4, 5, 11, 12)  # icmp_is_err


def packet_ends(pkt: Any) -> tuple[int, int, int, int, int] | None:
    """nf_sk_lookup_slow_v4's (protocol, saddr, sport, daddr, dport): the packet's own
    for TCP/UDP; for an ICMP error about a TCP/UDP packet, the quoted packet's reversed
    (it is "the one quoted from our side"); None for anything else. The reply of a
    connection the box SNATed is looked up at the original source address and port."""
    proto = pkt.ip.proto
    l4 = pkt.l4
    if proto in (TCP, UDP) and l4 is not None and hasattr(l4, "sport"):
        ends = [proto, int(pkt.ip.src), l4.sport, int(pkt.ip.dst), l4.dport]
        reply = "ESTABLISHED_REPLY"
    else:
        inner = getattr(l4, "inner", None) if proto == 1 else None
        if inner is None or l4.type not in ICMP_ERRORS or inner.ip.proto not in (TCP, UDP) \
                or not hasattr(inner.l4, "sport"):
            return None
        ends = [inner.ip.proto, int(inner.ip.dst), inner.l4.dport, int(inner.ip.src),
                inner.l4.sport]
        reply = "RELATED_REPLY"
    meta = pkt.meta
    conn = meta.ct
    if conn is not None and meta.ctinfo == reply and conn.has(SRC_NAT_DONE):
        ends[3] = int(conn.original.src)
        ends[4] = conn.original.sport
    return ends[0], ends[1], ends[2], ends[3], ends[4]
