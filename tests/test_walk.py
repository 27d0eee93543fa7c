"""The walk through the modern profile, end to end from scenario text.

Expected results: checked on this machine's kernel (6.18, iptables 1.8.9
nf_tables) in network namespaces with `xtables-monitor --trace` unless a
comment cites KERNEL-NOTES.md (compiled from kernel source).
"""

import json

from kptui.engine.run import run_scenario
from kptui.engine.scenario import load_scenario

BASE = """
name = "t"
setup = \"\"\"
ip route add default via 203.0.113.1 dev eth1
\"\"\"
iptables = \"\"\"
{rules}
\"\"\"
[sysctl]
"net.ipv4.ip_forward" = {forward}
[[interfaces]]
name = "eth0"
addresses = ["192.0.2.1/24"]
[[interfaces]]
name = "eth1"
addresses = ["203.0.113.2/24"]
{packets}
"""

FWD = """
[[packets]]
iif = "eth0"
proto = "udp"
src = "192.0.2.10"
dst = "198.51.100.7"
sport = 1000
dport = 53
"""

LOCAL_IN = """
[[packets]]
iif = "eth0"
proto = "tcp"
src = "192.0.2.10"
dst = "192.0.2.1"
sport = 40000
dport = 22
"""


def run(rules="", packets=FWD, forward=1):
    text = BASE.format(rules=rules, packets=packets, forward=forward)
    results = list(run_scenario(load_scenario(text, file="t.toml")))
    # every result must serialise as DESIGN.md's --json line
    for r in results:
        json.dumps(r.to_json())
    return [r.to_json(with_events=False) for r in results]


def test_forwarded_packet_leaves_with_ttl_decremented():
    # KERNEL-NOTES 5: ip_forward() decrements TTL before the FORWARD hook.
    (r,) = run()
    assert r["fate"]["action"] == "transmit"
    assert r["fate"]["iface"] == "eth1"
    assert r["out"]["ttl"] == 63
    assert r["trace"] == []


def test_forwarding_off_drops_without_netfilter_forward():
    (r,) = run(rules="*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT", forward=0)
    assert r["fate"] == {"action": "drop", "by": "ip_forward",
                         "message": r["fate"]["message"]}
    assert r["trace"] == []  # FORWARD never ran


def test_ttl_one_is_dropped_before_forward_chain():
    packets = FWD + "ttl = 1\n"
    (r,) = run(rules="*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT", packets=packets)
    assert r["fate"]["action"] == "drop"
    assert r["fate"]["by"] == "ttl"
    assert r["trace"] == []


def test_forward_policy_drop_is_the_fate_and_trace():
    (r,) = run(rules="*filter\n:FORWARD DROP [0:0]\nCOMMIT")
    assert r["fate"]["action"] == "drop"
    assert r["fate"]["by"] == "filter:FORWARD:policy"
    assert r["trace"] == ["filter:FORWARD:policy:DROP"]


def test_local_delivery_passes_input_chain():
    rules = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT"
    (r,) = run(rules=rules, packets=LOCAL_IN)
    assert r["fate"]["action"] == "deliver"
    assert r["fate"]["by"] == "filter:INPUT:rule:1"
    assert r["trace"] == ["filter:INPUT:rule:1"]
    assert r["out"]["ttl"] == 64  # delivered, not forwarded


def test_mark_from_mangle_prerouting_is_seen_by_filter_input():
    rules = (
        "*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j MARK --set-mark 0x7\nCOMMIT\n"
        "*filter\n:INPUT DROP [0:0]\n-A INPUT -m mark --mark 0x7 -j ACCEPT\nCOMMIT"
    )
    (r,) = run(rules=rules, packets=LOCAL_IN)
    assert r["trace"] == ["mangle:PREROUTING:rule:1", "mangle:PREROUTING:policy:ACCEPT",
                          "filter:INPUT:rule:1"]
    assert r["fate"]["action"] == "deliver"
    assert r["out"]["mark"] == 7


