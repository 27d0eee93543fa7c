"""The simulated host: interfaces, sysctls, route tables and the iptables ruleset.

Everything here mirrors what the kernel does when the same `ip`/`sysctl`
commands run in a fresh network namespace (kernel 6.18, iproute2 6.1):
the local/broadcast/connected routes that addresses create, what a link
going down removes, which source address an output route picks, and the
checks of ip_route_input_slow (martians, rp_filter, forwarding).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import TYPE_CHECKING, Any

from kptui.engine.errors import KptuiError, UnsupportedError
from kptui.engine.numbers import scan_uint
from kptui.engine.routing import (
    NO_NEXTHOP_TYPES,
    PROTO_KERNEL,
    SCOPE_HOST,
    SCOPE_LINK,
    SCOPE_NOWHERE,
    SCOPE_UNIVERSE,
    Flow,
    Lookup,
    Route,
    RouteError,
    RouteTables,
    format_route_get,
    pick_nexthop,
)

# What `ip` prints for the errno of a failed `ip route get` (strerror).
ERRNO_TEXT = {"ENETUNREACH": "Network is unreachable", "EHOSTUNREACH": "No route to host",
              "EACCES": "Permission denied", "EINVAL": "Invalid argument",
              "EXDEV": "Invalid cross-device link"}

if TYPE_CHECKING:
    from kptui.engine.packet import Packet

LOOPBACK_NET = IPv4Network("127.0.0.0/8")
LBCAST = IPv4Address("255.255.255.255")
LOCAL_MCAST = IPv4Network("224.0.0.0/24")  # ipv4_is_local_multicast
MTU_MIN, MTU_MAX = 68, 65535  # veth's limits: scenarios run on veth peers


def is_zeronet(addr: IPv4Address) -> bool:
    """ipv4_is_zeronet: only 0.0.0.0 since Linux 5.3.

    Commit 96125bf9985a ("Allow 0.0.0.0/8 as a valid address range") made the rest
    of 0.0.0.0/8 ordinary unicast: a packet from or to 0.1.2.3 is delivered and
    forwarded, not dropped as martian (checked on kernel 6.18 in a netns:
    tests/kernel/scenarios/path-zeronet.toml).
    """
    return int(addr) == 0


class SysctlError(KptuiError):
    """A sysctl write the kernel refuses (bad name or value)."""


# Per-device settings under net.ipv4.conf.{all,default,IFACE}: kernel default and how
# the `all` value combines with the device's one (include/linux/inetdevice.h).
CONF_DEFAULTS = {
    "forwarding": 0, "rp_filter": 0, "accept_local": 0, "route_localnet": 0,
    "src_valid_mark": 0, "promote_secondaries": 0, "send_redirects": 1,
    "accept_redirects": 1,
}
CONF_COMBINE = {  # IN_DEV_CONF_GET (dev only), IN_DEV_MAXCONF, IN_DEV_ORCONF
    "forwarding": "dev", "rp_filter": "max", "accept_local": "or", "route_localnet": "or",
    "src_valid_mark": "or", "promote_secondaries": "or", "send_redirects": "or",
    "accept_redirects": "and",
}
# Global settings: kernel default and the accepted range (None = any int, as proc_dointvec).
GLOBAL_SYSCTLS: dict[str, tuple[int, tuple[int, int] | None]] = {
    "net.ipv4.ip_forward": (0, None),
    "net.ipv4.ip_default_ttl": (64, (1, 255)),
    "net.ipv4.ip_forward_update_priority": (1, (0, 1)),
    "net.ipv4.icmp_echo_ignore_all": (0, (0, 1)),
    "net.ipv4.icmp_echo_ignore_broadcasts": (1, (0, 1)),
}


def _conntrack_sysctls() -> dict[str, tuple[int, tuple[int, int] | None]]:
    """net.netfilter.nf_conntrack_* (per namespace; timeouts in seconds, proc_dointvec_jiffies)."""
    from kptui.engine.conntrack import SWITCH_DEFAULTS, SYSCTL_PREFIX, TIMEOUT_DEFAULTS

    out: dict[str, tuple[int, tuple[int, int] | None]] = {
        SYSCTL_PREFIX + k: (v, (0, 2147483)) for k, v in TIMEOUT_DEFAULTS.items()}
    out.update({SYSCTL_PREFIX + k: v for k, v in SWITCH_DEFAULTS.items()})
    return out


GLOBAL_SYSCTLS.update(_conntrack_sysctls())


@dataclass(slots=True)
class Interface:
    """A network device. `addresses` is in the kernel's ifa_list order (primaries first)."""

    name: str
    addresses: list[IPv4Interface] = field(default_factory=list)
    mtu: int = 1500
    up: bool = False
    mac: str = ""

    def primaries(self) -> list[IPv4Interface]:
        """Addresses that are not secondary (no earlier address in the same subnet)."""
        out: list[IPv4Interface] = []
        for a in self.addresses:
            if not any(p.network == a.network for p in out):
                out.append(a)
        return out

    def primary_for(self, addr: IPv4Interface) -> IPv4Interface:
        return next(p for p in self.primaries() if p.network == addr.network)


@dataclass(slots=True)
class RouteResult:
    """A routing decision: what the walk shows and acts on.

    `kind` is the route type (local, unicast, broadcast, blackhole, unreachable,
    prohibit) or martian_source / martian_destination; `error` the errno name
    the kernel gives ('' when the packet can go on); `reason` a short machine
    word for why (no_route, ip_forward, rp_filter, martian).
    """

    kind: str
    table: str = ""
    route: str = ""
    oif: str = ""
    gateway: str = ""
    prefsrc: str = ""
    error: str = ""
    explain: list[str] = field(default_factory=list)
    reason: str = ""
    rule: str = ""  # the RPDB rule that gave the answer, as `ip rule show` prints it
    redirect: bool = False  # forwarded out of its in device: the kernel sends a redirect


