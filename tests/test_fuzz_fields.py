"""Bad input never escapes: packet field edits, conditions, breakpoint specs, `route get`.

Each fuzz test feeds mutated valid inputs (corpora from tests/test_packet.py,
tests/test_expr.py and tests/test_debugger.py) to what the TUI's dialogs and
the CLI call, and asserts the project's own error or success, never anything
else (tests/fuzzing.py). The regression cases below are the inputs that broke
these parsers (issue 13), each expecting a KptuiError that names the token.

Integers in kptui's own syntax (edits, conditions, the compose dialog, rule
numbers) read as C's strtoul base 0, as iptables and Wireshark do: ``010`` is
8. Checked against iptables 1.8.9 (``-D INPUT 010`` deletes rule 8, ``08`` is
"Invalid rule number", ``-s 10.0.0.0/010`` is /8) and iproute2 6.1 (``ip route
get ... mark 010`` prints ``mark 8``; ``tos 10`` is 0x10, hex; tc reads class
ids in hex, ``01:016`` is 1:16 and ``0x1:0x10`` is 1:10), in network namespaces.
"""

from __future__ import annotations

import sys

import pytest
from fuzzing import fuzz, fuzz_settings, mutated, own_error_or_success
from hypothesis import given
from hypothesis import strategies as st

from kptui.cli import main
from kptui.engine import expr
from kptui.engine.debugger import INJECT_FIELDS, Debugger, build_packet, parse_spec
from kptui.engine.errors import FieldError, KptuiError, ParseError
from kptui.engine.packet import FIELDS, Packet, parse_classid, parse_tcp_flags
from kptui.engine.scenario import load_scenario

# -- packets -----------------------------------------------------------------------------


def tcp_pkt() -> Packet:
    return Packet.build("tcp", src="198.51.100.7", dst="203.0.113.2", sport=40000, dport=8080)


def udp_pkt() -> Packet:
    return Packet.build("udp", src="10.99.0.1", dst="10.99.0.2", sport=40000, dport=9)


def icmp_pkt() -> Packet:
    return Packet.build("icmp", src="10.99.0.1", dst="10.99.0.2", icmp_id=822)


def unreach_pkt() -> Packet:
    pkt = Packet.build("icmp", src="10.99.0.2", dst="10.99.0.1", icmp_type=3, icmp_code=3)
    pkt.l4.inner = udp_pkt()
    return pkt


PACKETS = (tcp_pkt, udp_pkt, icmp_pkt, unreach_pkt)



def _formatted_values() -> set[str]:
    """Each field's value on each sample packet, as the editor shows it."""
    values = set()
    for make in PACKETS:
        pkt = make()
        for spec in FIELDS.values():
            try:
                values.add(spec.format(spec.read(pkt)))
            except FieldError:
                pass  # not in this packet
    return values


# Values the editor takes (tests/test_packet.py GOOD), and each field's own formatted value.
VALUES = sorted({
    "64", "0x0", "0x10", "46", "3", "0xffff", "0", "1", "yes", "8191", "6", "65535", "0x50",
    "4294967295", "SYN,ACK", "syn ack", "SA", "0x12", "53", "123", "echo-reply", "5", "7",
    "0x100", "10.99.0.3", "eth0", "wg-office.1", "0xffffffff", "42", "1:10", "ffff:ffff",
    "root", "none", ":10", "1:", "10010", "true", "off", "FIN|PSH|URG", "NONE", "ALL", "010",
} | _formatted_values())
VALUE_WORDS = ("0x", "0X1F", "00", "0o7", "0b1", "1e3", "0x1_0", "\u0660", "\uff10",
               "\u00df", "1:0x10", "0x1:", "+1", " 1", "-0", "ffffffff:1", "1::2", "\ud800")
PATHS = sorted(FIELDS)


@fuzz
@fuzz_settings(600)
@given(st.sampled_from(PATHS), st.sampled_from(PACKETS), mutated(VALUES, VALUE_WORDS))
def test_field_edits_never_crash(path: str, make, text: str) -> None:
    pkt = make()
    spec = FIELDS[path]
    own_error_or_success(spec.parse, text)
    own_error_or_success(lambda: spec.validate(spec.parse(text)))
    own_error_or_success(pkt.set_text, path, text)
    own_error_or_success(pkt.to_bytes)


@fuzz
@fuzz_settings(200)
@given(mutated(VALUES, VALUE_WORDS))
def test_flag_and_classid_parsers_never_crash(text: str) -> None:
    own_error_or_success(parse_tcp_flags, text)
    own_error_or_success(parse_classid, text)


