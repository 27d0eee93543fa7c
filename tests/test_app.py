"""The full-screen debugger driven as a user drives it: keys, dialogs, palette, help.

Every test runs the real app in-process with Textual's Pilot at 80x24 (the
smallest terminal the issue asks for) on the built-in demo or a small
scenario, with a debugger injected so nothing depends on timing. What a
packet does is the engine's business (tested elsewhere against the kernel);
these tests check that the screen shows it and that each key does what the
footer and the help say.
"""

from __future__ import annotations

import contextlib

import pytest
from textual.worker import WorkerCancelled

from kptui.app import KptApp
from kptui.cli import main, read_scenario_text
from kptui.engine.debugger import Debugger
from kptui.engine.events import Fate, RuleEval, StageEnter, UserEdit
from kptui.engine.scenario import load_scenario
from kptui.screens.debugger import DebuggerScreen
from kptui.screens.dialogs import BreakpointScreen, ComposeScreen, EditFieldScreen
from kptui.screens.help import HelpScreen
from kptui.widgets import PacketDiagram, PacketTree, RuleList, TraceLog

# A small home router (the built-in demo as it was when these tests were written; the
# demo itself keeps growing): LAN 192.0.2.0/24 on eth0, uplink 203.0.113.0/24 on eth1,
# a default-drop firewall, seven packets.
ROUTER = """
name = "home-router"
profile = "modern"

setup = \"\"\"
ip route add default via 203.0.113.1 dev eth1
\"\"\"

iptables = \"\"\"
*mangle
:PREROUTING ACCEPT [0:0]
-A PREROUTING -i eth0 -p udp -m udp --dport 53 -j MARK --set-mark 0x1
-A PREROUTING -i eth0 -p tcp -m tcp --dport 22 -j TOS --set-tos 0x10/0x3f
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:lan-in - [0:0]
:wan-in - [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -i eth0 -j lan-in
-A INPUT -i eth1 -j wan-in
-A FORWARD -i eth0 -o eth1 -j ACCEPT
-A FORWARD -d 192.0.2.10/32 -i eth1 -o eth0 -p tcp -m tcp --dport 443 -j ACCEPT
-A FORWARD -j LOG --log-prefix "fwd-drop: "
-A lan-in -p udp -m udp --dport 53 -j ACCEPT
-A lan-in -p tcp -m tcp --dport 22 -j ACCEPT
-A lan-in -p icmp -m icmp --icmp-type 8 -j ACCEPT
-A wan-in -p icmp -m icmp --icmp-type 8 -m limit --limit 1/sec --limit-burst 2 -j ACCEPT
-A wan-in -j LOG --log-prefix "wan-drop: "
COMMIT
\"\"\"

[sysctl]
"net.ipv4.ip_forward" = 1

[[interfaces]]
name = "eth0"
addresses = ["192.0.2.1/24"]

[[interfaces]]
name = "eth1"
addresses = ["203.0.113.2/24"]

[[packets]]
iif = "eth0"
proto = "tcp"
src = "192.0.2.10"
dst = "198.51.100.7"
sport = 40000
dport = 443

[[packets]]
iif = "eth0"
proto = "udp"
src = "192.0.2.10"
dst = "192.0.2.1"
sport = 51000
dport = 53

[[packets]]
iif = "eth1"
proto = "tcp"
src = "198.51.100.7"
dst = "203.0.113.2"
sport = 50000
dport = 22

[[packets]]
iif = "eth1"
proto = "tcp"
src = "198.51.100.7"
dst = "192.0.2.10"
sport = 50001
dport = 443

[[packets]]
iif = "eth1"
proto = "tcp"
src = "198.51.100.7"
dst = "192.0.2.20"
sport = 50002
dport = 80

[[packets]]
iif = "local"
proto = "icmp"
src = "203.0.113.2"
dst = "198.51.100.7"
icmp_type = 8
icmp_id = 7

[[packets]]
iif = "eth0"
proto = "udp"
src = "192.0.2.10"
dst = "198.51.100.7"
sport = 33434
dport = 33434
ttl = 1
"""

