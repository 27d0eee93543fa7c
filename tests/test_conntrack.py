"""Connection tracking (kptui/engine/conntrack.py), one packet at a time.

Expected results were checked on kernel 6.18 in a netns (the ct-* scenarios
in tests/kernel/scenarios/, and `conntrack -L` inside the box namespace after
running them), unless a comment cites the kernel function instead.
"""

import pytest

from kptui.engine.box import Box
from kptui.engine.conntrack import ORIGINAL, REPLY, CtTuple, Status, set_untracked
from kptui.engine.errors import KptuiError, ParseError, UnsupportedError
from kptui.engine.packet import Packet
from kptui.engine.scenario import load_scenario

A, B = "192.0.2.10", "198.51.100.7"


def tcp(flags, *, back=False, seq=0, ack=0, sport=40000, dport=80, payload=0):
    src, dst = (B, A) if back else (A, B)
    if back:
        sport, dport = dport, sport
    pkt = Packet.build("tcp", src=src, dst=dst, sport=sport, dport=dport, flags=flags,
                       length=40 + payload if payload else None)
    pkt.set("tcp.seq", seq)
    pkt.set("tcp.ack", ack)
    return pkt


def udp(*, back=False, sport=5000, dport=53):
    if back:
        return Packet.build("udp", src=B, dst=A, sport=dport, dport=sport)
    return Packet.build("udp", src=A, dst=B, sport=sport, dport=dport)


def icmp(icmp_type, *, back=False, icmp_id=0, code=0, inner=None, dst=None):
    src, to = (B, A) if back else (A, B)
    pkt = Packet.build("icmp", src=src, dst=dst or to, icmp_type=icmp_type, icmp_code=code,
                       icmp_id=icmp_id)
    pkt.l4.inner = inner
    return pkt


def send(box, pkt):
    """The packet's trip through a box that forwards it: lookup, then confirm."""
    found = box.conntrack.lookup(pkt)
    box.conntrack.confirm(pkt)
    return found


def handshake(box):
    return [send(box, tcp("S", seq=1000)),
            send(box, tcp("SA", back=True, seq=5000, ack=1001)),
            send(box, tcp("A", seq=1001, ack=5001))]


def test_tuples_invert_like_nf_ct_invert_tuple():
    t = CtTuple(A, B, 6, 40000, 80)
    assert t.invert() == CtTuple(B, A, 6, 80, 40000)
    echo = CtTuple(A, B, 1, 77, 0, 8, 0)
    assert echo.invert() == CtTuple(B, A, 1, 77, 0, 0, 0)  # echo request <-> echo reply
    assert CtTuple(A, B, 1, 0, 0, 13, 0).invert().icmp_type == 14  # timestamp
    assert CtTuple(A, B, 1, 0, 0, 3, 3).invert() is None  # errors have no reply type


def test_tcp_handshake_states_status_and_ctinfo():
    box = Box()
    syn, synack, ack = handshake(box)
    assert (syn.result, syn.ctinfo, syn.direction) == ("new", "NEW", "ORIGINAL")
    assert (synack.result, synack.ctinfo, synack.direction) == (
        "found", "ESTABLISHED_REPLY", "REPLY")
    assert (ack.result, ack.ctinfo) == ("found", "ESTABLISHED")
    (conn,) = box.conntrack.entries()
    assert conn is ack.conn
    assert conn.proto_state == "ESTABLISHED"
    assert conn.status & (Status.SEEN_REPLY | Status.ASSURED | Status.CONFIRMED) == (
        Status.SEEN_REPLY | Status.ASSURED | Status.CONFIRMED)
    # `conntrack -L` after ct-tcp-handshake-forward (kernel: 431999, a moment later)
    assert box.conntrack.list_lines() == [
        "tcp      6 432000 ESTABLISHED src=192.0.2.10 dst=198.51.100.7 sport=40000 dport=80 "
        "src=198.51.100.7 dst=192.0.2.10 sport=80 dport=40000 [ASSURED] mark=0 use=1"]


