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
    SERVICES,
    BadValue,
    ip_text,
    net_text,
    parse_addr,
    parse_mac,
    parse_net,
    parse_port_range,
    parse_proto,
    parse_uint,
    parse_value_mask,
    proto_text,
    range_text,
    save_string,
)
from kptui.engine.numbers import NumberError, parse_float, scan_uint


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


# ----------------------------------------------------------------------------- multiport
class MultiportMatch(Match):
    name = "multiport"
    options = {"--sports": Opt(1, True), "--source-ports": Opt(1, True),
               "--dports": Opt(1, True), "--destination-ports": Opt(1, True),
               "--ports": Opt(1, True)}
    protos = (6, 17, 136, 132, 33)
    proto_error = ("multiport needs `-p tcp', `-p udp', `-p udplite', `-p sctp' or "
                   "`-p dccp'")

    def __init__(self) -> None:
        super().__init__()
        self.which = ""
        self.ports: list[tuple[int, int]] = []
        self.inv = False

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        if self.which:
            raise BadValue("multiport can only have one option")
        self.which = {"--source-ports": "--sports", "--destination-ports": "--dports"}.get(
            opt, opt)
        self.inv = inv
        ports = [parse_port_range(p) for p in args[0].split(",")]
        if sum(1 if lo == hi else 2 for lo, hi in ports) > 15:
            raise BadValue("too many ports specified")
        self.ports = ports

    def finish(self) -> None:
        if not self.which:
            raise BadValue("multiport expects an option")

    def save(self) -> str:
        text = ",".join(range_text(lo, hi) for lo, hi in self.ports)
        return f"{_neg(self.inv)}{self.which} {text}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        if _is_fragment(pkt):
            return "a non-first fragment has no ports"
        sp, dp = pkt.l4.sport, pkt.l4.dport
        check = {"--sports": (sp,), "--dports": (dp,), "--ports": (sp, dp)}[self.which]
        hit = any(lo <= p <= hi for p in check for lo, hi in self.ports)
        if hit == self.inv:
            return f"ports {sp}->{dp} {'match' if hit else 'do not match'} {self.save()}"
        return None


# ----------------------------------------------------------------------------- addresses
class IprangeMatch(Match):
    name = "iprange"
    options = {"--src-range": Opt(1, True), "--dst-range": Opt(1, True)}

    def __init__(self) -> None:
        super().__init__()
        self.ranges: dict[str, tuple[int, int, bool]] = {}

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        a, sep, b = args[0].partition("-")
        lo = parse_addr(a)
        hi = parse_addr(b) if sep else lo
        self.ranges[opt] = (lo, hi, inv)

    def finish(self) -> None:
        self._require("--src-range", "--dst-range")

    def save(self) -> str:
        return " ".join(f"{_neg(inv)}{opt} {ip_text(lo)}-{ip_text(hi)}"
                        for opt in ("--src-range", "--dst-range") if opt in self.ranges
                        for lo, hi, inv in [self.ranges[opt]])

    def test(self, pkt: Any, ctx: Any) -> str | None:
        for opt, (lo, hi, inv) in self.ranges.items():
            addr = pkt.ip.src if opt == "--src-range" else pkt.ip.dst
            if (lo <= int(addr) <= hi) == inv:
                return f"{addr} {'in' if inv else 'not in'} {ip_text(lo)}-{ip_text(hi)}"
        return None


ADDR_TYPES = ("UNSPEC", "UNICAST", "LOCAL", "BROADCAST", "ANYCAST", "MULTICAST", "BLACKHOLE",
              "UNREACHABLE", "PROHIBIT", "THROW", "NAT", "XRESOLVE")


