"""Scenario files (TOML, DESIGN.md's format): parsing, validation and box building.

Every key is checked, so a typo is an error naming the file and line rather
than a setting that silently does nothing. Line numbers are recovered from
the raw text, because tomllib does not keep them.
"""

from __future__ import annotations

import bisect
import functools
import os.path
import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Interface
from typing import TYPE_CHECKING, Any

from kptui.engine.box import Box, SysctlError
from kptui.engine.errors import KptuiError, ParseError, UnsupportedError
from kptui.engine.numbers import is_uint, scan_uint
from kptui.engine.routing import RouteError
from kptui.engine.setup import apply_setup, parse_addr
from kptui.engine.wallclock import FORMAT_HINT, ClockError, WallClock, parse_clock

if TYPE_CHECKING:
    from kptui.engine.packet import Packet

PROFILES = ("modern", "classic-2.4", "ipchains")
IMPLEMENTED_PROFILES = PROFILES
TOP_KEYS = {"name": str, "description": str, "profile": str, "setup": str, "iptables": str,
            "ipset": str,
            "sysctl": dict, "interfaces": list, "packets": list, "rt_tables": (dict, str),
            "sockets": list,
            "clock": str, "conntrack": str, "nftables": str, "iptables_file": str}
# `iptables_file = "rules.v4"`: the ruleset in a file of its own, as iptables-save wrote it
# (instead of an `iptables` string), named relative to the scenario's directory; its
# errors name that file and its line. The caller of load_scenario reads it (read_file).
# `conntrack = """..."""`: the box's conntrack entries at time 0, as `conntrack -L` prints
# them (kptui.engine.ct_entries); `nftables = """..."""`: native nftables tables as `nft
# list ruleset` prints them, kept verbatim and not simulated yet (a note says so).
# `clock = "2026-12-07T10:30:00+01:00"`: the wall-clock time at the scenario's time 0 (a
# packet's `time` adds to it), for -m time; its offset is the kernel's time zone (sys_tz,
# for --kerneltz); "now" is the time of the run. See kptui.engine.wallclock.
IFACE_KEYS = {"name": str, "addresses": list}
# [[sockets]]: the box's own sockets, for -m socket and -j TPROXY (kptui.engine.sockets).
# proto "tcp" (a listener) or "udp"; local "ADDR:PORT" (0.0.0.0: any address); remote
# "ADDR:PORT" (udp only: connect()ed); transparent (IP_TRANSPARENT); mark (SO_MARK).
SOCKET_KEYS = {"proto": str, "local": str, "remote": str, "transparent": bool, "mark": int}
# key: (type, min, max) for the integer ones
PACKET_KEYS: dict[str, tuple[type, int, int]] = {
    "iif": (str, 0, 0), "proto": (str, 0, 0), "src": (str, 0, 0), "dst": (str, 0, 0),
    "sport": (int, 0, 65535), "dport": (int, 0, 65535), "flags": (str, 0, 0),
    "ttl": (int, 0, 255), "tos": (int, 0, 255), "mark": (int, 0, 0xFFFFFFFF),
    "icmp_type": (int, 0, 255), "icmp_code": (int, 0, 255), "icmp_id": (int, 0, 65535),
    "length": (int, 20, 65535), "df": (bool, 0, 1),
    "seq": (int, 0, 0xFFFFFFFF), "ack": (int, 0, 0xFFFFFFFF),
    "time": (float, 0, 0), "inner": (dict, 0, 0), "reply_to": (int, 0, 0xFFFF),
    "repeat": (int, 1, 1000), "uid": (int, 0, 0xFFFFFFFE), "gid": (int, 0, 0xFFFFFFFE),
    "tcp_options": (str, 0, 0),
}
# `tcp_options = "mss 1460,nop,nop,sackOK"` (tcp only): the TCP header's options, in the
# text of the tcp.options field (kptui.engine.tcpopts); none by default.
# `repeat = N` sends the packet N times back to back, at the same `time` (a burst for tc's
# queues and token buckets); the copies are packets of their own, numbered in order.
# With `reply_to = N` the reply is built from packet N (answers.reply_to); these keys
# may override what it builds, the others are decided by the reply.
REPLY_OVERRIDES = ("iif", "ttl", "tos", "flags", "seq", "ack", "df", "time", "mark", "uid",
                   "gid")
# `uid`/`gid` (local packets only, default 0): the fsuid and fsgid of the sending socket's
# file, what -m owner matches (kptui verify opens that packet's raw socket with them).
LOCAL_ONLY = ("mark", "uid", "gid")
# A local packet's `src` says which socket sends it (Box.bound_source): an address of the
# box is a socket bound to it (its output route lookup is from it: `ip rule from` applies),
# "0.0.0.0" an unbound one (the route picks the source), any other a raw socket's header.
# The quoted packet of an ICMP error: `inner = { proto = "udp", src = ..., ... }`.
INNER_KEYS = ("proto", "src", "dst", "sport", "dport", "flags", "ttl", "seq", "ack",
              "icmp_type", "icmp_code", "icmp_id", "tcp_options")
ICMP_ERROR_TYPES = (3, 4, 5, 11, 12)
PROTOS = ("tcp", "udp", "icmp")


