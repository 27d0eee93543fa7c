"""`kptui trace` as a user runs it: formats, exit codes, one-line errors, no tracebacks."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from kptui.cli import main

GOOD = """
name = "cli"
iptables = \"\"\"
*filter
:INPUT DROP [0:0]
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
\"\"\"
[[interfaces]]
name = "eth0"
addresses = ["192.0.2.1/24"]

[[packets]]
iif = "eth0"
proto = "tcp"
src = "192.0.2.10"
dst = "192.0.2.1"
sport = 40000
dport = 22

[[packets]]
iif = "eth0"
proto = "udp"
src = "192.0.2.10"
dst = "192.0.2.1"
sport = 40000
dport = 53
"""


@pytest.fixture
def scenario(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(GOOD)
    return str(path)


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_json_is_one_object_per_packet_in_design_shape(capsys, scenario):
    status, out, err = run(capsys, "trace", scenario, "--json")
    assert status == 0 and err == ""
    lines = [json.loads(line) for line in out.splitlines()]
    assert [x["packet"] for x in lines] == [0, 1]
    assert set(lines[0]) == {"packet", "fate", "out", "trace", "answers", "events"}
    assert lines[0]["fate"] == {"action": "deliver", "iface": "eth0", "by": "filter:INPUT:rule:1"}
    assert lines[1]["fate"] == {"action": "drop", "by": "filter:INPUT:policy"}
    assert lines[1]["trace"] == ["filter:INPUT:policy:DROP"]
    assert lines[0]["events"][0]["kind"] == "walk_start"
    assert lines[0]["events"][-1]["kind"] == "fate"


def test_format_json_equals_json_flag(capsys, scenario):
    assert run(capsys, "trace", scenario, "--json")[1] == \
        run(capsys, "trace", scenario, "--format", "json")[1]


def test_trace_format_prints_trace_lines(capsys, scenario):
    status, out, _ = run(capsys, "trace", scenario, "--format", "trace")
    assert status == 0
    # as xtables-monitor --trace prints it (see tests/test_monitor.py)
    lines = [re.sub(r" MACSRC=.* MACPROTO=0800", "", line) for line in out.splitlines()]
    assert [line.split(" ", 4)[4] if line.startswith(" TRACE") else line.split(" ", 3)[0]
            for line in lines] == [
        "PACKET:", "filter:INPUT:rule:0x2:ACCEPT  -4 -t filter -A INPUT -p tcp -m tcp "
        "--dport 22 -j ACCEPT",
        "PACKET:", "filter:INPUT:policy:DROP ",
    ]


def test_packet_option_selects_one_but_state_carries_over(capsys, scenario):
    status, out, _ = run(capsys, "trace", scenario, "--json", "--packet", "1")
    (line,) = out.splitlines()
    assert json.loads(line)["packet"] == 1


def test_text_output_says_why(capsys, scenario):
    status, out, _ = run(capsys, "trace", scenario)
    assert status == 0
    assert "no match" in out  # packet 1 fails rule 1, and says why
    assert "=> drop (by filter:INPUT:policy)" in out
    assert "=> deliver on eth0 (by filter:INPUT:rule:1)" in out


def test_demo_runs(capsys):
    status, out, _ = run(capsys, "trace", "--demo", "--format", "trace")
    assert status == 0 and "TRACE:" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["trace", "missing.toml"], "missing.toml: no such file"),
        (["trace"], "needs a scenario file"),
        (["trace", "--demo", "--packet", "99"], "--packet 99: the scenario has 10 packet(s)"),
    ],
)
def test_bad_invocations_exit_2_with_one_line(capsys, argv, message):
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("name = \n", ":1:"),  # TOML syntax error: line of the file
        (GOOD.replace("--dport 22", "--dprt 22"), ":6:24: unknown option \"--dprt\""),
        (GOOD.replace('proto = "udp"', 'proto = "sctp"'), "sctp"),
        (GOOD + '\n[sysctl]\n"net.ipv4.no_such" = 1\n', "unsupported yet: sysctl"),
    ],
)
def test_bad_scenarios_name_file_and_line(capsys, tmp_path, text, where):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    status, _, err = run(capsys, "trace", str(path))
    assert status == 2
    assert str(path) in err and where in err, err


def test_unsupported_setup_line_is_named(capsys, tmp_path):
    path = tmp_path / "nft.toml"
    setup = 'setup = """\nnft add table ip kptui\n"""\n'
    path.write_text(setup + GOOD.split("iptables")[0])
    status, _, err = run(capsys, "trace", str(path))
    assert status == 2
    assert "unsupported yet: nft add table ip kptui" in err


def test_binary_file_is_refused_cleanly(capsys, tmp_path):
    path = tmp_path / "x.toml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    status, _, err = run(capsys, "trace", str(path))
    assert status == 2 and "not a text file" in err


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "kptui", "trace", "--demo", "--packet", "0",
                          "--format", "trace"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("PACKET: 2 ")
