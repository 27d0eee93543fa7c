"""The "targets" extensions: NFLOG, NFQUEUE, CT, CLASSIFY, CHECKSUM, AUDIT, HMARK,
IDLETIMER, LED, SECMARK, CONNSECMARK, SYNPROXY, TEE, TPROXY and the NAT targets.

Every saved line and refusal below is what iptables-nft 1.8.9 printed on this
machine (Linux 6.18) for the same rule, unless a comment cites the C source
(LED: this kernel has no xt_LED, so libxt_LED.c's LED_save is the reference).
Simulated targets are also checked end to end against the kernel by
tests/kernel/scenarios/ext-{NFQUEUE,NFLOG,HMARK,CHECKSUM,AUDIT,CLASSIFY}.toml;
the HMARK marks here are the values that kernel put on the same packets.
"""

from __future__ import annotations

import json
import random

import pytest
from ext_rules import refusal, saved

from kptui.engine.errors import UnsupportedError
from kptui.engine.events import LogLine, TargetApplied
from kptui.engine.iptables import MatchContext, Ruleset, apply_command, run_chain
from kptui.engine.packet import Packet
from kptui.engine.run import run_scenario
from kptui.engine.scenario import load_scenario

# -- parse and print (each expectation: iptables-save 1.8.9 on this machine) ----------