@dataclass(slots=True)
class PacketSpec:
    """One [[packets]] entry, validated; `build()` makes a fresh Packet each time."""

    origin: str  # "local" or an interface name
    proto: str
    src: IPv4Address
    dst: IPv4Address
    sport: int | None = None
    dport: int | None = None
    flags: str = "S"
    ttl: int = 64
    tos: int = 0
    mark: int = 0
    uid: int = 0  # local packets: the sending socket's owner (-m owner)
    gid: int = 0
    icmp_type: int | None = None
    icmp_code: int = 0
    icmp_id: int = 0
    length: int | None = None
    df: bool | None = None  # None: Packet.build's default (DF on, as Linux sockets send)
    line: int = 0
    seq: int | None = None  # tcp only
    ack: int | None = None
    tcp_options: str = ""  # tcp only: the options' text (tcp.options)
    time: float = 0.0  # seconds on the box's clock when the packet arrives (non-decreasing)
    inner: PacketSpec | None = None  # the packet an ICMP error quotes
    reply_to: int | None = None  # build the reply to packet N (see build_after)
    overrides: tuple[str, ...] = ()  # the keys written beside reply_to
    file: str = ""

    def build(self) -> Packet:
        from kptui.engine.packet import Packet

        if self.reply_to is not None:
            raise UnsupportedError(
                f"{self.file}:{self.line}: a packet with reply_to = {self.reply_to} is built "
                f"from packet {self.reply_to}'s walk (kptui trace and verify do that); "
                "building it alone")
        pkt = Packet.build(
            proto=self.proto, src=self.src, dst=self.dst, sport=self.sport, dport=self.dport,
            flags=self.flags, ttl=self.ttl, tos=self.tos, icmp_type=self.icmp_type,
            icmp_code=self.icmp_code, icmp_id=self.icmp_id, length=self.length,
            mark=self.mark, iif="" if self.origin == "local" else self.origin,
            tcp_options=self.tcp_options)
        if self.df is not None:
            pkt.set("ip.df", self.df)
        for key in ("seq", "ack"):
            value = getattr(self, key)
            if value is not None:
                pkt.set(f"tcp.{key}", value)
        if self.inner is not None:
            pkt.l4.inner = self.inner.build()  # type: ignore[union-attr]
        pkt.meta.tstamp = self.time
        pkt.meta.uid, pkt.meta.gid = self.uid, self.gid
        return pkt

    def build_after(self, walked: list[tuple[Packet, Any]]) -> Packet:
        """The packet, given the earlier packets as they were at their fates.

        ``walked[i]`` is (packet i after its walk, its Fate). Without reply_to this
        is ``build()``. With ``reply_to = N``: answers.reply_to of packet N as it
        was at its fate (after NAT: the tuple the server saw, swapped; a SYN gets a
        SYN-ACK), arriving on the interface packet N left through, or generated
        locally when packet N was delivered here; then the overrides written beside
        reply_to. Packet N dropped or rejected: no server saw it, KptuiError.
        """
        if self.reply_to is None:
            return self.build()
        from kptui.engine.answers import NoReplyError, reply_to

        where = f"{self.file}:{self.line}: reply_to = {self.reply_to}"
        if self.reply_to >= len(walked):
            raise KptuiError(f"{where}: packet {self.reply_to} has not been walked yet")
        original, fate = walked[self.reply_to]
        if fate is not None and fate.action not in ("transmit", "deliver"):
            raise KptuiError(f"{where}: packet {self.reply_to} was not delivered nor "
                             f"transmitted ({fate.action}"
                             + (f" by {fate.by}" if fate.by else "") + "): nobody saw it "
                             "to reply")
        iface = None
        if "iif" in self.overrides:
            iface = self.origin
        elif fate is not None and fate.action == "deliver":
            iface = "local"
        try:
            pkt = reply_to(original, iface=iface,
                           ttl=self.ttl if "ttl" in self.overrides else 64)
        except NoReplyError as err:
            raise KptuiError(f"{where}: {err}") from None
        if "tos" in self.overrides:
            pkt.set("ip.tos", self.tos)
        if "df" in self.overrides:
            pkt.set("ip.df", bool(self.df))
        if "flags" in self.overrides:
            from kptui.engine.packet import parse_tcp_flags

            pkt.set("tcp.flags", parse_tcp_flags(self.flags))
        for key in ("seq", "ack"):
            if key in self.overrides:
                pkt.set(f"tcp.{key}", getattr(self, key))
        if "mark" in self.overrides:
            pkt.set("meta.mark", self.mark)
        if not pkt.meta.iif:  # a local reply: its socket's owner
            pkt.meta.uid, pkt.meta.gid = self.uid, self.gid
        pkt.meta.tstamp = self.time
        return pkt


@dataclass(slots=True)
class IfaceSpec:
    name: str
    addresses: list[IPv4Interface]
    line: int = 0


