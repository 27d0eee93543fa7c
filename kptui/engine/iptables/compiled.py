"""A parse plan compiled to one Python function: the fast path of a restore.

A plan (plans.py) is the list of calls a parse made; replaying it still decides, at
every step of every rule, which kind of step it is, unpacks it and looks up its
owner, and then checks again what cannot change for the shape: whether -p's module
is allowed for the rule's protocol (the protocol word is one the plan decided by),
whether a module or target belongs in the table and chain, which target a name is.
For a 20,000-rule kube-proxy dump that bookkeeping is half of the restore. Here a
plan becomes the straight-line code of its steps (the way ``dataclasses`` writes an
``__init__``): the modules' own calls with this rule's words, and only the checks
that depend on the table, the chain or the values. An option table's own check
(xtables_options_fcheck: mandatory options, also, excl) looks only at which options
were given, the same for every rule of the plan, and passed for the rule it was made
from: the code leaves it out, and the modules of one shape share one ``seen``.

The function either returns the very Rule the RuleParser would make, or raises
(a value the modules refuse, a check that fails): the caller then parses the rule
with RuleParser, which words the refusal with its column and word. So errors never
come from here, and a compiled plan cannot change an error
(tests/test_parse_plans.py compares the three ways: deciding, replaying, compiled).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kptui.engine.iptables import plans
from kptui.engine.iptables.ext._idopts import Quick, SharedIds
from kptui.engine.iptables.ipmatch import IPMatch
from kptui.engine.iptables.matches import Match
from kptui.engine.iptables.model import Rule
from kptui.engine.iptables.registry import target_class
from kptui.engine.iptables.targets import STANDARD_VERDICTS, ChainTarget, Standard, Target
from kptui.engine.iptables.values import BadValue, parse_net, parse_proto
from kptui.engine.iptables.xtopt import XtMatch, XtTarget, _Guided

# build(words, table, chain, builtin, sets, file, line) -> Rule (raises: parse it the
# long way for the error)
Build = Callable[[list[str], str, str, bool, Any, str, int], Rule]

# the option tables' fchecks, which read nothing but ``seen``
_BY_SEEN = (_Guided.fcheck, Quick.fcheck, SharedIds.fcheck)
# the built-in chains where -i / -o cannot be used (RuleParser._ip too)
_NO_IN = frozenset({"OUTPUT", "POSTROUTING"})
_NO_OUT = frozenset({"PREROUTING", "INPUT"})


_OFF = plans.Switch()  # off: plans are replayed, never compiled code (comparisons)


def off() -> Any:
    """Parse by replaying plans only (for comparisons with the compiled code)."""
    return _OFF.off()


class Refused(Exception):
    """A check of the compiled code failed: RuleParser says what."""


def _refuse() -> None:
    raise Refused


class _Writer:
    """The function's lines and the names it refers to."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = {"IPMatch": IPMatch, "Rule": Rule, "parse_net": parse_net,
                                      "ChainTarget": ChainTarget, "Standard": Standard,
                                      "refuse": _refuse}

    def const(self, value: Any) -> str:
        """A name for ``value`` in the function's globals."""
        name = f"k{len(self.names)}"
        self.names[name] = value
        return name

    def add(self, line: str) -> None:
        self.lines.append("    " + line)


