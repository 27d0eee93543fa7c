"""Reverse stepping on a long session: median step_back latency at 10,000 events.

    python benchmarks/bench_sessions.py [--events N] [--samples K]

Builds a session of the built-in demo's packets, repeated, stepped one event at a
time to N events (10,000 by default); then times K step_backs from the end and K
step_backs from random points (each after re-reaching the point), with the
default checkpoint interval, and once more without checkpoints (re-execution from
the start, as before checkpoints existed) for comparison. Also times saving and
loading the session and a headless replay of it. Prints the figures; asserts
nothing (timings are not tests).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

from kptui.engine.debugger import CHECKPOINT_EVERY, Debugger
from kptui.engine.scenario import load_scenario
from kptui.sessions.format import load, save
from kptui.sessions.replay import record, replay


def session(events: int, every: int) -> tuple[Debugger, object]:
    demo = resources.files("kptui.scenarios").joinpath("demo.toml").read_text("utf-8")
    packets = demo[demo.index("[[packets]]"):]
    text = demo + ("\n" + packets) * (events // 150 + 2)  # the demo's packets, again and again
    scenario = load_scenario(text, file="long.toml")
    dbg = Debugger(scenario.build_box, scenario.packets, profile=scenario.profile,
                   checkpoint_every=every)
    while len(dbg.events) < events:
        dbg.step()
    return dbg, (text, scenario)


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def time_step_backs(dbg: Debugger, count: int) -> list[float]:
    out = []
    for _ in range(count):
        start = time.perf_counter()
        dbg.step_back()
        out.append(time.perf_counter() - start)
    return out


def time_random_points(dbg: Debugger, count: int, rng: random.Random) -> list[float]:
    """step_back from random points: reach each by seeking (not timed), then step back."""
    timeline = list(dbg.events)
    out = []
    for _ in range(count):
        dbg.seek(rng.randrange(1, len(timeline)), timeline)
        start = time.perf_counter()
        dbg.step_back()
        out.append(time.perf_counter() - start)
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args(argv)
    rng = random.Random(7)

    start = time.perf_counter()
    dbg, (text, _scenario) = session(args.events, CHECKPOINT_EVERY)
    build = time.perf_counter() - start
    print(f"session: {len(dbg.events):,} events, {dbg.index + 1} packets, "
          f"{len(dbg.checkpoints)} checkpoints (every {CHECKPOINT_EVERY} events), "
          f"stepped in {build:.2f} s")
    end = time_step_backs(dbg, args.samples)
    print(f"step_back from the end, with checkpoints:    median {median_ms(end):6.2f} ms, "
          f"max {max(end) * 1000:6.2f} ms ({args.samples} samples)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.kpt"
        start = time.perf_counter()
        save(record(dbg, text, "long.toml"), path)
        saved = time.perf_counter() - start
        start = time.perf_counter()
        loaded = load(path)
        loading = time.perf_counter() - start
        start = time.perf_counter()
        done = replay(loaded)
        replaying = time.perf_counter() - start
        print(f"save {saved * 1000:.0f} ms ({path.stat().st_size:,} bytes), load "
              f"{loading * 1000:.0f} ms, headless replay {replaying * 1000:.0f} ms "
              f"({'matches' if done.ok else 'DIVERGES: ' + done.divergence})")

    # (seeking is not a user action: the random points below come after the save)
    spots = time_random_points(dbg, args.samples, rng)
    print(f"step_back at random points, with checkpoints: median {median_ms(spots):6.2f} ms, "
          f"max {max(spots) * 1000:6.2f} ms")

    plain, _ = session(args.events, 10**12)
    slow = time_step_backs(plain, max(5, args.samples // 10))
    print(f"step_back from the end, no checkpoints:       median {median_ms(slow):6.2f} ms "
          f"(re-execution from the start)")

    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
