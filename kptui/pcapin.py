"""A capture's packets as the box's packets: `--pcap FILE [--iif IFACE]`.

Each IPv4 frame of a pcap/pcapng capture (kptui.pcapio) becomes one packet to walk,
in file order, replacing the scenario's packets; the box's state (conntrack, limits,
queues) carries from one to the next as with a scenario's packets. Its capture time,
relative to the first walked packet, is its ``time`` on the box's clock, so timeouts,
rate limits and token buckets see the gaps the box saw.

Link layers (https://www.tcpdump.org/linktypes.html): Ethernet, Linux cooked SLL and
SLL2 (what `tcpdump -i any` writes), raw IP and raw IPv4. Nothing is dropped without a
word: frames that are not IPv4 (ARP, IPv6, VLAN-tagged, ...) are counted by kind,
frames the box sent (SLL's and pcapng's direction) and loopback frames are counted
too, and an IPv4 packet kptui's packet model cannot take (Packet.from_bytes refuses
it) is named with its frame number and the byte offset in the file. A TCP/UDP/ICMP
checksum that is not what the bytes sum to is put right and counted: a capture taken
on the sending host sees the packet before checksum offload fills the field in (veth
and most NICs), so nearly every such packet was right on the wire.

Where a packet arrives (``meta.iif``), first match wins:
1. ``--iif KEY=NAME``: frames the capture says arrived on KEY (a pcapng interface name,
   or an SLL2 interface index) arrive on the box's NAME;
2. ``--iif NAME``: every other frame arrives on NAME (``local``: the box's own
   packets, walked from a local socket);
3. the capture's own pcapng interface name, when the box has an interface of that name;
4. the box's only interface, when it has one (besides lo).
Otherwise the run stops before walking, asking for ``--iif``. Notes say which rule
gave which interfaces.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kptui.engine.errors import KptuiError
from kptui.engine.numbers import U32, NumberError, parse_uint
from kptui.engine.packet import ChecksumError, Packet
from kptui.pcapio import NS, CaptureError, Frame, frames

LOCAL = "local"
# Problems with single packets shown one per line; beyond this, a count.
SHOWN_PROBLEMS = 10
# linux/if_packet.h packet types, in SLL/SLL2 headers
PACKET_OTHERHOST = 3
SENT_TYPES = (4, 5)  # PACKET_OUTGOING, PACKET_LOOPBACK (a multicast the box looped back)
ARPHRD_LOOPBACK = 772  # linux/if_arp.h


@dataclass(frozen=True, slots=True)
class LinkLayer:
    """How to find the network-layer bytes (and what else the header says) in a frame."""

    name: str
    header: int  # bytes before the network-layer header
    proto_at: int | None = None  # offset of the 16-bit protocol (ethertype); None: raw IP
    pkttype_at: int | None = None  # SLL/SLL2: the packet type byte (linux/if_packet.h)
    hatype_at: int | None = None  # SLL/SLL2: the 16-bit ARPHRD_ type of the device
    ifindex_at: int | None = None  # SLL2: the 32-bit interface index on the capturing box


# LINKTYPE_ numbers of the files (linktypes.html). SLL: packet type (2 bytes), ARPHRD
# type (2), address length (2), address (8), protocol (2). SLL2: protocol (2), reserved
# (2), interface index (4), ARPHRD type (2), packet type (1), address length (1),
# address (8).
LINK_LAYERS = {
    1: LinkLayer("Ethernet", 14, proto_at=12),
    113: LinkLayer("Linux cooked (SLL)", 16, proto_at=14, pkttype_at=1, hatype_at=2),
    276: LinkLayer("Linux cooked v2 (SLL2)", 20, proto_at=0, pkttype_at=10, hatype_at=8,
                   ifindex_at=4),
    101: LinkLayer("raw IP", 0),
    228: LinkLayer("raw IPv4", 0),
}
ETH_P_IP = 0x0800
# Frames kptui does not walk, by their protocol: the kind the skip note counts them as.
ETHERTYPES = {0x0806: "ARP", 0x8035: "RARP", 0x86DD: "IPv6", 0x8100: "VLAN-tagged",
              0x88A8: "VLAN-tagged", 0x9100: "VLAN-tagged", 0x88CC: "LLDP",
              0x8863: "PPPoE", 0x8864: "PPPoE", 0x8847: "MPLS", 0x8848: "MPLS"}
# Why each kind of skipped frame is not walked (said once per kind in the note).
SKIP_WHY = {
    "IPv6": "kptui walks IPv4 only",
    "VLAN-tagged": "unsupported yet: 802.1Q/802.1ad tags",
    "sent by the box": "the box's own sends, each the result of a walk, not an arrival; "
                       "--iif local walks them from a socket",
    "arrived from outside": "--iif local walks only the box's own sends",
    "on the loopback device": "the box's own packets looping back; --iif local walks "
                              "them from their socket",
    "to another host's address": "PACKET_OTHERHOST: Linux drops it in ip_rcv, before any "
                                 "hook",
}
# Where in the datagram each refusal of Packet.from_bytes points: (the message's start,
# offset, whether the offset counts from the end of the IP header).
_WHERE = (("ip.len:", 2, False), ("ip.checksum:", 10, False), ("ip:", 0, False),
          ("tcp: data offset", 12, True), ("udp.length:", 4, True), ("icmp.inner.", 8, True),
          ("tcp", 0, True), ("udp", 0, True), ("icmp", 0, True),
          ("unsupported yet: the reserved IP flag bit", 6, False),
          ("unsupported yet: tcp reserved", 12, True),
          ("unsupported yet: udp datagrams", 4, True))
# What the kernel does with a packet kptui refuses, where that is known.
_WHY_NOT = (("ip.checksum:", " (Linux drops such a packet in ip_rcv, before any hook)"),)


@dataclass(slots=True)
class CapturedPacket:
    """One captured IPv4 packet to walk; built as a scenario's PacketSpec is (run_scenario,
    the Debugger and kptui verify call ``build``/``build_after`` and read ``time``)."""

    frame: int  # the capture's frame number, from 1
    time: float  # seconds on the box's clock (0: the first packet walked)
    origin: str  # the box's interface it arrives on, or "local"
    packet: Packet
    notes: tuple[str, ...] = ()  # what was put right in its bytes
    file: str = ""
    reply_to: None = None
    line: int = 0

    def build(self) -> Packet:
        pkt = self.packet.copy()
        pkt.meta.tstamp = self.time
        return pkt

    def build_after(self, walked: Sequence[Any]) -> Packet:
        return self.build()

    def summary(self) -> str:
        return f"frame {self.frame}: {self.packet.summary()}"

    def capture_json(self) -> dict[str, Any]:
        """The ``capture`` object kptui trace --json adds for a packet from --pcap."""
        out: dict[str, Any] = {"frame": self.frame, "time": round(self.time, 9)}
        if self.notes:
            out["notes"] = list(self.notes)
        return out


@dataclass(slots=True)
class Loaded:
    """The packets of a capture, and the notes to show before walking them."""

    packets: list[CapturedPacket]
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Arrivals:
    """The --iif words, checked against the box's interfaces (see the module doc)."""

    interfaces: tuple[str, ...]  # the box's, without lo
    default: str = ""  # --iif NAME
    mapped: dict[str, str] = field(default_factory=dict)  # --iif KEY=NAME

    @classmethod
    def parse(cls, words: Iterable[str], interfaces: Iterable[str]) -> Arrivals:
        interfaces = list(interfaces)
        names = tuple(n for n in interfaces if n != "lo")
        known = set(interfaces) | {LOCAL}
        out = cls(names)
        for word in words:
            key, sep, name = word.rpartition("=")
            if not name or (sep and not key):
                raise KptuiError(f"--iif {word!r}: expected NAME or CAPTURED=NAME (NAME an "
                                 "interface of the box or local)")
            if name not in known:
                raise KptuiError(f"--iif {word}: {name!r} is not an interface of the box "
                                 f"({', '.join(names) or 'none but lo'}) nor local")
            if not sep:
                if out.default and out.default != name:
                    raise KptuiError(f"--iif {word}: --iif {out.default} was given already "
                                     "(one NAME for every packet; CAPTURED=NAME for others)")
                out.default = name
                continue
            captured = _key(key)
            if out.mapped.get(captured, name) != name:
                raise KptuiError(f"--iif {word}: {key} is mapped to {out.mapped[captured]} "
                                 "already")
            out.mapped[captured] = name
        return out

    def resolve(self, key: str, captured_name: str) -> tuple[str, str]:
        """(the box's interface or "local", which rule chose it) for one frame; "" when
        none does."""
        if key and key in self.mapped:
            return self.mapped[key], f"--iif {key.lstrip('#')}={self.mapped[key]}"
        if self.default:
            return self.default, ""
        if captured_name and captured_name in self.interfaces:
            return captured_name, "the capture's interface names"
        if len(self.interfaces) == 1:
            return self.interfaces[0], "the box's only interface"
        return "", ""


