"""-j HMARK (libxt_HMARK 1.8.9, net/netfilter/xt_HMARK.c): the packet mark from a hash.

Simulated exactly: the hash is jhash_3words(src, dst, ports, --hmark-rnd), the
same lookup3 code as jhash2 over three words, with the user's seed (no random
one), so the kernel's value is reproduced bit for bit:

- the tuple is the packet's (hmark_pkt_set_htuple_ipv4; for an ICMP error the
  quoted header's) or, with ``--hmark-tuple ct``, the conntrack entry's: the
  original source and the reply's source (hmark_ct_set_htuple). Addresses are
  masked by the prefixes; ports (none for ICMP or any fragment) are masked, OR'd
  with --hmark-sport/--hmark-dport/--hmark-spi and put in order, larger first
  (hmark_swap_ports); addresses too (smaller first);
- mark = reciprocal_scale(hash ^ (proto & proto-mask), mod) + offset.

Without a conntrack entry the ct mode leaves the mark alone. Protocols whose
ports kptui does not model (SCTP, DCCP, ESP, AH, UDP-Lite) stop the walk.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.errors import UnsupportedError
from kptui.engine.iptables.targets import TargetResult
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtTarget
from kptui.engine.nat import jhash2

ICMP_ERRORS = frozenset({3, 4, 5, 11, 12})  # get_inner_hdr's error types
# proto_ports_offset: protocols with ports (or an SPI) at a known offset
PORTS_AT = {6: 0, 17: 0, 33: 0, 50: 0, 132: 0, 136: 0, 51: 4}
# the --hmark-tuple words, in the order hmark_parse tries them
TUPLE_WORDS = ("ct", "src", "dst", "sport", "dport", "proto", "spi")


def _cidr(mask: int) -> int:
    """xtables_ipmask_to_cidr (masks here are always contiguous)."""
    return 32 - (~mask & 0xFFFFFFFF).bit_length()


class HmarkTarget(XtTarget):
    name = "HMARK"
    entries = (Entry("hmark-tuple", XT.STRING), Entry("hmark-src-prefix", XT.PLENMASK),
               Entry("hmark-dst-prefix", XT.PLENMASK), Entry("hmark-sport-mask", XT.UINT16),
               Entry("hmark-dport-mask", XT.UINT16), Entry("hmark-spi-mask", XT.UINT32),
               Entry("hmark-sport", XT.UINT16), Entry("hmark-dport", XT.UINT16),
               Entry("hmark-spi", XT.UINT32), Entry("hmark-proto-mask", XT.UINT16),
               Entry("hmark-rnd", XT.UINT32),
               Entry("hmark-mod", XT.UINT32, min=1, mand=True),
               Entry("hmark-offset", XT.UINT32))

    def __init__(self) -> None:
        super().__init__()
        self.flags: set[str] = set()  # XT_HMARK_* flags, by their option's name
        self.src_mask = self.dst_mask = 0
        self.port_mask = 0  # the 4 port bytes as a big-endian word (sport << 16 | dport)
        self.port_set = 0
        self.proto_mask = 0
        self.rnd = self.mod = self.offset = 0
        self.xflags: set[str] = set()  # what HMARK_check tests, tuple words included

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        # the --hmark-tuple words set the same flags as the options: a later option
        # of one of them counts as given twice (checked on iptables 1.8.9)
        if opt[2:] in self.xflags:
            raise BadValue(f'HMARK: option "{opt}" can only be used once.')
        super().option(opt, args, inv)
        self.xflags.add(opt[2:])

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        """HMARK_parse."""
        if name == "hmark-tuple":
            self._tuple(value)
            return
        self.flags.add(name)
        if name in ("hmark-src-prefix", "hmark-dst-prefix"):
            if name == "hmark-src-prefix":
                self.src_mask = value
            else:
                self.dst_mask = value
        elif name in ("hmark-sport-mask", "hmark-dport-mask", "hmark-spi-mask"):
            self.port_mask = _set_part(self.port_mask, name, value)
        elif name in ("hmark-sport", "hmark-dport", "hmark-spi"):
            self.port_set = _set_part(self.port_set, name, value)
        else:
            setattr(self, {"hmark-proto-mask": "proto_mask", "hmark-rnd": "rnd",
                           "hmark-mod": "mod", "hmark-offset": "offset"}[name], value)

    def _tuple(self, arg: str) -> None:
        """hmark_parse_type: comma-separated words, each any prefix of a name, case
        ignored, tried in hmark_parse's order (so "s" is src)."""
        rest = arg
        while "," in rest:
            word, after = rest.split(",", 1)
            if not word or not self._word(word):
                raise BadValue(f'Bad type "{rest}"')
            rest = after
        if not rest:
            raise BadValue('"--hmark-tuple" requires a list of types with no spaces, e.g. '
                           "src,dst,sport,dport,proto")
        if not self._word(rest):
            raise BadValue(f'Bad type "{rest}"')

    def _word(self, word: str) -> bool:
        # strncasecmp(word, name, len(word)): the word is a prefix of the name
        name = next((n for n in TUPLE_WORDS if n.startswith(word.lower())), "")
        if not name:
            return False
        if name == "ct":
            self.flags.add("ct")
            self.xflags.add("ct")
            return True
        opt = {"src": "hmark-src-prefix", "dst": "hmark-dst-prefix",
               "sport": "hmark-sport-mask", "dport": "hmark-dport-mask",
               "proto": "hmark-proto-mask", "spi": "hmark-spi-mask"}[name]
        self.flags.add(opt)
        self.xflags.add(opt)
        if name == "src":
            self.src_mask = 0xFFFFFFFF
        elif name == "dst":
            self.dst_mask = 0xFFFFFFFF
        elif name == "proto":
            self.proto_mask = 0xFFFF
        else:
            self.port_mask = _set_part(self.port_mask, opt, 0xFFFFFFFF)
        return True

    def finish(self, proto: int, proto_inv: bool) -> None:
        super().finish(proto, proto_inv)  # HMARK_check, then the option table's checks
        # hmark_tg_check, at RULE_APPEND
        if "hmark-spi" in self.flags and self.flags & {"hmark-sport", "hmark-dport"}:
            raise BadValue("HMARK: --hmark-spi cannot be combined with --hmark-sport or "
                           "--hmark-dport (the kernel refuses it: Invalid argument)")

    def check_rule(self, proto: int, proto_inv: bool) -> None:
        """HMARK_check (x6_fcheck)."""
        x = self.xflags
        if "hmark-mod" not in x:
            raise BadValue("--hmark-mod is mandatory")
        if "hmark-rnd" not in x:
            raise BadValue("--hmark-rnd is mandatory")
        if "hmark-spi-mask" in x and x & {"hmark-sport-mask", "hmark-dport-mask"}:
            raise BadValue("you cannot use --hmark-spi-mask and --hmark-?port-mask,"
                           "at the same time")
        if not x & {"hmark-src-prefix", "hmark-dst-prefix", "hmark-spi-mask",
                    "hmark-sport-mask", "hmark-dport-mask", "hmark-proto-mask",
                    "hmark-sport", "hmark-dport", "hmark-spi", "ct"}:
            raise BadValue("you have to specify --hmark-tuple at least")

    def save(self) -> str:
        """HMARK_ip4_save."""
        f, out = self.flags, []
        if "hmark-src-prefix" in f:
            out.append(f"--hmark-src-prefix {_cidr(self.src_mask)}")
        if "hmark-dst-prefix" in f:
            out.append(f"--hmark-dst-prefix {_cidr(self.dst_mask)}")
        parts = (("hmark-sport-mask", self.port_mask >> 16, "04x"),
                 ("hmark-dport-mask", self.port_mask & 0xFFFF, "04x"),
                 ("hmark-spi-mask", self.port_mask, "08x"),
                 ("hmark-sport", self.port_set >> 16, "04x"),
                 ("hmark-dport", self.port_set & 0xFFFF, "04x"),
                 ("hmark-spi", self.port_set, "08x"),
                 ("hmark-proto-mask", self.proto_mask, "02x"),
                 ("hmark-rnd", self.rnd, "08x"))
        out += [f"--{name} 0x{value:{fmt}}" for name, value, fmt in parts if name in f]
        if "hmark-mod" in f:
            out.append(f"--hmark-mod {self.mod}")
        if "hmark-offset" in f:
            out.append(f"--hmark-offset {self.offset}")
        if "ct" in f:
            out.append("--hmark-tuple ct")
        return " ".join(out)

    # -- the kernel's hmark_tg_v4 ------------------------------------------------------
    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        tup = self._ct_tuple(pkt) if "ct" in self.flags else self._pkt_tuple(pkt)
        out = TargetResult("CONTINUE")
        if tup is None:
            out.detail = ("no conntrack entry: the mark is left alone" if "ct" in self.flags
                          else "the quoted header of the ICMP error is missing: the mark "
                               "is left alone")
            return out
        src, dst, ports, proto = tup
        src, dst = sorted((src, dst))
        hashed = jhash2([src, dst, ports], self.rnd) ^ (proto & self.proto_mask)
        mark = (((hashed * self.mod) >> 32) + self.offset) & 0xFFFFFFFF  # reciprocal_scale
        old, new = pkt.set("meta.mark", mark)
        if old != new:
            out.changes.append(("meta.mark", old, new))
        out.detail = f"hash {hashed:#010x} of the tuple -> mark {mark:#x}"
        return out

    def _ports(self, word: int) -> int:
        """hmark_swap_ports: mask, set, and the larger port in the high half."""
        word = (word & self.port_mask) | self.port_set
        a, b = word >> 16, word & 0xFFFF
        return (b << 16 | a) if b > a else (a << 16 | b)

    def _pkt_tuple(self, pkt: Any) -> tuple[int, int, int, int] | None:
        """hmark_pkt_set_htuple_ipv4: (src, dst, ports word, proto)."""
        ip, l4 = pkt.ip, pkt.l4
        if ip.proto == 1 and ip.frag_offset:
            raise UnsupportedError("-j HMARK on a non-first ICMP fragment (the kernel reads "
                                   "its payload as an ICMP header)")
        if ip.proto == 1 and l4 is not None and l4.type in ICMP_ERRORS:
            if l4.inner is None:
                return None  # skb_header_pointer finds no quoted IP header
            pkt = l4.inner
            ip, l4 = pkt.ip, pkt.l4
        src, dst = int(ip.src) & self.src_mask, int(ip.dst) & self.dst_mask
        if ip.proto == 1 or ip.mf or ip.frag_offset:
            return src, dst, 0, ip.proto
        if ip.proto not in PORTS_AT:
            return src, dst, 0, ip.proto
        if ip.proto not in (6, 17):
            raise UnsupportedError(f"-j HMARK on protocol {ip.proto} (kptui does not model "
                                   "its ports)")
        if l4 is None:  # a quoted header cut before its ports: skb_copy_bits fails
            return src, dst, 0, ip.proto
        return src, dst, self._ports(l4.sport << 16 | l4.dport), ip.proto

    def _ct_tuple(self, pkt: Any) -> tuple[int, int, int, int] | None:
        """hmark_ct_set_htuple: the original source, the reply's source."""
        conn = pkt.meta.ct
        if conn is None:
            return None
        orig, reply = conn.original, conn.reply
        src, dst = orig.src, reply.src  # the reply's source: the original's peer
        src, dst = int(src) & self.src_mask, int(dst) & self.dst_mask
        proto = orig.proto
        if proto == 1:
            return src, dst, 0, proto
        if proto not in (6, 17):
            raise UnsupportedError(f"-j HMARK --hmark-tuple ct on protocol {proto} (kptui "
                                   "does not model its conntrack ports)")
        return src, dst, self._ports(orig.sport << 16 | reply.sport), proto


def _set_part(word: int, name: str, value: int) -> int:
    """The 4 port bytes: sport in the high half, dport in the low one, spi all of it."""
    if name.endswith("sport-mask") or name.endswith("sport"):
        return (word & 0xFFFF) | (value & 0xFFFF) << 16
    if name.endswith("dport-mask") or name.endswith("dport"):
        return (word & 0xFFFF0000) | (value & 0xFFFF)
    return value & 0xFFFFFFFF


TARGETS = (HmarkTarget,)
