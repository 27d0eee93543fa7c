"""The debugger: the only stepping logic. It drives walks one event at a time.

A walk is a generator of events that mutates its packet in place, so the
debugger can pause between two events, let the user look and edit, and go on.
The scenario's packets are walked in order through one box (state carries
over). Every user action is appended to ``journal`` as plain data; replaying
the journal on a fresh box reproduces the same events, which is what sessions
save and what reverse stepping uses: going back means re-executing history
from the last checkpoint before that event (walks are deterministic, so the
result is exact). A checkpoint is a snapshot of the box's state
(kptui.engine.snapshot: counters, conntrack, queues, clocks; the ruleset, routes
and interfaces are shared, so it costs what the state costs, not what the box
costs) and of the debugger's position, taken at a packet boundary (walks are
generators, which cannot be copied) once ``checkpoint_every`` events have passed
since the last one, so a step back re-executes at most about that many events
plus one walk, however long the session. Going back to the very start restores
the snapshot taken when the box was built, instead of building it again.

Journal entries (dicts of str/int, in order)::

    {"op": "step" | "step_over" | "step_out" | "cont" | "run_to_fate" | "next_packet"
           | "step_back" | "reverse_cont"}
    {"op": "packet", "index": N}            a walk started (recorded by the action above it)
    {"op": "edit", "path": P, "text": T, "at": E}   E: index in ``events`` of the pause
    {"op": "break", "id": I, "spec": S}  {"op": "enable" | "disable" | "delete", "id": I}
    {"op": "seed", "value": V}              the seed of `-m statistic` (before any event)
    {"op": "inject", "origin": O, "proto": P, ...}  a packet queued after the others; the
                                            other keys are INJECT_FIELDS, all text

Stepping, each returning a ``Stop`` that says where and why it stopped:

- ``step``: the next event (starting the next packet's walk when needed).
- ``step_over``: finish the current chain; at depth 0, finish the current stage.
- ``step_out``: finish the current hook (or the current non-netfilter stage).
- ``cont``: run to the next breakpoint or watchpoint hit, or the packet's fate;
  from a fate it starts the next packet.
- ``run_to_fate``: like ``cont``, but already at a fate it stays there.
- ``next_packet``: in a walk, run to its fate; at a fate, start the next packet.
- ``step_back`` / ``reverse_cont``: the previous event / the previous hit.

Every run stops early at a breakpoint or watchpoint hit, and at the fate.

Breakpoints (``add_breakpoint(spec)``)::

    stage nat:PREROUTING        StageEnter of that stage id
    hook FORWARD                the first StageEnter of that netfilter hook
    chain filter:FORWARD        ChainEnter of that table:chain (hook entry or jump/goto)
    rule filter:FORWARD:3       RuleEval of that rule (matched or not), before its target
    watch meta.mark             a FieldChange or UserEdit of that field
    if tcp.dport == 80          see below
    rule filter:FORWARD:3 if tcp.dport == 80    a location with a condition

A location with ``if`` is gdb's ``break LOCATION if COND``: it hits at the
location when the condition holds on the live packet. A bare ``if COND`` has no
location; stopping at every event while it holds would make ``cont`` useless,
so it behaves like gdb's ``watch COND``: it hits on the event at which the
condition *becomes* true (false before, true after). It is re-armed (taken as
false) at the start of each packet, so it fires once per packet that matches,
and again if it turns false and then true.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kptui.engine import expr, snapshot
from kptui.engine.errors import FieldError, KptuiError, ParseError, UnsupportedError
from kptui.engine.events import (
    ChainEnter,
    Event,
    Fate,
    FieldChange,
    RuleEval,
    StageEnter,
    StageLeave,
    UserEdit,
)
from kptui.engine.numbers import scan_uint
from kptui.engine.packet import FIELDS, INT_FORMS, ROUTING_KEYS

if TYPE_CHECKING:
    from kptui.engine.box import Box
    from kptui.engine.packet import Packet
    from kptui.engine.scenario import Scenario

Walker = Callable[..., Iterator[Event]]
JournalEntry = dict[str, str | int]

STOP_REASONS = ("step", "breakpoint", "watch", "fate", "end")
TABLES = ("raw", "mangle", "nat", "filter", "security")
HOOKS = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")
SPEC_FILE = "<breakpoint>"
CHECKPOINT_EVERY = 256
# What an injected packet is made of (the compose dialog's fields), all as text.
INJECT_FIELDS = ("origin", "proto", "src", "dst", "sport", "dport", "flags", "icmp_type", "ttl")


@dataclass(slots=True, eq=False)
class Breakpoint:
    """A breakpoint or watchpoint. ``id`` is stable: never reused within a session."""

    id: int
    spec: str  # as written (whitespace normalised), for listing and for the journal
    kind: str  # stage | hook | chain | rule | watch | if
    where: str  # stage id, hook, "table:chain", "table:chain:N", field path; "" for `if`
    condition: expr.Condition | None = None
    enabled: bool = True
    hits: int = 0
    was_true: bool = field(default=False, repr=False)  # a bare `if`: its value at the last event

    def at(self, event: Event, prev: Event | None) -> bool:
        """Is ``event`` this breakpoint's location? (The condition is checked apart.)"""
        return _LOCATIONS[self.kind](self, event, prev)


def _at_stage(bp: Breakpoint, ev: Event, prev: Event | None) -> bool:
    return isinstance(ev, StageEnter) and ev.stage == bp.where


def _at_hook(bp: Breakpoint, ev: Event, prev: Event | None) -> bool:
    return isinstance(ev, StageEnter) and ev.hook == bp.where and (
        prev is None or prev.hook != bp.where)


