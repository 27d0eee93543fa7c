"""The debugger (kptui/engine/debugger.py): stepping, breakpoints, edits, journal, reverse.

Most tests drive a fake walker whose event stream has the shape of a real
forwarded packet (DESIGN.md's port-forward scenario): mangle PREROUTING sets a
mark, nat PREROUTING DNATs 8080 to 80, input routing, forward (TTL - 1),
filter FORWARD jumps to a user chain `web` and back, then ACCEPTs TCP port 80,
nat POSTROUTING, fate. The fake reads and writes the live packet, so an edit
at a pause changes what follows, as the real walk does. The expected stops
follow the stepping rules in DESIGN.md ("Stepping granularity").
"""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from kptui.engine.debugger import Debugger
from kptui.engine.errors import FieldError, KptuiError, ParseError
from kptui.engine.events import (
    ChainEnter,
    ChainReturn,
    Fate,
    FieldChange,
    LogLine,
    PolicyApplied,
    RouteDecision,
    RuleEval,
    StageEnter,
    StageLeave,
    TargetApplied,
    UserEdit,
    WalkStart,
)


class FakePacket:
    """Stands in for packet.Packet: get/set/set_text/copy, FieldError with a reason."""

    def __init__(self, proto="tcp", dport=8080, ttl=64):
        self.proto = proto
        self.fields = {"ip.src": IPv4Address("198.51.100.7"), "ip.dst": IPv4Address("203.0.113.2"),
                       "ip.ttl": ttl, f"{proto}.sport": 40000, f"{proto}.dport": dport,
                       "meta.mark": 0, "meta.iif": "eth1", "meta.oif": ""}

    def copy(self):
        new = FakePacket.__new__(FakePacket)
        new.proto, new.fields = self.proto, dict(self.fields)
        return new

    def get(self, path):
        if path not in self.fields:
            raise FieldError(f"{path}: this is a {self.proto} packet")
        return self.fields[path]

    def set(self, path, value):
        old = self.get(path)
        self.fields[path] = value
        return old, value

    def set_text(self, path, text):
        self.get(path)  # FieldError when the packet has no such field
        if path in ("ip.src", "ip.dst"):
            value = IPv4Address(text)
        elif path in ("meta.iif", "meta.oif"):
            value = text
        else:
            try:
                value = int(text, 0)
            except ValueError:
                raise FieldError(f"{path}: {text!r} is not a number") from None
            if path == "ip.ttl" and not 0 <= value <= 255:
                raise FieldError(f"ip.ttl: {value} is out of range (0-255)")
        return self.set(path, value)


class FakeBox:
    """State that carries over between packets: how many packets were logged."""

    def __init__(self):
        self.logged = 0


