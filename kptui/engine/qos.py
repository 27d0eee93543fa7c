"""tc in the engine: qdiscs, classes, filters and actions per device, on the box's clock.

What a packet meets where (KERNEL-NOTES 2 and 8): at ``tc:ingress`` the
ingress/clsact filters of the device it arrived on (sch_handle_ingress: no
queue, only filters and actions, before ip_rcv and so before PREROUTING); at
``tc:egress`` the clsact egress filters, then the root qdisc's enqueue of the
device it leaves through (__dev_queue_xmit, after POSTROUTING).

What is modelled of time. Every token bucket (tbf, an htb class's rate and
ceil, a policer) fills on the box's simulated clock, and every queue holds
the packets whose computed departure lies in the future. At enqueue the
packet gets its verdict as the kernel gives it at that moment (queue full:
dropped; policer out of tokens: its exceed action), and the time the shaper
lets it leave is computed from the tokens: now (sent at once) or later
(delayed by shaping, held in the queue until then). The walk goes on as if the
packet left: kptui does not run a dequeue loop. Not modelled: the device's
own speed (it takes every packet at once, as veth does), the order in which
a backlog is drained (band priority, htb's prio and DRR quantum between
sibling classes: a class's delay is computed from its own and its ancestors'
tokens at enqueue, in arrival order), sfq/fq_codel's flow fairness and
codel's drops (they are FIFOs with their limits), peakrate, GSO.

Counters follow `tc -s`: a qdisc or class counts a packet it accepted (sent
or still in its backlog: ``packets``) or dropped (``drops``), as `tc -s
qdisc/class show` report them after the packets (Sent + backlog, dropped).
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kptui.engine.errors import UnsupportedError
from kptui.engine.events import (
    Event,
    Note,
    QosAction,
    QosClassify,
    QosEnqueue,
    QosFilter,
)
from kptui.engine.packet import format_classid

if TYPE_CHECKING:
    from kptui.engine.packet import Packet

ETH_HLEN = 14  # qdisc_pkt_len at egress counts the Ethernet header (veth, ifb, lo)
TC_H_ROOT = 0xFFFFFFFF
TC_H_INGRESS = 0xFFFFFFF1
INGRESS_HANDLE = 0xFFFF0000
BLOCK_INGRESS = "ingress"  # ffff:fff2 (TC_H_MIN_INGRESS)
BLOCK_EGRESS = "egress"  # ffff:fff3 (TC_H_MIN_EGRESS)
AUTO_HANDLE = 0x8000  # qdisc_alloc_handle: automatic majors count from 8001:
# net/sched/sch_generic.c sch_default_prio2band, also prio's default priomap (tc-prio(8))
PRIO2BAND = (1, 2, 2, 2, 1, 2, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)
TC_PRIO_MAX = 15
MAX_RECLASSIFY_LOOP = 16  # net/sched/cls_api.c __tcf_classify (4 before Linux 5.13)
POLICE_MTU = 2040  # tc m_police: no mtu given -> 255 << cell_log (3 for the default 2047)
# dev->tx_queue_len: ifb's TX_Q_LIMIT, linuximq's 2.4 imq.c (classic-2.4); veth, lo and
# others 1000
TXQUEUELEN = {"ifb": 32, "imq": 30}
DEFAULT_TXQUEUELEN = 1000
DEFAULT_MTU = 1500
# Leaves that queue packets (what a class's or tbf's child can be).
LEAF_KINDS = ("pfifo", "bfifo", "pfifo_fast", "sfq", "fq_codel")
CLASSFUL = ("htb", "prio", "tbf")

# tc action control words -> the TC_ACT_* the kernel returns (include/uapi/linux/pkt_cls.h)
OK, RECLASSIFY, SHOT, PIPE, STOLEN, UNSPEC = "ok", "reclassify", "drop", "pipe", "stolen", \
    "continue"
CONTROL_WORDS = {"ok": OK, "pass": OK, "reclassify": RECLASSIFY, "drop": SHOT, "shot": SHOT,
                 "pipe": PIPE, "continue": UNSPEC, "stolen": STOLEN}


@dataclass(slots=True)
class Stats:
    """`tc -s` counters: packets accepted (Sent + backlog) and dropped."""

    packets: int = 0
    bytes: int = 0  # noqa: A003
    drops: int = 0
    overlimits: int = 0


@dataclass(slots=True)
class Bucket:
    """A token bucket in bytes: ``size`` deep, filling at ``rate`` bytes/s from ``t_c``."""

    rate: float
    size: float
    tokens: float
    t_c: float = 0.0

    def at(self, now: float) -> float:
        """The tokens at ``now`` (the bucket never holds more than its size)."""
        return min(self.size, self.tokens + self.rate * max(0.0, now - self.t_c))

    def when(self, need: float, start: float) -> float:
        """The first time >= ``start`` with at least ``need`` tokens."""
        have = self.at(start)
        if have >= need:
            return start
        if self.rate <= 0:
            return math.inf
        return start + (need - have) / self.rate

    def take(self, amount: float, now: float) -> None:
        self.tokens = self.at(now) - amount
        self.t_c = max(now, self.t_c)


@dataclass(slots=True)
class Police:
    """act_police: rate/burst bucket; conform and exceed actions (tc-police(8))."""

    rate: float  # bytes/s
    burst: float  # bytes
    mtu: int = POLICE_MTU
    exceed: str = RECLASSIFY  # tc-police(8): the default exceed action is reclassify
    conform: str = OK
    bucket: Bucket | None = None
    stats: Stats = field(default_factory=Stats)
    kind: str = "police"

    def text(self) -> str:
        return (f"police rate {rate_text(self.rate)} burst {self.burst:g}b mtu {self.mtu}b "
                f"conform-exceed {self.exceed}/{self.conform}")


@dataclass(slots=True)
class Mirred:
    """act_mirred: `egress redirect dev X` (only redirect to an ifb device is modelled)."""

    direction: str
    how: str
    dev: str
    kind: str = "mirred"

    def text(self) -> str:
        return f"mirred {self.direction} {self.how} dev {self.dev}"


@dataclass(slots=True)
class Gact:
    """act_gact: a fixed verdict (`action drop`, `action pass`, ...)."""

    verdict: str
    kind: str = "gact"

    def text(self) -> str:
        return f"gact {self.verdict}"


Action = Police | Mirred | Gact


@dataclass(slots=True)
class Filter:
    """One filter of a block: kind, prio, protocol, what it matches, classid, actions."""

    block: Any  # qdisc handle, classid, BLOCK_INGRESS or BLOCK_EGRESS
    prio: int
    protocol: str  # "ip" or "all" match IPv4 packets
    kind: str  # u32 | fw | matchall | basic
    handle: int = 0
    classid: int | None = None
    keys: list[tuple[int, int, int]] = field(default_factory=list)  # u32: (off, val, mask)
    mask: int = 0xFFFFFFFF  # fw
    actions: list[Action] = field(default_factory=list)
    text: str = ""
    line: int = 0

    def handle_text(self) -> str:
        if self.kind == "u32":
            return f"800::{0x800 + self.handle:x}"
        if self.kind == "fw":
            return f"0x{self.handle:x}" + (f"/0x{self.mask:x}" if self.mask != 0xFFFFFFFF
                                           else "") if self.handle else "(old method)"
        return f"0x{self.handle or 1:x}"


@dataclass(slots=True)
class Qdisc:
    """A queueing discipline on a device; leaves hold (departure, bytes) of queued packets."""

    kind: str
    handle: int
    parent: int
    opts: dict[str, Any] = field(default_factory=dict)
    stats: Stats = field(default_factory=Stats)
    queue: list[tuple[float, int]] = field(default_factory=list)
    bucket: Bucket | None = None  # tbf
    child: Qdisc | None = None  # tbf's inner qdisc (class 1:1)
    bands: list[Qdisc] = field(default_factory=list)  # prio's band qdiscs

    @property
    def name(self) -> str:
        if not self.handle:  # created by the kernel with an automatic handle
            return f"{self.kind} ({self.opts.get('of', 'internal')})"
        return f"{self.kind} {format_classid(self.handle)}"

    def backlog(self, now: float) -> tuple[int, int]:
        """(packets, bytes) still queued at ``now``; those that left are forgotten."""
        self.queue = [(d, n) for d, n in self.queue if d > now]
        return len(self.queue), sum(n for _d, n in self.queue)

    def last_departure(self) -> float:
        return max((d for d, _n in self.queue), default=0.0)


@dataclass(slots=True)
class TcClass:
    """An htb class: rate/ceil buckets, its parent and its leaf qdisc."""

    classid: int
    parent: int  # a classid, or the qdisc handle for a root class
    rate: Bucket
    ceil: Bucket
    prio: int = 0
    quantum: int = 0
    leaf: Qdisc | None = None
    stats: Stats = field(default_factory=Stats)
    text: str = ""


@dataclass(slots=True)
class DevTc:
    """Everything tc has on one device."""

    name: str
    txqueuelen: int = DEFAULT_TXQUEUELEN
    mtu: int = DEFAULT_MTU
    root: Qdisc | None = None
    ingress: Qdisc | None = None  # ingress or clsact
    classes: dict[int, TcClass] = field(default_factory=dict)
    filters: dict[Any, list[Filter]] = field(default_factory=dict)
    next_auto: int = 0x8001

    def qdiscs(self) -> Iterator[Qdisc]:
        """Every qdisc of the device (root tree, then ingress)."""
        seen: list[Qdisc] = []

        def visit(q: Qdisc | None) -> None:
            if q is None or any(q is s for s in seen):
                return
            seen.append(q)
            visit(q.child)
            for band in q.bands:
                visit(band)

        visit(self.root)
        for cl in self.classes.values():
            visit(cl.leaf)
        visit(self.ingress)
        return iter(seen)

    def qdisc(self, handle: int) -> Qdisc | None:
        return next((q for q in self.qdiscs() if q.handle == handle), None)

    def children(self, classid: int) -> list[TcClass]:
        return [c for c in self.classes.values() if c.parent == classid]

    def is_leaf(self, cl: TcClass) -> bool:
        return not self.children(cl.classid)

    def level(self, cl: TcClass) -> int:
        """0 for a leaf; an inner class is above all its descendants."""
        kids = self.children(cl.classid)
        return 1 + max(self.level(k) for k in kids) if kids else 0

    def ancestors(self, cl: TcClass) -> list[TcClass]:
        """``cl`` and its parent classes, leaf first."""
        out = [cl]
        while out[-1].parent in self.classes:
            out.append(self.classes[out[-1].parent])
        return out


@dataclass(slots=True)
class TcState:
    """The tc configuration and state of the box, per device (``box.tc``)."""

    devs: dict[str, DevTc] = field(default_factory=dict)
    link_kinds: dict[str, str] = field(default_factory=dict)  # name -> "ifb", ...

    def dev(self, name: str) -> DevTc:
        if name not in self.devs:
            kind = self.link_kinds.get(name, "")
            self.devs[name] = DevTc(name, TXQUEUELEN.get(kind, DEFAULT_TXQUEUELEN))
        return self.devs[name]

    def configured(self, name: str) -> bool:
        d = self.devs.get(name)
        return d is not None and (d.root is not None or d.ingress is not None)

    def counters(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(dev, "qdisc H:" | "class X:Y") -> (packets, drops), as verify compares them.

        Qdiscs with an automatic handle (8001: and up) and htb classes with
        children (whose Sent counts only at dequeue) are left out.
        """
        out: dict[tuple[str, str], tuple[int, int]] = {}
        for name, d in self.devs.items():
            for q in d.qdiscs():
                if 0 < q.handle >> 16 < AUTO_HANDLE or q.handle == INGRESS_HANDLE:
                    out[(name, f"qdisc {format_classid(q.handle)}")] = (q.stats.packets,
                                                                       q.stats.drops)
            for cl in d.classes.values():
                if d.is_leaf(cl):
                    out[(name, f"class {format_classid(cl.classid)}")] = (cl.stats.packets,
                                                                         cl.stats.drops)
        return out


