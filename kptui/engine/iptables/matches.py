"""Match modules: option parsing, canonical save text and evaluation.

Each module is a small class registered in ``MATCHES`` by name. ``test``
returns None when the packet matches and otherwise a short reason in words,
which the debugger shows next to the rule. Semantics follow the kernel's
xt_* modules; option syntax and save text follow iptables 1.8.9 (checked with
iptables-save on this machine).
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

from kptui.engine.errors import UnsupportedError
from kptui.engine.iptables.values import (
    BadValue,
    parse_port_range,
    parse_uint,
    range_text,
)


class Opt(NamedTuple):
    nargs: int  # arguments after the option
    invertible: bool


def _neg(inv: bool) -> str:
    return "! " if inv else ""


class Match:
    """Base of all -m modules. Subclasses fill ``options`` and implement the hooks."""

    name: ClassVar[str] = ""
    options: ClassVar[dict[str, Opt]] = {}
    stateful: ClassVar[bool] = False  # evaluation changes state (limit, statistic)
    protos: ClassVar[tuple[int, ...] | None] = None  # -p values the module requires
    proto_error: ClassVar[str] = ""
    chains: ClassVar[frozenset[str] | None] = None  # built-in chains it may be used in
    uses_sets: ClassVar[bool] = False  # the parser gives it the box's ipset sets (.sets)

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        """Parse one option (already checked to belong to this module)."""
        raise NotImplementedError

    def finish(self) -> None:
        """Check required options once the whole rule is read."""

    def allowed_chains(self) -> frozenset[str] | None:
        return self.chains

    def save(self) -> str:
        raise NotImplementedError

    def test(self, pkt: Any, ctx: Any) -> str | None:
        """None when the packet matches, else why not. A module that is parsed and
        printed but not simulated keeps this: the walk stops, named, never a guess."""
        raise UnsupportedError(f"-m {self.name} (parsed, not simulated)")

    def _require(self, *opts: str) -> None:
        if not self.seen.intersection(opts):
            raise BadValue(f'{self.name}: option "{opts[0]}" must be specified')


def _is_fragment(pkt: Any) -> bool:
    return pkt.ip.frag_offset != 0


# ----------------------------------------------------------------------------- tcp / udp
TCP_FLAG_NAMES: dict[str, int] = {
    "FIN": 0x01, "SYN": 0x02, "RST": 0x04, "PSH": 0x08, "ACK": 0x10, "URG": 0x20,
    "ALL": 0x3F, "NONE": 0,
}
_FLAG_ORDER = ("FIN", "SYN", "RST", "PSH", "ACK", "URG")


def parse_tcp_flag_list(text: str) -> int:
    v = 0
    for part in text.split(","):
        f = TCP_FLAG_NAMES.get(part.upper())
        if f is None:
            raise BadValue(f"Unknown TCP flag `{part}'")
        v |= f
    return v


def tcp_flag_text(v: int) -> str:
    names = [n for n in _FLAG_ORDER if v & TCP_FLAG_NAMES[n]]
    return ",".join(names) if names else "NONE"


class _Ports(Match):
    """Shared by tcp and udp: --sport/--dport with ranges (xt_tcpudp)."""

    def __init__(self) -> None:
        super().__init__()
        self.sport: tuple[int, int] | None = None
        self.dport: tuple[int, int] | None = None
        self.sinv = self.dinv = False

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        if opt in ("--sport", "--source-port"):
            self.sport, self.sinv = parse_port_range(args[0]), inv
        elif opt in ("--dport", "--destination-port"):
            self.dport, self.dinv = parse_port_range(args[0]), inv

    def _ports_save(self) -> list[str]:
        out = []
        # iptables-nft drops a full 0:65535 range that is not inverted.
        if self.sport and (self.sinv or self.sport != (0, 65535)):
            out.append(f"{_neg(self.sinv)}--sport {range_text(*self.sport)}")
        if self.dport and (self.dinv or self.dport != (0, 65535)):
            out.append(f"{_neg(self.dinv)}--dport {range_text(*self.dport)}")
        return out

    def _ports_test(self, pkt: Any) -> str | None:
        l4 = pkt.l4
        if self.sport is not None:
            lo, hi = self.sport
            if (lo <= l4.sport <= hi) == self.sinv:
                return f"source port {l4.sport} {'in' if self.sinv else 'not in'} {lo}:{hi}"
        if self.dport is not None:
            lo, hi = self.dport
            if (lo <= l4.dport <= hi) == self.dinv:
                return f"destination port {l4.dport} {'in' if self.dinv else 'not in'} {lo}:{hi}"
        return None


_PORT_OPTS = {
    "--sport": Opt(1, True), "--source-port": Opt(1, True),
    "--dport": Opt(1, True), "--destination-port": Opt(1, True),
}


class TcpMatch(_Ports):
    name = "tcp"
    options = {**_PORT_OPTS, "--tcp-flags": Opt(2, True), "--syn": Opt(0, True),
               "--tcp-option": Opt(1, True)}
    protos = (6,)
    proto_error = "TCP match requires '-p tcp'"

    def __init__(self) -> None:
        super().__init__()
        self.flags: tuple[int, int] | None = None
        self.finv = False
        self.tcpopt: int | None = None
        self.oinv = False

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        if opt in ("--syn", "--tcp-flags"):
            if self.flags is not None:
                raise BadValue("Only one of `--syn' or `--tcp-flags'  allowed")
            if opt == "--syn":
                self.flags = (0x17, 0x02)  # FIN,SYN,RST,ACK SYN
            else:
                self.flags = (parse_tcp_flag_list(args[0]), parse_tcp_flag_list(args[1]))
            self.finv = inv
        elif opt == "--tcp-option":
            self.tcpopt = parse_uint(args[0], 0, 255, f"Bad TCP option `{args[0]}'")
            self.oinv = inv
        else:
            super().option(opt, args, inv)

    def save(self) -> str:
        out = self._ports_save()
        if self.tcpopt is not None:
            out.append(f"{_neg(self.oinv)}--tcp-option {self.tcpopt}")
        if self.flags is not None:
            m, c = self.flags
            out.append(f"{_neg(self.finv)}--tcp-flags {tcp_flag_text(m)} {tcp_flag_text(c)}")
        return " ".join(out)

    def test(self, pkt: Any, ctx: Any) -> str | None:
        if _is_fragment(pkt):
            return "a non-first fragment has no TCP header"
        why = self._ports_test(pkt)
        if why:
            return why
        if self.tcpopt is not None:
            found = self.tcpopt in _tcp_option_kinds(pkt.l4.options)
            if found == self.oinv:
                return f"TCP option {self.tcpopt} {'present' if found else 'absent'}"
        if self.flags is not None:
            m, c = self.flags
            if ((pkt.l4.flags & m) == c) == self.finv:
                return (f"TCP flags {tcp_flag_text(pkt.l4.flags & 0x3F)} "
                        f"{'match' if self.finv else 'do not match'} "
                        f"{tcp_flag_text(m)} {tcp_flag_text(c)}")
        return None


def _tcp_option_kinds(opts: bytes) -> set[int]:
    """The option kinds present, walked like the kernel's tcp_find_option."""
    kinds: set[int] = set()
    i = 0
    while i < len(opts):
        k = opts[i]
        kinds.add(k)
        if k == 0:
            break
        if k == 1:
            i += 1
            continue
        if i + 1 >= len(opts) or opts[i + 1] < 2:
            break
        i += opts[i + 1]
    return kinds


