"""The Kernel Packet Traveling Diagram, drawn from the engine's profile.

Each profile path (prerouting, local in, forward, local out, postrouting) is a
row of boxes, one per stage, in the order the packet meets them. The picture
is laid out once per (profile, form) and kept as rows of segments; only the
styles change as the packet moves, so ``render_line`` rebuilds a Strip from
its segments and caches it until the state changes (the Line API, as in
toolong's log view).

Two forms: ``compact`` (one text line per row, fits 80 columns) and ``wide``
(framed boxes with the diagram's full titles, for big terminals). Marks work
without colour: the current stage is reversed (and framed heavy when wide),
a breakpoint is ``●``, a drop or reject ``✗``, the selected box underlined.
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

PATHS: tuple[tuple[str, str, str], ...] = (
    ("prerouting", "PREROUTING", "from the wire"),
    ("local_in", "INPUT", "routed to this host"),
    ("forward", "FORWARD", "routed through this host"),
    ("local_out", "OUTPUT", "sent by a local process"),
    ("postrouting", "POSTROUTING", "to the wire"),
)

# Each profile's own picture: (path, compact row label, wide row label, blurb). The
# classic-2.4 rows use the seed diagram's box titles and its margin notes; ipchains the
# names of its three chains (IPCHAINS-HOWTO 4.1).
PROFILE_PATHS: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "classic-2.4": (
        ("prerouting", "PREROUTING", "IPTABLES PREROUTING",
         "mangle <- MARK WRITE, nat <- DEST REWRITE: DNAT or REDIRECT or DE-MASQUERADE"),
        ("local_in", "INPUT", "IPTABLES INPUT", "packet is for this machine"),
        ("forward", "FORWARD", "IPTABLES FORWARD",
         "packet is for another address; mangle <- MARK WRITE"),
        ("local_out", "OUTPUT", "IPTABLES OUTPUT",
         "local process; mangle <- MARK WRITE, nat <- DEST REWRITE: DNAT or REDIRECT"),
        ("postrouting", "POSTROUTING", "IPTABLES POSTROUTING",
         "mangle <- MARK WRITE, nat <- SOURCE REWRITE: SNAT or MASQUERADE"),
    ),
    "ipchains": (
        ("prerouting", "input", "IPCHAINS INPUT", "from the wire; replies are demasqueraded"),
        ("local_in", "local", "LOCAL PROCESS", "routed to this host"),
        ("forward", "forward", "IPCHAINS FORWARD", "routed through this host; MASQ here"),
        ("local_out", "local out", "LOCAL OUTPUT", "sent by a local process"),
        ("postrouting", "output", "IPCHAINS OUTPUT", "every packet leaving: to the wire"),
    ),
}


def profile_paths(profile: Profile) -> tuple[tuple[str, str, str, str], ...]:
    """The rows of ``profile``'s picture (the modern one unless it has its own)."""
    own = PROFILE_PATHS.get(profile.name)
    if own is not None:
        return own
    return tuple((path, hook, hook, blurb) for path, hook, blurb in PATHS)


# Short names for the compact form; table stages show their table (the row names the hook).
COMPACT_NAMES = {
    "tc:ingress": "QOS INGRESS",
    "tc:egress": "QOS EGRESS",
    "routing:input": "ROUTING+RPDB",
    "routing:output": "ROUTING+RPDB",
    "forward": "ip_forward",
    "local:deliver": "local process",
    "transmit": "out",
}
LABEL_WIDTH = 12
WIDE_MIN_WIDTH = 110


def compact_name(stage: Stage) -> str:
    if stage.id in COMPACT_NAMES:
        return COMPACT_NAMES[stage.id]
    if stage.kind == "table":
        return stage.table
    if stage.kind == "confirm":
        return "confirm"
    if stage.kind == "ipchains":
        return stage.hook
    if stage.kind == "imq":
        return "IMQ"
    if stage.kind == "demasq":
        return "demasq"
    return stage.title


@dataclass(slots=True)
class BoxPos:
    """Where a stage's box is drawn: its rectangle in diagram coordinates."""

    stage: Stage
    row: int  # index into PATHS
    col: int  # position within its row
    x: int
    y: int
    width: int
    height: int

    def contains(self, x: int, y: int) -> bool:
        return self.x <= x < self.x + self.width and self.y <= y < self.y + self.height


@dataclass(slots=True)
class DiagramState:
    """What the diagram marks; computed by the screen from the debugger after each command."""

    current: str = ""  # stage id of the current event
    visited: frozenset[str] = frozenset()  # stages with events in this walk
    passed: frozenset[str] = frozenset()  # stages passed silently (nothing configured there)
    breakpoints: frozenset[str] = frozenset()
    fate_stage: str = ""
    fate_action: str = ""  # drop | reject | transmit | deliver | error
    absent: frozenset[str] = field(default_factory=frozenset)  # table stages without a chain


# A segment of a laid-out line: text and the box it belongs to (None: arrows, labels).
Seg = tuple[str, "BoxPos | None", str]  # (text, box, role) role: label|arrow|box|edge


