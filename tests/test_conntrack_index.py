"""The conntrack table's indexes are invisible: they give what the old scans gave.

Issue 16 replaced two whole-table scans: NAT's find_appropriate_src walked every entry
(now the table's bysource bucket, as nf_nat_core.c hashes by source), and every listing
expired the table entry by entry (now a heap on the simulated clock). The scans they
replace are kept here, word for word, as the reference: on random tables, random
clocks and random traffic through the demo's masquerading router, the indexed table must
list, find, expire and bind exactly as the scans did. The table's snapshot/restore (the
debugger's checkpoints) must give back a table that behaves as a copy made at the
snapshot would.
"""

from __future__ import annotations

import copy
from dataclasses import fields
from importlib import resources
from ipaddress import IPv4Address
from unittest.mock import patch

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kptui.engine import nat
from kptui.engine.box import Box
from kptui.engine.conntrack import (
    MUTABLE_FIELDS,
    Conn,
    ConntrackTable,
    CtTuple,
    Status,
    TcpTrack,
)
from kptui.engine.nat import MAP_IPS, PROTO_SPECIFIED, NatRange, in_range
from kptui.engine.packet import Packet
from kptui.engine.scenario import load_scenario
from kptui.engine.walk import walk

ADDRS = [IPv4Address(a) for a in ("192.0.2.10", "192.0.2.11", "203.0.113.2", "198.51.100.7")]
PROTOS = [6, 17, 1, 47]


# ----------------------------------------------------------------------------- the old scans
def linear_find_appropriate_src(table, tup, rng, conn):
    """nat._find_appropriate_src before issue 16: every entry, newest first."""
    for other in reversed(table.entries()):
        if other is conn or not other.status & Status.SRC_NAT_DONE:
            continue
        o = other.original
        if o.proto == tup.proto and o.src == tup.src and o.sport == tup.sport:
            inv = other.reply.invert()
            if inv is None:
                continue
            result = CtTuple(inv.src, tup.dst, tup.proto, inv.sport, tup.dport, tup.icmp_type,
                             tup.icmp_code)
            if in_range(result, rng):
                return result
    return None


def linear_entries(table):
    """ConntrackTable.entries before issue 16: expire by looking at every entry."""
    now = table.now
    for conn in [c for c in table._conns.values() if now >= c.expires]:
        table.remove(conn)
    return list(table._conns.values())


# ----------------------------------------------------------------------------- random tables
# Few sources, so that buckets hold several entries whose mappings differ (which one
# find_appropriate_src takes then depends on the order).
tuples = st.builds(CtTuple, st.sampled_from(ADDRS[:2]), st.sampled_from(ADDRS),
                   st.sampled_from(PROTOS), st.integers(1, 3), st.integers(1, 3),
                   st.sampled_from([0, 8]), st.just(0))
statuses = st.sampled_from([Status.NONE, Status.SRC_NAT_DONE,
                            Status.SRC_NAT_DONE | Status.SRC_NAT | Status.DST_NAT_DONE])
# A reply to one of two NAT addresses, as SNAT/MASQUERADE leave it.
replies = st.builds(CtTuple, st.sampled_from(ADDRS), st.sampled_from(ADDRS[2:]),
                    st.sampled_from(PROTOS), st.integers(1, 3), st.integers(1, 3))
inserts = st.tuples(st.just("insert"), tuples, st.one_of(tuples, replies), statuses,
                    st.sampled_from([0, 1, 5, 30, 600, 600]))
ops = st.one_of(
    inserts,
    st.tuples(st.just("remove"), st.integers(0, 30)),
    st.tuples(st.just("refresh"), st.integers(0, 30), st.sampled_from([0, 1, 2, 10, 100])),
    st.tuples(st.just("clock"), st.sampled_from([0.0, 0.5, 1.0, 3.0, 40.0])),
    st.tuples(st.just("find"), tuples),
    st.tuples(st.just("nat"), tuples, st.sampled_from(ADDRS[1:]), st.booleans()),
    st.tuples(st.just("nat_same_source"), st.integers(0, 30), st.sampled_from(ADDRS[2:]),
              st.booleans()),
)