def compile_plan(steps: tuple[plans.Step, ...], words: list[str], user_at: int
                 ) -> Build | None:
    """The plan of ``words`` (a rule that parsed by these steps) as a function, or None
    when its shape is one the compiler leaves to the replay."""
    w = _Writer()
    proto, proto_inv = 0, False  # what ip.proto is as the steps go (the plan decides it)
    classes: list[type] = []  # the rule's modules, m0, m1, ... in load order
    target: Any = None  # the target's class (or Standard / ChainTarget)
    # each module's options so far, as the code leaves its ``seen`` (one frozenset for
    # every rule of the shape); None: the module's option() adds to it, so the code adds
    seen: dict[str, frozenset[str] | None] = {}
    goto = False
    w.add("ip = IPMatch()")
    for step in steps:
        op = step[0]
        if op == plans.IP:
            _, at, kind, inv = step
            if kind in ("src", "dst"):
                w.add(f"a, mask = parse_net(w[{at}])")
                w.add(f"ip.{kind} = (a, mask, {inv})")
            elif kind in ("iif", "oif"):
                w.add(f"if len(w[{at}]) > 15: refuse()")
                w.add(f"if chain in {w.const(_NO_IN if kind == 'iif' else _NO_OUT)}: refuse()")
                w.add(f"ip.{kind} = (w[{at}], {inv})")
            elif kind == "proto":
                proto, proto_inv = parse_proto(words[at]), inv  # a word the plan decided by
                if inv and not proto:
                    return None
                w.add(f"ip.proto, ip.proto_inv = {proto}, {inv}")
            else:
                w.add(f"ip.frag = {not inv}")
        elif op in (plans.MATCH, plans.IMPLICIT):
            cls = step[2]
            k = len(classes)
            classes.append(cls)
            seen[f"m{k}"] = None if cls.seen_in_option else frozenset()
            w.add(f"m{k} = {w.const(cls)}()")
            if op == plans.MATCH and cls.uses_sets:
                w.add(f"m{k}.sets = sets")
        elif op == plans.TARGET:
            _, at, goto = step
            if user_at >= 0:  # Plan.fits checked that the word names a user chain
                target = ChainTarget
                w.add(f"t = ChainTarget(w[{at}], {goto})")
                continue
            name = words[at]
            if name in STANDARD_VERDICTS:
                target = Standard
                if name == "DROP":  # iptables 1.8.9 refuses it in nat (RuleParser._target)
                    w.add("if table == 'nat': refuse()")
                w.add(f"t = Standard({name!r})")
                continue
            target = target_class(name)
            if target is None or goto:
                return None
            seen["t"] = None if target.seen_in_option else frozenset()
            w.add(f"t = {w.const(target)}()")
            if target.uses_sets:
                w.add("t.sets = sets")
        else:  # an option of module k (-1: the target)
            _, _, k, opt, start, end, inv = step
            owner = "t" if k < 0 else f"m{k}"
            if proto or proto_inv:  # what the module sees of the rule so far
                w.add(f"{owner}.proto_now, {owner}.proto_inv_now = {proto}, {proto_inv}")
            w.add(f"{owner}.option({opt!r}, w[{start}:{end}], {inv})")
            given = seen[owner]
            if given is None:
                w.add(f"{owner}.seen = {owner}.seen | {{{opt!r}}}")
            else:
                given = seen[owner] = given | {opt}
                w.add(f"{owner}.seen = {w.const(given)}")
    # RuleParser._finish, module by module. What a module allows (protos, tables,
    # chains) is read from the object, as _finish reads it: a module may set it from its
    # values (-m ecn's protos, TCPMSS --clamp-mss-to-pmtu's chains).
    for k, cls in enumerate(classes):
        m = f"m{k}"
        if cls.finish is XtMatch.finish and cls.fcheck in _BY_SEEN:  # check, then fcheck
            if cls.check is not _Guided.check:
                w.add(f"{m}.check()")
        elif cls.finish is not Match.finish:
            w.add(f"{m}.finish()")
        w.add(f"if (x := {m}.protos) is not None and ({proto} not in x or {proto_inv}): "
              "refuse()")
        w.add(f"if (x := {m}.tables) is not None and table not in x: refuse()")
        w.add(f"if builtin and (x := {m}.allowed_chains()) is not None and chain not in x: "
              "refuse()")
    if target is None:
        w.add("t = None")
    elif target is not ChainTarget and target is not Standard:
        if target.finish is XtTarget.finish and target.fcheck in _BY_SEEN:  # as for matches
            if target.check_rule is not XtTarget.check_rule:
                w.add(f"t.check_rule({proto}, {proto_inv})")
        elif target.finish is not Target.finish:
            w.add(f"t.finish({proto}, {proto_inv})")
        w.add("if (x := t.tables) is not None and table not in x: refuse()")
        w.add("if builtin and (x := t.chains) is not None and chain not in x: refuse()")
    mods = ", ".join(["ip", *(f"m{k}" for k in range(len(classes)))])
    w.add(f"return Rule([{mods}], t, None, None, file, line, {goto and target is ChainTarget})")
    source = "def build(w, table, chain, builtin, sets, file, line):\n" + "\n".join(w.lines)
    space: dict[str, Any] = {}
    exec(compile(source, f"<plan {' '.join(words)[:60]}>", "exec"), w.names, space)  # noqa: S102
    build = space["build"]
    build.source = source  # what the plan became, for a reader debugging it
    return build


def build_rule(words: list[str], lookup: Any, table: str, chain: str, builtin: bool,
               sets: Any, file: str, line: int) -> Rule | None:
    """The rule by its shape's compiled plan; None when there is none or the rule fails
    one of its checks (RuleParser then parses it and words the refusal)."""
    plan = plans.find(words, lookup)
    if plan is None or plan.build is None or _OFF:
        return None
    try:
        return plan.build(words, table, chain, builtin, sets, file, line)
    except (BadValue, Refused):
        return None
