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
from kptui.engine.iptables.matches import TOS_NAMES, Opt, parse_dscp
from kptui.engine.iptables.values import (
    BadValue,
    inet_pton,
    parse_uint,
    parse_value_mask,
    port_number,
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

    def __init__(self) -> None:
        self.seen: set[str] = set()

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


# ----------------------------------------------------------------------------- MARK family
class MarkTarget(Target):
    """xt_MARK: mark = (mark & ~mask) ^ value; every option is saved as --set-xmark."""

    name = "MARK"
    options = {o: Opt(1, False) for o in
               ("--set-mark", "--set-xmark", "--and-mark", "--or-mark", "--xor-mark")}
    path = "meta.mark"

    def __init__(self) -> None:
        super().__init__()
        self.value, self.mask = 0, 0

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        if self.seen & set(self.options):
            raise BadValue(f"{self.name} target: Can't specify more than one action")
        what = f'{self.name}: bad value for option "{opt}"'
        if opt in ("--set-mark", "--set-xmark"):
            v, m = parse_value_mask(args[0], what)
            self.value, self.mask = v, (m | v if opt == "--set-mark" else m)
        else:
            v = parse_uint(args[0], 0, 0xFFFFFFFF, what)
            self.value, self.mask = {"--and-mark": (0, ~v & 0xFFFFFFFF), "--or-mark": (v, v),
                                     "--xor-mark": (v, 0)}[opt]

    def finish(self, proto: int, proto_inv: bool) -> None:
        if not self.seen:
            raise BadValue(f"{self.name} target: Parameter --set/and/or/xor-mark is required")

    def save(self) -> str:
        return f"--set-xmark {self.value:#x}/{self.mask:#x}"

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        out = TargetResult("CONTINUE")
        old = pkt.get(self.path)
        _set(pkt, self.path, (old & ~self.mask & 0xFFFFFFFF) ^ self.value, out)
        out.detail = f"{self.path} {old:#x} -> {pkt.get(self.path):#x}"
        return out


class TosTarget(Target):
    name = "TOS"
    options = {o: Opt(1, False) for o in ("--set-tos", "--and-tos", "--or-tos", "--xor-tos")}
    tables = frozenset({"mangle"})

    def __init__(self) -> None:
        super().__init__()
        self.value, self.mask = 0, 0

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        what = f'TOS: bad value for option "{opt}", or out of range (0-255).'
        a = args[0]
        if opt == "--set-tos":
            names = {k.lower(): v for k, v in TOS_NAMES.items()}
            if a.lower() in names:
                self.value, self.mask = names[a.lower()], 0x3F
                return
            v, sep, m = a.partition("/")
            self.value = parse_uint(v, 0, 255, what)
            self.mask = parse_uint(m, 0, 255, what) if sep else 0xFF
        else:
            v = parse_uint(a, 0, 255, what)
            self.value, self.mask = {"--and-tos": (0, ~v & 0xFF), "--or-tos": (v, v),
                                     "--xor-tos": (v, 0)}[opt]

    def finish(self, proto: int, proto_inv: bool) -> None:
        if not self.seen:
            raise BadValue("TOS: --set-tos parameter required")

    def save(self) -> str:
        return f"--set-tos {self.value:#04x}/{self.mask:#04x}"

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        out = TargetResult("CONTINUE")
        _set(pkt, "ip.tos", (pkt.ip.tos & ~self.mask & 0xFF) ^ self.value, out)
        return out


class DscpTarget(Target):
    name = "DSCP"
    options = {"--set-dscp": Opt(1, False), "--set-dscp-class": Opt(1, False)}
    tables = frozenset({"mangle"})

    def __init__(self) -> None:
        super().__init__()
        self.dscp = 0

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        if self.seen:
            raise BadValue("DSCP target: Only use --set-dscp ONCE!")
        self.dscp = parse_dscp(opt, args[0], "DSCP")

    def finish(self, proto: int, proto_inv: bool) -> None:
        if not self.seen:
            raise BadValue("DSCP target: Parameter --set-dscp is required")

    def save(self) -> str:
        return f"--set-dscp {self.dscp:#04x}"

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        out = TargetResult("CONTINUE")
        _set(pkt, "ip.tos", (pkt.ip.tos & 0x03) | (self.dscp << 2), out)
        return out


class TtlTarget(Target):
    name = "TTL"
    options = {"--ttl-set": Opt(1, False), "--ttl-dec": Opt(1, False), "--ttl-inc": Opt(1, False)}
    tables = frozenset({"mangle"})

    def __init__(self) -> None:
        super().__init__()
        self.op, self.value = "", 0

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        if self.op:
            raise BadValue("TTL: You must specify only one action")
        self.op = opt
        self.value = parse_uint(args[0], 0, 255,
                                f'TTL: bad value for option "{opt}", or out of range (0-255).')
        if self.value == 0 and opt != "--ttl-set":
            raise BadValue(f"TTL: {'decreasing' if opt == '--ttl-dec' else 'increasing'} by 0?")

    def finish(self, proto: int, proto_inv: bool) -> None:
        if not self.op:
            raise BadValue("TTL: You must specify an action")

    def save(self) -> str:
        return f"{self.op} {self.value}"

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        t = pkt.ip.ttl
        new = {"--ttl-set": self.value, "--ttl-dec": max(0, t - self.value),
               "--ttl-inc": min(255, t + self.value)}[self.op]
        out = TargetResult("CONTINUE")
        _set(pkt, "ip.ttl", new, out)
        return out


class ClassifyTarget(Target):
    """xt_CLASSIFY: `skb->priority = clinfo->priority` (net/netfilter/xt_CLASSIFY.c).

    The kernel sets the skb priority, which tc's classifiers then read as a
    class id (MAJOR:MINOR); there is no separate classid in the skb.
    """

    name = "CLASSIFY"
    options = {"--set-class": Opt(1, False)}
    chains = frozenset({"FORWARD", "OUTPUT", "POSTROUTING"})

    def __init__(self) -> None:
        super().__init__()
        self.classid = 0

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        """libxt_CLASSIFY: ``sscanf(s, "%x:%x")`` then TC_H_MAKE(major << 16, minor).

        As on iptables 1.8.9: ``0x1:0x2`` and `` 1: 2`` are 1:2, what follows the
        second number is ignored (``1:2foo`` is 1:2f), each half keeps its low 16
        bits (``10000:1`` is 0:1, ``10:1ffff`` is 10:ffff); ``1 :2`` is refused.
        """
        first = _scan_hex(args[0])
        second = _scan_hex(first[1][1:]) if first and first[1][:1] == ":" else None
        if first is None or second is None:
            raise BadValue(f'Bad class value "{args[0]}"')
        self.classid = ((first[0] & 0xFFFF) << 16) | (second[0] & 0xFFFF)

    def finish(self, proto: int, proto_inv: bool) -> None:
        if not self.seen:
            raise BadValue('CLASSIFY: option "--set-class" must be specified')

    def save(self) -> str:
        return f"--set-class {self.classid >> 16:x}:{self.classid & 0xFFFF:x}"

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


class NfqueueTarget(Target):
    name = "NFQUEUE"
    options = {"--queue-num": Opt(1, False), "--queue-balance": Opt(1, False),
               "--queue-bypass": Opt(0, False), "--fail-open": Opt(0, False),
               "--queue-cpu-fanout": Opt(0, False)}
    verdict = "QUEUE"

    def __init__(self) -> None:
        super().__init__()
        self.num = 0
        self.balance = ""
        self.flags: list[str] = []

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        what = f'NFQUEUE: bad value for option "{opt}"'
        if opt == "--queue-num":
            self.num = parse_uint(args[0], 0, 65535, what)
        elif opt == "--queue-balance":
            a, _, b = args[0].partition(":")
            lo, hi = parse_uint(a, 0, 65535, what), parse_uint(b or a, 0, 65535, what)
            if lo > hi:
                raise BadValue("NFQUEUE: --queue-balance: first queue must be lower than last")
            self.balance = f"{lo}:{hi}"
        else:
            self.flags.append(opt)

    def save(self) -> str:
        out = [f"--queue-balance {self.balance}"] if self.balance else (
            [f"--queue-num {self.num}"] if self.num else [])
        order = ("--queue-bypass", "--fail-open", "--queue-cpu-fanout")
        return " ".join(out + [f for f in order if f in self.flags])

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        return TargetResult("QUEUE", detail=f"queue {self.balance or self.num}")


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


class CtTarget(_NotrackBase):
    name = "CT"
    options = {**{o: Opt(1, False) for o in ("--zone", "--zone-orig", "--zone-reply",
                                               "--helper", "--ctevents", "--expevents",
                                               "--timeout")},
               "--notrack": Opt(0, False)}
    tables = frozenset({"raw"})

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        if any(opt == "--notrack" for opt, _ in self.given):
            return self._notrack(pkt)  # xt_ct_tg_check: --notrack ignores everything else
        opts = " ".join(opt for opt, _ in self.given)
        what = f"with {opts}" if opts else "without options"
        raise UnsupportedError(f"the CT target {what} (only CT --notrack is modelled)")


# ----------------------------------------------------------------------------- NAT
_PORT_PROTOS = {6: "tcp", 17: "udp", 132: "sctp", 33: "dccp"}


def _parse_ports(text: str, what: str) -> tuple[int, int]:
    """``port[-port]``, each base 0 as iptables 1.8.9 reads them (``010-0x20`` is 8-32)."""
    lo, sep, hi = text.partition("-")
    a = port_number(lo)
    b = port_number(hi) if sep else a
    if a is None or b is None:
        raise BadValue(f'{what}: Port "{text}" not valid')
    if a > b:
        raise BadValue(f'{what}: Port range "{text}" is invalid')
    return a, b


def _parse_addr(text: str, what: str) -> Any:
    # inet_pton, as iptables 1.8.9 reads it: `--to-destination 010.0.0.1` is refused
    value = inet_pton(text)
    if value is None:
        raise BadValue(f'{what}: Bad IP address "{text}"')
    return IPv4Address(value)


class _NatTarget(_Opaque):
    """The NAT targets: they ask nf_nat_setup_info for a binding and end the nat chain.

    kptui.engine.nat does the work (ranges, unique tuples, the packet rewrite);
    here are the options, the hooks the kernel allows and the range asked for.
    """

    tables = frozenset({"nat"})
    verdict = "ACCEPT"
    flag_bits: ClassVar[dict[str, int]] = {"--random": 4, "--random-fully": 16,
                                           "--persistent": 8}

    def __init__(self) -> None:
        super().__init__()
        self.flags = 0
        self.ports: tuple[int, int] = (0, 0)
        self.has_ports = False

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        super().option(opt, args, inv)
        if opt in self.flag_bits:
            self.flags |= self.flag_bits[opt]
        else:
            self.value(opt, args[0])

    def value(self, opt: str, text: str) -> None:
        self.ports = _parse_ports(text, self.name)
        self.has_ports = True
        self.flags |= 2  # NF_NAT_RANGE_PROTO_SPECIFIED

    def finish(self, proto: int, proto_inv: bool) -> None:
        if self.has_ports and (proto not in _PORT_PROTOS or proto_inv):
            raise BadValue(f"{self.name}: Need TCP, UDP, SCTP or DCCP with port specification")

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
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
    """SNAT --to-source / DNAT --to-destination [ipaddr[-ipaddr]][:port[-port]]."""

    def __init__(self) -> None:
        super().__init__()
        self.range: Any = None
        self._addr: Any = None

    def value(self, opt: str, text: str) -> None:
        if self._addr is not None or self.has_ports:
            raise BadValue(f'{self.name}: option "{opt}" can only be used once.')
        addr, sep, ports = text.partition(":")
        if sep:
            super().value(opt, ports)
        if addr:
            lo, dash, hi = addr.partition("-")
            a = _parse_addr(lo, self.name)
            b = _parse_addr(hi, self.name) if dash else a
            if a > b:
                raise BadValue(f'{self.name}: Bad IP range "{addr}"')
            self._addr = (a, b)
            self.flags |= 1  # NF_NAT_RANGE_MAP_IPS
        elif not sep:
            raise BadValue(f'{self.name}: Bad IP address "{text}"')

    def finish(self, proto: int, proto_inv: bool) -> None:
        if self._addr is None and not self.has_ports:
            raise BadValue(f"{self.name}: You must specify {self.to_option}")
        super().finish(proto, proto_inv)
        lo, hi = self._addr or (_ANY, _ANY)
        self.range = _nat_range()(self.flags, lo, hi, *self.ports)

    to_option: ClassVar[str] = ""


class DnatTarget(_ToRange):
    name = "DNAT"
    to_option = "--to-destination"
    options = {"--to-destination": Opt(1, False), "--random": Opt(0, False),
               "--persistent": Opt(0, False)}
    chains = frozenset({"PREROUTING", "OUTPUT"})


class SnatTarget(_ToRange):
    name = "SNAT"
    to_option = "--to-source"
    options = {"--to-source": Opt(1, False), "--random": Opt(0, False),
               "--random-fully": Opt(0, False), "--persistent": Opt(0, False)}
    chains = frozenset({"INPUT", "POSTROUTING"})


class MasqueradeTarget(_NatTarget):
    name = "MASQUERADE"
    options = {"--to-ports": Opt(1, False), "--random": Opt(0, False),
               "--random-fully": Opt(0, False)}
    chains = frozenset({"POSTROUTING"})


class RedirectTarget(_NatTarget):
    name = "REDIRECT"
    options = {"--to-ports": Opt(1, False), "--random": Opt(0, False)}
    chains = frozenset({"PREROUTING", "OUTPUT"})


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
        MarkTarget, TosTarget, DscpTarget, TtlTarget, ClassifyTarget, TraceTarget, LogTarget,
        RejectTarget, NfqueueTarget, ConnmarkTarget,
        DnatTarget, SnatTarget, MasqueradeTarget, RedirectTarget, NetmapTarget,
        NotrackTarget, CtTarget, ImqTarget,
    )
}
STANDARD_VERDICTS = ("ACCEPT", "DROP", "RETURN", "QUEUE")
