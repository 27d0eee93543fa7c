"""`ipset` command lines and `ipset restore` text, applied to a box's sets.

The syntax is ipset 7.17's (checked on this machine): commands by name, alias
or unique prefix (create/n/-N, add/a/-A, del/d/-D, test/t/-T, destroy/x/-X,
flush/f/-F, rename/e/-E, swap/w/-W), the -exist (-!) option anywhere on the
line, type names and their old aliases (iphash, nethash, ...), create options
per type, elements with their ranges (10.0.0.1-10.0.0.9, 10.0.0.0/30,
tcp:80-90: each element added in turn, the first error stopping the rest) and
element options (timeout, nomatch, packets/bytes, comment, skbmark/skbprio/
skbqueue, before/after for list:set). Refusals are worded as ipset words
them (without its "ipset v7.17: " prefix). `list`, `save`, `restore` from a
command line, `help` and `version` only print, and are unsupported here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from kptui.engine.errors import UnsupportedError
from kptui.engine.ipsets import (
    HOST_MASK,
    ICMP,
    ICMP_NAMES,
    IPSET_MAXNAMELEN,
    PORT_PROTOS,
    TYPES,
    UNMODELLED_TYPES,
    Elem,
    IpSet,
    IpsetError,
    IpsetStore,
    add_element,
    cidr_loops,
    netmask,
)
from kptui.engine.jiffies import jiffies
from kptui.engine.numbers import U32, U64, scan_uint


class IpsetSyntax(IpsetError):
    """A refusal that names one argument (``arg``: its index in the command's words)."""

    def __init__(self, message: str, arg: int | None = None) -> None:
        super().__init__(message)
        self.arg = arg


COMMANDS: tuple[tuple[str, tuple[str, ...]], ...] = (  # `ipset help`'s order: first wins
    ("create", ("n", "-N")), ("add", ("-A",)), ("del", ("-D",)), ("test", ("-T",)),
    ("destroy", ("x", "-X")), ("list", ("-L",)), ("save", ("-S",)), ("restore", ("-R",)),
    ("flush", ("-F",)), ("rename", ("e", "-E")), ("swap", ("w", "-W")), ("help", ()),
    ("version", ("-V",)),
)
TYPE_ALIASES = {"iphash": "hash:ip", "nethash": "hash:net", "ipporthash": "hash:ip,port",
                "ipportiphash": "hash:ip,port,ip", "ipportnethash": "hash:ip,port,net",
                "ipmap": "bitmap:ip", "portmap": "bitmap:port", "setlist": "list:set",
                "macipmap": "bitmap:ip,mac"}
MAX_TIMEOUT = 2147483  # UINT_MAX / MSEC_PER_SEC
EXIST_FLAGS = ("-exist", "--exist", "-!")
QUIET_FLAGS = ("-q", "-quiet", "--quiet")
_ORDINAL = ("First", "Second", "Third")


def command_name(word: str) -> str | None:
    """ipset_match_cmd: a prefix of the name (two leading dashes ignored), or an alias."""
    w = word[2:] if len(word) > 2 and word.startswith("--") else word
    if not w or word == "-":
        return None
    for name, aliases in COMMANDS:
        if word in aliases:
            return name
    for name, _aliases in COMMANDS:
        if name.startswith(w):
            return name
    return None


@dataclass
class Line:
    """One ipset command: its words (without `ipset`), and what the box offers it."""

    words: list[str]
    store: IpsetStore
    in_use: Callable[[int], bool]  # a rule or a list:set references the set at this index
    now: float
    exist: bool = False


def run_ipset(store: IpsetStore, words: list[str], *, in_use: Callable[[int], bool],
              now: float = 0.0) -> None:
    """Apply one ipset command line (``words`` after the program name)."""
    exist = any(w in EXIST_FLAGS for w in words)
    kept = [i for i, w in enumerate(words) if w not in EXIST_FLAGS + QUIET_FLAGS]
    if not kept:
        raise IpsetSyntax("No command specified.")
    args = [words[i] for i in kept]
    try:
        _dispatch(Line(args, store, in_use, now, exist))
    except IpsetSyntax as err:
        if err.arg is not None:  # back to the index in the words as given
            err.arg = kept[err.arg]
        raise


def _dispatch(c: Line) -> None:
    name = command_name(c.words[0])
    if name is None:
        raise IpsetSyntax(f"Unknown argument: `{c.words[0]}'", 0)
    if name in ("list", "save", "help", "version", "restore"):
        raise UnsupportedError(f"ipset {name} (it only prints; a scenario's sets come from "
                               "setup lines and the `ipset` key)")
    HANDLERS[name](c)


def _need(c: Line, n: int, what: str, cmd: str) -> str:
    if len(c.words) <= n:
        which = "" if len(c.words) == 1 else f"{what} "  # no argument at all: no ordinal
        raise IpsetSyntax(f"Missing {which}mandatory argument to command {cmd}")
    return c.words[n]


def _setname(c: Line, n: int, cmd: str, what: str = "") -> str:
    name = _need(c, n, what or "mandatory", cmd) if what else _need(c, n, "first", cmd)
    if len(name.encode("utf-8", "surrogatepass")) > IPSET_MAXNAMELEN - 1:
        raise IpsetSyntax(f"Syntax error: setname '{name}' is longer than "
                          f"{IPSET_MAXNAMELEN - 1} characters", n)
    return name


def _existing(c: Line, n: int, cmd: str) -> tuple[int, IpSet]:
    name = _setname(c, n, cmd)
    index = c.store.index(name)
    if index is None:
        raise IpsetSyntax("The set with the given name does not exist", n)
    s = c.store.slots[index]
    assert s is not None
    return index, s


# -- numbers ---------------------------------------------------------------------------

def number(text: str, arg: int, lo: int = 0, hi: int = U32) -> int:
    """ipset's string_to_number: strtoull base 0, then the range."""
    v = scan_uint(text, 0, strtoul=True)
    if v is None or v > U64:
        raise IpsetSyntax(f"Syntax error: '{text}' is invalid as number", arg)
    if not lo <= v <= hi:
        raise IpsetSyntax(f"Syntax error: '{text}' is out of range {lo}-{hi}", arg)
    return v


def ipv4(text: str, arg: int) -> int:
    from kptui.engine.iptables.xtopt import inet_aton

    v = inet_aton(text)
    if v is None:
        raise IpsetSyntax(f"Syntax error: cannot parse {text}: resolving to IPv4 address "
                          "failed", arg)
    return v


def _ip_range(text: str, arg: int) -> tuple[int, int, int | None]:
    """An address, a-b range or a/cidr: (first, last, cidr or None)."""
    if "-" in text:
        a, b = text.split("-", 1)
        lo, hi = ipv4(a, arg), ipv4(b, arg)
        return min(lo, hi), max(lo, hi), None
    if "/" in text:
        a, c = text.split("/", 1)
        cidr = number(c, arg, 0, 32)
        ip = ipv4(a, arg) & netmask(cidr)
        return ip, ip | (~netmask(cidr) & 0xFFFFFFFF), cidr
    ip = ipv4(text, arg)
    return ip, ip, None


def range_to_cidrs(lo: int, hi: int) -> list[tuple[int, int]]:
    """ip_set_range_to_cidr: the largest aligned networks covering lo..hi, in order."""
    out = []
    while lo <= hi:
        cidr = 32
        while cidr > 0:
            size = 1 << (33 - cidr)
            if lo % size or lo + size - 1 > hi:
                break
            cidr -= 1
        out.append((lo, cidr))
        lo += 1 << (32 - cidr)
    return out


def _ports(text: str, arg: int, s: IpSet) -> list[tuple[int, int]]:
    """[proto:]port[-port], icmp:name or icmp:type/code, or proto:0: (proto, port) pairs."""
    from kptui.engine.iptables.values import PROTOCOLS, SERVICES

    proto = 6
    if ":" in text:
        pname, text = text.split(":", 1)
        if pname == "icmp" and s.type != "bitmap:port":
            if text in ICMP_NAMES:
                return [(ICMP, ICMP_NAMES[text])]
            if "/" in text:
                t, code = text.split("/", 1)
                return [(ICMP, number(t, arg, 0, 255) << 8 | number(code, arg, 0, 255))]
            raise IpsetSyntax(f"Cannot parse {text} as an ICMP type/code.", arg)
        found = PROTOCOLS.get(pname.lower())
        if found is None and scan_uint(pname, 10) is not None:
            found = number(pname, arg, 0, 255)
        if found is None:
            raise IpsetSyntax(f"Syntax error: cannot parse '{pname}' as a protocol", arg)
        proto = found
        if proto not in PORT_PROTOS and s.type != "bitmap:port":
            if text != "0":
                raise IpsetSyntax(f"Syntax error: Protocol {pname} can be used with pseudo "
                                  "port value 0 only.", arg)
            return [(proto, 0)]

    def port(word: str) -> int:
        if word in SERVICES:
            return SERVICES[word]
        return number(word, arg, 0, 65535)

    if "-" in text:
        a, b = text.split("-", 1)
        lo, hi = sorted((port(a), port(b)))
    else:
        lo = hi = port(text)
    return [(proto, p) for p in range(lo, hi + 1)]


def _iface(text: str, arg: int) -> tuple[str, bool]:
    physdev = text.startswith("physdev:")
    name = text[len("physdev:"):] if physdev else text
    if len(name) > 15:
        raise IpsetSyntax(f"Syntax error: interface name '{name}' is longer than 15 "
                          "characters", arg)
    if not name:
        raise IpsetSyntax("Syntax error: interface name is missing", arg)
    return name, physdev


# -- elements --------------------------------------------------------------------------

def elements(c: Line, s: IpSet, text: str, arg: int) -> list[tuple]:
    """Every element key an element argument stands for, in the order ipset adds them."""
    dims = s.dims
    parts = text.split(",")
    if len(parts) > len(dims):
        extra = len(parts) - 1
        supports = ("none", "one", "two")[len(dims) - 1]
        seps = ("Elem separator", "Two elem separators", "Three elem separators",
                "Four elem separators")[min(extra, 4) - 1]
        raise IpsetSyntax(f"Syntax error: {seps} in {text}, but settype {s.type} supports "
                          f"{supports}.", arg)
    if len(parts) < len(dims):
        raise IpsetSyntax(f"Syntax error: {_ORDINAL[len(parts)]} element is missing from "
                          f"{text}.", arg)
    choices: list[list] = []
    for dim, (kind, part) in enumerate(zip(dims, parts, strict=True)):
        if kind == "ip":
            lo, hi, _cidr = _ip_range(part, arg) if dim == 0 else (ipv4(part, arg),) * 2 + (None,)
            mask = netmask(s.netmask)
            if s.type == "bitmap:ip" and (lo < s.first or hi > s.last):
                raise IpsetError("Element is out of the range of the set")
            step = 1 << (32 - s.netmask)
            choices.append(list(range(lo & mask, (hi & mask) + 1, step)))
        elif kind == "net":
            nets = _nets(s, part, arg)
            choices.append(nets)
        elif kind == "port":
            ports = _ports(part, arg, s)
            if s.type == "bitmap:port":
                if ports[0][1] < s.first or ports[-1][1] > s.last:
                    raise IpsetError("Element is out of the range of the set")
                choices.append([p for _proto, p in ports])
            else:
                choices.append(ports)
        elif kind == "iface":
            choices.append([_iface(part, arg)])
        else:
            choices.append([_member(c, s, part, arg)])
    keys: list[tuple] = [()]
    for options in choices:
        keys = [k + (o,) for k in keys for o in options]
    return keys


def _nets(s: IpSet, text: str, arg: int) -> list[tuple[int, int]]:
    zero_ok = s.type == "hash:net,iface"
    if "-" in text:
        lo, hi, _ = _ip_range(text, arg)
        return range_to_cidrs(lo, hi)
    if "/" in text:
        a, c = text.split("/", 1)
        cidr = number(c, arg, 0, 32)
    else:
        a, cidr = text, HOST_MASK
    if cidr == 0 and not zero_ok:
        raise IpsetError("The value of the CIDR parameter of the IP address is invalid")
    return [(ipv4(a, arg) & netmask(cidr), cidr)]


def _member(c: Line, s: IpSet, name: str, arg: int) -> int:
    index = c.store.index(name)
    if index is None:
        if command_name(c.words[0]) == "test":  # ipset answers a plain "no" then
            raise IpsetError(f"{name} is NOT in set {s.name}.")
        raise IpsetSyntax("Set to be added/deleted/tested as element does not exist.", arg)
    if c.store.slots[index].type == "list:set":  # type: ignore[union-attr]
        raise IpsetSyntax("Sets with list:set type cannot be added to the set.", arg)
    return index


# -- commands --------------------------------------------------------------------------

# create options: name -> (takes a value, the types that have it: "" = every type)
CREATE_OPTIONS: dict[str, tuple[bool, str]] = {
    "family": (True, "hash"), "hashsize": (True, "hash"), "maxelem": (True, "hash"),
    "bucketsize": (True, "hash"), "initval": (True, "hash"), "forceadd": (False, "hash"),
    "netmask": (True, "hash:ip bitmap:ip"), "range": (True, "bitmap"),
    "size": (True, "list"), "timeout": (True, ""), "counters": (False, ""),
    "comment": (False, ""), "skbinfo": (False, ""),
}


def _type_has(option: str, typename: str) -> bool:
    where = CREATE_OPTIONS[option][1]
    if not where:
        return True
    return any(typename == w or (":" not in w and typename.startswith(w + ":"))
               for w in where.split())


def cmd_create(c: Line) -> None:
    name = _setname(c, 1, "create")
    typename = _need(c, 2, "second", "create")
    typename = TYPE_ALIASES.get(typename, typename)
    if typename in UNMODELLED_TYPES:
        raise UnsupportedError(f"ipset type {typename} (not modelled)")
    if typename not in TYPES:
        raise IpsetSyntax(f"Syntax error: typename '{typename}' is unknown", 2)
    s = IpSet(name, typename)
    seen: set[str] = set()
    i = 3
    while i < len(c.words):
        opt = c.words[i]
        if opt not in CREATE_OPTIONS or not _type_has(opt, typename):
            raise IpsetSyntax(f"Unknown argument: `{opt}'", i)
        if opt in seen:
            raise IpsetSyntax(f"Syntax error: {opt} already specified", i)
        seen.add(opt)
        takes = CREATE_OPTIONS[opt][0]
        value = ""
        if takes:
            if i + 1 >= len(c.words):
                raise IpsetSyntax(f"Missing mandatory argument of option `{opt}'", i)
            value = c.words[i + 1]
        _create_option(s, opt, value, i + 1)
        s.options.append(f"{opt} {value}" if takes else opt)
        i += 2 if takes else 1
    if typename.startswith("bitmap:") and "range" not in seen:
        raise IpsetSyntax("Mandatory option `range' is missing")
    old = c.store.index(name)
    if old is not None:
        have = c.store.slots[old]
        if c.exist and have is not None and have.type == s.type and \
                sorted(have.options) == sorted(s.options):
            return
        raise IpsetError("Set cannot be created: set with the same name already exists")
    c.store.add_set(s)


def _create_option(s: IpSet, opt: str, value: str, arg: int) -> None:
    if opt == "family":
        if value in ("inet6", "ipv6"):
            raise UnsupportedError("ipset family inet6 (kptui models IPv4)")
        if value not in ("inet", "ipv4"):
            raise IpsetSyntax(f"Syntax error: unknown family {value}", arg)
    elif opt in ("hashsize", "maxelem", "initval"):
        v = number(value, arg)
        if opt == "maxelem":
            s.maxelem = v
    elif opt == "bucketsize":
        number(value, arg, 0, 255)
    elif opt == "forceadd":
        s.forceadd = True
    elif opt == "netmask":
        s.netmask = number(value, arg, 1, 32) if "." not in value else _dotted_mask(value, arg)
    elif opt == "range":
        if s.type == "bitmap:port":
            ports = _ports(value, arg, s)
            s.first, s.last = ports[0][1], ports[-1][1]
        else:
            s.first, s.last, _ = _ip_range(value, arg)
            if s.last - s.first >= 65536:
                raise IpsetError("The range you specified exceeds the size limit of the set "
                                 "type")
    elif opt == "size":
        s.size = max(number(value, arg), 4)
    elif opt == "timeout":
        s.timeout = number(value, arg, 0, MAX_TIMEOUT)
    else:
        setattr(s, opt, True)


def _dotted_mask(value: str, arg: int) -> int:
    mask = ipv4(value, arg)
    cidr = bin(mask).count("1")
    if mask != netmask(cidr) or not cidr:
        raise IpsetSyntax(f"Syntax error: netmask {value} is not a valid netmask", arg)
    return cidr


def _elem_options(c: Line, s: IpSet, start: int, cmd: str) -> tuple[Elem, int | None, dict]:
    """The options after an element (add: all of them; del/test: none but list:set's)."""
    ext = Elem()
    timeout: int | None = None
    where: dict[str, int] = {}
    seen: set[str] = set()
    lacking = ""  # the kernel refuses an extension the set lacks once ipset parsed it all
    i = start
    words = c.words
    while i < len(words):
        opt = words[i]
        allowed = {"before", "after"} if s.type == "list:set" else set()
        if cmd == "add":
            allowed |= {"timeout", "packets", "bytes", "comment", "skbmark", "skbprio",
                        "skbqueue"}
            if s.nomatch_type:
                allowed.add("nomatch")
        if opt not in allowed:
            raise IpsetSyntax(f"Unknown argument: `{opt}'", i)
        if opt in seen:
            raise IpsetSyntax(f"Syntax error: {opt} already specified", i)
        seen.add(opt)
        if opt == "nomatch":
            ext.nomatch = True
            i += 1
            continue
        if i + 1 >= len(words):
            raise IpsetSyntax(f"Missing mandatory argument of option `{opt}'", i)
        value, arg = words[i + 1], i + 1
        if opt == "timeout":
            timeout = number(value, arg, 0, MAX_TIMEOUT)
            if s.timeout is None:
                lacking = lacking or "Timeout cannot be used: set was created without " \
                    "timeout support"
        elif opt in ("packets", "bytes"):
            setattr(ext, opt, number(value, arg, 0, U64))
            if not s.counters:
                lacking = lacking or "Packet/byte counters cannot be used: set was created " \
                    "without counter support"
        elif opt == "comment":
            ext.comment = value[:255]
            if not s.comment:
                lacking = lacking or "Comment cannot be used: set was created without " \
                    "comment support"
        elif opt in ("skbmark", "skbprio", "skbqueue"):
            _skbinfo(ext, opt, value, arg)
            if not s.skbinfo:
                lacking = lacking or "Skbinfo cannot be used: set was created without " \
                    "skbinfo support"
        else:  # before / after
            where[opt] = _member(c, s, value, arg) if c.store.index(value) is not None else -1
            if where[opt] == -1:
                raise IpsetError("The set to which you referred with 'before' or 'after' "
                                 "does not exist.")
        i += 2
    if len(where) > 1:
        raise IpsetSyntax("Syntax error: before and after cannot be used together")
    if lacking:
        raise IpsetError(lacking)
    return ext, timeout, where


def _skbinfo(ext: Elem, opt: str, value: str, arg: int) -> None:
    if opt == "skbmark":  # sscanf "0x%llx/0x%llx" or "0x%llx": hexadecimal only
        mark, _, mask = value.partition("/")
        hexes = [w[2:] for w in (mark, mask) if w]
        m = scan_uint(hexes[0], 16, strtoul=True) if mark.startswith("0x") else None
        k = scan_uint(hexes[1], 16, strtoul=True) if mask.startswith("0x") else \
            (U32 if not mask else None)
        if m is None or k is None or m > U32 or k > U32:
            raise IpsetSyntax("Syntax error: Invalid skbmark format, it should be:  MARK/MASK "
                              "or MARK (see manpage)", arg)
        ext.skbmark = (m, k)
    elif opt == "skbprio":
        major, sep, minor = value.partition(":")
        a = scan_uint(major, 16, strtoul=True)
        b = scan_uint(minor, 16, strtoul=True)
        if not sep or a is None or b is None or a > 0xFFFF or b > 0xFFFF:
            raise IpsetSyntax("Syntax error: Invalid skbprio format, it should be:MAJOR:MINOR "
                              "(see manpage)", arg)
        ext.skbprio = a << 16 | b
    else:
        ext.skbqueue = number(value, arg, 0, 0xFFFF)


def cmd_add(c: Line) -> None:
    _index, s = _existing(c, 1, "add")
    text = _need(c, 2, "second", "add")
    keys = elements(c, s, text, 2)
    ext, timeout, where = _elem_options(c, s, 3, "add")
    now = jiffies(c.now)
    t = s.timeout if timeout is None else timeout
    for key in keys:
        add_element(s, key, replace(ext), t, exist=c.exist, now=now)
        if where:
            _place(s, key, where)


def _place(s: IpSet, key: tuple, where: dict[str, int]) -> None:
    """list:set's before/after: move the new member next to the one named."""
    (how, ref), = where.items()
    items = [(k, e) for k, e in s.elems.items() if k != key]
    at = next((i for i, (k, _e) in enumerate(items) if k == (ref,)), None)
    if at is None:
        del s.elems[key]
        raise IpsetError("The set to which you referred with 'before' or 'after' is not "
                         "in the set.")
    items.insert(at if how == "before" else at + 1, (key, s.elems[key]))
    s.elems = dict(items)


def _named_elements(c: Line, cmd: str) -> tuple[IpSet, str, list[tuple], int]:
    """del and test: the set, the element text, its keys and the time (jiffies)."""
    _index, s = _existing(c, 1, cmd)
    text = _need(c, 2, "second", cmd)
    keys = elements(c, s, text, 2)
    _elem_options(c, s, 3, cmd)
    return s, text, keys, jiffies(c.now)


def cmd_del(c: Line) -> None:
    s, _text, keys, now = _named_elements(c, "del")
    for key in keys:
        e = s.elems.get(key)
        if e is None or e.expired(now):
            if c.exist:
                continue
            raise IpsetError("Element cannot be deleted from the set: it's not added")
        del s.elems[key]


def cmd_test(c: Line) -> None:
    s, text, keys, now = _named_elements(c, "test")
    for key in keys:
        e = find(s, key, now)
        if e is None or e.nomatch:
            raise IpsetError(f"{text} is NOT in set {s.name}.")


def find(s: IpSet, key: tuple, now: int) -> Elem | None:
    """The live element a test of ``key`` finds: a host address (/32) in a network
    dimension is looked up at every prefix length the set holds, longest first."""
    nets = [i for i, kind in enumerate(s.dims) if kind == "net" and key[i][1] == HOST_MASK]
    for cidrs in cidr_loops([s.cidrs(i, now) for i in nets]):
        probe = list(key)
        for i, cidr in zip(nets, cidrs, strict=True):
            probe[i] = (key[i][0] & netmask(cidr), cidr)
        e = s.elems.get(tuple(probe))
        if e is not None and not e.expired(now):
            return e
    return None


def cmd_destroy(c: Line) -> None:
    if len(c.words) == 1:
        if any(c.in_use(i) for i, s in enumerate(c.store.slots) if s is not None):
            raise IpsetError("Set cannot be destroyed: it is in use by a kernel component")
        c.store.slots = []
        return
    name = _setname(c, 1, "destroy")
    index = c.store.index(name)
    if index is None:
        if c.exist:
            return
        raise IpsetSyntax("The set with the given name does not exist", 1)
    if c.in_use(index):
        raise IpsetError("Set cannot be destroyed: it is in use by a kernel component")
    c.store.slots[index] = None


def cmd_flush(c: Line) -> None:
    if len(c.words) == 1:
        for s in c.store.sets():
            s.elems.clear()
        return
    _index, s = _existing(c, 1, "flush")
    s.elems.clear()


def cmd_rename(c: Line) -> None:
    index, s = _existing(c, 1, "rename")
    to = _setname(c, 2, "rename", "second")
    if c.in_use(index):
        raise IpsetError("Set cannot be renamed: it is in use by another system")
    if c.store.index(to) is not None:
        raise IpsetError("Set cannot be renamed: a set with the new name already exists")
    s.name = to


def cmd_swap(c: Line) -> None:
    a, sa = _existing(c, 1, "swap")
    name = _setname(c, 2, "swap", "second")
    b = c.store.index(name)
    if b is None:
        raise IpsetSyntax("Sets cannot be swapped: the second set does not exist", 2)
    sb = c.store.slots[b]
    assert sb is not None
    if sa.type != sb.type:
        raise IpsetError("The sets cannot be swapped: their type does not match")
    c.store.swap(a, b)


HANDLERS: dict[str, Callable[[Line], None]] = {
    "create": cmd_create, "add": cmd_add, "del": cmd_del, "test": cmd_test,
    "destroy": cmd_destroy, "flush": cmd_flush, "rename": cmd_rename, "swap": cmd_swap,
}