# A router that masquerades what leaves eth1: its nat table makes the kernel track
# connections, so nat POSTROUTING is traversed (and a breakpoint there can hit).
NAT = """
name = "nat-router"
iptables = \"\"\"
*nat
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o eth1 -j MASQUERADE
COMMIT
\"\"\"
[sysctl]
"net.ipv4.ip_forward" = 1
[[interfaces]]
name = "eth0"
addresses = ["192.0.2.1/24"]
[[interfaces]]
name = "eth1"
addresses = ["203.0.113.2/24"]
[[packets]]
iif = "eth0"
proto = "tcp"
src = "192.0.2.10"
dst = "203.0.113.50"
sport = 40000
dport = 443
"""


def make_app(text: str = ROUTER) -> KptApp:
    name = "test.toml"
    scenario = load_scenario(text, file=name)
    return KptApp(scenario, debugger=Debugger.for_scenario(scenario), name=scenario.name)


async def press(pilot, *keys: str) -> None:
    """Press keys one by one, waiting for each engine command (a worker) to finish."""
    for key in keys:
        await pilot.press(key)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def type_text(pilot, text: str) -> None:
    for ch in text:
        await pilot.press("space" if ch == " " else ch)


def status(app: KptApp) -> str:
    return str(app.screen.query_one("#status").render())


def debugger(app: KptApp) -> Debugger:
    screen = app.screen
    while not isinstance(screen, DebuggerScreen):
        screen = app.screen_stack[-2]
    return screen.debugger


async def test_opens_the_demo_paused_before_the_first_packet():
    text, _ = read_scenario_text(None)
    app = make_app(text)
    count = len(load_scenario(text, file="demo").packets)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, DebuggerScreen)
        assert f"home-router: paused before packet 0 of {count}" in status(app)
        assert debugger(app).state == "idle"
        assert str(app.screen.query_one(PacketTree).root.label).startswith("no packet yet")


async def test_step_in_walks_event_by_event_and_the_diagram_follows():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "s")
        assert "packet 0 arrives on eth0" in status(app)
        await press(pilot, "s")
        dbg = debugger(app)
        assert isinstance(dbg.current, StageEnter)
        diagram = app.screen.query_one(PacketDiagram)
        assert diagram.state.current == dbg.current.stage == "mangle:PREROUTING"
        assert "enter mangle PREROUTING" in status(app)
        # the stages before it passed silently (nothing configured): drawn as the trail
        assert "raw:PREROUTING" in diagram.state.passed


async def test_function_keys_and_letters_do_the_same():
    letters, fkeys = make_app(), make_app()
    async with letters.run_test(size=(80, 24)) as pilot:
        await press(pilot, "s", "s", "n", "s", "o")
        by_letter = [e.describe() for e in debugger(letters).events]
    async with fkeys.run_test(size=(80, 24)) as pilot:
        await press(pilot, "f11", "f11", "f10", "f11", "shift+f11")
        by_fkey = [e.describe() for e in debugger(fkeys).events]
    assert by_letter == by_fkey
    assert len(by_letter) > 5


async def test_rules_panel_marks_the_rule_under_evaluation():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "s", "s", "s", "s")  # walk start, stage, chain enter, rule 1
        cur = debugger(app).current
        assert isinstance(cur, RuleEval) and (cur.table, cur.chain, cur.rule) == (
            "mangle", "PREROUTING", 1)
        rules = app.screen.query_one(RuleList)
        assert (rules.view.table, rules.view.chain) == ("mangle", "PREROUTING")
        assert rules.view.current == 1
        # demo packet 0 is tcp to port 443: rule 1 (-p udp --dport 53) does not match
        assert rules.view.marks == {1: False}
        assert "mangle PREROUTING" in str(app.screen.query_one("#rules-title").render())


