"""-j MARK (libxt_MARK 1.8.9 revision 2, xt_MARK.c): mark = (mark & ~mask) ^ value.

Every option is saved as ``--set-xmark value/mask`` (mark_tg_save). The five
options exclude each other and themselves (``.excl = F_ANY``: each once), and
libxtables pairs the exclusions in option-id order (set-mark 0, and-mark 1,
or-mark 2, xor-mark 3, set-xmark 4), hence SharedIds with one name per id.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.ext._idopts import SharedIds
from kptui.engine.iptables.targets import TargetResult, _set
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtTarget

U32 = 0xFFFFFFFF
_ANY = ("set-xmark", "set-mark", "and-mark", "or-mark", "xor-mark")


class MarkTarget(SharedIds, XtTarget):
    name = "MARK"
    entries = (Entry("set-xmark", XT.MARKMASK32, excl=_ANY),
               Entry("set-mark", XT.MARKMASK32, excl=_ANY),
               Entry("and-mark", XT.UINT32, excl=_ANY),
               Entry("or-mark", XT.UINT32, excl=_ANY),
               Entry("xor-mark", XT.UINT32, excl=_ANY))
    ids = {"set-mark": 0, "and-mark": 1, "or-mark": 2, "xor-mark": 3, "set-xmark": 4}
    path = "meta.mark"

    def __init__(self) -> None:
        super().__init__()
        self.value, self.mask = 0, 0

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        """mark_tg_parse."""
        if name == "set-xmark":
            self.value, self.mask = value
        elif name == "set-mark":
            self.value, self.mask = value[0], value[0] | value[1]
        elif name == "and-mark":
            self.value, self.mask = 0, ~value & U32
        elif name == "or-mark":
            self.value, self.mask = value, value
        else:  # xor-mark
            self.value, self.mask = value, 0

    def check_rule(self, proto: int, proto_inv: bool) -> None:
        """mark_tg_check."""
        if not self.seen:
            raise BadValue("MARK: One of the --set-xmark, --{and,or,xor,set}-mark options "
                           "is required")

    def save(self) -> str:
        return f"--set-xmark {self.value:#x}/{self.mask:#x}"

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        out = TargetResult("CONTINUE")
        old = pkt.get(self.path)
        _set(pkt, self.path, (old & ~self.mask & U32) ^ self.value, out)
        out.detail = f"{self.path} {old:#x} -> {pkt.get(self.path):#x}"
        return out


TARGETS = (MarkTarget,)
