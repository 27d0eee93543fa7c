"""Switch the debugger to another profile: the same scenario, rebuilt under it.

The scenario text gets the new ``profile =`` line (so a saved session replays
under the profile the user chose), is loaded and validated again, and a fresh
debugger screen shows the new profile's diagram. Content the new profile's kernel
does not have (iptables under ipchains, the raw table under classic-2.4) is an
error notice; the current screen stays as it was.
"""

from __future__ import annotations

import re
from typing import Any

from kptui import heap
from kptui.engine.errors import KptuiError
from kptui.engine.profile import KNOWN_PROFILES

_PROFILE_LINE = re.compile(r'^[ \t]*profile[ \t]*=.*$', re.MULTILINE)


def with_profile(text: str, profile: str) -> str:
    """``text`` with its top-level ``profile =`` set to ``profile`` (added when missing)."""
    first_table = re.search(r"^[ \t]*\[", text, re.MULTILINE)
    head_end = first_table.start() if first_table else len(text)
    head = text[:head_end]
    line = f'profile = "{profile}"'
    if _PROFILE_LINE.search(head):
        head = _PROFILE_LINE.sub(line, head, count=1)
        return head + text[head_end:]
    return f"{line}\n{text}"


def switch_profile(screen: Any, profile: str) -> str | None:
    """Rebuild ``screen``'s scenario under ``profile``; an error message, or None."""
    from kptui.engine.debugger import Debugger
    from kptui.engine.scenario import load_scenario
    from kptui.screens.debugger import DebuggerScreen

    if profile not in KNOWN_PROFILES:
        return f"unknown profile {profile}"
    scenario = screen.scenario
    if scenario is None:
        return "no scenario file to rebuild under another profile"
    if scenario.profile == profile:
        screen.notify(f"already in profile {profile}", timeout=3)
        return None
    try:
        new = load_scenario(with_profile(scenario.text, profile), file=scenario.file,
                            read_file=scenario.read_file)
        if scenario.packets_from:  # --pcap: the capture's packets, not the text's
            new.packets, new.packets_from = scenario.packets, scenario.packets_from
        debugger = Debugger.for_scenario(new)
    except KptuiError as err:
        message = f"cannot switch to {profile}: {err}"
        screen.notify(message, severity="error", timeout=10)
        return message
    app = screen.app
    app.scenario, app.debugger = new, debugger
    app.switch_screen(DebuggerScreen(debugger, scenario=new, name=screen.scenario_name))
    # the old box is garbage once its screen is gone: back to the ordinary collector for
    # both (freezing now could keep the old one, still referenced, for the whole run)
    heap.release()
    app.notify(f"profile {profile}: the scenario was rebuilt and the diagram redrawn",
               timeout=5)
    return None
