"""The chain index is invisible: indexed and linear traversal agree on everything.

iptables(8): "the rules in a chain are checked in order"; a packet's fate is
decided by the first rule that matches with a terminating target. The index
over hot chains (rules shaped `-d X/32 -p tcp --dport N`, as in kube-proxy's
KUBE-SERVICES) may only skip rules that cannot match, so for any ruleset and
packet the indexed walk must give the same verdict, the same trace
(`table:chain:rule:N` lines as `xtables-monitor --trace` prints them), the same
counters and the same field changes as walking every rule in order. The linear
traversal is the reference: it is the man page's rule, read literally.
"""

from __future__ import annotations

import inspect
import random
import sys
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kptui.engine.errors import UnsupportedError
from kptui.engine.events import FieldChange, Note, RuleEval, trace_lines
from kptui.engine.iptables import (
    MatchContext,
    Ruleset,
    apply_command,
    restore,
    run_chain,
    traverse,
)
from kptui.engine.packet import Packet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import kube_proxy  # noqa: E402

# -- running a chain both ways ------------------------------------------------------

def test_run_chain_offers_the_linear_reference_walk():
    # run_chain(..., linear=True) walks every rule in order: the reference below
    assert "linear" in inspect.signature(run_chain).parameters


def run(ruleset: Ruleset, table: str, chain: str, pkt: Packet, *, linear: bool,
        seed: int = 0, addrtype: Any = None,
        edit: tuple[int, str, Any] | None = None) -> tuple[str, list[Any]]:
    """Run ``chain`` to its verdict on ``pkt`` (mutated in place); verdict and events.

    ``edit`` = (k, path, value): the user sets ``path`` while paused on the k-th
    event both traversals yield (see ``skipped_by_index``), as the debugger lets them.
    """
    ctx = MatchContext(hook=chain, table=table, iif=pkt.meta.iif, oif=pkt.meta.oif,
                       addrtype=addrtype or (lambda addr, dev=None: "UNICAST"),
                       rng=random.Random(seed), now=0.0)
    gen = run_chain(ruleset, table, chain, pkt, ctx, stage=f"{table}:{chain}", hook=chain,
                    linear=linear)
    events = []
    seen = 0
    try:
        while True:
            ev = next(gen)
            events.append(ev)
            if edit is not None and not skipped_by_index(ev):
                seen += 1
                if seen == edit[0]:
                    pkt.set(edit[1], edit[2])
    except StopIteration as stop:
        return stop.value, events
    except UnsupportedError as err:  # DNAT, conntrack: both ways must stop at the same rule
        return f"error: {err}", events


def skipped_by_index(ev: Any) -> bool:
    """A no-match RuleEval, or the index's note saying how many rules it skipped."""
    if isinstance(ev, RuleEval):
        return not ev.matched
    return isinstance(ev, Note) and "rule index skipped" in ev.text


def observable(events: list[Any]) -> list[dict[str, Any]]:
    """Every event but those the index is allowed to leave out."""
    return [ev.to_dict() for ev in events if not skipped_by_index(ev)]


def counters(ruleset: Ruleset) -> dict[str, tuple[int, int]]:
    out = {}
    for tname, table in ruleset.tables.items():
        for cname, chain in table.chains.items():
            out[f"{tname}:{cname}"] = (chain.counters.pkts, chain.counters.bytes)
            for i, rule in enumerate(chain.rules, 1):
                out[f"{tname}:{cname}:{i}"] = (rule.counters.pkts, rule.counters.bytes)
    return out


def packet_state(pkt: Packet) -> dict[str, Any]:
    return {**pkt.out_dict(), "iif": pkt.meta.iif, "oif": pkt.meta.oif, "mark": pkt.meta.mark}


def parse(text: str) -> Ruleset:
    ruleset = Ruleset()
    restore(ruleset, text, file="<generated>")
    return ruleset


