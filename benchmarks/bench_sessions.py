"""Sessions linear in their length: record, save, load, replay, seek at 1,000 and 10,000 events.

    python benchmarks/bench_sessions.py [--small N] [--events N] [--samples K] [--runs R]

Builds two sessions of the built-in demo's packets, repeated: a small one (1,000 events
by default) and a long one (10,000), each stepped one event at a time as a user records
it. For both it times

- record: stepping to N events (one ``step`` each) and turning the debugger into a
  Session (``sessions.replay.record``),
- save and load of the session file (``sessions.format``: encode, check, atomic write;
  read, decode, check),
- a headless replay of the loaded session (``sessions.replay.replay``: scenario parse,
  re-execution of the journal, comparison with the recorded events and digest), and for
  information `kptui replay --headless --json` as a whole process (Python's start-up,
  the replay, and the export's second re-execution, ``Debugger.rerun``),
- seek: K moves of the replayed debugger to random events of its timeline, as the
  replay screen moves (``Debugger.seek``), and K/2 jumps of the replay screen itself
  (Textual, headless), each from the jump to the paint that shows it (``--no-tui``:
  without these),
- step_back from the end and from random points of the recorded debugger (after the
  save; each random point reached by seeking, not timed), and once more at the long
  length without checkpoints (re-execution from the start, as before checkpoints).

Issue 16's targets: every long figure <= 10x its small one (linear), and the long
replay <= 1 s. Figures print with benchmarks/figures.py; the exit code is 1 when a
target is missed. No test asserts these timings.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from figures import Figure, report  # noqa: E402

from kptui.engine.debugger import CHECKPOINT_EVERY, Debugger  # noqa: E402
from kptui.engine.scenario import load_scenario  # noqa: E402
from kptui.sessions.format import Session, load, save  # noqa: E402
from kptui.sessions.replay import record, replay  # noqa: E402

LINEAR = 10.0  # the long figure may be at most this many times the short one (10x events)
REPLAY_MAX_S = 1.0


def scenario_text(events: int) -> str:
    """The demo with its packets repeated: enough of them for ``events`` events."""
    demo = resources.files("kptui.scenarios").joinpath("demo.toml").read_text("utf-8")
    packets = demo[demo.index("[[packets]]"):]
    return demo + ("\n" + packets) * (events // 150 + 2)


def session(events: int, every: int = CHECKPOINT_EVERY) -> tuple[Debugger, str]:
    """A debugger stepped one event at a time to ``events`` events, and its scenario text."""
    text = scenario_text(events)
    scenario = load_scenario(text, file="long.toml")
    dbg = Debugger(scenario.build_box, scenario.packets, profile=scenario.profile,
                   checkpoint_every=every)
    while len(dbg.events) < events:
        dbg.step()
    return dbg, text


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """(seconds, result) of one call, after a collection (so that no earlier garbage is
    collected on this call's time)."""
    gc.collect()
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def median_of(fn: Callable[[], object], runs: int) -> tuple[float, object]:
    results = [timed(fn) for _ in range(runs)]
    return statistics.median(t for t, _ in results), results[-1][1]


def time_step_backs(dbg: Debugger, count: int) -> list[float]:
    out = []
    for _ in range(count):
        start = time.perf_counter()
        dbg.step_back()
        out.append(time.perf_counter() - start)
    return out


def time_random_step_backs(dbg: Debugger, count: int, rng: random.Random) -> list[float]:
    """step_back from random points: reach each by seeking (not timed), then step back."""
    timeline = list(dbg.events)
    out = []
    for _ in range(count):
        dbg.seek(rng.randrange(1, len(timeline)), timeline)
        start = time.perf_counter()
        dbg.step_back()
        out.append(time.perf_counter() - start)
    return out


def time_seeks(dbg: Debugger, count: int, rng: random.Random) -> list[float]:
    """Moves to random points of the timeline (0 .. all events), from wherever the last
    one left the debugger, as the replay screen's jumps do."""
    timeline = list(dbg.events)
    out = []
    for _ in range(count):
        target = rng.randrange(0, len(timeline) + 1)
        start = time.perf_counter()
        dbg.seek(target, timeline)
        out.append(time.perf_counter() - start)
        assert len(dbg.events) == target
    return out


async def _screen_jumps(done: Any, count: int, rng: random.Random) -> list[float]:
    from kptui.app import KptApp
    from kptui.screens.replay import ReplayScreen

    timeline = list(done.debugger.events)
    app = KptApp(done.scenario, debugger=done.debugger, name="long.toml", replay=timeline)
    out: list[float] = []
    async with app.run_test(size=(160, 50)) as pilot:
        while not isinstance(app.screen, ReplayScreen):
            await asyncio.sleep(0.002)
        screen = app.screen
        while screen.busy:
            await asyncio.sleep(0.002)
        await pilot.pause()
        painted, armed = asyncio.Event(), [False]
        refresh_view, paint = screen.refresh_view, screen._compositor_refresh

        def refreshed() -> None:
            refresh_view()
            armed[0] = True

        def painting() -> None:
            paint()
            if armed[0]:
                armed[0] = False
                painted.set()

        screen.refresh_view = refreshed
        screen._compositor_refresh = painting
        for _ in range(count):
            target = rng.randrange(0, len(timeline))
            painted.clear()
            armed[0] = False
            start = time.perf_counter()
            assert screen.jump_to(str(target)) is None  # what `g` and a number do
            await asyncio.wait_for(painted.wait(), timeout=120)
            out.append(time.perf_counter() - start)
            while screen.busy:
                await asyncio.sleep(0.002)
            await pilot.pause()
            assert screen.position == target + 1
        app.exit()
    return out


def screen_jumps(done: Any, count: int, rng: random.Random) -> list[float]:
    """Jumps of the replay screen (kptui/screens/replay.py) to random events, each timed
    from the jump to the screen's paint after its panels were refreshed."""
    return asyncio.run(_screen_jumps(done, count, rng))


@dataclass
class Measured:
    """One session length's figures, in milliseconds."""

    events: int
    packets: int
    checkpoints: int
    size: int  # bytes of the saved session
    record: float
    save: float
    load: float
    replay: float
    seek_median: float
    seek_max: float
    back_end: float
    back_random: float
    matches: bool
    cli: float = 0.0
    screen_median: float = 0.0
    screen_max: float = 0.0


def measure(events: int, *, runs: int, samples: int, seed: int, tui: bool) -> Measured:
    rng = random.Random(seed)
    records = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        dbg, text = session(events)
        recorded = record(dbg, text, "long.toml")
        records.append(time.perf_counter() - start)
    packets = dbg.index + 1
    rec = statistics.median(records)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.kpt"
        # (a few milliseconds each: more runs, or noise decides their ratio)
        saving, _ = median_of(lambda: save(recorded, path), runs * 5)
        size = path.stat().st_size
        loading, loaded = median_of(lambda: load(path), runs * 5)
        command = [sys.executable, "-m", "kptui", "replay", "--headless", "--json", str(path)]
        cli, _ = median_of(lambda: subprocess.run(command, check=True, cwd=ROOT,
                                                  stdout=subprocess.DEVNULL), runs)
    assert isinstance(loaded, Session)
    replaying, done = median_of(lambda: replay(loaded), runs)
    seeks = time_seeks(done.debugger, samples, rng)
    jumps = screen_jumps(done, max(5, samples // 2), rng) if tui else [0.0]
    end = time_step_backs(dbg, samples)
    spots = time_random_step_backs(dbg, samples, rng)
    ms = 1000.0
    return Measured(events=len(recorded.events), packets=packets,
                    checkpoints=len(done.debugger.checkpoints), size=size,
                    record=rec * ms, save=saving * ms, load=loading * ms,
                    replay=replaying * ms, seek_median=statistics.median(seeks) * ms,
                    seek_max=max(seeks) * ms, back_end=statistics.median(end) * ms,
                    back_random=statistics.median(spots) * ms, matches=done.ok, cli=cli * ms,
                    screen_median=statistics.median(jumps) * ms, screen_max=max(jumps) * ms)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1_000, help="the baseline's events")
    parser.add_argument("--events", type=int, default=10_000, help="the long session's")
    parser.add_argument("--samples", type=int, default=50, help="seeks and step_backs")
    parser.add_argument("--runs", type=int, default=3, help="runs of record/save/load/replay "
                        "(the median is shown)")
    parser.add_argument("--no-tui", action="store_true", help="leave out the replay "
                        "screen's jumps (Textual, headless)")
    args = parser.parse_args(argv)

    tui = not args.no_tui
    small = measure(args.small, runs=args.runs, samples=args.samples, seed=7, tui=tui)
    long = measure(args.events, runs=args.runs, samples=args.samples, seed=7, tui=tui)
    for m in (small, long):
        print(f"session: {m.events:,} events, {m.packets} packets, {m.checkpoints} checkpoints "
              f"(every {CHECKPOINT_EVERY} events), {m.size:,} bytes; replay "
              f"{'matches' if m.matches else 'DIVERGES'}")
    plain, _ = session(args.events, 10**12)
    slow = statistics.median(time_step_backs(plain, max(5, args.samples // 10))) * 1000

    s, n = f"{small.events // 1000}k" if small.events >= 1000 else str(small.events), \
        f"{long.events // 1000}k" if long.events >= 1000 else str(long.events)

    def linear(what: str, attr: str, **more: float) -> Figure:
        return Figure(f"{what}, {n} events", getattr(long, attr), "ms",
                      baseline=(f"{s} events", getattr(small, attr)), max_ratio=LINEAR, **more)

    rows = [
        linear("record (step each event, record)", "record"),
        linear("save", "save"),
        linear("load", "load"),
        linear("headless replay", "replay", max_value=REPLAY_MAX_S * 1000),
        Figure(f"kptui replay --headless --json, whole process, {n} events", long.cli, "ms",
               baseline=(f"{s} events", small.cli)),
        linear(f"seek to a random event (median of {args.samples})", "seek_median"),
        linear("seek to a random event (max)", "seek_max"),
        *([linear("replay screen: jump to a random event, to paint (median)",
                  "screen_median"),
           linear("replay screen: jump to a random event, to paint (max)", "screen_max")]
          if tui else []),
        Figure(f"step_back from the end, {n} events (median)", long.back_end, "ms",
               baseline=("no checkpoints", slow)),
        Figure(f"step_back at random points, {n} events (median)", long.back_random, "ms",
               baseline=(f"{s} events", small.back_random)),
    ]
    ok = report(rows, title=f"sessions: {n} events against {s} (same run)")
    if not (small.matches and long.matches):
        print("a replay DIVERGES from its recording")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
