"""-m sctp (libxt_sctp 1.8.9, the old getopt API): ports and chunk types.

Parsed and printed as iptables 1.8.9 does (its words for every refusal), not
simulated: kptui models TCP, UDP and ICMP, and the kernel registers the match for
``-p sctp`` only, so the rule's -p stops its packets first (one of another protocol,
read from bytes, that gets this far stops the walk as unsupported).

Two quirks of 1.8.9 kept on purpose: a chunk's flags are filed under the chunk's
index in iptables' table, not its type number (so ``I_DATA:I`` keeps flags for
type 15, which iptables-save then does not print), and ``ALL``/``NONE`` only mean
all/none when they are the whole list.
"""

from __future__ import annotations

from typing import ClassVar

from kptui.engine.iptables.ext.l4common import kernel_refuses
from kptui.engine.iptables.matches import Match, Opt
from kptui.engine.iptables.values import BadValue, parse_port_range

# /etc/services entries for sctp on this machine (getservbyname(name, "sctp"))
SCTP_SERVICES = {"amqp": 5672}
XT_NUM_SCTP_FLAGS = 4

# sctp_chunk_names[]: (name, chunk type, valid flag letters from bit 7 to bit 0)
CHUNKS: tuple[tuple[str, int, str], ...] = (
    ("DATA", 0, "----IUBE"), ("INIT", 1, "--------"), ("INIT_ACK", 2, "--------"),
    ("SACK", 3, "--------"), ("HEARTBEAT", 4, "--------"), ("HEARTBEAT_ACK", 5, "--------"),
    ("ABORT", 6, "-------T"), ("SHUTDOWN", 7, "--------"), ("SHUTDOWN_ACK", 8, "--------"),
    ("ERROR", 9, "--------"), ("COOKIE_ECHO", 10, "--------"), ("COOKIE_ACK", 11, "--------"),
    ("ECN_ECNE", 12, "--------"), ("ECN_CWR", 13, "--------"),
    ("SHUTDOWN_COMPLETE", 14, "-------T"), ("I_DATA", 64, "----IUBE"),
    ("RE_CONFIG", 130, "--------"), ("PAD", 132, "--------"), ("ASCONF", 193, "--------"),
    ("ASCONF_ACK", 128, "--------"), ("FORWARD_TSN", 192, "--------"),
    ("I_FORWARD_TSN", 194, "--------"),
)
_BY_NAME = {name: (index, ctype) for index, (name, ctype, _f) in enumerate(CHUNKS)}
_NAME_OF_TYPE = {ctype: name for name, ctype, _f in CHUNKS}
_ALL = (1 << 256) - 1
_MATCH_TYPES = ("any", "all", "only")  # SCTP_CHUNK_MATCH_ANY, _ALL, _ONLY


def _ascii_upper(c: str) -> str:
    return chr(ord(c) - 32) if "a" <= c <= "z" else c


class SctpMatch(Match):
    name = "sctp"
    options = {"--source-port": Opt(1, True), "--sport": Opt(1, True),
               "--destination-port": Opt(1, True), "--dport": Opt(1, True),
               "--chunk-types": Opt(2, True)}
    own_checks: ClassVar[bool] = True  # sctp_parse words its own once checks
    protos = (132,)
    proto_error = kernel_refuses("sctp match: only valid for protocol 132")

    def __init__(self) -> None:
        super().__init__()
        self.spts: tuple[int, int, bool] | None = None
        self.dpts: tuple[int, int, bool] | None = None
        self.chunks: tuple[int, int, bool] | None = None  # (match type, chunk map, !)
        self.flag_info: list[list[int]] = []  # [chunk index, flags, flag mask]

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        if opt in ("--source-port", "--sport"):
            if self.spts is not None:
                raise BadValue("Only one `--source-port' allowed")
            self.spts = (*parse_port_range(args[0], SCTP_SERVICES), inv)
        elif opt in ("--destination-port", "--dport"):
            if self.dpts is not None:
                raise BadValue("Only one `--destination-port' allowed")
            self.dpts = (*parse_port_range(args[0], SCTP_SERVICES), inv)
        else:
            if self.chunks is not None:
                raise BadValue("Only one `--chunk-types' allowed")
            if args[1][:1] in ("-", "!"):
                raise BadValue("--chunk-types requires two args")
            kind = args[0].lower() if args[0].isascii() else args[0]
            if kind not in _MATCH_TYPES:
                raise BadValue('Match type has to be one of "ALL", "ANY" or "ONLY"')
            self.chunks = (_MATCH_TYPES.index(kind), self._chunk_map(args[1]), inv)

    def _chunk_map(self, text: str) -> int:
        """parse_sctp_chunk: names (any case) with optional :flags, or ALL / NONE."""
        whole = text.upper() if text.isascii() else text
        if whole == "ALL":
            return _ALL
        if whole == "NONE":
            return 0
        chunk_map = 0
        for part in (p for p in text.split(",") if p):  # strtok skips empty fields
            name, colon, flags = part.partition(":")
            found = _BY_NAME.get(name.upper() if name.isascii() else name)
            if found is None:
                raise BadValue(f"Unknown sctp chunk `{name}'")
            index, ctype = found
            chunk_map |= 1 << ctype
            valid = CHUNKS[index][2]
            for c in flags:
                pos = valid.find(_ascii_upper(c))
                if pos < 0:
                    raise BadValue(f"Invalid flags for chunk type {index}")
                self._flag(index, 7 - pos, "A" <= c <= "Z")
        return chunk_map

    def _flag(self, index: int, bit: int, on: bool) -> None:
        """save_chunk_flag_info, keyed by the chunk's index as 1.8.9 does."""
        for info in self.flag_info:
            if info[0] == index:
                info[2] |= 1 << bit
                info[1] |= (1 << bit) if on else 0
                return
        if len(self.flag_info) == XT_NUM_SCTP_FLAGS:
            raise BadValue("Number of chunk types with flags exceeds currently allowed limit. "
                           "Increasing this limit involves changing IPT_NUM_SCTP_FLAGS and "
                           "recompiling both the kernel space and user space modules")
        self.flag_info.append([index, (1 << bit) if on else 0, 1 << bit])

    def _chunks_text(self, kind: int, chunk_map: int) -> str:
        """print_chunks (numeric 0)."""
        if chunk_map == 0:
            return f"{_MATCH_TYPES[kind]} NONE"
        if chunk_map == _ALL:
            return f"{_MATCH_TYPES[kind]} ALL"
        names = []
        for i in range(256):
            if not chunk_map >> i & 1:
                continue
            text = _NAME_OF_TYPE.get(i, "")
            for index, flags, mask in self.flag_info:
                if index == i:  # print_chunk_flags(i, ...): i is read as an index
                    letters = CHUNKS[i][2]
                    text += ":" + "".join(
                        (letters[7 - b] if flags >> b & 1 else letters[7 - b].lower())
                        for b in range(7, -1, -1) if mask >> b & 1)
            names.append(text)
        return f"{_MATCH_TYPES[kind]} {','.join(names)}"

    def save(self) -> str:
        out = []
        for opt, ports in (("--sport", self.spts), ("--dport", self.dpts)):
            if ports is not None:
                lo, hi, inv = ports
                out.append(f"{'! ' if inv else ''}{opt} {lo}:{hi}" if lo != hi
                           else f"{'! ' if inv else ''}{opt} {lo}")
        if self.chunks is not None:
            kind, chunk_map, inv = self.chunks
            out.append(f"{'! ' if inv else ''}--chunk-types {self._chunks_text(kind, chunk_map)}")
        return " ".join(out)


MATCHES = (SctpMatch,)
