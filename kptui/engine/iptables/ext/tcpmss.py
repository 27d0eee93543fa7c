"""-m tcpmss (libxt_tcpmss, xt_tcpmss.c), -j TCPMSS (libxt_TCPMSS, xt_TCPMSS.c) and
-j TCPOPTSTRIP (libxt_TCPOPTSTRIP, xt_TCPOPTSTRIP.c): the TCP options.

All three are simulated on the TCP header's options, which kptui's packet carries
as bytes and shows as the ``tcp.options`` field (kptui.engine.tcpopts: the text
form), walked as these modules walk them. Kernel-verified:
tests/kernel/scenarios/ext-tcpmss.toml, ext-TCPMSS.toml, ext-TCPOPTSTRIP.toml.

TCPMSS (tcpmss_mangle_packet) looks at whatever TCP packet reaches it: the "SYN
only" is the rule's `--tcp-flags SYN,RST SYN`, which iptables-nft does not require
(nft_compat skips that part of tcpmss_tg4_check; checked on Linux 6.18). An MSS
option is lowered to the new value, never raised; without one, an option is put
before the others (at most 536, RFC 1122's default MSS), the packet growing by 4
bytes, unless payload follows the header or the header is already 60 bytes.
--clamp-mss-to-pmtu takes min(MTU of the packet's route, MTU of the route back to
its source) - 40; both are device MTUs (at most IP_MAX_MTU, 65520: ipv4_mtu) as
kptui models no route `mtu` metric nor learned path MTUs.

TCPOPTSTRIP (tcpoptstrip_mangle_packet) overwrites each listed option with NOPs,
all its bytes, the length unchanged.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.errors import UnsupportedError
from kptui.engine.iptables.ext.l4common import kernel_refuses, strtoui_whole
from kptui.engine.iptables.targets import TargetResult
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch, XtTarget

TCPOPT_NOP, TCPOPT_MSS, TCPOLEN_MSS = 1, 2, 4
XT_TCPMSS_CLAMP_PMTU = 0xFFFF
IP_MAX_MTU = 0xFFF0  # include/net/ip.h: ipv4_mtu caps a device MTU with it
TCP_MSS_DEFAULT = 536  # RFC 1122: a peer without an MSS option is assumed to take 536
# tcpmss_tg4_check: path-MTU clamping needs the packet's route (a dst)
CLAMP_HOOKS = frozenset({"FORWARD", "OUTPUT", "POSTROUTING"})
_ONLY_TCP_MATCH = kernel_refuses("tcpmss match: only valid for protocol 6")


def find_mss(opts: bytes) -> int | None:
    """The MSS value tcpmss_mt finds in the options, or None (no option that counts)."""
    i, n = 0, len(opts)
    while i < n:
        if opts[i] == TCPOPT_MSS and n - i >= TCPOLEN_MSS and opts[i + 1] == TCPOLEN_MSS:
            return opts[i + 2] << 8 | opts[i + 3]
        if opts[i] < 2:
            i += 1
        else:
            # op[i+1] may lie past the options: the loop ends whatever it is
            i += (opts[i + 1] if i + 1 < n else 1) or 1
    return None


class TcpmssMatch(XtMatch):
    name = "tcpmss"
    entries = (Entry("mss", XT.UINT16RC, mand=True, invert=True),)
    protos = (6,)
    proto_error = _ONLY_TCP_MATCH

    def __init__(self) -> None:
        super().__init__()
        self.lo = self.hi = 0
        self.inv = False

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        self.lo = self.hi = value[0]
        if len(value) == 2:
            self.hi = value[1]
            if self.hi < self.lo:
                raise BadValue("tcpmss: invalid range given")
        self.inv = inv

    def save(self) -> str:
        rng = f"{self.lo}" if self.lo == self.hi else f"{self.lo}:{self.hi}"
        return f"{'! ' if self.inv else ''}--mss {rng}"

    def test(self, pkt: Any, ctx: Any) -> str | None:
        if pkt.ip.frag_offset:
            raise UnsupportedError("-m tcpmss on a non-first fragment (the kernel reads its "
                                   "payload as a TCP header)")
        mss = find_mss(pkt.l4.options)
        if mss is None:  # no MSS option: the match is its `!`
            return None if self.inv else "no MSS option in the TCP header"
        if (self.lo <= mss <= self.hi) != self.inv:
            return None
        rng = self.save().removeprefix("! ").removeprefix("--mss ")
        return f"MSS {mss} {'in' if self.inv else 'not in'} {rng}"


class TcpmssTarget(XtTarget):
    """--set-mss N or --clamp-mss-to-pmtu (the last one given wins: both write
    xt_tcpmss_info.mss, clamping as 0xffff)."""

    name = "TCPMSS"
    entries = (Entry("set-mss", XT.UINT16, max=0xFFFF - 20), Entry("clamp-mss-to-pmtu"))

    def __init__(self) -> None:
        super().__init__()
        self.mss = 0

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        self.mss = value if name == "set-mss" else XT_TCPMSS_CLAMP_PMTU

    def finish(self, proto: int, proto_inv: bool) -> None:
        if not self.seen:
            raise BadValue("TCPMSS target: At least one parameter is required")
        self.fcheck()
        if proto != 6 or proto_inv:
            raise BadValue(kernel_refuses("TCPMSS target: only valid for protocol 6"))
        if self.mss == XT_TCPMSS_CLAMP_PMTU:
            # tcpmss_tg4_check: "path-MTU clamping only supported in FORWARD, OUTPUT and
            # POSTROUTING hooks" (an instance attribute: parse.py checks it for the chain)
            self.chains = frozenset({"FORWARD", "OUTPUT", "POSTROUTING"})

    def save(self) -> str:
        if self.mss == XT_TCPMSS_CLAMP_PMTU:
            return "--clamp-mss-to-pmtu"
        return f"--set-mss {self.mss}"

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        """tcpmss_tg4: tcpmss_mangle_packet, then the IP total length when it grew."""
        out = TargetResult("CONTINUE")
        tcp = _tcp_header(pkt, "-j TCPMSS")
        if tcp is None:
            out.detail = "a non-first fragment: no TCP header, left alone"
            return out
        if self.mss == XT_TCPMSS_CLAMP_PMTU:
            min_mtu, why = _path_mtu(pkt, ctx)
            if min_mtu <= 40:  # "unknown or invalid path-MTU": NF_DROP
                return TargetResult("DROP", detail=f"unknown or invalid path-MTU ({min_mtu})")
            newmss = min_mtu - 40
            why = f"path MTU {why}: MSS {newmss}"
        else:
            newmss, why = self.mss, f"--set-mss {self.mss}"
        opts = tcp.options
        i = 0  # the kernel's i - sizeof(struct tcphdr)
        while i <= len(opts) - TCPOLEN_MSS:
            if opts[i] == TCPOPT_MSS and opts[i + 1] == TCPOLEN_MSS:
                oldmss = opts[i + 2] << 8 | opts[i + 3]
                if oldmss <= newmss:  # "Never increase MSS, even when setting it"
                    out.detail = f"{why}; the MSS option says {oldmss}: never raised"
                    return out
                new = opts[:i + 2] + bytes((newmss >> 8, newmss & 0xFF)) + opts[i + 4:]
                _set_options(pkt, new, out)
                out.detail = f"{why}; MSS {oldmss} -> {newmss}"
                return out
            i += 1 if opts[i] <= TCPOPT_NOP or opts[i + 1] == 0 else opts[i + 1]
        if pkt.payload:
            out.detail = (f"{why}; no MSS option, and data follows the header: the option "
                          "cannot be added, the packet is left as is")
            return out
        if len(opts) >= 40:  # tcph->doff has 4 bits, do not wrap it to 0
            out.detail = f"{why}; no MSS option, and the header is full (60 bytes)"
            return out
        if pkt.wire is not None:
            raise UnsupportedError("-j TCPMSS adding an MSS option to a packet read from "
                                   "partial bytes")
        mss = min(newmss, TCP_MSS_DEFAULT)
        old_len = pkt.length
        _set_options(pkt, bytes((TCPOPT_MSS, TCPOLEN_MSS, mss >> 8, mss & 0xFF)) + opts, out)
        out.changes.append(("ip.len", old_len, pkt.length))
        out.detail = (f"{why}; no MSS option: added MSS {mss}"
                      + (f" (at most {TCP_MSS_DEFAULT}, RFC 1122's default)"
                         if mss != newmss else "") + ", the packet grows by 4 bytes")
        return out


# tcp_optionmap[]: the names --strip-options takes
TCP_OPTION_NAMES = {"wscale": 3, "mss": 2, "sack-permitted": 4, "sack": 5, "timestamp": 8,
                    "md5": 19}


class TcpoptstripTarget(XtTarget):
    name = "TCPOPTSTRIP"
    entries = (Entry("strip-options", XT.STRING),)
    tables = frozenset({"mangle"})

    def __init__(self) -> None:
        super().__init__()
        self.strip: set[int] = set()

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        """parse_list: names or numbers 2..255, each once."""
        for part in value.split(","):
            option = TCP_OPTION_NAMES.get(part, 0)
            if option == 0:
                got = strtoui_whole(part, 0xFF)
                if got is None:
                    raise BadValue(f'Bad TCP option value "{part}"')
                option = got
            if option < 2:
                raise BadValue("Option value may not be 0 or 1")
            if option in self.strip:
                raise BadValue(f'Option "{part}" already specified')
            self.strip.add(option)

    def finish(self, proto: int, proto_inv: bool) -> None:
        self.fcheck()
        if proto != 6 or proto_inv:
            raise BadValue(kernel_refuses("TCPOPTSTRIP target: only valid for protocol 6"))

    def save(self) -> str:
        if not self.strip:
            return ""
        return "--strip-options " + ",".join(str(o) for o in sorted(self.strip))

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        """tcpoptstrip_mangle_packet: every listed option becomes NOPs, all its bytes."""
        out = TargetResult("CONTINUE")
        tcp = _tcp_header(pkt, "-j TCPOPTSTRIP")
        if tcp is None:
            out.detail = "a non-first fragment: no TCP header, left alone"
            return out
        opts = bytearray(tcp.options)
        hdrlen = 20 + len(opts)
        i = 20  # as the kernel counts: from the start of the TCP header
        stripped = []
        while i < hdrlen - 1:
            j = i - 20
            optl = 1 if opts[j] <= TCPOPT_NOP or opts[j + 1] == 0 else opts[j + 1]
            if i + optl > hdrlen:
                break
            if opts[j] in self.strip:
                stripped.append(str(opts[j]))
                opts[j:j + optl] = bytes([TCPOPT_NOP]) * optl
            i += optl
        if stripped:
            _set_options(pkt, bytes(opts), out)
            out.detail = "options " + ", ".join(stripped) + " replaced by NOPs"
        else:
            out.detail = "none of the options to strip is in the header"
        return out


def _tcp_header(pkt: Any, what: str) -> Any:
    """The TCP header to mangle, or None for a non-first fragment (par->fragoff)."""
    if pkt.ip.frag_offset:
        return None
    tcp = pkt.l4
    if tcp is None or not hasattr(tcp, "options"):
        raise UnsupportedError(f"{what} on a protocol 6 packet without a TCP header")
    return tcp


def _set_options(pkt: Any, opts: bytes, out: TargetResult) -> None:
    old, new = pkt.set("tcp.options", opts)
    if old != new:
        out.changes.append(("tcp.options", old, new))


def _dev_mtu(ctx: Any, dev: str) -> int:
    return min(ctx.box.interfaces[dev].mtu, IP_MAX_MTU)


def _path_mtu(pkt: Any, ctx: Any) -> tuple[int, str]:
    """min(dst_mtu(skb_dst(skb)), tcpmss_reverse_mtu()) and how it was found.

    The route back is ip_route_output_key({daddr = the packet's source}, nothing else);
    no route back counts as ~0U."""
    from kptui.engine.routing import Flow

    if ctx.hook not in CLAMP_HOOKS or ctx.box is None or not ctx.oif:
        # only a user chain reached from PREROUTING or INPUT gets here (the kernel checks
        # the hook of base chains only); there the packet may have no route to read
        raise UnsupportedError(f"-j TCPMSS --clamp-mss-to-pmtu in {ctx.hook or 'a walk'} "
                               "(the kernel allows it only in FORWARD, OUTPUT and "
                               "POSTROUTING)")
    out_mtu = _dev_mtu(ctx, ctx.oif)
    probe = pkt.copy()
    probe.ip.dst = pkt.ip.src
    back = ctx.box.route_output(probe, flow=Flow(dst=pkt.ip.src))
    if back.error or not back.oif:
        return out_mtu, f"{out_mtu} (route via {ctx.oif}; no route back to {pkt.ip.src})"
    in_mtu = _dev_mtu(ctx, back.oif)
    return min(out_mtu, in_mtu), (f"min({out_mtu} via {ctx.oif}, {in_mtu} back to "
                                  f"{pkt.ip.src} via {back.oif}) = {min(out_mtu, in_mtu)}")


MATCHES = (TcpmssMatch,)
TARGETS = (TcpmssTarget, TcpoptstripTarget)
