"""Box: interfaces, addresses, sysctls and setup lines. Expected results were checked
on kernel 6.18 / iproute2 6.1 / procps sysctl in a throwaway netns unless noted."""

from __future__ import annotations

from ipaddress import IPv4Interface

import pytest

import kptui.engine.iptables as _ipt

if not hasattr(_ipt, "Ruleset"):  # helper B's package not there yet: a stand-in, tests only
    _ipt.Ruleset = type("Ruleset", (), {})  # type: ignore[attr-defined]

from kptui.engine.box import Box, fake_mac  # noqa: E402
from kptui.engine.errors import ParseError, UnsupportedError  # noqa: E402
from kptui.engine.setup import apply_setup, split_lines  # noqa: E402


def box_with(setup: str) -> Box:
    box = Box()
    apply_setup(box, setup, file="setup.sh")
    return box


def test_lo_is_always_there_and_up():
    lo = Box().interfaces["lo"]
    assert lo.up and lo.addresses == [IPv4Interface("127.0.0.1/8")] and lo.mtu == 65536


def test_link_add_set_up_mtu_and_stable_mac():
    box = box_with("ip link add eth0 type dummy\nip link set dev eth0 up mtu 1400")
    eth0 = box.interfaces["eth0"]
    assert eth0.up and eth0.mtu == 1400
    assert eth0.mac == fake_mac("eth0") == Box().add_link("eth0").mac
    assert fake_mac("eth0") != fake_mac("eth1") and fake_mac("eth0").startswith("02:")


@pytest.mark.parametrize(("line", "message"), [
    # checked with iproute2 6.1 on veth devices
    ("ip link set eth9 up", 'Cannot find device "eth9"'),
    ("ip link set eth0 mtu 70000", "Error: mtu greater than device maximum."),
    ("ip link set eth0 mtu 60", "Error: mtu less than device minimum."),
    ("ip link set eth0 sideways", 'Error: either "dev" is duplicate, or "sideways" is a garbage.'),
    ("ip link add eth0 type dummy", "RTNETLINK answers: File exists"),
    ("ip addr add 192.168.1.1/24 dev eth0", "Error: ipv4: Address already assigned."),
    ("ip addr del 9.9.9.9/24 dev eth0", "Error: ipv4: Address not found."),
    ("ip addr del 192.168.1.1/25 dev eth0", "Error: ipv4: Address not found."),
    ("ip addr add 1.2.3.4 dev eth9", 'Cannot find device "eth9"'),
    ("ip addr add 1.2.3.4/33 dev eth0", 'Error: any valid prefix is expected rather than '
                                        '"1.2.3.4/33".'),
])
def test_link_and_addr_errors(line, message):
    box = box_with("ip link add eth0 type dummy\nip link set eth0 up\n"
                   "ip addr add 192.168.1.1/24 dev eth0")
    with pytest.raises(ParseError) as exc:
        apply_setup(box, line, file="x.sh", first_line=7)
    assert (exc.value.message, exc.value.file, exc.value.line) == (message, "x.sh", 7)


def test_addr_abbreviations_and_order_of_primaries_and_secondaries():
    # ip-address(8); order checked with `ip addr show` on kernel 6.18
    box = box_with("ip link add eth0 type dummy\nip link set eth0 up\n"
                   "ip a add 192.168.1.1/24 dev eth0\nip -4 address add 192.168.2.5/24 dev eth0\n"
                   "ip ad add 192.168.2.6/24 dev eth0\nip addr add 7.7.7.7/8 dev eth0\n"
                   "ip addr add 10.9.9.9 dev eth0")
    assert [str(a) for a in box.interfaces["eth0"].addresses] == [
        "192.168.1.1/24", "192.168.2.5/24", "7.7.7.7/8", "10.9.9.9/32", "192.168.2.6/24"]


def test_addr_del_removes_routes_and_secondaries():
    # promote_secondaries defaults to 0: deleting a primary deletes its secondaries
    box = box_with("ip link add eth0 type dummy\nip link set eth0 up\n"
                   "ip addr add 192.168.2.5/24 dev eth0\nip addr add 192.168.2.6/24 dev eth0\n"
                   "ip addr del 192.168.2.5/24 dev eth0")
    assert box.interfaces["eth0"].addresses == []
    assert box.show_routes("main") == []
    assert not any("192.168.2" in r for r in box.show_routes("local"))


def test_sysctl_defaults_and_names():
    # checked in a fresh netns on kernel 6.18
    box = box_with("ip link add eth0 type dummy")
    assert box.sysctl("net.ipv4.ip_forward") == 0
    assert box.sysctl("net/ipv4/conf/eth0/rp_filter") == 0
    assert box.sysctl("net.ipv4.conf.all.accept_local") == 0
    assert box.sysctl("net.ipv4.conf.eth0.route_localnet") == 0
    assert box.sysctl("net.ipv4.conf.all.src_valid_mark") == 0
    assert box.sysctl("net.ipv4.ip_default_ttl") == 64
    assert box.sysctl("net.ipv4.icmp_echo_ignore_broadcasts") == 1
    with pytest.raises(UnsupportedError, match="unsupported yet: sysctl net.ipv4.tcp_syncookies"):
        box.sysctl("net.ipv4.tcp_syncookies")


