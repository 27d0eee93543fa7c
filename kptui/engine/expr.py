"""Conditions over packet fields, for conditional breakpoints: a tiny language, no eval.

    tcp.dport == 80 and meta.mark != 0
    ip.dst in 10.0.0.0/8 or ip.src in {192.0.2.1, 198.51.100.0/24}
    tcp.flags == SA and not ip.df

A hand-written tokenizer and a recursive-descent parser build a small tree of
nodes; every literal is checked against its field's type when the condition
is compiled, so a typo is reported once, with its column, instead of making a
breakpoint silently never fire. Precedence, loosest first: ``or``, ``and``,
``not``, then a single test (a comparison, a membership or a bare yes/no
field). Parentheses group.

A field that does not apply to the packet (``tcp.dport`` on a UDP packet)
makes every test on it false, ``!=`` and ``not in`` included, as in Wireshark
display filters; ``not (tcp.dport == 80)`` is how to say "anything but TCP
port 80".
"""

from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from ipaddress import AddressValueError, IPv4Address, IPv4Network, NetmaskValueError
from typing import Any, Protocol

from kptui.engine.errors import FieldError, ParseError
from kptui.engine.numbers import scan_uint

FILE = "<condition>"

# What each packet.FieldSpec type compares as; numbers and addresses are ordered.
_KINDS: dict[str, str] = {
    "u8": "int", "u16": "int", "u32": "int", "ipv4": "addr", "bool": "bool",
    "tcpflags": "flags", "classid": "classid", "iface": "text", "str": "text",
    "tcpoptions": "text",
}
_KIND_WORDS = {
    "int": "a number",
    "addr": "an IPv4 address",
    "bool": "yes/no (true or false)",
    "flags": "TCP flags (like SA, \"SYN,ACK\" or 0x12)",
    "classid": "a tc class id (like \"1:10\")",
    "text": "text",
}
_ORDERED_KINDS = ("int", "addr")
KEYWORDS = ("and", "or", "not", "in")
# Levels of parentheses and `not` a condition may nest. The parser and the evaluator
# recurse once per level, so this bound keeps both far from Python's recursion limit
# (a pasted `((((...` 100,000 deep is a ParseError, never a RecursionError).
MAX_DEPTH = 64


class PacketLike(Protocol):
    def get(self, path: str) -> Any: ...


# -- tokens ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # op, punct, string, number, word, end
    text: str
    column: int  # 1-based


_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
    | (?P<op>==|!=|<=|>=|<|>)
    | (?P<punct>[(){},])
    | (?P<string>"[^"]*"|'[^']*')
    | (?P<number>[0-9][0-9A-Za-z./:]*)
    | (?P<word>[A-Za-z_][A-Za-z0-9_.\-]*)
    """,
    re.VERBOSE,
)

# Characters people type out of habit from other languages, with what to write instead.
_HINTS = {"=": "use == to compare", "!": "use `not`", "&": "use `and`", "|": "use `or`"}


def tokenize(text: str, *, file: str = FILE, offset: int = 0) -> list[Token]:
    """Split ``text`` into tokens; ``offset`` shifts the columns (text inside a longer line)."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        col = pos + 1 + offset
        if m is None:
            ch = text[pos]
            if ch in "\"'":
                raise ParseError("unterminated string", file=file, line=1, column=col,
                                 token=text[pos:])
            hint = _HINTS.get(ch)
            message = f"unexpected character {ch!r}" + (f"; {hint}" if hint else "")
            raise ParseError(message, file=file, line=1, column=col, token=ch)
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, m.group(), col))
        pos = m.end()
    tokens.append(Token("end", "", len(text) + 1 + offset))
    return tokens


# -- the tree ----------------------------------------------------------------------------

_ABSENT = object()


def _field_value(pkt: PacketLike, path: str) -> Any:
    """The field's value, or _ABSENT when it does not apply to this packet (no TCP header...)."""
    try:
        value = pkt.get(path)
    except (FieldError, AttributeError):
        return _ABSENT
    return _ABSENT if value is None else value


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]

    def evaluate(self, pkt: PacketLike) -> bool:
        return any(item.evaluate(pkt) for item in self.items)


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]

    def evaluate(self, pkt: PacketLike) -> bool:
        return all(item.evaluate(pkt) for item in self.items)


@dataclass(frozen=True, slots=True)
class Not:
    item: Node

    def evaluate(self, pkt: PacketLike) -> bool:
        return not self.item.evaluate(pkt)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True, slots=True)
class Compare:
    path: str
    op: str
    value: Any

    def evaluate(self, pkt: PacketLike) -> bool:
        actual = _field_value(pkt, self.path)
        return actual is not _ABSENT and _COMPARE[self.op](actual, self.value)


