"""The packet model: an IPv4 datagram, its L4 header and the skb metadata.

Headers are plain slotted dataclasses so the rule matcher can read
``pkt.ip.dst`` or ``pkt.l4.dport`` directly (walking 20,000 rules must stay
cheap). Everything a user may edit goes through ``FIELDS``: one ``FieldSpec``
per path with its parser, validator and formatter, so the editor, the
debugger's expressions and the session journal all agree on what a value is.

``to_bytes``/``from_bytes`` produce and read real wire bytes with the
checksums the kernel computes (RFC 1071; TCP/UDP over the pseudo header; a
computed UDP checksum of 0 is sent as 0xffff), checked against packets a
6.18 kernel sent in a network namespace (tests/test_packet.py).

A datagram read from partial bytes (the quote inside an ICMP error, a first
fragment) keeps a ``WireInfo``: its declared lengths and the part of its
checksums that the missing bytes contribute. Edits then update the checksum
like the kernel's incremental update does, and the bytes come back exactly.
"""

from __future__ import annotations

import difflib
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from ipaddress import AddressValueError, IPv4Address
from typing import Any

from kptui.engine.errors import FieldError, UnsupportedError
from kptui.engine.numbers import U64, NumberError, parse_uint, scan_uint
from kptui.engine.tcpopts import check_size, format_options, parse_options

# The fields an IPv4 route lookup reads (flowi4: daddr, saddr, tos, mark): ipt_mangle_out
# routes again when one changes; after routing, an edit of one changes no route.
ROUTING_KEYS = ("meta.mark", "ip.src", "ip.dst", "ip.tos")

# include/net/tcp.h (TCPHDR_*)
TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_PSH = 0x08
TCP_ACK = 0x10
TCP_URG = 0x20
TCP_ECE = 0x40
TCP_CWR = 0x80

# The letters used in "SA"-style flag text, in output order, and the words.
_FLAG_LETTERS = (("F", TCP_FIN), ("S", TCP_SYN), ("R", TCP_RST), ("P", TCP_PSH),
                 ("A", TCP_ACK), ("U", TCP_URG), ("E", TCP_ECE), ("C", TCP_CWR))
_FLAG_WORDS = {"FIN": TCP_FIN, "SYN": TCP_SYN, "RST": TCP_RST, "PSH": TCP_PSH,
               "ACK": TCP_ACK, "URG": TCP_URG, "ECE": TCP_ECE, "CWR": TCP_CWR,
               # iptables-extensions(8) tcp --tcp-flags: ALL is FIN,SYN,RST,PSH,ACK,URG
               "ALL": 0x3F, "NONE": 0}

PROTO_NUMBERS = {"icmp": 1, "tcp": 6, "udp": 17}
PROTO_NAMES = {v: k for k, v in PROTO_NUMBERS.items()}

# ICMP types whose rest-of-header is an identifier and a sequence number (RFC 792, 950).
ICMP_ID_TYPES = frozenset({0, 8, 13, 14, 15, 16, 17, 18})
# ICMP errors: they quote the offending datagram's IP header and first bytes.
ICMP_ERROR_TYPES = frozenset({3, 4, 5, 11, 12})
ICMP_TYPE_NAMES = {
    0: "echo-reply", 3: "destination-unreachable", 4: "source-quench", 5: "redirect",
    8: "echo-request", 9: "router-advertisement", 10: "router-solicitation",
    11: "time-exceeded", 12: "parameter-problem", 13: "timestamp-request",
    14: "timestamp-reply", 15: "info-request", 16: "info-reply",
    17: "address-mask-request", 18: "address-mask-reply",
}
# iptables -p icmp --help names for destination-unreachable codes.
ICMP_UNREACH_NAMES = {
    0: "network-unreachable", 1: "host-unreachable", 2: "protocol-unreachable",
    3: "port-unreachable", 4: "fragmentation-needed", 5: "source-route-failed",
    6: "network-unknown", 7: "host-unknown", 9: "network-prohibited",
    10: "host-prohibited", 11: "TOS-network-unreachable", 12: "TOS-host-unreachable",
    13: "communication-prohibited", 14: "host-precedence-violation", 15: "precedence-cutoff",
}
_ICMP_TYPES_BY_NAME = {v: k for k, v in ICMP_TYPE_NAMES.items()}

# net/ipv4/icmp.c __icmp_send: an error is at most 576 bytes, so it quotes at most
# 576 - 20 (IP header, plus any options) - 8 (ICMP header) bytes of the offending packet.
ICMP_ERROR_MAX = 576

# Types sent by sockets (ping, timestamp): IP_PMTUDISC_WANT is the socket default
# (net.ipv4.ip_no_pmtu_disc=0), so DF is set. The kernel's own ICMP socket answers
# (echo reply, errors) with IP_PMTUDISC_DONT: no DF. Checked on kernel 6.18.
_ICMP_KERNEL_SENT = frozenset({0, 14, 16, 18}) | ICMP_ERROR_TYPES


# ---------------------------------------------------------------------------
# Headers


@dataclass(slots=True)
class IPv4Header:
    """The IPv4 header. ``tos`` is the whole byte (DSCP << 2 | ECN)."""

    src: IPv4Address
    dst: IPv4Address
    proto: int
    ttl: int = 64
    tos: int = 0
    id: int = 0  # noqa: A003 - the header field's name
    df: bool = False
    mf: bool = False
    frag_offset: int = 0  # in 8-byte units
    options: bytes = b""


@dataclass(slots=True)
class TCPHeader:
    sport: int
    dport: int
    seq: int = 0
    ack: int = 0
    flags: int = 0
    window: int = 64240
    urgptr: int = 0
    options: bytes = b""

    def copy(self) -> TCPHeader:
        return replace(self)


@dataclass(slots=True)
class UDPHeader:
    sport: int
    dport: int
    # A UDP checksum of 0 on the wire means "none" (RFC 768); kept so bytes round-trip.
    no_checksum: bool = False

    def copy(self) -> UDPHeader:
        return replace(self)


@dataclass(slots=True)
class ICMPHeader:
    """An ICMP header. ``id``/``seq`` are the 4-byte rest-of-header, split in two
    16-bit halves; they are an id and a sequence only for echo-like types (for
    frag-needed ``seq`` is the next-hop MTU, for redirect the pair is the gateway)."""

    type: int  # noqa: A003 - the header field's name
    code: int
    id: int = 0  # noqa: A003
    seq: int = 0
    inner: Packet | None = None  # the quoted datagram of an ICMP error

    def copy(self) -> ICMPHeader:
        return ICMPHeader(self.type, self.code, self.id, self.seq,
                          self.inner.copy() if self.inner is not None else None)


L4Header = TCPHeader | UDPHeader | ICMPHeader


