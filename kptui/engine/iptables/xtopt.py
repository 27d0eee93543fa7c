"""xtables' guided option parser (libxtables/xtoptions.c, iptables 1.8.9), as data.

Most extensions of iptables 1.8.9 describe their options as a table of
``struct xt_option_entry`` (name, type, flags, min/max, exclusions) and let
libxtables parse the values and check the combination. Mirroring that table
gives kptui iptables' exact acceptance and wording for free: an extension here
is a tuple of ``Entry`` and a ``parsed`` hook, like the C ``x6_parse``, plus
``check`` for ``x6_fcheck`` and ``save`` for the print-back.

Value types and their errors (``{ext}`` is the extension's name):

====================  ====================================================
UINT8..UINT64         base-0 strtoul in [min, max]: ``{ext}: bad value for
                      option "--x", or out of range (min-max).``
UINT8RC..UINT64RC     ``a[:b[:...]]``, parts default to 0 and the type's max
DOUBLE                strtod in [min, max] when min != max
STRING                length bounds
TOSMASK               ``value[/mask]`` (0..255) or a TOS name
MARKMASK32            ``value[/mask]`` (32-bit)
SYSLOGLEVEL           0..7 or a level name
HOST / HOSTMASK       a numeric IPv4 address (inet_aton), ``/plen`` or ``/mask``
PROTOCOL              a protocol number or name
PORT / PORTRC         a port (decimal, or a service name); ``a:b`` ranges
PLEN / PLENMASK       a prefix length 0..32 or a dotted mask
ETHERMAC              ``aa:bb:cc:dd:ee:ff``
====================  ====================================================
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, ClassVar

from kptui.engine.iptables.matches import Match, Opt
from kptui.engine.iptables.targets import Target
from kptui.engine.iptables.values import _OCTET, SERVICES, BadValue, parse_proto
from kptui.engine.numbers import NumberError, parse_float, scan_uint, split_uint


class XT(enum.Enum):
    NONE = "none"
    UINT8 = "u8"
    UINT16 = "u16"
    UINT32 = "u32"
    UINT64 = "u64"
    UINT8RC = "u8rc"
    UINT16RC = "u16rc"
    UINT32RC = "u32rc"
    UINT64RC = "u64rc"
    DOUBLE = "double"
    STRING = "string"
    TOSMASK = "tosmask"
    MARKMASK32 = "markmask32"
    SYSLOGLEVEL = "sysloglevel"
    HOST = "host"
    HOSTMASK = "hostmask"
    PROTOCOL = "protocol"
    PORT = "port"
    PORTRC = "portrc"
    PLEN = "plen"
    PLENMASK = "plenmask"
    ETHERMAC = "ethermac"


_TYPE_MAX = {XT.UINT8: 0xFF, XT.UINT16: 0xFFFF, XT.UINT32: 0xFFFFFFFF,
             XT.UINT64: 0xFFFFFFFFFFFFFFFF, XT.UINT8RC: 0xFF, XT.UINT16RC: 0xFFFF,
             XT.UINT32RC: 0xFFFFFFFF, XT.UINT64RC: 0xFFFFFFFFFFFFFFFF}


@dataclass(frozen=True)
class Entry:
    """One ``struct xt_option_entry``. ``excl``/``also`` name other entries.

    ``size`` caps the components of an RC type (``entry->size / esize``; 0 means
    2). ``max``/``min`` of 0 mean the type's own bounds, as in C.
    """

    name: str  # without the leading --
    type: XT = XT.NONE
    invert: bool = False
    mand: bool = False
    multi: bool = False
    excl: tuple[str, ...] = ()
    also: tuple[str, ...] = ()
    min: int = 0
    max: int = 0
    size: int = 0


# -- value parsers ----------------------------------------------------------------------

def strtoul_prefix(text: str, base: int = 0) -> tuple[int | None, str]:
    """strtoul with an end pointer: (value, rest) or (None, text) when no digits.

    Leading blanks and one sign are skipped as C does; a ``-`` makes the value
    wrap, which every caller's range check refuses (None here).
    """
    body = text.lstrip(" \t\n\v\f\r")
    neg = body.startswith("-")
    if body[:1] in "+-" and body:
        body = body[1:]
    b = base
    if base in (0, 16) and body[:2].lower() == "0x" and body[2:3].lower() in \
            "0123456789abcdef" and body[2:3]:
        body, b = body[2:], 16
    elif base == 0:
        b = 8 if body.startswith("0") else 10
    digits, rest = split_uint(body, b)
    if not digits:
        return None, text
    value = scan_uint(digits, b)
    if value is None or (neg and value):
        return None, rest
    return value, rest


# Whole-text numbers already read, by their text: a big ruleset repeats a few hundred
# spellings (masks, seconds, counts) thousands of times. Bounded: odd spellings are endless.
_WHOLE: dict[str, int | None] = {}
_WHOLE_MAX = 8192


def xt_strtoul(text: str) -> tuple[int | None, str]:
    """xtables_strtoul with an end pointer: strtoul, but any ``-`` (after blanks) is
    refused, ``-0`` too (checked on iptables 1.8.9: ``--ttl-set -0``)."""
    if text.lstrip(" \t\n\v\f\r")[:1] == "-":
        return None, text
    return strtoul_prefix(text)


def strtoui(text: str, lo: int, hi: int) -> int | None:
    """xtables_strtoul(text, NULL, &v, lo, hi): the whole text, base 0, in range."""
    try:
        value = _WHOLE[text]
    except KeyError:
        value, rest = xt_strtoul(text)
        if rest:
            value = None
        if len(_WHOLE) < _WHOLE_MAX:
            _WHOLE[text] = value
    if value is None or not lo <= value <= hi:
        return None
    return value


def inet_aton(text: str) -> int | None:
    """inet_aton, what getaddrinfo reads a numeric IPv4 host with: 1 to 4 parts,
    each base 0, the last filling the remaining bytes (``10.1`` is 10.0.0.1)."""
    parts = text.split(".")
    if len(parts) == 4:  # the usual a.b.c.d in canonical decimal: one dict lookup each
        get = _OCTET.get
        a, b, c, d = get(parts[0]), get(parts[1]), get(parts[2]), get(parts[3])
        if a is not None and b is not None and c is not None and d is not None:
            return (a << 24) | (b << 16) | (c << 8) | d
    if not 1 <= len(parts) <= 4:
        return None
    values = []
    for p in parts:
        v, rest = strtoul_prefix(p)
        if v is None or rest or p[:1] in " +-\t":
            return None
        values.append(v)
    *head, last = values
    if any(v > 255 for v in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    addr = 0
    for v in head:
        addr = addr << 8 | v
    return addr << (8 * (4 - len(head))) | last


def port_by_name(text: str) -> int | None:
    """xtables_getportbyname: getaddrinfo(NULL, text). glibc reads a service that is all
    a number with strtoul(base 10) into an int: a negative int (bit 31 set, a ``-``,
    an overflow) makes it a name, which no service has; else the port is its low 16
    bits (htons): ``65616`` is 80, ``-0`` and ``""`` are 0 (checked, iptables 1.8.9)."""
    body = text.lstrip(" \t\n\v\f\r")
    neg = body[:1] == "-"
    digits = body[1:] if body[:1] in "+-" else body
    v = scan_uint(digits, 10) if digits else (0 if text == "" else None)
    if v is None:
        return SERVICES.get(text)
    v = 0xFFFFFFFFFFFFFFFF if v > 0xFFFFFFFFFFFFFFFF else (-v if neg else v)
    v &= 0xFFFFFFFF
    return v & 0xFFFF if v < 0x80000000 else None


TOS_NAMES = {"minimize-delay": 0x10, "maximize-throughput": 0x08,
             "maximize-reliability": 0x04, "minimize-cost": 0x02, "normal-service": 0x00}
SYSLOG_LEVELS = {"alert": 1, "crit": 2, "debug": 7, "emerg": 0, "error": 3, "info": 6,
                 "notice": 5, "panic": 0, "warning": 4}


def _no_dns(text: str) -> BadValue:
    return BadValue(f"host/network `{text}' not found (kptui does not resolve host names; "
                    "write an address)")


def parse_entry_value(ext: str, e: Entry, arg: str) -> Any:
    """The value of one option, as xtopt_subparse[type] reads it."""
    t = e.type
    bad = f'{ext}: bad value for option "--{e.name}", or out of range'
    if t in (XT.UINT8, XT.UINT16, XT.UINT32, XT.UINT64):
        lo, hi = e.min, e.max or _TYPE_MAX[t]
        v = strtoui(arg, lo, hi)
        if v is None:
            raise BadValue(f"{bad} ({lo}-{hi}).")
        return v
    if t in (XT.UINT8RC, XT.UINT16RC, XT.UINT32RC, XT.UINT64RC):
        return _mint(ext, e, arg)
    if t is XT.DOUBLE:
        try:
            v = parse_float(arg.lstrip(" \t\n\v\f\r"))
        except NumberError:
            raise BadValue(f"{bad} ({e.min}-{e.max}).") from None
        if e.min != e.max and not e.min <= v <= e.max:
            raise BadValue(f"{bad} ({e.min}-{e.max}).")
        return v
    if t is XT.STRING:
        size = len(arg.encode("utf-8", "surrogateescape"))
        if e.min and size < e.min:
            raise BadValue(f"Argument must have a minimum length of {e.min} characters")
        if e.max and size > e.max:
            raise BadValue(f"Argument must have a maximum length of {e.max} characters")
        return arg
    if t is XT.TOSMASK:
        return _tosmask(arg, e.max or 0xFF)
    if t is XT.MARKMASK32:
        return _markmask(ext, e, arg)
    if t is XT.SYSLOGLEVEL:
        v = strtoui(arg, 0, 7)
        if v is None:
            v = SYSLOG_LEVELS.get(arg)
            if v is None:
                raise BadValue(f'log level "{arg}" unknown')
        return v
    if t is XT.HOST:
        v = inet_aton(arg)
        if v is None:
            raise _no_dns(arg)
        return v
    if t is XT.HOSTMASK:
        host, sep, plen = arg.partition("/")
        v = inet_aton(host)
        if v is None:
            raise _no_dns(host)
        mask = _plenmask(ext, e, plen) if sep else 0xFFFFFFFF
        return v, mask
    if t is XT.PROTOCOL:
        return parse_proto(arg)
    if t is XT.PORT:
        v = port_by_name(arg)
        if v is None:
            raise BadValue(f'Port "{arg}" does not resolve to anything.')
        return v
    if t is XT.PORTRC:
        return _mport(ext, e, arg)
    if t is XT.PLEN:
        return plen(ext, e.name, arg)[0]
    if t is XT.PLENMASK:
        return _plenmask(ext, e, arg)
    if t is XT.ETHERMAC:
        return _ethermac(arg)
    return None


def _maxiter(e: Entry) -> int:
    return e.size or 2


def _mint(ext: str, e: Entry, arg: str) -> list[int]:
    """xtopt_parse_mint: ``a:b:...`` (empty parts: 0, or the type's max for the second)."""
    lmax = _TYPE_MAX[e.type]
    values: list[int] = []
    i = 0
    while True:
        if len(values) == _maxiter(e):
            raise BadValue(f'{ext}: Too many components for option "--{e.name}" '
                           f"(max: {_maxiter(e)})")
        rest = arg[i:]
        if rest == "" or rest[0] == ":":
            end = i
            value = lmax if len(values) == 1 else 0
        else:
            got, after = xt_strtoul(rest)
            if got is None or got > lmax:
                raise BadValue(f'{ext}: bad value for option "--{e.name}" near "{rest}", '
                               f"or out of range (0-{lmax}).")
            if after and after[0] != ":":
                raise BadValue(f'{ext}: Argument to "--{e.name}" has unexpected characters '
                               f'near "{after}".')
            value, end = got, len(arg) - len(after)
        values.append(value)
        if end >= len(arg):
            return values
        i = end + 1


def _mport(ext: str, e: Entry, arg: str) -> list[int]:
    values: list[int] = []
    parts = arg.split(":")
    for n, part in enumerate(parts):
        if n == _maxiter(e):
            raise BadValue(f'{ext}: Too many components for option "--{e.name}" '
                           f"(max: {_maxiter(e)})")
        if part == "":
            values.append(0 if n == 0 else 0xFFFF)
            continue
        v = port_by_name(part)
        if v is None:
            raise BadValue(f'Port "{part}" does not resolve to anything.')
        values.append(v)
    if len(values) == 1:
        values.append(values[0])
    return values


def _tosmask(arg: str, def_mask: int) -> tuple[int, int]:
    value, rest = xt_strtoul(arg)
    if value is not None and value <= 0xFF:
        mask = 0xFF
        if rest.startswith("/"):
            m = strtoui(rest[1:], 0, 0xFF)
            if m is None:
                raise BadValue(f'Illegal value: "{arg}"')
            mask, rest = m, ""
        if rest:
            raise BadValue(f'Illegal value: "{arg}"')
        return value, mask
    v = TOS_NAMES.get(arg.lower())
    if v is None:
        raise BadValue(f'Symbolic name "{arg}" is unknown')
    return v, def_mask


def _markmask(ext: str, e: Entry, arg: str) -> tuple[int, int]:
    bad = f'{ext}: bad integer value for option "--{e.name}", or out of range.'
    value, rest = xt_strtoul(arg)
    if value is None or value > 0xFFFFFFFF:
        raise BadValue(bad)
    if rest == "":
        return value, 0xFFFFFFFF
    if not rest.startswith("/"):
        raise BadValue(f'{ext}: trailing garbage after value for option "--{e.name}".')
    mask, rest = xt_strtoul(rest[1:])
    if mask is None or mask > 0xFFFFFFFF:
        raise BadValue(bad)
    if rest:
        raise BadValue(f'{ext}: trailing garbage after value for option "--{e.name}".')
    return value, mask


def plen(ext: str, opt: str, arg: str) -> tuple[int, int]:
    """xtopt_parse_plen: (prefix length, mask). A word that is not 0..32 is read as a
    numeric host by getaddrinfo (``33`` is 0.0.0.33) and turned into its prefix by
    xtables_ipmask_to_cidr: a mask that is no prefix gives -1, stored as 255."""
    n = strtoui(arg, 0, 32)
    if n is None:
        mask = inet_aton(arg)
        if mask is None:
            raise BadValue(f'{ext}: bad value for option "--{opt}", neither a valid '
                           "network mask nor valid CIDR (0-32).")
        inv = ~mask & 0xFFFFFFFF
        n = 32 - inv.bit_length() if inv & (inv + 1) == 0 else 255
    return n, ((0xFFFFFFFF << (32 - n)) & 0xFFFFFFFF) if n <= 32 else 0xFFFFFFFF


def _plenmask(ext: str, e: Entry, arg: str) -> int:
    """xtopt_parse_plenmask: the mask of that length (all ones for 255)."""
    return plen(ext, e.name, arg)[1]


def _ethermac(arg: str) -> str:
    parts = arg.split(":")
    if len(parts) != 6 or not all(
            1 <= len(p) <= 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts):
        raise BadValue("Invalid MAC address specified.")
    return ":".join(p.lower().zfill(2) for p in parts)


# -- the extension side -------------------------------------------------------------------

class _Guided:
    """What xtables_option_parse and xtables_options_fcheck do around an extension."""

    name: ClassVar[str]
    entries: ClassVar[tuple[Entry, ...]] = ()
    by_opt: ClassVar[dict[str, Entry]] = {}
    constrained: ClassVar[tuple[Entry, ...]] = ()  # entries with mand, also or excl
    options: ClassVar[dict[str, Opt]] = {}
    own_checks: ClassVar[bool] = True  # the rule parser leaves once/invert checks to us
    seen: frozenset[str]

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "entries" in cls.__dict__:
            cls.by_opt = {f"--{e.name}": e for e in cls.entries}
            # only these can fail fcheck: a rule's other options need no second look
            cls.constrained = tuple(e for e in cls.entries if e.mand or e.also or e.excl)
            cls.options = {opt: Opt(0 if e.type is XT.NONE else 1, True)
                           for opt, e in cls.by_opt.items()}

    @property
    def ext_name(self) -> str:
        return self.name

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        e = self.by_opt[opt]
        if opt in self.seen and (not e.multi or e.name in e.excl):
            raise BadValue(f'{self.ext_name}: option "--{e.name}" can only be used once.')
        if inv and not e.invert:
            raise BadValue(f'{self.ext_name}: option "--{e.name}" cannot be inverted.')
        value = parse_entry_value(self.ext_name, e, args[0]) if args else None
        self.parsed(e.name, value, inv)

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        """x6_parse: one option's value (already parsed by its type) and its `!`."""
        raise NotImplementedError

    def fcheck(self) -> None:
        """xtables_options_fcheck: mandatory options, then also/excl, in table order."""
        if not self.constrained:
            return
        given = {e.name for e in self.entries if f"--{e.name}" in self.seen}
        for e in self.constrained:
            if e.mand and e.name not in given:
                raise BadValue(f'{self.ext_name}: option "--{e.name}" must be specified')
            if e.name not in given:
                continue
            for other in self.entries:
                if other.name == e.name:
                    continue
                if other.name in e.also and other.name not in given:
                    raise BadValue(f'{self.ext_name}: option "--{e.name}" also requires '
                                   f'"--{other.name}".')
                if other.name in e.excl and other.name in given:
                    raise BadValue(f'{self.ext_name}: option "--{e.name}" cannot be used '
                                   f'together with "--{other.name}".')

    def check(self) -> None:
        """x6_fcheck: the extension's own final check, after fcheck."""


class XtMatch(_Guided, Match):
    """A match described by ``entries``; implement ``parsed``, ``save`` (and ``test``
    when simulated: the base class stops the walk as not simulated)."""

    def finish(self) -> None:
        # xtables_option_mfcall: the extension's x6_fcheck first, then libxtables' checks
        self.check()
        self.fcheck()


class XtTarget(_Guided, Target):
    """A target described by ``entries``; implement ``parsed``, ``save`` (and ``apply``)."""

    def finish(self, proto: int, proto_inv: bool) -> None:
        self.check_rule(proto, proto_inv)  # xtables_option_tfcall: x6_fcheck first
        self.fcheck()

    def check_rule(self, proto: int, proto_inv: bool) -> None:
        """x6_fcheck, with what a target may need of the rule (its -p)."""
