"""The ct group: conntrack, connbytes, connlimit, connlabel, recent, hashlimit, rateest,
RATEEST, helper, cluster, cpu, nfacct.

Every saved line and refusal below is what iptables-nft 1.8.9 printed on this
machine (Linux 6.18) for the same rule, unless a comment cites kernel source.
The walks of recent, hashlimit, connlimit and connbytes are packets of
tests/kernel/scenarios/ext-{recent,hashlimit,connlimit,connbytes}.toml with the
kernel's answers to them (recorded with kptui verify --record), cut down to the
point each test makes (connbytes: the scenario's counts, read by DROP rules).
"""

from __future__ import annotations

import pytest
from ext_rules import refusal, saved

from kptui.engine.run import run_scenario
from kptui.engine.scenario import load_scenario

# -- parse and print (each expectation: iptables-save 1.8.9 on this machine) ----------

@pytest.mark.parametrize("rule,line", [
    # conntrack: protocol as a number, no /32, host bits kept, state/status prefixes
    ("-m conntrack --ctproto tcp", "-m conntrack --ctproto 6"),
    ("-m conntrack --ctorigsrc 1.1.1.1", "-m conntrack --ctorigsrc 1.1.1.1"),
    ("-m conntrack --ctorigsrc 1.1.1.1/24", "-m conntrack --ctorigsrc 1.1.1.1/24"),
    ("-m conntrack --ctorigsrc 1.2.3.4/33", "-m conntrack --ctorigsrc 1.2.3.4"),
    ("-m conntrack --ctreplsrc 1.1.1.1/255.0.255.0", "-m conntrack --ctreplsrc 1.1.1.1"),
    ("-m conntrack --ctstate ne,e", "-m conntrack --ctstate NEW,ESTABLISHED"),
    ("-m conntrack --ctstatus n,a", "-m conntrack --ctstatus ASSURED"),
    ("-m conntrack --ctorigdstport 0:0 --ctorigsrcport 80:",
     "-m conntrack --ctorigsrcport 80:65535 --ctorigdstport 0"),
    ("-m conntrack --ctexpire :5 --ctdir reply", "-m conntrack --ctexpire 0:5 --ctdir REPLY"),
    # connbytes: ! swaps the ends; an open range prints as its start
    ("-m connbytes ! --connbytes 10:100 --connbytes-mode packets --connbytes-dir reply",
     "-m connbytes ! --connbytes 10:100 --connbytes-mode packets --connbytes-dir reply"),
    ("-m connbytes --connbytes 5: --connbytes-mode bytes --connbytes-dir both",
     "-m connbytes --connbytes 5 --connbytes-mode bytes --connbytes-dir both"),
    # connlimit: ! swaps upto and above; a mask that is not a prefix is /32
    ("-m connlimit ! --connlimit-upto 3",
     "-m connlimit --connlimit-above 3 --connlimit-mask 32 --connlimit-saddr"),
    ("-m connlimit --connlimit-above 1 --connlimit-mask 255.0.255.0 --connlimit-daddr",
     "-m connlimit --connlimit-above 1 --connlimit-mask 32 --connlimit-daddr"),
    # recent: the defaults printed; --seconds with %d
    ("-m recent --set", "-m recent --set --name DEFAULT --mask 255.255.255.255 --rsource"),
    ("-m recent --rcheck --seconds 4294967295",
     "-m recent --rcheck --seconds -1 --name DEFAULT --mask 255.255.255.255 --rsource"),
    ("-m recent --update --seconds 10 --reap --rttl --hitcount 3 --name x --rdest "
     "--mask 255.255.0.0",
     "-m recent --update --seconds 10 --reap --hitcount 3 --rttl --name x "
     "--mask 255.255.0.0 --rdest"),
    # hashlimit: the rate in its largest exact unit, the expiry printed when it is not
    # the unit's; --rate-match divides the rate by its unit
    ("-m hashlimit --hashlimit-upto 60/min --hashlimit-name x",
     "-m hashlimit --hashlimit-upto 1/sec --hashlimit-burst 5 --hashlimit-name x "
     "--hashlimit-htable-expire 60000"),
    ("-m hashlimit --hashlimit-upto 1/min --hashlimit-name x --hashlimit-rate-match",
     "-m hashlimit --hashlimit-upto 1/sec --hashlimit-burst 5 --hashlimit-name x "
     "--hashlimit-htable-expire 60000 --hashlimit-rate-match --hashlimit-rate-interval 60"),
    ("-m hashlimit ! --hashlimit 1/s --hashlimit-name x --hashlimit-mode dstport,srcip",
     "-m hashlimit --hashlimit-above 1/sec --hashlimit-burst 5 --hashlimit-mode "
     "srcip,dstport --hashlimit-name x"),
    ("-m hashlimit --hashlimit-upto 1000b/s --hashlimit-burst 1m --hashlimit-name x",
     "-m hashlimit --hashlimit-upto 992b/s --hashlimit-burst 1mb --hashlimit-name x"),
    ("-m hashlimit --hashlimit-upto 1/s --hashlimit-burst 5k --hashlimit-name x "
     "--hashlimit-srcmask 255.255.0.0",
     "-m hashlimit --hashlimit-upto 1/sec --hashlimit-burst 5120 --hashlimit-name x "
     "--hashlimit-srcmask 16"),
    # the others
    ("-m connlabel --label 65541 --set", '-m connlabel --label "5" --set'),
    ("-m helper ! --helper abcdefghijklmnopqrstuvwxyz0123456789",
     "-m helper ! --helper abcdefghijklmnopqrstuvwxyz012"),
    ("-m cpu ! --cpu 0x10", "-m cpu ! --cpu 16"),
    ("-m cluster --cluster-total-nodes 32 --cluster-local-node 32 --cluster-hash-seed 1",
     "-m cluster --cluster-local-nodemask 0x80000000 --cluster-total-nodes 32 "
     "--cluster-hash-seed 0x00000001"),
    ("-m rateest --rateest RE1 --rateest-lt --rateest-bps 1.5mbit",
     "-m rateest --rateest RE1 --rateest-lt --rateest-bps 1500Kbit"),
    ("-m rateest --rateest-delta --rateest RE1 --rateest-pps1 --rateest-lt --rateest-pps2 9",
     "-m rateest --rateest-delta --rateest RE1 --rateest-pps1 0 --rateest-lt "
     "--rateest-pps2 9"),
    ("-j RATEEST --rateest-name X --rateest-interval 100us --rateest-ewmalog 1ms",
     "-j RATEEST --rateest-name X --rateest-interval 250.0ms --rateest-ewmalog 2.0s"),
])
def test_saved_as_iptables_saves_it(rule: str, line: str) -> None:
    assert saved(rule) == f"-A INPUT {line}"


