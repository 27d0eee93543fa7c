"""Capture files in and out: classic pcap and pcapng, read and written with dpkt.

dpkt (a small pure-Python packet library, no dependencies of its own) parses every
file header, record header, pcapng block and option here, and writes kptui's pcap
files (`kptui replay --pcap`). It was chosen over scapy for its size and speed: a 195 KB
wheel (1.9 MB installed) against 2.8 MB (24 MB), imported in about 30 ms against 85 ms
(scapy.utils alone), while both read a 10,000-packet capture in 13-15 ms
(benchmarks/bench_pcap.py --libraries).

dpkt's own Reader classes are not used to walk the file: on a truncated file they stop,
or hand back a short record, without a word, and the pcapng one reads only the first
interface and drops each packet's interface and direction, which tell kptui where a
packet arrived. So this module steps from record to record itself and hands each
header and block to dpkt's classes; every error then names the byte where the file
goes wrong (``CaptureError``: file, byte offset, what was expected).

Formats: https://www.tcpdump.org/manpages/pcap-savefile.5.txt (classic pcap, either
byte order, micro- or nanosecond timestamps, and the "modified" pcap of old Red Hat
tcpdump), and the pcapng draft (draft-ietf-opsawg-pcapng: section headers, interface
descriptions with if_name/if_tsresol/if_tsoffset, enhanced, simple and obsolete
packet blocks, epb_flags' direction bits).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import dpkt
from dpkt import pcap, pcapng

from kptui.engine.errors import KptuiError

SNAPLEN = 65535  # what kptui writes: a whole IPv4 datagram always fits
# libpcap's MAXIMUM_SNAPLEN (pcap-int.h): a record claiming more is a damaged file
MAX_RECORD = 262144
# libpcap's largest pcapng block (sf-pcapng.c: MAX_BLOCKSIZE is 16 MiB)
MAX_BLOCK = 16 * 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"
NS = 1_000_000_000

_LE_MAGICS = (pcap.PMUDPCT_MAGIC, pcap.PMUDPCT_MAGIC_NANO, pcap.PACPDOM_MAGIC)
_NANO_MAGICS = (pcap.TCPDUMP_MAGIC_NANO, pcap.PMUDPCT_MAGIC_NANO)
_PCAPNG_BLOCKS = {  # block type -> (big-endian class, little-endian class)
    pcapng.PCAPNG_BT_IDB: (pcapng.InterfaceDescriptionBlock, pcapng.InterfaceDescriptionBlockLE),
    pcapng.PCAPNG_BT_EPB: (pcapng.EnhancedPacketBlock, pcapng.EnhancedPacketBlockLE),
    pcapng.PCAPNG_BT_PB: (pcapng.PacketBlock, pcapng.PacketBlockLE),
}
_OPT_EPB_FLAGS = 2  # epb_flags: bits 0-1 are the direction
_DIRECTIONS = {0: "", 1: "in", 2: "out", 3: ""}
# What dpkt raises on bytes it cannot read (struct.error from a short unpack, a bad
# comment option's UnicodeDecodeError); a CaptureError at the block's offset then.
_DPKT_ERRORS = (dpkt.UnpackError, ValueError, IndexError)


class CaptureError(KptuiError):
    """A capture file that is not one, or is damaged: where (byte offset) and what."""

    def __init__(self, file: str, offset: int, message: str) -> None:
        self.file, self.offset, self.message = file, offset, message
        super().__init__(f"{file}: byte {offset}: {message}")


@dataclass(frozen=True, slots=True)
class Interface:
    """A capture interface: pcapng's interface description, or a classic pcap's header."""

    number: int  # pcapng: its interface id in its section (0 for classic pcap)
    linktype: int
    snaplen: int
    name: str = ""  # pcapng if_name ("eth0"), "" when the file does not say


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured frame, as the file holds it."""

    number: int  # 1-based, as tcpdump -# and Wireshark count frames
    offset: int  # byte offset of its record (pcap) or block (pcapng) in the file
    data_offset: int  # byte offset of its first captured byte
    ts_ns: int | None  # capture time, ns since the epoch (None: a simple packet block)
    data: bytes
    wire_len: int  # the frame's length on the wire (more than len(data) when cut)
    iface: Interface
    direction: str = ""  # pcapng epb_flags: "in", "out", or "" when not said


@dataclass(frozen=True, slots=True)
class Record:
    """A frame to write: seconds and microseconds of its timestamp, its bytes."""

    seconds: int
    micros: int
    data: bytes