@pytest.mark.parametrize("table,chain,rule,line", [
    # NAT: ports as __NAT_print prints them, service names resolved, ranges of one port
    # printed as one, a shifted range kept by DNAT (revision 2) and lost by SNAT and
    # MASQUERADE (revision 0: saved /0), ":port" alone, and "12:80" (C's test for
    # "[]:port" looks at the third character), an address range in any order
    ("nat", "PREROUTING", "-p tcp -j DNAT --to-destination 1.1.1.1:10-20/ftp",
     "-p tcp -j DNAT --to-destination 1.1.1.1:10-20/21"),
    ("nat", "PREROUTING", "-p tcp -j DNAT --to-destination 1.1.1.1:10-20/5x",
     "-p tcp -j DNAT --to-destination 1.1.1.1:10-20/5"),
    ("nat", "PREROUTING", "-p tcp -j DNAT --to-destination 1.1.1.1:0x10-020",
     "-p tcp -j DNAT --to-destination 1.1.1.1:16"),
    ("nat", "PREROUTING", "-p tcp -j DNAT --to-destination 1.1.1.1:ssh",
     "-p tcp -j DNAT --to-destination 1.1.1.1:22"),
    ("nat", "PREROUTING", "-p tcp -j DNAT --to-destination :80",
     "-p tcp -j DNAT --to-destination :80"),
    ("nat", "PREROUTING", "-p tcp -j DNAT --to-destination 12:80",
     "-p tcp -j DNAT --to-destination :80"),
    ("nat", "PREROUTING", "-p tcp -j DNAT --to-destination 1.1.1.1-1.1.1.0",
     "-p tcp -j DNAT --to-destination 1.1.1.1-1.1.1.0"),
    ("nat", "PREROUTING", "-p icmp -j DNAT --to-destination 1.1.1.1:80",
     "-p icmp -j DNAT --to-destination 1.1.1.1:80"),
    ("nat", "PREROUTING", "! -p tcp -j DNAT --to-destination 1.1.1.1:80",
     "! -p tcp -j DNAT --to-destination 1.1.1.1:80"),
    ("nat", "OUTPUT", "-p tcp -j DNAT --to-destination 1.1.1.1:80 --persistent --random",
     "-p tcp -j DNAT --to-destination 1.1.1.1:80 --random --persistent"),
    ("nat", "POSTROUTING", "-p tcp -j SNAT --to-source 1.1.1.1:10-20/5",
     "-p tcp -j SNAT --to-source 1.1.1.1:10-20/0"),
    ("nat", "POSTROUTING", "-p tcp -j MASQUERADE --to-ports 10-20/5",
     "-p tcp -j MASQUERADE --to-ports 10-20/0"),
    ("nat", "OUTPUT", "-p udp -j REDIRECT --to-ports 512-512", "-p udp -j REDIRECT --to-ports 512"),
    ("nat", "OUTPUT", "-p tcp -j REDIRECT --to-ports ssh", "-p tcp -j REDIRECT --to-ports 22"),
    # CLASSIFY_save: "%.4x:%.4x"
    ("mangle", "FORWARD", "-j CLASSIFY --set-class 0000:ffff", "-j CLASSIFY --set-class 0000:ffff"),
    ("mangle", "FORWARD", "-j CLASSIFY --set-class 10000:1", "-j CLASSIFY --set-class 0000:0001"),
    # NFQUEUE: the queue number always; a balance range with an empty end is 65535
    ("filter", "INPUT", "-j NFQUEUE --queue-bypass", "-j NFQUEUE --queue-num 0 --queue-bypass"),
    ("filter", "INPUT", "-j NFQUEUE --queue-balance 5:", "-j NFQUEUE --queue-balance 5:65535"),
    ("filter", "INPUT", "-j NFQUEUE --queue-cpu-fanout --queue-balance 0x10:0x20",
     "-j NFQUEUE --queue-balance 16:32 --queue-cpu-fanout"),
    # NFLOG through nft's log expression: --nflog-range and a 0 threshold vanish
    ("filter", "INPUT", "-j NFLOG --nflog-range 5", "-j NFLOG"),
    ("filter", "INPUT", "-j NFLOG --nflog-size 0x10 --nflog-group 010 --nflog-threshold 0",
     "-j NFLOG --nflog-group 8 --nflog-size 16"),
    ("filter", "INPUT", "-j NFLOG --nflog-prefix 'a\"b'", '-j NFLOG --nflog-prefix "a\\"b"'),
    ("filter", "INPUT", f"-j NFLOG --nflog-prefix {'a' * 200}",
     f"-j NFLOG --nflog-prefix {'a' * 127}"),
    # CT: events in table order, zone 0 not printed, a direction with "mark"
    ("raw", "PREROUTING", "-j CT --ctevents mark,new,new", "-j CT --ctevents new,mark"),
    ("raw", "PREROUTING", "-j CT --zone-orig 0", "-j CT"),
    ("raw", "PREROUTING", "-j CT --zone MARK --zone-orig 3", "-j CT --zone-orig mark"),
    ("raw", "PREROUTING", "-j CT --zone 0x10", "-j CT --zone 16"),
    ("raw", "PREROUTING", "-j CT --notrack --timeout nope", "-j CT --notrack --timeout nope"),
    ("raw", "PREROUTING", "-p udp -j CT --helper H.245", "-p udp -j CT --helper H.245"),
    # HMARK: tuple words are prefixes ("s" is src), a word overrides an earlier prefix,
    # a mask that is no prefix (or "33", read as 0.0.0.33) keeps all 32 bits
    ("filter", "INPUT", "-j HMARK --hmark-mod 3 --hmark-rnd 1 --hmark-tuple s",
     "-j HMARK --hmark-src-prefix 32 --hmark-rnd 0x00000001 --hmark-mod 3"),
    ("filter", "INPUT", "-j HMARK --hmark-mod 3 --hmark-rnd 1 --hmark-tuple src,dst,sport,dport,"
     "proto", "-j HMARK --hmark-src-prefix 32 --hmark-dst-prefix 32 --hmark-sport-mask 0xffff "
     "--hmark-dport-mask 0xffff --hmark-proto-mask 0xffff --hmark-rnd 0x00000001 --hmark-mod 3"),
    ("filter", "INPUT", "-j HMARK --hmark-mod 3 --hmark-rnd 1 --hmark-src-prefix 16 "
     "--hmark-tuple src", "-j HMARK --hmark-src-prefix 32 --hmark-rnd 0x00000001 --hmark-mod 3"),
    ("filter", "INPUT", "-j HMARK --hmark-mod 3 --hmark-rnd 1 --hmark-src-prefix 255.0.255.0",
     "-j HMARK --hmark-src-prefix 32 --hmark-rnd 0x00000001 --hmark-mod 3"),
    ("filter", "INPUT", "-j HMARK --hmark-mod 3 --hmark-rnd 1 --hmark-dst-prefix 33",
     "-j HMARK --hmark-dst-prefix 32 --hmark-rnd 0x00000001 --hmark-mod 3"),
    ("filter", "INPUT", "-j HMARK --hmark-mod 3 --hmark-rnd 1 --hmark-tuple ct "
     "--hmark-offset 0x10", "-j HMARK --hmark-rnd 0x00000001 --hmark-mod 3 --hmark-offset 16 "
     "--hmark-tuple ct"),
    ("filter", "INPUT", "-j HMARK --hmark-mod 3 --hmark-rnd 1 --hmark-tuple spi --hmark-sport 3",
     "-j HMARK --hmark-spi-mask 0xffffffff --hmark-sport 0x0003 --hmark-rnd 0x00000001 "
     "--hmark-mod 3"),
    # the others
    ("mangle", "FORWARD", "-j AUDIT --type DROP", "-j AUDIT --type drop"),
    ("filter", "INPUT", "-j IDLETIMER --timeout 5 --label abcdefghijklmnopqrstuvwxyz0123",
     "-j IDLETIMER --timeout 5 --label abcdefghijklmnopqrstuvwxyz0"),
    ("filter", "INPUT", "-p tcp -j SYNPROXY --mss 70000 --wscale 300",
     "-p tcp -j SYNPROXY --wscale 44 --mss 4464"),
    ("filter", "INPUT", "-j TEE --gateway 1.1.1.1 --oif abcdefghijklmnopqrstuvwxyz",
     "-j TEE --gateway 1.1.1.1 --oif abcdefghijklmno"),
    ("filter", "INPUT", "-j TEE --gateway 010.1.1.1", "-j TEE --gateway 8.1.1.1"),
    ("mangle", "PREROUTING", "-p tcp -j TPROXY --on-port ssh --tproxy-mark 5",
     "-p tcp -j TPROXY --on-port 22 --on-ip 0.0.0.0 --tproxy-mark 0x5/0xffffffff"),
    ("mangle", "INPUT", "-j CONNSECMARK --restore", "-j CONNSECMARK --restore"),
    # LED_save (libxt_LED.c): the id always quoted; the u32 delay printed with %d
    ("filter", "INPUT", '-j LED --led-trigger-id \'a"b\' --led-delay inf',
     '-j LED --led-trigger-id "a\\"b" --led-delay -1'),
])
def test_saved_as_iptables_saves_it(table, chain, rule, line):
    assert saved(rule, table, chain) == f"-A {chain} {line}"