def default_leaf(dev: DevTc, classid: int) -> Qdisc:
    """The pfifo htb gives a new leaf class (qdisc_create_dflt; limit tx_queue_len)."""
    return Qdisc("pfifo", 0, classid, {"limit": max(dev.txqueuelen, 1),
                                       "of": f"leaf of {format_classid(classid)}"})


# -- units (tc(8)) ------------------------------------------------------------------------

def rate_text(rate: float) -> str:
    """Bytes/s as tc prints a rate (bits)."""
    bits = rate * 8
    for unit, size in (("Gbit", 1e9), ("Mbit", 1e6), ("Kbit", 1e3)):
        if bits >= size:
            return f"{bits / size:g}{unit}"
    return f"{bits:g}bit"


# -- filters ------------------------------------------------------------------------------

@dataclass(slots=True)
class Result:
    """What tcf_classify gave: a TC_ACT code, the filter's classid, and who decided."""

    code: str  # OK (classified), SHOT, STOLEN, or "" (no filter matched)
    classid: int | None = None
    filt: Filter | None = None
    redirect: str = ""  # mirred's device for STOLEN
    by: str = ""  # qos:police | qos:drop for SHOT


def filter_matches(f: Filter, pkt: Packet, data: bytes) -> tuple[bool, str]:
    """Whether ``f`` matches (its classifier only, before actions) and why not."""
    if f.protocol not in ("ip", "all"):
        return False, f"protocol {f.protocol} (the packet is IPv4)"
    if f.kind in ("matchall", "basic"):
        return True, ""
    if f.kind == "fw":
        mark = pkt.meta.mark
        if not f.handle:  # fw_classify's "old method": the mark is the classid
            return (mark != 0, "mark 0" if mark == 0 else "")
        got = mark & f.mask
        return (got == f.handle, f"mark 0x{mark:x} & 0x{f.mask:x} = 0x{got:x} != "
                                 f"0x{f.handle:x}")
    for off, val, mask in f.keys:  # u32_classify: (word at off ^ val) & mask == 0
        word = data[off:off + 4]
        if len(word) < 4:
            return False, f"offset {off} is past the packet's end"
        have = int.from_bytes(word, "big")
        if (have ^ val) & mask:
            return False, f"{have & mask:08x}/{mask:08x} at {off} is not {val:08x}"
    return True, ""


