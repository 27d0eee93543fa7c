"""-m helper (libxt_helper 1.8.9, xt_helper.c): parsed and printed, not simulated.

kptui's conntrack has no helpers (FTP, SIP, ...), so no connection ever has one;
a walk that reaches the match stops, named. The name is kept in a char[30].
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext._kernel import truncate
from kptui.engine.iptables.values import save_string
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch


class HelperMatch(XtMatch):
    name = "helper"
    entries = (Entry("helper", XT.STRING, mand=True, invert=True),)

    def __init__(self) -> None:
        super().__init__()
        self.helper = ""
        self.inv = False

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        self.helper, self.inv = truncate(value, 30), inv

    def save(self) -> str:
        return f"{'! ' if self.inv else ''}--helper {save_string(self.helper)}"


MATCHES = (HelperMatch,)
