"""The `setup` lines of a scenario: shell commands as typed on the box.

Only the commands that change state the engine models are accepted (ip
link/addr/route, iptables, sysctl); anything else is an "unsupported yet"
error naming the line, never silently skipped. Argument errors carry the
file, line, column and token; refusals the kernel would give carry its text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network

from kptui.engine.box import Box, SysctlError
from kptui.engine.errors import KptuiError, ParseError, UnsupportedError
from kptui.engine.routing import (
    PROTO_BOOT,
    PROTO_NAMES,
    ROUTE_TYPES,
    SCOPE_NAMES,
    SCOPE_NOWHERE,
    Route,
    RouteError,
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
    out: list[tuple[int, str]] = []
    pending = ""
    start = first_line
    for offset, raw in enumerate(text.splitlines()):
        lineno = first_line + offset
        if not pending:
            start = lineno
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        full = pending + raw
        pending = ""
        stripped = full.strip()
        if stripped and not stripped.startswith("#"):
            out.append((start, full))
    if pending.strip():
        out.append((start, pending))
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


def apply_setup(box: Box, text: str, *, file: str, first_line: int = 1) -> None:
    """Run every setup command against `box`, in order; the first error stops."""
    for lineno, full in split_lines(text, first_line):
        toks = tokenize(full, file=file, line=lineno)
        if not toks:
            continue
        cmd = Cmd(toks, " ".join(full.split()), file, lineno)
        run_command(box, cmd, full)


def run_command(box: Box, cmd: Cmd, raw: str) -> None:
    prog = cmd.toks[0].text.rsplit("/", 1)[-1]
    if prog in ("iptables", "iptables-legacy", "iptables-nft"):
        from kptui.engine.iptables import apply_command

        apply_command(box.ruleset, raw.strip(), file=cmd.file, line=cmd.line)
        return
    if prog in ("tc", "ip6tables", "ip6tables-legacy", "ip6tables-nft", "nft", "ebtables",
                "arptables", "ipset"):
        raise cmd.unsupported()
    handler = COMMANDS.get(prog)
    if handler is None:
        raise cmd.error(f"unknown command {prog!r} (setup lines run ip, iptables, sysctl)",
                        cmd.toks[0])
    try:
        handler(box, cmd)
    except ParseError:
        raise
    except UnsupportedError:
        raise cmd.unsupported() from None
    except (RouteError, SysctlError) as exc:
        raise cmd.error(str(exc), cmd.toks[0]) from None


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
        if len(rest) == 3 and rest[1] == "type" and rest[2] == "dummy":
            box.add_link(rest[0])
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
            tok = _need(cmd, args, i + 1, "mtu")
            if not tok.text.isdigit():
                raise cmd.error(f'Error: argument "{tok.text}" is wrong: Invalid "mtu" value',
                                tok)
            mtu = int(tok.text)
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
    try:
        IPv4Address(addr)
        if slash and not (plen.isdigit() and 0 <= int(plen) <= 32):
            return None
        return IPv4Interface(f"{addr}/{plen if slash else 32}")
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
                     "nexthop", "nhid", "encap", "vrf", "from", "pref", "quickack", "congctl",
                     "rto_min", "features", "fastopen_no_cookie", "ttl-propagate", "hoplimit",
                     "as", "pervasive", "lock")
ROUTE_VERBS = ("add", "change", "replace", "prepend", "append", "test", "delete", "list",
               "show", "lst", "get", "flush", "save", "restore", "showdump")


def _parse_int(cmd: Cmd, tok: Tok, what: str, limit: int) -> int:
    try:
        value = int(tok.text, 0)
    except ValueError:
        value = -1
    if not 0 <= value <= limit:
        raise cmd.error(f'Error: argument "{tok.text}" is wrong: "{what}" value is invalid', tok)
    return value


def ip_route(box: Box, cmd: Cmd, args: list[Tok]) -> None:
    if not args:
        return
    verb = _match(args[0].text, ROUTE_VERBS)
    if verb is None:
        raise cmd.error(f'Command "{args[0].text}" is unknown, try "ip route help".', args[0])
    if verb in ("list", "show", "lst"):
        return
    if verb not in ("add", "replace", "append", "delete"):
        raise cmd.unsupported()
    rtype = ""
    prefix: IPv4Network | None = None
    fields: dict[str, object] = {}
    i = 1
    while i < len(args):
        tok = args[i]
        word = tok.text
        if word in ROUTE_UNSUPPORTED:
            raise cmd.unsupported()
        if word not in ("to", "type") and len(word) > 1 and "table".startswith(word):
            value = _need(cmd, args, i + 1, "table")
            if value.text not in ("main", "local", "default", "254", "255", "253"):
                raise cmd.unsupported()
            fields["table"] = {"254": "main", "255": "local", "253": "default"}.get(
                value.text, value.text)
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
            fields["metric"] = _parse_int(cmd, value, "metric", 0xFFFFFFFF)
            i += 2
            continue
        if len(word) > 1 and "protocol".startswith(word):
            value = _need(cmd, args, i + 1, "protocol")
            num = PROTO_NAMES.get(value.text)
            fields["proto"] = num if num is not None else _parse_int(cmd, value, "protocol", 255)
            i += 2
            continue
        if len(word) > 1 and "scope".startswith(word):
            value = _need(cmd, args, i + 1, "scope")
            num = SCOPE_NAMES.get(value.text)
            fields["scope"] = num if num is not None else _parse_int(cmd, value, "scope", 255)
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
    if "scope" in fields:
        scope = int(fields["scope"])  # type: ignore[arg-type]
    elif deleting and rtype == "unicast":
        scope = SCOPE_NOWHERE
    else:
        scope = default_scope(rtype, gateway is not None)
    route = Route(prefix=prefix, type=rtype, dev=str(fields.get("dev", "")),
                  gateway=gateway,  # type: ignore[arg-type]
                  src=fields.get("src"),  # type: ignore[arg-type]
                  metric=int(fields.get("metric", 0)),  # type: ignore[call-overload]
                  proto=int(fields.get("proto", PROTO_BOOT)),  # type: ignore[call-overload]
                  scope=scope, table=table)
    if deleting:
        if route.dev:
            box.iface(route.dev)
        box.routes.delete(route, match_type=given_type, match_scope=scope != SCOPE_NOWHERE,
                          match_proto="proto" in fields, match_metric="metric" in fields)
        return
    box.add_route(route, mode={"add": "add", "replace": "replace", "append": "append"}[verb])


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


def ip_rule(box: Box, cmd: Cmd, args: list[Tok]) -> None:
    raise cmd.unsupported()


IP_HANDLERS: dict[str, Callable[[Box, Cmd, list[Tok]], None]] = {
    "link": ip_link, "address": ip_addr, "route": ip_route, "rule": ip_rule,
}
COMMANDS: dict[str, Callable[[Box, Cmd], None]] = {"ip": cmd_ip, "sysctl": cmd_sysctl}

__all__ = ["apply_setup", "split_lines", "tokenize", "KptuiError"]
