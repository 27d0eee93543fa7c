"""A local packet's output route lookup and its source (issue 15, Fidelity).

Expected values are the kernel's (Linux 6.18, checked in a namespace with a UDP socket
and a raw socket, bound and unbound; `ip route get ... from/oif` in
tests/test_route_get_live.py; the whole walk in
tests/kernel/scenarios/route-output-bound-source.toml, recorded and verified live).
"""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import pytest

from kptui.engine.debugger import Debugger
from kptui.engine.events import Fate, RouteDecision
from kptui.engine.packet import Packet
from kptui.engine.scenario import load_scenario
from kptui.engine.walk import walk

SCENARIOS = Path(__file__).parent / "kernel" / "scenarios"
BOX = (SCENARIOS / "route-output-bound-source.toml").read_text()


def box():
    return load_scenario(BOX, file="b.toml").build_box()


def local(src: str, dst: str = "198.51.100.200") -> Packet:
    return Packet.build(proto="udp", src=src, dst=dst, sport=5000, dport=53)


def walked(pkt: Packet) -> tuple[RouteDecision, Fate]:
    events = list(walk(box(), pkt, index=0))
    route = next(e for e in events if isinstance(e, RouteDecision))
    return route, events[-1]


@pytest.mark.parametrize(("src", "table", "iface"), [
    ("192.0.2.1", "100", "eth0"),  # bound: `ip rule from 192.0.2.1 lookup 100`
    ("198.51.100.1", "main", "eth1"),  # bound, no rule from it
    ("0.0.0.0", "main", "eth1"),  # unbound: the route picks the source
    ("192.0.2.77", "main", "eth1"),  # not the box's: a raw socket's header, no source
])
def test_a_bound_source_is_routed_with_it(src, table, iface):
    route, fate = walked(local(src))
    assert (route.table, fate.action, fate.iface) == (table, "transmit", iface)


def test_the_route_says_why_it_has_its_source():
    route, _ = walked(local("192.0.2.1"))
    assert route.explain[0] == ("sent from a socket bound to 192.0.2.1, an address of this "
                                "box: looked up from 192.0.2.1 (ip rule from 192.0.2.1 applies)")
    assert "no socket can be bound to it" in walked(local("192.0.2.77"))[0].explain[0]
    assert "unbound socket" in walked(local("0.0.0.0"))[0].explain[0]


def test_bound_errors_are_the_senders():
    # table 100's unreachable route: EHOSTUNREACH; `from 192.0.2.2 prohibit`: EACCES
    assert walked(local("192.0.2.1", "203.0.113.9"))[1].by == "routing:unreachable"
    assert walked(local("0.0.0.0", "203.0.113.9"))[1].iface == "eth1"
    assert walked(local("192.0.2.2"))[1].by == "routing:prohibit"


def test_a_loopback_source_may_not_leave_by_another_device():
    # __mkroute_output: EINVAL (a socket bound to 127.0.0.1 sending to 8.8.8.8)
    route, fate = walked(local("127.0.0.1"))
    assert fate.action == "drop" and fate.by == "martian"
    assert "loopback address" in route.explain[-1]


def test_a_received_packet_with_a_box_source_is_not_bound():
    pkt = Packet.build(proto="udp", src="192.0.2.1", dst="198.51.100.200", sport=1, dport=2,
                       iif="eth0")
    assert box().bound_source(pkt) is None


@pytest.mark.parametrize(("dst", "src", "oif", "kind", "dev"), [
    # with an oif, any lookup error is "on link" (ip_route_output_key_hash_rcu)
    ("203.0.113.9", "192.0.2.1", "eth0", "unicast", "eth0"),
    ("203.0.113.9", "192.0.2.1", "eth1", "unicast", "eth1"),
    ("198.51.100.200", "192.0.2.2", "eth1", "unicast", "eth1"),
    # a limited broadcast from an address: out of that address's device, no lookup
    ("255.255.255.255", "192.0.2.1", "", "broadcast", "eth0"),
    ("255.255.255.255", "", "eth0", "broadcast", "eth0"),
])
def test_output_lookups_with_a_source_or_an_oif(dst, src, oif, kind, dev):
    result, _ = box().route_get(IPv4Address(dst), src=IPv4Address(src) if src else None,
                                oif=oif)
    assert (result.kind, result.oif, result.gateway) == (kind, dev, "")


def test_a_limited_broadcast_has_no_gateway():
    result, text = box().route_get(IPv4Address("255.255.255.255"))
    assert text.startswith("broadcast 255.255.255.255 dev eth1 src 198.51.100.1 uid 0")


def test_the_debugger_walks_a_reply_to_a_dropped_packet_as_not_sent():
    scenario = load_scenario((SCENARIOS / "reply-to-dropped.toml").read_text(), file="r.toml")
    dbg = Debugger.for_scenario(scenario)
    fates = []
    while dbg.state != "finished":
        assert dbg.cont().reason == "fate"
        assert isinstance(dbg.current, Fate)
        fates.append((dbg.index, dbg.current.action, dbg.current.by))
    assert [f for f in fates if f[0] in (1, 2)] == [(1, "error", "reply_to"),
                                                   (2, "error", "reply_to")]
    assert fates[-1] == (4, "transmit", "filter:FORWARD:rule:1")