def apply(table: ConntrackTable, op: tuple, *, old: bool) -> object:
    """One operation; what it answered (comparable between two tables)."""
    kind = op[0]
    live = list(table._conns.values())
    if kind == "insert":
        _, orig, reply, status, timeout = op
        table.insert(Conn(orig, reply, status=status, timeout=timeout))
    elif kind == "remove" and live:
        table.remove(live[op[1] % len(live)])
    elif kind == "refresh" and live:
        conn = live[op[1] % len(live)]
        if old:
            conn.refresh(table.now, op[2])  # the old tracker called Conn.refresh
        else:
            table.refresh(conn, op[2])
    elif kind == "clock":
        table.box.clock += op[1]
    elif kind == "find":
        hit = table.find(op[1])
        return None if hit is None else (hit[0].id, hit[1])
    elif kind in ("nat", "nat_same_source"):
        _, tup, addr, ports = op
        if kind == "nat_same_source":  # a new connection from the source of an entry
            if not live:
                return None
            o = live[tup % len(live)].original
            tup = CtTuple(o.src, ADDRS[3], o.proto, o.sport, 9, o.icmp_type)
        rng = NatRange(MAP_IPS | (PROTO_SPECIFIED if ports else 0), addr, addr, 2, 3)
        conn = Conn(tup, tup.invert() or tup)
        if old:
            return linear_find_appropriate_src(table, tup, rng, conn)
        return nat._find_appropriate_src(table, tup, rng, conn)
    return None


def listing(table: ConntrackTable, *, old: bool) -> list:
    conns = linear_entries(table) if old else table.entries()
    return [(c.id, c.original, c.reply, c.status, c.expires) for c in conns]


@settings(max_examples=300, deadline=None)
@given(st.lists(inserts, min_size=2, max_size=25), st.lists(ops, max_size=40))
def test_indexed_table_answers_as_the_linear_scans(fill, script):
    indexed, linear = ConntrackTable(Box()), ConntrackTable(Box())
    for op in fill + script:
        assert apply(indexed, op, old=False) == apply(linear, op, old=True), op
        assert listing(indexed, old=False) == listing(linear, old=True), op
        assert indexed.list_lines() == linear.list_lines()


def test_entries_expire_on_the_clock_in_listing_order():
    table = ConntrackTable(Box())
    for n, timeout in enumerate([30, 10, 20, 10]):
        table.insert(Conn(CtTuple(ADDRS[0], ADDRS[3], 17, n + 1, 53),
                          CtTuple(ADDRS[3], ADDRS[0], 17, 53, n + 1), timeout=timeout))
    table.refresh(table.entries()[0], 5)  # earlier than its timer: the timer moves
    table.box.clock = 4.9
    assert [c.id for c in table.entries()] == [1, 2, 3, 4]
    table.box.clock = 9.9
    assert [c.id for c in table.entries()] == [2, 3, 4]
    table.box.clock = 10.0  # nf_ct_is_expired: expired at its expiry
    assert [c.id for c in table.entries()] == [3]
    assert table.list_lines() == [table.entries()[0].line(10.0)]
    table.box.clock = 20.0
    assert table.entries() == []


# ----------------------------------------------------------------------------- the demo
DEMO = resources.files("kptui.scenarios").joinpath("demo.toml").read_text("utf-8")
packets = st.tuples(st.sampled_from(["192.0.2.10", "192.0.2.11"]), st.integers(1020, 1025),
                    st.sampled_from(["S", "A", "R", "SA", "F"]), st.sampled_from(["tcp", "udp"]),
                    st.sampled_from([0.0, 1.0, 15.0, 200.0]), st.booleans())


