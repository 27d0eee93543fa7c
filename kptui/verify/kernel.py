"""Run a scenario on this machine's kernel and describe each packet in DESIGN.md's shape.

The box is a network namespace; each declared interface is one end of a veth
pair whose other end sits alone in a peer namespace. The peers never answer
anything: their kernel has ARP switched off and drops all IPv4 input in an
nft prerouting chain at priority -500 (AF_PACKET taps see frames before
that). verify itself answers every ARP request arriving at a peer, for any
address, with a MAC made of that address (neighbour_mac), so the box always
resolves its next hop and puts a forwarded packet on the wire, and a frame's
destination MAC tells which neighbour it was sent to (a -j TEE copy's `nexthop`).

verify's own nft table (`ip kptui_trace`, see OWN_TABLE_NFT) sets nftrace at
priority -350 in prerouting and output (before raw, so the scenario's tables
keep exactly the chains it declared), and has two empty base chains at
priority 10000 in input and postrouting, so the trace shows a packet that
got through every netfilter table to local delivery or to the output device.
A third one, `prenat` at postrouting priority 99, just before the nat hook
(srcnat, 100): a packet seen there but not at `postdone`, with no rule
verdict to drop it, was dropped by the nat hook itself (nf_nat_oif_changed
when a masqueraded connection changes its out device; no free source
tuple), and its header printed there is the one after forwarding.
Its lines are removed from the trace. Between packets verify sends a
sentinel (IP proto 253 to 127.255.255.254) that its own output chain drops
before any scenario table sees it: once the sentinel's trace is read, every
line of the packet before it has been read too.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import queue
import select
import shlex
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

from kptui.verify import tc as tcv
from kptui.verify import wire
from kptui.verify.netns import CommandError, Lab
from kptui.verify.trace import (
    OWN_TABLE,
    PacketTrace,
    TraceParser,
    clones,
    handle_positions,
    step_label,
)

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ARP_REQUEST_HEAD = bytes.fromhex("0001080006040001")  # Ethernet, IPv4, 6, 4, request
ARP_REPLY_HEAD = bytes.fromhex("0001080006040002")
PACKET_OUTGOING = 4
SO_MARK = 36
FIRST_IDENT = 0x1000  # packet i is sent with IP ID FIRST_IDENT + i
SENTINEL_BASE = 0xF000
SENTINEL_DST = "127.255.255.254"
SENTINEL_PROTO = 253  # RFC 3692 experimental
QUIET = 0.06  # seconds without a frame on any peer before a packet counts as done
MAX_WAIT = 1.0
MONITOR_TIMEOUT = 3.0
# A packet that went on after a rule's QUEUE verdict was let through by --queue-bypass
# (no listener): that rule decided it as an ACCEPT would have (nf_queue returns 1).
PASSED = ("ACCEPT", "QUEUE")
MAX_SCENARIO_TIME = 30.0  # seconds of scenario `time` verify is willing to sleep through

OWN_TABLE_NFT = f"""table ip {OWN_TABLE} {{
    chain pre {{
        type filter hook prerouting priority -350; policy accept;
        meta nftrace set 1
    }}
    chain out {{
        type filter hook output priority -350; policy accept;
        ip protocol {SENTINEL_PROTO} ip daddr {SENTINEL_DST} meta nftrace set 1 drop
        meta nftrace set 1
    }}
    chain indone {{
        type filter hook input priority 10000; policy accept;
    }}
    chain prenat {{
        type filter hook postrouting priority 99; policy accept;
    }}
    chain postdone {{
        type filter hook postrouting priority 10000; policy accept;
    }}
}}
"""

PEER_NFT = """table ip kpv_peer {
    chain pre {
        type filter hook prerouting priority -500; policy drop;
    }
}
"""

# Kernel defaults for what the simulator assumes when a scenario says nothing.
# A new namespace copies IPv4 `all`/`default` settings from the host when
# net.core.devconf_inherit_init_net is 0 (its default), so a host with
# rp_filter=2 (common on distributions) would otherwise leak into the box.
# Set before the interfaces are created, so they inherit `default` too.
DEFAULT_SYSCTLS = (
    ("net.ipv4.ip_forward", "0"),
    ("net.ipv4.conf.all.rp_filter", "0"),
    ("net.ipv4.conf.default.rp_filter", "0"),
    ("net.ipv4.conf.all.accept_local", "0"),
    ("net.ipv4.conf.default.accept_local", "0"),
    ("net.ipv4.conf.all.route_localnet", "0"),
    ("net.ipv4.conf.default.route_localnet", "0"),
    ("net.ipv4.ip_forward_update_priority", "1"),
)

SEND_ERRORS = {  # errno of a local sender -> what decided (ip-route(8), KERNEL-NOTES 5)
    errno.ENETUNREACH: "routing:unreachable",
    errno.EHOSTUNREACH: "routing:unreachable",
    errno.EINVAL: "routing:blackhole",
    errno.EACCES: "routing:prohibit",
}


# An input route lookup's error (`ip route get DST from SRC iif DEV`, forwarding on) ->
# what decided: a prohibit route or rule (EACCES), an unreachable one or no route at all
# (EHOSTUNREACH, ENETUNREACH); EINVAL (blackhole, or a martian) is told apart below.
INPUT_ROUTE_ERRORS = {"EACCES": "routing:prohibit", "EHOSTUNREACH": "routing:unreachable",
                      "ENETUNREACH": "routing:unreachable"}

# `ip route get` errors -> route type: blackhole EINVAL, prohibit EACCES, unreachable
# EHOSTUNREACH, no route ENETUNREACH (net/ipv4/fib_semantics.c fib_props).
ROUTE_ERRORS = (
    ("Invalid argument", "blackhole"),
    ("Permission denied", "prohibit"),
    ("No route to host", "unreachable"),
    ("Network is unreachable", "unreachable"),
)


@dataclass(slots=True)
class Interface:
    name: str
    addresses: list[IPv4Interface]
    mtu: int | None = None


@dataclass(slots=True)
class SendSpec:
    """One packet to send: where from, its bytes (IP ID already set) and its mark."""

    origin: str  # "local" or an interface name
    data: bytes
    mark: int = 0
    time: float = 0.0  # when to send it, in seconds on the scenario's clock (`time`)
    uid: int = 0  # a local packet's socket owner (fsuid, fsgid): what -m owner matches
    gid: int = 0
    # not sent, and why: a reply_to packet kptui could not build (its original never got
    # through in kptui's walk); the kernel gets nothing and the result says so (unsent_row)
    unsent: str = ""


def unsent_row(index: int, why: str) -> dict[str, Any]:
    """The result of a packet verify did not send, shaped as kptui's (run.unsent_events):
    an `error` fate by `reply_to`, nothing out, traced or answered."""
    return {"packet": index, "fate": {"action": "error", "by": "reply_to",
                                      "message": "verify sent nothing: "
                                                 + why.removeprefix("not sent: ")},
            "out": {}, "trace": [], "answers": []}


@dataclass(slots=True)
class Plan:
    """Everything the kernel side needs from a scenario."""

    interfaces: list[Interface]
    sysctl: list[tuple[str, str]]
    setup: str
    iptables: str
    packets: list[SendSpec]
    file: str = ""  # for messages: where the setup lines came from
    setup_line: int = 1  # the file line of the setup text's first line
    ipset: str = ""  # the scenario's `ipset` text, given to `ipset restore` before setup
    # the scenario's [[sockets]]: (proto, laddr, lport, raddr, rport, transparent, mark)
    sockets: list[tuple[int, int, int, int, int, bool, int]] = field(default_factory=list)
    # the scenario's conntrack entries: (line, `conntrack -I` argv), made after the rules
    conntrack: list[tuple[int, list[str]]] = field(default_factory=list)
    nftables: str = ""  # native nftables tables (not simulated by kptui), for `nft -f`


@dataclass(slots=True)
class Frame:
    iface: str  # the box end it left through
    data: bytes  # the IPv4 datagram
    dst_mac: bytes = b""  # the Ethernet destination: which neighbour it was sent to


@dataclass(slots=True)
class Peer:
    iface: Interface
    ns: str
    dev: str
    address: IPv4Interface | None
    sock: socket.socket | None = None
    mac: bytes = b""


@dataclass(slots=True)
class KernelRun:
    results: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    # CLOCK_REALTIME (ns) when scenario time 0 was, from the first packet's send: what a
    # scenario's clock = "now" is simulated with
    wall_start_ns: int = 0
    unparsed: list[str] = field(default_factory=list)
    # (table, chain, 1-based position) -> the rule's nf_tables handle, as loaded
    handles: dict[tuple[str, str, int], int] = field(default_factory=dict)


def gateways(setup: str) -> list[IPv4Address]:
    """Every `via ADDR` of the setup lines (so a peer can be the gateway)."""
    found = []
    for line in setup.splitlines():
        words = shlex.split(line, comments=True)
        for word, nxt in zip(words, words[1:], strict=False):
            if word == "via":
                try:
                    found.append(IPv4Address(nxt))
                except ValueError:
                    pass
    return found


def peer_address(iface: Interface, used: set[IPv4Address],
                 gws: list[IPv4Address]) -> IPv4Interface | None:
    """The gateway of this subnet if the setup uses one, else a free host address in it."""
    if not iface.addresses:
        return None
    for gw in gws:
        for addr in iface.addresses:
            if gw in addr.network and gw != addr.ip:
                return IPv4Interface(f"{gw}/{addr.network.prefixlen}")
    net = iface.addresses[0].network
    if net.num_addresses <= 2:
        return None
    for candidate in reversed(list(net.hosts())[-64:]):
        if candidate not in used:
            return IPv4Interface(f"{candidate}/{net.prefixlen}")
    return None


BROADCAST_MAC = b"\xff" * 6


def frame_destination(dst: IPv4Address, subnet: list[IPv4Interface], box_mac: bytes) -> bytes:
    """The Ethernet destination a real sender on the peer's link would use for ``dst``.

    A limited or directed broadcast of the link's subnet goes to ff:ff:ff:ff:ff:ff
    and a multicast group to 01:00:5e + its low 23 bits (RFC 1112 6.4; Linux's
    arp_mc_map); anything else to the box's MAC. The box's skb->pkt_type (what
    -m pkttype reads) comes from this address.
    """
    if dst == IPv4Address("255.255.255.255") or any(
            dst == a.network.broadcast_address and a.network.prefixlen < 31 for a in subnet):
        return BROADCAST_MAC
    if dst.is_multicast:
        return bytes.fromhex("01005e") + (int(dst) & 0x7FFFFF).to_bytes(3, "big")
    return box_mac


IP_TRANSPARENT = 19  # linux/in.h


def box_socket(proto: int, laddr: int, lport: int, raddr: int, rport: int,
               transparent: bool, mark: int) -> socket.socket:
    """One of the scenario's [[sockets]], made in the box: a TCP listener or a UDP socket
    (connected when it has a remote), with IP_TRANSPARENT and SO_MARK as declared."""
    kind = socket.SOCK_STREAM if proto == 6 else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET, kind)
    try:
        if transparent:
            sock.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
        if mark:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
        sock.bind((str(IPv4Address(laddr)), lport))
        if proto == 6:
            sock.listen(16)
        elif raddr:
            sock.connect((str(IPv4Address(raddr)), rport))
    except OSError as err:
        sock.close()
        raise CommandError(f"the box could not open its socket {IPv4Address(laddr)}:{lport}: "
                           f"{err.strerror}") from None
    return sock


def owned_raw_socket(uid: int, gid: int) -> socket.socket:
    """A raw IPv4 socket (IP_HDRINCL) whose file has fsuid ``uid``, fsgid ``gid`` and no
    supplementary groups: what xt_owner reads (the file's f_cred, taken when the socket
    is made). setfsuid/setfsgid change this thread's credentials only and keep
    CAP_NET_RAW; they and the group list are put back before returning."""
    libc = ctypes.CDLL(None, use_errno=True)
    groups = os.getgroups()
    os.setgroups([])
    try:
        libc.setfsgid(gid)
        libc.setfsuid(uid)
        if libc.setfsuid(0xFFFFFFFF) != uid or libc.setfsgid(0xFFFFFFFF) != gid:
            raise CommandError(f"could not take fsuid {uid} and fsgid {gid} to send as them")
        return socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    finally:
        libc.setfsuid(0)
        libc.setfsgid(0)
        os.setgroups(groups)


def snmp(text: str) -> dict[str, int]:
    """/proc/net/snmp or /proc/net/netstat -> {"Ip.InDelivers": 3, ...}."""
    out: dict[str, int] = {}
    lines = text.splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        prefix, _, keys = names.partition(":")
        for key, value in zip(keys.split(), values.partition(":")[2].split(), strict=False):
            try:
                out[f"{prefix}.{key}"] = int(value)
            except ValueError:
                pass
    return out


class KernelBox:
    """The namespaces of one scenario; `run()` sends every packet and reports."""

    def __init__(self, lab: Lab, plan: Plan) -> None:
        self.lab = lab
        self.plan = plan
        self.box = ""
        self.peers: list[Peer] = []
        self.raw: socket.socket | None = None
        self.owned: dict[tuple[int, int], socket.socket] = {}  # raw sockets of other owners
        # (uid, gid, source) -> the raw socket that sends it (bound to it if it can be)
        self.bound: dict[tuple[int, int, IPv4Address], socket.socket] = {}
        self.box_sockets: list[socket.socket] = []  # the scenario's [[sockets]], open
        self.monitor: subprocess.Popen[str] | None = None
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.parser = TraceParser()
        self.sentinels = 0
        self.positions: dict[tuple[str, str, int], int] = {}
        self.box_macs: dict[str, bytes] = {}
        self.tc = tcv.has_tc(plan.setup)  # read tc counters around every packet (verify/tc.py)
        self.police = tcv.has_police(plan.setup)

    # -- building ------------------------------------------------------------------

    def build(self) -> None:
        lab, plan = self.lab, self.plan
        self.box = lab.add("b")
        lab.run(self.box, ["sysctl", "-qw", *(f"{k}={v}" for k, v in DEFAULT_SYSCTLS)])
        if self.tc:  # no IPv6 chatter through the qdiscs being counted
            lab.run(self.box, ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                               "net.ipv6.conf.default.disable_ipv6=1"])
        used = {a.ip for i in plan.interfaces for a in i.addresses}
        used |= {IPv4Address(p.data[12:16]) for p in plan.packets if p.data}
        used |= {IPv4Address(p.data[16:20]) for p in plan.packets if p.data}
        gws = gateways(plan.setup)
        for n, iface in enumerate(plan.interfaces):
            peer_ns = lab.add(f"p{n}")
            peer = Peer(iface, peer_ns, f"kpvp{n}", peer_address(iface, used, gws))
            self.peers.append(peer)
            lab.host(["ip", "link", "add", iface.name, "netns", self.box, "type", "veth",
                      "peer", "name", peer.dev, "netns", peer_ns])
            for addr in iface.addresses:
                lab.run(self.box, ["ip", "addr", "add", str(addr), "dev", iface.name])
            if iface.mtu:
                lab.run(self.box, ["ip", "link", "set", iface.name, "mtu", str(iface.mtu)])
                lab.run(peer_ns, ["ip", "link", "set", peer.dev, "mtu", str(iface.mtu)])
            lab.run(self.box, ["ip", "link", "set", iface.name, "up"])
            self._build_peer(peer)
        lab.run(self.box, ["ip", "link", "set", "lo", "up"])
        for key, value in plan.sysctl:
            lab.run(self.box, ["sysctl", "-qw", f"{key}={value}"])
        if plan.ipset.strip():
            try:
                lab.run(self.box, ["ipset", "restore"], stdin=plan.ipset)
            except CommandError as err:
                raise CommandError(f"{plan.file}: ipset restore refused the ipset text: "
                                   f"{err.detail}") from None
        for number, line in enumerate(plan.setup.splitlines(), plan.setup_line):
            argv = shlex.split(line, comments=True)
            if argv:
                try:
                    lab.run(self.box, argv)
                except CommandError as err:
                    raise CommandError(f"{plan.file}:{number}: the kernel refused setup line "
                                       f"`{line.strip()}`: {err.detail}") from None
        if plan.iptables.strip():
            try:
                lab.run(self.box, ["iptables-restore"], stdin=plan.iptables)
            except CommandError as err:
                raise CommandError(f"{plan.file}: iptables-restore refused the iptables text: "
                                   f"{err.detail}") from None
        if plan.nftables.strip():
            try:
                lab.run(self.box, ["nft", "-f", "-"], stdin=plan.nftables)
            except CommandError as err:
                raise CommandError(f"{plan.file}: nft -f refused the nftables text: "
                                   f"{err.detail}") from None
        if plan.conntrack and shutil.which("conntrack") is None:
            raise CommandError(f"{plan.file}: the scenario has conntrack entries: verify needs "
                               "the conntrack tool (apt-get install conntrack)")
        for number, argv in plan.conntrack:
            try:
                lab.run(self.box, argv)
            except CommandError as err:
                raise CommandError(f"{plan.file}:{number}: the kernel refused the conntrack "
                                   f"entry (`{shlex.join(argv)}`): {err.detail}") from None
        for spec in plan.sockets:
            self.box_sockets.append(lab.socket_in(self.box, lambda s=spec: box_socket(*s)))
        lab.run(self.box, ["nft", "-f", "-"], stdin=OWN_TABLE_NFT)
        self.positions = handle_positions(lab.run(self.box, ["nft", "-j", "-a", "list",
                                                             "ruleset"]))
        for peer in self.peers:
            peer.sock = lab.socket_in(peer.ns, lambda: socket.socket(
                socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)))
            peer.sock.bind((peer.dev, ETH_P_ALL))
            peer.sock.setblocking(False)
            peer.mac = peer.sock.getsockname()[4]
        self.raw = lab.socket_in(self.box, lambda: socket.socket(
            socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW))
        self.box_macs = {p.iface.name: self._mac(p.iface.name) for p in self.peers}
        if self.tc:
            self._static_neighbours()

    def _static_neighbours(self) -> None:
        """Permanent neighbour entries, so the box sends no ARP through counted qdiscs."""
        wanted = set(gateways(self.plan.setup))
        for spec in self.plan.packets:
            if spec.data:
                wanted |= {IPv4Address(spec.data[12:16]), IPv4Address(spec.data[16:20])}
        for peer in self.peers:
            if peer.address is not None:
                wanted.add(peer.address.ip)
            mac = ":".join(f"{b:02x}" for b in peer.mac)
            for addr in sorted(wanted):
                if any(addr in a.network and addr != a.ip and addr != a.network.broadcast_address
                       and addr != a.network.network_address for a in peer.iface.addresses):
                    self.lab.run(self.box, ["ip", "neigh", "replace", str(addr), "lladdr", mac,
                                            "dev", peer.iface.name, "nud", "permanent"])

    def tc_counters(self) -> tcv.Snapshot:
        """The box's tc counters (verify/tc.py), or {} when the scenario has no tc lines."""
        if not self.tc:
            return {}
        text = self.lab.run(self.box, ["tc", "-s", "-j", "qdisc", "show"])
        snap = tcv.parse_qdiscs(text)
        for dev in sorted({key[0] for key in snap}):
            snap.update(tcv.parse_classes(dev, self.lab.run(
                self.box, ["tc", "-s", "class", "show", "dev", dev])))
        if self.police:
            snap.update(tcv.parse_police(self.lab.run(
                self.box, ["tc", "-s", "-j", "actions", "ls", "action", "police"])))
        return snap

    def _build_peer(self, peer: Peer) -> None:
        run, ns = self.lab.run, peer.ns
        run(ns, ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])
        if peer.address is not None:
            run(ns, ["ip", "addr", "add", str(peer.address), "dev", peer.dev])
        run(ns, ["ip", "link", "set", peer.dev, "arp", "off", "up"])
        run(ns, ["ip", "link", "set", "lo", "up"])
        run(ns, ["nft", "-f", "-"], stdin=PEER_NFT)

    def _mac(self, dev: str) -> bytes:
        info = json.loads(self.lab.run(self.box, ["ip", "-j", "link", "show", "dev", dev]))
        return bytes.fromhex(info[0]["address"].replace(":", ""))

    # -- the monitor -----------------------------------------------------------------

    def start_monitor(self) -> None:
        self.monitor = subprocess.Popen(
            ["ip", "netns", "exec", self.box, "stdbuf", "-oL", "xtables-monitor", "--trace"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._reader, daemon=True).start()
        deadline = time.monotonic() + MONITOR_TIMEOUT
        while time.monotonic() < deadline:  # the netlink listener may take a moment
            if self.sync(timeout=0.2):
                return
        raise CommandError("xtables-monitor --trace printed nothing: is nftrace supported?")

    def _reader(self) -> None:
        assert self.monitor is not None and self.monitor.stdout is not None
        for line in self.monitor.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def sync(self, timeout: float = MONITOR_TIMEOUT) -> bool:
        """Send a sentinel and read the monitor until its trace shows up."""
        ident = SENTINEL_BASE + (self.sentinels % 0x0F00)
        self.sentinels += 1
        data = bytearray(20)
        data[0], data[8], data[9] = 0x45, 64, SENTINEL_PROTO
        struct.pack_into("!HH", data, 2, 20, ident)
        data[12:16] = socket.inet_aton("127.0.0.1")
        data[16:20] = socket.inet_aton(SENTINEL_DST)
        assert self.raw is not None
        try:
            self.raw.sendto(bytes(data), (SENTINEL_DST, 0))
        except OSError:
            pass  # EPERM: our own chain dropped it, as intended
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                raise CommandError("xtables-monitor ended early")
            self.parser.feed(line)
            seen = self.parser.by_ident.get(ident)
            if seen is not None and seen.own:
                del self.parser.by_ident[ident]
                return True
        return False

    def stop_monitor(self) -> None:
        if self.monitor is not None and self.monitor.poll() is None:
            self.monitor.terminate()
            try:
                self.monitor.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.monitor.kill()
                self.monitor.wait()

    # -- packets -----------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        return {**snmp(self.lab.read_in(self.box, "/proc/thread-self/net/snmp")),
                **snmp(self.lab.read_in(self.box, "/proc/thread-self/net/netstat"))}

    def send(self, spec: SendSpec) -> int:
        """Put the packet on its way; returns the local sender's errno (0 if none)."""
        if spec.origin == "local":
            raw = self.sender(spec.uid, spec.gid, IPv4Address(spec.data[12:16]))
            raw.setsockopt(socket.SOL_SOCKET, SO_MARK, spec.mark)
            try:
                raw.sendto(spec.data, (socket.inet_ntoa(spec.data[16:20]), 0))
            except OSError as err:
                return err.errno or -1
            return 0
        peer = next((p for p in self.peers if p.iface.name == spec.origin), None)
        if peer is None or peer.sock is None:
            raise CommandError(f"packet from {spec.origin!r}: no such interface")
        dst_mac = frame_destination(IPv4Address(spec.data[16:20]), peer.iface.addresses,
                                    self.box_macs[spec.origin])
        frame = dst_mac + peer.mac + struct.pack("!H", ETH_P_IP) + spec.data
        peer.sock.send(frame)
        return 0

    def sender(self, uid: int, gid: int, src: IPv4Address) -> socket.socket:
        """The box's raw socket for a local packet: owned by ``uid``/``gid``, and bound to
        the packet's source when bind(2) takes it (an address of the box), as a socket
        that sends from that address is (kptui's Box.bound_source); a source the box does
        not have is only written into the header, by an unbound socket."""
        key = (uid, gid, src)
        sock = self.bound.get(key)
        if sock is None:
            unbound = self.raw if (uid, gid) == (0, 0) else self.owned_raw(uid, gid)
            assert unbound is not None
            sock = unbound
            if int(src):
                made = self.lab.socket_in(self.box, lambda: socket.socket(
                    socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)) \
                    if (uid, gid) == (0, 0) else \
                    self.lab.socket_in(self.box, lambda: owned_raw_socket(uid, gid))
                try:
                    made.bind((str(src), 0))
                    sock = made
                except OSError as err:
                    made.close()
                    if err.errno != errno.EADDRNOTAVAIL:
                        raise CommandError(f"could not bind a raw socket to {src}: "
                                           f"{err.strerror}") from None
            self.bound[key] = sock
        return sock

    def owned_raw(self, uid: int, gid: int) -> socket.socket:
        """The box's raw socket for packets owned by ``uid``/``gid`` (-m owner), made once."""
        sock = self.owned.get((uid, gid))
        if sock is None:
            sock = self.owned[uid, gid] = self.lab.socket_in(
                self.box, lambda: owned_raw_socket(uid, gid))
        return sock

    def collect_frames(self) -> list[Frame]:
        """Every IPv4 frame the box sends to a peer until the wire has been quiet a while."""
        frames: list[Frame] = []
        socks = {p.sock: p for p in self.peers if p.sock is not None}
        start = last = time.monotonic()
        while True:
            now = time.monotonic()
            if now - last >= QUIET or now - start >= MAX_WAIT:
                return frames
            ready, _, _ = select.select(list(socks), [], [], QUIET - (now - last))
            for sock in ready:
                while True:
                    try:
                        data, addr = sock.recvfrom(65535)
                    except BlockingIOError:
                        break
                    if addr[2] == PACKET_OUTGOING:
                        continue
                    if addr[1] == ETH_P_ARP:
                        self.answer_arp(socks[sock], data)
                        continue
                    if addr[1] != ETH_P_IP:
                        continue
                    frames.append(Frame(socks[sock].iface.name, data[14:], data[:6]))
                    last = time.monotonic()

    def answer_arp(self, peer: Peer, frame: bytes) -> None:
        """Reply to an ARP request for any address (RFC 826 layout) with a MAC made of
        that address (neighbour_mac), so a frame's destination tells which neighbour the
        box sent it to; the peer's packet socket sees frames to any MAC."""
        arp = frame[14:42]
        if len(arp) < 28 or arp[:8] != ARP_REQUEST_HEAD or peer.sock is None:
            return
        sha, spa, tpa = arp[8:14], arp[14:18], arp[24:28]
        reply = (sha + peer.mac + struct.pack("!H", ETH_P_ARP) + ARP_REPLY_HEAD
                 + neighbour_mac(tpa) + tpa + sha + spa)
        peer.sock.send(reply)

    def run(self) -> KernelRun:
        result = KernelRun()
        start = time.monotonic()
        self.build()
        try:
            self.start_monitor()
            base = time.monotonic() - (self.plan.packets[0].time if self.plan.packets else 0)
            result.wall_start_ns = time.time_ns() - round(
                (self.plan.packets[0].time if self.plan.packets else 0) * 1e9)
            for index, spec in enumerate(self.plan.packets):
                if spec.unsent:  # nothing to send: say so, as kptui does
                    result.results.append(unsent_row(index, spec.unsent))
                    continue
                wait = base + spec.time - time.monotonic()
                if wait > 0:  # the scenario's `time`: let the kernel's clock run as far
                    time.sleep(wait)
                before = self.counters()
                tc_before = self.tc_counters()
                send_errno = self.send(spec)
                frames = self.collect_frames()
                if not self.sync():
                    raise CommandError(f"packet {index}: the kernel's trace did not arrive")
                after = self.counters()
                tc_after = self.tc_counters()
                delta = {k: after[k] - before.get(k, 0) for k in after
                         if after[k] != before.get(k, 0)}
                result.results.append(self.describe(index, spec, frames, send_errno, delta,
                                                    (tc_before, tc_after)))
        finally:
            self.stop_monitor()
            for sock in self.box_sockets:
                sock.close()
        result.unparsed = self.parser.unparsed
        result.handles = {(t, c, pos): h for (t, c, h), pos in self.positions.items()
                          if t != OWN_TABLE}
        result.seconds = time.monotonic() - start
        return result

    # -- turning observations into DESIGN.md's shape --------------------------------------

    def describe(self, index: int, spec: SendSpec, frames: list[Frame], send_errno: int,
                 delta: dict[str, int],
                 tc: tuple[tcv.Snapshot, tcv.Snapshot] = ({}, {})) -> dict[str, Any]:
        ident = wire.ip_ident(spec.data)
        trace, copies = clones(self.parser.by_ident.pop(ident, PacketTrace(ident)))
        labels = [step_label(s, self.positions) for s in trace.steps]
        deciding = [s for s in trace.steps if s.decides]
        last = deciding[-1] if deciding else None
        proto = spec.data[9]
        same = [i for i, f in enumerate(frames)
                if wire.ip_ident(f.data) == ident and f.data[9] == proto]
        copy_of = copy_frames(frames, same, trace, copies,  # frame index -> its copy
                              lambda fields: self.nexthop(fields, spec.origin))
        mine = [frames[i] for i in same if i not in copy_of]
        slots = iter(sorted(copy_of.items(), key=lambda item: item[1]))
        answers = []
        for number, frame in enumerate(frames):
            if number in copy_of:  # the copies in the order they were sent
                slot, which = next(slots)
                answers.append(self.copy_answer(frames[slot], copies[which]))
            elif number not in same:
                answers.append({"iface": frame.iface, **wire.ip_out(frame.data)})
        delivered = any(s.chain == "indone" for s in trace.own)
        post = [s for s in trace.own if s.chain == "postdone"]
        by_rule = ""
        if last is not None:
            label = step_label(last, self.positions)
            by_rule = label if last.kind == "rule" else label.rsplit(":", 1)[0]

        fate: dict[str, Any]
        if mine:
            out = wire.ip_out(mine[0].data)
            if post:
                out["mark"] = int(post[-1].fields.get("MARK", "0x0"), 16)
            fate = {"action": "transmit", "iface": mine[0].iface,
                    "by": by_rule if last and last.verdict in PASSED else "routing"}
        else:
            out = wire.ip_out(spec.data)
            if trace.headers:  # where the kernel last printed the packet
                seen = wire.trace_out(trace.headers[-1])
                out.update({k: v for k, v in seen.items() if k != "proto"})
                if post and spec.origin != "local" and "OUT" not in trace.headers[-1]:
                    # Older kernels (6.1) print the packet once per trace, at PREROUTING:
                    # having reached POSTROUTING from outside it was forwarded, and
                    # ip_forward took one off the TTL (ip_decrease_ttl) on the way.
                    out["ttl"] -= 1
            else:
                out["mark"] = spec.mark
            if delivered:
                iface = spec.origin if spec.origin != "local" else "lo"
                fate = {"action": "deliver", "iface": iface,
                        "by": by_rule if last and last.verdict in PASSED else "routing:local"}
            elif last is not None and last.verdict in ("DROP", "QUEUE"):  # QUEUE: no listener
                action = "reject" if "-j REJECT" in last.rule_text else "drop"
                fate = {"action": action, "by": by_rule}
            elif any(s.chain == "prenat" for s in trace.own) and not post:
                fate = {"action": "drop", "by": "nat:POSTROUTING"}  # see the module doc
            elif post and self.held(tc):  # queued behind a shaper: it leaves later
                fate = {"action": "transmit", "iface": self.held(tc)[0],
                        "by": by_rule if last and last.verdict in PASSED else "routing"}
            elif tcv.police_dropped(*tc):
                fate = {"action": "drop", "by": "qos:police"}
            elif any(entry["drops"] for entry in tcv.delta(*tc)):
                fate = {"action": "drop", "by": "qos:queue-full"}
            else:
                fate = {"action": "drop", "by": self.why_dropped(spec, send_errno, delta)}
        result = {"packet": index, "fate": fate, "out": out, "trace": labels,
                  "answers": answers}
        if self.tc:
            result["qos"] = tcv.delta(*tc)
        return result

    def nexthop(self, fields: dict[str, str], origin: str) -> str:
        """The neighbour the box's route sends a packet with these trace fields to (its
        gateway, or its destination): `ip route get`, an input lookup for a packet that
        came in on ``origin``, an output lookup for a local one."""
        dst = fields.get("DST", "0.0.0.0")
        try:
            argv = ["ip", "-o", "route", "get", dst, "mark",
                    str(int(fields.get("MARK", "0x0"), 16))]
            if origin != "local":
                argv += ["from", fields.get("SRC", "0.0.0.0"), "iif", origin]
            words = self.lab.run(self.box, argv).split()
        except (CommandError, ValueError):
            return ""
        return words[words.index("via") + 1] if "via" in words else dst

    def copy_answer(self, frame: Frame, copy: PacketTrace) -> dict[str, Any]:
        """The answers entry of a -j TEE copy: as read from the wire, the neighbour its
        frame went to, and its own trace through OUTPUT and POSTROUTING."""
        return {"iface": frame.iface, **wire.ip_out(frame.data), "kind": "tee",
                "nexthop": neighbour_of(frame.dst_mac),
                "trace": [step_label(s, self.positions) for s in copy.steps]}

    def held(self, tc: tuple[tcv.Snapshot, tcv.Snapshot]) -> list[str]:
        """The scenario interfaces whose qdisc backlog grew with this packet."""
        names = {p.iface.name for p in self.peers}
        return [dev for dev in tcv.backlog_grew(*tc) if dev in names]

    def why_dropped(self, spec: SendSpec, send_errno: int, delta: dict[str, int]) -> str:
        """A drop no netfilter rule decided: read the reason from counters and routes."""
        if spec.origin == "local" and send_errno:
            return SEND_ERRORS.get(send_errno, f"kernel:errno {errno.errorcode.get(send_errno)}")
        if delta.get("TcpExt.IPReversePathFilter"):
            return "rp_filter"
        if delta.get("Ip.FragFails"):
            return "mtu"  # ip_forward: too big for the out device with DF set
        if delta.get("Icmp.OutTimeExcds") or delta.get("Ip.InHdrErrors"):
            return "ttl"
        src, dst = IPv4Address(spec.data[12:16]), IPv4Address(spec.data[16:20])
        kind = self.route_kind(dst, spec.mark)
        if kind == "unicast" and spec.origin != "local":
            fwd = self.lab.read_in(
                self.box, f"/proc/sys/net/ipv4/conf/{spec.origin}/forwarding").strip()
            if fwd == "0":
                return "ip_forward"
        if spec.origin != "local":  # the input lookup's own answer (rules on iif, from...)
            error = self.input_route_error(dst, src, spec.origin)
            if error in INPUT_ROUTE_ERRORS:
                return INPUT_ROUTE_ERRORS[error]
        if kind in ("unreachable", "blackhole", "prohibit"):
            return f"routing:{kind}"
        if spec.origin != "local" and self.input_route_error(dst, src, spec.origin) == "EINVAL":
            return "martian"  # ip_route_input_slow's martian source/destination: no counter
        counters = ", ".join(f"{k}+{v}" for k, v in sorted(delta.items()))
        return f"kernel:unknown ({counters or 'no counter moved'})"

    def input_route_error(self, dst: IPv4Address, src: IPv4Address, iif: str) -> str:
        """The errno the kernel's input route lookup gives (`ip route get ... iif`), or ''.

        A martian address (loopback from outside, a local source address, ...) is
        -EINVAL from ip_route_input_slow, and no SNMP counter records it; EXDEV is
        rp_filter (which has its counter).
        """
        try:
            self.lab.run(self.box, ["ip", "-o", "route", "get", str(dst), "from", str(src),
                                    "iif", iif])
        except CommandError as err:
            if "Invalid argument" in err.detail:
                return "EINVAL"
            for words, errno_name in (("Permission denied", "EACCES"),
                                      ("No route to host", "EHOSTUNREACH"),
                                      ("Network is unreachable", "ENETUNREACH")):
                if words in err.detail:
                    return errno_name
            return "error"
        return ""

    def route_kind(self, dst: IPv4Address, mark: int) -> str:
        """The route type an output lookup finds for ``dst`` (as `ip route get` names it)."""
        try:
            text = self.lab.run(self.box, ["ip", "-o", "route", "get", str(dst), "mark",
                                           str(mark)])
        except CommandError as err:  # the lookup's errno names the route type (fib_props)
            for words, kind in ROUTE_ERRORS:
                if words in err.detail:
                    return kind
            return "unreachable"
        first = text.split()[0] if text.split() else ""
        return first if first in ("unreachable", "blackhole", "prohibit", "local",
                                  "broadcast") else "unicast"


