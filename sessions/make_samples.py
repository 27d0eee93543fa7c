"""Record the sample sessions of this folder again (after a deliberate engine change).

    python sessions/make_samples.py

Each sample is a scripted debugging session on the built-in demo scenario
(kptui/scenarios/demo.toml), driven through the same Debugger API the TUI uses
and saved with the TUI's screen state. `tests/test_sessions_samples.py` replays
every *.kpt here headlessly and fails when the engine diverges from them.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from kptui.engine.debugger import Debugger
from kptui.engine.events import Fate, RouteDecision
from kptui.engine.scenario import load_scenario
from kptui.sessions.format import save
from kptui.sessions.replay import record

HERE = Path(__file__).resolve().parent
DEMO = resources.files("kptui.scenarios").joinpath("demo.toml").read_text("utf-8")


def demo() -> Debugger:
    return Debugger.for_scenario(load_scenario(DEMO, file="demo.toml"))


def cont_to_hit(dbg: Debugger) -> None:
    """Continue (past fates: continue stops at each packet's) to a breakpoint hit."""
    while dbg.cont().breakpoint is None:
        pass


def policy_routing() -> tuple[Debugger, dict[str, str]]:
    """Packet 7: mail from the LAN is marked 0x2 in mangle PREROUTING; `ip rule fwmark 0x2
    lookup 100` sends it out of eth2. Stops on the mark (a watchpoint), then steps to the
    input routing decision that reads it."""
    dbg = demo()
    dbg.add_breakpoint("watch meta.mark if tcp.dport == 25")
    cont_to_hit(dbg)
    while not isinstance(dbg.current, RouteDecision):
        dbg.step()
    return dbg, {"tab": "route", "stage": "routing:input", "focus": "diagram"}


def reroute() -> tuple[Debugger, dict[str, str]]:
    """Packet 8: the router's NTP query is routed out of eth1, marked in mangle OUTPUT,
    and routed again (ip_route_me_harder) out of eth2, keeping its source address."""
    dbg = demo()
    dbg.add_breakpoint("stage mangle:OUTPUT if udp.dport == 123")
    cont_to_hit(dbg)
    dbg.step_over()  # through mangle OUTPUT: the MARK rule
    while not isinstance(dbg.current, RouteDecision):
        dbg.step()  # the reroute
    dbg.step()
    return dbg, {"tab": "route", "stage": "mangle:OUTPUT", "focus": "diagram"}


def firewall() -> tuple[Debugger, dict[str, str]]:
    """Packet 4 (an internet host to 192.0.2.20:80) ends on FORWARD's DROP policy. Break
    where filter FORWARD starts for it, edit it into what the firewall allows
    (192.0.2.10:443, rule 2), see it accepted; step back over the edit; then a rule
    breakpoint on the LOG rule shows what the kernel logs for the others."""
    dbg = demo()
    dbg.add_breakpoint("chain filter:FORWARD if ip.dst == 192.0.2.20")
    cont_to_hit(dbg)
    dbg.edit("ip.dst", "192.0.2.10")
    dbg.edit("tcp.dport", "443")
    stop = dbg.run_to_fate()
    assert isinstance(stop.event, Fate) and stop.event.action == "transmit", stop
    dbg.step_back()
    dbg.reverse_cont()
    dbg.disable(1)
    dbg.add_breakpoint("rule filter:FORWARD:4")
    cont_to_hit(dbg)
    return dbg, {"tab": "rules", "stage": "filter:FORWARD", "pinned": "filter:FORWARD",
                 "focus": "rule-list"}


SAMPLES = {
    "policy-routing-by-mark.kpt": policy_routing,
    "reroute-after-output-mangle.kpt": reroute,
    "firewall-debugging.kpt": firewall,
}


def main() -> int:
    for name, script in SAMPLES.items():
        dbg, view = script()
        save(record(dbg, DEMO, "demo.toml", view={"mode": "debug", **view}), HERE / name)
        print(f"{name}: {len(dbg.events)} events, {len(dbg.journal)} actions, "
              f"at: {dbg.current.describe() if dbg.current else 'start'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
