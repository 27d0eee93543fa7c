"""Shared by the l4 extensions (u32, string, bpf, realm, TCPOPTSTRIP, ...): C's number
readers as libxtables and glibc use them, the kernel's refusal wording, and the
packet's bytes as the kernel's skb holds them.

The bytes: a match that reads raw bytes (u32, string) sees the IP datagram from
its header on (skb->data at the network header; skb->len is the IP total length).
kptui's packet gives exactly those bytes (Packet.to_bytes), except for a packet the
box itself sends: there Linux fills in the IP ID (ip_select_ident; raw_send_hdrinc
does it too when the ID is 0), hence the header checksum, and a TCP or UDP socket
leaves a partial checksum for the device to finish (CHECKSUM_PARTIAL). kptui does
not model those values, so ``wire_view`` marks them unknown and the matches stop
the walk rather than guess when their answer depends on them.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.xtopt import strtoul_prefix
from kptui.engine.numbers import scan_uint, split_uint

BLANKS = " \t\n\v\f\r"  # C's isspace() in the C locale
U32_MAX = 0xFFFFFFFF
_ULONG_MAX = (1 << 64) - 1


def kernel_refuses(why: str, errno: str = "Invalid argument") -> str:
    """A refusal the kernel makes when the rule is added (iptables then says only
    ``RULE_APPEND failed (errno)``): the kernel's reason, then its errno."""
    return f"{why} (the kernel refuses it: {errno})"


def strtoui(text: str, hi: int = U32_MAX) -> tuple[int | None, str]:
    """xtables_strtoui(text, &end, ..., 0, hi): base 0, leading blanks skipped, a
    minus sign refused; (value, rest) or (None, text) when it reads no number in range."""
    if text.lstrip(BLANKS).startswith("-"):
        return None, text
    value, rest = strtoul_prefix(text)
    if value is None or value > hi:
        return None, text
    return value, rest


def strtoui_whole(text: str, hi: int = U32_MAX) -> int | None:
    """xtables_strtoui(text, NULL, ...): the whole text must be the number."""
    value, rest = strtoui(text, hi)
    return value if value is not None and rest == "" else None


def scanf_uint(text: str, bits: int) -> tuple[int | None, str]:
    """glibc sscanf's %u / %hu / %hhu: blanks skipped, one sign, decimal digits read
    as strtoul does (an overflow is ULONG_MAX, a minus negates modulo 2^64), then cut
    to ``bits`` bits (``65537`` read by %hu is 1, checked on this machine's glibc)."""
    body = text.lstrip(BLANKS)
    neg = body.startswith("-")
    if body[:1] in "+-":
        body = body[1:]
    digits, rest = split_uint(body, 10)
    if not digits:
        return None, text
    value = scan_uint(digits, 10)
    assert value is not None
    if value > _ULONG_MAX:
        value = _ULONG_MAX
    elif neg:
        value = -value & _ULONG_MAX
    return value & ((1 << bits) - 1), rest


# include/linux/ctype.h __toupper over lib/ctype.c's _ctype: a-z and the Latin-1
# lower-case letters 0xdf..0xff (but 0xf7) are lower case and lose 0x20.
KERNEL_TOUPPER = bytes(c - 32 if 0x61 <= c <= 0x7A or (0xDF <= c <= 0xFF and c != 0xF7)
                       else c for c in range(256))


def local_origin(pkt: Any) -> bool:
    """Sent by the box itself: no input device yet (OUTPUT, POSTROUTING) or looped
    back through lo."""
    return pkt.meta.iif in ("", "lo")


def wire_view(pkt: Any) -> tuple[bytes, bytes | None]:
    """The datagram's bytes and, for a packet the box sends, a mask of the same
    length with 0xff on the bytes whose value Linux chooses (None: all known)."""
    data = pkt.to_bytes()
    if not local_origin(pkt):
        return data, None
    unknown = bytearray(len(data))
    spans = [(4, 6), (10, 12)]  # IP ID and header checksum
    ihl = 20 + len(pkt.ip.options)
    if pkt.ip.frag_offset == 0 and pkt.ip.proto in (6, 17):
        at = ihl + (16 if pkt.ip.proto == 6 else 6)  # the TCP / UDP checksum
        spans.append((at, at + 2))
    for lo, hi in spans:
        unknown[lo:min(hi, len(data))] = b"\xff" * max(0, min(hi, len(data)) - lo)
    return data, bytes(unknown)


UNKNOWN_BYTES = ("the IP ID, header checksum or TCP/UDP checksum of a packet the box "
                 "sends, which Linux fills in and kptui does not model")