def fake_walk(box, pkt, *, index=0, profile="modern"):
    """A forwarded packet's events, computed from the live packet as they are yielded."""
    p = pkt.proto
    yield WalkStart(stage="", hook="", packet=f"{p} packet {index}", origin="eth1", index=index)
    # mangle PREROUTING: mark everything
    s, h = "mangle:PREROUTING", "PREROUTING"
    yield StageEnter(stage=s, hook=h, title="mangle PREROUTING")
    yield ChainEnter(stage=s, hook=h, depth=1, table="mangle", chain="PREROUTING", via="hook")
    yield RuleEval(stage=s, hook=h, depth=1, table="mangle", chain="PREROUTING", rule=1,
                   matched=True, text="-A PREROUTING -j MARK --set-xmark 0x1/0xffffffff")
    yield TargetApplied(stage=s, hook=h, depth=1, table="mangle", chain="PREROUTING", rule=1,
                        target="MARK", verdict="CONTINUE")
    old, new = pkt.set("meta.mark", 1)
    if old != new:
        yield FieldChange(stage=s, hook=h, depth=1, path="meta.mark", old=old, new=new,
                          by="mangle:PREROUTING:rule:1")
    yield PolicyApplied(stage=s, hook=h, depth=1, table="mangle", chain="PREROUTING",
                        verdict="ACCEPT")
    yield StageLeave(stage=s, hook=h, title="mangle PREROUTING", verdict="ACCEPT")
    # nat PREROUTING: DNAT tcp 8080 -> 192.168.1.10:80
    s = "nat:PREROUTING"
    yield StageEnter(stage=s, hook=h, title="nat PREROUTING")
    yield ChainEnter(stage=s, hook=h, depth=1, table="nat", chain="PREROUTING", via="hook")
    dnat = p == "tcp" and pkt.get("tcp.dport") == 8080
    yield RuleEval(stage=s, hook=h, depth=1, table="nat", chain="PREROUTING", rule=1,
                   matched=dnat, text="-A PREROUTING -p tcp --dport 8080 -j DNAT",
                   reason="" if dnat else "dport differs")
    if dnat:
        yield TargetApplied(stage=s, hook=h, depth=1, table="nat", chain="PREROUTING", rule=1,
                            target="DNAT", verdict="ACCEPT")
        for path, value in (("ip.dst", IPv4Address("192.168.1.10")), ("tcp.dport", 80)):
            old, new = pkt.set(path, value)
            yield FieldChange(stage=s, hook=h, depth=1, path=path, old=old, new=new,
                              by="nat:PREROUTING:rule:1")
    else:
        yield PolicyApplied(stage=s, hook=h, depth=1, table="nat", chain="PREROUTING",
                            verdict="ACCEPT")
    yield StageLeave(stage=s, hook=h, title="nat PREROUTING", verdict="ACCEPT")
    # input routing and forwarding
    s = "routing:input"
    yield StageEnter(stage=s, hook="", title="INPUT ROUTING + RPDB")
    yield RouteDecision(stage=s, hook="", lookup="input", result="forward", oif="eth0")
    yield StageLeave(stage=s, hook="", title="INPUT ROUTING + RPDB", verdict="")
    s = "forward"
    yield StageEnter(stage=s, hook="", title="FORWARD (ip_forward)")
    old, new = pkt.set("ip.ttl", pkt.get("ip.ttl") - 1)
    yield FieldChange(stage=s, hook="", path="ip.ttl", old=old, new=new, by="ip_forward")
    yield StageLeave(stage=s, hook="", title="FORWARD (ip_forward)", verdict="")
    # filter FORWARD: jump to web (LOG the first packet only), then accept tcp port 80
    s, h = "filter:FORWARD", "FORWARD"
    yield StageEnter(stage=s, hook=h, title="filter FORWARD")
    yield ChainEnter(stage=s, hook=h, depth=1, table="filter", chain="FORWARD", via="hook")
    yield RuleEval(stage=s, hook=h, depth=1, table="filter", chain="FORWARD", rule=1,
                   matched=True, text="-A FORWARD -j web")
    yield TargetApplied(stage=s, hook=h, depth=1, table="filter", chain="FORWARD", rule=1,
                        target="web", verdict="JUMP")
    yield ChainEnter(stage=s, hook=h, depth=2, table="filter", chain="web", via="jump")
    yield RuleEval(stage=s, hook=h, depth=2, table="filter", chain="web", rule=1,
                   matched=False, text="-A web -p udp -j DROP", reason="protocol differs")
    first = box.logged == 0
    yield RuleEval(stage=s, hook=h, depth=2, table="filter", chain="web", rule=2,
                   matched=first, text="-A web -m limit --limit-burst 1 -j LOG",
                   reason="" if first else "limit reached")
    if first:
        box.logged += 1
        yield TargetApplied(stage=s, hook=h, depth=2, table="filter", chain="web", rule=2,
                            target="LOG", verdict="CONTINUE")
        yield LogLine(stage=s, hook=h, depth=2, prefix="", level="warning", line="IN=eth1 ...")
    yield ChainReturn(stage=s, hook=h, depth=2, table="filter", chain="web", rule=3,
                      explicit=False)
    accept = p == "tcp" and pkt.get("tcp.dport") == 80
    yield RuleEval(stage=s, hook=h, depth=1, table="filter", chain="FORWARD", rule=2,
                   matched=accept, text="-A FORWARD -p tcp --dport 80 -j ACCEPT",
                   reason="" if accept else "dport differs")
    if not accept:
        yield PolicyApplied(stage=s, hook=h, depth=1, table="filter", chain="FORWARD",
                            verdict="DROP")
        yield StageLeave(stage=s, hook=h, title="filter FORWARD", verdict="DROP")
        yield Fate(stage=s, hook=h, action="drop", by="filter:FORWARD:policy")
        return
    yield TargetApplied(stage=s, hook=h, depth=1, table="filter", chain="FORWARD", rule=2,
                        target="ACCEPT", verdict="ACCEPT")
    yield StageLeave(stage=s, hook=h, title="filter FORWARD", verdict="ACCEPT")
    s, h = "nat:POSTROUTING", "POSTROUTING"
    yield StageEnter(stage=s, hook=h, title="nat POSTROUTING")
    yield ChainEnter(stage=s, hook=h, depth=1, table="nat", chain="POSTROUTING", via="hook")
    yield PolicyApplied(stage=s, hook=h, depth=1, table="nat", chain="POSTROUTING",
                        verdict="ACCEPT")
    yield StageLeave(stage=s, hook=h, title="nat POSTROUTING", verdict="ACCEPT")
    yield Fate(stage="transmit", hook="", action="transmit", iface="eth0",
               by="filter:FORWARD:rule:2")


PACKETS = [FakePacket(), FakePacket(), FakePacket("udp", dport=53)]


def make(packets=PACKETS, **kw) -> Debugger:
    return Debugger(FakeBox, packets, walker=fake_walk, **kw)


def whole_walk(index=0, box=None, pkt=None):
    """What the fake yields without a debugger, for comparison."""
    return list(fake_walk(box or FakeBox(), pkt or PACKETS[index].copy(), index=index))


def step_until(dbg, pred):
    while not pred(dbg.current):
        assert dbg.step().reason != "end"
    return dbg.current


def at_rule(table, chain, rule):
    return lambda ev: isinstance(ev, RuleEval) and (ev.table, ev.chain, ev.rule) == (
        table, chain, rule)


def at_enter(stage):
    return lambda ev: isinstance(ev, StageEnter) and ev.stage == stage


def describe(stop):
    ev = stop.event
    return (stop.reason, type(ev).__name__, ev.stage, getattr(ev, "chain", None),
            getattr(ev, "rule", None))


# -- stepping ---------------------------------------------------------------------------


