"""`--send 'WORDS'` (kptui.engine.sendspec): every word, and every way to get it wrong.

The words follow tcpdump's output (`SRC.PORT > DST.PORT`, `Flags [S.]`, `options [...]`)
and `ip route get`'s (`from`, `to`, `iif`, `ipproto`, `sport`, `dport`); the packet they
give must equal the [[packets]] table a user would write, and a refusal names the word.
"""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from kptui.engine.errors import UnsupportedError
from kptui.engine.scenario import load_scenario
from kptui.engine.sendspec import (
    SendError,
    apply_sends,
    packets_toml,
    read_send,
    without_packets,
)

BOX = """
name = "send"
[[interfaces]]
name = "eth0"
addresses = ["192.0.2.1/24"]

[[interfaces]]
name = "eth1"
addresses = ["198.51.100.1/24"]

# the file's own packet, replaced by --send
[[packets]]
iif = "eth0"
proto = "udp"
src = "192.0.2.10"
dst = "198.51.100.7"
sport = 1
dport = 2

[packets.inner]
proto = "udp"
"""


def entry(text: str) -> dict:
    return read_send(text).entry


def sent(*texts: str):
    scenario = load_scenario(BOX.replace("[packets.inner]\nproto = \"udp\"\n", ""),
                             file="box.toml")
    apply_sends(scenario, texts)
    return scenario


def refused(*texts: str) -> SendError:
    with pytest.raises(SendError) as err:
        sent(*texts)
    return err.value


# -- the words ---------------------------------------------------------------------------


def test_the_issue_example_is_a_syn_arriving_on_eth1():
    assert entry("tcp 198.51.100.7:40000 > 192.0.2.1:22 iif eth1 flags S") == {
        "proto": "tcp", "src": "198.51.100.7", "sport": 40000, "dst": "192.0.2.1",
        "dport": 22, "iif": "eth1", "flags": "S"}


def test_words_come_in_any_order():
    assert entry("iif eth1 flags S tcp 198.51.100.7:40000 > 192.0.2.1:22") == \
        entry("tcp 198.51.100.7:40000 > 192.0.2.1:22 iif eth1 flags S")


def test_tcpdump_address_dot_port_and_glued_arrow():
    # tcpdump prints `IP 198.51.100.7.40000 > 192.0.2.1.22: Flags [S]`
    assert entry("tcp 198.51.100.7.40000 > 192.0.2.1.22 iif eth1") == \
        entry("tcp 198.51.100.7:40000>192.0.2.1:22 iif eth1")


def test_ip_route_get_words():
    assert entry("ipproto udp from 192.0.2.10 sport 5000 to 198.51.100.7 dport 53 iif eth0") \
        == {"proto": "udp", "src": "192.0.2.10", "sport": 5000, "dst": "198.51.100.7",
            "dport": 53, "iif": "eth0"}
    # a bare address is the destination, as `ip route get ADDRESS`
    assert entry("udp 198.51.100.7:53 local sport 9")["dst"] == "198.51.100.7"


def test_local_without_a_source_is_an_unbound_socket():
    # as a scenario's src = "0.0.0.0": the route picks the source (walk.output_routing)
    packet = sent("udp to 198.51.100.7:53 sport 5000 local").packets[0]
    assert packet.origin == "local" and packet.src == IPv4Address(0)
    with_src = sent("udp 192.0.2.1:5000 > 198.51.100.7:53 local").packets[0]
    assert with_src.src == IPv4Address("192.0.2.1")


@pytest.mark.parametrize(("flags", "kptui"), [
    ("S", "S"), ("S.", "SA"), ("[S.]", "SA"), ("R.", "RA"), ("F.", "FA"), ("P.", "PA"),
    ("SEW", "SEC"), ("U", "U"), ("[none]", "NONE"), ("SA", "SA"), ("SYN,ACK", "SYN,ACK"),
    ("CWR", "CWR"), ("0x12", "0x12"),
])
def test_flags_take_tcpdump_letters(flags, kptui):
    # tcpdump's print-tcp.c: S F R P U E W (CWR) and . (ACK); kptui's A and C as well
    assert entry(f"tcp 1.2.3.4:1 > 5.6.7.8:2 iif eth0 flags {flags}")["flags"] == kptui


def test_flags_reach_the_packet():
    assert sent("tcp 192.0.2.10:1 > 198.51.100.7:2 iif eth0 flags S.").packets[0].flags == "SA"


@pytest.mark.parametrize(("words", "icmp_type", "code"), [
    ("type 8", 8, None), ("type echo-request", 8, None), ("echo-request", 8, None),
    ("type icmp-echo", 8, None), ("icmp-echoreply", 0, None), ("type 3 code 3", 3, 3),
    ("port-unreachable", 3, 3), ("type host-prohibited", 3, 10), ("ttl-zero-during-transit",
                                                                  11, 0),
    ("type 0x0d", 13, None),
])
def test_icmp_types_by_number_and_by_name(words, icmp_type, code):
    got = entry(f"icmp 1.2.3.4 > 5.6.7.8 iif eth0 {words}")
    assert got["icmp_type"] == icmp_type and got.get("icmp_code") == code


