"""What the panels show, read from the debugger after each command.

Only reads engine state (never decides what the kernel does): which stages
the packet visited, the chain being traversed and its match marks, the
fields changed so far, the last routing decision, the log lines.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.decided import deciding_verdict
from kptui.engine.events import (
    ChainEnter,
    ChainReturn,
    Event,
    Fate,
    FieldChange,
    PolicyApplied,
    RouteDecision,
    RuleEval,
    StageEnter,
    StageLeave,
    TargetApplied,
    UserEdit,
    WalkStart,
)
from kptui.engine.numbers import scan_uint
from kptui.engine.profile import Profile
from kptui.widgets.diagram import PATHS, DiagramState
from kptui.widgets.diagram_layout import HOOK_KINDS
from kptui.widgets.rules import ChainView
from kptui.widgets.tracelog import LogEntry


def stage_breakpoints(dbg: Any, profile: Profile) -> frozenset[str]:
    """Stages a breakpoint points at: stage, hook (its stages) and built-in chain ones."""
    out: set[str] = set()
    for bp in dbg.breakpoints.values():
        if not bp.enabled:
            continue
        if bp.kind == "stage":
            out.add(bp.where)
        elif bp.kind == "hook":
            out.update(s.id for s in profile.stages() if s.hook == bp.where)
        elif bp.kind in ("chain", "rule"):
            table, chain = bp.where.split(":")[:2]
            out.add(f"{table}:{chain}")
    return frozenset(out)


def absent_stages(dbg: Any, profile: Profile) -> frozenset[str]:
    """Table stages whose chain does not exist in this box: the packet passes them silently."""
    ruleset = dbg.box.ruleset
    return frozenset(s.id for s in profile.stages()
                     if s.kind == "table" and not ruleset.chain_present(s.table, s.hook))


def empty_stages(dbg: Any, profile: Profile) -> frozenset[str]:
    """Table stages with no rule (absent, or present with none): the diagram dims them."""
    tables = getattr(dbg.box.ruleset, "tables", {})
    out = set()
    for s in profile.stages():
        if s.kind != "table":
            continue
        chain = tables[s.table].chains.get(s.hook) if s.table in tables else None
        if chain is None or not chain.present or not chain.rules:
            out.add(s.id)
    return frozenset(out)


# the side notes of the seed diagram, by the targets that earn them
NOTE_TARGETS = {"MARK": "MARK WRITE", "CONNMARK": "MARK WRITE", "DNAT": "DEST REWRITE",
                "REDIRECT": "DEST REWRITE", "SNAT": "SOURCE REWRITE",
                "MASQUERADE": "SOURCE REWRITE"}


def side_notes(dbg: Any, profile: Profile) -> dict[str, str]:
    """Stage id -> what its rules (or the user chains they reach) rewrite, as the seed
    diagram notes it beside the table: MARK WRITE, DEST REWRITE, SOURCE REWRITE."""
    from kptui.engine.iptables.targets import ChainTarget

    tables = getattr(dbg.box.ruleset, "tables", {})
    out: dict[str, str] = {}
    for stage in profile.stages():
        table = tables.get(stage.table) if stage.kind == "table" else None
        if table is None or stage.hook not in table.chains:
            continue
        found: list[str] = []
        todo, seen = [stage.hook], set()
        while todo:
            name = todo.pop()
            chain = table.chains.get(name)
            if name in seen or chain is None:
                continue
            seen.add(name)
            for rule in chain.rules:
                target = rule.target
                if isinstance(target, ChainTarget):
                    todo.append(target.chain)
                note = NOTE_TARGETS.get(getattr(target, "name", ""))
                if note and note not in found:
                    found.append(note)
        if found:
            out[stage.id] = ", ".join(found)
    return out


def diagram_state(dbg: Any, profile: Profile, absent: frozenset[str]) -> DiagramState:
    events = dbg.walk_events
    visited = {ev.stage for ev in events if ev.stage}
    cur = dbg.current
    current = cur.stage if cur is not None and not isinstance(cur, Fate) else ""
    fate_stage = fate_action = ""
    if isinstance(cur, Fate):
        fate_stage, fate_action = cur.stage, cur.action
        if cur.stage:
            visited.add(cur.stage)
    passed: set[str] = set()
    seen: set[str] = set()
    for path, _hook, _blurb in PATHS:
        ids = [s.id for s in getattr(profile, path) if s.id not in seen]
        seen.update(ids)
        reached = [i for i, sid in enumerate(ids) if sid in visited]
        if reached:
            passed.update(ids[:max(reached)])
    start = events[0] if events else None
    hooked = {s.id for s in profile.stages() if s.kind in HOOK_KINDS}
    last_in_hook = next((ev.stage for ev in reversed(events) if ev.stage in hooked), "")
    return DiagramState(current=current, visited=frozenset(visited),
                        passed=frozenset(passed - visited),
                        breakpoints=stage_breakpoints(dbg, profile), fate_stage=fate_stage,
                        fate_action=fate_action, absent=absent,
                        from_wire=isinstance(start, WalkStart) and start.origin != "local",
                        walking=isinstance(start, WalkStart), last_in_hook=last_in_hook)


def chain_in_focus(events: list[Event]) -> tuple[tuple[str, str] | None, dict, int, bool]:
    """(table, chain) being traversed (or the last one), its marks, current rule, policy hit."""
    stack: list[tuple[str, str]] = []
    marks: dict[tuple[str, str], dict[int, bool]] = {}
    last: tuple[str, str] | None = None
    policy_hit: set[tuple[str, str]] = set()
    for ev in events:
        if isinstance(ev, ChainEnter):
            key = (ev.table, ev.chain)
            stack.append(key)
            marks[key] = {}
            policy_hit.discard(key)
            last = key
        elif isinstance(ev, RuleEval):
            key = (ev.table, ev.chain)
            marks.setdefault(key, {})[ev.rule] = ev.matched
            last = key
        elif isinstance(ev, ChainReturn):
            if stack:
                stack.pop()
            last = stack[-1] if stack else (ev.table, ev.chain)
        elif isinstance(ev, PolicyApplied):
            last = (ev.table, ev.chain)
            policy_hit.add(last)
        elif isinstance(ev, StageLeave):
            stack.clear()
    current = 0
    cur = events[-1] if events else None
    if isinstance(cur, (RuleEval, TargetApplied)) and last == (cur.table, cur.chain):
        current = cur.rule
    if last is None:
        return None, {}, 0, False
    return last, marks.get(last, {}), current, last in policy_hit


def chain_entered_in_stage(events: list[Event]) -> bool:
    """Whether a chain was entered since the current stage began (back to its StageEnter:
    a stage's events only, not the walk's)."""
    for ev in reversed(events):
        if isinstance(ev, ChainEnter):
            return True
        if isinstance(ev, StageEnter):
            return False
    return False


def chain_view(dbg: Any, table: str, chain: str, marks: dict[int, bool] | None = None,
               current: int = 0, policy_applied: bool = False) -> ChainView:
    tbl = dbg.box.ruleset.tables.get(table)
    if tbl is None and table == "ipchains":  # the ipchains profile's chains (engine.ipchains)
        tbl = getattr(dbg.box, "ipchains", None)
    ch = tbl.chains.get(chain) if tbl is not None else None
    if ch is None or not getattr(ch, "present", True):
        return ChainView(table=table, chain="", note=f"{table} {chain}: no such chain in this "
                         "box, so packets pass this stage without being checked.")
    rule_bps = set()
    for bp in dbg.breakpoints.values():
        if bp.kind == "rule" and bp.enabled:
            t, c, n = bp.where.split(":")
            number = scan_uint(n)  # the engine wrote it; a non-number marks no rule
            if (t, c) == (table, chain) and number is not None:
                rule_bps.add(number)
    return ChainView(table=table, chain=chain, rules=ch.rules,
                     policy=ch.policy if ch.builtin else "", marks=dict(marks or {}),
                     current=current, policy_applied=policy_applied,
                     breakpoints=frozenset(rule_bps))


def field_changes(events: list[Event]) -> tuple[dict[str, Any], set[str]]:
    """{path: value at arrival} for fields changed in this walk; paths the last event set."""
    original: dict[str, Any] = {}
    for ev in events:
        if isinstance(ev, (FieldChange, UserEdit)):
            original.setdefault(ev.path, ev.old)
    latest: set[str] = set()
    cur = events[-1] if events else None
    if isinstance(cur, (FieldChange, UserEdit)):
        latest.add(cur.path)
    return original, latest


def route_text(dbg: Any) -> str:
    """The last routing decision of this walk, with its explanation, and the main table."""
    decision = next((ev for ev in reversed(dbg.walk_events) if isinstance(ev, RouteDecision)),
                    None)
    lines: list[str] = []
    if decision is None:
        lines.append("No routing decision yet for this packet.")
    else:
        lines.append(decision.describe())
        if decision.oif:
            via = f" via {decision.gateway}" if decision.gateway else ""
            lines.append(f"out: {decision.oif}{via}" + (f", source {decision.src}"
                                                        if decision.src else ""))
        lines.extend(f"  {line}" for line in decision.explain)
    try:
        routes = dbg.box.show_routes("main")
    except Exception:  # noqa: BLE001 - an engine without this helper: leave it out
        routes = []
    if routes:
        lines.append("")
        lines.append("ip route show table main:")
        lines.extend(f"  {r}" for r in routes)
    return "\n".join(lines)


def conntrack_text(dbg: Any) -> str:
    table = getattr(dbg.box, "conntrack", None)
    if table is None or not hasattr(table, "list_lines"):
        return ("connection tracking off: this version of kptui does not model the "
                "conntrack table yet.")
    lines = list(table.list_lines())
    if not lines:
        return "conntrack table: no entries yet."
    return "\n".join(["conntrack -L:", *lines])


def log_entries(events: list[Event], cache: list[LogEntry], valid: int) -> list[LogEntry]:
    """``cache`` (changed in place) made the log lines of ``events``: its first ``valid``
    lines are known to be right, only the rest is made again (a step costs its new
    lines, not the session's)."""
    del cache[valid:]
    packet = cache[-1].packet if cache else 0
    start = _walk_start(events, len(cache))
    for number in range(len(cache), len(events)):
        ev = events[number]
        if ev.kind == "walk_start":
            packet, start = ev.index, number
        text = fate_text(events[start:number], ev) if isinstance(ev, Fate) else ev.describe()
        cache.append(LogEntry(packet, number, ev.kind, text))
    return cache


def _walk_start(events: list[Event], before: int) -> int:
    """Where the walk that event ``before`` belongs to began."""
    for number in range(min(before, len(events)) - 1, -1, -1):
        if events[number].kind == "walk_start":
            return number
    return 0


def fate_text(walk: list[Event], fate: Fate) -> str:
    """A fate for people: its kernel-trace ``by`` and, when another verdict decided it
    (the filter rule that let a packet through), that one too."""
    decided = deciding_verdict(walk, fate)
    text = fate.describe()
    if decided and decided != fate.by:
        text += f"; accepted by {decided}"
    return text
