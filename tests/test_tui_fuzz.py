"""Random keys and typed text never end the app (issue 13, "Bad input never escapes").

A Pilot drives the real app on the built-in demo at 80x24 with a seeded
``random.Random``: it presses the debugger's keys (stepping, breakpoints, edits,
injects, panels, help, the palette, saving) and, whenever a dialog with an Input
is open, types text drawn from words that broke parsers before (``010``, ``8²``,
``١٢``, ``((((((``, ``not not``, huge digit strings, quotes) and presses Enter.
At the end the app must still run, the debugger screen must be reachable, and no
internal error (a non-KptuiError turned into a message by kptui.screens.guard)
may have happened: each one is reported with the inputs that led to it.

Never pressed: the quit keys (q, ctrl+q, ctrl+c) and the palette's Quit and
Screenshot commands (the test app leaves them out). Sessions are saved only into
pytest's tmp_path (the test runs there, and typed file names have no slash or
``..``). KPTUI_TUI_FUZZ_KEYS=N changes the number of keys for a long local run;
KPTUI_TUI_FUZZ_SEED=S the seed.
"""

from __future__ import annotations

import contextlib
import os
import random
import unicodedata
from collections import deque
from pathlib import Path

import pytest
from textual import events
from textual.command import CommandPalette
from textual.keys import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key
from textual.screen import ModalScreen
from textual.widgets import Input
from textual.worker import WorkerCancelled, WorkerFailed

import kptui.app
from kptui.app import KptApp
from kptui.cli import read_scenario_text
from kptui.engine.debugger import Debugger
from kptui.engine.scenario import load_scenario
from kptui.screens.debugger import DebuggerScreen
from kptui.screens.dialogs import SaveSessionScreen
from kptui.screens.help import HelpScreen

KEYS = int(os.environ.get("KPTUI_TUI_FUZZ_KEYS", "5000"))
SEED = int(os.environ.get("KPTUI_TUI_FUZZ_SEED", "13"))

# The debugger screen's bindings (and the replay's, harmless here), never a quit key.
SCREEN_KEYS = (
    "s n o c r N u p P b a a e e i i y d 1 2 3 4 5 slash question_mark f5 f9 f10 f11 "
    "shift+f11 f23 shift+f5 ctrl+z ctrl+s ctrl+p ctrl+p up down left right enter escape tab "
    "shift+tab home end pageup pagedown g t space"
).split()
# Moves are the common case, as when a user steps through.
MOVE_KEYS = "s s s n c r N u p P".split()
DIALOG_OPENERS = "a a e e i slash ctrl+s".split()  # breakpoint, edit, inject, filter, save
DIALOG_KEYS = "enter enter escape tab shift+tab up down backspace ctrl+u left right".split()

WORDS = [
    "010", "0010", "8²", "1²", "١٢", "１２", "٣", "0x10", "0x", "0b101", "1_000", "+5", "-1",
    "1e9", "1.5", "nan", "inf", "0", "00", "65535", "65536", "4294967296", "-0",
    "99999999999999999999", "9" * 400, "9" * 5000, "1" + "0" * 4400,
    "((((((", "(" * 300 + "1" + ")" * 300, "(" * 3000, "not not", "not " * 2000 + "1",
    "if tcp.dport == 010", "if tcp.dport == 8²", "if tcp.dport == ١٢", "if ip.src == 192.0.2.10",
    "if meta.mark == 0x1", "if meta.mark == 010", "if tcp.dport == " + "9" * 5000,
    "if ((((((tcp.dport == 22", "if not not tcp.dport == 22", "if tcp.dport ==", "if",
    'if ip.dst == "198.51.100.7"', "if ip.ttl > 1²", "if tcp.dport in 1:2", "if and or",
    "stage nat:POSTROUTING", "stage filter:", "stage :", "hook FORWARD", "hook 010",
    "chain filter:FORWARD", "chain :", "rule filter:INPUT:1", "rule filter:INPUT:010",
    "rule filter:INPUT:1²", "rule filter:INPUT:١", "rule filter:INPUT:0",
    "rule filter:INPUT:" + "9" * 5000, "rule ::", "watch meta.mark", "watch nosuch",
    "ip.dst", "ip.src", "ip.ttl", "ip.tos", "tcp.dport", "tcp.sport", "tcp.flags", "meta.mark",
    "meta.iif", "nosuch.field", "ip.", ".", "192.0.2.20", "192.0.2.300", "1.2.3.4.5", "::1",
    "0x7fffffff", "eth0", "eth1", "lo", "local", "tcp", "udp", "icmp", "S", "SA", "FIN",
    "p3", "p0", "p١", "p010", "#5", "#", "p", "'", '"', "''", '"\\"', "\\", "\t", " ", "",
    "a b", "[1:0]", "-j DROP", "$x", "%s", "{}", "\x00", "é", "🙂",
]
# What the palette is searched for: its own commands (never Quit: left out below).
PALETTE_WORDS = [
    "step", "over", "out", "continue", "fate", "next", "back", "reverse", "toggle", "add",
    "edit", "inject", "reply", "filter", "panel", "rules", "route", "log", "profile",
    "classic", "ipchains", "modern", "delete", "breakpoint", "help", "theme", "keys",
    "maximize", "bell", "010", "١٢", "zzz",
]
SAVE_NAMES = ["a.kpt", "x", "010", "١٢.kpt", "nosuchdir/s.kpt", "s p a c e.kpt", "'q'.kpt", ""]


