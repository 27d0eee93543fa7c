"""Benchmark: `kptui capture` of a box with a kube-proxy-sized ruleset (>= 20,000 rules).

Run it as root: ``python benchmarks/bench_capture.py``. It builds a box in a throwaway
network namespace (two veth interfaces, a default route, the kube-proxy ruleset of
benchmarks/kube_proxy.py loaded with iptables-restore, plus 1,000 conntrack entries and
an htb tree), then times, each as the median of several runs:

- capture: the whole `kptui capture -o FILE` command inside the namespace (what a user
  waits for: the dumps, their conversion, and loading the result with kptui to check it);
- dumps: the tools alone (`ip -j`, `iptables-nft-save`, `nft list ruleset`, `tc -j`,
  `conntrack -L`), i.e. what any capture must pay;
- convert+check: capture() on dumps already read (kptui's own share);
- trace --live: `kptui trace --live --send ...` (capture in memory, then one walk).

It prints a table and exits non-zero when capture takes longer than the target (5 s).
That exit code is for people; no test asserts timing.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
sys.path.insert(0, str(PROJECT / "benchmarks"))

from kube_proxy import kube_proxy_ruleset  # noqa: E402

from kptui.verify.netns import Lab  # noqa: E402

TARGET = 5.0  # seconds for the whole capture of a 20,000-rule box
RUNS = 5
CONNTRACK_ENTRIES = 1000


def build(lab: Lab) -> str:
    ns = lab.add("box")
    for n, iface in enumerate(("eth0", "eth1")):
        peer = lab.add(f"p{n}")
        lab.host(["ip", "link", "add", iface, "netns", ns, "type", "veth", "peer", "name",
                  f"kpbp{n}", "netns", peer])
        lab.run(peer, ["ip", "link", "set", f"kpbp{n}", "up"])
        lab.run(ns, ["ip", "link", "set", iface, "up"])
    lab.run(ns, ["ip", "link", "set", "lo", "up"])
    lab.run(ns, ["ip", "addr", "add", "10.0.0.10/24", "dev", "eth0"])
    lab.run(ns, ["ip", "addr", "add", "10.244.1.1/24", "dev", "eth1"])
    lab.run(ns, ["ip", "route", "add", "default", "via", "10.0.0.1"])
    lab.run(ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
    text, _ports = kube_proxy_ruleset(20_000)
    lab.run(ns, ["iptables-restore"], stdin=text)
    for line in ("tc qdisc add dev eth0 root handle 1: htb default 20",
                 "tc class add dev eth0 parent 1: classid 1:10 htb rate 50mbit",
                 "tc class add dev eth0 parent 1: classid 1:20 htb rate 10mbit",
                 "tc filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip dport 443 "
                 "0xffff flowid 1:10"):
        lab.run(ns, line.split())
    batch = "".join(f"-I -p tcp -s 10.244.1.{n % 250 + 2} -d 10.96.{n // 250}.{n % 250 + 1} "
                    f"--sport {20000 + n} --dport 443 --state ESTABLISHED -u SEEN_REPLY,ASSURED "
                    f"-t 3600 --src-nat 10.0.0.10:{20000 + n}\n"
                    for n in range(CONNTRACK_ENTRIES))
    for line in batch.splitlines():
        lab.run(ns, ["conntrack", *line.split()])
    return ns


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=PROJECT, check=False)
    took = time.perf_counter() - start
    if done.returncode not in (0,):
        raise SystemExit(f"`{' '.join(argv)}` failed ({done.returncode}): {done.stderr}")
    return took


def main() -> int:
    if os.geteuid() != 0:
        print("bench_capture needs root (it builds a network namespace)", file=sys.stderr)
        return 2
    out = Path(tempfile.mkdtemp()) / "box.toml"
    with Lab(f"kpb{os.getpid()}") as lab:
        ns = build(lab)
        inside = ["ip", "netns", "exec", ns]
        py = [sys.executable, "-m", "kptui"]
        capture = [timed([*inside, *py, "capture", "-o", str(out)]) for _ in range(RUNS)]
        tools = [["ip", "-d", "-j", "link", "show"], ["ip", "-j", "addr", "show"],
                 ["ip", "-4", "-d", "-N", "-j", "route", "show", "table", "all"],
                 ["ip", "-4", "-d", "-N", "-j", "rule", "show"], ["iptables-nft-save"],
                 ["nft", "list", "ruleset"], ["tc", "-j", "qdisc", "show"],
                 ["conntrack", "-L"]]
        dumps = [sum(timed([*inside, *t]) for t in tools) for _ in range(RUNS)]
        trace = [timed([*inside, *py, "trace", "--live", "--send",
                        "tcp 10.244.1.2:40000 > 10.96.0.1:443 iif eth1 flags S"])
                 for _ in range(RUNS)]
        convert = []
        for _ in range(RUNS):
            script = ("import time,sys; from kptui.capture import dumps, capture; "
                      "d = dumps.live(); t = time.perf_counter(); "
                      "capture(d, clock='', title='bench', live=True); "
                      "print(time.perf_counter() - t)")
            done = subprocess.run([*inside, sys.executable, "-c", script], capture_output=True,
                                  text=True, cwd=PROJECT, check=True)
            convert.append(float(done.stdout.split()[-1]))
    text = out.read_text()
    rules = sum(1 for line in text.splitlines() if line.startswith("-A "))
    entries = text.split("conntrack = '''", 1)[1].split("'''", 1)[0].strip().count("\n") + 1
    print(f"box: {rules} iptables rules, {entries} conntrack entries, "
          f"scenario {len(text) / 1e6:.1f} MB")
    rows = [("capture (whole command)", capture), ("  the tools' dumps alone", dumps),
            ("  convert + load check", convert), ("trace --live --send", trace)]
    for name, values in rows:
        print(f"{name:<28} median {statistics.median(values):6.2f} s   "
              f"min {min(values):6.2f} s")
    ok = statistics.median(capture) <= TARGET
    print(f"target: capture <= {TARGET:.0f} s: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
