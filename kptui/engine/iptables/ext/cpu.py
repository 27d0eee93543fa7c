"""-m cpu (libxt_cpu 1.8.9, xt_cpu.c): parsed and printed, not simulated.

The CPU a packet is processed on is not part of kptui's model.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.xtopt import XT, Entry, XtMatch


class CpuMatch(XtMatch):
    name = "cpu"
    entries = (Entry("cpu", XT.UINT32, mand=True, invert=True),)

    def __init__(self) -> None:
        super().__init__()
        self.cpu = 0
        self.inv = False

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        self.cpu, self.inv = value, inv

    def save(self) -> str:
        return f"{'! ' if self.inv else ''}--cpu {self.cpu}"


MATCHES = (CpuMatch,)
