"""tc in the engine (kptui.engine.qos, kptui.engine.tc_setup): classification, queues,
token buckets on the simulated clock, policers, ifb, and where tc sits in the walk.

Expected results come from the kernel corpus (tests/kernel/scenarios/tc-*.toml,
checked on kernel 6.18 with `tc -s` counters), from the tc man pages
(tc-htb(8), tc-u32(8), tc-tbf(8), tc-prio(8), tc-police(8), tc-fw(8),
tc-mirred(8)) or from the kernel source where this machine's kernel lacks the
module (no sch_prio, cls_fw, act_police, act_gact, sch_sfq, sch_fq_codel here):
each test says which.
"""

from __future__ import annotations

import pytest

from kptui.engine.errors import ParseError
from kptui.engine.events import Note, QosAction, QosClassify, QosEnqueue, QosFilter, StageEnter
from kptui.engine.run import run_scenario
from kptui.engine.scenario import load_scenario

BASE = '''
name = "t"
setup = """
{setup}
"""
iptables = """
{rules}
"""
[sysctl]
"net.ipv4.ip_forward" = 1
[[interfaces]]
name = "eth0"
addresses = ["192.0.2.1/24"]
[[interfaces]]
name = "eth1"
addresses = ["198.51.100.1/24"]
{packets}
'''


def packet(**kw: object) -> str:
    fields = {"iif": "eth0", "proto": "udp", "src": "192.0.2.10", "dst": "198.51.100.10",
              "sport": 1000, "dport": 2000}
    fields.update(kw)
    lines = ["[[packets]]"] + [f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}"
                               for k, v in fields.items()]
    return "\n".join(lines) + "\n"


def run(setup: str, *packets: str, rules: str = ""):
    text = BASE.format(setup=setup.strip(), rules=rules.strip(), packets="".join(packets))
    return list(run_scenario(load_scenario(text, file="t.toml")))


def of(result, kind):
    return [e for e in result.events if isinstance(e, kind)]


def target(result) -> str:
    return of(result, QosClassify)[-1].target


HTB = """
tc qdisc add dev eth1 root handle 1: htb default 20
tc class add dev eth1 parent 1: classid 1:10 htb rate 10mbit
tc class add dev eth1 parent 1: classid 1:20 htb rate 10mbit
"""


# -- parsing: what tc and the kernel refuse --------------------------------------------

@pytest.mark.parametrize("line, message", [
    # checked on kernel 6.18 / iproute2 6.1 in a netns
    ("tc qdisc add dev eth9 root handle 1: htb", 'Cannot find device "eth9"'),
    ("tc qdisc add dev eth1 root handle 2: tbf rate 1mbit burst 10k limit 10k",
     "Error: Exclusivity flag on, cannot modify."),
    # tc-u32(8) / f_u32.c pack_key: two values for the same bits clash
    ("tc filter add dev eth1 parent 1: u32 match ip sport 53 0xffff match ip sport 54 0xffff "
     "flowid 1:10", 'Illegal "match"'),
])
def test_tc_errors(line, message):
    with pytest.raises(ParseError) as exc:
        run(HTB + line)
    assert exc.value.message == message


def test_unmodelled_tc_is_unsupported_not_ignored():
    for line in ("tc qdisc add dev eth1 root netem delay 10ms",
                 "tc filter add dev eth1 parent 1: flower ip_proto udp classid 1:10",
                 "tc filter add dev eth1 parent 1: u32 match ip dst 198.51.100.10/32 "
                 "action mirred egress redirect dev eth0"):
        setup = HTB + line
        try:
            results = run(setup, packet())
        except ParseError as exc:
            assert exc.message == f"unsupported yet: {line}"
            continue
        # mirred to a device that is not an ifb: refused when a packet meets it
        assert results[0].fate.action == "error"
        assert "only ifb devices" in results[0].fate.message


# -- classification ----------------------------------------------------------------------

def test_filters_without_prio_run_newest_first():
    # tcf_auto_prio: first 49152, then one less than the lowest (kernel corpus:
    # tc-htb-auto-prio, where `tc filter show` lists pref 49151 first)
    setup = HTB + """
tc filter add dev eth1 parent 1: protocol ip u32 match ip dport 2000 0xffff flowid 1:10
tc filter add dev eth1 parent 1: protocol ip u32 match ip dst 198.51.100.10/32 flowid 1:20
"""
    result = run(setup, packet())[0]
    assert [(f.prio, f.matched) for f in of(result, QosFilter)] == [(49151, True)]
    assert target(result) == "1:20"


