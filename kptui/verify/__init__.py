"""`kptui verify`: run a scenario on this machine's real kernel and compare with kptui.

This package does I/O and runs commands (ip, nft, iptables-restore,
xtables-monitor, sysctl, as root); kptui.engine never imports it.

How the kernel is asked (kernel.py has the details): the scenario's box is a
fresh network namespace, one veth pair per interface with the peer end alone
in its own namespace; the sysctls, the setup lines (verbatim) and the
iptables text (iptables-restore) are applied; each packet's bytes, as
kptui's packet model writes them, are sent as an Ethernet frame from the
peer end (to the box's MAC, or to the broadcast/multicast MAC when the
destination is a broadcast of that link's subnet or a multicast group, as a
real sender addresses it), or from a raw socket (IP_HDRINCL, SO_MARK) inside the box for
`iif = "local"` (for a packet with `uid`/`gid`, a raw socket opened with them as its
fsuid/fsgid and no supplementary groups, which is what -m owner reads), bound to the
packet's source when bind(2) takes it (an address of the box: the output route lookup is
then made from it, as kptui's Box.bound_source says; a source the box does not have is
only written into the header, looked up without one).
`xtables-monitor --trace` gives the trace; AF_PACKET sockets on the peer ends see
what leaves and what is answered. A packet with a `time` is sent that many seconds
after the first packet (verify sleeps; it refuses scenarios spanning more than 30 s),
so conntrack timeouts can be tested with short `net.netfilter.nf_conntrack_*` sysctls.

The kernel's wall clock (what -m time reads) cannot be set from here: CLOCK_REALTIME
and sys_tz are not per namespace. A scenario's `clock = "now"` is therefore simulated
with the real time at which packet 0 was sent (minus its `time`), in this kernel's time
zone (kptui.realclock); later packets are sent `time` seconds after it, give or take the
few tens of milliseconds each packet takes. A fixed `clock` is simulated as written,
which the kernel does not see: only rules whose answer does not depend on the date agree
with it then.

A packet with `reply_to = N` is sent as kptui builds it: the scenario is
simulated first, and the bytes are answers.reply_to of kptui's packet N at
its fate (with the overrides), sent from the interface packet N left through
(or from the box's raw socket when packet N was delivered to the box). The
kernel's own packet N is not read back: when kptui walks packet N wrongly, the
reply is still sent, and the disagreement shows on packet N. When kptui's packet N
never got through, there is no reply to send: verify sends nothing, and both sides
report that packet as not sent (an `error` fate by `reply_to`, compared as any fate).

Connection tracking state carries over between packets on both sides. The
box's own answers to packets delivered to it (a RST for a closed TCP port,
an echo reply, an ICMP port unreachable) pass through the kernel's conntrack
too, but kptui does not model them (it models no sockets): a scenario whose
later packets depend on such an answer (e.g. a second echo request to the
box, which the kernel sees as ESTABLISHED) would disagree. The ct-* scenarios
forward their connections through the box, where peers never answer.

What is compared, per packet, and the normalisation applied (nothing else):

- IP ID: every packet is sent with IP ID 0x1000 + its index (to tell the
  traces apart), whatever the scenario's packet had; the ID is not compared.
- fate: `action`, `iface` and `by`; kptui's `message` is prose the kernel has
  no counterpart for, so it is not compared (but shown). The kernel's `by`
  is the last trace line whose verdict decided (ACCEPT or DROP), written
  `table:chain:rule:N` or `table:chain:policy`; when no netfilter rule or
  policy decided, `routing` (transmit) / `routing:local` (deliver), as kptui
  labels it. A drop no rule decided is explained from the box namespace's
  SNMP counters and an `ip route get` (rp_filter, ttl, mtu, ip_forward,
  routing:TYPE, martian when the input route lookup `ip route get DST from
  SRC iif DEV` fails with EINVAL, or a local sender's errno); one it cannot
  explain is
  `kernel:unknown (...)` with the counters that moved, which never equals
  kptui's answer. `reject` is a DROP verdict by a rule whose text says
  `-j REJECT` (nft traces REJECT as DROP).
- out: transmitted packets are read from the wire (headers as sent); the
  mark, which is not on the wire, comes from the kernel's trace at the end
  of POSTROUTING (MARK= of verify's own last chain). Delivered or dropped
  packets are the sent bytes updated with the addresses, ports, TTL, TOS and
  mark the trace last printed (at the entry of the last base chain the
  packet reached: a change a rule makes inside the chain that then drops
  the packet is not visible). `tcp_options` (present when the TCP header
  has options) is compared for transmitted packets only: the trace prints
  no options, so a delivered or dropped packet's would be the sent ones.
- trace: the trace lines, rule handles turned into 1-based positions with
  `nft -j -a list ruleset`, verify's own table (`kptui_trace`) left out.
  Compared exactly.
- answers: every IPv4 frame the box sends to a peer while the packet is
  handled, other than the packet itself, in the order they were captured:
  `iface` (the box end it left through), then src, dst, proto, sport/dport,
  ttl, tos, and `flags` (+`tcp_options`) (TCP) or icmp_type/icmp_code (+icmp_id for echo), as
  read from the wire (wire.ip_out). kptui's side is `answers` of its --json:
  answer_out of every answer walk that ended in `transmit` (kptui.engine.run),
  and one with an `error` for an answer walk kptui could not finish (never equal
  to a kernel frame). A -j TEE copy has the packet's own IP ID and protocol: it is told from the
  packet by its trace (a trace id of its own that begins at OUTPUT, trace.clones),
  and its frame from the packet's by the header and device each printed at the end
  of POSTROUTING (kernel.copy_frames); its entry adds `kind` "tee", `nexthop` (the
  address whose MAC the frame went to: verify's ARP replies give every address a
  MAC made of it) and its own `trace`, and its trace lines are not the packet's.
  Compared exactly, all of these fields, in order; the IP ID is not recorded
  (the kernel picks ICMP errors' IDs from its hashed generator). Not
  compared, only shown: the answers to a packet the kernel delivered (the
  local stack's RST, port unreachable or echo reply: no socket listens in
  verify's box, and kptui models no sockets); a TEE copy of such a packet still
  is. Answers the box sends to itself
  (a REJECT answer to a local sender goes out through lo) are not recorded:
  kptui walks them too but leaves them out of `answers`, so they are not
  compared either.
- qos (only for a scenario with `tc` setup lines, and only when the recording
  has it): per packet, the tc counters it moved, read with `tc -s qdisc/class
  show` in the box before and after it (kptui/verify/tc.py: packets accepted =
  Sent + backlog, and drops, per qdisc with an explicit handle and per htb
  leaf class); kptui's side is the `counters` of its QosEnqueue events.
  Compared exactly. For these scenarios the box has IPv6 off and permanent
  neighbour entries (no other packet through the counted qdiscs), a packet
  no frame shows but that a qdisc holds (backlog grew) is `transmit` on that
  device (kptui says transmit, delayed by shaping), and a drop no rule
  decided with a qdisc drop counter moved is `qos:queue-full` (this kernel
  has no act_police, so `qos:police` is checked by unit tests only).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from kptui.engine.errors import KptuiError

__all__ = ["verify_main", "scenario_plan", "kernel_answers_path", "simulate"]


def kernel_answers_path(scenario_path: str | Path) -> Path:
    """Where `--record` writes a scenario's kernel answers: NAME.kernel.jsonl beside it."""
    path = Path(scenario_path)
    return path.with_name(path.stem + ".kernel.jsonl")


