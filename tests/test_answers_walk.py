"""The box's answers as walks: REJECT, TTL, route errors, MTU, redirects; reply_to.

Expected results come from the kernel: each test names the scenario of the
recorded corpus (tests/kernel/scenarios/NAME.toml, recorded with
`kptui verify --record` on kernel 6.18 in network namespaces) whose
NAME.kernel.jsonl holds what the real kernel sent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kptui.engine.errors import ParseError
from kptui.engine.events import AnswerSent, Fate, Note, WalkStart
from kptui.engine.run import run_scenario
from kptui.engine.scenario import load_scenario
from kptui.verify import scenario_plan
from kptui.verify.compare import compare

SCENARIOS = Path(__file__).parent / "kernel" / "scenarios"


def load(name: str):  # noqa: ANN201
    path = SCENARIOS / f"{name}.toml"
    return load_scenario(path.read_text("utf-8"), file=str(path))


def kernel(name: str) -> list[dict]:
    text = (SCENARIOS / f"{name}.kernel.jsonl").read_text("utf-8")
    return [json.loads(line) for line in text.splitlines()]


def results(name: str) -> list:
    return list(run_scenario(load(name)))


# -- each kind of answer, through the walk and in --json ---------------------------------

KINDS = [  # scenario, packet, (icmp_type, icmp_code) or tcp flags: what the kernel sent
    ("ipt-reject-kinds", 0, (3, 3)),  # REJECT default: port unreachable
    ("ipt-reject-kinds", 1, (3, 10)),  # --reject-with icmp-host-prohibited
    ("ipt-reject-kinds", 2, "RA"),  # --reject-with tcp-reset to a SYN
    ("ipt-reject-forward", 0, (3, 0)),  # REJECT in FORWARD, net unreachable
    ("path-ttl-forward", 0, (11, 0)),  # TTL expired in ip_forward
    ("path-route-unreachable", 0, (3, 1)),  # unreachable route: host unreachable
    ("path-route-prohibit", 0, (3, 13)),  # prohibit route: admin prohibited
    ("path-forward-mtu", 0, (3, 4)),  # DF over the next hop's MTU: frag needed
    ("path-forward-same-iface", 0, (5, 1)),  # out where it came in: host redirect
]


@pytest.mark.parametrize(("name", "index", "what"), KINDS,
                         ids=[f"{n}-{i}" for n, i, _ in KINDS])
def test_each_answer_kind_is_announced_walked_and_in_json(name, index, what):
    result = results(name)[index]
    announced = [e for e in result.events if isinstance(e, AnswerSent)]
    assert len(announced) == 1
    assert isinstance(result.events[-1], Fate)  # the announcement comes before the fate
    assert result.events.index(announced[0]) < len(result.events) - 1
    (walked,) = result.answers
    assert isinstance(walked.events[0], WalkStart) and walked.events[0].origin == "local"
    assert walked.fate.action == "transmit"
    (entry,) = result.to_json()["answers"]
    assert list(entry)[0] == "iface"  # as verify records it
    if isinstance(what, str):
        assert entry["proto"] == "tcp" and entry["flags"] == what
    else:
        assert (entry["icmp_type"], entry["icmp_code"]) == what
    # the kernel sent exactly this (every recorded field)
    assert kernel(name)[index]["answers"] == [entry]


def test_answers_are_compared_with_the_kernel_and_a_difference_is_found():
    # ipt-reject-kinds packet 0: the kernel sent a port unreachable.
    rec = kernel("ipt-reject-kinds")[0]
    ours = results("ipt-reject-kinds")[0].to_json(with_events=False)
    assert compare(0, rec, ours).agrees
    wrong = json.loads(json.dumps(ours))
    wrong["answers"][0]["icmp_code"] = 1
    assert compare(0, rec, wrong).differs == ["answers"]
    wrong["answers"] = []
    assert compare(0, rec, wrong).differs == ["answers"]


def test_the_local_stacks_answers_to_delivered_packets_are_not_compared():
    # reply-udp-forward-and-local packet 2 was delivered; the kernel's port unreachable
    # came from its UDP stack (no socket listens in verify's box), kptui models no sockets.
    rec = kernel("reply-udp-forward-and-local")[2]
    assert rec["fate"]["action"] == "deliver" and rec["answers"]
    ours = results("reply-udp-forward-and-local")[2].to_json(with_events=False)
    assert ours["answers"] == [] and compare(2, rec, ours).agrees


def test_a_rejected_tcp_syn_gets_a_rst_acking_it():
    # ipt-reject-kinds packet 2 (recorded): RST+ACK from 192.0.2.1:80 back to the sender.
    result = results("ipt-reject-kinds")[2]
    rst = result.answers[0].packet
    syn = result.sent
    assert rst.l4.ack == (syn.l4.seq + 1) & 0xFFFFFFFF and rst.l4.seq == 0


def test_the_ttl_error_quotes_the_packet_before_the_decrement():
    # ip_forward's too_many_hops (path-ttl-forward): the quote shows the TTL it arrived with.
    result = results("path-ttl-forward")[0]
    quoted = result.answers[0].sent.l4.inner
    assert quoted.ip.ttl == result.sent.ip.ttl == 1


# -- answers dropped by the box's own OUTPUT filter --------------------------------------


def test_answers_walk_output_and_can_be_dropped_there():
    # answer-output-filter (recorded): packet 0's RST and packet 3's host unreachable are
    # dropped by OUTPUT rules matching RELATED (nf_ct_attach), packet 4's time exceeded by
    # an ICMP type rule; packets 1 and 2's answers leave.
    got = results("answer-output-filter")
    rec = kernel("answer-output-filter")
    assert [len(r.to_json()["answers"]) for r in got] == [len(r["answers"]) for r in rec] \
        == [0, 1, 1, 0, 0]
    for index in (0, 3, 4):
        (walked,) = got[index].answers
        assert walked.fate.action == "drop" and walked.fate.by.startswith("filter:OUTPUT:rule:")
    dropped_rst = got[0].answers[0]
    assert dropped_rst.fate.by == "filter:OUTPUT:rule:1"
    assert dropped_rst.packet.meta.ctstate == "RELATED"


def test_a_reject_answer_to_a_local_sender_is_walked_but_not_on_the_wire():
    # ipt-reject-output-local: the kernel's answer goes to the box itself (verify records
    # nothing); kptui walks it back in through lo and keeps it out of `answers`.
    for got, rec in zip(results("ipt-reject-output-local"), kernel("ipt-reject-output-local"),
                        strict=True):
        if got.fate.action == "reject":
            assert got.answers and got.answers[0].fate.action == "deliver"
            assert got.to_json()["answers"] == rec["answers"] == []


# -- no answer -----------------------------------------------------------------------------


def test_fates_the_kernel_does_not_answer():
    # answer-none (recorded): an ICMP error, a RST, a broadcast, a forwarded ICMP error
    # with TTL 1, a blackhole route, an unreachable route with forwarding off.
    got = results("answer-none")
    assert [r["answers"] for r in kernel("answer-none")] == [[]] * 6
    assert [g.fate.action for g in got] == ["reject", "reject", "reject", "drop", "drop",
                                            "drop"]
    for g in got:
        assert g.answers == [] and g.to_json()["answers"] == []
        assert not any(isinstance(e, AnswerSent) for e in g.events)
    notes = [e.text for g in got[:4] for e in g.events if isinstance(e, Note)]
    assert any("no ICMP error about an ICMP error" in t for t in notes)
    assert any("no RST is sent for a RST" in t for t in notes)
    assert any("broadcast" in t for t in notes)


# -- reply_to --------------------------------------------------------------------------------


def test_reply_to_builds_the_servers_answer_where_the_packet_left():
    # reply-tcp-handshake-forward (recorded): SYN out of eth1, SYN-ACK in on eth1, ACK in on
    # eth0; the kernel saw the same bytes and the same conntrack states.
    got = results("reply-tcp-handshake-forward")
    syn, synack, ack, again = (r.sent for r in got)
    assert synack.meta.iif == "eth1" and ack.meta.iif == "eth0"
    assert (synack.ip.src, synack.ip.dst) == (syn.ip.dst, syn.ip.src)
    assert (synack.l4.sport, synack.l4.dport, synack.l4.flags) == (443, 40000, 0x12)
    assert synack.l4.ack == syn.l4.seq + 1
    assert ack.l4.flags == 0x10 and ack.l4.ack == synack.l4.seq + 1
    assert again.ip.ttl == 50  # the override
    rec = kernel("reply-tcp-handshake-forward")
    assert [r.to_json(with_events=False)["trace"] for r in got] == [r["trace"] for r in rec]


def test_reply_to_a_delivered_packet_is_generated_locally():
    # reply-udp-forward-and-local packet 3 answers packet 2, which was delivered.
    got = results("reply-udp-forward-and-local")
    assert got[2].fate.action == "deliver"
    assert got[3].sent.meta.iif == "" and got[3].fate.action == "transmit"
    assert got[3].fate.iface == kernel("reply-udp-forward-and-local")[3]["fate"]["iface"]


def test_reply_to_an_echo_request_is_its_echo_reply():
    # reply-icmp-echo (recorded): same id, ESTABLISHED in the REPLY direction.
    got = results("reply-icmp-echo")
    reply = got[1].sent
    assert (reply.l4.type, reply.l4.id) == (0, 7) and reply.meta.iif == "eth1"
    assert got[1].to_json(with_events=False)["fate"] == kernel("reply-icmp-echo")[1]["fate"]


def test_verify_sends_the_reply_kptui_built():
    plan = scenario_plan(load("reply-tcp-handshake-forward"))
    assert [p.origin for p in plan.packets] == ["eth0", "eth1", "eth0", "eth1"]
    assert plan.packets[1].data[9] == 6 and plan.packets[1].data[20 + 13] == 0x12  # SYN-ACK


BASE = """
[[interfaces]]
name = "eth0"
addresses = ["192.0.2.1/24"]