class AddrtypeMatch(Match):
    name = "addrtype"
    options = {"--src-type": Opt(1, True), "--dst-type": Opt(1, True),
               "--limit-iface-in": Opt(0, False), "--limit-iface-out": Opt(0, False)}

    def __init__(self) -> None:
        super().__init__()
        self.types: dict[str, tuple[frozenset[str], bool]] = {}
        self.limit = ""

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        if opt.startswith("--limit"):
            if self.limit:
                raise BadValue("addrtype: you can't specify both --limit-iface-in and "
                               "--limit-iface-out")
            self.limit = opt
            return
        names = args[0].upper().split(",")
        for n in names:
            if n not in ADDR_TYPES:
                raise BadValue(f'addrtype: bad type "{n}"')
        self.types[opt] = (frozenset(names), inv)

    def finish(self) -> None:
        if not self.types:
            raise BadValue("addrtype: you must specify --src-type or --dst-type")

    def allowed_chains(self) -> frozenset[str] | None:
        if self.limit == "--limit-iface-in":
            return frozenset({"PREROUTING", "INPUT", "FORWARD"})
        if self.limit == "--limit-iface-out":
            return frozenset({"OUTPUT", "POSTROUTING", "FORWARD"})
        return None

    def save(self) -> str:
        out = []
        for opt in ("--src-type", "--dst-type"):
            if opt in self.types:
                names, inv = self.types[opt]
                out.append(f"{_neg(inv)}{opt} " + ",".join(t for t in ADDR_TYPES if t in names))
        if self.limit:
            out.append(self.limit)
        return " ".join(out)

    def test(self, pkt: Any, ctx: Any) -> str | None:
        dev = None
        if self.limit == "--limit-iface-in":
            dev = ctx.iif or None
        elif self.limit == "--limit-iface-out":
            dev = ctx.oif or None
        for opt, (names, inv) in self.types.items():
            addr = pkt.ip.src if opt == "--src-type" else pkt.ip.dst
            kind = ctx.addrtype(addr, dev)
            if (kind in names) == inv:
                return f"{addr} is {kind}, {'one of' if inv else 'not'} {','.join(sorted(names))}"
        return None


# ----------------------------------------------------------------------------- marks, tos
class MarkMatch(Match):
    name = "mark"
    options = {"--mark": Opt(1, True)}
    field = "mark"

    def __init__(self) -> None:
        super().__init__()
        self.value, self.mask, self.inv = 0, 0xFFFFFFFF, False

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        self.value, self.mask = parse_value_mask(
            args[0], f'{self.name}: bad value for option "--mark"')
        self.inv = inv

    def finish(self) -> None:
        self._require("--mark")

    def save(self) -> str:
        v = hex(self.value) if self.mask == 0xFFFFFFFF else f"{self.value:#x}/{self.mask:#x}"
        return f"{_neg(self.inv)}--mark {v}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        mark = getattr(pkt.meta, self.field)
        if ((mark & self.mask) == self.value) == self.inv:
            return f"{self.field} {mark:#x} {'matches' if self.inv else 'does not match'} " \
                   f"{self.value:#x}/{self.mask:#x}"
        return None


class ConnmarkMatch(MarkMatch):
    name = "connmark"
    field = "ctmark"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        if pkt.meta.ct is None:  # connmark_mt: no conntrack entry, no match (even with !)
            return f"no conntrack entry ({pkt.meta.ctinfo or 'INVALID'})"
        return super().test(pkt, ctx)


class CommentMatch(Match):
    name = "comment"
    options = {"--comment": Opt(1, False)}

    def __init__(self) -> None:
        super().__init__()
        self.comment = ""

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        if len(args[0]) > 255:
            raise BadValue("comment may not exceed 255 characters")
        self.comment = args[0]

    def finish(self) -> None:
        self._require("--comment")

    def save(self) -> str:
        return f"--comment {save_string(self.comment)}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        return None


TOS_NAMES = {"Minimize-Delay": 0x10, "Maximize-Throughput": 0x08,
             "Maximize-Reliability": 0x04, "Minimize-Cost": 0x02, "Normal-Service": 0x00}


