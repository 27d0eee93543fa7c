"""-m cgroup (libxt_cgroup 1.8.9 revision 2, xt_cgroup.c): the sending socket's cgroup.

Parsed and printed, not simulated: kptui models no processes nor cgroups, so
the walk stops at the match rather than guessing. The kernel also refuses a
--path that does not exist in the host's cgroup2 tree; kptui cannot know the
tree and accepts any path.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext._idopts import Quick
from kptui.engine.iptables.ext._kernel import kernel_refuses, truncate
from kptui.engine.iptables.values import save_string
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch

XT_CGROUP_PATH_MAX = 512


class CgroupMatch(Quick, XtMatch):
    name = "cgroup"
    entries = (Entry("path", XT.STRING, invert=True),
               Entry("cgroup", XT.UINT32, invert=True))
    chains = frozenset({"OUTPUT", "POSTROUTING", "INPUT"})  # xt_cgroup's hooks

    def __init__(self) -> None:
        super().__init__()
        self.path: tuple[str, bool] | None = None
        self.classid: tuple[int, bool] | None = None

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        if name == "path":
            self.path = (truncate(value, XT_CGROUP_PATH_MAX), inv)
        else:
            self.classid = (value, inv)

    def check(self) -> None:  # cgroup_mt_check_v2
        if self.path is None and self.classid is None:
            raise kernel_refuses("cgroup: no path or classid specified")
        if self.path is not None and self.classid is not None:
            raise kernel_refuses("cgroup: path and classid specified")

    def save(self) -> str:
        out = []
        if self.path is not None:
            out.append(f"{'! ' if self.path[1] else ''}--path {save_string(self.path[0])}")
        if self.classid is not None:
            out.append(f"{'! ' if self.classid[1] else ''}--cgroup {self.classid[0]}")
        return " ".join(out)


MATCHES = (CgroupMatch,)
