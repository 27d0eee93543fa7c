"""The modern profile's order comes from the kernel's hook priorities.

Expected orders: include/uapi/linux/netfilter_ipv4.h (enum nf_ip_hook_priorities)
and iptables(8)'s list of which tables have which chains.
"""

import pytest

from kptui.engine.errors import UnsupportedError
from kptui.engine.profile import MODERN, get_profile


def ids(stages):
    return [s.id for s in stages]


def test_prerouting_order_raw_conntrack_mangle_nat_then_routing():
    assert ids(MODERN.prerouting) == [
        "tc:ingress", "raw:PREROUTING", "conntrack:PREROUTING", "mangle:PREROUTING",
        "nat:PREROUTING", "routing:input",
    ]


def test_input_runs_nat_after_filter_and_security_after_nat():
    # iptables-nft 1.8.9 registers security at priority 150 (`nft list ruleset` on this
    # machine), after nat INPUT at 100; kernel corpus: path-hook-order-nat-input.
    assert ids(MODERN.local_in) == [
        "mangle:INPUT", "filter:INPUT", "nat:INPUT", "security:INPUT", "conntrack:INPUT",
        "local:deliver",
    ]


def test_output_routing_comes_before_the_output_hook():
    # KERNEL-NOTES 5: output routing happens in the socket layer, before OUTPUT.
    assert ids(MODERN.local_out) == [
        "routing:output", "raw:OUTPUT", "conntrack:OUTPUT", "mangle:OUTPUT", "nat:OUTPUT",
        "filter:OUTPUT", "security:OUTPUT",
    ]


def test_forward_decrements_ttl_before_the_forward_hook():
    assert ids(MODERN.forward) == ["forward", "mangle:FORWARD", "filter:FORWARD",
                                   "security:FORWARD"]


def test_postrouting_then_tc_egress():
    # KERNEL-NOTES 2: the egress qdisc runs after POSTROUTING.
    assert ids(MODERN.postrouting) == [
        "mangle:POSTROUTING", "nat:POSTROUTING", "conntrack:POSTROUTING", "tc:egress",
        "transmit",
    ]


def test_tables_only_at_their_hooks():
    chains = {(s.table, s.hook) for s in MODERN.stages() if s.kind == "table"}
    assert {h for t, h in chains if t == "raw"} == {"PREROUTING", "OUTPUT"}
    assert {h for t, h in chains if t == "nat"} == {"PREROUTING", "INPUT", "OUTPUT",
                                                    "POSTROUTING"}
    assert {h for t, h in chains if t == "filter"} == {"INPUT", "FORWARD", "OUTPUT"}
    assert len({h for t, h in chains if t == "mangle"}) == 5


@pytest.mark.parametrize("name", ["classic-2.4", "ipchains"])
def test_historical_profiles_exist(name):
    # tests/test_profiles_historical.py checks their stages against the documentation
    assert get_profile(name).name == name


def test_unknown_profile_names_the_known_ones():
    with pytest.raises(UnsupportedError, match="modern"):
        get_profile("bsd")