def _starts_numeric(text: str) -> bool:
    """Whether strtoul would read a number at the start of ``text`` (blanks, ``+``, a digit)."""
    body = text.lstrip(" \t\n\v\f\r")
    body = body[1:] if body[:1] == "+" else body
    return "0" <= body[:1] <= "9"


def parse_tos(text: str, opt: str) -> tuple[int, int]:
    """tos value[/mask] or a symbolic name (mask 0x3f), as libxt_tos parses it."""
    for name, v in TOS_NAMES.items():
        if name.lower() == text.lower():
            return v, 0x3F
    if not _starts_numeric(text):  # tos_parse_symbolic: xtables_strtoui with an end pointer
        raise BadValue(f'Symbolic name "{text}" is unknown')
    v, sep, m = text.partition("/")
    what = f'tos: bad value for option "{opt}", or out of range (0-255).'
    return parse_uint(v, 0, 255, what), parse_uint(m, 0, 255, what) if sep else 0xFF


class TosMatch(Match):
    name = "tos"
    options = {"--tos": Opt(1, True)}

    def __init__(self) -> None:
        super().__init__()
        self.value, self.mask, self.inv = 0, 0xFF, False

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        (self.value, self.mask), self.inv = parse_tos(args[0], opt), inv

    def finish(self) -> None:
        self._require("--tos")

    def save(self) -> str:
        return f"{_neg(self.inv)}--tos {self.value:#04x}/{self.mask:#04x}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        tos = pkt.ip.tos
        if ((tos & self.mask) == self.value) == self.inv:
            return f"tos {tos:#04x} {'matches' if self.inv else 'does not match'} " \
                   f"{self.value:#04x}/{self.mask:#04x}"
        return None


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


class DscpMatch(Match):
    name = "dscp"
    options = {"--dscp": Opt(1, True), "--dscp-class": Opt(1, True)}

    def __init__(self) -> None:
        super().__init__()
        self.dscp, self.inv = 0, False

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        if self.seen & {"--dscp", "--dscp-class"}:
            raise BadValue("DSCP match: Only use --dscp ONCE!")
        self.dscp, self.inv = parse_dscp(opt, args[0], "dscp"), inv

    def finish(self) -> None:
        self._require("--dscp", "--dscp-class")

    def save(self) -> str:
        return f"{_neg(self.inv)}--dscp {self.dscp:#04x}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        d = pkt.ip.tos >> 2
        if (d == self.dscp) == self.inv:
            return f"dscp {d:#04x} {'is' if self.inv else 'is not'} {self.dscp:#04x}"
        return None


class TtlMatch(Match):
    name = "ttl"
    options = {"--ttl-eq": Opt(1, True), "--ttl-lt": Opt(1, False), "--ttl-gt": Opt(1, False)}

    def __init__(self) -> None:
        super().__init__()
        self.op, self.value, self.inv = "", 0, False

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        if self.op:
            raise BadValue("Can't specify TTL option twice")
        self.op, self.inv = opt, inv
        self.value = parse_uint(args[0], 0, 255,
                                f'ttl: bad value for option "{opt}", or out of range (0-255).')

    def finish(self) -> None:
        self._require("--ttl-eq", "--ttl-lt", "--ttl-gt")

    def save(self) -> str:
        return f"{_neg(self.inv)}{self.op} {self.value}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        t = pkt.ip.ttl
        ok = {"--ttl-eq": t == self.value, "--ttl-lt": t < self.value,
              "--ttl-gt": t > self.value}[self.op] != self.inv
        return None if ok else f"ttl {t} fails {self.save()}"