def _key(text: str) -> str:
    """A CAPTURED key: an SLL2 interface index in decimal (as `ip link` numbers them), or
    a pcapng interface name."""
    if text[:1] in "0123456789":
        try:
            return f"#{parse_uint(text, 1, U32, what='interface index')}"
        except NumberError as err:
            raise KptuiError(f"--iif {text}=...: {err}") from None
    return text


def read_capture(path: str) -> bytes:
    """The bytes of a capture file; KptuiError naming it when it cannot be read."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise KptuiError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise KptuiError(f"{path}: is a directory, not a capture file") from None
    except OSError as err:
        raise KptuiError(f"{path}: {err.strerror}") from None


def load_capture(path: str, *, iif: Iterable[str], interfaces: Iterable[str]) -> Loaded:
    """The IPv4 packets of the capture at ``path`` for a box with ``interfaces``."""
    return from_bytes(read_capture(path), file=path,
                      arrivals=Arrivals.parse(iif, list(interfaces)))


@dataclass(slots=True)
class _Tally:
    skipped: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    fixed: list[tuple[int, str]] = field(default_factory=list)  # (frame, what)
    chosen: Counter = field(default_factory=Counter)  # (rule, iface) -> packets
    backwards: int = 0
    untimed: int = 0
    linktypes: set = field(default_factory=set)


def from_bytes(data: bytes, *, file: str, arrivals: Arrivals) -> Loaded:
    """The packets of a capture's bytes (see the module doc); CaptureError on a damaged
    file, KptuiError when a packet's interface cannot be told."""
    tally = _Tally()
    packets: list[CapturedPacket] = []
    first_ns: int | None = None
    last = 0.0
    count = 0
    for frame in frames(data, file=file):
        count += 1
        got = _ipv4(frame, file, arrivals, tally)
        if got is None:
            continue
        origin, rule, ip, at = got
        pkt, fixes = _packet(ip, frame, at, file, tally)
        if pkt is None:
            continue
        if rule:
            tally.chosen[(rule, origin)] += 1
        if frame.ts_ns is None:
            tally.untimed += 1
            when = last
        else:
            if first_ns is None:
                first_ns = frame.ts_ns
            when = (frame.ts_ns - first_ns) / NS
            if when < last:
                tally.backwards += 1
                when = last
        last = when
        if origin == LOCAL:
            pkt.meta.iif, pkt.meta.sock = "", "user"
        else:
            pkt.meta.iif = origin
        packets.append(CapturedPacket(frame.number, when, origin, pkt, fixes, file))
    return Loaded(packets, _notes(file, count, packets, tally))


