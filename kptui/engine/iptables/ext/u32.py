"""-m u32 (libxt_u32 1.8.9, xt_u32.c): tests on 32-bit words read from the packet.

Parsed (u32_parse's grammar and words, "at char N" included) and printed as
iptables 1.8.9 does, and simulated on the datagram's real bytes (Packet.to_bytes:
what skb->data holds from the IP header on). Kernel-verified:
tests/kernel/scenarios/ext-u32.toml.

A shift by 32 or more is refused when the rule is added, as this kernel refuses it
(u32_mt_checkentry, "xt_u32: reject invalid shift counts", in 6.18.40 and later;
checked on this machine). The bytes Linux chooses for a packet the box sends (see l4common) are
tracked bit by bit: a test whose value still depends on them after its ``&``
masks, or whose ``@`` offset does, stops the walk instead of guessing.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.errors import UnsupportedError
from kptui.engine.iptables.ext.l4common import (
    BLANKS,
    UNKNOWN_BYTES,
    kernel_refuses,
    strtoui,
    wire_view,
)
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch

XT_U32_MAXSIZE = 10
AND, LEFTSH, RIGHTSH, AT = "&", "<<", ">>", "@"
# one test: ([(operator, number), ...] with operator "" for the first, [(min, max), ...])
Test = tuple[list[tuple[str, int]], list[tuple[int, int]]]


def _number(arg: str, i: int, pos: int) -> tuple[int, int]:
    """parse_number: (value, index after it)."""
    value, rest = strtoui(arg[i:])
    if value is None or len(rest) == len(arg) - i:
        raise BadValue(f"u32: at char {pos}: not a number or out of range")
    return value, len(arg) - len(rest)


def parse_u32(arg: str) -> list[Test]:
    """u32_parse, state machine and messages as in 1.8.9."""
    tests: list[Test] = []
    locs: list[tuple[str, int]] = []
    vals: list[tuple[int, int]] = []
    state = 0
    i, n = 0, len(arg)
    while True:
        while i < n and arg[i] in BLANKS:
            i += 1
        if i >= n:
            if state == 0:
                raise BadValue("u32: abrupt end of input after location specifier")
            if not vals:
                raise BadValue("u32: test ended with no value specified")
            tests.append((locs, vals))
            if len(tests) > XT_U32_MAXSIZE:
                raise BadValue(f'u32: at char {i}: too many "&&"s')
            return tests
        c = arg[i]
        if state == 0:
            if c == "=":
                if not locs:
                    raise BadValue(f"u32: at char {i}: location spec missing")
                i += 1
                state = 1
                continue
            op = ""
            if locs:
                if c == "&":
                    op = AND
                elif c in "<>":
                    i += 1
                    if i >= n or arg[i] != c:
                        raise BadValue(f"u32: at char {i}: a second '{c}' was expected")
                    op = LEFTSH if c == "<" else RIGHTSH
                elif c == "@":
                    op = AT
                else:
                    raise BadValue(f"u32: at char {i}: operator expected")
                i += 1
            value, i = _number(arg, i, i)
            locs.append((op, value))
            if len(locs) > XT_U32_MAXSIZE:
                raise BadValue(f"u32: at char {i}: too many operators")
        elif c == "&":
            i += 1
            if i >= n or arg[i] != "&":
                raise BadValue(f"u32: at char {i}: a second '&' was expected")
            if not vals:
                raise BadValue(f"u32: at char {i}: value spec missing")
            tests.append((locs, vals))
            if len(tests) > XT_U32_MAXSIZE:
                raise BadValue(f'u32: at char {i}: too many "&&"s')
            i += 1
            state, locs, vals = 0, [], []
        else:
            if vals:
                if c != ",":
                    raise BadValue(f'u32: at char {i}: expected "," or "&&"')
                i += 1
            lo, i = _number(arg, i, i)
            while i < n and arg[i] in BLANKS:
                i += 1
            hi = lo
            if i < n and arg[i] == ":":
                i += 1
                hi, i = _number(arg, i, i)
            vals.append((lo, hi))
            if len(vals) > XT_U32_MAXSIZE:
                raise BadValue(f'u32: at char {i}: too many ","s')


def u32_text(tests: list[Test]) -> str:
    """u32_dump: every number in hex."""
    parts = []
    for locs, vals in tests:
        loc = "".join(f"{op}0x{num:x}" for op, num in locs)
        val = ",".join(f"0x{lo:x}" if lo == hi else f"0x{lo:x}:0x{hi:x}" for lo, hi in vals)
        parts.append(f"{loc}={val}")
    return "&&".join(parts)


_M32 = 0xFFFFFFFF


def _word(data: bytes, unknown: bytes | None, at: int) -> tuple[int, int]:
    """The big-endian word at ``at`` and the mask of its bits Linux chooses."""
    val = int.from_bytes(data[at:at + 4], "big")
    umask = int.from_bytes(unknown[at:at + 4], "big") if unknown is not None else 0
    return val, umask


def run_test(test: Test, data: bytes, unknown: bytes | None) -> tuple[bool | None, str]:
    """One test of u32_match_it: (outcome or None when it depends on unknown bits, why)."""
    locs, vals = test
    size = len(data)
    pos = locs[0][1]
    if size < 4 or pos > size - 4:
        return False, f"offset {pos:#x} is past the packet ({size} bytes)"
    val, umask = _word(data, unknown, pos)
    at = 0
    for op, number in locs[1:]:
        if op == AND:
            val &= number
            umask &= number
        elif op in (LEFTSH, RIGHTSH):
            if op == LEFTSH:  # the count is below 32 (U32Match.finish)
                val, umask = (val << number) & _M32, (umask << number) & _M32
            else:
                val, umask = val >> number, umask >> number
        else:
            if umask:
                return None, "an @ offset depends on " + UNKNOWN_BYTES
            if at + val > _M32:
                return False, "the @ offset overflows"
            at += val
            if at + 4 > _M32 or size < at + 4 or number > size - at - 4:
                return False, f"offset {at:#x}+{number:#x} is past the packet ({size} bytes)"
            val, umask = _word(data, unknown, at + number)
    if umask:
        return None, "the value depends on " + UNKNOWN_BYTES
    if any(lo <= val <= hi for lo, hi in vals):
        return True, ""
    return False, f"read {val:#x}"


class U32Match(XtMatch):
    name = "u32"
    entries = (Entry("u32", XT.STRING, mand=True, invert=True),)

    def __init__(self) -> None:
        super().__init__()
        self.tests: list[Test] = []
        self.inv = False

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        self.tests, self.inv = parse_u32(value), inv

    def finish(self) -> None:
        super().finish()
        for locs, _vals in self.tests:  # u32_mt_checkentry
            if any(op in (LEFTSH, RIGHTSH) and number >= 32 for op, number in locs):
                raise BadValue(kernel_refuses("xt_u32: a shift count of 32 or more"))

    def save(self) -> str:
        return f'{"! " if self.inv else ""}--u32 "{u32_text(self.tests)}"'

    def test(self, pkt: Any, ctx: Any) -> str | None:
        data, unknown = wire_view(pkt)
        failed = ""
        undecided = ""
        for n, test in enumerate(self.tests, 1):
            ok, why = run_test(test, data, unknown)
            if ok is False:
                failed = f"u32 test {n} ({u32_text([test])}) is false: {why}"
                break
            if ok is None and not undecided:
                undecided = f"-m u32 test {n} ({u32_text([test])}): {why}"
        if not failed and undecided:
            raise UnsupportedError(undecided)
        hit = not failed
        if hit != self.inv:
            return None
        return failed or f"every u32 test holds, rule says ! --u32 \"{u32_text(self.tests)}\""


MATCHES = (U32Match,)