@dataclass(slots=True)
class Meta:
    """skb metadata: never on the wire."""

    iif: str = ""
    oif: str = ""
    mark: int = 0
    ctmark: int = 0  # with an entry attached, the field path meta.ctmark is the entry's mark
    ctstate: str = ""  # NEW, ESTABLISHED, RELATED, INVALID, UNTRACKED; '' before conntrack
    priority: int = 0
    classid: int = 0
    # skb->_nfct: the conntrack entry (kptui.engine.conntrack.Conn, shared, not copied)
    # and its ctinfo (NEW, ESTABLISHED, RELATED, ESTABLISHED_REPLY, RELATED_REPLY,
    # UNTRACKED, or INVALID for "no entry"); set by conntrack, never on the wire.
    ct: Any = field(default=None, compare=False, repr=False)
    ctinfo: str = ""
    tstamp: float = 0.0  # when the packet arrives, on the box's clock (scenario `time`)
    # skb->sk, what -m owner looks at: "user" (a process's socket: its file's fsuid and
    # fsgid are uid and gid, no supplementary groups), "kernel" (the kernel's own ICMP
    # socket, no file) or "" (no socket: a forwarded packet, REJECT's TCP reset)
    sock: str = ""
    uid: int = 0
    gid: int = 0
    # skb->sk of a received packet: the box's socket -j TPROXY assigned it
    # (kptui.engine.sockets.Socket), which -m socket then takes; None: none
    tproxy: Any = field(default=None, compare=False, repr=False)
    # -j TEE (ext/tee.py): on a copy nf_dup_ipv4 routed and sends, the next hop whose
    # link-layer address it goes to; '' on every other packet (those are routed as usual)
    tee: str = ""
    # current->in_nf_duplicate while this packet is sent: a TEE copy, and what the kernel
    # sends while sending one (its REJECT answer); TEE does not copy it again
    in_dup: bool = False


@dataclass(frozen=True, slots=True)
class WireInfo:
    """How to reproduce a datagram read from partial bytes (ICMP quote, first fragment).

    ``ip_len``/``l4_len`` are the lengths its headers declare, ``avail`` how many
    bytes of it exist; ``csum_rest`` is the one's complement sum that the missing
    bytes add to the L4 checksum (``csum_raw`` when the checksum field itself is
    cut), ``ip_rest`` the same for a quoted IP header whose checksum was off.
    """

    ip_len: int
    avail: int
    l4_len: int | None = None
    csum_rest: int | None = None
    csum_raw: int | None = None
    ip_rest: int | None = None


# ---------------------------------------------------------------------------
# Checksums (RFC 1071)


def _sum16(data: bytes) -> int:
    if len(data) & 1:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def _fold(s: int) -> int:
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def internet_checksum(data: bytes) -> int:
    """RFC 1071 checksum: the one's complement of the one's complement sum."""
    return ~_sum16(data) & 0xFFFF


def _rest_from(csum: int, known: int) -> int:
    """The sum the missing bytes contribute: ~csum minus the known sum, modulo 0xffff
    (one's complement arithmetic), with 0 for "nothing missing" so that an all-zero
    datagram keeps its 0xffff checksum."""
    return ((~csum & 0xFFFF) - known) % 0xFFFF


# ---------------------------------------------------------------------------
# Text forms


def parse_tcp_flags(text: str) -> int:
    """Parse "SA", "SYN,ACK", "syn ack", "NONE", "ALL" or a number ("0x12") into flag bits.

    A number is read like every kptui integer (C's strtoul base 0, as Wireshark's
    ``tcp.flags == 0x12``): decimal, 0x hex, a leading 0 octal; ASCII digits only.
    """
    t = text.strip()
    if t[:1] in _ASCII_DIGITS:
        try:
            return parse_uint(t, 0, 0xFF, base=0, what="tcp flags")
        except NumberError as err:
            if err.out_of_range:
                shown = t if len(t) <= 40 else t[:37] + "..."
                raise FieldError(f"tcp flags: {shown} is out of range 0..255") from None
            raise FieldError(f"tcp flags: {_shown(t)} is not a number ({INT_FORMS})") from None
    # upper() of ASCII only: "\u00df".upper() is "SS", which must not read as SYN
    tokens = [tok.upper() if tok.isascii() else tok for tok in re.split(r"[\s,|+]+", t) if tok]
    if not tokens:
        raise FieldError("tcp flags: empty; use letters like SA, names like SYN,ACK, or NONE")
    letters = dict(_FLAG_LETTERS)
    bits = 0
    for tok in tokens:
        if tok in _FLAG_WORDS:
            bits |= _FLAG_WORDS[tok]
        elif all(c in letters for c in tok):
            for c in tok:
                bits |= letters[c]
        else:
            raise FieldError(
                f"tcp flags: {tok!r} is not a flag; use letters F S R P A U E C, "
                "names FIN SYN RST PSH ACK URG ECE CWR, ALL or NONE"
            )
    return bits


def format_tcp_flags(flags: int) -> str:
    """Flag bits as "SA"-style letters (F S R P A U E C order); 0 is "NONE"."""
    text = "".join(letter for letter, bit in _FLAG_LETTERS if flags & bit)
    return text or "NONE"


def parse_classid(text: str) -> int:
    """A tc handle as tc(8) reads it (iproute2 get_tc_classid): "1:10" (hex), ":10",
    "1:", a bare hex number, "root" or "none".

    Each half is strtoul base 16, as in tc: a 0x prefix, a leading blank or ``+`` are
    taken, ``01:016`` is 1:16 (checked with tc, iproute2 6.1). Unlike tc, a bare number
    over 32 bits is refused rather than truncated, and so is a minus sign.
    """
    t = text.strip().lower()
    if t == "root":
        return 0xFFFFFFFF
    if t == "none":
        return 0
    major, colon, minor = t.partition(":")
    bad = FieldError(f"classid: {text!r} is not a tc class id like 1:10 (hex major:minor)")
    if not colon:
        value = scan_uint(major, 16, strtoul=True)
        if value is None:
            raise bad
        if value > 0xFFFFFFFF:
            raise FieldError(f"classid: {_shown(text)} is out of range (32 bits)")
        return value
    if not major and not minor:
        raise bad
    halves = []
    for half in (major, minor):
        value = scan_uint(half, 16, strtoul=True) if half else 0
        if value is None:
            raise bad
        halves.append(value)
    if halves[0] > 0xFFFF or halves[1] > 0xFFFF:
        raise FieldError(f"classid: {_shown(text)}: major and minor must each be at most ffff")
    return halves[0] << 16 | halves[1]


def format_classid(value: int) -> str:
    """A tc handle as tc(8) prints it (iproute2 print_tc_classid)."""
    if value == 0xFFFFFFFF:
        return "root"
    if value == 0:
        return "none"
    major, minor = value >> 16, value & 0xFFFF
    if major == 0:
        return f":{minor:x}"
    if minor == 0:
        return f"{major:x}:"
    return f"{major:x}:{minor:x}"