@dataclass(slots=True)
class Scenario:
    """A loaded scenario file. `build_box()` makes a fresh box every time."""

    file: str
    text: str
    name: str = ""
    description: str = ""
    profile: str = "modern"
    setup: str = ""
    setup_line: int = 1
    iptables: str = ""
    iptables_line: int = 1
    iptables_file: str = ""  # `iptables_file` as written ("": the ruleset is inline)
    iptables_path: str = ""  # the file the ruleset was read from, which its errors name
    ipset: str = ""  # `ipset save` text (ipset restore's input), loaded before the setup lines
    ipset_line: int = 1
    conntrack: str = ""  # `conntrack -L` lines: entries the box has at time 0
    conntrack_line: int = 1
    nftables: str = ""  # native nftables tables (`nft list ruleset` text), not simulated
    nftables_line: int = 1
    notes: list[str] = field(default_factory=list)  # what loading found kptui cannot model
    sysctl: dict[str, Any] = field(default_factory=dict)
    sysctl_lines: dict[str, int] = field(default_factory=dict)
    interfaces: list[IfaceSpec] = field(default_factory=list)
    sockets: list[Any] = field(default_factory=list)  # kptui.engine.sockets.Socket
    packets: list[PacketSpec] = field(default_factory=list)
    rt_tables: dict[str, int] = field(default_factory=dict)  # route table names
    rt_tables_line: int = 0
    clock: str = ""  # the `clock` text as written ("now" until kptui.realclock resolves it)
    wall_clock: WallClock | None = None  # its value (None: no clock, or "now")
    # Where `packets` come from when not from the text ("--pcap FILE": kptui.pcaprun put a
    # capture's in their place); a session, which keeps only the text, cannot hold them.
    packets_from: str = ""
    # How the files a scenario names were read (load_scenario's read_file), for a caller
    # that loads an edited copy of the text again (a profile switch, --send, a clock).
    read_file: Callable[[str], str] | None = field(default=None, repr=False, compare=False)

    def build_box(self) -> Box:
        """Interfaces and addresses, sysctls, the ipset text, setup lines, then the
        iptables text."""
        return self._build()[0]

    def kernel_setup(self) -> str:
        """The setup lines as a real box runs them (see setup.apply_setup), line for line."""
        return self._build()[1]

    def _build(self) -> tuple[Box, str]:
        if self.profile not in IMPLEMENTED_PROFILES:
            raise UnsupportedError(f"profile {self.profile}")
        box = Box()
        box.wall_clock = self.wall_clock or self.clock or None  # "now": unresolved
        for name, number in self.rt_tables.items():
            try:
                box.routes.name_table(name, number)
            except RouteError as exc:
                raise ParseError(str(exc), file=self.file, line=self.rt_tables_line,
                                 token=name) from None
        for spec in self.interfaces:
            try:
                box.add_link(spec.name)
                box.set_link(spec.name, up=True)
                for addr in spec.addresses:
                    box.add_address(spec.name, addr)
            except RouteError as exc:
                raise ParseError(str(exc), file=self.file, line=spec.line) from None
        for name, value in self.sysctl.items():
            line = self.sysctl_lines.get(name, 0)
            try:
                box.set_sysctl(name, value)
            except SysctlError as exc:
                raise ParseError(str(exc), file=self.file, line=line, token=name) from None
            except UnsupportedError as exc:
                raise ParseError(str(exc), file=self.file, line=line, token=name) from None
        if self.ipset:
            from kptui.engine.setup import apply_ipset_restore

            apply_ipset_restore(box, self.ipset, file=self.file, first_line=self.ipset_line)
        from kptui.engine.profile_check import check_ruleset, split_setup

        setup, chains, imq_devs = split_setup(self.setup, self.profile, file=self.file,
                                              first_line=self.setup_line)
        for n in range(imq_devs):  # the imq module's devices: down until `ip link set up`
            box.add_imq(f"imq{n}")
        kernel = setup
        if setup.strip():
            kernel = apply_setup(box, setup, file=self.file, first_line=self.setup_line)
        if self.profile == "ipchains":
            from kptui.engine.ipchains import IpchainsRuleset, apply_ipchains

            box.ipchains = IpchainsRuleset()
            for line, command in chains:
                apply_ipchains(box.ipchains, command, file=self.file, line=line)
        for sock in self.sockets:  # bind(2): a non-local address needs IP_TRANSPARENT
            if sock.laddr and not sock.transparent and \
                    box.addrtype(IPv4Address(sock.laddr), None) != "LOCAL":
                raise ParseError(f"sockets.local {sock.text()}: Cannot assign requested "
                                 "address (not an address of the box; transparent = true "
                                 "binds it)", file=self.file, line=sock.line)
        box.sockets = list(self.sockets)
        if self.iptables:
            from kptui.engine.iptables import restore

            restore(box.ruleset, self.iptables, file=self.iptables_path or self.file,
                    first_line=self.iptables_line)
        check_ruleset(box.ruleset, self.profile, file=self.file, text=self.text)
        if self.conntrack.strip():
            from kptui.engine.ct_entries import load_entries, parse_entries

            load_entries(box.conntrack, parse_entries(self.conntrack, file=self.file,
                                                      first_line=self.conntrack_line),
                         file=self.file)
        return box, kernel


_RESTORED_TABLE = re.compile(r"^\s*\*(\S+)", re.MULTILINE)
# iptables(8) commands that change a table (short and long forms)
_CHANGES = frozenset({"-A", "--append", "-I", "--insert", "-R", "--replace", "-D", "--delete",
                      "-N", "--new-chain", "-P", "--policy", "-F", "--flush", "-X",
                      "--delete-chain", "-E", "--rename-chain", "-Z", "--zero"})