def fake_mac(name: str) -> str:
    """A stable, locally administered MAC derived from the interface name."""
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).digest()
    return ":".join(f"{b:02x}" for b in (b"\x02" + digest[:5]))


def valid_ifname(name: str) -> bool:
    """dev_valid_name: 1..15 bytes, not '.' or '..', no '/', ':' or whitespace; a lone
    surrogate (no UTF-8 bytes a device name could hold) is not valid either."""
    if not name.isascii():
        try:
            name.encode()
        except UnicodeEncodeError:
            return False
    return (0 < len(name.encode()) < 16 and name not in (".", "..")
            and not any(c in name for c in "/:") and not any(c.isspace() for c in name))


def scope_of(addr: IPv4Interface) -> int:
    """iproute2 gives 127.0.0.0/8 addresses scope host; the rest are global."""
    return SCOPE_HOST if addr.ip in LOOPBACK_NET else SCOPE_UNIVERSE


def sysctl_path(name: str) -> list[str]:
    """The /proc/sys path components of a sysctl name, as sysctl(8) finds them (procps
    slashdot): when the first separator is a dot, dots separate and a slash stands for a
    dot inside a component (``net.ipv4.conf.eth0/100.rp_filter`` is device eth0.100's);
    when it is a slash, slashes separate."""
    body = name.strip("./")
    first = next((c for c in body if c in "./"), ".")
    if first == "/":
        return body.split("/")
    return [part.replace("/", ".") for part in body.split(".")]


def _proc_int(text: str) -> int | None:
    """What proc_dointvec reads from a sysctl write: blanks, an optional "-", then
    strtoul base 0 ("010" is 8, "0x10" 16, "+1" and "08" refused; the first of
    several numbers counts; checked with sysctl on kernel 6.18). None: EINVAL."""
    blanks = " \t\n\v\f\r"
    body = text.lstrip(blanks)
    end = next((n for n, c in enumerate(body) if c in blanks), len(body))
    word = body[:end]
    negative = word.startswith("-")
    magnitude = scan_uint(word[1:] if negative else word, 0)
    if magnitude is None:
        return None
    return -magnitude if negative else magnitude