def test_idle_before_the_first_step_and_finished_after_the_last_fate():
    dbg = make(packets=PACKETS[:1])
    assert (dbg.state, dbg.current, dbg.packet, dbg.index) == ("idle", None, None, -1)
    stop = dbg.step()
    assert isinstance(stop.event, WalkStart) and stop.reason == "step"
    assert (dbg.state, dbg.index) == ("paused", 0)
    stop = dbg.cont()
    assert stop.reason == "fate" and stop.event.action == "transmit"
    assert dbg.state == "finished"
    assert dbg.step() == type(stop)("end", stop.event)
    assert dbg.cont().reason == "end"


def test_single_steps_see_every_event_of_every_packet_in_order():
    dbg = make()
    reasons = []
    while (stop := dbg.step()).reason != "end":
        reasons.append(stop.reason)
    box = FakeBox()  # the box carries over: only packet 0 is logged
    expected = [ev for i in range(3) for ev in whole_walk(i, box)]
    assert dbg.events == expected
    assert reasons.count("fate") == 3 and set(reasons) == {"step", "fate"}
    assert dbg.packet.get("udp.dport") == 53  # the live packet is the last one


def test_step_into_a_jump_enters_the_user_chain():
    dbg = make()
    step_until(dbg, lambda ev: isinstance(ev, TargetApplied) and ev.verdict == "JUMP")
    stop = dbg.step()
    assert isinstance(stop.event, ChainEnter) and stop.event.chain == "web"
    assert stop.event.depth == 2


def test_step_over_a_jumping_rule_evaluation_finishes_the_chain():
    # at depth 1 in filter FORWARD, step over runs to the first event at depth 0
    dbg = make()
    step_until(dbg, at_rule("filter", "FORWARD", 1))
    stop = dbg.step_over()
    assert isinstance(stop.event, StageLeave) and stop.event.stage == "filter:FORWARD"


def test_step_over_inside_a_user_chain_returns_to_the_caller():
    dbg = make()
    step_until(dbg, at_rule("filter", "web", 1))
    stop = dbg.step_over()
    assert describe(stop) == ("step", "RuleEval", "filter:FORWARD", "FORWARD", 2)
    assert stop.event.depth == 1


def test_step_over_at_chain_enter_skips_the_whole_chain():
    dbg = make()
    step_until(dbg, lambda ev: isinstance(ev, ChainEnter) and ev.chain == "web")
    assert describe(dbg.step_over()) == ("step", "RuleEval", "filter:FORWARD", "FORWARD", 2)


def test_step_over_at_depth_zero_finishes_the_stage():
    dbg = make()
    step_until(dbg, at_enter("mangle:PREROUTING"))
    stop = dbg.step_over()
    assert isinstance(stop.event, StageLeave) and stop.event.stage == "mangle:PREROUTING"
    stop = dbg.step_over()  # the stage is over: on to the next one
    assert isinstance(stop.event, StageEnter) and stop.event.stage == "nat:PREROUTING"


def test_step_out_finishes_the_hook():
    # mangle and nat PREROUTING share the PREROUTING hook: step out leaves both
    dbg = make()
    step_until(dbg, at_rule("mangle", "PREROUTING", 1))
    stop = dbg.step_out()
    assert isinstance(stop.event, StageEnter) and stop.event.stage == "routing:input"


def test_step_out_of_a_user_chain_leaves_the_forward_hook():
    dbg = make()
    step_until(dbg, at_rule("filter", "web", 2))
    stop = dbg.step_out()
    assert isinstance(stop.event, StageEnter) and stop.event.stage == "nat:POSTROUTING"


def test_step_out_of_a_stage_without_a_hook_leaves_that_stage():
    dbg = make()
    step_until(dbg, at_enter("routing:input"))
    stop = dbg.step_out()
    assert isinstance(stop.event, StageEnter) and stop.event.stage == "forward"


def test_stepping_runs_stop_at_the_fate():
    dbg = make()
    step_until(dbg, at_enter("nat:POSTROUTING"))
    stop = dbg.step_out()  # the POSTROUTING hook is the last: the fate comes first
    assert stop.reason == "fate" and isinstance(stop.event, Fate)


def test_stepping_from_a_fate_starts_the_next_packet():
    dbg = make()
    dbg.run_to_fate()
    for op in (Debugger.step_over, Debugger.step_out):
        stop = op(dbg)
        assert isinstance(stop.event, WalkStart), op.__name__
        dbg.run_to_fate()
    assert dbg.state == "finished"
    assert dbg.next_packet().reason == "end"  # three packets, all walked


def test_cont_runs_to_the_fate_then_on_through_the_next_packet():
    dbg = make()
    assert dbg.cont().event == whole_walk(0)[-1]
    assert dbg.index == 0
    stop = dbg.cont()
    assert stop.reason == "fate" and dbg.index == 1


def test_run_to_fate_at_a_fate_stays_there():
    dbg = make()
    first = dbg.run_to_fate()
    assert dbg.run_to_fate() == first
    assert dbg.index == 0


def test_next_packet_mid_walk_shows_the_fate_first():
    dbg = make()
    dbg.step()
    dbg.step()
    stop = dbg.next_packet()
    assert stop.reason == "fate" and dbg.index == 0
    stop = dbg.next_packet()
    assert isinstance(stop.event, WalkStart) and stop.event.index == 1
    assert dbg.walk_events == [stop.event]


def test_drop_fate_of_the_udp_packet():
    dbg = make()
    for _ in range(3):
        stop = dbg.next_packet()
        if stop.reason != "fate":
            stop = dbg.next_packet()
    assert (stop.event.action, stop.event.by) == ("drop", "filter:FORWARD:policy")


