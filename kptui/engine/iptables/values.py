"""Value parsers and printers shared by matches and targets, with iptables' wording.

They raise ``BadValue``; the rule parser turns it into a ParseError that points
at the offending token.
"""

from __future__ import annotations

import re

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


def parse_uint(text: str, lo: int, hi: int, what: str) -> int:
    """strtoul(base 0)-style integer in [lo, hi]; ``what`` completes the error message."""
    try:
        if text.lower().startswith("0x"):
            v = int(text, 16)
        elif len(text) > 1 and text.startswith("0") and text.isdigit():
            v = int(text, 8)
        else:
            v = int(text, 10)
    except ValueError:
        raise BadValue(what) from None
    if not lo <= v <= hi:
        raise BadValue(what)
    return v


def _dotted(text: str) -> int | None:
    parts = text.split(".")
    if len(parts) != 4:
        return None
    v = 0
    for p in parts:
        if not p.isdigit() or len(p) > 3 or int(p) > 255:
            return None
        v = (v << 8) | int(p)
    return v


def parse_net(text: str) -> tuple[int, int]:
    """``a.b.c.d[/len|/mask]`` -> (address & mask, mask). Hostnames are refused."""
    addr_s, _, mask_s = text.partition("/")
    addr = _dotted(addr_s)
    if addr is None:
        raise BadValue(f"host/network `{addr_s}' not found"
                       + ("" if addr_s.replace(".", "").isdigit() else
                          " (kptui does not resolve host names; write an address)"))
    if not mask_s:
        mask = 0xFFFFFFFF
    elif "." in mask_s:
        m = _dotted(mask_s)
        if m is None:
            raise BadValue(f"invalid mask `{mask_s}' specified")
        mask = m
    else:
        if not mask_s.isdigit() or int(mask_s) > 32:
            raise BadValue(f"invalid mask `{mask_s}' specified")
        n = int(mask_s)
        mask = (0xFFFFFFFF << (32 - n)) & 0xFFFFFFFF
    return addr & mask, mask


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
    low = text.lower()
    if low in PROTOCOLS:
        return PROTOCOLS[low]
    if low.isdigit() and int(low) <= 255:
        return int(low)
    raise BadValue(f'unknown protocol "{text}" specified')


def proto_text(num: int) -> str:
    return PROTO_NAMES.get(num, str(num))


def parse_port(text: str) -> int:
    if text.isdigit():
        v = int(text)
        if v <= 65535:
            return v
    elif text in SERVICES:
        return SERVICES[text]
    raise BadValue(f"invalid port/service `{text}' specified")


def parse_port_range(text: str) -> tuple[int, int]:
    """``a``, ``a:b``, ``:b``, ``a:`` -> (lo, hi) as xtables_parse_port_range does."""
    if ":" not in text:
        p = parse_port(text)
        return p, p
    a, _, b = text.partition(":")
    lo = parse_port(a) if a else 0
    hi = parse_port(b) if b else 65535
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
