"""The condition language of conditional breakpoints (kptui/engine/expr.py).

These are kptui's own rules (DESIGN.md, "Breakpoints"), not kernel behaviour:
precedence as in Python and nft (`not` > `and` > `or`), CIDR membership as
`ip route`/iptables read a prefix, and Wireshark's rule that a test on an
absent field (tcp.dport of a UDP packet) is false.
"""

from ipaddress import IPv4Address

import pytest

from kptui.engine import expr
from kptui.engine.errors import FieldError, ParseError


class FakePacket:
    """Stands in for packet.Packet: ``get`` a field, FieldError when it does not apply."""

    def __init__(self, proto: str = "tcp", **fields):
        self.proto = proto
        self.fields = {"ip.src": IPv4Address("192.0.2.10"), "ip.dst": IPv4Address("10.1.2.3"),
                       "ip.ttl": 64, "ip.df": False, "ip.mf": False, "meta.mark": 0,
                       "meta.iif": "eth0", "meta.oif": "", "meta.ctstate": ""}
        ports = {"sport": 40000, "dport": 80}
        if proto in ("tcp", "udp"):
            self.fields.update({f"{proto}.{k}": v for k, v in ports.items()})
        if proto == "tcp":
            self.fields["tcp.flags"] = 0x02
        self.fields.update({k.replace("_", "."): v for k, v in fields.items()})

    def get(self, path):
        if path not in self.fields:
            raise FieldError(f"{path}: not present in this {self.proto} packet")
        return self.fields[path]


def check(text, **pkt):
    proto = pkt.pop("proto", "tcp")
    return expr.compile(text).evaluate(FakePacket(proto, **pkt))


def error(text) -> ParseError:
    with pytest.raises(ParseError) as info:
        expr.compile(text)
    return info.value


# -- comparisons -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tcp.dport == 80", True),
        ("tcp.dport != 80", False),
        ("tcp.dport < 80", False),
        ("tcp.dport <= 80", True),
        ("tcp.dport > 79", True),
        ("tcp.dport >= 81", False),
        ("tcp.dport==80", True),  # no spaces needed
        ("meta.mark == 0x0", True),
        ("meta.mark == 0x10", False),
        ("ip.dst == 10.1.2.3", True),
        ("ip.dst < 10.1.2.4", True),  # addresses compare numerically
        ("ip.dst > 9.255.255.255", True),
        ("meta.iif == eth0", True),
        ('meta.iif == "eth0"', True),
        ("meta.iif != 'eth1'", True),
    ],
)
def test_comparisons(text, expected):
    assert check(text) is expected


def test_hex_literal_compares_with_the_mark():
    assert check("meta.mark == 0x1f", meta_mark=31)


def test_bare_yes_no_field_and_its_negation():
    assert check("ip.df", ip_df=True)
    assert not check("ip.df")
    assert check("not ip.df")
    assert check("ip.df == true", ip_df=True)
    assert check("ip.mf == 0")


# -- precedence ------------------------------------------------------------------------


def test_and_binds_tighter_than_or():
    # mark 1, dport 22, ttl 64: "a or (b and c)" is true, "(a or b) and c" is false
    text = "meta.mark == 1 or tcp.dport == 80 and ip.ttl == 1"
    assert check(text, meta_mark=1, tcp_dport=22)
    assert not check("(meta.mark == 1 or tcp.dport == 80) and ip.ttl == 1",
                     meta_mark=1, tcp_dport=22)


def test_not_binds_tighter_than_and():
    # "(not mark==1) and ttl==64": mark 0 -> true; "not (mark==1 and ttl==64)" would be too,
    # so use ttl 1 to tell them apart: (not false) and false -> false; not (false) -> true
    assert not check("not meta.mark == 1 and ip.ttl == 64", ip_ttl=1)
    assert check("not (meta.mark == 1 and ip.ttl == 64)", ip_ttl=1)


