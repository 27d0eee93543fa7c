"""Every sample session in sessions/ replays headlessly without diverging (CI runs this).

A divergence means the engine now does something else with the same scenario and
actions: either a bug, or a deliberate change after which the samples are
recorded again (python sessions/make_samples.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kptui.cli import main
from kptui.engine.debugger import Debugger
from kptui.engine.scenario import load_scenario
from kptui.sessions.format import load
from kptui.sessions.replay import replay

SAMPLES = sorted((Path(__file__).resolve().parent.parent / "sessions").glob("*.kpt"))


def test_there_are_samples_and_the_readme_lists_each():
    readme = (SAMPLES[0].parent / "README.md").read_text()
    assert len(SAMPLES) >= 5  # issue 7: at least five samples
    for path in SAMPLES:
        assert f"`{path.name}`" in readme


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_sample_replays_without_divergence(path, capsys):
    assert main(["replay", str(path), "--headless", "--format", "trace"]) == 0, \
        capsys.readouterr().err


def test_policy_routing_sample_ends_on_the_mark_routed_out_of_eth2():
    done = replay(load(SAMPLES[0].parent / "policy-routing-by-mark.kpt"))
    # ip-rule(8): fwmark 0x2 lookup 100 (the demo's setup) picks table 100's default route
    cur = done.debugger.current
    assert cur.kind == "route" and cur.table == "100" and cur.oif == "eth2"


def test_reroute_sample_shows_the_second_routing_decision():
    done = replay(load(SAMPLES[0].parent / "reroute-after-output-mangle.kpt"))
    reroutes = [e for e in done.debugger.walk_events if e.kind == "route"]
    assert [e.lookup for e in reroutes] == ["output", "reroute"]
    assert reroutes[-1].oif == "eth2"


def test_firewall_sample_has_breakpoints_and_an_edit():
    session = load(SAMPLES[0].parent / "firewall-debugging.kpt")
    ops = [e["op"] for e in session.journal]
    assert "edit" in ops and "break" in ops and "reverse_cont" in ops
    done = replay(session)
    assert done.ok and done.debugger.current.kind == "rule"


def test_port_forward_sample_fails_on_the_forward_policy_then_the_edit_lets_it_through():
    session = load(SAMPLES[0].parent / "port-forward.kpt")
    # iptables(8): nat PREROUTING alters packets "as soon as they come in", so filter
    # FORWARD sees the DNATed port 80: the rule for --dport 8080 misses, the policy drops
    dbg = Debugger.for_scenario(load_scenario(session.scenario_text, file="port-forward.toml"))
    assert dbg.run_to_fate().event.by == "filter:FORWARD:policy"
    done = replay(session)
    assert done.ok
    ops = [e["op"] for e in session.journal]
    assert {"break", "edit", "reverse_cont", "step_back"} <= set(ops)
    evals = [e for e in done.debugger.walk_events if e.kind == "rule" and e.rule == 3]
    assert [e.matched for e in evals] == [True]  # after the edit back to 8080
    assert done.debugger.current.kind == "fate" and done.debugger.current.action == "transmit"


def test_qos_sample_classifies_each_packet_and_masquerade_hides_the_lan_source():
    done = replay(load(SAMPLES[0].parent / "qos-classification.kpt"))
    changes = [e.new for e in done.debugger.events
               if e.kind == "field_change" and e.path == "meta.classid"]
    # tc-u32(8) dport 22 -> 1:10; iptables-extensions(8) CLASSIFY 1:20; tc-htb(8)
    # default 30; the source filter only after the edit undid MASQUERADE
    assert changes == [0x10010, 0x10020, 0x10030, 0x10040]


def test_imq_sample_goes_through_both_imq_devices():
    done = replay(load(SAMPLES[0].parent / "classic-2.4-imq.kpt"))
    stages = [e.stage for e in done.debugger.events if e.kind == "stage_enter"]
    assert stages.count("imq:POSTROUTING") == 1 and stages.count("imq:PREROUTING") == 2
    assert done.debugger.current.kind == "fate" and done.debugger.current.action == "drop"
