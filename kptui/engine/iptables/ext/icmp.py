"""-m icmp (libipt_icmp 1.8.9, xt_tcpudp.c icmp_match): the ICMP type and a code range.

--icmp-type is mandatory and invertible (xtopt); its value is read by
libxt_icmp.h __ipt_parse_icmp: a name or the start of one (every name the text
begins is looked at: a second one is "Ambiguous"), else ``type[/code[:code]]``
with base-0 numbers (a type range ``3:4`` is refused). A code range is matched
but iptables-save prints only its first code (``3/1:3`` saves as ``3/1``).
iptables-nft keeps this an xt match: without ``-p icmp`` the kernel refuses it.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext._idopts import Quick
from kptui.engine.iptables.ext.l4common import kernel_refuses, strtoui
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch

# libxt_icmp.h icmp_codes, in its order: (name, type, min code, max code)
ICMP_CODES: tuple[tuple[str, int, int, int], ...] = (
    ("any", 0xFF, 0, 0xFF), ("echo-reply", 0, 0, 0xFF), ("pong", 0, 0, 0xFF),
    ("destination-unreachable", 3, 0, 0xFF), ("network-unreachable", 3, 0, 0),
    ("host-unreachable", 3, 1, 1), ("protocol-unreachable", 3, 2, 2),
    ("port-unreachable", 3, 3, 3), ("fragmentation-needed", 3, 4, 4),
    ("source-route-failed", 3, 5, 5), ("network-unknown", 3, 6, 6), ("host-unknown", 3, 7, 7),
    ("network-prohibited", 3, 9, 9), ("host-prohibited", 3, 10, 10),
    ("TOS-network-unreachable", 3, 11, 11), ("TOS-host-unreachable", 3, 12, 12),
    ("communication-prohibited", 3, 13, 13), ("host-precedence-violation", 3, 14, 14),
    ("precedence-cutoff", 3, 15, 15), ("source-quench", 4, 0, 0xFF), ("redirect", 5, 0, 0xFF),
    ("network-redirect", 5, 0, 0), ("host-redirect", 5, 1, 1),
    ("TOS-network-redirect", 5, 2, 2), ("TOS-host-redirect", 5, 3, 3),
    ("echo-request", 8, 0, 0xFF), ("ping", 8, 0, 0xFF), ("router-advertisement", 9, 0, 0xFF),
    ("router-solicitation", 10, 0, 0xFF), ("time-exceeded", 11, 0, 0xFF),
    ("ttl-exceeded", 11, 0, 0xFF), ("ttl-zero-during-transit", 11, 0, 0),
    ("ttl-zero-during-reassembly", 11, 1, 1), ("parameter-problem", 12, 0, 0xFF),
    ("ip-header-bad", 12, 0, 0), ("required-option-missing", 12, 1, 1),
    ("timestamp-request", 13, 0, 0xFF), ("timestamp-reply", 14, 0, 0xFF),
    ("address-mask-request", 17, 0, 0xFF), ("address-mask-reply", 18, 0, 0xFF),
)
_FOLDED = tuple((name.lower().encode(), name) for name, *_ in ICMP_CODES)
_BY_NAME = {name: (t, lo, hi) for name, t, lo, hi in ICMP_CODES}
_SPECS: dict[str, tuple[int, int, int]] = {}  # texts already read (bounded)


def _range(text: str) -> tuple[int, int, str] | None:
    """libxt_icmp.h parse_range: ``n[:m]``, each xtables_strtoui(0, 255) -> (n, m, rest)."""
    lo, rest = strtoui(text, 0xFF)
    if lo is None:
        return None
    hi = lo
    if rest[:1] == ":":
        hi, rest = strtoui(rest[1:], 0xFF)
        if hi is None:
            return None
    return lo, hi, rest


def parse_icmp_type(text: str) -> tuple[int, int, int]:
    """__ipt_parse_icmp: (type, min code, max code), in iptables' words when refused."""
    got = _SPECS.get(text)
    if got is None:
        got = _parse_icmp_type(text)
        if len(_SPECS) < 4096:
            _SPECS[text] = got
    return got


def _parse_icmp_type(text: str) -> tuple[int, int, int]:
    # strncasecmp(name, text, strlen(text)): ASCII case folding, the text a prefix
    folded = text.encode("utf-8", "surrogateescape").lower()
    match = ""
    for lowered, name in _FOLDED:
        if lowered.startswith(folded):
            if match:
                raise BadValue(f"Ambiguous ICMP type `{text}': `{match}' or `{name}'?")
            match = name
    if match:
        return _BY_NAME[match]
    types = _range(text)
    if types is None:
        raise BadValue(f"Unknown ICMP type `{text}'")
    t, t_hi, rest = types
    lo, hi = 0, 0xFF
    if rest[:1] == "/":
        codes = _range(rest[1:])
        if codes is None:
            raise BadValue(f"Unknown ICMP code `{text}'")
        lo, hi, rest = codes
    if rest:
        raise BadValue(f"unknown character {rest[0]}")
    if t_hi != t:
        raise BadValue("ICMP type range not supported")
    return t, lo, hi


class IcmpMatch(Quick, XtMatch):
    name = "icmp"
    entries = (Entry("icmp-type", XT.STRING, mand=True, invert=True),)
    protos = (1,)
    proto_error = kernel_refuses("icmp match: only valid for protocol 1")

    def __init__(self) -> None:
        super().__init__()
        self.spec = (0xFF, 0, 0xFF)  # icmp_init: type 0xFF (any), codes 0-255
        self.inv = False

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        self.spec, self.inv = parse_icmp_type(value), inv

    def save(self) -> str:
        t, lo, hi = self.spec
        if t == 0xFF:
            val = "any"
        elif (lo, hi) == (0, 0xFF):
            val = str(t)
        else:
            val = f"{t}/{lo}"
        return f"{'! ' if self.inv else ''}--icmp-type {val}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        if pkt.ip.frag_offset != 0:
            return "a non-first fragment has no ICMP header"
        t, lo, hi = self.spec
        l4 = pkt.l4
        ok = t == 0xFF or (l4.type == t and lo <= l4.code <= hi)
        if ok == self.inv:
            return f"ICMP type {l4.type}/{l4.code} {'matches' if ok else 'is not'} {self.save()}"
        return None


MATCHES = (IcmpMatch,)
