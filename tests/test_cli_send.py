"""`--send` on the command line (trace, the TUI's --no-tui text, verify's checks, sessions)
and `trace --packet N` past a reply whose original was dropped (issue 15, items 3 and 5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kptui.cli import main

SCENARIOS = Path(__file__).parent / "kernel" / "scenarios"

BOX = """
name = "cli-send"
setup = \"\"\"
ip route add default via 198.51.100.62 dev eth1
ip route add default via 192.0.2.62 dev eth0 table 100
ip rule add from 192.0.2.1 lookup 100 priority 100
\"\"\"
iptables = \"\"\"
*filter
:INPUT DROP [0:0]
-A INPUT -i eth1 -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
\"\"\"
[[interfaces]]
name = "eth0"
addresses = ["192.0.2.1/24"]

[[interfaces]]
name = "eth1"
addresses = ["198.51.100.1/26"]

[[packets]]
iif = "eth0"
proto = "udp"
src = "192.0.2.10"
dst = "192.0.2.1"
sport = 40000
dport = 53
"""

SYN = "tcp 198.51.100.7:40000 > 198.51.100.1:22 iif eth1 flags S"


@pytest.fixture
def box(tmp_path):
    path = tmp_path / "box.toml"
    path.write_text(BOX)
    return str(path)


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_trace_send_prints_the_fate_and_the_deciding_rule(capsys, box):
    status, out, err = run(capsys, "trace", box, "--send", SYN)
    assert status == 0 and err == ""
    assert out.startswith("packet 0 arrives on eth1: tcp 198.51.100.7:40000 -> "
                          "198.51.100.1:22 [S]")
    assert "=> deliver on eth1 (by filter:INPUT:rule:1)" in out
    status, out, err = run(capsys, "trace", box, "--json", "--send",
                           SYN.replace(":22", ":23"))
    row = json.loads(out)
    assert row["fate"] == {"action": "drop", "by": "filter:INPUT:policy"}
    assert row["out"]["dport"] == 23


def test_send_replaces_the_scenario_packets_and_may_repeat(capsys, box):
    status, out, _ = run(capsys, "trace", box, "--json", "--send", SYN, "--send",
                         "udp 192.0.2.1:5000 > 203.0.113.9:53 local")
    rows = [json.loads(line) for line in out.splitlines()]
    assert status == 0 and [r["packet"] for r in rows] == [0, 1]  # the file's packet is gone
    assert rows[0]["out"]["proto"] == "tcp"
    # a socket bound to 192.0.2.1: `ip rule from 192.0.2.1 lookup 100` (checked on Linux
    # 6.18, tests/kernel/scenarios/route-output-bound-source.toml)
    assert rows[1]["fate"] == {"action": "transmit", "iface": "eth0", "by": "routing"}
    status, out, _ = run(capsys, "trace", box, "--packet", "1", "--send", SYN, "--send",
                         "udp to 203.0.113.9:53 sport 5000 local")
    assert status == 0 and "packet 1 generated locally: udp 0.0.0.0:5000" in out
    assert "ip.src: 0.0.0.0 -> 198.51.100.1" in out and "=> transmit via eth1" in out
    status, _, err = run(capsys, "trace", box, "--packet", "1", "--send", SYN)
    assert status == 2 and "--packet 1: the scenario has 1 packet(s)" in err


@pytest.mark.parametrize(("send", "says"), [
    ("tcp 198.51.100.7:40000 > 198.51.100.1:22 ifx eth1",
     "word 5 'ifx': not a word of a packet (did you mean iif?)"),
    ("tcp 198.51.100.7:40000 > 198.51.100.1:22 iif eth7", "word 6 'eth7': iif 'eth7' is not"),
    ("tcp 198.51.100.7:40000 > 198.51.100.1:99999 iif eth1", "word 4 '198.51.100.1:99999': "
     "dport must be in 0..65535"),
    ("tcp 198.51.100.7 > 198.51.100.1:22 iif eth1", "a tcp packet needs sport"),
    ("198.51.100.7 > 198.51.100.1 iif eth1", "no protocol"),
])
def test_a_bad_send_exits_2_naming_the_word(capsys, box, send, says):
    status, out, err = run(capsys, "trace", box, "--send", send)
    assert status == 2 and out == ""
    assert err.startswith(f"kptui: error: --send {send!r}: ") and says in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_the_tui_text_walks_the_send_packets(capsys, box):
    status, out, err = run(capsys, box, "--no-tui", "--send", SYN)
    assert status == 0 and "=> deliver on eth1 (by filter:INPUT:rule:1)" in out
    status, _, err = run(capsys, box, "--no-tui", "--send", "tcp nonsense")
    assert status == 2 and "word 2 'nonsense'" in err


def test_a_saved_session_keeps_the_send_packets(capsys, box, tmp_path):
    session = str(tmp_path / "run.kpt")
    status, first, _ = run(capsys, "trace", box, "--send", SYN, "--save", session)
    assert status == 0
    status, replayed, err = run(capsys, "replay", session, "--headless")
    assert status == 0 and err == "" and replayed == first


@pytest.mark.parametrize(("argv", "says"), [
    (["verify", "x.toml", "--record", "--send", SYN], "--record saves the kernel's answers"),
    (["trace", "x.toml", "--send", SYN, "--pcap", "x.pcap"], "both replace the scenario"),
])
def test_send_refuses_what_it_cannot_go_with(capsys, box, argv, says):
    status, _, err = run(capsys, *[box if a.endswith(".toml") else a for a in argv])
    assert status == 2 and says in err


def test_send_with_a_session_file_is_refused(capsys, tmp_path):
    session = tmp_path / "s.kpt"
    session.write_bytes(b"\x85")
    status, _, err = run(capsys, str(session), "--send", SYN)
    assert status == 2 and "give a scenario .toml, not a session" in err


def test_help_documents_send(capsys):
    for argv in (["trace", "--help"], ["verify", "--help"], ["--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        out = " ".join(capsys.readouterr().out.split())  # argparse wraps the lines
        assert "--send 'PACKET'" in out and "(iif IFACE | local)" in out


# -- item 5: a reply whose original never got through ---------------------------------


def test_trace_packet_shows_a_packet_after_a_reply_to_a_dropped_one(capsys):
    path = str(SCENARIOS / "reply-to-dropped.toml")
    status, out, err = run(capsys, "trace", path, "--packet", "4")
    assert status == 0 and err == ""
    assert "=> transmit via eth0 (by filter:FORWARD:rule:1)" in out
    status, out, _ = run(capsys, "trace", path, "--packet", "0")
    assert "=> drop (by filter:FORWARD:rule:2)" in out
    status, out, _ = run(capsys, "trace", path, "--packet", "1")
    assert out.startswith("packet 1: the reply to packet 0, not sent\n")
    assert "=> error (by reply_to): not sent: " in out and "packet 0 was not delivered" in out
    status, out, _ = run(capsys, "trace", path, "--packet", "1", "--json")
    row = json.loads(out)
    assert row["fate"]["action"] == "error" and row["fate"]["by"] == "reply_to"
    assert row["out"] == {} and row["trace"] == [] and row["answers"] == []
