"""iptables-restore input and `iptables ...` command lines, applied to a Ruleset.

Semantics checked on this machine (iptables-nft 1.8.9): restore replaces each
table it mentions (unless noflush) and creates only the built-in chains it
declares; a command creates the table and the chain it touches; `:FOO ACCEPT`
for a non-built-in name creates a user chain; -X refuses a referenced chain.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from operator import itemgetter

from kptui.engine.errors import ParseError, UnsupportedError
from kptui.engine.iptables.compiled import build_rule
from kptui.engine.iptables.lexer import Token, restore_words, split_restore, split_shell
from kptui.engine.iptables.model import BUILTIN_CHAINS, Chain, Counters, Ruleset, Table
from kptui.engine.iptables.parse import RuleParser
from kptui.engine.iptables.registry import is_target
from kptui.engine.iptables.targets import STANDARD_VERDICTS, ChainTarget
from kptui.engine.numbers import U64, scan_uint

COMMAND_WORDS = frozenset({"iptables", "iptables-legacy", "iptables-nft"})
_CMDS = {
    "-A": "-A", "--append": "-A", "-I": "-I", "--insert": "-I", "-D": "-D", "--delete": "-D",
    "-R": "-R", "--replace": "-R", "-N": "-N", "--new-chain": "-N", "-X": "-X",
    "--delete-chain": "-X", "-P": "-P", "--policy": "-P", "-F": "-F", "--flush": "-F",
    "-Z": "-Z", "--zero": "-Z", "-E": "-E", "--rename-chain": "-E",
}
_LISTING = frozenset({"-L", "--list", "-S", "--list-rules", "-C", "--check"})
_HELP = frozenset({"-h", "--help", "-V", "--version"})
_POSITIONAL = {"-A": 1, "-I": 2, "-D": 2, "-R": 2, "-N": 1, "-X": 1, "-P": 2, "-F": 1,
               "-Z": 1, "-E": 2}  # positional arguments each command takes at most
# every word _split_command treats specially; the rest belongs to the rule specification
_SPECIAL = frozenset({"-t", "--table", "-c", "--set-counters"}) | _CMDS.keys() | _LISTING \
    | _HELP
_SPECIAL_BUT_APPEND = _SPECIAL - {"-A"}
_text = itemgetter(0)


class _Ctx:
    """Where a command is (file, line); in a restore also the line's text and the index
    of the rule's first word in it, for the columns of an error (``columns``)."""

    __slots__ = ("file", "line", "raw", "at")

    def __init__(self, file: str, line: int) -> None:
        self.file, self.line = file, line
        self.raw, self.at = "", 0

    def columns(self) -> list[int]:
        """The columns of the rule's words on the current restore line."""
        return [t[1] for t in split_restore(self.raw, file=self.file, lineno=self.line)[self.at:]]

    def err(self, msg: str, tok: Token | None = None) -> ParseError:
        return ParseError(msg, file=self.file, line=self.line,
                          column=tok[1] if tok else 0, token=tok[0] if tok else "")


def _lookup(table: Table):
    def look(name: str) -> str | None:
        c = table.chains.get(name)
        if c is None:
            return None
        return "builtin" if c.builtin else "user"
    return look


def _references(table: Table, name: str) -> list[str]:
    return [c.name for c in table.chains.values() for r in c.rules
            if isinstance(r.target, ChainTarget) and r.target.chain == name]


def _chain_name_ok(name: str) -> bool:
    """What _check_new_chain accepts, without an error to word."""
    return bool(name) and len(name) <= 28 and name[0] != "-" and name != "!" \
        and not is_target(name) and name not in STANDARD_VERDICTS


def _check_new_chain(name: str, c: _Ctx, tok: Token) -> None:
    if _chain_name_ok(name):
        return
    if not name:  # iptables 1.8.9's answer to `-N ""` (checked)
        raise c.err("chain name may not clash with target name", tok)
    if len(name) > 28:
        raise c.err(f"chain name `{name}' too long (must be under 29 chars)", tok)
    if name.startswith("-") or name == "!":
        raise c.err("chain name not allowed to start with `-'", tok)
    if is_target(name) or name in STANDARD_VERDICTS:
        raise c.err("chain name may not clash with target name", tok)