@pytest.mark.parametrize("rule,message", [
    ("-m conntrack --ctstate NEW,foo,BAR", 'Bad ctstate "foo,BAR"'),
    ("-m conntrack ! --ctstatus NONE --ctproto 0",
     "conntrack: rule would never match protocol"),
    ("-m conntrack --ctdir foo", 'conntrack: Bad value for "--ctdir" option: "foo"'),
    ("-m connbytes --connbytes 5:3 --connbytes-mode bytes --connbytes-dir both",
     "5 should be less than 3"),
    ("-m recent --set --rcheck",
     'recent: option "--set" cannot be used together with "--rcheck".'),
    ("-m hashlimit --hashlimit-name x --hashlimit-mode srcip",
     "You have to specify --hashlimit"),
    ("-m hashlimit --hashlimit-upto 1kb/s --hashlimit-name x --hashlimit-burst 10",
     "burst cannot be smaller than 1024b"),
    ("-m hashlimit --hashlimit 1/s --hashlimit-above 2/s --hashlimit-name x",
     'option "--hashlimit-upto" cannot be used together with "--hashlimit-above"'),
    ("-m cluster --cluster-total-nodes 2 --cluster-local-nodemask 4 --cluster-hash-seed 1",
     "cluster match: `--cluster-local-nodemask' too big for `--cluster-total-nodes'"),
    ("-m connlabel --label foo",
     "Warning: cannot open /etc/xtables/connlabel.conf: No such file or directory"),
    ("-m rateest --rateest RE1 --rateest-lt --rateest-lt --rateest-pps 7",
     "rateest: can't specify lt/gt/eq twice"),
    ("-m rateest ! --rateest RE1 --rateest-lt --rateest-pps 5",
     "rateest: rateest can't be inverted"),
    ("-j RATEEST --rateest-name X --rateest-interval 1s", "RATEEST: ewmalog value is out of "
     "range"),
    # the kernel's checkentry (iptables-nft: RULE_APPEND failed (...))
    ("-m recent --set --seconds 5", "Invalid argument"),
    ("-m recent --rcheck --hitcount 65536", "Invalid argument"),
    ("-m recent --set --name a/b", "Invalid argument"),
    ("-m hashlimit --hashlimit-upto 1/s --hashlimit-name x --hashlimit-srcmask 33",
     "Invalid argument"),
    ("-m hashlimit --hashlimit-upto 1/day --hashlimit-burst 1000000 --hashlimit-name x",
     "Numerical result out of range"),
    ("-m connlabel --label 128", "Numerical result out of range"),
    ("-m nfacct --nfacct-name x", "No such file or directory"),
])
def test_refused_in_iptables_words(rule: str, message: str) -> None:
    assert message in refusal(rule)


