"""The TUI on kube-proxy's 20,000-rule ruleset: launch, step latency and memory.

Issue 16's targets, each printed with benchmarks/figures.py against a baseline of the same
run:

- launch to debugger ready: from starting the process (``kptui FILE`` through the CLI's own
  path, headless at 80x24) to the first paint of the debugger screen, on the 20k-rule
  scenario with its rules in a file of their own (``iptables_file = "rules.v4"``, the form
  issue 16 gives big rulesets) and on the built-in demo (<= 1.5 s, and <= 1.5x the demo),
  median of --runs; the same rules inline in the TOML are timed too, for comparison;
- step (s), step over (n), step back (u) and the step that crosses a packet boundary (the
  step that reaches a packet's fate, and the one that starts the next packet), median and
  max (<= 50 ms, <= 150 ms): from the key entering the app as the terminal driver delivers
  it to the first paint after the panels were refreshed from the engine. The engine command
  runs in a worker thread; its own time is printed beside each figure (the part the engine
  must remove, the rest is the TUI's);
- memory: peak RSS (ru_maxrss, from wait4) of a process that opens the TUI headless on the
  20k rules and steps through its packets, against ``kptui trace`` of the same scenario,
  each in its own process (<= 2x).

The scenario is bench_iptables' kube-proxy node with --packets packets from a pod to
ClusterIPs near the end of KUBE-SERVICES (one by default in ``scenario_text()``, three here:
packet boundaries need more than one).

Run: python benchmarks/bench_tui.py [--runs N] [--packets N] [--profile]
Exit status 1 when a target is missed (for people; no test asserts timing).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_iptables import CLIENT_POD, SCENARIO  # noqa: E402
from figures import Figure, report  # noqa: E402
from kube_proxy import kube_proxy_ruleset  # noqa: E402

LAUNCH_TARGET_S = 1.5
LAUNCH_RATIO = 1.5
MEDIAN_TARGET_MS = 50.0
MAX_TARGET_MS = 150.0
MEMORY_RATIO = 2.0
SIZE = (80, 24)
READY = "kptui-bench-ready"

PACKET = """
[[packets]]
iif = "cni0"
proto = "tcp"
src = "{src}"
dst = "{dst}"
sport = {sport}
dport = {dport}
"""


INLINE = "iptables = '''\n{iptables}'''"


def scenario_text(packets: int = 1, rules_file: str = "") -> str:
    """bench_iptables' kube-proxy node; ``packets`` packets from one pod to the last TCP
    services with endpoints (the first one to the very last, as bench_iptables walks).
    With ``rules_file``, the rules go there and the scenario names it (iptables_file)."""
    text, ports = kube_proxy_ruleset()
    template = SCENARIO
    if rules_file:
        assert INLINE in SCENARIO
        Path(rules_file).write_text(text, encoding="utf-8")
        template = SCENARIO.replace(INLINE, f"iptables_file = {Path(rules_file).name!r}")
    targets = [sp for sp in reversed(ports) if sp.endpoints and sp.proto == "tcp"]
    if not targets:
        raise SystemExit("no TCP service with endpoints was generated")
    first = targets[0]
    out = template.format(iptables=text, src=CLIENT_POD, dst=first.cluster_ip,
                          dport=first.port)
    for n in range(1, packets):
        sp = targets[n % len(targets)]
        out += PACKET.format(src=CLIENT_POD, dst=sp.cluster_ip, sport=40000 + n, dport=sp.port)
    return out


# -- in the app: waiting for the debugger, timing keys -------------------------------------

async def debugger_ready(app: Any) -> None:
    """Until the debugger screen is current and has painted once (the loading screen's
    worker may not even have started when this is called)."""
    from kptui.screens.debugger import DebuggerScreen

    while not isinstance(app.screen, DebuggerScreen):
        await asyncio.sleep(0.002)
    screen = app.screen
    painted = asyncio.Event()
    paint = screen._compositor_refresh

    def first_paint() -> None:
        paint()
        painted.set()

    screen._compositor_refresh = first_paint
    await asyncio.wait_for(painted.wait(), timeout=120)
    del screen._compositor_refresh  # back to the class's method


async def settle(app: Any, pilot: Any) -> None:
    """Until no engine command runs and the app is idle (not part of any figure)."""
    while app.screen.busy:
        await asyncio.sleep(0.002)
    await pilot.pause()


class PaintProbe:
    """Times a key from the moment the terminal would deliver it to the screen's next paint
    after the panels were refreshed; ``engine`` collects the worker's own time per command
    (CommandDone.seconds, through run_test's message hook)."""

    def __init__(self, app: Any, screen: Any) -> None:
        self.app, self.screen = app, screen
        self.armed = False
        self.painted = asyncio.Event()
        self.engine: list[float] = []
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

    def hook(self, message: Any) -> None:
        from kptui.screens.debugger import CommandDone

        if isinstance(message, CommandDone):
            self.engine.append(message.seconds)

    async def key(self, key: str) -> tuple[float, float]:
        """(key to paint, the engine's part of it), in seconds."""
        from textual import events

        self.painted.clear()
        self.armed = False
        done = len(self.engine)
        start = time.perf_counter()
        self.app._driver.send_message(events.Key(key, key if len(key) == 1 else None))
        await asyncio.wait_for(self.painted.wait(), timeout=120)
        took = time.perf_counter() - start
        return took, sum(self.engine[done:])


class Samples:
    """Key-to-paint and engine times per kind of move."""

    KINDS = ("step", "step over", "step back", "packet boundary")

    def __init__(self) -> None:
        self.total: dict[str, list[float]] = {k: [] for k in self.KINDS}
        self.engine: dict[str, list[float]] = {k: [] for k in self.KINDS}

    def add(self, kind: str, took: tuple[float, float]) -> None:
        self.total[kind].append(took[0] * 1000)
        self.engine[kind].append(took[1] * 1000)


def crossed(dbg: Any, index_before: int) -> bool:
    """The move reached a fate, or started another packet."""
    from kptui.engine.events import Fate

    return isinstance(dbg.current, Fate) or dbg.index != index_before


async def move(probe: PaintProbe, samples: Samples, app: Any, pilot: Any, key: str) -> None:
    dbg = app.screen.debugger
    before = dbg.index
    took = await probe.key(key)
    kind = {"s": "step", "n": "step over", "u": "step back"}[key]
    if key != "u" and crossed(dbg, before):
        kind = "packet boundary"
    samples.add(kind, took)
    await settle(app, pilot)


async def latencies(text: str, *, steps: int, backs: int,
                    profile: cProfile.Profile | None) -> Samples:
    """Open the TUI on ``text`` and walk every packet: steps, steps back, steps over to the
    fate, the step to the next packet, a step back over that boundary and forward again."""
    from kptui.app import KptApp
    from kptui.engine.events import Fate

    samples = Samples()
    probe: PaintProbe | None = None

    def hook(message: Any) -> None:
        if probe is not None:
            probe.hook(message)

    app = KptApp(text=text, name="kube-proxy.toml")
    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        await debugger_ready(app)
        await pilot.pause()
        probe = PaintProbe(app, app.screen)
        dbg = app.screen.debugger
        if profile is not None:
            profile.enable()
        while dbg.state != "finished":
            for _ in range(steps):
                await move(probe, samples, app, pilot, "s")
                if isinstance(dbg.current, Fate):
                    break
            for _ in range(backs):
                if dbg.walk_start >= len(dbg.events) - 1:
                    break  # stay in this packet
                await move(probe, samples, app, pilot, "u")
            while not isinstance(dbg.current, Fate):
                await move(probe, samples, app, pilot, "n")
            if dbg.state == "finished":
                break
            await move(probe, samples, app, pilot, "s")  # the next packet starts
            await move(probe, samples, app, pilot, "u")  # back to the fate before it
            await move(probe, samples, app, pilot, "s")  # and over the boundary again
        if profile is not None:
            profile.disable()
        app.exit()
    return samples


# -- child processes: launch and memory ----------------------------------------------------

class _Tty:
    """stdin/stdout as the CLI sees them on a terminal (it opens the TUI only there)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def isatty(self) -> bool:
        return True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def child(mode: str, path: str) -> int:
    """``kptui PATH`` through kptui.cli.main, with the app run headless: ``ready`` prints
    when the debugger screen first painted and quits; ``memory`` then steps through every
    packet (a few steps, continue to the fate, the next packet) and shows the log."""
    import kptui.engine.scenario as scenario_module
    from kptui import cli
    from kptui.app import KptApp
    from kptui.engine.debugger import Debugger

    out = sys.stdout
    engine = [0.0]  # seconds in load_scenario and Debugger.for_scenario (the engine's part)

    def timed(fn: Any) -> Any:
        def run_timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                engine[0] += time.perf_counter() - start
        return run_timed

    # the CLI and the app import them when they run, so the timed ones are what they get
    scenario_module.load_scenario = timed(scenario_module.load_scenario)
    Debugger.for_scenario = classmethod(timed(Debugger.for_scenario.__func__))

    async def drive(app: Any) -> None:
        async with app.run_test(size=SIZE) as pilot:
            await debugger_ready(app)
            print(READY, engine[0], flush=True, file=out)
            if mode == "memory":
                dbg = app.screen.debugger
                while dbg.state != "finished":
                    for key in ("s", "s", "s", "s", "s", "c"):
                        await pilot.press(key)
                        await settle(app, pilot)
                    await pilot.press("4")  # the log tab: every event's line
                    await settle(app, pilot)
            app.exit()

    def run(app: Any, **_: Any) -> Any:
        asyncio.run(drive(app))
        return app.return_value

    KptApp.run = run  # type: ignore[method-assign]
    sys.stdin, sys.stdout = _Tty(sys.stdin), _Tty(sys.stdout)  # type: ignore[assignment]
    return cli.main([path] if path else [])


# Launches read and write bytecode caches as an installed kptui does: without them
# (PYTHONDONTWRITEBYTECODE and a module changed since its cache) every launch compiles it.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def launch(path: str) -> tuple[float, float]:
    """Seconds from starting ``kptui PATH`` (the demo for "") to its debugger screen, and
    the part of them spent loading the scenario and building the box (the engine)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", "ready", path or ""],
                            stdout=subprocess.PIPE, text=True, env=CHILD_ENV)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(READY):
            took = time.perf_counter() - start, float(line.split()[1])
            break
    else:
        raise SystemExit(f"kptui {path or '(demo)'} never got to its debugger screen")
    proc.stdout.read()
    if proc.wait() != 0:
        raise SystemExit(f"kptui {path or '(demo)'} failed (status {proc.returncode})")
    return took


