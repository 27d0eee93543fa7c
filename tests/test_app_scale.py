"""What keeps the TUI quick on a 20,000-rule box, checked for staying right.

benchmarks/bench_tui.py measures the speed; these tests check what the speed-ups must not
break: a step paints its result once (the status line only says "running" for a command
that takes a while), the box is kept out of the collector's way for the run and handed
back at its end, and the rules panel keeps the chain a stage entered to the stage's end.
"""

from __future__ import annotations

import asyncio
import gc
import random
import threading

import pytest
from test_app import ROUTER, debugger, make_app, press, status
from textual.widgets import Input, TabbedContent

from kptui.app import KptApp
from kptui.engine.events import FieldChange, NatBinding, StageEnter
from kptui.screens.debugger import BUSY_NOTICE, DebuggerScreen
from kptui.widgets import RuleList, TraceLog

# A port forward through a user chain: nat PREROUTING jumps to `web`, whose rule 2 DNATs;
# the DNAT's field changes come after the chain, at depth 0, still in nat PREROUTING.
PORT_FORWARD = '''
name = "port-forward"
iptables = """
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:web - [0:0]
-A PREROUTING -i eth1 -j web
-A web -p udp -j RETURN
-A web -p tcp -m tcp --dport 8080 -j DNAT --to-destination 192.0.2.10:80
-A POSTROUTING -o eth1 -j MASQUERADE
COMMIT
"""

[sysctl]
"net.ipv4.ip_forward" = 1

[[interfaces]]
name = "eth0"
addresses = ["192.0.2.1/24"]

[[interfaces]]
name = "eth1"
addresses = ["203.0.113.2/24"]

[[packets]]
iif = "eth1"
proto = "tcp"
src = "198.51.100.7"
dst = "203.0.113.2"
sport = 50000
dport = 8080
'''


async def step_until(pilot, done, limit: int = 60) -> None:  # noqa: ANN001
    for _ in range(limit):
        await press(pilot, "s")
        if done(debugger(pilot.app).current):
            return
    raise AssertionError(f"not reached in {limit} steps: {debugger(pilot.app).current}")


def chain_shown(app: KptApp) -> tuple[str, str, dict[int, bool]]:
    view = app.screen.query_one(RuleList).view
    return view.table, view.chain, view.marks


async def test_the_dnat_field_changes_show_the_chain_whose_rule_did_it():
    app = make_app(PORT_FORWARD)
    async with app.run_test(size=(80, 24)) as pilot:
        await step_until(pilot, lambda ev: isinstance(ev, FieldChange) and ev.path == "ip.dst")
        assert chain_shown(app) == ("nat", "web", {1: False, 2: True})
        assert "nat web: 2 rules" in str(app.screen.query_one("#rules-title").render())
        await step_until(pilot, lambda ev: isinstance(ev, StageEnter)
                         and ev.stage == "nat:POSTROUTING")
        # a new stage of the same table: its own chain, not the one left in PREROUTING
        assert chain_shown(app) == ("nat", "POSTROUTING", {})
        await step_until(pilot, lambda ev: isinstance(ev, NatBinding))
        assert chain_shown(app) == ("nat", "POSTROUTING", {1: False})


async def test_a_quick_step_paints_its_result_a_slow_one_says_it_is_running():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        shown: list[str] = []
        update = screen._set_text

        def recording(selector: str, text: str) -> None:
            if selector == "#status":
                shown.append(text)
            update(selector, text)

        screen._set_text = recording
        await press(pilot, "s")
        assert shown and not any("running" in text for text in shown)
        assert status(app).startswith("packet 0 arrives on eth0")

        gate = threading.Event()
        step = screen.debugger.step
        screen.debugger.step = lambda: (gate.wait(10), step())[1]
        await pilot.press("s")
        for _ in range(200):  # the notice comes BUSY_NOTICE seconds into the command
            await asyncio.sleep(BUSY_NOTICE / 10)
            if "running step in…" in status(app):
                break
        assert "running step in…" in status(app)
        gate.set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not screen.busy
        assert status(app).startswith("packet 0: enter ")


async def test_a_loaded_box_is_kept_from_the_collector_for_the_run_only():
    gc.unfreeze()
    app = KptApp(text=ROUTER, name="router.toml")
    async with app.run_test(size=(80, 24)) as pilot:
        while not isinstance(app.screen, DebuggerScreen):
            await asyncio.sleep(0.01)
        await pilot.pause()
        assert gc.isenabled()  # off only while the box was built
        assert gc.get_freeze_count() > 0
        await press(pilot, "c")
        assert "fate" in status(app)
    assert gc.get_freeze_count() == 0  # the app's end handed it all back


async def test_the_log_is_right_after_a_step_back_and_an_edit_made_while_it_was_hidden():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "4", *"ssssssss")  # the log shows 8 events
        log = app.screen.query_one(TraceLog)
        assert len(log.entries) == 8
        await press(pilot, "1", "u")  # on the rules tab: back to 7 events, then an edit
        assert app.screen.apply_edit("ip.ttl", "5") is None
        await press(pilot, "s", "4")
        events = debugger(app).events
        assert [(e.number, e.text) for e in log.entries] == [
            (n, ev.describe()) for n, ev in enumerate(events)]
        assert log.entries[7].kind == "edit"


@pytest.mark.parametrize("seed", range(3))
async def test_the_log_made_step_by_step_equals_the_log_made_at_once(seed):
    """The log's lines and its filter are kept up to date a step at a time; whatever the
    keys (steps, steps back, tab switches, a filter typed or changed), they must equal
    the lines made afresh from the events, filtered afresh."""
    rng = random.Random(seed)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        log = screen.query_one(TraceLog)
        await press(pilot, "4")
        for _ in range(40):
            op = rng.choice("sssssuuu41f")
            if op == "f":
                word = rng.choice(["", "matched", "nat", "fate", "rule"])
                screen.query_one("#log-filter", Input).value = word
                await pilot.pause()
            else:
                await press(pilot, op)
            if str(screen.query_one(TabbedContent).active) != "log":
                continue
            events = debugger(app).events
            fresh = [(n, ev.kind, ev.describe()) for n, ev in enumerate(events)]
            assert [(e.number, e.kind, e.text) for e in log.entries] == fresh
            words = log.filter_text.lower().split()
            assert [(e.number, e.kind, e.text) for e in log.shown] == [
                line for line in fresh
                if all(w in line[2].lower() or w == line[1] for w in words)]


async def test_the_next_packet_starts_without_the_last_packets_marks():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "c")  # packet 0 at its fate, in the chain that decided it
        shown = chain_shown(app)
        assert shown[2]
        await press(pilot, "s")  # packet 1 arrives: nothing of it was evaluated yet
        assert debugger(app).index == 1
        assert chain_shown(app) == (shown[0], shown[1], {})
        assert app.screen.query_one(RuleList).view.current == 0