class UdpMatch(_Ports):
    name = "udp"
    options = dict(_PORT_OPTS)
    protos = (17,)
    proto_error = "UDP match requires '-p udp'"

    def save(self) -> str:
        return " ".join(self._ports_save())

    def test(self, pkt: Any, ctx: Any) -> str | None:
        if _is_fragment(pkt):
            return "a non-first fragment has no UDP header"
        return self._ports_test(pkt)


# ----------------------------------------------------------------------------- icmp
# iptables' icmp_codes table: name -> (type, min code, max code).
ICMP_TYPES: dict[str, tuple[int, int, int]] = {
    "any": (255, 0, 255), "echo-reply": (0, 0, 255), "destination-unreachable": (3, 0, 255),
    "network-unreachable": (3, 0, 0), "host-unreachable": (3, 1, 1),
    "protocol-unreachable": (3, 2, 2), "port-unreachable": (3, 3, 3),
    "fragmentation-needed": (3, 4, 4), "source-route-failed": (3, 5, 5),
    "network-unknown": (3, 6, 6), "host-unknown": (3, 7, 7),
    "network-prohibited": (3, 9, 9), "host-prohibited": (3, 10, 10),
    "TOS-network-unreachable": (3, 11, 11), "TOS-host-unreachable": (3, 12, 12),
    "communication-prohibited": (3, 13, 13), "host-precedence-violation": (3, 14, 14),
    "precedence-cutoff": (3, 15, 15), "source-quench": (4, 0, 255), "redirect": (5, 0, 255),
    "network-redirect": (5, 0, 0), "host-redirect": (5, 1, 1),
    "TOS-network-redirect": (5, 2, 2), "TOS-host-redirect": (5, 3, 3),
    "echo-request": (8, 0, 255), "router-advertisement": (9, 0, 255),
    "router-solicitation": (10, 0, 255), "time-exceeded": (11, 0, 255),
    "ttl-zero-during-transit": (11, 0, 0), "ttl-zero-during-reassembly": (11, 1, 1),
    "parameter-problem": (12, 0, 255), "ip-header-bad": (12, 0, 0),
    "required-option-missing": (12, 1, 1), "timestamp-request": (13, 0, 255),
    "timestamp-reply": (14, 0, 255), "address-mask-request": (17, 0, 255),
    "address-mask-reply": (18, 0, 255),
}