[[packets]]
iif = "eth0"
proto = "udp"
src = "192.0.2.10"
dst = "192.0.2.1"
sport = 1
dport = 2
"""


@pytest.mark.parametrize(("extra", "line", "words"), [
    ("[[packets]]\nreply_to = 1\n", 14, "earlier packet"),
    ("[[packets]]\nreply_to = 0\nsrc = \"1.2.3.4\"\n", 15, "decided by reply_to"),
    ("[[packets]]\nreply_to = \"0\"\n", 14, "must be an integer"),
    ("[[packets]]\nreply_to = 0\nmark = 1\n", 15, "local"),
    ("[[packets]]\nreply_to = 0\niif = \"eth9\"\n", 15, "not a declared interface"),
])
def test_reply_to_validation_names_file_and_line(extra, line, words):
    with pytest.raises(ParseError) as err:
        load_scenario(BASE + extra, file="s.toml")
    assert err.value.file == "s.toml" and err.value.line == line
    assert words in str(err.value)


def test_reply_to_a_dropped_packet_is_reported_on_that_packet_naming_the_file():
    # issue 15 item 5: not a failure of the whole run (packet 0's drop stays traceable)
    text = BASE.replace('dst = "192.0.2.1"', 'dst = "203.0.113.9"') + \
        "[[packets]]\nreply_to = 0\n"  # no route, forwarding off: packet 0 is dropped
    scenario = load_scenario(text, file="s.toml")
    first, reply = run_scenario(scenario)
    assert first.fate.action == "drop"
    assert reply.packet is None and reply.fate.action == "error" and reply.fate.by == "reply_to"
    assert reply.fate.message.startswith("not sent: s.toml:13: reply_to = 0: packet 0 was not")
    assert reply.to_json()["out"] == {} and reply.to_json()["trace"] == []
