"""Classic pcap files (what tcpdump -r and Wireshark open), for the walked packets.

The link type is LINKTYPE_RAW (101): each record is a bare IPv4 datagram, as
``Packet.to_bytes()`` gives it, with no link-layer header (the box has none to
show: kptui models IP). Timestamps are synthetic and only order the records:
packet N of the session is at second N, its k-th record at microsecond k; the
walks of the box's answers to packet N (REJECT's ICMP/RST, ICMP errors) follow
its own records in second N, the microseconds counting on.
The file is written and read by kptui.pcapio (dpkt), the code `--pcap FILE` reads
captures with. Format: https://www.tcpdump.org/manpages/pcap-savefile.5.txt
(microsecond magic 0xa1b2c3d4, version 2.4) and https://www.tcpdump.org/linktypes.html.
"""

from __future__ import annotations

from collections.abc import Iterable

from kptui.pcapio import NS, SNAPLEN, CaptureError, Record, frames, write_pcap

__all__ = ["LINKTYPE_IPV4", "LINKTYPE_RAW", "SNAPLEN", "Record", "read", "write"]

LINKTYPE_RAW = 101
LINKTYPE_IPV4 = 228


def write(records: Iterable[Record], *, linktype: int = LINKTYPE_RAW) -> bytes:
    """The bytes of a pcap file holding ``records`` (the host's byte order, as libpcap
    writes)."""
    return write_pcap(records, linktype=linktype)


def read(data: bytes) -> tuple[int, list[Record]]:
    """(link type, records) of a classic pcap file in either byte order; ValueError if
    it is not one."""
    try:
        got = list(frames(data, file="pcap"))
    except CaptureError as err:
        raise ValueError(str(err)) from None
    linktype = got[0].iface.linktype if got else _linktype(data)
    return linktype, [Record((f.ts_ns or 0) // NS, (f.ts_ns or 0) % NS // 1000, f.data)
                      for f in got]


def _linktype(data: bytes) -> int:
    """The link type of a pcap file with no records (its header's last word)."""
    order = "little" if data[:4] == b"\xd4\xc3\xb2\xa1" else "big"
    return int.from_bytes(data[20:24], order) & 0xFFFF
