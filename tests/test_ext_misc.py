"""The "misc" extensions: owner, rpfilter, socket, physdev, policy, time, cgroup, ipvs,
osf, set and SET, and the core matches reworked on libxtables' option tables (ttl,
addrtype, iprange, length, tos, dscp, mark, connmark, multiport, comment, limit,
statistic, state, mac, pkttype).

Every saved line and refusal below is what iptables-nft 1.8.9 printed on this machine
(Linux 6.18) for the same rule, unless a comment cites the C source (ipvs: this kernel
has no ip_vs, so libxt_ipvs.c's save is the reference). Simulated matches are checked
end to end against the kernel by tests/kernel/scenarios/ext-{owner,rpfilter,statistic,
limit}.toml; the expectations of the walks here are what that kernel did there.
"""

from __future__ import annotations

import pytest

from kptui.engine.errors import KptuiError
from kptui.engine.iptables import Ruleset, apply_command, to_save
from kptui.engine.run import run_scenario
from kptui.engine.scenario import load_scenario


def saved(rule: str, table: str = "filter", chain: str = "INPUT") -> str:
    rs = Ruleset()
    apply_command(rs, f"iptables -t {table} -A {chain} {rule}", file="t", line=1)
    line = next(ln for ln in to_save(rs).splitlines() if ln.startswith(f"-A {chain} "))
    return line.removeprefix(f"-A {chain} ")


def refusal(rule: str, table: str = "filter", chain: str = "INPUT") -> str:
    with pytest.raises(KptuiError) as err:
        saved(rule, table, chain)
    return str(err.value)


# -- parse and print (each expectation: iptables-save 1.8.9 on this machine) ----------

@pytest.mark.parametrize("table,chain,rule,line", [
    # owner: names are base-passwd's, saved as numbers; a:b is a range too
    ("mangle", "OUTPUT", "-m owner --uid-owner nobody", "-m owner --uid-owner 65534"),
    ("mangle", "OUTPUT", "-m owner --uid-owner 5:10", "-m owner --uid-owner 5-10"),
    ("mangle", "OUTPUT", "-m owner --uid-owner 0x10", "-m owner --uid-owner 16"),
    ("mangle", "OUTPUT", "-m owner ! --socket-exists --uid-owner 0 ! --gid-owner 1",
     "-m owner ! --socket-exists --uid-owner 0 ! --gid-owner 1"),
    ("mangle", "PREROUTING", "-m rpfilter --invert --loose", "-m rpfilter --loose --invert"),
    ("mangle", "PREROUTING", "-m socket --restore-skmark --transparent",
     "-m socket --transparent --restore-skmark"),
    ("filter", "INPUT", "-m physdev ! --physdev-in eth0 --physdev-out eth1 --physdev-is-out",
     "-m physdev ! --physdev-in eth0 --physdev-is-out --physdev-out eth1"),
    # policy: --tunnel-dst before --tunnel-src, the address unmasked, a mask that is
    # not a prefix becomes /32
    ("filter", "INPUT", "-m policy --dir in --pol ipsec --mode tunnel "
     "--tunnel-src 10.1.2.3/8 --tunnel-dst 1.2.3.4/255.0.255.0",
     "-m policy --dir in --pol ipsec --mode tunnel --tunnel-dst 1.2.3.4 "
     "--tunnel-src 10.1.2.3/8"),
    ("filter", "INPUT", "-m policy --dir in --pol ipsec --strict --proto ah --next "
     "--proto esp --next --proto ipcomp --next --spi 3",
     "-m policy --dir in --pol ipsec --strict --proto ah --next --proto esp --next "
     "--proto ipcomp --next --spi 0x3"),
    ("mangle", "OUTPUT", '-m cgroup ! --path "a b"', '-m cgroup ! --path "a b"'),
    ("filter", "INPUT", "-p tcp -m osf --genre abcdefghijklmnopqrstuvwxyz0123456789",
     "-p tcp -m osf --genre abcdefghijklmnopqrstuvwxyz01234"),
    # libxt_ipvs.c ipvs_mt_dump: --ipvs only alone, the protocol as a number
    ("filter", "INPUT", "-m ipvs --ipvs --vproto tcp --vaddr 1.2.3.4/16 --vdir REPLY",
     "-m ipvs --vproto 6 --vaddr 1.2.3.4/16 --vdir REPLY"),
    # time: C's quirks: day segments cut to 2/3 characters, weekdays by two letters,
    # mktime's normalisation, the default --datestop always printed
    ("filter", "INPUT", "-m time --timestart :30",
     "-m time --timestart 00:30:00 --timestop 23:59:59 --datestop 2038-01-19T03:14:07"),
    ("filter", "INPUT", "-m time --monthdays 123",
     "-m time --monthdays 12 --datestop 2038-01-19T03:14:07"),
    ("filter", "INPUT", "-m time --weekdays Monday,Tu,Th",
     "-m time --weekdays Mon,Tue,Thu --datestop 2038-01-19T03:14:07"),
    ("filter", "INPUT", "-m time ! --weekdays Sa,Su",
     "-m time --weekdays Mon,Tue,Wed,Thu,Fri --datestop 2038-01-19T03:14:07"),
    ("filter", "INPUT", "-m time --datestart 2001-02-30",
     "-m time --datestart 2001-03-02T00:00:00 --datestop 2038-01-19T03:14:07"),
    ("filter", "INPUT", "-m time --timestop 00:00:01 --timestart 23:00 --contiguous",
     "-m time --timestart 23:00:00 --timestop 00:00:01 --datestop 2038-01-19T03:14:07 "
     "--contiguous"),
    # the reworked core matches
    ("filter", "INPUT", "-m ttl ! --ttl 5", "-m ttl ! --ttl-eq 5"),
    ("filter", "INPUT", "-m addrtype --src-type loc,uni", "-m addrtype --src-type UNICAST,LOCAL"),
    ("filter", "INPUT", "-m dscp --dscp-class CS1xyz", "-m dscp --dscp 0x08"),
    ("filter", "INPUT", "-m limit --limit 1x/sec", "-m limit --limit 1/sec"),
    ("filter", "INPUT", "-m limit --limit 7/hour --limit-burst 0", "-m limit --limit 7/hour"),
    ("filter", "INPUT", "-m state --state E,n", "-m state --state NEW,ESTABLISHED"),
    ("filter", "INPUT", "-m comment --comment " + "x" * 256, "-m comment --comment " + "x" * 255),
    ("filter", "INPUT", "-m statistic --mode random ! --probability 0.25",
     "-m statistic --mode random ! --probability 0.25000000000"),
])
def test_saved_as_iptables_saves_it(table, chain, rule, line):
    assert saved(rule, table, chain) == line


