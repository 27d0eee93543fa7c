"""One way for every benchmark to print its figures: value, same-run baseline, ratio, target.

Issue 16 asks each benchmark to print its figures and their ratio against a baseline
measured in the same run (a figure alone says little on a machine busier or slower than
the one the target was set on). A benchmark builds ``Figure`` rows and calls ``report``,
which prints a table and returns whether every target held; the benchmark turns that into
its exit code. That exit code is for people: no test asserts timing.

    rows = [Figure("trace 20k rules", 0.31, "s", baseline=("iptables-restore --test", 0.18),
                   max_ratio=2.0)]
    sys.exit(0 if report(rows) else 1)
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    """A measured value, optionally against a baseline of the same run and a target.

    ``max_ratio`` bounds value / baseline; ``max_value`` bounds the value itself (in
    ``unit``). A figure without either is printed for information.
    """

    name: str
    value: float
    unit: str  # "s", "ms", "MB", "x" ...
    baseline: tuple[str, float] | None = None  # (what it is, its value in the same unit)
    max_ratio: float | None = None
    max_value: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.baseline[1]:
            return None
        return self.value / self.baseline[1]

    @property
    def ok(self) -> bool:
        if self.max_value is not None and self.value > self.max_value:
            return False
        ratio = self.ratio
        return not (self.max_ratio is not None and ratio is not None
                    and ratio > self.max_ratio)

    def line(self) -> str:
        text = f"{self.name:<44} {_num(self.value):>9} {self.unit:<3}"
        if self.baseline is not None:
            what, base = self.baseline
            text += f"  vs {what} {_num(base)} {self.unit}"
            if self.ratio is not None:
                text += f" = {self.ratio:.2f}x"
        targets = []
        if self.max_value is not None:
            targets.append(f"<= {_num(self.max_value)} {self.unit}")
        if self.max_ratio is not None:
            targets.append(f"<= {self.max_ratio:g}x")
        if targets:
            text += f"  (target {', '.join(targets)}) {'ok' if self.ok else 'MISSED'}"
        return text


def _num(value: float) -> str:
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def report(rows: Sequence[Figure], title: str = "") -> bool:
    """Print the rows as a table; True when every target held."""
    if title:
        print(title)
    for row in rows:
        print("  " + row.line())
    ok = all(row.ok for row in rows)
    print("all targets held" if ok else "SOME TARGETS MISSED")
    return ok


def median_time(fn: Callable[[], object], runs: int = 5) -> float:
    """Median wall time of ``runs`` calls of ``fn``, in seconds."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)
