"""tc counters on both sides: what `tc -s` shows in the box, and kptui's events for it.

For a scenario with `tc` setup lines verify reads, before and after every
packet, `tc -s -j qdisc show` (every device of the box) and `tc -s class
show dev X` for the devices with an htb qdisc (iproute2 6.1 prints htb
classes as text even with -j). A node's count is its packets accepted (Sent
+ backlog packets, so a packet still held by shaping counts) and its drops.
The per-packet difference is the packet's `qos` entry: which qdiscs and
classes counted it, as ``{"dev", "node", "packets", "drops"}``, sorted.
Left out on both sides: qdiscs with an automatic handle (8001: and up; the
kernel numbers them from a counter shared by all devices) and htb classes
with children (they count only at dequeue).

A drop is told apart by who made it: when a policer's drop counter moved
(`tc -s -j actions ls action police`, read only for a setup that has
`police`), the fate is `qos:police`, else `qos:queue-full`.

So no other packet pollutes the counters, verify switches IPv6 off in a tc
scenario's box (no router solicitations or MLD reports through the
qdiscs) and gives the box permanent neighbour entries for the peers and
every on-link destination (no ARP requests through them).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

NodeKey = tuple[str, str]  # (dev, "qdisc 1:" | "class 1:10")
Snapshot = dict[NodeKey, tuple[int, int, int]]  # packets+backlog, drops, backlog

POLICE: NodeKey = ("*", "police")  # all policers' drops: tells a fate, not a qos entry

CLASS_HEAD = re.compile(r"^class (\S+) (\S+) (?:parent (\S+)|root)")
CLASS_SENT = re.compile(r"Sent \d+ bytes (\d+) pkt \(dropped (\d+),")
CLASS_BACKLOG = re.compile(r"backlog \S+ (\d+)p")


def has_tc(setup: str) -> bool:
    """True when a scenario's setup has tc lines (verify then reads tc counters)."""
    return any(line.split()[:1] == ["tc"] for line in setup.splitlines())


def has_police(setup: str) -> bool:
    """True when a tc setup line uses a policer (verify then reads the police actions)."""
    return any(line.split()[:1] == ["tc"] and "police" in line.split()
               for line in setup.splitlines())


def parse_police(text: str) -> Snapshot:
    """`tc -s -j actions ls action police` -> {POLICE: (packets, drops, 0)}, summed."""
    packets = drops = 0
    for block in json.loads(text or "[]"):
        for action in block.get("actions", []):
            stats = action.get("stats", {})
            packets += int(stats.get("packets", 0))
            drops += int(stats.get("drops", 0))
    return {POLICE: (packets, drops, 0)}


def police_dropped(before: Snapshot, after: Snapshot) -> bool:
    """A policer's exceed action dropped the packet between the two snapshots."""
    return after.get(POLICE, (0, 0, 0))[1] > before.get(POLICE, (0, 0, 0))[1]


def counted_handle(handle: str) -> bool:
    """Qdisc handles both sides report: explicit ones (not 0: nor 8001: and up)."""
    major = handle.split(":")[0]
    try:
        value = int(major or "0", 16)
    except ValueError:
        return False
    return value == 0xFFFF or 0 < value < 0x8000


def parse_qdiscs(text: str) -> Snapshot:
    """`tc -s -j qdisc show` -> {(dev, "qdisc H"): (packets + qlen, drops, qlen)}."""
    out: Snapshot = {}
    for q in json.loads(text or "[]"):
        handle = q.get("handle", "")
        if not counted_handle(handle):
            continue
        qlen = int(q.get("qlen", 0))
        out[(q.get("dev", ""), f"qdisc {handle}")] = (int(q.get("packets", 0)) + qlen,
                                                      int(q.get("drops", 0)), qlen)
    return out


def parse_classes(dev: str, text: str) -> Snapshot:
    """`tc -s class show dev X` (text) -> the htb leaf classes' counts."""
    blocks: list[dict[str, Any]] = []
    for line in text.splitlines():
        head = CLASS_HEAD.match(line)
        if head:
            blocks.append({"kind": head.group(1), "id": head.group(2),
                           "parent": head.group(3) or "", "sent": 0, "drops": 0, "qlen": 0})
            continue
        if not blocks:
            continue
        sent = CLASS_SENT.search(line)
        if sent:
            blocks[-1]["sent"], blocks[-1]["drops"] = int(sent.group(1)), int(sent.group(2))
        backlog = CLASS_BACKLOG.search(line)
        if backlog:
            blocks[-1]["qlen"] = int(backlog.group(1))
    parents = {b["parent"] for b in blocks}
    return {(dev, f"class {b['id']}"): (b["sent"] + b["qlen"], b["drops"], b["qlen"])
            for b in blocks if b["kind"] == "htb" and b["id"] not in parents}


def delta(before: Snapshot, after: Snapshot) -> list[dict[str, Any]]:
    """The packet's `qos` entry: the nodes whose counts moved, and by how much."""
    out = []
    for key in sorted(after):
        if key == POLICE:
            continue
        old = before.get(key, (0, 0, 0))
        new = after[key]
        packets, drops = new[0] - old[0], new[1] - old[1]
        if packets or drops:
            out.append({"dev": key[0], "node": key[1], "packets": packets, "drops": drops})
    return out


def backlog_grew(before: Snapshot, after: Snapshot) -> list[str]:
    """Devices where a qdisc now holds more packets: a packet held back by shaping."""
    return sorted({key[0] for key, new in after.items() if key[1].startswith("qdisc")
                   and new[2] > before.get(key, (0, 0, 0))[2]})


def simulated(events: list[Any]) -> list[dict[str, Any]]:
    """kptui's `qos` entry for a packet: the counters its QosEnqueue events moved."""
    from kptui.engine.events import QosEnqueue

    counts: Counter[tuple[str, str, str]] = Counter()
    for event in events:
        if isinstance(event, QosEnqueue):
            for counter in event.counters:
                node, _sp, what = counter.rpartition(" ")
                counts[(event.dev, node, what)] += 1
    nodes = sorted({(dev, node) for dev, node, _what in counts})
    return [{"dev": dev, "node": node, "packets": counts[(dev, node, "packets")],
             "drops": counts[(dev, node, "drops")]} for dev, node in nodes]
