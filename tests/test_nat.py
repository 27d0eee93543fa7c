"""NAT (kptui/engine/nat.py, the NAT targets and the walk's nat hooks).

Expected results come from the real kernel: kernel 6.18 in a netns, through
the nat-* scenarios in tests/kernel/scenarios/ (recorded with `kptui verify
--record`), `conntrack -L` in the box namespace, and a capture of the ICMP
errors' quoted headers; where a test follows a kernel function instead, the
comment names it (net/netfilter/nf_nat_core.c unless said otherwise).
"""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import pytest

from kptui.engine.conntrack import CtTuple, Status
from kptui.engine.errors import ParseError
from kptui.engine.events import FieldChange, NatBinding, NatSkip
from kptui.engine.nat import MAP_IPS, PERSISTENT, NatRange, jhash2, pick_address
from kptui.engine.run import run_scenario
from kptui.engine.scenario import load_scenario

SCENARIOS = Path(__file__).parent / "kernel" / "scenarios"

HEAD = """
setup = \"\"\"
ip route add default via 198.51.100.254 dev eth1
\"\"\"
iptables = \"\"\"
{rules}
\"\"\"
[sysctl]
"net.ipv4.ip_forward" = 1
[[interfaces]]
name = "eth0"
addresses = ["192.0.2.1/24"]
[[interfaces]]
name = "eth1"
addresses = {eth1}
"""


def udp(src, dst, sport, dport, iif):
    return (f'[[packets]]\niif = "{iif}"\nproto = "udp"\nsrc = "{src}"\ndst = "{dst}"\n'
            f"sport = {sport}\ndport = {dport}\n")


def run(rules, *packets, eth1='["198.51.100.1/24"]', eth0='["192.0.2.1/24"]',
        route="via 198.51.100.254 dev eth1"):
    """Walk the packets through a two-interface router; (results, box)."""
    text = HEAD.format(rules=rules, eth1=eth1).replace(
        'addresses = ["192.0.2.1/24"]', f"addresses = {eth0}").replace(
        "via 198.51.100.254 dev eth1", route) + "\n".join(packets)
    scenario = load_scenario(text, file="t.toml")
    box = scenario.build_box()
    from kptui.engine.walk import walk

    results = []
    for i, spec in enumerate(scenario.packets):
        pkt = spec.build()
        results.append((list(walk(box, pkt, index=i)), pkt))
    return results, box


def scenario_run(name):
    path = SCENARIOS / f"{name}.toml"
    return list(run_scenario(load_scenario(path.read_text(), file=str(path))))


def bindings(events, manip=""):
    return [e for e in events if isinstance(e, NatBinding) and manip in ("", e.manip)]


def changes(events, by_prefix="nat:"):
    return [(e.path, str(e.new), e.by) for e in events
            if isinstance(e, FieldChange) and e.by.startswith(by_prefix)]


# -- port forward: DNAT, de-DNAT, ESTABLISHED ------------------------------------------


def test_port_forward_dnats_before_routing_and_restores_the_reply_source():
    # kernel corpus: nat-port-forward (kernel 6.18)
    syn, synack, ack = scenario_run("nat-port-forward")
    (b,) = bindings(syn.events, "DST")
    assert (b.manip, b.target, b.before, b.after) == ("DST", "DNAT", "203.0.113.2:8080",
                                                      "192.0.2.10:80")
    assert b.by == "nat:PREROUTING:rule:1" and b.changed
    assert b.describe().startswith("DNAT binding: 203.0.113.2:8080 -> 192.0.2.10:80")
    assert changes(syn.events) == [("ip.dst", "192.0.2.10", "nat:PREROUTING:DNAT"),
                                   ("tcp.dport", "80", "nat:PREROUTING:DNAT")]
    # the reply gets its public face back at POSTROUTING, after FORWARD
    assert changes(synack.events) == [("ip.src", "203.0.113.2", "nat:POSTROUTING:de-DNAT"),
                                      ("tcp.sport", "8080", "nat:POSTROUTING:de-DNAT")]
    # ESTABLISHED: the nat chain is skipped, the binding still applies
    assert any(isinstance(e, NatSkip) for e in ack.events)
    assert not bindings(ack.events)
    assert ack.to_json()["out"]["dst"] == "192.0.2.10"


