"""The Textual app: global keys, theme, palette provider and the first screen.

``KptApp`` takes its simulator from outside (``debugger=``), so tests hand it
a prepared one; given only a scenario (or scenario text), it builds the box in
a thread worker behind a loading screen, so a 20,000-rule ruleset never
freezes the terminal. A load error ends the app with the error as its result,
for the CLI to print as one line.

Once the debugger is up, nothing the user does ends the app (only the quit
key): every key and click action runs through ``run_action`` below, which
turns an exception into a message on screen (``kptui.screens.guard``).
"""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import App
from textual.await_complete import AwaitComplete
from textual.binding import Binding
from textual.worker import WorkerFailed

from kptui import heap
from kptui.engine.errors import KptuiError
from kptui.screens.commands import DebuggerCommands
from kptui.screens.debugger import DebuggerScreen
from kptui.screens.guard import notify_error
from kptui.screens.help import HelpScreen
from kptui.screens.loading import LoadingScreen


class KptApp(App[object]):
    """kptui: a stepping debugger for the Linux packet path."""

    CSS_PATH = "app.tcss"
    TITLE = "kptui"
    COMMANDS = App.COMMANDS | {DebuggerCommands}
    BINDINGS = [
        Binding("question_mark,f1", "help", "help", key_display="?", id="help",
                tooltip="Keys and a short guide to the screen"),
        Binding("q", "quit", "quit", show=False, id="quit", tooltip="Quit kptui"),
    ]

    def __init__(self, scenario: Any = None, *, debugger: Any = None, text: str | None = None,
                 name: str = "", view: dict[str, str] | None = None, session_path: str = "",
                 replay: Any = None, notice: str = "", read_file: Any = None) -> None:
        """``view`` and ``session_path``: a reopened session's screen state and file.
        ``read_file``: how ``text`` reads the files it names (an ``iptables_file``).
        ``replay``: the recorded timeline (a list of events) to open in replay mode.
        ``notice``: a warning to show once the screen is up (a diverging session)."""
        super().__init__()
        self.view = view
        self.session_path = session_path
        self.replay_timeline = replay
        self.notice = notice
        self.scenario = scenario
        self.debugger = debugger
        self.text = text
        self.read_file = read_file
        self.scenario_name = name or getattr(scenario, "name", "") or "scenario"
        self.load_seconds = 0.0
        # kptui bugs met so far ("ValueError: ..."), each logged with its traceback and
        # shown with a hint to report it (kptui.screens.guard); the tests read this
        self.internal_errors: list[str] = []

    async def run_action(self, action: Any, default_namespace: Any = None,
                         namespaces: Any = None) -> bool:
        """Every key binding and click action: an error is a message, never the end."""
        try:
            return await super().run_action(action, default_namespace, namespaces)
        except Exception as err:  # noqa: BLE001 - the app never exits on user input
            notify_error(self, err)
            return True

    def _handle_exception(self, error: Exception) -> None:
        """A worker that fails with ``exit_on_error`` (Textual's own command palette
        gathers its hits in one, and a palette closed mid-search can fail it) reports an
        internal error instead of ending the app. Anything else ends it as Textual does."""
        if isinstance(error, WorkerFailed) and self.is_running and self._exception is None:
            try:
                notify_error(self, error)
                return
            except Exception:  # noqa: BLE001 - could not even report it: end as Textual does
                pass
        super()._handle_exception(error)

    def pop_screen(self) -> AwaitComplete:
        """Pop a dialog, help or the palette; never the debugger screen under them.

        Textual's ``Screen.dismiss`` pops whatever is on top, so a stale second dismiss
        (seen in tests/test_tui_fuzz.py: the command palette selecting after it had
        closed, from a quick burst of keys) popped the debugger screen, leaving a blank
        terminal, and the next one ended the app with ScreenStackError. Nothing in kptui
        pops the debugger screen (a profile switch replaces it), so such a pop is ignored.
        """
        if len(self.screen_stack) <= 1 or isinstance(self.screen, DebuggerScreen):
            self.log.warning(f"ignored a pop of {self.screen!r}: a screen dismissed twice")

            async def nothing() -> None:
                return None

            return AwaitComplete(nothing()).call_next(self)
        return super().pop_screen()

    def on_mount(self) -> None:
        if self.debugger is not None:
            heap.keep()  # built by the caller (the CLI, a session's replay, a test)
            self.push_screen(self._debugger_screen())
            return
        size = len(self.text or getattr(self.scenario, "iptables", "") or "")
        self.push_screen(LoadingScreen(self.scenario_name,
                                       f"reading {size:,} characters of scenario"))
        # At once, not after the loading screen's first paint: waiting for that cost
        # 0.1 s of a 20,000-rule launch. The worker holds the GIL while it parses, but
        # Python hands it over every few ms, so the loading screen still paints at once.
        self._load()

    def on_unmount(self) -> None:
        heap.release()

    def _debugger_screen(self) -> DebuggerScreen:
        if self.replay_timeline is not None:
            from kptui.screens.replay import ReplayScreen

            return ReplayScreen(self.debugger, self.replay_timeline, scenario=self.scenario,
                                name=self.scenario_name, divergence=self.notice,
                                session_path=self.session_path)
        if self.notice:
            self.notify(self.notice, severity="warning", timeout=10)
        return DebuggerScreen(self.debugger, scenario=self.scenario, name=self.scenario_name,
                              view=self.view, session_path=self.session_path)

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load(self) -> None:
        from kptui.engine.debugger import Debugger
        from kptui.engine.scenario import load_scenario

        try:
            with heap.building():
                if self.scenario is None:
                    self.scenario = load_scenario(self.text or "", file=self.scenario_name,
                                                  read_file=self.read_file)
                lines = self.scenario.iptables.count("\n")  # fits the 66 columns at 80x24
                self.call_from_thread(self._progress, f"building the box: {lines:,} lines "
                                      "of iptables rules")
                debugger = Debugger.for_scenario(self.scenario)
        except KptuiError as err:
            self.call_from_thread(self.exit, err, 2)
            return
        except Exception as err:  # noqa: BLE001 - the CLI reports it as an internal error
            self.call_from_thread(self.exit, err, 3)
            return
        self.call_from_thread(self._loaded, debugger)

    def _progress(self, step: str) -> None:
        screen = self.screen
        if isinstance(screen, LoadingScreen):
            screen.advance(step)

    def _loaded(self, debugger: Any) -> None:
        self.debugger = debugger
        self.scenario_name = self.scenario.name or self.scenario_name
        self.switch_screen(self._debugger_screen())

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))
