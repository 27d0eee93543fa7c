"""-m ecn (libxt_ecn, xt_ecn.c) and -j ECN (libipt_ECN, ipt_ECN.c), both simulated.

The packet model has everything they read and write: the IP header's ECN bits
(the low two bits of ``ip.tos``) and the TCP ECE and CWR flags
(``tcp.flags``). Kernel-verified: tests/kernel/scenarios/ext-ecn.toml.

A non-first fragment has no TCP header, yet both read (ECN writes) the bytes where
it would be (ipt_ECN uses ip_hdrlen, xt_ecn par->thoff): kptui keeps such a
fragment's bytes as opaque payload, so that case stops the walk as unsupported.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.errors import UnsupportedError
from kptui.engine.iptables.ext.l4common import kernel_refuses
from kptui.engine.iptables.targets import TargetResult
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch, XtTarget
from kptui.engine.packet import TCP_CWR, TCP_ECE

_TCP_BITS = {"ecn-tcp-ece": TCP_ECE, "ecn-tcp-cwr": TCP_CWR}


def _fragment(pkt: Any, what: str) -> None:
    if pkt.ip.frag_offset:
        raise UnsupportedError(f"{what} on a non-first fragment (the kernel reads its payload "
                               "as a TCP header)")


class EcnMatch(XtMatch):
    """ecn_mt4: the IP codepoint first, then each TCP bit asked for (``!`` per option)."""

    name = "ecn"
    entries = (Entry("ecn-tcp-cwr", invert=True), Entry("ecn-tcp-ece", invert=True),
               Entry("ecn-ip-ect", XT.UINT8, invert=True, max=3))

    def __init__(self) -> None:
        super().__init__()
        self.ops: dict[str, tuple[int, bool]] = {}

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        self.ops[name] = (value or 0, inv)
        if name in _TCP_BITS:
            # ecn_mt_check4: TCP bits need -p tcp (an instance attribute: parse.py reads it)
            self.protos = (6,)
            self.proto_error = kernel_refuses("xt_ecn: cannot match TCP bits for non-tcp "
                                              "packets")

    def finish(self) -> None:
        # x6_fcheck runs before libxtables' own checks (xtables_option_mfcall)
        if not self.ops:
            raise BadValue("ECN match: some option required")
        self.fcheck()

    def save(self) -> str:
        out = []
        for name in ("ecn-tcp-ece", "ecn-tcp-cwr"):
            if name in self.ops:
                out.append(f"{'! ' if self.ops[name][1] else ''}--{name}")
        if "ecn-ip-ect" in self.ops:
            ect, inv = self.ops["ecn-ip-ect"]
            out.append(f"{'! ' if inv else ''}--ecn-ip-ect {ect}")
        return " ".join(out)

    def test(self, pkt: Any, ctx: Any) -> str | None:
        if "ecn-ip-ect" in self.ops:
            want, inv = self.ops["ecn-ip-ect"]
            have = pkt.ip.tos & 3
            if (have == want) == inv:
                return f"IP ECN codepoint {have} {'is' if inv else 'is not'} {want}"
        for name, bit in _TCP_BITS.items():
            if name in self.ops:
                _fragment(pkt, "-m ecn --" + name)
                inv = self.ops[name][1]
                if bool(pkt.l4.flags & bit) == inv:
                    flag = name[-3:].upper()
                    return f"TCP {flag} is {'set' if inv else 'clear'}"
        return None


class EcnTarget(XtTarget):
    """ecn_tg: set the IP codepoint, and the TCP ECE/CWR bits of a TCP packet."""

    name = "ECN"
    entries = (Entry("ecn-tcp-remove", excl=("ecn-tcp-cwr", "ecn-tcp-ece")),
               Entry("ecn-tcp-cwr", XT.UINT8, max=1, excl=("ecn-tcp-remove",)),
               Entry("ecn-tcp-ece", XT.UINT8, max=1, excl=("ecn-tcp-remove",)),
               Entry("ecn-ip-ect", XT.UINT8, max=3))
    tables = frozenset({"mangle"})

    def __init__(self) -> None:
        super().__init__()
        self.tcp: dict[int, int] = {}  # flag bit -> 0 or 1 (IPT_ECN_OP_SET_ECE / _CWR)
        self.ip_ect: int | None = None  # IPT_ECN_OP_SET_IP

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        if name == "ecn-tcp-remove":  # ECN_parse assigns the operation: an earlier
            self.tcp = {TCP_ECE: 0, TCP_CWR: 0}  # --ecn-ip-ect is forgotten
            self.ip_ect = None
        elif name == "ecn-ip-ect":
            self.ip_ect = value
        else:
            self.tcp[_TCP_BITS[name]] = value

    def finish(self, proto: int, proto_inv: bool) -> None:
        if not self.seen:
            raise BadValue("ECN target: An operation is required")
        self.fcheck()
        if self.tcp and (proto != 6 or proto_inv):
            raise BadValue(kernel_refuses("ipt_ECN: cannot use operation on non-tcp rule"))

    def save(self) -> str:
        if self.ip_ect is None and self.tcp == {TCP_ECE: 0, TCP_CWR: 0}:
            return "--ecn-tcp-remove"
        out = [f"--ecn-tcp-{n} {self.tcp[b]}" for n, b in (("ece", TCP_ECE), ("cwr", TCP_CWR))
               if b in self.tcp]
        if self.ip_ect is not None:
            out.append(f"--ecn-ip-ect {self.ip_ect}")
        return " ".join(out)

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        out = TargetResult("CONTINUE")
        if self.ip_ect is not None and pkt.ip.tos & 3 != self.ip_ect:
            # the whole TOS byte, as DSCP/TOS do: a change of it reroutes in mangle OUTPUT
            old, new = pkt.set("ip.tos", pkt.ip.tos & ~3 | self.ip_ect)
            out.changes.append(("ip.tos", old, new))
        if self.tcp and pkt.ip.proto == 6:
            _fragment(pkt, "-j ECN")
            flags = pkt.l4.flags
            for bit, on in self.tcp.items():
                flags = flags | bit if on else flags & ~bit
            if flags != pkt.l4.flags:
                old, new = pkt.set("tcp.flags", flags)
                out.changes.append(("tcp.flags", old, new))
        return out


MATCHES = (EcnMatch,)
TARGETS = (EcnTarget,)
