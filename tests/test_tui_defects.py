"""The TUI defects of issue 17, each as a person at 80x24 meets it (Pilot).

Every test here failed before its fix; the issue lists how each was reproduced.
"""

from __future__ import annotations

import json

import pytest
from test_app import ROUTER, debugger, make_app, press, status, type_text

from kptui.screens.debugger import DebuggerScreen
from kptui.screens.dialogs import BreakpointScreen


@pytest.mark.parametrize(("spec", "reason"), [
    # ROUTER's filter FORWARD has 3 rules
    ("rule filter:FORWARD:99", "no rule 99 in filter:FORWARD: it has 3 rules"),
    ("chain filter:nonexist", "no chain nonexist in the filter table"),
    ("rule nat:FORWARD:1", "no chain FORWARD in the nat table (its chains: PREROUTING, "
                           "INPUT, OUTPUT, POSTROUTING)"),
    ("chain filter:lan_in", "did you mean lan-in?"),
    ("rule nat:POSTROUTING:1", "no rule 1 in nat:POSTROUTING: it has no rules"),
])
async def test_a_breakpoint_where_the_box_has_nothing_is_refused(spec: str,
                                                                 reason: str) -> None:
    app = make_app(ROUTER)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "a")
        await type_text(pilot, spec)
        await press(pilot, "enter")
        assert isinstance(app.screen, BreakpointScreen)  # still open, with the reason
        assert reason in str(app.screen.query_one("#error").render())
        await press(pilot, "escape")
        assert debugger(app).breakpoints == {}


@pytest.mark.parametrize("spec", ["rule filter:FORWARD:3", "chain filter:lan-in",
                                  "chain nat:POSTROUTING", "rule filter:INPUT:1"])
async def test_a_breakpoint_on_what_the_box_has_is_set(spec: str) -> None:
    app = make_app(ROUTER)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "a")
        await type_text(pilot, spec)
        await press(pilot, "enter")
        assert isinstance(app.screen, DebuggerScreen)
        assert [bp.spec for bp in debugger(app).breakpoints.values()] == [spec]


async def test_escape_leaves_the_log_filter_and_the_keys_work_again() -> None:
    from textual.widgets import Input, TabbedContent

    from kptui.widgets import TraceLog

    app = make_app(ROUTER)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "s", "s", "4", "slash")
        box = app.screen.query_one("#log-filter", Input)
        assert app.screen.focused is box
        await type_text(pilot, "conntrack")
        await press(pilot, "escape")
        assert box.value == "conntrack"  # the filter stays
        assert app.screen.query_one(TraceLog).filter_text == "conntrack"
        assert app.screen.focused is not box
        await press(pilot, "5")  # a panel key again, not a letter of the filter
        assert box.value == "conntrack"
        assert app.screen.query_one(TabbedContent).active == "breakpoints"


async def test_after_enter_in_the_log_filter_a_number_opens_its_panel() -> None:
    from textual.widgets import Input, TabbedContent

    app = make_app(ROUTER)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "s", "4", "slash")
        await type_text(pilot, "nat")
        await press(pilot, "enter")
        await press(pilot, "5")
        assert app.screen.query_one("#log-filter", Input).value == "nat"
        assert app.screen.query_one(TabbedContent).active == "breakpoints"
        await press(pilot, "4", "5")  # back to the log and away again
        assert app.screen.query_one(TabbedContent).active == "breakpoints"
        assert app.screen.query_one("#log-filter", Input).value == "nat"


