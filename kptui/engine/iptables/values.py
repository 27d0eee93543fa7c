"""Value parsers and printers shared by matches and targets, with iptables' wording.

They raise ``BadValue``; the rule parser turns it into a ParseError that points
at the offending token.
"""

from __future__ import annotations

import functools
import re

from kptui.engine.numbers import scan_uint

_BARE = re.compile(r"[A-Za-z0-9_-]+")


class BadValue(Exception):
    """A value iptables would refuse; the message uses iptables' own words."""


# /etc/protocols (netbase) names iptables-save prints; `all` is protocol 0.
PROTOCOLS: dict[str, int] = {
    "all": 0, "icmp": 1, "igmp": 2, "ggp": 3, "ipencap": 4, "st": 5, "tcp": 6, "egp": 8,
    "igp": 9, "pup": 12, "udp": 17, "hmp": 20, "xns-idp": 22, "rdp": 27, "iso-tp4": 29,
    "dccp": 33, "xtp": 36, "ddp": 37, "idpr-cmtp": 38, "ipv6": 41, "ipv6-route": 43,
    "ipv6-frag": 44, "idrp": 45, "rsvp": 46, "gre": 47, "esp": 50, "ah": 51, "skip": 57,
    "ipv6-icmp": 58, "ipv6-nonxt": 59, "ipv6-opts": 60, "rspf": 73, "vmtp": 81, "eigrp": 88,
    "ospf": 89, "ax.25": 93, "ipip": 94, "etherip": 97, "encap": 98, "pim": 103,
    "ipcomp": 108, "vrrp": 112, "l2tp": 115, "isis": 124, "sctp": 132, "fc": 133,
    "mobility-header": 135, "udplite": 136, "mpls-in-ip": 137, "manet": 138, "hip": 139,
    "shim6": 140, "wesp": 141, "rohc": 142, "ethernet": 143,
}
PROTO_NAMES: dict[int, str] = {v: k for k, v in PROTOCOLS.items()}
PROTOCOLS.update({"icmpv6": 58, "ipv6-mh": 135, "mh": 135})

# A few /etc/services names so `--dport http` works as on a real box.
SERVICES: dict[str, int] = {
    "ftp-data": 20, "ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53,
    "bootps": 67, "bootpc": 68, "tftp": 69, "http": 80, "www": 80, "kerberos": 88,
    "pop3": 110, "sunrpc": 111, "ntp": 123, "netbios-ns": 137, "imap": 143, "snmp": 161,
    "snmp-trap": 162, "bgp": 179, "ldap": 389, "https": 443, "microsoft-ds": 445,
    "syslog": 514, "submission": 587, "ldaps": 636, "imaps": 993, "pop3s": 995,
    "openvpn": 1194, "mysql": 3306, "postgresql": 5432, "http-alt": 8080,
}


def parse_uint(text: str, lo: int, hi: int, what: str, *, base: int = 0) -> int:
    """An integer in [lo, hi] as xtables_strtoui reads it; ``what`` is the whole message.

    strtoul with base 0 by default (``0x`` hex, a leading ``0`` octal: iptables
    1.8.9 reads ``--dport 010`` as 8), leading blanks and one ``+`` allowed, ASCII
    digits only; libxt_limit and a few others pass base 10.
    """
    v = scan_uint(text, base, strtoul=True)
    if v is None or not lo <= v <= hi:
        raise BadValue(what)
    return v


# The canonical spellings "0".."255": a dict lookup is the fast path of every
# address of a 20,000-rule restore, and exactly what inet_pton accepts per octet.
_OCTET: dict[str, int] = {str(i): i for i in range(256)}


def _octet(text: str) -> int | None:
    """One part of a numeric address, base 0 as xtables_strtoui reads it (``010`` is 8)."""
    v = _OCTET.get(text)
    if v is None:
        v = scan_uint(text, 0, strtoul=True)
        if v is not None and v > 255:
            return None
    return v


def _dotted(text: str, *, is_mask: bool = False) -> int | None:
    """xtables' __numeric_to_ipaddr: ``a.b.c.d``, each part base 0 (``010.0.0.1`` is
    8.0.0.1, checked on iptables 1.8.9); an address (not a mask) may stop early and
    is completed with zeros (``10`` is 10.0.0.0, ``10.1`` 10.1.0.0)."""
    parts = text.split(".")
    if len(parts) == 4:
        get = _OCTET.get
        a, b, c, d = get(parts[0]), get(parts[1]), get(parts[2]), get(parts[3])
        if a is not None and b is not None and c is not None and d is not None:
            return (a << 24) | (b << 16) | (c << 8) | d
    elif is_mask or len(parts) > 4:
        return None
    v = 0
    for p in parts:
        octet = _octet(p)
        if octet is None:
            return None
        v = (v << 8) | octet
    return v << (8 * (4 - len(parts)))