def test_list_lines_show_unreplied_entries_like_conntrack_tools():
    box = Box()
    send(box, tcp("S", seq=1))
    send(box, udp())
    send(box, icmp(8, icmp_id=4660))
    assert box.conntrack.list_lines() == [
        "tcp      6 120 SYN_SENT src=192.0.2.10 dst=198.51.100.7 sport=40000 dport=80 "
        "[UNREPLIED] src=198.51.100.7 dst=192.0.2.10 sport=80 dport=40000 mark=0 use=1",
        "udp      17 30 src=192.0.2.10 dst=198.51.100.7 sport=5000 dport=53 [UNREPLIED] "
        "src=198.51.100.7 dst=192.0.2.10 sport=53 dport=5000 mark=0 use=1",
        "icmp     1 30 src=192.0.2.10 dst=198.51.100.7 type=8 code=0 id=4660 [UNREPLIED] "
        "src=198.51.100.7 dst=192.0.2.10 type=0 code=0 id=4660 mark=0 use=1",
    ]


def test_an_unconfirmed_entry_is_not_in_the_table():
    # ct-dropped-first-packet: a SYN dropped before confirmation leaves nothing,
    # so the SYN/ACK that follows is INVALID.
    box = Box()
    box.conntrack.lookup(tcp("S", seq=1000))  # dropped: never confirmed
    assert box.conntrack.entries() == []
    assert send(box, tcp("SA", back=True, seq=5000, ack=1001)).result == "invalid"


@pytest.mark.parametrize("flags", ["R", "RA", "FA", "SA", "SF", "NONE"])
def test_tcp_packets_that_cannot_start_a_connection_are_invalid(flags):
    # ct-tcp-invalid-flags
    box = Box()
    found = send(box, tcp(flags, seq=1, ack=1))
    assert (found.result, found.ctinfo, found.conn) == ("invalid", "INVALID", None)
    assert box.conntrack.entries() == []


def test_bare_ack_is_picked_up_with_loose_1_and_invalid_with_loose_0():
    # ct-tcp-bare-ack-loose / ct-tcp-bare-ack-strict
    box = Box()
    found = send(box, tcp("A", seq=2000, ack=8000))
    assert (found.result, found.ctinfo, found.conn.proto_state) == ("new", "NEW", "ESTABLISHED")
    assert send(box, tcp("A", back=True, seq=8000, ack=2000)).ctinfo == "ESTABLISHED_REPLY"
    strict = Box()
    strict.set_sysctl("net.netfilter.nf_conntrack_tcp_loose", 0)
    assert send(strict, tcp("A", seq=2000, ack=8000)).result == "invalid"


def test_out_of_state_packets_in_syn_sent():
    # ct-tcp-out-of-state: tcp_conntracks[ORIGINAL][FIN|ACK|SYNACK][SYN_SENT] = sIV
    box = Box()
    send(box, tcp("S", seq=1000))
    for flags in ("FA", "A", "SA"):
        assert send(box, tcp(flags, seq=1001, ack=1)).result == "invalid"
    again = send(box, tcp("S", seq=1000))
    assert (again.result, again.ctinfo) == ("found", "NEW")  # no reply seen yet


def test_rst_as_only_reply_deletes_the_entry():
    # ct-tcp-rst-only-reply
    box = Box()
    send(box, tcp("S", seq=1000))
    rst = send(box, tcp("RA", back=True, seq=0, ack=1001))
    assert rst.ctinfo == "ESTABLISHED_REPLY"
    assert box.conntrack.entries() == []
    assert send(box, tcp("SA", back=True, seq=5000, ack=1001)).result == "invalid"


def test_syn_in_time_wait_reopens_the_connection():
    # ct-tcp-close-reopen (conntrack -L afterwards: one entry, SYN_RECV)
    box = Box()
    handshake(box)
    send(box, tcp("FA", seq=1001, ack=5001))
    send(box, tcp("A", back=True, seq=5001, ack=1002))
    send(box, tcp("FA", back=True, seq=5001, ack=1002))
    last = send(box, tcp("A", seq=1002, ack=5002))
    assert last.conn.proto_state == "TIME_WAIT"
    reopen = send(box, tcp("S", seq=90000))
    assert (reopen.result, reopen.ctinfo) == ("new", "NEW")
    assert "deleted" in reopen.why
    send(box, tcp("SA", back=True, seq=70000, ack=90001))
    assert [c.proto_state for c in box.conntrack.entries()] == ["SYN_RECV"]