async def test_the_edit_dialog_starts_in_the_field_box_and_tab_reaches_the_value() -> None:
    from kptui.screens.dialogs import EditFieldScreen

    app = make_app(ROUTER)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "s", "s", "e")
        dialog = app.screen
        assert isinstance(dialog, EditFieldScreen)
        path, value = dialog.query_one("#path"), dialog.query_one("#value")
        assert dialog.focused is path
        await type_text(pilot, "ip.tt")  # replaces the field shown; ip.ttl is suggested
        await pilot.pause()
        await press(pilot, "tab")
        assert dialog.focused is value
        assert path.value == "ip.ttl"
        assert value.value == "64"  # the packet's TTL, in the value box to change
        await press(pilot, "tab")  # and on round the boxes
        assert dialog.focused is path
        await press(pilot, "tab", "backspace", "6", "3", "enter")
        assert isinstance(app.screen, DebuggerScreen)
        assert debugger(app).packet.get("ip.ttl") == 63


REJECTING = """
name = "rejecting"
iptables = \"\"\"
*filter
:INPUT ACCEPT [0:0]
-A INPUT -p tcp -m tcp --dport 23 -j REJECT --reject-with tcp-reset
COMMIT
\"\"\"

[[interfaces]]
name = "eth0"
addresses = ["192.0.2.1/24"]

[[packets]]
iif = "eth0"
proto = "tcp"
src = "192.0.2.10"
dst = "192.0.2.1"
sport = 40000
dport = 23
"""


async def test_the_status_line_names_the_packet_once() -> None:
    app = make_app(ROUTER)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "s")
        line = status(app)
        assert line.startswith("packet 0 arrives on eth0: tcp ")
        assert "packet 0: packet 0" not in line


async def test_an_answer_says_whose_answer_it_is() -> None:
    app = make_app(REJECTING)
    async with app.run_test(size=(120, 30)) as pilot:
        await press(pilot, "c")  # packet 0's fate: rejected
        await press(pilot, "s")  # the walk of the box's answer, a TCP reset
        line = status(app)
        assert line.startswith("packet 0's answer (")
        assert "starts: tcp 192.0.2.1:23 -> 192.0.2.10:40000" in line
        assert "generated locally" not in line and "packet 0: packet 0" not in line
        await press(pilot, "s")
        assert status(app).startswith("packet 0's answer: ")


@pytest.mark.parametrize("key", ["N", "c", "s", "n"])
async def test_moving_on_after_the_last_packet_says_there_is_none(key: str) -> None:
    app = make_app(REJECTING)  # one packet (and the box's answer to it)
    async with app.run_test(size=(120, 30)) as pilot:
        await press(pilot, "c", "c")
        assert debugger(app).state == "finished"
        await press(pilot, key)
        notes = [n.message for n in app._notifications]
        assert any(m.startswith("no more packets: that was the last of 1") for m in notes)


async def test_the_breaks_panel_deletes_and_disables_breakpoints() -> None:
    from kptui.widgets.breaklist import BreakList

    app = make_app(ROUTER)
    async with app.run_test(size=(80, 24)) as pilot:
        dbg = debugger(app)
        for spec in ("stage nat:POSTROUTING", "rule filter:FORWARD:1", "hook INPUT"):
            dbg.add_breakpoint(spec)
        await press(pilot, "5")
        panel = app.screen.query_one(BreakList)
        assert app.screen.focused is panel and panel.option_count == 3
        await press(pilot, "down", "x")  # the second one goes
        assert [bp.spec for bp in dbg.breakpoints.values()] == [
            "stage nat:POSTROUTING", "hook INPUT"]
        assert panel.option_count == 2
        await press(pilot, "space")  # the highlight moved to the next one: hook INPUT
        assert not dbg.breakpoints[3].enabled and dbg.breakpoints[1].enabled
        assert "(disabled)" in str(panel.get_option_at_index(1).prompt)
        await press(pilot, "space")
        assert dbg.breakpoints[3].enabled
        await press(pilot, "up", "delete", "delete")
        assert dbg.breakpoints == {}
        assert "No breakpoints" in str(app.screen.query_one("#breakpoints-text").render())


# ROUTER with a masquerading nat table: the kernel's trace of a forwarded packet then
# ends in nat POSTROUTING (xtables-monitor --trace), after filter FORWARD accepted it
ROUTER_MASQ = ROUTER.replace("*filter", "*nat\n:POSTROUTING ACCEPT [0:0]\n"
                             "-A POSTROUTING -o eth1 -j MASQUERADE\nCOMMIT\n*filter", 1)


