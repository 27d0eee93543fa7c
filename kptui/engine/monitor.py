r"""A walk as `xtables-monitor --trace` prints it (iptables 1.8.9, Linux 6.18).

So a user can diff kptui's answer against their own box's. The line shapes
are xtables-monitor.c's (trace_print_packet, trace_cb) and were checked on
this machine with `-j TRACE` in raw PREROUTING/OUTPUT:

    PACKET: 2 a7cc23c5 IN=vb MACSRC=f2:75:73:5:4a:c4 MACDST=e:33:f:96:d6:3c MACPROTO=0800 \
            SRC=10.0.0.1 DST=10.0.0.2 LEN=30 TOS=0x0 TTL=64 ID=30676 DF SPORT=52057 DPORT=53 
     TRACE: 2 a7cc23c5 filter:INPUT:rule:0x3:JUMP:CHK  -4 -t filter -A INPUT -p udp -j CHK
     TRACE: 2 a7cc23c5 filter:INPUT:policy:ACCEPT 

(the PACKET line is one line, wrapped here). A PACKET line opens every base
chain the packet enters (the kernel dumps the headers with the first trace
event of each base chain), with the headers as
they are there; a rule that matches prints its nf_tables handle, its verdict
(REJECT is DROP to nf_tables, NAT targets ACCEPT, non-terminating targets and
rules without a target CONTINUE) and its text as iptables-nft prints it; a
user chain that runs off its end prints nothing. PACKET and policy lines end
in a space, as the tool prints them.

What kptui cannot know is its own: the trace id (the kernel hashes the skb's
address) is derived from the packet's number, and the sender's MAC is a
made-up one (the box's own MACs are kptui's, as everywhere). The packet is
traced from its first hook on, as with `-j TRACE` as the first raw rule.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from typing import Any

from kptui.engine.events import (
    ChainEnter,
    Event,
    FieldChange,
    PolicyApplied,
    RuleEval,
    TargetApplied,
)
from kptui.engine.numbers import scan_uint

NFPROTO_IPV4 = 2
# TargetApplied.verdict -> what nf_tables reports for it
_VERDICT = {"REJECT": "DROP", "JUMP": "JUMP", "GOTO": "GOTO"}
_TCP_FLAGS = (("SYN", 0x02), ("ACK", 0x10), ("FIN", 0x01), ("RST", 0x04), ("PSH", 0x08),
              ("URG", 0x20))

HandleOf = Callable[[str, str, int], int]  # (table, chain, rule position) -> handle


def trace_id(index: int, walk: int) -> str:
    """A stable stand-in for the kernel's per-skb trace id: packet ``index``, walk
    ``walk`` (0 for the packet itself, 1.. for the answers it caused)."""
    return f"{zlib.crc32(f'kptui packet {index} walk {walk}'.encode()):08x}"


def ether_ntoa(mac: str) -> str:
    """glibc's ether_ntoa: each byte in hex without a leading zero."""
    return ":".join(f"{scan_uint(part, 16) or 0:x}" for part in mac.split(":"))