@pytest.mark.parametrize("table,chain,rule,message", [
    ("mangle", "OUTPUT", "-m owner --uid-owner 10-5", "(the kernel refuses it: Invalid argument)"),
    ("mangle", "OUTPUT", "-m owner --uid-owner 4294967295",
     'owner: Bad value for "--uid-owner" option: "4294967295"'),
    ("mangle", "OUTPUT", "-m owner --uid-owner 1-2x",
     'owner: Bad value for "--uid-owner" option: "1-2x"'),
    ("mangle", "PREROUTING", "-m owner --uid-owner 0", "(the kernel refuses it: Invalid argument)"),
    ("mangle", "FORWARD", "-m rpfilter", "(the kernel refuses it: Invalid argument)"),
    ("mangle", "OUTPUT", "-m socket", "(the kernel refuses it: Invalid argument)"),
    ("filter", "OUTPUT", "-m physdev --physdev-is-out ! --physdev-is-bridged",
     "(the kernel refuses it: Invalid argument)"),
    ("filter", "INPUT", "-m physdev", "PHYSDEV: no physdev option specified"),
    ("filter", "OUTPUT", "-m policy --dir in --pol none",
     "(the kernel refuses it: Invalid argument)"),
    ("filter", "INPUT", "-m policy --dir in --pol ipsec --next",
     'policy: option "--next" also requires "--strict".'),
    ("filter", "INPUT", "-m policy --dir in --pol none --strict --next",
     "policy match: policy none but --strict given"),
    ("filter", "INPUT", "-m policy --dir in --pol ipsec --proto tcp",
     "policy match: protocol must be ah/esp/ipcomp"),
    ("mangle", "OUTPUT", "-m cgroup --path / --cgroup 3",
     "(the kernel refuses it: Invalid argument)"),
    ("filter", "INPUT", "! -p tcp -m osf --genre x", "(the kernel refuses it: Invalid argument)"),
    ("filter", "INPUT", "-m time --timestart 1:99",
     'invalid time "99" specified, should be hh:mm[:ss] format and within the boundaries'),
    ("filter", "INPUT", "-m time --weekdays Mon,,Tue", "No, the week does NOT begin with Sunday."),
    ("filter", "INPUT", "-m time --utc --kerneltz",
     'time: option "--utc" cannot be used together with "--kerneltz".'),
    ("filter", "INPUT", "-m set --match-set foo", "--match-set requires two args."),
    ("filter", "INPUT", "-m set --match-set foo src", "Set foo doesn't exist."),
    ("filter", "INPUT", "-m set --return-nomatch",
     "You must specify `--match-set' with proper arguments"),
    ("filter", "INPUT", "-j SET --add-set foo -x", "--add-set requires two args."),
    ("filter", "INPUT", "-j SET --timeout 5",
     "You must specify either `--add-set' or `--del-set' or `--map-set'"),
    ("filter", "INPUT", "-m ttl --ttl-gt 1 --ttl-eq 2",
     'ttl: option "--ttl-gt" cannot be used together with "--ttl-eq".'),
    ("filter", "INPUT", "-m ttl --ttl-eq 5 --ttl 6",
     'ttl: option "--ttl-eq" can only be used once.'),
    ("filter", "INPUT", "-m addrtype --src-type LOCAL,foo,UNICAST",
     "addrtype: bad type `foo,UNICAST'"),
    ("filter", "INPUT", "-m mark --mark 1 --mark 2",
     'mark: option "--mark" can only be used once.'),
    ("filter", "INPUT", "-p tcp -m multiport --dports 1 --dports 2",
     'multiport: option "--destination-ports" can only be used once.'),
    ("filter", "INPUT", "-p tcp -m multiport --dports 1:1", "invalid portrange specified"),
    ("filter", "INPUT", "-m state --state NEW,FOO,BAR", 'Bad state "FOO,BAR"'),
    ("filter", "INPUT", "-m iprange --src-range 1.2.3.4-", 'iprange: Bad value for "--src-range" '
     'option: ""'),
    ("filter", "INPUT", "-m statistic --mode nth --packet 1",
     "the --packet p must be 0 <= p <= n-1"),
])
def test_refused_in_iptables_words(table, chain, rule, message):
    assert message in refusal(rule, table, chain)


