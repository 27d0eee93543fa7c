"""The typed events a walk yields: the only thing the UI and sessions see.

Every event knows the hook and stage it happened in, so the debugger can
step over a chain or out of a hook without knowing anything else. ``to_dict``
gives the JSON shape of ``kptui trace --json``'s ``events`` list.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of all events. ``stage`` is a profile stage id, ``hook`` a netfilter hook or ''.

    Events are built with keywords only: ``RuleEval(stage=..., hook=..., table=...)``.
    """

    stage: str
    hook: str
    depth: int = 0  # chain nesting: 0 outside chains, 1 in a hook's chain, +1 per jump/goto

    kind: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        """``kind``, then every field in declaration order, valued as ``dataclasses.asdict``
        values them (lists copied), without asdict's cost: its recursion and deep copies
        were most of a session replay's time. Field names are read once per class."""
        cls = type(self)
        names = _FIELD_NAMES.get(cls) or _field_names(cls)
        d: dict[str, Any] = {"kind": self.kind}
        for name in names:
            value = getattr(self, name)
            d[name] = value if type(value) in _ATOMIC else _as_asdict(value)
        return d

    def describe(self) -> str:
        """One line for people: what happened and why."""
        return self.kind

    # What @dataclass would write for every event class (compare and print the fields
    # not marked compare=False / repr=False), written once here: the event classes are
    # declared with eq=False, repr=False and inherit these. Generating them for each of
    # the 25 classes was half of this module's import, paid by every kptui command.
    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        names = _compared(type(self))
        return tuple(getattr(self, n) for n in names) == \
            tuple(getattr(other, n) for n in names)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, n) for n in _compared(type(self))))

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in _shown(type(self)))
        return f"{type(self).__qualname__}({shown})"


# to_dict's table: an event class -> its dataclass field names, in order (filled lazily:
# subclasses live in other modules too, walk_historical.ImqPass).
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
# Values asdict returns as they are (its deepcopy of them is the same value).
_ATOMIC = frozenset({str, int, bool, float, type(None)})


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


@functools.cache
def _compared(cls: type) -> tuple[str, ...]:
    """The fields Event.__eq__ and __hash__ compare (as dataclass eq would)."""
    return tuple(f.name for f in fields(cls) if f.compare)


@functools.cache
def _shown(cls: type) -> tuple[str, ...]:
    """The fields Event.__repr__ prints (as dataclass repr would)."""
    return tuple(f.name for f in fields(cls) if f.repr)


@dataclass(slots=True)
class _Holder:
    value: Any


def _as_asdict(value: Any) -> Any:
    """``value`` as ``dataclasses.asdict`` turns a field's value: a list of text (route
    explanations, tc counters) is copied here; anything else goes through asdict itself."""
    if type(value) is list and all(type(v) in _ATOMIC for v in value):
        return list(value)
    return asdict(_Holder(value))["value"]


@dataclass(frozen=True, slots=True, kw_only=True, repr=False, eq=False)
class WalkStart(Event):
    packet: str  # a one-line summary of the packet as it enters
    origin: str  # interface name, or "local"; "" for a packet never built (not sent)
    index: int = 0  # which packet of the scenario
    kind: ClassVar[str] = "walk_start"

    def describe(self) -> str:
        if not self.origin:  # a packet that was never built (run.unsent_events)
            return f"packet {self.index}: {self.packet}"
        where = "generated locally" if self.origin == "local" else f"arrives on {self.origin}"
        return f"packet {self.index} {where}: {self.packet}"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False, eq=False)
class StageEnter(Event):
    title: str  # the diagram's label, e.g. "mangle PREROUTING"
    kind: ClassVar[str] = "stage_enter"

    def describe(self) -> str:
        return f"enter {self.title}"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False, eq=False)
class StageLeave(Event):
    title: str
    verdict: str  # ACCEPT, DROP, ...; '' for stages without a verdict
    kind: ClassVar[str] = "stage_leave"

    def describe(self) -> str:
        return f"leave {self.title}" + (f": {self.verdict}" if self.verdict else "")


@dataclass(frozen=True, slots=True, kw_only=True, repr=False, eq=False)
class ChainEnter(Event):
    table: str
    chain: str
    via: str  # "hook", "jump" or "goto"
    kind: ClassVar[str] = "chain_enter"

    def describe(self) -> str:
        how = {"hook": "hook enters", "jump": "jump to", "goto": "goto"}.get(self.via, self.via)
        return f"{how} {self.table} {self.chain}"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False, eq=False)
