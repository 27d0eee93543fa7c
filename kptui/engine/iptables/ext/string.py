"""-m string (libxt_string 1.8.9, xt_string.c and lib/ts_*.c): a byte pattern in the packet.

Parsed and printed as iptables 1.8.9 does (--string / --hex-string, --algo,
--from, --to, --icase), refused where the kernel refuses the rule (an unknown
algorithm, --from past --to, an empty pattern, an invalid fsm token list).

Simulated for --algo bm and kmp on the datagram's real bytes (Packet.to_bytes:
skb->data from the IP header on, so addresses and ports can match as well as the
payload). skb_find_text finds the pattern only if it lies wholly inside
[--from, --to) and inside the packet; bm and kmp then agree with a plain search
(the kernel's bm tables were checked against one on 600,000 random cases), except
bm with --icase and a pattern holding 0xbf or 0xdf, whose Latin-1 case pairs its
bad-character table misses: that case, and --algo fsm (a token program), stop
the walk as unsupported. Kernel-verified: tests/kernel/scenarios/ext-string.toml.

kptui's packet is one linear buffer, as the kernel holds a packet that came from
a veth or a raw socket. Where Linux splits a packet into fragments (a NIC that
puts the data in pages, a TCP socket's segment), bm cannot find a pattern that
spans the split; kptui does not model the split.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.errors import UnsupportedError
from kptui.engine.iptables.ext.l4common import (
    KERNEL_TOUPPER,
    UNKNOWN_BYTES,
    kernel_refuses,
    wire_view,
)
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch

XT_STRING_MAX_PATTERN_SIZE = 128
XT_STRING_MAX_ALGO_NAME_SIZE = 16
ALGORITHMS = ("bm", "kmp", "fsm")  # lib/ts_*.c, all built into this kernel
_HEX = frozenset(b"0123456789abcdefABCDEF")
TS_FSM_TYPE_MAX, TS_FSM_RECUR_MAX, TS_FSM_HEAD_IGNORE = 13, 4, 4


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _char(b: int) -> str:
    return bytes([b]).decode("utf-8", "surrogateescape")


def parse_plain(arg: str) -> bytes:
    s = _raw(arg)
    if len(s) > XT_STRING_MAX_PATTERN_SIZE:
        raise BadValue(f'STRING too long "{arg}"')
    return s


def parse_hex(arg: str) -> bytes:
    """parse_hex_string: text with |hex blocks| and \\-escaped literals."""
    s = _raw(arg)
    n = len(s)
    if n == 0:
        raise BadValue("STRING must contain at least one char")
    out = bytearray()
    i = 0
    hex_f = literal_f = False
    while i < n:
        if len(out) >= XT_STRING_MAX_PATTERN_SIZE:
            raise BadValue(f'STRING too long "{arg}"')
        c = s[i]
        if c == 0x5C and not hex_f:  # backslash
            literal_f = True
        elif c == 0x5C:
            raise BadValue("Cannot include literals in hex data")
        elif c == 0x7C:  # |
            if hex_f:
                hex_f = False
            else:
                hex_f = True
                while i + 1 < n and s[i + 1] == 0x20:
                    i += 1
            if i + 1 >= n:
                break
            i += 1
        if literal_f:
            if i + 1 >= n:
                raise BadValue("Bad literal placement at end of string")
            out.append(s[i + 1])
            i += 2
            literal_f = False
        elif hex_f:
            if i + 1 >= n:
                raise BadValue("Odd number of hex digits")
            if i + 2 >= n:
                raise BadValue("Invalid hex block")
            for b in (s[i], s[i + 1]):
                if b not in _HEX:
                    raise BadValue(f"Invalid hex char '{_char(b)}'")
            out += bytes.fromhex(s[i:i + 2].decode("ascii"))
            i += 3 if s[i + 2] == 0x20 else 2
        else:
            out.append(s[i])
            i += 1
    return bytes(out)


def pattern_text(pattern: bytes) -> tuple[str, str]:
    """string_save: (option, quoted pattern): hex when a byte is not printable ASCII
    or the last one is a backslash, else the text with \" and \\ escaped."""
    if any(not 0x20 <= b <= 0x7E for b in pattern) or pattern[-1:] == b"\\":
        return "--hex-string", f'"|{pattern.hex()}|"'
    text = pattern.decode("ascii").replace("\\", "\\\\").replace('"', '\\"')
    return "--string", f'"{text}"'


def _fsm_ok(pattern: bytes) -> bool:
    """fsm_init's checks of the token list (struct ts_fsm_token: u16 type in host order,
    little-endian here; u8 recur; u8 value)."""
    if len(pattern) % 4:
        return False
    count = len(pattern) // 4
    for k in range(count):
        kind = pattern[4 * k] | pattern[4 * k + 1] << 8
        recur = pattern[4 * k + 2]
        if kind > TS_FSM_TYPE_MAX or recur > TS_FSM_RECUR_MAX:
            return False
        if recur == TS_FSM_HEAD_IGNORE and (k != 0 or k == count - 1):
            return False
    return True