def fw_old_classid(f: Filter, pkt: Packet, qdisc_handle: int) -> int | None:
    """fw with no handles: the mark is the classid if its major is 0 or the qdisc's."""
    mark = pkt.meta.mark
    if mark and ((mark >> 16) == 0 or (mark >> 16) == (qdisc_handle >> 16)):
        return mark
    return None


class Classifier:
    """tcf_classify over one block, with actions, yielding a QosFilter per filter tried."""

    def __init__(self, state: TcState, dev: DevTc, pkt: Packet, length: int, now: float,
                 stage: str) -> None:
        self.state, self.dev, self.pkt, self.length = state, dev, pkt, length
        self.now, self.stage = now, stage

    def run(self, block: Any, owner_handle: int) -> Generator[Event, None, Result]:
        filters = sorted(self.dev.filters.get(block, []), key=lambda f: f.prio)
        label = block if isinstance(block, str) else format_classid(block)
        loops = 0
        while True:
            restart = False
            for f in filters:
                # the bytes as they are now: a debugger edit between two filters counts
                matched, why = filter_matches(f, self.pkt, self.pkt.to_bytes())
                classid = f.classid
                if matched and f.kind == "fw" and not f.handle:
                    classid = fw_old_classid(f, self.pkt, owner_handle)
                    if classid is None:
                        matched, why = False, (f"mark 0x{self.pkt.meta.mark:x}: its major is "
                                               "neither 0 nor the qdisc's")
                yield QosFilter(stage=self.stage, hook="", dev=self.dev.name, block=label,
                                prio=f.prio, handle=f.handle_text(), filter=f.kind,
                                matched=matched, classid=format_classid(classid)
                                if classid is not None else "", text=f.text, reason=why)
                if not matched:
                    continue
                code, redirect, by = yield from self.actions(f)
                if code == UNSPEC:
                    continue  # tcf_exts_exec < 0: as if the filter did not match
                if code == RECLASSIFY:
                    restart = True
                    break
                if code == SHOT:
                    return Result(SHOT, classid, f, by=by)
                if code == STOLEN:
                    return Result(STOLEN, classid, f, redirect=redirect)
                return Result(OK, classid, f)
            if not restart:
                return Result("")
            loops += 1
            if loops > MAX_RECLASSIFY_LOOP:  # __tcf_classify: "reclassify loop" -> SHOT
                yield Note(stage=self.stage, hook="",
                           text=f"reclassify loop on {self.dev.name}: after "
                                f"{MAX_RECLASSIFY_LOOP} restarts the kernel drops the "
                                "packet (__tcf_classify, TC_ACT_SHOT)")
                return Result(SHOT, None, None, by="qos:police")

    def actions(self, f: Filter) -> Generator[Event, None, tuple[str, str, str]]:
        """tcf_action_exec: run the actions in order; PIPE goes on, anything else ends."""
        code, redirect, by = OK, "", ""
        for act in f.actions:
            if isinstance(act, Police):
                code = yield from self.police(act)
                by = "qos:police"
            elif isinstance(act, Mirred):
                if act.how != "redirect" or act.direction != "egress":
                    raise UnsupportedError(f"tc action mirred {act.direction} {act.how}")
                if self.state.link_kinds.get(act.dev) != "ifb":
                    raise UnsupportedError(f"mirred redirect to {act.dev} (only ifb devices "
                                           "are modelled)")
                code, redirect = STOLEN, act.dev
                yield QosAction(stage=self.stage, hook="", dev=self.dev.name, action="mirred",
                                result="redirect", detail=f"redirected to {act.dev}'s egress "
                                "qdisc (TC_ACT_STOLEN)")
            else:
                code, by = act.verdict, "qos:drop"
                yield QosAction(stage=self.stage, hook="", dev=self.dev.name, action="gact",
                                result=act.verdict, detail=act.text())
            if code != PIPE:
                return code, redirect, by
        return (OK if code == PIPE else code), redirect, by

    def police(self, p: Police) -> Generator[Event, None, str]:
        """tcf_police_act: conform when the bucket holds the packet, else exceed."""
        if p.bucket is None:
            p.bucket = Bucket(p.rate, p.burst, p.burst)
        have = p.bucket.at(self.now)
        if self.length <= p.mtu and have >= self.length:
            p.bucket.take(self.length, self.now)
            verdict, code = "conform", p.conform
            p.stats.packets += 1
        else:
            verdict, code = "exceed", p.exceed
            p.stats.overlimits += 1
            if code == SHOT:
                p.stats.drops += 1
        why = (f"{self.length} bytes > mtu {p.mtu}" if self.length > p.mtu else
               f"{have:.0f} tokens (bytes) for {self.length} bytes")
        yield QosAction(stage=self.stage, hook="", dev=self.dev.name, action="police",
                        result=code, detail=f"{verdict}: {why}; {p.text()}",
                        tokens=f"{have:.0f}/{p.burst:g}")
        return code