def _at_chain(bp: Breakpoint, ev: Event, prev: Event | None) -> bool:
    return isinstance(ev, ChainEnter) and f"{ev.table}:{ev.chain}" == bp.where


def _at_rule(bp: Breakpoint, ev: Event, prev: Event | None) -> bool:
    return isinstance(ev, RuleEval) and f"{ev.table}:{ev.chain}:{ev.rule}" == bp.where


def _at_watch(bp: Breakpoint, ev: Event, prev: Event | None) -> bool:
    return isinstance(ev, (FieldChange, UserEdit)) and ev.path == bp.where


def _anywhere(bp: Breakpoint, ev: Event, prev: Event | None) -> bool:
    return True


_LOCATIONS: dict[str, Callable[[Breakpoint, Event, Event | None], bool]] = {
    "stage": _at_stage,
    "hook": _at_hook,
    "chain": _at_chain,
    "rule": _at_rule,
    "watch": _at_watch,
    "if": _anywhere,
}


@dataclass(frozen=True, slots=True)
class Stop:
    """Where a stepping operation stopped and why. ``event`` is None only when idle."""

    reason: str  # one of STOP_REASONS
    event: Event | None
    breakpoint: Breakpoint | None = None


def _default_walker(box: Any, pkt: Any, *, index: int = 0, profile: str = "modern",
                    linear: bool = False) -> Iterator[Event]:
    from kptui.engine.walk import walk

    return walk(box, pkt, index=index, profile=profile, linear=linear)


@dataclass(frozen=True, slots=True)
class _Checkpoint:
    """The debugger between two walks, after its first ``count`` events."""

    count: int
    state: snapshot.BoxState  # the box, with the packet and the answers still to walk
    index: int
    walk_start: int
    # scenario packets at their fates (reply_to): entries are never changed once walked,
    # so the checkpoint keeps the same objects (a deep copy here made sessions quadratic)
    walked: tuple[tuple[Any, Any], ...] = ()


def build_packet(fields: dict[str, str]) -> Packet:
    """A packet from the compose dialog's text fields (INJECT_FIELDS); KptuiError if bad."""
    from kptui.engine.packet import Packet

    unknown = sorted(set(fields) - set(INJECT_FIELDS))
    if unknown:
        raise KptuiError(f"inject: unknown field {unknown[0]!r} "
                         f"(known: {', '.join(INJECT_FIELDS)})")
    origin = fields.get("origin") or "local"
    numbers = {}
    for key, path in _COMPOSE_NUMBERS.items():
        text = fields.get(key)
        if text:
            numbers[key] = _compose_number(key, path, text)
    try:
        return Packet.build(proto=fields.get("proto") or "tcp", src=fields.get("src", ""),
                            dst=fields.get("dst", ""), flags=fields.get("flags") or "S",
                            iif="" if origin == "local" else origin, **numbers)
    except ValueError as err:
        raise KptuiError(str(err)) from None


# The compose dialog's numbers, read by the field whose syntax they share (packet.FIELDS:
# decimal, 0x hex or 0-prefixed octal; icmp_type also takes names like echo-request).
_COMPOSE_NUMBERS = {"sport": "tcp.sport", "dport": "tcp.dport", "icmp_type": "icmp.type",
                    "ttl": "ip.ttl"}


def _compose_number(key: str, path: str, text: str) -> int:
    try:
        return FIELDS[path].parse(text)
    except FieldError as err:
        raise FieldError(key + str(err).removeprefix(path)) from None


def _fresh_packet(item: Any, walked: Sequence[tuple[Any, Any]] = ()) -> Any:
    """A new packet for a walk (walks mutate theirs): a Packet is copied, a PacketSpec built
    (a `reply_to` spec from the earlier packets as they were at their fates)."""
    if hasattr(item, "copy"):
        return item.copy()
    if hasattr(item, "build_after"):
        return item.build_after(list(walked))
    if hasattr(item, "build"):
        return item.build()
    if callable(item):
        return item()
    raise TypeError(f"not a packet, packet spec or packet factory: {item!r}")


def _reply_of(item: Any) -> int | None:
    """The packet ``item`` replies to (a scenario's reply_to, a queued ReplySpec), or None."""
    if isinstance(item, ReplySpec):
        return item.of
    return getattr(item, "reply_to", None)


@dataclass(frozen=True, slots=True)
class ReplySpec:
    """A packet to come: the reply to packet ``of``, built once ``of`` reached its fate."""

    of: int

    def build_after(self, walked: list[tuple[Any, Any]]) -> Any:
        from kptui.engine.answers import NoReplyError, reply_to

        original, fate = walked[self.of]
        if fate.action not in ("transmit", "deliver"):
            raise KptuiError(f"packet {self.of} was not delivered nor transmitted "
                             f"({fate.action}): nobody saw it to reply")
        try:
            return reply_to(original)
        except NoReplyError as err:
            raise KptuiError(f"no reply to packet {self.of}: {err}") from None

    def summary(self) -> str:
        return f"reply to packet {self.of}"


# The hooks after the last route lookup a packet gets: an edit of a routing key
# (packet.ROUTING_KEYS) there rewrites the header, not the route.
NO_ROUTING_AFTER = {
    "INPUT": "after routing: the packet is being delivered locally; the kernel does not "
             "route it again",
    "FORWARD": "after routing: the kernel does not route a forwarded packet again; it still "
               "leaves via {oif}",
    "POSTROUTING": "after routing: the kernel does not route again in POSTROUTING; it still "
                   "leaves via {oif}",
}