@pytest.mark.parametrize("table,chain,rule,message", [
    ("nat", "PREROUTING", "-p tcp -j DNAT --to-destination 1.1.1.1:80:90",
     'Bad IP address "1.1.1.1:80:90"'),
    ("nat", "PREROUTING", "-p tcp -j DNAT --to-destination 1.1.1.1:90-80", "Port range `80' funky"),
    ("nat", "PREROUTING", "-p tcp -j DNAT --to-destination 1.1.1.1:10-20-30",
     "Garbage after port range: `-30'"),
    ("nat", "PREROUTING", "-p tcp -j DNAT --to-destination 1.1.1.1:-80", "Port `-80' not valid"),
    ("nat", "PREROUTING", "-j DNAT --to-destination [1.1.1.1]:80", "Invalid address format"),
    ("nat", "PREROUTING", "-j DNAT --to-destination 1.1.1.1 --random-fully",
     'unknown option "--random-fully"'),
    ("nat", "OUTPUT", "-p tcp -j REDIRECT --to-ports 10:20", "Invalid port:port syntax - use dash"),
    ("nat", "OUTPUT", "-p tcp -j REDIRECT --to-ports 10-20/5",
     "Shifted portmap ranges not supported with this kernel"),
    ("nat", "POSTROUTING", "-p tcp -j SNAT --to-source 1.1.1.1:10-20/0", "Port `0' not valid"),
    ("filter", "INPUT", "-j NFQUEUE --fail-open", 'unknown option "--fail-open"'),
    ("filter", "INPUT", "-j NFQUEUE --queue-balance 3", 'Bad range "3"'),
    ("filter", "INPUT", "-j NFQUEUE --queue-balance 4:3", "4 should be less than 3"),
    ("filter", "INPUT", "-j NFQUEUE --queue-cpu-fanout",
     'NFQUEUE: option "--queue-cpu-fanout" also requires "--queue-balance".'),
    ("filter", "INPUT", "-j NFQUEUE --queue-balance 0:65535", "Invalid argument"),
    ("filter", "INPUT", "-j NFLOG --nflog-range 5 --nflog-size 4",
     'NFLOG: option "--nflog-range" cannot be used together with "--nflog-size".'),
    ("filter", "INPUT", "-j NFLOG --nflog-prefix ''",
     "Argument must have a minimum length of 1 characters"),
    ("mangle", "FORWARD", "-j CLASSIFY --set-class 1:2 --set-class 1:3",
     'CLASSIFY: option "--set-class" can only be used once.'),
    ("filter", "INPUT", "-j CHECKSUM --checksum-fill", "Invalid argument"),  # mangle only
    ("raw", "PREROUTING", "-j CT --ctevents new,", 'Unknown event type ""'),
    ("raw", "PREROUTING", "-j CT --helper ftp", "No such file or directory"),  # needs -p
    ("raw", "PREROUTING", "-p udp -j CT --helper ftp", "No such file or directory"),
    ("raw", "PREROUTING", "-j CT --timeout nope", "Invalid argument"),
    ("raw", "PREROUTING", "-p tcp -j CT --timeout nope", "No such file or directory"),
    ("filter", "INPUT", "-j HMARK --hmark-mod 1", "--hmark-rnd is mandatory"),
    ("filter", "INPUT", "-j HMARK --hmark-mod 3 --hmark-rnd 1 --hmark-tuple ,src",
     'Bad type ",src"'),
    ("filter", "INPUT", "-j HMARK --hmark-mod 3 --hmark-rnd 1 --hmark-tuple src "
     "--hmark-src-prefix 16", 'HMARK: option "--hmark-src-prefix" can only be used once.'),
    ("filter", "INPUT", "-j HMARK --hmark-mod 3 --hmark-rnd 1 --hmark-tuple sp,dp,spi",
     "you cannot use --hmark-spi-mask and --hmark-?port-mask,at the same time"),
    ("filter", "INPUT", "-j HMARK --hmark-mod 3 --hmark-rnd 1 --hmark-tuple src "
     "--hmark-sport 5 --hmark-spi 3", "Invalid argument"),
    ("filter", "INPUT", "-j IDLETIMER --timeout 2147483 --label x", "Invalid argument"),
    ("filter", "INPUT", "-j IDLETIMER --timeout 5 --label power", "Invalid argument"),
    ("filter", "INPUT", "-j IDLETIMER --timeout 5 --label x/y", "Invalid argument"),
    ("filter", "OUTPUT", "-p tcp -j SYNPROXY", "Invalid argument"),
    ("filter", "FORWARD", "! -p tcp -j SYNPROXY", "Invalid argument"),
    ("filter", "INPUT", "-j TEE --gateway 0.0.0.0", "Invalid argument"),
    ("mangle", "PREROUTING", "! -p tcp -j TPROXY --on-port 1", "Invalid argument"),
    ("mangle", "PREROUTING", "-p tcp -j TPROXY --on-port 1 --tproxy-mark 0x1/0x2/3",
     'TPROXY: trailing garbage after value for option "--tproxy-mark".'),
    ("filter", "INPUT", "-j SECMARK --selctx x", "Invalid argument"),  # mangle/security only
    ("security", "INPUT", "-j CONNSECMARK --save --restore",
     'CONNSECMARK: option "--save" cannot be used together with "--restore".'),
    ("filter", "INPUT", "! -p 0 -j ACCEPT", "rule would never match protocol"),
])
def test_refused_in_iptables_words(table, chain, rule, message):
    assert message in refusal(rule, table, chain)


