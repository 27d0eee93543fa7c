"""to_save: iptables-save text as iptables-nft 1.8.9 prints it (without date comments)."""

from __future__ import annotations

from kptui.engine.iptables.model import TABLE_ORDER, Ruleset


def to_save(ruleset: Ruleset, *, counters: bool = False) -> str:
    """Tables in iptables-nft order; built-in chains in hook order, then user chains
    sorted by name; rule counters only with ``counters`` (iptables-save -c)."""
    out: list[str] = []
    for name in TABLE_ORDER:
        table = ruleset.tables.get(name)
        if table is None or not table.present:
            continue
        out.append(f"*{name}")
        builtins = [c for c in table.chains.values() if c.builtin]
        users = sorted((c for c in table.chains.values() if not c.builtin), key=lambda c: c.name)
        for ch in builtins + users:
            out.append(f":{ch.name} {ch.policy if ch.builtin else '-'} {ch.counters.text()}")
        for ch in builtins + users:
            for r in ch.rules:
                prefix = f"{r.counters.text()} " if counters else ""
                out.append(f"{prefix}-A {ch.name} {r.text}".rstrip())
        out.append("COMMIT")
    return "\n".join(out) + "\n" if out else ""