# -- enqueue ------------------------------------------------------------------------------

@dataclass(slots=True)
class Verdict:
    """The outcome of tc for one packet at one stage."""

    action: str  # "pass" | "drop" | "redirect"
    by: str = ""
    message: str = ""
    delay: float = 0.0
    redirect: str = ""


class Enqueue:
    """A root qdisc's enqueue: classification down to a leaf, its limit, then the shapers."""

    def __init__(self, state: TcState, dev: DevTc, pkt: Packet, length: int, now: float,
                 stage: str) -> None:
        self.state, self.dev, self.pkt, self.length = state, dev, pkt, length
        self.now, self.stage = now, stage
        self.path: list[Qdisc | TcClass] = []  # every qdisc/class the packet is counted in

    def event(self, **kw: Any) -> QosEnqueue:
        return QosEnqueue(stage=self.stage, hook="", dev=self.dev.name, length=self.length, **kw)

    def classify_event(self, q: Qdisc, target: str, how: str, band: int = -1,
                       detail: str = "") -> QosClassify:
        return QosClassify(stage=self.stage, hook="", dev=self.dev.name, qdisc=q.name,
                           target=target, how=how, band=band, detail=detail)

    def run(self, root: Qdisc) -> Generator[Event, None, Verdict]:
        leaf_or_drop = yield from self.descend(root)
        if isinstance(leaf_or_drop, Verdict):
            return leaf_or_drop
        leaf, shapers = leaf_or_drop
        return (yield from self.put(leaf, shapers))

    def descend(self, q: Qdisc) -> Generator[Event, None, Any]:
        """From ``q`` down to the leaf queue: (leaf, shapers) or a drop Verdict."""
        shapers: list[Any] = []
        while True:
            self.path.append(q)
            if q.kind in LEAF_KINDS:
                if q.kind == "pfifo_fast":
                    prio = self.pkt.meta.priority
                    band = PRIO2BAND[prio & TC_PRIO_MAX]
                    yield self.classify_event(q, f"band {band}", "priomap", band,
                                              f"skb->priority {prio} & 15 -> band {band} of 3 "
                                              "(band 0 is dequeued first)")
                return q, shapers
            if q.kind == "tbf":
                if self.length > q.opts["max_size"]:
                    return (yield from self.drop(f"{self.length} bytes are more than tbf's "
                                                 f"bucket ({q.opts['max_size']} bytes): "
                                                 "tbf_enqueue drops it"))
                shapers.append(q)
                assert q.child is not None
                q = q.child
                continue
            if q.kind == "prio":
                got = yield from self.prio_band(q)
                if isinstance(got, Verdict):
                    return got
                q = got
                continue
            if q.kind == "htb":
                got = yield from self.htb_class(q)
                if isinstance(got, Verdict):
                    return got
                if isinstance(got, Qdisc):  # the direct queue
                    return got, shapers
                for cl in reversed(self.dev.ancestors(got)):
                    self.path.append(cl)
                shapers.append(got)
                if got.leaf is None:
                    got.leaf = default_leaf(self.dev, got.classid)
                q = got.leaf
                continue
            raise UnsupportedError(f"qdisc {q.kind} as a parent")

    def drop(self, reason: str, by: str = "qos:queue-full") -> Generator[Event, None, Verdict]:
        for node in self.path:
            node.stats.drops += 1
        yield self.event(qdisc=self.path[-1].name if isinstance(self.path[-1], Qdisc) else
                         f"class {format_classid(self.path[-1].classid)}",
                         verdict="dropped", reason=reason,
                         counters=self.counted("drops"))
        return Verdict("drop", by=by, message=reason)

    def counted(self, what: str) -> list[str]:
        out = []
        for node in self.path:
            if isinstance(node, Qdisc):
                if 0 < node.handle >> 16 < AUTO_HANDLE:
                    out.append(f"qdisc {format_classid(node.handle)} {what}")
            elif self.dev.is_leaf(node):
                out.append(f"class {format_classid(node.classid)} {what}")
        return out

    def filters(self, q: Qdisc, block: int) -> Generator[Event, None, Result]:
        return (yield from Classifier(self.state, self.dev, self.pkt, self.length, self.now,
                                      self.stage).run(block, q.handle))

    def shot(self, res: Result, q: Qdisc) -> Generator[Event, None, Verdict]:
        """A filter's action said TC_ACT_SHOT: the classifying qdisc counts the drop, and
        so do the qdiscs above it whose child reported it (net_xmit_drop_count)."""
        why = ("a policer's exceed action dropped it" if res.by == "qos:police" else
               "a filter's action dropped it")
        counted = []
        for node in self.path:
            if isinstance(node, Qdisc):
                node.stats.drops += 1
                if 0 < node.handle >> 16 < AUTO_HANDLE:
                    counted.append(f"qdisc {format_classid(node.handle)} drops")
        yield self.event(qdisc=q.name, verdict="dropped", reason=why, counters=counted)
        return Verdict("drop", by=res.by or "qos:drop", message=why)

    def prio_band(self, q: Qdisc) -> Generator[Event, None, Qdisc | Verdict]:
        """prio_classify (sch_prio.c)."""
        prio = self.pkt.meta.priority
        bands: int = q.opts["bands"]
        priomap: tuple[int, ...] = q.opts["priomap"]
        if (prio >> 16) == (q.handle >> 16):
            band, how = (prio & 0xFFFF) - 1, "priority"
        else:
            res = yield from self.filters(q, q.handle)
            if res.code == SHOT:
                return (yield from self.shot(res, q))
            if res.code == STOLEN:
                raise UnsupportedError("mirred redirect from a prio qdisc's filter")
            if res.code != OK or res.classid is None:
                p = 0 if prio >> 16 else prio
                band = priomap[p & TC_PRIO_MAX]
                yield self.classify_event(q, f"{format_classid(q.handle + band + 1)}",
                                          "priomap", band, f"no filter classified it: "
                                          f"priority {prio} -> band {band}")
                return q.bands[band]
            band, how = (res.classid & 0xFFFF) - 1, "filter"
        if not 0 <= band < bands:
            band, how = priomap[0], "priomap"
        yield self.classify_event(q, format_classid(q.handle + band + 1), how, band)
        return q.bands[band]

    def htb_class(self, q: Qdisc) -> Generator[Event, None, TcClass | Qdisc | Verdict]:
        """htb_classify (sch_htb.c): priority, filters (inner chains), default, direct."""
        dev, prio = self.dev, self.pkt.meta.priority
        direct: Qdisc = q.opts["direct"]
        if prio == q.handle:
            yield self.classify_event(q, "direct", "priority", detail=f"skb->priority "
                                      f"{format_classid(prio)} is the qdisc's handle: the "
                                      "direct queue (unshaped)")
            return direct
        cl = dev.classes.get(prio) if prio else None
        if cl is not None and dev.is_leaf(cl):
            yield self.classify_event(q, format_classid(cl.classid), "priority",
                                      detail=f"skb->priority {format_classid(prio)} is a leaf "
                                             "class (set by CLASSIFY or SO_PRIORITY)")
            return cl
        block: int = cl.classid if cl is not None else q.handle
        while dev.filters.get(block):
            res = yield from self.filters(q, block)
            if res.code == SHOT:
                return (yield from self.shot(res, q))
            if res.code == STOLEN:
                raise UnsupportedError("mirred redirect from an htb filter")
            if res.code != OK:
                break
            if res.classid == q.handle:
                yield self.classify_event(q, "direct", "filter", detail="the filter gave "
                                          f"{format_classid(q.handle)}: the direct queue")
                return direct
            found = dev.classes.get(res.classid or 0)
            if found is None:
                yield Note(stage=self.stage, hook="", text=f"the filter gave class "
                           f"{format_classid(res.classid or 0)}, which does not exist on "
                           f"{dev.name}: classification failed (htb_classify)")
                break
            if dev.is_leaf(found):
                yield self.classify_event(q, format_classid(found.classid), "filter",
                                          detail=f"{res.filt.kind if res.filt else ''} filter "
                                                 f"prio {res.filt.prio if res.filt else ''}")
                return found
            yield Note(stage=self.stage, hook="", text=f"class {format_classid(found.classid)} "
                       "is an inner class: its own filters are applied")
            block = found.classid
        default = q.opts.get("default", 0)
        cl = dev.classes.get((q.handle & 0xFFFF0000) | default) if default else None
        if cl is None or not dev.is_leaf(cl):
            why = ("no default class" if not default else
                   f"default class {format_classid((q.handle & 0xFFFF0000) | default)} "
                   + ("is not a leaf" if cl is not None else "does not exist"))
            yield self.classify_event(q, "direct", "direct", detail=f"unclassified and {why}: "
                                      "the direct queue (unshaped, direct_qlen "
                                      f"{direct.opts['limit']})")
            return direct
        yield self.classify_event(q, format_classid(cl.classid), "default",
                                  detail=f"unclassified: the default class (default "
                                         f"{default:x})")
        return cl

    def put(self, leaf: Qdisc, shapers: list[Any]) -> Generator[Event, None, Verdict]:
        """The leaf's limit at ``now``, then the departure time the shapers allow."""
        now, length = self.now, self.length
        qlen, backlog = leaf.backlog(now)
        limit_text = self.limit_text(leaf)
        full = self.full(leaf, qlen, backlog)
        if full:
            return (yield from self.drop(f"{leaf.name} is full: {full}"))
        depart = max(now, leaf.last_departure())
        for _pass in range(2):
            for s in shapers:
                depart = max(depart, self.ready(s, depart))
        before = [self.tokens_text(s, depart) for s in shapers]
        lenders = [self.charge(s, depart) for s in shapers]
        tokens = "; ".join(f"{b} -> {self.tokens_text(s, depart, short=True)}"
                           + (f", borrowed from {lender}" if lender else "")
                           for b, s, lender in zip(before, shapers, lenders, strict=True))
        leaf.queue.append((depart, length))
        for node in self.path:
            node.stats.packets += 1
            node.stats.bytes += length
        qlen, backlog = leaf.backlog(now)
        delay = depart - now
        verdict = "delayed" if delay > 0 else "sent"
        reason = (f"held {delay:.3f} s by shaping until the tokens suffice" if delay > 0
                  else "sent at once")
        yield self.event(qdisc=leaf.name, verdict=verdict, reason=reason, backlog=qlen,
                         backlog_bytes=backlog, limit=limit_text, tokens=tokens, delay=delay,
                         counters=self.counted("packets"))
        return Verdict("pass", delay=delay)

    def full(self, leaf: Qdisc, qlen: int, backlog: int) -> str:
        limit = leaf.opts.get("limit", self.dev.txqueuelen)
        if leaf.kind == "bfifo":
            if backlog + self.length > limit:
                return f"backlog {backlog} + {self.length} bytes > limit {limit} bytes"
            return ""
        if qlen >= limit:
            return f"{qlen} packets queued, limit {limit}"
        return ""

    def limit_text(self, leaf: Qdisc) -> str:
        unit = "b" if leaf.kind == "bfifo" else "p"
        return f"{leaf.opts.get('limit', self.dev.txqueuelen)}{unit}"

    def ready(self, s: Any, start: float) -> float:
        """When shaper ``s`` lets a packet of this length go, at ``start`` or later."""
        if isinstance(s, Qdisc):  # tbf: needs the packet's size in tokens
            assert s.bucket is not None
            return s.bucket.when(self.length, start)
        return self.htb_ready(s, start)

    def htb_ready(self, cl: TcClass, start: float) -> float:
        """htb_class_mode: a class may send with rate tokens >= 0 (CAN_SEND), or with ceil
        tokens >= 0 when its parent may send (MAY_BORROW); below that it waits."""
        own = cl.rate.when(0.0, start)
        ceil = cl.ceil.when(0.0, start)
        parent = self.dev.classes.get(cl.parent)
        lend = self.htb_ready(parent, start) if parent is not None else math.inf
        return max(ceil, min(own, lend))

    def charge(self, s: Any, when: float) -> str:
        """htb_charge_class / tbf: the packet's bytes leave the buckets that let it go.

        htb charges rate tokens from the class that could send (the leaf, or the
        ancestor it borrowed from) up, ceil tokens everywhere; returns the lender
        when it is not the leaf itself."""
        if isinstance(s, Qdisc):
            assert s.bucket is not None
            s.bucket.take(self.length, when)
            return ""
        lender_found = False
        lender = ""
        for cl in self.dev.ancestors(s):
            if not lender_found and cl.rate.at(when) >= 0:
                lender_found = True
                lender = format_classid(cl.classid) if cl is not s else ""
            if lender_found:
                cl.rate.take(self.length, when)
            else:
                cl.rate.take(0.0, when)
            cl.ceil.take(self.length, when)
        return lender

    def tokens_text(self, s: Any, when: float, short: bool = False) -> str:
        if isinstance(s, Qdisc):
            assert s.bucket is not None
            head = "" if short else "tbf "
            return f"{head}{s.bucket.at(when):.0f}/{s.bucket.size:g}"
        head = "" if short else f"class {format_classid(s.classid)} "
        return f"{head}{s.rate.at(when):.0f}/{s.rate.size:g} " \
               f"(ceil {s.ceil.at(when):.0f}/{s.ceil.size:g})"


