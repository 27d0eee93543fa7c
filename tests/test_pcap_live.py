"""`--pcap` on captures tcpdump made of real traffic through a real box.

A NAT router is built in network namespaces (a client on lan0, a server on wan0), the
box's iptables rules loaded from the scenario's own text; real sockets then talk
through it (a TCP exchange forwarded and masqueraded, a UDP query rejected, a TCP
connection the FORWARD policy drops, twice, a TCP connection to the box reset, a
ping to the box) while `tcpdump -i any` records inside the box. kptui then walks
that capture through the scenario, and the truth is the kernel's own count: every
rule's and chain policy's packet counter (`iptables-save -c`) must equal how often
kptui's walks name that rule or policy in their trace.

A second box has a single interface: a capture from `tcpdump -i eth0 -Q in`
(Ethernet, no interface names) is walked there without --iif, and `kptui verify
--pcap` replays it to a kernel of its own and agrees packet by packet.

Needs root, iproute2, iptables (nf_tables), tcpdump; under CI=true a missing one
fails the test instead of skipping it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path

import pytest

from kptui.cli import main
from kptui.pcaprun import verify_prepare
from kptui.verify import verify_main

ROUTER = '''\
name = "pcap-router"
description = "a NAT router; its tcpdump capture is walked with --pcap"
iptables = """
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o wan0 -j MASQUERADE
COMMIT
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -p icmp -j ACCEPT
-A INPUT -p tcp --dport 22 -j REJECT --reject-with tcp-reset
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i lan0 -o wan0 -p tcp --dport 80 -j ACCEPT
-A FORWARD -i lan0 -p udp --dport 53 -j REJECT
COMMIT
"""

[sysctl]
"net.ipv4.ip_forward" = 1

[[interfaces]]
name = "lan0"
addresses = ["192.168.50.1/24"]

[[interfaces]]
name = "wan0"
addresses = ["203.0.113.1/24"]
'''

HOST = '''\
name = "pcap-host"
iptables = """
*filter
:INPUT ACCEPT [0:0]
-A INPUT -p udp --dport 5353 -m limit --limit 2/sec --limit-burst 2 -j ACCEPT
-A INPUT -p udp --dport 5353 -j DROP
-A INPUT -p udp -j REJECT
COMMIT
"""

[[interfaces]]
name = "eth0"
addresses = ["192.168.60.1/24"]
'''

CLIENT = r"""
import socket, struct, time
s = socket.create_connection(("203.0.113.10", 80), timeout=5)
s.sendall(b"hello"); assert s.recv(100) == b"world"; s.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(b"q", ("203.0.113.10", 53))
time.sleep(0.2)
for port, host in ((8080, "203.0.113.10"), (22, "192.168.50.1")):
    try:
        socket.create_connection((host, port), timeout=1.5)
    except OSError:
        pass
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF
h = struct.pack("!BBHHH", 8, 0, 0, 0x4242, 1) + b"pingpong"
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); r.settimeout(2)
r.sendto(h[:2] + struct.pack("!H", csum(h)) + h[4:], ("192.168.50.1", 0)); r.recv(200)
"""

SERVER = r"""
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80)); s.listen(); print("ready", flush=True)
c, _ = s.accept(); c.recv(100); c.sendall(b"world"); c.close()
"""

# Five UDP datagrams in a burst to the rate-limited port, then one to a closed port.
BURST = r"""
import socket, time
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(5):
    u.sendto(b"x", ("192.168.60.1", 5353))
