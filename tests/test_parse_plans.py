"""Parse plans (kptui/engine/iptables/plans.py) change nothing a user can see.

A rule parsed by the plan of an earlier rule of its shape must give what the
parse that decides as it goes gives: the same rule (its iptables-save line) or
the same refusal (message, column and word). Checked three ways:

- iptables' own 2,013 extension cases (whose answers come from iptables-nft
  1.8.9, tests/iptables_ext_cases.py), each parsed with the plans every other
  case left behind, against a parse with none;
- every bundled and kernel-checked scenario's ruleset, restored both ways;
- random rules of one shape with other values, the second by the first's plan.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from iptables_ext_cases import load_cases, run_case

from kptui.engine.errors import KptuiError
from kptui.engine.iptables import Ruleset, apply_command, plans, restore, to_save

ROOT = Path(__file__).resolve().parent.parent
CASES = load_cases()


def test_the_extension_cases_parse_alike_by_plan() -> None:
    with plans.off():
        fresh = [run_case(c).got for c in CASES]
    plans.forget()
    try:
        for c in CASES:  # leave every shape's plan behind
            run_case(c)
        kept = len(plans._PLANS)
        by_plan = [run_case(c).got for c in reversed(CASES)][::-1]
    finally:
        plans.forget()
    assert kept > 100  # most cases have a plan to be parsed by
    diffs = [f"{c.key}: {c.rule}\n  by plan {p}\n  fresh   {f}"
             for c, p, f in zip(CASES, by_plan, fresh, strict=True) if p != f]
    assert not diffs, "\n".join(diffs[:20])


RULESETS = {p.stem: text for p in sorted([*ROOT.glob("tests/kernel/scenarios/*.toml"),
                                          *ROOT.glob("kptui/scenarios/*.toml")])
            if (text := tomllib.loads(p.read_text("utf-8")).get("iptables", ""))}


def restored(text: str) -> str:
    rs = Ruleset()
    try:
        restore(rs, text, file="rules")
    except KptuiError as err:
        return f"refused: {err}"
    return to_save(rs)


def test_the_scenarios_have_rulesets() -> None:
    assert len(RULESETS) > 150


@pytest.mark.parametrize("name", RULESETS)
def test_scenario_rulesets_restore_alike_by_plan(name: str) -> None:
    text = RULESETS[name]
    with plans.off():
        fresh = restored(text)
    plans.forget()
    first = restored(text)  # plans made as it goes: a rule's later kin use them
    second = restored(text)  # every rule by a plan
    plans.forget()
    assert first == second == fresh


# Pieces of rules (VALUE: a value to fill in), mostly valid so that the first rule
# parses and leaves its plan; the values include words that look like options.
PIECES = [["-p", "tcp"], ["-p", "udp"], ["-m", "comment", "--comment", "VALUE"],
          ["-m", "tcp", "--dport", "VALUE"], ["--dport", "VALUE"], ["--sport", "VALUE"],
          ["!", "-s", "VALUE"], ["-d", "VALUE"], ["-i", "VALUE"], ["-f"], ["--syn"],
          ["-m", "mark", "--mark", "VALUE"], ["-m", "limit", "--limit", "VALUE"],
          ["-m", "multiport", "--dports", "VALUE"], ["!", "--dport", "VALUE"],
          ["-m", "statistic", "--mode", "random", "--probability", "VALUE"],
          ["-j", "DNAT", "--to-destination", "VALUE"], ["-j", "USER"], ["-g", "USER"],
          ["-j", "ACCEPT"], ["-j", "VALUE"], ["-m", "VALUE"], ["VALUE"], ["!"]]
VALUES = ["80", "0x10/0xff", "1.2.3.4", "10.0.0.0/8", "1.2.3.4/33", "", "-x", "!", "70000",
          "eth0", "a b", "5/sec", "0.5", "2", "1.2.3.4:80", "1.2.3.4:99999", "1:2,3",
          "--dport", "USER", "tcp", "comment"]


def outcome(chain: str, words: list[str]) -> str:
    rs = Ruleset()
    apply_command(rs, "iptables -t nat -N USER", file="setup", line=1)
    line = " ".join(f"'{w}'" for w in ["iptables", "-t", "nat", "-A", chain, *words])
    try:
        apply_command(rs, line, file="rule", line=1)
    except KptuiError as err:
        return f"refused: {err} [{err.column}:{err.token!r}]"
    return to_save(rs)


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=5),
       st.lists(st.sampled_from(VALUES), min_size=5, max_size=5),
       st.lists(st.sampled_from(VALUES), min_size=5, max_size=5),
       st.sampled_from(["PREROUTING", "OUTPUT", "USER"]))
def test_a_rule_by_another_rule_s_plan_is_the_rule(pieces, first, second, chain) -> None:
    shape = [w for piece in pieces for w in piece]

    def fill(values: list[str]) -> list[str]:
        it = iter(values * 4)
        return [next(it) if w == "VALUE" else w for w in shape]

    with plans.off():
        fresh = outcome(chain, fill(second))
    plans.forget()
    try:
        outcome(chain, fill(first))  # its plan, if it parsed, is the second one's
        assert outcome(chain, fill(second)) == fresh
    finally:
        plans.forget()


# Rules of one shape that must not share a plan: what the parse decides by differs
# (the -m module, -p's module, the target, an option where a value was).
KIN = [
    ("-m tcp --dport 80 -j ACCEPT", "-m udp --dport 80 -j ACCEPT"),
    ("-m tcp -j ACCEPT", "-m comment -j ACCEPT"),
    ("-p tcp --dport 80 -j ACCEPT", "-p udp --dport 80 -j ACCEPT"),
    ("-p tcp --dport 80 -j ACCEPT", "-p icmp --dport 80 -j ACCEPT"),
    ("-p tcp --dport 80 -j ACCEPT", "! -p tcp --dport 80 -j ACCEPT"),
    ("-s 1.2.3.4 -j USER", "-s 1.2.3.4 -j ACCEPT"),
    ("-s 1.2.3.4 -j USER", "-s 1.2.3.4 -j NOSUCH"),
    ("-s 1.2.3.4 -j USER", "-s 1.2.3.4 -j PREROUTING"),
    ("-j DNAT --to-destination 1.2.3.4", "-j USER --to-destination 1.2.3.4"),
    ("-s 1.2.3.4 -d 5.6.7.8 -j ACCEPT", "-s 1.2.3.4 -d -j -j ACCEPT"),
    ("-m comment --comment x -j ACCEPT", "-m comment --comment -j -j ACCEPT"),
    ("-m comment --comment x -j ACCEPT", "-m comment --comment ! -j ACCEPT"),
    ("-p tcp --dport 80 -j ACCEPT", "-p tcp --dp 80 -j ACCEPT"),
    ("-p tcp -m tcp --dport 80 -j ACCEPT", "-p tcp -mtcp --dport 80 -j ACCEPT"),
    ("-m rateest --rateest x --rateest-bps1 1 --rateest-gt -j ACCEPT",
     "-m rateest --rateest x --rateest-bps1 --rateest-gt 1 -j ACCEPT"),
    ("-j DNAT --to-destination 1.2.3.4:80", "-j DNAT --to-destination 1.2.3.4:99999"),
    ("-i eth0 -j ACCEPT", "-i eth0000000000000000 -j ACCEPT"),
]


@pytest.mark.parametrize(("first", "second"), KIN)
@pytest.mark.parametrize("chain", ["PREROUTING", "OUTPUT", "USER"])
def test_kin_rules_parse_as_themselves(first: str, second: str, chain: str) -> None:
    with plans.off():
        fresh = outcome(chain, second.split())
    plans.forget()
    try:
        outcome(chain, first.split())
        assert outcome(chain, second.split()) == fresh
    finally:
        plans.forget()