NEIGHBOUR_MAC = b"\x02\x6b"  # locally administered, unicast; the 4 bytes of the address follow


def neighbour_mac(address: bytes) -> bytes:
    """The MAC verify's ARP replies give ``address`` (4 bytes)."""
    return NEIGHBOUR_MAC + address


def neighbour_of(mac: bytes) -> str:
    """The address a frame to ``mac`` was sent to (neighbour_mac), or the MAC itself."""
    if mac[:2] == NEIGHBOUR_MAC and len(mac) == 6:
        return str(IPv4Address(mac[2:]))
    return "mac " + ":".join(f"{b:02x}" for b in mac)


def _wire_key(frame: Frame) -> tuple[Any, ...]:
    out = wire.ip_out(frame.data)
    return (frame.iface, out["src"], out["dst"], out["ttl"], out["tos"], out.get("sport"),
            out.get("dport"))


def _trace_key(fields: dict[str, str]) -> tuple[Any, ...]:
    try:
        ports = (int(fields["SPORT"]), int(fields["DPORT"])) if "SPORT" in fields else \
            (None, None)
        return (fields.get("OUT", ""), fields.get("SRC", ""), fields.get("DST", ""),
                int(fields.get("TTL", "-1")), int(fields.get("TOS", "0x0"), 16), *ports)
    except ValueError:
        return ()


