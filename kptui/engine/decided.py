"""The verdict that decided a packet's fate, for people.

A fate's ``by`` is what the kernel's trace shows last (``xtables-monitor
--trace`` ends a forwarded packet's trace with nat POSTROUTING's policy), and
``--json`` and ``verify`` keep it that way. A person asking "why did it get
through?" wants the firewall's answer instead: the filter rule (or policy)
that accepted it. This module reads that from the walk's events; it adds
nothing to the events themselves, so recorded sessions replay unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable

from kptui.engine.events import Event, Fate, PolicyApplied, TargetApplied

# the tables whose verdict is the firewall's decision, in preference order
DECIDING_TABLES = ("filter", "ipchains")
TERMINAL = frozenset({"ACCEPT", "DROP", "REJECT", "QUEUE", "MASQ", "REDIRECT", "DENY"})


def _decider(event: Event) -> str:
    """``table:chain:rule:N`` or ``table:chain:policy`` for a verdict event, else ''."""
    if isinstance(event, TargetApplied) and event.verdict in TERMINAL:
        return f"{event.table}:{event.chain}:rule:{event.rule}"
    if isinstance(event, PolicyApplied):
        return f"{event.table}:{event.chain}:policy"
    return ""


def deciding_verdict(events: Iterable[Event], fate: Fate) -> str:
    """What decided ``fate``: for a drop or reject its ``by``; for a packet let through,
    the last filter (or ipchains) rule with a verdict, else the last such chain's
    policy, else the last rule with a verdict in any table, else ``by`` (routing, with
    no rule on the way)."""
    if fate.action not in ("transmit", "deliver"):
        return fate.by
    filter_rule = filter_policy = other_rule = ""
    for event in events:
        decider = _decider(event)
        if not decider:
            continue
        is_rule = ":rule:" in decider
        if decider.split(":", 1)[0] in DECIDING_TABLES:
            if is_rule:
                filter_rule = decider
            else:
                filter_policy = decider
        elif is_rule:
            other_rule = decider
    return filter_rule or filter_policy or other_rule or fate.by


def fate_json(events: Iterable[Event], fate: Fate) -> dict[str, object]:
    """``fate.to_json()`` with ``decided_by`` beside ``by`` when the two differ."""
    out: dict[str, object] = fate.to_json()
    decided = deciding_verdict(events, fate)
    if decided and decided != fate.by:
        out["decided_by"] = decided
    return out
