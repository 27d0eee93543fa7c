"""Targets: option parsing, where the kernel allows them, save text, and effect.

``apply`` returns a TargetResult: the verdict (CONTINUE for non-terminating
targets), the field changes made, and an optional log line. Table and chain
restrictions are the ones checked on this machine (iptables-nft 1.8.9, kernel
6.18): e.g. REJECT only in filter INPUT/FORWARD/OUTPUT, TOS/DSCP/TTL only in
mangle, CLASSIFY only at FORWARD/OUTPUT/POSTROUTING, and TRACE anywhere
(iptables-nft turns it into `meta nftrace set 1`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any, ClassVar

from kptui.engine.errors import UnsupportedError
from kptui.engine.iptables.logline import (
    LOG_IPOPT,
    LOG_MACDECODE,
    LOG_TCPOPT,
    LOG_TCPSEQ,
    LOG_UID,
    log_line,
)
from kptui.engine.iptables.matches import Opt
from kptui.engine.iptables.values import (
    SERVICES,
    BadValue,
    inet_pton,
    parse_uint,
    parse_value_mask,
    save_string,
)
from kptui.engine.numbers import U32, U64, scan_uint, split_uint


@dataclass
class TargetResult:
    verdict: str  # ACCEPT DROP REJECT QUEUE RETURN CONTINUE
    changes: list[tuple[str, Any, Any]] = field(default_factory=list)
    log: tuple[str, str, str] | None = None  # (prefix, level, line)
    detail: str = ""


class Target:
    name: ClassVar[str] = ""
    options: ClassVar[dict[str, Opt]] = {}
    tables: ClassVar[frozenset[str] | None] = None
    chains: ClassVar[frozenset[str] | None] = None
    verdict: ClassVar[str] = "CONTINUE"
    proto_now: int = 0  # the rule's -p as parsed up to this target's current option
    proto_inv_now: bool = False
    uses_sets: ClassVar[bool] = False  # the parser gives it the box's ipset sets (.sets)
    # the attributes firing changes, which checkpoints copy (kptui.engine.snapshot)
    state_attrs: ClassVar[tuple[str, ...]] = ()
    seen: frozenset[str] = frozenset()  # the options given so far (as Match.seen)
    seen_in_option: ClassVar[bool] = False


    def option(self, opt: str, args: list[str], inv: bool) -> None:
        raise NotImplementedError

    def finish(self, proto: int, proto_inv: bool) -> None:
        """Checks needing the whole rule (e.g. REJECT tcp-reset needs -p tcp)."""

    def save(self) -> str:
        return ""

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        """The verdict and changes. A target that is parsed and printed but not
        simulated keeps this: the walk stops, named, never a guess."""
        raise UnsupportedError(f"-j {self.name} (parsed, not simulated)")


class Standard(Target):
    """ACCEPT, DROP, RETURN and QUEUE: verdicts without options."""

    def __init__(self, verdict: str) -> None:
        super().__init__()
        self.name = verdict  # type: ignore[misc]
        self.std = verdict

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        return TargetResult(self.std)


class ChainTarget(Target):
    """-j CHAIN or -g CHAIN: traversal handles the jump itself."""

    def __init__(self, chain: str, goto: bool) -> None:
        super().__init__()
        self.name = chain  # type: ignore[misc]
        self.chain = chain
        self.goto = goto


def _set(pkt: Any, path: str, value: Any, out: TargetResult) -> None:
    old, new = pkt.set(path, value)
    if old != new:
        out.changes.append((path, old, new))


# ----------------------------------------------------------------------------- CLASSIFY, TRACE
# (MARK, TOS, DSCP and TTL are xtopt extensions: ext/mark_target.py, ext/tos_target.py,
# ext/ttl_target.py)
class ClassifyTarget(Target):
    """xt_CLASSIFY: `skb->priority = clinfo->priority` (net/netfilter/xt_CLASSIFY.c).

    The kernel sets the skb priority, which tc's classifiers then read as a
    class id (MAJOR:MINOR); there is no separate classid in the skb.
    """

    name = "CLASSIFY"
    options = {"--set-class": Opt(1, False)}
    chains = frozenset({"FORWARD", "OUTPUT", "POSTROUTING"})
    own_checks = True  # an xtopt option: once and invert are worded by libxtables

    def __init__(self) -> None:
        super().__init__()
        self.classid = 0

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        """libxt_CLASSIFY: ``sscanf(s, "%x:%x")`` then TC_H_MAKE(major << 16, minor).

        As on iptables 1.8.9: ``0x1:0x2`` and `` 1: 2`` are 1:2, what follows the
        second number is ignored (``1:2foo`` is 1:2f), each half keeps its low 16
        bits (``10000:1`` is 0:1, ``10:1ffff`` is 10:ffff); ``1 :2`` is refused.
        """
        if opt in self.seen:
            raise BadValue('CLASSIFY: option "--set-class" can only be used once.')
        if inv:
            raise BadValue('CLASSIFY: option "--set-class" cannot be inverted.')
        first = _scan_hex(args[0])
        second = _scan_hex(first[1][1:]) if first and first[1][:1] == ":" else None
        if first is None or second is None:
            raise BadValue(f'Bad class value "{args[0]}"')
        self.classid = ((first[0] & 0xFFFF) << 16) | (second[0] & 0xFFFF)

    def finish(self, proto: int, proto_inv: bool) -> None:
        if not self.seen:
            raise BadValue('CLASSIFY: option "--set-class" must be specified')

    def save(self) -> str:
        # CLASSIFY_save: "%.4x:%.4x" (the arp flavour prints "%x:%x")
        return f"--set-class {self.classid >> 16:04x}:{self.classid & 0xFFFF:04x}"

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        out = TargetResult("CONTINUE")
        _set(pkt, "meta.priority", self.classid, out)
        return out


def _scan_hex(text: str) -> tuple[int, str] | None:
    """scanf's ``%x``: blanks, a sign, ``0x``, hex digits -> (unsigned int value, rest)."""
    body = text.lstrip(" \t\n\v\f\r")
    negative = body[:1] == "-"
    if body[:1] in ("-", "+"):
        body = body[1:]
    if body[:2] in ("0x", "0X") and split_uint(body[2:], 16)[0]:
        body = body[2:]
    digits, rest = split_uint(body, 16)
    if not digits:
        return None
    value = min(scan_uint(digits, 16) or 0, U64)  # strtoul saturates at ULONG_MAX
    return (-value if negative else value) & U32, rest


