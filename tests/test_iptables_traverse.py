"""Rule traversal (ipt_do_table semantics): jump/goto/return/policy/counters/index."""

import random

from kptui.engine.events import (
    ChainEnter,
    ChainReturn,
    FieldChange,
    Note,
    PolicyApplied,
    RuleEval,
    trace_lines,
)
from kptui.engine.iptables import MatchContext, Ruleset, restore, run_chain, to_save
from kptui.engine.packet import Packet


def ctx(hook="OUTPUT", table="filter", iif="", oif="lo"):
    return MatchContext(hook=hook, table=table, iif=iif, oif=oif,
                        addrtype=lambda a, dev: "UNICAST", rng=random.Random(0), now=0.0)


def run(rs, table, chain, pkt, c=None, linear=False):
    gen = run_chain(rs, table, chain, pkt, c or ctx(hook=chain, table=table),
                    stage=f"{table}:{chain}", hook=chain, linear=linear)
    events = []
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        return stop.value, events


GOTO_RULES = """*filter
:INPUT ACCEPT [0:0]
:OUTPUT DROP [0:0]
:A - [0:0]
:B - [0:0]
:C - [0:0]
-A OUTPUT -p udp -j A
-A OUTPUT -p udp --dport 9999 -j ACCEPT
-A A -p tcp -j DROP
-A A -g B
-A A -j DROP
-A B -m mark --mark 0x0 -j C
-A B -j RETURN
-A B -j DROP
-A C -j MARK --set-mark 0x7
COMMIT
"""


def udp(**kw):
    return Packet.build("udp", src="127.0.0.1", dst="127.0.0.1", sport=38191, dport=9999,
                        length=29, **kw)


def test_jump_goto_return_matches_the_real_kernel_trace():
    # checked on kernel 6.18 with `xtables-monitor --trace` in a netns (UDP 127.0.0.1:9999):
    # filter:OUTPUT:rule:1 JUMP A, A:2 GOTO B, B:1 JUMP C, C:1 MARK, B:2 RETURN (back to
    # OUTPUT, since goto did not push A), OUTPUT:2 ACCEPT; mark 0x7 afterwards;
    # iptables-save -c then showed [1:29] on exactly these rules.
    rs = Ruleset()
    restore(rs, GOTO_RULES, file="t")
    pkt = udp()
    verdict, events = run(rs, "filter", "OUTPUT", pkt)
    assert verdict == "ACCEPT"
    assert trace_lines(events) == ["filter:OUTPUT:rule:1", "filter:A:rule:2", "filter:B:rule:1",
                                   "filter:C:rule:1", "filter:B:rule:2", "filter:OUTPUT:rule:2"]
    assert pkt.meta.mark == 7
    change = next(e for e in events if isinstance(e, FieldChange))
    assert (change.path, change.by, change.depth) == ("meta.mark", "filter:C:rule:1", 4)
    enters = [(e.chain, e.via, e.depth) for e in events if isinstance(e, ChainEnter)]
    assert enters == [("OUTPUT", "hook", 1), ("A", "jump", 2), ("B", "goto", 3), ("C", "jump", 4)]
    rets = [(e.chain, e.explicit) for e in events if isinstance(e, ChainReturn)]
    assert rets == [("C", False), ("B", True)]
    saved = to_save(rs, counters=True)
    for line in ("[1:29] -A OUTPUT -p udp -j A", "[1:29] -A A -g B",
                 "[1:29] -A B -j RETURN", "[0:0] -A B -j DROP", "[0:0] -A A -j DROP",
                 "[1:29] -A C -j MARK --set-xmark 0x7/0xffffffff"):
        assert line in saved


def test_policy_applies_with_counters_when_nothing_decides():
    rs = Ruleset()
    restore(rs, "*filter\n:OUTPUT DROP [3:100]\n:X - [0:0]\n-A OUTPUT -j X\n"
                "-A X -j LOG\n-A OUTPUT -p tcp\nCOMMIT\n", file="t")
    verdict, events = run(rs, "filter", "OUTPUT", udp())
    assert verdict == "DROP"
    assert isinstance(events[-1], PolicyApplied) and events[-1].depth == 1
    assert rs.tables["filter"].chains["OUTPUT"].counters.pkts == 4
    assert rs.tables["filter"].chains["OUTPUT"].counters.bytes == 129
    assert trace_lines(events)[-1] == "filter:OUTPUT:policy:DROP"


