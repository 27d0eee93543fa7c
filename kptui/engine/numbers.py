"""The one number parser for user text: every parser, edit and breakpoint uses it.

Python's ``int()`` is the wrong tool for what a user typed. It reads any
Unicode digit (``int("١٢") == int("１２") == 12``), ``"8²"`` passes
``str.isdigit()`` and then makes ``int()`` raise, it takes underscores and
surrounding blanks, and it refuses strings of over 4300 digits with a bare
ValueError. The tools kptui mirrors read numbers with C's ``strtoul``
(iptables' ``xtables_strtoui``, iproute2's ``get_u32``): ASCII digits only,
base 0 meaning ``0x`` hex, a leading ``0`` octal and decimal otherwise, and
ERANGE past the type's width. These helpers do the same, cap the length
before converting, and raise ``NumberError`` (a KptuiError, so every front
end shows it) naming the token. Each caller says which base its tool uses:
``010`` is 8 for ``iptables --dport`` (base 0, checked on iptables 1.8.9)
but 10 for ``--limit 010/sec`` (base 10).

``strtoul=True`` also takes what C's strtoul itself skips: leading blanks and
one ``+``. The strict default takes the digits and nothing else.
"""

from __future__ import annotations

import math

from kptui.engine.errors import KptuiError

# Significant digits beyond this cannot be in any range kptui checks (2**128 has 39
# decimal digits); refusing them before int() keeps a 1 MB token from costing seconds.
MAX_DIGITS = 48
# Characters of a float's text (digits, point, exponent) read at the most.
MAX_FLOAT_CHARS = 64
U8, U16, U32, U64 = 0xFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF

_DIGITS = {
    2: frozenset("01"),
    8: frozenset("01234567"),
    10: frozenset("0123456789"),
    16: frozenset("0123456789abcdefABCDEF"),
}
_DEC = _DIGITS[10]
_BLANKS = " \t\n\v\f\r"  # C's isspace() in the C locale


class NumberError(KptuiError):
    """Text that is not a number in the form a tool accepts, or one out of its range.

    ``token`` is the offending text, ``out_of_range`` tells a well-formed number
    that is too large or too small from text that is no number at all.
    """

    def __init__(self, message: str, token: str, *, out_of_range: bool = False) -> None:
        self.message = message
        self.token = token
        self.out_of_range = out_of_range
        super().__init__(message)


_TOO_BIG = 1 << 512  # stands for "more digits than MAX_DIGITS": beyond every range


def _base_of(body: str, base: int) -> tuple[str, int]:
    """The digits and the base strtoul would read them in (base 0: 0x hex, 0 octal)."""
    if base in (0, 16) and len(body) > 2 and body[0] == "0" and body[1] in "xX":
        return body[2:], 16
    if base == 0:
        return body, 8 if len(body) > 1 and body[0] == "0" else 10
    return body, base


def scan_uint(text: str, base: int = 10, *, strtoul: bool = False) -> int | None:
    """The unsigned integer ``text`` spells, or None when it spells none.

    A well-formed number with more than MAX_DIGITS significant digits comes back
    as a value beyond every range, so the caller's range check refuses it.
    """
    body = text.lstrip(_BLANKS) if strtoul else text
    if strtoul and body.startswith("+"):
        body = body[1:]
    digits, b = _base_of(body, base)
    allowed = _DIGITS.get(b)
    if allowed is None:
        raise ValueError(f"scan_uint: unsupported base {base}")
    if not digits or not allowed.issuperset(digits):
        return None
    significant = digits.lstrip("0")
    if len(significant) > MAX_DIGITS:
        return _TOO_BIG
    return int(significant or "0", b)


def is_uint(text: str, base: int = 10) -> bool:
    """Whether ``text`` is an unsigned number in ``base`` (ASCII digits only)."""
    return scan_uint(text, base) is not None


def _range_text(lo: int, hi: int, base: int) -> str:
    if base == 16 or hi in (U32, U64):
        return f"{lo:#x}..{hi:#x}" if lo else f"0..{hi:#x}"
    return f"{lo}..{hi}"


