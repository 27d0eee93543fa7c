"""The packet as a tree, Wireshark-style: one branch per header, one leaf per field.

Leaves carry their field path (``ip.dst``) as data, so Enter on a leaf edits
that field. A field changed during this walk is highlighted with the value it
had when the packet arrived (beside the new one, or on a line of its own under it when
the two do not fit the pane's width); the field changed by the current event is shown
reversed. The tree is rebuilt only when the set of fields changes (another
protocol); otherwise labels are updated in place, which keeps a step cheap.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from kptui.engine.errors import KptuiError
from kptui.engine.packet import FIELDS

PROTO_TITLES = {
    "tcp": "Transmission Control Protocol",
    "udp": "User Datagram Protocol",
    "icmp": "Internet Control Message Protocol",
}


def packet_paths(pkt: Any) -> list[str]:
    """The field paths that exist in this packet, in FIELDS order."""
    out = []
    for path in FIELDS:
        try:
            pkt.get(path)
        except KptuiError:
            continue
        out.append(path)
    return out


def show(path: str, value: Any) -> str:
    if value == "" and path.startswith("meta."):
        return "-"
    try:
        return FIELDS[path].format(value)
    except Exception:  # noqa: BLE001 - a value the formatter does not know: show it raw
        return str(value)


def group_of(path: str) -> str:
    if path.startswith("icmp.inner."):
        return "inner"
    return path.split(".", 1)[0]


# the columns before a field's label: the root's and its group's guides ("│ ├ ")
LEAF_INDENT = 4


class PacketTree(Tree[str]):
    """The packet in flight. Enter on a field edits it."""

    BINDINGS = [
        Binding("enter", "select_cursor", "edit field", show=False, id="packet.edit",
                tooltip="Edit the field under the cursor"),
    ]

    DEFAULT_CSS = """
    PacketTree {
        overflow-x: hidden;
        scrollbar-size-vertical: 1;
        & > .tree--guides { color: $text-muted; }
    }
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__("no packet yet", id=id)
        self.show_root = True
        self.guide_depth = 2
        self._paths: list[str] = []
        self._leaves: dict[str, TreeNode[str]] = {}
        self._groups: dict[str, TreeNode[str]] = {}
        self.packet: Any = None

    def show_packet(self, pkt: Any, *, title: str, original: dict[str, Any],
                    latest: set[str]) -> None:
        """Show ``pkt``; ``original`` maps changed paths to their value at arrival."""
        self.packet = pkt
        if pkt is None:
            self.clear()
            self.root.set_label(title)
            self._paths, self._leaves, self._groups = [], {}, {}
            return
        paths = packet_paths(pkt)
        if paths != self._paths:
            self._rebuild(paths)
        self._set(self.root, Text(title))
        for group, node in self._groups.items():
            self._set(node, self._group_label(group, pkt))
        room = self.size.width - LEAF_INDENT - 1  # the vertical scrollbar
        for path, node in self._leaves.items():
            label = self._leaf_label(path, pkt, original, latest)
            was = f"was {show(path, original[path])}" if path in original else ""
            inline = was and label.cell_len + 3 + len(was) <= room
            if inline:
                label.append(f"  ({was})", "italic")
            self._set(node, label)
            self._set_was(node, "" if inline else was)

    def _set_was(self, node: TreeNode[str], was: str) -> None:
        """The old value on a line of its own under the field (when it does not fit
        beside the new one), or no such line."""
        children = node.children
        if not was:
            if children:
                node.remove_children()
            return
        label = Text(was, "italic")
        if children:
            self._set(children[0], label)
        else:
            node.add_leaf(label, data=node.data)
            node.expand()

    def _set(self, node: TreeNode[str], label: Text) -> None:
        """Relabel only what changed: each relabel costs the tree a refresh."""
        old = node.label
        if old.plain != label.plain or old.spans != label.spans or old.style != label.style:
            node.set_label(label)

    def _rebuild(self, paths: list[str]) -> None:
        self.clear()
        self._paths = paths
        self._leaves, self._groups = {}, {}
        for path in paths:
            group = group_of(path)
            parent = self._groups.get(group)
            if parent is None:
                parent = self.root.add(group, data=None, expand=group != "inner")
                self._groups[group] = parent
            self._leaves[path] = parent.add(path, data=path, allow_expand=False)
        self.root.expand()

    def _group_label(self, group: str, pkt: Any) -> Text:
        """Short Wireshark-style summaries: the long protocol names go in wide mode only."""
        long = self.size.width >= 48
        if group == "ip":
            name = "Internet Protocol Version 4" if long else "IPv4"
            return Text.assemble((name, "bold"), f"  {pkt.ip.src} → {pkt.ip.dst}")
        if group == "meta":
            oif = pkt.meta.oif or "-"
            return Text.assemble(("skb metadata" if long else "skb", "bold"),
                                 f"  iif {pkt.meta.iif or '-'} oif {oif} "
                                 f"mark {pkt.meta.mark:#x}")
        if group == "inner":
            return Text("Quoted packet (the datagram this ICMP error is about)", "bold")
        title = PROTO_TITLES.get(group, group) if long else group.upper()
        if group in ("tcp", "udp"):
            extra = f"  {pkt.sport} → {pkt.dport}"
            if group == "tcp":
                extra += f" [{show('tcp.flags', pkt.get('tcp.flags'))}]"
            return Text.assemble((title, "bold"), extra)
        return Text.assemble((title, "bold"),
                             f"  type {show('icmp.type', pkt.get('icmp.type'))}")

    def _leaf_label(self, path: str, pkt: Any, original: dict[str, Any],
                    latest: set[str]) -> Text:
        name = path.removeprefix("icmp.inner.").split(".", 1)[1]
        value = show(path, pkt.get(path))
        spec = FIELDS[path]
        label = Text(f"{name:<12}", "dim italic" if not spec.editable else "")
        if path in original:
            label.append(value, "bold reverse" if path in latest else "bold")
        else:
            label.append(value)
        return label

    @property
    def cursor_path(self) -> str | None:
        node = self.cursor_node
        return node.data if node is not None else None
