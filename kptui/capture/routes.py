"""Routing tables and rules (`ip -j route show table all`, `ip -j rule`) as setup lines.

The scenario's interfaces and addresses already make routes, as in the kernel: local
and broadcast routes in table local, the prefix route in main (kptui.engine.box does
what fib_add_ifaddr does). So the captured tables are *reconciled* with the box the
scenario builds before its routes, never pasted on top of it: a captured route the box
already has is not written again (the kernel's own routes), one the box has and the
capture lacks is deleted (`ip route del`: an address added with noprefixroute, a kernel
route removed by hand), and the rest are added (`ip route add`, `append` for a second
route of the same prefix and metric), in an order whose gateways each resolve. Rules
likewise: the three default rules are there already, a missing one is deleted, the
others are added with their priority, in the order listed (the kernel keeps rules of
equal priority in the order they were added). Each line is run on that box as it is
written, so the setup kptui writes is the setup kptui reads.

iproute2 names (protocols, scopes, route types, tables) are read as names or, with
`ip -N`, as numbers. A table name that is neither local, main nor default needs its
number: from rt-tables.txt (the box's /etc/iproute2/rt_tables) when there is one.

What a route or rule has that kptui does not model is named in a note: route metrics
(mtu, advmss, ...) are left out of the line, a route or rule with a selector or flag
kptui cannot express (onlink, tos, encap, uidrange, ...) is written as a comment.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from kptui.capture.dumps import Dump
from kptui.capture.jsondump import Fields, entries
from kptui.engine.box import Box
from kptui.engine.errors import KptuiError
from kptui.engine.numbers import scan_uint
from kptui.engine.routing import (
    IP_PROTO_NAMES,
    PROTO_KERNEL,
    PROTO_NAMES,
    SCOPE_NAMES,
    Nexthop,
    Route,
    Rule,
)
from kptui.engine.setup import apply_setup

# RTN_* numbers (include/uapi/linux/rtnetlink.h), what `ip -N` prints as a route's type
RTN_TYPES = {1: "unicast", 2: "local", 3: "broadcast", 4: "anycast", 5: "multicast",
             6: "blackhole", 7: "unreachable", 8: "prohibit", 9: "throw", 10: "nat"}
RTN_NUMBERS = {v: k for k, v in RTN_TYPES.items()}
MODELLED_TYPES = ("unicast", "local", "broadcast", "blackhole", "unreachable", "prohibit",
                  "throw")
TABLE_NUMBERS = {"local": 255, "main": 254, "default": 253}
ROUTE_KEYS = {"type", "dst", "gateway", "dev", "table", "protocol", "scope", "prefsrc",
              "metric", "flags", "nexthops"}
STATE_FLAGS = ("linkdown", "offload", "trap", "rt_offload", "rt_trap", "rt_offload_failed")
# keys of a route kptui has no word for: left out with a note (metrics), or unsupported
METRIC_KEYS = ("metrics",)
RULE_KEYS = {"priority", "src", "srclen", "dst", "dstlen", "tos", "fwmark", "fwmask", "iif",
             "oif", "table", "action", "goto", "nop", "not", "ipproto", "sport", "dport",
             "sport_start", "sport_end", "dport_start", "dport_end", "suppress_prefixlen",
             "suppress_ifgroup", "protocol", "iif_detached", "oif_detached"}
RULE_ACTIONS = {"1": "lookup", "6": "blackhole", "7": "unreachable", "8": "prohibit",
                "blackhole": "blackhole", "unreachable": "unreachable",
                "prohibit": "prohibit"}
FIRST_FREE_TABLE = 10000  # a table name without its number is numbered from here


@dataclass(slots=True)
class Routing:
    setup: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rt_tables: dict[str, int] = field(default_factory=dict)  # names the scenario declares
    routes: list[Route] = field(default_factory=list)  # what was captured (and written)
    rules: list[Rule] = field(default_factory=list)


class _Tables:
    """Table names and numbers: numbers as they are, names from rt-tables.txt."""

    def __init__(self, rt_tables: Dump | None, out: Routing) -> None:
        self.known: dict[str, int] = dict(TABLE_NUMBERS)
        self.out = out
        if rt_tables is not None:
            for raw in rt_tables.text.splitlines():
                words = raw.split("#", 1)[0].split()
                if len(words) == 2:
                    hexa = words[0].startswith("0x")
                    number = scan_uint(words[0][2:] if hexa else words[0], 16 if hexa else 10)
                    if number is not None and 0 < number <= 0xFFFFFFFF:
                        self.known.setdefault(words[1], number)

    def name(self, text: str, f: Fields) -> str:
        """The table as kptui names it: local/main/default, or its number."""
        number = scan_uint(text, 10)
        if number is not None:
            if not 0 < number <= 0xFFFFFFFF:
                raise f.error(f"table {text} is out of range 1..4294967295", text)
            return {v: k for k, v in TABLE_NUMBERS.items()}.get(number, str(number))
        if text in TABLE_NUMBERS:
            return text
        if text not in self.known:
            used = set(self.known.values())
            number = next(n for n in range(FIRST_FREE_TABLE, 2**32) if n not in used)
            self.known[text] = number
            self.out.notes.append(f"table {text}: its number is not in the dumps (no "
                                  f"rt-tables.txt naming it): numbered {number} here")
        self.out.rt_tables[text] = self.known[text]
        return text


def read(route: Dump | None, rule: Dump | None, rt_tables: Dump | None, box: Box) -> Routing:
    """The setup lines that make ``box`` (the scenario's box before its routes) route as
    the captured one does; each line is applied to ``box`` as it is written."""
    out = Routing()
    tables = _Tables(rt_tables, out)
    for name, number in tables.known.items():  # names the lines may use (rt_tables)
        if name not in TABLE_NUMBERS:
            box.routes.name_table(name, number)
    if route is not None:
        _routes(route, tables, box, out)
    if rule is not None:
        _rules(rule, tables, box, out)
    return out


# -- routes --------------------------------------------------------------------------------

def _route(f: Fields, tables: _Tables, out: Routing) -> Route | None:
    obj = f.obj
    unknown = sorted(set(obj) - ROUTE_KEYS - set(METRIC_KEYS))
    rtype = _rtype(f)
    dst = f.text("dst")
    table = tables.name(str(obj.get("table", "main")), f)
    flags = [x for x in f.strings("flags") if x not in STATE_FLAGS]
    shown = f"route {dst} table {table}"
    if rtype not in MODELLED_TYPES or unknown or flags:
        what = (f"type {rtype}" if rtype not in MODELLED_TYPES else
                ", ".join(unknown + flags))
        out.notes.append(f"{shown}: unsupported yet ({what}): written as a comment, not "
                         "applied")
        out.setup.append(f"# unsupported yet ({what}): {_json(obj)}")
        return None
    if "metrics" in obj:
        out.notes.append(f"{shown}: route metrics {_json(obj['metrics'])} are not modelled: "
                         "the route is added without them")
    prefix = _prefix(f, dst)
    r = Route(prefix=prefix, type=rtype, table=table)
    if "gateway" in obj:
        r.gateway = _address(f, f.text("gateway"))
    r.dev = f.text("dev", "")
    if "prefsrc" in obj:
        r.src = _address(f, f.text("prefsrc"))
    r.metric = f.number("metric", 0)
    r.proto = _named(f, "protocol", PROTO_NAMES, 3, 255)
    r.scope = _named(f, "scope", SCOPE_NAMES, 0, 255)
    for hop in f.objects("nexthops"):
        h = f.sub(hop, "nexthop")
        if [x for x in h.strings("flags") if x not in STATE_FLAGS]:
            out.notes.append(f"{shown}: a nexthop with flags {h.strings('flags')}: "
                             "unsupported yet: written as a comment")
            out.setup.append(f"# unsupported yet (nexthop flags): {_json(obj)}")
            return None
        nh = Nexthop(gateway=_address(h, h.text("gateway")) if "gateway" in hop else None,
                     dev=h.text("dev", ""), weight=h.number("weight", 1, hi=256))
        r.nexthops.append(nh)
    return r


def _rtype(f: Fields) -> str:
    value = f.obj.get("type", "unicast")
    if isinstance(value, str) and value in RTN_NUMBERS:
        return value
    number = f.number("type", hi=255)
    return RTN_TYPES.get(number, f"type {number}")


def _named(f: Fields, key: str, names: dict[str, int], default: int, hi: int) -> int:
    value = f.obj.get(key)
    if value is None:
        return default
    if isinstance(value, str) and value in names:
        return names[value]
    if isinstance(value, str) and scan_uint(value) is None:
        raise f.error(f'"{key}" {value!r} is a name kptui does not know (dump with `ip -N`, '
                      "which prints numbers)", value)
    return f.number(key, hi=hi)


def _prefix(f: Fields, text: str) -> IPv4Network:
    if text == "default":
        return IPv4Network("0.0.0.0/0")
    try:
        return IPv4Network(text if "/" in text else f"{text}/32")
    except ValueError:
        raise f.error("expected an IPv4 prefix (A.B.C.D/LEN or default)", text) from None


def _address(f: Fields, text: str) -> IPv4Address:
    try:
        return IPv4Address(text)
    except ValueError:
        raise f.error("expected an IPv4 address", text) from None


def _json(value: object) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))


def _same(a: Route, b: Route) -> bool:
    """One route, in what a listing shows (a multipath route by its paths)."""
    hops = [(n.gateway, n.dev, n.weight) for n in a.nexthops]
    if hops != [(n.gateway, n.dev, n.weight) for n in b.nexthops]:
        return False
    if not hops and (a.dev, a.gateway) != (b.dev, b.gateway):
        return False
    return (a.table, a.type, a.prefix, a.metric, a.src, a.proto, a.scope) == (
        b.table, b.type, b.prefix, b.metric, b.src, b.proto, b.scope)


def _route_words(r: Route) -> str:
    return r.show(with_table=True)


def _routes(dump: Dump, tables: _Tables, box: Box, out: Routing) -> None:
    captured: list[Route] = []
    for line, obj in entries(dump, "the output of `ip -4 -d -N -j route show table all`"):
        r = _route(Fields(dump, line, obj, "route"), tables, out)
        if r is not None:
            captured.append(r)
    out.routes = captured
    present = [r for name in list(box.routes.tables) for r in box.routes.routes(name)]
    for r in present:
        if not any(_same(r, c) for c in captured):
            _apply(box, f"ip route del {_route_words(r)}", out, expect_ok=True)
    pending = [c for c in captured if not any(_same(c, r) for name in box.routes.tables
                                              for r in box.routes.routes(name))]
    while pending:  # gateways first: a route via GW needs a route to GW (fib_check_nh)
        left = []
        for r in pending:
            alias = any(x.prefix == r.prefix and x.metric == r.metric
                        for x in box.routes.routes(r.table))
            line = f"ip route {'append' if alias else 'add'} {_route_words(r)}"
            if not _apply(box, line, out, expect_ok=False):
                left.append(r)
        if len(left) == len(pending):
            for r in left:
                line = f"ip route add {_route_words(r)}"
                try:
                    apply_setup(box, line, file="<capture>")
                except KptuiError as err:
                    out.notes.append(f"route {r.show()} (table {r.table}): kptui refuses it "
                                     f"({_reason(err)}): written as a comment")
                    out.setup.append(f"# kptui refuses: {line}")
            break
        pending = left


def _apply(box: Box, line: str, out: Routing, *, expect_ok: bool) -> bool:
    try:
        apply_setup(box, line, file="<capture>")
    except KptuiError as err:
        if expect_ok:
            out.notes.append(f"`{line}`: kptui refuses it ({_reason(err)}): written as a "
                             "comment")
            out.setup.append(f"# kptui refuses: {line}")
        return False
    out.setup.append(line)
    return True


def _reason(err: KptuiError) -> str:
    return str(err).removeprefix("<capture>:1:").strip()


# -- rules -----------------------------------------------------------------------------------

def _rule(f: Fields, tables: _Tables, out: Routing) -> Rule | None:
    obj = f.obj
    unknown = sorted(set(obj) - RULE_KEYS)
    pref = f.number("priority")
    if unknown:
        out.notes.append(f"rule {pref}: unsupported yet ({', '.join(unknown)}): written as a "
                         "comment, not applied")
        out.setup.append(f"# unsupported yet ({', '.join(unknown)}): {_json(obj)}")
        return None
    rule = Rule(pref=pref, invert="not" in obj)
    for key, length in (("src", "srclen"), ("dst", "dstlen")):
        text = f.text(key, "all")
        if text != "all":
            net = _prefix(f, f"{text}/{f.number(length, 32, hi=32)}")
            setattr(rule, key, net)
    if "tos" in obj:
        rule.tos = f.number("tos", hi=255)
    if "fwmark" in obj:
        rule.mark = f.number("fwmark")
        rule.mask = f.number("fwmask", 0xFFFFFFFF)
    rule.iif, rule.oif = f.text("iif", ""), f.text("oif", "")
    for key in ("iif", "oif"):
        if f"{key}_detached" in obj:
            out.notes.append(f"rule {pref}: {key} {f.text(key)} is [detached] (no such "
                             "device on the box): kept, it matches no packet")
    if "ipproto" in obj:
        value = f.text("ipproto") if isinstance(obj["ipproto"], str) else str(obj["ipproto"])
        value = value.removeprefix("ipproto-")
        number = IP_PROTO_NAMES.get(value, scan_uint(value))
        if number is None or number > 255:
            raise f.error('"ipproto" must be a protocol name or number', value)
        rule.ipproto = number
    for key in ("sport", "dport"):
        if key in obj:
            port = f.number(key, hi=65535)
            setattr(rule, key, (port, port))
        elif f"{key}_start" in obj:
            setattr(rule, key, (f.number(f"{key}_start", hi=65535),
                                f.number(f"{key}_end", hi=65535)))
    if "suppress_prefixlen" in obj:
        rule.suppress_prefixlen = f.number("suppress_prefixlen", hi=2**31 - 1)
    if "suppress_ifgroup" in obj:
        group = obj["suppress_ifgroup"]
        rule.suppress_ifgroup = 0 if group == "default" else f.number("suppress_ifgroup")
    rule.proto = _named(f, "protocol", PROTO_NAMES, 0, 255)
    if "goto" in obj:
        rule.action, rule.target = "goto", f.number("goto")
    elif "nop" in obj:
        rule.action = "nop"
    elif "action" in obj:
        action = str(obj["action"])
        if action not in RULE_ACTIONS:
            raise f.error("a rule action kptui does not know (expected lookup, blackhole, "
                          "unreachable, prohibit)", action)
        rule.action = RULE_ACTIONS[action]
    if rule.action == "lookup":
        rule.table = tables.name(str(obj.get("table", "main")), f)
    return rule


def _rules(dump: Dump, tables: _Tables, box: Box, out: Routing) -> None:
    captured = [r for line, obj in entries(dump, "the output of `ip -4 -d -N -j rule show`")
                if (r := _rule(Fields(dump, line, obj, "rule"), tables, out)) is not None]
    out.rules = captured
    keys = [r.key() for r in captured]
    for r in list(box.routes.rules):
        if r.key() not in keys:
            _apply(box, f"ip rule del priority {r.pref} {_rule_words(r)}", out, expect_ok=True)
    have = [r.key() for r in box.routes.rules]
    for r in captured:
        if r.key() in have:
            have.remove(r.key())
            continue
        words = _rule_words(r)
        if r.proto and r.proto != PROTO_KERNEL:
            words += f" protocol {r.proto}"
        elif r.proto == PROTO_KERNEL:
            words += " protocol kernel"
        _apply(box, f"ip rule add priority {r.pref} {words}", out, expect_ok=True)


def _rule_words(r: Rule) -> str:
    text = r.show().split(":\t", 1)[1]
    return " ".join(shlex.quote(w) for w in text.split())


def differences(box: Box, out: Routing) -> list[str]:
    """Where the built scenario's tables differ from the capture (none, when all went well)."""
    have = [r for name in box.routes.tables for r in box.routes.routes(name)]
    lines = [f"route {r.show(with_table=True)}: captured, not in kptui's box"
             for r in out.routes if not any(_same(r, h) for h in have)]
    lines += [f"route {h.show(with_table=True)}: in kptui's box, not captured"
              for h in have if not any(_same(h, r) for r in out.routes)]
    keys = [r.key() for r in box.routes.rules]
    if out.rules and keys != [r.key() for r in out.rules]:
        lines.append("rules: kptui's box has " + "; ".join(box.routes.show_rules()))
    return lines


__all__ = ["Routing", "read", "differences"]