class Debugger:
    """Drives the walks of a scenario's packets, pausing where the user asked.

    ``box`` is a zero-argument factory (``scenario.build_box``) or a Box; a Box
    is deep-copied once, untouched, so that reverse stepping can rebuild it.
    ``packets`` are Packets (copied for each walk) or PacketSpecs (built).
    """

    def __init__(self, box: Box | Callable[[], Box], packets: Sequence[Packet | Any], *,
                 walker: Walker | None = None, profile: str = "modern", seed: int = 0,
                 checkpoint_every: int = CHECKPOINT_EVERY) -> None:
        if callable(box):
            self._make_box: Callable[[], Any] = box
            first = None
        else:
            pristine = copy.deepcopy(box)
            self._make_box = lambda: copy.deepcopy(pristine)
            first = box
        self._packets = list(packets)
        self._walker: Walker = walker or _default_walker
        self.profile = profile
        self.breakpoints: dict[int, Breakpoint] = {}
        self._next_id = 1
        self.journal: list[JournalEntry] = []
        self._recording = True
        self.seed = seed
        self.checkpoint_every = max(1, checkpoint_every)
        self._checkpoints: list[_Checkpoint] = []  # sorted by count
        self._edits: dict[int, tuple[str, str]] = {}  # event position of a UserEdit -> text
        self._linear: dict[int, bool] = {}  # position of a WalkStart -> linear walk or not
        self.last_stop: Stop | None = None  # what the last replayed action returned
        self._pristine: snapshot.BoxState | None = None  # the box as built, before any event
        self._reset(first)

    @classmethod
    def for_scenario(cls, scenario: Scenario, *, walker: Walker | None = None) -> Debugger:
        """What the CLI and the TUI use: a fresh box per rebuild, the scenario's packets."""
        return cls(scenario.build_box, scenario.packets, walker=walker,
                   profile=scenario.profile)

    # -- state ---------------------------------------------------------------------------

    def _reset(self, box: Any = None) -> None:
        """Back to before the first packet, with a fresh box (the first time built, then
        the snapshot of it as built restored: a 20,000-rule box is not parsed again)."""
        if box is not None or self._pristine is None:
            self.box = box if box is not None else self._make_box()
            self._pristine = snapshot.take(self.box)
        else:
            snapshot.restore(self.box, self._pristine)
        self.events: list[Event] = []
        self.packet: Any = None
        self.index = -1
        self.walk_start = 0  # where the current packet's events begin in ``events``
        self._walk: Iterator[Event] | None = None
        # The box's answers (REJECT's ICMP/RST, ICMP errors) are walks of their own, stepped
        # after the walk that caused them and before the next packet, depth first like
        # run.walk_answers; ``answer_depth`` is 0 for a scenario packet's own walk.
        self._answers: list[tuple[Any, int, str]] = []  # (packet, depth, why), next first
        self.answer_depth = 0
        # Where each walk begins in ``events`` -> (its answer depth, why it was sent): how
        # exports nest answer walks under the packet that caused them.
        self.walk_info: dict[int, tuple[int, str]] = {}
        self._walked: list[tuple[Any, Any]] = []  # scenario packets at their fates
        with contextlib.suppress(AttributeError):  # a box without state for `statistic`
            self.box.rng = random.Random(self.seed)  # what `-m statistic` draws from

    @property
    def current(self) -> Event | None:
        return self.events[-1] if self.events else None

    @property
    def state(self) -> str:
        """idle (no event yet), paused, or finished (at the last packet's fate)."""
        if not self.events:
            return "idle"
        if self._walk is None and not self._answers and self.index >= len(self._packets) - 1:
            return "finished"
        return "paused"

    @property
    def in_walk(self) -> bool:
        """A packet is in flight: its walk has started and not reached its fate."""
        return self._walk is not None

    @property
    def walk_events(self) -> list[Event]:
        """The current packet's events so far."""
        return self.events[self.walk_start:]

    def _record(self, entry: JournalEntry) -> None:
        if self._recording:
            self.journal.append(entry)

    # -- driving walks -------------------------------------------------------------------

    def _start_packet(self, index: int, answer: tuple[Any, int, str] | None = None) -> None:
        """Start packet ``index``'s walk, or the walk of an ``answer`` it caused."""
        self.index = index
        unsent: list[Event] | None = None
        if answer is None:
            try:
                self.packet = _fresh_packet(self._packets[index], self._walked)
            except KptuiError as err:  # a reply to a packet that never got through
                of = _reply_of(self._packets[index])
                if of is None:
                    raise
                from kptui.engine.run import unsent_events

                self.packet, unsent = None, unsent_events(index, of, err)
            self.answer_depth, why = 0, ""
        else:
            self.packet, self.answer_depth, why = answer
        self.walk_start = len(self.events)
        self.walk_info[self.walk_start] = (self.answer_depth, why)
        linear = self._linear.get(self.walk_start) if not self._recording else None
        if linear is None:  # live: from the breakpoints; re-executing: as it was then
            linear = self._needs_every_rule()
            self._linear[self.walk_start] = linear
        options = {"linear": linear} if self._walker is _default_walker else {}
        self._walk = iter(unsent) if unsent is not None else \
            iter(self._walker(self.box, self.packet, index=index, profile=self.profile,
                              **options))
        for bp in self.breakpoints.values():
            bp.was_true = False
        self._record({"op": "packet", "index": index})

    def _needs_every_rule(self) -> bool:
        """A rule breakpoint must see its rule evaluated, even one the chain index would
        skip as unable to match, so such a walk evaluates every rule (linear traversal:
        the same verdicts, counters and trace, only slower on huge chains)."""
        return any(bp.kind == "rule" and bp.enabled for bp in self.breakpoints.values())

    def _pull(self) -> Event | None:
        """The next event of the walk, starting the next packet's walk; None after the last."""
        if self._walk is None:
            if self._answers:
                self._start_packet(self.index, self._answers.pop(0))
            elif self.index + 1 >= len(self._packets):
                return None
            else:
                self._start_packet(self.index + 1)
        assert self._walk is not None
        try:
            event = next(self._walk)
        except StopIteration:
            self._walk = None
            raise KptuiError(f"packet {self.index}'s walk ended without a fate "
                             "(an engine bug)") from None
        self.events.append(event)
        if isinstance(event, Fate):
            self._walk = None
            self._queue_answers()
            self._maybe_checkpoint()
        return event

    def _queue_answers(self) -> None:
        """After a fate: remember the packet (for `reply_to`) and queue its answers."""
        from kptui.engine.events import AnswerSent
        from kptui.engine.run import MAX_ANSWER_DEPTH

        if self.answer_depth == 0:  # reply_to reads its headers and meta.oif, not its entry
            pkt = self.packet
            kept = pkt.copy() if hasattr(pkt, "copy") else copy.deepcopy(pkt)
            self._walked.append((kept, self.events[-1]))
        if self.answer_depth + 1 >= MAX_ANSWER_DEPTH + 1:
            return
        new = [(ev.answer.copy(), self.answer_depth + 1, ev.why) for ev in self.walk_events
               if isinstance(ev, AnswerSent) and ev.answer is not None]
        self._answers[:0] = new

    # -- checkpoints ---------------------------------------------------------------------

    def _maybe_checkpoint(self) -> None:
        """At a packet boundary, keep a copy when the last one is far enough behind."""
        count = len(self.events)
        counts = [cp.count for cp in self._checkpoints]
        at = bisect.bisect_right(counts, count)
        if at and counts[at - 1] > count - self.checkpoint_every:
            return
        if at < len(counts) and counts[at] < count + self.checkpoint_every:
            return  # one just ahead already (kept while seeking along a timeline)
        assert self._pristine is not None  # taken by _reset, before any event
        state = snapshot.take(self.box, self.packet, tuple(self._answers),
                              layout=self._pristine.layout)
        self._checkpoints.insert(at, _Checkpoint(count, state, self.index, self.walk_start,
                                                 tuple(self._walked)))

    def _drop_checkpoints_after(self, count: int) -> None:
        """History after ``count`` is being rewritten: checkpoints there no longer hold."""
        self._checkpoints = [cp for cp in self._checkpoints if cp.count <= count]

    def _restore(self, count: int, history: Sequence[Event]) -> int:
        """Back to the nearest checkpoint at or before ``count`` (or to the very start);
        returns how many events of ``history`` that state has already been through."""
        counts = [cp.count for cp in self._checkpoints]
        at = bisect.bisect_right(counts, count)
        if not at:
            self._reset()
            return 0
        cp = self._checkpoints[at - 1]
        self.packet, answers = snapshot.restore(self.box, cp.state)
        self.events = list(history[:cp.count])
        self.index = cp.index
        self.walk_start = cp.walk_start
        self._answers = list(answers)
        self._walked = list(cp.walked)
        self._walk = None
        return cp.count

    @property
    def checkpoints(self) -> list[int]:
        """Event counts at which a checkpoint is kept (for tests and the benchmark)."""
        return [cp.count for cp in self._checkpoints]

    def _hits(self, event: Event) -> list[Breakpoint]:
        """The enabled breakpoints ``event`` hits; updates the state of bare `if`s."""
        prev = self.events[-2] if len(self.events) > 1 else None
        hits = []
        for bp in self.breakpoints.values():
            if not bp.enabled or not bp.at(event, prev):
                continue
            holds = bp.condition is None or (self.packet is not None
                                             and bp.condition.evaluate(self.packet))
            if bp.kind == "if":
                rising = holds and not bp.was_true
                bp.was_true = holds
                holds = rising
            if holds:
                hits.append(bp)
        return hits

    def _check(self, event: Event) -> Stop | None:
        hits = self._hits(event)
        for bp in hits:
            bp.hits += 1
        if not hits:
            return None
        return Stop("watch" if hits[0].kind == "watch" else "breakpoint", event, hits[0])

    def _run(self, op: str, until: Callable[[Event], bool] | None) -> Stop:
        """Pull events until a hit, the fate, ``until(event)``, or the end of the packets."""
        self._record({"op": op})
        while True:
            event = self._pull()
            if event is None:
                return Stop("end", self.current)
            stop = self._check(event)
            if stop is not None:
                return stop
            if isinstance(event, Fate):
                return Stop("fate", event)
            if until is not None and until(event):
                return Stop("step", event)

    # -- stepping ------------------------------------------------------------------------

    def step(self) -> Stop:
        """The next event; at a fate (or before the first packet) the next packet's WalkStart."""
        return self._run("step", _always)

    def step_over(self) -> Stop:
        """Finish the current chain (run until the depth drops below the current event's).

        At depth 0 finish the current stage: stop at its StageLeave (to see the
        verdict) or at the first event of another stage. Outside a walk: a step.
        """
        cur = self.current
        if not self.in_walk or cur is None:
            return self._run("step_over", _always)
        if cur.depth > 0:
            depth = cur.depth
            return self._run("step_over", lambda ev: ev.depth < depth)
        stage = cur.stage
        return self._run("step_over", lambda ev: ev.stage != stage or (
            isinstance(ev, StageLeave) and ev.stage == stage))

    def step_out(self) -> Stop:
        """Finish the current hook: run to the first event of another hook.

        Stages outside netfilter (routing, forward, tc) have no hook; for them the
        stage itself is the group to leave. Outside a walk: a step.
        """
        cur = self.current
        if not self.in_walk or cur is None:
            return self._run("step_out", _always)
        group = _group(cur)
        return self._run("step_out", lambda ev: _group(ev) != group)

    def cont(self) -> Stop:
        """Run to the next breakpoint or watchpoint hit, or the fate; crosses into the next
        packet when called at a fate."""
        return self._run("cont", None)

    def run_to_fate(self) -> Stop:
        """Finish this packet (stopping at hits on the way); at its fate, stay there."""
        if not self.in_walk and isinstance(self.current, Fate):
            self._record({"op": "run_to_fate"})
            return Stop("fate", self.current)
        return self._run("run_to_fate", None)

    def next_packet(self) -> Stop:
        """In a walk: run to its fate (stopping at hits, so nothing is skipped unseen).
        At a fate or before the first packet: start the next packet, stop at its WalkStart."""
        if self.in_walk:
            return self._run("next_packet", None)
        return self._run("next_packet", _always)

    # -- edits -------------------------------------------------------------------------

    def edit(self, path: str, text: str) -> Stop:
        """Set a field of the packet in flight, as the user typed it.

        The packet validates it (a FieldError with its reason propagates
        unchanged); the change is recorded as a UserEdit event at the current
        stage/hook/depth, so watchpoints and conditions see it like any change.
        """
        if not self.in_walk:
            if isinstance(self.current, Fate):
                raise KptuiError(f"packet {self.index} has reached its fate "
                                 f"({self.current.describe()}); there is nothing in flight "
                                 "to edit: step to start the next packet")
            raise KptuiError("no packet is in flight: step to start one, then edit it")
        at = len(self.events) - 1
        event = self._apply_edit(path, text)
        self._drop_checkpoints_after(at + 1)
        self._record({"op": "edit", "path": path, "text": text, "at": at})
        return self._check(event) or Stop("step", event)

    def _apply_edit(self, path: str, text: str) -> UserEdit:
        old, new = self.packet.set_text(path, text)
        cur = self.current
        assert cur is not None
        event = UserEdit(stage=cur.stage, hook=cur.hook, depth=cur.depth, path=path,
                         old=old, new=new, caveat=self._routing_caveat(path, cur.hook))
        self._edits[len(self.events)] = (path, text)
        self.events.append(event)
        return event

    def _routing_caveat(self, path: str, hook: str) -> str:
        """Why a routing key edited here changes no route: after routing, the kernel only
        routes again in mangle/nat OUTPUT (ip_route_me_harder), never in these hooks."""
        if path not in ROUTING_KEYS or hook not in NO_ROUTING_AFTER:
            return ""
        oif = self.packet.get("meta.oif")
        return NO_ROUTING_AFTER[hook].format(oif=oif or "the chosen device")

    # -- session set-up --------------------------------------------------------------------

    def set_seed(self, seed: int) -> None:
        """Seed the random choices (`-m statistic --mode random`); only before any event."""
        if self.events:
            raise KptuiError("the seed of random choices can only be set before the first "
                             "packet")
        if not 0 <= seed < 2**63:
            raise KptuiError(f"seed {seed}: must be 0 .. 2**63-1")
        self.seed = seed
        self._checkpoints = []
        self._reset()
        self._record({"op": "seed", "value": seed})

    def inject(self, fields: dict[str, str]) -> int:
        """Queue a packet made of ``fields`` (INJECT_FIELDS, as text) after the others;
        returns its index. Nothing already walked changes, so nothing is re-executed."""
        fields = {k: v for k, v in fields.items() if v}
        pkt = build_packet(fields)
        origin = fields.get("origin", "local")
        names = getattr(self.box, "interfaces", None)
        if origin != "local" and names is not None and origin not in names:
            known = ", ".join(sorted(names))
            raise KptuiError(f"origin: no interface {origin!r} in this box ({known}, or local)")
        self._packets.append(pkt)
        self._record({"op": "inject", **fields})
        return len(self._packets) - 1

    def send_reply(self) -> int:
        """Follow the connection: queue the answer a server would send to the packet
        whose fate is showing (answers.reply_to: the tuple it had at its fate swapped,
        a SYN-ACK for a SYN); returns its index. Journaled like an inject."""
        if self.answer_depth or not isinstance(self.current, Fate) or self.in_walk:
            raise KptuiError("send a reply at a packet's fate (run it to its fate first)")
        of = self.index
        self._packets.append(ReplySpec(of))
        try:
            _fresh_packet(self._packets[-1], self._walked)  # refuse now, not at its walk
        except KptuiError:
            self._packets.pop()
            raise
        self._record({"op": "reply", "of": of})
        return len(self._packets) - 1

    @property
    def packets(self) -> list[Any]:
        """The packets to walk, in order: the scenario's, then the injected ones."""
        return list(self._packets)

    # -- breakpoints ---------------------------------------------------------------------

    def add_breakpoint(self, spec: str) -> Breakpoint:
        """Parse ``spec`` (see the module doc) and add it; a bad spec raises ParseError."""
        kind, where, condition = parse_spec(spec, profile=self.profile,
                                            ruleset=getattr(self.box, "ruleset", None))
        bp = Breakpoint(self._next_id, " ".join(spec.split()), kind, where, condition)
        self._next_id += 1
        self.breakpoints[bp.id] = bp
        self._arm(bp)
        self._record({"op": "break", "id": bp.id, "spec": spec})
        return bp

    def enable(self, bp_id: int, enabled: bool = True) -> Breakpoint:
        bp = self._breakpoint(bp_id)
        bp.enabled = enabled
        if enabled:
            self._arm(bp)
        self._record({"op": "enable" if enabled else "disable", "id": bp_id})
        return bp

    def disable(self, bp_id: int) -> Breakpoint:
        return self.enable(bp_id, False)

    def remove(self, bp_id: int) -> Breakpoint:
        bp = self._breakpoint(bp_id)
        del self.breakpoints[bp_id]
        self._record({"op": "delete", "id": bp_id})
        return bp

    def _breakpoint(self, bp_id: int) -> Breakpoint:
        if bp_id not in self.breakpoints:
            known = ", ".join(str(i) for i in self.breakpoints) or "none"
            raise KptuiError(f"no breakpoint {bp_id} (breakpoints: {known})")
        return self.breakpoints[bp_id]

    def _arm(self, bp: Breakpoint) -> None:
        """A bare `if` set or re-enabled mid-walk starts from its current value, as gdb's
        watch does: it fires on the next change to true, not at once."""
        bp.was_true = bool(bp.kind == "if" and self.in_walk and bp.condition is not None
                           and self.packet is not None and bp.condition.evaluate(self.packet))

    # -- reverse execution ---------------------------------------------------------------

    def step_back(self) -> Stop:
        """Back to the previous event (undoing an edit made there), by re-execution."""
        self._record({"op": "step_back"})
        if not self.events:
            return Stop("end", None)
        self._rebuild(len(self.events) - 1)
        self._drop_checkpoints_after(len(self.events))
        return Stop("step", self.current)

    def reverse_cont(self) -> Stop:
        """Back to the latest earlier event that hits an enabled breakpoint or watchpoint;
        to the very beginning (reason "end") when there is none.

        History is scanned backwards a checkpoint segment at a time, so a hit close
        behind costs about one segment of re-execution, not the whole session.
        """
        self._record({"op": "reverse_cont"})
        if not self.events:
            return Stop("end", None)
        history = list(self.events)
        end = len(history) - 1
        bounds = [0, *(c for c in self.checkpoints if 0 < c < end), end]
        for lo, hi in reversed(list(zip(bounds, bounds[1:], strict=False))):
            hits = self._rebuild(hi, history=history, scan_from=lo)
            if hits:
                position, bp_id = hits[-1]
                self._rebuild(position + 1, history=history)
                self._drop_checkpoints_after(len(self.events))
                bp = self.breakpoints[bp_id]
                bp.hits += 1
                return Stop("watch" if bp.kind == "watch" else "breakpoint", self.current, bp)
        self._rebuild(0, history=history)
        self._drop_checkpoints_after(0)
        return Stop("end", None)

    def seek(self, count: int, timeline: Sequence[Event]) -> None:
        """Put the debugger after the first ``count`` events of ``timeline``: events this
        debugger produced (``list(dbg.events)`` taken earlier). Not a user action, so not
        journaled: the replay screen moves along a recorded session with it. Going
        forward continues from here when the current events lead there; checkpoints
        along the timeline are kept, so moving about costs one segment each time."""
        count = max(0, min(count, len(timeline)))
        n = len(self.events)
        if n <= count and (n == 0 or self.events[-1] == timeline[n - 1]) \
                and count - n < self.checkpoint_every:
            self._rebuild(count, history=timeline, start=n)
        else:
            self._rebuild(count, history=timeline)

    def _rebuild(self, count: int, *, history: Sequence[Event] | None = None,
                 scan_from: int | None = None, start: int | None = None
                 ) -> list[tuple[int, int]]:
        """Re-execute ``history`` (default: the events so far) up to its first ``count``
        events, from the nearest checkpoint (or from ``start``: the current state).

        With ``scan_from``, re-execution starts at the checkpoint at that count and
        returns (position, breakpoint id) of every hit on the way, with the
        breakpoints as they are now. Hit counts are left alone.
        """
        if history is None:
            history = list(self.events)
        edits = self._edits
        recording, self._recording = self._recording, False
        hits: list[tuple[int, int]] = []
        try:
            if start is None:
                start = self._restore(count if scan_from is None else scan_from, history)
            for position in range(start, count):
                expected = history[position]
                if isinstance(expected, UserEdit):
                    event: Event | None = self._apply_edit(*edits[position])
                else:
                    event = self._pull()
                if event != expected:
                    raise KptuiError(f"re-execution diverged at event {position}: expected "
                                     f"{expected!r}, got {event!r}")
                if scan_from is not None and event is not None:
                    hits.extend((position, bp.id) for bp in self._hits(event))
        finally:
            self._recording = recording
        for bp in self.breakpoints.values():
            self._arm(bp)
        return hits

    # -- replay --------------------------------------------------------------------------

    @classmethod
    def replay(cls, box: Box | Callable[[], Box], packets: Sequence[Packet | Any],
               journal: Sequence[JournalEntry], *, walker: Walker | None = None,
               profile: str = "modern", strict: bool = True) -> Debugger:
        """Re-execute a journal on a fresh debugger; raise KptuiError where it diverges.

        ``strict`` also checks that every packet starts where the journal says; a
        session replay turns it off and compares the events themselves instead, to
        show the first event that differs.
        """
        dbg = cls(box, packets, walker=walker, profile=profile)
        journal = list(journal)
        for position, entry in enumerate(journal):
            if _is_packet_start(entry):
                continue  # recorded again by the action that starts the packet
            try:
                dbg._replay_entry(entry)
            except KptuiError as err:
                raise KptuiError(f"replay failed at journal entry {position} {entry}: "
                                 f"{err}") from err
            if not strict:
                continue
            upto = next((i for i in range(position + 1, len(journal))
                         if not _is_packet_start(journal[i])), len(journal))
            if dbg.journal != journal[:upto]:
                raise KptuiError(f"replay diverged at journal entry {position} {entry}: "
                                 + _first_difference(journal[:upto], dbg.journal))
        if strict and dbg.journal != journal:  # only packet starts, none of them re-done
            raise KptuiError("replay diverged: " + _first_difference(journal, dbg.journal))
        return dbg

    def apply(self, entry: JournalEntry) -> None:
        """Perform one journal action as the user did (a session replay drives this).
        Packet starts are not actions: the step that started the packet records them."""
        if not _is_packet_start(entry):
            self._replay_entry(entry)

    def rerun(self) -> Iterator[tuple[Event, Any]]:
        """Re-execute this debugger's history on a fresh box, yielding each event with the
        packet just after it (the live object, changed as the walk goes on: copy what
        you keep). Exports use it to see the packet between stages."""
        other = type(self)(self._make_box, self._packets, walker=self._walker,
                           profile=self.profile, seed=self.seed, checkpoint_every=2**62)
        other._edits, other._linear = dict(self._edits), dict(self._linear)
        other._recording = False
        for position, expected in enumerate(list(self.events)):
            if isinstance(expected, UserEdit):
                event: Event | None = other._apply_edit(*other._edits[position])
            else:
                event = other._pull()
            if event != expected:
                raise KptuiError(f"re-execution diverged at event {position}: expected "
                                 f"{expected!r}, got {event!r}")
            assert event is not None
            yield event, other.packet

    def _replay_entry(self, entry: JournalEntry) -> None:
        op = _get(entry, "op", str)
        if op in _STEP_OPS:
            self.last_stop = getattr(self, op)()
        elif op == "edit":
            at = _get(entry, "at", int)
            if at != len(self.events) - 1:
                raise KptuiError(f"the edit was made at event {at}, replay is at event "
                                 f"{len(self.events) - 1}")
            self.last_stop = self.edit(_get(entry, "path", str), _get(entry, "text", str))
        elif op == "break":
            bp = self.add_breakpoint(_get(entry, "spec", str))
            if bp.id != _get(entry, "id", int):
                raise KptuiError(f"breakpoint got id {bp.id}, the journal says {entry['id']}")
        elif op in ("enable", "disable", "delete"):
            {"enable": self.enable, "disable": self.disable, "delete": self.remove}[op](
                _get(entry, "id", int))
        elif op == "seed":
            self.set_seed(_get(entry, "value", int))
        elif op == "reply":
            of = _get(entry, "of", int)
            if of != self.index:
                raise KptuiError(f"the reply was to packet {of}, replay is at packet "
                                 f"{self.index}")
            self.send_reply()
        elif op == "inject":
            self.inject({k: _get(entry, k, str) for k in entry if k != "op"})
        else:
            raise KptuiError(f"unknown action {op!r}")