def test_user_chain_falling_off_its_end_is_not_traced():
    # Checked on kernel 6.18: nft's trace logs no line when a user chain runs out of rules.
    rules = (
        "*filter\n:INPUT ACCEPT [0:0]\n:sub - [0:0]\n-A INPUT -j sub\n"
        "-A sub -p udp -j DROP\nCOMMIT"
    )
    (r,) = run(rules=rules, packets=LOCAL_IN)
    assert r["trace"] == ["filter:INPUT:rule:1", "filter:INPUT:policy:ACCEPT"]


def test_goto_returns_to_the_last_jump_caller():
    # Checked on kernel 6.18 (trace: INPUT rule 1 JUMP sub, sub rule 1 GOTO sub2,
    # sub2 rule 1 RETURN, INPUT rule 2 ACCEPT).
    rules = (
        "*filter\n:INPUT DROP [0:0]\n:sub - [0:0]\n:sub2 - [0:0]\n"
        "-A INPUT -p tcp -j sub\n-A INPUT -p tcp -j ACCEPT\n"
        "-A sub -p tcp -g sub2\n-A sub -j DROP\n"
        "-A sub2 -p tcp -m tcp --dport 22 -j RETURN\n-A sub2 -j DROP\nCOMMIT"
    )
    (r,) = run(rules=rules, packets=LOCAL_IN)
    assert r["trace"] == ["filter:INPUT:rule:1", "filter:sub:rule:1", "filter:sub2:rule:1",
                          "filter:INPUT:rule:2"]
    assert r["fate"]["action"] == "deliver"


def test_chains_not_declared_do_not_exist():
    # Checked on iptables-nft 1.8.9: restoring "*filter" with only ":INPUT" creates no
    # FORWARD chain, so a forwarded packet has no filter:FORWARD:policy trace line.
    (r,) = run(rules="*filter\n:INPUT DROP [0:0]\nCOMMIT")
    assert r["trace"] == []
    assert r["fate"]["action"] == "transmit"


def test_local_packet_to_local_address_loops_back_through_lo():
    packets = """
[[packets]]
iif = "local"
proto = "udp"
src = "192.0.2.1"
dst = "203.0.113.2"
sport = 1000
dport = 53
"""
    rules = ("*filter\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
             "-A INPUT -i lo -j ACCEPT\nCOMMIT")
    (r,) = run(rules=rules, packets=packets)
    assert r["trace"] == ["filter:OUTPUT:policy:ACCEPT", "filter:INPUT:rule:1"]
    assert r["fate"]["action"] == "deliver"


def test_local_output_takes_the_default_route():
    packets = """
[[packets]]
iif = "local"
proto = "icmp"
src = "203.0.113.2"
dst = "198.51.100.7"
icmp_type = 8
"""
    (r,) = run(rules="*filter\n:OUTPUT ACCEPT [0:0]\nCOMMIT", packets=packets)
    assert r["fate"]["action"] == "transmit"
    assert r["fate"]["iface"] == "eth1"
    assert r["out"]["ttl"] == 64
    assert r["trace"] == ["filter:OUTPUT:policy:ACCEPT"]


def test_no_route_drops_with_routing_reason():
    text = BASE.format(rules="", packets=FWD, forward=1).replace(
        "ip route add default via 203.0.113.1 dev eth1", "")
    (r,) = [x.to_json() for x in run_scenario(load_scenario(text, file="t.toml"))]
    assert r["fate"]["action"] == "drop"
    assert r["fate"]["by"] == "routing:unreachable"


def test_unsupported_target_ends_in_an_explicit_error_not_a_guess():
    rules = ("*raw\n:PREROUTING ACCEPT [0:0]\n"
             "-A PREROUTING -p udp -j CT --zone 1\nCOMMIT")
    (r,) = run(rules=rules)
    assert r["fate"]["action"] == "error"
    assert "unsupported yet" in r["fate"]["message"]
    assert "CT" in r["fate"]["message"]


NAT_EMPTY = "*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT"


def test_nat_chains_do_not_run_when_nothing_uses_conntrack():
    # Checked on kernel 6.18 + iptables-nft 1.8.9 (tests/kernel/scenarios/path-nat-empty):
    # conntrack is registered in a netns only when a rule needs it (nf_ct_netns_get),
    # and the nat hooks skip packets without a conntrack entry, so the trace is empty.
    text = BASE.format(rules=NAT_EMPTY, packets=FWD, forward=1)
    (result,) = run_scenario(load_scenario(text, file="t.toml"))
    r = result.to_json()
    assert r["trace"] == []
    assert r["fate"]["by"] == "routing"
    notes = [e["text"] for e in r["events"] if e["kind"] == "note"]
    assert any("not traversed" in n for n in notes)


