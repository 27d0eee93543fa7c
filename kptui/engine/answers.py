"""The packets the box sends back because of a walked packet.

Three kinds (and -j TEE's copy, built by kptui.engine.iptables.ext.tee), each a new
locally generated packet (``meta.iif == ""``) that the
walk can step through OUTPUT and POSTROUTING like any other:

- ``reject_answer``: what the REJECT target sends (net/ipv4/netfilter/ipt_REJECT.c
  reject_tg -> nf_send_unreach / nf_send_reset in nf_reject_ipv4.c);
- ``icmp_error``: the kernel's own ICMP errors (ip_forward's time exceeded and
  fragmentation needed, ip_error's destination unreachable for routing errors),
  all built by net/ipv4/icmp.c __icmp_send;
- ``reply_to``: what a server would answer ("follow a connection").

``answer_out`` gives the ``answers`` entry of ``kptui trace --json``.

Every header field was checked byte for byte against packets a 6.18 kernel sent
in a network namespace (tests/test_answers.py keeps the captured bytes), except
the IP ID of ICMP errors: the kernel sends them without DF, so ip_select_ident
takes an ID from its hashed per-destination generator (ip_idents_reserve), which
kptui does not model: it writes 0 (kptui verify does not compare IP IDs either).

Not modelled (said here so nobody relies on it): ICMP rate limits
(icmp_ratelimit/icmp_ratemask per destination, icmp_msgs_per_sec globally,
ip_error's route error_cost per source: the kernel stays silent once a source
has had its burst of errors); IP options of the offending packet (the kernel
echoes some of them, ip_options_echo: UnsupportedError); xfrm; the checksum check
nf_send_unreach/nf_send_reset make (kptui's packets always carry correct ones);
an offending frame addressed to a broadcast/multicast MAC with a unicast IP
destination (pkt_type != PACKET_HOST: the kernel sends nothing).

The answer quotes / reverses the packet exactly as given: the caller passes it as
the kernel has it at that point (after DNAT in PREROUTING, with the TTL already
decremented in FORWARD, not yet decremented for ip_forward's own errors).
Translating the answer for conntrack/NAT (nf_nat_icmp_reply_translation) is the
walk's job.
"""

from __future__ import annotations

import hashlib
import struct
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any

from kptui.engine.errors import KptuiError, UnsupportedError
from kptui.engine.packet import (
    ICMP_ERROR_MAX,
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    ICMPHeader,
    IPv4Header,
    Meta,
    Packet,
    TCPHeader,
    UDPHeader,
    format_tcp_flags,
    internet_checksum,
)

if TYPE_CHECKING:
    from kptui.engine.box import Box

__all__ = ["REJECT_WITH", "ROUTE_ERROR_CODES", "NoReplyError", "reject_answer", "icmp_error",
           "route_error_code", "reply_to", "answer_out"]

# ipt_REJECT.c reject_tg: --reject-with -> ICMP destination-unreachable code
# (include/uapi/linux/icmp.h), or None for tcp-reset. Both the names iptables-save
# prints and the short aliases libxt_REJECT accepts.
REJECT_WITH: dict[str, int | None] = {
    "icmp-net-unreachable": 0, "net-unreach": 0,
    "icmp-host-unreachable": 1, "host-unreach": 1,
    "icmp-proto-unreachable": 2, "proto-unreach": 2,
    "icmp-port-unreachable": 3, "port-unreach": 3,
    "icmp-net-prohibited": 9, "net-prohib": 9,
    "icmp-host-prohibited": 10, "host-prohib": 10,
    "icmp-admin-prohibited": 13, "admin-prohib": 13,
    "tcp-reset": None, "tcp-rst": None,
}

# route.c ip_error: the input route's error -> destination-unreachable code.
# EINVAL (blackhole, martians) sends nothing. With forwarding off on the input
# device ip_error sends nothing at all.
ROUTE_ERROR_CODES = {"ENETUNREACH": 0, "EHOSTUNREACH": 1, "EACCES": 13}

