"""Sessions in the TUI: Ctrl+S / the palette save, `kptui FILE.kpt` reopens the same
screen at the same event, and `kptui replay` moves along the timeline both ways."""

from __future__ import annotations

from importlib import resources

from kptui.app import KptApp
from kptui.engine.debugger import Debugger
from kptui.engine.scenario import load_scenario
from kptui.screens.debugger import DebuggerScreen
from kptui.screens.dialogs import JumpScreen, SaveSessionScreen
from kptui.screens.replay import ReplayScreen
from kptui.sessions.format import load
from kptui.sessions.replay import replay
from kptui.widgets import PacketDiagram, RuleList, Timeline

DEMO = resources.files("kptui.scenarios").joinpath("demo.toml").read_text("utf-8")


def make_app() -> KptApp:
    scenario = load_scenario(DEMO, file="demo.toml")
    return KptApp(scenario, debugger=Debugger.for_scenario(scenario), name=scenario.name)


def reopen(path) -> KptApp:
    """What `kptui FILE.kpt` does (cli.open_session), without a terminal."""
    session = load(path)
    done = replay(session, file=str(path))
    assert done.ok, done.divergence
    return KptApp(done.scenario, debugger=done.debugger, name=done.scenario.name,
                  view=session.view, session_path=str(path))


async def press(pilot, *keys: str) -> None:
    for key in keys:
        await pilot.press(key)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def screen_state(app: KptApp) -> tuple:
    """What the user sees: the status line, the diagram, the panels, the focus."""
    screen = app.screen
    assert isinstance(screen, DebuggerScreen)
    diagram = screen.query_one(PacketDiagram)
    rules = screen.query_one(RuleList)
    return (str(screen.query_one("#status").render()), diagram.state,
            diagram.selected_stage.id, screen.view_state(), rules.view.title,
            rules.view.marks, len(screen.debugger.events), screen.debugger.current,
            screen.debugger.packet, app.focused.id if app.focused else None)


async def test_ctrl_s_saves_and_the_session_reopens_the_same(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        dbg = app.screen.debugger
        dbg.add_breakpoint("stage filter:FORWARD")
        await press(pilot, "c", "s", "s")
        await press(pilot, "e", "tab")  # edit the packet in flight: to the value box
        app.screen.query_one("#value").value = "9"
        app.screen.query_one("#path").value = "ip.ttl"
        await press(pilot, "enter")
        await press(pilot, "c", "c", "c", "u", "3", "d", "right", "right")
        before = screen_state(app)
        await press(pilot, "ctrl+s")
        assert isinstance(app.screen, SaveSessionScreen)
        assert app.screen.query_one("#session-path").value == "home-router.kpt"
        await press(pilot, "enter")
        assert isinstance(app.screen, DebuggerScreen)
        assert screen_state(app) == before
    path = tmp_path / "home-router.kpt"
    assert path.exists()
    again = reopen(path)
    async with again.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert screen_state(again) == before
        assert again.screen.query_one("#tabs").active == "conntrack"
        # and the reopened session goes on as the original would
        await press(pilot, "c")
        assert again.screen.debugger.current is not None


async def test_palette_saves_and_a_bad_path_is_refused_in_the_dialog(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "s", "s")
        await press(pilot, "ctrl+p")
        for ch in "session save":
            await pilot.press("space" if ch == " " else ch)
        await pilot.pause(0.3)
        await press(pilot, "enter")
        assert isinstance(app.screen, SaveSessionScreen)
        app.screen.query_one("#session-path").value = str(tmp_path / "no" / "such" / "x.kpt")
        await press(pilot, "enter")
        assert isinstance(app.screen, SaveSessionScreen)  # stays open with the reason
        assert "cannot save here" in str(app.screen.query_one("#error").render())
        app.screen.query_one("#session-path").value = "two.kpt"
        await press(pilot, "enter")
        assert isinstance(app.screen, DebuggerScreen)
    assert len(load(tmp_path / "two.kpt").events) == 2


async def test_reopen_keeps_a_pinned_chain_and_the_rule_list_focus(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "N", "s", "s", "s", "s")
        screen = app.screen
        screen.query_one(PacketDiagram).select_stage("filter:INPUT")
        await press(pilot, "enter")  # the box's rules, pinned
        screen.query_one(RuleList).focus()
        await pilot.pause()
        before = screen_state(app)
        assert screen.save_session("pinned.kpt") is None
    again = reopen(tmp_path / "pinned.kpt")
    async with again.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert screen_state(again) == before


async def test_replay_screen_steps_both_ways_and_jumps(tmp_path):
    path = tmp_path / "demo.kpt"
    from kptui.cli import main

    assert main(["trace", "--demo", "--save", str(path), "--format", "trace"]) == 0
    done = replay(load(path))
    timeline = list(done.debugger.events)
    app = KptApp(done.scenario, debugger=done.debugger, name="demo", replay=timeline)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        assert screen.position == 0 and "replay 0/" in screen.status_text()
        await press(pilot, "s", "s", "s")
        assert screen.position == 3 and screen.debugger.current == timeline[2]
        states = {}
        for _ in range(5):
            await press(pilot, "s")
            states[screen.position] = (screen.debugger.current, screen.debugger.packet.copy())
        for _ in range(5):
            await press(pilot, "u")
            if screen.position in states:
                assert (screen.debugger.current, screen.debugger.packet) == \
                    states[screen.position]
        assert screen.position == 3
        await press(pilot, "N")  # packet 1's start
        assert screen.debugger.current.kind == "walk_start"
        assert screen.debugger.current.index == 1
        await press(pilot, "g")
        assert isinstance(app.screen, JumpScreen)
        for ch in "p8":
            await pilot.press(ch)
        await press(pilot, "enter")
        assert screen.debugger.current.index == 8 and screen.debugger.index == 8
        await press(pilot, "end")
        assert screen.position == len(timeline)
        assert screen.query_one(Timeline).position == len(timeline)
        await press(pilot, "P")  # back to packet 8's start
        assert screen.debugger.current.kind == "walk_start"
        await press(pilot, "home")
        assert screen.position == 0 and screen.debugger.current is None
        # Enter on the timeline jumps to the event under its cursor
        timeline_widget = screen.query_one(Timeline)
        timeline_widget.focus()
        await press(pilot, "down", "down", "enter")
        assert screen.position == 3
        # the replay never records actions
        assert screen.debugger.journal == load(path).journal


def test_next_and_previous_packet_land_where_they_did_when_the_starts_were_scanned():
    # `N` / `P` find the packet starts by bisection now (not a scan of every start per
    # key); on any timeline and at any position they must land where the scan did
    import random
    from types import SimpleNamespace

    rng = random.Random(16)
    for _ in range(2000):
        size = rng.randrange(0, 40)
        starts = sorted(rng.sample(range(size), rng.randrange(0, size + 1))) if size else []
        position = rng.randrange(0, size + 1)
        delta = rng.choice((1, -1))
        screen = ReplayScreen.__new__(ReplayScreen)  # action_packet reads only these
        screen.timeline, screen.starts, sought = [object()] * size, starts, []
        screen.debugger = SimpleNamespace(events=[None] * position)
        screen._seek = sought.append
        screen.action_packet(delta)
        here = position - 1
        if delta > 0:
            later = [s for s in starts if s > here]
            target = later[0] if later else size - 1
        else:
            earlier = [s for s in starts if s < here]
            target = earlier[-1] if earlier else -1
        assert sought == [target + 1], (starts, position, delta)