def test_every_number_word():
    got = entry("tcp 1.2.3.4:1 > 5.6.7.8:2 local mark 0x10 tos 0x10 ttl 010 length 60 "
                "seq 5 ack 6 uid 1000 gid 100")
    # kptui's own numbers: decimal, 0x hex, 0-prefixed octal (010 is 8)
    assert got | {} == {**got, "mark": 16, "tos": 16, "ttl": 8, "length": 60, "seq": 5,
                        "ack": 6, "uid": 1000, "gid": 100}
    assert entry("icmp 1.2.3.4 > 5.6.7.8 iif eth0 id 7 code 1")["icmp_id"] == 7


def test_time_df_and_options():
    got = entry("tcp 1.2.3.4:1 > 5.6.7.8:2 iif eth0 time 1.5 df off "
                "options [mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7]")
    assert got["time"] == 1.5 and got["df"] is False
    assert got["tcp_options"] == "mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7"
    assert entry("tcp 1.2.3.4:1 > 5.6.7.8:2 iif eth0 options mss")["tcp_options"] == "mss"
    assert entry("tcp 1.2.3.4:1 > 5.6.7.8:2 iif eth0 df on")["df"] is True


def test_a_send_packet_equals_the_table_a_user_would_write():
    spec = sent("tcp 192.0.2.10:40000 > 198.51.100.7:443 iif eth0 flags S ttl 5 tos 0x10 "
                "seq 1000 options [mss 1460]").packets[0]
    by_hand = load_scenario(BOX.split("# the file's")[0] + """
[[packets]]
iif = "eth0"
proto = "tcp"
src = "192.0.2.10"
dst = "198.51.100.7"
sport = 40000
dport = 443
flags = "S"
ttl = 5
tos = 16
seq = 1000
tcp_options = "mss 1460"
""", file="by-hand.toml").packets[0]
    assert (spec.file, spec.line) == ("--send", 1)
    spec.file, spec.line = by_hand.file, by_hand.line
    assert spec == by_hand
    assert spec.build().to_bytes() == by_hand.build().to_bytes()


def test_sends_replace_the_packets_in_order_and_in_the_text():
    scenario = sent("udp 192.0.2.10:1 > 198.51.100.7:2 iif eth0",
                    "udp 198.51.100.7:2 > 192.0.2.10:1 iif eth1 time 3")
    assert [p.origin for p in scenario.packets] == ["eth0", "eth1"]
    assert [p.line for p in scenario.packets] == [1, 2] and scenario.packets[1].time == 3
    again = load_scenario(scenario.text, file="box.toml")  # what a saved session reloads
    assert [(p.origin, p.src, p.time) for p in again.packets] == \
        [(p.origin, p.src, p.time) for p in scenario.packets]


def test_a_packet_without_a_time_keeps_the_previous_one():
    scenario = sent("udp 192.0.2.10:1 > 198.51.100.7:2 iif eth0 time 2",
                    "udp 192.0.2.10:1 > 198.51.100.7:2 iif eth0")
    assert [p.time for p in scenario.packets] == [2.0, 2.0]


def test_the_file_keeps_its_line_numbers_without_its_packets():
    text = without_packets(BOX)
    assert text.count("\n") == BOX.count("\n") + (not BOX.endswith("\n"))
    assert "[[packets]]" not in text and "[packets.inner]" not in text
    assert text.splitlines()[2:5] == BOX.splitlines()[2:5]


def test_an_inline_packets_array_is_refused_by_name():
    with pytest.raises(UnsupportedError, match="inline"):
        without_packets('packets = [{iif = "eth0"}]\n')


def test_text_is_written_as_toml_strings():
    block, where = packets_toml([read_send('udp 1.2.3.4:1 > 5.6.7.8:2 iif "e\\th\x7f')])
    assert 'iif = "\\"e\\\\th\\u007f"' in block
    assert sorted(where[0].values()) == sorted(["", "iif", "proto", "src", "dst", "sport",
                                                "dport"])


# -- mistakes: the word, its position and what was expected -------------------------------


