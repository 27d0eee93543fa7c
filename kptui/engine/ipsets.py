"""ipset sets: the kernel's per-netns list of sets (net/netfilter/ipset), as a box has them.

A set lives in a numbered slot (its index): iptables rules hold the index, so
`ipset swap` (which exchanges two slots and their names) changes what a rule
sees without touching the rule, and a set a rule or a list:set references can
be neither destroyed nor renamed.

Modelled types (those the reference kernel, Linux 6.18, has; others are named
unsupported): hash:ip, hash:net, hash:ip,port, hash:net,port, hash:ip,port,ip,
hash:ip,port,net, hash:net,iface, bitmap:ip, bitmap:port and list:set; the
family is inet. Elements are keyed tuples, one part per dimension (an address;
a network as (address, prefix); a (protocol, port); an (interface, physdev)).

A packet is tested as ip_set_test does: fewer src/dst flags than the set has
dimensions never match; a network dimension is looked up with each prefix
length the set holds, longest first (the outer loop over the first network,
the inner over the second), and the first element found decides unless it has
expired or its counters do not match (then the next prefix is tried); a
`nomatch` element answers "no" (with --return-nomatch, only such elements
answer "yes"). ip_set_match_extensions: an element's counters count the
packet (unless ! --update-counters) before --packets-*/--bytes-* compare them.

Time is the box's clock in jiffies (HZ 250): an element added with timeout T
at jiffies J expires once jiffies > J + T*HZ; timeout 0 is permanent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from kptui.engine.errors import KptuiError
from kptui.engine.jiffies import HZ

PERMANENT = -1  # an element without expiry
IPSET_MAXNAMELEN = 32
HOST_MASK = 32

# net/netfilter/ipset/ip_set_getport.c: the protocols whose header has ports
PORT_PROTOS = (6, 17, 132, 136)  # tcp, udp, sctp, udplite
ICMP = 1

# type name -> dimensions ("ip", "net", "port", "iface", "set")
TYPES: dict[str, tuple[str, ...]] = {
    "hash:ip": ("ip",),
    "hash:net": ("net",),
    "hash:ip,port": ("ip", "port"),
    "hash:net,port": ("net", "port"),
    "hash:ip,port,ip": ("ip", "port", "ip"),
    "hash:ip,port,net": ("ip", "port", "net"),
    "hash:net,iface": ("net", "iface"),
    "bitmap:ip": ("ip",),
    "bitmap:port": ("port",),
    "list:set": ("set",),
}
# Types ipset knows that kptui does not model (the reference kernel lacks most of them:
# "Kernel error received: set type not supported"; bitmap:ip,mac needs the MAC header).
UNMODELLED_TYPES = ("hash:net,net", "hash:net,port,net", "hash:ip,mark", "hash:mac",
                    "hash:ip,mac", "bitmap:ip,mac")


class IpsetError(KptuiError):
    """An ipset command the kernel (or ipset) refuses, in ipset's words."""


def netmask(cidr: int) -> int:
    return (0xFFFFFFFF << (32 - cidr)) & 0xFFFFFFFF if cidr else 0


@dataclass(slots=True)
class Elem:
    """One element's extensions: expiry, nomatch, counters, comment, skbinfo."""

    expires: int = PERMANENT  # jiffies after which it is gone; PERMANENT: never
    nomatch: bool = False
    packets: int = 0
    bytes: int = 0
    comment: str | None = None
    skbmark: tuple[int, int] | None = None  # (mark, mask)
    skbprio: int | None = None  # major << 16 | minor
    skbqueue: int | None = None

    def expired(self, now: int) -> bool:
        return self.expires != PERMANENT and now > self.expires


