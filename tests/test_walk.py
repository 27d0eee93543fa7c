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
    rules = ("*nat\n:PREROUTING ACCEPT [0:0]\n"
             "-A PREROUTING -p udp -j DNAT --to-destination 192.0.2.9\nCOMMIT")
    (r,) = run(rules=rules)
    assert r["fate"]["action"] == "error"
    assert "unsupported yet" in r["fate"]["message"]
    assert "DNAT" in r["fate"]["message"]