async def test_continue_runs_to_the_fate_and_marks_a_drop_in_the_diagram():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "c")  # packet 0: forwarded by filter FORWARD rule 1
        assert isinstance(debugger(app).current, Fate)
        assert "fate: transmit via eth1" in status(app)
        await press(pilot, "c", "c")  # packet 2: ssh from the internet, INPUT policy DROP
        fate = debugger(app).current
        assert isinstance(fate, Fate) and fate.action == "drop"
        state = app.screen.query_one(PacketDiagram).state
        assert state.fate_stage == "filter:INPUT" and state.fate_action == "drop"


async def test_breakpoint_on_nat_postrouting_then_continue_stops_there():
    app = make_app(NAT)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "a")
        assert isinstance(app.screen, BreakpointScreen)
        await type_text(pilot, "stage nat:POSTROUTING")
        await press(pilot, "enter")
        assert isinstance(app.screen, DebuggerScreen)
        assert "nat:POSTROUTING" in app.screen.query_one(PacketDiagram).state.breakpoints
        await press(pilot, "c")
        cur = debugger(app).current
        assert isinstance(cur, StageEnter) and cur.stage == "nat:POSTROUTING"
        assert "breakpoint 1 (stage nat:POSTROUTING) hit" in status(app)
        assert app.screen.query_one(PacketDiagram).state.current == "nat:POSTROUTING"


async def test_b_on_a_diagram_box_toggles_a_breakpoint_there():
    app = make_app(NAT)
    async with app.run_test(size=(80, 24)) as pilot:
        diagram = app.screen.query_one(PacketDiagram)
        diagram.focus()
        diagram.select_stage("nat:POSTROUTING")
        await press(pilot, "b")
        assert [bp.spec for bp in debugger(app).breakpoints.values()] == [
            "stage nat:POSTROUTING"]
        await press(pilot, "f5")
        assert debugger(app).current.stage == "nat:POSTROUTING"
        await press(pilot, "f9")  # the selection follows the packet: toggles it off
        assert debugger(app).breakpoints == {}


async def test_a_bad_breakpoint_is_refused_with_the_reason():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "a")
        await type_text(pilot, "stage nat:POSTROUTNG")
        await press(pilot, "enter")
        assert isinstance(app.screen, BreakpointScreen)
        error = str(app.screen.query_one("#error").render())
        assert "unknown stage nat:POSTROUTNG" in error and "nat:POSTROUTING" in error
        await press(pilot, "escape")
        assert debugger(app).breakpoints == {}


async def test_editing_ip_dst_changes_the_route():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "s", "s")  # in mangle PREROUTING, before input routing
        await press(pilot, "e")
        assert isinstance(app.screen, EditFieldScreen)
        assert app.screen.query_one("#path").value == "ip.dst"
        await press(pilot, "tab")  # `e` starts in the field box: Tab, the value box
        await type_text(pilot, "192.0.2.20")  # the value is selected: typing replaces it
        await press(pilot, "enter")
        assert isinstance(app.screen, DebuggerScreen)
        dbg = debugger(app)
        assert isinstance(dbg.current, UserEdit)
        assert "edited ip.dst: 198.51.100.7 -> 192.0.2.20" in status(app)
        await press(pilot, "r", "2")  # run to the fate, show the route panel
        # 192.0.2.20 is on eth0's connected route 192.0.2.0/24 (ip-route(8): the kernel
        # adds a `proto kernel scope link` route for each address's prefix)
        route = str(app.screen.query_one("#route-text").render())
        assert "192.0.2.0/24 dev eth0" in route
        assert dbg.packet.meta.oif == "eth0"
        leaf = app.screen.query_one(PacketTree)._leaves["ip.dst"]
        # at 80 columns the old value gets a line of its own under the new one
        assert "192.0.2.20" in str(leaf.label)
        assert [str(child.label) for child in leaf.children] == ["was 198.51.100.7"]