class TraceTarget(Target):
    name = "TRACE"

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        return TargetResult("CONTINUE", detail="packet marked for tracing")


# ----------------------------------------------------------------------------- LOG
LOG_LEVELS = {"emerg": 0, "panic": 0, "alert": 1, "crit": 2, "err": 3, "error": 3,
              "warning": 4, "warn": 4, "notice": 5, "info": 6, "debug": 7}
_LEVEL_NAMES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
_LOG_FLAGS = (("--log-tcp-sequence", LOG_TCPSEQ), ("--log-tcp-options", LOG_TCPOPT),
              ("--log-ip-options", LOG_IPOPT), ("--log-uid", LOG_UID),
              ("--log-macdecode", LOG_MACDECODE))


class LogTarget(Target):
    name = "LOG"
    options = {"--log-level": Opt(1, False), "--log-prefix": Opt(1, False),
               **{o: Opt(0, False) for o, _ in _LOG_FLAGS}}

    def __init__(self) -> None:
        super().__init__()
        self.level, self.prefix, self.flags = 4, "", 0

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        if opt == "--log-level":
            a = args[0]
            if a.lower() in LOG_LEVELS:
                self.level = LOG_LEVELS[a.lower()]
            else:  # base 0, as iptables 1.8.9 reads it: 07 and 0x7 are 7, 010 is refused
                self.level = parse_uint(a, 0, 7, f'log level "{a}" unknown')
        elif opt == "--log-prefix":
            if not args[0]:
                raise BadValue("No prefix specified for --log-prefix")
            self.prefix = args[0][:29]  # iptables 1.8.9 truncates to 29 characters
        else:
            self.flags |= dict(_LOG_FLAGS)[opt]

    def save(self) -> str:
        out = []
        if self.prefix:
            out.append(f"--log-prefix {save_string(self.prefix)}")
        if self.level != 4:
            out.append(f"--log-level {self.level}")
        out += [o for o, f in _LOG_FLAGS if self.flags & f]
        return " ".join(out)

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        line = log_line(pkt, ctx, self.prefix, self.flags)
        return TargetResult("CONTINUE", log=(self.prefix, _LEVEL_NAMES[self.level], line))