def scenario_plan(scenario: Any) -> Any:
    """What the kernel side needs from a loaded scenario (packet bytes from kptui's model)."""
    from kptui.verify import wire
    from kptui.verify.kernel import FIRST_IDENT, Interface, Plan, SendSpec

    packets = []
    built = [spec.build() if spec.reply_to is None else None for spec in scenario.packets]
    why = [""] * len(built)
    if None in built:  # reply_to: the bytes of kptui's reply, built from its walk of packet N
        from kptui.engine.run import run_scenario

        results = list(run_scenario(scenario))
        built = [result.sent for result in results]
        why = [result.fate.message if result.sent is None else "" for result in results]
    for index, (spec, pkt) in enumerate(zip(scenario.packets, built, strict=True)):
        if pkt is None:  # a reply to a packet that never got through: nothing to send
            packets.append(SendSpec("local", b"", time=spec.time, unsent=why[index]))
            continue
        data = wire.with_ident(pkt.to_bytes(), FIRST_IDENT + index)
        origin = pkt.meta.iif or "local"
        packets.append(SendSpec(origin, data, pkt.meta.mark, spec.time, pkt.meta.uid,
                                pkt.meta.gid))
    sysctls = [(key, str(int(value)) if isinstance(value, bool) else str(value))
               for key, value in scenario.sysctl.items()]
    try:  # pasted `ip route/rule show` lines and table names made runnable (line for line)
        setup = scenario.kernel_setup() if scenario.setup else ""
    except KptuiError:  # kptui refuses a line: let the kernel say what it thinks of it
        setup = scenario.setup or ""
    return Plan([Interface(i.name, list(i.addresses)) for i in scenario.interfaces],
                sysctls, setup, scenario.iptables or "", packets,
                file=scenario.file, setup_line=scenario.setup_line, ipset=scenario.ipset,
                sockets=[(s.proto, s.laddr, s.lport, s.raddr, s.rport, s.transparent, s.mark)
                         for s in scenario.sockets],
                conntrack=conntrack_commands(scenario), nftables=scenario.nftables)


