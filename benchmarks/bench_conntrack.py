"""Conntrack and NAT do not slow down as the table grows: 10 vs 10,000 entries.

    python benchmarks/bench_conntrack.py [--packets 200] [--rounds 5]

Two figures, each against its baseline measured side by side in the same run:

- a new masqueraded connection (the first SYN of a LAN host's connection, walked
  through the built-in demo: conntrack lookup, MASQUERADE's binding, confirm) with
  10,000 entries in the table, against the same with 10 entries. Before issue 16
  every new SNAT/MASQUERADE connection walked the whole table
  (nat._find_appropriate_src) and every listing expired it entry by entry.
- the demo's own packets plus new connections, per packet, with 3,000 connections
  in the table against 500 (the issue measured 0.8 ms at 500 and 4.4 ms at 3,000).

The tables are filled through the scenario's ``conntrack`` key (kptui.engine.ct_entries:
what `conntrack -L` prints of masqueraded LAN connections), reloaded before every round,
so each round starts from the same table. Rounds alternate between the sizes so that a
busy machine slows both alike; each figure is the median of ``--rounds`` rounds. The
exit code says whether the targets held (no test asserts timing).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from importlib import resources
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from figures import Figure, median_time, report  # noqa: E402

from kptui.engine.ct_entries import load_entries, parse_entries  # noqa: E402
from kptui.engine.packet import Packet  # noqa: E402
from kptui.engine.scenario import load_scenario  # noqa: E402
from kptui.engine.walk import walk  # noqa: E402

LAN_HOSTS = 200  # 192.0.2.10 .. 192.0.2.209
ENTRY = ("tcp 6 431999 ESTABLISHED src={src} dst=198.51.100.7 sport={port} dport=443 "
         "src=198.51.100.7 dst=203.0.113.2 sport=443 dport={port} [ASSURED] mark=0 use=1")


def demo():  # noqa: ANN201 - a Scenario
    text = resources.files("kptui.scenarios").joinpath("demo.toml").read_text("utf-8")
    return load_scenario(text, file="demo.toml")


def entries_text(count: int) -> str:
    """``count`` masqueraded connections of the LAN hosts, as `conntrack -L` lists them."""
    return "\n".join(ENTRY.format(src=f"192.0.2.{10 + i % LAN_HOSTS}", port=2000 + i)
                     for i in range(count))


def syn(n: int) -> Packet:
    """The first packet of a new LAN connection: no entry has its source port."""
    return Packet.build(proto="tcp", src=f"192.0.2.{10 + n % LAN_HOSTS}", dst="198.51.100.7",
                        sport=40000 + n // LAN_HOSTS, dport=443, flags="S", iif="eth0")


class Bench:
    """A demo box whose conntrack table is refilled with ``size`` entries each round."""

    def __init__(self, size: int) -> None:
        self.scenario = demo()
        self.box = self.scenario.build_box()
        self.text = entries_text(size)
        self.next = 0

    def refill(self) -> None:
        """A new table with the entries (untimed): every round starts alike."""
        table = type(self.box.conntrack)(self.box)
        load_entries(table, parse_entries(self.text, file="bench"), file="bench")
        self.box.conntrack = table

    def new_connections(self, count: int) -> float:
        """Seconds per packet for ``count`` new masqueraded connections."""
        self.refill()
        packets = [syn(self.next + i) for i in range(count)]
        self.next += count
        start = time.perf_counter()
        for pkt in packets:
            for _event in walk(self.box, pkt):
                pass
        return (time.perf_counter() - start) / count

    def demo_traffic(self, count: int) -> float:
        """Seconds per packet for the demo's own packets and ``count`` new connections."""
        self.refill()
        own = [spec.build() for spec in self.scenario.packets if spec.reply_to is None]
        packets = [syn(self.next + i) for i in range(count)]
        self.next += count
        mixed = [p for pair in zip(packets, own * (count // len(own) + 1), strict=False)
                 for p in pair]
        start = time.perf_counter()
        for pkt in mixed:
            for _event in walk(self.box, pkt):
                pass
        return (time.perf_counter() - start) / len(mixed)


def side_by_side(small: Bench, large: Bench, measure: str, packets: int,
                 rounds: int) -> tuple[float, float]:
    """Median seconds per packet of ``measure`` for both, rounds alternating."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(rounds):
        a.append(getattr(small, measure)(packets))
        b.append(getattr(large, measure)(packets))
    return statistics.median(a), statistics.median(b)


def checkpoint_figures(rounds: int) -> list[Figure]:
    """What the debugger's checkpoints pay for the table (ConntrackTable.snapshot and
    restore, O(entries)), for information: 10,000 entries against 1,000."""
    rows = []
    times: dict[tuple[str, int], float] = {}
    for size in (1_000, 10_000):
        bench = Bench(size)
        bench.refill()
        table = bench.box.conntrack
        if not hasattr(table, "snapshot"):  # a kptui from before issue 16
            return []
        state = table.snapshot()
        times["snapshot", size] = median_time(table.snapshot, rounds)
        times["restore", size] = median_time(lambda t=table, s=state: t.restore(s), rounds)
    for what in ("snapshot", "restore"):
        rows.append(Figure(f"conntrack table {what}, 10,000 entries",
                           times[what, 10_000] * 1e3, "ms",
                           baseline=("1,000 entries", times[what, 1_000] * 1e3)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=200, help="timed packets per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    few, many = side_by_side(Bench(10), Bench(10_000), "new_connections", args.packets,
                             args.rounds)
    d500, d3000 = side_by_side(Bench(500), Bench(3_000), "demo_traffic", args.packets,
                               args.rounds)
    rows = [
        Figure("new MASQUERADE connection, 10,000 entries", many * 1e3, "ms",
               baseline=("10 entries", few * 1e3), max_ratio=1.5),
        Figure("demo per packet, 3,000 connections", d3000 * 1e3, "ms",
               baseline=("500 connections", d500 * 1e3), max_ratio=1.5),
        *checkpoint_figures(args.rounds),
    ]
    sys.exit(0 if report(rows, "conntrack and NAT (median of "
                               f"{args.rounds} rounds of {args.packets} packets)") else 1)


if __name__ == "__main__":
    main()