def test_a_conntrack_user_anywhere_makes_the_nat_chains_run():
    # Checked on kernel 6.18 (path-nat-tracked, and throwaway variants): a MASQUERADE
    # rule that never matches, a `-m state` rule in an unreferenced user chain, or
    # CT --zone turn conntrack on; the first packet then meets every nat policy.
    masq = NAT_EMPTY.replace("COMMIT", "-A POSTROUTING -s 198.51.100.0/24 -j MASQUERADE\nCOMMIT")
    unused_state = NAT_EMPTY + ("\n*filter\n:unused - [0:0]\n"
                                "-A unused -m state --state INVALID -j DROP\nCOMMIT")
    zone = NAT_EMPTY + "\n*raw\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -j CT --zone 1\nCOMMIT"
    for rules in (masq, unused_state, zone):
        (r,) = run(rules=rules)
        assert r["trace"] == ["nat:PREROUTING:policy:ACCEPT", "nat:POSTROUTING:policy:ACCEPT"]
        assert r["fate"]["by"] == "nat:POSTROUTING:policy"


def test_ct_notrack_does_not_turn_conntrack_on():
    # xt_CT: --notrack returns before nf_ct_netns_get (checked on kernel 6.18).
    rules = NAT_EMPTY + "\n*raw\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -j CT --notrack\nCOMMIT"
    (r,) = run(rules=rules)
    assert r["trace"] == []


MARTIANS = """
[[packets]]
iif = "eth0"
proto = "udp"
src = "192.0.2.10"
dst = "127.0.0.1"
sport = 1000
dport = 53
[[packets]]
iif = "eth0"
proto = "udp"
src = "203.0.113.2"
dst = "192.0.2.1"
sport = 1000
dport = 53
[[packets]]
iif = "eth0"
proto = "udp"
src = "198.51.100.7"
dst = "192.0.2.1"
sport = 1000
dport = 53
"""


def test_martians_and_rp_filter_are_told_apart():
    # Checked on kernel 6.18 (path-martian-loopback, path-martian-local-source,
    # path-rpf-strict): loopback from outside and a local source address are martians
    # (-EINVAL, no counter); a failed strict reverse-path check is -EXDEV, counted as
    # IPReversePathFilter.
    text = BASE.format(rules="", packets=MARTIANS, forward=1).replace(
        '[sysctl]\n', '[sysctl]\n"net.ipv4.conf.all.rp_filter" = 1\n')
    loop, local_src, asym = [r.to_json() for r in run_scenario(load_scenario(text, file="t"))]
    assert (loop["fate"]["action"], loop["fate"]["by"]) == ("drop", "martian")
    assert (local_src["fate"]["action"], local_src["fate"]["by"]) == ("drop", "martian")
    assert (asym["fate"]["action"], asym["fate"]["by"]) == ("drop", "rp_filter")


def test_forwarded_packet_too_big_for_the_out_mtu():
    # ip_forward: TTL first, then ip_exceeds_mtu (only with DF) before FORWARD; checked on
    # kernel 6.18 (path-forward-mtu): dropped with ttl untouched, counted as FragFails;
    # without DF it is forwarded (and fragmented on output).
    rules = "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j LOG\nCOMMIT"
    text = BASE.format(rules=rules, packets=FWD + "length = 1400\n", forward=1).replace(
        "ip route add default", "ip link set eth1 mtu 1280\nip route add default")
    (r,) = [x.to_json(with_events=False) for x in run_scenario(load_scenario(text, file="t"))]
    assert (r["fate"]["action"], r["fate"]["by"]) == ("drop", "mtu")
    assert r["out"]["ttl"] == 64 and r["trace"] == []
    (r,) = [x.to_json(with_events=False)
            for x in run_scenario(load_scenario(text.replace("length = 1400", "length = 1400\n"
                                                             "df = false"), file="t"))]
    assert (r["fate"]["action"], r["fate"]["iface"]) == ("transmit", "eth1")
    assert r["out"]["ttl"] == 63
    # DF but small enough: forwarded
    (r,) = [x.to_json(with_events=False)
            for x in run_scenario(load_scenario(text.replace("1400", "1280"), file="t"))]
    assert r["fate"]["action"] == "transmit"


