"""A walk: one packet's journey through the box, as a generator of events.

The walk mutates the packet in place, so a debugger that edits a field
between two events changes what happens next. Each stage kind of the profile
has one handler; a handler yields events and returns what happens next: go
on, switch to another path, or a fate.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, replace
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any

from kptui.engine.errors import KptuiError, UnsupportedError
from kptui.engine.events import (
    AnswerSent,
    ConntrackConfirm,
    ConntrackLookup,
    Event,
    Fate,
    FieldChange,
    NatSkip,
    Note,
    PolicyApplied,
    RouteDecision,
    StageEnter,
    StageLeave,
    TargetApplied,
    WalkStart,
)
from kptui.engine.packet import ROUTING_KEYS
from kptui.engine.profile import Profile, Stage, get_profile

if TYPE_CHECKING:
    from kptui.engine.box import Box
    from kptui.engine.packet import Packet

LIMITED_BROADCAST = IPv4Address("255.255.255.255")
TERMINAL = {"ACCEPT", "DROP", "REJECT", "QUEUE"}

# Matches and targets whose checkentry calls nf_ct_netns_get(): only while one of them
# is in the ruleset does the kernel track connections in the namespace (conntrack hooks
# are registered per netns on demand since Linux 4.10). Without conntrack the nat hooks
# find no conntrack entry and never run the nat chains (nf_nat_inet_fn: `if (!ct)
# return NF_ACCEPT`). Checked on kernel 6.18 with iptables-nft 1.8.9: an empty nat
# table, or one with only LOG rules, is never traversed; one `-m state` rule, even in
# an unreferenced user chain, or a CONNMARK, MASQUERADE or `CT --zone` rule makes the
# first packet of each connection traverse it; `CT --notrack` does not.
CONNTRACK_MATCHES = frozenset({"state", "conntrack", "connmark", "connbytes", "connlimit",
                               "connlabel", "helper", "cluster"})
CONNTRACK_TARGETS = frozenset({"CONNMARK", "CONNSECMARK", "DNAT", "SNAT", "MASQUERADE",
                               "REDIRECT", "NETMAP", "CT", "SYNPROXY"})

# HOOK2MANIP: which binding each nat hook sets up.
NAT_MANIP = {"PREROUTING": "DST", "OUTPUT": "DST", "INPUT": "SRC", "POSTROUTING": "SRC"}

# net/ipv4/route.c ip_rt_send_redirect's limits: at most ip_rt_redirect_number redirects to
# a source, the n-th not before ip_rt_redirect_load << n (HZ/50 = 20 ms) after the last,
# and all forgotten after ip_rt_redirect_silence ((HZ/50) << 10 = 20.48 s) without one.
REDIRECT_NUMBER = 9
REDIRECT_LOAD = 20  # ms
REDIRECT_SILENCE = 20.48  # s

# net/ipv4/route.c ip_tos2prio, indexed by IPTOS_TOS(tos) >> 1; TC_PRIO_* values.
IP_TOS2PRIO = (0, 0, 0, 0, 2, 2, 2, 2, 6, 6, 6, 6, 4, 4, 4, 4)

EventGen = Generator[Event, None, "Next"]


@dataclass(frozen=True, slots=True)
class Next:
    """What a stage handler decided: carry on, take another path, or end with a fate."""

    path: str = ""  # "", or the name of the profile path to continue with
    fate: Fate | None = None


GO_ON = Next()


class Walk:
    """The state of one packet's walk: the box, the packet and who decided what."""

    def __init__(self, box: Box, pkt: Packet, index: int, profile: Profile,
                 linear: bool = False) -> None:
        self.box = box
        self.linear = linear  # evaluate every rule: no chain index (see run_chain)
        self.pkt = pkt
        self.index = index
        self.profile = profile
        self.origin = pkt.meta.iif or "local"
        self.locally_generated = not pkt.meta.iif
        self.decided_by: str = ""  # the last rule or policy that accepted the packet
        self.conntrack_noted = False
        self.last_route: Any = None  # the packet's last route decision (skb_rtable)
        self.input_route: Any = None  # the input route result (redirects need it)
        self.answer_count = 0  # AnswerSent events so far
        # -j TEE copies sent, and the rules evaluated after the first (ext/tee.order_conflict)
        self.copies: list[Packet] = []
        self.after_copy: list[tuple[str, str, int]] | None = None
        self.tracking = uses_conntrack(box.ruleset)
        self.handlers: dict[str, Callable[[Stage], EventGen]] = {
            "table": self.table_stage,
            "conntrack": self.conntrack_stage,
            "confirm": self.confirm_stage,
            "tc": self.tc_stage,
            "routing": self.routing_stage,
            "forward": self.forward_stage,
            "deliver": self.deliver_stage,
            "transmit": self.transmit_stage,
        }

    # -- driving -----------------------------------------------------------------

    def events(self) -> Iterator[Event]:
        yield WalkStart(stage="", hook="", packet=self.pkt.summary(), origin=self.origin,
                        index=self.index)
        if self.pkt.meta.tstamp > self.box.clock:
            self.box.clock = self.pkt.meta.tstamp
            yield Note(stage="", hook="", text=f"the clock advances to {self.box.clock:g} s")
        path = "local_out" if self.locally_generated else "prerouting"
        try:
            while True:
                outcome = yield from self.run_path(path)
                if outcome.fate is not None:
                    if self.after_copy:
                        from kptui.engine.iptables.ext.tee import order_conflict

                        order_conflict(self.box.ruleset, self.after_copy, self.copies)
                    yield outcome.fate
                    return
                path = outcome.path
        except KptuiError as err:
            yield Fate(stage="", hook="", action="error", message=str(err))

    def run_path(self, path: str) -> EventGen:
        stages: tuple[Stage, ...] = getattr(self.profile, path)
        for stage in stages:
            outcome = yield from self.handlers[stage.kind](stage)
            if outcome.fate is not None or outcome.path:
                return outcome
        follow = {"local_out": "postrouting", "forward": "postrouting"}
        return Next(path=follow[path])

    def fate(self, stage: Stage, action: str, *, by: str = "", iface: str = "",
             message: str = "") -> Next:
        return Next(fate=Fate(stage=stage.id, hook=stage.hook, action=action, by=by,
                              iface=iface, message=message))

    def accepted_by(self, fallback: str) -> str:
        """What the kernel's trace shows deciding last (checked with xtables-monitor)."""
        return self.decided_by or fallback

    def change(self, stage: Stage, path: str, value: Any, by: str) -> Iterator[Event]:
        old, new = self.pkt.set(path, value)
        if old != new:
            yield FieldChange(stage=stage.id, hook=stage.hook, path=path, old=old, new=new, by=by)

    # -- stage handlers ------------------------------------------------------------

    def skip_stage(self, stage: Stage) -> EventGen:
        """Stages with nothing configured in them (tc, conntrack confirm) pass silently."""
        return GO_ON
        yield  # pragma: no cover - makes this a generator

    def tc_stage(self, stage: Stage) -> EventGen:
        """tc ingress (sch_handle_ingress, before ip_rcv) or egress (clsact egress, then
        the root qdisc's enqueue) on the packet's device; silent when it has no tc
        configuration (kptui.engine.qos says what is modelled of time)."""
        state = getattr(self.box, "tc_made", None)
        ingress = "ingress" in stage.id
        dev = self.pkt.meta.iif if ingress else self.pkt.meta.oif
        if not ingress and self.pkt.meta.tee:  # ip_finish_output runs before the qdisc
            outcome = yield from self.copy_too_big(stage)
            if outcome.fate is not None:
                return outcome
        if state is None or not state.configured(dev):
            return GO_ON
        from kptui.engine import qos
        from kptui.engine.events import QosClassify
        from kptui.engine.packet import parse_classid

        run = qos.ingress if ingress else qos.egress
        # Enter the stage before tc looks at the packet, so that an edit made at the
        # StageEnter pause is what the first filter sees.
        yield StageEnter(stage=stage.id, hook="", title=stage.title)
        gen = run(state, self.pkt, self.box.clock, stage.id)
        chosen = ""
        try:
            while True:
                event = next(gen)
                if isinstance(event, QosClassify) and ":" in event.target:
                    chosen = event.target
                yield event
        except StopIteration as stop:
            verdict = stop.value
        if chosen:  # meta.classid: the class tc chose (tcf_result's classid), for watches
            yield from self.change(stage, "meta.classid", parse_classid(chosen), stage.id)
        if verdict.action == "drop":
            yield StageLeave(stage=stage.id, hook="", title=stage.title, verdict="DROP")
            return self.fate(stage, "drop", by=verdict.by, message=verdict.message)
        if verdict.delay > 0:
            yield Note(stage=stage.id, hook="",
                       text=f"shaping holds the packet {verdict.delay:.3f} s; kptui walks it "
                            "on now (the clock does not advance; see kptui.engine.qos)")
        yield StageLeave(stage=stage.id, hook="", title=stage.title, verdict="")
        return GO_ON

    def copy_too_big(self, stage: Stage) -> EventGen:
        """ip_finish_output -> ip_fragment for a -j TEE copy, after POSTROUTING: it always
        has DF (and no ignore_df), so when it is longer than its device's MTU it is dropped
        and its sender gets ICMP fragmentation needed about it (checked on Linux 6.18)."""
        pkt = self.pkt
        dev = self.box.interfaces.get(pkt.meta.oif)
        if dev is None or pkt.length <= dev.mtu:
            return GO_ON
        if self.box.is_local(pkt.ip.dst):  # __icmp_send's RTCF_LOCAL is the copy's route's
            raise UnsupportedError("a -j TEE copy of a packet to this box, longer than its "
                                   "device's MTU (the ICMP error's source address)")
        yield StageEnter(stage=stage.id, hook="", title=stage.title)
        yield from self.answer_icmp(stage, 3, 4, f"ICMP fragmentation needed, MTU {dev.mtu} "
                                    "(ip_fragment, about the TEE copy)", info=dev.mtu)
        yield StageLeave(stage=stage.id, hook="", title=stage.title, verdict="DROP")
        return self.fate(stage, "drop", by="mtu",
                         message=f"{pkt.length} bytes with DF set do not fit {dev.name}'s MTU "
                                 f"{dev.mtu} (ip_fragment)")

    def table_stage(self, stage: Stage) -> EventGen:
        from kptui.engine.iptables import MatchContext, run_chain

        if stage.table == "nat":
            return (yield from self.nat_stage(stage))
        ruleset = self.box.ruleset
        if not ruleset.chain_present(stage.table, stage.hook):
            return GO_ON
        yield StageEnter(stage=stage.id, hook=stage.hook, title=stage.title)
        ctx = MatchContext(
            hook=stage.hook, table=stage.table, iif=self.pkt.meta.iif, oif=self.pkt.meta.oif,
            addrtype=self.box.addrtype, rng=ensure_rng(self.box),
            now=getattr(self.box, "clock", 0.0),
            src_mac=None, pkttype=self.pkttype(), box=self.box,
        )
        before = self.routing_keys()
        decider = ""
        reject_with = "icmp-port-unreachable"
        chain = run_chain(ruleset, stage.table, stage.hook, self.pkt, ctx, stage=stage.id,
                          hook=stage.hook, linear=self.linear)
        verdict = "ACCEPT"
        try:
            while True:
                event = next(chain)
                if isinstance(event, TargetApplied) and event.verdict in TERMINAL:
                    decider = f"{event.table}:{event.chain}:rule:{event.rule}"
                    reject_with = event.detail or reject_with
                elif isinstance(event, PolicyApplied):
                    decider = f"{event.table}:{event.chain}:policy"
                yield event
                if ctx.sent or self.after_copy is not None:
                    yield from self.copies_sent(stage, ctx, event)
        except StopIteration as stop:
            verdict = stop.value
        yield StageLeave(stage=stage.id, hook=stage.hook, title=stage.title, verdict=verdict)
        if verdict == "DROP":
            return self.fate(stage, "drop", by=decider)
        if verdict == "REJECT":
            yield from self.answer_reject(stage, reject_with, decider)
            return self.fate(stage, "reject", by=decider)
        if verdict == "QUEUE":
            return self.fate(stage, "drop", by=decider,
                             message="queued to userspace; no queue listener is simulated, "
                                     "so the kernel drops it")
        if decider:
            self.decided_by = decider
        if stage.hook == "OUTPUT" and stage.table == "mangle":
            changed = [k for k, v in self.routing_keys().items() if before[k] != v]
            if changed:
                return (yield from self.reroute(stage, changed))
        return GO_ON

    def conntrack_stage(self, stage: Stage) -> EventGen:
        """ipv4_conntrack_in / ipv4_conntrack_local: look the packet up, attach its entry."""
        if not self.tracking:
            if self.conntrack_noted or not _has_table(self.box.ruleset, "nat"):
                return GO_ON
            self.conntrack_noted = True
            yield StageEnter(stage=stage.id, hook=stage.hook, title=stage.title)
            yield Note(stage=stage.id, hook=stage.hook,
                       text="no rule uses connection tracking (conntrack, state, connmark "
                            "matches, CONNMARK, CT or NAT targets), so the kernel does not "
                            "track connections in this box: without a conntrack entry the "
                            "nat chains are not traversed")
            yield StageLeave(stage=stage.id, hook=stage.hook, title=stage.title, verdict="")
            return GO_ON
        yield StageEnter(stage=stage.id, hook=stage.hook, title=stage.title)
        meta = self.pkt.meta
        before = (meta.ctstate, self.pkt.get("meta.ctmark"))
        found = self.box.conntrack.lookup(self.pkt)
        conn = found.conn
        yield ConntrackLookup(stage=stage.id, hook=stage.hook, result=found.result,
                              ctinfo=found.ctinfo, state=found.state,
                              direction=found.direction,
                              entry=conn.line(self.box.clock) if conn is not None else "",
                              why=found.why)
        for path, old in zip(("meta.ctstate", "meta.ctmark"), before, strict=True):
            new = self.pkt.get(path)
            if new != old:
                yield FieldChange(stage=stage.id, hook=stage.hook, path=path, old=old, new=new,
                                  by="conntrack")
        yield StageLeave(stage=stage.id, hook=stage.hook, title=stage.title, verdict="")
        return GO_ON

    def confirm_stage(self, stage: Stage) -> EventGen:
        """nf_confirm (priority INT_MAX): a new entry enters the table with its first packet."""
        if not self.tracking or self.pkt.meta.ct is None:
            return GO_ON
        conn = self.box.conntrack.confirm(self.pkt)
        if conn is None:
            return GO_ON
        yield StageEnter(stage=stage.id, hook=stage.hook, title=stage.title)
        yield ConntrackConfirm(stage=stage.id, hook=stage.hook, entry=conn.line(self.box.clock))
        yield StageLeave(stage=stage.id, hook=stage.hook, title=stage.title, verdict="")
        return GO_ON

    def nat_stage(self, stage: Stage) -> EventGen:
        """nf_nat_ipv4_fn and its hook wrappers at one nat hook (KERNEL-NOTES 4).

        The first nat base chain registers the nat hook at all four hooks
        (nf_nat_register_fn), so a hook without a chain still gives a new
        connection its (null) binding and rewrites every packet of a NATed
        connection: de-SNAT of replies at PREROUTING, de-DNAT at POSTROUTING or
        INPUT. Without conntrack in the box there is no entry and nothing to do.
        Checked on kernel 6.18 (the nat-* and ct-* scenarios).
        """
        from kptui.engine import nat

        ruleset = self.box.ruleset
        if not self.tracking or not _has_table(ruleset, "nat"):
            return GO_ON
        pkt, meta = self.pkt, self.pkt.meta
        present = ruleset.chain_present("nat", stage.hook)
        manip = NAT_MANIP[stage.hook]
        opened: list[bool] = []

        def enter() -> Iterator[Event]:
            if not opened:
                opened.append(True)
                yield StageEnter(stage=stage.id, hook=stage.hook, title=stage.title)

        reason = self.nat_skip_reason(stage)
        if reason and present:
            yield from enter()
            yield NatSkip(stage=stage.id, hook=stage.hook, table="nat", chain=stage.hook,
                          reason=reason)
        conn = meta.ct
        verdict = ""
        if conn is None:
            changes: list[tuple[str, Any]] = []
        elif meta.ctinfo in ("RELATED", "RELATED_REPLY") and pkt.ip.proto == 1:
            got = nat.icmp_changes(pkt, conn, manip)
            if got is None:
                yield from enter()
                yield StageLeave(stage=stage.id, hook=stage.hook, title=stage.title,
                                 verdict="DROP")
                return self.fate(stage, "drop", by=f"nat:{stage.hook}",
                                 message="an ICMP redirect for a NATed connection "
                                         "(nf_nat_icmp_reply_translation drops it)")
            changes = got
        else:
            if not reason:
                if present:
                    yield from enter()
                    outcome = yield from self.nat_chain(stage)
                    if outcome.fate is not None:
                        return outcome
                    verdict = "ACCEPT"
                if not conn.nat_initialized(manip):
                    binding = nat.setup_info(self.box.conntrack, conn,
                                             nat.null_range(conn, manip), manip)
                    if binding is not None:
                        yield from enter()
                        yield nat.binding_event(stage.id, stage.hook, binding, "null",
                                                "no rule bound it: the current address, "
                                                "ports left to the clash check")
            elif (stage.hook == "POSTROUTING" and meta.ctinfo in ("NEW", "ESTABLISHED")
                  and conn.nat.get("masq_index") not in (None, meta.oif)):
                # nf_nat_oif_changed: a MASQUERADEd connection now leaving elsewhere
                self.box.conntrack.remove(conn)
                yield from enter()
                yield StageLeave(stage=stage.id, hook=stage.hook, title=stage.title,
                                 verdict="DROP")
                return self.fate(stage, "drop", by=f"nat:{stage.hook}",
                                 message=f"the connection was masqueraded out of "
                                         f"{conn.nat['masq_index']} and now leaves via "
                                         f"{meta.oif}: the kernel kills it "
                                         "(nf_nat_oif_changed)")
            changes = nat.packet_changes(pkt, conn, manip)
        if changes:
            direction = 1 if meta.ctinfo.endswith("_REPLY") else 0
            label = nat.direction_label(manip, direction)
            if meta.ctinfo.startswith("RELATED") and pkt.ip.proto == 1:
                label = f"icmp-error-{label}"
            for path, value in changes:
                old, new = pkt.set(path, value)
                if old != new:
                    yield from enter()
                    yield FieldChange(stage=stage.id, hook=stage.hook, path=path, old=old,
                                      new=new, by=f"nat:{stage.hook}:{label}")
        if opened:
            yield StageLeave(stage=stage.id, hook=stage.hook, title=stage.title,
                             verdict=verdict)
        if stage.hook == "OUTPUT" and conn is not None:
            # nf_nat_ipv4_local_fn: every packet of a DNAT'd flow is routed again
            direction = 1 if meta.ctinfo.endswith("_REPLY") else 0
            if conn.tuple(direction).dst != conn.tuple(1 - direction).src:
                changed = ["ip.dst (the connection is DNAT'd)"]
                return (yield from self.reroute(stage, changed))
        return GO_ON

    def nat_chain(self, stage: Stage) -> EventGen:
        """The nat chain of this hook, with the NAT targets binding through ``ctx.nat``."""
        from kptui.engine.iptables import MatchContext, run_chain
        from kptui.engine.nat import NatHook

        route = self.last_route
        nexthop = None
        if route is not None:
            nexthop = IPv4Address(route.gateway) if route.gateway else self.pkt.ip.dst
        hook = NatHook(self.box, self.pkt, stage=stage.id, hook=stage.hook, nexthop=nexthop)
        ctx = MatchContext(
            hook=stage.hook, table="nat", iif=self.pkt.meta.iif, oif=self.pkt.meta.oif,
            addrtype=self.box.addrtype, rng=ensure_rng(self.box),
            now=getattr(self.box, "clock", 0.0), src_mac=None, pkttype=self.pkttype(),
            nat=hook, box=self.box,
        )
        decider = ""
        chain = run_chain(self.box.ruleset, "nat", stage.hook, self.pkt, ctx, stage=stage.id,
                          hook=stage.hook, linear=self.linear)
        try:
            while True:
                event = next(chain)
                if isinstance(event, TargetApplied) and event.verdict in TERMINAL:
                    decider = f"{event.table}:{event.chain}:rule:{event.rule}"
                elif isinstance(event, PolicyApplied):
                    decider = f"{event.table}:{event.chain}:policy"
                yield event
                while hook.pending:
                    yield replace(hook.pending.pop(0), by=decider, depth=event.depth)
                if ctx.sent or self.after_copy is not None:
                    yield from self.copies_sent(stage, ctx, event)
        except StopIteration as stop:
            verdict = stop.value
        if verdict in ("DROP", "QUEUE"):
            yield StageLeave(stage=stage.id, hook=stage.hook, title=stage.title,
                             verdict=verdict)
            message = ("" if verdict == "DROP" else "queued to userspace; no queue listener "
                       "is simulated, so the kernel drops it")
            return self.fate(stage, "drop", by=decider, message=message)
        if decider:
            self.decided_by = decider
        return GO_ON

    def nat_skip_reason(self, stage: Stage) -> str:
        """Why nf_nat_inet_fn would not run the nat chains for this packet ('' if it does)."""
        meta = self.pkt.meta
        conn = meta.ct
        if conn is None:
            state = meta.ctinfo or "INVALID"
            return f"the packet is {state}: without a conntrack entry there is nothing to NAT"
        manip = NAT_MANIP[stage.hook]
        if meta.ctinfo in ("ESTABLISHED", "ESTABLISHED_REPLY"):
            return (f"not the first packet of the connection ({meta.ctinfo}): it follows the "
                    "bindings its first packet set up")
        if meta.ctinfo in ("RELATED", "RELATED_REPLY") and self.pkt.ip.proto == 1:
            return (f"an ICMP error {meta.ctinfo} to a connection is translated with that "
                    "connection's bindings, never through the nat chains")
        if conn.nat_initialized(manip):
            return (f"not the first packet of the connection: its {manip} binding is already "
                    "set up")
        return ""

    def routing_stage(self, stage: Stage) -> EventGen:
        if stage.id == "routing:input":
            return (yield from self.input_routing(stage))
        return (yield from self.output_routing(stage))

    def input_routing(self, stage: Stage) -> EventGen:
        pkt, box = self.pkt, self.box
        yield StageEnter(stage=stage.id, hook="", title=stage.title)
        iif = pkt.meta.iif
        result = box.route_input(pkt)
        self.input_route = result
        yield self.route_event(stage, "input", result)
        yield StageLeave(stage=stage.id, hook="", title=stage.title, verdict="")
        if result.kind in ("local", "broadcast"):
            return Next(path="local_in")
        if result.kind == "unicast":
            if not box.forwarding(iif):
                return self.fate(stage, "drop", by="ip_forward",
                                 message=f"not for this host and forwarding is off on {iif}")
            yield from self.change(stage, "meta.oif", result.oif, "routing:input")
            return Next(path="forward")
        if result.reason in ("rp_filter", "martian"):
            # rp_filter: fib_validate_source's -EXDEV (counted as IPReversePathFilter);
            # any other invalid address is what log_martians calls a martian.
            return self.fate(stage, "drop", by=result.reason,
                             message=f"{result.kind.replace('_', ' ')} ({result.error})")
        yield from self.answer_route_error(stage, result)
        return self.fate(stage, "drop", by=f"routing:{result.kind}",
                         message=result.error or "no route")

    def output_routing(self, stage: Stage) -> EventGen:
        pkt = self.pkt
        yield StageEnter(stage=stage.id, hook="", title=stage.title)
        if pkt.meta.tee:  # a -j TEE copy: nf_dup_ipv4 routed it; ip_local_out does not
            yield RouteDecision(stage=stage.id, hook="", lookup="tee", result="unicast",
                                oif=pkt.meta.oif, gateway=pkt.meta.tee,
                                explain=["routed by nf_dup_ipv4 towards the TEE gateway "
                                         "before ip_local_out, which does not route again: "
                                         f"out {pkt.meta.oif} to {pkt.meta.tee}'s link-layer "
                                         "address"])
            yield StageLeave(stage=stage.id, hook="", title=stage.title, verdict="")
            return GO_ON
        result = self.box.route_output(pkt)
        why = self.socket_source()
        if why:
            result.explain.insert(0, why)
        yield self.route_event(stage, "output", result)
        yield StageLeave(stage=stage.id, hook="", title=stage.title, verdict="")
        if result.kind not in ("unicast", "local", "broadcast"):
            by = "martian" if result.reason == "martian" else f"routing:{result.kind}"
            return self.fate(stage, "drop", by=by,
                             message=f"the sending socket gets {result.error or 'an error'}")
        if int(pkt.ip.src) == 0 and result.prefsrc:
            yield from self.change(stage, "ip.src", IPv4Address(result.prefsrc), "routing:output")
        yield from self.change(stage, "meta.oif", result.oif, "routing:output")
        return GO_ON

    def socket_source(self) -> str:
        """Why a process's packet is looked up with the source it is (Box.bound_source),
        in words; "" for the kernel's own packets (answers), looked up as before."""
        pkt = self.pkt
        src = pkt.ip.src
        if pkt.meta.sock != "user":
            return ""
        if self.box.bound_source(pkt) is not None:
            return (f"sent from a socket bound to {src}, an address of this box: looked up "
                    f"from {src} (ip rule from {src} applies)")
        if int(src):
            return (f"{src} is not an address of this box, so no socket can be bound to it: "
                    "a raw socket (IP_HDRINCL) writes it, looked up without a source")
        return "sent from an unbound socket: looked up without a source; the route picks it"

    def reroute(self, stage: Stage, changed: list[str]) -> EventGen:
        """ip_route_me_harder: a new output lookup; the source address is kept."""
        box = self.box
        result = box.route_output(self.pkt, flow=box.output_flow(self.pkt, reroute=True))
        event = self.route_event(stage, "reroute", result)
        yield event
        other = (f" (the new route would have chosen {result.prefsrc}: without SNAT or "
                 "MASQUERADE the packet leaves with the old source)"
                 if result.prefsrc and result.prefsrc != str(self.pkt.ip.src) else "")
        yield Note(stage=stage.id, hook=stage.hook,
                   text=f"rerouted because {', '.join(changed)} changed; the source address "
                        f"{self.pkt.ip.src} is not chosen again (ip_route_me_harder){other}")
        if result.kind not in ("unicast", "local", "broadcast"):
            return self.fate(stage, "drop", by=f"routing:{result.kind}",
                             message=result.error or "no route after reroute")
        yield from self.change(stage, "meta.oif", result.oif, "routing:reroute")
        if self.pkt.meta.tee:  # a TEE copy now goes where its own destination's route says
            self.pkt.meta.tee = result.gateway or str(self.pkt.ip.dst)
        return GO_ON

    def forward_stage(self, stage: Stage) -> EventGen:
        pkt = self.pkt
        yield StageEnter(stage=stage.id, hook="", title=stage.title)
        if pkt.meta.tproxy is not None:  # ip_forward's skb->sk test (and ip_fwd_accept_local)
            raise UnsupportedError("forwarding a packet -j TPROXY gave a socket (route it "
                                   "to the box: a local route for its mark)")
        if pkt.ip.ttl <= 1:
            # ip_forward's too_many_hops: the error quotes the packet before the decrement
            yield from self.answer_icmp(stage, 11, 0, "ICMP time exceeded: TTL expired in "
                                        "transit (ip_forward)")
            yield StageLeave(stage=stage.id, hook="", title=stage.title, verdict="DROP")
            return self.fate(stage, "drop", by="ttl", message="TTL expired in transit")
        oif = self.box.interfaces.get(pkt.meta.oif)
        if oif is not None and pkt.length > oif.mtu:
            if pkt.ip.df:  # ip_exceeds_mtu: counted as FragFails, checked on kernel 6.18
                yield from self.answer_icmp(
                    stage, 3, 4, f"ICMP fragmentation needed, next-hop MTU {oif.mtu} "
                                 "(ip_forward)", info=oif.mtu)
                yield StageLeave(stage=stage.id, hook="", title=stage.title, verdict="DROP")
                return self.fate(stage, "drop", by="mtu",
                                 message=f"{pkt.length} bytes with DF set do not fit {oif.name}'s "
                                         f"MTU {oif.mtu}")
            yield Note(stage=stage.id, hook="",
                       text=f"{pkt.length} bytes are more than {oif.name}'s MTU {oif.mtu}: the "
                            "kernel fragments the packet after POSTROUTING (fragments are not "
                            "modelled: the packet is shown whole)")
        yield from self.change(stage, "ip.ttl", pkt.ip.ttl - 1, "ip_forward")
        if self.box.sysctl("net.ipv4.ip_forward_update_priority"):
            prio = IP_TOS2PRIO[(pkt.ip.tos & 0x1E) >> 1]
            yield from self.change(stage, "meta.priority", prio, "ip_forward")
        yield from self.answer_redirect(stage)
        yield StageLeave(stage=stage.id, hook="", title=stage.title, verdict="")
        return GO_ON

    def deliver_stage(self, stage: Stage) -> EventGen:
        pkt = self.pkt
        if pkt.ip.proto == 6 and pkt.l4 is not None and self.box.sockets:
            # the box's TCP stack has it now (a request or child socket of a listener):
            # kptui.engine.sockets refuses to guess about later packets of the connection
            self.box.tcp_delivered.add((int(pkt.ip.src), pkt.l4.sport, int(pkt.ip.dst),
                                        pkt.l4.dport))
        return self.fate(stage, "deliver", iface=pkt.meta.iif or "lo",
                         by=self.accepted_by("routing:local"))
        yield  # pragma: no cover

    def transmit_stage(self, stage: Stage) -> EventGen:
        oif = self.pkt.meta.oif
        if oif == "lo":
            yield Note(stage=stage.id, hook="",
                       text="sent to a local address: the packet loops back in through lo")
            yield from self.change(stage, "meta.iif", "lo", "loopback")
            yield from self.change(stage, "meta.oif", "", "loopback")
            return Next(path="prerouting")
        return self.fate(stage, "transmit", iface=oif, by=self.accepted_by("routing"))

    # -- answers (kptui.engine.answers builds them; run.py walks them) --------------

    def announce(self, stage: Stage, answer: Packet | None, why: str, *,
                 rst: bool = False) -> Iterator[Event]:
        """An AnswerSent event for ``answer``, or a Note saying why the kernel is silent."""
        if answer is None:
            yield Note(stage=stage.id, hook=stage.hook,
                       text=f"no answer is sent ({why}): {_silence(self.box, self.pkt, rst)}")
            return
        if self.pkt.meta.in_dup:  # sent while a TEE copy is being sent (in_nf_duplicate)
            if self.tracking:
                raise UnsupportedError(
                    "an answer to a -j TEE copy in a box that tracks connections: the kernel "
                    "sends it while the original is still in the TEE rule's hook (its "
                    "conntrack entry maybe not yet confirmed); kptui walks the copy after "
                    "the original")
            answer.meta.in_dup = True
        yield AnswerSent(stage=stage.id, hook=stage.hook, packet=answer.summary(), why=why,
                         number=self.answer_count, attached=answer.meta.ctinfo,
                         answer=answer, clone=bool(answer.meta.tee))
        self.answer_count += 1

    def copies_sent(self, stage: Stage, ctx: Any, event: Event) -> Iterator[Event]:
        """After a rule's event: announce the copies its target sent (-j TEE, ext/tee.py),
        and remember the rules the original meets after one (ext/tee.order_conflict)."""
        from kptui.engine.events import RuleEval

        if self.after_copy is not None and isinstance(event, RuleEval):
            self.after_copy.append((event.table, event.chain, event.rule))
        for dup in ctx.sent:
            if dup.clone is None:
                yield Note(stage=stage.id, hook=stage.hook, depth=event.depth,
                           text=f"no copy is sent: {dup.why} (nf_dup_ipv4 frees it)")
                continue
            if self.after_copy is None:
                self.after_copy = []
            self.copies.append(dup.clone)
            yield from self.announce(stage, dup.clone, dup.why)
        ctx.sent.clear()

    def answer_reject(self, stage: Stage, reject_with: str, decider: str) -> Iterator[Event]:
        """REJECT: nf_send_unreach / nf_send_reset about the packet as it is now (after
        DNAT, TTL already decremented in FORWARD). The RST also closes the packet's
        connection (nf_ct_set_closing)."""
        from kptui.engine.answers import reject_answer

        icmp = reject_with.strip().lower() not in ("tcp-reset", "tcp-rst")
        if self.pkt.meta.tee and icmp and self.box.is_local(self.pkt.ip.dst):
            # __icmp_send answers from the destination when the packet's route is local:
            # a copy's route is the one to its gateway, not the one to its destination
            raise UnsupportedError("REJECT of a -j TEE copy of a packet to this box (the "
                                   "ICMP error's source address)")
        answer = reject_answer(self.pkt, reject_with, box=self.box)
        why = f"{decider} REJECT --reject-with {reject_with}"
        rst = reject_with == "tcp-reset"
        if answer is not None:
            self.attach_original(answer, closing=rst)
        yield from self.announce(stage, answer, why, rst=rst)

    def attach_original(self, answer: Packet, *, closing: bool = False) -> None:
        """nf_ct_attach: every answer carries the packet's conntrack entry, RELATED_REPLY
        for a packet in the ORIGINAL direction, else RELATED (nf_conntrack_attach). The
        RST gets it from nf_send_reset, ICMP errors from icmp_glue_bits (kernel corpus:
        answer-output-filter, where the port unreachable about an unconfirmed
        connection is not INVALID). ``closing``: nf_ct_set_closing (RST only)."""
        from kptui.engine.conntrack import ORIGINAL, attach, direction_of, sCL

        conn = self.pkt.meta.ct
        if conn is None:  # no entry (INVALID, UNTRACKED, no tracking): looked up afresh
            return
        ctinfo = "RELATED_REPLY" if direction_of(self.pkt.meta.ctinfo) == ORIGINAL \
            else "RELATED"
        attach(answer.meta, conn, ctinfo)
        if closing and conn.confirmed and getattr(conn, "tcp", None) is not None \
                and conn.tcp.state != sCL:
            conn.tcp.state = sCL  # nf_conntrack_tcp_set_closing
            table = self.box.conntrack
            table.refresh(conn, table.tcp_timeout(sCL))

    def answer_icmp(self, stage: Stage, icmp_type: int, code: int, why: str, *,
                    info: int = 0) -> Iterator[Event]:
        """One of ip_forward's / ip_error's own ICMP errors about the packet as it is now."""
        from kptui.engine.answers import icmp_error

        answer = icmp_error(self.pkt, icmp_type, code, box=self.box,
                            in_iface=self.pkt.meta.iif, info=info)
        if answer is not None:
            self.attach_original(answer)
        yield from self.announce(stage, answer, why)

    def answer_route_error(self, stage: Stage, result: Any) -> Iterator[Event]:
        """ip_error: unreachable/prohibit routes answer with destination unreachable,
        but only when forwarding is on for the input device; blackhole never."""
        from kptui.engine.answers import route_error_code

        forwarding = self.box.forwarding(self.pkt.meta.iif)
        code = route_error_code(result.error, forwarding=forwarding)
        if code is None:
            if result.kind not in ("martian_source", "martian_destination"):
                why = (f"forwarding is off on {self.pkt.meta.iif}" if not forwarding
                       else f"a {result.kind} route ({result.error or 'no errno'})")
                yield Note(stage=stage.id, hook=stage.hook,
                           text=f"no ICMP error is sent (ip_error): {why}")
            return
        names = {0: "net unreachable", 1: "host unreachable", 13: "administratively "
                 "prohibited"}
        yield from self.answer_icmp(stage, 3, code, f"ICMP {names.get(code, code)}: "
                                    f"{result.kind} route, {result.error} (ip_error)")

    def answer_redirect(self, stage: Stage) -> Iterator[Event]:
        """ip_rt_send_redirect: forwarded out of the device it came in on, with the
        sender on that link: an ICMP host redirect to the gateway (quoting the packet
        after the TTL decrement). Its rate limit (ip_rt_redirect_load/number/silence
        per source, kept in an inet_peer) is modelled on the box's clock."""
        from kptui.engine.answers import icmp_error

        route = self.input_route
        if route is None or not getattr(route, "redirect", False):
            return
        if self.pkt.ip.options:
            return  # !opt->srr is what the kernel checks; options are unsupported anyway
        src = str(self.pkt.ip.src)
        peers: dict[str, tuple[int, float]] | None = getattr(self.box, "redirect_peers", None)
        if peers is None:
            peers = {}
            self.box.redirect_peers = peers
        count, last = peers.get(src, (0, 0.0))
        now = self.box.clock
        if now - last > REDIRECT_SILENCE:
            count = 0
        if count >= REDIRECT_NUMBER:
            peers[src] = (count, now)
            yield Note(stage=stage.id, hook="",
                       text=f"no redirect: {src} ignored {count} redirects (ip_rt_redirect_number)")
            return
        if count and now <= last + (REDIRECT_LOAD << count) / 1000:
            yield Note(stage=stage.id, hook="",
                       text=f"no redirect: rate limited for {src} (ip_rt_redirect_load)")
            return
        gateway = IPv4Address(route.gateway or str(self.pkt.ip.dst))
        answer = icmp_error(self.pkt, 5, 1, box=self.box, in_iface=self.pkt.meta.iif,
                            info=int(gateway))
        if answer is not None:
            peers[src] = (count + 1, now)
            self.attach_original(answer)
        yield from self.announce(stage, answer, f"ICMP redirect: {self.pkt.ip.dst} is reached "
                                 f"via {gateway} on {self.pkt.meta.iif}, the sender's own link "
                                 "(ip_rt_send_redirect)")

    # -- helpers -----------------------------------------------------------------

    def route_event(self, stage: Stage, lookup: str, result: Any) -> RouteDecision:
        self.last_route = result  # MASQUERADE's next hop (rt_nexthop)
        return RouteDecision(
            stage=stage.id, hook=stage.hook, lookup=lookup, result=result.kind,
            table=result.table, route=result.route, oif=result.oif, gateway=result.gateway,
            src=result.prefsrc, explain=list(result.explain),
        )

    def routing_keys(self) -> dict[str, Any]:
        """What ipt_mangle_out compares to decide on a reroute (KERNEL-NOTES 6)."""
        return {key: self.pkt.get(key) for key in ROUTING_KEYS}

    def pkttype(self) -> str:
        """skb->pkt_type as the arrival link's frame sets it (eth_type_trans).

        A sender on the link sends to the broadcast MAC only for 255.255.255.255
        and its own subnet's broadcast address; another subnet's broadcast
        address arrives in a unicast frame (PACKET_HOST; kernel corpus:
        ipt-pkttype-other-subnet-broadcast). Local packets are PACKET_HOST.
        """
        iif = self.pkt.meta.iif
        if not iif or iif == "lo":
            return "host"
        dst = self.pkt.ip.dst
        if dst.is_multicast:
            return "multicast"
        if dst == LIMITED_BROADCAST:
            return "broadcast"
        iface = self.box.interfaces.get(iif)
        for addr in iface.addresses if iface else ():
            net = addr.network
            if net.prefixlen < 31 and dst == net.broadcast_address:
                return "broadcast"
        return "host"


