"""The Kernel Packet Traveling Diagram's graph, laid out on a grid of cells.

The seed picture is a graph, not a list: from the wire through PREROUTING to
input routing, then two ways (a packet for this machine down INPUT to the
local process, output routing and OUTPUT; one for another address through
FORWARD), merging again at POSTROUTING and leaving for the wire. This module
lays that graph out from a profile's paths, as three rows joined by real
connectors::

    wire▶[tc]▶[PREROUTING]▶[ROUTING]┬▶[INPUT]▶[local]▶[ROUTING]▶[OUTPUT]─┐
                                    └▶[ip_forward]▶[FORWARD]─────────────┤
                        [wire]◀[tc]◀[POSTROUTING]◀───────────────────────┘

Two forms share the topology. ``compact`` (80x24) draws a hook as one box
(its tables collapsed) and a last line with the tables of one hook expanded;
``wide`` frames every box and lists each hook's tables inside it, with the
side notes (MARK WRITE, DEST REWRITE, SOURCE REWRITE) under the tables whose
rules do that. Every cell carries a tag (the box, the connector, the note it
belongs to), so the widget styles a cell from the walk's state without laying
anything out again.

Pure data: no Textual here, so the layout is tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kptui.engine.profile import HOOKS, Profile, Stage

# the stage kinds a hook box gathers (netfilter's own functions at that hook)
HOOK_KINDS = frozenset({"table", "conntrack", "confirm", "imq"})

# Compact names of the boxes that stand alone (the wide form uses two-line titles).
COMPACT_NAMES = {
    "tc:ingress": "QOS IN",
    "tc:egress": "QOS OUT",
    "routing:input": "ROUTING",
    "routing:output": "ROUTING",
    "forward": "ip_forward",
    "local:deliver": "local",
    "transmit": "wire",
    "masq:demasq": "demasq",
}
WIDE_TITLES = {
    "tc:ingress": ("QOS", "INGRESS"),
    "tc:egress": ("QOS", "EGRESS"),
    "routing:input": ("INPUT", "ROUTING", "+ RPDB"),
    "routing:output": ("OUTPUT", "ROUTING", "+ RPDB"),
    "forward": ("ip_forward",),
    "local:deliver": ("local", "process"),
    "transmit": ("wire",),
    "masq:demasq": ("demasq-", "uerade"),
}


def table_line(stage: Stage) -> str:
    """A stage's name inside its hook's box (the box names the hook)."""
    if stage.kind == "table":
        return stage.table
    if stage.kind == "confirm":
        return "ct confirm"
    if stage.kind == "imq":
        return "IMQ"
    return "conntrack"


@dataclass(slots=True)
class Node:
    """One box of the graph: a stage on its own, or a netfilter hook's stages."""

    key: str  # the stage id, or "hook:PREROUTING"
    stages: tuple[Stage, ...]
    title: str  # the hook's name as the profile's picture calls it

    @property
    def is_hook(self) -> bool:
        return self.key.startswith("hook:")


@dataclass(slots=True)
class Box:
    """Where a selectable box is: a node (a hook collapsed, or a stage alone) or one
    table line inside an expanded hook. ``stage`` is what Enter and b act on."""

    key: str  # node key, or the stage id of a table line
    stage: Stage
    x: int
    y: int
    width: int
    height: int
    node: str  # the node it belongs to
    hook: bool = False  # a collapsed hook (compact): Enter expands it
    rtl: bool = False  # on the way out, drawn right to left: its way in is on its right

    def contains(self, x: int, y: int) -> bool:
        return self.x <= x < self.x + self.width and self.y <= y < self.y + self.height


# A cell's tag: (role, key). Roles: box (a box's text), frame (its border), mark (its
# breakpoint/drop slot), edge (a connector between two nodes: key "a>b"), wire (the
# wire the packet comes from), note, label, legend.
Tag = tuple[str, str]


@dataclass(slots=True)
class Grid:
    """Text cells with a tag each; runs of the same tag become one styled segment."""

    rows: list[list[tuple[str, Tag]]] = field(default_factory=list)

    def put(self, x: int, y: int, text: str, tag: Tag) -> None:
        while len(self.rows) <= y:
            self.rows.append([])
        row = self.rows[y]
        if len(row) < x + len(text):
            row.extend([(" ", ("", ""))] * (x + len(text) - len(row)))
        for i, ch in enumerate(text):
            row[x + i] = (ch, tag)

    @property
    def width(self) -> int:
        return max((len(r) for r in self.rows), default=0)

    def runs(self, y: int) -> list[tuple[str, Tag]]:
        """Row ``y`` as (text, tag) runs."""
        out: list[tuple[str, Tag]] = []
        for ch, tag in self.rows[y] if y < len(self.rows) else []:
            if out and out[-1][1] == tag:
                out[-1] = (out[-1][0] + ch, tag)
            else:
                out.append((ch, tag))
        return out