def _ipv4(frame: Frame, file: str, arrivals: Arrivals,
          tally: _Tally) -> tuple[str, str, bytes, int] | None:
    """(the arrival interface, the rule that chose it, the IP datagram's bytes, their
    offset in the file), or None for a frame counted as skipped."""
    link = LINK_LAYERS.get(frame.iface.linktype)
    if link is None:
        if frame.iface.name or frame.iface.number:  # pcapng: one interface of several
            tally.skipped[f"link type {frame.iface.linktype}"] += 1
            return None
        raise CaptureError(file, frame.offset, f"link type {frame.iface.linktype} is not one "
                           "kptui reads (Ethernet 1, Linux cooked SLL 113 and SLL2 276, raw "
                           "IP 101 and 228)")
    tally.linktypes.add(link.name)
    data = frame.data
    if len(data) < link.header + 1:
        tally.problems.append(f"frame {frame.number}, byte {frame.data_offset}: "
                              f"{len(data)} bytes is too short for its {link.name} header: "
                              "not walked")
        return None
    kind = _kind(link, data)
    if kind:
        tally.skipped[kind] += 1
        return None
    direction = frame.direction
    key = f"#{_u32(data, link.ifindex_at)}" if link.ifindex_at is not None else frame.iface.name
    if link.pkttype_at is not None:
        pkttype = data[link.pkttype_at]
        if pkttype in SENT_TYPES:
            direction = "out"
        elif pkttype == PACKET_OTHERHOST and key not in arrivals.mapped:
            tally.skipped["to another host's address"] += 1
            return None
        else:
            direction = "in"
    loopback = (link.hatype_at is not None and _u16(data, link.hatype_at) == ARPHRD_LOOPBACK
                ) or frame.iface.name == "lo"
    if loopback and key not in arrivals.mapped:
        tally.skipped["on the loopback device"] += 1
        return None
    local = arrivals.mapped.get(key, arrivals.default) == LOCAL  # the box's own sends wanted
    if direction == ("in" if local else "out"):
        tally.skipped["arrived from outside" if local else "sent by the box"] += 1
        return None
    origin, rule = arrivals.resolve(key, frame.iface.name)
    if not origin:
        raise KptuiError(_unresolved(file, frame, key, arrivals))
    return origin, rule, data[link.header:], frame.data_offset + link.header


