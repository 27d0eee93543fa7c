"""Snapshots of the debugger's screens at 80x24 and 120x40 (pytest-textual-snapshot).

Sync tests only (snap_compare runs its own event loop). Nothing on these
screens depends on the clock: the engine is deterministic, the cursor blink
is off in the dialogs' snapshots, and no notification is on screen. Update
with `pytest tests/test_app_snapshots.py --snapshot-update` after a deliberate
change, and look at the SVGs before committing them.
"""

from __future__ import annotations

from test_app import NAT, ROUTER, make_app


def keys(*pressed: str):
    """A run_before that presses keys and waits for each engine command to finish."""

    async def run_before(pilot) -> None:  # noqa: ANN001
        for key in pressed:
            await pilot.press(key)
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()
        for inp in pilot.app.screen.query("Input"):
            inp.cursor_blink = False
        await pilot.pause()

    return run_before


def test_start_80x24(snap_compare):
    assert snap_compare(make_app(ROUTER), terminal_size=(80, 24), run_before=keys())


def test_stepping_into_a_chain_80x24(snap_compare):
    assert snap_compare(make_app(ROUTER), terminal_size=(80, 24),
                        run_before=keys("s", "s", "s", "s"))


def test_dropped_packet_80x24(snap_compare):
    # packet 2 (ssh from the internet) ends on filter INPUT's DROP policy
    assert snap_compare(make_app(ROUTER), terminal_size=(80, 24),
                        run_before=keys("c", "c", "c"))


def test_breakpoint_hit_120x40(snap_compare):
    async def run_before(pilot) -> None:  # noqa: ANN001
        pilot.app.screen.debugger.add_breakpoint("stage nat:POSTROUTING")
        await keys("c")(pilot)

    assert snap_compare(make_app(NAT), terminal_size=(120, 40), run_before=run_before)


def test_forwarded_packet_120x40(snap_compare):
    assert snap_compare(make_app(ROUTER), terminal_size=(120, 40),
                        run_before=keys("s", "s", "s", "s", "s", "s", "s", "s", "s", "s", "s"))


def test_edit_dialog_80x24(snap_compare):
    assert snap_compare(make_app(ROUTER), terminal_size=(80, 24),
                        run_before=keys("s", "s", "e"))


def test_help_80x24(snap_compare):
    assert snap_compare(make_app(ROUTER), terminal_size=(80, 24),
                        run_before=keys("question_mark"))


# -- the diagram of each profile: a trail, a drop and breakpoints ------------------------
# (the bundled scenarios; which packet each drops is in the scenario's comments and in
# tests/test_profiles_historical.py)

DIAGRAM_CASES = {
    # profile: (scenario, packet dropped, breakpoints)
    "modern": ("demo.toml", 4, ("stage nat:POSTROUTING", "hook FORWARD")),
    "classic-2.4": ("classic-2.4.toml", 2, ("stage nat:POSTROUTING", "hook FORWARD")),
    "ipchains": ("ipchains.toml", 3, ("stage ipchains:forward", "stage tc:egress")),
}


def scenario_app(name: str):
    from pathlib import Path

    from kptui.app import KptApp
    from kptui.engine.debugger import Debugger
    from kptui.engine.scenario import load_scenario

    text = (Path(__file__).parent.parent / "kptui" / "scenarios" / name).read_text()
    scenario = load_scenario(text, file=name)
    return KptApp(scenario, debugger=Debugger.for_scenario(scenario), name=scenario.name)


def dropped(packet: int, breakpoints: tuple[str, ...]):
    """A run_before: set the breakpoints, run to packet ``packet``'s fate (a drop)."""

    async def run_before(pilot) -> None:  # noqa: ANN001
        dbg = pilot.app.screen.debugger
        for spec in breakpoints:
            dbg.add_breakpoint(spec)
        pilot.app.screen.refresh_view()
        while not (dbg.index == packet and dbg.current is not None
                   and dbg.current.kind == "fate"):
            await keys("r" if dbg.index == packet and dbg.in_walk else "N")(pilot)
        await keys()(pilot)

    return run_before


def _diagram_case(snap_compare, profile: str, size: tuple[int, int]) -> bool:
    name, packet, breakpoints = DIAGRAM_CASES[profile]
    return snap_compare(scenario_app(name), terminal_size=size,
                        run_before=dropped(packet, breakpoints))


def test_diagram_modern_drop_80x24(snap_compare):
    assert _diagram_case(snap_compare, "modern", (80, 24))


def test_diagram_modern_drop_160x50(snap_compare):
    assert _diagram_case(snap_compare, "modern", (160, 50))


def test_diagram_classic_drop_80x24(snap_compare):
    assert _diagram_case(snap_compare, "classic-2.4", (80, 24))


def test_diagram_classic_drop_160x50(snap_compare):
    assert _diagram_case(snap_compare, "classic-2.4", (160, 50))


def test_diagram_ipchains_drop_80x24(snap_compare):
    assert _diagram_case(snap_compare, "ipchains", (80, 24))


def test_diagram_ipchains_drop_160x50(snap_compare):
    assert _diagram_case(snap_compare, "ipchains", (160, 50))


def test_diagram_zoomed_mid_walk_80x24(snap_compare):
    # z at 80x24: the wide diagram takes the screen (it scrolls), the current box reversed
    assert snap_compare(make_app(ROUTER), terminal_size=(80, 24),
                        run_before=keys("s", "s", "s", "s", "s", "s", "z"))


def _mid_walk(profile: str, hit: str):
    """A run_before: the case's breakpoints and ``hit``, then continue to the first hit."""
    name, _packet, breakpoints = DIAGRAM_CASES[profile]

    async def run_before(pilot) -> None:  # noqa: ANN001
        dbg = pilot.app.screen.debugger
        for spec in (*breakpoints, hit):
            dbg.add_breakpoint(spec)
        await keys("c")(pilot)

    return scenario_app(name), run_before


def test_diagram_classic_mid_walk_80x24(snap_compare):
    app, run_before = _mid_walk("classic-2.4", "stage mangle:PREROUTING")
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_diagram_ipchains_mid_walk_160x50(snap_compare):
    app, run_before = _mid_walk("ipchains", "stage masq:demasq")
    assert snap_compare(app, terminal_size=(160, 50), run_before=run_before)
