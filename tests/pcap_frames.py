"""Capture files for the tests, written with dpkt (the library kptui reads them with).

Link-layer headers as https://www.tcpdump.org/linktypes.html lays them out; pcapng
blocks through dpkt's own block classes, nanosecond timestamps (if_tsresol 9).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from dpkt import pcap, pcapng

ETHERNET, SLL, SLL2, RAW = 1, 113, 276, 101
BOX_MAC = bytes.fromhex("020000000001")
PEER_MAC = bytes.fromhex("020000000002")


def ether(payload: bytes, ethertype: int = 0x0800) -> bytes:
    return BOX_MAC + PEER_MAC + struct.pack("!H", ethertype) + payload


def vlan(payload: bytes, vid: int = 100) -> bytes:
    return BOX_MAC + PEER_MAC + struct.pack("!HHH", 0x8100, vid, 0x0800) + payload


def sll(payload: bytes, *, pkttype: int = 0, proto: int = 0x0800, hatype: int = 1) -> bytes:
    return struct.pack("!HHH8sH", pkttype, hatype, 6, PEER_MAC, proto) + payload


def sll2(payload: bytes, *, ifindex: int, pkttype: int = 0, proto: int = 0x0800,
         hatype: int = 1) -> bytes:
    return struct.pack("!HHIHBB8s", proto, 0, ifindex, hatype, pkttype, 6, PEER_MAC) + payload


def pcap_file(frames: Sequence[tuple[int, bytes]], *, linktype: int = ETHERNET,
              nano: bool = False, little: bool = True, snaplen: int = 262144) -> bytes:
    """A classic pcap of (nanoseconds since the epoch, frame bytes)."""
    magic = pcap.TCPDUMP_MAGIC_NANO if nano else pcap.TCPDUMP_MAGIC
    head, rec = (pcap.LEFileHdr, pcap.LEPktHdr) if little else (pcap.FileHdr, pcap.PktHdr)
    out = [bytes(head(magic=magic, snaplen=snaplen, linktype=linktype))]
    for ts, data in frames:
        frac = ts % 10**9 if nano else ts % 10**9 // 1000
        out.append(bytes(rec(tv_sec=ts // 10**9, tv_usec=frac, caplen=len(data),
                             len=len(data))) + data)
    return b"".join(out)


def _opt(code: int, data: bytes) -> pcapng.PcapngOptionLE:
    return pcapng.PcapngOptionLE(code=code, data=data)


def pcapng_file(interfaces: Sequence[tuple[int, str]],
                packets: Sequence[tuple[int, int, bytes, int | None]]) -> bytes:
    """A pcapng of interfaces (link type, if_name or "") and packets (interface id,
    nanoseconds since the epoch, frame bytes, epb_flags or None)."""
    end = _opt(pcapng.PCAPNG_OPT_ENDOFOPT, b"")
    out = [bytes(pcapng.SectionHeaderBlockLE())]
    for linktype, name in interfaces:
        opts = [_opt(pcapng.PCAPNG_OPT_IF_TSRESOL, b"\x09")]
        if name:
            opts.insert(0, _opt(pcapng.PCAPNG_OPT_IF_NAME, name.encode()))
        out.append(bytes(pcapng.InterfaceDescriptionBlockLE(
            linktype=linktype, snaplen=262144, opts=[*opts, end])))
    for iface, ts, data, flags in packets:
        opts = [_opt(2, struct.pack("<I", flags)), end] if flags is not None else []
        out.append(bytes(pcapng.EnhancedPacketBlockLE(
            iface_id=iface, ts_high=ts >> 32, ts_low=ts & 0xFFFFFFFF, pkt_data=data,
            opts=opts)))
    return b"".join(out)
