"""Walks for the historical profiles: classic-2.4 (the seed diagram) and ipchains (2.2).

Both reuse the modern walk's handlers (routing, ip_forward, conntrack, the iptables
tables, answers) and add the stage kinds only their profile has:

- ``imq`` (classic-2.4): the linuximq hooks. The IMQ target (mangle table) only
  flags the packet; the hook after mangle PREROUTING, or at the end of POSTROUTING,
  queues a flagged packet to imqN, whose egress qdisc shapes it, and reinjects it.
- ``ipchains``: one of the three ipchains chains (kptui.engine.ipchains).
- ``demasq`` (ipchains): ip_fw_demasquerade in ip_local_deliver: a reply to a
  masqueraded connection gets its inside address back, is routed again and goes
  through ip_forward *without* the forward chain, straight to the output chain.

Linux 2.2's order (net/ipv4/ip_input.c ip_rcv, ip_local_deliver; ip_forward.c):
input chain, routing, then either local delivery (demasquerading first) or
ip_forward: TTL check, redirect, TTL decrement, forward chain, MASQ, output chain.
An input-chain REJECT answers ICMP port unreachable (ip_rcv); a forward- or
output-chain REJECT of a forwarded packet answers ICMP host unreachable (ip_forward).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any, ClassVar

from kptui.engine.events import (
    Event,
    FieldChange,
    Note,
    StageEnter,
    StageLeave,
    TargetApplied,
)
from kptui.engine.walk import GO_ON, EventGen, Walk, _has_table, uses_conntrack

if TYPE_CHECKING:
    from kptui.engine.profile import Stage

# linux 2.2 include/net/ip_masq.h: masqueraded connections get ports from 61000 on
MASQ_PORT_FIRST = 61000
MASQ_PORT_COUNT = 4096


@dataclass(frozen=True, slots=True, kw_only=True, repr=False, eq=False)
class ImqPass(Event):
    """The packet went through an imq device's egress qdisc (or found none) and came back."""

    device: str
    verdict: str  # "passed" | "dropped"
    detail: str = ""
    kind: ClassVar[str] = "imq"

    def describe(self) -> str:
        extra = f": {self.detail}" if self.detail else ""
        return f"IMQ: through {self.device} ({self.verdict}){extra}"


class ClassicWalk(Walk):
    """The 2.4 kernel of the seed diagram (iptables, conntrack, IMQ)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # iptable_nat needs ip_conntrack: with the nat table loaded, a 2.4 kernel
        # tracks every packet (no per-namespace, on-demand hooks as since 4.10).
        self.tracking = uses_conntrack(self.box.ruleset) or _has_table(self.box.ruleset, "nat")
        self.imq_dev: int | None = None
        self.handlers["imq"] = self.imq_stage
        self.handlers["table"] = self.classic_table_stage

    def classic_table_stage(self, stage: Stage) -> EventGen:
        """The iptables table, watching for the IMQ target's flag (skb->imq_flags)."""
        gen = Walk.table_stage(self, stage)
        try:
            event = next(gen)
            while True:
                if isinstance(event, TargetApplied) and event.target == "IMQ":
                    self.imq_dev = int(event.detail.removeprefix("imq") or 0)
                yield event
                event = next(gen)
        except StopIteration as stop:
            return stop.value

    def imq_stage(self, stage: Stage) -> EventGen:
        """imq_nf_queue: a flagged packet is shaped by imqN's root qdisc, then reinjected.

        imq.c: an index beyond the module's devices is an error, and nf_queue drops the
        packet; a device that is down hands the packet straight back (NF_ACCEPT).
        """
        if self.imq_dev is None:
            return GO_ON
        device = f"imq{self.imq_dev}"
        self.imq_dev = None  # the flag is cleared once the device has the packet
        yield StageEnter(stage=stage.id, hook=stage.hook, title=stage.title)
        iface = self.box.interfaces.get(device)
        if iface is None or self.box.tc.link_kinds.get(device) != "imq":
            count = sum(kind == "imq" for kind in self.box.tc.link_kinds.values())
            yield ImqPass(stage=stage.id, hook=stage.hook, device=device, verdict="dropped",
                          detail=f"the imq module made imq0..imq{count - 1} (numdevs={count}):"
                                 f" no {device}, so imq_nf_queue fails and nf_queue drops "
                                 "the packet")
            return (yield from self.imq_leave(stage, dropped="imq: no such device"))
        if not iface.up:
            yield ImqPass(stage=stage.id, hook=stage.hook, device=device, verdict="passed",
                          detail=f"{device} is down: imq_nf_queue hands the packet back at "
                                 f"once (ip link set {device} up to shape)")
            return (yield from self.imq_leave(stage))
        from kptui.engine import qos

        verdict = yield from qos.imq(self.box.tc, self.pkt, self.box.clock, stage.id, device)
        if verdict.action == "drop":
            yield ImqPass(stage=stage.id, hook=stage.hook, device=device, verdict="dropped",
                          detail=verdict.message)
            return (yield from self.imq_leave(stage, dropped=verdict.message, by=verdict.by))
        if not self.box.tc.configured(device):
            detail = f"{device} has the default qdisc (pfifo_fast), which queues it at once"
        elif verdict.delay > 0:
            detail = (f"{device}'s qdisc holds it {verdict.delay:.3f} s; kptui walks it on now "
                      "(the clock does not advance; see kptui.engine.qos)")
        else:
            detail = f"{device}'s qdisc sends it at once"
        yield ImqPass(stage=stage.id, hook=stage.hook, device=device, verdict="passed",
                      detail=detail + "; imq's xmit reinjects it into the hook (NF_ACCEPT)")
        return (yield from self.imq_leave(stage))

    def imq_leave(self, stage: Stage, *, dropped: str = "", by: str = "") -> EventGen:
        """Leave the IMQ stage: on to the next hook, or a drop (``dropped`` says why)."""
        yield StageLeave(stage=stage.id, hook=stage.hook, title=stage.title,
                         verdict="DROP" if dropped else "")
        if dropped:
            return self.fate(stage, "drop", by=by or stage.id, message=dropped)
        return GO_ON