def assert_same(text: str, walks: list[tuple[str, str, Packet, int]], addrtype: Any = None,
                edits: tuple[str, ...] = (), pause_edit: tuple[int, str, Any] | None = None
                ) -> list[tuple[str, list[str], int, int]]:
    """Walk every (table, chain, packet, seed) on two copies of the ruleset, both ways.

    Packets go through the same ruleset one after another, so an index built
    for the first one must stay right for the next (and counters add up).
    ``edits`` are iptables commands applied to both copies after the first
    walk, when the index already exists; ``pause_edit`` is a field edit made
    during every walk (see ``run``). Returns, per walk, the verdict, the
    trace and how many rules each way evaluated.
    """
    indexed, linear = parse(text), parse(text)
    results = []
    for n, (table, chain, pkt, seed) in enumerate(walks):
        if n == 1:
            for line, command in enumerate(edits, 1):
                for ruleset in (indexed, linear):
                    apply_command(ruleset, command, file="<edit>", line=line)
        p_idx, p_lin = pkt.copy(), pkt.copy()
        v_idx, ev_idx = run(indexed, table, chain, p_idx, linear=False, seed=seed,
                            addrtype=addrtype, edit=pause_edit)
        v_lin, ev_lin = run(linear, table, chain, p_lin, linear=True, seed=seed,
                            addrtype=addrtype, edit=pause_edit)
        where = f"{table} {chain} for {pkt.summary()}"
        assert v_idx == v_lin, where
        assert trace_lines(ev_idx) == trace_lines(ev_lin), where
        changes_idx = [ev.to_dict() for ev in ev_idx if isinstance(ev, FieldChange)]
        changes_lin = [ev.to_dict() for ev in ev_lin if isinstance(ev, FieldChange)]
        assert changes_idx == changes_lin, where
        assert observable(ev_idx) == observable(ev_lin), where
        assert packet_state(p_idx) == packet_state(p_lin), where
        evaluated_idx = sum(isinstance(ev, RuleEval) for ev in ev_idx)
        evaluated_lin = sum(isinstance(ev, RuleEval) for ev in ev_lin)
        results.append((v_lin, trace_lines(ev_lin), evaluated_idx, evaluated_lin))
    assert counters(indexed) == counters(linear)
    return results


# -- random rulesets ----------------------------------------------------------------

HOSTS = ("10.0.0.1", "10.0.0.2", "10.0.1.7", "10.1.0.1", "192.168.5.9", "203.0.113.4")
NETS = ("10.0.0.0/24", "10.0.0.0/16", "10.0.0.0/8", "192.168.0.0/16", "10.0.0.0/255.0.255.0",
        "10.0.0.2/31", "0.0.0.0/0", "203.0.113.0/25")
PORTS = (22, 53, 80, 443, 8080)
IFACES = ("eth0", "eth1", "eth+", "veth+")
PKT_IFACES = ("eth0", "eth1", "eth2", "veth3")
MARK_MATCHES = ("0x1", "0x2", "0x4000/0x4000", "0x1/0xff", "0x0/0x4000", "0x4001")
MARK_TARGETS = ("--or-mark 0x100", "--set-mark 0x1", "--set-mark 0x4000/0x4000", "--or-mark 0x2",
                "--and-mark 0xff", "--xor-mark 0x1", "--set-xmark 0x4001/0xffffffff")
PKT_MARKS = (0, 1, 2, 0x4000, 0x4001, 0xFF)


def _neg(draw: Any) -> str:
    return "! " if draw(st.integers(0, 5)) == 0 else ""