# -- conditions --------------------------------------------------------------------------

# tests/test_expr.py's valid conditions
CONDITIONS = (
    "tcp.dport == 80", "tcp.dport != 80", "tcp.dport < 80", "tcp.dport <= 80",
    "tcp.dport > 79", "tcp.dport >= 81", "tcp.dport==80", "meta.mark == 0x0",
    "meta.mark == 0x10", "ip.dst == 10.1.2.3", "ip.dst < 10.1.2.4", "ip.dst > 9.255.255.255",
    "meta.iif == eth0", 'meta.iif == "eth0"', "meta.iif != 'eth1'", "meta.mark == 0x1f",
    "ip.df", "not ip.df", "ip.df == true", "ip.mf == 0",
    "meta.mark == 1 or tcp.dport == 80 and ip.ttl == 1",
    "(meta.mark == 1 or tcp.dport == 80) and ip.ttl == 1",
    "not meta.mark == 1 and ip.ttl == 64", "not (meta.mark == 1 and ip.ttl == 64)",
    "((tcp.dport == 80)) and not not ip.ttl == 64", "ip.dst in 10.0.0.0/8",
    "ip.dst in 10.1.2.0/24", "ip.dst not in 192.168.0.0/16", "ip.dst in 0.0.0.0/0",
    "ip.dst in 10.1.2.3/32", "ip.dst in {192.0.2.1, 10.0.0.0/8}", "tcp.dport in {80, 443}",
    "tcp.dport in {22, 443,}", "tcp.dport not in {22, 443}", "meta.iif in {eth0, eth1}",
    "not (tcp.dport == 80)", "udp.dport == 80 or tcp.dport == 80",
    "icmp.inner.ip.dst == 192.0.2.1", "tcp.flags == SA", "tcp.flags == S",
    "tcp.sport == 80 and ip.dst in 198.51.100.0/24", "udp.dport == 5353",
    "icmp.type == echo-request", "icmp.type in {echo-reply, 8}", "icmp.id == 8",
    "meta.classid == 1:10", "meta.classid == 10010", "tcp.dport == 010",
    "ip.src in 10.0.0.0/010",
)
CONDITION_WORDS = ("(", ")", "((", "))", "not", "and", "or", "in", "==", "!=", "<", "{", "}",
                   "tcp.dport", "ip.dst", "meta.mark", "tcp.flags", "meta.classid", '"010"',
                   "10.0.0.0/8", "10.0.0.0/" + "9" * 5000, "0.0.0.0/0x20", "not (" * 70,
                   '"eth\ud800"', "meta.iif")


@fuzz
@fuzz_settings(600)
@given(mutated(CONDITIONS, CONDITION_WORDS), st.sampled_from(PACKETS))
def test_conditions_never_crash(text: str, make) -> None:
    cond = own_error_or_success(expr.compile, text)
    if isinstance(cond, expr.Condition):
        own_error_or_success(cond.evaluate, make())


# -- breakpoint specs --------------------------------------------------------------------

# tests/test_debugger.py's specs and the dialog's examples
SPECS = (
    "stage nat:PREROUTING", "stage nat:POSTROUTING", "hook FORWARD", "hook forward",
    "chain filter:FORWARD", "chain filter:web", "rule filter:FORWARD:2", "rule filter:FORWARD:3",
    "rule filter:FORWARD:rule:3", "watch meta.mark", "watch ip.ttl", "if tcp.dport == 22",
    "if tcp.dport == 80", "rule filter:INPUT:1 if ip.src == 192.0.2.10",
    "rule filter:FORWARD:2 if ip.ttl == 63", "stage routing:input", "chain nat:PREROUTING",
    "rule filter:FORWARD:010", "rule mangle:PREROUTING:0x1 if not ip.df",
)
SPEC_WORDS = ("if", "stage", "hook", "chain", "rule", "watch", "filter:FORWARD:", ":", "::",
              "filter::1", "filter:FORWARD:0", "filter:FORWARD:08", "filter:FORWARD:١",
              "filter:FORWARD:" + "9" * 5000, "if (((", "if not not not")


def _demo_debugger() -> Debugger:
    from kptui.cli import read_scenario_text

    text, name = read_scenario_text(None)
    return Debugger.for_scenario(load_scenario(text, file=name))


DEMO = _demo_debugger()


@fuzz
@fuzz_settings(400)
@given(mutated(SPECS, SPEC_WORDS))
def test_breakpoint_specs_never_crash(spec: str) -> None:
    own_error_or_success(parse_spec, spec)
    bp = own_error_or_success(DEMO.add_breakpoint, spec)
    if not isinstance(bp, KptuiError):
        DEMO.remove(bp.id)


