"""The Breaks panel's list: one line per breakpoint, to delete or disable in place.

An OptionList (cursor keys move, the highlighted line is the one a key acts on):
Delete or x removes the breakpoint, Space or Enter enables/disables it. The list
only asks; the debugger screen does it (and journals it, for the session).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual.binding import Binding
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option


class BreakList(OptionList):
    _shown: list[tuple[int, str]] = []  # (id, line) of what the list shows

    BINDINGS = [
        Binding("delete,x", "delete", "delete", id="breaks.delete",
                tooltip="Delete the highlighted breakpoint"),
        Binding("space,enter", "toggle", "on/off", id="breaks.toggle",
                tooltip="Enable or disable the highlighted breakpoint"),
    ]

    class Delete(Message):
        def __init__(self, bp_id: int) -> None:
            super().__init__()
            self.bp_id = bp_id

    class Toggle(Message):
        def __init__(self, bp_id: int) -> None:
            super().__init__()
            self.bp_id = bp_id

    def show(self, breakpoints: Iterable[Any]) -> None:
        """The breakpoints, the highlight kept on the same one (or the one after it)."""
        lines = [(bp.id, line(bp)) for bp in breakpoints]
        if lines == self._shown:
            return  # nothing changed: no repaint, the scroll stays
        was = self.highlighted
        keep = self._shown[was][0] if was is not None and was < len(self._shown) else None
        self._shown = lines
        self.clear_options()
        self.add_options([Option(text, id=str(bp_id)) for bp_id, text in lines])
        if lines:
            ids = [bp_id for bp_id, _ in lines]
            self.highlighted = ids.index(keep) if keep in ids else min(was or 0, len(ids) - 1)

    def _current(self) -> int | None:
        if self.highlighted is None or self.highlighted >= len(self._shown):
            return None
        return self._shown[self.highlighted][0]

    def action_delete(self) -> None:
        bp_id = self._current()
        if bp_id is not None:
            self.post_message(self.Delete(bp_id))

    def action_toggle(self) -> None:
        bp_id = self._current()
        if bp_id is not None:
            self.post_message(self.Toggle(bp_id))


def line(bp: Any) -> str:
    """``● 1     3  rule filter:FORWARD:2``: the mark (○ when disabled), id, hits, spec."""
    mark = "●" if bp.enabled else "○"
    state = "" if bp.enabled else "  (disabled)"
    return f"{mark} {bp.id:>2}  {bp.hits:>4}  {bp.spec}{state}"