def _execute(ruleset: Ruleset, table: Table, cmd: Token, pos: list[Token], spec: list[Token],
             counters: Counters | None, c: _Ctx, lookup: Callable[[str], str | None] | None = None
             ) -> None:
    """Run one command (-A/-I/-D/-R/-N/-X/-P/-F/-Z) against ``table``; ``lookup``: the
    table's ``_lookup``, made once per table by a restore."""
    op = _CMDS[cmd[0]]
    if op == "-A" and pos and _append(ruleset, table, pos[0][0], [t[0] for t in spec],
                                      [t[1] for t in spec], counters, c, lookup):
        return
    needs_chain = op in ("-A", "-I", "-D", "-R", "-N", "-P")
    if needs_chain and not pos:
        raise c.err(f"option \"{cmd[0]}\" requires an argument", cmd)
    chain_tok = pos[0] if pos else None
    name = chain_tok[0] if chain_tok else ""
    chain = table.chains.get(name) if name else None

    if op == "-E":
        _rename_chain(table, pos, c, cmd)
        return
    if op == "-N":
        if chain is not None:
            raise c.err("Chain already exists.", chain_tok)
        _check_new_chain(name, c, chain_tok)  # type: ignore[arg-type]
        table.chains[name] = Chain(name, False, "-", True, handle=table.new_handle())
        return
    if chain_tok is not None and chain is None:
        if op == "-P":  # iptables 1.8.9, for `-P NOSUCH ACCEPT` and `-P "" ACCEPT` (checked)
            raise c.err("Bad built-in chain name.", chain_tok)
        if not name:  # `-A ""`: iptables 1.8.9 says this (checked)
            raise c.err("No chain/target/match by that name.", chain_tok)
        raise c.err(f"Chain '{name}' does not exist", chain_tok)
    if op in ("-A", "-I", "-D", "-R", "-P") and chain is not None and chain.builtin:
        table.make_present(chain)
    if op == "-P":
        if chain is None or not chain.builtin:
            raise c.err("Bad built-in chain name.", chain_tok)
        if len(pos) < 2 or pos[1][0] not in ("ACCEPT", "DROP"):
            raise c.err("Bad policy name.", pos[1] if len(pos) > 1 else cmd)
        chain.policy = pos[1][0]
        return
    if op in ("-F", "-Z", "-X"):
        chains = [chain] if chain else [ch for ch in table.chains.values() if ch.present]
        for ch in chains:
            if op == "-F":
                ch.rules = []
                ch.changed()
            elif op == "-Z":
                ch.counters = Counters()
                for r in ch.rules:
                    r.counters = Counters()
            else:
                targets = [ch] if chain else [x for x in chains if not x.builtin]
                _delete_chains(table, targets, c, chain_tok or cmd)
                return
        return
    assert chain is not None
    n_rules = len(chain.rules)
    number = None
    if op in ("-I", "-D", "-R") and len(pos) > 1:
        number = _rule_number(pos[1], c)
    if op == "-D" and number is not None:
        if spec:
            raise c.err("-D with a rule number takes no rule specification", spec[0])
        if number > n_rules:
            raise c.err(f"Index of deletion too big: chain {name} has {n_rules} rules", pos[1])
        del chain.rules[number - 1]
        chain.changed()
        return
    if op == "-R" and number is None:
        raise c.err("-R needs a rule number", cmd)
    rule = RuleParser.of_tokens(spec, table=table.name, chain=name, file=c.file, line=c.line,
                                lookup=_lookup(table), sets=ruleset.ipsets).parse()
    if counters is not None:
        rule.counters = counters
    if op in ("-A", "-I"):
        rule.handle = table.new_handle()
    if op == "-A":
        chain.rules.append(rule)
    elif op == "-I":
        at = number or 1
        if at > n_rules + 1:
            raise c.err(f"Index of insertion too big: chain {name} has {n_rules} rules", pos[1])
        chain.rules.insert(at - 1, rule)
    elif op == "-R":
        assert number is not None
        if number > n_rules:
            raise c.err(f"Index of replacement too big: chain {name} has {n_rules} rules",
                        pos[1])
        rule.handle = chain.rules[number - 1].handle  # nft replaces it in place
        chain.rules[number - 1] = rule
    else:  # -D by specification
        for k, r in enumerate(chain.rules):
            if r.text == rule.text:
                del chain.rules[k]
                break
        else:
            raise c.err("Bad rule (does a matching rule exist in that chain?).", cmd)
    chain.changed()