def test_htb_default_direct_and_priority():
    # tc-htb(8): default minor-id; htb_classify: skb->priority == handle -> direct
    results = run("""
tc qdisc add dev eth1 root handle 1: htb default 99
tc class add dev eth1 parent 1: classid 1:10 htb rate 10mbit
""", packet(), packet(dport=2010), packet(dport=2020), rules="""
*mangle
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -p udp --dport 2010 -j CLASSIFY --set-class 1:10
-A POSTROUTING -p udp --dport 2020 -j CLASSIFY --set-class 1:0
COMMIT
""")
    assert [(of(r, QosClassify)[-1].target, of(r, QosClassify)[-1].how) for r in results] == [
        ("direct", "direct"), ("1:10", "priority"), ("direct", "priority")]


def test_u32_keys_as_tc_packs_them():
    # tc-u32(8): sport and dport share the 32-bit word at offset 20; masks apply
    setup = HTB + """
tc filter add dev eth1 parent 1: prio 1 u32 match ip sport 53 0xffff match ip dport 80 0xfff0 \\
  flowid 1:10
"""
    hit, miss = run(setup, packet(sport=53, dport=85), packet(sport=53, dport=96))
    assert target(hit) == "1:10" and target(miss) == "1:20"
    assert of(miss, QosFilter)[0].reason == "00350060/fffffff0 at 20 is not 00350050"


def test_fw_filter_with_handle_and_old_method():
    # tc-fw(8) and cls_fw.c fw_classify: with a handle, (mark & mask) == handle; with
    # none ("old method"), the mark itself is the classid when its major is 0 or the
    # qdisc's (this kernel has no cls_fw: from the source)
    rules = """
*mangle
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p udp --dport 2001 -j MARK --set-mark 0x106
-A PREROUTING -p udp --dport 2002 -j MARK --set-mark 0x10010
-A PREROUTING -p udp --dport 2003 -j MARK --set-mark 0x20010
COMMIT
"""
    setup = HTB + """
tc filter add dev eth1 parent 1: protocol ip prio 1 handle 6/0xff fw flowid 1:10
tc filter add dev eth1 parent 1: protocol ip prio 2 fw
"""
    results = run(setup, packet(dport=2001), packet(dport=2002), packet(dport=2003),
                  rules=rules)
    assert [target(r) for r in results] == ["1:10", "1:10", "1:20"]
    assert [f.prio for f in of(results[1], QosFilter) if f.matched] == [2]


def test_inner_class_filters_then_default_for_unknown_classid():
    # htb_classify: an inner class's own filter chain; an unknown classid -> default
    # (kernel corpus: tc-htb-inner-class)
    setup = """
tc qdisc add dev eth1 root handle 1: htb default 30
tc class add dev eth1 parent 1: classid 1:1 htb rate 100mbit
tc class add dev eth1 parent 1:1 classid 1:11 htb rate 10mbit
tc class add dev eth1 parent 1: classid 1:30 htb rate 10mbit
tc filter add dev eth1 parent 1: prio 1 u32 match ip dst 198.51.100.0/25 flowid 1:1
tc filter add dev eth1 parent 1: prio 2 u32 match ip dst 198.51.100.200/32 flowid 1:99
tc filter add dev eth1 parent 1:1 prio 1 u32 match ip dport 2000 0xffff flowid 1:11
"""
    results = run(setup, packet(), packet(dst="198.51.100.200"))
    assert [target(r) for r in results] == ["1:11", "1:30"]


def test_pfifo_fast_band_from_the_tos_of_forwarded_packets():
    # route.c ip_tos2prio and sch_generic.c sch_default_prio2band (KERNEL-NOTES 8):
    # TOS 0x10 -> INTERACTIVE (6) -> band 0; 0x08 -> BULK (2) -> band 2; 0 -> band 1
    results = run("tc qdisc add dev eth1 root handle 1: pfifo_fast",
                  packet(tos=0x10), packet(tos=0x08), packet(tos=0))
    assert [of(r, QosClassify)[-1].band for r in results] == [0, 2, 1]


