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
