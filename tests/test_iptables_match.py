"""Match and target semantics, one rule at a time.

Expected results follow the kernel's xt_* modules as documented in
iptables-extensions(8) (cited per test) unless a comment says "checked".
"""

import random
from ipaddress import IPv4Address

import pytest

from kptui.engine.conntrack import Conn, CtTuple, Status, attach
from kptui.engine.errors import UnsupportedError
from kptui.engine.events import FieldChange, LogLine, RuleEval, TargetApplied
from kptui.engine.iptables import MatchContext, Ruleset, apply_command, run_chain
from kptui.engine.packet import Packet


def ctx(**kw):
    base = dict(hook="INPUT", table="filter", iif="eth0", oif="",
                addrtype=lambda a, dev: "LOCAL" if str(a) == "10.0.0.1" else "UNICAST",
                rng=random.Random(1), now=0.0)
    base.update(kw)
    return MatchContext(**base)


def tcp(**kw):
    args = dict(src="192.0.2.7", dst="10.0.0.1", sport=40000, dport=80, flags="S")
    args.update(kw)
    return Packet.build("tcp", **args)


def walk(rules, pkt, table="filter", chain="INPUT", c=None):
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
        return stop.value, events, rs


def matched(rule, pkt, **kw):
    verdict, events, _ = walk([rule], pkt, c=ctx(**kw) if kw else None)
    evs = [e for e in events if isinstance(e, RuleEval)]
    return evs[0].matched, evs[0].reason


@pytest.mark.parametrize("rule,pkt,expect", [
    # iptables(8): -s/-d with masks and !
    ("-s 192.0.2.0/24", tcp(), True), ("! -s 192.0.2.0/24", tcp(), False),
    ("-d 10.0.0.0/255.0.0.0", tcp(), True), ("-d 10.0.0.2", tcp(), False),
    # -i with + wildcard
    ("-i eth+", tcp(), True), ("-i eth1", tcp(), False), ("! -i lo", tcp(), True),
    # -p names, numbers
    ("-p 6", tcp(), True), ("-p udp", tcp(), False), ("! -p tcp", tcp(), False),
    # ports and ranges
    ("-p tcp --dport 80", tcp(), True), ("-p tcp --dport :79", tcp(), False),
    ("-p tcp --dport 80:", tcp(), True), ("-p tcp ! --sport 1:50000", tcp(), False),
    # tcp flags: --syn is --tcp-flags FIN,SYN,RST,ACK SYN
    ("-p tcp --syn", tcp(), True), ("-p tcp --syn", tcp(flags="SA"), False),
    ("-p tcp --tcp-flags SYN,ACK ACK", tcp(flags="A"), True),
    ("-p tcp ! --tcp-flags ALL NONE", tcp(flags=0), False),
    ("-p udp --dport 53", Packet.build("udp", src="1.1.1.1", dst="10.0.0.1", sport=5, dport=53),
     True),
    # icmp types by name, number and type/code
    ("-p icmp --icmp-type echo-request",
     Packet.build("icmp", src="1.1.1.1", dst="10.0.0.1", icmp_type=8), True),
    ("-p icmp --icmp-type 3/3",
     Packet.build("icmp", src="1.1.1.1", dst="10.0.0.1", icmp_type=3, icmp_code=1), False),
    ("-p icmp --icmp-type destination-unreachable",
     Packet.build("icmp", src="1.1.1.1", dst="10.0.0.1", icmp_type=3, icmp_code=1), True),
    ("-p icmp ! --icmp-type any",
     Packet.build("icmp", src="1.1.1.1", dst="10.0.0.1", icmp_type=0), False),
    # multiport
    ("-p tcp -m multiport --dports 22,70:90,443", tcp(), True),
    ("-p tcp -m multiport ! --ports 22,443", tcp(), True),
    ("-p tcp -m multiport --sports 80", tcp(), False),
    # iprange
    ("-m iprange --src-range 192.0.2.1-192.0.2.9", tcp(), True),
    ("-m iprange ! --dst-range 10.0.0.0-10.0.0.5", tcp(), False),
    # addrtype uses the box's view (ctx.addrtype)
    ("-m addrtype --dst-type LOCAL", tcp(), True),
    ("-m addrtype --src-type LOCAL", tcp(), False),
    ("-m addrtype ! --src-type BROADCAST,MULTICAST --limit-iface-in", tcp(), True),
    # mark with mask: (mark & mask) == value
    ("-m mark --mark 0x1/0xf", tcp(mark=0x31), True), ("-m mark ! --mark 1", tcp(mark=1), False),
    ("-m comment --comment hi", tcp(), True),
    ("-m tos --tos Minimize-Delay", tcp(tos=0xD0), True),
    ("-m tos --tos 0x10", tcp(tos=0x11), False),
    ("-m dscp --dscp-class EF", tcp(tos=0xB8), True),
    ("-m ttl --ttl-eq 64", tcp(), True), ("-m ttl ! --ttl-eq 64", tcp(), False),
    ("-m ttl --ttl-lt 64", tcp(), False), ("-m ttl --ttl-gt 63", tcp(), True),
    ("-m length --length 40", tcp(), True), ("-m length ! --length 0:100", tcp(), False),
    ("-m pkttype --pkt-type unicast", tcp(), True),
    ("-m pkttype --pkt-type broadcast", tcp(), False),
])
def test_matches(rule, pkt, expect):
    ok, reason = matched(rule, pkt)
    assert ok is expect
    assert (reason == "") is expect


