"""Replay mode: move along a recorded session's timeline, both ways, or jump.

The screen is the debugger screen's panels (diagram, packet, rules, route,
conntrack, breakpoints) over a read-only session: instead of stepping the
engine forward as a user action, every move *seeks* the debugger to a point of
the recorded timeline (``Debugger.seek``: re-execution from the nearest
checkpoint), so stepping back is as quick as stepping forward, and nothing is
journaled. Moves run in the engine worker like the debugger's commands.
"""

from __future__ import annotations

import bisect
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Input, Static, TabbedContent, TabPane

from kptui.engine.events import Event, Fate, WalkStart
from kptui.engine.numbers import NumberError, parse_uint
from kptui.screens.debugger import DebuggerScreen
from kptui.screens.dialogs import JumpScreen
from kptui.screens.guard import guarded
from kptui.screens.view import fate_text
from kptui.widgets import PacketDiagram, PacketTree, RuleList, Timeline, TraceLog
from kptui.widgets.tracelog import LogEntry

REPLAY_TABS = ("timeline", "rules", "route", "conntrack", "breakpoints")


def timeline_entries(events: list[Event]) -> list[LogEntry]:
    out: list[LogEntry] = []
    packet = start = 0
    for number, ev in enumerate(events):
        if isinstance(ev, WalkStart):
            packet, start = ev.index, number
        text = fate_text(events[start:number], ev) if isinstance(ev, Fate) else ev.describe()
        out.append(LogEntry(packet, number, ev.kind, text))
    return out


