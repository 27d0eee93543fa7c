"""Benchmark: kptui on a kube-proxy-sized ruleset (>= 20,000 rules).

Run it as ``python benchmarks/bench_iptables.py`` (root lets it also time
``iptables-restore --test`` in a throwaway network namespace). It prints a
small table and exits non-zero when a target is missed. That exit code is
for people; no test asserts timing.

What is measured, each as the median of several runs:

- parse: ``restore()`` of the whole iptables-save text into a fresh Ruleset
  (target <= 0.5 s);
- iptables-restore --test: the kernel tools parsing the same file, which also
  proves the generated file is valid iptables input (it must succeed);
- walk: one packet to a ClusterIP near the end of KUBE-SERVICES through nat
  PREROUTING (KUBE-SERVICES -> KUBE-SVC -> KUBE-SEP), filter FORWARD and nat
  POSTROUTING with ``run_chain`` (target <= 2 ms), the same with the linear
  traversal for comparison, a packet that misses every service, and the full
  engine ``walk()`` when the box and scenario modules exist.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import inspect
import io
import os
import pstats
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from figures import Figure, median_time, report  # noqa: E402
from kube_proxy import (  # noqa: E402
    POD_CIDR,
    ServicePort,
    kube_proxy_ruleset,
    without_conntrack,
)

PARSE_TARGET_S = 0.5
WALK_TARGET_MS = 2.0
NETNS = "benchE"
NODE_IP = IPv4Address("192.168.1.10")  # this node; also the API server endpoint
CNI_IP = IPv4Address("10.244.0.1")  # cni0 on this node, whose pods are 10.244.0.0/24
CLIENT_POD = IPv4Address("10.244.0.5")


# -- parse ---------------------------------------------------------------------------

def parse(text: str, path: str) -> Any:
    from kptui.engine.iptables import Ruleset, restore

    ruleset = Ruleset()
    restore(ruleset, text, file=path)
    return ruleset


# -- iptables-restore --test ---------------------------------------------------------

def restore_test(path: str, runs: int) -> tuple[float | None, str]:
    """Median time of `iptables-restore --test FILE` in a fresh netns, or (None, why)."""
    if os.geteuid() != 0:
        return None, "skipped: not root (a network namespace is needed)"
    for tool in ("ip", "iptables-restore"):
        if shutil.which(tool) is None:
            return None, f"skipped: {tool} not found"
    subprocess.run(["ip", "netns", "del", NETNS], capture_output=True)  # a crashed earlier run
    made = subprocess.run(["ip", "netns", "add", NETNS], capture_output=True, text=True)
    if made.returncode != 0:
        return None, f"skipped: ip netns add failed: {made.stderr.strip()}"
    try:
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            res = subprocess.run(["ip", "netns", "exec", NETNS, "iptables-restore", "--test", path],
                                 capture_output=True, text=True)
            times.append(time.perf_counter() - t0)
            if res.returncode != 0:
                raise SystemExit(f"iptables-restore --test rejected the generated file "
                                 f"(exit {res.returncode}): {res.stderr.strip()}")
        return statistics.median(times), "ok: the kernel tools accept the file"
    finally:
        subprocess.run(["ip", "netns", "del", NETNS], capture_output=True)


# -- the linear switch ---------------------------------------------------------------

class Traversal:
    """How to ask run_chain for the indexed or the linear traversal.

    Helper B exposes the switch in kptui/engine/iptables/traverse.py; this finds
    it whether it is a keyword of run_chain or a module attribute.
    """

    def __init__(self) -> None:
        from kptui.engine.iptables import run_chain

        self.run_chain = run_chain
        self.kwarg = "linear" if "linear" in inspect.signature(run_chain).parameters else ""
        self.module: Any = None
        self.attr = ""
        if not self.kwarg:
            try:
                mod = importlib.import_module("kptui.engine.iptables.traverse")
            except ImportError:
                mod = None
            for name in ("LINEAR", "linear", "USE_INDEX", "use_index"):
                if mod is not None and hasattr(mod, name):
                    self.module, self.attr = mod, name
                    break

    @property
    def available(self) -> bool:
        return bool(self.kwarg or self.attr)

    def describe(self) -> str:
        if self.kwarg:
            return "run_chain(..., linear=True)"
        if self.attr:
            return f"kptui.engine.iptables.traverse.{self.attr}"
        return "no linear switch found"

    def run(self, ruleset: Any, table: str, chain: str, pkt: Any, ctx: Any, *,
            linear: bool) -> tuple[str, list[Any]]:
        """Run one chain to its verdict; the events and the verdict."""
        kwargs: dict[str, Any] = {"stage": f"{table}:{chain}", "hook": chain}
        if self.kwarg:
            kwargs[self.kwarg] = linear
        old = None
        if self.attr:
            old = getattr(self.module, self.attr)
            flag = linear if self.attr.lower() == "linear" else not linear
            setattr(self.module, self.attr, flag)
        from kptui.engine.errors import UnsupportedError

        events: list[Any] = []
        try:
            gen = self.run_chain(ruleset, table, chain, pkt, ctx, **kwargs)
            try:
                while True:
                    events.append(next(gen))
            except StopIteration as stop:
                return stop.value, events
            except UnsupportedError as err:  # DNAT, MASQUERADE, conntrack: not modelled yet
                return f"unsupported: {err.what}", events
        finally:
            if self.attr:
                setattr(self.module, self.attr, old)


# -- packets and chains --------------------------------------------------------------

def addrtype(addr: IPv4Address, dev: str | None = None) -> str:
    """The node's view of an address, as the addrtype match asks for it."""
    if addr in (NODE_IP, CNI_IP) or addr.is_loopback:
        return "LOCAL"
    if addr == IPv4Address("255.255.255.255") or addr == IPv4Address("10.244.0.255"):
        return "BROADCAST"
    if addr.is_multicast:
        return "MULTICAST"
    return "UNICAST"


