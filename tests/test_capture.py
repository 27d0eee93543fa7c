"""`kptui capture --from DIR` and the scenario keys it writes (conntrack, nftables).

No root needed: tests/data/capture/router holds the dumps the README's one-liner
(kptui.capture.dumps.ONE_LINER) wrote in a namespace box on Linux 6.18 with iproute2
6.1, iptables-nft 1.8.9, nft 1.0.6, ipset 7.17 and conntrack-tools 1.4.7 (a NAT router
with policy routing, htb, an ipset, one conntrack entry and a native nft table; its
sysctl.txt cut to the net.* lines). What the tools printed is what the expected
values below come from. The live captures and their round trips through the kernel
are tests/test_capture_roundtrip.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kptui.cli import main
from kptui.engine.errors import ParseError
from kptui.engine.scenario import load_scenario

ROUTER = Path(__file__).parent / "data" / "capture" / "router"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out = capsys.readouterr()
    return status, out.out, out.err


@pytest.fixture
def dumps(tmp_path: Path) -> Path:
    copy = tmp_path / "dumps"
    shutil.copytree(ROUTER, copy)
    return copy


# -- capture --from ------------------------------------------------------------------------

def test_from_dir_writes_a_scenario_kptui_loads(capsys, tmp_path: Path):
    out = tmp_path / "box.toml"
    status, stdout, err = run(capsys, "capture", "--from", str(ROUTER), "-o", str(out))
    assert status == 0, err
    assert stdout == ""
    assert "note(s)" in err
    text = out.read_text()
    scenario = load_scenario(text, file=str(out))
    box = scenario.build_box()
    assert [i.name for i in scenario.interfaces] == ["eth0", "eth1"]
    assert box.sysctl("net.ipv4.ip_forward") == 1
    assert box.sysctl("net.ipv4.conf.eth1.rp_filter") == 1
    assert box.show_routes("100") == ["10.8.0.0/16 via 192.168.1.254 dev eth0"]
    assert "1000:\tfrom all fwmark 0x1 lookup 100" in box.routes.show_rules()
    assert "tc class add dev eth1 parent 1: classid 1:20 htb" in text
    # the conntrack entry, its reply tuple masqueraded, with the seconds left at capture
    [conn] = box.conntrack.entries()
    assert conn.line(0).startswith("tcp      6 3599 ESTABLISHED src=192.168.1.10 ")
    # the native table is kept and named; iptables-nft's own tables are not repeated
    assert "table inet extra" in scenario.nftables
    assert "table ip nat" not in scenario.nftables
    assert scenario.notes == ["unsupported yet: native nftables table inet extra: kept "
                              "verbatim in the scenario's nftables text but not simulated "
                              "(its rules do not run in kptui's walk)"]


def test_an_established_packet_is_seen_as_the_box_sees_it(capsys, tmp_path: Path):
    out = tmp_path / "box.toml"
    run(capsys, "capture", "--from", str(ROUTER), "-o", str(out))
    # the reply of the captured connection: ESTABLISHED, de-masqueraded, forwarded
    status, stdout, _err = run(capsys, "trace", str(out), "--json", "--send",
                               "tcp 198.51.100.7:443 > 203.0.113.2:41000 iif eth1 flags A")
    assert status == 0
    row = json.loads(stdout)
    assert row["fate"] == {"action": "transmit", "iface": "eth0",
                           "by": "filter:FORWARD:rule:2"}
    assert (row["out"]["dst"], row["out"]["dport"]) == ("192.168.1.10", 40000)


def test_a_missing_dump_is_a_named_gap(capsys, dumps: Path, tmp_path: Path):
    (dumps / "ipset-save.txt").unlink()
    (dumps / "conntrack.txt").unlink()
    status, stdout, err = run(capsys, "capture", "--from", str(dumps))
    assert "#  - the ipset sets not captured: ipset-save.txt is not in" in stdout
    # the iptables rules use the set that is now missing: written anyway, and exit 1
    assert status == 1
    assert "the scenario does not load in kptui" in err and "blocked" in err
    assert "the conntrack table not captured: conntrack.txt is not in" in stdout


def test_missing_gaps_only_and_the_scenario_still_loads(capsys, dumps: Path):
    for name in ("conntrack.txt", "nft-ruleset.txt", "sysctl.txt", "tc-qdisc.json",
                 "ip-rule.json", "rt-tables.txt", "iptables-legacy-save.txt"):
        (dumps / name).unlink()
    status, stdout, err = run(capsys, "capture", "--from", str(dumps))
    assert status == 0, err
    for what in ("the conntrack table", "the nftables ruleset (native tables)",
                 "the sysctls", "the tc qdiscs", "the routing rules (ip rule)"):
        assert f"#  - {what} not captured: " in stdout
    load_scenario(stdout, file="captured").build_box()


def test_interfaces_and_addresses_are_required(capsys, dumps: Path):
    (dumps / "ip-link.json").unlink()
    status, _out, err = run(capsys, "capture", "--from", str(dumps))
    assert status == 2
    assert err.startswith(f"kptui: error: {dumps / 'ip-link.json'}: no such file")


def test_not_a_directory(capsys, tmp_path: Path):
    status, _out, err = run(capsys, "capture", "--from", str(tmp_path / "nope"))
    assert status == 2
    assert "not a directory" in err


@pytest.mark.parametrize(("file", "garbage", "where", "what"), [
    ("ip-route.json", '[{"dst": "10.0.0.0/24"},\n {"dst": ]', ":2:", "not JSON"),
    ("ip-route.json", '[{"dst": "10.0.0.300/24", "dev": "eth0"}]', ":1:",
     "expected an IPv4 prefix"),
    ("ip-link.json", '{"ifname": "eth0"}', ":1:", "not a JSON array"),
    ("ip-addr.json", '[{"ifname": "eth0", "addr_info": [{"family": "inet", "local": 5}]}]',
     ":1:", '"local" must be a string'),
    ("ip-rule.json", '[{"priority": "x"}]', ":1:", "priority"),
    ("tc-qdisc.json", "qdisc htb 1: root", ":1:", "not a JSON array"),
    ("conntrack.txt", "tcp 6 100 ESTABLISHED src=1.2.3.4 dst=5.6.7.8 sport=1 dport=2 "
     "src=5.6.7.8 dst=1.2.3.4 sport=2 dport=1 colour=blue\n", ":1:", "unknown field colour="),
    ("conntrack.txt", "\n\ntcp 6 soon ESTABLISHED\n", ":3:", "timeout"),
    ("sysctl.txt", "net.ipv4.ip_forward = 1\nthis is not a sysctl\n", ":2:",
     "expected `NAME = VALUE`"),
    ("sysctl.txt", "net.ipv4.ip_forward = yes\n", "", "is not a number"),
    ("tc-class-eth1.txt", "klass htb 1:20 root rate 1Mbit\n", ":1:", "expected `class KIND"),
    ("nft-ruleset.txt", "table inet x {\n chain y {\n", ":1:", "never closed"),
])
def test_garbage_in_a_dump_is_one_error_naming_the_file_and_line(capsys, dumps: Path, file: str,
                                                                  garbage: str, where: str,
                                                                  what: str):
    (dumps / file).write_text(garbage)
    status, stdout, err = run(capsys, "capture", "--from", str(dumps))
    assert status == 2, stdout
    assert stdout == ""
    assert err.count("\n") == 1
    assert err.startswith(f"kptui: error: {dumps / file}{where}"), err
    assert what in err
    assert "Traceback" not in err


def test_not_utf8_is_a_byte_offset(capsys, dumps: Path):
    (dumps / "iptables-save.txt").write_bytes(b"*filter\n\xff\xfe\n")
    status, _out, err = run(capsys, "capture", "--from", str(dumps))
    assert status == 2
    assert err.strip() == (f"kptui: error: {dumps / 'iptables-save.txt'}: byte offset 8: "
                           "not UTF-8 text (expected the output of the command that makes "
                           "this dump)")


def test_output_is_written_atomically_or_not_at_all(capsys, tmp_path: Path):
    target = tmp_path / "missing-dir" / "box.toml"
    status, _out, err = run(capsys, "capture", "--from", str(ROUTER), "-o", str(target))
    assert status == 2
    assert "cannot save here" in err
    assert not target.parent.exists()
    good = tmp_path / "box.toml"
    good.write_text("old")
    run(capsys, "capture", "--from", str(ROUTER), "-o", str(good))
    assert good.read_text().startswith("# Captured by kptui capture")
    assert [p.name for p in tmp_path.iterdir()] == ["box.toml"]  # no temporary file left


def test_legacy_rules_alone_are_used_and_noted(capsys, dumps: Path):
    legacy = (dumps / "iptables-save.txt").read_text().replace("nf_tables", "legacy")
    (dumps / "iptables-legacy-save.txt").write_text(legacy)
    (dumps / "iptables-save.txt").write_text("")
    status, stdout, _err = run(capsys, "capture", "--from", str(dumps))
    assert status == 0
    assert "#  - iptables: the rules are the legacy backend's" in stdout
    assert "-A POSTROUTING -o eth1 -j MASQUERADE" in stdout


def test_legacy_rules_beside_nft_ones_are_kept_as_comments(capsys, dumps: Path):
    (dumps / "iptables-legacy-save.txt").write_text(
        "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 23 -j DROP\nCOMMIT\n")
    status, stdout, _err = run(capsys, "capture", "--from", str(dumps))
    assert status == 0
    assert "the legacy backend has rules too: unsupported yet" in stdout
    assert "#   -A INPUT -p tcp --dport 23 -j DROP" in stdout


# -- the conntrack scenario key ------------------------------------------------------------

BASE = """
iptables = '''
*filter
:FORWARD DROP [0:0]
-A FORWARD -m conntrack --ctstate ESTABLISHED -j ACCEPT
COMMIT
*nat
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o eth1 -j MASQUERADE
COMMIT
'''
[sysctl]
"net.ipv4.ip_forward" = 1
[[interfaces]]
name = "eth0"
addresses = ["192.168.1.1/24"]
[[interfaces]]
name = "eth1"
addresses = ["203.0.113.2/24"]
"""


def scenario(conntrack: str, packets: str = "") -> str:
    return f"conntrack = '''\n{conntrack}'''\n" + BASE + packets


def test_conntrack_entries_are_the_box_s_at_time_zero():
    text = scenario("ipv4     2 udp      17 29 src=192.168.1.11 dst=198.51.100.53 sport=5353 "
                    "dport=53 src=198.51.100.53 dst=192.168.1.11 sport=53 dport=5353 mark=7 "
                    "zone=0 use=2\n"
                    "icmp     1 20 src=192.168.1.12 dst=198.51.100.1 type=8 code=0 id=9 "
                    "[UNREPLIED] src=198.51.100.1 dst=192.168.1.12 type=0 code=0 id=9 mark=0 "
                    "use=1\n")
    box = load_scenario(text, file="s.toml").build_box()
    udp, icmp = box.conntrack.entries()
    # as `conntrack -L` prints them again (the /proc form's "ipv4 2" and zone=0 dropped)
    assert udp.line(0) == ("udp      17 29 src=192.168.1.11 dst=198.51.100.53 sport=5353 "
                           "dport=53 src=198.51.100.53 dst=192.168.1.11 sport=53 dport=5353 "
                           "mark=7 use=1")
    assert icmp.line(10) == ("icmp     1 10 src=192.168.1.12 dst=198.51.100.1 type=8 code=0 "
                             "id=9 [UNREPLIED] src=198.51.100.1 dst=192.168.1.12 type=0 "
                             "code=0 id=9 mark=0 use=1")


TCP_ENTRY = ("tcp      6 60 ESTABLISHED src=192.168.1.10 dst=198.51.100.7 sport=40000 "
             "dport=443 src=198.51.100.7 dst=203.0.113.2 sport=443 dport=41000 [ASSURED] "
             "mark=0 use=1\n")
REPLY = """
[[packets]]
iif = "eth1"
proto = "tcp"
src = "198.51.100.7"
dst = "203.0.113.2"
sport = 443
dport = 41000
flags = "A"
time = {time}
"""


def test_a_reply_before_the_timeout_is_established_and_un_natted(capsys, tmp_path: Path):
    # kernel answer: conntrack-flows round trip (tests/kernel/capture_roundtrips.py)
    path = tmp_path / "s.toml"
    path.write_text(scenario(TCP_ENTRY, REPLY.format(time=59)))
    status, stdout, _err = run(capsys, "trace", str(path), "--json")
    assert status == 0
    row = json.loads(stdout)
    assert row["fate"]["action"] == "transmit"
    assert (row["out"]["dst"], row["out"]["dport"]) == ("192.168.1.10", 40000)


def test_after_its_timeout_the_entry_is_gone(capsys, tmp_path: Path):
    path = tmp_path / "s.toml"
    path.write_text(scenario(TCP_ENTRY, REPLY.format(time=60)))
    status, stdout, _err = run(capsys, "trace", str(path), "--json")
    assert status == 0
    # a NEW packet to the box's own address now: delivered, not de-masqueraded
    assert json.loads(stdout)["fate"] == {"action": "deliver", "iface": "eth1",
                                          "by": "routing:local"}


@pytest.mark.parametrize(("line", "column", "message"), [
    ("tcp 6 60 ESTABLISHED src=1.2.3.4 dst=5.6.7.8 sport=1 dport=2", 0,
     "an entry has two tuples"),
    ("tcp 6 60 BOGUS src=1.2.3.4", 10, "a tcp entry names its state"),
    ("udp 6 60 src=1.2.3.4", 5, "udp is protocol 17"),
    ("udp 17 60 src=1.2.3.400 dst=5.6.7.8 sport=1 dport=2 src=5.6.7.8 dst=1.2.3.4 sport=2 "
     "dport=1", 11, "src= is not an IPv4 address"),
    ("udp 17 60 src=1.2.3.4 dst=5.6.7.8 sport=1 dport=2 src=5.6.7.8 dst=1.2.3.4 sport=2 "
     "dport=70000", 0, "dport: 70000 is out of range 0..65535"),
    ("udp 17 60 src=1.2.3.4 dst=5.6.7.8 sport=1 dport=2 [FOO] src=5.6.7.8 dst=1.2.3.4 "
     "sport=2 dport=1", 0, "expected [UNREPLIED] or [ASSURED]"),
    ("udp 17 60 src=1.2.3.4 dst=5.6.7.8 sport=1 dport=2 src=5.6.7.8 dst=1.2.3.4 sport=2 "
     "dport=1 zone=3", 0, "unsupported yet: conntrack zones"),
    ("sctp 132 60 CLOSED src=1.2.3.4", 1, "unsupported yet: conntrack entries of protocol "
     "sctp"),
    ("ipv6 10 tcp 6 60 ESTABLISHED src=::1", 1, "unsupported yet: IPv6 entries"),
    ("tcp 6 60 ESTABLISHED src=1.2.3.4 dst=5.6.7.8 sport=1 dport=2 src=5.6.7.8 dst=1.2.3.4 "
     "sport=2 dport=1 helper=ftp", 0, "unsupported yet: conntrack helpers"),
    ("tcp 6 60 ESTABLISHED src=1.2.3.4 dst=5.6.7.8 sport=1 dport=2 src=5.6.7.8 dst=1.2.3.4 "
     "sport=2 dport=1 [OFFLOAD]", 0, "unsupported yet: flowtable-offloaded entries"),
])
def test_a_bad_conntrack_line_names_its_line_and_word(line: str, column: int, message: str):
    text = scenario("# a comment\n" + line + "\n")
    with pytest.raises(ParseError) as info:
        load_scenario(text, file="s.toml").build_box()
    err = info.value
    assert (err.file, err.line) == ("s.toml", 3)
    if column:
        assert err.column == column
    assert message in str(err)


def test_two_entries_with_one_tuple_is_file_exists():
    entry = ("udp 17 60 src=1.2.3.4 dst=5.6.7.8 sport=1 dport=2 src=5.6.7.8 dst=1.2.3.4 "
             "sport=2 dport=1\n")
    with pytest.raises(ParseError, match=r"s.toml:3: conntrack: File exists \(the entry on "
                                         r"line 2 has"):
        load_scenario(scenario(entry + entry), file="s.toml").build_box()


def test_verify_recreates_the_entries_with_conntrack_insert():
    # The commands conntrack-tools 1.4.7 takes (checked live: conntrack-flows round trip).
    from kptui.verify import conntrack_commands

    sc = load_scenario(scenario(TCP_ENTRY), file="s.toml")
    [(line, argv)] = conntrack_commands(sc)
    assert line == 2
    assert argv == ["conntrack", "-I", "-p", "tcp", "-s", "192.168.1.10", "-d",
                    "198.51.100.7", "--sport", "40000", "--dport", "443", "--state",
                    "ESTABLISHED", "-t", "60", "-u", "SEEN_REPLY,ASSURED", "--src-nat",
                    "203.0.113.2:41000"]


# -- the nftables scenario key ---------------------------------------------------------------

def test_native_tables_are_a_note_when_loaded(capsys, tmp_path: Path):
    path = tmp_path / "s.toml"
    path.write_text("nftables = '''\ntable inet mine {\n  chain input {\n    type filter hook "
                    "input priority 0; policy drop;\n  }\n}\ntable bridge b {\n}\n'''\n"
                    + BASE + REPLY.format(time=0))
    status, _out, err = run(capsys, "trace", str(path))
    assert status == 0
    assert err == ("kptui: note: unsupported yet: native nftables table inet mine, table "
                   "bridge b: kept verbatim in the scenario's nftables text but not "
                   "simulated (its rules do not run in kptui's walk)\n")


def test_nftables_text_that_is_not_tables_is_refused(capsys, tmp_path: Path):
    path = tmp_path / "s.toml"
    path.write_text("nftables = '''\nflush ruleset\n'''\n" + BASE)
    status, _out, err = run(capsys, "trace", str(path))
    assert status == 2
    assert err.startswith(f"kptui: error: {path}:2: nftables: expected `table FAMILY NAME {{`")


def test_a_live_capture_without_net_admin_says_so(capsys, monkeypatch):
    from kptui.capture import dumps

    monkeypatch.setattr(dumps, "has_net_admin", lambda: False)
    status, stdout, err = run(capsys, "capture")
    assert (status, stdout) == (2, "")
    assert err == ("kptui: error: capture reads the iptables, conntrack and tc state of this "
                   "box: it needs root or CAP_NET_ADMIN (run it with sudo)\n")
    status, _out, err = run(capsys, "trace", "--live")
    assert status == 2 and "needs root or CAP_NET_ADMIN" in err


def test_live_and_a_scenario_file_are_one_or_the_other(capsys):
    status, _out, err = run(capsys, "trace", "--live", "--demo")
    assert status == 2
    assert err == "kptui: error: give one of a scenario file, --demo or --live\n"


# `tc -j filter show dev d0 parent 1:` of iproute2 6.1 on Debian's 6.1 kernel (in qemu:
# tests/kernel/vmkernel.py), after `tc filter add ... prio 1 handle 7 fw classid 1:20`,
# `prio 2 handle 8/0xff fw classid 1:10`, `prio 3 matchall classid 1:20`, `prio 4 basic
# classid 1:10`, `prio 5 u32 match ip dst 1.2.3.4/32 police rate 1mbit burst 10k drop
# flowid 1:10`, `prio 6 matchall action police rate 2mbit burst 20k conform-exceed
# drop/ok` and `prio 7 u32 match u32 0 0 at 0 action drop`. The fw objects are not JSON.
TC_FILTERS = (
    '[{"protocol":"ip","pref":1,"kind":"fw","chain":0},{"protocol":"ip","pref":1,"kind":"fw",'
    '"chain":0,"options":{handle 0x7 classid 1:20 }},{"protocol":"ip","pref":2,"kind":"fw",'
    '"chain":0},{"protocol":"ip","pref":2,"kind":"fw","chain":0,"options":{handle 0x8/0xff '
    'classid 1:10 }},{"protocol":"ip","pref":3,"kind":"matchall","chain":0},{"protocol":"ip",'
    '"pref":3,"kind":"matchall","chain":0,"options":{"handle":1,"flowid":"1:20","not_in_hw":'
    'true}},{"protocol":"ip","pref":4,"kind":"basic","chain":0},{"protocol":"ip","pref":4,'
    '"kind":"basic","chain":0,"options":{"handle":"1","flowid":"1:10"}},{"protocol":"ip",'
    '"pref":5,"kind":"u32","chain":0},{"protocol":"ip","pref":5,"kind":"u32","chain":0,'
    '"options":{"fh":"800:","ht_divisor":1}},{"protocol":"ip","pref":5,"kind":"u32","chain":0,'
    '"options":{"fh":"800::800","order":2048,"key_ht":"800","bkt":"0","flowid":"1:10",'
    '"not_in_hw":true,"match":{"value":"1020304","mask":"ffffffff","offmask":"","off":16},'
    '"kind":"police","index":1,"control_action":{"type":"drop"},"overhead":0,"ref":1,'
    '"bind":1}},{"protocol":"ip","pref":6,"kind":"matchall","chain":0},{"protocol":"ip",'
    '"pref":6,"kind":"matchall","chain":0,"options":{"handle":1,"not_in_hw":true,"actions":'
    '[{"order":1,"kind":"police","index":2,"control_action":{"type":"drop"},"overhead":0,'
    '"ref":1,"bind":1}]}},{"protocol":"ip","pref":7,"kind":"u32","chain":0},{"protocol":"ip",'
    '"pref":7,"kind":"u32","chain":0,"options":{"fh":"802:","ht_divisor":1}},{"protocol":'
    '"ip","pref":7,"kind":"u32","chain":0,"options":{"fh":"802::800","order":2048,"key_ht":'
    '"802","bkt":"0","not_in_hw":true,"match":{"value":"0","mask":"0","offmask":"","off":0},'
    '"actions":[{"order":1,"kind":"gact","control_action":{"type":"drop"},"prob":{'
    '"random_type":"none","control_action":{"type":"pass"},"val":0},"index":1,"ref":1,'
    '"bind":1}]}}]')


def test_tc_filters_as_iproute2_prints_them():
    from kptui.capture import tc
    from kptui.capture.dumps import Dump

    out = tc.Tc()
    lines = tc.filters("d0", "1:", Dump("tc_filter", TC_FILTERS, "f.json"), out)
    head = "tc filter add dev d0 parent 1: protocol ip prio"
    assert lines[:4] == [f"{head} 1 handle 0x7 fw classid 1:20",
                         f"{head} 2 handle 0x8/0xff fw classid 1:10",
                         f"{head} 3 matchall flowid 1:20",
                         f"{head} 4 basic flowid 1:10"]
    # police: not in the JSON (no rate nor burst), so never written as if it were not there
    assert lines[4].startswith(f"# unsupported yet: {head} 5 u32 ")
    assert lines[5].startswith(f"# unsupported yet: {head} 6 matchall ")
    assert lines[6] == f"{head} 7 u32 match u32 0x00000000 0x00000000 at 0 action drop"
    assert out.notes == [
        "filter on d0 parent 1:: unsupported yet (u32: bind, control_action, index, kind, "
        "overhead, ref): written as a comment",
        "filter on d0 parent 1:: unsupported yet (matchall: action police): written as a "
        "comment"]
