"""run_chain: ipt_do_table's walk through one table at one hook, as events.

Counters are bumped on a match before the target runs; -j pushes, -g does not;
RETURN or the end of a user chain pops, and an empty stack means the hook
chain's policy. iptables-nft runs on nf_tables, whose jump stack holds 16
levels (NFT_JUMP_STACK_SIZE); deeper nesting drops.

Hot chains are indexed: rules of the form `-d A/32 -p tcp|udp ... --dport N`
are filed under (A, proto, N), so a packet only evaluates rules that can
match it plus the rules the index cannot classify, in chain order. The result
is the same as the linear walk (``linear=True``), minus RuleEval events for
rules that could not have matched; one Note says how many were skipped.

The debugger may edit the packet while a walk is paused (DESIGN.md: the walk
mutates the packet in place), so the candidate list is tied to the packet's
index key: before each rule the key is checked again, and if an edit changed
it the list is rebuilt and the walk resumes after the last rule evaluated.
Jump-stack frames keep the key their list was built for, so an edit inside a
called chain is seen by the caller after the return.
"""

from __future__ import annotations

import bisect
from collections.abc import Generator
from typing import Any

from kptui.engine.events import (
    ChainEnter,
    ChainReturn,
    Event,
    FieldChange,
    LogLine,
    Note,
    PolicyApplied,
    RuleEval,
    TargetApplied,
)
from kptui.engine.iptables.context import MatchContext
from kptui.engine.iptables.ext.udp import UdpMatch
from kptui.engine.iptables.matches import TcpMatch
from kptui.engine.iptables.model import Chain, Rule, Ruleset
from kptui.engine.iptables.targets import ChainTarget

JUMP_STACK_LIMIT = 16
INDEX_MIN_RULES = 32


class ChainIndex:
    """Candidate rule positions per (dst, proto, dport), merged with unclassified ones."""

    def __init__(self, rules: list[Rule]) -> None:
        self.by_key: dict[tuple[int, int, int], list[int]] = {}
        self.other: list[int] = []
        for pos, rule in enumerate(rules):
            key = _rule_key(rule)
            if key is None:
                self.other.append(pos)
            else:
                self.by_key.setdefault(key, []).append(pos)
        self.merged: dict[tuple[int, int, int], list[int]] = {}

    def candidates(self, key: tuple[int, int, int] | None) -> list[int]:
        """Rule positions for a packet with index key ``key`` (see ``packet_key``)."""
        if key is None:
            return self.other
        got = self.merged.get(key)
        if got is None:
            hits = self.by_key.get(key)
            got = sorted(self.other + hits) if hits else self.other
            if len(self.merged) < 65536:
                self.merged[key] = got
        return got


def packet_key(pkt: Any) -> tuple[int, int, int] | None:
    """The (dst, proto, dport) a packet is filed under; None: only unclassified rules apply.

    A non-first fragment has no ports to match, so keyed rules cannot match it.
    """
    l4 = pkt.l4
    if pkt.ip.frag_offset or pkt.ip.proto not in (6, 17) or l4 is None:
        return None
    return int(pkt.ip.dst), pkt.ip.proto, l4.dport


def _rule_key(rule: Rule) -> tuple[int, int, int] | None:
    ip = rule.matches[0]
    if ip.dst is None or ip.dst[1] != 0xFFFFFFFF or ip.dst[2]:
        return None
    if ip.proto not in (6, 17) or ip.proto_inv:
        return None
    for m in rule.matches[1:]:
        if isinstance(m, (TcpMatch, UdpMatch)) and m.dport is not None and not m.dinv \
                and m.dport[0] == m.dport[1]:
            return ip.dst[0], ip.proto, m.dport[0]
        if m.stateful:
            return None
    return None


def _candidates(chain: Chain, key: tuple[int, int, int] | None,
                linear: bool) -> list[int] | range:
    """The rule positions to evaluate; a range means every rule (not indexed)."""
    if linear or len(chain.rules) < INDEX_MIN_RULES:
        return range(len(chain.rules))
    if chain.index_cache is None:
        chain.index_cache = ChainIndex(chain.rules)
    return chain.index_cache.candidates(key)