async def test_a_fate_names_the_rule_that_accepted_the_packet_beside_the_trace() -> None:
    app = make_app(ROUTER_MASQ)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "r")
        text = status(app)
        # by: the trace's last entry (kept); accepted by: filter FORWARD rule 1, the
        # ACCEPT of "-i eth0 -o eth1" that let packet 0 (eth0 -> eth1) through
        assert "(by nat:POSTROUTING:rule:1)" in text
        assert "accepted by filter:FORWARD:rule:1" in text


def test_trace_json_adds_decided_by_and_keeps_by(tmp_path, capsys) -> None:
    from kptui.cli import main

    path = tmp_path / "masq.toml"
    path.write_text(ROUTER_MASQ)
    main(["trace", str(path), "--json", "--packet", "0"])
    fate = json.loads(capsys.readouterr().out.splitlines()[0])["fate"]
    assert fate == {"action": "transmit", "iface": "eth1", "by": "nat:POSTROUTING:rule:1",
                    "decided_by": "filter:FORWARD:rule:1"}


async def test_6_opens_the_qos_panel_of_a_box_with_tc() -> None:
    from textual.widgets import TabbedContent

    text = ROUTER.replace('setup = """\n', 'setup = """\n'
                          "tc qdisc add dev eth1 root handle 1: htb default 10\n"
                          "tc class add dev eth1 parent 1: classid 1:10 htb rate 1mbit\n", 1)
    app = make_app(text)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "r", "6")
        assert app.screen.query_one(TabbedContent).active == "qos"
        assert "htb" in str(app.screen.query_one("#qos-text").render())


async def test_6_without_tc_says_there_is_no_qos_panel() -> None:
    from textual.widgets import TabbedContent

    app = make_app(ROUTER)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "6")
        assert app.screen.query_one(TabbedContent).active == "rules"
        notices = [n.message for n in app._notifications]
        assert any("no tc configuration" in m for m in notices)


async def test_help_fits_80_columns_and_says_how_to_close_it() -> None:
    from textual.widgets._markdown import MarkdownFence

    from kptui.screens.help import HelpScreen

    app = make_app(ROUTER)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)
        body = app.screen.query_one("#help-body")
        assert "Escape or q closes" in body.border_subtitle
        assert body.region.right <= 80 and body.region.bottom <= 24
        fences = list(app.screen.query(MarkdownFence))
        assert fences
        for fence in fences:  # a code block cut at the box's edge loses its words
            assert fence.max_scroll_x == 0, fence.code
        await press(pilot, "q")
        assert isinstance(app.screen, DebuggerScreen)


async def test_the_packet_tree_shows_a_changed_value_in_full_at_80_columns() -> None:
    from kptui.widgets import PacketTree

    app = make_app(ROUTER_MASQ)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "r")  # MASQUERADE rewrote the source 192.0.2.10 -> 203.0.113.2
        tree = app.screen.query_one(PacketTree)
        src = next(n for n in tree.root.children[0].children if n.data == "ip.src")
        shown = [src.label.plain, *(child.label.plain for child in src.children)]
        assert "203.0.113.2" in shown[0]
        assert "was 192.0.2.10" in " ".join(shown)
        fields = [n for group in tree.root.children for n in group.children]
        for node in [*fields, *(c for n in fields for c in n.children)]:
            indent = 6 if node.parent in fields else 4  # the guides before its label
            # nothing cut at the pane's edge (its last column is the scrollbar's)
            assert indent + node.label.cell_len <= tree.scrollable_content_region.width, \
                node.label.plain


# -- the diagram: the seed's split and merge --------------------------------------------