@dataclass(eq=False)
class IpSet:
    """One set: its type, create options and elements (key -> Elem, in insertion order)."""

    name: str
    type: str
    timeout: int | None = None  # the default element timeout; None: no timeout support
    counters: bool = False
    comment: bool = False
    skbinfo: bool = False
    forceadd: bool = False
    maxelem: int = 65536
    netmask: int = 32  # hash:ip, bitmap:ip
    first: int = 0  # bitmap:ip / bitmap:port range
    last: int = 0
    size: int = 8  # list:set
    options: list[str] = field(default_factory=list)  # the create options as given
    elems: dict[Any, Elem] = field(default_factory=dict)

    @property
    def dims(self) -> tuple[str, ...]:
        return TYPES[self.type]

    @property
    def nomatch_type(self) -> bool:
        """IPSET_TYPE_NOMATCH: the hash types with a network dimension."""
        return self.type.startswith("hash:") and "net" in self.dims

    def live(self, now: int) -> Iterator[tuple[Any, Elem]]:
        return ((k, e) for k, e in self.elems.items() if not e.expired(now))

    def cidrs(self, dim: int, now: int) -> list[int]:
        """The prefix lengths the set's elements hold in network dimension ``dim``,
        longest first (the kernel's h->nets[], sorted the same way)."""
        return sorted({k[dim][1] for k, e in self.live(now)}, reverse=True)


@dataclass(slots=True)
class Probe:
    """What a rule asks of a set: the src/dst flags, and ip_set_adt_opt's cmdflags."""

    flags: tuple[bool, ...]  # per dimension: True = src
    return_nomatch: bool = False
    update_counters: bool = True
    update_subcounters: bool = True
    packets: tuple[str, int] | None = None  # (op, value), op in eq ne lt gt
    bytes: tuple[str, int] | None = None


_OPS = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b,
        "lt": lambda a, b: a < b, "gt": lambda a, b: a > b}


@dataclass(slots=True)
class Hit:
    """The result of testing a packet: matched or not, and the element that decided."""

    matched: bool
    why: str
    elem: Elem | None = None