# ----------------------------------------------------------------------------- REJECT, QUEUE
REJECT_TYPES = {
    "icmp-net-unreachable": "icmp-net-unreachable", "net-unreach": "icmp-net-unreachable",
    "icmp-host-unreachable": "icmp-host-unreachable", "host-unreach": "icmp-host-unreachable",
    "icmp-proto-unreachable": "icmp-proto-unreachable",
    "proto-unreach": "icmp-proto-unreachable",
    "icmp-port-unreachable": "icmp-port-unreachable", "port-unreach": "icmp-port-unreachable",
    "icmp-net-prohibited": "icmp-net-prohibited", "net-prohib": "icmp-net-prohibited",
    "icmp-host-prohibited": "icmp-host-prohibited", "host-prohib": "icmp-host-prohibited",
    "tcp-reset": "tcp-reset", "tcp-rst": "tcp-reset",
    "icmp-admin-prohibited": "icmp-admin-prohibited", "admin-prohib": "icmp-admin-prohibited",
}


class RejectTarget(Target):
    name = "REJECT"
    options = {"--reject-with": Opt(1, False)}
    tables = frozenset({"filter"})
    chains = frozenset({"INPUT", "FORWARD", "OUTPUT"})
    verdict = "REJECT"

    def __init__(self) -> None:
        super().__init__()
        self.kind = "icmp-port-unreachable"

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        k = REJECT_TYPES.get(args[0])
        if k is None:
            raise BadValue(f'unknown reject type "{args[0]}"')
        self.kind = k

    def finish(self, proto: int, proto_inv: bool) -> None:
        if self.kind == "tcp-reset" and (proto != 6 or proto_inv):
            raise BadValue("REJECT --reject-with tcp-reset needs -p tcp (the kernel refuses "
                           "it otherwise: Invalid argument)")

    def save(self) -> str:
        return f"--reject-with {self.kind}"

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        return TargetResult("REJECT", detail=self.kind)


# ----------------------------------------------------------------------------- parse-only
class _Opaque(Target):
    """Targets with free-form options saved as given; not simulated unless ``apply`` is
    overridden (the base class stops the walk, named)."""

    arg_options: ClassVar[tuple[str, ...]] = ()
    flag_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        super().__init__()
        self.given: list[tuple[str, str | None]] = []

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        self.given.append((opt, args[0] if args else None))

    def save(self) -> str:
        return " ".join(o if a is None else f"{o} {save_string(a) if ' ' in a else a}"
                        for o, a in self.given)


