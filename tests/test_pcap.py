"""`--pcap FILE [--iif IFACE]`: a capture's IPv4 packets walked through the box.

The truth for the walks is the kernel's: every scenario of the kernel corpus whose
packets a capture can carry is written as a pcapng (one interface per arrival
interface, named like it, timestamps from the packets' `time`), walked with --pcap,
and compared with the scenario's recorded kernel answers (NAME.kernel.jsonl, from
`kptui verify --record` on Linux 6.18). tests/test_pcap_live.py does the same with
captures tcpdump made of real traffic. The captures here are written with dpkt, the
library kptui reads them with (tests/pcap_frames.py).
"""

from __future__ import annotations

import contextlib
import io
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from pcap_frames import (
    ETHERNET,
    RAW,
    SLL,
    SLL2,
    ether,
    pcap_file,
    pcapng_file,
    sll,
    sll2,
    vlan,
)

from kptui.cli import main
from kptui.engine.packet import Packet
from kptui.engine.scenario import load_scenario
from kptui.pcapin import Arrivals, from_bytes
from kptui.pcapio import CaptureError, Record, frames, write_pcap
from kptui.pcaprun import use_capture
from kptui.verify import kernel_answers_path, simulate
from kptui.verify.compare import compare_all, render

SCENARIOS = Path(__file__).parent / "kernel" / "scenarios"
T0 = 1_700_000_000 * 10**9  # the captures' first timestamp, ns since the epoch

ROUTER = """\
[sysctl]
"net.ipv4.ip_forward" = 1
[[interfaces]]
name = "eth0"
addresses = ["192.0.2.1/24"]
[[interfaces]]
name = "eth1"
addresses = ["198.51.100.1/24"]
"""
HOST = """\
iptables = \"\"\"
*filter
:INPUT ACCEPT [0:0]
-A INPUT -p udp --dport 53 -j ACCEPT
-A INPUT -p udp -j DROP
COMMIT
\"\"\"
[[interfaces]]
name = "eth0"
addresses = ["192.0.2.1/24"]
"""


def udp(dport: int = 53, *, src: str = "192.0.2.10", dst: str = "192.0.2.1",
        length: int | None = None) -> bytes:
    return Packet.build("udp", src=src, dst=dst, sport=40000, dport=dport,
                        length=length).to_bytes()


def corpus() -> list[Path]:
    """The recorded scenarios a capture can carry: no reply_to (built from a walk), no
    local packet with a mark or an owner (a capture holds neither)."""
    out = []
    for path in sorted(SCENARIOS.glob("*.toml")):
        if path.with_suffix(".xfail").exists() or path.with_suffix(".vm").exists():
            continue
        sc = load_scenario(path.read_text("utf-8"), file=str(path))
        if any(s.reply_to is not None or (s.origin == "local" and (s.mark or s.uid or s.gid))
               for s in sc.packets):
            continue
        out.append(path)
    return out


def as_pcapng(scenario) -> tuple[bytes, list[str]]:  # noqa: ANN001
    """The scenario's packets as a pcapng: an interface per origin, named like it."""
    names = sorted({s.origin for s in scenario.packets})
    packets = [(names.index(s.origin), T0 + round(s.time * 1e9), ether(s.build().to_bytes()),
                None) for s in scenario.packets]
    return pcapng_file([(ETHERNET, n) for n in names], packets), names


def test_the_kernel_corpus_walked_from_pcapng_agrees_with_the_recorded_kernel(tmp_path):
    # interface names give each packet's iif ("local" mapped to the box's own sends),
    # timestamps its time: timeouts (ct-tcp-syn-timeout, ct-udp-timeout), token buckets
    # (ext-limit, ext-hashlimit, tc-tbf-burst) and -m time see the same clock
    paths = corpus()
    assert len(paths) >= 200
    bad = []
    for path in paths:
        scenario = load_scenario(path.read_text("utf-8"), file=str(path))
        data, names = as_pcapng(scenario)
        capture = tmp_path / f"{path.stem}.pcapng"
        capture.write_bytes(data)
        with contextlib.redirect_stderr(io.StringIO()):
            use_capture(scenario, str(capture), ["local=local"] if "local" in names else [])
        kernel = [json.loads(line) for line in kernel_answers_path(path).read_text().splitlines()]
        bad += [f"{path.stem}: {render(v, '')}" for v in compare_all(kernel, simulate(scenario))
                if not v.agrees]
    assert bad == [], "\n".join(bad[:5])