def frames(data: bytes, *, file: str) -> Iterator[Frame]:
    """The frames of a classic pcap or pcapng file's bytes, in file order.

    CaptureError for anything that is not a capture file or is damaged: wrong magic,
    truncated header, record or block, record or block lengths that cannot be.
    """
    head = bytes(data[:4])
    if len(head) < 4:
        raise CaptureError(file, 0, f"{len(data)} bytes is too short for a capture file "
                                    "(a pcap file header is 24 bytes)")
    if head[:2] == GZIP_MAGIC:
        raise CaptureError(file, 0, "a gzip-compressed file, not a capture: gunzip it first")
    if head == b"\x0a\x0d\x0d\x0a":
        return _pcapng_frames(data, file)
    magic = int.from_bytes(head, "big")
    if magic in pcap.MAGIC_TO_PKT_HDR:
        return _pcap_frames(data, file, magic)
    raise CaptureError(file, 0, f"magic {head.hex()} is not a capture file's (pcap starts "
                                "a1b2c3d4 or d4c3b2a1, nanosecond pcap a1b23c4d or 4d3cb2a1, "
                                "pcapng 0a0d0d0a)")


def _pcap_frames(data: bytes, file: str, magic: int) -> Iterator[Frame]:
    little = magic in _LE_MAGICS
    size = pcap.FileHdr.__hdr_len__
    if len(data) < size:
        raise CaptureError(file, len(data), f"the file ends inside its {size}-byte pcap "
                                            "header")
    fh = (pcap.LEFileHdr if little else pcap.FileHdr)(bytes(data[:size]))
    if fh.v_major != pcap.PCAP_VERSION_MAJOR:
        raise CaptureError(file, 4, f"pcap version {fh.v_major}.{fh.v_minor}, expected 2.x")
    iface = Interface(0, fh.linktype & 0xFFFF, fh.snaplen)
    header = pcap.MAGIC_TO_PKT_HDR[magic]
    hlen = header.__hdr_len__
    scale = 1 if magic in _NANO_MAGICS else 1000
    pos, number, total = size, 0, len(data)
    while pos < total:
        number += 1
        if total - pos < hlen:
            raise CaptureError(file, pos, f"frame {number}: the file ends inside its "
                                          f"{hlen}-byte record header ({total - pos} bytes)")
        rec = header(bytes(data[pos:pos + hlen]))
        start = pos + hlen
        if rec.caplen > MAX_RECORD:
            raise CaptureError(file, pos + 8, f"frame {number}: bad record length "
                                              f"{rec.caplen} (at most {MAX_RECORD})")
        if total - start < rec.caplen:
            raise CaptureError(file, start, f"frame {number}: truncated: the record says "
                                            f"{rec.caplen} bytes, {total - start} are left")
        yield Frame(number, pos, start, rec.tv_sec * NS + rec.tv_usec * scale,
                    bytes(data[start:start + rec.caplen]), rec.len, iface)
        pos = start + rec.caplen


class _Section:
    """One pcapng section: its byte order and the interfaces described so far."""

    def __init__(self, little: bool) -> None:
        self.little = little
        self.order = "<" if little else ">"
        self.interfaces: list[tuple[Interface, int, int]] = []  # (iface, tsresol, offset s)


def _pcapng_frames(data: bytes, file: str) -> Iterator[Frame]:
    total = len(data)
    pos, number = 0, 0
    section: _Section | None = None
    while pos < total:
        if total - pos < 12:
            raise CaptureError(file, pos, f"the file ends inside a block header "
                                          f"({total - pos} bytes, a block is 12 or more)")
        kind_bytes = bytes(data[pos:pos + 4])
        if kind_bytes == b"\x0a\x0d\x0d\x0a":  # a new section: its own byte order
            little = _byte_order(data, pos, file)
        elif section is None:
            raise CaptureError(file, pos, "a pcapng file must start with a section header")
        else:
            little = section.little
        order = "little" if little else "big"
        kind = int.from_bytes(kind_bytes, order)
        length = int.from_bytes(data[pos + 4:pos + 8], order)
        if length < 12 or length % 4 or length > MAX_BLOCK:
            raise CaptureError(file, pos + 4, f"bad block length {length} (a multiple of 4, "
                                              f"12 to {MAX_BLOCK})")
        if total - pos < length:
            raise CaptureError(file, pos, f"truncated: the block says {length} bytes, "
                                          f"{total - pos} are left")
        block = bytes(data[pos:pos + length])
        if int.from_bytes(block[-4:], order) != length:
            raise CaptureError(file, pos + length - 4, "the block's two lengths differ "
                                                       f"({length} at its start)")
        if kind == pcapng.PCAPNG_BT_SHB:
            section = _section(block, little, pos, file)
        elif kind == pcapng.PCAPNG_BT_IDB:
            section.interfaces.append(_interface(block, section, pos, file))
        elif kind in (pcapng.PCAPNG_BT_EPB, pcapng.PCAPNG_BT_PB, pcapng.PCAPNG_BT_SPB):
            number += 1
            yield _packet_block(kind, block, section, pos, number, file)
        pos += length