# -- breakpoints ---------------------------------------------------------------------------


def test_stage_breakpoint_stops_at_the_stage_enter():
    dbg = make()
    bp = dbg.add_breakpoint("stage nat:PREROUTING")
    stop = dbg.cont()
    assert stop.reason == "breakpoint" and stop.breakpoint is bp
    assert isinstance(stop.event, StageEnter) and stop.event.stage == "nat:PREROUTING"
    assert bp.hits == 1
    assert dbg.cont().reason == "fate"  # continuing does not hit the same spot again
    assert dbg.cont().breakpoint is bp and bp.hits == 2  # packet 1


def test_hook_breakpoint_stops_once_at_the_first_stage_of_the_hook():
    dbg = make()
    bp = dbg.add_breakpoint("hook prerouting")
    assert bp.where == "PREROUTING"
    stop = dbg.cont()
    assert stop.event.stage == "mangle:PREROUTING"
    assert dbg.cont().reason == "fate"  # not again at nat PREROUTING, same hook


def test_chain_breakpoint_hits_a_jump_target():
    dbg = make()
    dbg.add_breakpoint("chain filter:web")
    stop = dbg.cont()
    assert isinstance(stop.event, ChainEnter) and stop.event.via == "jump"


def test_rule_breakpoint_stops_before_the_target():
    dbg = make()
    dbg.add_breakpoint("rule filter:FORWARD:2")
    stop = dbg.cont()
    assert describe(stop) == ("breakpoint", "RuleEval", "filter:FORWARD", "FORWARD", 2)
    assert isinstance(dbg.step().event, TargetApplied)


def test_rule_breakpoint_accepts_the_trace_label():
    dbg = make()
    bp = dbg.add_breakpoint("rule filter:FORWARD:rule:2")
    assert bp.where == "filter:FORWARD:2"


def test_rule_breakpoint_with_a_condition_hits_only_when_it_holds():
    dbg = make()
    bp = dbg.add_breakpoint("rule nat:PREROUTING:1 if tcp.dport == 8080")
    assert dbg.cont().breakpoint is bp
    dbg.cont()
    assert dbg.cont().breakpoint is bp  # packet 1 is also tcp/8080
    dbg.cont()
    assert dbg.cont().reason == "fate"  # packet 2 is UDP: tcp.dport is absent, so false
    assert bp.hits == 2


def test_bare_condition_hits_when_it_becomes_true():
    # like gdb's `watch COND`: once at the DNAT (dport becomes 80), not at every later event
    dbg = make()
    bp = dbg.add_breakpoint("if tcp.dport == 80")
    stop = dbg.cont()
    assert isinstance(stop.event, FieldChange) and stop.event.path == "tcp.dport"
    assert stop.breakpoint is bp
    assert dbg.cont().reason == "fate"
    # re-armed for the next packet
    stop = dbg.cont()
    assert stop.breakpoint is bp and dbg.index == 1


def test_bare_condition_true_from_the_start_hits_at_walk_start():
    dbg = make()
    dbg.add_breakpoint("if ip.ttl == 64")
    stop = dbg.step()
    assert stop.reason == "breakpoint" and isinstance(stop.event, WalkStart)


def test_bare_condition_added_while_true_waits_for_the_next_rise():
    dbg = make()
    step_until(dbg, at_enter("nat:PREROUTING"))
    dbg.add_breakpoint("if meta.mark == 1")  # already true: mark was set in mangle
    assert dbg.cont().reason == "fate"


def test_watchpoint_stops_at_the_change_of_that_field():
    dbg = make()
    bp = dbg.add_breakpoint("watch ip.ttl")
    stop = dbg.cont()
    assert stop.reason == "watch" and stop.breakpoint is bp
    assert (stop.event.old, stop.event.new, stop.event.by) == (64, 63, "ip_forward")
    assert dbg.packet.get("ip.ttl") == 63  # the change has happened when we stop


def test_watchpoint_sees_user_edits():
    dbg = make()
    bp = dbg.add_breakpoint("watch meta.mark")
    dbg.step()
    stop = dbg.edit("meta.mark", "0x5")
    assert stop.reason == "watch" and isinstance(stop.event, UserEdit) and bp.hits == 1


def test_disable_enable_remove_and_stable_ids():
    dbg = make()
    a = dbg.add_breakpoint("stage nat:PREROUTING")
    b = dbg.add_breakpoint("watch meta.mark")
    assert (a.id, b.id) == (1, 2)
    dbg.disable(b.id)
    assert dbg.cont().breakpoint is a
    dbg.remove(a.id)
    assert dbg.cont().reason == "fate"
    dbg.enable(b.id)
    assert dbg.cont().breakpoint is b
    c = dbg.add_breakpoint("chain filter:web")
    assert c.id == 3  # ids are never reused
    assert list(dbg.breakpoints) == [2, 3]
    with pytest.raises(KptuiError, match="no breakpoint 1"):
        dbg.remove(1)


def test_two_breakpoints_on_one_event_both_count_a_hit():
    dbg = make()
    a = dbg.add_breakpoint("rule filter:FORWARD:2")
    b = dbg.add_breakpoint("rule filter:FORWARD:2 if ip.ttl == 63")
    assert dbg.cont().breakpoint is a
    assert (a.hits, b.hits) == (1, 1)