def run(argv: list[str], capsys) -> tuple[int, str, str]:  # noqa: ANN001
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_trace_pcap_one_walk_per_packet_with_frame_time_and_kernel_fates(tmp_path, capsys):
    # ct-tcp-syn-timeout: the SYN/ACK 4 s after the SYN finds the 2 s SYN_SENT entry gone:
    # INVALID, dropped by the stateful FORWARD (its recorded kernel answers)
    path = SCENARIOS / "ct-tcp-syn-timeout.toml"
    scenario = load_scenario(path.read_text("utf-8"), file=str(path))
    built = [s.build() for s in scenario.packets]
    frames_ = [(T0, ether(built[0].to_bytes())), (T0 + 1, ether(b"\0" * 28, 0x0806)),
               (T0 + 4 * 10**9, ether(built[1].to_bytes()))]
    capture = tmp_path / "cap.pcap"
    capture.write_bytes(pcap_file(frames_))
    code, out, err = run(["trace", str(path), "--pcap", str(capture), "--json",
                          "--iif", "eth0"], capsys)
    assert code == 0, err
    # one walk per IPv4 packet, numbered as the capture numbers its frames, at the
    # capture's times from the first; the ARP frame is counted, never silently dropped
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["packet"], r["capture"]) for r in rows] == [(0, {"frame": 1, "time": 0.0}),
                                                           (1, {"frame": 3, "time": 4.0})]
    assert f"kptui: note: {capture}: skipped 1 frame(s): 1 ARP (not IPv4)" in err
    # a pcapng says where each arrived: the SYN on eth0, the SYN/ACK on eth1, as the
    # kernel saw them
    kernel = [json.loads(line) for line in kernel_answers_path(path).read_text().splitlines()]
    pcapng = tmp_path / "cap.pcapng"
    pcapng.write_bytes(pcapng_file([(ETHERNET, "eth0"), (ETHERNET, "eth1")],
                                   [(0, T0, frames_[0][1], None),
                                    (1, T0 + 4 * 10**9, frames_[2][1], None)]))
    code, out, err = run(["trace", str(path), "--pcap", str(pcapng), "--json"], capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["fate"] for r in rows] == [k["fate"] for k in kernel]
    assert [r["trace"] for r in rows] == [k["trace"] for k in kernel]
    assert "arrival interfaces: eth0 (1) by the capture's interface names, eth1 (1) by the " \
           "capture's interface names" in err
    code, out, err = run(["trace", str(path), "--pcap", str(pcapng)], capsys)
    assert out.startswith("frame 1 at +0.000000 s\npacket 0 arrives on eth0: tcp ")
    assert "\nframe 2 at +4.000000 s\npacket 1 arrives on eth1: tcp " in out


def loaded(data: bytes, iif: list[str] = (), interfaces: tuple[str, ...] = ("lo", "eth0")):
    return from_bytes(data, file="cap", arrivals=Arrivals.parse(iif, interfaces))


def test_link_layers_and_what_is_not_walked():
    ip = udp()
    six = bytes([0x60]) + bytes(39)
    # Ethernet: ARP, IPv6 and VLAN-tagged frames are counted by kind, not walked
    got = loaded(pcap_file([(T0, ether(ip)), (T0 + 1, ether(b"\0" * 28, 0x0806)),
                            (T0 + 2, ether(six, 0x86DD)), (T0 + 3, vlan(ip))]))
    assert [p.frame for p in got.packets] == [1]
    assert got.notes[1] == ("cap: skipped 3 frame(s): 1 ARP (not IPv4); 1 IPv6 (kptui walks "
                            "IPv4 only); 1 VLAN-tagged (unsupported yet: 802.1Q/802.1ad tags)")
    # raw IP: the version nibble tells IPv4 from IPv6
    got = loaded(pcap_file([(T0, ip), (T0, six)], linktype=RAW))
    assert [p.frame for p in got.packets] == [1] and "1 IPv6" in got.notes[1]
    # SLL (tcpdump -i any, older libpcap): the box's own sends and loopback frames are not
    # arrivals; a frame to another host's MAC is dropped by ip_rcv before any hook
    got = loaded(pcap_file([(T0, sll(ip)), (T0, sll(ip, pkttype=4)),
                            (T0, sll(ip, hatype=772)), (T0, sll(ip, pkttype=3))], linktype=SLL))
    assert [p.frame for p in got.packets] == [1]
    assert "1 sent by the box" in got.notes[1] and "1 on the loopback device" in got.notes[1]
    assert "1 to another host's address (PACKET_OTHERHOST" in got.notes[1]
    # --iif local walks the box's own sends (from a socket) and not the arrivals
    got = loaded(pcap_file([(T0, sll(ip)), (T0, sll(ip, pkttype=4))], linktype=SLL), ["local"])
    assert [(p.frame, p.origin, p.packet.meta.iif) for p in got.packets] == [(2, "local", "")]


