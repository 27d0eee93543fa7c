"""-j TEE, simulated (kptui.engine.iptables.ext.tee): the copy nf_dup_ipv4 sends.

Expected values come from the kernel where a recorded scenario has them
(tests/kernel/scenarios/ext-TEE.toml and ext-TEE-conntrack.toml, recorded with
`kptui verify --record` on Linux 6.18: NAME.kernel.jsonl holds what the kernel put
on the wire, each copy with the neighbour its frame went to and its own trace);
the others cite net/ipv4/netfilter/nf_dup_ipv4.c and net/netfilter/xt_TEE.c
(Linux 6.17/6.18).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kptui.engine.debugger import Debugger
from kptui.engine.events import AnswerSent, Fate, Note, RouteDecision, TargetApplied, WalkStart
from kptui.engine.run import run_scenario
from kptui.engine.scenario import load_scenario
from kptui.verify.compare import compare

SCENARIOS = Path(__file__).parent / "kernel" / "scenarios"


def corpus(name: str) -> tuple[list, list[dict]]:
    """kptui's results for a recorded scenario, and the kernel's recording."""
    path = SCENARIOS / f"{name}.toml"
    results = list(run_scenario(load_scenario(path.read_text("utf-8"), file=str(path))))
    text = (SCENARIOS / f"{name}.kernel.jsonl").read_text("utf-8")
    return results, [json.loads(line) for line in text.splitlines()]


BOX = """
name = "tee"
setup = "{setup}"
iptables = \"\"\"
{rules}
\"\"\"
[sysctl]
"net.ipv4.ip_forward" = 1
[[interfaces]]
name = "eth0"
addresses = ["10.0.0.1/24"]
[[interfaces]]
name = "eth1"
addresses = ["10.0.1.1/24"]
[[interfaces]]
name = "eth2"
addresses = ["10.0.2.1/24"]
[[packets]]
iif = "eth0"
proto = "udp"
src = "10.0.0.10"
dst = "10.0.1.7"
sport = 5000
dport = 7001
{packet}
"""


def run(rules: str, *, packet: str = "", setup: str = "") -> list:
    text = BOX.format(rules=rules.strip(), packet=packet, setup=setup)
    results = list(run_scenario(load_scenario(text, file="tee.toml")))
    for result in results:
        json.dumps(result.to_json())  # DESIGN.md's --json line, answers included
    return results


MANGLE_PRE = """*mangle
:PREROUTING ACCEPT [0:0]
-A PREROUTING -p udp -j TEE --gateway 10.0.2.99
COMMIT"""


# -- what the kernel did (ext-TEE, ext-TEE-conntrack) -------------------------------------


@pytest.mark.parametrize("name", ["ext-TEE", "ext-TEE-conntrack"])
def test_every_packet_and_copy_is_what_the_kernel_sent(name):
    results, recorded = corpus(name)
    for index, (got, rec) in enumerate(zip(results, recorded, strict=True)):
        assert compare(index, rec, got.to_json(with_events=False)).agrees, index


def test_a_copy_keeps_the_original_addresses_and_goes_to_the_gateways_mac():
    # ext-TEE packet 0 (kernel): the original out eth1, the copy out eth2 to 10.0.2.99's
    # link-layer address, its IP header still 10.0.0.10 -> 10.0.1.7, TTL 64 - 1 (copied
    # at PREROUTING)
    results, recorded = corpus("ext-TEE")
    got = results[0].to_json(with_events=False)
    # by: the kernel trace's last entry; decided_by (kptui's, additive): filter FORWARD's
    # ACCEPT policy is what let it through
    assert got["fate"] == {"action": "transmit", "iface": "eth1",
                           "by": "mangle:POSTROUTING:policy",
                           "decided_by": "filter:FORWARD:policy"}
    (copy,) = got["answers"]
    assert copy == recorded[0]["answers"][0]
    assert (copy["iface"], copy["src"], copy["dst"], copy["ttl"]) == \
        ("eth2", "10.0.0.10", "10.0.1.7", 63)
    assert (copy["kind"], copy["nexthop"]) == ("tee", "10.0.2.99")
    # the copy's walk: a locally generated, untracked packet that is not routed again
    walked = results[0].answers[0]
    assert walked.events[0].origin == "local"
    route = next(e for e in walked.events if isinstance(e, RouteDecision))
    assert (route.lookup, route.oif, route.gateway) == ("tee", "eth2", "10.0.2.99")
    assert walked.packet.ip.df and walked.packet.meta.ctstate == "UNTRACKED"


def test_a_copy_that_meets_a_tee_rule_again_is_not_copied_again():
    # ext-TEE packet 2 (kernel): copied in mangle POSTROUTING; the copy's own trace has
    # that rule, and it sends nothing (in_nf_duplicate)
    results, recorded = corpus("ext-TEE")
    (copy,) = results[2].to_json(with_events=False)["answers"]
    assert "mangle:POSTROUTING:rule:1" in copy["trace"] == recorded[2]["answers"][0]["trace"]
    walked = results[2].answers[0]
    assert walked.answers == []
    (again,) = [e for e in walked.events if isinstance(e, TargetApplied) and e.target == "TEE"]
    assert "not copied again" in again.detail and again.verdict == "CONTINUE"


@pytest.mark.parametrize(("packet", "iface", "nexthop"), [
    (4, "eth3", "10.0.1.7"),  # --oif eth3, no route to 10.0.2.97 there: the copy's own dst
    (5, "eth3", "10.0.3.97"),  # --oif eth3 with a connected route: the gateway
    (6, "eth2", "10.0.2.99"),  # --oif eth9 does not exist: looked up without an oif
    (7, "eth2", "10.0.2.50"),  # the gateway is behind 10.0.2.50: that one's MAC
])
def test_where_the_copy_goes(packet, iface, nexthop):
    # ext-TEE (kernel): the out device and the neighbour of each copy
    results, recorded = corpus("ext-TEE")
    (copy,) = results[packet].to_json(with_events=False)["answers"]
    assert (copy["iface"], copy["nexthop"]) == (iface, nexthop)
    assert copy == recorded[packet]["answers"][0]


@pytest.mark.parametrize(("packet", "why"), [
    (3, "no copy is sent: no route to 203.0.113.99"),
    (16, "no copy is sent: --oif eth4 is down"),
])
def test_no_route_to_the_gateway_no_copy_and_the_original_goes_on(packet, why):
    # ext-TEE packets 3 and 16 (kernel): nothing but the original leaves
    results, recorded = corpus("ext-TEE")
    got = results[packet]
    assert got.fate.action == "transmit" and got.answers == [] == recorded[packet]["answers"]
    assert any(isinstance(e, Note) and why in e.text for e in got.events)


def test_the_original_and_its_copy_are_independent():
    # ext-TEE (kernel): packet 1's TOS set after the copy is only on the original; packet
    # 8's copy is dropped in filter OUTPUT, the original leaves; packet 10's original is
    # dropped in FORWARD, its copy (made in PREROUTING) leaves
    results, recorded = corpus("ext-TEE")
    one = results[1].to_json(with_events=False)
    assert (one["out"]["tos"], one["answers"][0]["tos"]) == (0x10, 0)
    assert results[8].fate.action == "transmit" and results[8].to_json()["answers"] == []
    assert results[8].answers[0].fate.by == "filter:OUTPUT:rule:1"
    assert results[10].fate.action == "drop" and len(results[10].to_json()["answers"]) == 1
    assert [len(r["answers"]) for r in recorded[8:11]] == [0, 2, 1]


def test_copies_in_input_and_output():
    # ext-TEE packet 11 (kernel): copied in mangle INPUT, the original is delivered with
    # TTL 64 and the copy (to the box's own address) leaves eth2 with TTL 63; packet 12:
    # a local packet copied in mangle OUTPUT keeps its TTL
    results, recorded = corpus("ext-TEE")
    delivered = results[11].to_json(with_events=False)
    assert delivered["fate"]["action"] == "deliver" and delivered["out"]["ttl"] == 64
    (copy,) = delivered["answers"]
    assert (copy["dst"], copy["ttl"], copy["iface"]) == ("10.0.0.1", 63, "eth2")
    assert copy in recorded[11]["answers"]  # beside the kernel UDP stack's port unreachable
    (local,) = results[12].to_json(with_events=False)["answers"]
    assert local["ttl"] == 64 and local["trace"][0] == "mangle:OUTPUT:rule:1"


def test_a_copy_too_big_for_its_device_is_answered_with_frag_needed():
    # ext-TEE packet 15 (kernel): 1400 bytes for eth3 (MTU 1280): DF is set on every
    # copy, so ip_fragment drops it after POSTROUTING and the sender gets ICMP 3/4
    results, recorded = corpus("ext-TEE")
    got = results[15]
    (copy,) = got.answers
    assert copy.fate.action == "drop" and copy.fate.by == "mtu"
    (error,) = got.to_json(with_events=False)["answers"]
    assert (error["icmp_type"], error["icmp_code"], error["dst"]) == (3, 4, "10.0.0.10")
    assert error == recorded[15]["answers"][0]
    icmp = copy.answers[0].sent.l4
    assert icmp.seq == 1280  # the next-hop MTU it reports
    assert icmp.inner.ip.df and icmp.inner.ip.ttl == 63  # it quotes the copy


def test_copies_are_untracked_and_never_nated():
    # ext-TEE-conntrack packet 0 (kernel): DNAT + MASQUERADE for the original; the copy
    # made in mangle PREROUTING (before DNAT) still goes to 10.0.0.1:8080, the one from
    # filter FORWARD to 10.0.1.7:80, both from 10.0.0.10, both UNTRACKED in OUTPUT
    results, recorded = corpus("ext-TEE-conntrack")
    got = results[0].to_json(with_events=False)
    assert got["out"]["src"] == "10.0.1.1"
    pre, fwd = got["answers"]
    assert (pre["dst"], pre["dport"], fwd["dst"], fwd["dport"]) == \
        ("10.0.0.1", 8080, "10.0.1.7", 80)
    assert pre["src"] == fwd["src"] == "10.0.0.10"
    assert pre["trace"] == fwd["trace"] == ["filter:OUTPUT:rule:2"]  # --ctstate UNTRACKED
    assert got["answers"] == recorded[0]["answers"]
    # the connection goes on without them: the server's SYN-ACK is ESTABLISHED
    assert results[1].packet.meta.ctstate == "ESTABLISHED"


# -- from the kernel source -----------------------------------------------------------------


def test_a_copy_always_has_df_and_takes_one_off_the_ttl_at_prerouting():
    # nf_dup_ipv4: iph->frag_off |= htons(IP_DF); --iph->ttl at PREROUTING/INPUT (u8)
    (result,) = run(MANGLE_PRE, packet="df = false\nttl = 0")
    copy = result.answers[0].sent
    assert copy.ip.df and not result.sent.ip.df
    assert copy.ip.ttl == 255  # 0 - 1 in a u8; the original itself dies in ip_forward


def test_the_copys_route_lookup_uses_no_mark():
    # nf_dup_ipv4_route: the flowi4 is memset to 0 but for oif, daddr, tos, scope: a
    # fwmark rule does not route the copy, whatever the packet's mark
    rules = """*mangle