def pick_target(ports: list[ServicePort]) -> ServicePort:
    """A TCP service port with endpoints, as near the end of KUBE-SERVICES as possible."""
    for sp in reversed(ports):
        if sp.endpoints and sp.proto == "tcp":
            return sp
    raise SystemExit("no TCP service with endpoints was generated")


def make_packet(dst: IPv4Address, dport: int) -> Any:
    from kptui.engine.packet import Packet

    return Packet.build(proto="tcp", src=str(CLIENT_POD), dst=str(dst), sport=40000,
                        dport=dport, flags="S", iif="cni0")


def ctx_for(table: str, hook: str, pkt: Any, seed: int = 0) -> Any:
    from kptui.engine.iptables import MatchContext

    return MatchContext(hook=hook, table=table, iif=pkt.meta.iif, oif=pkt.meta.oif,
                        addrtype=addrtype, rng=random.Random(seed), now=0.0)


# The hooks a forwarded packet from a local pod crosses, with their tables. filter
# FORWARD starts with `-m conntrack --ctstate NEW` rules; while conntrack is not
# modelled, the walk enters filter KUBE-SERVICES (the chain FORWARD would jump to
# for a NEW connection) directly instead.
CHAIN_PATH = [("nat", "PREROUTING"), ("filter", "FORWARD"), ("nat", "POSTROUTING")]
FILTER_FALLBACK = ("filter", "KUBE-SERVICES")


