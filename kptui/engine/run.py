"""Run a whole scenario: every packet in order, state carried over in the box.

This is what ``kptui trace`` prints and what ``kptui verify`` compares with
the kernel: one result per packet in DESIGN.md's ``--json`` shape.

Answers (REJECT's ICMP or RST, the kernel's own ICMP errors: time exceeded,
fragmentation needed, destination unreachable for unreachable/prohibit routes,
redirects). A walk announces each answer with an ``AnswerSent`` event just
before its ``Fate`` (in the kernel the answer leaves while the packet is being
handled); the event carries the answer packet as kptui.engine.answers built it.
``walk_answers`` then walks each answer, in the same box, as a new locally
generated walk (output routing, raw/mangle/nat/filter OUTPUT, POSTROUTING,
carrying the original's conntrack entry as RELATED_REPLY/RELATED, as
nf_ct_attach does for the RST and every ICMP error): the box's own OUTPUT
rules can drop it, as in the kernel. An
answer's walk can announce answers of its own; they are walked too (depth at
most ``MAX_ANSWER_DEPTH``; __icmp_send and nf_send_reset make deeper chains
impossible anyway).

``PacketResult.answers`` holds these walks (each a ``PacketResult`` with the
same ``index``, its ``events``, the answer ``packet`` as it was at its fate,
``why`` from the AnswerSent event, and its own ``answers``), depth first in
the order the events announced them. A debugger or TUI steps an answer walk by
walking ``AnswerSent.answer.copy()`` in the box right after the original's
fate (what ``walk_answers`` does).

A -j TEE copy (kptui.engine.iptables.ext.tee) is walked the same way: an
AnswerSent with ``clone`` set, its packet routed already (``meta.tee``: its next
hop) and untracked. The kernel sends it inside the TEE rule, before the original
goes on; where walking it after the original could change a result, the walk
refuses by name (ext/tee.order_conflict).

In ``to_json()``, ``answers`` lists ``answer_out()`` of every answer walk (at
any depth) that ended in ``transmit``: the packets seen on a wire, shaped as
``kptui verify`` records the kernel's (``iface`` first); a TEE copy's entry also
has ``kind`` "tee", its ``nexthop`` and its own ``trace``. An answer walk that
ended in ``error`` is listed too, with the ``error`` and no ``iface`` (kptui
cannot say what the kernel does with it; verify then disagrees). An answer
dropped in OUTPUT/POSTROUTING, or sent to the box itself (a REJECT answer to a
local sender loops back through lo and is delivered), is not in ``answers``:
every answer walk, whatever its fate, is in ``PacketResult.answers`` and in the
text and TRACE renderings (kptui.report), but DESIGN.md's --json shape has no key
for whole answer walks yet.

``reply_to = N`` (scenario.PacketSpec.reply_to): the packet is built by
answers.reply_to from packet N's walked packet at its fate (tuple swapped as
seen after NAT), arriving where packet N left, with the spec's overrides. When
packet N never got through (dropped, rejected, or itself not sent) there is no
reply: that packet's own result says so (``unsent``: a WalkStart and an ``error``
fate by ``reply_to``, ``out`` empty in --json), and the run goes on, so
``kptui trace --packet M`` still shows every other packet, the drop included.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kptui.engine.decided import fate_json
from kptui.engine.errors import KptuiError
from kptui.engine.events import AnswerSent, Event, Fate, WalkStart, trace_lines
from kptui.engine.walk import walk

if TYPE_CHECKING:
    from kptui.engine.box import Box
    from kptui.engine.packet import Packet
    from kptui.engine.scenario import Scenario

MAX_ANSWER_DEPTH = 3


@dataclass(slots=True)
class PacketResult:
    """One packet's walk: its events, the packet as it was at its fate, its answers."""

    index: int
    events: list[Event]
    packet: Packet | None  # None: never built (``unsent``)
    answers: list[PacketResult] = field(default_factory=list)
    why: str = ""  # for an answer walk: what sent it
    sent: Packet | None = None  # the packet as built, before its walk (what verify sends)

    @property
    def fate(self) -> Fate:
        last = self.events[-1]
        assert isinstance(last, Fate)
        return last

    def all_answers(self) -> Iterator[PacketResult]:
        """Every answer walk, depth first (an answer's answers follow it)."""
        for answer in self.answers:
            yield answer
            yield from answer.all_answers()

    def wire_answers(self) -> list[dict[str, Any]]:
        """The ``answers`` of --json (wire_answer of every answer walk, depth first)."""
        entries = (wire_answer(a.packet, a.fate, a.events) for a in self.all_answers())
        return [entry for entry in entries if entry is not None]

    def to_json(self, *, with_events: bool = True) -> dict[str, Any]:
        """The object ``kptui trace --json`` prints for this packet."""
        out: dict[str, Any] = {
            "packet": self.index,
            "fate": fate_json(self.events, self.fate),
            "out": self.packet.out_dict() if self.packet is not None else {},
            "trace": trace_lines(self.events),
            "answers": self.wire_answers(),
        }
        if with_events:
            out["events"] = [event.to_dict() for event in self.events]
        return out


