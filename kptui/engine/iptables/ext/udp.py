"""-m udp (libxt_udp 1.8.9, xt_tcpudp.c udp_mt): a source and a destination port range.

libxt_udp describes its options with xtopt (XTTYPE_PORTRC), unlike libxt_tcp's
getopt parser, so a port is what getaddrinfo reads: decimal or a service name
(``--dport 010`` is 10 and ``0x50`` no port at all, where tcp reads base 0), and
``a:b`` need not be ordered (``80:70`` is taken and matches nothing). --sport and
--source-port share one option id, as do --dport and --destination-port: the
second of a pair is the option used twice, and messages name the long spelling
(all checked on iptables-nft 1.8.9).

iptables-nft turns the ports into nft payload comparisons (nft.c add_nft_udp),
which needs ``-p udp`` ("UDP match requires '-p udp'"); a match with nothing to
compare (no port, or full ranges) stays an xt match, which the kernel refuses
without ``-p udp`` (xt_check_match).
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext.l4common import kernel_refuses
from kptui.engine.iptables.matches import ports_test
from kptui.engine.iptables.values import BadValue, range_text
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch, parse_entry_value

# each spelling -> the first entry with its id (xtables_option_lookup): what messages name
_ID = {"--source-port": "source-port", "--sport": "source-port",
       "--destination-port": "destination-port", "--dport": "destination-port"}
_FULL = (0, 0xFFFF)
_NEEDS_UDP = "UDP match requires '-p udp'"  # nft.c add_nft_udp
_KERNEL_NEEDS_UDP = kernel_refuses("udp match: only valid for protocol 17")

# Port texts already read: a restore repeats a few hundred ports thousands of times.
# Bounded, since odd spellings are endless; only what parsed is kept.
_RANGES: dict[str, tuple[int, int]] = {}
_RANGES_MAX = 8192


class UdpMatch(XtMatch):
    name = "udp"
    entries = (Entry("source-port", XT.PORTRC, invert=True),
               Entry("sport", XT.PORTRC, invert=True),
               Entry("destination-port", XT.PORTRC, invert=True),
               Entry("dport", XT.PORTRC, invert=True))
    protos = (17,)

    def __init__(self) -> None:
        super().__init__()
        self.sport: tuple[int, int] | None = None
        self.dport: tuple[int, int] | None = None
        self.sinv = self.dinv = False

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        """xtables_option_parse by the option's id (both ports may be inverted)."""
        name = _ID[opt]
        source = name == "source-port"
        if (self.sport if source else self.dport) is not None:
            raise BadValue(f'udp: option "--{name}" can only be used once.')
        text = args[0]
        ports = _RANGES.get(text)
        if ports is None:
            lo, hi = parse_entry_value("udp", self.by_opt[f"--{name}"], text)
            ports = (lo, hi)
            if len(_RANGES) < _RANGES_MAX:
                _RANGES[text] = ports
        self.parsed(name, ports, inv)

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        if name == "source-port":
            self.sport, self.sinv = value, inv
        else:
            self.dport, self.dinv = value, inv

    @property
    def proto_error(self) -> str:  # type: ignore[override]
        """nft.c add_nft_udp: udp_all_zero leaves the xt match to the kernel's check."""
        all_zero = not (self.sinv or self.dinv) and self.sport in (None, _FULL) \
            and self.dport in (None, _FULL)
        return _KERNEL_NEEDS_UDP if all_zero else _NEEDS_UDP

    def save(self) -> str:
        out = []
        # iptables-nft drops a full 0:65535 range that is not inverted.
        if self.sport and (self.sinv or self.sport != _FULL):
            out.append(f"{'! ' if self.sinv else ''}--sport {range_text(*self.sport)}")
        if self.dport and (self.dinv or self.dport != _FULL):
            out.append(f"{'! ' if self.dinv else ''}--dport {range_text(*self.dport)}")
        return " ".join(out)

    def test(self, pkt: Any, ctx: Any) -> str | None:
        if pkt.ip.frag_offset != 0:
            return "a non-first fragment has no UDP header"
        return ports_test(self, pkt.l4)


MATCHES = (UdpMatch,)
