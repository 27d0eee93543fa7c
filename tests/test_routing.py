"""Route tables and lookups. Expected outputs were checked on kernel 6.18 (iproute2 6.1)
in a throwaway netns with veth peers up, unless a comment names a man page."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface

import pytest

import kptui.engine.iptables as _ipt

if not hasattr(_ipt, "Ruleset"):  # helper B's package not there yet: a stand-in, tests only
    _ipt.Ruleset = type("Ruleset", (), {})  # type: ignore[attr-defined]

from kptui.engine.box import Box  # noqa: E402
from kptui.engine.errors import KptuiError, ParseError, UnsupportedError  # noqa: E402
from kptui.engine.packet import Packet  # noqa: E402
from kptui.engine.setup import apply_setup  # noqa: E402


def make_box(setup: str = "") -> Box:
    box = Box()
    for name, addrs in (("eth0", ["192.168.1.1/24"]), ("eth1", ["10.0.0.1/31", "10.0.1.1/32",
                                                                "172.16.5.9/16", "172.16.7.9/16"])):
        box.add_link(name)
        box.set_link(name, up=True)
        for a in addrs:
            box.add_address(name, IPv4Interface(a))
    if setup:
        apply_setup(box, setup, file="t.sh")
    return box


def test_local_table_built_from_addresses_like_the_kernel():
    # checked on kernel 6.18: `ip route show table local` (no network-address broadcast
    # route any more, none for /31 and /32, secondaries use the primary as src)
    assert make_box().show_routes("local") == [
        "local 10.0.0.1 dev eth1 proto kernel scope host src 10.0.0.1",
        "local 10.0.1.1 dev eth1 proto kernel scope host src 10.0.1.1",
        "local 127.0.0.0/8 dev lo proto kernel scope host src 127.0.0.1",
        "local 127.0.0.1 dev lo proto kernel scope host src 127.0.0.1",
        "broadcast 127.255.255.255 dev lo proto kernel scope link src 127.0.0.1",
        "local 172.16.5.9 dev eth1 proto kernel scope host src 172.16.5.9",
        "local 172.16.7.9 dev eth1 proto kernel scope host src 172.16.5.9",
        "broadcast 172.16.255.255 dev eth1 proto kernel scope link src 172.16.5.9",
        "local 192.168.1.1 dev eth0 proto kernel scope host src 192.168.1.1",
        "broadcast 192.168.1.255 dev eth0 proto kernel scope link src 192.168.1.1",
    ]


def test_main_table_connected_routes():
    # checked on kernel 6.18: `ip route show`
    assert make_box().show_routes("main") == [
        "10.0.0.0/31 dev eth1 proto kernel scope link src 10.0.0.1",
        "172.16.0.0/16 dev eth1 proto kernel scope link src 172.16.5.9",
        "192.168.1.0/24 dev eth0 proto kernel scope link src 192.168.1.1",
    ]


def test_down_link_has_only_local_routes_and_down_flushes_user_routes():
    # checked on kernel 6.18: addresses on a down link give local routes only;
    # `ip link set eth0 down` removes every route through eth0 except host-scope ones,
    # and `up` brings back only the kernel's own routes.
    box = Box()
    box.add_link("eth0")
    box.add_address("eth0", IPv4Interface("192.168.1.1/24"))
    assert box.show_routes("main") == []
    assert "broadcast 192.168.1.255 dev eth0 proto kernel scope link src 192.168.1.1" \
        not in box.show_routes("local")
    box.set_link("eth0", up=True)
    apply_setup(box, "ip route add 8.8.8.0/24 via 192.168.1.254\n"
                     "ip route add local 12.0.0.0/8 dev eth0\n"
                     "ip route add blackhole 5.0.0.0/8\n", file="t")
    box.set_link("eth0", up=False)
    assert box.show_routes("main") == ["blackhole 5.0.0.0/8"]
    assert "local 12.0.0.0/8 dev eth0 scope host" in box.show_routes("local")
    box.set_link("eth0", up=True)
    assert box.show_routes("main") == [
        "blackhole 5.0.0.0/8",
        "192.168.1.0/24 dev eth0 proto kernel scope link src 192.168.1.1",
    ]


def test_route_add_show_order_types_and_defaults():
    # checked on kernel 6.18: `ip route show` after these commands
    box = make_box("""