def nodes_of(stages: tuple[Stage, ...], titles: dict[str, str]) -> list[Node]:
    """A path's stages as nodes: consecutive stages of one netfilter hook become one."""
    out: list[Node] = []
    for stage in stages:
        if stage.kind in HOOK_KINDS and stage.hook in HOOKS:
            key = f"hook:{stage.hook}"
            if out and out[-1].key == key:
                out[-1].stages = (*out[-1].stages, stage)
                continue
            out.append(Node(key, (stage,), titles.get(stage.hook, stage.hook)))
        else:
            out.append(Node(stage.id, (stage,), stage.title))
    return out


@dataclass(slots=True)
class Graph:
    """The profile's picture as nodes: the way in, the two branches, the way out."""

    way_in: list[Node]
    local: list[Node]  # local_in then local_out: through the local process
    forward: list[Node]
    way_out: list[Node]

    def nodes(self) -> list[Node]:
        return [*self.way_in, *self.local, *self.forward, *self.way_out]

    def edges(self) -> list[tuple[str, str]]:
        """Every connector (from node, to node), the split and the merge included."""
        out: list[tuple[str, str]] = []
        for seq in (self.way_in, self.local, self.forward, self.way_out):
            out.extend((a.key, b.key) for a, b in zip(seq, seq[1:], strict=False))
        last_in = self.way_in[-1].key
        first_out = self.way_out[0].key
        out += [(last_in, self.local[0].key), (last_in, self.forward[0].key),
                (self.local[-1].key, first_out), (self.forward[-1].key, first_out),
                ("wire", self.way_in[0].key)]
        return out


def graph(profile: Profile, titles: dict[str, str] | None = None) -> Graph:
    """The profile's graph (stages the profile hides are left out, as it draws them)."""
    titles = titles or {}

    def visible(stages: tuple[Stage, ...]) -> tuple[Stage, ...]:
        return tuple(s for s in stages if s.id not in profile.hidden)

    return Graph(nodes_of(visible(profile.prerouting), titles),
                 nodes_of(visible(profile.local_in) + visible(profile.local_out), titles),
                 nodes_of(visible(profile.forward), titles),
                 nodes_of(visible(profile.postrouting), titles))


@dataclass(slots=True)
class Layout:
    grid: Grid
    boxes: list[Box]
    node_of: dict[str, str]  # stage id -> node key
    height: int


# -- the two forms -----------------------------------------------------------------------


