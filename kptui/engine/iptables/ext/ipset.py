"""-m set and -j SET (libxt_set 1.8.9 revisions 4 and 3, xt_set.c): ipset sets.

iptables looks every named set up in the kernel while it parses the rule
(get_set_byname): a set the box does not have is refused with "Set NAME
doesn't exist.", and a rule holds the set's index, not its name (so `ipset
swap` changes what the rule sees; kptui.engine.ipsets has the sets). The
src/dst flags are read as parse_dirs reads them: up to six, each word only
by its first three letters.

The match (set_match_v4): ip_set_test with the flags and cmdflags, its
result inverted by `! --match-set`; with --packets-*/--bytes-* the element's
counters are compared inside the set (after they counted this packet), so
`!` inverts the whole. The target (set_target_v3): --add-set (its
--timeout, else the set's default; --exist refreshes an element already
there), --del-set, and --map-set, which sets the packet's mark, priority or
queue from the element's skbinfo when the packet is in the set; it always
continues. Both use libxtables' old option API, so they word their own checks.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.ipsets import IPSET_MAXNAMELEN, Probe
from kptui.engine.iptables.matches import Match, Opt
from kptui.engine.iptables.targets import Target, TargetResult, _set
from kptui.engine.iptables.values import BadValue
from kptui.engine.jiffies import jiffies
from kptui.engine.numbers import U64, scan_uint

IPSET_DIM_MAX = 6
UINT32_MAX = 0xFFFFFFFF


class SetRef:
    """One --match-set/--add-set/--del-set/--map-set: the set's index and the flags."""

    __slots__ = ("index", "flags", "name")

    def __init__(self, index: int, flags: tuple[bool, ...], name: str) -> None:
        self.index, self.flags, self.name = index, flags, name

    def text(self, sets: Any) -> str:
        s = sets.slots[self.index] if sets is not None else None
        name = s.name if s is not None else self.name
        return f"{name} " + ",".join("src" if f else "dst" for f in self.flags)


def lookup_set(opt: str, args: list[str], sets: Any) -> SetRef:
    """What libxt_set does with ``--OPT NAME FLAGS``: get_set_byname, then parse_dirs."""
    name = args[0]
    if args[1][:1] in ("-", "!"):
        raise BadValue(f"{opt} requires two args.")
    if len(name.encode("utf-8", "surrogatepass")) > IPSET_MAXNAMELEN - 1:
        raise BadValue(f"setname `{name}' too long, max {IPSET_MAXNAMELEN - 1} characters.")
    index = sets.index(name) if sets is not None else None
    if index is None:
        raise BadValue(f"Set {name} doesn't exist.")
    return SetRef(index, parse_dirs(args[1]), name)


def parse_dirs(text: str) -> tuple[bool, ...]:
    words = text.split(",")
    if len(words) > IPSET_DIM_MAX:
        raise BadValue(f"Can't be more src/dst options than {IPSET_DIM_MAX}.")
    flags = []
    for w in words:
        if w[:3] not in ("src", "dst"):
            raise BadValue("You must spefify (the comma separated list of) 'src' or 'dst'.")
        flags.append(w[:3] == "src")
    return tuple(flags)


_COUNTERS = ("--packets-eq", "--packets-lt", "--packets-gt", "--bytes-eq", "--bytes-lt",
             "--bytes-gt")


class SetMatch(Match):
    name = "set"
    options = {"--match-set": Opt(2, True), "--set": Opt(2, True),
               "--return-nomatch": Opt(0, True), "--update-counters": Opt(0, True),
               "--update-subcounters": Opt(0, True),
               **{o: Opt(1, True) for o in _COUNTERS}}
    own_checks = True  # set_parse_v4 words its own
    uses_sets = True
    stateful = True  # counters count

    def __init__(self) -> None:
        super().__init__()
        self.sets: Any = None
        self.ref: SetRef | None = None
        self.invert = False
        self.return_nomatch = False
        self.skip_counters = self.skip_subcounters = False
        self.ops: dict[str, tuple[str, int]] = {}  # "packets"/"bytes" -> (op, value)

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        if opt in ("--match-set", "--set"):
            if self.ref is not None:
                raise BadValue("--match-set can be specified only once")
            self.invert = inv
            self.ref = lookup_set("--match-set", args, self.sets)
        elif opt == "--return-nomatch":
            if inv:
                raise BadValue("--return-nomatch flag cannot be inverted")
            self.return_nomatch = True
        elif opt == "--update-counters":
            self.skip_counters = self.skip_counters or inv
        elif opt == "--update-subcounters":
            self.skip_subcounters = self.skip_subcounters or inv
        else:
            kind, op = opt[2:].split("-")
            if kind in self.ops:
                raise BadValue(f"only one of the --{kind}-[eq|lt|gt] is allowed")
            if inv and op != "eq":
                raise BadValue(f"{opt} option cannot be inverted")
            value = scan_uint(args[0], 0, strtoul=True)
            if value is None or value > U64:
                raise BadValue(f"Cannot parse {args[0]} as a counter value")
            self.ops[kind] = ("ne" if inv else op, value)

    def finish(self) -> None:
        if self.ref is None:
            raise BadValue("You must specify `--match-set' with proper arguments")

    def set_indexes(self) -> tuple[int, ...]:
        return (self.ref.index,) if self.ref is not None else ()

    def save(self) -> str:
        assert self.ref is not None
        out = ["! --match-set" if self.invert else "--match-set", self.ref.text(self.sets)]
        if self.return_nomatch:
            out.append("--return-nomatch")
        if self.skip_counters:
            out.append("! --update-counters")
        if self.skip_subcounters:
            out.append("! --update-subcounters")
        for kind in ("packets", "bytes"):
            if kind in self.ops:
                op, value = self.ops[kind]
                out.append(f"! --{kind}-eq {value}" if op == "ne" else f"--{kind}-{op} {value}")
        return " ".join(out)

    def test(self, pkt: Any, ctx: Any) -> str | None:
        assert self.ref is not None
        store = ctx.box.ipsets
        probe = Probe(self.ref.flags, self.return_nomatch, not self.skip_counters,
                      not self.skip_subcounters, self.ops.get("packets"), self.ops.get("bytes"))
        hit = store.test(self.ref.index, pkt, ctx, probe, jiffies(ctx.now))
        if hit.matched != self.invert:
            return None
        return hit.why + (", and the rule says !" if self.invert else "")


