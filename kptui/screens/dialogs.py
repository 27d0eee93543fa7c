"""Small modal dialogs: edit a field, add a breakpoint, compose a packet, save a
session, jump along a replay.

Each dialog validates through a callback that returns an error message (or
None on success); on an error the dialog stays open and shows the engine's
reason, so nothing is changed by a bad value. Any other exception in the
callback is a kptui bug: it is logged and shown there too, with a hint to
report it (``kptui.screens.guard``); the app goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, Static

from kptui.engine.packet import FIELDS
from kptui.screens.guard import attempt

Apply = Callable[..., "str | None"]


class Dialog(ModalScreen[bool]):
    """Base: Escape cancels; `apply` takes the values and returns why it refused them
    (shown on the error line, the dialog stays) or None (the dialog closes)."""

    BINDINGS = [Binding("escape", "cancel", "cancel", id="dialog.cancel",
                        tooltip="Close without changing anything")]
    FOCUS = ""  # the input focused when the dialog opens
    apply: Apply

    def on_mount(self) -> None:
        self.show_error("")
        for field in self.query(self.FOCUS).results(Input):
            field.focus()

    def action_cancel(self) -> None:
        self.dismiss(False)

    def submit(self, *values: Any) -> None:
        if not self.is_active:
            return  # a second Enter queued before the first closed the dialog: once is all
        refused, error = attempt(self, self.apply, *values)
        error = error or refused
        if error:
            self.show_error(error)
        else:
            self.dismiss(True)

    def show_error(self, message: str) -> None:
        # query, not query_one: a dialog whose widgets are not (or no longer) mounted
        # when a queued key reaches it is no reason to end the app
        for error in self.query("#error").results(Static):
            error.update(message)
            error.display = bool(message)


class EditFieldScreen(Dialog):
    """Change one field of the packet in flight.

    Opened with `e`, it starts in the field box (the field under the tree's cursor, or
    ip.dst, selected so that typing replaces it); Tab or Enter there takes the suggested
    completion, fills the value box with the field's current value and moves to it; Enter
    in the value box applies. Opened on a field the user picked (Enter in the packet
    tree), it starts in the value box."""

    BINDINGS = [Binding("tab", "next_box", "value", show=False, id="edit.next-box",
                        tooltip="The value box, with the field's current value")]
    FOCUS = "#path"

    def __init__(self, path: str, packet: Any, apply: Apply, *, chosen: bool = False) -> None:
        super().__init__()
        if chosen:
            self.FOCUS = "#value"
        self.path = path
        self.packet = packet
        self.apply = apply
        self.editable = [p for p, spec in FIELDS.items() if spec.editable]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Edit a field of the packet in flight", classes="dialog-title")
            yield Label("field (a path like ip.dst, tcp.dport, meta.mark):")
            yield Input(self.path, id="path", suggester=SuggestFromList(self.editable))
            yield Label("new value:")
            yield Input(self._value(self.path), id="value", select_on_focus=True)
            yield Static("", id="doc", classes="dialog-help")
            yield Static("", id="error", classes="dialog-error")
            yield Static("Tab: to the value · Enter applies · Esc cancels · u undoes it later",
                         classes="dialog-help")

    def on_mount(self) -> None:
        self._describe(self.path)

    def _value(self, path: str) -> str:
        spec = FIELDS.get(path)
        if spec is None or self.packet is None:
            return ""
        try:
            return spec.format(self.packet.get(path))
        except Exception:  # noqa: BLE001 - not in this packet: start empty
            return ""

    def _describe(self, path: str) -> None:
        spec = FIELDS.get(path)
        doc = f"{spec.type}: {spec.doc}" if spec else ""
        self.query_one("#doc", Static).update(doc)

    @on(Input.Changed, "#path")
    def path_changed(self, event: Input.Changed) -> None:
        self._describe(event.value.strip())

    @on(Input.Submitted, "#path")
    def path_submitted(self, event: Input.Submitted) -> None:
        self._to_value()

    def action_next_box(self) -> None:
        if self.focused is self.query_one("#path", Input):
            self._to_value()
        else:
            self.focus_next()

    def _to_value(self) -> None:
        box = self.query_one("#path", Input)
        suggestion = box._suggestion  # what the box shows greyed after the text typed
        if suggestion and suggestion.startswith(box.value) and suggestion != box.value:
            box.value = suggestion
        path = box.value.strip()
        value = self.query_one("#value", Input)
        value.value = self._value(path)
        value.focus()

    @on(Input.Submitted, "#value")
    def value_submitted(self, event: Input.Submitted) -> None:
        self.submit(self.query_one("#path", Input).value.strip(), event.value.strip())


class BreakpointScreen(Dialog):
    """Add a breakpoint by its spec, as the debugger's breakpoint syntax writes it."""

    FOCUS = "#spec"

    EXAMPLES = ("stage nat:POSTROUTING", "hook FORWARD", "chain filter:FORWARD",
                "rule filter:FORWARD:2", "watch meta.mark", "if tcp.dport == 22",
                "rule filter:INPUT:1 if ip.src == 192.0.2.10")

    def __init__(self, apply: Apply, initial: str = "") -> None:
        super().__init__()
        self.apply = apply
        self.initial = initial

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Add a breakpoint", classes="dialog-title")
            yield Input(self.initial, id="spec", placeholder="stage nat:POSTROUTING",
                        suggester=SuggestFromList(self.EXAMPLES))
            yield Static("\n".join(f"  {e}" for e in self.EXAMPLES), classes="dialog-help")
            yield Static("", id="error", classes="dialog-error")
            yield Static("Enter adds · Escape cancels", classes="dialog-help")

    @on(Input.Submitted, "#spec")
    def submitted(self, event: Input.Submitted) -> None:
        self.submit(event.value.strip())