def test_conntrack_list_shows_the_nated_reply_tuple():
    # `conntrack -L` in the box after a SNAT'd UDP query (kernel 6.18, conntrack 1.4.7):
    # udp 17 29 src=192.0.2.10 dst=198.51.100.7 sport=5353 dport=53 [UNREPLIED]
    #   src=198.51.100.7 dst=198.51.100.1 sport=53 dport=5353 mark=0 use=1
    rules = ("*nat\n:POSTROUTING ACCEPT [0:0]\n"
             "-A POSTROUTING -o eth1 -j SNAT --to-source 198.51.100.1\nCOMMIT")
    _, box = run(rules, udp("192.0.2.10", "198.51.100.7", 5353, 53, "eth0"))
    assert box.conntrack.list_lines() == [
        "udp      17 30 src=192.0.2.10 dst=198.51.100.7 sport=5353 dport=53 [UNREPLIED] "
        "src=198.51.100.7 dst=198.51.100.1 sport=53 dport=5353 mark=0 use=1"]
    (conn,) = box.conntrack.entries()
    assert conn.status & Status.SRC_NAT and conn.status & Status.SRC_NAT_DONE
    assert not conn.status & Status.DST_NAT and conn.status & Status.DST_NAT_DONE


# -- clash resolution --------------------------------------------------------------------


def test_second_host_with_the_same_source_port_gets_the_free_port():
    # kernel corpus: nat-snat-port-clash (one free port: the kernel's random start agrees)
    results = scenario_run("nat-snat-port-clash")
    first, second = (bindings(r.events, "SRC")[0] for r in results[:2])
    assert first.after == "198.51.100.1:40000" and "no clash" in first.why
    assert second.after == "198.51.100.1:40001"
    assert "clash resolved to port 40001" in second.why
    assert [r.to_json()["out"]["dst"] for r in results[2:]] == ["192.0.2.11", "192.0.2.10"]


def test_null_binding_clash_takes_a_new_port_and_says_what_kptui_assumed():
    # nf_nat_l4proto_unique_tuple: no port range, original port >= 1024 -> 1024-65535;
    # the kernel starts at a random offset, kptui at the bottom and says so.
    rules = ("*nat\n:POSTROUTING ACCEPT [0:0]\n"
             "-A POSTROUTING -s 192.0.2.0/24 -o eth1 -j SNAT --to-source 198.51.100.1\n"
             "COMMIT")
    results, box = run(rules, udp("192.0.2.10", "203.0.113.53", 40000, 53, "eth0"),
                       udp("198.51.100.1", "203.0.113.53", 40000, 53, "local"))
    (null,) = bindings(results[1][0], "SRC")
    assert (null.target, null.manip) == ("null", "SRC")
    assert null.after == "198.51.100.1:1024" and null.changed
    assert "random offset" in null.assumed and "1024-65535" in null.assumed
    assert null.describe().startswith("null SRC binding: 198.51.100.1:40000 -> "
                                      "198.51.100.1:1024")
    assert results[1][1].sport == 1024


def test_low_ports_search_their_own_ranges():
    # nf_nat_l4proto_unique_tuple: <512 -> 1-511, 512-1023 -> 600-1023
    rules = ("*nat\n:POSTROUTING ACCEPT [0:0]\n"
             "-A POSTROUTING -o eth1 -j SNAT --to-source 198.51.100.1\nCOMMIT")
    results, _ = run(rules, udp("192.0.2.10", "203.0.113.53", 123, 123, "eth0"),
                     udp("192.0.2.11", "203.0.113.53", 123, 123, "eth0"),
                     udp("192.0.2.10", "203.0.113.53", 700, 53, "eth0"),
                     udp("192.0.2.11", "203.0.113.53", 700, 53, "eth0"))
    ports = [pkt.sport for _, pkt in results]
    assert ports == [123, 1, 700, 600]