class LengthMatch(Match):
    name = "length"
    options = {"--length": Opt(1, True)}

    def __init__(self) -> None:
        super().__init__()
        self.lo, self.hi, self.inv = 0, 0, False

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        a, sep, b = args[0].partition(":")
        what = f"length invalid: \"{args[0]}\""
        self.lo = parse_uint(a, 0, 65535, what) if a else 0
        self.hi = (parse_uint(b, 0, 65535, what) if b else 65535) if sep else self.lo
        self.inv = inv

    def finish(self) -> None:
        self._require("--length")

    def save(self) -> str:
        return f"{_neg(self.inv)}--length {range_text(self.lo, self.hi)}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        n = pkt.length
        if (self.lo <= n <= self.hi) == self.inv:
            return f"length {n} {'in' if self.inv else 'not in'} {self.lo}:{self.hi}"
        return None


class MacMatch(Match):
    name = "mac"
    options = {"--mac-source": Opt(1, True)}
    chains = frozenset({"PREROUTING", "INPUT", "FORWARD"})

    def __init__(self) -> None:
        super().__init__()
        self.mac, self.inv = "", False

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        self.mac, self.inv = parse_mac(args[0]), inv

    def finish(self) -> None:
        self._require("--mac-source")

    def save(self) -> str:
        return f"{_neg(self.inv)}--mac-source {self.mac}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        src = ctx.src_mac
        if src is None:  # xt_mac: no Ethernet header -> no match, even when inverted
            return "the packet has no Ethernet source address"
        if (src.lower() == self.mac) == self.inv:
            return f"source MAC {src} {'is' if self.inv else 'is not'} {self.mac}"
        return None


PKT_TYPES = {"unicast": "host", "host": "host", "broadcast": "broadcast", "bcast": "broadcast",
             "multicast": "multicast", "mcast": "multicast", "otherhost": "otherhost"}
_PKT_TYPE_SAVE = {"host": "unicast", "broadcast": "broadcast", "multicast": "multicast",
                  "otherhost": "otherhost"}


class PkttypeMatch(Match):
    name = "pkttype"
    options = {"--pkt-type": Opt(1, True)}

    def __init__(self) -> None:
        super().__init__()
        self.kind, self.inv = "", False

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        k = PKT_TYPES.get(args[0].lower())
        if k is None:
            raise BadValue(f"Bad packet type '{args[0]}'")
        self.kind, self.inv = k, inv

    def finish(self) -> None:
        self._require("--pkt-type")

    def save(self) -> str:
        return f"{_neg(self.inv)}--pkt-type {_PKT_TYPE_SAVE[self.kind]}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        if (ctx.pkttype == self.kind) == self.inv:
            return f"packet type {ctx.pkttype} {'is' if self.inv else 'is not'} {self.kind}"
        return None


# ----------------------------------------------------------------------------- stateful
XT_LIMIT_SCALE = 10000
_RATE_UNITS = (("second", 1), ("minute", 60), ("hour", 3600), ("day", 86400))
_RATE_PRINT = (("day", XT_LIMIT_SCALE * 86400), ("hour", XT_LIMIT_SCALE * 3600),
               ("min", XT_LIMIT_SCALE * 60), ("sec", XT_LIMIT_SCALE))


def parse_rate(text: str) -> int:
    """libxt_limit parse_rate: 'N[/unit-prefix]' -> average period in 1/10000 s."""
    num, sep, unit = text.partition("/")
    mult = 1
    if sep:
        hits = [m for name, m in _RATE_UNITS if unit and name.startswith(unit.lower())]
        if not hits:
            raise BadValue(f'bad rate "{text}"\'')
        mult = hits[0]
    # atoi, base 10: iptables 1.8.9 reads `--limit 010/sec` as 10/sec and refuses 0x10
    r = scan_uint(num, 10, strtoul=True)
    if not r:
        raise BadValue(f'bad rate "{text}"\'')
    period = XT_LIMIT_SCALE * mult // r
    if period == 0:
        raise BadValue(f'Rate too fast "{text}"')
    return period


def rate_text(period: int) -> str:
    """libxt_limit print_rate."""
    i = 1
    while i < len(_RATE_PRINT):
        mult = _RATE_PRINT[i][1]
        if period > mult or mult // period < mult % period:
            break
        i += 1
    name, mult = _RATE_PRINT[i - 1]
    return f"{mult // period}/{name}"


