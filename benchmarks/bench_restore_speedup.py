"""The restore path against itself before issue 16: at least 2x faster (issue 16's target).

    python benchmarks/bench_restore_speedup.py [--runs 9] [--rules 20000] [--before REV]

Checks out REV (default: the commit before issue 16's first change, ``940b423~1``) into a
throwaway git worktree, and times ``restore()`` of the same 20,000-rule kube-proxy dump
(benchmarks/kube_proxy.py) in a fresh process of each tree, the runs interleaved so that a
busy machine slows both alike; prints the medians and their ratio. A fresh process each
time, because that is what a user's ``kptui trace`` or launch is: the parse plans
(plans.py, compiled.py) are made by the first rules of each shape in that process.
Needs git and the project's history (a clone, not an sdist).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from figures import Figure, report  # noqa: E402
from kube_proxy import kube_proxy_ruleset  # noqa: E402

BEFORE = "940b423~1"  # "checkpoints snapshot the box's state": issue 16's first commit
MIN_SPEEDUP = 2.0
TIMER = """\
import sys, time
from kptui.engine.iptables.commands import restore
from kptui.engine.iptables.model import Ruleset
text = open(sys.argv[1], encoding="utf-8").read()
start = time.perf_counter()
restore(Ruleset(), text, file="rules.v4")
print(time.perf_counter() - start)
"""


def timed(tree: Path, rules: Path) -> float:
    out = subprocess.run([sys.executable, "-c", TIMER, str(rules)], check=True, text=True,
                         capture_output=True, cwd=tree, env={"PYTHONPATH": str(tree),
                                                             "PATH": "/usr/bin:/bin"})
    return float(out.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--rules", type=int, default=20000)
    parser.add_argument("--before", default=BEFORE)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        rules = where / "rules.v4"
        rules.write_text(kube_proxy_ruleset(args.rules, seed=1)[0], encoding="utf-8")
        old = where / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(old),
                        args.before], check=True)
        try:
            now, then = [], []
            for _ in range(args.runs):
                then.append(timed(old, rules))
                now.append(timed(ROOT, rules))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)],
                           check=False)
    before, after = statistics.median(then), statistics.median(now)
    print(f"restore of {args.rules} kube-proxy rules, a fresh process each, median of "
          f"{args.runs} interleaved runs")
    ok = report([Figure("restore now", after, "s", baseline=(f"before ({args.before})", before),
                        max_ratio=1 / MIN_SPEEDUP)])
    print(f"speed-up: {before / after:.2f}x (target >= {MIN_SPEEDUP:.0f}x)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
