"""-j CHECKSUM --checksum-fill (libxt_CHECKSUM 1.8.9, xt_CHECKSUM.c), mangle table only.

checksum_tg calls skb_checksum_help only for a CHECKSUM_PARTIAL skb (a local
packet whose checksum a device would finish: offload); every other packet,
and every packet that came in on a wire, already has its checksums complete
and is left alone. Either way the bytes that leave are the same, and kptui's
packets have no checksum field to change: the target changes nothing and the
walk goes on (XT_CONTINUE).
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.targets import TargetResult
from kptui.engine.iptables.xtopt import Entry, XtTarget


class ChecksumTarget(XtTarget):
    name = "CHECKSUM"
    tables = frozenset({"mangle"})  # checksum_tg_reg .table
    entries = (Entry("checksum-fill", mand=True),)

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        """CHECKSUM_parse: operation = XT_CHECKSUM_OP_FILL."""

    def save(self) -> str:
        return "--checksum-fill"

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        return TargetResult("CONTINUE", detail="checksums already complete: nothing to fill "
                                               "(only CHECKSUM_PARTIAL packets are filled)")


TARGETS = (ChecksumTarget,)
