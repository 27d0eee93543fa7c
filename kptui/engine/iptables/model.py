"""The ruleset model: tables -> chains -> rules, with counters and policies.

Built-in chains exist lazily, as with iptables-nft 1.8.9 (checked on this
machine): a chain is *present* only once restore declared it or a command
touched it. Only present chains are traversed; iptables-save still prints all
built-in chains of a table that exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# iptables(8): the built-in chains of each table, in hook order.
BUILTIN_CHAINS: dict[str, tuple[str, ...]] = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}

# iptables-nft 1.8.9 iptables-save prints tables in its enum nft_table_type
# order, not in creation order (checked on this machine).
TABLE_ORDER: tuple[str, ...] = ("mangle", "security", "raw", "filter", "nat")


@dataclass(slots=True)
class Counters:
    pkts: int = 0
    bytes: int = 0

    def add(self, length: int) -> None:
        self.pkts += 1
        self.bytes += length

    def text(self) -> str:
        return f"[{self.pkts}:{self.bytes}]"


class Rule:
    """One rule. ``text`` is its canonical spec as iptables-save prints it, without ``-A CHAIN``.

    The text is built from the parsed matches and target on first use and then
    kept: a restore of a 20,000-rule kube-proxy ruleset would otherwise spend a
    quarter of its time on texts that a walk only ever shows for the few rules
    it evaluates. Nothing a save() prints changes after parsing (the state of
    limit and statistic is not part of it; a chain rename sets the text itself).

    Equality is by canonical text and counters (not by source position), so a
    ruleset compares equal to its own save/restore round trip.
    """

    __slots__ = ("matches", "target", "counters", "file", "line", "goto", "_text", "handle")

    def __init__(self, matches: list[Any], target: Any, counters: Counters | None = None,
                 text: str | None = None, file: str = "<input>", line: int = 0,
                 goto: bool = False) -> None:
        self.matches = matches  # the IP part first (IPMatch), then -m modules in load order
        self.target = target  # a Target, or None for a rule without -j/-g
        self.counters = counters if counters is not None else Counters()
        self.file, self.line, self.goto = file, line, goto
        self._text = text  # None: not built yet
        self.handle = 0  # the nf_tables handle iptables-nft's kernel gives it (Table.new_handle)

    @property
    def text(self) -> str:
        if self._text is None:
            parts = [self.matches[0].save()]
            for m in self.matches[1:]:
                parts.append(f"-m {m.name}")
                parts.append(m.save())
            if self.target is not None:
                parts.append(f"{'-g' if self.goto else '-j'} {self.target.name}")
                parts.append(self.target.save())
            self._text = " ".join(p for p in parts if p)
        return self._text

    @text.setter
    def text(self, value: str) -> None:
        self._text = value

    def __repr__(self) -> str:
        return f"Rule({self.text!r}, counters={self.counters}, file={self.file!r}, " \
               f"line={self.line})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Rule):
            return NotImplemented
        return self.text == other.text and self.counters == other.counters

    __hash__ = None  # type: ignore[assignment]


@dataclass(eq=False, slots=True)
class Chain:
    name: str
    builtin: bool
    policy: str = "ACCEPT"  # "-" for user chains
    present: bool = False
    rules: list[Rule] = field(default_factory=list)
    counters: Counters = field(default_factory=Counters)
    handle: int = 0  # nf_tables handle, given when the chain comes to exist (0: not yet)
    # traversal index, rebuilt when rules change (not a part of the chain's value)
    index_cache: Any = field(default=None, repr=False)

    def __eq__(self, other: object) -> bool:
        # Presence is not compared: an absent built-in chain behaves exactly like a
        # present one with policy ACCEPT, no rules and zero counters.
        if not isinstance(other, Chain):
            return NotImplemented
        return (self.name, self.builtin, self.policy, self.rules, self.counters) == (
            other.name, other.builtin, other.policy, other.rules, other.counters)

    __hash__ = None  # type: ignore[assignment]

    def changed(self) -> None:
        self.index_cache = None


@dataclass
class Table:
    """One table. ``handles`` is nf_tables' per-table handle generator: chains and rules
    take the next number as they are created (checked with `nft -a list ruleset` after
    iptables-nft 1.8.9 commands and restores: `-A INPUT` on a fresh table makes chain
    INPUT 1 and the rule 2; `-R` keeps the replaced rule's handle; a restore without
    --noflush recreates the table, so its numbering starts again at 1)."""

    name: str
    chains: dict[str, Chain] = field(default_factory=dict)
    handles: int = field(default=0, compare=False)

    def new_handle(self) -> int:
        self.handles += 1
        return self.handles

    def make_present(self, chain: Chain) -> None:
        """The chain exists from now on in the kernel's ruleset (with its handle)."""
        chain.present = True
        if not chain.handle:
            chain.handle = self.new_handle()

    @classmethod
    def empty(cls, name: str) -> Table:
        """A table with all built-in chains, none of them present yet."""
        return cls(name, {c: Chain(c, True) for c in BUILTIN_CHAINS[name]})

    @property
    def present(self) -> bool:
        return any(c.present for c in self.chains.values())


@dataclass
class Ruleset:
    tables: dict[str, Table] = field(default_factory=dict)
    # The box's ipset sets (kptui.engine.ipsets.IpsetStore), which -m set and -j SET look
    # up by name while a rule is parsed, as iptables asks the kernel; None: no sets at all.
    ipsets: Any = field(default=None, compare=False, repr=False)

    def table(self, name: str) -> Table:
        """The table, created (with no chain present) on first use."""
        t = self.tables.get(name)
        if t is None:
            t = self.tables[name] = Table.empty(name)
        return t

    def chain_present(self, table: str, chain: str) -> bool:
        t = self.tables.get(table)
        c = t.chains.get(chain) if t else None
        return bool(c and c.present)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ruleset):
            return NotImplemented
        mine = {k: v for k, v in self.tables.items() if v.present}
        theirs = {k: v for k, v in other.tables.items() if v.present}
        return mine == theirs