class RuleEval(Event):
    table: str
    chain: str
    rule: int  # 1-based position in the chain
    matched: bool
    text: str  # the rule as iptables-save writes it
    reason: str = ""  # why it did not match: the first failing match, in words
    kind: ClassVar[str] = "rule"

    @property
    def label(self) -> str:
        return f"{self.table}:{self.chain}:rule:{self.rule}"

    def describe(self) -> str:
        if self.matched:
            return f"{self.table} {self.chain} rule {self.rule} matched: {self.text}"
        return f"{self.table} {self.chain} rule {self.rule} no match ({self.reason}): {self.text}"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False, eq=False)
class TargetApplied(Event):
    table: str
    chain: str
    rule: int
    target: str  # target or chain name as written after -j/-g
    verdict: str  # ACCEPT, DROP, RETURN, JUMP, GOTO, CONTINUE, REJECT, QUEUE
    detail: str = ""
    kind: ClassVar[str] = "target"

    def describe(self) -> str:
        extra = f": {self.detail}" if self.detail else ""
        return f"{self.table} {self.chain} rule {self.rule} -> {self.target}{extra}"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False, eq=False)
class ChainReturn(Event):
    """A user chain ended: explicit RETURN or falling off its end (implicit)."""

    table: str
    chain: str
    rule: int  # the RETURN rule's position, or number of rules + 1 when implicit
    explicit: bool
    kind: ClassVar[str] = "return"

    def describe(self) -> str:
        how = "RETURN" if self.explicit else "end of chain"
        return f"{self.table} {self.chain}: {how}, back to the caller"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False, eq=False)
class PolicyApplied(Event):
    table: str
    chain: str
    verdict: str
    kind: ClassVar[str] = "policy"

    def describe(self) -> str:
        return f"{self.table} {self.chain}: no rule decided, policy {self.verdict}"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False, eq=False)
class FieldChange(Event):
    path: str
    old: Any
    new: Any
    by: str  # "mangle:PREROUTING:rule:3", "routing:forward", "user"
    kind: ClassVar[str] = "field_change"

    def to_dict(self) -> dict[str, Any]:
        d = Event.to_dict(self)
        d["old"], d["new"] = _jsonable(self.old), _jsonable(self.new)
        return d

    def describe(self) -> str:
        old, new = _show(self.path, self.old), _show(self.path, self.new)
        return f"{self.path}: {old} -> {new} ({self.by})"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False, eq=False)
class LogLine(Event):
    """What the LOG target would write to the kernel log."""

    prefix: str
    level: str
    line: str
    kind: ClassVar[str] = "log"

    def describe(self) -> str:
        return f"LOG {self.line}"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False, eq=False)
class RouteDecision(Event):
    lookup: str  # "input", "output" or "reroute"
    result: str  # "local", "forward", "output", "unreachable", "blackhole", "prohibit", ...
    table: str = ""
    route: str = ""  # the chosen route as `ip route` prints it
    oif: str = ""
    gateway: str = ""
    src: str = ""
    explain: list[str] = field(default_factory=list)
    kind: ClassVar[str] = "route"

    def describe(self) -> str:
        result = "forward" if self.lookup == "input" and self.result == "unicast" else self.result
        bits = [f"{self.lookup} routing: {result}"]
        if self.route:
            bits.append(f"via table {self.table}: {self.route}")
        return ", ".join(bits)


@dataclass(frozen=True, slots=True, kw_only=True, repr=False, eq=False)
class ConntrackLookup(Event):
    """nf_conntrack_in's decision for the packet (conntrack hook, PREROUTING/OUTPUT)."""

    result: str  # new | found | related | invalid | untracked | kept
    ctinfo: str  # NEW, ESTABLISHED, RELATED, ESTABLISHED_REPLY, RELATED_REPLY, UNTRACKED, INVALID
    state: str  # what --ctstate sees: NEW, ESTABLISHED, RELATED, INVALID, UNTRACKED
    direction: str = ""  # ORIGINAL | REPLY | ''
    entry: str = ""  # the entry as `conntrack -L` shows it
    why: str = ""
    kind: ClassVar[str] = "conntrack_lookup"

    def describe(self) -> str:
        why = f" ({self.why})" if self.why else ""
        if self.result == "new":
            return (f"entry created: NEW, {self.entry}; unconfirmed until the packet "
                    f"leaves (POSTROUTING) or is delivered (INPUT){why}")
        if self.result == "found":
            return f"found in the {self.direction} direction: {self.state}, {self.entry}{why}"
        if self.result == "related":
            return f"{self.ctinfo}: an ICMP error for a tracked connection{why}"
        if self.result == "kept":
            return f"{self.state} ({self.direction}){why}"
        if self.result == "untracked":
            return f"UNTRACKED{why}"
        return f"INVALID: no conntrack entry attached{why}"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False, eq=False)