def wiped_setup_lines(setup: str, first_line: int, iptables: str) -> list[str]:
    """Warnings for setup ``iptables`` lines whose table the ``iptables`` text restores
    afterwards: a restore without --noflush replaces every table it names (iptables-restore
    (8)), so what those lines did is gone before the first packet, on a real box too."""
    restored: set[str] | None = None  # read from the text only when a setup line needs it
    out = []
    for n, raw in enumerate(setup.splitlines()):
        words = raw.split("#", 1)[0].split()
        if not words or words[0] not in ("iptables", "iptables-nft", "iptables-legacy"):
            continue
        if restored is None:
            restored = set(_RESTORED_TABLE.findall(iptables))
        table = "filter"
        for i, word in enumerate(words):
            if word in ("-t", "--table") and i + 1 < len(words):
                table = words[i + 1]
            elif word.startswith("--table="):
                table = word.split("=", 1)[1]
        if table in restored and _CHANGES.intersection(words):
            out.append(f"setup line {first_line + n} ({' '.join(words)}) is wiped: the "
                       f"iptables text restores the {table} table after the setup lines, "
                       "and a restore without --noflush replaces the whole table")
    return out


_HEADER = re.compile(r"^\s*\[\[?\s*([^\[\]]*?)\s*\]\]?\s*(#.*)?$")
_TOP_KEY = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")  # a bare key, as top_key has looked them up
_STRING_DELIMS = ("'''", '"""')


def _open_string(line: str) -> str:
    """The delimiter of a multi-line string this line opens and leaves open, else ""."""
    pos = 0
    while True:
        hits = [(k, d) for d in _STRING_DELIMS if (k := line.find(d, pos)) >= 0]
        if not hits:
            return ""
        at, delim = min(hits)
        close = line.find(delim, at + 3)
        if close < 0:
            return delim
        pos = close + 3


class _Lines:
    """Finds where keys and headers are in the raw TOML text (1-based line numbers).

    tomllib keeps no line numbers, so they are recovered from the text. One pass
    indexes every table header, where each block ends and the top-level keys, and
    skips the bodies of multi-line strings (a 20,000-rule ``iptables = '''...'''``
    is read once, and a ``[0:0] -A ...`` line in it is no header); a lookup then reads
    only its own block, so loading stays linear in the number of [[packets]] blocks.
    """

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.headers: dict[str, list[int]] = {}
        self.block_end: dict[int, int] = {}  # header line -> the last line of its block
        self.code: list[int] = []  # 0-based indices of the lines outside multi-line strings
        self.top: dict[str, int] = {}  # bare top-level key -> its first line
        self.first_header = len(self.lines) + 1
        previous = 0
        lines, code = self.lines, self.code
        i, n = 0, len(lines)
        while i < n:
            line = lines[i]
            code.append(i)
            i += 1
            if line.lstrip().startswith("["):
                if previous:
                    self.block_end[previous] = i - 1
                else:
                    self.first_header = i
                previous = i
                m = _HEADER.match(line)
                if m:
                    self.headers.setdefault(m.group(1), []).append(i)
            elif not previous and (m := _TOP_KEY.match(line)):
                self.top.setdefault(m.group(1), i)
            delim = _open_string(line)
            if delim:  # its body, up to the line that closes it, is no key or header
                while i < n and delim not in lines[i]:
                    i += 1
                i += 1
        if previous:
            self.block_end[previous] = len(self.lines)

    def header(self, name: str, nth: int = 0) -> int:
        hits = self.headers.get(name, ())
        return hits[nth] if nth < len(hits) else 0

    def key(self, key: str, after: int = 0) -> int:
        """The first line of the block that starts at ``after`` (a header line; 0: the
        top of the file) whose key is `key` (bare or quoted)."""
        pat = _key_pattern(key)
        lines = self.lines
        if not after:
            return next((i + 1 for i in self.code if pat.match(lines[i])), 0)
        end = self.block_end.get(after, len(lines))
        code = self.code
        for k in range(bisect.bisect_left(code, after - 1), len(code)):
            i = code[k]
            if i >= end:
                break
            if pat.match(lines[i]):
                return i + 1
        return 0

    def top_key(self, key: str) -> int:
        return self.top.get(key, 0)

    def string_start(self, key: str) -> int:
        """The line where the value of top-level `key` begins (after a multi-line opener)."""
        line = self.top_key(key)
        if not line:
            return 1
        rest = self.lines[line - 1].split("=", 1)[1].strip()
        if rest.startswith(('"""', "'''")) and rest[3:].strip() == "":
            return line + 1
        return line


@functools.lru_cache(maxsize=256)
def _key_pattern(key: str) -> re.Pattern[str]:
    k = re.escape(key)
    return re.compile(rf"^\s*({k}|\"{k}\"|'{k}')\s*=")


# Arrays and inline tables nested deeper than this are refused before tomllib recurses
# into them (a scenario needs two levels: packets.inner is the deepest).
MAX_NESTING = 32
# Python refuses to convert integer strings longer than this (sys.get_int_max_str_digits).
MAX_INT_DIGITS = 4300
# What the nesting scan skips (strings, comments) and what it counts (brackets, braces).
_NESTING_TOKENS = re.compile(r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\''
                             r"|#[^\n]*|[\[\]{}]")