def test_mac_match_needs_an_ethernet_header():
    # xt_mac: no Ethernet header (lo) -> no match even when inverted (ext-mac, checked)
    assert matched("-m mac ! --mac-source 00:11:22:33:44:55", tcp(), iif="lo")[0] is False
    assert matched("-m mac --mac-source 00:11:22:33:44:55", tcp(),
                   src_mac="00:11:22:33:44:55")[0] is True
    # received on eth0 with no sender MAC in the packet: not guessed
    with pytest.raises(UnsupportedError, match="-m mac"):
        matched("-m mac ! --mac-source 00:11:22:33:44:55", tcp())


def test_non_first_fragments_never_match_port_tests():
    # KERNEL-NOTES 7 / xt_tcpudp: fragoff != 0 -> no match, also for ! --dport
    frag = tcp()
    frag.ip.frag_offset = 10
    assert matched("-p tcp ! --dport 1", frag)[0] is False
    assert matched("-p tcp -f", frag)[0] is True
    assert matched("-p tcp ! -f", frag)[0] is False


def test_limit_is_a_token_bucket_on_ctx_now():
    # iptables-extensions(8) limit: burst 2 then 1/sec refills
    rs = Ruleset()
    apply_command(rs, "iptables -A INPUT -m limit --limit 1/sec --limit-burst 2 -j ACCEPT",
                  file="t", line=1)
    got = []
    for now in (0.0, 0.1, 0.2, 0.9, 1.2, 1.3):
        gen = run_chain(rs, "filter", "INPUT", tcp(), ctx(now=now), stage="s", hook="INPUT")
        got.append(next(e for e in gen if isinstance(e, RuleEval)).matched)
    assert got == [True, True, False, False, True, False]


def test_statistic_nth_and_random_are_deterministic():
    # iptables-extensions(8) statistic: --every 3 --packet 1 matches packets 1, 4, 7, ...? The
    # kernel starts the counter at --packet and matches when it wraps to 0: the 2nd, 5th, ...
    rs = Ruleset()
    apply_command(rs, "iptables -A INPUT -m statistic --mode nth --every 3 --packet 1",
                  file="t", line=1)
    seq = []
    for _ in range(6):
        gen = run_chain(rs, "filter", "INPUT", tcp(), ctx(), stage="s", hook="INPUT")
        seq.append(next(e for e in gen if isinstance(e, RuleEval)).matched)
    assert seq == [False, True, False, False, True, False]

    def rand_run(seed):
        rs = Ruleset()
        apply_command(rs, "iptables -A INPUT -m statistic --mode random --probability 0.5",
                      file="t", line=1)
        c = ctx(rng=random.Random(seed))
        out = []
        for _ in range(20):
            gen = run_chain(rs, "filter", "INPUT", tcp(), c, stage="s", hook="INPUT")
            out.append(next(e for e in gen if isinstance(e, RuleEval)).matched)
        return out
    assert rand_run(7) == rand_run(7)
    assert 0 < sum(rand_run(7)) < 20


