"""--pcap on a 10,000-packet capture: read time, and walk time per packet.

    python benchmarks/bench_pcap.py [--flows N] [--libraries]

Writes a capture as `tcpdump -i any` writes one on a NAT router (Linux cooked v2,
interface indexes, the senders' checksums left to offload): N TCP connections
(1,000 by default) of 10 packets each through the box, both directions, 100 us
apart. Then times:
- reading the file (kptui.pcapio.frames: dpkt's headers, kptui's offsets);
- turning it into the box's packets (kptui.pcapin: link layers, Packet.from_bytes,
  the checksums put right);
- walking every packet through the router, conntrack and NAT carried over
  (kptui.engine.run.run_scenario, what `kptui trace --pcap` runs), per packet.
With --libraries, also the bare read of the same file by dpkt's and scapy's readers
(the figures the choice of dpkt rests on; scapy only if installed). Prints the
figures and the walks' fates; asserts nothing (timings are not tests).
"""

from __future__ import annotations

import argparse
import io
import struct
import sys
import tempfile
import time
from collections import Counter
from contextlib import redirect_stderr
from pathlib import Path

from kptui.engine.packet import Packet
from kptui.engine.run import run_scenario
from kptui.engine.scenario import load_scenario
from kptui.pcapin import Arrivals, from_bytes
from kptui.pcapio import frames

ROUTER = '''\
iptables = """
*nat
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o wan0 -j MASQUERADE
COMMIT
*filter
:FORWARD DROP [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -i lan0 -p tcp --dport 22 -j DROP
-A FORWARD -i lan0 -o wan0 -p tcp --dport 80 -j ACCEPT
COMMIT
"""
[sysctl]
"net.ipv4.ip_forward" = 1
[[interfaces]]
name = "lan0"
addresses = ["192.168.50.1/24"]
[[interfaces]]
name = "wan0"
addresses = ["203.0.113.1/24"]
'''
LAN, WAN = 2, 3  # the interface indexes the SLL2 headers carry
SERVER = "203.0.113.10"


def tcp(src: str, dst: str, sport: int, dport: int, flags: str, seq: int, ack: int,
        data: int = 0) -> bytes:
    pkt = Packet.build("tcp", src=src, dst=dst, sport=sport, dport=dport, flags=flags)
    pkt.set("tcp.seq", seq)
    pkt.set("tcp.ack", ack)
    pkt.set("tcp.window", 502)
    pkt.payload = b"x" * data
    raw = bytearray(pkt.to_bytes())
    raw[36:38] = b"\x12\x34"  # the sender's stack leaves the checksum to the NIC
    return bytes(raw)


def flow(n: int) -> list[tuple[int, bytes]]:
    """One connection: (arriving interface index, datagram), in the order the box sees."""
    client, sport = f"192.168.50.{10 + n % 200}", 20000 + n
    c, s = 1000, 5000
    out = lambda *a: (LAN, tcp(client, SERVER, sport, 80, *a))  # noqa: E731
    back = lambda *a: (WAN, tcp(SERVER, "203.0.113.1", 80, sport, *a))  # noqa: E731
    return [out("S", c, 0), back("SA", s, c + 1), out("A", c + 1, s + 1),
            out("PA", c + 1, s + 1, 100), back("A", s + 1, c + 101),
            back("PA", s + 1, c + 101, 200), out("A", c + 101, s + 201),
            out("FA", c + 101, s + 201), back("FA", s + 201, c + 102),
            out("A", c + 102, s + 202)]


def capture(flows: int) -> bytes:
    """A pcap (LINKTYPE_LINUX_SLL2, microseconds) of ``flows`` connections."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 276)]
    usec = 0
    for n in range(flows):
        for ifindex, ip in flow(n):
            frame = struct.pack("!HHIHBB8s", 0x0800, 0, ifindex, 1, 0, 6, b"") + ip
            out.append(struct.pack("<IIII", 1_700_000_000 + usec // 10**6, usec % 10**6,
                                   len(frame), len(frame)) + frame)
            usec += 100
    return b"".join(out)


def libraries(path: Path) -> None:
    import dpkt

    start = time.perf_counter()
    with open(path, "rb") as fh:
        count = sum(1 for _ in dpkt.pcap.Reader(fh))
    print(f"  dpkt.pcap.Reader, bare read: {(time.perf_counter() - start) * 1000:.1f} ms "
          f"({count} records)")
    try:
        start = time.perf_counter()
        from scapy.utils import RawPcapReader  # not a dependency: only if installed
    except ImportError:
        print("  scapy: not installed (pip install scapy to compare)")
        return
    imported = time.perf_counter()
    count = sum(1 for _ in RawPcapReader(str(path)))
    print(f"  scapy RawPcapReader, bare read: {(time.perf_counter() - imported) * 1000:.1f} ms "
          f"({count} records; importing scapy.utils: {(imported - start) * 1000:.0f} ms)")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=1000)
    parser.add_argument("--libraries", action="store_true")
    args = parser.parse_args(argv)
    data = capture(args.flows)
    packets = args.flows * 10
    print(f"capture: {packets:,} packets, {len(data):,} bytes (SLL2, checksums left to "
          "offload)")
    start = time.perf_counter()
    count = sum(1 for _ in frames(data, file="bench.pcap"))
    read = time.perf_counter() - start
    print(f"read the file (kptui.pcapio): {read * 1000:.1f} ms for {count:,} frames "
          f"({read / count * 1e6:.1f} us/frame)")
    scenario = load_scenario(ROUTER, file="router.toml")
    box = scenario.build_box()
    arrivals = Arrivals.parse([f"{LAN}=lan0", f"{WAN}=wan0"], box.interfaces)
    start = time.perf_counter()
    with redirect_stderr(io.StringIO()):
        got = from_bytes(data, file="bench.pcap", arrivals=arrivals)
    parse = time.perf_counter() - start
    print(f"frames to packets (kptui.pcapin): {parse * 1000:.1f} ms "
          f"({parse / packets * 1e6:.1f} us/packet); {len(got.notes)} note line(s)")
    scenario.packets = got.packets
    start = time.perf_counter()
    fates = Counter(r.fate.action + (f" by {r.fate.by}" if r.fate.by else "")
                    for r in run_scenario(scenario, box=box))
    walk = time.perf_counter() - start
    print(f"walks (run_scenario): {walk:.2f} s for {packets:,} packets: "
          f"{walk / packets * 1e6:.0f} us/packet")
    for fate, n in fates.most_common():
        print(f"  {n:6,} {fate}")
    if args.libraries:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.pcap"
            path.write_bytes(data)
            libraries(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
