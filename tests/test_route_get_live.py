"""`kptui route get` against the real `ip route get` in a namespace built from a scenario.

The namespace is built by verify's own machinery (kptui.verify.kernel.KernelBox), so it
is the box `kptui verify` would run the scenario in. Skipped only when not root (and
failing instead under CI=true, like the other live tests).
"""

from __future__ import annotations

import os
import shutil
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from kptui.cli import route_get_mark, route_get_tos
from kptui.engine.routing import RouteError
from kptui.engine.scenario import load_scenario

SCENARIOS = Path(__file__).parent / "kernel" / "scenarios"

# (scenario, `ip route get` arguments); the scenario's sysctls apply (ip_forward=1).
CASES = [
    ("route-fwmark-prerouting", "198.51.100.200"),
    ("route-fwmark-prerouting", "198.51.100.200 mark 1"),
    ("route-fwmark-prerouting", "198.51.100.200 mark 15"),
    ("route-fwmark-prerouting", "198.51.100.200 from 192.0.2.1 mark 1"),
    ("route-fwmark-prerouting", "198.51.100.200 from 192.0.2.10 iif eth0"),
    ("route-fwmark-prerouting", "198.51.100.200 from 192.0.2.10 iif eth0 mark 1"),
    ("route-fwmark-prerouting", "198.51.100.200 from 198.51.100.10 iif eth1"),
    ("route-fwmark-prerouting", "192.0.2.1"),
    ("route-fwmark-prerouting", "192.0.2.1 from 198.51.100.10 iif eth1"),
    ("route-fwmark-prerouting", "192.0.2.63"),
    ("route-fwmark-prerouting", "192.0.2.20"),
    ("route-fwmark-prerouting", "198.51.100.200 from 192.0.2.9"),
    ("route-fwmark-mask", "198.51.100.200 mark 0x1f"),
    ("route-fwmark-mask", "198.51.100.200 mark 0x2f"),
    ("route-rule-to", "203.0.113.200"),
    ("route-rule-tos", "198.51.100.200 from 192.0.2.10 iif eth0 tos 0x10"),
    ("route-rule-iif", "198.51.100.200 from 192.0.2.10 iif eth0"),
    ("route-rule-iif", "192.0.2.130"),
    ("route-rule-actions", "203.0.113.70"),
    ("route-rule-actions", "203.0.113.130"),
    ("route-rule-actions", "203.0.113.200"),
    ("route-rule-goto-nop", "198.51.100.200"),
    ("route-rule-goto-nop", "192.0.2.100"),
    ("route-rule-suppress-prefixlength", "203.0.113.200"),
    ("route-rule-suppress-prefixlength", "198.51.100.200 oif eth2"),
    ("route-throw", "198.51.100.200"),
    ("route-multipath-dead-path", "198.51.100.200"),
    ("route-default-rules-removed", "198.51.100.200"),
    ("route-named-table", "198.51.100.200 mark 2"),
    # an output lookup with a source (a bound socket): `ip rule from` applies; with an oif,
    # any lookup error (an unreachable route, a prohibit rule) is "on link"; a limited
    # broadcast from an address leaves by that address's device, without a lookup; a
    # loopback source may not leave by another device
    ("route-output-bound-source", "198.51.100.200"),
    ("route-output-bound-source", "198.51.100.200 from 192.0.2.1"),
    ("route-output-bound-source", "198.51.100.200 from 198.51.100.1"),
    ("route-output-bound-source", "203.0.113.9 from 192.0.2.1"),
    ("route-output-bound-source", "203.0.113.9 from 192.0.2.1 oif eth0"),
    ("route-output-bound-source", "203.0.113.9 from 192.0.2.1 oif eth1"),
    ("route-output-bound-source", "198.51.100.200 from 192.0.2.2"),
    ("route-output-bound-source", "198.51.100.200 from 192.0.2.2 oif eth1"),
    ("route-output-bound-source", "255.255.255.255"),
    ("route-output-bound-source", "255.255.255.255 oif eth0"),
    ("route-output-bound-source", "255.255.255.255 from 192.0.2.1"),
    ("route-output-bound-source", "255.255.255.255 from 192.0.2.2 oif eth1"),
    ("route-output-bound-source", "198.51.100.200 from 127.0.0.1"),
    ("route-output-bound-source", "198.51.100.200 from 127.0.0.1 oif lo"),
    ("route-output-bound-source", "198.51.100.200 from 224.0.0.5"),
]


def _live_or_skip() -> None:
    why = "not root" if os.geteuid() != 0 else (
        "ip is missing" if shutil.which("ip") is None else "")
    if why:
        message = f"live `ip route get` comparison impossible here: {why}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def _kptui(scenario, words: list[str]) -> str:
    opts = dict(zip(words[1::2], words[2::2], strict=True))
    box = scenario.build_box()
    try:
        _result, text = box.route_get(
            IPv4Address(words[0]),
            src=IPv4Address(opts["from"]) if "from" in opts else None,
            iif=opts.get("iif", ""), oif=opts.get("oif", ""),
            mark=route_get_mark(opts.get("mark", "0")),
            tos=route_get_tos(opts.get("tos", "0")))  # as the CLI reads them (tos is hex)
    except RouteError as err:
        return str(err)
    # rt_tables names exist only in the scenario: the namespace's `ip` prints numbers
    for name, number in scenario.rt_tables.items():
        text = text.replace(f" table {name} ", f" table {number} ")
    return text


@pytest.mark.parametrize("name", sorted({name for name, _ in CASES}))
def test_route_get_agrees_with_the_kernel(name: str):
    _live_or_skip()
    from kptui.verify import scenario_plan
    from kptui.verify.kernel import KernelBox
    from kptui.verify.netns import CommandError, Lab

    path = SCENARIOS / f"{name}.toml"
    scenario = load_scenario(path.read_text(), file=str(path))
    plan = scenario_plan(scenario)
    with Lab(f"kpm{os.getpid()}") as lab:
        kbox = KernelBox(lab, plan)
        kbox.build()
        for case, args in CASES:
            if case != name:
                continue
            words = args.split()
            try:
                kernel = lab.run(kbox.box, ["ip", "route", "get", *words])
            except CommandError as err:
                kernel = err.detail.strip()
            assert _kptui(scenario, words) == kernel, args
