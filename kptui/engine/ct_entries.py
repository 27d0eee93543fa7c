"""A scenario's pre-existing conntrack entries: `conntrack -L` lines into the box's table.

The scenario key ``conntrack`` (a multi-line string) holds lines as `conntrack -L` (conntrack-tools
1.4.7) or /proc/net/nf_conntrack print them, so a box captured with ``kptui capture``
starts with the connections the real box had, and an ESTABLISHED packet is seen as that
box sees it::

    tcp      6 431999 ESTABLISHED src=10.0.0.2 dst=192.0.2.1 sport=40000 dport=22 \
        src=192.0.2.1 dst=10.0.0.2 sport=22 dport=40000 [ASSURED] mark=0 use=1

Each line is one entry, read as the kernel holds it after `conntrack -I` with the same
tuples, state, status, mark and timeout (what ``kptui verify`` recreates it with):

- the number after the protocol is the seconds left at the scenario's time 0 (for a
  capture: at the moment of the capture), so the entry expires that much later on the
  box's simulated clock;
- ``[UNREPLIED]`` absent means SEEN_REPLY; ``[ASSURED]`` is ASSURED; CONFIRMED always;
- a reply tuple that is not the original's inverse is NAT: SRC_NAT when the reply's
  destination (address or port; an ICMP id) is not the original's source, DST_NAT when
  its source is not the original's destination. Both NAT manipulations are taken as
  done (SRC_NAT_DONE, DST_NAT_DONE), as for an entry that went through the nat hooks of
  a box with a nat table: later packets of the connection skip the nat chains;
- TCP: the state named after the timeout, with no window data (td_maxwin 0 both ways:
  ctnetlink's nlattr_to_tcp sets only the state), so the first packet each way is
  picked up mid-stream by tcp_in_window, as in the kernel after `conntrack -I`;
- UDP: the two-second "stream" mark is already behind (ctnetlink leaves stream_ts 0),
  so the next packet of a replied entry gets the stream timeout and ASSURED;
- ``packets=N bytes=N`` after a tuple (nf_conntrack_acct on) are its direction's
  counters; ``use=``, ``id=``, ``delta-time=`` and ``zone=0`` say nothing the walk reads.

Not modelled, each named as unsupported yet on its line: IPv6 entries, protocols other
than tcp, udp and icmp, conntrack zones other than 0, helpers (``helper=``), security
contexts (``secctx=``), labels, and flowtable-offloaded entries (``[OFFLOAD]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from ipaddress import IPv4Address

from kptui.engine.conntrack import (
    PROTO_ICMP,
    PROTO_TCP,
    PROTO_UDP,
    TCP_STATES,
    Conn,
    ConntrackTable,
    CtTuple,
    Status,
    TcpTrack,
)
from kptui.engine.errors import ParseError
from kptui.engine.numbers import U16, U32, U64, NumberError, parse_uint

PROTOS = {"tcp": PROTO_TCP, "udp": PROTO_UDP, "icmp": PROTO_ICMP}
# Protocols conntrack -L names that kptui has no tracker (or packet model) for.
OTHER_PROTOS = ("sctp", "dccp", "gre", "udplite", "unknown", "icmpv6")
# libnetfilter_conntrack prints TCP state 9 (SYN_SENT2) as LISTEN in some versions.
STATE_NUMBER = {name: n for n, name in enumerate(TCP_STATES)} | {"LISTEN": 9}
TUPLE_KEYS = {PROTO_TCP: ("sport", "dport"), PROTO_UDP: ("sport", "dport"),
              PROTO_ICMP: ("type", "code", "id")}
IGNORED = ("use", "id", "delta-time")  # what the walk does not read
UNSUPPORTED_KEYS = {"helper": "conntrack helpers", "secctx": "security contexts (secctx)",
                    "labels": "conntrack labels on a loaded entry",
                    "zone-orig": "conntrack zones", "zone-reply": "conntrack zones"}
UNSUPPORTED_FLAGS = {"[OFFLOAD]": "flowtable-offloaded entries ([OFFLOAD])",
                     "[HW_OFFLOAD]": "flowtable-offloaded entries ([HW_OFFLOAD])"}


@dataclass(slots=True)
class Entry:
    """One parsed line: the entry, and where it came from (for messages)."""

    conn: Conn
    line: int
    text: str


class _Line:
    """The words of one line, each with its column, for errors that point at a word."""

    def __init__(self, text: str, file: str, line: int) -> None:
        self.text, self.file, self.line = text, file, line
        self.words: list[tuple[str, int]] = []
        col = 0
        for word in text.split():
            col = text.index(word, col)
            self.words.append((word, col + 1))
            col += len(word)

    def error(self, message: str, word: tuple[str, int] | None = None) -> ParseError:
        return ParseError(f"conntrack: {message}", file=self.file, line=self.line,
                          column=word[1] if word else 0, token=word[0] if word else "")

    def unsupported(self, what: str, word: tuple[str, int] | None = None) -> ParseError:
        return self.error(f"unsupported yet: {what}", word)

    def number(self, word: tuple[str, int], hi: int, what: str) -> int:
        try:
            return parse_uint(word[0].partition("=")[2] if "=" in word[0] else word[0],
                              0, hi, what=what)
        except NumberError as exc:
            raise self.error(str(exc), word) from None


def parse_entries(text: str, *, file: str, first_line: int = 1) -> list[Entry]:
    """Every entry of a ``conntrack`` text; blank lines and ``#`` comments are skipped.
    A line that is not an entry is a ParseError naming the line and the word."""
    out: list[Entry] = []
    for offset, raw in enumerate(text.splitlines()):
        body = raw.split("#", 1)[0]
        if not body.strip():
            continue
        line = _Line(body, file, first_line + offset)
        out.append(Entry(_entry(line), line.line, body.strip()))
    return out


def _entry(ln: _Line) -> Conn:
    words = list(ln.words)
    if words and words[0][0] in ("ipv4", "ipv6"):  # /proc/net/nf_conntrack, -o extended
        if words[0][0] == "ipv6":
            raise ln.unsupported("IPv6 entries (kptui models IPv4)", words[0])
        if len(words) < 2 or words[1][0] != "2":
            raise ln.error("after ipv4 comes the family number 2", words[1] if len(words) > 1
                           else words[0])
        words = words[2:]
    if len(words) < 3:
        raise ln.error("expected PROTO NUMBER TIMEOUT then the tuples, as conntrack -L "
                       "prints an entry", words[0] if words else None)
    name = words[0][0]
    if name in OTHER_PROTOS or (name not in PROTOS and name.isascii() and name.isalpha()):
        raise ln.unsupported(f"conntrack entries of protocol {name} (kptui tracks tcp, udp "
                             "and icmp)", words[0])
    if name not in PROTOS:
        raise ln.error("expected a protocol name (tcp, udp, icmp)", words[0])
    proto = PROTOS[name]
    if ln.number(words[1], 255, "protocol number") != proto:
        raise ln.error(f"{name} is protocol {proto}", words[1])
    timeout = ln.number(words[2], 2**31 - 1, "timeout")
    rest = words[3:]
    state = None
    if proto == PROTO_TCP:
        if not rest or rest[0][0] not in STATE_NUMBER:
            raise ln.error(f"a tcp entry names its state ({', '.join(TCP_STATES)})",
                           rest[0] if rest else words[2])
        state = STATE_NUMBER[rest[0][0]]
        rest = rest[1:]
    groups: list[dict[str, tuple[str, int]]] = []
    flags: set[str] = set()
    extra: dict[str, tuple[str, int]] = {}
    counters: list[dict[str, tuple[str, int]]] = [{}, {}]
    for word in rest:
        text = word[0]
        if text.startswith("["):
            if text in UNSUPPORTED_FLAGS:
                raise ln.unsupported(UNSUPPORTED_FLAGS[text], word)
            if text not in ("[UNREPLIED]", "[ASSURED]"):
                raise ln.error("expected [UNREPLIED] or [ASSURED]", word)
            flags.add(text)
            continue
        key, eq, value = text.partition("=")
        if not eq:
            raise ln.error("expected KEY=VALUE (src=, dst=, sport=, ..., mark=)", word)
        if key == "src":
            if len(groups) == 2:
                raise ln.error("a third tuple: an entry has two (original, reply)", word)
            groups.append({})
        if key in ("src", "dst") or key in TUPLE_KEYS[proto]:
            if not groups:
                raise ln.error("the tuple starts with src=", word)
            if key in groups[-1]:
                raise ln.error(f"{key}= twice in one tuple", word)
            groups[-1][key] = word
        elif key in ("packets", "bytes") and groups:
            counters[len(groups) - 1][key] = word
        elif key in UNSUPPORTED_KEYS:
            raise ln.unsupported(UNSUPPORTED_KEYS[key], word)
        elif key == "zone":
            if ln.number(word, U16, "zone"):
                raise ln.unsupported("conntrack zones (kptui has zone 0 only)", word)
        elif key == "mark" or key in IGNORED:
            extra[key] = word
        else:
            raise ln.error(f"unknown field {key}= (expected src, dst, "
                           f"{', '.join(TUPLE_KEYS[proto])}, packets, bytes, mark, zone, "
                           "use)", word)
    if len(groups) != 2:
        raise ln.error("an entry has two tuples (original, then reply), each from src=",
                       ln.words[-1])
    original, reply = (_tuple(ln, proto, g) for g in groups)
    status = Status.CONFIRMED | Status.SRC_NAT_DONE | Status.DST_NAT_DONE
    if "[UNREPLIED]" not in flags:
        status |= Status.SEEN_REPLY
    if "[ASSURED]" in flags:
        status |= Status.ASSURED
    status |= nat_bits(original, reply)
    conn = Conn(original, reply, status=status, timeout=timeout,
                mark=ln.number(extra["mark"], U32, "mark") if "mark" in extra else 0)
    if state is not None:
        conn.tcp = TcpTrack(state=state)
    if proto == PROTO_UDP:
        conn.udp_stream_ts = -math.inf  # ctnetlink leaves stream_ts 0: long past
    for direction, seen in enumerate(counters):
        if seen:
            if set(seen) != {"packets", "bytes"}:
                raise ln.error("packets= and bytes= come together",
                               next(iter(seen.values())))
            conn.acct[2 * direction] = ln.number(seen["packets"], U64, "packets")
            conn.acct[2 * direction + 1] = ln.number(seen["bytes"], U64, "bytes")
    return conn


def _tuple(ln: _Line, proto: int, group: dict[str, tuple[str, int]]) -> CtTuple:
    missing = [k for k in ("src", "dst", *TUPLE_KEYS[proto]) if k not in group]
    if missing:
        raise ln.error(f"the tuple lacks {', '.join(k + '=' for k in missing)}",
                       next(iter(group.values())))
    addrs = []
    for key in ("src", "dst"):
        word = group[key]
        try:
            addrs.append(IPv4Address(word[0].partition("=")[2]))
        except ValueError:
            if ":" in word[0]:
                raise ln.unsupported("IPv6 entries (kptui models IPv4)", word) from None
            raise ln.error(f"{key}= is not an IPv4 address", word) from None
    if proto == PROTO_ICMP:
        return CtTuple(addrs[0], addrs[1], proto, ln.number(group["id"], U16, "id"), 0,
                       ln.number(group["type"], 255, "type"),
                       ln.number(group["code"], 255, "code"))
    return CtTuple(addrs[0], addrs[1], proto, ln.number(group["sport"], U16, "sport"),
                   ln.number(group["dport"], U16, "dport"))


def nat_bits(original: CtTuple, reply: CtTuple) -> Status:
    """SRC_NAT / DST_NAT as a reply tuple that is not the original's inverse shows them."""
    bits = Status.NONE
    if (reply.dst, reply.dport if original.proto != PROTO_ICMP else reply.sport) != \
            (original.src, original.sport):
        bits |= Status.SRC_NAT
    if (reply.src, reply.sport if original.proto != PROTO_ICMP else 0) != \
            (original.dst, original.dport if original.proto != PROTO_ICMP else 0):
        bits |= Status.DST_NAT
    return bits


def load_entries(table: ConntrackTable, entries: list[Entry], *, file: str) -> None:
    """Insert the entries into the box's table at its clock 0, refusing one whose tuple
    another entry already has (the kernel's `conntrack -I` answers File exists)."""
    seen: dict[CtTuple, int] = {}
    for entry in entries:
        conn = entry.conn
        if proto_inverse_missing(conn):
            raise ParseError("conntrack: an ICMP entry's original type must be a request "
                             "(echo, timestamp, info, address)", file=file, line=entry.line,
                             token=entry.text[:40])
        for tup in (conn.original, conn.reply):
            if tup in seen:
                raise ParseError(f"conntrack: File exists (the entry on line {seen[tup]} has "
                                 f"the tuple {tup.text()})", file=file, line=entry.line,
                                 token=tup.text())
        seen[conn.original] = seen[conn.reply] = entry.line
        table.insert(conn)  # expires ``timeout`` seconds after the table's clock now


def proto_inverse_missing(conn: Conn) -> bool:
    return conn.proto == PROTO_ICMP and conn.original.invert() is None


__all__ = ["Entry", "parse_entries", "load_entries", "nat_bits"]