def chain_walk(trav: Traversal, ruleset: Any, proto_pkt: Any, *, linear: bool,
               seed: int = 0) -> tuple[list[str], Any, list[Any]]:
    """The chains of CHAIN_PATH, in order, on a copy of ``proto_pkt``."""
    pkt = proto_pkt.copy()
    verdicts, events = [], []
    for table, hook in CHAIN_PATH:
        if table == "filter" and not pkt.meta.oif:
            pkt.set("meta.oif", "eth0")  # routing: another node's pod, via the uplink
        verdict, evs = trav.run(ruleset, table, hook, pkt, ctx_for(table, hook, pkt, seed),
                                linear=linear)
        verdicts.append(verdict)
        events.extend(evs)
        if verdict in ("DROP", "REJECT", "QUEUE"):
            break
    return verdicts, pkt, events


def settle_chain_path(trav: Traversal, ruleset: Any, pkt: Any) -> str:
    """Use filter KUBE-SERVICES instead of FORWARD if FORWARD needs what is not modelled."""
    verdicts, _, events = chain_walk(trav, ruleset, pkt, linear=False)
    if verdicts[1].startswith("unsupported") and len(events) and _rules_evaluated(
            [e for e in events if getattr(e, "table", "") == "filter"]) <= 1:
        CHAIN_PATH[1] = FILTER_FALLBACK
        return (f"filter FORWARD stops at its first rule ({verdicts[1]}); the walk enters "
                "filter KUBE-SERVICES (where FORWARD sends a NEW connection) directly")
    return ""


def _rules_evaluated(events: list[Any]) -> int:
    from kptui.engine.events import RuleEval

    return sum(isinstance(e, RuleEval) for e in events)


# -- the full engine walk ------------------------------------------------------------

SCENARIO = """\
name = "kube-proxy-node"
description = "A Kubernetes node: kube-proxy's iptables ruleset, a pod talks to a ClusterIP"
profile = "modern"
setup = '''
ip route add default via 192.168.1.1 dev eth0
ip route add 10.244.0.0/16 via 192.168.1.11 dev eth0
'''
iptables = '''
{iptables}'''

[sysctl]
"net.ipv4.ip_forward" = 1

[[interfaces]]
name = "eth0"
addresses = ["192.168.1.10/24"]

[[interfaces]]
name = "cni0"
addresses = ["10.244.0.1/24"]

[[packets]]
iif = "cni0"
proto = "tcp"
src = "{src}"
dst = "{dst}"
sport = 40000
dport = {dport}
"""


def full_walk_setup(text: str, dst: IPv4Address, dport: int) -> tuple[Any, Any, Any] | str:
    """(walk, box, spec), or a reason why the engine walk cannot run yet."""
    try:
        from kptui.engine.scenario import load_scenario
        from kptui.engine.walk import walk
    except ImportError as err:
        return f"not available yet ({err.name} missing)"
    toml = SCENARIO.format(iptables=text, src=CLIENT_POD, dst=dst, dport=dport)
    try:
        scenario = load_scenario(toml, file="<bench>")
        box = scenario.build_box()
    except Exception as err:  # reported in the table, not hidden
        return f"scenario failed: {type(err).__name__}: {err}"
    return walk, box, scenario.packets[0]


def run_full_walk(walk: Any, box: Any, spec: Any) -> list[Any]:
    return list(walk(box, spec.build()))


# -- main ----------------------------------------------------------------------------