# net/ipv4/icmp.c icmp_pointers[].error: the types icmp_send never answers
# (1, 2, 6, 7, 9, 10 are "discard" entries flagged as errors), and every type
# above NR_ICMP_TYPES (18). Checked: REJECT of type 9, 10, 19, 40 sends nothing,
# of type 13 (timestamp) a port unreachable.
_ICMP_NO_ANSWER = frozenset({1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12})
_NR_ICMP_TYPES = 18

# __icmp_send: tos = (iph->tos & IPTOS_TOS_MASK) | IPTOS_PREC_INTERNETCONTROL for errors.
_IPTOS_TOS_MASK = 0x1E
_IPTOS_PREC_INTERNETCONTROL = 0xC0


class NoReplyError(KptuiError):
    """reply_to was asked for a reply no server would send."""


# ---------------------------------------------------------------------------
# helpers


def _sysctl(box: Box, name: str, default: int) -> int:
    """A sysctl the box may not model yet: its kernel default then (it cannot be set)."""
    try:
        return box.sysctl(name)
    except UnsupportedError:
        return default


def _reply_mark(box: Box, pkt: Packet) -> int:
    """IP4_REPLY_MARK: the offending packet's mark only with net.ipv4.fwmark_reflect=1."""
    return pkt.meta.mark if _sysctl(box, "net.ipv4.fwmark_reflect", 0) else 0


def _to_broadcast(box: Box, pkt: Packet) -> bool:
    """The offending packet's route is RTCF_BROADCAST or RTCF_MULTICAST."""
    return box.addrtype(pkt.ip.dst) in ("BROADCAST", "MULTICAST")


def _route_back(box: Box, src: IPv4Address) -> tuple[str, str] | None:
    """(prefsrc, oif) of the output route to the offending packet's source, None if none."""
    probe = Packet(IPv4Header(IPv4Address(0), src, 1))
    res = box.route_output(probe)
    if res.error:
        return None
    return res.prefsrc, res.oif


def _check_options(pkt: Packet, what: str) -> None:
    if pkt.ip.options:
        raise UnsupportedError(f"{what} for a packet with IP options (ip_options_echo)")


def _icmp_bytes(ip: IPv4Header, icmp_type: int, code: int, info: int, quote: bytes) -> bytes:
    body = struct.pack("!BBHI", icmp_type, code, 0, info) + quote
    body = body[:2] + struct.pack("!H", internet_checksum(body)) + body[4:]
    total = 20 + len(body)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, ip.tos, total, ip.id, 0x4000 if ip.df else 0,
                      ip.ttl, 1, 0, ip.src.packed, ip.dst.packed)
    hdr = hdr[:10] + struct.pack("!H", internet_checksum(hdr)) + hdr[12:]
    return hdr + body


# ---------------------------------------------------------------------------
# ICMP errors (__icmp_send)


