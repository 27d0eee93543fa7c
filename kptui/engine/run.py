"""Run a whole scenario: every packet in order, state carried over in the box.

This is what ``kptui trace`` prints and what ``kptui verify`` compares with
the kernel: one result per packet in DESIGN.md's ``--json`` shape.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kptui.engine.events import Event, Fate, trace_lines
from kptui.engine.walk import walk

if TYPE_CHECKING:
    from kptui.engine.packet import Packet
    from kptui.engine.scenario import Scenario


@dataclass(slots=True)
class PacketResult:
    """One packet's walk: its events and the packet as it was at its fate."""

    index: int
    events: list[Event]
    packet: Packet

    @property
    def fate(self) -> Fate:
        last = self.events[-1]
        assert isinstance(last, Fate)
        return last

    def to_json(self, *, with_events: bool = True) -> dict[str, Any]:
        """The object ``kptui trace --json`` prints for this packet."""
        out: dict[str, Any] = {
            "packet": self.index,
            "fate": self.fate.to_json(),
            "out": self.packet.out_dict(),
            "trace": trace_lines(self.events),
            "answers": [],
        }
        if with_events:
            out["events"] = [event.to_dict() for event in self.events]
        return out


def run_scenario(scenario: Scenario, *, only: int | None = None) -> Iterator[PacketResult]:
    """Walk every packet of ``scenario`` in order (state carries over between them).

    With ``only``, every packet is still walked, because earlier packets change
    the box (counters, limits), but only that packet's result is produced.
    """
    box = scenario.build_box()
    for index, spec in enumerate(scenario.packets):
        pkt = spec.build()
        events = list(walk(box, pkt, index=index, profile=scenario.profile))
        if only is None or only == index:
            yield PacketResult(index, events, pkt)