@dataclass(frozen=True, slots=True)
class Member:
    """``path in X`` / ``path not in X``: X is a network or a set of values and networks."""

    path: str
    negate: bool
    values: tuple[Any, ...]

    def evaluate(self, pkt: PacketLike) -> bool:
        actual = _field_value(pkt, self.path)
        if actual is _ABSENT:
            return False
        found = any(_contains(v, actual) for v in self.values)
        return found != self.negate


def _contains(value: Any, actual: Any) -> bool:
    if isinstance(value, IPv4Network):
        return isinstance(actual, IPv4Address) and actual in value
    return bool(actual == value)


@dataclass(frozen=True, slots=True)
class Truth:
    """A bare yes/no field: ``ip.df``."""

    path: str

    def evaluate(self, pkt: PacketLike) -> bool:
        actual = _field_value(pkt, self.path)
        return actual is not _ABSENT and bool(actual)


Node = Or | And | Not | Compare | Member | Truth


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled condition: ``text`` as written, ``evaluate(pkt)`` on the live packet."""

    text: str
    node: Node
    paths: tuple[str, ...]  # every field the condition reads, in order of appearance

    def evaluate(self, pkt: PacketLike) -> bool:
        return self.node.evaluate(pkt)


# -- field paths ---------------------------------------------------------------------------


def known_paths() -> list[str]:
    """Every field path a condition may name: those of packet.FIELDS."""
    from kptui.engine.packet import FIELDS

    return list(FIELDS)


def unknown_field_reason(path: str, paths: Iterable[str]) -> str | None:
    """None when ``path`` is a field; otherwise the reason, with the closest spelling."""
    paths = list(paths)
    if path in paths:
        return None
    close = difflib.get_close_matches(path, paths, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"unknown field {path}{hint}"


def field_kind(path: str) -> str:
    """int, addr, bool, flags, classid or text: how a field compares."""
    from kptui.engine.packet import FIELDS

    return _KINDS.get(FIELDS[path].type, "int")


# -- the parser ----------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, file: str, offset: int, paths: list[str]) -> None:
        self.text = text
        self.file = file
        self.tokens = tokenize(text, file=file, offset=offset)
        self.pos = 0
        self.paths = paths
        self.seen: list[str] = []
        self.depth = 0

    # helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.tok
        self.pos = min(self.pos + 1, len(self.tokens) - 1)
        return tok

    def is_word(self, word: str, tok: Token | None = None) -> bool:
        tok = tok or self.tok
        return tok.kind == "word" and tok.text == word

    def error(self, message: str, tok: Token | None = None) -> ParseError:
        tok = tok or self.tok
        text = tok.text if len(tok.text) <= 60 else tok.text[:57] + "..."  # a pasted 1 MB
        return ParseError(message, file=self.file, line=1, column=tok.column, token=text)

    def expect_punct(self, text: str, why: str) -> Token:
        if self.tok.kind == "punct" and self.tok.text == text:
            return self.advance()
        found = "the end" if self.tok.kind == "end" else repr(self.tok.text)
        raise self.error(f"expected {text!r} {why}, found {found}")

    # grammar
    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise self.error("empty condition: write a test such as tcp.dport == 80")
        node = self.parse_or()
        if self.tok.kind != "end":
            raise self.error(f"unexpected {self.tok.text!r}: expected `and`, `or` or the end")
        return node

    def parse_or(self) -> Node:
        items = [self.parse_and()]
        while self.is_word("or"):
            self.advance()
            items.append(self.parse_and())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def parse_and(self) -> Node:
        items = [self.parse_not()]
        while self.is_word("and"):
            self.advance()
            items.append(self.parse_not())
        return items[0] if len(items) == 1 else And(tuple(items))

    def nest(self, tok: Token) -> None:
        """One level deeper (a `(` or a `not`); refuse past MAX_DEPTH, naming the column."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"nested too deeply: at most {MAX_DEPTH} levels of parentheses "
                             "and `not`", tok)

    def parse_not(self) -> Node:
        tok = self.tok
        if self.is_word("not"):
            self.nest(tok)
            self.advance()
            node = Not(self.parse_not())
            self.depth -= 1
            return node
        return self.parse_primary()

    def parse_primary(self) -> Node:
        tok = self.tok
        if tok.kind == "punct" and tok.text == "(":
            self.nest(tok)
            self.advance()
            node = self.parse_or()
            self.expect_punct(")", f"to close the '(' at column {tok.column}")
            self.depth -= 1
            return node
        return self.parse_test()

    def parse_test(self) -> Node:
        path = self.parse_path()
        kind = field_kind(path)
        tok = self.tok
        if tok.kind == "op":
            self.advance()
            if tok.text not in ("==", "!=") and kind not in _ORDERED_KINDS:
                raise self.error(f"{tok.text} compares numbers or addresses; {path} is "
                                 f"{_KIND_WORDS[kind]}", tok)
            return Compare(path, tok.text, self.parse_literal(path, allow_network=False))
        if self.is_word("in") or (self.is_word("not") and self.is_word("in", self.peek())):
            negate = self.is_word("not")
            if negate:
                self.advance()
            self.advance()
            return Member(path, negate, self.parse_members(path))
        if kind == "bool":
            return Truth(path)
        found = "the end" if tok.kind == "end" else repr(tok.text)
        raise self.error(f"expected a comparison (== != < <= > >=) or `in` after {path}, "
                         f"found {found}")

    def parse_path(self) -> str:
        tok = self.tok
        if tok.kind != "word" or tok.text in KEYWORDS:
            found = "the end" if tok.kind == "end" else repr(tok.text)
            raise self.error(f"expected a field path such as tcp.dport, found {found}")
        reason = unknown_field_reason(tok.text, self.paths)
        if reason:
            raise self.error(reason)
        self.advance()
        self.seen.append(tok.text)
        return tok.text

    def parse_members(self, path: str) -> tuple[Any, ...]:
        tok = self.tok
        if not (tok.kind == "punct" and tok.text == "{"):
            return (self.parse_literal(path, allow_network=True),)
        self.advance()
        values = [self.parse_literal(path, allow_network=True)]
        while self.tok.kind == "punct" and self.tok.text == ",":
            self.advance()
            if self.tok.kind == "punct" and self.tok.text == "}":
                break  # a trailing comma is fine
            values.append(self.parse_literal(path, allow_network=True))
        self.expect_punct("}", f"to close the set opened at column {tok.column}")
        return tuple(values)

    def parse_literal(self, path: str, *, allow_network: bool) -> Any:
        tok = self.tok
        if tok.kind in ("end", "op") or (tok.kind == "punct") or (
                tok.kind == "word" and tok.text in KEYWORDS):
            found = "the end" if tok.kind == "end" else repr(tok.text)
            raise self.error(f"expected a value to compare {path} with, found {found}")
        if tok.kind == "word" and tok.text in self.paths:
            raise self.error(f"{tok.text} is a field: a condition compares a field with a "
                             "value, not with another field")
        self.advance()
        if field_kind(path) == "addr":
            return self.addr_literal(tok, path, allow_network)
        return self.field_literal(tok, path)

    def addr_literal(self, tok: Token, path: str, allow_network: bool) -> Any:
        """An address, or with ``in`` a network; a malformed network says why."""
        value = _network(tok.text) if tok.kind == "number" else None
        if isinstance(value, IPv4Network):
            if allow_network:
                return value
            raise self.error(f"a network is matched with `in`: {path} in {tok.text}", tok)
        if isinstance(value, str):
            raise self.error(value, tok)
        return self.field_literal(tok, path)

    def field_literal(self, tok: Token, path: str) -> Any:
        """The value as the packet editor reads it (packet.FIELDS), range checks included,
        so a condition and an edit agree on what `0x10`, `SA` or `echo-request` mean."""
        from kptui.engine.packet import FIELDS

        spec = FIELDS[path]
        text = tok.text[1:-1] if tok.kind == "string" else tok.text
        try:
            return spec.validate(spec.parse(text))
        except FieldError as err:
            raise self.error(str(err), tok) from None