def conntrack_commands(scenario: Any) -> list[tuple[int, list[str]]]:
    """(line, `conntrack -I` argv) for each of the scenario's conntrack entries."""
    if not scenario.conntrack.strip():
        return []
    from kptui.engine.ct_entries import parse_entries
    from kptui.verify.ctinsert import insert_argv

    return [(entry.line, insert_argv(entry.conn)) for entry in
            parse_entries(scenario.conntrack, file=scenario.file,
                          first_line=scenario.conntrack_line)]


def _title(data: bytes) -> str:
    """The one-line summary of a packet verify sends (as kptui's model reads its bytes)."""
    from kptui.engine.packet import Packet

    if not data:
        return "(not sent)"
    try:
        return Packet.from_bytes(data).summary()
    except (KptuiError, ValueError):
        return f"{len(data)} bytes"


def simulate(scenario: Any) -> list[dict[str, Any]]:
    """kptui's answers in the same shape (an engine error becomes an `error` fate per packet).
    A ``clock = "now"`` still unresolved is resolved to the time of the call."""
    from kptui.engine.run import run_scenario
    from kptui.realclock import resolve
    from kptui.verify.tc import has_tc, simulated

    tc = has_tc(scenario.setup or "")
    try:
        scenario = resolve(scenario)
        rows = []
        for r in run_scenario(scenario):
            row = r.to_json(with_events=False)
            if tc:  # the tc counters this packet (and its answers) moved
                row["qos"] = simulated(r.events + [e for a in r.all_answers()
                                                   for e in a.events])
            rows.append(row)
        return rows
    except KptuiError as err:
        return [{"packet": i, "fate": {"action": "error", "message": str(err)}, "out": {},
                 "trace": []} for i in range(len(scenario.packets))]


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, sort_keys=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def verify_one(path: str, *, record: bool, prepare: Any = None) -> bool:
    """Run one scenario on the kernel and in kptui, print the comparison; True if they agree."""
    from kptui.cli import load
    from kptui.realclock import resolve
    from kptui.verify.compare import compare_all, render
    from kptui.verify.kernel import run_plan

    scenario = load(path, now=False)  # clock = "now": the time the packets are sent
    if prepare is not None:  # --pcap: a capture's packets in place of the file's
        prepare(scenario)
    plan = scenario_plan(resolve(scenario))
    run = run_plan(plan)
    kernel = run.results
    kptui = simulate(resolve(scenario, run.wall_start_ns))
    verdicts = compare_all(kernel, kptui)
    print(f"== {path}: {len(kernel)} packet(s), kernel run {run.seconds:.2f}s")
    for note in scenario.notes:
        print(f"  (note: {note})")
    if plan.conntrack and _has_counters(scenario):
        print("  (conntrack -I cannot set an entry's packet and byte counters: the kernel's "
              "entries start at 0, kptui's have the scenario's)")
    if scenario.clock not in ("", "now"):  # the kernel's clock cannot be set from here
        print(f"  (kptui simulates clock = {scenario.clock}; the kernel ran on its own real "
              "time, so only -m time rules that hold on any date agree)")
    for verdict in verdicts:
        title = _title(plan.packets[verdict.index].data) \
            if verdict.index < len(plan.packets) else ""
        print(render(verdict, title))
    for line in run.unparsed:
        print(f"  (monitor line not understood: {line})")
    agree = sum(v.agrees for v in verdicts)
    print(f"-- {path}: {agree}/{len(verdicts)} packet(s) agree")
    handles = handle_differences(run.handles, scenario)
    for line in handles:
        print(f"  rule handle: {line}")
    if record:
        target = kernel_answers_path(path)
        _write_jsonl(target, kernel)
        print(f"-- recorded the kernel's answers in {target}")
    return agree == len(verdicts) and not handles


