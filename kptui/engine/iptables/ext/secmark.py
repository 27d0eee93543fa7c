"""-j SECMARK and -j CONNSECMARK (libxt_SECMARK / libxt_CONNSECMARK 1.8.9): parsed,
not simulated. They set and copy SELinux security marks, which kptui does not
model; both are valid only in the mangle and security tables (secmark_tg_check,
connsecmark_tg_check)."""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtTarget

SECMARK_SELCTX_MAX = 256  # xt_secmark_target_info_v1.secctx


class SecmarkTarget(XtTarget):
    name = "SECMARK"
    tables = frozenset({"mangle", "security"})
    entries = (Entry("selctx", XT.STRING, mand=True),)

    def __init__(self) -> None:
        super().__init__()
        self.selctx = ""

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        self.selctx = value[:SECMARK_SELCTX_MAX - 1]  # XTOPT_PUT

    def save(self) -> str:
        return f"--selctx {self.selctx}"  # print_secmark: as is, unquoted


class ConnsecmarkTarget(XtTarget):
    name = "CONNSECMARK"
    tables = frozenset({"mangle", "security"})
    entries = (Entry("save", excl=("restore",)), Entry("restore", excl=("save",)))

    def __init__(self) -> None:
        super().__init__()
        self.mode = ""

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        self.mode = name

    def check_rule(self, proto: int, proto_inv: bool) -> None:
        """CONNSECMARK_check (x6_fcheck, before the table's exclusion checks)."""
        if not self.mode:
            raise BadValue("CONNSECMARK target: parameter required")

    def save(self) -> str:
        return f"--{self.mode}"


TARGETS = (SecmarkTarget, ConnsecmarkTarget)