COMPOSE_FIELDS = (
    ("origin", "iif name, or local"),
    ("proto", "tcp, udp or icmp"),
    ("src", "source address"),
    ("dst", "destination address"),
    ("sport", "tcp/udp"),
    ("dport", "tcp/udp"),
    ("flags", "tcp flags, e.g. S or SA"),
    ("icmp_type", "icmp, e.g. 8"),
    ("ttl", "time to live"),
)


class ComposeScreen(Dialog):
    """Compose a packet and queue it after the scenario's packets."""

    FOCUS = "#c-origin"

    def __init__(self, initial: dict[str, str], apply: Apply) -> None:
        super().__init__()
        self.initial = initial
        self.apply = apply

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Inject a packet (queued after the others)", classes="dialog-title")
            with Grid(id="compose-grid"):
                for name, hint in COMPOSE_FIELDS:
                    yield Label(name)
                    yield Input(self.initial.get(name, ""), id=f"c-{name}", placeholder=hint)
            yield Static("", id="error", classes="dialog-error")
            yield Static("Enter injects · Tab moves · Escape cancels", classes="dialog-help")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.submit({name: self.query_one(f"#c-{name}", Input).value.strip()
                     for name, _hint in COMPOSE_FIELDS})


class SaveSessionScreen(Dialog):
    """Save the session: a file name (a default is offered), Enter saves."""

    FOCUS = "#session-path"

    def __init__(self, default: str, apply: Apply) -> None:
        super().__init__()
        self.default = default
        self.apply = apply

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Save the session", classes="dialog-title")
            yield Label("file (msgpack; reopen it with `kptui FILE` or `kptui replay FILE`):")
            yield Input(self.default, id="session-path", select_on_focus=False)
            yield Static("", id="error", classes="dialog-error")
            yield Static("Enter saves (an existing file is replaced atomically) · Escape "
                         "cancels", classes="dialog-help")

    @on(Input.Submitted, "#session-path")
    def submitted(self, event: Input.Submitted) -> None:
        path = event.value.strip()
        if path:
            self.submit(path)
        else:
            self.show_error("type a file name, e.g. session.kpt")


class JumpScreen(Dialog):
    """Jump along a replay's timeline: an event number, or `p` and a packet number."""

    FOCUS = "#jump-to"

    def __init__(self, apply: Apply, hint: str) -> None:
        super().__init__()
        self.apply = apply
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Jump to an event or a packet", classes="dialog-title")
            yield Input("", id="jump-to", placeholder="42 (event) or p3 (packet 3)")
            yield Static(self.hint, classes="dialog-help")
            yield Static("", id="error", classes="dialog-error")
            yield Static("Enter jumps · Escape cancels", classes="dialog-help")

    @on(Input.Submitted, "#jump-to")
    def submitted(self, event: Input.Submitted) -> None:
        self.submit(event.value.strip())