class ReplayScreen(DebuggerScreen, inherit_bindings=False):
    """A recorded session, replayed: step forward/back, next/previous packet, jump."""

    replay_mode = True

    BINDINGS = [
        Binding("f11,s,right", "forward(1)", "step", key_display="s/→", id="replay.forward",
                tooltip="Replay the next event"),
        Binding("u,p,left", "forward(-1)", "back", key_display="u/←", id="replay.back",
                tooltip="Go back one event"),
        Binding("N,close_square_bracket", "packet(1)", "next packet", key_display="N/]",
                id="replay.next-packet", tooltip="Go to the start of the next packet"),
        Binding("P,open_square_bracket", "packet(-1)", "prev packet", key_display="P/[",
                id="replay.previous-packet",
                tooltip="Go to the start of this packet, or of the previous one"),
        Binding("g", "jump", "jump", id="replay.jump",
                tooltip="Jump to an event number, or to a packet (p3)"),
        Binding("home", "goto(0)", "start", show=False, id="replay.start", priority=True,
                tooltip="Back to before the first event"),
        Binding("end", "goto(-1)", "end", show=False, id="replay.end", priority=True,
                tooltip="To the last recorded event"),
        Binding("t", "focus_timeline", "timeline", show=False, id="replay.timeline",
                tooltip="Move the focus to the timeline (Enter there jumps)"),
        Binding("d", "focus_diagram", "diagram", show=False, id="replay.diagram",
                tooltip="Move the focus to the diagram"),
        *(Binding(str(n), f"show_tab('{tab}')", tab, show=False, id=f"replay.tab-{tab}",
                  tooltip=f"Show the {tab} panel")
          for n, tab in enumerate(REPLAY_TABS, 1)),
    ]

    def __init__(self, debugger: Any, timeline: list[Event], *, scenario: Any = None,
                 name: str = "", divergence: str = "", session_path: str = "",
                 start: int = 0) -> None:
        super().__init__(debugger, scenario=scenario, name=name, session_path=session_path)
        self.timeline = list(timeline)
        self.divergence = divergence
        self.starts = [i for i, ev in enumerate(self.timeline) if isinstance(ev, WalkStart)]
        # packet number -> where `p N` jumps (made once, not per jump; an answer walk has
        # its packet's number, and the last walk of a number is the one kept, as before)
        self.packet_starts = {self.timeline[s].index: s for s in self.starts}
        self.start_position = max(0, min(start, len(self.timeline)))

    def compose(self) -> ComposeResult:
        yield Static("", id="status")
        yield PacketDiagram(self.profile, id="diagram")
        with Horizontal(id="panels"):
            yield PacketTree(id="packet")
            with TabbedContent(id="tabs", initial="timeline"):
                with TabPane("Timeline", id="timeline"):
                    yield Timeline(timeline_entries(self.timeline), id="timeline-list")
                with TabPane("Rules", id="rules"):
                    yield Static("", id="rules-title")
                    yield RuleList(id="rule-list")
                with TabPane("Route", id="route"):
                    with VerticalScroll():
                        yield Static("", id="route-text")
                with TabPane("Conntrack", id="conntrack"):
                    with VerticalScroll():
                        yield Static("", id="conntrack-text")
                with TabPane("Breaks", id="breakpoints"):
                    with VerticalScroll():
                        yield Static("", id="breakpoints-text")
                # the debugger screen's log widgets, kept hidden so its code finds them
                with TabPane("Log", id="log", disabled=True):
                    yield Input(id="log-filter")
                    yield TraceLog(id="trace-log")
        yield Footer()

    def on_mount(self, event: Any) -> None:
        # Textual calls every class's on_mount along the MRO: run the debugger screen's
        # here, first, and stop it from running again after this one
        event.prevent_default()
        self.query_one(TabbedContent).hide_tab("log")
        super().on_mount()
        if self.divergence:
            self.notify(f"this session diverges from the recording: {self.divergence}",
                        severity="warning", timeout=10)
        if len(self.debugger.events) != self.start_position:
            self._seek(self.start_position)
        else:
            self._moved()
        self.query_one(Timeline).focus()

    # -- moving --------------------------------------------------------------------

    @property
    def position(self) -> int:
        return len(self.debugger.events)

    def _seek(self, position: int) -> None:
        position = max(0, min(position, len(self.timeline)))
        self.run_engine("seek", lambda: self.debugger.seek(position, self.timeline))

    def action_forward(self, delta: int) -> None:
        self._seek(self.position + delta)

    def action_goto(self, position: int) -> None:
        self._seek(len(self.timeline) if position < 0 else position)

    def action_packet(self, delta: int) -> None:
        """Next: the next packet's WalkStart. Previous: this packet's start, or when
        already there, the previous packet's."""
        here = self.position - 1
        if delta > 0:
            at = bisect.bisect_right(self.starts, here)  # the first start after here
            target = self.starts[at] if at < len(self.starts) else len(self.timeline) - 1
        else:
            at = bisect.bisect_left(self.starts, here)  # the starts before here end at it
            target = self.starts[at - 1] if at else -1
        self._seek(target + 1)

    def jump_to(self, text: str) -> str | None:
        """`42` (or `#42`): just after event 42; `p3`: packet 3's start. The reason when
        refused: decimal ASCII digits only (``١٢`` or ``8²`` are no number here)."""
        text = text.strip().lower()
        packet = text.startswith("p")
        digits = text[1:].strip() if packet else text.removeprefix("#")
        try:
            number = parse_uint(digits, what="packet number" if packet else "event number")
        except NumberError as err:
            return f"{err}: type an event number (like 42) or p and a packet number (like p3)"
        if packet:
            starts = self.packet_starts
            if number not in starts:
                return (f"no packet {number} in this session (packets: "
                        f"{', '.join(str(p) for p in sorted(starts)) or 'none'})")
            self._seek(starts[number] + 1)
            return None
        if not 0 <= number < len(self.timeline):
            return f"events are numbered 0 to {len(self.timeline) - 1}"
        self._seek(number + 1)
        return None

    def action_jump(self) -> None:
        if not self.busy:
            hint = f"{len(self.timeline)} events, {len(self.starts)} packets"
            self.app.push_screen(JumpScreen(self.jump_to, hint))

    @on(Timeline.Jump)
    @guarded
    def timeline_jump(self, message: Timeline.Jump) -> None:
        self._seek(message.number + 1)

    def action_focus_timeline(self) -> None:
        self.action_show_tab("timeline")
        self.query_one(Timeline).focus()

    @guarded
    def on_command_done(self, message: Any) -> None:
        message.prevent_default()  # the debugger screen's handler runs here, once
        super().on_command_done(message)
        if not message.error:
            self._moved()

    def _moved(self) -> None:
        self.query_one(Timeline).set_position(self.position)
        cur = self.debugger.current
        if cur is not None and cur.stage:
            self.query_one(PacketDiagram).select_stage(cur.stage)
        self.refresh_view()

    # -- read-only --------------------------------------------------------------------

    def action_edit(self, path: str = "") -> None:
        self.notify("a replay is read-only: open the session with `kptui FILE` to debug "
                    "from where it was saved", severity="warning", timeout=4)

    def status_text(self) -> str:
        if self.busy:
            return "replaying…"
        total = len(self.timeline)
        cur = self.debugger.current
        where = f"replay {self.position}/{total}"
        if self.divergence:
            where += " (diverges!)"
        if cur is None:
            return f"{where}: {self.scenario_name}, before the first packet. s/→ steps, " \
                   "g jumps, ? for help."
        text = fate_text(self.debugger.walk_events, cur) if isinstance(cur, Fate) \
            else cur.describe()
        return f"{where} · packet {self.debugger.index}: {text}"

    def view_state(self) -> dict[str, str]:
        state = super().view_state()
        state["mode"] = "replay"
        return state
