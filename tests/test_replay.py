"""Replay and time travel: checkpoints, seeking along a timeline, headless replay, pcap.

Reverse steps re-execute from the nearest checkpoint (a deep copy of the box
taken at a packet boundary); they must land on exactly the state a step-by-step
run had there. Tests drive the built-in demo (ten packets through a home
router, one of which the router answers with an ICMP error) with tiny
checkpoint intervals so every path through the checkpoint code is taken.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib import resources

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kptui.cli import main
from kptui.engine.debugger import Debugger
from kptui.engine.events import AnswerSent, Fate, StageLeave, WalkStart
from kptui.engine.iptables import to_save
from kptui.engine.packet import Packet
from kptui.engine.scenario import load_scenario
from kptui.sessions import pcap
from kptui.sessions.format import load, save
from kptui.sessions.replay import pcap_records, record, replay

DEMO = resources.files("kptui.scenarios").joinpath("demo.toml").read_text("utf-8")
SCENARIO = load_scenario(DEMO, file="demo.toml")


def demo(every: int = 256) -> Debugger:
    return Debugger(SCENARIO.build_box, SCENARIO.packets, profile=SCENARIO.profile,
                    checkpoint_every=every)


def state(dbg: Debugger) -> tuple:
    """Everything a user can see of the debugger: events, packet, rule counters, rng."""
    packet = dbg.packet.copy() if dbg.packet is not None else None
    return (tuple(dbg.events), dbg.index, dbg.walk_start, dbg.in_walk, packet,
            to_save(dbg.box.ruleset, counters=True), dbg.box.rng.getstate())


def test_step_back_lands_on_the_state_a_forward_run_had():
    forward, states = demo(every=20), []
    while forward.step().reason != "end":
        states.append(state(forward))
    assert len(forward.checkpoints) > 5  # the test really goes through checkpoints
    for expected in reversed(states[:-1]):
        forward.step_back()
        assert state(forward) == expected


def test_checkpoints_are_taken_at_packet_boundaries_and_dropped_when_history_changes():
    dbg = demo(every=30)
    while dbg.step().reason != "end":
        pass
    for count in dbg.checkpoints:
        assert isinstance(dbg.events[count - 1], Fate)
    middle = dbg.checkpoints[len(dbg.checkpoints) // 2]
    while len(dbg.events) > middle - 3:
        dbg.step_back()
    assert max(dbg.checkpoints) <= len(dbg.events)


def test_reverse_cont_with_checkpoints_finds_the_same_hit_as_without():
    def run(every):
        dbg = demo(every)
        dbg.add_breakpoint("stage filter:FORWARD")
        while dbg.step().reason != "end":
            pass
        stops = []
        while (stop := dbg.reverse_cont()).reason != "end":
            stops.append((len(dbg.events), stop.event, state(dbg)))
        return stops

    assert run(10) == run(10**9)


ACTIONS = st.sampled_from(["step", "step", "step", "step_over", "step_out", "cont",
                           "next_packet", "run_to_fate", "step_back", "step_back",
                           "reverse_cont", "edit", "break", "toggle"])


def act(dbg: Debugger, action: str, n: int) -> None:
    if action == "edit":
        if dbg.in_walk:
            dbg.edit("ip.ttl", str(2 + n % 60))
    elif action == "break":
        spec = ["stage filter:FORWARD", "watch meta.mark", "rule filter:INPUT:2",
                "hook POSTROUTING", "if tcp.dport == 25"][n % 5]
        dbg.add_breakpoint(spec)
    elif action == "toggle":
        if dbg.breakpoints:
            bp = list(dbg.breakpoints.values())[n % len(dbg.breakpoints)]
            dbg.enable(bp.id, not bp.enabled)
    else:
        getattr(dbg, action)()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(ACTIONS, st.integers(0, 100)), min_size=1, max_size=40),
       st.integers(3, 60))
def test_random_journals_replay_and_travel_both_ways_to_identical_states(actions, every):
    dbg = demo(every)
    for action, n in actions:
        act(dbg, action, n)
    # the journal alone rebuilds the same state (what a saved session relies on)
    again = Debugger.replay(SCENARIO.build_box, SCENARIO.packets, dbg.journal,
                            profile=SCENARIO.profile)
    assert state(again) == state(dbg)
    # forward along the timeline, then backward: the same state at every position
    timeline = list(dbg.events)
    again.seek(0, timeline)
    forward = []
    for position in range(len(timeline) + 1):
        again.seek(position, timeline)
        forward.append(state(again))
    for position in reversed(range(len(timeline) + 1)):
        again.seek(position, timeline)
        assert state(again) == forward[position]
    assert forward[-1] == state(dbg)


# A router whose only FORWARD rule accepts at random, and four LAN packets to forward. (Not
# the demo with a random rule: its packet 9 is a `reply_to = 0`, which cannot be built when
# chance drops packet 0.)
RANDOM_FORWARD = """
name = "coin"
iptables = \"""
*filter
:FORWARD DROP [0:0]
-A FORWARD -i eth0 -o eth1 -m statistic --mode random --probability 0.5 -j ACCEPT
COMMIT
\"""

[sysctl]
"net.ipv4.ip_forward" = 1

[[interfaces]]
name = "eth0"
addresses = ["192.0.2.1/24"]

[[interfaces]]
name = "eth1"
addresses = ["203.0.113.2/24"]
""" + "".join(f"""
[[packets]]
iif = "eth0"
proto = "udp"
src = "192.0.2.10"
dst = "203.0.113.9"
sport = {40000 + n}
dport = 53
""" for n in range(4))


