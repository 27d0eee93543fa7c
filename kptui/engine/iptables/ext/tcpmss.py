"""-m tcpmss (libxt_tcpmss, xt_tcpmss.c), -j TCPMSS (libxt_TCPMSS, xt_TCPMSS.c) and
-j TCPOPTSTRIP (libxt_TCPOPTSTRIP, xt_TCPOPTSTRIP.c): the TCP options.

The match is simulated: it reads the MSS option from the TCP header's options,
which kptui's packet carries as bytes (``tcp.options``), walked as the kernel
walks them. Kernel-verified: tests/kernel/scenarios/ext-tcpmss.toml.

The two targets are parsed and printed, not simulated: they rewrite the TCP
options (TCPMSS may also insert an MSS option and grow the packet), and the
options are not an editable field of kptui's packet (no ``tcp.options`` field
path), so their change could not be shown, journalled or replayed.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.errors import UnsupportedError
from kptui.engine.iptables.ext.l4common import kernel_refuses, strtoui_whole
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch, XtTarget

TCPOPT_MSS, TCPOLEN_MSS = 2, 4
XT_TCPMSS_CLAMP_PMTU = 0xFFFF
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


MATCHES = (TcpmssMatch,)
TARGETS = (TcpmssTarget, TcpoptstripTarget)