def inet_pton(text: str) -> int | None:
    """A dotted quad as inet_pton reads it: four canonical decimal octets, nothing else
    (the NAT targets' parser: iptables 1.8.9 refuses ``--to-destination 010.0.0.1``)."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    get = _OCTET.get
    a, b, c, d = get(parts[0]), get(parts[1]), get(parts[2]), get(parts[3])
    if a is None or b is None or c is None or d is None:
        return None
    return (a << 24) | (b << 16) | (c << 8) | d


# Remembered by their text: a kube-proxy dump names the pod network and each cluster and
# endpoint address in several rules.
@functools.lru_cache(maxsize=16384)
def parse_net(text: str) -> tuple[int, int]:
    """``a.b.c.d[/len|/mask]`` -> (address & mask, mask). Hostnames are refused."""
    addr_s, _, mask_s = text.partition("/")
    addr = _dotted(addr_s)
    if addr is None:
        raise BadValue(f"host/network `{addr_s}' not found"
                       + ("" if addr_s and set(addr_s) <= _DOTTED_CHARS else
                          " (kptui does not resolve host names; write an address)"))
    if not mask_s:
        mask = 0xFFFFFFFF
    elif "." in mask_s:
        m = _dotted(mask_s, is_mask=True)
        if m is None:
            raise BadValue(f"invalid mask `{mask_s}' specified")
        mask = m
    else:
        n = _PREFIX.get(mask_s)
        if n is None:
            n = scan_uint(mask_s, 0, strtoul=True)  # xtables_strtoui(mask, 0, 32)
            if n is None or n > 32:
                raise BadValue(f"invalid mask `{mask_s}' specified")
        mask = (0xFFFFFFFF << (32 - n)) & 0xFFFFFFFF
    return addr & mask, mask


_DOTTED_CHARS = frozenset("0123456789.")
_PREFIX: dict[str, int] = {str(i): i for i in range(33)}


def parse_addr(text: str) -> int:
    v = _dotted(text)
    if v is None:
        raise BadValue(f"host/network `{text}' not found")
    return v


def ip_text(v: int) -> str:
    return f"{v >> 24}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}"


def net_text(addr: int, mask: int) -> str:
    """As iptables-save prints it: /len for contiguous masks, dotted otherwise."""
    inv = ~mask & 0xFFFFFFFF
    if inv & (inv + 1) == 0:
        return f"{ip_text(addr)}/{32 - inv.bit_length()}"
    return f"{ip_text(addr)}/{ip_text(mask)}"


def parse_proto(text: str) -> int:
    """xtables_parse_protocol: a number first (base 0, 0..255: ``-p 010`` is egp), then a name."""
    low = text.lower()
    if low in PROTOCOLS:
        return PROTOCOLS[low]
    v = scan_uint(text, 0, strtoul=True)
    if v is not None and v <= 255:
        return v
    raise BadValue(f'unknown protocol "{text}" specified')


def proto_text(num: int) -> str:
    return PROTO_NAMES.get(num, str(num))


# Port numbers already read, by their text: kube-proxy dumps repeat a few hundred
# port numbers tens of thousands of times, and a dict lookup is 30 times faster
# than reading the digits again. Bounded, since odd spellings (``+0080``) are endless.
_PORTS: dict[str, int] = {}
_PORTS_MAX = 8192


def port_number(text: str) -> int | None:
    """A port number as xtables_strtoui(..., 0, 65535) reads it (base 0), or None."""
    v = _PORTS.get(text)
    if v is None:
        v = scan_uint(text, 0, strtoul=True)
        if v is None or v > 65535:
            return None
        if len(_PORTS) < _PORTS_MAX:
            _PORTS[text] = v
    return v


def parse_port(text: str, services: dict[str, int] = SERVICES) -> int:
    """xtables_parse_port: a number (base 0: ``010`` is 8, ``0x50`` is 80), else a
    service of the protocol (``services``: getservbyname's answers for it)."""
    v = port_number(text)
    if v is None:
        v = services.get(text)
        if v is None:
            raise BadValue(f"invalid port/service `{text}' specified")
    return v


def parse_port_range(text: str, services: dict[str, int] = SERVICES) -> tuple[int, int]:
    """``a``, ``a:b``, ``:b``, ``a:`` -> (lo, hi) as xtables_parse_port_range does."""
    if ":" not in text:
        p = parse_port(text, services)
        return p, p
    a, _, b = text.partition(":")
    lo = parse_port(a, services) if a else 0
    hi = parse_port(b, services) if b else 65535
    if lo > hi:
        raise BadValue("invalid portrange (min > max)")
    return lo, hi


def range_text(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}:{hi}"


def save_string(value: str) -> str:
    """xtables_save_string: bare when only [A-Za-z0-9_-], else quoted with \\ escapes."""
    if _BARE.fullmatch(value):
        return value
    # backslashes first, so the ones added for quotes are not doubled again
    out = value.replace("\\", "\\\\").replace('"', '\\"').replace("'", "\\'")
    return f'"{out}"'


def parse_value_mask(text: str, what: str) -> tuple[int, int]:
    """``value[/mask]`` (32-bit, base 0) with a full mask by default."""
    v, sep, m = text.partition("/")
    value = parse_uint(v, 0, 0xFFFFFFFF, what)
    mask = parse_uint(m, 0, 0xFFFFFFFF, what) if sep else 0xFFFFFFFF
    return value, mask


def parse_mac(text: str) -> str:
    parts = text.split(":")
    ok = len(parts) == 6 and all(
        len(p) in (1, 2) and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts)
    if not ok:
        raise BadValue("Invalid MAC address specified.")
    return ":".join(p.lower().zfill(2) for p in parts)