@pytest.mark.parametrize(("text", "word", "says"), [
    ("tcp 1.2.3.4:1 > 5.6.7.8:2 ifx eth0", 5, "not a word of a packet (did you mean iif?)"),
    ("tcp 1.2.3.4:1 > 5.6.7.8:2 iif", 5, "iif needs an interface name after it"),
    ("tcp 1.2.3.4:1 > 5.6.7.8:2 iif eth0 ttl", 7, "ttl needs a number after it"),
    ("tcp 1.2.3.4:1 > 5.6.7.8:2 iif eth0 ttl x", 8, "'x' is not a number"),
    ("tcp 1.2.3.4:1 > 5.6.7.8:2 iif eth0 ttl 5 ttl 6", 10, "given twice (first at word 8"),
    ("tcp > 5.6.7.8:2 iif eth0", 2, "expected SRC[:PORT] before >"),
    ("tcp 1.2.3.4:1 > iif eth0", 3, "expected DST[:PORT] after >"),
    ("tcp 1.2.3.4:x > 5.6.7.8:2 iif eth0", 2, "port: 'x' is not a number"),
    ("tcp 1.2.3.4: > 5.6.7.8:2 iif eth0", 2, "expected ADDR or ADDR:PORT"),
    ("tcp 1.2.3.4:1 > 5.6.7.8:2 iif eth0 ipproto gre", 8, "expected tcp, udp or icmp"),
    ("icmp 1.2.3.4 > 5.6.7.8 iif eth0 type echo-reqest", 8, "did you mean echo-request?"),
    ("tcp 1.2.3.4:1 > 5.6.7.8:2 iif eth0 time soon", 8, "time: 'soon' is not a number"),
    ("tcp 1.2.3.4:1 > 5.6.7.8:2 iif eth0 df maybe", 8, "expected on or off"),
    ("tcp 1.2.3.4:1 > 5.6.7.8:2 iif eth0 flags []", 8, "expected TCP flags"),
    ("tcp 1.2.3.4:1 > 5.6.7.8:2 iif eth0 options [mss 1460", 8, "has no closing ]"),
    ("tcp tcp 1.2.3.4:1 > 5.6.7.8:2 iif eth0", 2, "the protocol is given twice"),
    ("tcp 1.2.3.4:1 > 5.6.7.8:2 local iif eth0", 7, "iif/local is given twice"),
])
def test_grammar_mistakes_name_the_word(text, word, says):
    err = refused(text)
    assert err.word == word and says in str(err)
    assert str(err).startswith(f"--send {text!r}: word {word} ")


@pytest.mark.parametrize(("text", "says"), [
    ("", "empty"),
    ("1.2.3.4 > 5.6.7.8 iif eth0", "no protocol: begin with tcp, udp or icmp"),
    ("tcp iif eth0", "no destination"),
    ("tcp 1.2.3.4:1 > 5.6.7.8:2", "give iif IFACE (it arrives there) or local"),
    ("tcp 5.6.7.8:2 iif eth0", "a packet arriving on eth0 needs its source"),
])
def test_a_missing_piece_is_named(text, says):
    err = refused(text)
    assert err.word == 0 and says in str(err)


@pytest.mark.parametrize(("text", "word", "says"), [
    # the scenario's own rules for [[packets]], told on the word that gave the key
    ("tcp 1.2.3.4:99999 > 5.6.7.8:2 iif eth0", 2, "sport must be in 0..65535"),
    ("tcp 1.2.3.999:1 > 5.6.7.8:2 iif eth0", 2, "src is not an IPv4 address"),
    ("tcp 1.2.3.4:1 > 5.6.7.8:2 iif eth9", 6, "iif 'eth9' is not a declared interface"),
    ("udp 1.2.3.4:1 > 5.6.7.8:2 iif eth0 mark 3", 8, "mark is only for local packets"),
    ("udp 1.2.3.4:1 > 5.6.7.8:2 iif eth0 uid 3", 8, "uid is only for local packets"),
    ("icmp 1.2.3.4 > 5.6.7.8 iif eth0 flags S", 8, "flags is only for tcp packets"),
    ("icmp 1.2.3.4:7 > 5.6.7.8 iif eth0", 2, "sport is only for tcp and udp packets"),
    ("udp 1.2.3.4:1 > 5.6.7.8:2 iif eth0 type 8", 8, "icmp_type is only for icmp"),
    ("tcp 1.2.3.4:1 > 5.6.7.8:2 iif eth0 flags Q", 8, "'Q' is not a flag"),
    ("tcp 1.2.3.4:1 > 5.6.7.8:2 iif eth0 ttl 300", 8, "ttl must be in 0..255"),
    ("tcp 1.2.3.4:1 > 5.6.7.8:2 iif eth0 length 10", 8, "length must be in 20..65535"),
    ("tcp 1.2.3.4:1 > 5.6.7.8:2 iif eth0 options [mss 99999]", 8, "mss: 99999 is out"),
    ("icmp 1.2.3.4 > 5.6.7.8 iif eth0 type 300", 8, "icmp_type must be in 0..255"),
])
def test_the_scenario_rules_name_the_word(text, word, says):
    err = refused(text)
    assert err.word == word and says in str(err), str(err)


def test_missing_ports_say_how_to_give_them():
    err = refused("tcp 1.2.3.4 > 5.6.7.8 iif eth0")
    assert err.word == 0 and "a tcp packet needs sport (give SRC:PORT > DST:PORT" in str(err)


def test_times_must_not_decrease_across_sends():
    err = refused("udp 1.2.3.4:1 > 5.6.7.8:2 iif eth0 time 2",
                  "udp 1.2.3.4:1 > 5.6.7.8:2 iif eth0 time 1")
    assert err.word == 8 and "is before the previous packet's time 2" in str(err)
    assert str(err).startswith("--send 'udp 1.2.3.4:1 > 5.6.7.8:2 iif eth0 time 1'")


def test_a_long_text_is_cut_in_the_message():
    err = refused("tcp 1.2.3.4:1 > 5.6.7.8:2 iif eth0 " + "ttl 1 " * 40)
    assert len(str(err).split(": word")[0]) < 90