STATEFUL_NAT = """*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -p udp
COMMIT
*filter
:FORWARD DROP [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -i eth0 -m conntrack --ctstate NEW -j ACCEPT
COMMIT"""

REPLY = """
[[packets]]
iif = "eth1"
proto = "udp"
src = "198.51.100.7"
dst = "192.0.2.10"
sport = 53
dport = 1000
"""


def events_of(rules, packets):
    text = BASE.format(rules=rules, packets=packets, forward=1)
    scenario = load_scenario(text, file="t.toml")
    box = scenario.build_box()
    from kptui.engine.walk import walk

    out = []
    for index, spec in enumerate(scenario.packets):
        pkt = spec.build()
        out.append((list(walk(box, pkt, index=index)), pkt))
    return out, box


def test_conntrack_stages_say_what_they_did():
    # ct-nat-first-packet-only / ct-udp-flow (checked on kernel 6.18): the query
    # creates the entry, the answer finds it in the REPLY direction, and only the
    # first packet traverses the nat chains.
    (first, q), (second, a) = events_of(STATEFUL_NAT, FWD + REPLY)[0]
    kinds = [e.kind for e in first]
    assert kinds.index("conntrack_lookup") < kinds.index("rule") < kinds.index(
        "conntrack_confirm")
    lookup = next(e for e in first if e.kind == "conntrack_lookup")
    assert lookup.describe().startswith("entry created: NEW, udp ")
    confirm = next(e for e in first if e.kind == "conntrack_confirm")
    assert "now in the conntrack table" in confirm.describe()
    found = next(e for e in second if e.kind == "conntrack_lookup")
    assert found.describe().startswith("found in the REPLY direction: ESTABLISHED")
    skip = next(e for e in second if e.kind == "nat_skip")
    assert skip.describe().startswith("nat table skipped: not the first packet")
    assert not any(e.kind == "conntrack_confirm" for e in second)
    assert (q.get("meta.ctstate"), a.get("meta.ctstate")) == ("NEW", "ESTABLISHED")
    assert a.meta.ctinfo == "ESTABLISHED_REPLY"


def test_a_first_packet_dropped_leaves_no_entry():
    # ct-dropped-first-packet: confirmation happens at the end of POSTROUTING only
    rules = STATEFUL_NAT.replace("-A FORWARD -i eth0", "-A FORWARD -i eth9")
    results, box = events_of(rules, FWD)
    assert results[0][0][-1].action == "drop"
    assert box.conntrack.entries() == []


def test_looped_back_packet_keeps_its_entry():
    # ct-loopback-null-binding (kernel 6.18): created in OUTPUT, confirmed in POSTROUTING,
    # kept on the way in; no nat POSTROUTING chain, yet the null SRC binding is made there
    rules = ("*nat\n:OUTPUT ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n-A OUTPUT -p udp\nCOMMIT\n"
             "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m state --state NEW\nCOMMIT")
    local = FWD.replace('iif = "eth0"', 'iif = "local"').replace(
        'src = "192.0.2.10"', 'src = "192.0.2.1"').replace(
        'dst = "198.51.100.7"', 'dst = "192.0.2.1"')
    ((events, pkt),), box = events_of(rules, local)
    lookups = [e.result for e in events if e.kind == "conntrack_lookup"]
    assert lookups == ["new", "kept"]
    assert [e.hook for e in events if e.kind == "nat_skip"] == ["INPUT"]
    assert len(box.conntrack.entries()) == 1


def test_packet_time_advances_the_box_clock():
    packets = FWD + FWD.replace("dport = 53", "dport = 53\ntime = 7.5")
    results, box = events_of(STATEFUL_NAT, packets)
    assert box.clock == 7.5
    notes = [e.text for e in results[1][0] if e.kind == "note"]
    assert "the clock advances to 7.5 s" in notes