async def test_a_bad_edit_is_refused_with_the_engines_reason_and_changes_nothing():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "s", "s", "e", "tab")
        await type_text(pilot, "1.2.3.999")
        await press(pilot, "enter")
        assert isinstance(app.screen, EditFieldScreen)
        error = str(app.screen.query_one("#error").render())
        assert "is not an IPv4 address" in error
        await press(pilot, "escape")
        dbg = debugger(app)
        assert str(dbg.packet.ip.dst) == "198.51.100.7"
        assert not any(isinstance(e, UserEdit) for e in dbg.events)


async def test_undo_steps_back_over_an_edit():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "s", "s", "e", "tab")
        await type_text(pilot, "203.0.113.9")
        await press(pilot, "enter")
        assert str(debugger(app).packet.ip.dst) == "203.0.113.9"
        await press(pilot, "u")
        dbg = debugger(app)
        assert str(dbg.packet.ip.dst) == "198.51.100.7"
        assert not any(isinstance(e, UserEdit) for e in dbg.events)
        assert isinstance(dbg.current, StageEnter)


async def test_edit_from_the_packet_tree_with_enter():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "s", "s")
        tree = app.screen.query_one(PacketTree)
        tree.focus()
        tree.move_cursor(tree._leaves["ip.ttl"])
        await press(pilot, "enter")
        assert isinstance(app.screen, EditFieldScreen)
        assert app.screen.query_one("#path").value == "ip.ttl"
        await type_text(pilot, "300")
        await press(pilot, "enter")
        assert "300 is out of range 0..255" in str(app.screen.query_one("#error").render())


async def test_reverse_continue_goes_back_to_the_previous_hit():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        debugger(app).add_breakpoint("stage filter:FORWARD")
        await press(pilot, "c")
        hit = len(debugger(app).events)
        await press(pilot, "s", "s", "s", "P")
        assert len(debugger(app).events) == hit
        assert debugger(app).current.stage == "filter:FORWARD"


async def test_inject_a_composed_packet():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "i")
        assert isinstance(app.screen, ComposeScreen)
        dst = app.screen.query_one("#c-dst")
        dst.value = "192.0.2.1"
        app.screen.query_one("#c-dport").value = "22"
        await press(pilot, "enter")
        assert isinstance(app.screen, DebuggerScreen)
        await press(pilot, "N", "N")  # start packet 0, finish it
        assert "of 8" in app.screen.status_text() or len(app.screen._packets()) == 8
        assert len(app.screen._packets()) == 8
        await press(pilot, *["c"] * 8)
        dbg = debugger(app)
        assert dbg.index == 7 and dbg.state == "finished"
        # the demo's lan-in chain accepts ssh from the LAN (filter INPUT jumps to lan-in)
        assert dbg.current.action == "deliver"


async def test_compose_refuses_an_unknown_interface():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "i")
        app.screen.query_one("#c-origin").value = "eth9"
        await press(pilot, "enter")
        assert isinstance(app.screen, ComposeScreen)
        assert "no interface 'eth9'" in str(app.screen.query_one("#error").render())


async def test_palette_runs_commands():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "ctrl+p")
        await type_text(pilot, "step in")
        await pilot.pause(0.3)
        await press(pilot, "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "packet 0 arrives on eth0" in status(app)


async def test_palette_offers_a_breakpoint_per_stage():
    app = make_app(NAT)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "ctrl+p")
        await type_text(pilot, "toggle at nat POSTROUTING")
        await pilot.pause(0.3)
        await press(pilot, "enter")
        assert [bp.spec for bp in debugger(app).breakpoints.values()] == [
            "stage nat:POSTROUTING"]


async def test_help_lists_the_keys_and_closes():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = app.screen.query_one("#help-text")._markdown
        for key in ("F5 / c", "F10 / n", "F11 / s", "Shift+F11 / F23 / o", "F9 / b", "e"):
            assert f"`{key}`" in text
        assert "Breakpoints" in text
        await press(pilot, "escape")
        assert isinstance(app.screen, DebuggerScreen)


async def test_the_compact_diagram_fits_80_columns_and_the_wide_one_120():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        diagram = app.screen.query_one(PacketDiagram)
        assert diagram.form == "compact" and diagram.virtual_size.width <= 80
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        assert diagram.form == "wide" and diagram.virtual_size.width <= 120