@pytest.mark.parametrize(
    ("spec", "column", "words"),
    [
        ("", 1, "empty breakpoint"),
        ("frobnicate x", 1, "unknown breakpoint kind 'frobnicate'"),
        ("stage nat:PREROUTNG", 7, "unknown stage nat:PREROUTNG; did you mean nat:PREROUTING?"),
        ("hook FORWRD", 6, "did you mean FORWARD?"),
        ("chain filtr:FORWARD", 7, "unknown table filtr; did you mean filter?"),
        ("chain FORWARD", 7, "a chain is written table:chain"),
        ("rule filter:FORWARD:x", 6, "rule number 'x' must be 1 or more"),
        ("rule filter:FORWARD:0", 6, "must be 1 or more"),
        ("rule filter:FORWARD", 6, "a rule is written table:chain:N"),
        ("rule filter:FORWARD:1 filter:INPUT:2", 23, "`rule` takes one argument"),
        ("watch tcp.dprot", 7, "unknown field tcp.dprot; did you mean tcp.dport?"),
        ("watch", 6, "`watch` takes one argument"),
        ("rule filter:FORWARD:3 if tcp.dport = 80", 36, "use == to compare"),
        ("rule filter:FORWARD:3 if", 25, "empty condition"),
    ],
)
def test_bad_breakpoint_specs_say_where_and_why(spec, column, words):
    dbg = make()
    with pytest.raises(ParseError) as info:
        dbg.add_breakpoint(spec)
    assert info.value.file == "<breakpoint>"
    assert info.value.column == column
    assert words in info.value.message
    assert dbg.breakpoints == {} and dbg.journal == []


# -- edits -----------------------------------------------------------------------------


def test_edit_changes_the_live_packet_and_what_happens_next():
    # change dport before nat PREROUTING: no DNAT, and filter FORWARD drops it
    dbg = make()
    step_until(dbg, at_enter("nat:PREROUTING"))
    before = dbg.current
    stop = dbg.edit("tcp.dport", "443")
    ev = stop.event
    assert isinstance(ev, UserEdit) and (ev.path, ev.old, ev.new) == ("tcp.dport", 8080, 443)
    assert (ev.stage, ev.hook, ev.depth) == (before.stage, before.hook, before.depth)
    assert dbg.packet.get("tcp.dport") == 443
    fate = dbg.run_to_fate().event
    assert (fate.action, fate.by) == ("drop", "filter:FORWARD:policy")
    assert dbg.packet.get("ip.dst") == IPv4Address("203.0.113.2")  # never DNATed


ROUTER = """
iptables = \"\"\"
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -p tcp -j ACCEPT
COMMIT
\"\"\"
[sysctl]
"net.ipv4.ip_forward" = 1
[[interfaces]]
name = "eth0"
addresses = ["192.0.2.1/24"]
[[interfaces]]
name = "eth1"
addresses = ["198.51.100.1/24"]
[[interfaces]]
name = "eth2"
addresses = ["203.0.113.1/24"]
[[packets]]
iif = "eth0"
proto = "tcp"
src = "192.0.2.10"
dst = "198.51.100.7"
sport = 40000
dport = 80
"""


def test_a_routing_key_edited_after_routing_says_the_route_stays():
    # The kernel routes a forwarded packet once, after PREROUTING (ip_rcv_finish); FORWARD
    # and POSTROUTING never look it up again (only mangle/nat OUTPUT reroute,
    # ip_route_me_harder). An edit of ip.dst there changes the header, not the way out.
    from kptui.engine.scenario import load_scenario

    dbg = Debugger.for_scenario(load_scenario(ROUTER, file="router.toml"))
    step_until(dbg, at_enter("filter:FORWARD"))
    assert dbg.packet.meta.oif == "eth1"
    ev = dbg.edit("ip.dst", "203.0.113.9").event
    assert "does not route a forwarded packet again; it still leaves via eth1" in ev.caveat
    assert ev.caveat in ev.describe()
    assert dbg.edit("tcp.dport", "81").event.caveat == ""  # not a routing key
    fate = dbg.run_to_fate().event
    assert (fate.action, fate.iface) == ("transmit", "eth1")

    before = Debugger.for_scenario(load_scenario(ROUTER, file="router.toml"))
    before.step()
    assert before.edit("ip.dst", "203.0.113.9").event.caveat == ""  # routing still to come
    assert before.run_to_fate().event.iface == "eth2"


def test_edit_at_depth_keeps_the_chain_depth():
    dbg = make()
    step_until(dbg, at_rule("filter", "web", 1))
    ev = dbg.edit("meta.mark", "7").event
    assert (ev.stage, ev.hook, ev.depth) == ("filter:FORWARD", "FORWARD", 2)
    assert describe(dbg.step_over())[1:] == ("RuleEval", "filter:FORWARD", "FORWARD", 2)


def test_refused_edit_reraises_the_packets_field_error_unchanged():
    dbg = make()
    dbg.step()
    raised = {}

    def set_text(path, text):
        raised["err"] = FieldError("ip.ttl: 300 is out of range (0-255)")
        raise raised["err"]

    dbg.packet.set_text = set_text
    with pytest.raises(FieldError) as info:
        dbg.edit("ip.ttl", "300")
    assert info.value is raised["err"]
    assert not any(isinstance(ev, UserEdit) for ev in dbg.events)
    assert [e["op"] for e in dbg.journal] == ["step", "packet"]  # a refused edit is no action


