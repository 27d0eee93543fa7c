"""iptables: the ruleset model, iptables-restore/command parsing, iptables-save output
and rule traversal (see notes/CONTRACTS.md, section iptables)."""

from kptui.engine.iptables.commands import apply_command, restore
from kptui.engine.iptables.context import MatchContext
from kptui.engine.iptables.model import BUILTIN_CHAINS, Chain, Counters, Rule, Ruleset, Table
from kptui.engine.iptables.save import to_save
from kptui.engine.iptables.traverse import run_chain

__all__ = [
    "BUILTIN_CHAINS", "Chain", "Counters", "MatchContext", "Rule", "Ruleset", "Table",
    "apply_command", "restore", "run_chain", "to_save",
]