def test_dnat_never_changes_the_port_without_a_range_and_searches_ranges_from_the_bottom():
    # kernel corpus: nat-dnat-port-range (a DST search starts at offset 0, like the kernel)
    results = scenario_run("nat-dnat-port-range")
    assert [bindings(r.events, "DST")[0].after for r in results[:2]] == ["192.0.2.10:80",
                                                                  "192.0.2.10:81"]
    assert [r.to_json()["out"]["sport"] for r in results[2:]] == [8081, 8080]


def test_find_appropriate_src_reuses_the_mapping_of_the_same_source():
    # kernel corpus: nat-snat-address-range packets 18 and 19
    results = scenario_run("nat-snat-address-range")
    first = bindings(results[0].events, "SRC")[0]
    for r in results[18:]:
        b = bindings(r.events, "SRC")[0]
        assert b.after == first.after and "find_appropriate_src" in b.why


def test_address_hash_matches_the_kernels_choices():
    # find_best_ips_proto: jhash2 over the 4-word source, seeded with the destination;
    # choices recorded on kernel 6.18 (nat-snat-address-range packets 0-3)
    rng = NatRange(MAP_IPS, IPv4Address("198.51.100.10"), IPv4Address("198.51.100.13"))
    got = [str(pick_address(CtTuple(IPv4Address(s), IPv4Address(d), 17, 1, 53), rng, "SRC"))
           for s, d in (("192.0.2.10", "203.0.113.53"), ("192.0.2.11", "203.0.113.54"))]
    assert got == ["198.51.100.13", "198.51.100.13"]
    persistent = NatRange(MAP_IPS | PERSISTENT, rng.min_addr, rng.max_addr)
    assert str(pick_address(CtTuple(IPv4Address("192.0.2.12"), IPv4Address("203.0.113.200"),
                                    17, 1, 53), persistent, "SRC")) == "198.51.100.11"
    assert jhash2([0, 0, 0, 0], 0) == jhash2([0, 0, 0, 0], 0)  # deterministic: no seed


# -- ICMP errors -------------------------------------------------------------------------


def test_icmp_error_for_a_snat_flow_gets_inner_and_outer_headers_translated():
    # kernel corpus: nat-icmp-error-snat; the quoted header captured on the wire
    # (kernel 6.18): inner 192.0.2.10:5353 -> 203.0.113.53:53, outer dst 192.0.2.10
    _, error = scenario_run("nat-icmp-error-snat")
    assert not bindings(error.events)
    assert "nat:PREROUTING:rule:1" not in error.to_json()["trace"]  # no nat chain
    inner = error.packet.l4.inner
    assert (str(inner.ip.src), inner.sport, str(error.packet.ip.dst)) == (
        "192.0.2.10", 5353, "192.0.2.10")
    assert {by for _, _, by in changes(error.events)} == {
        "nat:PREROUTING:icmp-error-de-SNAT"}


def test_icmp_error_from_a_port_forwards_server_gets_the_public_face():
    # kernel corpus: nat-icmp-error-dnat; captured: outer src 203.0.113.2, inner
    # 198.51.100.7:5000 -> 203.0.113.2:5353
    _, error = scenario_run("nat-icmp-error-dnat")
    pkt = error.packet
    assert str(pkt.ip.src) == "203.0.113.2"
    assert (str(pkt.l4.inner.ip.dst), pkt.l4.inner.dport) == ("203.0.113.2", 5353)


# -- null bindings and skipping ----------------------------------------------------------