def walk(box: Box, pkt: Packet, *, index: int = 0, profile: str = "modern",
         linear: bool = False) -> Iterator[Event]:
    """Walk ``pkt`` through ``box``: every event, ending with a ``Fate``.

    ``linear`` evaluates every rule instead of letting hot chains skip the
    rules their index proves cannot match (same results, more RuleEval events).
    """
    prof = get_profile(profile)
    cls: type[Walk] = Walk
    if prof.name != "modern":  # the historical profiles' own stage kinds
        from kptui.engine.walk_historical import walk_class

        cls = walk_class(prof.name)
    return cls(box, pkt, index, prof, linear).events()


def _silence(box: Any, pkt: Packet, rst: bool) -> str:
    """Why answers.py built nothing (its rules, __icmp_send's and nf_send_reset's)."""
    from kptui.engine.packet import TCP_RST, ICMPHeader, TCPHeader

    ip = pkt.ip
    if ip.frag_offset:
        return "the kernel answers only the first fragment"
    if box.addrtype(ip.dst) in ("BROADCAST", "MULTICAST"):
        return f"{ip.dst} is a broadcast or multicast destination"
    if rst and isinstance(pkt.l4, TCPHeader) and pkt.l4.flags & TCP_RST:
        return "no RST is sent for a RST"
    if not rst and isinstance(pkt.l4, ICMPHeader):
        return (f"ICMP type {pkt.l4.type}: the kernel sends no ICMP error about an ICMP "
                "error (or an ICMP type it does not know)")
    return f"there is no route back to {ip.src}"


def ensure_rng(box: Any, seed: int = 0) -> random.Random:
    """The box's seeded generator for `-m statistic`; deterministic for replays."""
    if getattr(box, "rng", None) is None:
        box.rng = random.Random(seed)
    return box.rng


def uses_conntrack(ruleset: Any) -> bool:
    """True when a rule anywhere in the ruleset makes the kernel track connections."""
    for table in ruleset.tables.values():
        for chain in table.chains.values():
            for rule in chain.rules:
                if any(getattr(m, "name", "") in CONNTRACK_MATCHES for m in rule.matches):
                    return True
                target = rule.target
                name = getattr(target, "name", "")
                if name in CONNTRACK_TARGETS and not (
                        name == "CT" and "--notrack" in getattr(target, "seen", ())):
                    return True
    return False


def _has_table(ruleset: Any, table: str) -> bool:
    """True when the kernel would have this table: at least one of its chains exists."""
    tbl = ruleset.tables.get(table)
    return tbl is not None and any(chain.present for chain in tbl.chains.values())