class ConntrackConfirm(Event):
    """nf_confirm at the last hook: the packet's new entry goes into the table."""

    entry: str
    kind: ClassVar[str] = "conntrack_confirm"

    def describe(self) -> str:
        return f"entry confirmed, now in the conntrack table: {self.entry}"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False, eq=False)
class NatSkip(Event):
    """The nat hook did not run the nat chains for this packet (nf_nat_inet_fn)."""

    table: str
    chain: str
    reason: str
    kind: ClassVar[str] = "nat_skip"

    def describe(self) -> str:
        return f"nat table skipped: {self.reason}"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False, eq=False)
class NatBinding(Event):
    """nf_nat_setup_info: the binding a NAT target (or the null binding) set up.

    ``before``/``after`` are the manipulated side of the connection's tuple
    (address:port), ``why`` says how the kernel chose it (kept, reused, clash
    resolved, null binding), ``assumed`` what kptui had to assume where the
    kernel is random.
    """

    manip: str  # SRC | DST
    target: str  # SNAT, DNAT, MASQUERADE, REDIRECT, NETMAP, or "null" (no rule bound it)
    range: str  # noqa: A003 - the range requested, e.g. "203.0.113.2:1024-2047 random"
    before: str
    after: str
    why: str
    changed: bool = False  # the reply tuple was altered (status SRC_NAT / DST_NAT set)
    by: str = ""  # the rule, e.g. nat:POSTROUTING:rule:1
    assumed: str = ""
    kind: ClassVar[str] = "nat_binding"

    def describe(self) -> str:
        name = {"SRC": "SNAT", "DST": "DNAT"}[self.manip] if self.target != "null" \
            else f"null {self.manip}"
        if self.target in ("MASQUERADE", "REDIRECT", "NETMAP"):
            name = f"{self.target} ({name})"
        if self.before == self.after:
            text = f"{name} binding: {self.before} kept ({self.why})"
        else:
            text = f"{name} binding: {self.before} -> {self.after} ({self.why})"
        if self.assumed:
            text += f"; assumed: {self.assumed}"
        return text


@dataclass(frozen=True, slots=True, kw_only=True, repr=False, eq=False)
class Note(Event):
    """A remark: a caveat, or something kptui does not model yet (never silent)."""

    text: str
    kind: ClassVar[str] = "note"

    def describe(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True, kw_only=True, repr=False, eq=False)
class Fate(Event):
    action: str  # transmit, deliver, drop, reject, error
    iface: str = ""
    by: str = ""
    message: str = ""
    kind: ClassVar[str] = "fate"

    def describe(self) -> str:
        s = self.action
        if self.iface:
            s += f" via {self.iface}" if self.action == "transmit" else f" on {self.iface}"
        if self.by:
            s += f" (by {self.by})"
        if self.message:
            s += f": {self.message}"
        return s

    def to_json(self) -> dict[str, Any]:
        """The `fate` object of `kptui trace --json`."""
        d: dict[str, Any] = {"action": self.action}
        if self.iface:
            d["iface"] = self.iface
        if self.by:
            d["by"] = self.by
        if self.message:
            d["message"] = self.message
        return d


@dataclass(frozen=True, slots=True, kw_only=True, repr=False, eq=False)
class AnswerSent(Event):
    """The box answers the walked packet (REJECT's ICMP or RST, the kernel's own ICMP
    errors), or sends a copy of it (``clone``: -j TEE). The answer is a new locally
    generated packet, walked after this one (kptui.engine.run): ``answer`` is that
    packet as built, before its walk.

    ``number`` counts this packet's answers from 0; ``why`` says what sent it and
    ``attached`` the conntrack ctinfo nf_ct_attach gave it ('' when none).
    """

    packet: str  # one-line summary of the answer
    why: str
    number: int = 0
    attached: str = ""
    answer: Any = field(default=None, compare=False, repr=False)  # the Packet, not in to_dict
    clone: bool = False  # -j TEE's copy of the packet (nf_dup_ipv4), not an answer to it
    kind: ClassVar[str] = "answer"

    def to_dict(self) -> dict[str, Any]:
        d = {"kind": self.kind, "stage": self.stage, "hook": self.hook, "depth": self.depth,
             "packet": self.packet, "why": self.why, "number": self.number,
             "attached": self.attached}
        if self.clone:  # only then: older event streams (session digests) stay the same
            d["clone"] = True
        return d

    def describe(self) -> str:
        if self.clone:
            return f"the box sends a copy: {self.packet} ({self.why})"
        ct = f"; it carries the connection's entry as {self.attached} (nf_ct_attach)" \
            if self.attached else ""
        return f"the box answers with {self.packet} ({self.why}){ct}"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False, eq=False)
