"""-m cluster (libxt_cluster 1.8.9, xt_cluster.c): one node's share of the connections.

``--cluster-local-node N`` is saved as the mask ``--cluster-local-nodemask``
1 << (N - 1). xt_cluster_mt: no conntrack entry, no match (`!` or not);
otherwise the connection's original source address (as the __be32 reads on a
little-endian host) is hashed with jhash_1word(addr, seed) (= jhash2 of one
word), scaled to a node with reciprocal_scale(hash, total), and the match is
that node's bit in the mask, `!` inverting it. (The match also turns a
PACKET_MULTICAST frame to a unicast address into PACKET_HOST; a kptui packet's
link type follows its address, so that case does not arise.) Kernel-verified:
tests/kernel/scenarios/ext-cluster.toml.
"""

from __future__ import annotations

from typing import Any

from kptui.engine.iptables.values import BadValue
from kptui.engine.iptables.xtopt import XT, Entry, XtMatch

XT_CLUSTER_NODES_MAX = 32


class ClusterMatch(XtMatch):
    name = "cluster"
    entries = (
        Entry("cluster-total-nodes", XT.UINT32, mand=True, min=1, max=XT_CLUSTER_NODES_MAX),
        Entry("cluster-local-node", XT.UINT32, invert=True, min=1, max=XT_CLUSTER_NODES_MAX,
              excl=("cluster-local-nodemask",)),
        Entry("cluster-local-nodemask", XT.UINT32, invert=True, min=1,
              max=XT_CLUSTER_NODES_MAX, excl=("cluster-local-node",)),
        Entry("cluster-hash-seed", XT.UINT32, mand=True),
    )

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self.node_mask = 0
        self.inv = False
        self.seed = 0

    def parsed(self, name: str, value: Any, inv: bool) -> None:
        if name == "cluster-total-nodes":
            self.total = value
        elif name == "cluster-local-node":
            self.node_mask, self.inv = 1 << (value - 1), self.inv or inv
        elif name == "cluster-local-nodemask":
            self.node_mask, self.inv = value, self.inv or inv
        else:
            self.seed = value

    def check(self) -> None:
        """cluster_check."""
        given = {o[2:] for o in self.seen}
        for mask_opt, why in (("cluster-local-node", "`--cluster-local-node' must be <= "
                               "`--cluster-total-nodes'"),
                              ("cluster-local-nodemask", "`--cluster-local-nodemask' too big "
                               "for `--cluster-total-nodes'")):
            if {"cluster-total-nodes", mask_opt, "cluster-hash-seed"} <= given:
                if self.node_mask >= 1 << self.total:
                    raise BadValue(f"cluster match: {why}")
                return
        if not given & {"cluster-local-node", "cluster-local-nodemask"}:
            raise BadValue("cluster match: `--cluster-local-node' or"
                           "`--cluster-local-nodemask' is missing")

    def save(self) -> str:
        return (f"{'! ' if self.inv else ''}--cluster-local-nodemask 0x{self.node_mask:08x} "
                f"--cluster-total-nodes {self.total} --cluster-hash-seed 0x{self.seed:08x}")

    def test(self, pkt: Any, ctx: Any) -> str | None:
        from kptui.engine.nat import _raw, jhash2

        conn = pkt.meta.ct
        if conn is None:
            return "the packet has no conntrack entry"
        src = conn.original.src
        node = (jhash2([_raw(src)], self.seed) * self.total) >> 32  # reciprocal_scale
        mine = bool(self.node_mask >> node & 1)
        if mine != self.inv:
            return None
        return f"{src} hashes to node {node + 1} of {self.total}" + \
            (", and the rule says !" if self.inv else "")


MATCHES = (ClusterMatch,)
