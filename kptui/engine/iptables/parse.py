"""Parse one rule specification (the part after `-A CHAIN`) into a Rule.

Mirrors iptables' do_parse: the IP part, `-m` modules in load order, `-j`/`-g`;
an unknown option is offered to the target first, then to the loaded matches
newest first, then to the match named after `-p` (loaded implicitly, which is
why `-p tcp --dport 80` saves as `-p tcp -m tcp --dport 80`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kptui.engine.errors import ParseError
from kptui.engine.iptables import plans
from kptui.engine.iptables.compiled import _NO_IN, _NO_OUT, compile_plan
from kptui.engine.iptables.ipmatch import IPMatch
from kptui.engine.iptables.lexer import Token
from kptui.engine.iptables.matches import Match
from kptui.engine.iptables.model import Rule
from kptui.engine.iptables.registry import match_class, target_class
from kptui.engine.iptables.targets import (
    STANDARD_VERDICTS,
    ChainTarget,
    Standard,
    Target,
)
from kptui.engine.iptables.values import BadValue, parse_net, parse_proto

_IP_OPTS = {
    "-s": "src", "--source": "src", "--src": "src",
    "-d": "dst", "--destination": "dst", "--dst": "dst",
    "-i": "iif", "--in-interface": "iif", "-o": "oif", "--out-interface": "oif",
    "-p": "proto", "--protocol": "proto", "-f": "frag", "--fragment": "frag",
    "-m": "match", "--match": "match", "-j": "jump", "--jump": "jump",
    "-g": "goto", "--goto": "goto",
}
_FLAG_OF = {"src": "-s", "dst": "-d", "iif": "-i", "oif": "-o", "proto": "-p", "frag": "-f",
            "jump": "-j", "goto": "-g"}
_TARGET_KINDS = frozenset({"jump", "goto"})

# chain name -> "builtin" | "user" | None (missing), for the rule's table
ChainLookup = Callable[[str], str | None]


# the match -p loads for its options (iptables 1.8.9: `-p 132 --dport 5` saves as
# `-p sctp -m sctp --dport 5`, checked)
_PROTO_MATCH = {6: "tcp", 17: "udp", 1: "icmp", 132: "sctp", 33: "dccp", 50: "esp", 51: "ah",
                108: "ipcomp"}
# short IP options written with their argument attached: True when iptables uses the
# argument getopt split off, False when it uses the whole word (see RuleParser.parse)
_ATTACHED = {"-p": False, "-s": False, "-d": False, "-i": False, "-o": False, "-j": False,
             "-m": True, "-g": True}
# iptables 1.8.9's own long options (xshared.c opts[]) that are not rule options: an
# abbreviation that could also be one of these is ambiguous to getopt_long.
_COMMAND_LONG = frozenset({
    "--append", "--check", "--delete", "--insert", "--replace", "--list", "--list-rules",
    "--flush", "--zero", "--new-chain", "--delete-chain", "--policy", "--rename-chain",
    "--table", "--numeric", "--verbose", "--wait", "--wait-interval", "--exact", "--version",
    "--help", "--line-numbers", "--modprobe", "--set-counters", "--ipv4", "--ipv6"})


_NOTHING_LOOKED: list[int] = []  # never appended to: _parse makes each parse its own list


class RuleParser:
    """One use per rule; collects errors with the position of the offending word.

    The rule is its words; where each begins on its line (``columns``, a list or a
    function that makes it) is read only for an error message: working it out is a
    third of a restore's lexing, and a restore of good rules never needs it. Words,
    matches and the target are referred to by their index in ``words``.
    """

    __slots__ = ("words", "cols", "table", "chain", "file", "line", "lookup", "sets", "steps",
                 "looked", "builtin")

    def __init__(self, words: list[str], *, columns: list[int] | Callable[[], list[int]],
                 table: str, chain: str, file: str, line: int, lookup: ChainLookup,
                 sets: Any = None, builtin: bool | None = None) -> None:
        self.words, self.cols = words, columns
        self.table, self.chain = table, chain
        self.file, self.line, self.lookup = file, line, lookup
        self.sets = sets  # the box's ipset sets, for -m set and -j SET (None: none)
        # whether the rule's chain is built in (None: ask lookup)
        self.builtin = builtin if builtin is not None else lookup(chain) == "builtin"
        # what the parse does and the words it decides by, for a plan (None: no plan);
        # made by _parse (a rule parsed by a plan needs neither)
        self.steps: list[plans.Step] | None = None
        self.looked: list[int] = _NOTHING_LOOKED

    @classmethod
    def of_tokens(cls, toks: list[Token], **kw: Any) -> RuleParser:
        return cls([t[0] for t in toks], columns=[t[1] for t in toks], **kw)

    def columns(self) -> list[int]:
        if callable(self.cols):
            self.cols = self.cols()
        return self.cols

    def err(self, msg: str, at: int | None) -> ParseError:
        """The error about word ``at`` (None: the last word)."""
        words = self.words
        if at is None:
            at = len(words) - 1
        if at < 0:
            return ParseError(msg, file=self.file, line=self.line, column=0, token="")
        return ParseError(msg, file=self.file, line=self.line, column=self.columns()[at],
                          token=words[at])

    def _splice(self, at: int, new: list[str]) -> list[str]:
        """Word ``at`` read as ``new`` (getopt's forms), each at its column."""
        cols = self.columns()
        self.steps = None  # the plan's positions would be this rule's own
        self.words = self.words[:at] + new + self.words[at + 1:]
        self.cols = cols[:at] + [cols[at]] * len(new) + cols[at + 1:]
        return self.words

    def parse(self) -> Rule:
        words = self.words
        plan = plans.find(words, self.lookup)
        if plan is not None:
            return self._replay(plan)
        rule, target_at = self._parse()
        steps = self.steps
        if steps is not None and self.looked:
            user = type(rule.target) is ChainTarget
            if not user and target_at >= 0:
                self.looked.append(target_at)
            plan = plans.Plan(steps, self.looked, words, target_at if user else -1)
            plan.build = compile_plan(plan.steps, words, plan.user_at)
            plans.keep(words, plan)
        return rule

    def _replay(self, plan: plans.Plan) -> Rule:
        """Parse by a plan: its calls, with this rule's words."""
        words = self.words
        ip = IPMatch()
        matches: list[tuple[Match, int]] = []
        target: Any = None
        target_at = at = -1
        try:
            for step in plan.steps:
                op, at = step[0], step[1]
                if op == plans.OPTION:
                    _, _, k, opt, start, end, inv = step
                    owner = target if k < 0 else matches[k][0]
                    owner.proto_now, owner.proto_inv_now = ip.proto, ip.proto_inv
                    owner.option(opt, words[start:end], inv)
                    owner.seen = owner.seen | {opt}
                elif op == plans.MATCH:
                    m = step[2]()
                    if m.uses_sets:
                        m.sets = self.sets
                    matches.append((m, at))
                elif op == plans.IP:
                    self._ip(ip, step[2], words[at], step[3])
                elif op == plans.TARGET:
                    target, target_at = self._target(words[at], step[2]), at
                else:
                    matches.append((step[2](), -1))
        except BadValue as e:
            raise self.err(str(e), at) from None
        return self._finish(ip, matches, target, target_at)

    def _parse(self) -> tuple[Rule, int]:
        """The parse that decides as it goes (and records the plan of what it did)."""
        # The hot loop of a restore (once per rule shape, with plans): module tables and
        # methods are bound to locals, and the set of IP options seen is a list of kinds.
        words = self.words
        steps = self.steps = []
        looked = self.looked = []
        ip = IPMatch()
        matches: list[tuple[Match, int]] = []  # each with the index of its -m word's argument
        target: Target | None = None
        target_at = -1
        seen_ip: list[str] = []
        inv_at = -1  # the index of a pending "!"
        ip_kind = _IP_OPTS.get
        match_cls = match_class
        i, n = 0, len(words)
        while i < n:
            t = words[i]
            looked.append(i)
            if t == "!":
                if inv_at >= 0:
                    raise self.err("multiple `!' flags not allowed", i)
                inv_at = i
                i += 1
                continue
            inv = inv_at >= 0
            kind = ip_kind(t)
            if kind is None and t[:2] in _ATTACHED:
                # getopt takes -ptcp as -p with "tcp", but iptables 1.8.9 reads -p, -s,
                # -d, -i, -o and -j from argv[optind-1], the whole word: -ptcp is
                # protocol "-ptcp" (checked); -m and -g take getopt's "tcp"
                words = self._splice(i, [t[:2], t[2:] if _ATTACHED[t[:2]] else t])
                n = len(words)
                steps = None
                continue
            if kind is not None:
                if kind == "match":
                    if i + 1 >= n:
                        raise self.err(f'option "{t}" requires an argument', i)
                    if inv:
                        raise self.err(f"unexpected ! flag before {t}", inv_at)
                    i += 2
                    looked.append(i - 1)
                    cls = match_cls(words[i - 1])
                    if cls is None:
                        raise self.err(f"Couldn't load match `{words[i - 1]}':No such file or "
                                       "directory", i - 1)
                    try:
                        m = cls()
                        if cls.uses_sets:
                            m.sets = self.sets
                        matches.append((m, i - 1))
                        if steps is not None:
                            steps.append((plans.MATCH, i - 1, cls))
                    except BadValue as e:
                        raise self.err(str(e), i - 1) from None
                    continue
                # each IP option and -j/-g at most once
                if kind in seen_ip or (kind in _TARGET_KINDS and target is not None):
                    raise self.err(f"multiple {_FLAG_OF[kind]} flags not allowed", i)
                seen_ip.append(kind)
                if kind != "frag":
                    if i + 1 >= n:
                        raise self.err(f'option "{t}" requires an argument', i)
                    at = i + 1
                    i += 2
                else:
                    at = i
                    i += 1
                try:
                    if kind in _TARGET_KINDS:
                        if inv:
                            raise self.err(f"unexpected ! flag before {t}", inv_at)
                        target, target_at = self._target(words[at], kind == "goto"), at
                        if steps is not None:
                            steps.append((plans.TARGET, at, kind == "goto"))
                    else:
                        if kind == "proto":
                            looked.append(at)
                        self._ip(ip, kind, words[at], inv)
                        if steps is not None:
                            steps.append((plans.IP, at, kind, inv))
                except BadValue as e:
                    raise self.err(str(e), at) from None
                inv_at = -1
                continue
            if not t.startswith("-") or t == "-":
                raise self.err(f"Bad argument `{t}'", i)
            if target is not None and t in target.options:
                owner = target
            elif matches and t in matches[-1][0].options:  # the newest match: the usual owner
                owner = matches[-1][0]
            else:
                for m, _ in reversed(matches):
                    if t in m.options:
                        owner = m
                        break
                else:
                    owner = self._owner(t, None, matches, ip)
            if owner is None and t.startswith("--"):
                spelled = self._getopt_long(t, matches, target, ip)
                if spelled is not None:
                    # --opt=value or an abbreviation: read again as written in full
                    words = self._splice(i, spelled)
                    n = len(words)
                    steps = None
                    continue
            if owner is None:
                hint = ""
                if t in ("--dport", "--sport", "--destination-port", "--source-port"):
                    hint = " (port options need -p tcp or -p udp before them)"
                raise self.err(f'unknown option "{t}"{hint}', i)
            nargs, invertible = owner.options[t]
            if nargs < 0:  # an optional argument (libxt_rateest): the next word unless an option
                nargs = 1 if i + 1 < n and words[i + 1][:1] not in ("-", "!") else 0
                steps = self.steps = None  # decided by a value
            own = getattr(owner, "own_checks", False)  # xtopt: the extension words them
            if inv and not invertible and not own:
                raise self.err(f'{owner.name}: option "{t}" cannot be inverted.', inv_at)
            if i + nargs >= n:
                if nargs == 2 and i + 1 < n:  # one given: tcp, sctp, set, SET word it so
                    raise self.err(f"{t} requires two args.", i)
                raise self.err(f'option "{t}" requires an argument', i)
            if t in owner.seen and t != "--mark" and not own:
                raise self.err(f'{owner.name}: "{t}" option may only be specified once', i)
            # what an extension's parse sees of the rule so far (cb->xt_entry): the -p
            # given before this option (libxt_NAT's portok, libxt_multiport's check_proto)
            owner.proto_now, owner.proto_inv_now = ip.proto, ip.proto_inv
            try:
                owner.option(t, words[i + 1:i + 1 + nargs], inv)
            except BadValue as e:
                raise self.err(str(e), i + 1 if nargs else i) from None
            owner.seen = owner.seen | {t}
            if steps is not None:
                k = -1 if owner is target else next(
                    k for k in range(len(matches) - 1, -1, -1) if matches[k][0] is owner)
                steps.append((plans.OPTION, i + 1 if nargs else i, k, t, i + 1,
                              i + 1 + nargs, inv))
            inv_at = -1
            i += 1 + nargs
        if inv_at >= 0:
            raise self.err("! must be followed by an option", inv_at)
        return self._finish(ip, matches, target, target_at), target_at

    def _getopt_long(self, word: str, matches: list[tuple[Match, int]],
                     target: Target | None, ip: IPMatch) -> list[str] | None:
        """What getopt_long makes of a long option not spelled in full: ``--opt=value``
        is the option and its argument; a unique prefix of one option is that option
        (iptables 1.8.9: ``--dp 80``, ``--to 1.2.3.4``); an ambiguous one is unknown."""
        name, eq, value = word.partition("=")
        owners: list[Any] = [m for m, _ in matches]
        if target is not None:
            owners.append(target)
        pname = _PROTO_MATCH.get(ip.proto)
        if pname and not ip.proto_inv and not any(m.name == pname for m, _ in matches):
            owners.append(match_class(pname))
        known = {o for o in _IP_OPTS if o.startswith("--")}
        for owner in owners:
            known.update(owner.options)
        if name in known:
            full = name
        else:
            # one getopt entry each: --src/--source and --dst/--destination share theirs
            hits = {_IP_OPTS.get(o, o) for o in known | _COMMAND_LONG if o.startswith(name)}
            if len(hits) != 1 or len(name) <= 2:
                return None
            (hit,) = hits
            full = next(o for o in sorted(known) if _IP_OPTS.get(o, o) == hit) \
                if hit in _IP_OPTS.values() else hit
            if full not in known:
                return None
        if not eq and full == name:
            return None
        return [full, value] if eq else [full]

    def _ip(self, ip: IPMatch, kind: str, a: str, inv: bool) -> None:
        if kind in ("src", "dst"):
            addr, mask = parse_net(a)
            setattr(ip, kind, (addr, mask, inv))
        elif kind in ("iif", "oif"):
            if len(a) > 15:
                raise BadValue(f"interface name `{a}' must be shorter than IFNAMSIZ (15)")
            if kind == "iif" and self.chain in _NO_IN:
                raise BadValue(f"Can't use -i with {self.chain}")
            if kind == "oif" and self.chain in _NO_OUT:
                raise BadValue(f"Can't use -o with {self.chain}")
            setattr(ip, kind, (a, inv))
        elif kind == "proto":
            ip.proto, ip.proto_inv = parse_proto(a), inv
            if inv and not ip.proto:  # xshared.c do_parse (checked on iptables 1.8.9)
                raise BadValue("rule would never match protocol")
        else:
            ip.frag = not inv

    def _target(self, name: str, goto: bool) -> Target:
        kind = self.lookup(name)
        if kind == "user":
            return ChainTarget(name, goto)
        if kind == "builtin":
            raise BadValue(f"cannot jump to built-in chain {name} (the kernel refuses it: "
                           "Operation not supported)")
        if goto:
            raise BadValue(f"Chain '{name}' does not exist")
        if name == "DROP" and self.table == "nat":  # iptables 1.8.9 refuses it (checked)
            raise BadValue('The "nat" table is not intended for filtering, the use of DROP '
                           "is therefore inhibited.")
        if name in STANDARD_VERDICTS:
            return Standard(name)
        cls = target_class(name)
        if cls is None:
            raise BadValue(f"Chain '{name}' does not exist")
        target = cls()
        if cls.uses_sets:
            target.sets = self.sets
        return target

    def _owner(self, opt: str, target: Target | None, matches: list[tuple[Match, int]],
               ip: IPMatch) -> Match | Target | None:
        if target is not None and opt in target.options:
            return target
        for m, _ in reversed(matches):
            if opt in m.options:
                return m
        # load the match named after -p, once, when -p is not inverted
        pname = _PROTO_MATCH.get(ip.proto)
        if pname and not ip.proto_inv and not any(m.name == pname for m, _ in matches):
            cls = match_class(pname)
            if opt in cls.options:
                m = cls()
                matches.append((m, -1))  # -p's match: no word of its own
                if self.steps is not None:
                    self.steps.append((plans.IMPLICIT, 0, cls))
                return m
        return None

    def _finish(self, ip: IPMatch, matches: list[tuple[Match, int]], target: Target | None,
                target_at: int) -> Rule:
        chain, builtin = self.chain, self.builtin
        proto, proto_inv = ip.proto, ip.proto_inv
        mods = [ip]
        for m, at in matches:
            mods.append(m)
            try:
                m.finish()
            except BadValue as e:
                raise self.err(str(e), self._match_tok(at)) from None
            protos = m.protos
            if protos is not None and (proto not in protos or proto_inv):
                raise self.err(m.proto_error, self._match_tok(at))
            tables = getattr(m, "tables", None)  # checkentry's par->table test, any chain
            if tables is not None and self.table not in tables:
                raise self.err(f"-m {m.name} is not allowed in the {self.table} table (the "
                               "kernel refuses it: Invalid argument)", self._match_tok(at))
            if builtin:
                allowed = m.allowed_chains()
                if allowed is not None and chain not in allowed:
                    raise self.err(f"-m {m.name} is not allowed in {chain} (the kernel "
                                   "refuses it: Invalid argument)", self._match_tok(at))
        goto = False
        if target is not None:
            if type(target) is ChainTarget:
                goto = target.goto
            elif not isinstance(target, (Standard, ChainTarget)):
                try:
                    target.finish(proto, proto_inv)
                except BadValue as e:
                    raise self.err(str(e), target_at) from None
                where = self._target_place_error(target, builtin)
                if where:
                    raise self.err(where, target_at)
            else:
                goto = isinstance(target, ChainTarget) and target.goto
        # the canonical text is built on first use (Rule.text)
        return Rule(mods, target, file=self.file, line=self.line, goto=goto)

    def _match_tok(self, at: int) -> int:
        """The word an error about a match points at (-p's match: the rule's first word)."""
        return at if at >= 0 else 0

    def _target_place_error(self, target: Target, builtin: bool) -> str:
        if target.tables is not None and self.table not in target.tables:
            return (f"the {target.name} target is only valid in the "
                    f"{'/'.join(sorted(target.tables))} table (the kernel refuses it: "
                    "Invalid argument)")
        if builtin and target.chains is not None and self.chain not in target.chains:
            return (f"the {target.name} target is not allowed in {self.table} {self.chain}; "
                    f"only in {', '.join(sorted(target.chains))} (the kernel refuses it: "
                    "Invalid argument)")
        return ""
