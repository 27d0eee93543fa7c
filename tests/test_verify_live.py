"""kptui verify: kptui's answers against the real kernel's.

Two layers:
- everywhere: every scenario under tests/kernel/scenarios/ with a recorded
  NAME.kernel.jsonl (written by `kptui verify --record` on a real kernel) is
  simulated and compared with the recording; known disagreements are
  strict expected failures naming the missing engine feature;
- as root with iproute2/nftables/iptables: `verify` runs live against this
  machine's kernel, except the scenarios with a NAME.vm file beside them
  (they need tc modules this kernel lacks: act_police, cls_fw, sch_prio...),
  which run live on Debian's stock kernel in a qemu VM (tests/kernel/vmkernel.py).
  Under CI=true a missing prerequisite fails the test instead of skipping it,
  so CI cannot silently stop checking.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kptui.engine.scenario import load_scenario
from kptui.verify import kernel_answers_path, simulate, verify_main
from kptui.verify.compare import compare_all, render
from kptui.verify.trace import TraceParser, handle_positions, step_label
from kptui.verify.wire import ip_out

SCENARIOS = Path(__file__).parent / "kernel" / "scenarios"
ALL = sorted(SCENARIOS.glob("*.toml"))
RECORDED = [p for p in ALL if kernel_answers_path(p).exists()]
IN_VM = [p for p in ALL if p.with_suffix(".vm").exists()]  # need Debian's kernel, in qemu
ON_HOST = [p for p in ALL if p not in IN_VM]

sys.path.insert(0, str(Path(__file__).parent / "kernel"))
import vmkernel  # noqa: E402 - tests/kernel is not a package


def known_disagreement(path: Path) -> str:
    """Why kptui disagrees with the kernel on this scenario, from NAME.xfail beside it.

    The file names the missing engine feature (and its issue); the scenario's
    tests then are strict expected failures, so fixing the engine makes them
    fail until the file is removed.
    """
    sidecar = path.with_suffix(".xfail")
    return sidecar.read_text("utf-8").strip() if sidecar.exists() else ""


def _param(path: Path):  # noqa: ANN202
    reason = known_disagreement(path)
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(path, id=path.stem, marks=marks)


def test_every_scenario_has_a_recording():
    # A scenario without its kernel answers would be checked by nothing but the live run.
    assert [p.name for p in ALL if p not in RECORDED] == []
    assert len(ALL) >= 6


@pytest.mark.parametrize("path", [_param(p) for p in RECORDED])
def test_simulation_equals_recorded_kernel(path: Path):
    scenario = load_scenario(path.read_text("utf-8"), file=str(path))
    kernel = [json.loads(line) for line in kernel_answers_path(path).read_text().splitlines()]
    verdicts = compare_all(kernel, simulate(scenario))
    bad = [render(v, "") for v in verdicts if not v.agrees]
    assert bad == [], "\n".join(bad)


# -- the kernel-side readers, on lines this machine's tools printed ------------------------

MONITOR = """\
PACKET: 2 8e25547c IN=eth0 MACSRC=92:20:b5:76:28:3a MACDST=ce:2e:91:57:40:88 MACPROTO=0800 \
SRC=192.0.2.10 DST=192.0.2.1 LEN=28 TOS=0x0 TTL=64 ID=4098 SPORT=1000 DPORT=54
 TRACE: 2 8e25547c kptui_trace:pre:rule:0x4:CONTINUE  -4 -t kptui_trace -A pre -j TRACE
 TRACE: 2 8e25547c kptui_trace:pre:policy:ACCEPT
PACKET: 2 8e25547c IN=eth0 MACSRC=92:20:b5:76:28:3a MACDST=ce:2e:91:57:40:88 MACPROTO=0800 \
SRC=192.0.2.10 DST=192.0.2.1 LEN=28 TOS=0x0 TTL=64 ID=4098 SPORT=1000 DPORT=54 MARK=0x5
 TRACE: 2 8e25547c filter:INPUT:rule:0x5:JUMP:udpc  -4 -t filter -A INPUT -p udp -j udpc
 TRACE: 2 8e25547c filter:udpc:rule:0x9:GOTO:g  -4 -t filter -A udpc -p udp -m udp --dport 54 -g g
 TRACE: 2 8e25547c filter:g:rule:0xb:CONTINUE  -4 -t filter -A g -j LOG --log-prefix x
 TRACE: 2 8e25547c filter:INPUT:policy:DROP
