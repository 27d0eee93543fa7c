"""TCP options as text: the form of the ``tcp.options`` field (editor, journal, --json).

A comma-separated list, as tcpdump prints it::

    mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7

Items: ``eol`` (kind 0), ``nop`` (1), ``mss N`` (2), ``wscale N`` (3), ``sackOK`` (4),
``sack L:R [L:R ...]`` (5), ``TS val N ecr N`` (8); any other option is
``opt KIND`` or ``opt KIND 0xDATA`` (its kind and data bytes); ``bytes 0xHEX`` is
what is left of a header from a byte that starts no well-formed option (a length
below 2 or past the end of the options). The empty list is ``none``. Names are
read case-insensitively, numbers as every kptui number (decimal, 0x hex, 0-prefixed
octal).

The bytes are read as the kernel walks them (tcp_parse_options: kind 0 and 1 are
one byte, every other kind has a length byte counting itself and the kind), item
after item to the end: an ``eol`` is followed by whatever the header holds. Every
byte string has one text (``format_options``) and ``parse_options`` gives the same
bytes back; a text typed another way (``NOP``, ``opt 2 0x05b4``) reads as the
canonical one does. A TCP header holds at most 40 bytes of options, in whole 4-byte
words (its data offset counts words): other sizes are refused with the padding
that would fit.
"""

from __future__ import annotations

import re
import struct

from kptui.engine.errors import FieldError
from kptui.engine.numbers import NumberError, parse_uint

MAX_OPTIONS = 40  # the data offset's 4 bits: 60-byte header, 20 of them fixed
MAX_TEXT = 1024  # 40 bytes never need more text than this, whatever the spacing
EOL, NOP, MSS, WSCALE, SACK_PERM, SACK, TIMESTAMP = 0, 1, 2, 3, 4, 5, 8
_HEX = frozenset("0123456789abcdefABCDEF")
_WORDS = re.compile(r"\S+")


def format_options(opts: bytes) -> str:
    """The canonical text of option bytes ("" for none)."""
    items: list[str] = []
    i, n = 0, len(opts)
    while i < n:
        kind = opts[i]
        if kind in (EOL, NOP):
            items.append("eol" if kind == EOL else "nop")
            i += 1
            continue
        size = opts[i + 1] if i + 1 < n else 0
        if size < 2 or i + size > n:
            items.append("bytes 0x" + opts[i:].hex())
            break
        items.append(_item(kind, opts[i + 2:i + size]))
        i += size
    return ",".join(items)


def _item(kind: int, body: bytes) -> str:
    size = len(body)
    if kind == MSS and size == 2:
        return f"mss {struct.unpack('!H', body)[0]}"
    if kind == WSCALE and size == 1:
        return f"wscale {body[0]}"
    if kind == SACK_PERM and size == 0:
        return "sackOK"
    if kind == SACK and size and size % 8 == 0:
        edges = struct.unpack(f"!{size // 4}I", body)
        return "sack " + " ".join(f"{edges[k]}:{edges[k + 1]}" for k in range(0, len(edges), 2))
    if kind == TIMESTAMP and size == 8:
        val, ecr = struct.unpack("!II", body)
        return f"TS val {val} ecr {ecr}"
    return f"opt {kind}" + (f" 0x{body.hex()}" if body else "")


def parse_options(text: str, path: str = "tcp.options") -> bytes:
    """Option bytes from their text; FieldError naming ``path`` and the item if bad."""
    if len(text) > MAX_TEXT:
        raise FieldError(f"{path}: {len(text)} characters is far more than 40 bytes of "
                         "options need")
    t = text.strip()
    if t == "" or t.lower() == "none":
        return b""
    out = bytearray()
    for item in t.split(","):
        words = _WORDS.findall(item)
        if not words:
            raise FieldError(f"{path}: an empty item in {_shown(t)}; items are separated "
                             "by single commas")
        out += _parse_item(path, words, item.strip())
        if len(out) > MAX_OPTIONS:
            raise FieldError(f"{path}: more than {MAX_OPTIONS} bytes; a TCP header holds at "
                             f"most {MAX_OPTIONS} bytes of options")
    check_size(path, bytes(out))
    return bytes(out)


