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
    # the attributes evaluation changes, which checkpoints copy (kptui.engine.snapshot)
    state_attrs: ClassVar[tuple[str, ...]] = ()
    protos: ClassVar[tuple[int, ...] | None] = None  # -p values the module requires
    proto_error: ClassVar[str] = ""
    chains: ClassVar[frozenset[str] | None] = None  # built-in chains it may be used in
    tables: ClassVar[frozenset[str] | None] = None  # tables it may be used in (None: any)
    uses_sets: ClassVar[bool] = False  # the parser gives it the box's ipset sets (.sets)
    proto_now: int = 0  # the rule's -p as parsed up to this module's current option
    proto_inv_now: bool = False
    # The options given so far. A frozenset, replaced as options are given (never
    # changed in place): the rules of one shape share theirs (compiled.py), which saves
    # a set for every module of a 20,000-rule restore (a third of its memory).
    seen: frozenset[str] = frozenset()
    seen_in_option: ClassVar[bool] = False  # option() itself adds to seen (another name)

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


# ----------------------------------------------------------------------------- tcp
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
    """tcp's --sport/--dport with ranges (xt_tcpudp; -m udp is ext/udp.py, on xtopt)."""

    def __init__(self) -> None:
        super().__init__()
        self.sport: tuple[int, int] | None = None
        self.dport: tuple[int, int] | None = None
        self.sinv = self.dinv = False

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        # tcp_parse: each pair of spellings is one option, given at most once
        if opt in ("--sport", "--source-port"):
            if self.sport is not None:
                raise BadValue("Only one `--source-port' allowed")
            self.sport, self.sinv = parse_port_range(args[0]), inv
        elif opt in ("--dport", "--destination-port"):
            if self.dport is not None:
                raise BadValue("Only one `--destination-port' allowed")
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
        return ports_test(self, pkt.l4)


_PORT_OPTS = {
    "--sport": Opt(1, True), "--source-port": Opt(1, True),
    "--dport": Opt(1, True), "--destination-port": Opt(1, True),
}


def ports_test(m: Any, l4: Any) -> str | None:
    """tcp_mt / udp_mt's port_match on both ports: None, or why the packet is not in."""
    if m.sport is not None:
        lo, hi = m.sport
        if (lo <= l4.sport <= hi) == m.sinv:
            return f"source port {l4.sport} {'in' if m.sinv else 'not in'} {lo}:{hi}"
    if m.dport is not None:
        lo, hi = m.dport
        if (lo <= l4.dport <= hi) == m.dinv:
            return f"destination port {l4.dport} {'in' if m.dinv else 'not in'} {lo}:{hi}"
    return None


class TcpMatch(_Ports):
    name = "tcp"
    options = {**_PORT_OPTS, "--tcp-flags": Opt(2, True), "--syn": Opt(0, True),
               "--tcp-option": Opt(1, True)}
    protos = (6,)
    own_checks = True  # tcp_parse words its own "Only one ... allowed" (libxt_tcp 1.8.9)

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
                if args[1][:1] in ("-", "!"):  # tcp_parse looks at the word after optarg
                    raise BadValue("--tcp-flags requires two args.")
                self.flags = (parse_tcp_flag_list(args[0]), parse_tcp_flag_list(args[1]))
            self.finv = inv
        elif opt == "--tcp-option":
            if self.tcpopt is not None:
                raise BadValue("Only one `--tcp-option' allowed")
            self.tcpopt = parse_uint(args[0], 1, 255, f'Bad TCP option "{args[0]}"')
            self.oinv = inv
        else:
            super().option(opt, args, inv)

    @property
    def proto_error(self) -> str:  # type: ignore[override]
        """nft.c add_nft_tcp: a --tcp-option, or nothing to compare (tcp_all_zero), stays
        an xt match, which the kernel refuses without -p tcp; ports and flags become nft
        payload comparisons, which iptables-nft refuses without -p tcp itself."""
        full = (None, (0, 0xFFFF))
        if self.tcpopt is not None or not (self.sinv or self.dinv or self.finv) and \
                self.sport in full and self.dport in full and self.flags in (None, (0, 0)):
            return "tcp match: only valid for protocol 6 (the kernel refuses it: Invalid argument)"
        return "TCP match requires '-p tcp'"

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


# -m udp and -m icmp are xtopt extensions: ext/udp.py, ext/icmp.py
MATCHES: dict[str, type[Match]] = {cls.name: cls for cls in (TcpMatch,)}
