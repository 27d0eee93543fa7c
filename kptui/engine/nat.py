"""NAT as the kernel does it (net/netfilter/nf_nat_core.c, nf_nat_proto.c, xt_nat.c,
xt_MASQUERADE.c / nf_nat_masquerade.c, xt_REDIRECT.c / nf_nat_redirect.c, xt_NETMAP.c).

A NAT target does not touch the packet: it asks for a *binding* (a range:
addresses, ports, flags) and ``setup_info`` (nf_nat_setup_info) turns the
connection's tuple into a unique one inside that range, alters the reply
tuple of the (still unconfirmed) conntrack entry and sets SRC_NAT/DST_NAT
when the tuple changed and SRC_NAT_DONE/DST_NAT_DONE in any case. Then, at
every nat hook and for every packet of the connection, ``nat_packet``
(nf_nat_packet) rewrites the header from the entry's tuples: SRC at
POSTROUTING/INPUT, DST at PREROUTING/OUTPUT, with the status bit inverted in
the REPLY direction (so replies of a SNAT'd flow are de-NATed at PREROUTING,
replies of a DNAT'd flow at POSTROUTING or INPUT). RELATED ICMP errors never
run the nat chains: ``icmp_reply_translation`` rewrites the quoted header and
the outer one (nf_nat_icmp_reply_translation).

Port/id search (nf_nat_l4proto_unique_tuple): the kernel starts the search
at offset 0 only for a DST manipulation without --random; for SRC, and with
--random/--random-fully, it starts at a random offset (get_random_u16).
kptui cannot reproduce that random number: it starts at offset 0 (the lowest
port of the range) and says so in the NatBinding event. With a range of one
free port the kernel's answer is the same. Address choice in a multi-address
range follows find_best_ips_proto exactly (jhash2 of the source with the
destination as seed, no random seed involved).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from kptui.engine.conntrack import (
    ORIGINAL,
    PROTO_ICMP,
    PROTO_TCP,
    PROTO_UDP,
    REPLY,
    Conn,
    CtTuple,
    Status,
    direction_of,
    sTW,
)
from kptui.engine.errors import UnsupportedError

# include/uapi/linux/netfilter/nf_nat.h
MAP_IPS, PROTO_SPECIFIED, PROTO_RANDOM, PERSISTENT, PROTO_RANDOM_FULLY, PROTO_OFFSET = (
    1, 2, 4, 8, 16, 32)
RANDOM_ALL = PROTO_RANDOM | PROTO_RANDOM_FULLY
NF_NAT_MAX_ATTEMPTS = 128
NF_NAT_HARDER_THRESH = NF_NAT_MAX_ATTEMPTS // 4
NAT_MASK = Status.SRC_NAT | Status.DST_NAT
# nf_conntrack_l4proto.allow_clash: UDP and ICMP set it, TCP does not
ALLOW_CLASH = frozenset({PROTO_UDP, PROTO_ICMP})
PORT_PROTOS = frozenset({PROTO_TCP, PROTO_UDP})
# icmp_manip_pkt rewrites the id of query messages only
ICMP_QUERIES = frozenset({0, 8, 13, 14, 15, 16, 17, 18})


@dataclass(frozen=True, slots=True)
class NatRange:
    """struct nf_nat_range2 (IPv4): what a target asks for."""

    flags: int = 0
    min_addr: IPv4Address = IPv4Address(0)
    max_addr: IPv4Address = IPv4Address(0)
    min_proto: int = 0
    max_proto: int = 0

    def text(self) -> str:
        bits = []
        if self.flags & MAP_IPS:
            bits.append(str(self.min_addr) if self.min_addr == self.max_addr
                        else f"{self.min_addr}-{self.max_addr}")
        else:
            bits.append("(address unchanged)")
        if self.flags & PROTO_SPECIFIED:
            ports = (str(self.min_proto) if self.min_proto == self.max_proto
                     else f"{self.min_proto}-{self.max_proto}")
            bits[-1] += f":{ports}"
        for flag, name in ((PROTO_RANDOM, "random"), (PROTO_RANDOM_FULLY, "random-fully"),
                           (PERSISTENT, "persistent")):
            if self.flags & flag:
                bits.append(name)
        return " ".join(bits)


# ----------------------------------------------------------------------------- jhash
def _rol(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & 0xFFFFFFFF


def jhash2(words: list[int], initval: int) -> int:
    """include/linux/jhash.h jhash2 (Bob Jenkins' lookup3), 32-bit words."""
    m = 0xFFFFFFFF
    a = b = c = (0xDEADBEEF + (len(words) << 2) + initval) & m
    k = list(words)
    while len(k) > 3:
        a, b, c = (a + k[0]) & m, (b + k[1]) & m, (c + k[2]) & m
        a = (a - c) & m; a ^= _rol(c, 4); c = (c + b) & m  # noqa: E702
        b = (b - a) & m; b ^= _rol(a, 6); a = (a + c) & m  # noqa: E702
        c = (c - b) & m; c ^= _rol(b, 8); b = (b + a) & m  # noqa: E702
        a = (a - c) & m; a ^= _rol(c, 16); c = (c + b) & m  # noqa: E702
        b = (b - a) & m; b ^= _rol(a, 19); a = (a + c) & m  # noqa: E702
        c = (c - b) & m; c ^= _rol(b, 4); b = (b + a) & m  # noqa: E702
        k = k[3:]
    if not k:
        return c
    if len(k) == 3:
        c = (c + k[2]) & m
    if len(k) >= 2:
        b = (b + k[1]) & m
    a = (a + k[0]) & m
    c ^= b; c = (c - _rol(b, 14)) & m  # noqa: E702
    a ^= c; a = (a - _rol(c, 11)) & m  # noqa: E702
    b ^= a; b = (b - _rol(a, 25)) & m  # noqa: E702
    c ^= b; c = (c - _rol(b, 16)) & m  # noqa: E702
    a ^= c; a = (a - _rol(c, 4)) & m  # noqa: E702
    b ^= a; b = (b - _rol(a, 14)) & m  # noqa: E702
    c ^= b; c = (c - _rol(b, 24)) & m  # noqa: E702
    return c


def _raw(addr: IPv4Address) -> int:
    """A __be32 address read as a u32 on a little-endian host (what jhash2 sees)."""
    return int.from_bytes(addr.packed, "little")


def pick_address(tup: CtTuple, rng: NatRange, manip: str) -> IPv4Address:
    """find_best_ips_proto: the address of a multi-address range, by hash (IPv4 case).

    jhash2 runs over the whole union nf_inet_addr (4 words, 3 of them zero for
    IPv4), seeded with the destination unless --persistent.
    """
    if rng.min_addr == rng.max_addr:
        return rng.min_addr
    seed = 0 if rng.flags & PERSISTENT else _raw(tup.dst)
    j = jhash2([_raw(tup.src), 0, 0, 0], seed)
    dist = (int(rng.max_addr) - int(rng.min_addr) + 1) & 0xFFFFFFFF
    return IPv4Address(int(rng.min_addr) + ((j * dist) >> 32))


# ----------------------------------------------------------------------------- tuples
def _with(tup: CtTuple, manip: str, *, addr: IPv4Address | None = None,
          key: int | None = None) -> CtTuple:
    """The tuple with the manipulated part (address, port or ICMP id) replaced."""
    src, dst, sport, dport = tup.src, tup.dst, tup.sport, tup.dport
    if manip == "SRC":
        src = addr if addr is not None else src
    else:
        dst = addr if addr is not None else dst
    if key is not None:
        if tup.proto == PROTO_ICMP or manip == "SRC":
            sport = key
        else:
            dport = key
    return CtTuple(src, dst, tup.proto, sport, dport, tup.icmp_type, tup.icmp_code)


def _key(tup: CtTuple, manip: str) -> int:
    if tup.proto == PROTO_ICMP or manip == "SRC":
        return tup.sport
    return tup.dport


def endpoint(tup: CtTuple, manip: str) -> str:
    """The manipulated side of a tuple as people write it: 192.0.2.10:40000."""
    addr = tup.src if manip == "SRC" else tup.dst
    if tup.proto in PORT_PROTOS:
        return f"{addr}:{_key(tup, manip)}"
    if tup.proto == PROTO_ICMP:
        return f"{addr} id {tup.sport}"
    return str(addr)


def tuple_taken(table: Any, reply: CtTuple | None, ignored: Conn) -> bool:
    """nf_conntrack_tuple_taken: a confirmed entry already has this tuple."""
    if reply is None:
        return False
    hit = table.find(reply)
    if hit is None:
        return False
    other = hit[0]
    if other is ignored or other.original == ignored.original:
        return False  # the same flow: left to the clash resolution at confirm
    return True


def used_tuple(table: Any, tup: CtTuple, conn: Conn) -> bool:
    """nf_nat_used_tuple: would the reply of this tuple clash with an entry?"""
    return tuple_taken(table, tup.invert(), conn)


def used_tuple_new(table: Any, tup: CtTuple, conn: Conn) -> bool:
    """nf_nat_used_tuple_new: used_tuple, except a reverse clash of un-NATed UDP/ICMP."""
    if not used_tuple(table, tup, conn):
        return False
    if tup.proto not in ALLOW_CLASH:
        return True
    uses_nat = NAT_MASK | Status.SEQ_ADJUST
    if conn.status & uses_nat:
        return True
    hit = table.find(tup)
    if hit is None:
        inv = tup.invert()
        hit = table.find(inv) if inv is not None else None
        if hit is None:
            return False
    other, direction = hit
    if direction != REPLY or other.status & uses_nat:
        return True
    return not (other.original == conn.reply and other.reply == conn.original)


def used_tuple_harder(table: Any, tup: CtTuple, conn: Conn, attempts_left: int) -> bool:
    """nf_nat_used_tuple_harder: in the last attempts a TCP SYN may evict a TIME_WAIT entry."""
    reply = tup.invert()
    if (attempts_left > NF_NAT_HARDER_THRESH or tup.proto != PROTO_TCP
            or conn.tcp is None or conn.tcp.state != 1):  # TCP_CONNTRACK_SYN_SENT
        return tuple_taken(table, reply, conn)
    hit = table.find(reply) if reply is not None else None
    if hit is None:
        return False
    other, direction = hit
    if direction == ORIGINAL or other is conn:
        return True
    tr = other.tcp
    if (tr is None or tr.state < sTW or other.status & Status.DYING
            or not other.status & Status.SRC_NAT):
        return True
    advanced = ((conn.tcp.seen[0].td_end - tr.seen[0].td_end) & 0xFFFFFFFF)
    if advanced == 0 or advanced >= 0x80000000:
        return True
    table.remove(other)
    return False


def in_range(tup: CtTuple, rng: NatRange) -> bool:
    """nf_in_range (the source side of a tuple)."""
    if rng.flags & MAP_IPS and not int(rng.min_addr) <= int(tup.src) <= int(rng.max_addr):
        return False
    if not rng.flags & PROTO_SPECIFIED:
        return True
    return proto_in_range(tup, "SRC", rng)


def proto_in_range(tup: CtTuple, manip: str, rng: NatRange) -> bool:
    """l4proto_in_range."""
    if tup.proto not in PORT_PROTOS and tup.proto != PROTO_ICMP:
        return True
    return rng.min_proto <= _key(tup, manip) <= rng.max_proto


# ----------------------------------------------------------------------------- binding
@dataclass(slots=True)
class Binding:
    """What nf_nat_setup_info decided."""

    manip: str
    before: CtTuple
    after: CtTuple
    why: str
    assumed: str = ""
    changed: bool = False
    notes: list[str] = field(default_factory=list)


def _find_appropriate_src(table: Any, tup: CtTuple, rng: NatRange,
                          conn: Conn) -> CtTuple | None:
    """find_appropriate_src: the newest connection of the same source already SRC-bound.

    The kernel walks the nf_nat_bysource bucket of the source (hash_by_src, same_src);
    ``table.same_source`` is that bucket. The kernel adds an entry to it when its SRC
    binding is made (nf_nat_setup_info, before confirm), kptui when it is confirmed: in
    one walk at a time the only unconfirmed entry is the packet's own, which the kernel
    adds after this search, so both see the same entries in the same order.
    """
    for other in table.same_source(tup):
        if other is conn or not other.status & Status.SRC_NAT_DONE:
            continue
        inv = other.reply.invert()
        if inv is None:
            continue
        result = CtTuple(inv.src, tup.dst, tup.proto, inv.sport, tup.dport, tup.icmp_type,
                         tup.icmp_code)
        if in_range(result, rng):
            return result
    return None


def _unique_proto(table: Any, tup: CtTuple, rng: NatRange, manip: str,
                  conn: Conn) -> tuple[CtTuple, str, str]:
    """nf_nat_l4proto_unique_tuple: (tuple, why, what kptui assumed)."""
    proto = tup.proto
    if proto == PROTO_ICMP:
        lo, size = ((rng.min_proto, rng.max_proto - rng.min_proto + 1)
                    if rng.flags & PROTO_SPECIFIED else (0, 65536))
        what = "ICMP id"
    elif proto in PORT_PROTOS:
        what = "port"
        if not rng.flags & PROTO_SPECIFIED:
            if manip == "DST":
                return tup, "the destination port is never changed without a port range", ""
            port = _key(tup, manip)
            lo, size = (1, 511) if port < 512 else (600, 424) if port < 1024 else (1024, 64512)
        else:
            lo, hi = sorted((rng.min_proto, rng.max_proto))
            size = hi - lo + 1
    else:
        return tup, "no ports to change", ""
    random_start = bool(rng.flags & RANDOM_ALL) or manip != "DST"
    assumed = (f"the kernel starts this {what} search at a random offset; kptui starts at "
               f"the lowest {what} of {lo}-{lo + size - 1}") if random_start and size > 1 else ""
    attempts = min(size, NF_NAT_MAX_ATTEMPTS)
    off = 0
    candidate = tup
    while True:
        for i in range(attempts):
            candidate = _with(tup, manip, key=lo + (off + i) % size)
            if not used_tuple_harder(table, candidate, conn, attempts - i):
                return (candidate, f"clash resolved to {what} {_key(candidate, manip)}",
                        assumed)
        if attempts >= size or attempts < 16:
            return (candidate, f"no free {what} in {lo}-{lo + size - 1}: the clash is "
                               "caught when the entry is confirmed", assumed)
        off += attempts
        attempts //= 2


def get_unique_tuple(table: Any, orig: CtTuple, rng: NatRange, manip: str,
                     conn: Conn) -> tuple[CtTuple, str, str]:
    """get_unique_tuple: (the new tuple, why, what kptui assumed)."""
    if manip == "SRC" and not rng.flags & RANDOM_ALL:
        if in_range(orig, rng):
            if not used_tuple_new(table, orig, conn):
                return orig, "original tuple kept: in range and no clash", ""
        else:
            found = _find_appropriate_src(table, orig, rng, conn)
            if found is not None and not used_tuple(table, found, conn):
                return (found, "reused the mapping of an existing connection from the same "
                               "source (find_appropriate_src)", "")
    addr_note = ""
    tup = orig
    if rng.flags & MAP_IPS:
        addr = pick_address(orig, rng, manip)
        tup = _with(orig, manip, addr=addr)
        if rng.min_addr != rng.max_addr:
            addr_note = f"address {addr} chosen by the kernel's hash of the addresses; "
    if not rng.flags & RANDOM_ALL:
        if rng.flags & PROTO_SPECIFIED:
            if proto_in_range(tup, manip, rng) and (
                    rng.min_proto == rng.max_proto or not used_tuple(table, tup, conn)):
                kind = "original port kept" if tup.proto in PORT_PROTOS else "id kept"
                return tup, addr_note + f"{kind}: in range and no clash", ""
        elif not used_tuple(table, tup, conn):
            kept = ("original port kept" if tup.proto in PORT_PROTOS
                    else "original id kept" if tup.proto == PROTO_ICMP else "no ports")
            return tup, addr_note + f"{kept}: no clash", ""
    new, why, assumed = _unique_proto(table, tup, rng, manip, conn)
    if (rng.flags & PROTO_SPECIFIED and not rng.flags & RANDOM_ALL
            and not proto_in_range(tup, manip, rng) and tup.proto in PORT_PROTOS):
        lo, hi = rng.min_proto, rng.max_proto
        span = str(lo) if lo == hi else f"{lo}-{hi}"
        why = why.replace("clash resolved to", f"{_key(tup, manip)} is outside {span}:")
    elif rng.flags & RANDOM_ALL:
        why = why.replace("clash resolved to", "--random: chose")
    return new, addr_note + why, assumed


def setup_info(table: Any, conn: Conn, rng: NatRange, manip: str) -> Binding | None:
    """nf_nat_setup_info; None for a confirmed entry (the kernel does nothing then)."""
    if conn.confirmed:
        return None
    curr = conn.reply.invert()
    if curr is None:
        raise UnsupportedError("NAT of a connection whose tuple cannot be inverted")
    new, why, assumed = get_unique_tuple(table, curr, rng, manip, conn)
    changed = new != curr
    if changed:
        reply = new.invert()
        assert reply is not None
        conn.reply = reply  # nf_conntrack_alter_reply: still unconfirmed, not hashed yet
        conn.status |= Status.SRC_NAT if manip == "SRC" else Status.DST_NAT
    conn.set_nat_initialized(manip)
    return Binding(manip, curr, new, why, assumed, changed)


def null_range(conn: Conn, manip: str) -> NatRange:
    """__nf_nat_alloc_null_binding: the current address, no port range."""
    ip = conn.reply.dst if manip == "SRC" else conn.reply.src
    return NatRange(MAP_IPS, ip, ip)


# ----------------------------------------------------------------------------- packets
# (field path of the address, of the port/id) per manipulation type and l4 protocol
def _paths(prefix: str, proto: int, manip: str, l4: Any) -> tuple[str, str | None]:
    addr = f"{prefix}ip.src" if manip == "SRC" else f"{prefix}ip.dst"
    if proto in PORT_PROTOS:
        name = "tcp" if proto == PROTO_TCP else "udp"
        return addr, f"{prefix}{name}.{'sport' if manip == 'SRC' else 'dport'}"
    if proto == PROTO_ICMP and l4 is not None and getattr(l4, "type", None) in ICMP_QUERIES:
        return addr, f"{prefix}icmp.id"
    return addr, None


def manip_changes(pkt: Any, target: CtTuple, manip: str,
                  prefix: str = "") -> list[tuple[str, Any]]:
    """nf_nat_ipv4_manip_pkt: the (path, value) writes that make ``pkt`` look like ``target``.

    A non-first fragment has no transport header to rewrite.
    """
    head = pkt if not prefix else pkt.l4.inner
    addr_path, key_path = _paths(prefix, head.ip.proto, manip, head.l4)
    out: list[tuple[str, Any]] = [(addr_path, target.src if manip == "SRC" else target.dst)]
    if key_path is not None and not head.ip.frag_offset and head.l4 is not None:
        key = target.sport if (manip == "SRC" or head.ip.proto == PROTO_ICMP) else target.dport
        out.append((key_path, key))
    return out


def statusbit(manip: str, direction: int) -> Status:
    """nf_nat_packet's status bit: the manipulation's, inverted in the REPLY direction."""
    bit = Status.SRC_NAT if manip == "SRC" else Status.DST_NAT
    if direction == REPLY:
        bit ^= NAT_MASK
    return bit


def packet_changes(pkt: Any, conn: Conn, manip: str) -> list[tuple[str, Any]]:
    """nf_nat_packet: the header writes for this packet at a ``manip`` hook (maybe none)."""
    direction = direction_of(pkt.meta.ctinfo)
    if not conn.status & statusbit(manip, direction):
        return []
    other = conn.tuple(1 - direction).invert()
    if other is None:
        return []
    return manip_changes(pkt, other, manip)


def icmp_changes(pkt: Any, conn: Conn, manip: str) -> list[tuple[str, Any]] | None:
    """nf_nat_icmp_reply_translation for a RELATED ICMP error; None: the kernel drops it."""
    direction = direction_of(pkt.meta.ctinfo)
    icmp = pkt.l4
    if icmp.type == 5:  # ICMP_REDIRECT: only for connections not NATed at all
        done = Status.SRC_NAT_DONE | Status.DST_NAT_DONE
        if conn.status & done != done or conn.status & NAT_MASK:
            return None
    if not conn.status & statusbit(manip, direction):
        return []
    if icmp.inner is None:
        return []
    inner_tuple = conn.tuple(1 - direction)
    inner_manip = "DST" if manip == "SRC" else "SRC"
    changes = manip_changes(pkt, inner_tuple, inner_manip, prefix="icmp.inner.")
    outer = inner_tuple.invert()
    if outer is None:  # an ICMP connection's tuple of a non-query type cannot occur
        return changes
    target = CtTuple(outer.src, outer.dst, PROTO_ICMP)
    changes.append(("ip.src" if manip == "SRC" else "ip.dst",
                    target.src if manip == "SRC" else target.dst))
    return changes


def direction_label(manip: str, direction: int) -> str:
    """How a FieldChange names the rewrite: SNAT, DNAT, or the reply's un-NAT."""
    if direction == ORIGINAL:
        return "SNAT" if manip == "SRC" else "DNAT"
    return "de-DNAT" if manip == "SRC" else "de-SNAT"


# ----------------------------------------------------------------------------- targets
class NatHook:
    """What the NAT targets see of the walk at one nat hook (``MatchContext.nat``).

    A target calls ``bind``; the binding's NatBinding event waits in
    ``pending`` until the walk yields it, right after the target's event.
    """

    def __init__(self, box: Any, pkt: Any, *, stage: str, hook: str,
                 nexthop: IPv4Address | None) -> None:
        self.box = box
        self.pkt = pkt
        self.stage = stage
        self.hook = hook
        self.manip = "DST" if hook in ("PREROUTING", "OUTPUT") else "SRC"
        self.nexthop = nexthop
        self.pending: list[Any] = []

    def bind(self, target: Any) -> tuple[str, str]:
        """The target's nf_nat_setup_info call: (verdict, detail)."""
        conn = self.pkt.meta.ct
        if conn is None:
            return "ACCEPT", "no conntrack entry: nothing to bind"
        made = RANGE_OF[target.name](self, target)
        if isinstance(made, str):
            return "DROP", made
        rng, note = made
        if rng is None:
            return "ACCEPT", note
        binding = setup_info(self.box.conntrack, conn, rng, self.manip)
        if binding is None:
            return "ACCEPT", "the connection is already confirmed: no binding (nf_nat_setup_info)"
        if target.name == "MASQUERADE":
            conn.nat["masq_index"] = self.pkt.meta.oif
        self.pending.append(binding_event(self.stage, self.hook, binding, target.name,
                                          rng.text() + (f" ({note})" if note else "")))
        return "ACCEPT", (f"{endpoint(binding.before, self.manip)} -> "
                          f"{endpoint(binding.after, self.manip)}")


def binding_event(stage: str, hook: str, binding: Binding, target: str, rng: str) -> Any:
    from kptui.engine.events import NatBinding

    return NatBinding(stage=stage, hook=hook, manip=binding.manip, target=target, range=rng,
                      before=endpoint(binding.before, binding.manip),
                      after=endpoint(binding.after, binding.manip), why=binding.why,
                      changed=binding.changed, assumed=binding.assumed)


Made = tuple[NatRange | None, str] | str  # (range, note), or why the packet is dropped


def _given_range(hook: NatHook, target: Any) -> Made:
    """SNAT / DNAT: the range as written."""
    return target.range, ""


def _masquerade(hook: NatHook, target: Any) -> Made:
    """nf_nat_masquerade_ipv4: the out device's address towards the next hop."""
    conn = hook.pkt.meta.ct
    if int(conn.original.src) == 0:
        return None, "source 0.0.0.0 (a local packet not meant to be masqueraded): no binding"
    oif = hook.pkt.meta.oif
    newsrc = hook.box.select_addr(oif, hook.nexthop, 0) if oif in hook.box.interfaces else None
    if newsrc is None:
        return f"{oif} ate my IP address (no address to masquerade with): dropped"
    rng = NatRange(target.flags | MAP_IPS, newsrc, newsrc, *target.ports)
    via = f"next hop {hook.nexthop}" if hook.nexthop is not None else "no next hop"
    return rng, f"{oif}'s address for {via} (inet_select_addr; the route's src is ignored)"


def _redirect(hook: NatHook, target: Any) -> Made:
    """nf_nat_redirect_ipv4: 127.0.0.1 in OUTPUT, else the in device's first address."""
    if hook.hook == "OUTPUT":
        dst = IPv4Address("127.0.0.1")
        note = "locally generated: 127.0.0.1"
    else:
        iif = hook.pkt.meta.iif
        iface = hook.box.interfaces.get(iif)
        if iface is None or not iface.addresses:
            return f"{iif} has no IPv4 address to redirect to: dropped"
        dst = iface.addresses[0].ip
        note = f"the first address of {iif}"
    return NatRange(target.flags | MAP_IPS, dst, dst, *target.ports), note


def _netmap(hook: NatHook, target: Any) -> Made:
    """netmap_tg4: keep the host bits, take the network bits from --to."""
    net = target.network
    mask = int(net.netmask)
    ip = hook.pkt.ip
    old = ip.dst if hook.manip == "DST" else ip.src
    new = IPv4Address((int(old) & ~mask & 0xFFFFFFFF) | (int(net.network_address) & mask))
    return NatRange(MAP_IPS, new, new), f"{old} mapped into {net}"


RANGE_OF = {"SNAT": _given_range, "DNAT": _given_range, "MASQUERADE": _masquerade,
            "REDIRECT": _redirect, "NETMAP": _netmap}