def _send_icmp(pkt: Packet, icmp_type: int, code: int, info: int, *, box: Box,
               in_iface: str) -> Packet | None:
    """__icmp_send's checks and the error it builds, or None when it sends nothing."""
    ip = pkt.ip
    if ip.frag_offset:  # "Only reply to fragment 0"
        return None
    if _to_broadcast(box, pkt):  # rt_flags & (RTCF_BROADCAST | RTCF_MULTICAST)
        return None
    if ip.proto == 1:  # no error about an ICMP error (or an unknown type)
        inner = pkt.l4
        if not isinstance(inner, ICMPHeader):
            return None
        if inner.type > _NR_ICMP_TYPES or inner.type in _ICMP_NO_ANSWER:
            return None
    _check_options(pkt, "an ICMP error")
    back = _route_back(box, ip.src)  # icmp_route_lookup: no route, no error
    if back is None:
        return None
    prefsrc, oif = back
    if box.is_local(ip.dst):
        # RTCF_LOCAL: the packet was addressed to us, answer from that address.
        saddr = ip.dst
    elif in_iface and _sysctl(box, "net.ipv4.icmp_errors_use_inbound_ifaddr", 0):
        chosen = box.select_addr(in_iface, ip.src, 253)  # RT_SCOPE_LINK
        saddr = chosen if chosen is not None else IPv4Address(prefsrc or "0.0.0.0")
    else:
        # saddr 0: the route lookup towards the sender picks it (default, checked:
        # a forwarded packet from 10.9.9.9 via a route with `src 198.51.100.1`
        # is answered from 198.51.100.1, not from the input interface's address).
        saddr = IPv4Address(prefsrc or "0.0.0.0")
    # room = min(dst_mtu(route back), 576) - iphdr - icmphdr: how much is quoted.
    mtu = box.interfaces[oif].mtu if oif in box.interfaces and oif != "lo" else ICMP_ERROR_MAX
    room = min(mtu, ICMP_ERROR_MAX) - 20 - 8
    quote = pkt.to_bytes()[:room]
    hdr = IPv4Header(saddr, ip.src, 1,
                     ttl=_sysctl(box, "net.ipv4.ip_default_ttl", 64),
                     tos=(ip.tos & _IPTOS_TOS_MASK) | _IPTOS_PREC_INTERNETCONTROL,
                     id=0, df=False)  # the ICMP socket is IP_PMTUDISC_DONT: no DF
    answer = Packet.from_bytes(_icmp_bytes(hdr, icmp_type, code, info, quote))
    # sent from the netns's ICMP socket (a kernel socket: no file, so no owner uid)
    answer.meta = Meta(iif="", mark=_reply_mark(box, pkt), sock="kernel")
    return answer


def icmp_error(pkt: Packet, icmp_type: int, code: int, *, box: Box, in_iface: str = "",
               info: int = 0) -> Packet | None:
    """The ICMP error the kernel itself sends about ``pkt``, or None when it sends none.

    ``icmp_type``/``code``: 11/0 time exceeded (ip_forward, TTL <= 1), 3/4
    fragmentation needed with ``info`` = the next-hop MTU (ip_forward), 3/0, 3/1,
    3/13 for routing errors (see route_error_code). ``in_iface`` is the device the
    packet arrived on ("" for a locally generated one).

    __icmp_send's rules: nothing about a non-first fragment, about an ICMP error
    (or an ICMP type it does not know), about a packet to a broadcast or multicast
    destination, nor when there is no route back. The source is the packet's
    destination when that is a local address, otherwise the source the output
    route towards the sender selects (net.ipv4.icmp_errors_use_inbound_ifaddr
    defaults to 0). TTL ip_default_ttl, TOS (tos & 0x1e) | 0xc0, no DF. It quotes
    the datagram up to 576 bytes in all (548 bytes of quote), less when the route
    back has a smaller MTU. The source address of the sender is not checked: the
    kernel answers a (subnet-)broadcast source too (checked). Rate limits are not
    modelled.
    """
    if not 0 <= info <= 0xFFFFFFFF:
        raise ValueError(f"icmp info {info} is not 32 bits")
    return _send_icmp(pkt, icmp_type, code, info, box=box, in_iface=in_iface)


def route_error_code(error: str, *, forwarding: bool) -> int | None:
    """ip_error: the destination-unreachable code for an input route's errno, or None
    when the kernel sends nothing (forwarding off on the input device, EINVAL...)."""
    if not forwarding:
        return None
    return ROUTE_ERROR_CODES.get(error)


# ---------------------------------------------------------------------------
# REJECT


