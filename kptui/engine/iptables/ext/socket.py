"""-m socket (libxt_socket 1.8.9 revision 3, xt_socket.c): a local socket for the packet.

Parsed and printed, not simulated: the match looks the packet up in the box's
sockets (established ones, and listeners unless --nowildcard...), and a kptui
box models no sockets, so the walk stops at it rather than guessing.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext._idopts import Quick
from kptui.engine.iptables.xtopt import Entry, XtMatch

_ORDER = ("transparent", "nowildcard", "restore-skmark")


class SocketMatch(Quick, XtMatch):
    name = "socket"
    entries = tuple(Entry(n) for n in _ORDER)
    chains = frozenset({"PREROUTING", "INPUT"})  # xt_socket's hooks

    def __init__(self) -> None:
        super().__init__()
        self.flags: set[str] = set()

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        self.flags.add(name)

    def save(self) -> str:
        return " ".join(f"--{n}" for n in _ORDER if n in self.flags)


MATCHES = (SocketMatch,)
