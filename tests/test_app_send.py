"""The TUI with `--send` packets and with a reply whose original was dropped (issue 15):
the debugger walks what --send gave, and shows a reply that was never built as a packet
of its own (an `error` fate by reply_to) and goes on to the next."""

from __future__ import annotations

from pathlib import Path

from test_app import debugger, make_app, press, status

from kptui.engine.events import Fate
from kptui.sendrun import text_with_sends

SCENARIOS = Path(__file__).parent / "kernel" / "scenarios"
BOX = (SCENARIOS / "route-output-bound-source.toml").read_text()


async def test_the_debugger_walks_the_send_packets():
    text = text_with_sends(BOX, "box.toml", ["udp 192.0.2.1:5000 > 198.51.100.200:53 local"])
    app = make_app(text)
    async with app.run_test(size=(80, 24)) as pilot:
        assert "paused before packet 0 of 1" in status(app)
        await press(pilot, "c")
        fate = debugger(app).current
        # a socket bound to 192.0.2.1: table 100, out of eth0 (Linux 6.18)
        assert isinstance(fate, Fate) and (fate.action, fate.iface) == ("transmit", "eth0")


async def test_a_reply_never_built_is_shown_and_the_walk_goes_on():
    app = make_app((SCENARIOS / "reply-to-dropped.toml").read_text())
    async with app.run_test(size=(80, 24)) as pilot:
        await press(pilot, "c", "c")
        dbg = debugger(app)
        assert dbg.index == 1 and dbg.current.by == "reply_to"
        assert dbg.packet is None and "not sent" in status(app)
        await press(pilot, "c", "c", "c")
        assert debugger(app).index == 4 and debugger(app).current.action == "transmit"
