"""Profiles: the ordered stages a packet passes through on each path.

The ``modern`` profile follows a current kernel. Within a netfilter hook the
functions run in ascending priority (include/uapi/linux/netfilter_ipv4.h,
``enum nf_ip_hook_priorities``), so each hook's stage list is *derived* by
sorting the registered functions by priority rather than written by hand.
The diagram widget draws from the same data, so each profile shows its own
picture.
"""

from __future__ import annotations

from dataclasses import dataclass

from kptui.engine.errors import UnsupportedError

# include/uapi/linux/netfilter_ipv4.h
NF_IP_PRI_FIRST = -(2**31)
NF_IP_PRI_CONNTRACK_DEFRAG = -400
NF_IP_PRI_RAW = -300
NF_IP_PRI_CONNTRACK = -200
NF_IP_PRI_MANGLE = -150
NF_IP_PRI_NAT_DST = -100
NF_IP_PRI_FILTER = 0
NF_IP_PRI_SECURITY = 50
# iptables-nft (1.8.9, checked with `nft list ruleset`) registers the security
# table's base chains at priority 150, after nat INPUT (100), not at 50 as the
# legacy iptable_security module does. The modern profile follows iptables-nft.
IPTABLES_NFT_SECURITY = 150
NF_IP_PRI_NAT_SRC = 100
NF_IP_PRI_CONNTRACK_CONFIRM = 2**31 - 1

HOOKS = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")


@dataclass(frozen=True, slots=True)
class Stage:
    """One box of the diagram. ``kind`` selects the walk's handler for it."""

    id: str  # "mangle:PREROUTING", "routing:input", "tc:ingress"
    title: str  # the diagram's label
    hook: str  # netfilter hook, or "" for stages outside netfilter
    kind: str  # table | conntrack | confirm | routing | tc | forward | deliver | transmit
    table: str = ""
    priority: int = 0


def _table(table: str, hook: str, priority: int) -> Stage:
    return Stage(f"{table}:{hook}", f"{table} {hook}", hook, "table", table, priority)


# The functions registered at each hook in a modern kernel (KERNEL-NOTES.md section 1).
# Defrag is omitted: kptui does not model fragments being reassembled.
_MODERN_HOOK_FUNCTIONS: dict[str, list[Stage]] = {
    "PREROUTING": [
        _table("raw", "PREROUTING", NF_IP_PRI_RAW),
        Stage("conntrack:PREROUTING", "conntrack", "PREROUTING", "conntrack", "",
              NF_IP_PRI_CONNTRACK),
        _table("mangle", "PREROUTING", NF_IP_PRI_MANGLE),
        _table("nat", "PREROUTING", NF_IP_PRI_NAT_DST),
    ],
    "INPUT": [
        _table("mangle", "INPUT", NF_IP_PRI_MANGLE),
        _table("filter", "INPUT", NF_IP_PRI_FILTER),
        _table("security", "INPUT", IPTABLES_NFT_SECURITY),
        _table("nat", "INPUT", NF_IP_PRI_NAT_SRC),
        Stage("conntrack:INPUT", "conntrack confirm", "INPUT", "confirm", "",
              NF_IP_PRI_CONNTRACK_CONFIRM),
    ],
    "FORWARD": [
        _table("mangle", "FORWARD", NF_IP_PRI_MANGLE),
        _table("filter", "FORWARD", NF_IP_PRI_FILTER),
        _table("security", "FORWARD", IPTABLES_NFT_SECURITY),
    ],
    "OUTPUT": [
        _table("raw", "OUTPUT", NF_IP_PRI_RAW),
        Stage("conntrack:OUTPUT", "conntrack", "OUTPUT", "conntrack", "", NF_IP_PRI_CONNTRACK),
        _table("mangle", "OUTPUT", NF_IP_PRI_MANGLE),
        _table("nat", "OUTPUT", NF_IP_PRI_NAT_DST),
        _table("filter", "OUTPUT", NF_IP_PRI_FILTER),
        _table("security", "OUTPUT", IPTABLES_NFT_SECURITY),
    ],
    "POSTROUTING": [
        _table("mangle", "POSTROUTING", NF_IP_PRI_MANGLE),
        _table("nat", "POSTROUTING", NF_IP_PRI_NAT_SRC),
        Stage("conntrack:POSTROUTING", "conntrack confirm", "POSTROUTING", "confirm", "",
              NF_IP_PRI_CONNTRACK_CONFIRM),
    ],
}