def _append(ruleset: Ruleset, table: Table, name: str, words: list[str],
            columns: list[int] | None, counters: Counters | None, c: _Ctx,
            lookup: Callable[[str], str | None] | None) -> bool:
    """`-A NAME spec` (every rule of a restore) when chain NAME exists; False when it does
    not, for _execute's general path to word the error. ``columns`` None: the words are
    those of the restore line ``c`` is at (their columns are worked out for an error)."""
    chain = table.chains.get(name)
    if chain is None:
        return False
    lookup = lookup or _lookup(table)
    rule = build_rule(words, lookup, table.name, name, chain.builtin, ruleset.ipsets, c.file,
                      c.line)
    if rule is None:  # no compiled plan fits, or the rule is refused: the parser says why
        rule = RuleParser(words, columns=c.columns if columns is None else columns,
                          table=table.name, chain=name, file=c.file, line=c.line,
                          lookup=lookup, sets=ruleset.ipsets, builtin=chain.builtin).parse()
    if chain.builtin and not chain.present:
        table.make_present(chain)
    if counters is not None:
        rule.counters = counters
    rule.handle = table.new_handle()
    chain.rules.append(rule)
    chain.changed()
    return True


def _rule_number(tok: Token, c: _Ctx) -> int:
    """parse_rulenumber: xtables_strtoui(rule, 1, INT_MAX), base 0 (``-I INPUT 0x2`` is 2)."""
    number = scan_uint(tok[0], 0, strtoul=True)
    if number is None or not 1 <= number <= 0x7FFFFFFF:
        raise c.err(f"Invalid rule number `{tok[0]}'", tok)
    return number


def _counter(tok: Token, c: _Ctx, which: str) -> int:
    """One -c counter: sscanf("%llu"), base 10. kptui refuses what follows the digits
    and values past 64 bits, which iptables 1.8.9 ignores or saturates."""
    value = scan_uint(tok[0], 10, strtoul=True)
    if value is None:
        raise c.err(f"-c {which} counter not numeric", tok)
    if value > U64:
        raise c.err(f"-c {which} counter {tok[0]} is out of range 0..{U64}", tok)
    return value


def _rename_chain(table: Table, pos: list[Token], c: _Ctx, cmd: Token) -> None:
    """-E OLD NEW: the chain keeps its rules and place; every -j/-g to it follows.

    Errors as iptables-nft 1.8.9 prints them (checked on this machine). It also
    renames a built-in chain, which leaves the table unusable (iptables-save:
    "incompatible base-chains"); kptui refuses that instead of modelling it.
    """
    if len(pos) < 2:
        raise c.err("-E requires old-chain-name and new-chain-name", cmd)
    old, new = pos[0][0], pos[1][0]
    chain = table.chains.get(old)
    if chain is None:
        raise c.err("No chain/target/match by that name.", pos[0])
    if chain.builtin:
        raise UnsupportedError("renaming a built-in chain (iptables-nft renames the base chain "
                               "and the table can no longer be listed)")
    if new in table.chains:
        raise c.err("File exists.", pos[1])
    _check_new_chain(new, c, pos[1])
    table.chains = {new if k == old else k: v for k, v in table.chains.items()}
    chain.name = new
    for ch in table.chains.values():
        for rule in ch.rules:
            tg = rule.target
            if isinstance(tg, ChainTarget) and tg.chain == old:
                word = "-g" if tg.goto else "-j"
                head = rule.text[:len(rule.text) - len(f"{word} {old}")]  # before the rename
                tg.chain = tg.name = new  # type: ignore[misc]
                rule.text = f"{head}{word} {new}"
        ch.changed()


def _delete_chains(table: Table, chains: list[Chain], c: _Ctx, tok: Token) -> None:
    doomed = {ch.name for ch in chains}
    for ch in chains:
        if ch.builtin:
            raise c.err(f"can't delete built-in chain {ch.name} (CHAIN_DEL failed: Device or "
                        "resource busy)", tok)
        users = [u for u in _references(table, ch.name) if u not in doomed]
        if users:
            raise c.err(f"chain {ch.name} is still referenced from {', '.join(users)} "
                        "(CHAIN_DEL failed: Device or resource busy)", tok)
    for name in doomed:
        del table.chains[name]