def test_seeded_random_choices_are_part_of_the_session():
    text = RANDOM_FORWARD
    scenario = load_scenario(text, file="s.toml")
    fates = {}
    for seed in range(6):
        dbg = Debugger.for_scenario(scenario)
        dbg.set_seed(seed)
        while dbg.cont().reason != "end" and dbg.state != "finished":
            pass
        session = record(dbg, text, "s.toml")
        assert session.journal[0] == {"op": "seed", "value": seed}
        done = replay(session)
        assert done.ok, done.divergence
        fates[seed] = [e.action for e in dbg.events if isinstance(e, Fate)]
    # `-m statistic --mode random` (iptables-extensions(8)) matches at random: the seed
    # decides, and different seeds give different fates (transmit or the policy's drop)
    assert len({tuple(f) for f in fates.values()}) > 1
    assert {a for f in fates.values() for a in f} == {"transmit", "drop"}


# -- headless ---------------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "demo.kpt"
    assert main(["trace", "--demo", "--save", str(path), "--format", "trace"]) == 0
    return path


@pytest.mark.parametrize("form", ["trace", "json", "text"])
def test_headless_replay_prints_what_trace_printed(saved, capsys, form):
    # exactly what `kptui trace --demo --format FORM` prints, the walks of the box's own
    # answers included (the debugger walks them after the walk that caused them)
    from kptui import report
    from kptui.engine.run import run_scenario

    results = list(run_scenario(SCENARIO))
    # the demo's packet 6 (ttl 1) is answered with ICMP time exceeded (RFC 792 type 11,
    # sent by ip_forward): without an answer walk this test would not compare answers
    assert [r.index for r in results if r.answers] == [6]
    ruleset = SCENARIO.build_box().ruleset  # for the rule handles of --format trace
    render = {"trace": lambda r: report.as_trace(r, ruleset=ruleset), "text": report.as_text,
              "json": report.as_json_lines}
    expected = render[form](results)
    assert main(["replay", str(saved), "--headless", "--format", form]) == 0
    assert capsys.readouterr().out == expected


