"""Route tables (local, main, default) and the kernel's lookups over them.

Kept apart from the box so that the table semantics (fib_trie order, the
netlink error for each bad `ip route` request, longest prefix then metric)
can be read and tested on their own. The box feeds it interface events.

Checked on kernel 6.18 in a netns (see tests/test_routing.py):
- aliases of one prefix are kept in metric order, `append` goes after equal
  metrics, `add` of an existing (prefix, metric) is EEXIST whatever the type;
- `ip route show` lists prefixes by address, the longer prefix first.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network

from kptui.engine.errors import KptuiError

# rtnetlink scopes (include/uapi/linux/rtnetlink.h) and the names iproute2 prints.
SCOPE_UNIVERSE, SCOPE_SITE, SCOPE_LINK, SCOPE_HOST, SCOPE_NOWHERE = 0, 200, 253, 254, 255
SCOPE_NAMES = {"global": 0, "universe": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}
SCOPE_PRINT = {0: "global", 200: "site", 253: "link", 254: "host", 255: "nowhere"}

# /etc/iproute2/rt_protos as shipped with iproute2 6.1 (names `ip route` accepts and prints).
PROTO_NAMES = {
    "unspec": 0, "redirect": 1, "kernel": 2, "boot": 3, "static": 4, "gated": 8, "ra": 9,
    "mrt": 10, "zebra": 11, "bird": 12, "dnrouted": 13, "xorp": 14, "ntk": 15, "dhcp": 16,
    "keepalived": 18, "babel": 42, "openr": 99, "bgp": 186, "isis": 187, "ospf": 188,
    "rip": 189, "eigrp": 192,
}
PROTO_PRINT = {v: k for k, v in PROTO_NAMES.items()}
PROTO_KERNEL, PROTO_BOOT = 2, 3

TABLES = ("local", "main", "default")  # RPDB order of the three default rules

# fib_props: the error each route type gives (net/ipv4/fib_semantics.c); "" = a real route.
TYPE_ERRORS = {
    "unicast": "", "local": "", "broadcast": "", "multicast": "", "anycast": "",
    "blackhole": "EINVAL", "unreachable": "EHOSTUNREACH", "prohibit": "EACCES", "throw": "EAGAIN",
}
ROUTE_TYPES = tuple(TYPE_ERRORS)
NO_NEXTHOP_TYPES = ("blackhole", "unreachable", "prohibit", "throw")


class RouteError(KptuiError):
    """A route request the kernel refuses; the message is what `ip route` prints."""


@dataclass(slots=True)
class Route:
    """One fib alias: a prefix with its type, nexthop and attributes."""

    prefix: IPv4Network
    type: str = "unicast"
    dev: str = ""
    gateway: IPv4Address | None = None
    src: IPv4Address | None = None
    metric: int = 0
    proto: int = PROTO_BOOT
    scope: int = SCOPE_UNIVERSE
    table: str = "main"
    nh_scope: int = SCOPE_UNIVERSE  # the scope of the nexthop: NOWHERE for host routes

    def key(self) -> tuple:
        return (self.prefix, self.type, self.dev, self.gateway, self.src, self.metric,
                self.proto, self.scope)

    def show(self, *, with_table: bool = False) -> str:
        """The route as `ip route show` prints it (without the trailing blank)."""
        words: list[str] = []
        if self.type != "unicast":
            words.append(self.type)
        words.append("default" if self.prefix.prefixlen == 0 else _prefix_text(self.prefix))
        if self.gateway is not None:
            words += ["via", str(self.gateway)]
        if self.dev:
            words += ["dev", self.dev]
        if with_table and self.table != "main":
            words += ["table", self.table]
        if self.proto != PROTO_BOOT:
            words += ["proto", PROTO_PRINT.get(self.proto, str(self.proto))]
        if self.scope != SCOPE_UNIVERSE:
            words += ["scope", SCOPE_PRINT.get(self.scope, str(self.scope))]
        if self.src is not None:
            words += ["src", str(self.src)]
        if self.metric:
            words += ["metric", str(self.metric)]
        return " ".join(words)


def _prefix_text(net: IPv4Network) -> str:
    return str(net.network_address) if net.prefixlen == 32 else str(net)


@dataclass(slots=True)
class Lookup:
    """The outcome of a table lookup: a route, or the errno the kernel returns."""

    route: Route | None
    error: str = ""  # ENETUNREACH, EHOSTUNREACH, EACCES, EINVAL
    explain: list[str] = field(default_factory=list)


class RouteTables:
    """local/main/default tables, each a list of routes kept in fib_trie order."""

    def __init__(self) -> None:
        self.tables: dict[str, list[Route]] = {name: [] for name in TABLES}
        self.has_custom_local_routes = False  # net->ipv4.fib_has_custom_local_routes

    # -- changing tables ------------------------------------------------------------

    def insert(self, route: Route, *, mode: str) -> None:
        """fib_table_insert with `add` (EXCL), `replace`, `append` or `kernel` (fib_magic)."""
        routes = self.tables[route.table]
        same = [i for i, r in enumerate(routes)
                if r.prefix == route.prefix and r.metric == route.metric]
        if mode == "add" and same:
            raise RouteError("RTNETLINK answers: File exists")
        if mode == "replace" and same:
            routes[same[0]] = route
            return
        if mode in ("append", "kernel") and any(r.key() == route.key() for r in routes):
            if mode == "kernel":
                return
            raise RouteError("RTNETLINK answers: File exists")
        pos = len(routes)
        for i, r in enumerate(routes):
            if _order(r) > _order(route) or (
                    r.prefix == route.prefix and r.metric > route.metric):
                pos = i
                break
        routes.insert(pos, route)

    def delete(self, want: Route, *, match_type: bool, match_scope: bool, match_proto: bool,
               match_metric: bool) -> Route:
        """fib_table_delete: the first alias of the prefix matching every given attribute."""
        for r in self.tables[want.table]:
            if r.prefix != want.prefix:
                continue
            if match_type and r.type != want.type:
                continue
            if match_scope and r.scope != want.scope:
                continue
            if match_proto and r.proto != want.proto:
                continue
            if match_metric and r.metric != want.metric:
                continue
            if want.src is not None and r.src != want.src:
                continue
            if want.dev and r.dev != want.dev:
                continue
            if want.gateway is not None and r.gateway != want.gateway:
                continue
            self.tables[want.table].remove(r)
            return r
        raise RouteError("RTNETLINK answers: No such process")

    def remove_where(self, pred) -> None:  # noqa: ANN001 - a Route -> bool callable
        for name, routes in self.tables.items():
            self.tables[name] = [r for r in routes if not pred(r)]

    # -- lookups --------------------------------------------------------------------

    def table_lookup(self, table: str, dst: IPv4Address, *, min_scope: int = SCOPE_UNIVERSE,
                     oif: str = "") -> Lookup:
        """fib_table_lookup: longest prefix, then the first usable alias in metric order.

        An error route (blackhole, unreachable, prohibit, throw) ends the lookup with
        its errno; an alias skipped for scope or oif lets shorter prefixes be tried.
        """
        for r in sorted(self.tables[table], key=lambda r: -r.prefix.prefixlen):
            if dst not in r.prefix or r.scope < min_scope:
                continue
            err = TYPE_ERRORS[r.type]
            if err:
                return Lookup(r, err)
            if oif and r.dev != oif:
                continue
            return Lookup(r)
        return Lookup(None, "EAGAIN")

    def lookup(self, dst: IPv4Address, *, min_scope: int = SCOPE_UNIVERSE,
               oif: str = "") -> Lookup:
        """fib_lookup over the default RPDB: local, main, default; ENETUNREACH if none."""
        explain: list[str] = []
        for table in TABLES:
            res = self.table_lookup(table, dst, min_scope=min_scope, oif=oif)
            if res.error == "EAGAIN":
                if res.route is not None:
                    explain.append(f"table {table}: {res.route.show()}: throw, next rule")
                else:
                    explain.append(f"table {table}: no route to {dst}")
                continue
            route = res.route
            assert route is not None
            explain.append(f"table {table}: {route.show()}")
            return Lookup(route, res.error, explain)
        explain.append("no rule gave a route: ENETUNREACH")
        return Lookup(None, "ENETUNREACH", explain)

    def routes(self, table: str) -> Iterator[Route]:
        return iter(self.tables[table])

    def show(self, table: str) -> list[str]:
        return [r.show() for r in self.tables[table]]


def _order(r: Route) -> tuple[int, int]:
    """fib_trie dump order: by network address, the longer prefix first."""
    return (int(r.prefix.network_address), -r.prefix.prefixlen)


def default_scope(rtype: str, has_gateway: bool) -> int:
    """The scope iproute2 picks when none is given (ip/iproute.c iproute_modify)."""
    if rtype == "local":
        return SCOPE_HOST
    if rtype in ("broadcast", "multicast", "anycast"):
        return SCOPE_LINK
    if rtype == "unicast" and not has_gateway:
        return SCOPE_LINK
    return SCOPE_UNIVERSE


def default_table(rtype: str) -> str:
    """iproute2 puts local, broadcast, nat and anycast routes in the local table."""
    return "local" if rtype in ("local", "broadcast", "anycast") else "main"


def with_table(route: Route, table: str) -> Route:
    return replace(route, table=table)