"""

NFT_JSON = json.dumps({"nftables": [
    {"metainfo": {"version": "1.0.6"}},
    {"rule": {"family": "ip", "table": "filter", "chain": "INPUT", "handle": 5}},
    {"rule": {"family": "ip", "table": "filter", "chain": "udpc", "handle": 10}},
    {"rule": {"family": "ip", "table": "filter", "chain": "udpc", "handle": 9}},
    {"rule": {"family": "ip", "table": "filter", "chain": "g", "handle": 11}},
]})


def test_monitor_lines_become_design_trace_labels():
    parser = TraceParser()
    for line in MONITOR.splitlines():
        parser.feed(line)
    trace = parser.by_ident[4098]
    positions = handle_positions(NFT_JSON)
    # verify's own table is kept apart; handles become 1-based positions in list order
    assert [step_label(s, positions) for s in trace.steps] == [
        "filter:INPUT:rule:1", "filter:udpc:rule:2", "filter:g:rule:1", "filter:INPUT:policy:DROP"]
    assert [s.chain for s in trace.own] == ["pre", "pre"]
    assert trace.steps[-1].decides and not trace.steps[0].decides
    assert trace.headers[-1]["MARK"] == "0x5"
    assert parser.unparsed == []


# Debian's 6.1 kernel (the VM's), same scenario shape: the packet is printed once per
# trace, and each chain's end is a `return:` line with no verdict.
MONITOR_61 = """\
PACKET: 2 c5c45580 IN=eth0 MACSRC=12:9d:4c:82:3b:f2 MACDST=fa:a:bd:ac:c2:46 MACPROTO=0800 \
SRC=192.0.2.10 DST=198.51.100.10 LEN=400 TOS=0x0 TTL=64 ID=4096 DF SPORT=1000 DPORT=5000
 TRACE: 2 c5c45580 kptui_trace:pre:rule:0x5:CONTINUE  -4 -t kptui_trace -A pre -j TRACE
 TRACE: 2 c5c45580 kptui_trace:pre:return:
 TRACE: 2 c5c45580 kptui_trace:pre:policy:ACCEPT
 TRACE: 2 c5c45580 kptui_trace:postdone:return:
 TRACE: 2 c5c45580 kptui_trace:postdone:policy:ACCEPT