def test_prio_qdisc_u32_flowid_and_priomap():
    # tc-prio(8): a filter's flowid picks the band (minor - 1); without a match the
    # priomap of skb->priority does (default priomap = pfifo_fast's)
    setup = """
tc qdisc add dev eth1 root handle 1: prio
tc filter add dev eth1 parent 1: protocol ip prio 1 u32 match ip dport 22 0xffff flowid 1:3
"""
    results = run(setup, packet(proto="tcp", dport=22), packet(tos=0x10))
    assert [(target(r), of(r, QosClassify)[-1].how) for r in results] == [
        ("1:3", "filter"), ("1:1", "priomap")]


# -- queues and token buckets on the simulated clock ------------------------------------

def test_tbf_burst_delay_and_drops_back_to_back():
    # tc-tbf(8): burst = bucket size, limit = bytes queued waiting for tokens
    # (kernel corpus: tc-tbf-burst)
    results = run("tc qdisc add dev eth1 root handle 1: tbf rate 800bit burst 1100 limit 600",
                  packet(length=500, repeat=5))
    verdicts = [of(r, QosEnqueue)[-1].verdict for r in results]
    assert verdicts == ["sent", "sent", "delayed", "dropped", "dropped"]
    assert [r.fate.by for r in results[3:]] == ["qos:queue-full"] * 2
    # 514 bytes on the wire, 72 tokens left at 100 bytes/s: 4.42 s
    assert of(results[2], QosEnqueue)[-1].delay == pytest.approx(4.42)


def test_tokens_refill_with_packet_time():
    # the same tbf, the third packet 5 s later: the bucket refilled (500 bytes)
    results = run("tc qdisc add dev eth1 root handle 1: tbf rate 800bit burst 1100 limit 600",
                  packet(length=500), packet(length=500), packet(length=500, time=5))
    assert [of(r, QosEnqueue)[-1].verdict for r in results] == ["sent", "sent", "sent"]


def test_tbf_latency_sets_the_limit():
    # q_tbf.c: limit = rate * latency + burst: 100 B/s * 2 s + 1100 = 1300 bytes
    results = run("tc qdisc add dev eth1 root handle 1: tbf rate 800bit burst 1100 latency 2s",
                  packet(length=500, repeat=5))
    assert [of(r, QosEnqueue)[-1].verdict for r in results] == [
        "sent", "sent", "delayed", "delayed", "dropped"]
    assert of(results[0], QosEnqueue)[-1].limit == "1300b"


def test_htb_class_sends_while_tokens_are_not_negative():
    # sch_htb.c htb_class_mode: CAN_SEND while tokens >= 0, charged after the send
    # (kernel corpus: tc-htb-leaf-limit)
    setup = """
tc qdisc add dev eth1 root handle 1: htb default 10
tc class add dev eth1 parent 1: classid 1:10 htb rate 800bit burst 800 cburst 800
tc qdisc add dev eth1 parent 1:10 handle 10: sfq limit 2
"""
    results = run(setup, packet(length=500, repeat=5))
    assert [of(r, QosEnqueue)[-1].verdict for r in results] == [
        "sent", "sent", "delayed", "delayed", "dropped"]


def test_htb_child_borrows_from_its_parent_up_to_ceil():
    # tc-htb(8): a class over its rate may borrow from its parent up to its ceil
    setup = """
tc qdisc add dev eth1 root handle 1: htb default 10
tc class add dev eth1 parent 1: classid 1:1 htb rate 8kbit burst 5000 cburst 5000
tc class add dev eth1 parent 1:1 classid 1:10 htb rate 800bit ceil 8kbit burst 600 cburst 5000
"""
    results = run(setup, packet(length=500, repeat=3))
    assert [of(r, QosEnqueue)[-1].verdict for r in results] == ["sent", "sent", "sent"]
    assert "1:10" in of(results[1], QosEnqueue)[-1].tokens


def test_shaping_delay_is_a_transmit_with_a_note():
    results = run("tc qdisc add dev eth1 root handle 1: tbf rate 800bit burst 600 limit 600",
                  packet(length=500, repeat=2))
    late = results[1]
    assert late.fate.action == "transmit" and late.fate.iface == "eth1"
    assert any("holds the packet" in n.text for n in of(late, Note))