_QUAD = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")


def _network(text: str) -> IPv4Network | str | None:
    """A number token read as a network: the network, why it is wrong (str), or None.

    The prefix length is read as iptables reads ``-s 10.0.0.0/010`` (base 0: /8;
    checked with iptables 1.8.9, which refuses ``/08``)."""
    addr, slash, prefix = text.partition("/")
    if not slash or not _QUAD.fullmatch(addr):
        return None
    bits = scan_uint(prefix, 0)
    if bits is None or bits > 32:
        shown = prefix if len(prefix) <= 40 else prefix[:37] + "..."
        return f"bad prefix length /{shown} (0 to 32)"
    try:
        net = IPv4Network((addr, bits), strict=False)
    except (AddressValueError, NetmaskValueError, ValueError):
        return f"{addr} is not an IPv4 address"
    if net.network_address != IPv4Address(addr):
        return f"{addr}/{bits} has host bits set; did you mean {net}?"
    return net


def compile(text: str, *, file: str = FILE, offset: int = 0) -> Condition:  # noqa: A001
    """Parse and check ``text``; raise ParseError (with column and token) when it is wrong.

    ``offset`` shifts columns when the condition is part of a longer line (a
    breakpoint spec). Named after re.compile: ``expr.compile(text)``.
    """
    parser = _Parser(text, file, offset, known_paths())
    node = parser.parse()
    return Condition(text=text.strip(), node=node, paths=tuple(parser.seen))
