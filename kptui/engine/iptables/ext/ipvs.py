"""-m ipvs (libxt_ipvs 1.8.9, xt_ipvs.c): the IPVS (LVS) connection a packet belongs to.

Parsed and printed, not simulated: kptui models no IPVS virtual services, so
the walk stops at the match rather than guessing. (The kernel kptui is
checked against, Linux 6.18 here, has no ip_vs module either; the accepted
forms are those of iptables' own test file.)
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext._idopts import Quick
from kptui.engine.iptables.values import BadValue, ip_text
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch, parse_entry_value, plen

_BITS = {"ipvs": 1, "vproto": 2, "vaddr": 4, "vport": 8, "vdir": 16, "vmethod": 32,
         "vportctl": 64}  # XT_IPVS_*: 1 << the option's id
IPVS, DIR = 1, 16
_METHODS = {"GATE": 0x0003, "IPIP": 0x0002, "MASQ": 0x0000}  # IP_VS_CONN_F_*
_METHOD_NAME = {v: k for k, v in _METHODS.items()}


def parse_hostmask(ext: str, opt: str, text: str) -> tuple[int, int]:
    """XTTYPE_HOSTMASK: a numeric host, then /plen or /mask as XTTYPE_PLENMASK reads it
    (a mask that is not a prefix becomes /32: checked, ``--tunnel-dst
    1.2.3.4/255.0.255.0`` saves as 1.2.3.4). The address is kept unmasked."""
    host, sep, mask = text.partition("/")
    addr = parse_entry_value(ext, Entry(opt, XT.HOST), host)
    return addr, plen(ext, opt, mask)[1] if sep else 0xFFFFFFFF


def _upper(text: str) -> bytes:
    """strcasecmp's view of a word: ASCII letters only fold."""
    return text.encode("utf-8", "surrogateescape").upper()


def hostmask_text(addr: int, mask: int) -> str:
    """xtables_ipaddr_to_numeric + xtables_ipmask_to_numeric (no /32; a mask that is not
    a prefix in dotted form)."""
    inv = ~mask & 0xFFFFFFFF
    if inv & (inv + 1):
        return f"{ip_text(addr)}/{ip_text(mask)}"
    plen = 32 - inv.bit_length()
    return ip_text(addr) if plen == 32 else f"{ip_text(addr)}/{plen}"


class IpvsMatch(Quick, XtMatch):
    name = "ipvs"
    entries = (Entry("ipvs", invert=True), Entry("vproto", XT.PROTOCOL, invert=True),
               Entry("vaddr", XT.STRING, invert=True), Entry("vport", XT.PORT, invert=True),
               Entry("vdir", XT.STRING), Entry("vmethod", XT.STRING, invert=True),
               Entry("vportctl", XT.PORT, invert=True))

    def __init__(self) -> None:
        super().__init__()
        self.bitmask = self.invert = 0
        self.values: dict[str, Any] = {}

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        bit = _BITS[name]
        if name == "vdir":
            word = _upper(value)
            if word not in (b"ORIGINAL", b"REPLY"):
                raise BadValue(f'ipvs: Bad value for "--vdir" option: "{value}"')
            self.invert = self.invert | DIR if word == b"REPLY" else self.invert & ~DIR
        elif name == "vaddr":
            value = parse_hostmask(self.name, name, value)
        elif name == "vmethod":
            method = _METHODS.get(_upper(value).decode("utf-8", "surrogateescape"))
            if method is None:
                raise BadValue(f'ipvs: Bad value for "--vmethod" option: "{value}"')
            value = method
        self.values[name] = value
        self.bitmask |= bit
        if inv:
            self.invert |= bit

    def check(self) -> None:
        if not self.seen:
            raise BadValue("IPVS: At least one option is required")
        if self.bitmask & ~IPVS:
            if self.invert & IPVS:
                raise BadValue("! --ipvs cannot be together with other options")
            self.bitmask |= IPVS

    def save(self) -> str:
        out = []

        def neg(bit: int) -> str:
            return "! " if self.invert & bit else ""
        if self.bitmask == IPVS:
            out.append(f"{neg(IPVS)}--ipvs")
        v = self.values
        if "vproto" in v:
            out.append(f"{neg(2)}--vproto {v['vproto']}")
        if "vaddr" in v:
            out.append(f"{neg(4)}--vaddr {hostmask_text(*v['vaddr'])}")
        if "vport" in v:
            out.append(f"{neg(8)}--vport {v['vport']}")
        if "vdir" in v:
            out.append(f"--vdir {'REPLY' if self.invert & DIR else 'ORIGINAL'}")
        if "vmethod" in v:
            out.append(f"{neg(32)}--vmethod {_METHOD_NAME[v['vmethod']]}")
        if "vportctl" in v:
            out.append(f"{neg(64)}--vportctl {v['vportctl']}")
        return " ".join(out)


MATCHES = (IpvsMatch,)
