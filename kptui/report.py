"""Text renderings of walk results: for people, for scripts (JSON), and TRACE lines.

A packet's answers (kptui.engine.run: REJECT's ICMP/RST, the kernel's ICMP
errors) follow it in every format: in the text, each answer walk after the
packet's fate, indented one level per answer depth; in the TRACE output under
a `# packet N answer M` header (the kernel traces an answer as a packet of its
own); in JSON as `answers` / `answer_walks` (PacketResult.to_json).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from kptui.engine import monitor
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


def as_trace(results: Iterable[PacketResult], *, ruleset: Any = None,
             profile: str = "modern") -> str:
    """TRACE lines: for the modern profile as `xtables-monitor --trace` prints them
    (kptui.engine.monitor, given the box's ruleset for the rule handles); for the
    classic profiles the legacy TRACE target's `table:chain:rule:N` lines."""
    if ruleset is not None and profile == "modern":
        return _as_monitor(results, ruleset)
    lines: list[str] = []
    for result in results:
        lines.append(f"# packet {result.index}")
        lines.extend(f"TRACE: {line}" for line in trace_lines(result.events))
        for number, answer in enumerate(result.all_answers()):
            lines.append(f"# packet {result.index} answer {number}: {answer.why}")
            lines.extend(f"TRACE: {line}" for line in trace_lines(answer.events))
    return "\n".join(lines) + "\n"


def _as_monitor(results: Iterable[PacketResult], ruleset: Any) -> str:
    handle_of = monitor.ruleset_handles(ruleset)
    lines: list[str] = []
    for result in results:
        for number, walked in enumerate((result, *result.all_answers())):
            headers = getattr(walked, "headers", None)
            if headers is None and walked.sent is None:  # never sent: nothing was traced
                continue
            if headers is None:
                headers = monitor.headers_by_replay(walked.sent, walked.events)
            lines.extend(monitor.monitor_lines(walked.events, headers, handle_of,
                                               monitor.trace_id(result.index, number)))
    return "".join(line + "\n" for line in lines)


def as_text(results: Iterable[PacketResult]) -> str:
    """The path, each decision and why, and the fate, indented by chain depth."""
    blocks = [_text_one(result) for result in results]
    return "\n".join(blocks)


def _text_one(result: PacketResult, prefix: str = "") -> str:
    lines: list[str] = []
    for event in result.events:
        line = _text_line(event)
        if line is not None:
            lines.extend(prefix + part for part in line.split("\n"))
    text = "\n".join(lines) + "\n"
    for answer in result.answers:
        kind = "copy" if getattr(answer.packet, "meta", None) and answer.packet.meta.tee \
            else "answer"  # -j TEE's copy of the packet, or an answer to it
        text += f"{prefix}  {kind} ({answer.why}):\n" + _text_one(answer, prefix + "    ")
    return text


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