class FuzzApp(KptApp):
    """The app without the two system commands a random walk must not run."""

    CSS_PATH = str(Path(kptui.app.__file__).with_name("app.tcss"))  # not beside this file

    def get_system_commands(self, screen):  # noqa: ANN001, ANN201 - Textual's hook
        for command in super().get_system_commands(screen):
            if command.title not in ("Quit", "Screenshot"):
                yield command


def make_app() -> FuzzApp:
    text, _ = read_scenario_text(None)
    scenario = load_scenario(text, file="demo.toml")
    app = FuzzApp(scenario, debugger=Debugger.for_scenario(scenario), name=scenario.name)
    app.animation_level = "none"  # as TEXTUAL_ANIMATIONS=none: keys, not tweens, take the time
    return app


def check_alive(app: KptApp, recent: deque) -> None:
    if app._exception is not None or app.return_code is not None or not app.is_running:
        trail = "\n".join(recent)
        raise AssertionError(f"the app ended ({app._exception!r}, return code "
                             f"{app.return_code}) after:\n{trail}")


def word(rng: random.Random) -> str:
    text = rng.choice(WORDS)
    if rng.random() < 0.2:
        text = f"{text} {rng.choice(WORDS)}"
    return text


def key_event(key: str) -> events.Key:
    """The Key event ``pilot.press(key)`` sends (textual 8.2.8's App._press_keys)."""
    if len(key) == 1 and not key.isalnum():
        key = _character_to_key(key)
    try:
        char = unicodedata.lookup(_get_unicode_name_from_key(REPLACED_KEYS.get(key, key)))
    except KeyError:
        char = key if len(key) == 1 else None
    return events.Key(key, char)


async def press(pilot, *keys: str) -> None:
    """Press ``keys`` as a terminal sends them, then wait until the screen handled them.

    ``pilot.press`` waits for the process to go idle after each key (at least 40 ms);
    5,000 keys that way take minutes. This posts the same Key events to the app
    and waits once for the messages to be processed (and for the workers).
    """
    app = pilot.app
    for key in keys:  # queued on the app now (the driver would schedule a task for each)
        app.post_message(key_event(key))
    await pilot._wait_for_screen()
    if any(not worker.is_finished for worker in app.workers):
        # the palette cancels its searches; a failed one the app reported (app.py)
        with contextlib.suppress(WorkerCancelled, WorkerFailed):
            await app.workers.wait_for_complete()
        await pilot._wait_for_screen()  # the CommandDone the worker posted


async def type_into(pilot, text: str) -> int:
    """Type ``text`` key by key, or paste a long one (as a terminal pastes it): the
    number of keys that took."""
    if len(text) > 24 or any(not ch.isprintable() for ch in text):
        focused = pilot.app.focused
        if focused is not None:
            focused.post_message(events.Paste(text))
        return 1
    await press(pilot, *("space" if ch == " " else ch for ch in text))
    return len(text)