# -- walks (expected: the kernel's answers, tests/kernel/scenarios/ext-*.toml) ---------

BASE = """
name = "t"
iptables = \"\"\"
{rules}
\"\"\"
[sysctl]
"net.ipv4.ip_forward" = 1
"net.ipv4.conf.all.rp_filter" = 0
"net.ipv4.conf.eth0.rp_filter" = 0
[[interfaces]]
name = "eth0"
addresses = ["192.0.2.1/24"]
[[interfaces]]
name = "eth1"
addresses = ["198.51.100.1/24"]
"""


def packet(**fields: object) -> str:
    spec = {"iif": "eth0", "proto": "udp", "src": "192.0.2.10", "dst": "198.51.100.7",
            "sport": 5555, "dport": 53, **fields}
    body = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in spec.items())
    return f"[[packets]]\n{body}\n"


def fates(rules: str, *packets: str) -> list[str]:
    text = BASE.format(rules=rules) + "".join(packets)
    out = []
    for result in run_scenario(load_scenario(text, file="t.toml")):
        r = result.to_json(with_events=False)
        fate = r["fate"]
        out.append(fate["message"] if fate["action"] == "error" else
                   f"{fate['action']} {fate.get('by', '')}")
    return out


FILTER = "*filter\n:FORWARD {policy} [0:0]\n{rules}\nCOMMIT"


def test_recent_rcheck_counts_stamps_within_seconds() -> None:
    rules = FILTER.format(policy="DROP", rules=(
        "-A FORWARD -p udp --dport 1000 -m recent --set --name knock -j ACCEPT\n"
        "-A FORWARD -p udp --dport 2000 -m recent --rcheck --seconds 2 --name knock "
        "-j ACCEPT"))
    got = fates(rules, packet(dport=2000, time=0.0), packet(dport=1000, time=0.5),
                packet(dport=2000, time=1.0), packet(src="192.0.2.20", dport=2000, time=1.2),
                packet(dport=2000, time=3.5))
    assert got == ["drop filter:FORWARD:policy", "transmit filter:FORWARD:rule:1",
                   "transmit filter:FORWARD:rule:2", "drop filter:FORWARD:policy",
                   "drop filter:FORWARD:policy"]


def test_recent_list_keeps_the_mask_of_its_first_rule() -> None:
    # xt_recent: recent_mt masks with t->mask, set by the rule that created the list
    rules = FILTER.format(policy="DROP", rules=(
        "-A FORWARD -p udp --dport 4000 -m recent --set --name dst --rdest "
        "--mask 255.255.255.0 -j ACCEPT\n"
        "-A FORWARD -p udp --dport 5000 -m recent --rcheck --name dst --rdest -j ACCEPT"))
    got = fates(rules, packet(dport=4000, time=0.0),
                packet(dst="198.51.100.9", dport=5000, time=0.1))
    assert got == ["transmit filter:FORWARD:rule:1", "transmit filter:FORWARD:rule:2"]


def test_recent_update_stamps_only_when_it_matches() -> None:
    rules = FILTER.format(policy="DROP", rules=(
        "-A FORWARD -p udp --dport 1000 -m recent --set --name knock -j ACCEPT\n"
        "-A FORWARD -p udp --dport 3000 -m recent --update --seconds 10 --hitcount 3 "
        "--name knock -j DROP\n-A FORWARD -p udp --dport 3000 -j ACCEPT"))
    got = fates(rules, *(packet(dport=d, time=t / 10) for t, d in
                         enumerate((1000, 1000, 3000, 3000, 1000, 3000))))
    assert got[2:] == ["transmit filter:FORWARD:rule:3", "transmit filter:FORWARD:rule:3",
                       "transmit filter:FORWARD:rule:1", "drop filter:FORWARD:rule:2"]