async def test_clicking_a_box_shows_its_rules():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        diagram = app.screen.query_one(PacketDiagram)
        # at 80x24 a hook is one box: a click lists its tables on the diagram's last line
        hook = next(b for b in diagram.boxes if b.key == "hook:FORWARD")
        await pilot.click(PacketDiagram, offset=(hook.x + 1, hook.y))
        await pilot.pause()
        box = next(b for b in diagram.boxes if b.key == "filter:FORWARD")
        await pilot.click(PacketDiagram, offset=(box.x + 1, box.y))
        await pilot.pause()
        rules = app.screen.query_one(RuleList)
        assert (rules.view.table, rules.view.chain) == ("filter", "FORWARD")
        assert len(rules.view.rules) == 3


async def test_log_filter_keeps_matching_lines():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "c", "slash")
        await type_text(pilot, "matched")
        await pilot.pause()
        log = app.screen.query_one(TraceLog)
        assert log.shown and all("matched" in e.text for e in log.shown)
        assert len(log.shown) < len(log.entries)


async def test_loading_in_a_worker_then_the_debugger():
    app = KptApp(text=ROUTER, name="router.toml")
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert isinstance(app.screen, DebuggerScreen)
        assert "home-router: paused before packet 0" in status(app)


async def test_a_load_error_in_the_worker_ends_the_app_with_the_error():
    app = KptApp(text=ROUTER.replace("-j MARK --set-mark 0x1", "-j MARKX"), name="bad.toml")
    async with app.run_test(size=(80, 24)) as pilot:
        with contextlib.suppress(WorkerCancelled):  # the app exits while we wait
            await app.workers.wait_for_complete()
        await pilot.pause()
    assert app.return_code == 2
    # the file, line and column of the bad target, as `kptui trace` reports it
    assert "bad.toml:12:51: Chain 'MARKX' does not exist" in str(app.return_value)