# -- simulation ----------------------------------------------------------------------

def ctx(**kw):
    base = dict(hook="FORWARD", table="filter", iif="eth0", oif="eth1",
                addrtype=lambda a, dev: "UNICAST", rng=random.Random(1), now=0.0)
    base.update(kw)
    return MatchContext(**base)


def walk(rules, pkt, table="filter", chain="FORWARD", c=None):
    rs = Ruleset()
    for i, r in enumerate(rules, 1):
        apply_command(rs, f"iptables -t {table} -A {chain} {r}", file="t", line=i)
    gen = run_chain(rs, table, chain, pkt, c or ctx(hook=chain, table=table),
                    stage=f"{table}:{chain}", hook=chain)
    events = []
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        return stop.value, events


def udp(**kw):
    args = dict(src="192.0.2.10", dst="198.51.100.7", sport=5000, dport=100)
    args.update(kw)
    return Packet.build("udp", **args)


def applied(events):
    return [e for e in events if isinstance(e, TargetApplied)]


def test_nfqueue_without_a_listener_is_a_queue_verdict_the_walk_drops():
    # nf_queue: no instance -> -ESRCH -> kfree_skb (ext-NFQUEUE packets 0, 5, 6)
    verdict, events = walk(["-j NFQUEUE --queue-balance 2:5", "-j ACCEPT"], udp())
    assert verdict == "QUEUE" and applied(events)[0].detail == "queue 2:5"