"""


def test_older_kernels_chain_end_lines_are_understood_and_left_out():
    parser = TraceParser()
    for line in MONITOR_61.splitlines():
        parser.feed(line)
    trace = parser.by_ident[4096]
    assert parser.unparsed == []
    assert [(s.chain, s.kind, s.verdict) for s in trace.own] == [
        ("pre", "rule", "CONTINUE"), ("pre", "policy", "ACCEPT"), ("postdone", "policy", "ACCEPT")]


def test_police_drops_are_read_from_tc_actions():
    from kptui.verify import tc as tcv

    # `tc -s -j actions ls action police` on the VM's 6.1 kernel after three 500-byte
    # datagrams through a 1000-byte bucket: one conformed, two were dropped.
    text = ('[{"total acts":1},{"actions":[{"order":0,"kind":"police","index":1,'
            '"control_action":{"type":"drop"},"overhead":0,"ref":1,"bind":1,"installed":1,'
            '"stats":{"bytes":1626,"packets":3,"drops":2,"overlimits":2,"requeues":0,'
            '"backlog":0,"qlen":0}}]}]')
    after = tcv.parse_police(text)
    assert after == {tcv.POLICE: (3, 2, 0)}
    assert tcv.police_dropped(tcv.parse_police(text.replace('"drops":2', '"drops":1')), after)
    assert not tcv.police_dropped(after, after)
    assert tcv.delta({}, after) == []  # a fate, never a qos entry
    assert tcv.has_police("tc filter add dev eth0 parent ffff: u32 match u32 0 0 police "
                          "rate 1mbit burst 10k drop")
    assert not tcv.has_police("tc qdisc add dev eth0 root handle 1: htb default 10")


def test_wire_reader_gives_the_out_shape():
    # RFC 791/793 layout: a TCP SYN+ACK, ttl 63, tos 0x10, from 192.0.2.10:40000 to :443
    data = bytes.fromhex("4510002812340000" "3f060000" "c000020a" "c6336407"
                         "9c4001bb" "00000000" "00000000" "5012faf0" "00000000")
    assert ip_out(data) == {"src": "192.0.2.10", "dst": "198.51.100.7", "proto": "tcp",
                            "sport": 40000, "dport": 443, "ttl": 63, "tos": 16, "flags": "SA"}


def test_broadcast_and_multicast_go_in_link_layer_broadcast_frames():
    # A sender on the link addresses a subnet broadcast to ff:ff:ff:ff:ff:ff and a group
    # to 01:00:5e + its low 23 bits (RFC 1112 6.4); the box's pkt_type (-m pkttype)
    # follows from that, so verify must send them the same way.
    from ipaddress import IPv4Address, IPv4Interface

    from kptui.verify.kernel import frame_destination

    box = bytes.fromhex("02aabbccddee")
    link = [IPv4Interface("192.0.2.1/24")]
    assert frame_destination(IPv4Address("192.0.2.255"), link, box) == b"\xff" * 6
    assert frame_destination(IPv4Address("255.255.255.255"), link, box) == b"\xff" * 6
    assert frame_destination(IPv4Address("239.129.2.3"), link, box) == bytes.fromhex(
        "01005e010203")
    assert frame_destination(IPv4Address("192.0.2.1"), link, box) == box
    assert frame_destination(IPv4Address("198.51.100.255"), link, box) == box


def test_verify_needs_root(monkeypatch, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert verify_main([str(ALL[0])], record=False) == 2
    assert "needs root" in capsys.readouterr().err


# -- live, against this machine's kernel ----------------------------------------------------


def _live_or_skip() -> None:
    missing = [t for t in ("ip", "nft", "iptables-restore", "xtables-monitor", "sysctl",
                           "stdbuf") if shutil.which(t) is None]
    why = ("not root" if os.geteuid() != 0 else
           f"missing {', '.join(missing)}" if missing else "")
    if why:
        message = f"live kernel comparison impossible here: {why}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def _our_namespaces() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines()
            if line.startswith(f"kpv{os.getpid()}")]


@pytest.mark.parametrize("path", [_param(p) for p in ON_HOST])
def test_live_kernel_agrees_with_kptui(path: Path, capsys):
    _live_or_skip()
    status = verify_main([str(path)], record=False)
    report = capsys.readouterr().out
    assert _our_namespaces() == []  # every namespace removed again
    assert status == 0, report


def test_live_bad_setup_line_is_one_error_and_leaves_nothing(tmp_path, capsys):
    _live_or_skip()
    bad = tmp_path / "bad.toml"
    bad.write_text('setup = """\nip route add 198.51.100.0/24 via 192.0.2.99\n"""\n'
                   '[[interfaces]]\nname = "eth0"\naddresses = ["203.0.113.2/24"]\n')
    assert verify_main([str(bad)], record=False) == 2
    err = capsys.readouterr().err
    # file:line of the setup line as written, and the kernel's own words
    assert f"{bad}:2: the kernel refused setup line `ip route add 198.51.100.0/24 via " \
           "192.0.2.99`: Error: Nexthop has invalid gateway." in err
    assert _our_namespaces() == []


# -- live, on Debian's kernel in a VM, for what this kernel lacks ---------------------------


@pytest.fixture(scope="module")
def vm_run() -> vmkernel.VmRun:
    """One VM boot verifies every NAME.vm scenario (about 10 s each under emulation)."""
    _live_or_skip()
    missing = vmkernel.missing_tools()
    why = f"missing {', '.join(missing)}" if missing else ""
    if not why:
        try:
            return vmkernel.verify_in_vm([str(p.relative_to(vmkernel.PROJECT)) for p in IN_VM])
        except (vmkernel.VmUnavailable, subprocess.CalledProcessError) as exc:
            why = str(exc)
    message = f"the VM kernel comparison is impossible here: {why}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.mark.parametrize("path", [_param(p) for p in IN_VM])
def test_vm_kernel_agrees_with_kptui(path: Path, vm_run: vmkernel.VmRun):
    name = re.escape(str(path.relative_to(vmkernel.PROJECT)))
    summary = re.search(rf"^-- {name}: (\d+)/(\d+) packet\(s\) agree$", vm_run.stdout, re.M)
    assert summary, f"no verdict for {path.name}:\n{vm_run.stdout}\n{vm_run.stderr}"
    assert summary.group(1) == summary.group(2), vm_run.stdout
