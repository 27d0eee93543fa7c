"""-m helper (libxt_helper 1.8.9, xt_helper.c): the helper of an expected connection.

helper_mt looks at the packet's connection's *master*: it matches (`!`: does not)
only a connection a helper expected (an FTP data connection, ...), whose master's
helper has the name (the first strlen(helper name) characters of --helper; an
empty --helper takes any helper). No connection of a kptui box has a master: a
helper is attached only by `-j CT --helper` (Linux 6.18 assigns none by itself:
nf_conntrack_helper's automatic assignment is gone since 6.0), and kptui stops a
walk at that target (conntrack.py does not model helpers or expectations). So the
match is simulated as the kernel answers on such a box: no, or yes with `!`.
Kernel-verified: tests/kernel/scenarios/ext-helper.toml. The name is a char[30].
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

    def test(self, pkt: Any, ctx: Any) -> str | None:
        if self.inv:
            return None
        if pkt.meta.ct is None:
            return "the packet has no connection"
        return "the connection is not one a conntrack helper expected (it has no master)"


MATCHES = (HelperMatch,)
