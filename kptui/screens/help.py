"""The help modal: the keys of the screen below (and its focused widget), then help.md."""

from __future__ import annotations

from importlib import resources

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Markdown

from kptui.engine.numbers import is_uint


def key_label(binding: Binding) -> str:
    keys = [k.strip() for k in binding.key.split(",")]
    names = {"question_mark": "?", "slash": "/", "shift+f11": "Shift+F11", "f23": "F23",
             "ctrl+z": "Ctrl+Z", "shift+f5": "Shift+F5", "enter": "Enter"}
    return " / ".join(names.get(k, k.upper() if k.startswith("f") and is_uint(k[1:]) else k)
                      for k in keys)


def bindings_table(screen: Screen) -> str:
    """A Markdown table of the bindings of ``screen``, its focused widget and the app."""
    rows: list[tuple[str, str]] = []
    seen: set[str] = set()
    sources = [screen.focused, screen, screen.app]
    for source in sources:
        if source is None:
            continue
        for binding in getattr(type(source), "BINDINGS", []):
            if not isinstance(binding, Binding):
                continue
            key = binding.action
            if key in seen or not binding.description:
                continue
            seen.add(key)
            text = binding.tooltip or binding.description
            rows.append((key_label(binding), text))
    lines = ["| Keys | What it does |", "|---|---|"]
    lines.extend(f"| `{k}` | {t} |" for k, t in rows)
    return "\n".join(lines)


class HelpScreen(ModalScreen[None]):
    """Keys and a short guide. Escape, q or ? closes it."""

    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "close", id="help.close",
                        tooltip="Close the help")]

    def __init__(self, below: Screen) -> None:
        super().__init__()
        self.below = below

    def compose(self) -> ComposeResult:
        guide = resources.files("kptui.screens").joinpath("help.md").read_text("utf-8")
        text = f"# Keys\n\n{bindings_table(self.below)}\n\n{guide}"
        with VerticalScroll(id="help-body"):
            yield Markdown(text, id="help-text")

    def on_mount(self) -> None:
        body = self.query_one("#help-body")
        body.border_title = "Help"
        body.border_subtitle = "Escape or q closes · ↑↓ PgUp PgDn scroll"
        body.focus()

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