class _Drawer:
    """Lays the graph out, one row after another; ``compact`` or ``wide`` boxes."""

    def __init__(self, g: Graph, form: str, expanded: str, notes: dict[str, str]) -> None:
        self.g, self.form, self.expanded, self.notes = g, form, expanded, notes
        self.grid = Grid()
        self.boxes: list[Box] = []
        self.node_of = {s.id: n.key for n in g.nodes() for s in n.stages}

    # a node's box: (width, height, draw(x, y)) -----------------------------------

    def size(self, node: Node) -> tuple[int, int]:
        if self.form == "compact":
            return len(self.compact_text(node)), 1
        lines = self.wide_lines(node)
        inner = max(max(len(text) for text, _ in lines), self.note_width(node))
        return inner + 2, len(lines) + 2

    def compact_text(self, node: Node) -> str:
        if node.is_hook:
            return f"[{node.title}]"
        return f"[{COMPACT_NAMES.get(node.key, node.title)}]"

    def wide_lines(self, node: Node) -> list[tuple[str, Tag]]:
        """The lines inside a wide box: its title, then (a hook) a line per stage, each
        with a one-cell mark slot before it, and its side note under it."""
        if not node.is_hook:
            title = WIDE_TITLES.get(node.key, (node.title,))
            return [(line, ("box", node.key)) for line in title]
        out: list[tuple[str, Tag]] = [(node.title, ("label", node.key))]
        for stage in node.stages:
            out.append((" " + table_line(stage), ("box", stage.id)))
        return out

    def note_width(self, node: Node) -> int:
        """The widest side note of a hook's tables, drawn beside its table's line."""
        lines = [len(" " + table_line(s)) + 3 + len(self.notes[s.id])
                 for s in node.stages if s.id in self.notes]
        return max(lines, default=0)

    def draw(self, node: Node, x: int, y: int) -> None:
        width, height = self.size(node)
        first = node.stages[0]
        if self.form == "compact":
            self.grid.put(x, y, self.compact_text(node), ("box", node.key))
            self.boxes.append(Box(node.key, first, x, y, width, 1, node.key, node.is_hook))
            return
        frame = ("frame", node.key)
        self.grid.put(x, y, "┌" + "─" * (width - 2) + "┐", frame)
        for i, (text, tag) in enumerate(self.wide_lines(node)):
            line = y + 1 + i
            self.grid.put(x, line, "│", frame)
            self.grid.put(x + 1, line, text.ljust(width - 2), tag)
            self.grid.put(x + width - 1, line, "│", frame)
            if tag[0] == "box" and node.is_hook:
                self.grid.put(x + 1, line, " ", ("mark", tag[1]))
                stage = next(s for s in node.stages if s.id == tag[1])
                self.boxes.append(Box(stage.id, stage, x + 1, line, len(text), 1, node.key))
                if stage.id in self.notes:
                    self.grid.put(x + 2 + len(text), line, "◂ " + self.notes[stage.id],
                                  ("note", stage.id))
        self.grid.put(x, y + height - 1, "└" + "─" * (width - 2) + "┘", frame)
        if not node.is_hook:
            self.boxes.append(Box(node.key, first, x, y, width, height, node.key))

    # rows ---------------------------------------------------------------------------

    def row(self, nodes: list[Node], x: int, y: int, *, spine: int) -> int:
        """Draw ``nodes`` left to right from x, arrows on line ``spine``; the end x."""
        for i, node in enumerate(nodes):
            if i:
                self.grid.put(x, spine, "▶", ("edge", f"{nodes[i - 1].key}>{node.key}"))
                x += 1
            self.draw(node, x, y)
            x += self.size(node)[0]
        return x

    def height(self, nodes: list[Node]) -> int:
        return max(self.size(n)[1] for n in nodes)

    def layout(self) -> Layout:
        g, wide = self.g, self.form == "wide"
        gap = 1 if wide else 0
        top = 1 if wide else 0  # the wide form's first line: the branch labels
        y0 = top
        y1 = y0 + self.height([*g.way_in, *g.local]) + gap
        y2 = y1 + self.height(g.forward) + gap
        s0, s1, s2 = (y0 + 1, y1 + 1, y2 + 1) if wide else (y0, y1, y2)
        self.grid.put(0, s0, "wire▶", ("edge", f"wire>{g.way_in[0].key}"))
        x = self.row(g.way_in, 5, y0, spine=s0)
        split = x
        last_in = g.way_in[-1].key
        local_edge, forward_edge = f"{last_in}>{g.local[0].key}", f"{last_in}>{g.forward[0].key}"
        self.grid.put(split, s0, "┬", ("edge", forward_edge))
        self.grid.put(split + 1, s0, "▶", ("edge", local_edge))
        for line in range(s0 + 1, s1):
            self.grid.put(split, line, "│", ("edge", forward_edge))
        self.grid.put(split, s1, "└▶", ("edge", forward_edge))
        end0 = self.row(g.local, split + 2, y0, spine=s0)
        end1 = self.row(g.forward, split + 2, y1, spine=s1)
        merge = max(end0, end1) + 1
        first_out = g.way_out[0].key
        local_out = f"{g.local[-1].key}>{first_out}"
        forward_out = f"{g.forward[-1].key}>{first_out}"
        self.grid.put(end0, s0, "─" * (merge - end0) + "┐", ("edge", local_out))
        for line in range(s0 + 1, s1):
            self.grid.put(merge, line, "│", ("edge", local_out))
        self.grid.put(end1, s1, "─" * (merge - end1), ("edge", forward_out))
        self.grid.put(merge, s1, "┤", ("edge", forward_out))
        merged = f"merge>{first_out}"
        for line in range(s1 + 1, s2):
            self.grid.put(merge, line, "│", ("edge", merged))
        # the way out, drawn right to left towards the wire
        out = list(reversed(g.way_out))
        width = sum(self.size(n)[0] for n in out) + len(out) - 1
        x = max(0, merge - 3 - width)
        drawn = len(self.boxes)
        for i, node in enumerate(out):
            if i:
                self.grid.put(x, s2, "◀", ("edge", f"{node.key}>{out[i - 1].key}"))
                x += 1
            self.draw(node, x, y2)
            x += self.size(node)[0]
        for box in self.boxes[drawn:]:
            box.rtl = True
        self.grid.put(x, s2, "◀" + "─" * (merge - x - 1) + "┘", ("edge", merged))
        bottom = y2 + self.height(g.way_out)
        if wide:
            self.grid.put(split + 2, 0, "for this machine", ("label", ""))
            self.grid.put(split + 3, y1 - 1, "for another address", ("label", ""))
        else:
            bottom = self.expand_line(bottom)
        return Layout(self.grid, self.boxes, self.node_of, bottom)

    def expand_line(self, y: int) -> int:
        """compact: the expanded hook's stages on a line of their own."""
        node = next((n for n in self.g.nodes() if n.key == self.expanded), None)
        if node is None:
            return y
        head = f"▸ {node.title}: "
        self.grid.put(0, y, head, ("head", ""))
        x = len(head)
        for i, stage in enumerate(node.stages):
            if i:
                self.grid.put(x, y, "▶", ("inner", node.key))
                x += 1
            text = f"[{table_line(stage)}]"
            self.grid.put(x, y, text, ("box", stage.id))
            self.boxes.append(Box(stage.id, stage, x, y, len(text), 1, node.key))
            x += len(text)
            note = self.notes.get(stage.id)
            if note:
                self.grid.put(x, y, f"◂{note}", ("note", stage.id))
                x += len(note) + 1
        return y + 1


def lay_out(profile: Profile, form: str, *, expanded: str = "",
            notes: dict[str, str] | None = None,
            titles: dict[str, str] | None = None) -> Layout:
    """The profile's diagram in ``form``; ``expanded``: the hook node (``hook:INPUT``)
    whose tables the compact form lists; ``notes``: side notes by stage id."""
    return _Drawer(graph(profile, titles), form, expanded, notes or {}).layout()
