"""Cheap copies of a box's state, for the debugger's checkpoints and step back.

A walk changes a box's state, never its configuration: rule and policy counters,
the state of a few matches (limit's credit, statistic's nth counter, recent's and
hashlimit's tables...), conntrack, ipset elements, qdisc queues and token buckets,
the clock and the random generator change; the ruleset's rules, the routes, the
interfaces and the sysctls do not (a debugging session has no command that edits
them: a new scenario or profile builds a new box). So a snapshot shares the
configuration and copies only the state: a 20,000-rule ruleset costs its counters
(a tuple of integers per rule) and its stateful matches, not a deep copy of every
rule, match and chain index.

The conntrack table snapshots itself (ConntrackTable.snapshot: each entry's mutable
fields, the entries themselves rewound in place on restore). Everything else on the
box that is not named in ``SHARED`` is state and deep-copied, so an attribute a walk
adds later (the redirect peers, the 2.2 masquerading table) is covered without
being listed here. Rules name their mutable attributes with ``state_attrs``
(kptui.engine.iptables.matches.Match, targets.Target). tests/test_checkpoints.py
checks all of it on every scenario of the verify corpus.

Restoring writes the state back into the same box object (whoever holds the box
keeps a valid reference) and copies the snapshot again, so one snapshot can be
restored any number of times. Objects passed in ``extra`` (the debugger's packet
and queued answers) are copied together with the box, keeping the table's entries
as they are: a packet's conntrack entry is the restored table's entry, not a copy.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

# The box's configuration: the same objects in every snapshot (see the docstring).
SHARED: tuple[str, ...] = ("interfaces", "routes", "ruleset", "_global", "_conf",
                           "_conf_set", "wall_clock")
# The conntrack table snapshots itself (ConntrackTable.snapshot: its entries rewound in
# place, not copied), so it is not among the attributes deep-copied.
TABLE = "conntrack"
_NOT_COPIED = frozenset((*SHARED, TABLE))
_ATOMIC = frozenset((type(None), bool, int, float, str, bytes))
_COUNTS = attrgetter("pkts", "bytes")


@dataclass(frozen=True, slots=True)
class Layout:
    """Where a ruleset keeps its state: every Counters object (each chain's policy
    counters, then its rules') and every rule part with ``state_attrs``. Found once per
    box, as the ruleset's rules never change while it is debugged."""

    cells: tuple[Any, ...]
    stateful: tuple[Any, ...]

    @classmethod
    def of(cls, box: Any) -> Layout:
        cells: list[Any] = []
        stateful: list[Any] = []
        ruleset = getattr(box, "ruleset", None)
        for table in getattr(ruleset, "tables", {}).values():
            for chain in table.chains.values():
                cells.append(chain.counters)
                for rule in chain.rules:
                    cells.append(rule.counters)
                    stateful.extend(part for part in (*rule.matches, rule.target)
                                    if getattr(part, "state_attrs", ()))
        return cls(tuple(cells), tuple(stateful))


@dataclass(frozen=True, slots=True)
class BoxState:
    """What ``take`` kept: the box's state, apart from its configuration."""

    layout: Layout
    attrs: dict[str, Any]  # every box attribute not in SHARED or TABLE, deep-copied
    table: Any  # ConntrackTable.snapshot(), or None for a box without one
    counters: tuple[tuple[int, int], ...]  # (pkts, bytes) of layout.cells
    values: tuple[tuple[Any, ...], ...]  # the state_attrs of layout.stateful, copied
    extra: tuple[Any, ...]


def _memo(box: Any) -> dict[int, Any]:
    """deepcopy's memo, primed so that the box, its configuration and the entries of its
    conntrack table are never copied (a packet keeps the table's entry)."""
    memo: dict[int, Any] = {id(box): box}
    for name in _NOT_COPIED:
        obj = getattr(box, name, None)
        memo[id(obj)] = obj
    table = getattr(box, TABLE, None)
    for conn in table.held() if hasattr(table, "held") else ():
        memo[id(conn)] = conn
    return memo


def _copied(value: Any, memo: dict[int, Any]) -> Any:
    return value if type(value) in _ATOMIC else copy.deepcopy(value, memo)


def take(box: Any, *extra: Any, layout: Layout | None = None) -> BoxState:
    """A snapshot of ``box``'s state (and of ``extra``, copied alongside). ``layout``:
    the one of an earlier snapshot of the same box (found again when not given)."""
    layout = layout or Layout.of(box)
    table = getattr(box, TABLE, None)
    table_state = table.snapshot() if hasattr(table, "snapshot") else None
    memo = _memo(box)
    attrs = {k: v for k, v in vars(box).items() if k not in _NOT_COPIED}
    attrs, extra = copy.deepcopy((attrs, extra), memo)
    values = tuple(tuple(_copied(getattr(part, a), memo) for a in part.state_attrs)
                   for part in layout.stateful)
    counters = tuple(map(_COUNTS, layout.cells))
    return BoxState(layout, attrs, table_state, counters, values, extra)


def restore(box: Any, state: BoxState) -> tuple[Any, ...]:
    """Put ``box`` back in ``state``; returns fresh copies of the snapshot's ``extra``."""
    table = getattr(box, TABLE, None)
    if state.table is not None:
        table.restore(state.table)
    memo = _memo(box)
    attrs, extra = copy.deepcopy((state.attrs, state.extra), memo)
    for name in [k for k in vars(box) if k not in _NOT_COPIED]:
        delattr(box, name)
    vars(box).update(attrs)
    for cell, (pkts, nbytes) in zip(state.layout.cells, state.counters, strict=True):
        cell.pkts, cell.bytes = pkts, nbytes
    for part, saved in zip(state.layout.stateful, state.values, strict=True):
        for name, value in zip(part.state_attrs, saved, strict=True):
            setattr(part, name, _copied(value, memo))
    ruleset = getattr(box, "ruleset", None)
    if ruleset is not None and hasattr(box, "ipsets"):
        ruleset.ipsets = box.ipsets  # the ruleset looks sets up in the box's restored store
    return extra