class StringMatch(XtMatch):
    name = "string"
    entries = (Entry("from", XT.UINT16), Entry("to", XT.UINT16),
               Entry("algo", XT.STRING, mand=True),
               Entry("string", XT.STRING, invert=True, excl=("hex-string",)),
               Entry("hex-string", XT.STRING, invert=True, excl=("string",)),
               Entry("icase"))

    def __init__(self) -> None:
        super().__init__()
        self.from_offset, self.to_offset = 0, 0xFFFF
        self.algo = ""
        self.pattern = b""
        self.inv = self.icase = False

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        if name == "from":
            self.from_offset = value
        elif name == "to":
            self.to_offset = value
        elif name == "algo":  # XTOPT_PUT into char algo[16]: cut to 15 bytes
            self.algo = _raw(value)[:XT_STRING_MAX_ALGO_NAME_SIZE - 1].decode(
                "utf-8", "surrogateescape")
        elif name == "icase":
            self.icase = True
        else:
            self.pattern = parse_plain(value) if name == "string" else parse_hex(value)
            self.inv = self.inv or inv

    def finish(self) -> None:
        # x6_fcheck first, then libxtables' checks (xtables_option_mfcall)
        if "--string" not in self.seen and "--hex-string" not in self.seen:
            raise BadValue("STRING match: You must specify `--string' or `--hex-string'")
        self.fcheck()
        # string_mt_check and textsearch_prepare
        if self.from_offset > self.to_offset:
            raise BadValue(kernel_refuses(f"string match: --from {self.from_offset} is past "
                                          f"--to {self.to_offset}"))
        if not self.pattern:
            raise BadValue(kernel_refuses("string match: an empty pattern"))
        if self.algo not in ALGORITHMS:
            raise BadValue(kernel_refuses(f'string match: no text search algorithm '
                                          f'"{self.algo}" (ts_{self.algo})',
                                          "No such file or directory"))
        if self.algo == "fsm" and not _fsm_ok(self.pattern):
            raise BadValue(kernel_refuses("string match: the pattern is not a valid fsm "
                                          "token list"))

    def save(self) -> str:
        opt, text = pattern_text(self.pattern)
        out = [f"{'! ' if self.inv else ''}{opt} {text} --algo {self.algo}"]
        if self.from_offset:
            out.append(f"--from {self.from_offset}")
        if self.to_offset != 0xFFFF:
            out.append(f"--to {self.to_offset}")
        if self.icase:
            out.append("--icase")
        return " ".join(out)

    def test(self, pkt: Any, ctx: Any) -> str | None:
        found = self._find(pkt)
        if found != self.inv:
            return None
        where = f"bytes {self.from_offset}..{min(self.to_offset, pkt.length)}"
        return f"pattern {'found' if found else 'not found'} in {where}"

    def _find(self, pkt: Any) -> bool:
        if self.algo == "fsm":
            raise UnsupportedError("-m string --algo fsm (a token program, not modelled)")
        pat = self.pattern
        if self.icase:
            pat = pat.translate(KERNEL_TOUPPER)
            if self.algo == "bm" and any(b in (0xBF, 0xDF) for b in pat[:-1]):
                raise UnsupportedError("-m string --algo bm --icase with a 0xbf or 0xdf "
                                       "byte (the kernel's bad-character table misses "
                                       "their case pairs)")
        data, unknown = wire_view(pkt)
        lo, hi = self.from_offset, min(self.to_offset, len(data))
        text = data[lo:hi].translate(KERNEL_TOUPPER) if self.icase else data[lo:hi]
        if unknown is None or not any(unknown[lo:hi]):
            return pat in text
        n = len(pat)
        start = text.find(pat)
        while start >= 0:  # an occurrence clear of the unknown bytes settles it
            if not any(unknown[lo + start:lo + start + n]):
                return True
            start = text.find(pat, start + 1)
        # one that may hold them leaves it open
        holes = []
        u = unknown.find(0xFF, lo, hi)
        while u >= 0:
            holes.append(u - lo)
            u = unknown.find(0xFF, u + 1, hi)
        starts = {s for u in holes for s in range(max(0, u - n + 1), min(u, len(text) - n) + 1)}
        for s in sorted(starts):
            span = unknown[lo + s:lo + s + n]
            if all(u or text[s + k] == pat[k] for k, u in enumerate(span)):
                raise UnsupportedError("-m string: whether the pattern is there depends on "
                                       + UNKNOWN_BYTES)
        return False


MATCHES = (StringMatch,)