class ConnmarkTarget(_Opaque):
    """CONNMARK, saved in iptables' canonical form (--set-xmark, explicit masks)."""

    name = "CONNMARK"
    options = {**{o: Opt(1, False) for o in ("--set-mark", "--set-xmark", "--and-mark",
                                               "--or-mark", "--xor-mark", "--nfmask",
                                               "--ctmask", "--mask")},
               "--save-mark": Opt(0, False), "--restore-mark": Opt(0, False)}

    def __init__(self) -> None:
        super().__init__()
        self.mode = ""
        self.value, self.mask = 0, 0
        self.nfmask = self.ctmask = 0xFFFFFFFF

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        what = f'CONNMARK: bad value for option "{opt}"'
        if opt in ("--save-mark", "--restore-mark"):
            self.mode = opt
        elif opt in ("--nfmask", "--ctmask", "--mask"):
            v = parse_uint(args[0], 0, 0xFFFFFFFF, what)
            if opt in ("--nfmask", "--mask"):
                self.nfmask = v
            if opt in ("--ctmask", "--mask"):
                self.ctmask = v
        else:
            self.mode = "--set-xmark"
            if opt in ("--set-mark", "--set-xmark"):
                v, m = parse_value_mask(args[0], what)
                self.value, self.mask = v, (m | v if opt == "--set-mark" else m)
            else:
                v = parse_uint(args[0], 0, 0xFFFFFFFF, what)
                self.value, self.mask = {"--and-mark": (0, ~v & 0xFFFFFFFF),
                                         "--or-mark": (v, v), "--xor-mark": (v, 0)}[opt]

    def finish(self, proto: int, proto_inv: bool) -> None:
        if not self.mode:
            raise BadValue("CONNMARK target: No operation specified")

    def save(self) -> str:
        if self.mode == "--set-xmark":
            return f"--set-xmark {self.value:#x}/{self.mask:#x}"
        return f"{self.mode} --nfmask {self.nfmask:#x} --ctmask {self.ctmask:#x}"

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        """xt_CONNMARK connmark_tg_shift (no shift): nothing without a conntrack entry."""
        out = TargetResult("CONTINUE")
        ct = pkt.meta.ct
        if ct is None:
            out.detail = "no conntrack entry: nothing to do"
            return out
        if self.mode == "--set-xmark":
            _set(pkt, "meta.ctmark", (ct.mark & ~self.mask & 0xFFFFFFFF) ^ self.value, out)
        elif self.mode == "--save-mark":
            new = (ct.mark & ~self.ctmask & 0xFFFFFFFF) ^ (pkt.meta.mark & self.nfmask)
            _set(pkt, "meta.ctmark", new, out)
        else:  # --restore-mark
            new = (pkt.meta.mark & ~self.nfmask & 0xFFFFFFFF) ^ (ct.mark & self.ctmask)
            _set(pkt, "meta.mark", new, out)
        return out


class _NotrackBase(_Opaque):
    """NOTRACK and CT --notrack (xt_ct_target): the packet becomes UNTRACKED."""

    def _notrack(self, pkt: Any) -> TargetResult:
        from kptui.engine.conntrack import set_untracked

        out = TargetResult("CONTINUE")
        old = pkt.meta.ctstate
        if set_untracked(pkt.meta):
            out.changes.append(("meta.ctstate", old, "UNTRACKED"))
        else:
            out.detail = "the packet already has its conntrack state (looped back): ignored"
        return out

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        return self._notrack(pkt)


class NotrackTarget(_NotrackBase):
    name = "NOTRACK"
    tables = frozenset({"raw"})


# ----------------------------------------------------------------------------- NAT
# libxt_NAT.c __NAT_parse: the protocols whose rules may give ports (inversion ignored)
_PORT_PROTOS = frozenset({6, 17, 132, 33, 1})
MAP_IPS, PROTO_SPECIFIED, PROTO_OFFSET = 1, 2, 32  # include/uapi/linux/netfilter/nf_nat.h
_NAT_FLAGS = (("--random", 4), ("--random-fully", 16), ("--persistent", 8))


def _strtoui_end(text: str, lo: int, hi: int) -> tuple[int | None, str]:
    """xtables_strtoui with an end pointer: blanks, an optional ``+``, base 0 digits in
    [lo, hi] -> (value, what follows); (None, text) when that fails (a ``-`` does)."""
    body = text.lstrip(" \t\n\v\f\r")
    if body[:1] == "+":
        body = body[1:]
    base = 10
    if body[:2].lower() == "0x" and split_uint(body[2:], 16)[0]:
        body, base = body[2:], 16
    elif body[:1] == "0":
        base = 8
    digits, rest = split_uint(body, base)
    value = scan_uint(digits, base) if digits else None
    if value is None or not lo <= value <= hi:
        return None, text
    return value, rest