def _hook(hook: str) -> list[Stage]:
    return sorted(_MODERN_HOOK_FUNCTIONS[hook], key=lambda s: s.priority)


TC_INGRESS = Stage("tc:ingress", "QOS INGRESS (tc)", "", "tc")
TC_EGRESS = Stage("tc:egress", "QOS EGRESS (tc)", "", "tc")
INPUT_ROUTING = Stage("routing:input", "INPUT ROUTING + RPDB", "", "routing")
OUTPUT_ROUTING = Stage("routing:output", "OUTPUT ROUTING + RPDB", "", "routing")
FORWARD = Stage("forward", "FORWARD (ip_forward)", "", "forward")
DELIVER = Stage("local:deliver", "local process", "", "deliver")
TRANSMIT = Stage("transmit", "out interface", "", "transmit")


@dataclass(frozen=True, slots=True)
class Profile:
    """The stage lists of each path. Paths chain: prerouting -> input | forward, ..."""

    name: str
    prerouting: tuple[Stage, ...]  # from the wire up to and including input routing
    local_in: tuple[Stage, ...]
    forward: tuple[Stage, ...]
    local_out: tuple[Stage, ...]  # from the socket up to (not including) POSTROUTING
    postrouting: tuple[Stage, ...]  # POSTROUTING to the wire
    hidden: frozenset[str] = frozenset()  # walked but not drawn (not in the profile's picture)

    def stages(self) -> list[Stage]:
        """Every stage once, in diagram order."""
        seen: dict[str, Stage] = {}
        for path in (self.prerouting, self.local_in, self.forward, self.local_out,
                     self.postrouting):
            for stage in path:
                seen.setdefault(stage.id, stage)
        return list(seen.values())

    def stage(self, stage_id: str) -> Stage:
        for stage in self.stages():
            if stage.id == stage_id:
                return stage
        raise KeyError(stage_id)


MODERN = Profile(
    name="modern",
    prerouting=(TC_INGRESS, *_hook("PREROUTING"), INPUT_ROUTING),
    local_in=(*_hook("INPUT"), DELIVER),
    forward=(FORWARD, *_hook("FORWARD")),
    local_out=(OUTPUT_ROUTING, *_hook("OUTPUT")),
    postrouting=(*_hook("POSTROUTING"), TC_EGRESS, TRANSMIT),
)

# -- classic-2.4: the seed Kernel Packet Traveling Diagram (LARTC, 2002) -----------------
#
# A 2.4 kernel with the IMQ patch, drawn as the seed diagram draws it
# (https://www.docum.org/docum.org/kptd/, a LARTC post by Leonardo Balliache): no raw
# table (2.6), no nat INPUT chain (2.6.36), no security table (2.6.25). The 2.4 hook
# priorities (include/linux/netfilter_ipv4.h) give each hook's order: conntrack -200,
# mangle -150, nat DNAT -100, filter 0, nat SNAT 100. The ingress qdisc sits after
# PREROUTING: 2.4's sch_ingress hooks PRE_ROUTING at "NF_IP_PRI_FILTER + 1", after
# mangle and nat. IMQ hooks PRE_ROUTING at "NF_IP_PRI_MANGLE + 1" and POST_ROUTING at
# "NF_IP_PRI_LAST" (linuximq's 2.4 patches). Connection tracking confirms a new entry
# at the end of INPUT (ip_confirm, NF_IP_PRI_LAST-1) and POSTROUTING (ip_refrag,
# NF_IP_PRI_LAST too: equal priorities run in the order the modules registered them;
# kptui assumes imq was loaded first, as the seed diagram's IMQ-last picture suggests,
# so a packet IMQ drops leaves no confirmed entry). The seed diagram does not draw the
# confirm step, so the profile lists it in ``hidden``: walked, not drawn.
# Not modelled: the chainless nat LOCAL_IN hook of CONFIG_IP_NF_NAT_LOCAL (late 2.4),
# which only de-NATs replies of locally DNATed connections.