ip route add 8.8.8.0/24 via 192.168.1.254
ip route add blackhole 5.0.0.0/8
ip route add unreachable 6.0.0.0/8 metric 5
ip route add prohibit 7.0.0.0/8
ip route add throw 4.0.0.0/8
ip route add 11.0.0.0/8 via 192.168.1.254 src 192.168.1.1 metric 100 proto static
ip route append 11.0.0.0/8 via 192.168.1.253 metric 100
ip route add 11.0.0.0/8 via 192.168.1.252
ip route add 11.0.0.0/16 dev eth0 scope link
ip route add 11.0.0.0/8 dev eth0 metric 50
ip route replace 50.0.0.0/8 dev eth0 proto 42
ip route add default via 192.168.1.254 dev eth0
""")
    assert box.show_routes("main") == [
        "default via 192.168.1.254 dev eth0",
        "throw 4.0.0.0/8",
        "blackhole 5.0.0.0/8",
        "unreachable 6.0.0.0/8 metric 5",
        "prohibit 7.0.0.0/8",
        "8.8.8.0/24 via 192.168.1.254 dev eth0",
        "10.0.0.0/31 dev eth1 proto kernel scope link src 10.0.0.1",
        "11.0.0.0/16 dev eth0 scope link",
        "11.0.0.0/8 via 192.168.1.252 dev eth0",
        "11.0.0.0/8 dev eth0 scope link metric 50",
        "11.0.0.0/8 via 192.168.1.254 dev eth0 proto static src 192.168.1.1 metric 100",
        "11.0.0.0/8 via 192.168.1.253 dev eth0 metric 100",
        "50.0.0.0/8 dev eth0 proto babel scope link",
        "172.16.0.0/16 dev eth1 proto kernel scope link src 172.16.5.9",
        "192.168.1.0/24 dev eth0 proto kernel scope link src 192.168.1.1",
    ]


@pytest.mark.parametrize(("line", "message"), [
    # all checked on kernel 6.18 with iproute2 6.1
    ("ip route add default via 203.0.113.1", "Error: Nexthop has invalid gateway."),
    ("ip route add 9.9.9.0/24 via 192.168.1.254 dev eth1", "Error: Nexthop has invalid gateway."),
    ("ip route add 18.0.0.0/8 via 192.168.1.255", "Error: Nexthop has invalid gateway."),
    ("ip route add 50.0.0.0/8 via 192.168.1.254 scope link",
     "Error: Nexthop has invalid gateway."),
    ("ip route add 1.2.3.0/24 dev eth9", 'Cannot find device "eth9"'),
    ("ip route add 1.2.3.4/24 dev eth0", "Error: Invalid prefix for given prefix length."),
    ("ip route del 1.2.3.0/24", "RTNETLINK answers: No such process"),
    ("ip route add 11.0.0.0/8 via 192.168.1.254 src 1.1.1.1", "Error: Invalid prefsrc address."),
    ("ip route add 50.0.0.0/8", "RTNETLINK answers: No such device"),
    ("ip route add throw 4.0.0.0/8 dev eth0",
     "Error: Gateway, device and multipath can not be specified for this route type."),
    ("ip route add blackhole 60.0.0.0/8 via 192.168.1.9",
     "Error: Gateway, device and multipath can not be specified for this route type."),
    ("ip route add 50.0.0.0/8 via 192.168.1.254 metric x",
     'Error: argument "x" is wrong: "metric" value is invalid'),
    ("ip route add 50.0.0.0/8 dev eth0 proto foo",
     'Error: argument "foo" is wrong: "protocol" value is invalid'),
    ("ip route add 50.0.0.0/8 dev eth0 bogus",
     'Error: either "to" is duplicate, or "bogus" is a garbage.'),
])
def test_route_errors_are_the_kernels(line, message):
    with pytest.raises(ParseError) as exc:
        apply_setup(make_box(), "# comment\n\n" + line, file="s.sh")
    assert exc.value.message == message
    assert exc.value.file == "s.sh" and exc.value.line == 3 and exc.value.column >= 1


def test_route_add_twice_is_file_exists_whatever_the_gateway():
    # checked on kernel 6.18: same prefix and metric -> EEXIST
    with pytest.raises(ParseError, match="RTNETLINK answers: File exists"):
        make_box("ip route add 8.8.8.0/24 via 192.168.1.254\n"
                 "ip route add 8.8.8.0/24 via 192.168.1.1")


def test_gateway_may_be_a_local_address_or_reached_through_a_link_route():
    # checked on kernel 6.18: both accepted
    box = make_box("ip route add 15.0.0.0/8 via 192.168.1.1\n"
                   "ip route add 11.0.0.0/16 dev eth0\nip route add 17.0.0.0/8 via 11.0.0.5\n"
                   "ip route add 19.0.0.0/8 via 127.0.0.1")
    assert "15.0.0.0/8 via 192.168.1.1 dev eth0" in box.show_routes("main")
    assert "17.0.0.0/8 via 11.0.0.5 dev eth0" in box.show_routes("main")
    assert "19.0.0.0/8 via 127.0.0.1 dev lo" in box.show_routes("main")


def test_route_del_and_replace():
    box = make_box("ip route add 40.0.0.0/8 dev eth0\nip route replace 40.0.0.0/8 dev eth1\n")
    assert "40.0.0.0/8 dev eth1 scope link" in box.show_routes("main")
    apply_setup(box, "ip route del 40.0.0.0/8", file="t")
    assert not any(r.startswith("40.") for r in box.show_routes("main"))
    with pytest.raises(ParseError, match="No such process"):
        apply_setup(box, "ip route del 40.0.0.0/8", file="t")


def test_numbered_tables_and_what_is_still_unsupported():
    for line in ("ip route add 14.0.0.0/8 dev eth0 onlink",
                 "ip rule add uidrange 1000-2000 lookup 100",
                 "ip rule flush"):
        with pytest.raises(ParseError) as exc:
            make_box(line)
        assert exc.value.message == f"unsupported yet: {line}"
    box = make_box("ip route add 14.0.0.0/8 via 192.168.1.9 table default\n"
                   "ip route add 14.0.0.0/8 dev eth0 table 100")
    assert box.show_routes("default") == ["14.0.0.0/8 via 192.168.1.9 dev eth0"]
    assert box.show_routes("100") == ["14.0.0.0/8 dev eth0 scope link"]


def pkt(src, dst, iif="", proto="udp"):
    return Packet.build(proto=proto, src=src, dst=dst, sport=1000, dport=53, iif=iif)


def test_route_output_source_selection():
    # checked on kernel 6.18 with `ip route get`
    box = make_box("ip addr add 192.168.2.5/24 dev eth0\nip addr add 192.168.2.6/24 dev eth0\n"
                   "ip route add 30.0.0.0/8 via 192.168.2.1\nip route add 40.0.0.0/8 dev eth0\n"
                   "ip route add default via 192.168.1.254 dev eth0")
    cases = {
        "30.1.1.1": ("unicast", "eth0", "192.168.2.1", "192.168.2.5"),
        "192.168.2.77": ("unicast", "eth0", "", "192.168.2.5"),
        "40.0.0.1": ("unicast", "eth0", "", "192.168.1.1"),
        "45.0.0.1": ("unicast", "eth0", "192.168.1.254", "192.168.1.1"),
        "192.168.1.1": ("local", "lo", "", "192.168.1.1"),
        "172.16.7.9": ("local", "lo", "", "172.16.5.9"),
        "192.168.1.255": ("broadcast", "eth0", "", "192.168.1.1"),
    }
    for dst, (kind, oif, gw, src) in cases.items():
        res = box.route_output(pkt("0.0.0.0", dst))
        assert (res.kind, res.oif, res.gateway, res.prefsrc) == (kind, oif, gw, src), dst


def test_route_output_errors():
    # checked on kernel 6.18: `ip route get` -> Network is unreachable / No route to host /
    # Invalid argument / Permission denied; a throw with an empty default table: ENETUNREACH
    box = make_box("ip route add blackhole 5.0.0.0/8\nip route add unreachable 6.0.0.0/8\n"
                   "ip route add prohibit 7.0.0.0/8\nip route add throw 4.0.0.0/8")
    for dst, kind, err in (("31.0.0.1", "unreachable", "ENETUNREACH"),
                           ("6.1.1.1", "unreachable", "EHOSTUNREACH"),
                           ("5.1.1.1", "blackhole", "EINVAL"),
                           ("7.1.1.1", "prohibit", "EACCES"),
                           ("4.1.1.1", "unreachable", "ENETUNREACH")):
        res = box.route_output(pkt("0.0.0.0", dst))
        assert (res.kind, res.error) == (kind, err), dst
        assert res.explain


def test_route_input_kinds():
    box = make_box("ip route add default via 192.168.1.254\nip route add prohibit 7.0.0.0/8")
    box.set_sysctl("net.ipv4.ip_forward", 1)
    res = box.route_input(pkt("198.51.100.7", "192.168.1.1", "eth1"))
    assert res.kind == "local" and not res.error
    res = box.route_input(pkt("198.51.100.7", "8.8.8.8", "eth1"))
    assert (res.kind, res.oif, res.gateway, res.error) == ("unicast", "eth0", "192.168.1.254", "")
    assert res.route == "default via 192.168.1.254 dev eth0" and res.table == "main"
    res = box.route_input(pkt("198.51.100.7", "192.168.1.255", "eth0"))
    assert res.kind == "broadcast"
    res = box.route_input(pkt("198.51.100.7", "255.255.255.255", "eth0"))
    assert res.kind == "broadcast"
    res = box.route_input(pkt("198.51.100.7", "7.0.0.1", "eth1"))
    assert (res.kind, res.error) == ("prohibit", "EACCES")


def test_route_input_forwarding_off_is_ehostunreach():
    # KERNEL-NOTES 5: !IN_DEV_FORWARD -> EHOSTUNREACH, also for "no route"
    box = make_box("ip route add default via 192.168.1.254")
    res = box.route_input(pkt("198.51.100.7", "8.8.8.8", "eth1"))
    assert (res.kind, res.error, res.reason) == ("unicast", "EHOSTUNREACH", "ip_forward")
    box2 = make_box()
    res = box2.route_input(pkt("198.51.100.7", "8.8.8.8", "eth1"))
    assert (res.kind, res.error) == ("unreachable", "EHOSTUNREACH")
    box2.set_sysctl("net.ipv4.ip_forward", 1)
    assert box2.route_input(pkt("198.51.100.7", "8.8.8.8", "eth1")).error == "ENETUNREACH"


def test_route_input_martians_and_rp_filter():
    box = make_box("ip route add default via 192.168.1.254")
    box.set_sysctl("net.ipv4.ip_forward", 1)
    for src, dst, kind in (("224.0.0.1", "192.168.1.1", "martian_source"),
                           ("0.0.0.0", "192.168.1.1", "martian_source"),
                           ("127.0.0.1", "192.168.1.1", "martian_source"),
                           ("198.51.100.7", "127.0.0.1", "martian_destination"),
                           ("198.51.100.7", "0.0.0.0", "martian_destination"),
                           ("172.16.5.9", "192.168.1.1", "martian_source")):
        assert box.route_input(pkt(src, dst, "eth0")).kind == kind, (src, dst)
    # ip-sysctl: rp_filter=1 strict drops a source whose reverse route leaves elsewhere
    assert box.route_input(pkt("172.16.9.9", "192.168.1.1", "eth0")).kind == "local"
    box.set_sysctl("net.ipv4.conf.all.rp_filter", 1)
    res = box.route_input(pkt("172.16.9.9", "192.168.1.1", "eth0"))
    assert (res.kind, res.error, res.reason) == ("martian_source", "EXDEV", "rp_filter")
    box.set_sysctl("net.ipv4.conf.all.rp_filter", 2)  # loose: any route back will do
    assert box.route_input(pkt("172.16.9.9", "192.168.1.1", "eth0")).kind == "local"


def test_zeronet_is_only_0_0_0_0():
    # Linux 5.3 commit 96125bf9985a ("Allow 0.0.0.0/8 as a valid address range"):
    # ipv4_is_zeronet() is addr == 0, so 0.1.2.3 is ordinary unicast. Checked on kernel
    # 6.18 (tests/kernel/scenarios/path-zeronet.toml): delivered from, forwarded to.
    box = make_box("ip route add default via 192.168.1.254")
    box.set_sysctl("net.ipv4.ip_forward", 1)
    assert box.route_input(pkt("0.1.2.3", "192.168.1.1", "eth0")).kind == "local"
    res = box.route_input(pkt("198.51.100.7", "0.1.2.3", "eth1"))
    assert (res.kind, res.oif, res.error) == ("unicast", "eth0", "")
    assert box.addrtype(IPv4Address("0.1.2.3")) == "UNICAST"
    assert box.addrtype(IPv4Address("0.0.0.0")) == "BROADCAST"


def test_addrtype_uses_the_local_table():
    # xt_addrtype -> inet_dev_addr_type: the local table only; an address of another
    # device is UNICAST with --limit-iface
    box = make_box("ip route add blackhole 5.0.0.0/8")
    a = IPv4Address
    assert box.addrtype(a("192.168.1.1")) == "LOCAL"
    assert box.addrtype(a("192.168.1.1"), "eth0") == "LOCAL"
    assert box.addrtype(a("192.168.1.1"), "eth1") == "UNICAST"
    assert box.addrtype(a("192.168.1.255")) == "BROADCAST"
    assert box.addrtype(a("255.255.255.255")) == "BROADCAST"
    assert box.addrtype(a("0.0.0.0")) == "BROADCAST"
    assert box.addrtype(a("239.1.1.1")) == "MULTICAST"
    assert box.addrtype(a("127.9.9.9")) == "LOCAL"
    assert box.addrtype(a("5.1.1.1")) == "UNICAST"
    assert box.is_local(a("172.16.7.9")) and not box.is_local(a("8.8.8.8"))


def test_multicast_routing_is_unsupported_and_unknown_iif_is_an_error():
    box = make_box()
    with pytest.raises(UnsupportedError):
        box.route_output(pkt("0.0.0.0", "239.1.1.1"))
    with pytest.raises(KptuiError):
        box.route_input(pkt("1.1.1.1", "192.168.1.1", "eth7"))


# -- the RPDB (issue 5) ---------------------------------------------------------------

def test_ip_rule_show_order_default_priorities_and_formats():
    # checked on kernel 6.18 / iproute2 6.1 in a netns: `ip rule show` after these adds
    # (a rule without priority gets the second rule's priority minus one; fwmark 0
    # has mask 0 and is not shown; a goto to a missing priority is [unresolved])
    box = make_box(
        "ip route add default via 192.168.1.254 dev eth0 table 100\n"
        "ip rule add fwmark 0x10/0xf0 lookup 100 priority 1000\n"
        "ip rule add not from 192.0.2.0/24 to 10.0.0.0/8 tos 0x10 iif eth0 oif eth1 "
        "ipproto tcp sport 1-2 dport 80 lookup 100 suppress_prefixlength 0 priority 1001\n"
        "ip rule add fwmark 0 goto 1005 prio 1002\n"
        "ip rule add fwmark 7 nop prio 1003\n"
        "ip rule add blackhole fwmark 8 prio 1004\n"
        "ip rule add dsfield 0x08 prohibit prio 1004\n"
        "ip rule add ipproto 17 lookup main suppress_ifgroup 0 prio 1006\n"
        "ip rule add dport 53 unreachable\n"
        "ip rule add iif lo oif eth0 lookup 100\n")
    assert box.routes.show_rules() == [
        "0:\tfrom all lookup local",
        "998:\tfrom all iif lo oif eth0 lookup 100",
        "999:\tfrom all dport 53 unreachable",
        "1000:\tfrom all fwmark 0x10/0xf0 lookup 100",
        "1001:\tnot from 192.0.2.0/24 to 10.0.0.0/8 tos 0x10 iif eth0 oif eth1 ipproto tcp "
        "sport 1-2 dport 80 lookup 100 suppress_prefixlength 0",
        "1002:\tfrom all goto 1005 [unresolved]",
        "1003:\tfrom all fwmark 0x7 nop",
        "1004:\tfrom all fwmark 0x8 blackhole",
        "1004:\tfrom all tos 0x08 prohibit",
        "1006:\tfrom all ipproto udp lookup main suppress_ifgroup default",
        "32766:\tfrom all lookup main",
        "32767:\tfrom all lookup default",
    ]


def test_rule_errors_are_the_kernels():
    # checked on kernel 6.18: a duplicate is EEXIST, a backward goto EINVAL
    box = make_box("ip rule add fwmark 1 lookup 100 priority 10")
    with pytest.raises(ParseError, match="File exists"):
        apply_setup(box, "ip rule add fwmark 1 lookup 100 priority 10", file="t")
    with pytest.raises(ParseError, match="Backward goto"):
        apply_setup(box, "ip rule add goto 5 priority 10", file="t")
    with pytest.raises(ParseError, match="No such file or directory"):
        apply_setup(box, "ip rule del priority 4242", file="t")


def test_route_get_texts_like_ip_route_get():
    # checked on kernel 6.18 / iproute2 6.1 in a netns with this configuration
    box = Box()
    for name, addr in (("eth0", "192.0.2.1/24"), ("eth1", "198.51.100.1/24")):
        box.add_link(name)
        box.set_link(name, up=True)
        box.add_address(name, IPv4Interface(addr))
    apply_setup(box, "ip route add default via 192.0.2.254 dev eth0\n"
                     "ip route add default via 198.51.100.254 dev eth1 table 100\n"
                     "ip rule add fwmark 0x1 lookup 100 priority 1000\n", file="t")
    a = IPv4Address
    get = box.route_get
    assert get(a("203.0.113.77"))[1] == \
        "203.0.113.77 via 192.0.2.254 dev eth0 src 192.0.2.1 uid 0 \n    cache \n"
    assert get(a("203.0.113.77"), mark=1)[1] == ("203.0.113.77 via 198.51.100.254 dev eth1 "
                                                 "table 100 src 198.51.100.1 mark 1 uid 0 \n"
                                                 "    cache \n")
    assert get(a("203.0.113.77"), src=a("192.0.2.1"), mark=16)[1] == (
        "203.0.113.77 from 192.0.2.1 via 192.0.2.254 dev eth0 mark 0x10 uid 0 \n"
        "    cache \n")  # mark 0x10 is not 0x1: main
    assert get(a("192.0.2.255"))[1] == ("broadcast 192.0.2.255 dev eth0 table local src "
                                        "192.0.2.1 uid 0 \n    cache <local,brd> \n")
    box.set_sysctl("net.ipv4.ip_forward", 1)
    assert get(a("203.0.113.77"), src=a("198.51.100.9"), iif="eth1", mark=1)[1] == (
        "203.0.113.77 from 198.51.100.9 via 198.51.100.254 dev eth1 table 100 mark 1 \n"
        "    cache <redirect> iif eth1 \n")
    assert get(a("192.0.2.1"), src=a("198.51.100.9"), iif="eth1")[1] == (
        "local 192.0.2.1 from 198.51.100.9 dev lo table local \n    cache <local> iif eth1 \n")
    with pytest.raises(KptuiError, match="RTNETLINK answers: Network is unreachable"):
        get(a("203.0.113.77"), src=a("192.0.2.9"))  # not a local address


def test_route_decision_explains_rules_tried_and_runners_up():
    box = make_box("ip route add default via 192.168.1.254 dev eth0\n"
                   "ip route add 8.8.0.0/16 via 192.168.1.254 dev eth0 table 100\n"
                   "ip route add default via 172.16.0.1 dev eth1 table 100\n"
                   "ip rule add fwmark 0x1 lookup 100 priority 1000\n")
    p = pkt("0.0.0.0", "8.8.8.8")
    p.meta.mark = 1
    res = box.route_output(p)
    assert (res.table, res.oif, res.rule) == ("100", "eth0",
                                              "1000: from all fwmark 0x1 lookup 100")
    assert res.explain[1].startswith("rule 0: from all lookup local: table local: no route")
    assert res.explain[2] == ("rule 1000: from all fwmark 0x1 lookup 100: table 100: "
                              "8.8.0.0/16 via 192.168.1.254 dev eth0")
    assert res.explain[3] == "also covering it in table 100: default via 172.16.0.1 dev eth1"
    p.meta.mark = 2
    res = box.route_output(p)
    assert "no match: mark 0x2 & 0xffffffff is not 0x1" in res.explain[2]


def test_pasted_show_lines_and_named_tables_give_a_runnable_kernel_form():
    from kptui.engine.scenario import load_scenario

    text = ('rt_tables = { isp2 = 100 }\nsetup = """\n'
            "default via 192.168.1.254 dev eth0\n"
            "192.168.1.0/24 dev eth0 proto kernel scope link src 192.168.1.1\n"
            "10.9.0.0/16 proto static\n"
            "\tnexthop via 192.168.1.254 dev eth0 weight 1\n"
            "\tnexthop via 192.168.1.253 dev eth0 weight 1\n"
            "0:\tfrom all lookup local\n"
            "100:\tfrom all fwmark 0x2 lookup isp2\n"
            "ip route add default via 192.168.1.253 dev eth0 table isp2\n"
            '"""\n[[interfaces]]\nname = "eth0"\naddresses = ["192.168.1.1/24"]\n')
    sc = load_scenario(text, file="t.toml")
    box = sc.build_box()
    assert box.routes.show_rules()[1] == "100:\tfrom all fwmark 0x2 lookup isp2"
    assert box.show_routes("isp2") == ["default via 192.168.1.253 dev eth0"]
    assert box.show_routes("100") == ["default via 192.168.1.253 dev eth0"]
    assert sc.kernel_setup().splitlines() == [
        "ip route add default via 192.168.1.254 dev eth0",
        "# kptui: already there: 192.168.1.0/24 dev eth0 proto kernel scope link src "
        "192.168.1.1",
        "ip route add 10.9.0.0/16 proto static nexthop via 192.168.1.254 dev eth0 weight 1 "
        "nexthop via 192.168.1.253 dev eth0 weight 1",
        "", "",
        "# kptui: already there: 0: from all lookup local",
        "ip rule add priority 100 from all fwmark 0x2 lookup 100",
        "ip route add default via 192.168.1.253 dev eth0 table 100",
    ]
