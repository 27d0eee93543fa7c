"""Suite-wide rules.

Under CI=true (what .ci/run runs with) a skipped test is a failure: every test
here can run on CI's machine (root, the kernel tools installed by .ci/run), so
a skip there means something is missing and checking silently stopped.
"""

from __future__ import annotations

import os

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # noqa: ANN001, ANN201 - pytest hook
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped under CI=true, which must not happen: {reason}"


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ANN001, ANN201, ARG001
    """Per-extension counts of iptables' extension tests (tests/test_iptables_extensions.py)."""
    import sys

    mod = sys.modules.get("test_iptables_extensions")
    tally = getattr(mod, "TALLY", None)
    if not tally:
        return
    right = sum(r for r, _ in tally.values())
    total = sum(n for _, n in tally.values())
    terminalreporter.section("iptables extension tests (iptables 1.8.9, per test file)")
    cells = [f"{ext.removeprefix('lib')[:20]:20} {r:3}/{n:<3}"
             for ext, (r, n) in sorted(tally.items())]
    for i in range(0, len(cells), 4):
        terminalreporter.write_line("   ".join(cells[i:i + 4]))
    terminalreporter.write_line(f"all: {right}/{total} cases as iptables-nft takes them")