def test_edit_of_a_field_the_packet_does_not_have_is_refused():
    dbg = make()
    dbg.step()
    with pytest.raises(FieldError, match="this is a tcp packet"):
        dbg.edit("udp.dport", "53")


def test_edit_is_refused_without_a_packet_in_flight():
    dbg = make()
    with pytest.raises(KptuiError, match="no packet is in flight"):
        dbg.edit("ip.ttl", "5")
    dbg.run_to_fate()
    with pytest.raises(KptuiError, match="reached its fate"):
        dbg.edit("ip.ttl", "5")


def test_an_edit_can_make_a_bare_condition_true():
    dbg = make()
    bp = dbg.add_breakpoint("if meta.mark == 9")
    dbg.step()
    stop = dbg.edit("meta.mark", "9")
    assert stop.breakpoint is bp and isinstance(stop.event, UserEdit)
    assert dbg.cont().reason == "fate"  # stays true: no second hit


# -- journal and replay --------------------------------------------------------------------


def session(dbg):
    """A session with every kind of action."""
    dbg.add_breakpoint("rule filter:FORWARD:2")
    b = dbg.add_breakpoint("watch ip.ttl")
    dbg.step()
    dbg.step_over()
    dbg.edit("meta.mark", "0x10")
    dbg.cont()
    dbg.step_out()
    dbg.disable(b.id)
    dbg.cont()
    dbg.step_back()
    dbg.step()
    dbg.next_packet()
    dbg.step()
    dbg.edit("tcp.dport", "22")
    dbg.step_back()  # undoes that edit
    dbg.edit("tcp.dport", "8080")
    dbg.cont()
    dbg.reverse_cont()
    dbg.enable(b.id)
    dbg.remove(1)
    dbg.run_to_fate()
    dbg.cont()


def test_journal_is_plain_data():
    dbg = make()
    session(dbg)
    for entry in dbg.journal:
        assert isinstance(entry, dict)
        assert all(isinstance(k, str) and type(v) in (str, int) for k, v in entry.items())
    ops = [e["op"] for e in dbg.journal]
    assert ops[:5] == ["break", "break", "step", "packet", "step_over"]
    assert {"op": "edit", "path": "meta.mark", "text": "0x10", "at": 1} in dbg.journal
    assert {"op": "packet", "index": 1} in dbg.journal


def test_replay_reaches_the_same_events_and_state():
    dbg = make()
    session(dbg)
    again = Debugger.replay(FakeBox, PACKETS, dbg.journal, walker=fake_walk)
    assert again.events == dbg.events
    assert again.journal == dbg.journal
    assert (again.index, again.state) == (dbg.index, dbg.state)
    assert again.packet.fields == dbg.packet.fields
    assert [(b.id, b.spec, b.enabled, b.hits) for b in again.breakpoints.values()] == [
        (b.id, b.spec, b.enabled, b.hits) for b in dbg.breakpoints.values()]


def test_replay_of_an_edit_at_another_event_is_refused():
    dbg = make()
    dbg.step()
    dbg.edit("ip.ttl", "5")
    journal = [dict(e) for e in dbg.journal]
    journal[-1]["at"] = 7
    with pytest.raises(KptuiError, match="journal entry 2 .*made at event 7, replay is at "
                                         "event 0"):
        Debugger.replay(FakeBox, PACKETS, journal, walker=fake_walk)


def test_replay_that_diverges_says_where():
    # a scenario whose second packet is missing: the journal's packet start never happens
    dbg = make()
    dbg.run_to_fate()
    dbg.step()
    with pytest.raises(KptuiError, match=r"diverged at journal entry 2 \{'op': 'step'\}: "
                                         "re-execution does not record entry 3"):
        Debugger.replay(FakeBox, PACKETS[:1], dbg.journal, walker=fake_walk)


def test_replay_rejects_a_malformed_entry():
    with pytest.raises(KptuiError, match="unknown action 'jump'"):
        Debugger.replay(FakeBox, PACKETS, [{"op": "jump"}], walker=fake_walk)
    with pytest.raises(KptuiError, match="'spec' must be a str"):
        Debugger.replay(FakeBox, PACKETS, [{"op": "break", "id": 1}], walker=fake_walk)


# -- reverse execution ----------------------------------------------------------------------


def test_step_back_returns_to_the_previous_event_on_a_restored_box():
    dbg = make()
    step_until(dbg, lambda ev: isinstance(ev, LogLine))
    box = dbg.box
    assert box.logged == 1
    before = list(dbg.events)
    stop = dbg.step_back()
    assert stop.event == before[-2] and dbg.events == before[:-1]
    assert dbg.box.logged == 1  # state restored, then re-executed once, not twice
    assert dbg.step().event == before[-1]  # and forward again, identically


def test_step_back_undoes_an_edit():
    dbg = make()
    dbg.step()
    dbg.edit("meta.mark", "0x33")
    assert dbg.packet.get("meta.mark") == 0x33
    stop = dbg.step_back()
    assert isinstance(stop.event, WalkStart)
    assert dbg.packet.get("meta.mark") == 0


def test_step_back_keeps_earlier_edits():
    dbg = make()
    dbg.step()
    dbg.edit("tcp.dport", "80")
    dbg.step()
    dbg.step()
    dbg.step_back()
    assert dbg.packet.get("tcp.dport") == 80
    assert isinstance(dbg.events[1], UserEdit)