def test_null_binding_keeps_the_tuple_without_nat_status():
    # kernel corpus: nat-null-binding (no --ctstate SNAT/DNAT match; the reply skips nat)
    query, answer = scenario_run("nat-null-binding")
    nulls = bindings(query.events)
    assert [(b.manip, b.target, b.changed) for b in nulls] == [("DST", "null", False),
                                                               ("SRC", "null", False)]
    assert "kept" in nulls[1].describe()
    assert query.to_json()["trace"] == ["nat:PREROUTING:policy:ACCEPT",
                                        "filter:FORWARD:policy:ACCEPT",
                                        "nat:POSTROUTING:policy:ACCEPT"]
    assert answer.to_json()["trace"] == ["filter:FORWARD:rule:3",
                                         "filter:FORWARD:policy:ACCEPT"]


def test_a_hook_without_nat_chain_still_binds_and_translates():
    # the first nat base chain registers the nat hook at all four hooks: SNAT in
    # POSTROUTING alone de-SNATs replies at PREROUTING (kernel corpus: nat-snat-tcp)
    _, synack, _ = scenario_run("nat-snat-tcp")
    assert changes(synack.events) == [("ip.dst", "192.0.2.10", "nat:PREROUTING:de-SNAT")]
    assert synack.to_json()["fate"]["iface"] == "eth0"


# -- each target -------------------------------------------------------------------------


def test_masquerade_takes_the_address_towards_the_next_hop_not_the_route_src():
    # kernel corpus: nat-masquerade-udp (inet_select_addr(out, nexthop, universe))
    query, answer, _ = scenario_run("nat-masquerade-udp")
    (b,) = bindings(query.events, "SRC")
    assert b.target == "MASQUERADE" and b.after == "198.51.100.129:5353"
    assert "route's src is ignored" in b.range
    assert answer.to_json()["out"]["dst"] == "192.0.2.10"


def test_masquerade_without_any_address_drops():
    # nf_nat_masquerade_ipv4: inet_select_addr finds no universe-scope address on the
    # out device nor on any other (127.0.0.1 is host scope): "ate my IP address", NF_DROP
    rules = "*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o eth1 -j MASQUERADE\nCOMMIT"
    results, _ = run(rules, udp("192.0.2.10", "203.0.113.53", 5353, 53, "eth0"),
                     eth0="[]", eth1="[]", route="dev eth1")
    events = results[0][0]
    assert (events[-1].action, events[-1].by) == ("drop", "nat:POSTROUTING:rule:1")
    assert "ate my IP address" in [e for e in events if e.kind == "target"][0].detail


def test_masquerade_of_a_zero_source_is_left_to_the_null_binding():
    # nf_nat_masquerade_ipv4: original source 0.0.0.0 -> NF_ACCEPT without a binding
    from kptui.engine.nat import NatHook

    _, box = run("*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT")
    from kptui.engine.conntrack import Conn
    from kptui.engine.iptables.targets import MasqueradeTarget
    from kptui.engine.packet import Packet

    pkt = Packet.build("udp", src="0.0.0.0", dst="203.0.113.53", sport=68, dport=67)
    tup = CtTuple(IPv4Address(0), IPv4Address("203.0.113.53"), 17, 68, 67)
    pkt.meta.ct, pkt.meta.ctinfo, pkt.meta.oif = Conn(tup, tup.invert()), "NEW", "eth1"
    hook = NatHook(box, pkt, stage="nat:POSTROUTING", hook="POSTROUTING", nexthop=None)
    verdict, detail = hook.bind(MasqueradeTarget())
    assert verdict == "ACCEPT" and "0.0.0.0" in detail and not hook.pending


def test_masquerade_oif_change_kills_the_connection():
    # nf_nat_oif_changed; kernel 6.18 drops packet 1 in the nat hook (verify sees it pass
    # its prenat chain and never reach postdone) and packet 2 is NEW again
    first, changed, again = scenario_run("nat-masquerade-oif-change")
    assert (changed.fate.action, changed.fate.by) == ("drop", "nat:POSTROUTING")
    assert "nf_nat_oif_changed" in changed.fate.message
    assert again.to_json()["out"]["src"] == "203.0.113.1"


