"""The iptables and ipchains parsers, fuzzed: the project's own error or success, never
anything else (issue 13).

Three entry points, called as kptui.engine.scenario and kptui.engine.setup call
them: ``restore()`` of iptables-restore text, ``apply_command()`` of one
``iptables ...`` line, ``apply_ipchains()`` of one ``ipchains ...`` line. The
corpora are real, valid inputs: the scenarios' iptables sections and setup
lines (tests/kernel/scenarios, checked against the kernel) and the command
lines of the existing tests. A parse that succeeds must also save
(``to_save``), since a rule's text is built lazily and a crash there would
only show in the TUI.

The number readings below were checked with iptables 1.8.9 (nf_tables) in a
throwaway network namespace (``iptables -A ...; iptables -S``) and, for
ipchains, read from ipchains 1.3.9's ipchains.c (string_to_number is
``strtol(s, &end, 10)`` over the whole word; parse_mark is ``strtoul(.., 0)``).

Long run: ``KPTUI_FUZZ_EXAMPLES=20000 python3 -m pytest tests/test_fuzz_iptables.py -m fuzz``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from fuzzing import fuzz, fuzz_settings, mutated, own_error_or_success
from hypothesis import given

from kptui.engine.errors import KptuiError
from kptui.engine.ipchains import IpchainsRuleset, apply_ipchains
from kptui.engine.ipchains import to_save as ipchains_save
from kptui.engine.iptables import Ruleset, apply_command, restore, to_save

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = [tomllib.loads(p.read_text("utf-8")) for p in sorted(
    [*ROOT.glob("tests/kernel/scenarios/*.toml"), *ROOT.glob("kptui/scenarios/*.toml")])]

# (a ruleset naming ipset sets needs its scenario's sets: those are fuzzed with their box)
RESTORE_TEXTS = sorted({s["iptables"] for s in SCENARIOS if s.get("iptables", "").strip()
                        and "-m set" not in s["iptables"] and "-j SET" not in s["iptables"]})
_SETUP = [line.strip() for s in SCENARIOS for line in str(s.get("setup", "")).splitlines()]
_TEST_LINES = re.findall(r'"((?:iptables|ipchains) [^"\\]*)"', "\n".join(
    (ROOT / "tests" / name).read_text("utf-8")
    for name in ("test_iptables_parse.py", "test_profiles_historical.py")))


def _as_commands(text: str) -> list[str]:
    """The rule lines of iptables-restore text as `iptables -t TABLE ...` commands."""
    out, table = [], "filter"
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith("-"):
            out.append(f"iptables -t {table} {line}")
    return out


IPTABLES_LINES = sorted({line for line in _SETUP + _TEST_LINES if line.startswith("iptables ")}
                        | {c for t in RESTORE_TEXTS for c in _as_commands(t)})
IPCHAINS_LINES = sorted({line for line in _SETUP + _TEST_LINES if line.startswith("ipchains ")})
# user chains the corpus jumps to, created before each command so -A/-j to them parse
USER_CHAINS = sorted({m for t in RESTORE_TEXTS for m in re.findall(r"^:(\S+) -", t, re.M)})

IPTABLES_WORDS = (
    "-A", "-I", "-D", "-R", "-N", "-X", "-P", "-F", "-Z", "-E", "-t", "-c", "-j", "-g", "-m",
    "-p", "-s", "-d", "-i", "-o", "!", "INPUT", "FORWARD", "nat", "mangle", "--dport",
    "--sport", "--dports", "--to-destination", "--to-source", "--to-ports", "--set-mark",
    "--mark", "--limit", "--limit-burst", "--log-level", "--set-class", "--ctstate",
    "--ctexpire", "--ctorigsrcport", "--probability", "--every", "--packet", "--length",
    "--icmp-type", "--tos", "--set-tos", "--ttl-set", "--queue-num", "--queue-balance",
    "-m tcp", "-m limit", "-m statistic", "-j LOG", "-j DNAT", "-j CLASSIFY", "-j MARK",
    "0x", "0x1f", "1:2", "10.0.0.1:80-90", "1.2.3.4-1.2.3.5", "[0:0]", "[1:", "0:0]",
    "1/sec", "10/minute", "1e-1", "0x0.8", "07", "0xffffffff/0xff", "4294967295",
    "18446744073709551616", "-1", '""', "10", "10.1", "010.0.0.1", "/33", "/010",
)
IPCHAINS_WORDS = (
    "-A", "-I", "-R", "-D", "-F", "-Z", "-P", "-N", "-X", "-p", "-s", "-d", "-i", "-j",
    "-y", "-f", "-l", "-m", "!", "input", "forward", "output", "tcp", "udp", "icmp", "all",
    "REDIRECT", "MASQ", "DENY", "0/0", "1024:", ":1023", "echo-request", "0x10", "+5",
)


def _ruleset_with_user_chains() -> Ruleset:
    rs = Ruleset()
    for table in ("filter", "nat", "mangle", "raw"):
        for name in USER_CHAINS:
            apply_command(rs, f"iptables -t {table} -N {name}", file="f", line=0)
    return rs


def _restore_then_save(text: str) -> None:
    rs = Ruleset()
    restore(rs, text, file="f")
    to_save(rs)


def _command_then_save(line: str) -> None:
    rs = _ruleset_with_user_chains()
    apply_command(rs, line, file="f", line=1)
    to_save(rs)


def _ipchains_then_save(line: str) -> None:
    rs = IpchainsRuleset()
    apply_ipchains(rs, "ipchains -N sub", file="f", line=0)
    apply_ipchains(rs, "ipchains -A input -j ACCEPT", file="f", line=0)
    apply_ipchains(rs, line, file="f", line=1)
    ipchains_save(rs)


def test_the_corpora_are_real_and_valid():
    assert len(RESTORE_TEXTS) > 50 and len(IPTABLES_LINES) > 200 and len(IPCHAINS_LINES) > 10
    for text in RESTORE_TEXTS[:20]:
        _restore_then_save(text)


@fuzz
@fuzz_settings(150)
@given(mutated(RESTORE_TEXTS, extra_words=IPTABLES_WORDS))
def test_restore_never_crashes(text: str) -> None:
    own_error_or_success(_restore_then_save, text)


@fuzz
@fuzz_settings(600)
@given(mutated(IPTABLES_LINES, extra_words=IPTABLES_WORDS))
def test_iptables_command_lines_never_crash(line: str) -> None:
    own_error_or_success(_command_then_save, line)


@fuzz
@fuzz_settings(400)
@given(mutated(IPCHAINS_LINES, extra_words=IPCHAINS_WORDS))
def test_ipchains_command_lines_never_crash(line: str) -> None:
    own_error_or_success(_ipchains_then_save, line)


# -- regressions: inputs that once crashed (ValueError from int(), an assert) --------------

CRASHES = [
    ("iptables -A INPUT -p tcp --dport 8\u00b2", "8\u00b2"),
    ("iptables -A INPUT -p tcp --dport \u0661\u0662", "\u0661\u0662"),
    ("iptables -A INPUT -p tcp --dport \uff11\uff12", "\uff11\uff12"),
    ("iptables -A INPUT -p 8\u00b2", "8\u00b2"),
    ("iptables -A INPUT -s 1\u00b2.0.0.1", "1\u00b2.0.0.1"),
    ("iptables -A INPUT -s 10.0.0.1/2\u00b2", "10.0.0.1/2\u00b2"),
    ("iptables -A INPUT -c 1\u00b2 0 -j ACCEPT", "1\u00b2"),
    ("iptables -A INPUT -c 0 " + "9" * 5000 + " -j ACCEPT", "9" * 5000),
    ("iptables -D INPUT 1\u00b2", "1\u00b2"),
    ("iptables -I INPUT 1\u00b2 -j ACCEPT", "1\u00b2"),
    # atoi reads "1\u00b2/hour" as 1/hour (iptables 1.8.9 does); "\u00b2" alone is no number
    ("iptables -A INPUT -m limit --limit \u00b2/hour", "\u00b2/hour"),
    ("iptables -A INPUT -j LOG --log-level 1\u00b2", "1\u00b2"),
    ("iptables -t nat -A PREROUTING -p tcp -j REDIRECT --to-ports 1\u00b2", "1\u00b2"),
    ("iptables -t nat -A POSTROUTING -p tcp -j SNAT --to-source 1.2.3.4:1\u00b2-5",
     "1.2.3.4:1\u00b2-5"),
    ("iptables -t mangle -A POSTROUTING -j CLASSIFY --set-class 1\u00b2:1", "1\u00b2:1"),
    ("iptables -A INPUT -m statistic --mode random --probability 1_0", "1_0"),
    ("iptables -A INPUT -m statistic --mode random --probability \u0661", "\u0661"),
    ("iptables -A \"\" -j ACCEPT", ""),
    ("iptables -I \"\" 1 -j ACCEPT", ""),
    ("iptables -N \"\"", ""),
]


@pytest.mark.parametrize(("line", "token"), CRASHES)
def test_bad_numbers_in_iptables_commands_are_parse_errors(line: str, token: str) -> None:
    with pytest.raises(KptuiError) as info:
        _command_then_save(line)
    assert info.value.token == token  # type: ignore[attr-defined]
    assert info.value.file == "f" and info.value.line == 1  # type: ignore[attr-defined]


RESTORE_CRASHES = [
    ("*filter\n[1\u00b2:0] -A INPUT -j ACCEPT\nCOMMIT\n", "[1\u00b2:0]"),
    ("*filter\n:INPUT ACCEPT [0:" + "9" * 5000 + "]\nCOMMIT\n", "[0:" + "9" * 5000 + "]"),
    ("*filter\n-A \"\" -j ACCEPT\nCOMMIT\n", ""),
    ("*filter\n:\"\" - [0:0]\nCOMMIT\n", ""),
]


@pytest.mark.parametrize(("text", "token"), RESTORE_CRASHES)
def test_bad_numbers_in_restore_text_are_parse_errors(text: str, token: str) -> None:
    with pytest.raises(KptuiError) as info:
        restore(Ruleset(), text, file="f")
    assert info.value.token == token and info.value.line == 2  # type: ignore[attr-defined]


IPCHAINS_CRASHES = [
    ("ipchains -A input -p tcp -s 0/0 8\u00b2 -j DENY", "bad port '8\u00b2'"),
    ("ipchains -A input -p 1\u00b2 -j DENY", "unknown protocol `1\u00b2' specified"),
    ("ipchains -A input -p icmp -s 0/0 1\u00b2 -j DENY", "bad ICMP type '1\u00b2'"),
    ("ipchains -D input 1\u00b2", "Invalid rule number `1\u00b2'"),
    ("ipchains -I input 1\u00b2 -j DENY", "Invalid rule number `1\u00b2'"),
    ("ipchains -A input -p tcp -j REDIRECT 1\u00b2", "bad port '1\u00b2'"),
    ("ipchains -A input -s 10.0.0.0/2\u00b2 -j DENY", "bad address '10.0.0.0/2\u00b2'"),
    ("ipchains -A input -m 010x -j DENY", "bad mark value '010x'"),
]


@pytest.mark.parametrize(("line", "message"), IPCHAINS_CRASHES)
def test_bad_numbers_in_ipchains_commands_are_parse_errors(line: str, message: str) -> None:
    with pytest.raises(KptuiError) as info:
        _ipchains_then_save(line)
    assert message in str(info.value)


# -- numbers read as the real tools read them ----------------------------------------------

# iptables 1.8.9 (nf_tables), `iptables -A ...` then `iptables -S`/`iptables-save`
IPTABLES_READINGS = [
    ("-A INPUT -p tcp --dport 010", "-A INPUT -p tcp -m tcp --dport 8"),
    ("-A INPUT -p tcp --dport 0x50", "-A INPUT -p tcp -m tcp --dport 80"),
    ("-A INPUT -p tcp --dport +80", "-A INPUT -p tcp -m tcp --dport 80"),
    ("-A INPUT -p tcp --sport 0010:0x20", "-A INPUT -p tcp -m tcp --sport 8:32"),
    ("-A INPUT -p 010", "-A INPUT -p egp"),
    ("-A INPUT -p 0x11", "-A INPUT -p udp"),
    ("-A INPUT -s 010.0.0.1", "-A INPUT -s 8.0.0.1/32"),
    ("-A INPUT -s 0x0a.0.0.1", "-A INPUT -s 10.0.0.1/32"),
    ("-A INPUT -s 10.1", "-A INPUT -s 10.1.0.0/32"),
    ("-A INPUT -s 10.0.0.1/010", "-A INPUT -s 10.0.0.0/8"),
    ("-A INPUT -s 10.0.0.1/0x18", "-A INPUT -s 10.0.0.0/24"),
    ("-A INPUT -s 10.0.0.1/255.255.0x0.0", "-A INPUT -s 10.0.0.0/16"),
    ("-A INPUT -m mark --mark 010", "-A INPUT -m mark --mark 0x8"),
    ("-A INPUT -m tos --tos +8", "-A INPUT -m tos --tos 0x08/0xff"),
    ("-A INPUT -p tcp --tcp-option 0x10", "-A INPUT -p tcp -m tcp --tcp-option 16"),
    ("-A INPUT -m iprange --src-range 010.0.0.1-10.0.0.9",
     "-A INPUT -m iprange --src-range 8.0.0.1-10.0.0.9"),
    ("-A INPUT -m iprange --src-range 10-10.0.0.9",
     "-A INPUT -m iprange --src-range 10.0.0.0-10.0.0.9"),
    ("-A INPUT -m limit --limit 010/sec", "-A INPUT -m limit --limit 10/sec"),
    ("-A INPUT -m limit --limit 10", "-A INPUT -m limit --limit 10/sec"),
    ("-A INPUT -m limit --limit-burst 010", "-A INPUT -m limit --limit 3/hour --limit-burst 8"),
    ("-A INPUT -j LOG --log-level 07", "-A INPUT -j LOG --log-level 7"),
    ("-A INPUT -j LOG --log-level 0x7", "-A INPUT -j LOG --log-level 7"),
    ("-A INPUT -m length --length 010:0x20", "-A INPUT -m length --length 8:32"),
    ("-A INPUT -p icmp --icmp-type 010/010", "-A INPUT -p icmp -m icmp --icmp-type 8/8"),
    ("-A INPUT -m conntrack --ctexpire 010:0x20", "-A INPUT -m conntrack --ctexpire 8:32"),
    ("-A INPUT -m conntrack --ctorigsrcport 010", "-A INPUT -m conntrack --ctorigsrcport 10"),
    ("-A INPUT -p tcp -m multiport --dports 010,0x10:+20",
     "-A INPUT -p tcp -m multiport --dports 8,16:20"),
    ("-A INPUT -j NFQUEUE --queue-balance 010:0x10", "-A INPUT -j NFQUEUE --queue-balance 8:16"),
    ("-t mangle -A INPUT -j TTL --ttl-set 010", "-A INPUT -j TTL --ttl-set 8"),
    ("-t mangle -A INPUT -m dscp --dscp 010", "-A INPUT -m dscp --dscp 0x08"),
    ("-t mangle -A POSTROUTING -j CLASSIFY --set-class 0x1:0x2",
     "-A POSTROUTING -j CLASSIFY --set-class 0001:0002"),
    ("-t mangle -A POSTROUTING -j CLASSIFY --set-class 1:2foo",
     "-A POSTROUTING -j CLASSIFY --set-class 0001:002f"),
    ("-t mangle -A POSTROUTING -j CLASSIFY --set-class 10000:1",
     "-A POSTROUTING -j CLASSIFY --set-class 0000:0001"),
]


def _rules(rs: Ruleset) -> list[str]:
    return [line for line in to_save(rs).splitlines() if line.startswith("-A")]


@pytest.mark.parametrize(("command", "saved"), IPTABLES_READINGS)
def test_numbers_are_read_as_iptables_1_8_9_reads_them(command: str, saved: str) -> None:
    rs = Ruleset()
    apply_command(rs, f"iptables {command}", file="f", line=1)
    assert _rules(rs) == [saved]


def test_nat_ports_and_ctproto_as_iptables_1_8_9_reads_them():
    # iptables -S shows `--to-ports 16-20`, `--to-destination 10.0.0.1:8-32`, `--ctproto 8`
    # (kptui saves the NAT options as written: the values are checked)
    rs = Ruleset()
    for line in ("-t nat -A PREROUTING -p tcp -j REDIRECT --to-ports 0x10-+20",
                 "-t nat -A PREROUTING -p tcp -j DNAT --to-destination 10.0.0.1:010-0x20",
                 "-A INPUT -m conntrack --ctproto 010"):
        apply_command(rs, f"iptables {line}", file="f", line=1)
    redirect, dnat = rs.tables["nat"].chains["PREROUTING"].rules
    assert redirect.target.ports == (16, 20) and dnat.target.ports == (8, 32)
    assert rs.tables["filter"].chains["INPUT"].rules[0].matches[1].proto == 8


# iptables 1.8.9 refuses these; the message is its own
IPTABLES_REFUSALS = [
    ("-A INPUT -j LOG --log-level 010", 'log level "010" unknown'),
    ("-A INPUT -m limit --limit 0x10/sec", 'bad rate "0x10/sec"'),
    ("-A INPUT -m conntrack --ctorigsrcport 0x10", 'Port "0x10" does not resolve to anything.'),
    ("-t nat -A PREROUTING -p tcp -j DNAT --to-destination 010.0.0.1",
     'Bad IP address "010.0.0.1"'),
    ("-t mangle -A POSTROUTING -j CLASSIFY --set-class '1 :2'", 'Bad class value "1 :2"'),
    ("-I INPUT foo -j ACCEPT", "Invalid rule number `foo'"),
    ("-D INPUT 0", "Invalid rule number `0'"),
    ("-c x 2 -A INPUT", "-c packet counter not numeric"),
    ("-A \"\" -j ACCEPT", "No chain/target/match by that name."),
    ("-N \"\"", "chain name may not clash with target name"),
    ("-P \"\" ACCEPT", "Bad built-in chain name."),
    ("-P NOSUCH ACCEPT", "Bad built-in chain name."),
    ("-D INPUT \"\"", "Invalid rule number `'"),
]


@pytest.mark.parametrize(("command", "message"), IPTABLES_REFUSALS)
def test_numbers_iptables_1_8_9_refuses_are_refused(command: str, message: str) -> None:
    with pytest.raises(KptuiError, match=re.escape(message)):
        apply_command(Ruleset(), f"iptables {command}", file="f", line=1)


def test_rule_numbers_and_counters_as_iptables_1_8_9_reads_them():
    rs = Ruleset()
    for line in ("-A INPUT -j ACCEPT", "-A INPUT -j DROP", "-I INPUT 0x2 -j RETURN",
                 "-c 010 +2 -A INPUT -j ACCEPT"):
        apply_command(rs, f"iptables {line}", file="f", line=1)
    chain = rs.tables["filter"].chains["INPUT"]
    assert [r.text for r in chain.rules] == ["-j ACCEPT", "-j RETURN", "-j DROP", "-j ACCEPT"]
    assert (chain.rules[3].counters.pkts, chain.rules[3].counters.bytes) == (10, 2)  # base 10
    restore(rs, "*filter\n:INPUT ACCEPT [010:0]\n[010:07] -A INPUT -j ACCEPT\nCOMMIT\n",
            file="f")  # iptables-restore --counters 1.8.9: [10:0] and [10:7]
    chain = rs.tables["filter"].chains["INPUT"]
    assert (chain.counters.pkts, chain.rules[0].counters.pkts, chain.rules[0].counters.bytes) \
        == (10, 10, 7)


# ipchains 1.3.9 (ipchains.c): string_to_number is base 10, parse_mark base 0
def test_numbers_are_read_as_ipchains_1_3_9_reads_them():
    rs = IpchainsRuleset()
    for line in ("ipchains -A input -p tcp -s 010.0.0.1/010 010 -j DENY",
                 "ipchains -A input -p 017 -j DENY",
                 "ipchains -A input -m 010 -j ACCEPT",
                 "ipchains -I input +1 -p tcp -j REDIRECT 08080"):
        apply_ipchains(rs, line, file="f", line=1)
    first, second, third, fourth = rs.chains["input"].rules
    assert first.redirect_port == 8080 and first.target == "REDIRECT"
    assert second.src == (0x0A000000, 0xFFC00000, False) and second.sports == (10, 10, False)
    assert third.proto == 17
    assert fourth.mark == 8