def test_window_checks_make_out_of_window_segments_invalid_unless_liberal():
    # ct-tcp-window / ct-tcp-window-liberal (tcp_in_window)
    for liberal, expect in ((0, "invalid"), (1, "found")):
        box = Box()
        box.set_sysctl("net.netfilter.nf_conntrack_tcp_be_liberal", liberal)
        handshake(box)
        assert send(box, tcp("A", seq=1001, ack=900000)).result == expect
        assert send(box, tcp("PA", seq=3000000, ack=5001, payload=20)).result == expect
        assert send(box, tcp("PA", seq=1001, ack=5001, payload=20)).ctinfo == "ESTABLISHED"


def test_udp_new_until_replied_then_established():
    # ct-udp-flow
    box = Box()
    assert send(box, udp()).ctinfo == "NEW"
    assert send(box, udp()).ctinfo == "NEW"
    assert send(box, udp(back=True)).ctinfo == "ESTABLISHED_REPLY"
    assert send(box, udp()).ctinfo == "ESTABLISHED"
    assert send(box, udp(sport=5001)).result == "new"


def test_udp_assured_only_more_than_two_seconds_after_the_first_packet():
    # ct-udp-assured; conntrack -L then shows [ASSURED] and the 120 s stream timeout
    box = Box()
    send(box, udp())
    send(box, udp(back=True))
    conn = send(box, udp()).conn
    assert not conn.has(Status.ASSURED)
    box.clock = 3.0
    send(box, udp())
    assert conn.has(Status.ASSURED)
    assert conn.remaining(box.clock) == 120


def test_timeouts_follow_the_sysctls_and_the_clock():
    # ct-udp-timeout, ct-tcp-syn-timeout
    box = Box()
    box.set_sysctl("net.netfilter.nf_conntrack_udp_timeout", 2)
    send(box, udp())
    box.clock = 1.5
    assert len(box.conntrack.entries()) == 1
    box.clock = 4.0
    assert box.conntrack.entries() == []
    answer = send(box, udp(back=True))
    assert (answer.result, answer.direction) == ("new", "ORIGINAL")


def test_icmp_echo_and_requests_only_create_entries():
    # ct-icmp-echo
    box = Box()
    assert send(box, icmp(8, icmp_id=77)).result == "new"
    reply = send(box, icmp(0, back=True, icmp_id=77))
    assert (reply.ctinfo, reply.direction) == ("ESTABLISHED_REPLY", "REPLY")
    assert send(box, icmp(8, icmp_id=77)).ctinfo == "ESTABLISHED"
    assert send(box, icmp(0, back=True, icmp_id=78)).result == "invalid"
    assert send(box, icmp(0, icmp_id=5)).result == "invalid"  # unsolicited echo reply
    assert send(box, icmp(13)).result == "new"  # timestamp request
    assert send(box, icmp(9)).result == "invalid"  # router advertisement: no reply type


def test_icmp_errors_are_related_to_the_connection_they_quote():
    # ct-icmp-related: nf_conntrack_inet_error with the outer daddr check
    box = Box()
    query = udp()
    send(box, query)
    quoted = query.copy()
    related = send(box, icmp(3, back=True, code=3, inner=quoted))
    assert (related.result, related.ctinfo, related.direction) == (
        "related", "RELATED_REPLY", "REPLY")
    wrong_dst = send(box, icmp(3, back=True, code=3, inner=quoted.copy(), dst="192.0.2.11"))
    assert wrong_dst.result == "invalid"
    unknown = udp(sport=5999)
    assert send(box, icmp(3, back=True, code=3, inner=unknown)).result == "invalid"
    assert len(box.conntrack.entries()) == 1  # errors never create entries