# -- walks -------------------------------------------------------------------------------

BOX = """
[sysctl]
"net.ipv4.ip_forward" = 1

[[interfaces]]
name = "eth0"
addresses = ["10.0.0.1/24"]

[[interfaces]]
name = "eth1"
addresses = ["192.168.1.1/24"]
"""


def walk(iptables: str, packets: str, setup: str = "") -> list[dict]:
    text = f'setup = """\n{setup}\n"""\niptables = """\n{iptables}\n"""\n{BOX}\n{packets}'
    return [r.to_json(with_events=False) for r in
            run_scenario(load_scenario(text, file="t.toml"))]


UDP_LOCAL = """
[[packets]]
iif = "local"
proto = "udp"
src = "10.0.0.1"
dst = "10.0.0.2"
sport = 4000
dport = 5000
"""


def test_owner_matches_the_sockets_uid_and_gid():
    # ext-owner packet 1: uid 1500 gid 55 matched --uid-owner 1000-2000 and
    # --gid-owner 50:60 --suppl-groups, not --uid-owner 0
    rules = ("*mangle\n:OUTPUT ACCEPT [0:0]\n"
             "-A OUTPUT -m owner --uid-owner 0 -j MARK --or-mark 0x1\n"
             "-A OUTPUT -m owner --uid-owner 1000-2000 -j MARK --or-mark 0x2\n"
             "-A OUTPUT -m owner --gid-owner 50:60 --suppl-groups -j MARK --or-mark 0x4\n"
             "COMMIT")
    root, user = walk(rules, UDP_LOCAL + UDP_LOCAL + "uid = 1500\ngid = 55\n")
    assert root["out"]["mark"] == 0x1
    assert user["out"]["mark"] == 0x6


def test_owner_sees_no_socket_on_a_forwarded_packet():
    # ext-owner packet 4: only the rule whose every option is inverted matched
    rules = ("*mangle\n:POSTROUTING ACCEPT [0:0]\n"
             "-A POSTROUTING -m owner --socket-exists -j MARK --or-mark 0x1\n"
             "-A POSTROUTING -m owner ! --uid-owner 0 ! --gid-owner 0 -j MARK --or-mark 0x2\n"
             "-A POSTROUTING -m owner ! --uid-owner 0 --gid-owner 0 -j MARK --or-mark 0x4\n"
             "COMMIT")
    fwd = ('[[packets]]\niif = "eth1"\nproto = "udp"\nsrc = "192.168.1.10"\n'
           'dst = "10.0.0.2"\nsport = 1\ndport = 2\n')
    (r,) = walk(rules, fwd)
    assert r["out"]["mark"] == 0x2


