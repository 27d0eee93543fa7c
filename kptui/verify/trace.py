"""Parse what `xtables-monitor --trace` prints, and the handle map from `nft -j -a list`.

Pure functions over text, so they are tested without a kernel. The line
shapes were read on this machine (kernel 6.18, iptables 1.8.9 nf_tables):

    PACKET: 2 c2632c21 IN=eth0 MACSRC=.. SRC=192.0.2.10 DST=192.0.2.1 LEN=28 TOS=0x0 TTL=64
            ID=19201 SPORT=1000 DPORT=53 [SYN ...] [MARK=0x5]
     TRACE: 2 c2632c21 filter:INPUT:rule:0x5:JUMP:udpc  -4 -t filter -A INPUT -p udp -j udpc
     TRACE: 2 c2632c21 filter:INPUT:policy:DROP

A PACKET line opens every base chain a traced packet enters; the TRACE lines
after it share its trace id. The id changes when the skb is looped back
through lo, so lines are grouped by the IP header's ID= instead (verify gives
every packet it sends a distinct one). A copy -j TEE sends has the same ID but
an id of its own, first seen at OUTPUT (a PACKET line without IN=): `clones`
splits those off. A rule's verdict is ACCEPT, DROP
(also for REJECT, whose rule text says `-j REJECT`), CONTINUE (non-terminating
targets), JUMP:X, GOTO:X or RETURN; a user chain that runs out of rules is
not printed at all. Older kernels (Debian's 6.1, used for the NAME.vm
scenarios) print that end as `table:chain:return:` with no verdict, and a
base chain's end the same way before its policy line: those lines are
skipped, so both kernels give the same trace.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

OWN_TABLE = "kptui_trace"  # verify's own nft table: its lines are never shown

_PACKET = re.compile(r"^PACKET: \d+ ([0-9a-f]+) (.*)$")
_TRACE = re.compile(r"^TRACE: \d+ ([0-9a-f]+) ([^:\s]+):([^:\s]+):(rule|policy|return):(\S*?)"
                    r"(?:\s+(.*))?$")
DECIDING = {"ACCEPT", "DROP", "QUEUE", "STOLEN"}


@dataclass(slots=True)
class TraceStep:
    """One TRACE line of a packet's walk, with the PACKET fields it was printed under."""

    table: str
    chain: str
    kind: str  # "rule" or "policy" (nft also knows "return" for chains with a return policy)
    handle: int  # the rule's nft handle; 0 for policy lines
    verdict: str  # ACCEPT, DROP, CONTINUE, JUMP, GOTO, RETURN, ...
    rule_text: str  # the iptables rule as xtables-monitor prints it, '' for policies
    fields: dict[str, str] = field(default_factory=dict)  # of the PACKET line above it
    trace_id: str = ""  # the monitor's id of the skb (a copy -j TEE makes has its own)

    @property
    def decides(self) -> bool:
        return self.verdict in DECIDING


@dataclass(slots=True)
class PacketTrace:
    """Everything the monitor printed for one IP ID, in order."""

    ident: int
    steps: list[TraceStep] = field(default_factory=list)  # without verify's own table
    own: list[TraceStep] = field(default_factory=list)  # verify's own chains only
    headers: list[dict[str, str]] = field(default_factory=list)  # every PACKET line's fields
    header_ids: list[str] = field(default_factory=list)  # the trace id of each of them


def packet_fields(text: str) -> dict[str, str]:
    """`IN=eth0 SRC=.. SYN ACK` -> {"IN": "eth0", "SRC": "..", "SYN": "", "ACK": ""}."""
    out: dict[str, str] = {}
    for word in text.split():
        key, _, value = word.partition("=")
        out[key] = value
    return out