def check_size(path: str, opts: bytes) -> None:
    """At most 40 bytes, in whole 4-byte words; the refusal says what would fit."""
    n = len(opts)
    if n > MAX_OPTIONS:
        raise FieldError(f"{path}: {n} bytes; a TCP header holds at most {MAX_OPTIONS} "
                         "bytes of options")
    if n % 4:
        pad = 4 - n % 4
        raise FieldError(f"{path}: {n} bytes; TCP options fill whole 4-byte words (the "
                         f"header length counts words): add {pad} nop (or eol at the end)")


_ARITY = {"eol": 0, "nop": 0, "mss": 1, "wscale": 1, "sackok": 0}
_ITEM_FORMS = ("eol, nop, mss N, wscale N, sackOK, sack L:R, TS val N ecr N, "
               "opt KIND [0xDATA] or bytes 0xHEX")


def _parse_item(path: str, words: list[str], item: str) -> bytes:
    name = words[0].lower() if words[0].isascii() else words[0]
    args = words[1:]
    if name in _ARITY and len(args) != _ARITY[name]:
        want = "no value" if _ARITY[name] == 0 else "one number"
        raise FieldError(f"{path}: {_shown(item)}: {words[0]} takes {want}")
    if name == "eol":
        return bytes([EOL])
    if name == "nop":
        return bytes([NOP])
    if name == "sackok":
        return bytes([SACK_PERM, 2])
    if name == "mss":
        return struct.pack("!BBH", MSS, 4, _number(path, args[0], 0xFFFF, "mss"))
    if name == "wscale":
        return bytes([WSCALE, 3, _number(path, args[0], 0xFF, "wscale")])
    if name == "ts":
        if len(args) != 4 or args[0].lower() != "val" or args[2].lower() != "ecr":
            raise FieldError(f"{path}: {_shown(item)}: write TS val N ecr N")
        val = _number(path, args[1], 0xFFFFFFFF, "TS val")
        ecr = _number(path, args[3], 0xFFFFFFFF, "TS ecr")
        return struct.pack("!BBII", TIMESTAMP, 10, val, ecr)
    if name == "sack":
        return _sack(path, args, item)
    if name == "opt":
        if not 1 <= len(args) <= 2:
            raise FieldError(f"{path}: {_shown(item)}: write opt KIND or opt KIND 0xDATA")
        kind = _number(path, args[0], 0xFF, "opt kind")
        if kind in (EOL, NOP):
            raise FieldError(f"{path}: {_shown(item)}: kind {kind} is one byte, write "
                             f"{'eol' if kind == EOL else 'nop'}")
        body = _hex(path, args[1], item) if len(args) == 2 else b""
        if len(body) > 253:
            raise FieldError(f"{path}: {_shown(item)}: an option holds at most 253 data bytes")
        return bytes([kind, 2 + len(body)]) + body
    if name == "bytes":
        if len(args) != 1:
            raise FieldError(f"{path}: {_shown(item)}: write bytes 0xHEX")
        return _hex(path, args[0], item)
    raise FieldError(f"{path}: {_shown(words[0])} is not a TCP option; use {_ITEM_FORMS}")


def _sack(path: str, args: list[str], item: str) -> bytes:
    if not args:
        raise FieldError(f"{path}: {_shown(item)}: sack needs at least one block L:R")
    body = bytearray()
    for block in args:
        left, colon, right = block.partition(":")
        if not colon:
            raise FieldError(f"{path}: {_shown(block)}: a sack block is LEFT:RIGHT")
        body += struct.pack("!II", _number(path, left, 0xFFFFFFFF, "sack edge"),
                            _number(path, right, 0xFFFFFFFF, "sack edge"))
        if len(body) > MAX_OPTIONS:
            break
    return bytes([SACK, 2 + len(body)]) + body


def _number(path: str, text: str, hi: int, what: str) -> int:
    try:
        return parse_uint(text, 0, hi, base=0, what=what)
    except NumberError as err:
        raise FieldError(f"{path}: {err.message}") from None


def _hex(path: str, text: str, item: str) -> bytes:
    digits = text[2:] if text[:2] in ("0x", "0X") else None
    if not digits or len(digits) % 2 or not _HEX.issuperset(digits):
        raise FieldError(f"{path}: {_shown(item)}: bytes are written 0x and an even "
                         "number of hex digits")
    return bytes.fromhex(digits)


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:37] + "...")