def test_untracked_and_looped_back_packets_are_not_looked_up():
    box = Box()
    pkt = udp()
    assert set_untracked(pkt.meta)
    assert send(box, pkt).result == "untracked"
    assert box.conntrack.entries() == []
    local = udp()
    send(box, local)
    kept = box.conntrack.lookup(local)  # the same skb back in through lo
    assert kept.result == "kept" and kept.conn is local.meta.ct
    assert not set_untracked(local.meta)  # xt_CT: "Previously seen (loopback)? Ignore."


def test_conntrack_fields_on_the_packet():
    box = Box()
    pkt = udp()
    send(box, pkt)
    assert pkt.get("meta.ctstate") == "NEW"
    pkt.set("meta.ctmark", 0x42)
    assert pkt.meta.ct.mark == 0x42  # meta.ctmark is the entry's mark
    reply = udp(back=True)
    send(box, reply)
    assert (reply.get("meta.ctstate"), reply.get("meta.ctmark")) == ("ESTABLISHED", 0x42)
    assert reply.meta.ct is pkt.meta.ct
    assert reply.meta.ct.tuple(ORIGINAL) != reply.meta.ct.tuple(REPLY)


def test_fragments_are_refused_rather_than_guessed():
    box = Box()
    pkt = udp()
    pkt.set("ip.mf", True)
    with pytest.raises(UnsupportedError, match="fragments"):
        box.conntrack.lookup(pkt)


SCENARIO = """
name = "t"
[[interfaces]]
name = "eth0"
addresses = ["192.0.2.1/24"]
[[packets]]
iif = "eth0"
proto = "udp"
src = "192.0.2.10"
dst = "192.0.2.1"
sport = 1
dport = 2
time = {first}
[[packets]]
iif = "eth0"
proto = "udp"
src = "192.0.2.10"
dst = "192.0.2.1"
sport = 1
dport = 2
{second}
"""


def test_scenario_time_defaults_to_the_previous_packet_and_never_decreases():
    sc = load_scenario(SCENARIO.format(first=2.5, second=""), file="t.toml")
    assert [p.time for p in sc.packets] == [2.5, 2.5]
    assert sc.packets[1].build().meta.tstamp == 2.5
    with pytest.raises(ParseError, match="must not decrease") as exc:
        load_scenario(SCENARIO.format(first=3, second="time = 1"), file="t.toml")
    assert exc.value.line == 21  # the second packet's time line


def test_verify_refuses_scenarios_longer_than_30_seconds():
    from kptui.verify import scenario_plan
    from kptui.verify.kernel import check_duration

    check_duration(scenario_plan(load_scenario(SCENARIO.format(first=0, second="time = 30"),
                                               file="t.toml")))
    long = scenario_plan(load_scenario(SCENARIO.format(first=0, second="time = 31"),
                                       file="t.toml"))
    with pytest.raises(KptuiError, match="refuses more than 30 s"):
        check_duration(long)


def test_syn_after_rst_reopens_or_is_ignored_by_which_side_sent_the_rst():
    # ct-tcp-rst-then-syn (kernel 6.18, conntrack -L afterwards)
    box = Box()
    handshake(box)
    send(box, tcp("R", back=True, seq=5001))  # the server resets
    ignored = send(box, tcp("S", seq=20000))
    assert (ignored.result, ignored.ctinfo, ignored.conn.proto_state) == (
        "found", "ESTABLISHED", "CLOSE")
    assert "ignored" in ignored.why
    resync = send(box, tcp("SA", back=True, seq=30000, ack=20001))
    assert resync.conn.proto_state == "SYN_RECV"
    assert send(box, tcp("A", seq=20001, ack=30001)).conn.proto_state == "ESTABLISHED"
    other = Box()
    handshake(other)
    send(other, tcp("R", seq=1001))  # the client resets, then opens again
    reopened = send(other, tcp("S", seq=9000))
    assert (reopened.result, reopened.conn.proto_state) == ("new", "SYN_SENT")