def test_sll2_interface_indexes_need_the_box_names(capsys, tmp_path):
    capture = tmp_path / "any.pcap"
    capture.write_bytes(pcap_file([(T0, sll2(udp(dst="198.51.100.7"), ifindex=2)),
                                   (T0, sll2(udp(src="198.51.100.7", dst="192.0.2.10"),
                                             ifindex=3))], linktype=SLL2))
    box = tmp_path / "box.toml"
    box.write_text(ROUTER)
    code, out, err = run(["trace", str(box), "--pcap", str(capture)], capsys)
    assert code == 2 and out == ""
    assert err == (f"kptui: error: {capture}: frame 1 arrived on interface index 2 of the "
                   "capturing machine (SLL2), which the scenario does not number; the box has "
                   "eth0, eth1: give --iif 2=NAME, or --iif NAME for every packet\n")
    code, out, err = run(["trace", str(box), "--pcap", str(capture), "--json", "--iif", "2=eth0",
                          "--iif", "3=eth1"], capsys)
    assert code == 0, err
    # forwarded out of the other interface each (ip_forward = 1)
    assert [json.loads(line)["fate"]["iface"] for line in out.splitlines()] == ["eth1", "eth0"]
    assert "arrival interfaces: eth0 (1) by --iif 2=eth0, eth1 (1) by --iif 3=eth1" in err


def test_where_the_packets_arrive_must_be_told_when_the_box_has_several(tmp_path, capsys):
    capture = tmp_path / "cap.pcap"
    capture.write_bytes(pcap_file([(T0, ether(udp()))]))
    box = tmp_path / "box.toml"
    box.write_text(ROUTER)
    code, _, err = run(["trace", str(box), "--pcap", str(capture)], capsys)
    assert (code, err) == (2, f"kptui: error: {capture}: frame 1 does not say which interface "
                              "it arrived on; the box has eth0, eth1: give --iif NAME (or "
                              "--iif local for the box's own packets)\n")
    code, _, err = run(["trace", str(box), "--pcap", str(capture), "--iif", "eth9"], capsys)
    assert (code, err) == (2, "kptui: error: --iif eth9: 'eth9' is not an interface of the box "
                              "(eth0, eth1) nor local\n")
    code, _, err = run(["trace", str(box), "--iif", "eth0"], capsys)
    assert (code, err) == (2, "kptui: error: --iif names where the packets of --pcap FILE "
                              "arrive: give --pcap\n")
    code, _, err = run(["trace", str(box), "--pcap", str(capture), "--iif", "eth0",
                        "--save", str(tmp_path / "s.kpt")], capsys)
    assert code == 2 and "unsupported yet: --save of a run whose packets come from --pcap" in err
    assert not (tmp_path / "s.kpt").exists()
    named = tmp_path / "named.pcapng"
    named.write_bytes(pcapng_file([(ETHERNET, "wan0")], [(0, T0, ether(udp()), None)]))
    code, _, err = run(["trace", str(box), "--pcap", str(named)], capsys)
    assert code == 2 and "frame 1 arrived on 'wan0' (pcapng interface 0), not an interface " \
                         "of the box; the box has eth0, eth1: give --iif wan0=NAME" in err
    code, out, err = run(["trace", str(box), "--pcap", str(named), "--iif", "wan0=eth0",
                          "--json"], capsys)
    assert code == 0 and json.loads(out)["fate"]["action"] == "deliver"


def test_capture_times_become_the_box_clock(tmp_path):
    # the first packet walked is at time 0; a timestamp going back is walked at the time
    # before it (in file order), and said
    got = loaded(pcap_file([(T0 + 5 * 10**9 + 1500, ether(udp())),
                            (T0 + 7 * 10**9, ether(udp(54))),
                            (T0 + 6 * 10**9, ether(udp(55)))], nano=True, little=False))
    assert [p.time for p in got.packets] == [0.0, pytest.approx(1.9999985),
                                             pytest.approx(1.9999985)]
    assert [p.build().meta.tstamp for p in got.packets][1] == got.packets[1].time
    assert "1 packet(s) have a timestamp before the one before them" in got.notes[-1]
    # microsecond pcap
    got = loaded(pcap_file([(T0, ether(udp())), (T0 + 250_000_000, ether(udp()))]))
    assert [p.time for p in got.packets] == [0.0, 0.25]