def peak_rss_mb(argv: list[str]) -> float:
    """Peak RSS of a process running ``argv`` (wait4's ru_maxrss, kB on Linux), in MB."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, env=CHILD_ENV)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed (status {proc.returncode})")
    return usage.ru_maxrss / 1024


# -- main ------------------------------------------------------------------------------------

def middle(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The median launch (with its own engine part)."""
    return sorted(runs)[len(runs) // 2]


def figures(launch_kp: tuple[float, float], launch_demo: tuple[float, float],
            launch_inline: tuple[float, float], samples: Samples, tui_mb: float,
            trace_mb: float) -> list[Figure]:
    rows = [Figure("launch to debugger ready, 20k rules", launch_kp[0], "s",
                   baseline=("the demo", launch_demo[0]), max_ratio=LAUNCH_RATIO,
                   max_value=LAUNCH_TARGET_S),
            Figure("  of which load + build the box (engine)", launch_kp[1], "s",
                   baseline=("the demo's", launch_demo[1])),
            Figure("  the rest (Python, Textual, the screens)", launch_kp[0] - launch_kp[1],
                   "s", baseline=("the demo's", launch_demo[0] - launch_demo[1])),
            Figure("  the same rules inline (iptables = '''...''')", launch_inline[0], "s",
                   baseline=("the demo", launch_demo[0]))]
    for kind in Samples.KINDS:
        total, engine = samples.total[kind], samples.engine[kind]
        if not total:
            continue
        rows.append(Figure(f"{kind} ({len(total)}), median", statistics.median(total), "ms",
                           max_value=MEDIAN_TARGET_MS))
        rows.append(Figure(f"{kind}, max", max(total), "ms", max_value=MAX_TARGET_MS))
        rows.append(Figure(f"  of which the engine (median, max {max(engine):.0f} ms)",
                           statistics.median(engine), "ms"))
    rows.append(Figure("TUI memory, 20k rules, peak RSS", tui_mb, "MB",
                       baseline=("kptui trace", trace_mb), max_ratio=MEMORY_RATIO))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="launches of each, for medians")
    parser.add_argument("--packets", type=int, default=3, help="packets in the scenario")
    parser.add_argument("--steps", type=int, default=20, help="steps into each packet")
    parser.add_argument("--backs", type=int, default=5, help="steps back in each packet")
    parser.add_argument("--profile", action="store_true",
                        help="print a cProfile of the UI thread during the key figures")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(*args.child)
    t = time.perf_counter()
    text = scenario_text(args.packets)
    print(f"scenario generated in {time.perf_counter() - t:.2f} s "
          f"({text.count(chr(10)):,} lines, {args.packets} packets)")
    with tempfile.TemporaryDirectory(prefix="kptui-bench-tui-") as tmp:
        path = str(Path(tmp) / "kube-proxy.toml")
        Path(path).write_text(text, encoding="utf-8")
        # the form issue 16 gives big rulesets: the rules in a file of their own
        file_path = str(Path(tmp) / "kube-proxy-file.toml")
        Path(file_path).write_text(
            scenario_text(args.packets, rules_file=str(Path(tmp) / "rules.v4")), "utf-8")
        launch(file_path)  # writes the bytecode caches a first run writes
        demo, big, inline = [], [], []
        for _ in range(args.runs):  # interleaved: a busy moment hits both alike
            demo.append(launch(""))
            big.append(launch(file_path))
            inline.append(launch(path))
        print(f"launches: demo {', '.join(f'{s:.2f}' for s, _ in demo)} s; "
              f"20k rules {', '.join(f'{s:.2f}' for s, _ in big)} s; "
              f"inline {', '.join(f'{s:.2f}' for s, _ in inline)} s")
        tui_mb = peak_rss_mb([sys.executable, __file__, "--child", "memory", path])
        trace_mb = peak_rss_mb([sys.executable, "-m", "kptui", "trace", path])
        prof = cProfile.Profile() if args.profile else None
        samples = asyncio.run(latencies(text, steps=args.steps, backs=args.backs,
                                        profile=prof))
    if prof is not None:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
    rows = figures(middle(big), middle(demo), middle(inline), samples, tui_mb, trace_mb)
    return 0 if report(rows, "the TUI on kube-proxy's 20,000 rules (80x24, headless)") else 1


if __name__ == "__main__":
    sys.exit(main())