class TraceParser:
    """Feed monitor lines one by one; packets are collected by IP ID."""

    def __init__(self) -> None:
        self.by_ident: dict[int, PacketTrace] = {}
        self._current: dict[str, dict[str, str]] = {}  # trace id -> last PACKET fields
        self.unparsed: list[str] = []

    def feed(self, line: str) -> None:
        line = line.strip()
        if not line:
            return
        m = _PACKET.match(line)
        if m:
            fields = packet_fields(m.group(2))
            self._current[m.group(1)] = fields
            ident = _ident(fields)
            if ident is not None:
                seen = self._trace(ident)
                seen.headers.append(fields)
                seen.header_ids.append(m.group(1))
            return
        m = _TRACE.match(line)
        if not m:
            self.unparsed.append(line)
            return
        trace_id, table, chain, kind, rest, text = m.groups()
        if kind == "return" and not rest:
            return  # a chain ran out of rules: the kernel goes on where it was
        fields = self._current.get(trace_id, {})
        ident = _ident(fields)
        if ident is None:
            self.unparsed.append(line)
            return
        if kind == "rule":
            handle_text, _, verdict = rest.partition(":")
            verdict = _verdict_name(verdict)
            handle = int(handle_text, 16)
        else:
            handle, verdict = 0, rest
        step = TraceStep(table=table, chain=chain, kind=kind, handle=handle,
                         verdict=verdict, rule_text=(text or "").strip(), fields=fields,
                         trace_id=trace_id)
        target = self._trace(ident)
        (target.own if table == OWN_TABLE else target.steps).append(step)

    def _trace(self, ident: int) -> PacketTrace:
        if ident not in self.by_ident:
            self.by_ident[ident] = PacketTrace(ident)
        return self.by_ident[ident]


# include/uapi/linux/netfilter.h NF_* verdicts, by NF_VERDICT_MASK (the low byte)
_NF_VERDICTS = {0: "DROP", 1: "ACCEPT", 2: "STOLEN", 3: "QUEUE", 4: "REPEAT", 5: "STOP"}


def _verdict_name(verdict: str) -> str:
    """A verdict the monitor prints in hex (NFQUEUE's: the queue number in the high 16
    bits, NF_VERDICT_FLAG_QUEUE_BYPASS 0x8000, NF_QUEUE in the low byte) by its name."""
    if not verdict.startswith("0x"):
        return verdict
    try:
        return _NF_VERDICTS.get(int(verdict, 16) & 0xFF, verdict)
    except ValueError:
        return verdict


def clones(trace: PacketTrace) -> tuple[PacketTrace, list[PacketTrace]]:
    """The packet's own trace, and one per -j TEE copy of it, in the order they began.

    A copy (nf_dup_ipv4) is a new skb: a trace id other than the packet's first one
    whose first PACKET line has no IN= (it begins at OUTPUT, ip_local_out). The
    packet itself keeps its id, or gets a new one at PREROUTING (IN=lo) when it
    loops back through lo.
    """
    first: dict[str, dict[str, str]] = {}
    for trace_id, fields in zip(trace.header_ids, trace.headers, strict=True):
        first.setdefault(trace_id, fields)
    ids = list(first)
    copies = [i for i in ids[1:] if "IN" not in first[i]]
    if not copies:
        return trace, []
    own = PacketTrace(trace.ident)
    parts = {i: PacketTrace(trace.ident) for i in copies}
    for step in trace.steps:
        parts.get(step.trace_id, own).steps.append(step)
    for step in trace.own:
        parts.get(step.trace_id, own).own.append(step)
    for trace_id, fields in zip(trace.header_ids, trace.headers, strict=True):
        part = parts.get(trace_id, own)
        part.headers.append(fields)
        part.header_ids.append(trace_id)
    return own, [parts[i] for i in copies]


def _ident(fields: dict[str, str]) -> int | None:
    try:
        return int(fields["ID"])
    except (KeyError, ValueError):
        return None


def handle_positions(nft_json: str) -> dict[tuple[str, str, int], int]:
    """(table, chain, handle) -> 1-based rule position, from `nft -j -a list ruleset` (ip only)."""
    data = json.loads(nft_json)
    positions: dict[tuple[str, str, int], int] = {}
    counts: dict[tuple[str, str], int] = {}
    for item in data.get("nftables", []):
        rule = item.get("rule")
        if not rule or rule.get("family") != "ip":
            continue
        key = (rule["table"], rule["chain"])
        counts[key] = counts.get(key, 0) + 1
        positions[(rule["table"], rule["chain"], int(rule["handle"]))] = counts[key]
    return positions


def step_label(step: TraceStep, positions: dict[tuple[str, str, int], int]) -> str:
    """The DESIGN.md trace label: table:chain:rule:N or table:chain:policy:VERDICT."""
    if step.kind == "rule":
        pos = positions.get((step.table, step.chain, step.handle))
        where = str(pos) if pos is not None else f"handle-{step.handle:#x}"
        return f"{step.table}:{step.chain}:rule:{where}"
    return f"{step.table}:{step.chain}:{step.kind}:{step.verdict}"