_NESTING_START = re.compile(r'"""|\'\'\'|["\'#\[\]{}]')  # where a token may begin
_TOML_WHERE = re.compile(r"\s*\(at line ([0-9]+), column ([0-9]+)\)")


def _read_toml(text: str, file: str) -> dict[str, Any]:
    """tomllib.loads, with every failure a ParseError naming the line: its own decode
    errors, integers too long for Python (a bare ValueError from tomllib) and nesting
    deep enough to exhaust the stack (RecursionError), which are checked first."""
    _check_nesting(text, file)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_WHERE.search(str(exc))
        msg = _TOML_WHERE.sub("", str(exc))
        line, col = (scan_uint(m.group(1)) or 0, scan_uint(m.group(2)) or 0) if m else (0, 0)
        raise ParseError(f"TOML: {msg}", file=file, line=line, column=col) from None
    except ValueError:  # int(): "Exceeds the limit (4300 digits) for integer string conversion"
        long = re.search(r"[0-9_]{%d,}" % (MAX_INT_DIGITS + 1), text)
        line = text.count("\n", 0, long.start()) + 1 if long else 0
        raise ParseError(f"TOML: an integer of more than {MAX_INT_DIGITS} digits",
                         file=file, line=line) from None


def _nesting_tokens(text: str) -> Iterator[re.Match[str]]:
    """_NESTING_TOKENS.finditer(text), with a multi-line string skipped by str.find: the
    regular expression's lazy scan to its end is slow on a 20,000-rule `iptables` string."""
    pos = 0
    search, match, find = _NESTING_START.search, _NESTING_TOKENS.match, text.find
    while (start := search(text, pos)) is not None:
        at = start.start()
        quotes = start.group()
        if len(quotes) == 3 and (end := find(quotes, at + 3)) >= 0:
            pos = end + 3  # what the first two alternatives match: no bracket in it
            continue
        m = match(text, at)
        if m is None:  # an unterminated quote: finditer tries the next character
            pos = at + 1
            continue
        yield m
        pos = m.end() if m.end() > at else at + 1


