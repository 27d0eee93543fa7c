"""-m connlimit (libxt_connlimit 1.8.9, revision 1; xt_connlimit.c, nf_conncount.c).

The count is not a scan of the conntrack table: each rule keeps its own lists
(nf_conncount_data), one per masked source (``--connlimit-daddr``: destination)
address, of the connections it has seen, and each count first drops from the
list what conntrack no longer has (expired, or never confirmed: a packet
dropped after the rule) or what is closed (TCP TIME_WAIT or CLOSE). The rule
matches when that count is above ``--connlimit-above`` (or not above
``--connlimit-upto``).

nf_conncount_count, as Linux 6.18 runs it (checked: ext-connlimit), for the
packet's connection (its ORIGINAL tuple; without an entry, the packet's own
tuple): an address seen for the first time starts a list with it (count 1).
Otherwise the list is cleaned up (at most nine stale entries), and the
connection is added unless it is listed already, whether conntrack has
confirmed it or not: a connection whose first packet did not reach the rule
is counted from its first packet that does. A list is not cleaned up twice
in one jiffy: a packet within 4 ms of the list's last addition is added
without the clean-up (and without the check that it is listed already).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kptui.engine.errors import UnsupportedError
from kptui.engine.iptables.ext._kernel import jiffies
from kptui.engine.iptables.values import BadValue, ip_text
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch, plen

CONNCOUNT_GC_MAX_NODES = 8


@dataclass(eq=False)
class ConnList:
    """struct nf_conncount_list: (tuple, jiffies added) per connection, and last_gc
    (the jiffy of the last addition)."""

    last_gc: int
    conns: list[tuple[Any, int]] = field(default_factory=list)


def _closed(conn: Any) -> bool:
    """already_closed: a TCP connection in TIME_WAIT or CLOSE."""
    from kptui.engine.conntrack import sCL, sTW

    return conn.tcp is not None and conn.tcp.state in (sTW, sCL)


class ConnlimitMatch(XtMatch):
    name = "connlimit"
    entries = (
        Entry("connlimit-upto", XT.UINT32, invert=True, excl=("connlimit-above",)),
        Entry("connlimit-above", XT.UINT32, invert=True, excl=("connlimit-upto",)),
        Entry("connlimit-mask", XT.STRING),
        Entry("connlimit-saddr", excl=("connlimit-daddr",)),
        Entry("connlimit-daddr", excl=("connlimit-saddr",)),
    )
    stateful = True
    state_attrs = ("lists",)

    def __init__(self) -> None:
        super().__init__()
        self.limit = 0
        self.upto = False  # XT_CONNLIMIT_INVERT: match while the count is not above
        self.mask = 0xFFFFFFFF
        self.daddr = False
        self.lists: dict[int, ConnList] = {}  # the rule's nf_conncount_data

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        if name in ("connlimit-upto", "connlimit-above"):
            self.limit = value
            self.upto = (name == "connlimit-upto") != inv
        elif name == "connlimit-mask":
            self.mask = plen(self.name, name, value)[1]
        else:
            self.daddr = name == "connlimit-daddr"

    def check(self) -> None:
        if not self.seen & {"--connlimit-upto", "--connlimit-above"}:
            raise BadValue('You must specify "--connlimit-above" or "--connlimit-upto".')

    def save(self) -> str:
        inv = ~self.mask & 0xFFFFFFFF
        bits = 32 - inv.bit_length()  # count_bits4
        return (f"--connlimit-{'upto' if self.upto else 'above'} {self.limit} "
                f"--connlimit-mask {bits} --connlimit-{'daddr' if self.daddr else 'saddr'}")

    # -- simulation -------------------------------------------------------------------

    def test(self, pkt: Any, ctx: Any) -> str | None:
        table = getattr(ctx.box, "conntrack", None)
        if table is None:
            raise UnsupportedError("-m connlimit without the box's conntrack table")
        addr = pkt.ip.dst if self.daddr else pkt.ip.src
        key = int(addr) & self.mask
        count = self._count(table, pkt, key, jiffies(ctx.now))
        if count == 0:
            raise UnsupportedError("-m connlimit: the packet has no complete tuple to count: "
                                   "the kernel drops it (hotdrop)")
        above = count > self.limit
        if above != self.upto:
            return None
        who = f"{'to' if self.daddr else 'from'} {ip_text(key)}"
        return (f"{count} connection(s) {who}, "
                f"{'more than' if above else 'not more than'} {self.limit}")

    def _count(self, table: Any, pkt: Any, key: int, now: int) -> int:
        """count_tree: this rule's count for ``key``, adding the packet's connection."""
        from kptui.engine.conntrack import tuple_of

        conn = pkt.meta.ct
        tup = conn.original if conn is not None else tuple_of(pkt)
        if tup is None:  # nf_ct_get_tuplepr failed: hotdrop
            return 0
        lst = self.lists.get(key)
        if lst is None:  # insert_tree: a new list with this connection
            self.lists[key] = ConnList(now, [(tup, now)])
            return 1
        self._add(table, lst, tup, now)
        return len(lst.conns)

    @staticmethod
    def _add(table: Any, lst: ConnList, tup: Any, now: int) -> None:
        """__nf_conncount_add."""
        if now != lst.last_gc:
            collect = 0
            for entry in list(lst.conns):
                if collect > CONNCOUNT_GC_MAX_NODES:
                    break
                hit = table.find(entry[0])
                if hit is None:  # gone (find_or_evict: added more than 2 jiffies ago)
                    lst.conns.remove(entry)
                    collect += 1
                elif entry[0] == tup:
                    return  # listed already
                elif _closed(hit[0]):
                    lst.conns.remove(entry)
                    collect += 1
        lst.conns.append((tup, now))
        lst.last_gc = now


MATCHES = (ConnlimitMatch,)
