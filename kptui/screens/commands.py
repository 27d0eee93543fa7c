"""The command palette's provider: every debugger command, in context.

Besides the stepping commands it offers one "Breakpoint: toggle at <stage>"
per box of the diagram, "Breakpoint: delete" per breakpoint set, and
"Edit field: <path>" per editable field of the packet in flight. Each command
runs through ``guard.safe``: an error in it is a message, never the end of the app.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from kptui.engine.packet import FIELDS
from kptui.engine.profile import KNOWN_PROFILES
from kptui.screens.debugger import DebuggerScreen
from kptui.screens.guard import safe
from kptui.screens.profile_switch import switch_profile
from kptui.widgets.packet_tree import packet_paths

Command = tuple[str, Callable[[], object], str]


def commands(screen: DebuggerScreen) -> Iterator[Command]:
    """(title, callback, help) for everything the user can do on this screen."""
    mv = screen.action_move
    yield "Step in (F11, s)", partial(mv, "step"), "the next event"
    yield "Step over (F10, n)", partial(mv, "step_over"), "finish the chain or stage"
    yield "Step out (Shift+F11, o)", partial(mv, "step_out"), "finish the netfilter hook"
    yield "Continue (F5, c)", partial(mv, "cont"), "to the next breakpoint or the fate"
    yield "Run to fate (r)", partial(mv, "run_to_fate"), "finish this packet"
    yield "Next packet (N)", partial(mv, "next_packet"), "finish or start the next packet"
    yield "Step back / undo (u, p)", partial(mv, "step_back"), "one event back"
    yield "Reverse continue (P)", partial(mv, "reverse_cont"), "back to the previous hit"
    yield "Breakpoint: toggle here (F9, b)", screen.action_toggle_breakpoint, \
        "on the selected box or rule"
    yield "Breakpoint: add… (a)", screen.action_add_breakpoint, "type a breakpoint spec"
    yield "Edit field… (e)", screen.action_edit, "change a header field mid-flight"
    yield "Inject packet… (i)", screen.action_inject, "compose a packet and queue it"
    yield "Send reply (y)", screen.action_send_reply, "queue the server's reply to this packet"
    yield "Filter log (/)", screen.action_filter_log, "keep the log lines with these words"
    yield "Session: save (Ctrl+S)", screen.action_save_session, "to a msgpack file"
    yield "Show help (?)", screen.app.action_help, "keys and a short guide"
    for tab, key in (("rules", 1), ("route", 2), ("conntrack", 3), ("log", 4),
                     ("breakpoints", 5)):
        yield f"Show panel: {tab} ({key})", partial(screen.action_show_tab, tab), ""
    for name in KNOWN_PROFILES:
        if name != screen.profile.name:
            yield (f"Profile: {name}", partial(switch_profile, screen, name),
                   "rebuild the scenario under this profile and redraw the diagram")
    for stage in screen.profile.stages():
        yield (f"Breakpoint: toggle at {stage.title}",
               partial(screen.toggle_spec, f"stage {stage.id}", stage=stage),
               f"stage {stage.id}")
    for bp in screen.debugger.breakpoints.values():
        yield (f"Breakpoint: delete {bp.id} ({bp.spec})",
               partial(screen.delete_breakpoint, bp.id), f"{bp.hits} hits")
    pkt = screen.debugger.packet
    if pkt is not None and screen.debugger.in_walk:
        for path in packet_paths(pkt):
            if FIELDS[path].editable:
                yield f"Edit field: {path}", partial(screen.action_edit, path), FIELDS[path].doc


class DebuggerCommands(Provider):
    """Commands of the debugger screen (nothing on other screens)."""

    def _screen(self) -> DebuggerScreen | None:
        screen = self.screen
        if getattr(screen, "replay_mode", False):
            return None  # a replay is read-only: its keys are in the footer and help
        return screen if isinstance(screen, DebuggerScreen) else None

    async def discover(self) -> Hits:
        screen = self._screen()
        if screen is None:
            return
        for title, callback, help_text in list(commands(screen))[:14]:
            yield DiscoveryHit(title, safe(screen, callback), help=help_text)

    async def search(self, query: str) -> Hits:
        screen = self._screen()
        if screen is None:
            return
        matcher = self.matcher(query)
        for title, callback, help_text in commands(screen):
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), safe(screen, callback), text=title,
                          help=help_text)
