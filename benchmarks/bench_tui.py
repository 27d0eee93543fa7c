"""The TUI with kube-proxy's 20,000-rule ruleset: start-up and step latency.

Targets (issue 6): start-up to the first painted screen <= 1.5 s; a step key to
the updated screen <= 50 ms median, measured in-process in Pilot's headless app:
from the key event entering the app (as the terminal driver delivers it) to
the first paint of the debugger screen after its panels were refreshed from
the engine (the step itself runs in a worker thread). Alternate steps go
through ``pilot.press`` + ``pilot.pause`` instead, which adds Pilot's own idle
detection (it sleeps until the CPU is quiet); that figure is printed too.

Run: python benchmarks/bench_tui.py [--steps N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_iptables import CLIENT_POD, SCENARIO, pick_target  # noqa: E402
from kube_proxy import kube_proxy_ruleset  # noqa: E402

START_TARGET_S = 1.5
STEP_TARGET_MS = 50.0


def scenario_text() -> str:
    text, ports = kube_proxy_ruleset()
    target = pick_target(ports)
    return SCENARIO.format(iptables=text, src=CLIENT_POD, dst=target.cluster_ip,
                           dport=target.port)


class PaintProbe:
    """Times a key from the moment the terminal would deliver it to the screen's next paint
    after the panels were refreshed (the compositor's refresh of the debugger screen)."""

    def __init__(self, app, screen) -> None:  # noqa: ANN001 - KptApp, DebuggerScreen
        self.app, self.screen = app, screen
        self.armed = False
        self.painted = asyncio.Event()
        refresh_view, paint = screen.refresh_view, screen._compositor_refresh

        def refreshed() -> None:
            refresh_view()
            self.armed = True

        def painted() -> None:
            paint()
            if self.armed:
                self.armed = False
                self.painted.set()

        screen.refresh_view = refreshed
        screen._compositor_refresh = painted

    async def key(self, key: str) -> float:
        from textual import events

        self.painted.clear()
        start = time.perf_counter()
        self.app._driver.send_message(events.Key(key, key if len(key) == 1 else None))
        await asyncio.wait_for(self.painted.wait(), timeout=30)
        return time.perf_counter() - start


async def measure(text: str, steps: int) -> dict[str, float]:
    from kptui.app import KptApp
    from kptui.screens.debugger import DebuggerScreen
    from kptui.screens.loading import LoadingScreen

    out: dict[str, float] = {}
    t0 = time.perf_counter()
    app = KptApp(text=text, name="kube-proxy.toml")
    first_paint = asyncio.Event()
    original = LoadingScreen._compositor_refresh

    def loading_painted(screen) -> None:  # noqa: ANN001
        original(screen)
        if not first_paint.is_set():
            out["first_paint_s"] = time.perf_counter() - t0
            first_paint.set()

    LoadingScreen._compositor_refresh = loading_painted
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await first_paint.wait()
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert isinstance(app.screen, DebuggerScreen), app.screen
            out["ready_s"] = time.perf_counter() - t0  # box built, debugger on screen
            probe = PaintProbe(app, app.screen)
            painted: list[float] = []
            piloted: list[float] = []
            for i in range(steps):
                if app.screen.debugger.state == "finished":
                    break
                if i % 2:
                    painted.append(await probe.key("s"))
                    await pilot.pause()
                else:  # the same key through Pilot: includes Pilot's idle detection
                    start = time.perf_counter()
                    await pilot.press("s")
                    await app.workers.wait_for_complete()
                    await pilot.pause()
                    piloted.append(time.perf_counter() - start)
            back = [await probe.key("u") for _ in range(3)]
            out["step_median_ms"] = statistics.median(painted) * 1000
            out["step_max_ms"] = max(painted) * 1000
            out["pilot_median_ms"] = statistics.median(piloted) * 1000
            out["steps"] = len(painted) + len(piloted)
            out["step_back_median_ms"] = statistics.median(back) * 1000
    finally:
        LoadingScreen._compositor_refresh = original
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args(argv)
    t = time.perf_counter()
    text = scenario_text()
    print(f"ruleset generated in {time.perf_counter() - t:.2f} s "
          f"({text.count(chr(10)):,} lines)")
    r = asyncio.run(measure(text, args.steps))
    ok_start = r["first_paint_s"] <= START_TARGET_S
    ok_step = r["step_median_ms"] <= STEP_TARGET_MS
    print(f"start-up to first paint (loading screen): {r['first_paint_s']:.3f} s "
          f"(target <= {START_TARGET_S} s) {'ok' if ok_start else 'SLOW'}")
    print(f"start-up to the debugger screen (box built): {r['ready_s']:.3f} s")
    print(f"step key -> updated screen: median {r['step_median_ms']:.1f} ms, "
          f"max {r['step_max_ms']:.1f} ms over {r['steps']:.0f} steps "
          f"(target <= {STEP_TARGET_MS:.0f} ms) {'ok' if ok_step else 'SLOW'}")
    print(f"  the same through pilot.press + wait + pilot.pause (adds Pilot's idle "
          f"detection): median {r['pilot_median_ms']:.1f} ms")
    print(f"step back (re-executes the session): median {r['step_back_median_ms']:.1f} ms")
    return 0 if ok_start and ok_step else 1


if __name__ == "__main__":
    sys.exit(main())