def _trail_cells(diagram) -> str:
    """The diagram's text, with every cell off the packet's trail blanked."""
    rows = []
    for row in diagram._layout.grid.rows:
        line = []
        for ch, tag in row:
            role, key = tag
            on = (role == "edge" and diagram._edge_class(key) == "diagram--trail") or (
                role in ("box", "frame", "label") and key and diagram._class_of(key) in (
                    "diagram--trail", "diagram--current", "diagram--drop"))
            line.append(ch if on else " ")
        rows.append("".join(line).rstrip())
    return "\n".join(rows)


async def run_packet(pilot, app, index: int) -> None:
    """N until packet ``index`` is in flight, then r: run it to its fate."""
    dbg = debugger(app)
    while not (dbg.index == index and dbg.in_walk):
        await press(pilot, "N")
    await press(pilot, "r")


@pytest.mark.parametrize("size", [(80, 24), (160, 50)])
async def test_a_forwarded_packets_trail_is_one_line_from_the_wire_to_the_wire(size) -> None:
    from kptui.widgets import PacketDiagram

    app = make_app(ROUTER)
    async with app.run_test(size=size) as pilot:
        await press(pilot, "r")  # packet 0: eth0 -> eth1, forwarded
        diagram = app.screen.query_one(PacketDiagram)
        trail = _trail_cells(diagram)
        # through the split (┬ down to └▶) and the merge (┤ down to ┘), wire to wire
        for piece in ("wire▶", "┬", "└▶", "┤", "┘", "ip_forward", "FORWARD", "POSTROUTING"):
            assert piece in trail, (piece, trail)
        for off_path in ("hook:INPUT", "local:deliver", "routing:output", "hook:OUTPUT"):
            assert diagram._class_of(off_path) == "diagram--idle", off_path
        # every connector between the nodes the packet took is on the trail
        g = diagram._layout
        assert all(diagram._edge_class(f"{a}>{b}") == "diagram--trail" for a, b in [
            ("wire", "tc:ingress"), ("routing:input", "forward"),
            ("hook:FORWARD", "hook:POSTROUTING"), ("merge", "hook:POSTROUTING"),
            ("tc:egress", "transmit")]), g


async def test_a_packet_for_this_host_goes_through_the_local_process() -> None:
    from kptui.widgets import PacketDiagram

    app = make_app(ROUTER)
    async with app.run_test(size=(80, 24)) as pilot:
        await run_packet(pilot, app, 1)  # packet 1: DNS to the router itself, delivered
        diagram = app.screen.query_one(PacketDiagram)
        assert debugger(app).current.action == "deliver"
        trail = _trail_cells(diagram)
        assert "[INPUT]" in trail and "[local]" in trail
        assert "FORWARD" not in trail and "POSTROUTING" not in trail


async def test_a_locally_sent_packets_trail_starts_at_the_local_process() -> None:
    from kptui.widgets import PacketDiagram

    app = make_app(ROUTER)
    async with app.run_test(size=(80, 24)) as pilot:
        await run_packet(pilot, app, 5)  # packet 5: the router pings out of eth1
        diagram = app.screen.query_one(PacketDiagram)
        assert debugger(app).index == 5
        trail = _trail_cells(diagram)
        assert "[local]" in trail and "[OUTPUT]" in trail and "[POSTROUTING]" in trail
        assert "PREROUTING" not in trail.replace("POSTROUTING", "") and "wire▶" not in trail


async def test_breakpoint_and_drop_marks_never_cover_a_label() -> None:
    from kptui.widgets import PacketDiagram

    app = make_app(ROUTER)
    async with app.run_test(size=(80, 24)) as pilot:
        dbg = debugger(app)
        dbg.add_breakpoint("stage filter:INPUT")
        dbg.add_breakpoint("hook FORWARD")
        await run_packet(pilot, app, 2)  # packet 2: ssh from the internet, dropped in INPUT
        while debugger(app).current.kind != "fate":  # past the breakpoint hits
            await press(pilot, "r")
        assert debugger(app).current.action == "drop"
        diagram = app.screen.query_one(PacketDiagram)
        screen_text = "\n".join(line.text for line in (
            diagram.render_line(y) for y in range(diagram.content_height)))
        for label in ("[INPUT]", "[FORWARD]", "[filter]", "[mangle]"):
            assert label in screen_text
        assert "●" in screen_text and "✗" in screen_text
        assert "[INPUT]✗" in screen_text  # the drop where the trail ends