class Box:
    """One simulated Linux host (a network namespace)."""

    def __init__(self) -> None:
        from kptui.engine.conntrack import ConntrackTable
        from kptui.engine.ipsets import IpsetStore
        from kptui.engine.iptables import Ruleset

        self.interfaces: dict[str, Interface] = {}
        self.routes = RouteTables()
        self.ruleset: Any = Ruleset()
        self.ipsets = IpsetStore()  # the netns' ipset sets, which iptables rules name
        self.sockets: list[Any] = []  # kptui.engine.sockets.Socket: -m socket, -j TPROXY
        self.tcp_delivered: set[tuple[int, int, int, int]] = set()  # (saddr, sport, daddr,
        # dport) of TCP packets delivered to a box with sockets (kptui.engine.sockets)
        self.ruleset.ipsets = self.ipsets
        self.rng: Any = None
        self.clock: float = 0.0  # the simulated clock, seconds (scenario packets' `time`)
        self.wall_clock: Any = None  # kptui.engine.wallclock.WallClock at clock 0, or None
        self.conntrack = ConntrackTable(self)
        self._tc: Any = None  # the tc state (Box.tc), made on first use
        self._global: dict[str, int] = {k: v for k, (v, _) in GLOBAL_SYSCTLS.items()}
        self._conf: dict[str, dict[str, int]] = {
            "all": dict(CONF_DEFAULTS), "default": dict(CONF_DEFAULTS)}
        self._conf_set: dict[str, set[str]] = {}  # per device: values written explicitly
        self.add_link("lo")
        self.interfaces["lo"].mtu = 65536
        self.interfaces["lo"].mac = "00:00:00:00:00:00"
        self.add_address("lo", IPv4Interface("127.0.0.1/8"))
        self.set_link("lo", up=True)

    @property
    def tc(self) -> Any:
        """The qdiscs, classes and filters per device (kptui.engine.qos.TcState), made
        when first asked for: a box without tc never imports the qdisc models."""
        if self._tc is None:
            from kptui.engine.qos import TcState

            self._tc = TcState()
        return self._tc

    @property
    def tc_made(self) -> Any:
        """The tc state if anything made it (a tc line, an ifb or imq link), else None."""
        return self._tc

    # -- links and addresses ----------------------------------------------------------

    def add_link(self, name: str) -> Interface:
        """`ip link add NAME type dummy`: a new device, down, settings copied from default."""
        if not valid_ifname(name):
            raise RouteError(f'Error: argument "{name}" is wrong: "name" not a valid ifname')
        if name in self.interfaces:
            raise RouteError("RTNETLINK answers: File exists")
        iface = Interface(name=name, mac=fake_mac(name))
        self.interfaces[name] = iface
        self._conf[name] = dict(self._conf["default"])
        self._conf_set[name] = set()
        return iface

    def add_imq(self, name: str) -> Interface:
        """An imq device of the classic-2.4 profile's imq module: down, no addresses,
        mtu 1500 (linuximq 2.4 imq.c: "dev->mtu = 1500; dev->tx_queue_len = 30;", the
        queue length in qos.TXQUEUELEN); the IMQ target queues packets to its qdisc."""
        iface = self.add_link(name)
        self.tc.link_kinds[name] = "imq"
        return iface

    def iface(self, name: str) -> Interface:
        try:
            return self.interfaces[name]
        except KeyError:
            raise RouteError(f'Cannot find device "{name}"') from None

    def set_link(self, name: str, *, up: bool | None = None, mtu: int | None = None) -> None:
        """`ip link set`: down flushes the device's routes, up adds the address routes."""
        iface = self.iface(name)
        if mtu is not None:
            if mtu < MTU_MIN:
                raise RouteError("Error: mtu less than device minimum.")
            if mtu > MTU_MAX and name != "lo":
                raise RouteError("Error: mtu greater than device maximum.")
            iface.mtu = mtu
        if up is None or up == iface.up:
            return
        if name == "lo" and not up:
            raise UnsupportedError("ip link set lo down")
        iface.up = up
        if up:
            self.routes.device_up(name)
            for addr in iface.addresses:
                self._add_addr_routes(iface, addr)
        else:
            # fib_sync_down_dev: every nexthop on the device dies except host-scope ones.
            self.routes.device_down(name)

    def add_address(self, name: str, addr: IPv4Interface) -> None:
        """`ip addr add`: kernel order (secondaries last) and fib_add_ifaddr's routes."""
        iface = self.iface(name)
        for a in iface.addresses:
            if a.ip == addr.ip and a.network.prefixlen == addr.network.prefixlen:
                raise RouteError("Error: ipv4: Address already assigned.")
        secondary = any(p.network == addr.network for p in iface.primaries())
        if secondary:
            iface.addresses.append(addr)
        else:
            last = max((i for i, a in enumerate(iface.addresses) if a in iface.primaries()
                        and scope_of(a) <= scope_of(addr)), default=-1)
            iface.addresses.insert(last + 1, addr)
        self._add_addr_routes(iface, addr)

    def del_address(self, name: str, addr: IPv4Interface, *, any_prefix: bool = False) -> None:
        """`ip addr del`: removes the address routes; secondaries go with their primary
        unless promote_secondaries, and routes using it as `src` are flushed."""
        iface = self.iface(name)
        found = next((a for a in iface.addresses if a.ip == addr.ip and (
            any_prefix or a.network.prefixlen == addr.network.prefixlen)), None)
        if found is None:
            raise RouteError("Error: ipv4: Address not found.")
        was_primary = found in iface.primaries()
        gone = [found]
        if was_primary and not self.conf(name, "promote_secondaries"):
            gone += [a for a in iface.addresses if a is not found and a.network == found.network]
        for a in gone:
            iface.addresses.remove(a)
        self._rebuild_kernel_routes(iface)
        for a in gone:
            if not self._address_assigned(a.ip):
                self.routes.remove_where(lambda r, ip=a.ip: r.src == ip and r.proto != PROTO_KERNEL)

    def _address_assigned(self, ip: IPv4Address) -> bool:
        return any(a.ip == ip for i in self.interfaces.values() for a in i.addresses)

    def _add_addr_routes(self, iface: Interface, addr: IPv4Interface) -> None:
        """fib_add_ifaddr (net/ipv4/fib_frontend.c), checked with `ip route show table local`."""
        prim = iface.primary_for(addr).ip
        secondary = prim != addr.ip or addr not in iface.primaries()
        ins = self.routes.insert
        ins(_kernel_route("local", IPv4Network(addr.ip), iface.name, prim, "local", SCOPE_HOST),
            mode="kernel")
        if not iface.up:
            return
        net = addr.network
        if secondary or is_zeronet(net.network_address):
            return
        if not (net.network_address == addr.ip and net.prefixlen == 32):
            rtype, table, scope = ("local", "local", SCOPE_HOST) if iface.name == "lo" else (
                "unicast", "main", SCOPE_LINK)
            ins(_kernel_route(rtype, net, iface.name, prim, table, scope), mode="kernel")
            if net.prefixlen < 31:
                ins(_kernel_route("broadcast", IPv4Network(net.broadcast_address), iface.name,
                                  prim, "local", SCOPE_LINK), mode="kernel")

    def _rebuild_kernel_routes(self, iface: Interface) -> None:
        self.routes.remove_where(lambda r: r.proto == PROTO_KERNEL and r.dev == iface.name)
        for addr in iface.addresses:
            self._add_addr_routes(iface, addr)

    # -- sysctls ------------------------------------------------------------------------

    def _split(self, name: str) -> tuple[str, str, str]:
        """('global', name, '') or ('conf', who, key); UnsupportedError when not modelled."""
        parts = sysctl_path(name)
        norm = ".".join(parts)
        if norm in GLOBAL_SYSCTLS:
            return ("global", norm, "")
        if len(parts) == 5 and parts[:3] == ["net", "ipv4", "conf"] and parts[4] in CONF_DEFAULTS:
            who = parts[3]
            if who in ("all", "default") or who in self.interfaces:
                return ("conf", who, parts[4])
            raise SysctlError(f"sysctl: cannot stat /proc/sys/{'/'.join(parts)}: "
                              "No such file or directory")
        raise UnsupportedError(f"sysctl {norm}")

    def sysctl(self, name: str) -> int:
        """The value `sysctl NAME` would print (kernel defaults when never written)."""
        kind, who, key = self._split(name)
        if kind == "global":
            if who == "net.ipv4.ip_forward":
                return self._conf["all"]["forwarding"]
            return self._global[who]
        return self._conf[who][key]

    def set_sysctl(self, name: str, value: int | str) -> None:
        """`sysctl -w NAME=VALUE` with the kernel's side effects (devinet_sysctl_forward)."""
        kind, who, key = self._split(name)
        norm = name.replace("/", ".")
        val = value if isinstance(value, int) else _proc_int(value)
        if val is None or not -2**31 <= val < 2**31:
            raise SysctlError(f'sysctl: setting key "{norm}": Invalid argument')
        if kind == "global":
            bounds = GLOBAL_SYSCTLS[who][1]
            if bounds and not bounds[0] <= val <= bounds[1]:
                raise SysctlError(f'sysctl: setting key "{norm}": Invalid argument')
            if who == "net.ipv4.ip_forward":
                self._set_forwarding_all(val)
            else:
                self._global[who] = val
            return
        if key == "forwarding" and who == "all":
            self._set_forwarding_all(val)
            return
        self._conf[who][key] = val
        if who == "default" and key != "forwarding":
            # devinet_copy_dflt_conf: devices that never set it follow the default.
            for dev, written in self._conf_set.items():
                if key not in written:
                    self._conf[dev][key] = val
        elif who not in ("all", "default"):
            self._conf_set[who].add(key)

    def _set_forwarding_all(self, val: int) -> None:
        """inet_forward_change: all, default and every device; accept_redirects = !on."""
        self._conf["all"]["forwarding"] = val
        self._conf["default"]["forwarding"] = val
        self._conf["all"]["accept_redirects"] = 0 if val else 1
        for dev in self._conf_set:
            self._conf[dev]["forwarding"] = val

    def conf(self, dev: str, key: str) -> int:
        """The effective per-device value (IN_DEV_MAXCONF / ORCONF / CONF_GET)."""
        mine = self._conf[dev][key] if dev in self._conf else self._conf["default"][key]
        glob = self._conf["all"][key]
        how = CONF_COMBINE[key]
        if how == "max":
            return max(glob, mine)
        if how == "or":
            return 1 if (glob or mine) else 0
        if how == "and":
            return 1 if (glob and mine) else 0
        return mine

    def forwarding(self, iface: str) -> bool:
        """IN_DEV_FORWARD: the ingress device's own conf/IFACE/forwarding."""
        return bool(self.conf(iface, "forwarding"))

    # -- address types --------------------------------------------------------------------

    def addrtype(self, addr: IPv4Address, dev: str | None = None) -> str:
        """inet_dev_addr_type: the local table's answer, as -m addrtype sees it.

        0.0.0.0 and 255.255.255.255 are BROADCAST, 224/4 MULTICAST; otherwise the
        type of the local-table route (only when on `dev`, if given), else UNICAST.
        An error route in the local table makes the lookup fail: UNICAST too.
        """
        addr = IPv4Address(addr)
        if is_zeronet(addr) or addr == LBCAST:
            return "BROADCAST"
        if addr.is_multicast:
            return "MULTICAST"
        res = self.routes.table_lookup("local", addr)
        if res.route is None or res.error:
            return "UNICAST"
        if dev is not None and res.route.dev != dev:
            return "UNICAST"
        return res.route.type.upper()

    def is_local(self, addr: IPv4Address) -> bool:
        """inet_addr_type(addr) == RTN_LOCAL: delivered here (own addresses, 127/8, ...)."""
        return self.addrtype(IPv4Address(addr)) == "LOCAL"

    # -- routes ---------------------------------------------------------------------------

    def add_route(self, route: Route, *, mode: str, has_scope: bool = False) -> None:
        """fib_create_info's checks, then fib_table_insert. Errors are the kernel's text."""
        if route.prefix.prefixlen and int(route.prefix.network_address) & ~int(
                route.prefix.netmask) & 0xFFFFFFFF:
            raise RouteError("Error: Invalid prefix for given prefix length.")
        if route.type in NO_NEXTHOP_TYPES:
            if route.dev or route.gateway is not None or route.nexthops:
                raise RouteError("Error: Gateway, device and multipath can not be specified "
                                 "for this route type.")
        elif route.nexthops:
            for nh in route.nexthops:
                if nh.gateway is None:
                    if not nh.dev:
                        raise RouteError("RTNETLINK answers: No such device")
                    if not self.iface(nh.dev).up:
                        raise RouteError("Error: Nexthop device is not up.")
                    continue
                probe = Route(prefix=route.prefix, gateway=nh.gateway, dev=nh.dev,
                              scope=route.scope, table=route.table)
                self._check_gateway(probe)
                nh.dev = probe.dev
            route.dev, route.gateway = route.nexthops[0].dev, route.nexthops[0].gateway
        elif route.scope == SCOPE_HOST:
            if route.gateway is not None:
                raise RouteError("Error: Route with host scope can not have a gateway.")
            if not route.dev:
                raise RouteError("RTNETLINK answers: No such device")
            route.nh_scope = SCOPE_NOWHERE
        elif route.gateway is not None:
            self._check_gateway(route)
        else:
            if not route.dev:
                raise RouteError("RTNETLINK answers: No such device")
            if not self.iface(route.dev).up:
                raise RouteError("Error: Nexthop device is not up.")
            route.nh_scope = SCOPE_HOST
        if route.dev:
            self.iface(route.dev)
        if route.src is not None and not (
                route.type == "local" and route.src == route.prefix.network_address
                and route.prefix.prefixlen == 32):
            if self.addrtype(route.src) != "LOCAL":
                raise RouteError("Error: Invalid prefsrc address.")
        self.routes.insert(route, mode=mode)
        if route.type == "local":
            self.routes.has_custom_local_routes = True

    def _check_gateway(self, route: Route) -> None:
        """fib_check_nh_v4_gw: the gateway must be on-link (a link or host scope route):
        looked up in the route's own table (other than main) first, then through the
        RPDB (so a gateway reachable only through the local table is fine too)."""
        gw = route.gateway
        assert gw is not None
        if route.dev:
            self.iface(route.dev)
        min_scope = max(route.scope + 1, SCOPE_LINK)
        res = None
        if route.table != "main" and route.table in self.routes.tables:
            res = self.routes.table_lookup(route.table, gw, min_scope=min_scope, oif=route.dev)
        if res is None or res.error:
            res = self.routes.lookup(gw, min_scope=min_scope, oif=route.dev)
        if res.route is None or res.error or res.route.type not in ("unicast", "local"):
            raise RouteError("Error: Nexthop has invalid gateway.")
        dev = route.dev or res.route.dev
        if not self.iface(dev).up:
            raise RouteError("Error: Nexthop device is not up.")
        route.dev = dev
        route.nh_scope = res.route.scope

    # -- lookups --------------------------------------------------------------------------

    def _group(self, dev: str) -> int:
        """The device's interface group: every device is in group 0 ("default")."""
        return 0

    def _rpdb(self, flow: Flow) -> Lookup:
        return self.routes.lookup(flow.dst, flow=flow, group=self._group)

    def _path(self, route: Route, oif: str = "") -> tuple[str, IPv4Address | None, str]:
        """(device, gateway, note) of a route; a multipath route's path is kptui's guess."""
        if not route.nexthops:
            return route.dev, route.gateway, ""
        live = [n for n in route.live_nexthops() if not oif or n.dev == oif]
        nh = live[0] if live else pick_nexthop(route)
        assert nh is not None
        note = ""
        if len(route.live_nexthops()) > 1 and not oif:
            note = (f"multipath: kptui assumes the first live path ({nh.show()}); the kernel "
                    "picks by a hash of the addresses (fib_multipath_hash_policy 0) keyed "
                    "at random at boot, so another path may be taken")
        return nh.dev, nh.gateway, note

    def _result(self, kind: str, res: Lookup, explain: list[str], *, error: str = "",
                reason: str = "", prefsrc: str = "", oif: str = "") -> RouteResult:
        r = res.route
        dev, gw = (r.dev, r.gateway) if r else ("", None)
        if r is not None and r.nexthops:
            dev, gw, note = self._path(r, oif)
            if note:
                explain.append(note)
        if r is not None and res.candidates:
            explain.append("also covering it in table " + r.table + ": "
                           + "; ".join(c.show() for c in res.candidates))
        return RouteResult(
            kind=kind, table=r.table if r else "", route=r.show() if r else "",
            oif=("lo" if kind == "local" else dev) if r else "",
            gateway=str(gw) if gw is not None else "",
            prefsrc=prefsrc, error=error, explain=explain, reason=reason,
            rule=res.rule.show().replace("\t", " ") if res.rule else "")

    def input_flow(self, pkt: Packet) -> Flow:
        """ip_route_input_slow's flow: the in device, the mark, tos, proto and ports."""
        return Flow(dst=pkt.ip.dst, src=pkt.ip.src, iif=pkt.meta.iif, mark=pkt.meta.mark,
                    tos=pkt.ip.tos, proto=pkt.ip.proto, sport=pkt.sport or 0,
                    dport=pkt.dport or 0)

    def route_input(self, pkt: Packet, *, flow: Flow | None = None) -> RouteResult:
        """ip_route_input_slow for a packet received on pkt.meta.iif."""
        iif, src, dst = pkt.meta.iif, pkt.ip.src, pkt.ip.dst
        if iif not in self.interfaces:
            raise KptuiError(f"input routing: no interface {iif!r} on this box")
        flow = flow or self.input_flow(pkt)
        explain = [f"input lookup: to {dst} from {src} iif {iif}"
                   + (f" mark 0x{flow.mark:x}" if flow.mark else "")]
        if iif == "lo":
            explain.append("looped back from local output: the kernel keeps the output route")
            res = self._rpdb(Flow(dst=dst, mark=flow.mark))
            explain += res.explain
            route = res.route
            kind = route.type if route else "unreachable"
            return self._result(kind, res, explain, error=res.error,
                                reason="" if not res.error else "no_route")
        if dst.is_multicast:
            raise UnsupportedError(f"multicast input routing (to {dst})")
        martian = self._martian(iif, src, dst)
        if martian:
            kind, why = martian
            explain.append(why)
            return RouteResult(kind=kind, error="EINVAL", explain=explain, reason="martian")
        if dst == LBCAST or (int(src) == 0 and int(dst) == 0):
            return self._broadcast_input(iif, src, None, explain, flow)
        res = self._rpdb(flow)
        explain += res.explain
        route = res.route
        if res.error:
            error = res.error
            if not self.forwarding(iif):
                explain.append(f"forwarding is off on {iif}: the error becomes EHOSTUNREACH")
                error = "EHOSTUNREACH"
            if route is not None and route.type != "throw":
                kind = route.type
            else:
                kind = {"EINVAL": "blackhole", "EACCES": "prohibit"}.get(res.error,
                                                                        "unreachable")
            return self._result(kind, res, explain, error=error,
                                reason="no_route" if route is None and res.rule is None
                                else kind)
        assert route is not None
        if route.type == "broadcast":
            return self._broadcast_input(iif, src, route, explain, flow)
        if route.type == "local":
            bad = self._validate_source(iif, src, oif="", flow=flow)
            if bad:
                explain.append(bad[1])
                return RouteResult(kind="martian_source", error=bad[0], explain=explain,
                                   reason="rp_filter" if bad[0] == "EXDEV" else "martian")
            explain.append("local delivery")
            return self._result("local", res, explain, prefsrc=str(route.src or ""))
        if not self.forwarding(iif):
            explain.append(f"not for this host and forwarding is off on {iif}: EHOSTUNREACH")
            return self._result("unicast", res, explain, error="EHOSTUNREACH",
                                reason="ip_forward")
        if route.type != "unicast":
            explain.append(f"martian destination {dst}: a {route.type} route cannot forward")
            return self._result("martian_destination", res, explain, error="EINVAL",
                                reason="martian")
        out_dev, gw, _ = self._path(route)
        bad = self._validate_source(iif, src, oif=out_dev, flow=flow)
        if bad:
            explain.append(bad[1])
            return RouteResult(kind="martian_source", error=bad[0], explain=explain,
                               reason="rp_filter" if bad[0] == "EXDEV" else "martian")
        explain.append(f"forward out of {out_dev}")
        result = self._result("unicast", res, explain)
        result.redirect = self._redirect(iif, src, out_dev, gw, flow)
        return result

    def _redirect(self, iif: str, src: IPv4Address, out_dev: str, gw: IPv4Address | None,
                  flow: Flow) -> bool:
        """__mkroute_input's RTCF_DOREDIRECT: out where it came in, the source on-link
        (fib_validate_source said 1), and IN_DEV_SHARED_MEDIA or the source and gateway
        on one of the device's subnets (inet_addr_onlink; no gateway: the source's alone).
        shared_media is 1 by default (and not a sysctl kptui models), so the subnet test
        decides nothing: a packet to another subnet gets its redirect too (checked on
        kernel 6.18: tests/kernel/capture_roundtrips.py, addresses-reconciled)."""
        if out_dev != iif or not self.conf(iif, "send_redirects"):
            return False
        back = self._rpdb(Flow(dst=src, src=flow.dst, tos=flow.tos, proto=flow.proto,
                               sport=flow.dport, dport=flow.sport))
        if back.route is None or back.error or back.route.dev != iif \
                or back.route.nh_scope < SCOPE_HOST:
            return False
        return True

    def _broadcast_input(self, iif: str, src: IPv4Address, route: Route | None,
                         explain: list[str], flow: Flow) -> RouteResult:
        if int(src) != 0:
            bad = self._validate_source(iif, src, oif="", flow=flow)
            if bad:
                explain.append(bad[1])
                return RouteResult(kind="martian_source", error=bad[0], explain=explain,
                                   reason="rp_filter" if bad[0] == "EXDEV" else "martian")
        explain.append("broadcast: delivered locally")
        res = self._result("broadcast", Lookup(route), explain)
        res.oif = ""
        return res

    def _martian(self, iif: str, src: IPv4Address, dst: IPv4Address) -> tuple[str, str] | None:
        """The address checks at the top of ip_route_input_slow, in the kernel's order."""
        if src.is_multicast or src == LBCAST:
            return ("martian_source", f"martian source {src}: multicast or broadcast")
        if dst == LBCAST or (int(src) == 0 and int(dst) == 0):
            return None
        if is_zeronet(src):
            return ("martian_source", f"martian source {src}: only allowed to 255.255.255.255")
        if is_zeronet(dst):
            return ("martian_destination", f"martian destination {dst}")
        localnet = self.conf(iif, "route_localnet")
        if dst in LOOPBACK_NET:
            if not localnet:
                return ("martian_destination",
                        f"martian destination {dst}: loopback (route_localnet is 0)")
        elif src in LOOPBACK_NET and not localnet:
            return ("martian_source", f"martian source {src}: loopback (route_localnet is 0)")
        return None

    def _validate_source(self, iif: str, src: IPv4Address, *, oif: str,
                         flow: Flow | None = None) -> tuple[str, str] | None:
        """fib_validate_source: None when the source is fine, else (errno, why).

        The reverse lookup goes through the RPDB with {to src, from dst, iif lo, the
        mark only with src_valid_mark, ports swapped}; with rp_filter 0 it is done only
        when local routes or rules were added (fib4_has_custom_rules)."""
        rpf = self.conf(iif, "rp_filter")
        if not rpf and (iif != oif or not self.conf(iif, "send_redirects")):
            if self.conf(iif, "accept_local"):
                return None
            if not self.routes.has_custom_local_routes and not self.routes.has_custom_rules:
                if self._address_assigned(src):
                    return ("EINVAL", f"martian source {src}: it is a local address")
                return None
        back = Flow(dst=src)
        if flow is not None:
            back = Flow(dst=src, src=flow.dst, tos=flow.tos, proto=flow.proto,
                        sport=flow.dport, dport=flow.sport,
                        mark=flow.mark if self.conf(iif, "src_valid_mark") else 0)
        res = self._rpdb(back)
        if res.route is None or res.error:
            if rpf:
                return ("EXDEV", f"rp_filter={rpf} on {iif}: no route back to {src}")
            return None
        rtype = res.route.type
        if rtype != "unicast" and not (rtype == "local" and self.conf(iif, "accept_local")):
            return ("EINVAL", f"martian source {src}: the route back is {rtype}")
        devs = {n.dev for n in res.route.live_nexthops()} or {res.route.dev}
        if iif in devs or (rtype == "local" and iif == "lo"):
            return None
        if not self.interfaces[iif].addresses:
            return ("EXDEV", f"rp_filter={rpf}: {iif} has no address") if rpf else None
        if rpf == 1:
            return ("EXDEV", f"rp_filter=1 (strict) on {iif}: the route back to {src} "
                             f"leaves by {res.route.dev}")
        return None

    def rpfilter(self, pkt: Packet, iif: str, *, loose: bool, validmark: bool,
                 accept_local: bool) -> tuple[bool, str]:
        """-m rpfilter's test (ipt_rpfilter.c rpfilter_mt, before --invert): (passes, why).

        The reverse lookup is not fib_validate_source's: {to src, from dst (0 when dst
        is multicast, broadcast or 0.0.0.0), iif lo, tos, the mark only with
        --validmark}, no protocol or ports; any path of the route counts
        (fib_info_nh_uses_dev), whatever its link state."""
        src, dst = pkt.ip.src, pkt.ip.dst
        if iif == "lo":  # rpfilter_is_loopback
            return True, "reverse path: looped back (in lo)"
        if is_zeronet(src) and (dst == LBCAST or dst in LOCAL_MCAST):
            return True, f"reverse path: {src} to {dst} is not checked"
        back_src = IPv4Address(0) if dst.is_multicast or dst == LBCAST or is_zeronet(dst) \
            else dst
        res = self._rpdb(Flow(dst=src, src=back_src, iif="lo", tos=pkt.ip.tos,
                              mark=pkt.meta.mark if validmark else 0))
        route = res.route
        if route is None or res.error:
            return False, f"reverse path: no route back to {src}"
        if route.type != "unicast" and not (route.type == "local" and accept_local):
            return False, f"reverse path: the route back to {src} is {route.type} " \
                          f"({route.show()})"
        devs = {n.dev for n in route.nexthops} or {route.dev}
        if iif in devs:
            return True, f"reverse path: {src} is reached through {iif}"
        if loose:
            return True, (f"reverse path: {src} is reached through "
                          f"{', '.join(sorted(devs))} (--loose)")
        return False, (f"reverse path: {src} is reached through "
                       f"{', '.join(sorted(devs))}, not {iif}")

    def bound_source(self, pkt: Packet) -> IPv4Address | None:
        """The address a local packet's socket is bound to, or None for an unbound one.

        A process's packet (meta.sock "user") whose source is an address of the box
        (inet_addr_type RTN_LOCAL) comes from a socket bound to it, as a server's reply
        or `ping -I ADDR` does; the kernel's output lookup then carries that source,
        so `ip rule from ADDR` applies. A source the box does not have cannot be bound
        (bind(2): EADDRNOTAVAIL): a raw socket (IP_HDRINCL) writes it into the header
        and is looked up without one; 0.0.0.0 is an unbound socket, whose source the
        route picks. (raw_bind keeps no source for a broadcast or multicast address.)
        Checked on kernel 6.18 with UDP and raw sockets, bound and unbound.
        """
        src = pkt.ip.src
        if pkt.meta.iif or pkt.meta.sock != "user" or not int(src) or not self.is_local(src):
            return None
        return src

    def output_flow(self, pkt: Packet, *, reroute: bool = False) -> Flow:
        """The flow of a local packet's output lookup.

        A scenario's local packet is sent as `kptui verify` sends it: from a raw
        socket (IP_HDRINCL, SO_MARK), bound to its source when that is an address
        of the box (bound_source): raw_sendmsg looks up {to dst, from the bound
        address or none, mark, iif lo}, protocol raw (255), no ports and the
        socket's tos (0), so rules on ipproto, ports or tos do not see it, nor
        rules on from an unbound one (checked on kernel 6.18).
        ip_route_me_harder (reroute) looks up with the header's source, tos, protocol
        and ports (fib4_rules_early_flow_dissect).
        """
        if not reroute:
            return Flow(dst=pkt.ip.dst, src=self.bound_source(pkt) or IPv4Address(0),
                        mark=pkt.meta.mark, proto=255)
        src = pkt.ip.src if self.addrtype(pkt.ip.src) in ("LOCAL", "UNICAST") else \
            IPv4Address(0)
        return Flow(dst=pkt.ip.dst, src=src, mark=pkt.meta.mark, tos=pkt.ip.tos,
                    proto=pkt.ip.proto, sport=pkt.sport or 0, dport=pkt.dport or 0)

    def route_output(self, pkt: Packet, *, flow: Flow | None = None,
                     anysrc: bool = True) -> RouteResult:
        """ip_route_output_key_hash for a locally generated packet (flow iif=lo)."""
        dst = pkt.ip.dst
        flow = flow or self.output_flow(pkt)
        explain = [f"output lookup: to {dst}" + (f" from {flow.src}" if int(flow.src) else "")
                   + (f" oif {flow.oif}" if flow.oif else "")
                   + (f" mark 0x{flow.mark:x}" if flow.mark else "")]
        if dst.is_multicast:
            raise UnsupportedError(f"multicast output routing (to {dst})")
        if int(flow.src) and (flow.src.is_multicast or flow.src == LBCAST):
            explain.append(f"source {flow.src} is a broadcast or multicast address: EINVAL")
            return RouteResult(kind="martian_source", error="EINVAL", explain=explain,
                               reason="martian")
        if dst == LBCAST and int(flow.src) and not flow.oif:
            # "user can direct ... limited broadcast via necessary interface": no lookup
            dev = self._addr_dev(flow.src)
            if dev is None:
                explain.append(f"{flow.src} is on no device of this box: ENETUNREACH")
                return RouteResult(kind="unreachable", error="ENETUNREACH", explain=explain,
                                   reason="no_route")
            explain.append(f"limited broadcast from {flow.src}: out of {dev}, the device "
                           "with that address, without a route lookup")
            return self._checked_source(RouteResult(kind="broadcast", oif=dev, explain=explain),
                                        flow.src)
        if int(flow.src) and not anysrc and not self.is_local(flow.src):
            explain.append(f"{flow.src} is not an address of this box: ENETUNREACH")
            return RouteResult(kind="unreachable", error="ENETUNREACH", explain=explain,
                               reason="no_route")
        if dst == LBCAST and flow.oif:
            src = flow.src if int(flow.src) else self.select_addr(flow.oif, None, SCOPE_LINK)
            explain.append(f"limited broadcast with oif {flow.oif}: out of it, without a "
                           "route lookup")
            return self._checked_source(RouteResult(
                kind="broadcast", oif=flow.oif, prefsrc=str(src or ""), explain=explain), src)
        if int(dst) == 0:
            explain.append("destination 0.0.0.0: the kernel sends it to itself over lo")
            return RouteResult(kind="local", oif="lo", prefsrc="127.0.0.1", explain=explain)
        res = self._rpdb(flow)
        explain += res.explain
        route = res.route
        if res.error and flow.oif:
            # any lookup error (no route, an unreachable/prohibit/blackhole route or rule)
            what = f"the lookup failed ({res.error})" if route is None and res.rule is None \
                else f"the {route.type if route is not None else res.rule.action} " \
                     f"{'route' if route is not None else 'rule'} gives {res.error}"
            explain.append(f"{what}, but oif {flow.oif} is given: the kernel assumes the "
                           "destination is on that link")
            src = flow.src if int(flow.src) else self.select_addr(flow.oif, None, SCOPE_LINK)
            return self._checked_source(RouteResult(
                kind="unicast", oif=flow.oif, prefsrc=str(src or ""), explain=explain), src)
        if res.error:
            if route is not None and route.type != "throw":
                kind = route.type
            else:
                kind = {"EINVAL": "blackhole", "EACCES": "prohibit"}.get(res.error,
                                                                        "unreachable")
            explain.append(f"the sending socket gets {res.error}")
            return self._result(kind, res, explain, error=res.error,
                                reason="no_route" if route is None and res.rule is None
                                else kind)
        assert route is not None
        if route.type == "local":
            src = route.src or dst
            return self._result("local", res, explain, prefsrc=str(src))
        kind = "broadcast" if route.type == "broadcast" or dst == LBCAST else route.type
        dev, gw, _ = self._path(route, flow.oif)
        src = route.src or self.select_addr(dev, gw, route.scope)
        result = self._result(kind, res, explain, prefsrc=str(src) if src else "",
                              oif=flow.oif)
        if dst == LBCAST:  # __mkroute_output: a limited broadcast has no gateway (fi NULL)
            result.gateway = ""
        return self._checked_source(result, flow.src if int(flow.src) else src)

    def _checked_source(self, result: RouteResult, src: IPv4Address | None) -> RouteResult:
        """__mkroute_output's refusal of a loopback source leaving a device that is not
        lo (unless route_localnet is set on it): EINVAL, as `ip route get 8.8.8.8 from
        127.0.0.1` gives (checked on kernel 6.18)."""
        dev = result.oif
        if src is None or src not in LOOPBACK_NET or not dev or dev == "lo" or \
                self.conf(dev, "route_localnet"):
            return result
        result.explain.append(f"source {src} is a loopback address and {dev} is not lo "
                              "(route_localnet is 0): EINVAL")
        return RouteResult(kind="martian_source", error="EINVAL", explain=result.explain,
                           reason="martian", table=result.table, route=result.route,
                           rule=result.rule)

    def _addr_dev(self, ip: IPv4Address) -> str | None:
        """__ip_dev_find: the device that has address ``ip``, else the device of its
        local-table route (an address local by a route, not assigned); None if neither."""
        for iface in self.interfaces.values():
            if any(a.ip == ip for a in iface.addresses):
                return iface.name
        res = self.routes.table_lookup("local", ip)
        if res.route is not None and not res.error and res.route.type == "local":
            return res.route.dev
        return None

    def route_get(self, dst: IPv4Address, *, src: IPv4Address | None = None, iif: str = "",
                  oif: str = "", mark: int = 0, tos: int = 0) -> tuple[RouteResult, str]:
        """`ip route get`: the decision and the text `ip` prints for it.

        Without `iif` it is an output lookup (iif lo, no source unless `from`, which
        must then be a local address); with `iif` the input lookup of a packet from
        `src` arriving there. An error is a RouteError with `ip`'s message.
        """
        from kptui.engine.packet import Packet

        for dev in (iif, oif):
            if dev:
                self.iface(dev)
        pkt = Packet.build(proto="icmp", src=src or IPv4Address(0), dst=dst, icmp_type=8,
                           tos=tos, mark=mark, iif=iif)
        pkt.meta.mark = mark
        if iif:
            flow = Flow(dst=dst, src=src or IPv4Address(0), iif=iif, mark=mark, tos=tos)
            result = self.route_input(pkt, flow=flow)
        else:
            flow = Flow(dst=dst, src=src or IPv4Address(0), oif=oif, mark=mark, tos=tos)
            result = self.route_output(pkt, flow=flow, anysrc=False)
        if result.error:
            raise RouteError("RTNETLINK answers: " + ERRNO_TEXT.get(result.error,
                                                                    result.error))
        return result, format_route_get(result, dst=dst, src=src, iif=iif, mark=mark)

    def select_addr(self, dev: str, dst: IPv4Address | None, scope: int) -> IPv4Address | None:
        """inet_select_addr: a primary address on `dev` (in dst's subnet if possible),
        else the first suitable primary address of any other device, lo first."""
        localnet_scope = SCOPE_LINK if self.conf(dev, "route_localnet") else SCOPE_HOST
        first: IPv4Address | None = None
        for a in self.interfaces[dev].primaries():
            if min(scope_of(a), localnet_scope) > scope:
                continue
            if dst is None or dst in a.network:
                return a.ip
            if first is None:
                first = a.ip
        if first is not None:
            return first
        for iface in self.interfaces.values():
            for a in iface.primaries():
                if scope_of(a) != SCOPE_LINK and scope_of(a) <= scope:
                    return a.ip
        return None

    def show_routes(self, table: str = "main") -> list[str]:
        """`ip route show table TABLE`, one line per route, without trailing blanks."""
        return self.routes.show(self.routes.table_name(table))


def _kernel_route(rtype: str, prefix: IPv4Network, dev: str, src: IPv4Address, table: str,
                  scope: int) -> Route:
    nh_scope = SCOPE_NOWHERE if scope == SCOPE_HOST else SCOPE_HOST
    return Route(prefix=prefix, type=rtype, dev=dev, src=src, proto=PROTO_KERNEL, scope=scope,
                 table=table, nh_scope=nh_scope)


__all__ = ["Box", "Interface", "RouteResult", "SysctlError", "RouteError", "SCOPE_UNIVERSE"]