@st.composite
def rule_spec(draw: Any, chain: int, n_chains: int) -> str:
    """One rule's spec (after `-A CHAIN`) for user chain ``chain`` (-1: the built-in)."""
    parts: list[str] = []
    shape = draw(st.sampled_from(("keyed", "keyed", "keyed", "random", "random", "bare")))
    if shape == "keyed":
        # the shape the index is for: -d X/32 -p tcp -m tcp --dport N
        proto = draw(st.sampled_from(("tcp", "tcp", "udp")))
        parts.append(f"-d {draw(st.sampled_from(HOSTS))}/32 -p {proto}")
        if draw(st.integers(0, 3)) == 0:
            parts.append(f"-i {draw(st.sampled_from(IFACES))}")
        if draw(st.booleans()):
            parts.append(f'-m comment --comment "svc {draw(st.integers(0, 99))}"')
        port_match = f"-m {proto} --dport {draw(st.sampled_from(PORTS))}"
        # a match with state (a counter, a token bucket) changes when it is evaluated:
        # before the port match the rule must not be skipped on the port alone
        stateful = draw(st.sampled_from(("", "", "", "-m statistic --mode nth --every 2 --packet 0",
                                         "-m limit --limit 1/hour --limit-burst 2")))
        if stateful and draw(st.booleans()):
            parts += [stateful, port_match]
        else:
            parts += [port_match, stateful] if stateful else [port_match]
    elif shape == "random":
        if draw(st.booleans()):
            parts.append(f"{_neg(draw)}-s {draw(st.sampled_from(HOSTS + NETS))}")
        if draw(st.booleans()):
            parts.append(f"{_neg(draw)}-d {draw(st.sampled_from(HOSTS + NETS))}")
        if draw(st.integers(0, 3)) == 0:
            parts.append(f"{_neg(draw)}-i {draw(st.sampled_from(IFACES))}")
        if draw(st.integers(0, 3)) == 0:
            parts.append(f"{_neg(draw)}-o {draw(st.sampled_from(IFACES))}")
        proto = draw(st.sampled_from(("", "", "tcp", "udp", "icmp")))
        if proto:
            parts.append(f"{_neg(draw) if proto == 'icmp' else ''}-p {proto}")
        if proto in ("tcp", "udp") and draw(st.booleans()):
            opt = draw(st.sampled_from(("--dport", "--sport")))
            lo = draw(st.sampled_from(PORTS))
            port = f"{lo}:{lo + draw(st.integers(1, 500))}" if draw(st.booleans()) else str(lo)
            parts.append(f"-m {proto} {_neg(draw)}{opt} {port}")
        if draw(st.integers(0, 2)) == 0:
            parts.append(f"-m mark {_neg(draw)}--mark {draw(st.sampled_from(MARK_MATCHES))}")
    later = [f"U{j}" for j in range(chain + 1, n_chains)]
    kinds = ["ACCEPT", "DROP", "RETURN", "MARK", "none"] + (["jump", "goto"] if later else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "MARK":
        parts.append(f"-j MARK {draw(st.sampled_from(MARK_TARGETS))}")
    elif kind in ("jump", "goto"):
        parts.append(f"-{kind[0]} {draw(st.sampled_from(later))}")
    elif kind != "none":
        parts.append(f"-j {kind}")
    return " ".join(parts)


@st.composite
def rulesets(draw: Any) -> str:
    """A filter table: FORWARD and user chains U0..Uk; Ui jumps only to Uj, j > i (no cycles)."""
    n_chains = draw(st.integers(0, 4))
    policy = draw(st.sampled_from(("ACCEPT", "DROP")))
    lines = ["*filter", ":INPUT ACCEPT [0:0]", f":FORWARD {policy} [0:0]",
             ":OUTPUT ACCEPT [0:0]"]
    lines += [f":U{i} - [0:0]" for i in range(n_chains)]
    for chain in range(-1, n_chains):
        name = "FORWARD" if chain < 0 else f"U{chain}"
        n_rules = draw(st.integers(0, 25))
        for _ in range(n_rules):
            lines.append(f"-A {name} {draw(rule_spec(chain, n_chains))}")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


@st.composite
def packets(draw: Any) -> Packet:
    proto = draw(st.sampled_from(("tcp", "tcp", "udp", "icmp")))
    addrs = st.sampled_from(HOSTS + ("10.0.0.3", "10.2.3.4", "198.51.100.1"))
    kw: dict[str, Any] = {"proto": proto, "src": draw(addrs), "dst": draw(addrs),
                          "mark": draw(st.sampled_from(PKT_MARKS)),
                          "iif": draw(st.sampled_from(PKT_IFACES))}
    if proto == "icmp":
        kw["icmp_type"] = 8
    else:
        ports = st.one_of(st.sampled_from(PORTS), st.integers(1, 65535))
        kw.update(sport=draw(ports), dport=draw(ports))
    pkt = Packet.build(**kw)
    pkt.set("meta.oif", draw(st.sampled_from(PKT_IFACES)))
    if draw(st.integers(0, 9)) == 0:  # a non-first fragment: no ports to match
        pkt.set("ip.frag_offset", 185)
    return pkt


@st.composite
def edits(draw: Any) -> tuple[str, ...]:
    """iptables commands that change FORWARD after its index was built."""
    out = []
    for _ in range(draw(st.integers(0, 2))):
        spec = draw(rule_spec(99, 0))  # no jumps: user chains may not exist
        where = draw(st.sampled_from(("-A FORWARD", "-I FORWARD", "-I FORWARD 2")))
        if where.endswith(" 2"):
            where = "-I FORWARD 1"  # position 2 may be past the end of an empty chain
        out.append(f"iptables {where} {spec}")
    return tuple(out)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=rulesets(), pkts=st.lists(packets(), min_size=1, max_size=4), changes=edits())
def test_indexed_and_linear_traversal_agree_on_random_rulesets(text, pkts, changes):
    # Index every chain, however short, so small examples exercise it (the real
    # threshold only exists to save building an index that would not pay off).
    with patch.object(traverse, "INDEX_MIN_RULES", 1):
        assert_same(text, [("filter", "FORWARD", pkt, 0) for pkt in pkts], edits=changes)