def test_nfqueue_bypass_accepts_for_this_chain_only():
    # -ESRCH with NF_VERDICT_FLAG_QUEUE_BYPASS: nf_hook_slow goes on with the next hook
    # function, so the rest of this chain never runs (ext-NFQUEUE packets 1-4)
    verdict, events = walk(["-j NFQUEUE --queue-num 3 --queue-bypass", "-j DROP"], udp())
    assert verdict == "ACCEPT"
    assert len(applied(events)) == 1 and "no listener" in applied(events)[0].detail


def test_nfqueue_bypass_in_the_nat_table_is_not_guessed():
    # nf_nat_inet_fn returns the verdict before its null binding: not modelled
    with pytest.raises(UnsupportedError, match="NFQUEUE --queue-bypass in the nat table"):
        walk(["-j NFQUEUE --queue-bypass"], udp(), table="nat", chain="PREROUTING",
             c=ctx(hook="PREROUTING", table="nat"))


@pytest.mark.parametrize("target", ["NFLOG --nflog-group 5 --nflog-prefix x",
                                    "AUDIT --type drop", "CHECKSUM --checksum-fill"])
def test_log_audit_checksum_go_on_and_change_nothing(target):
    # nft_log_eval / audit_tg / checksum_tg return XT_CONTINUE; a complete checksum
    # is not filled again (ext-NFLOG, ext-AUDIT, ext-CHECKSUM)
    pkt = udp()
    before = pkt.copy()
    verdict, events = walk([f"-j {target}", "-j DROP"], pkt, table="mangle")
    assert verdict == "DROP" and pkt == before
    assert not [e for e in events if isinstance(e, LogLine)]  # nothing in the kernel log


HMARK_FULL = "--hmark-tuple src,dst,sport,dport,proto --hmark-rnd 0x12345678 --hmark-mod 1000 " \
             "--hmark-offset 5"


@pytest.mark.parametrize("rule,pkt,mark", [
    # the marks the kernel set on these packets (ext-HMARK.kernel.jsonl)
    (HMARK_FULL, udp(), 363),
    (HMARK_FULL, udp(src="198.51.100.7", dst="192.0.2.10", sport=100, dport=5000), 363),
    ("--hmark-src-prefix 24 --hmark-dst-prefix 16 --hmark-sport-mask 0xff00 --hmark-dport "
     "0x4000 --hmark-proto-mask 0xff --hmark-rnd 0xdeadbeef --hmark-mod 4294967295",
     Packet.build("tcp", src="192.0.2.77", dst="198.51.100.200", sport=40000, dport=200,
                  flags="S"), 3026580570),
    ("--hmark-tuple src,dst,sport,dport,proto --hmark-rnd 7 --hmark-mod 65536",
     Packet.build("icmp", src="192.0.2.10", dst="198.51.100.7", icmp_type=8, icmp_id=77),
     44346),
    ("--hmark-tuple spi --hmark-spi 0x10000 --hmark-rnd 9 --hmark-mod 100",
     udp(sport=5002, dport=400), 45),
])
def test_hmark_sets_the_kernels_mark(rule, pkt, mark):
    walk([f"-j HMARK {rule}"], pkt, table="mangle")
    assert pkt.meta.mark == mark