class UserEdit(Event):
    """The user changed a field at a pause; recorded like any other change."""

    path: str
    old: Any
    new: Any
    caveat: str = ""  # e.g. a routing key edited where the kernel never routes again
    kind: ClassVar[str] = "edit"

    def to_dict(self) -> dict[str, Any]:
        d = Event.to_dict(self)
        d["old"], d["new"] = _jsonable(self.old), _jsonable(self.new)
        return d

    def describe(self) -> str:
        text = f"edited {self.path}: {_show(self.path, self.old)} -> {_show(self.path, self.new)}"
        return f"{text} ({self.caveat})" if self.caveat else text


def trace_lines(events: list[Event]) -> list[str]:
    """The lines nft's trace (`xtables-monitor --trace`) shows for these events.

    Checked on this machine's kernel (6.18, iptables 1.8.9 nf_tables): a
    matching rule is logged as ``table:chain:rule:N`` (jump, goto, RETURN and
    non-terminating targets included), a built-in chain ending on its policy
    as ``table:chain:policy:VERDICT``; a user chain that falls off its end is
    not logged at all, so implicit returns are not part of the trace.
    """
    out: list[str] = []
    for ev in events:
        if isinstance(ev, RuleEval) and ev.matched:
            out.append(ev.label)
        elif isinstance(ev, PolicyApplied):
            out.append(f"{ev.table}:{ev.chain}:policy:{ev.verdict}")
    return out


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _show(path: str, value: Any) -> str:
    if value == "":
        return "(none)"
    is_number = isinstance(value, int) and not isinstance(value, bool)
    if is_number and path.endswith(("mark", "classid")):
        return hex(value)
    return str(value)


# -- tc (kptui.engine.qos) ------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True, repr=False, eq=False)
class QosFilter(Event):
    """One tc filter tried on the packet (tcf_classify walks a block by prio)."""

    dev: str
    block: str  # the qdisc or class the filter hangs on ("1:", "1:1"), or ingress/egress
    prio: int
    handle: str
    filter: str  # noqa: A003 - the classifier: u32, fw, matchall, basic
    matched: bool
    classid: str = ""  # the flowid/classid it gives
    text: str = ""
    reason: str = ""  # why it did not match
    kind: ClassVar[str] = "qos_filter"

    def describe(self) -> str:
        head = f"tc filter {self.dev} {self.block} prio {self.prio} {self.filter} " \
               f"{self.handle}"
        if self.matched:
            return f"{head} matched" + (f" -> {self.classid}" if self.classid else "")
        return f"{head} no match ({self.reason})"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False, eq=False)
class QosAction(Event):
    """A tc action ran: police (conform/exceed with its tokens), mirred, gact."""

    dev: str
    action: str
    result: str  # ok, drop, continue, reclassify, pipe, redirect
    detail: str = ""
    tokens: str = ""
    kind: ClassVar[str] = "qos_action"

    def describe(self) -> str:
        return f"tc action {self.action}: {self.result} ({self.detail})"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False, eq=False)
class QosClassify(Event):
    """A classful qdisc chose where the packet goes: a class, a band, the direct queue."""

    dev: str
    qdisc: str  # "htb 1:"
    target: str  # "1:10", "direct", "band 0"
    how: str  # filter | priority | default | direct | priomap
    band: int = -1
    detail: str = ""
    kind: ClassVar[str] = "qos_class"

    def describe(self) -> str:
        extra = f": {self.detail}" if self.detail else ""
        return f"{self.dev} {self.qdisc} -> {self.target} ({self.how}){extra}"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False, eq=False)
class QosEnqueue(Event):
    """The tc verdict: sent, delayed by shaping, dropped, passed (ingress) or redirected.

    ``counters`` lists the `tc -s` counters this packet moved on ``dev``, like
    "qdisc 1: packets" or "class 1:10 drops" (what verify compares).
    """

    dev: str
    qdisc: str
    verdict: str  # sent | delayed | dropped | passed | redirected
    reason: str = ""
    length: int = 0  # bytes as the qdisc counts them
    backlog: int = 0  # packets queued after this one was enqueued
    backlog_bytes: int = 0
    limit: str = ""
    tokens: str = ""
    delay: float = 0.0  # seconds shaping holds the packet
    counters: list[str] = field(default_factory=list)
    kind: ClassVar[str] = "qos_enqueue"

    def describe(self) -> str:
        bits = [f"{self.dev} {self.qdisc} {self.verdict}"]
        if self.reason:
            bits.append(self.reason)
        if self.limit:
            bits.append(f"backlog {self.backlog}p/{self.backlog_bytes}b of {self.limit}")
        if self.tokens:
            bits.append(f"tokens (bytes) {self.tokens}")
        return ", ".join(bits)