time.sleep(0.6)
u.sendto(b"x", ("192.168.60.1", 5353)); u.sendto(b"y", ("192.168.60.1", 9))
"""


def _live_or_skip(*more: str) -> None:
    missing = [t for t in ("ip", "iptables-restore", "iptables-save", "tcpdump", *more)
               if shutil.which(t) is None]
    why = ("not root" if os.geteuid() != 0 else
           f"missing {', '.join(missing)}" if missing else "")
    if why:
        message = f"live tcpdump capture impossible here: {why}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def sh(*args: str, ns: str = "", **kw) -> subprocess.CompletedProcess:  # noqa: ANN003
    cmd = ["ip", "netns", "exec", ns, *args] if ns else list(args)
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60, **kw)


class Namespaces:
    """Network namespaces named after this test process, removed on every exit."""

    def __init__(self, *roles: str) -> None:
        self.names = {role: f"kpp{os.getpid()}{role}" for role in roles}

    def __enter__(self) -> dict[str, str]:
        for name in self.names.values():
            sh("ip", "netns", "add", name)
            sh("ip", "link", "set", "lo", "up", ns=name)
            sh("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
               "net.ipv6.conf.default.disable_ipv6=1", ns=name)
        return self.names

    def __exit__(self, *exc: object) -> None:
        for name in self.names.values():
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def link(a: str, a_if: str, a_addr: str, b: str, b_if: str, b_addr: str) -> None:
    sh("ip", "link", "add", a_if, "netns", a, "type", "veth", "peer", "name", b_if,
       "netns", b)
    for ns, dev, addr in ((a, a_if, a_addr), (b, b_if, b_addr)):
        sh("ip", "addr", "add", addr, "dev", dev, ns=ns)
        sh("ip", "link", "set", dev, "up", ns=ns)


def load_box(box: str, scenario: str) -> None:
    data = tomllib.loads(scenario)
    for key, value in data.get("sysctl", {}).items():
        sh("sysctl", "-qw", f"{key}={value}", ns=box)
    sh("iptables-restore", ns=box, input=data["iptables"])


class Tcpdump:
    """tcpdump writing a capture in a namespace; stopped, and checked to have lost nothing
    (an immediate-mode ring with a 2048-byte snapshot holds every frame of these runs)."""

    def __init__(self, ns: str, path: Path, *args: str) -> None:
        self.path = path
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, "tcpdump", "--immediate-mode", "-B", "16384",
             "-s", "2048", "-w", str(path), *args], stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()  # "listening on ...": the socket is bound
        while line and "listening on" not in line:
            line = self.proc.stderr.readline()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        err = self.proc.stderr.read()
        self.proc.wait(timeout=30)
        assert re.search(r"^0 packets dropped by kernel$", err, re.M), err


def counters(box: str) -> Counter:
    """The kernel's per-rule and per-policy packet counts, as kptui's trace names them."""
    out: Counter = Counter()
    table, position = "", Counter()
    for line in sh("iptables-save", "-c", ns=box).stdout.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif m := re.match(r":(\S+) (ACCEPT|DROP) \[(\d+):", line):
            out[f"{table}:{m[1]}:policy:{m[2]}"] += int(m[3])
        elif m := re.match(r"\[(\d+):\d+\] -A (\S+) ", line):
            position[(table, m[2])] += 1
            out[f"{table}:{m[2]}:rule:{position[(table, m[2])]}"] += int(m[1])
    return +out


def walked(scenario: Path, capture: Path, capsys, *iif: str) -> tuple[Counter, list, str]:  # noqa: ANN001
    argv = ["trace", str(scenario), "--pcap", str(capture), "--json"]
    for word in iif:
        argv += ["--iif", word]
    assert main(argv) == 0
    out = capsys.readouterr()
    rows = [json.loads(line) for line in out.out.splitlines()]
    return Counter(step for row in rows for step in row["trace"]), rows, out.err


def test_a_tcpdump_capture_of_a_nat_router_walks_as_the_kernel_counted_it(tmp_path, capsys):
    _live_or_skip()
    scenario = tmp_path / "router.toml"
    scenario.write_text(ROUTER)
    capture = tmp_path / "any.pcap"
    with Namespaces("box", "cli", "srv") as ns:
        link(ns["box"], "lan0", "192.168.50.1/24", ns["cli"], "c0", "192.168.50.10/24")
        link(ns["box"], "wan0", "203.0.113.1/24", ns["srv"], "s0", "203.0.113.10/24")
        sh("ip", "route", "add", "default", "via", "192.168.50.1", ns=ns["cli"])
        load_box(ns["box"], ROUTER)
        ifindex = {d["ifname"]: d["ifindex"]
                   for d in json.loads(sh("ip", "-j", "link", ns=ns["box"]).stdout)}
        server = subprocess.Popen(["ip", "netns", "exec", ns["srv"], sys.executable, "-c",
                                   SERVER], stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout.readline().strip() == "ready"
            dump = Tcpdump(ns["box"], capture, "-i", "any")
            sh(sys.executable, "-c", CLIENT, ns=ns["cli"])
            dump.stop()
        finally:
            server.kill()
            server.wait()
        kernel = counters(ns["box"])
    ours, rows, err = walked(scenario, capture, capsys, f"{ifindex['lan0']}=lan0",
                             f"{ifindex['wan0']}=wan0")
    # `tcpdump -i any` writes Linux cooked v2: interface indexes and directions; the
    # box's own sends (forwarded copies, answers) are counted and not walked
    assert "(Linux cooked v2 (SLL2))" in err and "sent by the box" in err
    # the sender's stack left its checksums to the NIC: put right, and said
    assert "checksum offload" in err
    # the kernel: the TCP SYN forwarded by FORWARD rule 2 and masqueraded, the rest of
    # that exchange by rule 1 (both directions), the UDP query rejected by rule 3, the
    # SYN to 8080 and its retransmission dropped by the policy (each NEW again: the
    # first never got its entry confirmed), the SYN to port 22 reset by INPUT rule 3,
    # the ping accepted by INPUT rule 2
    assert kernel["filter:FORWARD:rule:2"] == 1 and kernel["filter:FORWARD:policy:DROP"] == 2
    assert kernel["filter:INPUT:rule:3"] == 1 and kernel["filter:INPUT:rule:2"] == 1
    # the box's own answers (the reset, the ICMP error, the echo reply) go through OUTPUT:
    # not in the capture's arrivals, so not in the comparison
    kernel = Counter({k: v for k, v in kernel.items()
                      if ":OUTPUT:" not in k and k != "nat:POSTROUTING:policy:ACCEPT"})
    ours = Counter({k: v for k, v in ours.items() if k in kernel or ":OUTPUT:" not in k})
    assert ours == kernel
    assert [row["fate"]["action"] for row in rows].count("reject") == 2


def test_a_tcpdump_capture_on_a_single_interface_box_needs_no_iif(tmp_path, capsys):
    _live_or_skip("nft", "xtables-monitor", "sysctl", "stdbuf")  # and kptui verify's tools
    scenario = tmp_path / "host.toml"
    scenario.write_text(HOST)
    capture = tmp_path / "eth0.pcap"
    with Namespaces("box", "cli") as ns:
        link(ns["box"], "eth0", "192.168.60.1/24", ns["cli"], "c0", "192.168.60.10/24")
        load_box(ns["box"], HOST)
        dump = Tcpdump(ns["box"], capture, "-i", "eth0", "-Q", "in", "ip")
        sh(sys.executable, "-c", BURST, ns=ns["cli"])
        dump.stop()
        kernel = counters(ns["box"])
    ours, rows, err = walked(scenario, capture, capsys)
    assert "(Ethernet)" in err and "eth0 (7) by the box's only interface" in err
    # the burst: -m limit's bucket holds 2, so 2 accepted and 3 dropped; 0.6 s later
    # one more token (2/sec) lets the sixth in; the datagram to port 9 is rejected. The
    # capture's times are what refills kptui's bucket too.
    assert kernel["filter:INPUT:rule:1"] == 3 and kernel["filter:INPUT:rule:2"] == 3
    assert ours == kernel
    assert [row["capture"]["frame"] for row in rows] == list(range(1, 8))
    # kptui verify --pcap sends the captured packets to a kernel box of its own, at the
    # captured times, and compares it with kptui packet by packet
    prepare = verify_prepare(str(capture), [], record=False)
    assert verify_main([str(scenario)], record=False, prepare=prepare) == 0
    assert "-- " + str(scenario) + ": 7/7 packet(s) agree" in capsys.readouterr().out