def test_ip_forward_sets_every_forwarding_like_the_kernel():
    # checked on kernel 6.18: ip_forward=1 sets conf/{all,default,eth0}/forwarding;
    # conf/eth0/forwarding=0 leaves ip_forward alone; conf/all/forwarding=0 clears all
    box = box_with("ip link add eth0 type dummy\nip link add eth1 type dummy\n"
                   "sysctl -w net/ipv4/ip_forward=1")
    assert box.forwarding("eth0") and box.forwarding("eth1")
    assert box.sysctl("net.ipv4.conf.default.forwarding") == 1
    apply_setup(box, "sysctl -w net.ipv4.conf.eth0.forwarding=0", file="s")
    assert not box.forwarding("eth0") and box.sysctl("net.ipv4.ip_forward") == 1
    apply_setup(box, "sysctl net.ipv4.conf.all.forwarding=0", file="s")
    assert box.sysctl("net.ipv4.ip_forward") == 0 and not box.forwarding("eth1")


def test_default_conf_follows_into_devices_that_did_not_set_it():
    # devinet_copy_dflt_conf: conf/default/X reaches devices that never wrote X
    box = box_with("ip link add eth0 type dummy\nip link add eth1 type dummy\n"
                   "sysctl -w net.ipv4.conf.eth1.rp_filter=1\n"
                   "sysctl -w net.ipv4.conf.default.rp_filter=2")
    assert box.sysctl("net.ipv4.conf.eth0.rp_filter") == 2
    assert box.sysctl("net.ipv4.conf.eth1.rp_filter") == 1


@pytest.mark.parametrize(("line", "message"), [
    # procps sysctl messages, checked on this machine
    ("sysctl -w net.ipv4.ip_default_ttl=0",
     'sysctl: setting key "net.ipv4.ip_default_ttl": Invalid argument'),
    ("sysctl -w net.ipv4.conf.all.rp_filter=x",
     'sysctl: setting key "net.ipv4.conf.all.rp_filter": Invalid argument'),
    ("sysctl -w net.ipv4.conf.eth5.rp_filter=1",
     "sysctl: cannot stat /proc/sys/net/ipv4/conf/eth5/rp_filter: No such file or directory"),
])
def test_sysctl_errors(line, message):
    with pytest.raises(ParseError) as exc:
        box_with(line)
    assert exc.value.message == message and exc.value.line == 1


def test_unsupported_commands_name_the_line():
    for line in ("tc qdisc add dev eth0 root netem delay 10ms",
                 "ip rule add uidrange 1000-2000 lookup 100", "ip6tables -A INPUT -j DROP",
                 "nft add table inet t", "sysctl -w net.ipv4.tcp_syncookies=1",
                 "ip link add br0 type bridge", "ip -6 addr add ::1/128 dev lo"):
        with pytest.raises(ParseError) as exc:
            apply_setup(Box(), "\n" + line, file="f.sh")
        assert exc.value.message == f"unsupported yet: {line}"
        assert (exc.value.file, exc.value.line) == ("f.sh", 2)


def test_unknown_command_and_bad_object_name_column_and_token():
    with pytest.raises(ParseError) as exc:
        apply_setup(Box(), "  ifconfig eth0 up", file="f.sh")
    assert (exc.value.line, exc.value.column, exc.value.token) == (1, 3, "ifconfig")
    with pytest.raises(ParseError) as exc:
        apply_setup(Box(), "ip zzz show", file="f.sh")
    assert (exc.value.column, exc.value.token) == (4, "zzz")
    with pytest.raises(ParseError) as exc:
        apply_setup(Box(), "ip link set lo mtu abc", file="f.sh")
    assert (exc.value.column, exc.value.token) == (20, "abc")


def test_comments_blank_lines_and_continuations():
    assert split_lines("# c\n\nip link \\\n  set lo up\nsysctl -w a=1\n", 10) == [
        (12, "ip link    set lo up"), (14, "sysctl -w a=1")]


def test_iptables_lines_are_passed_whole(monkeypatch):
    seen = []
    monkeypatch.setattr(_ipt, "apply_command", lambda rs, text, *, file, line:
                        seen.append((rs, text, file, line)), raising=False)
    box = Box()
    apply_setup(box, "\niptables -t nat -A POSTROUTING -o eth1 -j MASQUERADE\n"
                     "/usr/sbin/iptables-nft -P FORWARD DROP", file="s.sh", first_line=5)
    assert seen == [(box.ruleset, "iptables -t nat -A POSTROUTING -o eth1 -j MASQUERADE",
                     "s.sh", 6), (box.ruleset, "/usr/sbin/iptables-nft -P FORWARD DROP",
                                  "s.sh", 7)]