def test_nested_parentheses_and_double_not():
    assert check("((tcp.dport == 80)) and not not ip.ttl == 64")


# -- membership --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ip.dst in 10.0.0.0/8", True),
        ("ip.dst in 10.1.2.0/24", True),
        ("ip.dst in 10.1.3.0/24", False),
        ("ip.dst not in 192.168.0.0/16", True),
        ("ip.dst in 0.0.0.0/0", True),
        ("ip.dst in 10.1.2.3/32", True),
        ("ip.dst in {192.0.2.1, 10.0.0.0/8}", True),
        ("tcp.dport in {80, 443}", True),
        ("tcp.dport in {22, 443,}", False),  # a trailing comma is fine
        ("tcp.dport not in {22, 443}", True),
        ("meta.iif in {eth0, eth1}", True),
    ],
)
def test_membership(text, expected):
    assert check(text) is expected


def test_network_with_host_bits_is_refused_with_the_network_meant():
    err = error("ip.dst in 10.1.2.3/8")
    assert "did you mean 10.0.0.0/8?" in err.message
    assert err.column == 11


def test_prefix_length_over_32_is_refused():
    assert "bad prefix length /33" in error("ip.dst in 10.0.0.0/33").message


def test_network_needs_in_not_equals():
    err = error("ip.dst == 10.0.0.0/8")
    assert "ip.dst in 10.0.0.0/8" in err.message


# -- absent fields ----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["tcp.dport == 53", "tcp.dport != 80", "tcp.dport not in {1}",
                                  "tcp.dport > 0"])
def test_tcp_field_of_a_udp_packet_makes_the_test_false(text):
    assert check(text, proto="udp") is False


def test_not_of_an_absent_test_is_true():
    assert check("not (tcp.dport == 80)", proto="udp")
    assert check("udp.dport == 80 or tcp.dport == 80", proto="udp")


# -- errors ------------------------------------------------------------------------------


def test_unknown_field_suggests_the_closest():
    err = error("tcp.dprot == 80")
    assert err.message == "unknown field tcp.dprot; did you mean tcp.dport?"
    assert (err.column, err.token, err.file) == (1, "tcp.dprot", "<condition>")
    assert str(err) == ("<condition>:1:1: unknown field tcp.dprot; did you mean tcp.dport? "
                        "(at 'tcp.dprot')")


def test_unknown_field_without_a_close_match_has_no_suggestion():
    assert error("frobnicate == 1").message == "unknown field frobnicate"


def test_single_equals_sign_points_at_it():
    err = error("tcp.dport = 80")
    assert err.column == 11
    assert "use == to compare" in err.message


@pytest.mark.parametrize(
    ("text", "column", "words"),
    [
        ("", 1, "empty condition"),
        ("tcp.dport ==", 13, "expected a value to compare tcp.dport with, found the end"),
        ("(tcp.dport == 80", 17, "expected ')' to close the '(' at column 1"),
        ("tcp.dport == 80 tcp.sport == 1", 17, "unexpected 'tcp.sport'"),
        ("tcp.dport == 80 and", 20, "expected a field path"),
        ("tcp.dport in {80, 443", 22, "expected '}' to close the set opened at column 14"),
        ("ip.ttl", 7, "expected a comparison"),
        ("ip.dst == 80", 11, "ip.dst: '80' is not an IPv4 address"),
        ("tcp.dport == http", 14, "tcp.dport: 'http' is not a number"),
        ("tcp.dport == 70000", 14, "tcp.dport: 70000 is out of range 0..65535"),
        ("ip.dst in {10.0.0.0/8, 300.1.2.3}", 24, "'300.1.2.3' is not an IPv4 address"),
        ("ip.dst in 300.0.0.0/8", 11, "300.0.0.0 is not an IPv4 address"),
        ("meta.iif < eth0", 10, "< compares numbers or addresses; meta.iif is text"),
        ("tcp.dport == tcp.sport", 14, "tcp.sport is a field"),
        ('meta.iif == "eth0', 13, "unterminated string"),
        ("tcp.dport == 80 && ip.ttl == 1", 17, "use `and`"),
        ("ip.df == maybe", 10, "ip.df: 'maybe' is not a yes/no value"),
        ("tcp.flags == SX", 14, "'SX' is not a flag"),
        ("tcp.flags < S", 11, "< compares numbers or addresses; tcp.flags is TCP flags"),
        ("80 == tcp.dport", 1, "expected a field path"),
    ],
)
def test_errors_name_the_column_and_the_problem(text, column, words):
    err = error(text)
    assert err.column == column
    assert words in err.message