def _service(text: str) -> int:
    """xtables_service_to_port(name, NULL): a service name, or iptables' refusal."""
    port = SERVICES.get(text)
    if port is None:
        raise BadValue(f"Port `{text}' not valid")
    return port


# port texts already read (kube-proxy dumps repeat a few hundred DNAT ports many times)
_NAT_PORTS: dict[str, tuple[int, int, int | None]] = {}


def _nat_ports(arg: str) -> tuple[int, int, int | None]:
    """libxt_NAT.c parse_ports: ``port[-port[/base]]`` -> (min, max, base or None).

    A lone port may be a service name (``ssh``); the end of a range may not. What
    follows the base port is ignored, as xtables_strtoui with an end pointer does.
    """
    got = _NAT_PORTS.get(arg)
    if got is None:
        got = _read_nat_ports(arg)
        if len(_NAT_PORTS) < 8192:
            _NAT_PORTS[arg] = got
    return got


def _read_nat_ports(arg: str) -> tuple[int, int, int | None]:
    port, end = _strtoui_end(arg, 0, 65535)
    if port is None:
        port, end = _service(arg), ""
    if end == "":
        return port, port, None
    if end[0] == ":":
        raise BadValue("Invalid port:port syntax - use dash")
    if end[0] != "-":
        raise BadValue(f"Garbage after port value: `{end}'")
    arg = end[1:]
    maxport, end = _strtoui_end(arg, 0, 65535)
    if maxport is None:
        raise BadValue(f"Port `{arg}' not valid")
    if maxport < port:
        raise BadValue(f"Port range `{arg}' funky")
    if end == "":
        return port, maxport, None
    if end[0] != "/":
        raise BadValue(f"Garbage after port range: `{end}'")
    arg = end[1:]
    base = _strtoui_end(arg, 1, 65535)[0]
    return port, maxport, _service(arg) if base is None else base


def _parse_addr(text: str) -> Any:
    # inet_pton, as iptables 1.8.9 reads it: `--to-destination 010.0.0.1` is refused
    value = inet_pton(text)
    if value is None:
        raise BadValue(f'Bad IP address "{text}"')
    return IPv4Address(value)