# -- the compose dialog ------------------------------------------------------------------

COMPOSE = {"origin": "eth0", "proto": "tcp", "src": "192.0.2.10", "dst": "192.0.2.1",
           "sport": "40000", "dport": "22", "flags": "S", "icmp_type": "", "ttl": "64"}
PING = {"proto": "icmp", "sport": "", "dport": "", "icmp_type": "8"}


@fuzz
@fuzz_settings(300)
@given(st.sampled_from(INJECT_FIELDS), st.booleans(),
       mutated(VALUES + sorted(v for v in COMPOSE.values() if v), VALUE_WORDS))
def test_composed_packets_never_crash(key: str, ping: bool, text: str) -> None:
    fields = dict(COMPOSE, **(PING if ping else {}))
    fields[key] = text
    own_error_or_success(build_packet, fields)


# -- the CLI -----------------------------------------------------------------------------

ROUTE_WORDS = ("192.0.2.1 mark 1", "198.51.100.200 from 192.0.2.1 mark 0x1f",
               "198.51.100.200 from 192.0.2.10 iif eth0 tos 0x10", "192.0.2.1 tos 10",
               "192.0.2.1 mark 010", "to 192.0.2.1 oif eth0", "192.0.2.1 tos AF11")


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's own usage errors exit 2 too
        status = exc.code
    _out, err = capsys.readouterr()
    return status, err


@fuzz
@fuzz_settings(150)
@given(words=mutated(ROUTE_WORDS, ("mark", "tos", "from", "iif", "oif", "to")))
def test_route_get_words_exit_2_never_3(words: str, capsys) -> None:
    status, err = _cli(["route", "get", *words.split(" ")], capsys)
    assert status in (0, 2), err
    if status == 2:
        assert err.strip() and "internal error" not in err and "Traceback" not in err


@fuzz
@fuzz_settings(60)
@given(number=mutated(("0", "1", "9", "00"), ()))
def test_trace_packet_number_exits_2_never_3(number: str, capsys) -> None:
    status, err = _cli(["trace", "--demo", "--format", "text", "--packet", number], capsys)
    assert status in (0, 2), err
    assert "internal error" not in err


# -- regressions: the inputs that broke these parsers ------------------------------------

HUGE = "9" * 5000  # over Python's 4300-digit int() limit


@pytest.mark.parametrize(
    ("path", "make", "text", "words"),
    [
        # int(t, 0) refused what \d+ let through: ValueError, a traceback in the edit dialog
        ("tcp.dport", tcp_pkt, "08", "'08' is not a number (decimal, 0x hex or 0-prefixed"),
        ("meta.mark", tcp_pkt, "0x1g", "'0x1g' is not a number"),
        # \d matched these and int() read them as 12
        ("tcp.dport", tcp_pkt, "\u0661\u0662", "'\u0661\u0662' is not a number"),
        ("ip.ttl", tcp_pkt, "\uff11\uff12", "'\uff11\uff12' is not a number"),
        ("ip.ttl", tcp_pkt, "8\u00b2", "'8\u00b2' is not a number"),
        ("icmp.type", icmp_pkt, "\u0668", "'\u0668' is not a number"),
        ("tcp.flags", tcp_pkt, "\u0661\u0662", "'\u0661\u0662' is not a flag"),
        ("tcp.flags", tcp_pkt, "08", "'08' is not a number"),
        ("tcp.flags", tcp_pkt, "\u00df", "'\u00df' is not a flag"),  # upper() is "SS"
        # 5000 digits: int() refuses over 4300 with a ValueError
        pytest.param("tcp.seq", tcp_pkt, HUGE, "is out of range", id="seq-5000-digits"),
        pytest.param("tcp.flags", tcp_pkt, HUGE, "is out of range 0..255", id="flags-huge"),
        pytest.param("meta.classid", tcp_pkt, "1:" + "f" * 5000,
                     "major and minor must each be at most", id="classid-huge-minor"),
        pytest.param("meta.classid", tcp_pkt, "f" * 5000, "is out of range (32 bits)",
                     id="classid-huge"),
        ("meta.classid", tcp_pkt, "\u0661:10", "is not a tc class id"),
        ("meta.classid", tcp_pkt, "1:0x", "is not a tc class id"),
        # str.encode() raised UnicodeEncodeError on a lone surrogate
        ("meta.iif", tcp_pkt, "eth\ud800", "is not a valid interface name"),
    ],
)
def test_bad_field_text_is_a_field_error_naming_it(path, make, text, words) -> None:
    with pytest.raises(FieldError) as info:
        make().set_text(path, text)
    assert str(info.value).startswith(f"{path}: ")
    assert words in str(info.value)
    assert len(str(info.value)) < 200