class LimitMatch(Match):
    """xt_limit's token bucket, in microseconds of ctx.now; state lives on the rule."""

    name = "limit"
    options = {"--limit": Opt(1, False), "--limit-burst": Opt(1, False)}
    stateful = True

    def __init__(self) -> None:
        super().__init__()
        self.period = XT_LIMIT_SCALE * 3600 // 3  # default 3/hour
        self.burst = 5
        self.credit: int | None = None
        self.prev = 0

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        if opt == "--limit":
            self.period = parse_rate(args[0])
        else:
            self.burst = parse_uint(
                args[0], 0, 10000,
                'limit: bad value for option "--limit-burst", or out of range (0-10000).')

    def save(self) -> str:
        s = f"--limit {rate_text(self.period)}"
        return s + (f" --limit-burst {self.burst}" if self.burst != 5 else "")

    def test(self, pkt: Any, ctx: Any) -> str | None:
        now = round(ctx.now * 1_000_000)
        cost = self.period * 100  # microseconds per packet
        cap = cost * max(self.burst, 1)
        if self.credit is None:
            self.credit, self.prev = cap, now
        self.credit = min(cap, self.credit + max(0, now - self.prev))
        self.prev = now
        if self.credit >= cost:
            self.credit -= cost
            return None
        return f"rate limit {rate_text(self.period)} burst {self.burst} exceeded"


class StatisticMatch(Match):
    name = "statistic"
    options = {"--mode": Opt(1, False), "--probability": Opt(1, True),
               "--every": Opt(1, True), "--packet": Opt(1, False)}
    stateful = True

    def __init__(self) -> None:
        super().__init__()
        self.mode = ""
        self.prob = 0
        self.every = 0  # stored as every - 1, like the kernel
        self.packet = 0
        self.inv = False
        self.count: int | None = None

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        a = args[0]
        if opt == "--mode":
            if a not in ("random", "nth"):
                raise BadValue(f"Bad mode \"{a}\"")
            self.mode = a
        elif opt == "--probability":
            # strtod; kptui refuses its hex floats, inf and nan (nan is 0 to iptables 1.8.9)
            try:
                p = parse_float(a.lstrip(" \t\n\v\f\r"), 0.0, 1.0)
            except NumberError:
                raise BadValue('statistic: bad value for option "--probability", '
                               'or out of range (0-1).') from None
            self.prob, self.inv = round(0x80000000 * p), inv
        elif opt == "--every":
            self.every = parse_uint(a, 1, 0xFFFFFFFF, 'statistic: bad value for option '
                                    '"--every", or out of range (1-4294967295).') - 1
            self.inv = inv
        else:
            self.packet = parse_uint(a, 0, 0xFFFFFFFF, 'statistic: bad value for option '
                                     '"--packet"')

    def finish(self) -> None:
        self._require("--mode")
        if self.mode == "random" and "--probability" not in self.seen:
            raise BadValue("--probability must be specified when using random mode")
        if self.mode == "nth":
            if "--every" not in self.seen:
                raise BadValue("--every must be specified when using nth mode")
            if "--packet" not in self.seen:
                raise BadValue('statistic: option "--every" also requires "--packet".')
            if self.packet > self.every:
                raise BadValue("the --packet p must be 0 <= p <= n-1")

    def save(self) -> str:
        if self.mode == "random":
            return f"--mode random {_neg(self.inv)}--probability {self.prob / 0x80000000:.11f}"
        return f"--mode nth {_neg(self.inv)}--every {self.every + 1} --packet {self.packet}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        if self.mode == "random":
            hit = ctx.rng.getrandbits(31) < self.prob
        else:
            if self.count is None:
                self.count = self.packet
            self.count = 0 if self.count == self.every else self.count + 1
            hit = self.count == 0
        if hit != self.inv:
            return None
        return f"statistic {self.mode} did not select this packet"