_STEP_OPS = ("step", "step_over", "step_out", "cont", "run_to_fate", "next_packet",
             "step_back", "reverse_cont")


def _is_packet_start(entry: Any) -> bool:
    return isinstance(entry, dict) and entry.get("op") == "packet"


def _first_difference(expected: list[JournalEntry], got: list[JournalEntry]) -> str:
    for i, (want, have) in enumerate(zip(expected, got, strict=False)):
        if want != have:
            return f"entry {i} was {want}, re-execution records {have}"
    if len(expected) > len(got):
        return f"re-execution does not record entry {len(got)} {expected[len(got)]}"
    return f"re-execution also records {got[len(expected)]}"


def _always(event: Event) -> bool:
    return True


def _group(event: Event) -> str:
    """What step_out leaves: the netfilter hook, or the stage for stages outside netfilter."""
    return event.hook or event.stage


def _get(entry: JournalEntry, key: str, kind: type) -> Any:
    value = entry.get(key) if isinstance(entry, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise KptuiError(f"journal entry {entry!r}: {key!r} must be a {kind.__name__}")
    return value


# -- breakpoint specs --------------------------------------------------------------------

_IF = re.compile(r"(?:^|\s)if(?:\s|$)")
_KINDS = ("stage", "hook", "chain", "rule", "watch", "if")


def parse_spec(spec: str, *, profile: str = "modern", ruleset: Any = None
               ) -> tuple[str, str, expr.Condition | None]:
    """``spec`` -> (kind, where, condition). Raises ParseError with the column at fault.

    With ``ruleset`` (the box's), a chain or rule must be one it has: a breakpoint that
    can never be hit is refused with what there is, as gdb refuses ``break nosuch``."""
    m = _IF.search(spec)
    head = spec[:m.start()] if m else spec
    condition = None
    if m:
        start = m.end()
        condition = expr.compile(spec[start:], file=SPEC_FILE, offset=start)
    words = [(w.group(), w.start() + 1) for w in re.finditer(r"\S+", head)]
    if not words:
        if condition is not None:
            return "if", "", condition
        raise ParseError("empty breakpoint: write e.g. `rule filter:FORWARD:3`, "
                         "`watch meta.mark` or `if tcp.dport == 80`", file=SPEC_FILE, line=1,
                         column=1)
    (kind, kcol), args = words[0], words[1:]
    if kind not in _KINDS[:-1]:
        raise _spec_error(f"unknown breakpoint kind {kind!r}; use one of "
                          f"{', '.join(_KINDS)}", kcol, kind)
    if len(args) != 1:
        col, tok = (args[1][1], args[1][0]) if len(args) > 1 else (len(head) + 1, "")
        raise _spec_error(f"`{kind}` takes one argument, like `{_EXAMPLES[kind]}`", col, tok)
    arg, col = args[0]
    where = _SPEC_ARGS[kind](arg, col, profile)
    if ruleset is not None and kind in ("chain", "rule"):
        _check_in_ruleset(where, ruleset, col, arg)
    return kind, where, condition


def _check_in_ruleset(where: str, ruleset: Any, col: int, arg: str) -> None:
    """The chain of ``where`` (table:chain[:N]) exists in ``ruleset``, with rule N: a
    built-in chain of the table always does (its hook runs it once it has rules)."""
    from kptui.engine.iptables.model import BUILTIN_CHAINS

    table, chain, *number = where.split(":")
    tables = getattr(ruleset, "tables", None)
    if tables is None:
        return  # not an iptables ruleset (ipchains): nothing to check against
    found = tables.get(table)
    have = found.chains.get(chain) if found is not None else None
    builtin = BUILTIN_CHAINS.get(table, ())
    if have is None and chain not in builtin:
        names = list(builtin) + ([c for c in found.chains if c not in builtin]
                                 if found is not None else [])
        raise _spec_error(f"no chain {chain} in the {table} table{_suggest(chain, names)} "
                          f"(its chains: {', '.join(names)})", col, arg)
    if number:
        count = len(have.rules) if have is not None else 0
        if (scan_uint(number[0]) or 0) > count:  # _rule_arg wrote it in decimal
            has = f"{count} rule{'s' if count != 1 else ''}" if count else "no rules"
            raise _spec_error(f"no rule {number[0]} in {table}:{chain}: it has {has}", col,
                              arg)


_EXAMPLES = {
    "stage": "stage nat:PREROUTING",
    "hook": "hook FORWARD",
    "chain": "chain filter:FORWARD",
    "rule": "rule filter:FORWARD:3",
    "watch": "watch meta.mark",
}


def _spec_error(message: str, column: int, token: str) -> ParseError:
    token = token if len(token) <= 60 else token[:57] + "..."  # a pasted 1 MB word
    return ParseError(message, file=SPEC_FILE, line=1, column=column, token=token)


def _suggest(word: str, choices: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _stage_arg(arg: str, col: int, profile: str) -> str:
    from kptui.engine.profile import get_profile

    try:
        ids = [stage.id for stage in get_profile(profile).stages()]
    except UnsupportedError:
        return arg  # the walk itself will refuse this profile
    if arg not in ids:
        raise _spec_error(f"unknown stage {arg}{_suggest(arg, ids)} (stages of the {profile} "
                          f"profile: {', '.join(ids)})", col, arg)
    return arg


def _hook_arg(arg: str, col: int, profile: str) -> str:
    if arg.upper() not in HOOKS:
        raise _spec_error(f"unknown hook {arg}{_suggest(arg.upper(), HOOKS)} "
                          f"(hooks: {', '.join(HOOKS)})", col, arg)
    return arg.upper()


def _table_chain(parts: list[str], arg: str, col: int) -> str:
    table, chain = parts[0], parts[1]
    if table not in TABLES:
        raise _spec_error(f"unknown table {table}{_suggest(table, TABLES)} "
                          f"(tables: {', '.join(TABLES)})", col, arg)
    if not chain:
        raise _spec_error("missing chain name after the table", col, arg)
    return f"{table}:{chain}"


def _chain_arg(arg: str, col: int, profile: str) -> str:
    parts = arg.split(":")
    if len(parts) != 2:
        raise _spec_error("a chain is written table:chain, like filter:FORWARD", col, arg)
    return _table_chain(parts, arg, col)


_MAX_RULE = 2**31 - 1  # INT_MAX, iptables' bound for a rule number


def _rule_arg(arg: str, col: int, profile: str) -> str:
    parts = arg.split(":")
    if len(parts) == 4 and parts[2] == "rule":  # the trace label, table:chain:rule:N
        parts = [parts[0], parts[1], parts[3]]
    if len(parts) != 3:
        raise _spec_error("a rule is written table:chain:N (N counts from 1), like "
                          "filter:FORWARD:3", col, arg)
    number = parts[2]
    # read as iptables reads `-D INPUT 010` (xtables_strtoui base 0, 1..INT_MAX: rule 8;
    # checked with iptables 1.8.9, which refuses 08)
    value = scan_uint(number, 0)
    if value is None or not 1 <= value <= _MAX_RULE:
        shown = number if len(number) <= 40 else number[:37] + "..."
        too_big = value is not None and value > _MAX_RULE
        raise _spec_error(f"rule number {shown!r} must be 1 or more"
                          + (f" and at most {_MAX_RULE}" if too_big else
                             f" ({INT_FORMS})" if value is None else ""), col, arg)
    return f"{_table_chain(parts, arg, col)}:{value}"


def _watch_arg(arg: str, col: int, profile: str) -> str:
    reason = expr.unknown_field_reason(arg, expr.known_paths())
    if reason:
        raise _spec_error(reason, col, arg)
    return arg


_SPEC_ARGS: dict[str, Callable[[str, int, str], str]] = {
    "stage": _stage_arg,
    "hook": _hook_arg,
    "chain": _chain_arg,
    "rule": _rule_arg,
    "watch": _watch_arg,
}