def parse_icmp_type(text: str) -> tuple[int, int, int]:
    found = [n for n in ICMP_TYPES if n.lower().startswith(text.lower())]
    exact = [n for n in found if n.lower() == text.lower()]
    if exact:
        return ICMP_TYPES[exact[0]]
    if len(found) > 1:
        raise BadValue(f"Ambiguous ICMP type `{text}': `{found[0]}' or `{found[1]}'?")
    if found:  # a prefix of a name (names start with a letter, numbers never match)
        return ICMP_TYPES[found[0]]
    t, sep, c = text.partition("/")
    bad = f"Unknown ICMP type `{text}'"
    typ = parse_uint(t, 0, 255, bad)
    if sep:
        code = parse_uint(c, 0, 255, bad)
        return typ, code, code
    return typ, 0, 255


class IcmpMatch(Match):
    name = "icmp"
    options = {"--icmp-type": Opt(1, True)}
    protos = (1,)
    proto_error = "ICMP match requires '-p icmp'"

    def __init__(self) -> None:
        super().__init__()
        self.spec = (255, 0, 255)
        self.inv = False

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        self.spec, self.inv = parse_icmp_type(args[0]), inv

    def save(self) -> str:
        t, lo, hi = self.spec
        if t == 255:
            val = "any"
        elif (lo, hi) == (0, 255):
            val = str(t)
        else:
            val = f"{t}/{lo}"
        return f"{_neg(self.inv)}--icmp-type {val}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        if _is_fragment(pkt):
            return "a non-first fragment has no ICMP header"
        t, lo, hi = self.spec
        l4 = pkt.l4
        ok = t == 255 or (l4.type == t and lo <= l4.code <= hi)
        if ok == self.inv:
            return f"ICMP type {l4.type}/{l4.code} {'matches' if ok else 'is not'} {self.save()}"
        return None


# ---------------------------------------------------- tos and dscp names (TOS, DSCP targets)
TOS_NAMES = {"Minimize-Delay": 0x10, "Maximize-Throughput": 0x08,
             "Maximize-Reliability": 0x04, "Minimize-Cost": 0x02, "Normal-Service": 0x00}


DSCP_CLASSES = {
    "CS0": 0, "CS1": 8, "CS2": 16, "CS3": 24, "CS4": 32, "CS5": 40, "CS6": 48, "CS7": 56,
    "BE": 0, "AF11": 10, "AF12": 12, "AF13": 14, "AF21": 18, "AF22": 20, "AF23": 22,
    "AF31": 26, "AF32": 28, "AF33": 30, "AF41": 34, "AF42": 36, "AF43": 38, "EF": 46,
}


def parse_dscp(opt: str, text: str, module: str) -> int:
    if opt.endswith("-class"):
        v = DSCP_CLASSES.get(text.upper())
        if v is None:
            raise BadValue(f"Invalid DSCP value `{text}'")
        return v
    return parse_uint(text, 0, 63,
                      f'{module}: bad value for option "{opt}", or out of range (0-63).')


# ----------------------------------------------------------------------------- conntrack
CT_STATES = ("INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED", "SNAT", "DNAT")


def _ct_list(text: str, names: tuple[str, ...], bad: str) -> tuple[str, ...]:
    parts = text.upper().split(",")
    for p in parts:
        if p not in names:
            raise BadValue(f'{bad} "{p}"')
    return tuple(n for n in names if n in parts)


def _ct_statebit(pkt: Any) -> str:
    """The packet's state for -m state/--ctstate (XT_STATE_BIT of its ctinfo)."""
    from kptui.engine.conntrack import CTINFO_STATE

    meta = pkt.meta
    if meta.ct is None:
        return "UNTRACKED" if meta.ctinfo == "UNTRACKED" else "INVALID"
    return CTINFO_STATE[meta.ctinfo]


MATCHES: dict[str, type[Match]] = {
    cls.name: cls for cls in (
        TcpMatch, UdpMatch, IcmpMatch)
}