def test_hashlimit_bucket_per_source_and_its_expiry() -> None:
    rules = FILTER.format(policy="DROP", rules=(
        "-A FORWARD -p udp -m hashlimit --hashlimit-upto 1/min --hashlimit-burst 3 "
        "--hashlimit-mode srcip --hashlimit-name dns --hashlimit-htable-gcinterval 200 "
        "--hashlimit-htable-expire 1000 -j ACCEPT"))
    got = fates(rules, *(packet(time=t / 10) for t in range(4)),
                packet(src="192.0.2.20", time=0.4), packet(time=2.7))
    assert got == ["transmit filter:FORWARD:rule:1"] * 3 + ["drop filter:FORWARD:policy"] \
        + ["transmit filter:FORWARD:rule:1"] * 2


def test_hashlimit_byte_mode_refills_burst_times() -> None:
    # 1kb/s with a 2kb burst: one second's worth (65 chunks of 16 bytes) and two refills
    rules = FILTER.format(policy="DROP", rules=(
        "-A FORWARD -p udp -m hashlimit --hashlimit-upto 1kb/s --hashlimit-burst 2kb "
        "--hashlimit-name bytes -j ACCEPT"))
    got = fates(rules, packet(length=500, repeat=7))
    assert got == ["transmit filter:FORWARD:rule:1"] * 6 + ["drop filter:FORWARD:policy"]


def test_connlimit_counts_the_rules_own_connections() -> None:
    rules = FILTER.format(policy="ACCEPT", rules=(
        "-A FORWARD -p udp -m length --length 200 -j ACCEPT\n"
        "-A FORWARD -p udp -m connlimit --connlimit-above 2 --connlimit-mask 24 -j DROP"))
    got = fates(rules, packet(sport=1000, time=0.0),
                packet(src="192.0.2.20", sport=1001, time=0.1),
                packet(sport=1000, time=0.2),  # listed already: still 2
                packet(sport=1002, time=0.3),  # 3: dropped, never confirmed
                packet(sport=1003, time=0.4),  # the dropped one is gone: 3 again
                packet(src="10.9.9.9", sport=1000, time=0.5),
                packet(sport=1004, length=200, time=0.6),  # skips the rule, confirmed
                packet(sport=1004, time=0.7))  # added although confirmed: 3
    assert got == ["transmit filter:FORWARD:policy"] * 3 + ["drop filter:FORWARD:rule:2"] * 2 \
        + ["transmit filter:FORWARD:policy", "transmit filter:FORWARD:rule:1",
           "drop filter:FORWARD:rule:2"]


def test_connbytes_reads_the_connections_counters() -> None:
    rules = ("*mangle\n:FORWARD ACCEPT [0:0]\n"
             "-A FORWARD -m connbytes --connbytes 2 --connbytes-mode packets "
             "--connbytes-dir original -j DROP\n"
             "-A FORWARD -m connbytes --connbytes 300:400 --connbytes-mode bytes "
             "--connbytes-dir both -j DROP\nCOMMIT")
    reply = packet(iif="eth1", src="198.51.100.7", dst="192.0.2.10", sport=53, dport=5555,
                   length=250, time=0.1)
    assert fates(rules, packet(length=100, time=0.0), reply, packet(length=60, time=0.2)) \
        == ["transmit mangle:FORWARD:policy", "drop mangle:FORWARD:rule:2",
            "drop mangle:FORWARD:rule:1"]


def test_helper_matches_no_connection_no_helper_expected() -> None:
    # xt_helper.c helper_mt: only a connection with a master (one a helper expected)
    # can match; nothing attaches a helper here (ext-helper.toml: the kernel agrees)
    rules = FILTER.format(policy="DROP", rules="-A FORWARD -m helper --helper ftp -j ACCEPT\n"
                          "-A FORWARD -m helper ! --helper ftp -j REJECT")
    (fate,) = fates(rules, packet())
    assert fate == "reject filter:FORWARD:rule:2"


@pytest.mark.parametrize("rule", [
    "-m cpu --cpu 0",
    "-m rateest --rateest RE1 --rateest-lt --rateest-pps 5",
    "-j RATEEST --rateest-name RE1 --rateest-interval 250ms --rateest-ewmalog 500ms",
])
def test_unsimulated_ones_stop_the_walk_by_name(rule: str) -> None:
    (message,) = fates(FILTER.format(policy="ACCEPT", rules=f"-A FORWARD {rule}"), packet())
    name = rule.split()[1]
    assert "unsupported yet" in message and name in message
    assert "parsed, not simulated" in message