class _NatTarget(_Opaque):
    """The NAT targets: they ask nf_nat_setup_info for a binding and end the nat chain.

    kptui.engine.nat does the work (ranges, unique tuples, the packet rewrite);
    here are the options (libxt_NAT.c: an xtopt table, every option once and none
    invertible, worded by libxtables), the hooks the kernel allows and the range
    asked for, saved as __NAT_print prints it.
    """

    tables = frozenset({"nat"})
    verdict = "ACCEPT"
    own_checks = True  # the rule parser leaves once/invert to option(), in xtopt's words
    flag_bits: ClassVar[dict[str, int]] = dict(_NAT_FLAGS)
    save_option: ClassVar[str] = "--to-ports"
    skip_colon: ClassVar[bool] = True  # MASQUERADE/REDIRECT print ports without the ':'
    keeps_base: ClassVar[bool] = False  # only DNAT revision 2 (nf_nat_range2) has base_proto

    def __init__(self) -> None:
        super().__init__()
        self.flags = 0
        self.ports: tuple[int, int] = (0, 0)
        self.base = 0
        self.has_ports = False
        self.addrs: tuple[Any, Any] = (_ANY, _ANY)
        self.addr_text = ""  # as sprint_range prints the addresses (inet_pton's text is)
        self._range: Any = None

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        if opt in self.seen:
            raise BadValue(f'{self.name}: option "{opt}" can only be used once.')
        if inv:
            raise BadValue(f'{self.name}: option "{opt}" cannot be inverted.')
        super().option(opt, args, inv)
        if opt in self.flag_bits:
            self.flags |= self.flag_bits[opt]
        else:
            self.value(opt, args[0])

    def value(self, opt: str, text: str) -> None:
        """--to-ports: parse_ports."""
        self.set_ports(text)

    def set_ports(self, text: str) -> None:
        # __NAT_parse's portok: the -p given before this option names a protocol with
        # ports (getopt order: `-j DNAT --to-destination :80 -p tcp` is refused)
        if self.proto_now not in _PORT_PROTOS:
            raise BadValue("Need TCP, UDP, SCTP or DCCP with port specification")
        lo, hi, base = _nat_ports(text)
        self.ports, self.has_ports = (lo, hi), True
        self.flags |= PROTO_SPECIFIED
        if base is not None:
            self.flags |= PROTO_OFFSET
            self.base = base if self.keeps_base else 0  # the compat range has no base

    def finish(self, proto: int, proto_inv: bool) -> None:
        self.check()

    @property
    def range(self) -> Any:
        """The nf_nat_range2 the target asks for, made when a packet first needs it
        (a restore of 5,000 DNAT rules would make 5,000 for the few a walk fires)."""
        if self._range is None:
            self._range = _nat_range()(self.flags & ~PROTO_OFFSET, *self.addrs, *self.ports)
        return self._range

    def check(self) -> None:
        """x6_fcheck and the mandatory option, in libxtables' order."""

    def range_text(self) -> str:
        """sprint_range: [addr[-addr]][:port[-port][/base]]."""
        text = self.addr_text if self.flags & MAP_IPS else ""
        if self.flags & PROTO_SPECIFIED:
            lo, hi = self.ports
            text += f":{lo}" if lo == hi else f":{lo}-{hi}"
            if self.flags & PROTO_OFFSET:
                text += f"/{self.base}"
        return text[1:] if self.skip_colon and text[:1] == ":" else text

    def save(self) -> str:
        text = self.range_text()
        out = f"{self.save_option} {text}" if text else ""
        if self.flags & 28:  # --random, --random-fully, --persistent
            out = " ".join(([out] if out else []) +
                           [name for name, bit in _NAT_FLAGS if self.flags & bit])
        return out

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        if self.flags & PROTO_OFFSET:
            raise UnsupportedError(f"-j {self.name} with a shifted port range "
                                   f"({self.range_text()}: nf_nat's base-port offset)")
        if self.flags & MAP_IPS and self.addrs[0] > self.addrs[1]:
            raise UnsupportedError(f"-j {self.name} with the address range "
                                   f"{self.range_text()}, whose first address is above its "
                                   "last (the kernel's unsigned wrap-around)")
        hook = getattr(ctx, "nat", None)
        if hook is None:
            return TargetResult("ACCEPT", detail="no conntrack entry: nothing to bind")
        verdict, detail = hook.bind(self)
        return TargetResult(verdict, detail=detail)


_ANY = IPv4Address(0)


@functools.cache
def _nat_range() -> Any:
    """kptui.engine.nat.NatRange, imported on first use (nat imports this package)."""
    from kptui.engine.nat import NatRange

    return NatRange


class _ToRange(_NatTarget):
    """SNAT --to-source / DNAT --to-destination [ipaddr[-ipaddr]][:port[-port[/port]]]."""

    save_option: ClassVar[str] = ""
    skip_colon = False

    def value(self, opt: str, text: str) -> None:
        """libxt_NAT.c parse_to: the ports after the only ':' first, then the address."""
        if "[" in text:
            raise BadValue("Invalid address format")  # brackets are IPv6 syntax
        colon = text.find(":")
        if colon >= 0 and ":" in text[colon + 1:]:
            colon = -1  # two colons: an IPv6 address, which inet_pton(AF_INET) refuses
        addr = text
        if colon >= 0:
            self.set_ports(text[colon + 1:])
            if colon in (0, 2):  # C's test for ":port" and "[]:port"
                return
            addr = text[:colon]
        self.flags |= MAP_IPS
        lo, dash, hi = addr.partition("-")
        first = _parse_addr(lo)
        last = _parse_addr(hi) if dash else first
        self.addrs = (first, last)
        self.addr_text = lo if last == first else f"{lo}-{hi}"  # inet_pton's text is canonical

    def check(self) -> None:
        if self.save_option not in self.seen:
            raise BadValue(f'{self.name}: option "{self.save_option}" must be specified')