@pytest.mark.parametrize(
    ("path", "text", "value"),
    [
        ("tcp.dport", "010", 8),  # C, iptables (--dport 010 is 8, 1.8.9), Wireshark
        ("tcp.dport", " 0x50 ", 80),
        ("meta.mark", "0X1F", 31),
        ("ip.ttl", "0", 0),
        ("ip.ttl", "00", 0),
        ("tcp.flags", "022", 0x12),
        ("tcp.flags", "18", 0x12),
        ("icmp.type", "010", 8),
        ("meta.classid", "01:016", 0x10016),  # hex as tc reads it (iproute2 6.1)
        ("meta.classid", "0x1:0x10", 0x10010),
        ("meta.classid", "10001", 0x10001),
        ("meta.classid", ":15", 0x15),
        ("meta.classid", "1:", 0x10000),
    ],
)
def test_integers_read_as_c_and_the_tools_do(path, text, value) -> None:
    pkt = icmp_pkt() if path.startswith("icmp") else tcp_pkt()
    assert pkt.set_text(path, text)[1] == value


@pytest.mark.parametrize(
    ("text", "column", "words"),
    [
        pytest.param("(" * 100_000 + "ip.df", 65, "nested too deeply: at most 64 levels",
                     id="parens-100000-deep"),
        pytest.param("not " * 100_000 + "ip.df", 257, "nested too deeply", id="not-100000"),
        ("(not " * 33 + "ip.df" + ")" * 33, 161, "nested too deeply"),
        ("tcp.dport == 08", 14, "'08' is not a number (decimal, 0x hex or 0-prefixed octal)"),
        ('tcp.dport == "\u0661\u0662"', 14, "is not a number"),
        pytest.param("ip.dst in 10.0.0.0/" + HUGE, 11, "bad prefix length /999",
                     id="prefix-5000-digits"),
        ("ip.dst in 10.0.0.0/08", 11, "bad prefix length /08"),
        pytest.param("tcp.seq == " + HUGE, 12, "is out of range", id="seq-5000-digits"),
    ],
)
def test_bad_conditions_are_parse_errors(text, column, words) -> None:
    with pytest.raises(ParseError) as info:
        expr.compile(text)
    assert info.value.column == column
    assert words in info.value.message
    assert len(str(info.value)) < 300


def test_deepest_allowed_condition_compiles_and_evaluates_in_a_shallow_stack() -> None:
    deep = "(" * 32 + "not " * 32 + "tcp.dport == 010" + ")" * 32
    cond = expr.compile(deep)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(400)  # far below the default: evaluation is bounded by MAX_DEPTH
    try:
        assert cond.evaluate(Packet.build("tcp", src="192.0.2.1", dst="192.0.2.2", sport=1,
                                          dport=8)) is True
    finally:
        sys.setrecursionlimit(limit)


def test_network_prefix_reads_as_iptables_does() -> None:
    # iptables 1.8.9: -s 10.0.0.0/010 is 10.0.0.0/8, /0x10 is /16
    cond = expr.compile("ip.dst in 10.0.0.0/010 and ip.src in 172.16.0.0/0x10")
    pkt = Packet.build("tcp", src="172.16.9.9", dst="10.200.0.1", sport=1, dport=2)
    assert cond.evaluate(pkt)


@pytest.mark.parametrize(
    ("spec", "column", "words"),
    [
        ("rule filter:FORWARD:08", 6, "rule number '08' must be 1 or more (decimal, 0x hex"),
        ("rule filter:FORWARD:\u0661", 6, "rule number '\u0661' must be 1 or more"),
        ("rule filter:FORWARD:1\u00b2", 6, "must be 1 or more"),
        pytest.param("rule filter:FORWARD:" + HUGE, 6,
                     "must be 1 or more and at most 2147483647", id="rule-5000-digits"),
        ("rule filter:FORWARD:2147483648", 6, "at most 2147483647"),
        pytest.param("if " + "(" * 100_000, 68, "nested too deeply", id="if-parens-100000"),
        pytest.param("if " + "not " * 100_000 + "ip.df", 260, "nested too deeply",
                     id="if-not-100000"),
        ("rule filter:FORWARD:3 if tcp.dport == 08", 39, "'08' is not a number"),
    ],
)
def test_bad_breakpoint_specs_are_parse_errors(spec, column, words) -> None:
    with pytest.raises(ParseError) as info:
        DEMO.add_breakpoint(spec)
    assert info.value.column == column
    assert words in info.value.message
    assert len(str(info.value)) < 300