def ct(ctinfo="NEW", status=Status.NONE, mark=0, pkt=None, expires=None):
    """A packet carrying a conntrack entry (or INVALID/UNTRACKED: none) with this ctinfo."""
    pkt = pkt or tcp()
    if ctinfo in ("INVALID", "UNTRACKED"):
        attach(pkt.meta, None, ctinfo)
        return pkt
    orig = CtTuple(IPv4Address("192.0.2.7"), IPv4Address("10.0.0.1"), 6, 40000, 80)
    conn = Conn(orig, orig.invert(), status=status, mark=mark)
    if expires is not None:
        conn.status |= Status.CONFIRMED
        conn.expires = expires
    attach(pkt.meta, conn, ctinfo)
    return pkt


SEEN = Status.SEEN_REPLY | Status.CONFIRMED


@pytest.mark.parametrize("rule,pkt,expect", [
    # xt_state/xt_conntrack: the state of ctinfo; no entry is INVALID (or UNTRACKED)
    ("-m state --state NEW", ct("NEW"), True),
    ("-m state --state NEW", ct("ESTABLISHED"), False),
    ("-m state --state ESTABLISHED", ct("ESTABLISHED_REPLY"), True),
    ("-m state --state RELATED", ct("RELATED_REPLY"), True),
    ("-m state --state INVALID", ct("INVALID"), True),
    ("-m state --state INVALID", tcp(), True),  # never looked up: no entry either
    ("-m state ! --state NEW", ct("INVALID"), True),
    ("-m state --state UNTRACKED", ct("UNTRACKED"), True),
    ("-m conntrack --ctstate ESTABLISHED,RELATED", ct("ESTABLISHED_REPLY"), True),
    ("-m conntrack ! --ctstate INVALID", ct("NEW"), True),
    # libxt_conntrack.man: SNAT/DNAT are virtual states from the status bits
    ("-m conntrack --ctstate SNAT", ct("ESTABLISHED", Status.SRC_NAT), True),
    ("-m conntrack --ctstate DNAT", ct("ESTABLISHED", Status.SRC_NAT), False),
    ("-m conntrack --ctstate DNAT", ct("NEW", Status.DST_NAT), True),
    # conntrack_mt: without an entry only --ctstate can match; every other option fails
    ("-m conntrack --ctdir ORIGINAL", ct("INVALID"), False),
    ("-m conntrack ! --ctproto udp", ct("INVALID"), False),
    ("-m conntrack --ctstate INVALID --ctdir ORIGINAL", ct("INVALID"), True),
    ("-m conntrack --ctdir ORIGINAL", ct("NEW"), True),
    ("-m conntrack --ctdir REPLY", ct("ESTABLISHED_REPLY"), True),
    ("-m conntrack --ctdir REPLY", ct("RELATED"), False),
    ("-m conntrack --ctstatus SEEN_REPLY", ct("ESTABLISHED", SEEN), True),
    ("-m conntrack --ctstatus ASSURED", ct("ESTABLISHED", SEEN), False),
    ("-m conntrack --ctstatus ASSURED,CONFIRMED", ct("ESTABLISHED", SEEN), True),
    ("-m conntrack ! --ctstatus CONFIRMED", ct("NEW"), True),  # first packet: unconfirmed
    ("-m conntrack --ctorigsrc 192.0.2.0/24", ct("ESTABLISHED_REPLY"), True),
    ("-m conntrack --ctrepldst 192.0.2.0/255.255.255.0", ct("NEW"), True),
    ("-m conntrack --ctreplsrc 10.0.0.2", ct("NEW"), False),
    ("-m conntrack ! --ctorigdst 10.0.0.1", ct("NEW"), False),
    ("-m conntrack --ctproto tcp --ctorigdstport 80", ct("NEW"), True),
    ("-m conntrack --ctreplsrcport 1:100 --ctrepldstport 40000", ct("NEW"), True),
    ("-m conntrack --ctorigsrcport 80", ct("NEW"), False),
    # --ctexpire: nf_ct_expires() / HZ, in seconds; 0 for an unconfirmed entry
    ("-m conntrack --ctexpire 0", ct("NEW"), True),
    ("-m conntrack --ctexpire 100:200", ct("ESTABLISHED", expires=150.0), True),
    ("-m conntrack ! --ctexpire 100:200", ct("ESTABLISHED", expires=150.0), False),
    # xt_connmark connmark_mt: (ct->mark & mask) == mark; no entry: false even with !
    ("-m connmark --mark 0x7", ct("ESTABLISHED", mark=0x7), True),
    ("-m connmark --mark 0x10/0xf0", ct("ESTABLISHED", mark=0x17), True),
    ("-m connmark ! --mark 0x7", ct("ESTABLISHED", mark=0x7), False),
    ("-m connmark ! --mark 0x7", ct("INVALID"), False),
])
def test_conntrack_matches(rule, pkt, expect):
    assert matched(rule, pkt)[0] is expect