class IpsetStore:
    """The netns' sets, by index (ip_set_list); a destroyed set frees its slot."""

    def __init__(self) -> None:
        self.slots: list[IpSet | None] = []

    def __bool__(self) -> bool:
        return any(s is not None for s in self.slots)

    def index(self, name: str) -> int | None:
        for i, s in enumerate(self.slots):
            if s is not None and s.name == name:
                return i
        return None

    def get(self, name: str) -> IpSet | None:
        i = self.index(name)
        return None if i is None else self.slots[i]

    def sets(self) -> list[IpSet]:
        return [s for s in self.slots if s is not None]

    def add_set(self, new: IpSet) -> int:
        for i, s in enumerate(self.slots):
            if s is None:
                self.slots[i] = new
                return i
        self.slots.append(new)
        return len(self.slots) - 1

    def swap(self, a: int, b: int) -> None:
        sa, sb = self.slots[a], self.slots[b]
        assert sa is not None and sb is not None
        sa.name, sb.name = sb.name, sa.name
        self.slots[a], self.slots[b] = sb, sa

    # -- packets ------------------------------------------------------------------------

    def test(self, index: int, pkt: Any, ctx: Any, probe: Probe, now: int) -> Hit:
        """ip_set_test for the set at ``index``, --return-nomatch applied."""
        s = self.slots[index]
        assert s is not None
        if len(probe.flags) < len(s.dims):
            return Hit(False, f"set {s.name} has {len(s.dims)} dimensions, the rule gives "
                       f"{len(probe.flags)} src/dst flag(s)")
        if s.type == "list:set":
            return self._test_list(s, pkt, ctx, probe, now)
        hit = _test_elements(s, pkt, ctx, probe, now)
        if probe.return_nomatch and s.nomatch_type and hit.elem is not None:
            ok = hit.elem.nomatch  # the element found, whatever it said, answers the other way
            return Hit(ok, hit.why + (", and --return-nomatch inverts it"), hit.elem)
        return hit

    def _test_list(self, s: IpSet, pkt: Any, ctx: Any, probe: Probe, now: int) -> Hit:
        """list_set_ktest: the members in order; sub-counters are never compared."""
        sub = Probe(probe.flags, probe.return_nomatch,
                    probe.update_counters and probe.update_subcounters)
        tried = []
        for (member,), e in list(s.live(now)):
            hit = self.test(member, pkt, ctx, sub, now)
            name = self.slots[member].name  # type: ignore[union-attr]
            if not hit.matched:
                tried.append(name)
                continue
            if _extensions_match(s, e, pkt, probe):
                return Hit(True, f"in member set {name} of {s.name}: {hit.why}", e)
            tried.append(name)
        return Hit(False, f"in no member set of {s.name}"
                   + (f" ({', '.join(tried)})" if tried else " (it has none)"))

    def add_packet(self, index: int, pkt: Any, ctx: Any, flags: tuple[bool, ...],
                   timeout: int | None, exist: bool, now: int) -> str:
        """ip_set_add from -j SET --add-set: what happened, in words."""
        s = self.slots[index]
        assert s is not None
        if len(flags) < len(s.dims):
            return f"not added to {s.name}: the rule gives fewer src/dst flags than it has " \
                   "dimensions"
        if s.type == "list:set":
            for (member,), _e in list(s.live(now)):
                said = self.add_packet(member, pkt, ctx, flags, timeout, exist, now)
                if said.startswith("added"):
                    return said
            return f"added to no member set of {s.name}"
        key, why = packet_key(s, pkt, ctx, flags)
        if key is None:
            return f"not added to {s.name}: {why}"
        ext = Elem(packets=1, bytes=pkt.length) if s.counters else Elem()
        t = s.timeout if timeout is None else timeout
        try:
            add_element(s, key, ext, t, exist=exist, now=now)
        except IpsetError as err:
            return f"{element_text(s, key)} not added to {s.name}: {err}"
        return f"added {element_text(s, key)} to {s.name}"

    def del_packet(self, index: int, pkt: Any, ctx: Any, flags: tuple[bool, ...],
                   now: int) -> str:
        """ip_set_del from -j SET --del-set."""
        s = self.slots[index]
        assert s is not None
        if len(flags) < len(s.dims):
            return f"not deleted from {s.name}: the rule gives fewer src/dst flags than " \
                   "it has dimensions"
        if s.type == "list:set":
            for (member,), _e in list(s.live(now)):
                said = self.del_packet(member, pkt, ctx, flags, now)
                if said.startswith("deleted"):
                    return said
            return f"deleted from no member set of {s.name}"
        key, why = packet_key(s, pkt, ctx, flags)
        if key is None:
            return f"not deleted from {s.name}: {why}"
        e = s.elems.get(key)
        if e is None or e.expired(now):
            return f"{element_text(s, key)} is not in {s.name}"
        del s.elems[key]
        return f"deleted {element_text(s, key)} from {s.name}"

    def referenced(self, index: int) -> bool:
        """A list:set holds it as a member (rules are the caller's to check)."""
        return any(s is not None and s.type == "list:set" and (index,) in s.elems
                   for s in self.slots)


def _extensions_match(s: IpSet, e: Elem, pkt: Any, probe: Probe) -> bool:
    """ip_set_match_extensions (expiry is the caller's): counters count, then compare."""
    if not s.counters:
        return True
    if probe.update_counters:
        e.packets += 1
        e.bytes += pkt.length
    for want, have in ((probe.packets, e.packets), (probe.bytes, e.bytes)):
        if want is not None and not _OPS[want[0]](have, want[1]):
            return False
    return True


def _addr(pkt: Any, src: bool) -> int:
    return int(pkt.ip.src) if src else int(pkt.ip.dst)