async def test_the_compact_diagram_takes_at_most_a_third_of_80x24_and_z_zooms() -> None:
    from kptui.widgets import PacketDiagram

    app = make_app(ROUTER)
    async with app.run_test(size=(80, 24)) as pilot:
        diagram = app.screen.query_one(PacketDiagram)
        assert diagram.form == "compact" and diagram.region.height <= 8
        await press(pilot, "s", "s", "s", "s")
        assert "▸ PREROUTING:" in diagram.render_line(3).text  # the current hook, expanded
        await press(pilot, "z")
        assert diagram.form == "wide" and diagram.region.height > 8
        await press(pilot, "z")
        assert diagram.form == "compact" and diagram.region.height <= 8


async def test_w_wraps_long_rules_and_log_lines_so_nothing_is_cut_at_80_columns() -> None:
    from kptui.widgets import RuleList, TraceLog

    app = make_app(ROUTER)
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "r")  # packet 0 ends in filter FORWARD: its rules are shown
        rules = app.screen.query_one(RuleList)
        long = "-d 192.0.2.10/32 -i eth1 -o eth0 -p tcp -m tcp --dport 443 -j ACCEPT"
        assert rules.view.chain == "FORWARD"
        width = rules.scrollable_content_region.width
        assert len(long) + 15 > width  # too long for the pane: cut unwrapped

        def shown(widget) -> str:
            return "".join(widget.render_line(y).text.rstrip() + "\n"
                           for y in range(widget.size.height))

        assert long not in shown(rules).replace("\n", "")
        await press(pilot, "w")
        # wrapped: the rule continues on the next lines, indented past the marks
        text = shown(rules)
        assert long.replace(" ", "") in text.replace("\n", "").replace(" ", "")
        assert all(len(line) <= width for line in text.splitlines())
        await press(pilot, "4")
        log = app.screen.query_one(TraceLog)
        assert log.wrap
        assert all(len(line) <= log.scrollable_content_region.width
                   for line in shown(log).splitlines())
        await press(pilot, "w")
        assert not rules.wrap and not log.wrap


async def test_the_tui_says_a_setup_line_is_wiped_by_the_restore() -> None:
    from test_scenario import WIPED

    app = make_app(WIPED)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        notices = [n.message for n in app._notifications]
        assert any("setup line 4" in m and "wiped" in m for m in notices)


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (160, 50)])
async def test_the_legend_draws_each_mark_as_the_diagram_does(size) -> None:
    from kptui.widgets import PacketDiagram

    app = make_app(ROUTER)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        diagram = app.screen.query_one(PacketDiagram)
        legend = list(diagram.render_line(diagram.content_height - 1))
        style = {seg.text: seg.style for seg in legend}
        assert "bold: trail" not in "".join(seg.text for seg in legend)
        assert style["selected"].underline  # the selected box's underline, explained
        assert style["current"].reverse
        trail = next(s for t, s in style.items() if "trail" in t)
        assert trail.bold and trail.color == diagram.get_component_rich_style(
            "diagram--trail").color  # the trail's own colour, not another
        assert sum(seg.cell_length for seg in legend) <= size[0]


async def test_at_a_delivered_packets_fate_the_diagram_lists_the_hook_it_came_through() -> None:
    from kptui.widgets import PacketDiagram

    app = make_app(ROUTER)
    async with app.run_test(size=(80, 24)) as pilot:
        await run_packet(pilot, app, 1)  # delivered: its last hook is INPUT
        diagram = app.screen.query_one(PacketDiagram)
        assert diagram.render_line(3).text.startswith("▸ INPUT:")
