"""-j AUDIT (libxt_AUDIT 1.8.9, xt_AUDIT.c): an audit record for the packet.

audit_tg writes a NETFILTER_PKT record when the audit subsystem is on and
always returns XT_CONTINUE; --type is only range-checked by the kernel. The
packet is not changed, so the walk simply goes on (kptui shows no audit log).
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.targets import TargetResult
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtTarget

AUDIT_TYPES = ("accept", "drop", "reject")  # XT_AUDIT_TYPE_ACCEPT, _DROP, _REJECT


class AuditTarget(XtTarget):
    name = "AUDIT"
    entries = (Entry("type", XT.STRING, mand=True),)

    def __init__(self) -> None:
        super().__init__()
        self.type = ""

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        """audit_parse: strcasecmp against the three names."""
        if value.lower() not in AUDIT_TYPES:
            raise BadValue(f'Bad action type value "{value}"')
        self.type = value.lower()

    def save(self) -> str:
        return f"--type {self.type}"

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        return TargetResult("CONTINUE", detail=f"audit record (NETFILTER_PKT, type "
                                               f"{self.type}) if auditing is on; the packet "
                                               "is unchanged")


TARGETS = (AuditTarget,)