# ----------------------------------------------------------------------------- conntrack
CT_STATES = ("INVALID", "NEW", "RELATED", "ESTABLISHED", "UNTRACKED", "SNAT", "DNAT")
CT_STATUS = ("NONE", "EXPECTED", "SEEN_REPLY", "ASSURED", "CONFIRMED")


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


class StateMatch(Match):
    """xt_state: the packet's conntrack state is one of the listed ones."""

    name = "state"
    options = {"--state": Opt(1, True)}

    def __init__(self) -> None:
        super().__init__()
        self.states: tuple[str, ...] = ()
        self.inv = False

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        self.states = _ct_list(args[0], CT_STATES[:5], "Bad state")
        self.inv = inv

    def finish(self) -> None:
        self._require("--state")

    def save(self) -> str:
        return f"{_neg(self.inv)}--state {','.join(self.states)}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        state = _ct_statebit(pkt)
        if (state in self.states) == self.inv:
            return f"state {state} {'in' if self.inv else 'not in'} {','.join(self.states)}"
        return None


def _ct_port(text: str) -> int:
    """A --ctorigsrcport-style port: base 10 (iptables 1.8.9 reads 010 as 10), or a service."""
    v = scan_uint(text, 10, strtoul=True)
    if v is None or v > 65535:
        v = SERVICES.get(text)
        if v is None:
            raise BadValue(f'Port "{text}" does not resolve to anything.')
    return v


def _ct_port_range(text: str) -> tuple[int, int]:
    lo, sep, hi = text.partition(":")
    a = _ct_port(lo) if lo or not sep else 0
    return a, (_ct_port(hi) if hi else 65535) if sep else a


