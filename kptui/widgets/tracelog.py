"""The trace log: every event of the session, one line each, filterable.

A Line-API ScrollView over a list of (packet, event) lines: reverse steps
shrink the list, so an append-only RichLog would not do. The filter keeps
lines containing every word typed (case-insensitive).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.segment import Segment
from textual.geometry import Region, Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from kptui.widgets import wrapping

LOG_PREFIX = 8  # "pp.nnnn " before an event's text


@dataclass(frozen=True, slots=True)
class LogEntry:
    packet: int
    number: int  # position in the debugger's events
    kind: str  # the event kind, for the colour
    text: str


KIND_CLASS = {
    "rule": "log--rule",
    "fate": "log--fate",
    "field_change": "log--change",
    "edit": "log--change",
    "walk_start": "log--start",
    "route": "log--route",
    "note": "log--note",
}


class TraceLog(ScrollView, can_focus=True):
    """Events as text; follows the end unless the user scrolled up."""

    COMPONENT_CLASSES = {"log--rule", "log--fate", "log--change", "log--start", "log--route",
                         "log--note", "log--num", "log--current"}

    DEFAULT_CSS = """
    TraceLog {
        scrollbar-size-vertical: 1;
        scrollbar-size-horizontal: 1;
        & > .log--rule { color: $text; }
        & > .log--fate { color: $warning; text-style: bold; }
        & > .log--change { color: $accent; text-style: bold; }
        & > .log--start { color: $primary; text-style: bold; }
        & > .log--route { color: $success; }
        & > .log--note { color: $text-muted; text-style: italic; }
        & > .log--num { color: $text-muted; }
        & > .log--current { text-style: reverse; }
    }
    """

    filter_text: reactive[str] = reactive("", init=False)
    wrap: reactive[bool] = reactive(False, init=False)

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.entries: list[LogEntry] = []
        self.shown: list[LogEntry] = []
        self._filtered = 0  # how many entries the filter has looked at
        self._cache: dict[int, Strip] = {}
        self._rows: list[tuple[int, int]] = []  # wrapped: (entry, piece) per screen row

    def action_toggle_wrap(self) -> None:
        self.wrap = not self.wrap

    def watch_wrap(self) -> None:
        self._apply_filter(follow=True)

    def on_resize(self) -> None:
        if self.wrap:
            self._apply_filter(follow=self.scroll_y >= self.max_scroll_y - 1)

    def set_entries(self, entries: list[LogEntry], valid: int = 0) -> None:
        """Show ``entries`` (entry ``n`` is event ``n``); the first ``valid`` of them are
        the ones shown last time, so the filter only looks at the rest."""
        at_end = self.scroll_y >= self.max_scroll_y - 1
        if entries is not self.entries:
            valid = 0
        self.entries = entries
        self._apply_filter(follow=at_end, valid=valid)

    def watch_filter_text(self) -> None:
        self._apply_filter(follow=True)

    def _apply_filter(self, *, follow: bool, valid: int = 0) -> None:
        words = self.filter_text.lower().split()
        if not words:
            self.shown = self.entries
        else:
            if self.shown is self.entries:
                self.shown, valid = [], 0
            valid = min(valid, self._filtered)
            while self.shown and self.shown[-1].number >= valid:
                self.shown.pop()
            self.shown.extend(e for e in self.entries[valid:]
                              if all(w in e.text.lower() or w == e.kind for w in words))
        self._filtered = len(self.entries)
        self._cache.clear()
        if self.wrap:
            width = max(self.size.width - 1, LOG_PREFIX + 10)  # its scrollbar: 1 cell
            self._rows, _first = wrapping.rows(
                (len(e.text) + LOG_PREFIX for e in self.shown), width, LOG_PREFIX)
            self.virtual_size = Size(width, len(self._rows))
        else:
            self._rows = []
            width = max((len(e.text) + 10 for e in self.shown[-300:]), default=20)
            self.virtual_size = Size(width, len(self.shown))
        if follow and self.shown:
            self.scroll_to_region(Region(0, self.virtual_size.height - 1, 1, 1),
                                  animate=False, force=True)
        self.refresh()

    def _line(self, y: int) -> Strip:
        entry = self.shown[y]
        style = self.get_component_rich_style
        strip = Strip([
            Segment(f"{entry.packet:>2}.{entry.number:<4} ", style("log--num")),
            Segment(entry.text, style(KIND_CLASS.get(entry.kind, "log--rule"))),
        ])
        if self.entries and entry is self.entries[-1]:
            strip = strip.apply_style(style("log--current"))
        return strip

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        line = y + scroll_y
        if line >= self.virtual_size.height or not self.shown:
            return Strip.blank(self.size.width, self.rich_style)
        strip = self._cache.get(line)
        if strip is None:
            if self._rows:
                item, k = self._rows[line]
                strip = wrapping.piece(self._line(item), k, self.virtual_size.width,
                                       LOG_PREFIX)
            else:
                strip = self._line(line)
            self._cache[line] = strip
        return strip.crop_extend(scroll_x, scroll_x + self.size.width, self.rich_style)