@st.composite
def pause_edits(draw: Any) -> tuple[int, str, Any]:
    """A field the user edits at a pause: which event, which field, which value."""
    path = draw(st.sampled_from(("tcp.dport", "ip.dst", "ip.src", "meta.mark")))
    value: Any = {
        "tcp.dport": st.sampled_from(PORTS),
        "ip.dst": st.sampled_from(HOSTS).map(IPv4Address),
        "ip.src": st.sampled_from(HOSTS).map(IPv4Address),
        "meta.mark": st.sampled_from(PKT_MARKS),
    }[path]
    return draw(st.integers(1, 6)), path, draw(value)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=rulesets(), pkts=st.lists(packets().filter(lambda p: p.proto_name == "tcp"),
                                      min_size=1, max_size=3), edit=pause_edits())
def test_a_field_edited_at_a_pause_counts_for_the_rest_of_the_walk(text, pkts, edit):
    # DESIGN.md: the walk mutates the packet in place, so a debugger edit between
    # two events changes what happens next; the index must not hide that.
    with patch.object(traverse, "INDEX_MIN_RULES", 1):
        assert_same(text, [("filter", "FORWARD", pkt, 0) for pkt in pkts], pause_edit=edit)


def test_editing_the_port_at_a_pause_reaches_the_rule_for_the_new_port():
    lines = ["*filter", ":FORWARD DROP [0:0]",
             '-A FORWARD -s 192.0.2.1/32 -j LOG --log-prefix "seen "']
    lines += [f"-A FORWARD -d 10.0.0.1/32 -p tcp -m tcp --dport {1000 + i} -j ACCEPT"
              for i in range(100)]
    text = "\n".join(lines + ["COMMIT"]) + "\n"
    pkt = Packet.build(proto="tcp", src="192.0.2.1", dst="10.0.0.1", sport=5, dport=1050,
                       iif="eth0")
    # paused on the LOG rule's match (ChainEnter is event 1), the user sets dport 1020
    [(verdict, trace, _, _)] = assert_same(text, [("filter", "FORWARD", pkt, 0)],
                                           pause_edit=(2, "tcp.dport", 1020))
    assert verdict == "ACCEPT"
    assert trace == ["filter:FORWARD:rule:1", "filter:FORWARD:rule:22"]


def test_editing_the_port_inside_a_called_chain_counts_after_the_return():
    lines = ["*filter", ":FORWARD DROP [0:0]", ":SUB - [0:0]", "-A FORWARD -j SUB"]
    lines += [f"-A FORWARD -d 10.0.0.1/32 -p tcp -m tcp --dport {1000 + i} -j ACCEPT"
              for i in range(100)]
    text = "\n".join(lines + ["-A SUB -j RETURN", "COMMIT"]) + "\n"
    pkt = Packet.build(proto="tcp", src="192.0.2.1", dst="10.0.0.1", sport=5, dport=1050,
                       iif="eth0")
    # events: enter FORWARD, rule 1 matched, -> SUB, enter SUB: the user edits there;
    # iptables(8): RETURN resumes the caller at its next rule, which sees the new port
    [(verdict, trace, _, _)] = assert_same(text, [("filter", "FORWARD", pkt, 0)],
                                           pause_edit=(4, "tcp.dport", 1020))
    assert verdict == "ACCEPT"
    assert trace == ["filter:FORWARD:rule:1", "filter:SUB:rule:1", "filter:FORWARD:rule:22"]


def test_index_skips_rules_and_still_agrees_at_the_default_threshold():
    # 200 service-shaped rules, a MARK and a mark match in between: the packet to
    # the last service must skip almost all of them and still meet the MARK first.
    lines = ["*filter", ":FORWARD DROP [0:0]"]
    for i in range(200):
        if i == 100:
            lines.append("-A FORWARD -i eth0 -j MARK --set-mark 0x7")
        lines.append(f"-A FORWARD -d 10.0.{i // 250}.{i % 250 + 1}/32 -p tcp -m tcp "
                     f"--dport {1000 + i} -m mark ! --mark 0x7 -j ACCEPT")
        lines.append(f"-A FORWARD -d 10.0.{i // 250}.{i % 250 + 1}/32 -p tcp -m tcp "
                     f"--dport {1000 + i} -j REJECT")
    lines.append("COMMIT")
    text = "\n".join(lines) + "\n"
    late = Packet.build(proto="tcp", src="192.0.2.1", dst="10.0.0.200", sport=5, dport=1199,
                        iif="eth0")
    early = Packet.build(proto="tcp", src="192.0.2.1", dst="10.0.0.3", sport=5, dport=1002,
                         iif="eth0")
    results = assert_same(text, [("filter", "FORWARD", late, 0), ("filter", "FORWARD", early, 0)])
    (v_late, trace_late, idx_late, lin_late), (v_early, trace_early, _, _) = results
    # iptables(8): MARK is non-terminating (rule 201); the mark then makes the
    # ACCEPT for the last service (rule 400) miss, and its REJECT (401) decides
    assert v_late == "REJECT"
    assert trace_late == ["filter:FORWARD:rule:201", "filter:FORWARD:rule:401"]
    assert v_early == "ACCEPT" and trace_early == ["filter:FORWARD:rule:5"]
    assert idx_late <= 5 < lin_late


