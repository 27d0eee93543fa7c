"""The Kernel Packet Traveling Diagram, drawn from the engine's profile.

The picture is the seed's graph (``kptui.widgets.diagram_layout``): the way
in, the split at input routing into the local and the forward branch, the
merge before POSTROUTING, the way out, with real connectors. It is laid out
once per (profile, form, expanded hook) as a grid of tagged cells; only the
styles change as the packet moves, so ``render_line`` builds a row's Strip
from its cells and caches it until the state changes (the Line API, as in
toolong's log view).

Two forms: ``compact`` (80x24: a hook is one box, the current hook's tables
on a line of their own) and ``wide`` (every table in its hook's framed box,
with side notes). Marks work without colour: the current box is reversed, the
trail (boxes and connectors the packet took) green and bold, a breakpoint
``●`` and a drop ``✗`` in a slot of their own (an arrow's cell in the compact
form), never over a label; the selected box is underlined.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from kptui.engine.profile import Profile, Stage
from kptui.widgets.diagram_layout import Box, Layout, Tag, lay_out

PATHS: tuple[tuple[str, str, str], ...] = (
    ("prerouting", "PREROUTING", "from the wire"),
    ("local_in", "INPUT", "routed to this host"),
    ("forward", "FORWARD", "routed through this host"),
    ("local_out", "OUTPUT", "sent by a local process"),
    ("postrouting", "POSTROUTING", "to the wire"),
)

# The hooks' names in each profile's picture: the seed diagram's 2.4 boxes say IPTABLES
# (a 2.4 kernel runs IPTABLES or, with ipchains.o, IPCHAINS: not both).
HOOK_TITLES: dict[str, dict[str, str]] = {
    "classic-2.4": {hook: f"IPTABLES {hook}" for hook in
                    ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")},
}
# what the seed draws beside IPTABLES, and why this profile does not run it
SIDE_TEXT: dict[str, tuple[str, ...]] = {
    "classic-2.4": ("IPCHAINS beside IPTABLES: a 2.4",
                    "kernel loads one of the two.",
                    "This profile runs IPTABLES; the",
                    "ipchains profile runs IPCHAINS."),
}
WIDE_MIN_WIDTH = 110


@dataclass(slots=True)
class DiagramState:
    """What the diagram marks; computed by the screen from the debugger after each command."""

    current: str = ""  # stage id of the current event
    visited: frozenset[str] = frozenset()  # stages with events in this walk
    passed: frozenset[str] = frozenset()  # stages passed silently (nothing configured there)
    breakpoints: frozenset[str] = frozenset()
    fate_stage: str = ""
    fate_action: str = ""  # drop | reject | transmit | deliver | error
    absent: frozenset[str] = field(default_factory=frozenset)  # table stages with no rules
    from_wire: bool = False  # the walk began on an interface (else a local process sent it)
    walking: bool = False  # a packet is in flight or at its fate
    last_in_hook: str = ""  # the latest stage of a netfilter hook the walk reached


DROPS = ("drop", "reject", "error")
# cell roles whose look follows the box (node or stage) they belong to
BOX_ROLES = frozenset({"box", "frame", "label"})


class PacketDiagram(ScrollView, can_focus=True):
    """The packet path diagram. Arrow keys select a box; Enter shows its rules (or, on a
    collapsed hook, lists its tables); z zooms between the compact and the wide form."""

    BINDINGS = [
        Binding("left", "move(0,-1)", "previous box", show=False, id="diagram.left",
                tooltip="Select the box to the left"),
        Binding("right", "move(0,1)", "next box", show=False, id="diagram.right",
                tooltip="Select the box to the right"),
        Binding("up", "move(-1,0)", "row above", show=False, id="diagram.up",
                tooltip="Select the box above"),
        Binding("down", "move(1,0)", "row below", show=False, id="diagram.down",
                tooltip="Select the box below"),
        Binding("enter", "open", "rules", show=False, id="diagram.open",
                tooltip="Show the rules of the selected box (on a hook: list its tables)"),
    ]

    COMPONENT_CLASSES = {
        "diagram--label", "diagram--edge", "diagram--idle", "diagram--absent",
        "diagram--trail", "diagram--current", "diagram--break", "diagram--drop",
        "diagram--legend", "diagram--note",
    }

    DEFAULT_CSS = """
    PacketDiagram {
        height: 6;
        scrollbar-size-horizontal: 1;
        scrollbar-size-vertical: 1;
        & > .diagram--label { color: $text-muted; }
        & > .diagram--edge { color: $text-muted; }
        & > .diagram--idle { color: $text; }
        & > .diagram--absent { color: $text-disabled; }
        & > .diagram--trail { color: $success; text-style: bold; }
        & > .diagram--current { color: $accent; text-style: bold reverse; }
        & > .diagram--break { color: $error; text-style: bold; }
        & > .diagram--drop { color: $error; text-style: bold reverse; }
        & > .diagram--legend { color: $text-muted; }
        & > .diagram--note { color: $warning; }
    }
    """

    form: reactive[str] = reactive("compact", init=False)

    class BoxSelected(Message):
        """The user picked a box (Enter or a click): show its rules."""

        def __init__(self, stage: Stage) -> None:
            super().__init__()
            self.stage = stage

    def __init__(self, profile: Profile, *, id: str | None = None,  # noqa: A002
                 notes: dict[str, str] | None = None) -> None:
        super().__init__(id=id)
        self.profile = profile
        self.notes = dict(notes or {})
        self.state = DiagramState()
        self.expanded = "hook:PREROUTING" if any(
            s.hook == "PREROUTING" for s in profile.prerouting) else ""
        self.selected_key = ""
        self._cache: dict[int, Strip] = {}
        self._invalidate()
        self._layout: Layout = lay_out(profile, "compact")
        self.boxes: list[Box] = []
        self._relayout()

    # -- layout ----------------------------------------------------------------

    def _relayout(self) -> None:
        self._layout = lay_out(self.profile, self.form, expanded=self.expanded,
                               notes=self.notes,
                               titles=HOOK_TITLES.get(self.profile.name) if self.form == "wide"
                               else None)
        grid = self._layout.grid
        if self.form == "wide":
            for i, text in enumerate(SIDE_TEXT.get(self.profile.name, ())):
                grid.put(0, self._layout.height - 5 + i, text, ("label", ""))
        self.boxes = self._layout.boxes
        self._stages_of: dict[str, list[str]] = {}
        for sid, node in self._layout.node_of.items():
            self._stages_of.setdefault(node, []).append(sid)
        keys = {b.key for b in self.boxes}
        if self.selected_key not in keys:  # its hook collapsed: the hook's box, else the first
            node = self._layout.node_of.get(self.selected_key, "")
            self.selected_key = node if node in keys else self.boxes[0].key
        self.virtual_size = Size(grid.width, self.content_height)
        self._invalidate()

    def _invalidate(self) -> None:
        """The state or the layout changed: every row (and the marks) is drawn again."""
        self._cache.clear()
        self._mark_cells: dict[tuple[int, int], tuple[str, str]] | None = None
        # per state: a tag's class and a class's style (a row is ~80 cells; looking
        # each up again cost a step milliseconds at 80x24, see benchmarks/bench_tui.py)
        self._tag_class: dict[Tag, str] = {}
        self._styles: dict[str, Style] = {}

    @property
    def content_height(self) -> int:
        return self._layout.height + 1  # and the legend

    def watch_form(self) -> None:
        self._relayout()
        self.refresh()

    def set_notes(self, notes: dict[str, str]) -> None:
        """Side notes by stage id (MARK WRITE, ...): from the box's rules."""
        if notes != self.notes:
            self.notes = dict(notes)
            self._relayout()
            self.refresh()

    def set_state(self, state: DiagramState) -> None:
        """Mark the walk's state; when the packet moved into another hook, list its tables
        (a redraw that did not move it leaves what the user expanded)."""
        moved = (state.current, state.fate_stage) != (self.state.current,
                                                      self.state.fate_stage)
        self.state = state
        node = self._layout.node_of.get(state.current, "")
        if not node.startswith("hook:"):  # at routing, a fate: the hook it came through
            node = self._layout.node_of.get(state.last_in_hook, "")
        if moved and node and node.startswith("hook:") and node != self.expanded:
            self._expand(node)
        self._invalidate()
        self.refresh()

    def _expand(self, node: str) -> None:
        self.expanded = node
        if self.form == "compact":
            self._relayout()

    @property
    def selected(self) -> int:
        return next(i for i, b in enumerate(self.boxes) if b.key == self.selected_key)

    @property
    def selected_box(self) -> Box:
        return self.boxes[self.selected]

    @property
    def selected_stage(self) -> Stage:
        return self.selected_box.stage

    @property
    def selected_spec(self) -> str:
        """The breakpoint b sets on the selected box: its stage, or a collapsed hook's."""
        box = self.selected_box
        if box.hook:
            return f"hook {box.stage.hook}"
        return f"stage {box.stage.id}"

    def select_stage(self, stage_id: str) -> None:
        """Select the stage's box (its hook's box when the hook is collapsed)."""
        node = self._layout.node_of.get(stage_id, "")
        if node.startswith("hook:") and self.form == "compact" and node != self.expanded:
            self._expand(node)
        for key in (stage_id, node):
            if any(b.key == key for b in self.boxes):
                self._select(key)
                return

    def _select(self, key: str) -> None:
        self.selected_key = key
        box = self.selected_box
        if self.form == "compact" and box.node.startswith("hook:") \
                and box.node != self.expanded:
            self._expand(box.node)
            box = self.selected_box
        self._invalidate()
        from textual.geometry import Region

        self.scroll_to_region(Region(box.x, box.y, box.width, box.height), animate=False)
        self.refresh()

    # -- actions and mouse -----------------------------------------------------------

    def action_move(self, drow: int, dcol: int) -> None:
        """Move to the nearest box in that direction (the picture is a graph: rows are
        not lists, so nearness is measured on the screen)."""
        here = self.selected_box
        cx, cy = here.x + here.width / 2, here.y + here.height / 2

        def ahead(b: Box) -> bool:
            bx, by = b.x + b.width / 2, b.y + b.height / 2
            if dcol:
                overlaps = b.y < here.y + here.height and here.y < b.y + b.height
                return overlaps and (bx - cx) * dcol > 0
            return (by - cy) * drow > 0

        def distance(b: Box) -> float:
            bx, by = b.x + b.width / 2, b.y + b.height / 2
            along, across = (abs(bx - cx), abs(by - cy)) if dcol else (abs(by - cy),
                                                                     abs(bx - cx))
            return along + 3 * across

        choices = [b for b in self.boxes if b is not here and ahead(b)]
        if choices:
            self._select(min(choices, key=distance).key)

    def action_open(self) -> None:
        box = self.selected_box
        if box.hook:  # a collapsed hook: list its tables, select the first
            self._expand(box.node)
            self._select(box.stage.id)
            return
        self.post_message(self.BoxSelected(box.stage))

    def on_click(self, event: events.Click) -> None:
        x = event.x + int(self.scroll_x)
        y = event.y + int(self.scroll_y)
        for box in self.boxes:
            if box.contains(x, y):
                self._select(box.key)
                self.action_open()
                return

    def on_focus(self) -> None:
        self._invalidate()
        self.refresh()

    def on_blur(self) -> None:
        self._invalidate()
        self.refresh()

    # -- the state's look -------------------------------------------------------------

    def _node_stages(self, key: str) -> list[str]:
        return self._stages_of.get(key) or [key]

    def _on_trail(self, key: str) -> bool:
        """A node (or stage) the packet went through in this walk."""
        st = self.state
        if key == "wire":
            return st.from_wire and st.walking
        if key == "merge":
            return False
        if key == "local:deliver" and st.walking and not st.from_wire:
            return True  # a local process sent it
        taken = st.visited | st.passed | {st.current}
        return any(sid in taken for sid in self._node_stages(key))

    def _class_of(self, key: str) -> str:
        st = self.state
        stages = self._node_stages(key)
        if st.current in stages:
            return "diagram--current"
        if st.fate_stage in stages and st.fate_action in DROPS:
            return "diagram--drop"
        if self._on_trail(key):
            return "diagram--trail"
        if all(sid in st.absent for sid in stages):
            return "diagram--absent"
        return "diagram--idle"

    def _edge_class(self, key: str) -> str:
        a, b = key.split(">", 1)
        if a == "merge":
            return "diagram--trail" if self._on_trail(b) else "diagram--edge"
        return "diagram--trail" if self._on_trail(a) and self._on_trail(b) \
            else "diagram--edge"

    def _marks(self) -> dict[tuple[int, int], tuple[str, str]]:
        """Cells that show a breakpoint or a drop, in slots of their own, never over a
        label: a breakpoint on the box's way in (the packet stops before it), a drop on
        its way out (where the trail ends); inside a wide hook, the table line's slot."""
        st = self.state
        out: dict[tuple[int, int], tuple[str, str]] = {}
        drops: dict[tuple[int, int], tuple[str, str]] = {}  # a drop wins a shared cell
        for box in self.boxes:
            stages = self._node_stages(box.key)
            brk = any(sid in st.breakpoints for sid in stages)
            drop = st.fate_stage in stages and st.fate_action in DROPS
            if self.form == "wide" and box.height == 1:  # a table line: its one slot
                if drop or brk:
                    out[(box.x, box.y)] = ("✗", "diagram--drop") if drop else \
                        ("●", "diagram--break")
                continue
            if self.form == "wide":  # a framed box: on its top and bottom edges
                before, after = (box.x + 1, box.y), (box.x + 1, box.y + box.height - 1)
            else:
                left, right = (box.x - 1, box.y), (box.x + box.width, box.y)
                before, after = (right, left) if box.rtl else (left, right)
            if brk:
                out[before] = ("●", "diagram--break")
            if drop:
                drops[after] = ("✗", "diagram--drop")
        return out | drops

    def _legend(self) -> list[tuple[str, str]]:
        """The legend, each mark drawn as the diagram draws it (so it reads without
        colour too: reverse, bold, underline)."""
        sep = (" · ", "diagram--legend")
        words = "the packet's trail" if self.form == "wide" else "trail"
        out = [("current", "diagram--current"), sep, (words, "diagram--trail"), sep,
               ("selected", "underline"), sep, ("●", "diagram--break"),
               (" breakpoint" if self.form == "wide" else " break", "diagram--legend"), sep,
               ("✗", "diagram--drop"),
               (" dropped" if self.form == "wide" else " drop", "diagram--legend"), sep,
               ("no rules", "diagram--absent"), sep]
        if self.form == "wide":
            out += [("◂", "diagram--note"), (" its rules rewrite", "diagram--legend"), sep]
        return [*out, ("z: zoom", "diagram--legend")]

    def _style_of(self, tag: Tag) -> str:
        role, key = tag
        if role in BOX_ROLES and key:
            return self._class_of(key)
        if role == "edge":
            return self._edge_class(key)
        if role == "inner":
            return "diagram--edge"
        if role == "note":
            return "diagram--note"
        if role == "mark":
            return self._class_of(key)
        return "diagram--label"

    def _render_row(self, y: int) -> Strip:
        if y == self._layout.height:
            legend = self.get_component_rich_style("diagram--legend")
            return Strip([Segment(text, legend + Style(underline=True) if cls == "underline"
                                  else self.get_component_rich_style(cls))
                          for text, cls in self._legend()])
        if self._mark_cells is None:
            self._mark_cells = self._marks()
        marks = self._mark_cells
        selected = self.selected_box if self.has_focus else None
        out: list[Segment] = []
        row = self._layout.grid.rows[y] if y < len(self._layout.grid.rows) else []
        classes, styles = self._tag_class, self._styles
        for x, (ch, tag) in enumerate(row):
            if (x, y) in marks:
                ch, cls = marks[(x, y)]
            elif not tag[0]:
                cls = ""
            else:
                cls = classes.get(tag) or classes.setdefault(tag, self._style_of(tag))
            style = styles.get(cls)
            if style is None:
                style = styles[cls] = (self.get_component_rich_style(cls) if cls
                                       else self.rich_style)
            if selected is not None and tag[0] == "box" and selected.contains(x, y) \
                    and ch != " ":
                style += Style(underline=True)
            if out and out[-1].style == style:
                out[-1] = Segment(out[-1].text + ch, style)
            else:
                out.append(Segment(ch, style))
        return Strip(out)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        line = y + scroll_y
        width = self.size.width
        if line >= self.content_height:
            return Strip.blank(width, self.rich_style)
        strip = self._cache.get(line)
        if strip is None:
            strip = self._render_row(line)
            self._cache[line] = strip
        return strip.crop_extend(scroll_x, scroll_x + width, self.rich_style)