def _has_counters(scenario: Any) -> bool:
    from kptui.engine.ct_entries import parse_entries

    return any(any(e.conn.acct) for e in parse_entries(
        scenario.conntrack, file=scenario.file, first_line=scenario.conntrack_line))


def handle_differences(kernel: dict[tuple[str, str, int], int], scenario: Any) -> list[str]:
    """Where kptui's nf_tables rule handles (what `--format trace` prints as
    ``rule:0xHANDLE``) differ from the ones the kernel gave the loaded rules."""
    try:
        ruleset = scenario.build_box().ruleset
    except KptuiError:
        return []  # the simulation's own error is reported per packet already
    ours = {(t.name, c.name, pos): r.handle for t in ruleset.tables.values()
            for c in t.chains.values() if c.present for pos, r in enumerate(c.rules, 1)}
    return [f"{t}:{c}:rule:{pos} kernel {kernel.get((t, c, pos), 0):#x}, "
            f"kptui {ours.get((t, c, pos), 0):#x}"
            for t, c, pos in sorted(set(kernel) | set(ours))
            if kernel.get((t, c, pos)) != ours.get((t, c, pos))]


def verify_main(paths: list[str], *, record: bool, prepare: Any = None) -> int:
    """`kptui verify [--record] SCENARIO...`: 0 all agree, 1 a disagreement, 2 cannot run."""
    from kptui.verify.netns import check_environment

    if not paths:
        print("kptui: error: verify needs at least one scenario file", file=sys.stderr)
        return 2
    try:
        check_environment()
    except KptuiError as err:
        print(f"kptui: error: {err}", file=sys.stderr)
        return 2
    start = time.monotonic()
    all_agree = True
    for path in paths:
        try:
            all_agree &= verify_one(path, record=record, prepare=prepare)
        except KptuiError as err:
            print(f"kptui: error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the namespaces are already removed
            print("kptui: verify interrupted; its namespaces were removed", file=sys.stderr)
            return 130
        sys.stdout.flush()
    print(f"== {len(paths)} scenario(s) in {time.monotonic() - start:.2f}s: "
          + ("kernel and kptui agree" if all_agree else "kernel and kptui DISAGREE"))
    return 0 if all_agree else 1