def _u16(data: bytes, at: int) -> int:
    return (data[at] << 8) | data[at + 1]


def _u32(data: bytes, at: int) -> int:
    return int.from_bytes(data[at:at + 4], "big")


def _kind(link: LinkLayer, data: bytes) -> str:
    """'' for an IPv4 frame, else what the skip note counts it as."""
    if link.proto_at is None:
        version = data[link.header] >> 4
        return "" if version == 4 else ("IPv6" if version == 6 else f"IP version {version}")
    proto = _u16(data, link.proto_at)
    if proto == ETH_P_IP:
        return ""
    if proto in ETHERTYPES:
        return ETHERTYPES[proto]
    return "802.3/LLC" if proto < 0x0600 else f"ethertype {proto:#06x}"


def _unresolved(file: str, frame: Frame, key: str, arrivals: Arrivals) -> str:
    names = ", ".join(arrivals.interfaces) or "none but lo"
    if key.startswith("#"):
        said = (f"arrived on interface index {key[1:]} of the capturing machine (SLL2), "
                "which the scenario does not number")
        fix = f"--iif {key[1:]}=NAME, or --iif NAME for every packet"
    elif key:
        said = f"arrived on {key!r} (pcapng interface {frame.iface.number}), not an " \
               "interface of the box"
        fix = f"--iif {key}=NAME, or --iif NAME for every packet"
    else:
        said = "does not say which interface it arrived on"
        fix = "--iif NAME (or --iif local for the box's own packets)"
    return f"{file}: frame {frame.number} {said}; the box has {names}: give {fix}"