def _split_command(toks: list[Token], c: _Ctx, *, allow_table: bool
                   ) -> tuple[str | None, Token, list[Token], list[Token], Counters | None]:
    """Pull the table, the command with its positional arguments and -c out of the tokens."""
    table = None
    cmd: Token | None = None
    pos: list[Token] = []
    spec: list[Token] = []
    counters = None
    i, n = 0, len(toks)
    while i < n:
        t = toks[i][0]
        if t in ("-t", "--table"):
            if not allow_table:
                raise c.err("The -t option cannot be used in iptables-restore.", toks[i])
            if i + 1 >= n:
                raise c.err('option "-t" requires an argument', toks[i])
            table = toks[i + 1][0]
            if table not in BUILTIN_CHAINS:
                raise c.err(f"table '{table}' does not exist", toks[i + 1])
            i += 2
        elif t in _CMDS:
            if cmd is not None:
                raise c.err(f"Cannot use {t} with {cmd[0]}", toks[i])
            cmd = toks[i]
            i += 1
            want = _POSITIONAL[_CMDS[t]]
            # xs_has_arg: any next word not starting with - or ! is taken (for -I/-D
            # it is the rule number: `-I INPUT foo` is "Invalid rule number `foo'")
            while len(pos) < want and i < n and toks[i][0][:1] not in ("-", "!"):
                pos.append(toks[i])
                i += 1
            # the usual case: nothing but the rule specification follows (checked in C,
            # this loop runs for each of 20,000 rules of a restore)
            if _SPECIAL.isdisjoint(map(_text, toks[i:])):
                spec += toks[i:]
                break
        elif t in ("-c", "--set-counters"):
            if i + 2 >= n:
                raise c.err("-c requires packet and byte counter", toks[i])
            counters = Counters(_counter(toks[i + 1], c, "packet"),
                                _counter(toks[i + 2], c, "byte"))
            i += 3
        elif t in _LISTING or t in _HELP:
            raise UnsupportedError(f"iptables {t} (only commands that change the ruleset are "
                                   "modelled)")
        else:
            spec.append(toks[i])
            i += 1
    if cmd is None:
        raise c.err("no command specified", toks[0] if toks else None)
    return table, cmd, pos, spec, counters


def apply_command(ruleset: Ruleset, line_text: str, *, file: str, line: int) -> None:
    """Apply one `iptables [-t T] -A/-I/-D/-R/-N/-X/-P/-F/-Z ...` command line."""
    c = _Ctx(file, line)
    toks = split_shell(line_text, file=file, lineno=line)
    if not toks:
        raise c.err("empty command")
    word = toks[0][0].rsplit("/", 1)[-1]
    if word not in COMMAND_WORDS:
        raise c.err(f"not an iptables command: {toks[0][0]}", toks[0])
    for t in toks[1:]:
        if t[0] in ("-w", "--wait", "-n", "--numeric", "-v", "--verbose"):
            raise c.err(f"option {t[0]} is not supported in a scenario", t)
    tname, cmd, pos, spec, counters = _split_command(toks[1:], c, allow_table=True)
    table = ruleset.table(tname or "filter")
    _execute(ruleset, table, cmd, pos, spec, counters, c)


def plain_append(words: list[str]) -> bool:
    """`-A CHAIN spec` with no other command, table or counters word in it: a restore then
    skips _split_command, whose result is known (tests/test_restore_fast.py checks it)."""
    # (the chain word begins with neither, so it is no special word; one -A is words[0])
    return words[0] == "-A" and len(words) > 1 and words[1][:1] not in ("-", "!") \
        and _SPECIAL_BUT_APPEND.isdisjoint(words) and words.count("-A") == 1


def restore(ruleset: Ruleset, text: str, *, file: str, first_line: int = 1,
            noflush: bool = False) -> None:
    """Apply iptables-restore input. Each table is applied atomically at its COMMIT."""
    # A kube-proxy ruleset is tens of thousands of rules, each several small objects
    # (rule, matches, sets, tuples) that all stay alive: the cyclic collector would
    # run every 700 allocations and, as the heap grows, scan it again and again
    # without ever finding garbage (a third of the parse time). Reference counting
    # still frees temporaries; the collector runs normally again afterwards.
    # Enabled again as it is, the collector would first scan every object the restore
    # made (they are all in its youngest generation, 0.2 s for 20,000 rules) at the next
    # allocation; freeze + unfreeze moves them to the oldest generation without a scan.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        _restore(ruleset, text, file=file, first_line=first_line, noflush=noflush)
    finally:
        if was_enabled:
            gc.freeze()
            gc.unfreeze()
            gc.enable()