def parse_uint(text: str, lo: int = 0, hi: int = U32, *, base: int = 10,
               what: str = "number", strtoul: bool = False) -> int:
    """An unsigned integer in [lo, hi]; NumberError names ``what`` and the token."""
    value = scan_uint(text, base, strtoul=strtoul)
    if value is None:
        form = {0: "decimal, 0x hex or 0 octal", 8: "octal", 10: "decimal",
                16: "hexadecimal", 2: "binary"}[base]
        raise NumberError(f"{what}: {_show(text)} is not a number ({form})", text)
    if not lo <= value <= hi:
        shown = _show(text) if value == _TOO_BIG else str(value)
        raise NumberError(f"{what}: {shown} is out of range {_range_text(lo, hi, base)}",
                          text, out_of_range=True)
    return value


def parse_int(text: str, lo: int, hi: int, *, base: int = 10, what: str = "number") -> int:
    """A signed integer (one leading ``-`` or ``+``) in [lo, hi]."""
    body = text[1:] if text[:1] in "+-" else text
    magnitude = scan_uint(body, base)
    if magnitude is None:
        raise NumberError(f"{what}: {_show(text)} is not a number", text)
    value = -magnitude if text.startswith("-") else magnitude
    if not lo <= value <= hi:
        raise NumberError(f"{what}: {value} is out of range {lo}..{hi}", text,
                          out_of_range=True)
    return value


def split_uint(text: str, base: int = 10) -> tuple[str, str]:
    """``text`` cut after its leading digits, as strtoul's end pointer cuts it:
    ``"10/sec"`` -> ``("10", "/sec")``. The first part is "" when there are none."""
    allowed = _DIGITS[base]
    n = 0
    while n < len(text) and text[n] in allowed:
        n += 1
    return text[:n], text[n:]


def split_float(text: str) -> tuple[str, str]:
    """``text`` cut after a leading decimal number (digits, one point, an exponent),
    as strtod's end pointer cuts it: ``"1.5mbit"`` -> ``("1.5", "mbit")``."""
    n, size = 0, len(text)
    while n < size and text[n] in _DEC:
        n += 1
    if n < size and text[n] == ".":
        n += 1
        while n < size and text[n] in _DEC:
            n += 1
    mantissa = text[:n]
    if not mantissa.strip("."):
        return "", text
    if n < size and text[n] in "eE":
        m = n + 1
        if m < size and text[m] in "+-":
            m += 1
        if m < size and text[m] in _DEC:
            while m < size and text[m] in _DEC:
                m += 1
            n = m
    return text[:n], text[n:]


def parse_float(text: str, lo: float = 0.0, hi: float = math.inf, *,
                what: str = "number") -> float:
    """A finite decimal number (``12``, ``0.5``, ``1e3``) in [lo, hi], ASCII only.

    No ``inf``, ``nan``, hex floats or underscores: no tool kptui mirrors means
    them where it asks for a rate, a size or a time.
    """
    number, rest = split_float(text)
    if not number or rest:
        raise NumberError(f"{what}: {_show(text)} is not a number", text)
    if len(number) > MAX_FLOAT_CHARS:
        raise NumberError(f"{what}: {_show(text)} has too many digits", text,
                          out_of_range=True)
    value = float(number)
    if not math.isfinite(value) or not lo <= value <= hi:
        raise NumberError(f"{what}: {number} is out of range {lo:g}..{hi:g}", text,
                          out_of_range=True)
    return value


def _show(text: str) -> str:
    """The token as an error quotes it: repr, cut when very long."""
    return repr(text) if len(text) <= 40 else repr(text[:37] + "...")


__all__ = [
    "MAX_DIGITS", "NumberError", "U8", "U16", "U32", "U64", "is_uint", "parse_float",
    "parse_int", "parse_uint", "scan_uint", "split_float", "split_uint",
]
