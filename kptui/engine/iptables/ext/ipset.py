"""-m set and -j SET (libxt_set 1.8.9 revisions 4 and 3, xt_set.c): ipset sets.

A kptui box has no ipset sets (no `ipset` setup command), and iptables looks
every named set up in the kernel while it parses the rule: on such a box it
refuses every --match-set, --add-set, --del-set and --map-set with "Set NAME
doesn't exist.", after the checks that come before the lookup (two arguments,
the name's length). So no rule with either ever loads, and there is nothing
to print or simulate. Both use libxtables' old option API (getopt and
.parse), so they word their own checks.
"""

from __future__ import annotations

from kptui.engine.iptables.matches import Match, Opt
from kptui.engine.iptables.targets import Target
from kptui.engine.iptables.values import BadValue
from kptui.engine.numbers import U64, scan_uint

IPSET_MAXNAMELEN = 32


def lookup_set(opt: str, args: list[str]) -> None:
    """What libxt_set does with ``--OPT NAME FLAGS``, up to get_set_byname."""
    if args[1][:1] in ("-", "!"):
        raise BadValue(f"{opt} requires two args.")
    if len(args[0].encode("utf-8", "surrogateescape")) > IPSET_MAXNAMELEN - 1:
        raise BadValue(f"setname `{args[0]}' too long, max {IPSET_MAXNAMELEN - 1} "
                       "characters.")
    raise BadValue(f"Set {args[0]} doesn't exist. (a kptui box has no ipset sets)")


_COUNTERS = ("--packets-eq", "--packets-lt", "--packets-gt", "--bytes-eq", "--bytes-lt",
             "--bytes-gt")


class SetMatch(Match):
    name = "set"
    options = {"--match-set": Opt(2, True), "--set": Opt(2, True),
               "--return-nomatch": Opt(0, True), "--update-counters": Opt(0, True),
               "--update-subcounters": Opt(0, True),
               **{o: Opt(1, True) for o in _COUNTERS}}
    own_checks = True  # set_parse_v4 words its own

    def __init__(self) -> None:
        super().__init__()
        self.ops: dict[str, str] = {}  # "packets"/"bytes" -> the option that set it

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        if opt in ("--match-set", "--set"):
            lookup_set("--match-set", args)
        elif opt == "--return-nomatch" and inv:
            raise BadValue("--return-nomatch flag cannot be inverted")
        elif opt in _COUNTERS:
            kind = opt[2:].split("-")[0]
            if kind in self.ops:
                raise BadValue(f"only one of the --{kind}-[eq|lt|gt] is allowed")
            if inv and not opt.endswith("-eq"):
                raise BadValue(f"{opt} option cannot be inverted")
            value = scan_uint(args[0], 0, strtoul=True)
            if value is None or value > U64:
                raise BadValue(f"Cannot parse {args[0]} as a counter value")
            self.ops[kind] = opt

    def finish(self) -> None:
        raise BadValue("You must specify `--match-set' with proper arguments")

    def save(self) -> str:  # never reached: no -m set rule loads (see the module's doc)
        raise NotImplementedError


class SetTarget(Target):
    name = "SET"
    options = {"--add-set": Opt(2, True), "--del-set": Opt(2, True),
               "--map-set": Opt(2, True), "--exist": Opt(0, True),
               "--timeout": Opt(1, True), "--map-mark": Opt(0, True),
               "--map-prio": Opt(0, True), "--map-queue": Opt(0, True)}
    own_checks = True  # set_target_parse_v3 words its own

    def option(self, opt: str, args: list[str], inv: bool) -> None:
        if opt in ("--add-set", "--del-set", "--map-set"):
            lookup_set(opt, args)
        elif opt == "--timeout":
            v = scan_uint(args[0], 0, strtoul=True)
            if v is None or v > 0xFFFFFFFE:
                raise BadValue("Invalid value for option --timeout or out of range "
                               "0-4294967294")

    def finish(self, proto: int, proto_inv: bool) -> None:
        """set_target_check_v3: without a set, the first check already refuses."""
        raise BadValue("You must specify either `--add-set' or `--del-set' or `--map-set'")

    def save(self) -> str:  # never reached: no -j SET rule loads (see the module's doc)
        raise NotImplementedError


MATCHES = (SetMatch,)
TARGETS = (SetTarget,)