# -- actions: police, mirred ---------------------------------------------------------

INGRESS_POLICE = """
tc qdisc add dev eth0 handle ffff: ingress
tc filter add dev eth0 parent ffff: protocol ip prio 1 u32 match ip src 192.0.2.0/24 \\
  police rate 8kbit burst 1000 {action}
"""
CT_RULES = """
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate NEW -j ACCEPT
COMMIT
"""


def test_ingress_police_drop_is_before_prerouting_and_conntrack():
    # tc-police(8) conform-exceed drop; KERNEL-NOTES 2: tc ingress runs before ip_rcv,
    # so a shot packet meets no netfilter hook and gets no conntrack entry
    text = BASE.format(setup=INGRESS_POLICE.format(action="conform-exceed drop").strip(),
                       rules=CT_RULES.strip(),
                       packets=packet(length=600) + packet(length=600, sport=1001))
    scenario = load_scenario(text, file="t.toml")
    box = scenario.build_box()
    from kptui.engine.walk import walk

    first = list(walk(box, scenario.packets[0].build(), index=0))
    second = list(walk(box, scenario.packets[1].build(), index=1))
    assert first[-1].action == "transmit" and second[-1].action == "drop"
    assert (second[-1].by, second[-1].stage) == ("qos:police", "tc:ingress")
    assert [e.stage for e in second if isinstance(e, StageEnter)] == ["tc:ingress"]
    assert len(box.conntrack.entries()) == 1  # only the first packet's


def test_police_default_exceed_is_reclassify_which_loops_into_a_drop():
    # tc-police(8): the default exceed action is reclassify; cls_api.c __tcf_classify
    # restarts the block and shoots the packet after max_reclassify_loop (16)
    results = run(INGRESS_POLICE.format(action=""), packet(length=600), packet(length=600))
    assert results[0].fate.action == "transmit"
    assert (results[1].fate.action, results[1].fate.by) == ("drop", "qos:police")
    assert len([a for a in of(results[1], QosAction) if a.result == "reclassify"]) == 17
    assert any("reclassify loop" in n.text for n in of(results[1], Note))


def test_police_continue_goes_on_to_the_next_filter():
    # tc-police(8) / pkt_cls.h: continue (TC_ACT_UNSPEC) = this filter did not match
    setup = HTB + """
tc filter add dev eth1 parent 1: prio 1 u32 match ip dst 198.51.100.10/32 \\
  police rate 8kbit burst 1000 conform-exceed continue flowid 1:10
tc filter add dev eth1 parent 1: prio 2 u32 match ip dst 198.51.100.10/32 flowid 1:20
"""
    results = run(setup, packet(length=600), packet(length=600))
    assert [target(r) for r in results] == ["1:10", "1:20"]


def test_egress_police_drop_in_an_htb_filter():
    setup = HTB + """
tc filter add dev eth1 parent 1: prio 1 u32 match ip dst 198.51.100.10/32 \\
  police rate 8kbit burst 1000 drop flowid 1:10
"""
    results = run(setup, packet(length=600), packet(length=600), packet(length=600, time=1))
    assert [(r.fate.action, r.fate.by) for r in results] == [
        ("transmit", "routing"), ("drop", "qos:police"), ("transmit", "routing")]
    drop = of(results[1], QosEnqueue)[-1]
    assert drop.counters == ["qdisc 1: drops"]  # htb_enqueue: qdisc_qstats_drop(sch)


def test_ifb_redirect_shapes_ingress_then_the_packet_goes_on():
    # tc-mirred(8) + ifb (kernel corpus: tc-ingress-ifb-drop, tc-ifb-htb-classes)
    setup = """
ip link add ifb0 type ifb
ip link set ifb0 up
tc qdisc add dev ifb0 root handle 1: tbf rate 800bit burst 1000 limit 3000
tc qdisc add dev eth0 handle ffff: ingress
tc filter add dev eth0 parent ffff: protocol ip prio 1 u32 match u32 0 0 at 0 \\
  action mirred egress redirect dev ifb0
"""
    ok, big = run(setup, packet(length=100), packet(length=1400))
    assert ok.fate.action == "transmit"
    assert [e.dev for e in of(ok, QosEnqueue)] == ["eth0", "ifb0"]
    assert (big.fate.action, big.fate.by, big.fate.stage) == ("drop", "qos:queue-full",
                                                              "tc:ingress")