def wire_answer(packet: Packet, fate: Fate | None,
                events: list[Event]) -> dict[str, Any] | None:
    """One entry of --json's ``answers`` for an answer walk, or None when it has none.

    A walk that left the box: answers.answer_out (a -j TEE copy also with its own
    ``trace``). A walk kptui could not finish (fate ``error``): the packet with the
    ``error`` instead of an ``iface``, since kptui cannot say whether the kernel sends
    it. Any other fate, or an unfinished walk: none.
    """
    from kptui.engine.answers import answer_out

    if fate is None:
        return None
    if fate.action == "transmit":
        entry = answer_out(packet, fate.iface)
        if packet.meta.tee:
            entry["trace"] = trace_lines(events)
        return entry
    if fate.action == "error":
        entry = answer_out(packet, "")
        entry["error"] = fate.message
        return entry
    return None


def walk_answers(box: Box, events: list[Event], *, index: int, profile: str,
                 depth: int = 0) -> list[PacketResult]:
    """Walk the answers ``events`` announced, in order, in ``box`` (see the module doc)."""
    out: list[PacketResult] = []
    for event in events:
        if not isinstance(event, AnswerSent) or event.answer is None:
            continue
        pkt = event.answer.copy()
        answer_events = list(walk(box, pkt, index=index, profile=profile))
        result = PacketResult(index, answer_events, pkt, why=event.why,
                              sent=event.answer.copy())
        if depth + 1 < MAX_ANSWER_DEPTH:
            result.answers = walk_answers(box, answer_events, index=index, profile=profile,
                                          depth=depth + 1)
        out.append(result)
    return out


def unsent_events(index: int, of: int, err: KptuiError) -> list[Event]:
    """The walk of a reply to packet ``of`` that could not be built (packet ``of`` never
    got through, so no server saw it to reply): a WalkStart and an ``error`` fate by
    ``reply_to`` whose message says why. A packet of its own, not a failure of the run."""
    return [WalkStart(stage="", hook="", packet=f"the reply to packet {of}, not sent",
                      origin="", index=index),
            Fate(stage="", hook="", action="error", by="reply_to",
                 message=f"not sent: {err}")]


def run_scenario(scenario: Scenario, *, only: int | None = None,
                 box: Box | None = None) -> Iterator[PacketResult]:
    """Walk every packet of ``scenario`` in order (state carries over between them).

    With ``only``, every packet is still walked, because earlier packets change
    the box (counters, limits, conntrack), but only that packet's result is
    produced. A packet with ``reply_to = N`` is built from packet N's result.
    ``box``: a box fresh from ``scenario.build_box()``, for a caller that also needs
    it (the rule handles of --format trace).
    """
    if box is None:
        box = scenario.build_box()
    walked: list[tuple[Packet | None, Event]] = []
    for index, spec in enumerate(scenario.packets):
        try:
            pkt = spec.build_after(walked)
        except KptuiError as err:
            if spec.reply_to is None:
                raise
            events = unsent_events(index, spec.reply_to, err)
            walked.append((None, events[-1]))
            if only is None or only == index:
                yield PacketResult(index, events, None)
            continue
        sent = pkt.copy()
        events = list(walk(box, pkt, index=index, profile=scenario.profile))
        answers = walk_answers(box, events, index=index, profile=scenario.profile)
        walked.append((pkt, events[-1]))
        if only is None or only == index:
            yield PacketResult(index, events, pkt, answers, sent=sent)