def test_a_diverging_replay_exits_1_and_shows_the_first_differing_event(saved, tmp_path,
                                                                         capsys):
    session = load(saved)
    # a changed scenario: packet 3's web server rule (FORWARD rule 3, after the ESTABLISHED
    # rule and the LAN-to-uplink rule) now accepts port 80 instead of 443
    session.scenario_text = session.scenario_text.replace(
        "--dport 443 -j ACCEPT", "--dport 80 -j ACCEPT")
    path = tmp_path / "changed.kpt"
    save(session, path)
    capsys.readouterr()
    assert main(["replay", str(path), "--headless", "--format", "trace"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "diverges from the recording: event " in err
    assert "recorded rule: 'filter FORWARD rule 3 matched" in err
    assert "replayed rule: 'filter FORWARD rule 3 no match" in err


def test_pcap_export_has_each_packet_before_and_after_the_stages_that_changed_it(saved,
                                                                               tmp_path):
    out = tmp_path / "walk.pcap"
    assert main(["replay", str(saved), "--pcap", str(out)]) == 0
    linktype, records = pcap.read(out.read_bytes())
    assert linktype == pcap.LINKTYPE_RAW == 101
    packets = [Packet.from_bytes(r.data) for r in records]
    by_walk = {}
    for rec, pkt in zip(records, packets, strict=True):
        by_walk.setdefault(rec.seconds, []).append(pkt)
    # packet 0 is forwarded: as it arrived (ttl 64), after the forward stage (ttl 63,
    # ip_forward decrements it: RFC 1812 5.3.1), then after nat POSTROUTING, where
    # MASQUERADE gives it eth1's address (iptables-extensions(8) MASQUERADE)
    assert [(p.ip.ttl, str(p.ip.src)) for p in by_walk[0]] == [
        (64, "192.0.2.10"), (63, "192.0.2.10"), (63, "203.0.113.2")]
    # packet 2 is dropped in INPUT, unchanged: it appears once
    assert len(by_walk[2]) == 1
    # packet 6 (ttl 1) is not forwarded: ip_forward drops it before decrementing and
    # answers with ICMP time exceeded in transit (RFC 792: type 11 code 0), quoting it;
    # the answer is a record of packet 6, after it
    assert by_walk[6][0].ip.ttl == 1
    answer = by_walk[6][1]
    assert (answer.l4.type, answer.l4.code) == (11, 0)
    assert answer.l4.inner.ip.dst == by_walk[6][0].ip.dst
    assert str(answer.ip.dst) == "192.0.2.10"
    assert [rec.micros for rec in records if rec.seconds == 6] == [0, 1]
    # packet 8's source is chosen by output routing (0.0.0.0 -> 203.0.113.2)
    assert [str(p.ip.src) for p in by_walk[8]] == ["0.0.0.0", "203.0.113.2"]
    dbg = replay(load(saved)).debugger
    assert [r.data for r in pcap_records(dbg)] == [r.data for r in records]


def test_tcpdump_reads_the_pcap(saved, tmp_path):
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        pytest.skip("tcpdump is not installed (apt-get install tcpdump)")
    out = tmp_path / "walk.pcap"
    assert main(["replay", str(saved), "--pcap", str(out)]) == 0
    proc = subprocess.run([tcpdump, "-n", "-v", "-r", str(out)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "link-type RAW" in proc.stderr
    # tcpdump checks the checksums with -v: none may be reported wrong
    assert "incorrect" not in proc.stdout and "bad cksum" not in proc.stdout
    assert "192.0.2.10.40000 > 198.51.100.7.443: Flags [S]" in proc.stdout
    assert "ttl 63" in proc.stdout


def test_a_replay_of_an_unfinished_walk_says_so(tmp_path, capsys):
    dbg = demo()
    for _ in range(5):
        dbg.step()
    path = tmp_path / "mid.kpt"
    save(record(dbg, DEMO, "demo.toml"), path)
    capsys.readouterr()
    assert main(["replay", str(path), "--headless"]) == 0
    assert "in flight: the session ends here" in capsys.readouterr().out
    assert main(["replay", str(path), "--headless", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fate"] is None


def test_a_session_ending_in_an_answer_walk_prints_it_in_flight_under_its_packet(tmp_path,
                                                                                capsys):
    dbg = demo()
    while not (isinstance(dbg.current, WalkStart) and dbg.answer_depth == 1):
        assert dbg.step().reason != "end"
    dbg.step()  # one event into the walk of packet 6's ICMP time exceeded
    path = tmp_path / "mid-answer.kpt"
    save(record(dbg, DEMO, "demo.toml"), path)
    capsys.readouterr()
    assert main(["replay", str(path), "--headless"]) == 0
    out = capsys.readouterr().out
    assert out.endswith("  .. in flight: the session ends here\n")
    # the answer walk is printed as trace prints answers: indented under packet 6's fate
    assert "  answer (ICMP time exceeded" in out.split("packet 6 arrives")[1]
    assert "packet 7 " not in out
    assert main(["replay", str(path), "--headless", "--json"]) == 0
    last = json.loads(capsys.readouterr().out.splitlines()[-1])
    # packet 6 has its fate; its answer has not left the box yet, so --json lists none
    assert (last["packet"], last["fate"]["action"], last["answers"]) == (6, "drop", [])


def test_walk_events_stay_between_walk_start_and_fate(saved):
    events = replay(load(saved)).debugger.events
    starts = [i for i, e in enumerate(events) if isinstance(e, WalkStart)]
    # one walk per scenario packet, plus one per answer the box sent (each answer is walked
    # as a locally generated packet; the demo's answers send no answers of their own)
    answers = [e for e in events if isinstance(e, AnswerSent)]
    assert len(answers) == 1  # packet 6's ICMP time exceeded
    assert len(starts) == len(SCENARIO.packets) + len(answers)
    # the answer walk follows the walk that caused it, with the same packet index
    assert [events[i].index for i in starts] == [0, 1, 2, 3, 4, 5, 6, 6, 7, 8, 9]
    assert events[starts[7]].origin == "local"  # the router itself sends the ICMP error
    assert all(isinstance(events[i - 1], Fate) for i in starts[1:])
    assert any(isinstance(e, StageLeave) for e in events)


@pytest.mark.parametrize("spec", [
    "stage nat:POSTROUTING if tcp.dport == \uff18\uff10",  # full-width digits: not a number
    "stage nat:POSTROUTING if " + "(" * 1000 + "tcp.dport == 80" + ")" * 1000,
    "stage nat:POSTROUTING if " + "not " * 900 + "ip.df",
], ids=["full-width digits", "deep parentheses", "deep not"])
def test_a_bad_journal_entry_stops_the_replay_there_and_says_which(saved, tmp_path, capsys,
                                                                   spec):
    # Issue 13: a session whose journal held such a breakpoint made `replay --headless`
    # exit 3 with a traceback. Now: one line naming the entry, exit 1, as any divergence.
    session = load(saved)
    session.journal.insert(0, {"op": "break", "spec": spec, "id": 1})
    path = tmp_path / "bad.kpt"
    save(session, path)
    capsys.readouterr()
    assert main(["replay", str(path), "--headless", "--format", "trace"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "journal action 0 " in err and " fails: " in err
    assert "internal error" not in err


def test_an_internal_error_in_a_journal_action_is_reported_not_raised(saved, monkeypatch):
    # A session file is untrusted input: even a kptui bug in one action ends the replay
    # at that entry with a message, not with a traceback.
    def broken(self, entry):  # noqa: ANN001, ANN202
        raise ValueError("boom")

    monkeypatch.setattr(Debugger, "apply", broken)
    done = replay(load(saved), file="s.kpt")
    assert done.divergence.startswith("journal action 0 ")
    assert "internal error (ValueError: boom)" in done.divergence