def _restore(ruleset: Ruleset, text: str, *, file: str, first_line: int,
             noflush: bool) -> None:
    current: Table | None = None
    start: ParseError | None = None
    lineno = first_line - 1
    c = _Ctx(file, lineno)  # one for the whole text: its line follows the loop's
    lookup = None  # the current table's _lookup
    for raw in text.splitlines():
        lineno += 1
        line = raw.strip()
        if not line or line[0] == "#":
            continue
        c.line = lineno
        if line[0] == "*":
            col = raw.index(line[0]) + 1
            if current is not None:
                raise c.err(f"COMMIT expected before a new table (table {current.name} is "
                            "still open)", (line, col))
            name = line[1:].strip()
            if name not in BUILTIN_CHAINS:
                raise c.err(f"table '{name}' invalid", (line, col))
            old = ruleset.tables.get(name)
            current = _copy_table(old) if (noflush and old is not None) else Table.empty(name)
            lookup = _lookup(current)
            start = c.err(f"COMMIT expected for table {name}", (line, col))
            continue
        if current is None:
            raise c.err("no table selected: a line before any *table",
                        (line, raw.index(line[0]) + 1))
        if line == "COMMIT":
            ruleset.tables[current.name] = current
            current = None
            continue
        if line[0] == ":":
            _chain_line(current, raw, c, noflush)
            continue
        counters = None
        words = restore_words(raw)
        if words is not None:  # nearly every line: its words now, their columns on an error
            head = 0
            if words[0][:1] == "[":  # [packets:bytes], its column the line's first
                counters = _counters((words[0], len(raw) - len(raw.lstrip()) + 1), c)
                head = 1
            if len(words) > head and plain_append(words[head:] if head else words):
                # what _split_command would make of it: -A, CHAIN and the rule's words
                c.raw, c.at = raw, head + 2
                if _append(ruleset, current, words[head + 1], words[head + 2:], None,
                           counters, c, lookup):
                    continue
        toks = split_restore(raw, file=file, lineno=lineno)
        if toks[0][0].startswith("["):
            counters = _counters(toks[0], c)
            toks = toks[1:]
        if not toks or not toks[0][0].startswith("-"):
            raise c.err(f"Bad argument `{toks[0][0] if toks else line}'",
                        toks[0] if toks else None)
        _, cmd, pos, spec, cc = _split_command(toks, c, allow_table=False)
        _execute(ruleset, current, cmd, pos, spec, counters or cc, c, lookup)
    if current is not None:
        assert start is not None
        raise ParseError(f"COMMIT expected at line {lineno + 1}", file=file, line=lineno + 1,
                         column=0, token="")


def _counters(tok: Token, c: _Ctx) -> Counters:
    body = tok[0]
    if body == "[0:0]":  # every chain line of a fresh dump
        return Counters()
    if not (body.startswith("[") and body.endswith("]")):
        raise c.err("bad counters, expected [packets:bytes]", tok)
    p, sep, b = body[1:-1].partition(":")
    # sscanf("[%llu:%llu]"), base 10: iptables-restore 1.8.9 reads [010:0] as 10 packets
    pkts, nbytes = scan_uint(p, 10, strtoul=True), scan_uint(b, 10, strtoul=True)
    if not sep or pkts is None or nbytes is None:
        raise c.err("bad counters, expected [packets:bytes]", tok)
    if pkts > U64 or nbytes > U64:
        raise c.err(f"bad counters, each is at most {U64}", tok)
    return Counters(pkts, nbytes)


def _chain_line(table: Table, raw: str, c: _Ctx, noflush: bool) -> None:
    line = raw.replace(":", " ", 1)
    words = line.split() if '"' not in line else None
    if words is not None and len(words) == 3 and words[2] == "[0:0]":
        # `:NAME POLICY [0:0]`, every chain of a fresh dump: the columns only for an error
        name, policy = words[0], words[1]
        chain = table.chains.get(name)
        if chain is not None and chain.builtin and policy in ("ACCEPT", "DROP"):
            table.make_present(chain)
            chain.policy, chain.counters = policy, Counters()
            return
        if chain is None and policy == "-" and _chain_name_ok(name):
            table.chains[name] = Chain(name, False, "-", True, handle=table.new_handle())
            return
    toks = split_restore(line, file=c.file, lineno=c.line)
    if not toks:
        raise c.err("chain name missing after `:'", (raw, 1))
    name_tok = toks[0]
    name = name_tok[0]
    policy = toks[1][0] if len(toks) > 1 else "-"
    counters = _counters(toks[2], c) if len(toks) > 2 else Counters()
    chain = table.chains.get(name)
    if chain is not None and chain.builtin:
        if policy not in ("ACCEPT", "DROP"):
            raise c.err("Bad policy name.", toks[1] if len(toks) > 1 else name_tok)
        table.make_present(chain)
        chain.policy, chain.counters = policy, counters
        return
    if chain is not None:  # redeclared user chain: flushed (iptables-restore --noflush)
        chain.rules = []
        chain.counters = counters
        chain.changed()
        return
    _check_new_chain(name, c, name_tok)
    table.chains[name] = Chain(name, False, "-", True, counters=counters,
                               handle=table.new_handle())


def _copy_table(t: Table) -> Table:
    new = Table(t.name, handles=t.handles)
    for name, ch in t.chains.items():
        copy = Chain(ch.name, ch.builtin, ch.policy, ch.present, list(ch.rules),
                     Counters(ch.counters.pkts, ch.counters.bytes), ch.handle)
        new.chains[name] = copy
    return new