def icmp_type_name(icmp_type: int, code: int) -> str:
    if icmp_type == 3 and code in ICMP_UNREACH_NAMES:
        return ICMP_UNREACH_NAMES[code]
    return ICMP_TYPE_NAMES.get(icmp_type, f"type {icmp_type} code {code}")


# ---------------------------------------------------------------------------
# Field types: parse text, check a value, format a value


# How kptui's own syntax (edits, conditions, the compose dialog) reads an integer: as C,
# iptables and Wireshark display filters do (strtoul base 0).
INT_FORMS = "decimal, 0x hex or 0-prefixed octal"
_ASCII_DIGITS = frozenset("0123456789")


def _shown(text: str) -> str:
    """A token in an error: repr, cut when very long (a 5000-digit number)."""
    return repr(text) if len(text) <= 40 else repr(text[:37] + "...")


def _int_parser(path: str, text: str) -> int:
    """Syntax only (the field's check does the range): ``010`` is 8, ``0x1f`` 31, as in
    C and iptables; ``08``, ``8²`` or Arabic-Indic digits are refused with the token."""
    t = text.strip()
    value = scan_uint(t, 0)
    if value is None:
        raise FieldError(f"{path}: {_shown(text)} is not a number ({INT_FORMS})")
    if value > U64:  # beyond every field: say so without printing its 500 digits
        raise FieldError(f"{path}: {_shown(t)} is out of range (more than 64 bits)")
    return value


