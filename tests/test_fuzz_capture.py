"""Fuzz: the capture's dump readers and the conntrack key never fail but with a message.

Each dump of tests/data/capture/router (what the real tools printed) is mutated as the
other fuzz tests mutate their inputs (tests/fuzzing.py), and capture() runs on the
result: it gives a scenario or a KptuiError (a ParseError naming the file), nothing
else. The conntrack lines are fuzzed through the scenario loader as well.
"""

from __future__ import annotations

from pathlib import Path

from fuzzing import fuzz, fuzz_settings, mutated, own_error_or_success
from hypothesis import given
from hypothesis import strategies as st

from kptui.capture import capture
from kptui.capture.dumps import CATALOGUE, Dump, Dumps, from_dir
from kptui.engine.scenario import load_scenario

ROUTER = Path(__file__).parent / "data" / "capture" / "router"
BASE = from_dir(str(ROUTER))
NAMES = sorted(n for n in BASE.items if n != "sysctl")  # sysctl.txt: 800 lines, slow
EXTRA = ("{", "}", "[", "]", '"dst"', '"default"', '"table"', "null", "true", "src=", "dst=",
         "sport=", "[UNREPLIED]", "ESTABLISHED", "0x", '"0x10"', "ffff:", "::", "800::800")


def _with(name: str, text: str) -> Dumps:
    dumps = Dumps(origin=BASE.origin, items=dict(BASE.items), gaps=list(BASE.gaps),
                  classes=dict(BASE.classes), filters=dict(BASE.filters))
    old = dumps.items[name]
    dumps.items[name] = Dump(name, text, old.file)
    return dumps


@fuzz
@fuzz_settings(200)
@given(st.data())
def test_a_mutated_dump_gives_a_scenario_or_a_message(data):
    name = data.draw(st.sampled_from(NAMES))
    lines = BASE.items[name].text.splitlines() or [""]
    text = data.draw(mutated(lines, EXTRA))
    keep = data.draw(st.integers(min_value=0, max_value=len(lines)))
    mixed = "\n".join(lines[:keep] + [text] + lines[keep + 1:])
    own_error_or_success(capture, _with(name, mixed), clock="", title="fuzz", live=False)


CONNTRACK = [
    "tcp      6 3599 ESTABLISHED src=192.168.1.10 dst=198.51.100.7 sport=40000 dport=443 "
    "src=198.51.100.7 dst=203.0.113.2 sport=443 dport=41000 [ASSURED] mark=0 use=1",
    "ipv4     2 udp      17 29 src=192.168.1.11 dst=198.51.100.53 sport=5353 dport=53 "
    "[UNREPLIED] src=198.51.100.53 dst=192.168.1.11 sport=53 dport=5353 mark=0 zone=0 use=2",
    "icmp     1 29 src=192.168.5.7 dst=8.8.8.8 type=8 code=0 id=77 [UNREPLIED] src=8.8.8.8 "
    "dst=192.168.5.7 type=0 code=0 id=77 mark=0 use=1",
    "tcp      6 99 SYN_SENT src=1.1.1.1 dst=2.2.2.2 sport=1 dport=2 packets=1 bytes=60 "
    "[UNREPLIED] src=2.2.2.2 dst=1.1.1.1 sport=2 dport=1 packets=0 bytes=0 mark=5 use=1",
]


@fuzz
@fuzz_settings(300)
@given(mutated(CONNTRACK, EXTRA))
def test_conntrack_lines_load_or_name_their_line(line: str):
    text = "conntrack = '''\n" + line.replace("'''", "") + "\n'''\n"
    scenario = own_error_or_success(load_scenario, text, file="s.toml")
    if not isinstance(scenario, Exception):
        own_error_or_success(scenario.build_box)


def test_the_catalogue_names_every_fixture_file():
    files = {src.file for src in CATALOGUE.values()}
    assert {p.name for p in ROUTER.iterdir() if not p.name.startswith("tc-")} <= files
