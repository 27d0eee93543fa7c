"""The `setup` lines of a scenario: shell commands as typed on the box.

Only the commands that change state the engine models are accepted (ip
link/addr/route, iptables, sysctl); anything else is an "unsupported yet"
error naming the line, never silently skipped. Argument errors carry the
file, line, column and token; refusals the kernel would give carry its text.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from kptui.engine.box import Box, SysctlError
from kptui.engine.errors import KptuiError, ParseError, UnsupportedError
from kptui.engine.numbers import U16, U32, NumberError, is_uint, parse_uint, scan_uint
from kptui.engine.routing import (
    IP_PROTO_NAMES,
    PROTO_BOOT,
    PROTO_KERNEL,
    PROTO_NAMES,
    ROUTE_TYPES,
    SCOPE_NAMES,
    SCOPE_NOWHERE,
    SCOPE_UNIVERSE,
    Nexthop,
    Route,
    RouteError,
    Rule,
    default_scope,
    default_table,
)


@dataclass(slots=True)
class Tok:
    text: str
    column: int  # 1-based, in the (joined) command line


@dataclass(slots=True)
class Cmd:
    """One command: its tokens, the whole text and where it starts."""

    toks: list[Tok]
    text: str
    file: str
    line: int

    def error(self, message: str, tok: Tok | None = None) -> ParseError:
        return ParseError(message, file=self.file, line=self.line,
                          column=tok.column if tok else 1, token=tok.text if tok else "")

    def unsupported(self) -> ParseError:
        return ParseError(f"unsupported yet: {self.text}", file=self.file, line=self.line,
                          column=1)


def split_lines(text: str, first_line: int) -> list[tuple[int, str]]:
    """(line number, command) pairs: comments and blanks dropped, `\\` joins lines."""
    return [(start, full) for start, _end, full in split_commands(text, first_line)]


def split_commands(text: str, first_line: int) -> list[tuple[int, int, str]]:
    """(first line, last line, command) triples: comments and blanks dropped, `\\` joins
    lines, and so does a line starting with `nexthop` (the way `ip route show` prints a
    multipath route's paths, one per indented line)."""
    out: list[tuple[int, int, str]] = []
    pending = ""
    start = first_line
    for offset, raw in enumerate(text.splitlines()):
        lineno = first_line + offset
        if not pending:
            start = lineno
        if raw[:1].isspace() and raw.strip().startswith("nexthop") and out and not pending:
            first, _end, prev = out[-1]
            out[-1] = (first, lineno, prev + " " + raw.strip())
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        full = pending + raw
        pending = ""
        stripped = full.strip()
        if stripped and not stripped.startswith("#"):
            out.append((start, lineno, full))
    if pending.strip():
        out.append((start, first_line + len(text.splitlines()) - 1, pending))
    return out


def tokenize(text: str, *, file: str, line: int) -> list[Tok]:
    """Shell words with their columns; quotes group, an unquoted `#` starts a comment."""
    toks: list[Tok] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        if text[i] == "#":
            break
        start, word = i, ""
        while i < n and not text[i].isspace():
            c = text[i]
            if c in "'\"":
                end = text.find(c, i + 1)
                if end < 0:
                    raise ParseError("unterminated quote", file=file, line=line,
                                     column=i + 1, token=text[i:])
                word += text[i + 1:end]
                i = end + 1
            else:
                word += c
                i += 1
        toks.append(Tok(word, start + 1))
    return toks


def apply_setup(box: Box, text: str, *, file: str, first_line: int = 1) -> str:
    """Run every setup command against `box`, in order; the first error stops.

    Returns the same text made runnable on a real box, line for line (so line
    numbers still match): pasted `ip route show` / `ip rule show` lines become
    `ip route add` / `ip rule add` commands (or a comment when the route or rule is
    already there, as the kernel's own routes and default rules are), a multipath
    route's indented `nexthop` lines join their route, and table names the scenario
    gives are written as numbers (a fresh namespace's rt_tables does not know them).
    """
    lines = text.splitlines()
    for start, end, full in split_commands(text, first_line):
        toks = tokenize(full, file=file, line=start)
        if not toks:
            continue
        cmd = Cmd(toks, " ".join(full.split()), file, start)
        kernel = run_command(box, cmd, full)
        if kernel is not None:
            lines[start - first_line] = kernel
            for n in range(start + 1, end + 1):
                lines[n - first_line] = ""
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def pasted_form(toks: list[Tok]) -> str:
    """'route' or 'rule' when the line is `ip route show` / `ip rule show` output."""
    first = toks[0].text
    if first.endswith(":") and is_uint(first[:-1]):
        return "rule"
    if first in ("default",) + ROUTE_TYPES or parse_addr(first) is not None:
        return "route"
    return ""


# Words `ip route show` prints that are state, not something `ip route add` takes.
SHOW_ONLY_WORDS = ("linkdown", "dead", "offload", "trap", "rt_offload", "rt_trap",
                   "rt_offload_failed", "[detached]", "[unresolved]")


def run_command(box: Box, cmd: Cmd, raw: str) -> str | None:
    """Run one command; returns its kernel form when it differs from the line itself."""
    prog = cmd.toks[0].text.rsplit("/", 1)[-1]
    if prog in ("iptables", "iptables-legacy", "iptables-nft"):
        from kptui.engine.iptables import apply_command

        apply_command(box.ruleset, raw.strip(), file=cmd.file, line=cmd.line)
        return None
    pasted = pasted_form(cmd.toks) if prog not in COMMANDS else ""
    if pasted:
        return run_pasted(box, cmd, pasted)
    if prog in ("ip6tables", "ip6tables-legacy", "ip6tables-nft", "nft", "ebtables",
                "arptables"):
        raise cmd.unsupported()
    handler = COMMANDS.get(prog)
    if handler is None:
        raise cmd.error(f"unknown command {prog!r} (setup lines run ip, iptables, ipset, tc, "
                        "sysctl)", cmd.toks[0])
    try:
        handler(box, cmd)
    except ParseError:
        raise
    except UnsupportedError:
        raise cmd.unsupported() from None
    except (RouteError, SysctlError) as exc:
        raise cmd.error(str(exc), cmd.toks[0]) from None
    if prog == "ip":
        return kernel_table_numbers(box, [t.text for t in cmd.toks], raw)
    return None


def run_pasted(box: Box, cmd: Cmd, kind: str) -> str:
    """A pasted `ip route show` / `ip rule show` line: added unless already there."""
    toks = [t for t in cmd.toks if t.text not in SHOW_ONLY_WORDS]
    at = toks[0].column
    if kind == "rule":
        words = [Tok("priority", at), Tok(toks[0].text[:-1], at)] + toks[1:]
        handler, verb = ip_rule, "add"
    else:
        words = toks
        handler, verb = ip_route, "add"
    head = [Tok("ip", at), Tok(kind, at), Tok(verb, at)]
    try:
        present = handler(box, cmd, [Tok(verb, at)] + words, pasted=True)
    except ParseError:
        raise
    except UnsupportedError:
        raise cmd.unsupported() from None
    except (RouteError, SysctlError) as exc:
        raise cmd.error(str(exc), cmd.toks[0]) from None
    if present:
        return f"# kptui: already there: {cmd.text}"
    texts = [t.text for t in head + words]
    return kernel_table_numbers(box, texts, shlex.join(texts)) or shlex.join(texts)


def kernel_table_numbers(box: Box, words: list[str], raw: str) -> str | None:
    """The command with scenario table names written as numbers, or None if it has none."""
    out = list(words)
    changed = False
    for i in range(1, len(out)):
        prev = out[i - 1]
        if prev == "lookup" or (len(prev) > 1 and "table".startswith(prev)):
            name = out[i]
            if name in box.routes.ids and name not in ("local", "main", "default", "unspec"):
                out[i] = str(box.routes.ids[name])
                changed = True
    return shlex.join(out) if changed else None


# -- sysctl ----------------------------------------------------------------------------

def cmd_sysctl(box: Box, cmd: Cmd) -> None:
    """`sysctl [-w] [-q] name=value ...`; reading (`sysctl name`) changes nothing."""
    for tok in cmd.toks[1:]:
        if tok.text in ("-w", "-q", "--write", "--quiet"):
            continue
        if tok.text.startswith("-"):
            raise cmd.error(f"unsupported sysctl option {tok.text!r}", tok)
        name, eq, value = tok.text.partition("=")
        if not eq:
            box.sysctl(name)  # validates the name, like `sysctl name`
            continue
        try:
            box.set_sysctl(name.strip(), value)
        except SysctlError as exc:
            raise cmd.error(str(exc), tok) from None


# -- ip ----------------------------------------------------------------------------------

# ip/ip.c's command table, in order: an abbreviation picks the first that starts with it.
IP_OBJECTS = ("address", "addrlabel", "maddress", "route", "rule", "neighbor", "neighbour",
              "ntable", "ntbl", "link", "l2tp", "fou", "ila", "macsec", "tunnel", "tunl",
              "tuntap", "tap", "token", "tcpmetrics", "tcp_metrics", "monitor", "xfrm",
              "mroute", "mrule", "netns", "netconf", "vrf", "sr", "nexthop", "mptcp", "ioam",
              "stats", "help")


def _match(word: str, options: tuple[str, ...]) -> str | None:
    return next((o for o in options if o.startswith(word)), None) if word else None


def cmd_ip(box: Box, cmd: Cmd) -> None:
    args = cmd.toks[1:]
    while args and args[0].text.startswith("-"):
        if args[0].text in ("-4", "-family=inet"):
            args = args[1:]
            continue
        if args[0].text in ("-6",):
            raise cmd.unsupported()
        raise cmd.error(f"unsupported ip option {args[0].text!r}", args[0])
    if not args:
        raise cmd.error("ip: missing object (link, address, route)")
    obj = _match(args[0].text, IP_OBJECTS)
    if obj is None:
        raise cmd.error(f'Object "{args[0].text}" is unknown, try "ip help".', args[0])
    handler = IP_HANDLERS.get(obj)
    if handler is None:
        raise cmd.unsupported()
    handler(box, cmd, args[1:])


def _need(cmd: Cmd, args: list[Tok], i: int, what: str) -> Tok:
    if i >= len(args):
        last = args[-1] if args else cmd.toks[-1]
        raise cmd.error(f'Command line is not complete: {what} is missing', last)
    return args[i]


def ip_link(box: Box, cmd: Cmd, args: list[Tok]) -> None:
    if not args or _match(args[0].text, ("show", "list", "lst")):
        return
    verb = args[0].text
    if verb == "add":
        rest = [t.text for t in args[1:]]
        if rest[:1] == ["name"]:
            rest = rest[1:]
        if len(rest) == 3 and rest[1] == "type" and rest[2] in ("dummy", "ifb"):
            box.add_link(rest[0])
            if rest[2] == "ifb":  # the modern IMQ: tc mirred redirects to it (qos.py)
                box.tc.link_kinds[rest[0]] = "ifb"
            return
        raise cmd.unsupported()
    if _match(verb, ("set",)) != "set":
        raise cmd.unsupported()
    i = 1
    dev = ""
    up: bool | None = None
    mtu: int | None = None
    while i < len(args):
        word = args[i].text
        if word == "dev":
            dev = _need(cmd, args, i + 1, "dev").text
            i += 2
        elif word in ("up", "down"):
            up = word == "up"
            i += 1
        elif word == "mtu":
            mtu = _parse_signed(cmd, _need(cmd, args, i + 1, "mtu"), 'Invalid "mtu" value')
            i += 2
        elif not dev:
            dev = word
            i += 1
        elif word in ("arp", "multicast", "allmulticast", "promisc", "txqueuelen", "name",
                      "address", "broadcast", "netns", "alias", "master", "nomaster",
                      "group", "qlen", "vf", "type", "state", "protodown"):
            raise cmd.unsupported()
        else:
            raise cmd.error(f'Error: either "dev" is duplicate, or "{word}" is a garbage.',
                            args[i])
    if not dev:
        raise cmd.error('Not enough information: "dev" argument is required.')
    box.set_link(dev, up=up, mtu=mtu)


def parse_addr(text: str) -> IPv4Interface | None:
    """An IPv4 address with optional /len (default /32), dotted quad only."""
    addr, slash, plen = text.partition("/")
    # get_prefix: the length is get_unsigned base 0 ("/010" is /8, "/0x10" /16; checked
    # with ip, iproute2 6.1)
    length = scan_uint(plen, 0, strtoul=True) if slash else 32
    if length is None or length > 32:
        return None
    try:
        return IPv4Interface((IPv4Address(addr), length))
    except ValueError:
        return None


def ip_addr(box: Box, cmd: Cmd, args: list[Tok]) -> None:
    if not args or _match(args[0].text, ("show", "list", "lst")):
        return
    verb = _match(args[0].text, ("add", "change", "replace", "delete", "show", "flush"))
    if verb not in ("add", "delete"):
        if verb is None:
            raise cmd.error(f'Command "{args[0].text}" is unknown, try "ip address help".',
                            args[0])
        raise cmd.unsupported()
    addr: IPv4Interface | None = None
    had_prefix = False
    dev = ""
    i = 1
    while i < len(args):
        word = args[i].text
        if word == "dev":
            dev = _need(cmd, args, i + 1, "dev").text
            i += 2
            continue
        if word in ("brd", "broadcast", "peer", "scope", "label", "noprefixroute", "anycast",
                    "valid_lft", "preferred_lft", "metric", "home", "nodad", "noprefix",
                    "autojoin", "proto"):
            raise cmd.unsupported()
        if word == "local":
            i += 1
            word = _need(cmd, args, i, "local address").text
        if addr is not None:
            raise cmd.error(f'Error: either "local" is duplicate, or "{word}" is a garbage.',
                            args[i])
        addr = parse_addr(word)
        if addr is None:
            raise cmd.error(f'Error: any valid prefix is expected rather than "{word}".',
                            args[i])
        had_prefix = "/" in word
        i += 1
    if addr is None:
        raise cmd.error("Not enough information: an address is required.")
    if not dev:
        raise cmd.error('Not enough information: "dev" argument is required.')
    if verb == "add":
        box.add_address(dev, addr)
    else:
        box.del_address(dev, addr, any_prefix=not had_prefix)


# `ip route` keywords iproute2 knows but kptui does not model yet.
ROUTE_UNSUPPORTED = ("tos", "dsfield", "expires", "mtu", "advmss", "rtt", "rttvar", "reordering",
                     "window", "cwnd", "initcwnd", "initrwnd", "ssthresh", "realms", "onlink",
                     "nhid", "encap", "vrf", "from", "pref", "quickack", "congctl",
                     "rto_min", "features", "fastopen_no_cookie", "ttl-propagate", "hoplimit",
                     "as", "pervasive", "lock")
ROUTE_VERBS = ("add", "change", "replace", "prepend", "append", "test", "delete", "list",
               "show", "lst", "get", "flush", "save", "restore", "showdump")


def _parse_int(cmd: Cmd, tok: Tok, what: str, limit: int, *, base: int = 0,
               wording: str = "") -> int:
    """An iproute2 get_u32/get_unsigned field: strtoul in `base` (0 for most: 0x hex, a
    leading 0 octal, checked with ip, iproute2 6.1), 0..`limit`; the refusal is
    iproute2's invarg() text, `wording` when that is not '"what" value is invalid'."""
    try:
        return parse_uint(tok.text, 0, limit, base=base, strtoul=True, what=what)
    except NumberError:
        wrong = wording or f'"{what}" value is invalid'
        raise cmd.error(f'Error: argument "{tok.text}" is wrong: {wrong}', tok) from None


def _parse_signed(cmd: Cmd, tok: Tok, wording: str) -> int:
    """iproute2 get_integer base 0 (strtol to an int): `ip link set mtu -1` reaches the
    kernel, which refuses it as below the minimum."""
    body = tok.text.lstrip(" \t\n\v\f\r")
    negative = body.startswith("-")
    try:
        value = parse_uint(body[1:] if negative else body, 0, 2**31 if negative else 2**31 - 1,
                           base=0, strtoul=not negative)
    except NumberError:
        raise cmd.error(f'Error: argument "{tok.text}" is wrong: {wording}', tok) from None
    return -value if negative else value


def _nexthops(cmd: Cmd, args: list[Tok]) -> list[Nexthop]:
    """`nexthop via GW dev DEV weight W ...` (iproute2 parse_nexthops), to the end."""
    hops: list[Nexthop] = []
    i = 0
    while i < len(args):
        if args[i].text != "nexthop":
            raise cmd.error(f'Error: either "nexthop" is duplicate, or "{args[i].text}" is a '
                            "garbage.", args[i])
        hop = Nexthop()
        i += 1
        while i < len(args) and args[i].text != "nexthop":
            word = args[i].text
            value = _need(cmd, args, i + 1, word)
            if word == "via":
                try:
                    hop.gateway = IPv4Address(value.text.removeprefix("inet "))
                except ValueError:
                    raise cmd.error(f'Error: inet address is expected rather than '
                                    f'"{value.text}".', value) from None
            elif word == "dev":
                hop.dev = value.text
            elif word == "weight":
                hop.weight = _parse_int(cmd, value, "weight", 256,
                                        wording='"weight" is invalid')
                if hop.weight < 1:
                    raise cmd.error(f'Error: argument "{value.text}" is wrong: "weight" value '
                                    "is invalid", value)
            elif word in ("onlink", "realms", "encap", "nhid"):
                raise cmd.unsupported()
            else:
                raise cmd.error(f'Error: argument "{word}" is wrong: unknown nexthop '
                                "attribute", args[i])
            i += 2
        hops.append(hop)
    return hops


def _verb(cmd: Cmd, args: list[Tok], verbs: tuple[str, ...], obj: str,
          modelled: tuple[str, ...]) -> str | None:
    """The `ip route`/`ip rule` verb (abbreviations as iproute2 takes them); None for a
    listing, which changes nothing; a verb kptui does not model is unsupported."""
    if not args:
        return None
    verb = _match(args[0].text, verbs)
    if verb is None:
        raise cmd.error(f'Command "{args[0].text}" is unknown, try "ip {obj} help".', args[0])
    if verb in ("list", "show", "lst"):
        return None
    if verb not in modelled:
        raise cmd.unsupported()
    return verb


def ip_route(box: Box, cmd: Cmd, args: list[Tok], *, pasted: bool = False) -> bool:
    """`ip route add|replace|append|delete`; True when `pasted` and the route is there."""
    verb = _verb(cmd, args, ROUTE_VERBS, "route", ("add", "replace", "append", "delete"))
    if verb is None:
        return False
    rtype = ""
    prefix: IPv4Network | None = None
    fields: dict[str, object] = {}
    nums: dict[str, int] = {}  # metric, proto, scope
    i = 1
    while i < len(args):
        tok = args[i]
        word = tok.text
        if word in ROUTE_UNSUPPORTED:
            raise cmd.unsupported()
        if word == "nexthop":
            fields["nexthops"] = _nexthops(cmd, args[i:])
            break
        if word not in ("to", "type") and len(word) > 1 and "table".startswith(word):
            value = _need(cmd, args, i + 1, "table")
            try:
                fields["table"] = box.routes.table_name(value.text)
            except RouteError as exc:
                raise cmd.error(str(exc), value) from None
            i += 2
            continue
        if word in ("via", "src", "dev", "oif"):
            value = _need(cmd, args, i + 1, word)
            if word in ("dev", "oif"):
                fields["dev"] = value.text
            else:
                try:
                    fields[word] = IPv4Address(value.text.removeprefix("inet "))
                except ValueError:
                    raise cmd.error(f'Error: inet address is expected rather than "{value.text}".',
                                    value) from None
            i += 2
            continue
        if word in ("metric", "priority", "preference") or (
                len(word) > 1 and _match(word, ("metric", "priority", "preference"))):
            value = _need(cmd, args, i + 1, "metric")
            nums["metric"] = _parse_int(cmd, value, "metric", U32)
            i += 2
            continue
        if len(word) > 1 and "protocol".startswith(word):
            value = _need(cmd, args, i + 1, "protocol")
            num = PROTO_NAMES.get(value.text)
            nums["proto"] = num if num is not None else _parse_int(cmd, value, "protocol", 255)
            i += 2
            continue
        if len(word) > 1 and "scope".startswith(word):
            value = _need(cmd, args, i + 1, "scope")
            num = SCOPE_NAMES.get(value.text)
            nums["scope"] = num if num is not None else _parse_int(
                cmd, value, "scope", 255, wording='invalid "scope" value')
            i += 2
            continue
        if word == "type":
            i += 1
            tok = _need(cmd, args, i, "type")
            word = tok.text
            if word not in ROUTE_TYPES and word not in ("nat",):
                raise cmd.error(f'Error: argument "{word}" is wrong: "type" value is invalid',
                                tok)
        if word == "to":
            i += 1
            tok = _need(cmd, args, i, "prefix")
            word = tok.text
        elif not rtype and prefix is None and word in ROUTE_TYPES + ("nat",):
            rtype = word
            i += 1
            continue
        if prefix is not None:
            raise cmd.error(f'Error: either "to" is duplicate, or "{word}" is a garbage.', tok)
        if word in ("multicast", "anycast", "nat"):
            raise cmd.unsupported()
        prefix = _parse_prefix(cmd, tok)
        i += 1
    if rtype in ("multicast", "anycast", "nat"):
        raise cmd.unsupported()
    if prefix is None:
        raise cmd.error("Error: destination prefix is missing", args[0])
    deleting = verb == "delete"
    given_type = bool(rtype)
    rtype = rtype or "unicast"
    table = str(fields.get("table") or default_table(rtype))
    gateway = fields.get("via")
    if "scope" in nums:
        scope = nums["scope"]
    elif deleting and rtype == "unicast":
        scope = SCOPE_NOWHERE
    else:
        scope = default_scope(rtype, gateway is not None)
    nexthops: list[Nexthop] = fields.get("nexthops", [])  # type: ignore[assignment]
    if nexthops and (gateway is not None or "dev" in fields):
        raise cmd.error("Error: either a gateway and device or nexthops, not both",
                        args[0])
    route = Route(prefix=prefix, type=rtype, dev=str(fields.get("dev", "")),
                  gateway=gateway,  # type: ignore[arg-type]
                  src=fields.get("src"),  # type: ignore[arg-type]
                  metric=nums.get("metric", 0),
                  proto=nums.get("proto", PROTO_BOOT),
                  scope=scope, table=table, nexthops=nexthops)
    if "scope" not in nums and nexthops and rtype == "unicast" and not deleting:
        route.scope = SCOPE_UNIVERSE  # iproute2: nexthops count as a gateway
    if deleting:
        if route.dev:
            box.iface(route.dev)
        box.routes.delete(route, match_type=given_type, match_scope=scope != SCOPE_NOWHERE,
                          match_proto="proto" in nums, match_metric="metric" in nums)
        return False
    if pasted and _route_present(box, route):
        return True
    box.add_route(route, mode={"add": "add", "replace": "replace", "append": "append"}[verb])
    return False


def _route_present(box: Box, route: Route) -> bool:
    """A pasted route that is already in its table (the kernel's own routes, typically)."""
    for r in box.routes.routes(route.table):
        if (r.prefix, r.type, r.metric, r.proto, r.scope, r.src) != (
                route.prefix, route.type, route.metric, route.proto, route.scope, route.src):
            continue
        if route.dev and r.dev != route.dev or route.gateway and r.gateway != route.gateway:
            continue
        if [(n.gateway, n.dev, n.weight) for n in r.nexthops] != [
                (n.gateway, n.dev, n.weight) for n in route.nexthops]:
            continue
        return True
    return False


def _parse_prefix(cmd: Cmd, tok: Tok) -> IPv4Network:
    text = tok.text
    if text in ("default", "all", "any"):
        return IPv4Network("0.0.0.0/0")
    addr = parse_addr(text)
    if addr is None:
        raise cmd.error(f'Error: any valid prefix is expected rather than "{text}".', tok)
    if addr.ip != addr.network.network_address:
        raise cmd.error("Error: Invalid prefix for given prefix length.", tok)
    return addr.network


RULE_VERBS = ("add", "delete", "list", "show", "lst", "flush", "save", "restore")
# `ip rule` selectors kptui does not model yet.
RULE_UNSUPPORTED = ("uidrange", "realms", "realm", "l3mdev", "tun_id", "nat", "map-to",
                    "flowlabel", "dscp")
RULE_TYPES = {"unicast": "lookup", "blackhole": "blackhole", "unreachable": "unreachable",
              "prohibit": "prohibit"}


def _port_range(cmd: Cmd, tok: Tok, what: str) -> tuple[int, int]:
    """iprule.c reads a range with sscanf("%hu-%hu"): decimal, text after the numbers
    ignored, no second number meaning one port ("10-abc" is 10; checked with ip,
    iproute2 6.1). sscanf wraps what is over 65535 or negative ("-10" is 65526); kptui
    refuses it instead."""
    def port(text: str) -> int | None:
        digits, _rest = _split_dec(text.lstrip(" \t\n\v\f\r").removeprefix("+"))
        value = scan_uint(digits) if digits else None
        return value if value is None or value <= U16 else -1

    lo = port(tok.text)
    if lo is None or lo < 0:
        raise cmd.error(f'Error: argument "{tok.text}" is wrong: invalid port range', tok)
    after = _split_dec(tok.text.lstrip(" \t\n\v\f\r").removeprefix("+"))[1]
    hi = port(after[1:]) if after.startswith("-") else None
    if hi is not None and hi < 0:
        raise cmd.error(f'Error: argument "{tok.text}" is wrong: invalid port range', tok)
    hi = lo if hi is None else hi
    if lo == 0 or lo > hi:  # the kernel's fib_rule_port_range_valid
        raise cmd.error(f"Error: Invalid {what} range.", tok)
    return (lo, hi)


def _split_dec(text: str) -> tuple[str, str]:
    n = 0
    while n < len(text) and text[n] in "0123456789":
        n += 1
    return text[:n], text[n:]


def ip_rule(box: Box, cmd: Cmd, args: list[Tok], *, pasted: bool = False) -> bool:
    """`ip rule add|delete` (iproute2 6.1 iprule_modify); True when `pasted` and present."""
    verb = _verb(cmd, args, RULE_VERBS, "rule", ("add", "delete"))
    if verb is None:
        return False
    rule = Rule(pref=0, action="", table="")
    given: set[str] = set()
    i = 1
    while i < len(args):
        tok = args[i]
        word = tok.text
        if word in RULE_UNSUPPORTED:
            raise cmd.unsupported()
        if word == "not":
            rule.invert = True
            i += 1
            continue
        if word in ("nop",):
            rule.action = "nop"
            given.add("action")
            i += 1
            continue
        if word == "type" or word in RULE_TYPES:
            if word == "type":
                i += 1
                tok = _need(cmd, args, i, "type")
            if tok.text not in RULE_TYPES:
                raise cmd.error(f'Error: argument "{tok.text}" is wrong: Failed to parse rule '
                                "type", tok)
            rule.action = RULE_TYPES[tok.text]
            given.add("action")
            i += 1
            continue
        value = _need(cmd, args, i + 1, word)
        if word in ("from", "to"):
            net = None if value.text in ("all", "any", "default") else parse_addr(value.text)
            if net is None and value.text not in ("all", "any", "default"):
                raise cmd.error(f'Error: any valid prefix is expected rather than '
                                f'"{value.text}".', value)
            if net is not None:
                if net.ip != net.network.network_address:
                    raise cmd.error("Error: Invalid prefix for given prefix length.", value)
                setattr(rule, "src" if word == "from" else "dst", net.network)
        elif word in ("preference", "order", "priority") or (
                len(word) > 1 and _match(word, ("preference", "order", "priority"))):
            rule.pref = _parse_int(cmd, value, "preference", U32,
                                   wording="preference value is invalid")
            given.add("pref")
        elif word in ("tos", "dsfield") or (len(word) > 1 and "dsfield".startswith(word)):
            # rtnl_dsfield_a2n: strtoul base 16 ("tos 10" is 0x10; checked with ip 6.1)
            tos = _parse_int(cmd, value, "TOS", 255, base=16, wording="TOS value is invalid")
            if tos & ~0x1E:
                raise cmd.error("Error: Invalid tos.", value)
            rule.tos = tos
        elif word == "fwmark":
            mark, slash, mask = value.text.partition("/")
            rule.mark = _parse_int(cmd, Tok(mark, value.column), "fwmark", U32,
                                   wording="fwmark value is invalid")
            if slash:
                rule.mask = _parse_int(cmd, Tok(mask, value.column), "fwmask", U32,
                                       wording="fwmask value is invalid")
            elif rule.mark:
                rule.mask = 0xFFFFFFFF  # a non-zero mark without mask compares all bits
            given.add("mark")
        elif word in ("lookup",) or (len(word) > 1 and "table".startswith(word)):
            try:
                rule.table = box.routes.table_name(value.text)
            except RouteError as exc:
                raise cmd.error(str(exc), value) from None
            given.add("table")
        elif word == "suppress_prefixlength":
            # get_s32 base 0; the kernel takes any length (over 32 suppresses every route)
            rule.suppress_prefixlen = _parse_int(
                cmd, value, "suppress_prefixlength", 2**31 - 1,
                wording="suppress_prefixlength value is invalid")
        elif word == "suppress_ifgroup":
            rule.suppress_ifgroup = 0 if value.text == "default" else _parse_int(
                cmd, value, "suppress_ifgroup", 0x7FFFFFFF,
                wording='Invalid "suppress_ifgroup" value')
        elif word in ("dev", "iif"):
            rule.iif = value.text
        elif word == "oif":
            rule.oif = value.text
        elif word == "goto":
            rule.action = "goto"
            rule.target = _parse_int(cmd, value, "goto", U32, wording="invalid target")
            given.add("action")
        elif word == "ipproto":
            num = IP_PROTO_NAMES.get(value.text)
            # decimal only: "ipproto 0x11" is refused, 010 is 10 (checked with ip 6.1)
            rule.ipproto = num if num is not None else _parse_int(
                cmd, value, "ipproto", 255, base=10, wording='Invalid "ipproto" value')
        elif word in ("sport", "dport"):
            setattr(rule, word, _port_range(cmd, value, word))
        elif len(word) > 1 and "protocol".startswith(word):
            num = PROTO_NAMES.get(value.text)
            rule.proto = num if num is not None else _parse_int(cmd, value, "protocol", 255)
            given.add("proto")
        else:
            raise cmd.error(f'Error: argument "{word}" is wrong: Failed to parse rule type',
                            tok)
        i += 2
    if verb == "delete":
        box.routes.delete_rule(lambda r: _rule_selected(r, rule, given))
        return False
    if not rule.action:
        rule.action = "lookup"
    if rule.action == "lookup" and not rule.table:
        rule.table = "main"
    if rule.action != "lookup":
        rule.table = ""
    if pasted:
        if rule.pref in (0, 32766, 32767) and rule.proto == 0:
            rule.proto = PROTO_KERNEL  # as pasted, a default rule is the kernel's own
        if any(r.key() == rule.key() for r in box.routes.rules):
            return True
        if rule.proto == PROTO_KERNEL:
            rule.proto = 0
    box.routes.add_rule(rule, has_pref="pref" in given)
    return False


def _rule_selected(r: Rule, want: Rule, given: set[str]) -> bool:
    """rule_find for `ip rule del`: every attribute given must be equal."""
    if "action" in given and r.action != want.action:
        return False
    if "table" in given and r.table != want.table:
        return False
    if "pref" in given and r.pref != want.pref:
        return False
    if want.iif and r.iif != want.iif or want.oif and r.oif != want.oif:
        return False
    if want.mark and r.mark != want.mark or want.mask and r.mask != want.mask:
        return False
    if want.suppress_prefixlen != -1 and r.suppress_prefixlen != want.suppress_prefixlen:
        return False
    if want.suppress_ifgroup != -1 and r.suppress_ifgroup != want.suppress_ifgroup:
        return False
    if want.ipproto and r.ipproto != want.ipproto or "proto" in given and r.proto != want.proto:
        return False
    if want.sport and r.sport != want.sport or want.dport and r.dport != want.dport:
        return False
    if want.src is not None and r.src != want.src or want.dst is not None and r.dst != want.dst:
        return False
    return not (want.tos and r.tos != want.tos)


IP_HANDLERS: dict[str, Callable[[Box, Cmd, list[Tok]], None]] = {
    "link": ip_link, "address": ip_addr, "route": ip_route, "rule": ip_rule,
}
COMMANDS: dict[str, Callable[[Box, Cmd], None]] = {"ip": cmd_ip, "sysctl": cmd_sysctl}


def _cmd_tc(box: Box, cmd: Cmd) -> None:
    from kptui.engine.tc_setup import cmd_tc

    cmd_tc(box, cmd)


COMMANDS["tc"] = _cmd_tc


# -- ipset -----------------------------------------------------------------------------

def set_in_use(box: Box, index: int) -> bool:
    """A rule (-m set, -j SET) or a list:set references the set: ipset refuses to destroy
    or rename it."""
    if box.ipsets.referenced(index):
        return True
    for table in box.ruleset.tables.values():
        for chain in table.chains.values():
            for rule in chain.rules:
                for part in (*rule.matches, rule.target):
                    uses = getattr(part, "set_indexes", None)
                    if uses is not None and index in uses():
                        return True
    return False


def run_ipset_words(box: Box, cmd: Cmd, toks: list[Tok]) -> None:
    """One ipset command (its words after the program name), errors at their token."""
    from kptui.engine.ipset_setup import IpsetSyntax, run_ipset
    from kptui.engine.ipsets import IpsetError

    try:
        run_ipset(box.ipsets, [t.text for t in toks],
                  in_use=lambda index: set_in_use(box, index), now=box.clock)
    except IpsetSyntax as err:
        at = toks[err.arg] if err.arg is not None and err.arg < len(toks) else None
        raise cmd.error(f"ipset: {err}", at or (toks[0] if toks else cmd.toks[0])) from None
    except IpsetError as err:
        raise cmd.error(f"ipset: {err}", toks[0] if toks else cmd.toks[0]) from None
    except UnsupportedError as err:
        raise cmd.error(f"unsupported yet: {err}", toks[0] if toks else cmd.toks[0]) from None


def _cmd_ipset(box: Box, cmd: Cmd) -> None:
    words = cmd.toks[1:]
    if not words:
        raise cmd.error("ipset: No command specified.", cmd.toks[0])
    run_ipset_words(box, cmd, words)


COMMANDS["ipset"] = _cmd_ipset


def apply_ipset_restore(box: Box, text: str, *, file: str, first_line: int = 1) -> None:
    """The scenario's `ipset` text, as `ipset restore` reads it (what `ipset save`
    writes: `create` and `add` lines, or any ipset command without the program name),
    one command a line, the first error stopping it."""
    for start, _end, full in split_commands(text, first_line):
        toks = tokenize(full, file=file, line=start)
        if not toks or toks[0].text in ("COMMIT", "quit"):
            continue
        run_ipset_words(box, Cmd(toks, " ".join(full.split()), file, start), toks)

__all__ = ["apply_setup", "split_lines", "tokenize", "KptuiError"]
