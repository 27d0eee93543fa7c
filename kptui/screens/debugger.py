"""The debugger screen: status line, diagram, packet tree and panels, footer.

The screen owns the stepping keys. Every engine command runs in a thread
worker (a reverse step re-executes the whole session, which takes a while
with a big ruleset) and reports back with a ``CommandDone`` message; while
one runs, further commands are refused rather than queued, and the panels
are only redrawn from engine state on the UI thread once it is done.

No error ends the app: the engine's own (KptuiError) is shown as its message,
anything else as an internal error (logged with its traceback) by
``kptui.screens.guard``, for keys (``KptApp.run_action``), dialogs, the
palette, the message handlers here (``@guarded``) and the engine worker.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.reactive import var
from textual.screen import Screen
from textual.widgets import Footer, Input, Static, TabbedContent, TabPane

from kptui.engine.errors import KptuiError
from kptui.engine.events import Fate, RuleEval, TargetApplied, WalkStart
from kptui.engine.profile import Stage, get_profile
from kptui.screens import view
from kptui.screens.dialogs import (
    BreakpointScreen,
    ComposeScreen,
    EditFieldScreen,
    SaveSessionScreen,
)
from kptui.screens.guard import error_message, guarded
from kptui.widgets import PacketDiagram, PacketTree, RuleList, TraceLog, breaklist
from kptui.widgets.breaklist import BreakList
from kptui.widgets.diagram import WIDE_MIN_WIDTH
from kptui.widgets.qos import QosPanel, has_tc, qos_text
from kptui.widgets.tracelog import LogEntry

WIDE_MIN_HEIGHT = 34
# Texts whose widget has a fixed height in app.tcss: replacing them needs no layout pass
# (one costs more than a step: 15-25 ms at 80x24)
FIXED_HEIGHT = frozenset({"#status", "#rules-title"})
BUSY_NOTICE = 0.15  # seconds before the status line says a command is running
TABS = ("rules", "route", "conntrack", "log", "breakpoints")

# Commands that move through the walk: (debugger method, words for the status line).
MOVES = {
    "step": "step in",
    "step_over": "step over",
    "step_out": "step out",
    "cont": "continue",
    "run_to_fate": "run to fate",
    "next_packet": "next packet",
    "step_back": "step back",
    "reverse_cont": "reverse continue",
}


# the moves that go forward: at the last packet's fate there is nothing for them to do
FORWARD = frozenset({"step", "step_over", "step_out", "cont", "next_packet"})
# the panels their key also focuses, from anywhere: a list to act on with keys
FOCUS_ON_SHOW = frozenset({"breakpoints"})
# the widget a panel key focuses when the focus was in another panel (else the pane's
# first focusable widget): the log's list, not its filter box
PANE_FOCUS = {"rules": "#rule-list", "log": "#trace-log", "breakpoints": "#break-list"}
NO_BREAKPOINTS = ("No breakpoints. Press b on a diagram box or a rule, or a to type one "
                  "(e.g. stage nat:POSTROUTING).")
BREAKS_HELP = "↑↓ pick · x/Del deletes · Space on/off\n  id  hits  breakpoint"


class CommandDone(Message):
    """An engine command finished in the worker; ``stop`` is the debugger's Stop.

    ``exception`` (with its ``trace``): what the command raised, turned into ``error``
    on the UI thread, where it is logged."""

    def __init__(self, op: str, stop: Any, error: str, seconds: float,
                 exception: Exception | None = None, trace: str = "") -> None:
        super().__init__()
        self.op, self.stop, self.error, self.seconds = op, stop, error, seconds
        self.exception, self.trace = exception, trace


class DebuggerScreen(Screen[None]):
    """Step a packet through the box."""

    BINDINGS = [
        Binding("f5,c", "move('cont')", "continue", key_display="F5/c", id="continue",
                tooltip="Continue to the next breakpoint or the packet's fate (from a fate: "
                        "the next packet)"),
        Binding("f10,n", "move('step_over')", "over", key_display="F10/n", id="step-over",
                tooltip="Step over: finish the current chain, or the current stage"),
        Binding("f11,s", "move('step')", "step", key_display="F11/s", id="step-in",
                tooltip="Step in: the next event (a rule, a stage, a routing decision)"),
        Binding("shift+f11,f23,o", "move('step_out')", "out", key_display="⇧F11/o",
                show=False, id="step-out",
                tooltip="Step out: finish the current netfilter hook"),
        Binding("f9,b", "toggle_breakpoint", "break", key_display="F9/b",
                id="toggle-breakpoint",
                tooltip="Toggle a breakpoint on the selected box or rule (else the current "
                        "stage)"),
        Binding("e", "edit", "edit", id="edit-field",
                tooltip="Edit a field of the packet in flight"),
        Binding("r", "move('run_to_fate')", "run to fate", show=False, id="run-to-fate",
                tooltip="Run this packet to its fate (stops at breakpoints)"),
        Binding("N", "move('next_packet')", "next packet", show=False, id="next-packet",
                tooltip="Finish this packet, or start the next one"),
        Binding("u,p,ctrl+z", "move('step_back')", "back", show=False, id="step-back",
                tooltip="Step back one event (undoes an edit made there)"),
        Binding("P,shift+f5", "move('reverse_cont')", "reverse", show=False,
                id="reverse-continue", tooltip="Run back to the previous breakpoint hit"),
        Binding("a", "add_breakpoint", "add breakpoint", show=False, id="add-breakpoint",
                tooltip="Add a breakpoint by typing it (stage, hook, chain, rule, watch, if)"),
        Binding("i", "inject", "inject packet", show=False, id="inject-packet",
                tooltip="Compose a packet and queue it after the scenario's packets"),
        Binding("y", "send_reply", "send reply", show=False, id="send-reply",
                tooltip="Follow the connection: queue the server's reply to this packet"),
        Binding("slash", "filter_log", "filter log", show=False, id="filter-log",
                tooltip="Filter the trace log"),
        Binding("d", "focus_diagram", "diagram", show=False, id="focus-diagram",
                tooltip="Move the focus to the diagram"),
        Binding("w", "wrap", "wrap", show=False, id="wrap-lines",
                tooltip="Wrap long lines in the rules and the log (again: one line each, "
                        "←→ scrolls them)"),
        Binding("z", "zoom", "zoom", show=False, id="zoom-diagram",
                tooltip="Zoom the diagram: every table box and side note (z again: back)"),
        Binding("1", "show_tab('rules')", "rules", show=False, id="tab-rules",
                tooltip="Show the rules panel"),
        Binding("2", "show_tab('route')", "route", show=False, id="tab-route",
                tooltip="Show the routing panel"),
        Binding("3", "show_tab('conntrack')", "conntrack", show=False, id="tab-conntrack",
                tooltip="Show the conntrack panel"),
        Binding("4", "show_tab('log')", "log", show=False, id="tab-log",
                tooltip="Show the trace log"),
        Binding("5", "show_tab('breakpoints')", "breakpoints", show=False,
                id="tab-breakpoints", tooltip="Show the breakpoints"),
        Binding("6", "show_tab('qos')", "qos", show=False, id="tab-qos",
                tooltip="Show the QoS panel (a box with tc configuration)"),
        Binding("escape", "leave_filter", show=False, id="leave-filter",
                tooltip="Leave the log filter (it stays applied)"),
        Binding("ctrl+s", "save_session", "save", show=False, id="save-session",
                tooltip="Save the session (reopen it with kptui FILE, replay it with "
                        "kptui replay FILE)"),
    ]

    # A var, not a reactive: a repaint of the whole screen when a command starts cost a
    # frame before the step's own (tens of ms per step at 20k rules, see bench_tui.py).
    busy: var[bool] = var(False, init=False)

    def __init__(self, debugger: Any, *, scenario: Any = None, name: str = "",
                 view: dict[str, str] | None = None, session_path: str = "") -> None:
        super().__init__()
        self.initial_view = dict(view or {})
        self.session_path = session_path
        self.debugger = debugger
        self.scenario = scenario
        self.scenario_name = name or getattr(scenario, "name", "") or "scenario"
        self.profile = get_profile(debugger.profile)
        self.extra_packets: list[Any] = []
        self.last_stop: Any = getattr(debugger, "last_stop", None)  # a reopened session's
        self.last_op = ""
        self.pinned: tuple[str, str] | None = None  # a chain the user chose to look at
        self._log_cache: list[LogEntry] = []
        # how many of _log_cache's lines still match the debugger's events: the shortest
        # the events have been since the log was last brought up to date (a step back
        # shortens them, an edit or a different walk may then replace what follows)
        self._log_valid = 0
        self._absent: frozenset[str] = frozenset()
        self._empty: frozenset[str] = frozenset()  # table stages with no rule: dimmed
        self.zoomed = False  # z: the wide diagram whatever the screen's size
        self._texts: dict[str, str] = {}

    # -- layout ------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static("", id="status")
        yield PacketDiagram(self.profile, id="diagram")
        with Horizontal(id="panels"):
            yield PacketTree(id="packet")
            with TabbedContent(id="tabs", initial="rules"):
                with TabPane("Rules", id="rules"):
                    yield Static("", id="rules-title")
                    yield RuleList(id="rule-list")
                with TabPane("Route", id="route"):
                    with VerticalScroll():
                        yield Static("", id="route-text")
                with TabPane("Conntrack", id="conntrack"):
                    with VerticalScroll():
                        yield Static("", id="conntrack-text")
                with TabPane("Log", id="log"):
                    yield Input(placeholder="filter: words to keep (e.g. matched, nat, "
                                            "fate)", id="log-filter")
                    yield TraceLog(id="trace-log")
                with TabPane("Breaks", id="breakpoints"):
                    yield Static("", id="breakpoints-text")
                    yield BreakList(id="break-list")
                if has_tc(getattr(self.debugger, "box", None)):  # only a box with tc
                    with TabPane("QoS", id="qos"):
                        yield QosPanel(id="qos-panel")
        yield Footer()

    def on_mount(self) -> None:
        self._absent = view.absent_stages(self.debugger, self.profile)
        self._empty = view.empty_stages(self.debugger, self.profile)
        self.query_one(PacketDiagram).set_notes(view.side_notes(self.debugger, self.profile))
        self._apply_size(self.size.width, self.size.height)
        self.refresh_view()
        self.query_one(PacketDiagram).focus()
        for note in getattr(self.scenario, "notes", None) or []:  # as trace prints them
            self.notify(note, title="note", severity="warning", timeout=12)
        if self.initial_view:
            self.apply_view(self.initial_view)

    def on_resize(self, event: Any) -> None:
        self._apply_size(event.size.width, event.size.height)

    def _apply_size(self, width: int, height: int) -> None:
        wide = width >= WIDE_MIN_WIDTH and height >= WIDE_MIN_HEIGHT
        self.set_class(wide, "-wide")
        diagram = self.query_one(PacketDiagram)
        diagram.form = "wide" if wide or self.zoomed else "compact"
        extra = 1 if diagram.virtual_size.width > width else 0
        # zoomed on a small screen, the diagram takes what the status line and the
        # footer leave (it scrolls); the panels come back with z
        room = max(3, height - 4)
        diagram.styles.height = min(diagram.content_height + extra, room)

    def action_wrap(self) -> None:
        """w: long rule and log lines wrap, or (again) stay one line and scroll sideways."""
        rules, log = self.query_one(RuleList), self.query_one(TraceLog)
        rules.wrap = log.wrap = not rules.wrap
        self.notify("long lines wrap (w: one line each)" if rules.wrap else
                    "long lines: one line each, ←→ scrolls them (w: wrap)", timeout=3)

    def action_zoom(self) -> None:
        """z: the wide diagram (every table box, side notes) and back."""
        self.zoomed = not self.zoomed
        self._apply_size(self.size.width, self.size.height)
        diagram = self.query_one(PacketDiagram)
        diagram.select_stage(diagram.selected_stage.id)
        diagram.focus()

    # -- the view ------------------------------------------------------------------

    def refresh_view(self) -> None:
        """Redraw the panels from the debugger (UI thread, never while a command runs).

        Hidden tabs are left alone until shown (``on_tabbed_content_tab_activated``), and
        texts are only replaced when they changed: a layout pass per step would cost more
        than the step itself.
        """
        dbg = self.debugger
        self._log_valid = min(self._log_valid, len(dbg.events))
        events = dbg.walk_events
        self._set_text("#status", self.status_text())
        self.query_one(PacketDiagram).set_state(
            view.diagram_state(dbg, self.profile, self._empty))
        self._refresh_packet()
        self._refresh_tab(self.query_one(TabbedContent).active, events)

    def _refresh_tab(self, tab: str, events: list[Any] | None = None) -> None:
        dbg = self.debugger
        if tab == "rules":
            self._refresh_rules(dbg.walk_events if events is None else events)
        elif tab == "route":
            self._set_text("#route-text", view.route_text(dbg))
        elif tab == "conntrack":
            self._set_text("#conntrack-text", view.conntrack_text(dbg))
        elif tab == "log":
            valid = self._log_valid  # already no longer than the events (above)
            view.log_entries(dbg.events, self._log_cache, valid)
            self._log_valid = len(self._log_cache)
            self.query_one(TraceLog).set_entries(self._log_cache, valid)
        elif tab == "breakpoints":
            lists = self.query(BreakList)
            if lists:  # the replay screen shows the recorded ones as text (below)
                bps = list(dbg.breakpoints.values())
                lists.first().show(bps)
                lists.first().display = bool(bps)
                self._set_text("#breakpoints-text", BREAKS_HELP if bps else NO_BREAKPOINTS)
            else:
                self._set_text("#breakpoints-text", self.breakpoints_text())
        elif tab == "qos":
            self.query_one(QosPanel).show(qos_text(dbg.box, dbg.walk_events
                                                   if events is None else events))

    def _set_text(self, selector: str, text: str) -> None:
        widget = self.query_one(selector, Static)
        if self._texts.get(selector) != text:
            self._texts[selector] = text
            widget.update(text, layout=selector not in FIXED_HEIGHT)

    @on(TabbedContent.TabActivated)
    @guarded
    def tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id:
            self._refresh_tab(event.pane.id)

    def _refresh_packet(self) -> None:
        dbg = self.debugger
        tree = self.query_one(PacketTree)
        if dbg.packet is None:
            total = len(self._packets())
            tree.show_packet(None, title=f"no packet yet ({total} queued)", original={},
                             latest=set())
            return
        original, latest = view.field_changes(dbg.walk_events)
        where = "in flight" if dbg.in_walk else "at its fate"
        tree.show_packet(dbg.packet, title=f"packet {dbg.index} {where}", original=original,
                         latest=latest)

    def _refresh_rules(self, events: list[Any]) -> None:
        key, marks, current, policy = view.chain_in_focus(events)
        rules = self.query_one(RuleList)
        if self.pinned is not None:
            table, chain = self.pinned
            if key == self.pinned:
                rules.show(view.chain_view(self.debugger, table, chain, marks, current, policy))
            else:
                rules.show(view.chain_view(self.debugger, table, chain), follow=False)
        elif (stage_chain := self._stage_chain(key, events)) is not None:
            rules.show(view.chain_view(self.debugger, *stage_chain))
        elif key is not None:
            rules.show(view.chain_view(self.debugger, key[0], key[1], marks, current, policy))
        elif rules.view.chain:  # a new walk, no chain yet: the last one, without its marks
            old = rules.view
            rules.show(view.chain_view(self.debugger, old.table, old.chain), follow=False)
        else:
            rules.show(rules.view)
        title = rules.view.title if rules.view.chain else ""
        if self.pinned is not None and rules.view.chain:
            title += "  (selected in the diagram)"
        self._set_text("#rules-title", title)

    def _stage_chain(self, key: tuple[str, str] | None,
                     events: list[Any]) -> tuple[str, str] | None:
        """At a table stage whose chain was not entered yet: that stage's chain. Once
        entered, the chain in focus with its marks stays, to the end of the stage (the
        DNAT's field changes show the rule that did it, not the hook chain unmarked)."""
        cur = self.debugger.current
        if cur is None or not cur.stage or isinstance(cur, Fate):
            return None
        if key is not None and view.chain_entered_in_stage(events):
            return None
        try:
            stage = self.profile.stage(cur.stage)
        except KeyError:
            return None
        if stage.kind != "table" or (key is not None and key[0] == stage.table
                                     and cur.depth > 0):
            return None
        if key == (stage.table, stage.hook):
            return None
        return stage.table, stage.hook

    def _packets(self) -> list[Any]:
        packets = getattr(self.debugger, "packets", None)
        if packets is not None:
            return list(packets)
        if self.scenario is not None:
            return [*self.scenario.packets, *self.extra_packets]
        return list(getattr(self.debugger, "_packets", []))

    def status_text(self) -> str:
        dbg, stop = self.debugger, self.last_stop
        total = len(self._packets())
        if self.busy:
            return f"running {MOVES.get(self.last_op, self.last_op)}…"
        cur = dbg.current
        if cur is None:
            return (f"{self.scenario_name}: paused before packet 0 of {total}. "
                    "Press s (F11) to step in, c (F5) to continue, ? for help.")
        prefix = ""
        if stop is not None and stop.breakpoint is not None and stop.event is cur:
            bp = stop.breakpoint
            prefix = f"● {'watchpoint' if bp.kind == 'watch' else 'breakpoint'} {bp.id} " \
                     f"({bp.spec}) hit: "
        elif isinstance(cur, Fate):
            prefix = "fate: "
            if dbg.state == "finished":
                prefix = f"fate (last of {total} packets): "
        elif stop is not None and stop.reason == "end":
            prefix = "back at the start: "
        depth, why = dbg.walk_info.get(dbg.walk_start, (0, ""))
        if depth:  # the box's answer to the packet (REJECT, an ICMP error), walked after it
            head = f"packet {dbg.index}'s answer"
            if isinstance(cur, WalkStart):
                return f"{head} ({why}) starts: {prefix}{cur.packet}"
            return f"{head}: {prefix}{cur.describe()}"
        if isinstance(cur, WalkStart):  # it says which packet it is itself
            return f"{prefix}{cur.describe()}"
        text = view.fate_text(dbg.walk_events, cur) if isinstance(cur, Fate) \
            else cur.describe()
        return f"packet {dbg.index}: {prefix}{text}"

    def breakpoints_text(self) -> str:
        """The breakpoints as text (the replay screen's panel: a recording, not to edit)."""
        bps = list(self.debugger.breakpoints.values())
        if not bps:
            return NO_BREAKPOINTS
        return "\n".join(["  id  hits  breakpoint", *(breaklist.line(bp) for bp in bps)])

    @on(BreakList.Delete)
    @guarded
    def break_deleted(self, event: BreakList.Delete) -> None:
        self.delete_breakpoint(event.bp_id)

    @on(BreakList.Toggle)
    @guarded
    def break_toggled(self, event: BreakList.Toggle) -> None:
        if self.busy or event.bp_id not in self.debugger.breakpoints:
            return
        bp = self.debugger.breakpoints[event.bp_id]
        self.debugger.enable(bp.id, not bp.enabled)
        self.notify(f"breakpoint {bp.id} {'enabled' if bp.enabled else 'disabled'}: "
                    f"{bp.spec}", timeout=3)
        self.refresh_view()

    # -- engine commands ------------------------------------------------------------

    def watch_busy(self, busy: bool) -> None:
        """A command that is not done within ``BUSY_NOTICE`` seconds says it is running;
        a quick one (nearly all steps) paints once, with its result: no flicker."""
        if busy:
            self.set_timer(BUSY_NOTICE, self._busy_notice, name="busy-notice")

    def _busy_notice(self) -> None:
        if self.busy:
            self._set_text("#status", self.status_text())

    def action_move(self, op: str) -> None:
        self.run_engine(op, getattr(self.debugger, op))

    def run_engine(self, op: str, call: Callable[[], Any]) -> bool:
        if self.busy:
            self.notify("still working on the last command", severity="warning", timeout=2)
            return False
        self.busy = True
        self.last_op = op
        self._engine_worker(op, call)
        return True

    @work(thread=True, group="engine", exit_on_error=False)
    def _engine_worker(self, op: str, call: Callable[[], Any]) -> None:
        start = time.perf_counter()
        stop, exception, trace = None, None, ""
        try:
            stop = call()
        except Exception as err:  # noqa: BLE001 - reported on the UI thread (on_command_done)
            exception, trace = err, traceback.format_exc()
        self.post_message(CommandDone(op, stop, "", time.perf_counter() - start,
                                      exception, trace))

    @guarded
    def on_command_done(self, message: CommandDone) -> None:
        self.busy = False
        if message.exception is not None and not message.error:
            message.error = error_message(self, message.exception, trace=message.trace)
        if message.error:
            self.notify(message.error, severity="error", title=MOVES.get(message.op,
                                                                          message.op))
        elif message.op in MOVES:
            self.last_stop = message.stop
            self.pinned = None
            if message.op in FORWARD and message.stop is not None \
                    and message.stop.reason == "end" and self.debugger.state == "finished":
                total = len(self._packets())
                self.notify(f"no more packets: that was the last of {total}. u steps back, "
                            "i injects a packet, y queues the reply to this one",
                            severity="warning", timeout=5)
            cur = self.debugger.current
            if cur is not None and cur.stage:
                self.query_one(PacketDiagram).select_stage(cur.stage)
        self.refresh_view()

    # -- breakpoints -------------------------------------------------------------------

    def toggle_spec(self, spec: str, *, stage: Stage | None = None) -> None:
        """Add the breakpoint ``spec``, or remove it when it is already set."""
        if self.busy:
            self.notify("still working on the last command", severity="warning", timeout=2)
            return
        dbg = self.debugger
        normal = " ".join(spec.split())
        for bp in list(dbg.breakpoints.values()):
            if bp.spec == normal:
                dbg.remove(bp.id)
                self.notify(f"breakpoint {bp.id} removed: {normal}", timeout=3)
                self.refresh_view()
                return
        try:
            bp = dbg.add_breakpoint(spec)
        except KptuiError as err:
            self.notify(str(err), severity="error")
            return
        self.notify(f"breakpoint {bp.id} set: {bp.spec}" + self._never_hit(stage), timeout=4)
        self.refresh_view()

    def _never_hit(self, stage: Stage | None) -> str:
        if stage is None or stage.kind != "table":
            return ""
        if stage.id in self._absent:
            return (f" (note: this box has no {stage.title} chain, so packets pass it "
                    "without stopping)")
        if stage.table == "nat":
            from kptui.engine.walk import uses_conntrack

            if not uses_conntrack(self.debugger.box.ruleset):
                return (" (note: no rule uses connection tracking, so the kernel never runs "
                        "the nat chains here)")
        return ""

    def action_toggle_breakpoint(self) -> None:
        focused = self.focused
        if isinstance(focused, PacketDiagram):
            self.toggle_spec(focused.selected_spec, stage=focused.selected_stage)
            return
        if isinstance(focused, RuleList) and focused.cursor_rule is not None:
            table, chain, n = focused.cursor_rule
            self.toggle_spec(f"rule {table}:{chain}:{n}")
            return
        cur = self.debugger.current
        if isinstance(cur, (RuleEval, TargetApplied)):
            self.toggle_spec(f"rule {cur.table}:{cur.chain}:{cur.rule}")
        elif cur is not None and cur.stage:
            self.toggle_spec(f"stage {cur.stage}", stage=self.profile.stage(cur.stage))
        else:
            stage = self.query_one(PacketDiagram).selected_stage
            self.toggle_spec(f"stage {stage.id}", stage=stage)

    def action_add_breakpoint(self, initial: str = "") -> None:
        def apply(spec: str) -> str | None:
            if not spec:
                return "type a breakpoint, e.g. stage nat:POSTROUTING"
            try:
                bp = self.debugger.add_breakpoint(spec)
            except KptuiError as err:
                return str(err)
            stage = None
            if bp.kind == "stage":
                stage = self.profile.stage(bp.where)
            self.notify(f"breakpoint {bp.id} set: {bp.spec}" + self._never_hit(stage),
                        timeout=4)
            self.refresh_view()
            return None

        if not self.busy:
            self.app.push_screen(BreakpointScreen(apply, initial))

    def delete_breakpoint(self, bp_id: int) -> None:
        if not self.busy and bp_id in self.debugger.breakpoints:
            bp = self.debugger.remove(bp_id)
            self.notify(f"breakpoint {bp.id} removed: {bp.spec}", timeout=3)
            self.refresh_view()

    # -- editing ----------------------------------------------------------------------

    def apply_edit(self, path: str, text: str) -> str | None:
        """Edit the packet in flight; the engine's reason when it refuses (nothing changes)."""
        if self.busy:
            return "still working on the last command"
        try:
            stop = self.debugger.edit(path, text)
        except KptuiError as err:
            return str(err)
        self.last_stop = stop
        self.pinned = None
        self.refresh_view()
        return None

    def action_edit(self, path: str = "") -> None:
        """Edit a field of the packet in flight: ``path`` when the user picked it (the
        dialog starts in its value box), else the dialog starts in its field box."""
        if self.busy:
            return
        dbg = self.debugger
        if not dbg.in_walk:
            what = "its fate" if isinstance(dbg.current, Fate) else "no packet in flight yet"
            self.notify(f"nothing to edit ({what}): step (s) to start a packet first",
                        severity="warning", timeout=4)
            return
        chosen = bool(path)
        if not path:
            path = self.query_one(PacketTree).cursor_path or "ip.dst"
        self.app.push_screen(EditFieldScreen(path, dbg.packet, self.apply_edit,
                                             chosen=chosen))

    @on(PacketTree.NodeSelected)
    @guarded
    def tree_selected(self, event: PacketTree.NodeSelected) -> None:
        if event.node.data:
            self.action_edit(event.node.data)

    # -- composing packets ------------------------------------------------------------

    def compose_defaults(self) -> dict[str, str]:
        pkt = self.debugger.packet
        if pkt is None:
            first = self._packets()[0] if self._packets() else None
            pkt = first.build() if hasattr(first, "build") else first
        if pkt is None:
            return {"origin": "local", "proto": "tcp", "ttl": "64", "flags": "S"}
        out = {"origin": getattr(pkt.meta, "iif", "") or "local", "proto": pkt.proto_name,
               "src": str(pkt.ip.src), "dst": str(pkt.ip.dst), "ttl": "64"}
        if pkt.sport is not None:
            out.update(sport=str(pkt.sport), dport=str(pkt.dport))
        if pkt.proto_name == "tcp":
            out["flags"] = "S"
        if pkt.proto_name == "icmp":
            out["icmp_type"] = str(pkt.get("icmp.type"))
        return out

    def apply_compose(self, values: dict[str, str]) -> str | None:
        """Queue the composed packet (a journaled action: sessions replay it)."""
        if self.busy:
            return "still working on the last command"
        try:
            index = self.debugger.inject(values)
        except KptuiError as err:
            return str(err)
        pkt = self.debugger.packets[index]
        self.extra_packets.append(pkt)
        self.refresh_view()
        self.notify(f"packet {index} queued: {pkt.summary()}", timeout=4)
        return None

    def action_send_reply(self) -> None:
        """Queue the reply to the packet at its fate (a journaled action)."""
        if self.busy:
            return
        try:
            index = self.debugger.send_reply()
        except KptuiError as err:
            self.notify(str(err), severity="warning", timeout=5)
            return
        self.refresh_view()
        self.notify(f"packet {index} queued: {self.debugger.packets[index].summary()}",
                    timeout=4)

    def action_inject(self) -> None:
        if not self.busy:
            self.app.push_screen(ComposeScreen(self.compose_defaults(), self.apply_compose))

    # -- panels --------------------------------------------------------------------------

    @on(PacketDiagram.BoxSelected)
    @guarded
    def box_selected(self, event: PacketDiagram.BoxSelected) -> None:
        stage = event.stage
        if stage.kind == "table":
            self.pinned = (stage.table, stage.hook)
            self._refresh_rules(self.debugger.walk_events)
            self.action_show_tab("rules")
        elif stage.kind == "routing":
            self.action_show_tab("route")
        elif stage.kind in ("conntrack", "confirm"):
            self.action_show_tab("conntrack")
        else:
            self.notify(f"{stage.title}: no rules here", timeout=3)

    def action_show_tab(self, tab: str) -> None:
        tabs = self.query_one(TabbedContent)
        if tab == "qos" and not self.query("#qos"):
            self.notify("No QoS panel: this box has no tc configuration (add tc lines to "
                        "its setup).", severity="warning")
            return
        focused = self.focused
        tabs.active = tab
        if focused is not None and (tabs in focused.ancestors or tab in FOCUS_ON_SHOW):
            # The focus was in the pane now hidden: left there, Textual would hand it to
            # the next widget of that pane (the log's filter box) and TabbedContent would
            # show that pane again, so the key would type into the filter. It goes to the
            # panel asked for instead (its first focusable widget), else to the diagram;
            # so does it for a panel of FOCUS_ON_SHOW, whatever had the focus.
            pane = tabs.get_pane(tab)
            main = PANE_FOCUS.get(tab)
            target = (pane.query_one(main) if main else
                      next((w for w in pane.query("*") if w.can_focus), None))
            self.set_focus(target if target is not None and target.display
                           else self.query_one(PacketDiagram))

    def action_leave_filter(self) -> None:
        """Escape in the log filter: back to the log, the filter kept (as less's `/`)."""
        if self.focused is self.query_one("#log-filter", Input):
            self.set_focus(self.query_one(TraceLog))

    def action_filter_log(self) -> None:
        self.action_show_tab("log")
        self.query_one("#log-filter", Input).focus()

    def action_focus_diagram(self) -> None:
        self.query_one(PacketDiagram).focus()

    @on(Input.Changed, "#log-filter")
    @guarded
    def log_filter_changed(self, event: Input.Changed) -> None:
        self.query_one(TraceLog).filter_text = event.value

    @on(Input.Submitted, "#log-filter")
    @guarded
    def log_filter_done(self, event: Input.Submitted) -> None:
        self.query_one(TraceLog).focus()

    # -- sessions ----------------------------------------------------------------------

    def view_state(self) -> dict[str, str]:
        """What a session keeps of the screen, to reopen it the same way."""
        focused = self.focused
        pinned = ":".join(self.pinned) if self.pinned else ""
        return {"mode": "debug", "tab": str(self.query_one(TabbedContent).active or ""),
                "pinned": pinned, "stage": self.query_one(PacketDiagram).selected_stage.id,
                "log_filter": self.query_one("#log-filter", Input).value,
                "focus": (focused.id or "") if focused is not None else ""}

    def apply_view(self, view: dict[str, str]) -> None:
        """Put the panels back as ``view_state`` recorded them (unknown values are left)."""
        stage = view.get("stage", "")
        if stage and any(s.id == stage for s in self.profile.stages()):
            self.query_one(PacketDiagram).select_stage(stage)
        if view.get("log_filter"):
            self.query_one("#log-filter", Input).value = view["log_filter"]
            self.query_one(TraceLog).filter_text = view["log_filter"]
        pinned = view.get("pinned", "")
        if pinned.count(":") == 1:
            table, chain = pinned.split(":")
            self.pinned = (table, chain)
        tab = view.get("tab", "")
        if tab in TABS or (tab == "qos" and self.query("#qos-panel")):
            self.action_show_tab(tab)
        self.refresh_view()
        focus = view.get("focus", "")
        if focus:
            for widget in self.query(f"#{focus}") if focus.replace("-", "").isalnum() else []:
                if widget.focusable:
                    widget.focus()
                break

    def default_session_path(self) -> str:
        if self.session_path:
            return self.session_path
        stem = self.scenario_name if self.scenario_name else "session"
        stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in stem).strip("-.")
        return f"{stem or 'session'}.kpt"

    def save_session(self, path: str) -> str | None:
        """Save to ``path``; the reason when it cannot (nothing is changed then)."""
        from kptui.sessions.format import save
        from kptui.sessions.replay import record

        if self.scenario is None or not getattr(self.scenario, "text", None):
            return "this session has no scenario text to save (opened without a scenario)"
        if getattr(self.scenario, "packets_from", ""):  # --pcap: not in the scenario text
            return (f"unsupported yet: saving a session whose packets come from "
                    f"{self.scenario.packets_from} (a session keeps the scenario text, which "
                    "does not hold them)")
        if self.busy:
            return "still working on the last command"
        try:
            session = record(self.debugger, self.scenario.text, self.scenario.file,
                             view=self.view_state())
            save(session, path)
        except KptuiError as err:
            return str(err)
        self.session_path = path
        self.notify(f"session saved: {path} ({len(self.debugger.events)} events)", timeout=4)
        return None

    def action_save_session(self) -> None:
        if not self.busy:
            self.app.push_screen(SaveSessionScreen(self.default_session_path(),
                                                   self.save_session))