def reject_answer(pkt: Packet, reject_with: str = "icmp-port-unreachable", *,
                  box: Box) -> Packet | None:
    """What ``-j REJECT --reject-with REJECT_WITH`` sends for ``pkt``, or None.

    ICMP kinds: nf_send_unreach -> icmp_send (see icmp_error for its rules; the
    input interface is ``pkt.meta.iif``). tcp-reset: nf_send_reset, which sends
    nothing for a non-first fragment, a non-TCP packet, a RST, or a packet to a
    broadcast/multicast destination. The RST comes from the offending packet's
    destination (even when forwarded), to its source, ports swapped; when the
    offending segment has ACK its seq is that ack number and only RST is set,
    otherwise seq 0, RST+ACK, ack = seq + SYN + FIN + payload length
    (nf_reject_ip_tcphdr_put). Window 0, no options, TOS 0, IP ID 0, DF, TTL
    ip_default_ttl (ip4_dst_hoplimit of the offending packet's route: kptui
    models no hoplimit route metric).
    """
    key = reject_with.strip().lower()
    if key not in REJECT_WITH:
        raise UnsupportedError(f"REJECT --reject-with {reject_with}")
    code = REJECT_WITH[key]
    if code is not None:
        return _send_icmp(pkt, 3, code, 0, box=box, in_iface=pkt.meta.iif)
    return _send_reset(pkt, box=box)


def _send_reset(pkt: Packet, *, box: Box) -> Packet | None:
    ip, tcp = pkt.ip, pkt.l4
    if ip.frag_offset or ip.proto != 6 or not isinstance(tcp, TCPHeader):
        return None
    if tcp.flags & TCP_RST:  # "No RST for RST."
        return None
    if _to_broadcast(box, pkt):
        return None
    if _route_back(box, ip.src) is None:  # ip_route_me_harder fails
        return None
    _check_options(pkt, "a TCP reset")
    if tcp.flags & TCP_ACK:
        seq, ack, flags = tcp.ack, 0, TCP_RST
    else:
        grow = bool(tcp.flags & TCP_SYN) + bool(tcp.flags & TCP_FIN) + len(pkt.payload)
        seq, ack, flags = 0, (tcp.seq + grow) & 0xFFFFFFFF, TCP_RST | TCP_ACK
    hdr = IPv4Header(ip.dst, ip.src, 6, ttl=_sysctl(box, "net.ipv4.ip_default_ttl", 64),
                     tos=0, id=0, df=True)
    return Packet(hdr, TCPHeader(tcp.dport, tcp.sport, seq, ack, flags, window=0),
                  b"", Meta(iif="", mark=_reply_mark(box, pkt)))


# ---------------------------------------------------------------------------
# follow a connection


_SERVER_MSS = b"\x02\x04\x05\xb4"  # MSS 1460: what Linux puts in a SYN-ACK on Ethernet


def _isn(pkt: Packet) -> int:
    """A deterministic stand-in for secure_tcp_seq (a keyed hash of the 4-tuple)."""
    key = f"{pkt.ip.src}:{pkt.sport}>{pkt.ip.dst}:{pkt.dport}".encode()
    return int.from_bytes(hashlib.sha256(b"kptui-isn " + key).digest()[:4], "big")


