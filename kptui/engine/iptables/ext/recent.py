"""-m recent (libxt_recent 1.8.9, revision 1; xt_recent.c): lists of addresses seen.

The kernel keeps one list per ``--name`` in the netns, shared by every rule
naming it; its address mask is the one of the rule that created it (the first
of the ruleset here: a later rule's ``--mask`` does not change it). An entry is
the masked address, the TTL of its last ``--set``/``--update`` and a ring of the
jiffies it was seen at: 32 stamps, or the next power of two above the largest
``--hitcount`` of the rules naming the list (xt_recent's nstamps_max_mask, with
the ip_pkt_list_tot parameter at its default 0). A list holds 100 addresses
(ip_list_tot) and forgets the least recently updated first.

recent_mt, as the kernel runs it: the packet's source (``--rdest``: destination)
address, masked, is looked up (``--rttl``: only an entry with the same TTL, or
one of them 0; at a hook with an output device, forwarded packets have their TTL
counted before ip_forward lowered it). Not found: ``--set`` adds it and matches,
the others do not match. Found: ``--set`` matches (and stamps); ``--remove``
deletes it and matches; ``--rcheck``/``--update`` match when at least
``--hitcount`` stamps (one, without it) are within ``--seconds`` (any, without
it), ``--reap`` then drops the least recently updated entry of the list if its
newest stamp is older than that; ``--update`` stamps when the rule's result
(after ``!``) is a match. ``!`` inverts the result.

Time is counted in jiffies (HZ 250) of the box's clock. Not modelled: the
/proc/net/xt_recent files (writing addresses to a list).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from kptui.engine.iptables.ext._kernel import (
    HZ,
    c_int,
    check_proc_name,
    jiffies,
    kernel_refuses,
    shared,
    truncate,
)
from kptui.engine.iptables.values import BadValue, ip_text
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch

_OPS = ("set", "rcheck", "update", "remove")
IP_LIST_TOT = 100  # entries per list
XT_RECENT_MAX_NSTAMPS = 65536
NAME_SIZE = 200  # XT_RECENT_NAME_LEN


@dataclass(slots=True, eq=False)
class RecentEntry:
    """struct recent_entry: the masked address, TTL and the ring of stamps."""

    addr: int
    ttl: int
    stamps: list[int]
    index: int = 1
    nstamps: int = 1


@dataclass(eq=False)
class RecentTable:
    """struct recent_table: one named list; ``entries`` in LRU order (oldest first)."""

    name: str
    mask: int
    nstamps_mask: int
    entries: OrderedDict[int, RecentEntry] = field(default_factory=OrderedDict)

    def lookup(self, addr: int, ttl: int) -> RecentEntry | None:
        e = self.entries.get(addr)
        if e is not None and (ttl == e.ttl or ttl == 0 or e.ttl == 0):
            return e
        return None

    def init(self, addr: int, ttl: int, now: int) -> RecentEntry:
        if len(self.entries) >= IP_LIST_TOT:
            self.entries.popitem(last=False)
        e = RecentEntry(addr, ttl, [now] + [0] * self.nstamps_mask)
        self.entries[addr] = e
        return e

    def update(self, e: RecentEntry, now: int) -> None:
        e.index &= self.nstamps_mask
        e.stamps[e.index] = now
        e.index += 1
        e.nstamps = max(e.nstamps, e.index)
        self.entries.move_to_end(e.addr)

    def remove(self, e: RecentEntry) -> None:
        del self.entries[e.addr]

    def reap(self, time: int, working: RecentEntry, update: bool) -> None:
        """recent_entry_reap: the least recently updated entry, if all its stamps are old."""
        if not self.entries:
            return
        oldest = next(iter(self.entries.values()))
        if oldest is working and update:
            return
        if time > oldest.stamps[oldest.index - 1]:
            self.remove(oldest)


def _nstamps_mask(hitcount: int) -> int:
    """recent_mt_check: roundup_pow_of_two(hit_count) - 1, or 31 without --hitcount."""
    return (1 << (hitcount - 1).bit_length()) - 1 if hitcount else 31


class RecentMatch(XtMatch):
    name = "recent"
    entries = (
        Entry("set", invert=True, excl=_OPS),
        Entry("rcheck", invert=True, excl=_OPS),
        Entry("update", invert=True, excl=_OPS),
        Entry("remove", invert=True, excl=_OPS),
        Entry("seconds", XT.UINT32, min=1),
        Entry("reap", also=("seconds",)),
        Entry("hitcount", XT.UINT32),
        Entry("rttl", excl=("set", "remove")),
        Entry("name", XT.STRING),
        Entry("rsource"),
        Entry("rdest"),
        Entry("mask", XT.HOST),
    )
    stateful = True
    state_attrs = ("shared",)

    def __init__(self) -> None:
        super().__init__()
        self.op = ""
        self.invert = False
        self.seconds = 0
        self.hitcount = 0
        self.reap = self.rttl = False
        self.list_name = "DEFAULT"
        self.dest = False
        self.mask = 0xFFFFFFFF
        self.shared: RecentTable | None = None

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        if name in _OPS:
            self.op = name
            self.invert = self.invert or inv
        elif name == "seconds":
            self.seconds = value
        elif name == "hitcount":
            self.hitcount = value
        elif name in ("reap", "rttl"):
            setattr(self, name, True)
        elif name == "name":
            self.list_name = truncate(value, NAME_SIZE)
        elif name in ("rsource", "rdest"):
            self.dest = name == "rdest"
        else:
            self.mask = value

    def finish(self) -> None:
        super().finish()
        self.kernel_check()  # then the kernel's checkentry

    def check(self) -> None:
        if not self.op:
            raise BadValue("recent: you must specify one of `--set', `--rcheck' `--update' "
                           "or `--remove'")

    def kernel_check(self) -> None:
        """recent_mt_check."""
        if self.op in ("set", "remove") and (self.seconds or self.hitcount or self.reap):
            raise kernel_refuses(f"recent: --{self.op} takes no --seconds, --hitcount or "
                                 "--reap")
        if self.hitcount >= XT_RECENT_MAX_NSTAMPS:
            raise kernel_refuses(f"recent: --hitcount {self.hitcount} is more than "
                                 f"{XT_RECENT_MAX_NSTAMPS - 1}")
        check_proc_name("recent", self.list_name)

    def save(self) -> str:
        out = ["!"] if self.invert else []
        out.append(f"--{self.op}")
        if self.seconds:
            out.append(f"--seconds {c_int(self.seconds)}")
        if self.reap:
            out.append("--reap")
        if self.hitcount:
            out.append(f"--hitcount {c_int(self.hitcount)}")
        if self.rttl:
            out.append("--rttl")
        out += [f"--name {self.list_name}", f"--mask {ip_text(self.mask)}",
                "--rdest" if self.dest else "--rsource"]
        return " ".join(out)

    def shared_key(self) -> str:
        return self.list_name

    def _table(self, ctx: Any) -> RecentTable:
        def make(peers: list[Any]) -> RecentTable:
            mask = max(_nstamps_mask(p.hitcount) for p in peers)
            return RecentTable(self.list_name, peers[0].mask, mask)
        return shared(ctx, self, self.list_name, make)

    def test(self, pkt: Any, ctx: Any) -> str | None:
        t = self._table(ctx)
        now = jiffies(ctx.now)
        addr = pkt.ip.dst if self.dest else pkt.ip.src
        key = int(addr) & t.mask
        ttl = pkt.ip.ttl
        if ctx.oif and pkt.meta.iif:  # forwarded: the TTL as seen before ip_forward
            ttl = (ttl + 1) & 0xFF
        where = f"{ip_text(key)} in list {t.name}"
        ret = self.invert
        e = t.lookup(key, ttl if self.rttl else 0)
        if e is None:
            if self.op != "set":
                why = f"{where}: not listed" + (f" with TTL {ttl}" if self.rttl else "")
                return None if ret else why
            t.init(key, ttl, now)
            return None if not ret else f"{where}: added, and the rule says !"
        why = ""
        if self.op == "set":
            ret = not ret
        elif self.op == "remove":
            t.remove(e)
            ret = not ret
        else:
            time = now - self.seconds * HZ
            hits, hit = 0, False
            for stamp in e.stamps[:e.nstamps]:
                if self.seconds and time > stamp:
                    continue
                hits += 1
                if not self.hitcount or hits >= self.hitcount:
                    ret, hit = not ret, True
                    break
            recent = f" in the last {self.seconds} s" if self.seconds else ""
            why = (f"{where}: seen{recent} often enough, and the rule says !" if hit else
                   f"{where}: seen {hits} time(s){recent}"
                   + (f", fewer than {self.hitcount}" if self.hitcount else ""))
            if self.reap:
                t.reap(time, e, self.op == "update" and ret)
        if self.op == "set" or (self.op == "update" and ret):
            t.update(e, now)
            e.ttl = ttl
        if ret:
            return None
        return why or f"{where}: listed, and the rule says !"


MATCHES = (RecentMatch,)
