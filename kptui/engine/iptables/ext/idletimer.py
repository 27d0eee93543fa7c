"""-j IDLETIMER (libxt_IDLETIMER 1.8.9 revision 1, xt_IDLETIMER.c): an idle timer.

idletimer_tg_target restarts the label's timer (--timeout seconds; --alarm: an
alarm timer) and returns XT_CONTINUE: the packet goes on unchanged, and that is
what the walk shows. The timer's expiry is reported through sysfs
(/sys/class/xt_idletimer/timers/LABEL) and a uevent, outside the packet path,
which kptui does not model. Kernel-verified: tests/kernel/scenarios/ext-realm.toml
(its IDLETIMER rule). The label is cut to the
27 characters of its field (XTOPT_PUT) and printed as is; the kernel's
idletimer_tg_checkentry refusals are reproduced.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.targets import TargetResult
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtTarget

MAX_IDLETIMER_LABEL_SIZE = 28
INT_MAX = 0x7FFFFFFF
RESERVED_LABELS = frozenset({".", "..", "power", "subsystem", "uevent"})  # sysfs names


class IdletimerTarget(XtTarget):
    name = "IDLETIMER"
    entries = (Entry("timeout", XT.UINT32, mand=True), Entry("label", XT.STRING, mand=True),
               Entry("alarm"))

    def __init__(self) -> None:
        super().__init__()
        self.timeout = 0
        self.label = ""
        self.alarm = False

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        if name == "timeout":
            self.timeout = value
        elif name == "label":
            self.label = value[:MAX_IDLETIMER_LABEL_SIZE - 1]
        else:
            self.alarm = True

    def finish(self, proto: int, proto_inv: bool) -> None:
        super().finish(proto, proto_inv)
        self.kernel_check(proto, proto_inv)  # at RULE_APPEND: after iptables' own checks

    def kernel_check(self, proto: int, proto_inv: bool) -> None:
        """idletimer_tg_checkentry and idletimer_check_sysfs_name (xt_check_proc_name)."""
        why = ""
        if self.timeout == 0:
            why = "a timeout of 0"
        elif self.timeout >= INT_MAX // 1000:
            why = f"a timeout of {INT_MAX // 1000} s or more"
        elif not self.label or self.label in RESERVED_LABELS or "/" in self.label:
            why = f'the label "{self.label}", which cannot be a sysfs file name'
        if why:
            raise BadValue(f"IDLETIMER: {why} (the kernel refuses it: Invalid argument)")

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        return TargetResult("CONTINUE", detail=f"timer {self.label} restarted: it fires "
                            f"after {self.timeout} s without packets here")

    def save(self) -> str:
        """idletimer_tg_save_v1: the label is printed without quoting."""
        return (f"--timeout {self.timeout} --label {self.label}"
                + (" --alarm" if self.alarm else ""))


TARGETS = (IdletimerTarget,)