def profile_top(fn: Callable[[], Any], n: int = 18) -> str:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(n)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", type=int, default=20_000, help="minimum number of rules")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=5, help="runs for the parse median")
    ap.add_argument("--walks", type=int, default=200, help="runs for the walk medians")
    ap.add_argument("--profile", action="store_true", help="print cProfile of parse and walk")
    ap.add_argument("--keep", metavar="FILE", help="also write the ruleset to FILE")
    args = ap.parse_args(argv)

    text, ports = kube_proxy_ruleset(args.rules, seed=args.seed)
    n_rules = sum(1 for line in text.splitlines() if line.startswith("-A "))
    failures: list[str] = []
    rows: list[tuple[str, str, str]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="kptui-bench-") as tmp:
        path = os.path.join(tmp, "kube-proxy.rules")
        Path(path).write_text(text)
        if args.keep:
            Path(args.keep).write_text(text)
        print(f"ruleset: {n_rules} rules, {len(text) / 1e6:.1f} MB, "
              f"{len(ports)} service ports (seed {args.seed})")

        # parse
        ruleset = parse(text, path)
        parse_s = median_time(lambda: parse(text, path), args.runs)
        ok = parse_s <= PARSE_TARGET_S
        rows.append(("parse (kptui restore)", f"{parse_s:.3f} s", f"<= {PARSE_TARGET_S} s"
                     + ("" if ok else "  MISSED")))
        if not ok:
            failures.append("parse")
        if args.profile:
            print(profile_top(lambda: parse(text, path)))

        # iptables-restore --test
        ipt_s, why = restore_test(path, 3)
        rows.append(("iptables-restore --test", f"{ipt_s:.3f} s" if ipt_s is not None else "-",
                     why))

    # walks through the chains with run_chain
    trav = Traversal()
    target = pick_target(ports)
    position = [sp for sp in ports if sp.endpoints].index(target) + 1
    n_dispatch = sum(1 for sp in ports if sp.endpoints) + 1
    print(f"hit packet: tcp {CLIENT_POD}:40000 -> {target.cluster_ip}:{target.port} "
          f"({target.port_key}, rule {position} of {n_dispatch} in nat KUBE-SERVICES)")
    hit = make_packet(target.cluster_ip, target.port)
    miss = make_packet(_unused_cluster_ip(ports), 80)

    fallback = settle_chain_path(trav, ruleset, hit)
    if fallback:
        notes.append(fallback)
    verdicts, out_pkt, events = chain_walk(trav, ruleset, hit, linear=False)
    path = " -> ".join(f"{t} {h}" for t, h in CHAIN_PATH)
    print(f"  {path}: {verdicts}")
    print(f"  {len(events)} events, {_rules_evaluated(events)} rules evaluated; trace: "
          f"{', '.join(_trace(events))}")
    if str(out_pkt.ip.dst) not in {str(ep) for ep in target.endpoints}:
        notes.append(f"the hit packet was not DNATed to an endpoint of {target.port_key} "
                     f"(dst after the walk: {out_pkt.ip.dst}); each chain was timed up to "
                     "where it stopped, which for nat PREROUTING is the DNAT rule, the last "
                     "rule the packet meets there")
    mverdicts, _, mevents = chain_walk(trav, ruleset, miss, linear=False)
    print(f"miss packet: tcp {CLIENT_POD}:40000 -> {miss.ip.dst}:80: {mverdicts}, "
          f"{_rules_evaluated(mevents)} rules evaluated")
    if trav.available:
        lin = chain_walk(trav, ruleset, hit, linear=True)
        if (lin[0], _trace(lin[2])) != (verdicts, _trace(events)):
            failures.append("indexed != linear")
            notes.append("indexed and linear traversals disagree on the hit packet")

    walk_ms = 1e3 * median_time(lambda: chain_walk(trav, ruleset, hit, linear=False), args.walks)
    rows.append(("walk hit, indexed (run_chain x3)", f"{walk_ms:.3f} ms",
                 f"<= {WALK_TARGET_MS} ms"))
    miss_ms = 1e3 * median_time(lambda: chain_walk(trav, ruleset, miss, linear=False), args.walks)
    rows.append(("walk miss, indexed", f"{miss_ms:.3f} ms", f"<= {WALK_TARGET_MS} ms"))
    if trav.available:
        walks = max(5, args.walks // 10)
        lin_ms = 1e3 * median_time(lambda: chain_walk(trav, ruleset, hit, linear=True), walks)
        rows.append(("walk hit, linear", f"{lin_ms:.3f} ms", "comparison"))
        lmiss_ms = 1e3 * median_time(lambda: chain_walk(trav, ruleset, miss, linear=True), walks)
        rows.append(("walk miss, linear", f"{lmiss_ms:.3f} ms", "comparison"))
    else:
        rows.append(("walk, linear", "-", trav.describe()))
    targeted = {"walk hit, indexed (run_chain x3)": walk_ms, "walk miss, indexed": miss_ms}

    # the full engine walk
    setup = full_walk_setup(text, target.cluster_ip, target.port)
    if isinstance(setup, str):
        rows.append(("engine walk()", "-", setup))
        notes.append("the engine walk could not run, so the walk target is judged on the "
                     "run_chain timings above: " + setup)
    else:
        walk, box, spec = setup
        evs = run_full_walk(walk, box, spec)
        fate = evs[-1]
        desc = fate.describe() if hasattr(fate, "describe") else str(fate)
        if getattr(fate, "action", "") == "error":
            full_ms = 1e3 * median_time(lambda: run_full_walk(walk, box, spec), args.walks)
            rows.append(("engine walk() until it stops", f"{full_ms:.3f} ms",
                         "not judged: the walk ends early"))
            notes.append(f"the engine walk of the hit packet ends early ({desc}), so the walk "
                         "target is judged on the run_chain timings above")
        else:
            full_ms = 1e3 * median_time(lambda: run_full_walk(walk, box, spec), args.walks)
            rows.append(("engine walk() of the hit packet", f"{full_ms:.3f} ms",
                         f"<= {WALK_TARGET_MS} ms; fate: {desc}"))
            targeted["engine walk() of the hit packet"] = full_ms
    # a whole walk that can reach its fate today: the miss packet, conntrack rules stripped
    setup = full_walk_setup(without_conntrack(text), miss.ip.dst, 80)
    name = "engine walk() of the miss packet, no ct rules"
    if isinstance(setup, str):
        rows.append((name, "-", setup))
    else:
        walk, box, spec = setup
        fate = run_full_walk(walk, box, spec)[-1]
        desc = fate.describe() if hasattr(fate, "describe") else str(fate)
        full_ms = 1e3 * median_time(lambda: run_full_walk(walk, box, spec), args.walks)
        ended = getattr(fate, "action", "") != "error"
        rows.append((name, f"{full_ms:.3f} ms",
                     (f"<= {WALK_TARGET_MS} ms; fate: " if ended else "stopped: ") + desc))
        if ended:
            targeted[name] = full_ms
    for name, ms in targeted.items():
        if ms > WALK_TARGET_MS:
            failures.append(name)
            rows[[r[0] for r in rows].index(name)] = (
                name, f"{ms:.3f} ms", f"<= {WALK_TARGET_MS} ms  MISSED")

    if args.profile:
        print(profile_top(lambda: [chain_walk(trav, ruleset, hit, linear=False)
                                   for _ in range(50)]))

    width = max(len(r[0]) for r in rows)
    print()
    print(f"{'measure':<{width}}  {'median':>10}  target / note")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>10}  {note}")
    print(f"linear switch: {trav.describe()}")
    for note in notes:
        print(f"note: {note}")
    # the parse figure against the kernel tools' own parse of the same file, this run
    print()
    report([Figure("parse (kptui restore, in-process)", parse_s, "s",
                   baseline=("iptables-restore --test", ipt_s) if ipt_s else None,
                   max_value=PARSE_TARGET_S)])
    if failures:
        print(f"FAILED: {', '.join(failures)}")
        return 1
    print("all targets met")
    return 0


def _trace(events: list[Any]) -> list[str]:
    from kptui.engine.events import trace_lines

    return trace_lines(events)


def _unused_cluster_ip(ports: list[ServicePort]) -> IPv4Address:
    used = {sp.cluster_ip for sp in ports}
    ip = IPv4Address("10.96.255.254")
    while ip in used:
        ip -= 1
    assert ip not in POD_CIDR
    return ip


if __name__ == "__main__":
    sys.exit(main())
