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


# Every module kptui parses but does not simulate, and how a user meets it: a walk that
# reaches it stops with the named note. Two kinds are never reached, and say why
# instead: protocol matches for protocols a kptui packet never has (the kernel, too,
# evaluates `-m sctp` only after `-p sctp`), and nfacct, whose every rule the kernel
# refuses on a kptui box (it has no accounting objects).
DECLINED_WALKS = {
    "cgroup": ("filter", "OUTPUT", "-m cgroup --cgroup 1"),
    "cpu": ("filter", "INPUT", "-m cpu --cpu 0"),
    "ipvs": ("filter", "INPUT", "-m ipvs --ipvs"),
    "osf": ("filter", "INPUT", "-p tcp -m osf --genre Linux"),
    "physdev": ("filter", "INPUT", "-m physdev --physdev-in eth1"),
    "policy": ("filter", "INPUT", "-m policy --dir in --pol none"),
    "rateest": ("filter", "INPUT", "-m rateest --rateest RE1 --rateest-lt --rateest-pps 5"),
    "CONNSECMARK": ("mangle", "INPUT", "-j CONNSECMARK --save"),
    "LED": ("filter", "INPUT", "-j LED --led-trigger-id x"),
    "RATEEST": ("filter", "INPUT", "-j RATEEST --rateest-name RE1 --rateest-interval 250ms "
                "--rateest-ewmalog 500ms"),
    "SECMARK": ("mangle", "INPUT", "-j SECMARK --selctx system_u:object_r:x:s0"),
    "SYNPROXY": ("filter", "INPUT", "-p tcp -j SYNPROXY --mss 1460"),
}
UNREACHABLE_PROTOCOL = ("ah", "dccp", "esp", "ipcomp", "sctp")
REFUSED_ON_A_KPTUI_BOX = ("nfacct",)

_WALK = """\
name = "declined"
iptables = \"\"\"
*{table}
:{chain} ACCEPT [0:0]
-A {chain} {rule}
COMMIT
\"\"\"
[[interfaces]]
name = "eth1"
addresses = ["192.0.2.1/24"]
[[packets]]
iif = "{iif}"
proto = "tcp"
src = "{src}"
dst = "{dst}"
sport = 40000
dport = 22
"""


def test_every_declined_module_is_listed_here():
    listed = set(DECLINED_WALKS) | set(UNREACHABLE_PROTOCOL) | set(REFUSED_ON_A_KPTUI_BOX)
    assert listed == set(coverage()["parsed"])


def test_a_walk_reaching_a_declined_module_stops_with_its_name():
    from kptui.engine.run import run_scenario
    from kptui.engine.scenario import load_scenario

    for name, (table, chain, rule) in DECLINED_WALKS.items():
        local = chain in ("OUTPUT", "POSTROUTING")
        text = _WALK.format(table=table, chain=chain, rule=rule,
                            iif="local" if local else "eth1",
                            src="192.0.2.1" if local else "192.0.2.10",
                            dst="192.0.2.10" if local else "192.0.2.1")
        (result,) = run_scenario(load_scenario(text, file=f"{name}.toml"))
        fate = result.to_json(with_events=False)["fate"]
        kind = "-m" if name.islower() else "-j"
        assert fate["action"] == "error", name
        assert f"unsupported yet: {kind} {name} (parsed, not simulated)" in fate["message"]


def test_protocol_matches_need_protocols_kptui_packets_never_have():
    from kptui.engine.iptables.registry import match_class
    from kptui.engine.scenario import PROTOS

    have = {"tcp": 6, "udp": 17, "icmp": 1}
    assert set(PROTOS) == set(have)
    for name in UNREACHABLE_PROTOCOL:
        protos = match_class(name).protos
        assert protos and not set(protos) & set(have.values())
