"""`kptui trace --format trace` prints what `xtables-monitor --trace` prints.

The expected lines were printed by xtables-monitor --trace (iptables 1.8.9, Linux
6.18) in a network namespace on this machine, for the same filter and mangle
rules restored with iptables-restore and the same two packets sent over a veth
(with `-j TRACE` rules in raw PREROUTING, whose own lines are left out here).
Only what kptui cannot know differs: the trace id (a hash of the kernel's skb
address), the peer's MAC and the IP ID.
"""

from __future__ import annotations

import re

from kptui import report
from kptui.engine.iptables import Ruleset, apply_command, restore
from kptui.engine.run import run_scenario
from kptui.engine.scenario import load_scenario

SCENARIO = '''
iptables = """
*mangle
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p tcp -j MARK --set-mark 5
COMMIT
*filter
:INPUT ACCEPT [0:0]
:CHK - [0:0]
-A INPUT -p udp -j CHK
-A INPUT -p tcp --dport 22 -m comment --comment "ssh in" -j ACCEPT
-A CHK -s 10.0.0.9 -j DROP
COMMIT
"""
[[interfaces]]
name = "vb"
addresses = ["10.0.0.2/24"]
[[packets]]
iif = "vb"
proto = "udp"
src = "10.0.0.1"
dst = "10.0.0.2"
sport = 52057
dport = 53
length = 30
[[packets]]
iif = "vb"
proto = "tcp"
src = "10.0.0.1"
dst = "10.0.0.2"
sport = 36416
dport = 22
'''

KERNEL = """\
PACKET: 2 a7cc23c5 IN=vb MACSRC=f2:75:73:5:4a:c4 MACDST=e:33:f:96:d6:3c MACPROTO=0800 SRC=10.0.0.1 DST=10.0.0.2 LEN=30 TOS=0x0 TTL=64 ID=30676 DF SPORT=52057 DPORT=53 
 TRACE: 2 a7cc23c5 mangle:PREROUTING:policy:ACCEPT 
PACKET: 2 a7cc23c5 IN=vb MACSRC=f2:75:73:5:4a:c4 MACDST=e:33:f:96:d6:3c MACPROTO=0800 SRC=10.0.0.1 DST=10.0.0.2 LEN=30 TOS=0x0 TTL=64 ID=30676 DF SPORT=52057 DPORT=53 
 TRACE: 2 a7cc23c5 filter:INPUT:rule:0x3:JUMP:CHK  -4 -t filter -A INPUT -p udp -j CHK
 TRACE: 2 a7cc23c5 filter:INPUT:policy:ACCEPT 
PACKET: 2 02283dd4 IN=vb MACSRC=f2:75:73:5:4a:c4 MACDST=e:33:f:96:d6:3c MACPROTO=0800 SRC=10.0.0.1 DST=10.0.0.2 LEN=60 TOS=0x0 TTL=64 ID=51440 DF SPORT=36416 DPORT=22 SYN 
 TRACE: 2 02283dd4 mangle:PREROUTING:rule:0x2:CONTINUE  -4 -t mangle -A PREROUTING -p tcp -j MARK --set-xmark 0x5/0xffffffff
 TRACE: 2 02283dd4 mangle:PREROUTING:policy:ACCEPT 
PACKET: 2 02283dd4 IN=vb MACSRC=f2:75:73:5:4a:c4 MACDST=e:33:f:96:d6:3c MACPROTO=0800 SRC=10.0.0.1 DST=10.0.0.2 LEN=60 TOS=0x0 TTL=64 ID=51440 DF SPORT=36416 DPORT=22 SYN MARK=0x5 
 TRACE: 2 02283dd4 filter:INPUT:rule:0x4:ACCEPT  -4 -t filter -A INPUT -p tcp -m tcp --dport 22 -m comment --comment "ssh in" -j ACCEPT
"""  # noqa: E501, W291 - the tool's own long lines and trailing spaces


def unknowable(text: str) -> str:
    """Blank the trace ids, the peer's MAC and the IP IDs: the kernel's own values."""
    text = re.sub(r"^( ?(?:PACKET|TRACE): 2) [0-9a-f]{8}", r"\1 ID", text, flags=re.M)
    text = re.sub(r"MACSRC=\S+ MACDST=\S+", "MACSRC=- MACDST=-", text)
    return re.sub(r" ID=\d+", " ID=-", text)


def trace_text() -> str:
    scenario = load_scenario(SCENARIO, file="t.toml")
    results = list(run_scenario(scenario))
    return report.as_trace(results, ruleset=scenario.build_box().ruleset)


def test_lines_are_the_kernels_but_for_what_kptui_cannot_know():
    # the real SYN carried Linux's 20 bytes of TCP options; the scenario's has none
    assert unknowable(trace_text()) == unknowable(KERNEL.replace("LEN=60", "LEN=40"))


def test_each_packet_keeps_one_trace_id_and_packets_differ():
    ids = [line.split()[2] for line in trace_text().splitlines()]
    first, second = ids[0], ids[-1]
    assert first != second
    assert ids == [first] * 5 + [second] * 5


def test_rule_handles_follow_nf_tables_numbering():
    # `nft -a list ruleset` after these commands with iptables-nft 1.8.9 on this machine:
    # INPUT 1, its rule 2, OUTPUT 3, its rule 4, X 5, its rule 6, the -I rule 7; -R keeps
    # the replaced rule's handle; a restore without --noflush starts the table again at
    # 1 (chains in declaration order, then rules in file order); --noflush goes on.
    rs = Ruleset()
    for cmd in ("-A INPUT -j ACCEPT", "-A OUTPUT -j ACCEPT", "-N X", "-A X -j RETURN",
                "-I INPUT -j DROP", "-R INPUT 2 -j LOG"):
        apply_command(rs, f"iptables {cmd}", file="t", line=1)
    chains = rs.tables["filter"].chains
    assert [(c, chains[c].handle, [r.handle for r in chains[c].rules])
            for c in ("INPUT", "OUTPUT", "X")] == [("INPUT", 1, [7, 2]), ("OUTPUT", 3, [4]),
                                                  ("X", 5, [6])]
    restore(rs, "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:Y - [0:0]\n"
                "-A Y -j RETURN\n-A INPUT -j Y\nCOMMIT\n", file="r")
    chains = rs.tables["filter"].chains
    assert [(c, chains[c].handle, [r.handle for r in chains[c].rules])
            for c in ("INPUT", "FORWARD", "Y")] == [("INPUT", 1, [5]), ("FORWARD", 2, []),
                                                   ("Y", 3, [4])]
    restore(rs, "*filter\n-A INPUT -j ACCEPT\nCOMMIT\n", file="r", noflush=True)
    assert [r.handle for r in rs.tables["filter"].chains["INPUT"].rules] == [5, 6]


def test_classic_profiles_keep_the_legacy_trace_lines():
    text = SCENARIO.replace('iptables = """', 'profile = "classic-2.4"\niptables = """') \
        .replace("-A CHK -s 10.0.0.9 -j DROP\n", "").replace(":CHK - [0:0]\n", "") \
        .replace("-j CHK", "-j ACCEPT").replace(' -m comment --comment "ssh in"', "")
    scenario = load_scenario(text, file="t.toml")
    out = report.as_trace(list(run_scenario(scenario)), ruleset=scenario.build_box().ruleset,
                          profile="classic-2.4")
    assert out.startswith("# packet 0\nTRACE: ")
