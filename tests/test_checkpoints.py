"""Checkpoints keep the whole state a walk changes: on every scenario we have.

A checkpoint shares the box's configuration and copies only its state
(kptui.engine.snapshot). State it failed to copy would make a step back land on a
box that differs from the one a forward run had there: counters, conntrack
entries, qdisc counters, ipset elements, the random generator, or state no
listing shows (limit's credit, statistic's nth counter, a recent list) that the
next packet's walk reads. So for every scenario of the verify corpus (each
checked against the kernel) and every bundled one, a run with a checkpoint at
every packet boundary is taken back to each boundary, newest first, and must show
the state the forward run showed there and walk the next packet into the same
events.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kptui.engine.debugger import Debugger
from kptui.engine.events import Fate
from kptui.engine.iptables import to_save
from kptui.engine.scenario import load_scenario
from kptui.engine.snapshot import SHARED

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted([*ROOT.glob("tests/kernel/scenarios/*.toml"),
                    *ROOT.glob("kptui/scenarios/*.toml")])


def visible(dbg: Debugger) -> tuple:
    """What a user can list of the box and the debugger at a packet boundary."""
    box = dbg.box
    ipsets = getattr(box, "ipsets", None)
    return (len(dbg.events), dbg.index, dbg.packet.copy() if dbg.packet is not None else None,
            to_save(box.ruleset, counters=True), tuple(box.conntrack.list_lines()),
            tuple(sorted(box.tc.counters().items())),
            repr([(st.name, st.elems) for st in ipsets.sets()]) if ipsets is not None else None,
            box.rng.getstate(), box.clock)


def configuration(dbg: Debugger) -> str:
    """What snapshots share instead of copying (snapshot.SHARED), as text to compare:
    walks must never change it."""
    box = dbg.box
    parts = [re.sub(r"\[\d+:\d+\]", "", to_save(box.ruleset, counters=False))]
    parts += [repr(getattr(box, name, None)) for name in SHARED if name != "ruleset"]
    parts += [repr(vars(box.routes))]
    return "\n".join(parts)


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_packet_boundary_restores_the_forward_state(path: Path) -> None:
    scenario = load_scenario(path.read_text("utf-8"), file=str(path))
    dbg = Debugger(scenario.build_box, scenario.packets, profile=scenario.profile,
                   checkpoint_every=1)
    before = configuration(dbg)
    boundaries: list[tuple[int, tuple]] = []
    while dbg.next_packet().reason != "end":
        if isinstance(dbg.current, Fate) and not dbg.in_walk:
            boundaries.append((len(dbg.events), visible(dbg)))
    timeline = list(dbg.events)
    assert configuration(dbg) == before, "a walk changed what snapshots share"
    assert dbg.checkpoints, "the run took no checkpoint"
    for count, expected in reversed(boundaries):
        dbg.seek(count, timeline)
        assert visible(dbg) == expected, f"state after event {count}"
        nxt = next((c for c, _ in boundaries if c > count), None)
        if nxt is not None:  # the next packet walks as it did (state no listing shows)
            while len(dbg.events) < nxt and dbg.step().reason != "end":
                pass
            assert dbg.events == timeline[:nxt], f"the walk after event {count}"