def test_checksums_padding_and_packets_kptui_cannot_take():
    good = udp()
    # checksum offload: the UDP checksum as the sender's stack leaves it (the pseudo-header
    # sum only); walked with the right one, and said, with its byte in the file
    partial = good[:26] + b"\x14\xe2" + good[28:]
    # Ethernet pads a 28-byte datagram to 46 bytes: ip_rcv trims to the IP total length
    padded = ether(good) + bytes(18)
    bad_ip = good[:10] + b"\x00\x00" + good[12:]
    reserved = Packet.build("tcp", src="192.0.2.10", dst="192.0.2.1", sport=1,
                            dport=2).to_bytes()
    reserved = reserved[:32] + bytes([reserved[32] | 0x01]) + reserved[33:]
    cut = udp(length=200)
    records = [(T0, ether(partial)), (T0, padded), (T0, ether(bad_ip)), (T0, ether(reserved))]
    data = pcap_file(records)
    # the snapshot length cut the last frame: 60 of its 214 bytes were kept
    data += struct.pack("<IIII", T0 // 10**9, 0, 60, 14 + 200) + ether(cut)[:60]
    got = loaded(data)
    assert [p.frame for p in got.packets] == [1, 2]
    assert got.packets[0].packet.to_bytes() == good and got.packets[1].packet.to_bytes() == good
    at = 24 + 16 + 14  # the first datagram's offset in the file
    assert got.packets[0].notes == (f"udp.checksum at byte {at + 26} was 0x14e2, walked with "
                                    f"0x{good[26:28].hex()}",)
    third = 24 + 2 * 16 + len(records[0][1]) + len(padded) + 16 + 14
    fourth = third + len(bad_ip) + 16 + 14
    fifth = fourth + len(reserved) + 16 + 14
    assert "cap: arrival interfaces: eth0 (2) by the box's only interface" in got.notes
    assert got.notes[-3:] == [
        f"cap: frame 3, byte {third + 10}: ip.checksum: 0x0000 is wrong, the header sums to "
        f"0x{good[10:12].hex()} (Linux drops such a packet in ip_rcv, before any hook): "
        "not walked",
        f"cap: frame 4, byte {fourth + 20 + 12}: unsupported yet: tcp reserved/AE header "
        "bits: not walked",
        f"cap: frame 5, byte {fifth + 2}: captured 46 of its 200 bytes (the capture kept 60 "
        "of the frame's 214: its snapshot length): kptui walks whole datagrams; capture with "
        "-s 0",
    ]
    assert "1 packet(s) had a TCP/UDP/ICMP checksum that is not what their bytes sum to " \
           f"(first: frame 1, udp.checksum at byte {at + 26} was 0x14e2" in got.notes[2]


@pytest.mark.parametrize("damage, message", [
    (lambda d: b"", "byte 0: 0 bytes is too short for a capture file"),
    (lambda d: b"\x1f\x8b\x08\x00" + d, "byte 0: a gzip-compressed file, not a capture: "
                                        "gunzip it first"),
    (lambda d: b"GIF89a" + d, "byte 0: magic 47494638 is not a capture file's"),
    (lambda d: d[:20], "byte 20: the file ends inside its 24-byte pcap header"),
    (lambda d: d[:24 + 10], "byte 24: frame 1: the file ends inside its 16-byte record header "
                            "(10 bytes)"),
    (lambda d: d[:-5], "byte 40: frame 1: truncated: the record says 42 bytes, 37 are left"),
    (lambda d: d[:32] + struct.pack("<I", 10**9) + d[36:], "byte 32: frame 1: bad record "
                                                           "length 1000000000 (at most 262144)"),
    (lambda d: d[:4] + b"\x09\x00" + d[6:], "byte 4: pcap version 9.4, expected 2.x"),
])
def test_a_damaged_pcap_is_one_error_with_its_byte_offset(damage, message, tmp_path, capsys):
    good = pcap_file([(T0, ether(udp()))])
    capture = tmp_path / "bad.pcap"
    capture.write_bytes(damage(good))
    box = tmp_path / "box.toml"
    box.write_text(HOST)
    code, out, err = run(["trace", str(box), "--pcap", str(capture)], capsys)
    assert (code, out) == (2, "")
    assert err.startswith(f"kptui: error: {capture}: {message}") and err.count("\n") == 1
    assert "Traceback" not in err


def test_a_damaged_pcapng_is_one_error_with_its_byte_offset():
    good = pcapng_file([(ETHERNET, "eth0")], [(0, T0, ether(udp()), 1)])
    shb = 28
    idb = struct.unpack_from("<I", good, shb + 4)[0]
    epb = shb + idb

    def error(data: bytes) -> str:
        with pytest.raises(CaptureError) as info:
            list(frames(data, file="x"))
        return str(info.value)

    assert error(good[:epb + 20]) == f"x: byte {epb}: truncated: the block says 88 bytes, 20 " \
                                     "are left"
    assert error(good[:epb + 4] + b"\x0d\0\0\0" + good[epb + 8:]) == \
        f"x: byte {epb + 4}: bad block length 13 (a multiple of 4, 12 to 16777216)"
    assert error(good[:-4] + b"\0\0\0\0") == f"x: byte {len(good) - 4}: the block's two lengths " \
                                             "differ (88 at its start)"
    assert error(good[:epb + 8] + b"\x05\0\0\0" + good[epb + 12:]) == \
        f"x: byte {epb + 8}: frame 1: interface 5, but the section describes 1"
    assert error(good[shb:]).startswith("x: byte 0: magic 01000000 is not a capture file's")
    assert error(good[:8] + b"\0\0\0\0" + good[12:]) == "x: byte 8: byte-order magic 00000000 " \
                                                        "is not pcapng's 1a2b3c4d"
    # the direction bits of epb_flags: 1 is inbound
    assert [f.direction for f in frames(good, file="x")] == ["in"]


def test_kptui_replay_pcap_is_written_by_dpkt_and_read_back(tmp_path):
    records = [Record(0, 0, udp()), Record(0, 1, udp(54)), Record(3, 0, udp(55))]
    data = write_pcap(records, linktype=101)
    # libpcap's own layout (pcap-savefile(5)): little-endian magic, version 2.4, snaplen
    # 65535, LINKTYPE_RAW; each record with its caplen and wire length
    assert data[:24] == struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)
    got = list(frames(data, file="x"))
    assert [(f.ts_ns, f.data) for f in got] == [(0, udp()), (1000, udp(54)), (3 * 10**9, udp(55))]