def reply_to(pkt: Packet, *, iface: str | None = None, ttl: int = 64) -> Packet:
    """The packet a server answers ``pkt`` with, as it arrives at the box.

    ``pkt`` is taken as it is at its fate (after NAT). Addresses and ports are
    swapped. TCP: a SYN gets a SYN-ACK (seq a deterministic hash of the tuple,
    ack = seq + 1, window 64240, MSS 1460 option: what a Linux listener sent in
    the namespace); a segment with ACK is answered from the sequence it
    acknowledges, other segments from that hashed seq; every non-SYN segment gets
    a bare ACK acknowledging seq + SYN + FIN + payload length; a RST gets no reply
    (NoReplyError). UDP: the same payload back (an echo server). ICMP echo
    request: echo reply with the same id, seq and payload, the request's TOS (as
    icmp_reply does). Other packets: NoReplyError. IP: TTL ``ttl``, TOS 0
    (except echo), ID 0, DF for TCP/UDP (socket default), none for the echo reply.

    Where it comes from: ``iface`` given -> it arrives on that interface ("local"
    or "" -> locally generated); otherwise from ``pkt.meta.oif``: the interface the
    packet left through, or locally generated when it was delivered here (oif
    "lo" or empty).
    """
    if iface is None:
        iface = "" if pkt.meta.oif in ("", "lo") else pkt.meta.oif
    elif iface == "local":
        iface = ""
    ip, l4 = pkt.ip, pkt.l4
    if ip.frag_offset:
        raise NoReplyError("a non-first fragment carries no header a server could answer")
    hdr = IPv4Header(ip.dst, ip.src, ip.proto, ttl=ttl, tos=0, id=0, df=True)
    meta = Meta(iif=iface, sock="" if iface else "user")  # a local reply: a server's socket
    if isinstance(l4, TCPHeader):
        if l4.flags & TCP_RST:
            raise NoReplyError("nobody answers a TCP RST")
        grow = bool(l4.flags & TCP_SYN) + bool(l4.flags & TCP_FIN) + len(pkt.payload)
        ack = (l4.seq + grow) & 0xFFFFFFFF
        seq = l4.ack if l4.flags & TCP_ACK else _isn(pkt)
        if l4.flags & TCP_SYN and not l4.flags & TCP_ACK:
            tcp = TCPHeader(l4.dport, l4.sport, seq, ack, TCP_SYN | TCP_ACK, 64240,
                            options=_SERVER_MSS)
        else:
            tcp = TCPHeader(l4.dport, l4.sport, seq, ack, TCP_ACK, 64240)
        return Packet(hdr, tcp, b"", meta)
    if isinstance(l4, UDPHeader):
        return Packet(hdr, UDPHeader(l4.dport, l4.sport), pkt.payload, meta)
    if isinstance(l4, ICMPHeader) and l4.type == 8:
        hdr.df, hdr.tos = False, ip.tos
        return Packet(hdr, ICMPHeader(0, 0, l4.id, l4.seq), pkt.payload, meta)
    raise NoReplyError(f"no server reply is modelled for {pkt.summary()}")


# ---------------------------------------------------------------------------
# --json


def answer_out(pkt: Packet, iface: str | None = None) -> dict[str, Any]:
    """The ``answers`` entry of ``kptui trace --json`` for an answer packet.

    Shaped as kptui verify records the kernel's answers (verify/kernel.py: the
    interface the answer left through, then wire.ip_out): ``iface`` (``iface``
    or, when not given, ``pkt.meta.oif`` once routing set it; left out while
    unknown), src, dst, proto, sport/dport, ttl, tos, then ``flags`` (and
    ``tcp_options`` when the header has options) for TCP or icmp_type/icmp_code
    (+icmp_id for echo). No ``mark``: it is not on the wire. A -j TEE copy
    (``meta.tee``) adds ``kind`` "tee" and ``nexthop``: the address whose link-layer
    address its frame is sent to (kptui.engine.iptables.ext.tee).
    """
    out = pkt.out_dict()
    out.pop("mark", None)
    d: dict[str, Any] = {}
    where = iface if iface is not None else pkt.meta.oif
    if where:
        d["iface"] = where
    for key in ("src", "dst", "proto", "sport", "dport", "ttl", "tos"):
        if key in out:
            d[key] = out[key]
    if isinstance(pkt.l4, TCPHeader):
        d["flags"] = format_tcp_flags(pkt.l4.flags)
        if "tcp_options" in out:
            d["tcp_options"] = out["tcp_options"]
    for key in ("icmp_type", "icmp_code", "icmp_id"):
        if key in out:
            d[key] = out[key]
    if pkt.meta.tee:  # -j TEE's copy: its kind and the neighbour its frame went to
        d["kind"], d["nexthop"] = "tee", pkt.meta.tee
    return d