class ConntrackMatch(Match):
    """xt_conntrack (conntrack_mt, revision 3): every given option must hold."""

    name = "conntrack"
    _ORDER = ("--ctstate", "--ctproto", "--ctorigsrc", "--ctorigdst", "--ctreplsrc",
              "--ctrepldst", "--ctorigsrcport", "--ctorigdstport", "--ctreplsrcport",
              "--ctrepldstport", "--ctstatus", "--ctexpire", "--ctdir")
    options = {o: Opt(1, o != "--ctdir") for o in _ORDER}

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, tuple[str, bool]] = {}
        self.parsed: dict[str, Any] = {}

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        a = args[0]
        if opt == "--ctstate":
            p: Any = _ct_list(a, CT_STATES, "Bad ctstate")
            v = ",".join(p)
        elif opt == "--ctstatus":
            p = _ct_list(a, CT_STATUS, "Bad ctstatus")
            v = ",".join(p)
        elif opt == "--ctproto":
            p = parse_proto(a)
            v = proto_text(p)
        elif opt.endswith(("src", "dst")):
            p = parse_net(a)
            v = net_text(*p)
        elif opt.endswith("port"):
            p = _ct_port_range(a)
            v = range_text(*p)
        elif opt == "--ctdir":
            if a.upper() not in ("ORIGINAL", "REPLY"):
                raise BadValue(f'Unknown --ctdir "{a}"')
            p = v = a.upper()
        else:
            lo, _, hi = a.partition(":")
            what = f'conntrack: bad value for option "{opt}"'
            p = (parse_uint(lo, 0, 0xFFFFFFFF, what), parse_uint(hi or lo, 0, 0xFFFFFFFF, what))
            v = range_text(*p)
        self.values[opt] = (v, inv)
        self.parsed[opt] = p

    def finish(self) -> None:
        if not self.values:
            raise BadValue("conntrack: At least one option is required")

    def save(self) -> str:
        return " ".join(f"{_neg(inv)}{o} {v}" for o in self._ORDER if o in self.values
                        for v, inv in [self.values[o]])

    def test(self, pkt: Any, ctx: Any) -> str | None:
        """conntrack_mt: options in the kernel's order; the first failing one is the reason."""
        from kptui.engine.conntrack import ORIGINAL, REPLY, Status, direction_of

        ct = pkt.meta.ct
        state = _ct_statebit(pkt)
        if "--ctstate" in self.values:
            states = {state}
            if ct is not None:
                if ct.has(Status.SRC_NAT):
                    states.add("SNAT")
                if ct.has(Status.DST_NAT):
                    states.add("DNAT")
            want, inv = self.parsed["--ctstate"], self.values["--ctstate"][1]
            if bool(states & set(want)) == inv:
                return (f"ctstate {','.join(sorted(states))} "
                        f"{'in' if inv else 'not in'} {','.join(want)}")
        if ct is None:
            if "--ctstate" in self.values:
                return None
            return f"no conntrack entry ({state})"
        if "--ctdir" in self.values:
            direction = direction_of(pkt.meta.ctinfo)
            want_dir = ORIGINAL if self.parsed["--ctdir"] == "ORIGINAL" else REPLY
            if direction != want_dir:
                return f"packet is in the {'ORIGINAL' if direction == ORIGINAL else 'REPLY'} " \
                       "direction"
        tuples = {"orig": ct.original, "repl": ct.reply}
        for opt in ("--ctorigsrc", "--ctorigdst", "--ctreplsrc", "--ctrepldst"):
            if opt in self.values:
                tup = tuples[opt[4:8]]
                addr = tup.src if opt.endswith("src") else tup.dst
                net, mask = self.parsed[opt]
                inv = self.values[opt][1]
                if ((int(addr) & mask) == net) == inv:
                    return f"{opt[2:]} {addr} {'matches' if inv else 'does not match'} " \
                           f"{self.values[opt][0]}"
        if "--ctproto" in self.values:
            inv = self.values["--ctproto"][1]
            if (ct.proto == self.parsed["--ctproto"]) == inv:
                return f"connection protocol {proto_text(ct.proto)}"
        for opt in ("--ctorigsrcport", "--ctorigdstport", "--ctreplsrcport", "--ctrepldstport"):
            if opt in self.values:
                tup = tuples[opt[4:8]]
                if opt[8:11] == "src":
                    port = tup.sport
                elif tup.proto == 1:
                    port = tup.icmp_type << 8 | tup.icmp_code  # ntohs(dst.u.all)
                else:
                    port = tup.dport
                lo, hi = self.parsed[opt]
                inv = self.values[opt][1]
                if (lo <= port <= hi) == inv:
                    return f"{opt[2:]} {port} {'in' if inv else 'not in'} {range_text(lo, hi)}"
        if "--ctstatus" in self.values:
            inv = self.values["--ctstatus"][1]
            mask = Status.NONE
            for name in self.parsed["--ctstatus"]:
                mask |= Status[name]
            if bool(ct.status & mask) == inv:
                have = [n for n in CT_STATUS[1:] if ct.status & Status[n]] or ["NONE"]
                return f"ctstatus {','.join(have)} {'has' if inv else 'lacks'} " \
                       f"{','.join(self.parsed['--ctstatus'])}"
        if "--ctexpire" in self.values:
            inv = self.values["--ctexpire"][1]
            left = int(ct.remaining(ctx.now))
            lo, hi = self.parsed["--ctexpire"]
            if (lo <= left <= hi) == inv:
                return f"expires in {left} s, {'in' if inv else 'not in'} {range_text(lo, hi)}"
        return None


MATCHES: dict[str, type[Match]] = {
    cls.name: cls for cls in (
        TcpMatch, UdpMatch, IcmpMatch, MultiportMatch, IprangeMatch, AddrtypeMatch,
        MarkMatch, ConnmarkMatch, CommentMatch, TosMatch, DscpMatch, TtlMatch, LengthMatch,
        MacMatch, PkttypeMatch, LimitMatch, StatisticMatch, StateMatch, ConntrackMatch)
}
