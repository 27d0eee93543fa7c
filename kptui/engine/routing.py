"""Route tables, the RPDB (`ip rule`) and the kernel's lookups over them.

Kept apart from the box so that the table semantics (fib_trie order, the
netlink error for each bad `ip route` request, longest prefix then metric)
can be read and tested on their own. The box feeds it interface events.

Checked on kernel 6.18 in a netns (see tests/test_routing.py):
- aliases of one prefix are kept in metric order, `append` goes after equal
  metrics, `add` of an existing (prefix, metric) is EEXIST whatever the type;
- `ip route show` lists prefixes by address, the longer prefix first;
- rules are kept in ascending priority, a new rule after those of equal priority;
  a rule without a priority gets the second rule's priority minus one
  (fib_default_rule_pref); `goto N` jumps to the first rule of priority N and is
  skipped while there is none ("[unresolved]").

Tables are named as `/etc/iproute2/rt_tables` names them (local 255, main 254,
default 253) plus the names a scenario gives (its `rt_tables` key); a table
without a name is shown by its number, as `ip` prints it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Network

from kptui.engine.errors import KptuiError
from kptui.engine.numbers import U32, scan_uint

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
TABLE_IDS = {"local": 255, "main": 254, "default": 253, "unspec": 0}
DEFAULT_RULES = ((0, "local"), (32766, "main"), (32767, "default"))
RULE_ACTIONS = ("lookup", "goto", "nop", "blackhole", "unreachable", "prohibit")
# fib4_rule_action: the errno of each error action (net/ipv4/fib_rules.c).
RULE_ERRORS = {"blackhole": "EINVAL", "unreachable": "ENETUNREACH", "prohibit": "EACCES"}
IPTOS_RT_MASK = 0x1C  # the tos bits a rule's `tos` compares (fib_dscp_masked_match)
IP_PROTO_NAMES = {"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51,
                  "sctp": 132, "udplite": 136, "raw": 255, "ipip": 4, "ipv6": 41}
IP_PROTO_PRINT = {v: k for k, v in IP_PROTO_NAMES.items() if k != "ipv6"}

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
class Nexthop:
    """One path of a multipath route (`nexthop via GW dev DEV weight W`)."""

    gateway: IPv4Address | None = None
    dev: str = ""
    weight: int = 1
    dead: bool = False  # its device went down (RTNH_F_DEAD): never chosen

    def show(self) -> str:
        words = ["nexthop"]
        if self.gateway is not None:
            words += ["via", str(self.gateway)]
        if self.dev:
            words += ["dev", self.dev]
        words += ["weight", str(self.weight)]
        if self.dead:
            words += ["dead"]
        return " ".join(words)


@dataclass(slots=True)
class Route:
    """One fib alias: a prefix with its type, nexthop and attributes.

    A multipath route keeps its paths in `nexthops`; `dev`/`gateway` are then the
    first live one (what kptui assumes the kernel's hash picks, see pick_nexthop).
    """

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
    nexthops: list[Nexthop] = field(default_factory=list)

    def key(self) -> tuple:
        return (self.prefix, self.type, self.dev, self.gateway, self.src, self.metric,
                self.proto, self.scope, tuple((n.gateway, n.dev, n.weight)
                                              for n in self.nexthops))

    def show(self, *, with_table: bool = False) -> str:
        """The route as `ip route show` prints it (without the trailing blank)."""
        words: list[str] = []
        if self.type != "unicast":
            words.append(self.type)
        words.append("default" if self.prefix.prefixlen == 0 else _prefix_text(self.prefix))
        if self.gateway is not None and not self.nexthops:
            words += ["via", str(self.gateway)]
        if self.dev and not self.nexthops:
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
        words += [n.show() for n in self.nexthops]
        return " ".join(words)

    def live_nexthops(self) -> list[Nexthop]:
        return [n for n in self.nexthops if not n.dead]


def _prefix_text(net: IPv4Network) -> str:
    return str(net.network_address) if net.prefixlen == 32 else str(net)


@dataclass(slots=True)
class Lookup:
    """The outcome of a lookup: a route, or the errno the kernel returns.

    `rule` is the RPDB rule that gave the answer (None for a single-table lookup),
    `candidates` the other routes of that table that also cover the address, in the
    order the kernel would have tried them (the runners-up).
    """

    route: Route | None
    error: str = ""  # ENETUNREACH, EHOSTUNREACH, EACCES, EINVAL (EAGAIN: nothing here)
    explain: list[str] = field(default_factory=list)
    rule: Rule | None = None
    candidates: list[Route] = field(default_factory=list)


@dataclass(slots=True)
class Flow:
    """The flowi4 of a lookup: what the rules' selectors look at.

    Output lookups have iif "lo"; input lookups the receiving device and no oif.
    `proto`, `sport`, `dport` are 0 when the lookup does not carry them.
    """

    dst: IPv4Address
    src: IPv4Address = IPv4Address(0)
    iif: str = "lo"
    oif: str = ""
    mark: int = 0
    tos: int = 0
    proto: int = 0
    sport: int = 0
    dport: int = 0


@dataclass(slots=True)
class Rule:
    """One RPDB rule (struct fib_rule / fib4_rule), as `ip rule` sets and shows it."""

    pref: int
    action: str = "lookup"  # lookup | goto | nop | blackhole | unreachable | prohibit
    table: str = ""
    target: int = 0  # goto
    invert: bool = False
    src: IPv4Network | None = None
    dst: IPv4Network | None = None
    iif: str = ""
    oif: str = ""
    mark: int = 0
    mask: int = 0
    tos: int = 0
    ipproto: int = 0
    sport: tuple[int, int] | None = None
    dport: tuple[int, int] | None = None
    suppress_prefixlen: int = -1
    suppress_ifgroup: int = -1
    proto: int = 0  # who added it: kernel (2) for the default rules, unspec for `ip rule add`

    def key(self) -> tuple:
        """What rule_exists compares (net/core/fib_rules.c)."""
        return (self.pref, self.action, self.table, self.target, self.invert, self.src,
                self.dst, self.iif, self.oif, self.mark, self.mask, self.tos, self.ipproto,
                self.sport, self.dport, self.suppress_prefixlen, self.suppress_ifgroup,
                self.proto)

    def show(self, *, resolved: bool = True) -> str:
        """The rule as `ip rule show` prints it (iproute2 6.1), without the trailing blank."""
        words = [f"{self.pref}:\t" + ("not " if self.invert else "") + "from",
                 _net_text(self.src)]
        if self.dst is not None:
            words += ["to", _net_text(self.dst)]
        if self.tos:
            words += ["tos", f"0x{self.tos:02x}"]
        if self.mark or self.mask:
            words += ["fwmark", f"0x{self.mark:x}" if self.mask == 0xFFFFFFFF
                      else f"0x{self.mark:x}/0x{self.mask:x}"]
        if self.iif:
            words += ["iif", self.iif]
        if self.oif:
            words += ["oif", self.oif]
        if self.ipproto:
            words += ["ipproto", IP_PROTO_PRINT.get(self.ipproto, str(self.ipproto))]
        for name, rng in (("sport", self.sport), ("dport", self.dport)):
            if rng is not None:
                words += [name, str(rng[0]) if rng[0] == rng[1] else f"{rng[0]}-{rng[1]}"]
        if self.action == "lookup":
            words += ["lookup", self.table]
            if self.suppress_prefixlen != -1:
                words += ["suppress_prefixlength", str(self.suppress_prefixlen)]
            if self.suppress_ifgroup != -1:
                words += ["suppress_ifgroup", "default" if self.suppress_ifgroup == 0
                          else str(self.suppress_ifgroup)]
        elif self.action == "goto":
            words += ["goto", str(self.target)] + ([] if resolved else ["[unresolved]"])
        else:
            words.append(self.action)
        return " ".join(words).replace(":\t ", ":\t")

    def mismatch(self, flow: Flow) -> str:
        """'' when the selectors match the flow (before `not`), else the first reason why not
        (fib_rule_match, then fib4_rule_match)."""
        if self.iif and self.iif != flow.iif:
            return f"iif is {flow.iif or 'none'}, not {self.iif}"
        if self.oif and self.oif != flow.oif:
            return f"oif is {flow.oif or 'none'}, not {self.oif}"
        if (self.mark ^ flow.mark) & self.mask:
            return f"mark 0x{flow.mark:x} & 0x{self.mask:x} is not 0x{self.mark:x}"
        if self.src is not None and flow.src not in self.src:
            return f"source {flow.src} is not in {_net_text(self.src)}"
        if self.dst is not None and flow.dst not in self.dst:
            return f"destination {flow.dst} is not in {_net_text(self.dst)}"
        if self.tos and flow.tos & IPTOS_RT_MASK != self.tos:
            return f"tos 0x{flow.tos:02x} is not 0x{self.tos:02x}"
        if self.ipproto and self.ipproto != flow.proto:
            return (f"protocol {IP_PROTO_PRINT.get(flow.proto, flow.proto)} is not "
                    f"{IP_PROTO_PRINT.get(self.ipproto, self.ipproto)}")
        for name, rng, port in (("source port", self.sport, flow.sport),
                                ("destination port", self.dport, flow.dport)):
            if rng is not None and not rng[0] <= port <= rng[1]:
                return f"{name} {port} is not in {rng[0]}-{rng[1]}"
        return ""


def _net_text(net: IPv4Network | None) -> str:
    if net is None:
        return "all"
    return str(net.network_address) if net.prefixlen == 32 else str(net)


def default_rules() -> list[Rule]:
    """fib4_rules_init: the three rules of a fresh namespace (protocol kernel)."""
    return [Rule(pref=pref, table=table, proto=PROTO_KERNEL) for pref, table in DEFAULT_RULES]


def pick_nexthop(route: Route) -> Nexthop | None:
    """The path kptui assumes for a multipath route: the first live one.

    The kernel hashes the flow (fib_multipath_hash, policy 0: addresses only) with a
    key drawn at random at boot unless net.ipv4.fib_multipath_hash_seed is set, and
    picks the path whose weight range holds the hash, so which path one flow takes
    differs from boot to boot; kptui cannot reproduce it and says so.
    """
    live = route.live_nexthops()
    return live[0] if live else None


class RouteTables:
    """Every route table (each a list of routes in fib_trie order) and the RPDB."""

    def __init__(self) -> None:
        self.tables: dict[str, list[Route]] = {name: [] for name in TABLES}
        self.has_custom_local_routes = False  # net->ipv4.fib_has_custom_local_routes
        self.rules: list[Rule] = default_rules()
        self.has_custom_rules = False  # net->ipv4.fib_has_custom_rules: set by any add/del
        self.ids: dict[str, int] = {n: i for n, i in TABLE_IDS.items()}
        self.names: dict[int, str] = {i: n for n, i in TABLE_IDS.items()}

    # -- table names -------------------------------------------------------------------

    def name_table(self, name: str, number: int) -> None:
        """An rt_tables entry: `number name`."""
        if not 0 <= number <= 0xFFFFFFFF:
            raise RouteError(f"rt_tables: table number {number} is out of range")
        old = self.names.get(number)
        if old is not None and old != name:
            raise RouteError(f"rt_tables: table {number} is already named {old!r}")
        if name in self.ids and self.ids[name] != number:
            raise RouteError(f"rt_tables: {name!r} already names table {self.ids[name]}")
        self.ids[name] = number
        self.names[number] = name
        if str(number) in self.tables:  # routes added under the number before the name
            self.tables[name] = self.tables.pop(str(number))
            for r in self.tables[name]:
                r.table = name
            for rule in self.rules:
                if rule.table == str(number):
                    rule.table = name

    def table_name(self, text: str) -> str:
        """The canonical name of a table given by name or number (rtnl_rttable_a2n)."""
        if text in self.ids:
            return text
        # get_unsigned base 0: "table 010" is table 8, "0x10" 16 (checked with ip 6.1)
        number = scan_uint(text, 0, strtoul=True)
        if number is None or number > U32:
            raise RouteError(f'Error: argument "{text}" is wrong: "table" value is invalid')
        return self.names.get(number, str(number))

    def table_id(self, name: str) -> int:
        """The number of a canonical table name (table_name's answer: a name or digits)."""
        if name in self.ids:
            return self.ids[name]
        number = scan_uint(name)
        if number is None or number > U32:
            raise RouteError(f"no routing table {name!r}")
        return number

    # -- changing tables ------------------------------------------------------------

    def insert(self, route: Route, *, mode: str) -> None:
        """fib_table_insert with `add` (EXCL), `replace`, `append` or `kernel` (fib_magic)."""
        routes = self.tables.setdefault(route.table, [])
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
        for r in self.tables.get(want.table, []):
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
            if want.dev and r.dev != want.dev and not any(
                    n.dev == want.dev for n in r.nexthops):
                continue
            if want.gateway is not None and r.gateway != want.gateway and not any(
                    n.gateway == want.gateway for n in r.nexthops):
                continue
            self.tables[want.table].remove(r)
            return r
        raise RouteError("RTNETLINK answers: No such process")

    def remove_where(self, pred) -> None:  # noqa: ANN001 - a Route -> bool callable
        for name, routes in self.tables.items():
            self.tables[name] = [r for r in routes if not pred(r)]

    def device_down(self, dev: str) -> None:
        """fib_sync_down_dev: nexthops on `dev` die; a route whose paths all died goes,
        except host-scope nexthops (local routes) which stay."""
        def gone(r: Route) -> bool:
            if r.nexthops:
                for n in r.nexthops:
                    if n.dev == dev:
                        n.dead = True
                live = r.live_nexthops()
                if live:
                    r.dev, r.gateway = live[0].dev, live[0].gateway
                return not live
            return r.dev == dev and r.nh_scope != SCOPE_NOWHERE
        self.remove_where(gone)

    def device_up(self, dev: str) -> None:
        """fib_sync_up: dead nexthops on `dev` come back to life."""
        for routes in self.tables.values():
            for r in routes:
                for n in r.nexthops:
                    if n.dev == dev:
                        n.dead = False
                live = r.live_nexthops()
                if r.nexthops and live:
                    r.dev, r.gateway = live[0].dev, live[0].gateway

    # -- rules ----------------------------------------------------------------------

    def add_rule(self, rule: Rule, *, has_pref: bool) -> None:
        """fib_nl_newrule: default priority, EEXIST for a duplicate, insertion order."""
        if not has_pref:
            rule.pref = self.rules[1].pref - 1 if len(self.rules) > 1 and \
                self.rules[1].pref else 0
        if rule.action == "goto" and rule.target <= rule.pref:
            raise RouteError("Error: Backward goto not supported.")
        if any(r.key() == rule.key() for r in self.rules):
            raise RouteError("RTNETLINK answers: File exists")
        self.has_custom_rules = True
        pos = len(self.rules)
        for i, r in enumerate(self.rules):
            if r.pref > rule.pref:
                pos = i
                break
        self.rules.insert(pos, rule)

    def delete_rule(self, match) -> Rule:  # noqa: ANN001 - a Rule -> bool callable
        for r in self.rules:
            if match(r):
                self.rules.remove(r)
                self.has_custom_rules = True
                return r
        raise RouteError("RTNETLINK answers: No such file or directory")

    def goto_target(self, rule: Rule) -> Rule | None:
        """rule->ctarget: the first rule whose priority is the goto's target."""
        return next((r for r in self.rules if r.pref == rule.target), None)

    def show_rules(self) -> list[str]:
        return [r.show(resolved=r.action != "goto" or self.goto_target(r) is not None)
                for r in self.rules]

    # -- lookups --------------------------------------------------------------------

    def table_lookup(self, table: str, dst: IPv4Address, *, min_scope: int = SCOPE_UNIVERSE,
                     oif: str = "") -> Lookup:
        """fib_table_lookup: longest prefix, then the first usable alias in metric order.

        An error route (blackhole, unreachable, prohibit, throw) ends the lookup with
        its errno; an alias skipped for scope or oif lets shorter prefixes be tried.
        """
        found: Lookup | None = None
        others: list[Route] = []
        for r in sorted(self.tables.get(table, []), key=lambda r: -r.prefix.prefixlen):
            if dst not in r.prefix:
                continue
            if found is not None or r.scope < min_scope:
                others.append(r)
                continue
            err = TYPE_ERRORS[r.type]
            if err:
                found = Lookup(r, err)
                continue
            if oif and r.dev != oif and not any(
                    n.dev == oif and not n.dead for n in r.nexthops):
                others.append(r)
                continue
            found = Lookup(r)
        if found is None:
            return Lookup(None, "EAGAIN", candidates=others)
        found.candidates = others
        return found

    def lookup(self, dst: IPv4Address, *, min_scope: int = SCOPE_UNIVERSE,
               oif: str = "", flow: Flow | None = None, group=None) -> Lookup:  # noqa: ANN001
        """fib_rules_lookup: the rules in priority order, each explained; ENETUNREACH when
        no rule gave an answer (-ESRCH). `group(dev)` is a device's interface group."""
        flow = flow or Flow(dst=dst, oif=oif)
        explain: list[str] = []
        i = 0
        rules = self.rules
        while i < len(rules):
            rule = rules[i]
            i += 1
            while True:  # `goto` re-enters here with its target (label `jumped`)
                head = f"rule {rule.show(resolved=True).replace(chr(9), ' ')}"
                why = rule.mismatch(flow)
                if bool(why) != rule.invert:
                    explain.append(f"{head}: no match: "
                                   f"{why or 'it matches, and the rule says not'}")
                    break
                if rule.action == "goto":
                    target = self.goto_target(rule)
                    if target is None:
                        explain.append(f"{head}: matches; no rule {rule.target} yet: "
                                       "skipped")
                        break
                    explain.append(f"{head}: matches: go to rule {rule.target}")
                    rule = target
                    i = rules.index(target) + 1
                    continue
                if rule.action == "nop":
                    explain.append(f"{head}: matches: nop, next rule")
                    break
                if rule.action in RULE_ERRORS:
                    err = RULE_ERRORS[rule.action]
                    explain.append(f"{head}: matches: {rule.action} ({err})")
                    return Lookup(None, err, explain, rule=rule)
                res = self.table_lookup(rule.table, flow.dst, min_scope=min_scope,
                                        oif=flow.oif)
                if res.error == "EAGAIN":
                    if res.route is not None:
                        explain.append(f"{head}: table {rule.table}: {res.route.show()}: "
                                       "throw, next rule")
                    else:
                        explain.append(f"{head}: table {rule.table}: no route to {flow.dst}, "
                                       "next rule")
                    break
                route = res.route
                assert route is not None
                if not res.error and route.prefix.prefixlen <= rule.suppress_prefixlen:
                    explain.append(f"{head}: table {rule.table}: {route.show()}: prefix "
                                   f"length {route.prefix.prefixlen} <= "
                                   f"{rule.suppress_prefixlen}: suppressed, next rule")
                    break
                if (not res.error and rule.suppress_ifgroup != -1 and route.dev and group
                        and group(route.dev) == rule.suppress_ifgroup):
                    explain.append(f"{head}: table {rule.table}: {route.show()}: device "
                                   f"{route.dev} is in group {rule.suppress_ifgroup}: "
                                   "suppressed, next rule")
                    break
                explain.append(f"{head}: table {rule.table}: {route.show()}"
                               + (f" ({res.error})" if res.error else ""))
                res.explain = explain
                res.rule = rule
                return res
        explain.append("no rule gave a route: ENETUNREACH")
        return Lookup(None, "ENETUNREACH", explain)

    def routes(self, table: str) -> Iterator[Route]:
        return iter(self.tables.get(table, []))

    def show(self, table: str) -> list[str]:
        return [r.show() for r in self.tables.get(table, [])]


def format_route_get(result, *, dst: IPv4Address, src: IPv4Address | None, iif: str,  # noqa: ANN001
                     mark: int) -> str:
    """The answer as `ip route get` prints it (kernel rt_fill_info + iproute2 6.1
    print_route; checked on kernel 6.18, tests/test_route_get_live.py), trailing blanks
    included. `result` is the box's RouteResult."""
    words: list[str] = []
    if result.kind in ("local", "broadcast"):
        words.append(result.kind)
    words.append(str(dst))
    if src is not None:
        words += ["from", str(src)]
    if result.gateway:
        words += ["via", result.gateway]
    if result.oif:
        words += ["dev", result.oif]
    if result.table and result.table != "main":
        words += ["table", result.table]
    if not iif and src is None and result.prefsrc:
        words += ["src", result.prefsrc]
    if mark:
        words += ["mark", str(mark) if mark < 16 else f"0x{mark:x}"]
    if not iif:
        words += ["uid", "0"]
    # RTCF_LOCAL also when the route leaves by lo (__mkroute_output: IFF_LOOPBACK)
    flags = {"local": "<local>", "broadcast": "<local,brd>"}.get(
        result.kind, "<local>" if result.oif == "lo" else "")
    if getattr(result, "redirect", False):
        flags = "<redirect>"
    cache = ["cache"] + ([flags] if flags else []) + (["iif", iif] if iif else [])
    return " ".join(words) + " \n    " + " ".join(cache) + " \n"


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