def test_offset_shifts_columns_for_text_inside_a_longer_line():
    with pytest.raises(ParseError) as info:
        expr.compile("tcp.dport = 80", file="<breakpoint>", offset=22)
    assert (info.value.file, info.value.column) == ("<breakpoint>", 33)


def test_condition_keeps_its_text_and_the_fields_it_reads():
    cond = expr.compile("  tcp.dport == 80 and meta.mark != 0 ")
    assert cond.text == "tcp.dport == 80 and meta.mark != 0"
    assert cond.paths == ("tcp.dport", "meta.mark")


# -- against the real packet module (helper A's kptui/engine/packet.py) -------------------


def test_every_packet_field_is_accepted_and_icmp_inner_paths_too():
    packet = pytest.importorskip("kptui.engine.packet")
    for path, spec in packet.FIELDS.items():
        one = '"mss 1"' if spec.type == "tcpoptions" else "1"  # the options' text form
        cond = expr.compile(f"{path} in {{{one}}}" if expr.field_kind(path) != "addr"
                            else f"{path} in 10.0.0.0/8")
        assert cond.paths == (path,)
    expr.compile("icmp.inner.ip.dst == 192.0.2.1")


def test_real_packets_tcp_flags_text_and_absent_fields():
    packet = pytest.importorskip("kptui.engine.packet")
    syn_ack = packet.Packet.build(proto="tcp", src="192.0.2.1", dst="198.51.100.7",
                                  sport=80, dport=40000, flags="SA")
    # tcp flag text as iptables' --tcp-flags writes it (iptables-extensions(8))
    assert expr.compile("tcp.flags == SA").evaluate(syn_ack)
    assert expr.compile('tcp.flags == "SYN,ACK"').evaluate(syn_ack)
    assert not expr.compile("tcp.flags == S").evaluate(syn_ack)
    assert expr.compile("tcp.sport == 80 and ip.dst in 198.51.100.0/24").evaluate(syn_ack)
    udp = packet.Packet.build(proto="udp", src="192.0.2.1", dst="198.51.100.7",
                              sport=53, dport=5353)
    assert not expr.compile("tcp.dport != 1").evaluate(udp)
    assert expr.compile("udp.dport == 5353").evaluate(udp)


def test_literals_are_read_as_the_packet_editor_reads_them():
    packet = pytest.importorskip("kptui.engine.packet")
    ping = packet.Packet.build(proto="icmp", src="192.0.2.1", dst="198.51.100.7",
                               icmp_type=8, icmp_id=7)
    # icmp type names as iptables -p icmp --icmp-type writes them (iptables-extensions(8))
    assert expr.compile("icmp.type == echo-request").evaluate(ping)
    assert expr.compile("icmp.type in {echo-reply, 8}").evaluate(ping)
    assert not expr.compile("icmp.id == 8").evaluate(ping)
    ping.set_text("meta.classid", "1:10")
    # tc(8) class ids are hex major:minor
    assert expr.compile('meta.classid == "1:10"').evaluate(ping)
    assert expr.compile("meta.classid == 1:10").evaluate(ping)
    assert expr.compile("meta.classid == 10010").evaluate(ping)  # a bare handle is hex too