def _byte_order(data: bytes, pos: int, file: str) -> bool:
    """A section header's byte order (True: little-endian), from its byte-order magic."""
    bom = bytes(data[pos + 8:pos + 12])
    if int.from_bytes(bom, "big") == pcapng.BYTE_ORDER_MAGIC:
        return False
    if int.from_bytes(bom, "little") == pcapng.BYTE_ORDER_MAGIC:
        return True
    raise CaptureError(file, pos + 8, f"byte-order magic {bom.hex()} is not pcapng's "
                                      "1a2b3c4d")


def _section(block: bytes, little: bool, pos: int, file: str) -> _Section:
    cls = pcapng.SectionHeaderBlockLE if little else pcapng.SectionHeaderBlock
    try:
        shb = cls(block)
    except _DPKT_ERRORS:
        raise CaptureError(file, pos, "a damaged section header block") from None
    if shb.v_major != pcapng.PCAPNG_VERSION_MAJOR:
        raise CaptureError(file, pos + 12, f"pcapng version {shb.v_major}.{shb.v_minor}, "
                                           "expected 1.x")
    return _Section(little)


def _block(kind: int, block: bytes, section: _Section, pos: int, file: str):  # noqa: ANN202
    big, little = _PCAPNG_BLOCKS[kind]
    try:
        return (little if section.little else big)(block)
    except _DPKT_ERRORS:
        raise CaptureError(file, pos, "a damaged block (its fields or options do not fit "
                                      "its length)") from None


def _interface(block: bytes, section: _Section, pos: int, file: str) -> tuple[Interface, int,
                                                                               int]:
    idb = _block(pcapng.PCAPNG_BT_IDB, block, section, pos, file)
    name, tsresol, tsoffset = "", 6, 0
    for opt in idb.opts:
        if opt.code == pcapng.PCAPNG_OPT_IF_NAME:
            name = opt.data.split(b"\0", 1)[0].decode("utf-8", "replace")
        elif opt.code == pcapng.PCAPNG_OPT_IF_TSRESOL and len(opt.data) >= 1:
            tsresol = opt.data[0]
        elif opt.code == pcapng.PCAPNG_OPT_IF_TSOFFSET and len(opt.data) >= 8:
            tsoffset = int.from_bytes(opt.data[:8], "little" if section.little else "big",
                                      signed=True)
    iface = Interface(len(section.interfaces), idb.linktype, idb.snaplen, name)
    return iface, tsresol, tsoffset


def _ticks_ns(ticks: int, tsresol: int) -> int:
    """if_tsresol: the low 7 bits are a negative power of 10, or of 2 with the top bit."""
    exp = tsresol & 0x7F
    if tsresol & 0x80:
        return (ticks * NS) >> exp
    return ticks * NS // 10 ** exp if exp <= 9 else ticks // 10 ** (exp - 9)


def _packet_block(kind: int, block: bytes, section: _Section, pos: int, number: int,
                  file: str) -> Frame:
    if kind == pcapng.PCAPNG_BT_SPB:  # no interface id (the first), no time, no options
        if not section.interfaces:
            raise CaptureError(file, pos, f"frame {number}: a packet block before any "
                                          "interface description block")
        iface = section.interfaces[0][0]
        wire = int.from_bytes(block[8:12], "little" if section.little else "big")
        cap = min(wire, iface.snaplen or wire, len(block) - 16)
        return Frame(number, pos, pos + 12, None, block[12:12 + cap], wire, iface)
    head = 28  # EPB and PB alike: type, length, interface, time (2 words), two lengths
    caplen = int.from_bytes(block[20:24], "little" if section.little else "big")
    if caplen > len(block) - head - 4:
        raise CaptureError(file, pos + 20, f"frame {number}: bad packet length {caplen} "
                                           f"(the block holds {len(block) - head - 4})")
    epb = _block(kind, block, section, pos, file)
    if epb.iface_id >= len(section.interfaces):
        raise CaptureError(file, pos + 8, f"frame {number}: interface {epb.iface_id}, but "
                                          f"the section describes {len(section.interfaces)}")
    iface, tsresol, tsoffset = section.interfaces[epb.iface_id]
    ts = _ticks_ns((epb.ts_high << 32) | epb.ts_low, tsresol) + tsoffset * NS
    direction = ""
    for opt in getattr(epb, "opts", ()):
        if opt.code == _OPT_EPB_FLAGS and len(opt.data) >= 4:
            flags = int.from_bytes(opt.data[:4], "little" if section.little else "big")
            direction = _DIRECTIONS[flags & 3]
    return Frame(number, pos, pos + head, ts, bytes(epb.pkt_data), epb.pkt_len, iface,
                 direction)


def write_pcap(records: Iterable[Record], *, linktype: int) -> bytes:
    """The bytes of a classic pcap file of ``records`` (microsecond timestamps, the
    host's byte order, as libpcap writes), by dpkt's writer."""
    out = io.BytesIO()
    writer = pcap.Writer(out, snaplen=SNAPLEN, linktype=linktype)
    for rec in records:
        writer.writepkt_time(rec.data[:SNAPLEN], rec.seconds + rec.micros / 1e6)
    return out.getvalue()
