"""The loading screen: shown while the box is built in a worker (a big ruleset takes a while)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Label, ProgressBar


class LoadingScreen(Screen[None]):
    """A label saying what is being built, and a progress bar the worker advances."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__()
        self.scenario_name = name
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(id="loading"):
            yield Label(f"kptui: loading {self.scenario_name}", id="loading-title")
            yield Label(self.detail, id="loading-detail")
            yield ProgressBar(total=3, show_eta=False, id="loading-bar")

    def advance(self, step: str) -> None:
        self.query_one("#loading-detail", Label).update(step)
        self.query_one(ProgressBar).advance(1)