def packet_port(pkt: Any, src: bool) -> tuple[int, int] | None:
    """ip_set_get_ip4_port: (protocol, port), or None when the packet has none to give
    (protocol 0, or a later fragment of a protocol with ports)."""
    proto = pkt.ip.proto
    if proto <= 0:
        return None
    if pkt.ip.frag_offset:
        return None if proto in PORT_PROTOS + (ICMP,) else (proto, 0)
    l4 = pkt.l4
    if proto in PORT_PROTOS and l4 is not None and hasattr(l4, "sport"):
        return proto, (l4.sport if src else l4.dport)
    if proto == ICMP and l4 is not None and hasattr(l4, "type"):
        return proto, (l4.type << 8) | l4.code
    return proto, 0


def packet_key(s: IpSet, pkt: Any, ctx: Any, flags: tuple[bool, ...],
               cidrs: tuple[int, ...] = ()) -> tuple[Any, str]:
    """The element key a packet makes for the set (networks at ``cidrs``, /32 without),
    or (None, why) when the kernel's kadt refuses it (-EINVAL and friends)."""
    parts: list[Any] = []
    net_i = 0
    for dim, kind in enumerate(s.dims):
        src = flags[dim]
        if kind == "ip":
            ip = _addr(pkt, src) & netmask(s.netmask)
            if s.type == "bitmap:ip" and not s.first <= ip <= s.last:
                return None, f"{IPv4Address(ip)} is outside the range of {s.name}"
            parts.append(ip)
        elif kind == "net":
            cidr = cidrs[net_i] if cidrs else HOST_MASK
            net_i += 1
            parts.append((_addr(pkt, src) & netmask(cidr), cidr))
        elif kind == "port":
            pp = packet_port(pkt, src)
            if pp is None:
                return None, "the packet has no port to give (protocol 0 or a fragment)"
            if s.type == "bitmap:port":
                if pp[0] not in (6, 17):  # ip_set_get_ip_port: tcp and udp only
                    return None, "bitmap:port takes TCP and UDP ports only"
                if not s.first <= pp[1] <= s.last:
                    return None, f"port {pp[1]} is outside the range of {s.name}"
                parts.append(pp[1])
            else:
                parts.append(pp)
        elif kind == "iface":
            name = (ctx.iif if src else ctx.oif) or ""
            if not name:
                return None, f"the packet has no {'in' if src else 'out'} interface here"
            parts.append((name, False))
    return tuple(parts), ""


def _test_elements(s: IpSet, pkt: Any, ctx: Any, probe: Probe, now: int) -> Hit:
    """mtype_test / mtype_test_cidrs / bitmap test: the first live element found decides."""
    nets = [i for i, k in enumerate(s.dims) if k == "net"]
    if not nets:
        key, why = packet_key(s, pkt, ctx, probe.flags)
        if key is None:
            return Hit(False, why)
        e = s.elems.get(key)
        if e is None or e.expired(now):
            return Hit(False, f"{element_text(s, key)} is not in set {s.name}")
        if not _extensions_match(s, e, pkt, probe):
            return Hit(False, f"{element_text(s, key)} is in set {s.name}, "
                       f"but its counters ({e.packets} packets, {e.bytes} bytes) do not match")
        return Hit(True, f"{element_text(s, key)} is in set {s.name}", e)
    first = None
    for cidrs in cidr_loops([s.cidrs(i, now) for i in nets]):
        key, why = packet_key(s, pkt, ctx, probe.flags, cidrs)
        if key is None:
            return Hit(False, why)
        first = first or key
        e = s.elems.get(key)
        if e is None or e.expired(now):
            continue
        if not _extensions_match(s, e, pkt, probe):
            continue
        text = element_text(s, key)
        if e.nomatch:
            return Hit(False, f"{text} is in set {s.name} as nomatch", e)
        return Hit(True, f"{text} is in set {s.name}", e)
    if first is None:
        key, why = packet_key(s, pkt, ctx, probe.flags)
        if key is None:
            return Hit(False, why)
    return Hit(False, f"no element of set {s.name} holds it")


def cidr_loops(lists: list[list[int]]) -> Iterator[tuple[int, ...]]:
    if not lists:
        yield ()
        return
    for c in lists[0]:
        for rest in cidr_loops(lists[1:]):
            yield (c, *rest)


