"""Every iptables 1.8.9 module is simulated (and kernel-verified), or parsed and declined
by name, and the README says which (issue 14)."""

from __future__ import annotations

import re
from itertools import zip_longest
from pathlib import Path

from kptui.engine.iptables.registry import coverage

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = "\n".join(p.read_text("utf-8")
                      for p in (ROOT / "tests" / "kernel" / "scenarios").glob("*.toml"))


def readme_table() -> str:
    """The three-column table of modules, as the README should show it."""
    cov = coverage()
    rows = ["| simulated | parsed, not simulated | unknown to kptui |", "|---|---|---|"]
    for row in zip_longest(cov["simulated"], cov["parsed"], cov["unknown"], fillvalue=""):
        rows.append("| " + " | ".join(f"`{n}`" if n else "" for n in row) + " |")
    return "\n".join(rows)


def test_the_readme_lists_the_modules_as_kptui_treats_them():
    readme = (ROOT / "README.md").read_text("utf-8")
    assert readme_table() in readme, "README's module table is out of date:\n" + readme_table()
    for name in coverage()["gone"]:
        assert f"`{name}`" in readme


def test_every_simulated_module_has_a_kernel_verified_scenario():
    # the verify corpus runs live in CI and against its recorded answers everywhere
    missing = []
    for name in coverage()["simulated"]:
        if name in ("tcp", "udp", "icmp"):
            pattern = rf"-p {name}\b"
        elif name.islower():
            pattern = rf"-m {name}\b"
        else:
            pattern = rf"-j {name}\b"
        if not re.search(pattern, SCENARIOS):
            missing.append(name)
    assert not missing
