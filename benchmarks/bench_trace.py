"""Benchmark: `kptui trace` of the 20,000-rule kube-proxy scenario, whole process (issue 16).

Run it as ``python benchmarks/bench_trace.py [--runs N]``; as root it also times the
kernel tools on the same rules, each in a throwaway network namespace:

- ``iptables-restore --test FILE`` (parse and check, nothing loaded), and
- a real ``iptables-restore FILE`` (into a fresh namespace for every run),

and prints each kptui figure against them (targets: <= 2x --test, <= 1x the real
restore). kptui runs as a user runs it, ``python -m kptui trace SCENARIO``: start-up,
imports, the scenario, the restore, the walk and the exit; with the ruleset inline
(``iptables = '''...'''``) and in a file of its own (``iptables_file = "rules.v4"``).
When the namespaces are used, every command (kptui's too) runs under the same
``ip netns exec``, so its cost is on both sides. The runs of the four commands are
interleaved, and each figure is the median of its runs: a busy machine slows all of
them alike. Before timing, one run of each scenario writes Python's bytecode caches
(as an installed kptui has them) and checks that both give the same trace.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_iptables import CLIENT_POD, SCENARIO, pick_target  # noqa: E402
from figures import Figure, report  # noqa: E402
from kube_proxy import kube_proxy_ruleset  # noqa: E402

NETNS = "benchT"
MAX_VS_TEST = 2.0
MAX_VS_RESTORE = 1.0
INLINE = "iptables = '''\n{iptables}'''"


def write_scenarios(where: Path, rules: int, seed: int) -> tuple[Path, Path, Path, int]:
    """(inline scenario, iptables_file scenario, the rules file, number of rules)."""
    text, ports = kube_proxy_ruleset(rules, seed=seed)
    target = pick_target(ports)
    fields = {"src": CLIENT_POD, "dst": target.cluster_ip, "dport": target.port}
    assert INLINE in SCENARIO
    inline = where / "kube-proxy.toml"
    inline.write_text(SCENARIO.format(iptables=text, **fields))
    rules_file = where / "rules.v4"
    rules_file.write_text(text)
    external = where / "kube-proxy-file.toml"
    external.write_text(SCENARIO.replace(INLINE, 'iptables_file = "rules.v4"')
                        .format(**fields))
    return inline, external, rules_file, text.count("\n-A ")


def kptui_env() -> dict[str, str]:
    """This environment, with bytecode caches written and read as an installed kptui's."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")])
    return env


def can_use_netns() -> str:
    """"" when the kernel tools can be timed, else why not."""
    if os.geteuid() != 0:
        return "not root (a network namespace is needed)"
    for tool in ("ip", "iptables-restore"):
        if shutil.which(tool) is None:
            return f"{tool} not found"
    return ""


def netns(*args: str) -> None:
    subprocess.run(["ip", "netns", *args], capture_output=True, check=args[0] == "add")


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    res = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env=env)
    took = time.perf_counter() - start
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {res.returncode}): "
                         f"{res.stderr.strip()}")
    return took


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", type=int, default=20_000, help="minimum number of rules")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=7, help="runs of each command (median)")
    args = ap.parse_args(argv)

    why_not = can_use_netns()
    env = kptui_env()
    with tempfile.TemporaryDirectory(prefix="kptui-bench-trace-") as tmp:
        inline, external, rules_file, n_rules = write_scenarios(Path(tmp), args.rules,
                                                                args.seed)
        print(f"ruleset: {n_rules} rules, {rules_file.stat().st_size / 1e6:.1f} MB "
              f"(seed {args.seed}); {args.runs} runs of each command, interleaved")
        kptui = [sys.executable, "-m", "kptui", "trace"]
        outputs = [subprocess.run([*kptui, str(path)], capture_output=True, text=True,
                                  env=env, check=True).stdout for path in (inline, external)]
        if outputs[0] != outputs[1]:
            raise SystemExit("the inline and the iptables_file scenario trace differently")
        wrap: list[str] = []
        if not why_not:
            netns("del", NETNS)  # left by a crashed earlier run
            netns("add", NETNS)
            wrap = ["ip", "netns", "exec", NETNS]
        samples: dict[str, list[float]] = {k: [] for k in ("inline", "file", "test", "real",
                                                           "python")}
        try:
            for run in range(args.runs):
                samples["python"].append(timed([*wrap, sys.executable, "-c", "pass"], env))
                samples["inline"].append(timed([*wrap, *kptui, str(inline)], env))
                samples["file"].append(timed([*wrap, *kptui, str(external)], env))
                if why_not:
                    continue
                samples["test"].append(timed([*wrap, "iptables-restore", "--test",
                                              str(rules_file)]))
                fresh = f"{NETNS}{run}"
                netns("del", fresh)
                netns("add", fresh)
                try:
                    samples["real"].append(timed(["ip", "netns", "exec", fresh,
                                                  "iptables-restore", str(rules_file)]))
                finally:
                    netns("del", fresh)
        finally:
            if not why_not:
                netns("del", NETNS)

    med = {k: statistics.median(v) for k, v in samples.items() if v}
    rows = [Figure("python start-up (python -c pass)", med["python"], "s")]
    for key, what in (("file", 'kptui trace, iptables_file = "rules.v4"'),
                      ("inline", "kptui trace, iptables = '''...''' inline")):
        if why_not:
            rows.append(Figure(what, med[key], "s"))
            continue
        rows.append(Figure(what, med[key], "s", baseline=("iptables-restore --test",
                                                          med["test"]),
                           max_ratio=MAX_VS_TEST))
        rows.append(Figure(what, med[key], "s", baseline=("iptables-restore", med["real"]),
                           max_ratio=MAX_VS_RESTORE))
    if why_not:
        print(f"kernel tools not timed: {why_not}")
    return 0 if report(rows, title=f"whole process, median of {args.runs}") else 1


if __name__ == "__main__":
    sys.exit(main())
