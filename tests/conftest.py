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
