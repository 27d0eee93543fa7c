"""`--send 'WORDS'`: a packet given on the command line, in tcpdump's and `ip route get`'s words.

    tcp 198.51.100.7:40000 > 192.0.2.1:22 iif eth1 flags S
    udp 192.0.2.1:5000 > 8.8.8.8:53 local          (a socket bound to 192.0.2.1)
    udp to 8.8.8.8 dport 53 local                   (unbound: the route picks the source)
    icmp 203.0.113.9 > 192.0.2.1 iif eth1 type echo-request id 7

Why a grammar of its own rather than TOML on the command line: a user debugging a box
at 3 a.m. types what tcpdump prints and what `ip route get` takes. Each word becomes a
key of a scenario's [[packets]] table; the packets are then written into the scenario's
text as [[packets]] tables (in place of the file's own) and the whole text is loaded
again by kptui.engine.scenario, so a --send packet is validated exactly as a [[packets]]
entry is (one set of rules), and a session saved from the run keeps them (its replay
loads that text). A refusal of a key is reported on the word that gave it.

The words (any order; numbers decimal, 0x hex or 0-prefixed octal, as kptui's own):

- ``tcp`` | ``udp`` | ``icmp`` (or ``ipproto P``): the protocol;
- ``SRC[:PORT] > DST[:PORT]`` (tcpdump's ``>``; tcpdump's ``ADDR.PORT`` too), or
  ``ip route get``'s ``from SRC[:PORT]`` / ``to DST[:PORT]`` / a bare ``DST[:PORT]``;
  ``sport N`` / ``dport N``;
- ``iif IFACE`` (it arrives there) or ``local`` (the box sends it: from a socket bound
  to SRC when SRC is an address of the box, Box.bound_source; without a source, as an
  unbound socket, whose source the route picks: a scenario's ``src = "0.0.0.0"``);
- ``flags F``: tcpdump's letters S F R P . U E W (``[S.]`` as it prints them, ``.`` is
  ACK, ``W`` CWR), kptui's A and C, names (``SYN,ACK``), ``none``;
- ``type T`` (a number, or a name: iptables' ``echo-request``, ``port-unreachable``...
  which also sets the code, or tcpdump's ``icmp-echo``...; a bare name works too),
  ``code N``, ``id N`` (the echo identifier);
- ``mark M``, ``uid N``, ``gid N`` (local packets), ``tos N``, ``ttl N``, ``length N``
  (the IP total length), ``seq N``, ``ack N``, ``df on|off``, ``time SECONDS``;
- ``options [mss 1460,nop,wscale 7]``: TCP options as tcpdump prints them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kptui.engine.errors import KptuiError, ParseError, UnsupportedError
from kptui.engine.numbers import NumberError, parse_float, scan_uint

if TYPE_CHECKING:
    from kptui.engine.scenario import Scenario

SHOWN = 70  # how much of a --send text an error quotes
PROTO_WORDS = ("tcp", "udp", "icmp")
# The [[packets]] keys in the order they are written (the order of the error checks).
KEY_ORDER = ("iif", "proto", "src", "dst", "sport", "dport", "flags", "seq", "ack",
             "tcp_options", "icmp_type", "icmp_code", "icmp_id", "ttl", "tos", "length",
             "df", "mark", "uid", "gid", "time")
# word -> the [[packets]] key its number sets
NUMBER_WORDS = {"sport": "sport", "dport": "dport", "ttl": "ttl", "tos": "tos", "mark": "mark",
                "length": "length", "seq": "seq", "ack": "ack", "uid": "uid", "gid": "gid",
                "code": "icmp_code", "id": "icmp_id"}
# tcpdump's flag letters that kptui spells otherwise (print-tcp.c tcp_flag_values)
TCPDUMP_FLAGS = {".": "A", "W": "C"}
FLAG_LETTERS = frozenset("SFRPUEW.AC")  # tcpdump's and kptui's letters
# names kptui's flags parser reads as words, before letters ("CWR" is CWR, not C+W+R)
FLAG_NAMES = frozenset(("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "ALL"))
# pcap-filter(7)'s icmptype names
TCPDUMP_ICMP = {"icmp-echoreply": 0, "icmp-unreach": 3, "icmp-sourcequench": 4,
                "icmp-redirect": 5, "icmp-echo": 8, "icmp-routeradvert": 9,
                "icmp-routersolicit": 10, "icmp-timxceed": 11, "icmp-paramprob": 12,
                "icmp-tstamp": 13, "icmp-tstampreply": 14, "icmp-ireq": 15,
                "icmp-ireqreply": 16, "icmp-maskreq": 17, "icmp-maskreply": 18}
DF_VALUES = {"on": True, "off": False, "yes": True, "no": False, "1": True, "0": False}
_TOKENS = re.compile(r"[^\s>]+|>")
_NUMBER_FORMS = "decimal, 0x hex or 0-prefixed octal"


def icmp_names() -> dict[str, tuple[int, int | None]]:
    """ICMP type names -> (type, code or None): iptables' (libxt_icmp: a name of one
    code sets it) and tcpdump's."""
    from kptui.engine.iptables.ext.icmp import ICMP_CODES

    names: dict[str, tuple[int, int | None]] = {
        name: (t, lo if lo == hi else None) for name, t, lo, hi in ICMP_CODES if name != "any"}
    names.update({name: (t, None) for name, t in TCPDUMP_ICMP.items()})
    return names