def run_chain(ruleset: Ruleset, table: str, chain: str, pkt: Any, ctx: MatchContext, *,
              stage: str, hook: str, linear: bool = False) -> Generator[Event, None, str]:
    """Walk ``table``/``chain`` for ``pkt``; yields events, returns the verdict."""
    tbl = ruleset.tables[table]
    base = tbl.chains[chain]
    cur = base
    depth = 1
    # frames: (chain, its candidates, next position in them, depth, the key they were built for)
    stack: list[tuple[Chain, list[int] | range, int, int, Any]] = []
    ev = {"stage": stage, "hook": hook, "table": table}
    key: Any = None

    def enter(ch: Chain, via: str) -> Generator[Event, None, list[int] | range]:
        nonlocal key
        yield ChainEnter(depth=depth, chain=ch.name, via=via, **ev)
        key = packet_key(pkt)  # after the yield: an edit made at ChainEnter counts
        cands = _candidates(ch, key, linear)
        skipped = len(ch.rules) - len(cands)
        if skipped:
            yield Note(stage=stage, hook=hook, depth=depth,
                       text=f"{table} {ch.name}: the rule index skipped {skipped} of "
                            f"{len(ch.rules)} rules that cannot match this packet")
        return cands

    cands = yield from enter(cur, "hook")
    k = 0
    while True:
        if not isinstance(cands, range):
            now = packet_key(pkt)
            if now != key:
                # edited while paused (or by a target): re-file the packet and resume
                # after the last rule evaluated, as the linear walk would
                key = now
                last = cands[k - 1] if k else -1
                cands = _candidates(cur, key, linear)
                k = bisect.bisect_right(cands, last)
        if k < len(cands):
            idx = cands[k]
            k += 1
            rule = cur.rules[idx]
            reason = None
            for m in rule.matches:
                reason = m.test(pkt, ctx)
                if reason is not None:
                    break
            num = idx + 1
            yield RuleEval(depth=depth, chain=cur.name, rule=num, matched=reason is None,
                           text=f"-A {cur.name} {rule.text}", reason=reason or "", **ev)
            if ctx.match_changes:  # a match changed the packet (-m socket --restore-skmark)
                for path, was, new in ctx.match_changes:
                    yield FieldChange(stage=stage, hook=hook, depth=depth, path=path, old=was,
                                      new=new, by=f"{table}:{cur.name}:rule:{num}")
                ctx.match_changes.clear()
            if reason is not None:
                continue
            rule.counters.add(pkt.length)
            tg = rule.target
            if tg is None:
                continue
            if isinstance(tg, ChainTarget):
                yield TargetApplied(depth=depth, chain=cur.name, rule=num, target=tg.chain,
                                    verdict="GOTO" if tg.goto else "JUMP", **ev)
                if not tg.goto:
                    if len(stack) >= JUMP_STACK_LIMIT:
                        yield Note(stage=stage, hook=hook, depth=depth,
                                   text=f"jump stack overflow (more than {JUMP_STACK_LIMIT} "
                                        "levels): the packet is dropped")
                        return "DROP"
                    stack.append((cur, cands, k, depth, key))
                cur = tbl.chains[tg.chain]
                depth += 1
                cands = yield from enter(cur, "goto" if tg.goto else "jump")
                k = 0
                continue
            res = tg.apply(pkt, ctx)
            by = f"{table}:{cur.name}:rule:{num}"
            for path, old, new in res.changes:
                yield FieldChange(stage=stage, hook=hook, depth=depth, path=path, old=old,
                                  new=new, by=by)
            if res.log is not None:
                prefix, level, line = res.log
                yield LogLine(stage=stage, hook=hook, depth=depth, prefix=prefix, level=level,
                              line=line)
            yield TargetApplied(depth=depth, chain=cur.name, rule=num, target=tg.name,
                                verdict=res.verdict, detail=res.detail, **ev)
            if res.verdict == "CONTINUE":
                continue
            if res.verdict != "RETURN":
                return res.verdict
            if stack or cur is not base:
                yield ChainReturn(depth=depth, chain=cur.name, rule=num, explicit=True, **ev)
        elif not cur.builtin:
            yield ChainReturn(depth=depth, chain=cur.name, rule=len(cur.rules) + 1,
                              explicit=False, **ev)
        # RETURN, or the end of a chain: pop, or apply the hook chain's policy
        if stack:
            cur, cands, k, depth, key = stack.pop()
            continue
        base.counters.add(pkt.length)
        yield PolicyApplied(depth=1, chain=base.name, verdict=base.policy, **ev)
        return base.policy