:PREROUTING ACCEPT [0:0]
-A PREROUTING -j MARK --set-mark 0x1
-A PREROUTING -p udp -j TEE --gateway 10.0.2.99
COMMIT"""
    setup = "ip rule add fwmark 0x1 lookup 100 priority 100"
    (result,) = run(rules, setup=setup)
    assert result.answers[0].packet.meta.oif == "eth2"


def test_a_gateway_that_is_a_local_address_is_refused_by_name():
    rules = MANGLE_PRE.replace("10.0.2.99", "10.0.2.1")
    (result,) = run(rules)
    assert result.fate.action == "error"
    assert "its route is local" in result.fate.message


def test_order_sensitive_rules_both_walks_reach_are_refused_by_name():
    # The kernel sends the copy through POSTROUTING before the original reaches it;
    # kptui walks the copy after the original: a quota both meet would be used the
    # other way round, so the walk stops with the rule named
    rules = MANGLE_PRE.replace("COMMIT", """:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -m quota --quota 100
COMMIT""")
    (result,) = run(rules)
    assert result.fate.action == "error"
    assert "mangle:POSTROUTING:rule:1 (-m quota)" in result.fate.message
    # a quota only the original meets is fine
    fine = rules.replace("-A POSTROUTING -m quota", "-A POSTROUTING -o eth1 -m quota")
    assert run(fine)[0].fate.action == "transmit"


def test_an_answer_to_a_copy_with_conntrack_is_an_error_listed_in_json():
    # REJECT of a copy in filter OUTPUT while connections are tracked: the kernel
    # answers while the original's entry may still be unconfirmed, kptui walks the copy
    # after it: refused, and --json lists that answer walk with its error
    rules = MANGLE_PRE + """