class SetTarget(Target):
    name = "SET"
    options = {"--add-set": Opt(2, True), "--del-set": Opt(2, True),
               "--map-set": Opt(2, True), "--exist": Opt(0, True),
               "--timeout": Opt(1, True), "--map-mark": Opt(0, True),
               "--map-prio": Opt(0, True), "--map-queue": Opt(0, True)}
    own_checks = True  # set_target_parse_v3 words its own
    uses_sets = True

    def __init__(self) -> None:
        super().__init__()
        self.sets: Any = None
        self.refs: dict[str, SetRef] = {}  # "add"/"del"/"map" -> the set
        self.flags: set[str] = set()  # exist, timeout, map-mark, map-prio, map-queue
        self.timeout: int | None = None

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        what = opt[2:]
        if opt in ("--add-set", "--del-set", "--map-set"):
            if what[:3] in self.refs:
                raise BadValue(f"--{what} can be specified only once")
            self.refs[what[:3]] = lookup_set(opt, args, self.sets)
            return
        if opt == "--timeout":
            v = scan_uint(args[0], 0, strtoul=True)
            if v is None or v > UINT32_MAX - 1:
                raise BadValue("Invalid value for option --timeout or out of range "
                               f"0-{UINT32_MAX - 1}")
            self.timeout = v
        self.flags.add(what)

    def finish(self, proto: int, proto_inv: bool) -> None:
        """set_target_check_v3, then the kernel's checkentry (map-set only in mangle,
        prio and queue only where a packet has its output device)."""
        if not self.refs:
            raise BadValue("You must specify either `--add-set' or `--del-set' or "
                           "`--map-set'")
        if "add" not in self.refs:
            if "exist" in self.flags:
                raise BadValue("Flag `--exist' can be used with `--add-set' only")
            if "timeout" in self.flags:
                raise BadValue("Option `--timeout' can be used with `--add-set' only")
        maps = {"map-mark", "map-prio", "map-queue"} & self.flags
        if "map" not in self.refs:
            for flag in ("map-mark", "map-prio", "map-queue"):
                if flag in maps:
                    raise BadValue(f"Flag `--{flag}' can be used with `--map-set' only")
        elif not maps:
            raise BadValue("You must specify flags `--map-mark' or '--map-prio` or "
                           "`--map-queue'")
        if "map" in self.refs:
            self.tables = frozenset({"mangle"})  # type: ignore[misc]
            if maps & {"map-prio", "map-queue"}:
                self.chains = frozenset({"FORWARD", "OUTPUT", "POSTROUTING"})  # type: ignore[misc]

    def set_indexes(self) -> tuple[int, ...]:
        return tuple(r.index for r in self.refs.values())

    def save(self) -> str:
        out = []
        if "add" in self.refs:
            out.append(f"--add-set {self.refs['add'].text(self.sets)}")
        if "exist" in self.flags:
            out.append("--exist")
        if self.timeout is not None:
            out.append(f"--timeout {self.timeout}")
        for key in ("del", "map"):
            if key in self.refs:
                out.append(f"--{key}-set {self.refs[key].text(self.sets)}")
        out += [f"--{f}" for f in ("map-mark", "map-prio", "map-queue") if f in self.flags]
        return " ".join(out)

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        store = ctx.box.ipsets
        now = jiffies(ctx.now)
        out = TargetResult("CONTINUE")
        said = []
        if "add" in self.refs:
            r = self.refs["add"]
            timeout = self.timeout
            if timeout is not None and timeout > UINT32_MAX // 1000:
                timeout = UINT32_MAX // 1000  # "normalize to fit into jiffies"
            said.append(store.add_packet(r.index, pkt, ctx, r.flags, timeout,
                                         "exist" in self.flags, now))
        if "del" in self.refs:
            r = self.refs["del"]
            said.append(store.del_packet(r.index, pkt, ctx, r.flags, now))
        if "map" in self.refs:
            said.append(self._map(pkt, ctx, store, now, out))
        out.detail = "; ".join(said)
        return out

    def _map(self, pkt: Any, ctx: Any, store: Any, now: int, out: TargetResult) -> str:
        r = self.refs["map"]
        hit = store.test(r.index, pkt, ctx, Probe(r.flags), now)
        if not hit.matched or hit.elem is None:
            return f"map-set: {hit.why}"
        e = hit.elem  # a set without skbinfo, or an element without the option: zeros
        if "map-mark" in self.flags:
            mark, mask = e.skbmark or (0, 0)
            _set(pkt, "meta.mark", (pkt.meta.mark & ~mask & 0xFFFFFFFF) ^ mark, out)
        if "map-prio" in self.flags:
            _set(pkt, "meta.priority", e.skbprio or 0, out)
        if "map-queue" in self.flags:
            return f"map-set: {hit.why}; the tx queue is not modelled (one queue a device)"
        return f"map-set: {hit.why}"


MATCHES = (SetMatch,)
TARGETS = (SetTarget,)