class IpchainsWalk(Walk):
    """Linux 2.2 with ipchains (box.ipchains) and IP masquerading (box.masq)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tracking = False  # 2.2 has no connection tracking; masquerading has its table
        self.demasqueraded = False
        self.redirect_port = 0
        self.handlers["ipchains"] = self.chain_stage
        self.handlers["demasq"] = self.demasq_stage

    @property
    def rules(self) -> Any:
        from kptui.engine.ipchains import IpchainsRuleset

        rs = getattr(self.box, "ipchains", None)
        if rs is None:
            rs = self.box.ipchains = IpchainsRuleset()
        return rs

    def chain_stage(self, stage: Stage) -> EventGen:
        from kptui.engine.ipchains import run_ipchain

        chain = stage.hook
        pkt = self.pkt
        if chain == "forward" and self.demasqueraded:
            yield Note(stage=stage.id, hook=chain,
                       text="a demasqueraded reply skips the forward chain and goes straight "
                            "to the output chain (ip_forward: IPSKB_MASQUERADED)")
            return GO_ON
        # IPCHAINS-HOWTO 4.1.4.4: the input chain sees the interface the packet came in
        # on, the forward and output chains the one it will go out of.
        iface = pkt.meta.iif if chain == "input" else pkt.meta.oif
        yield StageEnter(stage=stage.id, hook=chain, title=stage.title)
        verdict, port, by = yield from run_ipchain(self.rules, chain, pkt, iface,
                                                   stage=stage.id, hook=chain)
        yield StageLeave(stage=stage.id, hook=chain, title=stage.title, verdict=verdict)
        if verdict == "DENY":
            return self.fate(stage, "drop", by=by)
        if verdict == "REJECT":
            forwarded = chain == "forward" or (chain == "output" and bool(pkt.meta.iif))
            code, name = (1, "host") if forwarded else (3, "port")
            where = "ip_forward" if forwarded else ("ip_rcv" if chain == "input"
                                                    else "ip_build_xmit")
            yield from self.answer_icmp(stage, 3, code,
                                        f"{by} REJECT: ICMP {name} unreachable ({where})")
            return self.fate(stage, "reject", by=by)
        self.decided_by = by
        if verdict == "MASQ":
            if not (yield from self.masquerade(stage, by)):
                return self.fate(stage, "drop", by=by,
                                 message=f"protocol {pkt.ip.proto} cannot be masqueraded")
        elif verdict == "REDIRECT":
            self.redirect_port = port or (pkt.dport or 0)
            yield Note(stage=stage.id, hook=chain,
                       text=f"REDIRECT: the packet goes to a local socket on port "
                            f"{self.redirect_port} (transparent proxy); its header is not "
                            "changed")
        return GO_ON

    def routing_stage(self, stage: Stage) -> EventGen:
        if stage.id == "routing:input" and self.redirect_port:
            # ip_rcv: FW_REDIRECT with a port -> ip_local_deliver, whatever the route
            return self.fate(stage, "deliver", iface=self.pkt.meta.iif or "lo",
                             by=self.accepted_by("ipchains"),
                             message=f"redirected to local port {self.redirect_port}")
        return (yield from Walk.routing_stage(self, stage))

    # -- masquerading (net/ipv4/ip_masq.c) -----------------------------------------

    @property
    def masq(self) -> dict[tuple, tuple]:
        table = getattr(self.box, "masq", None)
        if table is None:
            table = self.box.masq = {}
        return table

    def masquerade(self, stage: Stage, by: str) -> Generator[Event, None, bool]:
        """ip_fw_masquerade: the source becomes the outgoing interface's address and a
        port from 61000 up; the entry remembers the inside address for the replies."""
        pkt = self.pkt
        proto = pkt.ip.proto
        if proto not in (1, 6, 17):
            yield Note(stage=stage.id, hook=stage.hook,
                       text=f"MASQ: protocol {proto} cannot be masqueraded; the packet "
                            "is dropped (ip_fw_masquerade fails)")
            return False
        inside = (proto, str(pkt.ip.src), _id(pkt, "src"), str(pkt.ip.dst), _id(pkt, "dst"))
        entry = next((key for key, val in self.masq.items() if val[0] == inside), None)
        if entry is None:
            used = {key[1] for key in self.masq if key[0] == proto}
            port = next(p for p in range(MASQ_PORT_FIRST, MASQ_PORT_FIRST + MASQ_PORT_COUNT)
                        if p not in used)
            entry = (proto, port)
            oif = self.box.interfaces.get(pkt.meta.oif)
            addr = oif.addresses[0].ip if oif is not None and oif.addresses else pkt.ip.src
            self.masq[entry] = (inside, str(addr))
        port = entry[1]
        _, addr = self.masq[entry]
        changes: list[tuple[str, Any]] = [("ip.src", IPv4Address(addr))]
        changes.append(("icmp.id" if proto == 1 else
                        ("tcp.sport" if proto == 6 else "udp.sport"), port))
        for path, value in changes:
            old, new = pkt.set(path, value)
            if old != new:
                yield FieldChange(stage=stage.id, hook=stage.hook, path=path, old=old,
                                  new=new, by=f"{by}:MASQ")
        return True

    def demasq_stage(self, stage: Stage) -> EventGen:
        """ip_local_deliver -> ip_fw_demasquerade: is this a reply to a masqueraded
        connection? Then it gets the inside address, is routed again and forwarded."""
        pkt = self.pkt
        proto = pkt.ip.proto
        if proto not in (1, 6, 17) or not self.masq:
            return GO_ON
        key = (proto, _id(pkt, "dst"))
        found = self.masq.get(key)
        if found is None:
            return GO_ON
        inside, addr = found
        _, in_src, in_sport, remote, rport = inside
        if str(pkt.ip.dst) != addr or str(pkt.ip.src) != remote or _id(pkt, "src") != rport:
            return GO_ON
        yield StageEnter(stage=stage.id, hook="", title=stage.title)
        path = "icmp.id" if proto == 1 else ("tcp.dport" if proto == 6 else "udp.dport")
        for fpath, value in (("ip.dst", IPv4Address(in_src)), (path, in_sport)):
            old, new = pkt.set(fpath, value)
            if old != new:
                yield FieldChange(stage=stage.id, hook="", path=fpath, old=old, new=new,
                                  by="masq:demasquerade")
        self.demasqueraded = True
        yield StageLeave(stage=stage.id, hook="", title=stage.title, verdict="")
        # routed again (ip_route_input) and handed to ip_forward
        return (yield from Walk.input_routing(self, self.profile.stage("routing:input")))


def _id(pkt: Any, side: str) -> int:
    """The port (tcp/udp) or, for ICMP, the echo id masquerading keys on."""
    if pkt.ip.proto == 1:
        return getattr(pkt.l4, "id", 0) if pkt.l4 is not None else 0
    value = pkt.sport if side == "src" else pkt.dport
    return value or 0


WALKS: dict[str, type[Walk]] = {"classic-2.4": ClassicWalk, "ipchains": IpchainsWalk}


def walk_class(profile: str) -> type[Walk]:
    return WALKS.get(profile, Walk)