def layout(profile: Profile, form: str) -> tuple[list[list[Seg]], list[BoxPos]]:
    """The diagram as lines of segments, and the boxes (for selection and hit tests)."""
    lines: list[list[Seg]] = []
    boxes: list[BoxPos] = []
    seen: set[str] = set()
    for row, (path, hook, title, blurb) in enumerate(profile_paths(profile)):
        stages = [s for s in getattr(profile, path)
                  if s.id not in seen and s.id not in profile.hidden]
        seen.update(s.id for s in stages)
        if form == "compact":
            y = len(lines)
            segs: list[Seg] = [(f"{hook:<{LABEL_WIDTH}}", None, "label")]
            x = LABEL_WIDTH
            for col, stage in enumerate(stages):
                if col:
                    segs.append(("→", None, "arrow"))
                    x += 1
                text = f"[{compact_name(stage)}]"
                box = BoxPos(stage, row, col, x, y, len(text), 1)
                boxes.append(box)
                segs.append((text, box, "box"))
                x += len(text)
            lines.append(segs)
        else:
            lines.append([(f"{title} ", None, "label"), (f"({blurb})", None, "blurb")])
            y = len(lines)
            top: list[Seg] = [(" ", None, "arrow")]
            mid: list[Seg] = [(" ", None, "arrow")]
            bot: list[Seg] = [(" ", None, "arrow")]
            x = 1
            for col, stage in enumerate(stages):
                if col:
                    top.append(("  ", None, "arrow"))
                    mid.append(("─▶", None, "arrow"))
                    bot.append(("  ", None, "arrow"))
                    x += 2
                inner = stage.title
                width = len(inner) + 2
                box = BoxPos(stage, row, col, x, y, width, 3)
                boxes.append(box)
                top.append(("top", box, "edge"))
                mid.append((inner, box, "box"))
                bot.append(("bottom", box, "edge"))
                x += width
            lines.extend([top, mid, bot])
    lines.append([("legend", None, "legend")])
    return lines, boxes


