"""-j TEE (libxt_TEE 1.8.9 revision 1, xt_TEE.c + nf_dup_ipv4.c): simulated.

tee_tg4 calls nf_dup_ipv4 and returns XT_CONTINUE: the packet goes on as if
nothing happened, and a copy of it is sent to --gateway. nf_dup_ipv4 (read in the
Linux 6.17 source, checked on a 6.18 kernel by tests/kernel/scenarios/ext-TEE*.toml):

- does nothing while the task is already sending a copy (current->in_nf_duplicate;
  older kernels keep the flag per cpu, nf_skb_duplicated): a copy meeting a TEE rule
  on its own way out (OUTPUT, POSTROUTING), or what the kernel sends while sending
  it, is not copied again (``meta.in_dup``);
- copies the skb (pskb_copy: headers, mark, priority; no socket), drops its
  conntrack reference for the untracked one (nf_reset_ct + nf_ct_set(IP_CT_UNTRACKED)),
  sets DF, and takes one off the TTL when the hook is PREROUTING or INPUT (the
  copy is "forwarded"; u8 arithmetic: TTL 0 becomes 255);
- routes the copy (nf_dup_ipv4_route): an output lookup {daddr = gateway,
  oif = --oif's device if it exists, tos = the DSCP bits, scope universe, mark 0,
  no source, FLOWI_FLAG_KNOWN_NH}; an error frees the copy (no route, an
  unreachable/prohibit/blackhole route, --oif's device down). With an oif a failed
  lookup is not an error: ip_route_output_key_hash_rcu assumes the destination is on
  that link;
- sends it with ip_local_out: OUTPUT and POSTROUTING of every table as a locally
  generated, untracked packet, its IP header unchanged (the original's source and
  destination). It is not routed again (unless mangle OUTPUT changes a routing key:
  ip_route_me_harder then routes it by its own destination, as any local packet).
  The frame goes to the link-layer address of the route's gateway; for a route
  without one, KNOWN_NH keeps the route uncached and rt_set_nexthop makes the
  gateway address itself the next hop (rt_gw4 = daddr). In the on-link case (no
  fib_info) nothing sets rt_gw4, so the next hop is the copy's own destination.

The copy is modelled as a packet the box sends because of this one (the walk's
answers, kptui.engine.run): ``Duplicate`` carries it to the walk, which announces
it (AnswerSent with ``clone``) and walks it after the original, with ``meta.tee``
= its next hop (so its walk skips output routing) and ``meta.in_dup`` set.

--oif (tee_tg_check and the netdevice notifier): the device is looked up by name
when the rule is added and again whenever a device registers or is renamed; while
no device has the name, priv->oif is -1 and the lookup has no oif at all. kptui's
devices never change during a walk, so the name is looked up when the rule runs.

A copy longer than its device's MTU is dropped after POSTROUTING (DF is always
set: ip_fragment) and its sender gets ICMP fragmentation needed about it (the walk's
copy_too_big; checked on Linux 6.18).

Order: the kernel sends the copy inside the TEE rule, before the original goes on;
kptui walks it after the original's fate, like every answer. Where that could change
a result it refuses by name (order_conflict; Walk.announce for an answer to a copy
while connections are tracked: the original's entry may not be confirmed yet).

Not modelled, each refused by name: a gateway whose route is local, broadcast or
multicast (the copy would loop back through lo, or go out as a link broadcast with
a local copy: ip_mc_output); IP options.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from types import SimpleNamespace
from typing import Any

from kptui.engine.errors import UnsupportedError
from kptui.engine.iptables.targets import TargetResult
from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtTarget

IFNAMSIZ = 16
_DSCP_MASK = 0xFC  # inet_dscp_to_dsfield(ip4h_dscp(iph)): the flow's tos is the DSCP only
_COPIED_HOOKS = frozenset({"PREROUTING", "INPUT"})  # where nf_dup_ipv4 decrements the TTL


@dataclass(slots=True)
class Duplicate:
    """What one TEE rule sent: the copy (None when none was sent) and why."""

    clone: Any  # the Packet, routed (meta.oif, meta.tee), or None
    why: str  # AnswerSent.why, or why no copy was sent


class TeeTarget(XtTarget):
    name = "TEE"
    entries = (Entry("gateway", XT.HOST, mand=True), Entry("oif", XT.STRING))

    def __init__(self) -> None:
        super().__init__()
        self.gateway = 0
        self.oif = ""

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        if name == "gateway":
            self.gateway = value
        else:
            self.oif = value[:IFNAMSIZ - 1]  # XTOPT_PUT into oif[16]

    def finish(self, proto: int, proto_inv: bool) -> None:
        super().finish(proto, proto_inv)
        self.kernel_check(proto, proto_inv)  # at RULE_APPEND: after iptables' own checks

    def kernel_check(self, proto: int, proto_inv: bool) -> None:
        if self.gateway == 0:  # tee_tg_check: "0.0.0.0 and :: not allowed"
            raise BadValue("TEE: --gateway 0.0.0.0 (the kernel refuses it: Invalid argument)")

    def save(self) -> str:
        out = f"--gateway {IPv4Address(self.gateway)}"
        return f"{out} --oif {self.oif}" if self.oif else out

    def apply(self, pkt: Any, ctx: Any) -> TargetResult:
        gateway = IPv4Address(self.gateway)
        if pkt.meta.in_dup:
            return TargetResult("CONTINUE", detail="this packet is being sent as a TEE copy "
                                "(in_nf_duplicate): it is not copied again")
        dup = duplicate(ctx.box, pkt, ctx.hook, gateway, self.oif)
        ctx.sent.append(dup)
        if dup.clone is None:
            return TargetResult("CONTINUE", detail=f"no copy to {gateway}: {dup.why}")
        return TargetResult("CONTINUE", detail=f"a copy to {gateway} via {dup.clone.meta.oif}")


def duplicate(box: Any, pkt: Any, hook: str, gateway: IPv4Address, oif_name: str) -> Duplicate:
    """nf_dup_ipv4 for ``pkt`` at ``hook`` (see the module doc)."""
    from kptui.engine.routing import Flow

    oif = oif_name if oif_name in box.interfaces else ""  # priv->oif, or -1: no oif
    route = _route(box, Flow(dst=gateway, oif=oif, tos=pkt.ip.tos & _DSCP_MASK), oif)
    if isinstance(route, str):
        return Duplicate(None, route)
    dev, gw = route
    if pkt.ip.options:
        raise UnsupportedError("-j TEE of a packet with IP options")
    clone = pkt.copy()
    meta = clone.meta
    meta.ct, meta.ctinfo, meta.ctstate, meta.ctmark = None, "UNTRACKED", "UNTRACKED", 0
    meta.iif, meta.oif, meta.sock, meta.uid, meta.gid = "", dev, "", 0, 0
    meta.tproxy = None  # no skb->sk on a copy
    nexthop = gw if gw is not None else clone.ip.dst
    meta.tee, meta.in_dup = str(nexthop), True
    clone.ip.df = True
    if hook in _COPIED_HOOKS:
        clone.ip.ttl = (clone.ip.ttl - 1) & 0xFF
    why = f"-j TEE --gateway {gateway}: a copy out of {dev} to {nexthop}'s link-layer address"
    if hook in _COPIED_HOOKS:
        why += f", TTL {pkt.ip.ttl} -> {clone.ip.ttl} (nf_dup_ipv4 at {hook})"
    return Duplicate(clone, why)


def _route(box: Any, flow: Any, oif: str) -> tuple[str, IPv4Address | None] | str:
    """nf_dup_ipv4_route: (device, next hop; None: the copy's own destination), or why
    the copy is freed."""
    from kptui.engine.packet import IPv4Header, Packet

    if oif and not box.interfaces[oif].up:
        return f"--oif {oif} is down (the route lookup fails: ENETUNREACH)"
    probe = Packet(IPv4Header(IPv4Address(0), flow.dst, 0))
    res = box.route_output(probe, flow=flow)
    if res.error:
        if oif:  # any fib_lookup error: "Apparently, routing tables are wrong"
            return oif, None
        return f"no route to {flow.dst} ({res.kind}, {res.error})"
    if res.kind != "unicast":
        raise UnsupportedError(f"-j TEE --gateway {flow.dst}: its route is {res.kind} (the "
                               "copy would loop back or be broadcast; not modelled)")
    if not res.route:  # route_output's own on-link answer for an oif without a route
        return res.oif, None
    return res.oif, IPv4Address(res.gateway or str(flow.dst))


# Stateful modules whose state several rules share (a named list, hash or set, the
# conntrack table connlimit counts, the box's one random generator -m statistic draws
# from); the state of the others (limit, quota, statistic's nth counter) is the rule's.
_SHARED_STATE = frozenset({"-m recent", "-m hashlimit", "-m set", "-m connlimit",
                           "-m statistic", "-j SET"})
_COPY_HOOKS = ("OUTPUT", "POSTROUTING")  # what a copy traverses (ip_local_out)


def _sensitive(rule: Any) -> str:
    """The rule's module whose state depends on the order packets reach it, or ''."""
    for match in rule.matches:
        if getattr(match, "stateful", False):
            return f"-m {match.name}"
    target = rule.target
    return f"-j {target.name}" if getattr(target, "uses_sets", False) else ""


def _copy_path(ruleset: Any, copies: list[Any]) -> dict[tuple[str, str, int], str]:
    """The order-sensitive rules a copy may meet: in every chain its hooks can reach,
    those whose addresses, protocol and interfaces (the rule's ip part) one of the
    copies has."""
    from kptui.engine.iptables.targets import ChainTarget

    where = [(copy, SimpleNamespace(iif="", oif=copy.meta.oif)) for copy in copies]
    found: dict[tuple[str, str, int], str] = {}
    for table in ruleset.tables.values():
        todo = [name for name in _COPY_HOOKS if name in table.chains
                and table.chains[name].present]
        seen = set(todo)
        while todo:
            chain = table.chains[todo.pop()]
            for number, rule in enumerate(chain.rules, 1):
                module = _sensitive(rule)
                if module and any(rule.matches[0].test(copy, ctx) is None
                                  for copy, ctx in where):
                    found[(table.name, chain.name, number)] = module
                target = rule.target
                if isinstance(target, ChainTarget) and target.chain not in seen:
                    seen.add(target.chain)
                    todo.append(target.chain)
    return found


def order_conflict(ruleset: Any, after: list[tuple[str, str, int]], copies: list[Any]) -> None:
    """Refuse what kptui's order of walks would get wrong (UnsupportedError).

    The kernel sends a copy through OUTPUT and POSTROUTING inside the TEE rule, before
    the original goes on; kptui walks the copy after the original's fate. The two
    orders agree unless the original, after the copy was sent, reaches a rule whose
    state the copy's walk can also touch: the same stateful rule, or two rules of a
    module with shared state (``after``: the rules the original met after the first
    of its ``copies``). Conservative: a rule counts as met when it was evaluated (the
    original) or when its ip part fits (a copy), whether or not it then matched.
    """
    tables = ruleset.tables
    met = {}
    for where in after:
        table, chain, number = where
        rules = tables[table].chains[chain].rules
        module = _sensitive(rules[number - 1]) if number <= len(rules) else ""
        if module:
            met[where] = module
    if not met:
        return
    path = _copy_path(ruleset, copies)
    shared = {m for m in path.values() if m in _SHARED_STATE}
    for (table, chain, number), module in met.items():
        if (table, chain, number) in path or (module in _SHARED_STATE and shared):
            raise UnsupportedError(
                f"-j TEE with {table}:{chain}:rule:{number} ({module}) after it: the "
                "kernel sends the copy through OUTPUT and POSTROUTING before the original "
                "goes on, kptui walks it after the original, and that rule's state is one "
                "the copy's way can change too")


TARGETS = (TeeTarget,)