# -- the two stages -----------------------------------------------------------------------

def ingress(state: TcState, pkt: Packet, now: float, stage: str
            ) -> Generator[Event, None, Verdict]:
    """sch_handle_ingress on the arrival device; a redirect to ifb runs ifb's root qdisc."""
    dev = state.devs.get(pkt.meta.iif)
    if dev is None or dev.ingress is None or not dev.filters.get(BLOCK_INGRESS):
        return Verdict("pass")
    length = pkt.length  # at ingress skb->len starts at the IP header
    q = dev.ingress
    q.stats.packets += 1
    q.stats.bytes += length
    res = yield from Classifier(state, dev, pkt, length, now, stage).run(BLOCK_INGRESS,
                                                                         q.handle)
    if res.code == SHOT:
        q.stats.drops += 1
        why = ("a policer's exceed action dropped it" if res.by == "qos:police"
               else "a filter's action dropped it")
        yield QosEnqueue(stage=stage, hook="", dev=dev.name, qdisc=q.name, verdict="dropped",
                         reason=f"{why} (TC_ACT_SHOT) before ip_rcv: no netfilter hook and "
                                "no conntrack entry", length=length,
                         counters=[f"qdisc {format_classid(q.handle)} packets",
                                   f"qdisc {format_classid(q.handle)} drops"])
        return Verdict("drop", by=res.by or "qos:drop", message=why + " at tc ingress")
    counters = [f"qdisc {format_classid(q.handle)} packets"]
    if res.code == STOLEN:
        yield QosEnqueue(stage=stage, hook="", dev=dev.name, qdisc=q.name, verdict="redirected",
                         reason=f"to {res.redirect}'s root qdisc", length=length,
                         counters=counters)
        target = state.dev(res.redirect)
        if target.root is None:
            return Verdict("pass", redirect=res.redirect)
        verdict = yield from Enqueue(state, target, pkt, length + ETH_HLEN, now,
                                     stage).run(target.root)
        verdict.redirect = res.redirect
        return verdict
    yield QosEnqueue(stage=stage, hook="", dev=dev.name, qdisc=q.name, verdict="passed",
                     reason="no filter action stopped it", length=length, counters=counters)
    return Verdict("pass")