def _make_int_check(lo: int, hi: int, parse: Callable[[str, str], int]):
    def check(path: str, value: Any) -> int:
        if isinstance(value, str):
            value = parse(path, value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError(f"{path}: expected a number, got {value!r}")
        if not lo <= value <= hi:
            shown = f"{value:#x}" if hi == 0xFFFFFFFF else str(value)
            bound = f"{lo}..{hi:#x}" if hi == 0xFFFFFFFF else f"{lo}..{hi}"
            raise FieldError(f"{path}: {shown} is out of range {bound}")
        return value
    return check


def _ipv4_parse(path: str, text: str) -> IPv4Address:
    try:
        return IPv4Address(text.strip())
    except (AddressValueError, ValueError):
        raise FieldError(
            f"{path}: {text!r} is not an IPv4 address (a dotted quad like 192.0.2.1)"
        ) from None


def _ipv4_check(path: str, value: Any) -> IPv4Address:
    if isinstance(value, str):
        return _ipv4_parse(path, value)
    if not isinstance(value, IPv4Address):
        raise FieldError(f"{path}: expected an IPv4 address, got {value!r}")
    return value


_TRUE = {"1", "true", "yes", "on", "set"}
_FALSE = {"0", "false", "no", "off", "clear"}


def _bool_parse(path: str, text: str) -> bool:
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise FieldError(f"{path}: {text!r} is not a yes/no value (use 1/0, true/false, on/off)")


def _bool_check(path: str, value: Any) -> bool:
    if isinstance(value, str):
        return _bool_parse(path, value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise FieldError(f"{path}: expected true or false, got {value!r}")


def _flags_parse(path: str, text: str) -> int:
    try:
        return parse_tcp_flags(text)
    except FieldError as e:
        raise FieldError(f"{path}: {str(e).removeprefix('tcp flags: ')}") from None


def _classid_parse(path: str, text: str) -> int:
    try:
        return parse_classid(text)
    except FieldError as e:
        raise FieldError(f"{path}: {str(e).removeprefix('classid: ')}") from None


# include/linux/netdevice.h dev_valid_name: 1..15 bytes, not "." or "..", no '/', ':' or space.
def _iface_check(path: str, value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError(f"{path}: expected an interface name, got {value!r}")
    if value == "":
        return value
    try:
        size = len(value.encode())
    except UnicodeEncodeError:  # a lone surrogate: no bytes a device name could hold
        raise FieldError(f"{path}: {value!r} is not a valid interface name") from None
    if size > 15:
        raise FieldError(f"{path}: {value!r} is longer than 15 characters (IFNAMSIZ)")
    if value in (".", "..") or any(c in value for c in "/:") or any(c.isspace() for c in value):
        raise FieldError(f"{path}: {value!r} is not a valid interface name")
    return value


def _str_check(path: str, value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError(f"{path}: expected text, got {value!r}")
    return value


def _tcpopts_check(path: str, value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        check_size(path, bytes(value))
        return format_options(bytes(value))
    if isinstance(value, str):
        return format_options(parse_options(value, path))
    raise FieldError(f"{path}: expected TCP options like 'mss 1460,nop,nop,sackOK', "
                     f"got {value!r}")


def _icmp_type_parse(path: str, text: str) -> int:
    t = text.strip().lower()
    if t in _ICMP_TYPES_BY_NAME:
        return _ICMP_TYPES_BY_NAME[t]
    return _int_parser(path, text)


@dataclass(frozen=True, slots=True)
class _Type:
    parse: Callable[[str, str], Any]  # (path, text) -> value
    check: Callable[[str, Any], Any]  # (path, value) -> normalised value
    fmt: Callable[[Any], str]


def _int_type(lo: int, hi: int, fmt: Callable[[Any], str] = str,
              parse: Callable[[str, str], int] = _int_parser) -> _Type:
    return _Type(parse, _make_int_check(lo, hi, parse), fmt)


_U8 = _int_type(0, 0xFF)
_U16 = _int_type(0, 0xFFFF)
_U32 = _int_type(0, 0xFFFFFFFF)
_HEX32 = _int_type(0, 0xFFFFFFFF, fmt=lambda v: f"{v:#x}")
_TYPES: dict[str, _Type] = {
    "ipv4": _Type(_ipv4_parse, _ipv4_check, str),
    "bool": _Type(_bool_parse, _bool_check, lambda v: "1" if v else "0"),
    "tcpflags": _Type(_flags_parse, _make_int_check(0, 0xFF, _flags_parse), format_tcp_flags),
    "iface": _Type(lambda p, t: _iface_check(p, t.strip()), _iface_check, str),
    "classid": _Type(_classid_parse, _make_int_check(0, 0xFFFFFFFF, _classid_parse),
                     format_classid),
    "str": _Type(lambda p, t: t, _str_check, str),
    # the value is the options' canonical text (kptui.engine.tcpopts), "" for none
    "tcpoptions": _Type(lambda p, t: format_options(parse_options(t, p)),
                        _tcpopts_check, lambda v: v or "none"),
}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One editable (or read-only) packet field, addressed by its path."""

    path: str
    type: str  # noqa: A003 - ipv4 u8 u16 u32 bool tcpflags iface classid str tcpoptions
    parse: Callable[[str], Any]  # text -> value (syntax only)
    validate: Callable[[Any], Any]  # value -> checked, normalised value
    format: Callable[[Any], str]  # noqa: A003 - value -> text
    editable: bool
    doc: str
    read: Callable[[Packet], Any] = field(repr=False, compare=False)
    write: Callable[[Packet, Any], None] | None = field(repr=False, compare=False, default=None)


# ---------------------------------------------------------------------------
# The packet


@dataclass(slots=True)
class Packet:
    ip: IPv4Header
    l4: TCPHeader | UDPHeader | ICMPHeader | None = None
    payload: bytes = b""
    meta: Meta = field(default_factory=Meta)
    wire: WireInfo | None = field(default=None, compare=False, repr=False)

    # -- convenience ------------------------------------------------------

    @property
    def proto_name(self) -> str:
        return PROTO_NAMES.get(self.ip.proto, str(self.ip.proto))

    @property
    def sport(self) -> int | None:
        l4 = self.l4
        return l4.sport if isinstance(l4, (TCPHeader, UDPHeader)) else None

    @property
    def dport(self) -> int | None:
        l4 = self.l4
        return l4.dport if isinstance(l4, (TCPHeader, UDPHeader)) else None

    @property
    def length(self) -> int:
        """IP total length: what the header's length field says."""
        if self.wire is not None:
            return self.wire.ip_len
        return 20 + len(self.ip.options) + self._body_len()

    def _body_len(self) -> int:
        l4 = self.l4
        n = len(self.payload)
        if l4 is None:
            return n
        if isinstance(l4, TCPHeader):
            return 20 + len(l4.options) + n
        if isinstance(l4, UDPHeader):
            return 8 + n
        return 8 + len(self._quote()) + n

    def copy(self) -> Packet:
        """A deep copy: editing it never changes this packet."""
        l4 = self.l4
        return Packet(replace(self.ip), l4.copy() if l4 is not None else None,
                      self.payload, replace(self.meta), self.wire)

    # -- fields -----------------------------------------------------------

    def get(self, path: str) -> Any:
        return _spec(path).read(self)

    def set(self, path: str, value: Any) -> tuple[Any, Any]:  # noqa: A003
        """Validate and set a field; returns (old, new). Refusals raise FieldError."""
        spec = _spec(path)
        if spec.write is None or not spec.editable:
            raise FieldError(f"{path} is read-only: {spec.doc}")
        old = spec.read(self)
        new = spec.validate(value)
        spec.write(self, new)
        return old, new

    def set_text(self, path: str, text: str) -> tuple[Any, Any]:
        spec = _spec(path)
        if spec.write is None or not spec.editable:
            raise FieldError(f"{path} is read-only: {spec.doc}")
        return self.set(path, spec.parse(text))

    # -- text ---------------------------------------------------------------

    def _flow(self) -> str:
        ip, l4 = self.ip, self.l4
        if isinstance(l4, (TCPHeader, UDPHeader)):
            s = f"{self.proto_name} {ip.src}:{l4.sport} -> {ip.dst}:{l4.dport}"
            if isinstance(l4, TCPHeader):
                s += f" [{format_tcp_flags(l4.flags)}]"
            return s
        if isinstance(l4, ICMPHeader):
            s = f"icmp {ip.src} -> {ip.dst} {icmp_type_name(l4.type, l4.code)}"
            if l4.type in ICMP_ID_TYPES:
                s += f" id {l4.id} seq {l4.seq}"
            if l4.inner is not None:
                s += f" for ({l4.inner._flow()})"
            return s
        name = self.proto_name if self.ip.proto in PROTO_NAMES else f"proto {self.ip.proto}"
        return f"{name} {ip.src} -> {ip.dst}"

    def summary(self) -> str:
        """One line: "tcp 198.51.100.7:40000 -> 203.0.113.2:8080 [S] ttl 64"."""
        s = f"{self._flow()} ttl {self.ip.ttl}"
        if self.ip.tos:
            s += f" tos {self.ip.tos:#04x}"
        if self.ip.frag_offset or self.ip.mf:
            s += f" frag {self.ip.frag_offset * 8}{'+' if self.ip.mf else ''}"
        if self.meta.mark:
            s += f" mark {self.meta.mark:#x}"
        return s

    def out_dict(self) -> dict[str, Any]:
        """The ``out`` object of ``kptui trace --json`` (DESIGN.md)."""
        ip, l4 = self.ip, self.l4
        d: dict[str, Any] = {"src": str(ip.src), "dst": str(ip.dst), "proto": self.proto_name}
        if isinstance(l4, (TCPHeader, UDPHeader)):
            d["sport"] = l4.sport
            d["dport"] = l4.dport
            if isinstance(l4, TCPHeader):
                d["flags"] = format_tcp_flags(l4.flags)
                if l4.options:  # only then: the key is newer than the shape (DESIGN.md)
                    d["tcp_options"] = format_options(l4.options)
        elif isinstance(l4, ICMPHeader):
            d["icmp_type"] = l4.type
            d["icmp_code"] = l4.code
            if l4.type in (0, 8):
                d["icmp_id"] = l4.id
        d["ttl"] = ip.ttl
        d["tos"] = ip.tos
        d["mark"] = self.meta.mark
        return d

    # -- wire -----------------------------------------------------------------

    def _quote(self) -> bytes:
        """The quoted datagram of an ICMP error, as many bytes as Linux's icmp_send sends."""
        l4 = self.l4
        if not isinstance(l4, ICMPHeader) or l4.inner is None:
            return b""
        data = l4.inner.to_bytes()
        if l4.inner.wire is None:
            data = data[: ICMP_ERROR_MAX - 20 - len(self.ip.options) - 8]
        return data

    def to_bytes(self) -> bytes:
        """The IPv4 datagram with the checksums the kernel computes."""
        ip, w = self.ip, self.wire
        _check_options(ip.options, "ip.options", 40)
        ihl = 20 + len(ip.options)
        seg, csum_at, pseudo = self._segment()
        total = w.ip_len if w is not None else ihl + len(seg)
        if total > 0xFFFF:
            raise FieldError(f"ip.len: {total} bytes is more than IPv4 allows (65535)")
        if csum_at is not None:
            seg = self._finish_l4(seg, csum_at, pseudo, total - ihl)
        hdr = self._ip_header(total)
        out = hdr + seg
        return out[: w.avail] if w is not None else out

    def _ip_header(self, total: int) -> bytes:
        ip = self.ip
        ff = (ip.df << 14) | (ip.mf << 13) | ip.frag_offset
        hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | (20 + len(ip.options)) >> 2, ip.tos, total,
                          ip.id, ff, ip.ttl, ip.proto, 0, ip.src.packed, ip.dst.packed)
        hdr += ip.options
        s = _sum16(hdr)
        if self.wire is not None and self.wire.ip_rest is not None:
            s = _fold(s + self.wire.ip_rest)
        return hdr[:10] + struct.pack("!H", ~s & 0xFFFF) + hdr[12:]

    def _segment(self) -> tuple[bytes, int | None, bool]:
        """L4 bytes (checksum 0), the checksum offset, whether a pseudo header counts."""
        l4, payload = self.l4, self.payload
        if l4 is None:
            return payload, None, False
        if isinstance(l4, TCPHeader):
            _check_options(l4.options, "tcp.options", 40)
            doff = (20 + len(l4.options)) >> 2
            hdr = struct.pack("!HHIIBBHHH", l4.sport, l4.dport, l4.seq, l4.ack, doff << 4,
                              l4.flags, l4.window, 0, l4.urgptr)
            return hdr + l4.options + payload, 16, True
        if isinstance(l4, UDPHeader):
            return struct.pack("!HHHH", l4.sport, l4.dport, 0, 0) + payload, 6, True
        hdr = struct.pack("!BBHHH", l4.type, l4.code, 0, l4.id, l4.seq)
        return hdr + self._quote() + payload, 2, False

    def _known_sum(self, seg: bytes, pseudo: bool, l4_len: int) -> int:
        if not pseudo:
            return _sum16(seg)
        ph = self.ip.src.packed + self.ip.dst.packed + struct.pack("!BBH", 0, self.ip.proto,
                                                                   l4_len & 0xFFFF)
        return _sum16(ph + seg)

    def _finish_l4(self, seg: bytes, at: int, pseudo: bool, l4_len: int) -> bytes:
        w, l4 = self.wire, self.l4
        udp = isinstance(l4, UDPHeader)
        if udp:
            ulen = w.l4_len if w is not None and w.l4_len is not None else l4_len
            if ulen > 0xFFFF:
                raise FieldError(f"udp length {ulen} is more than 65535")
            seg = seg[:4] + struct.pack("!H", ulen) + seg[6:]
            l4_len = ulen
        if udp and l4.no_checksum:
            csum = 0
        elif w is not None and w.csum_raw is not None:
            csum = w.csum_raw
        else:
            s = self._known_sum(seg, pseudo, l4_len)
            if w is not None and w.csum_rest is not None:
                s = _fold(s + w.csum_rest)
            csum = ~s & 0xFFFF
            if udp and csum == 0:
                csum = 0xFFFF  # RFC 768: a computed 0 is sent as all ones
        return seg[:at] + struct.pack("!H", csum) + seg[at + 2:]

    @classmethod
    def from_bytes(cls, data: bytes) -> Packet:
        """Parse an IPv4 datagram. Truncated or inconsistent bytes raise FieldError."""
        return _parse(bytes(data), quoted=False)

    # -- building -------------------------------------------------------------

    @classmethod
    def build(cls, proto: str | int = "tcp", *, src: str | IPv4Address,
              dst: str | IPv4Address, sport: int | None = None, dport: int | None = None,
              flags: str | int = "S", ttl: int = 64, tos: int = 0, icmp_type: int | None = None,
              icmp_code: int = 0, icmp_id: int = 0, length: int | None = None, mark: int = 0,
              iif: str = "", ident: int = 0, tcp_options: str | bytes = b"") -> Packet:
        """A packet as a Linux host sends it.

        DF is set for TCP, UDP and socket-sent ICMP (echo, timestamp, ... requests):
        sockets default to IP_PMTUDISC_WANT while net.ipv4.ip_no_pmtu_disc is 0. The
        kernel's own ICMP answers (echo reply, errors) go out without DF. Checked on
        kernel 6.18 in a netns. The IP id defaults to 0 (Linux picks a per-flow
        counter, which kptui does not model; pass ``ident``). ``length=None`` gives
        headers only; ``length=N`` pads the payload with zeros to N bytes in total.
        A local packet (``iif=""``) comes from a process's socket (meta.sock "user",
        uid and gid 0: root's, as `kptui verify` sends it). ``tcp_options``: a TCP
        header's options, as text (``mss 1460,nop,nop,sackOK``) or bytes; none by default.
        """
        pnum = _proto_number(proto)
        if tcp_options and pnum != 6:
            raise FieldError(f"tcp_options: a {PROTO_NAMES.get(pnum, pnum)} packet has no "
                             "tcp options")
        ip = IPv4Header(
            src=_ipv4_check("src", src), dst=_ipv4_check("dst", dst), proto=pnum,
            ttl=_spec("ip.ttl").validate(ttl), tos=_spec("ip.tos").validate(tos),
            id=_spec("ip.id").validate(ident),
        )
        l4: L4Header | None = None
        if pnum in (6, 17):
            name = PROTO_NAMES[pnum]
            if sport is None or dport is None:
                which = "sport" if sport is None else "dport"
                raise FieldError(f"{which}: a {name} packet needs a {which}")
            if icmp_type is not None:
                raise FieldError(f"icmp_type: a {name} packet has no icmp type")
            sp = _spec(f"{name}.sport").validate(sport)
            dp = _spec(f"{name}.dport").validate(dport)
            if pnum == 6:
                fl = flags if isinstance(flags, int) else parse_tcp_flags(flags)
                l4 = TCPHeader(sp, dp, flags=_spec("tcp.flags").validate(fl))
                if tcp_options:
                    l4.options = parse_options(_tcpopts_check("tcp_options", tcp_options),
                                               "tcp_options")
            else:
                l4 = UDPHeader(sp, dp)
            ip.df = True
        elif pnum == 1:
            if sport is not None or dport is not None:
                raise FieldError(f"{'sport' if sport is not None else 'dport'}: icmp has no ports")
            t = 8 if icmp_type is None else _spec("icmp.type").validate(icmp_type)
            l4 = ICMPHeader(t, _spec("icmp.code").validate(icmp_code),
                            id=_spec("icmp.id").validate(icmp_id))
            ip.df = t not in _ICMP_KERNEL_SENT
        else:
            if sport is not None or dport is not None or icmp_type is not None:
                raise FieldError(f"proto {pnum}: ports and icmp types need tcp, udp or icmp")
            ip.df = True
        pkt = cls(ip, l4, b"", Meta(iif=_iface_check("iif", iif),
                                    mark=_spec("meta.mark").validate(mark),
                                    sock="" if iif else "user"))
        if length is not None:
            minimal = pkt.length
            if isinstance(length, bool) or not isinstance(length, int):
                raise FieldError(f"length: expected a number of bytes, got {length!r}")
            if length < minimal:
                raise FieldError(f"length: {length} is shorter than the {minimal} bytes of headers")
            if length > 0xFFFF:
                raise FieldError(f"length: {length} is more than an IPv4 datagram holds (65535)")
            pkt.payload = bytes(length - minimal)
        return pkt


def _proto_number(proto: str | int) -> int:
    if isinstance(proto, int) and not isinstance(proto, bool):
        if 0 <= proto <= 255:
            return proto
        raise FieldError(f"proto: {proto} is out of range 0..255")
    if isinstance(proto, str):
        p = proto.strip().lower()
        if p in PROTO_NUMBERS:
            return PROTO_NUMBERS[p]
        number = scan_uint(p, 0)
        if number is not None and number <= 255:
            return number
    raise FieldError(f"proto: {proto!r} is not tcp, udp, icmp or a protocol number 0..255")


def _check_options(opts: bytes, what: str, limit: int) -> None:
    if len(opts) % 4 or len(opts) > limit:
        raise FieldError(f"{what}: {len(opts)} bytes; must be a multiple of 4, at most {limit}")


# ---------------------------------------------------------------------------
# Parsing


class ChecksumError(FieldError):
    """A TCP/UDP/ICMP checksum that is not what the datagram's bytes sum to, with where it
    is (``offset`` in the datagram) and the right value: a capture taken on the sending
    host, before checksum offload fills the field in, shows one on every packet
    (kptui.pcapin puts the right one in, and says so)."""

    def __init__(self, message: str, *, offset: int, want: int) -> None:
        super().__init__(message)
        self.offset = offset
        self.want = want


def _parse(data: bytes, *, quoted: bool) -> Packet:
    where = "icmp.inner.ip" if quoted else "ip"
    n = len(data)
    if n < 20:
        raise FieldError(f"{where}: {n} bytes is too short for an IPv4 header (20 bytes)")
    version, ihl = data[0] >> 4, (data[0] & 0x0F) * 4
    if version == 6:
        raise UnsupportedError("IPv6 packets")
    if version != 4:
        raise FieldError(f"{where}: version {version}, not an IPv4 packet")
    if ihl < 20:
        raise FieldError(f"{where}: header length {ihl} bytes is less than the minimum 20")
    if n < ihl:
        raise FieldError(f"{where}: header says {ihl} bytes of header, only {n} bytes given")
    tos, total, ident, ff, ttl, proto, csum = struct.unpack("!xBHHHBBH", data[:12])
    if ff & 0x8000:
        raise UnsupportedError("the reserved IP flag bit")
    if total < ihl:
        raise FieldError(f"{where.replace('ip', 'ip.len')}: {total} is less than the header "
                         f"length {ihl}")
    ip = IPv4Header(IPv4Address(data[12:16]), IPv4Address(data[16:20]), proto, ttl, tos, ident,
                    bool(ff & 0x4000), bool(ff & 0x2000), ff & 0x1FFF, data[20:ihl])
    if quoted:
        data = data[:total]
        partial = True
        ip_rest = _rest_from(csum, _sum16(data[:10] + b"\0\0" + data[12:ihl])) or None
    else:
        if total != n:
            raise FieldError(f"ip.len: the header says {total} bytes but {n} were given")
        expect = internet_checksum(data[:10] + b"\0\0" + data[12:ihl])
        if csum != expect:
            raise FieldError(f"ip.checksum: {csum:#06x} is wrong, the header sums to {expect:#06x}")
        partial = ip.mf
        ip_rest = None
    rest = data[ihl:]
    pkt = Packet(ip)
    if ip.frag_offset:  # a later fragment: no L4 header in it
        pkt.payload = rest
        if quoted:
            pkt.wire = WireInfo(total, len(data), ip_rest=ip_rest)
        return pkt
    _parse_l4(pkt, rest, partial=partial, quoted=quoted)
    if partial:
        _remember_partial(pkt, data, total, ihl, ip_rest)
    elif pkt.l4 is not None:
        seg, at, pseudo = pkt._segment()
        if at is not None:
            got = struct.unpack("!H", rest[at:at + 2])[0]
            want = struct.unpack("!H", pkt._finish_l4(seg, at, pseudo, len(rest))[at:at + 2])[0]
            if got != want:
                raise ChecksumError(f"{pkt.proto_name}.checksum: {got:#06x} is wrong, "
                                    f"should be {want:#06x}", offset=ihl + at, want=want)
    return pkt


def _parse_l4(pkt: Packet, rest: bytes, *, partial: bool, quoted: bool) -> None:
    proto, n = pkt.ip.proto, len(rest)
    where = ("icmp.inner." if quoted else "") + PROTO_NAMES.get(proto, "")
    if proto == 6:
        need = 8 if partial else 20
        if n < need:
            raise FieldError(f"{where}: {n} bytes is too short for a tcp header ({need} bytes)")
        doff = rest[12] >> 4 if n > 12 else 5
        if n > 12 and rest[12] & 0x0F:
            raise UnsupportedError("tcp reserved/AE header bits")
        hlen = doff * 4
        if doff < 5:
            raise FieldError(f"{where}: data offset {hlen} bytes is less than the minimum 20")
        if not partial and hlen > n:
            raise FieldError(f"{where}: header says {hlen} bytes, only {n} given")
        hdr = rest[:hlen].ljust(hlen, b"\0")
        sport, dport, seq, ack, flags, window, urg = struct.unpack("!HHIIxBHxxH", hdr[:20])
        pkt.l4 = TCPHeader(sport, dport, seq, ack, flags, window, urg, hdr[20:hlen])
        pkt.payload = rest[hlen:]
    elif proto == 17:
        if n < 8:
            raise FieldError(f"{where}: {n} bytes is too short for a udp header (8 bytes)")
        sport, dport, ulen, csum = struct.unpack("!HHHH", rest[:8])
        if not partial:
            if ulen > n or ulen < 8:
                raise FieldError(f"{where}.length: {ulen} does not fit the {n} bytes of ip payload")
            if ulen < n:
                raise UnsupportedError("udp datagrams shorter than their ip payload")
        pkt.l4 = UDPHeader(sport, dport, no_checksum=csum == 0)
        pkt.payload = rest[8:]
    elif proto == 1:
        need = 4 if partial else 8
        if n < need:
            raise FieldError(f"{where}: {n} bytes is too short for an icmp header (8 bytes)")
        t, code, _csum, ident, seq = struct.unpack("!BBHHH", rest[:8].ljust(8, b"\0"))
        pkt.l4 = icmp = ICMPHeader(t, code, ident, seq)
        body = rest[8:]
        if t in ICMP_ERROR_TYPES and body and not quoted:
            if len(body) < 20:
                raise FieldError(f"icmp.inner.ip: {len(body)} bytes is too short for the quoted "
                                 "IPv4 header (20 bytes)")
            take = min(len(body), struct.unpack("!H", body[2:4])[0])
            icmp.inner = _parse(body[:take], quoted=True)
            body = body[take:]
        pkt.payload = body
    else:
        pkt.payload = rest


def _remember_partial(pkt: Packet, data: bytes, total: int, ihl: int, ip_rest: int | None) -> None:
    """Record what the missing bytes contribute, so to_bytes gives these bytes back."""
    avail = len(data)
    rest = data[ihl:]
    l4 = pkt.l4
    l4_len = None
    if isinstance(l4, UDPHeader):
        l4_len = struct.unpack("!H", rest[4:6])[0]
    pkt.wire = WireInfo(total, avail, l4_len, ip_rest=ip_rest)
    seg, at, pseudo = pkt._segment()
    if at is None:
        return
    if len(rest) < at + 2:  # the checksum field itself is cut: keep its bytes as they are
        raw = rest[at:at + 2].ljust(2, b"\0")
        pkt.wire = replace(pkt.wire, csum_raw=struct.unpack("!H", raw)[0])
        return
    if isinstance(l4, UDPHeader) and l4.no_checksum:
        return
    got = struct.unpack("!H", rest[at:at + 2])[0]
    seg = seg[:4] + struct.pack("!H", l4_len) + seg[6:] if l4_len is not None else seg
    known = pkt._known_sum(seg, pseudo, l4_len if l4_len is not None else total - ihl)
    pkt.wire = replace(pkt.wire, csum_rest=_rest_from(got, known))
    if pkt.to_bytes()[ihl + at:ihl + at + 2] != rest[at:at + 2]:
        # +0/-0: a checksum written as 0xffff where 0 is computed (or back); keep it as is
        pkt.wire = replace(pkt.wire, csum_rest=None, csum_raw=got)


# ---------------------------------------------------------------------------
# Field table


def _l4_of(pkt: Packet, kind: type, name: str, path: str) -> Any:
    l4 = pkt.l4
    if isinstance(l4, kind):
        return l4
    if pkt.ip.frag_offset and pkt.ip.proto == PROTO_NUMBERS[name]:
        raise FieldError(f"{path}: packet is a non-first fragment (offset "
                         f"{pkt.ip.frag_offset * 8}), it carries no {name} header")
    have = pkt.proto_name if pkt.ip.proto in PROTO_NAMES else f"ip proto {pkt.ip.proto}"
    raise FieldError(f"{path}: packet is {have}, not {name}")


# Byte range of each L4 field, to refuse fields an ICMP quote cut off.
_L4_SPAN = {"tcp.sport": 2, "tcp.dport": 4, "tcp.seq": 8, "tcp.ack": 12, "tcp.flags": 14,
            "tcp.window": 16, "udp.sport": 2, "udp.dport": 4, "icmp.type": 1, "icmp.code": 2,
            "icmp.id": 6, "icmp.seq": 8}


def _l4_field(name: str, kind: type, attr: str, path: str,
              only: Callable[[Any, str], None] | None = None):
    end = _L4_SPAN[path]

    def holder(pkt: Packet) -> Any:
        l4 = _l4_of(pkt, kind, name, path)
        w = pkt.wire
        if w is not None and 20 + len(pkt.ip.options) + end > w.avail:
            have = w.avail - 20 - len(pkt.ip.options)
            raise FieldError(f"{path}: not in the quoted bytes (only {have} bytes of the "
                             f"{name} header were quoted)")
        if only is not None:
            only(l4, path)
        return l4

    def read(pkt: Packet) -> Any:
        return getattr(holder(pkt), attr)

    def write(pkt: Packet, value: Any) -> None:
        setattr(holder(pkt), attr, value)

    return read, write


def _tcp_options_field():
    """tcp.options: read as text, written from text; the header grows or shrinks with
    them, except in a packet read from partial bytes, whose declared length is fixed."""
    path = "tcp.options"

    def holder(pkt: Packet) -> TCPHeader:
        tcp = _l4_of(pkt, TCPHeader, "tcp", path)
        w = pkt.wire
        if w is not None and 40 + len(pkt.ip.options) + len(tcp.options) > w.avail:
            raise FieldError(f"{path}: not all in the quoted bytes (the tcp header has "
                             f"{20 + len(tcp.options)} bytes, {w.avail - 20 - len(pkt.ip.options)}"
                             " bytes of the datagram's tcp part were quoted)")
        return tcp

    def read(pkt: Packet) -> str:
        return format_options(holder(pkt).options)

    def write(pkt: Packet, value: str) -> None:
        tcp = holder(pkt)
        new = parse_options(value, path)
        if pkt.wire is not None and len(new) != len(tcp.options):
            raise FieldError(f"{path}: this packet was read from partial bytes with a fixed "
                             f"length ({pkt.wire.ip_len}); its options can only be rewritten "
                             f"in place ({len(tcp.options)} bytes)")
        tcp.options = new

    return read, write


def _icmp_id_only(icmp: ICMPHeader, path: str) -> None:
    if icmp.type not in ICMP_ID_TYPES:
        raise FieldError(f"{path}: icmp type {icmp.type} ({icmp_type_name(icmp.type, icmp.code)})"
                         " has no id or sequence; only echo, timestamp, info and address-mask"
                         " messages do")


def _write_icmp_type(pkt: Packet, value: int) -> None:
    icmp = _l4_of(pkt, ICMPHeader, "icmp", "icmp.type")
    if icmp.inner is not None and value not in ICMP_ERROR_TYPES:
        raise FieldError(f"icmp.type: {ICMP_TYPE_NAMES.get(value, value)} is not an error "
                         "type, and this message quotes a packet; build a new packet instead")
    icmp.type = value


def _write_proto(pkt: Packet, value: int) -> None:
    old = pkt.ip.proto
    if value == old:
        return
    if old in PROTO_NAMES or value in PROTO_NAMES:
        frm = PROTO_NAMES.get(old, str(old))
        to = PROTO_NAMES.get(value, str(value))
        raise FieldError(f"ip.proto: changing {frm} to {to} needs a different transport "
                         "header; build a new packet instead")
    pkt.ip.proto = value


def _attr(obj: str, attr: str):
    if obj == "ip":
        return (lambda p: getattr(p.ip, attr)), (lambda p, v: setattr(p.ip, attr, v))
    return (lambda p: getattr(p.meta, attr)), (lambda p, v: setattr(p.meta, attr, v))


def _set_tos_bits(shift: int, mask: int):
    def write(p: Packet, v: int) -> None:
        p.ip.tos = (p.ip.tos & ~(mask << shift) & 0xFF) | (v << shift)
    return write


def _ip_checksum(p: Packet) -> int:
    return struct.unpack("!H", p._ip_header(p.length)[10:12])[0]


def _base_fields() -> list[tuple[str, _Type, str, Callable, Callable | None, str]]:
    """(path, type, type name, read, write or None, doc) for every field of one datagram."""
    t = _TYPES
    rows: list[tuple[str, _Type, str, Callable, Callable | None, str]] = []

    def ip(name: str, typ: _Type, tname: str, doc: str) -> None:
        r, w = _attr("ip", name)
        rows.append((f"ip.{name}", typ, tname, r, w, doc))

    ip("src", t["ipv4"], "ipv4", "source address")
    ip("dst", t["ipv4"], "ipv4", "destination address")
    rows.append(("ip.proto", _U8, "u8", lambda p: p.ip.proto, _write_proto,
                 "protocol number (6 tcp, 17 udp, 1 icmp); tcp/udp/icmp cannot be swapped"))
    ip("ttl", _U8, "u8", "time to live: hops left")
    ip("tos", _U8, "u8", "type-of-service byte: DSCP << 2 | ECN")
    rows.append(("ip.dscp", _int_type(0, 63), "u8", lambda p: p.ip.tos >> 2,
                 _set_tos_bits(2, 0x3F), "DSCP: the upper 6 bits of the tos byte"))
    rows.append(("ip.ecn", _int_type(0, 3), "u8", lambda p: p.ip.tos & 3,
                 _set_tos_bits(0, 3), "ECN: the lower 2 bits of the tos byte"))
    ip("id", _U16, "u16", "identification, used to reassemble fragments")
    ip("df", t["bool"], "bool", "don't-fragment flag")
    ip("mf", t["bool"], "bool", "more-fragments flag")
    ip("frag_offset", _int_type(0, 8191), "u16", "fragment offset in 8-byte units")
    rows.append(("ip.len", _U16, "u16", lambda p: p.length, None,
                 "total length, computed from the headers and payload"))
    rows.append(("ip.checksum", _U16, "u16", _ip_checksum, None,
                 "header checksum, computed as the kernel does"))
    for proto, kind in (("tcp", TCPHeader), ("udp", UDPHeader)):
        for port in ("sport", "dport"):
            r, w = _l4_field(proto, kind, port, f"{proto}.{port}")
            what = "source" if port == "sport" else "destination"
            rows.append((f"{proto}.{port}", _U16, "u16", r, w, f"{proto} {what} port"))
        if proto == "tcp":
            for attr, typ, tname, doc in (
                ("seq", _U32, "u32", "sequence number"),
                ("ack", _U32, "u32", "acknowledgement number"),
                ("flags", t["tcpflags"], "tcpflags", "flags: F S R P A U E C letters"),
                ("window", _U16, "u16", "receive window"),
            ):
                r, w = _l4_field("tcp", TCPHeader, attr, f"tcp.{attr}")
                rows.append((f"tcp.{attr}", typ, tname, r, w, f"tcp {doc}"))
            rows.append(("tcp.options", t["tcpoptions"], "tcpoptions", *_tcp_options_field(),
                         "tcp options, e.g. mss 1460,nop,nop,sackOK (none: no options)"))
    icmp_type = _int_type(0, 255, parse=_icmp_type_parse)
    r, _w = _l4_field("icmp", ICMPHeader, "type", "icmp.type")
    rows.append(("icmp.type", icmp_type, "u8", r, _write_icmp_type,
                 "icmp type (number or name like echo-request)"))
    r, w = _l4_field("icmp", ICMPHeader, "code", "icmp.code")
    rows.append(("icmp.code", _U8, "u8", r, w, "icmp code"))
    for attr in ("id", "seq"):
        r, w = _l4_field("icmp", ICMPHeader, attr, f"icmp.{attr}", _icmp_id_only)
        rows.append((f"icmp.{attr}", _U16, "u16", r, w,
                     f"icmp {'identifier' if attr == 'id' else 'sequence number'} (echo-like)"))
    return rows


def _meta_fields() -> list[tuple[str, _Type, str, Callable, Callable | None, str]]:
    t = _TYPES
    rows: list[tuple[str, _Type, str, Callable, Callable | None, str]] = []
    for name, typ, tname, ro, doc in (
        ("iif", t["iface"], "iface", False, "input interface ('' for a local packet)"),
        ("oif", t["iface"], "iface", False, "output interface (set by routing)"),
        ("mark", _HEX32, "u32", False, "netfilter mark (skb->mark)"),
        ("ctmark", _HEX32, "u32", False, "conntrack mark"),
        ("ctstate", t["str"], "str", True, "conntrack state, set by conntrack"),
        ("priority", _U32, "u32", False, "skb->priority, picks the qdisc band or class"),
        ("classid", t["classid"], "classid", False, "tc class id like 1:10 (CLASSIFY)"),
    ):
        r, w = _ctmark_attr() if name == "ctmark" else _attr("meta", name)
        rows.append((f"meta.{name}", typ, tname, r, None if ro else w, doc))
    return rows


def _ctmark_attr():
    """meta.ctmark is the attached conntrack entry's mark (ct->mark), if there is one."""
    def read(p: Packet) -> int:
        ct = p.meta.ct
        return ct.mark if ct is not None else p.meta.ctmark

    def write(p: Packet, v: int) -> None:
        if p.meta.ct is not None:
            p.meta.ct.mark = v
        p.meta.ctmark = v
    return read, write


def _inner(pkt: Packet, path: str) -> Packet:
    l4 = pkt.l4
    if not isinstance(l4, ICMPHeader):
        _l4_of(pkt, ICMPHeader, "icmp", path)
    if l4.inner is None:
        raise FieldError(f"{path}: this icmp message quotes no packet")
    return l4.inner


def _make_spec(path: str, typ: _Type, tname: str, read: Callable, write: Callable | None,
               doc: str) -> FieldSpec:
    def parse(text: str) -> Any:
        return typ.parse(path, text)

    def validate(value: Any) -> Any:
        return typ.check(path, value)

    return FieldSpec(path, tname, parse, validate, typ.fmt, write is not None, doc, read, write)


def _inner_spec(path: str, typ: _Type, tname: str, read: Callable, write: Callable | None,
                doc: str) -> FieldSpec:
    full = f"icmp.inner.{path}"

    def iread(p: Packet) -> Any:
        try:
            return read(_inner(p, full))
        except FieldError as e:
            raise _reword(e, path, full) from None

    def iwrite(p: Packet, v: Any) -> None:
        try:
            write(_inner(p, full), v)
        except FieldError as e:
            raise _reword(e, path, full) from None

    return _make_spec(full, typ, tname, iread, iwrite if write else None,
                      f"quoted packet: {doc}")


def _reword(e: FieldError, path: str, full: str) -> FieldError:
    msg = str(e)
    return FieldError(full + msg[len(path):] if msg.startswith(path) else msg)


def _build_fields() -> dict[str, FieldSpec]:
    fields: dict[str, FieldSpec] = {}
    base = _base_fields()
    for row in base + _meta_fields():
        fields[row[0]] = _make_spec(*row)
    for row in base:
        spec = _inner_spec(*row)
        fields[spec.path] = spec
    return fields


FIELDS: dict[str, FieldSpec] = _build_fields()


def _spec(path: str) -> FieldSpec:
    spec = FIELDS.get(path)
    if spec is None:
        near = difflib.get_close_matches(path, FIELDS, n=1)
        hint = f"; did you mean {near[0]}?" if near else ""
        raise FieldError(f"{path}: no such field{hint}")
    return spec