def test_tui_and_its_no_tui_text_take_pcap(tmp_path):
    box = tmp_path / "box.toml"
    box.write_text(HOST)
    capture = tmp_path / "cap.pcap"
    capture.write_bytes(pcap_file([(T0, ether(udp())), (T0 + 10**8, ether(udp(99)))]))
    proc = subprocess.run([sys.executable, "-m", "kptui", str(box), "--pcap", str(capture)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("frame 1 at +0.000000 s\npacket 0 arrives on eth0: udp ")
    assert "=> deliver on eth0 (by filter:INPUT:rule:1)" in proc.stdout
    assert "frame 2 at +0.100000 s" in proc.stdout and "=> drop (by filter:INPUT:rule:2)" \
        in proc.stdout


async def test_the_debugger_steps_a_capture_and_will_not_save_it(tmp_path):
    from kptui.app import KptApp
    from kptui.engine.debugger import Debugger
    from kptui.screens.debugger import DebuggerScreen

    capture = tmp_path / "cap.pcap"
    capture.write_bytes(pcap_file([(T0, ether(udp())), (T0 + 10**8, ether(udp(99)))]))
    scenario = load_scenario(HOST, file="box.toml")
    with contextlib.redirect_stderr(io.StringIO()):
        notes = use_capture(scenario, str(capture), [])[1]
    app = KptApp(scenario, debugger=Debugger.for_scenario(scenario), name="box",
                 notice="\n".join(notes))
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DebuggerScreen)
        assert "paused before packet 0 of 2" in screen.status_text()
        await pilot.press("c")
        await pilot.pause()
        dbg = screen.debugger
        assert dbg.events[-1].action == "deliver"
        assert screen.save_session(str(tmp_path / "s.kpt")).startswith(
            f"unsupported yet: saving a session whose packets come from --pcap {capture}")
        assert not (tmp_path / "s.kpt").exists()
        # a profile switch rebuilds the scenario from its text: the capture's packets stay
        from kptui.screens.profile_switch import switch_profile

        assert switch_profile(screen, "classic-2.4") is None
        await pilot.pause()
        assert app.scenario.packets_from == f"--pcap {capture}"
        assert [p.frame for p in app.scenario.packets] == [1, 2]
