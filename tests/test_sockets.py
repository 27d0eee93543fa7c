"""The box's own sockets ([[sockets]]) and what -m socket and -j TPROXY do with them.

The lookups themselves are checked against Linux 6.18 by
tests/kernel/scenarios/ext-socket.toml; here: the scenario key refuses what bind(2)
would refuse, a match that changes the mark shows the change, and what kptui does not
model (the box's TCP connections, forwarding a packet TPROXY gave a socket) stops the
walk, named."""

from __future__ import annotations

import json

import pytest

from kptui.engine.errors import ParseError
from kptui.engine.run import run_scenario
from kptui.engine.scenario import load_scenario

HEAD = """\
name = "s"
setup = \"\"\"
ip route add 203.0.113.0/24 via 198.51.100.254
ip rule add fwmark 0x100/0x100 lookup 100
ip route add local 0.0.0.0/0 dev lo table 100
\"\"\"
iptables = \"\"\"
*mangle
:PREROUTING ACCEPT [0:0]
{rules}
COMMIT
\"\"\"
[sysctl]
"net.ipv4.ip_forward" = {forward}
[[interfaces]]
name = "eth0"
addresses = ["192.0.2.1/24"]
[[interfaces]]
name = "eth1"
addresses = ["198.51.100.1/24"]
"""


def scenario(rules: str = "", sockets: str = "", packets: str = "", forward: int = 1):
    return load_scenario(HEAD.format(rules=rules, forward=forward) + sockets + packets,
                         file="s.toml")


def sock(proto: str, local: str, **more: object) -> str:
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in more.items())
    return f'[[sockets]]\nproto = "{proto}"\nlocal = "{local}"\n{extra}'


def pkt(proto: str, dst: str, dport: int, sport: int = 40000, **more: object) -> str:
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in more.items())
    return (f'[[packets]]\niif = "eth1"\nproto = "{proto}"\nsrc = "203.0.113.9"\n'
            f'dst = "{dst}"\nsport = {sport}\ndport = {dport}\n{extra}')


@pytest.mark.parametrize("sockets,message", [
    (sock("sctp", "0.0.0.0:1"), "sockets.proto must be tcp or udp"),
    (sock("udp", "0.0.0.0:0"), "expected ADDR:PORT"),
    (sock("udp", "1.2.3:80"), "expected ADDR:PORT"),
    (sock("tcp", "0.0.0.0:80", remote="1.2.3.4:5"), "only a udp socket is connected here"),
    (sock("udp", "0.0.0.0:53") + sock("udp", "192.0.2.1:53"), "Address already in use"),
    (sock("udp", "0.0.0.0:53", colour="red"), "unknown key 'colour' in [[sockets]]"),
])
def test_the_sockets_key_refuses_what_bind_would_refuse(sockets, message):
    with pytest.raises(ParseError) as err:
        scenario(sockets=sockets).build_box()
    assert message in str(err.value)
    assert err.value.file == "s.toml" and err.value.line > 0


def test_a_foreign_address_needs_ip_transparent():
    with pytest.raises(ParseError) as err:
        scenario(sockets=sock("udp", "10.99.0.1:53")).build_box()
    assert "Cannot assign requested address" in str(err.value)
    scenario(sockets=sock("udp", "10.99.0.1:53", transparent=True)).build_box()


def test_restore_skmark_is_a_field_change_of_the_rule():
    sc = scenario("-A PREROUTING -p udp -m socket --restore-skmark",
                  sock("udp", "198.51.100.1:53", mark=7), pkt("udp", "198.51.100.1", 53))
    (result,) = run_scenario(sc)
    changes = [e for e in result.to_json()["events"] if e["kind"] == "field_change"
               and e["path"] == "meta.mark"]
    assert [(c["old"], c["new"], c["by"]) for c in changes] == \
        [(0, 7, "mangle:PREROUTING:rule:1")]


def test_a_second_tcp_packet_of_a_delivered_connection_is_not_guessed():
    # the first SYN reaches the listener; the kernel then holds a request socket for the
    # connection, which kptui does not model
    sc = scenario("-A PREROUTING -p tcp -m socket -j ACCEPT",
                  sock("tcp", "198.51.100.1:80"),
                  pkt("tcp", "198.51.100.1", 80) + pkt("tcp", "198.51.100.1", 80, flags="A"))
    first, second = (r.to_json()["fate"] for r in run_scenario(sc))
    assert first["action"] == "deliver"
    assert second["action"] == "error" and "TCP connection" in second["message"]


def test_forwarding_a_packet_tproxy_gave_a_socket_is_named():
    # no fwmark rule for 0x1: the packet would be forwarded with its socket
    sc = scenario("-A PREROUTING -p udp -j TPROXY --on-port 53 --tproxy-mark 0x1/0x1",
                  sock("udp", "0.0.0.0:53", transparent=True), pkt("udp", "192.0.2.9", 53))
    (result,) = run_scenario(sc)
    fate = result.to_json()["fate"]
    assert fate["action"] == "error" and "TPROXY gave a socket" in fate["message"]