async def fuzz_step(pilot, rng: random.Random, recent: deque) -> int:
    """One random user action; the number of keys it pressed."""
    app = pilot.app
    screen = app.screen
    focused = app.focused
    modal = isinstance(screen, ModalScreen)
    if isinstance(screen, CommandPalette):
        if rng.random() < 0.6:
            text = rng.choice(PALETTE_WORDS)
            recent.append(f"palette: type {text!r}, enter")
            typed = await type_into(pilot, text)
            await pilot.pause(0.05)  # the palette searches in a task
            await press(pilot, "enter")
            return typed + 1
        key = rng.choice(["escape", "escape", "escape", "down", "up", "enter", "backspace"])
    elif isinstance(screen, SaveSessionScreen):
        name = rng.choice(SAVE_NAMES)
        if rng.random() < 0.5:
            recent.append(f"save dialog: escape (would have been {name!r})")
            await press(pilot, "escape")
            return 1
        # a file name of our own, relative to the test's tmp_path (never typed freely)
        if not screen.query(Input):
            await pilot.pause()  # just pushed: its widgets are still being mounted
        for field in screen.query(Input):
            field.value = name
        recent.append(f"save dialog: enter {name!r}")
        await press(pilot, "enter")
        return 1
    elif isinstance(screen, HelpScreen):
        key = rng.choice(["escape", "escape", "question_mark", "down", "pagedown", "end"])
    elif isinstance(focused, Input) and rng.random() < (0.7 if modal else 0.4):
        text = word(rng)
        where = f"{type(screen).__name__} #{focused.id}"
        if rng.random() < 0.3:
            await press(pilot, "ctrl+u")  # start the field afresh (Input: delete left all)
        recent.append(f"{where}: type {text!r}, enter")
        typed = await type_into(pilot, text)
        await press(pilot, "enter")
        return typed + 1
    elif modal:
        key = "escape" if rng.random() < 0.4 else rng.choice(DIALOG_KEYS)
    elif rng.random() < 0.3:
        key = rng.choice(DIALOG_OPENERS)  # most bad input is typed into a dialog
    else:
        # a burst, as a user who knows the keys types them (a command still running
        # refuses the next: that path is exercised too)
        keys = [rng.choice(MOVE_KEYS) if rng.random() < 0.4 else rng.choice(SCREEN_KEYS)
                for _ in range(rng.randint(1, 6))]
        recent.append(f"{type(screen).__name__}: press {' '.join(keys)}")
        await press(pilot, *keys)
        return len(keys)
    recent.append(f"{type(screen).__name__}: press {key}")
    await press(pilot, key)
    return 1


def forget_breakpoints(app: KptApp, keep: int = 6) -> None:
    """Keep the oldest few breakpoints: every move checks each one (an ``if`` with a
    long condition costs on every event), and hundreds would make the walk, not the
    keys, what this test spends its time on."""
    screens = [s for s in app.screen_stack if isinstance(s, DebuggerScreen)]
    if screens and not screens[-1].busy:
        dbg = screens[-1].debugger
        for bp_id in list(dbg.breakpoints)[keep:]:
            dbg.remove(bp_id)


@pytest.mark.fuzz
async def test_random_keys_and_typed_text_never_end_the_app(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the save dialog's default and typed names land here
    rng = random.Random(SEED)
    app = make_app()
    recent: deque[str] = deque(maxlen=40)
    found: list[str] = []
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        pressed = 0
        while pressed < KEYS:
            pressed += await fuzz_step(pilot, rng, recent)
            forget_breakpoints(app)
            check_alive(app, recent)
            if len(app.internal_errors) > len(found):
                for error in app.internal_errors[len(found):]:
                    found.append(f"{error}\n  after: {recent[-1]}")
        await pilot.pause()
        for _ in range(6):  # close whatever is open: the debugger screen is below
            if isinstance(app.screen, DebuggerScreen):
                break
            await press(pilot, "escape")
            await pilot.pause()
        check_alive(app, recent)
        assert isinstance(app.screen, DebuggerScreen), app.screen_stack
        await press(pilot, "s")
        await pilot.pause()
        check_alive(app, recent)
    assert app._exception is None and app.return_code in (None, 0)
    # Textual 8.2.8's own races (its palette's OptionList paged before it has options:
    # KeyError 0 in _option_list.py; its search worker failing after the palette
    # closed: NoMatches in command.py) are reported and survived, but are not kptui's
    ours = [f for f in found if f"{os.sep}textual{os.sep}" not in f.split("\n")[0]]
    assert not ours, "internal errors (kptui bugs) met:\n" + "\n".join(ours)