def run_demo(traffic: list[tuple]) -> list[list[str]]:
    box = load_scenario(DEMO, file="demo.toml").build_box()
    out = []
    for src, sport, flags, proto, later, back in traffic:
        box.clock += later
        if back:  # the server's answer, to the masqueraded address
            pkt = Packet.build(proto=proto, src="198.51.100.7", dst="203.0.113.2", sport=443,
                               dport=sport, flags=flags, iif="eth1")
        else:
            pkt = Packet.build(proto=proto, src=src, dst="198.51.100.7", sport=sport,
                               dport=443, flags=flags, iif="eth0")
        pkt.meta.tstamp = box.clock
        out.append([ev.describe() for ev in walk(box, pkt)] + box.conntrack.list_lines())
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(packets, max_size=25))
def test_demo_walks_are_the_same_as_with_the_scans(traffic):
    indexed = run_demo(traffic)
    with patch.object(nat, "_find_appropriate_src", linear_find_appropriate_src), \
            patch.object(ConntrackTable, "entries", linear_entries):
        linear = run_demo(traffic)
    assert indexed == linear


# ----------------------------------------------------------------------------- snapshots
def state_of(table: ConntrackTable) -> tuple:
    """Everything the table holds, as plain values."""
    conns = []
    for key, c in table._conns.items():
        tcp = None
        if c.tcp is not None:
            tcp = (c.tcp.state, c.tcp.retrans, c.tcp.last_seq,
                   [(s.td_end, s.td_maxwin, s.flags) for s in c.tcp.seen])
        conns.append((key, c.id, c.original, c.reply, c.status, c.mark, c.timeout, c.expires,
                      tcp, c.udp_stream_ts, dict(c.nat), list(c.acct), c.labels))
    return (conns, {t: (c.id, d) for t, (c, d) in table._by_tuple.items()},
            {k: [c.id for c in b.values()] for k, b in table._by_source.items()},
            table._timers.state(), table._next_id)


def mutate(table: ConntrackTable, n: int) -> None:
    """Change every mutable field of an entry (what the trackers and NAT change)."""
    live = list(table._conns.values())
    if not live:
        return
    conn = live[n % len(live)]
    conn.status |= Status.ASSURED
    conn.mark += 1
    conn.labels |= 4
    conn.acct[0] += 1
    conn.nat["masq_index"] = "eth9"
    conn.udp_stream_ts += 1
    if conn.tcp is None:
        conn.tcp = TcpTrack()
    conn.tcp.state = 3
    conn.tcp.seen[1].td_end += 7


snap_ops = st.one_of(ops, st.tuples(st.just("mutate"), st.integers(0, 30)))


@settings(max_examples=200, deadline=None)
@given(st.lists(snap_ops, max_size=30), st.lists(snap_ops, max_size=30),
       st.lists(snap_ops, max_size=30))
def test_restore_gives_back_the_snapshot_each_time(before, after, again):
    table = ConntrackTable(Box())

    def run(script, t):
        answers = []
        for op in script:
            if op[0] == "mutate":
                mutate(t, op[1])
            else:
                answers.append(apply(t, op, old=False))
        return answers, listing(t, old=False)

    run(before, table)
    clock = table.box.clock
    saved = state_of(table)
    twin = copy.deepcopy(table)  # what a copy at the snapshot would do from here
    snap = table.snapshot()
    run(after, table)
    table.restore(snap)
    table.box.clock = clock
    assert state_of(table) == saved
    assert run(again, table) == run(again, twin)
    table.restore(snap)
    table.box.clock = clock
    assert state_of(table) == saved


def test_restore_keeps_the_box_and_the_entry_objects():
    box = Box()
    table = box.conntrack
    conn = Conn(CtTuple(ADDRS[0], ADDRS[3], 6, 1, 2), CtTuple(ADDRS[3], ADDRS[0], 6, 2, 1),
                timeout=60, tcp=TcpTrack(state=3))
    table.insert(conn)
    snap = table.snapshot()
    table.remove(conn)
    conn.tcp.state = 8
    table.restore(snap)
    assert table.box is box
    assert table.entries() == [conn]  # a packet carrying conn still carries the entry
    assert conn.tcp.state == 3 and not conn.has(Status.DYING)


def test_snapshots_copy_every_mutable_field_of_an_entry():
    immutable = {"CtTuple", "Status", "int", "float"}
    assert {f.name for f in fields(Conn) if f.type not in immutable} == set(MUTABLE_FIELDS)
