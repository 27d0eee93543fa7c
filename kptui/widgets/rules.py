"""The rules of one chain: the rule under evaluation, match marks, counters.

A kube-proxy chain can hold thousands of rules, so this is a Line-API
ScrollView: only the visible rules are turned into Strips, and a rule's text
is only built when it is shown. Marks are for the chain's current invocation
in this walk: ``✓`` matched, ``✗`` did not, ``▶`` the rule being evaluated,
``●`` a rule breakpoint. The cursor (up/down) picks a rule for ``b``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from kptui.widgets import wrapping

# the cells before a rule's text: breakpoint, here and match marks, number, packets
RULE_PREFIX = 15


@dataclass(slots=True)
class ChainView:
    """One chain as the rule list shows it."""

    table: str = ""
    chain: str = ""
    rules: list[Any] = field(default_factory=list)  # engine Rule objects (text, counters)
    policy: str = ""  # built-in chains: ACCEPT/DROP; user chains: ""
    marks: dict[int, bool] = field(default_factory=dict)  # rule number -> matched
    current: int = 0  # the rule under evaluation (1-based), 0 for none
    policy_applied: bool = False
    breakpoints: frozenset[int] = frozenset()
    note: str = ""  # shown when there is no chain

    @property
    def title(self) -> str:
        if not self.chain:
            return "rules"
        policy = f" (policy {self.policy})" if self.policy else ""
        return f"{self.table} {self.chain}{policy}: {len(self.rules)} rules"


class RuleList(ScrollView, can_focus=True):
    """A chain's rules with marks; scrolls to keep the rule under evaluation in view."""

    BINDINGS = [
        Binding("up", "cursor(-1)", "previous rule", show=False, id="rules.up",
                tooltip="Move the cursor to the previous rule"),
        Binding("down", "cursor(1)", "next rule", show=False, id="rules.down",
                tooltip="Move the cursor to the next rule"),
        Binding("pageup", "cursor(-10)", "page up", show=False, id="rules.pageup",
                tooltip="Move the cursor up a page"),
        Binding("pagedown", "cursor(10)", "page down", show=False, id="rules.pagedown",
                tooltip="Move the cursor down a page"),
        Binding("home", "cursor_to(1)", "first rule", show=False, id="rules.home",
                tooltip="Move the cursor to the first rule"),
        Binding("end", "cursor_to(-1)", "last rule", show=False, id="rules.end",
                tooltip="Move the cursor to the last rule"),
    ]

    COMPONENT_CLASSES = {"rules--match", "rules--nomatch", "rules--current", "rules--cursor",
                         "rules--break", "rules--dim", "rules--policy"}

    DEFAULT_CSS = """
    RuleList {
        scrollbar-size-vertical: 1;
        scrollbar-size-horizontal: 1;
        & > .rules--match { color: $success; }
        & > .rules--nomatch { color: $text-muted; }
        & > .rules--current { text-style: bold reverse; }
        & > .rules--cursor { text-style: underline; }
        & > .rules--break { color: $error; text-style: bold; }
        & > .rules--dim { color: $text-muted; }
        & > .rules--policy { color: $warning; text-style: bold; }
    }
    """

    cursor: reactive[int] = reactive(0, init=False)  # 1-based rule number, 0: none
    wrap: reactive[bool] = reactive(False, init=False)

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.view = ChainView(note="No chain yet: step into a table stage, or select a "
                                   "box in the diagram and press Enter.")
        self._cache: dict[int, Strip] = {}
        self._rows: list[tuple[int, int]] = []  # wrapped: (line, piece) per screen row
        self._first: list[int] = []  # wrapped: each line's first screen row

    def _lines(self) -> int:
        """The list's lines: a rule each, then the policy (or end of chain) line."""
        return len(self.view.rules) + 1 if self.view.chain else 1

    def _relayout(self) -> None:
        """The virtual size, and (wrapped) the screen rows of every line."""
        view = self.view
        if self.wrap and view.chain:
            width = max(self.size.width - 1, RULE_PREFIX + 10)  # its scrollbar: 1 cell
            lengths = [RULE_PREFIX + len(r.text) for r in view.rules] + [30]
            self._rows, self._first = wrapping.rows(lengths, width, RULE_PREFIX)
            self.virtual_size = Size(width, len(self._rows))
        else:
            self._rows, self._first = [], []
            width = max(60, max((len(r.text) + 24 for r in view.rules[:200]), default=60))
            self.virtual_size = Size(width, self._lines())
        self._cache.clear()

    def watch_wrap(self) -> None:
        self._relayout()
        line = (self.cursor or 1) - 1
        self._scroll_to_line(line)
        self.refresh()

    def action_toggle_wrap(self) -> None:
        self.wrap = not self.wrap

    def on_resize(self) -> None:
        if self.wrap:
            self._relayout()
            self.refresh()

    def show(self, view: ChainView, *, follow: bool = True) -> None:
        same_chain = (view.table, view.chain) == (self.view.table, self.view.chain)
        self.view = view
        self._relayout()
        if not same_chain:
            self.cursor = view.current or 1
        elif view.current:
            self.cursor = view.current
        if follow:
            target = view.current or (len(view.rules) + 1 if view.policy_applied else 0)
            if target:
                self._scroll_to_line(target - 1)
            elif not same_chain:
                self.scroll_to(0, 0, animate=False)
        self.refresh()

    def _scroll_to_line(self, y: int) -> None:
        """Bring line ``y`` (0-based: rule y+1) into view, centred."""
        if self._first:
            y = self._first[min(y, len(self._first) - 1)]
        self.scroll_to_region(Region(0, y, 1, 1), animate=False, center=True, force=True)

    def watch_cursor(self) -> None:
        self._cache.clear()
        self.refresh()

    def action_cursor(self, delta: int) -> None:
        if self.view.rules:
            self.cursor = max(1, min(len(self.view.rules), self.cursor + delta))
            self._scroll_to_line(self.cursor - 1)

    def action_cursor_to(self, where: int) -> None:
        if self.view.rules:
            self.cursor = 1 if where > 0 else len(self.view.rules)
            self._scroll_to_line(self.cursor - 1)

    @property
    def cursor_rule(self) -> tuple[str, str, int] | None:
        if not self.view.chain or not self.view.rules or not self.cursor:
            return None
        return self.view.table, self.view.chain, self.cursor

    def on_click(self, event: Any) -> None:
        row = event.y + int(self.scroll_y)
        if self._rows:
            row = self._rows[min(row, len(self._rows) - 1)][0]
        line = row + 1
        if 1 <= line <= len(self.view.rules):
            self.cursor = line

    def _line(self, y: int) -> Strip:
        view = self.view
        style = self.get_component_rich_style
        if not view.chain:
            return Strip([Segment(view.note if y == 0 else "", style("rules--dim"))])
        n = y + 1
        if n > len(view.rules):
            applied = view.policy_applied
            text = (f"      policy {view.policy}" + ("  ◀ applied" if applied else "")
                    if view.policy else "      (end of chain: back to the caller)")
            return Strip([Segment(text, style("rules--policy" if applied else "rules--dim"))])
        rule = view.rules[n - 1]
        matched = view.marks.get(n)
        mark = " " if matched is None else ("✓" if matched else "✗")
        here = "▶" if n == view.current else " "
        brk = "●" if n in view.breakpoints else " "
        counters = getattr(rule, "counters", None)
        pkts = f"{counters.pkts:>5}" if counters is not None else "     "
        text_style = style("rules--match") if matched else (
            style("rules--nomatch") if matched is False else Style())
        segs = [
            Segment(brk, style("rules--break")),
            Segment(here + mark, text_style),
            Segment(f"{n:>5} ", style("rules--dim")),
            Segment(pkts + " ", style("rules--dim")),
            Segment(rule.text, text_style),
        ]
        strip = Strip(segs)
        if n == view.current:
            strip = strip.apply_style(style("rules--current"))
        if n == self.cursor and self.has_focus:
            strip = strip.apply_style(style("rules--cursor"))
        return strip

    def on_focus(self) -> None:
        self._cache.clear()
        self.refresh()

    def on_blur(self) -> None:
        self._cache.clear()
        self.refresh()

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        line = y + scroll_y
        strip = self._cache.get(line)
        if strip is None:
            if self._rows:
                if line < len(self._rows):
                    item, k = self._rows[line]
                    strip = wrapping.piece(self._line(item), k, self.virtual_size.width,
                                           RULE_PREFIX)
                else:
                    strip = Strip([])
            else:
                strip = self._line(line) if line <= len(self.view.rules) else Strip([])
            self._cache[line] = strip
        return strip.crop_extend(scroll_x, scroll_x + self.size.width, self.rich_style)
