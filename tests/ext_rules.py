"""Shared by the extension tests: one rule through `iptables -A`, and what iptables-save
prints for it, or the refusal's message."""

from __future__ import annotations

import pytest

from kptui.engine.errors import KptuiError
from kptui.engine.iptables import Ruleset, apply_command, to_save


def saved(rule: str, table: str = "filter", chain: str = "INPUT") -> str:
    rs = Ruleset()
    apply_command(rs, f"iptables -t {table} -A {chain} {rule}", file="t", line=1)
    return next(ln for ln in to_save(rs).splitlines() if ln.startswith(f"-A {chain} "))


def refusal(rule: str, table: str = "filter", chain: str = "INPUT") -> str:
    with pytest.raises(KptuiError) as err:
        saved(rule, table, chain)
    return str(err.value)