def copy_frames(frames: list[Frame], same: list[int], own: PacketTrace,
                copies: list[PacketTrace],
                own_nexthop: Callable[[dict[str, str]], str] = lambda fields: "",
                ) -> dict[int, int]:
    """Which of the frames with the packet's IP ID and protocol are -j TEE copies
    (frame index -> copy index); the others are the packet's own (or its fragments).

    Each skb that got through POSTROUTING (verify's `postdone` chain) printed its
    final header there: a whole frame (no fragment: a copy always has DF) is matched
    to an skb not yet matched whose header and out device are the frame's, then by
    out device alone (a kernel that prints the header only once per trace). When the
    packet itself and a copy both fit, the frame's neighbour decides: the packet's is
    ``own_nexthop(its postdone fields)`` (its route's); otherwise the copies go first
    (the kernel sends a copy inside the TEE rule, before the packet goes on).
    """
    if not copies:
        return {}
    wanted: list[tuple[int, dict[str, str]]] = []  # (copy index, or -1: the packet; fields)
    for which, trace in [*enumerate(copies), (-1, own)]:
        done = [s for s in trace.own if s.chain == "postdone"]
        if done:
            wanted.append((which, done[-1].fields))
    whole = [i for i in same if not struct.unpack("!H", frames[i].data[6:8])[0] & 0x3FFF]
    taken: dict[int, int] = {}
    for width in (7, 1):  # the whole key, then the out device alone
        for i in whole:
            if i in taken:
                continue
            key = _wire_key(frames[i])[:width]
            fits = [w for w in wanted if _trace_key(w[1])[:width] == key]
            if not fits:
                continue
            slot = fits[0]
            packet = next((w for w in fits if w[0] < 0), None)
            if packet is not None and len(fits) > 1:
                mine = own_nexthop(packet[1]) == neighbour_of(frames[i].dst_mac)
                slot = packet if mine else next(w for w in fits if w[0] >= 0)
            wanted.remove(slot)
            taken[i] = slot[0]
    return {i: which for i, which in taken.items() if which >= 0}


def check_duration(plan: Plan) -> None:
    """Refuse a scenario whose packet times would make verify sleep too long."""
    if not plan.packets:
        return
    span = max(p.time for p in plan.packets) - plan.packets[0].time
    if span > MAX_SCENARIO_TIME:
        raise CommandError(f"{plan.file}: the packets' times span {span:g} s; kptui verify "
                           f"waits in real time and refuses more than {MAX_SCENARIO_TIME:g} s "
                           "(shorten the timeouts with net.netfilter.nf_conntrack_* sysctls)")


def run_plan(plan: Plan, *, prefix: str | None = None) -> KernelRun:
    """Build the box for ``plan`` in fresh namespaces, run it, remove them again."""
    check_duration(plan)
    with Lab(prefix or f"kpv{os.getpid()}") as lab:
        return KernelBox(lab, plan).run()