@pytest.mark.parametrize("target,mark,ctmark,after", [
    # xt_CONNMARK: set: ct = (ct & ~ctmask) ^ value; save: ct = (ct & ~ctmask) ^
    # (mark & nfmask); restore: mark = (mark & ~nfmask) ^ (ct & ctmask)
    # (checked on kernel 6.18: ct-connmark-masks, conntrack -L shows mark=63)
    ("CONNMARK --set-mark 0x5", 0, 0xF0, ("meta.ctmark", 0x5)),
    ("CONNMARK --set-xmark 0x30/0xf0", 0, 0x0F, ("meta.ctmark", 0x3F)),
    ("CONNMARK --save-mark", 0x1FF, 0, ("meta.ctmark", 0x1FF)),
    ("CONNMARK --save-mark --nfmask 0xf --ctmask 0xf", 0x1FF, 0x30, ("meta.ctmark", 0x3F)),
    ("CONNMARK --restore-mark", 0x100, 0x7, ("meta.mark", 0x7)),
    ("CONNMARK --restore-mark --mask 0xf", 0x100, 0x3F, ("meta.mark", 0x10F)),
])
def test_connmark_target(target, mark, ctmark, after):
    pkt = ct("ESTABLISHED", mark=ctmark)
    pkt.meta.mark = mark
    verdict, _, _ = walk([f"-j {target}"], pkt, table="mangle", chain="PREROUTING",
                         c=ctx(hook="PREROUTING", table="mangle"))
    assert verdict == "ACCEPT"
    path, value = after
    assert pkt.get(path) == value
    if path == "meta.ctmark":
        assert pkt.meta.ct.mark == value


def test_connmark_target_without_an_entry_does_nothing():
    pkt = ct("INVALID")
    walk(["-j CONNMARK --set-mark 0x5"], pkt, table="mangle", chain="PREROUTING",
         c=ctx(hook="PREROUTING", table="mangle"))
    assert pkt.get("meta.ctmark") == 0


@pytest.mark.parametrize("target", ["NOTRACK", "CT --notrack"])
def test_notrack_makes_the_packet_untracked(target):
    # xt_CT xt_ct_target: nf_ct_set(skb, NULL, IP_CT_UNTRACKED), unless already tracked
    pkt = tcp()
    walk([f"-j {target}"], pkt, table="raw", chain="PREROUTING",
         c=ctx(hook="PREROUTING", table="raw"))
    assert (pkt.get("meta.ctstate"), pkt.meta.ctinfo, pkt.meta.ct) == ("UNTRACKED", "UNTRACKED",
                                                                      None)
    tracked = ct("NEW")
    walk([f"-j {target}"], tracked, table="raw", chain="PREROUTING",
         c=ctx(hook="PREROUTING", table="raw"))
    assert tracked.meta.ctinfo == "NEW"


def test_ct_target_other_than_notrack_is_unsupported_and_named():
    with pytest.raises(UnsupportedError, match="CT target with --zone"):
        walk(["-j CT --zone 1"], tcp(), table="raw", chain="PREROUTING",
             c=ctx(hook="PREROUTING", table="raw"))