def _c24(table: str, hook: str) -> Stage:
    return Stage(f"{table}:{hook}", f"{table} {hook}", hook, "table", table)


def _imq(hook: str) -> Stage:
    return Stage(f"imq:{hook}", "IMQ", hook, "imq")


def _ct(hook: str) -> Stage:
    return Stage(f"conntrack:{hook}", "conntrack", hook, "conntrack")


def _confirm(hook: str) -> Stage:
    return Stage(f"conntrack:{hook}", "conntrack confirm", hook, "confirm")


CLASSIC_24 = Profile(
    name="classic-2.4",
    prerouting=(_ct("PREROUTING"), _c24("mangle", "PREROUTING"), _imq("PREROUTING"),
                _c24("nat", "PREROUTING"), Stage("tc:ingress", "QOS INGRESS", "", "tc"),
                Stage("routing:input", "INPUT ROUTING + RPDB", "", "routing")),
    local_in=(_c24("mangle", "INPUT"), _c24("filter", "INPUT"), _confirm("INPUT"), DELIVER),
    forward=(FORWARD, _c24("mangle", "FORWARD"), _c24("filter", "FORWARD")),
    local_out=(Stage("routing:output", "OUTPUT ROUTING + RPDB", "", "routing"),
               _ct("OUTPUT"), _c24("mangle", "OUTPUT"), _c24("nat", "OUTPUT"),
               _c24("filter", "OUTPUT")),
    postrouting=(_c24("mangle", "POSTROUTING"), _c24("nat", "POSTROUTING"),
                 _imq("POSTROUTING"), _confirm("POSTROUTING"),
                 Stage("tc:egress", "QOS EGRESS", "", "tc"), TRANSMIT),
    hidden=frozenset({"conntrack:INPUT", "conntrack:POSTROUTING"}),
)

# -- ipchains: Linux 2.2, the diagram's IPCHAINS branch (IPCHAINS-HOWTO 4.1) -------------
#
# Three built-in chains. A packet from the wire meets the input chain, then is
# demasqueraded (a reply to a masqueraded connection goes straight to the output chain),
# then routed: to a local process, or through ip_forward and the forward chain (where
# MASQ rewrites the source) and then the output chain. Local packets meet only the
# output chain. The QoS boxes are the ones the seed diagram draws below both branches.


def _chain(name: str) -> Stage:
    return Stage(f"ipchains:{name}", f"IPCHAINS {name}", name, "ipchains", "ipchains")


IPCHAINS = Profile(
    name="ipchains",
    prerouting=(_chain("input"), Stage("masq:demasq", "demasquerade", "", "demasq"),
                Stage("routing:input", "INPUT ROUTING", "", "routing")),
    local_in=(DELIVER,),
    forward=(FORWARD, _chain("forward")),
    local_out=(Stage("routing:output", "OUTPUT ROUTING", "", "routing"),),
    postrouting=(_chain("output"), Stage("tc:egress", "QOS EGRESS", "", "tc"), TRANSMIT),
)

PROFILES: dict[str, Profile] = {"modern": MODERN, "classic-2.4": CLASSIC_24,
                                "ipchains": IPCHAINS}
KNOWN_PROFILES = ("modern", "classic-2.4", "ipchains")


def get_profile(name: str) -> Profile:
    """The profile called ``name``."""
    if name in PROFILES:
        return PROFILES[name]
    raise UnsupportedError(f"unknown profile {name!r} (known: {', '.join(KNOWN_PROFILES)})")