def packet_fields(pkt: Any, hook: str) -> str:
    """What follows the trace id on a PACKET line for ``pkt`` at ``hook``."""
    from kptui.engine.box import fake_mac
    from kptui.engine.packet import TCPHeader, UDPHeader

    ip, meta = pkt.ip, pkt.meta
    out: list[str] = []
    received = bool(meta.iif) and hook != "OUTPUT"
    if received:
        out.append(f"IN={meta.iif}")
    if meta.oif and hook in ("FORWARD", "OUTPUT", "POSTROUTING"):
        out.append(f"OUT={meta.oif}")
    if received:
        if meta.iif == "lo":
            out.append("LOOPBACK")
        else:
            out.append(f"MACSRC={ether_ntoa(fake_mac('peer of ' + meta.iif))} "
                       f"MACDST={ether_ntoa(fake_mac(meta.iif))} MACPROTO=0800")
    out.append(f"SRC={ip.src} DST={ip.dst} LEN={pkt.length} TOS=0x{ip.tos:x} TTL={ip.ttl} "
               f"ID={ip.id}")
    if ip.df:
        out.append("DF")
    if ip.mf:
        out.append("MF")
    if ip.frag_offset:
        out.append(f"FRAG:{ip.frag_offset}")
    if ip.options:
        out.append(f"OPT ({ip.options.hex().upper()})")
    l4 = pkt.l4
    if not ip.frag_offset and isinstance(l4, (TCPHeader, UDPHeader)):
        out.append(f"SPORT={l4.sport} DPORT={l4.dport}")
        if isinstance(l4, TCPHeader):
            out.extend(name for name, bit in _TCP_FLAGS if l4.flags & bit)
    # (xtables-monitor prints nothing of an ICMP header)
    if meta.mark:
        out.append(f"MARK=0x{meta.mark:x}")
    return " ".join(out)


def headers_by_replay(start: Any, events: Iterable[Event]) -> dict[int, str]:
    """PACKET fields at each hook's chain entry (by event position), rebuilt from the
    packet as it entered and the walk's FieldChange events (every change is one)."""
    from kptui.engine.packet import FIELDS

    pkt = start.copy()
    out: dict[int, str] = {}
    for pos, ev in enumerate(events):
        if isinstance(ev, FieldChange):
            spec = FIELDS.get(ev.path)
            if spec is not None and spec.write is not None:  # read-only ones too (ctstate)
                spec.write(pkt, ev.new)
        elif isinstance(ev, ChainEnter) and ev.via == "hook":
            out[pos] = packet_fields(pkt, ev.hook)
    return out


def monitor_lines(events: list[Event], headers: dict[int, str], handle_of: HandleOf,
                  ident: str) -> list[str]:
    """One walk's lines as xtables-monitor --trace prints them."""
    head = f"{NFPROTO_IPV4} {ident}"
    out: list[str] = []
    pending: RuleEval | None = None

    def rule_line(ev: RuleEval, verdict: str) -> str:
        handle = handle_of(ev.table, ev.chain, ev.rule)
        return (f" TRACE: {head} {ev.table}:{ev.chain}:rule:0x{handle:x}:{verdict}  "
                f"-4 -t {ev.table} {ev.text}")

    for pos, ev in enumerate(events):
        if pending is not None and not (isinstance(ev, TargetApplied)
                                        and ev.chain == pending.chain
                                        and ev.rule == pending.rule):
            out.append(rule_line(pending, "CONTINUE"))  # a rule without a target
            pending = None
        if isinstance(ev, ChainEnter) and ev.via == "hook":
            out.append(f"PACKET: {head} {headers.get(pos, '')} ")
        elif isinstance(ev, RuleEval) and ev.matched:
            pending = ev
        elif isinstance(ev, TargetApplied) and pending is not None:
            verdict = _VERDICT.get(ev.verdict, ev.verdict)
            if verdict in ("JUMP", "GOTO"):
                verdict = f"{verdict}:{ev.target}"
            elif ev.verdict not in ("ACCEPT", "DROP", "RETURN", "CONTINUE", "QUEUE",
                                    "REJECT"):
                verdict = "ACCEPT"  # NAT targets and the like return NF_ACCEPT
            out.append(rule_line(pending, verdict))
            pending = None
        elif isinstance(ev, PolicyApplied):
            out.append(f" TRACE: {head} {ev.table}:{ev.chain}:policy:{ev.verdict} ")
    if pending is not None:
        out.append(rule_line(pending, "CONTINUE"))
    return out


def ruleset_handles(ruleset: Any) -> HandleOf:
    """The handle lookup for a box's ruleset (rules do not change during a run)."""
    def handle_of(table: str, chain: str, rule: int) -> int:
        try:
            return ruleset.tables[table].chains[chain].rules[rule - 1].handle
        except (KeyError, IndexError):
            return 0
    return handle_of
