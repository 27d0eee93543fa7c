"""Every sample session in sessions/ replays headlessly without diverging (CI runs this).

A divergence means the engine now does something else with the same scenario and
actions: either a bug, or a deliberate change after which the samples are
recorded again (python sessions/make_samples.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kptui.cli import main
from kptui.sessions.format import load
from kptui.sessions.replay import replay

SAMPLES = sorted((Path(__file__).resolve().parent.parent / "sessions").glob("*.kpt"))


def test_there_are_samples_and_the_readme_lists_each():
    readme = (SAMPLES[0].parent / "README.md").read_text()
    assert len(SAMPLES) >= 3
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
