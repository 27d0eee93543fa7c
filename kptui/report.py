"""Text renderings of walk results: for people, for scripts (JSON), and TRACE lines."""

from __future__ import annotations

import json
from collections.abc import Iterable

from kptui.engine.events import (
    ChainEnter,
    Event,
    Fate,
    RouteDecision,
    RuleEval,
    StageEnter,
    StageLeave,
    WalkStart,
    trace_lines,
)
from kptui.engine.run import PacketResult


def as_json_lines(results: Iterable[PacketResult]) -> str:
    return "".join(json.dumps(r.to_json()) + "\n" for r in results)


def as_trace(results: Iterable[PacketResult]) -> str:
    lines: list[str] = []
    for result in results:
        lines.append(f"# packet {result.index}")
        lines.extend(f"TRACE: {line}" for line in trace_lines(result.events))
    return "\n".join(lines) + "\n"


def as_text(results: Iterable[PacketResult]) -> str:
    """The path, each decision and why, and the fate, indented by chain depth."""
    blocks = [_text_one(result) for result in results]
    return "\n".join(blocks)


def _text_one(result: PacketResult) -> str:
    lines: list[str] = []
    for event in result.events:
        line = _text_line(event)
        if line is not None:
            lines.append(line)
    return "\n".join(lines) + "\n"


def _text_line(event: Event) -> str | None:
    if isinstance(event, WalkStart):
        return event.describe()
    if isinstance(event, StageLeave):
        return None
    if isinstance(event, StageEnter):
        return f"  [{event.title}]"
    if isinstance(event, ChainEnter) and event.via == "hook":
        return None
    indent = "    " + "  " * max(event.depth - 1, 0)
    if isinstance(event, RuleEval) and not event.matched:
        return f"{indent}rule {event.rule}: no match ({event.reason})"
    if isinstance(event, RuleEval):
        return f"{indent}rule {event.rule}: MATCH  {event.text}"
    if isinstance(event, RouteDecision):
        text = indent + event.describe()
        return "\n".join([text, *(f"{indent}  {x}" for x in event.explain)])
    if isinstance(event, Fate):
        return f"  => {event.describe()}"
    return indent + event.describe()