def test_uid_is_refused_on_a_received_packet():
    fwd = ('[[packets]]\niif = "eth1"\nproto = "udp"\nsrc = "192.168.1.10"\n'
           'dst = "10.0.0.2"\nsport = 1\ndport = 2\nuid = 5\n')
    with pytest.raises(KptuiError, match="uid is only for local packets"):
        walk("", fwd)


def test_rpfilter_follows_the_route_back():
    # ext-rpfilter packets 0, 1 and 3: the same source is fine on eth0 (the default
    # route's device), only --loose passes on eth1, and a blackhole fails everything
    rules = ("*raw\n:PREROUTING ACCEPT [0:0]\n"
             "-A PREROUTING -m rpfilter -j MARK --or-mark 0x1\n"
             "-A PREROUTING -m rpfilter --loose -j MARK --or-mark 0x2\n"
             "-A PREROUTING -m rpfilter --invert -j MARK --or-mark 0x4\nCOMMIT")
    setup = "ip route add default via 10.0.0.254 dev eth0\nip route add blackhole 203.0.113.0/24"
    pkts = "".join(f'[[packets]]\niif = "{i}"\nproto = "udp"\nsrc = "{s}"\ndst = "{d}"\n'
                   "sport = 1\ndport = 2\n" for i, s, d in (
                       ("eth0", "198.51.100.7", "10.0.0.1"),
                       ("eth1", "198.51.100.7", "192.168.1.1"),
                       ("eth0", "203.0.113.5", "10.0.0.1")))
    marks = [r["out"]["mark"] for r in walk(rules, pkts, setup)]
    assert marks == [0x3, 0x6, 0x4]


def test_statistic_nth_counts_from_every_minus_packet():
    # ext-statistic: --every 3 --packet 0 took the 1st and 4th packets
    rules = ("*mangle\n:OUTPUT ACCEPT [0:0]\n"
             "-A OUTPUT -m statistic --mode nth --every 3 --packet 0 -j MARK --or-mark 0x1\n"
             "COMMIT")
    marks = [r["out"]["mark"] for r in walk(rules, UDP_LOCAL + "repeat = 4\n")]
    assert marks == [1, 0, 0, 1]


@pytest.mark.parametrize("table,chain,rule,name", [
    ("filter", "INPUT", "-m physdev --physdev-in eth1", "physdev"),
    ("filter", "INPUT", "-m policy --dir in --pol none", "policy"),
    ("filter", "INPUT", "-m cgroup --cgroup 1", "cgroup"),
    ("filter", "INPUT", "-m ipvs --ipvs", "ipvs"),
    ("filter", "INPUT", "-p tcp -m osf --genre Linux", "osf"),
])
def test_a_walk_reaching_an_unmodelled_match_stops_named(table, chain, rule, name):
    rules = f"*{table}\n:{chain} ACCEPT [0:0]\n-A {chain} {rule}\nCOMMIT"
    pkt = ('[[packets]]\niif = "eth1"\nproto = "tcp"\nsrc = "192.168.1.10"\n'
           'dst = "192.168.1.1"\nsport = 1\ndport = 2\n')
    (r,) = walk(rules, pkt)
    assert r["fate"]["action"] == "error"
    assert f"unsupported yet: -m {name} (parsed, not simulated)" in r["fate"]["message"]


def test_mac_on_a_received_packet_is_not_guessed():
    # a kptui packet carries no sender MAC; on lo (ext-mac, checked) it is a plain no-match
    rules = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -m mac ! --mac-source 0:1:2:3:4:5\nCOMMIT"
    pkt = ('[[packets]]\niif = "eth1"\nproto = "udp"\nsrc = "192.168.1.10"\n'
           'dst = "192.168.1.1"\nsport = 1\ndport = 2\n')
    (r,) = walk(rules, pkt)
    assert r["fate"]["action"] == "error"
    assert "unsupported yet: -m mac on a packet received on eth1" in r["fate"]["message"]


def test_rpfilter_outside_raw_and_mangle_is_refused_as_the_kernel_refuses_it():
    # iptables-nft 1.8.9 on Linux 6.18: `-t nat -A PREROUTING -m rpfilter` fails with
    # "RULE_APPEND failed (Invalid argument)" (rpfilter_check), in any chain of the table
    assert "Invalid argument" in refusal("-m rpfilter", "nat", "PREROUTING")
    assert saved("-m rpfilter", "raw", "PREROUTING") == "-m rpfilter"
