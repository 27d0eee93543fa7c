"""Classic pcap files (what tcpdump -r and Wireshark open), for the walked packets.

The link type is LINKTYPE_RAW (101): each record is a bare IPv4 datagram, as
``Packet.to_bytes()`` gives it, with no link-layer header (the box has none to
show: kptui models IP). Timestamps are synthetic and only order the records:
packet N of the session is at second N, its k-th record at microsecond k; the
walks of the box's answers to packet N (REJECT's ICMP/RST, ICMP errors) follow
its own records in second N, the microseconds counting on.
Format: https://www.tcpdump.org/manpages/pcap-savefile.5.txt (microsecond magic
0xa1b2c3d4, version 2.4) and https://www.tcpdump.org/linktypes.html.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

MAGIC = 0xA1B2C3D4
LINKTYPE_RAW = 101
LINKTYPE_IPV4 = 228
SNAPLEN = 65535
_HEADER = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")


@dataclass(frozen=True, slots=True)
class Record:
    seconds: int
    micros: int
    data: bytes


def write(records: Iterable[Record], *, linktype: int = LINKTYPE_RAW) -> bytes:
    """The bytes of a pcap file holding ``records`` (little-endian, as libpcap writes)."""
    out = [_HEADER.pack(MAGIC, 2, 4, 0, 0, SNAPLEN, linktype)]
    for rec in records:
        data = rec.data[:SNAPLEN]
        out.append(_RECORD.pack(rec.seconds, rec.micros, len(data), len(rec.data)))
        out.append(data)
    return b"".join(out)


def read(data: bytes) -> tuple[int, list[Record]]:
    """(link type, records) of a classic pcap file in either byte order; ValueError if
    it is not one."""
    if len(data) < _HEADER.size:
        raise ValueError("too short for a pcap header")
    magic = struct.unpack_from("<I", data)[0]
    if magic == MAGIC:
        order = "<"
    elif magic == struct.unpack(">I", struct.pack("<I", MAGIC))[0]:
        order = ">"
    else:
        raise ValueError(f"not a classic microsecond pcap (magic {magic:#x})")
    header = struct.Struct(order + "IHHiIII")
    record = struct.Struct(order + "IIII")
    _magic, major, minor, _zone, _sig, _snap, linktype = header.unpack_from(data)
    if (major, minor) != (2, 4):
        raise ValueError(f"pcap version {major}.{minor}, expected 2.4")
    pos, out = header.size, []
    while pos < len(data):
        if pos + record.size > len(data):
            raise ValueError("truncated record header")
        sec, usec, incl, _orig = record.unpack_from(data, pos)
        pos += record.size
        if pos + incl > len(data):
            raise ValueError("truncated record")
        out.append(Record(sec, usec, data[pos:pos + incl]))
        pos += incl
    return linktype, out