def test_rule_number_reads_as_iptables_does() -> None:
    # iptables 1.8.9: `-D INPUT 010` deletes rule 8, `-D INPUT 0x9` rule 9
    assert parse_spec("rule filter:FORWARD:010")[1] == "filter:FORWARD:8"
    assert parse_spec("rule filter:FORWARD:0x9")[1] == "filter:FORWARD:9"


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"dport": "08"}, "dport: '08' is not a number"),
        ({"sport": "\u0661\u0662"}, "sport: '\u0661\u0662' is not a number"),
        ({"ttl": "6\u00b2"}, "ttl: '6\u00b2' is not a number"),
        pytest.param({"ttl": HUGE}, "ttl: '999", id="ttl-5000-digits"),
        ({"proto": "\u0661\u0667"}, "is not tcp, udp, icmp or a protocol number"),
        (dict(PING, icmp_type="08"), "icmp_type: '08'"),
    ],
)
def test_bad_composed_numbers_are_errors_naming_them(fields, words) -> None:
    with pytest.raises(KptuiError) as info:
        build_packet(dict(COMPOSE, **fields))
    assert words in str(info.value)


def test_composed_numbers_read_as_edits_do() -> None:
    pkt = build_packet(dict(COMPOSE, dport="010", ttl="0x40", sport="0"))
    assert (pkt.l4.dport, pkt.ip.ttl, pkt.l4.sport) == (8, 64, 0)
    ping = build_packet({**COMPOSE, **PING, "icmp_type": "echo-reply"})
    assert ping.l4.type == 0
    gre = build_packet(dict(COMPOSE, proto="057", sport="", dport=""))  # octal 57: 47, gre
    assert gre.ip.proto == 47


@pytest.mark.parametrize(
    ("words", "message"),
    [
        ("192.0.2.1 mark 08", 'argument "08" is wrong: invalid mark value'),
        ("192.0.2.1 mark \u0661\u0662", "invalid mark value"),
        ("192.0.2.1 mark 1\u00b2", "invalid mark value"),
        pytest.param("192.0.2.1 mark " + HUGE, 'argument "999', id="mark-5000-digits"),
        ("192.0.2.1 mark 4294967296", "invalid mark value"),
        ("192.0.2.1 tos \uff11\uff10", "TOS value is invalid"),
        ("192.0.2.1 tos 100", "TOS value is invalid"),  # hex: 0x100
        ("192.0.2.1 tos 0x", "TOS value is invalid"),
    ],
)
def test_route_get_bad_words_exit_2_with_one_line(words, message, capsys) -> None:
    status, err = _cli(["route", "get", *words.split(" ")], capsys)
    assert status == 2
    assert message in err and len(err.strip().splitlines()) == 1 and len(err) < 300


@pytest.mark.parametrize(
    ("words", "expect"),
    [
        ("192.0.2.1 mark 010", "mark 8 "),  # iproute2 6.1: get_unsigned base 0
        ("192.0.2.1 mark 0x10", "mark 0x10 "),
    ],
)
def test_route_get_mark_reads_as_ip_route_does(words, expect, capsys) -> None:
    status, err = _cli(["route", "get", *words.split(" ")], capsys)
    assert status == 0, err


def test_route_get_tos_is_hex_as_ip_route_reads_it() -> None:
    # iproute2 6.1, rule `tos 0x10 lookup 100`: `ip route get ... tos 10` and `tos 010` use
    # table 100, `tos 16` does not (rtnl_dsfield_a2n: strtoul base 16, or rt_dsfield names)
    from kptui.cli import route_get_mark, route_get_tos

    assert [route_get_tos(t) for t in ("10", "010", "0x10", "0X10", " 10", "+10")] == [16] * 6
    assert (route_get_tos("ff"), route_get_tos("AF11"), route_get_tos("CS1")) == (255, 40, 32)
    assert [route_get_mark(t) for t in ("10", "0x10", "010", " 5", "+5")] == [10, 16, 8, 5, 5]


@pytest.mark.parametrize("number", ["\u0661", "-1", "1\u00b2", HUGE, "0x1"],
                         ids=["arabic-1", "minus", "superscript", "huge", "hex"])
def test_trace_packet_number_is_a_usage_error(number, capsys) -> None:
    status, err = _cli(["trace", "--demo", "--packet", number], capsys)
    assert status == 2 and "--packet" in err and "internal error" not in err
