"""Read IPv4 packets as the kernel put them on the wire, into DESIGN.md's `out` shape.

Deliberately independent of kptui.engine.packet: the kernel's answer must not
be read through the code it checks, or a parsing bug would agree with itself.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp"}
TCP_FLAG_LETTERS = "FSRPAUEC"  # bit 0 (FIN) .. bit 7 (CWR), as format_tcp_flags writes them
ECHO_TYPES = {0, 8}


def tcp_flags_text(bits: int) -> str:
    """0x12 -> "SA": one letter per set bit, FIN first, as kptui prints flags; 0 is "NONE"."""
    return "".join(ch for i, ch in enumerate(TCP_FLAG_LETTERS) if bits & (1 << i)) or "NONE"


def ip_out(data: bytes) -> dict[str, Any]:
    """The `out` object of an IPv4 datagram (without mark: a mark is not on the wire)."""
    if len(data) < 20 or data[0] >> 4 != 4:
        raise ValueError("not an IPv4 datagram")
    ihl = (data[0] & 0x0F) * 4
    tos, ttl, proto = data[1], data[8], data[9]
    src, dst = socket.inet_ntoa(data[12:16]), socket.inet_ntoa(data[16:20])
    frag = struct.unpack("!H", data[6:8])[0] & 0x1FFF
    out: dict[str, Any] = {"src": src, "dst": dst, "proto": PROTO_NAMES.get(proto, str(proto))}
    l4 = data[ihl:]
    if proto in (6, 17) and frag == 0 and len(l4) >= 4:
        out["sport"], out["dport"] = struct.unpack("!HH", l4[:4])
    out["ttl"], out["tos"] = ttl, tos
    if proto == 6 and frag == 0 and len(l4) >= 14:
        out["flags"] = tcp_flags_text(l4[13])
        if len(l4) >= 20 and l4[12] >> 4 > 5:
            out["tcp_options"] = tcp_options_text(l4[20:(l4[12] >> 4) * 4])
    if proto == 1 and frag == 0 and len(l4) >= 2:
        out["icmp_type"], out["icmp_code"] = l4[0], l4[1]
        if l4[0] in ECHO_TYPES and len(l4) >= 6:
            out["icmp_id"] = struct.unpack("!H", l4[4:6])[0]
    return out


def tcp_options_text(opts: bytes) -> str:
    """TCP option bytes in the text of kptui's tcp.options field (kptui.engine.tcpopts
    documents it), written here again from the bytes: eol, nop, mss N, wscale N, sackOK,
    sack L:R ..., TS val N ecr N, opt KIND [0xDATA], and bytes 0xHEX for the rest of a
    header from a byte that starts no well-formed option."""
    items: list[str] = []
    i = 0
    while i < len(opts):
        kind = opts[i]
        if kind < 2:
            items.append(("eol", "nop")[kind])
            i += 1
            continue
        size = opts[i + 1] if i + 1 < len(opts) else 0
        if size < 2 or i + size > len(opts):
            items.append("bytes 0x" + opts[i:].hex())
            break
        body = opts[i + 2:i + size]
        words = [struct.unpack("!I", body[k:k + 4])[0] for k in range(0, len(body) - 3, 4)]
        if kind == 2 and size == 4:
            items.append(f"mss {struct.unpack('!H', body)[0]}")
        elif kind == 3 and size == 3:
            items.append(f"wscale {body[0]}")
        elif kind == 4 and size == 2:
            items.append("sackOK")
        elif kind == 5 and size > 2 and (size - 2) % 8 == 0:
            items.append("sack " + " ".join(f"{words[k]}:{words[k + 1]}"
                                            for k in range(0, len(words), 2)))
        elif kind == 8 and size == 10:
            items.append(f"TS val {words[0]} ecr {words[1]}")
        else:
            items.append(f"opt {kind}" + (f" 0x{body.hex()}" if body else ""))
        i += size
    return ",".join(items)


def ip_ident(data: bytes) -> int:
    return struct.unpack("!H", data[4:6])[0]


def quoted_ident(data: bytes) -> int | None:
    """The IP ID of the header an ICMP error quotes, if this is one."""
    ihl = (data[0] & 0x0F) * 4
    if data[9] != 1 or len(data) < ihl + 8 + 20 or data[ihl] not in (3, 4, 5, 11, 12):
        return None
    return ip_ident(data[ihl + 8:])


def with_ident(data: bytes, ident: int) -> bytes:
    """The same datagram with another IP ID and its header checksum recomputed."""
    ihl = (data[0] & 0x0F) * 4
    head = bytearray(data[:ihl])
    head[4:6] = struct.pack("!H", ident)
    head[10:12] = b"\0\0"
    head[10:12] = struct.pack("!H", checksum(bytes(head)))
    return bytes(head) + data[ihl:]


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def trace_out(fields: dict[str, str]) -> dict[str, Any]:
    """The `out` object from a PACKET line of the trace (where the packet never hit a wire)."""
    proto = fields.get("PROTO", "").lower()
    if not proto:
        proto = "tcp" if "SYN" in fields or "ACK" in fields or "RST" in fields or "FIN" in fields \
            else ("udp" if "SPORT" in fields else "")
    out: dict[str, Any] = {"src": fields.get("SRC", ""), "dst": fields.get("DST", ""),
                           "proto": proto or "?"}
    if "SPORT" in fields:
        out["sport"], out["dport"] = int(fields["SPORT"]), int(fields["DPORT"])
    out["ttl"] = int(fields.get("TTL", "0"))
    out["tos"] = int(fields.get("TOS", "0x0"), 16)
    out["mark"] = int(fields.get("MARK", "0x0"), 16)
    return out