def test_step_back_across_a_packet_boundary_and_to_the_start():
    dbg = make()
    dbg.run_to_fate()
    dbg.step()
    assert dbg.index == 1
    stop = dbg.step_back()
    assert stop.reason == "step" and isinstance(stop.event, Fate) and dbg.index == 0
    assert not dbg.in_walk
    while dbg.current is not None:
        dbg.step_back()
    assert dbg.state == "idle"
    assert dbg.step_back() == type(stop)("end", None)


def test_reverse_cont_goes_back_to_the_previous_hit():
    dbg = make()
    bp = dbg.add_breakpoint("rule filter:FORWARD:2")
    first = dbg.cont()
    dbg.cont()  # fate of packet 0
    second = dbg.cont()  # packet 1
    assert second.breakpoint is bp and dbg.index == 1
    dbg.step()
    stop = dbg.reverse_cont()
    assert stop.event == second.event and dbg.index == 1
    stop = dbg.reverse_cont()
    assert stop.reason == "breakpoint" and stop.event == first.event and dbg.index == 0
    assert len(dbg.events) == dbg.events.index(first.event) + 1
    assert bp.hits == 4
    assert dbg.reverse_cont() == type(stop)("end", None)
    assert dbg.state == "idle"


def test_reverse_cont_finds_the_previous_rise_of_a_bare_condition():
    dbg = make()
    dbg.add_breakpoint("if ip.ttl == 63")
    hit = dbg.cont()
    dbg.run_to_fate()
    stop = dbg.reverse_cont()
    assert stop.event == hit.event and dbg.packet.get("ip.ttl") == 63


def test_box_instance_is_snapshotted_for_reverse_steps():
    box = FakeBox()
    dbg = Debugger(box, PACKETS, walker=fake_walk)
    dbg.run_to_fate()
    assert dbg.box is box and box.logged == 1  # the first run uses the box given
    dbg.step_back()
    assert dbg.box.logged == 1  # re-executed from the snapshot of the box as given
    while dbg.events:
        dbg.step_back()
    assert dbg.box.logged == 0  # back at the start: the box as it was given


# -- against the real walk (kptui/engine/walk.py, scenario.py, iptables) --------------------

MARK_AND_FILTER = '''
name = "mark-and-filter"
iptables = """
*mangle
:PREROUTING ACCEPT [0:0]
-A PREROUTING -i eth1 -p tcp --dport 8080 -j MARK --set-mark 0x1
COMMIT
*filter
:FORWARD DROP [0:0]
-A FORWARD -p tcp --dport 80 -j ACCEPT
COMMIT
"""
[sysctl]
"net.ipv4.ip_forward" = 1
[[interfaces]]
name = "eth0"
addresses = ["192.168.1.1/24"]
[[interfaces]]
name = "eth1"
addresses = ["203.0.113.2/24"]
[[packets]]
iif = "eth1"
proto = "tcp"
src = "198.51.100.7"
dst = "192.168.1.10"
sport = 40000
dport = 80
[[packets]]
iif = "eth1"
proto = "tcp"
src = "198.51.100.7"
dst = "192.168.1.10"
sport = 40001
dport = 8080
'''


@pytest.fixture
def scenario():
    pytest.importorskip("kptui.engine.scenario")
    iptables = pytest.importorskip("kptui.engine.iptables")
    if not hasattr(iptables, "run_chain"):
        pytest.skip("kptui.engine.iptables.run_chain is not written yet")
    from kptui.engine.scenario import load_scenario

    return load_scenario(MARK_AND_FILTER, file="mark-and-filter.toml")


def real(scenario) -> Debugger:
    return Debugger.for_scenario(scenario)


def test_real_walk_single_steps_give_the_same_events_as_a_trace(scenario):
    from kptui.engine.run import run_scenario

    dbg = real(scenario)
    fates = []
    while (stop := dbg.step()).reason != "end":
        if stop.reason == "fate":
            fates.append((stop.event.action, stop.event.by))
    expected = [ev for result in run_scenario(scenario) for ev in result.events]
    assert dbg.events == expected
    # iptables(8): a packet no rule accepts gets the chain's policy (DROP)
    assert fates == [("transmit", "filter:FORWARD:rule:1"), ("drop", "filter:FORWARD:policy")]


def test_real_walk_edits_change_the_verdict(scenario):
    dbg = real(scenario)
    dbg.add_breakpoint("stage filter:FORWARD")
    dbg.add_breakpoint("watch meta.mark")
    assert dbg.cont().event.stage == "filter:FORWARD"
    with pytest.raises(FieldError, match="out of range"):
        dbg.edit("tcp.dport", "65536")  # the packet's own range check
    dbg.edit("tcp.dport", "8080")  # rule 1 (--dport 80) no longer matches
    stop = dbg.cont()
    assert (stop.reason, stop.event.action, stop.event.by) == (
        "fate", "drop", "filter:FORWARD:policy")
    stop = dbg.cont()  # packet 1, dport 8080: the MARK rule sets the mark
    assert stop.reason == "watch" and (stop.event.old, stop.event.new) == (0, 1)
    assert stop.event.by == "mangle:PREROUTING:rule:1"
    assert dbg.cont().event.stage == "filter:FORWARD"
    dbg.edit("tcp.dport", "80")
    stop = dbg.cont()
    assert (stop.event.action, stop.event.iface) == ("transmit", "eth0")
    assert dbg.packet.out_dict()["mark"] == 1