class DnatTarget(_ToRange):
    """DNAT, revision 2 (nf_nat_range2): a shifted port range keeps its base port."""

    name = "DNAT"
    save_option = "--to-destination"
    keeps_base = True
    options = {"--to-destination": Opt(1, False), "--random": Opt(0, False),
               "--persistent": Opt(0, False)}
    chains = frozenset({"PREROUTING", "OUTPUT"})


class SnatTarget(_ToRange):
    """SNAT, revision 0: a /base is accepted and lost (saved as /0), as 1.8.9 does."""

    name = "SNAT"
    save_option = "--to-source"
    options = {"--to-source": Opt(1, False), "--random": Opt(0, False),
               "--random-fully": Opt(0, False), "--persistent": Opt(0, False)}
    chains = frozenset({"INPUT", "POSTROUTING"})


class MasqueradeTarget(_NatTarget):
    name = "MASQUERADE"
    options = {"--to-ports": Opt(1, False), "--random": Opt(0, False),
               "--random-fully": Opt(0, False)}
    chains = frozenset({"POSTROUTING"})


class RedirectTarget(_NatTarget):
    """REDIRECT, revision 0 with DNAT_fcheck: no shifted port ranges."""

    name = "REDIRECT"
    options = {"--to-ports": Opt(1, False), "--random": Opt(0, False)}
    chains = frozenset({"PREROUTING", "OUTPUT"})

    def check(self) -> None:
        if self.flags & PROTO_OFFSET:
            raise BadValue("Shifted portmap ranges not supported with this kernel")


class NetmapTarget(_NatTarget):
    """NETMAP --to address[/mask]: valid at all four nat hooks (netmap_tg_reg)."""

    name = "NETMAP"
    options = {"--to": Opt(1, False)}

    def __init__(self) -> None:
        super().__init__()
        self.network: Any = None

    def value(self, opt: str, text: str) -> None:
        from ipaddress import IPv4Network

        try:
            self.network = IPv4Network(text, strict=False)
        except ValueError:
            raise BadValue(f'NETMAP: Bad IP address "{text}"') from None

    def finish(self, proto: int, proto_inv: bool) -> None:
        if self.network is None:
            raise BadValue("NETMAP: Need --to")

    def save(self) -> str:
        return f"--to {self.network}"  # iptables-save prints the network (checked, 1.8.9)


IMQ_MAX_DEVS = 16  # linuximq imq.h


class ImqTarget(Target):
    """IMQ (the linuximq patch for 2.4, never merged; the classic-2.4 profile only).

    libipt_IMQ: ``--todev N`` (default 0) flags the packet for imqN; the imq hooks
    (after mangle PREROUTING, last in POSTROUTING) queue it to that device, whose
    egress qdisc shapes it. The target itself only flags: it never decides.
    The patch's checkentry allows it in the mangle table only.
    """

    name = "IMQ"
    options = {"--todev": Opt(1, False)}
    tables = frozenset({"mangle"})
    MAX_DEVS = IMQ_MAX_DEVS  # checkentry tests "todev > IMQ_MAX_DEVS": 16 passes

    def __init__(self) -> None:
        super().__init__()
        self.todev = 0

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        self.todev = parse_uint(args[0], 0, self.MAX_DEVS,
                                f"IMQ: invalid device specified, highest is {self.MAX_DEVS}")

    def save(self) -> str:
        return f"--todev {self.todev}"

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        return TargetResult("CONTINUE", detail=f"imq{self.todev}")


TARGETS: dict[str, type[Target]] = {
    cls.name: cls for cls in (
        ClassifyTarget, TraceTarget, LogTarget,
        RejectTarget, ConnmarkTarget,
        DnatTarget, SnatTarget, MasqueradeTarget, RedirectTarget, NetmapTarget,
        NotrackTarget, ImqTarget,
    )
}
STANDARD_VERDICTS = ("ACCEPT", "DROP", "RETURN", "QUEUE")