# -- a kube-proxy-shaped ruleset ------------------------------------------------------

NODE_IP = IPv4Address("192.168.1.10")


def node_addrtype(addr: IPv4Address, dev: str | None = None) -> str:
    return "LOCAL" if addr == NODE_IP or addr.is_loopback else "UNICAST"


@pytest.fixture(scope="module")
def kube() -> tuple[str, list[kube_proxy.ServicePort]]:
    # about 300 service ports: the shape of a small cluster's node
    text, ports = kube_proxy.kube_proxy_ruleset(3_000, seed=7)
    return kube_proxy.without_conntrack(text), ports


def _kube_packet(proto: str, dst: IPv4Address, dport: int, src: str = "10.244.0.5") -> Packet:
    return Packet.build(proto=proto, src=src, dst=str(dst), sport=40000, dport=dport,
                        iif="cni0")


def test_kube_proxy_ruleset_is_large_enough_to_exercise_the_index(kube):
    text, ports = kube
    assert len(ports) >= 250
    dispatch = [line for line in text.splitlines()
                if line.startswith("-A KUBE-SERVICES -d ") and "/32 -p " in line]
    assert len(dispatch) >= 250


def test_kube_proxy_hits_near_misses_and_misses_agree(kube):
    text, ports = kube
    rng = random.Random(3)
    with_eps = [sp for sp in ports if sp.endpoints]
    without = [sp for sp in ports if not sp.endpoints]
    used = {sp.cluster_ip for sp in ports}
    other = {"tcp": "udp", "udp": "tcp"}
    pkts: list[Packet] = []
    for sp in with_eps[-5:][::-1] + rng.sample(with_eps, 40):  # the last service first
        pkts.append(_kube_packet(sp.proto, sp.cluster_ip, sp.port))  # hit
        pkts.append(_kube_packet(sp.proto, sp.cluster_ip, sp.port + 1))  # wrong port
        pkts.append(_kube_packet(other[sp.proto], sp.cluster_ip, sp.port))  # wrong protocol
        near = sp.cluster_ip + 1
        if near not in used:
            pkts.append(_kube_packet(sp.proto, near, sp.port))  # wrong address
        pkts.append(_kube_packet(sp.proto, sp.cluster_ip, sp.port, src="192.168.1.50"))  # masq
    for sp in without[:10]:
        pkts.append(_kube_packet(sp.proto, sp.cluster_ip, sp.port))  # REJECT in filter
    for sp in [sp for sp in with_eps if sp.node_port][:10]:
        pkts.append(_kube_packet(sp.proto, NODE_IP, sp.node_port, src="198.51.100.7"))
    pkts.append(_kube_packet("tcp", IPv4Address("10.96.255.254"), 80))  # misses everything
    pkts.append(_kube_packet("tcp", IPv4Address("10.96.0.1"), 443))  # default/kubernetes
    walks = []
    for i, pkt in enumerate(pkts):
        for table, chain in (("nat", "PREROUTING"), ("filter", "FORWARD"), ("nat", "OUTPUT")):
            walks.append((table, chain, pkt, i))
    results = assert_same(text, walks, addrtype=node_addrtype)
    # the packets really reach the services: the hit on the last service goes through its
    # KUBE-SVC chain
    # to a KUBE-SEP chain, whose DNAT rule matches (DNAT itself is not modelled yet)
    verdict, first_hit, evaluated_idx, evaluated_lin = results[0]
    assert any(":KUBE-SEP-" in line for line in first_hit), first_hit
    assert evaluated_idx * 10 < evaluated_lin  # ... and the index skipped most rules
    # a service without endpoints is rejected in filter KUBE-SERVICES (iptables-extensions(8))
    reject = [r for (table, _, _, _), r in zip(walks, results, strict=True)
              if table == "filter" and r[0] == "REJECT"]
    assert reject and all(":KUBE-SERVICES:rule:" in r[1][-1] for r in reject)