def add_element(s: IpSet, key: Any, ext: Elem, timeout: int | None, *, exist: bool,
                now: int) -> None:
    """mtype_add: a new element, or with ``exist`` (-exist, --exist) an existing one's
    extensions overwritten; an expired one is replaced."""
    if s.timeout is not None and timeout is not None and timeout:
        ext.expires = now + timeout * HZ
    old = s.elems.get(key)
    if old is not None and not old.expired(now):
        if not exist:
            raise IpsetError("Element cannot be added to the set: it's already added")
        s.elems[key] = ext
        return
    if old is None:
        live = sum(1 for _ in s.live(now))
        # list:set's size is not a limit (Linux 6.18 takes a fifth member into `size 4`)
        if s.type.startswith("hash:") and live >= s.maxelem:
            if s.forceadd:
                raise KptuiError(f"unsupported yet: forceadd evicting an element of full set "
                                 f"{s.name} (the kernel picks one by its hash bucket)")
            raise IpsetError("Hash is full, cannot add more elements")
        for k in [k for k, e in s.elems.items() if e.expired(now)]:
            del s.elems[k]  # the garbage collector's work, done when it matters
    s.elems[key] = ext


# ipset's lib/icmp.c: the ICMP type/code names it reads and prints (type << 8 | code)
ICMP_NAMES: dict[str, int] = {
    "echo-reply": 0x0000, "network-unreachable": 0x0300, "host-unreachable": 0x0301,
    "protocol-unreachable": 0x0302, "port-unreachable": 0x0303,
    "fragmentation-needed": 0x0304, "source-route-failed": 0x0305,
    "network-unknown": 0x0306, "host-unknown": 0x0307, "host-isolated": 0x0308,
    "network-prohibited": 0x0309, "host-prohibited": 0x030A,
    "TOS-network-unreachable": 0x030B, "TOS-host-unreachable": 0x030C,
    "communication-prohibited": 0x030D, "host-precedence-violation": 0x030E,
    "precedence-cutoff": 0x030F, "source-quench": 0x0400, "network-redirect": 0x0500,
    "host-redirect": 0x0501, "TOS-network-redirect": 0x0502, "TOS-host-redirect": 0x0503,
    "echo-request": 0x0800, "router-advertisement": 0x0900, "router-solicitation": 0x0A00,
    "ttl-zero-during-transit": 0x0B00, "ttl-zero-during-reassembly": 0x0B01,
    "ip-header-bad": 0x0C00, "required-option-missing": 0x0C01,
    "timestamp-request": 0x0D00, "timestamp-reply": 0x0E00,
    "information-request": 0x0F00, "information-reply": 0x1000,
    "address-mask-request": 0x1100, "address-mask-reply": 0x1200,
}
ICMP_TEXT: dict[int, str] = {v: k for k, v in ICMP_NAMES.items()}


def _port_text(proto: int, port: int) -> str:
    from kptui.engine.iptables.values import PROTO_NAMES

    if proto == ICMP:
        return f"icmp:{ICMP_TEXT.get(port, f'{port >> 8}/{port & 255}')}"
    return f"{PROTO_NAMES.get(proto, str(proto))}:{port}"


def element_text(s: IpSet, key: Any, slots: list[IpSet | None] | None = None) -> str:
    """The element as `ipset list` prints it (10.0.0.0/8,tcp:80)."""
    out = []
    for kind, part in zip(s.dims, key, strict=True):
        if kind == "ip":
            out.append(str(IPv4Address(part)))
        elif kind == "net":
            out.append(str(IPv4Address(part[0])) + ("" if part[1] == HOST_MASK else f"/{part[1]}"))
        elif kind == "port":
            out.append(str(part) if s.type == "bitmap:port" else _port_text(*part))
        elif kind == "iface":
            out.append(("physdev:" if part[1] else "") + part[0])
        else:
            member = slots[part] if slots is not None else None
            out.append(member.name if member is not None else f"set #{part}")
    return ",".join(out)
