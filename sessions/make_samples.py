"""Record the sample sessions of this folder again (after a deliberate engine change).

    python sessions/make_samples.py

Each sample is a scripted debugging session on a scenario: the built-in demo
(kptui/scenarios/demo.toml), another bundled one (kptui/scenarios/*.toml) or one
kept here next to the samples (sessions/*.toml). It is driven through the same
Debugger API the TUI uses and saved with the TUI's screen state; the session
file carries the scenario's text, so it replays without the .toml.
`tests/test_sessions_samples.py` replays every *.kpt here headlessly and fails
when the engine diverges from them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from kptui.engine.debugger import Debugger
from kptui.engine.events import Fate, RouteDecision
from kptui.engine.scenario import load_scenario
from kptui.sessions.format import save
from kptui.sessions.replay import record

HERE = Path(__file__).resolve().parent


def bundled(name: str) -> str:
    return resources.files("kptui.scenarios").joinpath(name).read_text("utf-8")


def local(name: str) -> str:
    return (HERE / name).read_text("utf-8")


def cont_to_hit(dbg: Debugger) -> None:
    """Continue (past fates: continue stops at each packet's) to a breakpoint hit."""
    while dbg.cont().breakpoint is None:
        pass


def policy_routing(dbg: Debugger) -> dict[str, str]:
    """Packet 7: mail from the LAN is marked 0x2 in mangle PREROUTING; `ip rule fwmark 0x2
    lookup 100` sends it out of eth2. Stops on the mark (a watchpoint), then steps to the
    input routing decision that reads it."""
    dbg.add_breakpoint("watch meta.mark if tcp.dport == 25")
    cont_to_hit(dbg)
    while not isinstance(dbg.current, RouteDecision):
        dbg.step()
    return {"tab": "route", "stage": "routing:input", "focus": "diagram"}


def reroute(dbg: Debugger) -> dict[str, str]:
    """Packet 8: the router's NTP query is routed out of eth1, marked in mangle OUTPUT,
    and routed again (ip_route_me_harder) out of eth2, keeping its source address."""
    dbg.add_breakpoint("stage mangle:OUTPUT if udp.dport == 123")
    cont_to_hit(dbg)
    dbg.step_over()  # through mangle OUTPUT: the MARK rule
    while not isinstance(dbg.current, RouteDecision):
        dbg.step()  # the reroute
    dbg.step()
    return {"tab": "route", "stage": "mangle:OUTPUT", "focus": "diagram"}


def firewall(dbg: Debugger) -> dict[str, str]:
    """Packet 4 (an internet host to 192.0.2.20:80) ends on FORWARD's DROP policy. Break
    where filter FORWARD starts for it, edit it into what the firewall allows
    (192.0.2.10:443, rule 3), see it accepted; step back over the edit; then a rule
    breakpoint on the LOG rule (rule 5) shows what the kernel logs for the others."""
    dbg.add_breakpoint("chain filter:FORWARD if ip.dst == 192.0.2.20")
    cont_to_hit(dbg)
    dbg.edit("ip.dst", "192.0.2.10")
    dbg.edit("tcp.dport", "443")
    stop = dbg.run_to_fate()
    assert isinstance(stop.event, Fate) and stop.event.action == "transmit", stop
    dbg.step_back()
    dbg.reverse_cont()
    dbg.disable(1)
    dbg.add_breakpoint("rule filter:FORWARD:5")
    cont_to_hit(dbg)
    assert "LOG" in dbg.current.describe(), dbg.current.describe()
    return {"tab": "rules", "stage": "filter:FORWARD", "pinned": "filter:FORWARD",
            "focus": "rule-list"}


def port_forward(dbg: Debugger) -> dict[str, str]:
    """Packet 0 (a client to 203.0.113.2:8080) is DNATed to 192.168.1.10:80 and dropped by
    FORWARD's policy: rule 3 accepts `--dport 8080`, the port before DNAT. A watchpoint
    shows nat PREROUTING rewriting the port, a rule breakpoint shows rule 3 missing it;
    back before rule 3, an edit giving the packet its public port again makes rule 3
    match: FORWARD must name the server's port (80)."""
    dbg.add_breakpoint("watch tcp.dport")
    cont_to_hit(dbg)  # nat PREROUTING: DNAT 8080 -> 80
    dbg.add_breakpoint("rule filter:FORWARD:3")
    cont_to_hit(dbg)  # rule 3: no match (destination port 80 not in 8080:8080)
    stop = dbg.run_to_fate()
    assert isinstance(stop.event, Fate) and stop.event.action == "drop", stop
    dbg.reverse_cont()  # back to rule 3
    dbg.step_back()  # rule 2: before rule 3 looks at the port
    dbg.edit("tcp.dport", "8080")  # the watchpoint stops on the edit
    cont_to_hit(dbg)  # rule 3: MATCH
    assert "MATCH" in dbg.current.describe().upper(), dbg.current.describe()
    stop = dbg.run_to_fate()
    assert isinstance(stop.event, Fate) and stop.event.action == "transmit", stop
    return {"tab": "rules", "stage": "filter:FORWARD", "pinned": "filter:FORWARD",
            "focus": "rule-list"}


def qos(dbg: Debugger) -> dict[str, str]:
    """htb on the uplink: a watchpoint on meta.classid stops where tc classifies each
    packet (ssh by a u32 filter: 1:10; SIP by iptables CLASSIFY: 1:20; https: the
    default 1:30); the capped LAN host's packet (3) also lands in 1:30: a watchpoint on
    ip.src shows MASQUERADE replacing its source before tc sees it, and an edit undoing
    that right there puts it in 1:40, where the filter meant it."""
    dbg.add_breakpoint("watch meta.classid")
    for _ in range(3):  # packets 0, 1, 2: each one's class, then on to its fate
        cont_to_hit(dbg)
        dbg.run_to_fate()
    dbg.add_breakpoint("watch ip.src if tcp.sport == 41443")
    cont_to_hit(dbg)  # packet 3: MASQUERADE in nat POSTROUTING, before tc egress
    dbg.edit("ip.src", "192.168.1.20")  # undo it (the watchpoint stops on the edit)
    cont_to_hit(dbg)  # prio 2 u32 (src 192.168.1.20) matches now: 1:40
    assert dbg.packet.meta.classid == 0x10040, hex(dbg.packet.meta.classid)
    return {"tab": "qos", "stage": "tc:egress", "focus": "diagram"}


def imq_tour(dbg: Debugger) -> dict[str, str]:
    """classic-2.4 with IMQ: the upload (packet 0) reaches imq1 at the very end of
    POSTROUTING, already masqueraded; the server's answer (packet 1) goes through imq0
    right after mangle PREROUTING, before nat PREROUTING de-masquerades it (a watchpoint
    on ip.dst), classified by its source port 80 into imq0's class 1:10; a stranger's
    SYN (packet 2) goes through imq0 too (the default class 1:20), before INPUT's
    policy drops it."""
    dbg.add_breakpoint("stage imq:POSTROUTING")
    cont_to_hit(dbg)  # packet 0 enters IMQ (POSTROUTING)
    dbg.step()  # through imq1: its source is 203.0.113.2 already
    dbg.add_breakpoint("stage imq:PREROUTING")
    dbg.add_breakpoint("watch ip.dst")
    cont_to_hit(dbg)  # packet 1 enters IMQ (PREROUTING)
    dbg.step()  # through imq0: its destination is still 203.0.113.2
    cont_to_hit(dbg)  # nat PREROUTING: de-masqueraded to 192.168.1.10, after imq0
    cont_to_hit(dbg)  # packet 2 enters IMQ (PREROUTING)
    dbg.step()  # through imq0, like every packet from eth1
    stop = dbg.run_to_fate()
    assert isinstance(stop.event, Fate) and stop.event.action == "drop", stop
    return {"tab": "rules", "stage": "imq:PREROUTING", "focus": "diagram"}


# file name -> (scenario file as the session names it, its text, the script)
SAMPLES: dict[str, tuple[str, str, Callable[[Debugger], dict[str, str]]]] = {
    "policy-routing-by-mark.kpt": ("demo.toml", bundled("demo.toml"), policy_routing),
    "reroute-after-output-mangle.kpt": ("demo.toml", bundled("demo.toml"), reroute),
    "firewall-debugging.kpt": ("demo.toml", bundled("demo.toml"), firewall),
    "port-forward.kpt": ("port-forward.toml", local("port-forward.toml"), port_forward),
    "qos-classification.kpt": ("qos-classification.toml", local("qos-classification.toml"),
                               qos),
    "classic-2.4-imq.kpt": ("classic-2.4.toml", bundled("classic-2.4.toml"), imq_tour),
}


def main() -> int:
    for name, (file, text, script) in SAMPLES.items():
        dbg = Debugger.for_scenario(load_scenario(text, file=file))
        view = script(dbg)
        save(record(dbg, text, file, view={"mode": "debug", **view}), HERE / name)
        print(f"{name}: {len(dbg.events)} events, {len(dbg.journal)} actions, "
              f"at: {dbg.current.describe() if dbg.current else 'start'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
