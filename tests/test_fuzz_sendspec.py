"""--send texts, mutated: a packet (built and walked) or the project's own error naming
the text, never anything else (kptui.engine.sendspec, then the scenario's [[packets]]
rules, then a walk of what they accepted).

The long run: ``KPTUI_FUZZ_EXAMPLES=5000 python3 -m pytest tests/test_fuzz_sendspec.py -m fuzz``.
"""

from __future__ import annotations

from fuzzing import fuzz, fuzz_settings, mutated, own_error_or_success
from hypothesis import given

from kptui.engine.errors import KptuiError
from kptui.engine.run import run_scenario
from kptui.engine.scenario import load_scenario
from kptui.engine.sendspec import apply_sends

BOX = """
[[interfaces]]
name = "eth0"
addresses = ["192.0.2.1/24"]
[[interfaces]]
name = "eth1"
addresses = ["198.51.100.1/24"]
"""
CORPUS = (
    "tcp 198.51.100.7:40000 > 192.0.2.1:22 iif eth1 flags S",
    "tcp 198.51.100.7.40000 > 192.0.2.10.22 iif eth1 flags [S.] options [mss 1460,nop] ttl 3",
    "udp 192.0.2.1:5000 > 8.8.8.8:53 local mark 0x1 uid 1000 gid 100 tos 0x10",
    "udp to 8.8.8.8 sport 5000 dport 53 local time 1.5 df off",
    "icmp 203.0.113.9 > 192.0.2.1 iif eth1 type echo-request id 7 code 0",
    "icmp 203.0.113.9 > 192.0.2.1 iif eth1 port-unreachable length 60",
    "ipproto tcp from 192.0.2.10:1 to 198.51.100.7:2 iif eth0 seq 1 ack 2 flags R.",
)
WORDS = ("iif", "local", "from", "to", ">", "flags", "type", "options", "[", "]", "time",
         "df", "eth0", "eth9", "tcp", "udp", "icmp", "ipproto", "S.", "[S.]", "0.0.0.0")


@fuzz
@fuzz_settings(400)
@given(mutated(CORPUS, WORDS))
def test_a_mutated_send_is_a_packet_or_our_error(text):
    scenario = load_scenario(BOX, file="box.toml")
    got = own_error_or_success(apply_sends, scenario, [text])
    if isinstance(got, KptuiError):
        assert str(got).startswith("--send ")
        return
    assert len(scenario.packets) == 1
    for result in run_scenario(scenario):  # what was accepted walks (or errs by name)
        assert result.fate.action
