"""The replay timeline: every event of a recorded session, one line each.

A Line-API ScrollView (a session may hold 10,000 events and more): the
replay's current position is drawn reversed, a cursor moves with the arrow
keys, and Enter asks the screen to jump there (``Timeline.Jump``). Walk starts
are drawn bold so the packets stand out.
"""

from __future__ import annotations

from rich.segment import Segment
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from kptui.widgets.tracelog import KIND_CLASS, LogEntry


class Timeline(ScrollView, can_focus=True):
    """Events of a session; ``position`` events are done (the last of them is current)."""

    BINDINGS = [
        Binding("up", "cursor(-1)", "up", show=False, id="timeline.up",
                tooltip="Move the timeline cursor up"),
        Binding("down", "cursor(1)", "down", show=False, id="timeline.down",
                tooltip="Move the timeline cursor down"),
        Binding("pageup", "cursor(-10)", "page up", show=False, id="timeline.pageup",
                tooltip="Move the timeline cursor ten events up"),
        Binding("pagedown", "cursor(10)", "page down", show=False, id="timeline.pagedown",
                tooltip="Move the timeline cursor ten events down"),
        Binding("enter", "jump", "jump here", show=False, id="timeline.jump",
                tooltip="Replay to the event under the cursor"),
    ]

    COMPONENT_CLASSES = {"log--rule", "log--fate", "log--change", "log--start", "log--route",
                         "log--note", "log--num", "timeline--current", "timeline--cursor"}

    DEFAULT_CSS = """
    Timeline {
        scrollbar-size-vertical: 1;
        scrollbar-size-horizontal: 1;
        & > .log--rule { color: $text; }
        & > .log--fate { color: $warning; text-style: bold; }
        & > .log--change { color: $accent; text-style: bold; }
        & > .log--start { color: $primary; text-style: bold; }
        & > .log--route { color: $success; }
        & > .log--note { color: $text-muted; text-style: italic; }
        & > .log--num { color: $text-muted; }
        & > .timeline--current { text-style: reverse; }
        & > .timeline--cursor { text-style: underline; }
    }
    """

    class Jump(Message):
        """Replay to just after event ``number`` (0-based)."""

        def __init__(self, number: int) -> None:
            super().__init__()
            self.number = number

    def __init__(self, entries: list[LogEntry], *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.entries = entries
        self.position = 0
        self.cursor = 0
        width = max((len(e.text) + 12 for e in entries), default=20)
        self.virtual_size = Size(width, len(entries))

    def set_position(self, position: int) -> None:
        """``position`` events done: the current one is ``position - 1``; follow it."""
        self.position = position
        self.cursor = max(0, position - 1)
        self._show(self.cursor)

    def _show(self, line: int) -> None:
        if self.entries:
            self.scroll_to_region(Region(0, line, 1, 1), animate=False, force=True)
        self.refresh()

    def action_cursor(self, delta: int) -> None:
        if self.entries:
            self.cursor = max(0, min(len(self.entries) - 1, self.cursor + delta))
            self._show(self.cursor)

    def action_jump(self) -> None:
        if self.entries:
            self.post_message(self.Jump(self.cursor))

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        line = y + scroll_y
        if line >= len(self.entries):
            return Strip.blank(self.size.width, self.rich_style)
        entry = self.entries[line]
        style = self.get_component_rich_style
        strip = Strip([
            Segment(f"{entry.packet:>2}.{entry.number:<5} ", style("log--num")),
            Segment(entry.text, style(KIND_CLASS.get(entry.kind, "log--rule"))),
        ])
        if line == self.position - 1:
            strip = strip.apply_style(style("timeline--current"))
        elif line == self.cursor and self.has_focus:
            strip = strip.apply_style(style("timeline--cursor"))
        return strip.crop_extend(scroll_x, scroll_x + self.size.width, self.rich_style)