*filter
:OUTPUT ACCEPT [0:0]
-A OUTPUT -m conntrack --ctstate UNTRACKED -j REJECT
COMMIT"""
    (result,) = run(rules)
    assert result.fate.action == "transmit"
    (entry,) = result.to_json(with_events=False)["answers"]
    assert entry["kind"] == "tee" and "iface" not in entry
    assert "an answer to a -j TEE copy" in entry["error"]


# -- as the debugger, --json events and sessions see it --------------------------------------


def test_the_copy_is_announced_as_a_copy_and_stepped_as_its_own_walk():
    text = BOX.format(rules=MANGLE_PRE, packet="", setup="")
    dbg = Debugger.for_scenario(load_scenario(text, file="tee.toml"))
    seen = []
    while dbg.step().reason != "end":
        seen.append(dbg.current)
    (sent,) = [e for e in seen if isinstance(e, AnswerSent)]
    assert sent.clone and sent.to_dict()["clone"] is True
    assert sent.describe().startswith("the box sends a copy: udp 10.0.0.10:5000 -> 10.0.1.7")
    starts = [e for e in seen if isinstance(e, WalkStart)]
    assert [s.origin for s in starts] == ["eth0", "local"]
    fates = [e for e in seen if isinstance(e, Fate)]
    assert [(f.action, f.iface) for f in fates] == [("transmit", "eth1"), ("transmit", "eth2")]
    # the debugger knows the second walk is the copy of the first
    assert list(dbg.walk_info.values())[-1] == (1, sent.why)


@pytest.mark.parametrize("form", ["json", "text"])
def test_a_saved_session_replays_the_copies_as_trace_printed_them(tmp_path, capsys, form):
    # the session journal re-runs the walks, the copies' walks included, and its
    # headless replay prints what `kptui trace` printed (answers, kinds, traces)
    from kptui.cli import main

    scenario = SCENARIOS / "ext-TEE.toml"
    path = tmp_path / "tee.kpt"
    assert main(["trace", str(scenario), "--save", str(path), "--format", form]) == 0
    printed = capsys.readouterr().out
    assert main(["replay", str(path), "--headless", "--format", form]) == 0
    assert capsys.readouterr().out == printed
    if form == "json":
        first = json.loads(printed.splitlines()[0])
        assert first["answers"][0]["kind"] == "tee"
        assert any(e["kind"] == "answer" and e.get("clone") for e in first["events"])


# -- how kptui verify tells a copy from the packet (pure parts, on monitor lines) -----------

HEADER = "SRC=10.0.0.10 DST=10.0.1.7 LEN=28 TOS=0x0 TTL={} ID=4096 DF SPORT=5000 DPORT=7016"
MONITOR = [
    f"PACKET: 2 51e602cd IN=eth0 {HEADER.format(64)}",
    " TRACE: 2 51e602cd kptui_trace:pre:policy:ACCEPT",
    f"PACKET: 2 21dcb6db OUT=eth1 {HEADER.format(63)}",
    " TRACE: 2 21dcb6db filter:OUTPUT:policy:ACCEPT",
    f"PACKET: 2 21dcb6db IN=eth1 OUT=eth1 {HEADER.format(63)}",
    " TRACE: 2 21dcb6db kptui_trace:postdone:policy:ACCEPT",
    f"PACKET: 2 51e602cd IN=eth0 OUT=eth1 {HEADER.format(63)}",
    " TRACE: 2 51e602cd filter:FORWARD:rule:0x4:CONTINUE  -4 -t filter -A FORWARD "
    "-j TEE --gateway 10.0.1.99",
    " TRACE: 2 51e602cd filter:FORWARD:policy:ACCEPT",
    " TRACE: 2 51e602cd kptui_trace:postdone:policy:ACCEPT",
]


def test_verify_splits_a_copys_trace_and_frame_from_the_packets():
    # The shape of ext-TEE packet 14 as xtables-monitor printed it on Linux 6.18: the copy
    # is a second trace id beginning at OUTPUT (no IN=); both frames leave eth1 with the
    # same header, the packet's first (its neighbour was resolved, the copy's not yet)
    from kptui.engine.packet import Packet
    from kptui.verify import wire
    from kptui.verify.kernel import Frame, copy_frames, neighbour_mac, neighbour_of
    from kptui.verify.trace import TraceParser, clones

    parser = TraceParser()
    for line in MONITOR:
        parser.feed(line)
    own, copies = clones(parser.by_ident[4096])
    assert [s.chain for s in own.steps] == ["FORWARD", "FORWARD"]
    assert [(s.table, s.chain) for s in copies[0].steps] == [("filter", "OUTPUT")]
    data = wire.with_ident(Packet.build("udp", src="10.0.0.10", dst="10.0.1.7", sport=5000,
                                        dport=7016, ttl=63).to_bytes(), 4096)
    frames = [Frame("eth1", data, neighbour_mac(bytes([10, 0, 1, 7]))),
              Frame("eth1", data, neighbour_mac(bytes([10, 0, 1, 99])))]
    assert neighbour_of(frames[1].dst_mac) == "10.0.1.99"
    # the packet's own route says 10.0.1.7: the second frame is the copy
    assert copy_frames(frames, [0, 1], own, copies, lambda fields: "10.0.1.7") == {1: 0}
    # without that, the copy is taken to be sent first (it is sent inside the rule)
    assert copy_frames(frames, [0, 1], own, copies) == {0: 0}