# -- the walk ----------------------------------------------------------------------------

def test_no_tc_configured_means_no_tc_events():
    result = run("", packet())[0]
    assert not [e for e in result.events if e.stage.startswith("tc:")]


def test_deleting_the_root_qdisc_goes_back_to_the_default():
    result = run(HTB + "tc qdisc del dev eth1 root", packet())[0]
    assert not of(result, QosEnqueue)


def test_repeat_sends_copies_back_to_back():
    scenario = load_scenario(BASE.format(setup="", rules="", packets=packet(repeat=3)),
                             file="t.toml")
    assert len(scenario.packets) == 3
    assert {p.time for p in scenario.packets} == {0.0}


# -- the TUI's QoS panel -----------------------------------------------------------------

async def test_qos_tab_shows_the_class_chosen_and_the_counters():
    from kptui.app import KptApp
    from kptui.engine.debugger import Debugger
    from kptui.widgets.qos import QosPanel

    text = BASE.format(setup=HTB.strip() + "\ntc filter add dev eth1 parent 1: prio 1 u32 "
                       "match ip dport 2000 0xffff flowid 1:10", rules="", packets=packet())
    scenario = load_scenario(text, file="t.toml")
    app = KptApp(scenario, debugger=Debugger.for_scenario(scenario), name="t")
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("r")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        app.screen.action_show_tab("qos")
        await pilot.pause()
        shown = str(app.screen.query_one("#qos-text").render())
        assert isinstance(app.screen.query_one("#qos-panel"), QosPanel)
        assert "htb 1: -> 1:10 (filter)" in shown
        assert "class 1:10 (leaf)" in shown and "[1p 0 dropped]" in shown


def test_no_qos_tab_without_tc():
    from kptui.widgets.qos import has_tc

    scenario = load_scenario(BASE.format(setup="", rules="", packets=packet()), file="t.toml")
    assert not has_tc(scenario.build_box())


def test_the_class_chosen_is_written_to_meta_classid():
    from kptui.engine.events import FieldChange

    result = run(HTB, packet())[0]
    change = [e for e in result.events if isinstance(e, FieldChange)
              and e.path == "meta.classid"]
    assert [(c.new, c.by) for c in change] == [(0x10020, "tc:egress")]


# -- verify's reading of `tc -s` (printed by iproute2 6.1 on this machine) -----------------

CLASS_SHOW = """\
class htb 1:10 parent 1:1 leaf 10: prio 0 rate 1Mbit ceil 1Mbit burst 1600b cburst 1600b 
 Sent 1542 bytes 3 pkt (dropped 1, overlimits 0 requeues 0) 
 backlog 514b 1p requeues 0
 lended: 0 borrowed: 0 giants: 0
 tokens: 200000 ctokens: 200000

class htb 1:1 root rate 10Mbit ceil 10Mbit burst 1600b cburst 1600b 
 Sent 1028 bytes 2 pkt (dropped 0, overlimits 0 requeues 0) 
 backlog 0b 0p requeues 0
"""
QDISC_JSON = ('[{"kind":"noqueue","handle":"0:","dev":"lo","root":true,"packets":0,'
              '"drops":0,"qlen":0},{"kind":"htb","handle":"1:","dev":"eth1","root":true,'
              '"packets":2,"drops":1,"qlen":1},{"kind":"pfifo","handle":"8001:","dev":"eth1",'
              '"parent":"1:20","packets":5,"drops":0,"qlen":0}]')


def test_verify_reads_leaf_classes_and_explicit_qdiscs():
    from kptui.verify.tc import delta, parse_classes, parse_qdiscs

    classes = parse_classes("eth1", CLASS_SHOW)
    assert classes == {("eth1", "class 1:10"): (4, 1, 1)}  # Sent 3 + backlog 1; inner left out
    qdiscs = parse_qdiscs(QDISC_JSON)
    assert qdiscs == {("eth1", "qdisc 1:"): (3, 1, 1)}  # noqueue 0: and auto 8001: left out
    before = {("eth1", "qdisc 1:"): (2, 0, 0)}
    assert delta(before, qdiscs) == [{"dev": "eth1", "node": "qdisc 1:", "packets": 1,
                                      "drops": 1}]