def test_rule_without_target_counts_and_continues():
    rs = Ruleset()
    restore(rs, "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p udp\n-A INPUT -p udp\nCOMMIT\n",
            file="t")
    run(rs, "filter", "INPUT", udp(), ctx("INPUT", iif="lo", oif=""))
    assert [r.counters.pkts for r in rs.tables["filter"].chains["INPUT"].rules] == [1, 1]


def test_return_from_goto_chain_with_empty_stack_applies_policy():
    # iptables(8): RETURN with nothing to return to applies the built-in chain's policy
    rs = Ruleset()
    restore(rs, "*filter\n:FORWARD DROP [0:0]\n:G - [0:0]\n-A FORWARD -g G\n"
                "-A FORWARD -j ACCEPT\n-A G -j RETURN\nCOMMIT\n", file="t")
    verdict, events = run(rs, "filter", "FORWARD", udp(), ctx("FORWARD", iif="a", oif="b"))
    assert verdict == "DROP"


def test_jump_stack_overflow_drops():
    # nf_tables keeps 16 jump levels (NFT_JUMP_STACK_SIZE); deeper nesting drops
    lines = ["*filter", ":INPUT ACCEPT [0:0]"] + [f":C{i} - [0:0]" for i in range(20)]
    lines.append("-A INPUT -j C0")
    lines += [f"-A C{i} -j C{i + 1}" for i in range(19)]
    rs = Ruleset()
    restore(rs, "\n".join(lines + ["COMMIT"]), file="t")
    verdict, events = run(rs, "filter", "INPUT", udp(), ctx("INPUT", iif="lo", oif=""))
    assert verdict == "DROP"
    assert "overflow" in events[-1].text


def _big_ruleset(n=400):
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":SVC - [0:0]", ":MARKED - [0:0]"]
    lines.append("-A MARKED -j MARK --or-mark 0x4000")
    lines.append("-A MARKED -j RETURN")
    for i in range(n):
        d = f"10.96.{i // 250}.{i % 250 + 1}"
        lines.append(f'-A SVC -d {d}/32 -p tcp -m comment --comment "svc {i}" -m tcp '
                     f"--dport {80 + i % 3} -j MARKED")
        if i % 50 == 0:
            lines.append(f"-A SVC -s 192.0.2.{i % 200}/32 -j LOG --log-prefix s{i}")
            lines.append("-A SVC -m limit --limit 2/sec -j MARKED")
    lines.append("-A SVC -p tcp --dport 81 -j DROP")
    lines.append("-A INPUT -j SVC")
    return "\n".join(lines + ["COMMIT"]) + "\n"


def test_indexed_traversal_equals_linear():
    text = _big_ruleset()
    packets = [("10.96.0.1", 80), ("10.96.0.2", 81), ("10.96.1.7", 82), ("10.96.0.9", 81),
               ("1.2.3.4", 81), ("10.96.0.51", 81)]
    for dst, dport in packets:
        results = []
        for linear in (True, False):
            rs = Ruleset()
            restore(rs, text, file="t")
            pkt = Packet.build("tcp", src="192.0.2.0", dst=dst, sport=1234, dport=dport)
            verdict, events = run(rs, "filter", "INPUT", pkt,
                                  ctx("INPUT", iif="eth0", oif=""), linear=linear)
            counters = [(r.counters.pkts, r.counters.bytes)
                        for ch in rs.tables["filter"].chains.values() for r in ch.rules]
            kinds = [e for e in events if not isinstance(e, (RuleEval, Note))]
            results.append((verdict, trace_lines(events), counters, kinds, pkt.meta.mark))
            if not linear:
                notes = [e for e in events if isinstance(e, Note)]
                assert notes and "skipped" in notes[0].text
        assert results[0] == results[1]