def test_cli_bad_file_is_one_line_before_any_screen(tmp_path, capsys, monkeypatch):
    bad = tmp_path / "bad.toml"
    bad.write_text(ROUTER.replace("-j MARK --set-mark 0x1", "-j MARKX"))
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)

    def no_screen(self):  # noqa: ANN001, ANN202
        raise AssertionError("the app must not start on a bad file")

    monkeypatch.setattr(KptApp, "run", no_screen)
    assert main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Chain 'MARKX' does not exist" in err
    assert main([str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml: no such file" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [[], ["--no-tui"]])
def test_cli_prints_the_trace_when_not_on_a_terminal(capsys, argv):
    # pytest captures stdout, so it is not a terminal: the text trace, as before
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "packet 0" in out and "transmit" in out


ONE_SYN = """
name = "one-syn"
[sysctl]
"net.ipv4.ip_forward" = 1
[[interfaces]]
name = "eth0"
addresses = ["192.0.2.1/24"]
[[interfaces]]
name = "eth1"
addresses = ["203.0.113.2/24"]
[[packets]]
iif = "eth0"
proto = "tcp"
src = "192.0.2.10"
dst = "203.0.113.50"
sport = 40000
dport = 443
"""


async def test_send_reply_follows_the_connection_back():
    # `y` at a fate queues the server's reply (answers.reply_to): the SYN is forwarded out
    # of eth1, so the reply is a SYN-ACK arriving on eth1 with addresses and ports swapped.
    app = make_app(ONE_SYN)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "y")  # before any fate: refused with the reason
        assert len(debugger(app).packets) == 1
        await press(pilot, "c", "y")
        dbg = debugger(app)
        assert len(dbg.packets) == 2
        assert {"op": "reply", "of": 0} in dbg.journal
        await press(pilot, "s")
        reply = dbg.packet
        assert (str(reply.ip.src), str(reply.ip.dst)) == ("203.0.113.50", "192.0.2.10")
        assert (reply.sport, reply.dport) == (443, 40000)
        assert reply.l4.flags == 0x12  # SYN+ACK
        assert reply.meta.iif == "eth1"
        await press(pilot, "c")
        assert dbg.current.action == "transmit" and dbg.current.iface == "eth0"


# -- issue 13: no input ends the app ------------------------------------------------------

from test_tui_fuzz import press as burst  # noqa: E402 - keys sent as a burst, no idle wait


def _notes(app: KptApp) -> str:
    return " | ".join(n.message for n in app._notifications)


async def test_a_non_kptui_error_in_a_dialog_is_shown_as_an_internal_error(monkeypatch):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        def broken(spec):  # noqa: ANN001, ANN202 - an engine bug, as issue 13 found them
            raise ValueError(f"invalid literal for int() with base 10: {spec!r}")

        monkeypatch.setattr(debugger(app), "add_breakpoint", broken)
        await press(pilot, "a")
        await type_text(pilot, "rule filter:INPUT:1²")
        await press(pilot, "enter")
        assert app.is_running and isinstance(app.screen, BreakpointScreen)
        error = str(app.screen.query_one("#error").render())
        assert "internal error: ValueError: invalid literal" in error
        assert "please report it with the session (Ctrl+S)" in error
        assert app.internal_errors and app.internal_errors[0].startswith("ValueError")
        await press(pilot, "escape")
        assert isinstance(app.screen, DebuggerScreen)


async def test_a_non_kptui_error_in_a_key_action_or_the_engine_worker_is_a_notice(monkeypatch):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        dbg = debugger(app)

        def boom():  # noqa: ANN202
            raise RecursionError("maximum recursion depth exceeded")

        monkeypatch.setattr(dbg, "send_reply", boom)  # `y`: runs on the UI thread
        monkeypatch.setattr(dbg, "step", boom)  # `s`: runs in the engine worker
        await press(pilot, "y")
        await press(pilot, "s")
        assert app.is_running and isinstance(app.screen, DebuggerScreen)
        assert app.return_code is None
        assert _notes(app).count("internal error: RecursionError") == 2
        assert len(app.internal_errors) == 2
        assert not app.screen.busy  # the worker's failure ended the command


async def test_a_screen_dismissed_twice_closes_itself_not_the_debugger_screen():
    # Textual's Screen.dismiss pops whatever is on top; a stale second dismiss (the
    # command palette selecting after it closed, seen in tests/test_tui_fuzz.py) must not
    # pop the debugger screen (a blank terminal) and then end the app
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "a")
        dialog = app.screen
        assert isinstance(dialog, BreakpointScreen)
        dialog.dismiss(False)
        dialog.dismiss(False)
        await pilot.pause()
        assert isinstance(app.screen, DebuggerScreen) and app.is_running
        await press(pilot, "s")
        assert debugger(app).current is not None


async def test_enter_twice_on_a_dialog_submits_once():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "a")
        await type_text(pilot, "hook FORWARD")
        await burst(pilot, "enter", "enter")
        await pilot.pause()
        assert [bp.spec for bp in debugger(app).breakpoints.values()] == ["hook FORWARD"]


@pytest.mark.parametrize(("text", "why"), [
    ("١٢", "'١٢' is not a number (decimal)"), ("8²", "'8²' is not a number"),
    ("p١", "packet number: '١' is not a number"), ("9" * 5000, "is out of range"),
    ("", "'' is not a number"), ("-1", "'-1' is not a number"), ("#", "'' is not a number"),
])
def test_the_replay_jump_reads_ascii_decimal_only(text, why):
    from kptui.screens.replay import ReplayScreen

    screen = ReplayScreen.__new__(ReplayScreen)  # jump_to reads only the timeline
    screen.timeline, screen.starts, sought = [object()] * 20, [], []
    screen._seek = sought.append
    error = screen.jump_to(text)
    assert why in error and "type an event number (like 42)" in error
    assert sought == []
    assert screen.jump_to("010") is None and screen.jump_to("#5") is None
    assert sought == [11, 6]  # ASCII decimal, a leading zero is still decimal here