def test_real_walk_replay_and_reverse(scenario):
    dbg = real(scenario)
    dbg.add_breakpoint("rule filter:FORWARD:1 if ip.dst in 192.168.1.0/24")
    dbg.cont()
    dbg.edit("ip.ttl", "9")
    dbg.cont()
    dbg.cont()
    assert dbg.index == 1
    dbg.step_back()
    again = Debugger.replay(scenario.build_box, scenario.packets, dbg.journal,
                            profile=scenario.profile)
    assert again.events == dbg.events
    assert again.packet == dbg.packet
    first = again.reverse_cont()
    assert first.breakpoint is not None and again.index == 0
    assert again.packet.get("ip.ttl") == 63  # before the edit: 64 - 1 by ip_forward


def test_real_box_instance_can_be_stepped_back(scenario):
    box = scenario.build_box()
    dbg = Debugger(box, scenario.packets, profile=scenario.profile)
    end = dbg.run_to_fate()
    back = dbg.step_back()
    assert isinstance(back.event, StageLeave)
    assert dbg.step().event == end.event


def test_rule_breakpoint_stops_on_a_rule_the_chain_index_would_skip():
    # A 40-rule chain is indexed by destination/port: a packet to port 22 skips rule 5
    # (port 1004) unevaluated. A breakpoint on rule 5 must still stop there, showing why
    # it does not match, as gdb users expect of a breakpoint on a line that runs.
    from kptui.engine.events import Note, RuleEval
    from kptui.engine.scenario import load_scenario

    rules = "\n".join(f"-A INPUT -d 192.0.2.1/32 -p tcp -m tcp --dport {1000 + n} -j DROP"
                      for n in range(40))
    text = (f'iptables = """\n*filter\n:INPUT ACCEPT [0:0]\n{rules}\nCOMMIT\n"""\n'
            '[[interfaces]]\nname = "eth0"\naddresses = ["192.0.2.1/24"]\n'
            '[[packets]]\niif = "eth0"\nproto = "tcp"\nsrc = "192.0.2.10"\n'
            'dst = "192.0.2.1"\nsport = 40000\ndport = 22\n')
    scenario = load_scenario(text, file="big.toml")

    plain = Debugger.for_scenario(scenario)
    plain.run_to_fate()
    assert not any(isinstance(e, RuleEval) and e.rule == 5 for e in plain.events)
    assert any(isinstance(e, Note) and "skip" in e.text for e in plain.events)

    dbg = Debugger.for_scenario(scenario)
    dbg.add_breakpoint("rule filter:INPUT:5")
    stop = dbg.cont()
    assert stop.reason == "breakpoint"
    assert isinstance(stop.event, RuleEval) and stop.event.rule == 5
    assert not stop.event.matched and "1004" in stop.event.reason
    assert dbg.run_to_fate().event.action == "deliver"


def _flatten(result):
    yield from result.events
    for answer in result.answers:
        yield from _flatten(answer)


@pytest.mark.parametrize("name", ["ipt-reject-kinds", "answer-output-filter",
                                  "reply-tcp-handshake-forward", "reply-icmp-echo"])
def test_debugger_steps_answers_and_replies_like_trace(name):
    # The box's answers (REJECT's ICMP/RST, ICMP errors) are walks the user steps after
    # the walk that caused them, and `reply_to` packets are built from the earlier
    # packets' fates: stepping through the whole scenario sees exactly the events of
    # `kptui trace` (run_scenario), answers depth first. Kernel corpus scenarios.
    from pathlib import Path

    from kptui.engine.run import run_scenario
    from kptui.engine.scenario import load_scenario

    path = Path(__file__).parent / "kernel" / "scenarios" / f"{name}.toml"
    scenario = load_scenario(path.read_text(), file=str(path))
    expected = [ev for result in run_scenario(scenario) for ev in _flatten(result)]
    dbg = Debugger.for_scenario(scenario)
    while dbg.state != "finished":
        dbg.step()
    assert dbg.events == expected
    back = dbg.step_back()
    assert back.event == expected[-2]


def test_send_reply_is_journaled_and_replays():
    from pathlib import Path

    from kptui.engine.scenario import load_scenario
    from kptui.sessions.format import decode, encode
    from kptui.sessions.replay import record

    path = Path(__file__).parent / "kernel" / "scenarios" / "ct-tcp-handshake-forward.toml"
    if not path.exists():  # any forwarded TCP scenario does
        path = next((Path(__file__).parent / "kernel" / "scenarios").glob("ct-*.toml"))
    scenario = load_scenario(path.read_text(), file=str(path))
    dbg = Debugger.for_scenario(scenario)
    dbg.run_to_fate()
    if dbg.current.action not in ("transmit", "deliver"):
        with pytest.raises(KptuiError, match="nobody saw it"):
            dbg.send_reply()
        return
    index = dbg.send_reply()
    assert index == len(scenario.packets)
    while dbg.state != "finished":
        dbg.cont()
    again = Debugger.replay(scenario.build_box, scenario.packets, dbg.journal)
    assert again.events == dbg.events
    assert {"op": "reply", "of": 0} in dbg.journal
    # and a saved session keeps it: the format accepts the action and replays it
    session = decode(encode(record(dbg, path.read_text(), str(path))), file="s.kpt")
    assert {"op": "reply", "of": 0} in session.journal