class PacketDiagram(ScrollView, can_focus=True):
    """The packet path diagram. Arrow keys select a box; Enter shows its rules."""

    BINDINGS = [
        Binding("left", "move(0,-1)", "previous box", show=False, id="diagram.left",
                tooltip="Select the box to the left"),
        Binding("right", "move(0,1)", "next box", show=False, id="diagram.right",
                tooltip="Select the box to the right"),
        Binding("up", "move(-1,0)", "row above", show=False, id="diagram.up",
                tooltip="Select a box in the row above"),
        Binding("down", "move(1,0)", "row below", show=False, id="diagram.down",
                tooltip="Select a box in the row below"),
        Binding("enter", "open", "rules", show=False, id="diagram.open",
                tooltip="Show the rules of the selected box"),
    ]

    COMPONENT_CLASSES = {
        "diagram--label", "diagram--blurb", "diagram--arrow", "diagram--idle",
        "diagram--absent", "diagram--passed", "diagram--trail", "diagram--current",
        "diagram--break", "diagram--drop", "diagram--legend",
    }

    DEFAULT_CSS = """
    PacketDiagram {
        height: 6;
        scrollbar-size-horizontal: 1;
        scrollbar-size-vertical: 1;
        & > .diagram--label { color: $text; text-style: bold; }
        & > .diagram--blurb { color: $text-muted; }
        & > .diagram--arrow { color: $text-muted; }
        & > .diagram--idle { color: $text-muted; }
        & > .diagram--absent { color: $text-disabled; }
        & > .diagram--passed { color: $success; }
        & > .diagram--trail { color: $success; text-style: bold; }
        & > .diagram--current { color: $accent; text-style: bold reverse; }
        & > .diagram--break { color: $error; text-style: bold; }
        & > .diagram--drop { color: $error; text-style: bold; }
        & > .diagram--legend { color: $text-muted; }
    }
    """

    form: reactive[str] = reactive("compact", init=False)

    class BoxSelected(Message):
        """The user picked a box (Enter or a click): show its rules."""

        def __init__(self, stage: Stage) -> None:
            super().__init__()
            self.stage = stage

    def __init__(self, profile: Profile, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.profile = profile
        self.state = DiagramState()
        self.selected = 0
        self._cache: dict[int, Strip] = {}
        self._lines: list[list[Seg]] = []
        self.boxes: list[BoxPos] = []
        self._relayout()

    # -- layout ----------------------------------------------------------------

    def _relayout(self) -> None:
        self._lines, self.boxes = layout(self.profile, self.form)
        width = max(sum(len(self._text(s)) for s in line) for line in self._lines[:-1])
        self.virtual_size = Size(width, len(self._lines))
        self._cache.clear()

    @property
    def content_height(self) -> int:
        return len(self._lines)

    def watch_form(self) -> None:
        self._relayout()
        self.refresh()

    def set_state(self, state: DiagramState) -> None:
        self.state = state
        self._cache.clear()
        self.refresh()

    @property
    def selected_stage(self) -> Stage:
        return self.boxes[self.selected].stage

    def select_stage(self, stage_id: str) -> None:
        for i, box in enumerate(self.boxes):
            if box.stage.id == stage_id:
                self._select(i)
                return

    def _select(self, index: int) -> None:
        self.selected = index
        self._cache.clear()
        box = self.boxes[index]
        self.scroll_to_region_of(box)
        self.refresh()

    def scroll_to_region_of(self, box: BoxPos) -> None:
        from textual.geometry import Region

        self.scroll_to_region(Region(box.x, box.y, box.width, box.height), animate=False)

    # -- actions and mouse -----------------------------------------------------------

    def action_move(self, drow: int, dcol: int) -> None:
        box = self.boxes[self.selected]
        if dcol:
            same = [i for i, b in enumerate(self.boxes) if b.row == box.row]
            pos = same.index(self.selected) + dcol
            if 0 <= pos < len(same):
                self._select(same[pos])
            return
        row = box.row + drow
        choices = [i for i, b in enumerate(self.boxes) if b.row == row]
        if choices:
            centre = box.x + box.width // 2
            best = min(choices, key=lambda i: abs(self.boxes[i].x + self.boxes[i].width // 2
                                                  - centre))
            self._select(best)

    def action_open(self) -> None:
        self.post_message(self.BoxSelected(self.selected_stage))

    def on_click(self, event: events.Click) -> None:
        x = event.x + int(self.scroll_x)
        y = event.y + int(self.scroll_y)
        for i, box in enumerate(self.boxes):
            if box.contains(x, y):
                self._select(i)
                self.post_message(self.BoxSelected(box.stage))
                return

    def on_focus(self) -> None:
        self._cache.clear()
        self.refresh()

    def on_blur(self) -> None:
        self._cache.clear()
        self.refresh()

    # -- rendering -------------------------------------------------------------

    def _text(self, seg: Seg) -> str:
        text, box, role = seg
        if role == "edge" and box is not None:
            return "x" * box.width
        if role == "legend":
            return ""
        return text

    def _box_class(self, box: BoxPos) -> str:
        st, sid = self.state, box.stage.id
        if sid == st.current:
            return "diagram--current"
        if sid == st.fate_stage and st.fate_action in ("drop", "reject", "error"):
            return "diagram--drop"
        if sid in st.visited:
            return "diagram--trail"
        if sid in st.passed:
            return "diagram--passed"
        if sid in st.absent:
            return "diagram--absent"
        return "diagram--idle"

    def _box_text(self, seg: Seg) -> str:
        text, box, role = seg
        assert box is not None
        st, sid = self.state, box.stage.id
        heavy = sid == st.current
        brk = sid in st.breakpoints
        dropped = sid == st.fate_stage and st.fate_action in ("drop", "reject")
        inner = box.width - 2
        if role == "edge":
            left, fill, right = ("┏", "━", "┓") if text == "top" else ("┗", "━", "┛")
            if not heavy:
                left, fill, right = ("┌", "─", "┐") if text == "top" else ("└", "─", "┘")
            body = fill * inner
            if text == "top" and brk:
                body = "●" + body[1:]
            if text == "bottom" and dropped:
                tag = f" ✗ {st.fate_action.upper()} "
                body = (fill + tag + fill * inner)[:inner]
            return left + body + right
        if self.form == "compact":
            if brk:
                text = "●" + text[1:]
            if dropped:
                text = text[:-1] + "✗"
            return text
        side = "┃" if heavy else "│"
        return side + text + side

    def _legend(self) -> str:
        if self.form == "compact":
            return ("reversed: current   bold: trail   ●: breakpoint   ✗: dropped   "
                    "←→↑↓ Enter: rules")
        return ("reversed: current stage   bold: the packet's trail   ●: breakpoint   "
                "✗: dropped   dim: no chain   ←→↑↓/mouse: select, Enter: rules, b: break")

    def _render_row(self, y: int) -> Strip:
        segs = self._lines[y]
        if segs and segs[0][2] == "legend":
            return Strip([Segment(self._legend(), self.get_component_rich_style(
                "diagram--legend"))])
        out: list[Segment] = []
        focused = self.has_focus
        for seg in segs:
            text, box, role = seg
            if box is None:
                out.append(Segment(text, self.get_component_rich_style(f"diagram--{role}")))
                continue
            style = self.get_component_rich_style(self._box_class(box))
            rendered = self._box_text(seg)
            if box is self.boxes[self.selected] and focused and role == "box":
                style += Style(underline=True)
            if box.stage.id in self.state.breakpoints and self.form == "compact":
                mark = self.get_component_rich_style("diagram--break")
                out.append(Segment(rendered[:1], style + Style(color=mark.color, bold=True)
                                   if rendered[:1] == "●" else style))
                out.append(Segment(rendered[1:], style))
                continue
            out.append(Segment(rendered, style))
        return Strip(out)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        line = y + scroll_y
        width = self.size.width
        if line >= len(self._lines):
            return Strip.blank(width, self.rich_style)
        strip = self._cache.get(line)
        if strip is None:
            strip = self._render_row(line)
            self._cache[line] = strip
        return strip.crop_extend(scroll_x, scroll_x + width, self.rich_style)
