"""Loading a scenario is linear in its packets: 1,000 vs 10,000 [[packets]] blocks.

    python benchmarks/bench_load.py [--small 1000] [--large 10000] [--repeat 3]

Builds the built-in demo with its packet block repeated, loads it with
load_scenario (TOML parse, validation, line numbers for every packet), and
prints the best of ``--repeat`` times for each size and their ratio. Linear
means a ratio near large/small (10x); before issue 13 it was quadratic
(1,000 packets 5 s, 4,000 packets 48 s). Asserts nothing: timings are not tests.
"""

from __future__ import annotations

import argparse
import time
from importlib import resources

from kptui.engine.scenario import load_scenario

PACKET = """[[packets]]
iif = "eth1"
proto = "tcp"
src = "198.51.100.7"
dst = "203.0.113.2"
sport = 40000
dport = 8080

"""


def scenario_text(packets: int) -> str:
    demo = resources.files("kptui.scenarios").joinpath("demo.toml").read_text("utf-8")
    return demo[:demo.index("[[packets]]")] + PACKET * packets


def best_load(packets: int, repeat: int) -> float:
    text = scenario_text(packets)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        scenario = load_scenario(text, file="bench.toml")
        times.append(time.perf_counter() - start)
        assert len(scenario.packets) == packets
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    small = best_load(args.small, args.repeat)
    large = best_load(args.large, args.repeat)
    print(f"load {args.small:>6} packets: {small:.3f} s")
    print(f"load {args.large:>6} packets: {large:.3f} s")
    print(f"ratio: {large / small:.1f}x for {args.large / args.small:.0f}x the packets "
          "(linear: about the same)")


if __name__ == "__main__":
    main()