@pytest.mark.parametrize("target,path,before,after", [
    # xt_MARK: mark = (mark & ~mask) ^ value
    ("MARK --set-mark 0x5", "meta.mark", 0xF0, 0x5),
    ("MARK --set-xmark 0x1/0x3", "meta.mark", 0xF2, 0xF1),
    ("MARK --and-mark 0x0f", "meta.mark", 0xF3, 0x03),
    ("MARK --or-mark 0x100", "meta.mark", 0x1, 0x101),
    ("MARK --xor-mark 0x3", "meta.mark", 0x1, 0x2),
    # xt_DSCP tos_tg: tos = (tos & ~mask) ^ value
    ("TOS --set-tos 0x10", "ip.tos", 0x03, 0x10),
    ("TOS --set-tos Minimize-Delay", "ip.tos", 0xC3, 0xD0),
    ("TOS --or-tos 0x08", "ip.tos", 0x01, 0x09),
    ("DSCP --set-dscp-class EF", "ip.tos", 0x02, 0xBA),
    ("TTL --ttl-dec 70", "ip.ttl", 64, 0),
    ("TTL --ttl-inc 250", "ip.ttl", 64, 255),
    ("TTL --ttl-set 5", "ip.ttl", 64, 5),
    # net/netfilter/xt_CLASSIFY.c: `skb->priority = clinfo->priority` (no separate classid)
    ("CLASSIFY --set-class 1:10", "meta.priority", 0, 0x10010),
])
def test_mangle_targets_change_fields(target, path, before, after):
    pkt = tcp()
    pkt.set(path, before)
    verdict, events, _ = walk([f"-j {target}"], pkt, table="mangle", chain="POSTROUTING",
                              c=ctx(hook="POSTROUTING", table="mangle", iif="", oif="eth0"))
    assert verdict == "ACCEPT"  # non-terminating: falls to the policy
    assert pkt.get(path) == after
    changes = [e for e in events if isinstance(e, FieldChange)]
    if before != after:
        assert changes[0].by == "mangle:POSTROUTING:rule:1"
        assert (changes[0].old, changes[0].new) == (before, after)


def test_classify_sets_the_priority_and_leaves_classid_alone():
    # xt_CLASSIFY.c sets skb->priority only; tc reads the priority as MAJOR:MINOR
    pkt = tcp()
    walk(["-j CLASSIFY --set-class 1:10"], pkt, table="mangle", chain="POSTROUTING",
         c=ctx(hook="POSTROUTING", table="mangle", iif="", oif="eth0"))
    assert (pkt.meta.priority, pkt.meta.classid) == (0x10010, 0)


def test_log_line_is_what_nf_log_ipv4_writes():
    # format from net/netfilter/nf_log_syslog.c dump_ipv4_packet / dump_tcp_header
    pkt = tcp(ident=7, mark=0x2)
    pkt.ip.tos = 0x10
    _, events, _ = walk(['-j LOG --log-prefix "IN: " --log-tcp-sequence'], pkt,
                        c=ctx(src_mac="00:11:22:33:44:55", dst_mac="66:77:88:99:aa:bb"))
    log = next(e for e in events if isinstance(e, LogLine))
    assert log.level == "warning" and log.prefix == "IN: "
    assert log.line == (
        "IN: IN=eth0 OUT= MAC=66:77:88:99:aa:bb:00:11:22:33:44:55:08:00 SRC=192.0.2.7 "
        "DST=10.0.0.1 LEN=40 TOS=0x10 PREC=0x00 TTL=64 ID=7 DF PROTO=TCP SPT=40000 DPT=80 "
        "SEQ=0 ACK=0 WINDOW=64240 RES=0x00 SYN URGP=0 MARK=0x2")


@pytest.mark.parametrize("target,verdict,detail", [
    ("REJECT", "REJECT", "icmp-port-unreachable"),
    ("REJECT --reject-with icmp-admin-prohibited", "REJECT", "icmp-admin-prohibited"),
    ("NFQUEUE --queue-num 3", "QUEUE", "queue 3"),
    ("QUEUE", "QUEUE", ""), ("DROP", "DROP", ""), ("ACCEPT", "ACCEPT", ""),
])
def test_terminating_targets(target, verdict, detail):
    v, events, _ = walk([f"-j {target}", "-j LOG"], tcp())
    assert v == verdict
    t = [e for e in events if isinstance(e, TargetApplied)]
    assert len(t) == 1 and t[0].detail == detail


@pytest.mark.parametrize("table,chain,target", [
    ("nat", "PREROUTING", "DNAT --to-destination 1.2.3.4"),
    ("nat", "POSTROUTING", "MASQUERADE"), ("nat", "POSTROUTING", "SNAT --to-source 1.1.1.1"),
    ("nat", "PREROUTING", "NETMAP --to 1.0.0.0/8"),
])
def test_nat_targets_without_a_conntrack_entry_bind_nothing(table, chain, target):
    # nf_nat_inet_fn never runs the nat chains without an entry; a target applied
    # outside a walk's nat hook (no ctx.nat) accepts without a binding (tests/test_nat.py
    # covers the bindings themselves)
    v, events, _ = walk([f"-j {target}"], tcp(), table=table, chain=chain,
                        c=ctx(hook=chain, table=table))
    assert v == "ACCEPT"