def _packet(ip: bytes, frame: Frame, at: int, file: str,
            tally: _Tally) -> tuple[Packet | None, tuple[str, ...]]:
    """The packet of an IPv4 datagram's bytes (Ethernet padding cut off, wrong L4
    checksums put right), or None when kptui cannot take it (a problem is noted)."""
    if len(ip) >= 4:
        total = (ip[2] << 8) | ip[3]
        if len(ip) > total >= 20:  # the link layer's padding: ip_rcv trims it too
            ip = ip[:total]
        elif total > len(ip) and frame.wire_len > len(frame.data):
            tally.problems.append(
                f"frame {frame.number}, byte {at + 2}: captured {len(ip)} of its {total} "
                f"bytes (the capture kept {len(frame.data)} of the frame's {frame.wire_len}: "
                "its snapshot length): kptui walks whole datagrams; capture with -s 0")
            return None, ()
    fixes: list[str] = []
    for _ in range(2):  # one L4 checksum to put right at most
        try:
            return Packet.from_bytes(ip), tuple(fixes)
        except ChecksumError as err:
            if fixes:
                break
            got = ip[err.offset:err.offset + 2].hex()
            fixes.append(f"{str(err).split(':', 1)[0]} at byte {at + err.offset} was 0x{got}, "
                         f"walked with 0x{err.want:04x}")
            tally.fixed.append((frame.number, fixes[-1]))
            ip = ip[:err.offset] + err.want.to_bytes(2, "big") + ip[err.offset + 2:]
        except KptuiError as err:
            text = str(err)
            why = next((why for start, why in _WHY_NOT if text.startswith(start)), "")
            tally.problems.append(f"frame {frame.number}, byte {at + _offset(text, ip)}: "
                                  f"{text}{why}: not walked")
            return None, ()
    tally.problems.append(f"frame {frame.number}, byte {at}: its checksums cannot be put "
                          "right: not walked")
    return None, ()


def _offset(message: str, ip: bytes) -> int:
    """Where in the datagram the refusal ``message`` of Packet.from_bytes points."""
    ihl = (ip[0] & 0x0F) * 4 if ip else 0
    for start, offset, after_ip in _WHERE:
        if message.startswith(start):
            return offset + (ihl if after_ip else 0)
    return 0


def _notes(file: str, count: int, packets: list[CapturedPacket], tally: _Tally) -> list[str]:
    links = ", ".join(sorted(tally.linktypes)) or "no frames"
    span = f", over {packets[-1].time:.6f} s" if packets else ""
    notes = [f"{file}: {count} frame(s) ({links}): {len(packets)} IPv4 packet(s) to walk"
             f"{span}"]
    if tally.skipped:
        parts = []
        for kind, n in sorted(tally.skipped.items(), key=lambda kv: (-kv[1], kv[0])):
            why = SKIP_WHY.get(kind) or ("a link layer kptui does not read"
                                         if kind.startswith("link type") else "not IPv4")
            parts.append(f"{n} {kind} ({why})")
        notes.append(f"{file}: skipped {sum(tally.skipped.values())} frame(s): "
                     + "; ".join(parts))
    if tally.chosen:
        parts = [f"{iface} ({n}) by {rule}"
                 for (rule, iface), n in sorted(tally.chosen.items())]
        notes.append(f"{file}: arrival interfaces: {', '.join(parts)}")
    if tally.fixed:
        first, what = tally.fixed[0]
        notes.append(f"{file}: {len(tally.fixed)} packet(s) had a TCP/UDP/ICMP checksum that "
                     f"is not what their bytes sum to (first: frame {first}, {what}); a "
                     "capture taken before checksum offload fills it in shows this: walked "
                     "with the right checksum")
    shown = tally.problems[:SHOWN_PROBLEMS]
    notes.extend(f"{file}: {line}" for line in shown)
    if len(tally.problems) > len(shown):
        notes.append(f"{file}: ... and {len(tally.problems) - len(shown)} more packet(s) "
                     "kptui could not take (not walked)")
    if tally.backwards:
        notes.append(f"{file}: {tally.backwards} packet(s) have a timestamp before the one "
                     "before them: walked at the earlier packet's time, in file order")
    if tally.untimed:
        notes.append(f"{file}: {tally.untimed} packet(s) from simple packet blocks carry no "
                     "timestamp: walked at the time of the packet before them")
    return notes