def _check_nesting(text: str, file: str) -> None:
    if text.count("[") + text.count("{") <= MAX_NESTING:
        return
    depth = 0
    for m in _nesting_tokens(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > MAX_NESTING:
                line = text.count("\n", 0, m.start()) + 1
                column = m.start() - text.rfind("\n", 0, m.start())
                raise ParseError(f"TOML: arrays or tables nested more than {MAX_NESTING} "
                                 "deep", file=file, line=line, column=column, token=c)
        elif c in "]}":
            depth = max(depth - 1, 0)


def load_scenario(text: str, *, file: str,
                  read_file: Callable[[str], str] | None = None) -> Scenario:
    """Parse and validate a scenario; every problem is a ParseError naming file and line.

    ``read_file(path)`` reads a file the scenario names (``iptables_file``), as text; the
    engine reads no file itself (DESIGN.md), so without it such a scenario is refused.
    """
    data = _read_toml(text, file)
    where = _Lines(text)

    def err(message: str, line: int = 0, token: str = "") -> ParseError:
        return ParseError(message, file=file, line=line, token=token)

    for key, value in data.items():
        if key not in TOP_KEYS:
            line = where.top_key(key) or where.header(key)
            raise err(f"unknown key {key!r} (known: {', '.join(TOP_KEYS)})", line, key)
        if key == "clock" and not isinstance(value, str):  # TOML's own date-times too
            raise err(f"clock must be a string: {FORMAT_HINT}, in quotes",
                      where.top_key(key) or where.header(key), key)
        if not isinstance(value, TOP_KEYS[key]):
            want = TOP_KEYS[key]
            what = " or ".join(_tname(t) for t in want) if isinstance(want, tuple) \
                else _tname(want)
            raise err(f"{key} must be a {what}", where.top_key(key)
                      or where.header(key), key)
    if "interfaces" in data and not all(isinstance(t, dict) for t in data["interfaces"]):
        raise err("interfaces must be [[interfaces]] tables", where.top_key("interfaces"))
    if "sockets" in data and not all(isinstance(t, dict) for t in data["sockets"]):
        raise err("sockets must be [[sockets]] tables", where.top_key("sockets"))
    if "packets" in data and not all(isinstance(t, dict) for t in data["packets"]):
        raise err("packets must be [[packets]] tables", where.top_key("packets"))
    profile = data.get("profile", "modern")
    if profile not in PROFILES:
        raise err(f"profile must be one of {', '.join(PROFILES)}", where.top_key("profile"),
                  profile)
    sc = Scenario(file=file, text=text, name=data.get("name", ""),
                  description=data.get("description", ""), profile=profile,
                  setup=data.get("setup", ""), setup_line=where.string_start("setup"),
                  iptables=data.get("iptables", ""),
                  iptables_line=where.string_start("iptables"),
                  ipset=data.get("ipset", ""), ipset_line=where.string_start("ipset"),
                  conntrack=data.get("conntrack", ""),
                  conntrack_line=where.string_start("conntrack"),
                  nftables=data.get("nftables", ""),
                  nftables_line=where.string_start("nftables"), read_file=read_file)
    if "iptables_file" in data:
        sc.iptables_file = data["iptables_file"]
        sc.iptables_path, sc.iptables = _read_named(
            "iptables_file", sc.iptables_file, file, read_file, where.top_key("iptables_file"),
            err, instead="iptables" if "iptables" in data else "")
    sc.notes += wiped_setup_lines(sc.setup, sc.setup_line, sc.iptables)
    if sc.nftables.strip():
        from kptui.engine.nftables_text import notes, split_tables

        sc.notes += notes(split_tables(sc.nftables, file=file, first_line=sc.nftables_line))
    sc.rt_tables_line = where.top_key("rt_tables") or where.header("rt_tables")
    if "clock" in data:
        sc.clock = data["clock"]
        try:
            sc.wall_clock = parse_clock(sc.clock)
        except ClockError as exc:
            raise err(str(exc), where.top_key("clock"), sc.clock) from None
    sc.rt_tables = _rt_tables(data.get("rt_tables", {}), sc.rt_tables_line, err)
    sysctl_at = where.header("sysctl")
    for name, value in data.get("sysctl", {}).items():
        line = where.key(name, sysctl_at) if sysctl_at else where.top_key("sysctl")
        if isinstance(value, bool) or not isinstance(value, int):
            raise err(f"sysctl {name} must be an integer", line, name)
        sc.sysctl[name] = value
        sc.sysctl_lines[name] = line
    names: set[str] = set()
    for n, entry in enumerate(data.get("interfaces", [])):
        at = where.header("interfaces", n)
        sc.interfaces.append(_interface(entry, at, where, names, err))
    for n, entry in enumerate(data.get("sockets", [])):
        sc.sockets.append(_socket(entry, where.header("sockets", n), where, sc.sockets, err))
    clock = 0.0
    for n, entry in enumerate(data.get("packets", [])):
        at = where.header("packets", n)
        spec = _reply_packet(entry, n, at, where, names, err) if "reply_to" in entry \
            else _packet(entry, at, where, names, err)
        spec.file = file
        if "time" in entry:
            if spec.time < clock:
                raise err(f"packets.time {spec.time:g} is before the previous packet's time "
                          f"{clock:g}: times must not decrease", where.key("time", at) or at,
                          "time")
        else:
            spec.time = clock  # the previous packet's time
        clock = spec.time
        sc.packets.append(spec)
        for _copy in range(entry.get("repeat", 1) - 1):
            sc.packets.append(replace(spec))
    return sc


def _read_named(key: str, name: str, file: str, read_file: Callable[[str], str] | None,
                line: int, err: Callable[..., ParseError], *, instead: str) -> tuple[str, str]:
    """(path, text) of the file that ``key = name`` names, relative to the scenario's
    directory (an absolute name as it is). ``instead``: the inline key also given."""
    if instead:
        raise err(f"{instead} and {key} both give the ruleset: keep one", line, key)
    if not name:
        raise err(f"{key} must name a file", line, key)
    path = os.path.join(os.path.dirname(file), name)
    if read_file is None:
        raise err(f"{key} {name!r} cannot be read here: the scenario was given as text, "
                  "not as a file", line, name)
    try:
        return path, read_file(path)
    except FileNotFoundError:
        problem = "no such file"
    except IsADirectoryError:
        problem = "is a directory"
    except UnicodeDecodeError:
        problem = "not a text file"
    except OSError as exc:
        problem = exc.strerror or str(exc)
    raise err(f"{key} {name!r}: {path}: {problem}", line, name)


def _rt_tables(value: dict | str, line: int, err) -> dict[str, int]:  # noqa: ANN001
    """Route table names: `rt_tables = {isp2 = 100}`, or /etc/iproute2/rt_tables lines
    (`100 isp2`, `#` comments) in a string. main/local/default are always known."""
    if isinstance(value, str):
        pairs: dict[str, object] = {}
        for n, raw in enumerate(value.splitlines()):
            words = raw.split("#", 1)[0].split()
            if not words:
                continue
            if len(words) != 2:
                raise err("rt_tables lines are `NUMBER NAME`", line + n, raw.strip())
            # iproute2's rtnl_tab_initialize: sscanf "0x%x" or "%d" (010 is ten)
            hexa = words[0].startswith("0x")
            number = scan_uint(words[0][2:] if hexa else words[0], 16 if hexa else 10)
            pairs[words[1]] = words[0] if number is None else number
        value = pairs
    out: dict[str, int] = {}
    for name, number in value.items():
        if isinstance(number, bool) or not isinstance(number, int) or \
                not 1 <= number <= 0xFFFFFFFF:
            raise err(f"rt_tables: table {name!r} needs a number in 1..4294967295", line, name)
        if not name or not all(c.isalnum() or c in "_-." for c in name) or is_uint(name):
            raise err(f"rt_tables: {name!r} is not a table name", line, name)
        if name in ("local", "main", "default", "unspec") and \
                {"local": 255, "main": 254, "default": 253, "unspec": 0}[name] != number:
            raise err(f"rt_tables: {name!r} is table "
                      f"{ {'local': 255, 'main': 254, 'default': 253, 'unspec': 0}[name] }",
                      line, name)
        out[name] = number
    return out


def _tname(t: type) -> str:
    return {str: "string", dict: "table", list: "list", int: "integer", bool: "boolean"}[t]


def _interface(entry: dict, at: int, where: _Lines, names: set[str], err) -> IfaceSpec:  # noqa: ANN001
    from kptui.engine.box import valid_ifname

    for key, value in entry.items():
        if key not in IFACE_KEYS:
            raise err(f"unknown key {key!r} in [[interfaces]] (known: name, addresses)",
                      where.key(key, at) or at, key)
        if not isinstance(value, IFACE_KEYS[key]):
            raise err(f"interfaces.{key} must be a {_tname(IFACE_KEYS[key])}",
                      where.key(key, at) or at, key)
    if "name" not in entry:
        raise err("[[interfaces]] needs a name", at)
    name = entry["name"]
    if not valid_ifname(name) or name == "local":
        raise err(f"{name!r} is not a valid interface name", where.key("name", at) or at, name)
    if name in names or name == "lo":
        raise err(f"interface {name!r} is declared twice", where.key("name", at) or at, name)
    names.add(name)
    addrs: list[IPv4Interface] = []
    for text in entry.get("addresses", []):
        addr = parse_addr(text) if isinstance(text, str) else None
        if addr is None:
            raise err(f"bad address {text!r}: expected A.B.C.D/LEN",
                      where.key("addresses", at) or at, str(text))
        addrs.append(addr)
    return IfaceSpec(name=name, addresses=addrs, line=at)


def _socket(entry: dict, at: int, where: _Lines, others: list, err) -> Any:  # noqa: ANN001
    from kptui.engine.sockets import Socket, conflict

    for key, value in entry.items():
        if key not in SOCKET_KEYS:
            raise err(f"unknown key {key!r} in [[sockets]] (known: {', '.join(SOCKET_KEYS)})",
                      where.key(key, at) or at, key)
        typ = SOCKET_KEYS[key]
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            raise err(f"sockets.{key} must be a {_tname(typ)}", where.key(key, at) or at, key)
    proto = entry.get("proto", "")
    if proto not in ("tcp", "udp"):
        raise err("sockets.proto must be tcp or udp", where.key("proto", at) or at, str(proto))
    if "local" not in entry:
        raise err("[[sockets]] needs local = \"ADDR:PORT\"", at)

    def endpoint(key: str, port_zero: bool) -> tuple[int, int]:
        text = entry[key]
        addr, _, port = text.rpartition(":")
        ip = parse_addr(addr + "/32") if addr else None
        number = scan_uint(port, 10)
        if ip is None or number is None or number > 65535 or (number == 0 and not port_zero):
            raise err(f"sockets.{key} {text!r}: expected ADDR:PORT (a port 1..65535)",
                      where.key(key, at) or at, text)
        return int(ip.ip), number

    laddr, lport = endpoint("local", False)
    raddr = rport = 0
    if "remote" in entry:
        if proto != "udp":
            raise err("sockets.remote: only a udp socket is connected here (the box's TCP "
                      "connections are not modelled)", where.key("remote", at) or at, "remote")
        raddr, rport = endpoint("remote", False)
    mark = entry.get("mark", 0)
    if not 0 <= mark <= 0xFFFFFFFF:
        raise err("sockets.mark must be in 0..4294967295", where.key("mark", at) or at, "mark")
    sock = Socket(6 if proto == "tcp" else 17, laddr, lport, raddr, rport,
                  entry.get("transparent", False), mark, at)
    for other in others:
        if conflict(other, sock):
            raise err(f"sockets.local {entry['local']}: Address already in use (bind(2): the "
                      f"socket on line {other.line} has it)", where.key("local", at) or at,
                      entry["local"])
    return sock


def _packet(entry: dict, at: int, where: _Lines, names: set[str], err) -> PacketSpec:  # noqa: ANN001
    for key, value in entry.items():
        if key not in PACKET_KEYS:
            raise err(f"unknown key {key!r} in [[packets]] (known: {', '.join(PACKET_KEYS)})",
                      where.key(key, at) or at, key)
        typ, lo, hi = PACKET_KEYS[key]
        if typ is float:  # time: seconds, integer or not
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 \
                    or value != value or value == float("inf"):
                raise err(f"packets.{key} must be a number of seconds >= 0",
                          where.key(key, at) or at, key)
            continue
        if isinstance(value, bool) != (typ is bool) or not isinstance(value, typ):
            raise err(f"packets.{key} must be a {_tname(typ)}", where.key(key, at) or at, key)
        if typ is int and not lo <= value <= hi:
            raise err(f"packets.{key} must be in {lo}..{hi}", where.key(key, at) or at, str(value))

    def line_of(key: str) -> int:
        return where.key(key, at) or at

    for key in ("iif", "proto", "src", "dst"):
        if key not in entry:
            raise err(f"[[packets]] needs {key}", at)
    iif, proto = entry["iif"], entry["proto"]
    if iif != "local" and iif not in names:
        raise err(f"iif {iif!r} is not a declared interface (or \"local\")", line_of("iif"), iif)
    if proto not in PROTOS:
        raise err(f"proto must be one of {', '.join(PROTOS)}", line_of("proto"), proto)
    addrs = {}
    for key in ("src", "dst"):
        try:
            addrs[key] = IPv4Address(entry[key])
        except ValueError:
            raise err(f"packets.{key} is not an IPv4 address", line_of(key), entry[key]) from None
    if proto in ("tcp", "udp"):
        for key in ("sport", "dport"):
            if key not in entry:
                raise err(f"a {proto} packet needs {key}", at)
        for key in ("icmp_type", "icmp_code", "icmp_id"):
            if key in entry:
                raise err(f"{key} is only for icmp packets", line_of(key), key)
    else:
        for key in ("sport", "dport"):
            if key in entry:
                raise err(f"{key} is only for tcp and udp packets", line_of(key), key)
    for key in ("flags", "seq", "ack", "tcp_options"):
        if key in entry and proto != "tcp":
            raise err(f"{key} is only for tcp packets", line_of(key), key)
    inner = None
    if "inner" in entry:
        if proto != "icmp" or entry.get("icmp_type", 8) not in ICMP_ERROR_TYPES:
            raise err("inner is only for ICMP errors (icmp_type 3, 4, 5, 11 or 12)",
                      line_of("inner"), "inner")
        inner = _inner(entry["inner"], line_of("inner"), err)
    for key in LOCAL_ONLY:
        if key in entry and iif != "local":
            raise err(f"{key} is only for local packets (iif = \"local\"): "
                      + ("a received packet arrives with mark 0" if key == "mark" else
                         "a received or forwarded packet has no socket, so no owner"),
                      line_of(key), key)
    if "tcp_options" in entry:
        from kptui.engine.tcpopts import parse_options

        try:
            parse_options(entry["tcp_options"], "packets.tcp_options")
        except KptuiError as exc:
            raise err(str(exc), line_of("tcp_options"), entry["tcp_options"]) from None
    flags = entry.get("flags", "S")
    if proto == "tcp":
        from kptui.engine.packet import parse_tcp_flags

        try:
            parse_tcp_flags(flags)
        except (KptuiError, ValueError) as exc:
            raise err(f"bad tcp flags: {exc}", line_of("flags"), flags) from None
    return PacketSpec(
        origin=iif, proto=proto, src=addrs["src"], dst=addrs["dst"],
        sport=entry.get("sport"), dport=entry.get("dport"), flags=flags,
        ttl=entry.get("ttl", 64), tos=entry.get("tos", 0), mark=entry.get("mark", 0),
        uid=entry.get("uid", 0), gid=entry.get("gid", 0),
        icmp_type=entry.get("icmp_type"), icmp_code=entry.get("icmp_code", 0),
        icmp_id=entry.get("icmp_id", 0), length=entry.get("length"), df=entry.get("df"),
        line=at, seq=entry.get("seq"), ack=entry.get("ack"),
        time=float(entry.get("time", 0.0)), inner=inner,
        tcp_options=entry.get("tcp_options", ""))


def _reply_packet(entry: dict, n: int, at: int, where: _Lines, names: set[str],
                  err) -> PacketSpec:  # noqa: ANN001
    """A [[packets]] entry with reply_to = N: only REPLY_OVERRIDES beside it."""
    def line_of(key: str) -> int:
        return where.key(key, at) or at

    value = entry["reply_to"]
    if isinstance(value, bool) or not isinstance(value, int):
        raise err("packets.reply_to must be an integer (the index of an earlier packet)",
                  line_of("reply_to"), "reply_to")
    if not 0 <= value < n:
        raise err(f"reply_to = {value} must name an earlier packet (0..{n - 1})"
                  if n else "the first packet cannot be a reply_to",
                  line_of("reply_to"), str(value))
    for key in entry:
        if key != "reply_to" and key not in REPLY_OVERRIDES:
            raise err(f"{key} is decided by reply_to (the reply swaps packet {value}'s "
                      f"addresses and ports); beside reply_to only "
                      f"{', '.join(REPLY_OVERRIDES)} may be given", line_of(key), key)
    # Check the overrides with the ordinary rules, on a stand-in TCP packet.
    probe = {"iif": "local", "proto": "tcp", "src": "0.0.0.0", "dst": "0.0.0.0",
             "sport": 0, "dport": 0}
    probe.update({k: v for k, v in entry.items() if k != "reply_to"})
    for key in LOCAL_ONLY:
        if key in entry and entry.get("iif") != "local":
            raise err(f"{key} is only for local packets: give iif = \"local\" beside it",
                      line_of(key), key)
    spec = _packet(probe, at, where, names, err)
    spec.reply_to = value
    spec.overrides = tuple(k for k in entry if k != "reply_to")
    if "iif" not in entry:
        spec.origin = ""  # decided by packet N's fate
    return spec


def _inner(table: dict, line: int, err) -> PacketSpec:  # noqa: ANN001
    """The quoted packet of an ICMP error, checked with the [[packets]] rules."""
    for key in table:
        if key not in INNER_KEYS:
            raise err(f"unknown key {key!r} in packets.inner (known: {', '.join(INNER_KEYS)})",
                      line, key)
    fake = _Lines("[[packets]]\n")
    spec = _packet({"iif": "local", **table}, 1, fake, set(), lambda msg, *_a, **_k: err(
        f"packets.inner: {msg}", line, ""))
    spec.origin = "local"
    return spec


__all__ = ["Scenario", "PacketSpec", "load_scenario"]