def test_redirect_in_prerouting_uses_the_first_address_and_output_uses_loopback():
    # kernel corpus: nat-redirect-prerouting, nat-redirect-output (nf_nat_redirect_ipv4)
    query, answer, _ = scenario_run("nat-redirect-prerouting")
    assert bindings(query.events, "DST")[0].after == "192.0.2.1:5353"
    assert answer.to_json()["out"]["src"] == "203.0.113.53"
    (local,) = scenario_run("nat-redirect-output")
    assert bindings(local.events, "DST")[0].after == "127.0.0.1:3128"
    assert [e.lookup for e in local.events if e.kind == "route"] == ["output", "reroute",
                                                                     "input"]


def test_redirect_on_an_interface_without_address_drops():
    rules = ("*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -i eth1 -j REDIRECT\nCOMMIT")
    results, _ = run(rules, udp("203.0.113.9", "198.51.100.1", 1, 53, "eth1"), eth1="[]",
                     route="dev eth1")
    fate = results[0][0][-1]
    assert (fate.action, fate.by) == ("drop", "nat:PREROUTING:rule:1")


def test_netmap_maps_the_network_bits_both_ways():
    # kernel corpus: nat-netmap
    results = scenario_run("nat-netmap")
    outs = [(r.to_json()["out"]["src"], r.to_json()["out"]["dst"]) for r in results]
    assert outs == [("198.51.100.7", "192.0.2.44"), ("203.0.113.44", "198.51.100.7"),
                    ("203.0.113.45", "198.51.100.7"), ("198.51.100.7", "192.0.2.45")]


def test_dnat_in_output_reroutes_every_packet_of_the_flow():
    # kernel corpus: nat-dnat-output-flow (nf_nat_ipv4_local_fn), route-dnat-output-reroute
    syn, synack, ack = scenario_run("nat-dnat-output-flow")
    for r in (syn, ack):
        assert [e.lookup for e in r.events if e.kind == "route"] == ["output", "reroute"]
        assert r.fate.iface == "eth0"
    # filter INPUT sees the real server; nat INPUT then restores the public source
    assert synack.to_json()["trace"][0] == "filter:INPUT:rule:1"
    assert changes(synack.events)[0] == ("ip.src", "198.51.100.200", "nat:INPUT:de-DNAT")


def test_snat_in_input_and_the_answer_de_snated_in_output():
    # kernel corpus: nat-snat-input
    delivered, answer = scenario_run("nat-snat-input")
    assert str(delivered.packet.ip.src) == "192.0.2.1"
    assert answer.to_json()["out"]["dst"] == "198.51.100.7"
    assert answer.fate.iface == "eth1"


@pytest.mark.parametrize("rule,message", [
    # iptables 1.8.9, checked in a netns
    ("-A POSTROUTING -j SNAT --to-source 1.1.1.1:1000",
     "Need TCP, UDP, SCTP or DCCP with port specification"),
    ("-A POSTROUTING -j MASQUERADE --to-ports 1000",
     "Need TCP, UDP, SCTP or DCCP with port specification"),
    ("-A PREROUTING -j DROP", 'The "nat" table is not intended for filtering'),
    ("-A PREROUTING -j SNAT --to-source 1.1.1.1", "not allowed"),
])
def test_nat_rules_the_kernel_refuses(rule, message):
    from kptui.engine.iptables import Ruleset, restore

    with pytest.raises(ParseError, match=message):
        restore(Ruleset(), f"*nat\n{rule}\nCOMMIT\n", file="t")


def test_netmap_saves_the_network_like_iptables_save():
    from kptui.engine.iptables import Ruleset, restore, to_save

    ruleset = Ruleset()
    restore(ruleset, "*nat\n-A POSTROUTING -j NETMAP --to 10.0.0.1/24\nCOMMIT\n", file="t")
    assert "-A POSTROUTING -j NETMAP --to 10.0.0.0/24" in to_save(ruleset)