class SendError(ParseError):
    """A --send text refused: which text, which word (1-based) and what was expected."""

    def __init__(self, text: str, message: str, *, word: int = 0, words: Sequence[str] = ()):
        shown = text if len(text) <= SHOWN else text[:SHOWN - 3] + "..."
        where = f"word {word} {words[word - 1]!r}: " if word and word <= len(words) else ""
        super().__init__(f"{where}{message}", file=f"--send {shown!r}")
        self.word = word


@dataclass(slots=True)
class SendPacket:
    """One --send text read into [[packets]] keys, and which word gave each key."""

    text: str
    words: list[str]
    entry: dict[str, Any] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)  # key -> 1-based word number

    def fail(self, message: str, word: int = 0) -> SendError:
        return SendError(self.text, message, word=word, words=self.words)


class _Reader:
    """Reads one --send text word by word into a SendPacket (the grammar; no rules about
    which keys go together, which kptui.engine.scenario checks)."""

    def __init__(self, text: str) -> None:
        self.out = SendPacket(text, _TOKENS.findall(text))
        self.i = 0  # index of the next word
        self.icmp = icmp_names()
        self.handlers: dict[str, Callable[[int], None]] = {
            "iif": self._iif, "local": self._local, "from": self._from, "to": self._to,
            "ipproto": self._ipproto, "flags": self._flags, "type": self._type,
            "time": self._time, "options": self._options, "df": self._df,
            **{p: self._proto_word for p in PROTO_WORDS},
            **{w: self._number for w in NUMBER_WORDS},
        }

    # -- the pieces ------------------------------------------------------------------

    @property
    def words(self) -> list[str]:
        return self.out.words

    def set(self, key: str, value: Any, word: int) -> None:
        if key in self.out.entry:
            first = self.out.positions[key]
            raise self.out.fail(f"{_KEY_WORDS.get(key, key)} is given twice (first at word "
                                f"{first} {self.words[first - 1]!r})", word)
        self.out.entry[key] = value
        self.out.positions[key] = word

    def value(self, word: int, what: str) -> str:
        """The word after ``word`` (the keyword's value); its 1-based number is word+1."""
        if word >= len(self.words) or self.words[word] == ">":
            raise self.out.fail(f"{self.words[word - 1]} needs {what} after it", word)
        self.i = word + 1
        return self.words[word]

    def number(self, text: str, word: int, what: str) -> int:
        value = scan_uint(text, 0)
        if value is None:
            raise self.out.fail(f"{what}: {text!r} is not a number ({_NUMBER_FORMS})", word)
        return value

    def endpoint(self, word: int, addr_key: str, port_key: str) -> None:
        """ADDR, ADDR:PORT or tcpdump's ADDR.PORT (five dotted parts)."""
        text = self.words[word - 1]
        addr, port = text, ""
        if ":" in text:
            addr, _, port = text.rpartition(":")
        elif text.count(".") == 4:
            addr, _, port = text.rpartition(".")
        if not addr or (":" in text and not port):
            raise self.out.fail("expected ADDR or ADDR:PORT", word)
        self.set(addr_key, addr, word)
        if port:
            self.set(port_key, self.number(port, word, "port"), word)

    # -- the words -------------------------------------------------------------------

    def _proto_word(self, word: int) -> None:
        self.set("proto", self.words[word - 1], word)
        self.i = word

    def _ipproto(self, word: int) -> None:
        proto = self.value(word, "tcp, udp or icmp")
        if proto not in PROTO_WORDS:
            raise self.out.fail("expected tcp, udp or icmp", word + 1)
        self.set("proto", proto, word + 1)

    def _iif(self, word: int) -> None:
        self.set("iif", self.value(word, "an interface name"), word + 1)

    def _local(self, word: int) -> None:
        self.set("iif", "local", word)
        self.i = word

    def _from(self, word: int) -> None:
        self.value(word, "SRC[:PORT]")
        self.endpoint(word + 1, "src", "sport")

    def _to(self, word: int) -> None:
        self.value(word, "DST[:PORT]")
        self.endpoint(word + 1, "dst", "dport")

    def _number(self, word: int) -> None:
        key = NUMBER_WORDS[self.words[word - 1]]
        text = self.value(word, "a number")
        self.set(key, self.number(text, word + 1, self.words[word - 1]), word + 1)

    def _flags(self, word: int) -> None:
        text = self.value(word, "TCP flags (S, S., SA, R, F., none...)").strip("[]")
        if not text:
            raise self.out.fail("expected TCP flags (S, S., SA, R...)", word + 1)
        if text.lower() == "none":  # tcpdump's [none]
            text = "NONE"
        elif all(c in FLAG_LETTERS for c in text) and text not in FLAG_NAMES:
            text = "".join(TCPDUMP_FLAGS.get(c, c) for c in text)
        self.set("flags", text, word + 1)

    def _type(self, word: int) -> None:
        text = self.value(word, "an ICMP type (a number or a name like echo-request)")
        if text in self.icmp:
            self._icmp_name(text, word + 1)
            return
        if scan_uint(text, 0) is None:
            close = difflib.get_close_matches(text, list(self.icmp), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise self.out.fail("expected an ICMP type: a number, or a name like "
                                f"echo-request, port-unreachable or icmp-echo{hint}", word + 1)
        self.set("icmp_type", self.number(text, word + 1, "type"), word + 1)

    def _icmp_name(self, name: str, word: int) -> None:
        icmp_type, code = self.icmp[name]
        self.set("icmp_type", icmp_type, word)
        if code is not None:
            self.set("icmp_code", code, word)

    def _time(self, word: int) -> None:
        text = self.value(word, "seconds")
        try:
            seconds = parse_float(text, what="time")
        except NumberError as err:
            raise self.out.fail(f"{err} (seconds on the box's clock)", word + 1) from None
        self.set("time", seconds, word + 1)

    def _df(self, word: int) -> None:
        text = self.value(word, "on or off")
        if text not in DF_VALUES:
            raise self.out.fail("expected on or off", word + 1)
        self.set("df", DF_VALUES[text], word + 1)

    def _options(self, word: int) -> None:
        """``options [mss 1460,sackOK,TS val 1 ecr 0]``: the words up to the closing
        bracket, as tcpdump prints them; a single word needs no brackets."""
        first = self.value(word, "TCP options, e.g. [mss 1460,nop,wscale 7]")
        if not first.startswith("["):
            self.set("tcp_options", first, word + 1)
            return
        parts, end = [first[1:]], word
        while not parts[-1].endswith("]"):
            end += 1
            if end >= len(self.words):
                raise self.out.fail("the options' [ has no closing ]", word + 1)
            parts.append(self.words[end])
        self.i = end + 1
        self.set("tcp_options", " ".join(parts)[:-1].strip(), word + 1)

    # -- the whole text ----------------------------------------------------------------

    def read(self) -> SendPacket:
        words = self.words
        if not words:
            raise self.out.fail("empty: give a packet, e.g. 'tcp 198.51.100.7:40000 > "
                                "192.0.2.1:22 iif eth1 flags S'")
        while self.i < len(words):
            word = self.i + 1
            text = words[self.i]
            handler = self.handlers.get(text)
            if handler is not None:
                self.i = word
                handler(word)
            elif text in self.icmp:
                self._icmp_name(text, word)
                self.i = word
            elif text == ">":
                raise self.out.fail("expected SRC[:PORT] before >", word)
            elif "0" <= text[0] <= "9":
                self._address(word)
            else:
                raise self.out.fail(self._unknown(text), word)
        self._check_complete()
        return self.out

    def _address(self, word: int) -> None:
        """SRC > DST, or a bare DST (ip route get's ADDRESS)."""
        words = self.words
        if word < len(words) and words[word] == ">":
            if word + 1 >= len(words) or not "0" <= words[word + 1][0] <= "9":
                raise self.out.fail("expected DST[:PORT] after >", word + 1)
            self.endpoint(word, "src", "sport")
            self.endpoint(word + 2, "dst", "dport")
            self.i = word + 2
            return
        self.endpoint(word, "dst", "dport")
        self.i = word

    def _unknown(self, text: str) -> str:
        known = [*self.handlers, "SRC[:PORT] > DST[:PORT]"]
        close = difflib.get_close_matches(text, list(self.handlers), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return f"not a word of a packet{hint}; expected one of: {', '.join(known)}"

    def _check_complete(self) -> None:
        entry, fail = self.out.entry, self.out.fail
        if "proto" not in entry:
            raise fail("no protocol: begin with tcp, udp or icmp")
        if "dst" not in entry:
            raise fail("no destination: give SRC[:PORT] > DST[:PORT] (or to DST[:PORT])")
        if "iif" not in entry:
            raise fail("where does it come from? give iif IFACE (it arrives there) or "
                       "local (the box sends it)")
        if "src" not in entry:
            if entry["iif"] != "local":
                raise fail(f"a packet arriving on {entry['iif']} needs its source: "
                           "SRC[:PORT] > DST[:PORT] (or from SRC[:PORT])")
            entry["src"] = "0.0.0.0"  # an unbound socket: the route picks the source
            self.out.positions["src"] = 0


# how the words say a key, for messages
_KEY_WORDS = {"iif": "iif/local", "proto": "the protocol", "src": "the source",
              "dst": "the destination", "sport": "the source port", "dport": "the destination "
              "port", "icmp_type": "type", "icmp_code": "code", "icmp_id": "id",
              "tcp_options": "options"}


# a key the scenario says is missing -> how the words give it
_NEEDS = {"sport": "SRC:PORT > DST:PORT, or sport N", "dport": "SRC:PORT > DST:PORT, or dport N"}


def read_send(text: str) -> SendPacket:
    """One --send text read into [[packets]] keys; SendError names the word when the
    grammar is broken (a key's own rules are checked by apply_sends)."""
    return _Reader(text).read()


def _toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif c < " " or c == "\x7f" or "\ud800" <= c <= "\udfff":
            out.append(f"\\u{ord(c):04x}" if not "\ud800" <= c <= "\udfff" else "\ufffd")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return _toml_string(str(value))


def packets_toml(packets: Sequence[SendPacket]) -> tuple[str, list[dict[int, str]]]:
    """The packets as [[packets]] tables, and for each, its lines (1-based, from the
    first line of the returned text) -> the key written there ("" for the header)."""
    lines: list[str] = []
    where: list[dict[int, str]] = []
    for n, packet in enumerate(packets):
        lines.append(f"# --send {n + 1}: {_toml_string(packet.text)}")
        at = {len(lines) + 1: ""}
        lines.append("[[packets]]")
        for key in KEY_ORDER:
            if key in packet.entry:
                at[len(lines) + 1] = key
                lines.append(f"{key} = {_toml_value(packet.entry[key])}")
        where.append(at)
    return "\n".join(lines) + "\n", where


def without_packets(text: str) -> str:
    """The scenario text with its [[packets]] tables (and their sub-tables) blanked out,
    line for line, so every other line keeps its number (setup errors still name it)."""
    from kptui.engine.scenario import _Lines

    where = _Lines(text)
    lines = text.splitlines()
    if where.top_key("packets"):
        raise UnsupportedError("--send with a scenario whose packets are an inline "
                               "`packets = [...]` array (write them as [[packets]] tables)")
    for name, starts in where.headers.items():
        if name != "packets" and not name.startswith("packets."):
            continue
        for start in starts:
            for i in range(start - 1, where.block_end.get(start, len(lines))):
                lines[i] = ""
    return "\n".join(lines) + "\n"


def apply_sends(scenario: Scenario, texts: Sequence[str]) -> None:
    """Put the --send packets in place of ``scenario``'s own (its packets and its text:
    a session saved from the run replays them). Every key is checked by loading the
    new text as a scenario (kptui.engine.scenario's rules for [[packets]]); a refusal
    is a SendError on the word that gave the key."""
    from kptui.engine.scenario import load_scenario

    packets = [read_send(text) for text in texts]
    base = without_packets(scenario.text)
    block, where = packets_toml(packets)
    first = base.count("\n") + 1  # the line of the block's first line in the new text
    text = base + block
    try:
        loaded = load_scenario(text, file=scenario.file, read_file=scenario.read_file)
    except ParseError as err:
        raise _on_word(err, packets, where, first) from None
    for n, spec in enumerate(loaded.packets):
        spec.file, spec.line = "--send", n + 1
    scenario.packets = loaded.packets
    scenario.text = text


def _on_word(err: ParseError, packets: Sequence[SendPacket], where: Sequence[dict[int, str]],
             first: int) -> KptuiError:
    """A scenario refusal of a line of the --send block, told on the word behind it."""
    for packet, lines in zip(packets, where, strict=True):
        key = lines.get(err.line - first + 1)
        if key is None:
            continue
        message = err.message.replace("packets.", "").replace("[[packets]]", "a packet") \
            .replace('(iif = "local")', "(local)")
        for missing, hint in _NEEDS.items():
            if message.endswith(f"needs {missing}"):
                message += f" (give {hint})"
        return packet.fail(message, packet.positions.get(key, 0) if key else 0)
    return err


__all__ = ["SendError", "SendPacket", "apply_sends", "icmp_names", "packets_toml",
           "read_send", "without_packets"]