def test_hmark_hashes_the_quoted_header_of_an_icmp_error():
    text = SCENARIO.format(rules="*mangle\n:FORWARD ACCEPT [0:0]\n-A FORWARD -p icmp -j HMARK "
                                 "--hmark-tuple src,dst,sport,dport,proto --hmark-rnd 7 "
                                 "--hmark-mod 65536\nCOMMIT", packet=ICMP_ERROR)
    (r,) = [x.to_json(with_events=False) for x in run_scenario(load_scenario(text, file="t"))]
    assert r["out"]["mark"] == 36210  # ext-HMARK packet 4


def test_hmark_ct_mode_without_an_entry_leaves_the_mark():
    # hmark_ct_set_htuple: nf_ct_get is NULL -> XT_CONTINUE before skb->mark is set
    pkt = udp()
    pkt.meta.mark = 9
    walk(["-j HMARK --hmark-tuple ct,src --hmark-rnd 1 --hmark-mod 64"], pkt, table="mangle")
    assert pkt.meta.mark == 9


def test_nat_shifted_port_range_is_not_guessed():
    rs_rule = "-p tcp -j DNAT --to-destination 1.1.1.1:1000-2000/1000"
    with pytest.raises(UnsupportedError, match="shifted port range"):
        walk([rs_rule], Packet.build("tcp", src="192.0.2.10", dst="198.51.100.7", sport=1,
                                     dport=1500, flags="S"),
             table="nat", chain="PREROUTING", c=ctx(hook="PREROUTING", table="nat"))


# -- parsed, not simulated: a walk reaching them stops, named ------------------------------

SCENARIO = """
name = "t"
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
addresses = ["198.51.100.1/24"]
{packet}
"""

FWD_TCP = """
[[packets]]
iif = "eth0"
proto = "tcp"
src = "192.0.2.10"
dst = "198.51.100.7"
sport = 40000
dport = 80
flags = "S"
"""

ICMP_ERROR = """
[[packets]]
iif = "eth1"
proto = "icmp"
src = "198.51.100.7"
dst = "192.0.2.10"
icmp_type = 3
icmp_code = 3
[packets.inner]
proto = "udp"
src = "192.0.2.10"
dst = "198.51.100.7"
sport = 5000
dport = 9
ttl = 63
"""


@pytest.mark.parametrize("table,chain,target,named", [
    ("filter", "FORWARD", "SYNPROXY --mss 1460", "-j SYNPROXY (parsed, not simulated)"),
    ("mangle", "FORWARD", "SECMARK --selctx system_u:object_r:x:s0",
     "-j SECMARK (parsed, not simulated)"),
    ("mangle", "FORWARD", "CONNSECMARK --save", "-j CONNSECMARK (parsed, not simulated)"),
    ("filter", "FORWARD", "LED --led-trigger-id x", "-j LED (parsed, not simulated)"),
    ("raw", "PREROUTING", "CT --ctevents new", "the CT target with --ctevents"),
])
def test_unsimulated_target_stops_the_walk_named(table, chain, target, named):
    rules = f"*{table}\n:{chain} ACCEPT [0:0]\n-A {chain} -p tcp -j {target}\nCOMMIT"
    (r,) = [x.to_json(with_events=False)
            for x in run_scenario(load_scenario(SCENARIO.format(rules=rules, packet=FWD_TCP),
                                                file="t.toml"))]
    json.dumps(r)
    assert r["fate"]["action"] == "error"
    assert "unsupported yet" in r["fate"]["message"] and named in r["fate"]["message"]


def test_monitor_prints_nfqueue_verdicts_in_hex_and_verify_reads_them_as_queue():
    # xtables-monitor on this machine: "rule:0x5:0x38003" for --queue-num 3 --queue-bypass
    # (queue << 16 | NF_VERDICT_FLAG_QUEUE_BYPASS | NF_QUEUE), "QUEUE" only for queue 0
    from kptui.verify.trace import TraceParser

    parser = TraceParser()
    parser.feed("PACKET: 2 c2632c21 IN=eth0 SRC=192.0.2.10 DST=192.0.2.1 LEN=28 ID=4097")
    parser.feed("TRACE: 2 c2632c21 filter:INPUT:rule:0x5:0x38003  -4 -t filter -A INPUT "
                "-j NFQUEUE --queue-num 3 --queue-bypass")
    (step,) = parser.by_ident[4097].steps
    assert step.verdict == "QUEUE" and step.decides