def imq(state: TcState, pkt: Packet, now: float, stage: str, device: str
        ) -> Generator[Event, None, Verdict]:
    """The classic-2.4 IMQ hook: imqN's root qdisc takes the packet as its egress does.

    The imq hooks run at the IP layer, so the qdisc sees the IP packet without a
    link-layer header (an imq device has none). Without a qdisc of its own the device
    has the default one, which lets every packet through.
    """
    dev = state.devs.get(device)
    if dev is None or dev.root is None:
        return Verdict("pass")
    return (yield from Enqueue(state, dev, pkt, pkt.length, now, stage).run(dev.root))


def egress(state: TcState, pkt: Packet, now: float, stage: str
           ) -> Generator[Event, None, Verdict]:
    """sch_handle_egress (clsact) then the root qdisc's enqueue on the output device."""
    dev = state.devs.get(pkt.meta.oif)
    if dev is None:
        return Verdict("pass")
    length = pkt.length + ETH_HLEN
    q = dev.ingress
    if q is not None and q.kind == "clsact" and dev.filters.get(BLOCK_EGRESS):
        q.stats.packets += 1
        q.stats.bytes += length
        res = yield from Classifier(state, dev, pkt, length, now, stage).run(BLOCK_EGRESS,
                                                                             q.handle)
        if res.code == SHOT:
            q.stats.drops += 1
            yield QosEnqueue(stage=stage, hook="", dev=dev.name, qdisc=q.name,
                             verdict="dropped", reason="clsact egress: TC_ACT_SHOT",
                             length=length,
                             counters=[f"qdisc {format_classid(q.handle)} packets",
                                       f"qdisc {format_classid(q.handle)} drops"])
            return Verdict("drop", by=res.by or "qos:drop", message="dropped at clsact egress")
        if res.code == STOLEN:
            raise UnsupportedError("mirred redirect at clsact egress")
        yield QosEnqueue(stage=stage, hook="", dev=dev.name, qdisc=q.name, verdict="passed",
                         reason="clsact egress: no filter action stopped it", length=length,
                         counters=[f"qdisc {format_classid(q.handle)} packets"])
    if dev.root is None:
        return Verdict("pass")
    return (yield from Enqueue(state, dev, pkt, length, now, stage).run(dev.root))
