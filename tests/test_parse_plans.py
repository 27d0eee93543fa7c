"""Parse plans (kptui/engine/iptables/plans.py) change nothing a user can see.

A rule parsed by the plan of an earlier rule of its shape must give what the
parse that decides as it goes gives: the same rule (its iptables-save line) or
the same refusal (message, column and word); so must a plan compiled to Python
(compiled.py), down to every attribute of every module the walk reads. Checked
these ways:

- iptables' own 2,013 extension cases (whose answers come from iptables-nft
  1.8.9, tests/iptables_ext_cases.py), each parsed with the plans every other
  case left behind, against a parse with none;
- every bundled and kernel-checked scenario's ruleset, restored both ways;
- random rules of one shape with other values, the second by the first's plan;
- every scenario's rules, object by object: decided, replayed and compiled.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from iptables_ext_cases import load_cases, run_case

from kptui.engine.errors import KptuiError
from kptui.engine.iptables import Ruleset, apply_command, compiled, plans, restore, to_save

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
    second = restored(text)  # every rule by a compiled plan
    with compiled.off():
        replayed = restored(text)  # every rule by a plan's steps
    plans.forget()
    assert first == second == replayed == fresh


PARSE_TIME = ("proto_now", "proto_inv_now")  # what a module sees of -p while it is parsed


def state(value: object) -> object:
    """What a walk can read of a parsed rule: every attribute, all the way down."""
    if isinstance(value, (list, tuple)):
        return [state(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(map(repr, value))
    if hasattr(value, "__dict__") and type(value).__module__.startswith("kptui"):
        attrs = dict(vars(value))
        for name in PARSE_TIME:  # set on the object, or its class's default: the same
            if hasattr(value, name):
                attrs[name] = getattr(value, name)
        return (type(value).__name__, {k: state(v) for k, v in sorted(attrs.items())})
    if hasattr(value, "__slots__") and type(value).__module__.startswith("kptui"):
        return (type(value).__name__, {k: state(getattr(value, k)) for k in value.__slots__
                                       if hasattr(value, k) and k != "_text"})
    return value


def rules_state(text: str) -> object:
    rs = Ruleset()
    try:
        restore(rs, text, file="rules")
    except KptuiError as err:
        return f"refused: {err}"
    return [(t, c, state(r)) for t, table in sorted(rs.tables.items())
            for c, chain in table.chains.items() for r in chain.rules]


@pytest.mark.parametrize("name", RULESETS)
def test_compiled_plans_build_the_very_objects(name: str) -> None:
    text = RULESETS[name]
    with plans.off():
        fresh = rules_state(text)
    plans.forget()
    try:
        rules_state(text)  # leaves the plans
        by_compiled = rules_state(text)
        with compiled.off():
            by_replay = rules_state(text)
    finally:
        plans.forget()
    assert by_compiled == fresh
    assert by_replay == fresh


def test_compiled_plans_are_used_for_a_kube_proxy_dump() -> None:
    """The compiled code is what a big restore runs (not only a fallback that is never
    taken): every rule of a kube-proxy-shaped dump after the first of its shape."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from kube_proxy import kube_proxy_ruleset

    text, _ = kube_proxy_ruleset(2000, seed=3)
    made: list[bool] = []
    real = compiled.build_rule

    def counting(*args: object) -> object:
        rule = real(*args)  # type: ignore[arg-type]
        made.append(rule is not None)
        return rule

    plans.forget()
    try:
        compiled_rules = restored(text)
        with pytest.MonkeyPatch.context() as mp:
            import kptui.engine.iptables.commands as commands
            mp.setattr(commands, "build_rule", counting)
            assert restored(text) == compiled_rules
    finally:
        plans.forget()
    assert len(made) == text.count("\n-A ")
    assert sum(made) == len(made)


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


# The same shape accepted first and refused second, where what is allowed comes from the
# module's values or the chain (iptables-nft 1.8.9 refuses each second rule: TCPMSS
# clamping outside FORWARD/OUTPUT/POSTROUTING, -m ecn's --ecn-tcp-* without -p tcp, -i
# in OUTPUT, DROP in nat): compiled code must refuse them as the parser does.
REFUSED_KIN = [
    ("-t mangle -A FORWARD -p tcp -j TCPMSS --set-mss 1400",
     "-t mangle -A PREROUTING -p tcp -j TCPMSS --clamp-mss-to-pmtu"),
    ("-t mangle -A FORWARD -p tcp -j TCPMSS --clamp-mss-to-pmtu",
     "-t mangle -A PREROUTING -p tcp -j TCPMSS --clamp-mss-to-pmtu"),
    ("-A INPUT -m ecn --ecn-ip-ect 1 -j ACCEPT", "-A INPUT -m ecn --ecn-tcp-cwr -j ACCEPT"),
    ("-A INPUT -i eth0 -j ACCEPT", "-A OUTPUT -i eth0 -j ACCEPT"),
    ("-t mangle -A INPUT -j DROP", "-t nat -A INPUT -j DROP"),
    ("-t nat -A PREROUTING -p tcp -j DNAT --to-destination 1.2.3.4",
     "-t nat -A POSTROUTING -p tcp -j DNAT --to-destination 1.2.3.4"),
    ("-t nat -A PREROUTING -m comment --comment x -j DNAT --to-destination 1.2.3.4",
     "-t filter -A INPUT -m comment --comment x -j DNAT --to-destination 1.2.3.4"),
]


def command_outcome(commands: list[str]) -> str:
    rs = Ruleset()
    try:
        for n, cmd in enumerate(commands):
            apply_command(rs, f"iptables {cmd}", file="rules", line=n + 1)
    except KptuiError as err:
        return f"refused: {err} [{err.column}:{err.token!r}]"
    return to_save(rs)


@pytest.mark.parametrize(("first", "second"), REFUSED_KIN)
def test_a_compiled_plan_refuses_what_the_parser_refuses(first: str, second: str) -> None:
    with plans.off():
        fresh = command_outcome([first, second])
    plans.forget()
    try:
        by_plan = command_outcome([first, second])
    finally:
        plans.forget()
    assert fresh.startswith("refused: ")
    assert by_plan == fresh
